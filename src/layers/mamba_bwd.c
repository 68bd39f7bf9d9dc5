/*
 * mamba_bwd.c -- backward passes of the Mamba block (Gu and Dao 2023,
 * section 3.4, figure 3) and of the pre-norm residual stack, with the
 * deterministic forwards a training loop computes its loss with.  API and
 * shapes: include/ssm/train.h, include/ssm/mamba.h.
 *
 * Block forward, per batch b, channel-major as the scan wants it:
 *   xi = Win_x x^T, z = Win_z x^T                  [Di][L]
 *   c  = conv_b + causal depthwise conv(xi)        [Di][L]   u = silu(c)
 *   dtl = Wx_dt u, Bt = Wx_B u, Ct = Wx_C u        [R|N|N][L]
 *   delta = Wdt dtl                                [Di][L]
 *   ys = scan(u, delta, A, Bt, Ct, D, z, dt_bias, softplus)   (Mamba, alg. 2)
 *   y  = ys^T Wout^T                               [L][Dm]
 * Backward, the same chain in reverse (every product a GEMM):
 *   dWout = dy^T ys^T,  dys = Wout^T dy^T
 *   scan backward: du, ddelta, dA, dBt, dCt, dD, dz, ddt_bias
 *   dA_log = dA * A (A = -exp(A_log))
 *   ddtl = Wdt^T ddelta,  dWdt = ddelta dtl^T
 *   dWx = [ddtl; dBt; dCt] u^T,  du += Wx^T [ddtl; dBt; dCt]
 *   dc = du * silu'(c),  silu'(c) = s (1 + c (1 - s)), s = sigmoid(c)
 *   conv backward: dxi, dconv_w, dconv_b
 *   dWin = [dxi; dz] x,  dx = dxi^T Win_x + dz^T Win_z
 *
 * Determinism: libssm's own loops have one writer per output and fixed
 * orders; the GEMMs are tiled by shape (gemm_det below), each tile one BLAS
 * call from inside our OpenMP loop, so no BLAS threading decides a bit.
 *
 * The block's parameters are read through the public ssm_mamba_get_param
 * (one copy per call, O(parameters), negligible against the O(B L Di Dm)
 * products), so this file needs nothing of mamba.c's internals.
 */
#include <limits.h>
#include <string.h>
#include <cblas.h>

#include "layers/layers_internal.h"

/* ------------------------------------------------------------------ */
/* deterministic tiled GEMM                                           */

/* Output tile of one BLAS call.  256 x 256 keeps each call large enough
 * for OpenBLAS's packed kernels (K is Dm, Di or L) while giving a 2-core
 * machine several tiles per product at Mamba sizes. */
#define TILE 256

/* C_b[M][N] = op(A_b) op(B_b) + beta C_b, row-major, for b < nb, with
 * batch strides sa, sb, sc (floats).  sc == 0: every batch adds into the
 * same C (weight gradients): batch 0 with beta, the others with beta 1, in
 * batch order inside each tile.  The tiles (TILE x TILE of C, and the batch
 * when sc != 0) are fixed by the shapes; each is one BLAS call made inside
 * an active OpenMP region (an OpenMP BLAS then computes it on the calling
 * thread) or, with one OpenMP thread, alone (the BLAS then has one thread
 * too).  So every output element comes out of the same call on the same
 * operands for any thread count: the same bytes. */
static void gemm_det(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M,
                     int64_t N, int64_t K, const float *A, int64_t lda,
                     int64_t sa, const float *Bm, int64_t ldb, int64_t sb,
                     float beta, float *C, int64_t ldc, int64_t sc, int64_t nb)
{
    const int64_t mt = (M + TILE - 1) / TILE, nt = (N + TILE - 1) / TILE;
    const int64_t nbt = sc ? nb : 1;
    const int64_t ntiles = nbt * mt * nt;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t bb = t / (mt * nt), rem = t % (mt * nt);
        const int64_t i0 = (rem / nt) * TILE, j0 = (rem % nt) * TILE;
        const int64_t mm = M - i0 < TILE ? M - i0 : TILE;
        const int64_t nn = N - j0 < TILE ? N - j0 : TILE;
        const int64_t b0 = sc ? bb : 0, b1 = sc ? bb + 1 : nb;
        for (int64_t b = b0; b < b1; b++) {
            const float *a = A + b * sa + (ta == CblasNoTrans ? i0 * lda : i0);
            const float *bp = Bm + b * sb + (tb == CblasNoTrans ? j0 : j0 * ldb);
            float *c = C + b * sc + i0 * ldc + j0;
            const float be = (sc || b == 0) ? beta : 1.0f;
            cblas_sgemm(CblasRowMajor, ta, tb, (int)mm, (int)nn, (int)K, 1.0f,
                        a, (int)lda, bp, (int)ldb, be, c, (int)ldc);
        }
    }
}

