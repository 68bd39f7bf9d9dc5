/*
 * mamba.c -- the Mamba block (Gu and Dao 2023, section 3.4, figure 3 right)
 * and Mamba's residual backbone (pre-norm blocks with RMSNorm), on top of
 * ssm_selective_scan / ssm_selective_step.  Layouts: include/ssm/mamba.h.
 *
 * Matrix products: CBLAS sgemm/sgemv only (never complex BLAS: Debian's
 * OpenBLAS zgemv is defective).  BLAS is never called from inside one of
 * our OpenMP regions, so the BLAS pool and libgomp's pool never nest.
 *
 * Prompt path (one sequence b at a time, L tokens), chosen so that the
 * scan's channel-major layout [Di][L] comes straight out of the GEMMs
 * (docs/prefill-speed.md):
 *   xz[2Di][L]: x half = Win_x x^T, z half = Win_z x^T
 *   u [Di][L] = silu(causal depthwise conv of the x half + bias), one pass,
 *               left context from the conv state (src/layers/prefill.c)
 *   xdbl[R+2N][L] = Wx u  (dt, B, C rows: one sgemm)
 *   delta[Di][L] = Wdt xdbl[0:R]
 *   ys = selective_scan(...)   [Di][L], into the dead x half of xz
 *   y [L][Dm] = ys^T Wout^T + beta y  (the stack: beta = 1, the residual)
 * Step path (one token, [B][...] rows): the same products as x W^T by the
 * weight-row-once kernel of gemv.h for B <= 16 (sgemm above), the whole
 * step in one OpenMP region of four stages a layer (block_step_team).
 */
#define _GNU_SOURCE 1   /* RTLD_DEFAULT, RTLD_NOLOAD, dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <cblas.h>

#include "layers/layers_internal.h"
#include "layers/prefill_internal.h"
#include "layers/gemv.h"
#include "layers/mamba_step.h"
#include "layers/stack_common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------ */
/* BLAS identification                                                */

typedef int (*ssm_int_fn)(void);
typedef char *(*ssm_str_fn)(void);

/* Look up an OpenBLAS symbol: first in the global scope, then (libssm
 * itself dlopen'ed RTLD_LOCAL) in the library that provides cblas_sgemm. */
static void *blas_sym(const char *name)
{
    void *s = dlsym(RTLD_DEFAULT, name);
    if (s)
        return s;
    void (*f)(void) = (void (*)(void))cblas_sgemm;
    void *addr;
    Dl_info info;
    memcpy(&addr, &f, sizeof addr);
    if (!dladdr(addr, &info) || !info.dli_fname)
        return NULL;
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h)
        return NULL;
    s = dlsym(h, name);
    dlclose(h);   /* RTLD_NOLOAD: only drops the reference just taken */
    return s;
}

ssm_blas_threading ssm_blas_threading_model(void)
{
    void *s = blas_sym("openblas_get_parallel");
    ssm_int_fn fn;
    if (!s)
        return SSM_BLAS_THREADS_UNKNOWN;
    memcpy(&fn, &s, sizeof fn);
    switch (fn()) {
    case 0: return SSM_BLAS_THREADS_SEQUENTIAL;
    case 1: return SSM_BLAS_THREADS_PTHREADS;
    case 2: return SSM_BLAS_THREADS_OPENMP;
    default: return SSM_BLAS_THREADS_UNKNOWN;
    }
}

ssm_status ssm_blas_describe(char *buf, int64_t size)
{
    if (!buf || size < 1)
        return SSM_FAIL(SSM_ERR_ARG);
    size_t cap = size > 4096 ? 4096 : (size_t)size;
    void *s = blas_sym("openblas_get_config");
    if (!s) {
        snprintf(buf, cap, "unknown CBLAS");
        return SSM_OK;
    }
    ssm_str_fn fn;
    memcpy(&fn, &s, sizeof fn);
    const char *cfg = fn();
    /* openblas_get_config: "OpenBLAS 0.3.21 DYNAMIC_ARCH ...": keep the
     * first two words, the name and the version. */
    char head[64] = "OpenBLAS";
    if (cfg) {
        size_t n = 0;
        int words = 0;
        while (cfg[n] && n < sizeof head - 1) {
            if (cfg[n] == ' ' && ++words == 2)
                break;
            n++;
        }
        memcpy(head, cfg, n);
        head[n] = '\0';
    }
    const char *kind;
    switch (ssm_blas_threading_model()) {
    case SSM_BLAS_THREADS_SEQUENTIAL: kind = "sequential"; break;
    case SSM_BLAS_THREADS_PTHREADS:   kind = "pthreads"; break;
    case SSM_BLAS_THREADS_OPENMP:     kind = "OpenMP"; break;
    default:                          kind = "threading unknown"; break;
    }
    snprintf(buf, cap, "%s (%s)", head, kind);
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* objects                                                            */

struct ssm_mamba {
    int64_t dm, di, n, k, r, xr;     /* xr = R + 2N: rows of x_proj */
    int64_t cnt[SSM_MAMBA_NPARAMS];
    float *p[SSM_MAMBA_NPARAMS];
    float *A;                        /* [Di][N] = -exp(A_log) */
    float *A2, *amax;                /* its step table (mamba_step.h), in A's block */
};

struct ssm_mamba_state {
    int64_t dm, di, n, k, r, maxb;
    float *conv;     /* [maxB][Di][K]: last K pre-conv inputs, oldest first */
    float *h;        /* [maxB][Di][N] */
    float *ws;       /* step workspace, one block */
    float *xi, *z, *u, *dtl, *bt, *ct, *delta, *ys;   /* views into ws */
};

struct ssm_mamba_stack {
    int64_t nl, dm;
    void **blk;          /* [nl] ssm_mamba *, void * for stack_common.h */
    float *norm;         /* [nl + 1][Dm] */
};

struct ssm_mamba_stack_state {
    int64_t nl, dm, maxb;
    void **st;              /* [nl] ssm_mamba_state * */
    float *normed, *out;    /* [maxB][Dm] each */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* Stage timing for the _ex functions: t0 is the caller's clock variable. */
#define TM_START(tm, t0) do { if (tm) (t0) = now_s(); } while (0)
#define TM_LAP(tm, t0, field) do { if (tm) { double tm_t1_ = now_s(); \
    (tm)->field += tm_t1_ - (t0); (t0) = tm_t1_; } } while (0)

/* ------------------------------------------------------------------ */
/* configuration                                                      */

void ssm_mamba_config_init(ssm_mamba_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = (uint32_t)sizeof *cfg;
}

/* The first published layout ends after dt_rank: a caller's struct_size
 * must cover at least that much and at most what this library knows. */
#define SSMI_MAMBA_CONFIG_V1 (offsetof(ssm_mamba_config, dt_rank) + sizeof(int64_t))

