/* ctest-labels: train */
/*
 * test_s4d_layer_bwd.c -- ssm_s4d_layer_backward against central finite
 * differences of a double forward written here: the discrete kernel from
 * the continuous parameters in double (ZOH: Ad = e^z, Bd = (e^z - 1)/lambda
 * B; bilinear: Ad = (1 + z/2)/(1 - z/2), Bd = dt B/(1 - z/2), z = dt
 * lambda), K[l] = Re sum_k Ce_k Bd_k Ad_k^l with Ce = 2C (LIN) or C (REAL),
 * and the direct O(L^2) causal convolution y = K * u + D u.  The loss is
 * sum dy * y, whose gradients are what the backward returns.
 *
 * Bounds (derived, printed as ratios error/bound):
 *  - du uses the layer's float kernel (float Ad, Bd, Ce: ~(l + 3) eps_f per
 *    term of K[l]) through an FFT correlation (~eps_f log2 N): per row
 *    |du err| <= 2 eps_f (L + log2 N + 4) (||Kabs|| ||dy_row|| + |D| max|dy|)
 *    with Kabs[l] = sum_k |Ce Bd| |Ad|^l (Cauchy-Schwarz on the sum);
 *  - the parameter gradients are those of the exact kernel applied to dK,
 *    whose entries carry ~eps_f log2 N sum_b ||u_bc|| ||dy_bc|| (FFT) and
 *    eps_f |dK| (float rounding):  |err| <= 2 eps_f (L + log2 N + 4)
 *    A_c sum_l |dK[l]/dtheta|, A_c = sum_b ||u_bc|| ||dy_bc||, the kernel
 *    Jacobian itself by central differences of the double kernel;
 *  - dD: a float-input double sum, 2 eps_f (L + 4) sum |dy u|;
 *  - plus the finite-difference error: 4 eps_d |loss|_abs / h (rounding)
 *    and h^2 T^3 |loss|_abs (truncation, T = the largest l dt or l dt
 *    |lambda| a third derivative brings down; 0 for the linear B, C, D, u).
 */
#include <limits.h>
#include <ssm.h>
#include "testutil.h"

#define EPSF ((double)FLT_EPSILON)

typedef struct prob {
    int64_t H, n, L, batch;
    ssm_s4d_init init;
    ssm_disc disc;
    double complex *lam, *B, *C;   /* [H][n] */
    double *dt, *D;                /* [H] */
    double *u, *dy;                /* [batch][H][L] */
    float *uf, *dyf, *Df;
} prob;

/* Double kernel of channel c into K [L]; optionally Kabs [L]. */
static void kernel_d(const prob *p, int64_t c, double *K, double *Kabs)
{
    const double cs = p->init == SSM_S4D_REAL ? 1.0 : 2.0;
    for (int64_t l = 0; l < p->L; l++) { K[l] = 0.0; if (Kabs) Kabs[l] = 0.0; }
    for (int64_t k = 0; k < p->n; k++) {
        const double complex lam = p->lam[c * p->n + k], z = p->dt[c] * lam;
        double complex Ad, Bd;
        if (p->disc == SSM_ZOH) { Ad = cexp(z); Bd = (Ad - 1.0) / lam * p->B[c * p->n + k]; }
        else { Ad = (1.0 + 0.5 * z) / (1.0 - 0.5 * z); Bd = p->dt[c] * p->B[c * p->n + k] / (1.0 - 0.5 * z); }
        double complex w = cs * p->C[c * p->n + k] * Bd;
        double a = cabs(w);
        for (int64_t l = 0; l < p->L; l++) {
            K[l] += creal(w);
            if (Kabs) Kabs[l] += a;
            w *= Ad;
            a *= cabs(Ad);
        }
    }
}

