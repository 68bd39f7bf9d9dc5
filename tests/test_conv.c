/* ctest-labels: s4;conv */
/*
 * test_conv.c -- the FFT convolution (ssm_conv_*) and its recurrent twin
 * (ssm_diag_scan, ssm_diag_step) against independent references: the direct
 * O(L^2) causal sum and a literal recurrence loop, both in double; FFTW-style
 * properties (linearity, impulse response, causality, time shift); bitwise
 * identities (step = scan, split = whole, spectrum path = plain path,
 * threads); and a table of bad arguments for every function.
 */
#include <limits.h>
#include <pthread.h>
#include <ssm.h>
#include "testutil.h"
#include <fftw3.h>   /* a host program's own FFTW planner calls */

#define EPSF ((double)FLT_EPSILON)

/* SSM_TEST_VERBOSE=1 prints every measured error next to its tolerance. */
#define VERB(...) do { if (getenv("SSM_TEST_VERBOSE")) { printf(__VA_ARGS__); fflush(stdout); } } while (0)

static int64_t fft_len(const ssm_conv_plan *p)
{
    int64_t N = 0;
    ck_assert_int_eq(ssm_conv_plan_info(p, NULL, NULL, &N), SSM_OK);
    return N;
}

static double norm2_f(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Direct causal sum in long double at output t of one row. */
static double direct_at(const float *K, double d, const float *u, int64_t t)
{
    long double s = 0;
    for (int64_t j = 0; j <= t; j++) s += (long double)K[j] * u[t - j];
    return (double)(s + (long double)d * u[t]);
}

/* ---- FFT convolution against the direct sum ---------------------------- */

static const int64_t conv_L[] = {1, 2, 3, 257, 4096, 65536};
#define N_CONV_L ((int)(sizeof conv_L / sizeof conv_L[0]))

/* Error model: each float FFT has a normwise relative error of about
 * eps log2(N) (FFTW computes its twiddles accurately), and so does the
 * product spectrum, so the error vector of one row is bounded by about
 * c eps log2(N) ||K||_2 ||u||_2 (+ the one rounding of D u).  Per output we
 * check |err_t| <= 30 eps log2(N) (||K||_2 ||u||_2 + |D u_t|), where
 * ||K||_2 ||u||_2 >= sum_s |K_s||u_{t-s}| for every t (Cauchy-Schwarz). */
static void check_conv_case(int64_t L, int withD)
{
    const int64_t H = 3, B = 2;
    tu_rng r = {1000 + (uint64_t)L * 7 + (uint64_t)withD};
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(B * H * L), sizeof *u);
    float *y = tu_alloc((size_t)(B * H * L), sizeof *y);
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, B * H * L, 1.0);
    ssm_conv_plan *p = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    const int64_t N = fft_len(p);
    ck_assert_msg(N >= 2 * L, "padded length %lld < 2L", (long long)N);
    ck_assert_int_eq(ssm_conv_execute(p, B, K, withD ? D : NULL, u, y), SSM_OK);
    const double lg = log2((double)N) + 1.0;
    double worst = 0, num = 0, den = 0;
    const int64_t nsamp = L <= 4096 ? L : 97;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t c = 0; c < H; c++) {
            const float *Kc = K + c * L, *ur = u + (b * H + c) * L;
            const float *yr = y + (b * H + c) * L;
            const double d = withD ? D[c] : 0.0;
            const double ku = norm2_f(Kc, L) * norm2_f(ur, L);
            tu_rng rs = {77 + (uint64_t)(b * H + c)};
            for (int64_t i = 0; i < nsamp; i++) {
                /* all outputs up to 4096; above, the ends and random ones */
                int64_t t = i;
                if (L > 4096)
                    t = i == 0 ? 0 : i == 1 ? 1 : i == 2 ? L - 1
                        : (int64_t)(tu_unif(&rs) * (double)L);
                const double ref = direct_at(Kc, d, ur, t);
                const double e = fabs((double)yr[t] - ref);
                const double ratio = e / (EPSF * lg * (ku + fabs(d * ur[t])));
                if (ratio > worst) worst = ratio;
                num += e * e;
                den += ref * ref;
            }
        }
    }
    VERB("conv L=%lld N=%lld D=%d: max ratio %.3g (tol %g), normwise %.3e (tol %.3e)\n",
         (long long)L, (long long)N, withD, worst, TU_THRESH, sqrt(num / den), TU_THRESH * EPSF * lg);
    TU_CHECK_ERR(worst, TU_THRESH, "conv L=%lld N=%lld D=%d: max |err|/(eps log2N (|K||u|+|Du|))",
                 (long long)L, (long long)N, withD);
    /* Normwise: typical error about eps log2(N) ||y||. */
    TU_CHECK_ERR(sqrt(num / den), TU_THRESH * EPSF * lg,
                 "conv L=%lld D=%d normwise relative error", (long long)L, withD);
    ssm_conv_plan_destroy(p);
    free(K); free(D); free(u); free(y);
}

START_TEST(test_conv_direct)
{
    check_conv_case(conv_L[_i / 2], _i % 2);
}
END_TEST

/* Double-precision twin against the direct sum in long double:
 * |err_t| <= 30 eps_d log2(N) (||K||_2 ||u||_2 + |D u_t|) as above. */
