/*
 * torch_logits.h -- the language-model-against-PyTorch check shared by
 * test_model_torch.c (Mamba) and test_model2_torch.c (Mamba-2), the llm.c
 * test_gpt2 pattern: tests/fixtures/<name>/expected.txt holds the prompt's
 * tokens and the logits of every position (float.hex), made in float64 by
 * the fixture's script; the model loaded from the same directory must
 * match them within the bound the test derives, whole prompt and step by
 * step.  Header-only, static inline.
 */
#ifndef SSM_TORCH_LOGITS_H
#define SSM_TORCH_LOGITS_H

#include <ssm.h>
#include "testutil.h"
#include "tu_files.h"

typedef struct tu_logits_ref {
    char dir[1024];     /* tests/fixtures/<name> */
    int L, V;           /* tokens, vocabulary */
    int32_t *tok;       /* [L] */
    double *ref;        /* [L][V] */
} tu_logits_ref;

/* Reads <dir>/expected.txt: "tokens L" t_0 .. t_{L-1} "logits L V" and the
 * L V values. */
static inline void tu_logits_ref_read(tu_logits_ref *r, const char *name)
{
    char p[1100];
    tu_fixture_path(r->dir, sizeof r->dir, name);
    snprintf(p, sizeof p, "%s/expected.txt", r->dir);
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
    r->L = L; r->V = V; r->tok = tok; r->ref = ref;
}

static inline void tu_logits_ref_free(tu_logits_ref *r)
{
    free(r->tok); free(r->ref);
}

/* The model of the fixture's directory, its layer count and info; its
 * vocabulary must be the logits'. */
static inline ssm_model *tu_logits_model(const tu_logits_ref *r, int64_t *nl,
                                         ssm_model_info *info)
{
    ssm_model *m;
    ssm_status st = ssm_model_load(&m, r->dir);
    ck_assert_msg(st == SSM_OK, "load %s: %s", r->dir, ssm_status_string(st));
    int64_t dm, vocab;
    ck_assert_int_eq(ssm_model_dims(m, nl, &dm, &vocab), SSM_OK);
    ck_assert_int_eq(vocab, r->V);
    ssm_model_info_init(info);
    ck_assert_int_eq(ssm_model_get_info(m, info), SSM_OK);
    return m;
}

/* The logits of m (vocabulary already checked == r->V) over the whole
 * prompt at once, then token by token from a reset state, each against
 * r->ref within bound (normwise relative error, ratio printed). */
static inline void tu_logits_check(const char *what, ssm_model *m,
                                   const tu_logits_ref *r, double bound)
{
    const int L = r->L, V = r->V;
    float *lg = tu_alloc((size_t)L * V, sizeof *lg);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, m, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(m, s, 1, L, r->tok, lg), SSM_OK);
    double e = tu_relerr_f(lg, r->ref, (int64_t)L * V);
    printf("%s: logits of %d positions: err %.2e bound %.2e ratio %.3f "
           "(API.md asks 1e-4: ratio %.4f)\n", what, L, e, bound, e / bound, e / 1e-4);
    ck_assert(e <= bound);
    /* step by step agrees too */
    ck_assert_int_eq(ssm_model_state_reset(s), SSM_OK);
    double worst = 0;
    for (int t = 0; t < L; t++) {
        ck_assert_int_eq(ssm_model_forward(m, s, 1, 1, r->tok + t, lg), SSM_OK);
        double et = tu_relerr_f(lg, r->ref + (size_t)t * V, V);
        if (et > worst) worst = et;
    }
    printf("%s: step by step worst row err %.2e ratio %.3f\n", what, worst,
           worst / bound);
    ck_assert(worst <= bound);
    ssm_model_state_destroy(s);
    free(lg);
}

#endif /* SSM_TORCH_LOGITS_H */
