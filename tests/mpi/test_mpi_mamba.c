/* ctest-labels: mpi */
/*
 * test_mpi_mamba.c -- ssm_mpi_mamba_forward and ssm_mpi_mamba_stack_forward
 * against the single-process ssm_mamba_forward / ssm_mamba_stack_forward on
 * the concatenated sequence (outputs, the state after every rank's block,
 * and decoding continued from the last rank's state with ssm_mamba_step /
 * ssm_mamba_stack_step).
 *
 * Tolerance: the MPI path runs the same operations, but its GEMMs see other
 * shapes (L per rank) and the scan's entering state arrives through the
 * carry combination and the fix-up.  Each output is a chain of dot
 * products of lengths Dm (in_proj), Di (x_proj), R (dt_proj), N (scan),
 * Di (out_proj), each ~ k eps_f relative in the worst case: bound
 * 8 eps_f (Dm + 2 Di + R + N) normwise (8: softplus, silu and the fix-up's
 * few roundings).  The test prints the largest ratio error/bound.
 */
#include "mpi_testutil.h"

static ssm_mamba_config small_cfg(void)
{
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    c.d_model = 8; c.d_state = 4; c.d_conv = 4; c.expand = 2;
    return c;
}

static double tol_of(const ssm_mamba_config *c)
{
    const double di = (double)(c->d_model * (c->expand ? c->expand : 2));
    const double r = (double)(c->dt_rank ? c->dt_rank : (c->d_model + 15) / 16);
    return 8.0 * FLT_EPSILON / 2 * ((double)c->d_model + 2 * di + r + (double)c->d_state);
}

/* ------------------------------------------------------------- block --- */

/* pre: tokens fed before the MPI call (rank 0's state and the reference's);
 * pattern: the split of the rest. */
static void block_case(int pattern, int64_t base, int64_t pre, uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2;
    ssm_mamba_config cfg = small_cfg();
    ssm_mamba *blk;
    MT_EXPECT(ssm_mamba_create(&blk, &cfg, seed) == SSM_OK, "create");
    ssm_mamba_config rc;
    ssm_mamba_config_init(&rc);
    ssm_mamba_get_config(blk, &rc);
    const int64_t dm = rc.d_model, di = rc.d_model * rc.expand, N = rc.d_state,
                  K = rc.d_conv;
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    const int64_t off = mt_offset(len, rank), my = len[rank], myb = my ? my : 1;
    tu_rng r = { seed * 7 + 1 };
    float *xpre = tu_alloc((size_t)(B * (pre ? pre : 1) * dm), sizeof(float));
    float *x = tu_alloc((size_t)(B * L * dm), sizeof(float));
    float *yref = tu_alloc((size_t)(B * L * dm), sizeof(float));
    tu_fill_normal_f(&r, xpre, B * pre * dm, 1.0);
    tu_fill_normal_f(&r, x, B * L * dm, 1.0);

    /* reference: one process, the whole sequence after the prefix */
    ssm_mamba_state *sref, *smine;
    ssm_mamba_state_create(&sref, blk, B);
    ssm_mamba_state_create(&smine, blk, B);
    float *ypre = tu_alloc((size_t)(B * (pre ? pre : 1) * dm), sizeof(float));
    if (pre > 0) {
        ssm_mamba_forward(blk, sref, B, pre, xpre, ypre);
        ssm_mamba_forward(blk, smine, B, pre, xpre, ypre);   /* rank 0's start */
    }
    /* the state after this rank's block: a reference on the prefix */
    ssm_mamba_state *spre;
    ssm_mamba_state_create(&spre, blk, B);
    if (pre > 0)
        ssm_mamba_forward(blk, spre, B, pre, xpre, ypre);
    float *xp = tu_alloc((size_t)(B * (off + my ? off + my : 1) * dm), sizeof(float));
    float *yp = tu_alloc((size_t)(B * (off + my ? off + my : 1) * dm), sizeof(float));
    if (off + my > 0) {
        mt_tok_slice(x, B, L, dm, 0, off + my, xp);
        ssm_mamba_forward(blk, spre, B, off + my, xp, yp);
    }
    MT_EXPECT(ssm_mamba_forward(blk, sref, B, L, x, yref) == SSM_OK, "reference forward");

    float *xb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yrb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    mt_tok_slice(x, B, L, dm, off, my, xb);
    mt_tok_slice(yref, B, L, dm, off, my, yrb);
    if (rank != 0)
        ssm_mamba_state_reset(smine);   /* not read off rank 0 */
    ssm_status s = ssm_mpi_mamba_forward(MPI_COMM_WORLD, blk, smine, B, my, xb, yb);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_mamba_forward: %s", ssm_status_string(s));
    const double tol = tol_of(&rc);
    if (s == SSM_OK && my > 0)
        MT_ERR(tu_relerr_ff(yb, yrb, B * my * dm), tol, "block y, pattern %d pre %lld",
               pattern, (long long)pre);
    /* state after the block (conv and h) */
    float *c1 = tu_alloc((size_t)(B * di * K), sizeof(float));
    float *h1 = tu_alloc((size_t)(B * di * N), sizeof(float));
    float *c2 = tu_alloc((size_t)(B * di * K), sizeof(float));
    float *h2 = tu_alloc((size_t)(B * di * N), sizeof(float));
    ssm_mamba_state_get(smine, B, c1, h1);
    ssm_mamba_state_get(spre, B, c2, h2);
    if (s == SSM_OK) {
        MT_ERR(tu_relerr_ff(c1, c2, B * di * K), tol, "conv state, pattern %d", pattern);
        MT_ERR(tu_relerr_ff(h1, h2, B * di * N), tol, "ssm state, pattern %d", pattern);
    }
    /* decoding continues from the last rank's state */
    if (rank == R - 1 && s == SSM_OK) {
        float t[2 * 8], o1[2 * 8], o2[2 * 8];
        for (int step = 0; step < 3; step++) {
            tu_fill_normal_f(&r, t, B * dm, 1.0);
            ssm_mamba_step(blk, smine, B, t, o1);
            ssm_mamba_step(blk, sref, B, t, o2);
            MT_ERR(tu_relerr_ff(o1, o2, B * dm), tol, "decode step %d", step);
        }
    }
    free(xpre); free(x); free(yref); free(ypre); free(xp); free(yp);
    free(xb); free(yb); free(yrb); free(c1); free(h1); free(c2); free(h2);
    ssm_mamba_state_destroy(sref);
    ssm_mamba_state_destroy(smine);
    ssm_mamba_state_destroy(spre);
    ssm_mamba_destroy(blk);
}

