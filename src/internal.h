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

/* CMPLX without <complex.h>'s CMPLX, which glibc defines for GCC only
 * (clang 14 + glibc 2.36 leave it undefined).  A complex number has the
 * representation of an array of two reals (C11 6.2.5p13), so building it
 * through that array keeps infinities and NaNs in each part, as CMPLX
 * must (re + I*im would not). */
static inline double complex ssmi_cmplx(double re, double im)
{
    union { double complex z; double p[2]; } u;
    u.p[0] = re; u.p[1] = im;
    return u.z;
}
static inline float complex ssmi_cmplxf(float re, float im)
{
    union { float complex z; float p[2]; } u;
    u.p[0] = re; u.p[1] = im;
    return u.z;
}
static inline long double complex ssmi_cmplxl(long double re, long double im)
{
    union { long double complex z; long double p[2]; } u;
    u.p[0] = re; u.p[1] = im;
    return u.z;
}
#ifdef _OPENMP
#include <omp.h>
#endif

/* Every failure goes through this one non-inlined function, so a single
 * debugger breakpoint (break ssmi_fail_) catches every error where it is
 * raised.  It only returns s: no print, no abort (ssm/common.h). */
ssm_status ssmi_fail_(ssm_status s, const char *file, int line);
#define SSM_FAIL(s) ssmi_fail_((s), __FILE__, __LINE__)

/* Propagate a status: if (st != SSM_OK) return st. */
#define SSM_TRY(expr) do { ssm_status ssm_try_st_ = (expr); \
    if (ssm_try_st_ != SSM_OK) return ssm_try_st_; } while (0)

/* The largest object libssm accepts, in bytes: 2^56 on 64-bit machines
 * (the user half of the largest virtual address space of any 64-bit CPU:
 * x86-64 with 5-level paging has 57-bit addresses, AArch64 at most 52),
 * PTRDIFF_MAX on 32-bit ones.  An array bigger than this cannot exist, so
 * a size that needs one is SSM_ERR_ARG, never a wrapped index. */
#if SIZE_MAX > 0xFFFFFFFFu
#define SSMI_MAX_BYTES ((uint64_t)1 << 56)
#else
#define SSMI_MAX_BYTES ((uint64_t)PTRDIFF_MAX)
#endif

/* *out = a * b for sizes >= 0; returns 0 on int64_t overflow. */
static inline int ssmi_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Product of count sizes, each >= 1; 0 if any is < 1 or it overflows
 * int64_t, or if the array of that many elements of elem bytes would be
 * larger than SSMI_MAX_BYTES (elem 0: the element count alone). */
int ssmi_sizes_ok(int64_t *out, size_t elem, int count, ...);

/* Finiteness of the small matrix inputs validated by src/hippo and src/s4.
 * These must never be compiled with -ffast-math. */
int ssmi_finite_d(const double *x, int64_t n);
int ssmi_finite_z(const double complex *x, int64_t n);
/* 1 if all n float (complex) values are finite. */
int ssmi_finite_cf(const float complex *x, int64_t n);
int ssmi_finite_f(const float *x, int64_t n);
static inline int ssmi_dt_ok(double dt) { return isfinite(dt) && dt > 0.0; }

/* 64-byte aligned allocation (AVX-512 lines); NULL on failure or on a size
 * that does not fit size_t.  Free with ssmi_free (NULL is a no-op).
 * ssmi_calloc also zeroes the block: use it for every array of pointers or
 * of owned objects, so that a cleanup after a later failure only ever sees
 * NULL or valid pointers.  Every allocation libssm makes goes through
 * ssmi_alloc, ssmi_calloc or ssmi_alloc_gate (FFTW's aligned buffers), so
 * the failure injector below reaches all of them. */
void *ssmi_alloc(size_t count, size_t elem);
void *ssmi_calloc(size_t count, size_t elem);
void  ssmi_free(void *p);

/* Allocation-failure injection and counting, for the white-box tests only
 * (tests/wbtest_alloc.c); compiled in, inert unless armed.  The counter is
 * process-wide and atomic, so allocations made by OpenMP worker threads
 * inside a call are counted too.
 *   ssmi_alloc_inject(k): the k-th allocation from now fails (k >= 1), once;
 *                          k = 0 disarms.  Resets the count.
 *   ssmi_alloc_count():    allocations attempted since the last inject.
 * ssmi_alloc_gate() is the hook itself: 0 when the allocation about to be
 * made must fail.  FFTW's own internal allocations (plans, twiddles) do
 * not pass through it and cannot be failed from here. */
void    ssmi_alloc_inject(int64_t k);
int64_t ssmi_alloc_count(void);
int     ssmi_alloc_gate(void);

/* The one lock around every FFTW planner and destroy call, for both the
 * double and the float library: FFTW's planner is not thread-safe. */
void ssmi_fftw_lock(void);
void ssmi_fftw_unlock(void);

/* Nonzero when this CPU's L1 data cache is under 48 KiB (Zen 4, most
 * Intel cores; Zen 5 has 48 KiB), 0 when larger or unknown: the streaming
 * kernels' tile lengths and prefetch targets follow it (they change no
 * number).  glibc caches the size at start-up: ~5 ns a call. */
int ssmi_l1d_small(void);

/* OpenMP's thread count for the next parallel region (1 without OpenMP):
 * sizes per-thread scratch; never used to choose what is computed. */
static inline int ssmi_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's number in the current OpenMP team (0 outside a region). */
static inline int ssmi_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Per-thread scratch of one OpenMP region, the one pattern every threaded
 * loop of libssm uses: a single 64-byte aligned block of nt slices of
 * `per` bytes (rounded up to whole 64-byte lines, so every slice keeps the
 * block's alignment, which FFTW's new-array execute relies on), allocated
 * before the region.  So there is one failure point (SSM_ERR_NOMEM before
 * any work, nothing to collect from the threads), one free, and no
 * allocation inside a parallel region.
 *   nt = min(OpenMP's thread count, max_units), at least 1: never more
 *   slices than there are units of work.  The region must be opened with
 *   num_threads(s.nt) (it may get fewer threads, never more), and each
 *   thread takes its slice with ssmi_scratch_mine.  The slices, like the
 *   thread count, decide only who computes what, never a number. */
typedef struct ssmi_scratch {
    unsigned char *base;
    size_t per;          /* bytes per slice, a multiple of 64 */
    int nt;              /* slices = threads the region may use */
} ssmi_scratch;
ssm_status ssmi_scratch_init(ssmi_scratch *s, size_t per_bytes, int64_t max_units);
static inline void *ssmi_scratch_mine(const ssmi_scratch *s)
{
    return s->base + (size_t)ssmi_thread_num() * s->per;
}
void ssmi_scratch_free(ssmi_scratch *s);

/* Small seeded generator for default initialisations (splitmix64):
 * explicit state, no globals. */
typedef struct ssmi_rng { uint64_t s; } ssmi_rng;
static inline uint64_t ssmi_rng_u64(ssmi_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in (0, 1): never 0 so log() is safe. */
static inline double ssmi_rng_uniform(ssmi_rng *r)
{
    return ((double)(ssmi_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}
/* Standard normal by Box-Muller (one of the pair). */
double ssmi_rng_normal(ssmi_rng *r);

#endif /* SSM_INTERNAL_H */
