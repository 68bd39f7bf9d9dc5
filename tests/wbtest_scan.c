/*
 * wbtest_scan.c -- white-box tests of the selective scan: the accuracy of its
 * float exp (max and mean error), vector body == scalar tail bit for bit,
 * every ISA the machine runs, both paths forced (time-chunked vs channel
 * sequential), thread counts 1/2/3/8 on each (and on the sequential path's
 * multi-block units, and the split path's ring), the convolution mode against
 * the recurrent mode, and a 2^22-step sequence.
 */
#include <ssm.h>
#include "testutil.h"
#include "scan_errbound.h"
#include "scan/scan_internal.h"

/* ---------------------------------------------------------------- exp --- */

/* Signed error of y in units in the last place of the float nearest ref. */
static double ulp_err(float y, double ref)
{
    int e;
    frexp(ref, &e);                  /* ref = f 2^e, f in [0.5, 1) */
    return ((double)y - ref) / ldexp(1.0, e - 24);
}

static const int isas[] = { SSM_SCAN_ISA_GENERIC, SSM_SCAN_ISA_AVX2, SSM_SCAN_ISA_AVX512 };
/* A kernel this machine cannot run is said so, never skipped silently. */
#define TU_ISA_SKIPPED(isa) printf("NOT EXECUTED here: %s kernel (the CPU lacks it)\n", \
    (isa) == SSM_SCAN_ISA_AVX512 ? "AVX-512" : (isa) == SSM_SCAN_ISA_AVX2 ? "AVX2+FMA" : "generic")

START_TEST(exp_accuracy_max_and_mean)
{
    /* Two ranges: the decays of the scan, dt*A in [-20, 0], densely; and
     * all normal results, [-87, 88]. */
    const double lo[2] = { -20.0, -87.0 }, hi[2] = { 0.0, 88.0 };
    const int64_t n = 1 << 21;
    float *x = tu_alloc((size_t)n, sizeof(float)), *y = tu_alloc((size_t)n, sizeof(float));
    float *ys = tu_alloc((size_t)n, sizeof(float));
    tu_rng r = { 11 };
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)tu_range(&r, lo[k], hi[k]);
        for (int64_t i = 0; i < n; i++)
            ys[i] = ssmi_scan_expf(x[i]);
        double maxe = 0, sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = ulp_err(ys[i], exp((double)x[i]));
            sum += e;
            if (fabs(e) > maxe) maxe = fabs(e);
        }
        double mean = sum / (double)n;
        printf("scan exp on [%g, %g]: max %.3f ulp, mean %+.4f ulp\n", lo[k], hi[k], maxe, mean);
        /* Degree-6 minimax: truncation 0.03 ulp on |r| <= ln2/2; the final
         * fma rounds once (0.5 ulp) and the Horner steps before it add at most
         * |r| (< 0.35) times their own half ulp: < 1.5 ulp.  A sound exp has
         * no bias beyond the sampling noise (0.3/sqrt(2^21) ~ 2e-4 ulp) and
         * the truncation: |mean| < 0.02 ulp.  (A +2 ulp bias would cost ~1e-5
         * normwise over 1/(dt |A|) steps.) */
        TU_CHECK_ERR(maxe, 1.5, "max ulp error on [%g, %g]", lo[k], hi[k]);
        TU_CHECK_ERR(fabs(mean), 0.02, "mean ulp error on [%g, %g]", lo[k], hi[k]);
        /* Every ISA this machine runs: the same bits as the scalar form, for
         * a length that leaves a tail. */
        for (int j = 0; j < 3; j++) {
            if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
            ck_assert_int_eq(ssmi_scan_vexpf(isas[j], x, y, n - 5), 0);
            ck_assert_msg(memcmp(y, ys, (size_t)(n - 5) * sizeof(float)) == 0,
                          "ISA %d: vector exp differs from the scalar exp", isas[j]);
        }
    }
    free(x); free(y); free(ys);
}
END_TEST

START_TEST(exp_special_values)
{
    const float x[] = { 0.0f, -0.0f, NAN, -INFINITY, INFINITY, -1000.0f, 1000.0f,
                        -88.5f, -87.9f, -87.5f, -87.0f, -86.0f, 88.5f, 1.0f, -1.0f,
                        1e-30f, -1e-30f };
    const int n = (int)(sizeof x / sizeof x[0]);
    float y[32];
    for (int j = 0; j < 3; j++) {
        if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
        ck_assert_int_eq(ssmi_scan_vexpf(isas[j], x, y, n), 0);
        for (int i = 0; i < n; i++) {
            float s = ssmi_scan_expf(x[i]);
            ck_assert_msg(memcmp(&s, &y[i], sizeof s) == 0 || (isnan(s) && isnan(y[i])),
                          "ISA %d x = %g: vector %g scalar %g", isas[j], x[i], y[i], s);
        }
    }
    ck_assert(ssmi_scan_expf(0.0f) == 1.0f);
    ck_assert(ssmi_scan_expf(-0.0f) == 1.0f);
    ck_assert(ssmi_scan_expf(1e-30f) == 1.0f);
    ck_assert(isnan(ssmi_scan_expf(NAN)));
    ck_assert(ssmi_scan_expf(-INFINITY) == 0.0f);
    ck_assert(ssmi_scan_expf(-1000.0f) == 0.0f);
    ck_assert(ssmi_scan_expf(INFINITY) == INFINITY);
    ck_assert(ssmi_scan_expf(1000.0f) == INFINITY);
    /* Down to the underflow: never negative, never NaN, never above the
     * true value by more than an ulp of FLT_MIN, 0 below -88. */
    for (float v = -95.0f; v < -80.0f; v += 0.001f) {
        float e = ssmi_scan_expf(v);
        ck_assert_msg(e >= 0.0f && isfinite(e), "exp(%g) = %g", v, e);
        ck_assert_msg((double)e <= exp((double)v) * (1 + 1e-6) + FLT_MIN * 0x1p-23,
                      "exp(%g) = %g above %g", v, e, exp((double)v));
        if (v < -88.0f)
            ck_assert(e == 0.0f);
    }
}
END_TEST

