/* ctest-labels: scan;train */
/*
 * test_scan_bwd.c -- ssm_selective_scan_backward, black-box: every gradient
 * against central finite differences of a double-precision forward written
 * in the test (scan_bwd_ref.h: bound and error model there), for every
 * option combination, groups, lengths 1 and primes, state sizes around the
 * vector widths; NULL gradients change no other bit; 1, 2 and 3 threads give
 * the same bytes; every bad argument.
 */
#include <ssm.h>
#include "scan_bwd_ref.h"

/* The gradients a problem can have, all allocated. */
typedef struct bgrads {
    ssm_scan_grads g;
    float *all[9];
    int64_t size[9];
} bgrads;

static void bg_make(bgrads *G, const bprob *p)
{
    const int64_t nx = p->batch * p->dim * p->len;
    const int64_t nbc = p->batch * p->ngroups * p->dstate * p->len;
    const int64_t ns = p->batch * p->dim * p->dstate;
    const int64_t sz[9] = { nx, nx, p->dim * p->dstate, nbc, nbc, p->dim, nx, p->dim, ns };
    const int have[9] = { 1, 1, 1, 1, 1, p->D != NULL, p->z != NULL, p->bias != NULL, 1 };
    memset(G, 0, sizeof *G);
    for (int i = 0; i < 9; i++) {
        G->size[i] = sz[i];
        if (have[i]) {
            G->all[i] = tu_alloc((size_t)sz[i], sizeof(float));
            /* garbage: gradients are overwritten, never accumulated */
            for (int64_t j = 0; j < sz[i]; j++)
                G->all[i][j] = 1e30f;
        }
    }
    G->g.du = G->all[0]; G->g.ddelta = G->all[1]; G->g.dA = G->all[2];
    G->g.dB = G->all[3]; G->g.dC = G->all[4]; G->g.dD = G->all[5];
    G->g.dz = G->all[6]; G->g.ddelta_bias = G->all[7]; G->g.dh0 = G->all[8];
}

static void bg_free(bgrads *G)
{
    for (int i = 0; i < 9; i++)
        free(G->all[i]);
}

/* The i-th gradient pointer of g, in the order of the struct. */
static float **gslot(ssm_scan_grads *g, int i)
{
    switch (i) {
    case 0: return &g->du;
    case 1: return &g->ddelta;
    case 2: return &g->dA;
    case 3: return &g->dB;
    case 4: return &g->dC;
    case 5: return &g->dD;
    case 6: return &g->dz;
    case 7: return &g->ddelta_bias;
    default: return &g->dh0;
    }
}

static const char *const gname[9] = { "du", "ddelta", "dA", "dB", "dC", "dD", "dz",
                                      "ddelta_bias", "dh0" };

/* Every gradient of p against finite differences (at most `count` entries
 * per array); returns the worst ratio error / bound. */
static double check_all(bprob *p, int64_t count, const char *tag)
{
    bgrads G;
    bg_make(&G, p);
    const ssm_scan_args a = bp_args(p);
    ck_assert_int_eq(ssm_selective_scan_backward(&a, p->dy, p->dhl, &G.g), SSM_OK);
    double *x[9] = { p->ud, p->deltad, p->Ad, p->Bd, p->Cd, p->Dd, p->zd, p->biasd, p->h0d };
    double worst = 0.0;
    double *h0tmp = NULL;
    if (!p->h0d) {
        /* dh0 at the zero state: differentiate through a zero h0. */
        h0tmp = tu_alloc((size_t)G.size[8], sizeof(double));
        p->h0d = h0tmp;
        x[8] = h0tmp;
    }
    for (int i = 0; i < 9; i++)
        if (G.all[i])
            worst = fmax(worst, bp_check(p, gname[i], G.all[i], x[i], G.size[i], count, tag));
    if (h0tmp) {
        p->h0d = NULL;
        free(h0tmp);
    }
    bg_free(&G);
    return worst;
}

/* Every combination of D, z, delta_bias, softplus, h0, dh_last; one group
 * and two groups. */
START_TEST(grad_all_options)
{
    const int opts = _i % 64, groups = _i < 64 ? 1 : 2;
    bprob p;
    bp_make(&p, 2, 4, 5, 7, groups, opts, 1000u + (uint64_t)_i);
    char tag[64];
    snprintf(tag, sizeof tag, "opts=%02d G=%d", opts, groups);
    const double r = check_all(&p, 1 << 30, tag);
    printf("grad %s: worst error/bound %.3f\n", tag, r);
    TU_CHECK_ERR(r, 1.0, "%s", tag);
    bp_free(&p);
}
END_TEST

