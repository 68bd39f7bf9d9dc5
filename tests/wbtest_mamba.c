/* ctest-labels: scan;mamba */
/*
 * test_mamba.c -- the Mamba block and the residual stack (include/ssm/mamba.h).
 *
 * References: a literal double-precision implementation of every stage
 * written below (projections as plain loops, the causal conv, silu,
 * softplus, its own selective-scan loop, RMSNorm), fed with the block's own
 * float parameters read back through ssm_mamba_get_param.
 *
 * Tolerance (normwise relative error of the float output against the double
 * reference).  Each stage is a float reduction of length Dm (in_proj), K
 * (conv), Di (x_proj, out_proj), R (dt_proj), N (the scan's C h) or a
 * recurrence of L steps (each step rounds h by a few ulps, errors add up
 * linearly along t at worst), plus a few ulps per elementwise exp/log1p.
 * The classical bound of a float dot product of length n is n*u*sum|terms|
 * (worst case, every rounding in the same direction).  The roundings of a
 * float sum of random-sign terms are independent and their errors add as
 * a random walk: probabilistic rounding error analysis (Higham and Mary
 * 2019) gives |error| <= lambda sqrt(n) u |result| with probability at
 * least 1 - 2 exp(-lambda^2 / 2).  The stages chain (each one's relative
 * error passes through the next with O(1) condition: silu, softplus, exp
 * of a negative argument, a normalised projection), so their reduction
 * lengths add:
 *    tol = 6 * u * sqrt(Dm + Di + R + N + K + L + 16),  u = FLT_EPSILON / 2,
 * lambda = 6 (the earlier worst-case form 8 u (Dm + ... + 16) gave ratios
 * of 1e-3 to 6e-3).  Forward vs step differ only in GEMM-vs-GEMV reduction
 * order: the same bound applies.  A stack of nl layers: nl times the block
 * tolerance (each residual layer adds its own).
 */
#include <ssm.h>
#include "testutil.h"
#include "layers/layers_internal.h"

#define U_F (FLT_EPSILON / 2.0)

/* TU_CHECK_ERR, also printing every measured error when SSM_TEST_VERBOSE
 * is set (for the notes and the README). */
#define CHECK_ERR(err, tol, ...) do { \
    double ce_e_ = (err), ce_t_ = (tol); \
    if (getenv("SSM_TEST_VERBOSE")) { \
        fprintf(stderr, "  error %.3e  tol %.3e  ", ce_e_, ce_t_); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
    TU_CHECK_ERR(ce_e_, ce_t_, __VA_ARGS__); } while (0)

static double block_tol(int64_t dm, int64_t di, int64_t r, int64_t n,
                        int64_t k, int64_t L)
{
    return 6.0 * U_F * sqrt((double)(dm + di + r + n + k + L + 16));
}

/* ------------------------------------------------------------------ */
/* double-precision reference                                         */

typedef struct refblk {
    int64_t dm, di, n, k, r;
    double *p[SSM_MAMBA_NPARAMS];
} refblk;

static void ref_load(refblk *rb, const ssm_mamba *blk)
{
    ssm_mamba_config c;
    ck_assert_int_eq(ssm_mamba_get_config(blk, &c), SSM_OK);
    rb->dm = c.d_model; rb->di = c.expand * c.d_model; rb->n = c.d_state;
    rb->k = c.d_conv; rb->r = c.dt_rank;
    for (int p = 0; p < SSM_MAMBA_NPARAMS; p++) {
        int64_t cnt;
        ck_assert_int_eq(ssm_mamba_param_count(blk, (ssm_mamba_param)p, &cnt), SSM_OK);
        float *f = tu_alloc((size_t)cnt, sizeof *f);
        ck_assert_int_eq(ssm_mamba_get_param(blk, (ssm_mamba_param)p, f, cnt), SSM_OK);
        rb->p[p] = tu_alloc((size_t)cnt, sizeof(double));
        for (int64_t i = 0; i < cnt; i++)
            rb->p[p][i] = f[i];
        free(f);
    }
}

static void ref_free(refblk *rb)
{
    for (int p = 0; p < SSM_MAMBA_NPARAMS; p++)
        free(rb->p[p]);
}

static double ref_silu(double v) { return v / (1.0 + exp(-v)); }
static double ref_softplus(double v) { return v > 20.0 ? v : log1p(exp(v)); }

/* y [B][L][Dm] = block(x [B][L][Dm]) from zero state, every stage literal. */
static void ref_block(const refblk *m, int64_t B, int64_t L, const double *x,
                      double *y)
{
    const int64_t dm = m->dm, di = m->di, n = m->n, k = m->k, r = m->r;
    const double *win = m->p[SSM_MAMBA_IN_PROJ], *cw = m->p[SSM_MAMBA_CONV_W],
                 *cb = m->p[SSM_MAMBA_CONV_B], *wx = m->p[SSM_MAMBA_X_PROJ],
                 *wdt = m->p[SSM_MAMBA_DT_PROJ_W], *bdt = m->p[SSM_MAMBA_DT_PROJ_B],
                 *alog = m->p[SSM_MAMBA_A_LOG], *D = m->p[SSM_MAMBA_D],
                 *wo = m->p[SSM_MAMBA_OUT_PROJ];
    double *xi = tu_alloc((size_t)(L * di), sizeof *xi);
    double *z = tu_alloc((size_t)(L * di), sizeof *z);
    double *u = tu_alloc((size_t)(L * di), sizeof *u);
    double *xd = tu_alloc((size_t)(L * (r + 2 * n)), sizeof *xd);
    double *dl = tu_alloc((size_t)(L * di), sizeof *dl);
    double *ys = tu_alloc((size_t)(L * di), sizeof *ys);
    double *h = tu_alloc((size_t)(di * n), sizeof *h);
    for (int64_t b = 0; b < B; b++) {
        const double *xb = x + b * L * dm;
        for (int64_t t = 0; t < L; t++)          /* in_proj */
            for (int64_t d = 0; d < 2 * di; d++) {
                double s = 0;
                for (int64_t j = 0; j < dm; j++)
                    s += win[d * dm + j] * xb[t * dm + j];
                if (d < di) xi[t * di + d] = s; else z[t * di + d - di] = s;
            }
        for (int64_t t = 0; t < L; t++)          /* causal conv + silu */
            for (int64_t d = 0; d < di; d++) {
                double s = cb[d];
                for (int64_t j = 0; j < k; j++) {
                    int64_t src = t - (k - 1) + j;   /* tap k-1: newest */
                    if (src >= 0)
                        s += cw[d * k + j] * xi[src * di + d];
                }
                u[t * di + d] = ref_silu(s);
            }
        for (int64_t t = 0; t < L; t++)          /* x_proj */
            for (int64_t i = 0; i < r + 2 * n; i++) {
                double s = 0;
                for (int64_t d = 0; d < di; d++)
                    s += wx[i * di + d] * u[t * di + d];
                xd[t * (r + 2 * n) + i] = s;
            }
        for (int64_t t = 0; t < L; t++)          /* dt_proj (no bias) */
            for (int64_t d = 0; d < di; d++) {
                double s = 0;
                for (int64_t i = 0; i < r; i++)
                    s += wdt[d * r + i] * xd[t * (r + 2 * n) + i];
                dl[t * di + d] = s;
            }
        memset(h, 0, (size_t)(di * n) * sizeof *h);   /* selective scan */
        for (int64_t t = 0; t < L; t++) {
            const double *Bt = xd + t * (r + 2 * n) + r, *Ct = Bt + n;
            for (int64_t d = 0; d < di; d++) {
                double dt = ref_softplus(dl[t * di + d] + bdt[d]);
                double uu = u[t * di + d], s = 0;
                for (int64_t j = 0; j < n; j++) {
                    double A = -exp(alog[d * n + j]);
                    h[d * n + j] = exp(dt * A) * h[d * n + j] + dt * Bt[j] * uu;
                    s += Ct[j] * h[d * n + j];
                }
                s += D[d] * uu;
                ys[t * di + d] = s * ref_silu(z[t * di + d]);
            }
        }
        for (int64_t t = 0; t < L; t++)          /* out_proj */
            for (int64_t j = 0; j < dm; j++) {
                double s = 0;
                for (int64_t d = 0; d < di; d++)
                    s += wo[j * di + d] * ys[t * di + d];
                y[(b * L + t) * dm + j] = s;
            }
    }
    free(xi); free(z); free(u); free(xd); free(dl); free(ys); free(h);
}

