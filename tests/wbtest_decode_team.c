/* ctest-labels: decode;threads */
#define _GNU_SOURCE 1
/*
 * wbtest_decode_team.c -- the decoding steps' one-region-per-step path
 * (src/layers/mamba.c: block_step_team / stack_step_team, used for
 * batches up to 16 once a step has >= 2^18 multiply-adds; smaller steps
 * run the same stages on the calling thread).
 *
 * What must hold (gemv.h, mamba.h): the bits never depend on the thread
 * count, and a sequence gets the same bits alone or in a batch, here also
 * across the two paths (at d_model 64 a batch of 1 runs on the calling
 * thread, a batch of 8 in the region).  Outputs and both states are
 * compared byte for byte over several steps, at 1, 2 and 3 threads.
 * The language model's step (src/models/run.c) has the same structure:
 * its logits are checked the same way on a Mamba-1 checkpoint written
 * here (F32 or BF16 kept in memory); with BF16 weights the region path
 * must also give the bits of the per-product path (batches > 16), which
 * for keep_bf16 on an AVX512_BF16 CPU checks that the region's per-stage
 * BF16 rounding of the activations equals the per-product rounding.
 * A caller's x off the 64-byte boundary must give the bits of an aligned
 * one (the step copies it to aligned rows first).
 * The accuracy of the step against the double reference and the forward
 * is tested in wbtest_mamba.c (its largest block shape takes the region).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ssm.h>
#include "testutil.h"

enum { NSTEP = 6, MAXB = 16 };

static ssm_mamba_stack *make_stack(int64_t dm, int64_t nl, uint64_t seed)
{
    ssm_mamba_config c = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba_stack *stk = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &c, nl, seed), SSM_OK);
    return stk;
}

/* NSTEP steps of batch B from a reset state: outputs [NSTEP][B][dm] into
 * y, then every layer's conv and SSM states appended. */
static int64_t run_steps(ssm_mamba_stack *stk, int64_t dm, int64_t nl, int64_t B,
                         const float *xs, float *y)
{
    ssm_mamba_stack_state *st = NULL;
    ck_assert_int_eq(ssm_mamba_stack_state_create(&st, stk, MAXB), SSM_OK);
    for (int t = 0; t < NSTEP; t++)
        ck_assert_int_eq(ssm_mamba_stack_step(stk, st, B, xs + t * MAXB * dm,
                                              y + t * B * dm), SSM_OK);
    int64_t off = NSTEP * B * dm;
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba_state *ls = NULL;
        ssm_mamba *blk = NULL;
        ssm_mamba_config c;
        ck_assert_int_eq(ssm_mamba_stack_state_layer(st, l, &ls), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_block(stk, l, &blk), SSM_OK);
        ck_assert_int_eq(ssm_mamba_get_config(blk, &c), SSM_OK);
        const int64_t di = c.expand * c.d_model;
        ck_assert_int_eq(ssm_mamba_state_get(ls, B, y + off, y + off + B * di * c.d_conv),
                         SSM_OK);
        off += B * di * (c.d_conv + c.d_state);
    }
    ssm_mamba_stack_state_destroy(st);
    return off;
}

static const struct { int64_t dm, nl; } shapes[] = { { 64, 2 }, { 160, 2 } };
static const int64_t batches[] = { 1, 3, 8, 16 };

START_TEST(stack_step_same_bits_any_threads)
{
    const int64_t dm = shapes[_i].dm, nl = shapes[_i].nl;
    ssm_mamba_stack *stk = make_stack(dm, nl, 7 + (uint64_t)_i);
    tu_rng g = { 11 };
    float *xs = tu_alloc((size_t)(NSTEP * MAXB * dm), sizeof *xs);
    tu_fill_normal_f(&g, xs, NSTEP * MAXB * dm, 1.0);
    /* outputs + states: at most NSTEP B dm + nl B Di (K + N) floats */
    const size_t cap = (size_t)(NSTEP * MAXB * dm + nl * MAXB * 2 * dm * 20);
    float *ref = tu_alloc(cap, sizeof *ref), *got = tu_alloc(cap, sizeof *got);
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        const int64_t B = batches[bi];
        tu_set_threads(1);
        const int64_t cnt = run_steps(stk, dm, nl, B, xs, ref);
        for (int th = 2; th <= 3; th++) {
            tu_set_threads(th);
            ck_assert_int_eq(run_steps(stk, dm, nl, B, xs, got), cnt);
            ck_assert_msg(memcmp(ref, got, (size_t)cnt * sizeof *ref) == 0,
                          "dm %lld B %lld: %d threads differ from 1 (rel %.3e)",
                          (long long)dm, (long long)B, th, tu_relerr_ff(got, ref, cnt));
        }
    }
    tu_set_threads(1);
    free(ref); free(got); free(xs);
    ssm_mamba_stack_destroy(stk);
}
END_TEST

