/*
 * selective.c -- the selective scan of Mamba (Gu and Dao 2023, "Mamba:
 * Linear-Time Sequence Modeling with Selective State Spaces", Section 3.2,
 * Algorithm 2, eq. 2a-2b and 4): recurrent mode on CPUs.
 *
 * For batch b, channel d (group g = d / (dim/ngroups)), state n, step t:
 *   dt    = softplus(delta[b,d,t] + bias[d])         (or without softplus)
 *   h_n   = exp(dt A[d,n]) h_n + dt u[b,d,t] B[b,g,n,t]
 *   y     = (sum_n C[b,g,n,t] h_n + D[d] u[b,d,t]) * silu(z[b,d,t])
 *
 * Structure:
 *   - Sequential path: channel vectors.  The lanes of a vector are 16 (8)
 *     channels of one group, which share B_t and C_t ([B][G][N][L], Mamba's
 *     layout: broadcast scalars), so no horizontal sum and no transpose of
 *     B and C; delta, u, z and y go through [T][16] tiles.  Per channel,
 *     y = C_0 h_0 + C_1 h_1 + ... is one FMA chain in increasing n, in every
 *     kernel (channel vectors, the row kernel of narrow groups and of the
 *     step, the portable one): the bytes depend on neither ISA nor lane.
 *   - Time-parallel paths (few long channels): B and C are transposed a
 *     tile of T steps at a time into [T][N] and the state loop is
 *     vectorized (8 or 16 lanes of n), ending in horizontal sums.
 *   - exp is our own (scan_vmath.h: scan_expf and its vector twins): Cody-Waite range
 *     reduction, degree-6 minimax polynomial, 2^k in the exponent bits; the
 *     decays exp(dt A) take scan_decayf, in base 2 from a2 = A log2(e)
 *     (two operations fewer per state update).  The vector body and the
 *     scalar tail compute the same operations with explicit fma, bit for
 *     bit.
 *   - Sequential path: OpenMP over (batch, group, channel block).  Each
 *     output has one writer and every sum has a fixed order.
 *   - Chunked path (few channels, long sequences): time is cut into chunks
 *     whose length depends on len only.  Each chunk is scanned from a zero
 *     state, storing its decays exp(dt_t A_n) (a per-thread chunk buffer,
 *     with the chunk's C); the state entering chunk k, carry_k, is passed
 *     along (carry_{k+1} = P_k carry_k + hlocal_k, P_k = exp(A sum dt),
 *     fixed order) through flags, and the fix-up runs carry_k through the
 *     stored decays: y_t += sum_n C_t,n (prod_{s<=t} a_s,n) carry_k,n.
 *     Threads take chunks in increasing order (static round robin), so a
 *     thread waits only for chunks that are already being worked on: no
 *     deadlock, and which thread does a chunk never changes a number.
 *     The carries are published before the fix-up, so the chain of carries
 *     costs only O(dstate) per chunk on the critical path.
 *   - Split path (one channel, dstate a multiple of 16, long sequence): the
 *     state is cut into two halves scanned side by side, each over the whole
 *     sequence, partial outputs added in a fixed order; no fix-up pass, so two
 *     threads give nearly 2x where the chunked path gives ~1.6x.  It uses
 *     at most two threads, whatever the machine: the price of choosing paths
 *     by shape alone.
 * Memory: per-thread tiles and chunk buffers; carries of at most 2048
 * chunks (the chunked path runs only for batch*dim <= 8, so this is
 * O(batch*dim*dstate)); the split path's ring of partial sums, 16 tiles
 * of at most 2048 steps; never a [B][D][L][N] tensor.  All sizes and offsets are int64_t.
 */
#define _POSIX_C_SOURCE 200809L
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SSM_SCAN_X86 1
#endif

#include "scan_internal.h"
#include "scan_vmath.h"

float ssmi_scan_expf(float x) { return scan_expf(x); }

/* silu(z) = z sigmoid(z) = z / (1 + exp(-z)). */
static inline float scan_silu(float z)
{
    return z / (1.0f + scan_expf(-z));
}

/* ------------------------------------------------- kernel instantiations */

/* Steps per time tile of the channel-vector kernel at dstate <= 16 (see
 * run_seq). */
#define CV_TILE_T 512

/* Portable C: one lane, every operation the scalar one. */
#define KSFX generic
#define KTGT
#define VL 1
#define VT float
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(x) (x)
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) fmaf((a), (b), (c))
#define VHSUM(v) (v)
#define VEXP(v) scan_expf(v)
#define VDECAY(d, a) scan_decayf((d), (a))
#define VDECAYN(d, a) scan_decayf((d), (a))
#define VDECAYR(d, a) scan_decayf((d), (a))
#define VABSMAX(acc, v) fmaxf((acc), fabsf(v))
#define VADD(a, b) ((a) + (b))
#define VSOFTPLUS(v) scan_softplus(v)
#define VSILU(v) scan_silu(v)
#include "selective_kernel.h"
#undef KSFX
#undef KTGT
#undef VL
#undef VT
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA
#undef VHSUM
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VABSMAX
#undef VADD
#undef VSOFTPLUS
#undef VSILU
#undef VHSUM_BLOCK
#undef VTRANSPOSE8
#undef VSTREAM16

/* A split-path half kernel for 8 states: T steps of tile_avx2 at N = 8
 * (the same bytes), prefetching the next tile (nB, nC, nT; NULL: none). */
typedef void (*split_half_fn)(int64_t T, const float *A, const float *Bt, const float *Ct,
                              const float *dt, const float *u, float *h, float *ys,
                              const float *nB, const float *nC, int64_t L, int64_t nT);

#ifdef SSM_SCAN_X86

static inline TGT_AVX2 __m256 vsilu_avx2(__m256 z)
{
    const __m256 e = vexp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), z));
    return _mm256_div_ps(z, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* Lanes summed in a fixed order, ((x0+x1)+(x2+x3)) + ((x4+x5)+(x6+x7)):
 * the order hsum8_avx2 uses for eight vectors at once. */
static inline TGT_AVX2 float hsum_avx2(__m256 v)
{
    __m256 h = _mm256_hadd_ps(v, v);
    h = _mm256_hadd_ps(h, h);
    const __m128 s = _mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    return _mm_cvtss_f32(s);
}

/* Lane i of the result = hsum_avx2(v[i]), bit for bit. */
static inline TGT_AVX2 __m256 hsum8_avx2(const __m256 *v)
{
    const __m256 g1 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 g2 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(g1, g2, 0x20),
                         _mm256_permute2f128_ps(g1, g2, 0x31));
}

#define KSFX avx2
#define KTGT TGT_AVX2
#define VL 8
#define VT __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VHSUM(v) hsum_avx2(v)
#define VEXP(v) vexp_avx2(v)
#define VDECAY(d, a) vdecay_avx2((d), (a))
#define VDECAYN(d, a) vdecayn_avx2((d), (a))
#define VDECAYR(d, a) vdecayr_avx2((d), (a))
#define VABSMAX(acc, v) _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), (v)), (acc))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSOFTPLUS(v) vsoftplus_avx2(v)
#define VSILU(v) vsilu_avx2(v)
#define VHSUM_BLOCK(v) hsum8_avx2(v)
#define VTRANSPOSE8(s, ss, d, ds) vtranspose8_avx2((s), (ss), (d), (ds))
#define VSTREAM16(p, q) (_mm256_stream_ps((p), _mm256_load_ps(q)), \
                         _mm256_stream_ps((p) + 8, _mm256_load_ps((q) + 8)))
#include "selective_kernel.h"
#undef KSFX
#undef KTGT
#undef VL
#undef VT
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA
#undef VHSUM
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VABSMAX
#undef VADD
#undef VSOFTPLUS
#undef VSILU
#undef VHSUM_BLOCK
#undef VTRANSPOSE8
#undef VSTREAM16

