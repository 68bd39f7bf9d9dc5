/*
 * ssm/train.h -- training utilities: the AdamW optimizer (as PyTorch's
 * torch.optim.AdamW), gradient-norm clipping (as
 * torch.nn.utils.clip_grad_norm_) and the warmup + cosine learning-rate
 * schedule; the backward passes of the layers (RMSNorm, causal conv, S4D
 * kernel and convolution) and of the Mamba block and residual stack of
 * ssm/mamba.h.  The scan's backward is in ssm/scan.h
 * (ssm_selective_scan_backward).
 *
 * All three are deterministic: the same bytes for any OpenMP thread count.
 */
#ifndef SSM_TRAIN_H
#define SSM_TRAIN_H

#include "common.h"
#include "s4.h"
#include "conv.h"
#include "mamba.h"
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

/* ---- language-model head and embedding ------------------------------------ */

/* Cross-entropy of a language model's head over the real vocabulary (the
 * last step of ssm/model.h: logits = W_head h, rows 0..V-1), with its
 * gradients, as torch.nn.functional.cross_entropy(h @ W[:V].T, targets,
 * ignore_index, reduction "mean"):
 *   logits[r][v] = sum_j h[r][j] W[v][j]            (v < vocab)
 *   loss = (1/count) sum_{r: t_r != ignore} (logsumexp_v logits[r][v] - logits[r][t_r])
 *   G[r][v] = (softmax(logits[r])_v - [v == t_r]) / count   (0 for ignored rows)
 *   dh = G W[:V],  dW[:V] = G^T h,  dW[V..Vp-1] = 0
 * count = the number of rows whose target is not ignore_index.  With
 * count 0 the loss is 0 and the gradients zero (PyTorch gives NaN).
 * Shapes: h, dh [rows][dm]; W, dW [vocab_padded][dm] (Vp >= V rows, as
 * ssm/model.h: mamba_ssm pads the embedding); targets, pred [rows].
 * Outputs: *loss (double); count, pred (argmax over the real vocabulary,
 * first maximum), dh, dW may each be NULL (not wanted; without dh and dW
 * this is evaluation only).  dW is overwritten, not accumulated.
 * Tied embeddings (Mamba LMs): W is the embedding E, and its gradient is
 * the sum of this dW and the embedding's: call this with dW = dE, then
 * ssm_embedding_backward into the same dE (which accumulates).
 * Accuracy: the logits are float products (K = dm terms); the log-sum-exp
 * is stable (maximum subtracted) and each row's loss, softmax and the sum
 * of the losses are in double.
 * Memory and determinism: the rows run in blocks of 64 with one 64 x V
 * block of logits at a time; every product is cut into cblas_sgemm calls
 * of at most 64 x 64 x 64 (below OpenBLAS's threading threshold, so each
 * runs on the calling thread) distributed over libssm's OpenMP threads,
 * one writer per output tile, K pieces and row blocks accumulated in a
 * fixed order: identical bytes for any OpenMP or BLAS thread count (for a
 * given BLAS library and CPU).
 * Errors: SSM_ERR_ARG (h, W, targets or loss NULL; a size < 1;
 * vocab_padded < vocab; a size product overflowing, or a dimension above
 * INT32_MAX; a target neither ignore_index nor in [0, vocab), checked
 * before anything is written), SSM_ERR_NOMEM.  Outputs must not overlap
 * inputs.  Reentrant. */
SSM_API ssm_status ssm_lm_head_xent(int64_t rows, int64_t dm, int64_t vocab,
                                    int64_t vocab_padded, const float *h,
                                    const float *W, const int32_t *targets,
                                    int32_t ignore_index, double *loss,
                                    int64_t *count, int32_t *pred, float *dh,
                                    float *dW);

/* Token embedding: out[r] = E[tokens[r]], E [vocab_padded][dm], out
 * [rows][dm].  Errors: SSM_ERR_ARG (NULL, a size < 1, overflow, a token
 * outside [0, vocab_padded)). */
SSM_API ssm_status ssm_embedding_forward(int64_t rows, int64_t dm,
                                         int64_t vocab_padded, const float *E,
                                         const int32_t *tokens, float *out);

/* Embedding backward, ACCUMULATING: dE[tokens[r]] += dout[r] for r in
 * order (so a token seen several times sums its rows in row order; tied
 * with the head, dE already holds the head's dW).  Column blocks of 64 in
 * parallel: the same bytes for any thread count.  Errors: as
 * ssm_embedding_forward (checked before anything changes). */
SSM_API ssm_status ssm_embedding_backward(int64_t rows, int64_t dm,
                                          int64_t vocab_padded,
                                          const int32_t *tokens,
                                          const float *dout, float *dE);

