/*
 * nplr.c -- normal-plus-low-rank form of the HiPPO matrices (S4: Gu, Goel,
 * Re 2022, "Efficiently Modeling Long Sequences with Structured State
 * Spaces", Theorem 1 and its proof in the appendix) and the S4D
 * initialisations (Gu, Gupta, Goel, Re 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models": S4D-LegS, -Lin, -Inv,
 * -Real).
 *
 * Route.  For every measure S = A + P^T P = c I + K with K real skew-
 * symmetric (c = -1/2 for LEGS, 0 otherwise; S4 Theorem 1).  The
 * eigenvectors of S are those of the Hermitian H = -i K, H v = w v, and
 * lambda = c + i w.  The classic route is zheev on H; Debian 12's OpenBLAS
 * 0.3.21 reads out of bounds in the complex zgemv used on the way, so no
 * complex BLAS/LAPACK is used at all.  Instead: H = X + i Y with X = 0,
 * Y = -K is equivalent to the real symmetric 2n x 2n matrix
 *     M = [[X, -Y], [Y, X]] = [[0, K], [-K, 0]],
 * and v = a + i b is an eigenvector of H for w iff [a; b] (and then also
 * [-b; a]) is an eigenvector of M for w: every eigenvalue of H appears
 * twice in M.  M goes to LAPACK's dsyevd (real divide and conquer).  From
 * each cluster of 2m equal eigenvalues of M the m complex vectors a + i b
 * are orthonormalised by complex Gram-Schmidt with column pivoting (the
 * cluster's 2m candidates span exactly an m-dimensional complex space) and
 * against all earlier vectors (which restores unitarity to O(n eps) where
 * dsyevd's real orthogonality leaves the complex pairing at eps ||M|| /
 * gap), and each w is the Rayleigh quotient Im(v^* K v) of its vector.
 * Only real LAPACK/BLAS (dsyevd) is called, so the result is the same,
 * to rounding, and valgrind-clean under reference LAPACK and OpenBLAS.
 */
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <string.h>

#include "hippo_internal.h"

/* Rows of the low-rank factor P of each measure (API.md). */
static int64_t nplr_min_rank(ssm_measure m)
{
    return m == SSM_LEGT ? 2 : 1;
}

/* P (rows x n, row-major, rows = nplr_min_rank) and c of measure m. */
static double nplr_factor(ssm_measure m, int64_t n, const double *B, double *P)
{
    switch (m) {
    case SSM_LEGS:
        /* S4 Theorem 1 (LegS case): A + p p^T = -1/2 I + skew, p_n = (n + 1/2)^1/2. */
        for (int64_t i = 0; i < n; i++)
            P[i] = sqrt((double)i + 0.5);
        return -0.5;
    case SSM_LEGT:
        /* p_0 holds the even s_n, p_1 the odd ones: p_0 p_0^T + p_1 p_1^T
         * is s_n s_k on equal parity, which cancels the symmetric part. */
        for (int64_t i = 0; i < n; i++) {
            double s = sqrt(2.0 * (double)i + 1.0);
            P[i] = (i & 1) ? 0.0 : s;
            P[n + i] = (i & 1) ? s : 0.0;
        }
        return 0.0;
    case SSM_LAGT:
        for (int64_t i = 0; i < n; i++)
            P[i] = sqrt(0.5);
        return 0.0;
    case SSM_FOUT:
        /* A = 2 pi R - 2 b b^T and B = 2 b, so p = sqrt2 b = B / sqrt2. */
        for (int64_t i = 0; i < n; i++)
            P[i] = B[i] / sqrt(2.0);
        return 0.0;
    }
    return 0.0;
}

/* Eigenvalues (ascending, w[2n]) and, if Z != NULL, orthonormal eigenvectors
 * (column-major 2n x 2n, overwriting Z which holds M on entry) of the real
 * symmetric embedding M of H = -i K.  M is in Z on entry.  Workspace is
 * allocated here after LAPACK's size query. */