static inline TGT_AVX512 __m512 vsilu_avx512(__m512 z)
{
    const __m512 e = vexp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z));
    return _mm512_div_ps(z, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

#define KSFX avx512
#define KTGT TGT_AVX512
#define VL 16
#define VT __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VHSUM(v) vhsum16_avx512(v)
#define VEXP(v) vexp_avx512(v)
#define VDECAY(d, a) vdecay_avx512((d), (a))
#define VDECAYN(d, a) vdecayn_avx512((d), (a))
#define VDECAYR(d, a) vdecayr_avx512((d), (a))
#define VABSMAX(acc, v) _mm512_max_ps(_mm512_abs_ps(v), (acc))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSOFTPLUS(v) vsoftplus_avx512(v)
#define VSILU(v) vsilu_avx512(v)
#define VHSUM_BLOCK(v) vhsum16x16_avx512(v)
/* Every AVX-512F CPU has AVX2: the 8 x 8 transpose of the AVX2 kernels. */
#define VTRANSPOSE8(s, ss, d, ds) vtranspose8_avx2((s), (ss), (d), (ds))
#define VSTREAM16(p, q) _mm512_stream_ps((p), _mm512_load_ps(q))
#include "selective_kernel.h"
#undef KSFX
#undef KTGT
#undef VL
#undef VT
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA
#undef VHSUM
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VABSMAX
#undef VADD
#undef VSOFTPLUS
#undef VSILU
#undef VHSUM_BLOCK
#undef VTRANSPOSE8
#undef VSTREAM16

/* The split kernels' prefetch, after the 8-step block at t of a tile: one
 * line (16 steps) of each of the next tile's `rows` rows of B (t / 8 even)
 * or of C (odd), so that the whole next tile is in L2 when its turn comes.
 * Moves no data.  always_inline: inside the kernels' always_inline bodies
 * GCC 12 -O3 otherwise emitted neither a call nor a prefetch (seen in the
 * assembly; the one-thread scan was 20% slower). */
static inline __attribute__((always_inline)) void
split_prefetch(int64_t t, const float *nB, const float *nC, int64_t L, int64_t nT, int rows)
{
    const int64_t col = (t >> 4) * 16;
    if (!nB || col >= nT)
        return;
    const char *p = (const char *)((t & 8 ? nC : nB) + col);
    for (int r = 0; r < rows; r++, p += L * (int64_t)sizeof(float))
        _mm_prefetch(p, _MM_HINT_T1);
}

/* 1 if every decay exp(dt A) of a split tile may skip its range steps:
 * max |dt| over the tile's T steps times max |A| over its n states at most
 * DEC_RNG, the test of cv_tile (the same bits in VDECAYR's form; NaN dt or A
 * are ignored, they make the decay NaN in both forms alike). */
static TGT_AVX2 int split_rng_avx2(int64_t T, const float *dt, const float *A, int n)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 vm = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= T; t += 8)   /* MAXPS returns its second operand on NaN */
        vm = _mm256_max_ps(_mm256_andnot_ps(sgn, _mm256_loadu_ps(dt + t)), vm);
    float f[8], md = 0.0f, ma = 0.0f;
    _mm256_storeu_ps(f, vm);
    for (int i = 0; i < 8; i++)
        md = f[i] > md ? f[i] : md;
    for (; t < T; t++)
        md = fabsf(dt[t]) > md ? fabsf(dt[t]) : md;
    for (int i = 0; i < n; i++)
        ma = fabsf(A[i]) > ma ? fabsf(A[i]) : ma;
    return md * ma <= DEC_RNG;
}

/* One half of 8 states of the split path on AVX2 (and AVX-512) machines:
 * tile_avx2's arithmetic at N = 8, bit for bit (one vector; blocks of 8
 * steps summed by hsum8_avx2, the tail by hsum_avx2), plus split_prefetch
 * for this half's 8 rows of B and of C.  MODE: vdecayc_avx2's, 2 where
 * split_rng_avx2 allows it (the same bits, 5 of the decay's 15 operations
 * fewer). */
static inline __attribute__((always_inline)) TGT_AVX2 void
split8_body_avx2(const int MODE, int64_t T, const float *A, const float *Bt,
                 const float *Ct, const float *dt, const float *u, float *h, float *ys,
                 const float *nB, const float *nC, int64_t L, int64_t nT)
{
    /* A log2(e): see scan_decayf */
    const __m256 av = va2_avx2(_mm256_loadu_ps(A));
    __m256 hv = _mm256_loadu_ps(h);
#define SPLIT8_STEP_(t_, acc_)                                               \
    do {                                                                     \
        const float dtv_ = dt[t_], dtu_ = dtv_ * u[t_];                      \
        const __m256 a_ = vdecayc_avx2(MODE, _mm256_set1_ps(dtv_), av);      \
        hv = _mm256_fmadd_ps(a_, hv, _mm256_mul_ps(_mm256_loadu_ps(Bt + (t_) * 8), \
                                                   _mm256_set1_ps(dtu_)));   \
        acc_ = _mm256_mul_ps(_mm256_loadu_ps(Ct + (t_) * 8), hv);            \
    } while (0)
    int64_t t = 0;
    for (; t + 8 <= T; t += 8) {
        __m256 acc[8];
        for (int i = 0; i < 8; i++)
            SPLIT8_STEP_(t + i, acc[i]);
        _mm256_storeu_ps(ys + t, hsum8_avx2(acc));
        split_prefetch(t, nB, nC, L, nT, 8);
    }
    for (; t < T; t++) {
        __m256 acc;
        SPLIT8_STEP_(t, acc);
        ys[t] = hsum_avx2(acc);
    }
#undef SPLIT8_STEP_
    _mm256_storeu_ps(h, hv);
}

/* The split tile kernel `name` over n states: `body` in mode 2 on tiles
 * where split_rng_avx2 allows it, else in mode 0. */
#define SPLIT_TILE_FN(name, body, TGT, n)                                      \
static TGT void name(int64_t T, const float *A, const float *Bt, const float *Ct, \
                     const float *dt, const float *u, float *h, float *ys,    \
                     const float *nB, const float *nC, int64_t L, int64_t nT) \
{                                                                            \
    if (split_rng_avx2(T, dt, A, n))                                         \
        body(2, T, A, Bt, Ct, dt, u, h, ys, nB, nC, L, nT);                  \
    else                                                                     \
        body(0, T, A, Bt, Ct, dt, u, h, ys, nB, nC, L, nT);                  \
}

SPLIT_TILE_FN(split8_tile_avx2, split8_body_avx2, TGT_AVX2, 8)

/* The same half on AVX-512, two steps per vector where the steps are
 * independent: lanes 0-7 step t, lanes 8-15 step t + 1 for exp(dt A) and
 * B dt u (half the exps of split8_tile_avx2), then the two dependent state
 * updates and C h in 8-lane vectors.  Every lane does split8_tile_avx2's
 * operations (vdecayc_avx512 and vdecayc_avx2 agree bit for bit in every
 * mode; the products are the same IEEE products), so the bytes are the
 * same.  MODE as split8_body_avx2; the odd tail step runs there. */
static inline __attribute__((always_inline)) __attribute__((target("avx512f,avx2,fma"))) void
split8x2_body_avx512(const int MODE, int64_t T, const float *A, const float *Bt,
                     const float *Ct, const float *dt, const float *u, float *h, float *ys,
                     const float *nB, const float *nC, int64_t L, int64_t nT)
{
    const __m256 a8 = va2_avx2(_mm256_loadu_ps(A));
    const __m512 av = _mm512_castpd_ps(   /* [A | A] log2(e) */
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a8)), _mm256_castps_pd(a8), 1));
    const __m512i pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 hv = _mm256_loadu_ps(h);
#define SPLIT8X2_HI_(v) _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
    /* Steps t_ and t_ + 1: acc0_, acc1_ = C h after each. */
#define SPLIT8X2_PAIR_(t_, acc0_, acc1_)                                      \
    do {                                                                     \
        const __m128 d2_ = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(dt + (t_)))); \
        const __m128 u2_ = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(u + (t_))));  \
        const __m512 vdt_ = _mm512_permutexvar_ps(pair, _mm512_castps128_ps512(d2_)); \
        const __m512 vdtu_ = _mm512_permutexvar_ps(pair,                     \
                                 _mm512_castps128_ps512(_mm_mul_ps(d2_, u2_))); \
        const __m512 a_ = vdecayc_avx512(MODE, vdt_, av);                    \
        const __m512 b_ = _mm512_mul_ps(_mm512_loadu_ps(Bt + (t_) * 8), vdtu_); \
        hv = _mm256_fmadd_ps(_mm512_castps512_ps256(a_), hv, _mm512_castps512_ps256(b_)); \
        acc0_ = _mm256_mul_ps(_mm256_loadu_ps(Ct + (t_) * 8), hv);           \
        hv = _mm256_fmadd_ps(SPLIT8X2_HI_(a_), hv, SPLIT8X2_HI_(b_));        \
        acc1_ = _mm256_mul_ps(_mm256_loadu_ps(Ct + (t_) * 8 + 8), hv);       \
    } while (0)
    int64_t t = 0;
    for (; t + 8 <= T; t += 8) {
        __m256 acc[8];
        for (int i = 0; i < 8; i += 2)
            SPLIT8X2_PAIR_(t + i, acc[i], acc[i + 1]);
        _mm256_storeu_ps(ys + t, hsum8_avx2(acc));
        split_prefetch(t, nB, nC, L, nT, 8);
    }
#undef SPLIT8X2_PAIR_
#undef SPLIT8X2_HI_
    _mm256_storeu_ps(h, hv);
    if (t < T)   /* the tail: split8_body_avx2's single steps */
        split8_body_avx2(MODE, T - t, A, Bt + t * 8, Ct + t * 8, dt + t, u + t, h, ys + t,
                         NULL, NULL, L, 0);
}

SPLIT_TILE_FN(split8x2_tile_avx512, split8x2_body_avx512,
              __attribute__((target("avx512f,avx2,fma"))), 8)

/* The split path's two halves of 8 states in ONE AVX-512 vector, for one
 * thread (run_split1): lanes 0-7 are half 0, lanes 8-15 half 1.  Each lane
 * does what the AVX2 tile does for its half (tile_avx2 at N = 8: the same
 * exp, bit for bit, and the same fma), and each step's output is the two
 * halves' 8-lane sums in hsum_avx2's order, half 0 + half 1: the bytes the
 * two halves give on two threads, with half the exps, steps and dt work.
 * Bt, Ct: [T][16]; h: [16] in/out; ys: [T] out.
 * nB, nC (row stride L, nT steps; NULL: none): the next tile's rows of B and
 * C, prefetched into L2 here, half a line of each of the 32 rows per 8 steps,
 * so that their transposes read L2 instead of memory.  MODE as
 * split8_body_avx2 (a decay's bits do not depend on it where it is 2, so
 * the halves may choose theirs apart). */
