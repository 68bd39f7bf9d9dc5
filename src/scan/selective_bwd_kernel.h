/*
 * selective_bwd_kernel.h -- inner loops of the selective scan backward
 * (selective_bwd.c), written once in plain C and instantiated per
 * instruction set: the file is included several times with
 *   KSFX  name suffix      KTGT  function attribute (target(...) or empty)
 * defined.  The loops over the state index n (and over time for the
 * elementwise parts) are plain C that the compiler vectorizes for the
 * target; every operation is written out (explicit fmaf, no reassociation:
 * the library is built without fp-contraction and fast-math), so each lane
 * computes the same number whatever the vector width, and every sum has an
 * order fixed by the shapes only.
 *
 * Notation (one channel of one batch row, one chunk of T steps):
 *   dt_t = softplus(delta_t + bias) (or delta_t + bias),
 *   a_tn = exp(dt_t A_n),  h_tn = a_tn h_(t-1)n + dt_t u_t B_tn,
 *   ys_t = sum_n C_tn h_tn  (Mamba eq. 2a-2b, Algorithm 2: ZOH for A,
 *   Euler for B).
 * Adjoint (reverse-mode) recurrence, g_tn = dLoss/dh_tn:
 *   g_tn = dy0_t C_tn + a_(t+1)n g_(t+1)n      (g_Ln = dh_last_n)
 * and from it
 *   dB_tn  += g_tn dt_t u_t        dC_tn += dy0_t h_tn
 *   du_t    = dt_t sum_n g_tn B_tn
 *   ddt_t   = u_t sum_n g_tn B_tn + sum_n A_n g_tn a_tn h_(t-1)n
 *   dA_n   += sum_t dt_t g_tn a_tn h_(t-1)n
 *   dh0_n   = a_1n g_1n (the adjoint carried past the first step).
 */

#define KNAME2_(a, b) a##_##b
#define KNAME1_(a, b) KNAME2_(a, b)
#define KN(name) KNAME1_(name, KSFX)

/* dt for T steps and, when dsig is not NULL, d(dt)/d(delta): sigmoid(x)
 * under softplus (1 above the threshold 20, where softplus is x), else 1. */
static KTGT void KN(bwd_dt)(int64_t T, const float *restrict delta, float bias,
                            int softplus, float *restrict dt,
                            float *restrict dsig)
{
    if (softplus && dsig) {
        for (int64_t t = 0; t < T; t++) {
            /* one exp for both: e = exp(-|x|) is softplus's own; the
             * sigmoid is e / (1 + e) for x <= 0 (where e = exp(x): the
             * bits of e^x / (1 + e^x)) and 1 / (1 + e) above. */
            const float x = delta[t] + bias, e = bwd_expf(scan_nabs(x));
            const float sg = bwd_sel(x > 0.0f, 1.0f, e) / (1.0f + e);
            dt[t] = scan_softplus_t(x, e);
            dsig[t] = bwd_sel(x > 20.0f, 1.0f, sg);
        }
    } else if (softplus) {
        for (int64_t t = 0; t < T; t++) {
            const float x = delta[t] + bias;
            dt[t] = bwd_softplus(x);
        }
    } else {
        for (int64_t t = 0; t < T; t++)
            dt[t] = delta[t] + bias;
        if (dsig)
            for (int64_t t = 0; t < T; t++)
                dsig[t] = 1.0f;
    }
}

/* dy0 = dy silu(z) (dy without z): the gradient at the output before the
 * gate. */
static KTGT void KN(bwd_pre)(int64_t T, const float *restrict dy,
                             const float *restrict z, float *restrict dy0)
{
    if (z)
        for (int64_t t = 0; t < T; t++)
            dy0[t] = dy[t] * (z[t] / (1.0f + bwd_expf(-z[t])));
    else
        for (int64_t t = 0; t < T; t++)
            dy0[t] = dy[t];
}

