/* ctest-labels: model */
/*
 * test_model2_torch.c -- a Mamba-2 language model against PyTorch (the
 * llm.c test_gpt2 pattern): tests/fixtures/model2/ holds a tiny Mamba-2
 * LM's state dict saved by torch.save (pytorch_model.bin, mamba_ssm names,
 * ssm_cfg layer "Mamba2", headdim 8, ngroups 2, tied lm_head), its
 * config.json, and the logits of every position of a forward written in
 * PyTorch (float64 on the float32 weights) with the SSD in its chunked
 * matrix form (ssd_minimal_discrete, Dao and Gu 2024), all made by
 * tests/fixtures/model2/make_model2_fixture.py (run by hand with Debian's
 * python3-torch).
 */
#define _POSIX_C_SOURCE 200809L
#include <ssm.h>
#include "testutil.h"
#include "torch_logits.h"

START_TEST(test_against_pytorch)
{
    tu_logits_ref r;
    tu_logits_ref_read(&r, "model2");
    const int L = r.L;
    int64_t nl;
    ssm_model_info info;
    ssm_model *m = tu_logits_model(&r, &nl, &info);
    ck_assert_int_eq(info.vocab_padded, 40);
    ck_assert_int_eq(info.d_inner, 32);
    ck_assert_int_eq(info.d_state, 4);

    /* The bound of test_model_mamba2.c at this fixture's sizes: dm 16,
     * di 32, K 4, N 4, group of 16 channels, |dt A| <= 8. */
    const double u = 0x1.0p-24;
    double bound = 4.0 * u * ((double)nl * (sqrt(16.0) + sqrt(4.0) + sqrt(4.0) + sqrt(32.0) +
                                            sqrt(16.0) + 8.0 * sqrt((double)L) + 16) +
                              sqrt(16.0));
    tu_logits_check("torch mamba2 fixture", m, &r, bound);
    ssm_model_destroy(m);
    tu_logits_ref_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model2_torch");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_against_pytorch);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
