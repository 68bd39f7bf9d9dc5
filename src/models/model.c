/*
 * model.c -- loading a Mamba language model from a checkpoint directory:
 * config.json (config.c) and the weights through the tensor-file reader of
 * src/io, every shape checked against the config; F32 weights used in place
 * inside the mapping, F16/BF16 converted once (BF16 weight matrices kept
 * as BF16 with ssm_model_load_options.keep_bf16).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model_internal.h"
#include "layers/gemv_bf16dp.h"
#include "layers/mamba_step.h"

/* ---- small helpers ---- */

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Whole small file into a malloc'ed buffer; SSM_ERR_FORMAT beyond max. */
static ssm_status read_small(const char *path, size_t max, char **buf, size_t *n)
{
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return SSM_FAIL(SSM_ERR_IO);
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    if (!b) { fclose(f); return SSM_FAIL(SSM_ERR_NOMEM); }
    for (;;) {
        if (len == cap) {
            if (cap > max) { free(b); fclose(f); return SSM_FAIL(SSM_ERR_FORMAT); }
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); fclose(f); return SSM_FAIL(SSM_ERR_NOMEM); }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(b); return SSM_FAIL(SSM_ERR_IO); }
    if (len > max) { free(b); return SSM_FAIL(SSM_ERR_FORMAT); }
    *buf = b;
    *n = len;
    return SSM_OK;
}

