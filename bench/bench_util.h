/*
 * bench_util.h -- timing helpers for bench/ssm_bench: monotonic clock,
 * medians of repeats, thread-count control.  Validate first, then time.
 */
#ifndef SSM_BENCH_UTIL_H
#define SSM_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dlfcn.h>
#include <ssm.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bu_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n samples (sorts them in place). */
/* 64-byte aligned floats (free with free()): the library's own buffers
 * are aligned so, and a kernel's token rows at malloc's 16-byte alignment
 * split half their loads over two cache lines (the batch-8 product kernel
 * runs ~1.5x slower from L2 on Zen 5), so the benches use the same. */
static inline float *bu_falloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static inline double bu_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bu_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static inline void bu_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static inline int bu_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

/* bu_set_threads and OpenBLAS's own pool (looked up at run time, so that
 * any CBLAS links; a no-op for the others). */
static inline void bu_set_threads_blas(int n)
{
    bu_set_threads(n);
    void *h = dlopen(NULL, RTLD_LAZY);
    void *s = h ? dlsym(h, "openblas_set_num_threads") : NULL;
    if (s) {
        void (*fn)(int);
        memcpy(&fn, &s, sizeof fn);
        fn(n);
    }
    if (h)
        dlclose(h);
}

/* The 1-minute load average (-1 if unknown): this machine is shared, and
 * figures scale with it. */
static inline double bu_loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double la = -1;
    if (f) {
        if (fscanf(f, "%lf", &la) != 1) la = -1;
        fclose(f);
    }
    return la;
}

/* The two context lines of the BLAS benchmarks: which BLAS (and its
 * threading), and the load average before the runs when known. */
static inline void bu_print_blas_load(void)
{
    char blas[128];
    ssm_blas_describe(blas, sizeof blas);
    printf("   BLAS: %s\n", blas);
    const double la = bu_loadavg();
    if (la >= 0)
        printf("   load average before the runs: %.2f\n", la);
}

/* A random Mamba language model shaped like mamba-130m (d_model 768,
 * d_inner 1536, d_state 16, d_conv 4, dt_rank 48, vocab 50277 padded to
 * 50280, tied head) with nl layers: dir/config.json and
 * dir/model.safetensors, tensors of type dt (F32 or BF16), values uniform
 * from a splitmix64 stream started at seed.  Most ranges are fixed; those
 * below differ between the benchmarks (kept as each first had them).
 * bench_lm_model.c; 0 on success. */
typedef struct bu_lm_ranges {
    double conv_b;           /* conv1d.bias in [-conv_b, conv_b] */
    double dt_lo, dt_hi;     /* dt_proj.bias */
    double d_lo, d_hi;       /* D */
    int norm_f_first;        /* norm_f written after the embedding, not last */
} bu_lm_ranges;
enum { BU_DM = 768, BU_DI = 1536, BU_NS = 16, BU_KC = 4, BU_RK = 48,
       BU_VOC = 50277, BU_VOCP = 50280 };
int bu_write_mamba130m(const char *dir, int nl, ssm_dtype dt, uint64_t seed,
                       const bu_lm_ranges *r);
/* The same for Mamba-2, shaped like mamba2-130m (d_model 768, d_inner
 * 1536, d_state 128, headdim 64: 24 heads, ngroups 1, d_conv 4, the same
 * vocab, tied head), F32. */
enum { BU2_N = 128, BU2_P = 64 };
int bu_write_mamba2_130m(const char *dir, int nl, uint64_t seed);

/* Repeats: SSM_BENCH_REPEATS overrides the default. */
static inline int bu_repeats(int dflt)
{
    const char *e = getenv("SSM_BENCH_REPEATS");
    int r = e ? atoi(e) : 0;
    return r > 0 ? r : dflt;
}

/* Time fn(ctx) `reps` times after one warm-up; median seconds. */
static inline double bu_time(void (*fn)(void *), void *ctx, int reps)
{
    double t[64];
    if (reps > 64) reps = 64;
    fn(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = bu_now();
        fn(ctx);
        t[i] = bu_now() - t0;
    }
    return bu_median(t, reps);
}

/* Subcommands, one file each. */
int bench_conv(int argc, char **argv);
int bench_scan(int argc, char **argv);
int bench_mamba(int argc, char **argv);
int bench_io(int argc, char **argv);
int bench_model(int argc, char **argv);
int bench_tokenizer(int argc, char **argv);
int bench_ssd(int argc, char **argv);
int bench_train(int argc, char **argv);
int bench_train_lm(int argc, char **argv);
int bench_decode(int argc, char **argv);

#endif /* SSM_BENCH_UTIL_H */