/* -------------------------------------------------------------- decay --- */

/* The decay exp(dt A) = scan_decayf(dt, a2), a2 = A log2(e) rounded to
 * float.  Its own error, against 2^(dt a2) in double: the reduction's
 * rounding of r (at most 2^-26 absolute: 0.35 ulp), the polynomial's (0.03
 * ulp) and the float Horner steps' (scan_expf measured 0.9 ulp); bound 1.5
 * ulp, mean within 0.05.  Against exp(dt A) the rounding of a2 (the
 * library's scan_a2 rounds A log2(e) once, as the double product rounded
 * to float here) adds up to |dt A| 2^-24 relative, as the rounding of
 * dt A did before: at most |dt A| ulp more. */
START_TEST(decay_accuracy)
{
    tu_rng r = { 17 };
    double worst = 0.0, worst2 = 0.0, mean = 0.0;
    const int n = 1 << 20;
    for (int i = 0; i < n; i++) {
        const float dt = (float)exp(tu_range(&r, log(1e-4), log(10.0)));
        const float A = (float)-exp(tu_range(&r, log(1e-3), log(8.0)));
        const float a2 = (float)((double)A * 1.4426950408889634074);
        const float y = ssmi_scan_decayf(dt, a2);
        const double e = ulp_err(y, exp2((double)dt * (double)a2));
        const double x = (double)dt * (double)A;
        worst = fmax(worst, fabs(e));
        worst2 = fmax(worst2, fabs(ulp_err(y, exp(x))) / (1.5 + fabs(x)));
        mean += e;
    }
    TU_CHECK_ERR(worst, 1.5, "decay vs 2^(dt a2): max ulp error");
    TU_CHECK_ERR(fabs(mean / n), 0.05, "decay vs 2^(dt a2): mean ulp error");
    TU_CHECK_ERR(worst2, 1.0, "decay vs exp(dt A): max ulp error / (1.5 + |dt A|)");
    /* The library's a2: A log2(e) rounded once, as in double here (a tie
     * within 2^-48 could differ: none is expected among these). */
    int off = 0;
    for (int i = 0; i < n; i++) {
        const float A = (float)-exp(tu_range(&r, log(1e-4), log(1e3)));
        off += ssmi_scan_a2(A) != (float)((double)A * 1.4426950408889634074);
    }
    TU_CHECK_ERR((double)off, 0.0, "a2 = A log2(e): values not rounded once, of %d", n);
}
END_TEST

/* Every input alike in every ISA: the vector forms against scan_decayf,
 * bit for bit, mode 0 on any input (NaN, inf, 0, the range steps at -160
 * and 130, subnormal results), mode 1 where dt a2 <= 0, mode 2 where
 * |dt| |A| <= 87; and the range steps' values. */
START_TEST(decay_special_and_every_isa)
{
    const float l2e = 1.44269504088896341f;
    ck_assert(ssmi_scan_decayf(0.0f, -3.0f) == 1.0f);
    ck_assert(ssmi_scan_decayf(1.0f, 0.0f) == 1.0f);
    ck_assert(isnan(ssmi_scan_decayf(NAN, -1.0f)));
    ck_assert(isnan(ssmi_scan_decayf(1.0f, NAN)));
    ck_assert(isnan(ssmi_scan_decayf(INFINITY, 0.0f)));
    ck_assert(ssmi_scan_decayf(INFINITY, -1.0f) == 0.0f);
    ck_assert(ssmi_scan_decayf(1e30f, -1.0f) == 0.0f);
    ck_assert(ssmi_scan_decayf(1e30f, 1.0f) == INFINITY);
    ck_assert(ssmi_scan_decayf(1.0f, -161.0f) == 0.0f);
    ck_assert(ssmi_scan_decayf(1.0f, 131.0f) == INFINITY);
    /* Subnormal results: within one subnormal ulp (2^-149) plus 2 ulp of
     * the exact value, never negative. */
    for (float v = -104.0f; v < -86.0f; v += 0.001f) {
        const float a2 = v * l2e;
        const float y = ssmi_scan_decayf(1.0f, a2);
        const double ref = exp2((double)a2);   /* rounded once: half a subnormal ulp */
        ck_assert_msg(y >= 0.0f && fabs((double)y - ref) <= 2e-7 * ref + 0x1p-150 * 1.01,
                      "decay(%g) = %g, exp %g", v, y, ref);
    }
    enum { N = 4096 };
    float *dt = tu_alloc(N, sizeof(float)), *a2 = tu_alloc(N, sizeof(float));
    float *ys = tu_alloc(N, sizeof(float)), *yv = tu_alloc(N, sizeof(float));
    tu_rng r = { 23 };
    for (int mode = 0; mode <= 2; mode++) {
        for (int i = 0; i < N; i++) {
            double d = exp(tu_range(&r, log(1e-3), log(4.0)));
            double a = -exp(tu_range(&r, log(1e-2), log(mode == 2 ? 21.0 : 90.0)));
            if (mode == 0 && i % 3 == 0)
                a = -a;
            if (mode == 2 && fabs(d * a) > 87.0)
                a = -87.0 / d;
            dt[i] = (float)d;
            a2[i] = (float)a * l2e;
        }
        if (mode == 0) {   /* the edges */
            const float sp[][2] = { { NAN, 1.0f }, { 1.0f, NAN }, { INFINITY, -1.0f },
                                    { INFINITY, 0.0f }, { 1.0f, -160.0f }, { 1.0f, -159.99f },
                                    { 1.0f, -160.01f }, { 1.0f, 130.0f }, { 1.0f, 129.99f },
                                    { 1.0f, 130.01f }, { 1e30f, 1.0f }, { 1e30f, -1.0f },
                                    { 0.0f, 5.0f }, { 1.0f, -149.6f }, { 1.0f, -126.5f },
                                    { 1.0f, 127.9f }, { 1.0f, 128.2f } };
            for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
                dt[i * 5] = sp[i][0];
                a2[i * 5] = sp[i][1];
            }
        }
        for (int i = 0; i < N; i++)
            ys[i] = ssmi_scan_decayf(dt[i], a2[i]);
        for (int j = 0; j < 3; j++) {
            if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
            ck_assert_int_eq(ssmi_scan_vdecay(isas[j], mode, dt, a2, yv, N - 3), 0);
            for (int i = 0; i < N - 3; i++)
                ck_assert_msg(memcmp(&ys[i], &yv[i], sizeof(float)) == 0
                              || (isnan(ys[i]) && isnan(yv[i])),
                              "mode %d ISA %d: decay(%g, %g) vector %g scalar %g", mode,
                              isas[j], dt[i], a2[i], yv[i], ys[i]);
        }
    }
    free(dt); free(a2); free(ys); free(yv);
}
END_TEST

