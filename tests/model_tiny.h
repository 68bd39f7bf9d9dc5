/*
 * model_tiny.h -- tiny Mamba language-model checkpoints for the tests
 * (test_model.c; the ssm_generate demo test through test_model
 * --write-tiny DIR) and a literal double-precision reference forward
 * written from the equations (Gu and Dao 2023, section 3.4, algorithm 2;
 * mamba_ssm's mixer_seq_simple.py and mamba_simple.py).
 *
 * Every weight is k * 2^-e with |k| <= 255: exactly representable in F32,
 * F16 and BF16, so one reference serves all three file dtypes.
 */
#ifndef SSM_MODEL_TINY_H
#define SSM_MODEL_TINY_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ssm.h>

#define TINY_MAXL 4

typedef struct tiny_layer {
    float *norm_w, *norm_b, *in_w, *in_b, *conv_w, *conv_b, *x_w, *dt_w,
          *dt_b, *A_log, *D, *out_w, *out_b;
} tiny_layer;

typedef struct tiny_model {
    int dm, nl, V, Vp, di, N, K, R;
    int bias, conv_bias, rms, tied;
    double eps;
    float *emb, *head, *normf_w, *normf_b;
    tiny_layer l[TINY_MAXL];
} tiny_model;

typedef struct tiny_rng { uint64_t s; } tiny_rng;
static inline uint64_t tiny_u64(tiny_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double tiny_unif(tiny_rng *r) { return (double)(tiny_u64(r) >> 11) * 0x1.0p-53; }

/* The dimensions a loaded tiny model reports (both layer types; Mamba-1's
 * and Mamba-2's own fields are checked by their tests), *info filled. */
#define TINY_CHECK_INFO(model, m, hf, info) do {                                \
        int64_t tci_nl_, tci_dm_, tci_V_;                                       \
        ck_assert_int_eq(ssm_model_dims(model, &tci_nl_, &tci_dm_, &tci_V_), SSM_OK); \
        ck_assert_int_eq(tci_nl_, (m).nl);                                      \
        ck_assert_int_eq(tci_dm_, (m).dm);                                      \
        ck_assert_int_eq(tci_V_, (m).V);                                        \
        ssm_model_info_init(info);                                              \
        ck_assert_int_eq(ssm_model_get_info(model, info), SSM_OK);              \
        ck_assert_int_eq((info)->vocab_padded, (m).Vp);                         \
        ck_assert_int_eq((info)->d_inner, (m).di);                              \
        ck_assert_int_eq((info)->tied, (m).tied);                               \
        ck_assert_int_eq((info)->hf_names, (hf));                               \
    } while (0)

/* n token ids drawn uniformly from [0, V). */
static inline void tiny_fill_tokens(int32_t *t, int64_t n, int64_t V, uint64_t seed)
{
    tiny_rng r = { seed };
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(tiny_u64(&r) % (uint64_t)V);
}

/* n values k * bound / 256, k uniform in [-255, 255] shifted by center/
 * (bound/256) (center a multiple of bound/256 with |k| still <= 255). */
static inline float *tiny_fill(tiny_rng *r, int64_t n, double bound, double center)
{
    float *x = malloc((size_t)n * sizeof *x);
    double q = bound / 256.0;
    for (int64_t i = 0; i < n; i++) {
        double k = floor(tiny_unif(r) * 511.0) - 255.0;
        double c = round(center / q);
        double kk = c + k * (255.0 - fabs(c)) / 255.0;
        x[i] = (float)(round(kk) * q);
    }
    return x;
}

/* A tiny model: dm 16, di 32 (expand 2), N 4, K 4, R 3, vocab 37 padded to
 * 40 (mamba_ssm's pad_vocab_size_multiple 8). */
