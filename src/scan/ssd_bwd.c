/*
 * ssd_bwd.c -- gradients through the SSD scan of Mamba-2 (Dao and Gu 2024,
 * eq. 1 with a scalar A per head), the reverse mode of ssm_ssd_scan
 * (ssd.c): ssm_ssd_scan_backward.
 *
 * Forward, per batch b, head h (group g), token t, with dt_t the processed
 * dt (v = dt + dt_bias, softplus(v) if asked (v above 20 kept), clamped to
 * [dt_min, dt_max]) and a_t = exp(dt_t A):
 *   S_t  = a_t S_{t-1} + dt_t x_t B_t^T               (P x N)
 *   y0_t = S_t C_t + D x_t,   y_t = y0_t silu(z_t)
 * Adjoint (G_t = dLoss/dS_t, G_{L-1} starts from dh_last):
 *   dy0 = dy silu(z),  dz = dy y0 silu'(z),  silu'(z) = s (1 + z (1 - s))
 *   G_t += dy0_t C_t^T;  then
 *   dC_t = S_t^T dy0_t,  dB_t = dt_t G_t^T x_t,  dx_t = D dy0_t + dt_t G_t B_t
 *   ddt_t (processed) = x_t . (G_t B_t) + A a_t <G_t, S_{t-1}>
 *   dA += dt_t a_t <G_t, S_{t-1}>,   dD += dy0 x
 *   G_{t-1} = a_t G_t,   dh0 = G_{-1}
 * and ddt (as passed) = ddt_t * [dt_min <= sp <= dt_max] * sigmoid(v)
 * (1 above 20); ddt_bias = sum of ddt over batch and time.
 *
 * Memory (never [B][L][H][P][N]): the states are not stored.  A first
 * pass keeps the state every Q tokens (L/Q checkpoints of P x N per work
 * item); the backward walks the chunks last to first, recomputes the
 * chunk's Q + 1 states from its checkpoint and runs the adjoint through
 * them.  Q = a power of two >= sqrt(L) (checkpoints and chunk buffer
 * balance), from the length only.  All of it per thread:
 * O(P N (L/Q + Q) + L) floats.
 *
 * Determinism: work items are (batch, head), each run start to end by one
 * thread.  Per item sums (dA, dD, ddt_bias) are kept per item in double and
 * added over the batch in index order at the end; dB and dC, shared by the
 * heads of a group, are written per head (a [B][H][L][N] buffer when a
 * group has several heads) and summed over the group's heads in order.
 * Nothing depends on the thread count.  The dot products over N run in
 * float over 8 lanes added in a fixed tree (dot8), the per-token scalars in
 * double.  The item body is compiled twice, portable and AVX2 + FMA, the
 * second taken when the CPU has it (the instruction set changes the
 * rounding of contracted multiply-adds, the thread count nothing).
 */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "ssd_internal.h"

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* Chunk length: a power of two >= sqrt(len), at least 16. */
static int64_t bwd_chunk(int64_t L)
{
    int64_t q = 16;
    while (q < L && q * q < L)
        q *= 2;
    return q;
}

static ssm_status check(const ssm_ssd_args *a, const float *dy,
                        const ssm_ssd_grads *g)
{
    if (!a || !dy || !g)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t B = a->batch, L = a->len, H = a->nheads, P = a->headdim,
                  N = a->dstate, G = a->ngroups;
    int64_t n;
    if (B < 1 || L < 1 || H < 1 || P < 1 || N < 1 || G < 1 || G > H || H % G)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&n, sizeof(float), 4, B, L, H, P) ||
        !ssmi_sizes_ok(&n, sizeof(float), 4, B, L, H, N) ||
        !ssmi_sizes_ok(&n, sizeof(float), 4, B, H, P, N) ||
        !ssmi_sizes_ok(&n, sizeof(double), 3, B, H, P) ||
        /* per thread: checkpoints + chunk states + time vectors */
        !ssmi_sizes_ok(&n, sizeof(float), 3, 2 * bwd_chunk(L) + 4, P, N) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, 4, L + 16))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!a->x || !a->dt || !a->A || !a->B || !a->C)
        return SSM_FAIL(SSM_ERR_ARG);
    if (isnan(a->dt_min) || isnan(a->dt_max) || a->dt_min > a->dt_max)
        return SSM_FAIL(SSM_ERR_ARG);
    if ((g->dD && !a->D) || (g->dz && !a->z) || (g->ddt_bias && !a->dt_bias))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