static ssm_status embed_eig(int64_t n2, double *Z, double *w, int vectors)
{
    lapack_int N = (lapack_int)n2, info, liwork_q = 0;
    double lwork_q = 0.0;
    char jobz = vectors ? 'V' : 'N';
    info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, jobz, 'U', N, Z, N, w,
                               &lwork_q, -1, &liwork_q, -1);
    if (info != 0)
        return SSM_FAIL(info > 0 ? SSM_ERR_LAPACK : SSM_ERR_ARG);
    /* The query answers in a double; it must fit LAPACK's integer. */
    if (!(lwork_q >= 1.0) || lwork_q > (double)INT_MAX || liwork_q < 1)
        return SSM_FAIL(SSM_ERR_NOMEM);
    lapack_int lwork = (lapack_int)lwork_q, liwork = liwork_q;
    double *work = ssmi_alloc((size_t)lwork, sizeof(double));
    lapack_int *iwork = ssmi_alloc((size_t)liwork, sizeof(lapack_int));
    if (work == NULL || iwork == NULL) {
        ssmi_free(work);
        ssmi_free(iwork);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, jobz, 'U', N, Z, N, w,
                               work, lwork, iwork, liwork);
    ssmi_free(work);
    ssmi_free(iwork);
    if (info > 0)
        return SSM_FAIL(SSM_ERR_LAPACK);
    if (info < 0)   /* cannot happen: every argument was checked */
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* Whether the route can hand n to LAPACK (n <= 16383 for a 32-bit
 * lapack_int): dsyevd on 2n needs a workspace of 1 + 6(2n) + 2(2n)^2
 * doubles, whose count must fit lapack_int. */
static int embed_fits_lapack(int64_t n)
{
    if (n > INT_MAX / 4)
        return 0;
    int64_t N = 2 * n;
    return 1 + 6 * N + 2 * N * N <= (int64_t)INT_MAX;
}

/* S = A + sum_r p_r p_r^T (r < rows), then in place its skew part
 * K = (S - S^T) / 2: S - c I is skew in exact arithmetic (S4 Theorem 1),
 * so this only drops rounding of the symmetric part. */
static void skew_part(int64_t n, int64_t rows, const double *P, double *A)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                A[i * n + j] += P[r * n + i] * P[r * n + j];
    for (int64_t i = 0; i < n; i++) {
        A[i * n + i] = 0.0;
        for (int64_t j = i + 1; j < n; j++) {
            double k = 0.5 * (A[i * n + j] - A[j * n + i]);
            A[i * n + j] = k;
            A[j * n + i] = -k;
        }
    }
}

/* M = [[0, K], [-K, 0]] (column-major, 2n x 2n, symmetric) from the
 * row-major skew K. */
static void embed_build(int64_t n, const double *K, double *Mz)
{
    int64_t N = 2 * n;
    memset(Mz, 0, (size_t)N * (size_t)N * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double k = K[i * n + j];
            Mz[(n + j) * N + i] = k;         /* M[i][n + j] = K[i][j] */
            Mz[j * N + (n + i)] = -k;        /* M[n + i][j] = -K[i][j] */
        }
}

/* Complex vector kernels in explicit real arithmetic (C11 lays a double
 * complex out as double[2]); keeps the loops free of the NaN-checking
 * complex multiply and lets them vectorise. */
static double complex zdotc(int64_t n, const double complex *u,
                            const double complex *x)
{
    const double *a = (const double *)u, *b = (const double *)x;
    /* two independent accumulator pairs (fixed order, so deterministic)
     * to shorten the dependency chain */
    double sr0 = 0.0, si0 = 0.0, sr1 = 0.0, si1 = 0.0;
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
        sr0 += a[2 * i] * b[2 * i] + a[2 * i + 1] * b[2 * i + 1];
        si0 += a[2 * i] * b[2 * i + 1] - a[2 * i + 1] * b[2 * i];
        sr1 += a[2 * i + 2] * b[2 * i + 2] + a[2 * i + 3] * b[2 * i + 3];
        si1 += a[2 * i + 2] * b[2 * i + 3] - a[2 * i + 3] * b[2 * i + 2];
    }
    if (i < n) {
        sr0 += a[2 * i] * b[2 * i] + a[2 * i + 1] * b[2 * i + 1];
        si0 += a[2 * i] * b[2 * i + 1] - a[2 * i + 1] * b[2 * i];
    }
    return ssmi_cmplx(sr0 + sr1, si0 + si1);
}