static inline __attribute__((always_inline)) __attribute__((target("avx512f,avx2,fma"))) void
split16_body_avx512(const int MODE, int64_t T, const float *A, const float *Bt,
                    const float *Ct, const float *dt, const float *u, float *h, float *ys,
                    const float *nB, const float *nC, int64_t L, int64_t nT)
{
    const __m512 av = va2_avx512(_mm512_loadu_ps(A));
    __m512 hv = _mm512_loadu_ps(h);
#define SPLIT16_STEP_(t_, acc_)                                              \
    do {                                                                     \
        const float dtv_ = dt[t_], dtu_ = dtv_ * u[t_];                      \
        const __m512 a_ = vdecayc_avx512(MODE, _mm512_set1_ps(dtv_), av);    \
        hv = _mm512_fmadd_ps(a_, hv, _mm512_mul_ps(_mm512_loadu_ps(Bt + (t_) * 16), \
                                                   _mm512_set1_ps(dtu_)));   \
        acc_ = _mm512_mul_ps(_mm512_loadu_ps(Ct + (t_) * 16), hv);           \
    } while (0)
#define SPLIT16_HI_(v) _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
    int64_t t = 0;
    for (; t + 8 <= T; t += 8) {
        __m256 lo[8], hi[8];
        for (int i = 0; i < 8; i++) {
            __m512 acc;
            SPLIT16_STEP_(t + i, acc);
            lo[i] = _mm512_castps512_ps256(acc);
            hi[i] = SPLIT16_HI_(acc);
        }
        _mm256_storeu_ps(ys + t, _mm256_add_ps(hsum8_avx2(lo), hsum8_avx2(hi)));
        split_prefetch(t, nB, nC, L, nT, 16);
    }
    for (; t < T; t++) {
        __m512 acc;
        SPLIT16_STEP_(t, acc);
        ys[t] = hsum_avx2(_mm512_castps512_ps256(acc)) + hsum_avx2(SPLIT16_HI_(acc));
    }
#undef SPLIT16_STEP_
#undef SPLIT16_HI_
    _mm512_storeu_ps(h, hv);
}

SPLIT_TILE_FN(split16_tile_avx512, split16_body_avx512,
              __attribute__((target("avx512f,avx2,fma"))), 16)
#undef SPLIT_TILE_FN
#endif /* SSM_SCAN_X86 */

/* ------------------------------------------------------------ dispatch -- */

typedef struct scan_kern {
    void (*tile)(int64_t T, int64_t N, const float *A, const float *Bt,
                 const float *Ct, const float *dt, const float *u, float *h,
                 float *ys, float *Q);
    void (*fixup)(int64_t T, int64_t N, const float *Q, const float *Ct,
                  float *hp, float *ys);
    void (*vexp)(const float *x, float *y, int64_t n);
    void (*dt)(int64_t T, const float *delta, const float *bias_d, int softplus,
               float *dt);
    void (*finish)(int64_t T, float *y, const float *u, const float *D_d,
                   const float *z);
    void (*transpose)(const float *Bg, int64_t L, int64_t t0, int64_t T,
                      int64_t N, float *Bt);
    void (*row_tile)(int64_t T, int64_t N, const float *A, const float *Bt,
                     const float *Ct, const float *dt, const float *u, float *h,
                     float *ys);
    void (*cv_tile)(int64_t T, int64_t N, const float *Al, const float *BC, int64_t ld,
                    float *dl, const float *ul, const float *bl, const float *Dl,
                    int softplus, float *wl, float *h, float *yl,
                    const float *const *pfl, int64_t pn);
    void (*cv_gather)(const float *src, int64_t ld, int64_t m, int64_t T, float *dst);
    void (*cv_scatter)(const float *src, int64_t m, int64_t T, float *dst, int64_t ld,
                       const float *z);
    void (*cv_scatter_nt)(const float *src, int64_t m, int64_t T, float *dst, int64_t ld,
                          const float *z);
    int64_t vl;   /* lanes of cv_tile: channels per vector */
} scan_kern;

int ssmi_scan_isa_ok(int isa)
{
    switch (isa) {
    case SSM_SCAN_ISA_GENERIC:
        return 1;
#ifdef SSM_SCAN_X86
    case SSM_SCAN_ISA_AVX2:
        /* libgcc fills the CPU model in a constructor: no init call (and
         * no write) needed here, so this is race-free. */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SSM_SCAN_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

int ssmi_scan_best_isa(void)
{
    if (ssmi_scan_isa_ok(SSM_SCAN_ISA_AVX512))
        return SSM_SCAN_ISA_AVX512;
    if (ssmi_scan_isa_ok(SSM_SCAN_ISA_AVX2))
        return SSM_SCAN_ISA_AVX2;
    return SSM_SCAN_ISA_GENERIC;
}

/* 0 on success, -1 if isa cannot run here. */
static int get_kern(int isa, scan_kern *k)
{
    if (isa == SSM_SCAN_ISA_AUTO)
        isa = ssmi_scan_best_isa();
    if (!ssmi_scan_isa_ok(isa))
        return -1;
    switch (isa) {
#ifdef SSM_SCAN_X86
    case SSM_SCAN_ISA_AVX512:
        k->tile = tile_avx512; k->fixup = fixup_avx512; k->vexp = vexp_arr_avx512;
        k->dt = dt_tile_avx512; k->finish = finish_tile_avx512;
        k->transpose = transpose_avx512;
        k->row_tile = row_tile_avx512; k->cv_tile = cv_tile_avx512;
        k->cv_gather = cv_gather_avx512; k->cv_scatter = cv_scatter_avx512;
        k->cv_scatter_nt = cv_scatter_nt_avx512; k->vl = 16;
        return 0;
    case SSM_SCAN_ISA_AVX2:
        k->tile = tile_avx2; k->fixup = fixup_avx2; k->vexp = vexp_arr_avx2;
        k->dt = dt_tile_avx2; k->finish = finish_tile_avx2;
        k->transpose = transpose_avx2;
        k->row_tile = row_tile_avx2; k->cv_tile = cv_tile_avx2;
        k->cv_gather = cv_gather_avx2; k->cv_scatter = cv_scatter_avx2;
        k->cv_scatter_nt = cv_scatter_nt_avx2; k->vl = 8;
        return 0;
#endif
    default:
        k->tile = tile_generic; k->fixup = fixup_generic; k->vexp = vexp_arr_generic;
        k->dt = dt_tile_generic; k->finish = finish_tile_generic;
        k->transpose = transpose_generic;
        k->row_tile = row_tile_generic; k->cv_tile = cv_tile_generic;
        k->cv_gather = cv_gather_generic; k->cv_scatter = cv_scatter_generic;
        k->cv_scatter_nt = cv_scatter_nt_generic; k->vl = 1;
        return 0;
    }
}

int ssmi_scan_vexpf(int isa, const float *x, float *y, int64_t n)
{
    scan_kern k;
    if (get_kern(isa, &k) != 0)
        return -1;
    k.vexp(x, y, n);
    return 0;
}

#ifdef SSM_SCAN_X86
static TGT_AVX2 void vdecay_arr_avx2(int mode, const float *dt, const float *a2, float *y,
                                     int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 d = _mm256_loadu_ps(dt + i), a = _mm256_loadu_ps(a2 + i);
        _mm256_storeu_ps(y + i, mode == 2 ? vdecayr_avx2(d, a)
                                : mode == 1 ? vdecayn_avx2(d, a) : vdecay_avx2(d, a));
    }
    for (; i < n; i++)
        y[i] = scan_decayf(dt[i], a2[i]);
}
static TGT_AVX512 void vdecay_arr_avx512(int mode, const float *dt, const float *a2, float *y,
                                         int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 d = _mm512_loadu_ps(dt + i), a = _mm512_loadu_ps(a2 + i);
        _mm512_storeu_ps(y + i, mode == 2 ? vdecayr_avx512(d, a)
                                : mode == 1 ? vdecayn_avx512(d, a) : vdecay_avx512(d, a));
    }
    for (; i < n; i++)
        y[i] = scan_decayf(dt[i], a2[i]);
}
static TGT_AVX2 void vsoftplus_arr_avx2(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, vsoftplus_avx2(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] = scan_softplus(x[i]);
}
static TGT_AVX512 void vsoftplus_arr_avx512(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, vsoftplus_avx512(_mm512_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] = scan_softplus(x[i]);
}
#endif

float ssmi_scan_softplusf(float x) { return scan_softplus(x); }