/* The elementwise ends of one channel's chunk, given s1 = sum_n g B,
 * s2 = sum_n A g a h_prev, ys = sum_n C h:
 *   du = D dy0 + dt s1,  ddelta = (u s1 + s2) dsig,
 *   dz = dy y0 silu'(z), y0 = ys + D u, silu'(z) = s (1 + z (1 - s)).
 * Each output pointer may be NULL (not wanted); hasD says D is present. */
static KTGT void KN(bwd_post)(int64_t T, int hasD, float Dd,
                              const float *restrict dt,
                              const float *restrict dsig,
                              const float *restrict u,
                              const float *restrict dy,
                              const float *restrict z,
                              const float *restrict dy0,
                              const float *restrict s1,
                              const float *restrict s2,
                              const float *restrict ys, float *restrict du,
                              float *restrict dx, float *restrict dz)
{
    if (du) {
        if (hasD)
            for (int64_t t = 0; t < T; t++)
                du[t] = fmaf(Dd, dy0[t], dt[t] * s1[t]);
        else
            for (int64_t t = 0; t < T; t++)
                du[t] = dt[t] * s1[t];
    }
    if (dx)
        for (int64_t t = 0; t < T; t++)
            dx[t] = fmaf(u[t], s1[t], s2[t]) * dsig[t];
    if (dz)
        for (int64_t t = 0; t < T; t++) {
            const float y0 = bwd_sel(hasD, fmaf(Dd, u[t], ys[t]), ys[t]);
            const float sg = 1.0f / (1.0f + bwd_expf(-z[t]));
            const float ds = sg * fmaf(z[t], 1.0f - sg, 1.0f);
            dz[t] = (dy[t] * y0) * ds;
        }
}

/* The state only, T steps from h (in/out): the checkpoint pass. */
static inline __attribute__((always_inline)) KTGT void
KN(bwd_state_)(int64_t T, int64_t N, const float *restrict A,
               const float *restrict Bt, const float *restrict dt,
               const float *restrict u, float *restrict h)
{
    for (int64_t t = 0; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t];
        const float *restrict bt = Bt + t * N;
        for (int64_t n = 0; n < N; n++)
            h[n] = fmaf(bwd_decayf(dtv, scan_a2(A[n])), h[n], bt[n] * dtu);
    }
}

/* N = 16 (Mamba's dstate) gets its own copy with the state size a
 * constant: the state loop becomes straight vector code and the state stays
 * in registers across steps.  Same operations, same bits. */
static KTGT void KN(bwd_state)(int64_t T, int64_t N, const float *A,
                               const float *Bt, const float *dt,
                               const float *u, float *h)
{
    if (N == 16) {
        float hl[16];
        memcpy(hl, h, sizeof hl);
        KN(bwd_state_)(T, 16, A, Bt, dt, u, hl);
        memcpy(h, hl, sizeof hl);
    } else if (N == 8) {   /* halves of 16 (the split path) */
        float hl[8];
        memcpy(hl, h, sizeof hl);
        KN(bwd_state_)(T, 8, A, Bt, dt, u, hl);
        memcpy(h, hl, sizeof hl);
    } else {
        KN(bwd_state_)(T, N, A, Bt, dt, u, h);
    }
}

/* Recompute the chunk from its checkpoint hin: H[t] = h_t, Q[t] = a_t
 * ([T][N] each); with P0, also P0[t][n] = C_tn h_tn (for ys, dz only). */