START_TEST(test_block_values)
{
    for (int pattern = 0; pattern < 4; pattern++) {
        block_case(pattern, 13, 0, 11 + pattern);
        block_case(pattern, 6, 5, 21 + pattern);   /* rank 0 starts from a state */
    }
    block_case(2, 1, 2, 31);   /* blocks of 1 < d_conv - 1: multi-hop halo */
    mt_finish("block forward vs single process");
}
END_TEST

/* y == x, a NULL state, and the same bytes for 1..3 threads. */
START_TEST(test_block_inplace_threads)
{
    const int R = mt_size(), rank = mt_rank();
    ssm_mamba_config cfg = small_cfg();
    ssm_mamba *blk;
    ssm_mamba_create(&blk, &cfg, 5);
    int64_t len[64];
    mt_split(1, R, 0, len);
    const int64_t my = len[rank], n = 2 * my * 8;
    tu_rng r = { 3 };
    float *x = tu_alloc((size_t)n, sizeof(float)), *y = tu_alloc((size_t)n, sizeof(float));
    float *z = tu_alloc((size_t)n, sizeof(float));
    tu_fill_normal_f(&r, x, n, 1.0);
    memcpy(z, x, (size_t)n * sizeof(float));
    for (int th = 1; th <= 3; th++) {
        tu_set_threads(th);
        float *yy = th == 1 ? y : tu_alloc((size_t)n, sizeof(float));
        MT_EXPECT(ssm_mpi_mamba_forward(MPI_COMM_WORLD, blk, NULL, 2, my, x, yy) == SSM_OK,
                  "forward");
        if (th > 1) {
            MT_EXPECT(memcmp(y, yy, (size_t)n * sizeof(float)) == 0, "%d threads differ", th);
            free(yy);
        }
    }
    tu_set_threads(1);
    MT_EXPECT(ssm_mpi_mamba_forward(MPI_COMM_WORLD, blk, NULL, 2, my, z, z) == SSM_OK, "in place");
    MT_EXPECT(memcmp(y, z, (size_t)n * sizeof(float)) == 0, "y == x gives the same bytes");
    free(x); free(y); free(z);
    ssm_mamba_destroy(blk);
    mt_finish("block in place and thread counts");
}
END_TEST

