/*
 * state.c -- recurrent state of a language model: one slot per sequence,
 * reset, copy between slots, and a versioned, checked byte format for
 * saving and restoring a slot (prompt caching).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/model_internal.h"
#include "layers/layers_internal.h"

#define STATE_MAGIC "SSMSTATE"
#define STATE_VERSION 1u
#define STATE_KIND_MAMBA1 1u
#define STATE_KIND_MAMBA2 2u
#define STATE_HEADER (8 + 4 + 4 + 6 * 8)

/* Floats of one slot as saved: per layer conv [Di][K-1] (the last K-1
 * inputs; memory has a K-float window, model_internal.h) and h [Di][N]. */
static int64_t slot_floats(const ssmi_state_dims *d, int64_t *conv, int64_t *h)
{
    int64_t c, hh, per, tot;
    if (d->kind == 2) {
        /* Mamba-2, per layer (ssm/mamba2.h): conv [Dc][K] with Dc = Di +
         * 2 G N, ssm [H][P][N] = [Di][N]. */
        int64_t gn, dc;
        if (!ssmi_mul_ok(d->ngroups, d->d_state, &gn) || gn > INT32_MAX ||
            (dc = d->d_inner + 2 * gn) < 0 || !ssmi_mul_ok(dc, d->d_conv, &c) ||
            !ssmi_mul_ok(d->d_inner, d->d_state, &hh) ||
            __builtin_add_overflow(c, hh, &per) || !ssmi_mul_ok(per, d->n_layer, &tot))
            return -1;
        if (conv) *conv = c;
        if (h) *h = hh;
        return tot;
    }
    if (!ssmi_mul_ok(d->d_inner, ssmi_kc(d), &c) ||
        !ssmi_mul_ok(d->d_inner, d->d_state, &hh) ||
        __builtin_add_overflow(c, hh, &per) ||
        !ssmi_mul_ok(per, d->n_layer, &tot))
        return -1;
    if (conv) *conv = c;
    if (h) *h = hh;
    return tot;
}

int64_t ssmi_state_bytes(const ssmi_state_dims *d)
{
    int64_t f = slot_floats(d, NULL, NULL), b;
    if (f < 0 || !ssmi_mul_ok(f, 4, &b) || b > INT64_MAX - STATE_HEADER - 8)
        return -1;
    return b + STATE_HEADER + 8;
}

#define conv_at ssmi_conv_at
#define h_at ssmi_h_at

/* Columns of the BF16 activation scratch: the longest product input (Dm
 * for in_proj and the head, Di for x_proj and out_proj, R for dt_proj;
 * Mamba-2: the head's Dm, the rest is never BF16),
 * rounded up to 32 (ssmi_bf16dp_scratch); bounded by sizes already
 * checked against overflow. */
static int64_t xh_cols(const ssmi_state_dims *d)
{
    int64_t k = d->d_model > d->d_inner ? d->d_model : d->d_inner;
    if (d->dt_rank > k) k = d->dt_rank;
    return k > INT64_MAX - 31 ? -1 : (k + 31) & ~(int64_t)31;
}

/* Mamba-2: one stack state per slot, plus the rows of the step's
 * embedding input and normed output ([maxB][Dm] each) and the head's
 * BF16 activation scratch. */