START_TEST(test_conv_double)
{
    const int64_t Ls[3] = {1, 257, 3000};
    const int64_t L = Ls[_i], H = 2, B = 2;
    tu_rng r = {66 + (uint64_t)_i};
    double *K = tu_alloc((size_t)(H * L), sizeof *K), *D = tu_alloc((size_t)H, sizeof *D);
    double *u = tu_alloc((size_t)(B * H * L), sizeof *u), *y = tu_alloc((size_t)(B * H * L), sizeof *y);
    tu_fill_normal_d(&r, K, H * L, 1.0);
    tu_fill_normal_d(&r, D, H, 1.0);
    tu_fill_normal_d(&r, u, B * H * L, 1.0);
    ck_assert_int_eq(ssm_conv_execute_d(B, H, L, K, D, u, y), SSM_OK);
    double worst = 0;
    for (int64_t row = 0; row < B * H; row++) {
        const int64_t c = row % H;
        double kk = 0, uu = 0;
        for (int64_t t = 0; t < L; t++) { kk += K[c * L + t] * K[c * L + t]; uu += u[row * L + t] * u[row * L + t]; }
        for (int64_t t = 0; t < L; t++) {
            long double s = (long double)D[c] * u[row * L + t];
            for (int64_t j = 0; j <= t; j++) s += (long double)K[c * L + j] * u[row * L + t - j];
            const double e = fabs(y[row * L + t] - (double)s) /
                             (DBL_EPSILON * (log2(2.0 * (double)L) + 2.0) * (sqrt(kk * uu) + fabs(D[c] * u[row * L + t])));
            if (e > worst) worst = e;
        }
    }
    VERB("conv_d L=%lld: max ratio %.3g (tol %g)\n", (long long)L, worst, TU_THRESH);
    TU_CHECK_ERR(worst, TU_THRESH, "conv_d L=%lld ratio", (long long)L);
    free(K); free(D); free(u); free(y);
}
END_TEST


/* ssm_conv_execute_d borrows its FFTW plans from a cache of 16 lengths
 * (src/s4/fft_plans.c).  Over 20 lengths, twice (so plans are evicted and
 * made again) and then from 4 threads at once on interleaved lengths, every
 * call gives the bytes of the first: a cached, a fresh and a concurrently
 * used plan compute the same thing (FFTW_ESTIMATE is deterministic). */
enum { PC_NL = 20, PC_THREADS = 4 };
static double *pc_K[PC_NL], *pc_u[PC_NL], *pc_ref[PC_NL];
static int64_t pc_L(int i) { return 37 + 61 * (int64_t)i; }
static void *pc_thread(void *arg)
{
    const int t = (int)(intptr_t)arg;
    long bad = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int i = t; i < PC_NL; i += 2) {
            const int64_t L = pc_L(i);
            double *y = malloc((size_t)(2 * L) * sizeof *y);
            if (!y || ssm_conv_execute_d(1, 2, L, pc_K[i], NULL, pc_u[i], y) != SSM_OK ||
                memcmp(y, pc_ref[i], (size_t)(2 * L) * sizeof *y) != 0)
                bad++;
            free(y);
        }
    return (void *)(intptr_t)bad;
}
START_TEST(test_conv_double_plan_cache)
{
    tu_rng r = {404};
    for (int i = 0; i < PC_NL; i++) {
        const int64_t L = pc_L(i);
        pc_K[i] = tu_alloc((size_t)(2 * L), sizeof(double));
        pc_u[i] = tu_alloc((size_t)(2 * L), sizeof(double));
        pc_ref[i] = tu_alloc((size_t)(2 * L), sizeof(double));
        tu_fill_normal_d(&r, pc_K[i], 2 * L, 1.0);
        tu_fill_normal_d(&r, pc_u[i], 2 * L, 1.0);
        ck_assert_int_eq(ssm_conv_execute_d(1, 2, L, pc_K[i], NULL, pc_u[i], pc_ref[i]), SSM_OK);
    }
    for (int i = 0; i < PC_NL; i++) {
        const int64_t L = pc_L(i);
        double *y = tu_alloc((size_t)(2 * L), sizeof *y);
        ck_assert_int_eq(ssm_conv_execute_d(1, 2, L, pc_K[i], NULL, pc_u[i], y), SSM_OK);
        ck_assert_msg(memcmp(y, pc_ref[i], (size_t)(2 * L) * sizeof *y) == 0,
                      "conv_d L=%lld: second call differs", (long long)L);
        free(y);
    }
    pthread_t th[PC_THREADS];
    for (int t = 0; t < PC_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, pc_thread, (void *)(intptr_t)(t % 2)), 0);
    for (int t = 0; t < PC_THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        ck_assert_msg((intptr_t)ret == 0, "thread %d: %ld calls differ or failed", t, (long)(intptr_t)ret);
    }
    for (int i = 0; i < PC_NL; i++) { free(pc_K[i]); free(pc_u[i]); free(pc_ref[i]); }
}
END_TEST


/* A host program plans its own FFTW transforms in two threads, without any
 * lock of its own, while two other threads run ssm_conv_execute_d over 24
 * lengths (more than the plan cache holds: the library plans and destroys
 * all the time).  libssm made the planner thread-safe when it was loaded
 * (fftw_make_planner_thread_safe, conv.h), so nothing crashes and every
 * libssm result keeps its bytes. */
