/* ctest-labels: concurrency */
/*
 * test_concurrency.c -- many threads at once on one shared read-only object,
 * each with its own inputs, outputs and states, as the headers allow:
 *   - one convolution plan and one kernel spectrum (conv.h: execute and
 *     execute_spectrum from many threads; create/destroy of other plans and
 *     ssm_conv_execute_d planning under the library's FFTW lock meanwhile);
 *   - one S4D layer (layer.h: forward in both modes, with two lengths so
 *     that the cached kernel spectra are rebuilt while others use them,
 *     forward_state, step, kernel);
 *   - one Mamba stack with a separate state per thread (mamba.h: prompt
 *     forward, then steps);
 *   - one selective scan's own two threads on a single long channel (the
 *     split path: a ring of partial sums, tiles claimed by compare and
 *     swap) and on four (the chunked path: published carries), which
 *     synchronise through atomics and spin-waits of their own rather than
 *     OpenMP's.
 * Every thread's result must equal, bit for bit, the same computation run
 * serially before the threads start.  Under ThreadSanitizer (the TSan
 * stage of tests/run-all.sh) these tests also prove the absence of data
 * races on those paths.
 */
#include <pthread.h>
#include <ssm.h>
#include "testutil.h"

#define NTHREADS 4
#define REPEATS  3

typedef struct worker {
    int id;
    void *(*fn)(struct worker *);
    int failures;            /* bitwise mismatches or bad statuses */
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    return w->fn(w);
}

static void run_workers(void *(*fn)(worker *), worker *w)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i].id = i; w[i].fn = fn; w[i].failures = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        ck_assert_msg(w[i].failures == 0, "thread %d: %d results differ from the serial run (or failed)",
                      i, w[i].failures);
}

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* ---------------------------------------------------------------- conv */

enum { CH = 6, CL = 700, CB = 2 };
static struct {
    ssm_conv_plan *plan;
    ssm_conv_spectrum *spec;
    float K[CH * CL], D[CH];
    float u[NTHREADS][CB * CH * CL], y[NTHREADS][CB * CH * CL];
    double Kd[CH * CL], ud[NTHREADS][CH * CL], yd[NTHREADS][CH * CL];
} cv;

static void *conv_worker(worker *w)
{
    int i = w->id;
    float *y = tu_alloc(CB * CH * CL, sizeof *y);
    double *yd = tu_alloc(CH * CL, sizeof *yd);
    for (int r = 0; r < REPEATS; r++) {
        memset(y, 0, CB * CH * CL * sizeof *y);
        if (ssm_conv_execute(cv.plan, CB, cv.K, cv.D, cv.u[i], y) != SSM_OK ||
            !same_bytes(y, cv.y[i], sizeof cv.y[i])) w->failures++;
        memset(y, 0, CB * CH * CL * sizeof *y);
        if (ssm_conv_execute_spectrum(cv.plan, cv.spec, CB, cv.D, cv.u[i], y) != SSM_OK ||
            !same_bytes(y, cv.y[i], sizeof cv.y[i])) w->failures++;
        /* Planning elsewhere at the same time: a private plan, and the
         * double twin that plans inside. */
        ssm_conv_plan *mine = NULL;
        if (ssm_conv_plan_create(&mine, 3, 100 + 37 * i + r) != SSM_OK) w->failures++;
        ssm_conv_plan_destroy(mine);
        if (ssm_conv_execute_d(1, CH, CL, cv.Kd, NULL, cv.ud[i], yd) != SSM_OK ||
            !same_bytes(yd, cv.yd[i], sizeof cv.yd[i])) w->failures++;
    }
    free(y); free(yd);
    return NULL;
}

