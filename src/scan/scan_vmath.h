/*
 * scan_vmath.h -- the selective scan's exp and softplus: scalar (scan_expf,
 * scan_softplus) and their AVX2 / AVX-512 twins, operation for operation, so
 * every instruction set gives the same bits.  Shared by the forward
 * (selective.c) and the backward (selective_bwd_vec.h) so the two use one
 * definition; with the transposes and the 16-vector horizontal sum, which
 * the decoding step's kernels (src/layers/mamba_step.c, gemv.c) share too.
 * Private to libssm.
 */
#ifndef SSM_SCAN_VMATH_H
#define SSM_SCAN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- exp --- */

/* Constants of the exp.  ln2 = LN2HI + LN2LO with LN2HI = 355/512 (9 bits,
 * so k * LN2HI is exact for |k| <= 2^15); the shifter 1.5 * 2^23 rounds
 * x log2(e) to the nearest integer in the last place. */
#define EXP_LOG2E   1.44269504088896341f
#define EXP_SHIFT   12582912.0f
#define EXP_LN2HI   0.693359375f
#define EXP_LN2LO  -2.12194440e-4f
#define EXP_LO     -88.0f
#define EXP_HI      88.0f
/* bits(EXP_SHIFT) - 127: see vexpn_avx2. */
#define EXP_SHIFT_BITS_M127 (0x4B400000u - 127u)
/* e^r ~ 1 + r + r^2 (C2 + C3 r + ... + C6 r^4) on |r| <= ln2/2: the
 * minimax polynomial for the relative error (Remez exchange in long double,
 * bench/tools/exp_minimax.c), coefficients rounded to float.  Its
 * truncation is 3.1e-9 relative (0.03 ulp), below the degree-7 Taylor
 * polynomial's 5.2e-9 with one fma less per exp; measured over 2^23
 * arguments the float form is within 0.90 ulp (Taylor 7: 0.94). */
#define EXP_C2 4.999999345e-01f
#define EXP_C3 1.666652069e-01f
#define EXP_C4 4.166838736e-02f
#define EXP_C5 8.368709823e-03f
#define EXP_C6 1.381461318e-03f