enum { HP_NL = 24 };
static double *hp_K[HP_NL], *hp_u[HP_NL], *hp_ref[HP_NL];
static int64_t hp_L(int i) { return 50 + 37 * (int64_t)i; }
static void *hp_host(void *arg)
{
    const int t = (int)(intptr_t)arg;
    long bad = 0;
    double *in = fftw_malloc(4096 * sizeof(double));
    fftw_complex *out = fftw_malloc(2049 * sizeof(fftw_complex));
    for (int rep = 0; rep < 300; rep++) {
        const int n = 64 + 7 * ((rep * 13 + t * 5) % 500);
        fftw_plan p = fftw_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE);
        if (!p) bad++;
        else fftw_destroy_plan(p);
    }
    fftw_free(in);
    fftw_free(out);
    return (void *)(intptr_t)bad;
}
static void *hp_lib(void *arg)
{
    const int t = (int)(intptr_t)arg;
    long bad = 0;
    for (int rep = 0; rep < 4; rep++)
        for (int i = t; i < HP_NL; i += 2) {
            const int64_t L = hp_L(i);
            double *y = malloc((size_t)L * sizeof *y);
            if (!y || ssm_conv_execute_d(1, 1, L, hp_K[i], NULL, hp_u[i], y) != SSM_OK ||
                memcmp(y, hp_ref[i], (size_t)L * sizeof *y) != 0)
                bad++;
            free(y);
        }
    return (void *)(intptr_t)bad;
}
START_TEST(test_host_planner_threads)
{
    tu_set_threads(1);
    tu_rng r = {505};
    for (int i = 0; i < HP_NL; i++) {
        const int64_t L = hp_L(i);
        hp_K[i] = tu_alloc((size_t)L, sizeof(double));
        hp_u[i] = tu_alloc((size_t)L, sizeof(double));
        hp_ref[i] = tu_alloc((size_t)L, sizeof(double));
        tu_fill_normal_d(&r, hp_K[i], L, 1.0);
        tu_fill_normal_d(&r, hp_u[i], L, 1.0);
        ck_assert_int_eq(ssm_conv_execute_d(1, 1, L, hp_K[i], NULL, hp_u[i], hp_ref[i]), SSM_OK);
    }
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, t < 2 ? hp_host : hp_lib,
                                        (void *)(intptr_t)(t % 2)), 0);
    for (int t = 0; t < 4; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        ck_assert_msg((intptr_t)ret == 0, "thread %d (%s): %ld failures", t,
                      t < 2 ? "host planner" : "libssm", (long)(intptr_t)ret);
    }
    for (int i = 0; i < HP_NL; i++) { free(hp_K[i]); free(hp_u[i]); free(hp_ref[i]); }
}
END_TEST

/* The cached-spectrum path gives the same bytes as the plain one, and a
 * spectrum works with another plan of the same sizes. */
START_TEST(test_conv_spectrum_same_bytes)
{
    const int64_t H = 4, B = 3, L = 1000;
    tu_rng r = {5};
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(B * H * L), sizeof *u);
    float *y1 = tu_alloc((size_t)(B * H * L), sizeof *y1);
    float *y2 = tu_alloc((size_t)(B * H * L), sizeof *y2);
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, B * H * L, 1.0);
    ssm_conv_plan *p = NULL, *q = NULL;
    ssm_conv_spectrum *s = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    ck_assert_int_eq(ssm_conv_plan_create(&q, H, L), SSM_OK);
    ck_assert_int_eq(ssm_conv_spectrum_create(&s, p, K), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u, y1), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute_spectrum(q, s, B, D, u, y2), SSM_OK);
    ck_assert_msg(memcmp(y1, y2, sizeof(float) * (size_t)(B * H * L)) == 0,
                  "spectrum path differs from ssm_conv_execute");
    int64_t h = 0, l = 0;
    ck_assert_int_eq(ssm_conv_plan_info(p, &h, &l, NULL), SSM_OK);
    ck_assert(h == H && l == L);
    ssm_conv_spectrum_destroy(s);
    ssm_conv_plan_destroy(p);
    ssm_conv_plan_destroy(q);
    ssm_conv_spectrum_destroy(NULL);
    ssm_conv_plan_destroy(NULL);
    free(K); free(D); free(u); free(y1); free(y2);
}
END_TEST

/* ---- FFTW-style properties (Ergun's self-test, as libbench2) ----------- */

