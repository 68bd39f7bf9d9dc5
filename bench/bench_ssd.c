/*
 * bench_ssd.c -- `ssm_bench ssd`: the Mamba-2 SSD scan (chunked SSD vs the
 * recurrence vs the FLOP floor), the step against memory bandwidth, and the
 * Mamba-2 block/stack at the mamba2-130m shape.
 *
 * Baselines measured in the same process:
 *   FMA peak: each thread runs a register-resident loop of independent
 *     vector fma chains (AVX-512 if the CPU has it, else AVX2), 2 flops per
 *     lane and fma; the peak at t threads is measured with t threads, best
 *     of 5.  Scan rates and %peak use the best run too (printed next to the
 *     median): on a shared machine other tenants only ever add time.  Also
 *     per CPU-second (process CPU time of all threads, which excludes time
 *     spent descheduled) against the 1-thread loop per CPU-second: the
 *     efficiency of each core that works, immune to the machine's load.
 *   bandwidth: s[i] = a * s[i] + c over a buffer of the state's size
 *     (what a step does to its state: read and write it once), and over
 *     256 MiB (DRAM), 1 and 2 threads, best of repeats, by the wall clock
 *     and per CPU-second.
 * Flops of the algorithms (multiply-adds count 2):
 *   recurrence: 5 P N per head and token (a*S, + u B, C . S);
 *   chunked:    per head and token 4 P N + T P (the two state products and
 *               the lower triangle of the masked T x T product) plus, per
 *               group and token, T N (the lower triangle of C B^T), T = chunk.
 */
#include <math.h>
#include <ssm.h>
#include "bench_util.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Process CPU seconds (all threads): on a shared machine, time spent
 * descheduled does not count, so rates per CPU-second stay comparable. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* FMA peak                                                           */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma_loop_512(long iters)
{
    __m512 a[12];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm512_fmadd_ps(a[i], m, c);
    float s = 0.0f, buf[16];
    for (int i = 0; i < 12; i++) {
        _mm512_storeu_ps(buf, a[i]);
        s += buf[0];
    }
    return (double)s;
}
__attribute__((target("avx2,fma"))) static double fma_loop_256(long iters)
{
    __m256 a[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, c);
    float s = 0.0f, buf[8];
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(buf, a[i]);
        s += buf[0];
    }
    return (double)s;
}
#endif

/* Peak flop/s at `threads` threads (median of 5). */
static double fma_peak(int threads, int *lanes_out, double *per_cpu_s)
{
    int lanes = 1;
#if defined(__x86_64__)
    lanes = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") ? 8 : 1;
#endif
    *lanes_out = lanes;
    if (lanes == 1)
        return 0.0;
    const long iters = 20000000;
    double t[5], tc[5], sink = 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = bu_now(), c0 = cpu_now();
        #pragma omp parallel num_threads(threads) reduction(+:sink)
        {
#if defined(__x86_64__)
            sink += lanes == 16 ? fma_loop_512(iters) : fma_loop_256(iters);
#endif
        }
        t[r] = bu_now() - t0;
        tc[r] = cpu_now() - c0;
    }
    if (sink == 12345.0)
        printf(" ");
    /* best of 5: other tenants of a shared machine only ever slow a
     * register-resident loop down */
    double best = t[0], bestc = tc[0];
    for (int r = 1; r < 5; r++) {
        if (t[r] < best)
            best = t[r];
        if (tc[r] < bestc)
            bestc = tc[r];
    }
    *per_cpu_s = 2.0 * lanes * 12.0 * (double)iters * threads / bestc;
    return 2.0 * lanes * 12.0 * (double)iters * threads / best;
}

/* s[i] = 0.999 s[i] + b[0], i in [i0, i1) (the state read and written once,
 * nothing else streamed): with the widest vectors the CPU
 * has, so that the floor is the memory system and not the instruction
 * width (the benchmark itself is compiled for baseline x86-64). */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void sb_avx512(float *s, const float *b,
                                                         int64_t i0, int64_t i1)
{
    const __m512 a = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(b[0]);
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16)
        _mm512_storeu_ps(s + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(s + i), c));
    for (; i < i1; i++)
        s[i] = 0.999f * s[i] + b[0];
}
#endif
static void sb_plain(float *s, const float *b, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++)
        s[i] = 0.999f * s[i] + b[0];
}

/* Bytes/s of s = a s + c over n floats (read s, write s: 2 n floats, the
 * state traffic of a step), by the
 * wall clock (*bw) and per CPU-second (*bwc), best of reps. */
