/* ctest-labels: scan;train */
/*
 * wbtest_scan_bwd_tc.c -- the time-chunked path of the selective scan
 * backward (src/scan/selective_bwd_tc.c; few long channels):
 *   - every gradient against central finite differences of the double
 *     forward of scan_bwd_ref.h (error model and bound there), for every
 *     option combination (D, z, delta_bias, softplus, h0, dh_last) with
 *     forced short chunks, lengths that are primes and not multiples of the
 *     chunk, and at shapes that take the path in ssm_selective_scan_backward
 *     with the automatic chunk;
 *   - against the sequential path on the same input (both are within
 *     rounding of the same function: the difference is bounded by the sum
 *     of their bounds);
 *   - NULL gradients change no other bit; 1, 2 and 3 threads and every ISA
 *     give the same bytes; the path is chosen as documented.
 */
#include <ssm.h>
#include "scan/selective_bwd_internal.h"
#include "scan_bwd_ref.h"

enum { NG = 9 };
static const char *const gname[NG] = { "du", "ddelta", "dA", "dB", "dC", "dD", "dz",
                                       "ddelta_bias", "dh0" };

/* The gradients a problem can have, each its own array, set to garbage
 * (gradients are overwritten, never accumulated). */
typedef struct tgrads {
    ssm_scan_grads g;
    float *all[NG];
    int64_t size[NG];
} tgrads;

static float **tg_slot(ssm_scan_grads *g, int i)
{
    float **s[NG] = { &g->du, &g->ddelta, &g->dA, &g->dB, &g->dC, &g->dD, &g->dz,
                      &g->ddelta_bias, &g->dh0 };
    return s[i];
}

static void tg_make(tgrads *G, const bprob *p)
{
    const int64_t nx = p->batch * p->dim * p->len;
    const int64_t nbc = p->batch * p->ngroups * p->dstate * p->len;
    const int64_t ns = p->batch * p->dim * p->dstate;
    const int64_t sz[NG] = { nx, nx, p->dim * p->dstate, nbc, nbc, p->dim, nx, p->dim, ns };
    const int have[NG] = { 1, 1, 1, 1, 1, p->D != NULL, p->z != NULL, p->bias != NULL, 1 };
    memset(G, 0, sizeof *G);
    for (int i = 0; i < NG; i++) {
        G->size[i] = sz[i];
        if (have[i]) {
            G->all[i] = tu_alloc((size_t)sz[i], sizeof(float));
            for (int64_t j = 0; j < sz[i]; j++)
                G->all[i][j] = 1e30f;
        }
        *tg_slot(&G->g, i) = G->all[i];
    }
}

static void tg_free(tgrads *G)
{
    for (int i = 0; i < NG; i++)
        free(G->all[i]);
}

static int tg_same(const tgrads *x, const tgrads *y, int *which)
{
    for (int i = 0; i < NG; i++)
        if (x->all[i] && memcmp(x->all[i], y->all[i], (size_t)x->size[i] * sizeof(float))) {
            *which = i;
            return 0;
        }
    return 1;
}

/* The time-chunked path with a forced chunk (0: automatic) and ISA. */
static void run_tc(const bprob *p, tgrads *G, int64_t chunk, int isa)
{
    const ssm_scan_args a = bp_args(p);
    ck_assert_int_eq(ssmi_scan_bwd_tc(&a, p->dy, p->dhl, &G->g, chunk, isa), SSM_OK);
}

/* Every gradient against finite differences (at most `count` entries per
 * array); the worst ratio error / bound. */
static double fd_all(bprob *p, const tgrads *G, int64_t count, const char *tag)
{
    double *x[NG] = { p->ud, p->deltad, p->Ad, p->Bd, p->Cd, p->Dd, p->zd, p->biasd, p->h0d };
    double *h0tmp = NULL;
    if (!p->h0d) {   /* dh0 at a zero initial state */
        h0tmp = tu_alloc((size_t)G->size[8], sizeof(double));
        p->h0d = x[8] = h0tmp;
    }
    double worst = 0.0;
    for (int i = 0; i < NG; i++)
        if (G->all[i])
            worst = fmax(worst, bp_check(p, gname[i], G->all[i], x[i], G->size[i], count, tag));
    if (h0tmp) {
        p->h0d = NULL;
        free(h0tmp);
    }
    return worst;
}

/* Every option combination with forced chunks: 131 steps (prime) in chunks
 * of 16 (9 chunks, the last of 3 steps: dA's 64-step float blocks cut by
 * the chunks too), two channels of one group, N 4. */
