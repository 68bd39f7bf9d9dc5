/*
 * mpi_mamba2.c -- the Mamba-2 block and residual stack forward (Dao and Gu
 * 2024, section 7, figure 6) over the ranks of a communicator, each rank a
 * consecutive block of tokens.
 *
 * What must cross the ranks, per layer: the causal conv's left context (the
 * last d_conv pre-conv xBC inputs before the block, the "halo", over the
 * Dc = Di + 2 G N channels x, B, C) and the SSD state entering the block.
 * Unlike the Mamba-1 block (mpi_mamba.c), whose stages are re-implemented
 * so that the entering state is added to the scan's outputs as a fix-up,
 * this file runs libssm's own block, ssm_mamba2_forward, from the right
 * state: the gated RMSNorm sits between the scan and out_proj and is not
 * linear in the scan's output, so a fix-up would have to stop inside the
 * block, and the block's stages use libssm's internal vector exp (their
 * bits cannot be reproduced through the public API).  Per layer and rank:
 *
 *   1. the halo element: the xBC inputs of the block's last min(L, K)
 *      tokens (ssm_mamba2_forward over those tokens from a zero state
 *      leaves exactly them in its conv state), combined over the ranks by
 *      the "keep the last K" exclusive scan of mpi_common.c;
 *   2. the carries: per (batch, head) (exp(A_h sum_t dt_t), S_end), the
 *      SSD block's affine map S -> P S + S_loc (scalar decay per head,
 *      Dao and Gu 2024, eq. 1), by ssm_mpi_ssd_scan's exclusive scan.
 *      Every rank but the last computes its carry in a first pass of the
 *      block's own stages up to the scan (m2_carry: in_proj's xBC and dt
 *      rows, conv with the halo, silu, ssm_ssd_scan from rank 0's state or
 *      zero; about 0.6 of a block); the last rank sends the identity;
 *   3. every rank runs the block from (halo, S_in): the outputs and the
 *      state after the block are the single-process block's from that
 *      state.
 * The critical path is the first pass plus one block; on one rank the
 * call is exactly ssm_mamba2_forward (the same bytes).  Messages per layer
 * and rank:
 * B Dc (K + 1) floats (halo) and B H (1 + P N) floats (carries), log2(R)
 * rounds each.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "mpi_internal.h"
#include "mpi_exp.h"

/* Sizes of a block (resolved configuration). */
typedef struct m2dims {
    int64_t dm, di, n, k, p, h, g, dc, dp;
    int dpc, norm;
    float dt_min, dt_max, eps;
} m2dims;

static int m2dims_get(m2dims *d, const ssm_mamba2 *blk)
{
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    memset(d, 0, sizeof *d);
    if (!blk || ssm_mamba2_get_config(blk, &cfg) != SSM_OK || cfg.headdim < 1)
        return 0;
    d->dm = cfg.d_model; d->di = cfg.d_model * cfg.expand; d->n = cfg.d_state;
    d->k = cfg.d_conv; d->p = cfg.headdim; d->h = d->di / cfg.headdim;
    d->g = cfg.ngroups; d->dc = d->di + 2 * d->g * d->n; d->dp = d->di + d->dc + d->h;
    d->dpc = cfg.D_per_channel; d->norm = cfg.norm;
    d->dt_min = cfg.dt_min; d->dt_max = cfg.dt_max; d->eps = cfg.norm_eps;
    return d->k >= 1 && d->k <= 64;
}

/* Values the ranks must agree on: the configuration and a hash of the
 * small parameters (conv, dt bias, A_log, D, norm weight) of blk. */
static uint64_t m2_hash(uint64_t h, const ssm_mamba2 *blk, float *buf, int64_t cap)
{
    const int ps[] = { SSM_MAMBA2_CONV_W, SSM_MAMBA2_CONV_B, SSM_MAMBA2_DT_BIAS,
                       SSM_MAMBA2_A_LOG, SSM_MAMBA2_D, SSM_MAMBA2_NORM_W };
    for (int i = 0; i < 6; i++) {
        int64_t cnt = 0;
        if (ssm_mamba2_param_count(blk, (ssm_mamba2_param)ps[i], &cnt) != SSM_OK ||
            cnt > cap ||
            ssm_mamba2_get_param(blk, (ssm_mamba2_param)ps[i], buf, cnt) != SSM_OK)
            return h ^ 1;
        h = ssmi_hash(h, buf, (size_t)cnt * sizeof(float));
    }
    return h;
}

