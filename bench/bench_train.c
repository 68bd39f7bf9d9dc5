/*
 * bench_train.c -- `ssm_bench train`: the cost of training steps.
 *
 * Selective scan backward (ssm_selective_scan_backward, every gradient
 * wanted, every option on as in a Mamba layer: D, z, delta_bias, softplus)
 * against the forward (ssm_selective_scan) on the same data, in this
 * process: median times at 1 and 2 threads and the ratio backward /
 * forward (the target: <= 3 at (1,1536,16,2048)).
 * Mamba block (ssm_mamba_backward, dx and all nine parameter gradients)
 * against ssm_mamba_forward (whole-matrix BLAS GEMMs) and against
 * ssm_mamba_forward_det (the deterministic tiled GEMMs the backward uses):
 * medians at 1 and 2 threads, ratios backward / forward and det / plain,
 * and the median process CPU times (steadier on a loaded machine).
 * Mamba stack training step (4 layers, Dm 256): forward_det + backward
 * (the stack forward run twice) against forward_train + backward_saved.
 * Few long channels ((1,1,16,2^20), (1,4,16,2^18): the time-chunked path;
 * (1,1,32,2^19): the state-split path): medians at 1 and 2 threads and the
 * speed-up (target >= 1.6 at 2 threads), then that path against the
 * sequential one (a forced checkpoint interval), interleaved.
 * `ssm_bench train [i]` runs only shape i (0-2 scans, 3-4 Mamba blocks,
 * 5 the stack step, 6-8 the few-long-channel scans).
 */
#include <math.h>
#include <ssm.h>
#include "bench_util.h"
#include "scan/selective_bwd_internal.h"

static uint64_t bt_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double bt_unif(uint64_t *s) { return ((double)(bt_rng(s) >> 11) + 0.5) * 0x1.0p-53; }
static float bt_normal(uint64_t *s)
{
    return (float)(sqrt(-2.0 * log(bt_unif(s))) * cos(6.283185307179586 * bt_unif(s)));
}

typedef struct train_data {
    ssm_scan_args a;
    ssm_scan_grads g;
    float *dy;
    float *buf;
} train_data;

static int td_make(train_data *td, int64_t batch, int64_t dim, int64_t N, int64_t L)
{
    const int64_t nx = batch * dim * L, nb = batch * N * L, ns = batch * dim * N;
    const int64_t tot = 9 * nx + 4 * nb + 2 * dim * N + 4 * dim + ns;
    td->buf = malloc((size_t)tot * sizeof(float));
    if (!td->buf)
        return -1;
    float *p = td->buf;
    uint64_t s = 7;
    for (int64_t i = 0; i < tot; i++)
        p[i] = bt_normal(&s);
    ssm_scan_args *a = &td->a;
    memset(a, 0, sizeof *a);
    memset(&td->g, 0, sizeof td->g);
    a->batch = batch; a->dim = dim; a->dstate = N; a->len = L; a->ngroups = 1;
    a->u = p; p += nx;
    float *delta = p; p += nx;
    a->delta = delta;
    a->z = p; p += nx;
    a->y = p; p += nx;
    td->dy = p; p += nx;
    td->g.du = p; p += nx;
    td->g.ddelta = p; p += nx;
    td->g.dz = p; p += nx;
    p += nx;
    a->B = p; p += nb;
    a->C = p; p += nb;
    td->g.dB = p; p += nb;
    td->g.dC = p; p += nb;
    float *A = p; p += dim * N;
    a->A = A;
    td->g.dA = p; p += dim * N;
    float *bias = p; p += dim;
    a->delta_bias = bias;
    a->D = p; p += dim;
    td->g.dD = p; p += dim;
    td->g.ddelta_bias = p; p += dim;
    td->g.dh0 = p;
    for (int64_t i = 0; i < nx; i++) {
        double dt = exp(log(1e-3) + (log(1e-1) - log(1e-3)) * bt_unif(&s));
        delta[i] = (float)log(expm1(dt));
    }
    for (int64_t i = 0; i < dim * N; i++)
        A[i] = (float)-exp(log(16.0) * bt_unif(&s));
    for (int64_t d = 0; d < dim; d++)
        bias[d] = 0.0f;
    a->delta_softplus = 1;
    return 0;
}

