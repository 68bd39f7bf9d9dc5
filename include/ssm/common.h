/*
 * ssm/common.h -- status codes, version, export macro.
 *
 * Every public function that can fail returns ssm_status.  On error nothing
 * is written out of bounds, nothing leaks, nothing aborts or prints; the
 * outputs may then hold anything.  Two exceptions lie outside libssm and
 * need an exhausted machine: FFTW's planner aborts when its own internal
 * allocation fails, and libgomp exits when it cannot create its thread
 * team (see ssm/conv.h).
 *
 * Conventions of every header (they are what a caller can rely on):
 *  - Shapes are row-major, slowest dimension first, written next to each
 *    pointer ([B][H][L]: batch, channel, time).  Sizes are int64_t >= 1;
 *    a size whose product overflows, or whose array would exceed 2^56
 *    bytes (no 64-bit address space holds more), is SSM_ERR_ARG.
 *  - Validation: parameters (matrices, per-channel or per-mode arrays such
 *    as A, B, C, D, Ad, Bd, lambda, dt and the S4D layer's parameters) are
 *    checked, non-finite values are SSM_ERR_ARG; sequence data (inputs u,
 *    x, delta, z, the scan's B and C, initial states, convolution kernels
 *    K, which have the sequence's length) is never inspected: NaN and Inf
 *    propagate as in any float code.  The skip term D follows the
 *    parameter rule (ssm_conv_execute*, ssm_diag_scan/step,
 *    ssm_lti_scan/step, the S4D layer, the Mamba block's set_param).  One
 *    exception: ssm_selective_scan/step do not inspect A, D or delta_bias
 *    either (a check would cost as much as a step; the Mamba block checks
 *    them once, when they are set).
 *  - Aliasing: a state may be carried in place (h0 == h_last, or the h of
 *    a step function); the Mamba block and stack allow y == x.  No other
 *    output may overlap any input.
 *  - Accuracy statements ("error about eps log2(N) ||K|| ||u||", "~1e-7
 *    normwise") bound the error against the exact result of the same
 *    inputs: eps is the unit roundoff of the arithmetic named (2^-24 float,
 *    2^-53 double), "normwise relative" is ||y - y_exact||_2 /
 *    ||y_exact||_2 over the whole output.  The test suites check each such
 *    bound against an independent reference (a direct sum, a long-double
 *    or double loop, a closed form, a LAPACK residual, or golden values
 *    computed by upstream PyTorch code, Mamba's selective_scan_ref in
 *    float64) and print the ratio error / bound.
 */
#ifndef SSM_COMMON_H
#define SSM_COMMON_H

#include <stdint.h>

/* Complex arguments.  In C they ARE the C99 types:
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
