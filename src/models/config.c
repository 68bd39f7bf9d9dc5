/*
 * config.c -- config.json of Mamba language models in both namings
 * (mamba_ssm's MambaConfig, Hugging Face's MambaConfig), parsed with cJSON.
 *
 * cJSON (Debian's libcjson) was chosen for the project because it keeps
 * duplicate keys visible (we refuse them: two values for one size is a
 * contradiction) and parses with an explicit length.  Unknown keys are
 * ignored (Hugging Face configs carry many generation and initialisation
 * settings); known keys of the wrong type or out of range are
 * SSM_ERR_FORMAT.
 */
#include <string.h>
#include <math.h>
#include <cjson/cJSON.h>

#include "models/model_internal.h"
#include "io/io_internal.h"

/* Largest size accepted from a config: BLAS takes int. */
#define CFG_INT_MAX ((int64_t)1 << 30)

/* No key appears twice in object o (cJSON keeps both). */
static int keys_unique(const cJSON *o)
{
    for (const cJSON *a = o->child; a; a = a->next) {
        if (!a->string) return 0;
        for (const cJSON *b = a->next; b; b = b->next)
            if (b->string && !strcmp(a->string, b->string)) return 0;
    }
    return 1;
}

/* Integer key: absent leaves *v (returns 1); present must be an integral
 * number in [lo, hi]. */
static int get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi,
                   int64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 1;
    if (!cJSON_IsNumber(it)) return 0;
    double d = it->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)lo || d > (double)hi)
        return 0;
    *v = (int64_t)d;
    return 1;
}

/* "auto" sets *v = -1 (ceil(d_model / 16), Mamba's default), null leaves
 * it; otherwise an integer in [1, CFG_INT_MAX]. */
static int get_rank(const cJSON *o, const char *key, int64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return 1;
    if (cJSON_IsString(it)) {
        if (strcmp(it->valuestring, "auto")) return 0;
        *v = -1;
        return 1;
    }
    return get_int(o, key, 1, CFG_INT_MAX, v);
}

static int get_bool(const cJSON *o, const char *key, int *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 1;
    if (!cJSON_IsBool(it)) return 0;
    *v = cJSON_IsTrue(it) ? 1 : 0;
    return 1;
}

static int get_double(const cJSON *o, const char *key, double lo, double hi,
                      double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 1;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
        !(it->valuedouble > lo) || !(it->valuedouble < hi))
        return 0;
    *v = it->valuedouble;
    return 1;
}

/* A [lo, hi] pair of numbers (Mamba-2's dt_limit / time_step_limit):
 * absent leaves *lo, *hi.  A bound too large for a float means none. */
static int get_limit(const cJSON *o, const char *key, double *lo, double *hi)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return 1;
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2) return 0;
    const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) return 0;
    double x = a->valuedouble, y = b->valuedouble;
    if (isnan(x) || isnan(y) || x < 0.0 || x > y || x > 3.0e38) return 0;
    *lo = x;
    *hi = y > 3.0e38 ? 0.0 : y;     /* 0: no upper limit */
    return 1;
}

/* mamba_ssm's ssm_cfg with layer "Mamba2": the keyword arguments of
 * modules/mamba2.py's Mamba2, with its defaults (d_state 128, d_conv 4,
 * expand 2, headdim 64, ngroups 1, rmsnorm True, norm_before_gate False,
 * D_has_hdim False, dt_limit (0, inf), bias False, conv_bias True). */
static int parse_mamba2_ssm_cfg(const cJSON *s, ssmi_model_cfg *c)
{
    int64_t d_ssm = 0, chunk = 256;
    int rmsnorm = 1, nbg = 0;
    c->kind = 2;
    c->d_state = 128; c->d_conv = 4; c->expand = 2; c->headdim = 64; c->ngroups = 1;
    if (!get_int(s, "d_state", 1, CFG_INT_MAX, &c->d_state) ||
        !get_int(s, "d_conv", 1, 64, &c->d_conv) ||
        !get_int(s, "expand", 1, CFG_INT_MAX, &c->expand) ||
        !get_int(s, "headdim", 1, CFG_INT_MAX, &c->headdim) ||
        !get_int(s, "ngroups", 1, CFG_INT_MAX, &c->ngroups) ||
        !get_int(s, "d_ssm", 1, CFG_INT_MAX, &d_ssm) ||
        !get_int(s, "chunk_size", 1, CFG_INT_MAX, &chunk) ||
        !get_bool(s, "rmsnorm", &rmsnorm) ||
        !get_bool(s, "norm_before_gate", &nbg) ||
        !get_bool(s, "D_has_hdim", &c->D_hdim) ||
        !get_bool(s, "bias", &c->bias) ||
        !get_bool(s, "conv_bias", &c->conv_bias) ||
        !get_limit(s, "dt_limit", &c->dt_min, &c->dt_max))
        return 0;
    /* d_ssm < d_inner leaves channels outside the SSM (an MLP-like
     * bypass) that the Mamba-2 block does not have. */
    if (d_ssm && d_ssm != c->expand * c->d_model) return 0;
    c->norm_mode = !rmsnorm ? SSM_MAMBA2_NORM_NONE
                 : nbg ? SSM_MAMBA2_NORM_BEFORE_GATE : SSM_MAMBA2_NORM_GATED;
    return 1;
}

