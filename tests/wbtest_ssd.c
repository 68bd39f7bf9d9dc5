/* ctest-labels: scan;ssd */
/*
 * wbtest_ssd.c -- white-box tests of the SSD scan (src/scan/ssd.c): every
 * instruction set's kernels (portable C, AVX2+FMA, AVX-512F, whichever this
 * CPU runs) on both evaluation orders, and the product kernel's triangle
 * modes against a naive double product.
 *
 * Bounds.  kgemm: each output is one float fma chain of K terms, so
 * |C - C_ref| <= K u sum_k |A_ik B_kj| (u = FLT_EPSILON/2); the ratio to
 * that bound is printed and must be <= 1.  The modes must also be exact
 * where promised: the portable kernel is the specification (each element
 * the same fma chain, in the same order), so every ISA must give its bytes
 * exactly.  Scans: different ISAs reduce the readout in different lane
 * orders, so they agree to rounding: normwise relative difference
 * <= 8 u (N + Q) (the readout and chunk sums, see test_ssd.c).
 */
#include <ssm.h>
#include "testutil.h"
#include "scan/ssd_internal.h"

#define U_F (FLT_EPSILON / 2.0)

static const int isas[] = { SSM_SCAN_ISA_GENERIC, SSM_SCAN_ISA_AVX2, SSM_SCAN_ISA_AVX512 };

START_TEST(kgemm_modes_match_naive_and_generic)
{
    static const int64_t dims[][3] = {
        { 1, 1, 1 }, { 3, 5, 7 }, { 4, 16, 8 }, { 17, 33, 19 }, { 64, 64, 128 },
        { 64, 64, 64 }, { 13, 130, 9 }, { 31, 31, 31 }, { 128, 64, 64 },
    };
    tu_rng r = { 5 };
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], Nc = dims[d][1], K = dims[d][2];
        const int64_t lda = K + 3, ldb = Nc + 5, ldc = Nc + 2;
        float *A = tu_alloc((size_t)(M * lda), sizeof(float));
        float *B = tu_alloc((size_t)(K * ldb), sizeof(float));
        float *C0 = tu_alloc((size_t)(M * ldc), sizeof(float));
        float *C = tu_alloc((size_t)(M * ldc), sizeof(float));
        float *Cg = tu_alloc((size_t)(M * ldc), sizeof(float));
        tu_fill_normal_f(&r, A, M * lda, 1.0);
        tu_fill_normal_f(&r, B, K * ldb, 1.0);
        tu_fill_normal_f(&r, C0, M * ldc, 1.0);
        for (int tri = 0; tri <= 2; tri++) {
            if (tri == SSMI_SSD_KLOWER && K < M)
                continue;   /* KLOWER is used with K = M (square mask) */
            for (int acc = 0; acc <= 1; acc++) {
                double worst = 0.0;
                for (size_t ii = 0; ii < 3; ii++) {
                    memcpy(C, C0, (size_t)(M * ldc) * sizeof(float));
                    if (ssmi_ssd_gemm(isas[ii], M, Nc, K, A, lda, B, ldb, C, ldc, acc, tri) != 0)
                        continue;   /* ISA not on this CPU */
                    if (ii == 0)
                        memcpy(Cg, C, (size_t)(M * ldc) * sizeof(float));
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < Nc; j++) {
                            if (tri == SSMI_SSD_LOWER && j > i)
                                continue;
                            const int64_t ke = tri == SSMI_SSD_KLOWER ? (i + 1 < K ? i + 1 : K) : K;
                            double ref = acc ? C0[i * ldc + j] : 0.0, mag = fabs(ref);
                            for (int64_t k = 0; k < ke; k++) {
                                ref += (double)A[i * lda + k] * B[k * ldb + j];
                                mag += fabs((double)A[i * lda + k] * B[k * ldb + j]);
                            }
                            const double e = fabs(C[i * ldc + j] - ref);
                            const double bound = (double)(ke + 1) * U_F * mag + 1e-38;
                            if (e / bound > worst)
                                worst = e / bound;
                            ck_assert_msg(C[i * ldc + j] == Cg[i * ldc + j] ||
                                          (isnan(C[i * ldc + j]) && isnan(Cg[i * ldc + j])),
                                          "isa %d differs from the portable kernel at (%lld,%lld), dims %zu tri %d acc %d",
                                          isas[ii], (long long)i, (long long)j, d, tri, acc);
                        }
                    /* leading-dimension padding is never written */
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = Nc; j < ldc; j++)
                            ck_assert(C[i * ldc + j] == C0[i * ldc + j]);
                }
                if (getenv("SSM_TEST_VERBOSE"))
                    fprintf(stderr, "kgemm %lldx%lldx%lld tri %d acc %d: error/bound %.3e\n",
                            (long long)M, (long long)Nc, (long long)K, tri, acc, worst);
                ck_assert_msg(worst <= 1.0, "kgemm error/bound %.3e", worst);
            }
        }
        free(A); free(B); free(C0); free(C); free(Cg);
    }
}
END_TEST

