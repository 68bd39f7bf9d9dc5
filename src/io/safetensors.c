/*
 * safetensors.c -- the safetensors format (huggingface/safetensors, "format"
 * section of its README): an 8-byte little-endian header length N, N bytes
 * of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}, then the data, offsets relative to its start.
 *
 * The reader trusts nothing: the header length is checked against the file
 * and a limit, the JSON must be well-formed UTF-8 with nothing but spaces
 * after it, names are unique (cJSON keeps repeated keys as separate
 * children, so walking the object sees every one), each tensor's range lies
 * inside the data with begin <= end and end - begin = dtype size x product
 * of the shape (overflow-checked), and no two ranges overlap.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

/* JSON numbers reach us as doubles: accept the integers a double holds
 * exactly, [0, 2^53).  No real file has a tensor of 2^53 bytes. */
static int json_uint(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d < 9007199254740992.0) || d != floor(d))
        return 0;
    *out = (int64_t)d;
    return 1;
}

static int parse_dtype(const cJSON *v, ssm_dtype *dt)
{
    if (!cJSON_IsString(v))
        return 0;
    if (strcmp(v->valuestring, "F32") == 0)
        *dt = SSM_DTYPE_F32;
    else if (strcmp(v->valuestring, "F16") == 0)
        *dt = SSM_DTYPE_F16;
    else if (strcmp(v->valuestring, "BF16") == 0)
        *dt = SSM_DTYPE_BF16;
    else
        return 0;   /* F64, I64, F8_*, ...: not supported by libssm */
    return 1;
}

typedef struct range {
    uint64_t begin, end;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* One tensor entry of the header -> t (data pointer into data[0..dlen)). */
static ssm_status parse_entry(const cJSON *e, const unsigned char *data,
                              uint64_t dlen, ssmi_tensor *t, range *r)
{
    if (!cJSON_IsObject(e))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    memset(t, 0, sizeof *t);
    if (!parse_dtype(dtype, &t->dtype) || !cJSON_IsArray(shape) ||
        !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return SSM_FAIL(SSM_ERR_FORMAT);
    int nd = 0;
    for (const cJSON *s = shape->child; s; s = s->next) {
        if (nd == SSM_TENSOR_MAX_DIMS || !json_uint(s, &t->shape[nd]))
            return SSM_FAIL(SSM_ERR_FORMAT);
        nd++;
    }
    t->ndim = nd;
    int64_t b, en;
    if (!json_uint(offs->child, &b) || !json_uint(offs->child->next, &en))
        return SSM_FAIL(SSM_ERR_FORMAT);
    if (b > en || (uint64_t)en > dlen)
        return SSM_FAIL(SSM_ERR_FORMAT);
    if (!ssmi_shape_bytes(t->shape, nd, ssm_dtype_size(t->dtype), &t->numel,
                          &t->nbytes) ||
        t->nbytes != (uint64_t)(en - b))
        return SSM_FAIL(SSM_ERR_FORMAT);
    t->data = data + b;
    r->begin = (uint64_t)b;
    r->end = (uint64_t)en;
    return SSM_OK;
}

static ssm_status parse_metadata(const cJSON *m, ssmi_tlist *out)
{
    if (!cJSON_IsObject(m))
        return SSM_FAIL(SSM_ERR_FORMAT);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!e->string || !cJSON_IsString(e))
            return SSM_FAIL(SSM_ERR_FORMAT);
        for (const cJSON *p = m->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0)
                return SSM_FAIL(SSM_ERR_FORMAT);
        SSM_TRY(ssmi_tlist_push_meta(out, e->string, e->valuestring));
    }
    return SSM_OK;
}

