/* ctest-labels: train */
/*
 * test_mamba_bwd.c -- Mamba block and residual stack backward (ssm/train.h),
 * black-box: every gradient against central finite differences of a double
 * forward written here (Mamba section 3.4, figure 3; the scan of algorithm
 * 2 with softplus, as mamba_ssm's selective_scan_ref), against a fixture of
 * PyTorch autograd gradients (tests/fixtures/mamba_bwd, made by its
 * committed script), NULL outputs bitwise-neutral, the same bytes for 1, 2
 * and 3 threads, bad arguments.
 *
 * Error model.  The library computes in float: each product is a dot
 * product with inner dimension n (GEMMs over Dm, Di, R, N, the weight
 * gradients over batch*L tokens, the conv over K taps), whose rounding error
 * is at most about n eps_f times the sum of |terms| (Higham, ch. 3), and the
 * scan backward is within 4 (L + N + 4) eps_f max|grad| (its own tests).
 * Errors of a chain add, so with S = Dm + Di + R + N + K + B L + (L + N + 4)
 * a gradient tensor g is expected within 4 S eps_f max|g| (normwise: terms of
 * random sign make |terms| comparable to the result; the factor 4 covers
 * the cancellation of these shapes).  The finite differences (double, step
 * h = 1e-5 max(1, |v|)) add truncation ~h^2 |f'''| (~1e-10) and rounding
 * 16 eps_d |Loss| / h.  A stack multiplies S by its layer count + 1.
 * Every check prints error / bound.
 */
#define _POSIX_C_SOURCE 200809L
#include <ssm.h>
#include <inttypes.h>
#include <limits.h>
#include "testutil.h"

#define NP SSM_MAMBA_NPARAMS

typedef struct dims { int64_t dm, di, n, k, r; } dims;

static double softplus_d(double v) { return v <= 20.0 ? log1p(exp(v)) : v; }
static double silu_d(double v) { return v / (1.0 + exp(-v)); }

/* The block forward in double, token-major, from zero state:
 * y [B][L][Dm] from x [B][L][Dm] and the parameters p[] (shapes of
 * ssm/mamba.h). */
static void dblock(const dims *c, double *const p[NP], int64_t B, int64_t L,
                   const double *x, double *y)
{
    const int64_t dm = c->dm, di = c->di, n = c->n, k = c->k, r = c->r, xr = r + 2 * n;
    double *xi = malloc(sizeof(double) * (size_t)(L * di));
    double *z = malloc(sizeof(double) * (size_t)(L * di));
    double *u = malloc(sizeof(double) * (size_t)(L * di));
    double *dbl = malloc(sizeof(double) * (size_t)(L * xr));
    double *h = malloc(sizeof(double) * (size_t)(di * n));
    double *ys = malloc(sizeof(double) * (size_t)di);
    const double *win = p[SSM_MAMBA_IN_PROJ], *cw = p[SSM_MAMBA_CONV_W],
                 *cb = p[SSM_MAMBA_CONV_B], *wx = p[SSM_MAMBA_X_PROJ],
                 *wdt = p[SSM_MAMBA_DT_PROJ_W], *bdt = p[SSM_MAMBA_DT_PROJ_B],
                 *al = p[SSM_MAMBA_A_LOG], *D = p[SSM_MAMBA_D], *wo = p[SSM_MAMBA_OUT_PROJ];
    for (int64_t b = 0; b < B; b++) {
        const double *xb = x + b * L * dm;
        for (int64_t t = 0; t < L; t++)
            for (int64_t d = 0; d < di; d++) {
                double a = 0.0, e = 0.0;
                for (int64_t m = 0; m < dm; m++) {
                    a += win[d * dm + m] * xb[t * dm + m];
                    e += win[(di + d) * dm + m] * xb[t * dm + m];
                }
                xi[t * di + d] = a;
                z[t * di + d] = e;
            }
        for (int64_t t = 0; t < L; t++)
            for (int64_t d = 0; d < di; d++) {
                double a = cb[d];
                for (int64_t j = 0; j < k; j++) {
                    const int64_t s = t - (k - 1) + j;
                    if (s >= 0)
                        a += cw[d * k + j] * xi[s * di + d];
                }
                u[t * di + d] = silu_d(a);
            }
        for (int64_t t = 0; t < L; t++)
            for (int64_t q = 0; q < xr; q++) {
                double a = 0.0;
                for (int64_t d = 0; d < di; d++)
                    a += wx[q * di + d] * u[t * di + d];
                dbl[t * xr + q] = a;
            }
        memset(h, 0, sizeof(double) * (size_t)(di * n));
        for (int64_t t = 0; t < L; t++) {
            const double *dtl = dbl + t * xr, *Bt = dtl + r, *Ct = Bt + n;
            for (int64_t d = 0; d < di; d++) {
                double dl = bdt[d];
                for (int64_t q = 0; q < r; q++)
                    dl += wdt[d * r + q] * dtl[q];
                const double dt = softplus_d(dl), uu = u[t * di + d];
                double acc = 0.0;
                for (int64_t j = 0; j < n; j++) {
                    const double A = -exp(al[d * n + j]);
                    double *hh = h + d * n + j;
                    *hh = exp(dt * A) * *hh + dt * Bt[j] * uu;
                    acc += Ct[j] * *hh;
                }
                ys[d] = (acc + D[d] * uu) * silu_d(z[t * di + d]);
            }
            for (int64_t m = 0; m < dm; m++) {
                double a = 0.0;
                for (int64_t d = 0; d < di; d++)
                    a += wo[m * di + d] * ys[d];
                y[(b * L + t) * dm + m] = a;
            }
        }
    }
    free(xi); free(z); free(u); free(dbl); free(h); free(ys);
}

