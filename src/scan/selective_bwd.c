/*
 * selective_bwd.c -- gradients through the selective scan of Mamba (Gu and
 * Dao 2023, Section 3.2, Algorithm 2, eq. 2a-2b), the reverse mode of
 * ssm_selective_scan (selective.c).  The semantics are those of Mamba's
 * selective_scan_ref / selective_scan_bwd kernel, plus the gradient at the
 * initial state and an incoming gradient at the final state, which Mamba's
 * kernel does not have.
 *
 * Forward, per batch b, channel d (group g), state n, step t:
 *   x    = delta + bias,  dt = softplus(x) or x
 *   h_n  = exp(dt A_n) h_n + dt u B_n
 *   y0   = sum_n C_n h_n + D u,   y = y0 silu(z)
 * Backward (selective_bwd_kernel.h has the adjoint recurrence):
 *   dy0 = dy silu(z),  dz = dy y0 silu'(z),  silu'(z) = s (1 + z (1 - s)),
 *   s = sigmoid(z);  dD = sum dy0 u;  du = D dy0 + dt sum_n g_n B_n;
 *   ddelta = d(dt)/dx ddt with d(dt)/dx = sigmoid(x) (1 above 20, where
 *   softplus(x) = x, as Mamba's kernels);  ddelta_bias = sum ddelta.
 *
 * Memory (never [B][D][L][N]): the states are not stored.  A first pass runs
 * the recurrence forward and keeps the state every `chunk` steps
 * (checkpoints, batch*dim*(len/chunk)*dstate floats); the backward then
 * walks the chunks last to first, recomputes each chunk's states and decays
 * from its checkpoint into per-thread buffers (chunk*dstate floats) and runs
 * the adjoint through them.  The default chunk is a power of two >= sqrt(len)
 * (which balances the two terms), at least max(64, 4096/dstate).
 *
 * Paths (shapes only; docs/scan-backward.md): blocks of 9 to 16 channels of
 * a group run the channel-vector kernels (selective_bwd_cv.h: 16 channels
 * in the lanes, B and C broadcast, dt stored by pass 1 so softplus runs
 * once), narrower blocks the per-channel kernels (selective_bwd_kernel.h),
 * few long channels (batch * dim <= 8, at least 8 chunks) the time-chunked
 * path (selective_bwd_tc.c), and one long channel with dstate % 32 == 0 the
 * state-split path (bwd_split, below).
 *
 * Determinism: work units are (batch, group, block of channels), fixed
 * by the shapes.  Each unit owns its channels' du, ddelta, dz and their
 * per-channel sums (dA, dD, ddelta_bias, dh0), summed over time last step
 * first, and over the batch in index order at the end.  dB and dC are shared
 * by the channels of a group: each unit sums its channels in order into a
 * partial for the span (the vector blocks of a partial group, pgb of them
 * fixed by the shapes, one after the other into the same partial), and
 * after a barrier the partials are added in index order.  No number depends on the thread count, nor on the chunk length
 * (the recomputed states are the forward's own; dA's float partial sums run
 * over aligned blocks of absolute time).
 */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "selective_bwd_internal.h"
#include "selective_bwd_vec.h"

#if defined(__x86_64__) || defined(__i386__)
#define BWD_X86 1
#endif

/* Budget of the dB/dC block partials (floats; 16 MiB): enough for one
 * span (pass 1 fused with pass 2, no dt of every block kept) at
 * (8,768,16,1024), 128 items. */
#define BWD_PART_FLOATS ((int64_t)1 << 22)

/* Budget of a thread's copy of B and C over a span, 2 dstate span floats
 * (4 MiB): few items would otherwise take spans of 2^17 steps and more,
 * per-thread buffers of tens of MiB. */
#define BWD_SPAN_FLOATS ((int64_t)1 << 20)

/* Outputs (du, ddelta, dz together) from which they are written with
 * streaming stores: far beyond the last-level cache. */
#define BWD_NT_BYTES (32.0 * 1024 * 1024)

/* Steps of absolute time per float partial sum of dA. */
#define BWD_DA_BLOCK 64

/* ------------------------------------------------- kernel instantiations */

/* Per-channel kernels (states in the lanes): blocks of at most 8 channels,
 * the split path and the time-chunked path (its chunk sweep from zero in
 * selective_bwd_tc_kernel.h). */
#define KSFX generic
#define KTGT
#include "selective_bwd_kernel.h"
#include "selective_bwd_tc_kernel.h"
#undef KSFX
#undef KTGT
#ifdef BWD_X86
#define KSFX avx2
#define KTGT __attribute__((target("avx2,fma")))
#include "selective_bwd_kernel.h"
#include "selective_bwd_tc_kernel.h"
#undef KSFX
#undef KTGT
#define KSFX avx512
#define KTGT __attribute__((target("avx512f")))
#include "selective_bwd_kernel.h"
#include "selective_bwd_tc_kernel.h"
#undef KSFX
#undef KTGT
#endif

/* Channel-vector kernels (16 channels in the lanes): portable C, AVX2
 * (two 8-float halves), AVX-512.  States per pass: 8 with 32 vector
 * registers, 4 with AVX2's 16 (each 16-lane vector takes two). */
#define KSFX generic
#define KTGT
#define VT sbv_g16
#define VLD(p) g16_ld(p)
#define VST(p, v) g16_st((p), (v))
#define VSET(x) g16_set(x)
#define VMUL(a, b) g16_mul((a), (b))
#define VADD(a, b) g16_add((a), (b))
#define VSUB(a, b) g16_sub((a), (b))
#define VDIV(a, b) g16_div((a), (b))
#define VFMA(a, b, c) g16_fma((a), (b), (c))
#define VEXP(v) g16_exp(v)
#define VDECAY(d, a) g16_decay((d), (a))
#define VDECAYN(d, a) g16_decay((d), (a))
#define VDECAYR(d, a) g16_decay((d), (a))
#define VSOFTPLUS(v) g16_softplus(v)
#define VGTSEL(x, y, a, b) g16_gtsel((x), (y), (a), (b))
#define VHSUM16(v) g16_hsum16(v)
#define NBMAX 4
#include "selective_bwd_cv.h"
#undef KSFX
#undef KTGT
#undef VT
#undef VLD
#undef VST
#undef VSET
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VFMA
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VSTREAM16
#undef VSOFTPLUS
#undef VGTSEL
#undef VHSUM16
#undef NBMAX
#ifdef BWD_X86
#define KSFX avx2
#define KTGT SBV_TGT_AVX2
#define VT sbv_a16
#define VLD(p) a16_ld(p)
#define VST(p, v) a16_st((p), (v))
#define VSET(x) a16_set(x)
#define VMUL(a, b) a16_mul((a), (b))
#define VADD(a, b) a16_add((a), (b))
#define VSUB(a, b) a16_sub((a), (b))
#define VDIV(a, b) a16_div((a), (b))
#define VFMA(a, b, c) a16_fma((a), (b), (c))
#define VEXP(v) a16_exp(v)
#define VDECAY(d, a) a16_decay((d), (a))
#define VDECAYN(d, a) a16_decayn((d), (a))
#define VDECAYR(d, a) a16_decayr((d), (a))
#define VSTREAM16(p, q) (_mm256_stream_ps((p), _mm256_load_ps(q)), \
                         _mm256_stream_ps((p) + 8, _mm256_load_ps((q) + 8)))
#define VSOFTPLUS(v) a16_softplus(v)
#define VGTSEL(x, y, a, b) a16_gtsel((x), (y), (a), (b))
#define VHSUM16(v) a16_hsum16(v)
#define VTRANS8(s, ss, d, ds) vtranspose8_avx2((s), (ss), (d), (ds))
#define NBMAX 4
#include "selective_bwd_cv.h"
#undef KSFX
#undef KTGT
#undef VT
#undef VLD
#undef VST
#undef VSET
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VFMA
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VSTREAM16
#undef VSOFTPLUS
#undef VGTSEL
#undef VHSUM16
#undef NBMAX
#define KSFX avx512
#define KTGT SBV_TGT_AVX512
#define VT __m512
#define VLD(p) _mm512_loadu_ps(p)
#define VST(p, v) _mm512_storeu_ps((p), (v))
#define VSET(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VDIV(a, b) _mm512_div_ps((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VEXP(v) vexp_avx512(v)
#define VDECAY(d, a) vdecay_avx512((d), (a))
#define VDECAYN(d, a) vdecayn_avx512((d), (a))
#define VDECAYR(d, a) vdecayr_avx512((d), (a))
#define VSTREAM16(p, q) _mm512_stream_ps((p), _mm512_load_ps(q))
#define VSOFTPLUS(v) vsoftplus_avx512(v)
#define VGTSEL(x, y, a, b) sbv_gtsel_avx512((x), (y), (a), (b))
#define VHSUM16(v) vhsum16x16_avx512(v)
/* Every AVX-512F CPU has AVX2: the 8 x 8 transpose of the AVX2 set for
 * the edges. */
#define VTRANS8(s, ss, d, ds) vtranspose8_avx2((s), (ss), (d), (ds))
#define VTRANS16(s, ss, d, ds) vtranspose16_avx512((s), (ss), (d), (ds))
#define NBMAX 8
#include "selective_bwd_cv.h"
#undef KSFX
#undef KTGT
#undef VT
#undef VLD
#undef VST
#undef VSET
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VFMA
#undef VEXP
#undef VDECAY
#undef VDECAYN
#undef VDECAYR
#undef VSTREAM16
#undef VSOFTPLUS
#undef VGTSEL
#undef VHSUM16
#undef VTRANS8
#undef VTRANS16
#undef NBMAX
#endif


