/*
 * mamba2.c -- the Mamba-2 block (Dao and Gu 2024, section 7, figure 6) and
 * its residual RMSNorm stack, on top of ssm_ssd_scan / ssm_ssd_step.
 * Layouts and semantics: include/ssm/mamba2.h.
 *
 * Prompt path, token-major throughout (as Mamba-2 itself):
 *   zx [B*L][Dp] = x Win^T                         (one sgemm)
 *   xs [B*L][Di], Bs, Cs [B*L][G*N] = silu(conv(xBC columns of zx) + bias)
 *   dts [B*L][H] = dt columns of zx
 *   ys [B*L][Di] = ssd_scan(...)
 *   ys = gated RMSNorm(ys, z columns of zx)        (in place)
 *   y  [B*L][Dm] = ys Wout^T                       (one sgemm)
 * Step path: the same stages on [B][.] rows, sgemv for batch 1, the conv
 * window shifted in the state, ssm_ssd_step; every elementwise stage is the
 * same function as in the prompt path (same rounding).
 *
 * BLAS is never called inside one of our OpenMP regions (see ssm/mamba.h on
 * sharing libgomp's pool with the OpenMP build of OpenBLAS).
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <cblas.h>

#include "internal.h"
#include "scan/scan_internal.h"
#include "layers/gemv.h"
#include "layers/layers_internal.h"
#include "layers/stack_common.h"

struct ssm_mamba2 {
    int64_t dm, di, n, k, p, h, g, dc, dp;   /* dc = conv_dim, dp = d_in_proj */
    int dpc, norm;
    float dt_min, dt_max, eps;
    int64_t cnt[SSM_MAMBA2_NPARAMS];
    float *par[SSM_MAMBA2_NPARAMS];
    float *A;       /* [H] = -exp(A_log) */
    float *convT;   /* [K][Dc] = conv_w transposed (token-major conv) */
};

struct ssm_mamba2_state {
    int64_t dm, di, n, k, p, h, g, dc, dp, maxb;
    float *conv;    /* [maxB][Dc][K] last K pre-conv inputs, oldest first */
    float *ssm;     /* [maxB][H][P][N] */
    float *ws;      /* step workspace */
    float *zx, *xs, *bs, *cs, *dts, *zc, *ys, *pre;   /* views into ws */
};

struct ssm_mamba2_stack {
    int64_t nl, dm;
    void **blk;     /* [nl] ssm_mamba2 *, void * for stack_common.h */
    float *norm;    /* [nl + 1][Dm] */
};

struct ssm_mamba2_stack_state {
    int64_t nl, dm, maxb;
    void **st;      /* [nl] ssm_mamba2_state * */
    float *normed, *out;   /* [maxB][Dm] */
};

#define PAR_MIN 32768
/* Longest conv (Mamba-2 uses 4): the window of one channel fits the stack. */
#define SSM_MAMBA2_MAX_CONV 64
#define RMS_EPS_STACK 1e-5

/* ------------------------------------------------------------------ */
/* configuration                                                      */

void ssm_mamba2_config_init(ssm_mamba2_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = (uint32_t)sizeof *cfg;
}

ssm_status ssm_mamba2_config_resolve(const ssm_mamba2_config *cfg,
                                     ssm_mamba2_config *out)
{
    if (!cfg || !out)
        return SSM_FAIL(SSM_ERR_ARG);
    const size_t need = offsetof(ssm_mamba2_config, d_model) + sizeof(int64_t);
    if (cfg->struct_size < need)
        return SSM_FAIL(SSM_ERR_ARG);
    /* Read only the fields within struct_size (older, shorter structs). */
    ssm_mamba2_config c;
    memset(&c, 0, sizeof c);
    memcpy(&c, cfg, cfg->struct_size < sizeof c ? cfg->struct_size : sizeof c);
    c.struct_size = (uint32_t)sizeof c;
    if (c.d_model < 1 || c.d_state < 0 || c.d_conv < 0 || c.expand < 0 ||
        c.headdim < 0 || c.ngroups < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (c.norm < SSM_MAMBA2_NORM_GATED || c.norm > SSM_MAMBA2_NORM_NONE)
        return SSM_FAIL(SSM_ERR_ARG);
    if (c.d_state == 0) c.d_state = 128;
    if (c.d_conv == 0) c.d_conv = 4;
    if (c.expand == 0) c.expand = 2;
    if (c.headdim == 0) c.headdim = 64;
    if (c.ngroups == 0) c.ngroups = 1;
    if (c.dt_max == 0.0f) c.dt_max = INFINITY;
    if (c.norm_eps == 0.0f) c.norm_eps = 1e-5f;
    if (isnan(c.dt_min) || isnan(c.dt_max) || c.dt_min < 0.0f ||
        c.dt_min > c.dt_max || !(c.norm_eps > 0.0f) || !isfinite(c.norm_eps))
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t di, gn, dc, dp, tmp;
    if (!ssmi_mul_ok(c.expand, c.d_model, &di) || di % c.headdim != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t h = di / c.headdim;
    if (h % c.ngroups != 0 || !ssmi_mul_ok(c.ngroups, c.d_state, &gn) ||
        !ssmi_mul_ok(2, gn, &gn) || __builtin_add_overflow(di, gn, &dc) ||
        __builtin_add_overflow(dc, di, &dp) || __builtin_add_overflow(dp, h, &dp))
        return SSM_FAIL(SSM_ERR_ARG);
    if (dp > INT_MAX || c.d_model > INT_MAX || c.d_conv > SSM_MAMBA2_MAX_CONV ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, dp, c.d_model) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, dc, c.d_conv) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 3, h, c.headdim, c.d_state))
        return SSM_FAIL(SSM_ERR_ARG);
    *out = c;
    return SSM_OK;
}

static const char *const param_names[SSM_MAMBA2_NPARAMS] = {
    "in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log",
    "D", "norm.weight", "out_proj.weight"
};

const char *ssm_mamba2_param_name(ssm_mamba2_param p)
{
    return (int)p >= 0 && (int)p < SSM_MAMBA2_NPARAMS ? param_names[p] : NULL;
}

/* ------------------------------------------------------------------ */
/* block: create, parameters                                          */