/* loss = sum dy * y (and, optionally, its absolute-value twin). */
static double loss_d(const prob *p, double *labs)
{
    double *K = malloc((size_t)p->L * sizeof *K), *Ka = malloc((size_t)p->L * sizeof *Ka);
    double s = 0.0, sa = 0.0;
    for (int64_t c = 0; c < p->H; c++) {
        kernel_d(p, c, K, Ka);
        for (int64_t b = 0; b < p->batch; b++) {
            const double *u = p->u + (b * p->H + c) * p->L, *dy = p->dy + (b * p->H + c) * p->L;
            for (int64_t t = 0; t < p->L; t++) {
                double y = p->D[c] * u[t], ya = fabs(p->D[c] * u[t]);
                for (int64_t j = 0; j <= t; j++) { y += K[t - j] * u[j]; ya += Ka[t - j] * fabs(u[j]); }
                s += dy[t] * y;
                sa += fabs(dy[t]) * ya;
            }
        }
    }
    free(K); free(Ka);
    if (labs) *labs = sa;
    return s;
}

static double worst;   /* largest ratio of the current test */

static void check(const char *what, double got, double want, double bound)
{
    const double r = fabs(got - want) / bound;
    if (r > worst) worst = r;
    ck_assert_msg(r <= 1.0, "%s: got %.12g want %.12g |err| %.3g bound %.3g ratio %.3g",
                  what, got, want, fabs(got - want), bound, r);
}

static void prob_make(prob *p, int64_t H, int64_t n, int64_t L, int64_t batch,
                      ssm_s4d_init init, ssm_disc disc, uint64_t seed)
{
    tu_rng r = { seed };
    p->H = H; p->n = n; p->L = L; p->batch = batch; p->init = init; p->disc = disc;
    p->lam = malloc((size_t)(3 * H * n) * sizeof *p->lam);
    p->B = p->lam + H * n; p->C = p->B + H * n;
    p->dt = malloc((size_t)(2 * H) * sizeof *p->dt); p->D = p->dt + H;
    const int64_t T = batch * H * L;
    p->u = malloc((size_t)(2 * T) * sizeof *p->u); p->dy = p->u + T;
    p->uf = malloc((size_t)(2 * T + H) * sizeof *p->uf); p->dyf = p->uf + T; p->Df = p->dyf + T;
    ssm_cdouble *l0 = malloc((size_t)n * sizeof *l0);
    ck_assert_int_eq(ssm_s4d_lambda(init, n, l0), SSM_OK);
    for (int64_t c = 0; c < H; c++) {
        p->dt[c] = exp(tu_range(&r, log(0.01), log(0.3)));
        p->Df[c] = (float)tu_normal(&r); p->D[c] = p->Df[c];
        for (int64_t k = 0; k < n; k++) {
            /* the init's lambda with a perturbed real part: not all equal */
            p->lam[c * n + k] = tu_cmplx(creal(l0[k]) * tu_range(&r, 0.5, 1.5), cimag(l0[k]));
            p->B[c * n + k] = tu_cmplx(tu_normal(&r), tu_normal(&r));
            p->C[c * n + k] = tu_cmplx(tu_normal(&r) * sqrt(0.5), tu_normal(&r) * sqrt(0.5));
        }
    }
    free(l0);
    for (int64_t i = 0; i < T; i++) {
        p->uf[i] = (float)tu_normal(&r); p->u[i] = p->uf[i];
        p->dyf[i] = (float)tu_normal(&r); p->dy[i] = p->dyf[i];
    }
}

static void prob_free(prob *p) { free(p->lam); free(p->dt); free(p->u); free(p->uf); }

static ssm_s4d_layer *prob_layer(const prob *p)
{
    ssm_s4d_layer *ly = NULL;
    ck_assert_int_eq(ssm_s4d_layer_create(&ly, p->H, p->n, p->init, p->disc, 1), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_set_params(ly, p->lam, p->dt, p->B, p->C, p->Df), SSM_OK);
    return ly;
}

/* Central difference of the loss in *x, step h. */
static double fd(const prob *p, double *x, double h)
{
    const double x0 = *x;
    *x = x0 + h; const double lp = loss_d(p, NULL);
    *x = x0 - h; const double lm = loss_d(p, NULL);
    *x = x0;
    return (lp - lm) / (2.0 * h);
}