/* ------------------------------------------------------------------ */
/* parameters and workspace                                           */

typedef struct blk_dims {
    int64_t dm, di, n, k, r;
} blk_dims;

/* The block's parameters copied out (ssm_mamba_get_param), plus A. */
typedef struct blk_params {
    blk_dims d;
    int64_t cnt[SSM_MAMBA_NPARAMS];
    float *p[SSM_MAMBA_NPARAMS];
    float *A;           /* [Di][N] = -exp(A_log), as mamba.c computes it */
    float *mem;
} blk_params;

static ssm_status params_load(const ssm_mamba *blk, blk_params *bp)
{
    memset(bp, 0, sizeof *bp);
    ssm_mamba_config c;
    SSM_TRY(ssm_mamba_get_config(blk, &c));
    bp->d.dm = c.d_model; bp->d.di = c.expand * c.d_model; bp->d.n = c.d_state;
    bp->d.k = c.d_conv; bp->d.r = c.dt_rank;
    int64_t tot = bp->d.di * bp->d.n;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        SSM_TRY(ssm_mamba_param_count(blk, (ssm_mamba_param)i, &bp->cnt[i]));
        tot += bp->cnt[i];
    }
    bp->mem = ssmi_alloc((size_t)tot, sizeof(float));
    if (!bp->mem)
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *w = bp->mem;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        bp->p[i] = w;
        SSM_TRY(ssm_mamba_get_param(blk, (ssm_mamba_param)i, w, bp->cnt[i]));
        w += bp->cnt[i];
    }
    bp->A = w;
    const float *al = bp->p[SSM_MAMBA_A_LOG];
    for (int64_t i = 0; i < bp->d.di * bp->d.n; i++)
        bp->A[i] = -expf(al[i]);
    return SSM_OK;
}

static void params_free(blk_params *bp)
{
    ssmi_free(bp->mem);
    bp->mem = NULL;
}

/* Activations of one block forward (channel-major [B][rows][L]) and, for
 * the backward, the gradients flowing through them. */
typedef struct blk_ws {
    int64_t B, L;
    float *xi, *z, *c, *u, *delta, *ys;   /* [B][Di][L] */
    float *dtl;                           /* [B][R][L] */
    float *bt, *ct;                       /* [B][N][L] */
    /* backward only */
    float *du, *ddelta, *dz;              /* [B][Di][L] */
    float *ddtl, *dbt, *dct;              /* [B][R|N|N][L] */
    float *dA;                            /* [Di][N] */
} blk_ws;

/* Floats of the workspace: forward 5 Di + R + 2N per token, backward 4 Di
 * + R + 2N more (c kept apart from u; du, ddelta, dz; the d of x_proj's
 * rows) and Di*N; -1 on overflow or a BLAS int overflow. */
static int64_t ws_count(const blk_dims *d, int64_t B, int64_t L, int bwd)
{
    int64_t lp, per, tot, tok;
    if (B < 1 || L < 1 || B > INT_MAX || L > INT_MAX ||
        __builtin_add_overflow(L, d->k - 1, &lp) || lp > INT_MAX)
        return -1;
    per = (bwd ? 9 : 5) * d->di + (bwd ? 2 : 1) * (d->r + 2 * d->n);
    if (!ssmi_sizes_ok(&tok, sizeof(float), 2, B, L) ||
        !ssmi_sizes_ok(&tot, sizeof(float), 2, tok, per) ||
        (bwd && __builtin_add_overflow(tot, d->di * d->n, &tot)) ||
        !ssmi_sizes_ok(&tot, sizeof(float), 1, tot))
        return -1;
    return tot;
}

static blk_ws ws_carve(const blk_dims *d, int64_t B, int64_t L, float *w, int bwd)
{
    blk_ws s;
    memset(&s, 0, sizeof s);
    const int64_t a = B * d->di * L, r = B * d->r * L, n = B * d->n * L;
    s.B = B; s.L = L;
    s.xi = w; w += a;
    s.z = w; w += a;
    /* Forward only: the conv output is turned into u in place. */
    s.c = w;
    if (bwd)
        w += a;
    s.u = w; w += a;
    s.delta = w; w += a;
    s.ys = w; w += a;
    s.dtl = w; w += r;
    s.bt = w; w += n;
    s.ct = w; w += n;
    if (bwd) {
        s.du = w; w += a;
        s.ddelta = w; w += a;
        s.dz = w; w += a;
        s.ddtl = w; w += r;
        s.dbt = w; w += n;
        s.dct = w; w += n;
        s.dA = w;
    }
    return s;
}

