/*
 * run.c -- the language model's forward: prompt chunks through the whole
 * network (GEMMs over the chunk's tokens) and the allocation-free one-token
 * step over any subset of slots (continuous batching).
 *
 * Per layer (Gu and Dao 2023, section 3.4 and algorithm 2; mamba_ssm's
 * Mamba.forward / Mamba.step):
 *   x | z = in_proj norm(h)          u = silu(conv1d(x))     (causal, depthwise)
 *   dt_low | B | C = x_proj u        delta = dt_proj.weight dt_low
 *   y = selective_scan(u, delta, A = -exp(A_log), B, C, D, z,
 *                      delta_bias = dt_proj.bias, softplus)
 *   h = h + out_proj y
 * Chunk layout: the projections are computed as W X^T so that x, z, u,
 * delta, y come out channel-major [Di][L] and B, C as [N][L]: the layouts
 * of ssm_selective_scan, with no transposes.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "models/model_internal.h"
#include "models/norm_row.h"
#include "layers/gemv.h"
#include "layers/layers_internal.h"
#include "layers/gemv_bf16dp.h"
#include "layers/bf16_gemm.h"
#include "layers/mamba_step.h"
#include "layers/prefill_internal.h"
#include "ssm/scan.h"

/* No multiply-add fusion: the prompt and step paths (norms, bias and
 * residual adds) must round alike whatever the compiler.  GCC in ISO C mode
 * (-std=c11) does not contract; clang does within a statement unless
 * told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* Tokens of a prompt chunk: bounds the workspace whatever the prompt
 * length (~80 MB at the mamba-130m shape), and large enough for the GEMMs
 * to run near peak.  2048 as the Mamba block's own chunks
 * (docs/prefill-speed.md); 256 packed each weight matrix for sgemm 8 times
 * a 2048-token prompt: 4.45-4.63 s against 4.28-4.31 s at 2048 (mamba-130m
 * shape, 1 thread, Zen 4; 1024: 4.33-4.40 s). */
#define CHUNK 2048
/* Work below which an OpenMP region costs more than it saves. */
#define PAR_MIN 32768

/* for (var = 0; var < n; var++) body, in an OpenMP parallel loop only when
 * cond holds.  Not `#pragma omp parallel for if (cond)`: libgomp allocates
 * a team for every region it enters, even one that the if clause makes
 * serial, and the decoding step must not allocate. */
#define PFOR(cond, var, n, ...) do {                                         \
        if (cond) {                                                          \
            _Pragma("omp parallel for schedule(static)")                     \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        } else {                                                             \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        }                                                                    \
    } while (0)

/* rows of in [rows][dm] -> out: RMSNorm or LayerNorm with weight w, bias
 * b (LayerNorm only).  Sums in double, one row per thread: deterministic. */
static void norm_rows(const ssmi_model_cfg *c, int64_t rows, const float *in,
                      float *out, const float *w, const float *b)
{
    const int64_t dm = c->d_model;
    const double eps = c->eps;
    const int rms = c->rms_norm;
    PFOR(rows * dm > PAR_MIN, r, rows,
        ssmi_norm_row(dm, in + r * dm, out + r * dm, w, b, eps, rms);
    );
}

/* Rows of a BF16 matrix widened to float per sgemm call in the prompt
 * path (Debian's OpenBLAS has no bf16 GEMM): a tile of 256 rows is reused
 * by the chunk's up to 256 tokens, so the widening (one shift per weight)
 * is a few percent of the GEMM's work. */
#define WTILE 256

/* out[M][N] = op(X) W[N][K]^T, op(X) = X [M][K] (ldx), or X^T with X
 * [K][M] (ldx) when transX; row-major, W rows of K.  wt: WTILE * K floats,
 * used only for BF16 W.  ah (BF16 W, model with bf16_dp, libssm built with
 * oneDNN): op(X) rounded to BF16 there (X's layout, contiguous), then
 * oneDNN's bf16 matmul (bf16_gemm.h); one token: the step's vdpbf16ps
 * kernel. */