START_TEST(test_conv_properties)
{
    const int64_t H = 2, B = 2, L = 777;
    const int64_t n = B * H * L;
    tu_rng r = {31};
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u1 = tu_alloc((size_t)n, sizeof *u1), *u2 = tu_alloc((size_t)n, sizeof *u2);
    float *u3 = tu_alloc((size_t)n, sizeof *u3);
    float *y1 = tu_alloc((size_t)n, sizeof *y1), *y2 = tu_alloc((size_t)n, sizeof *y2);
    float *y3 = tu_alloc((size_t)n, sizeof *y3);
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u1, n, 1.0);
    tu_fill_normal_f(&r, u2, n, 1.0);
    ssm_conv_plan *p = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    const double lg = log2((double)fft_len(p)) + 1.0;
    double kn[2] = {norm2_f(K, L), norm2_f(K + L, L)};

    /* Linearity: y(a u1 + b u2) = a y(u1) + b y(u2), each side within
     * eps log2 N ||K|| (|a| ||u1|| + |b| ||u2||) per output. */
    const float a = 2.385f, bb = -0.731f;
    for (int64_t i = 0; i < n; i++) u3[i] = a * u1[i] + bb * u2[i];
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u1, y1), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u2, y2), SSM_OK);
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u3, y3), SSM_OK);
    double worst = 0;
    for (int64_t row = 0; row < B * H; row++) {
        const int64_t c = row % H;
        const double sc = kn[c] * (fabs(a) * norm2_f(u1 + row * L, L) +
                                   fabs(bb) * norm2_f(u2 + row * L, L)) +
                          fabs(D[c]) * (fabs(a) + fabs(bb)) * 5.0;
        for (int64_t t = 0; t < L; t++) {
            const int64_t i = row * L + t;
            const double e = fabs((double)y3[i] - (a * (double)y1[i] + bb * (double)y2[i]));
            if (e / (EPSF * lg * sc) > worst) worst = e / (EPSF * lg * sc);
        }
    }
    TU_CHECK_ERR(worst, TU_THRESH, "linearity ratio");

    /* Impulse response: u = delta_0 gives K + D delta_0. */
    memset(u3, 0, sizeof(float) * (size_t)n);
    for (int64_t row = 0; row < B * H; row++) u3[row * L] = 1.0f;
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u3, y3), SSM_OK);
    worst = 0;
    for (int64_t row = 0; row < B * H; row++) {
        const int64_t c = row % H;
        for (int64_t t = 0; t < L; t++) {
            const double ref = K[c * L + t] + (t == 0 ? D[c] : 0.0);
            const double e = fabs((double)y3[row * L + t] - ref);
            const double ratio = e / (EPSF * lg * (kn[c] + fabs(D[c])));
            if (ratio > worst) worst = ratio;
        }
    }
    TU_CHECK_ERR(worst, TU_THRESH, "impulse response ratio");

    /* Causality: changing u after t0 leaves y[0..t0] unchanged (to the
     * rounding of the FFT, which mixes all samples). */
    const int64_t t0 = 300;
    memcpy(u3, u1, sizeof(float) * (size_t)n);
    for (int64_t row = 0; row < B * H; row++)
        for (int64_t t = t0 + 1; t < L; t++) u3[row * L + t] += 10.0f;
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u3, y3), SSM_OK);
    worst = 0;
    double moved = 0;
    for (int64_t row = 0; row < B * H; row++) {
        const int64_t c = row % H;
        const double sc = kn[c] * (norm2_f(u1 + row * L, L) + norm2_f(u3 + row * L, L));
        for (int64_t t = 0; t < L; t++) {
            const double e = fabs((double)y3[row * L + t] - y1[row * L + t]);
            if (t <= t0) { if (e / (EPSF * lg * sc) > worst) worst = e / (EPSF * lg * sc); }
            else if (e > moved) moved = e;
        }
    }
    TU_CHECK_ERR(worst, TU_THRESH, "causality ratio (t <= t0)");
    ck_assert_msg(moved > 1.0, "the change after t0 had no effect (%g)", moved);

    /* Time shift: u delayed by s gives y delayed by s. */
    const int64_t s = 123;
    memset(u3, 0, sizeof(float) * (size_t)n);
    for (int64_t row = 0; row < B * H; row++)
        for (int64_t t = s; t < L; t++) u3[row * L + t] = u1[row * L + t - s];
    ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u3, y3), SSM_OK);
    worst = 0;
    for (int64_t row = 0; row < B * H; row++) {
        const int64_t c = row % H;
        const double sc = 2.0 * kn[c] * norm2_f(u1 + row * L, L) + fabs(D[c]) * 5.0;
        for (int64_t t = 0; t < L; t++) {
            const double ref = t < s ? 0.0 : y1[row * L + t - s];
            const double e = fabs((double)y3[row * L + t] - ref);
            if (e / (EPSF * lg * sc) > worst) worst = e / (EPSF * lg * sc);
        }
    }
    TU_CHECK_ERR(worst, TU_THRESH, "time shift ratio");

    ssm_conv_plan_destroy(p);
    free(K); free(D); free(u1); free(u2); free(u3); free(y1); free(y2); free(y3);
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

typedef struct conv_job {
    const ssm_conv_plan *p;
    const float *K, *D, *u;
    float *y;
    int64_t B;
    ssm_status st;
} conv_job;

static void *conv_thread(void *arg)
{
    conv_job *j = arg;
    for (int rep = 0; rep < 3; rep++)
        j->st |= ssm_conv_execute(j->p, j->B, j->K, j->D, j->u, j->y);
    return NULL;
}

/* Four threads at once on one plan give the bytes of serial calls. */
START_TEST(test_conv_pthreads)
{
    const int64_t H = 5, B = 2, L = 2000, n = B * H * L;
    tu_rng r = {99};
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(4 * n), sizeof *u);
    float *ys = tu_alloc((size_t)(4 * n), sizeof *ys);
    float *yp = tu_alloc((size_t)(4 * n), sizeof *yp);
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, 4 * n, 1.0);
    tu_set_threads(2);
    ssm_conv_plan *p = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u + i * n, ys + i * n), SSM_OK);
    pthread_t th[4];
    conv_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (conv_job){p, K, D, u + i * n, yp + i * n, B, SSM_OK};
        ck_assert_int_eq(pthread_create(&th[i], NULL, conv_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].st, SSM_OK);
    }
    ck_assert_msg(memcmp(ys, yp, sizeof(float) * (size_t)(4 * n)) == 0,
                  "concurrent calls differ from serial calls");
    ssm_conv_plan_destroy(p);
    free(K); free(D); free(u); free(ys); free(yp);
}
END_TEST

