/* ctest-labels: train */
/*
 * test_layers_bwd.c -- RMSNorm, causal depthwise conv and S4D kernel
 * backward (ssm/train.h), black-box: against central finite differences of
 * double forwards written here, thread-count independence, bad arguments.
 *
 * Error model: the library sums in double and rounds each gradient once to
 * float, so |g - g_fd| <= eps_f/2 |g| + (double sums, ~n eps_d) + the finite
 * difference error (step 1e-5: truncation ~1e-10 |f'''|, rounding
 * ~eps_d |Loss| / 1e-5 ~ 1e-11): bound 4 eps_f max|g| + 16 eps_d |Loss| / step
 * (the last term matters only where the gradient is tiny, as RMSNorm's dx at
 * dim 1, which is eps / (x^2 + eps) times the rest).
 */
#include <ssm.h>
#include "testutil.h"

/* ---------------------------------------------------------- RMSNorm --- */

static double rms_loss(int64_t rows, int64_t dim, const double *x, const double *w,
                       double eps, const double *dy)
{
    double loss = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0.0;
        for (int64_t j = 0; j < dim; j++)
            ss += x[r * dim + j] * x[r * dim + j];
        const double s = 1.0 / sqrt(ss / (double)dim + eps);
        for (int64_t j = 0; j < dim; j++)
            loss += dy[r * dim + j] * x[r * dim + j] * s * w[j];
    }
    return loss;
}

static double fd_ratio(const float *g, double *x, int64_t n,
                       double (*loss)(void *), void *ctx, const char *name)
{
    double err = 0.0, scale = 0.0, fderr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double v = x[i], hs = 1e-5 * fmax(1.0, fabs(v));
        x[i] = v + hs;
        const double lp = loss(ctx);
        x[i] = v - hs;
        const double lm = loss(ctx);
        x[i] = v;
        const double fd = (lp - lm) / (2.0 * hs);
        /* rounding of the difference quotient itself */
        fderr = fmax(fderr, 16.0 * DBL_EPSILON * fmax(fabs(lp), fabs(lm)) / hs);
        err = fmax(err, fabs((double)g[i] - fd));
        scale = fmax(scale, fabs(fd));
    }
    const double bound = 4.0 * FLT_EPSILON * scale + fderr;
    printf("  %-6s err %.2e bound %.2e ratio %.3f\n", name, err, bound, err / bound);
    return err / bound;
}

typedef struct rms_ctx { int64_t rows, dim; double *x, *w, eps, *dy; } rms_ctx;
static double rms_loss_cb(void *c)
{
    rms_ctx *q = c;
    return rms_loss(q->rows, q->dim, q->x, q->w, q->eps, q->dy);
}

START_TEST(rmsnorm_matches_finite_differences)
{
    static const int64_t dims[] = { 1, 2, 37, 256 };
    const int64_t rows = 5, dim = dims[_i];
    tu_rng r = { 100u + (uint64_t)_i };
    const int64_t n = rows * dim;
    float *x = tu_alloc(n, 4), *w = tu_alloc(dim, 4), *dy = tu_alloc(n, 4);
    float *dx = tu_alloc(n, 4), *dw = tu_alloc(dim, 4);
    tu_fill_normal_f(&r, x, n, 1.0);
    tu_fill_normal_f(&r, w, dim, 1.0);
    tu_fill_normal_f(&r, dy, n, 1.0);
    if (dim > 1)
        x[0] = 1e-3f;   /* a small entry (alone, at dim 1, it would put the
                         * curvature scale sqrt(eps) within the FD step) */
    rms_ctx c = { rows, dim, tu_alloc(n, 8), tu_alloc(dim, 8), 1e-5, tu_alloc(n, 8) };
    for (int64_t i = 0; i < n; i++) { c.x[i] = x[i]; c.dy[i] = dy[i]; }
    for (int64_t j = 0; j < dim; j++) c.w[j] = w[j];
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, dy, dx, dw), SSM_OK);
    printf("rmsnorm rows %lld dim %lld:\n", (long long)rows, (long long)dim);
    const double r1 = fd_ratio(dx, c.x, n, rms_loss_cb, &c, "dx");
    const double r2 = fd_ratio(dw, c.w, dim, rms_loss_cb, &c, "dw");
    TU_CHECK_ERR(r1, 1.0, "rmsnorm dx");
    TU_CHECK_ERR(r2, 1.0, "rmsnorm dw");
    /* NULL outputs: the other is unchanged bit for bit */
    float *dx2 = tu_alloc(n, 4), *dw2 = tu_alloc(dim, 4);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, dy, dx2, NULL), SSM_OK);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, dy, NULL, dw2), SSM_OK);
    ck_assert(!memcmp(dx, dx2, n * 4) && !memcmp(dw, dw2, dim * 4));
    free(x); free(w); free(dy); free(dx); free(dw); free(dx2); free(dw2);
    free(c.x); free(c.w); free(c.dy);
}
END_TEST