static ssm_status mm_xwt(int64_t M, int64_t N, int64_t K, int transX, const float *X,
                         int64_t ldx, ssmi_wmat W, float *out, int64_t ldo, float *wt,
                         uint16_t *ah)
{
    if (W.h && ah && M == 1 && !transX) {
        ssmi_xwt_bf16dp(1, N, K, X, ldx, W.h, K, out, ldo, ah);
        return SSM_OK;
    }
    if (W.h && ah) {
        ssmi_bf16dp_round((transX ? K : M) * ldx, X, ah);
        return ssmi_bf16_gemm(M, N, K, ah, transX ? 1 : ldx, transX ? ldx : 1,
                              W.h, 1, K, out, ldo, 0);
    }
    for (int64_t j0 = 0; j0 < N; j0 += W.f ? N : WTILE) {
        const int64_t nr = W.f ? N : (N - j0 < WTILE ? N - j0 : WTILE);
        const float *w = W.f;
        if (!w) {
            ssmi_bf16_widen(W.h + j0 * K, wt, nr * K);
            w = wt;
        }
        if (M == 1 && !transX)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)K, 1.0f, w,
                        (int)K, X, 1, 0.0f, out + j0, 1);
        else
            cblas_sgemm(CblasRowMajor, transX ? CblasTrans : CblasNoTrans, CblasTrans,
                        (int)M, (int)nr, (int)K, 1.0f, X, (int)ldx, w, (int)K, 0.0f,
                        out + j0, (int)ldo);
    }
    return SSM_OK;
}

/* out[N][L] (ldo) = W[N][K] op(B), op(B) = B [K][L] (ldb), or B^T with B
 * [L][K] (ldb) when transB.  wt, ah as above. */
static ssm_status mm_wx(int64_t N, int64_t L, int64_t K, ssmi_wmat W, int transB,
                        const float *B, int64_t ldb, float *out, int64_t ldo, float *wt,
                        uint16_t *ah)
{
    if (W.h && ah) {
        ssmi_bf16dp_round((transB ? L : K) * ldb, B, ah);
        return ssmi_bf16_gemm(N, L, K, W.h, K, 1, ah, transB ? 1 : ldb,
                              transB ? ldb : 1, out, ldo, 1);
    }
    for (int64_t j0 = 0; j0 < N; j0 += W.f ? N : WTILE) {
        const int64_t nr = W.f ? N : (N - j0 < WTILE ? N - j0 : WTILE);
        const float *w = W.f;
        if (!w) {
            ssmi_bf16_widen(W.h + j0 * K, wt, nr * K);
            w = wt;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    (int)nr, (int)L, (int)K, 1.0f, w, (int)K, B, (int)ldb, 0.0f,
                    out + j0 * ldo, (int)ldo);
    }
    return SSM_OK;
}

/* Decoding-step products out[M][N] = X[M][K] W[N][K]^T: for a few rows
 * (tokens) the weight-row-once kernel of src/layers/gemv.h, which reads
 * every row of W once for all of them (sgemm would first pack all of W,
 * sgemv would read it M times); sgemm for larger float batches.  BF16
 * weights always take the kernel (any M; the step has no scratch to widen
 * into, and must not allocate): with xh (the state's BF16 activation
 * scratch, given when the model has bf16_dp) the vdpbf16ps kernel of
 * gemv_bf16dp.h, else the exact widening one. */
#define SKINNY_MAX 16

static void step_xwt(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                     ssmi_wmat W, float *out, int64_t ldo, uint16_t *xh)
{
    if (W.h && xh)
        ssmi_xwt_bf16dp(M, N, K, X, ldx, W.h, K, out, ldo, xh);
    else if (W.h)
        ssmi_xwt_bf16(M, N, K, X, ldx, W.h, K, out, ldo);
    else if (M <= SKINNY_MAX)
        ssmi_xwt(M, N, K, X, ldx, W.f, K, out, ldo);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N,
                    (int)K, 1.0f, X, (int)ldx, W.f, (int)K, 0.0f, out, (int)ldo);
}

/* Embedding row of token t into dst (widened when BF16). */
static void emb_row(const ssm_model *m, int64_t t, float *dst)
{
    const int64_t dm = m->cfg.d_model;
    if (m->emb.h) ssmi_bf16_widen(m->emb.h + t * dm, dst, dm);
    else memcpy(dst, m->emb.f + t * dm, (size_t)dm * sizeof(float));
}

static void add_rows(int64_t rows, int64_t n, float *y, const float *bias)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) y[r * n + i] += bias[i];
}

/* ---- prompt chunks ---- */

typedef struct chunk_ws {
    float *res, *nrm, *out;      /* [CHUNK][Dm] */
    float *xz;                   /* [2Di][Lc] */
    float *u, *delta, *y;        /* [Di][Lc] */
    float *xdbl;                 /* [R+2N][Lc] */
    float *wt;                   /* [WTILE][max(Dm, Di)]: BF16 rows widened */
    uint16_t *ah;                /* [Lc + 1][max(Dm, Di) to 32]: BF16 activations
                                  * (bf16_dp models with oneDNN), else NULL */
} chunk_ws;

