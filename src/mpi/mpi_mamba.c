/*
 * mpi_mamba.c -- sequence-parallel Mamba block and residual stack forward
 * (Gu and Dao 2023, section 3.4, figure 3) over MPI.
 *
 * Why the block's stages are re-implemented here: the public block API
 * (<ssm/mamba.h>) runs a whole block at once, but the MPI form must stop
 * between the stages: the causal conv needs the last d_conv - 1 pre-conv
 * inputs of the previous ranks (the halo), and the scan needs the state
 * entering the block, which comes from an exclusive scan over the ranks'
 * carries and must be applied as a fix-up of ys *before* out_proj (ys is
 * gated by silu(z) and projected).  So each call copies the block's
 * parameters out with ssm_mamba_get_param and runs the stages below, the
 * same operations in the same order as src/layers/mamba.c: in_proj (CBLAS,
 * channel-major), conv + bias + silu (bias, tap 0, tap 1, ... in order),
 * x_proj and dt_proj (CBLAS), the scan (ssm_selective_scan through the
 * MPI carry combination), out_proj (CBLAS).
 *
 * Per layer and rank, two exclusive scans: the conv halo (B Di (K + 1)
 * floats: the last K pre-conv inputs, so the conv state handed back is
 * exact) and the scan carries (2 B Di N floats).
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "mpi_internal.h"


/* The views of bp onto its own copies (an ssm_mamba's parameters). */
static void params_view_copies(blk_params *bp)
{
    bp->in_w = bp->p[SSM_MAMBA_IN_PROJ]; bp->in_b = NULL;
    bp->conv_w = bp->p[SSM_MAMBA_CONV_W]; bp->conv_b = bp->p[SSM_MAMBA_CONV_B];
    bp->x_w = bp->p[SSM_MAMBA_X_PROJ];
    bp->dt_w = bp->p[SSM_MAMBA_DT_PROJ_W]; bp->dt_b = bp->p[SSM_MAMBA_DT_PROJ_B];
    bp->Av = bp->A; bp->D = bp->p[SSM_MAMBA_D];
    bp->out_w = bp->p[SSM_MAMBA_OUT_PROJ]; bp->out_b = NULL;
}

static void params_free(blk_params *bp)
{
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
        free(bp->p[i]);
    free(bp->A);
    memset(bp, 0, sizeof *bp);
}

/* Buffers for a block of configuration cfg: 1 on success (bp zeroed
 * otherwise). */
static int params_alloc(blk_params *bp, const ssm_mamba *blk)
{
    memset(bp, 0, sizeof *bp);
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    if (ssm_mamba_get_config(blk, &cfg) != SSM_OK)
        return 0;
    bp->dm = cfg.d_model; bp->di = cfg.d_model * cfg.expand;
    bp->n = cfg.d_state; bp->k = cfg.d_conv; bp->r = cfg.dt_rank;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        int64_t cnt = 0;
        if (ssm_mamba_param_count(blk, (ssm_mamba_param)i, &cnt) != SSM_OK ||
            !(bp->p[i] = ssmi_mpi_alloc((size_t)cnt, sizeof(float)))) {
            params_free(bp);
            return 0;
        }
    }
    if (!(bp->A = ssmi_mpi_alloc((size_t)(bp->di * bp->n), sizeof(float)))) {
        params_free(bp);
        return 0;
    }
    return 1;
}

/* Copy blk's parameters into bp (same configuration as at alloc). */
static ssm_status params_load(blk_params *bp, const ssm_mamba *blk)
{
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        int64_t cnt = 0;
        ssm_status e = ssm_mamba_param_count(blk, (ssm_mamba_param)i, &cnt);
        if (e == SSM_OK)
            e = ssm_mamba_get_param(blk, (ssm_mamba_param)i, bp->p[i], cnt);
        if (e != SSM_OK)
            return e;
    }
    const float *al = bp->p[SSM_MAMBA_A_LOG];
    for (int64_t i = 0; i < bp->di * bp->n; i++)
        bp->A[i] = -expf(al[i]);
    params_view_copies(bp);
    return SSM_OK;
}

/* Configuration values and a hash of the small parameters (conv, dt bias,
 * A_log, D) the ranks must agree on; the same count whatever ok. */
