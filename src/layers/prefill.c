/*
 * prefill.c -- elementwise kernels of the Mamba-1 prompt (prefill) path:
 * the fused causal conv + bias + silu (Mamba, section 3.4, figure 3) and
 * the forward RMSNorm of the residual backbone.  See prefill_internal.h.
 *
 * Why: in a mamba-130m-shaped stack forward at 1 thread, libm's scalar
 * expf in silu and the conv's four separate passes over each [L] row were
 * ~5% of the time, as large as a third of the scan (perf, issue 13).  One
 * pass per row with a vector polynomial exp removes most of it.
 *
 * exp: Cephes' expf scheme.  x = k ln2 + r with k = round(x log2 e) (by
 * the 1.5 * 2^23 shift trick) and ln2 split in a high part exact in float
 * times k and a low part, |r| <= ln2/2; exp(r) = 1 + r + r^2 P(r) with
 * Cephes' degree-5 minimax P (about 1 ulp on that interval); times 2^k by
 * an exponent-field add.  x is clamped to [-87, 88] so that 2^k stays a
 * normal float: silu(v) for v < -88 then returns v / (1 + e^88) instead of
 * v e^v, an absolute error below 1e-36.  A NaN input stays NaN (the
 * division keeps v).  The scalar path does the same operations with fmaf,
 * so every element rounds as it would in a vector lane.
 */
#define _GNU_SOURCE 1   /* MADV_HUGEPAGE */
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include "layers/prefill_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PF_X86 1
#include <immintrin.h>
#endif

#define EXP_LO (-87.0f)
#define EXP_HI 88.0f
#define EXP_SHIFT 12582912.0f            /* 1.5 * 2^23 */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2HI 0.693359375f            /* exact in float, k * it is exact */
#define EXP_LN2LO (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f           /* Cephes expf minimax */
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

/* Work thresholds below which an OpenMP region costs more than it saves:
 * the conv + silu does ~K+20 flops per element, the norm ~4. */
#define PF_PAR_MIN_CONV 4096
#define PF_PAR_MIN 32768

/* ------------------------------------------------------------------ */
/* scalar: the vector lanes' operations, one element                   */

#define SCALAR_BODY                                                          \
    static inline ATTR float NAME(exp)(float x)                                   \
    {                                                                        \
        float xc = x < EXP_LO ? EXP_LO : x;                                  \
        xc = xc > EXP_HI ? EXP_HI : xc;                                      \
        const float kf = fmaf(xc, EXP_LOG2E, EXP_SHIFT);                     \
        const float k = kf - EXP_SHIFT;                                      \
        int32_t ki, sh;                                                      \
        memcpy(&ki, &kf, sizeof ki);                                         \
        const float shift = EXP_SHIFT;                                       \
        memcpy(&sh, &shift, sizeof sh);                                      \
        float r = fmaf(-k, EXP_LN2HI, xc);                                   \
        r = fmaf(-k, EXP_LN2LO, r);                                          \
        float p = EXP_P0;                                                    \
        p = fmaf(p, r, EXP_P1);                                              \
        p = fmaf(p, r, EXP_P2);                                              \
        p = fmaf(p, r, EXP_P3);                                              \
        p = fmaf(p, r, EXP_P4);                                              \
        p = fmaf(p, r, EXP_P5);                                              \
        const float r2 = r * r;                                              \
        const float y = fmaf(p, r2, r) + 1.0f;                               \
        /* Unsigned: a NaN x gives a NaN y but a wild ki, and signed      \
         * overflow would be undefined (the vector lanes wrap).  */        \
        const uint32_t bits = ((uint32_t)ki - (uint32_t)sh + 127u) << 23;    \
        float sc;                                                            \
        memcpy(&sc, &bits, sizeof sc);                                       \
        return y * sc;                                                       \
    }                                                                        \
    static inline ATTR float NAME(silu)(float v)                                  \
    {                                                                        \
        return v / (1.0f + NAME(exp)(-v));                                   \
    }                                                                        \
    /* Outputs t in [t0, t1) of one row, taps from x or the context. */      \
    static inline ATTR void NAME(row_scalar)(const float *xr, const float *cx,\
                                        const float *w, float b, int64_t K,  \
                                        int64_t t0, int64_t t1, float *ur)   \
    {                                                                        \
        for (int64_t t = t0; t < t1; t++) {                                  \
            float acc = b;                                                   \
            for (int64_t j = 0; j < K; j++) {                                \
                const int64_t s = t - (K - 1) + j;                           \
                const float v = s >= 0 ? xr[s] : (cx ? cx[K + s] : 0.0f);    \
                acc = fmaf(w[j], v, acc);                                    \
            }                                                                \
            ur[t] = NAME(silu)(acc);                                         \
        }                                                                    \
    }

