/*
 * selective_kernel.h -- the inner kernels of the selective scan, written once
 * and instantiated per instruction set by selective.c (portable C, AVX2+FMA,
 * AVX-512F).  Not a normal header: it is included several times, each time
 * with these macros defined:
 *   KSFX   name suffix          KTGT   function attribute (target(...))
 *   VL     lanes                VT     vector type
 *   VLOAD(p) VSTORE(p,v) VSET1(x) VMUL(a,b) VADD(a,b) VFMA(a,b,c)=a*b+c
 *   VHSUM(v) VEXP(v) VSOFTPLUS(v) VSILU(v) VABSMAX(acc,v)
 *   VDECAY(dt,a2) VDECAYN(dt,a2) VDECAYR(dt,a2)
 * VDECAY computes scan_decayf lane by lane; VDECAYN the same where dt a2 <= 0
 * or NaN (it may skip the overflow step), VDECAYR where |dt| |A| <= DEC_RNG
 * (it may skip both range steps);
 * VABSMAX(acc, v) = max(acc, |v|) lane by lane, NaN lanes of v ignored.
 * VEXP, VSOFTPLUS and VSILU must compute scan_expf, scan_softplus and
 * scan_silu lane by lane, bit for bit, and VHSUM must sum
 * the lanes in a fixed order: the vector body and the scalar tail then give
 * the same numbers, so where the split falls (a function of dstate only)
 * never shows in the results.
 *
 * The recurrence (Mamba, Gu and Dao 2023, eq. 2a-2b with the ZOH of A and
 * the Euler step for B of their Algorithm 2 / selective_scan_ref):
 *   h_n <- exp(dt A_n) h_n + (dt u) B_n,    y = sum_n C_n h_n.
 * In "chunk" mode the tile also stores the decays, Q[t][n] = exp(dt_t A_n),
 * so that the fix-up can run a state h0 entering the chunk later through the
 * same decays (h' <- Q[t] h', y_t += sum_n C_t,n h'_n) without one more exp.
 */

/* Default for an includer without VABSMAX: no tile takes the VDECAYR
 * passes. */
#ifndef VABSMAX
#define VABSMAX(acc, v) (acc)
#define KNO_RANGE_
#define KDEFAULT_VABSMAX_
#endif

/* a2 = A log2(e), as scan_a2. */
#define KA2_(v) VFMA((v), VSET1(DEC_L2E_HI), VMUL((v), VSET1(DEC_L2E_LO)))

#define KNAME2_(a, b) a##_##b
#define KNAME1_(a, b) KNAME2_(a, b)
#define KN(name) KNAME1_(name, KSFX)

/* y[i] = exp(x[i]): vector body, scalar tail (white-box tests). */
static KTGT void KN(vexp_arr)(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        VSTORE(y + i, VEXP(VLOAD(x + i)));
    for (; i < n; i++)
        y[i] = scan_expf(x[i]);
}

/* T steps of one channel, NV (compile-time) vectors of state in registers.
 * A: [N] this channel's row; Bt, Ct: [T][N] (transposed tiles); dt, u: [T];
 * h: [N] in/out; ys: [T] out (sum_n C h); Q: [T][N] out, the decays
 * (only when CH). */
