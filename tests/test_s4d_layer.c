/* ctest-labels: s4;layer */
/*
 * test_s4d_layer.c -- convolution mode equals recurrent mode, and the S4D
 * layer.
 *
 *  - raw: ssm_kernel_diag + ssm_conv_execute against ssm_diag_scan on the
 *    same float-rounded Ad, Bd, C, for every S4D init, dt = 1e-3, 1e-2,
 *    1e-1, ZOH and bilinear, L = 16384: ||y_conv - y_rec|| / ||y_rec|| <= 1e-5;
 *  - the layer in both modes, the same bound, and its discrete parameters
 *    against an independent rounding of ssm_discretize_diag;
 *  - step = recurrent forward and split = whole, bit for bit; the kernel
 *    cache (same bytes on reuse, rebuilt when dt or L change, kept for D);
 *    concurrent forward calls; 1, 2, 3 OpenMP threads; bad arguments.
 */
#include <limits.h>
#include <pthread.h>
#include <ssm.h>
#include "testutil.h"

#define VERB(...) do { if (getenv("SSM_TEST_VERBOSE")) { printf(__VA_ARGS__); fflush(stdout); } } while (0)

static const ssm_s4d_init inits[] = {SSM_S4D_LEGS, SSM_S4D_LIN, SSM_S4D_INV, SSM_S4D_REAL};
static const char *init_name[] = {"LEGS", "LIN", "INV", "REAL"};
static const double dts[] = {1e-3, 1e-2, 1e-1};

/* The bound for conv vs recurrent in float at L = 16384.  Expected:
 * the FFT path is within ~eps log2(N) ~ 2e-6 of the exact convolution of
 * the float kernel, the kernel within eps of the exact one of the float
 * parameters, and the recurrence accumulates ~eps per step over its memory
 * 1/(dt |Re lambda|) steps as a random walk (~eps sqrt(2000) ~ 5e-6 at
 * dt = 1e-3). */
#define CONV_REC_TOL 1e-5

/* Promote float parameters to double in a separate, non-inlined function:
 * GCC 12.2's SLP vectorizer at -O2 folds the round trip
 * (double)(float)x back to x when both happen in one loop, which would hand
 * ssm_kernel_diag the unrounded values (reproduced on this toolchain). */
__attribute__((noinline))
static void promote_cf(const float complex *a, int64_t n, double complex *p)
{
    for (int64_t k = 0; k < n; k++) p[k] = tu_cmplx(crealf(a[k]), cimagf(a[k]));
}

/* ---- raw pipeline: ssm_kernel_diag + ssm_conv_execute vs ssm_diag_scan -- */

START_TEST(test_raw_conv_equals_scan)
{
    const int ii = _i / 6, di = (_i / 2) % 3;
    const ssm_disc disc = _i % 2 ? SSM_BILINEAR : SSM_ZOH;
    const int64_t H = 2, n = 32, L = 16384, Bt = 2;
    const double dt = dts[di];
    tu_rng r = {900 + (uint64_t)_i};
    double complex *lam = tu_alloc((size_t)n, sizeof *lam);
    double complex *Bc = tu_alloc((size_t)n, sizeof *Bc);
    double complex *ad = tu_alloc((size_t)n, sizeof *ad), *bd = tu_alloc((size_t)n, sizeof *bd);
    double complex *p = tu_alloc((size_t)(3 * n), sizeof *p);
    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *C = tu_alloc((size_t)(H * n), sizeof *C);
    double *kd = tu_alloc((size_t)L, sizeof *kd);
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(Bt * H * L), sizeof *u);
    float *y1 = tu_alloc((size_t)(Bt * H * L), sizeof *y1);
    float *y2 = tu_alloc((size_t)(Bt * H * L), sizeof *y2);
    ck_assert_int_eq(ssm_s4d_lambda(inits[ii], n, lam), SSM_OK);
    const double cs = inits[ii] == SSM_S4D_REAL ? 1.0 : 2.0;
    for (int64_t k = 0; k < n; k++) Bc[k] = 1.0;
    for (int64_t c = 0; c < H; c++) {
        ck_assert_int_eq(ssm_discretize_diag(disc, n, lam, Bc, dt * (1.0 + 0.3 * (double)c), ad, bd), SSM_OK);
        for (int64_t k = 0; k < n; k++) {
            Ad[c * n + k] = (float complex)ad[k];
            Bd[c * n + k] = (float complex)bd[k];
            const double cre = tu_normal(&r), cim = tu_normal(&r);
            C[c * n + k] = (float complex)(cs * sqrt(0.5) * tu_cmplx(cre, cim));
        }
        promote_cf(Ad + c * n, n, p);
        promote_cf(Bd + c * n, n, p + n);
        promote_cf(C + c * n, n, p + 2 * n);
        ck_assert_int_eq(ssm_kernel_diag(n, p, p + n, p + 2 * n, L, kd), SSM_OK);
        for (int64_t t = 0; t < L; t++) K[c * L + t] = (float)kd[t];
    }
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, Bt * H * L, 1.0);
    ssm_conv_plan *pl = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&pl, H, L), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute(pl, Bt, K, D, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_diag_scan(Bt, H, n, L, Ad, Bd, C, D, u, NULL, NULL, y2), SSM_OK);
    const double e = tu_relerr_ff(y1, y2, Bt * H * L);
    VERB("raw %s dt=%g %s: conv vs scan %.3e (tol %.0e)\n", init_name[ii], dt,
         disc == SSM_ZOH ? "ZOH" : "BIL", e, CONV_REC_TOL);
    TU_CHECK_ERR(e, CONV_REC_TOL, "raw %s dt=%g disc=%d conv vs scan", init_name[ii], dt, (int)disc);
    ssm_conv_plan_destroy(pl);
    free(lam); free(Bc); free(ad); free(bd); free(p); free(Ad); free(Bd); free(C);
    free(kd); free(K); free(D); free(u); free(y1); free(y2);
}
END_TEST

