/*
 * prefill_internal.h -- kernels of the Mamba-1 prompt (prefill) path
 * (src/layers/prefill.c), used by src/layers/mamba.c.  Never installed.
 */
#ifndef SSM_PREFILL_INTERNAL_H
#define SSM_PREFILL_INTERNAL_H

#include "internal.h"

/* Fused causal depthwise conv + bias + silu over `rows` channel rows
 * (Mamba, section 3.4, figure 3: the conv and the activation before the
 * SSM), one pass:
 *   u[i][t] = silu(bias[d] + sum_{j<K} w[d][j] in(i, t - (K-1) + j)),
 *   d = i mod di, in(i, s) = x[i][s] for s >= 0, and for s < 0 the left
 * context ctx[i][K + s] (ctx: the state's window of the K last inputs,
 * oldest first, [rows][K]) or 0 when ctx is NULL.
 * x: [rows][L] (row stride L); u: [rows][L]; bias NULL: zeros (the
 * language models' conv_bias = false).  The taps are summed in the
 * step path's order (bias, tap 0, tap 1, ...), with FMA on the vector
 * paths.  silu(v) = v / (1 + exp(-v)) with a polynomial exp of about
 * 1 ulp (Cephes' expf minimax on [-ln2/2, ln2/2]).  OpenMP over rows, one
 * writer per row: bit-identical for any thread count.  The ISA (AVX-512F,
 * AVX2+FMA or plain C) is chosen from the CPU only. */
void ssmi_conv_silu_rows(int64_t rows, int64_t di, int64_t L, int64_t K,
                         const float *x, const float *ctx, const float *w,
                         const float *bias, float *u);
/* The same with the ISA forced (white-box tests): isa -1 the CPU's best,
 * 0 plain C, 1 AVX2+FMA, 2 AVX-512F.  Returns 0, or -1 (nothing written)
 * when that ISA cannot run here. */
int ssmi_conv_silu_rows_isa(int isa, int64_t rows, int64_t di, int64_t L,
                            int64_t K, const float *x, const float *ctx,
                            const float *w, const float *bias, float *u);

/* New conv state after a prompt of L inputs: the K last inputs of
 * (old window, then x's row), oldest first, for every row; ctx is read
 * before it is overwritten (in place: ctx == out allowed), NULL = zeros. */
void ssmi_conv_state_keep(int64_t rows, int64_t L, int64_t K, const float *x,
                          const float *ctx, float *out);

/* out[i][:] = in[i][:] / sqrt(mean(in[i]^2) + eps) * w over `rows` rows of
 * dm (RMSNorm), the sum of squares in double in 8 fixed lanes then summed
 * in lane order: one writer per row, bit-identical for any thread count.
 * in == out allowed. */
void ssmi_rmsnorm_rows_fwd(int64_t rows, int64_t dm, const float *in,
                           float *out, const float *w, double eps);

/* Ask for transparent huge pages on a large fresh workspace (a stack
 * forward at L = 2048 touches ~57 MB: ~14000 4 KB page faults per call,
 * ~1% of a 24-layer forward on a paravirtualised machine).  Only a hint. */
void ssmi_ws_hint_huge(void *p, size_t bytes);

#endif /* SSM_PREFILL_INTERNAL_H */
