/*
 * ssm/common.h -- status codes, version, export macro.
 *
 * Every public function that can fail returns ssm_status.  On error nothing
 * is written out of bounds, nothing leaks, nothing aborts or prints; the
 * outputs may then hold anything.  Two exceptions lie outside libssm and
 * need an exhausted machine: FFTW's planner aborts when its own internal
 * allocation fails, and libgomp exits when it cannot create its thread
 * team (see ssm/conv.h).
 */
#ifndef SSM_COMMON_H
#define SSM_COMMON_H

#include <stdint.h>

/* Complex arguments.  In C they ARE the C99 types of API.md:
 *   ssm_cdouble = double complex, ssm_cfloat = float complex
 * (interleaved re, im).  In C++, which has no C99 complex types, they are
 * std::complex<double> / std::complex<float>, which the C++ standard lays out
 * the same way ([complex.numbers]), so C++ programs pass std::complex arrays
 * directly.  The same idea as fftw_complex in <fftw3.h>. */
#ifdef __cplusplus
#include <complex>
typedef std::complex<double> ssm_cdouble;
typedef std::complex<float>  ssm_cfloat;
#else
/* The C99 types spelled without <complex.h>, so that including <ssm.h>
 * defines no `I`, `complex` or other <complex.h> macro in user code. */
typedef double _Complex ssm_cdouble;
typedef float _Complex  ssm_cfloat;
#endif

#if defined(_WIN32) && defined(SSM_BUILDING_SHARED)
#  define SSM_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define SSM_API __attribute__((visibility("default")))
#else
#  define SSM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssm_status {
    SSM_OK          =  0,
    SSM_ERR_ARG     = -1,  /* NULL where not allowed, size < 1, bad enum, NaN/Inf or non-positive scalar dt, non-finite small matrix input */
    SSM_ERR_NOMEM   = -2,
    SSM_ERR_LAPACK  = -3,  /* a LAPACK eigensolver did not converge */
    SSM_ERR_FFTW    = -4,  /* FFTW could not make a plan */
    SSM_ERR_NUMERIC = -5,  /* singular system (e.g. I - alpha dt A), or a result that would not be finite */
    SSM_ERR_IO      = -6,  /* a file could not be opened, read, mapped or written */
    SSM_ERR_FORMAT  = -7,  /* a file or text is malformed or unsupported: bad header, offsets, dtype,
                              shape, missing tensor, disallowed checkpoint content, invalid UTF-8 */
    SSM_ERR_MPI     = -8   /* an MPI call failed (libssm_mpi only) */
} ssm_status;

/* A short English description of s; never NULL, also for unknown codes. */
SSM_API const char *ssm_status_string(ssm_status s);

/* "MAJOR.MINOR.PATCH" of the library actually linked (compare with the
 * SSM_VERSION_* macros of the header compiled against). */
SSM_API const char *ssm_version(void);

/* Evaluation mode of an LTI layer: the convolution mode (kernel + FFT) and
 * the recurrent mode (scan over time) compute the same outputs. */
typedef enum ssm_mode {
    SSM_MODE_CONV      = 0,
    SSM_MODE_RECURRENT = 1
} ssm_mode;

#ifdef __cplusplus
}
#endif

#endif /* SSM_COMMON_H */