ssm_status ssm_mamba_config_resolve(const ssm_mamba_config *cfg,
                                    ssm_mamba_config *out)
{
    if (!cfg || !out)
        return SSM_FAIL(SSM_ERR_ARG);
    if (cfg->struct_size < SSMI_MAMBA_CONFIG_V1 || cfg->struct_size > sizeof *cfg)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    memcpy(&c, cfg, cfg->struct_size);
    c.struct_size = (uint32_t)sizeof c;
    if (c.d_model < 1 || c.d_state < 0 || c.d_conv < 0 || c.expand < 0 ||
        c.dt_rank < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (c.d_state == 0) c.d_state = 16;
    if (c.d_conv == 0) c.d_conv = 4;
    if (c.expand == 0) c.expand = 2;
    if (c.dt_rank == 0) c.dt_rank = c.d_model / 16 + (c.d_model % 16 != 0);
    int64_t di, two_di, xr, tmp;
    if (!ssmi_mul_ok(c.expand, c.d_model, &di) || !ssmi_mul_ok(2, di, &two_di) ||
        __builtin_add_overflow(c.dt_rank, c.d_state, &xr) ||
        __builtin_add_overflow(xr, c.d_state, &xr))
        return SSM_FAIL(SSM_ERR_ARG);
    /* The BLAS takes int dimensions. */
    if (two_di > INT_MAX || c.d_model > INT_MAX || xr > INT_MAX ||
        c.d_conv > INT_MAX / 2)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&tmp, sizeof(float), 2, two_di, c.d_model) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, xr, di) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, di, c.d_state) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, di, c.d_conv) ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 2, di, c.dt_rank))
        return SSM_FAIL(SSM_ERR_ARG);
    *out = c;
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* block: create, parameters                                          */

void ssm_mamba_destroy(ssm_mamba *blk)
{
    if (!blk)
        return;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
        ssmi_free(blk->p[i]);
    ssmi_free(blk->A);
    ssmi_free(blk);
}

static void fill_uniform(ssmi_rng *g, float *x, int64_t n, double bound)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(bound * (2.0 * ssmi_rng_uniform(g) - 1.0));
}

static void update_A(ssm_mamba *m)
{
    const float *al = m->p[SSM_MAMBA_A_LOG];
    for (int64_t i = 0; i < m->di * m->n; i++)
        m->A[i] = -expf(al[i]);
    ssmi_mamba_step_a2(m->di, m->n, m->A, m->A2, m->amax);
}

ssm_status ssm_mamba_create(ssm_mamba **blk, const ssm_mamba_config *cfg,
                            uint64_t seed)
{
    if (!blk)
        return SSM_FAIL(SSM_ERR_ARG);
    *blk = NULL;
    ssm_mamba_config c;
    SSM_TRY(ssm_mamba_config_resolve(cfg, &c));
    ssm_mamba *m = ssmi_calloc(1, sizeof *m);
    if (!m)
        return SSM_FAIL(SSM_ERR_NOMEM);
    m->dm = c.d_model; m->di = c.expand * c.d_model; m->n = c.d_state;
    m->k = c.d_conv; m->r = c.dt_rank; m->xr = m->r + 2 * m->n;
    m->cnt[SSM_MAMBA_IN_PROJ] = 2 * m->di * m->dm;
    m->cnt[SSM_MAMBA_CONV_W] = m->di * m->k;
    m->cnt[SSM_MAMBA_CONV_B] = m->di;
    m->cnt[SSM_MAMBA_X_PROJ] = m->xr * m->di;
    m->cnt[SSM_MAMBA_DT_PROJ_W] = m->di * m->r;
    m->cnt[SSM_MAMBA_DT_PROJ_B] = m->di;
    m->cnt[SSM_MAMBA_A_LOG] = m->di * m->n;
    m->cnt[SSM_MAMBA_D] = m->di;
    m->cnt[SSM_MAMBA_OUT_PROJ] = m->dm * m->di;
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        m->p[i] = ssmi_alloc((size_t)m->cnt[i], sizeof(float));
        if (!m->p[i]) {
            ssm_mamba_destroy(m);
            return SSM_FAIL(SSM_ERR_NOMEM);
        }
    }
    m->A = ssmi_alloc((size_t)((2 * m->n + 1) * m->di), sizeof(float));
    if (!m->A) {
        ssm_mamba_destroy(m);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    m->A2 = m->A + m->di * m->n;
    m->amax = m->A2 + m->di * m->n;

    /* Default initialisation of Mamba's reference implementation (fixed
     * draw order: the tensors in enum order). */
    ssmi_rng g = { seed };
    fill_uniform(&g, m->p[SSM_MAMBA_IN_PROJ], m->cnt[SSM_MAMBA_IN_PROJ],
                 1.0 / sqrt((double)m->dm));
    fill_uniform(&g, m->p[SSM_MAMBA_CONV_W], m->cnt[SSM_MAMBA_CONV_W],
                 1.0 / sqrt((double)m->k));
    fill_uniform(&g, m->p[SSM_MAMBA_CONV_B], m->cnt[SSM_MAMBA_CONV_B],
                 1.0 / sqrt((double)m->k));
    fill_uniform(&g, m->p[SSM_MAMBA_X_PROJ], m->cnt[SSM_MAMBA_X_PROJ],
                 1.0 / sqrt((double)m->di));
    fill_uniform(&g, m->p[SSM_MAMBA_DT_PROJ_W], m->cnt[SSM_MAMBA_DT_PROJ_W],
                 1.0 / sqrt((double)m->r));
    /* dt log-uniform in [1e-3, 1e-1], floored at 1e-4, stored through the
     * inverse of softplus so that softplus(bias) = dt at zero input
     * (Mamba, section 3.6 / appendix: dt initialisation). */
    for (int64_t d = 0; d < m->di; d++) {
        double lo = log(1e-3), hi = log(1e-1);
        double dt = exp(lo + (hi - lo) * ssmi_rng_uniform(&g));
        if (dt < 1e-4)
            dt = 1e-4;
        m->p[SSM_MAMBA_DT_PROJ_B][d] = (float)(dt + log(-expm1(-dt)));
    }
    /* S4D-Real: A = -(n + 1) (Mamba, section 3.6). */
    for (int64_t d = 0; d < m->di; d++)
        for (int64_t n = 0; n < m->n; n++)
            m->p[SSM_MAMBA_A_LOG][d * m->n + n] = (float)log((double)(n + 1));
    for (int64_t d = 0; d < m->di; d++)
        m->p[SSM_MAMBA_D][d] = 1.0f;
    fill_uniform(&g, m->p[SSM_MAMBA_OUT_PROJ], m->cnt[SSM_MAMBA_OUT_PROJ],
                 1.0 / sqrt((double)m->di));
    update_A(m);
    *blk = m;
    return SSM_OK;
}

ssm_status ssm_mamba_get_config(const ssm_mamba *blk, ssm_mamba_config *cfg)
{
    if (!blk || !cfg)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_config_init(cfg);
    cfg->d_model = blk->dm;
    cfg->d_state = blk->n;
    cfg->d_conv = blk->k;
    cfg->expand = blk->di / blk->dm;
    cfg->dt_rank = blk->r;
    return SSM_OK;
}

static int param_ok(int p)
{
    return p >= 0 && p < SSM_MAMBA_NPARAMS;
}

ssm_status ssm_mamba_param_count(const ssm_mamba *blk, ssm_mamba_param p,
                                 int64_t *count)
{
    if (!blk || !count || !param_ok((int)p))
        return SSM_FAIL(SSM_ERR_ARG);
    *count = blk->cnt[p];
    return SSM_OK;
}

