/*
 * selective_bwd.c -- gradients through the selective scan of Mamba (Gu and
 * Dao 2023, Section 3.2, Algorithm 2, eq. 2a-2b), the reverse mode of
 * ssm_selective_scan (selective.c).  The semantics are those of Mamba's
 * selective_scan_ref / selective_scan_bwd kernel, plus the gradient at the
 * initial state and an incoming gradient at the final state, which Mamba's
 * kernel does not have.
 *
 * Forward, per batch b, channel d (group g), state n, step t:
 *   x    = delta + bias,  dt = softplus(x) or x
 *   h_n  = exp(dt A_n) h_n + dt u B_n
 *   y0   = sum_n C_n h_n + D u,   y = y0 silu(z)
 * Backward (selective_bwd_kernel.h has the adjoint recurrence):
 *   dy0 = dy silu(z),  dz = dy y0 silu'(z),  silu'(z) = s (1 + z (1 - s)),
 *   s = sigmoid(z);  dD = sum dy0 u;  du = D dy0 + dt sum_n g_n B_n;
 *   ddelta = d(dt)/dx ddt with d(dt)/dx = sigmoid(x) (1 above 20, where
 *   softplus(x) = x, as Mamba's kernels);  ddelta_bias = sum ddelta.
 *
 * Memory (never [B][D][L][N]): the states are not stored.  A first pass runs
 * the recurrence forward and keeps the state every `chunk` steps
 * (checkpoints, batch*dim*(len/chunk)*dstate floats); the backward then
 * walks the chunks last to first, recomputes each chunk's states and decays
 * from its checkpoint into per-thread buffers (chunk*dstate floats) and runs
 * the adjoint through them.  The default chunk is a power of two >= sqrt(len)
 * (which balances the two terms), at least max(64, 4096/dstate).
 *
 * Determinism: work units are (batch, group, block of <= 8 channels), fixed
 * by the shapes.  Each unit owns its channels' du, ddelta, dz and their
 * per-channel sums (dA, dD, ddelta_bias, dh0), summed over time last step
 * first, and over the batch in index order at the end.  dB and dC are shared
 * by the channels of a group: each unit sums its channels in order into a
 * partial for the chunk, and after a barrier the partials are added in block
 * order.  No number depends on the thread count, nor on the chunk length
 * (the recomputed states are the forward's own; dA's float partial sums run
 * over aligned blocks of absolute time).
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "selective_bwd_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define BWD_X86 1
#endif

/* Budget of the dB/dC block partials (floats; 4 MiB). */
#define BWD_PART_FLOATS ((int64_t)1 << 20)

/* Steps of absolute time per float partial sum of dA. */
#define BWD_DA_BLOCK 64

/* ---------------------------------------------------------- exp, softplus */

/* c ? a : b by bit masks: GCC will not if-convert a select guarded by a
 * float comparison under -ftrapping-math (the default), which keeps the
 * loops around it scalar; the masks vectorize and give the same value. */
static inline float bwd_sel(int c, float a, float b)
{
    uint32_t ia, ib, r;
    const uint32_t m = 0u - (uint32_t)(c != 0);
    float y;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    r = (ia & m) | (ib & ~m);
    memcpy(&y, &r, sizeof y);
    return y;
}

/* The exp of the forward (selective.c, scan_expf), copied here: the forward
 * file is private to its kernels, and the backward must decay the states by
 * the same numbers.  Cody-Waite reduction, degree-7 Taylor polynomial with
 * fmaf, 2^k in the exponent bits; x < -88 gives 0, x > 88 +inf. */