static void stream_bw(int threads, int64_t n, int reps, double *bw, double *bwc)
{
    float *s = malloc((size_t)n * sizeof *s), *b = malloc((size_t)n * sizeof *b);
    for (int64_t i = 0; i < n; i++) { s[i] = 1.0f; b[i] = 1e-3f; }
    double best = 1e30, bestc = 1e30;
    /* passes per timed run, as the steps (20 per run): short intervals
     * would be dominated by the clocks themselves */
    const int passes = n < ((int64_t)1 << 22) ? 20 : 1;
    for (int r = 0; r < reps; r++) {
        double t0 = bu_now(), c0 = cpu_now();
        for (int pass = 0; pass < passes; pass++)
        #pragma omp parallel num_threads(threads)
        {
            const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
            const int64_t i0 = n * id / nt, i1 = n * (id + 1) / nt;
#if defined(__x86_64__)
            if (__builtin_cpu_supports("avx512f"))
                sb_avx512(s, b, i0, i1);
            else
#endif
                sb_plain(s, b, i0, i1);
        }
        const double t = bu_now() - t0, tc = cpu_now() - c0;
        if (t < best) best = t;
        if (tc < bestc) bestc = tc;
    }
    *bw = 2.0 * (double)n * sizeof(float) * passes / best;
    *bwc = 2.0 * (double)n * sizeof(float) * passes / bestc;
    if (s[n / 2] == 42.0f)
        printf(" ");
    free(s); free(b);
}

/* ------------------------------------------------------------------ */
/* scan                                                               */

/* Median and best of reps timed runs after one warm-up. */
static void time2(void (*fn)(void *), void *ctx, int reps, double *med, double *best,
                  double *bestcpu)
{
    double t[64], tc[64];
    if (reps > 64) reps = 64;
    if (reps < 1) reps = 1;
    fn(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = bu_now(), c0 = cpu_now();
        fn(ctx);
        t[i] = bu_now() - t0;
        tc[i] = cpu_now() - c0;
    }
    *best = t[0];
    *bestcpu = tc[0];
    for (int i = 1; i < reps; i++) {
        if (t[i] < *best)
            *best = t[i];
        if (tc[i] < *bestcpu)
            *bestcpu = tc[i];
    }
    *med = bu_median(t, reps);
}

typedef struct scan_ctx {
    ssm_ssd_args a;
    ssm_ssd_path path;
    int64_t chunk;
    ssm_status st;
} scan_ctx;

static void run_scan(void *p)
{
    scan_ctx *c = p;
    c->st = ssm_ssd_scan_ex(&c->a, c->path, c->chunk);
}

static void fill(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * 0x1.0p-24);
    }
}

static int bench_scan_shape(int64_t B, int64_t L, int64_t H, int64_t P,
                            int64_t N, int64_t G, const double *peak, double peak_cpu)
{
    const int64_t nx = B * L * H * P, nbc = B * L * G * N;
    float *x = malloc((size_t)nx * 4), *z = malloc((size_t)nx * 4),
          *y = malloc((size_t)nx * 4), *dt = malloc((size_t)(B * L * H) * 4),
          *A = malloc((size_t)H * 4), *Bm = malloc((size_t)nbc * 4),
          *Cm = malloc((size_t)nbc * 4), *D = malloc((size_t)H * 4),
          *bias = malloc((size_t)H * 4), *h = malloc((size_t)(B * H * P * N) * 4);
    fill(x, nx, 1, -1, 1); fill(z, nx, 2, -2, 2); fill(dt, B * L * H, 3, -4, 0);
    fill(A, H, 4, -16, -1); fill(Bm, nbc, 5, -1, 1); fill(Cm, nbc, 6, -1, 1);
    fill(D, H, 7, 0.5f, 1.5f); fill(bias, H, 8, -2, 0);
    scan_ctx c;
    memset(&c, 0, sizeof c);
    ssm_ssd_args *a = &c.a;
    a->batch = B; a->len = L; a->nheads = H; a->headdim = P; a->dstate = N;
    a->ngroups = G; a->x = x; a->dt = dt; a->A = A; a->B = Bm; a->C = Cm;
    a->D = D; a->z = NULL; a->dt_bias = bias; a->dt_softplus = 1;
    a->dt_min = 0.0f; a->dt_max = INFINITY; a->y = y; a->h_last = h;
    ssm_ssd_path auto_p;
    int64_t auto_q;
    ssm_ssd_plan(B, L, H, P, N, G, &auto_p, &auto_q);
    printf("\n(B=%lld, L=%lld, H=%lld, P=%lld, N=%lld, G=%lld): auto = %s, chunk %lld; D, dt bias, softplus on, z off\n",
           (long long)B, (long long)L, (long long)H, (long long)P, (long long)N, (long long)G,
           auto_p == SSM_SSD_CHUNKED ? "chunked" : "recurrent", (long long)auto_q);
    printf("%-16s %4s %10s %10s %10s %8s %10s %12s %9s\n", "path", "thr", "median ms",
           "best ms", "GFLOP/s", "%peak", "floor ms", "GFLOP/cpu-s", "%cpu-pk");
    const struct { ssm_ssd_path p; int64_t q; const char *name; } runs[] = {
        { SSM_SSD_RECURRENT, 0, "recurrent" },
        { SSM_SSD_CHUNKED, 32, "chunked Q=32" },
        { SSM_SSD_CHUNKED, 64, "chunked Q=64" },
        { SSM_SSD_CHUNKED, 128, "chunked Q=128" },
        { SSM_SSD_CHUNKED, 256, "chunked Q=256" },
    };
    const int reps = bu_repeats(5);
    for (int thr = 1; thr <= 2; thr++) {
        bu_set_threads(thr);
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            c.path = runs[r].p; c.chunk = runs[r].q;
            double t, tb, tcpu;
            time2(run_scan, &c, reps, &t, &tb, &tcpu);
            if (c.st != SSM_OK) {
                printf("error %s\n", ssm_status_string(c.st));
                return 1;
            }
            double fl;
            if (runs[r].p == SSM_SSD_RECURRENT)
                fl = 5.0 * (double)(B * L * H) * (double)(P * N);
            else {
                const double T = (double)runs[r].q;
                fl = (double)(B * L * H) * (4.0 * (double)(P * N) + T * (double)P) +
                     (double)(B * L * G) * T * (double)N;
            }
            /* rate and %peak from the best run, as the peak itself */
            printf("%-16s %4d %10.2f %10.2f %10.1f %7.1f%% %10.2f %12.1f %8.1f%%\n",
                   runs[r].name, thr, 1e3 * t, 1e3 * tb, fl / tb * 1e-9,
                   100.0 * fl / tb / peak[thr], 1e3 * fl / peak[thr],
                   fl / tcpu * 1e-9, 100.0 * fl / tcpu / peak_cpu);
        }
    }
    free(x); free(z); free(y); free(dt); free(A); free(Bm); free(Cm); free(D);
    free(bias); free(h);
    return 0;
}

