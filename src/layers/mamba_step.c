/*
 * mamba_step.c -- the non-GEMV work of a Mamba-1 decoding step, one token
 * per sequence (Gu and Dao 2023, algorithm 2 with L = 1; mamba_ssm's
 * Mamba.step), for ssm_mamba_step / ssm_mamba_stack_step:
 *
 *   conv:  window <- (window[1:], x);  u = silu(b + sum_j w_j window_j)
 *   scan:  dt = softplus(delta + dt_bias)   (x > 20 passes through)
 *          h  = exp(dt A) h + (dt u) B,     y = (C . h + D u) silu(z)
 *
 * Why not ssm_selective_step: its kernels are built for long sequences
 * (16-step tiles, transposes), so one token costs ~50 ns a channel with
 * three scalar libm calls (softplus, silu); here the transcendental
 * functions are branch-free polynomials over whole rows of channels and
 * the 16 states of a channel are one vector, ~5x less work per channel.
 *
 * The decay exp(dt A) is the scan's (scan_decayf of scan/scan_vmath.h: in
 * base 2 with a2 = A log2(e) rounded once, 0.9 ulp + |dt A| 2^-24
 * relative), and the update and the C sum are fused multiply-adds: 20
 * vector operations a channel of 16 states instead of 32 with the Cephes
 * exp below (batch 8, 24 layers, 1 thread on Zen 4: the scan's share of
 * the step 13.7% -> 11.2-11.7%).  a2 comes from a table made when A is
 * (ssmi_mamba_step_a2), and a token's 16 channels whose dt max|A| are
 * all <= 87 (the usual case: dt ~ 1e-3..1e-1, |A| ~ 1..16) skip the
 * decay's range steps, which cannot change a bit there: 13 operations
 * a channel.  In the step (24 layers, batch 8, 1 thread, Zen 4) the scan
 * went 2.95-3.13 -> 2.71-2.94 ms only: at that batch its 786 KiB of
 * states a layer stream from memory, so it is bound by their reads and
 * write-backs as much as by its arithmetic.  softplus is the scan's too
 * (scan_softplus and its vector forms: max(x, 0) + log1p(exp(-|x|)), no
 * division, <= 1.8 ulp), so the step's dt is the sequence scan's dt bit for
 * bit (it was Cephes' logf on 1 + e with Goldberg's correction, a
 * division, <= 2 ulp).  silu keeps exp_p: Cephes' expf (range reduction
 * by ln 2 in two parts, degree-6 polynomial), relative error <= 2 ulp on
 * [-87.3, 88.3], inputs clamped there (below: ~1e-38 instead of 0,
 * harmless in silu).  Written as plain loops over fixed-length lane
 * arrays and compiled three times (generic, AVX2+FMA, AVX-512F): without
 * contraction (ISO C mode, FP_CONTRACT OFF) and with every fma explicit
 * (fmaf, the scan's vector decay forms), every clone performs the same
 * operations, so all three give the same bits.  One writer per output,
 * fixed order: the same bits for any thread count.  No allocation.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "layers/mamba_step.h"
#include "scan/scan_vmath.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STEP_X86 1
#endif

/* Channels below which one OpenMP region costs more than it saves. */
#define PAR_MIN_ROWS 4096

static inline float as_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float exp_p(float x)
{
    x = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    /* n = nearest integer to x / ln 2, by the 1.5 * 2^23 trick */
    const float t = x * 1.44269504088896341f + 12582912.0f;
    const float n = t - 12582912.0f;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* A NaN x leaves p NaN; converting a NaN n to int would be undefined
     * (the vector lanes give INT_MIN), so take 0 there: the result is NaN. */
    const int32_t ni = n == n ? (int32_t)n : 0;
    return p * as_f((uint32_t)(ni + 127) << 23);
}

static inline float silu_p(float x)
{
    return x / (1.0f + exp_p(-x));
}

/* ---- the three clones ---- */

