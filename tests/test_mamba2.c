/* ctest-labels: mamba;ssd */
/*
 * test_mamba2.c -- the Mamba-2 block and its residual stack
 * (include/ssm/mamba2.h).
 *
 * Reference: every stage written below in double from Mamba-2's definition
 * (mamba_ssm/modules/mamba2.py, layernorm_gated.py): in_proj as plain dot
 * products, the causal depthwise conv with the conv state as left context,
 * silu, softplus(dt + dt_bias) and the dt limit, the SSD recurrence, the
 * gated RMSNorm over groups of Di/G channels (both gate placements, or none),
 * out_proj, the pre-norm residual stack; fed with the block's float
 * parameters read back through ssm_mamba2_get_param.
 *
 * Tolerance (normwise relative, float output vs the double reference).  The
 * float path is a chain of dot products of length Dm (in_proj), K (conv),
 * N + Q (the scan's readout and a chunk of Q = 64 tokens, see test_ssd.c),
 * Di/G (the norm, in double), Di (out_proj); a dot product of length n has
 * the classical bound n u sum|terms|, and with random signs sum|terms|/|sum|
 * stays O(1), so
 *     tol = 8 u (Dm + K + N + 64 + Di + 16),   u = FLT_EPSILON / 2
 * (linear, worst-case growth with 8x headroom for the chained stages).  Steps
 * (GEMV) and the forward (GEMM) round differently: each is checked against
 * the reference with this bound.  A stack of nl layers: nl times the bound.
 */
#include <ssm.h>
#include <stddef.h>
#include "testutil.h"

#define U_F (FLT_EPSILON / 2.0)

static int verbose(void) { return getenv("SSM_TEST_VERBOSE") != NULL; }

#define CHECK_ERR(err, tol, ...) do { \
    double ce_e_ = (err), ce_t_ = (tol); \
    if (verbose()) { fprintf(stderr, "  error %.3e  tol %.3e  ratio %.3f  ", ce_e_, ce_t_, ce_e_ / ce_t_); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
    TU_CHECK_ERR(ce_e_, ce_t_, __VA_ARGS__); } while (0)

/* ------------------------------------------------------------------ */
/* double reference                                                   */

typedef struct rblk {
    int64_t dm, di, n, k, p, h, g, dc, dp;
    int dpc, norm;
    double dt_min, dt_max, eps;
    double *par[SSM_MAMBA2_NPARAMS];
} rblk;

typedef struct rstate {
    double *conv;   /* [B][Dc][K] */
    double *ssm;    /* [B][H][P][N] */
} rstate;

static double tol_of(const rblk *r)
{
    return 8.0 * U_F * (double)(r->dm + r->k + r->n + 64 + r->di + 16);
}

static void rblk_load(rblk *r, const ssm_mamba2 *blk)
{
    ssm_mamba2_config c;
    ssm_mamba2_config_init(&c);
    ck_assert_int_eq(ssm_mamba2_get_config(blk, &c), SSM_OK);
    r->dm = c.d_model; r->di = c.expand * c.d_model; r->n = c.d_state;
    r->k = c.d_conv; r->p = c.headdim; r->h = r->di / r->p; r->g = c.ngroups;
    r->dc = r->di + 2 * r->g * r->n; r->dp = r->dc + r->di + r->h;
    r->dpc = c.D_per_channel; r->norm = c.norm;
    r->dt_min = c.dt_min; r->dt_max = c.dt_max; r->eps = c.norm_eps;
    for (int p = 0; p < SSM_MAMBA2_NPARAMS; p++) {
        int64_t cnt;
        ck_assert_int_eq(ssm_mamba2_param_count(blk, (ssm_mamba2_param)p, &cnt), SSM_OK);
        float *f = tu_alloc((size_t)cnt, sizeof *f);
        ck_assert_int_eq(ssm_mamba2_get_param(blk, (ssm_mamba2_param)p, f, cnt), SSM_OK);
        r->par[p] = tu_alloc((size_t)cnt, sizeof(double));
        for (int64_t i = 0; i < cnt; i++)
            r->par[p][i] = f[i];
        free(f);
    }
}

static void rblk_free(rblk *r)
{
    for (int p = 0; p < SSM_MAMBA2_NPARAMS; p++)
        free(r->par[p]);
}

static void rstate_init(rstate *s, const rblk *r, int64_t B)
{
    s->conv = tu_alloc((size_t)(B * r->dc * r->k), sizeof(double));
    s->ssm = tu_alloc((size_t)(B * r->h * r->p * r->n), sizeof(double));
}
static void rstate_free(rstate *s) { free(s->conv); free(s->ssm); }

static double silu(double v) { return v / (1.0 + exp(-v)); }

/* One token of one sequence b through the block: x [Dm] -> y [Dm], the
 * state of sequence b advanced. */