static void ws_free(chunk_ws *w)
{
    ssmi_free(w->res); ssmi_free(w->nrm); ssmi_free(w->out); ssmi_free(w->xz);
    ssmi_free(w->u); ssmi_free(w->delta); ssmi_free(w->y); ssmi_free(w->xdbl);
    ssmi_free(w->wt); ssmi_free(w->ah);
}

static ssm_status ws_alloc(const ssm_model *m, int64_t lc, chunk_ws *w)
{
    const ssmi_model_cfg *c = &m->cfg;
    memset(w, 0, sizeof *w);
    int64_t dm = c->d_model, di = c->d_inner;
    w->res = ssmi_alloc((size_t)(lc * dm), sizeof(float));
    w->nrm = ssmi_alloc((size_t)(lc * dm), sizeof(float));
    w->out = ssmi_alloc((size_t)(lc * dm), sizeof(float));
    w->xz = ssmi_alloc((size_t)(2 * di * lc), sizeof(float));
    w->u = ssmi_alloc((size_t)(di * lc), sizeof(float));
    w->delta = ssmi_alloc((size_t)(di * lc), sizeof(float));
    w->y = ssmi_alloc((size_t)(di * lc), sizeof(float));
    w->xdbl = ssmi_alloc((size_t)((c->dt_rank + 2 * c->d_state) * lc), sizeof(float));
    if (m->keep_bf16)
        w->wt = ssmi_alloc((size_t)(WTILE * (dm > di ? dm : di)), sizeof(float));
    /* BF16 prompt products (bf16_gemm.h): decided by the model and the
     * build, never by the thread count. */
    const int dnn = m->bf16_dp && ssmi_bf16_gemm_ok();
    if (dnn)
        w->ah = ssmi_alloc((size_t)((lc + 1) * (((dm > di ? dm : di) + 31) & ~(int64_t)31)),
                           sizeof(uint16_t));
    if (!w->res || !w->nrm || !w->out || !w->xz || !w->u || !w->delta || !w->y ||
        !w->xdbl || (m->keep_bf16 && !w->wt) || (dnn && !w->ah)) {
        ws_free(w);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    return SSM_OK;
}

/* Causal depthwise conv + silu of one chunk, channel-major x [Di][L] -> u,
 * the left context from the slot's windows cs [Di][K], which then keep
 * the chunk's last inputs: the Mamba block's prompt kernels
 * (src/layers/prefill.c: one vector pass per row, polynomial exp; the
 * scalar loop with libm's expf here was 7% of a 2048-token prompt). */
static void conv_chunk(const ssmi_layer *Lw, int64_t di, int64_t k, int64_t L,
                       const float *x, float *u, float *cs)
{
    ssmi_conv_silu_rows(di, di, L, k, x, cs, Lw->conv_w, Lw->conv_b, u);
    ssmi_conv_state_keep(di, L, k, x, cs, cs);
}

/* One chunk of L tokens of one slot through every layer; logits of the
 * last position (all = 0) or of every position (all = 1) into lg. */
static ssm_status run_chunk(const ssm_model *m, ssm_model_state *s, int64_t slot,
                            int64_t L, const int32_t *tok, chunk_ws *w,
                            float *lg, int all)
{
    const ssmi_model_cfg *c = &m->cfg;
    const int64_t dm = c->d_model, di = c->d_inner, n = c->d_state,
                  k = c->d_conv, r = c->dt_rank, V = c->vocab;
    for (int64_t t = 0; t < L; t++)
        emb_row(m, tok[t], w->res + t * dm);
    if (c->kind == 2) {
        /* Mamba-2: the stack runs every layer and the final norm, carrying
         * the slot's state (ssm/mamba2.h). */
        SSM_TRY(ssm_mamba2_stack_forward(m->m2, s->m2[slot], 1, L, w->res, w->nrm));
        if (lg) {
            if (all) SSM_TRY(mm_xwt(L, V, dm, 0, w->nrm, dm, m->head, lg, V, w->wt, w->ah));
            else SSM_TRY(mm_xwt(1, V, dm, 0, w->nrm + (L - 1) * dm, dm, m->head, lg, V, w->wt, w->ah));
        }
        return SSM_OK;
    }
    for (int64_t l = 0; l < c->n_layer; l++) {
        const ssmi_layer *Lw = &m->layers[l];
        norm_rows(c, L, w->res, w->nrm, Lw->norm_w, Lw->norm_b);
        /* xz [2Di][L] = W_in nrm^T */
        SSM_TRY(mm_wx(2 * di, L, dm, Lw->in_w, 1, w->nrm, dm, w->xz, L, w->wt, w->ah));
        if (Lw->in_b)
            for (int64_t i = 0; i < 2 * di; i++)
                for (int64_t t = 0; t < L; t++) w->xz[i * L + t] += Lw->in_b[i];
        conv_chunk(Lw, di, k, L, w->xz, w->u, ssmi_conv_at(s, l, slot));
        /* xdbl [R+2N][L] = W_x u */
        SSM_TRY(mm_wx(r + 2 * n, L, di, Lw->x_w, 0, w->u, L, w->xdbl, L, w->wt, w->ah));
        /* delta [Di][L] = W_dt dt_low (bias added by the scan, before softplus) */
        SSM_TRY(mm_wx(di, L, r, Lw->dt_w, 0, w->xdbl, L, w->delta, L, w->wt, w->ah));
        float *h = ssmi_h_at(s, l, slot);
        ssm_scan_args a = {
            .batch = 1, .dim = di, .dstate = n, .len = L, .ngroups = 1,
            .u = w->u, .delta = w->delta, .A = Lw->A,
            .B = w->xdbl + r * L, .C = w->xdbl + (r + n) * L, .D = Lw->D,
            .z = w->xz + di * L, .delta_bias = Lw->dt_b, .delta_softplus = 1,
            .h0 = h, .y = w->y, .h_last = h
        };
        SSM_TRY(ssm_selective_scan(&a));
        /* out [L][Dm] = y^T W_out^T */
        SSM_TRY(mm_xwt(L, dm, di, 1, w->y, L, Lw->out_w, w->out, dm, w->wt, w->ah));
        if (Lw->out_b) add_rows(L, dm, w->out, Lw->out_b);
        for (int64_t i = 0; i < L * dm; i++) w->res[i] += w->out[i];
    }
    if (lg) {
        if (all) {
            norm_rows(c, L, w->res, w->nrm, m->normf_w, m->normf_b);
            SSM_TRY(mm_xwt(L, V, dm, 0, w->nrm, dm, m->head, lg, V, w->wt, w->ah));
        } else {
            norm_rows(c, 1, w->res + (L - 1) * dm, w->nrm, m->normf_w, m->normf_b);
            SSM_TRY(mm_xwt(1, V, dm, 0, w->nrm, dm, m->head, lg, V, w->wt, w->ah));
        }
    }
    return SSM_OK;
}

/* ---- one token per slot ---- */

/* One step of the selective scan for each slot (Mamba, algorithm 2 with
 * L = 1; mamba_simple.py's Mamba.step):
 *   dt = softplus(delta + dt_bias)   (x above 20 passes through, as the kernels)
 *   h  = exp(dt A) h + dt B u,   y = (C . h + D u) silu(z)
 * by the Mamba block step's kernel (src/layers/mamba_step.c: polynomial
 * exp and log1p in vectors, the 16 states of a channel in one vector;
 * ~4x faster than expf per state), on blocks of 256 channels of a slot.
 * s->x (consumed by the conv) takes dt, z is replaced by silu(z).  One
 * writer per (slot, channel): thread-independent.  Not through
 * ssm_selective_step, which allocates. */
#define SCAN_BLK 256
static void scan_step(const ssmi_layer *Lw, ssm_model_state *s, int64_t l,
                      int64_t nb, const int64_t *slots, int64_t di, int64_t n)
{
    const int64_t nbk = (di + SCAN_BLK - 1) / SCAN_BLK;
    PFOR(nb * di * n > 4 * PAR_MIN, id, nb * nbk,
            const int64_t i = id / nbk, d0 = (id % nbk) * SCAN_BLK;
            const int64_t d1 = d0 + SCAN_BLK < di ? d0 + SCAN_BLK : di;
            ssmi_mamba_step_scan_rows(0, d0, d1, di, n, ssmi_h_at(s, l, slots ? slots[i] : i),
                                      s->u + i * di, s->delta + i * di, Lw->A2, Lw->amax,
                                      s->bm + i * n, s->cm + i * n, n, Lw->D,
                                      s->z + i * di, Lw->dt_b, s->x + i * di,
                                      s->z + i * di, s->y + i * di);
    );
}

/* for (var = 0; var < n; var++) body: shared out among the threads of the
 * enclosing OpenMP region when team (every thread of it gets here; the
 * loop ends with the region's barrier), on the calling thread otherwise
 * (never an orphaned worksharing loop: a caller may step its own states
 * from inside its own parallel region). */
#define TEAM_FOR(team, var, n, ...) do {                                     \
        if (team) {                                                          \
            _Pragma("omp for schedule(static)")                              \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        } else {                                                             \
            for (int64_t var = 0; var < (n); var++) { __VA_ARGS__ }          \
        }                                                                    \
    } while (0)

