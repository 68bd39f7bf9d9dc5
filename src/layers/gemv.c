/*
 * gemv.c -- small-batch X W^T for decoding steps: every weight row read
 * once for all tokens (see gemv.h for the contract and the rounding).
 *
 * Layout of the work.  The output rows are cut into blocks of RB rows
 * (RB from K and the weight type only: a block of W fills about 96 KiB,
 * so it stays in L2 while every group of tokens passes over it); OpenMP
 * hands whole blocks to threads.  Inside a block, tokens go in groups of
 * G (8, 4, 2 or 1) and rows in tiles of R; the micro-kernel keeps R x G
 * accumulators of 16 lanes in registers, loads each 16-wide piece of a
 * weight row once and multiplies it into the G tokens, and loads each
 * token piece once for the R rows (KEEP).  At G = 8 (AVX-512) a tile is
 * 3 rows: 24 FMAs for 11 loads, ~80 GFMA/s from L2 on Zen 5 (the former
 * 2 x 8 tile, its token loads folded into the FMAs, ran 18 loads per 16
 * FMAs at ~40).  At G = 1 it is a plain GEMV bound by reading W (8 rows
 * at once: 8 independent streams).
 *
 * Every micro-kernel computes the same thing per output (gemv.h): lane q
 * accumulates k = q mod 16 in increasing k (the tail zero padded), then
 * the fixed tree.  So the grouping (which depends on M) never changes a
 * bit either: token b's output is the same in a batch of 1 or of 8.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"
#include "layers/gemv.h"
#include "scan/scan_vmath.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMV_X86 1
#include <immintrin.h>
#endif

/* The generic path must not fuse (gemv.h promises it rounds products);
 * GCC in ISO C mode does not contract, clang does unless told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* Multiply-adds below which one OpenMP region costs more than it saves. */
#define PAR_MIN 65536
/* Target bytes of W per row block. */
#define BLOCK_BYTES (96 * 1024)
/* 8 tokens with K > KSPLIT_MIN: the rows go in chunks of KSPLIT weights,
 * so that the chunk of the 8 token rows (16 KiB) stays in L1 (48 KiB on
 * Zen 5) while the tile's
 * weights stream past; whole rows of 8 tokens at K = 1536 (out_proj)
 * fill L1 alone.  SPLIT_TILES tiles (24 rows, a row block) go through one
 * chunk before the next, their 24 lane sums each kept in between (12
 * KiB).  Measured (Zen 5, the out_proj of 24 Mamba layers, 1536 -> 768 at
 * batch 8, alternating in one process): whole rows 5.5-6.7 ms at 1
 * thread, 3.45 at 2; chunks of 768 4.7-4.8 and 3.0-3.5, of 512 4.7 and
 * 2.7; 256 slower.  K = 768 (in_proj) stays whole. */
#define KSPLIT_MIN 1024
#define KSPLIT 512
#define SPLIT_TILES 8
#define SPLIT_BUF(name) _Alignas(64) float name[SPLIT_TILES][24 * 16]
/* Software prefetch.  One token: PFD row tiles ahead at the same k (rows
 * are contiguous, so this streams W ahead of the multiply; measured on Zen
 * 5, LM head 50280 x 768: 2 beat 1 and 4).  Several tokens: the tile's
 * rows are read as one linear stream, R pieces of 16 weights a step of k,
 * and the same number of bytes is prefetched PF_FAR bytes ahead.  Measured
 * at batch 8 from memory (Zen 5, 1 thread, 288 MB of 768-wide rows): the
 * former PFD tiles ahead streamed 17-18 GB/s, the linear sweep 23-24 (one
 * token: 31-34); the in_proj, x_proj, dt_proj and out_proj of 24 Mamba
 * layers took 19.3 ms instead of 21.6.  A far distance of 12-48 KiB was
 * as good as 18, 0.25-6 MiB (into L3) worse; the tile-interleaved
 * (pre-packed) layout no better.  With KICK below, the far prefetch as
 * NTA and no second one 3 KiB ahead into L1 (the former T1 + T0 pair):
 * those products 18.7-19.1 -> 18.0-18.6 ms over six alternating runs (the
 * same at 2 threads and for BF16 rows); the 3 x 8 tile at K = 768 1.08-1.10x.
 * Why NTA does better is not known here (this VM has no performance
 * counters); re-measure on other CPUs. */
#define PFD 2
#define PF_FAR (18 * 1024)
/* Where L1 is under 48 KiB (ssmi_l1d_small; the kernels' SMALL = 1
 * instances, the *_L2 sets) every prefetch above goes into L2 (T1): PFD
 * tiles of 8 rows of K = 768-1536 floats are 48-96 KiB ahead, past Zen
 * 4's 32 KiB L1, and NTA lines there seem to be dropped before use.
 * Measured on Zen 4 (1 thread, 288 MB of rows from memory, alternating):
 * one token T0 15.7-20.4 GB/s, T1 22.1-27.0 (PFD 3 or 4 alike); 8 tokens
 * at K = 768 NTA 8.4-10.0, T1 17.4-22.0, at K = 1536 (the split 3 x 8
 * tile) 11.9-12.0 -> 14.0-15.4.  Zen 5 (48 KiB L1) keeps T0 / NTA,
 * measured there as above. */