void ssm_mamba2_destroy(ssm_mamba2 *blk)
{
    if (!blk)
        return;
    for (int i = 0; i < SSM_MAMBA2_NPARAMS; i++)
        ssmi_free(blk->par[i]);
    ssmi_free(blk->A);
    ssmi_free(blk->convT);
    ssmi_free(blk);
}

static void fill_uniform(ssmi_rng *g, float *x, int64_t n, double bound)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(bound * (2.0 * ssmi_rng_uniform(g) - 1.0));
}

/* Derived parameters: A = -exp(A_log) (Mamba-2's A), conv taps [K][Dc]. */
static void update_derived(ssm_mamba2 *m, int which)
{
    if (which == SSM_MAMBA2_A_LOG)
        for (int64_t i = 0; i < m->h; i++)
            m->A[i] = -expf(m->par[SSM_MAMBA2_A_LOG][i]);
    if (which == SSM_MAMBA2_CONV_W)
        for (int64_t c = 0; c < m->dc; c++)
            for (int64_t j = 0; j < m->k; j++)
                m->convT[j * m->dc + c] = m->par[SSM_MAMBA2_CONV_W][c * m->k + j];
}

ssm_status ssm_mamba2_create(ssm_mamba2 **blk, const ssm_mamba2_config *cfg,
                             uint64_t seed)
{
    if (!blk)
        return SSM_FAIL(SSM_ERR_ARG);
    *blk = NULL;
    ssm_mamba2_config c;
    SSM_TRY(ssm_mamba2_config_resolve(cfg, &c));
    ssm_mamba2 *m = ssmi_alloc(1, sizeof *m);
    if (!m)
        return SSM_FAIL(SSM_ERR_NOMEM);
    memset(m, 0, sizeof *m);
    m->dm = c.d_model; m->di = c.expand * c.d_model; m->n = c.d_state;
    m->k = c.d_conv; m->p = c.headdim; m->h = m->di / m->p; m->g = c.ngroups;
    m->dc = m->di + 2 * m->g * m->n; m->dp = m->dc + m->di + m->h;
    m->dpc = c.D_per_channel != 0; m->norm = c.norm;
    m->dt_min = c.dt_min; m->dt_max = c.dt_max; m->eps = c.norm_eps;
    m->cnt[SSM_MAMBA2_IN_PROJ] = m->dp * m->dm;
    m->cnt[SSM_MAMBA2_CONV_W] = m->dc * m->k;
    m->cnt[SSM_MAMBA2_CONV_B] = m->dc;
    m->cnt[SSM_MAMBA2_DT_BIAS] = m->h;
    m->cnt[SSM_MAMBA2_A_LOG] = m->h;
    m->cnt[SSM_MAMBA2_D] = m->dpc ? m->di : m->h;
    m->cnt[SSM_MAMBA2_NORM_W] = m->di;
    m->cnt[SSM_MAMBA2_OUT_PROJ] = m->dm * m->di;
    for (int i = 0; i < SSM_MAMBA2_NPARAMS; i++) {
        m->par[i] = ssmi_alloc((size_t)m->cnt[i], sizeof(float));
        if (!m->par[i]) {
            ssm_mamba2_destroy(m);
            return SSM_FAIL(SSM_ERR_NOMEM);
        }
    }
    m->A = ssmi_alloc((size_t)m->h, sizeof(float));
    m->convT = ssmi_alloc((size_t)(m->dc * m->k), sizeof(float));
    if (!m->A || !m->convT) {
        ssm_mamba2_destroy(m);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    /* Mamba-2's default initialisation (mamba_ssm/modules/mamba2.py), in a
     * fixed draw order (enum order). */
    ssmi_rng g = { seed };
    fill_uniform(&g, m->par[SSM_MAMBA2_IN_PROJ], m->cnt[SSM_MAMBA2_IN_PROJ],
                 1.0 / sqrt((double)m->dm));
    fill_uniform(&g, m->par[SSM_MAMBA2_CONV_W], m->cnt[SSM_MAMBA2_CONV_W],
                 1.0 / sqrt((double)m->k));
    fill_uniform(&g, m->par[SSM_MAMBA2_CONV_B], m->cnt[SSM_MAMBA2_CONV_B],
                 1.0 / sqrt((double)m->k));
    /* dt log-uniform in [1e-3, 1e-1], floored at 1e-4, stored through the
     * inverse softplus: softplus(dt_bias) = dt at zero input. */
    for (int64_t i = 0; i < m->h; i++) {
        double dt = exp(log(1e-3) + (log(1e-1) - log(1e-3)) * ssmi_rng_uniform(&g));
        if (dt < 1e-4)
            dt = 1e-4;
        m->par[SSM_MAMBA2_DT_BIAS][i] = (float)(dt + log(-expm1(-dt)));
    }
    /* A ~ U(1, 16) (A_init_range), A_log = log A. */
    for (int64_t i = 0; i < m->h; i++)
        m->par[SSM_MAMBA2_A_LOG][i] = (float)log(1.0 + 15.0 * ssmi_rng_uniform(&g));
    for (int64_t i = 0; i < m->cnt[SSM_MAMBA2_D]; i++)
        m->par[SSM_MAMBA2_D][i] = 1.0f;
    for (int64_t i = 0; i < m->di; i++)
        m->par[SSM_MAMBA2_NORM_W][i] = 1.0f;
    fill_uniform(&g, m->par[SSM_MAMBA2_OUT_PROJ], m->cnt[SSM_MAMBA2_OUT_PROJ],
                 1.0 / sqrt((double)m->di));
    update_derived(m, SSM_MAMBA2_A_LOG);
    update_derived(m, SSM_MAMBA2_CONV_W);
    *blk = m;
    return SSM_OK;
}

ssm_status ssm_mamba2_get_config(const ssm_mamba2 *blk, ssm_mamba2_config *cfg)
{
    if (!blk || !cfg || cfg->struct_size < sizeof(uint32_t))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba2_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = cfg->struct_size;
    c.d_model = blk->dm; c.d_state = blk->n; c.d_conv = blk->k;
    c.expand = blk->di / blk->dm; c.headdim = blk->p; c.ngroups = blk->g;
    c.D_per_channel = blk->dpc; c.norm = blk->norm;
    c.dt_min = blk->dt_min; c.dt_max = blk->dt_max; c.norm_eps = blk->eps;
    memcpy(cfg, &c, cfg->struct_size < sizeof c ? cfg->struct_size : sizeof c);
    return SSM_OK;
}

static int param_ok(int p) { return p >= 0 && p < SSM_MAMBA2_NPARAMS; }

ssm_status ssm_mamba2_param_count(const ssm_mamba2 *blk, ssm_mamba2_param p,
                                  int64_t *count)
{
    if (!blk || !count || !param_ok((int)p))
        return SSM_FAIL(SSM_ERR_ARG);
    *count = blk->cnt[p];
    return SSM_OK;
}

ssm_status ssm_mamba2_set_param(ssm_mamba2 *blk, ssm_mamba2_param p,
                                const float *src, int64_t count)
{
    if (!blk || !src || !param_ok((int)p) || count != blk->cnt[p])
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; i < count; i++) {
        if (!isfinite(src[i]))
            return SSM_FAIL(SSM_ERR_ARG);
        if (p == SSM_MAMBA2_A_LOG && !isfinite(expf(src[i])))
            return SSM_FAIL(SSM_ERR_ARG);
    }
    memcpy(blk->par[p], src, (size_t)count * sizeof(float));
    update_derived(blk, (int)p);
    return SSM_OK;
}