/* Rows j0..j1 of X W^T for nb tokens (W float or BF16), calling thread. */
static void wrows(int64_t nb, int64_t j0, int64_t j1, int64_t K, const float *X,
                  int64_t ldx, ssmi_wmat W, float *out, int64_t ldo)
{
    ssmi_xwt_rows(nb, j0, j1, K, X, ldx, W.f, W.h, K, out, ldo);
}

/* bf16_dp models: columns j0..j1 of nb rows of X (K columns, stride ldx)
 * rounded to BF16 into h, in the layout ssmi_xwt_bf16dp_rows reads (rows
 * of K rounded up to 32, the padding zero).  Called by the block that
 * produced those columns, so the rounding is spread over the stage that
 * writes X and each element is rounded once, by one thread; the element-
 * wise vcvtneps2bf16 gives the bits ssmi_xwt_bf16dp's own rounding gives.
 * The block that owns the last column writes the padding: h alternates
 * between inputs of different K, so the zeros of the creation memset do
 * not survive. */
static void round_cols(int64_t nb, const float *X, int64_t ldx, int64_t K,
                       int64_t j0, int64_t j1, uint16_t *h)
{
    const int64_t Kp = (K + 31) & ~(int64_t)31;
    for (int64_t i = 0; i < nb; i++) {
        if (j1 > j0) ssmi_bf16dp_round(j1 - j0, X + i * ldx + j0, h + i * Kp + j0);
        if (j1 == K)
            memset(h + i * Kp + K, 0, (size_t)(Kp - K) * sizeof(uint16_t));
    }
}