/* ---- the layer in both modes ------------------------------------------ */

START_TEST(test_layer_conv_equals_recurrent)
{
    const int ii = _i / 6, di = (_i / 2) % 3;
    const ssm_disc disc = _i % 2 ? SSM_BILINEAR : SSM_ZOH;
    const int64_t H = 3, n = 32, L = 16384, Bt = 2;
    ssm_s4d_layer *ly = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, inits[ii], disc, 7 + (uint64_t)_i), SSM_OK);
    double dt[3] = {dts[di], dts[di], dts[di]};
    ck_assert_int_eq(ssm_s4d_layer_set_params(ly, NULL, dt, NULL, NULL, NULL), SSM_OK);

    /* The discrete parameters are the float rounding of ssm_discretize_diag
     * (computed here independently from the layer's continuous ones). */
    double complex *lam = tu_alloc((size_t)(H * n), sizeof *lam);
    double complex *Bc = tu_alloc((size_t)(H * n), sizeof *Bc);
    double complex *Cc = tu_alloc((size_t)(H * n), sizeof *Cc);
    double complex *ad = tu_alloc((size_t)n, sizeof *ad), *bd = tu_alloc((size_t)n, sizeof *bd);
    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *Ce = tu_alloc((size_t)(H * n), sizeof *Ce);
    ck_assert_int_eq(ssm_s4d_layer_get_params(ly, lam, NULL, Bc, Cc, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(ly, Ad, Bd, Ce), SSM_OK);
    const double cs = inits[ii] == SSM_S4D_REAL ? 1.0 : 2.0;
    for (int64_t c = 0; c < H; c++) {
        ck_assert_int_eq(ssm_discretize_diag(disc, n, lam + c * n, Bc + c * n, dt[c], ad, bd), SSM_OK);
        for (int64_t k = 0; k < n; k++) {
            ck_assert(Ad[c * n + k] == (float complex)ad[k]);
            ck_assert(Bd[c * n + k] == (float complex)bd[k]);
            ck_assert(Ce[c * n + k] == (float complex)(cs * Cc[c * n + k]));
        }
    }

    tu_rng r = {3 + (uint64_t)_i};
    float *u = tu_alloc((size_t)(Bt * H * L), sizeof *u);
    float *y1 = tu_alloc((size_t)(Bt * H * L), sizeof *y1);
    float *y2 = tu_alloc((size_t)(Bt * H * L), sizeof *y2);
    tu_fill_normal_f(&r, u, Bt * H * L, 1.0);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_CONV, Bt, L, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, Bt, L, u, y2), SSM_OK);
    const double e = tu_relerr_ff(y1, y2, Bt * H * L);
    VERB("layer %s dt=%g %s: conv vs recurrent %.3e (tol %.0e)\n", init_name[ii], dts[di],
         disc == SSM_ZOH ? "ZOH" : "BIL", e, CONV_REC_TOL);
    TU_CHECK_ERR(e, CONV_REC_TOL, "layer %s dt=%g disc=%d conv vs recurrent", init_name[ii], dts[di], (int)disc);
    ssm_s4d_layer_destroy(ly);
    free(lam); free(Bc); free(Cc); free(ad); free(bd); free(Ad); free(Bd); free(Ce);
    free(u); free(y1); free(y2);
}
END_TEST

