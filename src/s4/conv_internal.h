/*
 * conv_internal.h -- private entry points of src/s4/conv.c and
 * src/s4/diag_scan.c for the S4D layer (never installed).
 */
#ifndef SSM_CONV_INTERNAL_H
#define SSM_CONV_INTERNAL_H

#include "internal.h"

/* ssm_diag_scan / ssm_diag_step after argument validation: every pointer
 * except D, x0, x_last non-NULL, sizes >= 1 with products that fit,
 * Ad, Bd, C finite.  Same code, same bytes as the public calls. */
ssm_status ssm_diag_scan_unchecked(int64_t batch, int64_t channels, int64_t n,
                                   int64_t L, const float complex *Ad,
                                   const float complex *Bd,
                                   const float complex *C, const float *D,
                                   const float *u, const float complex *x0,
                                   float complex *x_last, float *y);

/* Smallest 2^a 3^b 5^c 7^d >= m (a length FFTW transforms fast), or -1
 * when it does not fit in int. */
int64_t ssm_conv_fast_length(int64_t m);

/* 1 if all n float complex values are finite. */
int ssm_finite_cf(const float complex *x, int64_t n);
int ssm_finite_f(const float *x, int64_t n);

#endif /* SSM_CONV_INTERNAL_H */
