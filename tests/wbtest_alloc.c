/* ctest-labels: alloc */
/*
 * wbtest_alloc.c -- allocation failures and allocation-free streaming
 * (white-box: arms the library's internal failure injector, internal.h).
 *
 *  1. For every create function and a forward/step of every object: with
 *     the k-th allocation of the call failed, k = 1, 2, ... until the call
 *     succeeds, every failure returns SSM_ERR_NOMEM, a failed create leaves
 *     *obj NULL, a failed call leaves its object usable (the next call
 *     gives the reference bytes) and, where the API promises it, untouched.
 *     Leaks show up in the sanitizer build (LeakSanitizer at exit) and
 *     under valgrind.  FFTW's own allocations inside the planner cannot be
 *     failed from here (they abort the process, conv.h says so).
 *  2. Regressions: ssm_mamba_stack_create / ssm_mamba_stack_state_create
 *     freed uninitialised block pointers when an allocation after the
 *     first failed (heap corruption / SIGSEGV): covered by 1.
 *  3. Every step function (selective, diag, LTI, S4D layer, Mamba block and
 *     stack) makes no allocation over 100 steps, at 1 and at 2 threads.
 */
#include <ssm.h>
#include "internal.h"
#include "testutil.h"

/* ---- the sweep ----------------------------------------------------- */

typedef struct alloc_case {
    const char *name;
    void (*setup)(void);          /* fixtures and reference, unarmed */
    ssm_status (*run)(void);      /* the call under test */
    void (*after_fail)(void);     /* checks after a failed run (may be NULL) */
    void (*after_ok)(void);       /* checks and cleanup after success */
    void (*teardown)(void);
} alloc_case;

/* Runs c->run with allocation k failed for k = 1.. until it succeeds;
 * returns the number of allocations the successful call made. */
static int64_t sweep(const alloc_case *c)
{
    if (c->setup) c->setup();
    int64_t k = 1;
    for (;; k++) {
        ck_assert_msg(k < 100000, "%s: no success after %lld injected failures",
                      c->name, (long long)k);
        ssmi_alloc_inject(k);
        ssm_status st = c->run();
        const int64_t cnt = ssmi_alloc_count();
        ssmi_alloc_inject(0);
        if (st == SSM_OK) {
            /* The k-th allocation never happened. */
            ck_assert_msg(cnt < k, "%s: OK although allocation %lld of %lld failed",
                          c->name, (long long)k, (long long)cnt);
            c->after_ok();
            break;
        }
        ck_assert_msg(st == SSM_ERR_NOMEM, "%s: allocation %lld failed: got %d (%s)",
                      c->name, (long long)k, (int)st, ssm_status_string(st));
        if (c->after_fail) c->after_fail();
    }
    if (c->teardown) c->teardown();
    if (getenv("SSM_TEST_VERBOSE"))
        printf("  %-34s %3lld allocations, each failure -> SSM_ERR_NOMEM\n", c->name,
               (long long)(k - 1));
    return k - 1;
}

static tu_rng g_rng = {2026};
static float *frand(int64_t n)
{
    float *x = tu_alloc((size_t)n, sizeof *x);
    tu_fill_normal_f(&g_rng, x, n, 1.0);
    return x;
}
static void same_bytes(const void *a, const void *b, size_t bytes, const char *what)
{
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: output differs from the reference", what);
}

/* ---- HiPPO, discretization, kernels ---------------------------------- */

enum { NH = 6 };
static double complex g_lam[NH], g_Pt[2 * NH], g_Bt[NH], g_V[NH * NH];
static ssm_status r_nplr(void) { return ssm_hippo_nplr(SSM_LEGT, NH, 2, g_lam, g_Pt, g_Bt, g_V); }
static ssm_status r_s4d_legs(void) { return ssm_s4d_lambda(SSM_S4D_LEGS, NH, g_lam); }
static void ok_nothing(void) {}

static double g_A[NH * NH], g_B[NH], g_Ad[NH * NH], g_Bd[NH], g_C[NH], g_K[256];
static void s_dense(void)
{
    ck_assert_int_eq(ssm_hippo(SSM_LEGS, NH, g_A, g_B), SSM_OK);
    for (int i = 0; i < NH; i++) g_C[i] = 1.0 / (i + 1);
}
static ssm_status r_disc(void) { return ssm_discretize(SSM_ZOH, NH, g_A, g_B, 0.01, g_Ad, g_Bd); }
static ssm_status r_disc_bil(void) { return ssm_discretize(SSM_BILINEAR, NH, g_A, g_B, 0.01, g_Ad, g_Bd); }
static ssm_status r_kdense(void) { return ssm_kernel_dense(NH, g_Ad, g_Bd, g_C, 256, g_K); }

