/*
 * discretize.c -- continuous to discrete time for dense and diagonal SSMs.
 *
 * ZOH (S4: Gu et al. 2022, eq. (3) with the exact hold; S4D: Gu et al. 2022,
 * Table 1):  Ad = exp(dt A), Bd = dt phi1(dt A) B.  The dense path takes both
 * from one matrix exponential of the augmented matrix
 *     dt [[A, B], [0, 0]]   ->   exp = [[Ad, Bd], [0, 1]]
 * (Van Loan's block trick), so A is never inverted and a singular A (FOUT has
 * a zero eigenvalue) is fine.  The exponential is scaling and squaring with
 * the [m/m] Pade approximants, m in {3, 5, 7, 9, 13}, of Higham (2005),
 * "The scaling and squaring method for the matrix exponential revisited",
 * Algorithm 2.3 (theta_m from its Table 2.3).
 *
 * GBT(alpha) (S4 eq. (3) for alpha = 1/2):  Ad = (I - alpha dt A)^-1
 * (I + (1 - alpha) dt A), Bd = (I - alpha dt A)^-1 dt B, one LU solve
 * with partial pivoting and n + 1 right-hand sides.
 */
#include <float.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------- */
/* small dense helpers, row-major m x m, fixed accumulation order          */

/* C = A B (m x m), i-k-j order so the inner loop is a contiguous axpy. */
static void mat_mul(int64_t m, const double *A, const double *B, double *C)
{
    for (int64_t i = 0; i < m; i++) {
        double *c = C + i * m;
        for (int64_t j = 0; j < m; j++)
            c[j] = 0.0;
        for (int64_t k = 0; k < m; k++) {
            const double a = A[i * m + k];
            const double *b = B + k * m;
            for (int64_t j = 0; j < m; j++)
                c[j] += a * b[j];
        }
    }
}

static double norm1(int64_t m, const double *A)
{
    double best = 0.0;
    for (int64_t j = 0; j < m; j++) {
        double s = 0.0;
        for (int64_t i = 0; i < m; i++)
            s += fabs(A[i * m + j]);
        if (s > best || isnan(s))
            best = s;
    }
    return best;
}

/* Solve M X = R in place (M: m x m, R: m x nrhs, both row-major) by
 * Gaussian elimination with partial pivoting written here rather than
 * LAPACK's dgesv: a threaded BLAS under dgetrf (OpenBLAS) changes the bits
 * with the thread count, and the library promises the same bits for every count.
 * Right-looking, rows as contiguous axpys, in a fixed order.
 * work: m*m doubles (M is not modified).  A pivot at or below
 * eps max|M_ij| (singular to working precision) is SSM_ERR_NUMERIC. */
static ssm_status lu_solve(int64_t m, int64_t nrhs, const double *M, double *R,
                           double *work)
{
    double *U = work;
    memcpy(U, M, (size_t)(m * m) * sizeof *U);
    double mmax = 0.0;
    for (int64_t i = 0; i < m * m; i++)
        if (fabs(U[i]) > mmax) mmax = fabs(U[i]);
    if (!(mmax > 0.0) || !isfinite(mmax))
        return SSM_FAIL(SSM_ERR_NUMERIC);
    const double tiny = DBL_EPSILON * mmax;
    for (int64_t c = 0; c < m; c++) {
        int64_t piv = c;
        double best = fabs(U[c * m + c]);
        for (int64_t i = c + 1; i < m; i++)
            if (fabs(U[i * m + c]) > best) { best = fabs(U[i * m + c]); piv = i; }
        if (!(best > tiny))
            return SSM_FAIL(SSM_ERR_NUMERIC);
        if (piv != c) {
            for (int64_t j = 0; j < m; j++) {
                double t = U[c * m + j]; U[c * m + j] = U[piv * m + j]; U[piv * m + j] = t;
            }
            for (int64_t j = 0; j < nrhs; j++) {
                double t = R[c * nrhs + j]; R[c * nrhs + j] = R[piv * nrhs + j]; R[piv * nrhs + j] = t;
            }
        }
        const double inv = 1.0 / U[c * m + c];
        const double *uc = U + c * m, *rc = R + c * nrhs;
        for (int64_t i = c + 1; i < m; i++) {
            const double f = U[i * m + c] * inv;
            if (f == 0.0)
                continue;
            double *ui = U + i * m, *ri = R + i * nrhs;
            for (int64_t j = c + 1; j < m; j++)
                ui[j] -= f * uc[j];
            for (int64_t j = 0; j < nrhs; j++)
                ri[j] -= f * rc[j];
        }
    }
    for (int64_t c = m - 1; c >= 0; c--) {
        double *rc = R + c * nrhs;
        for (int64_t k = c + 1; k < m; k++) {
            const double u = U[c * m + k];
            const double *rk = R + k * nrhs;
            for (int64_t j = 0; j < nrhs; j++)
                rc[j] -= u * rk[j];
        }
        const double inv = 1.0 / U[c * m + c];
        for (int64_t j = 0; j < nrhs; j++)
            rc[j] *= inv;
    }
    return SSM_OK;
}

