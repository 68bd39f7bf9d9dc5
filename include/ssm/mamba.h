/*
 * ssm/mamba.h -- the Mamba block (Gu and Dao 2023, "Mamba: Linear-Time
 * Sequence Modeling with Selective State Spaces", section 3.4 and figure 3)
 * and a residual stack of blocks with RMSNorm (Mamba's language-model
 * backbone, without embeddings or LM head).  Matrix products of the
 * forward go through CBLAS (sgemm); the steps use libssm's own
 * small-batch kernel up to 16 sequences (sgemm beyond); the recurrence is
 * ssm_selective_scan, and in steps libssm's own one-token kernel.
 *
 * Sizes (ssm_mamba_config, resolved): Dm = d_model, Di = d_inner =
 * expand*Dm, N = d_state, K = d_conv, R = dt_rank.  Batch B, length L.
 *
 * Parameters (row-major, float, as PyTorch's Mamba module stores them):
 *   SSM_MAMBA_IN_PROJ     [2*Di][Dm]   rows 0..Di-1 give x, rows Di.. give z
 *   SSM_MAMBA_CONV_W      [Di][K]      depthwise causal conv, tap K-1 = newest
 *   SSM_MAMBA_CONV_B      [Di]
 *   SSM_MAMBA_X_PROJ      [R+2N][Di]   rows: dt (R) | B (N) | C (N)
 *   SSM_MAMBA_DT_PROJ_W   [Di][R]
 *   SSM_MAMBA_DT_PROJ_B   [Di]         delta_bias of the scan
 *   SSM_MAMBA_A_LOG       [Di][N]      A = -exp(A_log)
 *   SSM_MAMBA_D           [Di]
 *   SSM_MAMBA_OUT_PROJ    [Dm][Di]
 * (no in_proj/x_proj/out_proj bias, as Mamba's defaults bias=False).
 *
 * Block forward, per batch b (x, y: [B][L][Dm], time-major like PyTorch):
 *   xi | z = in_proj x                       (each [Di] per token)
 *   u  = silu(conv_b[d] + sum_k conv_w[d][k] xi[t-(K-1)+k][d])   (zero left pad)
 *   dt_low | Bt | Ct = x_proj u
 *   delta = dt_proj_w dt_low                 (bias added inside the scan)
 *   ys = selective_scan(u, delta, A, Bt, Ct, D, z, delta_bias = dt_proj_b,
 *                       softplus)            (Mamba, algorithm 2)
 *   y  = out_proj ys
 * The scan's channel-major layout [B][Di][L] is produced directly by the
 * GEMMs (in_proj is computed as W x^T and out_proj as ys^T W^T): no
 * explicit transposes; BLAS packs the transposed operands.
 *
 * Streaming state (ssm_mamba_state, for a maximum batch fixed at creation):
 * conv state [maxB][Di][K] (the last K pre-conv inputs xi, oldest first,
 * as Mamba's conv_state; a prompt forward reads the last K-1 of them as
 * its left context) and SSM state h [maxB][Di][N]; calls with batch <= maxB use the
 * first `batch` entries.  The state also holds the step workspace, and the
 * selective step needs none, so the step path never allocates (tested with
 * an allocation counter over 100 steps at 1 and 2 threads).
 *
 * Stack: h = x; for each layer l: h = h + block_l(rmsnorm_l(h)); y =
 * rmsnorm_f(h).  rmsnorm(v) = v / sqrt(mean(v^2) + 1e-5) * weight, over Dm.
 *
 * Determinism.  Everything computed by libssm itself (conv, silu, scan,
 * RMSNorm, residual adds) has one writer per output and a fixed order: bit
 * for bit independent of the OpenMP thread count.  The GEMMs belong to the
 * external BLAS: OpenBLAS (0.3.21 measured) gives results that depend on
 * its thread count in the last bits once a product is large enough to be
 * threaded (M*N*K > 262144), so block and stack outputs are thread-count
 * independent to rounding (a few float ulps), and bit for bit for fixed
 * thread count and BLAS.  Steps of up to 16 sequences use no BLAS: bit
 * for bit independent of the thread count, and the same bits for a
 * sequence alone or within a batch (docs/decode-speed.md).  Forward (GEMM
 * over L tokens) and step (one token) agree to rounding, not bit for bit.
 *
 * BLAS threads.  libssm never calls BLAS inside its own OpenMP regions
 * (the conv, scan and norm loops are separate regions between the GEMMs).
 * Use the OpenMP build of OpenBLAS: then BLAS and libssm share libgomp's
 * one pool and both follow omp_set_num_threads / OMP_NUM_THREADS.  Debian
 * ranks the pthreads build higher (priority 100 vs 95), so select it:
 *   apt-get install libopenblas0-openmp
 *   update-alternatives --set libblas.so.3-x86_64-linux-gnu \
 *       /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
 * With the pthreads build two pools alternate (never nested, so no
 * oversubscription, but idle spinning threads of one pool slow the other):
 * set OPENBLAS_NUM_THREADS or openblas_set_num_threads.  With a sequential
 * BLAS the GEMMs run on one core.  ssm_blas_describe says which is loaded.
 *
 * Thread safety: a block or stack is read-only during forward/step, so any
 * number of threads may run it at once, each with its own state; setting
 * parameters must not overlap with a run.  A state belongs to one thread
 * at a time.  Errors are status codes; the only way out of the process is
 * an OpenMP runtime (or OpenMP BLAS) that cannot create its thread team
 * (libgomp exits then; see ssm/conv.h).
 */