static void drmsnorm(int64_t rows, int64_t dm, const double *in, double *out,
                     const double *w)
{
    for (int64_t i = 0; i < rows; i++) {
        double ss = 0.0;
        for (int64_t j = 0; j < dm; j++)
            ss += in[i * dm + j] * in[i * dm + j];
        const double s = 1.0 / sqrt(ss / (double)dm + 1e-5);
        for (int64_t j = 0; j < dm; j++)
            out[i * dm + j] = in[i * dm + j] * s * w[j];
    }
}

static void param_counts(const dims *c, int64_t cnt[NP])
{
    cnt[SSM_MAMBA_IN_PROJ] = 2 * c->di * c->dm;
    cnt[SSM_MAMBA_CONV_W] = c->di * c->k;
    cnt[SSM_MAMBA_CONV_B] = c->di;
    cnt[SSM_MAMBA_X_PROJ] = (c->r + 2 * c->n) * c->di;
    cnt[SSM_MAMBA_DT_PROJ_W] = c->di * c->r;
    cnt[SSM_MAMBA_DT_PROJ_B] = c->di;
    cnt[SSM_MAMBA_A_LOG] = c->di * c->n;
    cnt[SSM_MAMBA_D] = c->di;
    cnt[SSM_MAMBA_OUT_PROJ] = c->dm * c->di;
}

/* The stack forward in double over the flat parameter vector of
 * ssm_mamba_stack_params_get (per layer: nine tensors, norm; then norm_f). */
static void dstack(const dims *c, int64_t nl, const double *theta, int64_t B,
                   int64_t L, const double *x, double *y)
{
    int64_t cnt[NP], per = c->dm;
    param_counts(c, cnt);
    for (int i = 0; i < NP; i++)
        per += cnt[i];
    const int64_t na = B * L * c->dm;
    double *h = malloc(sizeof(double) * (size_t)na), *nrm = malloc(sizeof(double) * (size_t)na),
           *o = malloc(sizeof(double) * (size_t)na);
    memcpy(h, x, sizeof(double) * (size_t)na);
    for (int64_t l = 0; l < nl; l++) {
        double *p[NP];
        const double *q = theta + l * per;
        for (int i = 0; i < NP; i++) {
            p[i] = (double *)(uintptr_t)q;
            q += cnt[i];
        }
        drmsnorm(B * L, c->dm, h, nrm, q);
        dblock(c, p, B, L, nrm, o);
        for (int64_t i = 0; i < na; i++)
            h[i] += o[i];
    }
    drmsnorm(B * L, c->dm, h, y, theta + nl * per);
    free(h); free(nrm); free(o);
}

/* ------------------------------------------------------------ helpers --- */

typedef struct loss_ctx {
    dims c;
    int64_t B, L, nl;          /* nl 0: a bare block */
    double *p[NP];             /* block */
    double *theta;             /* stack */
    double *x, *R, *y;
} loss_ctx;

static double loss_of(loss_ctx *q)
{
    if (q->nl == 0)
        dblock(&q->c, q->p, q->B, q->L, q->x, q->y);
    else
        dstack(&q->c, q->nl, q->theta, q->B, q->L, q->x, q->y);
    double s = 0.0;
    for (int64_t i = 0; i < q->B * q->L * q->c.dm; i++)
        s += q->y[i] * q->R[i];
    return s;
}

/* max |g - fd| / (4 S eps_f max|fd| + FD error) over the n entries of v. */
static double fd_ratio(const float *g, double *v, int64_t n, loss_ctx *q,
                       double S, const char *name)
{
    double err = 0.0, scale = 0.0, fderr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double v0 = v[i], hs = 1e-5 * fmax(1.0, fabs(v0));
        v[i] = v0 + hs;
        const double lp = loss_of(q);
        v[i] = v0 - hs;
        const double lm = loss_of(q);
        v[i] = v0;
        const double fd = (lp - lm) / (2.0 * hs);
        fderr = fmax(fderr, 16.0 * DBL_EPSILON * fmax(fabs(lp), fabs(lm)) / hs + 1e-9 * fabs(fd));
        err = fmax(err, fabs((double)g[i] - fd));
        scale = fmax(scale, fabs(fd));
    }
    const double bound = 4.0 * S * FLT_EPSILON * scale + fderr;
    printf("  %-10s err %.2e bound %.2e ratio %.3f\n", name, err, bound, err / bound);
    return err / bound;
}

static const char *pname[NP] = { "in_proj", "conv_w", "conv_b", "x_proj", "dt_proj_w",
                                 "dt_proj_b", "A_log", "D", "out_proj" };

/* A block of the given shape with parameters away from the defaults' tiny
 * dt (so A and the state matter): dt bias for softplus in ~[0.05, 1],
 * A_log around log(n + 1), random D and conv bias. */
static ssm_mamba *make_block(const dims *c, uint64_t seed)
{
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = c->dm; cfg.d_state = c->n; cfg.d_conv = c->k;
    cfg.expand = c->di / c->dm; cfg.dt_rank = c->r;
    ssm_mamba *m = NULL;
    ck_assert_int_eq(ssm_mamba_create(&m, &cfg, seed), SSM_OK);
    tu_rng g = { seed * 7 + 1 };
    float *v = tu_alloc((size_t)(c->di * c->n), 4);
    for (int64_t d = 0; d < c->di; d++)
        v[d] = (float)tu_range(&g, -3.0, 0.5);
    ck_assert_int_eq(ssm_mamba_set_param(m, SSM_MAMBA_DT_PROJ_B, v, c->di), SSM_OK);
    for (int64_t d = 0; d < c->di; d++)
        v[d] = (float)(1.0 + 0.3 * tu_normal(&g));
    ck_assert_int_eq(ssm_mamba_set_param(m, SSM_MAMBA_D, v, c->di), SSM_OK);
    for (int64_t d = 0; d < c->di; d++)
        v[d] = (float)(0.3 * tu_normal(&g));
    ck_assert_int_eq(ssm_mamba_set_param(m, SSM_MAMBA_CONV_B, v, c->di), SSM_OK);
    for (int64_t i = 0; i < c->di * c->n; i++)
        v[i] = (float)(log((double)(i % c->n) + 1.0) + 0.2 * tu_normal(&g));
    ck_assert_int_eq(ssm_mamba_set_param(m, SSM_MAMBA_A_LOG, v, c->di * c->n), SSM_OK);
    free(v);
    return m;
}