static double complex g_dl[NH], g_dP[2 * NH], g_dB[NH], g_dC[NH];
static double g_Kd[300], g_Kref[300];
static void s_dplr(void)
{
    ck_assert_int_eq(ssm_hippo_nplr(SSM_FOUT, NH, 1, g_dl, g_dP, g_dB, g_V), SSM_OK);
    for (int i = 0; i < NH; i++) g_dC[i] = tu_cmplx(1.0 / (i + 1), 0.5);
    /* FOUT has lambda = 0 on the node g_0 = 0: the flagged-node path and
     * its extra forward FFT are exercised as well. */
    ck_assert_int_eq(ssm_kernel_dplr(NH, 1, g_dl, g_dP, g_dP, g_dB, g_dC, 0.01, 300, g_Kref), SSM_OK);
}
static ssm_status r_dplr(void)
{
    return ssm_kernel_dplr(NH, 1, g_dl, g_dP, g_dP, g_dB, g_dC, 0.01, 300, g_Kd);
}
static void ok_dplr(void) { same_bytes(g_Kd, g_Kref, sizeof g_Kd, "kernel_dplr"); }

/* ---- convolution ------------------------------------------------------ */

enum { CH = 3, CL = 200, CB = 2 };
static ssm_conv_plan *g_plan;
static ssm_conv_spectrum *g_spec;
static float *g_cK, *g_cD, *g_cu, *g_cy, *g_cyref;
static double *g_dK, *g_du, *g_dy, *g_dyref;

static ssm_status r_plan(void) { return ssm_conv_plan_create(&g_plan, CH, CL); }
static void f_plan(void) { ck_assert_ptr_null(g_plan); }
static void ok_plan(void) { ssm_conv_plan_destroy(g_plan); g_plan = NULL; }

static void s_conv(void)
{
    ck_assert_int_eq(ssm_conv_plan_create(&g_plan, CH, CL), SSM_OK);
    g_cK = frand(CH * CL); g_cD = frand(CH); g_cu = frand(CB * CH * CL);
    g_cy = tu_alloc(CB * CH * CL, sizeof(float)); g_cyref = tu_alloc(CB * CH * CL, sizeof(float));
    ck_assert_int_eq(ssm_conv_execute(g_plan, CB, g_cK, g_cD, g_cu, g_cyref), SSM_OK);
}
static void t_conv(void)
{
    ssm_conv_spectrum_destroy(g_spec); g_spec = NULL;
    ssm_conv_plan_destroy(g_plan); g_plan = NULL;
    free(g_cK); free(g_cD); free(g_cu); free(g_cy); free(g_cyref);
}
static ssm_status r_spec(void) { return ssm_conv_spectrum_create(&g_spec, g_plan, g_cK); }
static void f_spec(void) { ck_assert_ptr_null(g_spec); }
static void ok_spec(void)
{
    ck_assert_int_eq(ssm_conv_execute_spectrum(g_plan, g_spec, CB, g_cD, g_cu, g_cy), SSM_OK);
    same_bytes(g_cy, g_cyref, CB * CH * CL * sizeof(float), "spectrum");
    ssm_conv_spectrum_destroy(g_spec); g_spec = NULL;
}
static ssm_status r_exec(void) { return ssm_conv_execute(g_plan, CB, g_cK, g_cD, g_cu, g_cy); }
static void f_exec(void)
{   /* the plan stays usable */
    ck_assert_int_eq(ssm_conv_execute(g_plan, CB, g_cK, g_cD, g_cu, g_cy), SSM_OK);
    same_bytes(g_cy, g_cyref, CB * CH * CL * sizeof(float), "execute after a failure");
}
static void ok_exec(void) { same_bytes(g_cy, g_cyref, CB * CH * CL * sizeof(float), "execute"); }
static void s_exec_spec(void)
{
    s_conv();
    ck_assert_int_eq(ssm_conv_spectrum_create(&g_spec, g_plan, g_cK), SSM_OK);
}
static ssm_status r_exec_spec(void) { return ssm_conv_execute_spectrum(g_plan, g_spec, CB, g_cD, g_cu, g_cy); }

