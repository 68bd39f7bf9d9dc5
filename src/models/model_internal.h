/*
 * model_internal.h -- the language model's private structures (src/models).
 */
#ifndef SSM_MODEL_INTERNAL_H
#define SSM_MODEL_INTERNAL_H

#include "internal.h"

/* What config.json says, in one naming-independent form.  Sizes the
 * config leaves out are 0 here and come from the tensor shapes. */
typedef struct ssmi_model_cfg {
    int     hf;             /* Hugging Face keys (else mamba_ssm's) */
    int64_t d_model, n_layer, vocab, vocab_padded;
    int64_t d_state, d_conv, d_inner, dt_rank, expand;   /* 0: from shapes */
    double  eps;
    int     rms_norm, tied, bias, conv_bias;
    /* Mamba-2 (kind 2; kind 1 is Mamba-1): heads of headdim channels,
     * ngroups B/C groups, D per channel, gated-norm mode (ssm_mamba2_norm),
     * dt limit after softplus (dt_max 0: none). */
    int     kind;
    int64_t headdim, ngroups, nheads;
    int     D_hdim, norm_mode;
    double  dt_min, dt_max;
} ssmi_model_cfg;

/* Largest config.json read (a config is a few hundred bytes). */
#define SSMI_CONFIG_MAX ((size_t)1 << 24)

/* Parse n bytes of config.json (need not be NUL-terminated).
 * SSM_ERR_FORMAT for anything malformed, contradictory or unsupported;
 * SSM_ERR_NOMEM. */
ssm_status ssmi_model_config_parse(const char *json, size_t n,
                                   ssmi_model_cfg *cfg);

/* A weight matrix, row-major: float (f) or, for a model loaded with
 * keep_bf16 from BF16 tensors, bfloat16 (h); exactly one is set. */
typedef struct ssmi_wmat {
    const float *f;
    const uint16_t *h;
} ssmi_wmat;

/* The matrix from row r on (rows of ld elements). */
static inline ssmi_wmat ssmi_wmat_rows(ssmi_wmat w, int64_t r, int64_t ld)
{
    ssmi_wmat o = { w.f ? w.f + r * ld : NULL, w.h ? w.h + r * ld : NULL };
    return o;
}

/* One Mamba layer's weights: pointers into the file mapping (F32, or BF16
 * kept) or into owned buffers (converted); NULL for absent biases. */
typedef struct ssmi_layer {
    const float *norm_w, *norm_b;      /* [Dm] */
    ssmi_wmat in_w;                    /* [2Di][Dm] */
    const float *in_b;                 /* [2Di] */
    const float *conv_w, *conv_b;      /* [Di][K], [Di] */
    ssmi_wmat x_w;                     /* [R+2N][Di] */
    ssmi_wmat dt_w;                    /* [Di][R] */
    const float *dt_b;                 /* [Di] */
    const float *A;                    /* [Di][N] = -exp(A_log), owned */
    const float *A2, *amax;            /* its step table (layers/mamba_step.h), in A's block */
    const float *D;                    /* [Di] */
    ssmi_wmat out_w;                   /* [Dm][Di] */
    const float *out_b;                /* [Dm] */
} ssmi_layer;

struct ssm_model {
    ssmi_model_cfg cfg;                /* resolved: every size filled in */
    struct ssm_tensor_file *file;      /* kept open: F32 weights live in it */
    ssmi_wmat emb;                     /* [Vp][Dm] */
    ssmi_wmat head;                    /* [Vp][Dm] (emb when tied) */
    int keep_bf16;                     /* ssm_model_load_options */
    int bf16_dp;                       /* BF16 steps on vdpbf16ps (gemv_bf16dp.h):
                                        * keep_bf16, !bf16_exact, CPU has it */
    const float *normf_w, *normf_b;
    ssmi_layer *layers;                /* Mamba-1 */
    struct ssm_mamba2_stack *m2;       /* Mamba-2: layers, their norms, norm_f */
    void **owned;                      /* converted buffers, freed at destroy */
    int64_t n_owned, cap_owned;
    int64_t bytes_mapped, bytes_owned;
};

/* Sizes that decide whether a state fits a model. */
typedef struct ssmi_state_dims {
    int64_t n_layer, d_model, d_inner, d_state, d_conv, dt_rank;
    int64_t kind, nheads, ngroups;     /* kind 2: Mamba-2 */
} ssmi_state_dims;

struct ssm_model_state {
    ssmi_state_dims dims;
    int64_t max_batch;
    float *conv;      /* [n_layer][maxB][Di][K] conv windows, oldest first: the
                       * last K-1 inputs in [1..K-1]; [0] is never read (the
                       * block's layout, so that the step and prompt kernels of
                       * src/layers serve the model too).  Saved as [Di][K-1]. */
    float *h;         /* [n_layer][maxB][Di][N] */
    int64_t *ntok;    /* [maxB] tokens consumed */
    /* step workspace, [maxB] rows each */
    float *res, *nrm, *x, *z, *u, *dtl, *bm, *cm, *delta, *y, *out;
    /* [maxB][max(Dm, Di, R) rounded up to 32]: a product's activations
     * rounded to BF16 (gemv_bf16dp.h); every state, whatever its model.
     * xh2 (Mamba-1 only), the same size: the one-region step
     * (run_step_team) rounds each product's input in the stage that
     * produces it, alternating xh / xh2 so that a stage never writes the
     * buffer its own products read.  Both zeroed once at creation. */
    uint16_t *xh, *xh2;
    int64_t *slot_tmp;  /* [maxB] */
    /* Mamba-2: one stack state per slot (max batch 1 each), so that any
     * set of slots runs without moving states. */
    struct ssm_mamba2_stack_state **m2;
    /* Mamba-2 batch step: the chosen slots' states in row order and the
     * step's workspace (ssmi_mamba2_stack_slots_ws floats for maxB). */
    struct ssm_mamba2_stack_state **m2_sel;
    float *m2_ws;
};

/* ssm_model_state_save size of one slot; -1 on overflow. */
int64_t ssmi_state_bytes(const ssmi_state_dims *d);
/* The dims of a model's states. */
void ssmi_model_state_dims(const ssm_model *m, ssmi_state_dims *d);

/* Conv inputs a slot's state keeps per channel (K-1: the saved form), and
 * the floats of a channel's window in memory (K). */
static inline int64_t ssmi_kc(const ssmi_state_dims *d) { return d->d_conv - 1; }
static inline int64_t ssmi_kw(const ssmi_state_dims *d) { return d->d_conv; }

/* Slot's conv windows [Di][K] and SSM state [Di][N] of layer. */
static inline float *ssmi_conv_at(const ssm_model_state *s, int64_t layer, int64_t slot)
{
    const ssmi_state_dims *d = &s->dims;
    return s->conv + ((layer * s->max_batch + slot) * d->d_inner) * ssmi_kw(d);
}
static inline float *ssmi_h_at(const ssm_model_state *s, int64_t layer, int64_t slot)
{
    const ssmi_state_dims *d = &s->dims;
    return s->h + ((layer * s->max_batch + slot) * d->d_inner) * d->d_state;
}

#endif /* SSM_MODEL_INTERNAL_H */