/* ---- Mamba block and stack backward (ssm/mamba.h) -------------------------
 *
 * Deterministic GEMMs.  ssm_mamba_forward's products go to the BLAS as whole
 * matrices, and OpenBLAS rounds them differently for different thread counts
 * (see ssm/mamba.h).  Training needs the same loss at any thread count, so
 * every product of the functions below (and of the _det forwards, which
 * a training loop uses to compute its loss) is cut into tiles whose sizes
 * depend on the shapes only, each tile one BLAS call made from inside
 * libssm's own OpenMP loop; an OpenMP build of OpenBLAS (the one ssm/mamba.h
 * recommends) runs a call made inside a parallel region on one thread, so
 * every tile is the same computation for any thread count, and weight
 * gradients sum the batch in batch order.  Results: the same bytes for any
 * OMP_NUM_THREADS with a sequential or OpenMP BLAS.  (A pthreads OpenBLAS
 * threads each tile with its own pool: then set OPENBLAS_NUM_THREADS=1 for
 * bit-reproducible training, or accept last-bit differences.)  The _det
 * forwards equal ssm_mamba_forward / ssm_mamba_stack_forward to rounding
 * (same formulas, products tiled differently).
 */

/* Block forward from zero state with the deterministic GEMMs above:
 * x, y [batch][L][Dm] (y may equal x).  Same workspace and errors as
 * ssm_mamba_forward (st NULL).  Reentrant. */
SSM_API ssm_status ssm_mamba_forward_det(const ssm_mamba *blk, int64_t batch,
                                         int64_t L, const float *x, float *y);

/* Gradients of a scalar loss through ssm_mamba_forward(blk, NULL, batch, L,
 * x, y) (zero initial state; the forward of ssm/mamba.h, Mamba section 3.4,
 * figure 3), given dy [batch][L][Dm] = dLoss/dy:
 *   dx [batch][L][Dm] (may be NULL: not wanted), and
 *   dparams[p] = dLoss/d(parameter p) with the shape of parameter p
 *   (ssm_mamba_param_count floats, the table of ssm/mamba.h), for every p of
 *   ssm_mamba_param; a NULL entry is not computed and changes no other
 *   output (bitwise); dparams itself may be NULL (only dx).
 * Gradients are overwritten, never accumulated.  dA_log = dA * A with
 * A = -exp(A_log); dt_proj_b is the scan's delta_bias (its gradient is the
 * scan's ddelta_bias); softplus'(v) = sigmoid(v) below 20, 1 above.
 * Method: the forward is recomputed (in_proj xi | z, the conv before and
 * after silu, x_proj dt_low | B | C, delta, the scan output), then run in
 * reverse: out_proj (GEMM), the scan with its gate (ssm_selective_scan_backward:
 * du, ddelta, dA, dB, dC, dD, dz, ddelta_bias), dt_proj and x_proj (GEMMs),
 * silu' and the conv (ssm_causal_conv1d_backward), in_proj (GEMM).  Memory:
 * one workspace of about batch*L*(9*Di + 2*(R + 2N)) floats plus the
 * scan backward's checkpoints, never [B][Di][L][N].  Work: about 3.5 block
 * forwards.  Deterministic: the same bytes for any OpenMP thread count (see
 * above).  Outputs must not overlap inputs or each other.
 * Errors: SSM_ERR_ARG (blk, x or dy NULL; batch or L < 1; L + K - 1 >
 * INT_MAX; overflow), SSM_ERR_NOMEM.  Reentrant (const block). */
SSM_API ssm_status ssm_mamba_backward(const ssm_mamba *blk, int64_t batch,
                                      int64_t L, const float *x,
                                      const float *dy, float *dx,
                                      float *const dparams[SSM_MAMBA_NPARAMS]);

/* Stack forward from zero state with the deterministic GEMMs above (use it
 * to compute the loss whose gradient ssm_mamba_stack_backward returns):
 * x, y [batch][L][Dm] (y may equal x).  Errors: as ssm_mamba_stack_forward. */
SSM_API ssm_status ssm_mamba_stack_forward_det(const ssm_mamba_stack *stk,
                                               int64_t batch, int64_t L,
                                               const float *x, float *y);

/* All trainable parameters of a stack as one flat vector, in this order:
 * for each layer l = 0..n_layers-1, block l's nine tensors in
 * ssm_mamba_param order (shapes of ssm/mamba.h), then norm l's weight [Dm];
 * last the final norm's weight [Dm].  The gradient object below uses the
 * same order, so an optimizer (ssm_adamw_step, ssm_clip_grad_norm) can run
 * over one vector.  *count = the total number of floats.
 * Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_mamba_stack_param_total(const ssm_mamba_stack *stk,
                                               int64_t *count);
/* Copy every parameter out into flat (count floats, count must equal
 * ssm_mamba_stack_param_total).  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba_stack_params_get(const ssm_mamba_stack *stk,
                                              float *flat, int64_t count);
/* Set every parameter from flat (same order and count).  The whole vector
 * is checked first (finite values; exp(A_log) finite in float), so on error
 * the stack is unchanged.  Errors: SSM_ERR_ARG.  Not concurrent with runs. */