ssm_status ssm_mamba2_get_param(const ssm_mamba2 *blk, ssm_mamba2_param p,
                                float *dst, int64_t count)
{
    if (!blk || !dst || !param_ok((int)p) || count != blk->cnt[p])
        return SSM_FAIL(SSM_ERR_ARG);
    memcpy(dst, blk->par[p], (size_t)count * sizeof(float));
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* state                                                              */

void ssm_mamba2_state_destroy(ssm_mamba2_state *st)
{
    if (!st)
        return;
    ssmi_free(st->conv);
    ssmi_free(st->ssm);
    ssmi_free(st->ws);
    ssmi_free(st);
}

ssm_status ssm_mamba2_state_create(ssm_mamba2_state **st, const ssm_mamba2 *blk,
                                   int64_t max_batch)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    *st = NULL;
    if (!blk || max_batch < 1 || max_batch > INT_MAX)
        return SSM_FAIL(SSM_ERR_ARG);
    /* per sequence: zx (Dp), xs, zc, ys (Di), bs, cs (G N), dts (H), pre (Dc) */
    const int64_t per = blk->dp + 3 * blk->di + 2 * blk->g * blk->n + blk->h + blk->dc;
    int64_t nconv, nssm, nws;
    if (!ssmi_sizes_ok(&nconv, sizeof(float), 3, max_batch, blk->dc, blk->k) ||
        !ssmi_sizes_ok(&nssm, sizeof(float), 4, max_batch, blk->h, blk->p, blk->n) ||
        !ssmi_sizes_ok(&nws, sizeof(float), 2, max_batch, per))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba2_state *s = ssmi_alloc(1, sizeof *s);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    memset(s, 0, sizeof *s);
    s->dm = blk->dm; s->di = blk->di; s->n = blk->n; s->k = blk->k;
    s->p = blk->p; s->h = blk->h; s->g = blk->g; s->dc = blk->dc; s->dp = blk->dp;
    s->maxb = max_batch;
    s->conv = ssmi_alloc((size_t)nconv, sizeof(float));
    s->ssm = ssmi_alloc((size_t)nssm, sizeof(float));
    s->ws = ssmi_alloc((size_t)nws, sizeof(float));
    if (!s->conv || !s->ssm || !s->ws) {
        ssm_mamba2_state_destroy(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    float *w = s->ws;
    const int64_t B = max_batch, gn = blk->g * blk->n;
    s->zx = w; w += B * blk->dp;
    s->xs = w; w += B * blk->di;
    s->zc = w; w += B * blk->di;
    s->ys = w; w += B * blk->di;
    s->bs = w; w += B * gn;
    s->cs = w; w += B * gn;
    s->dts = w; w += B * blk->h;
    s->pre = w;
    memset(s->conv, 0, (size_t)nconv * sizeof(float));
    memset(s->ssm, 0, (size_t)nssm * sizeof(float));
    *st = s;
    return SSM_OK;
}

ssm_status ssm_mamba2_state_reset(ssm_mamba2_state *st)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    memset(st->conv, 0, (size_t)(st->maxb * st->dc * st->k) * sizeof(float));
    memset(st->ssm, 0, (size_t)(st->maxb * st->h * st->p * st->n) * sizeof(float));
    return SSM_OK;
}

ssm_status ssm_mamba2_state_get(const ssm_mamba2_state *st, int64_t batch,
                                float *conv, float *ssm)
{
    if (!st || batch < 1 || batch > st->maxb)
        return SSM_FAIL(SSM_ERR_ARG);
    if (conv)
        memcpy(conv, st->conv, (size_t)(batch * st->dc * st->k) * sizeof(float));
    if (ssm)
        memcpy(ssm, st->ssm, (size_t)(batch * st->h * st->p * st->n) * sizeof(float));
    return SSM_OK;
}

ssm_status ssm_mamba2_state_set(ssm_mamba2_state *st, int64_t batch,
                                const float *conv, const float *ssm)
{
    if (!st || batch < 1 || batch > st->maxb)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t nc = batch * st->dc * st->k, ns = batch * st->h * st->p * st->n;
    for (int64_t i = 0; conv && i < nc; i++)
        if (!isfinite(conv[i]))
            return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; ssm && i < ns; i++)
        if (!isfinite(ssm[i]))
            return SSM_FAIL(SSM_ERR_ARG);
    if (conv)
        memcpy(st->conv, conv, (size_t)nc * sizeof(float));
    if (ssm)
        memcpy(st->ssm, ssm, (size_t)ns * sizeof(float));
    return SSM_OK;
}

static int state_matches(const ssm_mamba2_state *st, const ssm_mamba2 *m)
{
    return st->dm == m->dm && st->di == m->di && st->n == m->n &&
           st->k == m->k && st->p == m->p && st->h == m->h && st->g == m->g;
}