static void ref_rmsnorm(int64_t rows, int64_t dm, const double *in,
                        double *out, const float *w)
{
    for (int64_t i = 0; i < rows; i++) {
        double ss = 0;
        for (int64_t j = 0; j < dm; j++)
            ss += in[i * dm + j] * in[i * dm + j];
        double sc = 1.0 / sqrt(ss / (double)dm + 1e-5);
        for (int64_t j = 0; j < dm; j++)
            out[i * dm + j] = in[i * dm + j] * sc * w[j];
    }
}

/* Stack reference: h = x; h += block_l(rmsnorm_l(h)); y = rmsnorm_f(h). */
static void ref_stack(ssm_mamba_stack *stk, int64_t B, int64_t L,
                      const float *xf, double *y)
{
    int64_t nl;
    ck_assert_int_eq(ssm_mamba_stack_layers(stk, &nl), SSM_OK);
    ssm_mamba *b0;
    ck_assert_int_eq(ssm_mamba_stack_block(stk, 0, &b0), SSM_OK);
    ssm_mamba_config c;
    ssm_mamba_get_config(b0, &c);
    int64_t dm = c.d_model, cnt = B * L * dm;
    double *h = tu_alloc((size_t)cnt, sizeof *h);
    double *nr = tu_alloc((size_t)cnt, sizeof *nr);
    double *o = tu_alloc((size_t)cnt, sizeof *o);
    float *w = tu_alloc((size_t)dm, sizeof *w);
    for (int64_t i = 0; i < cnt; i++)
        h[i] = xf[i];
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba *bl;
        refblk rb;
        ck_assert_int_eq(ssm_mamba_stack_block(stk, l, &bl), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_get_norm(stk, l, w, dm), SSM_OK);
        ref_load(&rb, bl);
        ref_rmsnorm(B * L, dm, h, nr, w);
        ref_block(&rb, B, L, nr, o);
        for (int64_t i = 0; i < cnt; i++)
            h[i] += o[i];
        ref_free(&rb);
    }
    ck_assert_int_eq(ssm_mamba_stack_get_norm(stk, nl, w, dm), SSM_OK);
    ref_rmsnorm(B * L, dm, h, y, w);
    free(h); free(nr); free(o); free(w);
}

/* ------------------------------------------------------------------ */
/* helpers                                                            */

/* Parameters away from the defaults, so every stage matters: D ~ N(0,1),
 * A_log ~ U(-1, 2), dt bias ~ U(-4, 1) (dt from ~0.02 to ~1.3), conv and
 * out_proj re-drawn at O(1) scale. */
static void randomize(ssm_mamba *blk, uint64_t seed)
{
    tu_rng g = { seed };
    ssm_mamba_param which[] = { SSM_MAMBA_D, SSM_MAMBA_A_LOG,
                                SSM_MAMBA_DT_PROJ_B, SSM_MAMBA_CONV_W,
                                SSM_MAMBA_CONV_B };
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        int64_t cnt;
        ck_assert_int_eq(ssm_mamba_param_count(blk, which[i], &cnt), SSM_OK);
        float *f = tu_alloc((size_t)cnt, sizeof *f);
        for (int64_t j = 0; j < cnt; j++) {
            switch (which[i]) {
            case SSM_MAMBA_D: f[j] = (float)tu_normal(&g); break;
            case SSM_MAMBA_A_LOG: f[j] = (float)tu_range(&g, -1, 2); break;
            case SSM_MAMBA_DT_PROJ_B: f[j] = (float)tu_range(&g, -4, 1); break;
            default: f[j] = (float)tu_range(&g, -0.7, 0.7); break;
            }
        }
        ck_assert_int_eq(ssm_mamba_set_param(blk, which[i], f, cnt), SSM_OK);
        free(f);
    }
}

typedef struct shape {
    int64_t dm, n, k, expand, r, B, L;
} shape;

static const shape block_shapes[] = {
    { 4, 0, 0, 0, 0, 1, 5 },        /* defaults: Di 8, N 16, K 4, R 1 */
    { 6, 3, 2, 1, 2, 2, 3 },        /* L < K */
    { 5, 2, 1, 3, 0, 3, 7 },        /* K = 1: no conv context */
    { 3, 5, 6, 2, 3, 2, 4 },        /* K > L + 1 */
    { 64, 0, 0, 0, 0, 2, 100 },     /* medium: Di 128, R 4 */
    { 160, 0, 0, 0, 0, 3, 24 },     /* the step's one-region path (>= 2^18 FMAs) */
    { 4, 0, 0, 0, 0, 1, 4173 },     /* three chunks of the prompt path (2048,
                                     * 2048, 77): conv window and SSM state
                                     * carried */
};
#define NBLOCK_SHAPES (int)(sizeof block_shapes / sizeof block_shapes[0])

static ssm_mamba *make_block(const shape *s, uint64_t seed, ssm_mamba_config *rc)
{
    ssm_mamba_config c = { sizeof(ssm_mamba_config), s->dm, s->n, s->k, s->expand, s->r };
    ssm_mamba *blk = NULL;
    ck_assert_int_eq(ssm_mamba_create(&blk, &c, seed), SSM_OK);
    ck_assert_ptr_nonnull(blk);
    ck_assert_int_eq(ssm_mamba_get_config(blk, rc), SSM_OK);
    return blk;
}

