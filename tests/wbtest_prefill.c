/* ctest-labels: mamba */
/*
 * wbtest_prefill.c -- the prompt-path kernels of src/layers/prefill.c
 * (fused causal conv + bias + silu, conv-state window, forward RMSNorm)
 * against direct double-precision formulas written here.
 *
 * Bounds, per element (u = FLT_EPSILON / 2):
 *  - conv: K fused multiply-adds after the bias, one rounding each, so
 *    |v - v_ref| <= K u (|b| + sum_j |w_j x_j|) (Higham, Accuracy and
 *    Stability, eq. 3.4 with gamma_K ~ K u);
 *  - silu'(v) lies in [-0.1, 1.1] for every v, so that error reaches the
 *    output times at most 1.1;
 *  - silu's own evaluation: the polynomial exp (Cephes' minimax, <= 2 ulp
 *    measured by Cephes on its whole range; 4 u allowed), 1 + e and the
 *    division (one rounding each): <= 6 u |silu(v)|, 8 u allowed;
 *  - v < -88: exp is clamped at e^88, |error| < 1e-35 absolute.
 *  - RMSNorm: the sum of squares in double (relative error ~ dm 2^-53,
 *    negligible), the scale rounded to float (u), then two float products
 *    (2 u): |o - o_ref| <= 4 u |o_ref| (3 u plus slack).
 * Each check prints the largest error/bound ratio over all elements.
 */
#include <ssm.h>
#include "testutil.h"
#include "layers/prefill_internal.h"

#define U_F (FLT_EPSILON / 2.0)

static double ref_silu(double v) { return v / (1.0 + exp(-v)); }

/* Input of row i at time s (s < 0: the context window, or zero). */
static double ref_in(const float *x, const float *ctx, int64_t i, int64_t L,
                     int64_t K, int64_t s)
{
    if (s >= 0)
        return x[i * L + s];
    return ctx ? ctx[i * K + K + s] : 0.0;
}

static void check_conv_silu_isa(int isa, int64_t rows, int64_t di, int64_t L,
                                int64_t K, int with_ctx, double scale,
                                uint64_t seed)
{
    tu_rng g = { seed };
    float *x = tu_alloc((size_t)(rows * L), sizeof *x);
    float *ctx = tu_alloc((size_t)(rows * K), sizeof *ctx);
    float *w = tu_alloc((size_t)(di * K), sizeof *w);
    float *b = tu_alloc((size_t)di, sizeof *b);
    float *u = tu_alloc((size_t)(rows * L), sizeof *u);
    tu_fill_normal_f(&g, x, rows * L, scale);
    tu_fill_normal_f(&g, ctx, rows * K, scale);
    tu_fill_normal_f(&g, w, di * K, 0.7);
    tu_fill_normal_f(&g, b, di, 0.5);
    if (ssmi_conv_silu_rows_isa(isa, rows, di, L, K, x, with_ctx ? ctx : NULL,
                                w, b, u) != 0) {
        free(x); free(ctx); free(w); free(b); free(u);
        return;                          /* this ISA cannot run here */
    }
    double worst = 0.0;
    for (int64_t i = 0; i < rows; i++) {
        const int64_t d = i % di;
        for (int64_t t = 0; t < L; t++) {
            double v = b[d], mag = fabs((double)b[d]);
            for (int64_t j = 0; j < K; j++) {
                double xi = ref_in(x, with_ctx ? ctx : NULL, i, L, K, t - (K - 1) + j);
                v += (double)w[d * K + j] * xi;
                mag += fabs((double)w[d * K + j] * xi);
            }
            const double s = ref_silu(v);
            const double bound = 1.1 * (double)K * U_F * mag * 1.01 +
                                 8.0 * U_F * fabs(s) + 1e-35;
            const double r = fabs((double)u[i * L + t] - s) / bound;
            if (!(r <= worst))   /* NaN too */
                worst = r;
        }
    }
    TU_CHECK_ERR(worst, 1.0, "conv+silu isa %d rows %lld di %lld L %lld K %lld ctx %d scale %g: max error/bound",
                 isa, (long long)rows, (long long)di, (long long)L, (long long)K, with_ctx, scale);
    free(x); free(ctx); free(w); free(b); free(u);
}

