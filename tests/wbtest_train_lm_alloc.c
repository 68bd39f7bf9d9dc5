/* ctest-labels: alloc;train */
/*
 * wbtest_train_lm_alloc.c -- allocation failures in ssm_lm_head_xent and
 * ssm_ssd_scan_backward (white-box: arms the library's failure injector,
 * internal.h).  For each call the k-th allocation fails for k = 1, 2, ...
 * until the call succeeds: every failure returns SSM_ERR_NOMEM, and the
 * call that succeeds gives the bytes of an unarmed
 * reference run.  Leaks show in the sanitizer build (LeakSanitizer).
 */
#include <ssm.h>
#include "internal.h"
#include "testutil.h"

typedef ssm_status (*run_fn)(int reference);

enum { R = 70, DM = 9, V = 7, VP = 8 };
static float h[R * DM], W[VP * DM], dh[2][R * DM], dW[2][VP * DM];
static int32_t t[R];
static double loss[2];

static ssm_status run_xent(int r)
{
    return ssm_lm_head_xent(R, DM, V, VP, h, W, t, -1, &loss[r], NULL, NULL, dh[r], dW[r]);
}

/* SSD: 2 heads in one group (the per-head dB/dC buffers are allocated) */
enum { SB = 2, SL = 21, SH = 2, SP = 3, SN = 4 };
static float x[SB * SL * SH * SP], z[SB * SL * SH * SP], dy[SB * SL * SH * SP];
static float dt[SB * SL * SH], Bm[SB * SL * SN], Cm[SB * SL * SN];
static float A[SH] = { -0.5f, -1.0f }, D[SH] = { 1.0f, 0.5f }, db[SH] = { 0.1f, -0.2f };
static float gx[2][SB * SL * SH * SP], gdt[2][SB * SL * SH], gA[2][SH], gB[2][SB * SL * SN],
             gC[2][SB * SL * SN], gD[2][SH], gz[2][SB * SL * SH * SP], gb[2][SH],
             gh0[2][SB * SH * SP * SN];

static ssm_status run_ssd(int r)
{
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = SB; a.len = SL; a.nheads = SH; a.headdim = SP; a.dstate = SN; a.ngroups = 1;
    a.x = x; a.dt = dt; a.A = A; a.B = Bm; a.C = Cm; a.D = D; a.z = z; a.dt_bias = db;
    a.dt_softplus = 1; a.dt_max = INFINITY;
    ssm_ssd_grads g = { gx[r], gdt[r], gA[r], gB[r], gC[r], gD[r], gz[r], gb[r], gh0[r] };
    return ssm_ssd_scan_backward(&a, dy, NULL, &g);
}

static void check(run_fn f, const char *name, const void *ref, const void *out, size_t n)
{
    ck_assert_int_eq(f(1), SSM_OK);
    int64_t k = 1;
    for (;; k++) {
        ck_assert_msg(k < 100, "%s: no success after 100 failures", name);
        ssmi_alloc_inject(k);
        const ssm_status st = f(0);
        ssmi_alloc_inject(0);
        if (st == SSM_OK)
            break;
        ck_assert_msg(st == SSM_ERR_NOMEM, "%s: allocation %lld failed gave %d", name,
                      (long long)k, (int)st);
    }
    ck_assert_msg(memcmp(ref, out, n) == 0, "%s: bytes differ after the failures", name);
    printf("%s: %lld allocation failures, each SSM_ERR_NOMEM, then the reference bytes\n",
           name, (long long)(k - 1));
}

START_TEST(alloc_failures)
{
    tu_rng r = { 9 };
    tu_fill_normal_f(&r, h, R * DM, 1.0);
    tu_fill_normal_f(&r, W, VP * DM, 0.5);
    for (int i = 0; i < R; i++)
        t[i] = i % 5 == 0 ? -1 : (int32_t)(tu_u64(&r) % V);
    tu_fill_normal_f(&r, x, SB * SL * SH * SP, 1.0);
    tu_fill_normal_f(&r, z, SB * SL * SH * SP, 1.0);
    tu_fill_normal_f(&r, dy, SB * SL * SH * SP, 1.0);
    tu_fill_normal_f(&r, dt, SB * SL * SH, 1.0);
    tu_fill_normal_f(&r, Bm, SB * SL * SN, 1.0);
    tu_fill_normal_f(&r, Cm, SB * SL * SN, 1.0);
    check(run_xent, "ssm_lm_head_xent dh", dh[1], dh[0], sizeof dh[0]);
    ck_assert(memcmp(dW[1], dW[0], sizeof dW[0]) == 0);
    ck_assert(memcmp(&loss[1], &loss[0], sizeof(double)) == 0);
    check(run_ssd, "ssm_ssd_scan_backward dx", gx[1], gx[0], sizeof gx[0]);
    ck_assert(memcmp(gB[1], gB[0], sizeof gB[0]) == 0);
    ck_assert(memcmp(gC[1], gC[0], sizeof gC[0]) == 0);
    ck_assert(memcmp(gh0[1], gh0[0], sizeof gh0[0]) == 0);
    ck_assert(memcmp(gA[1], gA[0], sizeof gA[0]) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train_lm_alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
