/* ctest-labels: s4 */
/*
 * test_s4.c -- discretization and convolution kernels (include/ssm/s4.h).
 *
 * Every numeric check compares with an independent reference computed here
 * in long double (Taylor series of exp and phi1, direct matrix powers, a
 * dense complex LU for the DPLR system), with a tolerance stated from the
 * expected error (eps times a growth factor), and prints the measured error.
 */
#include <ssm.h>
#include "testutil.h"

#define EPS DBL_EPSILON
#define PI 3.14159265358979323846
typedef long double ld;
typedef long double complex ldc;

/* ---------------------------------------------------------------------- */
/* long double references                                                   */

/* C = A B, m x m long double */
static void ld_mul(int m, const ld *A, const ld *B, ld *C)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            ld s = 0;
            for (int k = 0; k < m; k++)
                s += A[i * m + k] * B[k * m + j];
            C[i * m + j] = s;
        }
}

/* exp(X) by scaling to ||X||_1 <= 1/2, a 40-term Taylor series and
 * squaring, all in long double (an algorithm independent of the library's
 * Pade approximant). */
static void ld_expm(int m, const ld *X, ld *E)
{
    ld nrm = 0;
    for (int j = 0; j < m; j++) {
        ld s = 0;
        for (int i = 0; i < m; i++)
            s += fabsl(X[i * m + j]);
        if (s > nrm) nrm = s;
    }
    int s = 0;
    while (nrm > 0.5L) { nrm /= 2; s++; }
    ld *Y = tu_alloc((size_t)(m * m), sizeof(ld));
    ld *T = tu_alloc((size_t)(m * m), sizeof(ld));
    ld *U = tu_alloc((size_t)(m * m), sizeof(ld));
    for (int i = 0; i < m * m; i++)
        Y[i] = ldexpl(X[i], -s);
    for (int i = 0; i < m * m; i++)
        E[i] = T[i] = (i % (m + 1) == 0) ? 1.0L : 0.0L;
    for (int k = 1; k <= 40; k++) {
        ld_mul(m, T, Y, U);
        for (int i = 0; i < m * m; i++) {
            T[i] = U[i] / k;
            E[i] += T[i];
        }
    }
    for (int q = 0; q < s; q++) {
        ld_mul(m, E, E, U);
        memcpy(E, U, sizeof(ld) * (size_t)(m * m));
    }
    free(Y); free(T); free(U);
}

/* ZOH reference through the augmented matrix in long double. */
static void ref_zoh(int n, const double *A, const double *B, double dt,
                    ld *Ad, ld *Bd)
{
    int m = n + 1;
    ld *X = tu_alloc((size_t)(m * m), sizeof(ld));
    ld *E = tu_alloc((size_t)(m * m), sizeof(ld));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            X[i * m + j] = (ld)dt * A[i * n + j];
        X[i * m + n] = (ld)dt * B[i];
    }
    ld_expm(m, X, E);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            Ad[i * n + j] = E[i * m + j];
        Bd[i] = E[i * m + n];
    }
    free(X); free(E);
}

static double relerr_ld(const double *a, const ld *ref, int64_t n)
{
    ld num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        ld d = a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? (double)sqrtl(num / den) : (double)sqrtl(num);
}

static double norm1_d(int n, const double *A)
{
    double best = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs(A[i * n + j]);
        if (s > best) best = s;
    }
    return best;
}

/* ---------------------------------------------------------------------- */
/* ssm_discretize                                                          */

static const int zoh_n[] = { 1, 2, 3, 5, 8, 13 };
static const double zoh_scale[] = { 1e-3, 0.3, 2.0, 12.0 };

START_TEST(zoh_matches_taylor_reference)
{
    tu_rng r = { 1000u + (uint64_t)_i };
    double worst = 0, worst_tol = 0;
    for (size_t a = 0; a < sizeof zoh_n / sizeof zoh_n[0]; a++)
        for (size_t b = 0; b < sizeof zoh_scale / sizeof zoh_scale[0]; b++) {
            int n = zoh_n[a];
            double sc = zoh_scale[b], dt = 0.37;
            double *A = tu_alloc((size_t)(n * n), sizeof(double));
            double *B = tu_alloc((size_t)n, sizeof(double));
            double *Ad = tu_alloc((size_t)(n * n), sizeof(double));
            double *Bd = tu_alloc((size_t)n, sizeof(double));
            ld *rA = tu_alloc((size_t)(n * n), sizeof(ld));
            ld *rB = tu_alloc((size_t)n, sizeof(ld));
            /* A = sc (G / sqrt(n) - I): a random matrix with a stable bias,
             * so that exp(dt A) is not huge (its condition number stays
             * modest). */
            for (int i = 0; i < n * n; i++)
                A[i] = sc * tu_normal(&r) / sqrt((double)n);
            for (int i = 0; i < n; i++) {
                A[i * n + i] -= sc;
                B[i] = tu_normal(&r);
            }
            ck_assert_int_eq(ssm_discretize(SSM_ZOH, n, A, B, dt, Ad, Bd), SSM_OK);
            ref_zoh(n, A, B, dt, rA, rB);
            /* Higham (2005): backward error <= eps of the Pade step, then the
             * squarings; the forward error of exp is bounded by its condition
             * number (<= e^{||X||} ||X|| / ||e^X|| for our biased matrices)
             * times eps: allow 64 m eps (1 + ||dt A||_1). */
            double x = dt * norm1_d(n, A);
            double tol = 64.0 * (n + 1) * EPS * (1.0 + x);
            double eA = relerr_ld(Ad, rA, n * n), eB = relerr_ld(Bd, rB, n);
            if (fmax(eA, eB) / tol > worst / fmax(worst_tol, 1e-300)) { worst = fmax(eA, eB); worst_tol = tol; }
            TU_CHECK_ERR(relerr_ld(Ad, rA, n * n), tol, "ZOH Ad n=%d ||dtA||=%.2g", n, x);
            TU_CHECK_ERR(relerr_ld(Bd, rB, n), tol, "ZOH Bd n=%d ||dtA||=%.2g", n, x);
            free(A); free(B); free(Ad); free(Bd); free(rA); free(rB);
        }
    printf("  zoh vs long-double Taylor (seed %d): worst rel err %.2e (its tol %.1e)\n", _i, worst, worst_tol);
}
END_TEST

/* FOUT at n = 4 from API.md's table: A = 2 (pi R - b b^T), B = 2 b,
 * b = [1, 0, sqrt2, 0]: row and column 1 are zero, so A is singular. */
static void fout4(double *A, double *B)
{
    const double b[4] = { 1.0, 0.0, sqrt(2.0), 0.0 };
    double R[16] = { 0 };
    R[3 * 4 + 2] = 1.0;
    R[2 * 4 + 3] = -1.0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++)
            A[i * 4 + j] = 2.0 * (PI * R[i * 4 + j] - b[i] * b[j]);
        B[i] = 2.0 * b[i];
    }
}

START_TEST(zoh_singular_A)
{
    /* Nilpotent A = [[0, 1], [0, 0]]: exp(dt A) = [[1, dt], [0, 1]],
     * Bd = int_0^dt e^{sA} ds B = [dt B0 + dt^2/2 B1, dt B1]. */
    const double A[4] = { 0, 1, 0, 0 }, B[2] = { 0.7, -1.3 };
    double Ad[4], Bd[2];
    for (double dt = 1e-6; dt < 100; dt *= 7.3) {
        ck_assert_int_eq(ssm_discretize(SSM_ZOH, 2, A, B, dt, Ad, Bd), SSM_OK);
        const double rAd[4] = { 1, dt, 0, 1 };
        const double rBd[2] = { dt * B[0] + 0.5 * dt * dt * B[1], dt * B[1] };
        /* a handful of roundings in the Pade step and squarings: 32 eps */
        TU_CHECK_ERR(tu_relerr_d(Ad, rAd, 4), 32 * EPS, "nilpotent Ad dt=%g", dt);
        TU_CHECK_ERR(tu_relerr_d(Bd, rBd, 2), 32 * EPS, "nilpotent Bd dt=%g", dt);
    }
    /* A = 0: Ad = I, Bd = dt B exactly (the Pade approximant of 0 is 1). */
    const double Z[9] = { 0 }, B3[3] = { 1.5, -2.25, 3.125 };
    double Ad3[9], Bd3[3];
    ck_assert_int_eq(ssm_discretize(SSM_ZOH, 3, Z, B3, 0.125, Ad3, Bd3), SSM_OK);
    for (int i = 0; i < 9; i++)
        ck_assert(Ad3[i] == (i % 4 == 0 ? 1.0 : 0.0));
    for (int i = 0; i < 3; i++)
        ck_assert(Bd3[i] == 0.125 * B3[i]);
    /* FOUT n = 4: against the long-double Taylor reference; the decoupled
     * state 1 stays exactly e_1 with Bd[1] = 0 (zero row and column). */
    double F[16], FB[4], FAd[16], FBd[4];
    ld rA[16], rB[4];
    fout4(F, FB);
    for (double dt = 1e-3; dt < 2; dt *= 10) {
        ck_assert_int_eq(ssm_discretize(SSM_ZOH, 4, F, FB, dt, FAd, FBd), SSM_OK);
        ref_zoh(4, F, FB, dt, rA, rB);
        double tol = 64.0 * 5 * EPS * (1.0 + dt * norm1_d(4, F));
        TU_CHECK_ERR(relerr_ld(FAd, rA, 16), tol, "FOUT4 Ad dt=%g", dt);
        TU_CHECK_ERR(relerr_ld(FBd, rB, 4), tol, "FOUT4 Bd dt=%g", dt);
        for (int j = 0; j < 4; j++)
            ck_assert(FAd[1 * 4 + j] == (j == 1 ? 1.0 : 0.0));
        ck_assert(FBd[1] == 0.0);
    }
}
END_TEST

