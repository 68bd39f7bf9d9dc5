/* ctest-labels: train;mamba2 */
/*
 * test_ssd_bwd.c -- ssm_ssd_scan_backward (ssm/ssd.h), black-box: every
 * gradient against central finite differences of a double forward of the
 * SSD recurrence written here (Dao and Gu 2024, eq. 1, scalar A per head,
 * with Mamba-2's dt processing, D, the silu(z) gate, h0 and a loss term on
 * h_last), over option combinations, lengths spanning several checkpoint
 * chunks, 1 and 2 groups; NULL gradients bitwise neutral; thread counts
 * 1/2/3 identical bytes; bad arguments.
 *
 * Error model: the library runs the recurrence and its adjoint in float
 * (each gradient element a float sum over at most L steps of P or N term
 * dot products, the per-token scalars in double), so the error of one
 * gradient is ~ (L + N + P) u times the largest magnitude involved; bound
 * 4 (L + N + P + 4) eps_f max|grad of that tensor| plus the finite
 * difference's own error (step 1e-5 relative: truncation ~1e-10 |f'''|,
 * rounding 16 eps_d |Loss| / step), the form of test_scan_bwd.
 */
#include <ssm.h>
#include "testutil.h"

typedef struct prob {
    int64_t B, L, H, P, N, G;
    int Dmode;      /* 0 none, 1 per head, 2 per channel */
    int z, bias, softplus, h0, dhl;
    double dtmin, dtmax;
    /* double inputs */
    double *x, *dt, *A, *Bm, *Cm, *D, *zz, *db, *h0v, *dy, *dhlv;
} prob;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static double fwd_loss(const prob *q)
{
    const int64_t B = q->B, L = q->L, H = q->H, P = q->P, N = q->N, G = q->G,
                  hpg = H / G;
    double *S = malloc((size_t)(P * N) * sizeof(double));
    double loss = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / hpg;
            for (int64_t i = 0; i < P * N; i++)
                S[i] = q->h0 ? q->h0v[(b * H + h) * P * N + i] : 0.0;
            for (int64_t t = 0; t < L; t++) {
                double v = q->dt[(b * L + t) * H + h];
                if (q->bias)
                    v += q->db[h];
                if (q->softplus && v <= 20.0)
                    v = log1p(exp(v));
                if (v < q->dtmin) v = q->dtmin;
                if (v > q->dtmax) v = q->dtmax;
                const double a = exp(v * q->A[h]);
                const double *x = q->x + ((b * L + t) * H + h) * P;
                const double *Bv = q->Bm + ((b * L + t) * G + g) * N;
                const double *Cv = q->Cm + ((b * L + t) * G + g) * N;
                for (int64_t p = 0; p < P; p++) {
                    double y = 0.0;
                    for (int64_t n = 0; n < N; n++) {
                        S[p * N + n] = a * S[p * N + n] + v * x[p] * Bv[n];
                        y += Cv[n] * S[p * N + n];
                    }
                    if (q->Dmode == 1) y += q->D[h] * x[p];
                    if (q->Dmode == 2) y += q->D[h * P + p] * x[p];
                    if (q->z) {
                        const double zz = q->zz[((b * L + t) * H + h) * P + p];
                        y *= zz * sigm(zz);
                    }
                    loss += q->dy[((b * L + t) * H + h) * P + p] * y;
                }
            }
            if (q->dhl)
                for (int64_t i = 0; i < P * N; i++)
                    loss += q->dhlv[(b * H + h) * P * N + i] * S[i];
        }
    free(S);
    return loss;
}

static float *to_f(const double *d, int64_t n)
{
    float *f = tu_alloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
    return f;
}

/* Round the double inputs to float so the library and the reference see
 * the same numbers. */
static double *mk(tu_rng *r, int64_t n, double lo, double hi)
{
    double *d = tu_alloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++) d[i] = (float)tu_range(r, lo, hi);
    return d;
}

static double fd_check(prob *q, double *theta, int64_t n, const float *g,
                       double eps_scale, const char *name, const char *what)
{
    double err = 0.0, scale = 0.0, fderr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double v = theta[i], hs = 1e-5 * fmax(1.0, fabs(v));
        theta[i] = v + hs; const double lp = fwd_loss(q);
        theta[i] = v - hs; const double lm = fwd_loss(q);
        theta[i] = v;
        const double fd = (lp - lm) / (2.0 * hs);
        fderr = fmax(fderr, 16.0 * DBL_EPSILON * fmax(fabs(lp), fabs(lm)) / hs + 1e-9 * fabs(fd));
        err = fmax(err, fabs((double)g[i] - fd));
        scale = fmax(scale, fabs(fd));
    }
    const double bound = eps_scale * FLT_EPSILON * scale + fderr + 1e-30;
    TU_CHECK_ERR(err, bound, "%-8s %s", name, what);
    return err / bound;
}

