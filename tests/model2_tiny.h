/*
 * model2_tiny.h -- tiny Mamba-2 language-model checkpoints for the tests
 * (test_model_mamba2.c, test_model_noalloc.c) and a literal
 * double-precision reference forward written from the equations (Dao and
 * Gu 2024, "Transformers are SSMs", section 7 / figure 6: the Mamba-2
 * block; the SSD recurrence h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,
 * y_t = C_t h_t + D x_t, eq. (2) with scalar A per head; mamba_ssm's
 * modules/mamba2.py and mixer_seq_simple.py for the layout).
 *
 * Weights come from model_tiny.h's tiny_fill: k * 2^-e with |k| <= 255,
 * exact in F32 and BF16, so one reference serves both file dtypes.
 */
#ifndef SSM_MODEL2_TINY_H
#define SSM_MODEL2_TINY_H

#include "model_tiny.h"

typedef struct tiny2_layer {
    float *norm_w, *in_w, *conv_w, *conv_b, *dt_bias, *A_log, *D, *gnorm_w, *out_w;
} tiny2_layer;

typedef struct tiny2_model {
    int dm, nl, V, Vp, di, N, K, P, H, G, dc, dp;
    int conv_bias, tied, D_hdim, norm;   /* norm: ssm_mamba2_norm */
    double dt_min, dt_max;               /* dt_max 0: no limit */
    float *emb, *head, *normf_w;
    tiny2_layer l[TINY_MAXL];
} tiny2_model;

/* dm 16, di 32 (expand 2), headdim 8 (H 4), G 2, N 4, K 4; vocab 37
 * padded to 40 (mamba_ssm, pad_vocab_size_multiple 8) or not (HF). */
static inline void tiny2_make(tiny2_model *m, uint64_t seed, int nl, int conv_bias,
                              int tied, int D_hdim, int norm, double dt_min,
                              double dt_max, int hf)
{
    tiny_rng r = { seed };
    memset(m, 0, sizeof *m);
    m->dm = 16; m->nl = nl; m->V = 37; m->Vp = hf ? 37 : 40; m->di = 32;
    m->N = 4; m->K = 4; m->P = 8; m->H = 4; m->G = 2;
    m->dc = m->di + 2 * m->G * m->N;
    m->dp = 2 * m->di + 2 * m->G * m->N + m->H;
    m->conv_bias = conv_bias; m->tied = tied; m->D_hdim = D_hdim; m->norm = norm;
    m->dt_min = dt_min; m->dt_max = dt_max;
    const int dm = m->dm, di = m->di, K = m->K, H = m->H;
    m->emb = tiny_fill(&r, (int64_t)m->Vp * dm, 1.0, 0.0);
    m->head = tied ? m->emb : tiny_fill(&r, (int64_t)m->Vp * dm, 0.25, 0.0);
    m->normf_w = tiny_fill(&r, dm, 2.0, 1.0);
    for (int l = 0; l < nl; l++) {
        tiny2_layer *L = &m->l[l];
        L->norm_w = tiny_fill(&r, dm, 2.0, 1.0);
        L->in_w = tiny_fill(&r, (int64_t)m->dp * dm, 0.5, 0.0);
        L->conv_w = tiny_fill(&r, (int64_t)m->dc * K, 0.5, 0.0);
        L->conv_b = conv_bias ? tiny_fill(&r, m->dc, 0.5, 0.0) : NULL;
        L->dt_bias = tiny_fill(&r, H, 4.0, -2.0);       /* dt ~ softplus(-6..2) */
        L->A_log = tiny_fill(&r, H, 2.0, 1.0);          /* A in -[e^-1, e^3] */
        L->D = tiny_fill(&r, D_hdim ? di : H, 2.0, 1.0);
        L->gnorm_w = norm != SSM_MAMBA2_NORM_NONE ? tiny_fill(&r, di, 2.0, 1.0) : NULL;
        L->out_w = tiny_fill(&r, (int64_t)dm * di, 0.25, 0.0);
    }
}

static inline void tiny2_free(tiny2_model *m)
{
    if (m->head != m->emb) free(m->head);
    free(m->emb); free(m->normf_w);
    for (int l = 0; l < m->nl; l++) {
        tiny2_layer *L = &m->l[l];
        float **p[] = { &L->norm_w, &L->in_w, &L->conv_w, &L->conv_b, &L->dt_bias,
                        &L->A_log, &L->D, &L->gnorm_w, &L->out_w };
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(*p[i]);
    }
    memset(m, 0, sizeof *m);
}

static inline void tiny2_rms(int n, const double *x, double *o, const float *w)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) o[i] = x[i] * inv * (w ? (double)w[i] : 1.0);
}

