/* ctest-labels: mpi;alloc */
/*
 * wbtest_mpi_alloc.c -- the agreement of failures over the ranks
 * (white-box: compiled with libssm_mpi's sources and the static libssm, so
 * it can arm both allocation-failure injectors, src/mpi's
 * ssmi_mpi_alloc_inject and libssm's ssmi_alloc_inject).
 *
 *  1. For every function of <ssm_mpi.h> and every rank in turn: with the
 *     k-th allocation on THAT rank failed (libssm_mpi's own, then libssm's
 *     inside the calls), k = 1, 2, ... until the call succeeds, every rank
 *     returns the same status, SSM_ERR_NOMEM, and nobody hangs (the CTest
 *     timeout would say so); the successful call then gives the bytes of
 *     an unarmed call.
 *  2. The mixed case: one rank's allocation failure meets a bad argument
 *     on another: SSM_ERR_ARG on every rank (bad arguments win, as
 *     ssmi_agree_run orders them).  ssm_mpi_mamba_stack_forward_state used
 *     to return SSM_ERR_NOMEM on the failing rank and SSM_ERR_ARG on the
 *     others.
 *  3. (Not about allocation; here because this is the white-box MPI
 *     program.)  The fix-up's dt (mpi_scan.c's softplus) is the scan's dt
 *     bit for bit (ssmi_scan_softplusf), as the carries' exponent sum dt A
 *     requires: the two are separate copies of the same operations.
 */
#include "internal.h"
#include "mpi_internal.h"
#include "mpi_testutil.h"
#include "scan/scan_internal.h"

#ifndef SSM_SOURCE_DIR
#define SSM_SOURCE_DIR "."
#endif

/* ---- the calls under test: each (re)initializes its inputs, runs the
 * MPI function and leaves its outputs in out (bytes compared) ---- */

typedef struct fx {
    int64_t my;                 /* this rank's block */
    float *in, *in2, *out;      /* sized by the case */
    int64_t nout;
    ssm_mamba_stack *stk;
    ssm_mamba_stack_state *sst;
    ssm_mamba *blk;
    ssm_mamba_state *bst;
    ssm_mamba2_stack *stk2;
    ssm_mamba2_stack_state *sst2;
    ssm_model *model, *model2;
    ssm_model_state *ms, *ms2;
    int32_t tok[16];
    int64_t slot;
    int64_t batch;              /* batch used by the call (0 makes it bad) */
} fx;

static fx F;

static void fx_init(void)
{
    const int R = mt_size(), rank = mt_rank();
    memset(&F, 0, sizeof F);
    F.my = 3 + rank % 2;        /* uneven blocks */
    (void)R;
    F.batch = 2;
    F.in = tu_alloc(4096, sizeof(float));
    F.in2 = tu_alloc(4096, sizeof(float));
    F.out = tu_alloc(4096, sizeof(float));
    tu_rng r = { 5 + (uint64_t)rank };
    tu_fill_normal_f(&r, F.in, 4096, 1.0);
    tu_fill_normal_f(&r, F.in2, 4096, 0.5);
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    c.d_model = 8; c.d_state = 4; c.d_conv = 4; c.expand = 2;
    ck_assert_int_eq(ssm_mamba_stack_create(&F.stk, &c, 2, 3), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_state_create(&F.sst, F.stk, 2), SSM_OK);
    ck_assert_int_eq(ssm_mamba_create(&F.blk, &c, 4), SSM_OK);
    ck_assert_int_eq(ssm_mamba_state_create(&F.bst, F.blk, 2), SSM_OK);
    ssm_mamba2_config c2;
    ssm_mamba2_config_init(&c2);
    c2.d_model = 8; c2.d_state = 4; c2.d_conv = 4; c2.expand = 2; c2.headdim = 4;
    c2.ngroups = 2;
    ck_assert_int_eq(ssm_mamba2_stack_create(&F.stk2, &c2, 2, 5), SSM_OK);
    ck_assert_int_eq(ssm_mamba2_stack_state_create(&F.sst2, F.stk2, 2), SSM_OK);
    ck_assert_int_eq(ssm_model_load(&F.model, SSM_SOURCE_DIR "/tests/fixtures/model"), SSM_OK);
    ck_assert_int_eq(ssm_model_load(&F.model2, SSM_SOURCE_DIR "/tests/fixtures/model2"), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&F.ms, F.model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&F.ms2, F.model2, 1), SSM_OK);
    for (int i = 0; i < 16; i++) F.tok[i] = (int32_t)((i * 7 + rank * 3) % 37);
}

