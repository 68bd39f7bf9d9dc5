/*
 * test_scan.c -- the selective scan (Mamba S6) and its streaming step,
 * black-box: against a literal double-precision loop of API.md's recurrence,
 * Mamba's golden case, step-vs-scan and split-vs-whole bit identity, thread
 * count independence, and every bad argument of both functions.
 */
#include <ssm.h>
#include "testutil.h"
#include "scan_errbound.h"

/* ---------------------------------------------------------- problem --- */

typedef struct prob {
    int64_t batch, dim, dstate, len, ngroups;
    float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0;
    int softplus;
} prob;

enum { OPT_D = 1, OPT_Z = 2, OPT_BIAS = 4, OPT_SP = 8, OPT_H0 = 16, OPT_ALL = 31 };

/* Mamba-like ranges: A = -exp(U), U ~ U(0, log 16) (S4D-real spans 1..N);
 * dt in [1e-3, 1e-1] log-uniform after softplus; u, B, C, z, D, h0 ~ N(0,1). */
static void prob_make(prob *p, int64_t batch, int64_t dim, int64_t dstate,
                      int64_t len, int64_t ngroups, int opts, uint64_t seed)
{
    tu_rng r = { seed };
    memset(p, 0, sizeof *p);
    p->batch = batch; p->dim = dim; p->dstate = dstate; p->len = len;
    p->ngroups = ngroups; p->softplus = !!(opts & OPT_SP);
    const int64_t nx = batch * dim * len, nbc = batch * ngroups * dstate * len;
    p->u = tu_alloc((size_t)nx, sizeof(float));
    p->delta = tu_alloc((size_t)nx, sizeof(float));
    p->A = tu_alloc((size_t)(dim * dstate), sizeof(float));
    p->B = tu_alloc((size_t)nbc, sizeof(float));
    p->C = tu_alloc((size_t)nbc, sizeof(float));
    tu_fill_normal_f(&r, p->u, nx, 1.0);
    tu_fill_normal_f(&r, p->B, nbc, 1.0);
    tu_fill_normal_f(&r, p->C, nbc, 1.0);
    for (int64_t i = 0; i < dim * dstate; i++)
        p->A[i] = (float)-exp(tu_range(&r, 0.0, log(16.0)));
    if (opts & OPT_BIAS) {
        p->bias = tu_alloc((size_t)dim, sizeof(float));
        for (int64_t d = 0; d < dim; d++)   /* keeps dt > 0 without softplus */
            p->bias[d] = (float)(p->softplus ? tu_range(&r, -0.1, 0.1) : tu_range(&r, 0.0, 1e-3));
    }
    for (int64_t i = 0; i < nx; i++) {
        double dt = exp(tu_range(&r, log(1e-3), log(1e-1)));
        p->delta[i] = (float)(p->softplus ? log(expm1(dt)) : dt);
    }
    if (opts & OPT_D) {
        p->D = tu_alloc((size_t)dim, sizeof(float));
        tu_fill_normal_f(&r, p->D, dim, 1.0);
    }
    if (opts & OPT_Z) {
        p->z = tu_alloc((size_t)nx, sizeof(float));
        tu_fill_normal_f(&r, p->z, nx, 1.0);
    }
    if (opts & OPT_H0) {
        p->h0 = tu_alloc((size_t)(batch * dim * dstate), sizeof(float));
        tu_fill_normal_f(&r, p->h0, batch * dim * dstate, 1.0);
    }
}

static void prob_free(prob *p)
{
    free(p->u); free(p->delta); free(p->A); free(p->B); free(p->C);
    free(p->D); free(p->z); free(p->bias); free(p->h0);
}

static ssm_scan_args prob_args(const prob *p, float *y, float *h_last)
{
    ssm_scan_args a = {
        .batch = p->batch, .dim = p->dim, .dstate = p->dstate, .len = p->len,
        .ngroups = p->ngroups, .u = p->u, .delta = p->delta, .A = p->A,
        .B = p->B, .C = p->C, .D = p->D, .z = p->z, .delta_bias = p->bias,
        .delta_softplus = p->softplus, .h0 = p->h0, .y = y, .h_last = h_last
    };
    return a;
}