int ssmi_scan_vsoftplus(int isa, const float *x, float *y, int64_t n)
{
    if (!ssmi_scan_isa_ok(isa))
        return -1;
#ifdef SSM_SCAN_X86
    if (isa == SSM_SCAN_ISA_AVX512) {
        vsoftplus_arr_avx512(x, y, n);
        return 0;
    }
    if (isa == SSM_SCAN_ISA_AVX2) {
        vsoftplus_arr_avx2(x, y, n);
        return 0;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = scan_softplus(x[i]);
    return 0;
}

float ssmi_scan_decayf(float dt, float a2) { return scan_decayf(dt, a2); }
float ssmi_scan_a2(float A) { return scan_a2(A); }

int ssmi_scan_vdecay(int isa, int mode, const float *dt, const float *a2, float *y, int64_t n)
{
    if (!ssmi_scan_isa_ok(isa) || mode < 0 || mode > 2)
        return -1;
#ifdef SSM_SCAN_X86
    if (isa == SSM_SCAN_ISA_AVX512) {
        vdecay_arr_avx512(mode, dt, a2, y, n);
        return 0;
    }
    if (isa == SSM_SCAN_ISA_AVX2) {
        vdecay_arr_avx2(mode, dt, a2, y, n);
        return 0;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = scan_decayf(dt[i], a2[i]);
    return 0;
}

/* ------------------------------------------------------ per-step parts -- */

/* ------------------------------------------------ shape thresholds --- *
 * Every path and tile size below is a function of the shapes only (never of
 * the thread count), so the bytes never depend on the machine's threads
 * (the sequential path's channel blocks per unit follow the thread count,
 * but they decide only which thread scans which channel).
 * None of the tile sizes changes a number: a tile only decides how much of
 * B and C is transposed at once and which thread does what; the chunk
 * length and the path do change the rounding (a chunk starts from zero and
 * is fixed up), which is why they depend on the shapes alone. */

/* Steps per transposed tile of B and C, by dstate: the N rows of B and C
 * are len apart (often a power of two, so they alias in the caches), each
 * read as a stream of T floats; the [T][N] tiles (16 KiB at N = 16, T =
 * 256) stay in L1/L2 while a block of channels reuses them. */
#define TILE_T_SMALL_N  256   /* N <= 16 */
#define TILE_T_MID_N     64   /* N <= 64 */
#define TILE_T_LARGE_N   16   /* N >  64 */

/* The chunked path has few channels: blocks of at most 4 (its per-thread
 * buffers hold the decays of a whole chunk for each channel of a block). */
#define CHUNK_BLOCK_MAX 4

/* Time chunks: at most 2048 chunks (so the carries, (chunks + 1) * batch *
 * dim * dstate floats, stay small), each at least 1024 steps (the fix-up
 * and the carry chain cost O(dstate) per chunk, negligible against 1024
 * steps) and a multiple of 64 (whole tiles); per-thread chunk buffers
 * (decays and C, chunk * dstate floats each) stay within L2 up to len =
 * 2^22 at dstate 16. */
#define CHUNK_MAX_COUNT 2048
#define CHUNK_MIN_LEN   1024
#define CHUNK_ROUND       64

/* Time-parallel paths only for few channels: batch * dim <= 8 (and batch
 * <= 8) is too little to share among threads over channels, and a
 * sequence of at least two minimal chunks, or there is nothing to share. */
#define FEW_CHANNELS 8

/* Split path: the state is cut into SPLIT_S halves (dstate a multiple of
 * SPLIT_MULT, so each half is whole 8-float AVX2 vectors), each scanned over
 * time tiles of SPLIT_T steps (the transposed B and C of a tile stay in L2);
 * the threads meet once, at the end (see run_split). */
#define SPLIT_S 2
#define SPLIT_MULT 16
#define SPLIT_T 512
/* Steps per tile when the L1 data cache is under 48 KiB (ssmi_l1d_small): the
 * tile's Bt and Ct (32 KiB at the tile lengths above) no longer stay in L1
 * there, and reading B's and C's 32 rows in runs of 1-2 KiB costs most:
 * 32 streams L floats apart reach about half the bandwidth of one
 * (measured on Zen 4, 32 KiB L1: (1,1,16,2^22) 1 thread 69-83 -> 64-75 ms,
 * 2 threads 44-48 -> 38-39 ms, medians of 9 alternating runs).  Zen 5
 * (48 KiB L1) kept the shorter tiles (stop 15: 2048 steps 8% slower). */
#define SPLIT_T_SMALL_L1 2048

/* Spins on a chunk's flag before yielding the CPU: a carry is normally
 * published within the time of a few hundred loads. */
#define SPIN_BEFORE_YIELD 256

/* Steps per tile of the split path: `req` if positive (white-box tests),
 * else `dflt` on CPUs whose L1 data cache holds the tile, SPLIT_T_SMALL_L1
 * on the others; at most L.  The tile length changes no number (see
 * run_split), so it may follow the machine. */
static int64_t split_tile_len(int64_t req, int64_t dflt, int64_t L)
{
    const int64_t T = req > 0 ? req : ssmi_l1d_small() ? SPLIT_T_SMALL_L1 : dflt;
    return T < L ? T : L;
}

/* Floats rounded up to 64 bytes, so every thread's slice stays aligned. */
static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* Steps per transposed tile (does not change any number). */
static int64_t tile_len(int64_t N, int64_t L)
{
    int64_t T = N <= 16 ? TILE_T_SMALL_N : N <= 64 ? TILE_T_MID_N : TILE_T_LARGE_N;
    return T < L ? T : L;
}

/* --------------------------------------------------- sequential path --- */

/* Channel blocks of the sequential path: the lanes of one channel vector
 * (k->vl channels of one group, sharing B and C), scanned over time tiles
 * of T steps (CV_TILE_T = 512 at dstate <= 16, tile_len above): the
 * lane-major tiles of delta (then dt), dt u, u, z, y (5 x 512 x 16 floats)
 * and the group's B, C rows (2 x 512 x dstate) stay in L2, and each row of
 * delta, u, z, y is read in 2 KiB runs (longer runs measured faster than
 * 256-step tiles: 16 rows L apart per array).  A block with at most half a vector of
 * channels (a group narrower than a vector, or the group's last block) runs
 * its channels one at a time through row_tile instead: same arithmetic per
 * channel, same bytes. */

/* The lines of the next tile (m channels of delta, u, z, y and the group's
 * B and C rows): 3 to 4 x m + 2N short streams L apart are more than the
 * hardware prefetchers follow.  cv_tile spreads the prefetches over its
 * state passes (a burst of hundreds would queue behind the miss buffers). */
#define CV_PF_MAX 4096
/* Channel blocks per unit of the sequential path, at most (seq_unit_cvm). */
#define SEQ_SB_MAX 8
/* Outputs of at least this many bytes are written with streaming stores. */
#define SEQ_NT_BYTES (32.0 * 1024 * 1024)
static int64_t cv_prefetch_list(const ssm_scan_args *a, int64_t b, int64_t g,
                                int64_t d0, int64_t m, int64_t t0, int64_t T,
                                const float **pfl, int with_bc)
{
    const int64_t L = a->len, N = a->dstate, G = a->ngroups;
    const int64_t Tn = T < L - t0 ? T : L - t0;
    const int64_t row = (b * a->dim + d0) * L + t0;
    const float *Bg = a->B + (b * G + g) * N * L + t0, *Cg = a->C + (b * G + g) * N * L + t0;
    int64_t np = 0;
    /* 16 floats: one 64-byte line. */
    for (int64_t t = 0; t < Tn; t += 16) {
        for (int64_t c = 0; c < m && np + 4 <= CV_PF_MAX; c++) {
            pfl[np++] = a->delta + row + c * L + t;
            pfl[np++] = a->u + row + c * L + t;
            pfl[np++] = a->y + row + c * L + t;
            if (a->z)
                pfl[np++] = a->z + row + c * L + t;
        }
        for (int64_t n = 0; with_bc && n < N && np + 2 <= CV_PF_MAX; n++) {
            pfl[np++] = Bg + n * L + t;
            pfl[np++] = Cg + n * L + t;
        }
    }
    return np;
}

/* Blocks [blk0, blk0 + nb) of group g (all of them channel-vector blocks,
 * vl channels but perhaps the last), time tiles OUTSIDE and the blocks
 * inside: the group's B and C rows of a tile are copied once and used by
 * every block while they are in L1/L2 (with the blocks outside, a long
 * sequence streams B and C from memory once per block).  Each block keeps
 * its state, A, bias and D in its own small slot.  The arithmetic per
 * channel is seq_unit_cv's: same bytes. */
static void seq_unit_cvm(const ssm_scan_args *a, const scan_kern *k, int64_t b,
                         int64_t g, int64_t blk0, int64_t nb, int64_t T, int ntst,
                         float *w)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t VLn = k->vl, cpg = dim / G;
    float *BC = w, *dl = BC + 2 * pad16(T * N);
    float *ul = dl + pad16(T * VLn), *yl = ul + pad16(T * VLn);
    float *wl = yl + pad16(T * VLn), *slot0 = wl + pad16(T * VLn);
    const int64_t sper = 2 * pad16(N * VLn) + 2 * pad16(VLn);
    const float *Bg = a->B + (b * G + g) * N * L, *Cg = a->C + (b * G + g) * N * L;
    const float *pfl[CV_PF_MAX];
    for (int64_t j = 0; j < nb; j++) {
        const int64_t d0 = g * cpg + (blk0 + j) * VLn;
        const int64_t m = cpg - (blk0 + j) * VLn < VLn ? cpg - (blk0 + j) * VLn : VLn;
        float *Al = slot0 + j * sper, *h = Al + pad16(N * VLn), *bl = h + pad16(N * VLn);
        float *Dl = bl + pad16(VLn);
        k->cv_gather(a->A + d0 * N, N, m, N, Al);
        if (a->h0)
            k->cv_gather(a->h0 + (b * dim + d0) * N, N, m, N, h);
        else
            memset(h, 0, (size_t)(N * VLn) * sizeof(float));
        for (int64_t c = 0; c < VLn; c++) {
            bl[c] = a->delta_bias && c < m ? a->delta_bias[d0 + c] : 0.0f;
            Dl[c] = a->D && c < m ? a->D[d0 + c] : 0.0f;
        }
    }
    for (int64_t t0 = 0; t0 < L; t0 += T) {
        const int64_t Tn = T < L - t0 ? T : L - t0;
        for (int64_t n = 0; n < N; n++) {
            memcpy(BC + n * T, Bg + n * L + t0, (size_t)Tn * sizeof(float));
            memcpy(BC + (N + n) * T, Cg + n * L + t0, (size_t)Tn * sizeof(float));
        }
        for (int64_t j = 0; j < nb; j++) {
            const int64_t d0 = g * cpg + (blk0 + j) * VLn;
            const int64_t m = cpg - (blk0 + j) * VLn < VLn ? cpg - (blk0 + j) * VLn : VLn;
            const int64_t row = (b * dim + d0) * L;
            float *Al = slot0 + j * sper, *h = Al + pad16(N * VLn), *bl = h + pad16(N * VLn);
            float *Dl = bl + pad16(VLn);
            /* Prefetch the next block's rows of this tile, or (last block)
             * the next tile's B, C and first block. */
            int64_t pn = 0;
            if (j + 1 < nb) {
                const int64_t d1 = d0 + VLn;
                const int64_t m1 = cpg - (blk0 + j + 1) * VLn < VLn ? cpg - (blk0 + j + 1) * VLn : VLn;
                pn = cv_prefetch_list(a, b, g, d1, m1, t0, T, pfl, 0);
            } else if (t0 + T < L) {
                const int64_t db = g * cpg + blk0 * VLn;
                const int64_t mb = cpg - blk0 * VLn < VLn ? cpg - blk0 * VLn : VLn;
                pn = cv_prefetch_list(a, b, g, db, mb, t0 + T, T, pfl, 1);
            }
            k->cv_gather(a->delta + row + t0, L, m, Tn, dl);
            k->cv_gather(a->u + row + t0, L, m, Tn, ul);
            /* The z gate is applied by the scatter, on rows (no z tile). */
            k->cv_tile(Tn, N, Al, BC, T, dl, ul, a->delta_bias ? bl : NULL,
                       a->D ? Dl : NULL, a->delta_softplus, wl, h, yl, pfl, pn);
            (ntst ? k->cv_scatter_nt : k->cv_scatter)(yl, m, Tn, a->y + row + t0, L,
                                                      a->z ? a->z + row + t0 : NULL);
        }
    }
#ifdef SSM_SCAN_X86
    if (ntst)
        _mm_sfence();   /* the streamed lines of y, before the unit ends */
#endif
    if (a->h_last)
        for (int64_t j = 0; j < nb; j++) {
            const int64_t d0 = g * cpg + (blk0 + j) * VLn;
            const int64_t m = cpg - (blk0 + j) * VLn < VLn ? cpg - (blk0 + j) * VLn : VLn;
            k->cv_scatter(slot0 + j * sper + pad16(N * VLn), m, N,
                          a->h_last + (b * dim + d0) * N, N, NULL);
        }
}

static void seq_unit_rows(const ssm_scan_args *a, const scan_kern *k, int64_t b,
                          int64_t g, int64_t d0, int64_t m, int64_t T, float *w)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t VLn = k->vl;
    float *Bt = w, *Ct = Bt + pad16(T * N), *dtb = Ct + pad16(T * N);
    float *hs = dtb + 4 * pad16(T * VLn) + pad16(N * VLn);   /* cv_unit's h */
    const float *Bg = a->B + (b * G + g) * N * L, *Cg = a->C + (b * G + g) * N * L;
    for (int64_t d = d0; d < d0 + m; d++) {
        float *hd = hs + (d - d0) * N;
        if (a->h0)
            memcpy(hd, a->h0 + (b * dim + d) * N, (size_t)N * sizeof(float));
        else
            memset(hd, 0, (size_t)N * sizeof(float));
    }
    for (int64_t t0 = 0; t0 < L; t0 += T) {
        const int64_t Tn = T < L - t0 ? T : L - t0;
        k->transpose(Bg, L, t0, Tn, N, Bt);
        k->transpose(Cg, L, t0, Tn, N, Ct);
        for (int64_t d = d0; d < d0 + m; d++) {
            const int64_t off = (b * dim + d) * L + t0;
            k->dt(Tn, a->delta + off, a->delta_bias ? a->delta_bias + d : NULL,
                  a->delta_softplus, dtb);
            k->row_tile(Tn, N, a->A + d * N, Bt, Ct, dtb, a->u + off,
                        hs + (d - d0) * N, a->y + off);
            k->finish(Tn, a->y + off, a->u + off, a->D ? a->D + d : NULL,
                      a->z ? a->z + off : NULL);
        }
    }
    if (a->h_last)
        for (int64_t d = d0; d < d0 + m; d++)
            memcpy(a->h_last + (b * dim + d) * N, hs + (d - d0) * N,
                   (size_t)N * sizeof(float));
}

