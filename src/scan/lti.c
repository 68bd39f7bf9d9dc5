/*
 * lti.c -- the recurrent mode of a dense single-input LTI system (HiPPO,
 * Gu et al. 2020, eq. (4) after discretization; S4, Gu et al. 2022, eq. (3)):
 *   x_t = Ad x_{t-1} + Bd u_t,   y_t = C x_t + D u_t,
 * the twin of the convolution mode y = K * u with K[l] = C Ad^l Bd.
 *
 * Why double inside: HiPPO matrices are far from normal (LegT's Ad has
 * ||Ad||_2 > 1 although it is stable), so a float state can amplify its own
 * rounding; carrying x in double makes the recurrent mode agree with the
 * convolution mode to float rounding of the output.  The cost is small for
 * the state sizes dense systems are used with (N up to a few hundred).
 *
 * Fixed accumulation order, vectorizable without reassociation: Ad is kept
 * transposed (column j contiguous) and x_new = Bd u_t + sum_j Ad[:,j] x[j]
 * is accumulated column by column, j = 0..N-1, every lane of the vector
 * owning a different state index i; y likewise over i = 0..N-1 with C kept
 * transposed.  One batch row is one thread's work, so the bytes do not
 * depend on the number of threads.
 */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

/* Below this many multiply-adds the OpenMP region costs more than it saves. */
#define LTI_PAR_WORK ((int64_t)1 << 20)

typedef struct lti_sys {
    int64_t n, nout;
    const double *adt;   /* [n][n]: adt[j*n + i] = Ad[i][j] */
    const double *bd;    /* [n] */
    const double *ct;    /* [n][nout]: ct[i*nout + o] = C[o][i] */
    const float *d;      /* [nout] or NULL */
} lti_sys;

static int finite_f(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* One batch row over L steps.  noinline: the scan and the step run the very
 * same machine code, so ssm_lti_step is bit for bit the scan.
 * Scratch: x, xn (n doubles each), acc (nout doubles). */
__attribute__((noinline))
static void lti_row(const lti_sys *s, int64_t L, const float *restrict u,
                    const float *x0, float *x_last, float *restrict y,
                    double *restrict x, double *restrict xn,
                    double *restrict acc)
{
    const int64_t n = s->n, nout = s->nout;
    const double *restrict adt = s->adt;
    const double *restrict bd = s->bd;
    const double *restrict ct = s->ct;
    if (x0) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (double)x0[i];
    } else {
        memset(x, 0, (size_t)n * sizeof *x);
    }
    for (int64_t t = 0; t < L; t++) {
        const double ut = (double)u[t];
        for (int64_t i = 0; i < n; i++)
            xn[i] = bd[i] * ut;
        for (int64_t j = 0; j < n; j++) {
            const double xj = x[j];
            const double *restrict col = adt + j * n;
            for (int64_t i = 0; i < n; i++)
                xn[i] += col[i] * xj;
        }
        double *tmp = x; x = xn; xn = tmp;
        for (int64_t o = 0; o < nout; o++)
            acc[o] = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double xi = x[i];
            const double *restrict row = ct + i * nout;
            for (int64_t o = 0; o < nout; o++)
                acc[o] += row[o] * xi;
        }
        if (s->d) {
            for (int64_t o = 0; o < nout; o++)
                y[o * L + t] = (float)(acc[o] + (double)s->d[o] * ut);
        } else {
            for (int64_t o = 0; o < nout; o++)
                y[o * L + t] = (float)acc[o];
        }
    }
    /* x0 may be x_last: x0 was read in full before this write. */
    if (x_last)
        for (int64_t i = 0; i < n; i++)
            x_last[i] = (float)x[i];
}

/* Validation shared by the scan and the step. */
static ssm_status lti_check(int64_t batch, int64_t n, int64_t nout, int64_t L,
                            const float *Ad, const float *Bd, const float *C,
                            const float *D, const void *u, const void *y)
{
    int64_t p;
    if (!Ad || !Bd || !C || !u || !y)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&p, sizeof(double), 2, n, n) ||
        !ssmi_sizes_ok(&p, sizeof(double), 2, nout, n) ||
        !ssmi_sizes_ok(&p, sizeof(float), 2, batch, n) ||
        !ssmi_sizes_ok(&p, sizeof(float), 2, batch, L) ||
        !ssmi_sizes_ok(&p, sizeof(float), 3, batch, nout, L))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!finite_f(Ad, n * n) || !finite_f(Bd, n) || !finite_f(C, nout * n) ||
        (D && !finite_f(D, nout)))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