static void fwd_fn(void *c)
{
    train_data *td = c;
    if (ssm_selective_scan(&td->a) != SSM_OK)
        fprintf(stderr, "forward failed\n");
}
static void bwd_fn(void *c)
{
    train_data *td = c;
    if (ssm_selective_scan_backward(&td->a, td->dy, NULL, &td->g) != SSM_OK)
        fprintf(stderr, "backward failed\n");
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median and minimum of reps timed runs after one warm-up; forward and
 * backward interleaved so that a change of machine load hits both.  Also
 * the median process CPU time (all threads together): on a loaded machine
 * it is the steadier figure at one thread (time spent preempted is not
 * counted; at two threads it includes OpenMP's spinning at barriers). */
static void time_pair(train_data *td, int reps, double *f_med, double *f_min,
                      double *b_med, double *b_min, double *f_cpu, double *b_cpu)
{
    double tf[64], tb[64], cf[64], cb[64];
    if (reps > 64)
        reps = 64;
    fwd_fn(td);
    bwd_fn(td);
    for (int i = 0; i < reps; i++) {
        double c0 = cpu_now(), t0 = bu_now();
        fwd_fn(td);
        double c1 = cpu_now(), t1 = bu_now();
        bwd_fn(td);
        tb[i] = bu_now() - t1;
        cb[i] = cpu_now() - c1;
        tf[i] = t1 - t0;
        cf[i] = c1 - c0;
    }
    *f_cpu = bu_median(cf, reps);
    *b_cpu = bu_median(cb, reps);
    *f_med = bu_median(tf, reps);
    *f_min = tf[0];
    *b_med = bu_median(tb, reps);
    *b_min = tb[0];
}

/* The few-long-channel shapes: the backward of the path the shapes choose
 * (new) against the sequential path (old: a forced checkpoint interval,
 * the automatic one, keeps it), interleaved, wall and CPU medians. */
static void bwd_old_fn(void *c)
{
    train_data *td = c;
    if (ssmi_selective_scan_backward_ex(&td->a, td->dy, NULL, &td->g,
                                        ssmi_scan_bwd_auto_chunk(td->a.len, td->a.dstate),
                                        SSM_SCAN_ISA_AUTO) != SSM_OK)
        fprintf(stderr, "backward (sequential) failed\n");
}

static void time_old_new(train_data *td, int reps, double w[2], double c[2])
{
    double tw[2][64], tc[2][64];
    void (*fn[2])(void *) = { bwd_old_fn, bwd_fn };
    if (reps > 64)
        reps = 64;
    bwd_old_fn(td);
    bwd_fn(td);
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < 2; k++) {
            double c0 = cpu_now(), t0 = bu_now();
            fn[k](td);
            tw[k][i] = bu_now() - t0;
            tc[k][i] = cpu_now() - c0;
        }
    for (int k = 0; k < 2; k++) {
        w[k] = bu_median(tw[k], reps);
        c[k] = bu_median(tc[k], reps);
    }
}

/* ---- Mamba block ---- */

typedef struct mb_data {
    ssm_mamba *m;
    int64_t B, L;
    float *x, *y, *dy, *dx, *g[SSM_MAMBA_NPARAMS];
} mb_data;

static void mb_fwd(void *c)
{
    mb_data *d = c;
    if (ssm_mamba_forward(d->m, NULL, d->B, d->L, d->x, d->y) != SSM_OK)
        fprintf(stderr, "mamba forward failed\n");
}
static void mb_fwd_det(void *c)
{
    mb_data *d = c;
    if (ssm_mamba_forward_det(d->m, d->B, d->L, d->x, d->y) != SSM_OK)
        fprintf(stderr, "mamba forward_det failed\n");
}
static void mb_bwd(void *c)
{
    mb_data *d = c;
    if (ssm_mamba_backward(d->m, d->B, d->L, d->x, d->dy, d->dx, d->g) != SSM_OK)
        fprintf(stderr, "mamba backward failed\n");
}

/* Medians of reps runs of forward, forward_det and backward, interleaved
 * (one warm-up each) so that a change of load hits all three. */
static void mb_time(mb_data *d, int reps, double t[3], double cpu[3])
{
    double w[3][64], c[3][64];
    void (*fn[3])(void *) = { mb_fwd, mb_fwd_det, mb_bwd };
    if (reps > 64)
        reps = 64;
    mb_fwd(d); mb_fwd_det(d); mb_bwd(d);
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < 3; k++) {
            double c0 = cpu_now(), t0 = bu_now();
            fn[k](d);
            w[k][i] = bu_now() - t0;
            c[k][i] = cpu_now() - c0;
        }
    for (int k = 0; k < 3; k++) {
        t[k] = bu_median(w[k], reps);
        cpu[k] = bu_median(c[k], reps);
    }
}

