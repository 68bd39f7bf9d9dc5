/* ctest-labels: lapack */
/*
 * test_hippo.c -- HiPPO matrices, their NPLR form and the S4D inits.
 *
 * References, all independent of the library code:
 *  - the closed forms of API.md's table, re-typed here in long double;
 *  - the meaning of each state (API.md): the ODE is integrated here with
 *    RK4 and compared coefficient by coefficient with a Gauss-Legendre
 *    quadrature of the projection, computed in long double;
 *  - LAPACK residual ratios (||residual|| / (n eps ||A||) <= THRESH = 30,
 *    as TESTING/LIN/dget01.f) for the NPLR decomposition;
 *  - dgeev on the dense normal part for the S4D-LegS eigenvalues.
 */
#include <lapacke.h>
#include <ssm.h>

#include "testutil.h"

#define PI_L 3.141592653589793238462643383279503L
#define EPS DBL_EPSILON

/* ------------------------------------------------------------------ */
/* Closed forms (API.md's table), long double.                         */

static long double ref_s(int64_t k) { return sqrtl(2.0L * (long double)k + 1.0L); }

static long double ref_A(ssm_measure m, int64_t n, int64_t i, int64_t k)
{
    switch (m) {
    case SSM_LEGS:
        return i > k ? -ref_s(i) * ref_s(k) : (i == k ? -(long double)(i + 1) : 0.0L);
    case SSM_LEGT:
        return i >= k ? -ref_s(i) * ref_s(k)
                      : -ref_s(i) * ref_s(k) * (((k - i) % 2) ? -1.0L : 1.0L);
    case SSM_LAGT:
        return i > k ? -1.0L : (i == k ? -0.5L : 0.0L);
    case SSM_FOUT: {
        long double bi = i == 0 ? 1.0L : (i % 2 ? 0.0L : sqrtl(2.0L));
        long double bk = k == 0 ? 1.0L : (k % 2 ? 0.0L : sqrtl(2.0L));
        long double r = 0.0L;
        if (i % 2 == 1 && k == i - 1) r = (long double)(k / 2);
        if (i % 2 == 0 && k == i + 1) r = -(long double)(i / 2);
        (void)n;
        return 2.0L * (PI_L * r - bi * bk);
    }
    }
    return 0.0L;
}

static long double ref_B(ssm_measure m, int64_t i)
{
    switch (m) {
    case SSM_LEGS: case SSM_LEGT: return ref_s(i);
    case SSM_LAGT: return 1.0L;
    case SSM_FOUT: return 2.0L * (i == 0 ? 1.0L : (i % 2 ? 0.0L : sqrtl(2.0L)));
    }
    return 0.0L;
}

/* Low-rank factor rows of API.md and the constant real part c. */
static int ref_rank(ssm_measure m) { return m == SSM_LEGT ? 2 : 1; }
static long double ref_P(ssm_measure m, int r, int64_t i)
{
    switch (m) {
    case SSM_LEGS: return sqrtl((long double)i + 0.5L);
    case SSM_LEGT: return (i % 2 == r) ? ref_s(i) : 0.0L;
    case SSM_LAGT: return sqrtl(0.5L);
    case SSM_FOUT: return ref_B(m, i) / sqrtl(2.0L);
    }
    return 0.0L;
}
static double ref_c(ssm_measure m) { return m == SSM_LEGS ? -0.5 : 0.0; }

static const char *mname[] = {"LEGS", "LEGT", "LAGT", "FOUT"};

/* ------------------------------------------------------------------ */
/* Test 1: entries against the closed forms; LegS eigenvalues -1..-n.  */

START_TEST(test_entries)
{
    const int64_t ns[] = {1, 2, 3, 8, 33, 64};
    for (int m = 0; m < 4; m++)
        for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
            int64_t n = ns[t];
            if (m == SSM_FOUT && (n & 1))
                continue;
            double *A = tu_alloc((size_t)(n * n), sizeof(double));
            double *B = tu_alloc((size_t)n, sizeof(double));
            ck_assert_int_eq(ssm_hippo((ssm_measure)m, n, A, B), SSM_OK);
            /* Each entry is at most a product of two rounded square roots
             * and a rounded pi: a few ulps, 4 eps relative. */
            double worst = 0.0;
            for (int64_t i = 0; i < n; i++) {
                for (int64_t k = 0; k < n; k++) {
                    long double r = ref_A((ssm_measure)m, n, i, k);
                    long double d = fabsl((long double)A[i * n + k] - r);
                    if (r == 0.0L)
                        ck_assert_msg(A[i * n + k] == 0.0, "%s n=%lld A[%lld][%lld]=%g not 0",
                                      mname[m], (long long)n, (long long)i, (long long)k, A[i * n + k]);
                    else if ((double)(d / fabsl(r)) > worst)
                        worst = (double)(d / fabsl(r));
                }
                long double rb = ref_B((ssm_measure)m, i);
                long double db = fabsl((long double)B[i] - rb);
                if (rb == 0.0L)
                    ck_assert(B[i] == 0.0);
                else if ((double)(db / rb) > worst)
                    worst = (double)(db / rb);
            }
            TU_CHECK_ERR(worst, 4 * EPS, "%s n=%lld entries", mname[m], (long long)n);
            free(A);
            free(B);
        }
}
END_TEST