/* ----------------------------------------------------------- softplus --- */

/* dt = softplus(x) = max(x, 0) + log1p(t), t = exp(-|x|), log1p(t) = t +
 * t^2 q(t) (scan_vmath.h).  Expected error against log1p(exp(x)) in double:
 * t's (the exp: 0.9 ulp, times the condition number of log1p at t, at most
 * 1), q's truncation (0.04 ulp), the final fma and, for x > 0, the sum
 * (half an ulp each), and the roundings inside t^2 q, a term at most 0.31
 * of the result (~0.5 ulp): 2.5 ulp; measured 1.6-1.8 (the former form
 * with two divisions: 3.6).  Mean within 0.1 ulp (measured 0.03). */
START_TEST(softplus_accuracy_and_every_isa)
{
    tu_rng r = { 29 };
    double worst = 0.0, mean = 0.0;
    const int n = 1 << 20;
    for (int i = 0; i < n; i++) {
        /* half uniform on [-87, 20], half log-uniform |x| in [1e-6, 87] */
        double xd = tu_range(&r, -87.0, 20.0);
        if (i & 1)
            xd = (i & 2 ? -1.0 : 1.0) * exp(tu_range(&r, log(1e-6), log(87.0)));
        const float x = (float)xd;
        const double ref = (double)x <= 20.0 ? log1p(exp((double)x)) : (double)x;
        const double e = ulp_err(ssmi_scan_softplusf(x), ref);
        worst = fmax(worst, fabs(e));
        mean += e;
    }
    TU_CHECK_ERR(worst, 2.5, "softplus vs log1p(exp(x)): max ulp error");
    TU_CHECK_ERR(fabs(mean / n), 0.1, "softplus vs log1p(exp(x)): mean ulp error");
    /* The threshold: x itself above 20, with no test in the code. */
    for (float x = 20.0f; x < 1e30f; x = x * 1.01f + 1e-3f) {
        const float y = ssmi_scan_softplusf(nextafterf(x, INFINITY));
        ck_assert_msg(y == nextafterf(x, INFINITY), "softplus(%.9g) = %.9g", nextafterf(x, INFINITY), y);
    }
    ck_assert(ssmi_scan_softplusf(INFINITY) == INFINITY);
    ck_assert(isnan(ssmi_scan_softplusf(NAN)));
    ck_assert(isnan(ssmi_scan_softplusf(-NAN)));
    const float ninf = ssmi_scan_softplusf(-INFINITY);
    ck_assert(ninf >= 0.0f && ninf < FLT_MIN);
    ck_assert(fabs(ulp_err(ssmi_scan_softplusf(0.0f), log(2.0))) <= 1.0);
    ck_assert(ssmi_scan_softplusf(-0.0f) == ssmi_scan_softplusf(0.0f));
    /* Every ISA bit for bit against the scalar form, edges included. */
    enum { N = 4096 };
    float *x = tu_alloc(N, sizeof(float)), *ys = tu_alloc(N, sizeof(float));
    float *yv = tu_alloc(N, sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = (float)tu_range(&r, -200.0, 200.0) * (i % 4 == 0 ? 0.01f : 1.0f);
    const float sp[] = { NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 20.0f, 19.999998f,
                         20.000002f, -87.5f, -88.0f, -88.5f, -104.0f, 1e30f, -1e30f, 0x1p-149f,
                         -0x1p-149f, FLT_MIN, 88.0f, 89.0f };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        x[i * 7] = sp[i];
    for (int i = 0; i < N; i++)
        ys[i] = ssmi_scan_softplusf(x[i]);
    for (int j = 0; j < 3; j++) {
        if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
        ck_assert_int_eq(ssmi_scan_vsoftplus(isas[j], x, yv, N - 3), 0);
        for (int i = 0; i < N - 3; i++)
            ck_assert_msg(memcmp(&ys[i], &yv[i], sizeof(float)) == 0
                          || (isnan(ys[i]) && isnan(yv[i])),
                          "ISA %d: softplus(%g) vector %g scalar %g", isas[j], x[i], yv[i], ys[i]);
    }
    free(x); free(ys); free(yv);
}
END_TEST

/* ------------------------------------------------------------ problems -- */

typedef struct prob {
    int64_t batch, dim, dstate, len, ngroups;
    float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0;
} prob;

static void prob_make(prob *p, int64_t batch, int64_t dim, int64_t dstate,
                      int64_t len, int64_t ngroups, uint64_t seed)
{
    tu_rng r = { seed };
    memset(p, 0, sizeof *p);
    p->batch = batch; p->dim = dim; p->dstate = dstate; p->len = len; p->ngroups = ngroups;
    const int64_t nx = batch * dim * len, nbc = batch * ngroups * dstate * len;
    p->u = tu_alloc((size_t)nx, sizeof(float));
    p->delta = tu_alloc((size_t)nx, sizeof(float));
    p->z = tu_alloc((size_t)nx, sizeof(float));
    p->A = tu_alloc((size_t)(dim * dstate), sizeof(float));
    p->B = tu_alloc((size_t)nbc, sizeof(float));
    p->C = tu_alloc((size_t)nbc, sizeof(float));
    p->D = tu_alloc((size_t)dim, sizeof(float));
    p->bias = tu_alloc((size_t)dim, sizeof(float));
    p->h0 = tu_alloc((size_t)(batch * dim * dstate), sizeof(float));
    tu_fill_normal_f(&r, p->u, nx, 1.0);
    tu_fill_normal_f(&r, p->z, nx, 1.0);
    tu_fill_normal_f(&r, p->B, nbc, 1.0);
    tu_fill_normal_f(&r, p->C, nbc, 1.0);
    tu_fill_normal_f(&r, p->D, dim, 1.0);
    tu_fill_normal_f(&r, p->h0, batch * dim * dstate, 1.0);
    for (int64_t i = 0; i < dim * dstate; i++)
        p->A[i] = (float)-exp(tu_range(&r, 0.0, log(16.0)));
    for (int64_t d = 0; d < dim; d++)
        p->bias[d] = (float)tu_range(&r, -0.1, 0.1);
    for (int64_t i = 0; i < nx; i++)
        p->delta[i] = (float)log(expm1(exp(tu_range(&r, log(1e-3), log(1e-1)))));
}

static void prob_free(prob *p)
{
    free(p->u); free(p->delta); free(p->z); free(p->A); free(p->B); free(p->C);
    free(p->D); free(p->bias); free(p->h0);
}

static ssm_scan_args prob_args(const prob *p, float *y, float *hl)
{
    ssm_scan_args a = { .batch = p->batch, .dim = p->dim, .dstate = p->dstate, .len = p->len,
                        .ngroups = p->ngroups, .u = p->u, .delta = p->delta, .A = p->A,
                        .B = p->B, .C = p->C, .D = p->D, .z = p->z, .delta_bias = p->bias,
                        .delta_softplus = 1, .h0 = p->h0, .y = y, .h_last = hl };
    return a;
}

/* API.md's recurrence in double (independent of the library). */
static void ref_scan(const prob *p, double *y)
{
    const int64_t N = p->dstate, L = p->len, dim = p->dim, G = p->ngroups;
    double *h = tu_alloc((size_t)N, sizeof(double));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t d = 0; d < dim; d++) {
            const int64_t g = d / (dim / G), bd = b * dim + d;
            for (int64_t n = 0; n < N; n++)
                h[n] = p->h0[bd * N + n];
            for (int64_t t = 0; t < L; t++) {
                double x = (double)p->delta[bd * L + t] + p->bias[d];
                double dt = x <= 20.0 ? log1p(exp(x)) : x, uu = p->u[bd * L + t], s = 0;
                for (int64_t n = 0; n < N; n++) {
                    int64_t ib = ((b * G + g) * N + n) * L + t;
                    h[n] = exp(dt * p->A[d * N + n]) * h[n] + dt * p->B[ib] * uu;
                    s += p->C[ib] * h[n];
                }
                double zz = p->z[bd * L + t];
                y[bd * L + t] = (s + p->D[d] * uu) * (zz / (1.0 + exp(-zz)));
            }
        }
    free(h);
}

