/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_conv_plan_create(ssm_conv_plan **plan, int64_t channels, int64_t L)
{
    (void)plan;
    (void)channels;
    (void)L;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_conv_execute(const ssm_conv_plan *plan, int64_t batch, const float *K, const float *D, const float *u, float *y)
{
    (void)plan;
    (void)batch;
    (void)K;
    (void)D;
    (void)u;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}

void ssm_conv_plan_destroy(ssm_conv_plan *plan)
{
    (void)plan;
}

ssm_status ssm_diag_scan(int64_t batch, int64_t channels, int64_t n, int64_t L, const float complex *Ad, const float complex *Bd, const float complex *C, const float *D, const float *u, const float complex *x0, float complex *x_last, float *y)
{
    (void)batch;
    (void)channels;
    (void)n;
    (void)L;
    (void)Ad;
    (void)Bd;
    (void)C;
    (void)D;
    (void)u;
    (void)x0;
    (void)x_last;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_diag_step(int64_t batch, int64_t channels, int64_t n, const float complex *Ad, const float complex *Bd, const float complex *C, const float *D, float complex *x, const float *u, float *y)
{
    (void)batch;
    (void)channels;
    (void)n;
    (void)Ad;
    (void)Bd;
    (void)C;
    (void)D;
    (void)x;
    (void)u;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}
