/*
 * selective_bwd_tc_kernel.h -- the one new inner loop of the time-chunked
 * selective scan backward (selective_bwd_tc.c), instantiated per
 * instruction set in selective_bwd.c right after selective_bwd_kernel.h
 * (KSFX name suffix, KTGT function attribute; bwd_kern.local).  Plain C over the state index n that the compiler
 * vectorizes; every operation written out (explicit fmaf, no
 * reassociation), so every vector width gives the same bytes.
 *
 * Pass 1 of the time-chunked path, one channel over one chunk of T steps
 * (notation of selective_bwd_kernel.h: a_tn = exp(dt_t A_n)):
 *   h_n  = sum_t (prod_{s>t} a_sn) dt_t u_t B_tn   the state from zero,
 *   p_n  = prod_t a_tn                            the chunk's decay,
 *   G_n  = sum_t dy0_t C_tn prod_{s<=t} a_sn       the adjoint from zero,
 * the last two in one forward sweep with a running prefix product: the
 * adjoint that the chunk passes to the state before it is
 *   g_in = G + p g_out
 * (unrolling g_tn = dy0_t C_tn + a_(t+1)n g_(t+1)n), so the reverse
 * recurrence and its second exp per state and step are not needed here.
 * The state runs exactly as bwd_state (the same operations).
 *
 * FLUSH: when every a_tn <= 1 (A <= 0, dt >= 0) the prefix product only
 * decreases, and a product below FLT_MIN is set to 0: it would otherwise
 * walk through the subnormals (slow on x86) while contributing less than
 * FLT_MIN |dy0 C| to G, below any rounding of the float result.  With a
 * factor above 1 somewhere the product could grow back, so it is kept.
 */

#define KNAME2_(a, b) a##_##b
#define KNAME1_(a, b) KNAME2_(a, b)
#define KN(name) KNAME1_(name, KSFX)

static inline __attribute__((always_inline)) KTGT void
KN(tcb_local_)(const int FLUSH, int64_t T, int64_t N, const float *restrict A,
               const float *restrict Bt, const float *restrict Ct,
               const float *restrict dt, const float *restrict u,
               const float *restrict dy0, float *restrict h, float *restrict p,
               float *restrict G)
{
    for (int64_t t = 0; t < T; t++) {
        const float dtv = dt[t], dtu = dtv * u[t], dyv = dy0[t];
        const float *restrict bt = Bt + t * N, *restrict ct = Ct + t * N;
        for (int64_t n = 0; n < N; n++) {
            const float a = bwd_decayf(dtv, scan_a2(A[n]));
            h[n] = fmaf(a, h[n], bt[n] * dtu);
            const float q = p[n] * a;
            p[n] = FLUSH ? bwd_sel(q < FLT_MIN, 0.0f, q) : q;
            G[n] = fmaf(dyv * ct[n], p[n], G[n]);
        }
    }
}

/* h, p, G ([N] each) are outputs: the kernel starts them at 0, 1, 0.  N = 16
 * (Mamba's dstate) with the state size a constant and the three vectors in
 * registers; the same operations. */
static KTGT void KN(tcb_local)(int flush, int64_t T, int64_t N, const float *A,
                               const float *Bt, const float *Ct, const float *dt,
                               const float *u, const float *dy0, float *h,
                               float *p, float *G)
{
    if (N == 16) {
        float hl[16], pl[16], Gl[16];
        for (int n = 0; n < 16; n++) {
            hl[n] = 0.0f;
            pl[n] = 1.0f;
            Gl[n] = 0.0f;
        }
        if (flush)
            KN(tcb_local_)(1, T, 16, A, Bt, Ct, dt, u, dy0, hl, pl, Gl);
        else
            KN(tcb_local_)(0, T, 16, A, Bt, Ct, dt, u, dy0, hl, pl, Gl);
        memcpy(h, hl, sizeof hl);
        memcpy(p, pl, sizeof pl);
        memcpy(G, Gl, sizeof Gl);
        return;
    }
    for (int64_t n = 0; n < N; n++) {
        h[n] = 0.0f;
        p[n] = 1.0f;
        G[n] = 0.0f;
    }
    if (flush)
        KN(tcb_local_)(1, T, N, A, Bt, Ct, dt, u, dy0, h, p, G);
    else
        KN(tcb_local_)(0, T, N, A, Bt, Ct, dt, u, dy0, h, p, G);
}

#undef KN
#undef KNAME1_
#undef KNAME2_