/* Every position's logits [L][V], in double, token by token. */
static inline void tiny2_reference(const tiny2_model *m, int L, const int32_t *tok,
                                   double *logits)
{
    const int dm = m->dm, di = m->di, N = m->N, K = m->K, P = m->P, H = m->H,
              G = m->G, dc = m->dc, dp = m->dp, hpg = H / G, cpg = di / G;
    double *res = calloc((size_t)L * dm, sizeof *res), *xn = calloc((size_t)dm, sizeof *xn);
    double *zx = calloc((size_t)L * dp, sizeof *zx), *xbc = calloc((size_t)dc, sizeof *xbc);
    double *hs = calloc((size_t)H * P * N, sizeof *hs), *y = calloc((size_t)di, sizeof *y);
    double *v = calloc((size_t)di, sizeof *v);
    for (int t = 0; t < L; t++)
        for (int i = 0; i < dm; i++) res[t * dm + i] = m->emb[(size_t)tok[t] * dm + i];
    for (int l = 0; l < m->nl; l++) {
        const tiny2_layer *W = &m->l[l];
        /* in_proj of the normed residual: [z | xBC | dt] */
        for (int t = 0; t < L; t++) {
            tiny2_rms(dm, res + t * dm, xn, W->norm_w);
            for (int j = 0; j < dp; j++) {
                double s = 0;
                for (int i = 0; i < dm; i++) s += (double)W->in_w[(size_t)j * dm + i] * xn[i];
                zx[(size_t)t * dp + j] = s;
            }
        }
        memset(hs, 0, (size_t)H * P * N * sizeof *hs);
        for (int t = 0; t < L; t++) {
            const double *z = zx + (size_t)t * dp, *dtr = z + di + dc;
            /* causal depthwise conv over xBC (zero left padding), silu */
            for (int c = 0; c < dc; c++) {
                double s = W->conv_b ? W->conv_b[c] : 0.0;
                for (int k = 0; k < K; k++) {
                    int tt = t - (K - 1) + k;
                    if (tt >= 0) s += (double)W->conv_w[c * K + k] * zx[(size_t)tt * dp + di + c];
                }
                xbc[c] = tiny_silu(s);
            }
            const double *x = xbc, *B = xbc + di, *C = xbc + di + G * N;
            /* SSD recurrence, scalar A per head, B/C of the head's group */
            for (int h = 0; h < H; h++) {
                double dt = log1p(exp(dtr[h] + W->dt_bias[h]));   /* softplus */
                if (dt < m->dt_min) dt = m->dt_min;
                if (m->dt_max > 0 && dt > m->dt_max) dt = m->dt_max;
                const double A = -exp((double)W->A_log[h]);
                const int g = h / hpg;
                for (int p = 0; p < P; p++) {
                    const int ch = h * P + p;
                    double acc = 0;
                    for (int n = 0; n < N; n++) {
                        double *hv = &hs[(h * P + p) * N + n];
                        *hv = exp(dt * A) * *hv + dt * B[g * N + n] * x[ch];
                        acc += C[g * N + n] * *hv;
                    }
                    y[ch] = acc + (double)W->D[m->D_hdim ? ch : h] * x[ch];
                }
            }
            /* gate and group-wise RMSNorm over Di/G channels */
            for (int d = 0; d < di; d++)
                v[d] = m->norm == SSM_MAMBA2_NORM_BEFORE_GATE ? y[d] : y[d] * tiny_silu(z[d]);
            if (m->norm != SSM_MAMBA2_NORM_NONE)
                for (int g = 0; g < G; g++)
                    tiny2_rms(cpg, v + g * cpg, v + g * cpg, W->gnorm_w + g * cpg);
            if (m->norm == SSM_MAMBA2_NORM_BEFORE_GATE)
                for (int d = 0; d < di; d++) v[d] *= tiny_silu(z[d]);
            /* out_proj, residual */
            for (int i = 0; i < dm; i++) {
                double s = 0;
                for (int d = 0; d < di; d++) s += (double)W->out_w[i * di + d] * v[d];
                res[t * dm + i] += s;
            }
        }
    }
    for (int t = 0; t < L; t++) {
        tiny2_rms(dm, res + t * dm, xn, m->normf_w);
        for (int q = 0; q < m->V; q++) {
            double s = 0;
            for (int i = 0; i < dm; i++) s += (double)m->head[q * dm + i] * xn[i];
            logits[(size_t)t * m->V + q] = s;
        }
    }
    free(res); free(xn); free(zx); free(xbc); free(hs); free(y); free(v);
}

