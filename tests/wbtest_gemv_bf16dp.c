/* ctest-labels: mamba;model */
/*
 * wbtest_gemv_bf16dp.c -- the decoding step's product on AVX512_BF16
 * (src/layers/gemv_bf16dp.h): out[b][j] = sum_k bf16(X[b][k]) W[j][k],
 * W bfloat16, vdpbf16ps with float accumulation.
 *
 *  1. against a double reference computed here from the float X (not
 *     rounded) and the widened W.  Bound per output (gemv_bf16dp.h): the
 *     rounding of x to BF16 (u8 = 2^-8 relative, nearest even), then a
 *     lane's n = 2 ceil(K/32) + 4 float additions, products exact:
 *       |err| <= (u8 + gamma_n (1 + u8)) sum |x w|
 *                + 2^-126 (sum |x| + sum |w| + n) + K 2^-53 sum |x w|,
 *     gamma_n = n u / (1 - n u), u = 2^-24; the 2^-126 term covers the
 *     subnormals the instruction flushes (X holds some on purpose), the
 *     last the double reference's own rounding.
 *  2. the accumulation alone: against a double reference of sum x^ w, x^
 *     rounded to BF16 here (nearest even, by integer arithmetic), bound
 *     gamma_n sum |x^ w| + the same subnormal and reference terms: checks
 *     that the kernel rounds X exactly once and sums in float.
 *  3. bit for bit: a token's row is the same alone (M = 1) as in a batch
 *     of M (groups of 8, 4, 2, 1 never change a sum); 1, 2 and 3 threads
 *     agree on products large enough to be split.
 *  4. strides: padding beyond K in X and W holds 1e30 and is never read
 *     into a result; padding beyond N in out is never written.
 *  5. the prompt's BF16 GEMM (bf16_gemm.h, oneDNN) in run.c's four
 *     layouts against a double product (order-free bound gamma_K), the
 *     same bytes at 1, 2 and 3 threads (see prompt_gemm).
 * The worst ratios error/bound are printed.  On a CPU without AVX512_BF16
 * the kernel never runs (the model takes the widening path) and the tests
 * say so.
 */
#include <ssm.h>
#include "layers/gemv.h"
#include "layers/gemv_bf16dp.h"
#include "layers/bf16_gemm.h"
#include "testutil.h"

static const int64_t Ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16 };
static const int64_t Ns[] = { 1, 3, 17, 80, 131 };
static const int64_t Ks[] = { 1, 2, 5, 16, 31, 32, 33, 48, 100, 768, 1536 };

#define PAD 3

typedef struct prob {
    int64_t M, N, K, ldx, ldw, ldo;
    float *X;
    uint16_t *Wh;
    double *W;        /* the widened weights */
} prob;

/* Nearest even, finite inputs, subnormals kept (the test's own rounding). */
static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void make(prob *p, int64_t M, int64_t N, int64_t K, uint64_t seed)
{
    tu_rng r = { seed };
    p->M = M; p->N = N; p->K = K;
    p->ldx = K + PAD; p->ldw = K + PAD; p->ldo = N + PAD;
    p->X = tu_alloc((size_t)(M * p->ldx), sizeof(float));
    p->Wh = tu_alloc((size_t)(N * p->ldw), sizeof(uint16_t));
    p->W = tu_alloc((size_t)(N * p->ldw), sizeof(double));
    for (int64_t i = 0; i < M * p->ldx; i++) {
        double v = tu_normal(&r);
        if (i % 97 == 5) v *= 1e-39;   /* subnormal floats: flushed by the CPU */
        p->X[i] = (i % p->ldx) < K ? (float)v : 1e30f;
    }
    for (int64_t i = 0; i < N * p->ldw; i++) {
        float w = (i % p->ldw) < K ? (float)(0.1 * tu_normal(&r)) : 1e30f;
        p->Wh[i] = ssmi_f32_to_bf16(w);
        p->W[i] = ssmi_bf16_to_f32(p->Wh[i]);
    }
}

static void unmake(prob *p)
{
    free(p->X); free(p->Wh); free(p->W);
}