/* Default initialisation: lambda from ssm_s4d_lambda, dt in [1e-3, 1e-1],
 * B = 1, seeded (same seed same layer).  The kernel against direct powers
 * of the float parameters in long double: |K - Kref| <= 4 eps_f sum|terms|
 * (one float rounding of an accurate double kernel). */
START_TEST(test_layer_defaults_kernel)
{
    const int64_t H = 4, n = 16, L = 300;
    ssm_s4d_layer *a = NULL, *b = NULL, *c2 = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&a, H, n, SSM_S4D_INV, SSM_ZOH, 11), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_create(&b, H, n, SSM_S4D_INV, SSM_ZOH, 11), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_create(&c2, H, n, SSM_S4D_INV, SSM_ZOH, 12), SSM_OK);
    double complex *la = tu_alloc((size_t)(H * n), sizeof *la), *lb = tu_alloc((size_t)n, sizeof *lb);
    double complex *Ba = tu_alloc((size_t)(H * n), sizeof *Ba);
    double complex *Ca = tu_alloc((size_t)(H * n), sizeof *Ca), *Cb = tu_alloc((size_t)(H * n), sizeof *Cb);
    double dta[4], dtb[4];
    float Da[4], Db[4];
    ck_assert_int_eq(ssm_s4d_layer_get_params(a, la, dta, Ba, Ca, Da), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_get_params(b, NULL, dtb, NULL, Cb, Db), SSM_OK);
    ck_assert(memcmp(dta, dtb, sizeof dta) == 0 && memcmp(Da, Db, sizeof Da) == 0 &&
              memcmp(Ca, Cb, sizeof(double complex) * (size_t)(H * n)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_get_params(c2, NULL, dtb, NULL, Cb, NULL), SSM_OK);
    ck_assert(memcmp(dta, dtb, sizeof dta) != 0);
    ck_assert_int_eq(ssm_s4d_lambda(SSM_S4D_INV, n, lb), SSM_OK);
    for (int64_t c = 0; c < H; c++) {
        ck_assert_msg(dta[c] >= 1e-3 && dta[c] <= 1e-1, "dt[%lld] = %g", (long long)c, dta[c]);
        for (int64_t k = 0; k < n; k++) {
            ck_assert(la[c * n + k] == lb[k]);
            ck_assert(Ba[c * n + k] == 1.0);
        }
    }
    int64_t hh, nn;
    ssm_s4d_init in;
    ssm_disc ds;
    ck_assert_int_eq(ssm_s4d_layer_info(a, &hh, &nn, &in, &ds), SSM_OK);
    ck_assert(hh == H && nn == n && in == SSM_S4D_INV && ds == SSM_ZOH);

    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *Ce = tu_alloc((size_t)(H * n), sizeof *Ce);
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(a, Ad, Bd, Ce), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_kernel(a, L, K), SSM_OK);
    double worst = 0;
    for (int64_t c = 0; c < H; c++) {
        for (int64_t t = 0; t < L; t++) {
            long double s = 0, sa = 0;
            for (int64_t k = 0; k < n; k++) {
                long double complex z = (long double complex)Ce[c * n + k] * Bd[c * n + k] *
                                        cpowl((long double complex)Ad[c * n + k], (long double)t);
                s += creall(z);
                sa += cabsl(z);
            }
            const double ratio = fabs((double)K[c * L + t] - (double)s) /
                                 ((double)FLT_EPSILON * (double)sa + 1e-300);
            if (ratio > worst) worst = ratio;
        }
    }
    VERB("layer kernel vs direct powers: ratio %.3g (tol 4)\n", worst);
    TU_CHECK_ERR(worst, 4.0, "layer kernel vs long double powers, |err| / (eps sum|terms|)");
    ssm_s4d_layer_destroy(a);
    ssm_s4d_layer_destroy(b);
    ssm_s4d_layer_destroy(c2);
    ssm_s4d_layer_destroy(NULL);
    free(la); free(lb); free(Ba); free(Ca); free(Cb); free(Ad); free(Bd); free(Ce); free(K);
}
END_TEST