static ssm_status create_m2(ssm_model_state **state, const ssm_model *model,
                            int64_t max_batch, const ssmi_state_dims *d)
{
    int64_t rows_dm, nptr, rows_h;
    const int64_t nws = ssmi_mamba2_stack_slots_ws(model->m2, max_batch);
    if (nws < 0 || !ssmi_sizes_ok(&rows_dm, sizeof(float), 2, max_batch, d->d_model) ||
        !ssmi_sizes_ok(&nptr, sizeof(void *), 1, max_batch) ||
        !ssmi_sizes_ok(&rows_h, sizeof(uint16_t), 2, max_batch, xh_cols(d)) ||
        max_batch > INT32_MAX || slot_floats(d, NULL, NULL) < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_model_state *s = calloc(1, sizeof *s);
    if (!s) return SSM_FAIL(SSM_ERR_NOMEM);
    s->dims = *d;
    s->max_batch = max_batch;
    s->ntok = calloc((size_t)max_batch, sizeof *s->ntok);
    s->slot_tmp = calloc((size_t)max_batch, sizeof *s->slot_tmp);
    s->m2 = calloc((size_t)max_batch, sizeof *s->m2);
    s->m2_sel = calloc((size_t)max_batch, sizeof *s->m2_sel);
    s->res = ssmi_alloc((size_t)rows_dm, sizeof(float));
    s->nrm = ssmi_alloc((size_t)rows_dm, sizeof(float));
    s->xh = ssmi_alloc((size_t)rows_h, sizeof(uint16_t));
    s->m2_ws = ssmi_alloc((size_t)nws, sizeof(float));
    if (!s->ntok || !s->slot_tmp || !s->m2 || !s->m2_sel || !s->res || !s->nrm || !s->xh ||
        !s->m2_ws) {
        ssm_model_state_destroy(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t b = 0; b < max_batch; b++) {
        ssm_status st = ssm_mamba2_stack_state_create(&s->m2[b], model->m2, 1);
        if (st != SSM_OK) {
            ssm_model_state_destroy(s);
            return st == SSM_ERR_NOMEM ? SSM_FAIL(SSM_ERR_NOMEM) : SSM_FAIL(SSM_ERR_ARG);
        }
    }
    *state = s;
    return SSM_OK;
}

ssm_status ssm_model_state_create(ssm_model_state **state,
                                  const ssm_model *model, int64_t max_batch)
{
    if (!state) return SSM_FAIL(SSM_ERR_ARG);
    *state = NULL;
    if (!model || max_batch < 1) return SSM_FAIL(SSM_ERR_ARG);
    ssmi_state_dims d;
    ssmi_model_state_dims(model, &d);
    if (d.kind == 2) return create_m2(state, model, max_batch, &d);
    int64_t nconv, nh, rows_dm, rows_di, rows_r, rows_n, rows_h;
    if (!ssmi_sizes_ok(&nconv, sizeof(float), 4, d.n_layer, max_batch, d.d_inner,
                       ssmi_kw(&d)) ||
        !ssmi_sizes_ok(&nh, sizeof(float), 4, d.n_layer, max_batch, d.d_inner, d.d_state) ||
        !ssmi_sizes_ok(&rows_dm, sizeof(float), 2, max_batch, d.d_model) ||
        !ssmi_sizes_ok(&rows_di, sizeof(float), 2, max_batch, d.d_inner) ||
        !ssmi_sizes_ok(&rows_r, sizeof(float), 2, max_batch, d.dt_rank) ||
        !ssmi_sizes_ok(&rows_n, sizeof(float), 2, max_batch, d.d_state) ||
        !ssmi_sizes_ok(&rows_h, sizeof(uint16_t), 2, max_batch, xh_cols(&d)) ||
        max_batch > INT32_MAX || slot_floats(&d, NULL, NULL) < 0)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_model_state *s = calloc(1, sizeof *s);
    if (!s) return SSM_FAIL(SSM_ERR_NOMEM);
    s->dims = d;
    s->max_batch = max_batch;
    s->conv = ssmi_alloc((size_t)nconv, sizeof(float));
    s->h = ssmi_alloc((size_t)nh, sizeof(float));
    s->ntok = calloc((size_t)max_batch, sizeof *s->ntok);
    s->slot_tmp = calloc((size_t)max_batch, sizeof *s->slot_tmp);
    s->res = ssmi_alloc((size_t)rows_dm, sizeof(float));
    s->nrm = ssmi_alloc((size_t)rows_dm, sizeof(float));
    s->out = ssmi_alloc((size_t)rows_dm, sizeof(float));
    s->x = ssmi_alloc((size_t)rows_di, sizeof(float));
    s->z = ssmi_alloc((size_t)rows_di, sizeof(float));
    s->u = ssmi_alloc((size_t)rows_di, sizeof(float));
    s->delta = ssmi_alloc((size_t)rows_di, sizeof(float));
    s->y = ssmi_alloc((size_t)rows_di, sizeof(float));
    s->dtl = ssmi_alloc((size_t)rows_r, sizeof(float));
    s->bm = ssmi_alloc((size_t)rows_n, sizeof(float));
    s->cm = ssmi_alloc((size_t)rows_n, sizeof(float));
    s->xh = ssmi_alloc((size_t)rows_h, sizeof(uint16_t));
    s->xh2 = ssmi_alloc((size_t)rows_h, sizeof(uint16_t));
    if (!s->conv || !s->h || !s->ntok || !s->slot_tmp || !s->res || !s->nrm ||
        !s->out || !s->x || !s->z || !s->u || !s->delta || !s->y || !s->dtl ||
        !s->bm || !s->cm || !s->xh || !s->xh2) {
        ssm_model_state_destroy(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    memset(s->conv, 0, (size_t)nconv * sizeof(float));
    memset(s->h, 0, (size_t)nh * sizeof(float));
    memset(s->xh, 0, (size_t)rows_h * sizeof(uint16_t));
    memset(s->xh2, 0, (size_t)rows_h * sizeof(uint16_t));
    *state = s;
    return SSM_OK;
}

void ssm_model_state_destroy(ssm_model_state *s)
{
    if (!s) return;
    if (s->m2) {
        for (int64_t b = 0; b < s->max_batch; b++) ssm_mamba2_stack_state_destroy(s->m2[b]);
        free(s->m2);
    }
    free(s->m2_sel);
    ssmi_free(s->m2_ws);
    ssmi_free(s->conv); ssmi_free(s->h);
    free(s->ntok); free(s->slot_tmp);
    ssmi_free(s->res); ssmi_free(s->nrm); ssmi_free(s->out);
    ssmi_free(s->x); ssmi_free(s->z); ssmi_free(s->u); ssmi_free(s->delta);
    ssmi_free(s->y); ssmi_free(s->dtl); ssmi_free(s->bm); ssmi_free(s->cm);
    ssmi_free(s->xh); ssmi_free(s->xh2);
    free(s);
}

static void reset_slot(ssm_model_state *s, int64_t slot)
{
    const ssmi_state_dims *d = &s->dims;
    if (d->kind == 2) {
        (void)ssm_mamba2_stack_state_reset(s->m2[slot]);
        s->ntok[slot] = 0;
        return;
    }
    for (int64_t l = 0; l < d->n_layer; l++) {
        memset(conv_at(s, l, slot), 0, (size_t)(d->d_inner * ssmi_kw(d)) * sizeof(float));
        memset(h_at(s, l, slot), 0, (size_t)(d->d_inner * d->d_state) * sizeof(float));
    }
    s->ntok[slot] = 0;
}

ssm_status ssm_model_state_reset(ssm_model_state *s)
{
    if (!s) return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t b = 0; b < s->max_batch; b++) reset_slot(s, b);
    return SSM_OK;
}

ssm_status ssm_model_state_reset_slot(ssm_model_state *s, int64_t slot)
{
    if (!s || slot < 0 || slot >= s->max_batch) return SSM_FAIL(SSM_ERR_ARG);
    reset_slot(s, slot);
    return SSM_OK;
}

ssm_status ssm_model_state_tokens(const ssm_model_state *s, int64_t slot,
                                  int64_t *n_tokens)
{
    if (!s || !n_tokens || slot < 0 || slot >= s->max_batch)
        return SSM_FAIL(SSM_ERR_ARG);
    *n_tokens = s->ntok[slot];
    return SSM_OK;
}

/* Mamba-2 slot state to / from buf, laid out as the save format: per
 * layer conv [Dc][K] then ssm [H][P][N]. */
static ssm_status m2_get(const ssm_model_state *s, int64_t slot, float *buf)
{
    int64_t nc, nh;
    slot_floats(&s->dims, &nc, &nh);
    for (int64_t l = 0; l < s->dims.n_layer; l++) {
        ssm_mamba2_state *ls;
        SSM_TRY(ssm_mamba2_stack_state_layer(s->m2[slot], l, &ls));
        SSM_TRY(ssm_mamba2_state_get(ls, 1, buf, buf + nc));
        buf += nc + nh;
    }
    return SSM_OK;
}

/* All layers' values are checked (finite) before any layer changes. */
static ssm_status m2_set(ssm_model_state *s, int64_t slot, const float *buf)
{
    int64_t nc, nh, tot = slot_floats(&s->dims, &nc, &nh);
    uint32_t bad = 0;
    for (int64_t i = 0; i < tot; i++) {
        uint32_t u;
        memcpy(&u, &buf[i], 4);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) return SSM_FAIL(SSM_ERR_FORMAT);
    for (int64_t l = 0; l < s->dims.n_layer; l++) {
        ssm_mamba2_state *ls;
        SSM_TRY(ssm_mamba2_stack_state_layer(s->m2[slot], l, &ls));
        SSM_TRY(ssm_mamba2_state_set(ls, 1, buf, buf + nc));
        buf += nc + nh;
    }
    return SSM_OK;
}

ssm_status ssm_model_state_copy(ssm_model_state *dst, int64_t dst_slot,
                                const ssm_model_state *src, int64_t src_slot)
{
    if (!dst || !src || dst_slot < 0 || dst_slot >= dst->max_batch ||
        src_slot < 0 || src_slot >= src->max_batch ||
        memcmp(&dst->dims, &src->dims, sizeof dst->dims))
        return SSM_FAIL(SSM_ERR_ARG);
    if (dst == src && dst_slot == src_slot) return SSM_OK;
    const ssmi_state_dims *d = &dst->dims;
    if (d->kind == 2) {
        /* Through a buffer of one slot (the Mamba-2 state's get/set). */
        int64_t tot = slot_floats(d, NULL, NULL);
        float *buf = ssmi_alloc((size_t)(tot > 0 ? tot : 1), sizeof(float));
        if (!buf) return SSM_FAIL(SSM_ERR_NOMEM);
        ssm_status st = m2_get(src, src_slot, buf);
        if (st == SSM_OK) st = m2_set(dst, dst_slot, buf);
        ssmi_free(buf);
        SSM_TRY(st);
        dst->ntok[dst_slot] = src->ntok[src_slot];
        return SSM_OK;
    }
    for (int64_t l = 0; l < d->n_layer; l++) {
        memcpy(conv_at(dst, l, dst_slot), conv_at(src, l, src_slot),
               (size_t)(d->d_inner * ssmi_kw(d)) * sizeof(float));
        memcpy(h_at(dst, l, dst_slot), h_at(src, l, src_slot),
               (size_t)(d->d_inner * d->d_state) * sizeof(float));
    }
    dst->ntok[dst_slot] = src->ntok[src_slot];
    return SSM_OK;
}

/* ---- the byte format ---- */

static uint64_t fnv1a(uint64_t h, const unsigned char *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ull

/* Little-endian whatever the host's order. */
static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put_floats(unsigned char *p, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(p + 4 * i, u);
    }
}
static int get_floats(const unsigned char *p, float *x, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = get_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
        acc += x[i] * 0.0f;
    }
    return acc == 0.0f;
}

static void header(const ssm_model_state *s, int64_t slot, unsigned char *p)
{
    const ssmi_state_dims *d = &s->dims;
    memcpy(p, STATE_MAGIC, 8);
    put_u32(p + 8, STATE_VERSION);
    put_u32(p + 12, d->kind == 2 ? STATE_KIND_MAMBA2 : STATE_KIND_MAMBA1);
    put_u64(p + 16, (uint64_t)d->n_layer);
    put_u64(p + 24, (uint64_t)d->d_model);
    put_u64(p + 32, (uint64_t)d->d_inner);
    put_u64(p + 40, (uint64_t)d->d_state);
    put_u64(p + 48, (uint64_t)d->d_conv);
    put_u64(p + 56, (uint64_t)s->ntok[slot]);
}

ssm_status ssm_model_state_save(const ssm_model_state *s, int64_t slot,
                                void *buf, int64_t cap, int64_t *nbytes)
{
    if (!s || !nbytes || slot < 0 || slot >= s->max_batch || cap < 0 ||
        (cap > 0 && !buf))
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_state_dims *d = &s->dims;
    int64_t size = ssmi_state_bytes(d);
    *nbytes = size;
    if (cap < size) {
        /* Too small: the prefix that fits, as snprintf would. */
        if (cap == 0) return SSM_OK;
        unsigned char *tmp = malloc((size_t)size);
        if (!tmp) return SSM_FAIL(SSM_ERR_NOMEM);
        int64_t dummy;
        ssm_status st = ssm_model_state_save(s, slot, tmp, size, &dummy);
        if (st == SSM_OK) memcpy(buf, tmp, (size_t)cap);
        free(tmp);
        return st;
    }
    unsigned char *p = buf, *q = p + STATE_HEADER;
    header(s, slot, p);
    if (d->kind == 2) {
        int64_t tot = slot_floats(d, NULL, NULL);
        float *tmp = ssmi_alloc((size_t)(tot > 0 ? tot : 1), sizeof(float));
        if (!tmp) return SSM_FAIL(SSM_ERR_NOMEM);
        ssm_status st = m2_get(s, slot, tmp);
        if (st == SSM_OK) {
            put_floats(q, tmp, tot);
            q += 4 * tot;
            put_u64(q, fnv1a(FNV_OFFSET, p, q - p));
        }
        ssmi_free(tmp);
        return st;
    }
    const int64_t kc = ssmi_kc(d), kw = ssmi_kw(d), nh = d->d_inner * d->d_state;
    for (int64_t l = 0; l < d->n_layer; l++) {
        /* each window's last K-1 inputs: the saved form */
        const float *cw = conv_at(s, l, slot);
        for (int64_t c = 0; c < d->d_inner; c++) {
            put_floats(q, cw + c * kw + 1, kc);
            q += 4 * kc;
        }
        put_floats(q, h_at(s, l, slot), nh);
        q += 4 * nh;
    }
    put_u64(q, fnv1a(FNV_OFFSET, p, q - p));
    return SSM_OK;
}

ssm_status ssm_model_state_restore(ssm_model_state *s, int64_t slot,
                                   const void *buf, int64_t nbytes)
{
    if (!s || slot < 0 || slot >= s->max_batch || nbytes < 0 ||
        (nbytes > 0 && !buf))
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_state_dims *d = &s->dims;
    const unsigned char *p = buf;
    int64_t size = ssmi_state_bytes(d);
    if (nbytes < STATE_HEADER + 8 || memcmp(p, STATE_MAGIC, 8) ||
        get_u32(p + 8) != STATE_VERSION || get_u32(p + 12) != (d->kind == 2 ? STATE_KIND_MAMBA2 : STATE_KIND_MAMBA1) ||
        get_u64(p + 16) != (uint64_t)d->n_layer || get_u64(p + 24) != (uint64_t)d->d_model ||
        get_u64(p + 32) != (uint64_t)d->d_inner || get_u64(p + 40) != (uint64_t)d->d_state ||
        get_u64(p + 48) != (uint64_t)d->d_conv || get_u64(p + 56) > (uint64_t)INT64_MAX ||
        nbytes != size ||
        get_u64(p + size - 8) != fnv1a(FNV_OFFSET, p, size - 8))
        return SSM_FAIL(SSM_ERR_FORMAT);
    /* Decode into scratch first: the slot changes only if all is well. */
    const int64_t kc = ssmi_kc(d), kw = ssmi_kw(d), nh = d->d_inner * d->d_state;
    int64_t tot = slot_floats(d, NULL, NULL);
    float *tmp = ssmi_alloc((size_t)(tot > 0 ? tot : 1), sizeof(float));
    if (!tmp) return SSM_FAIL(SSM_ERR_NOMEM);
    if (!get_floats(p + STATE_HEADER, tmp, tot)) {
        ssmi_free(tmp);
        return SSM_FAIL(SSM_ERR_FORMAT);
    }
    if (d->kind == 2) {
        ssm_status st = m2_set(s, slot, tmp);
        if (st == SSM_OK) s->ntok[slot] = (int64_t)get_u64(p + 56);
        ssmi_free(tmp);
        return st;
    }
    const float *t = tmp;
    for (int64_t l = 0; l < d->n_layer; l++) {
        float *cw = conv_at(s, l, slot);
        for (int64_t c = 0; c < d->d_inner; c++) {
            cw[c * kw] = 0.0f;
            memcpy(cw + c * kw + 1, t, (size_t)kc * sizeof(float));
            t += kc;
        }
        memcpy(h_at(s, l, slot), t, (size_t)nh * sizeof(float));
        t += nh;
    }
    s->ntok[slot] = (int64_t)get_u64(p + 56);
    ssmi_free(tmp);
    return SSM_OK;
}

ssm_status ssm_model_state_save_file(const ssm_model_state *s, int64_t slot,
                                     const char *path)
{
    if (!s || !path || slot < 0 || slot >= s->max_batch)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t size = ssmi_state_bytes(&s->dims);
    unsigned char *buf = malloc((size_t)size);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!buf || !tmp) { free(buf); free(tmp); return SSM_FAIL(SSM_ERR_NOMEM); }
    int64_t n;
    ssm_status st = ssm_model_state_save(s, slot, buf, size, &n);
    if (st == SSM_OK) {
        snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (!f) {
            st = SSM_FAIL(SSM_ERR_IO);
        } else {
            int bad = fwrite(buf, 1, (size_t)n, f) != (size_t)n;
            bad |= fclose(f) != 0;
            if (bad || rename(tmp, path) != 0) {
                remove(tmp);
                st = SSM_FAIL(SSM_ERR_IO);
            }
        }
    }
    free(buf);
    free(tmp);
    return st;
}

ssm_status ssm_model_state_restore_file(ssm_model_state *s, int64_t slot,
                                        const char *path)
{
    if (!s || !path || slot < 0 || slot >= s->max_batch)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t size = ssmi_state_bytes(&s->dims);
    FILE *f = fopen(path, "rb");
    if (!f) return SSM_FAIL(SSM_ERR_IO);
    /* One byte more than expected: a longer file is detected, not cut. */
    unsigned char *buf = malloc((size_t)size + 1);
    if (!buf) { fclose(f); return SSM_FAIL(SSM_ERR_NOMEM); }
    size_t n = fread(buf, 1, (size_t)size + 1, f);
    int err = ferror(f);
    fclose(f);
    ssm_status st = err ? SSM_FAIL(SSM_ERR_IO)
                        : ssm_model_state_restore(s, slot, buf, (int64_t)n);
    free(buf);
    return st;
}