/* API.md's recurrence, literally, in double. */
static void ref_scan(const prob *p, double *y, double *h_last)
{
    const int64_t N = p->dstate, L = p->len, dim = p->dim, G = p->ngroups;
    double *h = tu_alloc((size_t)N, sizeof(double));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t d = 0; d < dim; d++) {
            const int64_t g = d / (dim / G), bd = b * dim + d;
            for (int64_t n = 0; n < N; n++)
                h[n] = p->h0 ? p->h0[bd * N + n] : 0.0;
            for (int64_t t = 0; t < L; t++) {
                double x = (double)p->delta[bd * L + t] + (p->bias ? p->bias[d] : 0.0);
                double dt = p->softplus ? (x <= 20.0 ? log1p(exp(x)) : x) : x;
                double uu = p->u[bd * L + t], s = 0.0;
                for (int64_t n = 0; n < N; n++) {
                    int64_t ib = ((b * G + g) * N + n) * L + t;
                    h[n] = exp(dt * p->A[d * N + n]) * h[n] + dt * p->B[ib] * uu;
                    s += p->C[ib] * h[n];
                }
                if (p->D) s += p->D[d] * uu;
                if (p->z) {
                    double zz = p->z[bd * L + t];
                    s *= zz / (1.0 + exp(-zz));
                }
                y[bd * L + t] = s;
            }
            if (h_last)
                for (int64_t n = 0; n < N; n++)
                    h_last[bd * N + n] = h[n];
        }
    free(h);
}

/* The bound of each check: the expected float error of the instance
 * (scan_errbound.h). */
static void ref_scan_errbound(const prob *p, double *ey, double *eh)
{
    tu_scan_problem q = { p->batch, p->dim, p->dstate, p->len, p->ngroups, p->u, p->delta, p->A,
                          p->B, p->C, p->D, p->z, p->bias, p->h0, p->softplus };
    tu_scan_errbound(&q, ey, eh);
}

/* ---------------------------------------------------- test 1: reference */

/* Shapes: ones, primes, a group split, L up to 8192, dstate on and off the
 * vector width (8 / 16 lanes) so both body and tail run. */
static const int64_t ref_shapes[][5] = {
    /* batch dim dstate len ngroups-max */
    { 1, 1, 1, 1, 1 },
    { 1, 2, 1, 7, 2 },
    { 2, 6, 16, 97, 2 },
    { 3, 4, 17, 31, 2 },
    { 1, 2, 5, 131, 2 },
    { 2, 10, 8, 64, 2 },
    { 1, 2, 16, 8192, 2 },
    { 1, 4, 16, 4099, 2 },   /* long enough to take the time-chunked path */
    { 1, 2, 33, 300, 2 },
    { 2, 2, 27, 50, 2 },     /* three vectors and a tail at 8 lanes */
};