static ssm_status own(ssm_model *m, void *p)
{
    if (m->n_owned == m->cap_owned) {
        int64_t nc = m->cap_owned ? 2 * m->cap_owned : 64;
        void **no = realloc(m->owned, (size_t)nc * sizeof *no);
        if (!no) return SSM_FAIL(SSM_ERR_NOMEM);
        m->owned = no;
        m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = p;
    return SSM_OK;
}

static int finite_f(const float *x, int64_t n)
{
    /* A float is NaN or infinite iff its exponent bits are all ones.  An
     * integer OR-reduction vectorizes (a float sum would be a serial
     * dependency chain): this pass runs at memory speed. */
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

/* Tensor name as float: in place when stored as aligned F32, else
 * converted into an owned buffer.  shape: ndim expected sizes.
 * *out NULL with SSM_OK when optional and absent. */
static ssm_status tensor(ssm_model *m, const char *name, int optional,
                         int ndim, const int64_t *shape, const float **out)
{
    ssm_tensor_info info;
    const void *data;
    *out = NULL;
    ssm_status st = ssm_tensor_file_data(m->file, name, &data, &info);
    if (st != SSM_OK) {
        if (optional && st == SSM_ERR_FORMAT) return SSM_OK;
        return st;
    }
    if (info.ndim != ndim) return SSM_FAIL(SSM_ERR_FORMAT);
    for (int i = 0; i < ndim; i++)
        if (info.shape[i] != shape[i]) return SSM_FAIL(SSM_ERR_FORMAT);
    int64_t bytes;
    if (!ssmi_mul_ok(info.numel, (int64_t)sizeof(float), &bytes))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const float *f;
    if (info.dtype == SSM_DTYPE_F32 && ((uintptr_t)data % _Alignof(float)) == 0) {
        f = data;
        m->bytes_mapped += bytes;
    } else {
        float *buf = ssmi_alloc((size_t)info.numel, sizeof(float));
        if (!buf) return SSM_FAIL(SSM_ERR_NOMEM);
        st = ssm_tensor_file_read_f32(m->file, name, buf, info.numel);
        if (st == SSM_OK) st = own(m, buf);
        if (st != SSM_OK) { ssmi_free(buf); return st; }
        f = buf;
        m->bytes_owned += bytes;
    }
    if (!finite_f(f, info.numel)) return SSM_FAIL(SSM_ERR_FORMAT);
    *out = f;
    return SSM_OK;
}

/* A weight matrix: as tensor(), except that with keep_bf16 a BF16 tensor
 * stays BF16 (copied out of the mapping, see below).
 * A BF16 value is finite iff its 8 exponent bits are not all ones. */
static ssm_status tensor_w(ssm_model *m, const char *name, int optional,
                           int ndim, const int64_t *shape, ssmi_wmat *out)
{
    out->f = NULL;
    out->h = NULL;
    ssm_tensor_info info;
    const void *data;
    if (m->keep_bf16 && ssm_tensor_file_data(m->file, name, &data, &info) == SSM_OK &&
        info.dtype == SSM_DTYPE_BF16) {
        if (info.ndim != ndim) return SSM_FAIL(SSM_ERR_FORMAT);
        for (int i = 0; i < ndim; i++)
            if (info.shape[i] != shape[i]) return SSM_FAIL(SSM_ERR_FORMAT);
        const int64_t bytes = info.numel * (int64_t)sizeof(uint16_t);
        /* Copied into owned, 64-byte aligned memory rather than used in
         * the mapping: measured at the mamba-130m shape, a decoding step
         * streaming the page-cache mapping (4 KiB pages) ran at 1.1x the
         * float model's time instead of 0.5x (docs/decode-speed.md). */
        uint16_t *buf = ssmi_alloc((size_t)info.numel, sizeof(uint16_t));
        if (!buf) return SSM_FAIL(SSM_ERR_NOMEM);
        memcpy(buf, data, (size_t)bytes);
        ssm_status st = own(m, buf);
        if (st != SSM_OK) { ssmi_free(buf); return st; }
        const uint16_t *h = buf;
        m->bytes_owned += bytes;
        uint32_t bad = 0;
        for (int64_t i = 0; i < info.numel; i++)
            bad |= (uint32_t)((h[i] & 0x7f80u) == 0x7f80u);
        if (bad) return SSM_FAIL(SSM_ERR_FORMAT);
        out->h = h;
        return SSM_OK;
    }
    return tensor(m, name, optional, ndim, shape, &out->f);
}

/* Shape of a tensor that must exist (sizes read from it). */
static ssm_status shape_of(const ssm_model *m, const char *name, int ndim,
                           int64_t *shape)
{
    ssm_tensor_info info;
    ssm_status st = ssm_tensor_file_find(m->file, name, &info);
    if (st != SSM_OK) return st;
    if (info.ndim != ndim) return SSM_FAIL(SSM_ERR_FORMAT);
    for (int i = 0; i < ndim; i++) {
        if (info.shape[i] < 1 || info.shape[i] > ((int64_t)1 << 30))
            return SSM_FAIL(SSM_ERR_FORMAT);
        shape[i] = info.shape[i];
    }
    return SSM_OK;
}

/* Fill the sizes the config left out from layer 0's shapes; check the
 * ones it gave. */
static ssm_status resolve_sizes(ssm_model *m)
{
    ssmi_model_cfg *c = &m->cfg;
    int64_t a[2] = { 0, 0 }, cv[3] = { 0, 0, 0 }, dt[2] = { 0, 0 };
    SSM_TRY(shape_of(m, "backbone.layers.0.mixer.A_log", 2, a));
    SSM_TRY(shape_of(m, "backbone.layers.0.mixer.conv1d.weight", 3, cv));
    SSM_TRY(shape_of(m, "backbone.layers.0.mixer.dt_proj.weight", 2, dt));
    if ((c->d_inner && c->d_inner != a[0]) || (c->d_state && c->d_state != a[1]) ||
        (c->d_conv && c->d_conv != cv[2]) || (c->dt_rank && c->dt_rank != dt[1]))
        return SSM_FAIL(SSM_ERR_FORMAT);
    c->d_inner = a[0];
    c->d_state = a[1];
    c->d_conv = cv[2];
    c->dt_rank = dt[1];
    /* Every size and product the forward uses fits int (BLAS). */
    int64_t t;
    if (!ssmi_mul_ok(2 * c->d_inner, c->d_model, &t) || t > INT32_MAX ||
        !ssmi_mul_ok(c->vocab_padded, c->d_model, &t) ||
        c->dt_rank + 2 * c->d_state > INT32_MAX)
        return SSM_FAIL(SSM_ERR_FORMAT);
    return SSM_OK;
}

static ssm_status load_layer(ssm_model *m, int64_t l, ssmi_layer *L)
{
    const ssmi_model_cfg *c = &m->cfg;
    const int64_t dm = c->d_model, di = c->d_inner, n = c->d_state,
                  k = c->d_conv, r = c->dt_rank;
    char name[128];
#define T(suffix, opt, nd, dst, ...) do {                                    \
        const int64_t shp_[] = { __VA_ARGS__ };                            \
        snprintf(name, sizeof name, "backbone.layers.%lld.%s", (long long)l, suffix); \
        SSM_TRY(tensor(m, name, opt, nd, shp_, &(dst)));                   \
    } while (0)
#define TW(suffix, dst, ...) do {                                            \
        const int64_t shp_[] = { __VA_ARGS__ };                            \
        snprintf(name, sizeof name, "backbone.layers.%lld.%s", (long long)l, suffix); \
        SSM_TRY(tensor_w(m, name, 0, 2, shp_, &(dst)));                    \
    } while (0)
    T("norm.weight", 0, 1, L->norm_w, dm);
    if (!c->rms_norm) T("norm.bias", 0, 1, L->norm_b, dm);
    TW("mixer.in_proj.weight", L->in_w, 2 * di, dm);
    if (c->bias) T("mixer.in_proj.bias", 0, 1, L->in_b, 2 * di);
    T("mixer.conv1d.weight", 0, 3, L->conv_w, di, 1, k);
    if (c->conv_bias) T("mixer.conv1d.bias", 0, 1, L->conv_b, di);
    TW("mixer.x_proj.weight", L->x_w, r + 2 * n, di);
    TW("mixer.dt_proj.weight", L->dt_w, di, r);
    T("mixer.dt_proj.bias", 0, 1, L->dt_b, di);
    const float *alog;
    T("mixer.A_log", 0, 2, alog, di, n);
    T("mixer.D", 0, 1, L->D, di);
    TW("mixer.out_proj.weight", L->out_w, dm, di);
    if (c->bias) T("mixer.out_proj.bias", 0, 1, L->out_b, dm);
#undef T
#undef TW
    /* A = -exp(A_log) (mamba_simple.py), in float as PyTorch computes it. */
    float *A = ssmi_alloc((size_t)((2 * n + 1) * di), sizeof(float));
    if (!A) return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status st = own(m, A);
    if (st != SSM_OK) { ssmi_free(A); return st; }
    for (int64_t i = 0; i < di * n; i++) A[i] = -expf(alog[i]);
    if (!finite_f(A, di * n)) return SSM_FAIL(SSM_ERR_FORMAT);
    ssmi_mamba_step_a2(di, n, A, A + di * n, A + 2 * di * n);
    m->bytes_owned += (2 * n + 1) * di * (int64_t)sizeof(float);
    L->A = A;
    L->A2 = A + di * n;
    L->amax = A + 2 * di * n;
    return SSM_OK;
}

