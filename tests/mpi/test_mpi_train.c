/* ctest-labels: mpi;train */
/*
 * test_mpi_train.c -- data-parallel training of an S4D layer (the model,
 * loss and optimizer of python-free-demos/ssm_train.c: S4D-Lin kernels
 * K = 2 Re sum C Bd Ad^l, y = K * u + D u, mean squared error, AdamW with
 * warmup + cosine and global-norm clipping) over the ranks: each rank takes
 * its share of every batch (uneven shares allowed), computes its partial
 * dK, dD with ssm_conv_backward (the loss is the mean over the GLOBAL
 * batch, so partials add up), the ranks sum them with ssm_mpi_allreduce_sum
 * (rank order, double, one rounding: the same bytes everywhere), and every
 * rank runs the kernel backward (linear in dK) on the sum, clips and steps
 * AdamW: R ranks train one model.
 *
 * Checks:
 *  1. Every step, at the data-parallel run's parameters, the reduced dK, dD
 *     and the loss against one process on the whole batch.  Bound per
 *     element (derived): one process rounds S = sum_b x_b once, R ranks
 *     round each partial S_r and then their sum:
 *       |dK_R - dK_1| <= u (|dK_1| + sum_r |dK_r| + |dK_R|)
 *                        + 2 B u_d sum_b |dK_b|   (double accumulations)
 *     (u = 2^-24, u_d = 2^-53); the loss (a double sum of the same squared
 *     errors in another association): relative 2 B H L u_d.
 *  2. The whole run against one process training on the full batch: on
 *     one rank the same bytes; on R ranks the loss curves agree within a
 *     relative 1e-4 over 20 steps (the per-step gradient differences of
 *     check 1, ~1e-7 relative, passed through AdamW's normalized steps of
 *     size lr ~ 3e-2 and 20 steps: well below; a dropped or doubled rank's
 *     share changes the losses by ~1e-2).
 *  3. Identical parameter bytes on every rank, and on a second run.
 */
#include <complex.h>
#include <float.h>
#include "mpi_testutil.h"

#define PI 3.14159265358979323846

enum { H = 4, NM = 8, LEN = 128, BT = 6, STEPS = 20 };
enum { P_LOGDT, P_D, P_LOGRE, P_IM, P_B, P_C, P_COUNT };

typedef struct s4d {
    int64_t off[P_COUNT + 1];
    float *p, *g, *m, *v;
} s4d;

static int64_t psize(int k) { return k <= P_D ? H : (k <= P_IM ? H * NM : 2 * H * NM); }

static void s4d_init(s4d *md, uint64_t seed)
{
    md->off[0] = 0;
    for (int k = 0; k < P_COUNT; k++) md->off[k + 1] = md->off[k] + psize(k);
    const int64_t n = md->off[P_COUNT];
    md->p = tu_alloc((size_t)n, sizeof(float)); md->g = tu_alloc((size_t)n, sizeof(float));
    md->m = tu_alloc((size_t)n, sizeof(float)); md->v = tu_alloc((size_t)n, sizeof(float));
    memset(md->m, 0, (size_t)n * sizeof(float));
    memset(md->v, 0, (size_t)n * sizeof(float));
    tu_rng r = { seed };
    float *P = md->p;
    for (int64_t h = 0; h < H; h++) {
        P[md->off[P_LOGDT] + h] = (float)(log(1e-3) + tu_unif(&r) * (log(1e-1) - log(1e-3)));
        P[md->off[P_D] + h] = (float)tu_normal(&r);
        for (int64_t k = 0; k < NM; k++) {
            const int64_t i = h * NM + k;
            P[md->off[P_LOGRE] + i] = (float)log(0.5);
            P[md->off[P_IM] + i] = (float)(PI * (double)k);
            P[md->off[P_B] + 2 * i] = 1.0f;
            P[md->off[P_B] + 2 * i + 1] = 0.0f;
            P[md->off[P_C] + 2 * i] = (float)(tu_normal(&r) * sqrt(0.5));
            P[md->off[P_C] + 2 * i + 1] = (float)(tu_normal(&r) * sqrt(0.5));
        }
    }
}