static void s_convd(void)
{
    g_dK = tu_alloc(CH * CL, sizeof(double)); g_du = tu_alloc(CB * CH * CL, sizeof(double));
    g_dy = tu_alloc(CB * CH * CL, sizeof(double)); g_dyref = tu_alloc(CB * CH * CL, sizeof(double));
    tu_fill_normal_d(&g_rng, g_dK, CH * CL, 1.0);
    tu_fill_normal_d(&g_rng, g_du, CB * CH * CL, 1.0);
    ck_assert_int_eq(ssm_conv_execute_d(CB, CH, CL, g_dK, NULL, g_du, g_dyref), SSM_OK);
}
static ssm_status r_convd(void) { return ssm_conv_execute_d(CB, CH, CL, g_dK, NULL, g_du, g_dy); }
static void ok_convd(void) { same_bytes(g_dy, g_dyref, CB * CH * CL * sizeof(double), "execute_d"); }
static void t_convd(void) { free(g_dK); free(g_du); free(g_dy); free(g_dyref); }

/* ---- scans -------------------------------------------------------------- */

static ssm_scan_args g_sa;
static float *g_sbuf[8], *g_sy, *g_syref, *g_sh, *g_shref;
static void scan_fixture(int64_t b, int64_t d, int64_t n, int64_t L)
{
    g_sa = (ssm_scan_args){ .batch = b, .dim = d, .dstate = n, .len = L, .ngroups = 1,
                            .delta_softplus = 1 };
    g_sbuf[0] = frand(b * d * L); g_sbuf[1] = frand(b * d * L);
    g_sbuf[2] = frand(d * n); g_sbuf[3] = frand(b * n * L); g_sbuf[4] = frand(b * n * L);
    g_sbuf[5] = frand(d); g_sbuf[6] = frand(b * d * L); g_sbuf[7] = frand(d);
    for (int64_t i = 0; i < d * n; i++) g_sbuf[2][i] = -fabsf(g_sbuf[2][i]);
    g_sa.u = g_sbuf[0]; g_sa.delta = g_sbuf[1]; g_sa.A = g_sbuf[2]; g_sa.B = g_sbuf[3];
    g_sa.C = g_sbuf[4]; g_sa.D = g_sbuf[5]; g_sa.z = g_sbuf[6]; g_sa.delta_bias = g_sbuf[7];
    g_sy = tu_alloc((size_t)(b * d * L), sizeof(float));
    g_syref = tu_alloc((size_t)(b * d * L), sizeof(float));
    g_sh = tu_alloc((size_t)(b * d * n), sizeof(float));
    g_shref = tu_alloc((size_t)(b * d * n), sizeof(float));
    g_sa.y = g_syref; g_sa.h_last = g_shref;
    ck_assert_int_eq(ssm_selective_scan(&g_sa), SSM_OK);
    g_sa.y = g_sy; g_sa.h_last = g_sh;
}
static void s_scan_seq(void) { scan_fixture(2, 6, 16, 300); }
static void s_scan_chunked(void) { scan_fixture(1, 2, 8, 5000); }
static void s_scan_split(void) { scan_fixture(1, 1, 16, 5000); }
static ssm_status r_scan(void) { return ssm_selective_scan(&g_sa); }
static void ok_scan(void)
{
    same_bytes(g_sy, g_syref, (size_t)(g_sa.batch * g_sa.dim * g_sa.len) * sizeof(float), "scan");
    same_bytes(g_sh, g_shref, (size_t)(g_sa.batch * g_sa.dim * g_sa.dstate) * sizeof(float), "scan h");
}
static void t_scan(void)
{
    for (int i = 0; i < 8; i++) free(g_sbuf[i]);
    free(g_sy); free(g_syref); free(g_sh); free(g_shref);
}