/* Identical bytes for 1, 2 and 3 OpenMP threads: conv, spectrum, scan. */
START_TEST(test_thread_counts)
{
    const int64_t H = 5, B = 3, L = 1500, n = 7, tot = B * H * L;
    tu_rng r = {123};
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)tot, sizeof *u);
    float *y[3], *ys[3], *yd[3];
    float complex *xl[3];
    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *C = tu_alloc((size_t)(H * n), sizeof *C);
    for (int64_t i = 0; i < H * n; i++) {
        double rad = tu_range(&r, 0.5, 0.999), ph = tu_range(&r, -3, 3);
        Ad[i] = (float complex)(rad * cexp(I * ph));
        Bd[i] = (float)tu_normal(&r) + I * (float)tu_normal(&r);
        C[i] = (float)tu_normal(&r) + I * (float)tu_normal(&r);
    }
    tu_fill_normal_f(&r, K, H * L, 1.0);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, tot, 1.0);
    ssm_conv_plan *p = NULL;
    ssm_conv_spectrum *s = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, H, L), SSM_OK);
    for (int k = 0; k < 3; k++) {
        y[k] = tu_alloc((size_t)tot, sizeof(float));
        ys[k] = tu_alloc((size_t)tot, sizeof(float));
        yd[k] = tu_alloc((size_t)tot, sizeof(float));
        xl[k] = tu_alloc((size_t)(B * H * n), sizeof(float complex));
        tu_set_threads(k + 1);
        ck_assert_int_eq(ssm_conv_spectrum_create(&s, p, K), SSM_OK);
        ck_assert_int_eq(ssm_conv_execute(p, B, K, D, u, y[k]), SSM_OK);
        ck_assert_int_eq(ssm_conv_execute_spectrum(p, s, B, D, u, ys[k]), SSM_OK);
        ck_assert_int_eq(ssm_diag_scan(B, H, n, L, Ad, Bd, C, D, u, NULL, xl[k], yd[k]), SSM_OK);
        ssm_conv_spectrum_destroy(s);
        s = NULL;
    }
    for (int k = 1; k < 3; k++) {
        ck_assert_msg(memcmp(y[0], y[k], sizeof(float) * (size_t)tot) == 0, "conv: %d threads differ", k + 1);
        ck_assert_msg(memcmp(ys[0], ys[k], sizeof(float) * (size_t)tot) == 0, "spectrum: %d threads differ", k + 1);
        ck_assert_msg(memcmp(yd[0], yd[k], sizeof(float) * (size_t)tot) == 0, "scan y: %d threads differ", k + 1);
        ck_assert_msg(memcmp(xl[0], xl[k], sizeof(float complex) * (size_t)(B * H * n)) == 0, "scan x: %d threads differ", k + 1);
    }
    ck_assert_msg(memcmp(y[0], ys[0], sizeof(float) * (size_t)tot) == 0, "spectrum path differs");
    tu_set_threads(1);
    ssm_conv_plan_destroy(p);
    for (int k = 0; k < 3; k++) { free(y[k]); free(ys[k]); free(yd[k]); free(xl[k]); }
    free(K); free(D); free(u); free(Ad); free(Bd); free(C);
}
END_TEST

/* ---- diagonal scan against a literal double loop ----------------------- */

/* Random stable system with |Ad| <= amax. */
static void rand_diag(tu_rng *r, int64_t m, double amax, float complex *Ad,
                      float complex *Bd, float complex *C)
{
    for (int64_t i = 0; i < m; i++) {
        double rad = tu_range(r, 0.3, amax), ph = tu_range(r, -3.1, 3.1);
        Ad[i] = (float complex)(rad * cexp(I * ph));
        Bd[i] = (float)tu_normal(r) + I * (float)tu_normal(r);
        C[i] = (float)tu_normal(r) + I * (float)tu_normal(r);
    }
}

static const int64_t scan_shapes[][4] = {   /* batch, channels, n, L */
    {1, 1, 1, 1}, {2, 3, 5, 37}, {1, 2, 8, 100}, {3, 2, 17, 513}, {2, 4, 64, 300},
};

/* Error model: each step rounds the state update a few times (relative
 * 3 eps), and with |Ad| <= amax those errors decay, so the state carries a
 * relative error of about 3 eps / (1 - amax); the output sum over n modes
 * adds about n eps.  Per output:
 *   |err_t| <= 30 eps (1/(1-amax) + n) (sum_k |C_k| xa_k + |D u_t|),
 * with xa the recurrence of absolute values xa = |Ad| xa + |Bd||u|. */