static void m2dims_agree(ssmi_agree *g, const m2dims *d, int ok)
{
    const int64_t v[] = { d->dm, d->di, d->n, d->k, d->p, d->g, d->dpc, d->norm };
    for (int i = 0; i < 8; i++)
        ssmi_agree_add(g, ok ? v[i] : 0);
    uint64_t h = SSMI_HASH0;
    if (ok) {
        h = ssmi_hash(h, &d->dt_min, sizeof d->dt_min);
        h = ssmi_hash(h, &d->dt_max, sizeof d->dt_max);
        h = ssmi_hash(h, &d->eps, sizeof d->eps);
    }
    ssmi_agree_add(g, ssmi_hash_q(h));
}

/* Workspace of one layer over B x L tokens (reused by every layer of a
 * stack: a stack's blocks share one configuration). */
struct m2ws {
    m2dims d;
    int64_t B, L;
    ssm_mamba2_state *tmp;        /* [B] the block's running state */
    float *xlast, *ylast;         /* [B][K][Dm] */
    float *conv0, *ssm0;          /* rank 0's entering state */
    float *ctx;                   /* [B][Dc][K] conv context entering the block */
    float *conv1, *ssm1;          /* the state after the block */
    float *hsend, *hrecv;         /* [B Dc][1 + K] */
    float *csend, *crecv;         /* [B H][1 + P N] */
    /* ranks that send a carry (all but the last): the first pass */
    float *win;                   /* in_proj [Dp][Dm] */
    float *cwr, *cw, *cb;         /* conv weight [Dc][K], transposed [K][Dc], bias [Dc] */
    float *zx;                    /* [B L][Dc + H]: the xBC and dt rows of in_proj */
    float *act;                   /* [B L][Dc] post-conv xBC */
    float *xs, *bs, *cs, *dts, *ys;   /* the SSD scan's operands and output */
    float *par;                   /* [max small param count] (A_log, dt_bias, hashes) */
    int64_t npar;
};
typedef struct m2ws m2ws;

static void m2ws_free(m2ws *w)
{
    ssm_mamba2_state_destroy(w->tmp);
    free(w->xlast); free(w->ylast); free(w->conv0); free(w->ssm0); free(w->ctx);
    free(w->conv1); free(w->ssm1); free(w->hsend); free(w->hrecv);
    free(w->csend); free(w->crecv); free(w->win); free(w->cwr); free(w->cw); free(w->cb);
    free(w->zx); free(w->act); free(w->xs); free(w->bs); free(w->cs); free(w->dts); free(w->ys);
    free(w->par);
    memset(w, 0, sizeof *w);
}

/* Sizes fit (bytes of every buffer, the BLAS's ints). */
static int m2_sizes_ok(const m2dims *d, int64_t B, int64_t L)
{
    int64_t a;
    if (B < 1 || L < 0 || B > INT_MAX || L > INT_MAX)
        return 0;
    const int64_t rows[] = { d->dp * d->dm, B * L * (d->dm + d->h),
                             B * d->dc * (d->k + 1), B * d->h * (1 + d->p * d->n) };
    for (int i = 0; i < 4; i++)
        if (rows[i] < 0 || __builtin_mul_overflow(rows[i], 8, &a))
            return 0;
    return !__builtin_mul_overflow(B * L, d->dm, &a) && a <= INT64_MAX / 16 &&
           B * L <= INT_MAX;
}

/* carrier: this rank sends a carry computed from its block (every rank
 * but the last). */
