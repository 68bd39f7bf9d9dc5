/* ctest-labels: train */
/*
 * test_conv_bwd.c -- ssm_conv_backward (ssm/train.h), black-box: du, dK, dD
 * against the direct O(L^2) double sums written here, with the FFT
 * convolution's normwise bound; thread-count independence; NULL outputs
 * change no other bit; every bad argument.
 */
#include <ssm.h>
#include "testutil.h"

static double norm2_f(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Shapes: (batch, channels, L) with L 1, primes, a power of two. */
static const int64_t shapes[][3] = { {1, 1, 1}, {2, 3, 7}, {3, 2, 64}, {1, 5, 131}, {4, 3, 300} };

START_TEST(matches_direct_sums)
{
    const int64_t Bn = shapes[_i][0], H = shapes[_i][1], L = shapes[_i][2];
    tu_rng r = { 777u + (uint64_t)_i };
    const int64_t n = Bn * H * L;
    float *K = tu_alloc((size_t)(H * L), sizeof(float)), *D = tu_alloc((size_t)H, sizeof(float));
    float *u = tu_alloc((size_t)n, sizeof(float)), *dy = tu_alloc((size_t)n, sizeof(float));
    float *du = tu_alloc((size_t)n, sizeof(float)), *dK = tu_alloc((size_t)(H * L), sizeof(float));
    float *dD = tu_alloc((size_t)H, sizeof(float));
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, n, 1.0);
    tu_fill_normal_f(&r, dy, n, 1.0);
    ssm_conv_plan *p = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    int64_t N = 0;
    ck_assert_int_eq(ssm_conv_plan_info(p, NULL, NULL, &N), SSM_OK);
    ck_assert_int_eq(ssm_conv_backward(p, Bn, K, D, u, dy, du, dK, dD), SSM_OK);

    /* Error model: the FFT convolution's normwise bound per output,
     * c eps_f log2(N) ||x||_2 ||y||_2 with c = 4 (a few roundings per FFT
     * stage, forward and inverse, and the pointwise product); dK adds the
     * batch rows' bounds; the D dy term adds eps_f |D dy|. */
    const double lg = log2((double)N) + 1.0;
    double edu = 0.0, bdu = INFINITY, rdu = 0.0;
    for (int64_t b = 0; b < Bn; b++)
        for (int64_t c = 0; c < H; c++) {
            const float *g = dy + (b * H + c) * L;
            const double bound = 4.0 * FLT_EPSILON * lg * norm2_f(K + c * L, L) * norm2_f(g, L)
                                 + 2.0 * FLT_EPSILON * fabs(D[c]) * fabs(norm2_f(g, L));
            for (int64_t s = 0; s < L; s++) {
                double ref = (double)D[c] * g[s];
                for (int64_t t = s; t < L; t++) ref += (double)g[t] * K[c * L + t - s];
                const double e = fabs(du[(b * H + c) * L + s] - ref);
                if (e / bound >= rdu) { rdu = e / bound; edu = e; bdu = bound; }
            }
        }
    TU_CHECK_ERR(edu, bdu, "du  B=%lld H=%lld L=%lld", (long long)Bn, (long long)H, (long long)L);
    double edk = 0.0, bdk = INFINITY, rdk = 0.0, edd = 0.0, bdd = INFINITY, rdd = 0.0;
    for (int64_t c = 0; c < H; c++) {
        double bound = 0.0, bd = 0.0;
        for (int64_t b = 0; b < Bn; b++) {
            const double nu = norm2_f(u + (b * H + c) * L, L), ng = norm2_f(dy + (b * H + c) * L, L);
            bound += 4.0 * FLT_EPSILON * lg * nu * ng;
            bd += nu * ng;
        }
        bound += FLT_EPSILON * bd;   /* the final rounding to float */
        bd = FLT_EPSILON * bd;       /* dD: double sum rounded once */
        for (int64_t s = 0; s < L; s++) {
            double ref = 0.0;
            for (int64_t b = 0; b < Bn; b++) {
                const float *g = dy + (b * H + c) * L, *x = u + (b * H + c) * L;
                for (int64_t t = s; t < L; t++) ref += (double)g[t] * x[t - s];
            }
            const double e = fabs(dK[c * L + s] - ref);
            if (e / bound >= rdk) { rdk = e / bound; edk = e; bdk = bound; }
            if (s == 0) {
                const double ed = fabs(dD[c] - ref);
                if (ed / bd >= rdd) { rdd = ed / bd; edd = ed; bdd = bd; }
            }
        }
    }
    TU_CHECK_ERR(edk, bdk, "dK  B=%lld H=%lld L=%lld", (long long)Bn, (long long)H, (long long)L);
    TU_CHECK_ERR(edd, bdd, "dD  B=%lld H=%lld L=%lld", (long long)Bn, (long long)H, (long long)L);

    /* NULL outputs: the others keep their bytes; no D: du drops D dy. */
    float *du2 = tu_alloc((size_t)n, sizeof(float)), *dK2 = tu_alloc((size_t)(H * L), sizeof(float));
    float *dD2 = tu_alloc((size_t)H, sizeof(float));
    ck_assert_int_eq(ssm_conv_backward(p, Bn, K, D, u, dy, du2, NULL, NULL), SSM_OK);
    ck_assert(memcmp(du, du2, (size_t)n * sizeof(float)) == 0);
    ck_assert_int_eq(ssm_conv_backward(p, Bn, NULL, D, u, dy, NULL, dK2, NULL), SSM_OK);
    ck_assert(memcmp(dK, dK2, (size_t)(H * L) * sizeof(float)) == 0);
    ck_assert_int_eq(ssm_conv_backward(p, Bn, NULL, NULL, u, dy, NULL, NULL, dD2), SSM_OK);
    ck_assert(memcmp(dD, dD2, (size_t)H * sizeof(float)) == 0);
    /* Thread counts 1, 2, 3: the same bytes. */
    for (int th = 1; th <= 3; th++) {
        tu_set_threads(th);
        ck_assert_int_eq(ssm_conv_backward(p, Bn, K, D, u, dy, du2, dK2, dD2), SSM_OK);
        ck_assert(memcmp(du, du2, (size_t)n * sizeof(float)) == 0);
        ck_assert(memcmp(dK, dK2, (size_t)(H * L) * sizeof(float)) == 0);
        ck_assert(memcmp(dD, dD2, (size_t)H * sizeof(float)) == 0);
    }
    tu_set_threads(2);
    ssm_conv_plan_destroy(p);
    free(K); free(D); free(u); free(dy); free(du); free(dK); free(dD);
    free(du2); free(dK2); free(dD2);
}
END_TEST

