/*
 * ssd.c -- the state space dual (SSD) scan of Mamba-2 (Dao and Gu 2024,
 * "Transformers are SSMs", arXiv:2405.21060): ssm_ssd_scan, ssm_ssd_step.
 *
 * Per head h (scalar decay A_h), token t, with a_t = exp(dt_t A):
 *   S_t = a_t S_{t-1} + dt_t x_t B_t^T          (P x N state, eq. 1)
 *   y_t = S_t C_t + D x_t, then * silu(z_t)
 * Two evaluation orders, chosen by shape only (ssm_ssd_plan):
 *
 * Recurrent (RECURRENT; also ssm_ssd_step): token by token, one exp per
 * head and token, the P x N state in place (in h_last when given) in L1/L2;
 * OpenMP over (batch, head).
 *
 * Chunked SSD (CHUNKED; section 6 and listing 1 of the paper).  Tokens are
 * cut into chunks of Q; with cs_t = sum_{r <= t} dt_r A (within the chunk,
 * accumulated in double) and S0 the state entering the chunk:
 *   y_t = exp(cs_t) C_t S0^T                         (state -> output)
 *       + sum_{s <= t} (C_t . B_s) exp(cs_t - cs_s) dt_s x_s   (intra-chunk,
 *         the quadratic "attention" form (L o C B^T) X of eq. 16)
 *   S_Q = exp(cs_Q) S0 + sum_s exp(cs_Q - cs_s) dt_s x_s B_s^T  (chunk state,
 *         then passed to the next chunk)
 * Only differences cs_t - cs_s with s <= t are exponentiated (segsum of the
 * paper, never exp(+large) for A <= 0).  The state is kept transposed,
 * ST [N][P], so that all four products are plain row-major products:
 *   G  [Q][Q] = C Bt            (Bt [N][Q] = B^T: per group, shared by the
 *                                heads of a work item; lower triangle only)
 *   Y  [Q][P] = Cs ST           (Cs = C scaled by exp(cs_t))
 *   Y += M X                    (M = G o exp(segsum) o dt, lower triangle)
 *   ST = exp(cs_Q) ST + Bt Xw   (Xw = X scaled by exp(cs_Q - cs_s) dt_s)
 * Y is written straight into y (leading dimension H*P).  Work items are
 * (batch, group, block of hb heads of the group), hb from the shapes only;
 * chunks run in order inside an item.  Memory per thread:
 * hb*N*P + Q*(2N + 2Q + P) floats; never [B][L][H][P][N].
 *
 * Determinism: each output element has one writer; every sum is an fma
 * chain in a fixed order (ssd_kernel.h); the ISA is chosen from the CPU,
 * the path and chunk from the shapes: the thread count never shows.
 */
#include <limits.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SSM_SSD_X86 1
#endif

#include "ssd_internal.h"
#include "scan_vmath.h"

/* --------------------------------------------------- elementwise parts -- */

/* Mamba-2's dt: (dt + bias), softplus with threshold 20 (log1p(exp(v)) for
 * v <= 20, v above, as the Triton kernels), then the clamp to
 * [lo, hi] written with comparisons so that NaN passes through. */