static inline __attribute__((always_inline)) KTGT void KN(bwd_recompute_)(int64_t T, int64_t N,
                                   const float *restrict A,
                                   const float *restrict Bt,
                                   const float *restrict Ct,
                                   const float *restrict dt,
                                   const float *restrict u,
                                   const float *restrict hin,
                                   float *restrict H, float *restrict Q,
                                   float *restrict P0)
{
    for (int64_t t = 0; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t];
        const float *restrict hp = t ? H + (t - 1) * N : hin;
        const float *restrict bt = Bt + t * N;
        float *restrict ht = H + t * N, *restrict qt = Q + t * N;
        for (int64_t n = 0; n < N; n++) {
            const float a = bwd_decayf(dtv, scan_a2(A[n]));
            qt[n] = a;
            ht[n] = fmaf(a, hp[n], bt[n] * dtu);
        }
    }
    if (P0)
        for (int64_t i = 0; i < T * N; i++)
            P0[i] = Ct[i] * H[i];
}

static KTGT void KN(bwd_recompute)(int64_t T, int64_t N, const float *A,
                                   const float *Bt, const float *Ct,
                                   const float *dt, const float *u,
                                   const float *hin, float *H, float *Q,
                                   float *P0)
{
    if (N == 16) {
        /* The state in registers (not reloaded from H: a store-to-load
         * round trip on the recurrence's critical path); same operations. */
        float h[16];
        memcpy(h, hin, sizeof h);
        for (int64_t t = 0; t < T; t++) {
            const float dtv = dt[t], dtu = dtv * u[t];
            const float *restrict bt = Bt + t * 16;
            float *restrict ht = H + t * 16, *restrict qt = Q + t * 16;
            for (int n = 0; n < 16; n++) {
                const float a = bwd_decayf(dtv, scan_a2(A[n]));
                qt[n] = a;
                h[n] = fmaf(a, h[n], bt[n] * dtu);
                ht[n] = h[n];
            }
        }
        if (P0)
            for (int64_t i = 0; i < T * 16; i++)
                P0[i] = Ct[i] * H[i];
    } else if (N == 8) {   /* the same with half a vector (split path) */
        float h[8];
        memcpy(h, hin, sizeof h);
        for (int64_t t = 0; t < T; t++) {
            const float dtv = dt[t], dtu = dtv * u[t];
            const float *restrict bt = Bt + t * 8;
            float *restrict ht = H + t * 8, *restrict qt = Q + t * 8;
            for (int n = 0; n < 8; n++) {
                const float a = bwd_decayf(dtv, scan_a2(A[n]));
                qt[n] = a;
                h[n] = fmaf(a, h[n], bt[n] * dtu);
                ht[n] = h[n];
            }
        }
        if (P0)
            for (int64_t i = 0; i < T * 8; i++)
                P0[i] = Ct[i] * H[i];
    } else
        KN(bwd_recompute_)(T, N, A, Bt, Ct, dt, u, hin, H, Q, P0);
}

/* The adjoint over the chunk, last step first.  g (in/out, [N]) is the
 * adjoint entering from the future, a_(t+1) g_(t+1); dAc [N] accumulates
 * dt_t g_tn a_tn h_(t-1)n; P1[t][n] = g_tn B_tn and P2[t][n] = A_n g_tn a_tn
 * h_(t-1)n (summed over n afterwards in a fixed tree).  dBp / dCp ([T][N],
 * or NULL): the block's partials, stored (first channel of the block) or
 * added to.  WB, WC, FIRST are compile-time flags after inlining. */