static void ref_token(const rblk *r, rstate *s, int64_t b, const double *x,
                      double *y)
{
    const int64_t di = r->di, dc = r->dc, k = r->k, gn = r->g * r->n;
    double *zx = tu_alloc((size_t)r->dp, sizeof(double));
    double *act = tu_alloc((size_t)dc, sizeof(double));
    double *ys = tu_alloc((size_t)di, sizeof(double));
    const double *win = r->par[SSM_MAMBA2_IN_PROJ];
    for (int64_t o = 0; o < r->dp; o++) {
        double acc = 0.0;
        for (int64_t i = 0; i < r->dm; i++)
            acc += win[o * r->dm + i] * x[i];
        zx[o] = acc;
    }
    /* conv over xBC: window = the state's last K-1 inputs and this one */
    double *cw = s->conv + b * dc * k;
    for (int64_t c = 0; c < dc; c++) {
        for (int64_t j = 0; j + 1 < k; j++)
            cw[c * k + j] = cw[c * k + j + 1];
        cw[c * k + k - 1] = zx[di + c];
        double acc = r->par[SSM_MAMBA2_CONV_B][c];
        for (int64_t j = 0; j < k; j++)
            acc += r->par[SSM_MAMBA2_CONV_W][c * k + j] * cw[c * k + j];
        act[c] = silu(acc);
    }
    const double *xs = act, *Bv = act + di, *Cv = act + di + gn;
    const double *z = zx;
    /* SSD recurrence, head by head */
    for (int64_t h = 0; h < r->h; h++) {
        const int64_t g = h / (r->h / r->g);
        double dt = zx[dc + di + h] + r->par[SSM_MAMBA2_DT_BIAS][h];
        if (dt <= 20.0)
            dt = log1p(exp(dt));
        if (dt < r->dt_min) dt = r->dt_min;
        if (dt > r->dt_max) dt = r->dt_max;
        const double a = exp(-dt * exp(r->par[SSM_MAMBA2_A_LOG][h]));
        double *S = s->ssm + (b * r->h + h) * r->p * r->n;
        for (int64_t q = 0; q < r->p; q++) {
            const int64_t ch = h * r->p + q;
            double acc = 0.0;
            for (int64_t n = 0; n < r->n; n++) {
                S[q * r->n + n] = a * S[q * r->n + n] + dt * xs[ch] * Bv[g * r->n + n];
                acc += Cv[g * r->n + n] * S[q * r->n + n];
            }
            const double D = r->dpc ? r->par[SSM_MAMBA2_D][ch] : r->par[SSM_MAMBA2_D][h];
            acc += D * xs[ch];
            if (r->norm == SSM_MAMBA2_NORM_NONE)
                acc *= silu(z[ch]);
            ys[ch] = acc;
        }
    }
    /* gated RMSNorm over groups of Di/G */
    if (r->norm != SSM_MAMBA2_NORM_NONE) {
        const int64_t gs = di / r->g;
        const double *w = r->par[SSM_MAMBA2_NORM_W];
        if (r->norm == SSM_MAMBA2_NORM_GATED)
            for (int64_t i = 0; i < di; i++)
                ys[i] *= silu(z[i]);
        for (int64_t g0 = 0; g0 < di; g0 += gs) {
            double ss = 0.0;
            for (int64_t i = g0; i < g0 + gs; i++)
                ss += ys[i] * ys[i];
            const double rs = 1.0 / sqrt(ss / (double)gs + r->eps);
            for (int64_t i = g0; i < g0 + gs; i++) {
                ys[i] = ys[i] * rs * w[i];
                if (r->norm == SSM_MAMBA2_NORM_BEFORE_GATE)
                    ys[i] *= silu(z[i]);
            }
        }
    }
    const double *wo = r->par[SSM_MAMBA2_OUT_PROJ];
    for (int64_t o = 0; o < r->dm; o++) {
        double acc = 0.0;
        for (int64_t i = 0; i < di; i++)
            acc += wo[o * di + i] * ys[i];
        y[o] = acc;
    }
    free(zx); free(act); free(ys);
}

/* Block over x [B][L][Dm] (float input) into y [B][L][Dm] (double). */
static void ref_forward(const rblk *r, rstate *s, int64_t B, int64_t L,
                        const float *x, double *y)
{
    double *xd = tu_alloc((size_t)r->dm, sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) {
            for (int64_t i = 0; i < r->dm; i++)
                xd[i] = x[(b * L + t) * r->dm + i];
            ref_token(r, s, b, xd, y + (b * L + t) * r->dm);
        }
    free(xd);
}

/* ------------------------------------------------------------------ */
/* blocks with random parameters                                      */

typedef struct bcfg {
    int64_t dm, n, k, expand, p, g;
    int dpc, norm;
    float dt_min, dt_max;
} bcfg;

static const bcfg cfgs[] = {
    { 16, 8, 4, 2, 8, 2, 0, SSM_MAMBA2_NORM_GATED, 0, 0 },
    { 16, 8, 4, 2, 8, 1, 1, SSM_MAMBA2_NORM_BEFORE_GATE, 0, 0 },
    { 12, 6, 3, 2, 4, 3, 0, SSM_MAMBA2_NORM_NONE, 0, 0 },
    { 24, 16, 4, 2, 16, 3, 1, SSM_MAMBA2_NORM_GATED, 0.01f, 0.05f },
    { 32, 32, 2, 2, 16, 1, 0, SSM_MAMBA2_NORM_GATED, 0, 0 },
};

static ssm_mamba2 *make_block(const bcfg *c, uint64_t seed)
{
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = c->dm; cfg.d_state = c->n; cfg.d_conv = c->k;
    cfg.expand = c->expand; cfg.headdim = c->p; cfg.ngroups = c->g;
    cfg.D_per_channel = c->dpc; cfg.norm = c->norm;
    cfg.dt_min = c->dt_min; cfg.dt_max = c->dt_max;
    ssm_mamba2 *blk;
    ck_assert_int_eq(ssm_mamba2_create(&blk, &cfg, seed), SSM_OK);
    /* random (not default) values everywhere, within Mamba-2's ranges */
    tu_rng rng = { seed * 7 + 1 };
    for (int p = 0; p < SSM_MAMBA2_NPARAMS; p++) {
        int64_t cnt;
        ck_assert_int_eq(ssm_mamba2_param_count(blk, (ssm_mamba2_param)p, &cnt), SSM_OK);
        float *v = tu_alloc((size_t)cnt, sizeof *v);
        for (int64_t i = 0; i < cnt; i++) {
            switch (p) {
            case SSM_MAMBA2_A_LOG: v[i] = (float)log(tu_range(&rng, 1.0, 16.0)); break;
            case SSM_MAMBA2_DT_BIAS: v[i] = (float)tu_range(&rng, -4.0, -1.0); break;
            case SSM_MAMBA2_D: case SSM_MAMBA2_NORM_W: v[i] = (float)tu_range(&rng, 0.5, 1.5); break;
            case SSM_MAMBA2_IN_PROJ: v[i] = (float)(tu_range(&rng, -1, 1) / sqrt((double)c->dm)); break;
            default: v[i] = (float)tu_range(&rng, -0.6, 0.6); break;
            }
        }
        ck_assert_int_eq(ssm_mamba2_set_param(blk, (ssm_mamba2_param)p, v, cnt), SSM_OK);
        free(v);
    }
    return blk;
}