/* Rows j0..j1 of X W^T: from the rounded copy h (vdpbf16ps) when h is
 * given and W is BF16, else wrows on the float X. */
static void prows(int64_t nb, int64_t j0, int64_t j1, int64_t K, const float *X,
                  int64_t ldx, const uint16_t *h, ssmi_wmat W, float *out, int64_t ldo)
{
    if (h && W.h)
        ssmi_xwt_bf16dp_rows(nb, j0, j1, K, h, W.h, K, out, ldo);
    else
        wrows(nb, j0, j1, K, X, ldx, W, out, ldo);
}

/* The Mamba-1 step for nb <= SKINNY_MAX slots as four stages a layer, each
 * split into fixed row blocks (shapes only: the same bits for any thread
 * count) and ended by the region's barrier, the elementwise work done in
 * the block of the product that feeds it (as src/layers/mamba.c's
 * block_step_team): in_proj + bias + conv; x_proj; dt_proj + scan;
 * out_proj + bias + residual.  team: inside one OpenMP region for the
 * whole step, instead of one region per product (~8 a layer). */
static void run_step_team(const ssm_model *m, ssm_model_state *s, int64_t nb,
                          const int64_t *slots, float *lg, int team)
{
    const ssmi_model_cfg *c = &m->cfg;
    const int64_t dm = c->d_model, di = c->d_inner, n = c->d_state,
                  k = c->d_conv, r = c->dt_rank, V = c->vocab;
    const int64_t xr = r + 2 * n;
    /* bf16_dp: each BF16 product's input rounded where it is produced,
     * into xh or xh2 (NULL: that product reads the floats).  The stages
     * alternate: norm writes xh (nrm); in_proj reads xh, writes xh2 (u);
     * x_proj reads xh2, writes xh (dtl); dt_proj + scan reads xh, writes
     * xh2 (y); out_proj reads xh2.  No stage writes the buffer it reads,
     * and the barrier ending each stage orders the writes before the
     * next stage's reads. */
    const int bf = m->bf16_dp;
    for (int64_t l = 0; l < c->n_layer; l++) {
        const ssmi_layer *Lw = &m->layers[l];
        uint16_t *const h_nrm = bf && Lw->in_w.h ? s->xh : NULL;
        uint16_t *const h_u = bf && Lw->x_w.h ? s->xh2 : NULL;
        uint16_t *const h_dtl = bf && Lw->dt_w.h ? s->xh : NULL;
        uint16_t *const h_y = bf && Lw->out_w.h ? s->xh2 : NULL;
        TEAM_FOR(team, i, nb,
            norm_rows(c, 1, s->res + i * dm, s->nrm + i * dm, Lw->norm_w, Lw->norm_b);
            if (h_nrm) round_cols(1, s->nrm + i * dm, dm, dm, 0, dm,
                                  h_nrm + i * ((dm + 31) & ~(int64_t)31)););
        const int64_t rb1 = ssmi_xwt_block_rows(dm, Lw->in_w.h != NULL);
        const int64_t nb1 = (di + rb1 - 1) / rb1;
        /* x and z blocks alternate: every thread gets its share of the
         * conv (block_step_team in src/layers/mamba.c says why) */
        TEAM_FOR(team, bk, 2 * nb1,
            const int64_t half = bk % 2, j0 = (bk / 2) * rb1;
            const int64_t j1 = j0 + rb1 < di ? j0 + rb1 : di;
            float *dst = half ? s->z : s->x;
            if (!half)
                for (int64_t i = 0; i < nb; i++)
                    ssmi_mamba_step_conv_prefetch(j0, j1, k, ssmi_conv_at(s, l, slots ? slots[i] : i));
            prows(nb, j0, j1, dm, s->nrm, dm, h_nrm, ssmi_wmat_rows(Lw->in_w, half * di, dm),
                  dst, di);
            if (Lw->in_b)
                for (int64_t i = 0; i < nb; i++)
                    for (int64_t d = j0; d < j1; d++) dst[i * di + d] += Lw->in_b[half * di + d];
            /* conv + silu: the Mamba block's step kernel (mamba_step.c) */
            if (!half)
                for (int64_t i = 0; i < nb; i++)
                    ssmi_mamba_step_conv_rows(0, j0, j1, di, k,
                                              ssmi_conv_at(s, l, slots ? slots[i] : i),
                                              s->x + i * di, Lw->conv_w, Lw->conv_b,
                                              s->u + i * di);
            if (!half && h_u) round_cols(nb, s->u, di, di, j0, j1, h_u););
        const int64_t rb2 = ssmi_xwt_block_rows(di, Lw->x_w.h != NULL);
        const int64_t nb2 = (xr + rb2 - 1) / rb2;
        TEAM_FOR(team, bk, nb2,
            const int64_t j0 = bk * rb2, j1 = j0 + rb2 < xr ? j0 + rb2 : xr;
            const int64_t lim[3] = { r, r + n, xr };
            float *const dst[3] = { s->dtl, s->bm, s->cm };
            const int64_t ld[3] = { r, n, n };
            int64_t lo = 0;
            for (int p = 0; p < 3; lo = lim[p], p++) {
                const int64_t a = j0 > lo ? j0 : lo, e = j1 < lim[p] ? j1 : lim[p];
                if (a < e) {
                    prows(nb, a - lo, e - lo, di, s->u, di, h_u, ssmi_wmat_rows(Lw->x_w, lo, di),
                          dst[p], ld[p]);
                    if (p == 0 && h_dtl) round_cols(nb, s->dtl, r, r, a, e, h_dtl);
                }
            });
        const int64_t nb3 = (di + SCAN_BLK - 1) / SCAN_BLK;
        TEAM_FOR(team, bk, nb3,
            const int64_t d0 = bk * SCAN_BLK, d1 = d0 + SCAN_BLK < di ? d0 + SCAN_BLK : di;
            prows(nb, d0, d1, r, s->dtl, r, h_dtl, Lw->dt_w, s->delta, di);
            for (int64_t i = 0; i < nb; i++)
                ssmi_mamba_step_scan_rows(0, d0, d1, di, n, ssmi_h_at(s, l, slots ? slots[i] : i),
                                          s->u + i * di, s->delta + i * di, Lw->A2, Lw->amax,
                                          s->bm + i * n, s->cm + i * n, n, Lw->D,
                                          s->z + i * di, Lw->dt_b, s->x + i * di,
                                          s->z + i * di, s->y + i * di);
            if (h_y) round_cols(nb, s->y, di, di, d0, d1, h_y););
        const int64_t rb4 = ssmi_xwt_block_rows(di, Lw->out_w.h != NULL);
        const int64_t nb4 = (dm + rb4 - 1) / rb4;
        TEAM_FOR(team, bk, nb4,
            const int64_t j0 = bk * rb4, j1 = j0 + rb4 < dm ? j0 + rb4 : dm;
            prows(nb, j0, j1, di, s->y, di, h_y, Lw->out_w, s->out, dm);
            for (int64_t i = 0; i < nb; i++)
                for (int64_t j = j0; j < j1; j++) {
                    float o = s->out[i * dm + j];
                    if (Lw->out_b) o += Lw->out_b[j];
                    s->res[i * dm + j] += o;
                });
    }
    if (lg) {
        uint16_t *const h_f = bf && m->head.h ? s->xh : NULL;
        TEAM_FOR(team, i, nb,
            norm_rows(c, 1, s->res + i * dm, s->nrm + i * dm, m->normf_w, m->normf_b);
            if (h_f) round_cols(1, s->nrm + i * dm, dm, dm, 0, dm,
                                h_f + i * ((dm + 31) & ~(int64_t)31)););
        const int64_t rbh = ssmi_xwt_block_rows(dm, m->head.h != NULL);
        const int64_t nbh = (V + rbh - 1) / rbh;
        TEAM_FOR(team, bk, nbh,
            const int64_t j0 = bk * rbh, j1 = j0 + rbh < V ? j0 + rbh : V;
            prows(nb, j0, j1, dm, s->nrm, dm, h_f, m->head, lg, V););
    }
}

