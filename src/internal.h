/*
 * internal.h -- helpers shared by the modules of libssm.  Never installed.
 */
#ifndef SSM_INTERNAL_H
#define SSM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <complex.h>

#include "ssm.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Every failure goes through this one non-inlined function, so a single
 * debugger breakpoint (break ssm_fail_) catches every error where it is
 * raised.  It only returns s: no print, no abort (API.md). */
ssm_status ssm_fail_(ssm_status s, const char *file, int line);
#define SSM_FAIL(s) ssm_fail_((s), __FILE__, __LINE__)

/* Propagate a status: if (st != SSM_OK) return st. */
#define SSM_TRY(expr) do { ssm_status ssm_try_st_ = (expr); \
    if (ssm_try_st_ != SSM_OK) return ssm_try_st_; } while (0)

/* *out = a * b for sizes >= 0; returns 0 on int64_t overflow. */
static inline int ssm_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Product of count sizes, each >= 1; 0 if any is < 1 or it overflows
 * int64_t or size_t (in bytes of elem). */
int ssm_sizes_ok(int64_t *out, size_t elem, int count, ...);

/* Finiteness of the small matrix inputs validated by src/hippo and src/s4.
 * These must never be compiled with -ffast-math. */
int ssm_finite_d(const double *x, int64_t n);
int ssm_finite_z(const double complex *x, int64_t n);
/* 1 if all n float (complex) values are finite. */
int ssm_finite_cf(const float complex *x, int64_t n);
int ssm_finite_f(const float *x, int64_t n);
static inline int ssm_dt_ok(double dt) { return isfinite(dt) && dt > 0.0; }

/* 64-byte aligned allocation (AVX-512 lines); NULL on failure or on a size
 * that does not fit size_t.  Free with ssm_free (NULL is a no-op). */
void *ssm_alloc(size_t count, size_t elem);
void  ssm_free(void *p);

/* The one lock around every FFTW planner and destroy call, for both the
 * double and the float library: FFTW's planner is not thread-safe. */
void ssm_fftw_lock(void);
void ssm_fftw_unlock(void);

/* OpenMP's thread count for the next parallel region (1 without OpenMP):
 * sizes per-thread scratch; never used to choose what is computed. */
static inline int ssm_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Small seeded generator for default initialisations (splitmix64):
 * explicit state, no globals. */
typedef struct ssm_rng { uint64_t s; } ssm_rng;
static inline uint64_t ssm_rng_u64(ssm_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in (0, 1): never 0 so log() is safe. */
static inline double ssm_rng_uniform(ssm_rng *r)
{
    return ((double)(ssm_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}
/* Standard normal by Box-Muller (one of the pair). */
double ssm_rng_normal(ssm_rng *r);

#endif /* SSM_INTERNAL_H */