/* ---- Mamba-2 ---- */

/* Tensor name, of exactly the given shape, converted to float into a
 * scratch buffer and handed to set(): the Mamba-2 stack keeps its own
 * copy, so nothing of it stays owned here.  SSM_ERR_FORMAT for a missing
 * or misshapen tensor or values the block refuses (non-finite). */
static ssm_status m2_read(ssm_model *m, const char *name, int ndim,
                          const int64_t *shape, float **buf, int64_t *count)
{
    ssm_tensor_info info;
    *buf = NULL;
    SSM_TRY(ssm_tensor_file_find(m->file, name, &info));
    if (info.ndim != ndim) return SSM_FAIL(SSM_ERR_FORMAT);
    for (int i = 0; i < ndim; i++)
        if (info.shape[i] != shape[i]) return SSM_FAIL(SSM_ERR_FORMAT);
    float *b = ssmi_alloc((size_t)(info.numel > 0 ? info.numel : 1), sizeof(float));
    if (!b) return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status st = ssm_tensor_file_read_f32(m->file, name, b, info.numel);
    if (st != SSM_OK) { ssmi_free(b); return st; }
    *buf = b;
    *count = info.numel;
    return SSM_OK;
}

static ssm_status m2_param(ssm_model *m, ssm_mamba2 *blk, ssm_mamba2_param p,
                           const char *name, int ndim, const int64_t *shape)
{
    float *b;
    int64_t n = 0;
    SSM_TRY(m2_read(m, name, ndim, shape, &b, &n));
    ssm_status st = ssm_mamba2_set_param(blk, p, b, n);
    ssmi_free(b);
    return st == SSM_ERR_ARG ? SSM_FAIL(SSM_ERR_FORMAT) : st;
}