/* sum_l |dK[l]/dx| for channel c by central differences of the kernel. */
static double jac_abs(const prob *p, int64_t c, double *x, double h)
{
    double *Kp = malloc((size_t)(2 * p->L) * sizeof *Kp), *Km = Kp + p->L, s = 0.0;
    const double x0 = *x;
    *x = x0 + h; kernel_d(p, c, Kp, NULL);
    *x = x0 - h; kernel_d(p, c, Km, NULL);
    *x = x0;
    for (int64_t l = 0; l < p->L; l++) s += fabs(Kp[l] - Km[l]) / (2.0 * h);
    free(Kp);
    return s;
}

static void run_case(int64_t H, int64_t n, int64_t L, int64_t batch, ssm_s4d_init init,
                     ssm_disc disc, uint64_t seed)
{
    prob p;
    prob_make(&p, H, n, L, batch, init, disc, seed);
    ssm_s4d_layer *ly = prob_layer(&p);
    const int64_t T = batch * H * L, Hn = H * n;
    float *du = malloc((size_t)(T + H) * sizeof *du), *dD = du + T;
    ssm_cdouble *dl = malloc((size_t)(3 * Hn) * sizeof *dl), *dB = dl + Hn, *dC = dB + Hn;
    double *ddt = malloc((size_t)H * sizeof *ddt);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, du, dl, ddt, dB, dC, dD),
                     SSM_OK);
    double labs;
    (void)loss_d(&p, &labs);
    double nfft = 1.0;
    while (nfft < 2.0 * (double)L) nfft *= 2.0;
    const double grow = 2.0 * EPSF * ((double)L + log2(nfft) + 4.0);
    double *K = malloc((size_t)(2 * L) * sizeof *K), *Ka = K + L;
    char what[96];
    for (int64_t c = 0; c < H; c++) {
        kernel_d(&p, c, K, Ka);
        double kn = 0.0, lmax = 0.0;
        for (int64_t l = 0; l < L; l++) kn += Ka[l] * Ka[l];
        kn = sqrt(kn);
        for (int64_t k = 0; k < n; k++) lmax = fmax(lmax, cabs(p.lam[c * n + k]));
        double A = 0.0, sdu = 0.0;
        for (int64_t b = 0; b < batch; b++) {
            double nu = 0.0, nd = 0.0, md = 0.0;
            for (int64_t t = 0; t < L; t++) {
                const int64_t i = (b * H + c) * L + t;
                nu += p.u[i] * p.u[i]; nd += p.dy[i] * p.dy[i]; md = fmax(md, fabs(p.dy[i]));
                sdu += fabs(p.dy[i] * p.u[i]);
            }
            A += sqrt(nu) * sqrt(nd);
            /* du: linear in u, so the central difference is exact up to
             * rounding; h = 1 keeps that rounding at eps_d |loss|_abs. */
            for (int64_t t = 0; t < L; t++) {
                const int64_t i = (b * H + c) * L + t;
                snprintf(what, sizeof what, "du[%lld][%lld][%lld]", (long long)b, (long long)c, (long long)t);
                check(what, du[i], fd(&p, &p.u[i], 1.0),
                      grow * (kn * sqrt(nd) + fabs(p.D[c]) * md) + 4.0 * DBL_EPSILON * labs);
            }
        }
        snprintf(what, sizeof what, "dD[%lld]", (long long)c);
        check(what, dD[c], fd(&p, &p.D[c], 1.0),
              2.0 * EPSF * ((double)L + 4.0) * sdu + 4.0 * DBL_EPSILON * labs);
        /* dt: relative step; third derivative ~ (L |lambda|)^3 */
        {
            const double h = 1e-5 * p.dt[c], Tt = (double)L * lmax;
            snprintf(what, sizeof what, "ddt[%lld]", (long long)c);
            check(what, ddt[c], fd(&p, &p.dt[c], h),
                  grow * A * jac_abs(&p, c, &p.dt[c], h) +
                      (4.0 * DBL_EPSILON / h + h * h * Tt * Tt * Tt) * labs);
        }
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = c * n + k;
            struct { const char *nm; double complex *x; ssm_cdouble g; double T; } ps[3] = {
                { "dlambda", &p.lam[i], dl[i], (double)L * p.dt[c] },
                { "dB", &p.B[i], dB[i], 0.0 },
                { "dC", &p.C[i], dC[i], 0.0 } };
            for (int q = 0; q < 3; q++)
                for (int part = 0; part < 2; part++) {
                    double *x = (double *)ps[q].x + part;   /* C11 6.2.5p13 */
                    const double h = 1e-5;
                    const double got = part ? cimag(ps[q].g) : creal(ps[q].g);
                    snprintf(what, sizeof what, "%s[%lld][%lld].%s", ps[q].nm, (long long)c,
                             (long long)k, part ? "im" : "re");
                    check(what, got, fd(&p, x, h),
                          grow * A * jac_abs(&p, c, x, h) +
                              (4.0 * DBL_EPSILON / h + h * h * pow(ps[q].T, 3)) * labs);
                }
        }
    }
    free(K); free(du); free(dl); free(ddt);
    ssm_s4d_layer_destroy(ly);
    prob_free(&p);
}

