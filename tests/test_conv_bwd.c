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

int main(void)
{
    Suite *s = suite_create("conv_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, matches_direct_sums, 0, (int)(sizeof shapes / sizeof shapes[0]));
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
