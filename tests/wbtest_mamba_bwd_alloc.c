/* ctest-labels: alloc;train */
/*
 * wbtest_mamba_bwd_alloc.c -- allocation failures in the Mamba block and
 * stack backward and the deterministic forwards (white-box: arms the
 * library's failure injector, internal.h).  For each call, the k-th
 * allocation fails for k = 1, 2, ... until the call succeeds: every failure
 * returns SSM_ERR_NOMEM (a failed create leaves *g NULL), and the call that
 * succeeds gives the bytes of an unarmed reference run.  Leaks show in the
 * sanitizer build (LeakSanitizer).
 */
#include <ssm.h>
#include "internal.h"
#include "testutil.h"

enum { B = 2, L = 9, DM = 6, NL = 2 };

static ssm_mamba *blk;
static ssm_mamba_stack *stk;
static ssm_mamba_stack_grads *gref, *gout;
static float x[B * L * DM], dy[B * L * DM], ref[B * L * DM], out[B * L * DM];
static float *pref[SSM_MAMBA_NPARAMS], *pout[SSM_MAMBA_NPARAMS];
static int64_t cnt[SSM_MAMBA_NPARAMS];

static void setup(void)
{
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    c.d_model = DM; c.d_state = 3; c.d_conv = 3; c.dt_rank = 2;
    ck_assert_int_eq(ssm_mamba_create(&blk, &c, 3), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &c, NL, 4), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&gref, stk), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&gout, stk), SSM_OK);
    tu_rng r = { 5 };
    tu_fill_normal_f(&r, x, B * L * DM, 1.0);
    tu_fill_normal_f(&r, dy, B * L * DM, 1.0);
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) {
        ck_assert_int_eq(ssm_mamba_param_count(blk, (ssm_mamba_param)i, &cnt[i]), SSM_OK);
        pref[i] = tu_alloc((size_t)cnt[i], 4);
        pout[i] = tu_alloc((size_t)cnt[i], 4);
    }
}

static void teardown(void)
{
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++) { free(pref[i]); free(pout[i]); }
    ssm_mamba_stack_grads_destroy(gref);
    ssm_mamba_stack_grads_destroy(gout);
    ssm_mamba_stack_destroy(stk);
    ssm_mamba_destroy(blk);
}

typedef ssm_status (*run_fn)(int reference);

static ssm_status run_block_bwd(int r)
{
    return ssm_mamba_backward(blk, B, L, x, dy, r ? ref : out, r ? pref : pout);
}
static ssm_status run_block_fwd(int r)
{
    return ssm_mamba_forward_det(blk, B, L, x, r ? ref : out);
}
static ssm_status run_stack_bwd(int r)
{
    return ssm_mamba_stack_backward(stk, B, L, x, dy, r ? ref : out, r ? gref : gout);
}
static ssm_status run_stack_fwd(int r)
{
    return ssm_mamba_stack_forward_det(stk, B, L, x, r ? ref : out);
}

static void same_bytes(run_fn f)
{
    ck_assert(!memcmp(ref, out, sizeof ref));
    if (f == run_block_bwd)
        for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
            ck_assert(!memcmp(pref[i], pout[i], (size_t)cnt[i] * 4));
    if (f == run_stack_bwd) {
        float *a = NULL, *b = NULL;
        int64_t n = 0;
        ck_assert_int_eq(ssm_mamba_stack_grads_data(gref, &a, &n), SSM_OK);
        ck_assert_int_eq(ssm_mamba_stack_grads_data(gout, &b, NULL), SSM_OK);
        ck_assert(!memcmp(a, b, (size_t)n * 4));
    }
}

START_TEST(calls_fail_cleanly)
{
    static const run_fn fns[] = { run_block_bwd, run_block_fwd, run_stack_bwd, run_stack_fwd };
    static const char *names[] = { "ssm_mamba_backward", "ssm_mamba_forward_det",
                                   "ssm_mamba_stack_backward", "ssm_mamba_stack_forward_det" };
    setup();
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        ck_assert_int_eq(fns[f](1), SSM_OK);
        int64_t k = 1;
        for (;; k++) {
            ck_assert(k < 10000);
            memset(out, 0, sizeof out);
            ssmi_alloc_inject(k);
            ssm_status st = fns[f](0);
            const int64_t c = ssmi_alloc_count();
            ssmi_alloc_inject(0);
            if (st == SSM_OK) {
                ck_assert(c < k);
                same_bytes(fns[f]);
                break;
            }
            ck_assert_msg(st == SSM_ERR_NOMEM, "%s: allocation %lld failed: got %d", names[f],
                          (long long)k, (int)st);
        }
        printf("%s: %lld allocations, each failure SSM_ERR_NOMEM, then the reference bytes\n",
               names[f], (long long)(k - 1));
    }
    /* The gradient object's create. */
    for (int64_t k = 1;; k++) {
        ssm_mamba_stack_grads *g = (ssm_mamba_stack_grads *)1;
        ssmi_alloc_inject(k);
        ssm_status st = ssm_mamba_stack_grads_create(&g, stk);
        ssmi_alloc_inject(0);
        if (st == SSM_OK) {
            ssm_mamba_stack_grads_destroy(g);
            break;
        }
        ck_assert_int_eq(st, SSM_ERR_NOMEM);
        ck_assert_ptr_null(g);
    }
    teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mamba_bwd_alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, calls_fail_cleanly);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