static ssm_status run_seq(const ssm_scan_args *a, const scan_kern *k)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t cpg = dim / G, VLn = k->vl;
    const int64_t nblk = (cpg + VLn - 1) / VLn;
    /* The group's last block runs by rows when it has at most half a vector. */
    const int64_t last_m = cpg - (nblk - 1) * VLn;
    const int64_t nrow = 2 * last_m > VLn ? 0 : 1, ncv = nblk - nrow;
    /* Blocks per unit: as many as keeps every thread busy, at most
     * SEQ_SB_MAX (see seq_unit_cvm).  This decides only which thread scans
     * which channels, never a number (each channel's arithmetic is the same
     * in any unit), so it may follow the thread count. */
    const int64_t nth = ssmi_max_threads() < 1 ? 1 : ssmi_max_threads();
    const int64_t ncv_all = a->batch * G * ncv;
    int64_t SB = (ncv_all + nth - 1) / nth;
    SB = SB < 1 ? 1 : SB > SEQ_SB_MAX ? SEQ_SB_MAX : SB;
    SB = SB > ncv ? (ncv > 0 ? ncv : 1) : SB;
    const int64_t nsb = (ncv + SB - 1) / SB, upg = nsb + nrow;
    const int64_t units = a->batch * G * upg;
    /* y streamed past the caches (non-temporal stores) when it is far
     * larger than them: a shape-only choice that changes no value. */
    const int ntst = (double)a->batch * (double)dim * (double)L * sizeof(float)
                     >= SEQ_NT_BYTES;
    int64_t T = N <= 16 ? (L < 512 ? L : 512) : tile_len(N, L);
    T = T < CV_TILE_T ? T : CV_TILE_T;
    const int64_t per0 = 2 * pad16(T * N) + 4 * pad16(T * VLn) + 2 * pad16(N * VLn)
                        + 2 * pad16(VLn) + pad16(T * VLn);
    const int64_t per1 = 2 * pad16(T * N) + 4 * pad16(T * VLn)
                         + SB * (2 * pad16(N * VLn) + 2 * pad16(VLn));
    const int64_t per = per0 > per1 ? per0 : per1;
    ssmi_scratch sc;
    if (!ssmi_sizes_ok(NULL, sizeof(float), 2, T, N)
        || !ssmi_sizes_ok(NULL, sizeof(float), 2, VLn, N)
        || !ssmi_sizes_ok(NULL, sizeof(float), 1, per))
        return SSM_FAIL(SSM_ERR_NOMEM);
    SSM_TRY(ssmi_scratch_init(&sc, (size_t)per * sizeof(float), units));

#pragma omp parallel num_threads(sc.nt)
    {
        float *w = ssmi_scratch_mine(&sc);
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < units; i++) {
            const int64_t b = i / (G * upg), r = i % (G * upg);
            const int64_t g = r / upg, ui = r % upg;
            if (ui < nsb) {
                const int64_t blk0 = ui * SB;
                const int64_t nb = ncv - blk0 < SB ? ncv - blk0 : SB;
                seq_unit_cvm(a, k, b, g, blk0, nb, T, ntst, w);
            } else {
                const int64_t d0 = g * cpg + ncv * VLn;
                seq_unit_rows(a, k, b, g, d0, cpg - ncv * VLn, T, w);
            }
        }
    }
    ssmi_scratch_free(&sc);
    return SSM_OK;
}

/* ------------------------------------------------------ chunked path --- */

int64_t ssmi_scan_auto_chunk(int64_t len)
{
    /* See CHUNK_MAX_COUNT. */
    int64_t c = (len + CHUNK_MAX_COUNT - 1) / CHUNK_MAX_COUNT;
    c = (c + CHUNK_ROUND - 1) / CHUNK_ROUND * CHUNK_ROUND;
    return c < CHUNK_MIN_LEN ? CHUNK_MIN_LEN : c;
}