static double rc_tol(const ssm_mamba_config *c, int64_t L)
{
    return block_tol(c->d_model, c->expand * c->d_model, c->dt_rank,
                     c->d_state, c->d_conv, L);
}

/* ------------------------------------------------------------------ */
/* (1) block forward against the double reference                     */

START_TEST(block_forward_matches_reference)
{
    const shape *s = &block_shapes[_i];
    ssm_mamba_config c;
    ssm_mamba *blk = make_block(s, 100 + (uint64_t)_i, &c);
    if (_i % 2 == 0)
        randomize(blk, 7 + (uint64_t)_i);
    int64_t cnt = s->B * s->L * s->dm;
    tu_rng g = { 42 + (uint64_t)_i };
    float *x = tu_alloc((size_t)cnt, sizeof *x);
    float *y = tu_alloc((size_t)cnt, sizeof *y);
    double *xd = tu_alloc((size_t)cnt, sizeof *xd);
    double *yr = tu_alloc((size_t)cnt, sizeof *yr);
    tu_fill_normal_f(&g, x, cnt, 1.0);
    for (int64_t i = 0; i < cnt; i++)
        xd[i] = x[i];
    ck_assert_int_eq(ssm_mamba_forward(blk, NULL, s->B, s->L, x, y), SSM_OK);
    refblk rb;
    ref_load(&rb, blk);
    ref_block(&rb, s->B, s->L, xd, yr);
    double err = tu_relerr_f(y, yr, cnt);
    CHECK_ERR(err, rc_tol(&c, s->L), "block forward dm=%lld Di=%lld N=%lld K=%lld R=%lld B=%lld L=%lld",
                 (long long)c.d_model, (long long)(c.expand * c.d_model),
                 (long long)c.d_state, (long long)c.d_conv, (long long)c.dt_rank,
                 (long long)s->B, (long long)s->L);
    /* In place (y == x) gives the same output. */
    ck_assert_int_eq(ssm_mamba_forward(blk, NULL, s->B, s->L, x, x), SSM_OK);
    ck_assert_int_eq(memcmp(x, y, (size_t)cnt * sizeof *x), 0);
    ref_free(&rb);
    free(x); free(y); free(xd); free(yr);
    ssm_mamba_destroy(blk);
}
END_TEST

/* ------------------------------------------------------------------ */
/* (2) forward == steps; prompt forward + steps == forward            */

START_TEST(block_forward_equals_steps)
{
    const shape *s = &block_shapes[_i];
    ssm_mamba_config c;
    ssm_mamba *blk = make_block(s, 200 + (uint64_t)_i, &c);
    randomize(blk, 300 + (uint64_t)_i);
    const int64_t B = s->B, L = s->L, dm = s->dm, cnt = B * L * dm;
    tu_rng g = { 77 + (uint64_t)_i };
    float *x = tu_alloc((size_t)cnt, sizeof *x);
    float *yf = tu_alloc((size_t)cnt, sizeof *yf);
    float *ys = tu_alloc((size_t)cnt, sizeof *ys);
    float *yp = tu_alloc((size_t)cnt, sizeof *yp);
    float *xt = tu_alloc((size_t)(B * dm), sizeof *xt);
    float *yt = tu_alloc((size_t)(B * dm), sizeof *yt);
    tu_fill_normal_f(&g, x, cnt, 1.0);
    double tol = rc_tol(&c, L);
    ck_assert_int_eq(ssm_mamba_forward(blk, NULL, B, L, x, yf), SSM_OK);

    /* A state made for a larger batch than used. */
    ssm_mamba_state *st = NULL;
    ck_assert_int_eq(ssm_mamba_state_create(&st, blk, B + 2), SSM_OK);
    for (int64_t t = 0; t < L; t++) {
        for (int64_t b = 0; b < B; b++)
            memcpy(xt + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof *x);
        ck_assert_int_eq(ssm_mamba_step(blk, st, B, xt, yt), SSM_OK);
        for (int64_t b = 0; b < B; b++)
            memcpy(ys + (b * L + t) * dm, yt + b * dm, (size_t)dm * sizeof *x);
    }
    CHECK_ERR(tu_relerr_ff(ys, yf, cnt), tol, "L steps vs forward, L=%lld", (long long)L);

    /* The states left by L steps and by a forward over L agree (to
     * rounding: GEMV vs GEMM in in_proj), and get/set round-trips them. */
    {
        const int64_t nc = B * c.expand * dm * c.d_conv;
        const int64_t nh = B * c.expand * dm * c.d_state;
        float *cs1 = tu_alloc((size_t)nc, sizeof(float)), *cs2 = tu_alloc((size_t)nc, sizeof(float));
        float *h1 = tu_alloc((size_t)nh, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
        ck_assert_int_eq(ssm_mamba_state_get(st, B, cs1, h1), SSM_OK);
        ck_assert_int_eq(ssm_mamba_state_reset(st), SSM_OK);
        ck_assert_int_eq(ssm_mamba_forward(blk, st, B, L, x, yp), SSM_OK);
        ck_assert_int_eq(ssm_mamba_state_get(st, B, cs2, h2), SSM_OK);
        CHECK_ERR(tu_relerr_ff(cs1, cs2, nc), tol, "conv state: steps vs forward");
        CHECK_ERR(tu_relerr_ff(h1, h2, nh), tol, "SSM state: steps vs forward");
        /* continue from the forward's state, then from a copy set back */
        ck_assert_int_eq(ssm_mamba_step(blk, st, B, x, yt), SSM_OK);
        ck_assert_int_eq(ssm_mamba_state_reset(st), SSM_OK);
        ck_assert_int_eq(ssm_mamba_state_set(st, B, cs2, h2), SSM_OK);
        ck_assert_int_eq(ssm_mamba_step(blk, st, B, x, xt), SSM_OK);
        ck_assert_int_eq(memcmp(xt, yt, (size_t)(B * dm) * sizeof(float)), 0);
        h2[0] = NAN;
        ck_assert_int_eq(ssm_mamba_state_set(st, B, NULL, h2), SSM_ERR_ARG);
        cs2[nc - 1] = INFINITY;
        ck_assert_int_eq(ssm_mamba_state_set(st, B, cs2, NULL), SSM_ERR_ARG);
        free(cs1); free(cs2); free(h1); free(h2);
    }

    /* Every split point: prompt forward returning the state, then steps;
     * and prompt forward, then a second forward continuing the state. */
    for (int64_t P = 1; P < L; P++) {
        float *xp = tu_alloc((size_t)(B * P * dm), sizeof *xp);
        float *ypp = tu_alloc((size_t)(B * P * dm), sizeof *ypp);
        float *xq = tu_alloc((size_t)(B * (L - P) * dm), sizeof *xq);
        float *yq = tu_alloc((size_t)(B * (L - P) * dm), sizeof *yq);
        for (int64_t b = 0; b < B; b++) {
            memcpy(xp + b * P * dm, x + b * L * dm, (size_t)(P * dm) * sizeof *x);
            memcpy(xq + b * (L - P) * dm, x + (b * L + P) * dm,
                   (size_t)((L - P) * dm) * sizeof *x);
        }
        for (int pass = 0; pass < 2; pass++) {
            ck_assert_int_eq(ssm_mamba_state_reset(st), SSM_OK);
            ck_assert_int_eq(ssm_mamba_forward(blk, st, B, P, xp, ypp), SSM_OK);
            if (pass == 0) {
                for (int64_t t = P; t < L; t++) {
                    for (int64_t b = 0; b < B; b++)
                        memcpy(xt + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof *x);
                    ck_assert_int_eq(ssm_mamba_step(blk, st, B, xt, yt), SSM_OK);
                    for (int64_t b = 0; b < B; b++)
                        memcpy(yq + (b * (L - P) + t - P) * dm, yt + b * dm,
                               (size_t)dm * sizeof *x);
                }
            } else {
                ck_assert_int_eq(ssm_mamba_forward(blk, st, B, L - P, xq, yq), SSM_OK);
            }
            for (int64_t b = 0; b < B; b++) {
                memcpy(yp + b * L * dm, ypp + b * P * dm, (size_t)(P * dm) * sizeof *x);
                memcpy(yp + (b * L + P) * dm, yq + b * (L - P) * dm,
                       (size_t)((L - P) * dm) * sizeof *x);
            }
            CHECK_ERR(tu_relerr_ff(yp, yf, cnt), tol,
                         "prompt %lld + %s %lld vs forward", (long long)P,
                         pass ? "forward" : "steps", (long long)(L - P));
        }
        free(xp); free(ypp); free(xq); free(yq);
        if (L > 20)
            P += L > 1000 ? L / 5 : 13;   /* a few split points only */
    }
    ssm_mamba_state_destroy(st);
    free(x); free(yf); free(ys); free(yp); free(xt); free(yt);
    ssm_mamba_destroy(blk);
}
END_TEST

/* ------------------------------------------------------------------ */
/* (3) stack                                                          */

static ssm_mamba_stack *make_stack(int64_t dm, int64_t nl, uint64_t seed)
{
    ssm_mamba_config c = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba_stack *stk = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &c, nl, seed), SSM_OK);
    tu_rng g = { seed ^ 0x5555 };
    float *w = tu_alloc((size_t)dm, sizeof *w);
    for (int64_t l = 0; l <= nl; l++) {
        for (int64_t j = 0; j < dm; j++)
            w[j] = (float)tu_range(&g, 0.5, 1.5);
        ck_assert_int_eq(ssm_mamba_stack_set_norm(stk, l, w, dm), SSM_OK);
        if (l < nl) {
            ssm_mamba *b;
            ck_assert_int_eq(ssm_mamba_stack_block(stk, l, &b), SSM_OK);
            randomize(b, seed + 10 * (uint64_t)l);
        }
    }
    free(w);
    return stk;
}