/* ------------------------------------------------------------- block --- */

static const int64_t bcases[][7] = {
    /* B, L, Dm, N, K, expand, R */
    { 1, 1, 4, 2, 2, 2, 1 },
    { 2, 7, 4, 3, 4, 2, 2 },
    { 1, 33, 6, 5, 3, 2, 1 },
    { 2, 33, 8, 4, 4, 1, 3 },
    { 2, 7, 5, 2, 1, 2, 2 },
};

START_TEST(block_matches_finite_differences)
{
    const int64_t *cs = bcases[_i];
    const int64_t B = cs[0], L = cs[1];
    dims c = { cs[2], cs[2] * cs[5], cs[3], cs[4], cs[6] };
    ssm_mamba *m = make_block(&c, 40u + (uint64_t)_i);
    int64_t cnt[NP];
    param_counts(&c, cnt);
    const int64_t na = B * L * c.dm;
    tu_rng g = { 900u + (uint64_t)_i };
    float *x = tu_alloc((size_t)na, 4), *R = tu_alloc((size_t)na, 4), *dx = tu_alloc((size_t)na, 4);
    tu_fill_normal_f(&g, x, na, 1.0);
    tu_fill_normal_f(&g, R, na, 1.0);
    loss_ctx q = { c, B, L, 0, { 0 }, NULL, tu_alloc((size_t)na, 8), tu_alloc((size_t)na, 8),
                   tu_alloc((size_t)na, 8) };
    float *gp[NP], *pf[NP];
    for (int i = 0; i < NP; i++) {
        int64_t n = 0;
        ck_assert_int_eq(ssm_mamba_param_count(m, (ssm_mamba_param)i, &n), SSM_OK);
        ck_assert_int_eq(n, cnt[i]);
        gp[i] = tu_alloc((size_t)n, 4);
        pf[i] = tu_alloc((size_t)n, 4);
        q.p[i] = tu_alloc((size_t)n, 8);
        ck_assert_int_eq(ssm_mamba_get_param(m, (ssm_mamba_param)i, pf[i], n), SSM_OK);
        for (int64_t j = 0; j < n; j++)
            q.p[i][j] = pf[i][j];
    }
    for (int64_t i = 0; i < na; i++) { q.x[i] = x[i]; q.R[i] = R[i]; }
    ck_assert_int_eq(ssm_mamba_backward(m, B, L, x, R, dx, gp), SSM_OK);

    /* The forwards first: _det and ssm_mamba_forward against the double one. */
    const double S = (double)(c.dm + c.di + c.r + c.n + c.k + B * L + L + c.n + 4);
    float *y1 = tu_alloc((size_t)na, 4), *y2 = tu_alloc((size_t)na, 4);
    ck_assert_int_eq(ssm_mamba_forward_det(m, B, L, x, y1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_forward(m, NULL, B, L, x, y2), SSM_OK);
    dblock(&c, q.p, B, L, q.x, q.y);
    double e1 = 0.0, e2 = 0.0, ys = 0.0;
    for (int64_t i = 0; i < na; i++) {
        e1 = fmax(e1, fabs(y1[i] - q.y[i]));
        e2 = fmax(e2, fabs(y2[i] - q.y[i]));
        ys = fmax(ys, fabs(q.y[i]));
    }
    printf("block B %lld L %lld Dm %lld Di %lld N %lld K %lld R %lld:\n", (long long)B,
           (long long)L, (long long)c.dm, (long long)c.di, (long long)c.n, (long long)c.k,
           (long long)c.r);
    TU_CHECK_ERR(e1, 4.0 * S * FLT_EPSILON * ys, "forward_det vs double forward");
    TU_CHECK_ERR(e2, 4.0 * S * FLT_EPSILON * ys, "ssm_mamba_forward vs double forward");

    double worst = fd_ratio(dx, q.x, na, &q, S, "dx");
    for (int i = 0; i < NP; i++)
        worst = fmax(worst, fd_ratio(gp[i], q.p[i], cnt[i], &q, S, pname[i]));
    TU_CHECK_ERR(worst, 1.0, "block gradients vs finite differences (worst ratio)");

    /* NULL outputs change nothing else, bit for bit. */
    for (int skip = -1; skip < NP; skip++) {
        float *g2[NP], *dx2 = tu_alloc((size_t)na, 4);
        for (int i = 0; i < NP; i++)
            g2[i] = i == skip ? NULL : tu_alloc((size_t)cnt[i], 4);
        ck_assert_int_eq(ssm_mamba_backward(m, B, L, x, R, skip == -1 ? NULL : dx2, g2), SSM_OK);
        if (skip != -1)
            ck_assert(!memcmp(dx, dx2, (size_t)na * 4));
        for (int i = 0; i < NP; i++)
            if (g2[i]) {
                ck_assert_msg(!memcmp(gp[i], g2[i], (size_t)cnt[i] * 4), "%s changed with %d NULL",
                              pname[i], skip);
                free(g2[i]);
            }
        free(dx2);
    }
    float *dx3 = tu_alloc((size_t)na, 4);
    ck_assert_int_eq(ssm_mamba_backward(m, B, L, x, R, dx3, NULL), SSM_OK);
    ck_assert(!memcmp(dx, dx3, (size_t)na * 4));
    free(dx3);

    for (int i = 0; i < NP; i++) { free(gp[i]); free(pf[i]); free(q.p[i]); }
    free(x); free(R); free(dx); free(y1); free(y2); free(q.x); free(q.R); free(q.y);
    ssm_mamba_destroy(m);
}
END_TEST

/* ------------------------------------------------------------- stack --- */

static ssm_mamba_stack *make_stack(const dims *c, int64_t nl, uint64_t seed)
{
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = c->dm; cfg.d_state = c->n; cfg.d_conv = c->k;
    cfg.expand = c->di / c->dm; cfg.dt_rank = c->r;
    ssm_mamba_stack *s = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&s, &cfg, nl, seed), SSM_OK);
    /* Non-trivial parameters: the same perturbation as the block tests,
     * through the flat vector, and norm weights around 1. */
    int64_t tot = 0;
    ck_assert_int_eq(ssm_mamba_stack_param_total(s, &tot), SSM_OK);
    float *th = tu_alloc((size_t)tot, 4);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, th, tot), SSM_OK);
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba *tmp = make_block(c, seed + 100 * (uint64_t)l);
        ssm_mamba *dst = NULL;
        ck_assert_int_eq(ssm_mamba_stack_block(s, l, &dst), SSM_OK);
        for (int i = 0; i < NP; i++) {
            int64_t n = 0;
            ck_assert_int_eq(ssm_mamba_param_count(tmp, (ssm_mamba_param)i, &n), SSM_OK);
            float *v = tu_alloc((size_t)n, 4);
            ck_assert_int_eq(ssm_mamba_get_param(tmp, (ssm_mamba_param)i, v, n), SSM_OK);
            ck_assert_int_eq(ssm_mamba_set_param(dst, (ssm_mamba_param)i, v, n), SSM_OK);
            free(v);
        }
        ssm_mamba_destroy(tmp);
    }
    tu_rng g = { seed };
    float *w = tu_alloc((size_t)c->dm, 4);
    for (int64_t l = 0; l <= nl; l++) {
        for (int64_t j = 0; j < c->dm; j++)
            w[j] = (float)(1.0 + 0.2 * tu_normal(&g));
        ck_assert_int_eq(ssm_mamba_stack_set_norm(s, l, w, c->dm), SSM_OK);
    }
    free(w); free(th);
    return s;
}