static void s4d_free(s4d *md) { free(md->p); free(md->g); free(md->m); free(md->v); }

/* lambda, B, 2C of channel h (conjugate pairs halved, as ssm_train). */
static void modes(const s4d *md, int64_t h, ssm_cdouble *lam, ssm_cdouble *B, ssm_cdouble *C2)
{
    const float *P = md->p;
    for (int64_t k = 0; k < NM; k++) {
        const int64_t i = h * NM + k;
        lam[k] = -exp((double)P[md->off[P_LOGRE] + i]) + I * (double)P[md->off[P_IM] + i];
        B[k] = P[md->off[P_B] + 2 * i] + I * (double)P[md->off[P_B] + 2 * i + 1];
        C2[k] = 2.0 * (P[md->off[P_C] + 2 * i] + I * (double)P[md->off[P_C] + 2 * i + 1]);
    }
}

static void kernels(const s4d *md, float *K)
{
    ssm_cdouble lam[NM], B[NM], C2[NM], Ad[NM], Bd[NM];
    double Kd[LEN];
    for (int64_t h = 0; h < H; h++) {
        modes(md, h, lam, B, C2);
        const double dt = exp((double)md->p[md->off[P_LOGDT] + h]);
        ck_assert_int_eq(ssm_discretize_diag(SSM_ZOH, NM, lam, B, dt, Ad, Bd), SSM_OK);
        ck_assert_int_eq(ssm_kernel_diag(NM, Ad, Bd, C2, LEN, Kd), SSM_OK);
        for (int64_t l = 0; l < LEN; l++) K[h * LEN + l] = (float)Kd[l];
    }
}

/* Forward of nb sequences u [nb][H][L]: the sum of squared errors / cnt
 * (double, in order) and dy = 2 e / cnt (cnt: the GLOBAL element count). */
static double fwd(const s4d *md, const ssm_conv_plan *plan, int64_t nb, const float *K,
                  const float *u, const float *tgt, float *y, float *dy, int64_t cnt)
{
    if (nb == 0) return 0.0;
    ck_assert_int_eq(ssm_conv_execute(plan, nb, K, md->p + md->off[P_D], u, y), SSM_OK);
    double loss = 0.0;
    for (int64_t i = 0; i < nb * H * LEN; i++) {
        const double e = (double)y[i] - tgt[i];
        loss += e * e;
        dy[i] = (float)(2.0 * e / (double)cnt);
    }
    return loss / (double)cnt;
}

/* The parameter gradient from the (reduced) dK [H][L], dD [H]. */
static void grads_from(s4d *md, const float *dK, const float *dD)
{
    ssm_cdouble lam[NM], B[NM], C2[NM], dl[NM], dB[NM], dC[NM];
    double dKd[LEN];
    float *G = md->g;
    for (int64_t h = 0; h < H; h++) {
        G[md->off[P_D] + h] = dD[h];
        modes(md, h, lam, B, C2);
        const double dt = exp((double)md->p[md->off[P_LOGDT] + h]);
        for (int64_t l = 0; l < LEN; l++) dKd[l] = dK[h * LEN + l];
        double ddt = 0.0;
        ck_assert_int_eq(ssm_s4d_kernel_backward(SSM_ZOH, NM, lam, B, C2, dt, LEN, dKd,
                                                 dl, dB, dC, &ddt), SSM_OK);
        G[md->off[P_LOGDT] + h] = (float)(dt * ddt);
        for (int64_t k = 0; k < NM; k++) {
            const int64_t i = h * NM + k;
            G[md->off[P_LOGRE] + i] = (float)(creal(lam[k]) * creal(dl[k]));
            G[md->off[P_IM] + i] = (float)cimag(dl[k]);
            G[md->off[P_B] + 2 * i] = (float)creal(dB[k]);
            G[md->off[P_B] + 2 * i + 1] = (float)cimag(dB[k]);
            G[md->off[P_C] + 2 * i] = (float)(2.0 * creal(dC[k]));
            G[md->off[P_C] + 2 * i + 1] = (float)(2.0 * cimag(dC[k]));
        }
    }
}

