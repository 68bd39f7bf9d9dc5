/*
 * fuzz_zip.c -- libFuzzer target: the zip central-directory reader and the
 * PyTorch checkpoint reader of src/io (zip + restricted pickle + storage
 * checks) on arbitrary bytes.  Entries and tensors must lie inside the
 * input; every byte of each is read so that ASan sees any escape.
 * Seeds: tests/fuzz/corpus/zip/ (torch.save files).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned touch(const unsigned char *p, uint64_t n, const uint8_t *data, size_t size)
{
    if (p < data || n > size || (size_t)(p - data) > size - n)
        abort();
    unsigned acc = 0;
    for (uint64_t k = 0; k < n; k++)
        acc += p[k];
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned acc = 0;
    ssmi_zip z;
    if (ssmi_zip_parse(data, size, &z) == SSM_OK) {
        for (int64_t i = 0; i < z.n; i++) {
            if (z.e[i].data)
                acc += touch(z.e[i].data, z.e[i].size, data, size);
            if (ssmi_zip_find(&z, z.e[i].name) == NULL)
                abort();
        }
        ssmi_zip_free(&z);
    }
    ssmi_tlist l;
    if (ssmi_torch_parse(data, size, &l) == SSM_OK) {
        for (int64_t i = 0; i < l.n; i++)
            acc += touch(l.t[i].data, l.t[i].nbytes, data, size);
        ssmi_tlist_free(&l);
    }
    return (int)(acc & 0);
}