START_TEST(tc_all_options_fd)
{
    const int opts = _i;
    bprob p;
    bp_make(&p, 1, 2, 4, 131, 1, opts, 100u + (uint64_t)opts);
    tgrads G;
    tg_make(&G, &p);
    run_tc(&p, &G, 16, SSM_SCAN_ISA_AUTO);
    char tag[48];
    snprintf(tag, sizeof tag, "tc opts %d", opts);
    const double r = fd_all(&p, &G, 12, tag);
    TU_CHECK_ERR(r, 1.0, "%s: worst error/bound vs finite differences", tag);
    tg_free(&G);
    bp_free(&p);
}
END_TEST

/* Shapes: paired channels (N 16, two channels a group), odd state sizes,
 * two groups, batch 2, a chunk of 1 and chunks that do not divide len. */
START_TEST(tc_shapes_fd)
{
    static const int64_t shp[][6] = {
        /* batch, dim, N, L, G, chunk */
        { 1, 1, 16, 331, 1, 64 }, { 1, 4, 16, 257, 1, 32 }, { 1, 4, 16, 257, 2, 37 },
        { 2, 3, 5, 200, 1, 50 }, { 1, 3, 17, 97, 3, 1 }, { 2, 2, 33, 127, 2, 64 },
    };
    const int64_t *q = shp[_i];
    bprob p;
    bp_make(&p, q[0], q[1], q[2], q[3], q[4], BO_ALL, 200u + (uint64_t)_i);
    tgrads G;
    tg_make(&G, &p);
    run_tc(&p, &G, q[5], SSM_SCAN_ISA_AUTO);
    char tag[64];
    snprintf(tag, sizeof tag, "tc (%lld,%lld,%lld,%lld) G=%lld chunk %lld", (long long)q[0],
             (long long)q[1], (long long)q[2], (long long)q[3], (long long)q[4], (long long)q[5]);
    const double r = fd_all(&p, &G, 16, tag);
    TU_CHECK_ERR(r, 1.0, "%s: worst error/bound vs finite differences", tag);
    tg_free(&G);
    bp_free(&p);
}
END_TEST

/* Shapes that take the path in the public call (automatic chunk: 256 steps
 * at N 16, 1024 at N 4; >= 8 chunks), one a prime length. */
static const int64_t pub_shp[][5] = {
    { 1, 1, 16, 2053, 1 }, { 1, 2, 4, 8209, 1 }, { 2, 2, 16, 2048, 2 },
};

/* scan_bwd_ref.h draws dt in [0.02, 0.5]: with A in [-4, -1] the state
 * forgets a chunk of 256 steps entirely (the carries are then rounded
 * away).  Slow decays, dt in [2e-4, 2e-3] (the decay over 256 steps about
 * e^-0.5, over 1024 about e^-2), make the carries count. */
static void slow_decay(bprob *p, uint64_t seed)
{
    tu_rng r = { seed };
    const int64_t nx = p->batch * p->dim * p->len;
    for (int64_t i = 0; i < nx; i++) {
        const double dt = exp(tu_range(&r, log(2e-4), log(2e-3)));
        const double bias = p->bias ? p->bias[(i / p->len) % p->dim] : 0.0;
        p->delta[i] = (float)(p->softplus ? log(expm1(dt)) - bias : dt - bias);
        p->deltad[i] = p->delta[i];
    }
}

START_TEST(tc_public_path_fd)
{
    const int64_t *q = pub_shp[_i % 3];
    ck_assert(ssmi_scan_bwd_tc_path(q[0], q[1], q[2], q[3]));
    bprob p;
    bp_make(&p, q[0], q[1], q[2], q[3], q[4], BO_ALL, 300u + (uint64_t)_i);
    if (_i >= 3)
        slow_decay(&p, 310u + (uint64_t)_i);
    tgrads G;
    tg_make(&G, &p);
    const ssm_scan_args a = bp_args(&p);
    ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, p.dhl, &G.g), SSM_OK);
    char tag[64];
    snprintf(tag, sizeof tag, "tc public (%lld,%lld,%lld,%lld) G=%lld%s", (long long)q[0],
             (long long)q[1], (long long)q[2], (long long)q[3], (long long)q[4],
             _i >= 3 ? " slow" : "");
    const double r = fd_all(&p, &G, 8, tag);
    TU_CHECK_ERR(r, 1.0, "%s: worst error/bound vs finite differences", tag);
    tg_free(&G);
    bp_free(&p);
}
END_TEST

/* The sequential path (a forced checkpoint interval keeps it) and the
 * time-chunked path on the same input.  Each is within
 * 4 (L + N + 4) eps max|grad| of the exact gradient (scan_bwd_ref.h), so
 * their difference is within twice that; the carries in fact add only
 * O(chunks) roundings, so the ratio printed is expected far below 1. */
