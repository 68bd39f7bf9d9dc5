/*
 * selective_bwd_tc.c -- the time-chunked path of the selective scan
 * backward (Mamba, Gu and Dao 2023, Section 3.2, eq. 2a-2b; notation and the
 * adjoint recurrence in selective_bwd_kernel.h) for few long channels: with
 * batch * dim <= 8 there are too few channels to share among threads, so
 * time is shared too, as the forward's chunked path does (selective.c).
 *
 * Time is cut into chunks of CH steps (CH from the shapes only: the
 * backward's automatic checkpoint interval).  Work items are (batch row,
 * group, chunk): a group's channels share B, C, dB, dC, so one item owns
 * its chunk's rows of dB and dC and nothing is reduced across items for
 * them.  Three parallel passes over the items and one cheap sequential
 * chain:
 *   1. per item and channel, from zero: the state at the chunk's end hl,
 *      the chunk's decay P = prod_t a_t and the adjoint it passes to the
 *      state before it, Gl = sum_t dy0_t C_t prod_{s<=t} a_s (one forward
 *      sweep, selective_bwd_tc_kernel.h);
 *   2. the carry chain per channel (O(chunks * N)): the exact state entering
 *      chunk k, hin_(k+1) = hl_k + P_k hin_k (hin_0 = h0), and the exact
 *      adjoint entering it from the right, gin_(k-1) = Gl_k + P_k gin_k
 *      (gin_last = dh_last);
 *   3. per item, the sequential path's own kernels from (hin_k, gin_k):
 *      recompute, adjoint, the sums over n, the elementwise ends; the
 *      adjoint leaving chunk 0 is dh0.
 * Pass 1 replaces the sequential path's checkpoint pass at the price of a
 * product and an FMA per state and step, and of reading C; with the B, C
 * tiles shared by a group's channels and vector transposes the whole is
 * faster than the per-channel path on one thread (docs/scan-backward.md).
 *
 * Determinism: the items and chunks depend on the shapes only; each item
 * writes its own du, ddelta, dz, dB, dC steps and its own partials of dA
 * (double, per channel and state), dD and ddelta_bias (eight double sums
 * keyed by absolute time, as bwd_dsum); after the last pass these are added
 * chunk by chunk, last chunk first, then over the batch in index order.
 * The numbers differ from the sequential path's by rounding (the carries),
 * never with the thread count; every ISA gives the same bytes (the kernels
 * compute lane by lane).  Memory: O(batch dim N len / CH) for the carries
 * and partials, per-thread [CH][N] tiles; never [B][D][L][N].
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "selective_bwd_internal.h"

/* The adjoint kernel sums dA in float over BWD_DA_BLOCK (64) steps of
 * absolute time (selective_bwd.c); chunks are multiples of it, so no float
 * block straddles two items. */

/* At most this many channels (batch * dim) take the path, and only with at
 * least TC_MIN_CHUNKS chunks. */
#define TC_MAX_CHANNELS 8
#define TC_MIN_CHUNKS 8

static int tc_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t tc_pad16(int64_t n) { return (n + 15) / 16 * 16; }

int64_t ssmi_scan_bwd_tc_chunk(int64_t len, int64_t dstate)
{
    /* The sequential path's checkpoint interval: a power of two >= sqrt(len)
     * (about as many chunks as steps per chunk: the carries and partials,
     * O(chunks), stay as small as the tiles, O(steps per chunk)) and
     * >= max(64, 4096 / dstate): a multiple of BWD_DA_BLOCK wherever the
     * path is taken (8 chunks or more). */
    return ssmi_scan_bwd_auto_chunk(len, dstate);
}

int ssmi_scan_bwd_tc_path(int64_t batch, int64_t dim, int64_t dstate, int64_t len)
{
    if (batch > TC_MAX_CHANNELS || dim > TC_MAX_CHANNELS || batch * dim > TC_MAX_CHANNELS)
        return 0;
    if (ssmi_scan_bwd_split(batch, dim, dstate, len))
        return 0;
    return len / ssmi_scan_bwd_tc_chunk(len, dstate) >= TC_MIN_CHUNKS;
}

/* One channel's buffers in pass 3 (two sets: the paired adjoint). */
typedef struct tc_set {
    float *H, *Q, *P0, *P1, *P2, *dtb, *dsig, *dy0, *s1, *s2, *ys, *dd, *g, *ac;
} tc_set;