#ifndef SSM_MAMBA_H
#define SSM_MAMBA_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- BLAS information ---- */

typedef enum ssm_blas_threading {
    SSM_BLAS_THREADS_UNKNOWN    = -1,   /* not OpenBLAS (or too old to say) */
    SSM_BLAS_THREADS_SEQUENTIAL = 0,
    SSM_BLAS_THREADS_PTHREADS   = 1,
    SSM_BLAS_THREADS_OPENMP     = 2
} ssm_blas_threading;

/* Threading model of the BLAS loaded in the process (OpenBLAS's
 * openblas_get_parallel, looked up at run time).  Thread-safe. */
SSM_API ssm_blas_threading ssm_blas_threading_model(void);

/* A NUL-terminated description of the loaded BLAS, such as
 * "OpenBLAS 0.3.21 (OpenMP)" or "unknown CBLAS", into buf (size bytes,
 * truncated to fit).  Errors: SSM_ERR_ARG (buf NULL, size < 1). */
SSM_API ssm_status ssm_blas_describe(char *buf, int64_t size);

/* ---- configuration and parameters ---- */

/* Filled by users: start from ssm_mamba_config_init(&cfg), then set the
 * fields.  struct_size lets the struct grow without breaking the ABI: a
 * program compiled against an older header passes its smaller size, and
 * the library takes defaults for the fields it did not know about (the
 * scheme of Win32's cbSize).  A struct_size smaller than this first
 * version or larger than the library's is SSM_ERR_ARG. */
typedef struct ssm_mamba_config {
    uint32_t struct_size; /* sizeof(ssm_mamba_config), set by _init */
    int64_t d_model;   /* Dm >= 1 (required) */
    int64_t d_state;   /* N, 0: 16 */
    int64_t d_conv;    /* K, 0: 4 */
    int64_t expand;    /* Di = expand * Dm, 0: 2 */
    int64_t dt_rank;   /* R, 0: ceil(Dm / 16) */
} ssm_mamba_config;

/* Zeroes *cfg (every size takes its default) and sets struct_size. */
SSM_API void ssm_mamba_config_init(ssm_mamba_config *cfg);

typedef enum ssm_mamba_param {
    SSM_MAMBA_IN_PROJ   = 0,
    SSM_MAMBA_CONV_W    = 1,
    SSM_MAMBA_CONV_B    = 2,
    SSM_MAMBA_X_PROJ    = 3,
    SSM_MAMBA_DT_PROJ_W = 4,
    SSM_MAMBA_DT_PROJ_B = 5,
    SSM_MAMBA_A_LOG     = 6,
    SSM_MAMBA_D         = 7,
    SSM_MAMBA_OUT_PROJ  = 8
} ssm_mamba_param;
#define SSM_MAMBA_NPARAMS 9

typedef struct ssm_mamba ssm_mamba;
typedef struct ssm_mamba_state ssm_mamba_state;

/* The resolved configuration (defaults filled in) of cfg into *out.
 * Errors: SSM_ERR_ARG (NULL, d_model < 1, a field < 0, Di or a parameter
 * size overflowing, or a size above INT_MAX: the BLAS takes int). */
SSM_API ssm_status ssm_mamba_config_resolve(const ssm_mamba_config *cfg,
                                            ssm_mamba_config *out);