static float *run(const prob *p)
{
    float *o = tu_alloc((size_t)(p->M * p->ldo), sizeof(float));
    uint16_t *xh = tu_alloc((size_t)ssmi_bf16dp_scratch(p->M, p->K), sizeof(uint16_t));
    for (int64_t i = 0; i < p->M * p->ldo; i++) o[i] = -7.0f;   /* sentinel */
    ssmi_xwt_bf16dp(p->M, p->N, p->K, p->X, p->ldx, p->Wh, p->ldw, o, p->ldo, xh);
    for (int64_t b = 0; b < p->M; b++)
        for (int64_t j = p->N; j < p->ldo; j++)
            ck_assert_msg(o[b * p->ldo + j] == -7.0f, "wrote beyond N");
    free(xh);
    return o;
}

/* Worst error / bound over all outputs: rounded = 0 against the exact
 * product of X and W (check 1), 1 against that of bf16(X) and W (check 2). */
static double ratio_vs_double(const prob *p, const float *o, int rounded)
{
    const double u = 0x1.0p-24, u8 = 0x1.0p-8, tiny = 0x1.0p-126;
    const double n = (double)(2 * ((p->K + 31) / 32) + 4);
    const double gam = n * u / (1.0 - n * u);
    double worst = 0.0;
    for (int64_t b = 0; b < p->M; b++)
        for (int64_t j = 0; j < p->N; j++) {
            double s = 0.0, a = 0.0, ax = 0.0, aw = 0.0;
            for (int64_t k = 0; k < p->K; k++) {
                float xf = p->X[b * p->ldx + k];
                double x = rounded ? (double)round_bf16(xf) : (double)xf;
                double t = x * p->W[j * p->ldw + k];
                s += t;
                a += fabs(t);
                ax += fabs(x);
                aw += fabs(p->W[j * p->ldw + k]);
            }
            double bound = (rounded ? gam : u8 + gam * (1.0 + u8)) * a +
                           tiny * (ax + aw + n) + (double)p->K * 0x1.0p-53 * a;
            double err = fabs((double)o[b * p->ldo + j] - s);
            double r = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0.0);
            if (r > worst) worst = r;
        }
    return worst;
}

START_TEST(against_double)
{
    if (!ssmi_bf16dp_ok()) {
        printf("AVX512_BF16: not on this CPU, kernel not tested (the model uses the widening path)\n");
        return;
    }
    double worst[2] = { 0.0, 0.0 };
    int shapes = 0;
    for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
        for (size_t c = 0; c < sizeof Ns / sizeof Ns[0]; c++)
            for (size_t d = 0; d < sizeof Ks / sizeof Ks[0]; d++) {
                prob p;
                make(&p, Ms[a], Ns[c], Ks[d], 500 + 7 * a + 31 * c + 101 * d);
                float *o = run(&p);
                for (int rounded = 0; rounded < 2; rounded++) {
                    double r = ratio_vs_double(&p, o, rounded);
                    if (r > worst[rounded]) worst[rounded] = r;
                    ck_assert_msg(r <= 1.0, "%s M %lld N %lld K %lld: ratio %.3g",
                                  rounded ? "vs bf16(X) W" : "vs X W", (long long)p.M,
                                  (long long)p.N, (long long)p.K, r);
                }
                free(o);
                unmake(&p);
                shapes++;
            }
    printf("ratio %9.3e  vdpbf16ps kernel vs double X W (bf16 rounding of X + float sums), worst of %d shapes\n",
           worst[0], shapes);
    printf("ratio %9.3e  vdpbf16ps kernel vs double bf16(X) W (float sums alone), worst of %d shapes\n",
           worst[1], shapes);
}
END_TEST

