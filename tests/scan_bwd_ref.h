/*
 * scan_bwd_ref.h -- shared by test_scan_bwd.c and wbtest_scan_bwd.c: random
 * selective-scan problems, a double-precision forward of API.md's
 * recurrence written here (not the library's), the scalar loss
 *   Loss = sum dy * y + sum dh_last * h_last
 * and its gradients by central finite differences in double.
 *
 * Error model of the check: the inputs are floats, exactly representable
 * in double, so the double forward computes the same function exactly up
 * to ~1e-16; the central difference with step hs has truncation error
 * ~hs^2 |f'''| / 6 ~ 1e-10 and rounding ~eps_d |Loss| / hs ~ 1e-11: both far
 * below the float rounding of the analytic gradient, which is bounded by
 * (number of dependent float operations) * eps_f * scale, the operations
 * being the L steps of the adjoint recurrence and the N-term sums:
 *   bound = 4 (L + N + 4) eps_f max|grad|
 * (rounding errors add up along the L steps and the N-term sums).
 */
#ifndef SCAN_BWD_REF_H
#define SCAN_BWD_REF_H

#include "testutil.h"

typedef struct bprob {
    int64_t batch, dim, dstate, len, ngroups;
    int softplus;
    /* float inputs (passed to the library) */
    float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0, *dy, *dhl;
    /* the same values in double (perturbed by the finite differences) */
    double *ud, *deltad, *Ad, *Bd, *Cd, *Dd, *zd, *biasd, *h0d, *dyd, *dhld;
} bprob;

enum { BO_D = 1, BO_Z = 2, BO_BIAS = 4, BO_SP = 8, BO_H0 = 16, BO_DHL = 32, BO_ALL = 63 };

static float *bp_fvec(tu_rng *r, int64_t n, double lo, double hi, int normal)
{
    float *x = tu_alloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(normal ? tu_normal(r) : tu_range(r, lo, hi));
    return x;
}

static double *bp_dvec(const float *x, int64_t n)
{
    if (!x)
        return NULL;
    double *y = tu_alloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}

/* dt in [0.02, 0.5] (decays that matter within a few steps), A = -exp(U),
 * U ~ U(0, log 4), everything else N(0, 1). */
static void bp_make(bprob *p, int64_t batch, int64_t dim, int64_t dstate,
                    int64_t len, int64_t ngroups, int opts, uint64_t seed)
{
    tu_rng r = { seed };
    memset(p, 0, sizeof *p);
    p->batch = batch; p->dim = dim; p->dstate = dstate; p->len = len;
    p->ngroups = ngroups; p->softplus = !!(opts & BO_SP);
    const int64_t nx = batch * dim * len, nbc = batch * ngroups * dstate * len;
    const int64_t ns = batch * dim * dstate;
    p->u = bp_fvec(&r, nx, 0, 0, 1);
    p->B = bp_fvec(&r, nbc, 0, 0, 1);
    p->C = bp_fvec(&r, nbc, 0, 0, 1);
    p->dy = bp_fvec(&r, nx, 0, 0, 1);
    p->A = tu_alloc((size_t)(dim * dstate), sizeof(float));
    for (int64_t i = 0; i < dim * dstate; i++)
        p->A[i] = (float)-exp(tu_range(&r, 0.0, log(4.0)));
    if (opts & BO_BIAS)
        p->bias = bp_fvec(&r, dim, -0.05, 0.05, 0);
    p->delta = tu_alloc((size_t)nx, sizeof(float));
    for (int64_t i = 0; i < nx; i++) {
        const double dt = exp(tu_range(&r, log(0.02), log(0.5)));
        p->delta[i] = (float)(p->softplus ? log(expm1(dt)) : dt);
        if (!p->softplus && p->bias) /* keep dt > 0 */
            p->delta[i] = (float)(dt + 0.05);
    }
    if (opts & BO_D)
        p->D = bp_fvec(&r, dim, 0, 0, 1);
    if (opts & BO_Z)
        p->z = bp_fvec(&r, nx, 0, 0, 1);
    if (opts & BO_H0)
        p->h0 = bp_fvec(&r, ns, 0, 0, 1);
    if (opts & BO_DHL)
        p->dhl = bp_fvec(&r, ns, 0, 0, 1);
    p->ud = bp_dvec(p->u, nx); p->deltad = bp_dvec(p->delta, nx);
    p->Ad = bp_dvec(p->A, dim * dstate); p->Bd = bp_dvec(p->B, nbc);
    p->Cd = bp_dvec(p->C, nbc); p->Dd = bp_dvec(p->D, dim);
    p->zd = bp_dvec(p->z, nx); p->biasd = bp_dvec(p->bias, dim);
    p->h0d = bp_dvec(p->h0, ns); p->dyd = bp_dvec(p->dy, nx);
    p->dhld = bp_dvec(p->dhl, ns);
}

