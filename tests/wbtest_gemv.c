/* ctest-labels: mamba;model */
/*
 * wbtest_gemv.c -- the decoding step's small-batch product
 * out[b][j] = sum_k X[b][k] W[j][k] (src/layers/gemv.h) on every path this
 * CPU runs (generic, AVX2+FMA, AVX-512F, forced through ssmi_xwt_ex), with
 * float and bfloat16 weights:
 *
 *  1. against a double reference computed here (products of two floats are
 *     exact in double).  Bound per output, from the summation gemv.h
 *     promises: lane q adds its m = ceil(K/16) products in order (fused:
 *     one rounding per add; generic: two), then 4 tree levels, so
 *     |err| <= gamma_n * sum_k |w_k x_k| with n = ceil(K/16) + 5 and
 *     gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability,
 *     eq. 3.5 applied per lane); plus K 2^-53 sum|w x| for the double
 *     reference's own rounding.  The worst ratio error/bound is printed.
 *  2. bit for bit: AVX2 == AVX-512 (both fuse, same lanes and tree); the
 *     bf16 kernel == the float kernel on the widened weights (widening is
 *     exact); any token's row is the same alone (M = 1) as within a batch of
 *     M (the token grouping never changes a sum); 1, 2 and 3 threads agree.
 *  3. strides: padding beyond K in X and W is never read into a result and
 *     padding beyond N in out is never written.
 *  4. ssmi_f32_to_bf16 rounds to nearest even (ties, carries into the
 *     exponent, NaN kept NaN) against a table.
 *  5. the step's conv and scan kernels (src/layers/mamba_step.h) against a
 *     double evaluation of the same formulas, every path, and bit for bit
 *     across paths and 1/2/3 threads.  Bounds, u = 2^-24, from the
 *     documented accuracy of the polynomial exp / log1p (2 ulp each):
 *     dt = softplus: 6u relative (the scan's softplus, within 2.5 ulp =
 *     5u: wbtest_scan; and the step's dt is the scan's bit for bit,
 *     checked here); exp(dt a): its argument carries |dt a| (6u + u), so
 *     (7u |dt a| + 3u) relative; h' = da h + (dt u) B: bh = (7u |dt a| +
 *     5u) |da h| + 4u |dt u B|; y = (C . h' + D u) silu(z): sum |C| bh +
 *     (n/16 + 6) u (sum |C h'| + |D u|), times |silu z|, plus 5u |y| for
 *     silu (2u exp, the sum and the division).  conv u = silu(b + w . win):
 *     1.1 (k + 1) u sum |terms| (|silu'| <= 1.1) + 5u |u|.  Factor 2 on
 *     all: second-order terms.
 */
#include <ssm.h>
#include "layers/gemv.h"
#include "layers/mamba_step.h"
#include "scan/scan_internal.h"
#include "testutil.h"

static const int isas[] = { SSMI_GEMV_GENERIC, SSMI_GEMV_AVX2, SSMI_GEMV_AVX512 };

static const int64_t Ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16 };
static const int64_t Ns[] = { 1, 3, 17, 80, 131 };
/* 1025, 1300, 2305: the 8-token tile in chunks of k (gemv.c: K above
 * KSPLIT_MIN = 1024, chunks of KSPLIT = 512): a last chunk that is only
 * the tail (K mod 16), a short last chunk with a tail, five chunks. */
static const int64_t Ks[] = { 1, 5, 16, 17, 48, 100, 768, 1025, 1300, 2305 };

#define PAD 3   /* extra columns in X, W, out: strides > sizes */

typedef struct prob {
    int64_t M, N, K, ldx, ldw, ldo;
    float *X, *W;          /* W as float: the bf16 values widened when bf16 */
    uint16_t *Wh;          /* bf16 weights (NULL: float run) */
} prob;