ssm_status ssm_mamba2_state_check(const ssm_mamba2_state *st, const ssm_mamba2 *blk,
                                  int64_t batch)
{
    if (!st || !blk || batch < 1 || batch > st->maxb || !state_matches(st, blk))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* elementwise stages shared by forward and step (same rounding)      */

/* out[i] = silu(in[i]) = in / (1 + exp(-in)), with the scan's vector exp
 * (blocks of 256 on the stack: no allocation).  in == out allowed. */
static void silu_vec(const float *in, float *out, int64_t n)
{
    float e[256];
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        const int64_t m = n - i0 < 256 ? n - i0 : 256;
        for (int64_t i = 0; i < m; i++)
            e[i] = -in[i0 + i];
        ssmi_scan_vexpf(SSM_SCAN_ISA_AUTO, e, e, m);
        for (int64_t i = 0; i < m; i++) {
            const float v = in[i0 + i];
            out[i0 + i] = v / (1.0f + e[i]);
        }
    }
}

/* Split one token's post-activation xBC row into x, B, C. */
static void split_xbc(const ssm_mamba2 *m, const float *act, float *xs,
                      float *bs, float *cs)
{
    const int64_t gn = m->g * m->n;
    memcpy(xs, act, (size_t)m->di * sizeof(float));
    memcpy(bs, act + m->di, (size_t)gn * sizeof(float));
    memcpy(cs, act + m->di + gn, (size_t)gn * sizeof(float));
}

/* Gated RMSNorm of one token (Mamba-2's RMSNormGated, group_size =
 * Di/G): y [Di] in place, z [Di] the gate (pre-activation), tmp [Di]
 * scratch.  The sum of squares is accumulated in double, in order. */
static void gated_norm_row(const ssm_mamba2 *m, float *y, const float *z,
                           float *tmp)
{
    const float *w = m->par[SSM_MAMBA2_NORM_W];
    const int64_t gs = m->di / m->g;
    silu_vec(z, tmp, m->di);                 /* tmp = silu(z) */
    if (m->norm == SSM_MAMBA2_NORM_GATED)
        for (int64_t i = 0; i < m->di; i++)
            y[i] = y[i] * tmp[i];
    for (int64_t g0 = 0; g0 < m->di; g0 += gs) {
        double ss = 0.0;
        for (int64_t i = g0; i < g0 + gs; i++)
            ss += (double)y[i] * y[i];
        const float r = (float)(1.0 / sqrt(ss / (double)gs + (double)m->eps));
        if (m->norm == SSM_MAMBA2_NORM_GATED)
            for (int64_t i = g0; i < g0 + gs; i++)
                y[i] = (y[i] * r) * w[i];
        else
            for (int64_t i = g0; i < g0 + gs; i++)
                y[i] = ((y[i] * r) * w[i]) * tmp[i];
    }
}

/* out[M][N] = X[M][K] W[N][K]^T for the step: up to STEP_GEMV_MAX tokens
 * through the weight-row-once kernels of gemv.h, as the Mamba-1 step
 * (sgemm packed all of W on every call, sgemv streamed it slower).  The
 * stack step at the mamba2-130m shape (24 layers), 1 thread, Zen 4
 * (`ssm_bench ssd stack`): batch 1 28.0-31.4 -> 19.5-21.5 ms, batch 8
 * 80.5-85.1 -> 41.0-47.0 ms.  sgemm above. */
#define STEP_GEMV_MAX 16
static void mm_xwt(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                   const float *W, int64_t ldw, float *out, int64_t ldo)
{
    if (M <= STEP_GEMV_MAX)
        ssmi_xwt(M, N, K, X, ldx, W, ldw, out, ldo);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N,
                    (int)K, 1.0f, X, (int)ldx, W, (int)ldw, 0.0f, out, (int)ldo);
}

static ssm_ssd_args scan_args(const ssm_mamba2 *m, int64_t B, int64_t L,
                              const float *xs, const float *dts,
                              const float *bs, const float *cs,
                              const float *zc, float *ys, float *ssm)
{
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = m->h; a.headdim = m->p; a.dstate = m->n;
    a.ngroups = m->g; a.x = xs; a.dt = dts; a.A = m->A; a.B = bs; a.C = cs;
    a.D = m->par[SSM_MAMBA2_D]; a.D_per_channel = m->dpc;
    a.z = m->norm == SSM_MAMBA2_NORM_NONE ? zc : NULL;
    a.dt_bias = m->par[SSM_MAMBA2_DT_BIAS]; a.dt_softplus = 1;
    a.dt_min = m->dt_min; a.dt_max = m->dt_max;
    a.h0 = ssm; a.h_last = ssm; a.y = ys;
    return a;
}

/* ------------------------------------------------------------------ */
/* block forward                                                      */

/* Workspace floats: zx [T][Dp], act [T][Dc], xs, zc, ys [T][Di], bs, cs
 * [T][G N], dts [T][H] with T = B L; -1 on overflow. */
static int64_t block_ws_count(const ssm_mamba2 *m, int64_t B, int64_t L)
{
    int64_t T, tot;
    const int64_t per = m->dp + m->dc + 3 * m->di + 2 * m->g * m->n + m->h;
    if (!ssmi_mul_ok(B, L, &T) || T > INT_MAX ||
        !ssmi_sizes_ok(&tot, sizeof(float), 2, T, per))
        return -1;
    return tot;
}