#define PF_ONE(SMALL) ((SMALL) ? _MM_HINT_T1 : _MM_HINT_T0)
#define PF_MANY(SMALL) ((SMALL) ? _MM_HINT_T1 : _MM_HINT_NTA)
#define PREFETCH(W, ldw, k, r, R, G, WT, SMALL)                              \
    do {                                                                     \
        if (G > 1) {                                                         \
            const char *pl_ = (const char *)(W) +                            \
                (size_t)((k) * (R) + 16 * (r)) * sizeof(WT);                 \
            _mm_prefetch(pl_ + PF_FAR, PF_MANY(SMALL));                      \
        } else {                                                             \
            _mm_prefetch((const char *)((W) + ((r) + PFD * (R)) * (ldw) + (k)), \
                         PF_ONE(SMALL));                                     \
        }                                                                    \
    } while (0)

/* Several tokens, at the start of each tile: the first KICK_LINES lines
 * of each row KICK_TILES tiles ahead, into L2.  The linear prefetch alone
 * leaves the memory idle part of the time once the FMAs fill the core's
 * window (at 8 tokens each 64 bytes of W carry 8 FMAs, so the window
 * spans ~2 KiB of W); touching the starts of rows ahead early starts the
 * hardware's streams on them (measured, 1 thread, Zen 5, 288 MB of rows
 * from memory, 3 x 8 tile: K = 768 21.5-22.1 -> 23.9-24.2 GB/s, K = 1536
 * 12.3-14.8 -> 14.2-17.1; 2, 4 or 6 tiles ahead alike, 4 lines or 8
 * tiles no better).  The products of 24 Mamba layers at batch 8: 19.4-20.0
 * -> 17.4-18.3 ms (float), 11.9 -> 10.1-10.4 ms (BF16 rows, widened). */
#define KICK_TILES 4
#define KICK_LINES 2
#define KICK(W, ldw, R, G)                                                   \
    do {                                                                     \
        if (G > 1)                                                           \
            for (int r_ = 0; r_ < (R); r_++)                                 \
                for (int l_ = 0; l_ < KICK_LINES; l_++)                      \
                    _mm_prefetch((const char *)((W) + ((R) * KICK_TILES + r_) * (ldw)) \
                                 + 64 * l_, _MM_HINT_T1);                    \
    } while (0)

/* Keeps a loaded token vector in a register.  Without it the compiler
 * folds the load into each FMA that uses it (a memory operand), so a
 * token piece shared by R rows is loaded R times: the old 2 x 8 kernel ran
 * 18 loads per 16 FMAs and reached ~40 GFMA/s from L2 on Zen 5, against
 * ~65 with the token loaded once (measured, 1 thread). */
#if defined(__GNUC__) || defined(__clang__)
#define KEEP(v) __asm__("" : "+v"(v))
#else
#define KEEP(v) ((void)0)
#endif

typedef void (*kern_fn)(int64_t K, const float *X, int64_t ldx, const void *W,
                        int64_t ldw, float *out, int64_t ldo);

/* The 8-token tile over k in [k0, k1) only (see KSPLIT): its lane sums
 * start from buf (or zero when first) and go back there, or, when last,
 * through the tail and the final sums into out. */
typedef void (*kern_split_fn)(int64_t K, int64_t k0, int64_t k1, const float *X,
                              int64_t ldx, const void *W, int64_t ldw, float *out,
                              int64_t ldo, void *buf, int first, int last,
                              uintptr_t pf);

/* Kernels of one path and weight type: for token groups G = 8, 4, 2, 1
 * (index 0..3), the main tile (R rows) and a one-row tile for the rows
 * left over.  main[0] NULL: no 8-token kernel (groups of 4 instead). */
typedef struct kset {
    int R[4];
    kern_fn main[4], one[4];
    kern_split_fn split;    /* NULL: never split */
} kset;

static const int GSZ[4] = { 8, 4, 2, 1 };

/* ------------------------------------------------------------ generic -- */

