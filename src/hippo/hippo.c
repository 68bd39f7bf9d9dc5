/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_hippo(ssm_measure m, int64_t n, double *A, double *B)
{
    (void)m;
    (void)n;
    (void)A;
    (void)B;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_hippo_nplr(ssm_measure m, int64_t n, int64_t rank, double complex *lambda, double complex *Pt, double complex *Bt, double complex *V)
{
    (void)m;
    (void)n;
    (void)rank;
    (void)lambda;
    (void)Pt;
    (void)Bt;
    (void)V;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_s4d_lambda(ssm_s4d_init init, int64_t n, double complex *lambda)
{
    (void)init;
    (void)n;
    (void)lambda;
    return SSM_FAIL(SSM_ERR_ARG);
}
