/*
 * fuzz_safetensors.c -- libFuzzer target: the safetensors parser of src/io
 * (header length, JSON header, offsets, overlaps) on arbitrary bytes.  A
 * successful parse must describe tensors that lie inside the input; every
 * byte of each is read so that ASan sees any escape.
 * Seeds: tests/fuzz/corpus/safetensors/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssmi_tlist l;
    if (ssmi_safetensors_parse(data, size, &l) != SSM_OK)
        return 0;
    unsigned acc = 0;
    for (int64_t i = 0; i < l.n; i++) {
        const ssmi_tensor *t = &l.t[i];
        if (t->data < data || t->nbytes > size || (size_t)(t->data - data) > size - t->nbytes)
            abort();
        for (uint64_t k = 0; k < t->nbytes; k++)
            acc += t->data[k];
    }
    ssmi_tlist_free(&l);
    return (int)(acc & 0);
}