static void params_agree(ssmi_agree *g, const blk_params *bp, int ok)
{
    uint64_t h = SSMI_HASH0;
    if (ok) {
        const int small[] = { SSM_MAMBA_CONV_W, SSM_MAMBA_CONV_B,
                              SSM_MAMBA_DT_PROJ_B, SSM_MAMBA_A_LOG, SSM_MAMBA_D };
        const int64_t cnt[] = { bp->di * bp->k, bp->di, bp->di, bp->di * bp->n, bp->di };
        for (int i = 0; i < 5; i++)
            h = ssmi_hash(h, bp->p[small[i]], (size_t)cnt[i] * sizeof(float));
    }
    ssmi_agree_add(g, ok ? bp->dm : 0);
    ssmi_agree_add(g, ok ? bp->di : 0);
    ssmi_agree_add(g, ok ? bp->n : 0);
    ssmi_agree_add(g, ok ? bp->k : 0);
    ssmi_agree_add(g, ok ? bp->r : 0);
    ssmi_agree_add(g, ssmi_hash_q(h));
}

void ssmi_blk_ws_free(blk_ws *w)
{
    free(w->xp); free(w->z); free(w->u); free(w->delta); free(w->ys);
    free(w->dtl); free(w->bt); free(w->ct); free(w->hsend); free(w->hrecv);
    free(w->conv); free(w->h);
    ssmi_sel_ws_free(&w->sel);
    memset(w, 0, sizeof *w);
}

/* Sizes valid for B x L tokens (L >= 0): every buffer's bytes fit, and
 * the BLAS's int dimensions hold. */
int ssmi_blk_ws_sizes_ok(const blk_params *bp, int64_t B, int64_t L)
{
    int64_t lp, a, b;
    if (B < 1 || L < 0 || B > INT_MAX || L > INT_MAX - bp->k ||
        __builtin_add_overflow(L, bp->k - 1, &lp))
        return 0;
    const int64_t rows[] = { bp->di, bp->r, bp->n, bp->dm };
    for (int i = 0; i < 4; i++)
        if (__builtin_mul_overflow(B, rows[i], &a) ||
            __builtin_mul_overflow(a, lp + 2, &b) || b > (INT64_MAX / 16))
            return 0;
    if (__builtin_mul_overflow(B * bp->di, bp->n + bp->k + 2, &b) || b > INT64_MAX / 16)
        return 0;
    return 1;
}

int ssmi_blk_ws_alloc(blk_ws *w, const blk_params *bp, int64_t B, int64_t L)
{
    memset(w, 0, sizeof *w);
    w->B = B; w->L = L;
    const int64_t di = bp->di, lp = L + bp->k - 1, Lm = L > 0 ? L : 1;
    w->xp = ssmi_mpi_alloc((size_t)(B * di * lp), sizeof(float));
    w->z = ssmi_mpi_alloc((size_t)(B * di * Lm), sizeof(float));
    w->u = ssmi_mpi_alloc((size_t)(B * di * Lm), sizeof(float));
    w->delta = ssmi_mpi_alloc((size_t)(B * di * Lm), sizeof(float));
    w->ys = ssmi_mpi_alloc((size_t)(B * di * Lm), sizeof(float));
    w->dtl = ssmi_mpi_alloc((size_t)(B * bp->r * Lm), sizeof(float));
    w->bt = ssmi_mpi_alloc((size_t)(B * bp->n * Lm), sizeof(float));
    w->ct = ssmi_mpi_alloc((size_t)(B * bp->n * Lm), sizeof(float));
    w->hsend = ssmi_mpi_alloc((size_t)(B * di * (1 + bp->k)), sizeof(float));
    w->hrecv = ssmi_mpi_alloc((size_t)(B * di * (1 + bp->k)), sizeof(float));
    w->conv = ssmi_mpi_alloc((size_t)(B * di * bp->k), sizeof(float));
    w->h = ssmi_mpi_alloc((size_t)(B * di * bp->n), sizeof(float));
    ssm_scan_args sa;
    memset(&sa, 0, sizeof sa);
    sa.batch = B; sa.dim = di; sa.dstate = bp->n; sa.len = L; sa.ngroups = 1;
    int ok = w->xp && w->z && w->u && w->delta && w->ys && w->dtl && w->bt &&
             w->ct && w->hsend && w->hrecv && w->conv && w->h &&
             ssmi_sel_ws_alloc(&w->sel, &sa);
    if (!ok)
        ssmi_blk_ws_free(w);
    return ok;
}

static inline float silu_f(float v)
{
    return v / (1.0f + expf(-v));
}

