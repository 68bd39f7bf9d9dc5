/*
 * selective_bwd_cv.h -- channel-vector kernels of the selective scan
 * backward (selective_bwd.c): 16 channels of one group in the lanes of a
 * vector, as the forward's cv_tile (selective_kernel.h).  The channels of a
 * group share B_t and C_t (broadcast scalars), so the state loop needs no
 * transpose of B and C and no horizontal sum over the state: the sums over n
 * (s1 = sum_n g B, s2 = sum_n A g a h_prev, ys = sum_n C h) are per-lane FMA
 * chains in increasing n, and softplus, its derivative, D and the gate run
 * on vectors of channels.  The one sum across lanes is the group's dB and
 * dC (sum over channels): 16 vectors of terms at a time go through
 * VHSUM16, the same tree in every instruction set.
 *
 * Included once per instruction set with these macros defined:
 *   KSFX, KTGT      name suffix, function attribute
 *   VT              16-lane vector type
 *   VLD(p) VST(p,v) VSET(x) VMUL VADD VSUB VDIV VFMA(a,b,c)=a*b+c
 *   VEXP            exp (scan_expf)
 *   VSOFTPLUS       softplus with Mamba's threshold 20
 *   VGTSEL(x,y,a,b) x > y ? a : b
 *   VHSUM16(v)      lane i = tree sum of the lanes of v[i], v: VT[16]
 *   NBMAX           states per pass (the vectors of state kept in registers)
 *   VTRANS8         (optional) 8 x 8 transpose
 *   VTRANS16        (optional) 16 x 16 transpose (the scatters' full blocks;
 *                   needs VTRANS8)
 *   VSTREAM16(p,q)  (optional) stream 16 floats from aligned q to aligned p
 * Lane-major arrays: X[t][16] (lane c = channel d0 + c), states [N][16].
 *
 * Notation as in selective_bwd_kernel.h: dt_t, a_tn = exp(dt_t A_n),
 * h_tn = a_tn h_(t-1)n + dt_t u_t B_tn; adjoint g_tn = dy0_t C_tn +
 * a_(t+1)n g_(t+1)n; dB_tn = sum_c g_tn dt_t u_t, dC_tn = sum_c dy0_t h_tn,
 * dA_n += dt_t g_tn a_tn h_(t-1)n (Mamba eq. 2a-2b, Algorithm 2).
 */

#define KNAME2_(a, b) a##_##b
#define KNAME1_(a, b) KNAME2_(a, b)
#define KN(name) KNAME1_(name, KSFX)

/* dst[t*16 + c] = src[c*ld + t] for c < m, 0 for m <= c < 16: T steps. */
static KTGT void KN(cvb_gather)(const float *src, int64_t ld, int64_t m,
                                int64_t T, float *dst)
{
    int64_t t = 0;
#ifdef VTRANS8
    /* 8 x 8 blocks, eight rows at a time over the whole tile (as the
     * forward's cv_gather: the rows, often a power of two apart, share an L1
     * set; 16 x 16 blocks measured no faster here). */
    if (m == 16)
        for (int64_t c = 0; c < 16; c += 8)
            for (t = 0; t + 8 <= T; t += 8)
                VTRANS8(src + c * ld + t, ld, dst + t * 16 + c, 16);
#endif
    for (; t < T; t++)
        for (int64_t c = 0; c < 16; c++)
            dst[t * 16 + c] = c < m ? src[c * ld + t] : 0.0f;
}

/* dst[c*ld + t] = src[t*16 + c] for c < m: back from lane-major. */
static KTGT void KN(cvb_scatter)(const float *src, int64_t m, int64_t T,
                                 float *dst, int64_t ld)
{
    int64_t t = 0;
#ifdef VTRANS8
    if (m == 16) {
        int64_t t16 = 0;
#ifdef VTRANS16
        for (; t16 + 16 <= T; t16 += 16)
            VTRANS16(src + t16 * 16, 16, dst + t16, ld);
#endif
        for (int64_t c = 0; c < 16; c += 8)
            for (t = t16; t + 8 <= T; t += 8)
                VTRANS8(src + t * 16 + c, 16, dst + c * ld + t, ld);
    }
#endif
    for (; t < T; t++)
        for (int64_t c = 0; c < m; c++)
            dst[c * ld + t] = src[t * 16 + c];
}

