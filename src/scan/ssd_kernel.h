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

#undef KN
#undef KNAME1_
#undef KNAME2_