START_TEST(test_diag_scan_ref)
{
    const int64_t B = scan_shapes[_i][0], H = scan_shapes[_i][1];
    const int64_t n = scan_shapes[_i][2], L = scan_shapes[_i][3];
    const double amax = 0.99;
    tu_rng r = {500 + (uint64_t)_i};
    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *C = tu_alloc((size_t)(H * n), sizeof *C);
    float complex *x0 = tu_alloc((size_t)(B * H * n), sizeof *x0);
    float complex *xl = tu_alloc((size_t)(B * H * n), sizeof *xl);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(B * H * L), sizeof *u);
    float *y = tu_alloc((size_t)(B * H * L), sizeof *y);
    rand_diag(&r, H * n, amax, Ad, Bd, C);
    for (int64_t i = 0; i < B * H * n; i++)
        x0[i] = (float)tu_normal(&r) + I * (float)tu_normal(&r);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, B * H * L, 1.0);
    for (int variant = 0; variant < 2; variant++) {
        const float *Dv = variant ? D : NULL;
        const float complex *x0v = variant ? x0 : NULL;
        ck_assert_int_eq(ssm_diag_scan(B, H, n, L, Ad, Bd, C, Dv, u, x0v, xl, y), SSM_OK);
        double worst = 0, xworst = 0;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t c = 0; c < H; c++) {
                const int64_t row = b * H + c;
                double complex *x = tu_alloc((size_t)n, sizeof *x);
                double *xa = tu_alloc((size_t)n, sizeof *xa);
                for (int64_t k = 0; k < n; k++) {
                    x[k] = x0v ? (double complex)x0v[row * n + k] : 0;
                    xa[k] = cabs(x[k]);
                }
                for (int64_t t = 0; t < L; t++) {
                    const double ut = u[row * L + t];
                    double complex s = 0;
                    double sa = 0;
                    for (int64_t k = 0; k < n; k++) {
                        const int64_t ck = c * n + k;
                        x[k] = (double complex)Ad[ck] * x[k] + (double complex)Bd[ck] * ut;
                        xa[k] = cabs(Ad[ck]) * xa[k] + cabs(Bd[ck]) * fabs(ut);
                        s += (double complex)C[ck] * x[k];
                        sa += cabs(C[ck]) * xa[k];
                    }
                    const double du = Dv ? (double)Dv[c] * ut : 0.0;
                    const double ref = creal(s) + du;
                    const double tol = EPSF * (1.0 / (1.0 - amax) + (double)n) * (sa + fabs(du));
                    const double e = fabs((double)y[row * L + t] - ref) / tol;
                    if (e > worst) worst = e;
                }
                for (int64_t k = 0; k < n; k++) {
                    const double tol = EPSF * (1.0 / (1.0 - amax)) * (xa[k] + 1e-30);
                    const double e = cabs((double complex)xl[row * n + k] - x[k]) / tol;
                    if (e > xworst) xworst = e;
                }
                free(x); free(xa);
            }
        }
        VERB("diag_scan shape %d variant %d: y ratio %.3g x ratio %.3g (tol %g)\n", _i, variant, worst, xworst, TU_THRESH);
        TU_CHECK_ERR(worst, TU_THRESH, "diag_scan y shape %d variant %d ratio", _i, variant);
        TU_CHECK_ERR(xworst, TU_THRESH, "diag_scan x_last shape %d variant %d ratio", _i, variant);
    }
    free(Ad); free(Bd); free(C); free(x0); free(xl); free(D); free(u); free(y);
}
END_TEST

/* L steps equal one scan, and a scan split in two with the state carried
 * (in place, x0 == x_last) equals the whole: bit for bit. */
START_TEST(test_diag_step_split)
{
    const int64_t B = 2, H = 3, n = 13, L = 257, L1 = 100;
    tu_rng r = {4242};
    float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
    float complex *C = tu_alloc((size_t)(H * n), sizeof *C);
    float complex *x0 = tu_alloc((size_t)(B * H * n), sizeof *x0);
    float complex *xw = tu_alloc((size_t)(B * H * n), sizeof *xw);
    float complex *xs = tu_alloc((size_t)(B * H * n), sizeof *xs);
    float complex *xh = tu_alloc((size_t)(B * H * n), sizeof *xh);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(B * H * L), sizeof *u);
    float *yw = tu_alloc((size_t)(B * H * L), sizeof *yw);
    float *ys = tu_alloc((size_t)(B * H * L), sizeof *ys);
    float *yh = tu_alloc((size_t)(B * H * L), sizeof *yh);
    float *ut = tu_alloc((size_t)(B * H), sizeof *ut);
    float *yt = tu_alloc((size_t)(B * H), sizeof *yt);
    float *u1 = tu_alloc((size_t)(B * H * L), sizeof *u1);
    float *u2 = tu_alloc((size_t)(B * H * L), sizeof *u2);
    float *y1 = tu_alloc((size_t)(B * H * L), sizeof *y1);
    float *y2 = tu_alloc((size_t)(B * H * L), sizeof *y2);
    rand_diag(&r, H * n, 0.999, Ad, Bd, C);
    for (int64_t i = 0; i < B * H * n; i++)
        x0[i] = (float)tu_normal(&r) + I * (float)tu_normal(&r);
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, B * H * L, 1.0);
    ck_assert_int_eq(ssm_diag_scan(B, H, n, L, Ad, Bd, C, D, u, x0, xw, yw), SSM_OK);

    /* step by step */
    memcpy(xs, x0, sizeof(float complex) * (size_t)(B * H * n));
    for (int64_t t = 0; t < L; t++) {
        for (int64_t row = 0; row < B * H; row++) ut[row] = u[row * L + t];
        ck_assert_int_eq(ssm_diag_step(B, H, n, xs, Ad, Bd, C, D, ut, yt), SSM_OK);
        for (int64_t row = 0; row < B * H; row++) ys[row * L + t] = yt[row];
    }
    ck_assert_msg(memcmp(yw, ys, sizeof(float) * (size_t)(B * H * L)) == 0, "step outputs differ from the scan");
    ck_assert_msg(memcmp(xw, xs, sizeof(float complex) * (size_t)(B * H * n)) == 0, "step state differs from the scan");

    /* split in two halves, state carried in place */
    const int64_t L2 = L - L1;
    for (int64_t row = 0; row < B * H; row++) {
        memcpy(u1 + row * L1, u + row * L, sizeof(float) * (size_t)L1);
        memcpy(u2 + row * L2, u + row * L + L1, sizeof(float) * (size_t)L2);
    }
    memcpy(xh, x0, sizeof(float complex) * (size_t)(B * H * n));
    ck_assert_int_eq(ssm_diag_scan(B, H, n, L1, Ad, Bd, C, D, u1, xh, xh, y1), SSM_OK);
    ck_assert_int_eq(ssm_diag_scan(B, H, n, L2, Ad, Bd, C, D, u2, xh, xh, y2), SSM_OK);
    for (int64_t row = 0; row < B * H; row++) {
        memcpy(yh + row * L, y1 + row * L1, sizeof(float) * (size_t)L1);
        memcpy(yh + row * L + L1, y2 + row * L2, sizeof(float) * (size_t)L2);
    }
    ck_assert_msg(memcmp(yw, yh, sizeof(float) * (size_t)(B * H * L)) == 0, "split outputs differ from the whole");
    ck_assert_msg(memcmp(xw, xh, sizeof(float complex) * (size_t)(B * H * n)) == 0, "split state differs from the whole");
    free(Ad); free(Bd); free(C); free(x0); free(xw); free(xs); free(xh); free(D);
    free(u); free(yw); free(ys); free(yh); free(ut); free(yt); free(u1); free(u2); free(y1); free(y2);
}
END_TEST

