/*
 * ssm/train.h -- training utilities: the AdamW optimizer (as PyTorch's
 * torch.optim.AdamW), gradient-norm clipping (as
 * torch.nn.utils.clip_grad_norm_) and the warmup + cosine learning-rate
 * schedule.  The backward passes live next to their forwards
 * (ssm_selective_scan_backward in ssm/scan.h).
 *
 * All three are deterministic: the same bytes for any OpenMP thread count.
 */
#ifndef SSM_TRAIN_H
#define SSM_TRAIN_H

#include "common.h"
#include "s4.h"
#include "conv.h"
#include "layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyper-parameters of AdamW; PyTorch's defaults are lr 1e-3, beta1 0.9,
 * beta2 0.999, eps 1e-8, weight_decay 1e-2. */
typedef struct ssm_adamw_config {
    double lr;            /* >= 0; may change between steps (a schedule) */
    double beta1, beta2;  /* in [0, 1) */
    double eps;           /* >= 0 */
    double weight_decay;  /* >= 0, decoupled (Loshchilov and Hutter 2019) */
} ssm_adamw_config;

/* One AdamW step over n parameters (torch.optim.AdamW, amsgrad off),
 * step = 1 for the first step, 2 for the second, ...:
 *   p <- p (1 - lr wd)                       (decoupled weight decay)
 *   m <- m + (1 - beta1) (g - m)             (m, v start at zero)
 *   v <- beta2 v + (1 - beta2) g^2
 *   p <- p - (lr / (1 - beta1^step)) m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * Shapes: param, grad, m, v [n]; m and v are the optimizer state, zero
 * before step 1, carried between steps.  The scalars are computed in double,
 * the elements in float; elementwise, so any thread count gives the same bytes.
 * Errors: SSM_ERR_ARG (a NULL pointer, n < 1, step < 1, a hyper-parameter
 * out of range or not finite).  grad is not inspected: NaN propagates.
 * Aliasing: none of the four arrays may overlap.  Reentrant. */
SSM_API ssm_status ssm_adamw_step(const ssm_adamw_config *cfg, int64_t step,
                                  int64_t n, float *param, const float *grad,
                                  float *m, float *v);

/* Gradient-norm clipping over `count` tensors as one vector
 * (torch.nn.utils.clip_grad_norm_ with norm_type 2):
 *   norm = sqrt(sum over every element of g^2)      (double, fixed order)
 *   if norm > max_norm: every g *= max_norm / (norm + 1e-6)
 * (PyTorch multiplies by min(1, max_norm / (norm + 1e-6)), which leaves the
 * gradients unchanged below the threshold; here they are then not touched.)
 * grads[i] points to sizes[i] floats; *norm_out (may be NULL) receives the
 * norm before clipping.  A non-finite norm returns SSM_ERR_NUMERIC with the
 * gradients untouched (skip the step), the norm still written.
 * The sum runs over fixed blocks of 65536 elements, summed in order: the
 * same bytes for any thread count.
 * Errors: SSM_ERR_ARG (grads or sizes NULL, count < 1, a grads[i] NULL, a
 * size < 1, max_norm not finite or <= 0), SSM_ERR_NUMERIC as above,
 * SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_clip_grad_norm(float *const *grads, const int64_t *sizes,
                                      int count, double max_norm,
                                      double *norm_out);

/* Learning rate at `step` (0-based) of a linear warmup followed by a
 * half-cosine decay (as llm.c and nanoGPT):
 *   step < warmup:          lr_max (step + 1) / warmup
 *   warmup <= step < total: lr_min + (lr_max - lr_min) (1 + cos(pi r)) / 2,
 *                           r = (step - warmup) / (total - warmup)
 *   step >= total:          lr_min
 * Errors: SSM_ERR_ARG (lr NULL, step < 0, warmup < 0, total < warmup,
 * lr_max or lr_min negative or not finite, lr_min > lr_max). */
SSM_API ssm_status ssm_lr_warmup_cosine(int64_t step, int64_t warmup,
                                        int64_t total, double lr_max,
                                        double lr_min, double *lr);

/* ---- layer backward passes ------------------------------------------------ */

/* RMSNorm backward (Zhang and Sennrich 2019, as Mamba's backbone): for the
 * forward y[r][j] = x[r][j] s_r w[j], s_r = 1 / sqrt(mean_j x[r][j]^2 + eps),
 *   dx[r][j] = s_r (w[j] dy[r][j] - x[r][j] s_r^2 c_r / dim),
 *              c_r = sum_j dy[r][j] w[j] x[r][j]
 *   dweight[j] = sum_r dy[r][j] x[r][j] s_r
 * Shapes: x, dy, dx [rows][dim]; weight, dweight [dim].  dx or dweight may
 * be NULL (not wanted).  Sums in double, in index order (dweight over rows
 * in order): the same bytes for any thread count.  Overwrites, never
 * accumulates.  eps: Mamba's SSM_MAMBA_RMS_EPS for its blocks.
 * Errors: SSM_ERR_ARG (x, weight or dy NULL; rows or dim < 1; overflow; eps
 * negative or not finite), SSM_ERR_NOMEM.  Outputs must not overlap inputs.
 * Reentrant. */
SSM_API ssm_status ssm_rmsnorm_backward(int64_t rows, int64_t dim,
                                        const float *x, const float *weight,
                                        double eps, const float *dy,
                                        float *dx, float *dweight);

