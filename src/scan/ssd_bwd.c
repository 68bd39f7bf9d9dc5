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
 * Nothing depends on the thread count.  The dot products over P or N run
 * in float in index order, the per-token scalars in double.
 */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

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

ssm_status ssm_ssd_scan_backward(const ssm_ssd_args *a, const float *dy,
                                 const float *dh_last, const ssm_ssd_grads *g)
{
    SSM_TRY(check(a, dy, g));
    const int64_t B = a->batch, L = a->len, H = a->nheads, P = a->headdim,
                  N = a->dstate, Gr = a->ngroups, hpg = H / Gr, PN = P * N;
    const int64_t Q = bwd_chunk(L), nc = (L + Q - 1) / Q, items = B * H;
    const int wantBC = g->dB || g->dC;
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
    const int par = items > 1 && items * PN * L >= 32768;
    #pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
        const int64_t b = it / H, h = it % H, gi = h / hpg;
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
            w.dtp[t] = sp;
            w.dfac[t] = d;
            w.av[t] = expf(sp * Ah);
        }
        /* forward: checkpoints */
        float *S = w.S;
        if (a->h0)
            memcpy(S, a->h0 + it * PN, (size_t)PN * sizeof(float));
        else
            memset(S, 0, (size_t)PN * sizeof(float));
        for (int64_t t = 0; t < L; t++) {
            if (t % Q == 0)
                memcpy(w.ck + (t / Q) * PN, S, (size_t)PN * sizeof(float));
            const float *x = a->x + ((b * L + t) * H + h) * P;
            const float *Bv = a->B + ((b * L + t) * Gr + gi) * N;
            const float at = w.av[t], dtt = w.dtp[t];
            for (int64_t p = 0; p < P; p++) {
                const float dx = dtt * x[p];
                float *s = S + p * N;
                for (int64_t n = 0; n < N; n++)
                    s[n] = at * s[n] + dx * Bv[n];
            }
        }
        /* backward */
        float *Gs = w.Gs;
        if (dh_last)
            memcpy(Gs, dh_last + it * PN, (size_t)PN * sizeof(float));
        else
            memset(Gs, 0, (size_t)PN * sizeof(float));
        double dA = 0.0, dTb = 0.0;
        for (int64_t p = 0; p < P; p++)
            w.dDp[p] = 0.0;
        for (int64_t c = nc - 1; c >= 0; c--) {
            const int64_t t0 = c * Q, T = L - t0 < Q ? L - t0 : Q;
            memcpy(w.S, w.ck + c * PN, (size_t)PN * sizeof(float));
            for (int64_t i = 0; i < T; i++) {
                const int64_t t = t0 + i;
                const float *x = a->x + ((b * L + t) * H + h) * P;
                const float *Bv = a->B + ((b * L + t) * Gr + gi) * N;
                const float at = w.av[t], dtt = w.dtp[t];
                const float *sp = w.S + i * PN;
                float *sn = w.S + (i + 1) * PN;
                for (int64_t p = 0; p < P; p++) {
                    const float dx = dtt * x[p];
                    for (int64_t n = 0; n < N; n++)
                        sn[p * N + n] = at * sp[p * N + n] + dx * Bv[n];
                }
            }
            for (int64_t i = T - 1; i >= 0; i--) {
                const int64_t t = t0 + i, row = (b * L + t) * H + h;
                const float *x = a->x + row * P;
                const float *Bv = a->B + ((b * L + t) * Gr + gi) * N;
                const float *Cv = a->C + ((b * L + t) * Gr + gi) * N;
                const float *dyt = dy + row * P;
                const float *z = a->z ? a->z + row * P : NULL;
                const float *Sprev = w.S + i * PN, *St = w.S + (i + 1) * PN;
                const float at = w.av[t], dtt = w.dtp[t];
                /* output gate */
                for (int64_t p = 0; p < P; p++) {
                    if (!z) {
                        w.dy0[p] = dyt[p];
                        continue;
                    }
                    const float zs = z[p], s = 1.0f / (1.0f + expf(-zs));
                    w.dy0[p] = dyt[p] * (zs * s);
                    if (g->dz) {
                        float y0 = 0.0f;
                        for (int64_t n = 0; n < N; n++)
                            y0 += Cv[n] * St[p * N + n];
                        if (a->D)
                            y0 += (a->D_per_channel ? a->D[h * P + p] : a->D[h]) * x[p];
                        g->dz[row * P + p] = dyt[p] * y0 * (s * (1.0f + zs * (1.0f - s)));
                    }
                }
                if (a->D)
                    for (int64_t p = 0; p < P; p++)
                        w.dDp[p] += (double)w.dy0[p] * x[p];
                /* G_t += dy0 C^T */
                for (int64_t p = 0; p < P; p++) {
                    const float d0 = w.dy0[p];
                    float *gr = Gs + p * N;
                    for (int64_t n = 0; n < N; n++)
                        gr[n] += d0 * Cv[n];
                }
                /* dC_t = S_t^T dy0, dB_t = dt G^T x (this head's part) */
                float *dCo = !wantBC || !g->dC ? NULL
                           : sep ? pC + (it * L + t) * N
                                 : g->dC + ((b * L + t) * Gr + gi) * N;
                float *dBo = !wantBC || !g->dB ? NULL
                           : sep ? pB + (it * L + t) * N
                                 : g->dB + ((b * L + t) * Gr + gi) * N;
                if (dCo) {
                    for (int64_t n = 0; n < N; n++)
                        dCo[n] = 0.0f;
                    for (int64_t p = 0; p < P; p++) {
                        const float d0 = w.dy0[p];
                        for (int64_t n = 0; n < N; n++)
                            dCo[n] += d0 * St[p * N + n];
                    }
                }
                if (dBo) {
                    for (int64_t n = 0; n < N; n++)
                        dBo[n] = 0.0f;
                    for (int64_t p = 0; p < P; p++) {
                        const float xp = x[p];
                        for (int64_t n = 0; n < N; n++)
                            dBo[n] += xp * Gs[p * N + n];
                    }
                    for (int64_t n = 0; n < N; n++)
                        dBo[n] *= dtt;
                }
                /* G B, <G, S_{t-1}> */
                double gs = 0.0, xgb = 0.0;
                for (int64_t p = 0; p < P; p++) {
                    const float *gr = Gs + p * N, *sr = Sprev + p * N;
                    float acc = 0.0f, acs = 0.0f;
                    for (int64_t n = 0; n < N; n++) {
                        acc += gr[n] * Bv[n];
                        acs += gr[n] * sr[n];
                    }
                    w.gB[p] = acc;
                    gs += acs;
                    xgb += (double)x[p] * acc;
                }
                if (g->dx)
                    for (int64_t p = 0; p < P; p++) {
                        float v = dtt * w.gB[p];
                        if (a->D)
                            v += (a->D_per_channel ? a->D[h * P + p] : a->D[h]) * w.dy0[p];
                        g->dx[row * P + p] = v;
                    }
                const double da = gs * (double)at;     /* dLoss/d a_t * a_t */
                dA += da * (double)dtt;
                const double ddtp = xgb + da * (double)Ah;
                const double ddr = ddtp * (double)w.dfac[t];
                if (g->ddt)
                    g->ddt[(b * L + t) * H + h] = (float)ddr;
                dTb += ddr;
                /* G_{t-1} = a_t G_t */
                for (int64_t q = 0; q < PN; q++)
                    Gs[q] *= at;
            }
        }
        if (g->dh0)
            memcpy(g->dh0 + it * PN, Gs, (size_t)PN * sizeof(float));
        sA[it] = dA;
        sT[it] = dTb;
        for (int64_t p = 0; p < P; p++)
            sD[it * P + p] = w.dDp[p];
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