int ssmi_scan_auto_path(int64_t batch, int64_t dim, int64_t dstate, int64_t len)
{
    /* Few channels and a long sequence: too little to share among threads
     * over channels, so share time as well.  A single channel with an even
     * number of 8-float vectors of state instead splits its state in two
     * halves: no fix-up pass, so nearly twice the speed of one thread on two
     * (the chunked path does ~25% extra work).  Shapes only. */
    if (batch <= FEW_CHANNELS && batch * dim <= FEW_CHANNELS &&
        len >= 2 * ssmi_scan_auto_chunk(len))
        return batch * dim == 1 && dstate % SPLIT_MULT == 0 ? SSM_SCAN_PATH_SPLIT
                                                            : SSM_SCAN_PATH_CHUNKED;
    return SSM_SCAN_PATH_SEQ;
}

static void spin_wait(atomic_int *f)
{
    unsigned spins = 0;
    while (!atomic_load_explicit(f, memory_order_acquire)) {
        if (++spins > SPIN_BEFORE_YIELD)
            sched_yield();
    }
}

/* The shared view of one chunked scan. */
typedef struct chunk_ctx {
    const ssm_scan_args *a;
    const scan_kern *k;
    int64_t N, L, dim, G, cpg, cbs, nblk;
    int64_t su;          /* units in space: (batch, group, channel block) */
    int64_t nch, LC, T;  /* chunks, chunk length, tile length */
    int64_t nbd;         /* batch * dim */
    float *car;          /* [nch + 1][batch*dim][N] carries entering chunk k */
    atomic_int *flag;    /* [nch + 1][su]: carry of (chunk, unit) published */
} chunk_ctx;

/* One thread's buffers (a slice of the scratch). */
typedef struct chunk_buf {
    float *Bt;   /* [T][N] B tile */
    float *Cc;   /* [LC][N] C of the whole chunk (the fix-up reads it again) */
    float *dtb;  /* [T] dt tile */
    float *hs;   /* [cbs][N] local states */
    float *hp;   /* [cbs][N] fix-up states */
    float *Qs;   /* [cbs][LC][N] decays of the chunk */
} chunk_buf;

/* One unit of work: chunk kc of the channels [d0, d1) of batch b, group g. */
typedef struct chunk_unit {
    int64_t kc, s, b, g, d0, d1, tb, te;
} chunk_unit;

static int64_t chunk_per_thread(const chunk_ctx *c)
{
    return pad16(c->T * c->N) + pad16(c->LC * c->N) + pad16(c->T)
           + 2 * pad16(c->cbs * c->N) + pad16(c->cbs * c->LC * c->N);
}

static chunk_buf chunk_carve(const chunk_ctx *c, float *w)
{
    chunk_buf bf;
    bf.Bt = w;
    bf.Cc = bf.Bt + pad16(c->T * c->N);
    bf.dtb = bf.Cc + pad16(c->LC * c->N);
    bf.hs = bf.dtb + pad16(c->T);
    bf.hp = bf.hs + pad16(c->cbs * c->N);
    bf.Qs = bf.hp + pad16(c->cbs * c->N);
    return bf;
}

static chunk_unit chunk_unit_of(const chunk_ctx *c, int64_t i)
{
    chunk_unit u;
    u.kc = i / c->su;
    u.s = i % c->su;
    u.b = u.s / (c->G * c->nblk);
    const int64_t r = u.s % (c->G * c->nblk), blk = r % c->nblk;
    u.g = r / c->nblk;
    u.d0 = u.g * c->cpg + blk * c->cbs;
    u.d1 = u.d0 + c->cbs < (u.g + 1) * c->cpg ? u.d0 + c->cbs : (u.g + 1) * c->cpg;
    u.tb = u.kc * c->LC;
    u.te = u.tb + c->LC < c->L ? u.tb + c->LC : c->L;
    return u;
}

/* Step 1: scan the chunk from a zero state (chunk 0: from h0, and that is
 * the final answer for its outputs).  Later chunks store their decays in
 * Qs and the sum of their dt per channel in Ssum (the whole chunk's decay
 * is exp(A sum dt)). */
static void chunk_scan_local(const chunk_ctx *c, const chunk_buf *bf,
                             const chunk_unit *u, double *Ssum)
{
    const ssm_scan_args *a = c->a;
    const scan_kern *k = c->k;
    const int64_t N = c->N, L = c->L, dim = c->dim, T = c->T, LC = c->LC;
    const float *Bg = a->B + (u->b * c->G + u->g) * N * L;
    const float *Cg = a->C + (u->b * c->G + u->g) * N * L;
    for (int64_t d = u->d0; d < u->d1; d++) {
        float *hd = bf->hs + (d - u->d0) * N;
        if (u->kc == 0 && a->h0)
            memcpy(hd, a->h0 + (u->b * dim + d) * N, (size_t)N * sizeof(float));
        else
            memset(hd, 0, (size_t)N * sizeof(float));
    }
    for (int64_t t0 = u->tb; t0 < u->te; t0 += T) {
        const int64_t Tn = T < u->te - t0 ? T : u->te - t0;
        float *Ct = bf->Cc + (t0 - u->tb) * N;
        k->transpose(Bg, L, t0, Tn, N, bf->Bt);
        k->transpose(Cg, L, t0, Tn, N, Ct);
        for (int64_t d = u->d0; d < u->d1; d++) {
            const int64_t off = (u->b * dim + d) * L + t0;
            k->dt(Tn, a->delta + off, a->delta_bias ? a->delta_bias + d : NULL,
                  a->delta_softplus, bf->dtb);
            if (u->kc == 0) {
                k->tile(Tn, N, a->A + d * N, bf->Bt, Ct, bf->dtb, a->u + off,
                        bf->hs + (d - u->d0) * N, a->y + off, NULL);
                k->finish(Tn, a->y + off, a->u + off,
                          a->D ? a->D + d : NULL, a->z ? a->z + off : NULL);
            } else {
                for (int64_t t = 0; t < Tn; t++)
                    Ssum[d - u->d0] += bf->dtb[t];
                k->tile(Tn, N, a->A + d * N, bf->Bt, Ct, bf->dtb, a->u + off,
                        bf->hs + (d - u->d0) * N, a->y + off,
                        bf->Qs + ((d - u->d0) * LC + (t0 - u->tb)) * N);
            }
        }
    }
}

/* Step 2: wait for the carry entering the chunk, and publish the state
 * leaving it, hlocal + P carry_in with the decay of the whole chunk
 * P_n = exp(A_n sum_t dt_t) in double (fixed order), before the fix-up so
 * the next chunk need not wait for that. */
static void chunk_carry(const chunk_ctx *c, const chunk_buf *bf,
                        const chunk_unit *u, const double *Ssum)
{
    const ssm_scan_args *a = c->a;
    const int64_t N = c->N, dim = c->dim, nbd = c->nbd;
    if (u->kc > 0)
        spin_wait(&c->flag[u->kc * c->su + u->s]);
    for (int64_t d = u->d0; d < u->d1; d++) {
        float *hd = bf->hs + (d - u->d0) * N;
        if (u->kc > 0) {
            const float *cin = c->car + (u->kc * nbd + u->b * dim + d) * N;
            const float *Ad = a->A + d * N;
            for (int64_t n = 0; n < N; n++)
                hd[n] = fmaf((float)exp((double)Ad[n] * Ssum[d - u->d0]), cin[n], hd[n]);
        }
        if (u->kc + 1 < c->nch)
            memcpy(c->car + ((u->kc + 1) * nbd + u->b * dim + d) * N, hd,
                   (size_t)N * sizeof(float));
        else if (a->h_last)
            memcpy(a->h_last + (u->b * dim + d) * N, hd, (size_t)N * sizeof(float));
    }
    if (u->kc + 1 < c->nch)
        atomic_store_explicit(&c->flag[(u->kc + 1) * c->su + u->s], 1, memory_order_release);
}

/* Step 3 (chunks after the first): run the carry through the stored decays,
 * y_t += sum_n C_t,n (prod_{s<=t} a_s,n) carry_n, then D and z. */
static void chunk_fixup(const chunk_ctx *c, const chunk_buf *bf, const chunk_unit *u)
{
    const ssm_scan_args *a = c->a;
    const int64_t N = c->N, L = c->L, dim = c->dim;
    for (int64_t d = u->d0; d < u->d1; d++) {
        const int64_t off = (u->b * dim + d) * L + u->tb;
        float *hpd = bf->hp + (d - u->d0) * N;
        memcpy(hpd, c->car + (u->kc * c->nbd + u->b * dim + d) * N, (size_t)N * sizeof(float));
        c->k->fixup(u->te - u->tb, N, bf->Qs + (d - u->d0) * c->LC * N, bf->Cc, hpd,
                    a->y + off);
        c->k->finish(u->te - u->tb, a->y + off, a->u + off,
                     a->D ? a->D + d : NULL, a->z ? a->z + off : NULL);
    }
}