static ssm_status block_forward_ws(const ssm_mamba2 *m, ssm_mamba2_state *st,
                                   int64_t B, int64_t L, const float *x,
                                   float *y, float *ws)
{
    const int64_t T = B * L, dp = m->dp, dc = m->dc, di = m->di, k = m->k;
    const int64_t gn = m->g * m->n, h = m->h;
    float *zx = ws, *act = zx + T * dp, *xs = act + T * dc, *zc = xs + T * di;
    float *ys = zc + T * di, *bs = ys + T * di, *cs = bs + T * gn, *dts = cs + T * gn;

    /* in_proj: [z | xBC | dt] per token. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)dp,
                (int)m->dm, 1.0f, x, (int)m->dm, m->par[SSM_MAMBA2_IN_PROJ],
                (int)m->dm, 0.0f, zx, (int)dp);

    /* Causal depthwise conv over xBC (left context: the state's last K-1
     * inputs, or zeros), + bias, silu; per output bias + tap 0 + tap 1 ...
     * in this order (the step's order). */
    const float *cb = m->par[SSM_MAMBA2_CONV_B];
    float *cst = st ? st->conv : NULL;
    #pragma omp parallel for schedule(static) if (T * dc > PAR_MIN)
    for (int64_t r = 0; r < T; r++) {
        const int64_t b = r / L, t = r % L;
        float *o = act + r * dc;
        for (int64_t c = 0; c < dc; c++)
            o[c] = cb[c];
        for (int64_t j = 0; j < k; j++) {
            const int64_t tt = t - (k - 1) + j;
            const float *wj = m->convT + j * dc;
            if (tt >= 0) {
                const float *in = zx + (b * L + tt) * dp + di;
                for (int64_t c = 0; c < dc; c++) {
                    const float pr = wj[c] * in[c];
                    o[c] = o[c] + pr;
                }
            } else if (cst) {
                const float *sb = cst + b * dc * k;
                for (int64_t c = 0; c < dc; c++) {
                    const float pr = wj[c] * sb[c * k + (k + tt)];
                    o[c] = o[c] + pr;
                }
            }
            /* no state: zero left padding adds nothing */
        }
        silu_vec(o, o, dc);
        split_xbc(m, o, xs + r * di, bs + r * gn, cs + r * gn);
        for (int64_t i = 0; i < h; i++)
            dts[r * h + i] = zx[r * dp + dc + di + i];
        if (m->norm == SSM_MAMBA2_NORM_NONE)
            memcpy(zc + r * di, zx + r * dp, (size_t)di * sizeof(float));
    }
    /* New conv state: the last K inputs of each sequence, position
     * L-K+j for j < K; positions < 0 come from the previous window, which
     * holds positions -K..-1 at indices 0..K-1 (so index L+j). */
    if (cst)
        for (int64_t b = 0; b < B; b++) {
            float *sb = cst + b * dc * k;
            for (int64_t c = 0; c < dc; c++) {
                float win[SSM_MAMBA2_MAX_CONV];
                for (int64_t j = 0; j < k; j++) {
                    const int64_t tt = L - k + j;
                    win[j] = tt >= 0 ? zx[(b * L + tt) * dp + di + c]
                                     : sb[c * k + L + j];
                }
                memcpy(sb + c * k, win, (size_t)k * sizeof(float));
            }
        }

    /* SSD scan (Mamba-2 eq. 1), state from/to st. */
    ssm_ssd_args a = scan_args(m, B, L, xs, dts, bs, cs, zc, ys,
                               st ? st->ssm : NULL);
    if (!st)
        a.h0 = a.h_last = NULL;
    SSM_TRY(ssm_ssd_scan(&a));

    /* Gated RMSNorm, token by token (zc as scratch when the gate is in the
     * norm). */
    if (m->norm != SSM_MAMBA2_NORM_NONE) {
        #pragma omp parallel for schedule(static) if (T * di > PAR_MIN)
        for (int64_t r = 0; r < T; r++)
            gated_norm_row(m, ys + r * di, zx + r * dp, zc + r * di);
    }

    /* out_proj */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)m->dm,
                (int)di, 1.0f, ys, (int)di, m->par[SSM_MAMBA2_OUT_PROJ],
                (int)di, 0.0f, y, (int)m->dm);
    return SSM_OK;
}

