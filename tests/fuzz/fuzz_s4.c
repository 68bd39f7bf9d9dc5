/* fuzz_s4: discretization and kernels (include/ssm/s4.h): ssm_discretize,
 * ssm_discretize_diag, ssm_kernel_dense, ssm_kernel_diag, ssm_kernel_dplr,
 * and the S4 pipeline ssm_hippo_nplr -> ssm_kernel_dplr, with fuzzed
 * methods, sizes, steps and special values in every matrix.
 * Beyond the statuses: the headers promise SSM_ERR_NUMERIC for a result
 * that would not be finite, so an SSM_OK output must be finite. */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dt_ok(double dt) { return isfinite(dt) && dt > 0; }

static void fuzz_discretize(fd_in *d)
{
    int method = fd_enum(d, 4);
    int64_t n = fd_size(d, 6);
    double dt = fd_double(d);
    int nul = fd_u8(d) % 16;
    int64_t bA = fd_bytes(n, n, 1, 8);      /* the check is on (n+1)^2: same verdict for n < 2^31 */
    if (bA > (1 << 16) && n < INT32_MAX / 2) n = 1 + n % 6, bA = fd_bytes(n, n, 1, 8);
    int dummy = bA < 0 || n >= INT32_MAX / 2;
    double *A = fd_alloc(dummy ? 64 : bA), *B = fd_alloc(dummy ? 64 : n * 8);
    double *Ad = fd_alloc(dummy ? 64 : bA), *Bd = fd_alloc(dummy ? 64 : n * 8);
    if (!dummy) { fd_fill_d(d, A, n * n); fd_fill_d(d, B, n); }
    int bad = dummy || method < 0 || method > 3 || !dt_ok(dt) || nul < 4 ||
              !fd_all_finite_d(A, n * n) || !fd_all_finite_d(B, n);
    ssm_status st = ssm_discretize((ssm_disc)method, n, nul == 0 ? NULL : A, nul == 1 ? NULL : B, dt,
                                   nul == 2 ? NULL : Ad, nul == 3 ? NULL : Bd);
    if (bad) FD_EXPECT_ARG(st, "bad method, size, dt, NULL or non-finite A/B");
    else {
        FD_CHECK(st == SSM_OK || st == SSM_ERR_NUMERIC || st == SSM_ERR_NOMEM,
                 "status %d for method %d n %lld dt %g", (int)st, method, (long long)n, dt);
        if (st == SSM_OK)
            FD_CHECK(fd_all_finite_d(Ad, n * n) && fd_all_finite_d(Bd, n),
                     "SSM_OK with a non-finite Ad/Bd (method %d, n %lld, dt %g)", method, (long long)n, dt);
    }
    free(A); free(B); free(Ad); free(Bd);
}

static void fuzz_discretize_diag(fd_in *d)
{
    int method = fd_enum(d, 4);
    int64_t n = fd_size(d, 12);
    double dt = fd_double(d);
    int nul = fd_u8(d) % 16;
    int64_t b = fd_bytes(n, 1, 1, 16);
    if (b > (1 << 16)) n = 1 + n % 12, b = n * 16;
    int dummy = b < 0;
    double *lam = fd_alloc(dummy ? 64 : b), *B = fd_alloc(dummy ? 64 : b);
    double *Ad = fd_alloc(dummy ? 64 : b), *Bd = fd_alloc(dummy ? 64 : b);
    if (!dummy) { fd_fill_z(d, lam, n); fd_fill_z(d, B, n); }
    int bad = dummy || method < 0 || method > 3 || !dt_ok(dt) || nul < 4 ||
              !fd_all_finite_d(lam, 2 * n) || !fd_all_finite_d(B, 2 * n);
    ssm_status st = ssm_discretize_diag((ssm_disc)method, n, nul == 0 ? NULL : (ssm_cdouble *)lam,
                                        nul == 1 ? NULL : (ssm_cdouble *)B, dt,
                                        nul == 2 ? NULL : (ssm_cdouble *)Ad, nul == 3 ? NULL : (ssm_cdouble *)Bd);
    if (bad) FD_EXPECT_ARG(st, "bad method, size, dt, NULL or non-finite lambda/B");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NUMERIC);
        if (st == SSM_OK)
            FD_CHECK(fd_all_finite_d(Ad, 2 * n) && fd_all_finite_d(Bd, 2 * n),
                     "SSM_OK with a non-finite Ad/Bd (method %d, dt %g)", method, dt);
    }
    free(lam); free(B); free(Ad); free(Bd);
}