static inline float dt_proc(float v, const float *bias, int softplus,
                            float lo, float hi)
{
    if (bias)
        v = v + *bias;
    if (softplus && v <= 20.0f)
        v = log1pf(expf(v));
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

/* y[p] = (ys[p] + D_p x[p]) * silu(z[p]) for one token of one head, in
 * place on y (ys == y), P channels.  silu(z) = z / (1 + exp(-z)) with the
 * scan's exp (vector form, same bits as its scalar form).  No allocation:
 * the exps go through a stack block of 64. */
static void finish_row(int isa, int64_t P, float *y, const float *x,
                       const float *D, int D_per_channel, const float *z)
{
    if (D) {
        if (D_per_channel) {
            for (int64_t p = 0; p < P; p++) {
                const float dx = D[p] * x[p];
                y[p] = y[p] + dx;
            }
        } else {
            const float d = D[0];
            for (int64_t p = 0; p < P; p++) {
                const float dx = d * x[p];
                y[p] = y[p] + dx;
            }
        }
    }
    if (z) {
        float e[64];
        for (int64_t p0 = 0; p0 < P; p0 += 64) {
            const int64_t n = P - p0 < 64 ? P - p0 : 64;
            for (int64_t i = 0; i < n; i++)
                e[i] = -z[p0 + i];
            ssmi_scan_vexpf(isa, e, e, n);
            for (int64_t i = 0; i < n; i++) {
                const float s = z[p0 + i] / (1.0f + e[i]);
                y[p0 + i] = y[p0 + i] * s;
            }
        }
    }
}

/* ------------------------------------------------------------- shapes --- */

typedef struct ssd_dims {
    int64_t B, L, H, P, N, G, hpg;  /* hpg = heads per group */
} ssd_dims;

static ssd_dims dims_of(const ssm_ssd_args *a)
{
    ssd_dims d = { a->batch, a->len, a->nheads, a->headdim, a->dstate,
                   a->ngroups, a->nheads / a->ngroups };
    return d;
}

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

typedef struct chunk_ws {
    float *ST;     /* [hb][N][P] transposed states */
    float *Bt;     /* [N][Q] */
    float *Gm;     /* [Q][Q] C B^T */
    float *M;      /* [Q][Q] masked */
    float *Cs;     /* [Q][N] */
    float *Xw;     /* [Q][P] */
    float *Xc;     /* [Q][P] the chunk of x, contiguous */
    float *Yc;     /* [Q][P] the chunk of y before it is written out */
    float *e;      /* [Q] */
    float *dtv;    /* [Q] */
    double *cs;    /* [Q] */
} chunk_ws;

typedef struct ssd_kern ssd_kern;
struct ssd_kern {
    int isa;
    void (*gemm)(int64_t M, int64_t Nc, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
                 int tri);
    void (*rec)(int64_t P, int64_t N, float a, float dtv, const float *x,
                const float *Bv, const float *Cv, float *S, float *ys);
    void (*chunk)(const ssm_ssd_args *a, const ssd_kern *k, const ssd_dims *d,
                  const chunk_ws *w, int64_t Q, int64_t b, int64_t h,
                  int64_t t0, int64_t T, float *ST);
};

/* ------------------------------------------------- kernel instantiations */

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
#define VNVMAX 2
#include "ssd_kernel.h"
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
#undef VHSUM4
#undef VNVMAX

#ifdef SSM_SSD_X86
/* TGT_AVX2, TGT_AVX512 and the 16-lane sum vhsum16_avx512: scan_vmath.h. */

/* ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)): a fixed tree. */
static inline TGT_AVX2 float ssd_hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Rows s4_a (low 128 bits) and s4_b (high) of 4-lane partial sums, and the
 * same for c, d: out[r] = (s4_0 + s4_2) + (s4_1 + s4_3) of row r, the tail of
 * ssd_hsum_avx2's and vhsum16_avx512's tree, for four rows at once. */
static inline TGT_AVX2 void ssd_hsum4_tail(__m256 s4ab, __m256 s4cd, float *out)
{
    const __m256 x = _mm256_shuffle_ps(s4ab, s4cd, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 y = _mm256_shuffle_ps(s4ab, s4cd, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 z = _mm256_add_ps(x, y);
    const __m256 w = _mm256_hadd_ps(z, z);   /* low: r0 r2 r0 r2, high: r1 r3 r1 r3 */
    float t[8];
    _mm256_storeu_ps(t, w);
    out[0] = t[0]; out[1] = t[4]; out[2] = t[1]; out[3] = t[5];
}

/* out[r] = ssd_hsum_avx2(v[r]) for r < 4, bit for bit. */
static inline TGT_AVX2 void ssd_hsum4_avx2(const __m256 *v, float *out)
{
    const __m256 s01 = _mm256_add_ps(_mm256_permute2f128_ps(v[0], v[1], 0x20),
                                     _mm256_permute2f128_ps(v[0], v[1], 0x31));
    const __m256 s23 = _mm256_add_ps(_mm256_permute2f128_ps(v[2], v[3], 0x20),
                                     _mm256_permute2f128_ps(v[2], v[3], 0x31));
    ssd_hsum4_tail(s01, s23, out);
}

/* out[r] = vhsum16_avx512(v[r]) for r < 4, bit for bit. */
static inline TGT_AVX512 void ssd_hsum4_avx512(const __m512 *v, float *out)
{
    __m256 s8[4];
    for (int r = 0; r < 4; r++)
        s8[r] = _mm256_add_ps(_mm512_castps512_ps256(v[r]),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[r]), 1)));
    ssd_hsum4_avx2(s8, out);
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
#define VHSUM(v) ssd_hsum_avx2(v)
#define VHSUM4(v, o) ssd_hsum4_avx2((v), (o))
#define VNVMAX 2
#include "ssd_kernel.h"
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
#undef VHSUM4
#undef VNVMAX

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
#define VHSUM4(v, o) ssd_hsum4_avx512((v), (o))
#define VNVMAX 4
#include "ssd_kernel.h"
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
#undef VHSUM4
#undef VNVMAX
#endif /* SSM_SSD_X86 */

static int get_kern(int isa, ssd_kern *k)
{
    if (isa == SSM_SCAN_ISA_AUTO)
        isa = ssmi_scan_best_isa();
    if (!ssmi_scan_isa_ok(isa))
        return -1;
    k->isa = isa;
    switch (isa) {
#ifdef SSM_SSD_X86
    case SSM_SCAN_ISA_AVX512:
        k->gemm = kgemm_avx512; k->rec = rec_token_avx512; k->chunk = chunk_head_avx512;
        return 0;
    case SSM_SCAN_ISA_AVX2:
        k->gemm = kgemm_avx2; k->rec = rec_token_avx2; k->chunk = chunk_head_avx2;
        return 0;
#endif
    default:
        k->gemm = kgemm_generic; k->rec = rec_token_generic; k->chunk = chunk_head_generic;
        return 0;
    }
}

int ssmi_ssd_gemm(int isa, int64_t M, int64_t Nc, int64_t K, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float *C,
                  int64_t ldc, int acc, int tri)
{
    ssd_kern k;
    if (get_kern(isa, &k) != 0)
        return -1;
    k.gemm(M, Nc, K, A, lda, B, ldb, C, ldc, acc, tri);
    return 0;
}

/* ------------------------------------------------------- recurrent path -- */

/* One (batch, head) item: tokens in order, state S [P][N] in place. */
static void rec_item(const ssm_ssd_args *a, const ssd_kern *k, int64_t b,
                     int64_t h, float *S)
{
    const ssd_dims d = dims_of(a);
    const int64_t g = h / d.hpg;
    const float A = a->A[h];
    const float *bias = a->dt_bias ? a->dt_bias + h : NULL;
    const float *Dh = a->D ? (a->D_per_channel ? a->D + h * d.P : a->D + h) : NULL;
    for (int64_t t = 0; t < d.L; t++) {
        const int64_t bt = b * d.L + t;
        const float dtv = dt_proc(a->dt[bt * d.H + h], bias, a->dt_softplus,
                                  a->dt_min, a->dt_max);
        const float av = ssmi_scan_expf(dtv * A);
        const float *x = a->x + (bt * d.H + h) * d.P;
        const float *Bv = a->B + (bt * d.G + g) * d.N;
        const float *Cv = a->C + (bt * d.G + g) * d.N;
        float *y = a->y + (bt * d.H + h) * d.P;
        k->rec(d.P, d.N, av, dtv, x, Bv, Cv, S, y);
        finish_row(k->isa, d.P, y, x, Dh, a->D_per_channel,
                   a->z ? a->z + (bt * d.H + h) * d.P : NULL);
    }
}

/* Work worth a parallel region (floats of state touched). */
#define SSD_PAR_MIN 65536

/* scratch: per-thread P*N states when h_last is NULL, else unused.  The
 * step passes h0 == h_last and NULL scratch: no allocation. */
static ssm_status run_recurrent(const ssm_ssd_args *a, const ssd_kern *k)
{
    const ssd_dims d = dims_of(a);
    const int64_t items = d.B * d.H, PN = d.P * d.N;
    float *scratch = NULL;
    int nt = ssmi_max_threads();
    if ((int64_t)nt > items)
        nt = (int)items;
    if (nt < 1)
        nt = 1;
    if (!a->h_last) {
        int64_t cnt;
        if (!ssmi_sizes_ok(&cnt, sizeof(float), 2, (int64_t)nt, pad16(PN)))
            return SSM_FAIL(SSM_ERR_NOMEM);
        scratch = ssmi_alloc((size_t)cnt, sizeof(float));
        if (!scratch)
            return SSM_FAIL(SSM_ERR_NOMEM);
    }
    const int par = items > 1 && items * PN * d.L >= SSD_PAR_MIN;
    /* A parallel region only when it pays, and not through an `if`
     * clause: libgomp allocates a team for every region it enters, even
     * one the clause makes serial, and the step must not allocate. */
#define REC_BODY(it) do {                                                    \
        const int64_t b_ = (it) / d.H, h_ = (it) % d.H;                        \
        float *S = a->h_last ? a->h_last + (it) * PN                           \
                             : scratch + (int64_t)thread_num() * pad16(PN);    \
        if (!a->h0)                                                            \
            memset(S, 0, (size_t)PN * sizeof(float));                          \
        else if (a->h0 + (it) * PN != S)                                       \
            memcpy(S, a->h0 + (it) * PN, (size_t)PN * sizeof(float));          \
        rec_item(a, k, b_, h_, S);                                             \
    } while (0)
    if (par) {
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t it = 0; it < items; it++)
            REC_BODY(it);
    } else {
        for (int64_t it = 0; it < items; it++)
            REC_BODY(it);
    }