/* silu(v) = v sigmoid(v), as mamba.c. */
static inline float silu_f(float v)
{
    return v / (1.0f + expf(-v));
}

static void scan_args_fill(const blk_params *bp, const blk_ws *w, ssm_scan_args *a)
{
    memset(a, 0, sizeof *a);
    a->batch = w->B; a->dim = bp->d.di; a->dstate = bp->d.n; a->len = w->L;
    a->ngroups = 1;
    a->u = w->u; a->delta = w->delta; a->A = bp->A; a->B = w->bt; a->C = w->ct;
    a->D = bp->p[SSM_MAMBA_D]; a->z = w->z;
    a->delta_bias = bp->p[SSM_MAMBA_DT_PROJ_B];
    a->delta_softplus = 1;
    a->y = w->ys;
}

/* The block forward from zero state up to the scan output ys (Mamba,
 * figure 3), keeping every activation the backward needs. */
static ssm_status blk_forward_acts(const blk_params *bp, const blk_ws *w,
                                   const float *x)
{
    const int64_t dm = bp->d.dm, di = bp->d.di, n = bp->d.n, k = bp->d.k,
                  r = bp->d.r, B = w->B, L = w->L;
    const float *win = bp->p[SSM_MAMBA_IN_PROJ], *wx = bp->p[SSM_MAMBA_X_PROJ];
    /* in_proj: xi_b = Win_x x_b^T, z_b = Win_z x_b^T. */
    gemm_det(CblasNoTrans, CblasTrans, di, L, dm, win, dm, 0, x, dm, L * dm,
             0.0f, w->xi, L, di * L, B);
    gemm_det(CblasNoTrans, CblasTrans, di, L, dm, win + di * dm, dm, 0, x, dm,
             L * dm, 0.0f, w->z, L, di * L, B);
    /* Causal depthwise conv with zero left padding, bias first then taps
     * 0..K-1 (mamba.c's order), then silu. */
    const float *cw = bp->p[SSM_MAMBA_CONV_W], *cb = bp->p[SSM_MAMBA_CONV_B];
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * di; i++) {
        const int64_t d = i % di;
        const float *restrict xr = w->xi + i * L;
        float *cr = w->c + i * L, *ur = w->u + i * L;   /* equal in a forward */
        /* Tap-outer, time-inner (the inner loops vectorize); tap j reaches
         * back k-1-j steps, the zero padding is skipped. */
        for (int64_t t = 0; t < L; t++)
            cr[t] = cb[d];
        for (int64_t j = 0; j < k; j++) {
            const float wj = cw[d * k + j];
            const int64_t lag = k - 1 - j;
            for (int64_t t = lag; t < L; t++)
                cr[t] += wj * xr[t - lag];
        }
        for (int64_t t = 0; t < L; t++)
            ur[t] = silu_f(cr[t]);
    }
    /* x_proj (dt | B | C rows) and dt_proj (Mamba, algorithm 2). */
    gemm_det(CblasNoTrans, CblasNoTrans, r, L, di, wx, di, 0, w->u, L, di * L,
             0.0f, w->dtl, L, r * L, B);
    gemm_det(CblasNoTrans, CblasNoTrans, n, L, di, wx + r * di, di, 0, w->u, L,
             di * L, 0.0f, w->bt, L, n * L, B);
    gemm_det(CblasNoTrans, CblasNoTrans, n, L, di, wx + (r + n) * di, di, 0,
             w->u, L, di * L, 0.0f, w->ct, L, n * L, B);
    gemm_det(CblasNoTrans, CblasNoTrans, di, L, r, bp->p[SSM_MAMBA_DT_PROJ_W],
             r, 0, w->dtl, L, r * L, 0.0f, w->delta, L, di * L, B);
    ssm_scan_args a;
    scan_args_fill(bp, w, &a);
    return ssm_selective_scan(&a);
}

/* y_b [L][Dm] = ys_b^T Wout^T. */
static void blk_out_proj(const blk_params *bp, const blk_ws *w, float *y)
{
    const int64_t dm = bp->d.dm, di = bp->d.di, L = w->L;
    gemm_det(CblasTrans, CblasTrans, L, dm, di, w->ys, L, di * L,
             bp->p[SSM_MAMBA_OUT_PROJ], di, 0, 0.0f, y, dm, L * dm, w->B);
}