static const int64_t scases[][8] = {
    /* B, L, Dm, N, K, expand, R, layers */
    { 2, 7, 4, 3, 3, 2, 1, 2 },
    { 1, 1, 4, 2, 2, 2, 2, 1 },
    { 1, 33, 5, 2, 4, 2, 1, 3 },
};

START_TEST(stack_matches_finite_differences)
{
    const int64_t *cs = scases[_i];
    const int64_t B = cs[0], L = cs[1], nl = cs[7];
    dims c = { cs[2], cs[2] * cs[5], cs[3], cs[4], cs[6] };
    ssm_mamba_stack *s = make_stack(&c, nl, 70u + (uint64_t)_i);
    const int64_t na = B * L * c.dm;
    int64_t tot = 0, gtot = 0;
    ck_assert_int_eq(ssm_mamba_stack_param_total(s, &tot), SSM_OK);
    tu_rng g = { 990u + (uint64_t)_i };
    float *x = tu_alloc((size_t)na, 4), *R = tu_alloc((size_t)na, 4), *dx = tu_alloc((size_t)na, 4);
    float *th = tu_alloc((size_t)tot, 4);
    tu_fill_normal_f(&g, x, na, 1.0);
    tu_fill_normal_f(&g, R, na, 1.0);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, th, tot), SSM_OK);
    loss_ctx q = { c, B, L, nl, { 0 }, tu_alloc((size_t)tot, 8), tu_alloc((size_t)na, 8),
                   tu_alloc((size_t)na, 8), tu_alloc((size_t)na, 8) };
    for (int64_t i = 0; i < tot; i++) q.theta[i] = th[i];
    for (int64_t i = 0; i < na; i++) { q.x[i] = x[i]; q.R[i] = R[i]; }
    ssm_mamba_stack_grads *gr = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&gr, s), SSM_OK);
    float *gd = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_data(gr, &gd, &gtot), SSM_OK);
    ck_assert_int_eq(gtot, tot);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, B, L, x, R, dx, gr), SSM_OK);

    const double S = (double)(nl + 1) *
                     (double)(c.dm + c.di + c.r + c.n + c.k + B * L + L + c.n + 4);
    float *y1 = tu_alloc((size_t)na, 4), *y2 = tu_alloc((size_t)na, 4);
    ck_assert_int_eq(ssm_mamba_stack_forward_det(s, B, L, x, y1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_forward(s, NULL, B, L, x, y2), SSM_OK);
    dstack(&c, nl, q.theta, B, L, q.x, q.y);
    double e1 = 0.0, e2 = 0.0, ys = 0.0;
    for (int64_t i = 0; i < na; i++) {
        e1 = fmax(e1, fabs(y1[i] - q.y[i]));
        e2 = fmax(e2, fabs(y2[i] - q.y[i]));
        ys = fmax(ys, fabs(q.y[i]));
    }
    printf("stack %lld layers B %lld L %lld Dm %lld N %lld K %lld R %lld:\n", (long long)nl,
           (long long)B, (long long)L, (long long)c.dm, (long long)c.n, (long long)c.k,
           (long long)c.r);
    TU_CHECK_ERR(e1, 4.0 * S * FLT_EPSILON * ys, "stack forward_det vs double forward");
    TU_CHECK_ERR(e2, 4.0 * S * FLT_EPSILON * ys, "stack forward vs double forward");

    /* Per tensor, through the views (which must tile the flat vector). */
    double worst = fd_ratio(dx, q.x, na, &q, S, "dx");
    int64_t off = 0;
    for (int64_t l = 0; l <= nl; l++) {
        for (int i = 0; l < nl && i < NP; i++) {
            float *v = NULL;
            int64_t n = 0;
            ck_assert_int_eq(ssm_mamba_stack_grads_block(gr, l, (ssm_mamba_param)i, &v, &n),
                             SSM_OK);
            ck_assert_ptr_eq(v, gd + off);
            char nm[64];
            snprintf(nm, sizeof nm, "%lld.%s", (long long)l, pname[i]);
            worst = fmax(worst, fd_ratio(v, q.theta + off, n, &q, S, nm));
            off += n;
        }
        float *v = NULL;
        int64_t n = 0;
        ck_assert_int_eq(ssm_mamba_stack_grads_norm(gr, l, &v, &n), SSM_OK);
        ck_assert_ptr_eq(v, gd + off);
        ck_assert_int_eq(n, c.dm);
        char nm[64];
        snprintf(nm, sizeof nm, "%lld.norm", (long long)l);
        worst = fmax(worst, fd_ratio(v, q.theta + off, n, &q, S, nm));
        off += n;
    }
    ck_assert_int_eq(off, tot);
    TU_CHECK_ERR(worst, 1.0, "stack gradients vs finite differences (worst ratio)");

    /* NULL dx / NULL grads: the other output unchanged bit for bit. */
    float *dx2 = tu_alloc((size_t)na, 4), *gcopy = tu_alloc((size_t)tot, 4);
    memcpy(gcopy, gd, (size_t)tot * 4);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, B, L, x, R, dx2, NULL), SSM_OK);
    ck_assert(!memcmp(dx, dx2, (size_t)na * 4));
    memset(gd, 0x7f, (size_t)tot * 4);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, B, L, x, R, NULL, gr), SSM_OK);
    ck_assert(!memcmp(gd, gcopy, (size_t)tot * 4));

    /* params_set round trip: the same bytes back. */
    ck_assert_int_eq(ssm_mamba_stack_params_set(s, th, tot), SSM_OK);
    float *th2 = tu_alloc((size_t)tot, 4);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, th2, tot), SSM_OK);
    ck_assert(!memcmp(th, th2, (size_t)tot * 4));

    free(dx2); free(gcopy); free(th2);
    free(x); free(R); free(dx); free(th); free(y1); free(y2);
    free(q.theta); free(q.x); free(q.R); free(q.y);
    ssm_mamba_stack_grads_destroy(gr);
    ssm_mamba_stack_destroy(s);
}
END_TEST