static void run(int64_t B, int64_t L, int64_t H, int64_t P, int64_t N, int64_t G,
                unsigned opts, uint64_t seed)
{
    prob q;
    memset(&q, 0, sizeof q);
    q.B = B; q.L = L; q.H = H; q.P = P; q.N = N; q.G = G;
    q.Dmode = (int)(opts % 3);
    q.z = (opts >> 2) & 1; q.bias = (opts >> 3) & 1; q.softplus = (opts >> 4) & 1;
    q.h0 = (opts >> 5) & 1; q.dhl = (opts >> 6) & 1;
    const int clamp = (opts >> 7) & 1;
    q.dtmin = clamp ? (double)0.06f : 0.0;   /* the float bounds the library sees */
    q.dtmax = clamp ? 0.5 : INFINITY;
    tu_rng r = { seed };
    const int64_t nx = B * L * H * P, ndt = B * L * H, nbc = B * L * G * N, nh = B * H * P * N;
    const int64_t nD = q.Dmode == 2 ? H * P : H;
    q.x = mk(&r, nx, -1, 1);
    q.dt = q.softplus ? mk(&r, ndt, -3.0, 0.5) : mk(&r, ndt, 0.01, 0.6);
    q.A = mk(&r, H, -1.5, -0.2);
    q.Bm = mk(&r, nbc, -1, 1);
    q.Cm = mk(&r, nbc, -1, 1);
    q.D = mk(&r, nD, -1, 1);
    q.zz = mk(&r, nx, -2, 2);
    q.db = mk(&r, H, -0.5, 0.5);
    q.h0v = mk(&r, nh, -1, 1);
    q.dy = mk(&r, nx, -1, 1);
    q.dhlv = mk(&r, nh, -1, 1);
    /* keep the processed dt away from the clamp's kinks (the central
     * difference straddling one would be meaningless) */
    if (clamp)
        for (int64_t i = 0; i < ndt; i++)
            for (int tries = 0; tries < 100; tries++) {
                double v = q.dt[i] + (q.bias ? q.db[i % H] : 0.0);
                if (q.softplus && v <= 20.0) v = log1p(exp(v));
                if (fabs(v - q.dtmin) > 1e-3 && fabs(v - q.dtmax) > 1e-3)
                    break;
                q.dt[i] = (float)(q.dt[i] + 0.01);
            }
    float *x = to_f(q.x, nx), *dt = to_f(q.dt, ndt), *A = to_f(q.A, H),
          *Bm = to_f(q.Bm, nbc), *Cm = to_f(q.Cm, nbc), *D = to_f(q.D, nD),
          *z = to_f(q.zz, nx), *db = to_f(q.db, H), *h0 = to_f(q.h0v, nh),
          *dy = to_f(q.dy, nx), *dhl = to_f(q.dhlv, nh);
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = H; a.headdim = P; a.dstate = N; a.ngroups = G;
    a.x = x; a.dt = dt; a.A = A; a.B = Bm; a.C = Cm;
    a.D = q.Dmode ? D : NULL; a.D_per_channel = q.Dmode == 2;
    a.z = q.z ? z : NULL; a.dt_bias = q.bias ? db : NULL; a.dt_softplus = q.softplus;
    a.dt_min = (float)q.dtmin; a.dt_max = (float)q.dtmax;
    a.h0 = q.h0 ? h0 : NULL;
    ssm_ssd_grads g;
    g.dx = tu_alloc((size_t)nx, sizeof(float));
    g.ddt = tu_alloc((size_t)ndt, sizeof(float));
    g.dA = tu_alloc((size_t)H, sizeof(float));
    g.dB = tu_alloc((size_t)nbc, sizeof(float));
    g.dC = tu_alloc((size_t)nbc, sizeof(float));
    g.dD = q.Dmode ? tu_alloc((size_t)nD, sizeof(float)) : NULL;
    g.dz = q.z ? tu_alloc((size_t)nx, sizeof(float)) : NULL;
    g.ddt_bias = q.bias ? tu_alloc((size_t)H, sizeof(float)) : NULL;
    g.dh0 = tu_alloc((size_t)nh, sizeof(float));
    ck_assert_int_eq(ssm_ssd_scan_backward(&a, dy, q.dhl ? dhl : NULL, &g), SSM_OK);
    char what[128];
    snprintf(what, sizeof what, "B%lld L%lld H%lld P%lld N%lld G%lld opts 0x%02x",
             (long long)B, (long long)L, (long long)H, (long long)P, (long long)N,
             (long long)G, opts);
    const double k = 4.0 * (double)(L + N + P + 4);
    fd_check(&q, q.x, nx, g.dx, k, "dx", what);
    fd_check(&q, q.dt, ndt, g.ddt, k, "ddt", what);
    fd_check(&q, q.A, H, g.dA, k, "dA", what);
    fd_check(&q, q.Bm, nbc, g.dB, k, "dB", what);
    fd_check(&q, q.Cm, nbc, g.dC, k, "dC", what);
    if (q.Dmode) fd_check(&q, q.D, nD, g.dD, k, "dD", what);
    if (q.z) fd_check(&q, q.zz, nx, g.dz, k, "dz", what);
    if (q.bias) fd_check(&q, q.db, H, g.ddt_bias, k, "ddt_bias", what);
    /* no h0: the gradient at the zero state, which is an h0 of zeros */
    if (!q.h0) {
        memset(q.h0v, 0, (size_t)nh * sizeof(double));
        q.h0 = 1;
    }
    fd_check(&q, q.h0v, nh, g.dh0, k, "dh0", what);

    /* NULL gradients: each one alone gives the same bytes */
    float **outs[9] = { &g.dx, &g.ddt, &g.dA, &g.dB, &g.dC, &g.dD, &g.dz, &g.ddt_bias, &g.dh0 };
    const int64_t sz[9] = { nx, ndt, H, nbc, nbc, nD, nx, H, nh };
    for (int i = 0; i < 9; i++) {
        if (!*outs[i]) continue;
        ssm_ssd_grads one;
        memset(&one, 0, sizeof one);
        float **o1[9] = { &one.dx, &one.ddt, &one.dA, &one.dB, &one.dC, &one.dD, &one.dz,
                          &one.ddt_bias, &one.dh0 };
        *o1[i] = tu_alloc((size_t)sz[i], sizeof(float));
        ck_assert_int_eq(ssm_ssd_scan_backward(&a, dy, q.dhl ? dhl : NULL, &one), SSM_OK);
        ck_assert_msg(memcmp(*o1[i], *outs[i], (size_t)sz[i] * sizeof(float)) == 0,
                      "gradient %d alone differs (%s)", i, what);
        free(*o1[i]);
    }
    for (int i = 0; i < 9; i++) free(*outs[i]);
    free(x); free(dt); free(A); free(Bm); free(Cm); free(D); free(z); free(db); free(h0);
    free(dy); free(dhl);
    free(q.x); free(q.dt); free(q.A); free(q.Bm); free(q.Cm); free(q.D); free(q.zz);
    free(q.db); free(q.h0v); free(q.dy); free(q.dhlv);
}