ssm_status ssm_mamba_set_param(ssm_mamba *blk, ssm_mamba_param p,
                               const float *src, int64_t count)
{
    if (!blk || !src || !param_ok((int)p) || count != blk->cnt[p])
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; i < count; i++) {
        if (!isfinite(src[i]))
            return SSM_FAIL(SSM_ERR_ARG);
        if (p == SSM_MAMBA_A_LOG && !isfinite(expf(src[i])))
            return SSM_FAIL(SSM_ERR_ARG);
    }
    memcpy(blk->p[p], src, (size_t)count * sizeof(float));
    if (p == SSM_MAMBA_A_LOG)
        update_A(blk);
    return SSM_OK;
}

ssm_status ssm_mamba_get_param(const ssm_mamba *blk, ssm_mamba_param p,
                               float *dst, int64_t count)
{
    if (!blk || !dst || !param_ok((int)p) || count != blk->cnt[p])
        return SSM_FAIL(SSM_ERR_ARG);
    memcpy(dst, blk->p[p], (size_t)count * sizeof(float));
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* state                                                              */

void ssm_mamba_state_destroy(ssm_mamba_state *st)
{
    if (!st)
        return;
    ssmi_free(st->conv);
    ssmi_free(st->h);
    ssmi_free(st->ws);
    ssmi_free(st);
}

ssm_status ssm_mamba_state_create(ssm_mamba_state **st, const ssm_mamba *blk,
                                  int64_t max_batch)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    *st = NULL;
    if (!blk || max_batch < 1 || max_batch > INT_MAX)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t nconv, nh, per, nws;
    /* per-sequence step workspace: xi, z, u, delta, ys (Di each), dtl (R),
     * bt, ct (N each) */
    per = 5 * blk->di + blk->xr;
    if (!ssmi_sizes_ok(&nconv, sizeof(float), 3, max_batch, blk->di, blk->k) ||
        !ssmi_sizes_ok(&nh, sizeof(float), 3, max_batch, blk->di, blk->n) ||
        !ssmi_sizes_ok(&nws, sizeof(float), 2, max_batch, per))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_state *s = ssmi_calloc(1, sizeof *s);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    s->dm = blk->dm; s->di = blk->di; s->n = blk->n; s->k = blk->k;
    s->r = blk->r; s->maxb = max_batch;
    s->conv = ssmi_alloc((size_t)nconv, sizeof(float));
    s->h = ssmi_alloc((size_t)nh, sizeof(float));
    s->ws = ssmi_alloc((size_t)nws, sizeof(float));
    if (!s->conv || !s->h || !s->ws) {
        ssm_mamba_state_destroy(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    float *w = s->ws;
    int64_t bd = max_batch * blk->di;
    s->xi = w; w += bd;
    s->z = w; w += bd;
    s->u = w; w += bd;
    s->delta = w; w += bd;
    s->ys = w; w += bd;
    s->dtl = w; w += max_batch * blk->r;
    s->bt = w; w += max_batch * blk->n;
    s->ct = w;
    memset(s->conv, 0, (size_t)nconv * sizeof(float));
    memset(s->h, 0, (size_t)nh * sizeof(float));
    *st = s;
    return SSM_OK;
}

ssm_status ssm_mamba_state_reset(ssm_mamba_state *st)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    memset(st->conv, 0, (size_t)(st->maxb * st->di * st->k) * sizeof(float));
    memset(st->h, 0, (size_t)(st->maxb * st->di * st->n) * sizeof(float));
    return SSM_OK;
}

ssm_status ssm_mamba_state_get(const ssm_mamba_state *st, int64_t batch,
                               float *conv, float *h)
{
    if (!st || batch < 1 || batch > st->maxb)
        return SSM_FAIL(SSM_ERR_ARG);
    if (conv)
        memcpy(conv, st->conv, (size_t)(batch * st->di * st->k) * sizeof(float));
    if (h)
        memcpy(h, st->h, (size_t)(batch * st->di * st->n) * sizeof(float));
    return SSM_OK;
}

ssm_status ssm_mamba_state_set(ssm_mamba_state *st, int64_t batch,
                               const float *conv, const float *h)
{
    if (!st || batch < 1 || batch > st->maxb)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t nc = batch * st->di * st->k, nh = batch * st->di * st->n;
    for (int64_t i = 0; conv && i < nc; i++)
        if (!isfinite(conv[i]))
            return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; h && i < nh; i++)
        if (!isfinite(h[i]))
            return SSM_FAIL(SSM_ERR_ARG);
    if (conv)
        memcpy(st->conv, conv, (size_t)nc * sizeof(float));
    if (h)
        memcpy(st->h, h, (size_t)nh * sizeof(float));
    return SSM_OK;
}

static int state_matches(const ssm_mamba_state *st, const ssm_mamba *m)
{
    return st->dm == m->dm && st->di == m->di && st->n == m->n &&
           st->k == m->k && st->r == m->r;
}

ssm_status ssm_mamba_state_check(const ssm_mamba_state *st, const ssm_mamba *blk,
                                 int64_t batch)
{
    if (!st || !blk || batch < 1 || batch > st->maxb || !state_matches(st, blk))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* kernels shared by forward and step (same code: same rounding)      */

/* The conv of the step (conv_window, now ssmi_mamba_step_conv in
 * mamba_step.c) sums bias + sum_k w[k] win[k] over the K newest inputs,
 * oldest first, in this order, as the prompt path does. */

/* out[M][N] = X[M][K] W[N][K]^T with row strides ldx, ldw, ldo, for the
 * step: the weight-row-once kernel of gemv.h for a few tokens (sgemm would
 * pack all of W on every call, sgemv would read it M times), sgemm for
 * larger batches. */
#define STEP_GEMV_MAX 16
static void mm_xwt(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                   const float *W, int64_t ldw, float *out, int64_t ldo)
{
    if (M <= STEP_GEMV_MAX)
        ssmi_xwt(M, N, K, X, ldx, W, ldw, out, ldo);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N,
                    (int)K, 1.0f, X, (int)ldx, W, (int)ldw, 0.0f, out,
                    (int)ldo);
}

/* Work threshold below which an OpenMP region costs more than it saves. */
#define PAR_MIN 32768

/* ------------------------------------------------------------------ */
/* block forward                                                      */

/* Tokens per chunk of the prompt path.  A sequence goes through a block
 * PROMPT_CHUNK tokens at a time, the conv window and the SSM state carried
 * from chunk to chunk (the conv's left context and the scan's h0, as a
 * state given by the caller), so that the workspace stops growing with L:
 * at most ~2048 (4 Di + R + 2N) floats, 51 MB at the mamba-130m shape,
 * where a prompt of 2^20 tokens needed 26 GB.  Not smaller: chunks of 512
 * (whose activations stay in a 32 MB L3) made the elementwise stages ~25%
 * faster at L 2048 but the narrower sgemm calls slower, 2-7% at 1 thread
 * and ~12% at 2 (OpenBLAS), so the forward was no faster at 1 thread and
 * 15% slower at 2 (Zen 4, medians of 3, alternating with the unchunked
 * build).  The GEMMs run as fast on 2048 columns as on more. */
#define PROMPT_CHUNK 2048

int64_t ssmi_mamba_prompt_chunk(int64_t L)
{
    return L < PROMPT_CHUNK ? L : PROMPT_CHUNK;
}