/* Step L times = recurrent forward = forward_state from zeros; halves with
 * the state carried = the whole: bit for bit. */
START_TEST(test_layer_step_split)
{
    const int64_t H = 3, n = 10, L = 200, L1 = 77, L2 = L - L1, Bt = 2;
    ssm_s4d_layer *ly = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, inits[_i], _i % 2 ? SSM_BILINEAR : SSM_ZOH, 5), SSM_OK);
    tu_rng r = {17};
    float *u = tu_alloc((size_t)(Bt * H * L), sizeof *u);
    float *yf = tu_alloc((size_t)(Bt * H * L), sizeof *yf);
    float *yst = tu_alloc((size_t)(Bt * H * L), sizeof *yst);
    float *ysp = tu_alloc((size_t)(Bt * H * L), sizeof *ysp);
    float *u1 = tu_alloc((size_t)(Bt * H * L1), sizeof *u1), *u2 = tu_alloc((size_t)(Bt * H * L2), sizeof *u2);
    float *y1 = tu_alloc((size_t)(Bt * H * L1), sizeof *y1), *y2 = tu_alloc((size_t)(Bt * H * L2), sizeof *y2);
    float ut[6], yt[6];
    float complex *x = tu_alloc((size_t)(Bt * H * n), sizeof *x);
    float complex *xw = tu_alloc((size_t)(Bt * H * n), sizeof *xw);
    float complex *xh = tu_alloc((size_t)(Bt * H * n), sizeof *xh);
    tu_fill_normal_f(&r, u, Bt * H * L, 1.0);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, Bt, L, u, yf), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward_state(ly, NULL, xw, Bt, L, u, yst), SSM_OK);
    ck_assert_msg(memcmp(yf, yst, sizeof(float) * (size_t)(Bt * H * L)) == 0, "forward_state != forward");
    for (int64_t t = 0; t < L; t++) {
        for (int64_t row = 0; row < Bt * H; row++) ut[row] = u[row * L + t];
        ck_assert_int_eq(ssm_s4d_layer_step(ly, x, Bt, ut, yt), SSM_OK);
        for (int64_t row = 0; row < Bt * H; row++) yst[row * L + t] = yt[row];
    }
    ck_assert_msg(memcmp(yf, yst, sizeof(float) * (size_t)(Bt * H * L)) == 0, "step != forward");
    ck_assert_msg(memcmp(x, xw, sizeof(float complex) * (size_t)(Bt * H * n)) == 0, "step state != forward_state");
    for (int64_t row = 0; row < Bt * H; row++) {
        memcpy(u1 + row * L1, u + row * L, sizeof(float) * (size_t)L1);
        memcpy(u2 + row * L2, u + row * L + L1, sizeof(float) * (size_t)L2);
    }
    ck_assert_int_eq(ssm_s4d_layer_forward_state(ly, NULL, xh, Bt, L1, u1, y1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward_state(ly, xh, xh, Bt, L2, u2, y2), SSM_OK);
    for (int64_t row = 0; row < Bt * H; row++) {
        memcpy(ysp + row * L, y1 + row * L1, sizeof(float) * (size_t)L1);
        memcpy(ysp + row * L + L1, y2 + row * L2, sizeof(float) * (size_t)L2);
    }
    ck_assert_msg(memcmp(yf, ysp, sizeof(float) * (size_t)(Bt * H * L)) == 0, "split != whole");
    ck_assert_msg(memcmp(xh, xw, sizeof(float complex) * (size_t)(Bt * H * n)) == 0, "split state != whole");
    ssm_s4d_layer_destroy(ly);
    free(u); free(yf); free(yst); free(ysp); free(u1); free(u2); free(y1); free(y2);
    free(x); free(xw); free(xh);
}
END_TEST

/* The cache: reuse gives the same bytes; a new dt or L rebuilds (the bytes
 * of a fresh layer with those parameters); a new D alone keeps the kernel
 * and applies the new D. */