static int m2ws_alloc(m2ws *w, const ssm_mamba2 *blk, const m2dims *d,
                      int64_t B, int64_t L, int carrier)
{
    memset(w, 0, sizeof *w);
    w->d = *d; w->B = B; w->L = L;
    const int64_t nc = B * d->dc * d->k, ns = B * d->h * d->p * d->n;
    const int64_t W = 1 + d->p * d->n;
    /* The largest small parameter (conv weight [Dc][K], or D / the norm
     * weight [Di]), and room for A and dt_bias [H] side by side. */
    w->npar = (d->dc * d->k > d->di ? d->dc * d->k : d->di) + 2 * d->h;
    int ok = ssm_mamba2_state_create(&w->tmp, blk, B) == SSM_OK;
    w->xlast = ssmi_mpi_alloc((size_t)(B * d->k * d->dm), sizeof(float));
    w->ylast = ssmi_mpi_alloc((size_t)(B * d->k * d->dm), sizeof(float));
    w->conv0 = ssmi_mpi_alloc((size_t)nc, sizeof(float));
    w->ssm0 = ssmi_mpi_alloc((size_t)ns, sizeof(float));
    w->ctx = ssmi_mpi_alloc((size_t)nc, sizeof(float));
    w->conv1 = ssmi_mpi_alloc((size_t)nc, sizeof(float));
    w->ssm1 = ssmi_mpi_alloc((size_t)ns, sizeof(float));
    w->hsend = ssmi_mpi_alloc((size_t)(B * d->dc * (1 + d->k)), sizeof(float));
    w->hrecv = ssmi_mpi_alloc((size_t)(B * d->dc * (1 + d->k)), sizeof(float));
    w->csend = ssmi_mpi_alloc((size_t)(B * d->h * W), sizeof(float));
    w->crecv = ssmi_mpi_alloc((size_t)(B * d->h * W), sizeof(float));
    w->par = ssmi_mpi_alloc((size_t)w->npar, sizeof(float));
    ok = ok && w->xlast && w->ylast && w->conv0 && w->ssm0 && w->ctx && w->conv1 &&
         w->ssm1 && w->hsend && w->hrecv && w->csend && w->crecv && w->par;
    if (ok && carrier && L > 0) {
        const int64_t T = B * L, gn = d->g * d->n;
        w->win = ssmi_mpi_alloc((size_t)(d->dp * d->dm), sizeof(float));
        w->cw = ssmi_mpi_alloc((size_t)(d->dc * d->k), sizeof(float));
        w->cwr = ssmi_mpi_alloc((size_t)(d->dc * d->k), sizeof(float));
        w->cb = ssmi_mpi_alloc((size_t)d->dc, sizeof(float));
        w->zx = ssmi_mpi_alloc((size_t)(T * (d->dc + d->h)), sizeof(float));
        w->act = ssmi_mpi_alloc((size_t)(T * d->dc), sizeof(float));
        w->xs = ssmi_mpi_alloc((size_t)(T * d->di), sizeof(float));
        w->ys = ssmi_mpi_alloc((size_t)(T * d->di), sizeof(float));
        w->bs = ssmi_mpi_alloc((size_t)(T * gn), sizeof(float));
        w->cs = ssmi_mpi_alloc((size_t)(T * gn), sizeof(float));
        w->dts = ssmi_mpi_alloc((size_t)(T * d->h), sizeof(float));
        ok = w->win && w->cw && w->cwr && w->cb && w->zx && w->act && w->xs && w->ys && w->bs &&
             w->cs && w->dts;
    }
    if (!ok)
        m2ws_free(w);
    return ok;
}

