/*
 * fuzz_index.c -- libFuzzer target for sharded checkpoints: the
 * model.safetensors.index.json parser of src/io/tensor_file.c (JSON,
 * weight_map, shard names, tensors looked up in their shards, metadata
 * merged).  The input is written as the index beside two real shards of
 * a tiny Mamba model (made once in a temporary directory), then opened by
 * ssm_tensor_file_open: SSM_OK, SSM_ERR_FORMAT, SSM_ERR_IO (a shard name
 * that is not there) or SSM_ERR_NOMEM, never a crash or a leak.  On
 * SSM_OK every tensor is found by its name and read whole.
 * Seeds: tests/fuzz/corpus/index/ (the tiny model's own index and
 * variants).
 */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model_tiny.h"
#include "../tu_rmtree.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[] = "/tmp/ssm_fuzz_index_XXXXXX";
static char g_path[600];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_index: %s\n", what);
    abort();
}

static void cleanup(void) { tu_rm_tree(g_dir); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    if (!mkdtemp(g_dir)) fail("mkdtemp");
    atexit(cleanup);
    tiny_model m;
    tiny_make(&m, 4244, 1, 1, 1, 1, 1, 0);
    if (tiny_write(&m, g_dir, SSM_DTYPE_F32, 0, 1) != 0) fail("cannot write the shards");
    tiny_free(&m);
    snprintf(g_path, sizeof g_path, "%s/model.safetensors.index.json", g_dir);
    /* The index as written opens (the path the mutations start from). */
    ssm_tensor_file *f = NULL;
    if (ssm_tensor_file_open(&f, g_path) != SSM_OK || ssm_tensor_file_count(f) < 1)
        fail("the tiny model's index does not open");
    ssm_tensor_file_close(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *fp = fopen(g_path, "wb");
    if (!fp) fail("cannot write the index");
    if (size && fwrite(data, 1, size, fp) != size) fail("short write");
    if (fclose(fp) != 0) fail("close");
    ssm_tensor_file *f = NULL;
    const ssm_status st = ssm_tensor_file_open(&f, g_path);
    if (st == SSM_OK) {
        const int64_t n = ssm_tensor_file_count(f);
        for (int64_t i = 0; i < n; i++) {
            ssm_tensor_info a, b;
            const void *d = NULL;
            if (ssm_tensor_file_at(f, i, &a) != SSM_OK ||
                ssm_tensor_file_data(f, a.name, &d, &b) != SSM_OK || b.numel != a.numel ||
                !d)
                fail("a listed tensor cannot be found");
            /* every byte, so that ASan sees a tensor outside its shard */
            const unsigned char *p = d;
            unsigned acc = 0;
            const size_t nb = (size_t)a.numel * ssm_dtype_size(a.dtype);
            for (size_t k = 0; k < nb; k++) acc += p[k];
            if (acc == 0xFFFFFFFFu) fputc(' ', stderr);
        }
        ssm_tensor_file_close(f);
    } else if (f != NULL) {
        fail("a failed open left a file");
    } else if (st != SSM_ERR_FORMAT && st != SSM_ERR_IO && st != SSM_ERR_NOMEM) {
        fail("status other than OK / FORMAT / IO / NOMEM");
    }
    return 0;
}
