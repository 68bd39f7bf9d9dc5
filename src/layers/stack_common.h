/*
 * stack_common.h -- the block-agnostic part of the residual RMSNorm stacks
 * of src/layers/mamba.c (Mamba-1) and src/layers/mamba2.c (Mamba-2): the
 * array of blocks, the nl + 1 norm weights, the per-layer decoding states
 * and the two [maxB][Dm] step buffers.  Never installed.
 *
 * Each stack struct keeps its own fields (nl, dm, blk, norm; nl, dm, maxb,
 * st, normed, out) with blocks and states held as void *: what differs
 * between the two block types goes through ssmi_stack_ops, whose hooks are
 * thin wrappers of the block's public functions.
 */
#ifndef SSM_LAYERS_STACK_COMMON_H
#define SSM_LAYERS_STACK_COMMON_H

#include "internal.h"

typedef struct ssmi_stack_ops {
    /* ssm_*_create on a resolved config; *blk stays NULL on failure. */
    ssm_status (*create)(void **blk, const void *cfg, uint64_t seed);
    void (*destroy)(void *blk);
    /* The block's out_proj weights and their count. */
    float *(*out_proj)(void *blk, int64_t *count);
    ssm_status (*state_create)(void **st, const void *blk, int64_t max_batch);
    void (*state_destroy)(void *st);
    ssm_status (*state_reset)(void *st);
    /* 1 if st was made for a block of blk's shape. */
    int (*state_matches)(const void *st, const void *blk);
} ssmi_stack_ops;

/* Allocates blk[nl] (zeroed) and norm[nl + 1][dm] (ones), then creates the
 * nl blocks from cfg with seeds drawn in layer order from `seed`, their
 * out_proj scaled by 1/sqrt(nl).  On failure everything made is freed and
 * *blk, *norm are NULL.  n_layers and dm are checked by the caller. */
ssm_status ssmi_stack_blocks_create(const ssmi_stack_ops *ops, const void *cfg,
                                    int64_t nl, int64_t dm, uint64_t seed,
                                    void ***blk, float **norm);
/* Destroys the blocks (blk may be NULL or partly filled) and frees both. */
void ssmi_stack_blocks_free(const ssmi_stack_ops *ops, int64_t nl, void **blk,
                            float *norm);

/* set_norm / get_norm of the public stacks: layer in [0, nl] (nl: the
 * final norm), count == dm, finite weights. */
ssm_status ssmi_stack_norm_set(float *norm, int64_t nl, int64_t dm,
                               int64_t layer, const float *w, int64_t count);
ssm_status ssmi_stack_norm_get(const float *norm, int64_t nl, int64_t dm,
                               int64_t layer, float *w, int64_t count);

/* Allocates st[nl] (zeroed), normed and out ([max_batch][dm] each), then
 * one state per block.  On failure everything made is freed and the three
 * are NULL.  max_batch is checked by the caller (nb = max_batch * dm). */
ssm_status ssmi_stack_states_create(const ssmi_stack_ops *ops, int64_t nl,
                                    void *const *blk, int64_t max_batch,
                                    int64_t nb, void ***st, float **normed,
                                    float **out);
void ssmi_stack_states_free(const ssmi_stack_ops *ops, int64_t nl, void **st,
                            float *normed, float *out);
ssm_status ssmi_stack_states_reset(const ssmi_stack_ops *ops, int64_t nl,
                                   void *const *st);
/* 1 if every state matches its block. */
int ssmi_stack_states_match(const ssmi_stack_ops *ops, int64_t nl,
                            void *const *st, void *const *blk);

#endif /* SSM_LAYERS_STACK_COMMON_H */