static void bench_mamba_bwd(int64_t dm, int64_t B, int64_t L, int maxt)
{
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = dm;
    mb_data d;
    memset(&d, 0, sizeof d);
    d.B = B; d.L = L;
    if (ssm_mamba_create(&d.m, &cfg, 1) != SSM_OK) {
        printf("Dm %lld: cannot create block\n", (long long)dm);
        return;
    }
    const int64_t na = B * L * dm;
    int ok = (d.x = malloc((size_t)na * 4)) && (d.y = malloc((size_t)na * 4)) &&
             (d.dy = malloc((size_t)na * 4)) && (d.dx = malloc((size_t)na * 4));
    for (int i = 0; ok && i < SSM_MAMBA_NPARAMS; i++) {
        int64_t n = 0;
        ssm_mamba_param_count(d.m, (ssm_mamba_param)i, &n);
        ok = (d.g[i] = malloc((size_t)n * 4)) != NULL;
    }
    char name[64];
    snprintf(name, sizeof name, "Dm %lld B %lld L %lld", (long long)dm, (long long)B, (long long)L);
    if (ok) {
        uint64_t s = 11;
        for (int64_t i = 0; i < na; i++) {
            d.x[i] = bt_normal(&s);
            d.dy[i] = bt_normal(&s);
        }
        const int reps = bu_repeats(5);
        for (int thr = 1; thr <= maxt; thr++) {
            bu_set_threads(thr);
            double t[3], c[3];
            mb_time(&d, reps, t, c);
            printf("%-24s %3d %10.2f %10.2f %10.2f %9.2f %9.2f %9.2f %10.2f %10.2f %9.2f\n",
                   thr == 1 ? name : "", thr, 1e3 * t[0], 1e3 * t[1], 1e3 * t[2], t[2] / t[0],
                   t[2] / t[1], t[1] / t[0], 1e3 * c[0], 1e3 * c[2], c[2] / c[0]);
        }
    } else {
        printf("%s: out of memory, skipped\n", name);
    }
    free(d.x); free(d.y); free(d.dy); free(d.dx);
    for (int i = 0; i < SSM_MAMBA_NPARAMS; i++)
        free(d.g[i]);
    ssm_mamba_destroy(d.m);
}

/* ---- Mamba stack training step ---- */

typedef struct st_data {
    ssm_mamba_stack *s;
    ssm_mamba_stack_grads *g;
    int64_t B, L;
    float *x, *y, *dx;
} st_data;

/* Step with recompute: forward_det for the loss, then the backward (which
 * runs the stack forward again). */
static void st_recompute(void *c)
{
    st_data *d = c;
    if (ssm_mamba_stack_forward_det(d->s, d->B, d->L, d->x, d->y) != SSM_OK ||
        ssm_mamba_stack_backward(d->s, d->B, d->L, d->x, d->y, d->dx, d->g) != SSM_OK)
        fprintf(stderr, "stack step failed\n");
}
/* Step from the saved forward. */
static void st_saved(void *c)
{
    st_data *d = c;
    if (ssm_mamba_stack_forward_train(d->s, d->g, d->B, d->L, d->x, d->y) != SSM_OK ||
        ssm_mamba_stack_backward_saved(d->s, d->g, d->y, d->dx) != SSM_OK)
        fprintf(stderr, "stack step failed\n");
}

