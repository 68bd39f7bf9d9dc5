/*
 * ssd_kernel.h -- inner kernels of the SSD scan (ssd.c), written once and
 * instantiated per instruction set (portable C, AVX2+FMA, AVX-512F).  Not a
 * normal header: included several times with these macros defined:
 *   KSFX name suffix, KTGT function attribute, VL lanes, VT vector type,
 *   VLOAD(p) VSTORE(p,v) VSET1(x) VMUL(a,b) VFMA(a,b,c)=a*b+c VHSUM(v),
 *   VNVMAX the widest register block in vectors (2 or 4); optionally
 *   VHSUM4(v, out): out[r] = VHSUM(v[r]) for r < 4, bit for bit.
 *
 * Products.  Every output element of kgemm is one fma chain over k in
 * increasing order, starting from 0 or from the value already in C; the
 * vector body and the scalar fringes perform exactly that chain (fmaf is
 * correctly rounded, as the vector fma), so how a matrix is cut into
 * register blocks never changes a bit.  Register blocks: 4 rows x 2 vectors
 * of columns (8 accumulators), the B rows streamed from L1.
 *
 * Chunk.  KN(chunk_head) is the chunked SSD's work on one chunk of one head
 * (see ssd.c); its elementwise loops are plain IEEE operations, each in its
 * own statement (no fma contraction), so compiling them per ISA changes
 * nothing but the speed.
 *
 * Recurrence.  krec_token advances one token of one head (Mamba-2 eq. 1 with
 * scalar decay a = exp(dt A)):  S[p][n] = fma(a, S[p][n], (dt x_p) B[n]),
 * y_p = sum_n C[n] S[p][n], the sum taken lane-wise over n (lane j gets the
 * n = j mod VL of the vector body, in order), the lanes reduced by VHSUM in
 * a fixed tree, then the scalar tail n >= VL floor(N/VL) in order.
 */

#define KNAME2_(a, b) a##_##b
#define KNAME1_(a, b) KNAME2_(a, b)
#define KN(name) KNAME1_(name, KSFX)

/* C[MR][NV*VL] (+)= A[MR][K] B[K][NV*VL]; MR <= 4, NV <= 4 compile-time
 * (NV*MR accumulators: 16 with AVX-512's 32 registers, 8 with AVX2's 16). */