/* Each sequence of a batch of B run alone (batch 1, its own state) gives
 * the bytes it gets in the batch, at 2 threads. */
START_TEST(stack_step_alone_equals_batch)
{
    const int64_t dm = shapes[_i].dm, nl = shapes[_i].nl, B = 8;
    ssm_mamba_stack *stk = make_stack(dm, nl, 21 + (uint64_t)_i);
    tu_rng g = { 12 };
    tu_set_threads(2);
    float *xs = tu_alloc((size_t)(NSTEP * MAXB * dm), sizeof *xs);
    float *x1 = tu_alloc((size_t)(NSTEP * MAXB * dm), sizeof *x1);
    tu_fill_normal_f(&g, xs, NSTEP * MAXB * dm, 1.0);
    const size_t cap = (size_t)(NSTEP * MAXB * dm + nl * MAXB * 2 * dm * 20);
    float *yb = tu_alloc(cap, sizeof *yb), *y1 = tu_alloc(cap, sizeof *y1);
    run_steps(stk, dm, nl, B, xs, yb);
    for (int64_t b = 0; b < B; b++) {
        for (int t = 0; t < NSTEP; t++)
            memcpy(x1 + t * MAXB * dm, xs + (t * MAXB + b) * dm, (size_t)dm * sizeof *xs);
        run_steps(stk, dm, nl, 1, x1, y1);
        for (int t = 0; t < NSTEP; t++)
            ck_assert_msg(memcmp(y1 + t * dm, yb + (t * B + b) * dm,
                                 (size_t)dm * sizeof *y1) == 0,
                          "dm %lld: sequence %lld step %d alone differs from the batch",
                          (long long)dm, (long long)b, t);
    }
    tu_set_threads(1);
    free(xs); free(x1); free(yb); free(y1);
    ssm_mamba_stack_destroy(stk);
}
END_TEST

/* The single block step (ssm_mamba_step): the same bits at 1, 2, 3
 * threads, batch 1 and 8 (the region at d_model 160). */
/* NSTEP steps of batch B from a fresh state (inputs xs, step t at
 * xs + t * xstride) into y: the outputs, then the conv and SSM states;
 * returns how many floats that is. */
static int64_t block_steps(const ssm_mamba *blk, const ssm_mamba_config *c, int64_t B,
                           const float *xs, int64_t xstride, float *y)
{
    const int64_t dm = c->d_model, di = c->expand * dm;
    ssm_mamba_state *st = NULL;
    ck_assert_int_eq(ssm_mamba_state_create(&st, blk, B), SSM_OK);
    for (int t = 0; t < NSTEP; t++)
        ck_assert_int_eq(ssm_mamba_step(blk, st, B, xs + t * xstride, y + t * B * dm), SSM_OK);
    float *s = y + NSTEP * B * dm;
    ck_assert_int_eq(ssm_mamba_state_get(st, B, s, s + B * di * c->d_conv), SSM_OK);
    ssm_mamba_state_destroy(st);
    return NSTEP * B * dm + B * di * (c->d_conv + c->d_state);
}

