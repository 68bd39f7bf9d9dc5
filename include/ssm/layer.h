/*
 * ssm/layer.h -- the S4D layer (Gu et al. 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models"): H independent channels,
 * each a diagonal SSM with n complex modes, usable without knowing the math.
 *
 * Shapes: lambda, B, C [H][N]; dt, D [H]; u, y [B][H][L];
 * state x [B][H][N] (float complex).
 */
#ifndef SSM_LAYER_H
#define SSM_LAYER_H

#include "common.h"
#include "hippo.h"
#include "s4.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_s4d_layer ssm_s4d_layer;

/* New layer: lambda from ssm_s4d_lambda(init, n) for every channel,
 * dt log-uniform in [1e-3, 1e-1] per channel, B = 1, C ~ complex N(0, 1),
 * D ~ N(0, 1), all drawn from `seed`; discretization `disc` (ZOH or
 * BILINEAR).  Errors: SSM_ERR_ARG, SSM_ERR_NOMEM, SSM_ERR_LAPACK. */
SSM_API ssm_status ssm_s4d_layer_create(ssm_s4d_layer **layer, int64_t channels,
                                        int64_t n, ssm_s4d_init init,
                                        ssm_disc disc, uint64_t seed);
SSM_API void ssm_s4d_layer_destroy(ssm_s4d_layer *layer);   /* NULL is a no-op */

/* Set any subset of the continuous parameters (NULL: unchanged).  lambda
 * must have Re < 0... see layer docs.  Changes invalidate cached kernels. */
SSM_API ssm_status ssm_s4d_layer_set_params(ssm_s4d_layer *layer,
                                            const double complex *lambda,
                                            const double *dt,
                                            const double complex *B,
                                            const double complex *C,
                                            const float *D);
/* Read any subset back (NULL: not wanted). */
SSM_API ssm_status ssm_s4d_layer_get_params(const ssm_s4d_layer *layer,
                                            double complex *lambda, double *dt,
                                            double complex *B,
                                            double complex *C, float *D);

/* y = layer(u) over [batch][H][L] in either mode, from zero state. */
SSM_API ssm_status ssm_s4d_layer_forward(ssm_s4d_layer *layer, ssm_mode mode,
                                         int64_t batch, int64_t L,
                                         const float *u, float *y);

/* Recurrent forward with explicit state: x0 [batch][H][N] or NULL (zeros),
 * x_last [batch][H][N] or NULL; x0 == x_last allowed. */
SSM_API ssm_status ssm_s4d_layer_forward_state(const ssm_s4d_layer *layer,
                                               int64_t batch, int64_t L,
                                               const float *u,
                                               const float complex *x0,
                                               float complex *x_last,
                                               float *y);

/* One sample per channel: x [batch][H][N] updated in place, u, y [batch][H]. */
SSM_API ssm_status ssm_s4d_layer_step(const ssm_s4d_layer *layer, int64_t batch,
                                      float complex *x, const float *u,
                                      float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_LAYER_H */