/* ----------------------------------------------------------- threads --- */

/* Shapes large enough for several GEMM tiles in both directions and for
 * OpenBLAS to thread a whole product (M N K > 262144). */
START_TEST(threads_identical)
{
    dims c = { 160, 320, 8, 4, 10 };
    const int64_t B = 2, L = 300, na = B * L * c.dm;
    ssm_mamba *m = make_block(&c, 5);
    int64_t cnt[NP];
    param_counts(&c, cnt);
    tu_rng g = { 77 };
    float *x = tu_alloc((size_t)na, 4), *R = tu_alloc((size_t)na, 4);
    tu_fill_normal_f(&g, x, na, 1.0);
    tu_fill_normal_f(&g, R, na, 1.0);
    float *ref[NP + 2], *out[NP + 2];
    int64_t sz[NP + 2];
    for (int i = 0; i < NP; i++)
        sz[i] = cnt[i];
    sz[NP] = na;       /* dx */
    sz[NP + 1] = na;   /* forward_det y */
    for (int i = 0; i < NP + 2; i++) {
        ref[i] = tu_alloc((size_t)sz[i], 4);
        out[i] = tu_alloc((size_t)sz[i], 4);
    }
    /* A 2-layer stack too. */
    dims cs = { 48, 96, 4, 4, 3 };
    const int64_t nas = B * L * cs.dm;
    ssm_mamba_stack *s = make_stack(&cs, 2, 9);
    ssm_mamba_stack_grads *g1 = NULL, *g2 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g1, s), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g2, s), SSM_OK);
    float *xs = tu_alloc((size_t)nas, 4), *Rs = tu_alloc((size_t)nas, 4);
    float *dxs1 = tu_alloc((size_t)nas, 4), *dxs2 = tu_alloc((size_t)nas, 4);
    float *ys1 = tu_alloc((size_t)nas, 4), *ys2 = tu_alloc((size_t)nas, 4);
    tu_fill_normal_f(&g, xs, nas, 1.0);
    tu_fill_normal_f(&g, Rs, nas, 1.0);
    float *gd1 = NULL, *gd2 = NULL;
    int64_t gn = 0;
    ck_assert_int_eq(ssm_mamba_stack_grads_data(g1, &gd1, &gn), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_data(g2, &gd2, NULL), SSM_OK);

    for (int nt = 1; nt <= 3; nt++) {
        tu_set_threads(nt);
        float **o = nt == 1 ? ref : out;
        ck_assert_int_eq(ssm_mamba_backward(m, B, L, x, R, o[NP], o), SSM_OK);
        ck_assert_int_eq(ssm_mamba_forward_det(m, B, L, x, o[NP + 1]), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_backward(s, B, L, xs, Rs, nt == 1 ? dxs1 : dxs2,
                                                  nt == 1 ? g1 : g2), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_forward_det(s, B, L, xs, nt == 1 ? ys1 : ys2), SSM_OK);
        if (nt > 1) {
            for (int i = 0; i < NP + 2; i++)
                ck_assert_msg(!memcmp(ref[i], out[i], (size_t)sz[i] * 4),
                              "block output %d differs at %d threads", i, nt);
            ck_assert_msg(!memcmp(dxs1, dxs2, (size_t)nas * 4), "stack dx, %d threads", nt);
            ck_assert_msg(!memcmp(gd1, gd2, (size_t)gn * 4), "stack grads, %d threads", nt);
            ck_assert_msg(!memcmp(ys1, ys2, (size_t)nas * 4), "stack forward_det, %d threads", nt);
        }
    }
    tu_set_threads(2);
    printf("block (B %lld, L %lld, Dm %lld) and 2-layer stack: 1/2/3 threads identical bytes\n",
           (long long)B, (long long)L, (long long)c.dm);
    for (int i = 0; i < NP + 2; i++) { free(ref[i]); free(out[i]); }
    free(x); free(R); free(xs); free(Rs); free(dxs1); free(dxs2); free(ys1); free(ys2);
    ssm_mamba_stack_grads_destroy(g1);
    ssm_mamba_stack_grads_destroy(g2);
    ssm_mamba_stack_destroy(s);
    ssm_mamba_destroy(m);
}
END_TEST