START_TEST(tc_matches_sequential)
{
    const int64_t *q = pub_shp[_i % 3];
    bprob p;
    bp_make(&p, q[0], q[1], q[2], q[3], q[4], BO_ALL, 400u + (uint64_t)_i);
    if (_i >= 3)
        slow_decay(&p, 410u + (uint64_t)_i);
    const ssm_scan_args a = bp_args(&p);
    tgrads T, S;
    tg_make(&T, &p);
    tg_make(&S, &p);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &T.g, 0,
                                                     SSM_SCAN_ISA_AUTO), SSM_OK);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &S.g,
                                                     ssmi_scan_bwd_auto_chunk(q[3], q[2]),
                                                     SSM_SCAN_ISA_AUTO), SSM_OK);
    const double bound = 2.0 * 4.0 * ((double)q[3] + (double)q[2] + 4.0) * FLT_EPSILON;
    double worst = 0.0;
    int differ = 0;
    for (int i = 0; i < NG; i++) {
        double err = 0.0, scale = 0.0;
        for (int64_t j = 0; j < T.size[i]; j++) {
            err = fmax(err, fabs((double)T.all[i][j] - (double)S.all[i][j]));
            scale = fmax(scale, fabs((double)S.all[i][j]));
            if (!(T.all[i][j] == T.all[i][j]))
                err = INFINITY;
        }
        differ |= err > 0.0;
        const double r = err / (bound * fmax(scale, 1e-30));
        printf("  (%lld,%lld,%lld,%lld)%s %-11s tc vs sequential: max diff %.2e, scale %.2e, "
               "ratio %.2e\n", (long long)q[0], (long long)q[1], (long long)q[2],
               (long long)q[3], _i >= 3 ? " slow" : "", gname[i], err, scale, r);
        worst = fmax(worst, r);
    }
    /* Not the same code: identical bytes would mean the path was not taken. */
    ck_assert_msg(differ, "tc and sequential gave identical bytes: path not taken?");
    TU_CHECK_ERR(worst, 1.0, "tc vs sequential (%lld,%lld,%lld,%lld)%s", (long long)q[0],
                 (long long)q[1], (long long)q[2], (long long)q[3], _i >= 3 ? " slow" : "");
    tg_free(&T);
    tg_free(&S);
    bp_free(&p);
}
END_TEST

/* 1, 2 and 3 threads, and every ISA this CPU runs, give the bytes of one
 * thread on the generic kernels (the public entry, automatic chunk). */
START_TEST(tc_threads_and_isas_identical)
{
    const int64_t *q = pub_shp[_i];
    bprob p;
    bp_make(&p, q[0], q[1], q[2], q[3], q[4], BO_ALL, 500u + (uint64_t)_i);
    const ssm_scan_args a = bp_args(&p);
    tgrads ref;
    tg_make(&ref, &p);
    tu_set_threads(1);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &ref.g, 0,
                                                     SSM_SCAN_ISA_GENERIC), SSM_OK);
    int runs = 0;
    for (int isa = SSM_SCAN_ISA_GENERIC; isa <= SSM_SCAN_ISA_AVX512; isa++) {
        if (!ssmi_scan_isa_ok(isa))
            continue;
        for (int thr = 1; thr <= 3; thr++) {
            tgrads W;
            tg_make(&W, &p);
            tu_set_threads(thr);
            ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &W.g, 0, isa),
                             SSM_OK);
            int which = -1;
            ck_assert_msg(tg_same(&W, &ref, &which), "isa %d, %d threads: %s differs", isa,
                          thr, which >= 0 ? gname[which] : "?");
            tg_free(&W);
            runs++;
        }
    }
    tu_set_threads(2);
    printf("tc (%lld,%lld,%lld,%lld): %d runs (ISAs x 1-3 threads) identical bytes\n",
           (long long)q[0], (long long)q[1], (long long)q[2], (long long)q[3], runs);
    tg_free(&ref);
    bp_free(&p);
}
END_TEST

/* Leaving one gradient out, or keeping only one, changes no other bit
 * (dD alone included: it takes the same path). */