static void make(prob *p, int64_t M, int64_t N, int64_t K, int bf16, uint64_t seed)
{
    tu_rng r = { seed };
    p->M = M; p->N = N; p->K = K;
    p->ldx = K + PAD; p->ldw = K + PAD; p->ldo = N + PAD;
    p->X = tu_alloc((size_t)(M * p->ldx), sizeof(float));
    p->W = tu_alloc((size_t)(N * p->ldw), sizeof(float));
    p->Wh = bf16 ? tu_alloc((size_t)(N * p->ldw), sizeof(uint16_t)) : NULL;
    /* Padding holds huge values: read into any sum, they would show. */
    for (int64_t i = 0; i < M * p->ldx; i++)
        p->X[i] = (i % p->ldx) < K ? (float)tu_normal(&r) : 1e30f;
    for (int64_t i = 0; i < N * p->ldw; i++) {
        float w = (i % p->ldw) < K ? (float)(0.1 * tu_normal(&r)) : 1e30f;
        if (bf16) {
            p->Wh[i] = ssmi_f32_to_bf16(w);
            p->W[i] = ssmi_bf16_to_f32(p->Wh[i]);
        } else {
            p->W[i] = w;
        }
    }
}

static void unmake(prob *p)
{
    free(p->X); free(p->W); free(p->Wh);
}

static float *run(const prob *p, int isa)
{
    float *o = tu_alloc((size_t)(p->M * p->ldo), sizeof(float));
    for (int64_t i = 0; i < p->M * p->ldo; i++) o[i] = -7.0f;   /* sentinel */
    ssmi_xwt_ex(isa, p->M, p->N, p->K, p->X, p->ldx, p->Wh ? NULL : p->W, p->Wh, p->ldw,
                o, p->ldo);
    for (int64_t b = 0; b < p->M; b++)
        for (int64_t j = p->N; j < p->ldo; j++)
            ck_assert_msg(o[b * p->ldo + j] == -7.0f, "wrote beyond N");
    return o;
}

/* Worst error / bound over all outputs. */
static double ratio_vs_double(const prob *p, const float *o)
{
    const double u = 0x1.0p-24;
    const double n = (double)((p->K + 15) / 16 + 5);
    const double gam = n * u / (1.0 - n * u);
    double worst = 0.0;
    for (int64_t b = 0; b < p->M; b++)
        for (int64_t j = 0; j < p->N; j++) {
            double s = 0.0, a = 0.0;
            for (int64_t k = 0; k < p->K; k++) {
                double t = (double)p->X[b * p->ldx + k] * (double)p->W[j * p->ldw + k];
                s += t;
                a += fabs(t);
            }
            double bound = gam * a + (double)p->K * 0x1.0p-53 * a;
            double err = fabs((double)o[b * p->ldo + j] - s);
            double r = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0.0);
            if (r > worst) worst = r;
        }
    return worst;
}

START_TEST(against_double_every_path)
{
    const int bf16 = _i;
    int ran = 0;
    for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
        const int isa = isas[ii];
        if (!ssmi_gemv_isa_ok(isa)) {
            printf("gemv path %s: cannot run on this CPU, not tested\n", ssmi_gemv_isa_name(isa));
            continue;
        }
        ran++;
        double worst = 0.0;
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
            for (size_t c = 0; c < sizeof Ns / sizeof Ns[0]; c++)
                for (size_t d = 0; d < sizeof Ks / sizeof Ks[0]; d++) {
                    prob p;
                    make(&p, Ms[a], Ns[c], Ks[d], bf16, 100 + 7 * a + 31 * c + 101 * d);
                    float *o = run(&p, isa);
                    double r = ratio_vs_double(&p, o);
                    if (r > worst) worst = r;
                    ck_assert_msg(r <= 1.0, "%s %s M %lld N %lld K %lld: ratio %.3g",
                                  ssmi_gemv_isa_name(isa), bf16 ? "bf16" : "f32",
                                  (long long)p.M, (long long)p.N, (long long)p.K, r);
                    free(o);
                    unmake(&p);
                }
        TU_CHECK_ERR(worst, 1.0, "gemv %s %s weights vs double, worst over %zu shapes (error/bound)",
                     ssmi_gemv_isa_name(isa), bf16 ? "bf16" : "f32",
                     sizeof Ms / sizeof Ms[0] * sizeof Ns / sizeof Ns[0] * sizeof Ks / sizeof Ks[0]);
    }
    ck_assert_int_ge(ran, 1);
}
END_TEST

