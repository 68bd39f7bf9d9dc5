/*
 * fftw_internal.h -- how libssm uses FFTW (never installed):
 *   - buffers: ssmi_fftw_malloc / ssmi_fftwf_malloc, fftw_malloc behind the
 *     allocation-failure injector (internal.h), freed with fftw(f)_free;
 *   - a small process-wide cache of double-precision plans for the free
 *     functions that have no object to keep plans in (ssm_kernel_dplr,
 *     ssm_conv_execute_d).
 * Planner thread safety: ssmi_fftw_lock (src/ssm.c) serialises libssm's
 * own planner and destroy calls, and libssm installs FFTW's planner hooks
 * (fftw_make_planner_thread_safe, double and float) once, so planner calls
 * of the host program are serialised against libssm's too.
 */
#ifndef SSM_FFTW_INTERNAL_H
#define SSM_FFTW_INTERNAL_H

#include "internal.h"
#include <fftw3.h>   /* after <complex.h>: fftw_complex is double complex */

static inline void *ssmi_fftw_malloc(size_t bytes)
{
    return ssmi_alloc_gate() ? fftw_malloc(bytes) : NULL;
}

static inline void *ssmi_fftwf_malloc(size_t bytes)
{
    return ssmi_alloc_gate() ? fftwf_malloc(bytes) : NULL;
}

/* Kinds of cached plans: all double precision, out of place, one
 * transform of length n, made with FFTW_ESTIMATE on fftw_malloc'ed arrays.
 * Run them only through the new-array execute functions
 * (fftw_execute_dft_r2c / _c2r / fftw_execute_dft), out of place, on
 * fftw_malloc'ed arrays (or offsets of them that keep 64-byte alignment):
 * the planning arrays are freed right after planning, and FFTW_ESTIMATE
 * makes the same plan every time, so a cached and a fresh plan give the
 * same bytes. */
typedef enum ssmi_fft_kind {
    SSMI_FFT_R2C = 0,   /* n reals -> n/2+1 complex */
    SSMI_FFT_C2R = 1,   /* n/2+1 complex -> n reals */
    SSMI_FFT_FWD = 2,   /* n complex, sign -1 */
    SSMI_FFT_BWD = 3    /* n complex, sign +1 */
} ssmi_fft_kind;

/* A borrowed plan: give it back with ssmi_fft_plan_put. */
typedef struct ssmi_fft_ref {
    fftw_plan plan;
    int slot;           /* cache slot, or -1 for a plan owned by the ref */
} ssmi_fft_ref;

/* Borrow a plan of (kind, n) from the cache, making it on a miss.  Errors:
 * SSM_ERR_NOMEM (planning arrays), SSM_ERR_FFTW (no plan).  Thread-safe;
 * many threads may execute one borrowed plan at once. */
ssm_status ssmi_fft_plan_get(ssmi_fft_kind kind, int n, ssmi_fft_ref *ref);
void ssmi_fft_plan_put(ssmi_fft_ref *ref);

/* Installs FFTW's planner hooks once (pthread_once); called at load time
 * and before every planner call of libssm. */
void ssmi_fftw_thread_safe_init(void);

#endif /* SSM_FFTW_INTERNAL_H */
