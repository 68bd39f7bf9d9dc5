/* ctest-labels: train */
/*
 * test_train.c -- AdamW, gradient-norm clipping and the warmup + cosine
 * schedule (ssm/train.h), black-box: against literal double-precision
 * implementations of PyTorch's formulas written here, closed-form schedule
 * values, thread-count independence, and every bad argument.
 */
#include <ssm.h>
#include "testutil.h"

/* torch.optim.AdamW, one step, in double (the reference). */
static void adamw_ref(const ssm_adamw_config *c, int64_t step, int64_t n,
                      double *p, const double *g, double *m, double *v)
{
    const double bc1 = 1.0 - pow(c->beta1, (double)step);
    const double bc2 = 1.0 - pow(c->beta2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        p[i] *= 1.0 - c->lr * c->weight_decay;
        m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * g[i] * g[i];
        const double mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= c->lr * mhat / (sqrt(vhat) + c->eps);
    }
}

/* 20 steps with the warmup + cosine schedule, gradients N(0, s) with
 * scales spanning 1e-4..1e2 (so eps matters for some elements).
 * Error model: each float step adds a few rounding errors of relative
 * size eps_f to p (one rounding of the decay, one of the subtraction) and
 * to the update (lr scale: |mhat / (sqrt(vhat) + eps)| stays below ~3 for
 * these betas and steps):
 *   |p - p_ref| <= 2 steps eps_f (|p| + 3 lr_max steps). */
START_TEST(adamw_matches_double_reference)
{
    enum { n = 4099, steps = 20 };
    tu_rng r = { 12345u };
    float *p = tu_alloc(n, sizeof(float)), *g = tu_alloc(n, sizeof(float));
    float *m = tu_alloc(n, sizeof(float)), *v = tu_alloc(n, sizeof(float));
    double *pd = tu_alloc(n, sizeof(double)), *gd = tu_alloc(n, sizeof(double));
    double *md = tu_alloc(n, sizeof(double)), *vd = tu_alloc(n, sizeof(double));
    for (int64_t i = 0; i < n; i++)
        pd[i] = p[i] = (float)tu_normal(&r);
    ssm_adamw_config c = { 1e-3, 0.9, 0.999, 1e-8, 0.1 };
    const double lr_max = 3e-3;
    for (int s = 1; s <= steps; s++) {
        ck_assert_int_eq(ssm_lr_warmup_cosine(s - 1, 5, steps, lr_max, 1e-4, &c.lr), SSM_OK);
        for (int64_t i = 0; i < n; i++) {
            const double scale = pow(10.0, -4.0 + 6.0 * (double)(i % 7) / 6.0);
            gd[i] = g[i] = (float)(scale * tu_normal(&r));
        }
        ck_assert_int_eq(ssm_adamw_step(&c, s, n, p, g, m, v), SSM_OK);
        adamw_ref(&c, s, n, pd, gd, md, vd);
    }
    double err = 0.0, pmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)p[i] - pd[i]));
        pmax = fmax(pmax, fabs(pd[i]));
    }
    const double bound = 2.0 * steps * FLT_EPSILON * (pmax + 3.0 * lr_max * steps);
    printf("adamw: max error %.3e, bound %.3e, ratio %.3f\n", err, bound, err / bound);
    TU_CHECK_ERR(err, bound, "adamw vs double");
    /* The steps did something far above the tolerance (weight decay and
     * updates of ~lr per step): */
    tu_rng r0 = { 12345u };
    double moved = 0.0;
    for (int64_t i = 0; i < n; i++)
        moved = fmax(moved, fabs(pd[i] - tu_normal(&r0)));
    printf("adamw: parameters moved by up to %.3e\n", moved);
    ck_assert(moved > 100.0 * bound);
    free(p); free(g); free(m); free(v); free(pd); free(gd); free(md); free(vd);
}
END_TEST