/* One channel's chunk buffers in the driver (two sets: channel pairs). */
typedef struct {
    float *H, *Q, *P0, *P1, *P2, *dtb, *dsig, *dy0, *s1, *s2, *ys, *dd;
    const float *hin;
} bwd_set;

#define BWD_SET_(k, sfx)                                                     \
    do {                                                                     \
        (k)->dt = bwd_dt_##sfx; (k)->state = bwd_state_##sfx;                \
        (k)->local = tcb_local_##sfx;                                        \
        (k)->recompute = bwd_recompute_##sfx;                                \
        (k)->adjoint = bwd_adjoint_##sfx; (k)->tree = bwd_tree_##sfx;        \
        (k)->adjoint2 = bwd_adjoint2_##sfx;                                  \
        (k)->pre = bwd_pre_##sfx; (k)->post = bwd_post_##sfx;                \
        (k)->add = bwd_add_##sfx; (k)->dsum = bwd_dsum_##sfx;               \
        (k)->cv_gather = cvb_gather_##sfx; (k)->tr = cvb_tr_##sfx;          \
        (k)->cv_scatter = cvb_scatter_##sfx;                                 \
        (k)->cv_scatter_nt = cvb_scatter_nt_##sfx;                           \
        (k)->cv_dt = cvb_dt_##sfx; (k)->cv_pre = cvb_pre_##sfx;              \
        (k)->cv_state = cvb_state_##sfx;                                     \
        (k)->cv_recompute = cvb_recompute_##sfx;                             \
        (k)->cv_adjoint = cvb_adjoint_##sfx; (k)->cv_post = cvb_post_##sfx;  \
        (k)->cv_dsum = cvb_dsum_##sfx; (k)->cv_absmax = cvb_absmax_##sfx;    \
    } while (0)

static int bwd_get_kern(int isa, bwd_kern *k)
{
    if (isa == SSM_SCAN_ISA_AUTO)
        isa = ssmi_scan_best_isa();
    if (!ssmi_scan_isa_ok(isa))
        return -1;
    switch (isa) {
#ifdef BWD_X86
    case SSM_SCAN_ISA_AVX512: BWD_SET_(k, avx512); return 0;
    case SSM_SCAN_ISA_AVX2: BWD_SET_(k, avx2); return 0;
#endif
    default: BWD_SET_(k, generic); return 0;
    }
}

int ssmi_scan_bwd_kern(int isa, bwd_kern *k)
{
    return bwd_get_kern(isa, k);
}

/* ------------------------------------------------------------- helpers -- */

static int bwd_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* A channel's dD or ddelta_bias: its eight double sums (keyed by absolute
 * time) added pairwise, then over the batch in index order. */
static float bwd_sum8_batch(const double *sums, int64_t batch, int64_t dim, int64_t d)
{
    double s = 0.0;
    for (int64_t b = 0; b < batch; b++) {
        const double *q8 = sums + (b * dim + d) * 8;
        s += ((q8[0] + q8[1]) + (q8[2] + q8[3])) + ((q8[4] + q8[5]) + (q8[6] + q8[7]));
    }
    return (float)s;
}

/* Xt[t][n] = Xg[n][t0 + t], t < T, n < N. */
static void bwd_transpose(const float *Xg, int64_t L, int64_t t0, int64_t T,
                          int64_t N, float *Xt)
{
    for (int64_t n = 0; n < N; n++) {
        const float *src = Xg + n * L + t0;
        for (int64_t t = 0; t < T; t++)
            Xt[t * N + n] = src[t];
    }
}

int64_t ssmi_scan_bwd_auto_chunk(int64_t len, int64_t dstate)
{
    /* A power of two >= sqrt(len) (checkpoints and chunk buffers balance),
     * and at least 4096 / dstate steps (>= 64): the per-channel kernels are
     * called once per chunk, so short chunks pay their call and loop
     * overheads often; 4096 states keep the 12 per-thread tiles in L2. */
    int64_t c = 64;
    while (c * dstate < 4096)
        c *= 2;
    while (c < len / c)
        c *= 2;
    return c < len ? c : len;
}

int64_t ssmi_scan_bwd_cv_chunk(int64_t len)
{
    /* The channel-vector kernels keep a chunk's states and decays for 16
     * channels ([chunk][N][16] floats each, 128 KiB at chunk 64, N 16) in
     * L2: the shortest power of two >= sqrt(len), at least 64 steps (each
     * call does 16 channels' work, so its overheads are small). */
    int64_t c = 64;
    while (c < len / c)
        c *= 2;
    return c < len ? c : len;
}

static ssm_status bwd_check(const ssm_scan_args *a, const float *dy,
                            const ssm_scan_grads *gr)
{
    int64_t n;
    if (!a || !dy || !gr)
        return SSM_FAIL(SSM_ERR_ARG);
    if (a->batch < 1 || a->dim < 1 || a->dstate < 1 || a->len < 1
        || a->ngroups < 1 || a->ngroups > a->dim || a->dim % a->ngroups != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&n, sizeof(float), 3, a->batch, a->dim, a->len)
        || !ssmi_sizes_ok(&n, sizeof(double), 2, a->dim, a->dstate)
        || !ssmi_sizes_ok(&n, sizeof(double), 3, a->batch, a->dim, a->dstate)
        || !ssmi_sizes_ok(&n, sizeof(float), 4, a->batch, a->ngroups, a->dstate, a->len))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!a->u || !a->delta || !a->A || !a->B || !a->C)
        return SSM_FAIL(SSM_ERR_ARG);
    /* A gradient for an input that is absent is a caller's error. */
    if ((gr->dD && !a->D) || (gr->dz && !a->z)
        || (gr->ddelta_bias && !a->delta_bias))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* ------------------------------------------------------------- driver --- */

/* Channels per block: a block of more than 8 (half of the 16 lanes) runs
 * the channel-vector kernels, a narrower one (a group of at most 8
 * channels, or a group's last block) its channels one at a time. */
#define BWD_CV 16
#define BWD_CV_MIN 9

/* The shared view of one backward call. */
typedef struct bwd_ctx {
    const ssm_scan_args *a;
    const float *dy;
    const ssm_scan_grads *gr;
    const bwd_kern *k;
    int64_t N, L, dim, G, cpg, nblk, ncvg, LC, nch;
    int64_t rem, cbr;   /* channels after the vector blocks, per row block */
    int64_t pgb, npg;   /* vector blocks per partial group, groups per (b, g) */
    int want_ds, want_s1, want_st;
    int ntst;       /* du, ddelta, dz through streaming stores */
    float *ck;      /* [units][BWD_CV][nch][N] checkpoints */
    float *gst;     /* [units][BWD_CV][N] adjoint states */
    float *dAc;     /* [units][BWD_CV][N] dA float partials */
    double *dAd;    /* [units][BWD_CV][N] dA totals */
    float *dtall;   /* [batch][G][ncvg][L][16] dt of the channel-vector blocks
                       (several spans; one span keeps it per thread) */
    double *dDd, *dbd;
} bwd_ctx;

/* One unit: batch b, group g, block blk: channels [d0, d0 + m). */
typedef struct bwd_unit {
    int64_t i, b, g, blk, d0, m, cvi;
} bwd_unit;

/* The checkpoints of unit i, [BWD_CV][nch][N]: the thread's (ckt, one
 * span) or the unit's own. */
static float *bwd_ck(const bwd_ctx *c, float *ckt, int64_t i)
{
    return ckt ? ckt : c->ck + i * BWD_CV * c->nch * c->N;
}

static bwd_unit bwd_unit_of(const bwd_ctx *c, int64_t i)
{
    bwd_unit u;
    u.i = i;
    u.b = i / (c->G * c->nblk);
    const int64_t r = i % (c->G * c->nblk);
    u.g = r / c->nblk;
    u.blk = r % c->nblk;
    if (u.blk < c->ncvg) {
        u.d0 = u.g * c->cpg + u.blk * BWD_CV;
        u.m = c->cpg - u.blk * BWD_CV < BWD_CV ? c->cpg - u.blk * BWD_CV : BWD_CV;
        u.cvi = (u.b * c->G + u.g) * c->ncvg + u.blk;
    } else {
        const int64_t rb = u.blk - c->ncvg, first = c->cpg - c->rem;
        u.d0 = u.g * c->cpg + first + rb * c->cbr;
        u.m = c->rem - rb * c->cbr < c->cbr ? c->rem - rb * c->cbr : c->cbr;
        u.cvi = -1;
    }
    return u;
}

/* The unit of channel d of batch row b. */
static bwd_unit bwd_unit_at(const bwd_ctx *c, int64_t b, int64_t d)
{
    const int64_t g = d / c->cpg, dd = d % c->cpg, first = c->cpg - c->rem;
    const int64_t blk = dd < first ? dd / BWD_CV : c->ncvg + (dd - first) / c->cbr;
    return bwd_unit_of(c, (b * c->G + g) * c->nblk + blk);
}