static ssm_status run_chunked(const ssm_scan_args *a, const scan_kern *k,
                              int64_t LC)
{
    chunk_ctx c;
    c.a = a; c.k = k;
    c.N = a->dstate; c.L = a->len; c.dim = a->dim; c.G = a->ngroups;
    c.cpg = c.dim / c.G;
    c.cbs = c.cpg < CHUNK_BLOCK_MAX ? c.cpg : CHUNK_BLOCK_MAX;
    c.nblk = (c.cpg + c.cbs - 1) / c.cbs;
    c.su = a->batch * c.G * c.nblk;
    c.LC = LC;
    c.nch = (c.L + LC - 1) / LC;
    c.T = tile_len(c.N, LC < c.L ? LC : c.L);
    c.nbd = a->batch * c.dim;
    const int64_t units = c.nch * c.su, per = chunk_per_thread(&c);
    int64_t ncar, nflag;
    if (!ssmi_sizes_ok(NULL, sizeof(float), 1, per)
        || !ssmi_sizes_ok(&ncar, sizeof(float), 3, c.nch + 1, c.nbd, c.N)
        || !ssmi_sizes_ok(&nflag, sizeof(atomic_int), 2, c.nch + 1, c.su))
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, (size_t)per * sizeof(float), units));
    c.car = ssmi_alloc((size_t)ncar, sizeof(float));
    c.flag = ssmi_alloc((size_t)nflag, sizeof(atomic_int));
    if (!c.car || !c.flag) {
        ssmi_scratch_free(&sc);
        ssmi_free(c.car);
        ssmi_free(c.flag);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t i = 0; i < nflag; i++)
        atomic_init(&c.flag[i], 0);

#pragma omp parallel num_threads(sc.nt)
    {
        const chunk_buf bf = chunk_carve(&c, ssmi_scratch_mine(&sc));
        /* Increasing order per thread (static round robin): see top. */
#pragma omp for schedule(static, 1)
        for (int64_t i = 0; i < units; i++) {
            const chunk_unit u = chunk_unit_of(&c, i);
            double Ssum[CHUNK_BLOCK_MAX] = { 0.0 };   /* sum of dt, per channel */
            chunk_scan_local(&c, &bf, &u, Ssum);
            chunk_carry(&c, &bf, &u, Ssum);
            if (u.kc > 0)
                chunk_fixup(&c, &bf, &u);
        }
    }
    ssmi_scratch_free(&sc);
    ssmi_free(c.car);
    ssmi_free(c.flag);
    return SSM_OK;
}

/* --------------------------------------------------------- split path --- */

/* One channel (batch = dim = 1): the N states are cut into two halves of
 * N/2 (N a multiple of 16, so each half is whole 8-float vectors), each a
 * sequential scan over the whole sequence by its own thread, in tiles of T
 * steps.  Half 0 writes its partial sums of C h into y, half 1 into a ring
 * of SPLIT_RING tiles; whichever half finishes a tile second adds the two
 * (y = half 0 + half 1, in that order) and applies D and z to it, then
 * frees its ring slot.  Half 0 never waits; half 1 waits only when it is
 * SPLIT_RING tiles ahead (its slot not yet freed), so a descheduled thread
 * holds the other up only then and at the end.  (Earlier versions met at a
 * barrier every 8192 steps, then once at the end with half 1's sums in a
 * fresh [len] row: its first touch, 4096 page faults at len 2^22, fell on
 * one thread.)  The halves and the tile length depend on the shapes only,
 * and each tile gets the same operations whoever finishes it, so the bytes
 * do not depend on the thread count (one thread runs half 0, then half 1,
 * which then finishes every tile). */
#define SPLIT_RING 16

/* Tile states in cnt[i]: 0, 1 (one half done), 2 (both: ready to finish),
 * 4 (being finished), 3 (finished: ring slot free). */
enum { SPLIT_READY = 2, SPLIT_DONE = 3, SPLIT_CLAIMED = 4 };

/* Finish tile i if it is ready and nobody has claimed it: y = half 0 +
 * half 1 (in that order), then D and z.  Returns 1 if this call did it. */