/* ---------------------------------------------------------------------- */
/* matrix exponential                                                      */

/* Coefficients of the [m/m] Pade numerator p(x) = sum_j c_j x^j of e^x,
 * c_j = (2m - j)! m! / ((2m)! j! (m - j)!), by the ratio c_{j+1}/c_j
 * = (m - j) / ((2m - j)(j + 1)); the denominator is p(-x). */
static void pade_coef(int m, double *c)
{
    c[0] = 1.0;
    for (int j = 0; j < m; j++)
        c[j + 1] = c[j] * (double)(m - j) / ((double)(2 * m - j) * (double)(j + 1));
}

/* X <- exp(X) (m x m).  work: 7 m*m doubles (X2, X4, X6, U, V, T and the
 * LU's m*m). */
static ssm_status expm(int64_t m, double *X, double *work)
{
    /* Higham (2005) Table 2.3: largest ||X||_1 for which the [k/k]
     * approximant has backward error <= 2^-53. */
    static const int degs[5] = { 3, 5, 7, 9, 13 };
    static const double theta[5] = { 1.495585217958292e-2, 2.539398330063230e-1,
                                     9.504178996162932e-1, 2.097847961257068e0,
                                     5.371920351148152e0 };
    const int64_t mm = m * m;
    double *X2 = work, *X4 = X2 + mm, *X6 = X4 + mm, *U = X6 + mm, *V = U + mm,
           *T = V + mm, *lu = T + mm;
    double c[14];
    const double nrm = norm1(m, X);
    if (!isfinite(nrm))
        return SSM_FAIL(SSM_ERR_NUMERIC);

    int deg = 13, s = 0;
    for (int i = 0; i < 4; i++)
        if (nrm <= theta[i]) { deg = degs[i]; break; }
    if (deg == 13 && nrm > theta[4]) {
        /* s = ceil(log2(nrm / theta_13)), scale by an exact power of 2. */
        s = (int)ceil(log2(nrm / theta[4]));
        if (s < 0) s = 0;
        if (s > 1100)
            return SSM_FAIL(SSM_ERR_NUMERIC);
        const double f = ldexp(1.0, -s);
        for (int64_t i = 0; i < mm; i++)
            X[i] *= f;
    }
    pade_coef(deg, c);

    mat_mul(m, X, X, X2);
    if (deg >= 5) mat_mul(m, X2, X2, X4);
    if (deg >= 7) mat_mul(m, X2, X4, X6);
    /* U = X * (odd part / X), V = even part (Higham eq. (2.3)-(2.4)). */
    if (deg == 13) {
        /* U = X [X6 (c13 X6 + c11 X4 + c9 X2) + c7 X6 + c5 X4 + c3 X2 + c1 I]
         * V =    X6 (c12 X6 + c10 X4 + c8 X2) + c6 X6 + c4 X4 + c2 X2 + c0 I */
        for (int64_t i = 0; i < mm; i++)
            T[i] = c[13] * X6[i] + c[11] * X4[i] + c[9] * X2[i];
        mat_mul(m, X6, T, V);                       /* V as scratch */
        for (int64_t i = 0; i < mm; i++)
            V[i] += c[7] * X6[i] + c[5] * X4[i] + c[3] * X2[i];
        for (int64_t i = 0; i < m; i++)
            V[i * m + i] += c[1];
        mat_mul(m, X, V, U);
        for (int64_t i = 0; i < mm; i++)
            T[i] = c[12] * X6[i] + c[10] * X4[i] + c[8] * X2[i];
        mat_mul(m, X6, T, V);
        for (int64_t i = 0; i < mm; i++)
            V[i] += c[6] * X6[i] + c[4] * X4[i] + c[2] * X2[i];
        for (int64_t i = 0; i < m; i++)
            V[i * m + i] += c[0];
    } else {
        const double *pw[5] = { NULL, X2, X4, X6, NULL };
        int half = deg / 2;              /* highest even power index / 2 */
        if (deg == 9) {
            mat_mul(m, X4, X4, T);       /* X8 */
            pw[4] = T;
        }
        /* odd part / X into V, then U = X V; even part into V afterwards. */
        double *O = V;
        for (int64_t i = 0; i < mm; i++)
            O[i] = 0.0;
        for (int64_t i = 0; i < m; i++)
            O[i * m + i] = c[1];
        for (int k = 1; k <= half; k++)
            for (int64_t i = 0; i < mm; i++)
                O[i] += c[2 * k + 1] * pw[k][i];
        mat_mul(m, X, O, U);
        for (int64_t i = 0; i < mm; i++)
            V[i] = 0.0;
        for (int64_t i = 0; i < m; i++)
            V[i * m + i] = c[0];
        for (int k = 1; k <= half; k++)
            for (int64_t i = 0; i < mm; i++)
                V[i] += c[2 * k] * pw[k][i];
    }
    /* r = (V - U)^-1 (V + U) */
    for (int64_t i = 0; i < mm; i++) {
        const double u = U[i], v = V[i];
        T[i] = v - u;
        X[i] = v + u;
    }
    ssm_status st = lu_solve(m, m, T, X, lu);
    if (st != SSM_OK)
        return st;
    for (int i = 0; i < s; i++) {
        mat_mul(m, X, X, T);
        memcpy(X, T, (size_t)mm * sizeof *X);
    }
    return ssmi_finite_d(X, mm) ? SSM_OK : SSM_FAIL(SSM_ERR_NUMERIC);
}