START_TEST(vs_finite_differences)
{
    /* every option bit at least once on and off over the lengths, both
     * group counts; L 40 and 70 run 3 and 5 checkpoint chunks of 16 */
    static const unsigned optv[] = { 0x00, 0xff, 0x5d, 0xa2, 0x36, 0xc9, 0x7e, 0x91,
                                     0x1b, 0xe4 };
    static const int64_t Ls[] = { 1, 2, 7, 17, 40, 70 };
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof optv / sizeof optv[0]; i++)
        for (size_t j = 0; j < sizeof Ls / sizeof Ls[0]; j++) {
            const int64_t G = (i + j) % 2 ? 2 : 1;
            run(j % 3 == 2 ? 2 : 1, Ls[j], 4, 3, 5, G, optv[i], seed++);
        }
    /* longer: L 300 (chunk 32, 10 chunks), single head and channel, N 1 */
    run(1, 300, 1, 1, 1, 1, 0xff, 99);
    run(1, 300, 2, 2, 3, 1, 0x7c, 98);
}
END_TEST

START_TEST(threads_identical_bytes)
{
    const int64_t B = 2, L = 257, H = 8, P = 16, N = 16, G = 2;
    tu_rng r = { 5 };
    const int64_t nx = B * L * H * P, ndt = B * L * H, nbc = B * L * G * N, nh = B * H * P * N;
    float *x = tu_alloc((size_t)nx, 4), *z = tu_alloc((size_t)nx, 4), *dy = tu_alloc((size_t)nx, 4);
    float *dt = tu_alloc((size_t)ndt, 4), *Bm = tu_alloc((size_t)nbc, 4), *Cm = tu_alloc((size_t)nbc, 4);
    float *h0 = tu_alloc((size_t)nh, 4), *dhl = tu_alloc((size_t)nh, 4);
    float A[8], D[8], db[8];
    tu_fill_normal_f(&r, x, nx, 1); tu_fill_normal_f(&r, z, nx, 1); tu_fill_normal_f(&r, dy, nx, 1);
    tu_fill_normal_f(&r, dt, ndt, 1); tu_fill_normal_f(&r, Bm, nbc, 1); tu_fill_normal_f(&r, Cm, nbc, 1);
    tu_fill_normal_f(&r, h0, nh, 1); tu_fill_normal_f(&r, dhl, nh, 1);
    for (int h = 0; h < 8; h++) { A[h] = -0.3f * (float)(h + 1); D[h] = 0.5f; db[h] = -1.0f; }
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.len = L; a.nheads = H; a.headdim = P; a.dstate = N; a.ngroups = G;
    a.x = x; a.dt = dt; a.A = A; a.B = Bm; a.C = Cm; a.D = D; a.z = z; a.dt_bias = db;
    a.dt_softplus = 1; a.dt_min = 0.0f; a.dt_max = INFINITY; a.h0 = h0;
    const int64_t sz[9] = { nx, ndt, H, nbc, nbc, H, nx, H, nh };
    float *res[3][9];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 9; i++) res[k][i] = tu_alloc((size_t)sz[i], 4);
        ssm_ssd_grads g = { res[k][0], res[k][1], res[k][2], res[k][3], res[k][4], res[k][5],
                            res[k][6], res[k][7], res[k][8] };
        tu_set_threads(k + 1);
        ck_assert_int_eq(ssm_ssd_scan_backward(&a, dy, dhl, &g), SSM_OK);
    }
    tu_set_threads(2);
    for (int k = 1; k < 3; k++)
        for (int i = 0; i < 9; i++)
            ck_assert_msg(memcmp(res[k][i], res[0][i], (size_t)sz[i] * 4) == 0,
                          "threads %d gradient %d differs", k + 1, i);
    printf("threads 1/2/3: identical bytes for all nine gradients\n");
    for (int k = 0; k < 3; k++) for (int i = 0; i < 9; i++) free(res[k][i]);
    free(x); free(z); free(dy); free(dt); free(Bm); free(Cm); free(h0); free(dhl);
}
END_TEST