/* One row, one token: the 16-lane dot product with the tree of gemv.h. */
#define GEN_KERN(name, WT, CVT)                                              \
static void name(int64_t K, const float *X, int64_t ldx, const void *Wv,     \
                 int64_t ldw, float *out, int64_t ldo)                       \
{                                                                            \
    (void)ldx; (void)ldw; (void)ldo;                                         \
    const WT *w = Wv;                                                        \
    float acc[16] = { 0 };                                                   \
    int64_t k = 0;                                                           \
    for (; k + 16 <= K; k += 16)                                             \
        for (int q = 0; q < 16; q++) acc[q] += CVT(w[k + q]) * X[k + q];     \
    for (int q = 0; k + q < K; q++) acc[q] += CVT(w[k + q]) * X[k + q];      \
    for (int h = 8; h >= 1; h /= 2)                                          \
        for (int q = 0; q < h; q++) acc[q] += acc[q + h];                    \
    out[0] = acc[0];                                                         \
}
#define CVT_F(v) (v)
#define CVT_H(v) ssmi_bf16_to_f32(v)
GEN_KERN(gen_f32, float, CVT_F)
GEN_KERN(gen_bf16, uint16_t, CVT_H)

static const kset GEN_F32 = { { 1, 1, 1, 1 }, { NULL, NULL, NULL, gen_f32 },
                              { NULL, NULL, NULL, gen_f32 }, NULL };
static const kset GEN_BF16 = { { 1, 1, 1, 1 }, { NULL, NULL, NULL, gen_bf16 },
                               { NULL, NULL, NULL, gen_bf16 }, NULL };

#ifdef GEMV_X86
/* ------------------------------------------------------------ AVX-512 -- */

#define T512 __attribute__((target("avx512f")))