/* Every ISA path this CPU can run (plain C, AVX2+FMA, AVX-512F), each
 * against the double reference. */
static void check_conv_silu(int64_t rows, int64_t di, int64_t L, int64_t K,
                            int with_ctx, double scale, uint64_t seed)
{
    for (int isa = 0; isa <= 2; isa++)
        check_conv_silu_isa(isa, rows, di, L, K, with_ctx, scale, seed);
}

static const int64_t LS[] = { 1, 2, 3, 7, 8, 15, 16, 17, 33, 200 };
static const int64_t KS[] = { 1, 2, 4, 5, 17 };
#define NLS ((int)(sizeof LS / sizeof LS[0]))
#define NKS ((int)(sizeof KS / sizeof KS[0]))

START_TEST(conv_silu_matches_reference)
{
    /* _i runs over (L, K); every ISA path's head, vector body and tail. */
    const int64_t L = LS[_i % NLS], K = KS[_i / NLS];
    check_conv_silu(6, 3, L, K, 0, 1.0, 100 + (uint64_t)_i);
    check_conv_silu(6, 2, L, K, 1, 1.0, 200 + (uint64_t)_i);
    /* wide arguments: silu's tails, the exp clamp (v < -88), large v */
    check_conv_silu(4, 4, L, K, 1, 40.0, 300 + (uint64_t)_i);
}
END_TEST

START_TEST(conv_silu_nan_propagates)
{
    const int64_t L = 40, K = 4;
    float x[40], w[4] = { 0.1f, 0.2f, 0.3f, 0.4f }, b = 0.0f, u[40];
    for (int t = 0; t < L; t++)
        x[t] = 0.01f * (float)t;
    x[20] = NAN;
    ssmi_conv_silu_rows(1, 1, L, K, x, NULL, w, &b, u);
    for (int t = 0; t < L; t++) {
        const int hit = t >= 20 && t < 20 + K;
        ck_assert_msg(hit ? isnan(u[t]) : isfinite(u[t]), "t %d: %g", t, (double)u[t]);
    }
}
END_TEST

/* One writer per row, the ISA chosen from the CPU only: the same bits at
 * 1, 2 and 3 threads (rows * L above the parallel threshold). */