START_TEST(adamw_threads_identical)
{
    enum { n = 100003 };
    tu_rng r = { 7u };
    float *base = tu_alloc(n, sizeof(float)), *g = tu_alloc(n, sizeof(float));
    tu_fill_normal_f(&r, base, n, 1.0);
    tu_fill_normal_f(&r, g, n, 1.0);
    float *out[3];
    const ssm_adamw_config c = { 1e-3, 0.9, 0.95, 1e-8, 0.01 };
    for (int k = 0; k < 3; k++) {
        out[k] = tu_alloc(3 * n, sizeof(float));
        memcpy(out[k], base, n * sizeof(float));
        tu_set_threads(k + 1);
        for (int s = 1; s <= 3; s++)
            ck_assert_int_eq(ssm_adamw_step(&c, s, n, out[k], g, out[k] + n, out[k] + 2 * n),
                             SSM_OK);
    }
    tu_set_threads(2);
    ck_assert(!memcmp(out[0], out[1], 3 * n * sizeof(float)));
    ck_assert(!memcmp(out[0], out[2], 3 * n * sizeof(float)));
    ck_assert(memcmp(out[0], base, n * sizeof(float)) != 0);
    for (int k = 0; k < 3; k++)
        free(out[k]);
    free(base);
    free(g);
}
END_TEST

START_TEST(adamw_bad_arguments)
{
    float p[4] = { 0 }, g[4] = { 0 }, m[4] = { 0 }, v[4] = { 0 };
    const ssm_adamw_config ok = { 1e-3, 0.9, 0.999, 1e-8, 0.01 };
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 4, p, g, m, v), SSM_OK);
    ck_assert_int_eq(ssm_adamw_step(NULL, 1, 4, p, g, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 0, 4, p, g, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 0, p, g, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, INT64_MAX, p, g, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 4, NULL, g, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 4, p, NULL, m, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 4, p, g, NULL, v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_adamw_step(&ok, 1, 4, p, g, m, NULL), SSM_ERR_ARG);
    const double badv[] = { -1.0, NAN, INFINITY };
    for (int f = 0; f < 5; f++)
        for (int b = 0; b < 3; b++) {
            ssm_adamw_config c = ok;
            double *fld[5] = { &c.lr, &c.beta1, &c.beta2, &c.eps, &c.weight_decay };
            *fld[f] = badv[b];
            ck_assert_msg(ssm_adamw_step(&c, 1, 4, p, g, m, v) == SSM_ERR_ARG,
                          "field %d value %g accepted", f, badv[b]);
        }
    ssm_adamw_config c = ok;
    c.beta1 = 1.0;
    ck_assert_int_eq(ssm_adamw_step(&c, 1, 4, p, g, m, v), SSM_ERR_ARG);
    c = ok;
    c.beta2 = 1.0;
    ck_assert_int_eq(ssm_adamw_step(&c, 1, 4, p, g, m, v), SSM_ERR_ARG);
}
END_TEST

/* Clipping: the norm against a long double sum; the scaled gradients
 * against max_norm / (norm + 1e-6) g in double (one float rounding of
 * the product plus the coefficient's: 2 eps_f relative). */