START_TEST(test_legs_eigenvalues)
{
    const int64_t ns[] = {1, 5, 32, 100};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        int64_t n = ns[t];
        double *A = tu_alloc((size_t)(n * n), sizeof(double));
        double *B = tu_alloc((size_t)n, sizeof(double));
        double *wr = tu_alloc((size_t)n, sizeof(double));
        double *wi = tu_alloc((size_t)n, sizeof(double));
        ck_assert_int_eq(ssm_hippo(SSM_LEGS, n, A, B), SSM_OK);
        /* Lower triangular (exact zeros above), so the eigenvalues are the
         * diagonal, which must be exactly -(k+1). */
        for (int64_t i = 0; i < n; i++) {
            ck_assert_msg(A[i * n + i] == -(double)(i + 1), "diag %lld", (long long)i);
            for (int64_t k = i + 1; k < n; k++)
                ck_assert(A[i * n + k] == 0.0);
        }
        /* And independently through LAPACK's nonsymmetric solver (dgeev;
         * balancing isolates a triangular matrix's eigenvalues, so they
         * come back to within a few ulps of the diagonal). */
        lapack_int info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)n, A,
                                        (lapack_int)n, wr, wi, NULL, 1, NULL, 1);
        ck_assert_int_eq(info, 0);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            /* find the eigenvalue nearest to -(i+1) */
            double best = INFINITY;
            for (int64_t j = 0; j < n; j++) {
                double d = hypot(wr[j] + (double)(i + 1), wi[j]);
                if (d < best) best = d;
            }
            if (best / (double)(i + 1) > worst) worst = best / (double)(i + 1);
        }
        TU_CHECK_ERR(worst, TU_THRESH * EPS, "LEGS n=%lld eigenvalues vs -1..-n (dgeev)", (long long)n);
        free(A); free(B); free(wr); free(wi);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Test 2: what the state holds.                                       */

/* Gauss-Legendre nodes and weights on [-1, 1] by Newton on P_m. */
#define GL_M 48
static void gauss_legendre(int m, long double *x, long double *w)
{
    for (int i = 0; i < m; i++) {
        long double z = cosl(PI_L * ((long double)i + 0.75L) / ((long double)m + 0.5L));
        long double p1 = 0, p2 = 0, dp = 0;
        for (int it = 0; it < 100; it++) {
            p1 = 1.0L; p2 = 0.0L;
            for (int j = 1; j <= m; j++) {
                long double p3 = p2;
                p2 = p1;
                p1 = ((2.0L * j - 1.0L) * z * p2 - (j - 1.0L) * p3) / (long double)j;
            }
            dp = (long double)m * (z * p1 - p2) / (z * z - 1.0L);
            long double dz = p1 / dp;
            z -= dz;
            if (fabsl(dz) < 1e-19L)
                break;
        }
        x[i] = z;
        w[i] = 2.0L / ((1.0L - z * z) * dp * dp);
    }
}

/* A smooth input with a few frequencies (entire, so every projection
 * converges geometrically). */
static long double u_in(long double t)
{
    return sinl(1.3L * t + 0.4L) + 0.6L * cosl(2.1L * t - 0.2L) + 0.3L;
}

/* Coefficients by quadrature on npan panels of GL_M points over [0, T] in
 * the variable s: out[k] = int_0^T g(s) basis_k(s) ds. */
typedef struct { ssm_measure m; long double t; } proj_ctx;

/* The basis functions of API.md's table, evaluated at s (window
 * coordinate) for all k < n, times the input; returns through f[k]. */
static void proj_integrand(const proj_ctx *c, int64_t n, long double s, long double *f)
{
    switch (c->m) {
    case SSM_LEGS: {
        /* x_k(t) = s_k int_0^1 u(t y) P_k(2y - 1) dy, s = y */
        long double y = 2.0L * s - 1.0L, p0 = 1.0L, p1 = y, uu = u_in(c->t * s);
        for (int64_t k = 0; k < n; k++) {
            long double pk = k == 0 ? p0 : p1;
            f[k] = ref_s(k) * uu * pk;
            if (k >= 1) {
                long double p2 = ((2.0L * k + 1.0L) * y * p1 - k * p0) / (k + 1.0L);
                p0 = p1; p1 = p2;
            }
        }
        break;
    }
    case SSM_LEGT: {
        /* x_k(t) = s_k int_0^1 u(t - s) P_k(1 - 2s) ds */
        long double y = 1.0L - 2.0L * s, p0 = 1.0L, p1 = y, uu = u_in(c->t - s);
        for (int64_t k = 0; k < n; k++) {
            long double pk = k == 0 ? p0 : p1;
            f[k] = ref_s(k) * uu * pk;
            if (k >= 1) {
                long double p2 = ((2.0L * k + 1.0L) * y * p1 - k * p0) / (k + 1.0L);
                p0 = p1; p1 = p2;
            }
        }
        break;
    }
    case SSM_LAGT: {
        /* x_k(t) = int_0^t u(t - s) L_k(s) e^(-s/2) ds (u = 0 before 0) */
        long double l0 = 1.0L, l1 = 1.0L - s, e = expl(-0.5L * s) * u_in(c->t - s);
        for (int64_t k = 0; k < n; k++) {
            long double lk = k == 0 ? l0 : l1;
            f[k] = e * lk;
            if (k >= 1) {
                long double l2 = ((2.0L * k + 1.0L - s) * l1 - k * l0) / (k + 1.0L);
                l0 = l1; l1 = l2;
            }
        }
        break;
    }
    case SSM_FOUT: {
        /* x_0 = int u(t-s), x_2j = sqrt2 int u(t-s) cos(2 pi j s),
         * x_2j+1 = sqrt2 int u(t-s) sin(2 pi j s), s in [0, 1] */
        long double uu = u_in(c->t - s);
        for (int64_t k = 0; k < n; k++) {
            int64_t j = k / 2;
            if (k == 0) f[k] = uu;
            else if (k % 2 == 0) f[k] = sqrtl(2.0L) * uu * cosl(2.0L * PI_L * j * s);
            else f[k] = sqrtl(2.0L) * uu * sinl(2.0L * PI_L * j * s);
        }
        break;
    }
    }
}