START_TEST(bad_arguments)
{
    enum { H = 2, L = 5, B = 2 };
    float K[H * L] = { 0 }, D[H] = { 1, 1 }, u[B * H * L] = { 0 }, dy[B * H * L] = { 0 };
    float du[B * H * L], dK[H * L], dD[H];
    float Dnan[H] = { 1, NAN }, Dinf[H] = { INFINITY, 0 };
    ssm_conv_plan *p = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    const struct {
        const char *what; const ssm_conv_plan *plan; int64_t batch;
        const float *K, *D, *u, *dy; float *du;
    } cases[] = {
        { "plan NULL",        NULL, B,  K, D,    u,    dy,   du },
        { "batch 0",          p,    0,  K, D,    u,    dy,   du },
        { "batch -1",         p,    -1, K, D,    u,    dy,   du },
        { "batch overflow",   p,    INT64_MAX / 4, K, D, u, dy, du },
        { "u NULL",           p,    B,  K, D,    NULL, dy,   du },
        { "dy NULL",          p,    B,  K, D,    u,    NULL, du },
        { "K NULL, du wanted",p,    B,  NULL, D, u,    dy,   du },
        { "D NaN",            p,    B,  K, Dnan, u,    dy,   du },
        { "D inf",            p,    B,  K, Dinf, u,    dy,   du },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssm_status st = ssm_conv_backward(cases[i].plan, cases[i].batch, cases[i].K, cases[i].D,
                                          cases[i].u, cases[i].dy, cases[i].du, dK, dD);
        ck_assert_msg(st == SSM_ERR_ARG, "%s: got %d", cases[i].what, (int)st);
    }
    ssm_conv_plan_destroy(p);
}
END_TEST


