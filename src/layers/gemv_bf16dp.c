/*
 * gemv_bf16dp.c -- small-batch X W^T for decoding steps with BF16 weights
 * on AVX512_BF16 (vdpbf16ps, float accumulation); see gemv_bf16dp.h for
 * the contract and the rounding.
 *
 * Layout of the work, as gemv.c: the output rows are cut into blocks of
 * RB rows (a block of W is about 96 KiB, RB from K only), OpenMP hands
 * whole blocks to threads; inside a block tokens go in groups of G (8, 4,
 * 2, 1) and rows in tiles of R; the micro-kernel keeps R x G accumulators
 * of 16 float lanes, loads each 32-weight piece of a row once (64 bytes,
 * one cache line) and multiplies it into the G tokens' rounded activations
 * with one vdpbf16ps each.  At one token, 8 rows per tile: 8 independent
 * streams and accumulation chains.  The K tail (K mod 32) is read with a
 * masked load, so the padding is zeros on both sides and every tile runs
 * the same instruction sequence per output: results never depend on M's
 * grouping, on the tiling or on the thread count.
 *
 * The whole file is compiled for the baseline ISA except the functions
 * marked TBF, which run only after ssmi_bf16dp_ok() said the CPU and the
 * OS support them (CPUID leaf 7 and XGETBV read here: no dependence on
 * the compiler's CPU-feature runtime).
 */
#include <limits.h>
#include <string.h>

#include "internal.h"
#include "layers/gemv_bf16dp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BF_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Multiply-adds below which one OpenMP region costs more than it saves.
 * 4x gemv.c's: this kernel does twice the multiply-adds per byte and per
 * instruction, and waking a passive team costs ~10-30 us on a loaded
 * machine; 256k BF16 multiply-adds (0.5 MB of weights, ~20 us on one
 * core) are about that.  At the mamba-130m shape it keeps x_proj's and
 * dt_proj's products (74k-123k) on one thread: 3 regions a layer, not 5. */
#define PAR_MIN 262144
/* Target bytes of W per row block (as gemv.c). */
#define BLOCK_BYTES (96 * 1024)
/* Software prefetch distance in row tiles (as gemv.c); into L1, or into
 * L2 where L1 is under 48 KiB (ssmi_l1d_small; the *_l2 tiles). */
#define PFD 2
/* Several tokens: each tile first touches the first KICK_LINES lines of
 * the rows KICK_TILES tiles ahead (into L2), which starts the hardware's
 * streams on them early (gemv.c's KICK, measured there). */
#define KICK_TILES 4
#define KICK_LINES 2

#ifdef BF_X86

int ssmi_bf16dp_ok(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))   /* OSXSAVE */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM state saved by the OS. */
    if ((lo & 0xe6u) != 0xe6u) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & (1u << 16)) || !(b & (1u << 30)))    /* AVX512F, AVX512BW */
        return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1u;                          /* AVX512_BF16 */
}

#define TBF __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* The tree of gemv.h: (q, q+8), (q, q+4), (q, q+2), (q, q+1). */
static TBF inline float hsum(__m512 a)
{
    __m256 lo = _mm512_castps512_ps256(a);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* n floats -> n BF16, no padding. */
static TBF void round_tail(int64_t n, const float *x, uint16_t *h)
{
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + k));
        _mm256_storeu_si256((__m256i *)(void *)(h + k), (__m256i)v);
    }
    if (k < n) {
        const __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + k));
        _mm256_mask_storeu_epi16(h + k, m, (__m256i)v);
    }
}

/* M rows of K floats (stride ldx) -> BF16 rows of Kp = K rounded up to 32
 * (stride Kp), zero padded: vcvtneps2bf16, nearest even. */
static TBF void round_rows(int64_t M, int64_t K, const float *X, int64_t ldx,
                           uint16_t *xh)
{
    const int64_t Kp = (K + 31) & ~(int64_t)31;
    for (int64_t b = 0; b < M; b++) {
        const float *x = X + b * ldx;
        uint16_t *o = xh + b * Kp;
        for (int64_t k = 0; k < Kp; k += 16) {
            const int64_t left = K - k;
            const __mmask16 m = left >= 16 ? (__mmask16)0xffff
                              : left <= 0 ? (__mmask16)0
                              : (__mmask16)((1u << left) - 1u);
            __m512 v = _mm512_maskz_loadu_ps(m, x + (left > 0 ? k : 0));
            __m256bh h = _mm512_cvtneps_pbh(v);
            _mm256_storeu_si256((__m256i *)(void *)(o + k), (__m256i)h);
        }
    }
}

void ssmi_bf16dp_round(int64_t n, const float *x, uint16_t *h)
{
    /* One row: the padding written by round_rows beyond n is not wanted,
     * so whole vectors first, then the tail through a masked store. */
    round_tail(n, x, h);
}

