/*
 * ssm.c -- status strings, version, the error funnel, aligned allocation,
 * the FFTW lock and the seeded generator shared by the modules.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
    if (ok && elem > 0 && (uint64_t)prod > (uint64_t)PTRDIFF_MAX / elem) /* no C object exceeds PTRDIFF_MAX bytes */
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

void *ssmi_alloc(size_t count, size_t elem)
{
    size_t bytes;
    if (count == 0 || elem == 0)
        count = elem = 1;
    if (__builtin_mul_overflow(count, elem, &bytes) || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;   /* aligned_alloc wants a multiple */
    return aligned_alloc(64, bytes);
}

void ssmi_free(void *p)
{
    free(p);
}

/* The only mutable static object of the library (API.md allows the FFTW
 * lock): FFTW's planner and destroy share tables across plans. */
static pthread_mutex_t ssm_fftw_mutex = PTHREAD_MUTEX_INITIALIZER;

void ssmi_fftw_lock(void)
{
    pthread_mutex_lock(&ssm_fftw_mutex);
}

void ssmi_fftw_unlock(void)
{
    pthread_mutex_unlock(&ssm_fftw_mutex);
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