START_TEST(test_layer_cache)
{
    const int64_t H = 3, n = 8, L = 500, L2 = 333;
    ssm_s4d_layer *a = NULL, *b = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&a, H, n, SSM_S4D_LIN, SSM_ZOH, 21), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_create(&b, H, n, SSM_S4D_LIN, SSM_ZOH, 21), SSM_OK);
    tu_rng r = {8};
    float *u = tu_alloc((size_t)(H * L), sizeof *u);
    float *y1 = tu_alloc((size_t)(H * L), sizeof *y1), *y2 = tu_alloc((size_t)(H * L), sizeof *y2);
    float *yr = tu_alloc((size_t)(H * L), sizeof *yr);
    tu_fill_normal_f(&r, u, H * L, 1.0);
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_CONV, 1, L, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_CONV, 1, L, u, y2), SSM_OK);
    ck_assert(memcmp(y1, y2, sizeof(float) * (size_t)(H * L)) == 0);
    /* L changes and back */
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_CONV, 1, L2, u, y2), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(b, SSM_MODE_CONV, 1, L2, u, y1), SSM_OK);
    ck_assert(memcmp(y1, y2, sizeof(float) * (size_t)(H * L2)) == 0);
    /* new dt on a (cached at L2), fresh computation on b after the same set */
    double dt[3] = {0.05, 0.002, 0.011};
    ck_assert_int_eq(ssm_s4d_layer_set_params(a, NULL, dt, NULL, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_CONV, 1, L2, u, y1), SSM_OK);
    ssm_s4d_layer_destroy(b);
    b = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&b, H, n, SSM_S4D_LIN, SSM_ZOH, 21), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_set_params(b, NULL, dt, NULL, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(b, SSM_MODE_CONV, 1, L2, u, y2), SSM_OK);
    ck_assert_msg(memcmp(y1, y2, sizeof(float) * (size_t)(H * L2)) == 0, "stale kernel after set_params(dt)");
    /* new D only: still equals the recurrent mode with the new D
     * (normwise eps log2 N + memory ~ 1e-5 as above) */
    float D[3] = {0.5f, -2.0f, 3.25f};
    ck_assert_int_eq(ssm_s4d_layer_set_params(a, NULL, NULL, NULL, NULL, D), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_CONV, 1, L2, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(a, SSM_MODE_RECURRENT, 1, L2, u, yr), SSM_OK);
    TU_CHECK_ERR(tu_relerr_ff(y1, yr, H * L2), CONV_REC_TOL, "after set_params(D)");
    ssm_s4d_layer_destroy(a);
    ssm_s4d_layer_destroy(b);
    free(u); free(y1); free(y2); free(yr);
}
END_TEST

typedef struct layer_job {
    ssm_s4d_layer *ly;
    const float *u;
    float *y;
    int64_t L;
    ssm_status st;
} layer_job;

static void *layer_thread(void *arg)
{
    layer_job *j = arg;
    for (int rep = 0; rep < 4; rep++)
        j->st |= ssm_s4d_layer_forward(j->ly, SSM_MODE_CONV, 1, j->L, j->u, j->y);
    return NULL;
}

/* Four threads at once on one layer, two of them with another L (so the
 * cache is replaced while in use): the bytes of serial calls. */
START_TEST(test_layer_concurrent)
{
    const int64_t H = 4, n = 8, La = 700, Lb = 450;
    ssm_s4d_layer *ly = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, SSM_S4D_LEGS, SSM_BILINEAR, 3), SSM_OK);
    tu_rng r = {44};
    float *u = tu_alloc((size_t)(H * La), sizeof *u);
    float *ya = tu_alloc((size_t)(H * La), sizeof *ya), *yb = tu_alloc((size_t)(H * Lb), sizeof *yb);
    float *yp[4];
    tu_fill_normal_f(&r, u, H * La, 1.0);
    tu_set_threads(2);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, La, u, ya), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, Lb, u, yb), SSM_OK);
    pthread_t th[4];
    layer_job jobs[4];
    for (int i = 0; i < 4; i++) {
        int64_t L = i % 2 ? Lb : La;
        yp[i] = tu_alloc((size_t)(H * L), sizeof(float));
        jobs[i] = (layer_job){ly, u, yp[i], L, SSM_OK};
        ck_assert_int_eq(pthread_create(&th[i], NULL, layer_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].st, SSM_OK);
        const float *ref = i % 2 ? yb : ya;
        ck_assert_msg(memcmp(yp[i], ref, sizeof(float) * (size_t)(H * jobs[i].L)) == 0,
                      "thread %d differs from the serial call", i);
        free(yp[i]);
    }
    ssm_s4d_layer_destroy(ly);
    free(u); free(ya); free(yb);
}
END_TEST