/* cvb_scatter with streaming stores (VSTREAM16: 16 floats to a 64-byte
 * aligned line without reading it first) for outputs far larger than the
 * caches; the same values.  The caller fences (VSFENCE) before its unit
 * ends. */
static KTGT void KN(cvb_scatter_nt)(const float *src, int64_t m, int64_t T,
                                    float *dst, int64_t ld)
{
#if defined(VTRANS8) && defined(VSTREAM16)
    if (m == 16 && ld % 16 == 0 && (uintptr_t)dst % sizeof(float) == 0) {
        const int64_t mis = (int64_t)(((uintptr_t)dst & 63u) / sizeof(float));
        int64_t hd = (16 - mis) % 16;
        if (hd > T)
            hd = T;
        const int64_t nb = (T - hd) / 16 * 16;
        KN(cvb_scatter)(src, m, hd, dst, ld);
#ifdef VTRANS16
        for (int64_t t = hd; t < hd + nb; t += 16) {
            float tb[16 * 16] __attribute__((aligned(64)));
            VTRANS16(src + t * 16, 16, tb, 16);
            for (int64_t i = 0; i < 16; i++)
                VSTREAM16(dst + i * ld + t, tb + 16 * i);
        }
#else
        for (int64_t c = 0; c < 16; c += 8)
            for (int64_t t = hd; t < hd + nb; t += 16) {
                float tb[8 * 16] __attribute__((aligned(64)));
                VTRANS8(src + t * 16 + c, 16, tb, 16);
                VTRANS8(src + (t + 8) * 16 + c, 16, tb + 8, 16);
                for (int64_t i = 0; i < 8; i++)
                    VSTREAM16(dst + (c + i) * ld + t, tb + 16 * i);
            }
#endif
        KN(cvb_scatter)(src + (hd + nb) * 16, m, T - hd - nb, dst + hd + nb, ld);
        return;
    }
#endif
    KN(cvb_scatter)(src, m, T, dst, ld);
}

/* dst[i*ds + j] = src[j*ss + i] for i < ni, j < nj: 8 x 8 blocks where
 * there is a vector transpose (the split path's B and C tiles and its dB,
 * dC rows). */
static KTGT void KN(cvb_tr)(int64_t ni, int64_t nj, const float *src, int64_t ss,
                            float *dst, int64_t ds)
{
    int64_t j0 = 0;
#ifdef VTRANS8
    for (; j0 + 8 <= nj; j0 += 8) {
        int64_t i = 0;
        for (; i + 8 <= ni; i += 8)
            VTRANS8(src + j0 * ss + i, ss, dst + i * ds + j0, ds);
        for (; i < ni; i++)
            for (int64_t j = j0; j < j0 + 8; j++)
                dst[i * ds + j] = src[j * ss + i];
    }
#endif
    for (int64_t j = j0; j < nj; j++)
        for (int64_t i = 0; i < ni; i++)
            dst[i * ds + j] = src[j * ss + i];
}

/* dl [T][16]: delta in, dt out (softplus(delta + bias) or delta + bias,
 * bl NULL: no bias); wl (or NULL) = dt u. */
static KTGT void KN(cvb_dt)(int64_t T, float *dl, const float *ul,
                            const float *bl, int softplus, float *wl)
{
    const VT vb = bl ? VLD(bl) : VSET(0.0f);
    for (int64_t t = 0; t < T; t++) {
        VT x = VLD(dl + t * 16);
        if (bl)
            x = VADD(x, vb);
        const VT dt = softplus ? VSOFTPLUS(x) : x;
        VST(dl + t * 16, dt);
        if (wl)
            VST(wl + t * 16, VMUL(dt, VLD(ul + t * 16)));
    }
}