static void bench_stack_step(int64_t dm, int64_t nl, int64_t B, int64_t L, int maxt)
{
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = dm;
    st_data d;
    memset(&d, 0, sizeof d);
    d.B = B; d.L = L;
    const int64_t na = B * L * dm;
    if (ssm_mamba_stack_create(&d.s, &cfg, nl, 1) != SSM_OK ||
        ssm_mamba_stack_grads_create(&d.g, d.s) != SSM_OK ||
        !(d.x = malloc((size_t)na * 4)) || !(d.y = malloc((size_t)na * 4)) ||
        !(d.dx = malloc((size_t)na * 4))) {
        printf("stack Dm %lld: cannot set up, skipped\n", (long long)dm);
    } else {
        uint64_t s = 13;
        for (int64_t i = 0; i < na; i++)
            d.x[i] = bt_normal(&s);
        char name[64];
        snprintf(name, sizeof name, "%lldx Dm %lld B %lld L %lld", (long long)nl, (long long)dm,
                 (long long)B, (long long)L);
        const int reps = bu_repeats(5);
        for (int thr = 1; thr <= maxt; thr++) {
            bu_set_threads(thr);
            double a[64], b[64];
            int n = reps > 64 ? 64 : reps;
            st_recompute(&d);
            st_saved(&d);
            for (int i = 0; i < n; i++) {
                double t0 = bu_now();
                st_recompute(&d);
                double t1 = bu_now();
                st_saved(&d);
                b[i] = bu_now() - t1;
                a[i] = t1 - t0;
            }
            const double ta = bu_median(a, n), tb = bu_median(b, n);
            printf("%-28s %3d %14.2f %14.2f %9.2f %12.0f\n", thr == 1 ? name : "", thr,
                   1e3 * ta, 1e3 * tb, tb / ta, (double)(B * L) / tb);
        }
    }
    free(d.x); free(d.y); free(d.dx);
    ssm_mamba_stack_grads_destroy(d.g);
    ssm_mamba_stack_destroy(d.s);
}

static const char *train_isa_name(int isa)
{
    return isa == SSM_SCAN_ISA_AVX512 ? "avx512" : isa == SSM_SCAN_ISA_AVX2 ? "avx2" : "generic";
}