static void project(ssm_measure m, int64_t n, long double t, long double T, int npan, double *x)
{
    long double gx[GL_M], gw[GL_M];
    long double *f = tu_alloc((size_t)n, sizeof(long double));
    long double *acc = tu_alloc((size_t)n, sizeof(long double));
    proj_ctx c = {m, t};
    gauss_legendre(GL_M, gx, gw);
    for (int p = 0; p < npan; p++) {
        long double a = T * p / npan, b = T * (p + 1) / npan, h = 0.5L * (b - a);
        for (int q = 0; q < GL_M; q++) {
            proj_integrand(&c, n, a + h * (1.0L + gx[q]), f);
            for (int64_t k = 0; k < n; k++)
                acc[k] += h * gw[q] * f[k];
        }
    }
    for (int64_t k = 0; k < n; k++)
        x[k] = (double)acc[k];
    free(f);
    free(acc);
}

/* dx/dt = g(t) (A x + B u(t)), RK4 with nstep steps from t0 to t1.  For
 * LEGS the variable is tau = log t: dx/dtau = A x + B u(e^tau). */
static void rhs(ssm_measure m, int64_t n, const double *A, const double *B,
                long double t, const long double *x, long double *dx)
{
    long double uu = m == SSM_LEGS ? u_in(expl(t)) : u_in(t);
    for (int64_t i = 0; i < n; i++) {
        long double a = B[i] * uu;
        for (int64_t k = 0; k < n; k++)
            a += A[i * n + k] * x[k];
        dx[i] = a;
    }
}

static void rk4(ssm_measure m, int64_t n, const double *A, const double *B,
                long double t0, long double t1, long nstep, double *xd)
{
    long double *x = tu_alloc((size_t)n, sizeof(long double));
    long double *k1 = tu_alloc((size_t)n, sizeof(long double)), *k2 = tu_alloc((size_t)n, sizeof(long double));
    long double *k3 = tu_alloc((size_t)n, sizeof(long double)), *k4 = tu_alloc((size_t)n, sizeof(long double));
    long double *y = tu_alloc((size_t)n, sizeof(long double));
    long double h = (t1 - t0) / nstep;
    for (int64_t i = 0; i < n; i++) x[i] = xd[i];
    for (long s = 0; s < nstep; s++) {
        long double t = t0 + h * s;
        rhs(m, n, A, B, t, x, k1);
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + 0.5L * h * k1[i];
        rhs(m, n, A, B, t + 0.5L * h, y, k2);
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + 0.5L * h * k2[i];
        rhs(m, n, A, B, t + 0.5L * h, y, k3);
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + h * k3[i];
        rhs(m, n, A, B, t + h, y, k4);
        for (int64_t i = 0; i < n; i++)
            x[i] += h / 6.0L * (k1[i] + 2.0L * k2[i] + 2.0L * k3[i] + k4[i]);
    }
    for (int64_t i = 0; i < n; i++) xd[i] = (double)x[i];
    free(x); free(k1); free(k2); free(k3); free(k4); free(y);
}

/* Relative coefficient error after integrating measure m from a state
 * known by quadrature. */