START_TEST(stack_matches_reference_and_steps)
{
    const int64_t dm = 32, nl = 2 + _i, B = 2, L = 24, cnt = B * L * dm;
    ssm_mamba_stack *stk = make_stack(dm, nl, 900 + (uint64_t)_i);
    tu_rng g = { 5 + (uint64_t)_i };
    float *x = tu_alloc((size_t)cnt, sizeof *x);
    float *yf = tu_alloc((size_t)cnt, sizeof *yf);
    float *yp = tu_alloc((size_t)cnt, sizeof *yp);
    float *xt = tu_alloc((size_t)(B * dm), sizeof *xt);
    double *yr = tu_alloc((size_t)cnt, sizeof *yr);
    tu_fill_normal_f(&g, x, cnt, 1.0);
    double tol = (double)nl * block_tol(dm, 2 * dm, 2, 16, 4, L);

    ck_assert_int_eq(ssm_mamba_stack_forward(stk, NULL, B, L, x, yf), SSM_OK);
    ref_stack(stk, B, L, x, yr);
    {   /* the timed variant computes the same, bit for bit, and times */
        ssmi_mamba_timing tm = { 0, 0, 0, 0 };
        ck_assert_int_eq(ssmi_mamba_stack_forward_ex(stk, NULL, B, L, x, yp, &tm), SSM_OK);
        ck_assert_int_eq(memcmp(yp, yf, (size_t)cnt * sizeof *yp), 0);
        ck_assert(tm.gemm >= 0 && tm.scan >= 0 && tm.conv >= 0 && tm.norm >= 0);
        ck_assert(tm.gemm + tm.scan + tm.conv + tm.norm > 0);
    }
    CHECK_ERR(tu_relerr_f(yf, yr, cnt), tol, "stack of %lld vs reference", (long long)nl);

    ssm_mamba_stack_state *st = NULL;
    ck_assert_int_eq(ssm_mamba_stack_state_create(&st, stk, B), SSM_OK);
    const int64_t splits[] = { 0, 1, 9, L - 1 };
    for (size_t si = 0; si < sizeof splits / sizeof splits[0]; si++) {
        int64_t P = splits[si];
        ck_assert_int_eq(ssm_mamba_stack_state_reset(st), SSM_OK);
        if (P > 0) {
            float *xp = tu_alloc((size_t)(B * P * dm), sizeof *xp);
            float *ypp = tu_alloc((size_t)(B * P * dm), sizeof *ypp);
            for (int64_t b = 0; b < B; b++)
                memcpy(xp + b * P * dm, x + b * L * dm, (size_t)(P * dm) * sizeof *x);
            ck_assert_int_eq(ssm_mamba_stack_forward(stk, st, B, P, xp, ypp), SSM_OK);
            for (int64_t b = 0; b < B; b++)
                memcpy(yp + b * L * dm, ypp + b * P * dm, (size_t)(P * dm) * sizeof *x);
            free(xp); free(ypp);
            if (P == 9) {
                /* ssm_mamba_stack_state_layer: copying every layer's state
                 * through it into a fresh stack state gives a state that
                 * decodes exactly as st (same bytes); a layer left zero
                 * does not. */
                ssm_mamba_stack_state *cp = NULL;
                ck_assert_int_eq(ssm_mamba_stack_state_create(&cp, stk, B), SSM_OK);
                const int64_t di = 2 * dm, nc = B * di * 4, nh = B * di * 16;
                float *cv = tu_alloc((size_t)nc, sizeof *cv), *hv = tu_alloc((size_t)nh, sizeof *hv);
                for (int64_t l = 0; l < nl; l++) {
                    ssm_mamba_state *ls = NULL, *ld = NULL;
                    ck_assert_int_eq(ssm_mamba_stack_state_layer(st, l, &ls), SSM_OK);
                    ck_assert_int_eq(ssm_mamba_stack_state_layer(cp, l, &ld), SSM_OK);
                    ck_assert(ls != NULL && ld != NULL && ls != ld);
                    ck_assert_int_eq(ssm_mamba_state_get(ls, B, cv, hv), SSM_OK);
                    if (l < nl - 1)
                        ck_assert_int_eq(ssm_mamba_state_set(ld, B, cv, hv), SSM_OK);
                }
                float *o1 = tu_alloc((size_t)(B * dm), sizeof *o1);
                float *o2 = tu_alloc((size_t)(B * dm), sizeof *o2);
                for (int64_t b = 0; b < B; b++)
                    memcpy(xt + b * dm, x + (b * L + P) * dm, (size_t)dm * sizeof *x);
                ssm_mamba_stack_state *st2 = NULL;   /* st must not advance here */
                ck_assert_int_eq(ssm_mamba_stack_state_create(&st2, stk, B), SSM_OK);
                for (int64_t l = 0; l < nl; l++) {
                    ssm_mamba_state *ls = NULL, *ld = NULL;
                    ssm_mamba_stack_state_layer(st, l, &ls);
                    ssm_mamba_stack_state_layer(st2, l, &ld);
                    ssm_mamba_state_get(ls, B, cv, hv);
                    ssm_mamba_state_set(ld, B, cv, hv);
                }
                ck_assert_int_eq(ssm_mamba_stack_step(stk, st2, B, xt, o1), SSM_OK);
                ck_assert_int_eq(ssm_mamba_stack_step(stk, cp, B, xt, o2), SSM_OK);
                ck_assert(memcmp(o1, o2, (size_t)(B * dm) * sizeof *o1) != 0);
                ssm_mamba_state *lt = NULL, *ld = NULL;
                ssm_mamba_stack_state_reset(cp);
                for (int64_t l = 0; l < nl; l++) {
                    ssm_mamba_stack_state_layer(st, l, &lt);
                    ssm_mamba_stack_state_layer(cp, l, &ld);
                    ssm_mamba_state_get(lt, B, cv, hv);
                    ssm_mamba_state_set(ld, B, cv, hv);
                }
                ck_assert_int_eq(ssm_mamba_stack_step(stk, cp, B, xt, o2), SSM_OK);
                ck_assert_int_eq(memcmp(o1, o2, (size_t)(B * dm) * sizeof *o1), 0);
                /* out of range, NULL */
                ld = (ssm_mamba_state *)cp;
                ck_assert_int_eq(ssm_mamba_stack_state_layer(cp, nl, &ld), SSM_ERR_ARG);
                ck_assert(ld == NULL);
                ck_assert_int_eq(ssm_mamba_stack_state_layer(cp, -1, &ld), SSM_ERR_ARG);
                ck_assert_int_eq(ssm_mamba_stack_state_layer(NULL, 0, &ld), SSM_ERR_ARG);
                ck_assert_int_eq(ssm_mamba_stack_state_layer(cp, 0, NULL), SSM_ERR_ARG);
                free(cv); free(hv); free(o1); free(o2);
                ssm_mamba_stack_state_destroy(cp);
                ssm_mamba_stack_state_destroy(st2);
            }
        }
        for (int64_t t = P; t < L; t++) {
            for (int64_t b = 0; b < B; b++)
                memcpy(xt + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof *x);
            /* in place: y == x */
            ck_assert_int_eq(ssm_mamba_stack_step(stk, st, B, xt, xt), SSM_OK);
            for (int64_t b = 0; b < B; b++)
                memcpy(yp + (b * L + t) * dm, xt + b * dm, (size_t)dm * sizeof *x);
        }
        CHECK_ERR(tu_relerr_ff(yp, yf, cnt), tol, "stack: prompt %lld + steps vs forward",
                     (long long)P);
    }
    ssm_mamba_stack_state_destroy(st);
    free(x); free(yf); free(yp); free(xt); free(yr);
    ssm_mamba_stack_destroy(stk);
}
END_TEST

