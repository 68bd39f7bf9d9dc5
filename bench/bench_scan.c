/*
 * bench_scan.c -- `ssm_bench scan [i]`: the selective scan (Mamba S6) on the
 * shapes of issue 13's targets, all options on as in a Mamba layer (D, z,
 * delta_bias, softplus).  In one process, with interleaved repeats: each ISA
 * of the library (white-box ssmi_selective_scan_ex) at 1 and 2 threads, the
 * "best simple alternative" (a token-major plain loop built with -ffast-math,
 * bench_scan_plain.c) and the exp floor (one of the scan's inline exps per
 * state update).  Prints medians of wall and process CPU time, and each
 * target's ratio against its bound.  Validates first: the library and the
 * baseline against the scalar libm loop below (API.md's recurrence, Mamba's
 * [B][G][N][L] layout) on a few channels.  docs/scan-speed.md explains.
 */
#include <math.h>
#include <ssm.h>
#include "bench_util.h"
#include "bench_scan_plain.h"
#include "scan/scan_internal.h"

typedef struct scan_data {
    ssm_scan_args a;
    float *buf;
} scan_data;

static uint64_t bs_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double bs_unif(uint64_t *s) { return ((double)(bs_rng(s) >> 11) + 0.5) * 0x1.0p-53; }
static float bs_normal(uint64_t *s)
{
    return (float)(sqrt(-2.0 * log(bs_unif(s))) * cos(6.283185307179586 * bs_unif(s)));
}

static int data_make(scan_data *sd, int64_t batch, int64_t dim, int64_t N, int64_t L)
{
    const int64_t nx = batch * dim * L, nb = batch * N * L;
    const int64_t tot = 4 * nx + 2 * nb + dim * N + 2 * dim;
    sd->buf = malloc((size_t)tot * sizeof(float));
    if (!sd->buf)
        return -1;
    float *p = sd->buf;
    ssm_scan_args *a = &sd->a;
    memset(a, 0, sizeof *a);
    a->batch = batch; a->dim = dim; a->dstate = N; a->len = L; a->ngroups = 1;
    float *u = p; p += nx;
    float *delta = p; p += nx;
    float *z = p; p += nx;
    a->y = p; p += nx;
    float *B = p; p += nb;
    float *C = p; p += nb;
    float *A = p; p += dim * N;
    float *D = p; p += dim;
    float *bias = p;
    uint64_t s = 42;
    for (int64_t i = 0; i < nx; i++) {
        u[i] = bs_normal(&s);
        z[i] = bs_normal(&s);
        double dt = exp(log(1e-3) + (log(1e-1) - log(1e-3)) * bs_unif(&s));
        delta[i] = (float)log(expm1(dt));
    }
    for (int64_t i = 0; i < nb; i++) {
        B[i] = bs_normal(&s);
        C[i] = bs_normal(&s);
    }
    for (int64_t i = 0; i < dim * N; i++)
        A[i] = (float)-exp(log(16.0) * bs_unif(&s));
    for (int64_t d = 0; d < dim; d++) {
        D[d] = bs_normal(&s);
        bias[d] = 0.0f;
    }
    a->u = u; a->delta = delta; a->z = z; a->B = B; a->C = C; a->A = A;
    a->D = D; a->delta_bias = bias; a->delta_softplus = 1;
    return 0;
}

/* The obvious C baseline: API.md's recurrence, channel by channel, over
 * channels [0, nch) of every batch row. */
static void plain_loop(const ssm_scan_args *a, int64_t nch, float *y)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    float h[1024];
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t d = 0; d < nch; d++) {
            const int64_t g = d / (dim / G), bd = b * dim + d;
            for (int64_t n = 0; n < N; n++)
                h[n] = 0.0f;
            for (int64_t t = 0; t < L; t++) {
                float x = a->delta[bd * L + t] + a->delta_bias[d];
                float dt = x <= 20.0f ? log1pf(expf(x)) : x;
                float uu = a->u[bd * L + t], s = 0.0f;
                for (int64_t n = 0; n < N; n++) {
                    int64_t ib = ((b * G + g) * N + n) * L + t;
                    h[n] = expf(dt * a->A[d * N + n]) * h[n] + dt * a->B[ib] * uu;
                    s += a->C[ib] * h[n];
                }
                s += a->D[d] * uu;
                float zz = a->z[bd * L + t];
                y[bd * L + t] = s * (zz / (1.0f + expf(-zz)));
            }
        }
}

typedef struct plain_ctx { const ssm_scan_args *a; int64_t nch; float *y; } plain_ctx;
static void plain_fn(void *c)
{
    plain_ctx *p = c;
    plain_loop(p->a, p->nch, p->y);
}

