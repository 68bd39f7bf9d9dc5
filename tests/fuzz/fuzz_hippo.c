/* fuzz_hippo: ssm_hippo, ssm_hippo_nplr, ssm_s4d_lambda (include/ssm/hippo.h)
 * with fuzzed measures, inits, sizes, ranks and NULL pointers. */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_hippo(fd_in *d)
{
    int m = fd_enum(d, 4);
    int64_t n = fd_size(d, 24);
    int nul = fd_u8(d) % 8;          /* 0: A NULL, 1: B NULL */
    int64_t bA = fd_bytes(n, n, 1, 8), bB = fd_bytes(n, 1, 1, 8);
    if (bA > (1 << 20)) n = 1 + n % 24, bA = fd_bytes(n, n, 1, 8), bB = fd_bytes(n, 1, 1, 8);
    int bad = bA < 0 || m < 0 || m > 3 || nul < 2 || (m == SSM_FOUT && n % 2 != 0);
    int dummy = bA < 0 || bB < 0;   /* overflowing: ERR_ARG with small buffers */
    double *A = fd_alloc(dummy ? 64 : bA), *B = fd_alloc(dummy ? 64 : bB);
    ssm_status st = ssm_hippo((ssm_measure)m, n, nul == 0 ? NULL : A, nul == 1 ? NULL : B);
    if (bad) FD_EXPECT_ARG(st, "bad size, measure, NULL or odd FOUT n");
    else {
        FD_CHECK(st == SSM_OK, "ssm_hippo(%d, %lld) = %d", m, (long long)n, (int)st);
        FD_CHECK(fd_all_finite_d(A, n * n) && fd_all_finite_d(B, n), "non-finite HiPPO matrix");
        if (m == SSM_LEGS)        /* the diagonal is -(i+1) exactly */
            for (int64_t i = 0; i < n; i++) FD_CHECK(A[i * n + i] == -(double)(i + 1), "LegS diagonal");
    }
    free(A); free(B);
}

static void fuzz_nplr(fd_in *d)
{
    int m = fd_enum(d, 4);
    int64_t n = fd_size(d, 16), rank = fd_size(d, 4);
    int nul = fd_u8(d) % 12;         /* 0..3: one output NULL */
    int64_t bl = fd_bytes(n, 1, 1, 16), bP = fd_bytes(rank, n, 1, 16), bV = fd_bytes(n, n, 1, 16);
    /* Valid but too large to allocate here (the harness contract): shrink. */
    if (bl > (1 << 16) || bP > (1 << 16) || bV > (1 << 20)) {
        if (bl > (1 << 16) || bV > (1 << 20)) n = 1 + n % 16;
        if (fd_bytes(rank, n, 1, 16) > (1 << 16)) rank = 1 + rank % 4;
        bl = fd_bytes(n, 1, 1, 16); bP = fd_bytes(rank, n, 1, 16); bV = fd_bytes(n, n, 1, 16);
    }
    int minrank = m == SSM_LEGT ? 2 : 1;
    /* hippo.h: rank at most max(n, 2) (a correction of an n x n matrix never
     * needs more rows; a larger rank could name arrays that cannot exist). */
    int bad = bl < 0 || bP < 0 || bV < 0 || m < 0 || m > 3 || rank < minrank || nul < 4 ||
              rank > (n > 2 ? n : 2) ||
              (m == SSM_FOUT && n % 2 != 0);
    int dummy = bl < 0 || bP < 0 || bV < 0;
    void *lam = fd_alloc(dummy ? 64 : bl), *Pt = fd_alloc(dummy ? 64 : bP);
    void *Bt = fd_alloc(dummy ? 64 : bl), *V = fd_alloc(dummy ? 64 : bV);
    ssm_status st = ssm_hippo_nplr((ssm_measure)m, n, rank, nul == 0 ? NULL : lam,
                                   nul == 1 ? NULL : Pt, nul == 2 ? NULL : Bt, nul == 3 ? NULL : V);
    if (bad) FD_EXPECT_ARG(st, "bad size, rank, measure or NULL");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_LAPACK);
        if (st == SSM_OK) {
            FD_CHECK(fd_all_finite_d(lam, 2 * n) && fd_all_finite_d(Pt, 2 * rank * n) &&
                     fd_all_finite_d(Bt, 2 * n) && fd_all_finite_d(V, 2 * n * n), "non-finite NPLR output");
            /* Re(lambda) = -1/2 for LEGS, 0 for the others (hippo.h) */
            const double *l = lam, want = m == SSM_LEGS ? -0.5 : 0.0;
            for (int64_t k = 0; k < n; k++)
                FD_CHECK(fabs(l[2 * k] - want) <= 1e-10 * (1 + n), "Re(lambda[%lld]) = %g", (long long)k, l[2 * k]);
        }
    }
    free(lam); free(Pt); free(Bt); free(V);
}

static void fuzz_s4d(fd_in *d)
{
    int init = fd_enum(d, 4);
    int64_t n = fd_size(d, 32);
    int nul = fd_u8(d) % 8;
    int64_t bl = fd_bytes(n, 1, 1, 16);
    if (bl > (1 << 16)) n = 1 + n % 32, bl = fd_bytes(n, 1, 1, 16);
    int bad = bl < 0 || init < 0 || init > 3 || nul == 0;
    void *lam = fd_alloc(bl < 0 ? 64 : bl);
    ssm_status st = ssm_s4d_lambda((ssm_s4d_init)init, n, nul == 0 ? NULL : lam);
    if (bad) FD_EXPECT_ARG(st, "bad size, init or NULL");
    else {
        if (init == SSM_S4D_LEGS) FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_LAPACK);
        else FD_CHECK(st == SSM_OK, "closed-form init failed: %d", (int)st);
        if (st == SSM_OK) {
            const double *l = lam;
            for (int64_t k = 0; k < n; k++)
                FD_CHECK(isfinite(l[2 * k]) && isfinite(l[2 * k + 1]) && l[2 * k] < 0,
                         "lambda[%lld] = %g%+gi is not stable", (long long)k, l[2 * k], l[2 * k + 1]);
        }
    }
    free(lam);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_in d = { data, size };
    switch (fd_u8(&d) % 3) {
    case 0: fuzz_hippo(&d); break;
    case 1: fuzz_nplr(&d); break;
    default: fuzz_s4d(&d); break;
    }
    return 0;
}
