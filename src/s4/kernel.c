/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_kernel_dense(int64_t n, const double *Ad, const double *Bd, const double *C, int64_t L, double *K)
{
    (void)n;
    (void)Ad;
    (void)Bd;
    (void)C;
    (void)L;
    (void)K;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_kernel_diag(int64_t n, const double complex *Ad, const double complex *Bd, const double complex *C, int64_t L, double *K)
{
    (void)n;
    (void)Ad;
    (void)Bd;
    (void)C;
    (void)L;
    (void)K;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_kernel_dplr(int64_t n, int64_t rank, const double complex *lambda, const double complex *P, const double complex *Q, const double complex *B, const double complex *C, double dt, int64_t L, double *K)
{
    (void)n;
    (void)rank;
    (void)lambda;
    (void)P;
    (void)Q;
    (void)B;
    (void)C;
    (void)dt;
    (void)L;
    (void)K;
    return SSM_FAIL(SSM_ERR_ARG);
}
