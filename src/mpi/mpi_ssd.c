/*
 * mpi_ssd.c -- the SSD scan of Mamba-2 (ssm_ssd_scan) over the ranks of a
 * communicator, each rank a consecutive block of tokens.
 *
 * Per (batch, head) the recurrence S_t = a_t S_{t-1} + dt_t x_t B_t^T has a
 * SCALAR decay a_t = exp(dt_t A_h) shared by the head's P x N state (Dao and
 * Gu 2024, eq. 1 with scalar A), so a block is the affine map
 * S -> P_blk S + S_loc with P_blk = exp(A_h sum_t dt_t) one number and S_loc
 * the block's end state from zero.  The carries (P_blk, S_loc) compose as
 * those of the selective scan, (P1, S1) then (P2, S2) = (P2 P1, P2 S1 + S2),
 * here with one decay for P*N states: an MPI_Exscan of elements of
 * 1 + P*N floats.  The state entering rank r's block, S_in, then adds to its
 * outputs (before the z gate)
 *     y_t += C_t . (exp(A_h cum_t) S_in),   cum_t = sum_{s<=t} dt_s
 * a map over t with no chain through time (not a second scan).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

/* Mamba-2's dt exactly as src/scan/ssd.c computes it: (dt + bias),
 * softplus with threshold 20, clamp written so that NaN passes. */