START_TEST(gbt_identities)
{
    tu_rng r = { 77 };
    const ssm_disc meth[3] = { SSM_BILINEAR, SSM_BACKWARD_EULER, SSM_EULER };
    const double alpha[3] = { 0.5, 1.0, 0.0 };
    const int ns[4] = { 1, 4, 9, 33 };
    for (int q = 0; q < 4; q++)
        for (int mi = 0; mi < 3; mi++) {
            int n = ns[q];
            double dt = 0.05 * (q + 1);
            double *A = tu_alloc((size_t)(n * n), sizeof(double));
            double *B = tu_alloc((size_t)n, sizeof(double));
            double *Ad = tu_alloc((size_t)(n * n), sizeof(double));
            double *Bd = tu_alloc((size_t)n, sizeof(double));
            tu_fill_normal_d(&r, A, n * n, 3.0);
            tu_fill_normal_d(&r, B, n, 1.0);
            ck_assert_int_eq(ssm_discretize(meth[mi], n, A, B, dt, Ad, Bd), SSM_OK);
            /* Residual ratio of the LU solve (LAPACK dget02 style):
             * ||M Ad - N||_1 / (n eps (||M||_1 ||Ad||_1 + ||N||_1)) with
             * M = I - alpha dt A, N = I + (1 - alpha) dt A; the same for
             * Bd against dt B.  Computed in long double; THRESH = 30. */
            double a = alpha[mi];
            ld num = 0, dn = 0, numb = 0;
            double mn = 0, nn = 0, adn = norm1_d(n, Ad), bdn = 0, bn = 0;
            for (int j = 0; j < n; j++) {
                ld cs = 0, ms = 0, ns_ = 0;
                for (int i = 0; i < n; i++) {
                    ld s = 0;
                    for (int k = 0; k < n; k++) {
                        ld mik = (i == k) - (ld)a * dt * A[i * n + k];
                        s += mik * Ad[k * n + j];
                    }
                    ld nij = (i == j) + (ld)(1 - a) * dt * A[i * n + j];
                    cs += fabsl(s - nij);
                    ms += fabsl((i == j) - (ld)a * dt * A[i * n + j]);
                    ns_ += fabsl(nij);
                }
                if (cs > num) num = cs;
                if (ms > mn) mn = (double)ms;
                if (ns_ > nn) nn = (double)ns_;
            }
            for (int i = 0; i < n; i++) {
                ld s = 0;
                for (int k = 0; k < n; k++)
                    s += ((i == k) - (ld)a * dt * A[i * n + k]) * Bd[k];
                numb += fabsl(s - (ld)dt * B[i]);
                bdn += fabs(Bd[i]);
                bn += fabs(dt * B[i]);
            }
            dn = (ld)n * EPS * (mn * adn + nn);
            double ratio = (double)(num / dn);
            double ratiob = (double)(numb / ((ld)n * EPS * (mn * bdn + bn)));
            printf("  gbt alpha=%g n=%d: residual ratios Ad %.2f Bd %.2f (THRESH %.0f)\n", a, n, ratio, ratiob, TU_THRESH);
            TU_CHECK_ERR(ratio, TU_THRESH, "GBT alpha=%g n=%d Ad residual ratio", a, n);
            TU_CHECK_ERR(ratiob, TU_THRESH, "GBT alpha=%g n=%d Bd residual ratio", a, n);
            if (meth[mi] == SSM_EULER)   /* forward Euler is explicit */
                for (int i = 0; i < n * n; i++)
                    ck_assert(Ad[i] == dt * A[i] + (i % (n + 1) == 0));
            free(A); free(B); free(Ad); free(Bd);
        }
}
END_TEST

START_TEST(gbt_singular_is_numeric)
{
    /* I - alpha dt A singular: A = (1/(alpha dt)) I, and a rank-deficient
     * case where one eigenvalue of A is exactly 1/(alpha dt). */
    const double dt = 0.25;
    double A[4] = { 8, 0, 0, 8 }, B[2] = { 1, 1 }, Ad[4], Bd[2];
    ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, 2, A, B, dt, Ad, Bd), SSM_ERR_NUMERIC);
    A[0] = 4; A[3] = 4;
    ck_assert_int_eq(ssm_discretize(SSM_BACKWARD_EULER, 2, A, B, dt, Ad, Bd), SSM_ERR_NUMERIC);
    double A2[4] = { 4, 4, 1, 1 };        /* eigenvalues 0 and 5 */
    A2[0] = 5; A2[1] = 0; A2[2] = 3; A2[3] = 0;   /* eigenvalues 5, 0 */
    ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, 2, A2, B, 0.4, Ad, Bd), SSM_ERR_NUMERIC);
    /* ZOH overflow: exp(dt A) not representable */
    double H[1] = { 1e3 }, HB[1] = { 1 }, HAd[1], HBd[1];
    ck_assert_int_eq(ssm_discretize(SSM_ZOH, 1, H, HB, 1.0, HAd, HBd), SSM_ERR_NUMERIC);
    ck_assert_int_eq(ssm_discretize(SSM_ZOH, 1, H, HB, 0.5, HAd, HBd), SSM_OK);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* ssm_discretize_diag                                                     */

/* phi1(z) in long double by its Taylor series (converges for all z; for the
 * |z| <= 4 used here 80 terms reach long-double rounding). */
static ldc ref_phi1(ldc z)
{
    ldc s = 0, t = 1;
    for (int k = 0; k < 80; k++) {
        s += t;
        t *= z / (ld)(k + 2);
    }
    return s;
}

START_TEST(diag_zoh_small_lambda)
{
    const double complex zs[] = {
        0.0, 1e-300, -1e-300 * I, 1e-20 + 1e-20 * I, -3e-9, 2e-9 * I,
        -1e-5 + 3e-5 * I, 0.1 - 0.1 * I, 0.2499, -0.25, 0.17 * I + 0.17,
        0.3, -0.5 + 1.0 * I, 1.0 + 1.0 * I, -3.0, -2.0 + 3.0 * I, 0.5 * I,
        3.9, -1.0 - 2.5 * I };
    const double complex B = 0.75 - 1.25 * I;
    double worst = 0;
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        for (int q = 0; q < 3; q++) {
            double dt = q == 0 ? 1.0 : q == 1 ? 0.125 : 1e-3;
            double complex lam = zs[i] / dt, Ad, Bd;
            ck_assert_int_eq(ssm_discretize_diag(SSM_ZOH, 1, &lam, &B, dt, &Ad, &Bd), SSM_OK);
            ldc z = (ldc)dt * (ldc)lam;
            ldc rA = cexpl(z), rB = (ldc)dt * ref_phi1(z) * (ldc)B;
            /* a few roundings in e^z, expm1, the division and the scaling by
             * dt (|z| <= 4 keeps phi1 away from its zeros): 16 eps */
            double eA = (double)(cabsl((ldc)Ad - rA) / cabsl(rA));
            double eB = (double)(cabsl((ldc)Bd - rB) / cabsl(rB));
            worst = fmax(worst, fmax(eA, eB));
            TU_CHECK_ERR(eA, 16 * EPS, "ZOH diag Ad z=%g%+gi", creal(zs[i]), cimag(zs[i]));
            TU_CHECK_ERR(eB, 16 * EPS, "ZOH diag Bd z=%g%+gi dt=%g", creal(zs[i]), cimag(zs[i]), dt);
        }
    }
    printf("  diag zoh, z from 0 to 4: worst rel err %.2e (tol %.1e = 16 eps)\n", worst, 16 * EPS);
    /* lambda = 0 exactly: Ad = 1, Bd = dt B exactly. */
    double complex lam0[2] = { 0.0, 0.0 }, B0[2] = { 1.5 - 0.5 * I, 3.0 }, A0[2], Bd0[2];
    ck_assert_int_eq(ssm_discretize_diag(SSM_ZOH, 2, lam0, B0, 0.375, A0, Bd0), SSM_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert(A0[k] == 1.0);
        ck_assert(Bd0[k] == 0.375 * B0[k]);
    }
}
END_TEST

