/*
 * layers_internal.h -- private entry points of src/layers for the
 * benchmark (bench/ links the static library).  Never installed.
 */
#ifndef SSM_LAYERS_INTERNAL_H
#define SSM_LAYERS_INTERNAL_H

#include "internal.h"

/* Per-stage wall-clock seconds, accumulated (+=) by the _ex functions:
 * for benchmarks.  Transposes are folded into the GEMMs (see above). */
typedef struct ssmi_mamba_timing {
    double gemm;   /* in_proj, x_proj, dt_proj, out_proj (CBLAS) */
    double conv;   /* causal depthwise conv + bias + silu, conv-state shift */
    double scan;   /* ssm_selective_scan / ssm_selective_step */
    double norm;   /* RMSNorm, residual adds and copies (stack only) */
} ssmi_mamba_timing;

/* ssm_mamba_* with the time spent per stage added to *timing (NULL: not
 * timed); same validation and bytes as the public calls. */
ssm_status ssmi_mamba_forward_ex(const ssm_mamba *blk, ssm_mamba_state *st,
                                        int64_t batch, int64_t L, const float *x,
                                        float *y,
                                        ssmi_mamba_timing *timing);

/* ssm_mamba_* with the time spent per stage added to *timing (NULL: not
 * timed); same validation and bytes as the public calls. */
ssm_status ssmi_mamba_step_ex(const ssm_mamba *blk,
                                     ssm_mamba_state *st, int64_t batch,
                                     const float *x, float *y,
                                     ssmi_mamba_timing *timing);

/* ssm_mamba_* with the time spent per stage added to *timing (NULL: not
 * timed); same validation and bytes as the public calls. */
ssm_status ssmi_mamba_stack_forward_ex(const ssm_mamba_stack *stk,
                                              ssm_mamba_stack_state *st, int64_t batch,
                                              int64_t L, const float *x,
                                              float *y,
                                              ssmi_mamba_timing *timing);

/* ssm_mamba_* with the time spent per stage added to *timing (NULL: not
 * timed); same validation and bytes as the public calls. */
ssm_status ssmi_mamba_stack_step_ex(const ssm_mamba_stack *stk,
                                           ssm_mamba_stack_state *st,
                                           int64_t batch, const float *x,
                                           float *y,
                                           ssmi_mamba_timing *timing);

#endif /* SSM_LAYERS_INTERNAL_H */
