/* ctest-labels: scan */
/*
 * wbtest_scan_softplus.c -- both branches of the selective scan's softplus
 * (Mamba: dt = log1p(exp(x)) for x <= 20, dt = x above), including very
 * negative x where exp underflows, on every SIMD kernel (generic, AVX2+FMA,
 * AVX-512F) and in the streaming step; and a report of the kernels this
 * machine cannot execute.
 *
 * One step from the zero state with A = -1, B = C = u = 1, no D, no z makes
 * y = dt exactly (h = fma(a, 0, dt B u), y = C h: no rounding), so every
 * channel reads out softplus(delta + bias) itself.  Expected error against
 * the double reference, taken at the float sum x = delta + bias: the
 * library's softplus of x (<= 2.5 ulp = 5u relative: wbtest_scan derives
 * and measures it), bound 6u; below x ~
 * -87 the exp flushes to 0 (scan.h), an absolute error below FLT_MIN.
 * Above 20 the result must be x exactly.
 */
#include <ssm.h>
#include "scan/scan_internal.h"
#include "testutil.h"

static const int isas[] = { SSM_SCAN_ISA_GENERIC, SSM_SCAN_ISA_AVX2, SSM_SCAN_ISA_AVX512 };
static const char *isa_name(int isa)
{
    return isa == SSM_SCAN_ISA_AVX512 ? "AVX-512F" : isa == SSM_SCAN_ISA_AVX2 ? "AVX2+FMA" : "generic";
}

enum { DIM = 64 };   /* 4 vectors of 16 lanes, 8 of 8: every lane sees a branch */

/* x = delta + bias spanning both branches: very negative (exp underflow),
 * negative, around 0, the boundary 20 from both sides, far above. */
static void make_inputs(float *delta, float *bias, double *want)
{
    static const double xs[] = {
        -150, -120, -104, -90, -88.5, -87.5, -80, -60, -40, -30, -20.5, -17, -10, -5,
        -2, -1, -0.5, -0.125, -1e-3, -1e-7, 0, 1e-7, 1e-3, 0.125, 0.5, 1, 2, 3, 5, 8,
        10, 15, 17.25, 19, 19.5, 19.75, 19.875, 19.9990234375, 20, 20.0009765625,
        20.125, 20.5, 21, 25, 30, 40, 64, 80, 88, 100, 1000, 1e4, 1e6, 3e7,
        -0.75, 0.75, 4.5, 6.25, 12, 13.5, 18, 22, 33, 50
    };
    for (int d = 0; d < DIM; d++) {
        bias[d] = (d % 3 == 0) ? 0.0f : (d % 3 == 1 ? 0.5f : -0.25f);
        delta[d] = (float)(xs[d] - bias[d]);
        volatile float x = delta[d] + bias[d];     /* the library's float sum */
        double xd = x;
        want[d] = xd <= 20.0 ? log1p(exp(xd)) : xd;
    }
}

static void check_dt(const float *y, const double *want, const float *delta, const float *bias,
                     const char *what)
{
    const double u = 0x1p-24;
    double worst = 0;
    for (int d = 0; d < DIM; d++) {
        double x = (double)(float)(delta[d] + bias[d]);
        if (x > 20.0) {
            ck_assert_msg((double)y[d] == x, "%s: x = %.9g > 20: dt = %.9g, want x exactly", what, x, y[d]);
            continue;
        }
        double err = fabs((double)y[d] - want[d]), bound = 6 * u * want[d] + FLT_MIN;
        ck_assert_msg(err <= bound, "%s: x = %.9g: dt = %.9g, want %.12g (error %.3g, bound %.3g)",
                      what, x, y[d], want[d], err, bound);
        if (err / bound > worst) worst = err / bound;
    }
    TU_CHECK_ERR(worst, 1.0, "%s: softplus, max over x of error / (6u dt + FLT_MIN)", what);
}

START_TEST(softplus_branches_every_kernel)
{
    float delta[DIM], bias[DIM], A[DIM], B[1] = { 1 }, C[1] = { 1 }, u[DIM], y[DIM], h[DIM];
    double want[DIM];
    make_inputs(delta, bias, want);
    for (int d = 0; d < DIM; d++) A[d] = -1.0f, u[d] = 1.0f;
    int ran = 0;
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        if (!ssmi_scan_isa_ok(isas[j])) {
            printf("NOT EXECUTED here: %s kernel (the CPU lacks it)\n", isa_name(isas[j]));
            continue;
        }
        ssm_scan_args a = { .batch = 1, .dim = DIM, .dstate = 1, .len = 1, .ngroups = 1,
                            .u = u, .delta = delta, .A = A, .B = B, .C = C,
                            .delta_bias = bias, .delta_softplus = 1, .y = y, .h_last = h };
        memset(y, 0xff, sizeof y);
        ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, isas[j]), SSM_OK);
        char what[64];
        snprintf(what, sizeof what, "scan, %s kernel", isa_name(isas[j]));
        check_dt(y, want, delta, bias, what);
        ran++;
    }
    ck_assert_msg(ran >= 1, "no kernel could run");
    /* The public step (the kernel chosen for this machine). */
    float hs[DIM] = { 0 };
    memset(y, 0xff, sizeof y);
    ck_assert_int_eq(ssm_selective_step(1, DIM, 1, 1, hs, u, delta, A, B, C, NULL, NULL, bias, 1, y),
                     SSM_OK);
    check_dt(y, want, delta, bias, "selective_step");
}
END_TEST

int main(void)
{
    int missing = 0;
    printf("SIMD kernels of the selective scan on this machine:");
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        int ok = ssmi_scan_isa_ok(isas[j]);
        printf(" %s %s;", isa_name(isas[j]), ok ? "runs" : "CANNOT RUN");
        missing += !ok;
    }
    printf(" best: %s\n", isa_name(ssmi_scan_best_isa()));
    if (missing) printf("WARNING: %d kernel(s) not executed by this run\n", missing);
    Suite *s = suite_create("scan_softplus");
    TCase *tc = tcase_create("softplus");
    tcase_add_test(tc, softplus_branches_every_kernel);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