/* Mamba-2's dt as the SSD scan computes it (block: softplus on). */
static inline float dt_proc(float v, float bias, float lo, float hi)
{
    v = v + bias;
    if (v <= 20.0f)
        v = log1pf(expf(v));
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

/* One token of the carry pass's conv: o[c] = silu(bias + sum_j w[j][c]
 * in_j[c]) over the Dc channels, taps in order, then split into x, B, C.
 * rows[j]: token t-(K-1)+j's xBC inputs, or NULL to read the context
 * column ctx[c][K + t-(K-1)+j].  Written over c innermost (vectorized; an
 * AVX2+FMA instantiation is chosen at run time: fmaf is a library call on
 * baseline x86-64), branch-free silu (mpi_exp.h). */
static inline __attribute__((always_inline)) void
conv_token(int64_t dc, int64_t K, const float *cwT, const float *cb,
           const float *const *rows, const float *ctx, int64_t tctx, float *o)
{
    for (int64_t c = 0; c < dc; c++)
        o[c] = cb[c];
    for (int64_t j = 0; j < K; j++) {
        const float *wj = cwT + j * dc, *in = rows[j];
        if (in) {
            for (int64_t c = 0; c < dc; c++) {
                const float pr = wj[c] * in[c];
                o[c] = o[c] + pr;
            }
        } else {
            const int64_t col = K + tctx - (K - 1) + j;
            for (int64_t c = 0; c < dc; c++) {
                const float pr = wj[c] * ctx[c * K + col];
                o[c] = o[c] + pr;
            }
        }
    }
    for (int64_t c = 0; c < dc; c++)
        o[c] = o[c] / (1.0f + mexpf(-o[c]));
}

__attribute__((target("avx2,fma")))
static void conv_token_avx2(int64_t dc, int64_t K, const float *cwT, const float *cb,
                            const float *const *rows, const float *ctx, int64_t tctx,
                            float *o)
{
    conv_token(dc, K, cwT, cb, rows, ctx, tctx, o);
}

static void conv_token_generic(int64_t dc, int64_t K, const float *cwT, const float *cb,
                               const float *const *rows, const float *ctx, int64_t tctx,
                               float *o)
{
    conv_token(dc, K, cwT, cb, rows, ctx, tctx, o);
}

/* The carry of this rank's block, the first pass: the SSD scan of the
 * block from the state S0 (rank 0's, or NULL: zero) with the conv context
 * w->ctx, run from the block's parameters (in_proj's xBC and dt rows, the
 * conv, silu, the scan with dt_bias, softplus and the dt limit; no z, no
 * norm, no out_proj: about 0.6 of a block forward), leaving S_end in
 * w->ssm1 and P[b][h] = exp(A_h sum_t dt_t) in csend's decay slots.  The
 * silu here uses libm's expf where the block uses libssm's vector exp: the
 * carry agrees with the block's own end state to rounding, and every
 * rank's outputs then come from the block itself (the second pass). */
static ssm_status m2_carry(const ssm_mamba2 *blk, m2ws *w, const float *x,
                           const float *S0)
{
    const m2dims *d = &w->d;
    const int64_t B = w->B, L = w->L, T = B * L, H = d->h, K = d->k, dc = d->dc,
                  di = d->di, gn = d->g * d->n, ld = dc + H, W = 1 + d->p * d->n;
    ssm_status e = ssm_mamba2_get_param(blk, SSM_MAMBA2_IN_PROJ, w->win, d->dp * d->dm);
    if (e == SSM_OK)
        e = ssm_mamba2_get_param(blk, SSM_MAMBA2_CONV_W, w->cwr, dc * K);
    if (e == SSM_OK)   /* taps [K][Dc]: the conv then runs over channels innermost */
        for (int64_t c = 0; c < dc; c++)
            for (int64_t j = 0; j < K; j++)
                w->cw[j * dc + c] = w->cwr[c * K + j];
    if (e == SSM_OK)
        e = ssm_mamba2_get_param(blk, SSM_MAMBA2_CONV_B, w->cb, dc);
    float *A = w->par, *bias = w->par + H;   /* npar >= 2H */
    if (e == SSM_OK)
        e = ssm_mamba2_get_param(blk, SSM_MAMBA2_A_LOG, A, H);
    if (e == SSM_OK)
        e = ssm_mamba2_get_param(blk, SSM_MAMBA2_DT_BIAS, bias, H);
    if (e != SSM_OK)
        return e;
    for (int64_t h = 0; h < H; h++)
        A[h] = -expf(A[h]);   /* as the block: A = -exp(A_log) */
    /* zx [T][Dc + H] = x Win[Di:Dp]^T: the xBC and dt rows (z is not needed). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)ld, (int)d->dm,
                1.0f, x, (int)d->dm, w->win + di * d->dm, (int)d->dm, 0.0f, w->zx,
                (int)ld);
    /* Causal depthwise conv over xBC with the context, bias, silu; split. */
    const int wide = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #pragma omp parallel for schedule(static) if (T * dc > 32768)
    for (int64_t r = 0; r < T; r++) {
        const int64_t b = r / L, t = r % L;
        const float *rows[64];
        for (int64_t j = 0; j < K; j++) {
            const int64_t tt = t - (K - 1) + j;
            rows[j] = tt >= 0 ? w->zx + (b * L + tt) * ld : NULL;
        }
        float *out = w->act + r * dc;
        if (wide)
            conv_token_avx2(dc, K, w->cw, w->cb, rows, w->ctx + b * dc * K, t, out);
        else
            conv_token_generic(dc, K, w->cw, w->cb, rows, w->ctx + b * dc * K, t, out);
        memcpy(w->xs + r * di, out, (size_t)di * sizeof(float));
        memcpy(w->bs + r * gn, out + di, (size_t)gn * sizeof(float));
        memcpy(w->cs + r * gn, out + di + gn, (size_t)gn * sizeof(float));
        for (int64_t h = 0; h < H; h++)
            w->dts[r * H + h] = w->zx[r * ld + dc + h];
    }
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = H; a.headdim = d->p; a.dstate = d->n;
    a.ngroups = d->g; a.x = w->xs; a.dt = w->dts; a.A = A; a.B = w->bs; a.C = w->cs;
    a.dt_bias = bias; a.dt_softplus = 1; a.dt_min = d->dt_min; a.dt_max = d->dt_max;
    a.h0 = S0; a.y = w->ys; a.h_last = w->ssm1;
    e = ssm_ssd_scan(&a);
    if (e != SSM_OK)
        return e;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            double sum = 0.0;
            for (int64_t t = 0; t < L; t++)
                sum += (double)dt_proc(w->dts[(b * L + t) * H + h], bias[h], d->dt_min,
                                       d->dt_max);
            w->csend[(b * H + h) * W] = (float)exp((double)A[h] * sum);
        }
    return SSM_OK;
}