/* R rows x G tokens; xh: the tokens' rounded rows (stride Kp).  TWICE:
 * each line PFD tiles ahead is prefetched twice (its two halves), as the
 * widening one-token kernel of gemv.c does by its 16-weight steps.
 * Measured on Zen 4 (1 thread, 288 MB of BF16 rows, K = 768, 8 x 1 tile
 * with T1 hints, four alternating runs): once 15.7-17.2 GB/s, twice
 * 17.6-18.9, the widening kernel 18.8-20.4 in the same runs; the second
 * line of the next 64 bytes instead did as well (17.2-19.3), PFD 1, 3 or 4
 * and tiles of 4 or 16 rows did not (15.0-18.7).  A software prefetch can
 * be dropped when the core's miss queue is full; the second seems to
 * retry it (no performance counters in this VM to say).  Zen 5's T0 tiles
 * are as measured there. */
#define KDP(name, R, G, HINT, TWICE)                                         \
static TBF void name(int64_t K, const uint16_t *xh, int64_t Kp,              \
                     const uint16_t *W, int64_t ldw, float *out, int64_t ldo) \
{                                                                            \
    if (G > 1)                                                               \
        for (int r = 0; r < R; r++)                                          \
            for (int l = 0; l < KICK_LINES; l++)                             \
                _mm_prefetch((const char *)(W + (R * KICK_TILES + r) * ldw) + 64 * l, \
                             _MM_HINT_T1);                                   \
    __m512 acc[R][G];                                                        \
    for (int r = 0; r < R; r++)                                              \
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();         \
    const int64_t K32 = K & ~(int64_t)31;                                    \
    for (int64_t k = 0; k < K32; k += 32) {                                  \
        __m512i w[R];                                                        \
        for (int r = 0; r < R; r++) {                                        \
            w[r] = _mm512_loadu_si512((const void *)(W + r * ldw + k));      \
            _mm_prefetch((const char *)(W + (r + PFD * R) * ldw + k), HINT);  \
            if (TWICE)                                                       \
                _mm_prefetch((const char *)(W + (r + PFD * R) * ldw + k + 16), HINT); \
        }                                                                    \
        for (int g = 0; g < G; g++) {                                        \
            __m512i x = _mm512_loadu_si512((const void *)(xh + g * Kp + k)); \
            for (int r = 0; r < R; r++)                                      \
                acc[r][g] = _mm512_dpbf16_ps(acc[r][g], (__m512bh)w[r], (__m512bh)x); \
        }                                                                    \
    }                                                                        \
    if (K32 < K) {                                                           \
        const __mmask32 m = (__mmask32)((1u << (K - K32)) - 1u);             \
        __m512i w[R];                                                        \
        for (int r = 0; r < R; r++)                                          \
            w[r] = _mm512_maskz_loadu_epi16(m, W + r * ldw + K32);           \
        for (int g = 0; g < G; g++) {                                        \
            __m512i x = _mm512_loadu_si512((const void *)(xh + g * Kp + K32)); \
            for (int r = 0; r < R; r++)                                      \
                acc[r][g] = _mm512_dpbf16_ps(acc[r][g], (__m512bh)w[r], (__m512bh)x); \
        }                                                                    \
    }                                                                        \
    for (int g = 0; g < G; g++)                                              \
        for (int r = 0; r < R; r++) out[g * ldo + r] = hsum(acc[r][g]);      \
}
KDP(dp_2x8, 2, 8, _MM_HINT_T0, 0)
KDP(dp_4x4, 4, 4, _MM_HINT_T0, 0)
KDP(dp_4x2, 4, 2, _MM_HINT_T0, 0)
KDP(dp_8x1, 8, 1, _MM_HINT_T0, 0)
KDP(dp_2x8_l2, 2, 8, _MM_HINT_T1, 0)
KDP(dp_4x4_l2, 4, 4, _MM_HINT_T1, 0)
KDP(dp_4x2_l2, 4, 2, _MM_HINT_T1, 0)
KDP(dp_8x1_l2, 8, 1, _MM_HINT_T1, 1)
KDP(dp_1x8, 1, 8, _MM_HINT_T0, 0)
KDP(dp_1x4, 1, 4, _MM_HINT_T0, 0)
KDP(dp_1x2, 1, 2, _MM_HINT_T0, 0)
KDP(dp_1x1, 1, 1, _MM_HINT_T0, 0)
KDP(dp_1x1_l2, 1, 1, _MM_HINT_T1, 0)

typedef void (*dp_fn)(int64_t K, const uint16_t *xh, int64_t Kp,
                      const uint16_t *W, int64_t ldw, float *out, int64_t ldo);
static const int GSZ[4] = { 8, 4, 2, 1 };
static const int RSZ[4] = { 2, 4, 4, 8 };
static dp_fn const MAIN[4] = { dp_2x8, dp_4x4, dp_4x2, dp_8x1 };
static dp_fn const ONE[4] = { dp_1x8, dp_1x4, dp_1x2, dp_1x1 };
/* Where L1 is under 48 KiB: the tiles with their prefetches into L2.
 * Measured on Zen 4 (1 thread, 288 MB of BF16 rows from memory): 8 tokens
 * 9.3-11.2 -> 18.6-19.7 GB/s at K = 768 and 1536. */