#undef REC_BODY
    ssmi_free(scratch);
    return SSM_OK;
}

/* --------------------------------------------------------- chunked path -- */

/* Heads per work item: the largest divisor of hpg, at most 8, that still
 * leaves at least 8 items (shapes only). */
static int64_t heads_per_item(const ssd_dims *d)
{
    int64_t best = 1;
    for (int64_t hb = 1; hb <= 8 && hb <= d->hpg; hb++)
        if (d->hpg % hb == 0 && d->B * d->G * (d->hpg / hb) >= 8)
            best = hb;
    return best;
}

static int64_t chunk_ws_floats(const ssd_dims *d, int64_t hb, int64_t Q)
{
    return pad16(hb * d->N * d->P) + pad16(d->N * Q) + 2 * pad16(Q * Q) +
           pad16(Q * d->N) + 3 * pad16(Q * d->P) + 2 * pad16(Q) + 2 * pad16(Q);
}

static chunk_ws chunk_ws_carve(float *w, const ssd_dims *d, int64_t hb, int64_t Q)
{
    chunk_ws c;
    c.ST = w; w += pad16(hb * d->N * d->P);
    c.Bt = w; w += pad16(d->N * Q);
    c.Gm = w; w += pad16(Q * Q);
    c.M = w; w += pad16(Q * Q);
    c.Cs = w; w += pad16(Q * d->N);
    c.Xw = w; w += pad16(Q * d->P);
    c.Xc = w; w += pad16(Q * d->P);
    c.Yc = w; w += pad16(Q * d->P);
    c.e = w; w += pad16(Q);
    c.dtv = w; w += pad16(Q);
    c.cs = (double *)(void *)w;   /* 2 pad16(Q) floats = pad16(Q) doubles, 64-byte aligned */
    return c;
}