/* x -= d u */
static void zaxmy(int64_t n, double complex d, const double complex *u,
                  double complex *x)
{
    const double *a = (const double *)u;
    double *b = (double *)x, dr = creal(d), di = cimag(d);
    for (int64_t i = 0; i < n; i++) {
        b[2 * i] -= dr * a[2 * i] - di * a[2 * i + 1];
        b[2 * i + 1] -= dr * a[2 * i + 1] + di * a[2 * i];
    }
}

static double znrm2sq(int64_t n, const double complex *x)
{
    const double *a = (const double *)x;
    double s = 0.0;
    for (int64_t i = 0; i < 2 * n; i++)
        s += a[i] * a[i];
    return s;
}

/* u^* x for a real x. */
static double complex zdotc_real(int64_t n, const double complex *u,
                                 const double *x)
{
    const double *a = (const double *)u;
    double sr = 0.0, si = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sr += a[2 * i] * x[i];
        si -= a[2 * i + 1] * x[i];
    }
    return ssmi_cmplx(sr, si);
}

/* Complex Gram-Schmidt with column pivoting inside each cluster of equal
 * eigenvalues of M: writes n orthonormal eigenvectors of H into Q, vector j
 * contiguous at Q + j*n.  C (2n*n complex) is scratch. */
static ssm_status extract_vectors(int64_t n, const double *Z, const double *w,
                                  double complex *C, double complex *Q)
{
    int64_t N = 2 * n, nv = 0;
    double scale = fmax(fabs(w[0]), fabs(w[N - 1]));
    /* The two copies of an eigenvalue of H differ in M by the backward error
     * of dsyevd, a modest multiple of eps ||M||; distinct HiPPO eigenvalues
     * are O(1) apart. */
    double tol = 8.0 * (double)N * DBL_EPSILON * scale;
    int64_t c0 = 0;
    while (c0 < N) {
        int64_t c1 = c0 + 1;
        /* Grow the cluster while the next eigenvalue is close, and always
         * to an even size: a pair of copies is never split. */
        while (c1 < N && (w[c1] - w[c1 - 1] <= tol || ((c1 - c0) & 1)))
            c1++;
        int64_t s = c1 - c0, want = s / 2;
        if (nv + want > n)
            want = n - nv;
        /* Candidates a + i b from the columns [a; b] of Z. */
        for (int64_t k = 0; k < s; k++) {
            const double *z = Z + (c0 + k) * N;
            for (int64_t i = 0; i < n; i++)
                C[k * n + i] = ssmi_cmplx(z[i], z[n + i]);
        }
        for (int64_t step = 0; step < want; step++) {
            /* Pivot: the remaining candidate with the largest residual
             * (the residuals' squares add up to 2(m - step)). */
            int64_t best = -1;
            double bn = -1.0;
            for (int64_t k = step; k < s; k++) {
                double nr = znrm2sq(n, C + k * n);
                if (nr > bn) {
                    bn = nr;
                    best = k;
                }
            }
            if (!(bn > 0.0))
                return SSM_FAIL(SSM_ERR_LAPACK);
            if (best != step)
                for (int64_t i = 0; i < n; i++) {
                    double complex t = C[step * n + i];
                    C[step * n + i] = C[best * n + i];
                    C[best * n + i] = t;
                }
            double complex *q = C + step * n;
            /* Classical Gram-Schmidt against every vector accepted so far,
             * of this and earlier clusters, repeated once if it cancelled
             * ("twice is enough", Giraud et al. 2005).  Vectors of distinct clusters
             * are orthogonal in exact arithmetic, but the complex pairing
             * a + i b only inherits dsyevd's real orthogonality up to
             * eps ||M|| / gap; the components removed are that small, so
             * the eigen-residual stays O(eps ||M||). */
            double nr = znrm2sq(n, q);
            for (int pass = 0; pass < 2; pass++) {
                for (int64_t p = 0; p < nv; p++)
                    zaxmy(n, zdotc(n, Q + p * n, q), Q + p * n, q);
                double before = nr;
                nr = znrm2sq(n, q);
                /* Kahan-Parlett: a second pass only after cancellation
                 * (the norm fell below 1/sqrt2 of what it was). */
                if (nr >= 0.5 * before)
                    break;
            }
            if (!(nr > 0.0))
                return SSM_FAIL(SSM_ERR_LAPACK);
            double inv = 1.0 / sqrt(nr);
            for (int64_t i = 0; i < n; i++)
                q[i] *= inv;
            /* Modified Gram-Schmidt update of the remaining candidates. */
            for (int64_t k = step + 1; k < s; k++)
                zaxmy(n, zdotc(n, q, C + k * n), q, C + k * n);
            memcpy(Q + nv * n, q, (size_t)n * sizeof(double complex));
            nv++;
        }
        c0 = c1;
    }
    if (nv != n)
        return SSM_FAIL(SSM_ERR_LAPACK);
    return SSM_OK;
}