static ssm_status run_step(const ssm_model *m, ssm_model_state *s, int64_t nb,
                           const int64_t *slots, const int32_t *tok, float *lg)
{
    const ssmi_model_cfg *c = &m->cfg;
    const int64_t dm = c->d_model, di = c->d_inner, n = c->d_state,
                  k = c->d_conv, r = c->dt_rank, V = c->vocab;
    /* BF16 activations for the vdpbf16ps products (NULL: exact path). */
    uint16_t *xh = m->bf16_dp ? s->xh : NULL;
    for (int64_t i = 0; i < nb; i++)
        emb_row(m, tok[i], s->res + i * dm);
    if (c->kind == 2) {
        /* Mamba-2: every slot in one stack step over its own state (each
         * weight read once for all rows; no allocation), the head over all
         * rows at once. */
        for (int64_t i = 0; i < nb; i++)
            s->m2_sel[i] = s->m2[slots ? slots[i] : i];
        SSM_TRY(ssmi_mamba2_stack_step_slots(m->m2, s->m2_sel, nb, s->m2_ws, s->res, s->nrm));
        if (lg) step_xwt(nb, V, dm, s->nrm, dm, m->head, lg, V, xh);
        return SSM_OK;
    }
    if (nb <= SKINNY_MAX) {
        /* One region for the whole step once it has >= 2^18 multiply-adds
         * (shapes only; smaller steps run the same stages here). */
        const int64_t work = nb * (int64_t)(c->n_layer * di * (3 * dm + r + 2 * n + r) + dm * V);
        if (work >= ((int64_t)1 << 18)) {
            #pragma omp parallel
            run_step_team(m, s, nb, slots, lg, 1);
        } else {
            run_step_team(m, s, nb, slots, lg, 0);
        }
        return SSM_OK;
    }
    for (int64_t l = 0; l < c->n_layer; l++) {
        const ssmi_layer *Lw = &m->layers[l];
        norm_rows(c, nb, s->res, s->nrm, Lw->norm_w, Lw->norm_b);
        step_xwt(nb, di, dm, s->nrm, dm, Lw->in_w, s->x, di, xh);
        step_xwt(nb, di, dm, s->nrm, dm, ssmi_wmat_rows(Lw->in_w, di, dm), s->z, di, xh);
        if (Lw->in_b) {
            add_rows(nb, di, s->x, Lw->in_b);
            add_rows(nb, di, s->z, Lw->in_b + di);
        }
        /* conv + silu as run_step_team's */
        for (int64_t i = 0; i < nb; i++)
            ssmi_mamba_step_conv_rows(0, 0, di, di, k, ssmi_conv_at(s, l, slots ? slots[i] : i),
                                      s->x + i * di, Lw->conv_w, Lw->conv_b, s->u + i * di);
        step_xwt(nb, r, di, s->u, di, Lw->x_w, s->dtl, r, xh);
        step_xwt(nb, n, di, s->u, di, ssmi_wmat_rows(Lw->x_w, r, di), s->bm, n, xh);
        step_xwt(nb, n, di, s->u, di, ssmi_wmat_rows(Lw->x_w, r + n, di), s->cm, n, xh);
        step_xwt(nb, di, r, s->dtl, r, Lw->dt_w, s->delta, di, xh);
        scan_step(Lw, s, l, nb, slots, di, n);
        step_xwt(nb, dm, di, s->y, di, Lw->out_w, s->out, dm, xh);
        if (Lw->out_b) add_rows(nb, dm, s->out, Lw->out_b);
        for (int64_t i = 0; i < nb * dm; i++) s->res[i] += s->out[i];
    }
    if (lg) {
        norm_rows(c, nb, s->res, s->nrm, m->normf_w, m->normf_b);
        step_xwt(nb, V, dm, s->nrm, dm, m->head, lg, V, xh);
    }
    return SSM_OK;
}