#define CONV_BODY                                                            \
    for (int64_t i = i0; i < i1; i++) {                                      \
        const int64_t d = i % di;                                            \
        float *win = conv + i * k;                                           \
        for (int64_t j = 0; j + 1 < k; j++) win[j] = win[j + 1];             \
        win[k - 1] = x[i];                                                   \
        float acc = cb ? cb[d] : 0.0f;                                       \
        for (int64_t j = 0; j < k; j++) acc += cw[d * k + j] * win[j];       \
        u[i] = acc;                                                          \
    }                                                                        \
    for (int64_t i = i0; i < i1; i++) u[i] = silu_p(u[i]);

#define CONV_ARGS int64_t i0, int64_t i1, int64_t di, int64_t k, float *conv, \
    const float *x, const float *cw, const float *cb, float *u

/* Pass 1 over rows: dt into dtv, silu(z) into g (rows of one token at a
 * time, so that the loops over channels vectorize); pass 2: per row, the
 * n states in 16 lanes (scan_rows, or scan_rows16 below for AVX-512). */
#define SCAN_PASS1                                                           \
    for (int64_t i = i0; i < i1;) {                                          \
        const int64_t d0 = i % di, cnt = i1 - i < di - d0 ? i1 - i : di - d0; \
        const float *dl = delta + i, *bs = bias ? bias + d0 : NULL;          \
        float *dv = dtv + i, *gv = g + i;                                    \
        if (bs)                                                              \
            for (int64_t c = 0; c < cnt; c++) dv[c] = scan_softplus(dl[c] + bs[c]); \
        else                                                                 \
            for (int64_t c = 0; c < cnt; c++) dv[c] = scan_softplus(dl[c]);     \
        if (z) {                                                             \
            const float *zz = z + i;                                         \
            for (int64_t c = 0; c < cnt; c++) gv[c] = silu_p(zz[c]);         \
        } else {                                                             \
            for (int64_t c = 0; c < cnt; c++) gv[c] = 1.0f;                  \
        }                                                                    \
        i += cnt;                                                            \
    }
#define SCAN_BODY                                                            \
    SCAN_PASS1                                                               \
    for (int64_t i = i0; i < i1; i++) {                                      \
        const int64_t b = i / di, d = i % di;                                \
        const float dt = dtv[i], dtu = dt * u[i];                            \
        float *hh = h + i * n;                                               \
        const float *a = A2 + d * n, *bb = Bm + b * ldbc, *cc = Cm + b * ldbc; \
        float acc[16] = { 0 };                                               \
        int64_t s0 = 0;                                                      \
        for (; s0 + 16 <= n; s0 += 16)                                       \
            for (int q = 0; q < 16; q++) {                                   \
                const float hv = fmaf(scan_decayf(dt, a[s0 + q]), hh[s0 + q], \
                                      dtu * bb[s0 + q]);                     \
                hh[s0 + q] = hv;                                             \
                acc[q] = fmaf(cc[s0 + q], hv, acc[q]);                       \
            }                                                                \
        for (int q = 0; s0 + q < n; q++) {                                   \
            const float hv = fmaf(scan_decayf(dt, a[s0 + q]), hh[s0 + q],   \
                                  dtu * bb[s0 + q]);                         \
            hh[s0 + q] = hv;                                                 \
            acc[q] = fmaf(cc[s0 + q], hv, acc[q]);                           \
        }                                                                    \
        for (int w = 8; w >= 1; w /= 2)                                      \
            for (int q = 0; q < w; q++) acc[q] += acc[q + w];                \
        y[i] = (acc[0] + (D ? D[d] * u[i] : 0.0f)) * g[i];                   \
    }

#define SCAN_ARGS int64_t i0, int64_t i1, int64_t di, int64_t n, float *h,   \
    const float *u, const float *delta, const float *A2, const float *amax,  \
    const float *Bm,                                                         \
    const float *Cm, int64_t ldbc, const float *D, const float *z,           \
    const float *bias, float *dtv, float *g, float *y

