/* ctest-labels: mpi */
/*
 * test_mpi_mamba2.c -- ssm_mpi_mamba2_forward and
 * ssm_mpi_mamba2_stack_forward against the single-process
 * ssm_mamba2_forward / ssm_mamba2_stack_forward on the concatenated
 * sequence: outputs, the state after every rank's block (conv over xBC and
 * SSD state), decoding continued from the last rank's state; one rank:
 * identical bytes; identical bytes on a rerun and for 1, 2 OpenMP threads;
 * argument errors and disagreements agreed on every rank.
 *
 * Tolerance: each rank runs libssm's block from the state the exclusive
 * scans hand it, so the outputs differ from one process only through that
 * state: the conv context is copied exactly (xBC values of the previous
 * ranks' tokens, though computed by a product over fewer rows: in_proj, a
 * dot product of length Dm), the SSD state entering a block is the
 * composition (P2 P1, P2 S1 + S2) of the blocks' carries, one fma per
 * rank, with P = exp(A sum dt) whose dt come from a product of H rows (dt
 * ~ Dm u relative, exponent error |A sum dt| Dm u, and |A sum dt| exp(A
 * sum dt) <= 1/e).  Each output is then the block's chain of dot products
 * of lengths Dm (in_proj), K (conv), N (state readout), Di/G (the gated
 * norm's mean) and Di (out_proj) over inputs with those relative errors:
 * bound 8 u (Dm + K + N + Di/G + Di) normwise (8: the silu, exp, softplus
 * and rsqrt roundings and the carry's fmas), per layer for the stack.
 * The largest ratio error/bound is printed.
 */
#include <float.h>
#include "mpi_testutil.h"

#define U32 (FLT_EPSILON / 2)

static ssm_mamba2_config cfg_of(int norm, int dpc, int dtlim)
{
    ssm_mamba2_config c;
    ssm_mamba2_config_init(&c);
    c.d_model = 8; c.d_state = 4; c.d_conv = 4; c.expand = 2; c.headdim = 4;
    c.ngroups = 2; c.norm = norm; c.D_per_channel = dpc;
    if (dtlim) { c.dt_min = 0.002f; c.dt_max = 0.05f; }
    return c;
}

static double tol_of(const ssm_mamba2_config *c, int64_t layers)
{
    const double dm = (double)c->d_model, di = dm * (double)c->expand;
    return 8.0 * U32 * (double)layers *
           (dm + (double)c->d_conv + (double)c->d_state + di / (double)c->ngroups + di);
}

/* Every layer's state of a stack state (conv then SSM, per layer). */
static float *stack_state_floats(ssm_mamba2_stack_state *st, int64_t nl, int64_t B,
                                 int64_t nc, int64_t ns)
{
    float *f = tu_alloc((size_t)(nl * B * (nc + ns)), sizeof(float));
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba2_state *ls = NULL;
        ck_assert_int_eq(ssm_mamba2_stack_state_layer(st, l, &ls), SSM_OK);
        ck_assert_int_eq(ssm_mamba2_state_get(ls, B, f + l * B * (nc + ns),
                                              f + l * B * (nc + ns) + B * nc), SSM_OK);
    }
    return f;
}

/* nl == 0: the block; else a stack of nl layers.  pre tokens fed first
 * (rank 0's state and the reference's). */