static inline __attribute__((always_inline)) KTGT void
KN(tile_nv)(const int NV, const int CH, int64_t T, int64_t N,
            const float *A, const float *Bt, const float *Ct,
            const float *dt, const float *u, float *h, float *ys,
            float *Q)
{
    VT hv[4], av[4];
    float ht[16], at[16];
    const int64_t n0 = (int64_t)NV * VL;
    const int nt = (int)(N - n0);   /* < VL <= 16 */
    for (int j = 0; j < NV; j++) {
        hv[j] = VLOAD(h + j * VL);
        av[j] = KA2_(VLOAD(A + j * VL));   /* a2: see scan_decayf */
    }
    for (int i = 0; i < nt; i++) {
        ht[i] = h[n0 + i];
        at[i] = scan_a2(A[n0 + i]);
    }
    /* One step of the vector part: updates hv (and stores the decays in
     * Q), leaves the lane sums of C h in acc. */
#define TILE_STEP_(t)                                                        \
    do {                                                                     \
        const float dtv_ = dt[t], dtu_ = dtv_ * u[t];                        \
        const VT vdt_ = VSET1(dtv_), vdtu_ = VSET1(dtu_);                    \
        const float *bt_ = Bt + (t) * N, *ct_ = Ct + (t) * N;                \
        for (int j = 0; j < NV; j++) {                                       \
            const VT a_ = VDECAY(vdt_, av[j]);                               \
            const VT c_ = VLOAD(ct_ + j * VL);                               \
            hv[j] = VFMA(a_, hv[j], VMUL(VLOAD(bt_ + j * VL), vdtu_));       \
            acc = j == 0 ? VMUL(c_, hv[j]) : VFMA(c_, hv[j], acc);           \
            if (CH)                                                          \
                VSTORE(Q + (t) * N + j * VL, a_);                            \
        }                                                                    \
    } while (0)
    int64_t t = 0;
#ifdef VHSUM_BLOCK
    /* No scalar tail: VL steps at a time, their VL lane sums reduced
     * together (VHSUM_BLOCK sums each vector in VHSUM's order). */
    if (nt == 0 && NV > 0) {
        for (; t + VL <= T; t += VL) {
            VT accb[VL];
            for (int tt = 0; tt < VL; tt++) {
                VT acc = VSET1(0.0f);
                TILE_STEP_(t + tt);
                accb[tt] = acc;
            }
            VSTORE(ys + t, VHSUM_BLOCK(accb));
        }
    }
#endif
    for (; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t];
        const float *bt = Bt + t * N, *ct = Ct + t * N;
        VT acc = VSET1(0.0f);
        TILE_STEP_(t);
        float s = NV ? VHSUM(acc) : 0.0f;
        for (int i = 0; i < nt; i++) {
            const float a = scan_decayf(dtv, at[i]);
            ht[i] = fmaf(a, ht[i], bt[n0 + i] * dtu);
            s = fmaf(ct[n0 + i], ht[i], s);
            if (CH)
                Q[t * N + n0 + i] = a;
        }
        ys[t] = s;
    }
#undef TILE_STEP_
    for (int j = 0; j < NV; j++)
        VSTORE(h + j * VL, hv[j]);
    for (int i = 0; i < nt; i++)
        h[n0 + i] = ht[i];
}

/* The same for any number of vectors, the state kept in memory (large
 * dstate: the arithmetic per lane is the same as in tile_nv). */
static KTGT void
KN(tile_mem)(int CH, int64_t T, int64_t N, const float *A, const float *Bt,
             const float *Ct, const float *dt, const float *u, float *h,
             float *ys, float *Q)
{
    const int64_t nv = N / VL, n0 = nv * VL;
    for (int64_t t = 0; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t];
        const VT vdt = VSET1(dtv), vdtu = VSET1(dtu);
        const float *bt = Bt + t * N, *ct = Ct + t * N;
        VT acc = VSET1(0.0f);
        for (int64_t j = 0; j < nv; j++) {
            const VT a = VDECAY(vdt, KA2_(VLOAD(A + j * VL)));
            const VT c = VLOAD(ct + j * VL);
            const VT hj = VFMA(a, VLOAD(h + j * VL), VMUL(VLOAD(bt + j * VL), vdtu));
            VSTORE(h + j * VL, hj);
            acc = j == 0 ? VMUL(c, hj) : VFMA(c, hj, acc);
            if (CH)
                VSTORE(Q + t * N + j * VL, a);
        }
        float s = nv ? VHSUM(acc) : 0.0f;
        for (int64_t n = n0; n < N; n++) {
            const float a = scan_decayf(dtv, scan_a2(A[n]));
            h[n] = fmaf(a, h[n], bt[n] * dtu);
            s = fmaf(ct[n], h[n], s);
            if (CH)
                Q[t * N + n] = a;
        }
        ys[t] = s;
    }
}