static inline float bwd_expf(float x)
{
    const float xc = bwd_sel(-88.0f > x, -88.0f, x);
    const float shift = 12582912.0f;
    const float kf = fmaf(xc, 1.44269504088896341f, shift);
    uint32_t kb, shb, sb;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const float k = kf - shift;
    float r = fmaf(-k, 0.693359375f, xc);
    r = fmaf(-k, -2.12194440e-4f, r);
    float p = 0.000198412698412698413f;
    p = fmaf(p, r, 0.00138888888888888889f);
    p = fmaf(p, r, 0.00833333333333333333f);
    p = fmaf(p, r, 0.0416666666666666667f);
    p = fmaf(p, r, 0.166666666666666667f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    sb = ((kb - shb) + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    const float res = p * scale;
    return bwd_sel(x > 88.0f, HUGE_VALF, res);
}

/* The forward's softplus (selective.c, scan_softplus) given e = exp(x),
 * written with selects instead of early returns so that it vectorizes:
 * log1p(exp(x)) for x <= 20, x above; log1p(e) = log(1+e) e / ((1+e) - 1). */
static inline float bwd_softplus_e(float x, float e)
{
    const float u = 1.0f + e;
    uint32_t ub, mb;
    memcpy(&ub, &u, sizeof ub);
    const uint32_t ix = ub - 0x3f3504f3u;
    const float kf = (float)(int32_t)(ix >> 23);
    mb = (ix & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &mb, sizeof m);
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float R = s * s;
    float q = 0.111111111111111111f;
    q = fmaf(q, R, 0.142857142857142857f);
    q = fmaf(q, R, 0.2f);
    q = fmaf(q, R, 0.333333333333333333f);
    const float t2 = s + s;
    float lg = fmaf(t2 * R, q, t2);
    lg = fmaf(kf, -2.12194440e-4f, lg);
    lg = fmaf(kf, 0.693359375f, lg);
    /* Every operation unconditional (no trapping op under a condition,
     * so the loops if-convert), the choices made by selects last. */
    const int one = u == 1.0f;
    const float den = bwd_sel(one, 1.0f, u - 1.0f);
    const float res = bwd_sel(one, e, lg * (e / den));
    return bwd_sel(x > 20.0f, x, res);
}

/* ------------------------------------------------- kernel instantiations */

#define KSFX generic
#define KTGT
#include "selective_bwd_kernel.h"
#undef KSFX
#undef KTGT
#ifdef BWD_X86
#define KSFX avx2
#define KTGT __attribute__((target("avx2,fma")))
#include "selective_bwd_kernel.h"
#undef KSFX
#undef KTGT
#define KSFX avx512
#define KTGT __attribute__((target("avx512f")))
#include "selective_bwd_kernel.h"
#undef KSFX
#undef KTGT
#endif

typedef struct bwd_kern {
    void (*dt)(int64_t T, const float *delta, float bias, int softplus,
               float *dt, float *dsig);
    void (*state)(int64_t T, int64_t N, const float *A, const float *Bt,
                  const float *dt, const float *u, float *h);
    void (*recompute)(int64_t T, int64_t N, const float *A, const float *Bt,
                      const float *Ct, const float *dt, const float *u,
                      const float *hin, float *H, float *Q, float *P0);
    void (*adjoint)(int wb, int wc, int first, int64_t t0, int64_t T,
                    int64_t N, const float *A, const float *Bt,
                    const float *Ct, const float *dt, const float *u,
                    const float *dy0, const float *hin, const float *H,
                    const float *Q, float *g, float *dAc, double *dAd,
                    float *P1, float *P2, float *dBp, float *dCp);
    void (*tree)(int64_t T, int64_t N, float *P, float *s);
    void (*add)(int64_t n, const float *x, float *y);
    void (*dsum)(int64_t t0, int64_t T, const float *x, const float *y, double *acc);
    void (*pre)(int64_t T, const float *dy, const float *z, float *dy0);
    void (*post)(int64_t T, int hasD, float Dd, const float *dt,
                 const float *dsig, const float *u, const float *dy,
                 const float *z, const float *dy0, const float *s1,
                 const float *s2, const float *ys, float *du, float *dx,
                 float *dz);
    void (*adjoint2)(int wb, int wc, int first, int64_t t0, int64_t T,
                     const float *const *A, const float *Bt, const float *Ct,
                     const float *const *dt, const float *const *u,
                     const float *const *dy0, const float *const *hin,
                     const float *const *H, const float *const *Q,
                     float *const *g, float *const *dAc, double *const *dAd,
                     float *const *P1, float *const *P2, float *dBp, float *dCp);
} bwd_kern;

/* One channel's chunk buffers in the driver (two sets: channel pairs). */
typedef struct {
    float *H, *Q, *P0, *P1, *P2, *dtb, *dsig, *dy0, *s1, *s2, *ys, *dd;
    const float *hin;
} bwd_set;

#define BWD_SET_(k, sfx)                                                     \
    do {                                                                     \
        (k)->dt = bwd_dt_##sfx; (k)->state = bwd_state_##sfx;                \
        (k)->recompute = bwd_recompute_##sfx;                                \
        (k)->adjoint = bwd_adjoint_##sfx; (k)->tree = bwd_tree_##sfx;        \
        (k)->adjoint2 = bwd_adjoint2_##sfx;                                  \
        (k)->pre = bwd_pre_##sfx; (k)->post = bwd_post_##sfx;                \
        (k)->add = bwd_add_##sfx; (k)->dsum = bwd_dsum_##sfx;               \
    } while (0)

static int bwd_get_kern(int isa, bwd_kern *k)
{
    if (isa == SSM_SCAN_ISA_AUTO)
        isa = ssmi_scan_best_isa();
    if (!ssmi_scan_isa_ok(isa))
        return -1;
    switch (isa) {
#ifdef BWD_X86
    case SSM_SCAN_ISA_AVX512: BWD_SET_(k, avx512); return 0;
    case SSM_SCAN_ISA_AVX2: BWD_SET_(k, avx2); return 0;
#endif
    default: BWD_SET_(k, generic); return 0;
    }
}

/* ------------------------------------------------------------- helpers -- */

static int bwd_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* Xt[t][n] = Xg[n][t0 + t], t < T, n < N. */
static void bwd_transpose(const float *Xg, int64_t L, int64_t t0, int64_t T,
                          int64_t N, float *Xt)
{
    for (int64_t n = 0; n < N; n++) {
        const float *src = Xg + n * L + t0;
        for (int64_t t = 0; t < T; t++)
            Xt[t * N + n] = src[t];
    }
}

int64_t ssmi_scan_bwd_auto_chunk(int64_t len, int64_t dstate)
{
    /* A power of two >= sqrt(len) (checkpoints and chunk buffers balance),
     * and at least 4096 / dstate steps (>= 64): the per-channel kernels are
     * called once per chunk, so short chunks pay their call and loop
     * overheads often; 4096 states keep the 12 per-thread tiles in L2. */
    int64_t c = 64;
    while (c * dstate < 4096)
        c *= 2;
    while (c < len / c)
        c *= 2;
    return c < len ? c : len;
}

static ssm_status bwd_check(const ssm_scan_args *a, const float *dy,
                            const ssm_scan_grads *gr)
{
    int64_t n;
    if (!a || !dy || !gr)
        return SSM_FAIL(SSM_ERR_ARG);
    if (a->batch < 1 || a->dim < 1 || a->dstate < 1 || a->len < 1
        || a->ngroups < 1 || a->ngroups > a->dim || a->dim % a->ngroups != 0)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&n, sizeof(float), 3, a->batch, a->dim, a->len)
        || !ssmi_sizes_ok(&n, sizeof(double), 2, a->dim, a->dstate)
        || !ssmi_sizes_ok(&n, sizeof(double), 3, a->batch, a->dim, a->dstate)
        || !ssmi_sizes_ok(&n, sizeof(float), 4, a->batch, a->ngroups, a->dstate, a->len))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!a->u || !a->delta || !a->A || !a->B || !a->C)
        return SSM_FAIL(SSM_ERR_ARG);
    /* A gradient for an input that is absent is a caller's error. */
    if ((gr->dD && !a->D) || (gr->dz && !a->z)
        || (gr->ddelta_bias && !a->delta_bias))
        return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