/* -expm1(-d) for d >= 0 (or NaN) on 16 lanes: below 0.5 the series
 * d - d^2/2 + ... - d^9/9! (next term < 3e-9 d), above it 1 - exp(-d). */
static inline __attribute__((always_inline)) KTGT VT KN(cvb_mexpm1n)(VT d)
{
    const VT y = VSUB(VSET(0.0f), d);
    VT p = VSET(2.75573192239858907e-6f);          /* 1/9! */
    p = VFMA(p, y, VSET(2.48015873015873016e-5f)); /* 1/8! */
    p = VFMA(p, y, VSET(1.98412698412698413e-4f));
    p = VFMA(p, y, VSET(1.38888888888888889e-3f));
    p = VFMA(p, y, VSET(8.33333333333333333e-3f));
    p = VFMA(p, y, VSET(4.16666666666666667e-2f));
    p = VFMA(p, y, VSET(1.66666666666666667e-1f));
    p = VFMA(p, y, VSET(0.5f));
    p = VFMA(p, y, VSET(1.0f));
    const VT small = VMUL(d, p);                   /* -expm1(y) = d p(y) */
    const VT big = VSUB(VSET(1.0f), VEXP(y));
    return VGTSEL(d, VSET(0.5f), big, small);
}

/* wl = dt u; dsl (or NULL) = d(dt)/d(delta): under softplus sigmoid(x) =
 * 1 - exp(-softplus(x)) = -expm1(-dt), from the stored dt (no second exp
 * of x; above the threshold 20, where dt = x, it rounds to 1 as Mamba's
 * derivative there), else 1; dy0l = dy silu(z) (dy without z), denl =
 * 1 + exp(-z) (with z). */
static KTGT void KN(cvb_pre)(int64_t T, const float *dtl, const float *ul,
                             int softplus, const float *dyl, const float *zl,
                             float *wl, float *dsl, float *dy0l, float *denl)
{
    const VT one = VSET(1.0f), zero = VSET(0.0f);
    for (int64_t t = 0; t < T; t++) {
        if (wl)
            VST(wl + t * 16, VMUL(VLD(dtl + t * 16), VLD(ul + t * 16)));
        if (dsl)
            VST(dsl + t * 16, softplus ? KN(cvb_mexpm1n)(VLD(dtl + t * 16)) : one);
        const VT dy = VLD(dyl + t * 16);
        if (zl) {
            const VT z = VLD(zl + t * 16), den = VADD(one, VEXP(VSUB(zero, z)));
            VST(dy0l + t * 16, VMUL(dy, VDIV(z, den)));
            VST(denl + t * 16, den);   /* 1 + exp(-z), for cvb_post's sigmoid */
        } else {
            VST(dy0l + t * 16, dy);
        }
    }
}

/* dD and ddelta_bias: for each lane c < m, eight double sums keyed by
 * absolute time, acc[c*8 + (t0+t) % 8] += x_tc y_tc (y NULL: x_tc), t from
 * T-1 down to 0, as bwd_dsum.  The sums live in a local [8][16] block so
 * that the 16 lanes are independent vector chains (a scalar loop through
 * memory was a store-forwarding chain: 14% of the backward); each (c, k)
 * sum gets its terms in the same order, so the bits are those of the
 * scalar loop (x y is exact in double). */
static KTGT void KN(cvb_dsum)(int64_t t0, int64_t T, int64_t m, const float *x,
                              const float *y, double *acc)
{
    double s[8][16];
    for (int k = 0; k < 8; k++)
        for (int c = 0; c < 16; c++)
            s[k][c] = c < m ? acc[c * 8 + k] : 0.0;
    for (int64_t t = T - 1; t >= 0; t--) {
        double *sk = s[(t0 + t) & 7];
        const float *xt = x + t * 16;
        if (y) {
            const float *yt = y + t * 16;
            for (int c = 0; c < 16; c++)
                sk[c] += (double)xt[c] * (double)yt[c];
        } else {
            for (int c = 0; c < 16; c++)
                sk[c] += (double)xt[c];
        }
    }
    for (int64_t c = 0; c < m; c++)
        for (int k = 0; k < 8; k++)
            acc[c * 8 + k] = s[k][c];
}