START_TEST(block_step_same_bits_any_threads)
{
    const int64_t dm = 160;
    ssm_mamba_config c = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba *blk = NULL;
    ck_assert_int_eq(ssm_mamba_create(&blk, &c, 5), SSM_OK);
    ck_assert_int_eq(ssm_mamba_get_config(blk, &c), SSM_OK);
    const int64_t di = c.expand * dm, nst = MAXB * di * (c.d_conv + c.d_state);
    tu_rng g = { 13 };
    float *xs = tu_alloc((size_t)(NSTEP * MAXB * dm), sizeof *xs);
    tu_fill_normal_f(&g, xs, NSTEP * MAXB * dm, 1.0);
    float *ref = tu_alloc((size_t)(NSTEP * MAXB * dm + nst), sizeof *ref);
    float *got = tu_alloc((size_t)(NSTEP * MAXB * dm + nst), sizeof *got);
    for (int64_t B = 1; B <= 8; B += 7) {
        for (int th = 1; th <= 3; th++) {
            tu_set_threads(th);
            const int64_t cnt = block_steps(blk, &c, B, xs, MAXB * dm, th == 1 ? ref : got);
            if (th > 1)
                ck_assert_msg(memcmp(ref, got, (size_t)cnt * sizeof *ref) == 0,
                              "block step B %lld: %d threads differ from 1", (long long)B, th);
        }
    }
    tu_set_threads(1);
    free(xs); free(ref); free(got);
    ssm_mamba_destroy(blk);
}
END_TEST

/* A caller's x off the 64-byte boundary goes through an aligned copy
 * (mamba.c: step_rows_aligned, into the step's ys rows before the scan
 * writes them): outputs and states must keep the bits of an aligned x,
 * and x must stay untouched, at a batch run on the calling thread (1)
 * and one in the region (8). */
START_TEST(block_step_unaligned_input_same_bits)
{
    const int64_t dm = 160;
    ssm_mamba_config c = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba *blk = NULL;
    ck_assert_int_eq(ssm_mamba_create(&blk, &c, 6), SSM_OK);
    ck_assert_int_eq(ssm_mamba_get_config(blk, &c), SSM_OK);
    const int64_t di = c.expand * dm, n = NSTEP * 8 * dm;
    const int64_t nst = 8 * di * (c.d_conv + c.d_state);
    tu_rng g = { 17 };
    float *base = aligned_alloc(64, (size_t)(n + 64) * sizeof(float));
    ck_assert_ptr_nonnull(base);
    float *ref = tu_alloc((size_t)(n + nst), sizeof *ref);
    float *got = tu_alloc((size_t)(n + nst), sizeof *got);
    float *keep = tu_alloc((size_t)n, sizeof *keep);
    tu_fill_normal_f(&g, keep, n, 1.0);
    tu_set_threads(2);
    for (int64_t B = 1; B <= 8; B += 7) {
        for (int off = 0; off <= 5; off += 1) {   /* 0 (the reference) .. 20 bytes */
            float *xs = base + off;
            memcpy(xs, keep, (size_t)n * sizeof *xs);
            const int64_t cnt = block_steps(blk, &c, B, xs, B * dm, off ? got : ref);
            ck_assert_msg(memcmp(xs, keep, (size_t)n * sizeof *xs) == 0,
                          "block step B %lld: x at +%d floats was written", (long long)B, off);
            if (off)
                ck_assert_msg(memcmp(ref, got, (size_t)cnt * sizeof *ref) == 0,
                              "block step B %lld: x at +%d floats differs from aligned x",
                              (long long)B, off);
        }
    }
    tu_set_threads(1);
    free(base); free(ref); free(got); free(keep);
    ssm_mamba_destroy(blk);
}
END_TEST

/* ---- language model step (src/models/run.c) ---- */

/* A random Mamba-1 checkpoint (d_model dm, 2 layers, vocab V, tied
 * embedding), every tensor in dtype; 0 on success. */
static int write_model(const char *dir, int dm, int V, ssm_dtype dt)
{
    const int nl = 2, di = 2 * dm, ns = 16, kc = 4, rk = (dm + 15) / 16;
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f, "{\"d_model\": %d, \"n_layer\": %d, \"vocab_size\": %d, \"ssm_cfg\": {},\n"
               " \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
               " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": true}\n", dm, nl, V);
    fclose(f);
    enum { NT = 2 + 10 * 2 };
    ssm_tensor_desc d[NT];
    void *bufs[NT] = { 0 };
    int64_t shapes[NT][3];
    char names[NT][96];
    int k = 0, bad = 0;
    tu_rng g = { 4321 };
    const int Vp = (V + 7) / 8 * 8;