static inline void tiny_make(tiny_model *m, uint64_t seed, int nl, int bias,
                             int conv_bias, int rms, int tied, int hf)
{
    tiny_rng r = { seed };
    memset(m, 0, sizeof *m);
    m->dm = 16; m->nl = nl; m->V = 37; m->Vp = hf ? 37 : 40; m->di = 32;
    m->N = 4; m->K = 4; m->R = 3;
    m->bias = bias; m->conv_bias = conv_bias; m->rms = rms; m->tied = tied;
    m->eps = 1e-5;
    int dm = m->dm, di = m->di, N = m->N, K = m->K, R = m->R;
    m->emb = tiny_fill(&r, (int64_t)m->Vp * dm, 1.0, 0.0);
    m->head = tied ? m->emb : tiny_fill(&r, (int64_t)m->Vp * dm, 0.25, 0.0);
    m->normf_w = tiny_fill(&r, dm, 2.0, 1.0);
    m->normf_b = rms ? NULL : tiny_fill(&r, dm, 0.25, 0.0);
    for (int l = 0; l < nl; l++) {
        tiny_layer *L = &m->l[l];
        L->norm_w = tiny_fill(&r, dm, 2.0, 1.0);
        L->norm_b = rms ? NULL : tiny_fill(&r, dm, 0.25, 0.0);
        L->in_w = tiny_fill(&r, 2 * di * dm, 0.5, 0.0);
        L->in_b = bias ? tiny_fill(&r, 2 * di, 0.125, 0.0) : NULL;
        L->conv_w = tiny_fill(&r, di * K, 0.5, 0.0);
        L->conv_b = conv_bias ? tiny_fill(&r, di, 0.5, 0.0) : NULL;
        L->x_w = tiny_fill(&r, (R + 2 * N) * di, 0.25, 0.0);
        L->dt_w = tiny_fill(&r, di * R, 0.5, 0.0);
        L->dt_b = tiny_fill(&r, di, 4.0, -3.0);          /* dt ~ softplus(-4..-2) */
        L->A_log = tiny_fill(&r, di * N, 2.0, 1.0);      /* A in -[1, e^2] */
        L->D = tiny_fill(&r, di, 2.0, 1.0);
        L->out_w = tiny_fill(&r, dm * di, 0.25, 0.0);
        L->out_b = bias ? tiny_fill(&r, dm, 0.125, 0.0) : NULL;
    }
}

static inline void tiny_free(tiny_model *m)
{
    if (m->head != m->emb) free(m->head);
    free(m->emb); free(m->normf_w); free(m->normf_b);
    for (int l = 0; l < m->nl; l++) {
        tiny_layer *L = &m->l[l];
        float **p[] = { &L->norm_w, &L->norm_b, &L->in_w, &L->in_b, &L->conv_w,
                        &L->conv_b, &L->x_w, &L->dt_w, &L->dt_b, &L->A_log,
                        &L->D, &L->out_w, &L->out_b };
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(*p[i]);
    }
    memset(m, 0, sizeof *m);
}

/* ---- the reference: every position's logits [L][V], double ---- */

static inline void tiny_norm(const tiny_model *m, const double *x, double *o,
                             const float *w, const float *b)
{
    int dm = m->dm;
    double mean = 0, ss = 0;
    if (!m->rms) {
        for (int i = 0; i < dm; i++) mean += x[i];
        mean /= dm;
    }
    for (int i = 0; i < dm; i++) ss += (x[i] - mean) * (x[i] - mean);
    double inv = 1.0 / sqrt(ss / dm + m->eps);
    for (int i = 0; i < dm; i++)
        o[i] = (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0);
}

static inline double tiny_silu(double v) { return v / (1.0 + exp(-v)); }