/* ------------------------------------------------------ bad arguments --- */

START_TEST(bad_arguments)
{
    dims c = { 4, 8, 2, 3, 1 };
    ssm_mamba *m = make_block(&c, 3);
    ssm_mamba_stack *s = make_stack(&c, 2, 4);
    dims c2 = { 4, 8, 3, 3, 1 };
    ssm_mamba_stack *s2 = make_stack(&c2, 2, 4);
    ssm_mamba_stack *s3 = make_stack(&c, 3, 4);
    float x[64] = { 0 }, y[64], dy[64] = { 0 };
    const int64_t big = INT64_MAX / 2, huge_l = (int64_t)INT_MAX + 1;
    struct { int64_t B, L; int nx, ny; } cases[] = {
        { 0, 4, 0, 0 }, { 1, 0, 0, 0 }, { -1, 4, 0, 0 }, { 1, -3, 0, 0 },
        { big, 4, 0, 0 }, { 4, big, 0, 0 }, { 1, huge_l, 0, 0 }, { big, big, 0, 0 },
        { 1, 4, 1, 0 }, { 1, 4, 0, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const float *xx = cases[i].nx ? NULL : x;
        const float *dd = cases[i].ny ? NULL : dy;
        float *yy = cases[i].ny ? NULL : y;
        ck_assert_int_eq(ssm_mamba_backward(m, cases[i].B, cases[i].L, xx, dd, y, NULL), SSM_ERR_ARG);
        ck_assert_int_eq(ssm_mamba_forward_det(m, cases[i].B, cases[i].L, xx, yy), SSM_ERR_ARG);
        ck_assert_int_eq(ssm_mamba_stack_backward(s, cases[i].B, cases[i].L, xx, dd, y, NULL),
                         SSM_ERR_ARG);
        ck_assert_int_eq(ssm_mamba_stack_forward_det(s, cases[i].B, cases[i].L, xx, yy),
                         SSM_ERR_ARG);
    }
    ck_assert_int_eq(ssm_mamba_backward(NULL, 1, 4, x, dy, y, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_forward_det(NULL, 1, 4, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_backward(NULL, 1, 4, x, dy, y, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_forward_det(NULL, 1, 4, x, y), SSM_ERR_ARG);
    /* A valid call for contrast. */
    ck_assert_int_eq(ssm_mamba_backward(m, 2, 8, x, dy, y, NULL), SSM_OK);

    /* Gradient objects: made for another shape (d_state, layer count). */
    ssm_mamba_stack_grads *g = NULL, *g2 = NULL, *g3 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_create(NULL, s), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g, NULL), SSM_ERR_ARG);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g, s), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g2, s2), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g3, s3), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, 1, 4, x, dy, y, g2), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, 1, 4, x, dy, y, g3), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, 1, 4, x, dy, y, g), SSM_OK);
    float *v = (float *)1;
    int64_t n = 0;
    ck_assert_int_eq(ssm_mamba_stack_grads_data(NULL, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_data(g, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(g, -1, SSM_MAMBA_D, &v, &n), SSM_ERR_ARG);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(g, 2, SSM_MAMBA_D, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(g, 0, (ssm_mamba_param)9, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(g, 0, (ssm_mamba_param)-1, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(NULL, 0, SSM_MAMBA_D, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_block(g, 0, SSM_MAMBA_D, NULL, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_norm(g, 3, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_norm(g, -1, &v, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_grads_norm(g, 2, &v, NULL), SSM_OK);
    ck_assert_ptr_nonnull(v);

    /* Flat parameters: count, NULL, non-finite values, exp(A_log) overflow;
     * on error the stack is unchanged. */
    int64_t tot = 0;
    ck_assert_int_eq(ssm_mamba_stack_param_total(s, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_param_total(NULL, &tot), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_param_total(s, &tot), SSM_OK);
    float *th = tu_alloc((size_t)tot, 4), *th2 = tu_alloc((size_t)tot, 4);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, th, tot), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, th, tot - 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_params_get(s, NULL, tot), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_params_get(NULL, th, tot), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_params_set(s, th, tot + 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_params_set(s, NULL, tot), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba_stack_params_set(NULL, th, tot), SSM_ERR_ARG);
    memcpy(th2, th, (size_t)tot * 4);
    for (int k = 0; k < 3; k++) {
        float *bad = tu_alloc((size_t)tot, 4);
        memcpy(bad, th, (size_t)tot * 4);
        /* k 0: NaN in the last tensor; 1: Inf in the first; 2: A_log 100 in layer 1 */
        int64_t per = (tot - c.dm) / 2, alog_off = 2 * c.di * c.dm + c.di * c.k + c.di +
                                                 (c.r + 2 * c.n) * c.di + c.di * c.r + c.di;
        if (k == 0) bad[tot - 1] = NAN;
        if (k == 1) bad[0] = INFINITY;
        if (k == 2) bad[per + alog_off] = 100.0f;
        ck_assert_int_eq(ssm_mamba_stack_params_set(s, bad, tot), SSM_ERR_ARG);
        ck_assert_int_eq(ssm_mamba_stack_params_get(s, th2, tot), SSM_OK);
        ck_assert(!memcmp(th, th2, (size_t)tot * 4));
        free(bad);
    }
    free(th); free(th2);
    ssm_mamba_stack_grads_destroy(g);
    ssm_mamba_stack_grads_destroy(g2);
    ssm_mamba_stack_grads_destroy(g3);
    ssm_mamba_stack_grads_destroy(NULL);
    ssm_mamba_stack_destroy(s);
    ssm_mamba_stack_destroy(s2);
    ssm_mamba_stack_destroy(s3);
    ssm_mamba_destroy(m);
}
END_TEST

/* ---------------------------------------------------- PyTorch fixture --- */

typedef struct fx_tensor { char name[48]; int64_t n; double *v; } fx_tensor;
typedef struct fixture { int64_t cfg[8]; int nt; fx_tensor t[64]; } fixture;

static void fixture_load(const char *file, fixture *fx)
{
    const char *f = __FILE__, *sl = strrchr(f, '/');
    char path[1200];
    snprintf(path, sizeof path, "%.*s/fixtures/mamba_bwd/%s", sl ? (int)(sl - f) : 1,
             sl ? f : ".", file);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    memset(fx, 0, sizeof *fx);
    char word[64];
    ck_assert_int_eq(fscanf(fp, "%63s", word), 1);
    ck_assert_str_eq(word, "config");
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(fscanf(fp, "%" SCNd64, &fx->cfg[i]), 1);
    while (fx->nt < 64 && fscanf(fp, "%47s", fx->t[fx->nt].name) == 1) {
        fx_tensor *t = &fx->t[fx->nt];
        ck_assert_int_eq(fscanf(fp, "%" SCNd64, &t->n), 1);
        ck_assert(t->n > 0 && t->n < 1000000);
        t->v = tu_alloc((size_t)t->n, 8);
        for (int64_t i = 0; i < t->n; i++)
            ck_assert_int_eq(fscanf(fp, "%la", &t->v[i]), 1);
        fx->nt++;
    }
    fclose(fp);
}

static const fx_tensor *fx_get(const fixture *fx, const char *name, int64_t n)
{
    for (int i = 0; i < fx->nt; i++)
        if (!strcmp(fx->t[i].name, name)) {
            ck_assert_msg(fx->t[i].n == n, "%s: %lld values, want %lld", name,
                          (long long)fx->t[i].n, (long long)n);
            return &fx->t[i];
        }
    ck_abort_msg("fixture tensor %s missing", name);
    return NULL;
}

static float *fx_floats(const fx_tensor *t)
{
    float *o = tu_alloc((size_t)t->n, 4);
    for (int64_t i = 0; i < t->n; i++) {
        o[i] = (float)t->v[i];
        ck_assert((double)o[i] == t->v[i]);   /* stored as float32 values */
    }
    return o;
}

/* max |a - ref| / (4 S eps_f max|ref|), printed. */
static double fx_ratio(const float *a, const fx_tensor *ref, double S, const char *what)
{
    double err = 0.0, sc = 0.0;
    for (int64_t i = 0; i < ref->n; i++) {
        err = fmax(err, fabs((double)a[i] - ref->v[i]));
        sc = fmax(sc, fabs(ref->v[i]));
    }
    const double bound = 4.0 * S * FLT_EPSILON * sc;
    printf("  %-18s err %.2e bound %.2e ratio %.3f\n", what, err, bound, err / bound);
    return err / bound;
}

static void fx_free(fixture *fx)
{
    for (int i = 0; i < fx->nt; i++)
        free(fx->t[i].v);
}

START_TEST(block_matches_pytorch)
{
    fixture fx;
    fixture_load("block.txt", &fx);
    const int64_t *k = fx.cfg;
    dims c = { k[0], k[0] * k[3], k[1], k[2], k[4] };
    const int64_t B = k[5], L = k[6], na = B * L * c.dm;
    ck_assert_int_eq(k[7], 0);
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = c.dm; cfg.d_state = c.n; cfg.d_conv = c.k; cfg.expand = k[3];
    cfg.dt_rank = c.r;
    ssm_mamba *m = NULL;
    ck_assert_int_eq(ssm_mamba_create(&m, &cfg, 1), SSM_OK);
    int64_t cnt[NP];
    param_counts(&c, cnt);
    float *gp[NP];
    char nm[64];
    for (int i = 0; i < NP; i++) {
        snprintf(nm, sizeof nm, "layer0.%s", pname[i]);
        float *v = fx_floats(fx_get(&fx, nm, cnt[i]));
        ck_assert_int_eq(ssm_mamba_set_param(m, (ssm_mamba_param)i, v, cnt[i]), SSM_OK);
        free(v);
        gp[i] = tu_alloc((size_t)cnt[i], 4);
    }
    float *x = fx_floats(fx_get(&fx, "x", na)), *R = fx_floats(fx_get(&fx, "R", na));
    float *y = tu_alloc((size_t)na, 4), *dx = tu_alloc((size_t)na, 4);
    const double S = (double)(c.dm + c.di + c.r + c.n + c.k + B * L + L + c.n + 4);
    printf("block vs PyTorch autograd (float64), Dm %lld N %lld K %lld R %lld B %lld L %lld:\n",
           (long long)c.dm, (long long)c.n, (long long)c.k, (long long)c.r, (long long)B,
           (long long)L);
    ck_assert_int_eq(ssm_mamba_forward_det(m, B, L, x, y), SSM_OK);
    double worst = fx_ratio(y, fx_get(&fx, "y", na), S, "y (forward_det)");
    ck_assert_int_eq(ssm_mamba_forward(m, NULL, B, L, x, y), SSM_OK);
    worst = fmax(worst, fx_ratio(y, fx_get(&fx, "y", na), S, "y (forward)"));
    ck_assert_int_eq(ssm_mamba_backward(m, B, L, x, R, dx, gp), SSM_OK);
    worst = fmax(worst, fx_ratio(dx, fx_get(&fx, "dx", na), S, "dx"));
    for (int i = 0; i < NP; i++) {
        snprintf(nm, sizeof nm, "dlayer0.%s", pname[i]);
        worst = fmax(worst, fx_ratio(gp[i], fx_get(&fx, nm, cnt[i]), S, nm));
        free(gp[i]);
    }
    TU_CHECK_ERR(worst, 1.0, "block vs PyTorch (worst ratio)");
    free(x); free(R); free(y); free(dx);
    ssm_mamba_destroy(m);
    fx_free(&fx);
}
END_TEST

START_TEST(stack_matches_pytorch)
{
    fixture fx;
    fixture_load("stack.txt", &fx);
    const int64_t *k = fx.cfg;
    dims c = { k[0], k[0] * k[3], k[1], k[2], k[4] };
    const int64_t B = k[5], L = k[6], nl = k[7], na = B * L * c.dm;
    ck_assert(nl >= 1);
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = c.dm; cfg.d_state = c.n; cfg.d_conv = c.k; cfg.expand = k[3];
    cfg.dt_rank = c.r;
    ssm_mamba_stack *s = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&s, &cfg, nl, 1), SSM_OK);
    int64_t cnt[NP];
    param_counts(&c, cnt);
    char nm[64];
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba *b = NULL;
        ck_assert_int_eq(ssm_mamba_stack_block(s, l, &b), SSM_OK);
        for (int i = 0; i < NP; i++) {
            snprintf(nm, sizeof nm, "layer%lld.%s", (long long)l, pname[i]);
            float *v = fx_floats(fx_get(&fx, nm, cnt[i]));
            ck_assert_int_eq(ssm_mamba_set_param(b, (ssm_mamba_param)i, v, cnt[i]), SSM_OK);
            free(v);
        }
    }
    for (int64_t l = 0; l <= nl; l++) {
        if (l < nl)
            snprintf(nm, sizeof nm, "layer%lld.norm", (long long)l);
        else
            snprintf(nm, sizeof nm, "norm_f");
        float *v = fx_floats(fx_get(&fx, nm, c.dm));
        ck_assert_int_eq(ssm_mamba_stack_set_norm(s, l, v, c.dm), SSM_OK);
        free(v);
    }
    float *x = fx_floats(fx_get(&fx, "x", na)), *R = fx_floats(fx_get(&fx, "R", na));
    float *y = tu_alloc((size_t)na, 4), *dx = tu_alloc((size_t)na, 4);
    const double S = (double)(nl + 1) *
                     (double)(c.dm + c.di + c.r + c.n + c.k + B * L + L + c.n + 4);
    printf("%lld-layer stack vs PyTorch autograd (float64), Dm %lld N %lld K %lld R %lld B %lld "
           "L %lld:\n", (long long)nl, (long long)c.dm, (long long)c.n, (long long)c.k,
           (long long)c.r, (long long)B, (long long)L);
    ck_assert_int_eq(ssm_mamba_stack_forward_det(s, B, L, x, y), SSM_OK);
    double worst = fx_ratio(y, fx_get(&fx, "y", na), S, "y (forward_det)");
    ssm_mamba_stack_grads *g = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g, s), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_backward(s, B, L, x, R, dx, g), SSM_OK);
    worst = fmax(worst, fx_ratio(dx, fx_get(&fx, "dx", na), S, "dx"));
    for (int64_t l = 0; l <= nl; l++) {
        float *v = NULL;
        for (int i = 0; l < nl && i < NP; i++) {
            ck_assert_int_eq(ssm_mamba_stack_grads_block(g, l, (ssm_mamba_param)i, &v, NULL),
                             SSM_OK);
            snprintf(nm, sizeof nm, "dlayer%lld.%s", (long long)l, pname[i]);
            worst = fmax(worst, fx_ratio(v, fx_get(&fx, nm, cnt[i]), S, nm));
        }
        ck_assert_int_eq(ssm_mamba_stack_grads_norm(g, l, &v, NULL), SSM_OK);
        if (l < nl)
            snprintf(nm, sizeof nm, "dlayer%lld.norm", (long long)l);
        else
            snprintf(nm, sizeof nm, "dnorm_f");
        worst = fmax(worst, fx_ratio(v, fx_get(&fx, nm, c.dm), S, nm));
    }
    TU_CHECK_ERR(worst, 1.0, "stack vs PyTorch (worst ratio)");
    free(x); free(R); free(y); free(dx);
    ssm_mamba_stack_grads_destroy(g);
    ssm_mamba_stack_destroy(s);
    fx_free(&fx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mamba_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, block_matches_finite_differences, 0,
                        (int)(sizeof bcases / sizeof bcases[0]));
    tcase_add_loop_test(tc, stack_matches_finite_differences, 0,
                        (int)(sizeof scases / sizeof scases[0]));
    tcase_add_test(tc, block_matches_pytorch);
    tcase_add_test(tc, stack_matches_pytorch);
    tcase_add_test(tc, threads_identical);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
