/* ctest-labels: big */
/*
 * big_scan.c -- opt-in (-DSSM_BIG_TESTS=ON, label "big"; never in CI nor
 * under ASan): a selective scan with batch*dim*len above 2^31 elements, so
 * every offset past 2^31 must be 64-bit.  About 16.3 GiB: dim 64, dstate 1,
 * len 2^25 + 1, u and delta the same buffer, z NULL (u and y take 8 GiB
 * each).  SSM_BIG_SCAN_LEN=n runs the same checks on a shorter sequence (a
 * smoke test of the test itself).  Checked on sampled windows against a double loop
 * started 60000 steps earlier from a zero state: with dt >= 1e-3 and A = -1
 * the state forgets its past as exp(-60) ~ 1e-26, far below float rounding.
 */
#include <ssm.h>
#include "testutil.h"

/* Cheap reproducible values in [0, 1) from an index. */
static double hashu(uint64_t i)
{
    tu_rng r = { i * 0x2545F4914F6CDD1Dull };
    return tu_unif(&r);
}

START_TEST(scan_beyond_2_31_elements)
{
    const char *env = getenv("SSM_BIG_SCAN_LEN");
    const int64_t batch = 1, dim = 64, N = 1;
    const int64_t L = env && atoll(env) > 70000 ? atoll(env) : ((int64_t)1 << 25) + 1;
    const int64_t nx = batch * dim * L;          /* 2^31 + 64 */
    float *u = malloc((size_t)nx * sizeof(float));
    float *y = malloc((size_t)nx * sizeof(float));
    float *B = malloc((size_t)L * sizeof(float)), *C = malloc((size_t)L * sizeof(float));
    ck_assert_msg(u && y && B && C, "needs ~16.3 GiB");
    /* u doubles as delta: values in [-7, -2] give dt = softplus in
     * [9e-4, 0.13]. */
    for (int64_t i = 0; i < nx; i++)
        u[i] = (float)(-7.0 + 5.0 * hashu((uint64_t)i));
    for (int64_t t = 0; t < L; t++) {
        B[t] = (float)(2.0 * hashu((uint64_t)(t + nx)) - 1.0);
        C[t] = (float)(2.0 * hashu((uint64_t)(t + nx + L)) - 1.0);
    }
    float A[64], hl[64];
    for (int d = 0; d < 64; d++)
        A[d] = d % 2 ? -0.5f : -1.0f;
    ssm_scan_args a = { .batch = batch, .dim = dim, .dstate = N, .len = L, .ngroups = 1,
                        .u = u, .delta = u, .A = A, .B = B, .C = C, .delta_softplus = 1,
                        .y = y, .h_last = hl };
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
    const int64_t starts[] = { 60000, L / 2, L - 2000, L - 100 };
    const int64_t chans[] = { 0, 1, 31, 62, 63 };   /* 63: offsets past 2^31 */
    for (size_t c = 0; c < sizeof chans / sizeof chans[0]; c++)
        for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
            const int64_t t1 = starts[k], t2 = t1 + 100 < L ? t1 + 100 : L;
            const int64_t d = chans[c];
            double h = 0.0, num = 0.0, den = 0.0;
            for (int64_t t = t1 - 60000; t < t2; t++) {
                const int64_t i = d * L + t;
                double x = u[i], dt = log1p(exp(x));
                h = exp(dt * A[d]) * h + dt * B[t] * x;
                if (t >= t1) {
                    double yr = C[t] * h;
                    num += (y[i] - yr) * (y[i] - yr);
                    den += yr * yr;
                }
            }
            /* Float rounding over a memory of <= 1/(dt |A|) ~ 2000 steps. */
            TU_CHECK_ERR(sqrt(num / den), 1e-5, "channel %lld, steps %lld..%lld",
                         (long long)d, (long long)t1, (long long)t2);
            if (t2 == L)
                TU_CHECK_ERR(fabs(hl[d] - h), 1e-5 * (1.0 + fabs(h)), "h_last %lld", (long long)d);
        }
    free(u); free(y); free(B); free(C);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan-big");
    TCase *tc = tcase_create("big");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, scan_beyond_2_31_elements);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