static int same(const float *a, const float *b, const prob *p)
{
    for (int64_t i = 0; i < p->M; i++)
        if (memcmp(a + i * p->ldo, b + i * p->ldo, (size_t)p->N * sizeof(float)))
            return 0;
    return 1;
}

START_TEST(bit_identities)
{
    const int have2 = ssmi_gemv_isa_ok(SSMI_GEMV_AVX2), have512 = ssmi_gemv_isa_ok(SSMI_GEMV_AVX512);
    int checks = 0;
    for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
        for (size_t d = 0; d < sizeof Ks / sizeof Ks[0]; d++) {
            prob p, q;
            make(&p, Ms[a], 131, Ks[d], 1, 5000 + a * 13 + d);
            /* q: the same (already bf16-representable) weights as float */
            q = p;
            q.Wh = NULL;
            for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
                const int isa = isas[ii];
                if (!ssmi_gemv_isa_ok(isa)) continue;
                float *oh = run(&p, isa), *of = run(&q, isa);
                ck_assert_msg(same(oh, of, &p), "%s: bf16 kernel != float kernel on widened weights",
                              ssmi_gemv_isa_name(isa));
                /* each token alone gives its row of the batch */
                for (int64_t b = 0; b < p.M; b++) {
                    prob one = q;
                    one.M = 1;
                    one.X = q.X + b * q.ldx;
                    float *o1 = run(&one, isa);
                    ck_assert_msg(!memcmp(o1, of + b * q.ldo, (size_t)q.N * sizeof(float)),
                                  "%s: token %lld alone != in a batch of %lld",
                                  ssmi_gemv_isa_name(isa), (long long)b, (long long)q.M);
                    free(o1);
                }
                /* threads */
                for (int th = 2; th <= 3; th++) {
                    tu_set_threads(th);
                    float *ot = run(&q, isa);
                    ck_assert_msg(same(ot, of, &q), "%s: %d threads != 1", ssmi_gemv_isa_name(isa), th);
                    free(ot);
                    tu_set_threads(1);
                }
                checks++;
                free(oh); free(of);
            }
            if (have2 && have512) {
                float *x2 = run(&q, SSMI_GEMV_AVX2), *x5 = run(&q, SSMI_GEMV_AVX512);
                float *h2 = run(&p, SSMI_GEMV_AVX2), *h5 = run(&p, SSMI_GEMV_AVX512);
                ck_assert_msg(same(x2, x5, &q) && same(h2, h5, &p),
                              "AVX2 != AVX-512 at M %lld K %lld", (long long)q.M, (long long)q.K);
                free(x2); free(x5); free(h2); free(h5);
            }
            unmake(&p);
        }
    /* Large enough for the parallel path (M N K >= 65536, several row blocks). */
    {
        prob q;
        make(&q, 8, 1000, 768, 0, 77);
        tu_set_threads(1);
        float *o1 = run(&q, SSMI_GEMV_AUTO);
        for (int th = 2; th <= 3; th++) {
            tu_set_threads(th);
            float *ot = run(&q, SSMI_GEMV_AUTO);
            ck_assert_msg(same(ot, o1, &q), "parallel path: %d threads != 1", th);
            free(ot);
        }
        tu_set_threads(1);
        double r = ratio_vs_double(&q, o1);
        TU_CHECK_ERR(r, 1.0, "gemv auto path (%s) 8 x 1000 x 768, parallel row blocks",
                     ssmi_gemv_isa_name(ssmi_gemv_isa_auto()));
        free(o1);
        unmake(&q);
    }
    printf("bit identities checked on %d (path, shape) pairs; AVX2 vs AVX-512 %s\n", checks,
           have2 && have512 ? "compared" : "NOT compared (a path cannot run here)");
    ck_assert_int_ge(checks, 1);
}
END_TEST