START_TEST(fd_all)
{
    static const int64_t Ls[] = {1, 7, 33};
    static const ssm_s4d_init ini[] = {SSM_S4D_LIN, SSM_S4D_REAL};
    static const ssm_disc dis[] = {SSM_ZOH, SSM_BILINEAR};
    uint64_t seed = 100;
    for (int ii = 0; ii < 2; ii++)
        for (int di = 0; di < 2; di++) {
            worst = 0.0;
            for (int li = 0; li < 3; li++)
                for (int64_t H = 1; H <= 3; H += 2)
                    for (int64_t n = 1; n <= 4; n += 3)
                        for (int64_t b = 1; b <= 2; b++)
                            run_case(H, n, Ls[li], b, ini[ii], dis[di], seed++);
            printf("s4d_layer_backward %s %s: worst error/bound %.3g\n",
                   ini[ii] == SSM_S4D_LIN ? "LIN" : "REAL",
                   dis[di] == SSM_ZOH ? "ZOH" : "BILINEAR", worst);
        }
}
END_TEST

/* All outputs of one call, for byte comparisons. */
typedef struct outs { float *du, *dD; ssm_cdouble *dl, *dB, *dC; double *ddt; } outs;
static void outs_alloc(outs *o, int64_t T, int64_t H, int64_t Hn)
{
    o->du = calloc((size_t)(T + H), sizeof *o->du); o->dD = o->du + T;
    o->dl = calloc((size_t)(3 * Hn), sizeof *o->dl); o->dB = o->dl + Hn; o->dC = o->dB + Hn;
    o->ddt = calloc((size_t)H, sizeof *o->ddt);
}
static void outs_free(outs *o) { free(o->du); free(o->dl); free(o->ddt); }