START_TEST(diag_gbt_formulas)
{
    tu_rng r = { 5 };
    const ssm_disc meth[3] = { SSM_BILINEAR, SSM_BACKWARD_EULER, SSM_EULER };
    const double alpha[3] = { 0.5, 1.0, 0.0 };
    enum { N = 37 };
    double complex lam[N], B[N], Ad[N], Bd[N];
    for (int k = 0; k < N; k++) {
        lam[k] = -tu_range(&r, 0.0, 2.0) + I * tu_range(&r, -50, 50);
        B[k] = tu_normal(&r) + I * tu_normal(&r);
    }
    for (int mi = 0; mi < 3; mi++) {
        const double dt = 0.0123;
        ck_assert_int_eq(ssm_discretize_diag(meth[mi], N, lam, B, dt, Ad, Bd), SSM_OK);
        for (int k = 0; k < N; k++) {
            ldc z = (ldc)dt * (ldc)lam[k], a = alpha[mi];
            ldc rA = (1 + (1 - a) * z) / (1 - a * z), rB = (ldc)dt * (ldc)B[k] / (1 - a * z);
            /* one complex division and a few products: 8 eps */
            TU_CHECK_ERR((double)(cabsl(Ad[k] - rA) / cabsl(rA)), 8 * EPS, "GBT diag Ad k=%d", k);
            TU_CHECK_ERR((double)(cabsl(Bd[k] - rB) / cabsl(rB)), 8 * EPS, "GBT diag Bd k=%d", k);
        }
    }
    /* 1 - alpha dt lambda = 0 exactly */
    double complex l1 = 8.0, b1 = 1.0, a1, d1;
    ck_assert_int_eq(ssm_discretize_diag(SSM_BILINEAR, 1, &l1, &b1, 0.25, &a1, &d1), SSM_ERR_NUMERIC);
    l1 = 4.0;
    ck_assert_int_eq(ssm_discretize_diag(SSM_BACKWARD_EULER, 1, &l1, &b1, 0.25, &a1, &d1), SSM_ERR_NUMERIC);
    l1 = 1e3;   /* e^1000 overflows */
    ck_assert_int_eq(ssm_discretize_diag(SSM_ZOH, 1, &l1, &b1, 1.0, &a1, &d1), SSM_ERR_NUMERIC);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* ssm_kernel_dense                                                        */

START_TEST(kernel_dense_vs_long_double)
{
    const int ns[] = { 1, 3, 17, 64 };
    const int64_t Ls[] = { 1, 7, 1000, 4096 };
    tu_rng r = { 31 };
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            int n = ns[a];
            int64_t L = Ls[b];
            if (n == 64 && L < 1000) continue;
            double *Ad = tu_alloc((size_t)(n * n), sizeof(double));
            double *Bd = tu_alloc((size_t)n, sizeof(double));
            double *C = tu_alloc((size_t)n, sizeof(double));
            double *K = tu_alloc((size_t)L, sizeof(double));
            ld *x = tu_alloc((size_t)n, sizeof(ld)), *y = tu_alloc((size_t)n, sizeof(ld));
            ld *xa = tu_alloc((size_t)n, sizeof(ld)), *ya = tu_alloc((size_t)n, sizeof(ld));
            /* |Ad| has row sums <= 1, so sum |C||Ad|^l|Bd| stays bounded */
            for (int i = 0; i < n * n; i++)
                Ad[i] = tu_range(&r, -1.0, 1.0) / n;
            tu_fill_normal_d(&r, Bd, n, 1.0);
            tu_fill_normal_d(&r, C, n, 1.0);
            ck_assert_int_eq(ssm_kernel_dense(n, Ad, Bd, C, L, K), SSM_OK);
            for (int i = 0; i < n; i++) { x[i] = Bd[i]; xa[i] = fabs(Bd[i]); }
            double worst = 0;
            for (int64_t l = 0; l < L; l++) {
                ld s = 0, sa = 0;
                for (int i = 0; i < n; i++) {
                    s += C[i] * x[i];
                    sa += fabs(C[i]) * xa[i];
                }
                /* column propagation x_{l+1} = Ad x_l (the library goes by
                 * rows): error <= (l + 1) n eps |C| |Ad|^l |Bd| */
                double ratio = (double)(fabsl(K[l] - s) / ((ld)(l + 1) * n * EPS * sa + 1e-300L));
                if (ratio > worst) worst = ratio;
                for (int i = 0; i < n; i++) {
                    ld t = 0, ta = 0;
                    for (int j = 0; j < n; j++) {
                        t += Ad[i * n + j] * x[j];
                        ta += fabs(Ad[i * n + j]) * xa[j];
                    }
                    y[i] = t; ya[i] = ta;
                }
                memcpy(x, y, sizeof(ld) * (size_t)n);
                memcpy(xa, ya, sizeof(ld) * (size_t)n);
            }
            printf("  dense kernel n=%d L=%lld: worst error / ((l+1) n eps |C||Ad|^l|Bd|) = %.3f (tol 1)\n", n, (long long)L, worst);
            TU_CHECK_ERR(worst, 1.0, "dense kernel n=%d L=%lld error / ((l+1) n eps |C||Ad|^l|Bd|)", n, (long long)L);
            free(Ad); free(Bd); free(C); free(K); free(x); free(y); free(xa); free(ya);
        }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* ssm_kernel_diag                                                         */

START_TEST(kernel_diag_vs_direct_powers)
{
    const int ns[] = { 1, 5, 64 };
    const int64_t Ls[] = { 1, 300, 4096, 5001 };
    const double dts[] = { 1e-3, 1e-2, 1e-1 };
    const ssm_disc meth[2] = { SSM_ZOH, SSM_BILINEAR };
    tu_rng r = { 99 };
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++)
                for (int mi = 0; mi < 2; mi++) {
                    int n = ns[a];
                    int64_t L = Ls[b];
                    double dt = dts[c];
                    double complex *lam = tu_alloc((size_t)n, sizeof *lam);
                    double complex *Bc = tu_alloc((size_t)n, sizeof *Bc);
                    double complex *Cc = tu_alloc((size_t)n, sizeof *Cc);
                    double complex *Ad = tu_alloc((size_t)n, sizeof *Ad);
                    double complex *Bd = tu_alloc((size_t)n, sizeof *Bd);
                    double *K = tu_alloc((size_t)L, sizeof(double));
                    ldc *p = tu_alloc((size_t)n, sizeof(ldc));
                    for (int k = 0; k < n; k++) {   /* S4D-Lin-like modes */
                        lam[k] = -0.5 * tu_range(&r, 0.2, 2.0) + I * PI * k;
                        Bc[k] = 1.0;
                        Cc[k] = tu_normal(&r) + I * tu_normal(&r);
                    }
                    ck_assert_int_eq(ssm_discretize_diag(meth[mi], n, lam, Bc, dt, Ad, Bd), SSM_OK);
                    ck_assert_int_eq(ssm_kernel_diag(n, Ad, Bd, Cc, L, K), SSM_OK);
                    for (int k = 0; k < n; k++)
                        p[k] = (ldc)Cc[k] * (ldc)Bd[k];
                    double worst = 0;
                    ld num = 0, den = 0;
                    for (int64_t l = 0; l < L; l++) {
                        ld s = 0, sa = 0;
                        for (int k = 0; k < n; k++) {
                            s += creall(p[k]);
                            sa += cabsl(p[k]);
                            p[k] *= (ldc)Ad[k];
                        }
                        /* error per term <= c eps |C_k Bd_k| |Ad_k|^l with c
                         * growing with the number of products: the library
                         * bounds it by re-seeding; allow 1024 eps (= the bound
                         * for l <= ~500 products, whatever L). */
                        double ratio = (double)(fabsl(K[l] - s) / (1024 * EPS * sa + 1e-300L));
                        if (ratio > worst) worst = ratio;
                        num += (K[l] - s) * (K[l] - s);
                        den += s * s;
                    }
                    TU_CHECK_ERR(worst, 1.0, "diag kernel n=%d L=%lld dt=%g %s: error / (1024 eps sum|CBd||Ad|^l)",
                                 n, (long long)L, dt, mi ? "bilinear" : "zoh");
                    if (L >= 4096 && n == 64)
                        printf("  diag kernel n=%d L=%lld dt=%g %s: worst err/(1024 eps sum) %.3f, normwise rel err %.2e\n",
                               n, (long long)L, dt, mi ? "bilinear" : "zoh", worst, (double)sqrtl(num / den));
                    free(lam); free(Bc); free(Cc); free(Ad); free(Bd); free(K); free(p);
                }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* ssm_kernel_dplr                                                         */

/* Dense complex reference in long double: A = diag(lambda) - sum_r p_r q_r^*,
 * [Abar | Bbar] = (I - dt/2 A)^-1 [I + dt/2 A | dt B] by Gaussian
 * elimination with partial pivoting, then K[l] = Re(C Abar^l Bbar) by
 * repeated matrix-vector products (split re/im arrays). */
static void ref_dplr(int n, int r, const double complex *lam,
                     const double complex *P, const double complex *Q,
                     const double complex *B, const double complex *C,
                     double dt, int64_t L, ld *K)
{
    const int m = n + 1;
    ldc *M = tu_alloc((size_t)(n * n), sizeof(ldc));
    ldc *R = tu_alloc((size_t)(n * m), sizeof(ldc));
    const ld h = (ld)dt / 2;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) {
            ldc a = (i == k) ? (ldc)lam[i] : 0;
            for (int q = 0; q < r; q++)
                a -= (ldc)P[q * n + i] * conjl((ldc)Q[q * n + k]);
            M[i * n + k] = (i == k) - h * a;
            R[i * m + k] = (i == k) + h * a;
        }
        R[i * m + n] = (ldc)dt * (ldc)B[i];
    }
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int i = c + 1; i < n; i++)
            if (cabsl(M[i * n + c]) > cabsl(M[piv * n + c])) piv = i;
        for (int j = 0; j < n; j++) { ldc t = M[c * n + j]; M[c * n + j] = M[piv * n + j]; M[piv * n + j] = t; }
        for (int j = 0; j < m; j++) { ldc t = R[c * m + j]; R[c * m + j] = R[piv * m + j]; R[piv * m + j] = t; }
        for (int i = c + 1; i < n; i++) {
            ldc f = M[i * n + c] / M[c * n + c];
            for (int j = c; j < n; j++) M[i * n + j] -= f * M[c * n + j];
            for (int j = 0; j < m; j++) R[i * m + j] -= f * R[c * m + j];
        }
    }
    for (int c = n - 1; c >= 0; c--)
        for (int j = 0; j < m; j++) {
            ldc s = R[c * m + j];
            for (int k = c + 1; k < n; k++) s -= M[c * n + k] * R[k * m + j];
            R[c * m + j] = s / M[c * n + c];
        }
    ld *Ar = tu_alloc((size_t)(n * n), sizeof(ld)), *Ai = tu_alloc((size_t)(n * n), sizeof(ld));
    ld *xr = tu_alloc((size_t)n, sizeof(ld)), *xi = tu_alloc((size_t)n, sizeof(ld));
    ld *yr = tu_alloc((size_t)n, sizeof(ld)), *yi = tu_alloc((size_t)n, sizeof(ld));
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) { Ar[i * n + k] = creall(R[i * m + k]); Ai[i * n + k] = cimagl(R[i * m + k]); }
        xr[i] = creall(R[i * m + n]); xi[i] = cimagl(R[i * m + n]);
    }
    for (int64_t l = 0; l < L; l++) {
        ld s = 0;
        for (int i = 0; i < n; i++)
            s += (ld)creal(C[i]) * xr[i] - (ld)cimag(C[i]) * xi[i];
        K[l] = s;
        for (int i = 0; i < n; i++) {
            ld sr = 0, si = 0;
            const ld *ar = Ar + i * n, *ai = Ai + i * n;
            for (int k = 0; k < n; k++) {
                sr += ar[k] * xr[k] - ai[k] * xi[k];
                si += ar[k] * xi[k] + ai[k] * xr[k];
            }
            yr[i] = sr; yi[i] = si;
        }
        memcpy(xr, yr, sizeof(ld) * (size_t)n);
        memcpy(xi, yi, sizeof(ld) * (size_t)n);
    }
    free(M); free(R); free(Ar); free(Ai); free(xr); free(xi); free(yr); free(yi);
}