/* mamba_ssm: mamba_ssm/models/config_mamba.py (MambaConfig) as read by
 * mixer_seq_simple.py (MambaLMHeadModel) and modules/mamba_simple.py. */
static int parse_mamba_ssm(const cJSON *root, ssmi_model_cfg *c)
{
    int64_t pad = 8, d_inter = 0, hidden = 0;
    int fp32 = 1;
    c->hf = 0;
    c->rms_norm = 1; c->tied = 1; c->bias = 0; c->conv_bias = 1;
    c->eps = 1e-5;
    if (!get_int(root, "d_model", 1, CFG_INT_MAX, &c->d_model) ||
        !get_int(root, "n_layer", 1, CFG_INT_MAX, &c->n_layer) ||
        !get_int(root, "vocab_size", 1, CFG_INT_MAX, &c->vocab) ||
        !get_int(root, "pad_vocab_size_multiple", 1, CFG_INT_MAX, &pad) ||
        !get_int(root, "d_intermediate", 0, CFG_INT_MAX, &d_inter) ||
        !get_int(root, "hidden_size", 1, CFG_INT_MAX, &hidden) ||
        !get_bool(root, "rms_norm", &c->rms_norm) ||
        !get_bool(root, "residual_in_fp32", &fp32) ||
        !get_bool(root, "tie_embeddings", &c->tied) ||
        !get_double(root, "norm_epsilon", 0.0, 1.0, &c->eps))
        return 0;
    if (!c->d_model || !c->n_layer || !c->vocab) return 0;   /* required */
    if (hidden && hidden != c->d_model) return 0;
    /* d_intermediate > 0 puts an MLP after every mixer (Mamba-2 era
     * configs); attention layers make a hybrid: neither is Mamba-1. */
    if (d_inter != 0) return 0;
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(root, "attn_layer_idx");
    if (attn && !cJSON_IsNull(attn) &&
        !(cJSON_IsArray(attn) && cJSON_GetArraySize(attn) == 0))
        return 0;
    /* The embedding rows: vocab rounded up to the multiple
     * (MambaLMHeadModel.__init__). */
    int64_t vp = (c->vocab + pad - 1) / pad * pad;
    if (vp > CFG_INT_MAX) return 0;
    c->vocab_padded = vp;

    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "ssm_cfg");
    if (s && !cJSON_IsNull(s)) {
        if (!cJSON_IsObject(s) || !keys_unique(s)) return 0;
        const cJSON *layer = cJSON_GetObjectItemCaseSensitive(s, "layer");
        if (layer && cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba2"))
            return parse_mamba2_ssm_cfg(s, c);
        if (layer && !(cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba1")))
            return 0;   /* anything else: not this loader */
        if (!get_int(s, "d_state", 1, CFG_INT_MAX, &c->d_state) ||
            !get_int(s, "d_conv", 1, CFG_INT_MAX, &c->d_conv) ||
            !get_int(s, "expand", 1, CFG_INT_MAX, &c->expand) ||
            !get_rank(s, "dt_rank", &c->dt_rank) ||
            !get_bool(s, "conv_bias", &c->conv_bias) ||
            !get_bool(s, "bias", &c->bias))
            return 0;
    }
    return 1;
}

/* Hugging Face: transformers' MambaConfig (configuration_mamba.py) as read
 * by MambaForCausalLM (modeling_mamba.py). */
static int parse_hf2(const cJSON *root, ssmi_model_cfg *c);

static int parse_hf(const cJSON *root, ssmi_model_cfg *c)
{
    const cJSON *mt0 = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt0 && cJSON_IsString(mt0) && !strcmp(mt0->valuestring, "mamba2"))
        return parse_hf2(root, c);
    int fp32 = 1;
    c->hf = 1;
    c->rms_norm = 1; c->tied = 1; c->bias = 0; c->conv_bias = 1;
    c->eps = 1e-5;
    if (!get_int(root, "hidden_size", 1, CFG_INT_MAX, &c->d_model) ||
        !get_int(root, "num_hidden_layers", 1, CFG_INT_MAX, &c->n_layer) ||
        !get_int(root, "vocab_size", 1, CFG_INT_MAX, &c->vocab) ||
        !get_int(root, "state_size", 1, CFG_INT_MAX, &c->d_state) ||
        !get_int(root, "conv_kernel", 1, CFG_INT_MAX, &c->d_conv) ||
        !get_int(root, "expand", 1, CFG_INT_MAX, &c->expand) ||
        !get_int(root, "intermediate_size", 1, CFG_INT_MAX, &c->d_inner) ||
        !get_rank(root, "time_step_rank", &c->dt_rank) ||
        !get_double(root, "layer_norm_epsilon", 0.0, 1.0, &c->eps) ||
        !get_bool(root, "use_bias", &c->bias) ||
        !get_bool(root, "use_conv_bias", &c->conv_bias) ||
        !get_bool(root, "tie_word_embeddings", &c->tied) ||
        !get_bool(root, "residual_in_fp32", &fp32))
        return 0;
    if (!c->d_model || !c->n_layer || !c->vocab) return 0;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && !strcmp(mt->valuestring, "mamba")))
        return 0;   /* mamba2, falcon_mamba, ...: not this loader */
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return 0;
    c->vocab_padded = c->vocab;    /* HF's vocab_size counts every row */
    return 1;
}

