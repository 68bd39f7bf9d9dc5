/* ctest-labels: model */
/*
 * test_model_torch.c -- the language model against PyTorch (the llm.c
 * test_gpt2 pattern): tests/fixtures/model/ holds a tiny Mamba LM's state
 * dict saved by torch.save (pytorch_model.bin, mamba_ssm names, tied
 * lm_head sharing the embedding's storage), its config.json, and the
 * logits of every position of a forward written in PyTorch from
 * mamba_ssm's reference semantics (float64 on the float32 weights),
 * all made by tests/fixtures/model/make_model_fixture.py (run by hand with
 * Debian's python3-torch).
 */
#define _POSIX_C_SOURCE 200809L
#include <ssm.h>
#include "testutil.h"
#include "torch_logits.h"

START_TEST(test_against_pytorch)
{
    tu_logits_ref r;
    tu_logits_ref_read(&r, "model");
    const int L = r.L;
    int64_t nl;
    ssm_model_info info;
    ssm_model *m = tu_logits_model(&r, &nl, &info);
    ck_assert_int_eq(info.vocab_padded, 40);
    ck_assert_int_eq(info.dt_rank, 1);          /* "auto" = ceil(16 / 16) */
    printf("torch fixture: %lld bytes used in place, %lld owned (A = -exp(A_log))\n",
           (long long)info.bytes_mapped, (long long)info.bytes_owned);
    ck_assert_int_gt(info.bytes_mapped, 0);

    /* The bound of test_model.c (float forward vs exact logits, rounding
     * growing like sqrt(n) u per dot product and scan, 4x amplification)
     * at this fixture's sizes: dm 16, di 32, K 4, R 1, N 4. */
    const double u = 0x1.0p-24;
    double bound = 4.0 * u * ((double)nl * (sqrt(16.0) + sqrt(4.0) + 2 * sqrt(32.0) +
                                            sqrt(1.0) + sqrt((double)L) + 16) + sqrt(16.0));
    tu_logits_check("torch fixture", m, &r, bound);
    ssm_model_destroy(m);
    tu_logits_ref_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_torch");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_against_pytorch);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