static float *rand_x(int64_t n, uint64_t seed)
{
    tu_rng r = { seed };
    float *x = tu_alloc((size_t)n, sizeof(float));
    tu_fill_normal_f(&r, x, n, 1.0);
    return x;
}

/* forward with st NULL and from a fresh state; both vs the reference, and
 * the states left behind vs the reference's */
START_TEST(block_forward_matches_reference)
{
    const bcfg *c = &cfgs[_i % 5];
    const int64_t Ls[] = { 1, 5, 70 };
    const int64_t L = Ls[_i / 5], B = 2;
    ssm_mamba2 *blk = make_block(c, 10 + (uint64_t)_i);
    rblk r;
    rblk_load(&r, blk);
    const int64_t ny = B * L * r.dm;
    float *x = rand_x(ny, 20 + (uint64_t)_i), *y = tu_alloc((size_t)ny, sizeof(float));
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    rstate rs;
    rstate_init(&rs, &r, B);
    ref_forward(&r, &rs, B, L, x, yr);
    const double tol = tol_of(&r);
    ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, ny), tol, "cfg %d L %lld forward (no state)", _i % 5, (long long)L);
    ssm_mamba2_state *st;
    ck_assert_int_eq(ssm_mamba2_state_create(&st, blk, 3), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_forward(blk, st, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, ny), tol, "cfg %d L %lld forward (state)", _i % 5, (long long)L);
    const int64_t nc = B * r.dc * r.k, ns = B * r.h * r.p * r.n;
    float *conv = tu_alloc((size_t)nc, sizeof(float)), *ssm = tu_alloc((size_t)ns, sizeof(float));
    ck_assert_int_eq(ssm_mamba2_state_get(st, B, conv, ssm), SSM_OK);
    /* the conv state holds raw in_proj outputs (one dot product of Dm) */
    CHECK_ERR(tu_relerr_f(conv, rs.conv, nc), 8.0 * U_F * (double)(r.dm + 16), "cfg %d conv state", _i % 5);
    CHECK_ERR(tu_relerr_f(ssm, rs.ssm, ns), tol, "cfg %d ssm state", _i % 5);
    /* y == x in place */
    float *xi = tu_alloc((size_t)ny, sizeof(float));
    memcpy(xi, x, (size_t)ny * sizeof(float));
    ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, B, L, xi, xi), SSM_OK);
    CHECK_ERR(tu_relerr_f(xi, yr, ny), tol, "cfg %d in place", _i % 5);
    ssm_mamba2_state_destroy(st);
    free(conv); free(ssm); free(x); free(y); free(yr); free(xi);
    rstate_free(&rs);
    rblk_free(&r);
    ssm_mamba2_destroy(blk);
}
END_TEST

/* prompt (forward with state), then steps, then another prompt piece
 * shorter than the conv window: all vs one reference run over the whole
 * sequence; and steps alone from the start */
START_TEST(prompt_then_steps)
{
    const bcfg *c = &cfgs[_i];
    const int64_t B = 2, L1 = 67, L2 = 5, L3 = 2, L = L1 + L2 + L3;
    ssm_mamba2 *blk = make_block(c, 40 + (uint64_t)_i);
    rblk r;
    rblk_load(&r, blk);
    const int64_t dm = r.dm;
    float *x = rand_x(B * L * dm, 50 + (uint64_t)_i);
    double *yr = tu_alloc((size_t)(B * L * dm), sizeof(double));
    rstate rs;
    rstate_init(&rs, &r, B);
    ref_forward(&r, &rs, B, L, x, yr);
    const double tol = tol_of(&r);
    ssm_mamba2_state *st;
    ck_assert_int_eq(ssm_mamba2_state_create(&st, blk, B), SSM_OK);
    float *y = tu_alloc((size_t)(B * L * dm), sizeof(float));
    float *xp = tu_alloc((size_t)(B * L * dm), sizeof(float));
    float *yp = tu_alloc((size_t)(B * L * dm), sizeof(float));
    double *yrp = tu_alloc((size_t)(B * L * dm), sizeof(double));
    /* piece 1: forward [0, L1) */
    for (int64_t b = 0; b < B; b++)
        memcpy(xp + b * L1 * dm, x + b * L * dm, (size_t)(L1 * dm) * sizeof(float));
    ck_assert_int_eq(ssm_mamba2_forward(blk, st, B, L1, xp, yp), SSM_OK);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < L1 * dm; i++) {
            y[b * L * dm + i] = yp[b * L1 * dm + i];
        }
    /* piece 2: steps [L1, L1 + L2) */
    for (int64_t t = L1; t < L1 + L2; t++) {
        for (int64_t b = 0; b < B; b++)
            memcpy(xp + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof(float));
        ck_assert_int_eq(ssm_mamba2_step(blk, st, B, xp, yp), SSM_OK);
        for (int64_t b = 0; b < B; b++)
            memcpy(y + (b * L + t) * dm, yp + b * dm, (size_t)dm * sizeof(float));
    }
    /* piece 3: forward of L3 < K tokens (the conv window spans pieces) */
    for (int64_t b = 0; b < B; b++)
        memcpy(xp + b * L3 * dm, x + (b * L + L1 + L2) * dm, (size_t)(L3 * dm) * sizeof(float));
    ck_assert_int_eq(ssm_mamba2_forward(blk, st, B, L3, xp, yp), SSM_OK);
    for (int64_t b = 0; b < B; b++)
        memcpy(y + (b * L + L1 + L2) * dm, yp + b * L3 * dm, (size_t)(L3 * dm) * sizeof(float));
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), tol, "cfg %d prompt + steps + short prompt", _i);
    /* steps only, from a reset state */
    ck_assert_int_eq(ssm_mamba2_state_reset(st), SSM_OK);
    for (int64_t t = 0; t < L; t++) {
        for (int64_t b = 0; b < B; b++)
            memcpy(xp + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof(float));
        ck_assert_int_eq(ssm_mamba2_step(blk, st, B, xp, xp), SSM_OK);   /* y == x */
        for (int64_t b = 0; b < B; b++)
            memcpy(y + (b * L + t) * dm, xp + b * dm, (size_t)dm * sizeof(float));
    }
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), tol, "cfg %d steps only", _i);
    (void)yrp;
    ssm_mamba2_state_destroy(st);
    free(x); free(yr); free(y); free(xp); free(yp); free(yrp);
    rstate_free(&rs);
    rblk_free(&r);
    ssm_mamba2_destroy(blk);
}
END_TEST