static ssm_status forward_check(const ssm_mamba2 *m, const ssm_mamba2_state *st,
                                int64_t B, int64_t L, const float *x,
                                const float *y)
{
    int64_t tmp;
    if (!m || !x || !y || B < 1 || L < 1 ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 3, B, L, m->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    if (st && (!state_matches(st, m) || B > st->maxb))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* Tokens per slab of a long forward: the sequence is run slab by slab,
 * the conv and SSM states carried between slabs, so a call needs memory
 * for one slab of activations, whatever L.  A multiple of the scan's chunk
 * (64), so the scan cuts the same chunks as one call over the whole L. */
#define SLAB 2048

/* Tokens [t0, t0 + n) of each of B sequences: [B][L][dm] -> [B][n][dm]
 * (in) or back (out). */
static void slab_copy(int64_t B, int64_t L, int64_t dm, int64_t t0, int64_t n,
                      const float *src, float *dst, int out)
{
    for (int64_t b = 0; b < B; b++) {
        const size_t bytes = (size_t)(n * dm) * sizeof(float);
        if (out)
            memcpy(dst + (b * L + t0) * dm, src + b * n * dm, bytes);
        else
            memcpy(dst + b * n * dm, src + (b * L + t0) * dm, bytes);
    }
}

/* Floats of a zeroed stand-in state for B sequences (a forward without a
 * state that runs in several slabs carries its state here). */
static int64_t temp_state_count(const ssm_mamba2 *m, int64_t B)
{
    return B * m->dc * m->k + B * m->h * m->p * m->n;
}

static void temp_state_init(const ssm_mamba2 *m, int64_t B, float *mem,
                            ssm_mamba2_state *ts)
{
    memset(ts, 0, sizeof *ts);
    ts->conv = mem;
    ts->ssm = mem + B * m->dc * m->k;
    memset(mem, 0, (size_t)temp_state_count(m, B) * sizeof(float));
}

ssm_status ssm_mamba2_forward(const ssm_mamba2 *blk, ssm_mamba2_state *st,
                              int64_t batch, int64_t L, const float *x, float *y)
{
    SSM_TRY(forward_check(blk, st, batch, L, x, y));
    const int64_t S = L < SLAB ? L : SLAB;
    const int64_t nws = block_ws_count(blk, batch, S);
    int64_t nio = 0, nst = 0, tot;
    if (nws < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (L > S) {
        nio = 2 * batch * S * blk->dm;     /* fits: forward_check bounded B L Dm */
        nst = st ? 0 : temp_state_count(blk, batch);
    }
    if (!ssmi_sizes_ok(&tot, sizeof(float), 1, nws + nio + nst))
        return SSM_FAIL(SSM_ERR_ARG);
    float *ws = ssmi_alloc((size_t)tot, sizeof(float));
    if (!ws)
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status e = SSM_OK;
    if (L == S) {
        e = block_forward_ws(blk, st, batch, L, x, y, ws);
    } else {
        float *xin = ws + nws, *yout = xin + batch * S * blk->dm;
        ssm_mamba2_state tmp;
        ssm_mamba2_state *sp = st;
        if (!st) {
            temp_state_init(blk, batch, yout + batch * S * blk->dm, &tmp);
            sp = &tmp;
        }
        for (int64_t t0 = 0; t0 < L && e == SSM_OK; t0 += S) {
            const int64_t n = L - t0 < S ? L - t0 : S;
            slab_copy(batch, L, blk->dm, t0, n, x, xin, 0);
            e = block_forward_ws(blk, sp, batch, n, xin, yout, ws);
            if (e == SSM_OK)
                slab_copy(batch, L, blk->dm, t0, n, yout, y, 1);
        }
    }
    ssmi_free(ws);
    return e;
}

/* ------------------------------------------------------------------ */
/* block step                                                         */

/* A step's per-token buffers ([B] rows each; pre: [Dc]). */
typedef struct step_bufs {
    float *zx, *xs, *bs, *cs, *dts, *zc, *ys, *pre;
} step_bufs;

/* One layer's step for B tokens.  The states: token b's are row b of st
 * (slots NULL), or row 0 of slots[b]->st[layer] (the language model's
 * slots, each its own stack state): the products run over all B tokens
 * either way, so the weights are read once; the rest is per token, so
 * a token's bits are the same in either form. */
static ssm_status block_step_ws(const ssm_mamba2 *m, ssm_mamba2_state *st,
                                ssm_mamba2_stack_state *const *slots, int64_t layer,
                                const step_bufs *w, int64_t B, const float *x, float *y)
{
    const int64_t dp = m->dp, dc = m->dc, di = m->di, k = m->k;
    const int64_t gn = m->g * m->n, h = m->h;
    mm_xwt(B, dp, m->dm, x, m->dm, m->par[SSM_MAMBA2_IN_PROJ], m->dm, w->zx, dp);
    const float *cb = m->par[SSM_MAMBA2_CONV_B];
    for (int64_t b = 0; b < B; b++) {
        const float *zx = w->zx + b * dp;
        float *sb = slots ? ((ssm_mamba2_state *)slots[b]->st[layer])->conv
                          : st->conv + b * dc * k;
        float *o = w->pre;
        /* shift the window, append the new input, then the same sum as the
         * prompt path: bias + tap 0 + tap 1 + ... */
        for (int64_t c = 0; c < dc; c++) {
            float *wc = sb + c * k;
            for (int64_t j = 0; j + 1 < k; j++)
                wc[j] = wc[j + 1];
            wc[k - 1] = zx[di + c];
        }
        for (int64_t c = 0; c < dc; c++)
            o[c] = cb[c];
        for (int64_t j = 0; j < k; j++) {
            const float *wj = m->convT + j * dc;
            for (int64_t c = 0; c < dc; c++) {
                const float pr = wj[c] * sb[c * k + j];
                o[c] = o[c] + pr;
            }
        }
        silu_vec(o, o, dc);
        split_xbc(m, o, w->xs + b * di, w->bs + b * gn, w->cs + b * gn);
        for (int64_t i = 0; i < h; i++)
            w->dts[b * h + i] = zx[dc + di + i];
        if (m->norm == SSM_MAMBA2_NORM_NONE)
            memcpy(w->zc + b * di, zx, (size_t)di * sizeof(float));
    }
    if (slots) {
        for (int64_t b = 0; b < B; b++) {
            ssm_ssd_args a = scan_args(m, 1, 1, w->xs + b * di, w->dts + b * h,
                                       w->bs + b * gn, w->cs + b * gn, w->zc + b * di,
                                       w->ys + b * di,
                                       ((ssm_mamba2_state *)slots[b]->st[layer])->ssm);
            SSM_TRY(ssm_ssd_step(&a));
        }
    } else {
        ssm_ssd_args a = scan_args(m, B, 1, w->xs, w->dts, w->bs, w->cs, w->zc, w->ys,
                                   st->ssm);
        SSM_TRY(ssm_ssd_step(&a));
    }
    if (m->norm != SSM_MAMBA2_NORM_NONE)
        for (int64_t b = 0; b < B; b++)
            gated_norm_row(m, w->ys + b * di, w->zx + b * dp, w->zc + b * di);
    mm_xwt(B, m->dm, di, w->ys, di, m->par[SSM_MAMBA2_OUT_PROJ], di, y, m->dm);
    return SSM_OK;
}

static step_bufs state_bufs(const ssm_mamba2_state *st)
{
    step_bufs w = { st->zx, st->xs, st->bs, st->cs, st->dts, st->zc, st->ys, st->pre };
    return w;
}

ssm_status ssm_mamba2_step(const ssm_mamba2 *blk, ssm_mamba2_state *st,
                           int64_t batch, const float *x, float *y)
{
    if (!blk || !st || !x || !y || batch < 1 || batch > st->maxb ||
        !state_matches(st, blk))
        return SSM_FAIL(SSM_ERR_ARG);
    const step_bufs w = state_bufs(st);
    return block_step_ws(blk, st, NULL, 0, &w, batch, x, y);
}

/* ------------------------------------------------------------------ */
/* stack                                                              */

/* The block hooks of the shared stack code (stack_common.h). */
static ssm_status ops_create(void **b, const void *cfg, uint64_t seed)
{
    ssm_mamba2 *m = NULL;
    ssm_status e = ssm_mamba2_create(&m, cfg, seed);
    *b = m;
    return e;
}
static void ops_destroy(void *b) { ssm_mamba2_destroy(b); }
static float *ops_out_proj(void *b, int64_t *count)
{
    ssm_mamba2 *m = b;
    *count = m->cnt[SSM_MAMBA2_OUT_PROJ];
    return m->par[SSM_MAMBA2_OUT_PROJ];
}
static ssm_status ops_state_create(void **s, const void *b, int64_t maxb)
{
    ssm_mamba2_state *st = NULL;
    ssm_status e = ssm_mamba2_state_create(&st, b, maxb);
    *s = st;
    return e;
}
static void ops_state_destroy(void *s) { ssm_mamba2_state_destroy(s); }
static ssm_status ops_state_reset(void *s) { return ssm_mamba2_state_reset(s); }
static int ops_state_matches(const void *s, const void *b) { return state_matches(s, b); }

static const ssmi_stack_ops stack_ops = {
    ops_create, ops_destroy, ops_out_proj, ops_state_create,
    ops_state_destroy, ops_state_reset, ops_state_matches
};

void ssm_mamba2_stack_destroy(ssm_mamba2_stack *stk)
{
    if (!stk)
        return;
    ssmi_stack_blocks_free(&stack_ops, stk->nl, stk->blk, stk->norm);
    ssmi_free(stk);
}

ssm_status ssm_mamba2_stack_create(ssm_mamba2_stack **stk,
                                   const ssm_mamba2_config *cfg,
                                   int64_t n_layers, uint64_t seed)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    *stk = NULL;
    ssm_mamba2_config c;
    int64_t nn;
    SSM_TRY(ssm_mamba2_config_resolve(cfg, &c));
    if (n_layers < 1 || n_layers > INT_MAX ||
        !ssmi_sizes_ok(&nn, sizeof(float), 2, n_layers + 1, c.d_model))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba2_stack *s = ssmi_calloc(1, sizeof *s);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    s->nl = n_layers;
    s->dm = c.d_model;
    ssm_status e = ssmi_stack_blocks_create(&stack_ops, &c, n_layers, c.d_model,
                                            seed, &s->blk, &s->norm);
    if (e != SSM_OK) {
        ssmi_free(s);
        return e;
    }
    *stk = s;
    return SSM_OK;
}

ssm_status ssm_mamba2_stack_layers(const ssm_mamba2_stack *stk, int64_t *n_layers)
{
    if (!stk || !n_layers)
        return SSM_FAIL(SSM_ERR_ARG);
    *n_layers = stk->nl;
    return SSM_OK;
}

ssm_status ssm_mamba2_stack_block(ssm_mamba2_stack *stk, int64_t layer,
                                  ssm_mamba2 **blk)
{
    if (!stk || !blk || layer < 0 || layer >= stk->nl)
        return SSM_FAIL(SSM_ERR_ARG);
    *blk = stk->blk[layer];
    return SSM_OK;
}

ssm_status ssm_mamba2_stack_set_norm(ssm_mamba2_stack *stk, int64_t layer,
                                     const float *w, int64_t count)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_norm_set(stk->norm, stk->nl, stk->dm, layer, w, count);
}

ssm_status ssm_mamba2_stack_get_norm(const ssm_mamba2_stack *stk, int64_t layer,
                                     float *w, int64_t count)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_norm_get(stk->norm, stk->nl, stk->dm, layer, w, count);
}