START_TEST(bad_arguments)
{
    float x[24] = { 0 }, dt[8] = { 0 }, A[2] = { -1, -1 }, Bm[8] = { 0 }, Cm[8] = { 0 };
    float dy[24] = { 0 }, D[2] = { 1, 1 }, z[24] = { 0 }, db[2] = { 0 };
    float gx[24], gdD[2], gdz[24], gdb[2];
    ssm_ssd_args ok;
    memset(&ok, 0, sizeof ok);
    ok.batch = 1; ok.len = 4; ok.nheads = 2; ok.headdim = 3; ok.dstate = 2; ok.ngroups = 1;
    ok.x = x; ok.dt = dt; ok.A = A; ok.B = Bm; ok.C = Cm; ok.dt_max = INFINITY;
    ssm_ssd_grads g;
    memset(&g, 0, sizeof g);
    g.dx = gx;
    ck_assert_int_eq(ssm_ssd_scan_backward(&ok, dy, NULL, &g), SSM_OK);
    ck_assert_int_eq(ssm_ssd_scan_backward(NULL, dy, NULL, &g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_backward(&ok, NULL, NULL, &g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_backward(&ok, dy, NULL, NULL), SSM_ERR_ARG);
    for (int c = 0; c < 20; c++) {
        ssm_ssd_args a = ok;
        ssm_ssd_grads gg = g;
        switch (c) {
        case 0: a.x = NULL; break;
        case 1: a.dt = NULL; break;
        case 2: a.A = NULL; break;
        case 3: a.B = NULL; break;
        case 4: a.C = NULL; break;
        case 5: a.batch = 0; break;
        case 6: a.len = 0; break;
        case 7: a.nheads = 0; break;
        case 8: a.headdim = -1; break;
        case 9: a.dstate = 0; break;
        case 10: a.ngroups = 3; break;           /* does not divide 2 */
        case 11: a.ngroups = 0; break;
        case 12: a.dt_min = NAN; break;
        case 13: a.dt_min = 1.0f; a.dt_max = 0.5f; break;
        case 14: gg.dD = gdD; break;             /* without D */
        case 15: gg.dz = gdz; break;             /* without z */
        case 16: gg.ddt_bias = gdb; break;       /* without dt_bias */
        case 17: a.len = INT64_MAX / 4; break;
        case 18: a.headdim = (int64_t)1 << 40; a.dstate = (int64_t)1 << 30; break;
        case 19: a.dt_max = NAN; break;
        }
        ck_assert_msg(ssm_ssd_scan_backward(&a, dy, NULL, &gg) == SSM_ERR_ARG, "case %d", c);
    }
    /* with their inputs the same three are fine */
    ssm_ssd_args a = ok;
    a.D = D; a.z = z; a.dt_bias = db;
    g.dD = gdD; g.dz = gdz; g.ddt_bias = gdb;
    ck_assert_int_eq(ssm_ssd_scan_backward(&a, dy, NULL, &g), SSM_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssd_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, vs_finite_differences);
    tcase_add_test(tc, threads_identical_bytes);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
