/* ctest-labels: lti;scan */
/*
 * test_lti.c -- ssm_lti_scan / ssm_lti_step, the dense LTI recurrence.
 *
 * References: (1) the recurrence written out in long double from the same
 * float inputs; (2) the kernel of ssm_kernel_dense (float Ad, Bd, C promoted
 * to double) and the O(L^2) direct causal convolution in long double.
 * The library carries the state and dot products in double and rounds only
 * the output to float, so the expected error is float rounding of y:
 * normwise <= eps_f/2 plus double rounding (n L eps_d * growth, ~1e-11
 * here).  Tolerance: 4 eps_f.
 */
#include <stdint.h>
#include <ssm.h>
#include "testutil.h"

#define TOL (4.0 * FLT_EPSILON)

typedef struct shape { int64_t batch, n, nout, L; int hasd, hasx0; } shape;

static const shape shapes[] = {
    { 1, 1, 1, 1, 0, 0 },
    { 1, 2, 1, 7, 1, 0 },
    { 2, 3, 2, 17, 0, 1 },
    { 3, 16, 5, 100, 1, 1 },
    { 5, 33, 4, 257, 1, 0 },
    { 2, 64, 3, 130, 0, 1 },
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct sys {
    shape s;
    float *Ad, *Bd, *C, *D, *u, *x0, *y, *xl;
} sys;

/* A random stable system: entries N(0, 0.9^2/n), spectral radius ~0.9 (the
 * circular law), so nothing grows and the reference stays well scaled. */
static void sys_make(sys *q, const shape *s, uint64_t seed)
{
    tu_rng r = { seed };
    q->s = *s;
    int64_t n = s->n, o = s->nout, b = s->batch, L = s->L;
    q->Ad = tu_alloc((size_t)(n * n), sizeof(float));
    q->Bd = tu_alloc((size_t)n, sizeof(float));
    q->C = tu_alloc((size_t)(o * n), sizeof(float));
    q->D = s->hasd ? tu_alloc((size_t)o, sizeof(float)) : NULL;
    q->u = tu_alloc((size_t)(b * L), sizeof(float));
    q->x0 = s->hasx0 ? tu_alloc((size_t)(b * n), sizeof(float)) : NULL;
    q->y = tu_alloc((size_t)(b * o * L), sizeof(float));
    q->xl = tu_alloc((size_t)(b * n), sizeof(float));
    tu_fill_normal_f(&r, q->Ad, n * n, 0.9 / sqrt((double)n));
    tu_fill_normal_f(&r, q->Bd, n, 1.0);
    tu_fill_normal_f(&r, q->C, o * n, 1.0);
    if (q->D) tu_fill_normal_f(&r, q->D, o, 1.0);
    tu_fill_normal_f(&r, q->u, b * L, 1.0);
    if (q->x0) tu_fill_normal_f(&r, q->x0, b * n, 1.0);
}

static void sys_free(sys *q)
{
    free(q->Ad); free(q->Bd); free(q->C); free(q->D); free(q->u);
    free(q->x0); free(q->y); free(q->xl);
}

/* Reference (1): the recurrence in long double. */
static void ref_recurrence(const sys *q, double *y, double *xl)
{
    int64_t n = q->s.n, no = q->s.nout, L = q->s.L;
    long double *x = calloc((size_t)n, sizeof *x), *xn = calloc((size_t)n, sizeof *xn);
    ck_assert_ptr_nonnull(x); ck_assert_ptr_nonnull(xn);
    for (int64_t b = 0; b < q->s.batch; b++) {
        for (int64_t i = 0; i < n; i++) x[i] = q->x0 ? q->x0[b * n + i] : 0.0f;
        for (int64_t t = 0; t < L; t++) {
            long double ut = q->u[b * L + t];
            for (int64_t i = 0; i < n; i++) {
                long double a = (long double)q->Bd[i] * ut;
                for (int64_t j = 0; j < n; j++) a += (long double)q->Ad[i * n + j] * x[j];
                xn[i] = a;
            }
            memcpy(x, xn, (size_t)n * sizeof *x);
            for (int64_t o = 0; o < no; o++) {
                long double a = q->D ? (long double)q->D[o] * ut : 0.0L;
                for (int64_t i = 0; i < n; i++) a += (long double)q->C[o * n + i] * x[i];
                y[(b * no + o) * L + t] = (double)a;
            }
        }
        for (int64_t i = 0; i < n; i++) xl[b * n + i] = (double)x[i];
    }
    free(x); free(xn);
}

START_TEST(matches_recurrence_reference)
{
    const shape *s = &shapes[_i];
    sys q; sys_make(&q, s, 1000 + (uint64_t)_i);
    int64_t ny = s->batch * s->nout * s->L;
    double *yr = tu_alloc((size_t)ny, sizeof(double));
    double *xr = tu_alloc((size_t)(s->batch * s->n), sizeof(double));
    ck_assert_int_eq(ssm_lti_scan(s->batch, s->n, s->nout, s->L, q.Ad, q.Bd, q.C,
                                  q.D, q.u, q.x0, q.xl, q.y), SSM_OK);
    ref_recurrence(&q, yr, xr);
    TU_CHECK_ERR(tu_relerr_f(q.y, yr, ny), TOL, "y, shape %d", _i);
    TU_CHECK_ERR(tu_relerr_f(q.xl, xr, s->batch * s->n), TOL, "x_last, shape %d", _i);
    free(yr); free(xr); sys_free(&q);
}
END_TEST

/* Reference (2): conv mode.  x0 = 0; kernel from ssm_kernel_dense on the
 * float parameters promoted to double; direct convolution in long double. */
START_TEST(matches_kernel_convolution)
{
    shape s = shapes[_i];
    s.hasx0 = 0;
    sys q; sys_make(&q, &s, 2000 + (uint64_t)_i);
    int64_t n = s.n, no = s.nout, L = s.L;
    double *Ad = tu_alloc((size_t)(n * n), sizeof(double));
    double *Bd = tu_alloc((size_t)n, sizeof(double));
    double *Co = tu_alloc((size_t)n, sizeof(double));
    double *K = tu_alloc((size_t)(no * L), sizeof(double));
    double *yr = tu_alloc((size_t)(s.batch * no * L), sizeof(double));
    for (int64_t i = 0; i < n * n; i++) Ad[i] = q.Ad[i];
    for (int64_t i = 0; i < n; i++) Bd[i] = q.Bd[i];
    for (int64_t o = 0; o < no; o++) {
        for (int64_t i = 0; i < n; i++) Co[i] = q.C[o * n + i];
        ssm_status st = ssm_kernel_dense(n, Ad, Bd, Co, L, K + o * L);
        ck_assert_msg(st == SSM_OK, "ssm_kernel_dense: %s", ssm_status_string(st));
    }
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t o = 0; o < no; o++)
            for (int64_t t = 0; t < L; t++) {
                long double a = q.D ? (long double)q.D[o] * q.u[b * L + t] : 0.0L;
                for (int64_t k = 0; k <= t; k++)
                    a += (long double)K[o * L + k] * q.u[b * L + t - k];
                yr[(b * no + o) * L + t] = (double)a;
            }
    ck_assert_int_eq(ssm_lti_scan(s.batch, n, no, L, q.Ad, q.Bd, q.C, q.D, q.u,
                                  NULL, NULL, q.y), SSM_OK);
    /* The kernel adds its own double rounding (~n L eps_d): still << TOL. */
    TU_CHECK_ERR(tu_relerr_f(q.y, yr, s.batch * no * L), TOL, "conv, shape %d", _i);
    free(Ad); free(Bd); free(Co); free(K); free(yr); sys_free(&q);
}
END_TEST

