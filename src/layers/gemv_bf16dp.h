/*
 * gemv_bf16dp.h -- the decoding step's small-batch product with BF16
 * weights on BF16 arithmetic (AVX512_BF16's vdpbf16ps), an alternative to
 * the exact widening kernel of gemv.h (src/layers/gemv_bf16dp.c).  Never
 * installed.
 *
 *   out[b * ldo + j] = sum_k bf16(X[b * ldx + k]) * W[j * ldw + k]
 *   for b < M, j < N, k < K.
 *
 * Why: a decoding step reads every weight once; kept as BF16 the weights
 * are half the bytes, and vdpbf16ps multiplies 32 BF16 pairs per
 * instruction straight from the loaded bytes (the widening kernel needs a
 * zero-extension, a shift and an FMA per 16 weights: 4x the instructions
 * per byte, which kept it from streaming at the float kernel's bandwidth).
 * The price: the activations are rounded to BF16 (8 significant bits),
 * once per call, into the caller's scratch.
 *
 * Rounding, the same for every thread count and every batch grouping:
 *  - each X element is rounded to nearest even BF16 by vcvtneps2bf16,
 *    which treats a subnormal float as zero (|x| < 2^-126 -> 0);
 *  - each output is a dot product in 16 lanes: lane q owns the pairs
 *    (k, k+1) = (32 i + 2q, 32 i + 2q + 1), i = 0, 1, ... in increasing i
 *    (K zero padded to a multiple of 32); one vdpbf16ps adds the pair's
 *    two products, both exact in float (8 x 8 significant bits), one
 *    after the other with one float rounding each (to nearest even; a
 *    BF16 subnormal input counts as zero, a subnormal result is flushed
 *    to zero);
 *  - then the lanes are added in the fixed tree of gemv.h: (q, q+8),
 *    (q, q+4), (q, q+2), (q, q+1).
 * So |out - sum_k x_k w_k| <= (u8 + gamma_n (1 + u8)) sum_k |x_k w_k|
 * + 2^-126 (sum_k (|x_k| + |w_k|) + n), with u8 = 2^-8 (BF16 rounding of
 * x), n = 2 ceil(K/32) + 4 float additions on a lane's path and gamma_n =
 * n u / (1 - n u), u = 2^-24 (Higham, eq. 3.5 per lane); the last term
 * covers the flushed subnormals (tests/wbtest_gemv_bf16dp.c checks the
 * bound against a double reference).
 *
 * OpenMP splits the output rows into fixed blocks (sizes from K only), one
 * writer per output.  No allocation.
 */
#ifndef SSM_LAYERS_GEMV_BF16DP_H
#define SSM_LAYERS_GEMV_BF16DP_H

#include <stdint.h>

/* 1 if this CPU and OS run the kernel: CPUID AVX512F, AVX512BW and
 * AVX512_BF16, and XCR0 with the opmask and all ZMM state enabled. */
int ssmi_bf16dp_ok(void);

/* Elements of scratch xh that a call with M tokens of K needs: M rows of
 * K rounded up to 32 (the zero padding), in uint16_t. */
static inline int64_t ssmi_bf16dp_scratch(int64_t M, int64_t K)
{
    return M * ((K + 31) & ~(int64_t)31);
}

/* The product above.  M >= 1, N >= 1, K >= 1, ldx >= K, ldw >= K, ldo >=
 * N, xh: ssmi_bf16dp_scratch(M, K) elements, 64-byte aligned not required;
 * sizes are the caller's to check.  Only when ssmi_bf16dp_ok(). */
void ssmi_xwt_bf16dp(int64_t M, int64_t N, int64_t K, const float *X,
                     int64_t ldx, const uint16_t *W, int64_t ldw, float *out,
                     int64_t ldo, uint16_t *xh);

/* For callers that share out the rows themselves (a decoding step run as
 * one OpenMP region per step): X rounded once into xh (M rows of K, each
 * zero padded to ssmi_bf16dp_scratch's 32), then rows j0..j1 of the
 * product on the calling thread.  Any split of the rows gives the bits of
 * ssmi_xwt_bf16dp.  Only when ssmi_bf16dp_ok(). */
void ssmi_bf16dp_round_rows(int64_t M, int64_t K, const float *X, int64_t ldx,
                            uint16_t *xh);
void ssmi_xwt_bf16dp_rows(int64_t M, int64_t j0, int64_t j1, int64_t K,
                          const uint16_t *xh, const uint16_t *W, int64_t ldw,
                          float *out, int64_t ldo);

/* n floats -> BF16 as the product rounds X (vcvtneps2bf16: nearest even,
 * subnormals to zero); for callers that feed BF16 activations elsewhere
 * (the prompt's oneDNN products, bf16_gemm.h).  Only when
 * ssmi_bf16dp_ok(). */
void ssmi_bf16dp_round(int64_t n, const float *x, uint16_t *h);

#endif /* SSM_LAYERS_GEMV_BF16DP_H */
