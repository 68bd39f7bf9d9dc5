/*
 * ssm/s4.h -- discretization and convolution kernels (S4: Gu et al. 2022,
 * S4D: Gu et al. 2022).  Everything here computes in double.
 *
 * Shapes: A, Ad [N][N] row-major; B, Bd, C [N]; lambda [N]; P, Q [R][N];
 * K [L].
 */
#ifndef SSM_S4_H
#define SSM_S4_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssm_disc {
    SSM_ZOH = 0, SSM_BILINEAR = 1, SSM_EULER = 2, SSM_BACKWARD_EULER = 3
} ssm_disc;

/* Dense single-input system: Ad (n*n), Bd (n); C and D are unchanged by
 * every method (unlike scipy's cont2discrete for bilinear).
 *   ZOH:  Ad = exp(dt A), Bd = dt phi1(dt A) B with phi1(X) = sum_k X^k/(k+1)!
 *         (the top-right block of exp(dt [[A, B], [0, 0]]): A is never inverted)
 *   GBT(alpha): Ad = (I - alpha dt A)^-1 (I + (1 - alpha) dt A),
 *               Bd = (I - alpha dt A)^-1 dt B
 *         EULER alpha = 0, BILINEAR alpha = 1/2, BACKWARD_EULER alpha = 1.
 * Errors: SSM_ERR_ARG (NULL, n < 1, bad method, dt not finite and > 0,
 * non-finite A or B), SSM_ERR_NUMERIC (singular I - alpha dt A, overflow),
 * SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_discretize(ssm_disc method, int64_t n, const double *A,
                                  const double *B, double dt, double *Ad,
                                  double *Bd);

/* Diagonal complex system (S4D): per-mode Ad (n), Bd (n), the same formulas
 * mode by mode; ZOH's phi1(z) = (e^z - 1)/z stays accurate as z -> 0. */
SSM_API ssm_status ssm_discretize_diag(ssm_disc method, int64_t n,
                                       const double complex *lambda,
                                       const double complex *B, double dt,
                                       double complex *Ad, double complex *Bd);

/* K[l] = C Ad^l Bd, l = 0..L-1 (dense real system). O(n^2 L). */
SSM_API ssm_status ssm_kernel_dense(int64_t n, const double *Ad,
                                    const double *Bd, const double *C,
                                    int64_t L, double *K);

/* K[l] = Re sum_k C[k] Bd[k] Ad[k]^l (diagonal complex system), O(n L).
 * For a conjugate-halved S4D system pass 2*C. */
SSM_API ssm_status ssm_kernel_diag(int64_t n, const double complex *Ad,
                                   const double complex *Bd,
                                   const double complex *C, int64_t L,
                                   double *K);

/* S4 kernel of the DPLR system A = diag(lambda) - sum_r p_r q_r^* (P, Q:
 * [rank][n]; NPLR output: P = Q = Pt), bilinear discretization with step dt,
 * K[l] = Re(C Abar^l Bbar), l < L, for any complex B and C, through the
 * Cauchy kernel, the Woodbury identity at the L-th roots of unity and an
 * inverse FFT (FFTW); never by forming Abar^l.  O(n L rank + L log L).
 * Errors: SSM_ERR_ARG, SSM_ERR_NOMEM, SSM_ERR_FFTW, SSM_ERR_NUMERIC. */
SSM_API ssm_status ssm_kernel_dplr(int64_t n, int64_t rank,
                                   const double complex *lambda,
                                   const double complex *P,
                                   const double complex *Q,
                                   const double complex *B,
                                   const double complex *C, double dt,
                                   int64_t L, double *K);

#ifdef __cplusplus
}
#endif

#endif /* SSM_S4_H */
