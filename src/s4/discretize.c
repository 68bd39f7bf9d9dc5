/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_discretize(ssm_disc method, int64_t n, const double *A, const double *B, double dt, double *Ad, double *Bd)
{
    (void)method;
    (void)n;
    (void)A;
    (void)B;
    (void)dt;
    (void)Ad;
    (void)Bd;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_discretize_diag(ssm_disc method, int64_t n, const double complex *lambda, const double complex *B, double dt, double complex *Ad, double complex *Bd)
{
    (void)method;
    (void)n;
    (void)lambda;
    (void)B;
    (void)dt;
    (void)Ad;
    (void)Bd;
    return SSM_FAIL(SSM_ERR_ARG);
}
