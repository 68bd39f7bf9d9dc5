/*
 * ssm/mamba2.h -- the Mamba-2 block (Dao and Gu 2024, "Transformers are
 * SSMs", section 7 and figure 6: the parallel projection of x, z, B, C, dt,
 * the SSD scan, the gated RMSNorm) and a residual stack of blocks with
 * RMSNorm (the backbone of mamba2-130m ... 2.7b without embeddings and LM
 * head).  Matrix products through CBLAS sgemm (prompts; steps of more
 * than 16 tokens) and libssm's small-batch kernels (steps); the recurrence
 * is ssm_ssd_scan / ssm_ssd_step.
 *
 * Sizes (ssm_mamba2_config, resolved): Dm = d_model, Di = d_inner =
 * expand*Dm, N = d_state, K = d_conv, P = headdim, H = nheads = Di/P,
 * G = ngroups, Dc = conv_dim = Di + 2 G N, Dp = d_in_proj = 2 Di + 2 G N + H.
 *
 * Parameters (row-major float, as mamba_ssm's Mamba2 module stores them; the
 * names are the state-dict suffixes after "mixer."):
 *   SSM_MAMBA2_IN_PROJ  in_proj.weight  [Dp][Dm]  rows [z (Di) | x (Di) | B (G N) | C (G N) | dt (H)]
 *   SSM_MAMBA2_CONV_W   conv1d.weight   [Dc][K]   (PyTorch [Dc][1][K]) over xBC, tap K-1 = newest
 *   SSM_MAMBA2_CONV_B   conv1d.bias     [Dc]
 *   SSM_MAMBA2_DT_BIAS  dt_bias         [H]
 *   SSM_MAMBA2_A_LOG    A_log           [H]       A = -exp(A_log)
 *   SSM_MAMBA2_D        D               [H], or [Di] (= [H][P]) if D_per_channel (D_has_hdim)
 *   SSM_MAMBA2_NORM_W   norm.weight     [Di]      gated RMSNorm weight (unused if norm is off)
 *   SSM_MAMBA2_OUT_PROJ out_proj.weight [Dm][Di]
 * (no in_proj/out_proj bias, as Mamba-2's default bias=False; conv bias on).
 * ssm_mamba2_param_name gives these names.
 *
 * Block forward (x, y: [B][L][Dm], token-major like PyTorch):
 *   z | xBC | dt = in_proj x                                   ([Dp] per token)
 *   xBC = silu(conv_b + causal depthwise conv_w * xBC)         (zero left pad)
 *   x | B | C = xBC                                            (Di | G N | G N)
 *   y = ssd_scan(x as [H][P], dt, A, B, C, D, dt_bias, softplus,
 *                dt limits [dt_min, dt_max], z only if norm is off)
 *   y = rmsnorm_g(y * silu(z)) * norm_w     (norm NORM_GATED, the default)
 *     = rmsnorm_g(y) * norm_w * silu(z)     (NORM_BEFORE_GATE)
 *     = y                                   (NORM_NONE: the gate is in the scan)
 *   rmsnorm_g: over each group of Di/G consecutive channels,
 *              v / sqrt(mean(v^2) + eps), eps = norm_eps (1e-5)
 *   y = out_proj y
 *
 * Streaming state (ssm_mamba2_state, for a maximum batch fixed at
 * creation): conv state [maxB][Dc][K] (the last K pre-conv xBC inputs,
 * oldest first, as Mamba-2's conv_state) and SSM state [maxB][H][P][N]
 * (as Mamba-2's ssm_state).  The state also holds the step workspace, so the
 * step path never allocates.
 *
 * Stack: h = x; for each layer l: h = h + block_l(rmsnorm_l(h)); y =
 * rmsnorm_f(h), rmsnorm over Dm with eps 1e-5 (Mamba's backbone).
 *
 * Determinism.  As for Mamba-1 (ssm/mamba.h): what libssm computes itself is
 * bit for bit independent of the thread count; the GEMMs belong to the
 * external BLAS (OpenBLAS may thread them, which can change the last bits),
 * so block and stack outputs are thread-count independent to rounding.
 * Forward (GEMM) and step (GEMV) agree to rounding.
 *
 * Configuration ABI: ssm_mamba2_config starts with struct_size; fill it
 * with ssm_mamba2_config_init and set what you need.  The library reads only
 * the fields that lie within struct_size, so the struct can grow.
 *
 * Thread safety: a block or stack is read-only during forward/step (any
 * number of threads, each with its own state); setting parameters must not
 * overlap with a run.  A state belongs to one thread at a time.
 */