/* The expected float error of the instance (scan_errbound.h): the bound
 * of every comparison with the reference; two float evaluations differ by
 * at most twice it. */
static void ref_errbound(const prob *p, double *ey, double *eh)
{
    tu_scan_problem q = { p->batch, p->dim, p->dstate, p->len, p->ngroups, p->u, p->delta, p->A,
                          p->B, p->C, p->D, p->z, p->bias, p->h0, 1 };
    tu_scan_errbound(&q, ey, eh);
}

/* ------------------------------ test 3: both paths, every ISA, threads --- */

static const int64_t path_shapes[][6] = {
    /* batch dim dstate len ngroups chunk */
    { 2, 4, 16, 1000, 2, 64 },
    { 1, 3, 19, 777, 1, 100 },
    { 1, 1, 8, 2049, 1, 1024 },
    { 3, 2, 5, 301, 2, 37 },
    { 1, 2, 40, 513, 1, 128 },
};

START_TEST(paths_isas_threads)
{
    const int64_t *s = path_shapes[_i];
    prob p;
    prob_make(&p, s[0], s[1], s[2], s[3], s[4], 21 + (uint64_t)_i);
    const int64_t ny = s[0] * s[1] * s[3], nh = s[0] * s[1] * s[2];
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    ref_scan(&p, yr);
    float *ys = tu_alloc((size_t)ny, sizeof(float)), *hs = tu_alloc((size_t)nh, sizeof(float));
    float *yc = tu_alloc((size_t)ny, sizeof(float)), *hc = tu_alloc((size_t)nh, sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
    const int threads[] = { 2, 3, 8 };
    for (int j = 0; j < 3; j++) {
        const int isa = isas[j];
        if (!ssmi_scan_isa_ok(isa)) { TU_ISA_SKIPPED(isa); continue; }
        tu_set_threads(1);
        ssm_scan_args a = prob_args(&p, ys, hs);
        ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, isa), SSM_OK);
        ssm_scan_args c = prob_args(&p, yc, hc);
        ck_assert_int_eq(ssmi_selective_scan_ex(&c, SSM_SCAN_PATH_CHUNKED, s[5], isa), SSM_OK);
        /* Both within float rounding of the reference (see test_scan.c), and
         * of each other: the chunked path regroups the same products. */
        double by, bh;
        ref_errbound(&p, &by, &bh);
        TU_CHECK_ERR(tu_relerr_f(ys, yr, ny), by, "sequential, ISA %d", isa);
        TU_CHECK_ERR(tu_relerr_f(yc, yr, ny), by, "chunked, ISA %d", isa);
        TU_CHECK_ERR(tu_relerr_ff(yc, ys, ny), 2 * by, "chunked vs sequential, ISA %d", isa);
        TU_CHECK_ERR(tu_relerr_ff(hc, hs, nh), 2 * bh, "h_last chunked vs sequential, ISA %d", isa);
        for (int k = 0; k < 3; k++) {
            tu_set_threads(threads[k]);
            ssm_scan_args b = prob_args(&p, y2, h2);
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SEQ, 0, isa), SSM_OK);
            ck_assert_msg(!memcmp(y2, ys, (size_t)ny * 4) && !memcmp(h2, hs, (size_t)nh * 4),
                          "sequential path, ISA %d: %d threads differ from 1", isa, threads[k]);
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_CHUNKED, s[5], isa), SSM_OK);
            ck_assert_msg(!memcmp(y2, yc, (size_t)ny * 4) && !memcmp(h2, hc, (size_t)nh * 4),
                          "chunked path, ISA %d: %d threads differ from 1", isa, threads[k]);
        }
    }
    free(yr); free(ys); free(hs); free(yc); free(hc); free(y2); free(h2);
    prob_free(&p);
}
END_TEST