/* One tile of one channel; Q NULL outside chunk mode. */
static KTGT void
KN(tile)(int64_t T, int64_t N, const float *A, const float *Bt,
         const float *Ct, const float *dt, const float *u, float *h,
         float *ys, float *Q)
{
    const int64_t nv = N / VL;
    if (Q) {
        switch (nv) {
        case 0: KN(tile_nv)(0, 1, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
        case 1: KN(tile_nv)(1, 1, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
        case 2: KN(tile_nv)(2, 1, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
        case 4: KN(tile_nv)(4, 1, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
        default: KN(tile_mem)(1, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
        }
    }
    switch (nv) {
    case 0: KN(tile_nv)(0, 0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    case 1: KN(tile_nv)(1, 0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    case 2: KN(tile_nv)(2, 0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    case 3: KN(tile_nv)(3, 0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    case 4: KN(tile_nv)(4, 0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    default: KN(tile_mem)(0, T, N, A, Bt, Ct, dt, u, h, ys, Q); return;
    }
}

/* Fix-up of a chunk: the state hp entering it (in: carry, out: its part of
 * the state leaving) decays through the stored decays Q, and
 * ys[t] += sum_n C[t][n] hp_n in VHSUM's order.  NV vectors in registers. */
static inline __attribute__((always_inline)) KTGT void
KN(fixup_nv)(const int NV, int64_t T, int64_t N, const float *Q,
             const float *Ct, float *hp, float *ys)
{
    VT hv[4];
    float ht[16];
    const int64_t n0 = (int64_t)NV * VL;
    const int nt = (int)(N - n0);
    for (int j = 0; j < NV; j++)
        hv[j] = VLOAD(hp + j * VL);
    for (int i = 0; i < nt; i++)
        ht[i] = hp[n0 + i];
#define FIX_STEP_(t)                                                         \
    do {                                                                     \
        const float *q_ = Q + (t) * N, *c_ = Ct + (t) * N;                   \
        for (int j = 0; j < NV; j++) {                                       \
            hv[j] = VMUL(VLOAD(q_ + j * VL), hv[j]);                         \
            acc = j == 0 ? VMUL(VLOAD(c_), hv[0])                            \
                         : VFMA(VLOAD(c_ + j * VL), hv[j], acc);             \
        }                                                                    \
    } while (0)
    int64_t t = 0;
#ifdef VHSUM_BLOCK
    if (nt == 0 && NV > 0) {
        for (; t + VL <= T; t += VL) {
            VT accb[VL];
            for (int tt = 0; tt < VL; tt++) {
                VT acc = VSET1(0.0f);
                FIX_STEP_(t + tt);
                accb[tt] = acc;
            }
            VSTORE(ys + t, VADD(VLOAD(ys + t), VHSUM_BLOCK(accb)));
        }
    }
#endif
    for (; t < T; t++) {
        VT acc = VSET1(0.0f);
        FIX_STEP_(t);
        float s = NV ? VHSUM(acc) : 0.0f;
        for (int i = 0; i < nt; i++) {
            ht[i] = Q[t * N + n0 + i] * ht[i];
            s = fmaf(Ct[t * N + n0 + i], ht[i], s);
        }
        ys[t] += s;
    }
#undef FIX_STEP_
    for (int j = 0; j < NV; j++)
        VSTORE(hp + j * VL, hv[j]);
    for (int i = 0; i < nt; i++)
        hp[n0 + i] = ht[i];
}

static KTGT void
KN(fixup_mem)(int64_t T, int64_t N, const float *Q, const float *Ct,
              float *hp, float *ys)
{
    const int64_t nv = N / VL, n0 = nv * VL;
    for (int64_t t = 0; t < T; t++) {
        const float *q = Q + t * N, *c = Ct + t * N;
        VT acc = VSET1(0.0f);
        for (int64_t j = 0; j < nv; j++) {
            const VT hj = VMUL(VLOAD(q + j * VL), VLOAD(hp + j * VL));
            VSTORE(hp + j * VL, hj);
            acc = j == 0 ? VMUL(VLOAD(c), hj) : VFMA(VLOAD(c + j * VL), hj, acc);
        }
        float s = nv ? VHSUM(acc) : 0.0f;
        for (int64_t n = n0; n < N; n++) {
            hp[n] = q[n] * hp[n];
            s = fmaf(c[n], hp[n], s);
        }
        ys[t] += s;
    }
}

static KTGT void
KN(fixup)(int64_t T, int64_t N, const float *Q, const float *Ct, float *hp,
          float *ys)
{
    switch (N / VL) {
    case 0: KN(fixup_nv)(0, T, N, Q, Ct, hp, ys); return;
    case 1: KN(fixup_nv)(1, T, N, Q, Ct, hp, ys); return;
    case 2: KN(fixup_nv)(2, T, N, Q, Ct, hp, ys); return;
    case 4: KN(fixup_nv)(4, T, N, Q, Ct, hp, ys); return;
    default: KN(fixup_mem)(T, N, Q, Ct, hp, ys); return;
    }
}

/* Bt[t][n] = Bg[n][t0 + t] for a tile (t < T, n < N): moves only. */
static KTGT void KN(transpose)(const float *Bg, int64_t L, int64_t t0,
                               int64_t T, int64_t N, float *Bt)
{
    int64_t n = 0;
#ifdef VTRANSPOSE8
    for (; n + 8 <= N; n += 8) {
        int64_t t = 0;
        for (; t + 8 <= T; t += 8)
            VTRANSPOSE8(Bg + n * L + t0 + t, L, Bt + t * N + n, N);
        for (; t < T; t++)
            for (int64_t i = 0; i < 8; i++)
                Bt[t * N + n + i] = Bg[(n + i) * L + t0 + t];
    }
#endif
    for (; n < N; n++) {
        const float *src = Bg + n * L + t0;
        for (int64_t t = 0; t < T; t++)
            Bt[t * N + n] = src[t];
    }
}

/* dt for T steps of one channel: softplus(delta + bias) or delta + bias. */
static KTGT void KN(dt_tile)(int64_t T, const float *delta, const float *bias_d,
                             int softplus, float *dt)
{
    int64_t t = 0;
    const float bb = bias_d ? *bias_d : 0.0f;
    const VT vb = VSET1(bb);
    if (softplus && bias_d) {
        for (; t + VL <= T; t += VL)
            VSTORE(dt + t, VSOFTPLUS(VADD(VLOAD(delta + t), vb)));
        for (; t < T; t++)
            dt[t] = scan_softplus(delta[t] + bb);
    } else if (softplus) {
        for (; t + VL <= T; t += VL)
            VSTORE(dt + t, VSOFTPLUS(VLOAD(delta + t)));
        for (; t < T; t++)
            dt[t] = scan_softplus(delta[t]);
    } else if (bias_d) {
        for (; t < T; t++)
            dt[t] = delta[t] + bb;
    } else {
        memcpy(dt, delta, (size_t)T * sizeof(float));
    }
}

/* y = (y + D u) * silu(z) for T steps of one channel. */
static KTGT void KN(finish_tile)(int64_t T, float *y, const float *u,
                                 const float *D_d, const float *z)
{
    if (D_d) {
        const float dd = *D_d;
        const VT vd = VSET1(dd);
        int64_t t = 0;
        for (; t + VL <= T; t += VL)
            VSTORE(y + t, VFMA(vd, VLOAD(u + t), VLOAD(y + t)));
        for (; t < T; t++)
            y[t] = fmaf(dd, u[t], y[t]);
    }
    if (z) {
        int64_t t = 0;
        for (; t + VL <= T; t += VL)
            VSTORE(y + t, VMUL(VLOAD(y + t), VSILU(VLOAD(z + t))));
        for (; t < T; t++)
            y[t] = y[t] * scan_silu(z[t]);
    }
}

/* ------------------------------------------------ one channel at a time --
 * The arithmetic every path but the time-parallel ones shares, per channel
 * (so which kernel runs a channel, and in which lane, never shows in the
 * bytes): a = exp(dt A_n), h_n = fma(a, h_n, B_n (dt u)) for n = 0..N-1,
 * and y = C_0 h_0, y = fma(C_n, h_n, y) in increasing n: one FMA chain, no
 * tree.  row_tile runs one channel over T steps with the state vectorized
 * (VL states per vector) and the chain in scalar FMAs: the kernel of the
 * step and of the channels that do not fill a channel vector.  Bt, Ct:
 * [T][N]; h: [N] in/out (in memory: the chain reads it back). */
static KTGT void
KN(row_tile)(int64_t T, int64_t N, const float *A, const float *Bt,
             const float *Ct, const float *dt, const float *u, float *h,
             float *ys)
{
    const int64_t nv = N / VL, n0 = nv * VL;
    for (int64_t t = 0; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t];
        const VT vdt = VSET1(dtv), vdtu = VSET1(dtu);
        const float *bt = Bt + t * N, *ct = Ct + t * N;
        for (int64_t j = 0; j < nv; j++) {
            const VT a = VDECAY(vdt, KA2_(VLOAD(A + j * VL)));
            VSTORE(h + j * VL, VFMA(a, VLOAD(h + j * VL), VMUL(VLOAD(bt + j * VL), vdtu)));
        }
        for (int64_t n = n0; n < N; n++)
            h[n] = fmaf(scan_decayf(dtv, scan_a2(A[n])), h[n], bt[n] * dtu);
        float s = ct[0] * h[0];
        for (int64_t n = 1; n < N; n++)
            s = fmaf(ct[n], h[n], s);
        ys[t] = s;
    }
}

/* The same arithmetic with VL channels in the lanes of a vector (Mamba's
 * channels of one group share B_t and C_t: broadcast scalars), so neither a
 * horizontal sum nor a transpose of B and C is needed, and softplus, D and
 * the z gate run on the vector of channels.  The states are taken NB <= 8 at
 * a time over the whole tile (8 state vectors, the exp's constants and the
 * temporaries fill the 16 or 32 vector registers without spills); the chain
 * y = C_0 h_0 + ... passes from one group of states to the next through yl,
 * so its order is still n = 0, 1, ..., N-1.
 * cv_pass: states [n0, n0 + NB) for T steps; FIRST: n0 == 0. */
static inline __attribute__((always_inline)) KTGT void
KN(cv_pass_pf)(const int NB, const int FIRST, const int NEG, int64_t T, int64_t ld,
               const float *Al, const float *Bn, const float *Cn, const float *dtl,
               const float *dtul, float *h, float *yl, const float *const *pf,
               int64_t pn)
{
    VT hv[8];
    /* pf: pn lines to prefetch into L2 (data of the next block or tile),
     * at most per_t a step: spread over the pass, the misses overlap the
     * arithmetic instead of queueing behind the miss buffers. */
    const int64_t per_t = (pn + T - 1) / (T > 0 ? T : 1);
    int64_t pi = 0;
    VT a2[8];   /* A log2(e): see scan_decayf */
    for (int j = 0; j < NB; j++) {
        hv[j] = VLOAD(h + j * VL);
        a2[j] = KA2_(VLOAD(Al + j * VL));
    }
    for (int64_t t = 0; t < T; t++) {
        for (int64_t q = 0; q < per_t && pi < pn; q++, pi++)
            __builtin_prefetch(pf[pi], 0, 2);
        const VT dt = VLOAD(dtl + t * VL), dtu = VLOAD(dtul + t * VL);
        VT s = FIRST ? VSET1(0.0f) : VLOAD(yl + t * VL);
#pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            const VT a = NEG == 2 ? VDECAYR(dt, a2[j])
                         : NEG ? VDECAYN(dt, a2[j]) : VDECAY(dt, a2[j]);
            hv[j] = VFMA(a, hv[j], VMUL(VSET1(Bn[j * ld + t]), dtu));
            const VT c = VSET1(Cn[j * ld + t]);
            s = FIRST && j == 0 ? VMUL(c, hv[0]) : VFMA(c, hv[j], s);
        }
        VSTORE(yl + t * VL, s);
    }
    for (int j = 0; j < NB; j++)
        VSTORE(h + j * VL, hv[j]);
}

/* cv_pass_pf without prefetches. */
static inline __attribute__((always_inline)) KTGT void
KN(cv_pass)(const int NB, const int FIRST, const int NEG, int64_t T, int64_t ld, const float *Al,
            const float *Bn, const float *Cn, const float *dtl,
            const float *dtul, float *h, float *yl)
{
    KN(cv_pass_pf)(NB, FIRST, NEG, T, ld, Al, Bn, Cn, dtl, dtul, h, yl, NULL, 0);
}

/* One tile of a channel block.  Lane-major [.][VL] arrays of the block's
 * channels: dl [T][VL] delta in, overwritten by dt; ul [T][VL] u; wl
 * [T][VL] scratch (dt u); yl [T][VL] out, without the z gate (the caller's
 * scatter applies it, on rows); Al, h [N][VL] (h in/out); bl, Dl [VL] bias
 * and D or NULL.  BC [2N][ld]: the group's B rows then C rows from the
 * tile's first step.  pfl: pn lines to prefetch, spread over the state
 * passes (not over the first loop: ~N/8 times longer, so fewer misses in
 * flight at once). */
static KTGT void
KN(cv_tile)(int64_t T, int64_t N, const float *Al, const float *BC, int64_t ld,
            float *dl, const float *ul, const float *bl, const float *Dl,
            int softplus, float *wl, float *h, float *yl,
            const float *const *pfl, int64_t pn)
{
    const VT vb = bl ? VLOAD(bl) : VSET1(0.0f);
    VT vmx = VSET1(0.0f);   /* max |dt| over the tile (NaN ignored) */
    for (int64_t t = 0; t < T; t++) {
        VT x = VLOAD(dl + t * VL);
        if (bl)
            x = VADD(x, vb);
        const VT dt = softplus ? VSOFTPLUS(x) : x;
        vmx = VABSMAX(vmx, dt);
        VSTORE(dl + t * VL, dt);
        VSTORE(wl + t * VL, VMUL(dt, VLOAD(ul + t * VL)));
    }
    /* |dt A| <= 87 in every lane when max|dt| max|A| <= DEC_RNG = 87
     * (rounding is monotone); then |dt a2| <= 125.5, neither of the decay's
     * range steps (0 below -160, +inf above 130) can apply, 2^k is normal,
     * and VDECAYR, without both, gives the same bits.  A NaN dt or A makes
     * the decay NaN in both forms alike, so the maxima may ignore NaN. */
    int rng = 0;
    {
        VT vma = VSET1(0.0f);
        for (int64_t i = 0; i < N; i++)
            vma = VABSMAX(vma, VLOAD(Al + i * VL));
        float fd[VL], fa[VL], md = 0.0f, ma = 0.0f;
        VSTORE(fd, vmx);
        VSTORE(fa, vma);
        for (int i = 0; i < VL; i++) {
            md = fd[i] > md ? fd[i] : md;
            ma = fa[i] > ma ? fa[i] : ma;
        }
#ifdef KNO_RANGE_
        (void)md;
        (void)ma;
#else
        rng = md * ma <= DEC_RNG;
#endif
    }
    /* dt A <= 0 (or NaN) in every lane when no A is above 0 and no dt
     * below 0 (softplus never is): then the decay's last step (+inf above
     * 130) cannot apply, and VDECAYN, without it, gives the same bits. */
    int neg = 1;
    for (int64_t i = 0; i < N * VL; i++)
        neg &= !(Al[i] > 0.0f);
    if (!softplus)
        for (int64_t i = 0; i < T * VL; i++)
            neg &= !(dl[i] < 0.0f);
    const float *Cc = BC + N * ld;
    /* 8 states a pass with 32 registers (AVX-512), 4 with 16 (AVX2). */
    enum { NBMAX = VL == 8 ? 4 : 8 };
    const int64_t npass = (N + NBMAX - 1) / NBMAX;
    for (int64_t n0 = 0; n0 < N; n0 += NBMAX) {
        const int64_t nb = N - n0 < NBMAX ? N - n0 : NBMAX;
        const float *Ap = Al + n0 * VL, *Bp = BC + n0 * ld, *Cp = Cc + n0 * ld;
        float *hp = h + n0 * VL;
        /* This pass's share of the prefetches. */
        const int64_t p0 = pn * (n0 / NBMAX) / npass;
        const int64_t p1 = pn * (n0 / NBMAX + 1) / npass;
        const float *const *pp = pfl + p0;
#define CV_PASS_(nb_)                                                         \
    case nb_:                                                                \
        if (nb_ == NBMAX && n0 == 0 && rng)                                  \
            KN(cv_pass_pf)(nb_, 1, 2, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        else if (nb_ == NBMAX && rng)                                        \
            KN(cv_pass_pf)(nb_, 0, 2, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        else if (n0 == 0 && neg)                                                  \
            KN(cv_pass_pf)(nb_, 1, 1, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        else if (n0 == 0)                                                    \
            KN(cv_pass_pf)(nb_, 1, 0, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        else if (neg)                                                        \
            KN(cv_pass_pf)(nb_, 0, 1, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        else                                                                 \
            KN(cv_pass_pf)(nb_, 0, 0, T, ld, Ap, Bp, Cp, dl, wl, hp, yl, pp, p1 - p0); \
        break;
        switch (nb) {
        CV_PASS_(1) CV_PASS_(2) CV_PASS_(3) CV_PASS_(4)
        CV_PASS_(5) CV_PASS_(6) CV_PASS_(7) default: CV_PASS_(8)
        }
#undef CV_PASS_
    }
    if (Dl) {
        const VT vD = VLOAD(Dl);
        for (int64_t t = 0; t < T; t++)
            VSTORE(yl + t * VL, VFMA(vD, VLOAD(ul + t * VL), VLOAD(yl + t * VL)));
    }
}

/* dst[t][c] = src[c][t] (row stride ld) for c < m, 0 for m <= c < VL: the
 * lane-major tile of m channels, T steps. */
static KTGT void KN(cv_gather)(const float *src, int64_t ld, int64_t m,
                               int64_t T, float *dst)
{
    int64_t t = 0;
#ifdef VTRANSPOSE8
    /* Eight rows at a time over the whole tile: rows ld apart (a power of
     * two, often) share an L1 set, and 16 rows of lines would not fit its
     * ways before their second halves are read. */
    if (m == VL) {
        for (int64_t c = 0; c < VL; c += 8)
            for (t = 0; t + 8 <= T; t += 8)
                VTRANSPOSE8(src + c * ld + t, ld, dst + t * VL + c, VL);
    }
#endif
    for (; t < T; t++)
        for (int64_t c = 0; c < VL; c++)
            dst[t * VL + c] = c < m ? src[c * ld + t] : 0.0f;
}

/* dst[c][t] (row stride ld) = src[t][c] for c < m: back from lane-major;
 * times silu(z[c][t]) (the same row stride) where z is not NULL.  The gate
 * is applied here, on rows, rather than in cv_tile: z then needs no
 * transpose of its own (one of the four a tile had), and each value is the
 * same product y silu(z) of the same two floats. */
static KTGT void KN(cv_scatter)(const float *src, int64_t m, int64_t T,
                                float *dst, int64_t ld, const float *z)
{
    int64_t t = 0;
#ifdef VTRANSPOSE8
    if (m == VL && z) {   /* 16 steps of 8 rows at a time, gated as rows */
        for (int64_t c = 0; c < VL; c += 8)
            for (t = 0; t + 16 <= T; t += 16) {
                float tb[8 * 16] __attribute__((aligned(64)));
                VTRANSPOSE8(src + t * VL + c, VL, tb, 16);
                VTRANSPOSE8(src + (t + 8) * VL + c, VL, tb + 8, 16);
                for (int64_t i = 0; i < 8; i++)
                    for (int64_t v = 0; v < 16; v += VL)
                        VSTORE(dst + (c + i) * ld + t + v,
                               VMUL(VLOAD(tb + 16 * i + v),
                                    VSILU(VLOAD(z + (c + i) * ld + t + v))));
            }
    } else if (m == VL) {   /* row order: see cv_gather */
        for (int64_t c = 0; c < VL; c += 8)
            for (t = 0; t + 8 <= T; t += 8)
                VTRANSPOSE8(src + t * VL + c, VL, dst + c * ld + t, ld);
    }
#endif
    for (; t < T; t++)
        for (int64_t c = 0; c < m; c++)
            dst[c * ld + t] = z ? src[t * VL + c] * scan_silu(z[c * ld + t])
                                : src[t * VL + c];
}

/* cv_scatter with non-temporal stores of whole 64-byte lines (the tile's
 * head and tail, up to a line boundary, with ordinary stores): for outputs
 * far larger than the caches, it saves reading each line of y before
 * writing it.  Same values; the caller fences (VSFENCE) before its unit
 * ends. */
static KTGT void KN(cv_scatter_nt)(const float *src, int64_t m, int64_t T,
                                   float *dst, int64_t ld, const float *z)
{
#if defined(VTRANSPOSE8) && defined(VSTREAM16)
    if (m == VL && ld % 16 == 0) {
        const int64_t mis = (int64_t)(((uintptr_t)dst & 63u) / sizeof(float));
        int64_t hd = (16 - mis) % 16;
        if ((uintptr_t)dst % sizeof(float) != 0 || hd > T)
            hd = T;
        const int64_t nb = (T - hd) / 16 * 16;
        KN(cv_scatter)(src, m, hd, dst, ld, z);
        for (int64_t c = 0; c < VL; c += 8)
            for (int64_t t = hd; t < hd + nb; t += 16) {
                float tb[8 * 16] __attribute__((aligned(64)));
                VTRANSPOSE8(src + t * VL + c, VL, tb, 16);
                VTRANSPOSE8(src + (t + 8) * VL + c, VL, tb + 8, 16);
                if (z)
                    for (int64_t i = 0; i < 8; i++)
                        for (int64_t v = 0; v < 16; v += VL)
                            VSTORE(tb + 16 * i + v,
                                   VMUL(VLOAD(tb + 16 * i + v),
                                        VSILU(VLOAD(z + (c + i) * ld + t + v))));
                for (int64_t i = 0; i < 8; i++)
                    VSTREAM16(dst + (c + i) * ld + t, tb + 16 * i);
            }
        KN(cv_scatter)(src + (hd + nb) * VL, m, T - hd - nb, dst + hd + nb, ld,
                       z ? z + hd + nb : NULL);
        return;
    }
#endif
    KN(cv_scatter)(src, m, T, dst, ld, z);
}

#ifdef KDEFAULT_VABSMAX_
#undef VABSMAX
#undef KNO_RANGE_
#undef KDEFAULT_VABSMAX_
#endif
#undef KA2_
#undef KN
#undef KNAME1_
#undef KNAME2_