START_TEST(alone_as_in_batch)
{
    if (!ssmi_bf16dp_ok()) return;
    for (size_t d = 0; d < sizeof Ks / sizeof Ks[0]; d++) {
        prob p;
        make(&p, 13, 131, Ks[d], 900 + d);
        float *o = run(&p);
        for (int64_t b = 0; b < p.M; b++) {
            prob q = p;
            q.M = 1;
            q.X = p.X + b * p.ldx;
            float *o1 = run(&q);
            ck_assert_msg(!memcmp(o1, o + b * p.ldo, (size_t)p.N * sizeof(float)),
                          "K %lld token %lld: alone differs from in a batch of 13",
                          (long long)p.K, (long long)b);
            free(o1);
        }
        free(o);
        unmake(&p);
    }
}
END_TEST

/* The row-block entry points (callers that share out rows themselves):
 * any split of the rows gives the bytes of the whole call. */
START_TEST(row_blocks_same_bytes)
{
    if (!ssmi_bf16dp_ok()) return;
    for (size_t d = 0; d < sizeof Ks / sizeof Ks[0]; d++) {
        prob p;
        make(&p, 9, 131, Ks[d], 700 + d);
        float *o = run(&p);
        float *o2 = tu_alloc((size_t)(p.M * p.ldo), sizeof(float));
        uint16_t *xh = tu_alloc((size_t)ssmi_bf16dp_scratch(p.M, p.K), sizeof(uint16_t));
        ssmi_bf16dp_round_rows(p.M, p.K, p.X, p.ldx, xh);
        static const int64_t cut[] = { 0, 5, 37, 38, 96, 131 };
        for (size_t c = 0; c + 1 < sizeof cut / sizeof cut[0]; c++)
            ssmi_xwt_bf16dp_rows(p.M, cut[c], cut[c + 1], p.K, xh, p.Wh, p.ldw, o2, p.ldo);
        for (int64_t b = 0; b < p.M; b++)
            ck_assert_msg(!memcmp(o2 + b * p.ldo, o + b * p.ldo, (size_t)p.N * sizeof(float)),
                          "K %lld token %lld: row blocks differ from the whole call",
                          (long long)p.K, (long long)b);
        free(o); free(o2); free(xh);
        unmake(&p);
    }
}
END_TEST

START_TEST(threads_same_bytes)
{
    if (!ssmi_bf16dp_ok()) return;
    /* Large enough for the row blocks to be split among threads. */
    static const int64_t shape[][3] = { { 1, 3072, 768 }, { 8, 768, 1536 }, { 3, 1000, 47 } };
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        prob p;
        make(&p, shape[i][0], shape[i][1], shape[i][2], 77 + i);
        tu_set_threads(1);
        float *o1 = run(&p);
        for (int th = 2; th <= 3; th++) {
            tu_set_threads(th);
            float *o = run(&p);
            ck_assert_msg(!memcmp(o, o1, (size_t)(p.M * p.ldo) * sizeof(float)),
                          "M %lld N %lld K %lld: %d threads differ from 1", (long long)p.M,
                          (long long)p.N, (long long)p.K, th);
            free(o);
        }
        tu_set_threads(1);
        free(o1);
        unmake(&p);
    }
}
END_TEST

/* ---- the prompt's BF16 GEMM (bf16_gemm.h, oneDNN) ---- */

/* C = A B with A (M x K), B (K x N) BF16 in the layouts run.c uses:
 * lay 0: A rows (a_m = K), B = activations [K][N] (split_m, as mm_wx);
 * lay 1: A rows, B = activations transposed [N][K] (split_m, in_proj);
 * lay 2: A = activations [M][K], B = W^T, W [N][K] (split N, the head);
 * lay 3: A = activations transposed [K][M], B = W^T (split N, out_proj).
 * Against a double product of the same BF16 values: the products are
 * exact, the sums in float in an order oneDNN chooses, so the bound is
 * the order-free gamma_K sum |a b| (Higham eq. 3.5, any summation tree
 * of K terms has at most K - 1 additions on a path) + 2^-126 (K + 1) for
 * flushed subnormal results; the worst ratio is printed.  And the same
 * bytes at 1, 2 and 3 threads. */