static ssm_status lti_run(int64_t batch, int64_t n, int64_t nout, int64_t L,
                          const float *Ad, const float *Bd, const float *C,
                          const float *D, const float *u, const float *x0,
                          float *x_last, float *y)
{
    double *adt = ssmi_alloc((size_t)(n * n), sizeof(double));
    double *bd = ssmi_alloc((size_t)n, sizeof(double));
    double *ct = ssmi_alloc((size_t)(n * nout), sizeof(double));
    if (!adt || !bd || !ct) {
        ssmi_free(adt); ssmi_free(bd); ssmi_free(ct);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t i = 0; i < n; i++) {
        bd[i] = (double)Bd[i];
        for (int64_t j = 0; j < n; j++)
            adt[j * n + i] = (double)Ad[i * n + j];
        for (int64_t o = 0; o < nout; o++)
            ct[i * nout + o] = (double)C[o * n + i];
    }
    const lti_sys s = { n, nout, adt, bd, ct, D };

    /* Work per batch row ~ L (n^2 + n nout); parallel only when worth it
     * (saturating: the sizes were checked, the product may still be big). */
    int64_t work = 0;
    int par = batch > 1 && ssmi_mul_ok(batch, L, &work) &&
              ssmi_mul_ok(work, n * (n + nout), &work) ? work >= LTI_PAR_WORK
                                                     : batch > 1;
    ssmi_scratch sc;
    ssm_status st = ssmi_scratch_init(&sc, (size_t)(2 * n + nout) * sizeof(double), batch);
    if (st != SSM_OK) {
        ssmi_free(adt); ssmi_free(bd); ssmi_free(ct);
        return st;
    }
#pragma omp parallel num_threads(sc.nt) if (par)
    {
        double *scr = ssmi_scratch_mine(&sc);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < batch; b++) {
            lti_row(&s, L, u + b * L, x0 ? x0 + b * n : NULL,
                    x_last ? x_last + b * n : NULL, y + b * nout * L,
                    scr, scr + n, scr + 2 * n);
        }
    }
    ssmi_scratch_free(&sc);
    ssmi_free(adt); ssmi_free(bd); ssmi_free(ct);
    return SSM_OK;
}

ssm_status ssm_lti_scan(int64_t batch, int64_t n, int64_t nout, int64_t L,
                        const float *Ad, const float *Bd, const float *C,
                        const float *D, const float *u, const float *x0,
                        float *x_last, float *y)
{
    SSM_TRY(lti_check(batch, n, nout, L, Ad, Bd, C, D, u, y));
    return lti_run(batch, n, nout, L, Ad, Bd, C, D, u, x0, x_last, y);
}

/* Largest state of the allocation-free step: its new state, n doubles
 * (8 KiB), lives on the stack.  Dense systems are used with n up to a few
 * hundred; above this a step costs n^2 >= 10^6 multiply-adds and takes its
 * n doubles from the heap. */
#define LTI_STEP_MAX_N 1024

/* One step of one batch row without workspace: the arithmetic of lti_row
 * with L = 1, term for term (each xn[i] sums Bd[i] u, then Ad[i][j] x[j]
 * for j = 0..n-1; each y[o] sums C[o][i] xn[i] for i = 0..n-1, from 0, all
 * in double), so the bytes are the scan's.  The old state is read from h
 * in float, as lti_row reads x0; h is overwritten only at the end. */
static void lti_step_row(int64_t n, int64_t nout, float *restrict h,
                         const float *restrict Ad, const float *restrict Bd,
                         const float *restrict C, const float *restrict D,
                         float ut_f, float *restrict y, double *restrict xn)
{
    const double ut = (double)ut_f;
    for (int64_t i = 0; i < n; i++) {
        const float *restrict row = Ad + i * n;
        double v = (double)Bd[i] * ut;
        for (int64_t j = 0; j < n; j++)
            v += (double)row[j] * (double)h[j];
        xn[i] = v;
    }
    for (int64_t o = 0; o < nout; o++) {
        const float *restrict row = C + o * n;
        double acc = 0.0;
        for (int64_t i = 0; i < n; i++)
            acc += (double)row[i] * xn[i];
        y[o] = D ? (float)(acc + (double)D[o] * ut) : (float)acc;
    }
    for (int64_t i = 0; i < n; i++)
        h[i] = (float)xn[i];
}

ssm_status ssm_lti_step(int64_t batch, int64_t n, int64_t nout,
                        float *x, const float *Ad, const float *Bd,
                        const float *C, const float *D, const float *u, float *y)
{
    if (!x)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(lti_check(batch, n, nout, 1, Ad, Bd, C, D, u, y));
    if (n > LTI_STEP_MAX_N)
        return lti_run(batch, n, nout, 1, Ad, Bd, C, D, u, x, x, y);
    /* Rows in parallel only when worth it (the scan's rule, L = 1). */
    int64_t work = 0;
    const int par = batch > 1 && ssmi_mul_ok(batch, n * (n + nout), &work) &&
                    work >= LTI_PAR_WORK;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t b = 0; b < batch; b++) {
        double xn[LTI_STEP_MAX_N];
        lti_step_row(n, nout, x + b * n, Ad, Bd, C, D, u[b], y + b * nout, xn);
    }
    return SSM_OK;
}
