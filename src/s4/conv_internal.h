/*
 * conv_internal.h -- private entry points of src/s4/conv.c (never installed).
 */
#ifndef SSM_CONV_INTERNAL_H
#define SSM_CONV_INTERNAL_H

#include "internal.h"

/* Smallest 2^a 3^b 5^c 7^d >= m (a length FFTW transforms fast), or -1
 * when it does not fit in int. */
int64_t ssmi_conv_fast_length(int64_t m);


#endif /* SSM_CONV_INTERNAL_H */