static void bp_free(bprob *p)
{
    float *f[] = { p->u, p->delta, p->A, p->B, p->C, p->D, p->z, p->bias, p->h0, p->dy, p->dhl };
    double *d[] = { p->ud, p->deltad, p->Ad, p->Bd, p->Cd, p->Dd, p->zd, p->biasd, p->h0d,
                    p->dyd, p->dhld };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(f[i]);
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) free(d[i]);
}

static ssm_scan_args bp_args(const bprob *p)
{
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = p->batch; a.dim = p->dim; a.dstate = p->dstate; a.len = p->len;
    a.ngroups = p->ngroups; a.u = p->u; a.delta = p->delta; a.A = p->A;
    a.B = p->B; a.C = p->C; a.D = p->D; a.z = p->z; a.delta_bias = p->bias;
    a.delta_softplus = p->softplus; a.h0 = p->h0;
    return a;
}

/* The loss in double, a literal loop of the recurrence (API.md). */
static double bp_loss(const bprob *p)
{
    const int64_t N = p->dstate, L = p->len, cpg = p->dim / p->ngroups;
    double loss = 0.0;
    double *h = tu_alloc((size_t)N, sizeof(double));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t d = 0; d < p->dim; d++) {
            const int64_t g = d / cpg, bd = b * p->dim + d;
            const double *Bg = p->Bd + (b * p->ngroups + g) * N * L;
            const double *Cg = p->Cd + (b * p->ngroups + g) * N * L;
            for (int64_t n = 0; n < N; n++)
                h[n] = p->h0d ? p->h0d[bd * N + n] : 0.0;
            for (int64_t t = 0; t < L; t++) {
                const int64_t i = bd * L + t;
                const double x = p->deltad[i] + (p->biasd ? p->biasd[d] : 0.0);
                const double dt = p->softplus ? (x > 20.0 ? x : log1p(exp(x))) : x;
                double ys = 0.0;
                for (int64_t n = 0; n < N; n++) {
                    h[n] = exp(dt * p->Ad[d * N + n]) * h[n] + dt * p->ud[i] * Bg[n * L + t];
                    ys += Cg[n * L + t] * h[n];
                }
                double y = ys + (p->Dd ? p->Dd[d] * p->ud[i] : 0.0);
                if (p->zd)
                    y *= p->zd[i] / (1.0 + exp(-p->zd[i]));
                loss += p->dyd[i] * y;
            }
            if (p->dhld)
                for (int64_t n = 0; n < N; n++)
                    loss += p->dhld[bd * N + n] * h[n];
        }
    free(h);
    return loss;
}

/* Central difference of the loss in x[i] (x one of p's double arrays). */
static double bp_fd(const bprob *p, double *x, int64_t i)
{
    const double v = x[i], hs = 1e-5 * fmax(1.0, fabs(v));
    x[i] = v + hs;
    const double lp = bp_loss(p);
    x[i] = v - hs;
    const double lm = bp_loss(p);
    x[i] = v;
    return (lp - lm) / (2.0 * hs);
}

/* Compare an analytic float gradient g[n] with finite differences in x at
 * `count` indices (all when count >= n, else spread evenly); returns
 * error / bound and prints it. */
static double bp_check(const bprob *p, const char *name, const float *g,
                       double *x, int64_t n, int64_t count, const char *tag)
{
    const int64_t step = count >= n ? 1 : n / count;
    double err = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i += step) {
        const double fd = bp_fd(p, x, i);
        err = fmax(err, fabs((double)g[i] - fd));
        scale = fmax(scale, fabs(fd));
        if (!(g[i] == g[i]))
            err = INFINITY;
    }
    const double bound = 4.0 * ((double)p->len + (double)p->dstate + 4.0) * FLT_EPSILON
                         * fmax(scale, 1e-30);
    const double ratio = err / bound;
    if (ratio > 0.05)
        printf("  %s %-11s err %.2e scale %.2e ratio %.3f\n", tag, name, err, scale, ratio);
    return ratio;
}

#endif /* SCAN_BWD_REF_H */