START_TEST(scan_matches_double_reference)
{
    const int64_t *s = ref_shapes[_i];
    double worst = 0.0, worst_h = 0.0;
    for (int64_t G = 1; G <= s[4]; G++) {
        if (s[1] % G)
            continue;
        for (int opts = 0; opts <= OPT_ALL; opts++) {
            prob p;
            prob_make(&p, s[0], s[1], s[2], s[3], G, opts, 1000 + (uint64_t)opts);
            const int64_t ny = s[0] * s[1] * s[3], nh = s[0] * s[1] * s[2];
            float *y = tu_alloc((size_t)ny, sizeof(float));
            float *hl = tu_alloc((size_t)nh, sizeof(float));
            double *yr = tu_alloc((size_t)ny, sizeof(double));
            double *hr = tu_alloc((size_t)nh, sizeof(double));
            ssm_scan_args a = prob_args(&p, y, hl);
            ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
            ref_scan(&p, yr, hr);
            /* The bound: the expected float error of this very instance
             * (ref_scan_errbound: rounding model over the memory of each
             * state, lambda = 6 standard deviations). */
            double e = tu_relerr_f(y, yr, ny), eh = tu_relerr_f(hl, hr, nh), by, bh;
            ref_scan_errbound(&p, &by, &bh);
            TU_CHECK_ERR(e, by, "y, shape %lld %lld %lld %lld G %lld opts %d",
                         (long long)s[0], (long long)s[1], (long long)s[2],
                         (long long)s[3], (long long)G, opts);
            TU_CHECK_ERR(eh, bh, "h_last, shape %lld %lld %lld %lld G %lld opts %d",
                         (long long)s[0], (long long)s[1], (long long)s[2],
                         (long long)s[3], (long long)G, opts);
            if (e > worst) worst = e;
            if (eh > worst_h) worst_h = eh;
            free(y); free(hl); free(yr); free(hr);
            prob_free(&p);
        }
    }
    printf("scan vs double reference, shape %lld %lld %lld %lld: worst y %.2e, h_last %.2e\n",
           (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
           worst, worst_h);
}
END_TEST

/* ------------------------------------------------------- test 2: golden */

START_TEST(scan_golden_mamba_reference)
{
    /* From Mamba's selective_scan_ref in float64 (the golden case). */
    const float u[] = { 1, -0.5f, 2, 0.3f, 0.7f, -1.2f };
    const float delta[] = { 0.1f, 0.5f, -0.3f, 1, 0, 2 };
    const float A[] = { -1, -2, -0.5f, -3 };
    const float B[] = { 1, 0.5f, -1, 0.2f, -0.3f, 0.4f };
    const float C[] = { 0.5f, 1, 0, -1, 0.25f, 2 };
    const float D[] = { 0.5f, -1 };
    const float z[] = { 0, 1, -2, 2, 0.5f, -0.5f };
    const float bias[] = { 0.1f, -0.2f };
    const double yw[] = { 0, -0.133520553679, -0.491887509896,
                          -0.342807878761, -0.080490084682, 0.127516037130 };
    const double hw[] = { -1.183387712320, 0.531617978721,
                          2.520538099169, -0.937754439901 };
    float y[6], hl[4];
    ssm_scan_args a = { .batch = 1, .dim = 2, .dstate = 2, .len = 3, .ngroups = 1,
                        .u = u, .delta = delta, .A = A, .B = B, .C = C, .D = D,
                        .z = z, .delta_bias = bias, .delta_softplus = 1,
                        .y = y, .h_last = hl };
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
    /* Six float operations deep: a few eps of the largest terms (~3). */
    for (int i = 0; i < 6; i++)
        TU_CHECK_ERR(fabs(y[i] - yw[i]), 1e-6, "y[%d] = %.9g want %.12g", i, y[i], yw[i]);
    for (int i = 0; i < 4; i++)
        TU_CHECK_ERR(fabs(hl[i] - hw[i]), 2e-6, "h_last[%d] = %.9g want %.12g", i, hl[i], hw[i]);
}
END_TEST

/* ------------------------------------- test 4: step == scan, split == whole */

static const int64_t step_shapes[][5] = {
    { 2, 6, 16, 50, 2 },
    { 1, 3, 19, 33, 1 },
    { 3, 4, 1, 20, 4 },
    { 1, 16, 8, 300, 2 },
    { 1, 40, 16, 30, 1 },    /* channel vectors (16, 8 lanes) and a row block */
    { 2, 64, 19, 20, 2 },
};

START_TEST(step_equals_scan_bitwise)
{
    const int64_t *s = step_shapes[_i];
    const int64_t Bn = s[0], dim = s[1], N = s[2], L = s[3], G = s[4];
    prob p;
    prob_make(&p, Bn, dim, N, L, G, OPT_ALL, 77);
    const int64_t ny = Bn * dim * L, nh = Bn * dim * N;
    float *y = tu_alloc((size_t)ny, sizeof(float)), *hl = tu_alloc((size_t)nh, sizeof(float));
    ssm_scan_args a = prob_args(&p, y, hl);
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);

    float *h = tu_alloc((size_t)nh, sizeof(float));
    memcpy(h, p.h0, (size_t)nh * sizeof(float));
    float *ut = tu_alloc((size_t)(Bn * dim), sizeof(float)), *dt = tu_alloc((size_t)(Bn * dim), sizeof(float));
    float *zt = tu_alloc((size_t)(Bn * dim), sizeof(float)), *yt = tu_alloc((size_t)(Bn * dim), sizeof(float));
    float *Bt = tu_alloc((size_t)(Bn * G * N), sizeof(float)), *Ct = tu_alloc((size_t)(Bn * G * N), sizeof(float));
    for (int64_t t = 0; t < L; t++) {
        for (int64_t i = 0; i < Bn * dim; i++) {
            ut[i] = p.u[i * L + t]; dt[i] = p.delta[i * L + t]; zt[i] = p.z[i * L + t];
        }
        for (int64_t i = 0; i < Bn * G * N; i++) {
            Bt[i] = p.B[i * L + t]; Ct[i] = p.C[i * L + t];
        }
        ck_assert_int_eq(ssm_selective_step(Bn, dim, N, G, h, ut, dt, p.A, Bt, Ct,
                                            p.D, zt, p.bias, 1, yt), SSM_OK);
        for (int64_t i = 0; i < Bn * dim; i++)
            ck_assert_msg(memcmp(&yt[i], &y[i * L + t], sizeof(float)) == 0,
                          "step %lld row %lld: %.9g vs scan %.9g", (long long)t,
                          (long long)i, yt[i], y[i * L + t]);
    }
    ck_assert_msg(memcmp(h, hl, (size_t)nh * sizeof(float)) == 0, "final state differs");
    free(h); free(ut); free(dt); free(zt); free(yt); free(Bt); free(Ct); free(y); free(hl);
    prob_free(&p);
}
END_TEST