static inline float dt_proc(float v, const float *bias, int softplus,
                            float lo, float hi)
{
    if (bias)
        v = v + *bias;
    if (softplus && v <= 20.0f)
        v = log1pf(expf(v));
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

static int mul_ok(int64_t *r, int64_t a, int64_t b)
{
    return !__builtin_mul_overflow(a, b, r);
}

/* Local checks (as ssm_ssd_scan's, len >= 0, data pointers may be NULL
 * when len == 0; A always, it is a parameter every rank hashes). */
static int ssd_args_ok(const ssm_ssd_args *a)
{
    if (!a || !a->A)
        return 0;
    if (a->batch < 1 || a->len < 0 || a->nheads < 1 || a->headdim < 1 ||
        a->dstate < 1 || a->ngroups < 1 || a->ngroups > a->nheads ||
        a->nheads % a->ngroups != 0)
        return 0;
    if (isnan(a->dt_min) || isnan(a->dt_max) || a->dt_min > a->dt_max)
        return 0;
    if (a->len > 0 && (!a->x || !a->dt || !a->B || !a->C || !a->y))
        return 0;
    int64_t t, u;
    /* the carry buffers: (1 + P N) floats per (b, h), twice, plus S_loc */
    return mul_ok(&t, a->headdim, a->dstate) && mul_ok(&u, t + 1, a->nheads) &&
           mul_ok(&u, u, a->batch) && mul_ok(&u, u, 4 * (int64_t)sizeof(float)) &&
           mul_ok(&t, a->batch, a->len) && mul_ok(&t, t, a->nheads) &&
           mul_ok(&u, t, a->headdim) && mul_ok(&u, u, (int64_t)sizeof(float)) &&
           mul_ok(&t, a->batch * a->len, a->ngroups) && mul_ok(&t, t, a->dstate) &&
           mul_ok(&t, t, (int64_t)sizeof(float));
}

static void ssd_args_agree(ssmi_agree *g, const ssm_ssd_args *a, int ok)
{
    uint64_t h = SSMI_HASH0;
    if (ok) {
        const int64_t H = a->nheads;
        h = ssmi_hash(h, a->A, (size_t)H * sizeof(float));
        h = ssmi_hash(h, a->D, (size_t)(a->D_per_channel ? H * a->headdim : H) *
                                   sizeof(float));
        h = ssmi_hash(h, a->dt_bias, (size_t)H * sizeof(float));
        h = ssmi_hash(h, &a->dt_min, sizeof a->dt_min);
        h = ssmi_hash(h, &a->dt_max, sizeof a->dt_max);
    }
    ssmi_agree_add(g, ok ? a->batch : 0);
    ssmi_agree_add(g, ok ? a->nheads : 0);
    ssmi_agree_add(g, ok ? a->headdim : 0);
    ssmi_agree_add(g, ok ? a->dstate : 0);
    ssmi_agree_add(g, ok ? a->ngroups : 0);
    ssmi_agree_add(g, ok ? (a->dt_softplus != 0) : 0);
    ssmi_agree_add(g, ok ? (a->D != NULL) : 0);
    ssmi_agree_add(g, ok ? (a->D != NULL && a->D_per_channel != 0) : 0);
    ssmi_agree_add(g, ok ? (a->dt_bias != NULL) : 0);
    /* z is sequence data: an empty block may pass none, the others agree. */
    ssmi_agree_add_opt(g, !ok || a->len > 0, ok ? (a->z != NULL) : 0);
    ssmi_agree_add(g, ssmi_hash_q(h));
    ssmi_agree_any(g, ok && a->len > 0);
}

/* The fix-up of one (batch, head) over the block, then the z gate:
 *   y_t[p] += exp(A_h cum_t) sum_n C_t[n] S_in[p][n],  y_t[p] *= silu(z_t[p])
 * with SinT = S_in transposed [N][P].  Every output: one fma chain over n
 * in ascending order, then one fma (fmaf and the FMA instruction round the
 * same), so the AVX2+FMA instantiation gives the portable code's bits.
 * Stops the dot products once exp(A cum) has underflowed to 0 for good
 * (mono: every dt >= 0 and A <= 0, so A cum never increases). */
static inline __attribute__((always_inline)) void
fixup_head(const ssm_ssd_args *a, int64_t bh, const float *SinT, int dtpos)
{
    const int64_t L = a->len, H = a->nheads, P = a->headdim, N = a->dstate,
                  G = a->ngroups, hpg = H / G;
    const int64_t b = bh / H, h = bh % H, gi = h / hpg;
    const float Ah = a->A[h];
    const int mono = dtpos && Ah <= 0.0f;
    double cum = 0.0;
    int gone = 0;   /* exp(A cum) has underflowed for good */
    float acc[64];
    for (int64_t t = 0; t < L; t++) {
        const int64_t bt = b * L + t;
        float *y = a->y + (bt * H + h) * P;
        float dec = 0.0f;
        if (!gone) {
            cum += (double)dt_proc(a->dt[bt * H + h],
                                   a->dt_bias ? a->dt_bias + h : NULL,
                                   a->dt_softplus, a->dt_min, a->dt_max);
            dec = (float)exp((double)Ah * cum);
            gone = dec == 0.0f && mono;
        }
        if (dec != 0.0f) {
            const float *Ct = a->C + (bt * G + gi) * N;
            for (int64_t p0 = 0; p0 < P; p0 += 64) {
                const int64_t np = P - p0 < 64 ? P - p0 : 64;
                for (int64_t q = 0; q < np; q++)
                    acc[q] = 0.0f;
                for (int64_t n = 0; n < N; n++) {
                    const float c = Ct[n];
                    const float *s = SinT + n * P + p0;
                    for (int64_t q = 0; q < np; q++)
                        acc[q] = fmaf(c, s[q], acc[q]);
                }
                for (int64_t q = 0; q < np; q++)
                    y[p0 + q] = fmaf(dec, acc[q], y[p0 + q]);
            }
        }
        if (a->z) {
            const float *z = a->z + (bt * H + h) * P;
            for (int64_t q = 0; q < P; q++)
                y[q] = y[q] * (z[q] / (1.0f + expf(-z[q])));
        }
    }
}

__attribute__((target("avx2,fma")))
static void fixup_head_avx2(const ssm_ssd_args *a, int64_t bh, const float *SinT, int dtpos)
{
    fixup_head(a, bh, SinT, dtpos);
}

static void fixup_head_generic(const ssm_ssd_args *a, int64_t bh, const float *SinT,
                               int dtpos)
{
    fixup_head(a, bh, SinT, dtpos);
}

ssm_status ssm_mpi_ssd_scan(MPI_Comm comm, const ssm_ssd_args *args)
{
    ssmi_mpi_ctx c;
    ssm_status st = ssmi_mpi_enter(&c, comm);
    if (st != SSM_OK)
        return st;
    const int ok = ssd_args_ok(args);
    float *send = NULL, *recv = NULL, *sinT = NULL;
    int nomem = 0;
    int64_t BH = 0, PN = 0, W = 0;
    if (ok) {
        BH = args->batch * args->nheads;
        PN = args->headdim * args->dstate;
        W = 1 + PN;
        send = ssmi_mpi_alloc((size_t)(BH * W), sizeof(float));
        recv = ssmi_mpi_alloc((size_t)(BH * W), sizeof(float));
        sinT = ssmi_mpi_alloc((size_t)(BH * PN), sizeof(float));
        nomem = !send || !recv || !sinT;
    }
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    ssd_args_agree(&g, args, ok);
    st = ssmi_agree_run(&c, &g);
    if (st != SSM_OK)
        goto out;

    const ssm_ssd_args *a = args;
    const int64_t B = a->batch, L = a->len, H = a->nheads, P = a->headdim,
                  N = a->dstate;
    /* 1. The local scan, into the carries' state slots (send + 1 of each
     * element, strided: scanned into a [B][H][P][N] copy first).  Rank 0
     * starts from h0 and gates with z itself: it needs no fix-up, so one
     * rank gives ssm_ssd_scan's bytes.  The other ranks scan from zero
     * without z: the fix-up must come before the gate. */
    float *hloc = NULL;
    if (L > 0) {
        hloc = ssmi_mpi_alloc((size_t)(BH * PN), sizeof(float));
        if (!hloc)
            st = SSMI_MPI_FAIL(SSM_ERR_NOMEM);
    }
    if (st == SSM_OK && L > 0) {
        ssm_ssd_args la = *a;
        la.h_last = hloc;
        if (c.rank != 0) {
            la.h0 = NULL;
            la.z = NULL;
        }
        st = ssm_ssd_scan(&la);
    }
    /* 2. The carries: P_blk = exp(A_h sum_t dt_t), the sum in double in
     * time order, dt as the scan computes it; an empty block is the
     * identity (1, 0), or on rank 0 (1, h0). */
    if (st == SSM_OK) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++) {
                float *e = send + (b * H + h) * W;
                double s = 0.0;
                for (int64_t t = 0; t < L; t++)
                    s += (double)dt_proc(a->dt[(b * L + t) * H + h],
                                         a->dt_bias ? a->dt_bias + h : NULL,
                                         a->dt_softplus, a->dt_min, a->dt_max);
                e[0] = (float)exp((double)a->A[h] * s);
                if (L > 0)
                    memcpy(e + 1, hloc + (b * H + h) * PN, (size_t)PN * sizeof(float));
                else if (c.rank == 0 && a->h0)
                    memcpy(e + 1, a->h0 + (b * H + h) * PN, (size_t)PN * sizeof(float));
                else
                    memset(e + 1, 0, (size_t)PN * sizeof(float));
            }
    } else {
        /* take part in the exscan with identities; the status is agreed below */
        for (int64_t i = 0; i < BH; i++) {
            send[i * W] = 1.0f;
            memset(send + i * W + 1, 0, (size_t)PN * sizeof(float));
        }
    }
    /* 3. The exclusive scan of the carries (non-commutative operation). */
    ssm_status me = ssmi_mpi_exscan_shared(&c, send, recv, BH, PN);
    if (st == SSM_OK)
        st = me;
    /* 4. The fix-up on ranks > 0: y_t += C_t . (exp(A_h cum_t) S_in), then
     * the z gate (y * silu(z), silu(z) = z / (1 + exp(-z))).  One writer
     * per output, a fixed order per output: any thread count, same bytes. */
    if (st == SSM_OK && c.rank > 0 && L > 0) {
        /* The exponent A cum_t never increases when every dt >= 0
         * (softplus, or dt_min >= 0: the clamp only raises) and A <= 0:
         * once exp underflows to 0 the state entering the block no longer
         * reaches the outputs (with Mamba-2's A and dt, after a few hundred
         * to a few thousand steps), and the fix-up stops; the gate goes on. */
        const int dtpos = a->dt_softplus || a->dt_min >= 0.0f;
        const int wide = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        #pragma omp parallel for schedule(static)
        for (int64_t bh = 0; bh < BH; bh++) {
            /* S_in transposed to [N][P]: the dot products C_t . S_in[p]
             * then run over p in the inner loop (vectorized, independent
             * accumulators), each still summed over n in ascending order. */
            const float *Sin = recv + bh * W + 1;
            float *SinT = sinT + bh * PN;
            for (int64_t q = 0; q < P; q++)
                for (int64_t n = 0; n < N; n++)
                    SinT[n * P + q] = Sin[q * N + n];
            if (wide)
                fixup_head_avx2(a, bh, SinT, dtpos);
            else
                fixup_head_generic(a, bh, SinT, dtpos);
        }
    }
    /* 5. h_last = P_blk S_in + S_loc (rank 0: S_loc already starts from h0). */
    if (st == SSM_OK && a->h_last) {
        for (int64_t bh = 0; bh < BH; bh++) {
            const float *e = send + bh * W;
            float *hl = a->h_last + bh * PN;
            if (c.rank == 0) {
                memcpy(hl, e + 1, (size_t)PN * sizeof(float));
            } else {
                const float *Sin = recv + bh * W + 1;
                for (int64_t i = 0; i < PN; i++)
                    hl[i] = fmaf(e[0], Sin[i], e[1 + i]);
            }
        }
    }
    free(hloc);
    st = ssmi_mpi_status_agree(&c, st);
out:
    free(send);
    free(recv);
    free(sinT);
    ssmi_mpi_leave(&c);
    return st;
}