/* -------- sequential path: the same bytes on every ISA, every block kind --- */

/* The sequential path computes each channel with one arithmetic (the state
 * update per lane, y as one FMA chain over n in increasing order), whether
 * the channel sits in a lane of a 16- or 8-channel vector, is scanned alone
 * (row kernel: groups narrower than half a vector, a group's last block), or
 * by the portable kernel: the bytes must not depend on the ISA.  Shapes: full
 * and partial channel vectors, dstate 16 and 8 (state in registers), odd and
 * above 16 (passes of 8 states plus a remainder), several groups and batches;
 * each option combination (D, z, bias, softplus). */
static const int64_t isa_shapes[][5] = {
    /* batch dim dstate len ngroups */
    { 1, 40, 16, 300, 1 },
    { 2, 64, 19, 77, 2 },
    { 1, 24, 8, 129, 1 },
    { 1, 48, 33, 50, 3 },
    { 3, 20, 5, 41, 1 },
    { 1, 16, 1, 64, 1 },
    { 1, 20, 70, 40, 1 },    /* dstate > 64: 16-step tiles */
};

START_TEST(seq_path_same_bytes_every_isa)
{
    const int64_t *s = isa_shapes[_i];
    prob p;
    prob_make(&p, s[0], s[1], s[2], s[3], s[4], 91 + (uint64_t)_i);
    const int64_t ny = s[0] * s[1] * s[3], nh = s[0] * s[1] * s[2];
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    ref_scan(&p, yr);
    double by, bh;
    ref_errbound(&p, &by, &bh);
    float *yg = tu_alloc((size_t)ny, sizeof(float)), *hg = tu_alloc((size_t)nh, sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
    for (int opt = 0; opt < 16; opt++) {
        ssm_scan_args a = prob_args(&p, yg, hg);
        if (opt & 1) a.D = NULL;
        if (opt & 2) a.z = NULL;
        if (opt & 4) a.delta_bias = NULL;
        if (opt & 8) a.delta_softplus = 0;
        ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, SSM_SCAN_ISA_GENERIC),
                         SSM_OK);
        if (opt == 0)
            TU_CHECK_ERR(tu_relerr_f(yg, yr, ny), by, "generic vs reference");
        for (int j = 1; j < 3; j++) {
            if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
            ssm_scan_args b = a;
            b.y = y2;
            b.h_last = h2;
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SEQ, 0, isas[j]), SSM_OK);
            ck_assert_msg(!memcmp(y2, yg, (size_t)ny * 4) && !memcmp(h2, hg, (size_t)nh * 4),
                          "options %d: ISA %d differs from the portable kernel", opt, isas[j]);
        }
    }
    free(yr); free(yg); free(hg); free(y2); free(h2);
    prob_free(&p);
}
END_TEST

/* ---- sequential path: several channel blocks per unit, any thread count --- */

/* The sequential path gives each thread units of up to 8 channel blocks of
 * one group, scanned with the time tiles outside (B and C copied once per
 * tile for all of them); how many blocks a unit holds follows the thread
 * count.  Shapes with 2 to 12 full blocks per group, a narrow last block
 * (row kernel) or none, several tiles of 512 steps and a partial one,
 * several groups and batches: against the reference, then the same bytes at
 * 1, 2, 3 and 8 threads and on every ISA (the portable kernel's). */
static const int64_t unit_shapes[][5] = {
    /* batch dim dstate len ngroups */
    { 1, 100, 16, 1100, 1 },   /* AVX-512: 6 blocks + 4 channels by rows */
    { 2, 96, 16, 600, 2 },     /* 3 (6) blocks per group, 2 batches */
    { 1, 72, 8, 517, 3 },      /* groups of 24: 1.5 (3) blocks */
    { 1, 200, 16, 1030, 1 },   /* 12 (25) blocks + 8 channels: more than 8 a unit */
    { 1, 48, 24, 700, 1 },     /* dstate 24: passes of 8 and remainders */
};

START_TEST(seq_units_threads_isas)
{
    const int64_t *s = unit_shapes[_i];
    prob p;
    prob_make(&p, s[0], s[1], s[2], s[3], s[4], 131 + (uint64_t)_i);
    const int64_t ny = s[0] * s[1] * s[3], nh = s[0] * s[1] * s[2];
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    ref_scan(&p, yr);
    double by, bh;
    ref_errbound(&p, &by, &bh);
    float *yg = tu_alloc((size_t)ny, sizeof(float)), *hg = tu_alloc((size_t)nh, sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
    tu_set_threads(1);
    ssm_scan_args a = prob_args(&p, yg, hg);
    ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, SSM_SCAN_ISA_GENERIC), SSM_OK);
    TU_CHECK_ERR(tu_relerr_f(yg, yr, ny), by, "generic vs reference, shape %d", _i);
    const int threads[] = { 1, 2, 3, 8 };
    for (int j = 0; j < 3; j++) {
        if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
        for (int k = 0; k < 4; k++) {
            if (j == 0 && k == 0)
                continue;
            tu_set_threads(threads[k]);
            ssm_scan_args b = prob_args(&p, y2, h2);
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SEQ, 0, isas[j]), SSM_OK);
            ck_assert_msg(!memcmp(y2, yg, (size_t)ny * 4) && !memcmp(h2, hg, (size_t)nh * 4),
                          "shape %d, ISA %d, %d threads: bytes differ from the portable kernel "
                          "at 1 thread", _i, isas[j], threads[k]);
        }
    }
    tu_set_threads(1);
    free(yr); free(yg); free(hg); free(y2); free(h2);
    prob_free(&p);
}
END_TEST