/* New block with Mamba's default initialisation drawn from `seed`:
 * in_proj, x_proj, out_proj ~ U(+-1/sqrt(fan_in)) (PyTorch Linear);
 * conv weight and bias ~ U(+-1/sqrt(K)) (PyTorch Conv1d, fan_in = K);
 * dt_proj weight ~ U(+-1/sqrt(R)); dt ~ exp(U(log 1e-3, log 1e-1)),
 * floored at 1e-4, dt_proj bias = softplus^-1(dt) = dt + log(-expm1(-dt));
 * A_log[d][n] = log(n + 1) (S4D-Real); D = 1.
 * Errors: SSM_ERR_ARG (as ssm_mamba_config_resolve, or blk NULL),
 * SSM_ERR_NOMEM (*blk is then NULL). */
SSM_API ssm_status ssm_mamba_create(ssm_mamba **blk,
                                    const ssm_mamba_config *cfg,
                                    uint64_t seed);
SSM_API void ssm_mamba_destroy(ssm_mamba *blk);   /* NULL is a no-op */

/* The resolved configuration of a block.  Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_mamba_get_config(const ssm_mamba *blk,
                                        ssm_mamba_config *cfg);

/* Number of floats of parameter p (see the shape table above).
 * Errors: SSM_ERR_ARG (NULL, unknown p). */
SSM_API ssm_status ssm_mamba_param_count(const ssm_mamba *blk,
                                         ssm_mamba_param p, int64_t *count);

/* Copy parameter p from src (count floats, which must equal
 * ssm_mamba_param_count); every value must be finite, and A_log must keep
 * exp(A_log) finite in float.  On error the block is unchanged.
 * Errors: SSM_ERR_ARG.  Not concurrent with runs of the block. */
SSM_API ssm_status ssm_mamba_set_param(ssm_mamba *blk, ssm_mamba_param p,
                                       const float *src, int64_t count);
/* Copy parameter p into dst (count floats, as above). Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba_get_param(const ssm_mamba *blk, ssm_mamba_param p,
                                       float *dst, int64_t count);

/* Streaming state for up to max_batch sequences, zeroed.
 * Errors: SSM_ERR_ARG (NULL, max_batch < 1, overflow), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mamba_state_create(ssm_mamba_state **st,
                                          const ssm_mamba *blk,
                                          int64_t max_batch);
SSM_API void ssm_mamba_state_destroy(ssm_mamba_state *st);  /* NULL: no-op */
/* Zero conv and SSM states (start of new sequences). Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba_state_reset(ssm_mamba_state *st);

/* Copy the first `batch` sequences' states out of st (get) or into st
 * (set): conv [batch][Di][K] (the last K pre-conv inputs, oldest first) and
 * h [batch][Di][N]; either pointer may be NULL (not copied).  Set values
 * must be finite.  Errors: SSM_ERR_ARG (NULL st, batch < 1 or > max batch,
 * a non-finite value; st then unchanged). */
SSM_API ssm_status ssm_mamba_state_get(const ssm_mamba_state *st,
                                       int64_t batch, float *conv, float *h);
SSM_API ssm_status ssm_mamba_state_set(ssm_mamba_state *st, int64_t batch,
                                       const float *conv, const float *h);
/* SSM_OK if st was made for a block of blk's shape and holds at least
 * `batch` sequences, so that get/set above move blk-sized buffers (code
 * that runs a block's stages itself, e.g. libssm_mpi, checks this before
 * copying a caller's state).  Errors: SSM_ERR_ARG (NULL, another shape,
 * batch < 1 or above st's max batch). */
SSM_API ssm_status ssm_mamba_state_check(const ssm_mamba_state *st,
                                         const ssm_mamba *blk, int64_t batch);

/* Block forward over x [batch][L][Dm] into y [batch][L][Dm] (y may equal
 * x; otherwise they must not overlap).  st NULL: from zero state, nothing
 * kept.  st non-NULL: starts from st's first `batch` entries (zero after
 * create/reset: a prompt) and leaves there the state after the last token,
 * so ssm_mamba_step continues the sequences.  Allocates a workspace of
 * about Lc*(4*Di + R + 2N) + batch*Di*(N + K) floats for the call, Lc =
 * min(L, 2048) (the sequences run one after the other, each in chunks of
 * up to 2048 tokens).  On any error st is unchanged.
 * Errors: SSM_ERR_ARG (NULL, batch or L < 1, L + K - 1 > INT_MAX,
 * overflow, st made for another shape, batch > st's max batch),
 * SSM_ERR_NOMEM.  Reentrant (const block). */