/* Clip at 1, AdamW with warmup + cosine (ssm_train's schedule). */
static void opt_step(s4d *md, int64_t s)
{
    ssm_adamw_config cfg = { 0.01, 0.9, 0.999, 1e-8, 0.0 };
    float *gr[1] = { md->g };
    const int64_t sz[1] = { md->off[P_COUNT] };
    double gn;
    ck_assert_int_eq(ssm_lr_warmup_cosine(s, 1, STEPS, 0.03, 0.0015, &cfg.lr), SSM_OK);
    if (ssm_clip_grad_norm(gr, sz, 1, 1.0, &gn) == SSM_OK)
        ck_assert_int_eq(ssm_adamw_step(&cfg, s + 1, md->off[P_COUNT], md->p, md->g, md->m,
                                        md->v), SSM_OK);
}

/* The global batch of step s: u [BT][H][L] (one band-limited signal per
 * sequence on every channel) and targets delayed by 4 (h+1). */
static void batch_of(int64_t s, float *u, float *tgt)
{
    tu_rng r = { 1000 + (uint64_t)s };
    for (int64_t b = 0; b < BT; b++) {
        double f[6], a[6], ph[6];
        for (int q = 0; q < 6; q++) {
            f[q] = 0.05 * tu_unif(&r);
            a[q] = tu_normal(&r);
            ph[q] = 2 * PI * tu_unif(&r);
        }
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < LEN; t++) {
                double v = 0, w = 0;
                for (int q = 0; q < 6; q++) {
                    v += a[q] * cos(2 * PI * f[q] * (double)t + ph[q]);
                    w += a[q] * cos(2 * PI * f[q] * (double)(t - 4 * (h + 1)) + ph[q]);
                }
                u[(b * H + h) * LEN + t] = (float)(v / 3);
                tgt[(b * H + h) * LEN + t] = t >= 4 * (h + 1) ? (float)(w / 3) : 0.0f;
            }
    }
}

/* This rank's share of the batch: [first, first + count). */
static void share(int64_t *first, int64_t *count)
{
    const int R = mt_size(), r = mt_rank();
    *first = BT * r / R;
    *count = BT * (r + 1) / R - *first;
}

typedef struct run_out {
    double loss[STEPS];
    double eval0, eval1;    /* loss on a held-out batch, before and after */
    double rk, rl;          /* check 1's largest ratios: dK, dD; loss */
    float *p;
} run_out;

/* The loss of the whole held-out batch at md's parameters. */
static double eval_loss(const s4d *md, const ssm_conv_plan *plan)
{
    const int64_t cnt = BT * H * LEN;
    float *u = tu_alloc((size_t)cnt, sizeof(float)), *t = tu_alloc((size_t)cnt, sizeof(float));
    float *y = tu_alloc((size_t)cnt, sizeof(float)), *dy = tu_alloc((size_t)cnt, sizeof(float));
    float *K = tu_alloc(H * LEN, sizeof(float));
    batch_of(99999, u, t);
    kernels(md, K);
    const double l = fwd(md, plan, BT, K, u, t, y, dy, cnt);
    free(u); free(t); free(y); free(dy); free(K);
    return l;
}

/* Data parallel over the ranks (dp = 1) or one process on the full batch
 * (dp = 0); with dp and check: the per-step comparison of check 1. */
