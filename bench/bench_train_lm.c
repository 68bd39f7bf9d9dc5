/*
 * bench_train_lm.c -- `ssm_bench train-lm`: the LM head with cross-entropy
 * and the SSD (Mamba-2) scan backward against their forwards, medians of
 * repeats at 1 and 2 threads, ratios measured in this process.
 *   LM head: ssm_lm_head_xent with dh and dW (64^3 sgemm tiles) against the
 *   same call without gradients, and against one whole-matrix cblas_sgemm
 *   of the logits (the BLAS floor of the forward; thread-count dependent).
 *   SSD: ssm_ssd_scan_backward (all nine gradients; D, z, dt_bias,
 *   softplus) against ssm_ssd_scan on the same data.
 */
#include <math.h>
#include <cblas.h>
#include <ssm.h>
#include "bench_util.h"

static float lm_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1.0p-53 - 0.5);
}

typedef struct xent_ctx {
    int64_t R, dm, V;
    float *h, *W, *dh, *dW, *lg;
    int32_t *t;
} xent_ctx;

static void xent_eval(void *c)
{
    xent_ctx *x = c;
    double loss;
    ssm_lm_head_xent(x->R, x->dm, x->V, x->V, x->h, x->W, x->t, -1, &loss, NULL, NULL,
                     NULL, NULL);
}
static void xent_grad(void *c)
{
    xent_ctx *x = c;
    double loss;
    ssm_lm_head_xent(x->R, x->dm, x->V, x->V, x->h, x->W, x->t, -1, &loss, NULL, NULL,
                     x->dh, x->dW);
}
/* the logits of 64 rows as one sgemm: what one row block costs the BLAS */
static void xent_floor(void *c)
{
    xent_ctx *x = c;
    for (int64_t r0 = 0; r0 < x->R; r0 += 64)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 64, (int)x->V, (int)x->dm, 1.0f,
                    x->h + r0 * x->dm, (int)x->dm, x->W, (int)x->dm, 0.0f, x->lg, (int)x->V);
}

typedef struct ssd_ctx {
    ssm_ssd_args a;
    ssm_ssd_grads g;
    float *dy;
} ssd_ctx;

static void ssd_fwd(void *c) { ssd_ctx *s = c; ssm_ssd_scan(&s->a); }
static void ssd_bwd(void *c) { ssd_ctx *s = c; ssm_ssd_scan_backward(&s->a, s->dy, NULL, &s->g); }

static float *lm_buf(int64_t n, uint64_t *s)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (p)
        for (int64_t i = 0; i < n; i++) p[i] = lm_rand(s);
    return p;
}