START_TEST(test_conv_plan_shared)
{
    tu_rng rng = { 11 };
    tu_fill_normal_f(&rng, cv.K, CH * CL, 0.05);
    tu_fill_normal_f(&rng, cv.D, CH, 1.0);
    for (int64_t j = 0; j < CH * CL; j++) cv.Kd[j] = cv.K[j];
    ck_assert_int_eq(ssm_conv_plan_create(&cv.plan, CH, CL), SSM_OK);
    ck_assert_int_eq(ssm_conv_spectrum_create(&cv.spec, cv.plan, cv.K), SSM_OK);
    for (int i = 0; i < NTHREADS; i++) {     /* the serial reference */
        tu_fill_normal_f(&rng, cv.u[i], CB * CH * CL, 1.0);
        for (int64_t j = 0; j < CH * CL; j++) cv.ud[i][j] = cv.u[i][j];
        ck_assert_int_eq(ssm_conv_execute(cv.plan, CB, cv.K, cv.D, cv.u[i], cv.y[i]), SSM_OK);
        ck_assert_int_eq(ssm_conv_execute_d(1, CH, CL, cv.Kd, NULL, cv.ud[i], cv.yd[i]), SSM_OK);
    }
    worker w[NTHREADS];
    run_workers(conv_worker, w);
    ssm_conv_spectrum_destroy(cv.spec);
    ssm_conv_plan_destroy(cv.plan);
}
END_TEST

/* ------------------------------------------------------------ S4D layer */

enum { SH = 4, SN = 16, SL1 = 300, SL2 = 257, SB = 2 };
static struct {
    ssm_s4d_layer *layer;
    float u[NTHREADS][SB * SH * SL1];
    float yconv1[NTHREADS][SB * SH * SL1], yconv2[NTHREADS][SB * SH * SL2];
    float yrec[NTHREADS][SB * SH * SL1], K[SH * SL1];
    ssm_cfloat xlast[NTHREADS][SB * SH * SN];
} sl;

/* u restricted to its first L samples per row, as [B][H][L]. */
static void prefix_rows(const float *u, int64_t L0, int64_t L, float *out)
{
    for (int64_t r = 0; r < SB * SH; r++) memcpy(out + r * L, u + r * L0, (size_t)L * sizeof *out);
}

static void *layer_worker(worker *w)
{
    int i = w->id;
    float *y = tu_alloc(SB * SH * SL1, sizeof *y), *u2 = tu_alloc(SB * SH * SL2, sizeof *u2);
    float *K = tu_alloc(SH * SL1, sizeof *K), *ut = tu_alloc(SB * SH, sizeof *ut), *yt = tu_alloc(SB * SH, sizeof *yt);
    ssm_cfloat *x = tu_alloc(SB * SH * SN, sizeof *x);
    prefix_rows(sl.u[i], SL1, SL2, u2);
    for (int r = 0; r < REPEATS; r++) {
        /* Alternate the length between threads and repeats: the layer's
         * cached spectra are replaced while other threads use them. */
        if ((i + r) % 2 == 0) {
            if (ssm_s4d_layer_forward(sl.layer, SSM_MODE_CONV, SB, SL1, sl.u[i], y) != SSM_OK ||
                !same_bytes(y, sl.yconv1[i], sizeof sl.yconv1[i])) w->failures++;
        } else {
            if (ssm_s4d_layer_forward(sl.layer, SSM_MODE_CONV, SB, SL2, u2, y) != SSM_OK ||
                !same_bytes(y, sl.yconv2[i], sizeof sl.yconv2[i])) w->failures++;
        }
        if (ssm_s4d_layer_forward(sl.layer, SSM_MODE_RECURRENT, SB, SL1, sl.u[i], y) != SSM_OK ||
            !same_bytes(y, sl.yrec[i], sizeof sl.yrec[i])) w->failures++;
        memset(x, 0, SB * SH * SN * sizeof *x);
        if (ssm_s4d_layer_forward_state(sl.layer, NULL, x, SB, SL1, sl.u[i], y) != SSM_OK ||
            !same_bytes(y, sl.yrec[i], sizeof sl.yrec[i]) ||
            !same_bytes(x, sl.xlast[i], sizeof sl.xlast[i])) w->failures++;
        memset(x, 0, SB * SH * SN * sizeof *x);
        for (int64_t t = 0; t < SL1; t++) {
            for (int64_t c = 0; c < SB * SH; c++) ut[c] = sl.u[i][c * SL1 + t];
            if (ssm_s4d_layer_step(sl.layer, x, SB, ut, yt) != SSM_OK) { w->failures++; break; }
            for (int64_t c = 0; c < SB * SH; c++) y[c * SL1 + t] = yt[c];
        }
        if (!same_bytes(y, sl.yrec[i], sizeof sl.yrec[i])) w->failures++;
        if (ssm_s4d_layer_kernel(sl.layer, SL1, K) != SSM_OK ||
            !same_bytes(K, sl.K, sizeof sl.K)) w->failures++;
    }
    free(y); free(u2); free(K); free(ut); free(yt); free(x);
    return NULL;
}