static void fuzz_kernel_dense(fd_in *d)
{
    int64_t n = fd_size(d, 6), L = fd_size(d, 64);
    int nul = fd_u8(d) % 16;
    int64_t bA = fd_bytes(n, n, 1, 8), bK = fd_bytes(L, 1, 1, 8);
    if (bA > (1 << 12)) n = 1 + n % 6, bA = fd_bytes(n, n, 1, 8);
    if (bK > (1 << 12)) L = 1 + L % 64, bK = L * 8;
    int dummy = bA < 0 || bK < 0;
    double *Ad = fd_alloc(dummy ? 64 : bA), *Bd = fd_alloc(dummy ? 64 : n * 8);
    double *C = fd_alloc(dummy ? 64 : n * 8), *K = fd_alloc(dummy ? 64 : bK);
    if (!dummy) { fd_fill_d(d, Ad, n * n); fd_fill_d(d, Bd, n); fd_fill_d(d, C, n); }
    int bad = dummy || nul < 4 || !fd_all_finite_d(Ad, n * n) || !fd_all_finite_d(Bd, n) ||
              !fd_all_finite_d(C, n);
    ssm_status st = ssm_kernel_dense(n, nul == 0 ? NULL : Ad, nul == 1 ? NULL : Bd,
                                     nul == 2 ? NULL : C, L, nul == 3 ? NULL : K);
    if (bad) FD_EXPECT_ARG(st, "bad size, NULL or non-finite input");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_NUMERIC);
        if (st == SSM_OK) FD_CHECK(fd_all_finite_d(K, L), "SSM_OK with a non-finite K");
    }
    free(Ad); free(Bd); free(C); free(K);
}

static void fuzz_kernel_diag(fd_in *d)
{
    int64_t n = fd_size(d, 12), L = fd_size(d, 600);
    int nul = fd_u8(d) % 16;
    int64_t bz = fd_bytes(n, 1, 1, 16), bK = fd_bytes(L, 1, 1, 8);
    if (bz > (1 << 12)) n = 1 + n % 12, bz = n * 16;
    if (bK > (1 << 14)) L = 1 + L % 600, bK = L * 8;
    int dummy = bz < 0 || bK < 0;
    double *Ad = fd_alloc(dummy ? 64 : bz), *Bd = fd_alloc(dummy ? 64 : bz);
    double *C = fd_alloc(dummy ? 64 : bz), *K = fd_alloc(dummy ? 64 : bK);
    if (!dummy) {
        fd_fill_z(d, Ad, n); fd_fill_z(d, Bd, n); fd_fill_z(d, C, n);
        if (fd_bool(d))   /* mostly stable poles: |Ad| <= 1, as a discretized S4D layer */
            for (int64_t k = 0; k < n; k++) {
                double m = hypot(Ad[2 * k], Ad[2 * k + 1]);
                if (isfinite(m) && m > 1) Ad[2 * k] /= m, Ad[2 * k + 1] /= m;
            }
    }
    int bad = dummy || nul < 4 || !fd_all_finite_d(Ad, 2 * n) || !fd_all_finite_d(Bd, 2 * n) ||
              !fd_all_finite_d(C, 2 * n);
    ssm_status st = ssm_kernel_diag(n, nul == 0 ? NULL : (ssm_cdouble *)Ad, nul == 1 ? NULL : (ssm_cdouble *)Bd,
                                    nul == 2 ? NULL : (ssm_cdouble *)C, L, nul == 3 ? NULL : K);
    if (bad) FD_EXPECT_ARG(st, "bad size, NULL or non-finite input");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NUMERIC);
        if (st == SSM_OK) FD_CHECK(fd_all_finite_d(K, L), "SSM_OK with a non-finite K");
    }
    free(Ad); free(Bd); free(C); free(K);
}

