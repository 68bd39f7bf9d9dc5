/*
 * ssm/model.h -- Mamba language models loaded from checkpoint directories
 * as they are published (src/models): the mamba_ssm package's
 * MambaLMHeadModel (state-spaces/mamba-130m ... 2.8b) and Hugging Face
 * transformers' MambaForCausalLM (state-spaces/mamba-130m-hf ...), with no
 * conversion step.  Token sampling: ssm/sample.h.
 *
 * The network (Gu and Dao 2023, section 3.4, figure 3; mamba_ssm's
 * mixer_seq_simple.py), sizes Dm = d_model, Di = d_inner, N = d_state,
 * K = d_conv, R = dt_rank, V = vocab, Vp = embedding rows (V rounded up to
 * pad_vocab_size_multiple for mamba_ssm checkpoints, V for Hugging Face):
 *   h = E[token]                                   E: [Vp][Dm]
 *   per layer l: h = h + mixer_l(norm_l(h))        (pre-norm residual)
 *   logits = W_head norm_f(h), rows 0..V-1 only    W_head: [Vp][Dm], or E when tied
 * norm: RMSNorm x / sqrt(mean(x^2) + eps) * w (eps = 1e-5, or the Hugging
 * Face config's layer_norm_epsilon), or LayerNorm (x - mean) / sqrt(var +
 * eps) * w + b for mamba_ssm configs with "rms_norm": false.
 * mixer: the Mamba block of ssm/mamba.h (in_proj, causal depthwise conv,
 * silu, x_proj, dt_proj, selective scan with softplus and A = -exp(A_log),
 * D skip, silu(z) gate, out_proj), with the in_proj/out_proj biases of
 * "use_bias"/"bias" configs and without conv bias when "use_conv_bias"/
 * "conv_bias" is false.  Everything runs in float; residual_in_fp32 is
 * therefore always honoured.
 *
 * Weights.  F32 tensors are used in place inside the file's memory mapping
 * (no copy; the mapping lives as long as the model); F16 and BF16 tensors
 * are converted to float once at load (BF16 weight matrices may stay BF16:
 * ssm_model_load_ex, keep_bf16).  Loading checks every shape against
 * the config and every weight for finiteness (which reads each page once).
 *
 * Threads.  A model is read-only after load: any number of threads may run
 * it at once, each with its own ssm_model_state.  A state belongs to one
 * thread at a time.  OpenMP regions (conv, norms, scan) have one writer per
 * output and a fixed order; the projections go through CBLAS (see
 * ssm/mamba.h on BLAS threads and determinism), except in decoding steps,
 * whose products (src/layers/gemv.h) give the same bits for any thread
 * count.
 */
#ifndef SSM_MODEL_H
#define SSM_MODEL_H

#include <stddef.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_model ssm_model;
typedef struct ssm_model_state ssm_model_state;

/* Load a Mamba language model.  path: a directory holding config.json and
 * the weights: model.safetensors; or model.safetensors.index.json with its
 * shards; or pytorch_model.bin (looked for in that order).  config.json in
 * either naming:
 *   mamba_ssm MambaConfig: d_model, n_layer, vocab_size, ssm_cfg {d_state,
 *     d_conv, expand, dt_rank ("auto" or int), conv_bias, bias, layer
 *     ("Mamba1")}, rms_norm, residual_in_fp32, pad_vocab_size_multiple,
 *     tie_embeddings (d_intermediate must be 0, attn_layer_idx empty);
 *   Hugging Face MambaConfig: hidden_size, num_hidden_layers, vocab_size,
 *     state_size, expand, conv_kernel, time_step_rank, intermediate_size,
 *     layer_norm_epsilon, use_bias, use_conv_bias, tie_word_embeddings.
 * Sizes the config leaves out (d_state, d_conv, dt_rank, d_inner) are taken
 * from the tensor shapes; every tensor shape is checked against the config.
 * Tensor names: backbone.embedding.weight (mamba_ssm) or
 * backbone.embeddings.weight (Hugging Face); backbone.layers.N.norm.{weight,
 * bias}; backbone.layers.N.mixer.{in_proj.weight, in_proj.bias,
 * conv1d.weight [Di][1][K], conv1d.bias, x_proj.weight, dt_proj.weight,
 * dt_proj.bias, A_log, D, out_proj.weight, out_proj.bias};
 * backbone.norm_f.{weight, bias}; lm_head.weight (absent for tied
 * embeddings: the embedding is used).
 * Mamba-2 language models too (Dao and Gu 2024; layers run by the
 * ssm_mamba2_stack of ssm/mamba2.h): mamba_ssm configs with ssm_cfg layer
 * "Mamba2" {d_state, d_conv, expand, headdim, ngroups, d_ssm (= d_inner
 * only), rmsnorm, norm_before_gate, D_has_hdim, dt_limit, conv_bias, bias
 * (false only), chunk_size}, and Hugging Face Mamba2Config (model_type
 * "mamba2": num_heads, head_dim, n_groups, state_size, expand, conv_kernel,
 * time_step_limit, use_bias (false only), use_conv_bias, ...); tensors
 * backbone.layers.N.mixer.{in_proj.weight, conv1d.weight [Dc][1][K],
 * conv1d.bias, dt_bias, A_log, D, norm.weight, out_proj.weight}; norm eps
 * 1e-5 only.  Every other call of this header works for both kinds (see
 * docs/models.md).
 * Errors: SSM_ERR_ARG (NULL), SSM_ERR_IO (cannot open/read), SSM_ERR_FORMAT
 * (anything malformed, missing, mis-shaped, contradictory, non-finite or
 * unsupported, such as a hybrid-attention config; a pickle that
 * asks for anything but tensor storage is refused, never executed),
 * SSM_ERR_NOMEM.  *model is NULL on error. */