START_TEST(bf16_rounding)
{
    static const struct { uint32_t in; uint16_t out; } t[] = {
        { 0x3f800000u, 0x3f80 },   /* 1 */
        { 0x3f808000u, 0x3f80 },   /* tie, even stays */
        { 0x3f818000u, 0x3f82 },   /* tie, odd rounds up */
        { 0x3f808001u, 0x3f81 },   /* above the tie */
        { 0x3f807fffu, 0x3f80 },   /* below the tie */
        { 0x3fffffffu, 0x4000 },   /* carry into the exponent */
        { 0x7f7fffffu, 0x7f80 },   /* FLT_MAX rounds to infinity */
        { 0xbf808000u, 0xbf80 },   /* negative tie */
        { 0x7f800000u, 0x7f80 },   /* +inf */
        { 0x00000001u, 0x0000 },   /* tiny subnormal to 0 */
        { 0x80000000u, 0x8000 },   /* -0 */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        float f;
        memcpy(&f, &t[i].in, 4);
        ck_assert_msg(ssmi_f32_to_bf16(f) == t[i].out, "bf16(0x%08x) = 0x%04x, want 0x%04x",
                      t[i].in, ssmi_f32_to_bf16(f), t[i].out);
    }
    float nan = NAN;
    uint16_t h = ssmi_f32_to_bf16(nan);
    ck_assert(isnan(ssmi_bf16_to_f32(h)));
    /* a NaN whose payload sits only in the low 16 bits stays NaN */
    uint32_t lownan = 0x7f800001u;
    memcpy(&nan, &lownan, 4);
    ck_assert(isnan(ssmi_bf16_to_f32(ssmi_f32_to_bf16(nan))));
}
END_TEST


/* ---- step kernels ---- */

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double softplus_d(double x) { return x <= 20.0 ? log1p(exp(x)) : x; }

/* _i = 0: dt up to ~26 (the decay's range steps matter: |dt A| up to
 * ~500); 1: dt up to ~1.7 with one |A| of 51 in every fifth channel, so
 * that most 16-channel (8 for AVX2) groups have dt max|A| <= DEC_RNG (87)
 * and take the decay without range steps, some right under that bound
 * (|dt a2| up to ~125), and every 23rd row is large, so that some groups
 * do not. */