static inline void tiny_reference(const tiny_model *m, int L, const int32_t *tok,
                                  double *logits)
{
    const int dm = m->dm, di = m->di, N = m->N, K = m->K, R = m->R;
    double *h = calloc((size_t)L * dm, sizeof *h), *xn = calloc((size_t)dm, sizeof *xn);
    double *x = calloc((size_t)L * di, sizeof *x), *z = calloc((size_t)L * di, sizeof *z);
    double *u = calloc((size_t)L * di, sizeof *u), *y = calloc((size_t)L * di, sizeof *y);
    double *hs = calloc((size_t)di * N, sizeof *hs);
    double *xd = calloc((size_t)(R + 2 * N), sizeof *xd);
    for (int t = 0; t < L; t++)
        for (int i = 0; i < dm; i++) h[t * dm + i] = m->emb[(size_t)tok[t] * dm + i];
    for (int l = 0; l < m->nl; l++) {
        const tiny_layer *W = &m->l[l];
        /* in_proj on the normed residual */
        for (int t = 0; t < L; t++) {
            tiny_norm(m, h + t * dm, xn, W->norm_w, W->norm_b);
            for (int j = 0; j < 2 * di; j++) {
                double s = W->in_b ? W->in_b[j] : 0.0;
                for (int i = 0; i < dm; i++) s += (double)W->in_w[j * dm + i] * xn[i];
                if (j < di) x[t * di + j] = s; else z[t * di + j - di] = s;
            }
        }
        /* causal depthwise conv (zero left padding), silu */
        for (int t = 0; t < L; t++)
            for (int d = 0; d < di; d++) {
                double s = W->conv_b ? W->conv_b[d] : 0.0;
                for (int k = 0; k < K; k++) {
                    int tt = t - (K - 1) + k;
                    if (tt >= 0) s += (double)W->conv_w[d * K + k] * x[tt * di + d];
                }
                u[t * di + d] = tiny_silu(s);
            }
        /* selective scan, sequential in t */
        memset(hs, 0, (size_t)di * N * sizeof *hs);
        for (int t = 0; t < L; t++) {
            for (int j = 0; j < R + 2 * N; j++) {
                double s = 0;
                for (int d = 0; d < di; d++) s += (double)W->x_w[j * di + d] * u[t * di + d];
                xd[j] = s;
            }
            for (int d = 0; d < di; d++) {
                double dt = W->dt_b[d];
                for (int q = 0; q < R; q++) dt += (double)W->dt_w[d * R + q] * xd[q];
                dt = log1p(exp(dt));                       /* softplus */
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    double A = -exp((double)W->A_log[d * N + n]);
                    double *hv = &hs[d * N + n];
                    *hv = exp(dt * A) * *hv + dt * xd[R + n] * u[t * di + d];
                    acc += xd[R + N + n] * *hv;
                }
                acc += (double)W->D[d] * u[t * di + d];
                y[t * di + d] = acc * tiny_silu(z[t * di + d]);
            }
        }
        /* out_proj, residual */
        for (int t = 0; t < L; t++)
            for (int i = 0; i < dm; i++) {
                double s = W->out_b ? W->out_b[i] : 0.0;
                for (int d = 0; d < di; d++) s += (double)W->out_w[i * di + d] * y[t * di + d];
                h[t * dm + i] += s;
            }
    }
    for (int t = 0; t < L; t++) {
        tiny_norm(m, h + t * dm, xn, m->normf_w, m->normf_b);
        for (int v = 0; v < m->V; v++) {
            double s = 0;
            for (int i = 0; i < dm; i++) s += (double)m->head[v * dm + i] * xn[i];
            logits[(size_t)t * m->V + v] = s;
        }
    }
    free(h); free(xn); free(x); free(z); free(u); free(y); free(hs); free(xd);
}

/* ---- writing a checkpoint directory ---- */

/* Exact F16 / BF16 bits of a value k * 2^-e (|k| <= 255, normal in F16). */
static inline uint16_t tiny_f16(float v)
{
    if (v == 0.0f) return signbit(v) ? 0x8000u : 0;
    int ex;
    double m = frexp(fabs((double)v), &ex);        /* v = m 2^ex, m in [0.5, 1) */
    int E = ex - 1 + 15;
    uint16_t f = (uint16_t)((m * 2.0 - 1.0) * 1024.0);
    return (uint16_t)((v < 0 ? 0x8000u : 0) | ((unsigned)E << 10) | f);
}
static inline uint16_t tiny_bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return (uint16_t)(u >> 16);
}