SSM_API ssm_status ssm_model_load(ssm_model **model, const char *path);
SSM_API void       ssm_model_destroy(ssm_model *model);      /* NULL: no-op */
/* Load options.  struct_size as in ssm_mamba_config: set by _init, so a
 * program built against an older header keeps working. */
typedef struct ssm_model_load_options {
    uint32_t struct_size;   /* sizeof(ssm_model_load_options), set by _init */
    /* 1: the weight matrices that a checkpoint stores as BF16 stay BF16 in
     * memory (half the bytes a decoding step reads): the embedding / LM
     * head and, for Mamba-1 models, every layer's in_proj, x_proj, dt_proj
     * and out_proj.  Other tensors, F32/F16 matrices and Mamba-2 layers
     * are float as with ssm_model_load.  How the products multiply them:
     * see bf16_exact.  0: as ssm_model_load. */
    int keep_bf16;
    /* With keep_bf16, how the products multiply BF16 weights
     * (docs/bf16.md):
     * 0 (default): on CPUs with AVX512_BF16 (AMD Zen 4/5, Intel Cooper
     *   Lake, Sapphire Rapids and later) BF16 arithmetic: the products'
     *   inputs (activations) are rounded to BF16 and the sums run in
     *   float; decoding steps with vdpbf16ps, prompt chunks with oneDNN's
     *   bf16 matmul when libssm was built with it (else as 1).  Logits
     *   within about 2e-3 relative of the float model (normwise; 2^-8 per
     *   rounded input), the same bits for any thread count, and a
     *   sequence's step the same alone or in a batch.  Elsewhere as 1.
     * 1: every weight widened exactly to float, float sums: decoding
     *   steps give the logits of the model loaded as float from the same
     *   file bit for bit (CPUs with FMA), prompts to float rounding;
     *   slower.
     * Added after keep_bf16: a struct_size that ends at keep_bf16 (an
     * older program) means 0. */
    int bf16_exact;
} ssm_model_load_options;
/* Zeroes *opt and sets struct_size. */
SSM_API void ssm_model_load_options_init(ssm_model_load_options *opt);
/* ssm_model_load with options (NULL: the defaults, as ssm_model_load).
 * Errors: as ssm_model_load, and SSM_ERR_ARG for a bad struct_size (neither
 * the current sizeof nor the older layout ending at keep_bf16), or
 * keep_bf16 or bf16_exact other than 0 or 1. */
SSM_API ssm_status ssm_model_load_ex(ssm_model **model, const char *path,
                                     const ssm_model_load_options *opt);

/* vocab: the number of token ids the checkpoint's config declares
 * (vocab_size; mamba_ssm pads the embedding rows beyond it, Hugging Face
 * configs already count the padded rows); every logits row has exactly
 * vocab entries.  model must not be NULL; any output may be NULL.
 * Errors: SSM_ERR_ARG (model NULL). */
SSM_API ssm_status ssm_model_dims(const ssm_model *model, int64_t *n_layer,
                                  int64_t *d_model, int64_t *vocab);

/* Everything about a loaded model.  struct_size as in ssm_mamba_config. */
typedef struct ssm_model_info {
    uint32_t struct_size;   /* sizeof(ssm_model_info), set by _init */
    int64_t n_layer, d_model, d_inner, d_state, d_conv, dt_rank;
    int64_t vocab;          /* token ids: logits row length */
    int64_t vocab_padded;   /* embedding rows */
    double  norm_eps;
    int     rms_norm;       /* 1: RMSNorm, 0: LayerNorm */
    int     tied;           /* LM head = embedding */
    int     in_out_bias;    /* in_proj/out_proj biases present */
    int     conv_bias;      /* conv1d bias present */
    int     hf_names;       /* 1: Hugging Face naming, 0: mamba_ssm */
    int64_t bytes_mapped;   /* weight bytes used in place from the file */
    int64_t bytes_owned;    /* weight bytes converted or computed at load */
    int64_t state_bytes;    /* ssm_model_state_save size of one sequence */
} ssm_model_info;