static void fx_free(void)
{
    free(F.in); free(F.in2); free(F.out);
    ssm_mamba_stack_state_destroy(F.sst);
    ssm_mamba_stack_destroy(F.stk);
    ssm_mamba_state_destroy(F.bst);
    ssm_mamba_destroy(F.blk);
    ssm_mamba2_stack_state_destroy(F.sst2);
    ssm_mamba2_stack_destroy(F.stk2);
    ssm_model_state_destroy(F.ms);
    ssm_model_state_destroy(F.ms2);
    ssm_model_destroy(F.model);
    ssm_model_destroy(F.model2);
    memset(&F, 0, sizeof F);
}

static ssm_status run_selective(void)
{
    static float A[4 * 4], D[4];
    for (int i = 0; i < 16; i++) A[i] = -(float)(1 + i % 4);
    for (int i = 0; i < 4; i++) D[i] = 0.5f;
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = F.batch; a.dim = 4; a.dstate = 4; a.len = F.my; a.ngroups = 1;
    a.u = F.in; a.delta = F.in2 + 1024; a.A = A; a.B = F.in + 1024; a.C = F.in + 2048;
    a.D = D; a.z = F.in2 + 2048; a.delta_softplus = 1;
    a.y = F.out; a.h_last = F.out + 512;
    F.nout = 512 + 2 * 4 * 4;
    return ssm_mpi_selective_scan(MPI_COMM_WORLD, &a);
}

static ssm_status run_ssd(void)
{
    static float A[4] = { -1, -2, -3, -4 };
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = F.batch; a.len = F.my; a.nheads = 4; a.headdim = 3; a.dstate = 5; a.ngroups = 2;
    a.x = F.in; a.dt = F.in2 + 1024; a.A = A; a.B = F.in + 1024; a.C = F.in + 2048;
    a.z = F.in2 + 2048; a.dt_softplus = 1; a.dt_max = INFINITY;
    a.y = F.out; a.h_last = F.out + 512;
    F.nout = 512 + 2 * 4 * 3 * 5;
    return ssm_mpi_ssd_scan(MPI_COMM_WORLD, &a);
}

static ssm_status run_diag(void)
{
    static ssm_cfloat Ad[3 * 4], Bd[3 * 4], C[3 * 4];
    for (int i = 0; i < 12; i++) {
        Ad[i] = 0.9f * cexpf(I * 0.3f * (float)i);
        Bd[i] = 0.1f + 0.05f * (float)i;
        C[i] = 1.0f - 0.1f * I * (float)i;
    }
    F.nout = 512 + 2 * F.batch * 3 * 4 * 2;
    return ssm_mpi_diag_scan(MPI_COMM_WORLD, F.batch, 3, 4, F.my, Ad, Bd, C, NULL, F.in,
                             NULL, (ssm_cfloat *)(void *)(F.out + 512), F.out);
}

static ssm_status run_mamba_block(void)
{
    ssm_mamba_state_reset(F.bst);
    F.nout = F.batch * F.my * 8;
    return ssm_mpi_mamba_forward(MPI_COMM_WORLD, F.blk, F.bst, F.batch, F.my, F.in, F.out);
}