/* min over nodes j and modes k of dt |g_j - lambda_k| (g_j = (2i/dt) tan(pi j/L),
 * the node omega = -1 excluded): the scale for the error at small dt. */
static double min_node_dist(int n, const double complex *lam, double dt, int64_t L)
{
    double best = INFINITY;
    for (int64_t j = 0; j < L; j++) {
        if (2 * j == L) continue;
        double t = tan(PI * (double)j / (double)L);
        for (int k = 0; k < n; k++) {
            double d = cabs(2.0 * I * t - dt * lam[k]);
            if (d < best) best = d;
        }
    }
    return best;
}

/* The tolerance: 1e-12 normwise where dt L >= 10, else scaled by
 * 1/(dt min|g - lambda|) (the Cauchy terms' relative error is
 * eps max(|g|, |lambda|, 1/dt) / |g - lambda|).  s4.h documents that nodes
 * within relative distance 2^-10 of a pole are evaluated by the direct
 * path instead, so the factor is capped at 2^10. */
static double dplr_tol(int n, const double complex *lam, double dt, int64_t L)
{
    if (dt * (double)L >= 10.0)
        return 1e-12;
    return 1e-12 * fmin(1024.0, fmax(1.0, 1.0 / min_node_dist(n, lam, dt, L)));
}

static double relerr_ldk(const double *K, const ld *ref, int64_t L)
{
    return relerr_ld(K, ref, L);
}

typedef struct dplr_case { int n, rank; int64_t L; double dt; int pq_equal; } dplr_case;
static const dplr_case dplr_cases[] = {
    { 1, 1, 1, 0.5, 0 }, { 2, 1, 2, 0.5, 0 }, { 3, 2, 3, 0.3, 0 }, { 7, 1, 17, 0.7, 0 },
    { 16, 3, 64, 0.2, 0 }, { 5, 2, 33, 0.4, 0 },
    { 16, 1, 1000, 0.01, 1 }, { 33, 2, 1000, 0.05, 1 }, { 64, 1, 4096, 10.0 / 4096, 1 },
    { 64, 2, 4096, 0.01, 1 }, { 63, 1, 4095, 0.003, 1 }, { 24, 4, 777, 0.1, 1 },
};

START_TEST(dplr_random_vs_dense_complex)
{
    const dplr_case cs = dplr_cases[_i];
    const int n = cs.n, r = cs.rank;
    const int64_t L = cs.L;
    tu_rng g = { 4242u + (uint64_t)_i };
    double complex *lam = tu_alloc((size_t)n, sizeof *lam);
    double complex *P = tu_alloc((size_t)(n * r), sizeof *P);
    double complex *Q = tu_alloc((size_t)(n * r), sizeof *Q);
    double complex *B = tu_alloc((size_t)n, sizeof *B);
    double complex *C = tu_alloc((size_t)n, sizeof *C);
    double *K = tu_alloc((size_t)L, sizeof(double));
    ld *Kr = tu_alloc((size_t)L, sizeof(ld));
    for (int k = 0; k < n; k++) {
        lam[k] = -tu_range(&g, 0.05, 1.0) + I * tu_range(&g, -3.0 * n, 3.0 * n);
        B[k] = tu_normal(&g) + I * tu_normal(&g);
        C[k] = tu_normal(&g) + I * tu_normal(&g);
    }
    /* P = Q keeps A = Lambda - P P^* stable (its Hermitian part is
     * Re Lambda - P P^* <= 0), so long kernels stay bounded. */
    for (int q = 0; q < n * r; q++) {
        P[q] = (tu_normal(&g) + I * tu_normal(&g)) / sqrt((double)n);
        Q[q] = cs.pq_equal ? P[q] : (tu_normal(&g) + I * tu_normal(&g)) / sqrt((double)n);
    }
    ck_assert_int_eq(ssm_kernel_dplr(n, r, lam, P, Q, B, C, cs.dt, L, K), SSM_OK);
    ref_dplr(n, r, lam, P, Q, B, C, cs.dt, L, Kr);
    /* The target: 1e-12 normwise where dt L >= 10, the tolerance
     * scaled by 1/(dt min|g - lambda|) below that (the Cauchy terms' error is
     * eps / (dt |g - lambda|) relative). */
    double tol = dplr_tol(n, lam, cs.dt, L);
    double e = relerr_ldk(K, Kr, L);
    printf("  dplr random n=%d rank=%d L=%lld dt=%g: rel err %.2e (tol %.1e)\n", n, r, (long long)L, cs.dt, e, tol);
    TU_CHECK_ERR(e, tol, "dplr random n=%d rank=%d L=%lld dt=%g", n, r, (long long)L, cs.dt);
    free(lam); free(P); free(Q); free(B); free(C); free(K); free(Kr);
}
END_TEST