/* Tensors of m (mamba_ssm and HF differ only in the embedding's name). */
static inline void tiny2_tensors(const tiny2_model *m, ssm_dtype dt, int hf,
                                 int write_head, tiny_list *t)
{
    char nm[96];
    t->n = 0;
    tiny_add(t, dt, hf ? "backbone.embeddings.weight" : "backbone.embedding.weight",
             m->emb, 2, m->Vp, m->dm, 0);
    for (int l = 0; l < m->nl; l++) {
        const tiny2_layer *L = &m->l[l];
#define TA(suf, x, nd, a, b, c) do { if (x) {                                 \
            snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, suf);          \
            tiny_add(t, dt, nm, x, nd, a, b, c); } } while (0)
        TA("norm.weight", L->norm_w, 1, m->dm, 0, 0);
        TA("mixer.in_proj.weight", L->in_w, 2, m->dp, m->dm, 0);
        TA("mixer.conv1d.weight", L->conv_w, 3, m->dc, 1, m->K);
        TA("mixer.conv1d.bias", L->conv_b, 1, m->dc, 0, 0);
        TA("mixer.dt_bias", L->dt_bias, 1, m->H, 0, 0);
        TA("mixer.A_log", L->A_log, 1, m->H, 0, 0);
        TA("mixer.D", L->D, 1, m->D_hdim ? m->di : m->H, 0, 0);
        TA("mixer.norm.weight", L->gnorm_w, 1, m->di, 0, 0);
        TA("mixer.out_proj.weight", L->out_w, 2, m->dm, m->di, 0);
#undef TA
    }
    tiny_add(t, dt, "backbone.norm_f.weight", m->normf_w, 1, m->dm, 0, 0);
    if (write_head) tiny_add(t, dt, "lm_head.weight", m->head, 2, m->Vp, m->dm, 0);
}

/* config.json of m; extra: more keys (", ...") appended to the top level
 * (HF) or to ssm_cfg (mamba_ssm); top: more top-level keys (mamba_ssm). */
static inline void tiny2_config(const tiny2_model *m, int hf, char *buf, size_t n,
                                const char *extra, const char *top)
{
    char lim[96] = "";
    if (m->dt_min > 0 || m->dt_max > 0)
        snprintf(lim, sizeof lim, ", \"%s\": [%.17g, %.17g]",
                 hf ? "time_step_limit" : "dt_limit", m->dt_min, m->dt_max);
    if (hf)
        snprintf(buf, n,
                 "{\"architectures\": [\"Mamba2ForCausalLM\"], \"model_type\": \"mamba2\",\n"
                 " \"hidden_size\": %d, \"num_hidden_layers\": %d, \"vocab_size\": %d,\n"
                 " \"num_heads\": %d, \"head_dim\": %d, \"n_groups\": %d, \"state_size\": %d,\n"
                 " \"expand\": 2, \"conv_kernel\": %d, \"chunk_size\": 256,\n"
                 " \"layer_norm_epsilon\": 1e-05, \"use_bias\": false, \"use_conv_bias\": %s,\n"
                 " \"rms_norm\": true, \"norm_before_gate\": false,\n"
                 " \"tie_word_embeddings\": %s, \"residual_in_fp32\": true,\n"
                 " \"hidden_act\": \"silu\", \"bos_token_id\": 0%s%s}\n",
                 m->dm, m->nl, m->V, m->H, m->P, m->G, m->N, m->K,
                 m->conv_bias ? "true" : "false", m->tied ? "true" : "false", lim, extra);
    else
        snprintf(buf, n,
                 "{\"d_model\": %d, \"d_intermediate\": 0, \"n_layer\": %d, \"vocab_size\": %d,\n"
                 " \"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_state\": %d, \"d_conv\": %d,\n"
                 "             \"expand\": 2, \"headdim\": %d, \"ngroups\": %d,\n"
                 "             \"rmsnorm\": %s, \"norm_before_gate\": %s, \"D_has_hdim\": %s,\n"
                 "             \"conv_bias\": %s, \"chunk_size\": 256%s%s},\n"
                 " \"attn_layer_idx\": [], \"attn_cfg\": {}, \"rms_norm\": true,\n"
                 " \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
                 " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": %s%s}\n",
                 m->dm, m->nl, m->V, m->N, m->K, m->P, m->G,
                 m->norm != SSM_MAMBA2_NORM_NONE ? "true" : "false",
                 m->norm == SSM_MAMBA2_NORM_BEFORE_GATE ? "true" : "false",
                 m->D_hdim ? "true" : "false", m->conv_bias ? "true" : "false",
                 lim, extra, m->tied ? "true" : "false", top);
}

/* Write m into dir (config.json, model.safetensors); 0 on success. */
static inline int tiny2_write(const tiny2_model *m, const char *dir, ssm_dtype dt,
                              int hf, const char *extra, const char *top)
{
    static tiny_list t;
    char cfg[4096], p[512];
    tiny2_config(m, hf, cfg, sizeof cfg, extra ? extra : "", top ? top : "");
    if (tiny_write_text(dir, "config.json", cfg)) return -1;
    tiny2_tensors(m, dt, hf, !m->tied, &t);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int rc = ssm_safetensors_write(p, t.n, t.d, 0, NULL, NULL) != SSM_OK;
    tiny_list_free(&t);
    return rc;
}

#endif /* SSM_MODEL2_TINY_H */