START_TEST(tc_null_gradients_neutral)
{
    bprob p;
    bp_make(&p, 1, 2, 16, 2053, 1, BO_ALL, 600u);
    const ssm_scan_args a = bp_args(&p);
    tgrads ref;
    tg_make(&ref, &p);
    ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, p.dhl, &ref.g), SSM_OK);
    for (int mode = 0; mode < 2; mode++)
        for (int drop = 0; drop < NG; drop++) {
            tgrads W;
            tg_make(&W, &p);
            ssm_scan_grads g = W.g;
            for (int i = 0; i < NG; i++)
                if (mode == 0 ? i == drop : i != drop)
                    *tg_slot(&g, i) = NULL;
            ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, p.dhl, &g), SSM_OK);
            for (int i = 0; i < NG; i++) {
                if (*tg_slot(&g, i))
                    ck_assert_msg(!memcmp(W.all[i], ref.all[i], (size_t)ref.size[i] * sizeof(float)),
                                  "%s differs when %s %s", gname[i],
                                  mode == 0 ? "dropping" : "keeping only", gname[drop]);
                else
                    for (int64_t j = 0; j < W.size[i]; j++)
                        ck_assert_msg(W.all[i][j] == 1e30f, "%s written though NULL", gname[i]);
            }
            tg_free(&W);
        }
    tg_free(&ref);
    bp_free(&p);
}
END_TEST

/* Non-finite sequence data propagates through the carries (never
 * inspected, never a crash): a NaN in u in the first chunk reaches every
 * later state, so dA and dC of later chunks; an infinite dy in the last
 * chunk reaches the adjoint of every earlier chunk, so dh0. */
START_TEST(tc_nonfinite_propagates)
{
    bprob p;
    bp_make(&p, 1, 1, 16, 2053, 1, BO_ALL, 800u);
    p.u[100] = NAN;
    p.dy[2000] = INFINITY;
    ck_assert(ssmi_scan_bwd_tc_path(1, 1, 16, 2053));
    tgrads G;
    tg_make(&G, &p);
    const ssm_scan_args a = bp_args(&p);
    ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, p.dhl, &G.g), SSM_OK);
    ck_assert(isnan(G.g.ddelta[100]));
    ck_assert(isnan(G.g.dA[0]));
    ck_assert(isnan(G.g.dC[1500]));                  /* state n = 0, step 1500 */
    ck_assert(!isfinite(G.g.dh0[0]));
    tg_free(&G);
    bp_free(&p);
}
END_TEST

START_TEST(tc_path_is_documented)
{
    const int64_t M = (int64_t)1 << 20;
    ck_assert(ssmi_scan_bwd_tc_path(1, 1, 16, M));
    ck_assert(ssmi_scan_bwd_tc_path(1, 4, 16, (int64_t)1 << 18));
    ck_assert(ssmi_scan_bwd_tc_path(2, 4, 16, M));
    ck_assert(ssmi_scan_bwd_tc_path(1, 1, 16, 2048));     /* 8 chunks of 256 */
    ck_assert(!ssmi_scan_bwd_tc_path(1, 1, 16, 2047));    /* 7 */
    ck_assert(!ssmi_scan_bwd_tc_path(1, 9, 16, M));       /* too many channels */
    ck_assert(!ssmi_scan_bwd_tc_path(3, 3, 16, M));
    ck_assert(!ssmi_scan_bwd_tc_path(1, 1, 32, M));       /* the state split */
    ck_assert(ssmi_scan_bwd_tc_path(1, 2, 32, M));
    ck_assert_int_eq(ssmi_scan_bwd_tc_chunk(M, 16), 1024);
    ck_assert_int_eq(ssmi_scan_bwd_tc_chunk(2048, 16), 256);
}
END_TEST

START_TEST(tc_bad_arguments)
{
    bprob p;
    bp_make(&p, 1, 1, 4, 50, 1, BO_ALL, 700u);
    const ssm_scan_args a = bp_args(&p);
    tgrads G;
    tg_make(&G, &p);
    ck_assert_int_eq(ssmi_scan_bwd_tc(&a, p.dy, p.dhl, &G.g, -1, SSM_SCAN_ISA_AUTO),
                     SSM_ERR_ARG);
    ck_assert_int_eq(ssmi_scan_bwd_tc(&a, p.dy, p.dhl, &G.g, 0, 99), SSM_ERR_ARG);
    /* a chunk longer than len: one chunk, still right */
    run_tc(&p, &G, 1000, SSM_SCAN_ISA_AUTO);
    const double r = fd_all(&p, &G, 8, "tc one chunk");
    TU_CHECK_ERR(r, 1.0, "tc, chunk > len: worst error/bound vs finite differences");
    tg_free(&G);
    bp_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan_bwd_tc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, tc_all_options_fd, 0, 64);
    tcase_add_loop_test(tc, tc_shapes_fd, 0, 6);
    tcase_add_loop_test(tc, tc_public_path_fd, 0, 6);
    tcase_add_loop_test(tc, tc_matches_sequential, 0, 6);
    tcase_add_loop_test(tc, tc_threads_and_isas_identical, 0, 3);
    tcase_add_test(tc, tc_null_gradients_neutral);
    tcase_add_test(tc, tc_nonfinite_propagates);
    tcase_add_test(tc, tc_path_is_documented);
    tcase_add_test(tc, tc_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