/* One timed variant: a closure, the thread count it runs at, its samples. */
typedef struct variant {
    const char *name;
    void (*fn)(void *);
    void *ctx;
    int threads;
    double wall[64], cpu[64];
    double wall_med, cpu_med;
} variant;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Interleaved repeats: round r runs every variant once, so that load from
 * other processes on the machine hits all of them alike; medians of the
 * wall time and of the process CPU time (all threads) per variant.  The
 * rounds go thread count by thread count (all 1-thread rounds first): after
 * a 2-thread region libgomp's idle worker spins for a while (its default
 * wait policy), and a 1-thread run right after one shared the machine with
 * it: measured on Zen 4, (1,1536,16,2048), 1 thread, fully interleaved:
 * wall 20.6 ms, process CPU 30.4 ms; with OMP_WAIT_POLICY=passive 18.2 and
 * 18.2 (the fastmath loop alike, 39.4 / 49.3 -> 35.8 / 35.8). */
static void time_interleaved(variant *v, int nv, int reps)
{
    if (reps > 64)
        reps = 64;
    int tmax = 0;
    for (int i = 0; i < nv; i++)
        tmax = v[i].threads > tmax ? v[i].threads : tmax;
    for (int th = 1; th <= tmax; th++) {
        bu_set_threads(th);
        for (int i = 0; i < nv; i++)   /* warm-up */
            if (v[i].threads == th)
                v[i].fn(v[i].ctx);
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < nv; i++) {
                if (v[i].threads != th)
                    continue;
                double c0 = cpu_now(), t0 = bu_now();
                v[i].fn(v[i].ctx);
                v[i].wall[r] = bu_now() - t0;
                v[i].cpu[r] = cpu_now() - c0;
            }
    }
    for (int i = 0; i < nv; i++) {
        v[i].wall_med = bu_median(v[i].wall, reps);
        v[i].cpu_med = bu_median(v[i].cpu, reps);
    }
}

typedef struct isa_ctx { const ssm_scan_args *a; int isa; } isa_ctx;
static void isa_fn(void *c)
{
    const isa_ctx *p = c;
    if (ssmi_selective_scan_ex(p->a, SSM_SCAN_PATH_AUTO, 0, p->isa) != SSM_OK)
        fprintf(stderr, "scan failed\n");
}
static void fast_fn(void *c) { (void)bsp_plain((const bsp_args *)c); }

/* The exp floor: `n` exps of the scan's own inline polynomial (vector body
 * of the best ISA) over an L1-resident buffer, one per state update. */
typedef struct floor_ctx { int64_t n; float *x, *y; int isa; } floor_ctx;
enum { FLOOR_BUF = 4096 };
static void floor_fn(void *c)
{
    const floor_ctx *f = c;
    int64_t done = 0;
#pragma omp parallel reduction(+ : done)
    {
        /* Each thread its share, in its own half of the buffers. */
#ifdef _OPENMP
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
        const int nt = 1, id = 0;
#endif
        float *x = f->x + (int64_t)id * FLOOR_BUF, *y = f->y + (int64_t)id * FLOOR_BUF;
        const int64_t share = f->n / nt;
        for (int64_t k = 0; k < share; k += FLOOR_BUF)
            (void)ssmi_scan_vexpf(f->isa, x, y, FLOOR_BUF);
        done += share;
    }
    (void)done;
}

static const char *isa_name(int isa)
{
    return isa == SSM_SCAN_ISA_AVX512 ? "avx512" : isa == SSM_SCAN_ISA_AVX2 ? "avx2" : "generic";
}