typedef struct tiny_list {
    ssm_tensor_desc d[16 * TINY_MAXL + 8];
    int64_t shape[16 * TINY_MAXL + 8][3];
    char name[16 * TINY_MAXL + 8][96];
    void *conv[16 * TINY_MAXL + 8];
    int n;
} tiny_list;

static inline void tiny_add(tiny_list *t, ssm_dtype dt, const char *name,
                            const float *x, int nd, int64_t a, int64_t b, int64_t c)
{
    int i = t->n++;
    snprintf(t->name[i], sizeof t->name[i], "%s", name);
    t->shape[i][0] = a; t->shape[i][1] = b; t->shape[i][2] = c;
    int64_t n = a * (nd > 1 ? b : 1) * (nd > 2 ? c : 1);
    t->conv[i] = NULL;
    const void *data = x;
    if (dt != SSM_DTYPE_F32) {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t j = 0; j < n; j++)
            h[j] = dt == SSM_DTYPE_F16 ? tiny_f16(x[j]) : tiny_bf16(x[j]);
        t->conv[i] = h;
        data = h;
    }
    t->d[i].name = t->name[i];
    t->d[i].dtype = dt;
    t->d[i].ndim = nd;
    t->d[i].shape = t->shape[i];
    t->d[i].data = data;
}

/* Tensors of m under the mamba_ssm (hf = 0) or Hugging Face names. */
static inline void tiny_tensors(const tiny_model *m, ssm_dtype dt, int hf,
                                int write_head, tiny_list *t)
{
    char nm[96];
    t->n = 0;
    tiny_add(t, dt, hf ? "backbone.embeddings.weight" : "backbone.embedding.weight",
             m->emb, 2, m->Vp, m->dm, 0);
    for (int l = 0; l < m->nl; l++) {
        const tiny_layer *L = &m->l[l];
#define TA(suf, x, nd, a, b, c) do { if (x) {                                 \
            snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, suf);          \
            tiny_add(t, dt, nm, x, nd, a, b, c); } } while (0)
        TA("norm.weight", L->norm_w, 1, m->dm, 0, 0);
        TA("norm.bias", L->norm_b, 1, m->dm, 0, 0);
        TA("mixer.in_proj.weight", L->in_w, 2, 2 * m->di, m->dm, 0);
        TA("mixer.in_proj.bias", L->in_b, 1, 2 * m->di, 0, 0);
        TA("mixer.conv1d.weight", L->conv_w, 3, m->di, 1, m->K);
        TA("mixer.conv1d.bias", L->conv_b, 1, m->di, 0, 0);
        TA("mixer.x_proj.weight", L->x_w, 2, m->R + 2 * m->N, m->di, 0);
        TA("mixer.dt_proj.weight", L->dt_w, 2, m->di, m->R, 0);
        TA("mixer.dt_proj.bias", L->dt_b, 1, m->di, 0, 0);
        TA("mixer.A_log", L->A_log, 2, m->di, m->N, 0);
        TA("mixer.D", L->D, 1, m->di, 0, 0);
        TA("mixer.out_proj.weight", L->out_w, 2, m->dm, m->di, 0);
        TA("mixer.out_proj.bias", L->out_b, 1, m->dm, 0, 0);
#undef TA
    }
    tiny_add(t, dt, "backbone.norm_f.weight", m->normf_w, 1, m->dm, 0, 0);
    if (m->normf_b) tiny_add(t, dt, "backbone.norm_f.bias", m->normf_b, 1, m->dm, 0, 0);
    if (write_head) tiny_add(t, dt, "lm_head.weight", m->head, 2, m->Vp, m->dm, 0);
}