/* On the time-chunked path (few channels, long) the scan regroups the
 * products, so L steps agree with it to rounding only. */
START_TEST(step_equals_chunked_scan_to_rounding)
{
    const int64_t Bn = 1, dim = 2, N = 16, L = 5000, G = 1;
    prob p;
    prob_make(&p, Bn, dim, N, L, G, OPT_ALL, 78);
    const int64_t ny = Bn * dim * L, nh = Bn * dim * N;
    float *y = tu_alloc((size_t)ny, sizeof(float)), *hl = tu_alloc((size_t)nh, sizeof(float));
    float *ys = tu_alloc((size_t)ny, sizeof(float));
    ssm_scan_args a = prob_args(&p, y, hl);
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
    float *h = tu_alloc((size_t)nh, sizeof(float));
    memcpy(h, p.h0, (size_t)nh * sizeof(float));
    float ut[2], dt[2], zt[2], yt[2], Bt[16], Ct[16];
    for (int64_t t = 0; t < L; t++) {
        for (int64_t i = 0; i < dim; i++) {
            ut[i] = p.u[i * L + t]; dt[i] = p.delta[i * L + t]; zt[i] = p.z[i * L + t];
        }
        for (int64_t i = 0; i < N; i++) {
            Bt[i] = p.B[i * L + t]; Ct[i] = p.C[i * L + t];
        }
        ck_assert_int_eq(ssm_selective_step(Bn, dim, N, G, h, ut, dt, p.A, Bt, Ct,
                                            p.D, zt, p.bias, 1, yt), SSM_OK);
        for (int64_t i = 0; i < dim; i++)
            ys[i * L + t] = yt[i];
    }
    /* Two float evaluations of the same sums: ~1e-6 apart (see above). */
    /* Each is within the expected float error of the exact scan, so they
     * differ by at most twice that bound. */
    double by, bh;
    ref_scan_errbound(&p, &by, &bh);
    TU_CHECK_ERR(tu_relerr_ff(ys, y, ny), 2 * by, "steps vs chunked scan, y");
    TU_CHECK_ERR(tu_relerr_ff(h, hl, nh), 2 * bh, "steps vs chunked scan, h_last");
    free(y); free(hl); free(ys); free(h);
    prob_free(&p);
}
END_TEST

/* Copy time steps [t0, t1) of a [rows][L] array. */
static float *slice(const float *x, int64_t rows, int64_t L, int64_t t0, int64_t t1)
{
    float *o = tu_alloc((size_t)(rows * (t1 - t0)), sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        memcpy(o + r * (t1 - t0), x + r * L + t0, (size_t)(t1 - t0) * sizeof(float));
    return o;
}

START_TEST(split_equals_whole_bitwise)
{
    const int64_t Bn = 2, dim = 6, N = 16, L = 301, G = 3, t1 = 123;
    prob p;
    prob_make(&p, Bn, dim, N, L, G, OPT_ALL, 5);
    const int64_t ny = Bn * dim * L, nh = Bn * dim * N, rx = Bn * dim, rb = Bn * G * N;
    float *y = tu_alloc((size_t)ny, sizeof(float)), *hl = tu_alloc((size_t)nh, sizeof(float));
    ssm_scan_args a = prob_args(&p, y, hl);
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);

    float *h = tu_alloc((size_t)nh, sizeof(float));
    memcpy(h, p.h0, (size_t)nh * sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float));
    const int64_t cut[3] = { 0, t1, L };
    for (int part = 0; part < 2; part++) {
        int64_t a0 = cut[part], a1 = cut[part + 1], l = a1 - a0;
        float *u = slice(p.u, rx, L, a0, a1), *de = slice(p.delta, rx, L, a0, a1);
        float *z = slice(p.z, rx, L, a0, a1), *B = slice(p.B, rb, L, a0, a1);
        float *C = slice(p.C, rb, L, a0, a1), *yy = tu_alloc((size_t)(rx * l), sizeof(float));
        /* h0 == h_last: the state is carried in place (API.md). */
        ssm_scan_args b = { .batch = Bn, .dim = dim, .dstate = N, .len = l, .ngroups = G,
                            .u = u, .delta = de, .A = p.A, .B = B, .C = C, .D = p.D,
                            .z = z, .delta_bias = p.bias, .delta_softplus = 1,
                            .h0 = h, .y = yy, .h_last = h };
        ck_assert_int_eq(ssm_selective_scan(&b), SSM_OK);
        for (int64_t r = 0; r < rx; r++)
            memcpy(y2 + r * L + a0, yy + r * l, (size_t)l * sizeof(float));
        free(u); free(de); free(z); free(B); free(C); free(yy);
    }
    ck_assert_msg(memcmp(y, y2, (size_t)ny * sizeof(float)) == 0, "split y differs");
    ck_assert_msg(memcmp(h, hl, (size_t)nh * sizeof(float)) == 0, "split h_last differs");
    free(y); free(y2); free(hl); free(h);
    prob_free(&p);
}
END_TEST