/* One block over this rank's B x w->L tokens (x, y [B][L][Dm], y may
 * equal x): st0 rank 0's state before the sequence (NULL: zeros; read on
 * rank 0 only), stout (any rank, may be st0) receives the state after the
 * rank's block.  Every rank takes part in both exclusive scans whatever its
 * local status e; returns the local status, to be agreed. */
static ssm_status m2_block_core(const ssmi_mpi_ctx *c, const ssm_mamba2 *blk,
                                m2ws *w, const float *x, float *y,
                                ssm_mamba2_state *st0, ssm_mamba2_state *stout,
                                ssm_status e)
{
    const m2dims *d = &w->d;
    const int64_t B = w->B, L = e == SSM_OK ? w->L : 0, K = d->k, dc = d->dc,
                  E = 1 + K, PN = d->p * d->n, W = 1 + PN, BH = B * d->h;
    const int64_t nc = B * dc * K, ns = BH * PN;
    const int first = c->rank == 0, last = c->rank == c->size - 1;

    /* Rank 0's entering state. */
    if (first) {
        if (e == SSM_OK && st0)
            e = ssm_mamba2_state_get(st0, B, w->conv0, w->ssm0);
        if (e != SSM_OK || !st0) {
            memset(w->conv0, 0, (size_t)nc * sizeof(float));
            memset(w->ssm0, 0, (size_t)ns * sizeof(float));
        }
    }

    /* 1. The halo: the xBC inputs of the last Kc tokens, through the block
     * itself from a zero state (its conv state then holds them). */
    const int64_t Kc = L < K ? L : K;
    if (e == SSM_OK && Kc > 0) {
        for (int64_t b = 0; b < B; b++)
            memcpy(w->xlast + b * Kc * d->dm, x + (b * L + L - Kc) * d->dm,
                   (size_t)(Kc * d->dm) * sizeof(float));
        e = ssm_mamba2_state_reset(w->tmp);
        if (e == SSM_OK)
            e = ssm_mamba2_forward(blk, w->tmp, B, Kc, w->xlast, w->ylast);
        if (e == SSM_OK)
            e = ssm_mamba2_state_get(w->tmp, B, w->conv1, NULL);
    }
    for (int64_t i = 0; i < B * dc; i++) {
        float *el = w->hsend + i * E;
        memset(el, 0, (size_t)E * sizeof(float));
        if (e == SSM_OK && Kc > 0) {
            memcpy(el + 1 + K - Kc, w->conv1 + i * K + K - Kc, (size_t)Kc * sizeof(float));
            el[0] = (float)Kc;
        }
        if (first && st0 && e == SSM_OK) {
            float f[1 + 64];
            f[0] = (float)K;
            memcpy(f + 1, w->conv0 + i * K, (size_t)K * sizeof(float));
            ssmi_halo_combine(f, el, K);
        }
    }
    ssm_status xe = ssmi_mpi_exscan_halo(c, w->hsend, w->hrecv, B * dc, K);
    if (e == SSM_OK)
        e = xe;
    /* The context entering the block (zero left pad before the sequence). */
    if (first) {
        memcpy(w->ctx, w->conv0, (size_t)nc * sizeof(float));
    } else if (e == SSM_OK) {
        for (int64_t i = 0; i < B * dc; i++) {
            const float *el = w->hrecv + i * E;
            const int64_t cnt = (int64_t)el[0];
            float *cx = w->ctx + i * K;
            for (int64_t j = 0; j < K; j++)
                cx[j] = j < K - cnt ? 0.0f : el[1 + j];
        }
    }

    /* 2. The carries: every rank but the last runs the first pass over its
     * block (rank 0 from its own state); an empty block passes the state
     * through (rank 0: its initial state; others: the identity). */
    for (int64_t i = 0; i < BH; i++) {
        w->csend[i * W] = 1.0f;
        if (first)
            memcpy(w->csend + i * W + 1, w->ssm0 + i * PN, (size_t)PN * sizeof(float));
        else
            memset(w->csend + i * W + 1, 0, (size_t)PN * sizeof(float));
    }
    if (e == SSM_OK && !last && L > 0) {
        e = m2_carry(blk, w, x, first ? w->ssm0 : NULL);
        if (e == SSM_OK)
            for (int64_t i = 0; i < BH; i++)
                memcpy(w->csend + i * W + 1, w->ssm1 + i * PN, (size_t)PN * sizeof(float));
        else
            for (int64_t i = 0; i < BH; i++)
                w->csend[i * W] = 1.0f;
    }
    xe = ssmi_mpi_exscan_shared(c, w->csend, w->crecv, BH, PN);
    if (e == SSM_OK)
        e = xe;

    /* 3. Every rank, at once: the block from (context, entering state). */
    if (e == SSM_OK) {
        if (!first)
            for (int64_t i = 0; i < BH; i++)
                memcpy(w->ssm0 + i * PN, w->crecv + i * W + 1, (size_t)PN * sizeof(float));
        e = ssm_mamba2_state_set(w->tmp, B, w->ctx, w->ssm0);
        if (e == SSM_OK && L > 0)
            e = ssm_mamba2_forward(blk, w->tmp, B, L, x, y);
        if (e == SSM_OK)
            e = ssm_mamba2_state_get(w->tmp, B, w->conv1, w->ssm1);
    }
    if (e == SSM_OK && stout)
        e = ssm_mamba2_state_set(stout, B, w->conv1, w->ssm1);
    return e;
}