/* The backward proper, on a workspace whose forward part is filled. */
static ssm_status blk_backward_ws(const blk_params *bp, const blk_ws *w,
                                  const float *x, const float *dy, float *dx,
                                  float *const *dp)
{
    const int64_t dm = bp->d.dm, di = bp->d.di, n = bp->d.n, k = bp->d.k,
                  r = bp->d.r, B = w->B, L = w->L;
    const float *win = bp->p[SSM_MAMBA_IN_PROJ], *wx = bp->p[SSM_MAMBA_X_PROJ];
    float *g[SSM_MAMBA_NPARAMS];
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
        g[i] = dp ? dp[i] : NULL;

    /* out_proj: dWout [Dm][Di] = sum_b dy_b^T ys_b^T, then dys over ys. */
    if (g[SSM_MAMBA_OUT_PROJ])
        gemm_det(CblasTrans, CblasTrans, dm, di, L, dy, dm, L * dm, w->ys, L,
                 di * L, 0.0f, g[SSM_MAMBA_OUT_PROJ], di, 0, B);
    float *dys = w->ys;
    gemm_det(CblasTrans, CblasTrans, di, L, dm, bp->p[SSM_MAMBA_OUT_PROJ], di, 0,
             dy, dm, L * dm, 0.0f, dys, L, di * L, B);

    /* The scan with its gate silu(z) (Mamba, algorithm 2), reversed. */
    ssm_scan_args a;
    scan_args_fill(bp, w, &a);
    a.y = NULL;
    ssm_scan_grads sg;
    memset(&sg, 0, sizeof sg);
    sg.du = w->du; sg.ddelta = w->ddelta; sg.dB = w->dbt; sg.dC = w->dct;
    sg.dz = w->dz;
    sg.dA = g[SSM_MAMBA_A_LOG] ? w->dA : NULL;
    sg.dD = g[SSM_MAMBA_D];
    sg.ddelta_bias = g[SSM_MAMBA_DT_PROJ_B];
    SSM_TRY(ssm_selective_scan_backward(&a, dys, NULL, &sg));
    if (g[SSM_MAMBA_A_LOG]) {
        /* A = -exp(A_log): dA_log = dA * dA/dA_log = dA * A. */
        float *o = g[SSM_MAMBA_A_LOG];
        for (int64_t i = 0; i < di * n; i++)
            o[i] = w->dA[i] * bp->A[i];
    }

    /* dt_proj: ddtl_b = Wdt^T ddelta_b, dWdt = sum_b ddelta_b dtl_b^T. */
    if (g[SSM_MAMBA_DT_PROJ_W])
        gemm_det(CblasNoTrans, CblasTrans, di, r, L, w->ddelta, L, di * L,
                 w->dtl, L, r * L, 0.0f, g[SSM_MAMBA_DT_PROJ_W], r, 0, B);
    gemm_det(CblasTrans, CblasNoTrans, r, L, di, bp->p[SSM_MAMBA_DT_PROJ_W], r,
             0, w->ddelta, L, di * L, 0.0f, w->ddtl, L, r * L, B);

    /* x_proj: dWx rows dt | B | C = sum_b d(rows)_b u_b^T, and
     * du_b += Wx_rows^T d(rows)_b (after the scan's own du). */
    const float *drows[3] = { w->ddtl, w->dbt, w->dct };
    const int64_t nrows[3] = { r, n, n }, off[3] = { 0, r, r + n };
    for (int q = 0; q < 3; q++) {
        if (g[SSM_MAMBA_X_PROJ])
            gemm_det(CblasNoTrans, CblasTrans, nrows[q], di, L, drows[q], L,
                     nrows[q] * L, w->u, L, di * L, 0.0f,
                     g[SSM_MAMBA_X_PROJ] + off[q] * di, di, 0, B);
        gemm_det(CblasTrans, CblasNoTrans, di, L, nrows[q], wx + off[q] * di, di,
                 0, drows[q], L, nrows[q] * L, 1.0f, w->du, L, di * L, B);
    }

    /* silu': dc = du * s (1 + c (1 - s)), in place. */
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * di; i++) {
        float *dc = w->du + i * L;
        const float *cr = w->c + i * L;
        for (int64_t t = 0; t < L; t++) {
            const float s = 1.0f / (1.0f + expf(-cr[t]));
            dc[t] *= s * (1.0f + cr[t] * (1.0f - s));
        }
    }
    /* conv: dxi into c (no longer needed). */
    const int want_in = dx || g[SSM_MAMBA_IN_PROJ];
    float *dxi = w->c;
    SSM_TRY(ssm_causal_conv1d_backward(B, di, L, k, w->xi,
                                       bp->p[SSM_MAMBA_CONV_W], w->du,
                                       want_in ? dxi : NULL,
                                       g[SSM_MAMBA_CONV_W], g[SSM_MAMBA_CONV_B]));

    /* in_proj: dWin = sum_b [dxi_b; dz_b] x_b, dx_b = dxi_b^T Win_x + dz_b^T Win_z. */
    if (g[SSM_MAMBA_IN_PROJ]) {
        gemm_det(CblasNoTrans, CblasNoTrans, di, dm, L, dxi, L, di * L, x, dm,
                 L * dm, 0.0f, g[SSM_MAMBA_IN_PROJ], dm, 0, B);
        gemm_det(CblasNoTrans, CblasNoTrans, di, dm, L, w->dz, L, di * L, x, dm,
                 L * dm, 0.0f, g[SSM_MAMBA_IN_PROJ] + di * dm, dm, 0, B);
    }
    if (dx) {
        gemm_det(CblasTrans, CblasNoTrans, L, dm, di, dxi, L, di * L, win, dm, 0,
                 0.0f, dx, dm, L * dm, B);
        gemm_det(CblasTrans, CblasNoTrans, L, dm, di, w->dz, L, di * L,
                 win + di * dm, dm, 0, 1.0f, dx, dm, L * dm, B);
    }
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* block                                                              */