static inline float scan_expf(float x)
{
    /* Clamp below with a comparison so NaN passes through (as MAXPS(lo, x)).
     * No clamp above: every x > EXP_HI is replaced by +inf at the end, and
     * the integer arithmetic on the garbage k of such lanes is unsigned. */
    const float xc = EXP_LO > x ? EXP_LO : x;
    const float kf = fmaf(xc, EXP_LOG2E, EXP_SHIFT);
    uint32_t kb, sb;
    const float shift = EXP_SHIFT;
    uint32_t shb;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const float k = kf - EXP_SHIFT;
    float r = fmaf(-k, EXP_LN2HI, xc);
    r = fmaf(-k, EXP_LN2LO, r);
    float p = EXP_C6;
    p = fmaf(p, r, EXP_C5);
    p = fmaf(p, r, EXP_C4);
    p = fmaf(p, r, EXP_C3);
    p = fmaf(p, r, EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    /* k in [-127, 127] for x in [-88, 88]: biased exponent k + 127 in
     * [0, 254]; 0 makes the scale 0, i.e. exp(x) = 0 below about -87.7. */
    sb = ((kb - shb) + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    float res = p * scale;
    if (x > EXP_HI)
        res = HUGE_VALF;
    return res;
}

/* ------------------------------------------------------------- decay --- */

/* The decay exp(dt A) of the selective scan (Mamba eq. 4, ZOH of A) in
 * base 2: with a2 = A log2(e) rounded to float once (scan_a2),
 *   k = round(dt a2), r = dt a2 - k (one fma: the product is not rounded),
 *   exp(dt A) ~ 2^r 2^k, 2^r = p(r ln2) on |r| <= 1/2,
 * p the minimax polynomial of scan_expf with its coefficients times
 * ln2^i.  Against scan_expf(dt * A) this saves the product's rounding and
 * a step of the Cody-Waite reduction: two operations of the FMA pipes per
 * state update (14 -> 12 with the update and the output), and the same
 * error bound, |dt A| 2^-24 relative from the rounding of a2 (that of
 * dt A before) plus 0.9 ulp of the polynomial and its Horner steps.
 * Defined for every dt, a2 alike in every instruction set:
 *   xm = dt a2 rounded; xm < -160: 0; xm > 130: +inf; NaN: NaN;
 *   else p 2^k rounded once (IEEE, subnormal results included).
 * scan_decayf scales in two exact steps, 2^k1 then 2^k2 (k1 = k >> 1), so
 * that p 2^k is rounded once wherever it lands, as VSCALEFPS does. */
#define DEC_D6 1.532115421e-04f
#define DEC_D5 1.339016133e-03f
#define DEC_D4 9.618526325e-03f
#define DEC_D3 5.550362542e-02f
#define DEC_D2 2.402264774e-01f
#define DEC_D1 6.931471825e-01f
/* The tiles whose max |dt| max |A| is at most DEC_RNG take the decay
 * without range steps (mode 2 below): |dt a2| <= 125.5, k >= -126. */
#define DEC_RNG 87.0f
#define DEC_LO -160.0f
/* log2(e) = DEC_L2E_HI + DEC_L2E_LO: scan_a2(A) = A log2(e) rounded once
 * (but for ties within 2^-48), |a2 - A log2 e| <= ulp(a2) / 2. */
#define DEC_L2E_HI 1.44269502162933349609375f
#define DEC_L2E_LO 1.925963034e-08f
#define DEC_HI  130.0f

static inline float scan_a2(float A) { return fmaf(A, DEC_L2E_HI, A * DEC_L2E_LO); }

static inline float scan_decay_poly(float r)
{
    float p = DEC_D6;
    p = fmaf(p, r, DEC_D5);
    p = fmaf(p, r, DEC_D4);
    p = fmaf(p, r, DEC_D3);
    p = fmaf(p, r, DEC_D2);
    p = fmaf(p, r, DEC_D1);
    return fmaf(p, r, 1.0f);
}

/* p 2^k, k = kf - EXP_SHIFT, in two exact steps (k1 = k >> 1 then the
 * rest): rounded once for every k in [-252, 254]. */
static inline float scan_decay_scale(float p, float kf)
{
    uint32_t kb, shb;
    const float shift = EXP_SHIFT;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    /* k as an integer (|k| < 2^22 wherever it is used), halved. */
    const int32_t ki = (int32_t)(kb - shb), k1 = ki >> 1, k2 = ki - k1;
    const uint32_t s1b = ((uint32_t)k1 + 127u) << 23, s2b = ((uint32_t)k2 + 127u) << 23;
    float s1, s2;
    memcpy(&s1, &s1b, sizeof s1);
    memcpy(&s2, &s2b, sizeof s2);
    return (p * s1) * s2;
}

static inline float scan_decayf(float dt, float a2)
{
    const float xm = dt * a2;
    const float kf = fmaf(dt, a2, EXP_SHIFT);
    const float k = kf - EXP_SHIFT;
    float res = scan_decay_scale(scan_decay_poly(fmaf(dt, a2, -k)), kf);
    if (xm < DEC_LO)
        res = 0.0f;
    if (xm > DEC_HI)
        res = HUGE_VALF;
    return res;
}

/* Mamba's softplus, log1p(exp(x)) for x <= 20 and x above (the threshold of
 * selective_scan_fwd_kernel), without a division:
 *   softplus(x) = max(x, 0) + log1p(t),  t = exp(-|x|) in (0, 1],
 *   log1p(t) ~ t + t^2 q(t): q the degree-8 minimax polynomial for the
 *   relative error on (0, 1] (Remez exchange in long double,
 *   bench/tools/softplus_minimax.c), 5.1e-9 relative (0.04 ulp).
 * Above 20 the sum is x exactly (log1p(t) < 2.1e-9, under half an ulp of
 * x), so the threshold needs no test; +inf gives +inf, NaN NaN (max(NaN,
 * 0) is 0, the NaN comes through t), and below -88 t is the exp's flushed
 * value, as exp(x) was before.  Measured over 2^23 arguments against
 * log1p(exp(x)) in double: within 1.56 ulp on [-87, 0], 1.78 on [0, 20];
 * the former log(1 + e) e / ((1 + e) - 1) (two divisions) was within 3.6
 * and 2.6 ulp.  The loop that computes dt took 14% of the scan's time on
 * Zen 4 with it, 8% with this form (perf; docs/scan-speed.md).  -|x| is x
 * with the sign bit set, as the vector forms do it. */
#define SP_Q0 -4.999993276e-01f
#define SP_Q1 3.333051133e-01f
#define SP_Q2 -2.495858751e-01f
#define SP_Q3 1.969540093e-01f
#define SP_Q4 -1.535539738e-01f
#define SP_Q5 1.068055730e-01f
#define SP_Q6 -5.766446165e-02f
#define SP_Q7 2.020459415e-02f
#define SP_Q8 -3.318474585e-03f

/* -|x|: x with the sign bit set (the vector forms OR it in). */
static inline float scan_nabs(float x)
{
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    xb |= 0x80000000u;
    float y;
    memcpy(&y, &xb, sizeof y);
    return y;
}

/* max(x, 0) + log1p(t) given t = exp(-|x|) (the backward's bwd_softplus
 * passes its own exp's t). */
static inline float scan_softplus_t(float x, float t)
{
    float q = SP_Q8;
    q = fmaf(q, t, SP_Q7);
    q = fmaf(q, t, SP_Q6);
    q = fmaf(q, t, SP_Q5);
    q = fmaf(q, t, SP_Q4);
    q = fmaf(q, t, SP_Q3);
    q = fmaf(q, t, SP_Q2);
    q = fmaf(q, t, SP_Q1);
    q = fmaf(q, t, SP_Q0);
    const float lp = fmaf(t * t, q, t);
    return (x > 0.0f ? x : 0.0f) + lp;
}

static inline float scan_softplus(float x) { return scan_softplus_t(x, scan_expf(scan_nabs(x))); }


#if defined(__x86_64__) || defined(__i386__)
#define TGT_AVX2 __attribute__((target("avx2,fma")))
#define TGT_AVX512 __attribute__((target("avx512f")))

/* vexp_avx2 (below) without its last step (x > 88 gives +inf): the same bits
 * wherever x <= 88 or x is NaN. */
static inline TGT_AVX2 __m256 vexpn_avx2(__m256 x)
{
    const __m256 shift = _mm256_set1_ps(EXP_SHIFT);
    /* NaN -> x */
    const __m256 xc = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
    const __m256 kf = _mm256_fmadd_ps(xc, _mm256_set1_ps(EXP_LOG2E), shift);
    const __m256 k = _mm256_sub_ps(kf, shift);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2HI), xc);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2LO), r);
    __m256 p = _mm256_set1_ps(EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^k: bits(kf) - bits(shift) = k, plus the bias 127, in one
     * subtraction (mod 2^32, as scan_expf's unsigned arithmetic). */
    const __m256i sb = _mm256_slli_epi32(
        _mm256_sub_epi32(_mm256_castps_si256(kf), _mm256_set1_epi32((int)EXP_SHIFT_BITS_M127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(sb));
}

/* scan_expf on 8 lanes, operation for operation. */
static inline TGT_AVX2 __m256 vexp_avx2(__m256 x)
{
    const __m256 res = vexpn_avx2(x);
    const __m256 big = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_HI), _CMP_GT_OQ);
    return _mm256_blendv_ps(res, _mm256_set1_ps(HUGE_VALF), big);
}

/* scan_decayf on 8 lanes.  vdecayc_avx2(MODE): MODE 0 everything
 * (scan_decayf operation for operation); 1 where dt a2 <= 0 or NaN (no
 * overflow step); 2 where moreover |dt a2| <= 125.5 (|dt| |A| <= 87), so
 * that k >= -126, 2^k is a normal float and one scaling gives the same
 * bits as two (no range steps either). */
static inline __attribute__((always_inline)) TGT_AVX2 __m256
vdecayc_avx2(const int MODE, __m256 dt, __m256 a2)
{
    const __m256 shift = _mm256_set1_ps(EXP_SHIFT);
    const __m256 kf = _mm256_fmadd_ps(dt, a2, shift);
    const __m256 k = _mm256_sub_ps(kf, shift);
    const __m256 r = _mm256_fmsub_ps(dt, a2, k);
    __m256 p = _mm256_set1_ps(DEC_D6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DEC_D5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DEC_D4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DEC_D3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DEC_D2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DEC_D1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ki = _mm256_sub_epi32(_mm256_castps_si256(kf), _mm256_castps_si256(shift));
    const __m256i b127 = _mm256_set1_epi32(127);
    if (MODE == 2)
        return _mm256_mul_ps(p, _mm256_castsi256_ps(
                                    _mm256_slli_epi32(_mm256_add_epi32(ki, b127), 23)));
    const __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, b127), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, b127), 23));
    __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    const __m256 xm = _mm256_mul_ps(dt, a2);
    res = _mm256_blendv_ps(res, _mm256_setzero_ps(),
                           _mm256_cmp_ps(xm, _mm256_set1_ps(DEC_LO), _CMP_LT_OQ));
    if (MODE == 0)
        res = _mm256_blendv_ps(res, _mm256_set1_ps(HUGE_VALF),
                               _mm256_cmp_ps(xm, _mm256_set1_ps(DEC_HI), _CMP_GT_OQ));
    return res;
}
static inline TGT_AVX2 __m256 va2_avx2(__m256 a)   /* scan_a2 */
{
    return _mm256_fmadd_ps(a, _mm256_set1_ps(DEC_L2E_HI), _mm256_mul_ps(a, _mm256_set1_ps(DEC_L2E_LO)));
}
static inline TGT_AVX2 __m256 vdecay_avx2(__m256 dt, __m256 a2) { return vdecayc_avx2(0, dt, a2); }
static inline TGT_AVX2 __m256 vdecayn_avx2(__m256 dt, __m256 a2) { return vdecayc_avx2(1, dt, a2); }
static inline TGT_AVX2 __m256 vdecayr_avx2(__m256 dt, __m256 a2) { return vdecayc_avx2(2, dt, a2); }