/* Outputs of 32 MiB and more are written with streaming stores (whole
 * 64-byte lines, ordinary stores for each tile's head and tail up to a line
 * boundary).  (1, 64, 16, 2^17): y is 32 MiB, written at an aligned address
 * and one float past it; each 16-channel quarter, scanned alone (8 MiB,
 * ordinary stores), must give the same bytes, and the first quarter is
 * checked against the double reference. */
START_TEST(seq_streamed_output_same_bytes)
{
    const int64_t dim = 64, N = 16, L = 1 << 17, Q = 16;
    prob p;
    prob_make(&p, 1, dim, N, L, 1, 171);
    const int64_t ny = dim * L;
    float *ybig = tu_alloc((size_t)ny + 16, sizeof(float));
    float *ysub = tu_alloc((size_t)(Q * L), sizeof(float));
    float *hb = tu_alloc((size_t)(dim * N), sizeof(float)), *hq = tu_alloc((size_t)(Q * N), sizeof(float));
    double *yr = tu_alloc((size_t)(Q * L), sizeof(double));
    prob q0 = p;
    q0.dim = Q;
    ref_scan(&q0, yr);
    double by, bh;
    ref_errbound(&q0, &by, &bh);
    for (int j = 1; j < 3; j++) {
        if (!ssmi_scan_isa_ok(isas[j])) { TU_ISA_SKIPPED(isas[j]); continue; }
        for (int off = 0; off < 2; off++) {
            float *y = ybig + (off ? 1 : 16 - (int64_t)(((uintptr_t)ybig & 63u) / 4) % 16);
            tu_set_threads(1 + off);
            ssm_scan_args a = prob_args(&p, y, hb);
            ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, isas[j]), SSM_OK);
            for (int64_t d0 = 0; d0 < dim; d0 += Q) {
                prob q = p;
                q.dim = Q;
                q.u += d0 * L; q.delta += d0 * L; q.z += d0 * L;
                q.A += d0 * N; q.D += d0; q.bias += d0; q.h0 += d0 * N;
                ssm_scan_args b = prob_args(&q, ysub, hq);
                ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SEQ, 0, isas[j]), SSM_OK);
                if (d0 == 0 && off == 0)
                    TU_CHECK_ERR(tu_relerr_f(ysub, yr, Q * L), by, "channels 0-15, ISA %d", isas[j]);
                ck_assert_msg(!memcmp(ysub, y + d0 * L, (size_t)(Q * L) * 4)
                              && !memcmp(hq, hb + d0 * N, (size_t)(Q * N) * 4),
                              "ISA %d, y offset %d, channels %d..: streamed output differs",
                              isas[j], off, (int)d0);
            }
        }
    }
    tu_set_threads(1);
    free(ybig); free(ysub); free(hb); free(hq); free(yr);
    prob_free(&p);
}
END_TEST

/* ----------------- split path: one channel, state halves on two threads --- */

static const int64_t split_shapes[][4] = {
    /* dstate len seed spikes */
    { 16, 5, 1, 0 }, { 16, 8192, 2, 0 }, { 16, 2 * 8192 + 77, 3, 0 }, { 32, 9001, 4, 0 },
    { 48, 3000, 5, 0 },
    { 16, 20 * 8192 + 5, 6, 0 },   /* more tiles than the ring holds (16) */
    /* Runs of dt ~ 30 (dt |A| up to ~480): the tiles holding them must
     * take the decay's range steps (split_rng_avx2), the others may skip
     * them; a kernel skipping them where they apply gives wrong decays
     * (AVX2: a wrapped exponent) and fails the comparison with the
     * reference. */
    { 16, 3 * 8192 + 11, 7, 1 }, { 32, 5000, 8, 1 },
};

/* delta ~ 30 (dt ~ 30 after softplus) on runs of 37 steps every 700. */
static void split_spikes(prob *p)
{
    for (int64_t t = 0; t < p->len; t++)
        if (t % 700 < 37)
            p->delta[t] = 30.0f;
}