START_TEST(test_s4d_layer_shared)
{
    tu_rng rng = { 12 };
    ck_assert_int_eq(ssm_s4d_layer_create(&sl.layer, SH, SN, SSM_S4D_LIN, SSM_ZOH, 5), SSM_OK);
    float *u2 = tu_alloc(SB * SH * SL2, sizeof *u2);
    for (int i = 0; i < NTHREADS; i++) {
        tu_fill_normal_f(&rng, sl.u[i], SB * SH * SL1, 1.0);
        prefix_rows(sl.u[i], SL1, SL2, u2);
        ck_assert_int_eq(ssm_s4d_layer_forward(sl.layer, SSM_MODE_CONV, SB, SL2, u2, sl.yconv2[i]), SSM_OK);
        ck_assert_int_eq(ssm_s4d_layer_forward(sl.layer, SSM_MODE_CONV, SB, SL1, sl.u[i], sl.yconv1[i]), SSM_OK);
        ck_assert_int_eq(ssm_s4d_layer_forward_state(sl.layer, NULL, sl.xlast[i], SB, SL1, sl.u[i], sl.yrec[i]), SSM_OK);
    }
    ck_assert_int_eq(ssm_s4d_layer_kernel(sl.layer, SL1, sl.K), SSM_OK);
    free(u2);
    worker w[NTHREADS];
    run_workers(layer_worker, w);
    ssm_s4d_layer_destroy(sl.layer);
}
END_TEST

/* ----------------------------------------------------------- Mamba stack */

enum { MD = 32, MLAYERS = 2, MB = 2, ML = 24, MSTEPS = 8 };
static struct {
    ssm_mamba_stack *stk;
    float x[NTHREADS][MB * ML * MD], y[NTHREADS][MB * ML * MD];
    float xs[NTHREADS][MSTEPS][MB * MD], ys[NTHREADS][MSTEPS][MB * MD];
} mb;

/* Prompt forward into a fresh state, then MSTEPS steps. */
static int mamba_run(int i, float *y, float ys[MSTEPS][MB * MD])
{
    ssm_mamba_stack_state *st = NULL;
    int bad = ssm_mamba_stack_state_create(&st, mb.stk, MB) != SSM_OK;
    bad |= ssm_mamba_stack_forward(mb.stk, st, MB, ML, mb.x[i], y) != SSM_OK;
    for (int s = 0; s < MSTEPS && !bad; s++)
        bad |= ssm_mamba_stack_step(mb.stk, st, MB, mb.xs[i][s], ys[s]) != SSM_OK;
    ssm_mamba_stack_state_destroy(st);
    return bad;
}

static void *mamba_worker(worker *w)
{
    int i = w->id;
    float *y = tu_alloc(MB * ML * MD, sizeof *y);
    float (*ys)[MB * MD] = tu_alloc(MSTEPS, sizeof *ys);
    for (int r = 0; r < REPEATS; r++) {
        if (mamba_run(i, y, ys) || !same_bytes(y, mb.y[i], sizeof mb.y[i]) ||
            !same_bytes(ys, mb.ys[i], sizeof mb.ys[i])) w->failures++;
    }
    free(y); free(ys);
    return NULL;
}