START_TEST(step_kernels)
{
    const double u = 0x1.0p-24;
    const int small = _i;
    static const int64_t Bs[] = { 1, 3 }, dis[] = { 5, 37, 300 }, ns[] = { 16, 4, 21, 32 };
    double worst_y = 0, worst_h = 0, worst_c = 0;
    for (size_t ib = 0; ib < 2; ib++)
        for (size_t id = 0; id < 3; id++)
            for (size_t in = 0; in < 4; in++) {
                const int64_t B = Bs[ib], di = dis[id], n = ns[in], rows = B * di, k = 4;
                tu_rng r = { 900 + ib * 17 + id * 5 + in + 1000 * (uint64_t)small };
                float *h0 = tu_alloc((size_t)(rows * n), 4), *uu = tu_alloc((size_t)rows, 4),
                      *dl = tu_alloc((size_t)rows, 4), *A = tu_alloc((size_t)(di * n), 4),
                      *Bm = tu_alloc((size_t)(B * n), 4), *Cm = tu_alloc((size_t)(B * n), 4),
                      *D = tu_alloc((size_t)di, 4), *z = tu_alloc((size_t)rows, 4),
                      *bias = tu_alloc((size_t)di, 4), *cw = tu_alloc((size_t)(di * k), 4),
                      *cb = tu_alloc((size_t)di, 4), *x = tu_alloc((size_t)rows, 4),
                      *win0 = tu_alloc((size_t)(rows * k), 4);
                for (int64_t i = 0; i < rows * n; i++) h0[i] = (float)tu_normal(&r);
                for (int64_t i = 0; i < rows; i++) {
                    uu[i] = (float)tu_normal(&r);
                    /* delta + bias spans both softplus branches */
                    dl[i] = (float)(small && i % 23 != 5 ? tu_range(&r, -12, 1.7)
                                                         : tu_range(&r, -12, 26));
                    z[i] = (float)(3 * tu_normal(&r));
                    x[i] = (float)tu_normal(&r);
                }
                for (int64_t i = 0; i < di * n; i++) A[i] = (float)-exp(tu_range(&r, -1, 3));
                if (small)
                    for (int64_t d = 2; d < di; d += 5) A[d * n + d % n] = -51.0f;
                float *A2 = tu_alloc((size_t)(di * n), 4), *amax = tu_alloc((size_t)di, 4);
                ssmi_mamba_step_a2(di, n, A, A2, amax);
                for (int64_t d = 0; d < di; d++) {
                    float m = 0;
                    for (int64_t s2 = 0; s2 < n; s2++) {
                        /* scan_a2: A log2(e) rounded once */
                        const float want = (float)((long double)A[d * n + s2] * 1.4426950408889634074L);
                        ck_assert_msg(A2[d * n + s2] == want, "a2 %.9g, want %.9g", A2[d * n + s2], want);
                        m = fabsf(A[d * n + s2]) > m ? fabsf(A[d * n + s2]) : m;
                    }
                    ck_assert(amax[d] == m);
                }
                for (int64_t i = 0; i < B * n; i++) { Bm[i] = (float)tu_normal(&r); Cm[i] = (float)tu_normal(&r); }
                for (int64_t i = 0; i < di; i++) {
                    D[i] = (float)tu_normal(&r); bias[i] = (float)tu_range(&r, -4, 0);
                    cb[i] = (float)(0.1 * tu_normal(&r));
                }
                for (int64_t i = 0; i < di * k; i++) cw[i] = (float)(0.5 * tu_normal(&r));
                for (int64_t i = 0; i < rows * k; i++) win0[i] = (float)tu_normal(&r);
                float *ref_y = NULL, *ref_h = NULL, *ref_u = NULL, *ref_w = NULL;
                for (int isa = 1; isa <= 3; isa++) {
                    for (int th = 1; th <= 3; th++) {
                        tu_set_threads(th);
                        float *h = tu_alloc((size_t)(rows * n), 4), *y = tu_alloc((size_t)rows, 4),
                              *dtv = tu_alloc((size_t)rows, 4), *g = tu_alloc((size_t)rows, 4),
                              *win = tu_alloc((size_t)(rows * k), 4), *uo = tu_alloc((size_t)rows, 4);
                        memcpy(h, h0, (size_t)(rows * n) * 4);
                        memcpy(win, win0, (size_t)(rows * k) * 4);
                        ssmi_mamba_step_scan(isa, rows, di, n, h, uu, dl, A2, amax, Bm, Cm, n, D, z,
                                             bias, dtv, g, y);
                        if (th == 1) {
                            /* without amax every group takes the range steps: the same bits */
                            float *h2 = tu_alloc((size_t)(rows * n), 4), *y2 = tu_alloc((size_t)rows, 4);
                            memcpy(h2, h0, (size_t)(rows * n) * 4);
                            ssmi_mamba_step_scan(isa, rows, di, n, h2, uu, dl, A2, NULL, Bm, Cm, n, D, z,
                                                 bias, dtv, g, y2);
                            ck_assert_msg(!memcmp(y, y2, (size_t)rows * 4) &&
                                          !memcmp(h, h2, (size_t)(rows * n) * 4),
                                          "step scan: path %d differs without amax", isa);
                            free(h2); free(y2);
                        }
                        ssmi_mamba_step_conv(isa, rows, di, k, win, x, cw, cb, uo);
                        if (!ref_y) {
                            /* dt as the sequence scan computes it, bit for bit */
                            for (int64_t i = 0; i < rows; i++) {
                                const float want = ssmi_scan_softplusf(dl[i] + bias[i % di]);
                                ck_assert_msg(!memcmp(&dtv[i], &want, 4),
                                              "step dt %.9g, the scan's softplus %.9g", dtv[i], want);
                            }
                            ref_y = y; ref_h = h; ref_u = uo; ref_w = win;
                            free(dtv); free(g);
                            continue;
                        }
                        ck_assert_msg(!memcmp(y, ref_y, (size_t)rows * 4) &&
                                      !memcmp(h, ref_h, (size_t)(rows * n) * 4) &&
                                      !memcmp(uo, ref_u, (size_t)rows * 4) &&
                                      !memcmp(win, ref_w, (size_t)(rows * k) * 4),
                                      "step kernels: path %d at %d threads differs from generic, 1 thread "
                                      "(B %lld di %lld n %lld)", isa, th, (long long)B, (long long)di, (long long)n);
                        free(h); free(y); free(dtv); free(g); free(win); free(uo);
                    }
                }
                tu_set_threads(1);
                /* against double */
                for (int64_t i = 0; i < rows; i++) {
                    const int64_t b = i / di, d = i % di;
                    const double dt = softplus_d((double)dl[i] + bias[d]), gz = silu_d(z[i]);
                    double acc = 0, sabs = 0, sb = 0;
                    for (int64_t s2 = 0; s2 < n; s2++) {
                        const double a = (double)dt * A[d * n + s2], da = exp(a);
                        const double hn = da * h0[i * n + s2] + dt * uu[i] * Bm[b * n + s2];
                        const double bh = 2 * ((7 * u * fabs(a) + 5 * u) * fabs(da * h0[i * n + s2]) +
                                               4 * u * fabs(dt * uu[i] * Bm[b * n + s2]));
                        const double eh = fabs(ref_h[i * n + s2] - hn);
                        if (bh > 0 && eh / bh > worst_h) worst_h = eh / bh;
                        ck_assert_msg(eh <= bh, "h error %.3g > %.3g", eh, bh);
                        acc += Cm[b * n + s2] * hn;
                        sabs += fabs(Cm[b * n + s2] * hn);
                        sb += fabs(Cm[b * n + s2]) * bh / 2;
                    }
                    const double yv = (acc + (double)D[d] * uu[i]) * gz;
                    const double by = 2 * (fabs(gz) * (sb + ((double)(n / 16) + 6) * u *
                                                     (sabs + fabs((double)D[d] * uu[i]))) + 5 * u * fabs(yv));
                    const double ey = fabs(ref_y[i] - yv);
                    if (by > 0 && ey / by > worst_y) worst_y = ey / by;
                    ck_assert_msg(ey <= by, "y error %.3g > %.3g (row %lld)", ey, by, (long long)i);
                    /* conv */
                    double c = cb[d], cabs = fabs(cb[d]);
                    for (int64_t j = 0; j < k; j++) {
                        const double wv = j + 1 < k ? win0[i * k + j + 1] : x[i];
                        ck_assert(ref_w[i * k + j] == (float)wv);
                        c += (double)cw[d * k + j] * wv;
                        cabs += fabs((double)cw[d * k + j] * wv);
                    }
                    const double uref = silu_d(c);
                    const double bc = 2 * (1.1 * (double)(k + 1) * u * cabs + 5 * u * fabs(uref));
                    const double ec = fabs(ref_u[i] - uref);
                    if (bc > 0 && ec / bc > worst_c) worst_c = ec / bc;
                    ck_assert_msg(ec <= bc, "conv error %.3g > %.3g", ec, bc);
                }
                free(ref_y); free(ref_h); free(ref_u); free(ref_w);
                free(h0); free(uu); free(dl); free(A); free(A2); free(amax); free(Bm); free(Cm);
                free(D); free(z);
                free(bias); free(cw); free(cb); free(x); free(win0);
            }
    TU_CHECK_ERR(worst_h, 1.0, "step scan: new state h vs double (worst error/bound)");
    TU_CHECK_ERR(worst_y, 1.0, "step scan: y vs double (worst error/bound)");
    TU_CHECK_ERR(worst_c, 1.0, "step conv + silu vs double (worst error/bound)");
}
END_TEST

int main(void)
{
    printf("gemv paths on this machine:");
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++)
        printf(" %s %s;", ssmi_gemv_isa_name(isas[j]),
               ssmi_gemv_isa_ok(isas[j]) ? "runs" : "CANNOT RUN");
    printf(" auto: %s\n", ssmi_gemv_isa_name(ssmi_gemv_isa_auto()));
    tu_set_threads(1);
    Suite *s = suite_create("gemv");
    TCase *tc = tcase_create("gemv");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, against_double_every_path, 0, 2);
    tcase_add_test(tc, bit_identities);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_loop_test(tc, step_kernels, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