/* Validation shared by ssm_hippo_nplr; 1 if all arguments are good. */
static int nplr_args_ok(ssm_measure m, int64_t n, int64_t rank,
                        const void *lambda, const void *Pt, const void *Bt,
                        const void *V)
{
    int64_t t;
    if (!ssmi_hippo_measure_ok(m) || !lambda || !Pt || !Bt || !V)
        return 0;
    /* Bytes, not element counts: V [n][n] and Pt [rank][n] must be arrays
     * that can exist (found by fuzz_hippo: rank 2^59+1 wrote out of bounds). */
    if (!ssmi_sizes_ok(&t, sizeof(double complex), 2, n, n) ||
        !ssmi_sizes_ok(&t, sizeof(double complex), 2, rank, n))
        return 0;
    if (rank < nplr_min_rank(m) || (m == SSM_FOUT && (n & 1)))
        return 0;
    return 1;
}

ssm_status ssm_hippo_nplr(ssm_measure m, int64_t n, int64_t rank,
                          double complex *lambda, double complex *Pt,
                          double complex *Bt, double complex *V)
{
    if (!nplr_args_ok(m, n, rank, lambda, Pt, Bt, V))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!embed_fits_lapack(n))
        return SSM_FAIL(SSM_ERR_NOMEM);

    int64_t N = 2 * n, r0 = nplr_min_rank(m);
    size_t nn = (size_t)n * (size_t)n, NN = (size_t)N * (size_t)N;
    double *A = ssmi_alloc(nn, sizeof(double));
    double *B = ssmi_alloc((size_t)n, sizeof(double));
    double *P = ssmi_alloc((size_t)(r0 * n), sizeof(double));
    double *Z = ssmi_alloc(NN, sizeof(double));
    double *w = ssmi_alloc((size_t)N, sizeof(double));
    double complex *C = ssmi_alloc(2 * nn, sizeof(double complex));
    double complex *Q = ssmi_alloc(nn, sizeof(double complex));
    ssm_status st = SSM_OK;
    if (!A || !B || !P || !Z || !w || !C || !Q) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }

    ssmi_hippo_fill(m, n, A, B);
    double c = nplr_factor(m, n, B, P);
    skew_part(n, r0, P, A);            /* A now holds K */
    embed_build(n, A, Z);
    st = embed_eig(N, Z, w, 1);
    if (st != SSM_OK)
        goto done;
    st = extract_vectors(n, Z, w, C, Q);
    if (st != SSM_OK)
        goto done;

    /* lambda_j = c + i w_j with the Rayleigh quotient w_j = Im(v^* K v);
     * for v = r + i s and K skew, v^* K v = 2i r^T K s (K is in A).  Then
     * Pt_r = V^* p_r (extra rows zero) and Bt = V^* B.  Q holds vector j
     * contiguously: Q[j*n + i] = V[i*n + j]. */
    for (int64_t j = 0; j < n; j++) {
        const double *v = (const double *)(Q + j * n);
        double om = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double ks = 0.0;
            for (int64_t k = 0; k < n; k++)
                ks += A[i * n + k] * v[2 * k + 1];
            om += v[2 * i] * ks;
        }
        lambda[j] = ssmi_cmplx(c, 2.0 * om);
        for (int64_t r = 0; r < rank; r++)
            Pt[r * n + j] = r < r0 ? zdotc_real(n, Q + j * n, P + r * n) : 0.0;
        Bt[j] = zdotc_real(n, Q + j * n, B);
        for (int64_t i = 0; i < n; i++)
            V[i * n + j] = Q[j * n + i];
    }