/* ------------------------------------------------------------- driver --- */

ssm_status ssmi_selective_scan_backward_ex(const ssm_scan_args *a,
                                           const float *dy,
                                           const float *dh_last,
                                           const ssm_scan_grads *gr,
                                           int64_t chunk, int isa)
{
    SSM_TRY(bwd_check(a, dy, gr));
    if (chunk < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    bwd_kern k;
    if (bwd_get_kern(isa, &k) != 0)
        return SSM_FAIL(SSM_ERR_ARG);

    const int want_ds = gr->ddelta || gr->ddelta_bias;
    const int want_s1 = gr->du || want_ds;
    /* Everything but dD goes through the states. */
    const int want_st = want_s1 || gr->dA || gr->dB || gr->dC || gr->dz || gr->dh0;
    if (!want_st && !gr->dD)
        return SSM_OK;

    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    const int64_t batch = a->batch, cpg = dim / G, nbd = batch * dim;
    if (N > INT64_MAX / 1024)   /* the [16][N] tiles below must fit */
        return SSM_FAIL(SSM_ERR_NOMEM);
    int64_t LC = chunk > 0 ? chunk : ssmi_scan_bwd_auto_chunk(L, N);
    if (LC > L)
        LC = L;
    const int64_t nch = (L + LC - 1) / LC;
    int64_t cbs = cpg / 4;
    cbs = cbs < 1 ? 1 : cbs > 8 ? 8 : cbs;
    const int64_t nblk = (cpg + cbs - 1) / cbs;
    const int64_t units = batch * G * nblk;
    /* Per-thread [LC][N] tiles, at least [16][N]: H also takes the
     * 16-step tiles of the dB/dC reduction. */
    const int64_t TN = pad16((LC > 16 ? LC : 16) * N), TP = pad16(LC);
    /* No overflow: bwd_check bounded B [batch][G][N][L] to 2^56 bytes, so
     * max(LC, 16) N <= 2^58 and per < 2^63. */
    const int64_t per = 12 * TN + 16 * TP + pad16(cbs * N);
    /* The channels of a group meet (a barrier, then the block partials of
     * dB and dC are added) once per span of whole chunks.  The partials take
     * units * 2 * span * dstate floats: the span is as long as fits in
     * BWD_PART_FLOATS (few barriers for few channels and long sequences),
     * but at least one chunk.  Shapes only. */
    int64_t SP = BWD_PART_FLOATS / (2 * N) / units / LC * LC;
    if (SP < LC)
        SP = LC;
    if (SP > (L + LC - 1) / LC * LC)
        SP = (L + LC - 1) / LC * LC;
    const int64_t nsp = (L + SP - 1) / SP;
    const int64_t TS = pad16(SP * N), ppart = 2 * TS;
    const int want_part = gr->dB || gr->dC;

    int nt = ssmi_max_threads();
    if (nt < 1)
        nt = 1;
    int64_t n_ck = 0, n_thr = 0, n_part = 0, n_st = 0, tmp;
    if (!ssmi_sizes_ok(&n_ck, sizeof(float), 3, nbd, nch, N)
        || !ssmi_sizes_ok(&n_thr, sizeof(float), 2, per, (int64_t)nt)
        || !ssmi_sizes_ok(&n_part, sizeof(float), 2, units, ppart)
        || !ssmi_sizes_ok(&n_st, sizeof(double), 2, nbd, N)
        || !ssmi_sizes_ok(&tmp, sizeof(float), 2, LC, N))
        return SSM_FAIL(SSM_ERR_NOMEM);
    float *ck = want_st ? ssmi_alloc((size_t)n_ck, sizeof(float)) : NULL;
    float *gst = want_st ? ssmi_alloc((size_t)n_st, sizeof(float)) : NULL;
    float *dAc = want_st ? ssmi_alloc((size_t)n_st, sizeof(float)) : NULL;
    double *dAd = want_st ? ssmi_alloc((size_t)n_st, sizeof(double)) : NULL;
    /* dD and ddelta_bias per (batch, channel): eight running sums, step t
     * going to sum t mod 8 (absolute time: independent of the chunks). */
    double *sums = ssmi_alloc((size_t)(16 * nbd), sizeof(double));
    float *thr = ssmi_alloc((size_t)n_thr, sizeof(float));
    float *part = want_part ? ssmi_alloc((size_t)n_part, sizeof(float)) : NULL;
    if ((want_st && (!ck || !gst || !dAc || !dAd)) || !sums || !thr
        || (want_part && !part)) {
        ssmi_free(ck); ssmi_free(gst); ssmi_free(dAc); ssmi_free(dAd);
        ssmi_free(sums); ssmi_free(thr); ssmi_free(part);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    double *dDd = sums, *dbd = sums + 8 * nbd;

#pragma omp parallel num_threads(nt)
    {
        float *w = thr + (int64_t)bwd_thread_num() * per;
        float *Bt = w, *Ct = Bt + TN, *hs = Ct + TN;
        float *H = hs + pad16(cbs * N);   /* also the dB/dC reduction tile */
        bwd_set set[2];
        float *q = H;
        for (int j = 0; j < 2; j++) {
            set[j].H = q; set[j].Q = q + TN; set[j].P0 = q + 2 * TN;
            set[j].P1 = q + 3 * TN; set[j].P2 = q + 4 * TN;
            q += 5 * TN;
            set[j].dtb = q; set[j].dsig = q + TP; set[j].dy0 = q + 2 * TP;
            set[j].s1 = q + 3 * TP; set[j].s2 = q + 4 * TP; set[j].ys = q + 5 * TP;
            set[j].dd = q + 6 * TP;
            set[j].hin = NULL;
            q += 8 * TP;
        }
        float *dtb = set[0].dtb;

        /* Adjoint states start at dh_last (zero when NULL). */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nbd; i++) {
            for (int j = 0; j < 8; j++)
                dDd[i * 8 + j] = dbd[i * 8 + j] = 0.0;
            if (!want_st)
                continue;
            for (int64_t n = 0; n < N; n++) {
                gst[i * N + n] = dh_last ? dh_last[i * N + n] : 0.0f;
                dAc[i * N + n] = 0.0f;
                dAd[i * N + n] = 0.0;
            }
        }

        /* Pass 1: checkpoints, the state entering every chunk. */
        if (want_st) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < units; i++) {
                const int64_t b = i / (G * nblk), r = i % (G * nblk);
                const int64_t g = r / nblk, blk = r % nblk;
                const int64_t d0 = g * cpg + blk * cbs;
                const int64_t d1 = d0 + cbs < (g + 1) * cpg ? d0 + cbs : (g + 1) * cpg;
                const float *Bg = a->B + (b * G + g) * N * L;
                for (int64_t d = d0; d < d1; d++) {
                    float *hd = hs + (d - d0) * N;
                    if (a->h0)
                        memcpy(hd, a->h0 + (b * dim + d) * N, (size_t)N * sizeof(float));
                    else
                        memset(hd, 0, (size_t)N * sizeof(float));
                    memcpy(ck + (b * dim + d) * nch * N, hd, (size_t)N * sizeof(float));
                }
                for (int64_t kc = 0; kc + 1 < nch; kc++) {
                    const int64_t tb = kc * LC;
                    bwd_transpose(Bg, L, tb, LC, N, Bt);
                    for (int64_t d = d0; d < d1; d++) {
                        const int64_t off = (b * dim + d) * L + tb;
                        float *hd = hs + (d - d0) * N;
                        k.dt(LC, a->delta + off, a->delta_bias ? a->delta_bias[d] : 0.0f,
                             a->delta_softplus, dtb, NULL);
                        k.state(LC, N, a->A + d * N, Bt, dtb, a->u + off, hd);
                        memcpy(ck + ((b * dim + d) * nch + kc + 1) * N, hd,
                               (size_t)N * sizeof(float));
                    }
                }
            }
        }

        /* Pass 2: the spans, and in each the chunks, last to first. */
        for (int64_t sp = nsp - 1; sp >= 0; sp--) {
            const int64_t sb = sp * SP, se = sb + SP < L ? sb + SP : L;
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < units; i++) {
              for (int64_t kc = (se - 1) / LC; kc >= sb / LC; kc--) {
                const int64_t tb = kc * LC, Tn = LC < L - tb ? LC : L - tb;
                const int64_t b = i / (G * nblk), r = i % (G * nblk);
                const int64_t g = r / nblk, blk = r % nblk;
                const int64_t d0 = g * cpg + blk * cbs;
                const int64_t d1 = d0 + cbs < (g + 1) * cpg ? d0 + cbs : (g + 1) * cpg;
                float *pB = want_part ? part + i * ppart + (tb - sb) * N : NULL;
                float *pC = want_part ? pB + TS : NULL;
                if (want_st) {
                    bwd_transpose(a->B + (b * G + g) * N * L, L, tb, Tn, N, Bt);
                    bwd_transpose(a->C + (b * G + g) * N * L, L, tb, Tn, N, Ct);
                }
                /* Channels two at a time where N = 16 (the paired adjoint,
                 * same bits as one by one), each with its own buffer set. */
                for (int64_t d = d0; d < d1;) {
                    const int np = N == 16 && d + 1 < d1 ? 2 : 1;
                    for (int j = 0; j < np; j++) {
                        bwd_set *S = &set[j];
                        const int64_t bd = b * dim + d + j, off = bd * L + tb;
                        k.pre(Tn, dy + off, a->z ? a->z + off : NULL, S->dy0);
                        if (gr->dD)
                            k.dsum(tb, Tn, S->dy0, a->u + off, dDd + bd * 8);
                        if (!want_st)
                            continue;
                        k.dt(Tn, a->delta + off,
                             a->delta_bias ? a->delta_bias[d + j] : 0.0f,
                             a->delta_softplus, S->dtb, want_ds ? S->dsig : NULL);
                        S->hin = ck + (bd * nch + kc) * N;
                        k.recompute(Tn, N, a->A + (d + j) * N, Bt, Ct, S->dtb, a->u + off,
                                    S->hin, S->H, S->Q, gr->dz ? S->P0 : NULL);
                    }
                    if (!want_st) {
                        d += np;
                        continue;
                    }
                    if (np == 2) {
                        const int64_t bd = b * dim + d, off = bd * L + tb;
                        const float *A2[2] = { a->A + d * N, a->A + (d + 1) * N };
                        const float *dt2[2] = { set[0].dtb, set[1].dtb };
                        const float *u2[2] = { a->u + off, a->u + off + L };
                        const float *dy2[2] = { set[0].dy0, set[1].dy0 };
                        const float *hin2[2] = { set[0].hin, set[1].hin };
                        const float *H2[2] = { set[0].H, set[1].H };
                        const float *Q2[2] = { set[0].Q, set[1].Q };
                        float *g2[2] = { gst + bd * N, gst + (bd + 1) * N };
                        float *ac2[2] = { dAc + bd * N, dAc + (bd + 1) * N };
                        double *ad2[2] = { dAd + bd * N, dAd + (bd + 1) * N };
                        float *p12[2] = { set[0].P1, set[1].P1 };
                        float *p22[2] = { set[0].P2, set[1].P2 };
                        k.adjoint2(gr->dB != NULL, gr->dC != NULL, d == d0, tb, Tn, A2,
                                   Bt, Ct, dt2, u2, dy2, hin2, H2, Q2, g2, ac2, ad2,
                                   p12, p22, pB, pC);
                    } else {
                        const int64_t bd = b * dim + d, off = bd * L + tb;
                        k.adjoint(gr->dB != NULL, gr->dC != NULL, d == d0, tb, Tn, N,
                                  a->A + d * N, Bt, Ct, set[0].dtb, a->u + off, set[0].dy0,
                                  set[0].hin, set[0].H, set[0].Q, gst + bd * N,
                                  dAc + bd * N, dAd + bd * N, set[0].P1, set[0].P2, pB, pC);
                    }
                    for (int j = 0; j < np; j++) {
                        bwd_set *S = &set[j];
                        const int64_t bd = b * dim + d + j, off = bd * L + tb;
                        const float *z = a->z ? a->z + off : NULL;
                        const float Dd = a->D ? a->D[d + j] : 0.0f;
                        if (want_s1)
                            k.tree(Tn, N, S->P1, S->s1);
                        if (want_ds)
                            k.tree(Tn, N, S->P2, S->s2);
                        if (gr->dz)
                            k.tree(Tn, N, S->P0, S->ys);
                        float *dx = gr->ddelta ? gr->ddelta + off : want_ds ? S->dd : NULL;
                        k.post(Tn, a->D != NULL, Dd, S->dtb, S->dsig, a->u + off, dy + off, z,
                               S->dy0, S->s1, S->s2, S->ys, gr->du ? gr->du + off : NULL, dx,
                               gr->dz ? gr->dz + off : NULL);
                        if (gr->ddelta_bias)
                            k.dsum(tb, Tn, dx, NULL, dbd + bd * 8);
                    }
                    d += np;
                }
              }
            }
            /* Implicit barrier: every block's partial of this chunk is in.
             * dB, dC rows of a group: blocks added in index order, 16 steps
             * at a time (contiguous [16][N] tiles), then transposed out. */
            if (want_part) {
                const int64_t Tn = se - sb, tb = sb, npc = (Tn + 15) / 16;
#pragma omp for schedule(static)
                for (int64_t row = 0; row < batch * G * npc; row++) {
                    const int64_t bg = row / npc, t0 = (row % npc) * 16;
                    const int64_t tl = Tn - t0 < 16 ? Tn - t0 : 16;
                    const float *p0 = part + bg * nblk * ppart;
                    for (int wch = 0; wch < 2; wch++) {
                        float *out = wch == 0 ? gr->dB : gr->dC;
                        if (!out)
                            continue;
                        memcpy(H, p0 + wch * TS + t0 * N, (size_t)(tl * N) * sizeof(float));
                        for (int64_t blk = 1; blk < nblk; blk++)
                            k.add(tl * N, p0 + blk * ppart + wch * TS + t0 * N, H);
                        out += bg * N * L + tb + t0;
                        for (int64_t n = 0; n < N; n++)
                            for (int64_t t = 0; t < tl; t++)
                                out[n * L + t] = H[t * N + n];
                    }
                }
            }
        }

        /* Sums over the batch, in index order. */