/* Sequences longer than the 2048-token slab of the forward (three slabs,
 * the last partial): the states carried between slabs must give what one
 * pass gives, with and without a state, block and stack. */
START_TEST(long_sequences_run_in_slabs)
{
    const int64_t B = 2, L = 4200;
    ssm_mamba2 *blk = make_block(&cfgs[_i ? 3 : 0], 61);
    rblk r;
    rblk_load(&r, blk);
    const int64_t ny = B * L * r.dm;
    float *x = rand_x(ny, 62), *y = tu_alloc((size_t)ny, sizeof(float));
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    rstate rs;
    rstate_init(&rs, &r, B);
    ref_forward(&r, &rs, B, L, x, yr);
    const double tol = tol_of(&r);
    ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, ny), tol, "cfg %d L %lld forward in slabs (no state)", _i ? 3 : 0, (long long)L);
    ssm_mamba2_state *st;
    ck_assert_int_eq(ssm_mamba2_state_create(&st, blk, B), SSM_OK);
    memcpy(y, x, (size_t)ny * sizeof(float));
    ck_assert_int_eq(ssm_mamba2_forward(blk, st, B, L, y, y), SSM_OK);   /* in place */
    CHECK_ERR(tu_relerr_f(y, yr, ny), tol, "cfg %d forward in slabs (state, in place)", _i ? 3 : 0);
    const int64_t ns = B * r.h * r.p * r.n;
    float *ssm = tu_alloc((size_t)ns, sizeof(float));
    ck_assert_int_eq(ssm_mamba2_state_get(st, B, NULL, ssm), SSM_OK);
    CHECK_ERR(tu_relerr_f(ssm, rs.ssm, ns), tol, "cfg %d state after slabs", _i ? 3 : 0);
    ssm_mamba2_state_destroy(st);
    free(ssm); free(x); free(y); free(yr);
    rstate_free(&rs);
    rblk_free(&r);
    ssm_mamba2_destroy(blk);
}
END_TEST

/* ------------------------------------------------------------------ */
/* stack                                                              */

static void ref_rmsnorm(int64_t dm, const double *v, const float *w, double *o)
{
    double ss = 0.0;
    for (int64_t i = 0; i < dm; i++)
        ss += v[i] * v[i];
    const double r = 1.0 / sqrt(ss / (double)dm + 1e-5);
    for (int64_t i = 0; i < dm; i++)
        o[i] = v[i] * r * w[i];
}

