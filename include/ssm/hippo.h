/*
 * ssm/hippo.h -- HiPPO transition matrices (Gu et al. 2020), their
 * normal-plus-low-rank form (S4, Gu et al. 2022) and S4D initialisations.
 *
 * Shapes: A [N][N] row-major, B [N]; lambda [N]; Pt [R][N]; V [N][N] with
 * V[i*N + j] = component i of eigenvector j.
 */
#ifndef SSM_HIPPO_H
#define SSM_HIPPO_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssm_measure {
    SSM_LEGS = 0,   /* scaled Legendre (HiPPO-LegS), as used by S4 */
    SSM_LEGT = 1,   /* translated Legendre, sliding window of length 1 */
    SSM_LAGT = 2,   /* translated Laguerre */
    SSM_FOUT = 3    /* translated Fourier, sliding window of length 1; n even */
} ssm_measure;

/* Continuous-time HiPPO system dx/dt = A x + B u with n states.
 * A: [n][n] row-major, B: [n].  With s_k = sqrt(2k+1):
 *   LEGS  A[n][k] = -s_n s_k (n > k), -(n+1) (n = k), 0 (n < k); B[n] = s_n
 *   LEGT  A[n][k] = -s_n s_k (n >= k), -s_n s_k (-1)^(n-k) (n < k); B[n] = s_n
 *   LAGT  A[n][k] = -1/2 (n = k), -1 (n > k), 0 (n < k); B[n] = 1
 *   FOUT  A = 2(pi R - b b^T), R[2j+1][2j] = j, R[2j][2j+1] = -j; B = 2b,
 *         b = [1, 0, sqrt2, 0, sqrt2, 0, ...]; n must be even.
 * A window of length theta is A/theta, B/theta.
 * Errors: SSM_ERR_ARG (NULL, n < 1, bad measure, odd n for FOUT). */
SSM_API ssm_status ssm_hippo(ssm_measure m, int64_t n, double *A, double *B);

/* Normal-plus-low-rank form
 *   A = V (diag(lambda) - sum_r pt_r pt_r^*) V^*,   pt_r = V^* p_r,
 * V unitary; p_r are the rows of the measure's real low-rank factor P:
 *   LEGS: p_0[n] = sqrt(n + 1/2)
 *   LEGT: p_0[n] = s_n if n even else 0, p_1[n] = s_n if n odd else 0
 *   LAGT: p_0[n] = sqrt(1/2)
 *   FOUT: p_0 = sqrt2 b
 * rank >= 1 (>= 2 for LEGT); rows beyond the measure's are zero.
 * All n eigenvalues are returned; order and eigenvector phases unspecified.
 * lambda: [n]; Pt: [rank][n]; Bt = V^* B: [n]; V: [n][n].
 * Errors: SSM_ERR_ARG, SSM_ERR_NOMEM, SSM_ERR_LAPACK. */
SSM_API ssm_status ssm_hippo_nplr(ssm_measure m, int64_t n, int64_t rank,
                                  double complex *lambda, double complex *Pt,
                                  double complex *Bt, double complex *V);

typedef enum ssm_s4d_init {
    SSM_S4D_LEGS = 0,   /* the n eigenvalues with Im > 0 of nplr(LEGS, 2n), any order */
    SSM_S4D_LIN  = 1,   /* -1/2 + i pi k,                        k = 0..n-1 */
    SSM_S4D_INV  = 2,   /* -1/2 + i (N/pi) (N/(2k+1) - 1), N = 2n, k = 0..n-1 */
    SSM_S4D_REAL = 3    /* -(k+1),                               k = 0..n-1 */
} ssm_s4d_init;

/* Diagonal state matrix of an S4D layer with n modes (lambda: [n]).
 * A complex init stands for a real state of size 2n through conjugate pairs
 * (kernels use 2 Re); REAL is a real state of size n (kernels use Re).
 * Errors: SSM_ERR_ARG, SSM_ERR_NOMEM, SSM_ERR_LAPACK (LEGS only). */
SSM_API ssm_status ssm_s4d_lambda(ssm_s4d_init init, int64_t n,
                                  double complex *lambda);

#ifdef __cplusplus
}
#endif

#endif /* SSM_HIPPO_H */