/* ---- entry points ---- */

static ssm_status run(const ssm_model *m, ssm_model_state *s, int64_t nb,
                      const int64_t *slots, int64_t len, const int32_t *tokens,
                      float *logits, int all)
{
    if (!m || !s || !tokens || nb < 1 || len < 1 || nb > s->max_batch)
        return SSM_FAIL(SSM_ERR_ARG);
    ssmi_state_dims d;
    ssmi_model_state_dims(m, &d);
    int64_t ntok, nlog;
    if (memcmp(&d, &s->dims, sizeof d) || !ssmi_mul_ok(nb, len, &ntok) ||
        !ssmi_sizes_ok(&nlog, sizeof(float), 2, ntok, m->cfg.vocab))
        return SSM_FAIL(SSM_ERR_ARG);
    /* Everything checked before anything changes. */
    for (int64_t i = 0; i < ntok; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab) return SSM_FAIL(SSM_ERR_ARG);
    if (slots) {
        int64_t *mark = s->slot_tmp;
        int bad = 0;
        for (int64_t i = 0; i < nb && !bad; i++) {
            if (slots[i] < 0 || slots[i] >= s->max_batch || mark[slots[i]]) bad = 1;
            else mark[slots[i]] = 1;
        }
        for (int64_t i = 0; i < nb; i++)
            if (slots[i] >= 0 && slots[i] < s->max_batch) mark[slots[i]] = 0;
        if (bad) return SSM_FAIL(SSM_ERR_ARG);
    }
    const int64_t V = m->cfg.vocab;
    if (len == 1) {
        SSM_TRY(run_step(m, s, nb, slots, tokens, logits));
    } else {
        chunk_ws w;
        SSM_TRY(ws_alloc(m, len < CHUNK ? len : CHUNK, &w));
        ssm_status st = SSM_OK;
        for (int64_t i = 0; i < nb && st == SSM_OK; i++) {
            int64_t slot = slots ? slots[i] : i;
            for (int64_t t0 = 0; t0 < len && st == SSM_OK; t0 += CHUNK) {
                int64_t L = len - t0 < CHUNK ? len - t0 : CHUNK;
                float *lg = NULL;
                if (logits && all) lg = logits + (i * len + t0) * V;
                else if (logits && t0 + L == len) lg = logits + i * V;
                st = run_chunk(m, s, slot, L, tokens + i * len + t0, &w, lg, all);
            }
        }
        ws_free(&w);
        SSM_TRY(st);
    }
    for (int64_t i = 0; i < nb; i++) s->ntok[slots ? slots[i] : i] += len;
    return SSM_OK;
}

ssm_status ssm_model_forward(const ssm_model *model, ssm_model_state *state,
                             int64_t batch, int64_t len, const int32_t *tokens,
                             float *logits)
{
    return run(model, state, batch, NULL, len, tokens, logits, 0);
}

ssm_status ssm_model_forward_slots(const ssm_model *model, ssm_model_state *state,
                                   int64_t n, const int64_t *slots, int64_t len,
                                   const int32_t *tokens, float *logits)
{
    if (!slots) return SSM_FAIL(SSM_ERR_ARG);
    return run(model, state, n, slots, len, tokens, logits, 0);
}

ssm_status ssm_model_forward_all(const ssm_model *model, ssm_model_state *state,
                                 int64_t batch, int64_t len, const int32_t *tokens,
                                 float *logits)
{
    if (!logits) return SSM_FAIL(SSM_ERR_ARG);
    return run(model, state, batch, NULL, len, tokens, logits, 1);
}