#ifndef SSM_MAMBA2_H
#define SSM_MAMBA2_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the gate z goes and whether the gated RMSNorm runs. */
typedef enum ssm_mamba2_norm {
    SSM_MAMBA2_NORM_GATED       = 0,  /* rmsnorm(y * silu(z)) * w (default: norm_before_gate=False) */
    SSM_MAMBA2_NORM_BEFORE_GATE = 1,  /* rmsnorm(y) * w * silu(z)  (norm_before_gate=True) */
    SSM_MAMBA2_NORM_NONE        = 2   /* y * silu(z) in the scan, no norm (rmsnorm=False) */
} ssm_mamba2_norm;

typedef struct ssm_mamba2_config {
    uint32_t struct_size;   /* sizeof(ssm_mamba2_config), set by ssm_mamba2_config_init */
    int64_t d_model;        /* Dm >= 1 (required) */
    int64_t d_state;        /* N, 0: 128 */
    int64_t d_conv;         /* K, 0: 4; at most 64 */
    int64_t expand;         /* Di = expand * Dm, 0: 2 */
    int64_t headdim;        /* P, 0: 64; must divide Di */
    int64_t ngroups;        /* G, 0: 1; must divide H */
    int D_per_channel;      /* nonzero: D is [Di] (D_has_hdim) */
    int norm;               /* ssm_mamba2_norm */
    float dt_min, dt_max;   /* dt limit after softplus (Mamba-2's dt_limit); dt_max 0 means +inf,
                               so the zeroed default is (0, +inf), Mamba-2's default */
    float norm_eps;         /* 0: 1e-5 */
} ssm_mamba2_config;

/* Zero *cfg and set cfg->struct_size = sizeof *cfg.  NULL: no-op. */
SSM_API void ssm_mamba2_config_init(ssm_mamba2_config *cfg);

typedef enum ssm_mamba2_param {
    SSM_MAMBA2_IN_PROJ  = 0,
    SSM_MAMBA2_CONV_W   = 1,
    SSM_MAMBA2_CONV_B   = 2,
    SSM_MAMBA2_DT_BIAS  = 3,
    SSM_MAMBA2_A_LOG    = 4,
    SSM_MAMBA2_D        = 5,
    SSM_MAMBA2_NORM_W   = 6,
    SSM_MAMBA2_OUT_PROJ = 7
} ssm_mamba2_param;
#define SSM_MAMBA2_NPARAMS 8

typedef struct ssm_mamba2 ssm_mamba2;
typedef struct ssm_mamba2_state ssm_mamba2_state;

/* The resolved configuration (defaults filled in) of cfg into *out (out's
 * struct_size is set to sizeof).  Errors: SSM_ERR_ARG (NULL, struct_size too
 * small to hold d_model, d_model < 1, a field < 0, headdim not dividing Di,
 * ngroups not dividing H, norm not an ssm_mamba2_norm, a NaN or negative
 * dt limit or dt_min > dt_max (after dt_max 0 -> +inf), norm_eps < 0 or NaN, a size overflowing or
 * above INT_MAX: the BLAS takes int). */
SSM_API ssm_status ssm_mamba2_config_resolve(const ssm_mamba2_config *cfg,
                                             ssm_mamba2_config *out);

/* The state-dict name suffix of parameter p ("in_proj.weight", ...), or
 * NULL for an unknown p. */
SSM_API const char *ssm_mamba2_param_name(ssm_mamba2_param p);