SSM_API ssm_status ssm_mamba_stack_params_set(ssm_mamba_stack *stk,
                                              const float *flat, int64_t count);

/* Gradients of a stack's parameters: one flat float vector in the order of
 * ssm_mamba_stack_params_get, owned by the object, with views per tensor. */
typedef struct ssm_mamba_stack_grads ssm_mamba_stack_grads;

/* Gradient storage for stk's shapes (zeroed).  Errors: SSM_ERR_ARG (NULL),
 * SSM_ERR_NOMEM (*g then NULL). */
SSM_API ssm_status ssm_mamba_stack_grads_create(ssm_mamba_stack_grads **g,
                                                const ssm_mamba_stack *stk);
SSM_API void ssm_mamba_stack_grads_destroy(ssm_mamba_stack_grads *g); /* NULL: no-op */

/* The flat vector (*data, *count floats; either output may be NULL),
 * writable: e.g. for ssm_clip_grad_norm and ssm_adamw_step.
 * Errors: SSM_ERR_ARG (g NULL). */
SSM_API ssm_status ssm_mamba_stack_grads_data(ssm_mamba_stack_grads *g,
                                              float **data, int64_t *count);
/* View of the gradient of block `layer`'s parameter p (0 <= layer <
 * n_layers): *grad points into the flat vector, *count floats (count may be
 * NULL).  Errors: SSM_ERR_ARG (NULL g or grad, layer out of range, unknown
 * p; *grad then NULL). */
SSM_API ssm_status ssm_mamba_stack_grads_block(ssm_mamba_stack_grads *g,
                                               int64_t layer, ssm_mamba_param p,
                                               float **grad, int64_t *count);
/* View of the gradient of norm `layer`'s weight [Dm] (0..n_layers-1: the
 * norm before that block, n_layers: the final norm), as above. */
SSM_API ssm_status ssm_mamba_stack_grads_norm(ssm_mamba_stack_grads *g,
                                              int64_t layer, float **grad,
                                              int64_t *count);

/* Gradients of a scalar loss through ssm_mamba_stack_forward(stk, NULL,
 * batch, L, x, y) (zero state):  h = x; h += block_l(rmsnorm_l(h)) for each
 * layer; y = rmsnorm_f(h).  Given dy [batch][L][Dm] = dLoss/dy it writes
 * dx [batch][L][Dm] (may be NULL) and, when g is non-NULL, every parameter
 * gradient into g (overwritten, never accumulated; g made for stk's shapes).
 * Method: one forward pass keeps each layer's residual input h_l
 * ((n_layers + 1) * batch*L*Dm floats), then the layers are walked last to
 * first: ssm_rmsnorm_backward, ssm_mamba_backward on the recomputed
 * rmsnorm_l(h_l), the residual add.  Deterministic (see above): the same
 * bytes for any OpenMP thread count.  Outputs must not overlap inputs.
 * Errors: SSM_ERR_ARG (stk, x or dy NULL; batch or L < 1; overflow; g made
 * for another shape), SSM_ERR_NOMEM.  Reentrant (const stack). */
SSM_API ssm_status ssm_mamba_stack_backward(const ssm_mamba_stack *stk,
                                            int64_t batch, int64_t L,
                                            const float *x, const float *dy,
                                            float *dx,
                                            ssm_mamba_stack_grads *g);


/* The training step without the backward's own forward pass: the forward
 * of ssm_mamba_stack_forward_det (same bytes of y), which also keeps every
 * layer's residual input inside g ((n_layers + 1) * batch*L*Dm floats, kept
 * and reused until g is destroyed); then ssm_mamba_stack_backward_saved
 * computes what ssm_mamba_stack_backward(stk, batch, L, x, dy, dx, g) would,
 * bit for bit, without running the stack forward again (about one forward
 * less per step).  The saved forward stays valid for any number of
 * backward_saved calls until the next forward_train on g (a failed one
 * invalidates it); the parameters must not change in between (not
 * checked: the gradients would then mix two models).
 * Errors: forward_train as ssm_mamba_stack_forward_det, plus g NULL or made
 * for another shape (SSM_ERR_ARG) and SSM_ERR_NOMEM for the saved copy;
 * backward_saved: SSM_ERR_ARG (stk, g or dy NULL, no valid saved forward in
 * g, g made for another shape), SSM_ERR_NOMEM.  dy, dx [batch][L][Dm] of
 * the saved forward.  Not reentrant on the same g. */
SSM_API ssm_status ssm_mamba_stack_forward_train(const ssm_mamba_stack *stk,
                                                 ssm_mamba_stack_grads *g,
                                                 int64_t batch, int64_t L,
                                                 const float *x, float *y);
SSM_API ssm_status ssm_mamba_stack_backward_saved(const ssm_mamba_stack *stk,
                                                  ssm_mamba_stack_grads *g,
                                                  const float *dy, float *dx);
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
