/*
 * ssd_internal.h -- private entry points of the SSD scan (src/scan/ssd.c)
 * for the Mamba-2 block and the white-box tests.  Never installed.
 */
#ifndef SSM_SSD_INTERNAL_H
#define SSM_SSD_INTERNAL_H

#include "scan_internal.h"

/* Triangle modes of the products (ssd_kernel.h). */
enum { SSMI_SSD_FULL = 0, SSMI_SSD_LOWER = 1, SSMI_SSD_KLOWER = 2 };

/* Longest chunk accepted. */
#define SSMI_SSD_MAX_CHUNK 4096

/* ssm_ssd_scan_ex with the instruction set forced as well (SSM_SCAN_ISA_*;
 * AUTO: the best one).  Same validation. */
ssm_status ssmi_ssd_scan_isa(const ssm_ssd_args *args, ssm_ssd_path path,
                             int64_t chunk, int isa);

/* C[M][Nc] (+)= A[M][K] B[K][Nc] with the kernels of `isa` (white-box tests
 * of the triangle modes).  Returns 0, or -1 if isa cannot run here. */
int ssmi_ssd_gemm(int isa, int64_t M, int64_t Nc, int64_t K, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float *C,
                  int64_t ldc, int acc, int tri);

/* ssm_ssd_scan_backward with the item body's instruction set forced:
 * SSM_SCAN_ISA_GENERIC (portable C), SSM_SCAN_ISA_AVX2 (AVX2 + FMA) or
 * SSM_SCAN_ISA_AUTO (the CPU's best of the two, as the public call).  Same
 * validation; SSM_ERR_ARG for an ISA that cannot run here. */
ssm_status ssmi_ssd_scan_backward_isa(const ssm_ssd_args *args, const float *dy,
                                      const float *dh_last,
                                      const ssm_ssd_grads *g, int isa);

#endif /* SSM_SSD_INTERNAL_H */