/* Steps per gather/scatter tile of the channel-vector blocks (a multiple of
 * the chunk): the 16 rows of a block are L apart, and runs of 2 KiB per row
 * keep the transposes near the forward's cost (64-step runs cost four
 * times as much per float: short streams the prefetchers do not follow). */
#define BWD_CV_TILE 512

/* Bytes of decays ([L][N][16] floats) a thread keeps from pass 1 to pass 2
 * of a one-span block: beyond the L2 but within the L3, written once and
 * read once more instead of a second exp per decay. */
#define BWD_CV_KEEPQ (4.0 * 1024 * 1024)

/* Scratch bytes up to which a call takes one block (glibc's cap of its
 * dynamic mmap threshold, 32 MiB on 64-bit systems). */
#define BWD_ONE_BLOCK (32.0 * 1024 * 1024)

/* Per-thread buffers of the channel-vector blocks: [TT][16] tiles of the
 * inputs and outputs, [LC][16] tiles of one chunk, [LC][N][16] states and
 * decays. */
typedef struct cv_buf {
    /* B and C of the unit's (batch, group) from step s0: row n at Bs + n *
     * lds (the item's padded copy, or the arguments themselves) */
    const float *Bs, *Cs;
    int64_t lds, s0;
    float *bc;   /* the copy: [2][N][lds] */
    float *ua;   /* one span: u of the block, lane-major [lds][16] (pass 1 to 2) */
    float *dtk;  /* one span: dt of the block, [lds][16] (instead of dtall) */
    float *Qk;   /* or NULL: one short span, the decays of every chunk but
                    the last, [L][N][16], from pass 1 to pass 2 */
    float *ckt;  /* or NULL: one span, the thread's checkpoints of its unit,
                    [BWD_CV][nch][N] (else bwd_ctx's ck, per unit) */
    int keep_u;  /* one span: pass 1 keeps u in ua and dt in dtk for pass 2 */
    float *H, *Q, *ul, *dyl, *zl, *xl, *dul, *dxl, *dzl, *dy0l, *wl,
          *dsl, *s1l, *s2l, *ysl, *denl, *Al, *hs, *bl, *Dl;
} cv_buf;

static int64_t cv_tile_len(int64_t LC)
{
    return LC >= BWD_CV_TILE ? LC : BWD_CV_TILE / LC * LC;
}

/* kq: floats of the kept decays (0: none). */
static int64_t cv_per_thread(int64_t N, int64_t LC, int64_t lds, int64_t kq)
{
    const int64_t TT = cv_tile_len(LC);
    return 2 * N * lds + 32 * lds + 2 * pad16(LC * N * 16) + 7 * pad16(TT * 16)
           + 7 * pad16(LC * 16) + 2 * pad16(N * 16) + 32 + pad16(kq);
}

static cv_buf cv_carve(int64_t N, int64_t LC, int64_t lds, int64_t kq, float *w)
{
    const int64_t TT = cv_tile_len(LC);
    cv_buf f;
    f.Qk = kq ? w : NULL; w += pad16(kq);
    f.ckt = NULL;
    f.bc = w; w += 2 * N * lds;
    f.ua = w; w += 16 * lds;
    f.dtk = w; w += 16 * lds;
    f.keep_u = 0;
    f.Bs = f.Cs = NULL;
    f.lds = lds;
    f.s0 = 0;
    f.H = w; w += pad16(LC * N * 16);
    f.Q = w; w += pad16(LC * N * 16);
    float **tl[7] = { &f.ul, &f.dyl, &f.zl, &f.xl, &f.dul, &f.dxl, &f.dzl };
    for (int j = 0; j < 7; j++) {
        *tl[j] = w;
        w += pad16(TT * 16);
    }
    float **cl[7] = { &f.dy0l, &f.wl, &f.dsl, &f.s1l, &f.s2l, &f.ysl, &f.denl };
    for (int j = 0; j < 7; j++) {
        *cl[j] = w;
        w += pad16(LC * 16);
    }
    f.Al = w; w += pad16(N * 16);
    f.hs = w; w += pad16(N * 16);
    f.bl = w;
    f.Dl = w + 16;
    return f;
}

/* A, delta_bias and D of a block, lane-major; 1 when no A is above 0 (the
 * decays' exp may then skip its overflow step when dt >= 0 too); *amax =
 * max |A|. */
static int cv_params(const bwd_ctx *c, const bwd_unit *u, const cv_buf *f,
                     float *amax)
{
    const ssm_scan_args *a = c->a;
    const int64_t N = c->N;
    c->k->cv_gather(a->A + u->d0 * N, N, u->m, N, f->Al);
    for (int64_t j = 0; j < 16; j++) {
        f->bl[j] = a->delta_bias && j < u->m ? a->delta_bias[u->d0 + j] : 0.0f;
        f->Dl[j] = a->D && j < u->m ? a->D[u->d0 + j] : 0.0f;
    }
    int neg = 1;
    for (int64_t i = 0; i < N * 16; i++)
        neg &= !(f->Al[i] > 0.0f);
    *amax = c->k->cv_absmax(N * 16, f->Al);
    return neg;
}

/* dt >= 0 (or NaN) in every lane of a chunk: always under softplus. */
static int cv_dt_nonneg(int softplus, const float *dtl, int64_t T)
{
    if (softplus)
        return 1;
    int ok = 1;
    for (int64_t i = 0; i < T * 16; i++)
        ok &= !(dtl[i] < 0.0f);
    return ok;
}

/* The exp of a chunk's decays exp(dt A) (selective_bwd_cv.h, NEG): 2 where
 * max |dt| max |A| <= DEC_RNG (no range steps: the forward's VDECAYR tiles), 1 where A
 * <= 0 and dt >= 0 (no overflow step), 0 the full exp; the same bits. */
static int cv_exp_kind(const bwd_ctx *c, int negA, float amax, const float *dtl,
                       int64_t T)
{
    if (c->k->cv_absmax(T * 16, dtl) * amax <= DEC_RNG)
        return 2;
    return negA && cv_dt_nonneg(c->a->delta_softplus, dtl, T);
}

/* Software prefetch of a tile's rows: the lines of the m rows (L apart,
 * from r0) of T steps from t0 in each of the narr arrays, numbered
 * (array, row, line); [q0, q1) of them is issued, so a caller spreads a
 * tile over the chunks of the tile before it (the rows are short streams
 * that the hardware prefetchers pick up late). */
static int64_t cv_pf_lines(int64_t T) { return (T * (int64_t)sizeof(float) + 63) / 64 + 1; }

static void cv_prefetch(const float *const *arr, int narr, int64_t L, int64_t r0,
                        int64_t m, int64_t t0, int64_t T, int64_t q0, int64_t q1)
{
    const int64_t nl = cv_pf_lines(T), per = m * nl;
    if (q1 > narr * per)
        q1 = narr * per;
    for (int64_t q = q0; q < q1; q++) {
        const int64_t ai = q / per, r = q % per;
        const float *p = arr[ai] + r0 + (r / nl) * L + t0;
        __builtin_prefetch((const char *)p + (r % nl) * 64, 0, 2);
    }
}

/* Pass 1 of a channel-vector block: dt of every step (kept for pass 2:
 * softplus once per channel and step) and the checkpoints. */
static void cv_pass1(const bwd_ctx *c, const bwd_unit *u, const cv_buf *f)
{
    const ssm_scan_args *a = c->a;
    const bwd_kern *k = c->k;
    const int64_t N = c->N, L = c->L, LC = c->LC, nch = c->nch;
    const int64_t TT = cv_tile_len(LC);
    float amax;
    const int negA = cv_params(c, u, f, &amax);
    float *ck = bwd_ck(c, f->ckt, u->i);
    float *dta = f->keep_u ? f->dtk : c->dtall + u->cvi * L * 16;
    const int64_t row = (u->b * c->dim + u->d0) * L;
    float *wt = f->dul;   /* dt u of the tile */
    if (a->h0)
        k->cv_gather(a->h0 + (u->b * c->dim + u->d0) * N, N, u->m, N, f->hs);
    else
        memset(f->hs, 0, (size_t)(N * 16) * sizeof(float));
    memcpy(ck, f->hs, (size_t)(N * 16) * sizeof(float));
    for (int64_t xb = 0; xb < L; xb += TT) {
        const int64_t Tx = TT < L - xb ? TT : L - xb;
        const int more = xb + Tx < L || Tx > LC;   /* a checkpoint to make */
        float *ut = f->keep_u ? f->ua + xb * 16 : f->ul;
        k->cv_gather(a->delta + row + xb, L, u->m, Tx, dta + xb * 16);
        if (more || f->keep_u)
            k->cv_gather(a->u + row + xb, L, u->m, Tx, ut);
        k->cv_dt(Tx, dta + xb * 16, ut, a->delta_bias ? f->bl : NULL,
                 a->delta_softplus, more ? wt : NULL);
        for (int64_t tb = xb; tb < xb + Tx; tb += LC) {
            const int64_t kc = tb / LC, Tn = LC < L - tb ? LC : L - tb;
            if (kc + 1 >= nch)
                break;
            const float *dl = dta + tb * 16;
            k->cv_state(cv_exp_kind(c, negA, amax, dl, Tn), Tn, N, f->lds,
                        f->Al, f->Bs + (tb - f->s0), dl, wt + (tb - xb) * 16, f->hs,
                        f->Qk ? f->Qk + tb * N * 16 : NULL);
            memcpy(ck + (kc + 1) * N * 16, f->hs, (size_t)(N * 16) * sizeof(float));
        }
    }
}