enum { DB = 2, DH = 3, DN = 20, DL = 150 };
static float complex g_dAd[DH * DN], g_dBd[DH * DN], g_dCe[DH * DN];
static float *g_du2, *g_dy2, *g_dyref2;
static void s_diag(void)
{
    for (int i = 0; i < DH * DN; i++) {
        g_dAd[i] = tu_cmplxf(0.9f, 0.1f * (float)(i % 7));
        g_dBd[i] = tu_cmplxf(1.0f, 0.0f);
        g_dCe[i] = tu_cmplxf(0.5f, -0.25f);
    }
    g_du2 = frand(DB * DH * DL);
    g_dy2 = tu_alloc(DB * DH * DL, sizeof(float)); g_dyref2 = tu_alloc(DB * DH * DL, sizeof(float));
    ck_assert_int_eq(ssm_diag_scan(DB, DH, DN, DL, g_dAd, g_dBd, g_dCe, NULL, g_du2, NULL, NULL, g_dyref2), SSM_OK);
}
static ssm_status r_diag(void) { return ssm_diag_scan(DB, DH, DN, DL, g_dAd, g_dBd, g_dCe, NULL, g_du2, NULL, NULL, g_dy2); }
static void ok_diag(void) { same_bytes(g_dy2, g_dyref2, DB * DH * DL * sizeof(float), "diag_scan"); }
static void t_diag(void) { free(g_du2); free(g_dy2); free(g_dyref2); }

enum { LB = 3, LN = 5, LO = 2, LL = 100 };
static float g_lAd[LN * LN], g_lBd[LN], g_lC[LO * LN], *g_lu, *g_ly, *g_lyref;
static void s_lti(void)
{
    for (int i = 0; i < LN * LN; i++) g_lAd[i] = (i % (LN + 1) == 0) ? 0.9f : 0.01f;
    for (int i = 0; i < LN; i++) g_lBd[i] = 1.0f;
    for (int i = 0; i < LO * LN; i++) g_lC[i] = 0.1f * (float)i;
    g_lu = frand(LB * LL);
    g_ly = tu_alloc(LB * LO * LL, sizeof(float)); g_lyref = tu_alloc(LB * LO * LL, sizeof(float));
    ck_assert_int_eq(ssm_lti_scan(LB, LN, LO, LL, g_lAd, g_lBd, g_lC, NULL, g_lu, NULL, NULL, g_lyref), SSM_OK);
}
static ssm_status r_lti(void) { return ssm_lti_scan(LB, LN, LO, LL, g_lAd, g_lBd, g_lC, NULL, g_lu, NULL, NULL, g_ly); }
static void ok_lti(void) { same_bytes(g_ly, g_lyref, LB * LO * LL * sizeof(float), "lti_scan"); }
static void t_lti(void) { free(g_lu); free(g_ly); free(g_lyref); }

/* ---- S4D layer --------------------------------------------------------- */

enum { SH = 3, SN = 8, SL = 128, SB = 2 };
static ssm_s4d_layer *g_lyy;
static float *g_su, *g_sy2, *g_syref2, *g_K2, *g_Kref2;
static float complex *g_h2;
static ssm_status r_layer_create(void) { return ssm_s4d_layer_create(&g_lyy, SH, SN, SSM_S4D_LEGS, SSM_ZOH, 3); }
static void f_layer_create(void) { ck_assert_ptr_null(g_lyy); }
static void ok_layer_create(void) { ssm_s4d_layer_destroy(g_lyy); g_lyy = NULL; }