START_TEST(dplr_poles_on_nodes)
{
    /* L = 8, dt = 1: the nodes are g_j = 2 i tan(pi j/8); put eigenvalues
     * exactly on g_0 = 0 and g_2 = 2i, one at 1e-16 (LEGT/LAGT odd n) and
     * one at 2i tan(pi/8) (rounded), with P = Q nonzero on every mode; even
     * L also has the node omega = -1. */
    enum { N = 6, L = 8 };
    const double dt = 1.0;
    double complex lam[N] = { 0.0, 2.0 * I, 1e-16, 2.0 * I * tan(PI / 8), -0.3 + 5.0 * I, -2.0 * I };
    double complex P[N], B[N], C[N];
    tu_rng g = { 8 };
    for (int k = 0; k < N; k++) {
        P[k] = 0.3 * (tu_normal(&g) + I * tu_normal(&g));
        B[k] = tu_normal(&g) + I * tu_normal(&g);
        C[k] = tu_normal(&g) + I * tu_normal(&g);
    }
    double K[64];
    ld Kr[64];
    for (int64_t LL = L; LL <= 64; LL *= 2) {
        ck_assert_int_eq(ssm_kernel_dplr(N, 1, lam, P, P, B, C, dt, LL, K), SSM_OK);
        for (int64_t l = 0; l < LL; l++)
            ck_assert_msg(isfinite(K[l]), "K[%lld] not finite", (long long)l);
        ref_dplr(N, 1, lam, P, P, B, C, dt, LL, Kr);
        /* the pole nodes come from the direct sums: same 1e-12 target */
        double e = relerr_ldk(K, Kr, LL);
        printf("  dplr poles on nodes L=%lld: rel err %.2e (tol 1e-12)\n", (long long)LL, e);
        TU_CHECK_ERR(e, 1e-12, "poles on nodes L=%lld", (long long)LL);
    }
    /* Uncoupled zero mode (P = 0 there, like FOUT's state 1): Abar has the
     * eigenvalue 1 exactly, g_0 = 0 is on the pole, 0/0 in Cauchy form. */
    P[0] = 0.0;
    ck_assert_int_eq(ssm_kernel_dplr(N, 1, lam, P, P, B, C, dt, 16, K), SSM_OK);
    ref_dplr(N, 1, lam, P, P, B, C, dt, 16, Kr);
    double e = relerr_ldk(K, Kr, 16);
    TU_CHECK_ERR(e, 1e-12, "uncoupled zero mode");
}
END_TEST

/* FOUT with its NPLR form written in closed form here (independent of
 * src/hippo): A = 2 pi R - p p^T, p = sqrt2 b; the normal part 2 pi R is
 * block diagonal with blocks 2 pi j [[0, -1], [1, 0]] (eigenvalues
 * +-2 pi j i, eigenvectors (1, -+i)/sqrt2) and a zero 2x2 block for j = 0
 * (two exact zero eigenvalues, on the node g_0 = 0; state 1 is
 * uncoupled).  The DPLR kernel with Pt = V^* p, Bt = V^* B, C V must equal
 * the dense kernel of the real bilinear system. */
static const struct { int n; int64_t L; double dt; } fout_cases[] = {
    { 4, 64, 0.25 }, { 16, 1000, 0.01 }, { 64, 4096, 10.0 / 4096 }, { 64, 4096, 1e-3 }, { 32, 3001, 0.005 },
};

START_TEST(dplr_fout_closed_form_nplr)
{
    const int n = fout_cases[_i].n;
    const int64_t L = fout_cases[_i].L;
    const double dt = fout_cases[_i].dt;
    double *A = tu_alloc((size_t)(n * n), sizeof(double)), *Bv = tu_alloc((size_t)n, sizeof(double));
    double *b = tu_alloc((size_t)n, sizeof(double)), *Cr = tu_alloc((size_t)n, sizeof(double));
    double complex *V = tu_alloc((size_t)(n * n), sizeof *V), *lam = tu_alloc((size_t)n, sizeof *lam);
    double complex *Pt = tu_alloc((size_t)n, sizeof *Pt), *Bt = tu_alloc((size_t)n, sizeof *Bt);
    double complex *CV = tu_alloc((size_t)n, sizeof *CV);
    double *K = tu_alloc((size_t)L, sizeof(double)), *Kd = tu_alloc((size_t)L, sizeof(double));
    double *Ad = tu_alloc((size_t)(n * n), sizeof(double)), *Bd = tu_alloc((size_t)n, sizeof(double));
    const double s2 = sqrt(2.0), is2 = 1.0 / sqrt(2.0);
    for (int i = 0; i < n; i++)
        b[i] = i == 0 ? 1.0 : (i % 2 == 0 ? s2 : 0.0);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) {
            double R = 0;
            if (i % 2 == 1 && k == i - 1) R = (i - 1) / 2;
            if (i % 2 == 0 && k == i + 1) R = -(i / 2);
            A[i * n + k] = 2.0 * (PI * R - b[i] * b[k]);
        }
        Bv[i] = 2.0 * b[i];
    }
    V[0] = 1.0; V[1 * n + 1] = 1.0; lam[0] = 0.0; lam[1] = 0.0;
    for (int j = 1; 2 * j < n; j++) {
        int c = 2 * j;
        V[c * n + c] = is2; V[(c + 1) * n + c] = -I * is2; lam[c] = 2.0 * PI * j * I;
        V[c * n + c + 1] = is2; V[(c + 1) * n + c + 1] = I * is2; lam[c + 1] = -2.0 * PI * j * I;
    }
    tu_rng g = { 1234u + (uint64_t)_i };
    tu_fill_normal_d(&g, Cr, n, 1.0);
    for (int j = 0; j < n; j++) {
        double complex sp = 0, sb = 0, sc = 0;
        for (int i = 0; i < n; i++) {
            sp += conj(V[i * n + j]) * (s2 * b[i]);
            sb += conj(V[i * n + j]) * Bv[i];
            sc += Cr[i] * V[i * n + j];
        }
        Pt[j] = sp; Bt[j] = sb; CV[j] = sc;
    }
    ck_assert_int_eq(ssm_kernel_dplr(n, 1, lam, Pt, Pt, Bt, CV, dt, L, K), SSM_OK);
    ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, n, A, Bv, dt, Ad, Bd), SSM_OK);
    ck_assert_int_eq(ssm_kernel_dense(n, Ad, Bd, Cr, L, Kd), SSM_OK);
    /* both sides carry rounding of the same order (the dense side: n eps per
     * step, L steps; the DPLR side: the sweep and the Cauchy sums), and the
     * eigenvalues sit on the imaginary axis (|Abar| = 1 on the normal
     * part): 1e-12 where dt L >= 10, else scaled by 1/(dt min|g-lambda|)
     * over the nodes not on a pole (the exact zeros take the direct path). */
    double tol = dplr_tol(n, lam, dt, L);
    double e = tu_relerr_d(K, Kd, L);
    printf("  dplr FOUT closed-form NPLR n=%d L=%lld dt=%g: vs real dense %.2e (tol %.1e)\n", n, (long long)L, dt, e, tol);
    TU_CHECK_ERR(e, tol, "FOUT closed-form NPLR n=%d L=%lld dt=%g", n, (long long)L, dt);
    free(A); free(Bv); free(b); free(Cr); free(V); free(lam); free(Pt); free(Bt); free(CV);
    free(K); free(Kd); free(Ad); free(Bd);
}
END_TEST

/* HiPPO NPLR systems from src/hippo (which test_hippo verifies on its own). */
typedef struct hippo_case { ssm_measure m; int n; int64_t L; double dt; } hippo_case;
static const hippo_case hippo_cases[] = {
    { SSM_LEGS, 64, 4096, 10.0 / 4096 }, { SSM_LEGS, 33, 1000, 0.01 }, { SSM_LEGS, 64, 4096, 1e-3 },
    { SSM_LEGT, 64, 4096, 10.0 / 4096 }, { SSM_LEGT, 63, 1000, 0.01 }, { SSM_LEGT, 17, 4096, 1e-3 },
    { SSM_LAGT, 64, 4096, 0.01 }, { SSM_LAGT, 31, 1000, 0.02 },
    { SSM_FOUT, 64, 4096, 10.0 / 4096 }, { SSM_FOUT, 32, 1000, 0.01 }, { SSM_FOUT, 4, 64, 0.25 },
};