static void train(int dp, int check, run_out *out)
{
    const int R = mt_size();
    const double u = FLT_EPSILON / 2, ud = DBL_EPSILON / 2;
    s4d md;
    s4d_init(&md, 7);
    ssm_conv_plan *plan = NULL;
    ck_assert_int_eq(ssm_conv_plan_create(&plan, H, LEN), SSM_OK);
    const int64_t cnt = BT * H * LEN;
    float *u_all = tu_alloc((size_t)cnt, sizeof(float)), *t_all = tu_alloc((size_t)cnt, sizeof(float));
    float *y = tu_alloc((size_t)cnt, sizeof(float)), *dy = tu_alloc((size_t)cnt, sizeof(float));
    float *K = tu_alloc(H * LEN, sizeof(float));
    float *buf = tu_alloc(H * LEN + H, sizeof(float));      /* [dK | dD] */
    float *ref = tu_alloc(H * LEN + H, sizeof(float));
    float *absr = tu_alloc(H * LEN + H, sizeof(float));     /* sum_r |partial| */
    float *absb = tu_alloc(H * LEN + H, sizeof(float));     /* sum_b |per sequence| */
    float *one = tu_alloc(H * LEN + H, sizeof(float));
    int64_t first = 0, nb = BT;
    if (dp) share(&first, &nb);
    out->eval0 = eval_loss(&md, plan);
    out->rk = out->rl = 0.0;
    for (int64_t s = 0; s < STEPS; s++) {
        batch_of(s, u_all, t_all);
        kernels(&md, K);
        const float *ub = u_all + first * H * LEN, *tb = t_all + first * H * LEN;
        double loss = fwd(&md, plan, nb, K, ub, tb, y, dy, cnt);
        if (nb > 0) {
            ck_assert_int_eq(ssm_conv_backward(plan, nb, K, md.p + md.off[P_D], ub, dy, NULL,
                                               buf, buf + H * LEN), SSM_OK);
        } else {
            memset(buf, 0, (H * LEN + H) * sizeof(float));
        }
        if (dp) {
            /* The partial losses in rank order; the partial dK, dD summed. */
            double all[64];
            MPI_Allgather(&loss, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
            loss = 0.0;
            for (int r = 0; r < R; r++) loss += all[r];
            for (int64_t i = 0; i < H * LEN + H; i++) absr[i] = fabsf(buf[i]);
            ck_assert_int_eq(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, buf, H * LEN + H), SSM_OK);
            ck_assert_int_eq(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, absr, H * LEN + H), SSM_OK);
        }
        if (dp && check) {
            /* One process, the whole batch, at these parameters. */
            double l1 = fwd(&md, plan, BT, K, u_all, t_all, y, dy, cnt);
            ck_assert_int_eq(ssm_conv_backward(plan, BT, K, md.p + md.off[P_D], u_all, dy,
                                               NULL, ref, ref + H * LEN), SSM_OK);
            memset(absb, 0, (H * LEN + H) * sizeof(float));
            for (int64_t b = 0; b < BT; b++) {
                ck_assert_int_eq(ssm_conv_backward(plan, 1, K, md.p + md.off[P_D],
                                                   u_all + b * H * LEN, dy + b * H * LEN, NULL,
                                                   one, one + H * LEN), SSM_OK);
                for (int64_t i = 0; i < H * LEN + H; i++) absb[i] += fabsf(one[i]);
            }
            double worst = 0.0;
            for (int64_t i = 0; i < H * LEN + H; i++) {
                const double bound = u * (fabs(ref[i]) + absr[i] + fabs(buf[i])) +
                                     2.0 * BT * ud * absb[i] + 1e-300;
                const double rr = fabs((double)buf[i] - ref[i]) / bound;
                if (rr > worst) worst = rr;
            }
            MT_ERR(worst, 1.0, "step %lld: reduced dK, dD vs one process (elementwise ratio)",
                   (long long)s);
            const double lb = 2.0 * cnt * ud * l1 + 1e-300;
            MT_ERR(fabs(loss - l1), lb, "step %lld: loss vs one process", (long long)s);
            if (worst > out->rk) out->rk = worst;
            if (fabs(loss - l1) / lb > out->rl) out->rl = fabs(loss - l1) / lb;
        }
        out->loss[s] = loss;
        grads_from(&md, buf, buf + H * LEN);
        opt_step(&md, s);
    }
    out->eval1 = eval_loss(&md, plan);
    out->p = tu_alloc((size_t)md.off[P_COUNT], sizeof(float));
    memcpy(out->p, md.p, (size_t)md.off[P_COUNT] * sizeof(float));
    ssm_conv_plan_destroy(plan);
    free(u_all); free(t_all); free(y); free(dy); free(K); free(buf); free(ref); free(absr);
    free(absb); free(one);
    s4d_free(&md);
}