int bench_train_lm(int argc, char **argv)
{
    (void)argc; (void)argv;
    const int maxt = bu_max_threads() < 2 ? bu_max_threads() : 2;
    const int reps = bu_repeats(5);
    uint64_t s = 3;
    printf("\nLM head + cross-entropy (rows x d_model x vocab): eval, eval + dh + dW, "
           "whole-block sgemm floor of the logits\n");
    printf("%-22s %3s %10s %10s %10s %9s %9s\n", "shape", "thr", "eval ms", "grad ms",
           "floor ms", "grad/eval", "eval/flr");
    const int64_t xs[][3] = { { 1024, 768, 50280 }, { 2048, 64, 16 } };
    for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) {
        xent_ctx x = { xs[k][0], xs[k][1], xs[k][2], NULL, NULL, NULL, NULL, NULL, NULL };
        x.h = lm_buf(x.R * x.dm, &s); x.W = lm_buf(x.V * x.dm, &s);
        x.dh = lm_buf(x.R * x.dm, &s); x.dW = lm_buf(x.V * x.dm, &s);
        x.lg = lm_buf(64 * x.V, &s);
        x.t = malloc((size_t)x.R * sizeof(int32_t));
        char name[64];
        snprintf(name, sizeof name, "%lld x %lld x %lld", (long long)x.R, (long long)x.dm,
                 (long long)x.V);
        if (x.h && x.W && x.dh && x.dW && x.lg && x.t) {
            for (int64_t r = 0; r < x.R; r++) x.t[r] = (int32_t)(r * 7919 % x.V);
            for (int thr = 1; thr <= maxt; thr++) {
                bu_set_threads(thr);
                xent_eval(&x);
                const double te = bu_time(xent_eval, &x, reps);
                const double tg = bu_time(xent_grad, &x, reps);
                const double tf = bu_time(xent_floor, &x, reps);
                printf("%-22s %3d %10.2f %10.2f %10.2f %9.2f %9.2f\n", thr == 1 ? name : "",
                       thr, 1e3 * te, 1e3 * tg, 1e3 * tf, tg / te, te / tf);
            }
        } else {
            printf("%s: out of memory, skipped\n", name);
        }
        free(x.h); free(x.W); free(x.dh); free(x.dW); free(x.lg); free(x.t);
    }
    printf("\nSSD scan backward (all nine gradients) vs ssm_ssd_scan "
           "(batch, len, heads, headdim, dstate; 1 group)\n");
    printf("%-22s %3s %10s %10s %9s\n", "shape", "thr", "fwd ms", "bwd ms", "bwd/fwd");
    const int64_t ss[][5] = { { 1, 2048, 8, 64, 64 }, { 1, 2048, 8, 64, 16 } };
    for (size_t k = 0; k < sizeof ss / sizeof ss[0]; k++) {
        const int64_t B = ss[k][0], L = ss[k][1], H = ss[k][2], P = ss[k][3], N = ss[k][4];
        const int64_t nx = B * L * H * P, nbc = B * L * N, ndt = B * L * H;
        ssd_ctx c;
        memset(&c, 0, sizeof c);
        float *x = lm_buf(nx, &s), *z = lm_buf(nx, &s), *y = lm_buf(nx, &s);
        float *dy = lm_buf(nx, &s), *dx = lm_buf(nx, &s), *dz = lm_buf(nx, &s);
        float *Bm = lm_buf(nbc, &s), *Cm = lm_buf(nbc, &s), *dB = lm_buf(nbc, &s);
        float *dC = lm_buf(nbc, &s), *dt = lm_buf(ndt, &s), *ddt = lm_buf(ndt, &s);
        float *hv = lm_buf(8 * H, &s);
        char name[64];
        snprintf(name, sizeof name, "(%lld,%lld,%lld,%lld,%lld)", (long long)B, (long long)L,
                 (long long)H, (long long)P, (long long)N);
        if (x && z && y && dy && dx && dz && Bm && Cm && dB && dC && dt && ddt && hv) {
            float *A = hv, *D = hv + H, *db = hv + 2 * H;
            for (int64_t h = 0; h < H; h++) {
                A[h] = -1.0f - (float)h;
                D[h] = 1.0f;
                db[h] = -2.0f;
            }
            c.a.batch = B; c.a.len = L; c.a.nheads = H; c.a.headdim = P; c.a.dstate = N;
            c.a.ngroups = 1; c.a.x = x; c.a.dt = dt; c.a.A = A; c.a.B = Bm; c.a.C = Cm;
            c.a.D = D; c.a.z = z; c.a.dt_bias = db; c.a.dt_softplus = 1;
            c.a.dt_max = INFINITY; c.a.y = y;
            ssm_ssd_grads g = { dx, ddt, hv + 3 * H, dB, dC, hv + 4 * H, dz, hv + 5 * H, NULL };
            c.g = g;
            c.dy = dy;
            for (int thr = 1; thr <= maxt; thr++) {
                bu_set_threads(thr);
                ssd_bwd(&c);
                const double tf = bu_time(ssd_fwd, &c, reps);
                const double tb = bu_time(ssd_bwd, &c, reps);
                printf("%-22s %3d %10.2f %10.2f %9.2f\n", thr == 1 ? name : "", thr, 1e3 * tf,
                       1e3 * tb, tb / tf);
            }
        } else {
            printf("%s: out of memory, skipped\n", name);
        }
        free(x); free(z); free(y); free(dy); free(dx); free(dz); free(Bm); free(Cm);
        free(dB); free(dC); free(dt); free(ddt); free(hv);
    }
    return 0;
}