/* Workspace floats of a block forward, one batch element and one chunk of
 * Lc = ssmi_mamba_prompt_chunk(L) tokens at a time (the arrays are reused
 * across b and chunks): xz [2Di][Lc], u, delta [Di][Lc], xdbl [R+2N][Lc];
 * the SSM and conv states of every b, carried between chunks and, with a
 * state, staged until all succeeded: hn [B][Di][N], cn [B][Di][K].  -1 on
 * overflow. */
static int64_t block_ws_count(const ssm_mamba *m, int64_t B, int64_t L)
{
    /* 4 Di + R + 2N < 3 INT_MAX: config_resolve bounds 2 Di and R + 2N. */
    const int64_t rows = 4 * m->di + m->xr;
    int64_t per, hs, tot;
    /* L + K - 1 <= INT_MAX: the published bound of the prompt path
     * (ssm/mamba.h), kept although the conv no longer pads its rows. */
    if (L > (int64_t)INT_MAX - (m->k - 1) ||
        !ssmi_mul_ok(rows, ssmi_mamba_prompt_chunk(L), &per) ||
        !ssmi_sizes_ok(&hs, sizeof(float), 3, B, m->di, m->n + m->k) ||
        __builtin_add_overflow(per, hs, &tot) ||
        !ssmi_sizes_ok(&tot, sizeof(float), 1, tot))
        return -1;
    return tot;
}

/* The workspace of one block forward, carved into its arrays (all
 * channel-major, the scan's layout) for chunks of up to L tokens; w.L is
 * then set to each chunk's length (the arrays' row stride). */
typedef struct block_ws {
    int64_t B, L;
    float *xz;              /* [2Di][L] in_proj output: x half, then z half */
    float *ys;              /* [Di][L]  scan output: reuses the x half of xz,
                             * dead once the conv has read it */
    float *u;               /* [Di][L]  conv + silu output, the scan's u */
    float *delta;           /* [Di][L]  dt_proj output (bias added in the scan) */
    float *xdbl;            /* [R+2N][L] x_proj output: dt rows, B rows, C rows */
    float *hn;              /* [B][Di][N] new SSM states (with a state) */
    float *cn;              /* [B][Di][K] new conv windows (with a state) */
} block_ws;

static block_ws block_ws_carve(const ssm_mamba *m, int64_t B, int64_t L, float *ws)
{
    block_ws w;
    const int64_t di = m->di;
    w.B = B; w.L = L;
    w.xz = ws;
    w.ys = w.xz;
    w.u = w.xz + 2 * di * L;
    w.delta = w.u + di * L;
    w.xdbl = w.delta + di * L;
    w.hn = w.xdbl + m->xr * L;
    w.cn = w.hn + B * di * m->n;
    return w;
}

/* The GEMMs of stages 1, 3 and 5 below, one description shared with the
 * prefill benchmark's floor (layers_internal.h). */
void ssmi_mamba_prompt_gemm(const ssmi_mamba_prompt_bufs *p, int stage)
{
    const int di = (int)p->di, dm = (int)p->dm, r = (int)p->r, L = (int)p->L;
    switch (stage) {
    case SSMI_PG_IN:
        for (int half = 0; half < 2; half++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, di, L, dm, 1.0f,
                        p->win + (int64_t)half * di * dm, dm, p->x, dm, 0.0f,
                        p->xz + (int64_t)half * di * L, L);
        break;
    case SSMI_PG_X:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->xr, L, di,
                    1.0f, p->wx, di, p->u, L, 0.0f, p->xdbl, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, di, L, r, 1.0f,
                    p->wdt, r, p->xdbl, L, 0.0f, p->delta, L);
        break;
    case SSMI_PG_OUT:
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, L, dm, di, 1.0f, p->ys,
                    L, p->wout, di, p->beta, p->y, dm);
        break;
    default:
        break;
    }
}

/* The buffers of sequence b's GEMMs: x_b in, y_b out (beta: see stage 5). */
static ssmi_mamba_prompt_bufs prompt_bufs(const ssm_mamba *m, const block_ws *w,
                                          const float *xb, float *yb, float beta)
{
    ssmi_mamba_prompt_bufs p = {
        m->dm, m->di, m->r, m->xr, w->L,
        m->p[SSM_MAMBA_IN_PROJ], m->p[SSM_MAMBA_X_PROJ], m->p[SSM_MAMBA_DT_PROJ_W],
        m->p[SSM_MAMBA_OUT_PROJ],
        xb, w->u, w->ys, w->xz, w->xdbl, w->delta, yb, beta
    };
    return p;
}

/* Stage 1, in_proj of sequence b, channel-major (Mamba, figure 3: the two
 * branches): xz[0:Di] = Win_x x_b^T, xz[Di:2Di] = Win_z x_b^T.  Two calls
 * of M = Di rather than one of 2 Di: x_b^T is packed once more (a 6 MB
 * pass next to two 2.4 GFLOP products at Dm 768, L 2048), and small shapes
 * stay below OpenBLAS's threading threshold (results then independent of
 * the thread count, tests/wbtest_mamba.c). */
static void fwd_in_proj(const ssm_mamba *m, const block_ws *w, const float *xb)
{
    const ssmi_mamba_prompt_bufs p = prompt_bufs(m, w, xb, NULL, 0.0f);
    ssmi_mamba_prompt_gemm(&p, SSMI_PG_IN);
}

/* Stage 2: causal depthwise conv + bias + silu in one pass (left context
 * ctx: the last K-1 inputs of the previous chunk or of the state, or
 * zeros), and the new window in keep (when not NULL; ctx == keep allowed):
 * the next chunk's context, or the one staged for the state. */
static void fwd_conv(const ssm_mamba *m, const block_ws *w, const float *ctx,
                     float *keep)
{
    const int64_t di = m->di, k = m->k;
    ssmi_conv_silu_rows(di, di, w->L, k, w->xz, ctx, m->p[SSM_MAMBA_CONV_W],
                        m->p[SSM_MAMBA_CONV_B], w->u);
    if (keep)
        ssmi_conv_state_keep(di, w->L, k, w->xz, ctx, keep);
}

/* Stage 3: x_proj (dt | B | C rows, one sgemm) and dt_proj, channel-major
 * [.][L] (Mamba, algorithm 2: s_B, s_C, s_Delta are linear in the input). */
static void fwd_x_proj(const ssm_mamba *m, const block_ws *w)
{
    const ssmi_mamba_prompt_bufs p = prompt_bufs(m, w, NULL, NULL, 0.0f);
    ssmi_mamba_prompt_gemm(&p, SSMI_PG_X);
}

/* Stage 4: the selective scan of one chunk (Mamba, algorithm 2): dt =
 * softplus(delta + dt bias), y = (C h + D u) * silu(z); the initial state
 * from h0 (NULL: zeros), the final one into h_last (when not NULL; h0 ==
 * h_last allowed). */
static ssm_status fwd_scan(const ssm_mamba *m, const block_ws *w,
                           const float *h0, float *h_last)
{
    const int64_t di = m->di, L = w->L;
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = 1; a.dim = di; a.dstate = m->n; a.len = L; a.ngroups = 1;
    a.u = w->u; a.delta = w->delta; a.A = m->A;
    a.B = w->xdbl + m->r * L; a.C = w->xdbl + (m->r + m->n) * L;
    a.D = m->p[SSM_MAMBA_D]; a.z = w->xz + di * L;
    a.delta_bias = m->p[SSM_MAMBA_DT_PROJ_B];
    a.delta_softplus = 1;
    a.h0 = h0;
    a.h_last = h_last;
    a.y = w->ys;
    /* Arguments were validated by the caller: only SSM_ERR_NOMEM can come
     * back, and the state is untouched (the new one is staged). */
    return ssm_selective_scan(&a);
}