/* scan_softplus on 8 lanes, operation for operation. */
static inline TGT_AVX2 __m256 vsoftplus_avx2(__m256 x)
{
    const __m256 nax = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_castps_si256(x), _mm256_set1_epi32((int)0x80000000u)));
    /* nax <= 0 or NaN: the exp's last step (+inf above 88) cannot apply */
    const __m256 t = vexpn_avx2(nax);
    __m256 q = _mm256_set1_ps(SP_Q8);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q7));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q6));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q5));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q4));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q3));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q2));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q1));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(SP_Q0));
    const __m256 lp = _mm256_fmadd_ps(_mm256_mul_ps(t, t), q, t);
    /* MAXPS(x, 0) is 0 for NaN x, as the scalar form's comparison */
    return _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), lp);
}

/* vexp_avx512 without its last step: see vexpn_avx2. */
static inline TGT_AVX512 __m512 vexpn_avx512(__m512 x)
{
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    /* NaN -> x */
    const __m512 xc = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);
    const __m512 kf = _mm512_fmadd_ps(xc, _mm512_set1_ps(EXP_LOG2E), shift);
    const __m512 k = _mm512_sub_ps(kf, shift);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(EXP_LN2HI), xc);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(EXP_LN2LO), r);
    __m512 p = _mm512_set1_ps(EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* 2^k: bits(kf) - bits(shift) = k, plus the bias 127, in one
     * subtraction (mod 2^32, as scan_expf's unsigned arithmetic). */
    const __m512i sb = _mm512_slli_epi32(
        _mm512_sub_epi32(_mm512_castps_si512(kf), _mm512_set1_epi32((int)EXP_SHIFT_BITS_M127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(sb));
}

static inline TGT_AVX512 __m512 vexp_avx512(__m512 x)
{
    const __m512 res = vexpn_avx512(x);
    const __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_HI), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(big, res, _mm512_set1_ps(HUGE_VALF));
}

/* scan_decayf on 16 lanes (modes as vdecayc_avx2).  VSCALEFPS rounds
 * p 2^k once for every k, as the two scalings of scan_decayf do: one
 * instruction instead of integer arithmetic and two products. */
static inline __attribute__((always_inline)) TGT_AVX512 __m512
vdecayc_avx512(const int MODE, __m512 dt, __m512 a2)
{
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    const __m512 kf = _mm512_fmadd_ps(dt, a2, shift);
    const __m512 k = _mm512_sub_ps(kf, shift);
    const __m512 r = _mm512_fmsub_ps(dt, a2, k);
    __m512 p = _mm512_set1_ps(DEC_D6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DEC_D5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DEC_D4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DEC_D3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DEC_D2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DEC_D1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 res = _mm512_scalef_ps(p, k);
    if (MODE == 2)
        return res;
    const __m512 xm = _mm512_mul_ps(dt, a2);
    res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xm, _mm512_set1_ps(DEC_LO), _CMP_LT_OQ),
                               res, _mm512_setzero_ps());
    if (MODE == 0)
        res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xm, _mm512_set1_ps(DEC_HI), _CMP_GT_OQ),
                                   res, _mm512_set1_ps(HUGE_VALF));
    return res;
}
static inline TGT_AVX512 __m512 va2_avx512(__m512 a)   /* scan_a2 */
{
    return _mm512_fmadd_ps(a, _mm512_set1_ps(DEC_L2E_HI), _mm512_mul_ps(a, _mm512_set1_ps(DEC_L2E_LO)));
}
static inline TGT_AVX512 __m512 vdecay_avx512(__m512 dt, __m512 a2) { return vdecayc_avx512(0, dt, a2); }
static inline TGT_AVX512 __m512 vdecayn_avx512(__m512 dt, __m512 a2) { return vdecayc_avx512(1, dt, a2); }
static inline TGT_AVX512 __m512 vdecayr_avx512(__m512 dt, __m512 a2) { return vdecayc_avx512(2, dt, a2); }