START_TEST(stack_matches_reference)
{
    const int64_t nl = 3, B = 2, L = 70, dm = 16;
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = dm; cfg.d_state = 8; cfg.headdim = 8; cfg.ngroups = 2;
    ssm_mamba2_stack *stk;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &cfg, nl, 5), SSM_OK);
    int64_t n;
    ck_assert_int_eq(ssm_mamba2_stack_layers(stk, &n), SSM_OK);
    ck_assert_int_eq(n, nl);
    tu_rng rng = { 99 };
    float *nw = tu_alloc((size_t)((nl + 1) * dm), sizeof(float));
    for (int64_t i = 0; i < (nl + 1) * dm; i++)
        nw[i] = (float)tu_range(&rng, 0.5, 1.5);
    rblk r[3];
    rstate rs[3];
    for (int64_t l = 0; l <= nl; l++)
        ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, l, nw + l * dm, dm), SSM_OK);
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba2 *blk;
        ck_assert_int_eq(ssm_mamba2_stack_block(stk, l, &blk), SSM_OK);
        rblk_load(&r[l], blk);
        rstate_init(&rs[l], &r[l], B);
    }
    float *x = rand_x(B * L * dm, 7);
    double *yr = tu_alloc((size_t)(B * L * dm), sizeof(double));
    double *h = tu_alloc((size_t)dm, sizeof(double)), *t1 = tu_alloc((size_t)dm, sizeof(double));
    double *t2 = tu_alloc((size_t)dm, sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) {
            for (int64_t i = 0; i < dm; i++)
                h[i] = x[(b * L + t) * dm + i];
            for (int64_t l = 0; l < nl; l++) {
                ref_rmsnorm(dm, h, nw + l * dm, t1);
                ref_token(&r[l], &rs[l], b, t1, t2);
                for (int64_t i = 0; i < dm; i++)
                    h[i] += t2[i];
            }
            ref_rmsnorm(dm, h, nw + nl * dm, yr + (b * L + t) * dm);
        }
    const double tol = nl * tol_of(&r[0]);
    float *y = tu_alloc((size_t)(B * L * dm), sizeof(float));
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, NULL, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), tol, "stack forward");
    /* prompt of 40, then steps */
    ssm_mamba2_stack_state *st;
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st, stk, B), SSM_OK);
    const int64_t L1 = 40;
    float *xp = tu_alloc((size_t)(B * L * dm), sizeof(float)), *yp = tu_alloc((size_t)(B * L * dm), sizeof(float));
    for (int64_t b = 0; b < B; b++)
        memcpy(xp + b * L1 * dm, x + b * L * dm, (size_t)(L1 * dm) * sizeof(float));
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, B, L1, xp, xp), SSM_OK);
    for (int64_t b = 0; b < B; b++)
        memcpy(y + b * L * dm, xp + b * L1 * dm, (size_t)(L1 * dm) * sizeof(float));
    for (int64_t t = L1; t < L; t++) {
        for (int64_t b = 0; b < B; b++)
            memcpy(xp + b * dm, x + (b * L + t) * dm, (size_t)dm * sizeof(float));
        ck_assert_int_eq(ssm_mamba2_stack_step(stk, st, B, xp, yp), SSM_OK);
        for (int64_t b = 0; b < B; b++)
            memcpy(y + (b * L + t) * dm, yp + b * dm, (size_t)dm * sizeof(float));
    }
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), tol, "stack prompt then steps");
    ssm_mamba2_state *l0;
    ck_assert_int_eq(ssm_mamba2_stack_state_layer(st, 0, &l0), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_state_reset(l0), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_reset(st), SSM_OK);
    float g[16];
    ck_assert_int_eq(ssm_mamba2_stack_get_norm(stk, nl, g, dm), SSM_OK);
    ck_assert(memcmp(g, nw + nl * dm, (size_t)dm * sizeof(float)) == 0);
    ssm_mamba2_stack_state_destroy(st);
    for (int64_t l = 0; l < nl; l++) { rblk_free(&r[l]); rstate_free(&rs[l]); }
    free(nw); free(x); free(yr); free(h); free(t1); free(t2); free(y); free(xp); free(yp);
    ssm_mamba2_stack_destroy(stk);
}
END_TEST

/* The stack over three slabs, from no state and from a state, against one
 * stack reference run token by token. */
START_TEST(stack_long_sequence)
{
    const int64_t nl = 2, B = 1, L = 4100, dm = 16;
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = dm; cfg.d_state = 8; cfg.headdim = 8; cfg.ngroups = 2;
    ssm_mamba2_stack *stk;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &cfg, nl, 8), SSM_OK);
    float nw[16];
    for (int i = 0; i < 16; i++) nw[i] = 1.0f;
    rblk r[2];
    rstate rs[2];
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba2 *blk;
        ck_assert_int_eq(ssm_mamba2_stack_block(stk, l, &blk), SSM_OK);
        rblk_load(&r[l], blk);
        rstate_init(&rs[l], &r[l], B);
    }
    float *x = rand_x(B * L * dm, 17);
    double *yr = tu_alloc((size_t)(B * L * dm), sizeof(double));
    double h[16], t1[16], t2[16];
    for (int64_t t = 0; t < L; t++) {
        for (int64_t i = 0; i < dm; i++)
            h[i] = x[t * dm + i];
        for (int64_t l = 0; l < nl; l++) {
            ref_rmsnorm(dm, h, nw, t1);
            ref_token(&r[l], &rs[l], 0, t1, t2);
            for (int64_t i = 0; i < dm; i++)
                h[i] += t2[i];
        }
        ref_rmsnorm(dm, h, nw, yr + t * dm);
    }
    float *y = tu_alloc((size_t)(B * L * dm), sizeof(float));
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, NULL, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), nl * tol_of(&r[0]), "stack over slabs (no state)");
    ssm_mamba2_stack_state *st;
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st, stk, B), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, B, L, x, y), SSM_OK);
    CHECK_ERR(tu_relerr_f(y, yr, B * L * dm), nl * tol_of(&r[0]), "stack over slabs (state)");
    ssm_mamba2_stack_state_destroy(st);
    for (int64_t l = 0; l < nl; l++) { rblk_free(&r[l]); rstate_free(&rs[l]); }
    free(x); free(yr); free(y);
    ssm_mamba2_stack_destroy(stk);
}
END_TEST

/* Outputs across thread counts: the libssm stages are bit for bit, the BLAS
 * products to rounding (documented), so the block agrees within the bound. */
START_TEST(threads_agree)
{
    ssm_mamba2 *blk = make_block(&cfgs[3], 3);
    rblk r;
    rblk_load(&r, blk);
    const int64_t B = 2, L = 130, ny = B * L * r.dm;
    float *x = rand_x(ny, 4), *y1 = tu_alloc((size_t)ny, sizeof(float)), *y2 = tu_alloc((size_t)ny, sizeof(float));
    tu_set_threads(1);
    ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, B, L, x, y1), SSM_OK);
    for (int t = 2; t <= 3; t++) {
        tu_set_threads(t);
        ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, B, L, x, y2), SSM_OK);
        CHECK_ERR(tu_relerr_ff(y2, y1, ny), tol_of(&r), "%d threads vs 1", t);
    }
    tu_set_threads(1);
    free(x); free(y1); free(y2);
    rblk_free(&r);
    ssm_mamba2_destroy(blk);
}
END_TEST