/* New block with Mamba-2's default initialisation drawn from `seed`:
 * in_proj, out_proj ~ U(+-1/sqrt(fan_in)) (PyTorch Linear); conv weight
 * and bias ~ U(+-1/sqrt(K)); dt ~ exp(U(log 1e-3, log 1e-1)) floored at
 * 1e-4, dt_bias = softplus^-1(dt); A ~ U(1, 16), A_log = log A; D = 1;
 * norm weight 1.  Errors: SSM_ERR_ARG (as resolve, or blk NULL),
 * SSM_ERR_NOMEM (*blk is then NULL). */
SSM_API ssm_status ssm_mamba2_create(ssm_mamba2 **blk,
                                     const ssm_mamba2_config *cfg,
                                     uint64_t seed);
SSM_API void ssm_mamba2_destroy(ssm_mamba2 *blk);   /* NULL is a no-op */

/* The resolved configuration of a block (written within cfg->struct_size,
 * which the caller sets, e.g. by ssm_mamba2_config_init).
 * Errors: SSM_ERR_ARG (NULL, struct_size < sizeof(uint32_t)). */
SSM_API ssm_status ssm_mamba2_get_config(const ssm_mamba2 *blk,
                                         ssm_mamba2_config *cfg);

/* Number of floats of parameter p.  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba2_param_count(const ssm_mamba2 *blk,
                                          ssm_mamba2_param p, int64_t *count);

/* Copy parameter p from src (count floats, which must equal
 * ssm_mamba2_param_count; layouts above, e.g. straight from a checkpoint
 * tensor converted to float); every value must be finite, and A_log must
 * keep exp(A_log) finite.  On error the block is unchanged.
 * Errors: SSM_ERR_ARG.  Not concurrent with runs of the block. */
SSM_API ssm_status ssm_mamba2_set_param(ssm_mamba2 *blk, ssm_mamba2_param p,
                                        const float *src, int64_t count);
SSM_API ssm_status ssm_mamba2_get_param(const ssm_mamba2 *blk,
                                        ssm_mamba2_param p, float *dst,
                                        int64_t count);

/* Streaming state for up to max_batch sequences, zeroed.
 * Errors: SSM_ERR_ARG (NULL, max_batch < 1, overflow), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mamba2_state_create(ssm_mamba2_state **st,
                                           const ssm_mamba2 *blk,
                                           int64_t max_batch);
SSM_API void ssm_mamba2_state_destroy(ssm_mamba2_state *st); /* NULL: no-op */
SSM_API ssm_status ssm_mamba2_state_reset(ssm_mamba2_state *st);

/* Copy the first `batch` sequences' states out of st (get) or into st
 * (set): conv [batch][Dc][K] and ssm [batch][H][P][N]; either pointer may
 * be NULL (not copied).  Set values must be finite.  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba2_state_get(const ssm_mamba2_state *st,
                                        int64_t batch, float *conv,
                                        float *ssm);
SSM_API ssm_status ssm_mamba2_state_set(ssm_mamba2_state *st, int64_t batch,
                                        const float *conv, const float *ssm);
/* SSM_OK if st was made for a block of blk's shape and holds at least
 * `batch` sequences (get/set then move blk-sized buffers; libssm_mpi checks
 * a caller's state with it).  Errors: SSM_ERR_ARG (NULL, another shape,
 * batch < 1 or above st's max batch). */
SSM_API ssm_status ssm_mamba2_state_check(const ssm_mamba2_state *st,
                                          const ssm_mamba2 *blk, int64_t batch);