int bench_scan(int argc, char **argv)
{
    /* `ssm_bench scan [i]`: only shape i (0-2).  The shapes of issue 13's
     * targets: two multi-channel ones (target 1) and one long channel
     * (target 3). */
    const int only = argc > 1 ? atoi(argv[1]) : -1;
    const int64_t shapes[][4] = {
        { 1, 1536, 16, 2048 }, { 1, 64, 16, 1 << 18 }, { 1, 1, 16, 1 << 22 },
    };
    const int maxt = bu_max_threads() < 2 ? bu_max_threads() : 2;
    const int best = ssmi_scan_best_isa();
    printf("\nselective scan (softplus, bias, D, z on; ngroups 1); dispatched ISA: %s\n",
           isa_name(best));
    printf("baseline 'fastmath' = plain token-major C loop (B, C pre-transposed, not timed),\n"
           "  softplus and gate vectorized over 1024-step tiles first, -O3 -ffast-math,\n"
           "  libmvec expf/log1pf, OpenMP over channels (bench/bench_scan_plain.c)\n"
           "exp floor = one of the scan's inline polynomial exps per update (L1 buffer)\n"
           "medians of interleaved repeats; cpu = process CPU time (all threads);\n"
           "generic* = the portable kernel, one run\n");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        if (only >= 0 && (size_t)only != si)
            continue;
        const int64_t Bn = shapes[si][0], dim = shapes[si][1], N = shapes[si][2], L = shapes[si][3];
        char name[64];
        snprintf(name, sizeof name, "(%lld,%lld,%lld,%lld)", (long long)Bn, (long long)dim,
                 (long long)N, (long long)L);
        scan_data sd;
        if (data_make(&sd, Bn, dim, N, L) != 0) {
            printf("%s: out of memory, skipped\n", name);
            continue;
        }
        const double upd = (double)Bn * dim * L * N;
        const int64_t nx = Bn * dim * L, nb = Bn * N * L;
        float *yp = malloc((size_t)nx * sizeof(float));
        float *yf = malloc((size_t)nx * sizeof(float));
        float *Bt = malloc((size_t)nb * sizeof(float));
        float *Ct = malloc((size_t)nb * sizeof(float));
        float *fx = malloc(2 * FLOOR_BUF * sizeof(float));
        float *fy = malloc(2 * FLOOR_BUF * sizeof(float));
        if (!yp || !yf || !Bt || !Ct || !fx || !fy) {
            printf("%s: out of memory, skipped\n", name);
            free(yp); free(yf); free(Bt); free(Ct); free(fx); free(fy); free(sd.buf);
            continue;
        }
        for (int64_t b = 0; b < Bn; b++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t t = 0; t < L; t++) {
                    Bt[(b * L + t) * N + n] = sd.a.B[(b * N + n) * L + t];
                    Ct[(b * L + t) * N + n] = sd.a.C[(b * N + n) * L + t];
                }
        uint64_t rs = 7;
        for (int i = 0; i < 2 * FLOOR_BUF; i++)   /* dt*A of the data: in (-1.6, 0) */
            fx[i] = (float)(-1.6 * bs_unif(&rs));
        bsp_args fa = { Bn, dim, N, L, sd.a.u, sd.a.delta, sd.a.z, Bt, Ct, sd.a.A,
                        sd.a.D, sd.a.delta_bias, yf };
        /* Validate first: library and baseline against the scalar loop (libm
         * expf, no fast-math) on the first few channels. */
        const int64_t nsub = dim < 4 ? dim : 4;
        bu_set_threads(maxt);
        if (ssm_selective_scan(&sd.a) != SSM_OK)
            fprintf(stderr, "scan failed\n");
        const char *fisa = bsp_plain(&fa);
        plain_ctx pc = { &sd.a, nsub, yp };
        plain_fn(&pc);
        double num = 0, numf = 0, den = 0;
        for (int64_t b = 0; b < Bn; b++)
            for (int64_t i = 0; i < nsub * L; i++) {
                const int64_t k = b * dim * L + i;
                num += ((double)sd.a.y[k] - yp[k]) * ((double)sd.a.y[k] - yp[k]);
                numf += ((double)yf[k] - yp[k]) * ((double)yf[k] - yp[k]);
                den += (double)yp[k] * yp[k];
            }
        if (den == 0)
            den = 1;
        printf("\n%s  %.3g updates; rel. L2 error vs scalar libm loop on %lld channel(s): "
               "libssm %.1e, fastmath (%s) %.1e\n", name, upd, (long long)nsub,
               sqrt(num / den), fisa, sqrt(numf / den));

        /* Variants, all in one interleaved loop. */
        variant v[16];
        isa_ctx ic[3];
        floor_ctx fc = { (int64_t)upd, fx, fy, best };
        int nv = 0, nisa = 0;
        int vi_isa[3][2] = { { 0, 0 }, { 0, 0 }, { 0, 0 } }, vi_fast[2], vi_floor[2];
        for (int isa = SSM_SCAN_ISA_GENERIC; isa <= SSM_SCAN_ISA_AVX512; isa++) {
            if (!ssmi_scan_isa_ok(isa))
                continue;
            ic[nisa].a = &sd.a;
            ic[nisa].isa = isa;
            /* The portable kernel (scalar fmaf, a libm call without FMA
             * flags) is 50x slower: timed once below, not interleaved. */
            if (isa == SSM_SCAN_ISA_GENERIC) {
                nisa++;
                continue;
            }
            for (int th = 1; th <= maxt; th++) {
                vi_isa[isa][th - 1] = nv;
                v[nv++] = (variant){ isa_name(isa), isa_fn, &ic[nisa], th, {0}, {0}, 0, 0 };
            }
            nisa++;
        }
        for (int th = 1; th <= maxt; th++) {
            vi_fast[th - 1] = nv;
            v[nv++] = (variant){ "fastmath", fast_fn, &fa, th, {0}, {0}, 0, 0 };
            vi_floor[th - 1] = nv;
            v[nv++] = (variant){ "exp floor", floor_fn, &fc, th, {0}, {0}, 0, 0 };
        }
        time_interleaved(v, nv, bu_repeats(5));
        {   /* the portable kernel: one run, no warm-up, 1 thread */
            bu_set_threads(1);
            vi_isa[SSM_SCAN_ISA_GENERIC][0] = nv;
            v[nv] = (variant){ "generic*", isa_fn, &ic[0], 1, {0}, {0}, 0, 0 };
            double c0 = cpu_now(), t0 = bu_now();
            isa_fn(&ic[0]);
            v[nv].wall_med = bu_now() - t0;
            v[nv].cpu_med = cpu_now() - c0;
            nv++;
        }
        printf("%-10s %3s %10s %10s %9s %9s %9s\n", "variant", "thr", "wall ms", "cpu ms",
               "Gupd/s", "x fastm.", "/ floor");
        for (int i = 0; i < nv; i++) {
            const double tf = v[vi_fast[v[i].threads - 1]].wall_med;
            const double tfl = v[vi_floor[v[i].threads - 1]].wall_med;
            printf("%-10s %3d %10.2f %10.2f %9.3f %9.2f %9.2f\n", v[i].name, v[i].threads,
                   1e3 * v[i].wall_med, 1e3 * v[i].cpu_med, upd / v[i].wall_med * 1e-9,
                   tf / v[i].wall_med, v[i].wall_med / tfl);
        }
        /* The targets of issue 13 for this shape. */
        int fastest = best;
        for (int isa = SSM_SCAN_ISA_GENERIC; isa <= SSM_SCAN_ISA_AVX512; isa++)
            if (ssmi_scan_isa_ok(isa)
                && v[vi_isa[isa][0]].wall_med < v[vi_isa[fastest][0]].wall_med)
                fastest = isa;
        /* At 1 thread the process CPU time is the work itself, whatever
         * else runs on the machine: the ratios are given by both clocks. */
        printf("target 2 (ISA dispatch): dispatched %s, fastest at 1 thread %s (%s/%s = %.2f; "
               "by CPU time avx2/avx512 = %.2f)\n",
               isa_name(best), isa_name(fastest), isa_name(best), isa_name(fastest),
               v[vi_isa[best][0]].wall_med / v[vi_isa[fastest][0]].wall_med,
               ssmi_scan_isa_ok(SSM_SCAN_ISA_AVX512)
                   ? v[vi_isa[SSM_SCAN_ISA_AVX2][0]].cpu_med / v[vi_isa[SSM_SCAN_ISA_AVX512][0]].cpu_med
                   : 1.0);
        const double l1 = v[vi_isa[best][0]].wall_med, l2 = v[vi_isa[best][maxt - 1]].wall_med;
        const double f1 = v[vi_fast[0]].wall_med, f2 = v[vi_fast[maxt - 1]].wall_med;
        const double l1c = v[vi_isa[best][0]].cpu_med, f1c = v[vi_fast[0]].cpu_med;
        const double fl1c = v[vi_floor[0]].cpu_med;
        if (dim > 1) {
            printf("target 1: speedup over fastmath >= 2.00: %.2f (1 thr), %.2f (%d thr); "
                   "time / exp floor <= 2.00: %.2f (1 thr), %.2f (%d thr)\n",
                   f1 / l1, f2 / l2, maxt, l1 / v[vi_floor[0]].wall_med,
                   l2 / v[vi_floor[maxt - 1]].wall_med, maxt);
            printf("          by CPU time at 1 thread: speedup %.2f, time / exp floor %.2f\n",
                   f1c / l1c, l1c / fl1c);
        } else {
            printf("target 3 (long channel): time / fastmath <= 1.10 at 1 thr: %.2f; "
                   "1-thr / %d-thr time >= 1.60: %.2f (path %d)\n", l1 / f1, maxt, l1 / l2,
                   ssmi_scan_auto_path(Bn, dim, N, L));
            printf("          by CPU time at 1 thread: time / fastmath %.2f, time / exp floor %.2f\n",
                   l1c / f1c, l1c / fl1c);
        }
        free(yp); free(yf); free(Bt); free(Ct); free(fx); free(fy);
        free(sd.buf);
    }
    bu_set_threads(bu_max_threads());
    return 0;
}