/* Zeroes *info and sets struct_size. */
SSM_API void ssm_model_info_init(ssm_model_info *info);
/* Errors: SSM_ERR_ARG (NULL, bad struct_size). */
SSM_API ssm_status ssm_model_get_info(const ssm_model *model,
                                      ssm_model_info *info);

/* ---- read-only views of the loaded weights ---- */

/* Pointers into a loaded model's weights (the file mapping or the
 * buffers converted at load), valid while the model lives; read-only.
 * For programs that run the network's stages themselves, e.g. libssm_mpi's
 * prefill of one prompt spread over MPI ranks.  Layouts as the checkpoint
 * tensors (see ssm_model_load), float, row-major; NULL for an absent bias.
 * struct_size as in ssm_model_info. */
typedef struct ssm_model_weights {
    uint32_t struct_size;       /* sizeof(ssm_model_weights), set by _init */
    int kind;                   /* 1: Mamba-1 layers, 2: Mamba-2 layers */
    const float *emb;           /* [vocab_padded][Dm] */
    const float *head;          /* [vocab_padded][Dm] (== emb when tied) */
    const float *norm_f_w;      /* [Dm] (Mamba-2: inside mamba2) */
    const float *norm_f_b;      /* [Dm] LayerNorm bias, or NULL */
    /* kind 2: the layers, their RMSNorms and norm_f (ssm/mamba2.h);
     * read-only: run it, never set its parameters.  NULL for kind 1. */
    const struct ssm_mamba2_stack *mamba2;
} ssm_model_weights;

/* One Mamba-1 layer (kind 1), sizes of ssm_model_info. */
typedef struct ssm_model_layer_weights {
    uint32_t struct_size;       /* sizeof(ssm_model_layer_weights), set by _init */
    const float *norm_w, *norm_b;   /* [Dm], [Dm] or NULL (RMSNorm) */
    const float *in_w, *in_b;       /* [2 Di][Dm] (x rows, then z), [2 Di] or NULL */
    const float *conv_w, *conv_b;   /* [Di][K], [Di] or NULL */
    const float *x_w;               /* [R + 2N][Di] (dt_low, B, C rows) */
    const float *dt_w, *dt_b;       /* [Di][R], [Di] */
    const float *A;                 /* [Di][N], = -exp(A_log), computed at load */
    const float *D;                 /* [Di] */
    const float *out_w, *out_b;     /* [Dm][Di], [Dm] or NULL */
} ssm_model_layer_weights;

/* Zero *w and set struct_size.  NULL: no-op. */
SSM_API void ssm_model_weights_init(ssm_model_weights *w);
SSM_API void ssm_model_layer_weights_init(ssm_model_layer_weights *w);
/* Errors: SSM_ERR_ARG (NULL, bad struct_size; for layer weights: layer
 * outside [0, n_layer), or a Mamba-2 model; a model loaded with keep_bf16,
 * whose matrices are bfloat16 and have no float view). */
SSM_API ssm_status ssm_model_get_weights(const ssm_model *model,
                                         ssm_model_weights *w);
SSM_API ssm_status ssm_model_get_layer_weights(const ssm_model *model,
                                               int64_t layer,
                                               ssm_model_layer_weights *w);

/* ---- recurrent state: one slot per sequence ---- */

/* Recurrent state (conv and SSM state of every layer) for up to max_batch
 * sequences ("slots" 0..max_batch-1), plus the workspace of one-token
 * steps so that decoding never allocates; a new or reset state is the
 * empty prefix.  A state works with any model of the same sizes.
 * Errors: SSM_ERR_ARG (NULL, max_batch < 1, overflow), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_model_state_create(ssm_model_state **state,
                                          const ssm_model *model,
                                          int64_t max_batch);
SSM_API void       ssm_model_state_destroy(ssm_model_state *state); /* NULL: no-op */
/* Every slot back to the empty prefix.  Errors: SSM_ERR_ARG (NULL). */
SSM_API ssm_status ssm_model_state_reset(ssm_model_state *state);
/* One slot back to the empty prefix (a new request in a served batch).
 * Errors: SSM_ERR_ARG (NULL, slot out of range). */
SSM_API ssm_status ssm_model_state_reset_slot(ssm_model_state *state,
                                              int64_t slot);