/* Block forward over x [batch][L][Dm] into y [batch][L][Dm] (y may equal
 * x; otherwise they must not overlap).  st NULL: from the zero state,
 * nothing kept; st non-NULL: starts from st's first `batch` entries and
 * leaves there the state after the last token (a prompt; ssm_mamba2_step
 * continues).  Long sequences run in slabs of 2048 tokens, the states
 * carried between slabs: the workspace is about batch*min(L, 2048)*(Dp +
 * Dc + 3 Di) floats (plus the states when st is NULL), whatever L.
 * Errors: SSM_ERR_ARG (NULL, batch or L < 1, overflow, st made for another
 * block shape, batch > st's max batch), SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_mamba2_forward(const ssm_mamba2 *blk,
                                      ssm_mamba2_state *st, int64_t batch,
                                      int64_t L, const float *x, float *y);

/* One token per sequence: x, y [batch][Dm] (y may equal x), st updated in
 * place.  No allocation.  Errors: SSM_ERR_ARG (NULL, batch < 1, batch >
 * st's max batch, st made for another block shape). */
SSM_API ssm_status ssm_mamba2_step(const ssm_mamba2 *blk, ssm_mamba2_state *st,
                                   int64_t batch, const float *x, float *y);

/* ---- residual stack with RMSNorm ---- */

typedef struct ssm_mamba2_stack ssm_mamba2_stack;
typedef struct ssm_mamba2_stack_state ssm_mamba2_stack_state;

/* n_layers blocks of the same config, each initialised as
 * ssm_mamba2_create with a seed drawn from `seed`, then out_proj scaled by
 * 1/sqrt(n_layers) (rescale_prenorm_residual); all norm weights 1.
 * Errors: SSM_ERR_ARG (NULL, bad cfg, n_layers < 1), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mamba2_stack_create(ssm_mamba2_stack **stk,
                                           const ssm_mamba2_config *cfg,
                                           int64_t n_layers, uint64_t seed);
SSM_API void ssm_mamba2_stack_destroy(ssm_mamba2_stack *stk); /* NULL: no-op */
SSM_API ssm_status ssm_mamba2_stack_layers(const ssm_mamba2_stack *stk,
                                           int64_t *n_layers);
/* Borrow block `layer` (owned by the stack), e.g. to set its parameters. */
SSM_API ssm_status ssm_mamba2_stack_block(ssm_mamba2_stack *stk,
                                          int64_t layer, ssm_mamba2 **blk);
/* RMSNorm weight [Dm] of layer `layer` (0..n_layers-1: layers.{l}.norm
 * before that block; n_layers: norm_f).  count must be Dm; values finite. */
SSM_API ssm_status ssm_mamba2_stack_set_norm(ssm_mamba2_stack *stk,
                                             int64_t layer, const float *w,
                                             int64_t count);
SSM_API ssm_status ssm_mamba2_stack_get_norm(const ssm_mamba2_stack *stk,
                                             int64_t layer, float *w,
                                             int64_t count);

SSM_API ssm_status ssm_mamba2_stack_state_create(ssm_mamba2_stack_state **st,
                                                 const ssm_mamba2_stack *stk,
                                                 int64_t max_batch);
SSM_API void ssm_mamba2_stack_state_destroy(ssm_mamba2_stack_state *st);
SSM_API ssm_status ssm_mamba2_stack_state_reset(ssm_mamba2_stack_state *st);
/* Borrow layer `layer`'s state (owned by the stack state). */
SSM_API ssm_status ssm_mamba2_stack_state_layer(ssm_mamba2_stack_state *st,
                                                int64_t layer,
                                                ssm_mamba2_state **lst);

/* Stack forward over x [batch][L][Dm] into y (y may equal x), st as in
 * ssm_mamba2_forward (NULL: zero state, nothing kept).  Runs slabs of 2048
 * tokens through every layer: memory for one slab, whatever L. */
SSM_API ssm_status ssm_mamba2_stack_forward(const ssm_mamba2_stack *stk,
                                            ssm_mamba2_stack_state *st,
                                            int64_t batch, int64_t L,
                                            const float *x, float *y);
/* One token per sequence through every layer; no allocation. */
SSM_API ssm_status ssm_mamba2_stack_step(const ssm_mamba2_stack *stk,
                                         ssm_mamba2_stack_state *st,
                                         int64_t batch, const float *x,
                                         float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_MAMBA2_H */