START_TEST(split_path_vs_reference_and_threads)
{
    const int64_t N = split_shapes[_i][0], L = split_shapes[_i][1];
    prob p;
    prob_make(&p, 1, 1, N, L, 1, 40 + (uint64_t)split_shapes[_i][2]);
    if (split_shapes[_i][3])
        split_spikes(&p);
    double *yr = tu_alloc((size_t)L, sizeof(double));
    ref_scan(&p, yr);
    float *ys = tu_alloc((size_t)L, sizeof(float)), *hs = tu_alloc((size_t)N, sizeof(float));
    float *yp = tu_alloc((size_t)L, sizeof(float)), *hp = tu_alloc((size_t)N, sizeof(float));
    float *y2 = tu_alloc((size_t)L, sizeof(float)), *h2 = tu_alloc((size_t)N, sizeof(float));
    const int threads[] = { 2, 3, 8 };
    for (int j = 0; j < 3; j++) {
        const int isa = isas[j];
        if (!ssmi_scan_isa_ok(isa)) { TU_ISA_SKIPPED(isa); continue; }
        tu_set_threads(1);
        ssm_scan_args a = prob_args(&p, ys, hs);
        ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, isa), SSM_OK);
        ssm_scan_args c = prob_args(&p, yp, hp);
        ck_assert_int_eq(ssmi_selective_scan_ex(&c, SSM_SCAN_PATH_SPLIT, 0, isa), SSM_OK);
        /* The split path adds the two halves' partial sums of C h instead
         * of one running sum: the same products, regrouped, so within float
         * rounding of the reference and of the sequential path (as the
         * chunked path, test 3); the states are computed identically. */
        double by, bh;
        ref_errbound(&p, &by, &bh);
        TU_CHECK_ERR(tu_relerr_f(yp, yr, L), by, "split vs reference, N %d, ISA %d", (int)N, isa);
        TU_CHECK_ERR(tu_relerr_ff(yp, ys, L), 2 * by, "split vs sequential, N %d, ISA %d", (int)N, isa);
        TU_CHECK_ERR(tu_relerr_ff(hp, hs, N), 2 * bh, "split h_last vs sequential, N %d, ISA %d", (int)N, isa);
        for (int k = 0; k < 3; k++) {
            tu_set_threads(threads[k]);
            ssm_scan_args b = prob_args(&p, y2, h2);
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SPLIT, 0, isa), SSM_OK);
            ck_assert_msg(!memcmp(y2, yp, (size_t)L * 4) && !memcmp(h2, hp, (size_t)N * 4),
                          "split path, ISA %d: %d threads differ from 1", isa, threads[k]);
        }
        /* The tile length follows the machine's L1 (split_tile_len): every
         * length gives the automatic one's bytes, on 1 and 2 threads (odd
         * lengths leave the two-step kernels a tail). */
        const int64_t tiles[] = { 256, 512, 2048, 99 };
        for (int k = 0; k < 8; k++) {
            tu_set_threads(1 + k % 2);
            ssm_scan_args b = prob_args(&p, y2, h2);
            ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SPLIT, tiles[k / 2], isa),
                             SSM_OK);
            ck_assert_msg(!memcmp(y2, yp, (size_t)L * 4) && !memcmp(h2, hp, (size_t)N * 4),
                          "split path, ISA %d: tiles of %d steps on %d threads differ",
                          isa, (int)tiles[k / 2], 1 + k % 2);
        }
        /* Called from inside a parallel region, where its own region gets
         * one thread (nesting off) though two are asked for: the same
         * bytes, and no wait for a second thread that never comes. */
        tu_set_threads(2);
#ifdef _OPENMP
        const int levels = omp_get_max_active_levels();
        omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
#endif
        {
            if (ssmi_thread_num() == 0) {
                ssm_scan_args b = prob_args(&p, y2, h2);
                ck_assert_int_eq(ssmi_selective_scan_ex(&b, SSM_SCAN_PATH_SPLIT, 0, isa), SSM_OK);
            }
        }
#ifdef _OPENMP
        omp_set_max_active_levels(levels);
#endif
        ck_assert_msg(!memcmp(y2, yp, (size_t)L * 4) && !memcmp(h2, hp, (size_t)N * 4),
                      "split path, ISA %d: nested call differs", isa);
    }
    /* Only one channel with dstate a multiple of 16 may take it. */
    prob q;
    prob_make(&q, 1, 2, 16, 64, 1, 9);
    float *yq = tu_alloc(128, sizeof(float));
    ssm_scan_args d = prob_args(&q, yq, NULL);
    ck_assert_int_eq(ssmi_selective_scan_ex(&d, SSM_SCAN_PATH_SPLIT, 0, SSM_SCAN_ISA_AUTO), SSM_ERR_ARG);
    ck_assert_int_eq(ssmi_selective_scan_ex(&d, 4, 0, SSM_SCAN_ISA_AUTO), SSM_ERR_ARG);
    free(yq);
    prob_free(&q);
    free(yr); free(ys); free(hs); free(yp); free(hp); free(y2); free(h2);
    prob_free(&p);
}
END_TEST

START_TEST(path_choice_depends_on_shapes_only)
{
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1, 16, 1 << 22), SSM_SCAN_PATH_SPLIT);
    /* test_concurrency's shapes for the split and chunked paths */
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1, 16, 40000), SSM_SCAN_PATH_SPLIT);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 4, 16, 40000), SSM_SCAN_PATH_CHUNKED);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 4, 16, 1 << 22), SSM_SCAN_PATH_CHUNKED);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1536, 16, 2048), SSM_SCAN_PATH_SEQ);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1, 16, 1), SSM_SCAN_PATH_SEQ);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1, 8, 1 << 22), SSM_SCAN_PATH_CHUNKED);
    ck_assert_int_eq(ssmi_scan_auto_path(1, 1, 24, 1 << 22), SSM_SCAN_PATH_CHUNKED);
    ck_assert_int_le(ssmi_scan_auto_chunk(1 << 22) * 2048, (int64_t)1 << 22);
    ck_assert_int_ge(ssmi_scan_auto_chunk(1 << 30) * 2048, (int64_t)1 << 30);
}
END_TEST

/* ------------------------ test 5: convolution mode == recurrent mode --- */