/* Lengths 1, 2 and primes, state sizes 1, 3, 16 (one AVX-512 vector), 17
 * (a vector and a tail), 33; every option on. */
START_TEST(grad_lengths_and_states)
{
    static const int64_t Ls[] = { 1, 2, 13, 67, 131 };
    static const int64_t Ns[] = { 1, 3, 16, 17, 33 };
    const int64_t L = Ls[_i % 5], N = Ns[_i / 5];
    bprob p;
    bp_make(&p, 1, 3, N, L, 1, BO_ALL, 77u + (uint64_t)_i);
    char tag[64];
    snprintf(tag, sizeof tag, "L=%lld N=%lld", (long long)L, (long long)N);
    const double r = check_all(&p, 40, tag);
    printf("grad %s: worst error/bound %.3f\n", tag, r);
    TU_CHECK_ERR(r, 1.0, "%s", tag);
    bp_free(&p);
}
END_TEST

/* A length over two default checkpoint chunks (256 steps at N = 16), with
 * channels in several blocks of a group (8 per block) and two groups. */
START_TEST(grad_long_several_chunks)
{
    bprob p;
    bp_make(&p, 2, 20, 16, 300, 2, BO_ALL, 4242u);
    const double r = check_all(&p, 12, "long");
    printf("grad long (2,20,16,300) G=2: worst error/bound %.3f\n", r);
    TU_CHECK_ERR(r, 1.0, "long");
    bp_free(&p);
}
END_TEST

/* Groups of more than 8 channels run 16 channels per vector (lanes beyond
 * the group's channels padded): every option combination with a block of
 * 10 channels and a state size that is not a whole number of passes. */
START_TEST(grad_channel_vectors_all_options)
{
    const int opts = _i;
    bprob p;
    bp_make(&p, 1, 10, 5, 9, 1, opts, 3000u + (uint64_t)_i);
    char tag[64];
    snprintf(tag, sizeof tag, "cv opts=%02d", opts);
    const double r = check_all(&p, 1 << 30, tag);
    printf("grad %s: worst error/bound %.3f\n", tag, r);
    TU_CHECK_ERR(r, 1.0, "%s", tag);
    bp_free(&p);
}
END_TEST

/* Channel vectors: lengths 1 and primes across the 64-step checkpoints
 * and 512-step tiles, state sizes 1, 3, 8, 16, 17, 33; a whole block of 16
 * and a group of 16 + 13 channels (two vector blocks) in two groups. */
START_TEST(grad_channel_vectors_shapes)
{
    static const int64_t Ls[] = { 1, 13, 67, 131, 601 };
    static const int64_t Ns[] = { 1, 3, 8, 16, 17, 33 };
    const int64_t L = Ls[_i % 5], N = Ns[_i / 5];
    const int64_t dim = _i % 2 ? 16 : 58, G = _i % 2 ? 1 : 2;
    bprob p;
    bp_make(&p, 1, dim, N, L, G, BO_ALL, 5000u + (uint64_t)_i);
    char tag[64];
    snprintf(tag, sizeof tag, "cv dim=%lld G=%lld L=%lld N=%lld", (long long)dim,
             (long long)G, (long long)L, (long long)N);
    const double r = check_all(&p, 24, tag);
    printf("grad %s: worst error/bound %.3f\n", tag, r);
    TU_CHECK_ERR(r, 1.0, "%s", tag);
    bp_free(&p);
}
END_TEST

/* Wide groups: at least 32 vector blocks a group put pgb >= 2 blocks'
 * dB/dC terms into one partial, block after block (533 = 33 blocks + 5
 * channels in row blocks: groups of 2 with a last group of 1; 520 per group
 * = 32 blocks + 8 channels).  A partial overwritten instead of added, or
 * added twice, fails the dB/dC check. */
/* Every gradient of shape q = (batch, dim, N, L, G), all options, against
 * finite differences (nfd samples per gradient). */
static void grad_shape(const int64_t *q, const char *what, uint64_t seed, int nfd)
{
    bprob p;
    bp_make(&p, q[0], q[1], q[2], q[3], q[4], BO_ALL, seed);
    char tag[64];
    snprintf(tag, sizeof tag, "%s (%lld,%lld,%lld,%lld) G=%lld", what, (long long)q[0],
             (long long)q[1], (long long)q[2], (long long)q[3], (long long)q[4]);
    const double r = check_all(&p, nfd, tag);
    printf("grad %s: worst error/bound %.3f\n", tag, r);
    TU_CHECK_ERR(r, 1.0, "%s", tag);
    bp_free(&p);
}