/* Identical bytes for 1, 2 and 3 OpenMP threads in both modes. */
START_TEST(test_layer_thread_counts)
{
    const int64_t H = 5, n = 12, L = 1000, Bt = 2, tot = Bt * H * L;
    tu_rng r = {55};
    float *u = tu_alloc((size_t)tot, sizeof *u);
    float *yc[3], *yr[3];
    tu_fill_normal_f(&r, u, tot, 1.0);
    for (int k = 0; k < 3; k++) {
        ssm_s4d_layer *ly = NULL;
        tu_set_threads(k + 1);
        ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, SSM_S4D_LEGS, SSM_ZOH, 9), SSM_OK);
        yc[k] = tu_alloc((size_t)tot, sizeof(float));
        yr[k] = tu_alloc((size_t)tot, sizeof(float));
        ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_CONV, Bt, L, u, yc[k]), SSM_OK);
        ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, Bt, L, u, yr[k]), SSM_OK);
        ssm_s4d_layer_destroy(ly);
    }
    for (int k = 1; k < 3; k++) {
        ck_assert_msg(memcmp(yc[0], yc[k], sizeof(float) * (size_t)tot) == 0, "conv: %d threads differ", k + 1);
        ck_assert_msg(memcmp(yr[0], yr[k], sizeof(float) * (size_t)tot) == 0, "recurrent: %d threads differ", k + 1);
    }
    tu_set_threads(1);
    for (int k = 0; k < 3; k++) { free(yc[k]); free(yr[k]); }
    free(u);
}
END_TEST

/* ---- bad arguments ----------------------------------------------------- */