/* One block over this rank's B x w->L tokens.  conv_in [B][Di][K], h_in
 * [B][Di][N]: rank 0's state before the sequence, or NULL for zeros (read
 * on rank 0 only).  want_state: leave the state after the block in w->conv,
 * w->h.  Every rank runs both exclusive scans whatever its local status
 * (w->L = 0 computes nothing); returns the local status, to be agreed. */
ssm_status ssmi_blk_core(const ssmi_mpi_ctx *c, const blk_params *bp,
                        blk_ws *w, const float *x, float *y,
                        const float *conv_in, const float *h_in,
                        int want_state)
{
    const int64_t B = w->B, L = w->L, dm = bp->dm, di = bp->di, n = bp->n,
                  k = bp->k, r = bp->r, lp = L + k - 1, E = 1 + k;
    const float *win = bp->in_w, *wx = bp->x_w;
    ssm_status st = SSM_OK;

    /* in_proj, channel-major: xp_b[:, K-1:] = Win_x x_b^T, z_b = Win_z x_b^T */
    for (int64_t b = 0; L > 0 && b < B; b++) {
        const float *xb = x + b * L * dm;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)di, (int)L,
                    (int)dm, 1.0f, win, (int)dm, xb, (int)dm, 0.0f,
                    w->xp + b * di * lp + (k - 1), (int)lp);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)di, (int)L,
                    (int)dm, 1.0f, win + di * dm, (int)dm, xb, (int)dm, 0.0f,
                    w->z + b * di * L, (int)L);
        if (bp->in_b) {
            /* Language models' in_proj bias (after the product, as
             * src/models/run.c adds it). */
            float *xb2 = w->xp + b * di * lp + (k - 1), *zb = w->z + b * di * L;
            for (int64_t d = 0; d < di; d++)
                for (int64_t t = 0; t < L; t++) {
                    xb2[d * lp + t] += bp->in_b[d];
                    zb[d * L + t] += bp->in_b[di + d];
                }
        }
    }

    /* Halo element of row (b, d): the last min(L, K) pre-conv inputs,
     * right-aligned; rank 0 puts its initial conv state (K inputs) first. */
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * di; i++) {
        float *e = w->hsend + i * E;
        const int64_t cnt = L < k ? L : k;
        memset(e, 0, (size_t)E * sizeof(float));
        memcpy(e + 1 + k - cnt, w->xp + i * lp + lp - cnt, (size_t)cnt * sizeof(float));
        e[0] = (float)cnt;
        if (c->rank == 0 && conv_in) {
            float first[1 + 64];
            float *f = k <= 64 ? first : NULL;
            if (f) {
                f[0] = (float)k;
                memcpy(f + 1, conv_in + i * k, (size_t)k * sizeof(float));
                ssmi_halo_combine(f, e, k);
            }
        }
    }
    {
        ssm_status e = ssmi_mpi_exscan_halo(c, w->hsend, w->hrecv, B * di, k);
        if (st == SSM_OK)
            st = e;
    }
    if (st != SSM_OK)
        goto carry;

    /* The entering context: rank 0 its own initial state (or zeros), the
     * others what the exscan brought (zeros where the sequence starts). */
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * di; i++) {
        float ctx[1 + 64];
        float *row = w->xp + i * lp;
        if (c->rank == 0) {
            for (int64_t j = 0; j < k - 1; j++)
                row[j] = conv_in ? conv_in[i * k + j + 1] : 0.0f;
            continue;
        }
        const float *e = w->hrecv + i * E;
        memcpy(ctx, e, (size_t)E * sizeof(float));
        const int64_t cnt = (int64_t)ctx[0];
        for (int64_t j = 1; j < 1 + k - cnt; j++)
            ctx[j] = 0.0f;          /* before the sequence: zero left pad */
        memcpy(row, ctx + 2, (size_t)(k - 1) * sizeof(float));
        if (want_state && L < k) {
            /* The state after an empty or short block reaches back into
             * the context: keep all K context values for it. */
            float *cs = w->conv + i * k;
            memcpy(cs, ctx + 1 + L, (size_t)(k - L) * sizeof(float));
            memcpy(cs + k - L, row + k - 1, (size_t)L * sizeof(float));
        }
    }
    if (want_state && c->rank == 0 && L < k)
        for (int64_t i = 0; i < B * di; i++) {
            float *cs = w->conv + i * k;
            for (int64_t j = 0; j < k - L; j++)
                cs[j] = conv_in ? conv_in[i * k + L + j] : 0.0f;
            memcpy(cs + k - L, w->xp + i * lp + k - 1, (size_t)L * sizeof(float));
        }

    /* Causal depthwise conv + bias + silu, the block's order of sums. */
    if (L > 0) {
        const float *cw = bp->conv_w, *cb = bp->conv_b;
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < B * di; i++) {
            const int64_t d = i % di;
            const float *row = w->xp + i * lp;
            float *ub = w->u + i * L;
            for (int64_t t = 0; t < L; t++)
                ub[t] = cb ? cb[d] : 0.0f;
            for (int64_t j = 0; j < k; j++) {
                const float wj = cw[d * k + j];
                const float *src = row + j;
                for (int64_t t = 0; t < L; t++)
                    ub[t] += wj * src[t];
            }
            for (int64_t t = 0; t < L; t++)
                ub[t] = silu_f(ub[t]);
            if (want_state && L >= k)
                memcpy(w->conv + i * k, row + lp - k, (size_t)k * sizeof(float));
        }
        /* x_proj (dt | B | C rows) and dt_proj, channel-major. */
        for (int64_t b = 0; b < B; b++) {
            const float *ub = w->u + b * di * L;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)L,
                        (int)di, 1.0f, wx, (int)di, ub, (int)L, 0.0f,
                        w->dtl + b * r * L, (int)L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)L,
                        (int)di, 1.0f, wx + r * di, (int)di, ub, (int)L, 0.0f,
                        w->bt + b * n * L, (int)L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)L,
                        (int)di, 1.0f, wx + (r + n) * di, (int)di, ub, (int)L,
                        0.0f, w->ct + b * n * L, (int)L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)di, (int)L,
                        (int)r, 1.0f, bp->dt_w, (int)r,
                        w->dtl + b * r * L, (int)L, 0.0f, w->delta + b * di * L,
                        (int)L);
        }
    }