/* Hugging Face: transformers' Mamba2Config (configuration_mamba2.py) as
 * read by Mamba2ForCausalLM (modeling_mamba2.py), with its defaults.
 * Mamba2Mixer's gated norm computes rmsnorm(y * silu(z)) whatever
 * norm_before_gate says (MambaRMSNormGated), so the key is read and
 * checked but the norm is always SSM_MAMBA2_NORM_GATED, as there; the
 * gated norm's eps is layer_norm_epsilon. */
static int parse_hf2(const cJSON *root, ssmi_model_cfg *c)
{
    int fp32 = 1, rms = 1, nbg = 1;
    int64_t chunk = 256, inter = 0;
    c->hf = 1;
    c->kind = 2;
    c->rms_norm = 1; c->tied = 0; c->bias = 0; c->conv_bias = 1;
    c->eps = 1e-5;
    c->nheads = 128; c->headdim = 64; c->ngroups = 8; c->d_state = 128;
    c->expand = 2; c->d_conv = 4;
    if (!get_int(root, "hidden_size", 1, CFG_INT_MAX, &c->d_model) ||
        !get_int(root, "num_hidden_layers", 1, CFG_INT_MAX, &c->n_layer) ||
        !get_int(root, "vocab_size", 1, CFG_INT_MAX, &c->vocab) ||
        !get_int(root, "num_heads", 1, CFG_INT_MAX, &c->nheads) ||
        !get_int(root, "head_dim", 1, CFG_INT_MAX, &c->headdim) ||
        !get_int(root, "n_groups", 1, CFG_INT_MAX, &c->ngroups) ||
        !get_int(root, "state_size", 1, CFG_INT_MAX, &c->d_state) ||
        !get_int(root, "expand", 1, CFG_INT_MAX, &c->expand) ||
        !get_int(root, "conv_kernel", 1, 64, &c->d_conv) ||
        !get_int(root, "chunk_size", 1, CFG_INT_MAX, &chunk) ||
        !get_int(root, "intermediate_size", 1, CFG_INT_MAX, &inter) ||
        !get_limit(root, "time_step_limit", &c->dt_min, &c->dt_max) ||
        !get_double(root, "layer_norm_epsilon", 0.0, 1.0, &c->eps) ||
        !get_bool(root, "rms_norm", &rms) ||
        !get_bool(root, "norm_before_gate", &nbg) ||
        !get_bool(root, "use_bias", &c->bias) ||
        !get_bool(root, "use_conv_bias", &c->conv_bias) ||
        !get_bool(root, "tie_word_embeddings", &c->tied) ||
        !get_bool(root, "residual_in_fp32", &fp32))
        return 0;
    if (!c->d_model || !c->n_layer || !c->vocab) return 0;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return 0;
    /* The heads must tile d_inner exactly (Mamba2Mixer would break). */
    if (c->nheads * c->headdim != c->expand * c->d_model) return 0;
    if (inter && inter != c->expand * c->d_model) return 0;
    c->norm_mode = SSM_MAMBA2_NORM_GATED;
    c->vocab_padded = c->vocab;
    return 1;
}

