/*
 * ssm/sample.h -- choosing the next token from a row of logits: greedy,
 * temperature, top-k, top-p (nucleus), min-p and repetition penalty, with a
 * seeded generator whose state lives in the sampler (no global state).
 *
 * The filters follow mamba_ssm's utils/generation.py (sample(),
 * modify_logits_for_top_p_filtering, modify_logit_for_repetition_penalty),
 * applied in this order to the logits l of one row (vocab entries):
 *   1. repetition penalty r (each distinct id t of the history, once):
 *      l[t] = l[t] < 0 ? l[t] * r : l[t] / r                (r = 1: off)
 *   2. greedy when top_k == 1 or temperature == 0: the first index of the
 *      largest logit (NaN logits are never chosen)
 *   3. top-k: keep the k largest logits (ties: lower index first) (k = 0: off)
 *   4. min-p: keep tokens whose probability is >= min_p times the largest
 *      probability, i.e. exp(l - l_max) >= min_p           (min_p = 0: off)
 *   5. temperature T: l = l / T
 *   6. top-p: with the kept tokens sorted by increasing probability (softmax
 *      of the kept, tempered logits), remove those whose cumulative
 *      probability is <= 1 - top_p (so the most likely token always stays)
 *                                                    (top_p = 0 or 1: off)
 *   7. draw from the softmax of the remaining tempered logits.
 * For every combination generation.py supports this is its result (it
 * applies top-k before temperature and top-p after it; min-p before
 * temperature); generation.py ignores min-p when top_k > 0 and top-p when
 * min_p > 0, where this sampler applies all that are asked for.  min-p is
 * the usual definition (relative to the top probability).  The logits
 * passed are the real vocabulary only (ssm_model_forward never returns
 * the padded rows), so padded ids are never drawn.
 */
#ifndef SSM_SAMPLE_H
#define SSM_SAMPLE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_sampler_params {
    uint32_t struct_size;       /* sizeof(ssm_sampler_params), set by _init */
    double   temperature;       /* >= 0, finite; 0: greedy.  Default 1 */
    int64_t  top_k;             /* >= 0; 0: off, 1: greedy.  Default 1 (greedy, as generation.py) */
    double   top_p;             /* in [0, 1]; 0 or 1: off.  Default 0 */
    double   min_p;             /* in [0, 1]; 0: off.  Default 0 */
    double   repetition_penalty;/* > 0, finite; 1: off.  Default 1 */
} ssm_sampler_params;

/* The defaults above (those of generation.py's generate()). */
SSM_API void ssm_sampler_params_init(ssm_sampler_params *p);

typedef struct ssm_sampler ssm_sampler;

/* A sampler for rows of vocab logits, its generator seeded with seed
 * (splitmix64; the same seed gives the same draws on every platform).
 * Holds scratch space for vocab entries, so sampling never allocates.
 * Errors: SSM_ERR_ARG (NULL, vocab < 1 or > INT32_MAX, a parameter out of
 * range or NaN, bad struct_size), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_sampler_create(ssm_sampler **s,
                                      const ssm_sampler_params *p,
                                      int64_t vocab, uint64_t seed);
SSM_API void ssm_sampler_destroy(ssm_sampler *s);   /* NULL: no-op */

/* Restart the generator.  Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_sampler_seed(ssm_sampler *s, uint64_t seed);

/* The distribution the next draw comes from: probs [vocab] (zero for the
 * removed tokens; one-hot when greedy).  history: the n_history ids seen
 * so far (prompt and generated) for the repetition penalty; may be NULL
 * when n_history is 0.  Does not touch the generator.
 * Errors: SSM_ERR_ARG (NULL, n_history < 0, a history id outside
 * [0, vocab)), SSM_ERR_NUMERIC (no logit is a number above -infinity). */
SSM_API ssm_status ssm_sampler_probs(ssm_sampler *s, const float *logits,
                                     const int32_t *history, int64_t n_history,
                                     float *probs);

/* Draw the next token into *token (one uniform from the generator, none
 * when greedy).  Errors: as ssm_sampler_probs. */
SSM_API ssm_status ssm_sampler_sample(ssm_sampler *s, const float *logits,
                                      const int32_t *history, int64_t n_history,
                                      int32_t *token);

#ifdef __cplusplus
}
#endif

#endif /* SSM_SAMPLE_H */