static void fuzz_kernel_dplr(fd_in *d, int from_nplr)
{
    int64_t n = fd_size(d, 6), rank = fd_size(d, 3), L = fd_size(d, 64);
    double dt = fd_double(d);
    int nul = fd_u8(d) % 24;
    int m = fd_u8(d) % 4;
    if (from_nplr) { n = 2 * (1 + (int64_t)((uint64_t)n % 4)); rank = m == SSM_LEGT ? 2 : 1; nul = 99; }
    int64_t bz = fd_bytes(n, 1, 1, 16), bP = fd_bytes(rank, n, 1, 16), bK = fd_bytes(L, 1, 1, 8);
    if (bz > (1 << 12)) n = 1 + n % 6, bz = n * 16, bP = fd_bytes(rank, n, 1, 16);
    if (bP > (1 << 12)) rank = 1 + rank % 3, bP = fd_bytes(rank, n, 1, 16);
    if (bK > (1 << 12)) L = 1 + L % 64, bK = L * 8;
    int dummy = bz < 0 || bP < 0 || bK < 0;
    double *lam = fd_alloc(dummy ? 64 : bz), *P = fd_alloc(dummy ? 64 : bP), *Q = fd_alloc(dummy ? 64 : bP);
    double *B = fd_alloc(dummy ? 64 : bz), *C = fd_alloc(dummy ? 64 : bz), *K = fd_alloc(dummy ? 64 : bK);
    if (from_nplr && !dummy) {
        double *V = fd_alloc(n * n * 16);
        ssm_status s0 = ssm_hippo_nplr((ssm_measure)m, n, rank, (ssm_cdouble *)lam, (ssm_cdouble *)P,
                                       (ssm_cdouble *)B, (ssm_cdouble *)V);
        free(V);
        FD_ALLOWED(s0, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_LAPACK);
        if (s0 != SSM_OK) goto out;
        memcpy(Q, P, (size_t)bP);
        fd_fill_z(d, C, n);
    } else if (!dummy) {
        fd_fill_z(d, lam, n); fd_fill_z(d, P, rank * n); fd_fill_z(d, Q, rank * n);
        fd_fill_z(d, B, n); fd_fill_z(d, C, n);
    }
    int bad = dummy || !dt_ok(dt) || (nul < 6) || !fd_all_finite_d(lam, 2 * n) ||
              !fd_all_finite_d(P, 2 * rank * n) || !fd_all_finite_d(Q, 2 * rank * n) ||
              !fd_all_finite_d(B, 2 * n) || !fd_all_finite_d(C, 2 * n);
    ssm_status st = ssm_kernel_dplr(n, rank, nul == 0 ? NULL : (ssm_cdouble *)lam,
                                    nul == 1 ? NULL : (ssm_cdouble *)P, nul == 2 ? NULL : (ssm_cdouble *)Q,
                                    nul == 3 ? NULL : (ssm_cdouble *)B, nul == 4 ? NULL : (ssm_cdouble *)C,
                                    dt, L, nul == 5 ? NULL : K);
    if (bad) FD_EXPECT_ARG(st, "bad size, dt, NULL or non-finite input");
    else {
        FD_CHECK(st == SSM_OK || st == SSM_ERR_NOMEM || st == SSM_ERR_FFTW || st == SSM_ERR_NUMERIC,
                 "status %d for n %lld rank %lld L %lld dt %g (from nplr: %d)", (int)st, (long long)n,
                 (long long)rank, (long long)L, dt, from_nplr);
        if (st == SSM_OK) FD_CHECK(fd_all_finite_d(K, L), "SSM_OK with a non-finite K (dt %g, L %lld)", dt, (long long)L);
    }
out:
    free(lam); free(P); free(Q); free(B); free(C); free(K);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_in d = { data, size };
    switch (fd_u8(&d) % 6) {
    case 0: fuzz_discretize(&d); break;
    case 1: fuzz_discretize_diag(&d); break;
    case 2: fuzz_kernel_dense(&d); break;
    case 3: fuzz_kernel_diag(&d); break;
    case 4: fuzz_kernel_dplr(&d, 0); break;
    default: fuzz_kernel_dplr(&d, 1); break;
    }
    return 0;
}
