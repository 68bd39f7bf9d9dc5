/* ctest-labels: model */
/*
 * test_model_mamba2.c -- Mamba-2 language models from checkpoint
 * directories (ssm_model_load with ssm_cfg layer "Mamba2" or HF
 * model_type "mamba2").
 *
 *  - tiny checkpoints written here (model2_tiny.h, through the library's
 *    safetensors writer) in both namings, F32 and BF16, tied and untied,
 *    with and without conv bias, D per head or per channel, the three
 *    gated-norm modes, with a dt limit;
 *  - every logit against a literal double-precision Mamba-2 forward
 *    (model2_tiny.h), with a derived bound, ratio printed;
 *  - prompt in pieces == whole, step == forward, slots, saved/restored and
 *    copied state == uninterrupted;
 *  - bad configs and tensors, table-driven: SSM_ERR_FORMAT.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"
#include "tu_files.h"
#include "model2_tiny.h"

#define U32 0x1.0p-24
#define LT 13      /* tokens of the test prompts */

/* Bound on the normwise relative error of float logits against the exact
 * ones.  Per layer the float forward rounds dot products of lengths dm
 * (in_proj), K (conv), N (C . h), di (out_proj) and the group norm's
 * Di/G, each growing like sqrt(n) u (Higham and Mary 2019, probabilistic
 * rounding analysis), a few u for each of silu, exp, softplus, rsqrt (16
 * u together), and the recurrence over L steps: the chunked SSD form
 * (ssm/ssd.h) takes exp of cumulative sums of dt A, whose rounding grows
 * * like sqrt(L) u |dt A| (random rounding), |dt A| <= 8 here after the
 * decay has made older terms negligible: 8 sqrt(L).  The
 * final norm and head add sqrt(dm) u.  Factor 4 for amplification through
 * the block's products. */
static double logits_bound(const tiny2_model *m, int L)
{
    return 4.0 * U32 * (m->nl * (sqrt(m->dm) + sqrt(m->K) + sqrt(m->N) + sqrt(m->di) +
                                 sqrt(m->di / m->G) + 8.0 * sqrt(L) + 16) + sqrt(m->dm));
}

typedef struct variant {
    const char *what;
    ssm_dtype dt;
    int hf, conv_bias, tied, D_hdim, norm, nl;
    double dt_min, dt_max;
} variant;

static const variant variants[] = {
    { "mamba_ssm F32",               SSM_DTYPE_F32,  0, 1, 1, 0, SSM_MAMBA2_NORM_GATED,       2, 0, 0 },
    { "mamba_ssm BF16",              SSM_DTYPE_BF16, 0, 1, 1, 0, SSM_MAMBA2_NORM_GATED,       2, 0, 0 },
    { "mamba_ssm untied D_has_hdim", SSM_DTYPE_F32,  0, 1, 0, 1, SSM_MAMBA2_NORM_GATED,       3, 0, 0 },
    { "mamba_ssm norm_before_gate",  SSM_DTYPE_F32,  0, 0, 1, 0, SSM_MAMBA2_NORM_BEFORE_GATE, 2, 0, 0 },
    { "mamba_ssm no rmsnorm, limit", SSM_DTYPE_F32,  0, 1, 1, 0, SSM_MAMBA2_NORM_NONE,        2, 0.0625, 0.5 },
    { "HF F32 untied",               SSM_DTYPE_F32,  1, 1, 0, 0, SSM_MAMBA2_NORM_GATED,       2, 0, 0 },
    { "HF BF16 tied, limit",         SSM_DTYPE_BF16, 1, 1, 1, 0, SSM_MAMBA2_NORM_GATED,       1, 0.125, 1.0 },
    { "HF F32 no conv bias",         SSM_DTYPE_F32,  1, 0, 0, 0, SSM_MAMBA2_NORM_GATED,       4, 0, 0 },
};
#define NVAR ((int)(sizeof variants / sizeof variants[0]))