static ssm_status blk_check(const ssm_mamba *blk, int64_t B, int64_t L,
                            const float *x, const void *o, blk_params *bp,
                            int bwd, int64_t *nws)
{
    int64_t tmp;
    if (!blk || !x || !o || B < 1 || L < 1 ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 3, B, L, 1))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_config c;
    SSM_TRY(ssm_mamba_get_config(blk, &c));
    blk_dims d = { c.d_model, c.expand * c.d_model, c.d_state, c.d_conv, c.dt_rank };
    if (!ssmi_sizes_ok(&tmp, sizeof(float), 3, B, L, d.dm))
        return SSM_FAIL(SSM_ERR_ARG);
    *nws = ws_count(&d, B, L, bwd);
    if (*nws < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    return params_load(blk, bp);
}

ssm_status ssm_mamba_forward_det(const ssm_mamba *blk, int64_t batch, int64_t L,
                                 const float *x, float *y)
{
    blk_params bp;
    int64_t nws = 0;
    memset(&bp, 0, sizeof bp);
    ssm_status e = blk_check(blk, batch, L, x, y, &bp, 0, &nws);
    if (e != SSM_OK) {
        params_free(&bp);
        return e;
    }
    float *mem = ssmi_alloc((size_t)nws, sizeof(float));
    if (!mem) {
        params_free(&bp);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    blk_ws w = ws_carve(&bp.d, batch, L, mem, 0);
    e = blk_forward_acts(&bp, &w, x);
    if (e == SSM_OK)
        blk_out_proj(&bp, &w, y);
    ssmi_free(mem);
    params_free(&bp);
    return e;
}

ssm_status ssm_mamba_backward(const ssm_mamba *blk, int64_t batch, int64_t L,
                              const float *x, const float *dy, float *dx,
                              float *const dparams[SSM_MAMBA_NPARAMS])
{
    blk_params bp;
    int64_t nws = 0;
    memset(&bp, 0, sizeof bp);
    ssm_status e = blk_check(blk, batch, L, x, dy, &bp, 1, &nws);
    if (e != SSM_OK) {
        params_free(&bp);
        return e;
    }
    float *mem = ssmi_alloc((size_t)nws, sizeof(float));
    if (!mem) {
        params_free(&bp);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    blk_ws w = ws_carve(&bp.d, batch, L, mem, 1);
    e = blk_forward_acts(&bp, &w, x);
    if (e == SSM_OK)
        e = blk_backward_ws(&bp, &w, x, dy, dx, dparams);
    ssmi_free(mem);
    params_free(&bp);
    return e;
}

/* ------------------------------------------------------------------ */
/* stack                                                              */

struct ssm_mamba_stack_grads {
    int64_t nl, dm, per_layer, total;
    int64_t cnt[SSM_MAMBA_NPARAMS], off[SSM_MAMBA_NPARAMS];
    float *data;
};

/* The stack's blocks are read only; ssm_mamba_stack_block takes a
 * non-const stack because it lends a writable block: the cast is safe. */
static const ssm_mamba *stack_blk(const ssm_mamba_stack *stk, int64_t l)
{
    ssm_mamba *b = NULL;
    if (ssm_mamba_stack_block((ssm_mamba_stack *)(uintptr_t)stk, l, &b) != SSM_OK)
        return NULL;
    return b;
}

/* Layout of the flat vector: per layer the nine tensors then the norm. */
typedef struct stack_layout {
    int64_t nl, dm, per_layer, total;
    int64_t cnt[SSM_MAMBA_NPARAMS], off[SSM_MAMBA_NPARAMS];
} stack_layout;

static ssm_status stack_layout_get(const ssm_mamba_stack *stk, stack_layout *s)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(ssm_mamba_stack_layers(stk, &s->nl));
    const ssm_mamba *b0 = stack_blk(stk, 0);
    ssm_mamba_config c;
    SSM_TRY(ssm_mamba_get_config(b0, &c));
    s->dm = c.d_model;
    int64_t o = 0;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        SSM_TRY(ssm_mamba_param_count(b0, (ssm_mamba_param)i, &s->cnt[i]));
        s->off[i] = o;
        o += s->cnt[i];
    }
    s->per_layer = o + s->dm;
    int64_t t;
    if (!ssmi_mul_ok(s->nl, s->per_layer, &t) ||
        __builtin_add_overflow(t, s->dm, &t) ||
        !ssmi_sizes_ok(&s->total, sizeof(float), 1, t))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssm_mamba_stack_param_total(const ssm_mamba_stack *stk, int64_t *count)
{
    stack_layout s;
    if (!count)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(stack_layout_get(stk, &s));
    *count = s.total;
    return SSM_OK;
}

ssm_status ssm_mamba_stack_params_get(const ssm_mamba_stack *stk, float *flat,
                                      int64_t count)
{
    stack_layout s;
    if (!flat)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(stack_layout_get(stk, &s));
    if (count != s.total)
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t l = 0; l <= s.nl; l++) {
        float *o = flat + l * s.per_layer;
        if (l < s.nl)
            for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
                SSM_TRY(ssm_mamba_get_param(stack_blk(stk, l), (ssm_mamba_param)i,
                                            o + s.off[i], s.cnt[i]));
        SSM_TRY(ssm_mamba_stack_get_norm(stk, l, o + (l < s.nl ? s.per_layer - s.dm : 0),
                                         s.dm));
    }
    return SSM_OK;
}