static ssm_status m2_norm(ssm_model *m, int64_t layer, const char *name)
{
    const int64_t shape[] = { m->cfg.d_model };
    float *b;
    int64_t n = 0;
    SSM_TRY(m2_read(m, name, 1, shape, &b, &n));
    ssm_status st = ssm_mamba2_stack_set_norm(m->m2, layer, b, n);
    ssmi_free(b);
    return st == SSM_ERR_ARG ? SSM_FAIL(SSM_ERR_FORMAT) : st;
}

/* The layers of a Mamba-2 checkpoint into an ssm_mamba2_stack (ssm/mamba2.h),
 * every tensor's shape fixed by the config (modules/mamba2.py):
 * in_proj [2Di + 2GN + H][Dm], conv1d [Di + 2GN][1][K], dt_bias, A_log
 * [H], D [H] or [Di], norm [Di], out_proj [Dm][Di]. */
static ssm_status load_mamba2(ssm_model *m)
{
    const ssmi_model_cfg *c = &m->cfg;
    const int64_t dm = c->d_model, di = c->d_inner, n = c->d_state,
                  k = c->d_conv, h = c->nheads, g = c->ngroups;
    int64_t gn, dc, dp, t;
    if (!ssmi_mul_ok(g, n, &gn) || gn > INT32_MAX / 4 ||
        (dc = di + 2 * gn) > INT32_MAX || (dp = 2 * di + 2 * gn + h) > INT32_MAX ||
        !ssmi_mul_ok(dp, dm, &t) || t > INT32_MAX ||
        !ssmi_mul_ok(c->vocab_padded, dm, &t))
        return SSM_FAIL(SSM_ERR_FORMAT);
    ssm_mamba2_config mc;
    ssm_mamba2_config_init(&mc);
    mc.d_model = dm;
    mc.d_state = n;
    mc.d_conv = k;
    mc.expand = c->expand;
    mc.headdim = c->headdim;
    mc.ngroups = g;
    mc.D_per_channel = c->D_hdim;
    mc.norm = c->norm_mode;
    mc.dt_min = (float)c->dt_min;
    mc.dt_max = (float)c->dt_max;
    mc.norm_eps = (float)c->eps;
    ssm_status st = ssm_mamba2_stack_create(&m->m2, &mc, c->n_layer, 0);
    if (st == SSM_ERR_ARG) return SSM_FAIL(SSM_ERR_FORMAT);   /* sizes it refuses */
    SSM_TRY(st);
    char name[160];
#define NM(suffix) (snprintf(name, sizeof name, "backbone.layers.%lld.%s", (long long)l, suffix), name)
    for (int64_t l = 0; l < c->n_layer; l++) {
        ssm_mamba2 *blk;
        SSM_TRY(ssm_mamba2_stack_block(m->m2, l, &blk));
        const int64_t s_in[] = { dp, dm }, s_conv[] = { dc, 1, k }, s_dc[] = { dc },
                      s_h[] = { h }, s_d[] = { c->D_hdim ? di : h }, s_di[] = { di },
                      s_out[] = { dm, di };
        SSM_TRY(m2_norm(m, l, NM("norm.weight")));
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_IN_PROJ, NM("mixer.in_proj.weight"), 2, s_in));
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_CONV_W, NM("mixer.conv1d.weight"), 3, s_conv));
        if (c->conv_bias) {
            SSM_TRY(m2_param(m, blk, SSM_MAMBA2_CONV_B, NM("mixer.conv1d.bias"), 1, s_dc));
        } else {
            /* No conv bias: zero the stack's initial one. */
            float *z = ssmi_alloc((size_t)dc, sizeof(float));
            if (!z) return SSM_FAIL(SSM_ERR_NOMEM);
            memset(z, 0, (size_t)dc * sizeof(float));
            st = ssm_mamba2_set_param(blk, SSM_MAMBA2_CONV_B, z, dc);
            ssmi_free(z);
            SSM_TRY(st);
        }
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_DT_BIAS, NM("mixer.dt_bias"), 1, s_h));
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_A_LOG, NM("mixer.A_log"), 1, s_h));
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_D, NM("mixer.D"), 1, s_d));
        if (c->norm_mode != SSM_MAMBA2_NORM_NONE)
            SSM_TRY(m2_param(m, blk, SSM_MAMBA2_NORM_W, NM("mixer.norm.weight"), 1, s_di));
        SSM_TRY(m2_param(m, blk, SSM_MAMBA2_OUT_PROJ, NM("mixer.out_proj.weight"), 2, s_out));
        for (int q = 0; q < SSM_MAMBA2_NPARAMS; q++) {
            int64_t cnt = 0;
            if (ssm_mamba2_param_count(blk, (ssm_mamba2_param)q, &cnt) == SSM_OK)
                m->bytes_owned += cnt * (int64_t)sizeof(float);
        }
        m->bytes_owned += dm * (int64_t)sizeof(float);      /* layer norm */
    }