#define NAME(f) gen_##f
#define ATTR
SCALAR_BODY
#undef ATTR
#undef NAME

static void row_generic(const float *xr, const float *cx, const float *w,
                        float b, int64_t L, int64_t K, float *ur)
{
    gen_row_scalar(xr, cx, w, b, K, 0, L, ur);
}

#ifdef PF_X86
#define TGT_AVX2 __attribute__((target("avx2,fma")))
#define TGT_AVX512 __attribute__((target("avx512f,fma")))

/* The scalar code compiled for each ISA, so that fmaf is one instruction. */
#define NAME(f) avx2s_##f
#define ATTR TGT_AVX2
SCALAR_BODY
#undef ATTR
#undef NAME
#define NAME(f) avx512s_##f
#define ATTR TGT_AVX512
SCALAR_BODY
#undef ATTR
#undef NAME

static inline TGT_AVX2 __m256 silu_avx2(__m256 v)
{
    const __m256 shift = _mm256_set1_ps(EXP_SHIFT);
    __m256 x = _mm256_sub_ps(_mm256_setzero_ps(), v);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    const __m256 kf = _mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), shift);
    const __m256 k = _mm256_sub_ps(kf, shift);
    const __m256i ki = _mm256_sub_epi32(_mm256_castps_si256(kf), _mm256_castps_si256(shift));
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2HI), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(ki, _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline TGT_AVX512 __m512 silu_avx512(__m512 v)
{
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    __m512 x = _mm512_sub_ps(_mm512_setzero_ps(), v);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    const __m512 kf = _mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), shift);
    const __m512 k = _mm512_sub_ps(kf, shift);
    const __m512i ki = _mm512_sub_epi32(_mm512_castps_si512(kf), _mm512_castps_si512(shift));
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(EXP_LN2HI), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(EXP_LN2LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    const __m512 r2 = _mm512_mul_ps(r, r);
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(ki, _mm512_set1_epi32(127)), 23);
    const __m512 e = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* One row: the first K-1 outputs (they reach into the context) and the
 * tail scalar, the rest 8 or 16 tokens at a time, every tap one FMA. */
static TGT_AVX2 void row_avx2(const float *xr, const float *cx, const float *w,
                              float b, int64_t L, int64_t K, float *ur)
{
    const int64_t h = K - 1 < L ? K - 1 : L;
    avx2s_row_scalar(xr, cx, w, b, K, 0, h, ur);
    int64_t t = h;
    for (; t + 8 <= L; t += 8) {
        const float *src = xr + t - (K - 1);
        __m256 acc = _mm256_set1_ps(b);
        for (int64_t j = 0; j < K; j++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(src + j), acc);
        _mm256_storeu_ps(ur + t, silu_avx2(acc));
    }
    avx2s_row_scalar(xr, cx, w, b, K, t, L, ur);
}

static TGT_AVX512 void row_avx512(const float *xr, const float *cx, const float *w,
                                  float b, int64_t L, int64_t K, float *ur)
{
    const int64_t h = K - 1 < L ? K - 1 : L;
    avx512s_row_scalar(xr, cx, w, b, K, 0, h, ur);
    int64_t t = h;
    for (; t + 16 <= L; t += 16) {
        const float *src = xr + t - (K - 1);
        __m512 acc = _mm512_set1_ps(b);
        for (int64_t j = 0; j < K; j++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), _mm512_loadu_ps(src + j), acc);
        _mm512_storeu_ps(ur + t, silu_avx512(acc));
    }
    avx512s_row_scalar(xr, cx, w, b, K, t, L, ur);
}
#endif /* PF_X86 */