static ssm_status run_chunked(const ssm_ssd_args *a, const ssd_kern *k,
                              int64_t Q)
{
    const ssd_dims d = dims_of(a);
    const int64_t hb = heads_per_item(&d);
    const int64_t ipg = d.hpg / hb;              /* items per group */
    const int64_t items = d.B * d.G * ipg;
    const int64_t per = chunk_ws_floats(&d, hb, Q);
    const int64_t PN = d.P * d.N;
    int nt = ssmi_max_threads();
    if ((int64_t)nt > items)
        nt = (int)items;
    if (nt < 1)
        nt = 1;
    int64_t tot;
    if (!ssmi_sizes_ok(&tot, sizeof(float), 2, (int64_t)nt, per))
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *buf = ssmi_alloc((size_t)tot, sizeof(float));
    if (!buf)
        return SSM_FAIL(SSM_ERR_NOMEM);
    const int par = items > 1 && d.B * d.H * PN * d.L >= SSD_PAR_MIN;
    #pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
        const int64_t b = it / (d.G * ipg), g = (it / ipg) % d.G;
        const int64_t h0 = g * d.hpg + (it % ipg) * hb;
        const chunk_ws w = chunk_ws_carve(buf + (int64_t)thread_num() * per,
                                          &d, hb, Q);
        /* States in, transposed to [N][P]. */
        for (int64_t j = 0; j < hb; j++) {
            float *st = w.ST + j * PN;
            const float *src = a->h0 ? a->h0 + (b * d.H + h0 + j) * PN : NULL;
            if (!src)
                memset(st, 0, (size_t)PN * sizeof(float));
            else
                for (int64_t p = 0; p < d.P; p++)
                    for (int64_t n = 0; n < d.N; n++)
                        st[n * d.P + p] = src[p * d.N + n];
        }
        for (int64_t t0 = 0; t0 < d.L; t0 += Q) {
            const int64_t T = d.L - t0 < Q ? d.L - t0 : Q;
            const int64_t row0 = b * d.L + t0;
            const float *Bc = a->B + (row0 * d.G + g) * d.N;
            const float *Cc = a->C + (row0 * d.G + g) * d.N;
            /* Bt = B^T [N][T] and G = C B^T (lower triangle), shared by the
             * item's heads. */
            for (int64_t t = 0; t < T; t++)
                for (int64_t n = 0; n < d.N; n++)
                    w.Bt[n * Q + t] = Bc[t * d.G * d.N + n];
            k->gemm(T, T, d.N, Cc, d.G * d.N, w.Bt, Q, w.Gm, Q, 0, SSMI_SSD_LOWER);
            for (int64_t j = 0; j < hb; j++)
                k->chunk(a, k, &d, &w, Q, b, h0 + j, t0, T, w.ST + j * PN);
        }
        if (a->h_last)
            for (int64_t j = 0; j < hb; j++) {
                const float *st = w.ST + j * PN;
                float *dst = a->h_last + (b * d.H + h0 + j) * PN;
                for (int64_t p = 0; p < d.P; p++)
                    for (int64_t n = 0; n < d.N; n++)
                        dst[p * d.N + n] = st[n * d.P + p];
            }
    }
    ssmi_free(buf);
    return SSM_OK;
}