static double state_error(ssm_measure m, int64_t n, long nstep)
{
    double *A = tu_alloc((size_t)(n * n), sizeof(double));
    double *B = tu_alloc((size_t)n, sizeof(double));
    double *x = tu_alloc((size_t)n, sizeof(double));
    double *xq = tu_alloc((size_t)n, sizeof(double));
    ck_assert_int_eq(ssm_hippo(m, n, A, B), SSM_OK);
    long double t0, t1;
    switch (m) {
    case SSM_LEGS:
        /* start at t = 0.05 from the projection, then tau = log t */
        t0 = 0.05L; t1 = 3.0L;
        project(m, n, t0, 1.0L, 2, x);
        rk4(m, n, A, B, logl(t0), logl(t1), nstep, x);
        project(m, n, t1, 1.0L, 2, xq);
        break;
    case SSM_LAGT:
        /* exact from x(0) = 0 (u = 0 before 0) */
        t1 = 4.0L;
        for (int64_t i = 0; i < n; i++) x[i] = 0.0;
        rk4(m, n, A, B, 0.0L, t1, nstep, x);
        project(m, n, t1, t1, 4, xq);
        break;
    default:
        /* sliding windows: start with a full window at t0 = 1 */
        t0 = 1.0L; t1 = 2.5L;
        project(m, n, t0, 1.0L, 4, x);
        rk4(m, n, A, B, t0, t1, nstep, x);
        project(m, n, t1, 1.0L, 4, xq);
        break;
    }
    double e = tu_relerr_d(x, xq, n);
    free(A); free(B); free(x); free(xq);
    return e;
}

START_TEST(test_state_meaning)
{
    /* LEGS and LAGT are exact (HiPPO Theorems 1-2): only RK4 (h^4 ~ 1e-15
     * scaled by the solution's smoothness) and the quadrature (~1e-18)
     * err, so 1e-9 relative is a safe bound.  LEGT truncates the window
     * reconstruction u(t - 1) ~ sum x_n s_n (-1)^n, geometric for this
     * entire input: about 1e-6 at n = 32 as the issue states.  FOUT
     * evaluates a Fourier series at its jump (u(t) != u(t - 1)), whose
     * error is O(1/n): bound 2/n, and it must shrink from n to 2n. */
    double e;
    e = state_error(SSM_LEGS, 32, 30000);
    printf("state LEGS n=32: coefficient relative error %.3e\n", e);
    TU_CHECK_ERR(e, 1e-9, "LEGS n=32 coefficients");
    e = state_error(SSM_LAGT, 32, 8000);
    printf("state LAGT n=32: coefficient relative error %.3e\n", e);
    TU_CHECK_ERR(e, 1e-9, "LAGT n=32 coefficients");
    e = state_error(SSM_LEGT, 32, 15000);
    printf("state LEGT n=32: coefficient relative error %.3e\n", e);
    TU_CHECK_ERR(e, 1e-6, "LEGT n=32 coefficients");
    double e32 = state_error(SSM_FOUT, 32, 15000);
    double e64 = state_error(SSM_FOUT, 64, 15000);
    printf("state FOUT n=32: %.3e, n=64: %.3e (O(1/n))\n", e32, e64);
    TU_CHECK_ERR(e32, 2.0 / 32, "FOUT n=32 coefficients");
    TU_CHECK_ERR(e64, 2.0 / 64, "FOUT n=64 coefficients");
    TU_CHECK_ERR(e64, 0.75 * e32, "FOUT error shrinks from n=32 to n=64");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Test 3: NPLR invariants as residual ratios.                         */

typedef struct { double unit, recon, bt, pt, re; } nplr_ratios;

static nplr_ratios nplr_check(ssm_measure m, int64_t n, int64_t rank)
{
    nplr_ratios r = {0, 0, 0, 0, 0};
    size_t nn = (size_t)(n * n);
    double complex *lam = tu_alloc((size_t)n, sizeof(double complex));
    double complex *Pt = tu_alloc((size_t)(rank * n), sizeof(double complex));
    double complex *Bt = tu_alloc((size_t)n, sizeof(double complex));
    double complex *V = tu_alloc(nn, sizeof(double complex));
    long double *Wr = tu_alloc(nn, sizeof(long double)), *Wi = tu_alloc(nn, sizeof(long double));
    long double *Tr = tu_alloc(nn, sizeof(long double)), *Ti = tu_alloc(nn, sizeof(long double));
    ssm_status st = ssm_hippo_nplr(m, n, rank, lam, Pt, Bt, V);
    ck_assert_msg(st == SSM_OK, "nplr %s n=%lld: %s", mname[m], (long long)n, ssm_status_string(st));

    /* ||V^* V - I||_F / (n eps) */
    long double s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            long double ar = 0, ai = 0;
            for (int64_t k = 0; k < n; k++) {
                long double xr = creal(V[k * n + i]), xi = -cimag(V[k * n + i]);
                long double yr = creal(V[k * n + j]), yi = cimag(V[k * n + j]);
                ar += xr * yr - xi * yi;
                ai += xr * yi + xi * yr;
            }
            if (i == j) ar -= 1.0L;
            s += ar * ar + ai * ai;
        }
    r.unit = (double)sqrtl(s) / ((double)n * EPS);

    /* W = diag(lambda) - sum_r pt_r pt_r^*, T = V W, R = T V^*, and
     * ||A - R||_F / (n eps ||A||_F), A from the closed form. */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            long double wr = 0, wi = 0;
            if (i == j) { wr = creal(lam[i]); wi = cimag(lam[i]); }
            for (int64_t q = 0; q < rank; q++) {
                long double ar = creal(Pt[q * n + i]), ai = cimag(Pt[q * n + i]);
                long double br = creal(Pt[q * n + j]), bi = -cimag(Pt[q * n + j]);
                wr -= ar * br - ai * bi;
                wi -= ar * bi + ai * br;
            }
            Wr[i * n + j] = wr; Wi[i * n + j] = wi;
        }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            long double ar = 0, ai = 0;
            for (int64_t k = 0; k < n; k++) {
                long double vr = creal(V[i * n + k]), vi = cimag(V[i * n + k]);
                ar += vr * Wr[k * n + j] - vi * Wi[k * n + j];
                ai += vr * Wi[k * n + j] + vi * Wr[k * n + j];
            }
            Tr[i * n + j] = ar; Ti[i * n + j] = ai;
        }
    long double num = 0, den = 0, imag = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            long double ar = 0, ai = 0;
            for (int64_t k = 0; k < n; k++) {
                long double vr = creal(V[j * n + k]), vi = -cimag(V[j * n + k]);
                ar += Tr[i * n + k] * vr - Ti[i * n + k] * vi;
                ai += Tr[i * n + k] * vi + Ti[i * n + k] * vr;
            }
            long double a = ref_A(m, n, i, j);
            num += (ar - a) * (ar - a);
            imag += ai * ai;
            den += a * a;
        }
    r.recon = (double)sqrtl((num + imag) / den) / ((double)n * EPS);

    /* Bt = V^* B and Pt = V^* p_r (rows beyond the measure's exactly 0) */
    long double eb = 0, nb = 0, ep = 0, np = 0;
    for (int64_t j = 0; j < n; j++) {
        long double br = 0, bi = 0;
        for (int64_t i = 0; i < n; i++) {
            br += creal(V[i * n + j]) * ref_B(m, i);
            bi -= cimag(V[i * n + j]) * ref_B(m, i);
        }
        eb += (br - creal(Bt[j])) * (br - creal(Bt[j])) + (bi - cimag(Bt[j])) * (bi - cimag(Bt[j]));
        nb += br * br + bi * bi;
        for (int q = 0; q < rank; q++) {
            if (q >= ref_rank(m)) {
                ck_assert_msg(Pt[q * n + j] == 0.0, "extra Pt row %d not zero", q);
                continue;
            }
            long double pr = 0, pi = 0;
            for (int64_t i = 0; i < n; i++) {
                pr += creal(V[i * n + j]) * ref_P(m, q, i);
                pi -= cimag(V[i * n + j]) * ref_P(m, q, i);
            }
            ep += (pr - creal(Pt[q * n + j])) * (pr - creal(Pt[q * n + j])) +
                  (pi - cimag(Pt[q * n + j])) * (pi - cimag(Pt[q * n + j]));
            np += pr * pr + pi * pi;
        }
    }
    r.bt = (double)sqrtl(eb / nb) / ((double)n * EPS);
    r.pt = (double)sqrtl(ep / np) / ((double)n * EPS);

    /* Re(lambda) = c: |Re lambda - c| / (n eps ||A||_F) */
    double worst = 0;
    for (int64_t j = 0; j < n; j++)
        worst = fmax(worst, fabs(creal(lam[j]) - ref_c(m)));
    r.re = worst / ((double)n * EPS * (double)sqrtl(den));

    free(lam); free(Pt); free(Bt); free(V);
    free(Wr); free(Wi); free(Tr); free(Ti);
    return r;
}