/* Thread-count independence of the stack, forward and step, at 1, 2, 3
 * OpenMP threads (which OpenBLAS's OpenMP build follows).
 * libssm's own loops (conv, silu, scan, RMSNorm, residual) have one writer
 * per output in a fixed order: bit for bit identical.  OpenBLAS 0.3.21's
 * threaded sgemm is NOT bit-identical across thread counts on this machine
 * (measured: a 128x160x64 product differs in the last bits at 2 vs 1
 * thread; the per-thread partition of M and N changes which micro-kernel
 * variant computes an element), so:
 *  (a) a shape whose GEMMs stay below OpenBLAS's threading threshold
 *      (M*N*K <= 65536*4, interface/gemm.c) while libssm's conv loop is
 *      parallel (B*Di*L > 32768): must be bit-identical;
 *  (b) a larger shape where the GEMMs are threaded: equal within the
 *      stack's rounding tolerance (reduction order only). */
static void run_threads(int64_t dm, int64_t nl, int64_t B, int64_t L,
                        int64_t SB, int exact)
{
    const int64_t cnt = B * L * dm;
    ssm_mamba_stack *stk = make_stack(dm, nl, 4242);
    tu_rng g = { 99 };
    float *x = tu_alloc((size_t)cnt, sizeof *x);
    float *y[3], *ys[3];
    tu_fill_normal_f(&g, x, cnt, 1.0);
    float *xs = tu_alloc((size_t)(SB * dm), sizeof *xs);
    tu_fill_normal_f(&g, xs, SB * dm, 1.0);
    for (int th = 1; th <= 3; th++) {
        tu_set_threads(th);
        y[th - 1] = tu_alloc((size_t)cnt, sizeof(float));
        ys[th - 1] = tu_alloc((size_t)(SB * dm), sizeof(float));
        ck_assert_int_eq(ssm_mamba_stack_forward(stk, NULL, B, L, x, y[th - 1]), SSM_OK);
        ssm_mamba_stack_state *st = NULL;
        ck_assert_int_eq(ssm_mamba_stack_state_create(&st, stk, SB), SSM_OK);
        for (int t = 0; t < 5; t++)
            ck_assert_int_eq(ssm_mamba_stack_step(stk, st, SB, xs, ys[th - 1]), SSM_OK);
        ssm_mamba_stack_state_destroy(st);
    }
    double tol = (double)nl * block_tol(dm, 2 * dm, (dm + 15) / 16, 16, 4, L);
    for (int th = 2; th <= 3; th++) {
        double ef = tu_relerr_ff(y[th - 1], y[0], cnt);
        double es = tu_relerr_ff(ys[th - 1], ys[0], SB * dm);
        if (exact) {
            ck_assert_msg(memcmp(y[0], y[th - 1], (size_t)cnt * sizeof(float)) == 0,
                          "stack forward at %d threads differs from 1 thread (rel %.3e)", th, ef);
            ck_assert_msg(memcmp(ys[0], ys[th - 1], (size_t)(SB * dm) * sizeof(float)) == 0,
                          "stack step at %d threads differs from 1 thread (rel %.3e)", th, es);
        } else {
            CHECK_ERR(ef, tol, "stack forward, %d vs 1 threads", th);
            CHECK_ERR(es, tol, "stack step, %d vs 1 threads", th);
        }
    }
    tu_set_threads(1);
    for (int i = 0; i < 3; i++) { free(y[i]); free(ys[i]); }
    free(x); free(xs);
    ssm_mamba_stack_destroy(stk);
}