void ssm_mamba2_stack_state_destroy(ssm_mamba2_stack_state *st)
{
    if (!st)
        return;
    ssmi_stack_states_free(&stack_ops, st->nl, st->st, st->normed, st->out);
    ssmi_free(st);
}

ssm_status ssm_mamba2_stack_state_create(ssm_mamba2_stack_state **st,
                                         const ssm_mamba2_stack *stk,
                                         int64_t max_batch)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    *st = NULL;
    int64_t nb;
    if (!stk || max_batch < 1 || max_batch > INT_MAX ||
        !ssmi_sizes_ok(&nb, sizeof(float), 2, max_batch, stk->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba2_stack_state *s = ssmi_calloc(1, sizeof *s);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    s->nl = stk->nl; s->dm = stk->dm; s->maxb = max_batch;
    ssm_status e = ssmi_stack_states_create(&stack_ops, stk->nl, stk->blk,
                                            max_batch, nb, &s->st, &s->normed,
                                            &s->out);
    if (e != SSM_OK) {
        ssmi_free(s);
        return e;
    }
    *st = s;
    return SSM_OK;
}

ssm_status ssm_mamba2_stack_state_reset(ssm_mamba2_stack_state *st)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_states_reset(&stack_ops, st->nl, st->st);
}

ssm_status ssm_mamba2_stack_state_layer(ssm_mamba2_stack_state *st,
                                        int64_t layer, ssm_mamba2_state **lst)
{
    if (!st || !lst || layer < 0 || layer >= st->nl)
        return SSM_FAIL(SSM_ERR_ARG);
    *lst = st->st[layer];
    return SSM_OK;
}

static int stack_state_matches(const ssm_mamba2_stack_state *st,
                               const ssm_mamba2_stack *stk)
{
    return st->nl == stk->nl && st->dm == stk->dm &&
           ssmi_stack_states_match(&stack_ops, stk->nl, st->st, stk->blk);
}

/* out = in / sqrt(mean(in^2) + 1e-5) * w per row of dm (Mamba's backbone
 * RMSNorm), sums in double, one writer per row. in == out allowed. */
static void rmsnorm_row(int64_t dm, const float *v, float *o, const float *w)
{
    double ss = 0.0;
    for (int64_t j = 0; j < dm; j++)
        ss += (double)v[j] * v[j];
    const float sc = (float)(1.0 / sqrt(ss / (double)dm + RMS_EPS_STACK));
    for (int64_t j = 0; j < dm; j++)
        o[j] = (v[j] * sc) * w[j];
}

/* The parallel regions below are entered only when they pay: not with
 * `#pragma omp parallel for if (...)`, for libgomp allocates a team for
 * every region it enters, even one the if clause makes serial, and the
 * step path must not allocate (the language model's decoding step runs
 * through here). */
static void rmsnorm_rows(int64_t rows, int64_t dm, const float *in, float *out,
                         const float *w)
{
    if (rows * dm > PAR_MIN) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows; i++)
            rmsnorm_row(dm, in + i * dm, out + i * dm, w);
    } else {
        for (int64_t i = 0; i < rows; i++)
            rmsnorm_row(dm, in + i * dm, out + i * dm, w);
    }
}

static void add_inplace(int64_t n, float *y, const float *a)
{
    if (n > 4 * PAR_MIN) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] += a[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] += a[i];
    }
}