static ssm_model *load_variant(const variant *v, tiny2_model *m, char *dir, size_t n)
{
    tiny2_make(m, 2000 + (uint64_t)v->nl * 7 + (uint64_t)v->norm, v->nl, v->conv_bias,
               v->tied, v->D_hdim, v->norm, v->dt_min, v->dt_max, v->hf);
    tu_make_tmpdir(dir, n, "ssm_test_model2");
    ck_assert_int_eq(tiny2_write(m, dir, v->dt, v->hf, NULL, NULL), 0);
    ssm_model *model = NULL;
    ssm_status st = ssm_model_load(&model, dir);
    ck_assert_msg(st == SSM_OK, "%s: load: %s", v->what, ssm_status_string(st));
    return model;
}

/* Relative error of float rows [n][V] against double rows. */
static double row_err(const float *a, const double *ref, int64_t n)
{
    return tu_relerr_f(a, ref, n);
}

START_TEST(test_forward_reference)
{
    const variant *v = &variants[_i];
    tiny2_model m;
    char dir[64];
    ssm_model *model = load_variant(v, &m, dir, sizeof dir);
    ssm_model_info info;
    TINY_CHECK_INFO(model, m, v->hf, &info);
    ck_assert_int_eq(info.d_state, m.N);
    ck_assert_int_eq(info.d_conv, m.K);
    ck_assert_int_gt(info.state_bytes, (int64_t)4 * m.nl * (m.dc * m.K + m.di * m.N));

    int32_t tok[LT];
    tiny_fill_tokens(tok, LT, m.V, 77 + (uint64_t)_i);
    double *ref = tu_alloc((size_t)LT * m.V, sizeof *ref);
    tiny2_reference(&m, LT, tok, ref);
    float *lg = tu_alloc((size_t)LT * m.V, sizeof *lg), *last = tu_alloc((size_t)m.V, sizeof *last);
    ssm_model_state *st;
    ck_assert_int_eq(ssm_model_state_create(&st, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(model, st, 1, LT, tok, lg), SSM_OK);
    double bound = logits_bound(&m, LT);
    double err = row_err(lg, ref, (int64_t)LT * m.V);
    printf("mamba2 model %-28s logits vs double reference: %.3e  bound %.3e  ratio %.3f\n",
           v->what, err, bound, err / bound);
    TU_CHECK_ERR(err, bound, "%s: forward_all", v->what);
    /* forward (last position only) from a reset state */
    ck_assert_int_eq(ssm_model_state_reset(st), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, st, 1, LT, tok, last), SSM_OK);
    TU_CHECK_ERR(row_err(last, ref + (LT - 1) * m.V, m.V), bound, "%s: forward", v->what);
    int64_t nt;
    ck_assert_int_eq(ssm_model_state_tokens(st, 0, &nt), SSM_OK);
    ck_assert_int_eq(nt, LT);

    ssm_model_state_destroy(st);
    free(ref); free(lg); free(last);
    ssm_model_destroy(model);
    tiny2_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Pieces of the prompt (a chunk, single steps, a chunk) == the whole, and
 * every single step == the reference at that position. */
START_TEST(test_pieces_and_step)
{
    const variant *v = &variants[_i];
    tiny2_model m;
    char dir[64];
    ssm_model *model = load_variant(v, &m, dir, sizeof dir);
    int32_t tok[LT];
    tiny_fill_tokens(tok, LT, m.V, 501);
    double *ref = tu_alloc((size_t)LT * m.V, sizeof *ref);
    tiny2_reference(&m, LT, tok, ref);
    float *lg = tu_alloc((size_t)m.V, sizeof *lg);
    ssm_model_state *st;
    ck_assert_int_eq(ssm_model_state_create(&st, model, 1), SSM_OK);
    const int cuts[] = { 0, 5, 6, 7, LT };
    double bound = logits_bound(&m, LT), worst = 0;
    for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++) {
        int a = cuts[c], b = cuts[c + 1];
        ck_assert_int_eq(ssm_model_forward(model, st, 1, b - a, tok + a, lg), SSM_OK);
        double e = row_err(lg, ref + (b - 1) * m.V, m.V);
        if (e > worst) worst = e;
        TU_CHECK_ERR(e, bound, "%s: pieces up to %d", v->what, b);
    }
    /* token by token from the start (step path only) */
    ck_assert_int_eq(ssm_model_state_reset(st), SSM_OK);
    for (int t = 0; t < LT; t++) {
        ck_assert_int_eq(ssm_model_forward(model, st, 1, 1, tok + t, lg), SSM_OK);
        double e = row_err(lg, ref + t * m.V, m.V);
        if (e > worst) worst = e;
        TU_CHECK_ERR(e, bound, "%s: step %d", v->what, t);
    }
    printf("mamba2 model %-28s pieces/steps vs reference: worst %.3e  ratio %.3f\n",
           v->what, worst, worst / bound);
    ssm_model_state_destroy(st);
    free(ref); free(lg);
    ssm_model_destroy(model);
    tiny2_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Slots: two sequences decoded in one call through slots {2, 0}, each ==
 * its own reference; saved/restored and copied slots continue exactly as
 * the uninterrupted run (bit for bit: the same arithmetic). */
START_TEST(test_slots_and_state)
{
    const variant *v = &variants[0];
    tiny2_model m;
    char dir[64];
    ssm_model *model = load_variant(v, &m, dir, sizeof dir);
    const int V = m.V;
    int32_t ta[LT], tb[LT];
    tiny_fill_tokens(ta, LT, V, 11);
    tiny_fill_tokens(tb, LT, V, 12);
    double *ra = tu_alloc((size_t)LT * V, sizeof *ra), *rb = tu_alloc((size_t)LT * V, sizeof *rb);
    tiny2_reference(&m, LT, ta, ra);
    tiny2_reference(&m, LT, tb, rb);
    ssm_model_state *st, *st2;
    ck_assert_int_eq(ssm_model_state_create(&st, model, 3), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&st2, model, 2), SSM_OK);
    float *lg = tu_alloc((size_t)2 * V, sizeof *lg), *l1 = tu_alloc((size_t)V, sizeof *l1);
    const int64_t slots[2] = { 2, 0 };
    const int P = 6;
    /* prompts of P tokens into slots 2 and 0 (one call each) */
    ck_assert_int_eq(ssm_model_forward_slots(model, st, 1, slots, P, ta, lg), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_slots(model, st, 1, slots + 1, P, tb, lg), SSM_OK);
    /* save slot 2 after the prompt */
    int64_t nb;
    ck_assert_int_eq(ssm_model_state_save(st, 2, NULL, 0, &nb), SSM_OK);
    unsigned char *buf = tu_alloc((size_t)nb, 1);
    ck_assert_int_eq(ssm_model_state_save(st, 2, buf, nb, &nb), SSM_OK);
    ck_assert_int_eq(ssm_model_state_copy(st2, 1, st, 0), SSM_OK);
    double bound = logits_bound(&m, LT);
    float *cont = tu_alloc((size_t)LT * V, sizeof *cont);
    for (int t = P; t < LT; t++) {
        int32_t two[2] = { ta[t], tb[t] };
        ck_assert_int_eq(ssm_model_forward_slots(model, st, 2, slots, 1, two, lg), SSM_OK);
        TU_CHECK_ERR(row_err(lg, ra + t * V, V), bound, "slot 2 step %d", t);
        TU_CHECK_ERR(row_err(lg + V, rb + t * V, V), bound, "slot 0 step %d", t);
        memcpy(cont + t * V, lg, (size_t)V * sizeof(float));
        /* the copied slot continues b exactly */
        ck_assert_int_eq(ssm_model_forward_slots(model, st2, 1, (const int64_t[]){ 1 }, 1,
                                                 &tb[t], l1), SSM_OK);
        ck_assert_mem_eq(l1, lg + V, (size_t)V * sizeof(float));
    }
    /* restore into another state's slot 0 and continue a: identical */
    ck_assert_int_eq(ssm_model_state_reset(st2), SSM_OK);
    ck_assert_int_eq(ssm_model_state_restore(st2, 0, buf, nb), SSM_OK);
    int64_t nt;
    ck_assert_int_eq(ssm_model_state_tokens(st2, 0, &nt), SSM_OK);
    ck_assert_int_eq(nt, P);
    for (int t = P; t < LT; t++) {
        ck_assert_int_eq(ssm_model_forward(model, st2, 1, 1, &ta[t], l1), SSM_OK);
        ck_assert_mem_eq(l1, cont + t * V, (size_t)V * sizeof(float));
    }
    /* damaged bytes: FORMAT, slot unchanged */
    buf[nb / 2] ^= 1;
    ck_assert_int_eq(ssm_model_state_restore(st2, 1, buf, nb), SSM_ERR_FORMAT);
    buf[nb / 2] ^= 1;
    ck_assert_int_eq(ssm_model_state_restore(st2, 1, buf, nb - 1), SSM_ERR_FORMAT);
    /* a Mamba-1 state's bytes are refused (kind differs) */
    buf[12] = 1;
    ck_assert_int_eq(ssm_model_state_restore(st2, 1, buf, nb), SSM_ERR_FORMAT);
    /* bad token id: ARG */
    int32_t bad = (int32_t)V;
    ck_assert_int_eq(ssm_model_forward(model, st2, 1, 1, &bad, l1), SSM_ERR_ARG);

    ssm_model_state_destroy(st);
    ssm_model_state_destroy(st2);
    free(ra); free(rb); free(lg); free(l1); free(cont); free(buf);
    ssm_model_destroy(model);
    tiny2_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Long prompt: three 2048-token chunks of run.c (the last short) and the
 * step after it, against the reference. */
START_TEST(test_long_prompt)
{
    const variant *v = &variants[1];
    tiny2_model m;
    char dir[64];
    ssm_model *model = load_variant(v, &m, dir, sizeof dir);
    const int L = 4500;
    int32_t *tok = tu_alloc((size_t)L, sizeof *tok);
    tiny_fill_tokens(tok, L, m.V, 9);
    double *ref = tu_alloc((size_t)L * m.V, sizeof *ref);
    tiny2_reference(&m, L, tok, ref);
    float *lg = tu_alloc((size_t)m.V, sizeof *lg);
    ssm_model_state *st;
    ck_assert_int_eq(ssm_model_state_create(&st, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, st, 1, L - 1, tok, lg), SSM_OK);
    double bound = logits_bound(&m, L);
    double e1 = row_err(lg, ref + (L - 2) * m.V, m.V);
    ck_assert_int_eq(ssm_model_forward(model, st, 1, 1, tok + L - 1, lg), SSM_OK);
    double e2 = row_err(lg, ref + (L - 1) * m.V, m.V);
    printf("mamba2 model long prompt L=%d: %.3e, step after %.3e, bound %.3e, ratio %.3f\n",
           L, e1, e2, bound, (e1 > e2 ? e1 : e2) / bound);
    TU_CHECK_ERR(e1, bound, "long prompt");
    TU_CHECK_ERR(e2, bound, "step after long prompt");
    ssm_model_state_destroy(st);
    free(tok); free(ref); free(lg);
    ssm_model_destroy(model);
    tiny2_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* ---- bad configs and tensors ---- */

typedef struct bad_case {
    const char *what;
    int hf;
    const char *find, *repl;  /* replace find by repl in config.json (NULL: none) */
    const char *extra;   /* appended to ssm_cfg (mamba_ssm) or the top level (HF) */
    const char *top;     /* appended to the top level (mamba_ssm) */
    int nl_file;         /* layers in the file (the config says 2); 0: 2 */
    int drop_dtbias;     /* 1: leave out layer 0's dt_bias */
} bad_case;

static const bad_case bad_cases[] = {
    { "d_ssm < d_inner",      0, NULL, NULL, ", \"d_ssm\": 16", NULL, 0, 0 },
    { "bias",                 0, NULL, NULL, ", \"bias\": true", NULL, 0, 0 },
    { "layer Mamba3",         0, "\"Mamba2\"", "\"Mamba3\"", NULL, NULL, 0, 0 },
    { "headdim 5",            0, "\"headdim\": 8", "\"headdim\": 5", NULL, NULL, 0, 0 },
    { "ngroups 3",            0, "\"ngroups\": 2", "\"ngroups\": 3", NULL, NULL, 0, 0 },
    { "d_state 8 (shapes)",   0, "\"d_state\": 4", "\"d_state\": 8", NULL, NULL, 0, 0 },
    { "d_conv 3 (shapes)",    0, "\"d_conv\": 4", "\"d_conv\": 3", NULL, NULL, 0, 0 },
    { "headdim 16 (shapes)",  0, "\"headdim\": 8", "\"headdim\": 16", NULL, NULL, 0, 0 },
    { "D_has_hdim (shapes)",  0, "\"D_has_hdim\": false", "\"D_has_hdim\": true", NULL, NULL, 0, 0 },
    { "rmsnorm string",       0, "\"rmsnorm\": true", "\"rmsnorm\": \"yes\"", NULL, NULL, 0, 0 },
    { "dt_limit reversed",    0, NULL, NULL, ", \"dt_limit\": [1.0, 0.5]", NULL, 0, 0 },
    { "dt_limit negative",    0, NULL, NULL, ", \"dt_limit\": [-1.0, 0.5]", NULL, 0, 0 },
    { "dt_limit one number",  0, NULL, NULL, ", \"dt_limit\": 0.5", NULL, 0, 0 },
    { "duplicate key",        0, NULL, NULL, ", \"headdim\": 8", NULL, 0, 0 },
    { "LayerNorm residual",   0, "\"rms_norm\": true", "\"rms_norm\": false", NULL, NULL, 0, 0 },
    { "norm_epsilon 1e-6",    0, NULL, NULL, NULL, ", \"norm_epsilon\": 1e-6", 0, 0 },
    { "d_intermediate (MLP)", 0, "\"d_intermediate\": 0", "\"d_intermediate\": 64", NULL, NULL, 0, 0 },
    { "missing layer",        0, NULL, NULL, NULL, NULL, 1, 0 },
    { "extra layer",          0, NULL, NULL, NULL, NULL, 3, 0 },
    { "missing dt_bias",      0, NULL, NULL, NULL, NULL, 0, 1 },
    { "HF heads*head_dim",    1, "\"num_heads\": 4", "\"num_heads\": 8", NULL, NULL, 0, 0 },
    { "HF use_bias",          1, "\"use_bias\": false", "\"use_bias\": true", NULL, NULL, 0, 0 },
    { "HF n_groups 3",        1, "\"n_groups\": 2", "\"n_groups\": 3", NULL, NULL, 0, 0 },
    { "HF n_groups 1 (shapes)", 1, "\"n_groups\": 2", "\"n_groups\": 1", NULL, NULL, 0, 0 },
    { "HF state_size 8",      1, "\"state_size\": 4", "\"state_size\": 8", NULL, NULL, 0, 0 },
    { "HF hidden_act gelu",   1, "\"silu\"", "\"gelu\"", NULL, NULL, 0, 0 },
    { "HF eps 1e-6",          1, "1e-05", "1e-06", NULL, NULL, 0, 0 },
    { "HF intermediate_size", 1, NULL, NULL, ", \"intermediate_size\": 48", NULL, 0, 0 },
    { "HF time_step_limit",   1, NULL, NULL, ", \"time_step_limit\": [0.5]", NULL, 0, 0 },
    { "HF time_step_limit NaN", 1, NULL, NULL, ", \"time_step_limit\": [0.0, NaN]", NULL, 0, 0 },
    { "HF untied, no head",   1, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", NULL, NULL, 0, 0 },
};
#define NBAD ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(test_bad_configs)
{
    const bad_case *b = &bad_cases[_i];
    tiny2_model m;
    char dir[64], cfg[4096], p[600];
    int nlf = b->nl_file ? b->nl_file : 2;
    tiny2_make(&m, 3000, nlf, 1, 1, 0, SSM_MAMBA2_NORM_GATED, 0, 0, b->hf);
    tu_make_tmpdir(dir, sizeof dir, "ssm_test_model2");
    /* the config claims 2 layers whatever the file holds */
    int nl_real = m.nl;
    m.nl = 2;
    tiny2_config(&m, b->hf, cfg, sizeof cfg, b->extra ? b->extra : "", b->top ? b->top : "");
    m.nl = nl_real;
    if (b->find) {
        /* the key exists already: edit its value (a second copy of the key
         * would be refused for that reason alone) */
        char *at = strstr(cfg, b->find);
        ck_assert_msg(at != NULL, "%s: '%s' not in config", b->what, b->find);
        char tail[4096];
        snprintf(tail, sizeof tail, "%s", at + strlen(b->find));
        snprintf(at, sizeof cfg - (size_t)(at - cfg), "%s%s", b->repl, tail);
    }
    ck_assert_int_eq(tiny_write_text(dir, "config.json", cfg), 0);
    static tiny_list t;
    tiny2_tensors(&m, SSM_DTYPE_F32, b->hf, !m.tied, &t);
    if (b->drop_dtbias)
        for (int i = 0; i < t.n; i++)
            if (!strcmp(t.name[i], "backbone.layers.0.mixer.dt_bias")) {
                memmove(&t.d[i], &t.d[i + 1], (size_t)(t.n - i - 1) * sizeof t.d[0]);
                t.n--;
                break;
            }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_int_eq(ssm_safetensors_write(p, t.n, t.d, 0, NULL, NULL), SSM_OK);
    tiny_list_free(&t);
    ssm_model *model = (ssm_model *)1;
    ssm_status st = ssm_model_load(&model, dir);
    ck_assert_msg(st == SSM_ERR_FORMAT, "%s: got %s", b->what, ssm_status_string(st));
    ck_assert_ptr_null(model);
    tiny2_free(&m);
    tu_rm_tree(dir);
}
END_TEST

/* Python's json.dump writes float('inf') as the bare word Infinity, as in
 * Hugging Face Mamba-2 configs ("time_step_limit": [0.0, Infinity]): that
 * config must load and give the bytes of the same model with no limit, and
 * the word inside a string must stay a string. */
START_TEST(test_infinity_limit)
{
    float lg[2][64];
    const char *extra[2] = { ", \"_name_or_path\": \"Infinity\"",
                             ", \"time_step_limit\": [0.0, Infinity], \"_name_or_path\": \"Infinity\"" };
    for (int k = 0; k < 2; k++) {
        tiny2_model m;
        char dir[64], cfg[4096], p[600];
        tiny2_make(&m, 3100, 2, 1, 1, 0, SSM_MAMBA2_NORM_GATED, 0, 0, 1);
        tu_make_tmpdir(dir, sizeof dir, "ssm_test_model2");
        tiny2_config(&m, 1, cfg, sizeof cfg, extra[k], "");
        ck_assert_int_eq(tiny_write_text(dir, "config.json", cfg), 0);
        static tiny_list t;
        tiny2_tensors(&m, SSM_DTYPE_F32, 1, !m.tied, &t);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        ck_assert_int_eq(ssm_safetensors_write(p, t.n, t.d, 0, NULL, NULL), SSM_OK);
        tiny_list_free(&t);
        ssm_model *model = NULL;
        ssm_status st = ssm_model_load(&model, dir);
        ck_assert_msg(st == SSM_OK, "config %d: %s", k, ssm_status_string(st));
        int64_t V = 0;
        ck_assert_int_eq(ssm_model_dims(model, NULL, NULL, &V), SSM_OK);
        ck_assert(V <= 64);
        ssm_model_state *ms = NULL;
        ck_assert_int_eq(ssm_model_state_create(&ms, model, 1), SSM_OK);
        const int32_t toks[5] = { 1, 2, 3, 4, 5 };
        ck_assert_int_eq(ssm_model_forward(model, ms, 1, 5, toks, lg[k]), SSM_OK);
        ssm_model_state_destroy(ms);
        ssm_model_destroy(model);
        tiny2_free(&m);
        tu_rm_tree(dir);
        if (k == 1) {
            int64_t vv = V;
            ck_assert_msg(memcmp(lg[0], lg[1], (size_t)vv * sizeof(float)) == 0,
                          "time_step_limit [0, Infinity] changed the logits");
        }
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("model_mamba2");
    TCase *tc = tcase_create("mamba2");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_forward_reference, 0, NVAR);
    tcase_add_loop_test(tc, test_pieces_and_step, 0, NVAR);
    tcase_add_test(tc, test_slots_and_state);
    tcase_add_test(tc, test_long_prompt);
    tcase_add_loop_test(tc, test_bad_configs, 0, NBAD);
    tcase_add_test(tc, test_infinity_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