START_TEST(stack_thread_count_exact_small_gemms)
{
    /* in_proj 64x120x32 = 245760, out_proj 120x32x64 = 245760 <= 262144;
     * conv 5*64*120 = 38400 > 32768; step: 8x64x32 */
    run_threads(32, 3, 5, 120, 8, 1);
}
END_TEST

START_TEST(stack_thread_count_rounding_threaded_gemms)
{
    run_threads(64, 2, 2, 160, 8, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* parameters and defaults                                            */

START_TEST(defaults_and_param_roundtrip)
{
    ssm_mamba_config c0 = { sizeof(ssm_mamba_config), 40, 0, 0, 0, 0 }, c;
    ck_assert_int_eq(ssm_mamba_config_resolve(&c0, &c), SSM_OK);
    ck_assert_int_eq(c.d_state, 16);
    ck_assert_int_eq(c.d_conv, 4);
    ck_assert_int_eq(c.expand, 2);
    ck_assert_int_eq(c.dt_rank, 3);   /* ceil(40 / 16) */
    ssm_mamba *a = NULL, *b = NULL, *d = NULL;
    ck_assert_int_eq(ssm_mamba_create(&a, &c0, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_create(&b, &c0, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_create(&d, &c0, 2), SSM_OK);
    const int64_t want[SSM_MAMBA_NPARAMS] = {
        2 * 80 * 40, 80 * 4, 80, (3 + 32) * 80, 80 * 3, 80, 80 * 16, 80, 40 * 80 };
    for (int p = 0; p < SSM_MAMBA_NPARAMS; p++) {
        int64_t n;
        ck_assert_int_eq(ssm_mamba_param_count(a, (ssm_mamba_param)p, &n), SSM_OK);
        ck_assert_int_eq(n, want[p]);
        float *fa = tu_alloc((size_t)n, sizeof *fa), *fb = tu_alloc((size_t)n, sizeof *fb);
        float *fd = tu_alloc((size_t)n, sizeof *fd);
        ck_assert_int_eq(ssm_mamba_get_param(a, (ssm_mamba_param)p, fa, n), SSM_OK);
        ck_assert_int_eq(ssm_mamba_get_param(b, (ssm_mamba_param)p, fb, n), SSM_OK);
        ck_assert_int_eq(ssm_mamba_get_param(d, (ssm_mamba_param)p, fd, n), SSM_OK);
        /* same seed, same parameters */
        ck_assert_int_eq(memcmp(fa, fb, (size_t)n * sizeof *fa), 0);
        double bound = p == SSM_MAMBA_IN_PROJ ? 1 / sqrt(40.0)
                     : p == SSM_MAMBA_CONV_W || p == SSM_MAMBA_CONV_B ? 0.5
                     : p == SSM_MAMBA_X_PROJ || p == SSM_MAMBA_OUT_PROJ ? 1 / sqrt(80.0)
                     : p == SSM_MAMBA_DT_PROJ_W ? 1 / sqrt(3.0) : 0;
        int differ = memcmp(fa, fd, (size_t)n * sizeof *fa) != 0;
        for (int64_t i = 0; i < n; i++) {
            if (bound > 0)
                ck_assert_msg(fabs(fa[i]) <= bound * (1 + 1e-6), "param %d out of bound", p);
            if (p == SSM_MAMBA_A_LOG)
                ck_assert_float_eq_tol(fa[i], logf((float)(i % 16 + 1)), 1e-6f);
            if (p == SSM_MAMBA_D)
                ck_assert_float_eq(fa[i], 1.0f);
            if (p == SSM_MAMBA_DT_PROJ_B) {
                double dt = log1p(exp((double)fa[i]));
                ck_assert_msg(dt >= 1e-3 * (1 - 1e-5) && dt <= 1e-1 * (1 + 1e-5),
                              "softplus(dt bias) = %g outside [1e-3, 1e-1]", dt);
            }
        }
        /* different seeds: different random tensors */
        if (bound > 0 || p == SSM_MAMBA_DT_PROJ_B)
            ck_assert_msg(differ, "param %d does not depend on the seed", p);
        /* round trip of arbitrary values */
        for (int64_t i = 0; i < n; i++)
            fb[i] = (float)(0.25 * (double)(i % 7) - 0.5);
        ck_assert_int_eq(ssm_mamba_set_param(a, (ssm_mamba_param)p, fb, n), SSM_OK);
        ck_assert_int_eq(ssm_mamba_get_param(a, (ssm_mamba_param)p, fd, n), SSM_OK);
        ck_assert_int_eq(memcmp(fb, fd, (size_t)n * sizeof *fb), 0);
        /* a non-finite value is refused and leaves the tensor unchanged */
        fb[n / 2] = NAN;
        ck_assert_int_eq(ssm_mamba_set_param(a, (ssm_mamba_param)p, fb, n), SSM_ERR_ARG);
        fb[n / 2] = INFINITY;
        ck_assert_int_eq(ssm_mamba_set_param(a, (ssm_mamba_param)p, fb, n), SSM_ERR_ARG);
        ck_assert_int_eq(ssm_mamba_get_param(a, (ssm_mamba_param)p, fa, n), SSM_OK);
        ck_assert_int_eq(memcmp(fa, fd, (size_t)n * sizeof *fa), 0);
        free(fa); free(fb); free(fd);
    }
    /* A_log whose exp overflows float */
    float big[80 * 16];
    for (int i = 0; i < 80 * 16; i++) big[i] = 100.0f;
    ck_assert_int_eq(ssm_mamba_set_param(a, SSM_MAMBA_A_LOG, big, 80 * 16), SSM_ERR_ARG);
    ssm_mamba_destroy(a); ssm_mamba_destroy(b); ssm_mamba_destroy(d);

    /* stack: norm weights default to 1, out_proj rescaled by 1/sqrt(nl) */
    ssm_mamba_stack *stk = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &c0, 4, 3), SSM_OK);
    float w[40];
    for (int64_t l = 0; l <= 4; l++) {
        ck_assert_int_eq(ssm_mamba_stack_get_norm(stk, l, w, 40), SSM_OK);
        for (int j = 0; j < 40; j++) ck_assert_float_eq(w[j], 1.0f);
    }
    ssm_mamba_stack_destroy(stk);

    char buf[128];
    ck_assert_int_eq(ssm_blas_describe(buf, sizeof buf), SSM_OK);
    ck_assert_int_gt((int)strlen(buf), 3);
    ck_assert_int_eq(ssm_blas_describe(buf, 1), SSM_OK);
    ck_assert_int_eq(buf[0], '\0');
    ssm_blas_threading tm = ssm_blas_threading_model();
    ck_assert(tm >= SSM_BLAS_THREADS_UNKNOWN && tm <= SSM_BLAS_THREADS_OPENMP);
}
END_TEST

/* ------------------------------------------------------------------ */
/* (4) bad inputs                                                     */

#define BAD(expr) do { ssm_status bad_st_ = (expr); \
    ck_assert_msg(bad_st_ == SSM_ERR_ARG, "%s gave %d, want SSM_ERR_ARG", #expr, (int)bad_st_); \
    nbad++; } while (0)

START_TEST(bad_arguments)
{
    int nbad = 0;
    ssm_mamba_config ok = { sizeof(ssm_mamba_config), 8, 4, 3, 2, 2 }, c;
    ssm_mamba *blk = NULL, *other = NULL;
    ck_assert_int_eq(ssm_mamba_create(&blk, &ok, 1), SSM_OK);
    ssm_mamba_config oc = { sizeof(ssm_mamba_config), 8, 5, 3, 2, 2 };
    ck_assert_int_eq(ssm_mamba_create(&other, &oc, 1), SSM_OK);
    ssm_mamba_state *st = NULL, *sto = NULL;
    ck_assert_int_eq(ssm_mamba_state_create(&st, blk, 2), SSM_OK);
    ck_assert_int_eq(ssm_mamba_state_create(&sto, other, 2), SSM_OK);
    float x[3 * 5 * 8] = { 0 }, y[3 * 5 * 8], p[16 * 8 * 2];
    int64_t cnt;

    /* config */
#define CFG(a, b, c_, d, e) { sizeof(ssm_mamba_config), a, b, c_, d, e }
    const ssm_mamba_config bad_cfgs[] = {
        CFG(0, 0, 0, 0, 0), CFG(-1, 0, 0, 0, 0), CFG(8, -1, 0, 0, 0),
        CFG(8, 0, -1, 0, 0), CFG(8, 0, 0, -1, 0), CFG(8, 0, 0, 0, -1),
        CFG(INT64_MAX, 0, 0, 0, 0), CFG(1 << 20, 0, 0, 1 << 20, 0),
        CFG(8, INT64_MAX, 0, 0, 0), CFG(8, 0, INT64_MAX, 0, 0),
        CFG(8, 0, 0, 0, INT64_MAX), CFG(3000000000LL, 0, 0, 1, 1),
        /* struct_size outside [first version, this library's]: */
        { 0, 8, 0, 0, 0, 0 }, { 8, 8, 0, 0, 0, 0 },
        { sizeof(ssm_mamba_config) + 1, 8, 0, 0, 0, 0 }, { UINT32_MAX, 8, 0, 0, 0, 0 },
    };
#undef CFG
    for (size_t i = 0; i < sizeof bad_cfgs / sizeof bad_cfgs[0]; i++) {
        ssm_mamba *m = (ssm_mamba *)&c;   /* must be reset to NULL */
        ssm_mamba_stack *s = (ssm_mamba_stack *)&c;
        BAD(ssm_mamba_config_resolve(&bad_cfgs[i], &c));
        BAD(ssm_mamba_create(&m, &bad_cfgs[i], 1));
        ck_assert_ptr_null(m);
        BAD(ssm_mamba_stack_create(&s, &bad_cfgs[i], 2, 1));
        ck_assert_ptr_null(s);
    }
    BAD(ssm_mamba_config_resolve(NULL, &c));
    BAD(ssm_mamba_config_resolve(&ok, NULL));
    BAD(ssm_mamba_create(NULL, &ok, 1));
    { ssm_mamba *m; BAD(ssm_mamba_create(&m, NULL, 1)); }
    BAD(ssm_mamba_get_config(NULL, &c));
    BAD(ssm_mamba_get_config(blk, NULL));

    /* parameters */
    BAD(ssm_mamba_param_count(NULL, SSM_MAMBA_D, &cnt));
    BAD(ssm_mamba_param_count(blk, SSM_MAMBA_D, NULL));
    BAD(ssm_mamba_param_count(blk, (ssm_mamba_param)-1, &cnt));
    BAD(ssm_mamba_param_count(blk, (ssm_mamba_param)SSM_MAMBA_NPARAMS, &cnt));
    for (int i = 0; i < 16 * 8 * 2; i++) p[i] = 0.5f;
    BAD(ssm_mamba_set_param(NULL, SSM_MAMBA_D, p, 16));
    BAD(ssm_mamba_set_param(blk, SSM_MAMBA_D, NULL, 16));
    BAD(ssm_mamba_set_param(blk, SSM_MAMBA_D, p, 15));
    BAD(ssm_mamba_set_param(blk, SSM_MAMBA_D, p, 17));
    BAD(ssm_mamba_set_param(blk, SSM_MAMBA_D, p, 0));
    BAD(ssm_mamba_set_param(blk, (ssm_mamba_param)99, p, 16));
    BAD(ssm_mamba_get_param(NULL, SSM_MAMBA_D, p, 16));
    BAD(ssm_mamba_get_param(blk, SSM_MAMBA_D, NULL, 16));
    BAD(ssm_mamba_get_param(blk, SSM_MAMBA_D, p, -16));
    BAD(ssm_mamba_get_param(blk, (ssm_mamba_param)-5, p, 16));

    /* state */
    { ssm_mamba_state *s2 = (ssm_mamba_state *)&c;
      BAD(ssm_mamba_state_create(&s2, blk, 0)); ck_assert_ptr_null(s2);
      BAD(ssm_mamba_state_create(&s2, blk, -3));
      BAD(ssm_mamba_state_create(&s2, NULL, 1));
      BAD(ssm_mamba_state_create(&s2, blk, INT64_MAX)); }
    BAD(ssm_mamba_state_create(NULL, blk, 1));
    BAD(ssm_mamba_state_reset(NULL));
    BAD(ssm_mamba_state_get(NULL, 1, p, p));
    BAD(ssm_mamba_state_get(st, 0, p, p));
    BAD(ssm_mamba_state_get(st, 3, p, p));
    BAD(ssm_mamba_state_set(NULL, 1, p, p));
    BAD(ssm_mamba_state_set(st, 0, p, p));
    BAD(ssm_mamba_state_set(st, -1, p, p));
    BAD(ssm_mamba_state_set(st, 3, p, p));

    /* forward */
    BAD(ssm_mamba_forward(NULL, NULL, 1, 5, x, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, 5, NULL, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, 5, x, NULL));
    BAD(ssm_mamba_forward(blk, NULL, 0, 5, x, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, 0, x, y));
    BAD(ssm_mamba_forward(blk, NULL, -1, 5, x, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, -5, x, y));
    BAD(ssm_mamba_forward(blk, NULL, INT64_MAX, 5, x, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, INT64_MAX, x, y));
    BAD(ssm_mamba_forward(blk, NULL, 1, (int64_t)INT32_MAX, x, y)); /* L+K-1 > INT_MAX */
    BAD(ssm_mamba_forward(blk, st, 3, 5, x, y));      /* batch > max batch */
    BAD(ssm_mamba_forward(blk, sto, 1, 5, x, y));     /* state of another shape */
    BAD(ssmi_mamba_forward_ex(blk, NULL, 0, 5, x, y, NULL));

    /* step */
    BAD(ssm_mamba_step(NULL, st, 1, x, y));
    BAD(ssm_mamba_step(blk, NULL, 1, x, y));
    BAD(ssm_mamba_step(blk, st, 1, NULL, y));
    BAD(ssm_mamba_step(blk, st, 1, x, NULL));
    BAD(ssm_mamba_step(blk, st, 0, x, y));
    BAD(ssm_mamba_step(blk, st, 3, x, y));
    BAD(ssm_mamba_step(blk, sto, 1, x, y));
    BAD(ssmi_mamba_step_ex(blk, st, -1, x, y, NULL));

    /* stack */
    ssm_mamba_stack *stk = NULL, *stk3 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &ok, 2, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_create(&stk3, &ok, 3, 1), SSM_OK);
    ssm_mamba_stack_state *ss = NULL, *ss3 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_state_create(&ss, stk, 2), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_state_create(&ss3, stk3, 2), SSM_OK);
    int64_t nl;
    ssm_mamba *bl;
    { ssm_mamba_stack *s = NULL;
      BAD(ssm_mamba_stack_create(&s, &ok, 0, 1));
      BAD(ssm_mamba_stack_create(&s, &ok, -2, 1));
      BAD(ssm_mamba_stack_create(&s, &ok, INT64_MAX, 1));
      BAD(ssm_mamba_stack_create(&s, NULL, 2, 1));
      BAD(ssm_mamba_stack_create(NULL, &ok, 2, 1)); }
    BAD(ssm_mamba_stack_layers(NULL, &nl));
    BAD(ssm_mamba_stack_layers(stk, NULL));
    BAD(ssm_mamba_stack_block(NULL, 0, &bl));
    BAD(ssm_mamba_stack_block(stk, 0, NULL));
    BAD(ssm_mamba_stack_block(stk, -1, &bl));
    BAD(ssm_mamba_stack_block(stk, 2, &bl));
    BAD(ssm_mamba_stack_set_norm(NULL, 0, p, 8));
    BAD(ssm_mamba_stack_set_norm(stk, 0, NULL, 8));
    BAD(ssm_mamba_stack_set_norm(stk, -1, p, 8));
    BAD(ssm_mamba_stack_set_norm(stk, 3, p, 8));
    BAD(ssm_mamba_stack_set_norm(stk, 0, p, 7));
    p[3] = NAN;
    BAD(ssm_mamba_stack_set_norm(stk, 0, p, 8));
    p[3] = 0.5f;
    BAD(ssm_mamba_stack_get_norm(NULL, 0, p, 8));
    BAD(ssm_mamba_stack_get_norm(stk, 0, NULL, 8));
    BAD(ssm_mamba_stack_get_norm(stk, 3, p, 8));
    BAD(ssm_mamba_stack_get_norm(stk, 0, p, 9));
    { ssm_mamba_stack_state *s = NULL;
      BAD(ssm_mamba_stack_state_create(&s, stk, 0));
      BAD(ssm_mamba_stack_state_create(&s, NULL, 1));
      BAD(ssm_mamba_stack_state_create(&s, stk, INT64_MAX));
      BAD(ssm_mamba_stack_state_create(NULL, stk, 1)); }
    BAD(ssm_mamba_stack_state_reset(NULL));
    BAD(ssm_mamba_stack_forward(NULL, NULL, 1, 5, x, y));
    BAD(ssm_mamba_stack_forward(stk, NULL, 1, 5, NULL, y));
    BAD(ssm_mamba_stack_forward(stk, NULL, 1, 5, x, NULL));
    BAD(ssm_mamba_stack_forward(stk, NULL, 0, 5, x, y));
    BAD(ssm_mamba_stack_forward(stk, NULL, 1, 0, x, y));
    BAD(ssm_mamba_stack_forward(stk, NULL, INT64_MAX, INT64_MAX, x, y));
    BAD(ssm_mamba_stack_forward(stk, ss, 3, 5, x, y));
    BAD(ssm_mamba_stack_forward(stk, ss3, 1, 5, x, y));
    BAD(ssmi_mamba_stack_forward_ex(stk, NULL, 1, -1, x, y, NULL));
    BAD(ssm_mamba_stack_step(NULL, ss, 1, x, y));
    BAD(ssm_mamba_stack_step(stk, NULL, 1, x, y));
    BAD(ssm_mamba_stack_step(stk, ss, 1, NULL, y));
    BAD(ssm_mamba_stack_step(stk, ss, 1, x, NULL));
    BAD(ssm_mamba_stack_step(stk, ss, 0, x, y));
    BAD(ssm_mamba_stack_step(stk, ss, 3, x, y));
    BAD(ssm_mamba_stack_step(stk, ss3, 1, x, y));
    BAD(ssmi_mamba_stack_step_ex(stk3, ss, 1, x, y, NULL));

    /* misc */
    BAD(ssm_blas_describe(NULL, 10));
    { char b1[4]; BAD(ssm_blas_describe(b1, 0)); BAD(ssm_blas_describe(b1, -1)); }

    /* The valid calls next to the bad ones do work (so the table tests the
     * argument, not a broken object). */
    ck_assert_int_eq(ssm_mamba_forward(blk, st, 2, 5, x, y), SSM_OK);
    ck_assert_int_eq(ssm_mamba_step(blk, st, 2, x, y), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_forward(stk, ss, 2, 5, x, y), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_step(stk, ss, 2, x, y), SSM_OK);

    /* destroy(NULL) is a no-op */
    ssm_mamba_destroy(NULL);
    ssm_mamba_state_destroy(NULL);
    ssm_mamba_stack_destroy(NULL);
    ssm_mamba_stack_state_destroy(NULL);

    ssm_mamba_stack_state_destroy(ss); ssm_mamba_stack_state_destroy(ss3);
    ssm_mamba_stack_destroy(stk); ssm_mamba_stack_destroy(stk3);
    ssm_mamba_state_destroy(st); ssm_mamba_state_destroy(sto);
    ssm_mamba_destroy(blk); ssm_mamba_destroy(other);
    ck_assert_int_gt(nbad, 100);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mamba");
    TCase *tc = tcase_create("block");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, block_forward_matches_reference, 0, NBLOCK_SHAPES);
    tcase_add_loop_test(tc, block_forward_equals_steps, 0, NBLOCK_SHAPES);
    tcase_add_test(tc, defaults_and_param_roundtrip);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("stack");
    tcase_set_timeout(ts, 600);
    tcase_add_loop_test(ts, stack_matches_reference_and_steps, 0, 3);
    tcase_add_test(ts, stack_thread_count_exact_small_gemms);
    tcase_add_test(ts, stack_thread_count_rounding_threaded_gemms);
    suite_add_tcase(s, ts);
    return tu_run(s);
}