ssm_status ssm_mamba_stack_params_set(ssm_mamba_stack *stk, const float *flat,
                                      int64_t count)
{
    stack_layout s;
    if (!flat)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(stack_layout_get(stk, &s));
    if (count != s.total)
        return SSM_FAIL(SSM_ERR_ARG);
    /* Check everything first (as ssm_mamba_set_param would), so a bad value
     * in a late layer leaves the earlier ones unchanged too. */
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(flat[i]))
            return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t l = 0; l < s.nl; l++) {
        const float *al = flat + l * s.per_layer + s.off[SSM_MAMBA_A_LOG];
        for (int64_t i = 0; i < s.cnt[SSM_MAMBA_A_LOG]; i++)
            if (!isfinite(expf(al[i])))
                return SSM_FAIL(SSM_ERR_ARG);
    }
    for (int64_t l = 0; l <= s.nl; l++) {
        const float *o = flat + l * s.per_layer;
        if (l < s.nl) {
            ssm_mamba *b = NULL;
            SSM_TRY(ssm_mamba_stack_block(stk, l, &b));
            for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
                SSM_TRY(ssm_mamba_set_param(b, (ssm_mamba_param)i, o + s.off[i],
                                            s.cnt[i]));
        }
        SSM_TRY(ssm_mamba_stack_set_norm(stk, l, o + (l < s.nl ? s.per_layer - s.dm : 0),
                                         s.dm));
    }
    return SSM_OK;
}

void ssm_mamba_stack_grads_destroy(ssm_mamba_stack_grads *g)
{
    if (!g)
        return;
    ssmi_free(g->data);
    ssmi_free(g);
}

