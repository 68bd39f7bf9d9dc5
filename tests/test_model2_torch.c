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

static void fixture_dir(char *out, size_t cap)
{
    const char *f = __FILE__, *sl = strrchr(f, '/');
    int dl = sl ? (int)(sl - f) : 1;
    snprintf(out, cap, "%.*s/fixtures/model2", dl, sl ? f : ".");
}

START_TEST(test_against_pytorch)
{
    char dir[1024], p[1100];
    fixture_dir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/expected.txt", dir);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    int L, L2, V;
    ck_assert_int_eq(fscanf(f, " tokens %d", &L), 1);
    ck_assert(L > 0 && L < 1000);
    int32_t *tok = tu_alloc((size_t)L, sizeof *tok);
    for (int i = 0; i < L; i++) ck_assert_int_eq(fscanf(f, "%d", &tok[i]), 1);
    ck_assert_int_eq(fscanf(f, " logits %d %d", &L2, &V), 2);
    ck_assert_int_eq(L2, L);
    double *ref = tu_alloc((size_t)L * V, sizeof *ref);
    char word[64];
    for (int i = 0; i < L * V; i++) {
        ck_assert_int_eq(fscanf(f, "%63s", word), 1);
        ref[i] = strtod(word, NULL);       /* C99 reads float.hex exactly */
    }
    fclose(f);

    ssm_model *m;
    ssm_status st = ssm_model_load(&m, dir);
    ck_assert_msg(st == SSM_OK, "load %s: %s", dir, ssm_status_string(st));
    int64_t nl, dm, vocab;
    ck_assert_int_eq(ssm_model_dims(m, &nl, &dm, &vocab), SSM_OK);
    ck_assert_int_eq(vocab, V);
    ssm_model_info info;
    ssm_model_info_init(&info);
    ck_assert_int_eq(ssm_model_get_info(m, &info), SSM_OK);
    ck_assert_int_eq(info.vocab_padded, 40);
    ck_assert_int_eq(info.d_inner, 32);
    ck_assert_int_eq(info.d_state, 4);

    float *lg = tu_alloc((size_t)L * V, sizeof *lg);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, m, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(m, s, 1, L, tok, lg), SSM_OK);
    /* The bound of test_model_mamba2.c at this fixture's sizes: dm 16,
     * di 32, K 4, N 4, group of 16 channels, |dt A| <= 8. */
    const double u = 0x1.0p-24;
    double bound = 4.0 * u * ((double)nl * (sqrt(16.0) + sqrt(4.0) + sqrt(4.0) + sqrt(32.0) +
                                            sqrt(16.0) + 8.0 * sqrt((double)L) + 16) +
                              sqrt(16.0));
    double e = tu_relerr_f(lg, ref, (int64_t)L * V);
    printf("torch mamba2 fixture: logits of %d positions: err %.2e bound %.2e ratio %.3f "
           "(API.md asks 1e-4: ratio %.4f)\n", L, e, bound, e / bound, e / 1e-4);
    ck_assert(e <= bound);
    ck_assert_int_eq(ssm_model_state_reset(s), SSM_OK);
    double worst = 0;
    for (int t = 0; t < L; t++) {
        ck_assert_int_eq(ssm_model_forward(m, s, 1, 1, tok + t, lg), SSM_OK);
        double et = tu_relerr_f(lg, ref + (size_t)t * V, V);
        if (et > worst) worst = et;
    }
    printf("torch mamba2 fixture: step by step worst row err %.2e ratio %.3f\n", worst,
           worst / bound);
    ck_assert(worst <= bound);
    ssm_model_state_destroy(s);
    ssm_model_destroy(m);
    free(tok); free(ref); free(lg);
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