static int split_try_finish(const ssm_scan_args *a, const scan_kern *k,
                            atomic_int *cnt, const float *ring, int64_t T,
                            int64_t i)
{
    int want = SPLIT_READY;
    if (!atomic_compare_exchange_strong_explicit(&cnt[i], &want, SPLIT_CLAIMED,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        return 0;
    const int64_t t0 = i * T, Tn = T < a->len - t0 ? T : a->len - t0;
    const float *r = ring + (i % SPLIT_RING) * T;
    float *y = a->y + t0;
    for (int64_t t = 0; t < Tn; t++)
        y[t] = y[t] + r[t];
    k->finish(Tn, y, a->u + t0, a->D, a->z ? a->z + t0 : NULL);
    atomic_store_explicit(&cnt[i], SPLIT_DONE, memory_order_release);
    return 1;
}

/* Wait until tile i is finished, finishing it here if it is ready. */
static void split_wait_done(const ssm_scan_args *a, const scan_kern *k,
                            atomic_int *cnt, const float *ring, int64_t T,
                            int64_t i)
{
    unsigned spins = 0;
    for (;;) {
        const int c = atomic_load_explicit(&cnt[i], memory_order_acquire);
        if (c == SPLIT_DONE)
            return;
        if (c == SPLIT_READY && split_try_finish(a, k, cnt, ring, T, i))
            return;
        if (++spins > SPIN_BEFORE_YIELD)
            sched_yield();
    }
}

#ifdef SSM_SCAN_X86
/* One thread, dstate 16 on AVX-512: both halves in one vector
 * (split16_tile_avx512), tiles of SPLIT_T1 steps where L1 holds 48 KiB
 * (Bt and Ct, 32 KiB, stay in it; 2048 steps were 8% slower on Zen 5),
 * SPLIT_T_SMALL_L1 on smaller L1s (split_tile_len).  The tile length
 * changes no number (see run_split). */
#define SPLIT_T1 256
static ssm_status run_split1(const ssm_scan_args *a, const scan_kern *k, int64_t treq)
{
    const int64_t L = a->len, T = split_tile_len(treq, SPLIT_T1, L);
    float *buf = ssmi_alloc((size_t)(2 * pad16(T * 16) + pad16(T) + 16), sizeof(float));
    if (!buf)
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *Bt = buf, *Ct = Bt + pad16(T * 16), *dtb = Ct + pad16(T * 16);
    float *hs = dtb + pad16(T);
    if (a->h0)
        memcpy(hs, a->h0, 16 * sizeof(float));
    else
        memset(hs, 0, 16 * sizeof(float));
    for (int64_t t0 = 0; t0 < L; t0 += T) {
        const int64_t Tn = T < L - t0 ? T : L - t0;
        k->transpose(a->B, L, t0, Tn, 16, Bt);
        k->transpose(a->C, L, t0, Tn, 16, Ct);
        k->dt(Tn, a->delta + t0, a->delta_bias, a->delta_softplus, dtb);
        const int64_t nT = L - t0 - Tn < T ? L - t0 - Tn : T;
        split16_tile_avx512(Tn, a->A, Bt, Ct, dtb, a->u + t0, hs, a->y + t0,
                            nT > 0 ? a->B + t0 + Tn : NULL, a->C + t0 + Tn, L, nT);
        k->finish(Tn, a->y + t0, a->u + t0, a->D, a->z ? a->z + t0 : NULL);
    }
    if (a->h_last)
        memcpy(a->h_last, hs, 16 * sizeof(float));
    ssmi_free(buf);
    return SSM_OK;
}
#endif

/* fused16: run_split1 may do a one-thread call (AVX-512, dstate 16);
 * half8: the kernel of halves of 8 states, or NULL for k->tile. */
static ssm_status run_split(const ssm_scan_args *a, const scan_kern *k, int fused16,
                            split_half_fn half8, int64_t treq)
{
    const int64_t N = a->dstate, L = a->len, Ns = N / SPLIT_S;
    const int64_t T = split_tile_len(treq, SPLIT_T, L);
    const int64_t ntile = (L + T - 1) / T;
    int nt = ssmi_max_threads();
    nt = nt < 1 ? 1 : nt > SPLIT_S ? SPLIT_S : nt;
#ifdef SSM_SCAN_X86
    if (nt == 1 && fused16)
        return run_split1(a, k, treq);
#else
    (void)fused16;
#endif
    /* Per half: Bt, Ct [T][Ns], dt [T], hs [Ns]; then the ring of half 1,
     * [SPLIT_RING][T]. */
    const int64_t per = 2 * pad16(T * Ns) + pad16(T) + pad16(Ns);
    const int64_t hoff = 2 * pad16(T * Ns) + pad16(T);
    int64_t tot;
    if (!ssmi_sizes_ok(&tot, sizeof(float), 1, SPLIT_S * per + SPLIT_RING * T)
        || !ssmi_sizes_ok(NULL, sizeof(atomic_int), 1, ntile + SPLIT_S))
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *buf = ssmi_alloc((size_t)tot, sizeof(float));
    atomic_int *cnt = ssmi_alloc((size_t)(ntile + SPLIT_S), sizeof(atomic_int));
    if (!buf || !cnt) {
        ssmi_free(buf);
        ssmi_free(cnt);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    atomic_int *gone = cnt + ntile;   /* [SPLIT_S]: half s has run every tile */
    for (int64_t i = 0; i < ntile + SPLIT_S; i++)
        atomic_init(&cnt[i], 0);
    float *ring = buf + SPLIT_S * per;
    for (int s = 0; s < SPLIT_S; s++) {
        float *hs = buf + s * per + hoff;
        if (a->h0)
            memcpy(hs, a->h0 + s * Ns, (size_t)Ns * sizeof(float));
        else
            memset(hs, 0, (size_t)Ns * sizeof(float));
    }
#pragma omp parallel num_threads(nt)
    {
        /* One thread: half 0, then half 1. */
#pragma omp for schedule(static) nowait
        for (int s = 0; s < SPLIT_S; s++) {
            float *w = buf + s * per;
            float *Bt = w, *Ct = Bt + pad16(T * Ns), *dtb = Ct + pad16(T * Ns);
            float *hs = w + hoff;
            for (int64_t i = 0; i < ntile; i++) {
                const int64_t t0 = i * T, Tn = T < L - t0 ? T : L - t0;
                if (s == 1 && i >= SPLIT_RING)   /* the slot's previous tile */
                    split_wait_done(a, k, cnt, ring, T, i - SPLIT_RING);
                k->transpose(a->B + s * Ns * L, L, t0, Tn, Ns, Bt);
                k->transpose(a->C + s * Ns * L, L, t0, Tn, Ns, Ct);
                k->dt(Tn, a->delta + t0, a->delta_bias, a->delta_softplus, dtb);
                float *out = s == 0 ? a->y + t0 : ring + (i % SPLIT_RING) * T;
                if (half8) {
                    const int64_t nT = L - t0 - Tn < T ? L - t0 - Tn : T;
                    half8(Tn, a->A + s * Ns, Bt, Ct, dtb, a->u + t0, hs, out,
                          nT > 0 ? a->B + s * Ns * L + t0 + Tn : NULL,
                          a->C + s * Ns * L + t0 + Tn, L, nT);
                } else {
                    k->tile(Tn, Ns, a->A + s * Ns, Bt, Ct, dtb, a->u + t0, hs, out, NULL);
                }
                /* The second half to get here (acq_rel: it sees the other's
                 * sums) finishes the tile, unless the other half has run
                 * all its tiles: then that one, idle, takes it. */
                if (atomic_fetch_add_explicit(&cnt[i], 1, memory_order_acq_rel) == 1
                    && !atomic_load_explicit(&gone[1 - s], memory_order_acquire))
                    (void)split_try_finish(a, k, cnt, ring, T, i);
            }
            atomic_store_explicit(&gone[s], 1, memory_order_release);
        }
        /* Every tile not finished yet, by whichever thread is free. */
        for (int64_t i = 0; i < ntile; i++)
            split_wait_done(a, k, cnt, ring, T, i);
    }
    if (a->h_last)
        for (int s = 0; s < SPLIT_S; s++)
            memcpy(a->h_last + s * Ns, buf + s * per + hoff,
                   (size_t)Ns * sizeof(float));
    ssmi_free(buf);
    ssmi_free(cnt);
    return SSM_OK;
}

/* --------------------------------------------------------- step path --- */

/* Below this many state updates (batch * dim * dstate) one step is done by
 * the calling thread: waking the team costs one to a few microseconds, a
 * state update a few nanoseconds (with the exp), so 4096 updates (256
 * channels at dstate 16, ~10 us) are where two threads start to pay; the
 * steps of real Mamba layers (d_inner >= 1536) are all above it. */
#define STEP_PAR_MIN 4096

/* One step (len = 1) with the state updated in place and no workspace at
 * all, so streaming never allocates: with L = 1 the transposed tiles of the
 * scan are the rows B[b,g,:] and C[b,g,:] themselves (Bt[0][n] =
 * B[b,g,n,0]) and the row kernel may run on h directly.  Its arithmetic per
 * channel is that of every kernel of run_seq (channel vectors included), so
 * this is the sequential scan with len = 1, bit for bit.  One writer per
 * (b, d): the bytes do not depend on the thread count. */
static void run_step(int64_t batch, int64_t dim, int64_t N, int64_t G,
                     float *h, const float *u, const float *delta,
                     const float *A, const float *B, const float *C,
                     const float *D, const float *z, const float *bias,
                     int softplus, float *y, const scan_kern *k)
{
    const int64_t cpg = dim / G, rows = batch * dim;
#pragma omp parallel for schedule(static) if (rows * N > STEP_PAR_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const int64_t b = i / dim, d = i % dim, g = d / cpg;
        const float *Bg = B + (b * G + g) * N, *Cg = C + (b * G + g) * N;
        float dt;
        k->dt(1, delta + i, bias ? bias + d : NULL, softplus, &dt);
        k->row_tile(1, N, A + d * N, Bg, Cg, &dt, u + i, h + i * N, y + i);
        k->finish(1, y + i, u + i, D ? D + d : NULL, z ? z + i : NULL);
    }
}

/* ---------------------------------------------------------- validation -- */

static ssm_status check_shapes(int64_t batch, int64_t dim, int64_t dstate,
                               int64_t len, int64_t ngroups)
{
    int64_t n;
    if (batch < 1 || dim < 1 || dstate < 1 || len < 1 || ngroups < 1
        || ngroups > dim || dim % ngroups != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&n, sizeof(float), 3, batch, dim, len)
        || !ssmi_sizes_ok(&n, sizeof(float), 2, dim, dstate)
        || !ssmi_sizes_ok(&n, sizeof(float), 3, batch, dim, dstate)
        || !ssmi_sizes_ok(&n, sizeof(float), 4, batch, ngroups, dstate, len))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

static ssm_status check_args(const ssm_scan_args *a)
{
    if (!a)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(check_shapes(a->batch, a->dim, a->dstate, a->len, a->ngroups));
    if (!a->u || !a->delta || !a->A || !a->B || !a->C || !a->y)
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssmi_selective_scan_ex(const ssm_scan_args *args, int path,
                                 int64_t chunk_len, int isa)
{
    SSM_TRY(check_args(args));
    if (path < SSM_SCAN_PATH_AUTO || path > SSM_SCAN_PATH_SPLIT || chunk_len < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (path == SSM_SCAN_PATH_SPLIT
        && (args->batch * args->dim != 1 || args->dstate % SPLIT_MULT != 0))
        return SSM_FAIL(SSM_ERR_ARG);
    scan_kern k;
    if (get_kern(isa, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (path == SSM_SCAN_PATH_AUTO)
        path = ssmi_scan_auto_path(args->batch, args->dim, args->dstate, args->len);
    if (path == SSM_SCAN_PATH_SPLIT) {
        /* Halves of 8 states are one AVX2 vector but half an AVX-512 one:
         * there the AVX2 kernels run them, or split8x2_tile_avx512 and
         * split16_tile_avx512 with the same bytes. */
        const int eff = isa == SSM_SCAN_ISA_AUTO ? ssmi_scan_best_isa() : isa;
        if (eff == SSM_SCAN_ISA_AVX512 && (args->dstate / SPLIT_S) % 16 != 0) {
            /* dt and the finish stay AVX-512 (they run over time). */
            const scan_kern k512 = k;
            if (get_kern(SSM_SCAN_ISA_AVX2, &k) != 0)
                return SSM_FAIL(SSM_ERR_ARG);
            k.dt = k512.dt;
            k.finish = k512.finish;
        }
        split_half_fn half8 = NULL;
#ifdef SSM_SCAN_X86
        if (args->dstate == 16)
            half8 = eff == SSM_SCAN_ISA_AVX512 ? split8x2_tile_avx512
                  : eff == SSM_SCAN_ISA_AVX2 ? split8_tile_avx2 : NULL;
#endif
        return run_split(args, &k, eff == SSM_SCAN_ISA_AVX512 && args->dstate == 16, half8,
                         chunk_len);
    }
    if (path == SSM_SCAN_PATH_CHUNKED) {
        int64_t LC = chunk_len > 0 ? chunk_len : ssmi_scan_auto_chunk(args->len);
        if (LC > args->len)
            LC = args->len;
        return run_chunked(args, &k, LC);
    }
    return run_seq(args, &k);
}

ssm_status ssm_selective_scan(const ssm_scan_args *args)
{
    return ssmi_selective_scan_ex(args, SSM_SCAN_PATH_AUTO, 0, SSM_SCAN_ISA_AUTO);
}

ssm_status ssm_selective_step(int64_t batch, int64_t dim, int64_t dstate,
                              int64_t ngroups, float *h, const float *u,
                              const float *delta, const float *A,
                              const float *B, const float *C, const float *D,
                              const float *z, const float *delta_bias,
                              int delta_softplus, float *y)
{
    SSM_TRY(check_shapes(batch, dim, dstate, 1, ngroups));
    if (!h || !u || !delta || !A || !B || !C || !y)
        return SSM_FAIL(SSM_ERR_ARG);
    scan_kern k;
    if (get_kern(SSM_SCAN_ISA_AUTO, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    run_step(batch, dim, dstate, ngroups, h, u, delta, A, B, C, D, z,
             delta_bias, delta_softplus, y, &k);
    return SSM_OK;
}