static void gemm_case(int lay, int64_t M, int64_t N, int64_t K, double *worst)
{
    tu_rng r = { (uint64_t)(1000 + lay * 7 + M * 13 + N * 17 + K) };
    uint16_t *A = tu_alloc((size_t)(M * K), sizeof(uint16_t)), *B = tu_alloc((size_t)(K * N), sizeof(uint16_t));
    for (int64_t i = 0; i < M * K; i++) A[i] = ssmi_f32_to_bf16((float)tu_normal(&r));
    for (int64_t i = 0; i < K * N; i++) B[i] = ssmi_f32_to_bf16((float)(0.1 * tu_normal(&r)));
    int64_t a_m, a_k, b_k, b_n;
    int split_m = lay < 2;
    switch (lay) {
    case 0: a_m = K; a_k = 1; b_k = N; b_n = 1; break;
    case 1: a_m = K; a_k = 1; b_k = 1; b_n = K; break;
    case 2: a_m = K; a_k = 1; b_k = 1; b_n = K; break;
    default: a_m = 1; a_k = M; b_k = 1; b_n = K; break;
    }
    const int64_t ldc = N + PAD;
    float *C1 = tu_alloc((size_t)(M * ldc), sizeof(float)), *C = tu_alloc((size_t)(M * ldc), sizeof(float));
    for (int th = 1; th <= 3; th++) {
        float *o = th == 1 ? C1 : C;
        for (int64_t i = 0; i < M * ldc; i++) o[i] = -7.0f;
        tu_set_threads(th);
        ck_assert_int_eq(ssmi_bf16_gemm(M, N, K, A, a_m, a_k, B, b_k, b_n, o, ldc, split_m), SSM_OK);
        if (th > 1)
            ck_assert_msg(!memcmp(o, C1, (size_t)(M * ldc) * sizeof(float)),
                          "layout %d M %lld N %lld K %lld: %d threads differ from 1", lay,
                          (long long)M, (long long)N, (long long)K, th);
    }
    tu_set_threads(1);
    const double u = 0x1.0p-24, g = (double)K * u / (1.0 - (double)K * u);
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < K; k++) {
                double t = (double)ssmi_bf16_to_f32(A[m * a_m + k * a_k]) *
                           (double)ssmi_bf16_to_f32(B[k * b_k + n * b_n]);
                s += t;
                a += fabs(t);
            }
            double bound = g * a + 0x1.0p-126 * (double)(K + 1) + (double)K * 0x1.0p-53 * a;
            double rr = fabs((double)C1[m * ldc + n] - s) / bound;
            ck_assert_msg(rr <= 1.0, "layout %d M %lld N %lld K %lld: ratio %.3g", lay,
                          (long long)M, (long long)N, (long long)K, rr);
            if (rr > *worst) *worst = rr;
        }
        for (int64_t n = N; n < ldc; n++)
            ck_assert_msg(C1[m * ldc + n] == -7.0f, "wrote beyond N");
    }
    free(A); free(B); free(C1); free(C);
}

START_TEST(prompt_gemm)
{
    if (!ssmi_bf16_gemm_ok()) {
        printf("BF16 prompt GEMM: libssm built without oneDNN or no AVX512_BF16 here: not tested (prompts widen to float)\n");
        return;
    }
    /* Mamba-1 shapes (small d_model) and odd ones: blocks of 128 rows with
     * tails, K not a multiple of 32. */
    static const int64_t sh[][3] = { { 300, 37, 64 }, { 80, 50, 256 }, { 256, 9, 47 },
                                     { 129, 130, 33 }, { 1, 300, 16 }, { 384, 64, 128 } };
    double worst = 0.0;
    int n = 0;
    for (int lay = 0; lay < 4; lay++)
        for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++, n++)
            gemm_case(lay, sh[i][0], sh[i][1], sh[i][2], &worst);
    printf("ratio %9.3e  oneDNN BF16 prompt GEMM vs double, worst of %d cases (4 layouts), same bytes at 1/2/3 threads\n",
           worst, n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gemv_bf16dp");
    TCase *tc = tcase_create("bf16dp");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, against_double);
    tcase_add_test(tc, alone_as_in_batch);
    tcase_add_test(tc, threads_same_bytes);
    tcase_add_test(tc, row_blocks_same_bytes);
    tcase_add_test(tc, prompt_gemm);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