/* ---- the S4D chain: ssm_conv_backward + ssm_s4d_kernel_backward -------- */

/* Double forward of one S4D channel written here (ZOH, S4D paper eq. (6)):
 * Ad = exp(dt lambda), Bd = (Ad - 1) / lambda B, K[l] = 2 Re sum C Bd Ad^l,
 * lambda = -exp(log_re) + i im, dt = exp(log_dt); then the loss
 * sum_b sum_t w[b,t] (sum_{s<=t} K[s] u[b,t-s] + D u[b,t]). */
enum { CH_N = 3, CH_L = 24, CH_B = 2 };
typedef struct chain_p { double log_re[CH_N], im[CH_N], Cr[CH_N], Ci[CH_N], log_dt, D; } chain_p;

static void chain_kernel(const chain_p *p, double *K)
{
    const double dt = exp(p->log_dt);
    for (int l = 0; l < CH_L; l++) K[l] = 0.0;
    for (int k = 0; k < CH_N; k++) {
        const double complex lam = tu_cmplx(-exp(p->log_re[k]), p->im[k]);
        const double complex Ad = cexp(dt * lam), Bd = (Ad - 1.0) / lam;
        const double complex C = tu_cmplx(p->Cr[k], p->Ci[k]);
        double complex z = 2.0 * C * Bd;
        for (int l = 0; l < CH_L; l++) { K[l] += creal(z); z *= Ad; }
    }
}

static double chain_loss(const chain_p *p, const float *u, const float *w)
{
    double K[CH_L], loss = 0.0;
    chain_kernel(p, K);
    for (int b = 0; b < CH_B; b++)
        for (int t = 0; t < CH_L; t++) {
            double y = p->D * u[b * CH_L + t];
            for (int s = 0; s <= t; s++) y += K[s] * u[b * CH_L + t - s];
            loss += (double)w[b * CH_L + t] * y;
        }
    return loss;
}

/* Every S4D parameter's gradient from the library's two backward passes,
 * chained as docs/training.md says, against central differences of the
 * double forward above (h = 1e-5: truncation ~h^2, rounding ~1e-16/h,
 * both below 1e-9 here).  The library's error comes from the float FFT in
 * dK: per element at most e = 4 eps_f (log2 N + 1) sum_b ||u_b|| ||w_b||
 * (+ eps_f |dK| for the final rounding), which reaches a parameter through
 * its kernel column J = dK/dparam as at most sqrt(L) e ||J||_2. */
