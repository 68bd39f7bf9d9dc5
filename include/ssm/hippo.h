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

/* Continuous-time HiPPO system dx/dt = A x + B u with n states (Gu et al.
 * 2020).  A: [n][n] row-major, B: [n], both written in full.
 * With s_k = sqrt(2k+1), rows i and columns k from 0:
 *   LEGS  A[i][k] = -s_i s_k (i > k), -(i+1) (i = k), 0 (i < k); B[i] = s_i
 *         (used as dx/dt = (1/t)(A x + B u): x holds the Legendre
 *         coefficients of u on [0, t], u(r) ~ sum x_i s_i P_i(2r/t - 1))
 *   LEGT  A[i][k] = -s_i s_k (i >= k), -s_i s_k (-1)^(i-k) (i < k); B[i] = s_i
 *         (u(t - s) ~ sum x_i s_i P_i(1 - 2s), s in [0, 1])
 *   LAGT  A[i][k] = -1/2 (i = k), -1 (i > k), 0 (i < k); B[i] = 1
 *         (u(t - s) ~ sum x_i L_i(s) e^(-s/2), s >= 0)
 *   FOUT  A = 2(pi R - b b^T), R[2j+1][2j] = j, R[2j][2j+1] = -j; B = 2b,
 *         b = [1, 0, sqrt2, 0, sqrt2, 0, ...]; n must be even
 *         (u(t - s) ~ x_0 + sqrt2 sum_j (x_2j cos 2 pi j s + x_2j+1 sin 2 pi j s))
 * A window of length theta is A/theta, B/theta.
 * Against PyTorch S4 (state-spaces/s4, hippo.py, transition()): LEGS and
 * LAGT (S4's 'lagt' with beta = 1) are the same matrices; S4 halves LEGT
 * ("halve again for timescale correctness") and builds 'fourier'/'fout'
 * without the factor 2 above, so S4's LEGT and FOUT are these A/2, B/2:
 * a window of length 2 in these units (theta = 2).  To reproduce S4's,
 * call ssm_hippo and halve A and B.  The HiPPO paper's own LegT (theta = 1)
 * is LEGT here.
 * Errors: SSM_ERR_ARG (A or B NULL, n < 1, unknown measure, odd n for FOUT,
 * A larger than 2^56 bytes: no 64-bit address space holds it, so n >= 2^26
 * is refused).
 * Thread-safety: pure function of its arguments, no allocation. */
SSM_API ssm_status ssm_hippo(ssm_measure m, int64_t n, double *A, double *B);

/* Normal-plus-low-rank form (S4, Gu et al. 2022, Theorem 1)
 *   A = V (diag(lambda) - sum_r pt_r pt_r^*) V^*,   pt_r = V^* p_r,
 * V unitary; p_r are the rows of the measure's real low-rank factor P:
 *   LEGS: p_0[i] = sqrt(i + 1/2)          (A + p p^T = -1/2 I + skew)
 *   LEGT: p_0[i] = s_i if i even else 0, p_1[i] = s_i if i odd else 0
 *   LAGT: p_0[i] = sqrt(1/2)
 *   FOUT: p_0 = sqrt2 b                    (the others: A + P^T P skew)
 * so Re(lambda) = -1/2 for LEGS and 0 for the others.
 * 1 <= rank <= max(n, 2) (rank >= 2 for LEGT); rows of Pt beyond the
 * measure's are zero (a correction of an n x n matrix never needs more
 * than n rows).
 * All n eigenvalues are returned (no conjugate halving); order and
 * eigenvector phases are unspecified.
 * Shapes: lambda [n]; Pt [rank][n] (Pt[r*n + j] = (pt_r)_j); Bt = V^* B [n];
 * V [n][n] with V[i*n + j] = component i of eigenvector j.
 * Method: the skew part K is diagonalised through LAPACK's real symmetric
 * dsyevd on the 2n x 2n embedding [[0, K], [-K, 0]] of the Hermitian -iK
 * (no complex BLAS/LAPACK is called); workspace (about 12 n^2 doubles plus
 * 3 n^2 complex) is allocated inside.  Accuracy: ||V^*V - I|| and
 * ||A - reconstruction|| / ||A|| are a small multiple of n eps.
 * Errors: SSM_ERR_ARG (NULL pointer, n < 1, rank below the minimum or
 * above max(n, 2), unknown measure, odd n for FOUT, V or Pt larger than
 * 2^56 bytes, the most any 64-bit address space holds);
 * SSM_ERR_NOMEM (workspace not allocatable, or beyond LAPACK's 32-bit
 * index range: n > 16383); SSM_ERR_LAPACK (dsyevd did not converge).
 * Thread-safety: reentrant, no global state; results depend on the BLAS
 * thread count to rounding only. */
SSM_API ssm_status ssm_hippo_nplr(ssm_measure m, int64_t n, int64_t rank,
                                  ssm_cdouble *lambda, ssm_cdouble *Pt,
                                  ssm_cdouble *Bt, ssm_cdouble *V);

typedef enum ssm_s4d_init {
    SSM_S4D_LEGS = 0,   /* the n eigenvalues with Im > 0 of nplr(LEGS, 2n), any order */
    SSM_S4D_LIN  = 1,   /* -1/2 + i pi k,                        k = 0..n-1 */
    SSM_S4D_INV  = 2,   /* -1/2 + i (N/pi) (N/(2k+1) - 1), N = 2n, k = 0..n-1 */
    SSM_S4D_REAL = 3    /* -(k+1),                               k = 0..n-1 */
} ssm_s4d_init;

/* Diagonal state matrix of an S4D layer with n modes (S4D, Gu et al. 2022),
 * lambda: [n].  A complex init stands for a real state of size 2n through
 * conjugate pairs (kernels use 2 Re; PyTorch S4 keeps the Im < 0 halves, the
 * conjugates of these); REAL is a real state of size n (kernels use Re).
 * LEGS computes the eigenvalues of the LegS normal part of size 2n with
 * LAPACK (dsyevd on the real embedding, as ssm_hippo_nplr) and returns
 * them by decreasing imaginary part; the others are closed forms.
 * Errors: SSM_ERR_ARG (lambda NULL, n < 1, unknown init); SSM_ERR_NOMEM
 * (LEGS only: workspace not allocatable or n > 8191); SSM_ERR_LAPACK
 * (LEGS only).
 * Thread-safety: reentrant, no global state. */
SSM_API ssm_status ssm_s4d_lambda(ssm_s4d_init init, int64_t n,
                                  ssm_cdouble *lambda);

#ifdef __cplusplus
}
#endif

#endif /* SSM_HIPPO_H */
