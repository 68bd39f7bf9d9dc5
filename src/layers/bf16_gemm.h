/*
 * bf16_gemm.h -- BF16 x BF16 -> float matrix products for prompt chunks
 * with BF16 weights, through oneDNN's matmul (libdnnl-dev) when libssm was
 * built with it (src/layers/bf16_gemm.c; docs/bf16.md).  Never installed.
 *
 *   C[m * ldc + n] = sum_k A(m, k) B(k, n),   m < M, n < N, k < K,
 *   A(m, k) = A[m * a_m + k * a_k],  B(k, n) = B[k * b_k + n * b_n],
 *
 * A and B BF16, products exact in float, sums in float (vdpbf16ps on
 * AVX512_BF16: the same arithmetic as the decoding step's gemv_bf16dp.h).
 *
 * Thread-count independence, by construction: the dimension that belongs
 * to the weights (M when split_m, else N) is cut into blocks of a fixed
 * size (from the shape only); OpenMP hands whole blocks to threads; each
 * block is one oneDNN matmul run on ONE thread (the calling OpenMP thread
 * sets its own nthreads ICV to 1 first, so oneDNN plans and runs it
 * single-threaded: no split of K, no reduction across threads).  A block's
 * numbers then depend on its shape only.  oneDNN's own threading is never
 * used: its matmul may split K among threads, which would make the sums
 * depend on the thread count.
 */
#ifndef SSM_LAYERS_BF16_GEMM_H
#define SSM_LAYERS_BF16_GEMM_H

#include <stdint.h>
#include "ssm/common.h"

/* 1 when libssm was built with oneDNN and this CPU has AVX512_BF16
 * (ssmi_bf16dp_ok): then ssmi_bf16_gemm runs BF16 arithmetic at the
 * speed of the hardware; else 0 (callers take their float path). */
int ssmi_bf16_gemm_ok(void);

/* The product above.  Sizes >= 1, strides as the caller's arrays need.
 * SSM_ERR_NOMEM when oneDNN fails (allocation), SSM_ERR_ARG when built
 * without oneDNN. */
ssm_status ssmi_bf16_gemm(int64_t M, int64_t N, int64_t K, const uint16_t *A,
                          int64_t a_m, int64_t a_k, const uint16_t *B,
                          int64_t b_k, int64_t b_n, float *C, int64_t ldc,
                          int split_m);

#endif /* SSM_LAYERS_BF16_GEMM_H */