static ssm_status run_mamba_stack_state(void)
{
    ssm_mamba_stack_state_reset(F.sst);
    F.nout = F.batch * F.my * 8;
    return ssm_mpi_mamba_stack_forward_state(MPI_COMM_WORLD, F.stk, F.sst, F.batch, F.my,
                                             F.in, F.out);
}

static ssm_status run_mamba2_stack(void)
{
    ssm_mamba2_stack_state_reset(F.sst2);
    F.nout = F.batch * F.my * 8;
    return ssm_mpi_mamba2_stack_forward(MPI_COMM_WORLD, F.stk2, F.sst2, F.batch, F.my,
                                        F.in, F.out);
}

static ssm_status run_prefill_m(ssm_model *m, ssm_model_state *ms)
{
    ssm_model_state_reset(ms);   /* no allocation: outside the sweep's count */
    memset(F.out, 0, 64 * sizeof(float));
    F.nout = 37;
    /* batch 0 stands for a bad argument here: a token id out of range */
    if (F.batch < 1) F.tok[0] = 1000;
    ssm_status e = ssm_mpi_model_prefill(MPI_COMM_WORLD, m, ms, 0, F.my, F.tok, F.out);
    F.tok[0] = (int32_t)((mt_rank() * 3) % 37);
    return e;
}
static ssm_status run_prefill(void) { return run_prefill_m(F.model, F.ms); }
static ssm_status run_prefill2(void) { return run_prefill_m(F.model2, F.ms2); }

static ssm_status run_allreduce(void)
{
    memcpy(F.out, F.in, 100 * sizeof(float));
    F.nout = 100;
    return ssm_mpi_allreduce_sum(MPI_COMM_WORLD, F.out, F.batch < 1 ? -1 : 100);
}

typedef struct wcase {
    const char *name;
    ssm_status (*run)(void);
} wcase;