/* ------------------------------------------------------------------ */
/* configuration ABI, names, defaults                                  */

START_TEST(config_abi_and_names)
{
    ssm_mamba2_config c, out;
    ssm_mamba2_config_init(&c);
    ck_assert_uint_eq(c.struct_size, sizeof c);
    ck_assert_int_eq(c.d_model, 0);
    ssm_mamba2_config_init(NULL);   /* no-op */
    c.d_model = 768;
    ck_assert_int_eq(ssm_mamba2_config_resolve(&c, &out), SSM_OK);
    /* mamba2-130m's defaults */
    ck_assert_int_eq(out.d_state, 128);
    ck_assert_int_eq(out.d_conv, 4);
    ck_assert_int_eq(out.expand, 2);
    ck_assert_int_eq(out.headdim, 64);
    ck_assert_int_eq(out.ngroups, 1);
    ck_assert(out.dt_min == 0.0f && isinf(out.dt_max));
    ck_assert(fabsf(out.norm_eps - 1e-5f) == 0.0f);
    /* A caller built against an older, shorter struct: fields beyond its
     * struct_size are never read (garbage there must not matter). */
    ssm_mamba2_config old;
    memset(&old, 0x7f, sizeof old);
    old.struct_size = (uint32_t)offsetof(ssm_mamba2_config, D_per_channel);
    old.d_model = 16; old.d_state = 8; old.d_conv = 4; old.expand = 2;
    old.headdim = 8; old.ngroups = 2;
    ck_assert_int_eq(ssm_mamba2_config_resolve(&old, &out), SSM_OK);
    ck_assert_int_eq(out.norm, 0);
    ck_assert_int_eq(out.D_per_channel, 0);
    ssm_mamba2 *blk;
    ck_assert_int_eq(ssm_mamba2_create(&blk, &old, 1), SSM_OK);
    /* get_config writes only within the caller's struct_size */
    unsigned char buf[sizeof(ssm_mamba2_config) + 16];
    memset(buf, 0xab, sizeof buf);
    ssm_mamba2_config *gc = (ssm_mamba2_config *)(void *)buf;
    gc->struct_size = (uint32_t)offsetof(ssm_mamba2_config, headdim);
    ck_assert_int_eq(ssm_mamba2_get_config(blk, gc), SSM_OK);
    ck_assert_int_eq(gc->d_model, 16);
    for (size_t i = offsetof(ssm_mamba2_config, headdim); i < sizeof buf; i++)
        ck_assert_msg(buf[i] == 0xab, "byte %zu written beyond struct_size", i);
    /* parameter counts: Mamba-2's shapes */
    const int64_t di = 32, h = 4, gn = 16, dc = di + 2 * gn, dp = 2 * di + 2 * gn + h;
    const int64_t want[SSM_MAMBA2_NPARAMS] = { dp * 16, dc * 4, dc, h, h, h, di, 16 * di };
    for (int p = 0; p < SSM_MAMBA2_NPARAMS; p++) {
        int64_t cnt;
        ck_assert_int_eq(ssm_mamba2_param_count(blk, (ssm_mamba2_param)p, &cnt), SSM_OK);
        ck_assert_int_eq(cnt, want[p]);
    }
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_IN_PROJ), "in_proj.weight");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_CONV_W), "conv1d.weight");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_CONV_B), "conv1d.bias");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_DT_BIAS), "dt_bias");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_A_LOG), "A_log");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_D), "D");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_NORM_W), "norm.weight");
    ck_assert_str_eq(ssm_mamba2_param_name(SSM_MAMBA2_OUT_PROJ), "out_proj.weight");
    ck_assert_ptr_null(ssm_mamba2_param_name((ssm_mamba2_param)8));
    ck_assert_ptr_null(ssm_mamba2_param_name((ssm_mamba2_param)-1));
    /* default init: A = -exp(A_log) in [-16, -1], softplus(dt_bias) in [1e-4, 0.1] */
    float al[4], db[4];
    ck_assert_int_eq(ssm_mamba2_get_param(blk, SSM_MAMBA2_A_LOG, al, 4), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_get_param(blk, SSM_MAMBA2_DT_BIAS, db, 4), SSM_OK);
    for (int i = 0; i < 4; i++) {
        ck_assert(expf(al[i]) >= 1.0f - 1e-6f && expf(al[i]) <= 16.0f + 1e-5f);
        const double dt = log1p(exp((double)db[i]));
        ck_assert(dt >= 0.99e-4 && dt <= 0.1001);
    }
    ssm_mamba2_destroy(blk);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bad arguments                                                      */