/* max |x_i| over n floats, NaN ignored (0 for none): with max |A| it
 * bounds |dt A| over a chunk, so its decays may skip exp's clamps. */
static KTGT float KN(cvb_absmax)(int64_t n, const float *x)
{
    /* 16 lanes in a GCC/clang vector (the plain loop was not vectorized):
     * |v| by clearing the sign bit, max by a compare and select, so a NaN
     * lane keeps the running maximum; four chains (the compare and select
     * are a latency chain). */
    typedef float cvb_f16 __attribute__((vector_size(64)));
    typedef int32_t cvb_i16 __attribute__((vector_size(64)));
    const cvb_i16 nosign = (cvb_i16){ 0 } + 0x7fffffff;
#define CVB_AMAX_(mx, p)                                                    \
    do {                                                                    \
        cvb_f16 v_;                                                         \
        memcpy(&v_, (p), sizeof v_);                                        \
        v_ = (cvb_f16)((cvb_i16)v_ & nosign);                               \
        const cvb_i16 gt_ = v_ > (mx);                                      \
        (mx) = (cvb_f16)((gt_ & (cvb_i16)v_) | (~gt_ & (cvb_i16)(mx)));      \
    } while (0)
    cvb_f16 m0 = { 0 }, m1 = { 0 }, m2 = { 0 }, m3 = { 0 };
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        CVB_AMAX_(m0, x + i);
        CVB_AMAX_(m1, x + i + 16);
        CVB_AMAX_(m2, x + i + 32);
        CVB_AMAX_(m3, x + i + 48);
    }
    for (; i + 16 <= n; i += 16)
        CVB_AMAX_(m0, x + i);
    CVB_AMAX_(m0, &m1);
    CVB_AMAX_(m2, &m3);
    CVB_AMAX_(m0, &m2);
#undef CVB_AMAX_
    float r = 0.0f;
    for (int c = 0; c < 16; c++)
        r = m0[c] > r ? m0[c] : r;
    for (; i < n; i++) {
        const float v = fabsf(x[i]);
        r = v > r ? v : r;
    }
    return r;
}

/* The checkpoint pass: states [n0, n0 + NB) of h ([.][16], in/out) over T
 * steps.  Al, Bn: from state n0 (Bn rows ld apart); dtl, wl: dt, dt u.
 * SQ: the decays kept as well, Qs[t][n][16] (from state n0, N states a
 * step), so that the recompute of the chunk loads them instead of a second
 * exp. */
static inline __attribute__((always_inline)) KTGT void
KN(cvb_state_pass)(const int NB, const int NEG, const int SQ, int64_t T,
                   int64_t N, int64_t ld, const float *Al, const float *Bn,
                   const float *dtl, const float *wl, float *h, float *Qs)
{
    VT hv[8], a2[8];   /* a2: A log2(e) as scan_a2, once per pass */
    for (int j = 0; j < NB; j++) {
        hv[j] = VLD(h + j * 16);
        a2[j] = VFMA(VLD(Al + j * 16), VSET(DEC_L2E_HI), VMUL(VLD(Al + j * 16), VSET(DEC_L2E_LO)));
    }
    for (int64_t t = 0; t < T; t++) {
        const VT dt = VLD(dtl + t * 16), dtu = VLD(wl + t * 16);
#pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            const VT a = NEG == 2 ? VDECAYR(dt, a2[j]) : NEG ? VDECAYN(dt, a2[j]) : VDECAY(dt, a2[j]);
            hv[j] = VFMA(a, hv[j], VMUL(VSET(Bn[j * ld + t]), dtu));
            if (SQ)
                VST(Qs + (t * N + j) * 16, a);
        }
    }
    for (int j = 0; j < NB; j++)
        VST(h + j * 16, hv[j]);
}