static void run_case(int64_t nl, const ssm_mamba2_config *cfg, int pattern, int64_t base,
                     int64_t pre, uint64_t seed, const char *what)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2;
    ssm_mamba2 *blk = NULL;
    ssm_mamba2_stack *stk = NULL;
    ssm_mamba2_config rc;
    ssm_mamba2_config_init(&rc);
    if (nl == 0) {
        ck_assert_int_eq(ssm_mamba2_create(&blk, cfg, seed), SSM_OK);
        ssm_mamba2_get_config(blk, &rc);
    } else {
        ck_assert_int_eq(ssm_mamba2_stack_create(&stk, cfg, nl, seed), SSM_OK);
        ssm_mamba2 *b0;
        ssm_mamba2_stack_block(stk, 0, &b0);
        ssm_mamba2_get_config(b0, &rc);
    }
    const int64_t dm = rc.d_model, di = dm * rc.expand, N = rc.d_state, K = rc.d_conv,
                  dc = di + 2 * rc.ngroups * N, nc = dc * K, ns = di * N,
                  nls = nl ? nl : 1;
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    const int64_t off = mt_offset(len, rank), my = len[rank], myb = my ? my : 1;
    tu_rng r = { seed * 7 + 1 };
    float *xpre = tu_alloc((size_t)(B * (pre ? pre : 1) * dm), sizeof(float));
    float *ypre = tu_alloc((size_t)(B * (pre ? pre : 1) * dm), sizeof(float));
    float *x = tu_alloc((size_t)(B * L * dm), sizeof(float));
    float *yref = tu_alloc((size_t)(B * L * dm), sizeof(float));
    tu_fill_normal_f(&r, xpre, B * pre * dm, 1.0);
    tu_fill_normal_f(&r, x, B * L * dm, 1.0);

    /* States: ref (whole sequence), mine (rank 0's start; receives the
     * state after my block), upto (reference after my block). */
    ssm_mamba2_state *bs[3] = { NULL, NULL, NULL };
    ssm_mamba2_stack_state *ss[3] = { NULL, NULL, NULL };
    for (int i = 0; i < 3; i++) {
        if (blk) ck_assert_int_eq(ssm_mamba2_state_create(&bs[i], blk, B), SSM_OK);
        else ck_assert_int_eq(ssm_mamba2_stack_state_create(&ss[i], stk, B), SSM_OK);
    }
#define FWD(i, n, xx, yy) (blk ? ssm_mamba2_forward(blk, bs[i], B, n, xx, yy) \
                               : ssm_mamba2_stack_forward(stk, ss[i], B, n, xx, yy))
    if (pre > 0)
        for (int i = 0; i < 3; i++)
            if (i != 1 || rank == 0)
                ck_assert_int_eq(FWD(i, pre, xpre, ypre), SSM_OK);
    ck_assert_int_eq(FWD(0, L, x, yref), SSM_OK);
    float *xp = tu_alloc((size_t)(B * (off + my ? off + my : 1) * dm), sizeof(float));
    float *yp = tu_alloc((size_t)(B * (off + my ? off + my : 1) * dm), sizeof(float));
    if (off + my > 0) {
        mt_tok_slice(x, B, L, dm, 0, off + my, xp);
        ck_assert_int_eq(FWD(2, off + my, xp, yp), SSM_OK);
    }
    float *xb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yrb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    mt_tok_slice(x, B, L, dm, off, my, xb);
    mt_tok_slice(yref, B, L, dm, off, my, yrb);
    ssm_status s = blk ? ssm_mpi_mamba2_forward(MPI_COMM_WORLD, blk, bs[1], B, my, xb, yb)
                       : ssm_mpi_mamba2_stack_forward(MPI_COMM_WORLD, stk, ss[1], B, my, xb, yb);
    MT_EXPECT(s == SSM_OK, "%s: %s", what, ssm_status_string(s));
    const double tol = tol_of(&rc, nls);
    if (s == SSM_OK && my > 0) {
        MT_ERR(tu_relerr_ff(yb, yrb, B * my * dm), tol, "%s y, pattern %d pre %lld", what,
               pattern, (long long)pre);
        if (R == 1)
            MT_EXPECT(!memcmp(yb, yrb, (size_t)(B * my * dm) * sizeof(float)),
                      "%s: one rank, bytes differ from the single-process call", what);
    }
    /* The state after my block. */
    float *f1, *f2;
    if (blk) {
        f1 = tu_alloc((size_t)(B * (nc + ns)), sizeof(float));
        f2 = tu_alloc((size_t)(B * (nc + ns)), sizeof(float));
        ssm_mamba2_state_get(bs[1], B, f1, f1 + B * nc);
        ssm_mamba2_state_get(bs[2], B, f2, f2 + B * nc);
    } else {
        f1 = stack_state_floats(ss[1], nl, B, nc, ns);
        f2 = stack_state_floats(ss[2], nl, B, nc, ns);
    }
    if (s == SSM_OK)
        MT_ERR(tu_relerr_ff(f1, f2, nls * B * (nc + ns)), tol, "%s state, pattern %d pre %lld",
               what, pattern, (long long)pre);
    /* Decoding continues from the last rank's state. */
    if (rank == R - 1 && s == SSM_OK) {
        float t[2 * 8], o1[2 * 8], o2[2 * 8];
        for (int step = 0; step < 3; step++) {
            tu_fill_normal_f(&r, t, B * dm, 1.0);
            if (blk) {
                ssm_mamba2_step(blk, bs[1], B, t, o1);
                ssm_mamba2_step(blk, bs[0], B, t, o2);
            } else {
                ssm_mamba2_stack_step(stk, ss[1], B, t, o1);
                ssm_mamba2_stack_step(stk, ss[0], B, t, o2);
            }
            MT_ERR(tu_relerr_ff(o1, o2, B * dm), tol, "%s decode step %d", what, step);
        }
    }