START_TEST(config_rejects_bad_values)
{
    ssm_mamba2_config base, out;
    ssm_mamba2_config_init(&base);
    base.d_model = 16; base.d_state = 8; base.headdim = 8; base.ngroups = 2;
    ck_assert_int_eq(ssm_mamba2_config_resolve(&base, &out), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_config_resolve(NULL, &out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_config_resolve(&base, NULL), SSM_ERR_ARG);
    enum { SZ0, SZ4, DM0, DMN, DSN, DCN, DC65, EXN, HDN, HDDIV, NGN, NGDIV,
           NORM3, NORMN, DTNAN, DTMAXNAN, DTNEG, DTGT, EPSNAN, EPSNEG, OVF, NC };
    for (int c = 0; c < NC; c++) {
        ssm_mamba2_config k = base;
        switch (c) {
        case SZ0: k.struct_size = 0; break;
        case SZ4: k.struct_size = 4; break;
        case DM0: k.d_model = 0; break;
        case DMN: k.d_model = -5; break;
        case DSN: k.d_state = -1; break;
        case DCN: k.d_conv = -1; break;
        case DC65: k.d_conv = 65; break;
        case EXN: k.expand = -2; break;
        case HDN: k.headdim = -8; break;
        case HDDIV: k.headdim = 5; break;
        case NGN: k.ngroups = -1; break;
        case NGDIV: k.ngroups = 3; break;
        case NORM3: k.norm = 3; break;
        case NORMN: k.norm = -1; break;
        case DTNAN: k.dt_min = NAN; break;
        case DTMAXNAN: k.dt_max = NAN; break;
        case DTNEG: k.dt_min = -0.1f; break;
        case DTGT: k.dt_min = 0.2f; k.dt_max = 0.1f; break;
        case EPSNAN: k.norm_eps = NAN; break;
        case EPSNEG: k.norm_eps = -1e-5f; break;
        case OVF: k.d_model = INT64_MAX / 2; break;
        }
        ck_assert_msg(ssm_mamba2_config_resolve(&k, &out) == SSM_ERR_ARG, "config case %d accepted", c);
        ssm_mamba2 *blk = (ssm_mamba2 *)&out;
        ck_assert_msg(ssm_mamba2_create(&blk, &k, 1) == SSM_ERR_ARG, "create case %d accepted", c);
        ck_assert_ptr_null(blk);
        ssm_mamba2_stack *stk = (ssm_mamba2_stack *)&out;
        ck_assert_msg(ssm_mamba2_stack_create(&stk, &k, 2, 1) == SSM_ERR_ARG, "stack case %d accepted", c);
        ck_assert_ptr_null(stk);
    }
    ck_assert_int_eq(ssm_mamba2_create(NULL, &base, 1), SSM_ERR_ARG);
    ssm_mamba2_stack *stk;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &base, 0, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_create(NULL, &base, 1, 1), SSM_ERR_ARG);
}
END_TEST