/* The lane sums of 16 vectors rb (kk steps of NB states; the rest padded
 * with zeros) into the [T][N] partial P at the steps ts, states n0...;
 * acc: added to P (the later blocks of a partial group, in block order),
 * else stored. */
static inline __attribute__((always_inline)) KTGT void
KN(cvb_flush)(const int NB, VT *rb, const int64_t *ts, int kk, int64_t N,
              int64_t n0, float *P, int acc)
{
    for (int i = kk * NB; i < 16; i++)
        rb[i] = VSET(0.0f);
    float o[16];
    VST(o, VHSUM16(rb));
    if (acc) {
        /* Whole runs of 8 or 4 as one vector add (GCC/clang vector
         * extension; a scalar loop here was not vectorized). */
        typedef float cvb_v8 __attribute__((vector_size(32)));
        typedef float cvb_v4 __attribute__((vector_size(16)));
        for (int s = 0; s < kk; s++) {
            float *q = P + ts[s] * N + n0;
            const float *os = o + s * NB;
            if (NB == 8) {
                cvb_v8 x, y;
                memcpy(&x, q, sizeof x);
                memcpy(&y, os, sizeof y);
                x += y;
                memcpy(q, &x, sizeof x);
            } else if (NB == 4) {
                cvb_v4 x, y;
                memcpy(&x, q, sizeof x);
                memcpy(&y, os, sizeof y);
                x += y;
                memcpy(q, &x, sizeof x);
            } else {
                for (int j = 0; j < NB; j++)
                    q[j] += os[j];
            }
        }
    } else {
        for (int s = 0; s < kk; s++)
            memcpy(P + ts[s] * N + n0, o + s * NB, (size_t)NB * sizeof(float));
    }
}

/* Recompute a chunk from its checkpoint: states [n0, n0 + NB) from hin,
 * H[t][n] = h_tn, Q[t][n] = a_tn ([T][N][16]; NEG 3: Q holds them already,
 * from the checkpoint pass, the same bits), ys[t] += sum_n C_tn h_tn (a
 * chain in increasing n; FIRST: n0 = 0 starts it), and with WC the dC
 * partial pC[t][n] = sum_c dy0_tc h_tnc. */
static inline __attribute__((always_inline)) KTGT void
KN(cvb_rec_pass)(const int NB, const int NEG, const int FIRST, const int WC,
                 int64_t T, int64_t N, int64_t n0, int64_t ld, const float *Al,
                 const float *Bn, const float *Cn, const float *dtl,
                 const float *wl, const float *dy0l, const float *hin,
                 float *H, float *Q, float *ysl, float *pC, int acc)
{
    VT hv[8], rb[16], a2[8];   /* a2: A log2(e) as scan_a2, once per pass */
    int64_t ts[16];
    int kk = 0;
    for (int j = 0; j < NB; j++) {
        hv[j] = VLD(hin + j * 16);
        a2[j] = NEG == 3 ? VSET(0.0f) : VFMA(VLD(Al + j * 16), VSET(DEC_L2E_HI), VMUL(VLD(Al + j * 16), VSET(DEC_L2E_LO)));
    }
    for (int64_t t = 0; t < T; t++) {
        const VT dt = VLD(dtl + t * 16), dtu = VLD(wl + t * 16);
        float *Ht = H + (t * N + n0) * 16, *Qt = Q + (t * N + n0) * 16;
        VT s = FIRST ? VSET(0.0f) : VLD(ysl + t * 16);
        const VT dy = WC ? VLD(dy0l + t * 16) : VSET(0.0f);
#pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            VT a;
            if (NEG == 3) {
                a = VLD(Qt + j * 16);
            } else {
                a = NEG == 2 ? VDECAYR(dt, a2[j]) : NEG ? VDECAYN(dt, a2[j]) : VDECAY(dt, a2[j]);
                VST(Qt + j * 16, a);
            }
            hv[j] = VFMA(a, hv[j], VMUL(VSET(Bn[j * ld + t]), dtu));
            VST(Ht + j * 16, hv[j]);
            const VT c = VSET(Cn[j * ld + t]);
            s = FIRST && j == 0 ? VMUL(c, hv[0]) : VFMA(c, hv[j], s);
            if (WC)
                rb[kk * NB + j] = VMUL(dy, hv[j]);
        }
        VST(ysl + t * 16, s);
        if (WC) {
            ts[kk++] = t;
            if ((kk + 1) * NB > 16 || t == T - 1) {
                KN(cvb_flush)(NB, rb, ts, kk, N, n0, pC, acc);
                kk = 0;
            }
        }
    }
}