START_TEST(dplr_hippo_nplr)
{
    const hippo_case hc = hippo_cases[_i];
    const int n = hc.n, r = hc.m == SSM_LEGT ? 2 : 1;
    const int64_t L = hc.L;
    double *A = tu_alloc((size_t)(n * n), sizeof(double)), *Bv = tu_alloc((size_t)n, sizeof(double));
    ck_assert_int_eq(ssm_hippo(hc.m, n, A, Bv), SSM_OK);
    double complex *lam = tu_alloc((size_t)n, sizeof *lam), *Pt = tu_alloc((size_t)(n * r), sizeof *Pt);
    double complex *Bt = tu_alloc((size_t)n, sizeof *Bt), *V = tu_alloc((size_t)(n * n), sizeof *V);
    double complex *Cz = tu_alloc((size_t)n, sizeof *Cz), *CV = tu_alloc((size_t)n, sizeof *CV);
    double *Cr = tu_alloc((size_t)n, sizeof(double));
    double *K = tu_alloc((size_t)L, sizeof(double)), *Kd = tu_alloc((size_t)L, sizeof(double));
    double *Ad = tu_alloc((size_t)(n * n), sizeof(double)), *Bd = tu_alloc((size_t)n, sizeof(double));
    ld *Kr = tu_alloc((size_t)L, sizeof(ld));
    ck_assert_int_eq(ssm_hippo_nplr(hc.m, n, r, lam, Pt, Bt, V), SSM_OK);
    tu_rng g = { 777u + (uint64_t)_i };
    for (int k = 0; k < n; k++) {
        Cz[k] = tu_normal(&g) + I * tu_normal(&g);
        Cr[k] = tu_normal(&g);
    }
    /* 1. against the dense complex system of the same DPLR form */
    ck_assert_int_eq(ssm_kernel_dplr(n, r, lam, Pt, Pt, Bt, Cz, hc.dt, L, K), SSM_OK);
    ref_dplr(n, r, lam, Pt, Pt, Bt, Cz, hc.dt, L, Kr);
    double tol = dplr_tol(n, lam, hc.dt, L);
    double e = relerr_ldk(K, Kr, L);
    printf("  dplr nplr m=%d n=%d L=%lld dt=%g: rel err %.2e (tol %.1e)\n", (int)hc.m, n, (long long)L, hc.dt, e, tol);
    TU_CHECK_ERR(e, tol, "dplr nplr m=%d n=%d L=%lld dt=%g vs dense complex", (int)hc.m, n, (long long)L, hc.dt);
    /* 2. the real system in the original basis: C V in the NPLR basis gives
     * C Abar^l Bbar of (A, B) discretized by ssm_discretize (bilinear) and
     * run through ssm_kernel_dense.  The NPLR factors are exact to ~n eps
     * ||A|| (V unitary to ~1e-13), and a perturbation of A moves the kernel
     * by up to (dt L) times it: tolerance 1e-13 n dt L, at least 1e-11. */
    for (int j = 0; j < n; j++) {
        double complex s = 0;
        for (int i = 0; i < n; i++) s += Cr[i] * V[i * n + j];
        CV[j] = s;
    }
    ck_assert_int_eq(ssm_kernel_dplr(n, r, lam, Pt, Pt, Bt, CV, hc.dt, L, K), SSM_OK);
    ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, n, A, Bv, hc.dt, Ad, Bd), SSM_OK);
    ck_assert_int_eq(ssm_kernel_dense(n, Ad, Bd, Cr, L, Kd), SSM_OK);
    double tol2 = fmax(1e-11, 1e-13 * n * hc.dt * L) * (tol / 1e-12);
    double e2 = tu_relerr_d(K, Kd, L);
    printf("  dplr nplr m=%d n=%d L=%lld dt=%g: vs real dense %.2e (tol %.1e)\n", (int)hc.m, n, (long long)L, hc.dt, e2, tol2);
    TU_CHECK_ERR(e2, tol2, "dplr nplr m=%d n=%d vs real dense", (int)hc.m, n);
    free(A); free(Bv); free(lam); free(Pt); free(Bt); free(V); free(Cz); free(CV); free(Cr);
    free(K); free(Kd); free(Ad); free(Bd); free(Kr);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Bitwise independence of the thread count (API.md).  n = 150 is above
 * OpenBLAS's single-thread cut-off for dgetrf: with LAPACK's LU under
 * ssm_discretize this test failed at 3 threads, hence the library's own LU. */
START_TEST(threads_bitwise)
{
    const int n = 150;
    const int64_t L = 2000;
    tu_rng g = { 3 };
    double *A = tu_alloc((size_t)(n * n), sizeof(double)), *B = tu_alloc((size_t)n, sizeof(double));
    double *Ad[3], *Bd[3], *K[3], *Kz[3], *Kp[3];
    for (int i = 0; i < n * n; i++) A[i] = tu_normal(&g) / n;
    for (int i = 0; i < n; i++) { A[i * n + i] -= 1.0; B[i] = tu_normal(&g); }
    double complex lam[64], P[64], Bz[64], Cz[64], Adz[64], Bdz[64];
    for (int k = 0; k < 64; k++) {
        lam[k] = -0.5 + I * PI * k;
        P[k] = 0.1 * (tu_normal(&g) + I * tu_normal(&g));
        Bz[k] = 1.0;
        Cz[k] = tu_normal(&g) + I * tu_normal(&g);
    }
    ck_assert_int_eq(ssm_discretize_diag(SSM_ZOH, 64, lam, Bz, 0.01, Adz, Bdz), SSM_OK);
    for (int q = 0; q < 3; q++) {
        tu_set_threads(q + 1);
        Ad[q] = tu_alloc((size_t)(n * n), sizeof(double));
        Bd[q] = tu_alloc((size_t)n, sizeof(double));
        K[q] = tu_alloc((size_t)L, sizeof(double));
        Kz[q] = tu_alloc((size_t)L, sizeof(double));
        Kp[q] = tu_alloc((size_t)L, sizeof(double));
        ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, n, A, B, 0.05, Ad[q], Bd[q]), SSM_OK);
        ck_assert_int_eq(ssm_kernel_dense(n, Ad[q], Bd[q], B, L, K[q]), SSM_OK);
        ck_assert_int_eq(ssm_discretize(SSM_ZOH, n, A, B, 0.05, Ad[q], Bd[q]), SSM_OK);
        ck_assert_int_eq(ssm_kernel_diag(64, Adz, Bdz, Cz, L, Kz[q]), SSM_OK);
        ck_assert_int_eq(ssm_kernel_dplr(64, 1, lam, P, P, Bz, Cz, 0.01, L, Kp[q]), SSM_OK);
    }
    for (int q = 1; q < 3; q++) {
        ck_assert_msg(memcmp(Ad[0], Ad[q], sizeof(double) * (size_t)(n * n)) == 0, "Ad differs at %d threads", q + 1);
        ck_assert_msg(memcmp(Bd[0], Bd[q], sizeof(double) * (size_t)n) == 0, "Bd differs at %d threads", q + 1);
        ck_assert_msg(memcmp(K[0], K[q], sizeof(double) * (size_t)L) == 0, "dense K differs at %d threads", q + 1);
        ck_assert_msg(memcmp(Kz[0], Kz[q], sizeof(double) * (size_t)L) == 0, "diag K differs at %d threads", q + 1);
        ck_assert_msg(memcmp(Kp[0], Kp[q], sizeof(double) * (size_t)L) == 0, "dplr K differs at %d threads", q + 1);
    }
    for (int q = 0; q < 3; q++) { free(Ad[q]); free(Bd[q]); free(K[q]); free(Kz[q]); free(Kp[q]); }
    free(A); free(B);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* bad inputs, table-driven, every public function of s4.h                 */

enum { BAD_N = 2 };
typedef struct bad_args {
    int method; int64_t n, rank, L; double dt;
    const double *A, *B, *C; double *Ad, *Bd, *K;
    const double complex *lam, *zB, *zC, *P, *Q; double complex *zAd, *zBd;
} bad_args;

static double g_A[BAD_N * BAD_N] = { -1.0, 0.5, 0.25, -2.0 }, g_B[BAD_N] = { 1.0, 2.0 },
              g_C[BAD_N] = { 0.5, -1.0 }, g_Ad[BAD_N * BAD_N], g_Bd[BAD_N], g_K[16];