/* ---------------------------------------------------------------------- */

static int method_ok(ssm_disc m)
{
    return m == SSM_ZOH || m == SSM_BILINEAR || m == SSM_EULER ||
           m == SSM_BACKWARD_EULER;
}

static double gbt_alpha(ssm_disc m)
{
    return m == SSM_EULER ? 0.0 : m == SSM_BILINEAR ? 0.5 : 1.0;
}

ssm_status ssm_discretize(ssm_disc method, int64_t n, const double *A,
                          const double *B, double dt, double *Ad, double *Bd)
{
    if (!method_ok(method) || !A || !B || !Ad || !Bd || !ssmi_dt_ok(dt))
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t m2;
    /* n + 1 may not overflow (any n >= 2^31 fails the next test anyway), and
     * 8 (n+1)^2 doubles (X and the exponential's workspace) must fit. */
    if (n < 1 || n >= INT32_MAX || !ssmi_sizes_ok(&m2, 8 * sizeof(double), 2, n + 1, n + 1))
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t m = n + 1;

    /* Workspace first (a size that cannot be allocated is SSM_ERR_NOMEM
     * before any input is read), then the input values. */
    double *X = ssmi_alloc((size_t)m2, sizeof(double));
    double *work = ssmi_alloc((size_t)m2 * 7, sizeof(double));
    ssm_status st = SSM_OK;
    if (!X || !work) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    if (!ssmi_finite_d(A, n * n) || !ssmi_finite_d(B, n)) {
        st = SSM_FAIL(SSM_ERR_ARG);
        goto done;
    }

    if (method == SSM_ZOH) {
        /* X = dt [[A, B], [0, 0]] */
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++)
                X[i * m + j] = dt * A[i * n + j];
            X[i * m + n] = dt * B[i];
        }
        for (int64_t j = 0; j < m; j++)
            X[n * m + j] = 0.0;
        st = expm(m, X, work);
        if (st != SSM_OK)
            goto done;
        for (int64_t i = 0; i < n; i++) {
            memcpy(Ad + i * n, X + i * m, (size_t)n * sizeof(double));
            Bd[i] = X[i * m + n];
        }
    } else {
        const double a = gbt_alpha(method), b = 1.0 - a;
        /* R = [I + (1 - alpha) dt A | dt B]  (n x (n+1)) */
        double *R = X, *M = work, *lu = work + n * n;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++)
                R[i * m + j] = (b * dt) * A[i * n + j] + (i == j ? 1.0 : 0.0);
            R[i * m + n] = dt * B[i];
        }
        if (a != 0.0) {
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++)
                    M[i * n + j] = (i == j ? 1.0 : 0.0) - (a * dt) * A[i * n + j];
            st = lu_solve(n, m, M, R, lu);
            if (st != SSM_OK)
                goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            memcpy(Ad + i * n, R + i * m, (size_t)n * sizeof(double));
            Bd[i] = R[i * m + n];
        }
    }
    if (!ssmi_finite_d(Ad, n * n) || !ssmi_finite_d(Bd, n))
        st = SSM_FAIL(SSM_ERR_NUMERIC);