/* The adjoint over the chunk, last step first, states [n0, n0 + NB): g,
 * dAc ([.][16], in/out) the adjoint entering from the future and dA's
 * float partial, dAd ([.][16] doubles) dA's total; s1, s2 chains (FIRST:
 * n0 = 0 starts them); with WB the dB partial pB[t][n] = sum_c g_tnc dt u.
 * dA is summed in float over aligned blocks of BWD_DA_BLOCK steps of
 * absolute time (t0 + t), each block then added to the double total, as
 * the per-channel kernels do. */
static inline __attribute__((always_inline)) KTGT void
KN(cvb_adj_pass)(const int NB, const int FIRST, const int WB, int64_t t0,
                 int64_t T, int64_t N, int64_t n0, int64_t ld, const float *Al,
                 const float *Bn, const float *Cn, const float *dtl,
                 const float *wl, const float *dy0l, const float *hin,
                 const float *H, const float *Q, float *g, float *dAc,
                 double *dAd, float *s1l, float *s2l, float *pB, int acc)
{
    VT gv[8], av[8], rb[16];
    int64_t ts[16];
    int kk = 0;
    for (int j = 0; j < NB; j++) {
        gv[j] = VLD(g + j * 16);
        av[j] = VLD(dAc + j * 16);
    }
    for (int64_t t = T - 1; t >= 0; t--) {
        const VT dy = VLD(dy0l + t * 16), dt = VLD(dtl + t * 16);
        const VT dtu = VLD(wl + t * 16);
        const float *Qt = Q + (t * N + n0) * 16;
        const float *Hp = t ? H + ((t - 1) * N + n0) * 16 : hin;
        VT s1 = FIRST ? VSET(0.0f) : VLD(s1l + t * 16);
        VT s2 = FIRST ? VSET(0.0f) : VLD(s2l + t * 16);
#pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            const VT gn = VFMA(dy, VSET(Cn[j * ld + t]), gv[j]);
            if (WB)
                rb[kk * NB + j] = VMUL(gn, dtu);
            const VT b = VSET(Bn[j * ld + t]);
            s1 = FIRST && j == 0 ? VMUL(gn, b) : VFMA(gn, b, s1);
            const VT ga = VMUL(gn, VLD(Qt + j * 16));
            const VT q = VMUL(ga, VLD(Hp + j * 16));
            const VT Aj = VLD(Al + j * 16);
            s2 = FIRST && j == 0 ? VMUL(q, Aj) : VFMA(q, Aj, s2);
            av[j] = VFMA(q, dt, av[j]);
            gv[j] = ga;
        }
        VST(s1l + t * 16, s1);
        VST(s2l + t * 16, s2);
        if ((t0 + t) % BWD_DA_BLOCK == 0)
            for (int j = 0; j < NB; j++) {
                float o[16];
                VST(o, av[j]);
                for (int c = 0; c < 16; c++)
                    dAd[j * 16 + c] += (double)o[c];
                av[j] = VSET(0.0f);
            }
        if (WB) {
            ts[kk++] = t;
            if ((kk + 1) * NB > 16 || t == 0) {
                KN(cvb_flush)(NB, rb, ts, kk, N, n0, pB, acc);
                kk = 0;
            }
        }
    }
    for (int j = 0; j < NB; j++) {
        VST(g + j * 16, gv[j]);
        VST(dAc + j * 16, av[j]);
    }
}