START_TEST(grad_partial_groups)
{
    static const int64_t shp[][5] = { { 1, 533, 16, 131, 1 }, { 1, 1040, 8, 67, 2 } };
    grad_shape(shp[_i], "groups", 7100u + (uint64_t)_i, 24);
}
END_TEST

/* One long channel (batch * dim = 1, len >= 4096, dstate a multiple of 32)
 * takes the state-split path; few channels run one per unit. */
START_TEST(grad_split_path)
{
    static const int64_t shp[][5] = {
        /* batch, dim, N, L, G */
        { 1, 1, 32, 4096, 1 }, { 1, 1, 64, 4099, 1 }, { 2, 4, 6, 4099, 2 },
    };
    grad_shape(shp[_i], "split", 7000u + (uint64_t)_i, 10);
}
END_TEST

static void run_bwd(const bprob *p, const ssm_scan_grads *g)
{
    const ssm_scan_args a = bp_args(p);
    ck_assert_int_eq(ssm_selective_scan_backward(&a, p->dy, p->dhl, g), SSM_OK);
}

/* Leaving one gradient out (or keeping only one) changes no other bit. */
START_TEST(null_gradients_are_neutral)
{
    /* per-channel blocks, channel vectors, the split path */
    static const int64_t shp[][5] = {
        { 2, 12, 16, 150, 2 }, { 1, 26, 16, 150, 1 }, { 1, 1, 32, 4100, 1 },
    };
    const int64_t *sh = shp[_i];
    bprob p;
    bp_make(&p, sh[0], sh[1], sh[2], sh[3], sh[4], BO_ALL, 99u);
    bgrads ref;
    bg_make(&ref, &p);
    run_bwd(&p, &ref.g);
    for (int mode = 0; mode < 2; mode++)
        for (int drop = 0; drop < 9; drop++) {
            bgrads G;
            bg_make(&G, &p);
            ssm_scan_grads g = G.g;
            for (int i = 0; i < 9; i++)
                if (mode == 0 ? i == drop : i != drop)
                    *gslot(&g, i) = NULL;
            run_bwd(&p, &g);
            for (int i = 0; i < 9; i++)
                if (*gslot(&g, i))
                    ck_assert_msg(!memcmp(*gslot(&g, i), ref.all[i], (size_t)ref.size[i] * sizeof(float)),
                                  "%s differs when %s %s", gname[i],
                                  mode == 0 ? "dropping" : "keeping only", gname[drop]);
                else if (G.all[i])
                    ck_assert_msg(G.all[i][0] == 1e30f, "%s written though NULL", gname[i]);
            bg_free(&G);
        }
    bg_free(&ref);
    bp_free(&p);
}
END_TEST

START_TEST(threads_give_identical_bytes)
{
    /* channel vectors + a per-channel block; the split path; partial
     * groups of 2 vector blocks; a scratch above 32 MiB (dt of one vector
     * block over 17 spans: 33.5 MB), whose pieces are allocated apart
     * (selective_bwd.c, BWD_ONE_BLOCK) */
    static const int64_t shp[][5] = { { 2, 40, 16, 257, 2 }, { 1, 1, 32, 9000, 1 },
                                      { 1, 533, 16, 300, 1 }, { 1, 16, 16, 524291, 1 } };
    const int64_t *sh = shp[_i];
    bprob p;
    bp_make(&p, sh[0], sh[1], sh[2], sh[3], sh[4], BO_ALL, 5u);
    bgrads G[3];
    for (int k = 0; k < 3; k++) {
        bg_make(&G[k], &p);
        tu_set_threads(k + 1);
        run_bwd(&p, &G[k].g);
    }
    tu_set_threads(2);
    for (int k = 1; k < 3; k++)
        for (int i = 0; i < 9; i++)
            ck_assert_msg(!memcmp(G[k].all[i], G[0].all[i], (size_t)G[0].size[i] * sizeof(float)),
                          "%s differs between 1 and %d threads", gname[i], k + 1);
    for (int k = 0; k < 3; k++)
        bg_free(&G[k]);
    bp_free(&p);
}
END_TEST

/* Non-finite sequence data propagates (never inspected, never a crash). */
START_TEST(nonfinite_data_propagates)
{
    bprob p;
    bp_make(&p, 1, 2, 4, 9, 1, BO_ALL, 3u);
    p.u[5] = NAN;
    bgrads G;
    bg_make(&G, &p);
    run_bwd(&p, &G.g);
    ck_assert(isnan(G.g.du[5]) || isnan(G.g.ddelta[5]) || isnan(G.g.dA[0]));
    bg_free(&G);
    bp_free(&p);
}
END_TEST