#pragma omp for schedule(static)
        for (int64_t d = 0; d < dim; d++) {
            if (gr->dA)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0.0;
                    for (int64_t b = 0; b < batch; b++)
                        s += dAd[(b * dim + d) * N + n];
                    gr->dA[d * N + n] = (float)s;
                }
            if (gr->dD) {
                double s = 0.0;
                for (int64_t b = 0; b < batch; b++) {
                    const double *q = dDd + (b * dim + d) * 8;
                    s += ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
                }
                gr->dD[d] = (float)s;
            }
            if (gr->ddelta_bias) {
                double s = 0.0;
                for (int64_t b = 0; b < batch; b++) {
                    const double *q = dbd + (b * dim + d) * 8;
                    s += ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
                }
                gr->ddelta_bias[d] = (float)s;
            }
        }
    }
    if (gr->dh0)
        memcpy(gr->dh0, gst, (size_t)(nbd * N) * sizeof(float));

    ssmi_free(ck); ssmi_free(gst); ssmi_free(dAc); ssmi_free(dAd);
    ssmi_free(sums); ssmi_free(thr); ssmi_free(part);
    return SSM_OK;
}

ssm_status ssm_selective_scan_backward(const ssm_scan_args *args,
                                       const float *dy, const float *dh_last,
                                       const ssm_scan_grads *grads)
{
    return ssmi_selective_scan_backward_ex(args, dy, dh_last, grads, 0,
                                           SSM_SCAN_ISA_AUTO);
}