/* Each ISA's scan (both orders) against the best ISA's, to rounding; the
 * recurrent path of each ISA against its own steps, bit for bit. */
START_TEST(isas_agree)
{
    const int64_t B = 2, L = 150, H = 4, P = 24, N = 40, G = 2;
    const int64_t nx = B * L * H * P, nbc = B * L * G * N, nh = B * H * P * N;
    tu_rng r = { 8 };
    float *x = tu_alloc((size_t)nx, 4), *z = tu_alloc((size_t)nx, 4), *dt = tu_alloc((size_t)(B * L * H), 4);
    float *Bm = tu_alloc((size_t)nbc, 4), *Cm = tu_alloc((size_t)nbc, 4), *A = tu_alloc((size_t)H, 4);
    float *D = tu_alloc((size_t)H, 4), *h0 = tu_alloc((size_t)nh, 4);
    tu_fill_normal_f(&r, x, nx, 1.0); tu_fill_normal_f(&r, z, nx, 1.0);
    tu_fill_normal_f(&r, Bm, nbc, 1.0); tu_fill_normal_f(&r, Cm, nbc, 1.0);
    tu_fill_normal_f(&r, h0, nh, 0.5);
    for (int64_t i = 0; i < B * L * H; i++) dt[i] = (float)tu_range(&r, -5.0, 0.0);
    for (int64_t i = 0; i < H; i++) { A[i] = (float)-tu_range(&r, 1, 16); D[i] = 1.0f; }
    float *yref = tu_alloc((size_t)nx, 4), *y = tu_alloc((size_t)nx, 4);
    float *href = tu_alloc((size_t)nh, 4), *h = tu_alloc((size_t)nh, 4);
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = H; a.headdim = P; a.dstate = N; a.ngroups = G;
    a.x = x; a.dt = dt; a.A = A; a.B = Bm; a.C = Cm; a.D = D; a.z = z;
    a.dt_softplus = 1; a.dt_max = INFINITY; a.h0 = h0;
    a.y = yref; a.h_last = href;
    ck_assert_int_eq(ssm_ssd_scan_ex(&a, SSM_SSD_RECURRENT, 0), SSM_OK);
    const double tol = 8.0 * U_F * (double)(N + 64);
    for (size_t ii = 0; ii < 3; ii++) {
        if (!ssmi_scan_isa_ok(isas[ii]))
            continue;
        for (int path = 1; path <= 2; path++) {
            a.y = y; a.h_last = h;
            ck_assert_int_eq(ssmi_ssd_scan_isa(&a, (ssm_ssd_path)path, 32, isas[ii]), SSM_OK);
            const double ey = tu_relerr_ff(y, yref, nx), eh = tu_relerr_ff(h, href, nh);
            if (getenv("SSM_TEST_VERBOSE"))
                fprintf(stderr, "isa %d path %d vs best recurrent: y %.3e h %.3e (tol %.3e)\n",
                        isas[ii], path, ey, eh, tol);
            TU_CHECK_ERR(ey, tol, "isa %d path %d y", isas[ii], path);
            TU_CHECK_ERR(eh, tol, "isa %d path %d h_last", isas[ii], path);
        }
    }
    ck_assert_int_eq(ssmi_ssd_scan_isa(&a, SSM_SSD_AUTO, 0, 99), SSM_ERR_ARG);
    free(x); free(z); free(dt); free(Bm); free(Cm); free(A); free(D); free(h0);
    free(yref); free(y); free(href); free(h);
}
END_TEST