/* out = in / sqrt(mean(in^2) + 1e-5) * w per row: the Mamba-2 stack's
 * RMSNorm, the operations of src/layers/mamba2.c (sum in double, in order). */
static void rms_rows(int64_t rows, int64_t dm, const float *in, float *out,
                     const float *wt)
{
    #pragma omp parallel for schedule(static) if (rows * dm > 32768)
    for (int64_t i = 0; i < rows; i++) {
        const float *v = in + i * dm;
        float *o = out + i * dm;
        double ss = 0.0;
        for (int64_t j = 0; j < dm; j++)
            ss += (double)v[j] * v[j];
        const float sc = (float)(1.0 / sqrt(ss / (double)dm + 1e-5));
        for (int64_t j = 0; j < dm; j++)
            o[j] = (v[j] * sc) * wt[j];
    }
}

static ssm_mamba2 *m2_layer(const ssm_mamba2_stack *stk, int64_t l)
{
    ssm_mamba2 *b = NULL;
    if (ssm_mamba2_stack_block((ssm_mamba2_stack *)(uintptr_t)stk, l, &b) != SSM_OK)
        return NULL;
    return b;
}

static ssm_mamba2_state *m2_state_layer(ssm_mamba2_stack_state *st, int64_t l)
{
    ssm_mamba2_state *s = NULL;
    if (!st || ssm_mamba2_stack_state_layer(st, l, &s) != SSM_OK)
        return NULL;
    return s;
}