START_TEST(clip_matches_reference)
{
    const int64_t sizes[3] = { 70001, 5, 131072 };
    float *g[3], *g0[3];
    tu_rng r = { 99u };
    long double ss = 0;
    for (int i = 0; i < 3; i++) {
        g[i] = tu_alloc((size_t)sizes[i], sizeof(float));
        g0[i] = tu_alloc((size_t)sizes[i], sizeof(float));
        tu_fill_normal_f(&r, g[i], sizes[i], 0.01 * (i + 1));
        memcpy(g0[i], g[i], (size_t)sizes[i] * sizeof(float));
        for (int64_t e = 0; e < sizes[i]; e++)
            ss += (long double)g[i][e] * g[i][e];
    }
    const double norm_ref = (double)sqrtl(ss);
    double norm;
    /* above the norm: untouched */
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, 2.0 * norm_ref, &norm), SSM_OK);
    const double nerr = fabs(norm - norm_ref) / norm_ref;
    const double nbound = 4.0 * DBL_EPSILON * (double)(sizes[0] + sizes[1] + sizes[2]);
    printf("clip: norm rel error %.2e, bound %.2e, ratio %.3f\n", nerr, nbound, nerr / nbound);
    TU_CHECK_ERR(nerr, nbound, "norm");
    for (int i = 0; i < 3; i++)
        ck_assert(!memcmp(g[i], g0[i], (size_t)sizes[i] * sizeof(float)));
    /* below: scaled */
    const double maxn = 0.25 * norm_ref;
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, maxn, NULL), SSM_OK);
    const double coef = maxn / (norm_ref + 1e-6);
    double worst = 0.0;
    long double ss2 = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; e < sizes[i]; e++) {
            const double ref = coef * (double)g0[i][e];
            if (ref != 0.0)
                worst = fmax(worst, fabs((double)g[i][e] - ref) / fabs(ref));
            ss2 += (long double)g[i][e] * g[i][e];
        }
    printf("clip: scaled rel error %.2e, bound %.2e, ratio %.3f; new norm %.6g (max %.6g)\n",
           worst, 2.0 * FLT_EPSILON, worst / (2.0 * FLT_EPSILON), (double)sqrtl(ss2), maxn);
    TU_CHECK_ERR(worst, 2.0 * FLT_EPSILON, "scaled");
    /* non-finite norm: error, untouched */
    memcpy(g[0], g0[0], (size_t)sizes[0] * sizeof(float));
    g[0][17] = INFINITY;
    memcpy(g0[0], g[0], (size_t)sizes[0] * sizeof(float));
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, 1.0, &norm), SSM_ERR_NUMERIC);
    ck_assert(isinf(norm));
    ck_assert(!memcmp(g[0], g0[0], (size_t)sizes[0] * sizeof(float)));
    /* threads: same norm bytes */
    g[0][17] = 0.5f;
    double nt[3];
    for (int k = 0; k < 3; k++) {
        tu_set_threads(k + 1);
        ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, 1e30, &nt[k]), SSM_OK);
    }
    tu_set_threads(2);
    ck_assert(!memcmp(&nt[0], &nt[1], sizeof(double)) && !memcmp(&nt[0], &nt[2], sizeof(double)));
    /* bad arguments */
    int64_t bads[3] = { 70001, 0, 131072 };
    float *gn[3] = { g[0], NULL, g[2] };
    ck_assert_int_eq(ssm_clip_grad_norm(NULL, sizes, 3, 1.0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, NULL, 3, 1.0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 0, 1.0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, 0.0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, NAN, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, sizes, 3, INFINITY, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(g, bads, 3, 1.0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_clip_grad_norm(gn, sizes, 3, 1.0, NULL), SSM_ERR_ARG);
    for (int i = 0; i < 3; i++) {
        free(g[i]);
        free(g0[i]);
    }
}
END_TEST

START_TEST(schedule_closed_form)
{
    double lr;
    /* warmup: linear from lr_max/warmup */
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(fabs(lr - 0.1) <= 4 * DBL_EPSILON);
    ck_assert_int_eq(ssm_lr_warmup_cosine(9, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(fabs(lr - 1.0) <= 4 * DBL_EPSILON);
    /* start of the decay: lr_max; middle: (max + min) / 2; end: lr_min */
    ck_assert_int_eq(ssm_lr_warmup_cosine(10, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(fabs(lr - 1.0) <= 4 * DBL_EPSILON);
    ck_assert_int_eq(ssm_lr_warmup_cosine(60, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(fabs(lr - 0.55) <= 4 * DBL_EPSILON);
    ck_assert_int_eq(ssm_lr_warmup_cosine(35, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(fabs(lr - (0.1 + 0.45 * (1.0 + sqrt(0.5)))) <= 8 * DBL_EPSILON);
    ck_assert_int_eq(ssm_lr_warmup_cosine(110, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(lr == 0.1);
    ck_assert_int_eq(ssm_lr_warmup_cosine(1000, 10, 110, 1.0, 0.1, &lr), SSM_OK);
    ck_assert(lr == 0.1);
    /* no warmup; monotone decay */
    double prev = INFINITY;
    for (int s = 0; s <= 50; s++) {
        ck_assert_int_eq(ssm_lr_warmup_cosine(s, 0, 50, 2.0, 0.0, &lr), SSM_OK);
        ck_assert(lr <= prev && lr >= 0.0);
        prev = lr;
    }
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 0, 50, 2.0, 0.0, &lr), SSM_OK);
    ck_assert(lr == 2.0);
    /* bad arguments */
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, 1.0, 0.1, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(-1, 10, 110, 1.0, 0.1, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, -1, 110, 1.0, 0.1, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 9, 1.0, 0.1, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, NAN, 0.1, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, 1.0, -0.1, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, 1.0, 2.0, &lr), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_lr_warmup_cosine(0, 10, 110, INFINITY, 0.1, &lr), SSM_ERR_ARG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, adamw_matches_double_reference);
    tcase_add_test(tc, adamw_threads_identical);
    tcase_add_test(tc, adamw_bad_arguments);
    tcase_add_test(tc, clip_matches_reference);
    tcase_add_test(tc, schedule_closed_form);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
