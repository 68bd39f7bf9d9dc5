/* ctest-labels: model */
/*
 * test_model.c -- Mamba language models from checkpoint directories
 * (src/models): loading, the forward, states, sampling.
 *
 *  - tiny checkpoints written here (model_tiny.h, through the library's
 *    safetensors writer) in both namings, F32/F16/BF16, sharded and not,
 *    with biases, without conv bias, with LayerNorm, tied and untied;
 *  - every logit against a literal double-precision forward written from
 *    the equations (model_tiny.h), with a derived bound, ratio printed;
 *  - prompt in pieces == whole, step == forward, batch == one by one,
 *    saved/restored state == uninterrupted, copied slot == fresh run;
 *  - bad directories, configs and tensors, table-driven: SSM_ERR_IO or
 *    SSM_ERR_FORMAT (leaks: the sanitizer build); bad token ids:
 *    SSM_ERR_ARG with the state unchanged;
 *  - every sampling filter against a literal implementation in this file.
 *
 * `test_model --write-tiny DIR` writes the tiny F32 mamba_ssm checkpoint
 * into DIR (for the ssm_generate demo test) and exits.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"
#include "tu_files.h"
#include "model_tiny.h"

#define U32 0x1.0p-24

/* Bound on the normwise relative error of float logits against the exact
 * ones.  Per layer the float forward rounds dot products of lengths dm
 * (in_proj), K (conv), di (x_proj, out_proj), R (dt_proj) and a recurrence
 * over L steps.  Rounding errors of a length-n sum grow like sqrt(n) u
 * (Higham and Mary 2019, probabilistic rounding error analysis; the worst
 * case n u is never approached by these random weights), plus a few u for
 * each of silu, exp, softplus and the norm's rsqrt (16 u together).
 * Layers add their errors (the pre-norm keeps each layer's input well
 * scaled); the final norm and head add sqrt(dm) u.  Factor 4 for the
 * amplification through the block's products (|weights| <= 1/2 mostly). */
static double logits_bound(const tiny_model *m, int L)
{
    return 4.0 * U32 * (m->nl * (sqrt(m->dm) + sqrt(m->K) + 2 * sqrt(m->di) +
                                 sqrt(m->R) + sqrt(L) + 16) + sqrt(m->dm));
}

/* ---- forward against the reference, every variant ---- */

typedef struct variant {
    const char *what;
    ssm_dtype dt;
    int hf, sharded, bias, conv_bias, rms, tied, nl;
} variant;

static const variant variants[] = {
    { "mamba_ssm F32",             SSM_DTYPE_F32,  0, 0, 0, 1, 1, 1, 2 },
    { "mamba_ssm F16",             SSM_DTYPE_F16,  0, 0, 0, 1, 1, 1, 2 },
    { "mamba_ssm BF16",            SSM_DTYPE_BF16, 0, 0, 0, 1, 1, 1, 2 },
    { "mamba_ssm sharded",         SSM_DTYPE_F32,  0, 1, 0, 1, 1, 1, 3 },
    { "mamba_ssm untied",          SSM_DTYPE_F32,  0, 0, 0, 1, 1, 0, 2 },
    { "mamba_ssm bias, no conv b", SSM_DTYPE_F32,  0, 0, 1, 0, 1, 1, 2 },
    { "mamba_ssm LayerNorm",       SSM_DTYPE_F32,  0, 0, 0, 1, 0, 1, 2 },
    { "HF F32",                    SSM_DTYPE_F32,  1, 0, 0, 1, 1, 1, 2 },
    { "HF BF16 sharded untied",    SSM_DTYPE_BF16, 1, 1, 0, 1, 1, 0, 1 },
    { "HF F16 bias",               SSM_DTYPE_F16,  1, 0, 1, 1, 1, 1, 4 },
};
#define NVAR ((int)(sizeof variants / sizeof variants[0]))

static ssm_model *load_variant(const variant *v, tiny_model *m, char *dir, size_t n)
{
    tiny_make(m, 1000 + (uint64_t)v->nl * 7 + (uint64_t)v->bias, v->nl, v->bias,
              v->conv_bias, v->rms, v->tied, v->hf);
    tu_make_tmpdir(dir, n, "ssm_test_model");
    ck_assert_int_eq(tiny_write(m, dir, v->dt, v->hf, v->sharded), 0);
    ssm_model *model = NULL;
    ssm_status st = ssm_model_load(&model, dir);
    ck_assert_msg(st == SSM_OK, "%s: load: %s", v->what, ssm_status_string(st));
    return model;
}

START_TEST(test_forward_reference)
{
    const variant *v = &variants[_i];
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(v, &m, dir, sizeof dir);
    ssm_model_info info;
    TINY_CHECK_INFO(model, m, v->hf, &info);
    ck_assert_int_eq(info.dt_rank, m.R);
    /* F32 weights stay in the mapping: only A = -exp(A_log) and its step
     * table (A log2 e and max |A| per channel) are owned. */
    int64_t a_bytes = (int64_t)m.nl * m.di * (2 * m.N + 1) * 4;
    if (v->dt == SSM_DTYPE_F32) {
        ck_assert_int_eq(info.bytes_owned, a_bytes);
        ck_assert_int_gt(info.bytes_mapped, 0);
    } else {
        ck_assert_int_eq(info.bytes_mapped, 0);
        ck_assert_int_gt(info.bytes_owned, a_bytes);
    }

    enum { L = 13 };
    int32_t tok[L];
    tiny_fill_tokens(tok, L, m.V, 77);
    double *ref = tu_alloc((size_t)L * m.V, sizeof *ref);
    tiny_reference(&m, L, tok, ref);
    float *all = tu_alloc((size_t)L * m.V, sizeof *all), *last = tu_alloc((size_t)m.V, sizeof *last);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(model, s, 1, L, tok, all), SSM_OK);
    ck_assert_int_eq(ssm_model_state_reset(s), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, L, tok, last), SSM_OK);
    int64_t nt;
    ck_assert_int_eq(ssm_model_state_tokens(s, 0, &nt), SSM_OK);
    ck_assert_int_eq(nt, L);
    double bound = logits_bound(&m, L);
    double e_all = tu_relerr_f(all, ref, (int64_t)L * m.V);
    double e_last = tu_relerr_f(last, ref + (size_t)(L - 1) * m.V, m.V);
    printf("model %-26s all positions: err %.2e bound %.2e ratio %.3f; last: ratio %.3f\n",
           v->what, e_all, bound, e_all / bound, e_last / bound);
    ck_assert_msg(e_all <= bound && e_last <= bound, "%s: err %g / %g above %g",
                  v->what, e_all, e_last, bound);
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    free(ref); free(all); free(last);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* A prompt of three of the forward's 2048-token chunks, the last short. */
START_TEST(test_long_prompt)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[0], &m, dir, sizeof dir);
    enum { L = 4500 };
    int32_t *tok = tu_alloc(L, sizeof *tok);
    tiny_fill_tokens(tok, L, m.V, 5);
    double *ref = tu_alloc((size_t)L * m.V, sizeof *ref);
    tiny_reference(&m, L, tok, ref);
    float *all = tu_alloc((size_t)L * m.V, sizeof *all);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(model, s, 1, L, tok, all), SSM_OK);
    double bound = logits_bound(&m, L), e = tu_relerr_f(all, ref, (int64_t)L * m.V);
    printf("model long prompt L=%d: err %.2e bound %.2e ratio %.3f\n", L, e, bound, e / bound);
    ck_assert(e <= bound);
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    free(tok); free(ref); free(all);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Relative difference of two float logit rows against a bound. */
static void check_close(const float *a, const float *b, int64_t n, double bound,
                        const char *what)
{
    double e = tu_relerr_ff(a, b, n);
    printf("model %-40s diff %.2e bound %.2e ratio %.3f\n", what, e, bound, e / bound);
    ck_assert_msg(e <= bound, "%s: %g above %g", what, e, bound);
}