/* ------------------------------------------------------------------ */
/* step                                                               */

typedef struct step_ctx { ssm_ssd_args a; int n; ssm_status st; } step_ctx;
static void run_steps(void *p)
{
    step_ctx *c = p;
    for (int i = 0; i < c->n; i++)
        c->st = ssm_ssd_step(&c->a);
}

static int bench_step(int64_t B, int64_t H, int64_t P, int64_t N)
{
    const int64_t nh = B * H * P * N;
    float *x = malloc((size_t)(B * H * P) * 4), *y = malloc((size_t)(B * H * P) * 4),
          *dt = malloc((size_t)(B * H) * 4), *A = malloc((size_t)H * 4),
          *Bm = malloc((size_t)(B * N) * 4), *Cm = malloc((size_t)(B * N) * 4),
          *D = malloc((size_t)H * 4), *h = calloc((size_t)nh, 4);
    fill(x, B * H * P, 1, -1, 1); fill(dt, B * H, 3, -4, 0); fill(A, H, 4, -16, -1);
    fill(Bm, B * N, 5, -1, 1); fill(Cm, B * N, 6, -1, 1); fill(D, H, 7, 0.5f, 1.5f);
    step_ctx c;
    memset(&c, 0, sizeof c);
    ssm_ssd_args *a = &c.a;
    a->batch = B; a->len = 1; a->nheads = H; a->headdim = P; a->dstate = N;
    a->ngroups = 1; a->x = x; a->dt = dt; a->A = A; a->B = Bm; a->C = Cm; a->D = D;
    a->dt_softplus = 1; a->dt_min = 0.0f; a->dt_max = INFINITY; a->y = y;
    a->h0 = h; a->h_last = h;
    c.n = 20;
    printf("\nstep (B=%lld, H=%lld, P=%lld, N=%lld): state %.2f MiB\n", (long long)B,
           (long long)H, (long long)P, (long long)N, (double)nh * 4 / 1048576.0);
    printf("%4s %10s %10s %12s %12s %7s %11s\n", "thr", "us/step", "median", "state GB/s",
           "stream GB/s", "%strm", "DRAM GB/s");
    for (int thr = 1; thr <= 2; thr++) {
        bu_set_threads(thr);
        double tm, tb, tc;
        time2(run_steps, &c, bu_repeats(7), &tm, &tb, &tc);
        if (c.st != SSM_OK) {
            printf("error %s\n", ssm_status_string(c.st));
            return 1;
        }
        tb /= c.n;
        tm /= c.n;
        const double bytes = 2.0 * (double)nh * 4;
        double bws, bwsc, bwd, bwdc;
        stream_bw(thr, nh, 50, &bws, &bwsc);
        stream_bw(thr, (int64_t)64 << 20, 5, &bwd, &bwdc);
        /* best of repeats for both the step and the stream */
        printf("%4d %10.1f %10.1f %12.1f %12.1f %6.1f%% %11.1f\n", thr, 1e6 * tb, 1e6 * tm,
               bytes / tb * 1e-9, bws * 1e-9, 100 * bytes / tb / bws, bwd * 1e-9);
    }
    free(x); free(y); free(dt); free(A); free(Bm); free(Cm); free(D); free(h);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Mamba-2 block and stack at the mamba2-130m shape                   */

typedef struct stk_ctx {
    ssm_mamba2_stack *stk;
    ssm_mamba2_stack_state *st;
    int64_t B, L;
    float *x, *y;
    ssm_status s;
} stk_ctx;

static void run_prefill(void *p)
{
    stk_ctx *c = p;
    ssm_mamba2_stack_state_reset(c->st);
    c->s = ssm_mamba2_stack_forward(c->stk, c->st, c->B, c->L, c->x, c->y);
}

static void run_decode(void *p)
{
    stk_ctx *c = p;
    for (int i = 0; i < 8 && c->s == SSM_OK; i++)
        c->s = ssm_mamba2_stack_step(c->stk, c->st, c->B, c->x, c->y);
}

static int bench_stack(void)
{
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = 768;   /* mamba2-130m: 24 layers, d_state 128, headdim 64, expand 2 */
    const int64_t nl = 24, Lp = 1024;
    stk_ctx c;
    memset(&c, 0, sizeof c);
    if (ssm_mamba2_stack_create(&c.stk, &cfg, nl, 1) != SSM_OK ||
        ssm_mamba2_stack_state_create(&c.st, c.stk, 8) != SSM_OK) {
        printf("stack creation failed\n");
        return 1;
    }
    c.x = malloc((size_t)(8 * Lp * 768) * 4);
    c.y = malloc((size_t)(8 * Lp * 768) * 4);
    fill(c.x, 8 * Lp * 768, 9, -1, 1);
    char blas[128];
    ssm_blas_describe(blas, sizeof blas);
    printf("\nMamba-2 stack, mamba2-130m shape (d_model 768, 24 layers, d_state 128, headdim 64, 24 heads, G 1), %s\n", blas);
    printf("%4s %22s %22s %22s\n", "thr", "prefill B=1 L=1024", "decode B=1", "decode B=8");
    for (int thr = 1; thr <= 2; thr++) {
        bu_set_threads(thr);
        c.B = 1; c.L = Lp;
        double tp = bu_time(run_prefill, &c, bu_repeats(3));
        if (c.s != SSM_OK) { printf("error %s\n", ssm_status_string(c.s)); return 1; }
        ssm_mamba2_stack_state_reset(c.st);
        double t1 = bu_time(run_decode, &c, bu_repeats(5)) / 8;
        c.B = 8;
        double t8 = bu_time(run_decode, &c, bu_repeats(5)) / 8;
        if (c.s != SSM_OK) { printf("error %s\n", ssm_status_string(c.s)); return 1; }
        printf("%4d %10.0f ms %6.0f t/s %10.2f ms %6.1f t/s %10.2f ms %6.1f t/s\n", thr,
               1e3 * tp, (double)Lp / tp, 1e3 * t1, 1.0 / t1, 1e3 * t8, 8.0 / t8);
    }
    ssm_mamba2_stack_state_destroy(c.st);
    ssm_mamba2_stack_destroy(c.stk);
    free(c.x); free(c.y);
    return 0;
}

int bench_ssd(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    double peak[3] = { 0, 0, 0 }, pc1 = 0, pc2 = 0;
    int lanes = 0;
    peak[1] = fma_peak(1, &lanes, &pc1);
    peak[2] = fma_peak(2, &lanes, &pc2);
    printf("\n== ssd: Mamba-2 SSD scan; FMA peak (%d-lane fma loop): %.1f GFLOP/s at 1 thread, %.1f at 2"
           " (wall clock); %.1f GFLOP per CPU-second (1 thread)\n",
           lanes, peak[1] * 1e-9, peak[2] * 1e-9, pc1 * 1e-9);
    (void)pc2;
    int rc = 0;
    if (!strcmp(what, "all") || !strcmp(what, "scan")) {
        rc |= bench_scan_shape(1, 4096, 24, 64, 128, 1, peak, pc1);
        rc |= bench_scan_shape(8, 1024, 24, 64, 128, 1, peak, pc1);
    }
    if (!strcmp(what, "all") || !strcmp(what, "step")) {
        rc |= bench_step(1, 24, 64, 128);
        rc |= bench_step(8, 24, 64, 128);
    }
    if (!strcmp(what, "all") || !strcmp(what, "stack"))
        rc |= bench_stack();
    return rc;
}
