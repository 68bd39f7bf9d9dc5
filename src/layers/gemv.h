/*
 * gemv.h -- the decoding step's small-batch products (src/layers/gemv.c),
 * shared by the Mamba block and stack steps (src/layers/mamba.c) and the
 * language model's step (src/models/run.c).  Never installed.
 *
 *   out[b * ldo + j] = sum_k X[b * ldx + k] * W[j * ldw + k]
 *   for b < M (tokens, "batch"), j < N (output rows), k < K.
 *
 * Why not BLAS: a decoding step multiplies every weight by 1..16 tokens,
 * so it is bound by reading the weights once from memory.  sgemm first
 * packs (copies) all of W on every call and sgemv reads W once per token;
 * this kernel reads each row of W once for all M tokens, while it sits in
 * L1/L2, with W either float or bfloat16 (widened exactly to float in
 * registers: half the bytes to read, the same products as the float
 * kernel run on the bf16-rounded weights).
 *
 * Rounding, the same for every thread count and every path: each output is
 * a dot product in 16 lanes, lane q summing the products k = q, q + 16,
 * q + 32, ... in increasing k (the last partial group of 16 as if zero
 * padded), then the lanes added in the fixed tree (q, q+8), (q, q+4),
 * (q, q+2), (q, q+1).  The AVX2 and AVX-512 paths (used when the CPU has
 * FMA) fuse each multiply-add and agree bit for bit; the generic path
 * (any x86-64 or other CPU) rounds each product before the add, so it
 * differs from them by rounding only.  OpenMP splits the output rows into
 * fixed blocks, one writer per output: results never depend on the
 * thread count.  No allocation.
 */
#ifndef SSM_LAYERS_GEMV_H
#define SSM_LAYERS_GEMV_H

#include <stdint.h>
#include <string.h>

/* Instruction-set paths (ssmi_xwt_ex): AUTO picks the best this CPU runs. */
enum {
    SSMI_GEMV_AUTO = 0,
    SSMI_GEMV_GENERIC = 1,
    SSMI_GEMV_AVX2 = 2,      /* AVX2 + FMA */
    SSMI_GEMV_AVX512 = 3     /* AVX-512F (FMA implied) */
};

/* 1 if this CPU can run path isa (AUTO and GENERIC: always). */
int ssmi_gemv_isa_ok(int isa);
/* The path AUTO resolves to on this CPU. */
int ssmi_gemv_isa_auto(void);
/* Name of a path ("generic", "avx2", "avx512"). */
const char *ssmi_gemv_isa_name(int isa);

/* The product above, float weights.  M >= 1, N >= 1, K >= 1, strides >= K
 * (ldo >= N); sizes are the caller's to check. */
void ssmi_xwt(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
              const float *W, int64_t ldw, float *out, int64_t ldo);
/* The same with bfloat16 weights (the high 16 bits of a float). */
void ssmi_xwt_bf16(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                   const uint16_t *W, int64_t ldw, float *out, int64_t ldo);
/* Either, on a forced path (the white-box tests): isa must be one the CPU
 * runs (ssmi_gemv_isa_ok), else it falls back to GENERIC. */
void ssmi_xwt_ex(int isa, int64_t M, int64_t N, int64_t K, const float *X,
                 int64_t ldx, const float *Wf, const uint16_t *Wh, int64_t ldw,
                 float *out, int64_t ldo);

/* For callers that share out the rows themselves (the decoding steps run
 * a whole layer in one OpenMP region, src/layers/mamba.c): rows j0..j1 of
 * the product for all M tokens, on the calling thread, with W either
 * float (Wf) or bfloat16 (Wh, used when not NULL); out[b * ldo + j] for
 * j0 <= j < j1.  Any split of the rows gives the bits of ssmi_xwt. */
void ssmi_xwt_rows(int64_t M, int64_t j0, int64_t j1, int64_t K, const float *X,
                   int64_t ldx, const float *Wf, const uint16_t *Wh, int64_t ldw,
                   float *out, int64_t ldo);
/* The rows per block ssmi_xwt hands to a thread for this K and weight
 * type (a multiple of 24: every tile height divides it). */
int64_t ssmi_xwt_block_rows(int64_t K, int bf16);

/* bfloat16 <-> float.  Widening is exact; narrowing rounds to nearest even
 * (NaN stays NaN, quiet). */
static inline float ssmi_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t ssmi_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* n bfloat16 values widened into dst. */
void ssmi_bf16_widen(const uint16_t *src, float *dst, int64_t n);

#endif /* SSM_LAYERS_GEMV_H */