ssm_status ssmi_model_config_parse(const char *json, size_t n,
                                   ssmi_model_cfg *cfg)
{
    if (!json || !cfg) return SSM_FAIL(SSM_ERR_ARG);
    memset(cfg, 0, sizeof *cfg);
    if (n == 0 || n > SSMI_CONFIG_MAX) return SSM_FAIL(SSM_ERR_FORMAT);
    const char *end = NULL;
    /* Python's json.dump writes float('inf') as the bare word Infinity
     * (Hugging Face Mamba-2 configs: "time_step_limit": [0.0, Infinity]),
     * which is not JSON and which cJSON refuses.  Outside strings it is
     * rewritten, in a copy and in place, as 1e999 (which strtod reads as
     * +inf) padded to the same length; NaN stays an error. */
    char *txt = ssmi_alloc(n, 1);
    if (!txt) return SSM_FAIL(SSM_ERR_NOMEM);
    memcpy(txt, json, n);
    for (size_t i = 0, in_str = 0; i < n; i++) {
        if (in_str) {
            if (txt[i] == '\\') i++;
            else if (txt[i] == '"') in_str = 0;
        } else if (txt[i] == '"') {
            in_str = 1;
        } else if (txt[i] == 'I' && n - i >= 8 && !memcmp(txt + i, "Infinity", 8)) {
            memcpy(txt + i, "1e999   ", 8);
            i += 7;
        }
    }
    /* Through src/io's lock: cJSON writes a static error position on
     * every parse, so concurrent loads would race inside cJSON. */
    cJSON *root = ssmi_json_parse(txt, n, &end);
    json = txt;   /* end points into the copy */
    if (!root) {
        /* cJSON returns NULL both for bad JSON and for a failed malloc;
         * malformed input is by far the likelier: FORMAT. */
        ssmi_free(txt);
        return SSM_FAIL(SSM_ERR_FORMAT);
    }
    int ok = cJSON_IsObject(root) && keys_unique(root);
    /* Nothing but white space after the object. */
    if (ok && end) {
        for (const char *p = end; p < json + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
                ok = 0;
                break;
            }
    }
    if (ok) {
        if (cJSON_GetObjectItemCaseSensitive(root, "d_model"))
            ok = parse_mamba_ssm(root, cfg);
        else if (cJSON_GetObjectItemCaseSensitive(root, "hidden_size"))
            ok = parse_hf(root, cfg);
        else
            ok = 0;
    }
    cJSON_Delete(root);
    ssmi_free(txt);
    if (!ok) return SSM_FAIL(SSM_ERR_FORMAT);
    if (cfg->kind == 0) cfg->kind = 1;
    if (cfg->kind == 2) {
        /* Mamba-2: every size known from the config; biases on the
         * projections and LayerNorm residual norms are not in the block. */
        int64_t di;
        if (!ssmi_mul_ok(cfg->expand, cfg->d_model, &di) || di > CFG_INT_MAX ||
            di % cfg->headdim || (di / cfg->headdim) % cfg->ngroups ||
            (cfg->nheads && cfg->nheads != di / cfg->headdim) ||
            cfg->bias || !cfg->rms_norm || cfg->eps != 1e-5)
            return SSM_FAIL(SSM_ERR_FORMAT);
        cfg->d_inner = di;
        cfg->nheads = di / cfg->headdim;
        cfg->dt_rank = 0;
        return SSM_OK;
    }
    if (cfg->dt_rank < 0) cfg->dt_rank = (cfg->d_model + 15) / 16;
    /* expand fixes d_inner when both are known. */
    if (cfg->expand) {
        int64_t di;
        if (!ssmi_mul_ok(cfg->expand, cfg->d_model, &di) || di > CFG_INT_MAX)
            return SSM_FAIL(SSM_ERR_FORMAT);
        if (cfg->d_inner && cfg->d_inner != di) return SSM_FAIL(SSM_ERR_FORMAT);
        cfg->d_inner = di;
    }
    return SSM_OK;
}