/* Causal depthwise convolution backward, for the forward of the Mamba
 * block's conv (zero left padding, tap k-1 the newest):
 *   y[b][d][t] = bias[d] + sum_{j<k} w[d][j] x[b][d][t-(k-1)+j]
 * gives
 *   dx[b][d][s]  = sum_{j<k, t = s+(k-1)-j < len} w[d][j] dy[b][d][t]
 *   dw[d][j]     = sum_b sum_t dy[b][d][t] x[b][d][t-(k-1)+j]
 *   dbias[d]     = sum_b sum_t dy[b][d][t]
 * Shapes: x, dy, dx [batch][dim][len]; w, dw [dim][k]; dbias [dim].  dx,
 * dw, dbias may each be NULL.  dw and dbias summed in double in index
 * order; OpenMP over channels: the same bytes for any thread count.
 * Errors: SSM_ERR_ARG (x, w or dy NULL; a size < 1; overflow).  Reentrant. */
SSM_API ssm_status ssm_causal_conv1d_backward(int64_t batch, int64_t dim,
                                              int64_t len, int64_t k,
                                              const float *x, const float *w,
                                              const float *dy, float *dx,
                                              float *dw, float *dbias);

/* Gradients of the S4D Vandermonde kernel (ssm_discretize_diag with
 * `method`, then ssm_kernel_diag: K[l] = Re sum_k C_k Bd_k Ad_k^l, l < L)
 * given dK [L] = dLoss/dK.  Complex gradients are dLoss/dRe + i dLoss/dIm:
 * dlambda, dB, dC [n]; ddt a real scalar.  For S4D's parameters chain
 * them: d log_dt = dt ddt; lambda = -exp(log_re) + i im gives
 * d log_re = -exp(log_re) Re(dlambda), d im = Im(dlambda).  (A
 * conjugate-halved system passes 2 C, as the forward.)  Any output may be
 * NULL.  Sums S = sum_l dK[l] Ad^l by Horner in double (error ~ L eps for
 * |Ad| <= 1); modes in parallel, ddt summed in mode order: the same bytes
 * for any thread count.  O(n L).
 * Errors: SSM_ERR_ARG (lambda, B, C or dK NULL; n or L < 1; bad method; dt
 * not finite and > 0; non-finite lambda, B or C), SSM_ERR_NUMERIC
 * (1 - alpha z = 0, or a non-finite sum), SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_s4d_kernel_backward(ssm_disc method, int64_t n,
                                           const ssm_cdouble *lambda,
                                           const ssm_cdouble *B,
                                           const ssm_cdouble *C, double dt,
                                           int64_t L, const double *dK,
                                           ssm_cdouble *dlambda,
                                           ssm_cdouble *dB, ssm_cdouble *dC,
                                           double *ddt);

/* Backward of ssm_conv_execute (S4 eq. (4)-(5), y = K * u + D u causal):
 *   du[b][c][s] = sum_{t>=s} dy[b][c][t] K[c][t-s] + D[c] dy[b][c][s]
 *   dK[c][s]    = sum_b sum_{t>=s} dy[b][c][t] u[b][c][t-s]
 *   dD[c]       = sum_b sum_t dy[b][c][t] u[b][c][t]
 * The correlations run as convolutions of time-reversed rows through the
 * same plan (ssm_conv_execute), so they have its accuracy (about
 * eps_float log2(N) ||K[c]|| ||dy[b,c]|| per du, ||u|| ||dy|| per dK term)
 * and its determinism; dK and dD are summed over the batch in double in
 * batch order: the same bytes for any thread count.
 * Shapes: K, dK [channels][L]; D, dD [channels] (D may be NULL: no skip
 * term); u, dy, du [batch][channels][L] with channels and L of `plan`.
 * du, dK, dD may each be NULL (not wanted); K may be NULL when du is.
 * Overwrites, never accumulates.  Outputs must not overlap inputs.
 * Errors: SSM_ERR_ARG (plan, u or dy NULL; K NULL with du wanted; batch < 1;
 * overflow; a non-finite D), SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_conv_backward(const ssm_conv_plan *plan, int64_t batch,
                                     const float *K, const float *D,
                                     const float *u, const float *dy,
                                     float *du, float *dK, float *dD);

/* Backward of the S4D layer's convolution mode (ssm_s4d_layer_forward with
 * SSM_MODE_CONV from the zero state; ssm/layer.h): given u and dy
 * [batch][H][L], du [batch][H][L] and the gradients of the layer's
 * continuous parameters as ssm_s4d_layer_get_params gives them: dlambda,
 * dB, dC [H][N] (complex: dLoss/dRe + i dLoss/dIm; dC is for the half
 * system C that set_params takes: the layer's factor 2 of the complex
 * inits is applied), ddt [H], dD [H].  Every output may be NULL (not
 * wanted); they are overwritten, never accumulated.
 * ssm_conv_backward (du, dK, dD) then ssm_s4d_kernel_backward per channel
 * with the layer's discretization.  The layer rounds its discrete
 * parameters and kernel to float once; the parameter gradients are those
 * of the exact (double) kernel, i.e. that rounding is treated as exact
 * (relative difference ~ eps_float).  du uses the layer's float kernel.
 * The same bytes for any thread count.  Allocates O(H (L + n)) scratch
 * and an FFT plan per call.
 * Errors: SSM_ERR_ARG (layer, u or dy NULL; batch or L < 1; overflow; L too
 * large for the FFT), SSM_ERR_NOMEM, SSM_ERR_FFTW, SSM_ERR_NUMERIC (as
 * ssm_s4d_kernel_backward).  Reentrant; may run concurrently with the
 * layer's other const calls. */
SSM_API ssm_status ssm_s4d_layer_backward(const ssm_s4d_layer *layer,
                                          int64_t batch, int64_t L,
                                          const float *u, const float *dy,
                                          float *du, ssm_cdouble *dlambda,
                                          double *ddt, ssm_cdouble *dB,
                                          ssm_cdouble *dC, float *dD);

#ifdef __cplusplus
}
#endif

#endif /* SSM_TRAIN_H */
