/*
 * fuzz_state.c -- libFuzzer target for ssm_model_state_restore
 * (src/models/state.c), the parser of saved decoding states (prompt
 * caches, files a server may read back): any bytes give SSM_OK or
 * SSM_ERR_FORMAT (or SSM_ERR_NOMEM), never a crash, a leak or a read
 * outside the input.  On an error the slot is unchanged (it saves to the bytes it saved
 * before); on SSM_OK it saves back to exactly the input and takes a
 * decoding step.
 *
 * Byte 0 picks the model (even: a tiny Mamba-1, odd: a tiny Mamba-2 model,
 * made once in a temporary directory), the rest is the state.  Mutations
 * rarely keep the trailing hash valid, so the seed corpus (corpus/state/)
 * holds valid states of both models; this target writes them when run
 * with FUZZ_STATE_SEEDS=DIR (then exits).
 */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model2_tiny.h"
#include "../tu_rmtree.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssm_model *g_model[2];
static ssm_model_state *g_state[2];
static unsigned char *g_zero[2];     /* a reset slot, saved */
static int64_t g_nzero[2];
static float g_logits[1024];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_state: %s\n", what);
    abort();
}

/* Loads one tiny model from a temporary directory (removed after the
 * load: a mapped file stays readable). */
static ssm_model *make_model(int kind)
{
    char dir[] = "/tmp/ssm_fuzz_state_XXXXXX";
    if (!mkdtemp(dir)) fail("mkdtemp");
    int rc;
    if (kind == 0) {
        tiny_model m;
        tiny_make(&m, 4242, 2, 0, 1, 1, 1, 0);
        rc = tiny_write(&m, dir, SSM_DTYPE_F32, 0, 0);
        tiny_free(&m);
    } else {
        tiny2_model m;
        tiny2_make(&m, 4243, 2, 1, 1, 0, SSM_MAMBA2_NORM_GATED, 0, 0, 0);
        rc = tiny2_write(&m, dir, SSM_DTYPE_F32, 0, NULL, NULL);
        tiny2_free(&m);
    }
    ssm_model *model = NULL;
    if (rc != 0 || ssm_model_load(&model, dir) != SSM_OK) fail("cannot make the tiny model");
    tu_rm_tree(dir);
    return model;
}

static unsigned char *save_slot(ssm_model_state *s, int64_t *n)
{
    if (ssm_model_state_save(s, 0, NULL, 0, n) != SSM_OK) fail("save size");
    unsigned char *b = malloc((size_t)*n);
    if (!b) fail("malloc");
    int64_t n2;
    if (ssm_model_state_save(s, 0, b, *n, &n2) != SSM_OK || n2 != *n) fail("save");
    return b;
}

static void write_seed(const char *dir, const char *name, int kind,
                       const unsigned char *b, int64_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    const unsigned char k = (unsigned char)kind;
    if (!f || fwrite(&k, 1, 1, f) != 1 || fwrite(b, 1, (size_t)n, f) != (size_t)n ||
        fclose(f) != 0)
        fail("cannot write a seed");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *seeds = getenv("FUZZ_STATE_SEEDS");
    for (int k = 0; k < 2; k++) {
        g_model[k] = make_model(k);
        ssm_model_info in;
        ssm_model_info_init(&in);
        if (ssm_model_get_info(g_model[k], &in) != SSM_OK ||
            in.vocab > (int64_t)(sizeof g_logits / sizeof g_logits[0]))
            fail("model info");
        if (ssm_model_state_create(&g_state[k], g_model[k], 1) != SSM_OK) fail("state");
        g_zero[k] = save_slot(g_state[k], &g_nzero[k]);
        /* The state after a 9-token prompt restores and saves back to its
         * bytes (checked on every run: mutations seldom reach that path). */
        int32_t tok[9];
        for (int i = 0; i < 9; i++) tok[i] = (int32_t)((i * 37 + 5) % in.vocab);
        if (ssm_model_forward(g_model[k], g_state[k], 1, 9, tok, NULL) != SSM_OK)
            fail("prompt");
        int64_t n, n2;
        unsigned char *b = save_slot(g_state[k], &n);
        if (ssm_model_state_reset(g_state[k]) != SSM_OK ||
            ssm_model_state_restore(g_state[k], 0, b, n) != SSM_OK)
            fail("a saved state does not restore");
        unsigned char *b2 = save_slot(g_state[k], &n2);
        if (n2 != n || memcmp(b, b2, (size_t)n)) fail("a restored state saves other bytes");
        if (seeds) {
            /* a reset slot, and the prompt's state */
            write_seed(seeds, k ? "m2_empty" : "m1_empty", k, g_zero[k], g_nzero[k]);
            write_seed(seeds, k ? "m2_prompt" : "m1_prompt", k, b, n);
        }
        free(b);
        free(b2);
    }
    if (seeds) exit(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int k = data[0] & 1;
    ssm_model_state *s = g_state[k];
    const size_t n = size - 1;
    /* An exact-size copy so that ASan sees any read past the end. */
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    if (n) memcpy(buf, data + 1, n);
    if (ssm_model_state_reset(s) != SSM_OK) fail("reset");
    const ssm_status st = ssm_model_state_restore(s, 0, buf, (int64_t)n);
    int64_t m;
    unsigned char *back = save_slot(s, &m);
    if (st == SSM_OK) {
        if ((size_t)m != n || memcmp(back, buf, n)) fail("restored state does not save back to its bytes");
        const int32_t tok = 3;
        if (ssm_model_forward(g_model[k], s, 1, 1, &tok, g_logits) != SSM_OK)
            fail("step after restore");
    } else if (st == SSM_ERR_FORMAT || st == SSM_ERR_NOMEM) {
        if (m != g_nzero[k] || memcmp(back, g_zero[k], (size_t)m))
            fail("a rejected state changed the slot");
    } else {
        fail("status other than SSM_OK / SSM_ERR_FORMAT");
    }
    free(back);
    free(buf);
    return 0;
}