static void conv_gen(CONV_ARGS) { CONV_BODY }
static void scan_gen(SCAN_ARGS) { (void)amax; SCAN_BODY }
#ifdef STEP_X86
#include <immintrin.h>
#define T512 __attribute__((target("avx512f,fma")))
/* exp_p on 16 lanes: the same operations in the same order (no FMA), so
 * the same bits as the scalar code (silu). */
static T512 inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    const __m512 mg = _mm512_set1_ps(12582912.0f);
    const __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), mg);
    const __m512 n = _mm512_sub_ps(t, mg);
    const __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f))),
                                   _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}
/* silu_p on 16 lanes, operation for operation. */
static T512 inline __m512 silu16(__m512 x)
{
    const __m512 nx = _mm512_sub_ps(_mm512_setzero_ps(), x);
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(nx)));
}
/* The conv step for K = 4 (Mamba's d_conv), 16 channels of one token at a
 * time: each row's window [4] sits in a quarter of a vector, so one
 * two-source permute shifts four windows and appends their new inputs;
 * the products are transposed to tap-major (three shuffles a tap) and
 * summed bias first, taps in order, as CONV_BODY; silu16 is silu_p lane
 * for lane.  Same bits as the scalar rows, ~8x fewer instructions (the
 * scalar loop was ~7% of a batch-8 step). */
/* 16 rows (full) or the first nr of them in masked lanes; full is a
 * constant at each call, so the full pass has no masks (masked loads and
 * stores on every pass made the whole-block case 1.4-1.6x slower, Zen 4). */
static T512 inline __attribute__((always_inline)) void
conv16_avx512(const int full, int64_t nr, const __m512i ish, const __m512i itap,
              float *win, const float *x, const float *w, const float *cb, float *u)
{
    __m512 p[4];
    for (int m = 0; m < 4; m++) {
        /* rows 4m .. 4m+3 of the 16: lanes of their windows */
        const int64_t rm = full ? 4 : nr - 4 * m < 0 ? 0 : nr - 4 * m > 4 ? 4 : nr - 4 * m;
        const __mmask16 mw = (__mmask16)((1u << (4 * rm)) - 1u);
        const __mmask16 mx = (__mmask16)((1u << rm) - 1u);
        const __m512 xb = full ? _mm512_castps128_ps512(_mm_loadu_ps(x + 4 * m))
                               : _mm512_maskz_loadu_ps(mx, x + 4 * m);
        const __m512 wv = full ? _mm512_loadu_ps(win + 16 * m) : _mm512_maskz_loadu_ps(mw, win + 16 * m);
        const __m512 v = _mm512_permutex2var_ps(wv, ish, xb);
        if (full) _mm512_storeu_ps(win + 16 * m, v);
        else _mm512_mask_storeu_ps(win + 16 * m, mw, v);
        p[m] = _mm512_mul_ps(v, full ? _mm512_loadu_ps(w + 16 * m) : _mm512_maskz_loadu_ps(mw, w + 16 * m));
    }
    const __mmask16 mr = (__mmask16)((1u << (full ? 16 : nr)) - 1u);
    __m512 acc = !cb ? _mm512_setzero_ps() : full ? _mm512_loadu_ps(cb) : _mm512_maskz_loadu_ps(mr, cb);
    for (int t = 0; t < 4; t++) {
        const __m512i it = _mm512_add_epi32(itap, _mm512_set1_epi32(t));
        const __m512 lo = _mm512_permutex2var_ps(p[0], it, p[1]);
        const __m512 hi = _mm512_permutex2var_ps(p[2], it, p[3]);
        acc = _mm512_add_ps(acc, _mm512_shuffle_f32x4(lo, hi, 0x44));
    }
    if (full) _mm512_storeu_ps(u, silu16(acc));
    else _mm512_mask_storeu_ps(u, mr, silu16(acc));
}
static T512 void conv_avx512(CONV_ARGS)
{
    if (k != 4) {
        CONV_BODY
        return;
    }
    /* lane 4r + t <- lane 4r + t + 1 of the window (t < 3), else x of row r */
    const __m512i ish = _mm512_set_epi32(19, 15, 14, 13, 18, 11, 10, 9,
                                         17, 7, 6, 5, 16, 3, 2, 1);
    /* rows 0..7 of tap 0 from two product vectors (4 rows each) */
    const __m512i itap = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0,
                                          28, 24, 20, 16, 12, 8, 4, 0);
    for (int64_t i = i0; i < i1;) {
        const int64_t d = i % di;
        /* rows i .. i+nr-1 (same token): 16, or fewer at the end of the
         * rows or of the token, then in masked lanes (the language
         * model's step hands blocks of 24 rows: scalar, a third of them
         * ran ~8x slower) */
        int64_t nr = i1 - i < 16 ? i1 - i : 16;
        if (di - d < nr) nr = di - d;
        const float *bias = cb ? cb + d : NULL;
        if (nr == 16)
            conv16_avx512(1, 16, ish, itap, conv + i * 4, x + i, cw + d * 4, bias, u + i);
        else
            conv16_avx512(0, nr, ish, itap, conv + i * 4, x + i, cw + d * 4, bias, u + i);
        i += nr;
    }
}
/* h prefetch distance, in channels: at a batch of 8 the states (96 KiB a
 * sequence and layer) stream from memory; 8-32 gave 3-5% (measured). */
