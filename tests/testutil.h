/*
 * testutil.h -- helpers shared by the test suites: a seeded generator, norms
 * and relative errors, thread-count control.  Header-only, static inline.
 *
 * Tolerances are always stated from the error expected (eps times a growth
 * factor), and every numeric check prints the measured ratio on failure.
 */
#ifndef SSM_TESTUTIL_H
#define SSM_TESTUTIL_H

#include <check.h>
#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* CMPLX for black-box tests and benchmarks: glibc defines CMPLX for GCC
 * only, not for clang.  Array representation keeps inf/NaN parts. */
static inline double complex tu_cmplx(double re, double im)
{ union { double complex z; double p[2]; } u; u.p[0] = re; u.p[1] = im; return u.z; }
static inline float complex tu_cmplxf(float re, float im)
{ union { float complex z; float p[2]; } u; u.p[0] = re; u.p[1] = im; return u.z; }
static inline long double complex tu_cmplxl(long double re, long double im)
{ union { long double complex z; long double p[2]; } u; u.p[0] = re; u.p[1] = im; return u.z; }

/* LAPACK's THRESH for residual ratios (TESTING/dtest.in). */
#define TU_THRESH 30.0

typedef struct tu_rng { uint64_t s; } tu_rng;

static inline uint64_t tu_u64(tu_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static inline double tu_unif(tu_rng *r) { return (double)(tu_u64(r) >> 11) * 0x1.0p-53; }
/* uniform in [a, b) */
static inline double tu_range(tu_rng *r, double a, double b) { return a + (b - a) * tu_unif(r); }
static inline double tu_normal(tu_rng *r)
{
    double u1 = tu_unif(r) + 0x1.0p-54, u2 = tu_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}
static inline void tu_fill_normal_f(tu_rng *r, float *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * tu_normal(r));
}
static inline void tu_fill_normal_d(tu_rng *r, double *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++) x[i] = scale * tu_normal(r);
}

/* ||a - b||_2 / ||b||_2 (b is the reference); 0/0 counts as 0. */
static inline double tu_relerr_f(const float *a, const double *ref, int64_t n)
{
    long double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        long double d = (long double)a[i] - ref[i];
        num += d * d; den += (long double)ref[i] * ref[i];
    }
    return den > 0 ? (double)sqrtl(num / den) : (double)sqrtl(num);
}
static inline double tu_relerr_ff(const float *a, const float *ref, int64_t n)
{
    long double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        long double d = (long double)a[i] - ref[i];
        num += d * d; den += (long double)ref[i] * ref[i];
    }
    return den > 0 ? (double)sqrtl(num / den) : (double)sqrtl(num);
}
static inline double tu_relerr_d(const double *a, const double *ref, int64_t n)
{
    long double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        long double d = (long double)a[i] - ref[i];
        num += d * d; den += (long double)ref[i] * ref[i];
    }
    return den > 0 ? (double)sqrtl(num / den) : (double)sqrtl(num);
}
static inline double tu_relerr_z(const double complex *a, const double complex *ref, int64_t n)
{
    long double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        long double dr = creal(a[i]) - creal(ref[i]), di = cimag(a[i]) - cimag(ref[i]);
        num += dr * dr + di * di;
        den += (long double)creal(ref[i]) * creal(ref[i]) + (long double)cimag(ref[i]) * cimag(ref[i]);
    }
    return den > 0 ? (double)sqrtl(num / den) : (double)sqrtl(num);
}

/* Check a measured error against its bound and print the ratio error/bound,
 * as LAPACK's testers do (a ratio far below 1 means the bound is loose).
 * Each line: "ratio R  error E  bound B  what".  SSM_TEST_QUIET=1 prints
 * only failures. */
#define TU_CHECK_ERR(err, tol, ...) do { \
    double tu_e_ = (err), tu_t_ = (tol); \
    char tu_m_[256]; snprintf(tu_m_, sizeof tu_m_, __VA_ARGS__); \
    if (!getenv("SSM_TEST_QUIET")) { \
        printf("ratio %9.3e  error %9.3e  bound %9.3e  %s\n", tu_t_ > 0 ? tu_e_ / tu_t_ : tu_e_, \
               tu_e_, tu_t_, tu_m_); \
        fflush(stdout); } \
    ck_assert_msg(tu_e_ <= tu_t_ && tu_e_ == tu_e_, "%s: error %.3e > bound %.3e (ratio %.3g)", tu_m_, \
                  tu_e_, tu_t_, tu_t_ > 0 ? tu_e_ / tu_t_ : tu_e_); \
} while (0)

/* Thread count for the OpenMP regions inside the library calls that follow
 * (tests only: the library itself never changes it). */
static inline void tu_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Allocation that aborts the test (never the library) on failure. */
static inline void *tu_alloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    ck_assert_msg(p != NULL, "test allocation of %zu x %zu failed", n, sz);
    return p;
}

/* Run a suite, print the Check summary, return the process status. */
static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* SSM_TESTUTIL_H */
