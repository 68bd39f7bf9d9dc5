/*
 * selective_bwd_vec.h -- the 16-lane vectors of the selective scan
 * backward's channel-vector kernels (selective_bwd_cv.h), one set per
 * instruction set, and the scalar exp and softplus of the backward.
 * Private to src/scan/selective_bwd.c.
 *
 * Every set has exactly 16 lanes: AVX-512 one __m512, AVX2 two __m256 (lo =
 * lanes 0-7, hi = lanes 8-15), portable C a struct of 16 floats.  The lanes
 * are 16 channels of one group.  Every operation is lane by lane and the same
 * IEEE operation in every set (explicit fma, no reassociation), and the one
 * reduction across lanes, the sum of 16 channels' terms of dB and dC, runs
 * the same tree in every set (hsum16: lanes k + k+8, then k + k+4, k + k+2,
 * k + k+1), so the three sets give the same bytes.
 *
 * exp is the forward's (scan_vmath.h, scan_expf and its vector twins):
 * Cody-Waite reduction, degree-6 minimax polynomial, 2^k in the exponent
 * bits; the vector ones are used as they are, the scalar ones are written
 * again below with selects so the portable loops vectorize (same bits).
 */
#ifndef SSM_SELECTIVE_BWD_VEC_H
#define SSM_SELECTIVE_BWD_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "scan_vmath.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SBV_X86 1
#endif

/* ------------------------------------------------------------- scalar --- */

/* c ? a : b by bit masks: GCC will not if-convert a select guarded by a
 * float comparison under -ftrapping-math (the default), which keeps the
 * loops around it scalar; the masks vectorize and give the same value. */
static inline float bwd_sel(int c, float a, float b)
{
    uint32_t ia, ib, r;
    const uint32_t m = 0u - (uint32_t)(c != 0);
    float y;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    r = (ia & m) | (ib & ~m);
    memcpy(&y, &r, sizeof y);
    return y;
}

/* scan_decayf of the forward (scan_vmath.h), with selects. */
static inline float bwd_decayf(float dt, float a2)
{
    const float xm = dt * a2;
    const float shift = EXP_SHIFT;
    const float kf = fmaf(dt, a2, shift);
    const float k = kf - shift;
    const float res = bwd_sel(xm < DEC_LO, 0.0f,
                              scan_decay_scale(scan_decay_poly(fmaf(dt, a2, -k)), kf));
    return bwd_sel(xm > DEC_HI, HUGE_VALF, res);
}

/* scan_expf of the forward, with selects: x < -88 gives 0, x > 88 +inf,
 * NaN NaN. */
static inline float bwd_expf(float x)
{
    const float xc = bwd_sel(EXP_LO > x, EXP_LO, x);
    const float shift = EXP_SHIFT;
    const float kf = fmaf(xc, EXP_LOG2E, shift);
    uint32_t kb, shb, sb;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const float k = kf - shift;
    float r = fmaf(-k, EXP_LN2HI, xc);
    r = fmaf(-k, EXP_LN2LO, r);
    float p = EXP_C6;
    p = fmaf(p, r, EXP_C5);
    p = fmaf(p, r, EXP_C4);
    p = fmaf(p, r, EXP_C3);
    p = fmaf(p, r, EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    sb = ((kb - shb) + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    const float res = p * scale;
    return bwd_sel(x > EXP_HI, HUGE_VALF, res);
}

/* The forward's softplus (scan_softplus) with the backward's exp: the
 * same operations, the same bits. */
static inline float bwd_softplus(float x) { return scan_softplus_t(x, bwd_expf(scan_nabs(x))); }

/* ------------------------------------------------ portable C, 16 lanes -- */

typedef struct { float v[16]; } sbv_g16;

static inline sbv_g16 g16_ld(const float *p)
{
    sbv_g16 r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}
static inline void g16_st(float *p, sbv_g16 a) { memcpy(p, a.v, sizeof a.v); }
static inline sbv_g16 g16_set(float x)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = x;
    return r;
}
#define SBV_G16_BIN(name, expr)                                              \
    static inline sbv_g16 name(sbv_g16 a, sbv_g16 b)                         \
    {                                                                        \
        sbv_g16 r;                                                           \
        for (int i = 0; i < 16; i++)                                         \
            r.v[i] = (expr);                                                 \
        return r;                                                            \
    }
SBV_G16_BIN(g16_mul, a.v[i] * b.v[i])
SBV_G16_BIN(g16_add, a.v[i] + b.v[i])
SBV_G16_BIN(g16_sub, a.v[i] - b.v[i])
SBV_G16_BIN(g16_div, a.v[i] / b.v[i])
#undef SBV_G16_BIN
static inline sbv_g16 g16_fma(sbv_g16 a, sbv_g16 b, sbv_g16 c)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = fmaf(a.v[i], b.v[i], c.v[i]);
    return r;
}
static inline sbv_g16 g16_exp(sbv_g16 a)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = bwd_expf(a.v[i]);
    return r;
}
static inline sbv_g16 g16_decay(sbv_g16 dt, sbv_g16 a2)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = bwd_decayf(dt.v[i], a2.v[i]);
    return r;
}
static inline sbv_g16 g16_softplus(sbv_g16 a)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = bwd_softplus(a.v[i]);
    return r;
}
/* x > y ? a : b, lane by lane. */
static inline sbv_g16 g16_gtsel(sbv_g16 x, sbv_g16 y, sbv_g16 a, sbv_g16 b)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++)
        r.v[i] = bwd_sel(x.v[i] > y.v[i], a.v[i], b.v[i]);
    return r;
}
/* Lane i of the result: the 16 lanes of v[i] summed in the tree of every
 * set: k + k+8 (k < 8), then k + k+4, k + k+2, k + k+1. */