#define SCAN_PF 8
/* One channel's n states (n a multiple of 16) in whole vectors: h updated,
 * the C lane sums returned (SCAN_BODY's acc).  MODE as vdecayc_avx512: 0
 * the full decay, 2 without its range steps (|dt| max |A| <= DEC_RNG). */
static T512 inline __attribute__((always_inline)) __m512
scan_chan16(const int MODE, float dtc, float uc, float *hh, const float *a2,
            const float *bb, const float *cc, int64_t n)
{
    const __m512 dt = _mm512_set1_ps(dtc), dtu = _mm512_set1_ps(dtc * uc);
    _mm_prefetch((const char *)(hh + SCAN_PF * n), _MM_HINT_T0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t s0 = 0; s0 < n; s0 += 16) {
        const __m512 da = vdecayc_avx512(MODE, dt, _mm512_loadu_ps(a2 + s0));
        const __m512 hv = _mm512_fmadd_ps(da, _mm512_loadu_ps(hh + s0),
                                          _mm512_mul_ps(dtu, _mm512_loadu_ps(bb + s0)));
        _mm512_storeu_ps(hh + s0, hv);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(cc + s0), hv, acc);
    }
    return acc;
}
/* Whether 16 channels may take the decay without range steps: dt amax <=
 * DEC_RNG in every lane (false for NaN or inf; amax NULL: never). */
static T512 inline int step_fast16(const float *dtv, const float *amax)
{
    if (!amax) return 0;
    const __m512 r = _mm512_mul_ps(_mm512_loadu_ps(dtv), _mm512_loadu_ps(amax));
    return _mm512_cmp_ps_mask(r, _mm512_set1_ps(DEC_RNG), _CMP_LE_OQ) == 0xFFFF;
}
/* Pass 2 for n a multiple of 16 (the usual 16): h of a channel in whole
 * vectors, the lane sums and tree of SCAN_BODY; 16 channels of a token
 * whose dt max |A| are all small take the decay without its range steps
 * (the same bits: vdecayc_avx512), 13 vector operations a channel instead
 * of 20 with the range steps and the a2 = A log2(e) it used to compute. */