static void nplr_sweep(const int64_t *ns, size_t cnt, int extra_rank)
{
    for (int m = 0; m < 4; m++)
        for (size_t t = 0; t < cnt; t++) {
            int64_t n = ns[t];
            if (m == SSM_FOUT && (n & 1))
                continue;
            int64_t rank = ref_rank((ssm_measure)m) + extra_rank;
            nplr_ratios r = nplr_check((ssm_measure)m, n, rank);
            printf("nplr %s n=%3lld rank=%lld: ratios (/(n eps)): unitarity %.3f "
                   "reconstruction %.3f Bt %.3f Pt %.3f Re(lambda) %.3f; "
                   "reconstruction relative %.2e\n",
                   mname[m], (long long)n, (long long)rank, r.unit, r.recon, r.bt,
                   r.pt, r.re, r.recon * (double)n * EPS);
            TU_CHECK_ERR(r.unit, TU_THRESH, "%s n=%lld unitarity ratio", mname[m], (long long)n);
            TU_CHECK_ERR(r.recon, TU_THRESH, "%s n=%lld reconstruction ratio", mname[m], (long long)n);
            TU_CHECK_ERR(r.bt, TU_THRESH, "%s n=%lld Bt ratio", mname[m], (long long)n);
            TU_CHECK_ERR(r.pt, TU_THRESH, "%s n=%lld Pt ratio", mname[m], (long long)n);
            TU_CHECK_ERR(r.re, TU_THRESH, "%s n=%lld Re(lambda) ratio", mname[m], (long long)n);
        }
}

