/*
 * ssm.c -- status strings, version, the error funnel, aligned allocation,
 * the FFTW lock and the seeded generator shared by the modules.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SSM_STR2(x) #x
#define SSM_STR(x) SSM_STR2(x)

const char *ssm_version(void)
{
    return SSM_STR(SSM_VERSION_MAJOR) "." SSM_STR(SSM_VERSION_MINOR) "."
           SSM_STR(SSM_VERSION_PATCH);
}

const char *ssm_status_string(ssm_status s)
{
    switch (s) {
    case SSM_OK:          return "success";
    case SSM_ERR_ARG:     return "invalid argument (NULL pointer, size < 1, "
                                 "unknown enum, bad or non-finite scalar or "
                                 "matrix input)";
    case SSM_ERR_NOMEM:   return "out of memory";
    case SSM_ERR_LAPACK:  return "LAPACK eigensolver did not converge";
    case SSM_ERR_FFTW:    return "FFTW could not make a plan";
    case SSM_ERR_NUMERIC: return "singular system or non-finite result";
    case SSM_ERR_IO:      return "file could not be opened, read, mapped or written";
    case SSM_ERR_FORMAT:  return "malformed or unsupported file or text";
    case SSM_ERR_MPI:     return "an MPI call failed";
    }
    return "unknown ssm_status code";
}

__attribute__((noinline)) ssm_status ssmi_fail_(ssm_status s, const char *file,
                                               int line)
{
    /* Keep the arguments alive for a debugger; nothing is printed. */
    __asm__ __volatile__("" : : "r"(file), "r"(line) : "memory");
    return s;
}

int ssmi_sizes_ok(int64_t *out, size_t elem, int count, ...)
{
    va_list ap;
    int64_t prod = 1;
    int ok = 1;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        int64_t v = va_arg(ap, int64_t);
        if (v < 1 || !ssmi_mul_ok(prod, v, &prod))
            ok = 0;
    }
    va_end(ap);
    if (ok && elem > 0 && (uint64_t)prod > SSMI_MAX_BYTES / (uint64_t)elem)
        ok = 0;
    if (out)
        *out = ok ? prod : 0;
    return ok;
}

int ssmi_finite_d(const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int ssmi_finite_z(const double complex *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(creal(x[i])) || !isfinite(cimag(x[i])))
            return 0;
    return 1;
}

/* The failure injector (internal.h).  Two atomics, no lock: the count of
 * allocations since arming and the one to fail (0: disarmed).  Unarmed,
 * an allocation costs one relaxed load more. */
static atomic_llong ssmi_inj_count;
static atomic_llong ssmi_inj_fail_at;

void ssmi_alloc_inject(int64_t k)
{
    atomic_store(&ssmi_inj_fail_at, 0);
    atomic_store(&ssmi_inj_count, 0);
    atomic_store(&ssmi_inj_fail_at, k > 0 ? (long long)k : 0);
}

int64_t ssmi_alloc_count(void)
{
    return (int64_t)atomic_load(&ssmi_inj_count);
}

int ssmi_alloc_gate(void)
{
    const long long at = atomic_load_explicit(&ssmi_inj_fail_at,
                                              memory_order_relaxed);
    const long long n = atomic_fetch_add(&ssmi_inj_count, 1) + 1;
    return !(at > 0 && n == at);
}

void *ssmi_alloc(size_t count, size_t elem)
{
    size_t bytes;
    if (!ssmi_alloc_gate())
        return NULL;
    if (count == 0 || elem == 0)
        count = elem = 1;
    if (__builtin_mul_overflow(count, elem, &bytes) || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;   /* aligned_alloc wants a multiple */
    return aligned_alloc(64, bytes);
}

void *ssmi_calloc(size_t count, size_t elem)
{
    void *p = ssmi_alloc(count, elem);
    if (p)
        memset(p, 0, count * elem);   /* the product was checked above */
    return p;
}

void ssmi_free(void *p)
{
    free(p);
}

/* The FFTW lock, one of the library's three mutable static objects (with
 * the allocation injector above and the FFTW plan cache of
 * src/s4/fft_plans.c), none of which changes a result: FFTW's planner and
 * destroy share tables across plans. */
static pthread_mutex_t ssm_fftw_mutex = PTHREAD_MUTEX_INITIALIZER;

void ssmi_fftw_lock(void)
{
    pthread_mutex_lock(&ssm_fftw_mutex);
}

void ssmi_fftw_unlock(void)
{
    pthread_mutex_unlock(&ssm_fftw_mutex);
}

ssm_status ssmi_scratch_init(ssmi_scratch *s, size_t per_bytes, int64_t max_units)
{
    int nt = ssmi_max_threads();
    if (max_units < (int64_t)nt)
        nt = max_units < 1 ? 1 : (int)max_units;
    if (nt < 1)
        nt = 1;
    s->base = NULL;
    s->nt = nt;
    if (per_bytes > SIZE_MAX - 63)
        return SSM_FAIL(SSM_ERR_NOMEM);
    s->per = (per_bytes + 63) & ~(size_t)63;
    if (s->per == 0)
        s->per = 64;
    s->base = ssmi_alloc((size_t)nt, s->per);   /* checks nt * per */
    return s->base ? SSM_OK : SSM_FAIL(SSM_ERR_NOMEM);
}

void ssmi_scratch_free(ssmi_scratch *s)
{
    ssmi_free(s->base);
    s->base = NULL;
}

double ssmi_rng_normal(ssmi_rng *r)
{
    double u1 = ssmi_rng_uniform(r), u2 = ssmi_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

int ssmi_finite_cf(const float complex *x, int64_t n)
{
    const float *f = (const float *)x;
    for (int64_t i = 0; i < 2 * n; i++)
        if (!isfinite(f[i])) return 0;
    return 1;
}

int ssmi_finite_f(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int ssmi_l1d_small(void)
{
#ifdef _SC_LEVEL1_DCACHE_SIZE   /* glibc; 0 or -1 when unknown */
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return l1 > 0 && l1 < 48L * 1024;
#else
    return 0;
#endif
}