carry:;
    /* Selective scan with the carry combination (always: collective). */
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.dim = di; a.dstate = n; a.len = L; a.ngroups = 1;
    a.u = w->u; a.delta = w->delta; a.A = bp->Av; a.B = w->bt; a.C = w->ct;
    a.D = bp->D; a.z = w->z; a.delta_bias = bp->dt_b;
    a.delta_softplus = 1;
    a.h0 = h_in;
    a.y = w->ys;
    a.h_last = want_state ? w->h : NULL;
    if (st != SSM_OK) {
        /* Keep the collective with harmless data: an empty block. */
        a.len = 0;
        ssmi_mpi_selective_core(c, &a, &w->sel);
        return st;
    }
    st = ssmi_mpi_selective_core(c, &a, &w->sel);
    if (st != SSM_OK)
        return st;

    /* out_proj back to token-major: y_b [L][Dm] = ys_b^T Wout^T. */
    for (int64_t b = 0; L > 0 && b < B; b++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)L, (int)dm,
                    (int)di, 1.0f, w->ys + b * di * L, (int)L,
                    bp->out_w, (int)di, 0.0f, y + b * L * dm, (int)dm);
        if (bp->out_b)
            for (int64_t t = 0; t < L; t++)
                for (int64_t j = 0; j < dm; j++)
                    y[(b * L + t) * dm + j] += bp->out_b[j];
    }
    return SSM_OK;
}

/* st made for blk's shape, holding at least B sequences (so the copies
 * in and out move blk-sized buffers). */
static int state_ok(ssm_mamba_state *st, const ssm_mamba *blk, int64_t B)
{
    return !st || ssm_mamba_state_check(st, blk, B) == SSM_OK;
}