START_TEST(thread_count_does_not_change_bits)
{
    /* Big enough to cross the parallel threshold (batch L n (n+nout) >= 2^20). */
    const shape s = { 9, 24, 4, 400, 1, 1 };
    sys q; sys_make(&q, &s, 77);
    int64_t ny = s.batch * s.nout * s.L, nx = s.batch * s.n;
    float *y1 = tu_alloc((size_t)ny, sizeof(float)), *x1 = tu_alloc((size_t)nx, sizeof(float));
    const int threads[] = { 1, 2, 3, 8 };
    for (int k = 0; k < 4; k++) {
        tu_set_threads(threads[k]);
        ck_assert_int_eq(ssm_lti_scan(s.batch, s.n, s.nout, s.L, q.Ad, q.Bd, q.C,
                                      q.D, q.u, q.x0, q.xl, q.y), SSM_OK);
        if (k == 0) {
            memcpy(y1, q.y, (size_t)ny * sizeof(float));
            memcpy(x1, q.xl, (size_t)nx * sizeof(float));
        } else {
            ck_assert_msg(memcmp(y1, q.y, (size_t)ny * sizeof(float)) == 0,
                          "y differs at %d threads", threads[k]);
            ck_assert_msg(memcmp(x1, q.xl, (size_t)nx * sizeof(float)) == 0,
                          "x_last differs at %d threads", threads[k]);
        }
    }
    tu_set_threads(1);
    free(y1); free(x1); sys_free(&q);
}
END_TEST

