/*
 * mamba_step.h -- the conv and scan of a Mamba-1 decoding step
 * (src/layers/mamba_step.c; contract and accuracy there).  Never installed.
 * isa: 0 the best this CPU runs, 1 generic, 2 AVX2+FMA, 3 AVX-512F (a path
 * the CPU lacks falls back to generic); every path gives the same bits.
 * Rows are (token, channel) pairs i = b * di + d.
 */
#ifndef SSM_LAYERS_MAMBA_STEP_H
#define SSM_LAYERS_MAMBA_STEP_H

#include <stdint.h>

/* Shift each row's window conv [rows][k] (oldest first), append x[i],
 * u[i] = silu(cb[d] + sum_j cw[d][j] window[j]) (cb may be NULL). */
void ssmi_mamba_step_conv(int isa, int64_t rows, int64_t di, int64_t k, float *conv,
                          const float *x, const float *cw, const float *cb, float *u);

/* One selective-scan step: dt = softplus(delta + bias) (into dtv),
 * g = silu(z) (into g; 1 when z is NULL), h [rows][n] updated,
 * y = (C . h + D u) g.  A enters as its table (ssmi_mamba_step_a2):
 * A2 [di][n] and amax [di] (amax may be NULL: then every channel takes the
 * decay with its range steps; the bits are the same either way).  Bm, Cm:
 * [B][ldbc] rows of token b. D, bias may be NULL.  dtv, g: [rows]
 * scratch. */
void ssmi_mamba_step_scan(int isa, int64_t rows, int64_t di, int64_t n, float *h,
                          const float *u, const float *delta, const float *A2,
                          const float *amax, const float *Bm, const float *Cm, int64_t ldbc,
                          const float *D, const float *z, const float *bias,
                          float *dtv, float *g, float *y);

/* The same on rows i0..i1 only, on the calling thread (no OpenMP): for
 * callers that share out the rows themselves.  Rows are independent, so
 * any split gives the same bits. */
void ssmi_mamba_step_conv_rows(int isa, int64_t i0, int64_t i1, int64_t di, int64_t k,
                               float *conv, const float *x, const float *cw,
                               const float *cb, float *u);
void ssmi_mamba_step_scan_rows(int isa, int64_t i0, int64_t i1, int64_t di, int64_t n,
                               float *h, const float *u, const float *delta,
                               const float *A2, const float *amax, const float *Bm,
                               const float *Cm,
                               int64_t ldbc, const float *D, const float *z,
                               const float *bias, float *dtv, float *g, float *y);

/* The scan step's table of A [di][n]: a2 = A log2(e) rounded once (the
 * decay's scan_a2, computed here once instead of at every step) and
 * amax[d] = max_s |A[d][s]| (NaN if any is NaN), which lets a channel
 * whose dt amax <= 87 skip the decay's range steps.  Whoever owns A
 * recomputes the table whenever A changes. */
void ssmi_mamba_step_a2(int64_t di, int64_t n, const float *A, float *a2, float *amax);
/* Prefetch (into L2, for writing) the conv windows of rows i0..i1: a
 * caller issues it before the product that feeds those rows, so the
 * windows, evicted by the weights since the last step, arrive while it
 * runs instead of stalling the conv. */
void ssmi_mamba_step_conv_prefetch(int64_t i0, int64_t i1, int64_t k, const float *conv);
/* The scalar functions used above (white-box tests). */
float ssmi_step_exp(float x);
float ssmi_step_softplus(float x);
float ssmi_step_silu(float x);

#endif /* SSM_LAYERS_MAMBA_STEP_H */