START_TEST(test_mamba_stack_shared)
{
    tu_rng rng = { 13 };
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = MD;
    cfg.d_state = 8;
    ck_assert_int_eq(ssm_mamba_stack_create(&mb.stk, &cfg, MLAYERS, 21), SSM_OK);
    for (int i = 0; i < NTHREADS; i++) {
        tu_fill_normal_f(&rng, mb.x[i], MB * ML * MD, 1.0);
        tu_fill_normal_f(&rng, &mb.xs[i][0][0], MSTEPS * MB * MD, 1.0);
        ck_assert_int_eq(mamba_run(i, mb.y[i], mb.ys[i]), 0);
    }
    worker w[NTHREADS];
    run_workers(mamba_worker, w);
    ssm_mamba_stack_destroy(mb.stk);
}
END_TEST

/* One scan, its own threads: (1, 1, 16, SL) takes the split path and
 * (1, 4, 16, SL) the chunked one (wbtest_scan's path_choice test pins
 * both); SL is long enough for more tiles than the split path's ring of 16
 * at any tile length (512 or 2048 steps).  Two threads must give the
 * one-thread bytes every time. */
#define SL 40000
START_TEST(test_scan_own_threads)
{
    tu_rng rng = { 17 };
    const int64_t N = 16;
    for (int64_t dim = 1; dim <= 4; dim += 3) {
        const int64_t nx = dim * SL;
        float *u = tu_alloc((size_t)nx, sizeof(float)), *dl = tu_alloc((size_t)nx, sizeof(float));
        float *z = tu_alloc((size_t)nx, sizeof(float)), *A = tu_alloc((size_t)(dim * N), sizeof(float));
        float *B = tu_alloc((size_t)(N * SL), sizeof(float)), *C = tu_alloc((size_t)(N * SL), sizeof(float));
        float *D = tu_alloc((size_t)dim, sizeof(float)), *bias = tu_alloc((size_t)dim, sizeof(float));
        float *y1 = tu_alloc((size_t)nx, sizeof(float)), *y2 = tu_alloc((size_t)nx, sizeof(float));
        float *h1 = tu_alloc((size_t)(dim * N), sizeof(float)), *h2 = tu_alloc((size_t)(dim * N), sizeof(float));
        tu_fill_normal_f(&rng, u, nx, 1.0);
        tu_fill_normal_f(&rng, z, nx, 1.0);
        tu_fill_normal_f(&rng, dl, nx, 0.5);
        tu_fill_normal_f(&rng, B, N * SL, 1.0);
        tu_fill_normal_f(&rng, C, N * SL, 1.0);
        tu_fill_normal_f(&rng, D, dim, 1.0);
        tu_fill_normal_f(&rng, bias, dim, 0.1);
        for (int64_t i = 0; i < dim * N; i++)
            A[i] = -(float)(1 + i % N);
        ssm_scan_args a = { .batch = 1, .dim = dim, .dstate = N, .len = SL, .ngroups = 1,
                            .u = u, .delta = dl, .A = A, .B = B, .C = C, .D = D, .z = z,
                            .delta_bias = bias, .delta_softplus = 1, .y = y1, .h_last = h1 };
        tu_set_threads(1);
        ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
        a.y = y2;
        a.h_last = h2;
        tu_set_threads(2);
        for (int r = 0; r < REPEATS; r++) {
            memset(y2, 0, (size_t)nx * sizeof(float));
            ck_assert_int_eq(ssm_selective_scan(&a), SSM_OK);
            ck_assert_msg(same_bytes(y1, y2, (size_t)nx * sizeof(float))
                          && same_bytes(h1, h2, (size_t)(dim * N) * sizeof(float)),
                          "scan of %d channel(s): 2 threads differ from 1", (int)dim);
        }
        free(u); free(dl); free(z); free(A); free(B); free(C); free(D); free(bias);
        free(y1); free(y2); free(h1); free(h2);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("shared objects");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_conv_plan_shared);
    tcase_add_test(tc, test_s4d_layer_shared);
    tcase_add_test(tc, test_mamba_stack_shared);
    tcase_add_test(tc, test_scan_own_threads);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
