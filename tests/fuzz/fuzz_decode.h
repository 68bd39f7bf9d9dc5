/*
 * fuzz_decode.h -- turns a libFuzzer input into arguments for libssm's
 * public functions: sizes (small valid ones, 0, negatives, huge and
 * overflowing ones), enums (valid and invalid values), special floats (NaN,
 * +-inf, +-0, subnormals, huge, values near the overflow of exp), pointers
 * that are NULL on request.  Header-only; used by every tests/fuzz/fuzz_*.c.
 *
 * The decoder never fails: once the input is used up it returns zeros, so
 * every input is a complete call.
 *
 * The harness contract.  A fuzz target only calls a function with buffers
 * that match the sizes it passes, except when a size is invalid by the
 * documentation (< 1, or an array whose byte count overflows int64_t): then
 * the call gets small dummy buffers and must return SSM_ERR_ARG without
 * touching them out of bounds (ASan would say).  A size that is valid but
 * too large to allocate here is replaced by a small one (fd_fit).
 * Every status is checked against the function's documented list; a status
 * outside it, a crash, a sanitizer report or a leak is a finding.
 */
#ifndef SSM_FUZZ_DECODE_H
#define SSM_FUZZ_DECODE_H

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ssm.h>

typedef struct fd_in {
    const uint8_t *p;
    size_t n;
} fd_in;

static inline uint8_t fd_u8(fd_in *d)
{
    if (d->n == 0) return 0;
    d->n--;
    return *d->p++;
}
static inline uint16_t fd_u16(fd_in *d) { uint16_t a = fd_u8(d); return (uint16_t)(a | (uint16_t)fd_u8(d) << 8); }
static inline uint64_t fd_u64(fd_in *d)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)fd_u8(d) << (8 * i);
    return v;
}
static inline int fd_bool(fd_in *d) { return fd_u8(d) & 1; }

/* A size: mostly 1..max, otherwise 0, a negative value, or a huge one whose
 * byte counts overflow int64_t for any array of it (>= 2^59 elements), or
 * 2^31 + 1 and 3037000500 = floor(sqrt(INT64_MAX)) + 1, which overflow as
 * squares and for FFTW's int lengths. */
static inline int64_t fd_size(fd_in *d, int64_t max)
{
    static const int64_t bad[] = {
        0, -1, -2, INT64_MIN, INT64_MIN + 1, -4096,
        INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1, (int64_t)1 << 62,
        ((int64_t)1 << 61) + 3, ((int64_t)1 << 59) + 1, 3037000500LL,
        ((int64_t)1 << 31) + 1, ((int64_t)1 << 40), ((int64_t)1 << 33),
    };
    uint8_t c = fd_u8(d);
    if (c < 224 || max < 1)
        return max < 1 ? 1 : 1 + (int64_t)(fd_u16(d) % (uint64_t)max);
    return bad[fd_u8(d) % (sizeof bad / sizeof bad[0])];
}

/* An enum value: mostly one of the nvalid valid ones (0..nvalid-1), else
 * an invalid one. */
static inline int fd_enum(fd_in *d, int nvalid)
{
    static const int bad[] = { -1, INT_MIN, INT_MAX, 1000, -7 };
    uint8_t c = fd_u8(d);
    if (c < 232) return (int)(fd_u8(d) % (unsigned)nvalid);
    if (c < 240) return nvalid;
    return bad[c % (sizeof bad / sizeof bad[0])];
}

/* A double: a moderate value (a few significant bits, exponent 2^-8..2^8,
 * either sign), or a special one, or raw bits. */