START_TEST(test_layer_bad_args)
{
    const int64_t H = 2, n = 3;
    ssm_s4d_layer *ly = NULL, *lb = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, SSM_S4D_LIN, SSM_ZOH, 1), SSM_OK);
    double complex lam[6], lamn[6], lamp[6], Bz[6], Bn[6], Ci[6];
    double dt[2] = {0.01, 0.02};
    float D[2] = {1, 2}, Dn[2] = {1, NAN};
    ck_assert_int_eq(ssm_s4d_layer_get_params(ly, lam, NULL, Bz, NULL, NULL), SSM_OK);
    memcpy(lamn, lam, sizeof lam);
    memcpy(lamp, lam, sizeof lam);
    memcpy(Bn, Bz, sizeof Bz);
    memcpy(Ci, Bz, sizeof Bz);
    lamn[4] = tu_cmplx(NAN, 0);
    lamp[1] = tu_cmplx(0.25, 1);
    Bn[2] = tu_cmplx(0, INFINITY);
    Ci[5] = tu_cmplx(NAN, 0);
    double dt0[2] = {0.01, 0}, dtneg[2] = {-1, 0.01}, dtnan[2] = {NAN, 0.01}, dtinf[2] = {0.01, INFINITY};
    float u[64] = {0}, y[64];
    float complex x[64] = {0};
    float K[64];
    const int64_t BIG = INT64_MAX / 2 + 1;
    struct { const char *what; ssm_status got; } t[] = {
        {"create NULL", ssm_s4d_layer_create(NULL, H, n, SSM_S4D_LIN, SSM_ZOH, 1)},
        {"create channels 0", ssm_s4d_layer_create(&lb, 0, n, SSM_S4D_LIN, SSM_ZOH, 1)},
        {"create channels -1", ssm_s4d_layer_create(&lb, -1, n, SSM_S4D_LIN, SSM_ZOH, 1)},
        {"create n 0", ssm_s4d_layer_create(&lb, H, 0, SSM_S4D_LIN, SSM_ZOH, 1)},
        {"create overflow", ssm_s4d_layer_create(&lb, BIG, 4, SSM_S4D_LIN, SSM_ZOH, 1)},
        {"create init 4", ssm_s4d_layer_create(&lb, H, n, (ssm_s4d_init)4, SSM_ZOH, 1)},
        {"create init -1", ssm_s4d_layer_create(&lb, H, n, (ssm_s4d_init)-1, SSM_ZOH, 1)},
        {"create disc 4", ssm_s4d_layer_create(&lb, H, n, SSM_S4D_LIN, (ssm_disc)4, 1)},
        {"create disc -1", ssm_s4d_layer_create(&lb, H, n, SSM_S4D_LIN, (ssm_disc)-1, 1)},
        {"set NULL layer", ssm_s4d_layer_set_params(NULL, lam, dt, Bz, Bz, D)},
        {"set lambda NaN", ssm_s4d_layer_set_params(ly, lamn, dt, NULL, NULL, NULL)},
        {"set lambda Re > 0", ssm_s4d_layer_set_params(ly, lamp, dt, NULL, NULL, NULL)},
        {"set dt 0", ssm_s4d_layer_set_params(ly, NULL, dt0, NULL, NULL, NULL)},
        {"set dt < 0", ssm_s4d_layer_set_params(ly, NULL, dtneg, NULL, NULL, NULL)},
        {"set dt NaN", ssm_s4d_layer_set_params(ly, lam, dtnan, NULL, NULL, NULL)},
        {"set dt Inf", ssm_s4d_layer_set_params(ly, NULL, dtinf, NULL, NULL, NULL)},
        {"set B Inf", ssm_s4d_layer_set_params(ly, NULL, dt, Bn, NULL, NULL)},
        {"set C NaN", ssm_s4d_layer_set_params(ly, NULL, dt, NULL, Ci, NULL)},
        {"set D NaN", ssm_s4d_layer_set_params(ly, NULL, dt, NULL, NULL, Dn)},
        {"get NULL", ssm_s4d_layer_get_params(NULL, lam, NULL, NULL, NULL, NULL)},
        {"info NULL", ssm_s4d_layer_info(NULL, NULL, NULL, NULL, NULL)},
        {"discrete NULL", ssm_s4d_layer_get_discrete(NULL, NULL, NULL, NULL)},
        {"kernel NULL layer", ssm_s4d_layer_kernel(NULL, 8, K)},
        {"kernel K NULL", ssm_s4d_layer_kernel(ly, 8, NULL)},
        {"kernel L 0", ssm_s4d_layer_kernel(ly, 0, K)},
        {"kernel overflow", ssm_s4d_layer_kernel(ly, BIG, K)},
        {"fwd NULL layer", ssm_s4d_layer_forward(NULL, SSM_MODE_CONV, 1, 8, u, y)},
        {"fwd mode 2", ssm_s4d_layer_forward(ly, (ssm_mode)2, 1, 8, u, y)},
        {"fwd mode -1", ssm_s4d_layer_forward(ly, (ssm_mode)-1, 1, 8, u, y)},
        {"fwd batch 0", ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 0, 8, u, y)},
        {"fwd L 0", ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, 1, 0, u, y)},
        {"fwd L -3", ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, -3, u, y)},
        {"fwd overflow", ssm_s4d_layer_forward(ly, SSM_MODE_CONV, BIG, 8, u, y)},
        {"fwd L too large for FFT", ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, (int64_t)INT_MAX / 2 + 1, u, y)},
        {"fwd u NULL", ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, 8, NULL, y)},
        {"fwd y NULL", ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, 1, 8, u, NULL)},
        {"fst NULL layer", ssm_s4d_layer_forward_state(NULL, NULL, NULL, 1, 8, u, y)},
        {"fst batch 0", ssm_s4d_layer_forward_state(ly, NULL, NULL, 0, 8, u, y)},
        {"fst L 0", ssm_s4d_layer_forward_state(ly, NULL, NULL, 1, 0, u, y)},
        {"fst overflow", ssm_s4d_layer_forward_state(ly, NULL, NULL, 1, BIG, u, y)},
        {"fst u NULL", ssm_s4d_layer_forward_state(ly, x, x, 1, 8, NULL, y)},
        {"fst y NULL", ssm_s4d_layer_forward_state(ly, x, x, 1, 8, u, NULL)},
        {"step NULL layer", ssm_s4d_layer_step(NULL, x, 1, u, y)},
        {"step batch 0", ssm_s4d_layer_step(ly, x, 0, u, y)},
        {"step batch -2", ssm_s4d_layer_step(ly, x, -2, u, y)},
        {"step overflow", ssm_s4d_layer_step(ly, x, BIG, u, y)},
        {"step x NULL", ssm_s4d_layer_step(ly, NULL, 1, u, y)},
        {"step u NULL", ssm_s4d_layer_step(ly, x, 1, NULL, y)},
        {"step y NULL", ssm_s4d_layer_step(ly, x, 1, u, NULL)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(t[i].got == SSM_ERR_ARG, "%s: got %d, want SSM_ERR_ARG", t[i].what, (int)t[i].got);
    ck_assert_ptr_eq(lb, NULL);
    /* failed set_params changed nothing */
    double dtr[2];
    float Dr[2];
    double complex lr[6];
    ck_assert_int_eq(ssm_s4d_layer_get_params(ly, lr, dtr, NULL, NULL, Dr), SSM_OK);
    ck_assert(memcmp(lr, lam, sizeof lam) == 0);
    ck_assert(dtr[0] != 0.01 || dtr[1] != 0.02);
    ck_assert(Dr[1] == Dr[1]);
    ssm_s4d_layer_destroy(ly);
}
END_TEST