START_TEST(scan_equals_convolution_mode)
{
    /* delta, B, C constant over time and over batch rows, no z, no h0, no
     * softplus: the scan is LTI per channel, with kernel
     * K[l] = sum_n C_n exp(dt A_n)^l dt B_n (exp: the scan's own). */
    const int64_t Bn = 2, dim = 3, N = 16, L = 16384;
    tu_rng r = { 5 };
    float *u = tu_alloc((size_t)(Bn * dim * L), sizeof(float));
    float *delta = tu_alloc((size_t)(Bn * dim * L), sizeof(float));
    float *B = tu_alloc((size_t)(Bn * N * L), sizeof(float)), *C = tu_alloc((size_t)(Bn * N * L), sizeof(float));
    float *A = tu_alloc((size_t)(dim * N), sizeof(float)), D[3], dt[3];
    float Bc[16], Cc[16];
    float *y = tu_alloc((size_t)(Bn * dim * L), sizeof(float)), *yc = tu_alloc((size_t)(Bn * dim * L), sizeof(float));
    tu_fill_normal_f(&r, u, Bn * dim * L, 1.0);
    tu_fill_normal_f(&r, Bc, N, 1.0);
    tu_fill_normal_f(&r, Cc, N, 1.0);
    tu_fill_normal_f(&r, D, dim, 1.0);
    for (int64_t i = 0; i < dim * N; i++)
        A[i] = (float)-exp(tu_range(&r, 0.0, log(16.0)));
    for (int64_t d = 0; d < dim; d++)
        dt[d] = (float)exp(tu_range(&r, log(1e-3), log(1e-1)));
    for (int64_t b = 0; b < Bn; b++) {
        for (int64_t d = 0; d < dim; d++)
            for (int64_t t = 0; t < L; t++)
                delta[(b * dim + d) * L + t] = dt[d];
        for (int64_t n = 0; n < N; n++)
            for (int64_t t = 0; t < L; t++) {
                B[(b * N + n) * L + t] = Bc[n];
                C[(b * N + n) * L + t] = Cc[n];
            }
    }
    ssm_scan_args a = { .batch = Bn, .dim = dim, .dstate = N, .len = L, .ngroups = 1,
                        .u = u, .delta = delta, .A = A, .B = B, .C = C, .D = D, .y = y };
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);

    float *K = tu_alloc((size_t)(dim * L), sizeof(float));
    double *Kd = tu_alloc((size_t)L, sizeof(double));
    double complex Ad[16], Bd[16], Cd[16];
    for (int64_t d = 0; d < dim; d++) {
        for (int64_t n = 0; n < N; n++) {
            Ad[n] = ssmi_scan_expf(dt[d] * A[d * N + n]);
            Bd[n] = (double)dt[d] * Bc[n];
            Cd[n] = Cc[n];
        }
        ck_assert_int_eq(ssm_kernel_diag(N, Ad, Bd, Cd, L, Kd), SSM_OK);
        for (int64_t l = 0; l < L; l++)
            K[d * L + l] = (float)Kd[l];
    }
    ssm_conv_plan *plan = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&plan, dim, L), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute(plan, Bn, K, D, u, yc), SSM_OK);
    ssm_conv_plan_destroy(plan);
    /* Both sides in float: the scan's recurrence rounding (~1e-6, see
     * test_scan.c) and the FFT convolution's (eps log2(2L) ~ 1e-6 of
     * ||K|| ||u||): 1e-5 normwise. */
    double e = tu_relerr_ff(y, yc, Bn * dim * L);
    printf("scan vs convolution mode, L = %lld: %.2e\n", (long long)L, e);
    TU_CHECK_ERR(e, 1e-5, "scan vs ssm_kernel_diag + ssm_conv_execute");
    free(u); free(delta); free(B); free(C); free(A); free(y); free(yc); free(K); free(Kd);
}
END_TEST

/* ------------------------------------------- test 6: a long sequence --- */

START_TEST(long_sequence_chunked_vs_sequential)
{
    const int64_t Bn = 1, dim = 4, N = 16, L = (int64_t)1 << 22;
    prob p;
    prob_make(&p, Bn, dim, N, L, 1, 8);
    ck_assert_int_eq(ssmi_scan_auto_path(Bn, dim, N, L), SSM_SCAN_PATH_CHUNKED);
    const int64_t ny = Bn * dim * L, nh = Bn * dim * N;
    float *ys = tu_alloc((size_t)ny, sizeof(float)), *yc = tu_alloc((size_t)ny, sizeof(float));
    float hs[64], hc[64];
    tu_set_threads(2);
    ssm_scan_args a = prob_args(&p, ys, hs);
    ck_assert_int_eq(ssmi_selective_scan_ex(&a, SSM_SCAN_PATH_SEQ, 0, SSM_SCAN_ISA_AUTO), SSM_OK);
    ssm_scan_args c = prob_args(&p, yc, hc);
    ck_assert_int_eq(ssm_selective_scan(&c), SSM_OK);
    /* Same rounding budget as the short cases: the memory of the recurrence
     * (<= 1000 steps here) bounds how errors accumulate, not L. */
    double e = tu_relerr_ff(yc, ys, ny), eh = tu_relerr_ff(hc, hs, nh);
    printf("len 2^22: chunked vs sequential %.2e, h_last %.2e\n", e, eh);
    /* The bound from the same distributions at length 2^16: the memory of
     * the recurrence (<= 1000 steps), not L, sets the relative error. */
    prob q;
    prob_make(&q, Bn, dim, N, (int64_t)1 << 16, 1, 8);
    double by, bh;
    ref_errbound(&q, &by, &bh);
    prob_free(&q);
    TU_CHECK_ERR(e, 2 * by, "y, len 2^22");
    TU_CHECK_ERR(eh, 2 * bh, "h_last, len 2^22");
    free(ys); free(yc);
    prob_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan-whitebox");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, exp_accuracy_max_and_mean);
    tcase_add_test(tc, exp_special_values);
    tcase_add_test(tc, decay_accuracy);
    tcase_add_test(tc, decay_special_and_every_isa);
    tcase_add_test(tc, softplus_accuracy_and_every_isa);
    tcase_add_loop_test(tc, paths_isas_threads, 0, (int)(sizeof path_shapes / sizeof path_shapes[0]));
    tcase_add_loop_test(tc, seq_path_same_bytes_every_isa, 0,
                        (int)(sizeof isa_shapes / sizeof isa_shapes[0]));
    tcase_add_loop_test(tc, seq_units_threads_isas, 0,
                        (int)(sizeof unit_shapes / sizeof unit_shapes[0]));
    tcase_add_test(tc, seq_streamed_output_same_bytes);
    tcase_add_loop_test(tc, split_path_vs_reference_and_threads, 0,
                        (int)(sizeof split_shapes / sizeof split_shapes[0]));
    tcase_add_test(tc, path_choice_depends_on_shapes_only);
    tcase_add_test(tc, scan_equals_convolution_mode);
    tcase_add_test(tc, long_sequence_chunked_vs_sequential);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