ssm_status ssmi_safetensors_parse(const unsigned char *buf, size_t len,
                                  ssmi_tlist *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < 8)
        return SSM_FAIL(SSM_ERR_FORMAT);
    uint64_t h = ssmi_le64(buf);
    if (h < 2 || h > SSMI_ST_MAX_HEADER || h > (uint64_t)len - 8)
        return SSM_FAIL(SSM_ERR_FORMAT);
    const unsigned char *hdr = buf + 8, *data = buf + 8 + h;
    uint64_t dlen = (uint64_t)len - 8 - h;
    if (hdr[0] != '{' || !ssmi_utf8_ok(hdr, (size_t)h))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const char *end = NULL;
    cJSON *root = ssmi_json_parse((const char *)hdr, (size_t)h, &end);
    if (!root)
        return SSM_FAIL(SSM_ERR_FORMAT);
    ssm_status st = SSM_OK;
    range *rg = NULL;
    for (const char *p = end; p < (const char *)hdr + h; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = SSM_FAIL(SSM_ERR_FORMAT);
        goto done;
    }
    int64_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        n++;
    rg = malloc((size_t)(n ? n : 1) * sizeof *rg);
    if (!rg) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    int64_t nr = 0, seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            st = seen_meta++ ? SSM_FAIL(SSM_ERR_FORMAT) : parse_metadata(e, out);
            if (st != SSM_OK)
                goto done;
            continue;
        }
        ssmi_tensor t;
        st = parse_entry(e, data, dlen, &t, &rg[nr]);
        if (st == SSM_OK) {
            t.name = e->string;
            st = ssmi_tlist_push(out, &t);
        }
        if (st != SSM_OK)
            goto done;
        nr++;
    }
    st = ssmi_tlist_unique(out);
    if (st != SSM_OK)
        goto done;
    /* No two non-empty ranges overlap (empty tensors take no bytes). */
    qsort(rg, (size_t)nr, sizeof *rg, cmp_range);
    uint64_t last_end = 0;
    for (int64_t i = 0; i < nr; i++) {
        if (rg[i].begin == rg[i].end)
            continue;
        if (rg[i].begin < last_end) {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        last_end = rg[i].end;
    }
done:
    free(rg);
    cJSON_Delete(root);
    if (st != SSM_OK)
        ssmi_tlist_free(out);
    return st;
}

/* ------------------------------------------------------------------ */
/* writer                                                              */