/* ----------------------------------------------------- causal conv --- */

typedef struct conv_ctx { int64_t B, D, L, K; double *x, *w, *bias, *dy; } conv_ctx;
static double conv_loss_cb(void *c)
{
    conv_ctx *q = c;
    double loss = 0.0;
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t d = 0; d < q->D; d++)
            for (int64_t t = 0; t < q->L; t++) {
                double y = q->bias[d];
                for (int64_t j = 0; j < q->K; j++) {
                    const int64_t s = t - (q->K - 1) + j;
                    if (s >= 0)
                        y += q->w[d * q->K + j] * q->x[(b * q->D + d) * q->L + s];
                }
                loss += q->dy[(b * q->D + d) * q->L + t] * y;
            }
    return loss;
}

START_TEST(conv_matches_finite_differences)
{
    static const int64_t cases[][4] = { { 2, 3, 11, 4 }, { 1, 2, 7, 1 }, { 2, 2, 2, 4 },
                                        { 1, 1, 1, 3 }, { 3, 5, 64, 4 } };
    const int64_t B = cases[_i][0], D = cases[_i][1], L = cases[_i][2], K = cases[_i][3];
    tu_rng r = { 300u + (uint64_t)_i };
    const int64_t n = B * D * L;
    float *x = tu_alloc(n, 4), *w = tu_alloc(D * K, 4), *dy = tu_alloc(n, 4);
    float *dx = tu_alloc(n, 4), *dw = tu_alloc(D * K, 4), *db = tu_alloc(D, 4);
    tu_fill_normal_f(&r, x, n, 1.0);
    tu_fill_normal_f(&r, w, D * K, 1.0);
    tu_fill_normal_f(&r, dy, n, 1.0);
    conv_ctx c = { B, D, L, K, tu_alloc(n, 8), tu_alloc(D * K, 8), tu_alloc(D, 8),
                   tu_alloc(n, 8) };
    for (int64_t i = 0; i < n; i++) { c.x[i] = x[i]; c.dy[i] = dy[i]; }
    for (int64_t i = 0; i < D * K; i++) c.w[i] = w[i];
    for (int64_t d = 0; d < D; d++) c.bias[d] = 0.1 * (double)d;
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, x, w, dy, dx, dw, db), SSM_OK);
    printf("conv (%lld,%lld,%lld) k=%lld:\n", (long long)B, (long long)D, (long long)L,
           (long long)K);
    double rt = fd_ratio(dx, c.x, n, conv_loss_cb, &c, "dx");
    rt = fmax(rt, fd_ratio(dw, c.w, D * K, conv_loss_cb, &c, "dw"));
    rt = fmax(rt, fd_ratio(db, c.bias, D, conv_loss_cb, &c, "dbias"));
    TU_CHECK_ERR(rt, 1.0, "conv backward");
    free(x); free(w); free(dy); free(dx); free(dw); free(db);
    free(c.x); free(c.w); free(c.bias); free(c.dy);
}
END_TEST