/* Stage 5, out_proj back to token-major: y_b [L][Dm] = ys^T Wout^T +
 * beta y_b (beta = 1: the stack's residual add, inside the GEMM). */
static void fwd_out_proj(const ssm_mamba *m, const block_ws *w, float *yb,
                         float beta)
{
    const ssmi_mamba_prompt_bufs p = prompt_bufs(m, w, NULL, yb, beta);
    ssmi_mamba_prompt_gemm(&p, SSMI_PG_OUT);
}

/* Block forward (Mamba, section 3.4, figure 3) on a caller's workspace of
 * block_ws_count floats, one sequence at a time and within it one chunk
 * of ssmi_mamba_prompt_chunk(L) tokens at a time (activations [.][Lc]),
 * stage by stage; y = block(x) + beta y.  x may equal y with beta = 0 (a
 * chunk's rows of x are consumed before its rows of y are written, and
 * later chunks read later rows).  The state is written only once every
 * sequence succeeded. */
static ssm_status block_forward_ws(const ssm_mamba *m, int64_t B, int64_t L,
                                   const float *x, float *y, float beta,
                                   ssm_mamba_state *st, float *ws,
                                   ssmi_mamba_timing *tm)
{
    const int64_t lc = ssmi_mamba_prompt_chunk(L);
    block_ws w = block_ws_carve(m, B, lc, ws);
    const int64_t dm = m->dm, di = m->di, n = m->n, k = m->k;
    double t0 = 0.0;
    TM_START(tm, t0);
    for (int64_t b = 0; b < B; b++) {
        float *hb = w.hn + b * di * n, *cb = w.cn + b * di * k;
        for (int64_t c0 = 0; c0 < L; c0 += lc) {
            w.L = L - c0 < lc ? L - c0 : lc;
            /* the states a chunk starts from and leaves for the next one
             * (or for st); the last chunk without st keeps nothing */
            const int first = c0 == 0, keep = st || c0 + w.L < L;
            fwd_in_proj(m, &w, x + (b * L + c0) * dm);
            TM_LAP(tm, t0, gemm);
            fwd_conv(m, &w, first ? (st ? st->conv + b * di * k : NULL) : cb,
                     keep ? cb : NULL);
            TM_LAP(tm, t0, conv);
            fwd_x_proj(m, &w);
            TM_LAP(tm, t0, gemm);
            SSM_TRY(fwd_scan(m, &w, first ? (st ? st->h + b * di * n : NULL) : hb,
                             keep ? hb : NULL));
            TM_LAP(tm, t0, scan);
            fwd_out_proj(m, &w, y + (b * L + c0) * dm, beta);
            TM_LAP(tm, t0, gemm);
        }
    }
    if (st) {
        memcpy(st->h, w.hn, (size_t)(B * m->di * m->n) * sizeof(float));
        memcpy(st->conv, w.cn, (size_t)(B * m->di * m->k) * sizeof(float));
    }
    return SSM_OK;
}