START_TEST(test_nplr)
{
    /* One BLAS thread: the accuracy does not depend on it (to rounding),
     * and OpenBLAS-openmp's spinning threads make this sweep many times
     * slower on an oversubscribed CI machine.  The "valgrind" case runs
     * with the default thread count. */
    tu_set_threads(1);
    const int64_t ns[] = {1, 2, 3, 5, 16, 17, 64, 65, 128, 256};
    nplr_sweep(ns, sizeof ns / sizeof *ns, 0);
    const int64_t ns2[] = {4, 9};
    nplr_sweep(ns2, 2, 2);      /* rank above the minimum: rows of zeros */
}
END_TEST

/* ------------------------------------------------------------------ */
/* S4D inits against closed forms and, for LegS, against dgeev.        */

static double s4d_legs_check(int64_t n)
{
    int64_t N = 2 * n;
    double *S = tu_alloc((size_t)(N * N), sizeof(double));
    double *wr = tu_alloc((size_t)N, sizeof(double)), *wi = tu_alloc((size_t)N, sizeof(double));
    double complex *lam = tu_alloc((size_t)n, sizeof(double complex));
    long double fro = 0;
    /* S = A + p p^T of LegS at size 2n, from the closed forms */
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < N; k++) {
            long double v = ref_A(SSM_LEGS, N, i, k) + ref_P(SSM_LEGS, 0, i) * ref_P(SSM_LEGS, 0, k);
            S[i * N + k] = (double)v;
            fro += v * v;
        }
    lapack_int info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)N, S, (lapack_int)N,
                                    wr, wi, NULL, 1, NULL, 1);
    ck_assert_int_eq(info, 0);
    ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_LEGS, n, lam), SSM_OK);
    /* Match each returned eigenvalue to the nearest dgeev one with Im > 0;
     * every dgeev eigenvalue with Im > 0 must be used exactly once. */
    int *used = tu_alloc((size_t)N, sizeof(int));
    double worst = 0;
    int64_t npos = 0;
    for (int64_t j = 0; j < N; j++)
        npos += wi[j] > 0;
    ck_assert_msg(npos == n, "dgeev: %lld eigenvalues with Im > 0, want %lld", (long long)npos, (long long)n);
    for (int64_t k = 0; k < n; k++) {
        ck_assert_msg(cimag(lam[k]) > 0, "lambda[%lld] Im <= 0", (long long)k);
        int64_t bj = -1;
        double bd = INFINITY;
        for (int64_t j = 0; j < N; j++) {
            if (wi[j] <= 0 || used[j]) continue;
            double d = hypot(wr[j] - creal(lam[k]), wi[j] - cimag(lam[k]));
            if (d < bd) { bd = d; bj = j; }
        }
        ck_assert(bj >= 0);
        used[bj] = 1;
        worst = fmax(worst, bd);
    }
    free(S); free(wr); free(wi); free(lam); free(used);
    /* both are backward stable on a normal matrix: |d lambda| <= ||E|| */
    return worst / ((double)N * EPS * (double)sqrtl(fro));
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* API.md's definition: the eigenvalues with Im > 0 of nplr(LEGS, 2n).
 * Both sides are backward stable: ratio |d Im| / (2n eps ||A||_F). */
static double s4d_vs_nplr(int64_t n)
{
    int64_t N = 2 * n;
    double complex *lam = tu_alloc((size_t)N, sizeof(double complex));
    double complex *Pt = tu_alloc((size_t)N, sizeof(double complex));
    double complex *Bt = tu_alloc((size_t)N, sizeof(double complex));
    double complex *V = tu_alloc((size_t)(N * N), sizeof(double complex));
    double complex *s4 = tu_alloc((size_t)n, sizeof(double complex));
    double *a = tu_alloc((size_t)N, sizeof(double)), *b = tu_alloc((size_t)n, sizeof(double));
    ck_assert_int_eq(ssm_hippo_nplr(SSM_LEGS, N, 1, lam, Pt, Bt, V), SSM_OK);
    ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_LEGS, n, s4), SSM_OK);
    int64_t np = 0;
    for (int64_t j = 0; j < N; j++)
        if (cimag(lam[j]) > 0) a[np++] = cimag(lam[j]);
    ck_assert_msg(np == n, "nplr(LEGS, %lld) has %lld eigenvalues with Im > 0", (long long)N, (long long)np);
    for (int64_t k = 0; k < n; k++) {
        ck_assert(creal(s4[k]) == -0.5);
        b[k] = cimag(s4[k]);
    }
    qsort(a, (size_t)n, sizeof(double), cmp_desc);
    qsort(b, (size_t)n, sizeof(double), cmp_desc);
    long double fro = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < N; k++)
            fro += ref_A(SSM_LEGS, N, i, k) * ref_A(SSM_LEGS, N, i, k);
    double worst = 0;
    for (int64_t k = 0; k < n; k++)
        worst = fmax(worst, fabs(a[k] - b[k]));
    free(lam); free(Pt); free(Bt); free(V); free(s4); free(a); free(b);
    return worst / ((double)N * EPS * (double)sqrtl(fro));
}