START_TEST(threads_and_nulls)
{
    prob p;
    const int64_t H = 5, n = 8, L = 300, batch = 3, T = batch * H * L, Hn = H * n;
    prob_make(&p, H, n, L, batch, SSM_S4D_LIN, SSM_ZOH, 7);
    ssm_s4d_layer *ly = prob_layer(&p);
    outs o[3];
    for (int t = 0; t < 3; t++) {
        outs_alloc(&o[t], T, H, Hn);
        tu_set_threads(t + 1);
        ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, o[t].du, o[t].dl,
                                                o[t].ddt, o[t].dB, o[t].dC, o[t].dD), SSM_OK);
    }
    tu_set_threads(1);
    for (int t = 1; t < 3; t++) {
        ck_assert(memcmp(o[0].du, o[t].du, (size_t)(T + H) * sizeof(float)) == 0);
        ck_assert(memcmp(o[0].dl, o[t].dl, (size_t)(3 * Hn) * sizeof(ssm_cdouble)) == 0);
        ck_assert(memcmp(o[0].ddt, o[t].ddt, (size_t)H * sizeof(double)) == 0);
    }
    /* each output alone gives the same bytes as with all the others */
    outs s;
    outs_alloc(&s, T, H, Hn);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, s.du, NULL, NULL, NULL, NULL, NULL), SSM_OK);
    ck_assert(memcmp(s.du, o[0].du, (size_t)T * sizeof(float)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, NULL, NULL, NULL, NULL, s.dD), SSM_OK);
    ck_assert(memcmp(s.dD, o[0].dD, (size_t)H * sizeof(float)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, s.dl, NULL, NULL, NULL, NULL), SSM_OK);
    ck_assert(memcmp(s.dl, o[0].dl, (size_t)Hn * sizeof(ssm_cdouble)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, NULL, s.ddt, NULL, NULL, NULL), SSM_OK);
    ck_assert(memcmp(s.ddt, o[0].ddt, (size_t)H * sizeof(double)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, NULL, NULL, s.dB, NULL, NULL), SSM_OK);
    ck_assert(memcmp(s.dB, o[0].dB, (size_t)Hn * sizeof(ssm_cdouble)) == 0);
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, NULL, NULL, NULL, s.dC, NULL), SSM_OK);
    ck_assert(memcmp(s.dC, o[0].dC, (size_t)Hn * sizeof(ssm_cdouble)) == 0);
    /* all NULL: nothing to do, still OK */
    ck_assert_int_eq(ssm_s4d_layer_backward(ly, batch, L, p.uf, p.dyf, NULL, NULL, NULL, NULL, NULL, NULL), SSM_OK);
    outs_free(&s);
    for (int t = 0; t < 3; t++) outs_free(&o[t]);
    ssm_s4d_layer_destroy(ly);
    prob_free(&p);
}
END_TEST

START_TEST(bad_args)
{
    prob p;
    prob_make(&p, 2, 3, 8, 1, SSM_S4D_LIN, SSM_ZOH, 9);
    ssm_s4d_layer *ly = prob_layer(&p);
    float du[16], dD[2];
    ssm_cdouble dl[6];
    struct { const char *what; const ssm_s4d_layer *ly; int64_t b, L; const float *u, *dy; ssm_status want; } t[] = {
        { "layer NULL", NULL, 1, 8, p.uf, p.dyf, SSM_ERR_ARG },
        { "u NULL", ly, 1, 8, NULL, p.dyf, SSM_ERR_ARG },
        { "dy NULL", ly, 1, 8, p.uf, NULL, SSM_ERR_ARG },
        { "batch 0", ly, 0, 8, p.uf, p.dyf, SSM_ERR_ARG },
        { "batch -1", ly, -1, 8, p.uf, p.dyf, SSM_ERR_ARG },
        { "L 0", ly, 1, 0, p.uf, p.dyf, SSM_ERR_ARG },
        { "L -5", ly, 1, -5, p.uf, p.dyf, SSM_ERR_ARG },
        { "batch overflow", ly, INT64_MAX / 2, 8, p.uf, p.dyf, SSM_ERR_ARG },
        { "L overflow", ly, 1, INT64_MAX / 2, p.uf, p.dyf, SSM_ERR_ARG },
        { "L too large for FFT", ly, 1, (int64_t)1 << 40, p.uf, p.dyf, SSM_ERR_ARG },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const ssm_status st = ssm_s4d_layer_backward(t[i].ly, t[i].b, t[i].L, t[i].u, t[i].dy,
                                                     du, dl, NULL, NULL, NULL, dD);
        ck_assert_msg(st == t[i].want, "%s: status %d, want %d", t[i].what, (int)st, (int)t[i].want);
    }
    ssm_s4d_layer_destroy(ly);
    prob_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("s4d_layer_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fd_all);
    tcase_add_test(tc, threads_and_nulls);
    tcase_add_test(tc, bad_args);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