static inline __attribute__((always_inline)) KTGT void
KN(bwd_adj_)(const int WB, const int WC, const int FIRST, int64_t t0,
             int64_t T, int64_t N,
             const float *restrict A, const float *restrict Bt,
             const float *restrict Ct, const float *restrict dt,
             const float *restrict u, const float *restrict dy0,
             const float *restrict hin, const float *restrict H,
             const float *restrict Q, float *restrict g, float *restrict dAc,
             double *restrict dAd, float *restrict P1, float *restrict P2,
             float *restrict dBp, float *restrict dCp)
{
    for (int64_t t = T - 1; t >= 0; t--) {
        const float dyv = dy0[t], dtv = dt[t], dtu = dtv * u[t];
        const float *restrict hp = t ? H + (t - 1) * N : hin;
        const float *restrict ht = H + t * N, *restrict qt = Q + t * N;
        const float *restrict bt = Bt + t * N, *restrict ct = Ct + t * N;
        float *restrict p1 = P1 + t * N, *restrict p2 = P2 + t * N;
        float *restrict db = WB ? dBp + t * N : NULL;
        float *restrict dc = WC ? dCp + t * N : NULL;
        for (int64_t n = 0; n < N; n++) {
            const float gn = fmaf(dyv, ct[n], g[n]);
            if (WC)
                dc[n] = FIRST ? dyv * ht[n] : fmaf(dyv, ht[n], dc[n]);
            if (WB)
                db[n] = FIRST ? gn * dtu : fmaf(gn, dtu, db[n]);
            p1[n] = gn * bt[n];
            const float q = (gn * qt[n]) * hp[n];
            p2[n] = q * A[n];
            dAc[n] = fmaf(q, dtv, dAc[n]);
            g[n] = gn * qt[n];
        }
        /* dA is summed in float over aligned blocks of BWD_DA_BLOCK steps
         * of absolute time, each block added to a double total: the order
         * does not depend on where the chunks fall, and long sequences
         * keep the accuracy of a short float sum. */
        if ((t0 + t) % BWD_DA_BLOCK == 0)
            for (int64_t n = 0; n < N; n++) {
                dAd[n] += (double)dAc[n];
                dAc[n] = 0.0f;
            }
    }
}

static KTGT void KN(bwd_adjoint)(int wb, int wc, int first, int64_t t0,
                                 int64_t T, int64_t N, const float *A, const float *Bt,
                                 const float *Ct, const float *dt,
                                 const float *u, const float *dy0,
                                 const float *hin, const float *H,
                                 const float *Q, float *g, float *dAc,
                                 double *dAd, float *P1, float *P2,
                                 float *dBp, float *dCp)
{
    if (N == 16) {
        /* State size a constant, adjoint and dA partial in registers. */
        float gl[16], al[16];
        memcpy(gl, g, sizeof gl);
        memcpy(al, dAc, sizeof al);
        switch ((wb ? 4 : 0) | (wc ? 2 : 0) | (first ? 1 : 0)) {
#define ADJ_CASE_(k, b, c, f)                                                \
        case k:                                                              \
            KN(bwd_adj_)(b, c, f, t0, T, 16, A, Bt, Ct, dt, u, dy0, hin, H,  \
                         Q, gl, al, dAd, P1, P2, dBp, dCp);                  \
            break;
            ADJ_CASE_(0, 0, 0, 0) ADJ_CASE_(1, 0, 0, 1)
            ADJ_CASE_(2, 0, 1, 0) ADJ_CASE_(3, 0, 1, 1)
            ADJ_CASE_(4, 1, 0, 0) ADJ_CASE_(5, 1, 0, 1)
            ADJ_CASE_(6, 1, 1, 0) default: ADJ_CASE_(7, 1, 1, 1)
#undef ADJ_CASE_
        }
        memcpy(g, gl, sizeof gl);
        memcpy(dAc, al, sizeof al);
        return;
    }
    if (N == 8) {   /* halves of 16 (the split path) */
        float gl[8], al[8];
        memcpy(gl, g, sizeof gl);
        memcpy(al, dAc, sizeof al);
        switch ((wb ? 4 : 0) | (wc ? 2 : 0) | (first ? 1 : 0)) {
#define ADJ_CASE_(k, b, c, f)                                                \
        case k:                                                              \
            KN(bwd_adj_)(b, c, f, t0, T, 8, A, Bt, Ct, dt, u, dy0, hin, H,   \
                         Q, gl, al, dAd, P1, P2, dBp, dCp);                  \
            break;
            ADJ_CASE_(0, 0, 0, 0) ADJ_CASE_(1, 0, 0, 1)
            ADJ_CASE_(2, 0, 1, 0) ADJ_CASE_(3, 0, 1, 1)
            ADJ_CASE_(4, 1, 0, 0) ADJ_CASE_(5, 1, 0, 1)
            ADJ_CASE_(6, 1, 1, 0) default: ADJ_CASE_(7, 1, 1, 1)
#undef ADJ_CASE_
        }
        memcpy(g, gl, sizeof gl);
        memcpy(dAc, al, sizeof al);
        return;
    }
    switch ((wb ? 4 : 0) | (wc ? 2 : 0) | (first ? 1 : 0)) {
#define ADJ_CASE_(k, b, c, f)                                                \
    case k:                                                                  \
        KN(bwd_adj_)(b, c, f, t0, T, N, A, Bt, Ct, dt, u, dy0, hin, H, Q, g, \
                     dAc, dAd, P1, P2, dBp, dCp);                            \
        return;
        ADJ_CASE_(0, 0, 0, 0) ADJ_CASE_(1, 0, 0, 1)
        ADJ_CASE_(2, 0, 1, 0) ADJ_CASE_(3, 0, 1, 1)
        ADJ_CASE_(4, 1, 0, 0) ADJ_CASE_(5, 1, 0, 1)
        ADJ_CASE_(6, 1, 1, 0) default: ADJ_CASE_(7, 1, 1, 1)
#undef ADJ_CASE_
    }
}