/* Pass 2 of a channel-vector block over the steps [xb, xe) (whole chunks
 * of one span starting at sb): gather, then per chunk, last first,
 * recompute, adjoint and the elementwise ends, then scatter.  pbase: the
 * partials of the block's group for the span ([SP][N] dB, then dC at +TS),
 * or NULL; acc: add to them (not the group's first block). */
static void cv_tile2(const bwd_ctx *c, const bwd_unit *u, const cv_buf *f,
                     int64_t xb, int64_t xe, int64_t sb, float *pbase,
                     int64_t TS, int acc)
{
    const ssm_scan_args *a = c->a;
    const ssm_scan_grads *gr = c->gr;
    const bwd_kern *k = c->k;
    const int64_t N = c->N, L = c->L, LC = c->LC, nch = c->nch, m = u->m;
    const int64_t Tx = xe - xb;
    const int64_t bd0 = u->b * c->dim + u->d0, row = bd0 * L + xb;
    float amax;
    const int negA = cv_params(c, u, f, &amax);
    k->cv_gather(c->dy + row, L, m, Tx, f->dyl);
    /* u: kept by pass 1 (one span; the span starts at 0), else gathered */
    const float *ul = f->keep_u ? f->ua + xb * 16 : f->ul;
    if (!f->keep_u)
        k->cv_gather(a->u + row, L, m, Tx, f->ul);
    if (a->z)
        k->cv_gather(a->z + row, L, m, Tx, f->zl);
    const float *Bg = f->Bs - f->s0, *Cg = f->Cs - f->s0;
    const int64_t us = u->i * BWD_CV * N;
    /* The tile before this one (next in this walk), spread over the chunks. */
    const int64_t pb = xb - cv_tile_len(LC) > sb ? xb - cv_tile_len(LC) : sb;
    const float *pfa[3] = { c->dy, NULL, NULL };
    int npf = 1;
    if (a->z)
        pfa[npf++] = a->z;
    if (!f->keep_u)
        pfa[npf++] = a->u;
    if (xb <= sb)
        npf = 0;
    const int64_t nkc = (xe - 1) / LC - xb / LC + 1;
    const int64_t pftot = npf * m * cv_pf_lines(xb - pb);
    for (int64_t kc = (xe - 1) / LC; kc >= xb / LC; kc--) {
        const int64_t tb = kc * LC, Tn = LC < L - tb ? LC : L - tb, o = (tb - xb) * 16;
        if (npf) {
            const int64_t j = (xe - 1) / LC - kc;
            cv_prefetch(pfa, npf, L, bd0 * L, m, pb, xb - pb, j * pftot / nkc,
                        (j + 1) * pftot / nkc);
        }
        const float *dtl = !c->want_st ? NULL
                           : (f->keep_u ? f->dtk : c->dtall + u->cvi * L * 16) + tb * 16;
        k->cv_pre(Tn, dtl, ul + o, a->delta_softplus, f->dyl + o,
                  a->z ? f->zl + o : NULL, c->want_st ? f->wl : NULL,
                  c->want_ds ? f->dsl : NULL, f->dy0l, f->denl);
        if (gr->dD)
            k->cv_dsum(tb, Tn, m, f->dy0l, ul + o, c->dDd + bd0 * 8);
        if (!c->want_st)
            continue;
        float *pB = gr->dB ? pbase + (tb - sb) * N : NULL;
        float *pC = gr->dC ? pbase + TS + (tb - sb) * N : NULL;
        const float *hin = bwd_ck(c, f->ckt, u->i) + kc * BWD_CV * N;
        /* The decays: kept by pass 1 (all chunks but the last), else an
         * exp here (the same bits). */
        const int kept = f->Qk && kc + 1 < nch;
        float *Q = kept ? f->Qk + tb * N * 16 : f->Q;
        const int neg = kept ? 3 : cv_exp_kind(c, negA, amax, dtl, Tn);
        k->cv_recompute(neg, pC != NULL, Tn, N, f->lds, f->Al, Bg + tb, Cg + tb, dtl, f->wl,
                        f->dy0l, hin, f->H, Q, f->ysl, pC, acc);
        k->cv_adjoint(pB != NULL, tb, Tn, N, f->lds, f->Al, Bg + tb, Cg + tb, dtl, f->wl,
                      f->dy0l, hin, f->H, Q, c->gst + us, c->dAc + us, c->dAd + us,
                      f->s1l, f->s2l, pB, acc);
        k->cv_post(Tn, a->D ? f->Dl : NULL, dtl, f->dsl, ul + o, f->dyl + o,
                   f->zl + o, f->denl, f->dy0l, f->s1l, f->s2l, f->ysl,
                   gr->du ? f->dul + o : NULL,
                   c->want_ds ? f->dxl + o : NULL, gr->dz ? f->dzl + o : NULL);
        if (gr->ddelta_bias)
            k->cv_dsum(tb, Tn, m, f->dxl + o, NULL, c->dbd + bd0 * 8);
    }
    if (!c->want_st)
        return;
    void (*sc)(const float *, int64_t, int64_t, float *, int64_t) =
        c->ntst ? k->cv_scatter_nt : k->cv_scatter;
    if (gr->du)
        sc(f->dul, m, Tx, gr->du + row, L);
    if (gr->ddelta)
        sc(f->dxl, m, Tx, gr->ddelta + row, L);
    if (gr->dz)
        sc(f->dzl, m, Tx, gr->dz + row, L);
#ifdef BWD_X86
    if (c->ntst)
        _mm_sfence();   /* the streamed lines, before the unit ends */
#endif
}

/* Per-thread scratch of the driver: the channel-vector tiles (fb) and the
 * per-channel kernels' [LC][N] tiles and chunk buffers, carved from one
 * slice of `per` floats. */
typedef struct bwd_tls {
    cv_buf fb;
    float *Bt, *Ct, *hs, *H;   /* H: also the dB/dC reduction tile */
    bwd_set set[2];
} bwd_tls;

static bwd_tls bwd_carve(int64_t N, int64_t LC, int64_t lds, int64_t kq, int64_t TN,
                         int64_t TP, float *w)
{
    bwd_tls t;
    t.fb = cv_carve(N, LC, lds, kq, w);
    t.Bt = w; t.Ct = w + TN; t.hs = t.Ct + TN;
    t.H = t.hs + pad16(8 * N);
    float *q = t.H;
    for (int j = 0; j < 2; j++) {
        t.set[j].H = q; t.set[j].Q = q + TN; t.set[j].P0 = q + 2 * TN;
        t.set[j].P1 = q + 3 * TN; t.set[j].P2 = q + 4 * TN;
        q += 5 * TN;
        t.set[j].dtb = q; t.set[j].dsig = q + TP; t.set[j].dy0 = q + 2 * TP;
        t.set[j].s1 = q + 3 * TP; t.set[j].s2 = q + 4 * TP; t.set[j].ys = q + 5 * TP;
        t.set[j].dd = q + 6 * TP;
        t.set[j].hin = NULL;
        q += 8 * TP;
    }
    return t;
}

/* The units of work item it: a partial group (pgb consecutive vector
 * blocks of one batch row and group, whose dB/dC terms go into one partial,
 * block after block) or one row block alone: units [*i0, *i1). */
static void bwd_item(const bwd_ctx *c, int64_t it, int64_t *i0, int64_t *i1)
{
    const int64_t nslot = c->npg + c->nblk - c->ncvg;
    const int64_t bg = it / nslot, sl = it % nslot;
    int64_t b0, b1;
    if (sl < c->npg) {
        b0 = sl * c->pgb;
        b1 = b0 + c->pgb < c->ncvg ? b0 + c->pgb : c->ncvg;
    } else {
        b0 = c->ncvg + (sl - c->npg);
        b1 = b0 + 1;
    }
    *i0 = bg * c->nblk + b0;
    *i1 = bg * c->nblk + b1;
}

/* The B and C rows of the item of unit i0 (a partial group) over [sb,
 * se), into the thread's copy: rows lds floats apart (not a multiple of
 * 4 KiB: rows len apart alias in L1 when len is a power of two). */
static void cv_copy_bc(const bwd_ctx *c, int64_t i0, int64_t sb, int64_t se, cv_buf *f)
{
    const bwd_unit u = bwd_unit_of(c, i0);
    const int64_t N = c->N, L = c->L, lds = f->lds;
    const float *Bg = c->a->B + (u.b * c->G + u.g) * N * L;
    const float *Cg = c->a->C + (u.b * c->G + u.g) * N * L;
    for (int64_t n = 0; n < N; n++) {
        memcpy(f->bc + n * lds, Bg + n * L + sb, (size_t)(se - sb) * sizeof(float));
        memcpy(f->bc + (N + n) * lds, Cg + n * L + sb, (size_t)(se - sb) * sizeof(float));
    }
    f->Bs = f->bc;
    f->Cs = f->bc + N * lds;
    f->s0 = sb;
}

/* Pass 1 of unit i: its checkpoints (and dt of a vector block).  A vector
 * block reads B from w->fb (Bs, lds, s0): the item's copy, or with direct
 * set the arguments themselves. */
