/*
 * hippo.c -- HiPPO transition matrices (Gu, Dao, Ermon, Rudra, Re 2020,
 * "HiPPO: Recurrent Memory with Optimal Polynomial Projections").
 *
 * The matrices are the ones of the table in include/ssm/hippo.h; each formula cites the
 * paper's derivation (Appendix D of the HiPPO paper).  The normal-plus-low-
 * rank form and the S4D initialisations live in nplr.c.
 */
#include "internal.h"
#include "hippo_internal.h"

int ssmi_hippo_measure_ok(ssm_measure m)
{
    return m == SSM_LEGS || m == SSM_LEGT || m == SSM_LAGT || m == SSM_FOUT;
}

/* Fill A (n*n row-major) and B (n); arguments already validated. */
void ssmi_hippo_fill(ssm_measure m, int64_t n, double *A, double *B)
{
    switch (m) {
    case SSM_LEGS:
        /* HiPPO-LegS (Gu et al. 2020, Theorem 2; derived in Appendix D):
         * A_nk = -(2n+1)^1/2 (2k+1)^1/2 for n > k, -(n+1) for n = k. */
        for (int64_t i = 0; i < n; i++) {
            double si = sqrt(2.0 * (double)i + 1.0);
            for (int64_t k = 0; k < n; k++) {
                double sk = sqrt(2.0 * (double)k + 1.0);
                A[i * n + k] = i > k ? -si * sk : (i == k ? -(double)(i + 1) : 0.0);
            }
            B[i] = si;
        }
        break;
    case SSM_LEGT:
        /* HiPPO-LegT (Theorem 1, Appendix D) with the window theta = 1 and the
         * normalised basis s_n P_n: A_nk = -s_n s_k for n >= k and
         * -s_n s_k (-1)^(n-k) for n < k; B_n = s_n. */
        for (int64_t i = 0; i < n; i++) {
            double si = sqrt(2.0 * (double)i + 1.0);
            for (int64_t k = 0; k < n; k++) {
                double sk = sqrt(2.0 * (double)k + 1.0);
                double v = -si * sk;
                if (i < k && ((k - i) & 1))
                    v = -v;
                A[i * n + k] = v;
            }
            B[i] = si;
        }
        break;
    case SSM_LAGT:
        /* HiPPO-LagT (Theorem 1, Appendix D; generalised Laguerre alpha = 0, the
         * measure e^-s): d/ds L_n = -sum_{k<n} L_k gives the lower
         * triangular A with -1/2 on the diagonal; B_n = L_n(0) = 1. */
        for (int64_t i = 0; i < n; i++) {
            for (int64_t k = 0; k < n; k++)
                A[i * n + k] = i > k ? -1.0 : (i == k ? -0.5 : 0.0);
            B[i] = 1.0;
        }
        break;
    case SSM_FOUT:
        /* HiPPO-FouT (Appendix D) on the window [0, 1]: the trigonometric
         * basis 1, sqrt2 cos(2 pi j s), sqrt2 sin(2 pi j s) differentiates
         * into the rotation pi R (times 2), and the boundary term
         * u(t) - u(t - 1) is approximated through the reconstruction at
         * s = 0, which gives the rank-one -2 b b^T and B = 2 b. */
        for (int64_t i = 0; i < n * n; i++)
            A[i] = 0.0;
        for (int64_t i = 0; i < n; i++)
            B[i] = (i == 0) ? 1.0 : ((i & 1) ? 0.0 : sqrt(2.0));
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < n; k++)
                A[i * n + k] = -2.0 * B[i] * B[k];
        for (int64_t j = 1; 2 * j + 1 < n; j++) {
            A[(2 * j + 1) * n + 2 * j] += SSM_HIPPO_2PI * (double)j;
            A[(2 * j) * n + 2 * j + 1] -= SSM_HIPPO_2PI * (double)j;
        }
        for (int64_t i = 0; i < n; i++)
            B[i] *= 2.0;
        break;
    }
}

ssm_status ssm_hippo(ssm_measure m, int64_t n, double *A, double *B)
{
    int64_t nn;
    if (!ssmi_hippo_measure_ok(m) || A == NULL || B == NULL)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&nn, sizeof(double), 2, n, n))
        return SSM_FAIL(SSM_ERR_ARG);
    if (m == SSM_FOUT && (n & 1))
        return SSM_FAIL(SSM_ERR_ARG);
    ssmi_hippo_fill(m, n, A, B);
    return SSM_OK;
}