static dp_fn const MAIN_L2[4] = { dp_2x8_l2, dp_4x4_l2, dp_4x2_l2, dp_8x1_l2 };

/* Rows j0..j1 for all M tokens: token groups over the block, row tiles
 * within each group. */
static void rows_block(int64_t j0, int64_t j1, int64_t M, int64_t K,
                       const uint16_t *xh, int64_t Kp, const uint16_t *W,
                       int64_t ldw, float *out, int64_t ldo)
{
    const int small = ssmi_l1d_small();
    for (int64_t b0 = 0; b0 < M;) {
        const int64_t left = M - b0;
        const int gi = left >= 8 ? 0 : left >= 4 ? 1 : left >= 2 ? 2 : 3;
        const int R = RSZ[gi];
        const uint16_t *xb = xh + b0 * Kp;
        float *ob = out + b0 * ldo;
        const dp_fn fm = small ? MAIN_L2[gi] : MAIN[gi];
        const dp_fn f1 = gi == 3 && small ? dp_1x1_l2 : ONE[gi];
        int64_t j = j0;
        for (; j + R <= j1; j += R) fm(K, xb, Kp, W + j * ldw, ldw, ob + j, ldo);
        for (; j < j1; j++) f1(K, xb, Kp, W + j * ldw, ldw, ob + j, ldo);
        b0 += GSZ[gi];
    }
}

void ssmi_bf16dp_round_rows(int64_t M, int64_t K, const float *X, int64_t ldx,
                            uint16_t *xh)
{
    round_rows(M, K, X, ldx, xh);
}

void ssmi_xwt_bf16dp_rows(int64_t M, int64_t j0, int64_t j1, int64_t K,
                          const uint16_t *xh, const uint16_t *W, int64_t ldw,
                          float *out, int64_t ldo)
{
    rows_block(j0, j1, M, K, xh, (K + 31) & ~(int64_t)31, W, ldw, out, ldo);
}

void ssmi_xwt_bf16dp(int64_t M, int64_t N, int64_t K, const float *X,
                     int64_t ldx, const uint16_t *W, int64_t ldw, float *out,
                     int64_t ldo, uint16_t *xh)
{
    const int64_t Kp = (K + 31) & ~(int64_t)31;
    /* Once per call: every row tile then reads the rounded copy. */
    round_rows(M, K, X, ldx, xh);
    /* Rows per block from K only (never the thread count): a multiple of
     * 8 in [8, 256]. */
    int64_t rb = BLOCK_BYTES / (K * (int64_t)sizeof(uint16_t));
    rb = rb < 8 ? 8 : rb > 256 ? 256 : rb & ~(int64_t)7;
    const int64_t nblk = (N + rb - 1) / rb;
    int64_t work = 0;
    if (!ssmi_mul_ok(M, N, &work) || !ssmi_mul_ok(work, K, &work))
        work = INT64_MAX;
    /* Not `parallel for if (...)`: libgomp sets up a team even for a
     * region the clause makes serial, and steps must not allocate. */
    if (work >= PAR_MIN && nblk > 1) {
        #pragma omp parallel for schedule(static)
        for (int64_t bk = 0; bk < nblk; bk++) {
            const int64_t j0 = bk * rb, j1 = j0 + rb < N ? j0 + rb : N;
            rows_block(j0, j1, M, K, xh, Kp, W, ldw, out, ldo);
        }
    } else {
        for (int64_t bk = 0; bk < nblk; bk++) {
            const int64_t j0 = bk * rb, j1 = j0 + rb < N ? j0 + rb : N;
            rows_block(j0, j1, M, K, xh, Kp, W, ldw, out, ldo);
        }
    }
}

#else /* !BF_X86 */

int ssmi_bf16dp_ok(void) { return 0; }

void ssmi_bf16dp_round(int64_t n, const float *x, uint16_t *h)
{
    (void)n; (void)x; (void)h;
}

void ssmi_bf16dp_round_rows(int64_t M, int64_t K, const float *X, int64_t ldx,
                            uint16_t *xh)
{
    (void)M; (void)K; (void)X; (void)ldx; (void)xh;
}

void ssmi_xwt_bf16dp_rows(int64_t M, int64_t j0, int64_t j1, int64_t K,
                          const uint16_t *xh, const uint16_t *W, int64_t ldw,
                          float *out, int64_t ldo)
{
    (void)M; (void)j0; (void)j1; (void)K; (void)xh; (void)W; (void)ldw;
    (void)out; (void)ldo;
}

/* Never called (ssmi_bf16dp_ok() is 0): callers take the widening path. */
void ssmi_xwt_bf16dp(int64_t M, int64_t N, int64_t K, const float *X,
                     int64_t ldx, const uint16_t *W, int64_t ldw, float *out,
                     int64_t ldo, uint16_t *xh)
{
    (void)M; (void)N; (void)K; (void)X; (void)ldx; (void)W; (void)ldw;
    (void)out; (void)ldo; (void)xh;
}

#endif /* BF_X86 */