typedef struct item_ws {
    float *ck;     /* [nc][P][N] state entering each chunk */
    float *S;      /* [Q + 1][P][N] states S_{t0-1} .. S_{t0+T-1} */
    float *Gs;     /* [P][N] adjoint */
    float *dtp;    /* [L] processed dt */
    float *dfac;   /* [L] d dt_processed / d dt_as_passed */
    float *av;     /* [L] a_t */
    float *dy0;    /* [P] */
    float *gB;     /* [P] G B */
    double *dDp;   /* [P] */
} item_ws;

typedef struct bwd_ctx {
    const ssm_ssd_args *a;
    const float *dy, *dh_last;
    const ssm_ssd_grads *g;
    float *pB, *pC;          /* per-head dB/dC when a group has several heads */
    double *sA, *sT, *sD;    /* per-item sums */
    int64_t Q, nc;
} bwd_ctx;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* sum_n a[n] b[n] over 8 lanes (lane j takes n = j mod 8), the lanes then
 * added in a fixed tree: one order for every caller, and a shape the
 * vectorizer maps onto one register. */
ALWAYS_INLINE float dot8(const float *restrict a, const float *restrict b, int64_t n)
{
    float l[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            l[j] += a[i + j] * b[i + j];
    for (int j = 0; i + j < n; j++)
        l[j] += a[i + j] * b[i + j];
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/* S_next = a S_prev + (dt x) B^T, P x N. */
ALWAYS_INLINE void rec_step(int64_t P, int64_t N, float at, float dtt,
                            const float *restrict x, const float *restrict Bv,
                            const float *sp, float *sn)
{
    for (int64_t p = 0; p < P; p++) {
        const float dx = dtt * x[p];
        const float *restrict r = sp + p * N;
        float *restrict o = sn + p * N;
        for (int64_t n = 0; n < N; n++)
            o[n] = at * r[n] + dx * Bv[n];
    }
}

/* One work item (batch b, head h) start to end; see the file comment. */
ALWAYS_INLINE void item_body(const bwd_ctx *c, int64_t it, const item_ws *w)
{
    const ssm_ssd_args *a = c->a;
    const ssm_ssd_grads *g = c->g;
    const int64_t L = a->len, H = a->nheads, P = a->headdim, N = a->dstate,
                  Gr = a->ngroups, hpg = H / Gr, PN = P * N, Q = c->Q, nc = c->nc;
    const int64_t b = it / H, h = it % H, gi = h / hpg;
    const int sep = hpg > 1;
    const float Ah = a->A[h];
    const float lo = a->dt_min, hi = a->dt_max;
    /* processed dt, its derivative, the decays */
    for (int64_t t = 0; t < L; t++) {
        float v = a->dt[(b * L + t) * H + h];
        if (a->dt_bias)
            v = v + a->dt_bias[h];
        float d = 1.0f, sp = v;
        if (a->dt_softplus && v <= 20.0f) {
            sp = log1pf(expf(v));
            d = 1.0f / (1.0f + expf(-v));
        }
        if (sp < lo) { sp = lo; d = 0.0f; }
        if (sp > hi) { sp = hi; d = 0.0f; }
        w->dtp[t] = sp;
        w->dfac[t] = d;
        w->av[t] = expf(sp * Ah);
    }
    /* forward: checkpoints */
    float *S = w->S;
    if (a->h0)
        memcpy(S, a->h0 + it * PN, (size_t)PN * sizeof(float));
    else
        memset(S, 0, (size_t)PN * sizeof(float));
    for (int64_t t = 0; t < L; t++) {
        if (t % Q == 0)
            memcpy(w->ck + (t / Q) * PN, S, (size_t)PN * sizeof(float));
        rec_step(P, N, w->av[t], w->dtp[t], a->x + ((b * L + t) * H + h) * P,
                 a->B + ((b * L + t) * Gr + gi) * N, S, S);
    }
    /* backward */
    float *restrict Gs = w->Gs;
    if (c->dh_last)
        memcpy(Gs, c->dh_last + it * PN, (size_t)PN * sizeof(float));
    else
        memset(Gs, 0, (size_t)PN * sizeof(float));
    double dA = 0.0, dTb = 0.0;
    for (int64_t p = 0; p < P; p++)
        w->dDp[p] = 0.0;
    for (int64_t ci = nc - 1; ci >= 0; ci--) {
        const int64_t t0 = ci * Q, T = L - t0 < Q ? L - t0 : Q;
        memcpy(w->S, w->ck + ci * PN, (size_t)PN * sizeof(float));
        for (int64_t i = 0; i < T; i++) {
            const int64_t t = t0 + i;
            rec_step(P, N, w->av[t], w->dtp[t], a->x + ((b * L + t) * H + h) * P,
                     a->B + ((b * L + t) * Gr + gi) * N, w->S + i * PN,
                     w->S + (i + 1) * PN);
        }
        for (int64_t i = T - 1; i >= 0; i--) {
            const int64_t t = t0 + i, row = (b * L + t) * H + h;
            const float *restrict x = a->x + row * P;
            const float *restrict Bv = a->B + ((b * L + t) * Gr + gi) * N;
            const float *restrict Cv = a->C + ((b * L + t) * Gr + gi) * N;
            const float *restrict dyt = c->dy + row * P;
            const float *restrict z = a->z ? a->z + row * P : NULL;
            const float *Sprev = w->S + i * PN, *St = w->S + (i + 1) * PN;
            const float at = w->av[t], dtt = w->dtp[t];
            float *restrict dy0 = w->dy0;
            /* output gate */
            for (int64_t p = 0; p < P; p++) {
                if (!z) {
                    dy0[p] = dyt[p];
                    continue;
                }
                const float zs = z[p], s = 1.0f / (1.0f + expf(-zs));
                dy0[p] = dyt[p] * (zs * s);
                if (g->dz) {
                    float y0 = dot8(Cv, St + p * N, N);
                    if (a->D)
                        y0 += (a->D_per_channel ? a->D[h * P + p] : a->D[h]) * x[p];
                    g->dz[row * P + p] = dyt[p] * y0 * (s * (1.0f + zs * (1.0f - s)));
                }
            }
            if (a->D)
                for (int64_t p = 0; p < P; p++)
                    w->dDp[p] += (double)dy0[p] * x[p];
            float *restrict dCo = !g->dC ? NULL
                                : sep ? c->pC + (it * L + t) * N
                                      : g->dC + ((b * L + t) * Gr + gi) * N;
            float *restrict dBo = !g->dB ? NULL
                                : sep ? c->pB + (it * L + t) * N
                                      : g->dB + ((b * L + t) * Gr + gi) * N;
            if (dCo)
                for (int64_t n = 0; n < N; n++)
                    dCo[n] = 0.0f;
            if (dBo)
                for (int64_t n = 0; n < N; n++)
                    dBo[n] = 0.0f;
            /* per state row p: G_t += dy0 C^T; dC += dy0 S_t; dB += x G_t;
             * G B and <G, S_{t-1}>; then G_{t-1} = a_t G_t */
            double gs = 0.0, xgb = 0.0;
            for (int64_t p = 0; p < P; p++) {
                const float d0 = dy0[p], xp = x[p];
                float *restrict gr = Gs + p * N;
                const float *restrict st = St + p * N;
                const float *restrict sp = Sprev + p * N;
                for (int64_t n = 0; n < N; n++)
                    gr[n] += d0 * Cv[n];
                if (dCo)
                    for (int64_t n = 0; n < N; n++)
                        dCo[n] += d0 * st[n];
                if (dBo)
                    for (int64_t n = 0; n < N; n++)
                        dBo[n] += xp * gr[n];
                const float gb = dot8(gr, Bv, N);
                w->gB[p] = gb;
                gs += (double)dot8(gr, sp, N);
                xgb += (double)xp * gb;
                for (int64_t n = 0; n < N; n++)
                    gr[n] *= at;
            }
            if (dBo)
                for (int64_t n = 0; n < N; n++)
                    dBo[n] *= dtt;
            if (g->dx)
                for (int64_t p = 0; p < P; p++) {
                    float v = dtt * w->gB[p];
                    if (a->D)
                        v += (a->D_per_channel ? a->D[h * P + p] : a->D[h]) * dy0[p];
                    g->dx[row * P + p] = v;
                }
            const double da = gs * (double)at;     /* dLoss/d a_t * a_t */
            dA += da * (double)dtt;
            const double ddr = (xgb + da * (double)Ah) * (double)w->dfac[t];
            if (g->ddt)
                g->ddt[(b * L + t) * H + h] = (float)ddr;
            dTb += ddr;
        }
    }
    if (g->dh0)
        memcpy(g->dh0 + it * PN, Gs, (size_t)PN * sizeof(float));
    c->sA[it] = dA;
    c->sT[it] = dTb;
    for (int64_t p = 0; p < P; p++)
        c->sD[it * P + p] = w->dDp[p];
}

static void item_generic(const bwd_ctx *c, int64_t it, const item_ws *w)
{
    item_body(c, it, w);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SSD_BWD_AVX2 1
__attribute__((target("avx2,fma")))
static void item_avx2(const bwd_ctx *c, int64_t it, const item_ws *w)
{
    item_body(c, it, w);
}
#endif

ssm_status ssm_ssd_scan_backward(const ssm_ssd_args *a, const float *dy,
                                 const float *dh_last, const ssm_ssd_grads *g)
{
    return ssmi_ssd_scan_backward_isa(a, dy, dh_last, g, SSM_SCAN_ISA_AUTO);
}

ssm_status ssmi_ssd_scan_backward_isa(const ssm_ssd_args *a, const float *dy,
                                      const float *dh_last,
                                      const ssm_ssd_grads *g, int isa)
{
    SSM_TRY(check(a, dy, g));
    /* The instruction set from the CPU (never the thread count): AVX2 +
     * FMA where present (contracted multiply-adds), else portable C; the
     * white-box tests force each. */
    void (*item)(const bwd_ctx *, int64_t, const item_ws *) = item_generic;
    int have_avx2 = 0;
#ifdef SSD_BWD_AVX2
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (isa == SSM_SCAN_ISA_AVX2 && !have_avx2)
        return SSM_FAIL(SSM_ERR_ARG);
    if (isa != SSM_SCAN_ISA_AUTO && isa != SSM_SCAN_ISA_GENERIC &&
        isa != SSM_SCAN_ISA_AVX2)
        return SSM_FAIL(SSM_ERR_ARG);
#ifdef SSD_BWD_AVX2
    if (have_avx2 && isa != SSM_SCAN_ISA_GENERIC)
        item = item_avx2;
#endif
    const int64_t B = a->batch, L = a->len, H = a->nheads, P = a->headdim,
                  N = a->dstate, Gr = a->ngroups, hpg = H / Gr, PN = P * N;
    const int64_t Q = bwd_chunk(L), nc = (L + Q - 1) / Q, items = B * H;
    const int sep = hpg > 1;   /* per-head dB/dC buffers, then summed */
    const int64_t per = pad16(nc * PN) + pad16((Q + 1) * PN) + pad16(PN) +
                        3 * pad16(L) + 2 * pad16(P) + 2 * pad16(P);
    int nt = ssmi_max_threads();
    if ((int64_t)nt > items)
        nt = (int)items;
    if (nt < 1)
        nt = 1;
    int64_t cnt;
    float *ws = NULL, *pB = NULL, *pC = NULL;
    double *sA = NULL, *sD = NULL, *sT = NULL;
    if (!ssmi_sizes_ok(&cnt, sizeof(float), 2, (int64_t)nt, per))
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status st = SSM_OK;
    ws = ssmi_alloc((size_t)cnt, sizeof(float));
    sA = ssmi_alloc((size_t)items, sizeof(double));
    sT = ssmi_alloc((size_t)items, sizeof(double));
    sD = ssmi_alloc((size_t)(items * P), sizeof(double));
    if (!ws || !sA || !sT || !sD) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto out;
    }
    if (sep && g->dB && !(pB = ssmi_alloc((size_t)(items * L * N), sizeof(float)))) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto out;
    }
    if (sep && g->dC && !(pC = ssmi_alloc((size_t)(items * L * N), sizeof(float)))) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto out;
    }
    bwd_ctx ctx = { a, dy, dh_last, g, pB, pC, sA, sT, sD, Q, nc };
    const int par = items > 1 && items * PN * L >= 32768;
    #pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
        float *w0 = ws + (int64_t)thread_num() * per;
        item_ws w;
        w.ck = w0; w0 += pad16(nc * PN);
        w.S = w0; w0 += pad16((Q + 1) * PN);
        w.Gs = w0; w0 += pad16(PN);
        w.dtp = w0; w0 += pad16(L);
        w.dfac = w0; w0 += pad16(L);
        w.av = w0; w0 += pad16(L);
        w.dy0 = w0; w0 += pad16(P);
        w.gB = w0; w0 += pad16(P);
        w.dDp = (double *)(void *)w0;
        item(&ctx, it, &w);
    }
    /* sums over the batch (and the group's heads) in index order */
    if (g->dA)
        for (int64_t h = 0; h < H; h++) {
            double s = 0.0;
            for (int64_t b = 0; b < B; b++)
                s += sA[b * H + h];
            g->dA[h] = (float)s;
        }
    if (g->ddt_bias)
        for (int64_t h = 0; h < H; h++) {
            double s = 0.0;
            for (int64_t b = 0; b < B; b++)
                s += sT[b * H + h];
            g->ddt_bias[h] = (float)s;
        }
    if (g->dD)
        for (int64_t h = 0; h < H; h++) {
            if (a->D_per_channel) {
                for (int64_t p = 0; p < P; p++) {
                    double s = 0.0;
                    for (int64_t b = 0; b < B; b++)
                        s += sD[(b * H + h) * P + p];
                    g->dD[h * P + p] = (float)s;
                }
            } else {
                double s = 0.0;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t p = 0; p < P; p++)
                        s += sD[(b * H + h) * P + p];
                g->dD[h] = (float)s;
            }
        }
    if (sep) {
        const int64_t rowsBG = B * L * Gr;
        #pragma omp parallel for schedule(static) if (rowsBG * N * hpg >= 65536)
        for (int64_t r = 0; r < rowsBG; r++) {
            const int64_t b = r / (L * Gr), t = (r / Gr) % L, gi = r % Gr;
            for (int pass = 0; pass < 2; pass++) {
                const float *src = pass ? pC : pB;
                float *dst = pass ? g->dC : g->dB;
                if (!src)
                    continue;
                float *o = dst + r * N;
                for (int64_t n = 0; n < N; n++)
                    o[n] = 0.0f;
                for (int64_t j = 0; j < hpg; j++) {
                    const float *s = src + ((b * H + gi * hpg + j) * L + t) * N;
                    for (int64_t n = 0; n < N; n++)
                        o[n] += s[n];
                }
            }
        }
    }
out:
    ssmi_free(ws);
    ssmi_free(pB);
    ssmi_free(pC);
    ssmi_free(sA);
    ssmi_free(sT);
    ssmi_free(sD);
    return st;
}