START_TEST(in_place_state_and_steps)
{
    const shape s = { 3, 10, 2, 50, 1, 1 };
    sys q; sys_make(&q, &s, 99);
    int64_t n = s.n, no = s.nout, L = s.L, B = s.batch;
    ck_assert_int_eq(ssm_lti_scan(B, n, no, L, q.Ad, q.Bd, q.C, q.D, q.u, q.x0,
                                  q.xl, q.y), SSM_OK);
    /* x0 == x_last: same bytes as separate buffers. */
    float *x = tu_alloc((size_t)(B * n), sizeof(float));
    float *y2 = tu_alloc((size_t)(B * no * L), sizeof(float));
    memcpy(x, q.x0, (size_t)(B * n) * sizeof(float));
    ck_assert_int_eq(ssm_lti_scan(B, n, no, L, q.Ad, q.Bd, q.C, q.D, q.u, x, x,
                                  y2), SSM_OK);
    ck_assert(memcmp(x, q.xl, (size_t)(B * n) * sizeof(float)) == 0);
    ck_assert(memcmp(y2, q.y, (size_t)(B * no * L) * sizeof(float)) == 0);
    /* L steps: the state is rounded to float between steps, so compare with
     * tolerance: per-step float rounding of x (eps_f/2) times the stable
     * propagation (sum_t ||Ad^t|| ~ 1/(1-0.9) = 10) -> 10 * eps_f * 4. */
    memcpy(x, q.x0, (size_t)(B * n) * sizeof(float));
    float *ub = tu_alloc((size_t)B, sizeof(float)), *yb = tu_alloc((size_t)(B * no), sizeof(float));
    double *ys = tu_alloc((size_t)(B * no * L), sizeof(double));
    for (int64_t t = 0; t < L; t++) {
        for (int64_t b = 0; b < B; b++) ub[b] = q.u[b * L + t];
        ck_assert_int_eq(ssm_lti_step(B, n, no, x, q.Ad, q.Bd, q.C, q.D, ub, yb), SSM_OK);
        for (int64_t b = 0; b < B; b++)
            for (int64_t o = 0; o < no; o++) ys[(b * no + o) * L + t] = yb[b * no + o];
    }
    TU_CHECK_ERR(tu_relerr_f(q.y, ys, B * no * L), 40.0 * FLT_EPSILON, "steps vs scan");
    /* L = 1 with x0 = x_last: the step is bit for bit the scan. */
    memcpy(x, q.x0, (size_t)(B * n) * sizeof(float));
    float *xs = tu_alloc((size_t)(B * n), sizeof(float));
    memcpy(xs, q.x0, (size_t)(B * n) * sizeof(float));
    for (int64_t b = 0; b < B; b++) ub[b] = q.u[b * L];
    float *ya = tu_alloc((size_t)(B * no), sizeof(float));
    ck_assert_int_eq(ssm_lti_step(B, n, no, x, q.Ad, q.Bd, q.C, q.D, ub, yb), SSM_OK);
    ck_assert_int_eq(ssm_lti_scan(B, n, no, 1, q.Ad, q.Bd, q.C, q.D, ub, xs, xs, ya), SSM_OK);
    ck_assert(memcmp(x, xs, (size_t)(B * n) * sizeof(float)) == 0);
    ck_assert(memcmp(ya, yb, (size_t)(B * no) * sizeof(float)) == 0);
    free(x); free(y2); free(ub); free(yb); free(ys); free(xs); free(ya); sys_free(&q);
}
END_TEST