ssm_status ssm_mpi_mamba_forward(MPI_Comm comm, const ssm_mamba *blk,
                                 ssm_mamba_state *st, int64_t batch,
                                 int64_t L, const float *x, float *y)
{
    ssmi_mpi_ctx c;
    ssm_status e = ssmi_mpi_enter(&c, comm);
    if (e != SSM_OK)
        return e;
    blk_params bp;
    blk_ws w;
    memset(&bp, 0, sizeof bp);
    memset(&w, 0, sizeof w);
    int ok = blk && batch >= 1 && L >= 0 && (L == 0 || (x && y)) &&
             state_ok(st, blk, batch), nomem = 0;
    if (ok) {
        if (!params_alloc(&bp, blk))
            nomem = 1;
        else if (params_load(&bp, blk) != SSM_OK)
            ok = 0;
        else if (!ssmi_blk_ws_sizes_ok(&bp, batch, L) || bp.k > 64)
            ok = 0;
        else if (!ssmi_blk_ws_alloc(&w, &bp, batch, L))
            nomem = 1;
    }
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    params_agree(&g, &bp, ok && !nomem);
    ssmi_agree_add(&g, ok ? batch : 0);
    ssmi_agree_any(&g, ok && L > 0);
    e = ssmi_agree_run(&c, &g);
    if (e != SSM_OK)
        goto out;

    /* Rank 0 starts from st's state (copied out: w.conv, w.h receive the
     * state after the block). */
    float *cin = NULL, *hin = NULL;
    if (c.rank == 0 && st) {
        cin = ssmi_mpi_alloc((size_t)(batch * bp.di * bp.k), sizeof(float));
        hin = ssmi_mpi_alloc((size_t)(batch * bp.di * bp.n), sizeof(float));
        e = !cin || !hin ? SSMI_MPI_FAIL(SSM_ERR_NOMEM)
                         : ssm_mamba_state_get(st, batch, cin, hin);
    }
    if (e != SSM_OK)
        w.L = 0;   /* keep the collectives, compute nothing */
    /* y may equal x: in_proj reads x before out_proj writes y. */
    {
        ssm_status be = ssmi_blk_core(&c, &bp, &w, x, y, e == SSM_OK ? cin : NULL,
                                   e == SSM_OK ? hin : NULL, st != NULL);
        if (e == SSM_OK)
            e = be;
    }
    free(cin);
    free(hin);
    if (e == SSM_OK && st)
        e = ssm_mamba_state_set(st, batch, w.conv, w.h);
    e = ssmi_mpi_status_agree(&c, e);
out:
    ssmi_blk_ws_free(&w);
    params_free(&bp);
    ssmi_mpi_leave(&c);
    return e;
}

/* ------------------------------------------------------------- stack --- */

/* out[row] = in[row] / sqrt(mean(in[row]^2) + eps) * w: the stack's
 * RMSNorm (Zhang and Sennrich 2019), sum of squares in double, in order,
 * as src/layers/mamba.c. */
static void rmsnorm_rows(int64_t rows, int64_t dm, const float *in, float *out,
                         const float *w)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *v = in + i * dm;
        float *o = out + i * dm;
        double ss = 0.0;
        for (int64_t j = 0; j < dm; j++)
            ss += (double)v[j] * v[j];
        float sc = (float)(1.0 / sqrt(ss / (double)dm + (double)SSM_MAMBA_RMS_EPS));
        for (int64_t j = 0; j < dm; j++)
            o[j] = (v[j] * sc) * w[j];
    }
}

/* Layer l's block.  ssm_mamba_stack_block borrows through a non-const
 * stack; the block is only read here (ssm_mamba_get_param). */
static const ssm_mamba *stack_block(const ssm_mamba_stack *stk, int64_t l)
{
    ssm_mamba *b = NULL;
    if (ssm_mamba_stack_block((ssm_mamba_stack *)(uintptr_t)stk, l, &b) != SSM_OK)
        return NULL;
    return b;
}

/* The stack forward; nomem_in: this rank already failed to allocate (the
 * caller's own buffer), reported through the agreement so that every rank
 * returns one status (SSM_ERR_ARG if any rank's arguments are bad, else
 * SSM_ERR_NOMEM). */