START_TEST(threads_identical_and_bad_arguments)
{
    const int64_t B = 3, D = 70, L = 301, K = 4, rows = 301, dim = 70;
    tu_rng r = { 5u };
    float *x = tu_alloc(B * D * L, 4), *dy = tu_alloc(B * D * L, 4), *w = tu_alloc(D * K, 4);
    tu_fill_normal_f(&r, x, B * D * L, 1.0);
    tu_fill_normal_f(&r, dy, B * D * L, 1.0);
    tu_fill_normal_f(&r, w, D * K, 1.0);
    float *o[3];
    for (int t = 0; t < 3; t++) {
        o[t] = tu_alloc(2 * B * D * L + D * K + D + 2 * dim, 4);
        float *q = o[t];
        tu_set_threads(t + 1);
        ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, x, w, dy, q, q + B * D * L,
                                                    q + B * D * L + D * K), SSM_OK);
        q += B * D * L + D * K + D;
        ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, dy, q, q + rows * dim),
                         SSM_OK);
    }
    tu_set_threads(2);
    const size_t bytes = (size_t)(2 * B * D * L + D * K + D + 2 * dim) * 4;
    ck_assert(!memcmp(o[0], o[1], bytes) && !memcmp(o[0], o[2], bytes));
    float *g = o[0];
    /* bad arguments */
    ck_assert_int_eq(ssm_rmsnorm_backward(0, dim, x, w, 1e-5, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, 0, x, w, 1e-5, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(INT64_MAX, 8, x, w, 1e-5, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, NULL, w, 1e-5, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, NULL, 1e-5, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, NULL, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, -1.0, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, NAN, dy, g, g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_rmsnorm_backward(rows, dim, x, w, 1e-5, dy, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_causal_conv1d_backward(0, D, L, K, x, w, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, 0, L, K, x, w, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, 0, K, x, w, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, 0, x, w, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, INT64_MAX, L, K, x, w, dy, g, NULL, NULL),
                     SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, NULL, w, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, x, NULL, dy, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, x, w, NULL, g, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_causal_conv1d_backward(B, D, L, K, x, w, dy, NULL, NULL, NULL), SSM_OK);
    for (int t = 0; t < 3; t++)
        free(o[t]);
    free(x); free(dy); free(w);
}
END_TEST

/* ------------------------------------------------ S4D kernel backward --- */

typedef struct s4k_ctx {
    ssm_disc method;
    int64_t n, L;
    double *lr, *li, *br, *bi, *cr, *ci;   /* parts of lambda, B, C */
    double dt;
    double *dK;
} s4k_ctx;

/* phi1 by its Taylor series (|z| <= 2 here: 60 terms, first omitted term
 * below 2^60/61! ~ 1e-66): independent of the library's expm1 form. */
static double complex t_phi1(double complex z)
{
    double complex h = 1.0;
    for (int k = 61; k >= 2; k--)
        h = 1.0 + z * h / (double)k;
    return h;
}

static double s4k_loss(void *c)
{
    const s4k_ctx *q = c;
    const double al = q->method == SSM_BILINEAR ? 0.5 : q->method == SSM_EULER ? 0.0 : 1.0;
    double loss = 0.0;
    for (int64_t k = 0; k < q->n; k++) {
        const double complex lam = tu_cmplx(q->lr[k], q->li[k]), z = q->dt * lam;
        const double complex Bk = tu_cmplx(q->br[k], q->bi[k]), Ck = tu_cmplx(q->cr[k], q->ci[k]);
        double complex Ad, Bd;
        if (q->method == SSM_ZOH) {
            Ad = cexp(z);
            Bd = q->dt * t_phi1(z) * Bk;
        } else {
            Ad = (1.0 + (1.0 - al) * z) / (1.0 - al * z);
            Bd = q->dt * Bk / (1.0 - al * z);
        }
        double complex p = Ck * Bd;
        for (int64_t l = 0; l < q->L; l++) {
            loss += q->dK[l] * creal(p);
            p *= Ad;
        }
    }
    return loss;
}

/* FD with a data-driven truncation estimate: bound = |fd(h) - fd(2h)|
 * (~3x the O(h^2) truncation of fd(h)) + rounding 16 eps_d |Loss| / h +
 * 64 L eps_d max|grad| (Horner sums in the library). */
static double s4k_check(s4k_ctx *c, double *x, int64_t n, const double *g, int stride,
                        const char *name)
{
    double worst = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(g[i * stride]));
    for (int64_t i = 0; i < n; i++) {
        const double v = x[i], h = 1e-6 * fmax(1.0, fabs(v));
        double fd[2], lmax = 0.0;
        for (int s = 0; s < 2; s++) {
            const double hs = h * (s + 1);
            x[i] = v + hs;
            const double lp = s4k_loss(c);
            x[i] = v - hs;
            const double lm = s4k_loss(c);
            x[i] = v;
            fd[s] = (lp - lm) / (2.0 * hs);
            lmax = fmax(lmax, fmax(fabs(lp), fabs(lm)));
        }
        const double bound = fabs(fd[0] - fd[1]) + 16.0 * DBL_EPSILON * lmax / h
                             + 64.0 * (double)c->L * DBL_EPSILON * scale;
        worst = fmax(worst, fabs(g[i * stride] - fd[0]) / bound);
    }
    printf("  %-8s worst error/bound %.3f\n", name, worst);
    return worst;
}

START_TEST(s4d_kernel_matches_finite_differences)
{
    static const ssm_disc methods[] = { SSM_ZOH, SSM_BILINEAR, SSM_EULER, SSM_BACKWARD_EULER };
    const ssm_disc method = methods[_i % 4];
    const int64_t n = 6, L = _i < 4 ? 40 : 1;
    tu_rng r = { 500u + (uint64_t)_i };
    s4k_ctx c = { method, n, L, tu_alloc(n, 8), tu_alloc(n, 8), tu_alloc(n, 8), tu_alloc(n, 8),
                  tu_alloc(n, 8), tu_alloc(n, 8), 0.3, tu_alloc(L, 8) };
    double complex *lam = tu_alloc(n, sizeof(double complex)), *B = tu_alloc(n, sizeof(double complex));
    double complex *C = tu_alloc(n, sizeof(double complex));
    double complex *dl = tu_alloc(n, sizeof(double complex)), *dB = tu_alloc(n, sizeof(double complex));
    double complex *dC = tu_alloc(n, sizeof(double complex));
    for (int64_t k = 0; k < n; k++) {
        /* |z| from ~0.04 to ~1.5: both branches of phi1 */
        c.lr[k] = -exp(tu_range(&r, -2.0, 0.5));
        c.li[k] = k == 0 ? 0.0 : tu_range(&r, 0.0, 4.0);
        c.br[k] = tu_normal(&r); c.bi[k] = tu_normal(&r);
        c.cr[k] = tu_normal(&r); c.ci[k] = tu_normal(&r);
        lam[k] = tu_cmplx(c.lr[k], c.li[k]);
        B[k] = tu_cmplx(c.br[k], c.bi[k]);
        C[k] = tu_cmplx(c.cr[k], c.ci[k]);
    }
    c.lr[1] = -0.05;   /* a tiny z = dt lambda (Taylor branch) */
    lam[1] = tu_cmplx(c.lr[1], c.li[1] = 0.1);
    tu_fill_normal_d(&r, c.dK, L, 1.0);
    double ddt;
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, c.dt, L, c.dK, dl, dB, dC, &ddt),
                     SSM_OK);
    printf("s4d kernel backward, method %d, L %lld:\n", (int)method, (long long)L);
    const double *dlr = (const double *)dl, *dBr = (const double *)dB, *dCr = (const double *)dC;
    double w = s4k_check(&c, c.lr, n, dlr, 2, "Re dlam");
    w = fmax(w, s4k_check(&c, c.li, n, dlr + 1, 2, "Im dlam"));
    w = fmax(w, s4k_check(&c, c.br, n, dBr, 2, "Re dB"));
    w = fmax(w, s4k_check(&c, c.bi, n, dBr + 1, 2, "Im dB"));
    w = fmax(w, s4k_check(&c, c.cr, n, dCr, 2, "Re dC"));
    w = fmax(w, s4k_check(&c, c.ci, n, dCr + 1, 2, "Im dC"));
    w = fmax(w, s4k_check(&c, &c.dt, 1, &ddt, 1, "ddt"));
    TU_CHECK_ERR(w, 1.0, "s4d kernel method %d", (int)method);
    /* bad arguments */
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, 0, lam, B, C, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, c.dt, 0, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, NULL, B, C, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, NULL, C, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, NULL, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, c.dt, L, NULL, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, 0.0, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, NAN, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward((ssm_disc)9, n, lam, B, C, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    lam[2] = tu_cmplx(NAN, 0.0);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, c.dt, L, c.dK, dl, dB, dC, &ddt), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_kernel_backward(method, n, lam, B, C, c.dt, L, c.dK, NULL, NULL, NULL, NULL),
                     SSM_ERR_ARG);
    free(lam); free(B); free(C); free(dl); free(dB); free(dC);
    free(c.lr); free(c.li); free(c.br); free(c.bi); free(c.cr); free(c.ci); free(c.dK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers_bwd");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, rmsnorm_matches_finite_differences, 0, 4);
    tcase_add_loop_test(tc, conv_matches_finite_differences, 0, 5);
    tcase_add_test(tc, threads_identical_and_bad_arguments);
    tcase_add_loop_test(tc, s4d_kernel_matches_finite_differences, 0, 8);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