/* Every pass of the checkpoint recurrence over the N states; Qs (or
 * NULL): keep the decays, [T][N][16]. */
static KTGT void KN(cvb_state)(int neg, int64_t T, int64_t N, int64_t ld,
                               const float *Al, const float *Bn,
                               const float *dtl, const float *wl, float *h,
                               float *Qs)
{
    for (int64_t n0 = 0; n0 < N; n0 += NBMAX) {
        const int nb = N - n0 < NBMAX ? (int)(N - n0) : NBMAX;
        const float *A = Al + n0 * 16, *B = Bn + n0 * ld;
        float *hp = h + n0 * 16, *q = Qs ? Qs + n0 * 16 : NULL;
#define ST_(nb_, ng_, sq_)                                                   \
        KN(cvb_state_pass)(nb_, ng_, sq_, T, N, ld, A, B, dtl, wl, hp, q)
        if (nb == NBMAX) {
            switch ((neg == 2 ? 4 : neg ? 2 : 0) | (q ? 1 : 0)) {
            case 0: ST_(NBMAX, 0, 0); break;
            case 1: ST_(NBMAX, 0, 1); break;
            case 2: ST_(NBMAX, 1, 0); break;
            case 3: ST_(NBMAX, 1, 1); break;
            case 4: ST_(NBMAX, 2, 0); break;
            default: ST_(NBMAX, 2, 1); break;
            }
        } else if (q) {
            ST_(nb, 0, 1);
        } else {
            ST_(nb, 0, 0);
        }
#undef ST_
    }
}

static KTGT void KN(cvb_recompute)(int neg, int wc, int64_t T, int64_t N,
                                   int64_t ld, const float *Al,
                                   const float *Bn, const float *Cn,
                                   const float *dtl, const float *wl,
                                   const float *dy0l, const float *hin,
                                   float *H, float *Q, float *ysl, float *pC,
                                   int acc)
{
    for (int64_t n0 = 0; n0 < N; n0 += NBMAX) {
        const int nb = N - n0 < NBMAX ? (int)(N - n0) : NBMAX;
        const float *A = Al + n0 * 16, *B = Bn + n0 * ld, *C = Cn + n0 * ld;
        const float *hi = hin + n0 * 16;
        const int first = n0 == 0;
#define REC_(nb_, ng_, f_, w_)                                               \
        KN(cvb_rec_pass)(nb_, ng_, f_, w_, T, N, n0, ld, A, B, C, dtl, wl,   \
                         dy0l, hi, H, Q, ysl, pC, acc)
        if (neg == 3) {   /* the decays loaded, whatever nb */
            if (nb == NBMAX) {
                switch ((first ? 2 : 0) | (wc ? 1 : 0)) {
                case 0: REC_(NBMAX, 3, 0, 0); break;
                case 1: REC_(NBMAX, 3, 0, 1); break;
                case 2: REC_(NBMAX, 3, 1, 0); break;
                default: REC_(NBMAX, 3, 1, 1); break;
                }
            } else if (first) {
                REC_(nb, 3, 1, wc);
            } else {
                REC_(nb, 3, 0, wc);
            }
        } else if (nb == NBMAX) {
            switch ((neg == 2 ? 8 : neg ? 4 : 0) | (first ? 2 : 0) | (wc ? 1 : 0)) {
            case 0: REC_(NBMAX, 0, 0, 0); break;
            case 1: REC_(NBMAX, 0, 0, 1); break;
            case 2: REC_(NBMAX, 0, 1, 0); break;
            case 3: REC_(NBMAX, 0, 1, 1); break;
            case 4: REC_(NBMAX, 1, 0, 0); break;
            case 5: REC_(NBMAX, 1, 0, 1); break;
            case 6: REC_(NBMAX, 1, 1, 0); break;
            case 7: REC_(NBMAX, 1, 1, 1); break;
            case 8: REC_(NBMAX, 2, 0, 0); break;
            case 9: REC_(NBMAX, 2, 0, 1); break;
            case 10: REC_(NBMAX, 2, 1, 0); break;
            default: REC_(NBMAX, 2, 1, 1); break;
            }
        } else if (first) {
            REC_(nb, 0, 1, wc);
        } else {
            REC_(nb, 0, 0, wc);
        }
#undef REC_
    }
}