done:
    ssmi_free(X);
    ssmi_free(work);
    return st;
}

/* ---------------------------------------------------------------------- */
/* diagonal systems                                                        */

/* phi1(z) = (e^z - 1) / z, relatively accurate for every z, z = 0 included:
 * a Taylor series sum z^k/(k+1)! for |z| < 1/4 (18 terms: the first omitted
 * term is below 4^-18/19! ~ 1e-28), else e^z - 1 without cancellation,
 *   e^(x+iy) - 1 = expm1(x) cos y - 2 sin^2(y/2) + i e^x sin y,
 * divided by z. */
static double complex phi1(double complex z)
{
    const double x = creal(z), y = cimag(z);
    if (fabs(x) < 0.25 && fabs(y) < 0.25 && x * x + y * y < 0.0625) {
        /* Horner: phi1 = 1 + z/2 (1 + z/3 (1 + z/4 (... (1 + z/18)))). */
        double complex h = 1.0;
        for (int k = 18; k >= 2; k--)
            h = 1.0 + z * h / (double)k;
        return h;
    }
    const double sh = sin(0.5 * y);
    const double re = expm1(x) * cos(y) - 2.0 * sh * sh;
    const double im = exp(x) * sin(y);
    return ssmi_cmplx(re, im) / z;
}

ssm_status ssm_discretize_diag(ssm_disc method, int64_t n,
                               const double complex *lambda,
                               const double complex *B, double dt,
                               double complex *Ad, double complex *Bd)
{
    if (!method_ok(method) || !lambda || !B || !Ad || !Bd || !ssmi_dt_ok(dt) ||
        !ssmi_sizes_ok(NULL, sizeof(double complex), 1, n))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_finite_z(lambda, n) || !ssmi_finite_z(B, n))
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t k = 0; k < n; k++) {
        const double complex z = dt * lambda[k];
        double complex a, b;
        if (method == SSM_ZOH) {
            /* S4D Table 1: Ad = e^z, Bd = dt phi1(z) B */
            a = cexp(z);
            b = (dt * phi1(z)) * B[k];
        } else {
            const double al = gbt_alpha(method);
            const double complex den = 1.0 - al * z;
            if (den == 0.0)
                return SSM_FAIL(SSM_ERR_NUMERIC);
            a = (1.0 + (1.0 - al) * z) / den;
            b = (dt * B[k]) / den;
        }
        if (!isfinite(creal(a)) || !isfinite(cimag(a)) ||
            !isfinite(creal(b)) || !isfinite(cimag(b)))
            return SSM_FAIL(SSM_ERR_NUMERIC);
        Ad[k] = a;
        Bd[k] = b;
    }
    return SSM_OK;
}