/* One step of bwd_adj2_ over the 16 states (restrict parameters: GCC
 * vectorizes on those, not on block-scope restrict pointers). */
static inline __attribute__((always_inline)) KTGT void
KN(bwd_adj2_step)(const int WB, const int WC, const int FIRST, float dyv0,
                  float dtv0, float dtu0, float dyv1, float dtv1, float dtu1,
                  const float *restrict A0, const float *restrict A1,
                  const float *restrict bt, const float *restrict ct,
                  const float *restrict hp0, const float *restrict hp1,
                  const float *restrict ht0, const float *restrict ht1,
                  const float *restrict qt0, const float *restrict qt1,
                  float *restrict p10, float *restrict p11,
                  float *restrict p20, float *restrict p21,
                  float *restrict db, float *restrict dc,
                  float *restrict g0, float *restrict g1,
                  float *restrict a0, float *restrict a1)
{
    for (int n = 0; n < 16; n++) {
        const float gn0 = fmaf(dyv0, ct[n], g0[n]);
        const float gn1 = fmaf(dyv1, ct[n], g1[n]);
        if (WC) {
            const float c0 = FIRST ? dyv0 * ht0[n] : fmaf(dyv0, ht0[n], dc[n]);
            dc[n] = fmaf(dyv1, ht1[n], c0);
        }
        if (WB) {
            const float b0 = FIRST ? gn0 * dtu0 : fmaf(gn0, dtu0, db[n]);
            db[n] = fmaf(gn1, dtu1, b0);
        }
        p10[n] = gn0 * bt[n];
        p11[n] = gn1 * bt[n];
        const float q0 = (gn0 * qt0[n]) * hp0[n];
        const float q1 = (gn1 * qt1[n]) * hp1[n];
        p20[n] = q0 * A0[n];
        p21[n] = q1 * A1[n];
        a0[n] = fmaf(q0, dtv0, a0[n]);
        a1[n] = fmaf(q1, dtv1, a1[n]);
        g0[n] = gn0 * qt0[n];
        g1[n] = gn1 * qt1[n];
    }
}

/* Two consecutive channels of a block (N = 16) in one pass over the chunk:
 * the same operations as bwd_adj_ run for channel 0 then channel 1, and the
 * dB/dC partials get channel 0's term then channel 1's, as there (same
 * bits); the partials are loaded and stored once per step for both, which
 * halves the adjoint's memory traffic, its bound.  Arrays of two: the
 * per-channel inputs and outputs. */