#undef FWD
    free(xpre); free(ypre); free(x); free(yref); free(xp); free(yp);
    free(xb); free(yb); free(yrb); free(f1); free(f2);
    for (int i = 0; i < 3; i++) {
        ssm_mamba2_state_destroy(bs[i]);
        ssm_mamba2_stack_state_destroy(ss[i]);
    }
    ssm_mamba2_destroy(blk);
    ssm_mamba2_stack_destroy(stk);
}

START_TEST(test_block_values)
{
    const int opts[][3] = { { SSM_MAMBA2_NORM_GATED, 0, 0 }, { SSM_MAMBA2_NORM_BEFORE_GATE, 1, 0 },
                            { SSM_MAMBA2_NORM_NONE, 0, 1 }, { SSM_MAMBA2_NORM_GATED, 1, 1 } };
    for (int o = 0; o < 4; o++) {
        ssm_mamba2_config cfg = cfg_of(opts[o][0], opts[o][1], opts[o][2]);
        char what[64];
        snprintf(what, sizeof what, "block norm %d dpc %d dtlim %d", opts[o][0], opts[o][1],
                 opts[o][2]);
        for (int pattern = 0; pattern < 4; pattern++) {
            run_case(0, &cfg, pattern, 13, 0, 11 + (uint64_t)pattern, what);
            run_case(0, &cfg, pattern, 6, 5, 21 + (uint64_t)pattern, what);
        }
        run_case(0, &cfg, 2, 1, 2, 31, what);   /* blocks of 1 < d_conv: multi-hop halo */
        run_case(0, &cfg, 0, 300, 0, 41, what); /* longer blocks (several SSD chunks) */
    }
    mt_finish("Mamba-2 block forward vs single process");
}
END_TEST

START_TEST(test_stack_values)
{
    ssm_mamba2_config cfg = cfg_of(SSM_MAMBA2_NORM_GATED, 0, 0);
    for (int pattern = 0; pattern < 4; pattern++) {
        run_case(3, &cfg, pattern, 13, 0, 51 + (uint64_t)pattern, "stack");
        run_case(3, &cfg, pattern, 6, 5, 61 + (uint64_t)pattern, "stack");
    }
    run_case(3, &cfg, 2, 1, 0, 71, "stack");
    mt_finish("Mamba-2 stack forward vs single process");
}
END_TEST

/* In place, a NULL state, identical bytes on a rerun and at 2 threads. */
START_TEST(test_bytes)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2;
    ssm_mamba2_config cfg = cfg_of(SSM_MAMBA2_NORM_GATED, 0, 0);
    ssm_mamba2_stack *stk = NULL;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &cfg, 2, 9), SSM_OK);
    int64_t len[64];
    mt_split(1, R, 0, len);
    const int64_t my = len[rank], dm = cfg.d_model, n = B * my * dm;
    tu_rng r = { 99 + (uint64_t)rank };
    float *x = tu_alloc((size_t)(n ? n : 1), sizeof(float));
    float *y[3];
    tu_fill_normal_f(&r, x, n, 1.0);
    for (int run = 0; run < 3; run++) {
        tu_set_threads(run == 2 ? 2 : 1);
        y[run] = tu_alloc((size_t)(n ? n : 1), sizeof(float));
        memcpy(y[run], x, (size_t)n * sizeof(float));
        ssm_status s = ssm_mpi_mamba2_stack_forward(MPI_COMM_WORLD, stk, NULL, B, my,
                                                    y[run], y[run]);   /* in place */
        MT_EXPECT(s == SSM_OK, "run %d: %s", run, ssm_status_string(s));
    }
    tu_set_threads(1);
    for (int run = 1; run < 3; run++)
        MT_EXPECT(!memcmp(y[0], y[run], (size_t)n * sizeof(float)), "run %d: bytes differ", run);
    for (int run = 0; run < 3; run++) free(y[run]);
    free(x);
    ssm_mamba2_stack_destroy(stk);
    mt_finish("Mamba-2 stack identical bytes");
}
END_TEST