static inline double fd_double(fd_in *d)
{
    static const double special[] = {
        0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 1e-3, 0.1,
        NAN, -NAN, INFINITY, -INFINITY,
        DBL_TRUE_MIN, -DBL_TRUE_MIN, DBL_MIN / 2, DBL_MIN, -DBL_MIN,
        DBL_MAX, -DBL_MAX, 1e300, -1e300, 1e-300,
        (double)FLT_MAX, -(double)FLT_MAX, (double)FLT_TRUE_MIN, 1e38, 3.5e38,
        88.0, 88.8, -87.5, -104.0, 709.0, 710.0, -745.5, 20.0, 20.000001, -20.0,
        1e6, -1e6, 1e15, 6.283185307179586, 3.141592653589793,
    };
    uint8_t c = fd_u8(d);
    if (c < 160) {
        int16_t m = (int16_t)fd_u16(d);
        int e = (int)(fd_u8(d) % 17) - 12;       /* 2^-12 .. 2^4 times m/2^? */
        return ldexp((double)m / 4096.0, e + 4);
    }
    if (c < 248) return special[fd_u8(d) % (sizeof special / sizeof special[0])];
    uint64_t b = fd_u64(d);
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
static inline float fd_float(fd_in *d)
{
    static const float special[] = {
        0.0f, -0.0f, 1.0f, -1.0f, 0.5f, NAN, -NAN, INFINITY, -INFINITY,
        FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MIN / 2, FLT_MIN, FLT_MAX, -FLT_MAX,
        1e30f, -1e30f, 1e-30f, 20.0f, 20.5f, 19.99f, -20.0f, -100.0f, -1e4f,
        88.0f, 88.7f, 89.0f, -87.5f, -104.0f, 1e4f, 3.0e38f,
    };
    uint8_t c = fd_u8(d);
    if (c < 160) {
        int16_t m = (int16_t)fd_u16(d);
        int e = (int)(fd_u8(d) % 13) - 8;
        return ldexpf((float)m / 4096.0f, e + 4);
    }
    if (c < 248) return special[fd_u8(d) % (sizeof special / sizeof special[0])];
    uint32_t b = (uint32_t)fd_u64(d);
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* Fill arrays; after the input runs out the values are 0. */
static inline void fd_fill_d(fd_in *d, double *x, int64_t n) { for (int64_t i = 0; i < n; i++) x[i] = fd_double(d); }
static inline void fd_fill_f(fd_in *d, float *x, int64_t n) { for (int64_t i = 0; i < n; i++) x[i] = fd_float(d); }
/* Complex arrays as interleaved (re, im) pairs: n complex = 2n doubles. */
static inline void fd_fill_z(fd_in *d, void *x, int64_t n) { fd_fill_d(d, (double *)x, 2 * n); }
static inline void fd_fill_c(fd_in *d, void *x, int64_t n) { fd_fill_f(d, (float *)x, 2 * n); }
/* Only finite values (for arguments the library documents as checked, so
 * that a run can also reach the computation behind the check). */
static inline void fd_fill_finite_f(fd_in *d, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) { float v = fd_float(d); x[i] = isfinite(v) ? v : 0.5f; }
}

/* Bytes of an array of n1*n2*n3 elements of `el` bytes: -1 when a size is
 * < 1 or the byte count overflows int64_t (documented SSM_ERR_ARG). */
static inline int64_t fd_bytes(int64_t n1, int64_t n2, int64_t n3, int64_t el)
{
    int64_t r;
    if (n1 < 1 || n2 < 1 || n3 < 1) return -1;
    if (__builtin_mul_overflow(n1, n2, &r) || __builtin_mul_overflow(r, n3, &r) ||
        __builtin_mul_overflow(r, el, &r))
        return -1;
    return r;
}

/* Allocation for the harness (aborts: not a library finding). */
static inline void *fd_alloc(int64_t bytes)
{
    void *p = calloc((size_t)(bytes > 0 ? bytes : 1), 1);
    if (!p) { fprintf(stderr, "fuzz harness: out of memory (%lld bytes)\n", (long long)bytes); abort(); }
    return p;
}

/* A finding: print and abort, so that libFuzzer keeps the input. */
#define FD_CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "FUZZ FINDING %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

/* st is one of the `n` allowed statuses. */
static inline int fd_status_in(ssm_status st, int n, const ssm_status *allowed)
{
    for (int i = 0; i < n; i++) if (st == allowed[i]) return 1;
    return 0;
}
#define FD_ALLOWED(st, ...) do { \
    static const ssm_status fd_al_[] = { __VA_ARGS__ }; \
    ssm_status fd_st_ = (st); \
    FD_CHECK(fd_status_in(fd_st_, (int)(sizeof fd_al_ / sizeof fd_al_[0]), fd_al_), \
             "status %d (%s) is not documented for this call", (int)fd_st_, ssm_status_string(fd_st_)); \
} while (0)
/* A call the documentation says must fail with SSM_ERR_ARG. */
#define FD_EXPECT_ARG(st, why) do { ssm_status fd_s2_ = (st); \
    FD_CHECK(fd_s2_ == SSM_ERR_ARG, "expected SSM_ERR_ARG (%s), got %d (%s)", why, (int)fd_s2_, ssm_status_string(fd_s2_)); \
} while (0)

static inline int fd_all_finite_d(const double *x, int64_t n) { for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0; return 1; }
static inline int fd_all_finite_f(const float *x, int64_t n) { for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0; return 1; }

/* Bitwise equality, except that any NaN equals any NaN (payloads may differ
 * between vector and scalar code). */
static inline int fd_same_f(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) return 0;
    }
    return 1;
}

#endif /* SSM_FUZZ_DECODE_H */