static inline __attribute__((always_inline)) KTGT void
KN(bwd_adj2_)(const int WB, const int WC, const int FIRST, int64_t t0,
              int64_t T, const float *const *A, const float *restrict Bt,
              const float *restrict Ct, const float *const *dt,
              const float *const *u, const float *const *dy0,
              const float *const *hin, const float *const *H,
              const float *const *Q, float (*g)[16], float (*dAc)[16],
              double *const *dAd, float *const *P1, float *const *P2,
              float *restrict dBp, float *restrict dCp)
{
    const float *restrict A0 = A[0], *restrict A1 = A[1];
    /* Local copies: provably unaliased, kept in registers. */
    float g0[16], g1[16], a0[16], a1[16];
    memcpy(g0, g[0], sizeof g0);
    memcpy(g1, g[1], sizeof g1);
    memcpy(a0, dAc[0], sizeof a0);
    memcpy(a1, dAc[1], sizeof a1);
    for (int64_t t = T - 1; t >= 0; t--) {
        const float *restrict bt = Bt + t * 16, *restrict ct = Ct + t * 16;
        float *restrict db = WB ? dBp + t * 16 : NULL;
        float *restrict dc = WC ? dCp + t * 16 : NULL;
        const float dyv0 = dy0[0][t], dtv0 = dt[0][t], dtu0 = dtv0 * u[0][t];
        const float dyv1 = dy0[1][t], dtv1 = dt[1][t], dtu1 = dtv1 * u[1][t];
        const float *restrict hp0 = t ? H[0] + (t - 1) * 16 : hin[0];
        const float *restrict hp1 = t ? H[1] + (t - 1) * 16 : hin[1];
        const float *restrict ht0 = H[0] + t * 16, *restrict qt0 = Q[0] + t * 16;
        const float *restrict ht1 = H[1] + t * 16, *restrict qt1 = Q[1] + t * 16;
        float *restrict p10 = P1[0] + t * 16, *restrict p20 = P2[0] + t * 16;
        float *restrict p11 = P1[1] + t * 16, *restrict p21 = P2[1] + t * 16;
        KN(bwd_adj2_step)(WB, WC, FIRST, dyv0, dtv0, dtu0, dyv1, dtv1, dtu1,
                          A0, A1, bt, ct, hp0, hp1, ht0, ht1, qt0, qt1,
                          p10, p11, p20, p21, db, dc, g0, g1, a0, a1);
        if ((t0 + t) % BWD_DA_BLOCK == 0)
            for (int n = 0; n < 16; n++) {
                dAd[0][n] += (double)a0[n];
                a0[n] = 0.0f;
                dAd[1][n] += (double)a1[n];
                a1[n] = 0.0f;
            }
    }
    memcpy(g[0], g0, sizeof g0);
    memcpy(g[1], g1, sizeof g1);
    memcpy(dAc[0], a0, sizeof a0);
    memcpy(dAc[1], a1, sizeof a1);
}

static KTGT void KN(bwd_adjoint2)(int wb, int wc, int first, int64_t t0,
                                  int64_t T, const float *const *A,
                                  const float *Bt, const float *Ct,
                                  const float *const *dt, const float *const *u,
                                  const float *const *dy0,
                                  const float *const *hin,
                                  const float *const *H, const float *const *Q,
                                  float *const *g, float *const *dAc,
                                  double *const *dAd, float *const *P1,
                                  float *const *P2, float *dBp, float *dCp)
{
    float gl[2][16], al[2][16];
    for (int c = 0; c < 2; c++) {
        memcpy(gl[c], g[c], sizeof gl[c]);
        memcpy(al[c], dAc[c], sizeof al[c]);
    }
    switch ((wb ? 4 : 0) | (wc ? 2 : 0) | (first ? 1 : 0)) {
#define ADJ2_CASE_(k, b, c, f)                                               \
    case k:                                                                  \
        KN(bwd_adj2_)(b, c, f, t0, T, A, Bt, Ct, dt, u, dy0, hin, H, Q, gl,  \
                      al, dAd, P1, P2, dBp, dCp);                            \
        break;
        ADJ2_CASE_(0, 0, 0, 0) ADJ2_CASE_(1, 0, 0, 1)
        ADJ2_CASE_(2, 0, 1, 0) ADJ2_CASE_(3, 0, 1, 1)
        ADJ2_CASE_(4, 1, 0, 0) ADJ2_CASE_(5, 1, 0, 1)
        ADJ2_CASE_(6, 1, 1, 0) default: ADJ2_CASE_(7, 1, 1, 1)
#undef ADJ2_CASE_
    }
    for (int c = 0; c < 2; c++) {
        memcpy(g[c], gl[c], sizeof gl[c]);
        memcpy(dAc[c], al[c], sizeof al[c]);
    }
}