#undef NM
    SSM_TRY(m2_norm(m, c->n_layer, "backbone.norm_f.weight"));
    m->bytes_owned += dm * (int64_t)sizeof(float);
    return SSM_OK;
}

static ssm_status open_weights(ssm_model *m, const char *dir)
{
    static const char *const names[] = {
        "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = path_join(dir, names[i]);
        if (!p) return SSM_FAIL(SSM_ERR_NOMEM);
        if (is_file(p)) {
            ssm_status st = ssm_tensor_file_open(&m->file, p);
            free(p);
            return st;
        }
        free(p);
    }
    return SSM_FAIL(SSM_ERR_IO);
}

static ssm_status load(ssm_model *m, const char *dir)
{
    char *cpath = path_join(dir, "config.json"), *json;
    size_t n;
    if (!cpath) return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status st = read_small(cpath, SSMI_CONFIG_MAX, &json, &n);
    free(cpath);
    if (st != SSM_OK) return st;
    st = ssmi_model_config_parse(json, n, &m->cfg);
    free(json);
    if (st != SSM_OK) return st;
    SSM_TRY(open_weights(m, dir));
    if (m->cfg.kind == 1) SSM_TRY(resolve_sizes(m));

    const ssmi_model_cfg *c = &m->cfg;
    const int64_t emb_shape[] = { c->vocab_padded, c->d_model };
    const int64_t dm_shape[] = { c->d_model };
    /* Embedding: mamba_ssm's name, else Hugging Face's (accepting either
     * whatever the config's naming: only the embedding differs). */
    const char *e1 = c->hf ? "backbone.embeddings.weight" : "backbone.embedding.weight";
    const char *e2 = c->hf ? "backbone.embedding.weight" : "backbone.embeddings.weight";
    SSM_TRY(tensor_w(m, e1, 1, 2, emb_shape, &m->emb));
    if (!m->emb.f && !m->emb.h) SSM_TRY(tensor_w(m, e2, 0, 2, emb_shape, &m->emb));
    /* lm_head: required untied; tied files usually omit it (safetensors
     * drops shared tensors) and otherwise hold the same values. */
    SSM_TRY(tensor_w(m, "lm_head.weight", c->tied, 2, emb_shape, &m->head));
    if (!m->head.f && !m->head.h) m->head = m->emb;
    if (c->kind == 2) {
        SSM_TRY(load_mamba2(m));
    } else {
        SSM_TRY(tensor(m, "backbone.norm_f.weight", 0, 1, dm_shape, &m->normf_w));
    }
    if (!c->rms_norm)
        SSM_TRY(tensor(m, "backbone.norm_f.bias", 0, 1, dm_shape, &m->normf_b));

    if (c->kind == 2) {
        /* A layer beyond n_layer: the config and the file disagree. */
        char nm[96];
        ssm_tensor_info inf;
        snprintf(nm, sizeof nm, "backbone.layers.%lld.mixer.A_log", (long long)c->n_layer);
        if (ssm_tensor_file_find(m->file, nm, &inf) == SSM_OK)
            return SSM_FAIL(SSM_ERR_FORMAT);
        return SSM_OK;
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t l = 0; l < c->n_layer; l++)
        SSM_TRY(load_layer(m, l, &m->layers[l]));
    /* A layer beyond n_layer means the config and the file disagree. */
    char name[96];
    ssm_tensor_info info;
    snprintf(name, sizeof name, "backbone.layers.%lld.mixer.A_log", (long long)c->n_layer);
    if (ssm_tensor_file_find(m->file, name, &info) == SSM_OK)
        return SSM_FAIL(SSM_ERR_FORMAT);
    return SSM_OK;
}