#define ADD(nm, nd, a, b, c, lo, hi) do {                                       \
        int64_t cnt_ = (int64_t)(a) * (nd > 1 ? (b) : 1) * (nd > 2 ? (c) : 1);  \
        snprintf(names[k], sizeof names[k], "%s", nm);                         \
        shapes[k][0] = a; shapes[k][1] = b; shapes[k][2] = c;                  \
        bufs[k] = tu_alloc((size_t)cnt_, 4);                                   \
        for (int64_t i_ = 0; i_ < cnt_; i_++) {                                \
            float v_ = (float)tu_range(&g, lo, hi);                            \
            if (dt == SSM_DTYPE_BF16) {                                        \
                uint32_t u_; memcpy(&u_, &v_, 4);                              \
                ((uint16_t *)bufs[k])[i_] = (uint16_t)(u_ >> 16);              \
            } else {                                                           \
                ((float *)bufs[k])[i_] = v_;                                   \
            }                                                                  \
        }                                                                      \
        d[k] = (ssm_tensor_desc){ names[k], dt, nd, shapes[k], bufs[k] };     \
        k++; } while (0)
    char nm[96];
    ADD("backbone.embedding.weight", 2, Vp, dm, 1, -0.5, 0.5);
    ADD("backbone.norm_f.weight", 1, dm, 1, 1, 0.9, 1.1);
    for (int l = 0; l < nl; l++) {
#define L(s) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, s), nm)
        ADD(L("norm.weight"), 1, dm, 1, 1, 0.9, 1.1);
        ADD(L("mixer.in_proj.weight"), 2, 2 * di, dm, 1, -0.15, 0.15);
        ADD(L("mixer.conv1d.weight"), 3, di, 1, kc, -0.5, 0.5);
        ADD(L("mixer.conv1d.bias"), 1, di, 1, 1, -0.1, 0.1);
        ADD(L("mixer.x_proj.weight"), 2, rk + 2 * ns, di, 1, -0.1, 0.1);
        ADD(L("mixer.dt_proj.weight"), 2, di, rk, 1, -0.3, 0.3);
        ADD(L("mixer.dt_proj.bias"), 1, di, 1, 1, -4.0, -2.0);
        ADD(L("mixer.A_log"), 2, di, ns, 1, 0.0, 2.77);
        ADD(L("mixer.D"), 1, di, 1, 1, 0.5, 1.5);
        ADD(L("mixer.out_proj.weight"), 2, dm, di, 1, -0.1, 0.1);
#undef L
    }
#undef ADD
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    bad = ssm_safetensors_write(p, k, d, 0, NULL, NULL) != SSM_OK;
    for (int i = 0; i < k; i++) free(bufs[i]);
    return bad ? -1 : 0;
}

static void rm_model(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir); unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir); unlink(p);
    rmdir(dir);
}

/* NSTEP steps of batch B (tokens tok[t][b]) from a reset state: logits
 * [NSTEP][B][V] into lg. */
static void model_steps(const ssm_model *m, int64_t B, int V, const int32_t *tok, float *lg)
{
    ssm_model_state *st = NULL;
    ck_assert_int_eq(ssm_model_state_create(&st, m, MAXB), SSM_OK);
    for (int t = 0; t < NSTEP; t++)
        ck_assert_int_eq(ssm_model_forward(m, st, B, 1, tok + t * MAXB, lg + t * B * V),
                         SSM_OK);
    ssm_model_state_destroy(st);
}

/* As model_steps with a batch of B from a state of B slots, tokens
 * tok[t][b] of stride ld: B > 16 takes the per-product step (one OpenMP
 * region a product) instead of the one-region path. */
static void model_steps_wide(const ssm_model *m, int64_t B, int64_t ld, const int32_t *tok,
                             int V, float *lg)
{
    ssm_model_state *st = NULL;
    ck_assert_int_eq(ssm_model_state_create(&st, m, B), SSM_OK);
    for (int t = 0; t < NSTEP; t++)
        ck_assert_int_eq(ssm_model_forward(m, st, B, 1, tok + t * ld, lg + t * B * V), SSM_OK);
    ssm_model_state_destroy(st);
}

/* d_model 64: batch 1 runs on the calling thread, batch 8 in the region;
 * d_model 128: both in the region.  F32 and BF16 weights. */