ssm_status ssm_mamba_stack_grads_create(ssm_mamba_stack_grads **g,
                                        const ssm_mamba_stack *stk)
{
    if (!g)
        return SSM_FAIL(SSM_ERR_ARG);
    *g = NULL;
    stack_layout s;
    SSM_TRY(stack_layout_get(stk, &s));
    ssm_mamba_stack_grads *o = ssmi_calloc(1, sizeof *o);
    if (!o)
        return SSM_FAIL(SSM_ERR_NOMEM);
    o->data = ssmi_calloc((size_t)s.total, sizeof(float));
    if (!o->data) {
        ssmi_free(o);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    o->nl = s.nl; o->dm = s.dm; o->per_layer = s.per_layer; o->total = s.total;
    memcpy(o->cnt, s.cnt, sizeof o->cnt);
    memcpy(o->off, s.off, sizeof o->off);
    *g = o;
    return SSM_OK;
}

ssm_status ssm_mamba_stack_grads_data(ssm_mamba_stack_grads *g, float **data,
                                      int64_t *count)
{
    if (!g)
        return SSM_FAIL(SSM_ERR_ARG);
    if (data)
        *data = g->data;
    if (count)
        *count = g->total;
    return SSM_OK;
}

ssm_status ssm_mamba_stack_grads_block(ssm_mamba_stack_grads *g, int64_t layer,
                                       ssm_mamba_param p, float **grad,
                                       int64_t *count)
{
    if (grad)
        *grad = NULL;
    if (!g || !grad || layer < 0 || layer >= g->nl || (int)p < 0 ||
        (int)p >= SSM_MAMBA_NPARAMS)
        return SSM_FAIL(SSM_ERR_ARG);
    *grad = g->data + layer * g->per_layer + g->off[p];
    if (count)
        *count = g->cnt[p];
    return SSM_OK;
}

ssm_status ssm_mamba_stack_grads_norm(ssm_mamba_stack_grads *g, int64_t layer,
                                      float **grad, int64_t *count)
{
    if (grad)
        *grad = NULL;
    if (!g || !grad || layer < 0 || layer > g->nl)
        return SSM_FAIL(SSM_ERR_ARG);
    *grad = g->data + layer * g->per_layer + (layer < g->nl ? g->per_layer - g->dm : 0);
    if (count)
        *count = g->dm;
    return SSM_OK;
}

/* out[row] = in[row] / sqrt(mean(in[row]^2) + eps) * w: mamba.c's
 * rmsnorm_rows, the same operations in the same order. */
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

/* Everything a stack pass needs: every layer's parameters, the norm
 * weights, the block workspace, and the residual stream. */
typedef struct stack_run {
    stack_layout s;
    int64_t B, L, ntok, nact;
    blk_params *bp;       /* [nl] */
    float *norms;         /* [nl + 1][Dm] */
    float *mem;           /* block workspace */
    float *h;             /* [nl + 1][nact] residual inputs (bwd) or [2][nact] */
    float *normed, *tmp;  /* [nact] each */
} stack_run;

static void stack_run_free(stack_run *r)
{
    if (r->bp)
        for (int64_t l = 0; l < r->s.nl; l++)
            params_free(&r->bp[l]);
    ssmi_free(r->bp);
    ssmi_free(r->norms);
    ssmi_free(r->mem);
    ssmi_free(r->h);
}

static ssm_status stack_run_init(const ssm_mamba_stack *stk, int64_t B, int64_t L,
                                 const float *x, const void *o, int bwd,
                                 stack_run *r)
{
    memset(r, 0, sizeof *r);
    if (!stk || !x || !o || B < 1 || L < 1)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(stack_layout_get(stk, &r->s));
    int64_t nh, nws;
    if (!ssmi_sizes_ok(&r->ntok, sizeof(float), 2, B, L) ||
        !ssmi_sizes_ok(&r->nact, sizeof(float), 2, r->ntok, r->s.dm) ||
        !ssmi_sizes_ok(&nh, sizeof(float), 2, bwd ? r->s.nl + 3 : 4, r->nact))
        return SSM_FAIL(SSM_ERR_ARG);
    const ssm_mamba *b0 = stack_blk(stk, 0);
    ssm_mamba_config c;
    SSM_TRY(ssm_mamba_get_config(b0, &c));
    blk_dims d = { c.d_model, c.expand * c.d_model, c.d_state, c.d_conv, c.dt_rank };
    nws = ws_count(&d, B, L, bwd);
    if (nws < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    r->B = B; r->L = L;
    r->bp = ssmi_calloc((size_t)r->s.nl, sizeof *r->bp);
    r->norms = ssmi_alloc((size_t)((r->s.nl + 1) * r->s.dm), sizeof(float));
    r->mem = ssmi_alloc((size_t)nws, sizeof(float));
    r->h = ssmi_alloc((size_t)nh, sizeof(float));
    if (!r->bp || !r->norms || !r->mem || !r->h)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t l = 0; l < r->s.nl; l++)
        SSM_TRY(params_load(stack_blk(stk, l), &r->bp[l]));
    for (int64_t l = 0; l <= r->s.nl; l++)
        SSM_TRY(ssm_mamba_stack_get_norm(stk, l, r->norms + l * r->s.dm, r->s.dm));
    const int64_t nslots = bwd ? r->s.nl + 1 : 2;
    r->normed = r->h + nslots * r->nact;
    r->tmp = r->normed + r->nact;
    return SSM_OK;
}

/* h_(l+1) = h_l + block_l(rmsnorm_l(h_l)), in place (hin == hout) or not. */
static ssm_status stack_layer_fwd(stack_run *r, int64_t l, const float *hin,
                                  float *hout)
{
    rmsnorm_rows(r->ntok, r->s.dm, hin, r->normed, r->norms + l * r->s.dm);
    blk_ws w = ws_carve(&r->bp[l].d, r->B, r->L, r->mem, 0);
    SSM_TRY(blk_forward_acts(&r->bp[l], &w, r->normed));
    blk_out_proj(&r->bp[l], &w, r->tmp);
    const int64_t n = r->nact;
    const float *t = r->tmp;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        hout[i] = hin[i] + t[i];
    return SSM_OK;
}

ssm_status ssm_mamba_stack_forward_det(const ssm_mamba_stack *stk, int64_t batch,
                                       int64_t L, const float *x, float *y)
{
    stack_run r;
    ssm_status e = stack_run_init(stk, batch, L, x, y, 0, &r);
    if (e == SSM_OK) {
        float *h = r.h;
        memcpy(h, x, (size_t)r.nact * sizeof(float));
        for (int64_t l = 0; l < r.s.nl && e == SSM_OK; l++)
            e = stack_layer_fwd(&r, l, h, h);
        if (e == SSM_OK)
            rmsnorm_rows(r.ntok, r.s.dm, h, y, r.norms + r.s.nl * r.s.dm);
    }
    stack_run_free(&r);
    return e;
}

ssm_status ssm_mamba_stack_backward(const ssm_mamba_stack *stk, int64_t batch,
                                    int64_t L, const float *x, const float *dy,
                                    float *dx, ssm_mamba_stack_grads *g)
{
    stack_run r;
    ssm_status e = stack_run_init(stk, batch, L, x, dy, 1, &r);
    if (e == SSM_OK && g &&
        (g->nl != r.s.nl || g->dm != r.s.dm || g->total != r.s.total ||
         memcmp(g->cnt, r.s.cnt, sizeof g->cnt) != 0))
        e = SSM_FAIL(SSM_ERR_ARG);
    if (e != SSM_OK) {
        stack_run_free(&r);
        return e;
    }
    const int64_t nl = r.s.nl, dm = r.s.dm, nact = r.nact;
    /* Forward, keeping each layer's residual input h_l (h_nl: before the
     * final norm). */
    memcpy(r.h, x, (size_t)nact * sizeof(float));
    for (int64_t l = 0; l < nl && e == SSM_OK; l++)
        e = stack_layer_fwd(&r, l, r.h + l * nact, r.h + (l + 1) * nact);
    /* dh: the gradient at the residual stream, kept in tmp's partner
     * (normed doubles as the block's input, so dh needs its own array:
     * the last residual slot, h_nl, once the final norm is through). */
    float *dh = r.tmp, *dn = NULL;
    float *gd = g ? g->data : NULL;
    if (e == SSM_OK) {
        /* y = rmsnorm_f(h_nl): dh = its backward (dweight: final norm). */
        float *dwf = gd ? gd + nl * r.s.per_layer : NULL;
        e = ssm_rmsnorm_backward(r.ntok, dm, r.h + nl * nact, r.norms + nl * dm,
                                 SSM_MAMBA_RMS_EPS, dy, dh, dwf);
    }
    /* Walk the layers last to first.  h_(l+1) = h_l + f(norm(h_l)):
     * dh_l = dh_(l+1) + norm'^T (f'^T dh_(l+1)).  The slot of h_(l+1) is
     * free by then and takes dn = f'^T dh. */
    for (int64_t l = nl - 1; l >= 0 && e == SSM_OK; l--) {
        const float *hl = r.h + l * nact;
        dn = r.h + (l + 1) * nact;
        rmsnorm_rows(r.ntok, dm, hl, r.normed, r.norms + l * dm);
        float *dp[SSM_MAMBA_NPARAMS];
        for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
            dp[i] = gd ? gd + l * r.s.per_layer + r.s.off[i] : NULL;
        blk_ws w = ws_carve(&r.bp[l].d, batch, L, r.mem, 1);
        e = blk_forward_acts(&r.bp[l], &w, r.normed);
        if (e == SSM_OK)
            e = blk_backward_ws(&r.bp[l], &w, r.normed, dh, dn, dp);
        if (e != SSM_OK)
            break;
        /* dn becomes the norm's input gradient, added to dh; the norm's
         * output (normed) is free to hold it. */
        float *dwl = gd ? gd + l * r.s.per_layer + r.s.per_layer - dm : NULL;
        e = ssm_rmsnorm_backward(r.ntok, dm, hl, r.norms + l * dm,
                                 SSM_MAMBA_RMS_EPS, dn, r.normed, dwl);
        if (e != SSM_OK)
            break;
        const float *gn = r.normed;
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nact; i++)
            dh[i] += gn[i];
    }
    if (e == SSM_OK && dx)
        memcpy(dx, dh, (size_t)nact * sizeof(float));
    stack_run_free(&r);
    return e;
}