static ssm_status block_forward_check(const ssm_mamba *m, int64_t B, int64_t L,
                                      const float *x, const float *y,
                                      const ssm_mamba_state *st)
{
    int64_t tmp;
    if (!m || !x || !y || B < 1 || L < 1 || B > INT_MAX || L > INT_MAX ||
        !ssmi_sizes_ok(&tmp, sizeof(float), 3, B, L, m->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    if (st && (!state_matches(st, m) || B > st->maxb))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssmi_mamba_forward_ex(const ssm_mamba *blk, ssm_mamba_state *st, int64_t batch,
                                int64_t L, const float *x, float *y,
                                ssmi_mamba_timing *timing)
{
    SSM_TRY(block_forward_check(blk, batch, L, x, y, st));
    int64_t nws = block_ws_count(blk, batch, L);
    if (nws < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    float *ws = ssmi_alloc((size_t)nws, sizeof(float));
    if (!ws)
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssmi_ws_hint_huge(ws, (size_t)nws * sizeof(float));
    ssm_status e = block_forward_ws(blk, batch, L, x, y, 0.0f, st, ws, timing);
    ssmi_free(ws);
    return e;
}

ssm_status ssm_mamba_forward(const ssm_mamba *blk, ssm_mamba_state *st, int64_t batch,
                             int64_t L, const float *x, float *y)
{
    return ssmi_mamba_forward_ex(blk, st, batch, L, x, y, NULL);
}

/* ------------------------------------------------------------------ */
/* block step                                                         */

/* for (var = 0; var < n; var++) body: shared out among the threads of the
 * enclosing OpenMP region when team (every thread of it must get here;
 * the loop ends with the region's barrier), on the calling thread alone
 * otherwise.  Never an orphaned worksharing loop without team: a caller
 * may step its own states from inside its own parallel region. */
#define TEAM_FOR(team, var, n, ...) do {                                     \
        if (team) {                                                          \
            _Pragma("omp for schedule(static)")                              \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        } else {                                                             \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        }                                                                    \
    } while (0)

/* Channels per block of the dt_proj + scan stage: a multiple of 24 (the
 * gemv tiles), small enough that 2-4 threads share 1536 channels evenly. */
#define SCAN_BLOCK 96

static int team_thread0(int team)
{
#ifdef _OPENMP
    return !team || omp_get_thread_num() == 0;
#else
    (void)team;
    return 1;
#endif
}

/* One layer's step for B <= STEP_GEMV_MAX tokens, every stage split into
 * fixed row blocks (shapes only: the bits never depend on the threads).
 * Four stages, each ended by the region's barrier; the elementwise work
 * runs in the block of the product that feeds it, on the same thread,
 * while its rows are in cache:
 *   1. in_proj x and z halves; conv + silu of the x rows of the block
 *   2. x_proj (dt, B, C rows)
 *   3. dt_proj; the scan step of the block's channels (needs all of B, C)
 *   4. out_proj into y; with res, res += y on the block's columns.
 * team: called by every thread of an OpenMP region (one region per step,
 * not one per product: at 2 threads the step was ~8 fork/joins a layer).
 * Timing (tm) by thread 0, of its own share of the fused work. */
static void block_step_team(const ssm_mamba *m, ssm_mamba_state *st, int64_t B,
                            const float *x, float *y, float *res, int team,
                            ssmi_mamba_timing *tm)
{
    const int64_t dm = m->dm, di = m->di, n = m->n, k = m->k, r = m->r;
    const int64_t xr = m->xr;
    const float *win = m->p[SSM_MAMBA_IN_PROJ], *wx = m->p[SSM_MAMBA_X_PROJ];
    const float *wdt = m->p[SSM_MAMBA_DT_PROJ_W], *wout = m->p[SSM_MAMBA_OUT_PROJ];
    const float *cw = m->p[SSM_MAMBA_CONV_W], *cb = m->p[SSM_MAMBA_CONV_B];
    const float *dd = m->p[SSM_MAMBA_D], *dtb = m->p[SSM_MAMBA_DT_PROJ_B];
    ssmi_mamba_timing *t = team_thread0(team) ? tm : NULL;
    double t0 = 0.0, sub = 0.0, s0 = 0.0;
    TM_START(t, t0);

    /* blocks a multiple of 48 rows: whole 16-channel passes of the conv.
     * x and z blocks alternate, so that the static schedule gives every
     * thread the same share of x blocks, which carry the conv: with the
     * x half first, thread 0 of 2 did all the conv while thread 1 waited
     * at the barrier (at batch 8, 2 threads: 15% of the step's CPU time
     * in libgomp's barrier, perf). */
    const int64_t rb1 = (ssmi_xwt_block_rows(dm, 0) + 47) / 48 * 48;
    const int64_t nb1 = (di + rb1 - 1) / rb1;
    TEAM_FOR(team, bk, 2 * nb1,
        const int64_t half = bk % 2, j0 = (bk / 2) * rb1;
        const int64_t j1 = j0 + rb1 < di ? j0 + rb1 : di;
        /* the block's conv windows (evicted since the last step) fetched
         * while its product runs: the conv of 24 layers at batch 8, 1
         * thread, Zen 4, 0.95-1.09 -> 0.73-0.76 ms a step */
        if (!half)
            for (int64_t b = 0; b < B; b++)
                ssmi_mamba_step_conv_prefetch(b * di + j0, b * di + j1, k, st->conv);
        ssmi_xwt_rows(B, j0, j1, dm, x, dm, win + half * di * dm, NULL, dm,
                      half ? st->z : st->xi, di);
        if (!half) {
            /* Conv step: shift the window, append the new input, the same
             * dot as the prompt path (conv_window's order); silu. */
            TM_START(t, s0);
            for (int64_t b = 0; b < B; b++)
                ssmi_mamba_step_conv_rows(0, b * di + j0, b * di + j1, di, k, st->conv,
                                          st->xi, cw, cb, st->u);
            if (t) { double e = now_s() - s0; t->conv += e; sub += e; }
        });
    TM_LAP(t, t0, gemm);
    if (t) { t->gemm -= sub; sub = 0.0; }

    /* x_proj rows [0, r) -> dt (low rank), [r, r+n) -> B, [r+n, xr) -> C */
    const int64_t rb2 = ssmi_xwt_block_rows(di, 0), nb2 = (xr + rb2 - 1) / rb2;
    TEAM_FOR(team, bk, nb2,
        const int64_t j0 = bk * rb2, j1 = j0 + rb2 < xr ? j0 + rb2 : xr;
        const int64_t lim[3] = { r, r + n, xr };
        float *const dst[3] = { st->dtl, st->bt, st->ct };
        const int64_t ld[3] = { r, n, n };
        int64_t lo = 0;
        for (int p = 0; p < 3; lo = lim[p], p++) {
            const int64_t a = j0 > lo ? j0 : lo, e = j1 < lim[p] ? j1 : lim[p];
            if (a < e)
                ssmi_xwt_rows(B, a - lo, e - lo, di, st->u, di, wx + lo * di, NULL, di,
                              dst[p], ld[p]);
        });
    TM_LAP(t, t0, gemm);

    /* The scan step (mamba_step.c); xi (consumed by the conv) holds dt and
     * z is replaced by silu(z): both are step workspace. */
    const int64_t nb3 = (di + SCAN_BLOCK - 1) / SCAN_BLOCK;
    TEAM_FOR(team, bk, nb3,
        const int64_t j0 = bk * SCAN_BLOCK;
        const int64_t j1 = j0 + SCAN_BLOCK < di ? j0 + SCAN_BLOCK : di;
        ssmi_xwt_rows(B, j0, j1, r, st->dtl, r, wdt, NULL, r, st->delta, di);
        TM_START(t, s0);
        for (int64_t b = 0; b < B; b++)
            ssmi_mamba_step_scan_rows(0, b * di + j0, b * di + j1, di, n, st->h, st->u,
                                      st->delta, m->A2, m->amax, st->bt, st->ct, n, dd, st->z, dtb,
                                      st->xi, st->z, st->ys);
        if (t) { double e = now_s() - s0; t->scan += e; sub += e; });
    TM_LAP(t, t0, gemm);
    if (t) { t->gemm -= sub; sub = 0.0; }

    const int64_t rb4 = ssmi_xwt_block_rows(di, 0), nb4 = (dm + rb4 - 1) / rb4;
    TEAM_FOR(team, bk, nb4,
        const int64_t j0 = bk * rb4, j1 = j0 + rb4 < dm ? j0 + rb4 : dm;
        ssmi_xwt_rows(B, j0, j1, di, st->ys, di, wout, NULL, di, y, dm);
        if (res)
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = j0; j < j1; j++)
                    res[b * dm + j] += y[b * dm + j];);
    TM_LAP(t, t0, gemm);
}

/* Batches above STEP_GEMV_MAX: sgemm for the products (called outside any
 * OpenMP region of ours: OpenBLAS threads itself). */
static ssm_status block_step_ws(const ssm_mamba *m, ssm_mamba_state *st, int64_t B,
                          const float *x, float *y, ssmi_mamba_timing *tm)
{
    const int64_t dm = m->dm, di = m->di, n = m->n, k = m->k, r = m->r;
    const float *win = m->p[SSM_MAMBA_IN_PROJ];
    const float *wx = m->p[SSM_MAMBA_X_PROJ];
    double t0 = 0.0;
    TM_START(tm, t0);

    mm_xwt(B, di, dm, x, dm, win, dm, st->xi, di);
    mm_xwt(B, di, dm, x, dm, win + di * dm, dm, st->z, di);
    TM_LAP(tm, t0, gemm);

    /* Conv step: shift the window, append the new input, the same dot as
     * the prompt path (conv_window's order); silu by mamba_step.c. */
    ssmi_mamba_step_conv(0, B * di, di, k, st->conv, st->xi, m->p[SSM_MAMBA_CONV_W],
                         m->p[SSM_MAMBA_CONV_B], st->u);
    TM_LAP(tm, t0, conv);

    mm_xwt(B, r, di, st->u, di, wx, di, st->dtl, r);
    mm_xwt(B, n, di, st->u, di, wx + r * di, di, st->bt, n);
    mm_xwt(B, n, di, st->u, di, wx + (r + n) * di, di, st->ct, n);
    mm_xwt(B, di, r, st->dtl, r, m->p[SSM_MAMBA_DT_PROJ_W], r, st->delta, di);
    TM_LAP(tm, t0, gemm);

    /* The scan step (mamba_step.c); xi (consumed by the conv) holds dt and
     * z is replaced by silu(z): both are step workspace. */
    ssmi_mamba_step_scan(0, B * di, di, n, st->h, st->u, st->delta, m->A2, m->amax, st->bt,
                         st->ct, n, m->p[SSM_MAMBA_D], st->z,
                         m->p[SSM_MAMBA_DT_PROJ_B], st->xi, st->z, st->ys);
    TM_LAP(tm, t0, scan);

    mm_xwt(B, dm, di, st->ys, di, m->p[SSM_MAMBA_OUT_PROJ], di, y, dm);
    TM_LAP(tm, t0, gemm);
    return SSM_OK;
}

/* x itself, or a copy of its n floats in scratch when x is not on a
 * 64-byte boundary (and scratch is).  The batch-8 product kernel loads
 * each token piece once per 3 weight rows, 8 tokens a step of k: rows off
 * the boundary split every one of those loads over two cache lines, and
 * its multiply-adds from L2 ran ~1.5x slower (Zen 5, 1 thread; a Mamba
 * block step at batch 8 1.05-1.24x).  Same values, so the same bits. */
static const float *step_rows_aligned(const float *x, int64_t n, float *scratch)
{
    if (((uintptr_t)x & 63) == 0 || ((uintptr_t)scratch & 63) != 0)
        return x;
    memcpy(scratch, x, (size_t)n * sizeof(float));
    return scratch;
}

/* Multiply-adds of a step below which one OpenMP region costs more than
 * it saves (shapes only). */
#define STEP_TEAM_MIN ((int64_t)1 << 18)

/* Multiply-adds of one token through block m (the products). */
static int64_t block_step_work(const ssm_mamba *m)
{
    return m->di * (2 * m->dm + m->xr + m->r + m->dm);
}

ssm_status ssmi_mamba_step_ex(const ssm_mamba *blk, ssm_mamba_state *st,
                             int64_t batch, const float *x, float *y,
                             ssmi_mamba_timing *timing)
{
    if (!blk || !st || !x || !y || batch < 1 || batch > st->maxb ||
        !state_matches(st, blk))
        return SSM_FAIL(SSM_ERR_ARG);
    if (batch > STEP_GEMV_MAX)
        return block_step_ws(blk, st, batch, x, y, timing);
    /* x is read by in_proj only, and ys (maxb x di >= maxb x dm floats) is
     * free until the scan writes it. */
    x = step_rows_aligned(x, batch * blk->dm, st->ys);
    int64_t work;
    if (!ssmi_mul_ok(batch, block_step_work(blk), &work))
        work = INT64_MAX;
    if (work >= STEP_TEAM_MIN) {
        #pragma omp parallel
        block_step_team(blk, st, batch, x, y, NULL, 1, timing);
    } else {
        block_step_team(blk, st, batch, x, y, NULL, 0, timing);
    }
    return SSM_OK;
}

ssm_status ssm_mamba_step(const ssm_mamba *blk, ssm_mamba_state *st,
                          int64_t batch, const float *x, float *y)
{
    return ssmi_mamba_step_ex(blk, st, batch, x, y, NULL);
}

/* ------------------------------------------------------------------ */
/* stack                                                              */

/* The block hooks of the shared stack code (stack_common.h). */
static ssm_status ops_create(void **b, const void *cfg, uint64_t seed)
{
    ssm_mamba *m = NULL;
    ssm_status e = ssm_mamba_create(&m, cfg, seed);
    *b = m;
    return e;
}
static void ops_destroy(void *b) { ssm_mamba_destroy(b); }
static float *ops_out_proj(void *b, int64_t *count)
{
    ssm_mamba *m = b;
    *count = m->cnt[SSM_MAMBA_OUT_PROJ];
    return m->p[SSM_MAMBA_OUT_PROJ];
}
static ssm_status ops_state_create(void **s, const void *b, int64_t maxb)
{
    ssm_mamba_state *st = NULL;
    ssm_status e = ssm_mamba_state_create(&st, b, maxb);
    *s = st;
    return e;
}
static void ops_state_destroy(void *s) { ssm_mamba_state_destroy(s); }
static ssm_status ops_state_reset(void *s) { return ssm_mamba_state_reset(s); }
static int ops_state_matches(const void *s, const void *b) { return state_matches(s, b); }

static const ssmi_stack_ops stack_ops = {
    ops_create, ops_destroy, ops_out_proj, ops_state_create,
    ops_state_destroy, ops_state_reset, ops_state_matches
};

void ssm_mamba_stack_destroy(ssm_mamba_stack *stk)
{
    if (!stk)
        return;
    ssmi_stack_blocks_free(&stack_ops, stk->nl, stk->blk, stk->norm);
    ssmi_free(stk);
}

ssm_status ssm_mamba_stack_create(ssm_mamba_stack **stk,
                                  const ssm_mamba_config *cfg,
                                  int64_t n_layers, uint64_t seed)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    *stk = NULL;
    ssm_mamba_config c;
    int64_t nn;
    SSM_TRY(ssm_mamba_config_resolve(cfg, &c));
    if (n_layers < 1 || n_layers > INT_MAX ||
        !ssmi_sizes_ok(&nn, sizeof(float), 2, n_layers + 1, c.d_model))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_stack *s = ssmi_calloc(1, sizeof *s);
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

ssm_status ssm_mamba_stack_layers(const ssm_mamba_stack *stk, int64_t *n_layers)
{
    if (!stk || !n_layers)
        return SSM_FAIL(SSM_ERR_ARG);
    *n_layers = stk->nl;
    return SSM_OK;
}

ssm_status ssm_mamba_stack_block(ssm_mamba_stack *stk, int64_t layer,
                                 ssm_mamba **blk)
{
    if (!stk || !blk || layer < 0 || layer >= stk->nl)
        return SSM_FAIL(SSM_ERR_ARG);
    *blk = stk->blk[layer];
    return SSM_OK;
}

ssm_status ssm_mamba_stack_set_norm(ssm_mamba_stack *stk, int64_t layer,
                                    const float *w, int64_t count)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_norm_set(stk->norm, stk->nl, stk->dm, layer, w, count);
}

ssm_status ssm_mamba_stack_get_norm(const ssm_mamba_stack *stk, int64_t layer,
                                    float *w, int64_t count)
{
    if (!stk)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_norm_get(stk->norm, stk->nl, stk->dm, layer, w, count);
}

void ssm_mamba_stack_state_destroy(ssm_mamba_stack_state *st)
{
    if (!st)
        return;
    ssmi_stack_states_free(&stack_ops, st->nl, st->st, st->normed, st->out);
    ssmi_free(st);
}

ssm_status ssm_mamba_stack_state_create(ssm_mamba_stack_state **st,
                                        const ssm_mamba_stack *stk,
                                        int64_t max_batch)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    *st = NULL;
    int64_t nb;
    if (!stk || max_batch < 1 || max_batch > INT_MAX ||
        !ssmi_sizes_ok(&nb, sizeof(float), 2, max_batch, stk->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_mamba_stack_state *s = ssmi_calloc(1, sizeof *s);
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

ssm_status ssm_mamba_stack_state_reset(ssm_mamba_stack_state *st)
{
    if (!st)
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_stack_states_reset(&stack_ops, st->nl, st->st);
}

ssm_status ssm_mamba_stack_state_layer(ssm_mamba_stack_state *st,
                                       int64_t layer,
                                       ssm_mamba_state **layer_state)
{
    if (layer_state)
        *layer_state = NULL;
    if (!st || !layer_state || layer < 0 || layer >= st->nl)
        return SSM_FAIL(SSM_ERR_ARG);
    *layer_state = st->st[layer];
    return SSM_OK;
}

static int stack_state_matches(const ssm_mamba_stack_state *st,
                               const ssm_mamba_stack *stk)
{
    return st->nl == stk->nl && st->dm == stk->dm &&
           ssmi_stack_states_match(&stack_ops, stk->nl, st->st, stk->blk);
}

/* out[row] = in[row] / sqrt(mean(in[row]^2) + eps) * w over rows of dm
 * (Zhang and Sennrich 2019, as Mamba's backbone).  The sum of squares is
 * accumulated in double, in order: one writer per row, fixed order.
 * in == out is allowed. */
static void rmsnorm_row(int64_t dm, const float *v, float *o, const float *w)
{
    double ss = 0.0;
    for (int64_t j = 0; j < dm; j++)
        ss += (double)v[j] * v[j];
    float sc = (float)(1.0 / sqrt(ss / (double)dm + (double)SSM_MAMBA_RMS_EPS));
    for (int64_t j = 0; j < dm; j++)
        o[j] = (v[j] * sc) * w[j];
}

static void rmsnorm_rows(int64_t rows, int64_t dm, const float *in, float *out,
                         const float *w)
{
    #pragma omp parallel for schedule(static) if (rows * dm > PAR_MIN)
    for (int64_t i = 0; i < rows; i++)
        rmsnorm_row(dm, in + i * dm, out + i * dm, w);
}

static void add_inplace(int64_t cnt, float *y, const float *a)
{
    #pragma omp parallel for schedule(static) if (cnt > 4 * PAR_MIN)
    for (int64_t i = 0; i < cnt; i++)
        y[i] += a[i];
}

ssm_status ssmi_mamba_stack_forward_ex(const ssm_mamba_stack *stk, ssm_mamba_stack_state *st,
                                      int64_t batch, int64_t L, const float *x,
                                      float *y,
                                      ssmi_mamba_timing *timing)
{
    int64_t ntok, nact, nblk = 0;
    if (!stk || !x || !y || batch < 1 || L < 1 || batch > INT_MAX ||
        L > INT_MAX || !ssmi_sizes_ok(&ntok, sizeof(float), 2, batch, L) ||
        !ssmi_sizes_ok(&nact, sizeof(float), 2, ntok, stk->dm))
        return SSM_FAIL(SSM_ERR_ARG);
    if (st && (!stack_state_matches(st, stk) || batch > st->maxb))
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t l = 0; l < stk->nl; l++) {
        int64_t c = block_ws_count(stk->blk[l], batch, L);
        if (c < 0)
            return SSM_FAIL(SSM_ERR_ARG);
        if (c > nblk)
            nblk = c;
    }
    int64_t tot;
    if (__builtin_add_overflow(nblk, nact, &tot) ||
        !ssmi_sizes_ok(&tot, sizeof(float), 1, tot))
        return SSM_FAIL(SSM_ERR_ARG);
    float *ws = ssmi_alloc((size_t)tot, sizeof(float));
    if (!ws)
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssmi_ws_hint_huge(ws, (size_t)tot * sizeof(float));
    float *normed = ws, *bws = ws + nact;
    ssm_status e = SSM_OK;
    double t0 = 0.0;
    TM_START(timing, t0);
    if (y != x)
        memmove(y, x, (size_t)nact * sizeof(float));
    /* Pre-norm residual blocks (Mamba's backbone): h += block(norm(h)),
     * the add done by out_proj's sgemm (beta = 1) on the residual stream. */
    for (int64_t l = 0; l < stk->nl; l++) {
        ssmi_rmsnorm_rows_fwd(ntok, stk->dm, y, normed, stk->norm + l * stk->dm,
                              (double)SSM_MAMBA_RMS_EPS);
        TM_LAP(timing, t0, norm);
        e = block_forward_ws(stk->blk[l], batch, L, normed, y, 1.0f,
                             st ? st->st[l] : NULL, bws, timing);
        if (e != SSM_OK)
            break;
        TM_START(timing, t0);
    }
    if (e == SSM_OK) {
        ssmi_rmsnorm_rows_fwd(ntok, stk->dm, y, y, stk->norm + stk->nl * stk->dm,
                              (double)SSM_MAMBA_RMS_EPS);
        TM_LAP(timing, t0, norm);
    }
    ssmi_free(ws);
    return e;
}

ssm_status ssm_mamba_stack_forward(const ssm_mamba_stack *stk, ssm_mamba_stack_state *st,
                                   int64_t batch, int64_t L, const float *x,
                                   float *y)
{
    return ssmi_mamba_stack_forward_ex(stk, st, batch, L, x, y, NULL);
}

/* The stack step for B <= STEP_GEMV_MAX (team: inside one OpenMP region
 * for the whole step): per layer the norm rows, then the block's four
 * stages (block_step_team), whose last one adds into the residual stream
 * y; five barriers a layer. */
static void stack_step_team(const ssm_mamba_stack *stk, ssm_mamba_stack_state *st,
                            int64_t B, float *y, int team, ssmi_mamba_timing *tm)
{
    const int64_t dm = stk->dm;
    ssmi_mamba_timing *t = team_thread0(team) ? tm : NULL;
    double t0 = 0.0;
    for (int64_t l = 0; l <= stk->nl; l++) {
        TM_START(t, t0);
        const float *w = stk->norm + l * dm;
        float *dst = l < stk->nl ? st->normed : y;
        TEAM_FOR(team, b, B, rmsnorm_row(dm, y + b * dm, dst + b * dm, w););
        TM_LAP(t, t0, norm);
        if (l < stk->nl)
            block_step_team(stk->blk[l], st->st[l], B, st->normed, st->out, y, team, t);
    }
}

ssm_status ssmi_mamba_stack_step_ex(const ssm_mamba_stack *stk,
                                   ssm_mamba_stack_state *st, int64_t batch,
                                   const float *x, float *y,
                                   ssmi_mamba_timing *timing)
{
    if (!stk || !st || !x || !y || batch < 1 || batch > st->maxb ||
        !stack_state_matches(st, stk))
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t nact = batch * stk->dm;
    double t0 = 0.0;
    TM_START(timing, t0);
    if (y != x)
        memmove(y, x, (size_t)nact * sizeof(float));
    if (batch <= STEP_GEMV_MAX) {
        int64_t work = 0;
        for (int64_t l = 0; l < stk->nl && work < STEP_TEAM_MIN; l++)
            work += batch * block_step_work(stk->blk[l]);
        TM_LAP(timing, t0, norm);
        if (work >= STEP_TEAM_MIN) {
            #pragma omp parallel
            stack_step_team(stk, st, batch, y, 1, timing);
        } else {
            stack_step_team(stk, st, batch, y, 0, timing);
        }
        return SSM_OK;
    }
    for (int64_t l = 0; l < stk->nl; l++) {
        rmsnorm_rows(batch, stk->dm, y, st->normed, stk->norm + l * stk->dm);
        TM_LAP(timing, t0, norm);
        SSM_TRY(block_step_ws(stk->blk[l], st->st[l], batch, st->normed,
                              st->out, timing));
        TM_START(timing, t0);
        add_inplace(nact, y, st->out);
    }
    rmsnorm_rows(batch, stk->dm, y, y, stk->norm + stk->nl * stk->dm);
    TM_LAP(timing, t0, norm);
    return SSM_OK;
}

ssm_status ssm_mamba_stack_step(const ssm_mamba_stack *stk,
                                ssm_mamba_stack_state *st, int64_t batch,
                                const float *x, float *y)
{
    return ssmi_mamba_stack_step_ex(stk, st, batch, x, y, NULL);
}