static ssm_status stack_forward(MPI_Comm comm, const ssm_mamba_stack *stk,
                                ssm_mamba_state *const *states, int64_t batch,
                                int64_t L, const float *x, float *y, int nomem_in)
{
    ssmi_mpi_ctx c;
    ssm_status e = ssmi_mpi_enter(&c, comm);
    if (e != SSM_OK)
        return e;
    blk_params bp;
    blk_ws w;
    memset(&bp, 0, sizeof bp);
    memset(&w, 0, sizeof w);
    int64_t nl = 0, nact = 0;
    float *norms = NULL, *hbuf = NULL, *normed = NULL, *out = NULL;
    float *cin = NULL, *hin = NULL;
    int ok = stk && batch >= 1 && L >= 0 && (L == 0 || (x && y)) &&
             ssm_mamba_stack_layers(stk, &nl) == SSM_OK && nl >= 1 &&
             stack_block(stk, 0) != NULL, nomem = nomem_in;
    uint64_t hsh = SSMI_HASH0;
    for (int64_t l = 0; ok && states && l < nl; l++)
        ok = states[l] != NULL && state_ok(states[l], stack_block(stk, l), batch);
    if (ok && !nomem) {
        if (!params_alloc(&bp, stack_block(stk, 0)))
            nomem = 1;
        else if (!ssmi_blk_ws_sizes_ok(&bp, batch, L) || bp.k > 64 ||
                 __builtin_mul_overflow(batch * L, bp.dm, &nact))
            ok = 0;
    }
    if (ok && !nomem) {
        /* Every layer has the first one's configuration (a stack's blocks
         * share one config); hash their small parameters and the norms. */
        norms = ssmi_mpi_alloc((size_t)((nl + 1) * bp.dm), sizeof(float));
        if (!norms)
            nomem = 1;
        for (int64_t l = 0; !nomem && ok && l <= nl; l++) {
            if (ssm_mamba_stack_get_norm(stk, l, norms + l * bp.dm, bp.dm) != SSM_OK)
                ok = 0;
            if (l < nl) {
                const ssm_mamba *b = stack_block(stk, l);
                if (!b || params_load(&bp, b) != SSM_OK) {
                    ok = 0;
                    break;
                }
                hsh = ssmi_hash(hsh, bp.p[SSM_MAMBA_A_LOG],
                                (size_t)(bp.di * bp.n) * sizeof(float));
                hsh = ssmi_hash(hsh, bp.p[SSM_MAMBA_DT_PROJ_B],
                                (size_t)bp.di * sizeof(float));
            }
        }
        if (ok && !nomem)
            hsh = ssmi_hash(hsh, norms, (size_t)((nl + 1) * bp.dm) * sizeof(float));
    }
    if (ok && !nomem) {
        const int64_t nc = batch * bp.di * bp.k, nh = batch * bp.di * bp.n;
        const int64_t na = nact > 0 ? nact : 1;
        hbuf = ssmi_mpi_alloc((size_t)na, sizeof(float));
        normed = ssmi_mpi_alloc((size_t)na, sizeof(float));
        out = ssmi_mpi_alloc((size_t)na, sizeof(float));
        cin = ssmi_mpi_alloc((size_t)nc, sizeof(float));
        hin = ssmi_mpi_alloc((size_t)nh, sizeof(float));
        if (!hbuf || !normed || !out || !cin || !hin || !ssmi_blk_ws_alloc(&w, &bp, batch, L))
            nomem = 1;
    }
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    params_agree(&g, &bp, ok && !nomem);
    ssmi_agree_add(&g, ok ? batch : 0);
    ssmi_agree_add(&g, ok ? nl : 0);
    ssmi_agree_add(&g, ok && !nomem ? ssmi_hash_q(hsh) : 0);
    ssmi_agree_any(&g, ok && L > 0);
    e = ssmi_agree_run(&c, &g);
    if (e != SSM_OK)
        goto out;

    if (L > 0)
        memcpy(hbuf, x, (size_t)nact * sizeof(float));
    /* Pre-norm residual blocks (Mamba's backbone): h += block(norm(h)).
     * Every rank runs every layer's collectives, whatever its status. */
    for (int64_t l = 0; l < nl; l++) {
        ssm_status le = e;
        if (le == SSM_OK)
            le = params_load(&bp, stack_block(stk, l));
        const float *ci = NULL, *hi = NULL;
        if (le == SSM_OK && c.rank == 0 && states) {
            le = ssm_mamba_state_get(states[l], batch, cin, hin);
            ci = cin;
            hi = hin;
        }
        if (le == SSM_OK && L > 0)
            rmsnorm_rows(batch * L, bp.dm, hbuf, normed, norms + l * bp.dm);
        if (le != SSM_OK)
            w.L = 0;   /* keep the collectives, compute nothing */
        ssm_status be = ssmi_blk_core(&c, &bp, &w, normed, out, ci, hi, states != NULL);
        if (le == SSM_OK)
            le = be;
        if (le == SSM_OK && states)
            le = ssm_mamba_state_set(states[l], batch, w.conv, w.h);
        if (le == SSM_OK && L > 0)
            for (int64_t i = 0; i < nact; i++)
                hbuf[i] += out[i];
        e = le;
    }
    if (e == SSM_OK && L > 0)
        rmsnorm_rows(batch * L, bp.dm, hbuf, y, norms + nl * bp.dm);
    e = ssmi_mpi_status_agree(&c, e);
out:
    free(norms); free(hbuf); free(normed); free(out); free(cin); free(hin);
    ssmi_blk_ws_free(&w);
    params_free(&bp);
    ssmi_mpi_leave(&c);
    return e;
}