typedef struct sbuf {
    char  *p;
    size_t n, cap;
    int    oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal: quote, backslash and control characters escaped
 * (s is already known to be valid UTF-8). */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else
            sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

static void sb_i64(sbuf *b, int64_t v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%lld", (long long)v);
    sb_put(b, t, (size_t)k);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 if the n strings are pairwise distinct (NOMEM reported through *st). */
static int all_distinct(const char *const *s, int64_t n, ssm_status *st)
{
    if (n < 2)
        return 1;
    const char **c = malloc((size_t)n * sizeof *c);
    if (!c) {
        *st = SSM_FAIL(SSM_ERR_NOMEM);
        return 0;
    }
    memcpy(c, s, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_str);
    int ok = 1;
    for (int64_t i = 1; i < n && ok; i++)
        ok = strcmp(c[i - 1], c[i]) != 0;
    free(c);
    return ok;
}

static int text_ok(const char *s)
{
    return s && ssmi_utf8_ok((const unsigned char *)s, strlen(s));
}

static ssm_status write_all(int fd, const void *p, uint64_t n)
{
    const unsigned char *c = p;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t w = write(fd, c, k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return SSM_FAIL(SSM_ERR_IO);
        c += w;
        n -= (uint64_t)w;
    }
    return SSM_OK;
}

static const char *dtype_name(ssm_dtype d)
{
    return d == SSM_DTYPE_F32 ? "F32" : d == SSM_DTYPE_F16 ? "F16" : "BF16";
}

ssm_status ssm_safetensors_write(const char *path, int64_t n,
                                 const ssm_tensor_desc *tensors, int64_t n_meta,
                                 const char *const *keys,
                                 const char *const *values)
{
    if (!path || n < 0 || (n > 0 && !tensors) || n_meta < 0 ||
        (n_meta > 0 && (!keys || !values)) ||
        n > (int64_t)(SIZE_MAX / sizeof(uint64_t)))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_status st = SSM_OK;
    uint64_t *bytes = malloc((size_t)(n ? n : 1) * sizeof *bytes);
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    sbuf hb = {0};
    char *tmp = NULL;
    int fd = -1;
    if (!bytes || !names) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const ssm_tensor_desc *t = &tensors[i];
        int64_t numel;
        if (!text_ok(t->name) || strcmp(t->name, "__metadata__") == 0 ||
            ssm_dtype_size(t->dtype) == 0 || t->ndim < 0 ||
            t->ndim > SSM_TENSOR_MAX_DIMS || (t->ndim > 0 && !t->shape) ||
            !ssmi_shape_bytes(t->shape, t->ndim, ssm_dtype_size(t->dtype),
                              &numel, &bytes[i]) ||
            (bytes[i] > 0 && !t->data)) {
            st = SSM_FAIL(SSM_ERR_ARG);
            goto done;
        }
        names[i] = t->name;
    }
    for (int64_t i = 0; i < n_meta; i++)
        if (!text_ok(keys[i]) || !text_ok(values[i])) {
            st = SSM_FAIL(SSM_ERR_ARG);
            goto done;
        }
    if (!all_distinct(names, n, &st) || !all_distinct(keys, n_meta, &st)) {
        if (st == SSM_OK)
            st = SSM_FAIL(SSM_ERR_ARG);
        goto done;
    }
    /* the header, __metadata__ first as upstream writes it */
    sb_str(&hb, "{");
    if (n_meta > 0) {
        sb_str(&hb, "\"__metadata__\":{");
        for (int64_t i = 0; i < n_meta; i++) {
            if (i)
                sb_str(&hb, ",");
            sb_json(&hb, keys[i]);
            sb_str(&hb, ":");
            sb_json(&hb, values[i]);
        }
        sb_str(&hb, "}");
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const ssm_tensor_desc *t = &tensors[i];
        if (i || n_meta > 0)
            sb_str(&hb, ",");
        sb_json(&hb, t->name);
        sb_str(&hb, ":{\"dtype\":\"");
        sb_str(&hb, dtype_name(t->dtype));
        sb_str(&hb, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_str(&hb, ",");
            sb_i64(&hb, t->shape[d]);
        }
        sb_str(&hb, "],\"data_offsets\":[");
        if (bytes[i] >= (1ull << 53) - off) {   /* the reader's limit */
            st = SSM_FAIL(SSM_ERR_ARG);
            goto done;
        }
        sb_i64(&hb, (int64_t)off);
        sb_str(&hb, ",");
        off += bytes[i];
        sb_i64(&hb, (int64_t)off);
        sb_str(&hb, "]}");
    }
    sb_str(&hb, "}");
    /* pad with spaces so the data starts 8-byte aligned (8 + N, N % 8 == 0) */
    while (!hb.oom && hb.n % 8 != 0)
        sb_str(&hb, " ");
    if (hb.oom) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    if (hb.n > SSMI_ST_MAX_HEADER) {
        st = SSM_FAIL(SSM_ERR_ARG);
        goto done;
    }
    /* temporary file beside path, renamed over it when complete */
    size_t pl = strlen(path);
    tmp = malloc(pl + 16);
    if (!tmp) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        tmp = NULL;
        st = SSM_FAIL(SSM_ERR_IO);
        goto done;
    }
    (void)fchmod(fd, 0644);   /* mkstemp's 0600 would hide the weights */
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)hb.n >> (8 * k));
    st = write_all(fd, len8, 8);
    if (st == SSM_OK)
        st = write_all(fd, hb.p, hb.n);
    for (int64_t i = 0; i < n && st == SSM_OK; i++)
        st = write_all(fd, tensors[i].data, bytes[i]);
    if (close(fd) != 0 && st == SSM_OK)
        st = SSM_FAIL(SSM_ERR_IO);
    fd = -1;
    if (st == SSM_OK && rename(tmp, path) != 0)
        st = SSM_FAIL(SSM_ERR_IO);
done:
    if (fd >= 0)
        close(fd);
    if (tmp && st != SSM_OK)
        unlink(tmp);
    free(tmp);
    free(hb.p);
    free(bytes);
    free(names);
    return st;
}