START_TEST(sequence_data_not_inspected)
{
    /* A NaN in u propagates (API.md: sequence data is never inspected). */
    const shape s = { 1, 4, 1, 5, 0, 0 };
    sys q; sys_make(&q, &s, 5);
    q.u[2] = NAN;
    ck_assert_int_eq(ssm_lti_scan(1, 4, 1, 5, q.Ad, q.Bd, q.C, NULL, q.u, NULL,
                                  NULL, q.y), SSM_OK);
    ck_assert(!isnan(q.y[1]));
    ck_assert(isnan(q.y[2]));
    sys_free(&q);
}
END_TEST

/* Every bad argument of both functions, table-driven. */
enum { F_NONE, F_AD_NULL, F_BD_NULL, F_C_NULL, F_U_NULL, F_Y_NULL, F_X_NULL,
       F_AD_NAN, F_AD_INF, F_BD_NAN, F_C_INF, F_D_NAN };
typedef struct bad { const char *what; int64_t batch, n, nout, L; int fault; } bad;
static const bad bads[] = {
    { "Ad NULL", 2, 3, 2, 4, F_AD_NULL }, { "Bd NULL", 2, 3, 2, 4, F_BD_NULL },
    { "C NULL", 2, 3, 2, 4, F_C_NULL },   { "u NULL", 2, 3, 2, 4, F_U_NULL },
    { "y NULL", 2, 3, 2, 4, F_Y_NULL },   { "x NULL (step)", 2, 3, 2, 4, F_X_NULL },
    { "batch 0", 0, 3, 2, 4, F_NONE },    { "batch -1", -1, 3, 2, 4, F_NONE },
    { "n 0", 2, 0, 2, 4, F_NONE },        { "n -5", 2, -5, 2, 4, F_NONE },
    { "nout 0", 2, 3, 0, 4, F_NONE },     { "nout -1", 2, 3, -1, 4, F_NONE },
    { "L 0", 2, 3, 2, 0, F_NONE },        { "L -2", 2, 3, 2, -2, F_NONE },
    { "n*n overflow", 2, INT64_C(3037000500), 2, 4, F_NONE },
    { "batch*nout*L overflow", INT64_C(1) << 40, 3, INT64_C(1) << 20, 4, F_NONE },
    { "batch*L overflow", INT64_C(1) << 40, 3, 2, INT64_C(1) << 40, F_NONE },
    { "batch*nout overflow", INT64_C(1) << 62, 3, 4, 4, F_NONE },
    { "batch*n bytes overflow", INT64_C(1) << 61, 3, 2, 4, F_NONE },
    { "Ad NaN", 2, 3, 2, 4, F_AD_NAN },   { "Ad Inf", 2, 3, 2, 4, F_AD_INF },
    { "Bd NaN", 2, 3, 2, 4, F_BD_NAN },   { "C Inf", 2, 3, 2, 4, F_C_INF },
    { "D NaN", 2, 3, 2, 4, F_D_NAN },
};
#define NBADS ((int)(sizeof bads / sizeof bads[0]))