typedef void (*row_fn)(const float *, const float *, const float *, float,
                       int64_t, int64_t, float *);

/* isa: -1 the CPU's best, 0 plain C, 1 AVX2+FMA, 2 AVX-512F; NULL when
 * the forced one cannot run here. */
static row_fn pick_row(int isa)
{
    int has512 = 0, has2 = 0;
#ifdef PF_X86
    /* libgcc fills the CPU model in a constructor: race-free reads. */
    has512 = __builtin_cpu_supports("avx512f");
    has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if ((isa == -1 || isa == 2) && has512)
        return row_avx512;
    if ((isa == -1 || isa == 1) && has2)
        return row_avx2;
#endif
    if (isa == -1 || isa == 0)
        return row_generic;
    (void)has512; (void)has2;
    return NULL;
}

void ssmi_conv_silu_rows(int64_t rows, int64_t di, int64_t L, int64_t K,
                         const float *x, const float *ctx, const float *w,
                         const float *bias, float *u)
{
    (void)ssmi_conv_silu_rows_isa(-1, rows, di, L, K, x, ctx, w, bias, u);
}

int ssmi_conv_silu_rows_isa(int isa, int64_t rows, int64_t di, int64_t L,
                            int64_t K, const float *x, const float *ctx,
                            const float *w, const float *bias, float *u)
{
    const row_fn fn = pick_row(isa);
    if (!fn)
        return -1;
    #pragma omp parallel for schedule(static) if (rows * L > PF_PAR_MIN_CONV)
    for (int64_t i = 0; i < rows; i++) {
        const int64_t d = i % di;
        fn(x + i * L, ctx ? ctx + i * K : NULL, w + d * K, bias ? bias[d] : 0.0f, L, K,
           u + i * L);
    }
    return 0;
}

void ssmi_conv_state_keep(int64_t rows, int64_t L, int64_t K, const float *x,
                          const float *ctx, float *out)
{
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * L;
        const float *cx = ctx ? ctx + i * K : NULL;
        float *o = out + i * K;
        /* Position L + m of (window, row); ascending m reads ahead of the
         * writes when ctx == out. */
        for (int64_t m = 0; m < K; m++)
            o[m] = L + m >= K ? xr[L + m - K] : (cx ? cx[L + m] : 0.0f);
    }
}

void ssmi_rmsnorm_rows_fwd(int64_t rows, int64_t dm, const float *in,
                           float *out, const float *w, double eps)
{
    #pragma omp parallel for schedule(static) if (rows * dm > PF_PAR_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const float *v = in + i * dm;
        float *o = out + i * dm;
        /* Eight independent double accumulators (lane j mod 8), summed
         * pairwise in a fixed order: no serial dependence on one adder,
         * the same sum on every run. */
        double s[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        int64_t j = 0;
        for (; j + 8 <= dm; j += 8)
            for (int l = 0; l < 8; l++)
                s[l] += (double)v[j + l] * v[j + l];
        for (; j < dm; j++)
            s[j & 7] += (double)v[j] * v[j];
        const double ss = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        const float sc = (float)(1.0 / sqrt(ss / (double)dm + eps));
        for (j = 0; j < dm; j++)
            o[j] = (v[j] * sc) * w[j];
    }
}

void ssmi_ws_hint_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    /* The whole 2 MB pages inside [p, p + bytes).  A hint: on failure (no
     * THP, or "never") the pages stay 4 KB, nothing else changes. */
    const uintptr_t huge = (uintptr_t)2 << 20;
    const uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    const uintptr_t e = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (p && e > a)
        (void)madvise((void *)a, (size_t)(e - a), MADV_HUGEPAGE);
#else
    (void)p; (void)bytes;
#endif
}