static void s_layer(void)
{
    ck_assert_int_eq(ssm_s4d_layer_create(&g_lyy, SH, SN, SSM_S4D_LIN, SSM_BILINEAR, 3), SSM_OK);
    g_su = frand(SB * SH * SL);
    g_sy2 = tu_alloc(SB * SH * SL, sizeof(float)); g_syref2 = tu_alloc(SB * SH * SL, sizeof(float));
    g_K2 = tu_alloc(SH * SL, sizeof(float)); g_Kref2 = tu_alloc(SH * SL, sizeof(float));
    g_h2 = tu_alloc(SB * SH * SN, sizeof(float complex));
}
static void t_layer(void)
{
    ssm_s4d_layer_destroy(g_lyy); g_lyy = NULL;
    free(g_su); free(g_sy2); free(g_syref2); free(g_K2); free(g_Kref2); free(g_h2);
}
static void s_layer_conv(void)
{
    s_layer();
    ck_assert_int_eq(ssm_s4d_layer_forward(g_lyy, SSM_MODE_CONV, SB, SL, g_su, g_syref2), SSM_OK);
    /* Drop the cache: every run below rebuilds it (plan, kernel, spectra). */
    double dt[SH];
    ck_assert_int_eq(ssm_s4d_layer_get_params(g_lyy, NULL, dt, NULL, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_s4d_layer_set_params(g_lyy, NULL, dt, NULL, NULL, NULL), SSM_OK);
}
static ssm_status r_layer_conv(void) { return ssm_s4d_layer_forward(g_lyy, SSM_MODE_CONV, SB, SL, g_su, g_sy2); }
static void f_layer_conv(void)
{
    ck_assert_int_eq(ssm_s4d_layer_forward(g_lyy, SSM_MODE_RECURRENT, SB, SL, g_su, g_sy2), SSM_OK);
}
static void ok_layer_conv(void) { same_bytes(g_sy2, g_syref2, SB * SH * SL * sizeof(float), "layer conv"); }
static void s_layer_rec(void)
{
    s_layer();
    ck_assert_int_eq(ssm_s4d_layer_forward(g_lyy, SSM_MODE_RECURRENT, SB, SL, g_su, g_syref2), SSM_OK);
}
static ssm_status r_layer_rec(void) { return ssm_s4d_layer_forward(g_lyy, SSM_MODE_RECURRENT, SB, SL, g_su, g_sy2); }
static ssm_status r_layer_state(void) { return ssm_s4d_layer_forward_state(g_lyy, NULL, g_h2, SB, SL, g_su, g_sy2); }
static void s_layer_kernel(void)
{
    s_layer();
    ck_assert_int_eq(ssm_s4d_layer_kernel(g_lyy, SL, g_Kref2), SSM_OK);
}
static ssm_status r_layer_kernel(void) { return ssm_s4d_layer_kernel(g_lyy, SL, g_K2); }
static void ok_layer_kernel(void) { same_bytes(g_K2, g_Kref2, SH * SL * sizeof(float), "layer kernel"); }
static float complex g_ad0[SH * SN];
static void s_layer_set(void)
{
    s_layer();
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(g_lyy, g_ad0, NULL, NULL), SSM_OK);
}
static ssm_status r_layer_set(void)
{
    const double dt[SH] = {0.01, 0.02, 0.03};
    return ssm_s4d_layer_set_params(g_lyy, NULL, dt, NULL, NULL, NULL);
}
static void f_layer_set(void)
{   /* all or nothing: unchanged */
    float complex ad[SH * SN];
    ck_assert_int_eq(ssm_s4d_layer_get_discrete(g_lyy, ad, NULL, NULL), SSM_OK);
    same_bytes(ad, g_ad0, sizeof ad, "layer after a failed set_params");
}

/* ---- Mamba --------------------------------------------------------------- */

enum { MB = 2, ML = 9, MDM = 16, NLAYERS = 3 };
static ssm_mamba_config g_cfg;
static ssm_mamba *g_blk;
static ssm_mamba_state *g_mst;
static ssm_mamba_stack *g_stk;
static ssm_mamba_stack_state *g_sst;
static float *g_mx, *g_my, *g_myref, *g_conv0, *g_h0, *g_conv1, *g_h1;

static void mcfg(void) { ssm_mamba_config_init(&g_cfg); g_cfg.d_model = MDM; g_cfg.d_state = 8; }
static ssm_status r_mamba_create(void) { mcfg(); return ssm_mamba_create(&g_blk, &g_cfg, 1); }
static void f_mamba_create(void) { ck_assert_ptr_null(g_blk); }
static void ok_mamba_create(void) { ssm_mamba_destroy(g_blk); g_blk = NULL; }
static ssm_status r_stack_create(void) { mcfg(); return ssm_mamba_stack_create(&g_stk, &g_cfg, NLAYERS, 1); }
static void f_stack_create(void) { ck_assert_ptr_null(g_stk); }
static void ok_stack_create(void) { ssm_mamba_stack_destroy(g_stk); g_stk = NULL; }

static void s_mamba(void)
{
    mcfg();
    ck_assert_int_eq(ssm_mamba_create(&g_blk, &g_cfg, 1), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_create(&g_stk, &g_cfg, NLAYERS, 2), SSM_OK);
    g_mx = frand(MB * ML * MDM);
    g_my = tu_alloc(MB * ML * MDM, sizeof(float)); g_myref = tu_alloc(MB * ML * MDM, sizeof(float));
    g_conv0 = tu_alloc(MB * 2 * MDM * 4, sizeof(float)); g_conv1 = tu_alloc(MB * 2 * MDM * 4, sizeof(float));
    g_h0 = tu_alloc(MB * 2 * MDM * 8, sizeof(float)); g_h1 = tu_alloc(MB * 2 * MDM * 8, sizeof(float));
}
static void t_mamba(void)
{
    ssm_mamba_state_destroy(g_mst); g_mst = NULL;
    ssm_mamba_stack_state_destroy(g_sst); g_sst = NULL;
    ssm_mamba_destroy(g_blk); g_blk = NULL;
    ssm_mamba_stack_destroy(g_stk); g_stk = NULL;
    free(g_mx); free(g_my); free(g_myref); free(g_conv0); free(g_conv1); free(g_h0); free(g_h1);
}
static ssm_status r_state_create(void) { return ssm_mamba_state_create(&g_mst, g_blk, MB); }
static void f_state_create(void) { ck_assert_ptr_null(g_mst); }
static void ok_state_create(void) { ssm_mamba_state_destroy(g_mst); g_mst = NULL; }
static ssm_status r_sstate_create(void) { return ssm_mamba_stack_state_create(&g_sst, g_stk, MB); }
static void f_sstate_create(void) { ck_assert_ptr_null(g_sst); }
static void ok_sstate_create(void) { ssm_mamba_stack_state_destroy(g_sst); g_sst = NULL; }