static T512 inline __m512 ld512_f(const float *p) { return _mm512_loadu_ps(p); }
static T512 inline __m512 ld512_h(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
/* out[g * ldo + r] = vhsum16_avx512(acc[r][g]), the same bits: from 8
 * accumulators on, 16 at a time through the collective reduction of
 * scan_vmath.h (46 shuffles and adds for 16 sums instead of ~9 each: at a
 * batch of 8 the 24 sums of a 3 x 8 tile cost half as much as its
 * multiply-adds when K is 48, as in dt_proj). */
#define HSUMS512(acc, R, G, out, ldo)                                        \
    do {                                                                     \
        if ((R) * (G) >= 8) {                                                \
            for (int i0_ = 0; i0_ < (R) * (G); i0_ += 16) {                  \
                __m512 v_[16];                                               \
                float t_[16];                                                \
                for (int i_ = 0; i_ < 16; i_++)                              \
                    v_[i_] = i0_ + i_ < (R) * (G)                            \
                        ? acc[(i0_ + i_) % (R)][(i0_ + i_) / (R)]            \
                        : _mm512_setzero_ps();                               \
                _mm512_storeu_ps(t_, vhsum16x16_avx512(v_));                 \
                for (int i_ = 0; i_ < 16 && i0_ + i_ < (R) * (G); i_++)      \
                    out[((i0_ + i_) / (R)) * (ldo) + (i0_ + i_) % (R)] = t_[i_]; \
            }                                                                \
        } else {                                                             \
            for (int g_ = 0; g_ < (G); g_++)                                 \
                for (int r_ = 0; r_ < (R); r_++)                             \
                    out[g_ * (ldo) + r_] = vhsum16_avx512(acc[r_][g_]);      \
        }                                                                    \
    } while (0)

/* R rows x G tokens.  The tail (K mod 16) runs once more through the same
 * body on zero-padded copies, which is exactly the padding of gemv.h. */
#define K512(name, WT, LD, R, G, SMALL)                                      \
static T512 void name(int64_t K, const float *X, int64_t ldx, const void *Wv, \
                      int64_t ldw, float *out, int64_t ldo)                  \
{                                                                            \
    const WT *W = Wv;                                                        \
    KICK(W, ldw, R, G);                                                      \
    __m512 acc[R][G];                                                        \
    for (int r = 0; r < R; r++)                                              \
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();         \
    const int64_t K16 = K & ~(int64_t)15;                                    \
    for (int64_t k = 0; k < K16; k += 16) {                                  \
        __m512 w[R];                                                         \
        for (int r = 0; r < R; r++) {                                        \
            w[r] = LD(W + r * ldw + k);                                      \
            PREFETCH(W, ldw, k, r, R, G, WT, SMALL);                         \
        }                                                                    \
        for (int g = 0; g < G; g++) {                                        \
            __m512 x = _mm512_loadu_ps(X + g * ldx + k);                     \
            if (R > 1) KEEP(x);                                              \
            for (int r = 0; r < R; r++)                                      \
                acc[r][g] = _mm512_fmadd_ps(w[r], x, acc[r][g]);             \
        }                                                                    \
    }                                                                        \
    if (K16 < K) {                                                           \
        WT wt[R][16];                                                        \
        float xt[G][16];                                                     \
        memset(wt, 0, sizeof wt);                                            \
        memset(xt, 0, sizeof xt);                                            \
        for (int r = 0; r < R; r++)                                          \
            memcpy(wt[r], W + r * ldw + K16, (size_t)(K - K16) * sizeof(WT)); \
        for (int g = 0; g < G; g++)                                          \
            memcpy(xt[g], X + g * ldx + K16, (size_t)(K - K16) * sizeof(float)); \
        for (int g = 0; g < G; g++) {                                        \
            __m512 x = _mm512_loadu_ps(xt[g]);                               \
            for (int r = 0; r < R; r++)                                      \
                acc[r][g] = _mm512_fmadd_ps(LD(wt[r]), x, acc[r][g]);        \
        }                                                                    \
    }                                                                        \
    HSUMS512(acc, R, G, out, ldo);                                           \
}
K512(a512_f_3x8, float, ld512_f, 3, 8, 0)
K512(a512_f_3x8_l2, float, ld512_f, 3, 8, 1)
K512(a512_f_4x4, float, ld512_f, 4, 4, 0)
K512(a512_f_4x4_l2, float, ld512_f, 4, 4, 1)
K512(a512_f_4x2, float, ld512_f, 4, 2, 0)
K512(a512_f_4x2_l2, float, ld512_f, 4, 2, 1)
K512(a512_f_8x1, float, ld512_f, 8, 1, 0)
K512(a512_f_8x1_l2, float, ld512_f, 8, 1, 1)
K512(a512_f_1x8, float, ld512_f, 1, 8, 0)
K512(a512_f_1x8_l2, float, ld512_f, 1, 8, 1)
K512(a512_f_1x4, float, ld512_f, 1, 4, 0)
K512(a512_f_1x4_l2, float, ld512_f, 1, 4, 1)
K512(a512_f_1x2, float, ld512_f, 1, 2, 0)
K512(a512_f_1x2_l2, float, ld512_f, 1, 2, 1)
K512(a512_f_1x1, float, ld512_f, 1, 1, 0)
K512(a512_f_1x1_l2, float, ld512_f, 1, 1, 1)
K512(a512_h_3x8, uint16_t, ld512_h, 3, 8, 0)
K512(a512_h_3x8_l2, uint16_t, ld512_h, 3, 8, 1)
K512(a512_h_4x4, uint16_t, ld512_h, 4, 4, 0)
K512(a512_h_4x4_l2, uint16_t, ld512_h, 4, 4, 1)
K512(a512_h_4x2, uint16_t, ld512_h, 4, 2, 0)
K512(a512_h_4x2_l2, uint16_t, ld512_h, 4, 2, 1)
K512(a512_h_8x1, uint16_t, ld512_h, 8, 1, 0)
K512(a512_h_8x1_l2, uint16_t, ld512_h, 8, 1, 1)
K512(a512_h_1x8, uint16_t, ld512_h, 1, 8, 0)
K512(a512_h_1x8_l2, uint16_t, ld512_h, 1, 8, 1)
K512(a512_h_1x4, uint16_t, ld512_h, 1, 4, 0)
K512(a512_h_1x4_l2, uint16_t, ld512_h, 1, 4, 1)
K512(a512_h_1x2, uint16_t, ld512_h, 1, 2, 0)
K512(a512_h_1x2_l2, uint16_t, ld512_h, 1, 2, 1)
K512(a512_h_1x1, uint16_t, ld512_h, 1, 1, 0)
K512(a512_h_1x1_l2, uint16_t, ld512_h, 1, 1, 1)

/* The 3 x 8 tile over one chunk of k (KSPLIT): the same lane sums in the
 * same order as a512_*_3x8, kept in buf between chunks, so the same bits.
 * Prefetch: each row one tile ahead at the same k (the chunk's rows are
 * pieces of KSPLIT weights, not one linear stream; two tiles ahead was
 * 1.16x slower, three 1.07x), and the kick at the chunk's first k.
 * SMALL (Zen 4) also streams the next group of SPLIT_TILES tiles into L2
 * as one linear sweep: each call takes its slice of that group's bytes, pf
 * (rows_block), the same number of bytes as it multiplies, 3 pieces of 16
 * weights a step of k.  Within a group the chunks jump between 24 rows
 * 6 KiB apart, which neither the one-tile-ahead prefetch nor the hardware
 * keeps ahead of; the sweep is a plain stream.  Measured on Zen 4 (1
 * thread, the out_proj of 24 Mamba layers at batch 8 from memory, six
 * alternating runs on a loaded host): 7.7-9.1 ms -> 6.4-7.8 (median
 * ratio ~0.84); two or three groups ahead no better.  The last group's
 * sweep runs past the rows given (an address, never dereferenced: a
 * prefetch never faults). */
#define K512S(name, WT, LD, SMALL)                                           \
static T512 void name(int64_t K, int64_t k0, int64_t k1, const float *X,     \
                      int64_t ldx, const void *Wv, int64_t ldw, float *out,  \
                      int64_t ldo, void *bufv, int first, int last,          \
                      uintptr_t pf)                                          \
{                                                                            \
    const WT *W = Wv;                                                        \
    __m512 *buf = bufv;                                                      \
    KICK(W + k0, ldw, 3, 8);                                                 \
    __m512 acc[3][8];                                                        \
    for (int r = 0; r < 3; r++)                                              \
        for (int g = 0; g < 8; g++)                                          \
            acc[r][g] = first ? _mm512_setzero_ps()                          \
                              : _mm512_load_ps((const float *)&buf[r * 8 + g]); \
    const int64_t K16 = K & ~(int64_t)15, e = k1 < K16 ? k1 : K16;          \
    for (int64_t k = k0; k < e; k += 16) {                                   \
        __m512 w[3];                                                         \
        for (int r = 0; r < 3; r++) {                                        \
            w[r] = LD(W + r * ldw + k);                                      \
            _mm_prefetch((const char *)(W + (r + 3) * ldw + k), PF_MANY(SMALL)); \
            if (SMALL)                                                       \
                _mm_prefetch((const char *)(pf + (uintptr_t)((k - k0) * 3 + 16 * r) \
                                                 * sizeof(WT)), _MM_HINT_T1); \
        }                                                                    \
        for (int g = 0; g < 8; g++) {                                        \
            __m512 x = _mm512_loadu_ps(X + g * ldx + k);                     \
            KEEP(x);                                                         \
            for (int r = 0; r < 3; r++)                                      \
                acc[r][g] = _mm512_fmadd_ps(w[r], x, acc[r][g]);             \
        }                                                                    \
    }                                                                        \
    if (!last) {                                                             \
        for (int r = 0; r < 3; r++)                                          \
            for (int g = 0; g < 8; g++)                                      \
                _mm512_store_ps((float *)&buf[r * 8 + g], acc[r][g]);        \
        return;                                                              \
    }                                                                        \
    if (K16 < K) {                                                           \
        WT wt[3][16];                                                        \
        float xt[8][16];                                                     \
        memset(wt, 0, sizeof wt);                                            \
        memset(xt, 0, sizeof xt);                                            \
        for (int r = 0; r < 3; r++)                                          \
            memcpy(wt[r], W + r * ldw + K16, (size_t)(K - K16) * sizeof(WT)); \
        for (int g = 0; g < 8; g++)                                          \
            memcpy(xt[g], X + g * ldx + K16, (size_t)(K - K16) * sizeof(float)); \
        for (int g = 0; g < 8; g++) {                                        \
            __m512 x = _mm512_loadu_ps(xt[g]);                               \
            for (int r = 0; r < 3; r++)                                      \
                acc[r][g] = _mm512_fmadd_ps(LD(wt[r]), x, acc[r][g]);        \
        }                                                                    \
    }                                                                        \
    HSUMS512(acc, 3, 8, out, ldo);                                           \
}
K512S(a512_f_3x8s, float, ld512_f, 0)
K512S(a512_f_3x8s_l2, float, ld512_f, 1)
K512S(a512_h_3x8s, uint16_t, ld512_h, 0)
K512S(a512_h_3x8s_l2, uint16_t, ld512_h, 1)

/* 8 tokens: 3 rows x 8 tokens = 24 accumulators + 3 weight pieces + 1
 * token piece of the 32 zmm registers; 11 loads per 24 FMAs (2 x 8 was
 * 10 per 16: 3 x 8 reached ~80 GFMA/s from L2 against ~65).  1 token: 8
 * rows at once (8 weight streams in flight: ~10% more bandwidth from
 * memory than 4 on Zen 5). */
static const kset A512_F32 = {
    { 3, 4, 4, 8 },
    { a512_f_3x8, a512_f_4x4, a512_f_4x2, a512_f_8x1 },
    { a512_f_1x8, a512_f_1x4, a512_f_1x2, a512_f_1x1 }, a512_f_3x8s };
static const kset A512_F32_L2 = {
    { 3, 4, 4, 8 },
    { a512_f_3x8_l2, a512_f_4x4_l2, a512_f_4x2_l2, a512_f_8x1_l2 },
    { a512_f_1x8_l2, a512_f_1x4_l2, a512_f_1x2_l2, a512_f_1x1_l2 }, a512_f_3x8s_l2 };
/* BF16 at one token: 8 rows at once, so that as many bytes are in flight
 * as for float rows (each BF16 row piece is half a line). */
static const kset A512_BF16 = {
    { 3, 4, 4, 8 },
    { a512_h_3x8, a512_h_4x4, a512_h_4x2, a512_h_8x1 },
    { a512_h_1x8, a512_h_1x4, a512_h_1x2, a512_h_1x1 }, a512_h_3x8s };
static const kset A512_BF16_L2 = {
    { 3, 4, 4, 8 },
    { a512_h_3x8_l2, a512_h_4x4_l2, a512_h_4x2_l2, a512_h_8x1_l2 },
    { a512_h_1x8_l2, a512_h_1x4_l2, a512_h_1x2_l2, a512_h_1x1_l2 }, a512_h_3x8s_l2 };

/* --------------------------------------------------------------- AVX2 -- */

/* 16 lanes as two 8-lane halves (lo: lanes 0-7, hi: 8-15): the same lane
 * sums as AVX-512, so the same bits. */
#define T256 __attribute__((target("avx2,fma")))

static T256 inline void ld256_f(const float *p, __m256 *lo, __m256 *hi)
{
    *lo = _mm256_loadu_ps(p);
    *hi = _mm256_loadu_ps(p + 8);
}
static T256 inline void ld256_h(const uint16_t *p, __m256 *lo, __m256 *hi)
{
    __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 8)));
    *lo = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16));
    *hi = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
}
static T256 inline float hsum256(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

#define K256(name, WT, LD, R, G, SMALL)                                      \
static T256 void name(int64_t K, const float *X, int64_t ldx, const void *Wv, \
                      int64_t ldw, float *out, int64_t ldo)                  \
{                                                                            \
    const WT *W = Wv;                                                        \
    __m256 al[R][G], ah[R][G];                                               \
    for (int r = 0; r < R; r++)                                              \
        for (int g = 0; g < G; g++)                                          \
            al[r][g] = ah[r][g] = _mm256_setzero_ps();                       \
    const int64_t K16 = K & ~(int64_t)15;                                    \
    for (int64_t k = 0; k < K16; k += 16) {                                  \
        __m256 wl[R], wh[R];                                                 \
        for (int r = 0; r < R; r++) {                                        \
            LD(W + r * ldw + k, &wl[r], &wh[r]);                             \
            PREFETCH(W, ldw, k, r, R, G, WT, SMALL);                         \
        }                                                                    \
        for (int g = 0; g < G; g++) {                                        \
            __m256 xl = _mm256_loadu_ps(X + g * ldx + k);                    \
            __m256 xh = _mm256_loadu_ps(X + g * ldx + k + 8);                \
            if (R > 1) { KEEP(xl); KEEP(xh); }                               \
            for (int r = 0; r < R; r++) {                                    \
                al[r][g] = _mm256_fmadd_ps(wl[r], xl, al[r][g]);             \
                ah[r][g] = _mm256_fmadd_ps(wh[r], xh, ah[r][g]);             \
            }                                                                \
        }                                                                    \
    }                                                                        \
    if (K16 < K) {                                                           \
        WT wt[R][16];                                                        \
        float xt[G][16];                                                     \
        memset(wt, 0, sizeof wt);                                            \
        memset(xt, 0, sizeof xt);                                            \
        for (int r = 0; r < R; r++)                                          \
            memcpy(wt[r], W + r * ldw + K16, (size_t)(K - K16) * sizeof(WT)); \
        for (int g = 0; g < G; g++)                                          \
            memcpy(xt[g], X + g * ldx + K16, (size_t)(K - K16) * sizeof(float)); \
        for (int g = 0; g < G; g++) {                                        \
            __m256 xl = _mm256_loadu_ps(xt[g]), xh = _mm256_loadu_ps(xt[g] + 8); \
            for (int r = 0; r < R; r++) {                                    \
                __m256 wl, wh;                                               \
                LD(wt[r], &wl, &wh);                                         \
                al[r][g] = _mm256_fmadd_ps(wl, xl, al[r][g]);                \
                ah[r][g] = _mm256_fmadd_ps(wh, xh, ah[r][g]);                \
            }                                                                \
        }                                                                    \
    }                                                                        \
    for (int g = 0; g < G; g++)                                              \
        for (int r = 0; r < R; r++)                                          \
            out[g * ldo + r] = hsum256(al[r][g], ah[r][g]);                  \
}
K256(a256_f_1x4, float, ld256_f, 1, 4, 0)
K256(a256_f_1x4_l2, float, ld256_f, 1, 4, 1)
K256(a256_f_2x2, float, ld256_f, 2, 2, 0)
K256(a256_f_2x2_l2, float, ld256_f, 2, 2, 1)
K256(a256_f_4x1, float, ld256_f, 4, 1, 0)
K256(a256_f_4x1_l2, float, ld256_f, 4, 1, 1)
K256(a256_f_1x2, float, ld256_f, 1, 2, 0)
K256(a256_f_1x2_l2, float, ld256_f, 1, 2, 1)
K256(a256_f_1x1, float, ld256_f, 1, 1, 0)
K256(a256_f_1x1_l2, float, ld256_f, 1, 1, 1)
K256(a256_h_1x4, uint16_t, ld256_h, 1, 4, 0)
K256(a256_h_1x4_l2, uint16_t, ld256_h, 1, 4, 1)
K256(a256_h_2x2, uint16_t, ld256_h, 2, 2, 0)
K256(a256_h_2x2_l2, uint16_t, ld256_h, 2, 2, 1)
K256(a256_h_4x1, uint16_t, ld256_h, 4, 1, 0)
K256(a256_h_4x1_l2, uint16_t, ld256_h, 4, 1, 1)
K256(a256_h_1x2, uint16_t, ld256_h, 1, 2, 0)
K256(a256_h_1x2_l2, uint16_t, ld256_h, 1, 2, 1)
K256(a256_h_1x1, uint16_t, ld256_h, 1, 1, 0)
K256(a256_h_1x1_l2, uint16_t, ld256_h, 1, 1, 1)

/* 16 ymm registers: at most 8 accumulator pairs, so no 8-token kernel. */
static const kset A256_F32 = {
    { 0, 1, 2, 4 },
    { NULL, a256_f_1x4, a256_f_2x2, a256_f_4x1 },
    { NULL, a256_f_1x4, a256_f_1x2, a256_f_1x1 }, NULL };
static const kset A256_BF16 = {
    { 0, 1, 2, 4 },
    { NULL, a256_h_1x4, a256_h_2x2, a256_h_4x1 },
    { NULL, a256_h_1x4, a256_h_1x2, a256_h_1x1 }, NULL };
static const kset A256_F32_L2 = {
    { 0, 1, 2, 4 },
    { NULL, a256_f_1x4_l2, a256_f_2x2_l2, a256_f_4x1_l2 },
    { NULL, a256_f_1x4_l2, a256_f_1x2_l2, a256_f_1x1_l2 }, NULL };
static const kset A256_BF16_L2 = {
    { 0, 1, 2, 4 },
    { NULL, a256_h_1x4_l2, a256_h_2x2_l2, a256_h_4x1_l2 },
    { NULL, a256_h_1x4_l2, a256_h_1x2_l2, a256_h_1x1_l2 }, NULL };
#endif /* GEMV_X86 */

/* ----------------------------------------------------------- dispatch -- */

int ssmi_gemv_isa_ok(int isa)
{
    switch (isa) {
    case SSMI_GEMV_AUTO:
    case SSMI_GEMV_GENERIC:
        return 1;
#ifdef GEMV_X86
    case SSMI_GEMV_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SSMI_GEMV_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

int ssmi_gemv_isa_auto(void)
{
    if (ssmi_gemv_isa_ok(SSMI_GEMV_AVX512)) return SSMI_GEMV_AVX512;
    if (ssmi_gemv_isa_ok(SSMI_GEMV_AVX2)) return SSMI_GEMV_AVX2;
    return SSMI_GEMV_GENERIC;
}

const char *ssmi_gemv_isa_name(int isa)
{
    switch (isa) {
    case SSMI_GEMV_GENERIC: return "generic";
    case SSMI_GEMV_AVX2:    return "avx2";
    case SSMI_GEMV_AVX512:  return "avx512";
    default:                return "auto";
    }
}

static const kset *kernels(int isa, int bf16)
{
    if (isa == SSMI_GEMV_AUTO || !ssmi_gemv_isa_ok(isa))
        isa = isa == SSMI_GEMV_AUTO ? ssmi_gemv_isa_auto() : SSMI_GEMV_GENERIC;
#ifdef GEMV_X86
    const int small = ssmi_l1d_small();   /* see PF_ONE_SMALL */
    if (isa == SSMI_GEMV_AVX512)
        return bf16 ? (small ? &A512_BF16_L2 : &A512_BF16) : (small ? &A512_F32_L2 : &A512_F32);
    if (isa == SSMI_GEMV_AVX2)
        return bf16 ? (small ? &A256_BF16_L2 : &A256_BF16) : (small ? &A256_F32_L2 : &A256_F32);
#endif
    return bf16 ? &GEN_BF16 : &GEN_F32;
}

/* Rows j0..j1 of the output for all M tokens: token groups over the
 * block, tiles of rows within each group. */
static void rows_block(const kset *ks, int64_t j0, int64_t j1, int64_t M,
                       int64_t K, const float *X, int64_t ldx,
                       const unsigned char *W, size_t wsz, int64_t ldw,
                       float *out, int64_t ldo)
{
    for (int64_t b0 = 0; b0 < M;) {
        const int64_t left = M - b0;
        int gi = 3;
        if (left >= 8 && ks->main[0]) gi = 0;
        else if (left >= 4 && ks->main[1]) gi = 1;
        else if (left >= 2 && ks->main[2]) gi = 2;
        const int R = ks->R[gi];
        const float *xb = X + b0 * ldx;
        float *ob = out + b0 * ldo;
        int64_t j = j0;
        if (gi == 0 && ks->split && K > KSPLIT_MIN) {
            /* 8 tokens over SPLIT_TILES tiles at a time, chunk by chunk of
             * k, the lane sums kept in sbuf between chunks. */
            SPLIT_BUF(sbuf);
            for (; j + R <= j1;) {
                const int64_t nt = (j1 - j) / R < SPLIT_TILES ? (j1 - j) / R : SPLIT_TILES;
                /* the next group's bytes, as an address (it may lie past W) */
                const uintptr_t nx = (uintptr_t)W + (uintptr_t)((j + nt * R) * ldw) * wsz;
                for (int64_t k0 = 0; k0 < K; k0 += KSPLIT) {
                    const int64_t k1 = K - k0 <= KSPLIT ? K : k0 + KSPLIT;
                    for (int64_t t = 0; t < nt; t++)
                        ks->split(K, k0, k1, xb, ldx, W + (size_t)((j + t * R) * ldw) * wsz,
                                  ldw, ob + j + t * R, ldo, sbuf[t], k0 == 0, k1 == K,
                                  nx + (uintptr_t)(((k0 / KSPLIT) * nt + t) * R * KSPLIT) * wsz);
                }
                j += nt * R;
            }
        }
        for (; j + R <= j1; j += R)
            ks->main[gi](K, xb, ldx, W + (size_t)(j * ldw) * wsz, ldw, ob + j, ldo);
        for (; j < j1; j++)
            ks->one[gi](K, xb, ldx, W + (size_t)(j * ldw) * wsz, ldw, ob + j, ldo);
        b0 += GSZ[gi];
    }
}

/* Rows per block from K and the weight type only (never the thread
 * count): a multiple of 24 (every tile height: 1, 2, 3, 4, 8) in
 * [24, 264]. */
int64_t ssmi_xwt_block_rows(int64_t K, int bf16)
{
    const int64_t wsz = bf16 ? (int64_t)sizeof(uint16_t) : (int64_t)sizeof(float);
    int64_t rb = K > BLOCK_BYTES ? 0 : BLOCK_BYTES / (K * wsz);
    return rb < 24 ? 24 : rb > 264 ? 264 : rb - rb % 24;
}

void ssmi_xwt_rows(int64_t M, int64_t j0, int64_t j1, int64_t K, const float *X,
                   int64_t ldx, const float *Wf, const uint16_t *Wh, int64_t ldw,
                   float *out, int64_t ldo)
{
    const int bf16 = Wh != NULL;
    rows_block(kernels(SSMI_GEMV_AUTO, bf16), j0, j1, M, K, X, ldx,
               bf16 ? (const unsigned char *)Wh : (const unsigned char *)Wf,
               bf16 ? sizeof(uint16_t) : sizeof(float), ldw, out, ldo);
}

static void xwt(int isa, int64_t M, int64_t N, int64_t K, const float *X,
                int64_t ldx, const void *W, int bf16, int64_t ldw, float *out,
                int64_t ldo)
{
    const kset *ks = kernels(isa, bf16);
    const size_t wsz = bf16 ? sizeof(uint16_t) : sizeof(float);
    const int64_t rb = ssmi_xwt_block_rows(K, bf16);
    const int64_t nblk = (N + rb - 1) / rb;
    const unsigned char *Wb = W;
    int64_t work = 0;
    if (!ssmi_mul_ok(M, N, &work) || !ssmi_mul_ok(work, K, &work))
        work = INT64_MAX;
    /* Not `parallel for if (...)`: libgomp sets up a team for a region
     * even when the clause makes it serial, and steps must not allocate. */
    if (work >= PAR_MIN && nblk > 1) {
        #pragma omp parallel for schedule(static)
        for (int64_t bk = 0; bk < nblk; bk++) {
            const int64_t j0 = bk * rb, j1 = j0 + rb < N ? j0 + rb : N;
            rows_block(ks, j0, j1, M, K, X, ldx, Wb, wsz, ldw, out, ldo);
        }
    } else {
        for (int64_t bk = 0; bk < nblk; bk++) {
            const int64_t j0 = bk * rb, j1 = j0 + rb < N ? j0 + rb : N;
            rows_block(ks, j0, j1, M, K, X, ldx, Wb, wsz, ldw, out, ldo);
        }
    }
}

void ssmi_xwt(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
              const float *W, int64_t ldw, float *out, int64_t ldo)
{
    xwt(SSMI_GEMV_AUTO, M, N, K, X, ldx, W, 0, ldw, out, ldo);
}

void ssmi_xwt_bf16(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                   const uint16_t *W, int64_t ldw, float *out, int64_t ldo)
{
    xwt(SSMI_GEMV_AUTO, M, N, K, X, ldx, W, 1, ldw, out, ldo);
}

void ssmi_xwt_ex(int isa, int64_t M, int64_t N, int64_t K, const float *X,
                 int64_t ldx, const float *Wf, const uint16_t *Wh, int64_t ldw,
                 float *out, int64_t ldo)
{
    if (Wh) xwt(isa, M, N, K, X, ldx, Wh, 1, ldw, out, ldo);
    else xwt(isa, M, N, K, X, ldx, Wf, 0, ldw, out, ldo);
}

void ssmi_bf16_widen(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}