static T512 void scan_avx512(SCAN_ARGS)
{
    if (n % 16) {
        SCAN_BODY
        return;
    }
    /* pass 1, 16 channels a vector (tails through the scalar code) */
    for (int64_t i = i0; i < i1;) {
        const int64_t d0 = i % di, cnt = i1 - i < di - d0 ? i1 - i : di - d0;
        int64_t c = 0;
        for (; c + 16 <= cnt; c += 16) {
            __m512 x = _mm512_loadu_ps(delta + i + c);
            if (bias) x = _mm512_add_ps(x, _mm512_loadu_ps(bias + d0 + c));
            _mm512_storeu_ps(dtv + i + c, vsoftplus_avx512(x));
            _mm512_storeu_ps(g + i + c, z ? silu16(_mm512_loadu_ps(z + i + c)) : _mm512_set1_ps(1.0f));
        }
        for (; c < cnt; c++) {
            dtv[i + c] = scan_softplus(delta[i + c] + (bias ? bias[d0 + c] : 0.0f));
            g[i + c] = z ? silu_p(z[i + c]) : 1.0f;
        }
        i += cnt;
    }
    for (int64_t i = i0; i < i1;) {
        const int64_t b = i / di, d = i % di;
        const float *bb = Bm + b * ldbc, *cc = Cm + b * ldbc;
        /* 16 channels of one token: their lane sums in one collective
         * reduction and y in one vector (the per-channel sum and scalar
         * tail were a third of the step's scan at a batch of 8). */
        const int nc = i + 16 <= i1 && d + 16 <= di ? 16 : 1;
        __m512 acc[16];
        if (nc == 16 && step_fast16(dtv + i, amax ? amax + d : NULL)) {
            for (int c = 0; c < 16; c++)
                acc[c] = scan_chan16(2, dtv[i + c], u[i + c], h + (i + c) * n,
                                     A2 + (d + c) * n, bb, cc, n);
        } else {
            for (int c = 0; c < nc; c++)
                acc[c] = scan_chan16(0, dtv[i + c], u[i + c], h + (i + c) * n,
                                     A2 + (d + c) * n, bb, cc, n);
        }
        if (nc == 16) {
            const __m512 du = D ? _mm512_mul_ps(_mm512_loadu_ps(D + d), _mm512_loadu_ps(u + i))
                                : _mm512_setzero_ps();
            _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_add_ps(vhsum16x16_avx512(acc), du),
                                                  _mm512_loadu_ps(g + i)));
        } else {
            y[i] = (vhsum16_avx512(acc[0]) + (D ? D[d] * u[i] : 0.0f)) * g[i];
        }
        i += nc;
    }
}
/* The same on 8 lanes for AVX2 (the same operations: the same bits); 16
 * states as two halves, lanes 0-7 and 8-15, as SCAN_BODY's acc. */
#define T256 __attribute__((target("avx2,fma")))
static T256 inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 mg = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), mg);
    const __m256 n = _mm256_sub_ps(t, mg);
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f))),
                                   _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
static T256 inline __m256 silu8(__m256 x)
{
    const __m256 nx = _mm256_sub_ps(_mm256_setzero_ps(), x);
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(nx)));
}
/* The conv step for K = 4 on 8 lanes: a vector holds two rows' windows,
 * shifted by one in-register permute with the new inputs blended in; the
 * products of 8 rows are transposed to tap-major by unpack + shuffle,
 * which leaves the rows in the order 0 2 4 6 1 3 5 7 (the bias is loaded
 * in that order and the sum put back before silu8).  Bias first, taps in
 * order, no FMA: CONV_BODY's bits.  Rows past the last group of 8 of a
 * token or block take CONV_BODY.  (CONV_BODY compiled for AVX2 was ~7x
 * slower: its silu loop does not vectorize; 24 layers at batch 8, Zen 4,
 * 5.3 ms a step.) */
