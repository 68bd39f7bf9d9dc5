/* ctest-labels: train;alloc */
/*
 * wbtest_s4d_layer_bwd_alloc.c -- ssm_s4d_layer_backward under allocation
 * failure: failing the k-th allocation (k = 1, 2, ... until the call
 * succeeds) gives SSM_ERR_NOMEM, never a crash, and (under ASan) no leak;
 * the successful call then gives the same bytes as an uninjected one.
 */
#include <ssm.h>
#include "internal.h"
#include "testutil.h"

START_TEST(alloc_failures)
{
    enum { H = 2, N = 3, L = 20, B = 2, T = B * H * L };
    ssm_s4d_layer *ly = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, N, SSM_S4D_LIN, SSM_ZOH, 3), SSM_OK);
    tu_rng r = { 5 };
    float u[T], dy[T], du[T], du0[T], dD[H], dD0[H];
    ssm_cdouble dl[H * N], dl0[H * N], dB[H * N], dB0[H * N], dC[H * N], dC0[H * N];
    double ddt[H], ddt0[H];
    tu_fill_normal_f(&r, u, T, 1.0);
    tu_fill_normal_f(&r, dy, T, 1.0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, B, L, u, dy, du0, dl0, ddt0, dB0, dC0, dD0), SSM_OK);
    int64_t k = 1;
    for (;; k++) {
        ck_assert_msg(k < 10000, "no success after %lld injected failures", (long long)k);
        ssmi_alloc_inject(k);
        const ssm_status st = ssm_s4d_layer_backward(ly, B, L, u, dy, du, dl, ddt, dB, dC, dD);
        const int64_t cnt = ssmi_alloc_count();
        ssmi_alloc_inject(0);
        if (st == SSM_OK) {
            ck_assert_msg(cnt < k, "OK although allocation %lld of %lld failed",
                          (long long)k, (long long)cnt);
            break;
        }
        ck_assert_msg(st == SSM_ERR_NOMEM, "allocation %lld failed: status %d (%s)",
                      (long long)k, (int)st, ssm_status_string(st));
    }
    printf("s4d_layer_backward: %lld allocation failures each gave SSM_ERR_NOMEM\n",
           (long long)(k - 1));
    ck_assert(memcmp(du, du0, sizeof du) == 0 && memcmp(dD, dD0, sizeof dD) == 0);
    ck_assert(memcmp(dl, dl0, sizeof dl) == 0 && memcmp(ddt, ddt0, sizeof ddt) == 0);
    ck_assert(memcmp(dB, dB0, sizeof dB) == 0 && memcmp(dC, dC0, sizeof dC) == 0);
    ssm_s4d_layer_destroy(ly);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("s4d_layer_bwd_alloc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    const int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