static void bwd_pass1_unit(const bwd_ctx *c, int64_t i, bwd_tls *w, int direct)
{
    const bwd_unit u = bwd_unit_of(c, i);
    if (u.cvi >= 0) {
        if (direct) {
            w->fb.Bs = c->a->B + (u.b * c->G + u.g) * c->N * c->L;
            w->fb.Cs = NULL;
            w->fb.s0 = 0;
            const int64_t keep = w->fb.lds;
            w->fb.lds = c->L;
            cv_pass1(c, &u, &w->fb);
            w->fb.lds = keep;
        } else {
            cv_pass1(c, &u, &w->fb);
        }
        return;
    }
    const ssm_scan_args *a = c->a;
    const bwd_kern *k = c->k;
    const int64_t N = c->N, L = c->L, LC = c->LC, nch = c->nch, G = c->G, dim = c->dim;
    const int64_t b = u.b, g = u.g, d0 = u.d0, d1 = u.d0 + u.m;
    const float *Bg = a->B + (b * G + g) * N * L;
    float *cku = bwd_ck(c, w->fb.ckt, i);
    float *dtb = w->set[0].dtb;
    for (int64_t d = d0; d < d1; d++) {
        float *hd = w->hs + (d - d0) * N;
        if (a->h0)
            memcpy(hd, a->h0 + (b * dim + d) * N, (size_t)N * sizeof(float));
        else
            memset(hd, 0, (size_t)N * sizeof(float));
        memcpy(cku + (d - d0) * nch * N, hd, (size_t)N * sizeof(float));
    }
    for (int64_t kc = 0; kc + 1 < nch; kc++) {
        const int64_t tb = kc * LC;
        bwd_transpose(Bg, L, tb, LC, N, w->Bt);
        for (int64_t d = d0; d < d1; d++) {
            const int64_t off = (b * dim + d) * L + tb;
            float *hd = w->hs + (d - d0) * N;
            k->dt(LC, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                  a->delta_softplus, dtb, NULL);
            k->state(LC, N, a->A + d * N, w->Bt, dtb, a->u + off, hd);
            memcpy(cku + ((d - d0) * nch + kc + 1) * N, hd, (size_t)N * sizeof(float));
        }
    }
}

/* Pass 2 of unit i over the span [sb, se): the chunks last to first.
 * pbase: the partials of its item ([SP][N] dB, dC at +TS) or NULL; acc:
 * add to them (a vector block after the first of its partial group). */
static void bwd_pass2_unit(const bwd_ctx *c, int64_t i, int64_t sb, int64_t se,
                           float *pbase, int64_t TS, int acc, bwd_tls *w)
{
    const bwd_unit u = bwd_unit_of(c, i);
    const int64_t N = c->N, L = c->L, LC = c->LC, nch = c->nch, G = c->G, dim = c->dim;
    if (u.cvi >= 0) {
        /* Tiles aligned to absolute multiples of TT, cut by the span. */
        const int64_t TT = cv_tile_len(LC);
        for (int64_t xt = (se - 1) / TT; xt >= sb / TT; xt--) {
            const int64_t xb = xt * TT > sb ? xt * TT : sb;
            const int64_t xe = (xt + 1) * TT < se ? (xt + 1) * TT : se;
            cv_tile2(c, &u, &w->fb, xb, xe, sb, pbase, TS, acc);
        }
        return;
    }
    const ssm_scan_args *a = c->a;
    const ssm_scan_grads *gr = c->gr;
    const bwd_kern *k = c->k;
    const float *dy = c->dy;
    const int want_ds = c->want_ds, want_s1 = c->want_s1, want_st = c->want_st;
    float *const gst = c->gst, *const dAc = c->dAc;
    double *const dAd = c->dAd;
    bwd_set *set = w->set;
    for (int64_t kc = (se - 1) / LC; kc >= sb / LC; kc--) {
        const int64_t tb = kc * LC, Tn = LC < L - tb ? LC : L - tb;
        const int64_t b = u.b, g = u.g, d0 = u.d0, d1 = u.d0 + u.m;
        float *pB = pbase ? pbase + (tb - sb) * N : NULL;
        float *pC = pbase ? pB + TS : NULL;
        if (want_st) {
            bwd_transpose(a->B + (b * G + g) * N * L, L, tb, Tn, N, w->Bt);
            bwd_transpose(a->C + (b * G + g) * N * L, L, tb, Tn, N, w->Ct);
        }
        const int64_t us = i * BWD_CV * N;
        /* Channels two at a time where N = 16 (the paired adjoint,
         * same bits as one by one), each with its own buffer set. */
        for (int64_t d = d0; d < d1;) {
            const int np = N == 16 && d + 1 < d1 ? 2 : 1;
            for (int j = 0; j < np; j++) {
                bwd_set *S = &set[j];
                const int64_t bd = b * dim + d + j, off = bd * L + tb;
                k->pre(Tn, dy + off, a->z ? a->z + off : NULL, S->dy0);
                if (gr->dD)
                    k->dsum(tb, Tn, S->dy0, a->u + off, c->dDd + bd * 8);
                if (!want_st)
                    continue;
                k->dt(Tn, a->delta + off,
                      a->delta_bias ? a->delta_bias[d + j] : 0.0f,
                      a->delta_softplus, S->dtb, want_ds ? S->dsig : NULL);
                S->hin = bwd_ck(c, w->fb.ckt, i) + ((d + j - d0) * nch + kc) * N;
                k->recompute(Tn, N, a->A + (d + j) * N, w->Bt, w->Ct, S->dtb, a->u + off,
                             S->hin, S->H, S->Q, gr->dz ? S->P0 : NULL);
            }
            if (!want_st) {
                d += np;
                continue;
            }
            const int64_t cs = us + (d - d0) * N;
            if (np == 2) {
                const int64_t bd = b * dim + d, off = bd * L + tb;
                const float *A2[2] = { a->A + d * N, a->A + (d + 1) * N };
                const float *dt2[2] = { set[0].dtb, set[1].dtb };
                const float *u2[2] = { a->u + off, a->u + off + L };
                const float *dy2[2] = { set[0].dy0, set[1].dy0 };
                const float *hin2[2] = { set[0].hin, set[1].hin };
                const float *H2[2] = { set[0].H, set[1].H };
                const float *Q2[2] = { set[0].Q, set[1].Q };
                float *g2[2] = { gst + cs, gst + cs + N };
                float *ac2[2] = { dAc + cs, dAc + cs + N };
                double *ad2[2] = { dAd + cs, dAd + cs + N };
                float *p12[2] = { set[0].P1, set[1].P1 };
                float *p22[2] = { set[0].P2, set[1].P2 };
                k->adjoint2(gr->dB != NULL, gr->dC != NULL, d == d0, tb, Tn, A2,
                            w->Bt, w->Ct, dt2, u2, dy2, hin2, H2, Q2, g2, ac2, ad2,
                            p12, p22, pB, pC);
            } else {
                const int64_t bd = b * dim + d, off = bd * L + tb;
                k->adjoint(gr->dB != NULL, gr->dC != NULL, d == d0, tb, Tn, N,
                           a->A + d * N, w->Bt, w->Ct, set[0].dtb, a->u + off, set[0].dy0,
                           set[0].hin, set[0].H, set[0].Q, gst + cs,
                           dAc + cs, dAd + cs, set[0].P1, set[0].P2, pB, pC);
            }
            for (int j = 0; j < np; j++) {
                bwd_set *S = &set[j];
                const int64_t bd = b * dim + d + j, off = bd * L + tb;
                const float *z = a->z ? a->z + off : NULL;
                const float Dd = a->D ? a->D[d + j] : 0.0f;
                if (want_s1)
                    k->tree(Tn, N, S->P1, S->s1);
                if (want_ds)
                    k->tree(Tn, N, S->P2, S->s2);
                if (gr->dz)
                    k->tree(Tn, N, S->P0, S->ys);
                float *dx = gr->ddelta ? gr->ddelta + off : want_ds ? S->dd : NULL;
                k->post(Tn, a->D != NULL, Dd, S->dtb, S->dsig, a->u + off, dy + off, z,
                        S->dy0, S->s1, S->s2, S->ys, gr->du ? gr->du + off : NULL, dx,
                        gr->dz ? gr->dz + off : NULL);
                if (gr->ddelta_bias)
                    k->dsum(tb, Tn, dx, NULL, c->dbd + bd * 8);
            }
            d += np;
        }
    }
}

/* Where channel j of unit i keeps state n of its [BWD_CV][N] region:
 * lane-major [N][16] in channel-vector blocks, [j][N] in the others. */
static int64_t bwd_slot(const bwd_unit *u, int64_t N, int64_t j, int64_t n)
{
    return u->i * BWD_CV * N + (u->cvi >= 0 ? n * 16 + j : j * N + n);
}

/* ----------------------------------------------------------- split path --
 * One long channel (batch * dim = 1, len >= BWD_SPLIT_MIN_LEN, dstate a
 * multiple of BWD_SPLIT_MULT): nothing to share among threads over channels,
 * so the state is cut in two halves, as the forward's split path does.
 * The N recurrences of a channel are independent (h_n, g_n, dA_n, dB_n,
 * dC_n and dh0_n involve state n only); they meet only in the sums over n
 * (s1 = sum_n g B, s2 = sum_n A g a h_prev, ys = sum_n C h).  Each half runs
 * the whole backward (checkpoints, recompute, adjoint) for its states and
 * every channel, writing its own rows of dB and dC and its partial sums of
 * s1, s2, ys; after a barrier per span of time, s1 = (half 0 + half 1), in
 * that order, and the elementwise ends run per channel.  Memory: per half
 * the checkpoints and chunk tiles, and 3 rows of BWD_SPLIT_SPAN floats per
 * channel (never [B][D][L][N]).  At most two threads; one runs both halves
 * in turn: the same bytes. */