static T256 void conv_rows_avx2(CONV_ARGS) { CONV_BODY }
static T256 void conv_avx2(CONV_ARGS)
{
    if (k != 4) {
        conv_rows_avx2(i0, i1, di, k, conv, x, cw, cb, u);
        return;
    }
    const __m256i ish = _mm256_setr_epi32(1, 2, 3, 0, 5, 6, 7, 4);
    const __m256i iev = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i iback = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = i0; i < i1;) {
        const int64_t d = i % di;
        if (i + 8 > i1 || d + 8 > di) {
            /* the rest of this token or block, one row at a time */
            const int64_t e = i1 - i < di - d ? i1 : i + (di - d);
            conv_rows_avx2(i, e, di, k, conv, x, cw, cb, u);
            i = e;
            continue;
        }
        float *win = conv + i * 4;
        const float *w = cw + d * 4;
        const __m256 xv = _mm256_loadu_ps(x + i);
        __m256 p[4];
        for (int m = 0; m < 4; m++) {
            /* rows 2m, 2m+1: their new inputs into lanes 3 and 7 */
            const __m256 xm = _mm256_permutevar8x32_ps(
                xv, _mm256_setr_epi32(0, 0, 0, 2 * m, 0, 0, 0, 2 * m + 1));
            const __m256 v = _mm256_blend_ps(
                _mm256_permutevar8x32_ps(_mm256_loadu_ps(win + 8 * m), ish), xm, 0x88);
            _mm256_storeu_ps(win + 8 * m, v);
            p[m] = _mm256_mul_ps(v, _mm256_loadu_ps(w + 8 * m));
        }
        const __m256 u0 = _mm256_unpacklo_ps(p[0], p[1]), u1 = _mm256_unpackhi_ps(p[0], p[1]);
        const __m256 u2 = _mm256_unpacklo_ps(p[2], p[3]), u3 = _mm256_unpackhi_ps(p[2], p[3]);
        __m256 acc = cb ? _mm256_permutevar8x32_ps(_mm256_loadu_ps(cb + d), iev)
                        : _mm256_setzero_ps();
        acc = _mm256_add_ps(acc, _mm256_shuffle_ps(u0, u2, 0x44));   /* tap 0 */
        acc = _mm256_add_ps(acc, _mm256_shuffle_ps(u0, u2, 0xee));   /* tap 1 */
        acc = _mm256_add_ps(acc, _mm256_shuffle_ps(u1, u3, 0x44));   /* tap 2 */
        acc = _mm256_add_ps(acc, _mm256_shuffle_ps(u1, u3, 0xee));   /* tap 3 */
        _mm256_storeu_ps(u + i, silu8(_mm256_permutevar8x32_ps(acc, iback)));
        i += 8;
    }
}
/* scan_chan16 and step_fast16 on 8 lanes: a channel's 16 states as two
 * halves, lanes 0-7 and 8-15, as SCAN_BODY's acc; the lane sums k + k+8
 * returned. */