static double complex g_lam[BAD_N] = { -0.5 + 1.0 * I, -0.5 - 1.0 * I }, g_zB[BAD_N] = { 1.0, 1.0 },
                      g_zC[BAD_N] = { 1.0 - I, 2.0 }, g_P[BAD_N] = { 0.5, 0.25 * I },
                      g_zAd[BAD_N], g_zBd[BAD_N];

static bad_args good_args(void)
{
    bad_args a = { SSM_BILINEAR, BAD_N, 1, 16, 0.1, g_A, g_B, g_C, g_Ad, g_Bd, g_K,
                   g_lam, g_zB, g_zC, g_P, g_P, g_zAd, g_zBd };
    return a;
}

static const double d_nan[BAD_N * BAD_N] = { 1.0, NAN, 0.0, 1.0 };
static const double d_inf[BAD_N * BAD_N] = { 1.0, 0.0, 0.0, INFINITY };
/* A complex value is laid out as two reals (C11 6.2.5p13); a union spells
 * NaN/inf parts as constant initializers without CMPLX (GCC-only in glibc). */
static const union { double d[2 * BAD_N]; double complex z[BAD_N]; }
    z_nan_u = { { 1.0, 0.0, 0.0, NAN } }, z_inf_u = { { -INFINITY, 0.0, 1.0, 0.0 } };
#define z_nan (z_nan_u.z)
#define z_inf (z_inf_u.z)
static double complex g_lam_sing[BAD_N] = { 20.0, -1.0 };   /* 1 - (dt/2) 20 = 0 at dt = 0.1 */
static double g_A_sing[BAD_N * BAD_N] = { 20.0, 0.0, 0.0, -1.0 };

typedef enum { F_DISC, F_DIAG, F_DENSE, F_KDIAG, F_DPLR } bad_fn;
typedef struct bad_case { bad_fn fn; const char *what; ssm_status want; void (*mod)(bad_args *); } bad_case;

#define MOD(name, body) static void name(bad_args *a) { body; }
MOD(m_none, (void)a)
MOD(m_meth_neg, a->method = -1) MOD(m_meth_big, a->method = 4) MOD(m_meth_huge, a->method = 1 << 30)
MOD(m_n0, a->n = 0) MOD(m_nneg, a->n = -3) MOD(m_nmax, a->n = INT64_MAX) MOD(m_n2_32, a->n = (int64_t)1 << 32)
MOD(m_n2_31, a->n = (int64_t)1 << 31)
MOD(m_L0, a->L = 0) MOD(m_Lneg, a->L = -1) MOD(m_Lmax, a->L = INT64_MAX) MOD(m_Lint, a->L = (int64_t)INT32_MAX + 1)
MOD(m_r0, a->rank = 0) MOD(m_rneg, a->rank = -2) MOD(m_rhuge, a->rank = (int64_t)1 << 62)
MOD(m_dtnan, a->dt = NAN) MOD(m_dtinf, a->dt = INFINITY) MOD(m_dtninf, a->dt = -INFINITY)
MOD(m_dt0, a->dt = 0.0) MOD(m_dtm0, a->dt = -0.0) MOD(m_dtneg, a->dt = -0.1)
MOD(m_A0, a->A = NULL) MOD(m_B0, a->B = NULL) MOD(m_C0, a->C = NULL) MOD(m_Ad0, a->Ad = NULL)
MOD(m_Bd0, a->Bd = NULL) MOD(m_K0, a->K = NULL) MOD(m_lam0, a->lam = NULL) MOD(m_zB0, a->zB = NULL)
MOD(m_zC0, a->zC = NULL) MOD(m_P0, a->P = NULL) MOD(m_Q0, a->Q = NULL) MOD(m_zAd0, a->zAd = NULL)
MOD(m_zBd0, a->zBd = NULL)
MOD(m_Anan, a->A = d_nan) MOD(m_Ainf, a->A = d_inf) MOD(m_Bnan, a->B = d_nan) MOD(m_Binf, a->B = d_inf + 2)
MOD(m_Cnan, a->C = d_nan) MOD(m_Adnan, a->A = d_nan) MOD(m_Bdinf, a->B = d_inf + 2)
MOD(m_lamnan, a->lam = z_nan) MOD(m_laminf, a->lam = z_inf) MOD(m_zBnan, a->zB = z_nan)
MOD(m_zCinf, a->zC = z_inf) MOD(m_Pnan, a->P = z_nan) MOD(m_Qinf, a->Q = z_inf)
MOD(m_zAdnan, a->lam = z_nan) MOD(m_zBdinf, a->zB = z_inf)
MOD(m_Asing, a->A = g_A_sing) MOD(m_lamsing, a->lam = g_lam_sing)
MOD(m_Asing_be, { a->A = g_A_sing; a->method = SSM_BACKWARD_EULER; a->dt = 0.05; })
MOD(m_nomem_disc, a->n = (int64_t)1 << 24) MOD(m_huge_disc, a->n = (int64_t)1 << 28)
MOD(m_nomem_dplr, a->n = (int64_t)1 << 40)