/* A bad argument or a disagreement on ONE rank: SSM_ERR_ARG everywhere. */
START_TEST(test_errors)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2;
    ssm_mamba2_config cfg = cfg_of(SSM_MAMBA2_NORM_GATED, 0, 0), cfg2 = cfg;
    cfg2.d_state = 8;
    ssm_mamba2_stack *stk, *stk_other, *stk_seed, *stk2l;
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk, &cfg, 2, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk_other, &cfg2, 2, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk_seed, &cfg, 2, 2), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_create(&stk2l, &cfg, 3, 1), SSM_OK);
    ssm_mamba2_stack_state *st, *st_other, *st1, *st_shape;
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st, stk, B), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st_other, stk2l, B), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st1, stk, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&st_shape, stk_other, B), SSM_OK);
    ssm_mamba2_state *bst_shape = NULL;
    ssm_mamba2_stack_state_layer(st_shape, 0, &bst_shape);
    ssm_mamba2 *b0, *b0o;
    ssm_mamba2_stack_block(stk, 0, &b0);
    ssm_mamba2_stack_block(stk_seed, 0, &b0o);
    float x[2 * 4 * 8] = { 0 }, y[2 * 4 * 8];
    enum { NCASE = 12 };
    for (int cs = 0; cs < NCASE; cs++)
        for (int who = 0; who < R; who++) {
            const int me = rank == who;
            const ssm_mamba2_stack *sk = stk;
            ssm_mamba2_stack_state *s = st;
            ssm_mamba2_state *bs = NULL;
            int64_t b = B, L = 4;
            const float *xx = x;
            const char *what = "";
            int blockcase = 0;
            const ssm_mamba2 *bk = b0;
            switch (cs) {
            case 0: what = "NULL stack"; if (me) sk = NULL; break;
            case 1: what = "L < 0"; if (me) L = -1; break;
            case 2: what = "NULL x"; if (me) xx = NULL; break;
            case 3: what = "batch 0"; if (me) b = 0; break;
            case 4: what = "another d_state"; if (me && R > 1) sk = stk_other; break;
            case 5: what = "other parameters"; if (me && R > 1) sk = stk_seed; break;
            case 6: what = "state of another stack"; if (me) s = st_other; break;
            case 7: what = "batch > state's max"; if (me) s = st1; break;
            case 8: what = "every block empty"; L = 0; xx = NULL; break;
            case 9:
                what = "block: other parameters";
                blockcase = 1;
                if (me && R > 1) bk = b0o;
                break;
            case 10:
                what = "stack state of another block shape (same layer count)";
                if (me) s = st_shape;
                break;
            default:
                what = "block: state of another shape";
                blockcase = 1;
                if (me) bs = bst_shape;
                break;
            }
            ssm_status e;
            if (blockcase)
                e = ssm_mpi_mamba2_forward(MPI_COMM_WORLD, bk, bs, b, L, xx, y);
            else
                e = ssm_mpi_mamba2_stack_forward(MPI_COMM_WORLD, sk, s, b, L, xx, y);
            const int expect = (cs == 4 || cs == 5 || cs == 9) ? R > 1 : 1;
            if (expect)
                MT_EXPECT(e == SSM_ERR_ARG, "%s on rank %d: %s", what, who, ssm_status_string(e));
            else
                MT_EXPECT(e == SSM_OK, "%s (control): %s", what, ssm_status_string(e));
        }
    ssm_mamba2_stack_state_destroy(st);
    ssm_mamba2_stack_state_destroy(st_other);
    ssm_mamba2_stack_state_destroy(st1);
    ssm_mamba2_stack_state_destroy(st_shape);
    ssm_mamba2_stack_destroy(stk);
    ssm_mamba2_stack_destroy(stk_other);
    ssm_mamba2_stack_destroy(stk_seed);
    ssm_mamba2_stack_destroy(stk2l);
    mt_finish("Mamba-2 argument errors");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_mamba2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_block_values);
    tcase_add_test(tc, test_stack_values);
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