/* Pieces == whole, step-by-step == forward of every position. */
START_TEST(test_pieces_and_step)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[5], &m, dir, sizeof dir);
    enum { L = 21 };
    int32_t tok[L];
    tiny_fill_tokens(tok, L, m.V, 9);
    float *all = tu_alloc((size_t)L * m.V, sizeof *all), *lg = tu_alloc((size_t)m.V, sizeof *lg);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(model, s, 1, L, tok, all), SSM_OK);
    /* both are within logits_bound of the exact values: twice that apart */
    double bound = 2.0 * logits_bound(&m, L);
    ck_assert_int_eq(ssm_model_state_reset(s), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 5, tok, NULL), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 1, tok + 5, NULL), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 2, tok + 6, NULL), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, L - 8, tok + 8, lg), SSM_OK);
    check_close(lg, all + (size_t)(L - 1) * m.V, m.V, bound, "prompt in pieces 5+1+2+13 vs whole");
    ck_assert_int_eq(ssm_model_state_reset(s), SSM_OK);
    double worst = 0;
    for (int t = 0; t < L; t++) {
        ck_assert_int_eq(ssm_model_forward(model, s, 1, 1, tok + t, lg), SSM_OK);
        double e = tu_relerr_ff(lg, all + (size_t)t * m.V, m.V);
        if (e > worst) worst = e;
    }
    printf("model step by step vs forward_all: worst %.2e bound %.2e ratio %.3f\n",
           worst, bound, worst / bound);
    ck_assert(worst <= bound);
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    free(all); free(lg);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Batch == one by one; slots: subset steps, copy == fresh run. */
START_TEST(test_batch_and_slots)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[0], &m, dir, sizeof dir);
    enum { L = 9, B = 3 };
    int32_t tok[B * L];
    tiny_fill_tokens(tok, B * L, m.V, 11);
    const int V = m.V;
    float *lb = tu_alloc((size_t)B * V, sizeof *lb), *l1 = tu_alloc((size_t)V, sizeof *l1);
    float *l2 = tu_alloc((size_t)B * V, sizeof *l2);
    double bound = 2.0 * logits_bound(&m, L + 2);
    ssm_model_state *s, *s1;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 4), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&s1, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, B, L, tok, lb), SSM_OK);
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(ssm_model_state_reset(s1), SSM_OK);
        ck_assert_int_eq(ssm_model_forward(model, s1, 1, L, tok + b * L, l1), SSM_OK);
        /* the same path (one sequence's chunk): bit for bit */
        ck_assert_mem_eq(l1, lb + (size_t)b * V, (size_t)V * sizeof *l1);
    }
    /* one decoding step of slots {2, 0} together vs each alone */
    int32_t nxt[2] = { 3, 30 };
    int64_t sl[2] = { 2, 0 };
    ck_assert_int_eq(ssm_model_state_copy(s1, 0, s, 2), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 2, sl, 1, nxt, l2), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s1, 1, 1, nxt, l1), SSM_OK);
    check_close(l2, l1, V, bound, "slots {2,0} step vs slot 2 alone");
    int64_t nt;
    ck_assert_int_eq(ssm_model_state_tokens(s, 2, &nt), SSM_OK);
    ck_assert_int_eq(nt, L + 1);
    ck_assert_int_eq(ssm_model_state_tokens(s, 1, &nt), SSM_OK);
    ck_assert_int_eq(nt, L);
    /* slot 1 forked into slot 3: both continue identically, and like a
     * fresh run of prompt + continuation */
    ck_assert_int_eq(ssm_model_state_copy(s, 3, s, 1), SSM_OK);
    int32_t cont[2] = { 7, 8 }, cc[2 * 2] = { 7, 8, 7, 8 };
    int64_t sl2[2] = { 3, 1 };
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 2, sl2, 2, cc, l2), SSM_OK);
    ck_assert_mem_eq(l2, l2 + V, (size_t)V * sizeof *l2);
    int32_t whole[L + 2];
    memcpy(whole, tok + L, L * sizeof *whole);
    memcpy(whole + L, cont, sizeof cont);
    ck_assert_int_eq(ssm_model_state_reset(s1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s1, 1, L + 2, whole, l1), SSM_OK);
    check_close(l2, l1, V, bound, "copied slot vs fresh whole run");
    /* reset_slot: slot 3 back to empty, then == a fresh state */
    ck_assert_int_eq(ssm_model_state_reset_slot(s, 3), SSM_OK);
    int64_t one = 3;
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 1, &one, L, tok, l2), SSM_OK);
    ck_assert_int_eq(ssm_model_state_reset(s1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s1, 1, L, tok, l1), SSM_OK);
    ck_assert_mem_eq(l1, l2, (size_t)V * sizeof *l1);
    /* bad slots */
    int64_t dup[2] = { 1, 1 }, out[1] = { 4 }, neg[1] = { -1 };
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 2, dup, 1, nxt, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 1, out, 1, nxt, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 1, neg, 1, nxt, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 1, NULL, 1, nxt, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 5, 1, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_copy(s, 4, s, 0), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_copy(s, 0, s, -1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_reset_slot(s, 4), SSM_ERR_ARG);
    ssm_model_state_destroy(s);
    ssm_model_state_destroy(s1);
    ssm_model_destroy(model);
    free(lb); free(l1); free(l2);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Save after a prompt, continue; restore elsewhere, continue: identical. */