START_TEST(test_s4d)
{
    tu_set_threads(1);   /* as test_nplr */
    const int64_t ns[] = {1, 2, 7, 32, 64};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        int64_t n = ns[t];
        double complex *lam = tu_alloc((size_t)n, sizeof(double complex));
        double worst;
        /* closed forms: a product and a quotient, 4 eps relative */
        ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_LIN, n, lam), SSM_OK);
        worst = 0;
        for (int64_t k = 0; k < n; k++) {
            long double im = PI_L * k;
            ck_assert(creal(lam[k]) == -0.5);
            if (k) worst = fmax(worst, (double)(fabsl(cimag(lam[k]) - im) / im));
            else ck_assert(cimag(lam[k]) == 0.0);
        }
        TU_CHECK_ERR(worst, 4 * EPS, "S4D-Lin n=%lld", (long long)n);
        ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_INV, n, lam), SSM_OK);
        worst = 0;
        for (int64_t k = 0; k < n; k++) {
            long double N = 2.0L * n;
            long double im = (N / PI_L) * (N / (2.0L * k + 1.0L) - 1.0L);
            ck_assert(creal(lam[k]) == -0.5);
            if (im != 0) worst = fmax(worst, (double)(fabsl(cimag(lam[k]) - im) / fabsl(im)));
        }
        TU_CHECK_ERR(worst, 8 * EPS, "S4D-Inv n=%lld", (long long)n);
        ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_REAL, n, lam), SSM_OK);
        for (int64_t k = 0; k < n; k++)
            ck_assert(creal(lam[k]) == -(double)(k + 1) && cimag(lam[k]) == 0.0);
        double r = s4d_legs_check(n);
        printf("s4d LEGS n=%lld: eigenvalue ratio vs dgeev %.3f\n", (long long)n, r);
        TU_CHECK_ERR(r, TU_THRESH, "S4D-LegS n=%lld vs dgeev", (long long)n);
        r = s4d_vs_nplr(n);
        TU_CHECK_ERR(r, TU_THRESH, "S4D-LegS n=%lld vs nplr(LEGS, 2n)", (long long)n);
        free(lam);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Test 5: every bad argument, table-driven.                           */

enum { F_HIPPO, F_NPLR, F_S4D };
enum { NUL_NONE = 0, NUL_1 = 1, NUL_2 = 2, NUL_3 = 4, NUL_4 = 8 };
typedef struct {
    int fn, e, nul;
    int64_t n, rank;
    ssm_status want;
    const char *what;
} bad_case;

static const bad_case bad_cases[] = {
    {F_HIPPO, SSM_LEGS, NUL_1, 4, 0, SSM_ERR_ARG, "hippo A NULL"},
    {F_HIPPO, SSM_LEGS, NUL_2, 4, 0, SSM_ERR_ARG, "hippo B NULL"},
    {F_HIPPO, SSM_LEGS, NUL_NONE, 0, 0, SSM_ERR_ARG, "hippo n = 0"},
    {F_HIPPO, SSM_LEGT, NUL_NONE, -3, 0, SSM_ERR_ARG, "hippo n < 0"},
    {F_HIPPO, 4, NUL_NONE, 4, 0, SSM_ERR_ARG, "hippo measure 4"},
    {F_HIPPO, -1, NUL_NONE, 4, 0, SSM_ERR_ARG, "hippo measure -1"},
    {F_HIPPO, SSM_FOUT, NUL_NONE, 5, 0, SSM_ERR_ARG, "hippo FOUT odd n"},
    {F_HIPPO, SSM_LAGT, NUL_NONE, INT64_C(1) << 32, 0, SSM_ERR_ARG, "hippo n*n overflows"},
    {F_HIPPO, SSM_LAGT, NUL_NONE, INT64_MAX, 0, SSM_ERR_ARG, "hippo n = INT64_MAX"},

    {F_NPLR, SSM_LEGS, NUL_1, 4, 1, SSM_ERR_ARG, "nplr lambda NULL"},
    {F_NPLR, SSM_LEGS, NUL_2, 4, 1, SSM_ERR_ARG, "nplr Pt NULL"},
    {F_NPLR, SSM_LEGS, NUL_3, 4, 1, SSM_ERR_ARG, "nplr Bt NULL"},
    {F_NPLR, SSM_LEGS, NUL_4, 4, 1, SSM_ERR_ARG, "nplr V NULL"},
    {F_NPLR, SSM_LEGS, NUL_NONE, 0, 1, SSM_ERR_ARG, "nplr n = 0"},
    {F_NPLR, SSM_LAGT, NUL_NONE, -1, 1, SSM_ERR_ARG, "nplr n < 0"},
    {F_NPLR, 4, NUL_NONE, 4, 2, SSM_ERR_ARG, "nplr measure 4"},
    {F_NPLR, -1, NUL_NONE, 4, 2, SSM_ERR_ARG, "nplr measure -1"},
    {F_NPLR, SSM_LEGS, NUL_NONE, 4, 0, SSM_ERR_ARG, "nplr LEGS rank 0"},
    {F_NPLR, SSM_LAGT, NUL_NONE, 4, -1, SSM_ERR_ARG, "nplr LAGT rank -1"},
    {F_NPLR, SSM_FOUT, NUL_NONE, 4, 0, SSM_ERR_ARG, "nplr FOUT rank 0"},
    {F_NPLR, SSM_LEGT, NUL_NONE, 4, 1, SSM_ERR_ARG, "nplr LEGT rank 1"},
    {F_NPLR, SSM_FOUT, NUL_NONE, 7, 1, SSM_ERR_ARG, "nplr FOUT odd n"},
    {F_NPLR, SSM_LEGS, NUL_NONE, INT64_C(1) << 32, 1, SSM_ERR_ARG, "nplr n*n overflows"},
    {F_NPLR, SSM_LEGS, NUL_NONE, 4, INT64_C(1) << 62, SSM_ERR_ARG, "nplr rank*n overflows"},
    {F_NPLR, SSM_LEGS, NUL_NONE, INT64_C(1) << 31, 1, SSM_ERR_ARG, "nplr n = 2^31 (V: 2^66 bytes, beyond the address space)"},
    {F_NPLR, SSM_LEGT, NUL_NONE, INT64_C(1) << 20, 2, SSM_ERR_NOMEM, "nplr n = 2^20 (no memory)"},
    {F_NPLR, SSM_FOUT, NUL_NONE, 16384, 1, SSM_ERR_NOMEM, "nplr n = 16384 (beyond LAPACK's int)"},

    {F_S4D, SSM_S4D_LEGS, NUL_1, 4, 0, SSM_ERR_ARG, "s4d lambda NULL"},
    {F_S4D, SSM_S4D_LIN, NUL_1, 4, 0, SSM_ERR_ARG, "s4d LIN lambda NULL"},
    {F_S4D, SSM_S4D_LEGS, NUL_NONE, 0, 0, SSM_ERR_ARG, "s4d n = 0"},
    {F_S4D, SSM_S4D_INV, NUL_NONE, -2, 0, SSM_ERR_ARG, "s4d n < 0"},
    {F_S4D, 4, NUL_NONE, 4, 0, SSM_ERR_ARG, "s4d init 4"},
    {F_S4D, -1, NUL_NONE, 4, 0, SSM_ERR_ARG, "s4d init -1"},
    {F_S4D, SSM_S4D_LEGS, NUL_NONE, INT64_C(1) << 31, 0, SSM_ERR_NOMEM, "s4d LEGS n = 2^31 (no memory)"},
    {F_S4D, SSM_S4D_LEGS, NUL_NONE, 8192, 0, SSM_ERR_NOMEM, "s4d LEGS n = 8192 (beyond LAPACK's int)"},
    {F_S4D, SSM_S4D_LEGS, NUL_NONE, INT64_MAX, 0, SSM_ERR_ARG, "s4d n = INT64_MAX (bytes overflow)"},
};