START_TEST(test_block_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    ssm_mamba_config cfg = small_cfg(), cfg2 = small_cfg();
    cfg2.d_state = 8;
    ssm_mamba *blk, *blk2, *blk3;
    ssm_mamba_create(&blk, &cfg, 5);
    ssm_mamba_create(&blk2, &cfg2, 5);
    ssm_mamba_create(&blk3, &cfg, 6);    /* same shapes, other A_log? same init */
    /* make blk3 differ in D (a hashed parameter) */
    float Dv[16];
    ssm_mamba_get_param(blk3, SSM_MAMBA_D, Dv, 16);
    Dv[3] = 2.0f;
    ssm_mamba_set_param(blk3, SSM_MAMBA_D, Dv, 16);
    ssm_mamba_state *st, *st2;
    ssm_mamba_state_create(&st, blk, 1);
    ssm_mamba_state_create(&st2, blk2, 2);   /* another block shape */
    float x[2 * 3 * 8] = { 0 }, y[2 * 3 * 8];
    for (int c = 0; c < 7; c++) {
        const ssm_mamba *b = blk;
        const float *xp = x;
        ssm_mamba_state *sp = NULL;
        int64_t batch = 2, L = 3;
        int expect = R > 1 || c >= 2;
        if (rank == last) {
            switch (c) {
            case 0: b = blk2; break;       /* another d_state */
            case 1: b = blk3; break;       /* another D */
            case 2: sp = st; break;        /* batch 2 > the state's max batch 1 */
            case 3: xp = NULL; break;
            case 4: b = NULL; break;
            case 5: sp = st2; break;       /* a state of another shape (overran before) */
            default: batch = 0; break;
            }
        }
        ssm_status s = ssm_mpi_mamba_forward(MPI_COMM_WORLD, b, sp, batch, L, xp, y);
        MT_EXPECT(s == (expect ? SSM_ERR_ARG : SSM_OK), "block case %d: %s", c,
                  ssm_status_string(s));
    }
    ssm_mamba_state_destroy(st);
    ssm_mamba_state_destroy(st2);
    ssm_mamba_destroy(blk);
    ssm_mamba_destroy(blk2);
    ssm_mamba_destroy(blk3);
    mt_finish("block errors agreed on every rank");
}
END_TEST

/* ------------------------------------------------------------- stack --- */

static void stack_case(int pattern, int64_t base, uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2, NL = 3;
    ssm_mamba_config cfg = small_cfg();
    ssm_mamba_stack *stk;
    MT_EXPECT(ssm_mamba_stack_create(&stk, &cfg, NL, seed) == SSM_OK, "stack create");
    /* non-trivial norm weights */
    tu_rng r = { seed + 5 };
    for (int64_t l = 0; l <= NL; l++) {
        float w[8];
        for (int j = 0; j < 8; j++)
            w[j] = (float)tu_range(&r, 0.5, 1.5);
        ssm_mamba_stack_set_norm(stk, l, w, 8);
    }
    const int64_t dm = 8;
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    const int64_t off = mt_offset(len, rank), my = len[rank], myb = my ? my : 1;
    float *x = tu_alloc((size_t)(B * L * dm), sizeof(float));
    float *yref = tu_alloc((size_t)(B * L * dm), sizeof(float));
    tu_fill_normal_f(&r, x, B * L * dm, 1.0);
    ssm_mamba_stack_state *sref;
    ssm_mamba_stack_state_create(&sref, stk, B);
    MT_EXPECT(ssm_mamba_stack_forward(stk, sref, B, L, x, yref) == SSM_OK, "reference");

    ssm_mamba_state *states[3];
    for (int64_t l = 0; l < NL; l++) {
        ssm_mamba *bl;
        ssm_mamba_stack_block(stk, l, &bl);
        ssm_mamba_state_create(&states[l], bl, B);
    }
    float *xb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    float *yrb = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    mt_tok_slice(x, B, L, dm, off, my, xb);
    mt_tok_slice(yref, B, L, dm, off, my, yrb);
    ssm_status s = ssm_mpi_mamba_stack_forward(MPI_COMM_WORLD, stk, states, B, my, xb, yb);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_mamba_stack_forward: %s", ssm_status_string(s));
    /* The residual stream adds the layers' errors: NL times the block's
     * bound (the RMSNorms are well conditioned: unit-scale rows). */
    const double tol = (double)NL * tol_of(&cfg);
    if (s == SSM_OK && my > 0)
        MT_ERR(tu_relerr_ff(yb, yrb, B * my * dm), tol, "stack y, pattern %d", pattern);
    /* The same through an ssm_mamba_stack_state (zero on rank 0: a prompt):
     * the same computation, so the same bytes as the per-layer form. */
    ssm_mamba_stack_state *sst;
    MT_EXPECT(ssm_mamba_stack_state_create(&sst, stk, B) == SSM_OK, "stack state");
    float *ys = tu_alloc((size_t)(B * myb * dm), sizeof(float));
    s = ssm_mpi_mamba_stack_forward_state(MPI_COMM_WORLD, stk, sst, B, my, xb, ys);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_mamba_stack_forward_state: %s", ssm_status_string(s));
    if (s == SSM_OK && my > 0)
        MT_EXPECT(memcmp(ys, yb, (size_t)(B * my * dm) * sizeof(float)) == 0,
                  "stack state form: same bytes as the per-layer form");
    if (rank == R - 1 && s == SSM_OK) {
        float t[2 * 8], o1[2 * 8], o2[2 * 8], o3[2 * 8];
        for (int step = 0; step < 3; step++) {
            tu_fill_normal_f(&r, t, B * dm, 1.0);
            MT_EXPECT(ssm_mpi_mamba_stack_step(stk, states, B, t, o1) == SSM_OK, "step");
            MT_EXPECT(ssm_mamba_stack_step(stk, sst, B, t, o3) == SSM_OK, "stack step");
            ssm_mamba_stack_step(stk, sref, B, t, o2);
            MT_ERR(tu_relerr_ff(o1, o2, B * dm), tol, "stack decode step %d", step);
            MT_ERR(tu_relerr_ff(o3, o2, B * dm), tol,
                   "ssm_mamba_stack_step from the MPI stack state, step %d", step);
        }
    }
    ssm_mamba_stack_state_destroy(sst);
    free(ys);
    for (int64_t l = 0; l < NL; l++)
        ssm_mamba_state_destroy(states[l]);
    ssm_mamba_stack_state_destroy(sref);
    ssm_mamba_stack_destroy(stk);
    free(x); free(yref); free(xb); free(yb); free(yrb);
}