START_TEST(test_state_save_restore)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[0], &m, dir, sizeof dir);
    const int V = m.V;
    int32_t tok[12];
    tiny_fill_tokens(tok, 12, V, 13);
    ssm_model_state *s, *r;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 2), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&r, model, 3), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 8, tok, NULL), SSM_OK);
    int64_t n = -1;
    ck_assert_int_eq(ssm_model_state_save(s, 0, NULL, 0, &n), SSM_OK);
    ssm_model_info info;
    ssm_model_info_init(&info);
    ck_assert_int_eq(ssm_model_get_info(model, &info), SSM_OK);
    ck_assert_int_eq(n, info.state_bytes);
    unsigned char *buf = tu_alloc((size_t)n, 1), *bad = tu_alloc((size_t)n, 1);
    unsigned char *before = tu_alloc((size_t)n, 1), *after = tu_alloc((size_t)n, 1);
    int64_t n2;
    ck_assert_int_eq(ssm_model_state_save(s, 0, buf, n, &n2), SSM_OK);
    ck_assert_int_eq(n2, n);
    /* a short buffer gets the prefix, as snprintf */
    memset(bad, 0xAB, (size_t)n);
    ck_assert_int_eq(ssm_model_state_save(s, 0, bad, 10, &n2), SSM_OK);
    ck_assert_int_eq(n2, n);
    ck_assert_mem_eq(bad, buf, 10);
    ck_assert_int_eq(bad[10], 0xAB);
    char path[128];
    snprintf(path, sizeof path, "%s/prompt.state", dir);
    ck_assert_int_eq(ssm_model_state_save_file(s, 0, path), SSM_OK);

    float *la = tu_alloc((size_t)V, sizeof *la), *lb = tu_alloc((size_t)V, sizeof *lb);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 4, tok + 8, la), SSM_OK);
    ck_assert_int_eq(ssm_model_state_restore(r, 2, buf, n), SSM_OK);
    int64_t nt;
    ck_assert_int_eq(ssm_model_state_tokens(r, 2, &nt), SSM_OK);
    ck_assert_int_eq(nt, 8);
    int64_t two = 2;
    ck_assert_int_eq(ssm_model_forward_slots(model, r, 1, &two, 4, tok + 8, lb), SSM_OK);
    ck_assert_mem_eq(la, lb, (size_t)V * sizeof *la);
    ck_assert_int_eq(ssm_model_state_restore_file(r, 1, path), SSM_OK);
    int64_t one = 1;
    ck_assert_int_eq(ssm_model_forward_slots(model, r, 1, &one, 4, tok + 8, lb), SSM_OK);
    ck_assert_mem_eq(la, lb, (size_t)V * sizeof *la);

    /* Corruption anywhere (each byte in turn), truncation at every length,
     * trailing bytes: SSM_ERR_FORMAT and slot 0 of r unchanged. */
    ck_assert_int_eq(ssm_model_state_save(r, 0, before, n, &n2), SSM_OK);
    for (int64_t i = 0; i < n; i++) {
        memcpy(bad, buf, (size_t)n);
        bad[i] ^= 0x10;
        ck_assert_int_eq(ssm_model_state_restore(r, 0, bad, n), SSM_ERR_FORMAT);
    }
    for (int64_t k = 0; k < n; k++)
        ck_assert_int_eq(ssm_model_state_restore(r, 0, buf, k), SSM_ERR_FORMAT);
    unsigned char *longer = tu_alloc((size_t)n + 1, 1);
    memcpy(longer, buf, (size_t)n);
    ck_assert_int_eq(ssm_model_state_restore(r, 0, longer, n + 1), SSM_ERR_FORMAT);
    /* A NaN inside with a matching hash (FNV-1a, 64 bits, over every
     * byte before it; computed here) is still refused. */
    memcpy(bad, buf, (size_t)n);
    const float qnan = NAN;
    memcpy(bad + 64 + 4 * 5, &qnan, 4);
    uint64_t hsh = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n - 8; i++) { hsh ^= bad[i]; hsh *= 0x100000001b3ull; }
    for (int i = 0; i < 8; i++) bad[n - 8 + i] = (unsigned char)(hsh >> (8 * i));
    ck_assert_int_eq(ssm_model_state_restore(r, 0, bad, n), SSM_ERR_FORMAT);
    /* and the same bytes without the NaN are accepted (the hash is right) */
    memcpy(bad, buf, (size_t)n);
    ck_assert_int_eq(ssm_model_state_save(r, 0, after, n, &n2), SSM_OK);
    ck_assert_mem_eq(before, after, (size_t)n);
    ck_assert_int_eq(ssm_model_state_restore(r, 0, NULL, 5), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_restore(r, 3, buf, n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_save(r, 0, NULL, 5, &n2), SSM_ERR_ARG);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.state", dir);
    ck_assert_int_eq(ssm_model_state_restore_file(r, 0, missing), SSM_ERR_IO);
    ck_assert_int_eq(ssm_model_state_save_file(r, 0, "/nonexistent/dir/x.state"), SSM_ERR_IO);

    /* a state of a model with other sizes */
    tiny_model m2;
    char dir2[64];
    ssm_model *model2 = load_variant(&variants[3], &m2, dir2, sizeof dir2);  /* 3 layers */
    ssm_model_state *s2;
    ck_assert_int_eq(ssm_model_state_create(&s2, model2, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_state_restore(s2, 0, buf, n), SSM_ERR_FORMAT);
    ck_assert_int_eq(ssm_model_state_copy(s2, 0, s, 0), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model2, s, 1, 1, tok, NULL), SSM_ERR_ARG);
    ssm_model_state_destroy(s2);
    ssm_model_destroy(model2);
    tiny_free(&m2);
    tu_rm_tree(dir2);

    ssm_model_state_destroy(s);
    ssm_model_state_destroy(r);
    ssm_model_destroy(model);
    free(buf); free(bad); free(before); free(after); free(longer); free(la); free(lb);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Token ids out of range: SSM_ERR_ARG, nothing changed. */
START_TEST(test_bad_tokens)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[0], &m, dir, sizeof dir);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 2), SSM_OK);
    int32_t tok[6] = { 1, 2, 3, 4, 5, 6 };
    ck_assert_int_eq(ssm_model_forward(model, s, 2, 3, tok, NULL), SSM_OK);
    int64_t n;
    ck_assert_int_eq(ssm_model_state_save(s, 1, NULL, 0, &n), SSM_OK);
    unsigned char *b0 = tu_alloc((size_t)n, 1), *b1 = tu_alloc((size_t)n, 1);
    unsigned char *c0 = tu_alloc((size_t)n, 1), *c1 = tu_alloc((size_t)n, 1);
    ck_assert_int_eq(ssm_model_state_save(s, 0, b0, n, &n), SSM_OK);
    ck_assert_int_eq(ssm_model_state_save(s, 1, b1, n, &n), SSM_OK);
    /* 37 and 39 are padded embedding rows: not token ids */
    const int32_t bad_ids[] = { -1, 37, 39, 40, INT32_MAX, INT32_MIN };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
        for (int len = 1; len <= 3; len += 2) {
            int32_t t[6] = { 1, 2, 3, 4, 5, 6 };
            t[2 * len - 1] = bad_ids[i];       /* in the second sequence */
            ck_assert_int_eq(ssm_model_forward(model, s, 2, len, t, NULL), SSM_ERR_ARG);
            ck_assert_int_eq(ssm_model_forward_all(model, s, 2, len, t, (float[6 * 37]){ 0 }),
                             SSM_ERR_ARG);
        }
    ck_assert_int_eq(ssm_model_state_save(s, 0, c0, n, &n), SSM_OK);
    ck_assert_int_eq(ssm_model_state_save(s, 1, c1, n, &n), SSM_OK);
    ck_assert_mem_eq(b0, c0, (size_t)n);
    ck_assert_mem_eq(b1, c1, (size_t)n);
    /* arguments */
    ck_assert_int_eq(ssm_model_forward(NULL, s, 1, 1, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, NULL, 1, 1, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 1, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 0, 1, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, 0, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, -3, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, INT64_MAX, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_forward_all(model, s, 1, 1, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_dims(NULL, NULL, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_dims(model, NULL, NULL, NULL), SSM_OK);
    ssm_model_state *s2 = (ssm_model_state *)&n;
    ck_assert_int_eq(ssm_model_state_create(&s2, model, 0), SSM_ERR_ARG);
    ck_assert_ptr_null(s2);
    ck_assert_int_eq(ssm_model_state_create(&s2, NULL, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_create(NULL, model, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_create(&s2, model, INT64_MAX), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_reset(NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_state_tokens(s, 2, &n), SSM_ERR_ARG);
    ssm_model_info bad_info;
    memset(&bad_info, 0, sizeof bad_info);
    ck_assert_int_eq(ssm_model_get_info(model, &bad_info), SSM_ERR_ARG);
    ssm_model *mm = (ssm_model *)&n;
    ck_assert_int_eq(ssm_model_load(&mm, NULL), SSM_ERR_ARG);
    ck_assert_ptr_null(mm);
    ck_assert_int_eq(ssm_model_load(NULL, dir), SSM_ERR_ARG);
    ssm_model_destroy(NULL);
    ssm_model_state_destroy(NULL);
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    free(b0); free(b1); free(c0); free(c1);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Loads and runs from several threads at once (the config and safetensors
 * JSON go through cJSON, which is not reentrant on its own): every thread
 * gets the single-threaded logits to rounding. */
typedef struct conc_job {
    const char *dir;
    const int32_t *tok;
    int L, V;
    float *out;
    ssm_status st;
} conc_job;

static void *conc_run(void *arg)
{
    conc_job *j = arg;
    ssm_model *m = NULL;
    ssm_model_state *s = NULL;
    for (int rep = 0; rep < 5 && j->st == SSM_OK; rep++) {
        j->st = ssm_model_load(&m, j->dir);
        if (j->st == SSM_OK) j->st = ssm_model_state_create(&s, m, 1);
        if (j->st == SSM_OK) j->st = ssm_model_forward(m, s, 1, j->L, j->tok, j->out);
        ssm_model_state_destroy(s);
        ssm_model_destroy(m);
        s = NULL;
        m = NULL;
    }
    return NULL;
}

START_TEST(test_concurrent)
{
    tiny_model m;
    char dir[64];
    ssm_model *model = load_variant(&variants[7], &m, dir, sizeof dir);
    enum { L = 13, NT = 4 };
    int32_t tok[L];
    tiny_fill_tokens(tok, L, m.V, 17);
    float *ref = tu_alloc((size_t)m.V, sizeof *ref);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 1, L, tok, ref), SSM_OK);
    pthread_t th[NT];
    conc_job jobs[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (conc_job){ dir, tok, L, m.V, tu_alloc((size_t)m.V, sizeof(float)), SSM_OK };
        ck_assert_int_eq(pthread_create(&th[t], NULL, conc_run, &jobs[t]), 0);
    }
    for (int t = 0; t < NT; t++) {
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
        ck_assert_int_eq(jobs[t].st, SSM_OK);
        check_close(jobs[t].out, ref, m.V, logits_bound(&m, L), "thread vs single-threaded run");
        free(jobs[t].out);
    }
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    free(ref);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* ---- bad directories, configs, tensors: table-driven ---- */

typedef enum mut_kind { M_NONE, M_CONFIG, M_DROP, M_SHAPE, M_NAN, M_TRUNC,
                        M_RM } mut_kind;

typedef struct bad_case {
    const char *what;
    int hf;
    mut_kind kind;
    const char *from, *to;   /* M_CONFIG: replace from by to (to NULL: whole config = from) */
    const char *tensor;      /* M_DROP, M_SHAPE, M_NAN */
    int64_t arg;             /* M_TRUNC: bytes kept; M_SHAPE: new dim 0 */
    ssm_status want;
} bad_case;

static const bad_case bad_cases[] = {
    { "no config.json", 0, M_RM, "config.json", NULL, NULL, 0, SSM_ERR_IO },
    { "no weights", 0, M_RM, "model.safetensors", NULL, NULL, 0, SSM_ERR_IO },
    { "empty config", 0, M_CONFIG, "", NULL, NULL, 0, SSM_ERR_FORMAT },
    { "config not JSON", 0, M_CONFIG, "{\"d_model\": 16,", NULL, NULL, 0, SSM_ERR_FORMAT },
    { "config an array", 0, M_CONFIG, "[16, 2, 37]", NULL, NULL, 0, SSM_ERR_FORMAT },
    { "config trailing garbage", 0, M_CONFIG, "}\n", "} x\n", NULL, 0, SSM_ERR_FORMAT },
    { "config neither naming", 0, M_CONFIG, "{\"n_layer\": 2, \"vocab_size\": 37}", NULL, NULL, 0, SSM_ERR_FORMAT },
    { "duplicate key", 0, M_CONFIG, "\"n_layer\": 2,", "\"n_layer\": 2, \"n_layer\": 2,", NULL, 0, SSM_ERR_FORMAT },
    { "duplicate ssm_cfg key", 0, M_CONFIG, "\"d_state\": 4,", "\"d_state\": 4, \"d_state\": 4,", NULL, 0, SSM_ERR_FORMAT },
    { "d_model contradicts", 0, M_CONFIG, "\"d_model\": 16", "\"d_model\": 24", NULL, 0, SSM_ERR_FORMAT },
    { "d_model a string", 0, M_CONFIG, "\"d_model\": 16", "\"d_model\": \"16\"", NULL, 0, SSM_ERR_FORMAT },
    { "d_model fractional", 0, M_CONFIG, "\"d_model\": 16", "\"d_model\": 16.5", NULL, 0, SSM_ERR_FORMAT },
    { "d_model negative", 0, M_CONFIG, "\"d_model\": 16", "\"d_model\": -16", NULL, 0, SSM_ERR_FORMAT },
    { "d_model huge", 0, M_CONFIG, "\"d_model\": 16", "\"d_model\": 1e300", NULL, 0, SSM_ERR_FORMAT },
    { "d_state contradicts", 0, M_CONFIG, "\"d_state\": 4", "\"d_state\": 8", NULL, 0, SSM_ERR_FORMAT },
    { "d_conv contradicts", 0, M_CONFIG, "\"d_conv\": 4", "\"d_conv\": 3", NULL, 0, SSM_ERR_FORMAT },
    { "expand contradicts", 0, M_CONFIG, "\"expand\": 2", "\"expand\": 3", NULL, 0, SSM_ERR_FORMAT },
    { "dt_rank auto = 1, file 3", 0, M_CONFIG, "\"dt_rank\": 3", "\"dt_rank\": \"auto\"", NULL, 0, SSM_ERR_FORMAT },
    { "dt_rank a word", 0, M_CONFIG, "\"dt_rank\": 3", "\"dt_rank\": \"big\"", NULL, 0, SSM_ERR_FORMAT },
    { "more layers than the file", 0, M_CONFIG, "\"n_layer\": 2", "\"n_layer\": 3", NULL, 0, SSM_ERR_FORMAT },
    { "fewer layers than the file", 0, M_CONFIG, "\"n_layer\": 2", "\"n_layer\": 1", NULL, 0, SSM_ERR_FORMAT },
    { "vocab padding contradicts", 0, M_CONFIG, "\"vocab_size\": 37", "\"vocab_size\": 41", NULL, 0, SSM_ERR_FORMAT },
    { "pad multiple contradicts", 0, M_CONFIG, "\"pad_vocab_size_multiple\": 8", "\"pad_vocab_size_multiple\": 16", NULL, 0, SSM_ERR_FORMAT },
    { "Mamba2 layer", 0, M_CONFIG, "\"bias\": false", "\"bias\": false, \"layer\": \"Mamba2\"", NULL, 0, SSM_ERR_FORMAT },
    { "MLP layers", 0, M_CONFIG, "\"n_layer\": 2", "\"n_layer\": 2, \"d_intermediate\": 64", NULL, 0, SSM_ERR_FORMAT },
    { "attention layers", 0, M_CONFIG, "\"n_layer\": 2", "\"n_layer\": 2, \"attn_layer_idx\": [1]", NULL, 0, SSM_ERR_FORMAT },
    { "untied without lm_head", 0, M_CONFIG, "\"tie_embeddings\": true", "\"tie_embeddings\": false", NULL, 0, SSM_ERR_FORMAT },
    { "rms_norm false, no bias", 0, M_CONFIG, "\"rms_norm\": true", "\"rms_norm\": false", NULL, 0, SSM_ERR_FORMAT },
    { "bias true, no biases", 0, M_CONFIG, "\"bias\": false", "\"bias\": true", NULL, 0, SSM_ERR_FORMAT },
    { "bool as number", 0, M_CONFIG, "\"rms_norm\": true", "\"rms_norm\": 1", NULL, 0, SSM_ERR_FORMAT },
    { "HF mamba2 model_type", 1, M_CONFIG, "\"model_type\": \"mamba\"", "\"model_type\": \"mamba2\"", NULL, 0, SSM_ERR_FORMAT },
    { "HF intermediate_size", 1, M_CONFIG, "\"intermediate_size\": 32", "\"intermediate_size\": 48", NULL, 0, SSM_ERR_FORMAT },
    { "HF state_size", 1, M_CONFIG, "\"state_size\": 4", "\"state_size\": 5", NULL, 0, SSM_ERR_FORMAT },
    { "HF conv_kernel", 1, M_CONFIG, "\"conv_kernel\": 4", "\"conv_kernel\": 2", NULL, 0, SSM_ERR_FORMAT },
    { "HF activation", 1, M_CONFIG, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", NULL, 0, SSM_ERR_FORMAT },
    { "HF vocab contradicts", 1, M_CONFIG, "\"vocab_size\": 37", "\"vocab_size\": 40", NULL, 0, SSM_ERR_FORMAT },
    { "HF eps zero", 1, M_CONFIG, "\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": 0", NULL, 0, SSM_ERR_FORMAT },
    { "missing D", 0, M_DROP, NULL, NULL, "backbone.layers.1.mixer.D", 0, SSM_ERR_FORMAT },
    { "missing embedding", 0, M_DROP, NULL, NULL, "backbone.embedding.weight", 0, SSM_ERR_FORMAT },
    { "missing norm_f", 1, M_DROP, NULL, NULL, "backbone.norm_f.weight", 0, SSM_ERR_FORMAT },
    { "missing layer-0 A_log", 0, M_DROP, NULL, NULL, "backbone.layers.0.mixer.A_log", 0, SSM_ERR_FORMAT },
    { "x_proj mis-shaped", 0, M_SHAPE, NULL, NULL, "backbone.layers.1.mixer.x_proj.weight", 10, SSM_ERR_FORMAT },
    { "in_proj mis-shaped", 0, M_SHAPE, NULL, NULL, "backbone.layers.0.mixer.in_proj.weight", 32, SSM_ERR_FORMAT },
    { "conv1d mis-shaped", 1, M_SHAPE, NULL, NULL, "backbone.layers.0.mixer.conv1d.weight", 16, SSM_ERR_FORMAT },
    { "embedding mis-shaped", 1, M_SHAPE, NULL, NULL, "backbone.embeddings.weight", 36, SSM_ERR_FORMAT },
    { "NaN weight", 0, M_NAN, NULL, NULL, "backbone.layers.1.mixer.out_proj.weight", 0, SSM_ERR_FORMAT },
    { "Inf weight", 1, M_NAN, NULL, NULL, "backbone.layers.0.mixer.dt_proj.bias", 1, SSM_ERR_FORMAT },
    { "A_log overflowing exp", 0, M_NAN, NULL, NULL, "backbone.layers.0.mixer.A_log", 2, SSM_ERR_FORMAT },
    { "weights truncated to 0", 0, M_TRUNC, NULL, NULL, NULL, 0, SSM_ERR_FORMAT },
    { "weights truncated to 7", 0, M_TRUNC, NULL, NULL, NULL, 7, SSM_ERR_FORMAT },
    { "weights truncated to 100", 0, M_TRUNC, NULL, NULL, NULL, 100, SSM_ERR_FORMAT },
    { "weights truncated by 1", 0, M_TRUNC, NULL, NULL, NULL, -1, SSM_ERR_FORMAT },
};
#define NBAD ((int)(sizeof bad_cases / sizeof bad_cases[0]))

static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    ck_assert_msg(p != NULL, "'%s' not in the config", from);
    size_t a = (size_t)(p - s), nf = strlen(from), nt = strlen(to), ns = strlen(s);
    char *r = malloc(ns - nf + nt + 1);
    memcpy(r, s, a);
    memcpy(r + a, to, nt);
    memcpy(r + a + nt, p + nf, ns - a - nf + 1);
    return r;
}

START_TEST(test_bad_files)
{
    const bad_case *c = &bad_cases[_i];
    tiny_model m;
    char dir[64], p[256];
    tiny_make(&m, 1, 2, 0, 1, 1, 1, c->hf);
    tu_make_tmpdir(dir, sizeof dir, "ssm_test_model");
    ck_assert_int_eq(tiny_write(&m, dir, SSM_DTYPE_F32, c->hf, 0), 0);
    static tiny_list t;
    if (c->kind == M_RM) {
        snprintf(p, sizeof p, "%s/%s", dir, c->from);
        ck_assert_int_eq(remove(p), 0);
    } else if (c->kind == M_CONFIG) {
        char cfg[2048];
        tiny_config(&m, c->hf, cfg, sizeof cfg, "");
        char *nc = c->to ? replace_once(cfg, c->from, c->to) : strdup(c->from);
        ck_assert_int_eq(tiny_write_text(dir, "config.json", nc), 0);
        free(nc);
    } else if (c->kind == M_TRUNC) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        struct stat sb;
        ck_assert_int_eq(stat(p, &sb), 0);
        ck_assert_int_eq(truncate(p, c->arg >= 0 ? c->arg : sb.st_size + c->arg), 0);
    } else {
        tiny_tensors(&m, SSM_DTYPE_F32, c->hf, 0, &t);
        int k = -1;
        for (int i = 0; i < t.n; i++) if (!strcmp(t.name[i], c->tensor)) k = i;
        ck_assert_msg(k >= 0, "%s not written", c->tensor);
        float *copy = NULL;
        if (c->kind == M_DROP) {
            memmove(&t.d[k], &t.d[k + 1], (size_t)(t.n - k - 1) * sizeof t.d[0]);
            t.n--;
        } else if (c->kind == M_SHAPE) {
            /* same element count where possible is not needed: the data
             * pointer must cover the new shape, so shrink dim 0 only */
            ck_assert(c->arg < t.shape[k][0]);
            t.shape[k][0] = c->arg;
        } else {
            int64_t n = t.shape[k][0] * (t.d[k].ndim > 1 ? t.shape[k][1] : 1) *
                        (t.d[k].ndim > 2 ? t.shape[k][2] : 1);
            copy = malloc((size_t)n * sizeof *copy);
            memcpy(copy, t.d[k].data, (size_t)n * sizeof *copy);
            copy[n / 2] = c->arg == 0 ? NAN : c->arg == 1 ? -INFINITY : 100.0f;
            t.d[k].data = copy;
        }
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        ck_assert_int_eq(ssm_safetensors_write(p, t.n, t.d, 0, NULL, NULL), SSM_OK);
        free(copy);
        tiny_list_free(&t);
    }
    ssm_model *model = (ssm_model *)&m;
    ssm_status st = ssm_model_load(&model, dir);
    ck_assert_msg(st == c->want, "%s: got %s, want %s", c->what, ssm_status_string(st),
                  ssm_status_string(c->want));
    ck_assert_ptr_null(model);
    tiny_free(&m);
    tu_rm_tree(dir);
}
END_TEST

START_TEST(test_missing_dir)
{
    ssm_model *model;
    ck_assert_int_eq(ssm_model_load(&model, "/nonexistent/ssm_model"), SSM_ERR_IO);
    ck_assert_int_eq(ssm_model_load(&model, ""), SSM_ERR_IO);
}
END_TEST

/* ---- sampling against a literal implementation ---- */

/* generation.py's filters written out directly: probabilities in double
 * over an explicit kept[] mask, sorting by repeated selection. */
static void ref_probs(const float *logits, int V, const ssm_sampler_params *p,
                      const int32_t *hist, int nh, double *out)
{
    double l[64];
    int kept[64];
    for (int i = 0; i < V; i++) l[i] = logits[i];
    if (p->repetition_penalty != 1.0) {
        int seen[64] = { 0 };
        for (int j = 0; j < nh; j++) {
            int t = hist[j];
            if (seen[t]) continue;
            seen[t] = 1;
            l[t] = l[t] < 0 ? l[t] * p->repetition_penalty : l[t] / p->repetition_penalty;
        }
    }
    for (int i = 0; i < V; i++) out[i] = 0;
    if (p->top_k == 1 || p->temperature == 0) {
        int b = 0;
        for (int i = 1; i < V; i++) if (l[i] > l[b]) b = i;
        out[b] = 1;
        return;
    }
    for (int i = 0; i < V; i++) kept[i] = 1;
    if (p->top_k > 0 && p->top_k < V) {
        int chosen[64] = { 0 };
        for (int r = 0; r < p->top_k; r++) {
            int b = -1;
            for (int i = 0; i < V; i++)
                if (!chosen[i] && (b < 0 || l[i] > l[b])) b = i;
            chosen[b] = 1;
        }
        for (int i = 0; i < V; i++) kept[i] = chosen[i];
    }
    if (p->min_p > 0) {
        double z = 0, pmax = 0, pr[64];
        for (int i = 0; i < V; i++) if (kept[i]) z += exp(l[i]);
        for (int i = 0; i < V; i++) {
            pr[i] = kept[i] ? exp(l[i]) / z : 0;
            if (pr[i] > pmax) pmax = pr[i];
        }
        for (int i = 0; i < V; i++) if (kept[i] && pr[i] < p->min_p * pmax) kept[i] = 0;
    }
    for (int i = 0; i < V; i++) l[i] /= p->temperature;
    if (p->top_p > 0 && p->top_p < 1) {
        double z = 0, pr[64], cum = 0;
        for (int i = 0; i < V; i++) if (kept[i]) z += exp(l[i]);
        for (int i = 0; i < V; i++) pr[i] = kept[i] ? exp(l[i]) / z : 0;
        int done[64] = { 0 }, remove[64] = { 0 };
        /* ascending probability (ties: higher index first) */
        for (int r = 0; r < V; r++) {
            int b = -1;
            for (int i = 0; i < V; i++)
                if (kept[i] && !done[i] && (b < 0 || pr[i] < pr[b] || (pr[i] == pr[b] && i > b)))
                    b = i;
            if (b < 0) break;
            done[b] = 1;
            cum += pr[b];
            if (cum <= 1 - p->top_p) remove[b] = 1;
        }
        for (int i = 0; i < V; i++) if (remove[i]) kept[i] = 0;
    }
    double z = 0;
    for (int i = 0; i < V; i++) if (kept[i]) z += exp(l[i]);
    for (int i = 0; i < V; i++) out[i] = kept[i] ? exp(l[i]) / z : 0;
}

typedef struct samp_case { double temp; int64_t k; double top_p, min_p, rep; } samp_case;
static const samp_case samp_cases[] = {
    { 1.0, 1, 0, 0, 1 },        /* greedy (generation.py's default) */
    { 0.0, 0, 0, 0, 1 },        /* temperature 0: greedy */
    { 1.0, 0, 0, 0, 1 },        /* plain softmax */
    { 0.7, 0, 0, 0, 1 },
    { 1.3, 5, 0, 0, 1 },        /* top-k, temperature */
    { 1.0, 0, 0.6, 0, 1 },      /* top-p */
    { 0.5, 0, 0.9, 0, 1 },      /* temperature then top-p */
    { 1.0, 4, 0.7, 0, 1 },      /* top-k then top-p */
    { 1.0, 0, 0, 0.2, 1 },      /* min-p */
    { 2.0, 0, 0, 0.05, 1 },     /* min-p before temperature */
    { 1.0, 0, 0, 0, 1.5 },      /* repetition penalty */
    { 0.8, 6, 0.8, 0.1, 1.3 },  /* everything */
    { 1.0, 1, 0, 0, 2.0 },      /* greedy after the penalty */
    { 1.0, 100, 0, 0, 1 },      /* k beyond the vocabulary */
};
#define NSAMP ((int)(sizeof samp_cases / sizeof samp_cases[0]))

START_TEST(test_sampler_filters)
{
    const samp_case *c = &samp_cases[_i];
    enum { V = 23 };
    ssm_sampler_params p;
    ssm_sampler_params_init(&p);
    p.temperature = c->temp; p.top_k = c->k; p.top_p = c->top_p;
    p.min_p = c->min_p; p.repetition_penalty = c->rep;
    ssm_sampler *s;
    ck_assert_int_eq(ssm_sampler_create(&s, &p, V, 42), SSM_OK);
    tiny_rng r = { 99 + (uint64_t)_i };
    const int32_t hist[] = { 3, 7, 3, 0, 22, 7 };
    double worst = 0;
    for (int trial = 0; trial < 50; trial++) {
        float lg[V], pr[V];
        double ref[V];
        for (int i = 0; i < V; i++) lg[i] = (float)(4.0 * tiny_unif(&r) - 2.0);
        ck_assert_int_eq(ssm_sampler_probs(s, lg, hist, 6, pr), SSM_OK);
        ref_probs(lg, V, &p, hist, 6, ref);
        for (int i = 0; i < V; i++) {
            /* both in double; float output: half an ulp of 1 plus the
             * exp/sum rounding of V terms */
            double e = fabs(pr[i] - ref[i]);
            if (e > worst) worst = e;
            ck_assert_msg((pr[i] == 0) == (ref[i] == 0),
                          "case %d trial %d id %d: kept %g vs %g", _i, trial, i, pr[i], ref[i]);
        }
        int32_t tk;
        ck_assert_int_eq(ssm_sampler_sample(s, lg, hist, 6, &tk), SSM_OK);
        ck_assert_msg(tk >= 0 && tk < V && ref[tk] > 0, "drew a removed token %d", tk);
    }
    double bound = 2.0 * FLT_EPSILON;
    printf("sampler case %2d: worst prob error %.2e bound %.2e ratio %.3f\n", _i, worst,
           bound, worst / bound);
    ck_assert(worst <= bound);
    ssm_sampler_destroy(s);
}
END_TEST

/* Hand-computed: top-p 0.8 on probabilities .5 .3 .15 .05 keeps .5 and .3
 * (ascending cumulative .05, .20 <= .2 removed; .50 > .2 kept). */
START_TEST(test_sampler_top_p_closed_form)
{
    const float lg[4] = { logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f) };
    ssm_sampler_params p;
    ssm_sampler_params_init(&p);
    p.top_k = 0;
    p.top_p = 0.8;
    ssm_sampler *s;
    ck_assert_int_eq(ssm_sampler_create(&s, &p, 4, 1), SSM_OK);
    float pr[4];
    ck_assert_int_eq(ssm_sampler_probs(s, lg, NULL, 0, pr), SSM_OK);
    ck_assert_float_eq(pr[0], 0.0f);
    ck_assert_float_eq(pr[2], 0.0f);
    ck_assert(fabs(pr[1] - 0.625) < 1e-6 && fabs(pr[3] - 0.375) < 1e-6);
    ssm_sampler_destroy(s);
}
END_TEST

/* Draw frequencies against the probabilities: 5 standard deviations (the
 * seed is fixed, so this never flakes), and the same seed, same draws. */
START_TEST(test_sampler_draws)
{
    enum { V = 8, NDRAW = 40000 };
    const float lg[V] = { 0.1f, 1.2f, -0.5f, 0.7f, 2.0f, -3.0f, 0.0f, 1.0f };
    ssm_sampler_params p;
    ssm_sampler_params_init(&p);
    p.top_k = 0;
    p.temperature = 0.9;
    p.top_p = 0.95;
    ssm_sampler *s, *s2;
    ck_assert_int_eq(ssm_sampler_create(&s, &p, V, 2024), SSM_OK);
    ck_assert_int_eq(ssm_sampler_create(&s2, &p, V, 2024), SSM_OK);
    double ref[V];
    ref_probs(lg, V, &p, NULL, 0, ref);
    int count[V] = { 0 };
    for (int i = 0; i < NDRAW; i++) {
        int32_t a, b;
        ck_assert_int_eq(ssm_sampler_sample(s, lg, NULL, 0, &a), SSM_OK);
        ck_assert_int_eq(ssm_sampler_sample(s2, lg, NULL, 0, &b), SSM_OK);
        ck_assert_int_eq(a, b);
        count[a]++;
    }
    double worst = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / NDRAW, sd = sqrt(ref[i] * (1 - ref[i]) / NDRAW);
        if (ref[i] == 0) ck_assert_int_eq(count[i], 0);
        else if (fabs(f - ref[i]) / (5 * sd) > worst) worst = fabs(f - ref[i]) / (5 * sd);
    }
    printf("sampler draws: worst |freq - p| / 5 sd = %.3f\n", worst);
    ck_assert(worst <= 1.0);
    /* reseeding repeats the sequence */
    int32_t first[16], again[16];
    ck_assert_int_eq(ssm_sampler_seed(s, 7), SSM_OK);
    for (int i = 0; i < 16; i++) ssm_sampler_sample(s, lg, NULL, 0, &first[i]);
    ck_assert_int_eq(ssm_sampler_seed(s, 7), SSM_OK);
    for (int i = 0; i < 16; i++) ssm_sampler_sample(s, lg, NULL, 0, &again[i]);
    ck_assert_mem_eq(first, again, sizeof first);
    ssm_sampler_destroy(s);
    ssm_sampler_destroy(s2);
}
END_TEST

START_TEST(test_sampler_args)
{
    ssm_sampler_params p;
    ssm_sampler_params_init(&p);
    ssm_sampler *s = (ssm_sampler *)&p;
    ck_assert_int_eq(ssm_sampler_create(&s, &p, 0, 1), SSM_ERR_ARG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(ssm_sampler_create(&s, NULL, 4, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_sampler_create(NULL, &p, 4, 1), SSM_ERR_ARG);
    const struct { double t; int64_t k; double tp, mp, rp; } bad[] = {
        { -1, 0, 0, 0, 1 }, { NAN, 0, 0, 0, 1 }, { INFINITY, 0, 0, 0, 1 },
        { 1, -1, 0, 0, 1 }, { 1, 0, 1.5, 0, 1 }, { 1, 0, NAN, 0, 1 }, { 1, 0, -0.1, 0, 1 },
        { 1, 0, 0, 2, 1 }, { 1, 0, 0, -1, 1 }, { 1, 0, 0, 0, 0 }, { 1, 0, 0, 0, NAN },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssm_sampler_params q = p;
        q.temperature = bad[i].t; q.top_k = bad[i].k; q.top_p = bad[i].tp;
        q.min_p = bad[i].mp; q.repetition_penalty = bad[i].rp;
        ck_assert_int_eq(ssm_sampler_create(&s, &q, 4, 1), SSM_ERR_ARG);
    }
    ssm_sampler_params q = p;
    q.struct_size = 3;
    ck_assert_int_eq(ssm_sampler_create(&s, &q, 4, 1), SSM_ERR_ARG);
    p.top_k = 0;
    ck_assert_int_eq(ssm_sampler_create(&s, &p, 4, 1), SSM_OK);
    float lg[4] = { 0, 1, 2, 3 }, pr[4];
    int32_t t, h[2] = { 1, 4 };
    ck_assert_int_eq(ssm_sampler_sample(s, lg, h, 2, &t), SSM_ERR_ARG);   /* id 4 */
    ck_assert_int_eq(ssm_sampler_sample(s, lg, NULL, 2, &t), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_sampler_sample(s, lg, h, -1, &t), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_sampler_sample(s, NULL, NULL, 0, &t), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_sampler_sample(s, lg, NULL, 0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_sampler_probs(s, lg, NULL, 0, NULL), SSM_ERR_ARG);
    /* no usable logit: NUMERIC; NaN and -inf entries are never drawn */
    float dead[4] = { -INFINITY, NAN, -INFINITY, NAN };
    ck_assert_int_eq(ssm_sampler_sample(s, dead, NULL, 0, &t), SSM_ERR_NUMERIC);
    float part[4] = { NAN, 0.0f, -INFINITY, NAN };
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(ssm_sampler_sample(s, part, NULL, 0, &t), SSM_OK);
        ck_assert_int_eq(t, 1);
    }
    ck_assert_int_eq(ssm_sampler_probs(s, part, NULL, 0, pr), SSM_OK);
    ck_assert_float_eq(pr[1], 1.0f);
    ck_assert_int_eq(ssm_sampler_seed(NULL, 1), SSM_ERR_ARG);
    ssm_sampler_destroy(s);
    ssm_sampler_destroy(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_forward_reference, 0, NVAR);
    tcase_add_test(tc, test_long_prompt);
    tcase_add_test(tc, test_pieces_and_step);
    tcase_add_test(tc, test_batch_and_slots);
    tcase_add_test(tc, test_state_save_restore);
    tcase_add_test(tc, test_bad_tokens);
    tcase_add_test(tc, test_concurrent);
    tcase_add_loop_test(tc, test_bad_files, 0, NBAD);
    tcase_add_test(tc, test_missing_dir);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("sample");
    tcase_add_loop_test(ts, test_sampler_filters, 0, NSAMP);
    tcase_add_test(ts, test_sampler_top_p_closed_form);
    tcase_add_test(ts, test_sampler_draws);
    tcase_add_test(ts, test_sampler_args);
    suite_add_tcase(s, ts);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-tiny")) {
        tiny_model m;
        tiny_make(&m, 1000 + 2 * 7, 2, 0, 1, 1, 1, 0);
        mkdir(argv[2], 0755);
        int rc = tiny_write(&m, argv[2], SSM_DTYPE_F32, 0, 0);
        tiny_free(&m);
        if (rc) fprintf(stderr, "test_model: cannot write %s\n", argv[2]);
        return rc ? 1 : 0;
    }
    return tu_run(suite());
}