START_TEST(bad_arguments)
{
    bprob p;
    bp_make(&p, 1, 4, 3, 5, 2, BO_ALL, 11u);
    bgrads G;
    bg_make(&G, &p);
    const ssm_scan_args good = bp_args(&p);
    ck_assert_int_eq(ssm_selective_scan_backward(&good, p.dy, p.dhl, &G.g), SSM_OK);
    /* y and h_last are ignored: NULL is fine (they are in bp_args) */
    ck_assert(good.y == NULL && good.h_last == NULL);
    ck_assert_int_eq(ssm_selective_scan_backward(NULL, p.dy, p.dhl, &G.g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_selective_scan_backward(&good, NULL, p.dhl, &G.g), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_selective_scan_backward(&good, p.dy, p.dhl, NULL), SSM_ERR_ARG);
    /* all gradients NULL: nothing to do, fine */
    ssm_scan_grads none;
    memset(&none, 0, sizeof none);
    ck_assert_int_eq(ssm_selective_scan_backward(&good, p.dy, NULL, &none), SSM_OK);

    enum { NCASE = 17 };
    for (int c = 0; c < NCASE; c++) {
        ssm_scan_args a = good;
        ssm_scan_grads g = G.g;
        switch (c) {
        case 0: a.batch = 0; break;
        case 1: a.dim = -1; break;
        case 2: a.dstate = 0; break;
        case 3: a.len = 0; break;
        case 4: a.ngroups = 0; break;
        case 5: a.ngroups = 3; break;              /* does not divide dim */
        case 6: a.batch = INT64_MAX / 2; break;     /* overflow */
        case 7: a.len = INT64_MAX / 4; a.batch = 8; break;
        case 8: a.u = NULL; break;
        case 9: a.delta = NULL; break;
        case 10: a.A = NULL; break;
        case 11: a.B = NULL; break;
        case 12: a.C = NULL; break;
        case 13: a.D = NULL; break;                 /* dD without D */
        case 14: a.z = NULL; break;                 /* dz without z */
        case 15: a.delta_bias = NULL; break;        /* ddelta_bias without bias */
        case 16: a.ngroups = 8; break;              /* more groups than channels */
        }
        ck_assert_msg(ssm_selective_scan_backward(&a, p.dy, p.dhl, &g) == SSM_ERR_ARG,
                      "bad case %d accepted", c);
        /* the absent-input cases are fine once the gradient is NULL */
        if (c >= 13 && c <= 15) {
            if (c == 13) g.dD = NULL;
            if (c == 14) g.dz = NULL;
            if (c == 15) g.ddelta_bias = NULL;
            ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, p.dhl, &g), SSM_OK);
        }
    }
    /* Sizes that pass the checks but whose workspace (checkpoints of
     * dim * dstate floats) cannot be allocated: SSM_ERR_NOMEM, no read of
     * the (small) inputs happens before the allocation. */
    {
        ssm_scan_args a = good;
        ssm_scan_grads g;
        memset(&g, 0, sizeof g);
        g.dh0 = G.g.dh0;
        /* 2^46 states: 256 TiB of checkpoints, beyond any x86-64 address
         * space, so even an overcommitting kernel refuses the mapping. */
        a.batch = 1; a.dim = (int64_t)1 << 23; a.dstate = (int64_t)1 << 23; a.len = 1;
        a.ngroups = 1; a.D = NULL; a.z = NULL; a.delta_bias = NULL;
        ck_assert_int_eq(ssm_selective_scan_backward(&a, p.dy, NULL, &g), SSM_ERR_NOMEM);
    }
    bg_free(&G);
    bp_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan_bwd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, grad_all_options, 0, 128);
    tcase_add_loop_test(tc, grad_lengths_and_states, 0, 25);
    tcase_add_test(tc, grad_long_several_chunks);
    tcase_add_loop_test(tc, grad_channel_vectors_all_options, 0, 64);
    tcase_add_loop_test(tc, grad_channel_vectors_shapes, 0, 30);
    tcase_add_loop_test(tc, grad_split_path, 0, 3);
    tcase_add_loop_test(tc, grad_partial_groups, 0, 2);
    tcase_add_loop_test(tc, null_gradients_are_neutral, 0, 3);
    tcase_add_loop_test(tc, threads_give_identical_bytes, 0, 4);
    tcase_add_test(tc, nonfinite_data_propagates);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