ssm_status ssm_mamba2_stack_forward(const ssm_mamba2_stack *stk,
                                    ssm_mamba2_stack_state *st, int64_t batch,
                                    int64_t L, const float *x, float *y)
{
    int64_t ntok, nact, nblk = 0, nst = 0, tot;
    if (!stk || !x || !y || batch < 1 || L < 1 ||
        !ssmi_sizes_ok(&ntok, sizeof(float), 2, batch, L) ||
        !ssmi_sizes_ok(&nact, sizeof(float), 2, ntok, stk->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    if (st && (!stack_state_matches(st, stk) || batch > st->maxb))
        return SSM_FAIL(SSM_ERR_ARG);
    /* Slab by slab through every layer (states carried), so memory is one
     * slab of activations whatever L. */
    const int64_t S = L < SLAB ? L : SLAB, nacts = batch * S * stk->dm;
    for (int64_t l = 0; l < stk->nl; l++) {
        const int64_t c = block_ws_count(stk->blk[l], batch, S);
        if (c < 0)
            return SSM_FAIL(SSM_ERR_ARG);
        if (c > nblk)
            nblk = c;
        if (!st)
            nst += temp_state_count(stk->blk[l], batch);
    }
    if (__builtin_add_overflow(nblk, 3 * nacts, &tot) ||
        __builtin_add_overflow(tot, nst, &tot) ||
        !ssmi_sizes_ok(&tot, sizeof(float), 1, tot))
        return SSM_FAIL(SSM_ERR_ARG);
    float *ws = ssmi_alloc((size_t)tot, sizeof(float));
    ssm_mamba2_state *tmp = st ? NULL : ssmi_alloc((size_t)stk->nl, sizeof *tmp);
    if (!ws || (!st && !tmp)) {
        ssmi_free(ws);
        ssmi_free(tmp);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    float *h = ws, *normed = ws + nacts, *out = ws + 2 * nacts, *bws = ws + 3 * nacts;
    if (!st) {
        float *mem = bws + nblk;
        for (int64_t l = 0; l < stk->nl; l++) {
            temp_state_init(stk->blk[l], batch, mem, &tmp[l]);
            mem += temp_state_count(stk->blk[l], batch);
        }
    }
    ssm_status e = SSM_OK;
    for (int64_t t0 = 0; t0 < L && e == SSM_OK; t0 += S) {
        const int64_t n = L - t0 < S ? L - t0 : S, rows = batch * n;
        slab_copy(batch, L, stk->dm, t0, n, x, h, 0);
        /* Pre-norm residual blocks: h += block(rmsnorm(h)); then norm_f. */
        for (int64_t l = 0; l < stk->nl && e == SSM_OK; l++) {
            rmsnorm_rows(rows, stk->dm, h, normed, stk->norm + l * stk->dm);
            e = block_forward_ws(stk->blk[l], st ? st->st[l] : &tmp[l], batch, n,
                                 normed, out, bws);
            if (e == SSM_OK)
                add_inplace(rows * stk->dm, h, out);
        }
        if (e == SSM_OK) {
            rmsnorm_rows(rows, stk->dm, h, h, stk->norm + stk->nl * stk->dm);
            slab_copy(batch, L, stk->dm, t0, n, h, y, 1);
        }
    }
    ssmi_free(ws);
    ssmi_free(tmp);
    return e;
}

ssm_status ssm_mamba2_stack_step(const ssm_mamba2_stack *stk,
                                 ssm_mamba2_stack_state *st, int64_t batch,
                                 const float *x, float *y)
{
    if (!stk || !st || !x || !y || batch < 1 || batch > st->maxb ||
        !stack_state_matches(st, stk))
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t nact = batch * stk->dm;
    if (y != x)
        memmove(y, x, (size_t)nact * sizeof(float));
    for (int64_t l = 0; l < stk->nl; l++) {
        rmsnorm_rows(batch, stk->dm, y, st->normed, stk->norm + l * stk->dm);
        const step_bufs w = state_bufs(st->st[l]);
        SSM_TRY(block_step_ws(stk->blk[l], st->st[l], NULL, 0, &w, batch, st->normed, st->out));
        add_inplace(nact, y, st->out);
    }
    rmsnorm_rows(batch, stk->dm, y, y, stk->norm + stk->nl * stk->dm);
    return SSM_OK;
}

/* Per token: zx (Dp), xs, zc, ys (Di), bs, cs (G N), dts (H); then normed
 * and out (Dm); then pre (Dc). */
int64_t ssmi_mamba2_stack_slots_ws(const ssm_mamba2_stack *stk, int64_t max_batch)
{
    if (!stk || max_batch < 1)
        return -1;
    const ssm_mamba2 *m = stk->blk[0];
    const int64_t per = m->dp + 3 * m->di + 2 * m->g * m->n + m->h + 2 * m->dm;
    int64_t n = 0;
    if (!ssmi_sizes_ok(&n, sizeof(float), 2, max_batch, per) ||
        !ssmi_sizes_ok(&n, sizeof(float), 1, n + m->dc))
        return -1;
    return n;
}

ssm_status ssmi_mamba2_stack_step_slots(const ssm_mamba2_stack *stk,
                                        ssm_mamba2_stack_state *const *slots,
                                        int64_t nb, float *ws, const float *x, float *y)
{
    if (!stk || !slots || !ws || !x || !y || nb < 1)
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t b = 0; b < nb; b++)
        if (!slots[b] || !stack_state_matches(slots[b], stk))
            return SSM_FAIL(SSM_ERR_ARG);
    const ssm_mamba2 *m = stk->blk[0];
    const int64_t gn = m->g * m->n, dm = stk->dm, nact = nb * dm;
    step_bufs w;
    float *p = ws;
    w.zx = p; p += nb * m->dp;
    w.xs = p; p += nb * m->di;
    w.zc = p; p += nb * m->di;
    w.ys = p; p += nb * m->di;
    w.bs = p; p += nb * gn;
    w.cs = p; p += nb * gn;
    w.dts = p; p += nb * m->h;
    float *normed = p, *out = p + nact;
    w.pre = out + nact;
    if (y != x)
        memmove(y, x, (size_t)nact * sizeof(float));
    for (int64_t l = 0; l < stk->nl; l++) {
        rmsnorm_rows(nb, dm, y, normed, stk->norm + l * dm);
        SSM_TRY(block_step_ws(stk->blk[l], NULL, slots, l, &w, nb, normed, out));
        add_inplace(nact, y, out);
    }
    rmsnorm_rows(nb, dm, y, y, stk->norm + stk->nl * dm);
    return SSM_OK;
}