static const bad_case bad_cases[] = {
    { F_DISC, "ok", SSM_OK, m_none }, { F_DIAG, "ok", SSM_OK, m_none }, { F_DENSE, "ok", SSM_OK, m_none },
    { F_KDIAG, "ok", SSM_OK, m_none }, { F_DPLR, "ok", SSM_OK, m_none },
    /* ssm_discretize */
    { F_DISC, "method -1", SSM_ERR_ARG, m_meth_neg }, { F_DISC, "method 4", SSM_ERR_ARG, m_meth_big },
    { F_DISC, "method 2^30", SSM_ERR_ARG, m_meth_huge }, { F_DISC, "n 0", SSM_ERR_ARG, m_n0 },
    { F_DISC, "n -3", SSM_ERR_ARG, m_nneg }, { F_DISC, "n max", SSM_ERR_ARG, m_nmax },
    { F_DISC, "n 2^32", SSM_ERR_ARG, m_n2_32 }, { F_DISC, "n 2^31", SSM_ERR_ARG, m_n2_31 },
    { F_DISC, "dt nan", SSM_ERR_ARG, m_dtnan }, { F_DISC, "dt inf", SSM_ERR_ARG, m_dtinf },
    { F_DISC, "dt -inf", SSM_ERR_ARG, m_dtninf }, { F_DISC, "dt 0", SSM_ERR_ARG, m_dt0 },
    { F_DISC, "dt -0", SSM_ERR_ARG, m_dtm0 }, { F_DISC, "dt <0", SSM_ERR_ARG, m_dtneg },
    { F_DISC, "A NULL", SSM_ERR_ARG, m_A0 }, { F_DISC, "B NULL", SSM_ERR_ARG, m_B0 },
    { F_DISC, "Ad NULL", SSM_ERR_ARG, m_Ad0 }, { F_DISC, "Bd NULL", SSM_ERR_ARG, m_Bd0 },
    { F_DISC, "A nan", SSM_ERR_ARG, m_Anan }, { F_DISC, "A inf", SSM_ERR_ARG, m_Ainf },
    { F_DISC, "B nan", SSM_ERR_ARG, m_Bnan }, { F_DISC, "B inf", SSM_ERR_ARG, m_Binf },
    { F_DISC, "I - dt/2 A singular", SSM_ERR_NUMERIC, m_Asing },
    { F_DISC, "I - dt A singular", SSM_ERR_NUMERIC, m_Asing_be },
    { F_DISC, "no memory", SSM_ERR_NOMEM, m_nomem_disc },
    /* 8 (n+1)^2 doubles = 2^62 bytes, beyond any address space: a bad
     * size since sizes are checked in bytes (issue 9), was NOMEM. */
    { F_DISC, "workspace beyond the address space", SSM_ERR_ARG, m_huge_disc },
    /* ssm_discretize_diag */
    { F_DIAG, "method -1", SSM_ERR_ARG, m_meth_neg }, { F_DIAG, "method 4", SSM_ERR_ARG, m_meth_big },
    { F_DIAG, "n 0", SSM_ERR_ARG, m_n0 }, { F_DIAG, "n -3", SSM_ERR_ARG, m_nneg },
    { F_DIAG, "n max", SSM_ERR_ARG, m_nmax }, { F_DIAG, "dt nan", SSM_ERR_ARG, m_dtnan },
    { F_DIAG, "dt inf", SSM_ERR_ARG, m_dtinf }, { F_DIAG, "dt 0", SSM_ERR_ARG, m_dt0 },
    { F_DIAG, "dt <0", SSM_ERR_ARG, m_dtneg }, { F_DIAG, "lambda NULL", SSM_ERR_ARG, m_lam0 },
    { F_DIAG, "B NULL", SSM_ERR_ARG, m_zB0 }, { F_DIAG, "Ad NULL", SSM_ERR_ARG, m_zAd0 },
    { F_DIAG, "Bd NULL", SSM_ERR_ARG, m_zBd0 }, { F_DIAG, "lambda nan", SSM_ERR_ARG, m_lamnan },
    { F_DIAG, "lambda inf", SSM_ERR_ARG, m_laminf }, { F_DIAG, "B nan", SSM_ERR_ARG, m_zBnan },
    { F_DIAG, "1 - dt/2 lambda = 0", SSM_ERR_NUMERIC, m_lamsing },
    /* ssm_kernel_dense */
    { F_DENSE, "n 0", SSM_ERR_ARG, m_n0 }, { F_DENSE, "n -3", SSM_ERR_ARG, m_nneg },
    { F_DENSE, "n max", SSM_ERR_ARG, m_nmax }, { F_DENSE, "n 2^32", SSM_ERR_ARG, m_n2_32 },
    { F_DENSE, "L 0", SSM_ERR_ARG, m_L0 }, { F_DENSE, "L -1", SSM_ERR_ARG, m_Lneg },
    { F_DENSE, "L max", SSM_ERR_ARG, m_Lmax }, { F_DENSE, "Ad NULL", SSM_ERR_ARG, m_A0 },
    { F_DENSE, "Bd NULL", SSM_ERR_ARG, m_B0 }, { F_DENSE, "C NULL", SSM_ERR_ARG, m_C0 },
    { F_DENSE, "K NULL", SSM_ERR_ARG, m_K0 }, { F_DENSE, "Ad nan", SSM_ERR_ARG, m_Adnan },
    { F_DENSE, "Ad inf", SSM_ERR_ARG, m_Ainf }, { F_DENSE, "Bd inf", SSM_ERR_ARG, m_Bdinf },
    { F_DENSE, "C nan", SSM_ERR_ARG, m_Cnan },
    /* ssm_kernel_diag */
    { F_KDIAG, "n 0", SSM_ERR_ARG, m_n0 }, { F_KDIAG, "n -3", SSM_ERR_ARG, m_nneg },
    { F_KDIAG, "n max", SSM_ERR_ARG, m_nmax }, { F_KDIAG, "L 0", SSM_ERR_ARG, m_L0 },
    { F_KDIAG, "L -1", SSM_ERR_ARG, m_Lneg }, { F_KDIAG, "L max", SSM_ERR_ARG, m_Lmax },
    { F_KDIAG, "Ad NULL", SSM_ERR_ARG, m_lam0 }, { F_KDIAG, "Bd NULL", SSM_ERR_ARG, m_zB0 },
    { F_KDIAG, "C NULL", SSM_ERR_ARG, m_zC0 }, { F_KDIAG, "K NULL", SSM_ERR_ARG, m_K0 },
    { F_KDIAG, "Ad nan", SSM_ERR_ARG, m_zAdnan }, { F_KDIAG, "Bd inf", SSM_ERR_ARG, m_zBdinf },
    { F_KDIAG, "C inf", SSM_ERR_ARG, m_zCinf },
    /* ssm_kernel_dplr */
    { F_DPLR, "n 0", SSM_ERR_ARG, m_n0 }, { F_DPLR, "n -3", SSM_ERR_ARG, m_nneg },
    { F_DPLR, "n max", SSM_ERR_ARG, m_nmax }, { F_DPLR, "rank 0", SSM_ERR_ARG, m_r0 },
    { F_DPLR, "rank -2", SSM_ERR_ARG, m_rneg }, { F_DPLR, "rank*n overflow", SSM_ERR_ARG, m_rhuge },
    { F_DPLR, "L 0", SSM_ERR_ARG, m_L0 }, { F_DPLR, "L -1", SSM_ERR_ARG, m_Lneg },
    { F_DPLR, "L max", SSM_ERR_ARG, m_Lmax }, { F_DPLR, "L > INT_MAX", SSM_ERR_ARG, m_Lint },
    { F_DPLR, "dt nan", SSM_ERR_ARG, m_dtnan }, { F_DPLR, "dt inf", SSM_ERR_ARG, m_dtinf },
    { F_DPLR, "dt 0", SSM_ERR_ARG, m_dt0 }, { F_DPLR, "dt <0", SSM_ERR_ARG, m_dtneg },
    { F_DPLR, "lambda NULL", SSM_ERR_ARG, m_lam0 }, { F_DPLR, "P NULL", SSM_ERR_ARG, m_P0 },
    { F_DPLR, "Q NULL", SSM_ERR_ARG, m_Q0 }, { F_DPLR, "B NULL", SSM_ERR_ARG, m_zB0 },
    { F_DPLR, "C NULL", SSM_ERR_ARG, m_zC0 }, { F_DPLR, "K NULL", SSM_ERR_ARG, m_K0 },
    { F_DPLR, "lambda nan", SSM_ERR_ARG, m_lamnan }, { F_DPLR, "lambda inf", SSM_ERR_ARG, m_laminf },
    { F_DPLR, "P nan", SSM_ERR_ARG, m_Pnan }, { F_DPLR, "Q inf", SSM_ERR_ARG, m_Qinf },
    { F_DPLR, "B nan", SSM_ERR_ARG, m_zBnan }, { F_DPLR, "C inf", SSM_ERR_ARG, m_zCinf },
    { F_DPLR, "I - dt/2 A singular", SSM_ERR_NUMERIC, m_lamsing },
    { F_DPLR, "no memory", SSM_ERR_NOMEM, m_nomem_dplr },
};

START_TEST(bad_inputs)
{
    const bad_case bc = bad_cases[_i];
    bad_args a = good_args();
    bc.mod(&a);
    ssm_status got = SSM_OK;
    switch (bc.fn) {
    case F_DISC:  got = ssm_discretize((ssm_disc)a.method, a.n, a.A, a.B, a.dt, a.Ad, a.Bd); break;
    case F_DIAG:  got = ssm_discretize_diag((ssm_disc)a.method, a.n, a.lam, a.zB, a.dt, a.zAd, a.zBd); break;
    case F_DENSE: got = ssm_kernel_dense(a.n, a.A, a.B, a.C, a.L, a.K); break;
    case F_KDIAG: got = ssm_kernel_diag(a.n, a.lam, a.zB, a.zC, a.L, a.K); break;
    case F_DPLR:  got = ssm_kernel_dplr(a.n, a.rank, a.lam, a.P, a.Q, a.zB, a.zC, a.dt, a.L, a.K); break;
    }
    static const char *fname[] = { "ssm_discretize", "ssm_discretize_diag", "ssm_kernel_dense",
                                   "ssm_kernel_diag", "ssm_kernel_dplr" };
    ck_assert_msg(got == bc.want, "%s(%s): got %d (%s), want %d", fname[bc.fn], bc.what,
                  (int)got, ssm_status_string(got), (int)bc.want);
}
END_TEST

/* ---------------------------------------------------------------------- */

int main(void)
{
    Suite *s = suite_create("s4");
    TCase *tc = tcase_create("discretize");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, zoh_matches_taylor_reference, 0, 3);
    tcase_add_test(tc, zoh_singular_A);
    tcase_add_test(tc, gbt_identities);
    tcase_add_test(tc, gbt_singular_is_numeric);
    tcase_add_test(tc, diag_zoh_small_lambda);
    tcase_add_test(tc, diag_gbt_formulas);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 600);
    tcase_add_test(tk, kernel_dense_vs_long_double);
    tcase_add_test(tk, kernel_diag_vs_direct_powers);
    tcase_add_loop_test(tk, dplr_random_vs_dense_complex, 0, (int)(sizeof dplr_cases / sizeof dplr_cases[0]));
    tcase_add_test(tk, dplr_poles_on_nodes);
    tcase_add_loop_test(tk, dplr_fout_closed_form_nplr, 0, (int)(sizeof fout_cases / sizeof fout_cases[0]));
    tcase_add_loop_test(tk, dplr_hippo_nplr, 0, (int)(sizeof hippo_cases / sizeof hippo_cases[0]));
    suite_add_tcase(s, tk);
    TCase *tt = tcase_create("threads");
    tcase_set_timeout(tt, 600);
    tcase_add_test(tt, threads_bitwise);
    suite_add_tcase(s, tt);
    TCase *tb = tcase_create("bad_inputs");
    tcase_set_timeout(tb, 600);
    tcase_add_loop_test(tb, bad_inputs, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    suite_add_tcase(s, tb);
    return tu_run(s);
}