/* Block forward with a state: reference from a fresh state; a failed call
 * must leave the state untouched (conv state and h). */
static void s_mfwd(void)
{
    s_mamba();
    ck_assert_int_eq(ssm_mamba_state_create(&g_mst, g_blk, MB), SSM_OK);
    ck_assert_int_eq(ssm_mamba_forward(g_blk, g_mst, MB, ML, g_mx, g_myref), SSM_OK);
    ck_assert_int_eq(ssm_mamba_state_reset(g_mst), SSM_OK);
    ck_assert_int_eq(ssm_mamba_state_get(g_mst, MB, g_conv0, g_h0), SSM_OK);
}
static ssm_status r_mfwd(void) { return ssm_mamba_forward(g_blk, g_mst, MB, ML, g_mx, g_my); }
static void f_mfwd(void)
{
    ck_assert_int_eq(ssm_mamba_state_get(g_mst, MB, g_conv1, g_h1), SSM_OK);
    same_bytes(g_conv1, g_conv0, MB * 2 * MDM * 4 * sizeof(float), "block conv state after a failure");
    same_bytes(g_h1, g_h0, MB * 2 * MDM * 8 * sizeof(float), "block h after a failure");
}
static void ok_mfwd(void) { same_bytes(g_my, g_myref, MB * ML * MDM * sizeof(float), "block forward"); }

/* Stack forward with a state: a failure may leave earlier layers advanced
 * (mamba.h says so); the state is reset and the call must then give the
 * reference bytes. */
static void s_sfwd(void)
{
    s_mamba();
    ck_assert_int_eq(ssm_mamba_stack_state_create(&g_sst, g_stk, MB), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_forward(g_stk, g_sst, MB, ML, g_mx, g_myref), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_state_reset(g_sst), SSM_OK);
}
static ssm_status r_sfwd(void) { return ssm_mamba_stack_forward(g_stk, g_sst, MB, ML, g_mx, g_my); }
static void f_sfwd(void) { ck_assert_int_eq(ssm_mamba_stack_state_reset(g_sst), SSM_OK); }
static void ok_sfwd(void) { same_bytes(g_my, g_myref, MB * ML * MDM * sizeof(float), "stack forward"); }