ssm_status ssm_mpi_mamba_stack_forward(MPI_Comm comm,
                                       const ssm_mamba_stack *stk,
                                       ssm_mamba_state *const *states,
                                       int64_t batch, int64_t L,
                                       const float *x, float *y)
{
    return stack_forward(comm, stk, states, batch, L, x, y, 0);
}

ssm_status ssm_mpi_mamba_stack_forward_state(MPI_Comm comm,
                                             const ssm_mamba_stack *stk,
                                             ssm_mamba_stack_state *st,
                                             int64_t batch, int64_t L,
                                             const float *x, float *y)
{
    if (!st)
        return stack_forward(comm, stk, NULL, batch, L, x, y, 0);
    /* The stack state's layers, borrowed; a NULL entry (st not made for
     * stk: too few layers, or too many) makes the forward below fail with
     * SSM_ERR_ARG on every rank, after its agreement collective. */
    int64_t nl = 0;
    ssm_mamba_state *probe;
    if (!stk || ssm_mamba_stack_layers(stk, &nl) != SSM_OK || nl < 1)
        return stack_forward(comm, stk, NULL, batch, L, x, y, 0);
    ssm_mamba_state **states = ssmi_mpi_alloc((size_t)nl, sizeof *states);
    int bad = !states || ssm_mamba_stack_state_layer(st, nl, &probe) == SSM_OK;
    for (int64_t l = 0; states && l < nl; l++)
        if (ssm_mamba_stack_state_layer(st, l, &states[l]) != SSM_OK)
            bad = 1;
    if (bad && states)
        states[0] = NULL;
    /* An allocation failure here takes part in the agreement as such:
     * one status on every rank (before: this rank reported SSM_ERR_NOMEM
     * while another rank's bad argument made the others SSM_ERR_ARG). */
    ssm_status e = stack_forward(comm, stk, (ssm_mamba_state *const *)states,
                                 batch, L, x, y, states == NULL);
    free(states);
    return e;
}

ssm_status ssm_mpi_mamba_stack_step(const ssm_mamba_stack *stk,
                                    ssm_mamba_state *const *states,
                                    int64_t batch, const float *x, float *y)
{
    int64_t nl = 0, nact;
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    if (!stk || !states || !x || !y || batch < 1 ||
        ssm_mamba_stack_layers(stk, &nl) != SSM_OK || nl < 1 ||
        !stack_block(stk, 0) || ssm_mamba_get_config(stack_block(stk, 0), &cfg) != SSM_OK ||
        __builtin_mul_overflow(batch, cfg.d_model, &nact))
        return SSMI_MPI_FAIL(SSM_ERR_ARG);
    for (int64_t l = 0; l < nl; l++)
        if (!states[l])
            return SSMI_MPI_FAIL(SSM_ERR_ARG);
    const int64_t dm = cfg.d_model;
    float *ws = ssmi_mpi_alloc((size_t)(2 * nact + dm), sizeof(float));
    if (!ws)
        return SSMI_MPI_FAIL(SSM_ERR_NOMEM);
    float *normed = ws, *out = ws + nact, *nw = ws + 2 * nact;
    ssm_status e = SSM_OK;
    if (y != x)
        memmove(y, x, (size_t)nact * sizeof(float));
    for (int64_t l = 0; l < nl && e == SSM_OK; l++) {
        e = ssm_mamba_stack_get_norm(stk, l, nw, dm);
        if (e != SSM_OK)
            break;
        rmsnorm_rows(batch, dm, y, normed, nw);
        e = ssm_mamba_step(stack_block(stk, l), states[l], batch, normed, out);
        if (e == SSM_OK)
            for (int64_t i = 0; i < nact; i++)
                y[i] += out[i];
    }
    if (e == SSM_OK)
        e = ssm_mamba_stack_get_norm(stk, nl, nw, dm);
    if (e == SSM_OK)
        rmsnorm_rows(batch, dm, y, y, nw);
    free(ws);
    return e;
}
