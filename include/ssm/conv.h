/*
 * ssm/conv.h -- the convolution mode (batched causal FFT convolution through
 * FFTW, single precision) and its recurrent twin for diagonal LTI systems.
 *
 * Shapes: K [H][L]; D [H]; u, y [B][H][L]; Ad, Bd, C [H][N];
 * x0, x_last [B][H][N].
 */
#ifndef SSM_CONV_H
#define SSM_CONV_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Batched causal convolution through FFTW, plan made once, run many times:
 *   y[b,c,t] = sum_{s<=t} K[c,s] u[b,c,t-s] + D[c] u[b,c,t].
 * K: channels*L, D: channels or NULL, u and y: batch*channels*L.
 * The plan is immutable after creation; ssm_conv_execute may run on one plan
 * from many threads at once.  Plans are made with FFTW_ESTIMATE so the same
 * input gives the same bytes in every run and for any thread count. */
typedef struct ssm_conv_plan ssm_conv_plan;
SSM_API ssm_status ssm_conv_plan_create(ssm_conv_plan **plan, int64_t channels,
                                        int64_t L);
SSM_API ssm_status ssm_conv_execute(const ssm_conv_plan *plan, int64_t batch,
                                    const float *K, const float *D,
                                    const float *u, float *y);
SSM_API void       ssm_conv_plan_destroy(ssm_conv_plan *plan);  /* NULL is a no-op */

/* Recurrent twin of the convolution mode for a diagonal complex LTI system
 * (S4D), per batch b, channel c, mode k, step t:
 *   x[k] = Ad[c,k] x[k] + Bd[c,k] u[b,c,t]
 *   y[b,c,t] = Re(sum_k C[c,k] x[k]) + D[c] u[b,c,t]
 * Ad, Bd, C: channels*n; x0, x_last: batch*channels*n or NULL (zeros / not
 * wanted); D: channels or NULL; u, y: batch*channels*L.  x0 == x_last is
 * allowed (state carried in place). */
SSM_API ssm_status ssm_diag_scan(int64_t batch, int64_t channels, int64_t n,
                                 int64_t L, const float complex *Ad,
                                 const float complex *Bd,
                                 const float complex *C, const float *D,
                                 const float *u, const float complex *x0,
                                 float complex *x_last, float *y);

/* One step of the same recurrence for streaming (one sample per channel):
 * x: batch*channels*n, read and updated in place; u, y: batch*channels.
 * Bit for bit the results of ssm_diag_scan with L = 1. */
SSM_API ssm_status ssm_diag_step(int64_t batch, int64_t channels, int64_t n,
                                 const float complex *Ad,
                                 const float complex *Bd,
                                 const float complex *C, const float *D,
                                 float complex *x, const float *u, float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_CONV_H */