START_TEST(test_stack_values)
{
    for (int pattern = 0; pattern < 4; pattern++)
        stack_case(pattern, 9, 50 + pattern);
    mt_finish("stack forward vs single process");
}
END_TEST

START_TEST(test_stack_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    ssm_mamba_config cfg = small_cfg();
    ssm_mamba_stack *s2, *s3;
    ssm_mamba_stack_create(&s2, &cfg, 2, 1);
    ssm_mamba_stack_create(&s3, &cfg, 3, 1);
    float x[2 * 8] = { 0 }, y[2 * 8];
    for (int c = 0; c < 3; c++) {
        const ssm_mamba_stack *sp = s2;
        int expect = R > 1 || c >= 1;
        const float *xp = x;
        if (rank == last) {
            if (c == 0) sp = s3;        /* another layer count */
            else if (c == 1) sp = NULL;
            else xp = NULL;
        }
        ssm_status s = ssm_mpi_mamba_stack_forward(MPI_COMM_WORLD, sp, NULL, 2, 1, xp, y);
        MT_EXPECT(s == (expect ? SSM_ERR_ARG : SSM_OK), "stack case %d: %s", c,
                  ssm_status_string(s));
    }
    MT_EXPECT(ssm_mpi_mamba_stack_step(s2, NULL, 1, x, y) == SSM_ERR_ARG, "step NULL states");
    /* A stack state made for a 3-layer stack given with a 2-layer stack (on
     * one rank, or on all): SSM_ERR_ARG everywhere. */
    {
        ssm_mamba_stack_state *st2, *st3;
        ssm_mamba_stack_state_create(&st2, s2, 2);
        ssm_mamba_stack_state_create(&st3, s3, 2);
        for (int c = 0; c < 2; c++) {
            ssm_mamba_stack_state *sp = (c == 1 || mt_rank() == mt_size() - 1) ? st3 : st2;
            ssm_status s = ssm_mpi_mamba_stack_forward_state(MPI_COMM_WORLD, s2, sp, 2, 1,
                                                             x, y);
            MT_EXPECT(s == SSM_ERR_ARG, "stack state of another stack, case %d: %s", c,
                      ssm_status_string(s));
        }
        ssm_mamba_state *ls = (ssm_mamba_state *)1;
        MT_EXPECT(ssm_mamba_stack_state_layer(st2, 2, &ls) == SSM_ERR_ARG && ls == NULL,
                  "layer out of range");
        MT_EXPECT(ssm_mamba_stack_state_layer(st2, -1, &ls) == SSM_ERR_ARG, "layer -1");
        MT_EXPECT(ssm_mamba_stack_state_layer(NULL, 0, &ls) == SSM_ERR_ARG, "NULL state");
        MT_EXPECT(ssm_mamba_stack_state_layer(st2, 0, NULL) == SSM_ERR_ARG, "NULL out");
        MT_EXPECT(ssm_mamba_stack_state_layer(st2, 1, &ls) == SSM_OK && ls != NULL, "layer 1");
        ssm_mamba_stack_state_destroy(st2);
        ssm_mamba_stack_state_destroy(st3);
    }
    ssm_mamba_stack_destroy(s2);
    ssm_mamba_stack_destroy(s3);
    mt_finish("stack errors agreed on every rank");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_mamba");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_block_values);
    tcase_add_test(tc, test_block_inplace_threads);
    tcase_add_test(tc, test_block_errors);
    tcase_add_test(tc, test_stack_values);
    tcase_add_test(tc, test_stack_errors);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