/* ---- bad arguments, table-driven --------------------------------------- */

START_TEST(test_bad_args)
{
    ssm_conv_plan *p = NULL, *p2 = NULL, *pb = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&p, 2, 8), SSM_OK);
    ck_assert_int_eq(ssm_conv_plan_create(&p2, 3, 8), SSM_OK);
    float K[24] = {0}, D[3] = {0}, u[48] = {0}, y[48];
    float Dn[3] = {NAN, 0, 0};
    float complex A[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, An[6] = {NAN, 0, 0, 0, 0, 0};
    float complex Ai[6] = {INFINITY, 0, 0, 0, 0, 0}, x[24] = {0};
    ssm_conv_spectrum *s = NULL, *s2 = NULL, *sb = NULL;
    ck_assert_int_eq(ssm_conv_spectrum_create(&s, p, K), SSM_OK);
    ck_assert_int_eq(ssm_conv_spectrum_create(&s2, p2, K), SSM_OK);
    const int64_t BIG = INT64_MAX / 2 + 1;
    double Kd[4] = {0}, ud[4] = {0}, yd[4], Dnd[1] = {NAN};
    struct { const char *what; ssm_status got; } t[] = {
        {"create plan NULL", ssm_conv_plan_create(NULL, 2, 8)},
        {"create channels 0", ssm_conv_plan_create(&pb, 0, 8)},
        {"create channels -1", ssm_conv_plan_create(&pb, -1, 8)},
        {"create L 0", ssm_conv_plan_create(&pb, 2, 0)},
        {"create L -5", ssm_conv_plan_create(&pb, 2, -5)},
        {"create L > INT_MAX/2", ssm_conv_plan_create(&pb, 1, (int64_t)INT_MAX / 2 + 1)},
        {"create L huge", ssm_conv_plan_create(&pb, 1, INT64_MAX)},
        {"create overflow", ssm_conv_plan_create(&pb, BIG, 4)},
        {"create spectra overflow", ssm_conv_plan_create(&pb, (int64_t)1 << 61, 1)},
        {"exec plan NULL", ssm_conv_execute(NULL, 1, K, D, u, y)},
        {"exec batch 0", ssm_conv_execute(p, 0, K, D, u, y)},
        /* issue 9: D is a parameter, checked as in ssm_diag_scan (was
         * propagated by the convolution, refused by the scan) */
        {"exec D NaN", ssm_conv_execute(p, 1, K, Dn, u, y)},
        {"exec_spectrum D NaN", ssm_conv_execute_spectrum(p, s, 1, Dn, u, y)},
        {"conv_d D NaN", ssm_conv_execute_d(1, 1, 4, Kd, Dnd, ud, yd)},
        {"exec batch -1", ssm_conv_execute(p, -1, K, D, u, y)},
        {"exec batch overflow", ssm_conv_execute(p, BIG, K, D, u, y)},
        {"exec K NULL", ssm_conv_execute(p, 1, NULL, D, u, y)},
        {"exec u NULL", ssm_conv_execute(p, 1, K, D, NULL, y)},
        {"exec y NULL", ssm_conv_execute(p, 1, K, D, u, NULL)},
        {"spec NULL out", ssm_conv_spectrum_create(NULL, p, K)},
        {"spec plan NULL", ssm_conv_spectrum_create(&sb, NULL, K)},
        {"spec K NULL", ssm_conv_spectrum_create(&sb, p, NULL)},
        {"exsp plan NULL", ssm_conv_execute_spectrum(NULL, s, 1, D, u, y)},
        {"exsp spec NULL", ssm_conv_execute_spectrum(p, NULL, 1, D, u, y)},
        {"exsp spec mismatch", ssm_conv_execute_spectrum(p, s2, 1, D, u, y)},
        {"exsp batch 0", ssm_conv_execute_spectrum(p, s, 0, D, u, y)},
        {"exsp batch overflow", ssm_conv_execute_spectrum(p, s, BIG, D, u, y)},
        {"exsp u NULL", ssm_conv_execute_spectrum(p, s, 1, D, NULL, y)},
        {"exsp y NULL", ssm_conv_execute_spectrum(p, s, 1, D, u, NULL)},
        {"info NULL", ssm_conv_plan_info(NULL, NULL, NULL, NULL)},
        {"conv_d batch 0", ssm_conv_execute_d(0, 1, 4, Kd, NULL, ud, yd)},
        {"conv_d channels -1", ssm_conv_execute_d(1, -1, 4, Kd, NULL, ud, yd)},
        {"conv_d L 0", ssm_conv_execute_d(1, 1, 0, Kd, NULL, ud, yd)},
        {"conv_d L > INT_MAX/2", ssm_conv_execute_d(1, 1, (int64_t)INT_MAX / 2 + 1, Kd, NULL, ud, yd)},
        {"conv_d overflow", ssm_conv_execute_d(BIG, 4, 4, Kd, NULL, ud, yd)},
        {"conv_d K NULL", ssm_conv_execute_d(1, 1, 4, NULL, NULL, ud, yd)},
        {"conv_d u NULL", ssm_conv_execute_d(1, 1, 4, Kd, NULL, NULL, yd)},
        {"conv_d y NULL", ssm_conv_execute_d(1, 1, 4, Kd, NULL, ud, NULL)},
        {"scan batch 0", ssm_diag_scan(0, 2, 3, 8, A, A, A, D, u, NULL, NULL, y)},
        {"scan channels 0", ssm_diag_scan(1, 0, 3, 8, A, A, A, D, u, NULL, NULL, y)},
        {"scan n 0", ssm_diag_scan(1, 2, 0, 8, A, A, A, D, u, NULL, NULL, y)},
        {"scan L 0", ssm_diag_scan(1, 2, 3, 0, A, A, A, D, u, NULL, NULL, y)},
        {"scan L -1", ssm_diag_scan(1, 2, 3, -1, A, A, A, D, u, NULL, NULL, y)},
        {"scan overflow L", ssm_diag_scan(4, 2, 3, BIG, A, A, A, D, u, NULL, NULL, y)},
        {"scan overflow n", ssm_diag_scan(4, 2, BIG, 8, A, A, A, D, u, NULL, NULL, y)},
        {"scan Ad NULL", ssm_diag_scan(1, 2, 3, 8, NULL, A, A, D, u, NULL, NULL, y)},
        {"scan Bd NULL", ssm_diag_scan(1, 2, 3, 8, A, NULL, A, D, u, NULL, NULL, y)},
        {"scan C NULL", ssm_diag_scan(1, 2, 3, 8, A, A, NULL, D, u, NULL, NULL, y)},
        {"scan u NULL", ssm_diag_scan(1, 2, 3, 8, A, A, A, D, NULL, NULL, NULL, y)},
        {"scan y NULL", ssm_diag_scan(1, 2, 3, 8, A, A, A, D, u, NULL, NULL, NULL)},
        {"scan Ad NaN", ssm_diag_scan(1, 2, 3, 8, An, A, A, D, u, NULL, NULL, y)},
        {"scan Bd Inf", ssm_diag_scan(1, 2, 3, 8, A, Ai, A, D, u, NULL, NULL, y)},
        {"scan C NaN", ssm_diag_scan(1, 2, 3, 8, A, A, An, D, u, NULL, NULL, y)},
        {"scan D NaN", ssm_diag_scan(1, 2, 3, 8, A, A, A, Dn, u, NULL, NULL, y)},
        {"step batch 0", ssm_diag_step(0, 2, 3, x, A, A, A, D, u, y)},
        {"step channels -1", ssm_diag_step(1, -1, 3, x, A, A, A, D, u, y)},
        {"step n 0", ssm_diag_step(1, 2, 0, x, A, A, A, D, u, y)},
        {"step overflow", ssm_diag_step(BIG, 2, 3, x, A, A, A, D, u, y)},
        {"step Ad NULL", ssm_diag_step(1, 2, 3, x, NULL, A, A, D, u, y)},
        {"step Bd NULL", ssm_diag_step(1, 2, 3, x, A, NULL, A, D, u, y)},
        {"step C NULL", ssm_diag_step(1, 2, 3, x, A, A, NULL, D, u, y)},
        {"step x NULL", ssm_diag_step(1, 2, 3, NULL, A, A, A, D, u, y)},
        {"step u NULL", ssm_diag_step(1, 2, 3, x, A, A, A, D, NULL, y)},
        {"step y NULL", ssm_diag_step(1, 2, 3, x, A, A, A, D, u, NULL)},
        {"step Ad Inf", ssm_diag_step(1, 2, 3, x, Ai, A, A, D, u, y)},
        {"step Bd NaN", ssm_diag_step(1, 2, 3, x, A, An, A, D, u, y)},
        {"step D NaN", ssm_diag_step(1, 2, 3, x, A, A, A, Dn, u, y)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(t[i].got == SSM_ERR_ARG, "%s: got %d, want SSM_ERR_ARG", t[i].what, (int)t[i].got);
    ck_assert_ptr_eq(pb, NULL);   /* failed creates leave *plan NULL */
    ck_assert_ptr_eq(sb, NULL);
    ssm_conv_spectrum_destroy(s);
    ssm_conv_spectrum_destroy(s2);
    ssm_conv_plan_destroy(p);
    ssm_conv_plan_destroy(p2);
}
END_TEST

static Suite *conv_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("fft");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_conv_direct, 0, 2 * N_CONV_L);
    tcase_add_loop_test(tc, test_conv_double, 0, 3);
    tcase_add_test(tc, test_conv_double_plan_cache);
    tcase_add_test(tc, test_host_planner_threads);
    tcase_add_test(tc, test_conv_spectrum_same_bytes);
    tcase_add_test(tc, test_conv_properties);
    tcase_add_test(tc, test_conv_pthreads);
    tcase_add_test(tc, test_thread_counts);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("recurrent");
    tcase_set_timeout(tr, 600);
    tcase_add_loop_test(tr, test_diag_scan_ref, 0, (int)(sizeof scan_shapes / sizeof scan_shapes[0]));
    tcase_add_test(tr, test_diag_step_split);
    suite_add_tcase(s, tr);
    TCase *tb = tcase_create("bad_args");
    tcase_set_timeout(tb, 600);
    tcase_add_test(tb, test_bad_args);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    return tu_run(conv_suite());
}