/* The recurrence reduces rows four at a time (VHSUM4) and the leftover
 * rows one at a time (VHSUM): the two must give the same bits.  Rows 0 and
 * 4 of P = 5 get the same x and initial state, so their outputs and final
 * states must be equal bit for bit, for every ISA. */
START_TEST(row_blocking_is_invisible)
{
    const int64_t B = 1, L = 33, H = 2, P = 5, N = 48, G = 1;
    const int64_t nx = B * L * H * P, nbc = B * L * G * N, nh = B * H * P * N;
    tu_rng r = { 12 };
    float *x = tu_alloc((size_t)nx, 4), *dt = tu_alloc((size_t)(B * L * H), 4);
    float *Bm = tu_alloc((size_t)nbc, 4), *Cm = tu_alloc((size_t)nbc, 4), *A = tu_alloc((size_t)H, 4);
    float *h0 = tu_alloc((size_t)nh, 4), *y = tu_alloc((size_t)nx, 4), *h = tu_alloc((size_t)nh, 4);
    tu_fill_normal_f(&r, x, nx, 1.0); tu_fill_normal_f(&r, Bm, nbc, 1.0);
    tu_fill_normal_f(&r, Cm, nbc, 1.0); tu_fill_normal_f(&r, h0, nh, 0.5);
    for (int64_t i = 0; i < B * L * H; i++) dt[i] = (float)tu_range(&r, -5.0, 0.0);
    for (int64_t i = 0; i < H; i++) A[i] = (float)-tu_range(&r, 1, 16);
    for (int64_t i = 0; i < B * L * H; i++)
        x[i * P + 4] = x[i * P];
    for (int64_t i = 0; i < B * H; i++)
        memcpy(h0 + (i * P + 4) * N, h0 + i * P * N, (size_t)N * sizeof(float));
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = H; a.headdim = P; a.dstate = N; a.ngroups = G;
    a.x = x; a.dt = dt; a.A = A; a.B = Bm; a.C = Cm; a.dt_softplus = 1;
    a.dt_max = INFINITY; a.h0 = h0; a.y = y; a.h_last = h;
    for (size_t ii = 0; ii < 3; ii++) {
        if (!ssmi_scan_isa_ok(isas[ii]))
            continue;
        ck_assert_int_eq(ssmi_ssd_scan_isa(&a, SSM_SSD_RECURRENT, 0, isas[ii]), SSM_OK);
        for (int64_t i = 0; i < B * L * H; i++)
            ck_assert_msg(y[i * P] == y[i * P + 4], "isa %d: row 0 and row 4 differ at %lld",
                          isas[ii], (long long)i);
        for (int64_t i = 0; i < B * H; i++)
            ck_assert(memcmp(h + i * P * N, h + (i * P + 4) * N, (size_t)N * sizeof(float)) == 0);
    }
    free(x); free(dt); free(Bm); free(Cm); free(A); free(h0); free(y); free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssd-wb");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kgemm_modes_match_naive_and_generic);
    tcase_add_test(tc, isas_agree);
    tcase_add_test(tc, row_blocking_is_invisible);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
