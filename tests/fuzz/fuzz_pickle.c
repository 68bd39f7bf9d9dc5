/*
 * fuzz_pickle.c -- libFuzzer target: the restricted pickle machine of
 * src/io on arbitrary bytes (a data.pkl).  It must never crash, leak, hang
 * or grow beyond its bounds, whatever the opcodes.
 * Seeds: tests/fuzz/corpus/pickle/ (data.pkl of torch.save files).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssmi_pk_result r;
    if (ssmi_pickle_load(data, size, &r) == SSM_OK) {
        for (int64_t i = 0; i < r.n; i++)
            if (!r.t[i].name || !r.t[i].storage_key || r.t[i].ndim < 0 ||
                r.t[i].ndim > SSM_TENSOR_MAX_DIMS || ssm_dtype_size(r.t[i].dtype) == 0)
                abort();
        ssmi_pk_result_free(&r);
    }
    return 0;
}
