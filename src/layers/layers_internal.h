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

/* The sgemm calls of one Mamba-1 block on one sequence of the prompt path
 * (ssm_mamba_forward, the stack forward), described once for the library
 * (src/layers/mamba.c) and for the floor of `ssm_bench prefill`, which
 * times the very same calls on copies of the weights.  Row-major,
 * channel-major activations [.][L]:
 *   SSMI_PG_IN:  xz[0:Di] = Win[0:Di] x^T, xz[Di:2Di] = Win[Di:2Di] x^T
 *                (x [L][Dm], Win [2Di][Dm]; two calls of M = Di)
 *   SSMI_PG_X:   xdbl [R+2N][L] = Wx u, then delta [Di][L] = Wdt xdbl[0:R]
 *   SSMI_PG_OUT: y [L][Dm] = ys^T Wout^T + beta y (Wout [Dm][Di]) */
typedef struct ssmi_mamba_prompt_bufs {
    int64_t dm, di, r, xr, L;                 /* xr = R + 2N */
    const float *win, *wx, *wdt, *wout;       /* weights */
    const float *x, *u, *ys;
    float *xz, *xdbl, *delta, *y;
    float beta;
} ssmi_mamba_prompt_bufs;
enum { SSMI_PG_IN, SSMI_PG_X, SSMI_PG_OUT, SSMI_PG_STAGES };
void ssmi_mamba_prompt_gemm(const ssmi_mamba_prompt_bufs *p, int stage);
/* Tokens per chunk the prompt path feeds a block at a time for a prompt of
 * L tokens (min(L, 2048)): its GEMMs are these calls with L = the chunk's
 * length, x and y advanced by the chunk's first token. */
int64_t ssmi_mamba_prompt_chunk(int64_t L);

/* A Mamba-2 stack step for nb tokens whose states are separate stack
 * states (slots[b], row 0 of each; the language model keeps one per
 * slot): as ssm_mamba2_stack_step on each alone, the same bits, but the
 * products run over all nb tokens at once (each weight read once, not nb
 * times).  The slots must be distinct (the caller checks: a state
 * stepped twice in one call would shift its window twice).  ws:
 * ssmi_mamba2_stack_slots_ws(stk, nb) floats; no allocation.  x == y
 * allowed. */
struct ssm_mamba2_stack;
struct ssm_mamba2_stack_state;
int64_t ssmi_mamba2_stack_slots_ws(const struct ssm_mamba2_stack *stk, int64_t max_batch);
ssm_status ssmi_mamba2_stack_step_slots(const struct ssm_mamba2_stack *stk,
                                        struct ssm_mamba2_stack_state *const *slots,
                                        int64_t nb, float *ws, const float *x, float *y);

#endif /* SSM_LAYERS_INTERNAL_H */