START_TEST(block_rejects_bad_arguments)
{
    ssm_mamba2 *blk = make_block(&cfgs[0], 1), *other = make_block(&cfgs[1], 2);
    ssm_mamba2_state *st, *sto;
    ck_assert_int_eq(ssm_mamba2_state_create(&st, blk, 2), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_state_create(&sto, other, 2), SSM_OK);
    float x[3 * 4 * 16] = { 0 }, y[3 * 4 * 16];
    /* parameters */
    int64_t cnt;
    ck_assert_int_eq(ssm_mamba2_param_count(blk, SSM_MAMBA2_A_LOG, &cnt), SSM_OK);
    float v[4] = { 0.1f, 0.2f, 0.3f, 0.4f };
    const struct { int p; const float *src; int64_t n; } pc[] = {
        { SSM_MAMBA2_A_LOG, NULL, 4 }, { SSM_MAMBA2_A_LOG, v, 3 }, { SSM_MAMBA2_A_LOG, v, 5 },
        { 8, v, 4 }, { -1, v, 4 },
    };
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
        ck_assert_msg(ssm_mamba2_set_param(blk, (ssm_mamba2_param)pc[i].p, pc[i].src, pc[i].n) == SSM_ERR_ARG, "set case %zu", i);
        float dst[8];
        ck_assert_msg(ssm_mamba2_get_param(blk, (ssm_mamba2_param)pc[i].p, pc[i].src ? dst : NULL, pc[i].n) == SSM_ERR_ARG, "get case %zu", i);
    }
    ck_assert_int_eq(ssm_mamba2_set_param(NULL, SSM_MAMBA2_A_LOG, v, 4), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_param_count(NULL, SSM_MAMBA2_A_LOG, &cnt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_param_count(blk, SSM_MAMBA2_A_LOG, NULL), SSM_ERR_ARG);
    float before[4];
    ck_assert_int_eq(ssm_mamba2_get_param(blk, SSM_MAMBA2_A_LOG, before, 4), SSM_OK);
    const float bad_vals[] = { NAN, INFINITY, 100.0f };   /* exp(100) overflows */
    for (size_t i = 0; i < 3; i++) {
        float w[4] = { 0.1f, 0.2f, bad_vals[i], 0.4f };
        ck_assert_int_eq(ssm_mamba2_set_param(blk, SSM_MAMBA2_A_LOG, w, 4), SSM_ERR_ARG);
    }
    float nanw[4] = { 0, NAN, 0, 0 };
    ck_assert_int_eq(ssm_mamba2_set_param(blk, SSM_MAMBA2_DT_BIAS, nanw, 4), SSM_ERR_ARG);
    float after[4];
    ck_assert_int_eq(ssm_mamba2_get_param(blk, SSM_MAMBA2_A_LOG, after, 4), SSM_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);   /* unchanged */
    ck_assert_int_eq(ssm_mamba2_get_config(NULL, NULL), SSM_ERR_ARG);
    ssm_mamba2_config gc;
    gc.struct_size = 0;
    ck_assert_int_eq(ssm_mamba2_get_config(blk, &gc), SSM_ERR_ARG);
    /* state */
    ssm_mamba2_state *s2 = (ssm_mamba2_state *)v;
    ck_assert_int_eq(ssm_mamba2_state_create(&s2, blk, 0), SSM_ERR_ARG);
    ck_assert_ptr_null(s2);
    ck_assert_int_eq(ssm_mamba2_state_create(&s2, NULL, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_create(NULL, blk, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_create(&s2, blk, INT64_MAX), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_reset(NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_get(NULL, 1, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_get(st, 0, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_get(st, 3, NULL, NULL), SSM_ERR_ARG);
    float *cbig = tu_alloc(4096, sizeof(float));
    cbig[5] = NAN;
    ck_assert_int_eq(ssm_mamba2_state_set(st, 1, cbig, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_set(st, 1, NULL, cbig), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_state_set(st, 3, NULL, NULL), SSM_ERR_ARG);
    /* forward / step, table-driven */
    const struct { int nb; int sb; int64_t B, L; int nx, ny; } fc[] = {
        { 1, 0, 1, 4, 0, 0 },  /* blk NULL */
        { 0, 0, 1, 4, 1, 0 },  /* x NULL */
        { 0, 0, 1, 4, 0, 1 },  /* y NULL */
        { 0, 0, 0, 4, 0, 0 },  /* batch 0 */
        { 0, 0, -1, 4, 0, 0 }, /* batch < 0 */
        { 0, 0, 1, 0, 0, 0 },  /* L 0 */
        { 0, 0, 1, -4, 0, 0 }, /* L < 0 */
        { 0, 1, 1, 4, 0, 0 },  /* state of another block */
        { 0, 0, 3, 4, 0, 0 },  /* batch > max batch */
        { 0, 0, INT64_MAX / 4, INT64_MAX / 4, 0, 0 },  /* overflow */
    };
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++) {
        const ssm_mamba2 *b = fc[i].nb ? NULL : blk;
        ssm_mamba2_state *s = fc[i].sb ? sto : st;
        const float *xx = fc[i].nx ? NULL : x;
        float *yy = fc[i].ny ? NULL : y;
        ck_assert_msg(ssm_mamba2_forward(b, s, fc[i].B, fc[i].L, xx, yy) == SSM_ERR_ARG, "forward case %zu", i);
        ck_assert_msg(ssm_mamba2_step(b, s, fc[i].B, xx, yy) == SSM_ERR_ARG || fc[i].L < 1 || i == 9,
                      "step case %zu", i);
    }
    ck_assert_int_eq(ssm_mamba2_step(blk, NULL, 1, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_forward(blk, NULL, 3, 4, x, y), SSM_OK);  /* no state: any batch */
    ck_assert_int_eq(ssm_mamba2_step(blk, st, 2, x, y), SSM_OK);
    free(cbig);
    ssm_mamba2_state_destroy(st);
    ssm_mamba2_state_destroy(sto);
    ssm_mamba2_state_destroy(NULL);
    ssm_mamba2_destroy(blk);
    ssm_mamba2_destroy(other);
    ssm_mamba2_destroy(NULL);
}
END_TEST

START_TEST(stack_rejects_bad_arguments)
{
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = 16; cfg.d_state = 8; cfg.headdim = 8;
    ssm_mamba2_stack *stk, *other;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &cfg, 2, 1), SSM_OK);
    cfg.d_state = 16;
    ck_assert_int_eq(ssm_mamba2_stack_create(&other, &cfg, 2, 1), SSM_OK);
    ssm_mamba2_stack_state *st, *sto;
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st, stk, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&sto, other, 1), SSM_OK);
    float x[64] = { 0 }, y[64], w[16];
    for (int i = 0; i < 16; i++) w[i] = 1.0f;
    ssm_mamba2 *blk;
    int64_t n;
    ssm_mamba2_state *ls;
    ck_assert_int_eq(ssm_mamba2_stack_layers(NULL, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_layers(stk, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_block(stk, 2, &blk), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_block(stk, -1, &blk), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_block(NULL, 0, &blk), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_block(stk, 0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, 3, w, 16), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, -1, w, 16), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, 0, w, 15), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, 0, NULL, 16), SSM_ERR_ARG);
    w[3] = NAN;
    ck_assert_int_eq(ssm_mamba2_stack_set_norm(stk, 0, w, 16), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_get_norm(stk, 3, w, 16), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_get_norm(NULL, 0, w, 16), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_layer(st, 2, &ls), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_layer(NULL, 0, &ls), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_layer(st, 0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(NULL, stk, 1), SSM_ERR_ARG);
    ssm_mamba2_stack_state *s2;
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&s2, stk, 0), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&s2, NULL, 1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_state_reset(NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(NULL, st, 1, 4, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 1, 4, NULL, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 1, 4, x, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 0, 4, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 1, 0, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 2, 2, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, sto, 1, 4, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, INT64_MAX / 2, 4, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_step(stk, NULL, 1, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_step(stk, st, 2, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_step(stk, sto, 1, x, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_step(stk, st, 1, NULL, y), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_mamba2_stack_step(stk, st, 1, x, y), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_forward(stk, st, 1, 4, x, y), SSM_OK);
    ssm_mamba2_stack_state_destroy(st);
    ssm_mamba2_stack_state_destroy(sto);
    ssm_mamba2_stack_state_destroy(NULL);
    ssm_mamba2_stack_destroy(stk);
    ssm_mamba2_stack_destroy(other);
    ssm_mamba2_stack_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mamba2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, block_forward_matches_reference, 0, 15);
    tcase_add_loop_test(tc, prompt_then_steps, 0, 5);
    tcase_add_loop_test(tc, long_sequences_run_in_slabs, 0, 2);
    tcase_add_test(tc, stack_matches_reference);
    tcase_add_test(tc, stack_long_sequence);
    tcase_add_test(tc, threads_agree);
    tcase_add_test(tc, config_abi_and_names);
    tcase_add_test(tc, config_rejects_bad_values);
    tcase_add_test(tc, block_rejects_bad_arguments);
    tcase_add_test(tc, stack_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