ssm_status ssmi_scan_bwd_tc(const ssm_scan_args *a, const float *dy,
                            const float *dh_last, const ssm_scan_grads *gr,
                            int64_t chunk, int isa)
{
    bwd_kern k;
    if (chunk < 0 || ssmi_scan_bwd_kern(isa, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t batch = a->batch, cpg = dim / G, nbd = batch * dim, nbg = batch * G;
    const int want_ds = gr->ddelta || gr->ddelta_bias;
    const int want_s1 = gr->du || want_ds;
    const int want_st = want_s1 || gr->dA || gr->dB || gr->dC || gr->dz || gr->dh0;
    if (!want_st && !gr->dD)
        return SSM_OK;
    int64_t CH = chunk > 0 ? chunk : ssmi_scan_bwd_tc_chunk(L, N);
    if (CH > L)
        CH = L;
    const int64_t nck = (L + CH - 1) / CH, items = nbg * nck;
    /* No overflow: the caller bounded B ([batch][G][N][len] floats) to
     * 2^56 bytes, so 14 CH N + 14 CH + 4 N < 2^62. */
    const int64_t TN = tc_pad16(CH * N), TP = tc_pad16(CH), NP = tc_pad16(N);
    const int64_t per = 14 * TN + 14 * TP + 4 * NP;
    int nt = ssmi_max_threads();
    if (nt < 1)
        nt = 1;
    int64_t n_cs, n_dA, n_q, n_thr;
    if (!ssmi_sizes_ok(&n_cs, sizeof(float), 4, (int64_t)5, nbd, nck, N)
        || !ssmi_sizes_ok(&n_dA, sizeof(double), 3, nck, nbd, N)
        || !ssmi_sizes_ok(&n_q, sizeof(double), 3, nck, nbd, (int64_t)16)
        || !ssmi_sizes_ok(&n_thr, sizeof(float), 2, per, (int64_t)nt))
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *cs = want_st ? ssmi_alloc((size_t)n_cs, sizeof(float)) : NULL;
    double *dAp = want_st ? ssmi_alloc((size_t)n_dA, sizeof(double)) : NULL;
    double *q8 = ssmi_alloc((size_t)n_q, sizeof(double));
    float *thr = ssmi_alloc((size_t)n_thr, sizeof(float));
    if ((want_st && (!cs || !dAp)) || !q8 || !thr) {
        ssmi_free(cs); ssmi_free(dAp); ssmi_free(q8); ssmi_free(thr);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    /* Per channel and chunk, [nbd][nck][N] each: the pass-1 results and the
     * carries. */
    const int64_t cn = nbd * nck * N;
    float *hl = cs, *Pk = cs + cn, *Gl = cs + 2 * cn, *hin = cs + 3 * cn, *gin = cs + 4 * cn;

#pragma omp parallel num_threads(nt)
    {
        float *w = thr + (int64_t)tc_thread_num() * per;
        float *Bt = w, *Ct = w + TN, *pB = w + 2 * TN, *pC = w + 3 * TN;
        tc_set set[2];
        float *q = w + 4 * TN;
        for (int j = 0; j < 2; j++) {
            tc_set *S = &set[j];
            S->H = q; S->Q = q + TN; S->P0 = q + 2 * TN; S->P1 = q + 3 * TN;
            S->P2 = q + 4 * TN;
            q += 5 * TN;
            S->dtb = q; S->dsig = q + TP; S->dy0 = q + 2 * TP; S->s1 = q + 3 * TP;
            S->s2 = q + 4 * TP; S->ys = q + 5 * TP; S->dd = q + 6 * TP;
            q += 7 * TP;
            S->g = q; S->ac = q + NP;
            q += 2 * NP;
        }

        /* Pass 1: each chunk from zero. */
        if (want_st) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < items; it++) {
                const int64_t bg = it / nck, kc = it % nck, b = bg / G, g = bg % G;
                const int64_t tb = kc * CH, Tn = CH < L - tb ? CH : L - tb;
                k.tr(Tn, N, a->B + bg * N * L + tb, L, Bt, N);
                k.tr(Tn, N, a->C + bg * N * L + tb, L, Ct, N);
                tc_set *S = &set[0];
                for (int64_t d = g * cpg; d < (g + 1) * cpg; d++) {
                    const int64_t bd = b * dim + d, off = bd * L + tb, o = (bd * nck + kc) * N;
                    k.pre(Tn, dy + off, a->z ? a->z + off : NULL, S->dy0);
                    k.dt(Tn, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                         a->delta_softplus, S->dtb, NULL);
                    /* Every decay <= 1: A <= 0 and dt >= 0 (always under
                     * softplus).  A NaN leaves the flag set: NaN * 0 is
                     * still NaN in G. */
                    int flush = 1;
                    for (int64_t n = 0; n < N; n++)
                        flush &= !(a->A[d * N + n] > 0.0f);
                    if (!a->delta_softplus)
                        for (int64_t t = 0; t < Tn; t++)
                            flush &= !(S->dtb[t] < 0.0f);
                    k.local(flush, Tn, N, a->A + d * N, Bt, Ct, S->dtb, a->u + off, S->dy0,
                            hl + o, Pk + o, Gl + o);
                }
            }

            /* Pass 2: the carry chains, per channel (O(chunks * N)). */
#pragma omp for schedule(static)
            for (int64_t bd = 0; bd < nbd; bd++) {
                const int64_t c0 = bd * nck * N;
                for (int64_t n = 0; n < N; n++)
                    hin[c0 + n] = a->h0 ? a->h0[bd * N + n] : 0.0f;
                for (int64_t kc = 0; kc + 1 < nck; kc++) {
                    const int64_t o = c0 + kc * N;
                    for (int64_t n = 0; n < N; n++)
                        hin[o + N + n] = fmaf(Pk[o + n], hin[o + n], hl[o + n]);
                }
                const int64_t ol = c0 + (nck - 1) * N;
                for (int64_t n = 0; n < N; n++)
                    gin[ol + n] = dh_last ? dh_last[bd * N + n] : 0.0f;
                for (int64_t kc = nck - 1; kc > 0; kc--) {
                    const int64_t o = c0 + kc * N;
                    for (int64_t n = 0; n < N; n++)
                        gin[o - N + n] = fmaf(Pk[o + n], gin[o + n], Gl[o + n]);
                }
            }
        }

        /* Pass 3: each chunk exactly, from its entering state and exiting
         * adjoint, with the sequential path's kernels. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            const int64_t bg = it / nck, kc = it % nck, b = bg / G, g = bg % G;
            const int64_t tb = kc * CH, Tn = CH < L - tb ? CH : L - tb;
            const int64_t d0 = g * cpg, d1 = d0 + cpg;
            float *wB = gr->dB ? pB : NULL, *wC = gr->dC ? pC : NULL;
            if (want_st) {
                k.tr(Tn, N, a->B + bg * N * L + tb, L, Bt, N);
                k.tr(Tn, N, a->C + bg * N * L + tb, L, Ct, N);
            }
            for (int64_t d = d0; d < d1;) {
                const int np = N == 16 && d + 1 < d1 ? 2 : 1;
                for (int j = 0; j < np; j++) {
                    tc_set *S = &set[j];
                    const int64_t bd = b * dim + d + j, off = bd * L + tb;
                    double *qd = q8 + (kc * nbd + bd) * 16;
                    for (int i = 0; i < 16; i++)
                        qd[i] = 0.0;
                    k.pre(Tn, dy + off, a->z ? a->z + off : NULL, S->dy0);
                    if (gr->dD)
                        k.dsum(tb, Tn, S->dy0, a->u + off, qd);
                    if (!want_st)
                        continue;
                    k.dt(Tn, a->delta + off, a->delta_bias ? a->delta_bias[d + j] : 0.0f,
                         a->delta_softplus, S->dtb, want_ds ? S->dsig : NULL);
                    const int64_t o = (bd * nck + kc) * N;
                    k.recompute(Tn, N, a->A + (d + j) * N, Bt, Ct, S->dtb, a->u + off,
                                hin + o, S->H, S->Q, gr->dz ? S->P0 : NULL);
                    memcpy(S->g, gin + o, (size_t)N * sizeof(float));
                    memset(S->ac, 0, (size_t)N * sizeof(float));
                    double *dAd = dAp + (kc * nbd + bd) * N;
                    for (int64_t n = 0; n < N; n++)
                        dAd[n] = 0.0;
                }
                if (!want_st) {
                    d += np;
                    continue;
                }
                const int64_t bd = b * dim + d, off = bd * L + tb, o = (bd * nck + kc) * N;
                if (np == 2) {
                    const float *A2[2] = { a->A + d * N, a->A + (d + 1) * N };
                    const float *dt2[2] = { set[0].dtb, set[1].dtb };
                    const float *u2[2] = { a->u + off, a->u + off + L };
                    const float *dy2[2] = { set[0].dy0, set[1].dy0 };
                    const float *hin2[2] = { hin + o, hin + o + nck * N };
                    const float *H2[2] = { set[0].H, set[1].H };
                    const float *Q2[2] = { set[0].Q, set[1].Q };
                    float *g2[2] = { set[0].g, set[1].g };
                    float *ac2[2] = { set[0].ac, set[1].ac };
                    double *ad2[2] = { dAp + (kc * nbd + bd) * N, dAp + (kc * nbd + bd + 1) * N };
                    float *p12[2] = { set[0].P1, set[1].P1 };
                    float *p22[2] = { set[0].P2, set[1].P2 };
                    k.adjoint2(wB != NULL, wC != NULL, d == d0, tb, Tn, A2, Bt, Ct, dt2, u2,
                               dy2, hin2, H2, Q2, g2, ac2, ad2, p12, p22, wB, wC);
                } else {
                    k.adjoint(wB != NULL, wC != NULL, d == d0, tb, Tn, N, a->A + d * N, Bt, Ct,
                              set[0].dtb, a->u + off, set[0].dy0, hin + o, set[0].H,
                              set[0].Q, set[0].g, set[0].ac, dAp + (kc * nbd + bd) * N,
                              set[0].P1, set[0].P2, wB, wC);
                }
                for (int j = 0; j < np; j++) {
                    tc_set *S = &set[j];
                    const int64_t bdj = bd + j, offj = bdj * L + tb;
                    double *dAd = dAp + (kc * nbd + bdj) * N;
                    /* The float block left open when the chunk does not
                     * start on a BWD_DA_BLOCK boundary (a forced chunk). */
                    for (int64_t n = 0; n < N; n++)
                        dAd[n] += (double)S->ac[n];
                    if (kc == 0 && gr->dh0)
                        memcpy(gr->dh0 + bdj * N, S->g, (size_t)N * sizeof(float));
                    const float *z = a->z ? a->z + offj : NULL;
                    if (want_s1)
                        k.tree(Tn, N, S->P1, S->s1);
                    if (want_ds)
                        k.tree(Tn, N, S->P2, S->s2);
                    if (gr->dz)
                        k.tree(Tn, N, S->P0, S->ys);
                    float *dx = gr->ddelta ? gr->ddelta + offj : want_ds ? S->dd : NULL;
                    k.post(Tn, a->D != NULL, a->D ? a->D[d + j] : 0.0f, S->dtb, S->dsig,
                           a->u + offj, dy + offj, z, S->dy0, S->s1, S->s2, S->ys,
                           gr->du ? gr->du + offj : NULL, dx, gr->dz ? gr->dz + offj : NULL);
                    if (gr->ddelta_bias)
                        k.dsum(tb, Tn, dx, NULL, q8 + (kc * nbd + bdj) * 16 + 8);
                }
                d += np;
            }
            if (wB)
                k.tr(N, Tn, pB, N, gr->dB + bg * N * L + tb, L);
            if (wC)
                k.tr(N, Tn, pC, N, gr->dC + bg * N * L + tb, L);
        }

        /* The cross-chunk sums: per channel, chunks last to first, then
         * the batch in index order. */