static T256 inline __attribute__((always_inline)) __m256
scan_chan8(const int MODE, float dtc, float uc, float *hh, const float *a2,
           const float *bb, const float *cc, int64_t n)
{
    const __m256 dt = _mm256_set1_ps(dtc), dtu = _mm256_set1_ps(dtc * uc);
    _mm_prefetch((const char *)(hh + SCAN_PF * n), _MM_HINT_T0);
    __m256 al = _mm256_setzero_ps(), ah = _mm256_setzero_ps();
    for (int64_t s0 = 0; s0 < n; s0 += 16) {
        for (int half = 0; half < 2; half++) {
            const int64_t o = s0 + 8 * half;
            const __m256 da = vdecayc_avx2(MODE, dt, _mm256_loadu_ps(a2 + o));
            const __m256 hv = _mm256_fmadd_ps(da, _mm256_loadu_ps(hh + o),
                                              _mm256_mul_ps(dtu, _mm256_loadu_ps(bb + o)));
            _mm256_storeu_ps(hh + o, hv);
            const __m256 co = _mm256_loadu_ps(cc + o);
            if (half) ah = _mm256_fmadd_ps(co, hv, ah);
            else al = _mm256_fmadd_ps(co, hv, al);
        }
    }
    return _mm256_add_ps(al, ah);
}
static T256 inline int step_fast8(const float *dtv, const float *amax)
{
    if (!amax) return 0;
    const __m256 r = _mm256_mul_ps(_mm256_loadu_ps(dtv), _mm256_loadu_ps(amax));
    return _mm256_movemask_ps(_mm256_cmp_ps(r, _mm256_set1_ps(DEC_RNG), _CMP_LE_OQ)) == 0xFF;
}
static T256 void scan_avx2(SCAN_ARGS)
{
    if (n % 16) {
        SCAN_BODY
        return;
    }
    for (int64_t i = i0; i < i1;) {
        const int64_t d0 = i % di, cnt = i1 - i < di - d0 ? i1 - i : di - d0;
        int64_t c = 0;
        for (; c + 8 <= cnt; c += 8) {
            __m256 x = _mm256_loadu_ps(delta + i + c);
            if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + d0 + c));
            _mm256_storeu_ps(dtv + i + c, vsoftplus_avx2(x));
            _mm256_storeu_ps(g + i + c, z ? silu8(_mm256_loadu_ps(z + i + c)) : _mm256_set1_ps(1.0f));
        }
        for (; c < cnt; c++) {
            dtv[i + c] = scan_softplus(delta[i + c] + (bias ? bias[d0 + c] : 0.0f));
            g[i + c] = z ? silu_p(z[i + c]) : 1.0f;
        }
        i += cnt;
    }
    for (int64_t i = i0; i < i1;) {
        const int64_t b = i / di, d = i % di;
        const float *bb = Bm + b * ldbc, *cc = Cm + b * ldbc;
        /* 8 channels of one token per collective reduction, as AVX-512
         * does 16 */
        const int nc = i + 8 <= i1 && d + 8 <= di ? 8 : 1;
        __m256 acc[8];
        if (nc == 8 && step_fast8(dtv + i, amax ? amax + d : NULL)) {
            for (int c = 0; c < 8; c++)
                acc[c] = scan_chan8(2, dtv[i + c], u[i + c], h + (i + c) * n,
                                    A2 + (d + c) * n, bb, cc, n);
        } else {
            for (int c = 0; c < nc; c++)
                acc[c] = scan_chan8(0, dtv[i + c], u[i + c], h + (i + c) * n,
                                    A2 + (d + c) * n, bb, cc, n);
        }
        if (nc == 8) {
            const __m256 du = D ? _mm256_mul_ps(_mm256_loadu_ps(D + d), _mm256_loadu_ps(u + i))
                                : _mm256_setzero_ps();
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_add_ps(vhsum8x8_avx2(acc), du),
                                                  _mm256_loadu_ps(g + i)));
        } else {
            const __m256 s8 = acc[0];
            const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
            const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
            y[i] = (_mm_cvtss_f32(s1) + (D ? D[d] * u[i] : 0.0f)) * g[i];
        }
        i += nc;
    }
}
#endif

typedef void (*conv_fn)(CONV_ARGS);
typedef void (*scan_fn)(SCAN_ARGS);

static int pick(int isa)
{
#ifdef STEP_X86
    int best = __builtin_cpu_supports("avx512f") ? 3
             : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 1;
    if (isa == 0 || isa > best) return isa == 0 ? best : 1;
    return isa;
#else
    (void)isa;
    return 1;
#endif
}

/* Row blocks of 256 channels: fixed, so the split never depends on the
 * thread count. */
#define RBLK 256

void ssmi_mamba_step_conv(int isa, int64_t rows, int64_t di, int64_t k, float *conv,
                          const float *x, const float *cw, const float *cb, float *u)
{
    conv_fn f = conv_gen;
#ifdef STEP_X86
    int p = pick(isa);
    f = p == 3 ? conv_avx512 : p == 2 ? conv_avx2 : conv_gen;
#else
    (void)isa;
#endif
    const int64_t nb = (rows + RBLK - 1) / RBLK;
    if (rows >= PAR_MIN_ROWS) {
        #pragma omp parallel for schedule(static)
        for (int64_t bk = 0; bk < nb; bk++)
            f(bk * RBLK, bk * RBLK + RBLK < rows ? bk * RBLK + RBLK : rows, di, k, conv,
              x, cw, cb, u);
    } else {
        f(0, rows, di, k, conv, x, cw, cb, u);
    }
}