static inline __attribute__((always_inline)) KTGT void
KN(mk)(const int MR, const int NV, int64_t K, const float *A, int64_t lda,
       const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    VT c[4][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++)
            c[i][j] = acc ? VLOAD(C + i * ldc + j * VL) : VSET1(0.0f);
    for (int64_t k = 0; k < K; k++) {
        const float *bk = B + k * ldb;
        VT b[4];
        for (int j = 0; j < NV; j++)
            b[j] = VLOAD(bk + j * VL);
        for (int i = 0; i < MR; i++) {
            const VT a = VSET1(A[i * lda + k]);
            for (int j = 0; j < NV; j++)
                c[i][j] = VFMA(a, b[j], c[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++)
            VSTORE(C + i * ldc + j * VL, c[i][j]);
}

/* Rows [0, mr) of a row block, columns [j0, j1): vector blocks, then the
 * scalar fringe with the same chains. */
static KTGT void
KN(rowblock)(int mr, int64_t j0, int64_t j1, int64_t K, const float *A,
             int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
             int acc)
{
    int64_t j = j0;
#if VNVMAX >= 4
    for (; j + 4 * VL <= j1; j += 4 * VL) {
        switch (mr) {
        case 4: KN(mk)(4, 4, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 3: KN(mk)(3, 4, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 2: KN(mk)(2, 4, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        default: KN(mk)(1, 4, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        }
    }
#endif
    for (; j + 2 * VL <= j1; j += 2 * VL) {
        switch (mr) {
        case 4: KN(mk)(4, 2, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 3: KN(mk)(3, 2, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 2: KN(mk)(2, 2, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        default: KN(mk)(1, 2, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        }
    }
    for (; j + VL <= j1; j += VL) {
        switch (mr) {
        case 4: KN(mk)(4, 1, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 3: KN(mk)(3, 1, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        case 2: KN(mk)(2, 1, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        default: KN(mk)(1, 1, K, A, lda, B + j, ldb, C + j, ldc, acc); break;
        }
    }
    for (; j < j1; j++)
        for (int i = 0; i < mr; i++) {
            float s = acc ? C[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < K; k++)
                s = fmaf(A[i * lda + k], B[k * ldb + j], s);
            C[i * ldc + j] = s;
        }
}

/* C[M][Nc] (+)= A[M][K] B[K][Nc], row-major with leading dimensions.
 *   tri == SSMI_SSD_FULL:   every element.
 *   tri == SSMI_SSD_LOWER:  only elements with column <= row are needed
 *                           (others may be computed or left alone);
 *   tri == SSMI_SSD_KLOWER: C[i][j] (+)= sum_{k <= i} A[i][k] B[k][j]
 *                           (A lower triangular; entries above its
 *                           diagonal are never read, so a NaN/Inf of a later
 *                           token cannot reach an earlier output). */
static KTGT void
KN(kgemm)(int64_t M, int64_t Nc, int64_t K, const float *A, int64_t lda,
          const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
          int tri)
{
    /* Column panels of 128 keep a B panel of K rows in L1. */
    for (int64_t jp = 0; jp < Nc; jp += 128) {
        const int64_t jp1 = jp + 128 < Nc ? jp + 128 : Nc;
        for (int64_t i0 = 0; i0 < M; i0 += 4) {
            const int mr = (int)(M - i0 < 4 ? M - i0 : 4);
            const float *Ai = A + i0 * lda;
            float *Ci = C + i0 * ldc;
            if (tri == SSMI_SSD_LOWER) {
                if (jp > i0 + mr - 1)
                    continue;
                int64_t j1 = i0 + mr;       /* columns < i0 + mr suffice */
                j1 = (j1 + VL - 1) / VL * VL;
                if (j1 > jp1)
                    j1 = jp1;
                KN(rowblock)(mr, jp, j1, K, Ai, lda, B, ldb, Ci, ldc, acc);
            } else if (tri == SSMI_SSD_KLOWER) {
                /* k <= i0 for all rows of the block, then each row alone
                 * continues its chain over i0 < k <= i. */
                const int64_t kk = i0 + 1 < K ? i0 + 1 : K;
                KN(rowblock)(mr, jp, jp1, kk, Ai, lda, B, ldb, Ci, ldc, acc);
                for (int r = 1; r < mr; r++) {
                    int64_t ke = i0 + r + 1 < K ? i0 + r + 1 : K;
                    if (ke > kk)
                        KN(rowblock)(1, jp, jp1, ke - kk, Ai + r * lda + kk,
                                     lda, B + kk * ldb, ldb, Ci + r * ldc, ldc,
                                     1);
                }
            } else {
                KN(rowblock)(mr, jp, jp1, K, Ai, lda, B, ldb, Ci, ldc, acc);
            }
        }
    }
}

/* One row p of the recurrence (see the top of this file). */
static inline __attribute__((always_inline)) KTGT float
KN(rec_row)(int64_t N, VT va, float a, float u, const float *Bv,
            const float *Cv, float *Sp)
{
    const int64_t nv = N / VL, n0 = nv * VL;
    const VT vu = VSET1(u);
    VT acc = VSET1(0.0f);
    for (int64_t j = 0; j < nv; j++) {
        const VT s = VFMA(va, VLOAD(Sp + j * VL), VMUL(vu, VLOAD(Bv + j * VL)));
        VSTORE(Sp + j * VL, s);
        acc = j == 0 ? VMUL(VLOAD(Cv), s) : VFMA(VLOAD(Cv + j * VL), s, acc);
    }
    float sum = nv ? VHSUM(acc) : 0.0f;
    for (int64_t n = n0; n < N; n++) {
        const float ub = u * Bv[n];
        const float s = fmaf(a, Sp[n], ub);
        Sp[n] = s;
        sum = fmaf(Cv[n], s, sum);
    }
    return sum;
}

/* Four rows p..p+3 interleaved (four independent accumulator chains hide
 * the fma latency); per element exactly the operations of rec_row, so the
 * blocking never changes a bit. */
static inline __attribute__((always_inline)) KTGT void
KN(rec_rows4)(int64_t N, VT va, float a, const float *u, const float *Bv,
              const float *Cv, float *S, float *ys)
{
    const int64_t nv = N / VL, n0 = nv * VL;
    VT vu[4], acc[4];
    for (int r = 0; r < 4; r++) {
        vu[r] = VSET1(u[r]);
        acc[r] = VSET1(0.0f);
    }
    for (int64_t j = 0; j < nv; j++) {
        const VT b = VLOAD(Bv + j * VL), c = VLOAD(Cv + j * VL);
        for (int r = 0; r < 4; r++) {
            float *sp = S + r * N + j * VL;
            const VT s = VFMA(va, VLOAD(sp), VMUL(vu[r], b));
            VSTORE(sp, s);
            acc[r] = j == 0 ? VMUL(c, s) : VFMA(c, s, acc[r]);
        }
    }
    float sums[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
#ifdef VHSUM4
    if (nv)
        VHSUM4(acc, sums);
#else
    for (int r = 0; r < 4 && nv; r++)
        sums[r] = VHSUM(acc[r]);
#endif
    for (int r = 0; r < 4; r++) {
        float sum = sums[r];
        float *sp = S + r * N;
        for (int64_t n = n0; n < N; n++) {
            const float ub = u[r] * Bv[n];
            const float s = fmaf(a, sp[n], ub);
            sp[n] = s;
            sum = fmaf(Cv[n], s, sum);
        }
        ys[r] = sum;
    }
}

/* One token of one head: S [P][N] in place, x [P] (dt applied here),
 * ys [P] = C S (before D and the gate). */
static KTGT void
KN(rec_token)(int64_t P, int64_t N, float a, float dtv, const float *x,
              const float *Bv, const float *Cv, float *S, float *ys)
{
    const VT va = VSET1(a);
    int64_t p = 0;
    for (; p + 4 <= P; p += 4) {
        float u[4];
        for (int r = 0; r < 4; r++)
            u[r] = dtv * x[p + r];
        KN(rec_rows4)(N, va, a, u, Bv, Cv, S + p * N, ys + p);
    }
    for (; p < P; p++) {
        const float u = dtv * x[p];
        ys[p] = KN(rec_row)(N, va, a, u, Bv, Cv, S + p * N);
    }
}

/* One chunk [t0, t0 + T) of one head h, state ST [N][P] in/out (the
 * chunked SSD of ssd.c; here so that its elementwise loops, all plain IEEE
 * operations whose results do not depend on the vector width, are compiled
 * for the ISA). */
static KTGT void KN(chunk_head)(const ssm_ssd_args *a, const ssd_kern *k,
                       const ssd_dims *d, const chunk_ws *w, int64_t Q,
                       int64_t b, int64_t h, int64_t t0, int64_t T, float *ST)
{
    const int64_t g = h / d->hpg, P = d->P, N = d->N, H = d->H;
    const float A = a->A[h];
    const float *bias = a->dt_bias ? a->dt_bias + h : NULL;
    const int64_t row0 = b * d->L + t0;         /* token index of t0 */
    const float *X = a->x + (row0 * H + h) * P;  /* [T][P], ld H*P */
    const float *Cc = a->C + (row0 * d->G + g) * N;   /* [T][N], ld G*N */
    float *Y = a->y + (row0 * H + h) * P;

    /* dt and the cumulative sums of dt A, in double (the exponents of the
     * decay mask are their differences). */
    double c = 0.0;
    for (int64_t t = 0; t < T; t++) {
        const float v = dt_proc(a->dt[(row0 + t) * H + h], bias,
                                a->dt_softplus, a->dt_min, a->dt_max);
        w->dtv[t] = v;
        const double dA = (double)v * (double)A;   /* own statement: never contracted into an fma */
        c += dA;
        w->cs[t] = c;
    }
    /* M[t][s] = G[t][s] exp(cs_t - cs_s) dt_s, s <= t (Lmask o C B^T,
     * with dt folded in as the B-side discretization of eq. 1). */
    for (int64_t t = 0; t < T; t++) {
        float *mr = w->M + t * Q;
        const float *gr = w->Gm + t * Q;
        for (int64_t s = 0; s <= t; s++)
            mr[s] = (float)(w->cs[t] - w->cs[s]);
        ssmi_scan_vexpf(k->isa, mr, mr, t + 1);
        for (int64_t s = 0; s <= t; s++) {
            const float gm = gr[s] * mr[s];
            mr[s] = gm * w->dtv[s];
        }
    }
    /* Cs[t][n] = exp(cs_t) C[t][n]: the entering state read out at t. */
    for (int64_t t = 0; t < T; t++)
        w->e[t] = (float)w->cs[t];
    ssmi_scan_vexpf(k->isa, w->e, w->e, T);
    for (int64_t t = 0; t < T; t++) {
        const float et = w->e[t];
        const float *cr = Cc + t * d->G * N;
        float *o = w->Cs + t * N;
        for (int64_t n = 0; n < N; n++)
            o[n] = cr[n] * et;
    }
    /* The chunk of x copied contiguous: rows H*P apart (often a multiple
     * of 4 KiB) would fall into a few L1 sets and thrash there. */
    for (int64_t s = 0; s < T; s++)
        memcpy(w->Xc + s * P, X + s * H * P, (size_t)P * sizeof(float));
    /* Y = Cs ST (state -> output), then Y += M X (intra-chunk). */
    k->gemm(T, P, N, w->Cs, N, ST, P, w->Yc, P, 0, SSMI_SSD_FULL);
    k->gemm(T, P, T, w->M, Q, w->Xc, P, w->Yc, P, 1, SSMI_SSD_KLOWER);
    /* Chunk state: ST = exp(cs_T) ST + Bt Xw, Xw[s] = exp(cs_T - cs_s) dt_s x_s. */
    const double cend = w->cs[T - 1];
    for (int64_t s = 0; s < T; s++)
        w->e[s] = (float)(cend - w->cs[s]);
    ssmi_scan_vexpf(k->isa, w->e, w->e, T);
    for (int64_t s = 0; s < T; s++) {
        const float ws = w->e[s] * w->dtv[s];
        const float *xr = w->Xc + s * P;
        float *o = w->Xw + s * P;
        for (int64_t p = 0; p < P; p++)
            o[p] = xr[p] * ws;
    }
    float eend = (float)cend;
    ssmi_scan_vexpf(k->isa, &eend, &eend, 1);
    for (int64_t i = 0; i < N * P; i++)
        ST[i] = ST[i] * eend;
    k->gemm(N, P, T, w->Bt, Q, w->Xw, P, ST, P, 1, SSMI_SSD_FULL);
    /* D and the gate, token by token, then out to y. */
    const float *Dh = a->D ? (a->D_per_channel ? a->D + h * P : a->D + h) : NULL;
    for (int64_t t = 0; t < T; t++) {
        float *yr = w->Yc + t * P;
        if (Dh || a->z)
            finish_row(k->isa, P, yr, X + t * H * P, Dh, a->D_per_channel,
                       a->z ? a->z + ((row0 + t) * H + h) * P : NULL);
        memcpy(Y + t * H * P, yr, (size_t)P * sizeof(float));
    }
}

#undef KN
#undef KNAME1_
#undef KNAME2_