/* ---- the stack: preparation, agreement, run (shared with mpi_model.c) */

int ssmi_m2_stack_prepare(ssmi_m2_stack *s, const ssmi_mpi_ctx *c,
                          const ssm_mamba2_stack *stk, ssm_mamba2_stack_state *st,
                          int64_t batch, int64_t L, int *nomem)
{
    memset(s, 0, sizeof *s);
    *nomem = 0;
    s->stk = stk;
    s->B = batch;
    s->L = L;
    ssm_mamba2 *b0;
    if (!stk || ssm_mamba2_stack_layers(stk, &s->nl) != SSM_OK || s->nl < 1 ||
        !(b0 = m2_layer(stk, 0)))
        return 0;
    m2ws *w = ssmi_mpi_alloc(1, sizeof *w);
    if (!w) {
        *nomem = 1;
        return 1;
    }
    memset(w, 0, sizeof *w);
    s->ws = w;
    if (!m2dims_get(&w->d, b0) || !m2_sizes_ok(&w->d, batch, L))
        return 0;
    /* Every layer's state must be the stack state's (n_layers layers). */
    if (st) {
        ssm_mamba2_state *probe;
        if (ssm_mamba2_stack_state_layer(st, s->nl, &probe) == SSM_OK)
            return 0;
        for (int64_t l = 0; l < s->nl; l++)
            if (!m2_state_layer(st, l))
                return 0;
        for (int64_t l = 0; l < s->nl; l++)
            if (ssm_mamba2_state_check(m2_state_layer(st, l), m2_layer(stk, l), batch) != SSM_OK)
                return 0;
    }
    const int carrier = c->rank < c->size - 1;
    const m2dims d = w->d;
    int64_t nact = batch * L * d.dm;
    if (!m2ws_alloc(w, b0, &d, batch, L, carrier)) {
        *nomem = 1;
        return 1;
    }
    const int64_t na = nact > 0 ? nact : 1;
    s->norms = ssmi_mpi_alloc((size_t)((s->nl + 1) * d.dm), sizeof(float));
    s->h = ssmi_mpi_alloc((size_t)na, sizeof(float));
    s->normed = ssmi_mpi_alloc((size_t)na, sizeof(float));
    s->out = ssmi_mpi_alloc((size_t)na, sizeof(float));
    if (!s->norms || !s->h || !s->normed || !s->out) {
        *nomem = 1;
        return 1;
    }
    /* Hash of the small parameters and the norms; every block must have
     * the first one's configuration. */
    uint64_t h = SSMI_HASH0;
    for (int64_t l = 0; l <= s->nl; l++) {
        if (ssm_mamba2_stack_get_norm(stk, l, s->norms + l * d.dm, d.dm) != SSM_OK)
            return 0;
        if (l < s->nl) {
            m2dims dl;
            const ssm_mamba2 *bl = m2_layer(stk, l);
            if (!bl || !m2dims_get(&dl, bl) || memcmp(&dl, &d, sizeof d))
                return 0;
            h = m2_hash(h, bl, w->par, w->npar);
        }
    }
    s->hash = ssmi_hash(h, s->norms, (size_t)((s->nl + 1) * d.dm) * sizeof(float));
    return 1;
}

void ssmi_m2_stack_agree(ssmi_agree *g, const ssmi_m2_stack *s, int ok)
{
    const m2ws *w = s->ws;
    m2dims d;
    memset(&d, 0, sizeof d);
    if (ok && w)
        d = w->d;
    m2dims_agree(g, &d, ok && w);
    ssmi_agree_add(g, ok ? s->nl : 0);
    ssmi_agree_add(g, ok ? s->B : 0);
    ssmi_agree_add(g, ok ? ssmi_hash_q(s->hash) : 0);
}

void ssmi_m2_stack_free(ssmi_m2_stack *s)
{
    if (s->ws) {
        m2ws_free(s->ws);
        free(s->ws);
    }
    free(s->norms); free(s->h); free(s->normed); free(s->out);
    memset(s, 0, sizeof *s);
}