done:
    ssmi_free(A);
    ssmi_free(B);
    ssmi_free(P);
    ssmi_free(Z);
    ssmi_free(w);
    ssmi_free(C);
    ssmi_free(Q);
    return st;
}

/* S4D-LegS: the eigenvalues with Im > 0 of the LEGS normal part of size 2n
 * (S4D: the diagonal part of the DPLR LegS matrix).  Only the eigenvalues
 * of M are needed (jobz = 'N'); each eigenvalue w of H appears twice, so
 * the top 2n eigenvalues of M are n pairs: the spectrum of the real K is
 * symmetric, and K = -1/2 D E D (D = diag s_k, E the sign matrix,
 * det E = 1 at even size) has no zero eigenvalue.  Decreasing Im. */
static ssm_status s4d_legs(int64_t n, double complex *lambda)
{
    if (n > INT_MAX / 8 || !embed_fits_lapack(2 * n))
        return SSM_FAIL(SSM_ERR_NOMEM);   /* workspace beyond LAPACK's int */
    int64_t H = 2 * n;              /* HiPPO size */
    int64_t N = 2 * H;
    size_t hh = (size_t)H * (size_t)H, NN = (size_t)N * (size_t)N;
    double *A = ssmi_alloc(hh, sizeof(double));
    double *B = ssmi_alloc((size_t)H, sizeof(double));
    double *P = ssmi_alloc((size_t)H, sizeof(double));
    double *Z = ssmi_alloc(NN, sizeof(double));
    double *w = ssmi_alloc((size_t)N, sizeof(double));
    ssm_status st = SSM_OK;
    if (!A || !B || !P || !Z || !w) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    ssmi_hippo_fill(SSM_LEGS, H, A, B);
    double c = nplr_factor(SSM_LEGS, H, B, P);
    skew_part(H, 1, P, A);
    embed_build(H, A, Z);
    st = embed_eig(N, Z, w, 0);
    if (st != SSM_OK)
        goto done;
    for (int64_t k = 0; k < n; k++)
        lambda[k] = ssmi_cmplx(c, 0.5 * (w[N - 1 - 2 * k] + w[N - 2 - 2 * k]));
done:
    ssmi_free(A);
    ssmi_free(B);
    ssmi_free(P);
    ssmi_free(Z);
    ssmi_free(w);
    return st;
}

ssm_status ssm_s4d_lambda(ssm_s4d_init init, int64_t n, double complex *lambda)
{
    int64_t t;
    if (lambda == NULL || !ssmi_sizes_ok(&t, sizeof(double complex), 1, n))
        return SSM_FAIL(SSM_ERR_ARG);
    switch (init) {
    case SSM_S4D_LEGS:
        return s4d_legs(n, lambda);
    case SSM_S4D_LIN:
        /* S4D-Lin: -1/2 + i pi k (S4D, the Lin initialisation). */
        for (int64_t k = 0; k < n; k++)
            lambda[k] = ssmi_cmplx(-0.5, 0.5 * SSM_HIPPO_2PI * (double)k);
        return SSM_OK;
    case SSM_S4D_INV:
        /* S4D-Inv: -1/2 + i (N/pi)(N/(2k+1) - 1), N = 2n, with
         * N/(2k+1) - 1 = (N - 2k - 1)/(2k+1): exact integers, one rounding,
         * no cancellation near k = n - 1. */
        for (int64_t k = 0; k < n; k++) {
            double N = 2.0 * (double)n;
            lambda[k] = ssmi_cmplx(-0.5, (N / (0.5 * SSM_HIPPO_2PI)) *
                                    ((double)(2 * n - 2 * k - 1) /
                                     (double)(2 * k + 1)));
        }
        return SSM_OK;
    case SSM_S4D_REAL:
        /* S4D-Real: -(k+1), the diagonal of LegS. */
        for (int64_t k = 0; k < n; k++)
            lambda[k] = ssmi_cmplx(-(double)(k + 1), 0.0);
        return SSM_OK;
    }
    return SSM_FAIL(SSM_ERR_ARG);
}