START_TEST(model_step_same_bits)
{
    const int dm = _i / 2 ? 128 : 64, V = 500;
    const ssm_dtype dt = _i % 2 ? SSM_DTYPE_BF16 : SSM_DTYPE_F32;
    char dir[] = "/tmp/wbtest_decode_team_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(write_model(dir, dm, V, dt), 0);
    ssm_model *m = NULL;
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    ck_assert_int_eq(ssm_model_load_ex(&m, dir, &o), SSM_OK);
    int32_t tok[NSTEP * MAXB];
    for (int i = 0; i < NSTEP * MAXB; i++) tok[i] = (int32_t)((i * 7919 + 13) % V);
    const int64_t B = 8;
    float *ref = tu_alloc((size_t)(NSTEP * B * V), 4), *got = tu_alloc((size_t)(NSTEP * B * V), 4);
    tu_set_threads(1);
    model_steps(m, B, V, tok, ref);
    for (int th = 2; th <= 3; th++) {
        tu_set_threads(th);
        model_steps(m, B, V, tok, got);
        ck_assert_msg(memcmp(ref, got, (size_t)(NSTEP * B * V) * 4) == 0,
                      "LM step dm %d %s: %d threads differ from 1 (rel %.3e)", dm,
                      _i % 2 ? "bf16" : "f32", th, tu_relerr_ff(got, ref, NSTEP * B * V));
    }
    /* each sequence alone (batch 1) vs in the batch, at 2 threads */
    tu_set_threads(2);
    int32_t t1[NSTEP * MAXB];
    for (int64_t b = 0; b < B; b++) {
        for (int t = 0; t < NSTEP; t++) t1[t * MAXB] = tok[t * MAXB + b];
        model_steps(m, 1, V, t1, got);
        for (int t = 0; t < NSTEP; t++)
            ck_assert_msg(memcmp(got + t * V, ref + (t * B + b) * V, (size_t)V * 4) == 0,
                          "LM step dm %d: sequence %lld step %d alone differs from the batch",
                          dm, (long long)b, t);
    }
    /* BF16 weights always take the row kernels, whose bits do not depend
     * on the batch grouping (gemv.h, gemv_bf16dp.h; with keep_bf16 on an
     * AVX512_BF16 CPU the vdpbf16ps one, activations rounded to BF16 by
     * each stage of the region, by each product on the other path): a
     * batch of WB > 16 runs the per-product path, and every sequence in it
     * must have the bits of the region path's batch of 8. */
    if (dt == SSM_DTYPE_BF16) {
        enum { WB = 20 };
        int32_t tw[NSTEP * WB];
        for (int t = 0; t < NSTEP; t++)
            for (int b = 0; b < WB; b++)
                tw[t * WB + b] = b < B ? tok[t * MAXB + b] : (int32_t)((t * 31 + b * 17) % V);
        float *wide = tu_alloc((size_t)(NSTEP * WB * V), 4);
        for (int th = 1; th <= 3; th += 2) {
            tu_set_threads(th);
            model_steps_wide(m, WB, WB, tw, V, wide);
            for (int t = 0; t < NSTEP; t++)
                for (int64_t b = 0; b < B; b++)
                    ck_assert_msg(memcmp(wide + (t * WB + b) * V, ref + (t * B + b) * V,
                                         (size_t)V * 4) == 0,
                                  "LM step dm %d bf16: per-product path (batch %d, %d threads) "
                                  "differs from the region path, sequence %lld step %d (rel %.3e)",
                                  dm, (int)WB, th, (long long)b, t,
                                  tu_relerr_ff(wide + (t * WB + b) * V, ref + (t * B + b) * V, V));
        }
        free(wide);
    }
    tu_set_threads(1);
    free(ref); free(got);
    ssm_model_destroy(m);
    rm_model(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decode_team");
    TCase *tc = tcase_create("decode_team");
    tcase_set_timeout(tc, 120);
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    tcase_add_loop_test(tc, stack_step_same_bits_any_threads, 0, ns);
    tcase_add_loop_test(tc, stack_step_alone_equals_batch, 0, ns);
    tcase_add_test(tc, block_step_same_bits_any_threads);
    tcase_add_test(tc, block_step_unaligned_input_same_bits);
    tcase_add_loop_test(tc, model_step_same_bits, 0, 4);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