static const alloc_case cases[] = {
    {"ssm_hippo_nplr", NULL, r_nplr, NULL, ok_nothing, NULL},
    {"ssm_s4d_lambda(LEGS)", NULL, r_s4d_legs, NULL, ok_nothing, NULL},
    {"ssm_discretize(ZOH)", s_dense, r_disc, NULL, ok_nothing, NULL},
    {"ssm_discretize(BILINEAR)", s_dense, r_disc_bil, NULL, ok_nothing, NULL},
    {"ssm_kernel_dense", s_dense, r_kdense, NULL, ok_nothing, NULL},
    {"ssm_kernel_dplr", s_dplr, r_dplr, NULL, ok_dplr, NULL},
    {"ssm_conv_plan_create", NULL, r_plan, f_plan, ok_plan, NULL},
    {"ssm_conv_spectrum_create", s_conv, r_spec, f_spec, ok_spec, t_conv},
    {"ssm_conv_execute", s_conv, r_exec, f_exec, ok_exec, t_conv},
    {"ssm_conv_execute_spectrum", s_exec_spec, r_exec_spec, f_exec, ok_exec, t_conv},
    {"ssm_conv_execute_d", s_convd, r_convd, NULL, ok_convd, t_convd},
    {"ssm_selective_scan (channels)", s_scan_seq, r_scan, NULL, ok_scan, t_scan},
    {"ssm_selective_scan (chunked)", s_scan_chunked, r_scan, NULL, ok_scan, t_scan},
    {"ssm_selective_scan (split)", s_scan_split, r_scan, NULL, ok_scan, t_scan},
    {"ssm_diag_scan", s_diag, r_diag, NULL, ok_diag, t_diag},
    {"ssm_lti_scan", s_lti, r_lti, NULL, ok_lti, t_lti},
    {"ssm_s4d_layer_create", NULL, r_layer_create, f_layer_create, ok_layer_create, NULL},
    {"ssm_s4d_layer_set_params", s_layer_set, r_layer_set, f_layer_set, ok_nothing, t_layer},
    {"ssm_s4d_layer_kernel", s_layer_kernel, r_layer_kernel, NULL, ok_layer_kernel, t_layer},
    {"ssm_s4d_layer_forward(CONV)", s_layer_conv, r_layer_conv, f_layer_conv, ok_layer_conv, t_layer},
    {"ssm_s4d_layer_forward(RECURRENT)", s_layer_rec, r_layer_rec, NULL, ok_layer_conv, t_layer},
    {"ssm_s4d_layer_forward_state", s_layer_rec, r_layer_state, NULL, ok_layer_conv, t_layer},
    {"ssm_mamba_create", NULL, r_mamba_create, f_mamba_create, ok_mamba_create, NULL},
    {"ssm_mamba_state_create", s_mamba, r_state_create, f_state_create, ok_state_create, t_mamba},
    {"ssm_mamba_forward (state)", s_mfwd, r_mfwd, f_mfwd, ok_mfwd, t_mamba},
    {"ssm_mamba_stack_create", NULL, r_stack_create, f_stack_create, ok_stack_create, NULL},
    {"ssm_mamba_stack_state_create", s_mamba, r_sstate_create, f_sstate_create, ok_sstate_create, t_mamba},
    {"ssm_mamba_stack_forward (state)", s_sfwd, r_sfwd, f_sfwd, ok_sfwd, t_mamba},
};
#define NCASES ((int)(sizeof cases / sizeof *cases))

START_TEST(test_alloc_failures)
{
    tu_set_threads(1 + _i % 2);
    for (int c = 0; c < NCASES; c++)
        ck_assert_int_ge(sweep(&cases[c]), 0);
}
END_TEST

/* ---- allocation-free streaming ----------------------------------------- */

/* Allocations made by `steps` calls of one step function, after one warm-up
 * call (nothing may be allocated lazily on the first step either: the
 * warm-up is counted too). */
#define COUNT_STEPS(name, call) do { \
    ssmi_alloc_inject(0); \
    for (int s_ = 0; s_ < 100; s_++) ck_assert_int_eq((call), SSM_OK); \
    const int64_t n_ = ssmi_alloc_count(); \
    if (getenv("SSM_TEST_VERBOSE")) \
        printf("  %-26s threads %d: %lld allocations in 100 steps\n", name, nt, (long long)n_); \
    ck_assert_msg(n_ == 0, "%s at %d threads: %lld allocations in 100 steps", name, nt, \
                  (long long)n_); } while (0)

