/* placeholder: replaced by the module's implementation */
#include "internal.h"

ssm_status ssm_s4d_layer_create(ssm_s4d_layer **layer, int64_t channels, int64_t n, ssm_s4d_init init, ssm_disc disc, uint64_t seed)
{
    (void)layer;
    (void)channels;
    (void)n;
    (void)init;
    (void)disc;
    (void)seed;
    return SSM_FAIL(SSM_ERR_ARG);
}

void ssm_s4d_layer_destroy(ssm_s4d_layer *layer)
{
    (void)layer;
}

ssm_status ssm_s4d_layer_set_params(ssm_s4d_layer *layer, const double complex *lambda, const double *dt, const double complex *B, const double complex *C, const float *D)
{
    (void)layer;
    (void)lambda;
    (void)dt;
    (void)B;
    (void)C;
    (void)D;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_s4d_layer_get_params(const ssm_s4d_layer *layer, double complex *lambda, double *dt, double complex *B, double complex *C, float *D)
{
    (void)layer;
    (void)lambda;
    (void)dt;
    (void)B;
    (void)C;
    (void)D;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_s4d_layer_forward(ssm_s4d_layer *layer, ssm_mode mode, int64_t batch, int64_t L, const float *u, float *y)
{
    (void)layer;
    (void)mode;
    (void)batch;
    (void)L;
    (void)u;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_s4d_layer_forward_state(const ssm_s4d_layer *layer, int64_t batch, int64_t L, const float *u, const float complex *x0, float complex *x_last, float *y)
{
    (void)layer;
    (void)batch;
    (void)L;
    (void)u;
    (void)x0;
    (void)x_last;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}

ssm_status ssm_s4d_layer_step(const ssm_s4d_layer *layer, int64_t batch, float complex *x, const float *u, float *y)
{
    (void)layer;
    (void)batch;
    (void)x;
    (void)u;
    (void)y;
    return SSM_FAIL(SSM_ERR_ARG);
}