void ssmi_mamba_step_scan(int isa, int64_t rows, int64_t di, int64_t n, float *h,
                          const float *u, const float *delta, const float *A2,
                          const float *amax, const float *Bm, const float *Cm, int64_t ldbc,
                          const float *D, const float *z, const float *bias,
                          float *dtv, float *g, float *y)
{
    scan_fn f = scan_gen;
#ifdef STEP_X86
    int p = pick(isa);
    f = p == 3 ? scan_avx512 : p == 2 ? scan_avx2 : scan_gen;
#else
    (void)isa;
#endif
    const int64_t nb = (rows + RBLK - 1) / RBLK;
    if (rows * n >= 16 * PAR_MIN_ROWS) {
        #pragma omp parallel for schedule(static)
        for (int64_t bk = 0; bk < nb; bk++)
            f(bk * RBLK, bk * RBLK + RBLK < rows ? bk * RBLK + RBLK : rows, di, n, h, u,
              delta, A2, amax, Bm, Cm, ldbc, D, z, bias, dtv, g, y);
    } else {
        f(0, rows, di, n, h, u, delta, A2, amax, Bm, Cm, ldbc, D, z, bias, dtv, g, y);
    }
}

static conv_fn conv_pick(int isa)
{
#ifdef STEP_X86
    int p = pick(isa);
    return p == 3 ? conv_avx512 : p == 2 ? conv_avx2 : conv_gen;
#else
    (void)isa;
    return conv_gen;
#endif
}

static scan_fn scan_pick(int isa)
{
#ifdef STEP_X86
    int p = pick(isa);
    return p == 3 ? scan_avx512 : p == 2 ? scan_avx2 : scan_gen;
#else
    (void)isa;
    return scan_gen;
#endif
}

void ssmi_mamba_step_conv_rows(int isa, int64_t i0, int64_t i1, int64_t di, int64_t k,
                               float *conv, const float *x, const float *cw,
                               const float *cb, float *u)
{
    if (i1 > i0)
        conv_pick(isa)(i0, i1, di, k, conv, x, cw, cb, u);
}

void ssmi_mamba_step_scan_rows(int isa, int64_t i0, int64_t i1, int64_t di, int64_t n,
                               float *h, const float *u, const float *delta,
                               const float *A2, const float *amax, const float *Bm,
                               const float *Cm,
                               int64_t ldbc, const float *D, const float *z,
                               const float *bias, float *dtv, float *g, float *y)
{
    if (i1 > i0)
        scan_pick(isa)(i0, i1, di, n, h, u, delta, A2, amax, Bm, Cm, ldbc, D, z, bias, dtv, g, y);
}

void ssmi_mamba_step_conv_prefetch(int64_t i0, int64_t i1, int64_t k, const float *conv)
{
#if defined(__GNUC__) || defined(__clang__)
    const char *p = (const char *)(conv + i0 * k), *e = (const char *)(conv + i1 * k);
    for (; p < e; p += 64)
        __builtin_prefetch(p, 1, 2);
#else
    (void)i0; (void)i1; (void)k; (void)conv;
#endif
}

void ssmi_mamba_step_a2(int64_t di, int64_t n, const float *A, float *a2, float *amax)
{
    for (int64_t d = 0; d < di; d++) {
        float m = 0.0f;
        for (int64_t s = 0; s < n; s++) {
            const float v = fabsf(A[d * n + s]);
            a2[d * n + s] = scan_a2(A[d * n + s]);
            if (v > m || v != v) m = v;
        }
        amax[d] = m;
    }
}

float ssmi_step_exp(float x) { return exp_p(x); }
float ssmi_step_softplus(float x) { return scan_softplus(x); }
float ssmi_step_silu(float x) { return silu_p(x); }