#define BWD_SPLIT_CHANNELS 8
#define BWD_SPLIT_MIN_LEN 4096
#define BWD_SPLIT_MULT 32
#define BWD_SPLIT_SPAN 32768
#define BWD_SPLIT_TILE 4096

int ssmi_scan_bwd_split(int64_t batch, int64_t dim, int64_t dstate, int64_t len)
{
    /* One channel (two or more share the threads over channels) whose
     * halves are whole 16-float vectors: with half-width vectors each half
     * costs as many instructions as the whole state (measured: the split
     * path at dstate 16 ran 1.65x slower than the per-channel one on one
     * thread, about even on two). */
    return batch * dim == 1 && dstate % BWD_SPLIT_MULT == 0 && len >= BWD_SPLIT_MIN_LEN;
}

static ssm_status bwd_split(const ssm_scan_args *a, const float *dy,
                            const float *dh_last, const ssm_scan_grads *gr,
                            int64_t chunk, const bwd_kern *k)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t batch = a->batch, cpg = dim / G, nbd = batch * dim, Ns = N / 2;
    const int want_ds = gr->ddelta || gr->ddelta_bias;
    const int want_s1 = gr->du || want_ds;
    int64_t LC = chunk > 0 ? chunk : ssmi_scan_bwd_auto_chunk(L, Ns);
    if (LC > L)
        LC = L;
    const int64_t nch = (L + LC - 1) / LC;
    int64_t SP = BWD_SPLIT_SPAN / LC * LC;
    if (SP < LC)
        SP = LC;
    if (SP > nch * LC)
        SP = nch * LC;
    const int64_t nsp = (L + SP - 1) / SP, pSP = pad16(SP);
    /* B, C and the dB, dC partials go through [TT][Ns] tiles of TT >= 4096
     * steps: the Ns rows are len apart, and a row run of one page per
     * chunk defeats the hardware prefetchers (the transposes cost more than
     * the recurrences with 1024-step runs). */
    const int64_t TT = LC >= BWD_SPLIT_TILE ? LC : BWD_SPLIT_TILE / LC * LC;
    const int64_t TN = pad16((LC > 16 ? LC : 16) * Ns), TP = pad16(LC), TB = pad16(TT * Ns);
    const int64_t perh = 5 * TN + 4 * TB + 4 * TP + pad16(BWD_SPLIT_CHANNELS * Ns);
    int64_t n_ck, n_h, n_rows, n_fin, n_st;
    if (!ssmi_sizes_ok(&n_ck, sizeof(float), 4, (int64_t)2, nbd, nch, Ns)
        || !ssmi_sizes_ok(&n_h, sizeof(float), 2, (int64_t)2, perh)
        || !ssmi_sizes_ok(&n_rows, sizeof(float), 4, (int64_t)2, (int64_t)3, nbd, pSP)
        || !ssmi_sizes_ok(&n_fin, sizeof(float), 3, nbd, (int64_t)7, pSP)
        || !ssmi_sizes_ok(&n_st, sizeof(double), 3, (int64_t)2, nbd, Ns))
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *ck = ssmi_alloc((size_t)n_ck, sizeof(float));
    float *hb = ssmi_alloc((size_t)n_h, sizeof(float));
    float *rows = ssmi_alloc((size_t)n_rows, sizeof(float));
    float *fin = ssmi_alloc((size_t)n_fin, sizeof(float));
    float *gst = ssmi_alloc((size_t)n_st, sizeof(float));
    float *dAc = ssmi_alloc((size_t)n_st, sizeof(float));
    double *dAd = ssmi_alloc((size_t)n_st, sizeof(double));
    double *sums = ssmi_alloc((size_t)(16 * nbd), sizeof(double));
    if (!ck || !hb || !rows || !fin || !gst || !dAc || !dAd || !sums) {
        ssmi_free(ck); ssmi_free(hb); ssmi_free(rows); ssmi_free(fin);
        ssmi_free(gst); ssmi_free(dAc); ssmi_free(dAd); ssmi_free(sums);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    double *dDd = sums, *dbd = sums + 8 * nbd;
    memset(sums, 0, (size_t)(16 * nbd) * sizeof(double));
    for (int s = 0; s < 2; s++)
        for (int64_t bd = 0; bd < nbd; bd++)
            for (int64_t n = 0; n < Ns; n++) {
                const int64_t i = (s * nbd + bd) * Ns + n;
                gst[i] = dh_last ? dh_last[bd * N + s * Ns + n] : 0.0f;
                dAc[i] = 0.0f;
                dAd[i] = 0.0;
            }
    int nt = ssmi_max_threads();
    nt = nt < 1 ? 1 : nt > 2 ? 2 : nt;

#pragma omp parallel num_threads(nt)
    {
        /* Pass 1: each half's checkpoints. */
#pragma omp for schedule(static)
        for (int s = 0; s < 2; s++) {
            float *w = hb + s * perh;
            float *Bt = w + 5 * TN, *dtb = w + 5 * TN + 4 * TB, *hs = dtb + 4 * TP;
            for (int64_t bd = 0; bd < nbd; bd++) {
                float *hd = hs + bd * Ns;
                if (a->h0)
                    memcpy(hd, a->h0 + bd * N + s * Ns, (size_t)Ns * sizeof(float));
                else
                    memset(hd, 0, (size_t)Ns * sizeof(float));
                memcpy(ck + (s * nbd + bd) * nch * Ns, hd, (size_t)Ns * sizeof(float));
            }
            for (int64_t xb = 0; xb < (nch - 1) * LC; xb += TT) {
                const int64_t xe = xb + TT < (nch - 1) * LC ? xb + TT : (nch - 1) * LC;
                for (int64_t bg = 0; bg < batch * G; bg++) {
                    const int64_t b = bg / G, g = bg % G;
                    k->tr(xe - xb, Ns, a->B + (bg * N + s * Ns) * L + xb, L, Bt, Ns);
                    for (int64_t tb = xb; tb < xe; tb += LC) {
                        const int64_t kc = tb / LC;
                        for (int64_t d = g * cpg; d < (g + 1) * cpg; d++) {
                            const int64_t bd = b * dim + d, off = bd * L + tb;
                            k->dt(LC, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                                  a->delta_softplus, dtb, NULL);
                            k->state(LC, Ns, a->A + d * N + s * Ns, Bt + (tb - xb) * Ns, dtb,
                                     a->u + off, hs + bd * Ns);
                            memcpy(ck + ((s * nbd + bd) * nch + kc + 1) * Ns, hs + bd * Ns,
                                   (size_t)Ns * sizeof(float));
                        }
                    }
                }
            }
        }
        for (int64_t sp = nsp - 1; sp >= 0; sp--) {
            const int64_t sb = sp * SP, se = sb + SP < L ? sb + SP : L;
            /* Each half: the span's tiles and chunks, last first. */
#pragma omp for schedule(static)
            for (int s = 0; s < 2; s++) {
                float *w = hb + s * perh;
                float *H = w, *Q = w + TN, *P0 = w + 2 * TN, *P1 = w + 3 * TN;
                float *P2 = w + 4 * TN;
                float *Bt = w + 5 * TN, *Ct = Bt + TB, *pB = Ct + TB, *pC = pB + TB;
                float *dtb = pC + TB, *dy0 = dtb + TP;
                for (int64_t xt = (se - 1) / TT; xt >= sb / TT; xt--) {
                  const int64_t xb = xt * TT > sb ? xt * TT : sb;
                  const int64_t xe = (xt + 1) * TT < se ? (xt + 1) * TT : se;
                  for (int64_t bg = 0; bg < batch * G; bg++) {
                    const int64_t b = bg / G, g = bg % G;
                    k->tr(xe - xb, Ns, a->B + (bg * N + s * Ns) * L + xb, L, Bt, Ns);
                    k->tr(xe - xb, Ns, a->C + (bg * N + s * Ns) * L + xb, L, Ct, Ns);
                    for (int64_t kc = (xe - 1) / LC; kc >= xb / LC; kc--) {
                        const int64_t tb = kc * LC, Tn = LC < L - tb ? LC : L - tb;
                        const int64_t o = (tb - xb) * Ns;
                        for (int64_t d = g * cpg; d < (g + 1) * cpg; d++) {
                            const int64_t bd = b * dim + d, off = bd * L + tb;
                            const int64_t si = (s * nbd + bd) * Ns;
                            k->pre(Tn, dy + off, a->z ? a->z + off : NULL, dy0);
                            k->dt(Tn, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                                  a->delta_softplus, dtb, NULL);
                            const float *hin = ck + ((s * nbd + bd) * nch + kc) * Ns;
                            k->recompute(Tn, Ns, a->A + d * N + s * Ns, Bt + o, Ct + o, dtb,
                                         a->u + off, hin, H, Q, gr->dz ? P0 : NULL);
                            k->adjoint(gr->dB != NULL, gr->dC != NULL, d == g * cpg, tb, Tn,
                                       Ns, a->A + d * N + s * Ns, Bt + o, Ct + o, dtb,
                                       a->u + off, dy0, hin, H, Q, gst + si, dAc + si,
                                       dAd + si, P1, P2, pB + o, pC + o);
                            float *r = rows + ((s * 3) * nbd + bd) * pSP + (tb - sb);
                            if (want_s1)
                                k->tree(Tn, Ns, P1, r);
                            if (want_ds)
                                k->tree(Tn, Ns, P2, r + nbd * pSP);
                            if (gr->dz)
                                k->tree(Tn, Ns, P0, r + 2 * nbd * pSP);
                        }
                    }
                    if (gr->dB)
                        k->tr(Ns, xe - xb, pB, Ns, gr->dB + (bg * N + s * Ns) * L + xb, L);
                    if (gr->dC)
                        k->tr(Ns, xe - xb, pC, Ns, gr->dC + (bg * N + s * Ns) * L + xb, L);
                  }
                }
            }
            /* Both halves are in: the ends, per channel. */
#pragma omp for schedule(static)
            for (int64_t bd = 0; bd < nbd; bd++) {
                const int64_t d = bd % dim, T = se - sb, off = bd * L + sb;
                float *f = fin + bd * 7 * pSP;
                float *dy0 = f, *dtb = f + pSP, *dsig = f + 2 * pSP, *s1 = f + 3 * pSP;
                float *s2 = f + 4 * pSP, *ys = f + 5 * pSP, *dd = f + 6 * pSP;
                const float *r0 = rows + bd * pSP, *r1 = rows + (3 * nbd + bd) * pSP;
                k->pre(T, dy + off, a->z ? a->z + off : NULL, dy0);
                if (gr->dD)
                    k->dsum(sb, T, dy0, a->u + off, dDd + bd * 8);
                k->dt(T, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                      a->delta_softplus, dtb, want_ds ? dsig : NULL);
                for (int64_t t = 0; t < T; t++) {
                    s1[t] = want_s1 ? r0[t] + r1[t] : 0.0f;
                    s2[t] = want_ds ? r0[nbd * pSP + t] + r1[nbd * pSP + t] : 0.0f;
                    ys[t] = gr->dz ? r0[2 * nbd * pSP + t] + r1[2 * nbd * pSP + t] : 0.0f;
                }
                float *dx = gr->ddelta ? gr->ddelta + off : want_ds ? dd : NULL;
                k->post(T, a->D != NULL, a->D ? a->D[d] : 0.0f, dtb, dsig, a->u + off,
                        dy + off, a->z ? a->z + off : NULL, dy0, s1, s2, ys,
                        gr->du ? gr->du + off : NULL, dx, gr->dz ? gr->dz + off : NULL);
                if (gr->ddelta_bias)
                    k->dsum(sb, T, dx, NULL, dbd + bd * 8);
            }
        }
    }
    for (int64_t d = 0; d < dim; d++) {
        if (gr->dA)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0.0;
                for (int64_t b = 0; b < batch; b++)
                    acc += dAd[((n / Ns) * nbd + b * dim + d) * Ns + n % Ns];
                gr->dA[d * N + n] = (float)acc;
            }
        if (gr->dD)
            gr->dD[d] = bwd_sum8_batch(dDd, batch, dim, d);
        if (gr->ddelta_bias)
            gr->ddelta_bias[d] = bwd_sum8_batch(dbd, batch, dim, d);
    }
    if (gr->dh0)
        for (int64_t bd = 0; bd < nbd; bd++)
            for (int64_t n = 0; n < N; n++)
                gr->dh0[bd * N + n] = gst[((n / Ns) * nbd + bd) * Ns + n % Ns];
    ssmi_free(ck); ssmi_free(hb); ssmi_free(rows); ssmi_free(fin);
    ssmi_free(gst); ssmi_free(dAc); ssmi_free(dAd); ssmi_free(sums);
    return SSM_OK;
}