static inline TGT_AVX512 __m512 vsoftplus_avx512(__m512 x)
{
    const __m512 nax = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
    const __m512 t = vexpn_avx512(nax);   /* as vsoftplus_avx2 */
    __m512 q = _mm512_set1_ps(SP_Q8);
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q7));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q6));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q5));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q4));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q3));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q2));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q1));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(SP_Q0));
    const __m512 lp = _mm512_fmadd_ps(_mm512_mul_ps(t, t), q, t);
    return _mm512_add_ps(_mm512_max_ps(x, _mm512_setzero_ps()), lp);
}

/* The transposes between channel-major rows and lane-major tiles (the
 * forward's and the backward's gathers and scatters). */
/* dst[i*ds + j] = src[j*ss + i], i, j < 8. */
static inline TGT_AVX2 void vtranspose8_avx2(const float *src, int64_t ss,
                                             float *dst, int64_t ds)
{
    __m256 r[8], t[8], q[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * ss);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        q[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        q[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        q[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        q[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ds, _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ds, _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
    }
}

/* dst[i*ds + j] = src[j*ss + i], i, j < 16: unpacks within 128-bit
 * lanes (4 x 4 blocks), then two rounds of 128-bit lane shuffles; 64
 * shuffles and 16 loads and stores where four AVX2 8 x 8 transposes take
 * 96 and 32. */
static inline TGT_AVX512 void vtranspose16_avx512(const float *src, int64_t ss,
                                                  float *dst, int64_t ds)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * ss);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* r[4b + j], 128-bit lane k: rows 4b..4b+3 of column 4k + j */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_ps(dst + i * ds, r[i]);
}

/* Lane i of the result = the lanes of v[i] summed k + k+4, then k + k+2,
 * then k + k+1 (the 16-lane tree below after its lo + hi step), bit for
 * bit, for 8 vectors at once.  After the three rounds input p lands in
 * lane (p >> 1) + 4 (p & 1), so the inputs are taken in that order. */
static inline TGT_AVX2 __m256 vhsum8x8_avx2(const __m256 *in)
{
    __m256 x[8], b[4], c[2];
    for (int p = 0; p < 8; p++)
        x[p] = in[(p >> 1) + 4 * (p & 1)];
    for (int p = 0; p < 4; p++)
        b[p] = _mm256_add_ps(_mm256_permute2f128_ps(x[2 * p], x[2 * p + 1], 0x20),
                             _mm256_permute2f128_ps(x[2 * p], x[2 * p + 1], 0x31));
    for (int r = 0; r < 2; r++)
        c[r] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * r], b[2 * r + 1], 0x44),
                             _mm256_shuffle_ps(b[2 * r], b[2 * r + 1], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88),
                         _mm256_shuffle_ps(c[0], c[1], 0xDD));
}