START_TEST(test_bad_args)
{
    /* Real buffers (small) so that only the argument under test is bad;
     * no case may write to them (all fail before any output). */
    double A[64], B[8];
    double complex lam[8], Pt[32], Bt[8], V[64];
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        ssm_status st = SSM_OK;
        switch (c->fn) {
        case F_HIPPO:
            st = ssm_hippo((ssm_measure)c->e, c->n, (c->nul & NUL_1) ? NULL : A,
                           (c->nul & NUL_2) ? NULL : B);
            break;
        case F_NPLR:
            st = ssm_hippo_nplr((ssm_measure)c->e, c->n, c->rank,
                                (c->nul & NUL_1) ? NULL : lam, (c->nul & NUL_2) ? NULL : Pt,
                                (c->nul & NUL_3) ? NULL : Bt, (c->nul & NUL_4) ? NULL : V);
            break;
        case F_S4D:
            st = ssm_s4d_lambda((ssm_s4d_init)c->e, c->n, (c->nul & NUL_1) ? NULL : lam);
            break;
        }
        ck_assert_msg(st == c->want, "%s: got %d (%s), want %d", c->what, (int)st,
                      ssm_status_string(st), (int)c->want);
    }
    /* the smallest good calls succeed with the same buffers */
    ck_assert_int_eq(ssm_hippo(SSM_FOUT, 2, A, B), SSM_OK);
    ck_assert_int_eq(ssm_hippo_nplr(SSM_LEGT, 4, 2, lam, Pt, Bt, V), SSM_OK);
    ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_LEGS, 4, lam), SSM_OK);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The case CI runs under valgrind (reference LAPACK and OpenBLAS):     */
/* every LAPACK-backed path at n <= 64.                                 */

START_TEST(test_valgrind)
{
    const int64_t ns[] = {5, 16, 64};
    nplr_sweep(ns, sizeof ns / sizeof *ns, 0);
    double r = s4d_legs_check(32);
    TU_CHECK_ERR(r, TU_THRESH, "S4D-LegS n=32 vs dgeev");
}
END_TEST

static Suite *hippo_suite(void)
{
    Suite *s = suite_create("hippo");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_entries);
    tcase_add_test(tc, test_legs_eigenvalues);
    tcase_add_test(tc, test_state_meaning);
    tcase_add_test(tc, test_nplr);
    tcase_add_test(tc, test_s4d);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("valgrind");
    tcase_set_timeout(tv, 600);
    tcase_add_test(tv, test_valgrind);
    suite_add_tcase(s, tv);
    return s;
}

int main(void)
{
    return tu_run(hippo_suite());
}