/* Number of tokens slot has consumed since create/reset.
 * Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_model_state_tokens(const ssm_model_state *state,
                                          int64_t slot, int64_t *n_tokens);
/* Copy src's sequence src_slot into dst's dst_slot (dst may be src; the
 * same slot is a no-op): dst_slot then continues exactly as src_slot would
 * (a shared prompt forked into several sequences).  Errors: SSM_ERR_ARG
 * (NULL, slots out of range, states of different model sizes). */
SSM_API ssm_status ssm_model_state_copy(ssm_model_state *dst, int64_t dst_slot,
                                        const ssm_model_state *src,
                                        int64_t src_slot);

/* Serialize slot's state (prompt caching).  Format, little-endian:
 *   "SSMSTATE" | u32 version (1) | u32 kind (1: Mamba-1) | u64 n_layer,
 *   d_model, d_inner, d_state, d_conv, n_tokens | per layer: conv state
 *   [Di][K-1] floats (the last K-1 conv inputs, oldest first), SSM state
 *   [Di][N] floats | u64 FNV-1a hash of every byte before it.
 * Writes min(cap, size) bytes of buf (buf may be NULL when cap is 0) and
 * sets *nbytes to the full size (as snprintf; ssm_model_info.state_bytes).
 * Errors: SSM_ERR_ARG (NULL state/nbytes, slot out of range, cap < 0). */
SSM_API ssm_status ssm_model_state_save(const ssm_model_state *state,
                                        int64_t slot, void *buf, int64_t cap,
                                        int64_t *nbytes);
/* Restore slot from nbytes of buf made by ssm_model_state_save.  The
 * header, sizes, hash and every value (finite) are checked before the slot
 * changes.  Errors: SSM_ERR_ARG (NULL, slot out of range, nbytes < 0),
 * SSM_ERR_FORMAT (not a state, another version, another model's sizes,
 * truncated, corrupted). */
SSM_API ssm_status ssm_model_state_restore(ssm_model_state *state,
                                           int64_t slot, const void *buf,
                                           int64_t nbytes);
/* The same through a file (written to a temporary beside path, then
 * renamed).  Errors: as above, and SSM_ERR_IO, SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_model_state_save_file(const ssm_model_state *state,
                                             int64_t slot, const char *path);
SSM_API ssm_status ssm_model_state_restore_file(ssm_model_state *state,
                                                int64_t slot, const char *path);

/* ---- running ---- */

/* Accuracy: the numbers of the PyTorch model (fp32 weights): logits within
 * 1e-4 relative (normwise) of mamba_ssm's MambaLMHeadModel for the same
 * checkpoint and tokens (tests: 8.3e-8 against a torch-made fixture, 1.8e-7
 * for Mamba-2); a prompt fed at once or in pieces agrees to rounding. */
/* Feed len tokens of each of batch sequences (tokens [batch][len], batch <=
 * max_batch, slots 0..batch-1) after what the state already holds; the
 * state then holds the longer prefix.  logits [batch][vocab]: the
 * next-token logits after each sequence's last token, or NULL.  A token id
 * outside [0, vocab) is SSM_ERR_ARG (checked before anything changes).
 * len == 1 is the decoding step: no allocation.  len > 1 runs each
 * sequence in chunks of at most 2048 tokens through the whole network, so
 * the workspace (allocated for the call) does not grow with len.
 * Errors: SSM_ERR_ARG (NULL, sizes < 1, batch > max_batch, a state of
 * another model size, bad token), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_model_forward(const ssm_model *model,
                                     ssm_model_state *state, int64_t batch,
                                     int64_t len, const int32_t *tokens,
                                     float *logits);

/* Continuous batching: feed len tokens to each of n distinct slots (any
 * subset of the state's slots, in any order; tokens [n][len], logits
 * [n][vocab] or NULL); the other slots are untouched.  Sequences of
 * different lengths advance together without padding: prefill a new
 * request alone (n = 1, its prompt length) into a free slot, then step
 * every live slot one token at a time (len = 1: no allocation).
 * Errors: as ssm_model_forward, and SSM_ERR_ARG for a slot out of range
 * or listed twice. */
SSM_API ssm_status ssm_model_forward_slots(const ssm_model *model,
                                           ssm_model_state *state, int64_t n,
                                           const int64_t *slots, int64_t len,
                                           const int32_t *tokens,
                                           float *logits);

/* As ssm_model_forward, but logits [batch][len][vocab] holds the
 * next-token logits after every position (perplexity, scoring). */
SSM_API ssm_status ssm_model_forward_all(const ssm_model *model,
                                         ssm_model_state *state, int64_t batch,
                                         int64_t len, const int32_t *tokens,
                                         float *logits);

#ifdef __cplusplus
}
#endif

#endif /* SSM_MODEL_H */