/* s[t] = sum_n P[t][n] for t < T, in a fixed pairwise tree over n (halve the
 * width, w -> w - floor(w/2), adding the top part onto the bottom; the tree
 * depends on N only).  N = 16 (Mamba's) has its own loop with constant
 * trip counts, the same tree.  Destroys P. */
static KTGT void KN(bwd_tree)(int64_t T, int64_t N, float *restrict P,
                              float *restrict s)
{
    if (N == 16) {
        for (int64_t t = 0; t < T; t++) {
            const float *restrict p = P + t * 16;
            float v[8];
            for (int n = 0; n < 8; n++)
                v[n] = p[n] + p[n + 8];
            for (int n = 0; n < 4; n++)
                v[n] += v[n + 4];
            for (int n = 0; n < 2; n++)
                v[n] += v[n + 2];
            s[t] = v[0] + v[1];
        }
        return;
    }
    if (N == 8) {   /* the same tree, halves of 16 */
        for (int64_t t = 0; t < T; t++) {
            const float *restrict p = P + t * 8;
            float v[4];
            for (int n = 0; n < 4; n++)
                v[n] = p[n] + p[n + 4];
            for (int n = 0; n < 2; n++)
                v[n] += v[n + 2];
            s[t] = v[0] + v[1];
        }
        return;
    }
    for (int64_t w = N; w > 1;) {
        const int64_t hw = w / 2, off = w - hw;
        for (int64_t t = 0; t < T; t++) {
            float *restrict p = P + t * N;
            for (int64_t n = 0; n < hw; n++)
                p[n] += p[n + off];
        }
        w = off;
    }
    for (int64_t t = 0; t < T; t++)
        s[t] = P[t * N];
}

/* acc[s mod 8] += x[t] (y NULL) or x[t] y[t] (in double) for the absolute
 * steps s = t0 + t, t = T-1 down to 0: eight running sums keyed by absolute
 * time, each added to last step first, so neither the chunks nor the vector
 * width change a sum; the aligned groups of eight vectorize. */
static KTGT void KN(bwd_dsum)(int64_t t0, int64_t T, const float *restrict x,
                              const float *restrict y, double *restrict acc)
{
    int64_t t = T - 1;
    for (; t >= 0 && ((t0 + t + 1) & 7) != 0; t--)
        acc[(t0 + t) & 7] += y ? (double)x[t] * (double)y[t] : (double)x[t];
    if (y)
        for (; t >= 7; t -= 8)
            for (int j = 0; j < 8; j++)
                acc[j] += (double)x[t - 7 + j] * (double)y[t - 7 + j];
    else
        for (; t >= 7; t -= 8)
            for (int j = 0; j < 8; j++)
                acc[j] += (double)x[t - 7 + j];
    for (; t >= 0; t--)
        acc[(t0 + t) & 7] += y ? (double)x[t] * (double)y[t] : (double)x[t];
}

/* y += x, n floats (the block partials of dB and dC). */
static KTGT void KN(bwd_add)(int64_t n, const float *restrict x,
                             float *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

#undef KN
#undef KNAME1_
#undef KNAME2_