static const wcase cases[] = {
    { "ssm_mpi_selective_scan", run_selective },
    { "ssm_mpi_ssd_scan", run_ssd },
    { "ssm_mpi_diag_scan", run_diag },
    { "ssm_mpi_mamba_forward", run_mamba_block },
    { "ssm_mpi_mamba_stack_forward_state", run_mamba_stack_state },
    { "ssm_mpi_mamba2_stack_forward", run_mamba2_stack },
    { "ssm_mpi_model_prefill (Mamba-1)", run_prefill },
    { "ssm_mpi_model_prefill (Mamba-2)", run_prefill2 },
    { "ssm_mpi_allreduce_sum", run_allreduce },
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void arm(int lib, int64_t k)
{
    if (lib) ssmi_alloc_inject(k);
    else ssmi_mpi_alloc_inject(k);
}
static int64_t armed_count(int lib)
{
    return lib ? ssmi_alloc_count() : ssmi_mpi_alloc_count();
}

/* The statuses of all ranks are one: returns it, or records a failure. */
static ssm_status agreed(ssm_status s, const char *what, int64_t k, int who)
{
    int v[2] = { (int)s, -(int)s }, r[2];
    MPI_Allreduce(v, r, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MT_EXPECT(r[0] == -r[1], "%s: allocation %lld failed on rank %d: statuses differ "
              "over the ranks (%d .. %d)", what, (long long)k, who, -r[1], r[0]);
    return s;
}

START_TEST(test_sweep)
{
    const int R = mt_size(), rank = mt_rank();
    fx_init();
    int64_t fails = 0;
    for (int ci = 0; ci < NCASES; ci++) {
        const wcase *c = &cases[ci];
        /* unarmed reference */
        ssm_status s0 = c->run();
        MT_EXPECT(s0 == SSM_OK, "%s: unarmed: %s", c->name, ssm_status_string(s0));
        const int64_t nref = F.nout;
        float *ref = tu_alloc((size_t)nref, sizeof(float));
        memcpy(ref, F.out, (size_t)nref * sizeof(float));
        for (int lib = 0; lib < 2; lib++)
            for (int who = 0; who < R; who++)
                for (int64_t k = 1;; k++) {
                    if (k > 5000) {
                        MT_EXPECT(0, "%s: no success after %lld failures", c->name, (long long)k);
                        break;
                    }
                    if (rank == who) arm(lib, k);
                    ssm_status s = c->run();
                    const int64_t cnt = rank == who ? armed_count(lib) : 0;
                    arm(lib, 0);
                    agreed(s, c->name, k, who);
                    int allok = s == SSM_OK, g = 0;
                    MPI_Allreduce(&allok, &g, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
                    if (g) {
                        if (rank == who)
                            MT_EXPECT(cnt < k, "%s: OK although allocation %lld of %lld failed",
                                      c->name, (long long)k, (long long)cnt);
                        MT_EXPECT(!memcmp(ref, F.out, (size_t)nref * sizeof(float)),
                                  "%s: bytes after %lld failures differ", c->name,
                                  (long long)(k - 1));
                        break;
                    }
                    MT_EXPECT(s == SSM_ERR_NOMEM, "%s (%s allocator) allocation %lld on rank %d: %s",
                              c->name, lib ? "libssm" : "libssm_mpi", (long long)k, who,
                              ssm_status_string(s));
                    fails++;
                }
        free(ref);
    }
    fx_free();
    if (rank == 0)
        printf("allocation sweep: %lld injected failures\n", (long long)fails);
    mt_finish("allocation failures agreed over the ranks");
}
END_TEST

/* One rank's allocation failure (the first of the call) meets a bad
 * argument on the next rank: SSM_ERR_ARG everywhere. */
START_TEST(test_nomem_meets_arg)
{
    const int R = mt_size(), rank = mt_rank();
    if (R < 2) {
        mt_finish("NOMEM meets ARG (needs 2 ranks)");
        return;
    }
    fx_init();
    for (int ci = 0; ci < NCASES; ci++)
        for (int who = 0; who < R; who++)
            for (int lib = 0; lib < 2; lib++) {
                const int bad = (who + 1) % R;
                if (rank == bad) F.batch = 0;
                if (rank == who) arm(lib, 1);
                ssm_status s = cases[ci].run();
                arm(lib, 0);
                F.batch = 2;
                agreed(s, cases[ci].name, 1, who);
                MT_EXPECT(s == SSM_ERR_ARG, "%s: NOMEM on rank %d, bad argument on rank %d: "
                          "got %s on rank %d", cases[ci].name, who, bad, ssm_status_string(s),
                          rank);
            }
    fx_free();
    mt_finish("one rank's NOMEM meets another's ARG: ARG everywhere");
}
END_TEST

START_TEST(test_fixup_dt_bits)
{
    tu_rng r = { 41 };
    int off = 0, n = 0;
    const float sp[] = { NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 20.0f, 19.999998f, 20.000002f,
                         -87.5f, -88.0f, -104.0f, 1e30f, -1e30f, 0x1p-149f, FLT_MIN };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++, n++) {
        const float a = ssmi_mpi_softplus(sp[i]), b = ssmi_scan_softplusf(sp[i]);
        off += memcmp(&a, &b, sizeof a) != 0 && !(isnan(a) && isnan(b));
    }
    for (int i = 0; i < 1 << 18; i++, n++) {
        const float x = (float)tu_range(&r, -100.0, 30.0) * (i % 4 == 0 ? 0.01f : 1.0f);
        const float a = ssmi_mpi_softplus(x), b = ssmi_scan_softplusf(x);
        off += memcmp(&a, &b, sizeof a) != 0;
    }
    ck_assert_msg(off == 0, "the fix-up's softplus differs from the scan's on %d of %d inputs",
                  off, n);
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_alloc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_nomem_meets_arg);
    tcase_add_test(tc, test_sweep);
    tcase_add_test(tc, test_fixup_dt_bits);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