ssm_status ssmi_m2_stack_run(const ssmi_mpi_ctx *c, ssmi_m2_stack *s,
                             ssm_mamba2_stack_state *st0,
                             ssm_mamba2_stack_state *stout, const float *x,
                             float *y, ssm_status e)
{
    m2ws *w = s->ws;
    const int64_t dm = w->d.dm, rows = s->B * s->L, nact = rows * dm;
    if (e == SSM_OK && nact > 0)
        memcpy(s->h, x, (size_t)nact * sizeof(float));
    /* Pre-norm residual blocks: h += block(rmsnorm(h)); y = rmsnorm_f(h).
     * Every rank runs every layer's collectives, whatever its status. */
    for (int64_t l = 0; l < s->nl; l++) {
        if (e == SSM_OK && nact > 0)
            rms_rows(rows, dm, s->h, s->normed, s->norms + l * dm);
        e = m2_block_core(c, m2_layer(s->stk, l), w, s->normed, s->out,
                          c->rank == 0 ? m2_state_layer(st0, l) : NULL,
                          m2_state_layer(stout, l), e);
        if (e == SSM_OK)
            for (int64_t i = 0; i < nact; i++)
                s->h[i] += s->out[i];
    }
    if (e == SSM_OK && nact > 0)
        rms_rows(rows, dm, s->h, y, s->norms + s->nl * dm);
    return e;
}

/* ---- public ---- */

ssm_status ssm_mpi_mamba2_stack_forward(MPI_Comm comm, const ssm_mamba2_stack *stk,
                                        ssm_mamba2_stack_state *st, int64_t batch,
                                        int64_t L, const float *x, float *y)
{
    ssmi_mpi_ctx c;
    ssm_status e = ssmi_mpi_enter(&c, comm);
    if (e != SSM_OK)
        return e;
    ssmi_m2_stack s;
    int nomem = 0;
    int ok = batch >= 1 && L >= 0 && (L == 0 || (x && y));
    ok = ssmi_m2_stack_prepare(&s, &c, ok ? stk : NULL, st, batch, L, &nomem) && ok;
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    ssmi_m2_stack_agree(&g, &s, ok && !nomem);
    ssmi_agree_any(&g, ok && L > 0);
    e = ssmi_agree_run(&c, &g);
    if (e == SSM_OK) {
        e = ssmi_m2_stack_run(&c, &s, st, st, x, y, SSM_OK);
        e = ssmi_mpi_status_agree(&c, e);
    }
    ssmi_m2_stack_free(&s);
    ssmi_mpi_leave(&c);
    return e;
}

ssm_status ssm_mpi_mamba2_forward(MPI_Comm comm, const ssm_mamba2 *blk,
                                  ssm_mamba2_state *st, int64_t batch, int64_t L,
                                  const float *x, float *y)
{
    ssmi_mpi_ctx c;
    ssm_status e = ssmi_mpi_enter(&c, comm);
    if (e != SSM_OK)
        return e;
    m2ws w;
    memset(&w, 0, sizeof w);
    m2dims d;
    int ok = batch >= 1 && L >= 0 && (L == 0 || (x && y)) && m2dims_get(&d, blk) &&
             m2_sizes_ok(&d, batch, L) &&
             (!st || ssm_mamba2_state_check(st, blk, batch) == SSM_OK);
    int nomem = 0;
    uint64_t h = SSMI_HASH0;
    if (ok) {
        const int carrier = c.rank < c.size - 1;
        if (!m2ws_alloc(&w, blk, &d, batch, L, carrier))
            nomem = 1;
        else
            h = m2_hash(h, blk, w.par, w.npar);
    }
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    m2dims_agree(&g, &d, ok);
    ssmi_agree_add(&g, ok ? batch : 0);
    ssmi_agree_add(&g, ok && !nomem ? ssmi_hash_q(h) : 0);
    ssmi_agree_any(&g, ok && L > 0);
    e = ssmi_agree_run(&c, &g);
    if (e == SSM_OK) {
        e = m2_block_core(&c, blk, &w, x, y, st, st, SSM_OK);
        e = ssmi_mpi_status_agree(&c, e);
    }
    m2ws_free(&w);
    ssmi_mpi_leave(&c);
    return e;
}