START_TEST(test_data_parallel)
{
    const int R = mt_size();
    run_out dp1, dp2, single;
    train(1, 1, &dp1);
    train(1, 0, &dp2);
    train(0, 0, &single);
    const int64_t npar = 2 * H + 6 * H * NM;   /* log_dt, D; log_re, im; B, C complex */
    /* 3. identical bytes: a second run, and every rank the same. */
    MT_EXPECT(!memcmp(dp1.p, dp2.p, (size_t)npar * sizeof(float)) &&
              !memcmp(dp1.loss, dp2.loss, sizeof dp1.loss), "second run: bytes differ");
    {
        uint64_t h = 1469598103934665603ull;
        const unsigned char *c = (const unsigned char *)dp1.p;
        for (size_t i = 0; i < (size_t)npar * sizeof(float); i++) { h ^= c[i]; h *= 1099511628211ull; }
        long long v[2] = { (long long)(h >> 1), -(long long)(h >> 1) }, m[2];
        MPI_Allreduce(v, m, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
        MT_EXPECT(m[0] == -m[1], "parameters differ between the ranks");
    }
    /* 2. against one process on the full batch. */
    if (R == 1) {
        MT_EXPECT(!memcmp(dp1.p, single.p, (size_t)npar * sizeof(float)),
                  "one rank: parameters differ from the single-process trainer");
    }
    double worst = 0.0;
    for (int s = 0; s < STEPS; s++) {
        const double rel = fabs(dp1.loss[s] - single.loss[s]) / single.loss[s];
        MT_ERR(rel, 1e-4, "step %d: loss %.9g vs one process %.9g", s, dp1.loss[s],
               single.loss[s]);
        if (rel > worst) worst = rel;
    }
    double rk = dp1.rk, rl = dp1.rl, mx[2];
    double v2[2] = { rk, rl };
    MPI_Allreduce(v2, mx, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (mt_rank() == 0)
        printf("data-parallel S4D (%d ranks, batch %d, %d steps): held-out loss %.6f -> %.6f; "
               "per step vs one process at the same parameters: dK, dD ratio %.3f, loss ratio "
               "%.3f; loss curve vs one process: largest relative difference %.2e\n", R, BT,
               STEPS, dp1.eval0, dp1.eval1, mx[0], mx[1], worst);
    MT_EXPECT(dp1.eval1 < 0.5 * dp1.eval0, "training did not lower the held-out loss "
              "(%.6f -> %.6f)", dp1.eval0, dp1.eval1);
    free(dp1.p); free(dp2.p); free(single.p);
    mt_finish("data-parallel S4D training");
}
END_TEST

/* ---- the Mamba stack (ssm_mamba_stack_backward, branch mbwd) ---------
 *
 * The same scheme with the residual Mamba stack: each rank runs
 * ssm_mamba_stack_forward_det and ssm_mamba_stack_backward on its share
 * of the batch (loss: the mean squared error over the GLOBAL batch against
 * a target, the previous token's input), the flat gradient vectors are
 * summed with ssm_mpi_allreduce_sum, then clipping and AdamW on the flat
 * parameter vector (ssm_mamba_stack_params_get / _set).
 * Bound of check 1 (derived): the backward's weight gradients add the
 * sequences' contributions g_b in float in batch order (tiled GEMMs with
 * beta 1, the scan's and the norm's sums), one process over all BT
 * sequences, R ranks over their shares and then the partial sums (double,
 * one rounding): both are within (BT - 1) u sum_b |g_b| of the exact sum
 * (recursive summation), plus u |g| for each final rounding, so
 *   |g_R - g_1| <= (2 BT + 3) u sum_b |g_b|     elementwise,
 * with sum_b |g_b| measured by one backward per sequence. */
enum { MDM = 8, MLEN = 16, MBT = 6, MSTEPS = 10, MNL = 2 };

static void mbatch(int64_t s, float *x, float *tgt)
{
    tu_rng r = { 5000 + (uint64_t)s };
    tu_fill_normal_f(&r, x, MBT * MLEN * MDM, 1.0);
    for (int64_t b = 0; b < MBT; b++)
        for (int64_t t = 0; t < MLEN; t++)
            for (int64_t j = 0; j < MDM; j++)
                tgt[(b * MLEN + t) * MDM + j] =
                    t > 0 ? x[(b * MLEN + t - 1) * MDM + j] : 0.0f;
}

static double mfwd(const ssm_mamba_stack *stk, int64_t nb, const float *x, const float *tgt,
                   float *y, float *dy, int64_t cnt)
{
    if (nb == 0) return 0.0;
    ck_assert_int_eq(ssm_mamba_stack_forward_det(stk, nb, MLEN, x, y), SSM_OK);
    double loss = 0.0;
    for (int64_t i = 0; i < nb * MLEN * MDM; i++) {
        const double e = (double)y[i] - tgt[i];
        loss += e * e;
        dy[i] = (float)(2.0 * e / (double)cnt);
    }
    return loss / (double)cnt;
}

typedef struct mrun {
    double loss[MSTEPS], rk, rl;
    float *p;
    int64_t np;
} mrun;

static void mtrain(int dp, int check, mrun *out)
{
    const int R = mt_size();
    const double u = FLT_EPSILON / 2, ud = DBL_EPSILON / 2;
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    c.d_model = MDM; c.d_state = 4; c.d_conv = 4; c.expand = 2;
    ssm_mamba_stack *stk = NULL;
    ck_assert_int_eq(ssm_mamba_stack_create(&stk, &c, MNL, 17), SSM_OK);
    ssm_mamba_stack_grads *g = NULL, *g1 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g, stk), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_create(&g1, stk), SSM_OK);
    int64_t np = 0;
    float *gv = NULL, *gv1 = NULL;
    ck_assert_int_eq(ssm_mamba_stack_param_total(stk, &np), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_data(g, &gv, NULL), SSM_OK);
    ck_assert_int_eq(ssm_mamba_stack_grads_data(g1, &gv1, NULL), SSM_OK);
    float *p = tu_alloc((size_t)np, sizeof(float)), *m = tu_alloc((size_t)np, sizeof(float));
    float *v = tu_alloc((size_t)np, sizeof(float)), *absb = tu_alloc((size_t)np, sizeof(float));
    float *ref = tu_alloc((size_t)np, sizeof(float));
    memset(m, 0, (size_t)np * sizeof(float));
    memset(v, 0, (size_t)np * sizeof(float));
    const int64_t cnt = MBT * MLEN * MDM, per = MLEN * MDM;
    float *x = tu_alloc((size_t)cnt, sizeof(float)), *tgt = tu_alloc((size_t)cnt, sizeof(float));
    float *y = tu_alloc((size_t)cnt, sizeof(float)), *dy = tu_alloc((size_t)cnt, sizeof(float));
    int64_t first = 0, nb = MBT;
    if (dp) {
        first = MBT * mt_rank() / R;
        nb = MBT * (mt_rank() + 1) / R - first;
    }
    out->rk = out->rl = 0.0;
    for (int64_t s = 0; s < MSTEPS; s++) {
        mbatch(s, x, tgt);
        const float *xb = x + first * per, *tb = tgt + first * per;
        double loss = mfwd(stk, nb, xb, tb, y, dy, cnt);
        if (nb > 0)
            ck_assert_int_eq(ssm_mamba_stack_backward(stk, nb, MLEN, xb, dy, NULL, g), SSM_OK);
        else
            memset(gv, 0, (size_t)np * sizeof(float));
        if (dp) {
            double all[64];
            MPI_Allgather(&loss, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
            loss = 0.0;
            for (int r = 0; r < R; r++) loss += all[r];
            ck_assert_int_eq(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, gv, np), SSM_OK);
        }
        if (dp && check) {
            const double l1 = mfwd(stk, MBT, x, tgt, y, dy, cnt);
            ck_assert_int_eq(ssm_mamba_stack_backward(stk, MBT, MLEN, x, dy, NULL, g1), SSM_OK);
            memcpy(ref, gv1, (size_t)np * sizeof(float));
            memset(absb, 0, (size_t)np * sizeof(float));
            for (int64_t b = 0; b < MBT; b++) {
                ck_assert_int_eq(ssm_mamba_stack_backward(stk, 1, MLEN, x + b * per,
                                                          dy + b * per, NULL, g1), SSM_OK);
                for (int64_t i = 0; i < np; i++) absb[i] += fabsf(gv1[i]);
            }
            double worst = 0.0;
            for (int64_t i = 0; i < np; i++) {
                const double bound = (2.0 * MBT + 3.0) * u * absb[i] + 1e-300;
                const double rr = fabs((double)gv[i] - ref[i]) / bound;
                if (rr > worst) worst = rr;
            }
            MT_ERR(worst, 1.0, "Mamba step %lld: reduced gradient vs one process", (long long)s);
            const double lb = 2.0 * cnt * ud * l1 + 1e-300;
            MT_ERR(fabs(loss - l1), lb, "Mamba step %lld: loss vs one process", (long long)s);
            if (worst > out->rk) out->rk = worst;
            if (fabs(loss - l1) / lb > out->rl) out->rl = fabs(loss - l1) / lb;
        }
        out->loss[s] = loss;
        ssm_adamw_config cfg = { 0.0, 0.9, 0.999, 1e-8, 0.0 };
        ck_assert_int_eq(ssm_lr_warmup_cosine(s, 1, MSTEPS, 0.01, 0.0005, &cfg.lr), SSM_OK);
        float *gr[1] = { gv };
        const int64_t sz[1] = { np };
        double gn;
        if (ssm_clip_grad_norm(gr, sz, 1, 1.0, &gn) == SSM_OK) {
            ck_assert_int_eq(ssm_mamba_stack_params_get(stk, p, np), SSM_OK);
            ck_assert_int_eq(ssm_adamw_step(&cfg, s + 1, np, p, gv, m, v), SSM_OK);
            ck_assert_int_eq(ssm_mamba_stack_params_set(stk, p, np), SSM_OK);
        }
    }
    out->np = np;
    out->p = tu_alloc((size_t)np, sizeof(float));
    ck_assert_int_eq(ssm_mamba_stack_params_get(stk, out->p, np), SSM_OK);
    free(p); free(m); free(v); free(absb); free(ref); free(x); free(tgt); free(y); free(dy);
    ssm_mamba_stack_grads_destroy(g);
    ssm_mamba_stack_grads_destroy(g1);
    ssm_mamba_stack_destroy(stk);
}