/* ----------------------------------------------------- plan, validation -- */

/* Chunk length from the shapes: 64 tokens (a 64 x 64 mask, products of
 * 64 x 64 x N fit L1/L2; measured against 32 and 128 by bench ssd). */
static int64_t auto_chunk(int64_t len)
{
    (void)len;
    return 64;
}

/* The chunked form pays T*N/(2 hb) + T*P/2 multiply-adds per token and head
 * on top of the 2 P N of the state products, but runs them as
 * register-blocked products; the recurrence does 3 P N operations per token
 * at lower throughput.  Short sequences (or tiny states) use the
 * recurrence. */
static ssm_ssd_path auto_path(int64_t len, int64_t P, int64_t N)
{
    if (len < 64 || P < 16 || N < 16)
        return SSM_SSD_RECURRENT;
    return SSM_SSD_CHUNKED;
}

static ssm_status check_shapes(int64_t B, int64_t L, int64_t H, int64_t P,
                               int64_t N, int64_t G)
{
    int64_t n;
    if (B < 1 || L < 1 || H < 1 || P < 1 || N < 1 || G < 1 || G > H ||
        H % G != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&n, sizeof(float), 4, B, L, H, P) ||
        !ssmi_sizes_ok(&n, sizeof(float), 4, B, L, G, N) ||
        !ssmi_sizes_ok(&n, sizeof(float), 4, B, H, P, N) ||
        !ssmi_sizes_ok(&n, sizeof(float), 3, B, L, H) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, H, P) ||
        /* per-thread chunk workspace: 8 heads of state plus Q-sized tiles */
        !ssmi_sizes_ok(&n, sizeof(float), 3, 8, P, N) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, SSMI_SSD_MAX_CHUNK, N + P + 2 * SSMI_SSD_MAX_CHUNK))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

