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
 * Shapes: A [N][N] row-major, B [N]; Ad [N][N], Bd [N] (outputs, must not
 * overlap the inputs).
 * Method: the exponential is scaling and squaring with Higham's (2005)
 * [m/m] Pade approximants (m = 3, 5, 7, 9, 13), backward error ~eps; the
 * GBT solve is an LU with partial pivoting (written in libssm, O(n^3), in a
 * fixed order so the bits never depend on the thread count).
 * Errors: SSM_ERR_ARG (NULL, n < 1, bad method, dt not finite and > 0,
 * non-finite A or B, (n+1)^2 overflowing), SSM_ERR_NUMERIC (I - alpha dt A
 * singular to working precision: a pivot <= eps max|entry|; an exponential
 * or result that overflows), SSM_ERR_NOMEM (8 (n+1)^2 doubles of
 * workspace).  Reentrant: no global state. */
SSM_API ssm_status ssm_discretize(ssm_disc method, int64_t n, const double *A,
                                  const double *B, double dt, double *Ad,
                                  double *Bd);

/* Diagonal complex system (S4D): per-mode Ad (n), Bd (n), the same formulas
 * mode by mode with z = dt lambda_k:
 *   ZOH: Ad = e^z, Bd = dt phi1(z) B, phi1(z) = (e^z - 1)/z evaluated by a
 *        Taylor series for |z| < 1/4 (z = 0 gives Bd = dt B exactly) and by
 *        expm1/sin without cancellation otherwise: relative error a few eps
 *        for every z away from the zeros 2 pi i k (k != 0) of phi1;
 *   GBT: Ad = (1 + (1 - alpha) z) / (1 - alpha z), Bd = dt B / (1 - alpha z).
 * Shapes: lambda, B, Ad, Bd [N] complex.
 * Errors: SSM_ERR_ARG (NULL, n < 1, bad method, bad dt, non-finite lambda or
 * B), SSM_ERR_NUMERIC (1 - alpha z = 0, or a result that is not finite).
 * No allocation, reentrant. */
SSM_API ssm_status ssm_discretize_diag(ssm_disc method, int64_t n,
                                       const ssm_cdouble *lambda,
                                       const ssm_cdouble *B, double dt,
                                       ssm_cdouble *Ad, ssm_cdouble *Bd);

/* K[l] = C Ad^l Bd, l = 0..L-1 (dense real system), O(n^2 L): the slow
 * reference path.  The row vector C Ad^l is propagated (one vector-matrix
 * product per step, fixed order), so the error of K[l] is at most about
 * (l + 1) n eps |C| |Ad|^l |Bd|.
 * Shapes: Ad [N][N] row-major, Bd [N], C [N]; K [L].
 * Errors: SSM_ERR_ARG (NULL, n or L < 1, n*n overflowing, non-finite Ad,
 * Bd or C), SSM_ERR_NOMEM (2n doubles), SSM_ERR_NUMERIC (K overflowed).
 * Reentrant. */
SSM_API ssm_status ssm_kernel_dense(int64_t n, const double *Ad,
                                    const double *Bd, const double *C,
                                    int64_t L, double *K);

/* K[l] = Re sum_k C[k] Bd[k] Ad[k]^l (diagonal complex system), O(n L):
 * the S4D Vandermonde kernel.  For a conjugate-halved S4D system pass 2*C.
 * Powers are multiplied up in blocks of 256 steps from seeds Ad[k]^l0 kept
 * in long double, so the error stays at a few hundred eps sum_k
 * |C_k Bd_k| |Ad_k|^l whatever L (not l eps).  Modes are processed 8 at a
 * time in SIMD lanes, summed in a fixed order.
 * Shapes: Ad, Bd, C [N] complex; K [L].
 * Errors: SSM_ERR_ARG (NULL, n or L < 1, non-finite Ad, Bd or C),
 * SSM_ERR_NUMERIC (K overflowed, |Ad| > 1 with a long L).  No allocation,
 * reentrant. */
SSM_API ssm_status ssm_kernel_diag(int64_t n, const ssm_cdouble *Ad,
                                   const ssm_cdouble *Bd,
                                   const ssm_cdouble *C, int64_t L,
                                   double *K);

/* S4 kernel of the DPLR system A = diag(lambda) - sum_r p_r q_r^* (P, Q:
 * [rank][n], rank >= 1; NPLR output: P = Q = Pt), bilinear discretization
 * with step dt,
 *     Abar = (I - dt/2 A)^-1 (I + dt/2 A),  Bbar = (I - dt/2 A)^-1 dt B,
 *     K[l] = Re(C Abar^l Bbar), l < L, for any complex B and C
 * (C is applied as a row, without conjugation).
 * Method (S4, Gu et al. 2022, Algorithm 1): the truncated generating
 * function Ct (I - omega Abar)^-1 Bbar at all L roots of unity omega_j,
 * Ct = C (I - Abar^L), through Cauchy sums at g_j = (2i/dt) tan(pi j / L),
 * the Woodbury identity for any rank (a rank x rank complex solve per
 * node), the factor 2/(1 + omega_j) = 1 + i tan(pi j / L), and one complex
 * inverse FFT (FFTW, FFTW_ESTIMATE, plans borrowed from the library's
 * cache of 16 lengths, see ssm/conv.h: planned once per L, not per call);
 * never by forming Abar or its powers.  Ct is computed by L applications of
 * Abar to the row vector C through the DPLR structure (O(n rank) each);
 * that sweep also yields the direct values C Abar^l Bbar, whose forward FFT
 * replaces the generating function at the few nodes within relative
 * distance 2^-10 of a pole (|g_j - lambda_k| < 2^-10 max(|g_j|, |lambda_k|,
 * 1/dt), e.g. FOUT's lambda = 0 on g_0 = 0) or where the Woodbury system is
 * nearly singular; omega = -1 (even L) uses its exact limit (dt/2) Ct B.
 * Cost O(n rank^2 L + L log L) time, O(n rank^2 + L) memory.
 * Accuracy (measured, n <= 64, L <= 4096): normwise relative error ~1e-14
 * to 1e-13 against a long-double dense evaluation for HiPPO NPLR systems.
 * Shapes: lambda, B, C [N]; P, Q [R][N] (all complex); K [L].
 * Errors: SSM_ERR_ARG (NULL, n, rank or L < 1, L > INT_MAX, bad dt, sizes
 * overflowing, non-finite lambda, P, Q, B or C), SSM_ERR_NOMEM,
 * SSM_ERR_FFTW (no plan), SSM_ERR_NUMERIC (I - dt/2 A singular, or a
 * 1 - dt/2 lambda_k = 0 on which the DPLR splitting rests; K not finite).
 * Thread-safe (FFTW planning is serialised by the library's lock and FFTW's
 * planner hooks, see ssm/conv.h); no OpenMP inside.  May end the process
 * only where ssm/conv.h says (FFTW's planner out of memory). */
SSM_API ssm_status ssm_kernel_dplr(int64_t n, int64_t rank,
                                   const ssm_cdouble *lambda,
                                   const ssm_cdouble *P,
                                   const ssm_cdouble *Q,
                                   const ssm_cdouble *B,
                                   const ssm_cdouble *C, double dt,
                                   int64_t L, double *K);

#ifdef __cplusplus
}
#endif

#endif /* SSM_S4_H */
