/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_selective_scan(const ssm_scan_args *args)
{
    (void)args;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_selective_step(int64_t batch, int64_t dim, int64_t dstate, int64_t ngroups, float *h, const float *u, const float *delta, const float *A, const float *B, const float *C, const float *D, const float *z, const float *delta_bias, int delta_softplus, float *y)
{
    (void)batch;
    (void)dim;
    (void)dstate;
    (void)ngroups;
    (void)h;
    (void)u;
    (void)delta;
    (void)A;
    (void)B;
    (void)C;
    (void)D;
    (void)z;
    (void)delta_bias;
    (void)delta_softplus;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}