/* The 16 lanes of v summed (q, q+8), then (q, q+4), (q, q+2), (q, q+1):
 * the one tree every 16-lane sum of libssm uses (gemv.h's promise, the
 * scans' and the steps' outputs), so that vhsum16x16_avx512 below and any
 * path that sums one vector give the same bits. */
static inline TGT_AVX512 float vhsum16_avx512(__m512 v)
{
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Lane i of the result = the lanes of v[i] summed k + k+8, then k + k+4,
 * k + k+2, k + k+1 (the tree of a single-vector horizontal sum), bit for
 * bit, for 16 vectors at once by pairing them with shuffles: 15 adds and
 * 30 shuffles instead of 16 x 4 dependent shuffle-adds and the scalar
 * stores.  After the four rounds lane 4b+j holds the sum of input 4j+b,
 * so the inputs are taken in that transposed order. */
static inline TGT_AVX512 __m512 vhsum16x16_avx512(const __m512 *v)
{
    __m512 b[8], c[4], d[2];
    for (int p = 0; p < 8; p++) {
        /* inputs 2p, 2p+1 of the transposed order */
        const __m512 x = v[4 * ((2 * p) % 4) + (2 * p) / 4];
        const __m512 y = v[4 * ((2 * p + 1) % 4) + (2 * p + 1) / 4];
        b[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44),
                             _mm512_shuffle_f32x4(x, y, 0xEE));
    }
    for (int r = 0; r < 4; r++)
        c[r] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * r], b[2 * r + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * r], b[2 * r + 1], 0xDD));
    for (int m = 0; m < 2; m++)
        d[m] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * m], c[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(c[2 * m], c[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif /* x86 */

#endif /* SSM_SCAN_VMATH_H */