/* -------------------------------------------- test 3: thread counts ---- */

static const int64_t thr_shapes[][5] = {
    { 2, 12, 16, 200, 2 },      /* channel-parallel path */
    { 1, 4, 16, 20000, 1 },     /* time-chunked path (few channels, long) */
    { 1, 1, 19, 9000, 1 },      /* time-chunked, dstate with a tail */
};

START_TEST(threads_give_identical_bytes)
{
    const int64_t *s = thr_shapes[_i];
    prob p;
    prob_make(&p, s[0], s[1], s[2], s[3], s[4], OPT_ALL, 9);
    const int64_t ny = s[0] * s[1] * s[3], nh = s[0] * s[1] * s[2];
    float *y1 = tu_alloc((size_t)ny, sizeof(float)), *h1 = tu_alloc((size_t)nh, sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    const int threads[] = { 1, 2, 3, 8 };
    tu_set_threads(1);
    ssm_scan_args a = prob_args(&p, y1, h1);
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
    ref_scan(&p, yr, NULL);
    double by, bh;
    ref_scan_errbound(&p, &by, &bh);
    TU_CHECK_ERR(tu_relerr_f(y1, yr, ny), by, "vs reference");
    for (int i = 1; i < 4; i++) {
        tu_set_threads(threads[i]);
        memset(y2, 0xff, (size_t)ny * sizeof(float));
        ssm_scan_args b = prob_args(&p, y2, h2);
        ck_assert_int_eq(ssm_selective_scan(&b), SSM_OK);
        ck_assert_msg(memcmp(y1, y2, (size_t)ny * sizeof(float)) == 0, "y differs at %d threads", threads[i]);
        ck_assert_msg(memcmp(h1, h2, (size_t)nh * sizeof(float)) == 0, "h_last differs at %d threads", threads[i]);
    }
    free(y1); free(y2); free(h1); free(h2); free(yr);
    prob_free(&p);
}
END_TEST

/* ----------------------------------------------- NaN propagates, no trap */

START_TEST(nonfinite_data_propagates)
{
    prob p;
    prob_make(&p, 1, 2, 16, 40, 1, OPT_ALL, 3);
    p.u[10] = NAN;           /* channel 0 from step 10 on */
    float y[80], hl[32];
    ssm_scan_args a = prob_args(&p, y, hl);
    ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
    ck_assert(isfinite(y[9]));
    ck_assert(isnan(y[10]));
    ck_assert(isnan(hl[0]));
    for (int t = 0; t < 40; t++)
        ck_assert(isfinite(y[40 + t]));   /* channel 1 untouched */
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------ bad arguments --- */

START_TEST(scan_rejects_bad_arguments)
{
    float buf[64] = { 0 };
    float y[64];
    const ssm_scan_args good = { .batch = 1, .dim = 2, .dstate = 2, .len = 2, .ngroups = 1,
                                 .u = buf, .delta = buf, .A = buf, .B = buf, .C = buf,
                                 .y = y };
    ck_assert_int_eq(ssm_selective_scan(&good), SSM_OK);
    ck_assert_int_eq(ssm_selective_scan(NULL), SSM_ERR_ARG);
    const int64_t big = INT64_MAX / 2 + 1;
    struct { const char *what; ssm_scan_args a; } bad[32];
    int nb = 0;
#define BAD(field, val) do { bad[nb].what = #field " = " #val; bad[nb].a = good; \
                             bad[nb].a.field = (val); nb++; } while (0)
    BAD(batch, 0); BAD(batch, -1); BAD(dim, 0); BAD(dim, -5); BAD(dstate, 0);
    BAD(dstate, -1); BAD(len, 0); BAD(len, INT64_MIN); BAD(ngroups, 0);
    BAD(ngroups, -2); BAD(ngroups, 3); BAD(ngroups, 4);
    BAD(batch, big); BAD(len, big); BAD(dstate, big); BAD(dim, big);
    BAD(len, INT64_MAX / 3); BAD(dstate, INT64_MAX / 3);
    BAD(u, NULL); BAD(delta, NULL); BAD(A, NULL); BAD(B, NULL); BAD(C, NULL); BAD(y, NULL);
#undef BAD
    for (int i = 0; i < nb; i++)
        ck_assert_msg(ssm_selective_scan(&bad[i].a) == SSM_ERR_ARG, "accepted %s", bad[i].what);
}
END_TEST

START_TEST(step_rejects_bad_arguments)
{
    float h[8] = { 0 }, x[8] = { 0 }, y[8];
    ck_assert_int_eq(ssm_selective_step(1, 2, 2, 1, h, x, x, x, x, x, NULL, NULL, NULL, 0, y), SSM_OK);
    const int64_t big = INT64_MAX / 2 + 1;
    struct { int64_t b, d, n, g; float *h; const float *u, *de, *A, *B, *C; float *y; } bad[] = {
        { 0, 2, 2, 1, h, x, x, x, x, x, y }, { -1, 2, 2, 1, h, x, x, x, x, x, y },
        { 1, 0, 2, 1, h, x, x, x, x, x, y }, { 1, -3, 2, 1, h, x, x, x, x, x, y },
        { 1, 2, 0, 1, h, x, x, x, x, x, y }, { 1, 2, -1, 1, h, x, x, x, x, x, y },
        { 1, 2, 2, 0, h, x, x, x, x, x, y }, { 1, 2, 2, 3, h, x, x, x, x, x, y },
        { 1, 3, 2, 2, h, x, x, x, x, x, y }, { 1, 2, 2, -1, h, x, x, x, x, x, y },
        { big, 2, 2, 1, h, x, x, x, x, x, y }, { 1, big, 2, 1, h, x, x, x, x, x, y },
        { 1, 2, big, 1, h, x, x, x, x, x, y }, { 3, 2, INT64_MAX / 4, 1, h, x, x, x, x, x, y },
        { 1, 2, 2, 1, NULL, x, x, x, x, x, y }, { 1, 2, 2, 1, h, NULL, x, x, x, x, y },
        { 1, 2, 2, 1, h, x, NULL, x, x, x, y }, { 1, 2, 2, 1, h, x, x, NULL, x, x, y },
        { 1, 2, 2, 1, h, x, x, x, NULL, x, y }, { 1, 2, 2, 1, h, x, x, x, x, NULL, y },
        { 1, 2, 2, 1, h, x, x, x, x, x, NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ssm_selective_step(bad[i].b, bad[i].d, bad[i].n, bad[i].g, bad[i].h,
                                         bad[i].u, bad[i].de, bad[i].A, bad[i].B, bad[i].C,
                                         NULL, NULL, NULL, 1, bad[i].y) == SSM_ERR_ARG,
                      "accepted case %zu", i);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, scan_matches_double_reference, 0,
                        (int)(sizeof ref_shapes / sizeof ref_shapes[0]));
    tcase_add_test(tc, scan_golden_mamba_reference);
    tcase_add_loop_test(tc, step_equals_scan_bitwise, 0,
                        (int)(sizeof step_shapes / sizeof step_shapes[0]));
    tcase_add_test(tc, step_equals_chunked_scan_to_rounding);
    tcase_add_test(tc, split_equals_whole_bitwise);
    tcase_add_loop_test(tc, threads_give_identical_bytes, 0,
                        (int)(sizeof thr_shapes / sizeof thr_shapes[0]));
    tcase_add_test(tc, nonfinite_data_propagates);
    tcase_add_test(tc, scan_rejects_bad_arguments);
    tcase_add_test(tc, step_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