static ssm_status check_args(const ssm_ssd_args *a)
{
    if (!a)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(check_shapes(a->batch, a->len, a->nheads, a->headdim, a->dstate,
                         a->ngroups));
    if (!a->x || !a->dt || !a->A || !a->B || !a->C || !a->y)
        return SSM_FAIL(SSM_ERR_ARG);
    if (isnan(a->dt_min) || isnan(a->dt_max) || a->dt_min > a->dt_max)
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssm_ssd_plan(int64_t batch, int64_t len, int64_t nheads,
                        int64_t headdim, int64_t dstate, int64_t ngroups,
                        ssm_ssd_path *path, int64_t *chunk)
{
    SSM_TRY(check_shapes(batch, len, nheads, headdim, dstate, ngroups));
    if (path)
        *path = auto_path(len, headdim, dstate);
    if (chunk) {
        const int64_t q = auto_chunk(len);
        *chunk = q < len ? q : len;
    }
    return SSM_OK;
}

ssm_status ssmi_ssd_scan_isa(const ssm_ssd_args *args, ssm_ssd_path path,
                             int64_t chunk, int isa)
{
    SSM_TRY(check_args(args));
    if ((int)path < SSM_SSD_AUTO || (int)path > SSM_SSD_RECURRENT ||
        chunk < 0 || chunk > SSMI_SSD_MAX_CHUNK)
        return SSM_FAIL(SSM_ERR_ARG);
    ssd_kern k;
    if (get_kern(isa, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (path == SSM_SSD_AUTO)
        path = auto_path(args->len, args->headdim, args->dstate);
    if (path == SSM_SSD_RECURRENT)
        return run_recurrent(args, &k);
    int64_t Q = chunk > 0 ? chunk : auto_chunk(args->len);
    if (Q > args->len)
        Q = args->len;
    return run_chunked(args, &k, Q);
}

ssm_status ssm_ssd_scan_ex(const ssm_ssd_args *args, ssm_ssd_path path,
                           int64_t chunk)
{
    return ssmi_ssd_scan_isa(args, path, chunk, SSM_SCAN_ISA_AUTO);
}

ssm_status ssm_ssd_scan(const ssm_ssd_args *args)
{
    return ssmi_ssd_scan_isa(args, SSM_SSD_AUTO, 0, SSM_SCAN_ISA_AUTO);
}

ssm_status ssm_ssd_step(const ssm_ssd_args *args)
{
    SSM_TRY(check_args(args));
    if (args->len != 1 || !args->h_last || args->h0 != args->h_last)
        return SSM_FAIL(SSM_ERR_ARG);
    ssd_kern k;
    if (get_kern(SSM_SCAN_ISA_AUTO, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    /* h_last non-NULL: run_recurrent allocates nothing. */
    return run_recurrent(args, &k);
}