START_TEST(test_steps_allocation_free)
{
    const int nt = 1 + _i;
    tu_set_threads(nt);
    /* selective step, shapes of a small Mamba layer and of a wide one */
    for (int big = 0; big < 2; big++) {
        const int64_t b = big ? 4 : 1, d = big ? 512 : 8, n = 16;
        float *h = tu_alloc((size_t)(b * d * n), sizeof(float));
        float *u = frand(b * d), *dl = frand(b * d), *A = frand(d * n), *B = frand(b * n);
        float *C = frand(b * n), *D = frand(d), *z = frand(b * d), *bias = frand(d);
        float *y = tu_alloc((size_t)(b * d), sizeof(float));
        for (int64_t i = 0; i < d * n; i++) A[i] = -fabsf(A[i]);
        COUNT_STEPS("ssm_selective_step", ssm_selective_step(b, d, n, 1, h, u, dl, A, B, C, D, z, bias, 1, y));
        free(h); free(u); free(dl); free(A); free(B); free(C); free(D); free(z); free(bias); free(y);
    }
    /* diagonal and dense LTI steps, small and large state */
    for (int big = 0; big < 2; big++) {
        const int64_t b = 2, H = big ? 64 : 3, n = big ? 1000 : 20;
        float complex *Ad = tu_alloc((size_t)(H * n), sizeof *Ad), *Bd = tu_alloc((size_t)(H * n), sizeof *Bd);
        float complex *Cc = tu_alloc((size_t)(H * n), sizeof *Cc), *h = tu_alloc((size_t)(b * H * n), sizeof *h);
        for (int64_t i = 0; i < H * n; i++) { Ad[i] = 0.5f; Bd[i] = 1.0f; Cc[i] = 0.25f; }
        float *u = frand(b * H), *y = tu_alloc((size_t)(b * H), sizeof(float));
        COUNT_STEPS("ssm_diag_step", ssm_diag_step(b, H, n, h, Ad, Bd, Cc, NULL, u, y));
        free(Ad); free(Bd); free(Cc); free(h); free(u); free(y);
    }
    for (int big = 0; big < 2; big++) {
        const int64_t b = 3, n = big ? 300 : 5, no = big ? 700 : 2;
        float *Ad = tu_alloc((size_t)(n * n), sizeof(float)), *Bd = frand(n), *C = frand(no * n);
        for (int64_t i = 0; i < n; i++) Ad[i * n + i] = 0.5f;
        float *h = tu_alloc((size_t)(b * n), sizeof(float)), *u = frand(b);
        float *y = tu_alloc((size_t)(b * no), sizeof(float));
        COUNT_STEPS("ssm_lti_step", ssm_lti_step(b, n, no, h, Ad, Bd, C, NULL, u, y));
        free(Ad); free(Bd); free(C); free(h); free(u); free(y);
    }
    {
        ssm_s4d_layer *ly;
        ck_assert_int_eq(ssm_s4d_layer_create(&ly, 8, 64, SSM_S4D_LIN, SSM_ZOH, 1), SSM_OK);
        float complex *h = tu_alloc(2 * 8 * 64, sizeof *h);
        float *u = frand(2 * 8), *y = tu_alloc(2 * 8, sizeof(float));
        COUNT_STEPS("ssm_s4d_layer_step", ssm_s4d_layer_step(ly, h, 2, u, y));
        ssm_s4d_layer_destroy(ly);
        free(h); free(u); free(y);
    }
    {
        ssm_mamba_config cfg;
        ssm_mamba_config_init(&cfg);
        cfg.d_model = 64;
        ssm_mamba *blk;
        ssm_mamba_state *st;
        ssm_mamba_stack *stk;
        ssm_mamba_stack_state *sst;
        ck_assert_int_eq(ssm_mamba_create(&blk, &cfg, 1), SSM_OK);
        ck_assert_int_eq(ssm_mamba_state_create(&st, blk, 4), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_create(&stk, &cfg, 2, 1), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_state_create(&sst, stk, 4), SSM_OK);
        float *x = frand(4 * 64), *y = tu_alloc(4 * 64, sizeof(float));
        COUNT_STEPS("ssm_mamba_step (batch 1)", ssm_mamba_step(blk, st, 1, x, y));
        COUNT_STEPS("ssm_mamba_step (batch 4)", ssm_mamba_step(blk, st, 4, x, y));
        COUNT_STEPS("ssm_mamba_stack_step (batch 1)", ssm_mamba_stack_step(stk, sst, 1, x, y));
        COUNT_STEPS("ssm_mamba_stack_step (batch 4)", ssm_mamba_stack_step(stk, sst, 4, x, y));
        ssm_mamba_stack_state_destroy(sst);
        ssm_mamba_stack_destroy(stk);
        ssm_mamba_state_destroy(st);
        ssm_mamba_destroy(blk);
        free(x); free(y);
    }
}
END_TEST

/* The injector itself: the k-th allocation fails once, the count covers
 * allocations made by OpenMP worker threads. */
START_TEST(test_injector)
{
    ssmi_alloc_inject(2);
    void *a = ssmi_alloc(10, 4), *b = ssmi_alloc(10, 4), *c = ssmi_alloc(10, 4);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(ssmi_alloc_count(), 3);
    ssmi_alloc_inject(0);
    ssmi_free(a); ssmi_free(c);
    tu_set_threads(2);
#pragma omp parallel num_threads(2)
    {
        void *p = ssmi_alloc(1, 1);
        ssmi_free(p);
    }
    ck_assert_int_eq(ssmi_alloc_count(), 2);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_injector);
    tcase_add_loop_test(tc, test_alloc_failures, 0, 2);
    tcase_add_loop_test(tc, test_steps_allocation_free, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(alloc_suite());
}