START_TEST(conv_silu_and_norm_thread_count_exact)
{
    const int64_t rows = 128, di = 32, L = 300, K = 4, dm = 300;
    tu_rng g = { 7 };
    float *x = tu_alloc((size_t)(rows * L), sizeof *x);
    float *ctx = tu_alloc((size_t)(rows * K), sizeof *ctx);
    float *w = tu_alloc((size_t)(di * K), sizeof *w);
    float *b = tu_alloc((size_t)di, sizeof *b);
    float *nw = tu_alloc((size_t)dm, sizeof *nw);
    float *u[3], *o[3];
    tu_fill_normal_f(&g, x, rows * L, 1.0);
    tu_fill_normal_f(&g, ctx, rows * K, 1.0);
    tu_fill_normal_f(&g, w, di * K, 0.5);
    tu_fill_normal_f(&g, b, di, 0.5);
    tu_fill_normal_f(&g, nw, dm, 1.0);
    for (int th = 1; th <= 3; th++) {
        tu_set_threads(th);
        u[th - 1] = tu_alloc((size_t)(rows * L), sizeof(float));
        o[th - 1] = tu_alloc((size_t)(rows * L), sizeof(float));
        ssmi_conv_silu_rows(rows, di, L, K, x, ctx, w, b, u[th - 1]);
        ssmi_rmsnorm_rows_fwd(rows, dm, x, o[th - 1], nw, 1e-5);
    }
    tu_set_threads(1);
    for (int th = 2; th <= 3; th++) {
        ck_assert_int_eq(memcmp(u[0], u[th - 1], (size_t)(rows * L) * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(o[0], o[th - 1], (size_t)(rows * L) * sizeof(float)), 0);
    }
    for (int i = 0; i < 3; i++) { free(u[i]); free(o[i]); }
    free(x); free(ctx); free(w); free(b); free(nw);
}
END_TEST

/* The new window = the K last inputs of (old window, row): exact copies,
 * out of place and in place, L below, at and above K. */
START_TEST(conv_state_keep_exact)
{
    const int64_t rows = 3, K = 5;
    for (int64_t L = 1; L <= 8; L++) {
        float x[3 * 8], ctx[3 * 5], out[3 * 5], inpl[3 * 5];
        for (int64_t i = 0; i < rows * L; i++) x[i] = (float)(100 + i);
        for (int64_t i = 0; i < rows * K; i++) ctx[i] = inpl[i] = (float)(-1 - i);
        for (int with_ctx = 0; with_ctx < 2; with_ctx++) {
            ssmi_conv_state_keep(rows, L, K, x, with_ctx ? ctx : NULL, out);
            for (int64_t i = 0; i < rows; i++)
                for (int64_t m = 0; m < K; m++) {
                    const int64_t s = L - K + m;   /* time of window slot m */
                    const float want = s >= 0 ? x[i * L + s]
                                     : (with_ctx ? ctx[i * K + K + s] : 0.0f);
                    ck_assert_msg(out[i * K + m] == want, "L %lld row %lld slot %lld",
                                  (long long)L, (long long)i, (long long)m);
                }
        }
        ssmi_conv_state_keep(rows, L, K, x, inpl, inpl);
        ssmi_conv_state_keep(rows, L, K, x, ctx, out);
        ck_assert_int_eq(memcmp(inpl, out, sizeof out), 0);
    }
}
END_TEST

START_TEST(rmsnorm_matches_reference)
{
    const int64_t dms[] = { 1, 7, 8, 9, 64, 768, 1001 };
    for (size_t c = 0; c < sizeof dms / sizeof dms[0]; c++) {
        const int64_t dm = dms[c], rows = 5;
        tu_rng g = { 50 + c };
        float *x = tu_alloc((size_t)(rows * dm), sizeof *x);
        float *w = tu_alloc((size_t)dm, sizeof *w);
        float *o = tu_alloc((size_t)(rows * dm), sizeof *o);
        tu_fill_normal_f(&g, x, rows * dm, 3.0);
        tu_fill_normal_f(&g, w, dm, 1.0);
        ssmi_rmsnorm_rows_fwd(rows, dm, x, o, w, 1e-5);
        double worst = 0.0;
        for (int64_t i = 0; i < rows; i++) {
            long double ss = 0;
            for (int64_t j = 0; j < dm; j++)
                ss += (long double)x[i * dm + j] * x[i * dm + j];
            const double sc = (double)(1.0L / sqrtl(ss / dm + 1e-5L));
            for (int64_t j = 0; j < dm; j++) {
                const double ref = (double)x[i * dm + j] * sc * w[j];
                const double r = fabs((double)o[i * dm + j] - ref) /
                                 (4.0 * U_F * fabs(ref) + 1e-38);
                if (!(r <= worst))
                    worst = r;
            }
        }
        TU_CHECK_ERR(worst, 1.0, "rmsnorm dm %lld: max error/bound", (long long)dm);
        /* in place gives the same bits */
        ssmi_rmsnorm_rows_fwd(rows, dm, x, x, w, 1e-5);
        ck_assert_int_eq(memcmp(x, o, (size_t)(rows * dm) * sizeof *x), 0);
        free(x); free(w); free(o);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prefill");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, conv_silu_matches_reference, 0, NLS * NKS);
    tcase_add_test(tc, conv_silu_nan_propagates);
    tcase_add_test(tc, conv_silu_and_norm_thread_count_exact);
    tcase_add_test(tc, conv_state_keep_exact);
    tcase_add_test(tc, rmsnorm_matches_reference);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