SSM_API ssm_status ssm_mamba_forward(const ssm_mamba *blk, ssm_mamba_state *st,
                                     int64_t batch, int64_t L, const float *x,
                                     float *y);

/* One token per sequence: x, y [batch][Dm] (y may equal x), st updated in
 * place.  No allocation.  Errors: SSM_ERR_ARG (NULL, batch < 1, batch >
 * st's max batch, st made for another shape). */
SSM_API ssm_status ssm_mamba_step(const ssm_mamba *blk, ssm_mamba_state *st,
                                  int64_t batch, const float *x, float *y);

/* ---- residual stack with RMSNorm ---- */

typedef struct ssm_mamba_stack ssm_mamba_stack;
typedef struct ssm_mamba_stack_state ssm_mamba_stack_state;

#define SSM_MAMBA_RMS_EPS 1e-5   /* RMSNorm epsilon, as Mamba's backbone */

/* n_layers blocks of the same config, each initialised as ssm_mamba_create
 * with a seed drawn from `seed`, then out_proj scaled by 1/sqrt(n_layers)
 * (Mamba's rescale_prenorm_residual); all norm weights 1.
 * Errors: SSM_ERR_ARG (NULL, bad cfg, n_layers < 1), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mamba_stack_create(ssm_mamba_stack **stk,
                                          const ssm_mamba_config *cfg,
                                          int64_t n_layers, uint64_t seed);
SSM_API void ssm_mamba_stack_destroy(ssm_mamba_stack *stk); /* NULL: no-op */

/* Number of layers.  Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_mamba_stack_layers(const ssm_mamba_stack *stk,
                                          int64_t *n_layers);
/* Borrow block `layer` (0 <= layer < n_layers), owned by the stack, e.g.
 * to set its parameters.  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba_stack_block(ssm_mamba_stack *stk, int64_t layer,
                                         ssm_mamba **blk);
/* RMSNorm weight [Dm] of layer `layer` (0..n_layers-1: the norm before
 * that block; n_layers: the final norm).  count must be Dm; set values
 * must be finite.  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_mamba_stack_set_norm(ssm_mamba_stack *stk,
                                            int64_t layer, const float *w,
                                            int64_t count);
SSM_API ssm_status ssm_mamba_stack_get_norm(const ssm_mamba_stack *stk,
                                            int64_t layer, float *w,
                                            int64_t count);

/* State of every layer for up to max_batch sequences, zeroed, plus the
 * step workspace.  Errors: SSM_ERR_ARG, SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mamba_stack_state_create(ssm_mamba_stack_state **st,
                                                const ssm_mamba_stack *stk,
                                                int64_t max_batch);
SSM_API void ssm_mamba_stack_state_destroy(ssm_mamba_stack_state *st); /* NULL: no-op */
/* Zero every layer's conv and SSM states.  Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_mamba_stack_state_reset(ssm_mamba_stack_state *st);

/* Borrow layer `layer`'s block state (0 <= layer < n_layers), owned by the
 * stack state: e.g. to fill a stack state layer by layer from a prefill
 * computed elsewhere (libssm_mpi), or to read one layer's state with
 * ssm_mamba_state_get.  Errors: SSM_ERR_ARG (NULL, layer out of range;
 * *layer_state then NULL). */
SSM_API ssm_status ssm_mamba_stack_state_layer(ssm_mamba_stack_state *st,
                                               int64_t layer,
                                               ssm_mamba_state **layer_state);

/* Stack forward over x [batch][L][Dm] into y [batch][L][Dm] (y may equal
 * x), st as in ssm_mamba_forward.  Allocates one workspace for the call
 * (and each layer's scan its tiles).  If SSM_ERR_NOMEM comes from a later
 * layer's scan, the states of the layers before it have advanced: reset st
 * (ssm_mamba_stack_state_reset) before using it again.
 * Errors: as ssm_mamba_forward. */
SSM_API ssm_status ssm_mamba_stack_forward(const ssm_mamba_stack *stk,
                                           ssm_mamba_stack_state *st, int64_t batch,
                                           int64_t L, const float *x,
                                           float *y);

/* One token per sequence through every layer: x, y [batch][Dm] (y may
 * equal x).  No allocation.  Errors: as ssm_mamba_step. */
SSM_API ssm_status ssm_mamba_stack_step(const ssm_mamba_stack *stk,
                                        ssm_mamba_stack_state *st,
                                        int64_t batch, const float *x,
                                        float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_MAMBA_H */