static inline void tiny_list_free(tiny_list *t)
{
    for (int i = 0; i < t->n; i++) free(t->conv[i]);
    t->n = 0;
}

static inline int tiny_write_text(const char *dir, const char *file, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* The config.json of m in either naming (extra: more keys, "" or ", ..."). */
static inline void tiny_config(const tiny_model *m, int hf, char *buf, size_t n,
                               const char *extra)
{
    if (hf)
        snprintf(buf, n,
                 "{\"architectures\": [\"MambaForCausalLM\"], \"model_type\": \"mamba\",\n"
                 " \"hidden_size\": %d, \"num_hidden_layers\": %d, \"vocab_size\": %d,\n"
                 " \"state_size\": %d, \"expand\": 2, \"conv_kernel\": %d,\n"
                 " \"time_step_rank\": %d, \"intermediate_size\": %d,\n"
                 " \"layer_norm_epsilon\": 1e-05, \"use_bias\": %s, \"use_conv_bias\": %s,\n"
                 " \"tie_word_embeddings\": %s, \"residual_in_fp32\": true,\n"
                 " \"hidden_act\": \"silu\", \"bos_token_id\": 0, \"eos_token_id\": 0%s}\n",
                 m->dm, m->nl, m->V, m->N, m->K, m->R, m->di,
                 m->bias ? "true" : "false", m->conv_bias ? "true" : "false",
                 m->tied ? "true" : "false", extra);
    else
        snprintf(buf, n,
                 "{\"d_model\": %d, \"n_layer\": %d, \"vocab_size\": %d,\n"
                 " \"ssm_cfg\": {\"d_state\": %d, \"d_conv\": %d, \"expand\": 2, \"dt_rank\": %d,\n"
                 "             \"bias\": %s, \"conv_bias\": %s},\n"
                 " \"rms_norm\": %s, \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
                 " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": %s%s}\n",
                 m->dm, m->nl, m->V, m->N, m->K, m->R,
                 m->bias ? "true" : "false", m->conv_bias ? "true" : "false",
                 m->rms ? "true" : "false", m->tied ? "true" : "false", extra);
}

/* Write m into dir: config.json and model.safetensors, or (sharded) two
 * shards and model.safetensors.index.json.  0 on success. */
static inline int tiny_write(const tiny_model *m, const char *dir, ssm_dtype dt,
                             int hf, int sharded)
{
    static tiny_list t;
    char cfg[2048], p[512];
    tiny_config(m, hf, cfg, sizeof cfg, "");
    if (tiny_write_text(dir, "config.json", cfg)) return -1;
    /* Tied: mamba_ssm's state dict holds lm_head.weight too; safetensors
     * files drop it (shared storage).  Untied: always written. */
    tiny_tensors(m, dt, hf, !m->tied, &t);
    int rc = 0;
    if (!sharded) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        rc = ssm_safetensors_write(p, t.n, t.d, 0, NULL, NULL) != SSM_OK;
    } else {
        int h = t.n / 2;
        snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
        rc |= ssm_safetensors_write(p, h, t.d, 0, NULL, NULL) != SSM_OK;
        snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
        rc |= ssm_safetensors_write(p, t.n - h, t.d + h, 0, NULL, NULL) != SSM_OK;
        size_t cap = 64 + (size_t)t.n * 160, len = 0;
        char *js = malloc(cap);
        len += (size_t)snprintf(js + len, cap - len, "{\"metadata\": {}, \"weight_map\": {");
        for (int i = 0; i < t.n; i++)
            len += (size_t)snprintf(js + len, cap - len, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                    i ? ", " : "", t.name[i], i < h ? 1 : 2);
        snprintf(js + len, cap - len, "}}\n");
        rc |= tiny_write_text(dir, "model.safetensors.index.json", js) != 0;
        free(js);
    }
    tiny_list_free(&t);
    return rc;
}

#endif /* SSM_MODEL_TINY_H */