int bench_train(int argc, char **argv)
{
    const int only = argc > 1 ? atoi(argv[1]) : -1;
    /* 0-2: the ratio shapes; 6-8: few long channels. */
    const int64_t shapes[][5] = {
        { 1, 1536, 16, 2048, 0 }, { 8, 768, 16, 1024, 1 }, { 1, 16, 16, 1 << 18, 2 },
        { 1, 1, 16, 1 << 20, 6 }, { 1, 4, 16, 1 << 18, 7 }, { 1, 1, 32, 1 << 19, 8 },
    };
    const int maxt = bu_max_threads() < 2 ? bu_max_threads() : 2;
    const int any_scan = only < 0 || only <= 2 || only >= 6;
    if (any_scan) {
        printf("\nselective scan backward vs forward (softplus, bias, D, z on; ngroups 1; "
               "all nine gradients); ISA %s; medians of %d repeats, fwd and bwd interleaved\n",
               train_isa_name(ssmi_scan_best_isa()), bu_repeats(7));
        printf("targets: bwd/fwd <= 3.0 at (1,1536,16,2048), 1 and 2 threads (cpu b/f: process "
               "CPU time, the steadier figure on a shared machine); few long channels: "
               "bwd 1 thr / 2 thr >= 1.6\n");
        printf("%-22s %5s %3s %12s %12s %10s %10s %10s %8s %9s %9s %8s\n", "batch,dim,N,len",
               "path", "thr", "fwd ms med", "bwd ms med", "bwd/fwd", "fwd ms min", "bwd ms min",
               "min/min", "fwd cpu", "bwd cpu", "cpu b/f");
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        if (only >= 0 && only != (int)shapes[si][4])
            continue;
        const int64_t Bn = shapes[si][0], dim = shapes[si][1], N = shapes[si][2], L = shapes[si][3];
        train_data td;
        char name[64];
        snprintf(name, sizeof name, "(%lld,%lld,%lld,%lld)", (long long)Bn, (long long)dim,
                 (long long)N, (long long)L);
        if (td_make(&td, Bn, dim, N, L) != 0) {
            printf("%s: out of memory, skipped\n", name);
            continue;
        }
        const char *path = ssmi_scan_bwd_tc_path(Bn, dim, N, L) ? "tc"
                           : ssmi_scan_bwd_split(Bn, dim, N, L) ? "split" : "chan";
        const int reps = bu_repeats(7);
        double bmed[3] = { 0, 0, 0 };
        for (int thr = 1; thr <= maxt; thr++) {
            bu_set_threads(thr);
            double tf, tfm, tb, tbm, cf, cb;
            time_pair(&td, reps, &tf, &tfm, &tb, &tbm, &cf, &cb);
            bmed[thr] = tb;
            printf("%-22s %5s %3d %12.2f %12.2f %10.2f %10.2f %10.2f %8.2f %9.2f %9.2f %8.2f\n",
                   thr == 1 ? name : "", thr == 1 ? path : "", thr, 1e3 * tf, 1e3 * tb, tb / tf,
                   1e3 * tfm, 1e3 * tbm, tbm / tfm, 1e3 * cf, 1e3 * cb, cb / cf);
        }
        if (shapes[si][4] >= 6 && maxt >= 2)
            printf("%-22s backward speed-up, 2 threads vs 1 (wall medians): %.2fx (target >= 1.6)\n",
                   "", bmed[1] / bmed[2]);
        if (shapes[si][4] >= 6 && strcmp(path, "tc") == 0) {
            /* The path against the sequential one, interleaved. */
            double ow[3][2], oc[3][2];
            for (int thr = 1; thr <= maxt; thr++) {
                bu_set_threads(thr);
                time_old_new(&td, reps, ow[thr], oc[thr]);
                printf("%-22s %s vs sequential, %d thr: bwd ms med %.2f vs %.2f (%.2fx), "
                       "cpu ms %.2f vs %.2f (%.2fx)\n", "", path, thr, 1e3 * ow[thr][1],
                       1e3 * ow[thr][0], ow[thr][1] / ow[thr][0], 1e3 * oc[thr][1],
                       1e3 * oc[thr][0], oc[thr][1] / oc[thr][0]);
            }
            if (maxt >= 2)
                printf("%-22s 2 thr %s vs 1 thr sequential (wall medians): %.2fx\n", "", path,
                       ow[1][0] / ow[2][1]);
        }
        free(td.buf);
    }
    const int64_t mshapes[][3] = { { 768, 1, 2048 }, { 64, 4, 256 } };
    if (only < 0 || only == 3 || only == 4) {
        printf("\nMamba block backward (dx + nine parameter gradients) vs forward (default "
               "config: N 16, K 4, expand 2, R Dm/16)\n");
        printf("%-24s %3s %10s %10s %10s %9s %9s %9s %10s %10s %9s\n", "shape", "thr", "fwd ms",
               "det ms", "bwd ms", "bwd/fwd", "bwd/det", "det/fwd", "fwd cpu", "bwd cpu",
               "cpu b/f");
    }
    for (size_t si = 0; si < sizeof mshapes / sizeof mshapes[0]; si++) {
        if (only >= 0 && (size_t)only != si + 3)
            continue;
        bench_mamba_bwd(mshapes[si][0], mshapes[si][1], mshapes[si][2], maxt);
    }
    if (only < 0 || only == 5) {
        printf("\nMamba stack training step (forward + backward, all gradients): recompute "
               "(forward_det + backward) vs saved (forward_train + backward_saved)\n");
        printf("%-28s %3s %14s %14s %9s %12s\n", "stack", "thr", "recompute ms", "saved ms",
               "saved/rec", "tokens/s");
        bench_stack_step(256, 4, 4, 512, maxt);
    }
    return 0;
}
