/*
 * hippo_internal.h -- helpers shared by the .c files of src/hippo.  Never installed.
 */
#ifndef SSM_HIPPO_INTERNAL_H
#define SSM_HIPPO_INTERNAL_H

#include "internal.h"

#define SSM_HIPPO_2PI 6.283185307179586476925286766559

/* 1 if m is one of the four measures. */
int ssmi_hippo_measure_ok(ssm_measure m);

/* A (n*n row-major) and B (n) of measure m; arguments already validated
 * (n >= 1, n even for FOUT, n*n fits). */
void ssmi_hippo_fill(ssm_measure m, int64_t n, double *A, double *B);

#endif /* SSM_HIPPO_INTERNAL_H */