static KTGT void KN(cvb_adjoint)(int wb, int64_t t0, int64_t T, int64_t N,
                                 int64_t ld, const float *Al, const float *Bn,
                                 const float *Cn, const float *dtl,
                                 const float *wl, const float *dy0l,
                                 const float *hin, const float *H,
                                 const float *Q, float *g, float *dAc,
                                 double *dAd, float *s1l, float *s2l,
                                 float *pB, int acc)
{
    for (int64_t n0 = 0; n0 < N; n0 += NBMAX) {
        const int nb = N - n0 < NBMAX ? (int)(N - n0) : NBMAX;
        const float *A = Al + n0 * 16, *B = Bn + n0 * ld, *C = Cn + n0 * ld;
        const float *hi = hin + n0 * 16;
        float *gp = g + n0 * 16, *ap = dAc + n0 * 16;
        double *dp = dAd + n0 * 16;
        const int first = n0 == 0;
#define ADJ_(nb_, f_, w_)                                                    \
        KN(cvb_adj_pass)(nb_, f_, w_, t0, T, N, n0, ld, A, B, C, dtl, wl,    \
                         dy0l, hi, H, Q, gp, ap, dp, s1l, s2l, pB, acc)
        if (nb == NBMAX) {
            switch ((first ? 2 : 0) | (wb ? 1 : 0)) {
            case 0: ADJ_(NBMAX, 0, 0); break;
            case 1: ADJ_(NBMAX, 0, 1); break;
            case 2: ADJ_(NBMAX, 1, 0); break;
            default: ADJ_(NBMAX, 1, 1); break;
            }
        } else if (first) {
            ADJ_(nb, 1, wb);
        } else {
            ADJ_(nb, 0, wb);
        }
#undef ADJ_
    }
}

/* The elementwise ends: du = D dy0 + dt s1, ddelta = (u s1 + s2) dsig,
 * dz = dy y0 silu'(z) with y0 = ys + D u, silu'(z) = s (1 + z (1 - s)),
 * s = sigmoid(z) = 1 / denl (cvb_pre's 1 + exp(-z)).  Dl NULL: no D; an
 * output NULL: not wanted. */
static KTGT void KN(cvb_post)(int64_t T, const float *Dl, const float *dtl,
                              const float *dsl, const float *ul,
                              const float *dyl, const float *zl,
                              const float *denl, const float *dy0l,
                              const float *s1l, const float *s2l,
                              const float *ysl, float *dul, float *dxl,
                              float *dzl)
{
    const VT one = VSET(1.0f), zero = VSET(0.0f);
    const VT vD = Dl ? VLD(Dl) : zero;
    for (int64_t t = 0; t < T; t++) {
        const int64_t o = t * 16;
        const VT s1 = VLD(s1l + o), u = VLD(ul + o);
        if (dul) {
            const VT v = VMUL(VLD(dtl + o), s1);
            VST(dul + o, Dl ? VFMA(vD, VLD(dy0l + o), v) : v);
        }
        if (dxl)
            VST(dxl + o, VMUL(VFMA(u, s1, VLD(s2l + o)), VLD(dsl + o)));
        if (dzl) {
            const VT ys = VLD(ysl + o), z = VLD(zl + o);
            const VT y0 = Dl ? VFMA(vD, u, ys) : ys;
            const VT sg = VDIV(one, VLD(denl + o));
            const VT ds = VMUL(sg, VFMA(z, VSUB(one, sg), one));
            VST(dzl + o, VMUL(VMUL(VLD(dyl + o), y0), ds));
        }
    }
}

#undef KN
#undef KNAME1_
#undef KNAME2_