static inline sbv_g16 g16_hsum16(const sbv_g16 *v)
{
    sbv_g16 r;
    for (int i = 0; i < 16; i++) {
        float w[16];
        memcpy(w, v[i].v, sizeof w);
        for (int h = 8; h >= 1; h /= 2)
            for (int k = 0; k < h; k++)
                w[k] = w[k] + w[k + h];
        r.v[i] = w[0];
    }
    return r;
}

#ifdef SBV_X86
#define SBV_TGT_AVX2 __attribute__((target("avx2,fma")))
#define SBV_TGT_AVX512 __attribute__((target("avx512f")))

/* ------------------------------------------------------- AVX2, 2 x 8 --- */

typedef struct { __m256 lo, hi; } sbv_a16;

static inline SBV_TGT_AVX2 sbv_a16 a16_ld(const float *p)
{
    sbv_a16 r = { _mm256_loadu_ps(p), _mm256_loadu_ps(p + 8) };
    return r;
}
static inline SBV_TGT_AVX2 void a16_st(float *p, sbv_a16 a)
{
    _mm256_storeu_ps(p, a.lo);
    _mm256_storeu_ps(p + 8, a.hi);
}
static inline SBV_TGT_AVX2 sbv_a16 a16_set(float x)
{
    sbv_a16 r = { _mm256_set1_ps(x), _mm256_set1_ps(x) };
    return r;
}
#define SBV_A16_BIN(name, op)                                                \
    static inline SBV_TGT_AVX2 sbv_a16 name(sbv_a16 a, sbv_a16 b)            \
    {                                                                        \
        sbv_a16 r = { op(a.lo, b.lo), op(a.hi, b.hi) };                      \
        return r;                                                            \
    }
SBV_A16_BIN(a16_mul, _mm256_mul_ps)
SBV_A16_BIN(a16_add, _mm256_add_ps)
SBV_A16_BIN(a16_sub, _mm256_sub_ps)
SBV_A16_BIN(a16_div, _mm256_div_ps)
#undef SBV_A16_BIN
static inline SBV_TGT_AVX2 sbv_a16 a16_fma(sbv_a16 a, sbv_a16 b, sbv_a16 c)
{
    sbv_a16 r = { _mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_exp(sbv_a16 a)
{
    sbv_a16 r = { vexp_avx2(a.lo), vexp_avx2(a.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_decay(sbv_a16 d, sbv_a16 a)
{
    sbv_a16 r = { vdecay_avx2(d.lo, a.lo), vdecay_avx2(d.hi, a.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_decayn(sbv_a16 d, sbv_a16 a)
{
    sbv_a16 r = { vdecayn_avx2(d.lo, a.lo), vdecayn_avx2(d.hi, a.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_decayr(sbv_a16 d, sbv_a16 a)
{
    sbv_a16 r = { vdecayr_avx2(d.lo, a.lo), vdecayr_avx2(d.hi, a.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_softplus(sbv_a16 a)
{
    sbv_a16 r = { vsoftplus_avx2(a.lo), vsoftplus_avx2(a.hi) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_gtsel(sbv_a16 x, sbv_a16 y, sbv_a16 a, sbv_a16 b)
{
    sbv_a16 r = { _mm256_blendv_ps(b.lo, a.lo, _mm256_cmp_ps(x.lo, y.lo, _CMP_GT_OQ)),
                  _mm256_blendv_ps(b.hi, a.hi, _mm256_cmp_ps(x.hi, y.hi, _CMP_GT_OQ)) };
    return r;
}
static inline SBV_TGT_AVX2 sbv_a16 a16_hsum16(const sbv_a16 *v)
{
    __m256 x[16];
    for (int i = 0; i < 16; i++)
        x[i] = _mm256_add_ps(v[i].lo, v[i].hi);   /* k + k+8 */
    sbv_a16 r = { vhsum8x8_avx2(x), vhsum8x8_avx2(x + 8) };
    return r;
}

/* ----------------------------------------------------------- AVX-512 --- */

static inline SBV_TGT_AVX512 __m512 sbv_gtsel_avx512(__m512 x, __m512 y, __m512 a, __m512 b)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, y, _CMP_GT_OQ), b, a);
}

#endif /* SBV_X86 */

#endif /* SSM_SELECTIVE_BWD_VEC_H */