/* The first published layout ends after keep_bf16. */
#define SSMI_LOAD_OPTIONS_V1 \
    (offsetof(ssm_model_load_options, keep_bf16) + sizeof(int))

void ssm_model_load_options_init(ssm_model_load_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = (uint32_t)sizeof *opt;
}

ssm_status ssm_model_load(ssm_model **model, const char *path)
{
    return ssm_model_load_ex(model, path, NULL);
}

ssm_status ssm_model_load_ex(ssm_model **model, const char *path,
                             const ssm_model_load_options *opt)
{
    if (!model) return SSM_FAIL(SSM_ERR_ARG);
    *model = NULL;
    if (!path) return SSM_FAIL(SSM_ERR_ARG);
    /* The known layouts: the first (ending at keep_bf16) and this one;
     * fields beyond a caller's struct_size keep their defaults. */
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    if (opt) {
        if (opt->struct_size != SSMI_LOAD_OPTIONS_V1 && opt->struct_size != sizeof o)
            return SSM_FAIL(SSM_ERR_ARG);
        memcpy(&o, opt, opt->struct_size);
        if ((o.keep_bf16 != 0 && o.keep_bf16 != 1) ||
            (o.bf16_exact != 0 && o.bf16_exact != 1))
            return SSM_FAIL(SSM_ERR_ARG);
    }
    ssm_model *m = calloc(1, sizeof *m);
    if (!m) return SSM_FAIL(SSM_ERR_NOMEM);
    m->keep_bf16 = o.keep_bf16;
    /* The CPU is asked once, here: a model's arithmetic never changes. */
    m->bf16_dp = o.keep_bf16 && !o.bf16_exact && ssmi_bf16dp_ok();
    ssm_status st = load(m, path);
    if (st != SSM_OK) {
        ssm_model_destroy(m);
        return st;
    }
    *model = m;
    return SSM_OK;
}

void ssm_model_destroy(ssm_model *m)
{
    if (!m) return;
    for (int64_t i = 0; i < m->n_owned; i++) ssmi_free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    ssm_mamba2_stack_destroy(m->m2);
    ssm_tensor_file_close(m->file);
    free(m);
}

ssm_status ssm_model_dims(const ssm_model *m, int64_t *n_layer,
                          int64_t *d_model, int64_t *vocab)
{
    if (!m) return SSM_FAIL(SSM_ERR_ARG);
    if (n_layer) *n_layer = m->cfg.n_layer;
    if (d_model) *d_model = m->cfg.d_model;
    if (vocab) *vocab = m->cfg.vocab;
    return SSM_OK;
}

