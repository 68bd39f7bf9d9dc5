/* ctest-labels: regress */
/*
 * test_fuzz_regress.c -- minimal reproducers of the findings of the fuzz
 * targets in tests/fuzz/ (each input is also kept in the target's seed
 * corpus tests/fuzz/corpus/<name>/, which the fuzz CTests replay).  Each
 * case calls a public function with small buffers and sizes whose arrays
 * cannot exist; the documented answer is SSM_ERR_ARG with nothing written
 * (the buffers are guarded by canaries here; ASan builds see any overrun).
 */
#include <ssm.h>
#include "testutil.h"

#define GUARD 0x5a

/* fuzz_hippo: ssm_s4d_lambda(INV, 2^59 + 1) passed a check against
 * SIZE_MAX (16 (2^59 + 1) bytes fits in size_t) and wrote past lambda; no
 * object exceeds PTRDIFF_MAX bytes.  Fixed in ssmi_sizes_ok. */
START_TEST(test_s4d_lambda_huge_n)
{
    static const int64_t ns[] = { (INT64_C(1) << 59) + 1, (INT64_C(1) << 62), INT64_MAX / 16 + 1 };
    unsigned char buf[64 + 16];
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int init = 0; init < 4; init++) {
            memset(buf, GUARD, sizeof buf);
            ssm_status st = ssm_s4d_lambda((ssm_s4d_init)init, ns[i], (ssm_cdouble *)(void *)buf);
            ck_assert_msg(st == SSM_ERR_ARG, "init %d, n = %lld: got %d", init, (long long)ns[i], (int)st);
            for (size_t j = 0; j < sizeof buf; j++) ck_assert_int_eq(buf[j], GUARD);
        }
}
END_TEST

/* fuzz_hippo: ssm_hippo_nplr(LEGS, n = 4, rank = 2^59 + 1) checked only
 * the element count rank*n against int64_t, returned SSM_OK and wrote the
 * rows of Pt past a 64-byte buffer.  Fixed in nplr_args_ok (bytes). */
START_TEST(test_nplr_huge_rank)
{
    static const int64_t ranks[] = { (INT64_C(1) << 59) + 1, (INT64_C(1) << 61), INT64_MAX / 64 + 1 };
    ssm_cdouble lam[4], Bt[4], V[16];
    unsigned char Pt[64];
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        memset(Pt, GUARD, sizeof Pt);
        ssm_status st = ssm_hippo_nplr(SSM_LEGS, 4, ranks[i], lam, (ssm_cdouble *)(void *)Pt, Bt, V);
        ck_assert_msg(st == SSM_ERR_ARG, "rank = %lld: got %d", (long long)ranks[i], (int)st);
        for (size_t j = 0; j < sizeof Pt; j++) ck_assert_int_eq(Pt[j], GUARD);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz_regress");
    TCase *tc = tcase_create("fuzz findings");
    tcase_add_test(tc, test_s4d_lambda_huge_n);
    tcase_add_test(tc, test_nplr_huge_rank);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