#pragma omp for schedule(static)
        for (int64_t d = 0; d < dim; d++) {
            if (gr->dA)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0.0;
                    for (int64_t b = 0; b < batch; b++)
                        for (int64_t kc = nck - 1; kc >= 0; kc--)
                            s += dAp[(kc * nbd + b * dim + d) * N + n];
                    gr->dA[d * N + n] = (float)s;
                }
            for (int w8 = 0; w8 < 2; w8++) {
                float *out = w8 == 0 ? gr->dD : gr->ddelta_bias;
                if (!out)
                    continue;
                double s = 0.0;
                for (int64_t b = 0; b < batch; b++) {
                    double t8[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
                    for (int64_t kc = nck - 1; kc >= 0; kc--) {
                        const double *qd = q8 + (kc * nbd + b * dim + d) * 16 + 8 * w8;
                        for (int j = 0; j < 8; j++)
                            t8[j] += qd[j];
                    }
                    s += ((t8[0] + t8[1]) + (t8[2] + t8[3])) + ((t8[4] + t8[5]) + (t8[6] + t8[7]));
                }
                out[d] = (float)s;
            }
        }
    }
    ssmi_free(cs); ssmi_free(dAp); ssmi_free(q8); ssmi_free(thr);
    return SSM_OK;
}