START_TEST(test_data_parallel_mamba)
{
    const int R = mt_size();
    mrun a, b, one;
    mtrain(1, 1, &a);
    mtrain(1, 0, &b);
    mtrain(0, 0, &one);
    MT_EXPECT(!memcmp(a.p, b.p, (size_t)a.np * sizeof(float)) &&
              !memcmp(a.loss, b.loss, sizeof a.loss), "Mamba: second run, bytes differ");
    {
        uint64_t h = 1469598103934665603ull;
        const unsigned char *c = (const unsigned char *)a.p;
        for (size_t i = 0; i < (size_t)a.np * sizeof(float); i++) { h ^= c[i]; h *= 1099511628211ull; }
        long long vv[2] = { (long long)(h >> 1), -(long long)(h >> 1) }, mm[2];
        MPI_Allreduce(vv, mm, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
        MT_EXPECT(mm[0] == -mm[1], "Mamba: parameters differ between the ranks");
    }
    if (R == 1)
        MT_EXPECT(!memcmp(a.p, one.p, (size_t)a.np * sizeof(float)),
                  "Mamba, one rank: parameters differ from the single-process trainer");
    double worst = 0.0;
    for (int s = 0; s < MSTEPS; s++) {
        const double rel = fabs(a.loss[s] - one.loss[s]) / one.loss[s];
        MT_ERR(rel, 1e-4, "Mamba step %d: loss %.9g vs one process %.9g", s, a.loss[s],
               one.loss[s]);
        if (rel > worst) worst = rel;
    }
    double v2[2] = { a.rk, a.rl }, mx[2];
    MPI_Allreduce(v2, mx, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (mt_rank() == 0)
        printf("data-parallel Mamba stack (%d ranks, batch %d, %d steps): loss %.6f -> %.6f; "
               "per step vs one process: gradient ratio %.3f, loss ratio %.3f; loss curve: "
               "largest relative difference %.2e\n", R, MBT, MSTEPS, a.loss[0],
               a.loss[MSTEPS - 1], mx[0], mx[1], worst);
    free(a.p); free(b.p); free(one.p);
    mt_finish("data-parallel Mamba stack training");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_data_parallel);
    tcase_add_test(tc, test_data_parallel_mamba);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