ssm_status ssmi_selective_scan_backward_ex(const ssm_scan_args *a,
                                           const float *dy,
                                           const float *dh_last,
                                           const ssm_scan_grads *gr,
                                           int64_t chunk, int isa)
{
    SSM_TRY(bwd_check(a, dy, gr));
    if (chunk < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    bwd_kern k;
    if (bwd_get_kern(isa, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);

    bwd_ctx c;
    memset(&c, 0, sizeof c);
    c.a = a; c.dy = dy; c.gr = gr; c.k = &k;
    c.want_ds = gr->ddelta || gr->ddelta_bias;
    c.want_s1 = gr->du || c.want_ds;
    /* Everything but dD goes through the states. */
    c.want_st = c.want_s1 || gr->dA || gr->dB || gr->dC || gr->dz || gr->dh0;
    const int want_st = c.want_st;
    if (!want_st && !gr->dD)
        return SSM_OK;
    /* du, ddelta and dz streamed past the caches (non-temporal stores) when
     * together they are far larger than them (as the forward's y): a
     * shape-only choice that changes no value. */
    c.ntst = 3.0 * (double)a->batch * (double)a->dim * (double)a->len * sizeof(float)
             >= BWD_NT_BYTES;
    /* Few long channels: time-chunked (selective_bwd_tc.c). */
    if (chunk == 0 && ssmi_scan_bwd_tc_path(a->batch, a->dim, a->dstate, a->len))
        return ssmi_scan_bwd_tc(a, dy, dh_last, gr, 0, isa);
    if (want_st && ssmi_scan_bwd_split(a->batch, a->dim, a->dstate, a->len))
        return bwd_split(a, dy, dh_last, gr, chunk, &k);

    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t batch = a->batch, cpg = dim / G, nbd = batch * dim;
    c.N = N; c.L = L; c.dim = dim; c.G = G; c.cpg = cpg;
    if (N > INT64_MAX / 1024)   /* the [16][N] tiles below must fit */
        return SSM_FAIL(SSM_ERR_NOMEM);
    /* A group: blocks of 16 channels (the last may have 9 to 15), then
     * the rest (a group of at most 8 channels, or the last 1 to 8) in row
     * blocks of a quarter of them (1 to 8 channels: a few units to share
     * among threads even for few channels). */
    c.ncvg = cpg / BWD_CV + (cpg % BWD_CV >= BWD_CV_MIN ? 1 : 0);
    c.rem = cpg - (c.ncvg * BWD_CV < cpg ? c.ncvg * BWD_CV : cpg);
    c.cbr = c.rem / 4 < 1 ? 1 : c.rem / 4 > 8 ? 8 : c.rem / 4;
    c.nblk = c.ncvg + (c.rem + c.cbr - 1) / c.cbr;
    const int64_t nblk = c.nblk;
    int64_t LC = chunk > 0 ? chunk
                 : c.ncvg > 0 ? ssmi_scan_bwd_cv_chunk(L) : ssmi_scan_bwd_auto_chunk(L, N);
    if (LC > L)
        LC = L;
    const int64_t nch = (L + LC - 1) / LC;
    c.LC = LC; c.nch = nch;
    const int64_t units = batch * G * nblk;
    /* Partial groups: the dB/dC terms of pgb consecutive vector blocks go
     * into one partial, block after block (one thread runs the group), so
     * fewer partials are written and added; at least 16 groups where there
     * are 16 blocks to share among threads.  Shapes only. */
    c.pgb = c.ncvg / 16 < 1 ? 1 : c.ncvg / 16 > 8 ? 8 : c.ncvg / 16;
    c.npg = (c.ncvg + c.pgb - 1) / c.pgb;
    const int64_t items = batch * G * (c.npg + nblk - c.ncvg);
    /* The channels of a group meet (a barrier, then the partials of dB and
     * dC are added in item order) once per span of whole chunks.  The
     * partials take items * 2 * span * dstate floats: the span is as long
     * as fits in BWD_PART_FLOATS and BWD_SPAN_FLOATS (few barriers for few
     * channels and long sequences), but at least one chunk.  Shapes only. */
    int64_t SP = BWD_PART_FLOATS / (2 * N) / items;
    if (SP > BWD_SPAN_FLOATS / (2 * N))
        SP = BWD_SPAN_FLOATS / (2 * N);
    SP = SP / LC * LC;
    if (SP < LC)
        SP = LC;
    if (SP > (L + LC - 1) / LC * LC)
        SP = (L + LC - 1) / LC * LC;
    const int64_t nsp = (L + SP - 1) / SP;
    const int64_t TS = pad16(SP * N), ppart = 2 * TS;
    const int want_part = gr->dB || gr->dC;
    /* Per-thread [LC][N] tiles, at least [16][N]: H also takes the
     * 16-step tiles of the dB/dC reduction.  Vector blocks: their tiles
     * and the item's copy of B and C over a span, rows lds apart. */
    const int64_t TN = pad16((LC > 16 ? LC : 16) * N), TP = pad16(LC);
    const int64_t lds = pad16(SP) + 16;
    /* No overflow: bwd_check bounded B [batch][G][N][L] to 2^56 bytes, so
     * max(LC, 16) N 16 <= 2^60, 2 N lds <= 2^58 and per < 2^63. */
    int64_t per = 12 * TN + 16 * TP + pad16(8 * N);
    /* One span of at most BWD_CV_KEEPQ bytes of decays per block: pass 1
     * keeps them for pass 2 (one exp per decay instead of two). */
    const int64_t kq = want_st && c.ncvg > 0 && nsp == 1 && nch > 1
                       && (double)L * (double)N * 16.0 * sizeof(float) <= BWD_CV_KEEPQ
                       ? L * N * 16 : 0;
    if (c.ncvg > 0 && cv_per_thread(N, LC, lds, kq) > per)
        per = cv_per_thread(N, LC, lds, kq);

    int nt = ssmi_max_threads();
    if (nt < 1)
        nt = 1;
    int64_t n_ck = 0, n_thr = 0, n_part = 0, n_st = 0, n_dt = 0, tmp;
    if (!ssmi_sizes_ok(&n_ck, sizeof(float), 4, units, (int64_t)BWD_CV, nch, N))
        return SSM_FAIL(SSM_ERR_NOMEM);
    /* One span: the checkpoints of the unit a thread runs, at the end of
     * its slice (a unit's pass 1 runs right before its pass 2 on the same
     * thread), instead of every unit's: fewer bytes, and no array of them
     * that glibc may trim and fault in again each call. */
    const int64_t ckn = want_st && nsp == 1 ? pad16(BWD_CV * nch * N) : 0;
    per += ckn;
    if (!ssmi_sizes_ok(&n_thr, sizeof(float), 2, per, (int64_t)nt)
        || !ssmi_sizes_ok(&n_part, sizeof(float), 2, items, ppart)
        || !ssmi_sizes_ok(&n_st, sizeof(double), 3, units, (int64_t)BWD_CV, N)
        || !ssmi_sizes_ok(&n_dt, sizeof(float), 5, batch, G, c.ncvg > 0 ? c.ncvg : 1, L,
                          (int64_t)16)
        || !ssmi_sizes_ok(&tmp, sizeof(float), 2, LC, N))
        return SSM_FAIL(SSM_ERR_NOMEM);
    /* One span: each unit runs pass 1 right before its pass 2, so its dt
     * and u (kept in per-thread buffers) are still in cache; several: pass
     * 1 for all first, dt of every vector block in dtall. */
    const int fused = nsp == 1;
    const int want_dt = want_st && c.ncvg > 0 && !fused;
    /* The scratch: ck, gst, dAc, dAd (doubles), dtall, the dD and
     * ddelta_bias sums (per (batch, channel) eight running sums each, step
     * t going to sum t mod 8: absolute time, independent of the chunks),
     * the thread slices, the partials.  Up to BWD_ONE_BLOCK bytes in all
     * they are carved from one block (each piece padded to 64 bytes):
     * glibc serves a repeated block of that size from its heap once its
     * dynamic mmap threshold has risen to it, while with one block per
     * piece it mapped the largest afresh or trimmed the heap under the
     * others after every call, and each call faulted its scratch in again
     * (1.5 K page faults a call at (1,1536,16,2048), the 2-thread backward
     * twice as slow in a VM).  Above glibc's cap of that threshold one
     * block would be mapped afresh every call: the pieces apart. */
    const int64_t pc[8] = { want_st && !ckn ? n_ck : 0, want_st ? n_st : 0,
                            want_st ? n_st : 0, want_st ? 2 * n_st : 0,
                            want_dt ? n_dt : 0, 32 * nbd, n_thr, want_part ? n_part : 0 };
    float *pp[8] = { NULL };
    float *blk = NULL;
    int64_t tot = 0, po[8];
    for (int j = 0; j < 8; j++) {
        po[j] = tot;
        if (__builtin_add_overflow(tot, pad16(pc[j]), &tot))
            return SSM_FAIL(SSM_ERR_NOMEM);
    }
    int ok = 1;
    if ((double)tot * sizeof(float) <= BWD_ONE_BLOCK) {
        blk = ssmi_alloc((size_t)tot, sizeof(float));
        ok = blk != NULL;
        for (int j = 0; j < 8 && ok; j++)
            pp[j] = pc[j] ? blk + po[j] : NULL;
    } else {
        for (int j = 0; j < 8; j++)
            if (pc[j] && !(pp[j] = ssmi_alloc((size_t)pc[j], sizeof(float))))
                ok = 0;
    }
    if (!ok) {
        for (int j = 0; j < 8 && !blk; j++)
            ssmi_free(pp[j]);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    float *ck = pp[0], *gst = pp[1], *dAc = pp[2], *dtall = pp[4], *thr = pp[6];
    float *part = pp[7];
    double *dAd = (double *)(void *)pp[3], *sums = (double *)(void *)pp[5];
    double *dDd = sums, *dbd = sums + 8 * nbd;
    c.ck = ck; c.gst = gst; c.dAc = dAc; c.dAd = dAd; c.dtall = dtall;
    c.dDd = dDd; c.dbd = dbd;
    memset(sums, 0, (size_t)(16 * nbd) * sizeof(double));

#pragma omp parallel num_threads(nt)
    {
        float *slice = thr + (int64_t)bwd_thread_num() * per;
        bwd_tls w = bwd_carve(N, LC, lds, kq, TN, TP, slice);
        w.fb.ckt = ckn ? slice + per - ckn : NULL;
        w.fb.keep_u = fused && want_st;

        /* Adjoint states start at dh_last (zero when NULL). */
        if (want_st) {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < units; i++) {
                const bwd_unit u = bwd_unit_of(&c, i);
                const int64_t s0 = i * BWD_CV * N;
                for (int64_t j = 0; j < BWD_CV * N; j++) {
                    gst[s0 + j] = 0.0f;
                    dAc[s0 + j] = 0.0f;
                    dAd[s0 + j] = 0.0;
                }
                if (dh_last)
                    for (int64_t j = 0; j < u.m; j++)
                        for (int64_t n = 0; n < N; n++)
                            gst[bwd_slot(&u, N, j, n)] = dh_last[(u.b * dim + u.d0 + j) * N + n];
            }
        }

        /* Pass 1: checkpoints, the state entering every chunk. */
        if (want_st && !fused) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < units; i++)
                bwd_pass1_unit(&c, i, &w, 1);
        }

        /* Pass 2: the spans, and in each the chunks, last to first. */
        for (int64_t sp = nsp - 1; sp >= 0; sp--) {
            const int64_t sb = sp * SP, se = sb + SP < L ? sb + SP : L;
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < items; it++) {
                int64_t i0, i1;
                bwd_item(&c, it, &i0, &i1);
                if (want_st && i0 % nblk < c.ncvg)
                    cv_copy_bc(&c, i0, sb, se, &w.fb);
                for (int64_t i = i0; i < i1; i++) {
                    if (want_st && fused)
                        bwd_pass1_unit(&c, i, &w, 0);
                    bwd_pass2_unit(&c, i, sb, se, want_part ? part + it * ppart : NULL, TS,
                                   i > i0, &w);
                }
            }
            /* Implicit barrier: every item's partial of this span is in.
             * dB, dC rows of a group: items added in index order, 16 steps
             * at a time (contiguous [16][N] tiles), then transposed out. */
            if (want_part) {
                const int64_t Tn = se - sb, tb = sb, npc = (Tn + 15) / 16;
                const int64_t nslot = c.npg + nblk - c.ncvg;
#pragma omp for schedule(static)
                for (int64_t row = 0; row < batch * G * npc; row++) {
                    const int64_t bg = row / npc, t0 = (row % npc) * 16;
                    const int64_t tl = Tn - t0 < 16 ? Tn - t0 : 16;
                    const float *p0 = part + bg * nslot * ppart;
                    for (int wch = 0; wch < 2; wch++) {
                        float *out = wch == 0 ? gr->dB : gr->dC;
                        if (!out)
                            continue;
                        memcpy(w.H, p0 + wch * TS + t0 * N, (size_t)(tl * N) * sizeof(float));
                        for (int64_t sl = 1; sl < nslot; sl++)
                            k.add(tl * N, p0 + sl * ppart + wch * TS + t0 * N, w.H);
                        k.tr(N, tl, w.H, N, out + bg * N * L + tb + t0, L);
                    }
                }
            }
        }

        /* Sums over the batch, in index order. */
#pragma omp for schedule(static)
        for (int64_t d = 0; d < dim; d++) {
            if (gr->dA)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0.0;
                    for (int64_t b = 0; b < batch; b++) {
                        const bwd_unit u = bwd_unit_at(&c, b, d);
                        s += dAd[bwd_slot(&u, N, d - u.d0, n)];
                    }
                    gr->dA[d * N + n] = (float)s;
                }
            if (gr->dD)
                gr->dD[d] = bwd_sum8_batch(dDd, batch, dim, d);
            if (gr->ddelta_bias)
                gr->ddelta_bias[d] = bwd_sum8_batch(dbd, batch, dim, d);
        }
    }
    if (gr->dh0)
        for (int64_t i = 0; i < units; i++) {
            const bwd_unit u = bwd_unit_of(&c, i);
            for (int64_t j = 0; j < u.m; j++)
                for (int64_t n = 0; n < N; n++)
                    gr->dh0[(u.b * dim + u.d0 + j) * N + n] = gst[bwd_slot(&u, N, j, n)];
        }

    if (blk)
        ssmi_free(blk);
    else
        for (int j = 0; j < 8; j++)
            ssmi_free(pp[j]);
    return SSM_OK;
}

ssm_status ssm_selective_scan_backward(const ssm_scan_args *args,
                                       const float *dy, const float *dh_last,
                                       const ssm_scan_grads *grads)
{
    return ssmi_selective_scan_backward_ex(args, dy, dh_last, grads, 0,
                                           SSM_SCAN_ISA_AUTO);
}
