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
