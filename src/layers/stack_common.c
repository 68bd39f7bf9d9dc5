/*
 * stack_common.c -- what the Mamba-1 and Mamba-2 residual stacks share
 * (see stack_common.h): creation and destruction of their blocks, norms
 * and decoding states.  The forward and step paths stay with each block
 * type (their rounding and workspaces differ).
 */
#include <string.h>

#include "layers/stack_common.h"

void ssmi_stack_blocks_free(const ssmi_stack_ops *ops, int64_t nl, void **blk,
                            float *norm)
{
    if (blk)
        for (int64_t l = 0; l < nl; l++)
            ops->destroy(blk[l]);
    ssmi_free(blk);
    ssmi_free(norm);
}

ssm_status ssmi_stack_blocks_create(const ssmi_stack_ops *ops, const void *cfg,
                                    int64_t nl, int64_t dm, uint64_t seed,
                                    void ***blk, float **norm)
{
    /* Zeroed at once: a failure below frees the blocks, which must then
     * see only NULL or valid ones (destroy(NULL) is a no-op). */
    void **b = ssmi_calloc((size_t)nl, sizeof *b);
    float *nw = ssmi_alloc((size_t)((nl + 1) * dm), sizeof(float));
    *blk = NULL;
    *norm = NULL;
    if (!b || !nw) {
        ssmi_stack_blocks_free(ops, nl, b, nw);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t i = 0; i < (nl + 1) * dm; i++)
        nw[i] = 1.0f;
    ssmi_rng g = { seed };
    /* Mamba's rescale_prenorm_residual: out_proj / sqrt(n_layers), so the
     * residual stream's variance does not grow with depth. */
    const float oscale = (float)(1.0 / sqrt((double)nl));
    for (int64_t l = 0; l < nl; l++) {
        ssm_status e = ops->create(&b[l], cfg, ssmi_rng_u64(&g));
        if (e != SSM_OK) {
            ssmi_stack_blocks_free(ops, nl, b, nw);
            return e;
        }
        int64_t cnt;
        float *w = ops->out_proj(b[l], &cnt);
        for (int64_t i = 0; i < cnt; i++)
            w[i] *= oscale;
    }
    *blk = b;
    *norm = nw;
    return SSM_OK;
}

ssm_status ssmi_stack_norm_set(float *norm, int64_t nl, int64_t dm,
                               int64_t layer, const float *w, int64_t count)
{
    if (!w || layer < 0 || layer > nl || count != dm || !ssmi_finite_f(w, count))
        return SSM_FAIL(SSM_ERR_ARG);
    memcpy(norm + layer * dm, w, (size_t)count * sizeof(float));
    return SSM_OK;
}

ssm_status ssmi_stack_norm_get(const float *norm, int64_t nl, int64_t dm,
                               int64_t layer, float *w, int64_t count)
{
    if (!w || layer < 0 || layer > nl || count != dm)
        return SSM_FAIL(SSM_ERR_ARG);
    memcpy(w, norm + layer * dm, (size_t)count * sizeof(float));
    return SSM_OK;
}

void ssmi_stack_states_free(const ssmi_stack_ops *ops, int64_t nl, void **st,
                            float *normed, float *out)
{
    if (st)
        for (int64_t l = 0; l < nl; l++)
            ops->state_destroy(st[l]);
    ssmi_free(st);
    ssmi_free(normed);
    ssmi_free(out);
}

ssm_status ssmi_stack_states_create(const ssmi_stack_ops *ops, int64_t nl,
                                    void *const *blk, int64_t max_batch,
                                    int64_t nb, void ***st, float **normed,
                                    float **out)
{
    /* Zeroed at once, as the blocks of ssmi_stack_blocks_create. */
    void **s = ssmi_calloc((size_t)nl, sizeof *s);
    float *nd = ssmi_alloc((size_t)nb, sizeof(float));
    float *o = ssmi_alloc((size_t)nb, sizeof(float));
    *st = NULL;
    *normed = NULL;
    *out = NULL;
    if (!s || !nd || !o) {
        ssmi_stack_states_free(ops, nl, s, nd, o);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t l = 0; l < nl; l++) {
        ssm_status e = ops->state_create(&s[l], blk[l], max_batch);
        if (e != SSM_OK) {
            ssmi_stack_states_free(ops, nl, s, nd, o);
            return e;
        }
    }
    *st = s;
    *normed = nd;
    *out = o;
    return SSM_OK;
}

ssm_status ssmi_stack_states_reset(const ssmi_stack_ops *ops, int64_t nl,
                                   void *const *st)
{
    for (int64_t l = 0; l < nl; l++)
        SSM_TRY(ops->state_reset(st[l]));
    return SSM_OK;
}

int ssmi_stack_states_match(const ssmi_stack_ops *ops, int64_t nl,
                            void *const *st, void *const *blk)
{
    for (int64_t l = 0; l < nl; l++)
        if (!ops->state_matches(st[l], blk[l]))
            return 0;
    return 1;
}