void ssm_model_info_init(ssm_model_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = (uint32_t)sizeof *info;
}

void ssmi_model_state_dims(const ssm_model *m, ssmi_state_dims *d)
{
    const ssmi_model_cfg *c = &m->cfg;
    d->n_layer = c->n_layer;
    d->d_model = c->d_model;
    d->d_inner = c->d_inner;
    d->d_state = c->d_state;
    d->d_conv = c->d_conv;
    d->dt_rank = c->dt_rank;
    d->kind = c->kind;
    d->nheads = c->kind == 2 ? c->nheads : 0;
    d->ngroups = c->kind == 2 ? c->ngroups : 0;
}

ssm_status ssm_model_get_info(const ssm_model *m, ssm_model_info *info)
{
    if (!m || !info || info->struct_size != sizeof *info)
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_model_cfg *c = &m->cfg;
    info->n_layer = c->n_layer;
    info->d_model = c->d_model;
    info->d_inner = c->d_inner;
    info->d_state = c->d_state;
    info->d_conv = c->d_conv;
    info->dt_rank = c->dt_rank;
    info->vocab = c->vocab;
    info->vocab_padded = c->vocab_padded;
    info->norm_eps = c->eps;
    info->rms_norm = c->rms_norm;
    info->tied = m->head.f == m->emb.f && m->head.h == m->emb.h;
    info->in_out_bias = c->bias;
    info->conv_bias = c->conv_bias;
    info->hf_names = c->hf;
    info->bytes_mapped = m->bytes_mapped;
    info->bytes_owned = m->bytes_owned;
    ssmi_state_dims d;
    ssmi_model_state_dims(m, &d);
    info->state_bytes = ssmi_state_bytes(&d);
    return SSM_OK;
}

/* ---- read-only views of the weights ---- */

void ssm_model_weights_init(ssm_model_weights *w)
{
    if (!w) return;
    memset(w, 0, sizeof *w);
    w->struct_size = (uint32_t)sizeof *w;
}

void ssm_model_layer_weights_init(ssm_model_layer_weights *w)
{
    if (!w) return;
    memset(w, 0, sizeof *w);
    w->struct_size = (uint32_t)sizeof *w;
}

ssm_status ssm_model_get_weights(const ssm_model *m, ssm_model_weights *w)
{
    if (!m || !w || w->struct_size != sizeof *w)
        return SSM_FAIL(SSM_ERR_ARG);
    /* A model loaded with keep_bf16 holds bfloat16 matrices: no float view. */
    if (m->emb.h || m->head.h) return SSM_FAIL(SSM_ERR_ARG);
    w->kind = m->cfg.kind == 2 ? 2 : 1;
    w->emb = m->emb.f;
    w->head = m->head.f;
    w->norm_f_w = m->normf_w;
    w->norm_f_b = m->normf_b;
    w->mamba2 = m->cfg.kind == 2 ? m->m2 : NULL;
    return SSM_OK;
}

ssm_status ssm_model_get_layer_weights(const ssm_model *m, int64_t layer,
                                       ssm_model_layer_weights *w)
{
    if (!m || !w || w->struct_size != sizeof *w || m->cfg.kind == 2 ||
        !m->layers || layer < 0 || layer >= m->cfg.n_layer)
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_layer *L = &m->layers[layer];
    if (L->in_w.h) return SSM_FAIL(SSM_ERR_ARG);   /* keep_bf16: no float view */
    w->norm_w = L->norm_w; w->norm_b = L->norm_b;
    w->in_w = L->in_w.f; w->in_b = L->in_b;
    w->conv_w = L->conv_w; w->conv_b = L->conv_b;
    w->x_w = L->x_w.f;
    w->dt_w = L->dt_w.f; w->dt_b = L->dt_b;
    w->A = L->A; w->D = L->D;
    w->out_w = L->out_w.f; w->out_b = L->out_b;
    return SSM_OK;
}