START_TEST(bad_arguments)
{
    const bad *c = &bads[_i];
    /* Buffers sized for the valid 2 x 3 x 2 x 4 case; every bad case must be
     * rejected before anything is read beyond them. */
    float Ad[9] = { .5f, .1f, 0, 0, .5f, .1f, 0, 0, .5f }, Bd[3] = { 1, 2, 3 };
    float C[6] = { 1, 0, 0, 0, 1, 0 }, D[2] = { 1, 1 };
    float u[8] = { 0 }, x[6] = { 0 }, y[16] = { 0 };
    const float *pAd = Ad, *pBd = Bd, *pC = C, *pu = u;
    float *py = y, *px = x;
    switch (c->fault) {
    case F_AD_NULL: pAd = NULL; break;
    case F_BD_NULL: pBd = NULL; break;
    case F_C_NULL: pC = NULL; break;
    case F_U_NULL: pu = NULL; break;
    case F_Y_NULL: py = NULL; break;
    case F_X_NULL: px = NULL; break;
    case F_AD_NAN: Ad[4] = NAN; break;
    case F_AD_INF: Ad[8] = -INFINITY; break;
    case F_BD_NAN: Bd[2] = NAN; break;
    case F_C_INF: C[5] = INFINITY; break;
    case F_D_NAN: D[1] = NAN; break;
    default: break;
    }
    if (c->fault != F_X_NULL)
        ck_assert_msg(ssm_lti_scan(c->batch, c->n, c->nout, c->L, pAd, pBd, pC, D,
                                   pu, x, x, py) == SSM_ERR_ARG, "scan: %s", c->what);
    /* The step has no L: skip the cases that only L makes bad (L < 1, or a
     * product that overflows only with L). */
    if (c->L >= 1 && c->batch != (INT64_C(1) << 40))
        ck_assert_msg(ssm_lti_step(c->batch, c->n, c->nout, px, pAd, pBd, pC, D,
                                   pu, py) == SSM_ERR_ARG, "step: %s", c->what);
}
END_TEST

START_TEST(valid_minimal_calls)
{
    /* The same buffers as bad_arguments are accepted when nothing is bad,
     * with and without the optional pointers. */
    float Ad[9] = { .5f, .1f, 0, 0, .5f, .1f, 0, 0, .5f }, Bd[3] = { 1, 2, 3 };
    float C[6] = { 1, 0, 0, 0, 1, 0 }, D[2] = { 1, 1 };
    float u[8] = { 1, 0, 0, 0, 1, 0, 0, 0 }, x[6] = { 0 }, y[16] = { 0 };
    ck_assert_int_eq(ssm_lti_scan(2, 3, 2, 4, Ad, Bd, C, D, u, x, x, y), SSM_OK);
    ck_assert_int_eq(ssm_lti_scan(2, 3, 2, 4, Ad, Bd, C, NULL, u, NULL, NULL, y), SSM_OK);
    /* impulse response, row 0: K_0[l] = C_0 Ad^l Bd = (Ad^l Bd)_0 */
    ck_assert_float_eq(y[0], 1.0f);
    ck_assert_float_eq_tol(y[1], 0.5f * 1 + 0.1f * 2, 1e-6f);
    ck_assert_int_eq(ssm_lti_step(2, 3, 2, x, Ad, Bd, C, NULL, u, y), SSM_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lti");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, matches_recurrence_reference, 0, NSHAPES);
    tcase_add_loop_test(tc, matches_kernel_convolution, 0, NSHAPES);
    tcase_add_test(tc, thread_count_does_not_change_bits);
    tcase_add_test(tc, in_place_state_and_steps);
    tcase_add_test(tc, sequence_data_not_inspected);
    tcase_add_loop_test(tc, bad_arguments, 0, NBADS);
    tcase_add_test(tc, valid_minimal_calls);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