/* Regression (issue 9): with EULER at a legal dt where |Ad| > 1 the conv
 * mode and ssm_s4d_layer_kernel returned SSM_ERR_NUMERIC while the
 * recurrent mode returned OK with inf/NaN.  Rule now (layer.h, Stability):
 * an unstable discretization is refused by create and set_params, so the
 * modes never disagree about errors. */
START_TEST(test_layer_euler_stability)
{
    ssm_s4d_layer *ly = (ssm_s4d_layer *)1;
    /* LIN, n = 32: |1 + dt lambda_31|^2 = (1 - dt/2)^2 + (31 pi dt)^2 > 1
     * for every dt > 1.1e-4, and create draws dt >= 1e-3. */
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, 2, 32, SSM_S4D_LIN, SSM_EULER, 5), SSM_ERR_NUMERIC);
    ck_assert_ptr_null(ly);
    /* REAL, n = 4: Ad = 1 - dt (k + 1), stable for dt <= 2/4. */
    const int64_t H = 2, n = 4, L = 4096;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, H, n, SSM_S4D_REAL, SSM_EULER, 5), SSM_OK);
    float complex Ad0[8], Ad1[8];
    double dt0[2], dt1[2];
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(ly, Ad0, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_get_params(ly, NULL, dt0, NULL, NULL, NULL), SSM_OK);
    const double bad[2] = {0.1, 0.6};   /* channel 1: Ad = 1 - 2.4 = -1.4 */
    ck_assert_int_eq(ssm_s4d_layer_set_params(ly, NULL, bad, NULL, NULL, NULL), SSM_ERR_NUMERIC);
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(ly, Ad1, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_get_params(ly, NULL, dt1, NULL, NULL, NULL), SSM_OK);
    ck_assert(memcmp(Ad0, Ad1, sizeof Ad0) == 0);      /* unchanged */
    ck_assert(memcmp(dt0, dt1, sizeof dt0) == 0);
    /* dt = 1/2 puts the last mode exactly on |Ad| = 1: still accepted. */
    const double edge[2] = {0.5, 0.45};
    ck_assert_int_eq(ssm_s4d_layer_set_params(ly, NULL, edge, NULL, NULL, NULL), SSM_OK);
    tu_rng r = {11};
    float *u = tu_alloc((size_t)(H * L), sizeof *u);
    float *y1 = tu_alloc((size_t)(H * L), sizeof *y1);
    float *y2 = tu_alloc((size_t)(H * L), sizeof *y2);
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    tu_fill_normal_f(&r, u, H * L, 1.0);
    ck_assert_int_eq(ssm_s4d_layer_kernel(ly, L, K), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_CONV, 1, L, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_forward(ly, SSM_MODE_RECURRENT, 1, L, u, y2), SSM_OK);
    for (int64_t i = 0; i < H * L; i++)
        ck_assert(isfinite(y1[i]) && isfinite(y2[i]) && isfinite(K[i]));
    /* Same bound as the other conv/recurrent comparisons (CONV_REC_TOL). */
    const double e = tu_relerr_ff(y1, y2, H * L);
    VERB("EULER REAL edge dt: conv vs recurrent %.3e (tol %.0e, ratio %.3f)\n", e,
         CONV_REC_TOL, e / CONV_REC_TOL);
    TU_CHECK_ERR(e, CONV_REC_TOL, "EULER stable edge conv vs recurrent");
    ssm_s4d_layer_destroy(ly);
    free(u); free(y1); free(y2); free(K);
}
END_TEST

static Suite *layer_suite(void)
{
    Suite *s = suite_create("s4d_layer");
    TCase *tc = tcase_create("conv_equals_recurrent");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_raw_conv_equals_scan, 0, 24);
    tcase_add_loop_test(tc, test_layer_conv_equals_recurrent, 0, 24);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("layer");
    tcase_set_timeout(tl, 600);
    tcase_add_test(tl, test_layer_defaults_kernel);
    tcase_add_loop_test(tl, test_layer_step_split, 0, 4);
    tcase_add_test(tl, test_layer_cache);
    tcase_add_test(tl, test_layer_concurrent);
    tcase_add_test(tl, test_layer_thread_counts);
    tcase_add_test(tl, test_layer_bad_args);
    tcase_add_test(tl, test_layer_euler_stability);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    return tu_run(layer_suite());
}