START_TEST(s4d_chain_matches_finite_differences)
{
    tu_rng r = { 4242u };
    float u[CH_B * CH_L], w[CH_B * CH_L];
    tu_fill_normal_f(&r, u, CH_B * CH_L, 1.0);
    tu_fill_normal_f(&r, w, CH_B * CH_L, 1.0);
    chain_p p;
    for (int k = 0; k < CH_N; k++) {
        p.log_re[k] = log(0.5) + 0.3 * tu_normal(&r);
        p.im[k] = 3.14159265358979 * k + 0.2 * tu_normal(&r);
        p.Cr[k] = tu_normal(&r); p.Ci[k] = tu_normal(&r);
    }
    p.log_dt = log(0.05); p.D = 0.7;

    double Kd[CH_L];
    float K[CH_L], D = (float)p.D, dK[CH_L], dD = 0.0f;
    chain_kernel(&p, Kd);
    for (int l = 0; l < CH_L; l++) K[l] = (float)Kd[l];
    ssm_conv_plan *plan = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&plan, 1, CH_L), SSM_OK);
    int64_t N = 0;
    ck_assert_int_eq(ssm_conv_plan_info(plan, NULL, NULL, &N), SSM_OK);
    /* u, w are [B][1][L] */
    ck_assert_int_eq(ssm_conv_backward(plan, CH_B, K, &D, u, w, NULL, dK, &dD), SSM_OK);
    ssm_conv_plan_destroy(plan);

    ssm_cdouble lam[CH_N], B[CH_N], C2[CH_N], dlam[CH_N], dB[CH_N], dC2[CH_N];
    for (int k = 0; k < CH_N; k++) {
        lam[k] = tu_cmplx(-exp(p.log_re[k]), p.im[k]);
        B[k] = 1.0;
        C2[k] = tu_cmplx(2.0 * p.Cr[k], 2.0 * p.Ci[k]);
    }
    double dKd[CH_L], ddt = 0.0, dKn = 0.0;
    for (int l = 0; l < CH_L; l++) { dKd[l] = dK[l]; dKn += dKd[l] * dKd[l]; }
    const double dt = exp(p.log_dt);
    ck_assert_int_eq(ssm_s4d_kernel_backward(SSM_ZOH, CH_N, lam, B, C2, dt, CH_L, dKd,
                                             dlam, dB, dC2, &ddt), SSM_OK);
    double nuw = 0.0;
    for (int b = 0; b < CH_B; b++) {
        double a = 0.0, c = 0.0;
        for (int t = 0; t < CH_L; t++) { a += (double)u[b * CH_L + t] * u[b * CH_L + t];
                                          c += (double)w[b * CH_L + t] * w[b * CH_L + t]; }
        nuw += sqrt(a * c);
    }
    const double e_el = 4.0 * FLT_EPSILON * (log2((double)N) + 1.0) * nuw + FLT_EPSILON * sqrt(dKn);
    const double h = 1e-5;
    double worst = 0.0, werr = 0.0, wbound = 1.0;
    const char *wname = "";
    for (int q = 0; q < 4 * CH_N + 2; q++) {
        double *x; double g; const char *name;
        const int k = q % CH_N;
        if (q < CH_N)          { x = &p.log_re[k]; g = creal(lam[k]) * creal(dlam[k]); name = "log_re"; }
        else if (q < 2 * CH_N) { x = &p.im[k]; g = cimag(dlam[k]); name = "im"; }
        else if (q < 3 * CH_N) { x = &p.Cr[k]; g = 2.0 * creal(dC2[k]); name = "Re C"; }
        else if (q < 4 * CH_N) { x = &p.Ci[k]; g = 2.0 * cimag(dC2[k]); name = "Im C"; }
        else if (q == 4 * CH_N) { x = &p.log_dt; g = dt * ddt; name = "log_dt"; }
        else                   { x = &p.D; g = dD; name = "D"; }
        const double x0 = *x;
        double Kp[CH_L], Km[CH_L];
        *x = x0 + h; const double lp = chain_loss(&p, u, w); chain_kernel(&p, Kp);
        *x = x0 - h; const double lm = chain_loss(&p, u, w); chain_kernel(&p, Km);
        *x = x0;
        const double fd = (lp - lm) / (2.0 * h);
        double jn = 0.0;
        for (int l = 0; l < CH_L; l++) { const double j = (Kp[l] - Km[l]) / (2.0 * h); jn += j * j; }
        /* D: the dD double sum rounded once to float */
        const double bound = q == 4 * CH_N + 1 ? FLT_EPSILON * (nuw + fabs(fd)) + 1e-8
                                               : sqrt((double)CH_L) * e_el * sqrt(jn) + 1e-8;
        const double err = fabs(g - fd);
        if (err / bound >= worst) { worst = err / bound; werr = err; wbound = bound; wname = name; }
        ck_assert_msg(err <= bound, "%s[%d]: analytic %.9g, finite differences %.9g", name, k, g, fd);
    }
    TU_CHECK_ERR(werr, wbound, "S4D chain (worst: %s), n=%d L=%d B=%d", wname, CH_N, CH_L, CH_B);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, matches_direct_sums, 0, (int)(sizeof shapes / sizeof shapes[0]));
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, s4d_chain_matches_finite_differences);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
