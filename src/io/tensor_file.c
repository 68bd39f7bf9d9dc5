/*
 * tensor_file.c -- ssm_tensor_file: open (memory-map, find the format from
 * the content, validate everything), list, find, read as float.
 *
 * A file is mapped read-only once; tensors are (name, dtype, shape, pointer
 * into the mapping).  F32 reads are one memcpy from the mapping, so loading
 * costs about one read of the file; F16 and BF16 are converted on the fly.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "src/io reads little-endian tensor data with host loads: port the conversions first"
#endif

typedef struct ssmi_map {
    void  *base;
    size_t len;
    int    fd;        /* kept open for pread (-1 once unmapped) */
} ssmi_map;

struct ssm_tensor_file {
    ssmi_tlist list;
    int64_t   *order;     /* indices of list.t sorted by name (bsearch) */
    ssmi_map  *maps;
    int64_t    n_maps;
    int64_t   *tmap;      /* tmap[i]: the mapping that holds tensor i */
};

/* ------------------------------------------------------------------ */
/* tensor lists                                                        */

void ssmi_tlist_free(ssmi_tlist *l)
{
    if (!l)
        return;
    for (int64_t i = 0; i < l->n; i++)
        free(l->t[i].name);
    for (int64_t i = 0; i < 2 * l->n_meta; i++)
        free(l->meta[i]);
    free(l->t);
    free(l->meta);
    memset(l, 0, sizeof *l);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

ssm_status ssmi_tlist_push(ssmi_tlist *l, const ssmi_tensor *t)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 16;
        if (cap > (int64_t)(SIZE_MAX / sizeof *l->t))
            return SSM_FAIL(SSM_ERR_NOMEM);
        ssmi_tensor *nt = realloc(l->t, (size_t)cap * sizeof *nt);
        if (!nt)
            return SSM_FAIL(SSM_ERR_NOMEM);
        l->t = nt;
        l->cap = cap;
    }
    char *name = dup_str(t->name);
    if (!name)
        return SSM_FAIL(SSM_ERR_NOMEM);
    l->t[l->n] = *t;
    l->t[l->n].name = name;
    l->n++;
    return SSM_OK;
}

ssm_status ssmi_tlist_push_meta(ssmi_tlist *l, const char *key, const char *value)
{
    if (l->n_meta == l->cap_meta) {
        int64_t cap = l->cap_meta ? 2 * l->cap_meta : 8;
        if (cap > (int64_t)(SIZE_MAX / (2 * sizeof *l->meta)))
            return SSM_FAIL(SSM_ERR_NOMEM);
        char **nm = realloc(l->meta, (size_t)(2 * cap) * sizeof *nm);
        if (!nm)
            return SSM_FAIL(SSM_ERR_NOMEM);
        l->meta = nm;
        l->cap_meta = cap;
    }
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    l->meta[2 * l->n_meta] = k;
    l->meta[2 * l->n_meta + 1] = v;
    l->n_meta++;
    return SSM_OK;
}

/* Sorting indices by name: the comparison reads the names through a
 * context pointer, which qsort lacks, so sort (name, index) pairs. */
typedef struct name_idx {
    const char *name;
    int64_t     idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b)
{
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* order[i] = index of the i-th name in sorted order; FORMAT on a duplicate. */
static ssm_status sorted_order(const ssmi_tlist *l, int64_t **order_out)
{
    *order_out = NULL;
    size_t n = (size_t)l->n;
    name_idx *p = malloc((n ? n : 1) * sizeof *p);
    int64_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!p || !order) {
        free(p);
        free(order);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        p[i].name = l->t[i].name;
        p[i].idx = (int64_t)i;
    }
    qsort(p, n, sizeof *p, cmp_name_idx);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(p[i - 1].name, p[i].name) == 0) {
            free(p);
            free(order);
            return SSM_FAIL(SSM_ERR_FORMAT);
        }
        order[i] = p[i].idx;
    }
    free(p);
    *order_out = order;
    return SSM_OK;
}

ssm_status ssmi_tlist_unique(const ssmi_tlist *l)
{
    int64_t *order;
    SSM_TRY(sorted_order(l, &order));
    free(order);
    return SSM_OK;
}

static int64_t find_sorted(const ssmi_tlist *l, const int64_t *order, const char *name)
{
    int64_t lo = 0, hi = l->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->t[order[mid]].name, name);
        if (c == 0)
            return order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int ssmi_shape_bytes(const int64_t *shape, int ndim, size_t elem,
                     int64_t *numel, uint64_t *bytes)
{
    int64_t p = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || !ssmi_mul_ok(p, shape[d], &p))
            return 0;
    }
    int64_t b;
    if (!ssmi_mul_ok(p, (int64_t)elem, &b))
        return 0;
    *numel = p;
    *bytes = (uint64_t)b;
    return 1;
}

int ssmi_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

size_t ssm_dtype_size(ssm_dtype dtype)
{
    switch (dtype) {
    case SSM_DTYPE_F32:  return 4;
    case SSM_DTYPE_F16:  return 2;
    case SSM_DTYPE_BF16: return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* mapping                                                             */

/* Map path read-only.  Missing / unreadable / not a regular file: IO;
 * empty: FORMAT (no tensor format is 0 bytes long). */
static ssm_status map_file(const char *path, ssmi_map *m)
{
    m->base = NULL;
    m->len = 0;
    m->fd = -1;
    /* O_NONBLOCK: a FIFO must not block the open (it is then refused as
     * not a regular file); it changes nothing for regular files */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return SSM_FAIL(SSM_ERR_IO);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return SSM_FAIL(SSM_ERR_IO);
    }
    if (st.st_size == 0) {
        close(fd);
        return SSM_FAIL(SSM_ERR_FORMAT);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return SSM_FAIL(e == ENOMEM ? SSM_ERR_NOMEM : SSM_ERR_IO);
    }
    m->base = p;
    m->len = (size_t)st.st_size;
    m->fd = fd;
    return SSM_OK;
}

static void unmap(ssmi_map *m)
{
    if (m->base)
        munmap(m->base, m->len);
    if (m->fd >= 0)
        close(m->fd);
    m->base = NULL;
    m->fd = -1;
}

static ssm_status add_map(ssm_tensor_file *f, const char *path, ssmi_map *out)
{
    ssmi_map *nm = realloc(f->maps, (size_t)(f->n_maps + 1) * sizeof *nm);
    if (!nm)
        return SSM_FAIL(SSM_ERR_NOMEM);
    f->maps = nm;
    SSM_TRY(map_file(path, &f->maps[f->n_maps]));
    *out = f->maps[f->n_maps++];
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* sharded checkpoints: model.safetensors.index.json                   */

/* A shard named in a weight_map is a plain file name beside the index:
 * no directory parts, so an index can never point outside its folder. */
static int shard_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 4096 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    return strchr(s, '/') == NULL && strchr(s, '\\') == NULL &&
           ssmi_utf8_ok((const unsigned char *)s, n);
}

typedef struct shard {
    const char *file;      /* the weight_map's string (owned by the JSON) */
    ssmi_tlist  list;
    int64_t    *order;
} shard;

static ssm_status open_index(ssm_tensor_file *f, const char *path,
                             const unsigned char *buf, size_t len)
{
    if (len > SSMI_ST_MAX_HEADER || !ssmi_utf8_ok(buf, len))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const char *end = NULL;
    cJSON *root = ssmi_json_parse((const char *)buf, len, &end);
    if (!root)
        return SSM_FAIL(SSM_ERR_FORMAT);
    ssm_status st = SSM_OK;
    shard *sh = NULL;
    int64_t n_sh = 0;
    char *spath = NULL;
    for (const char *p = end; p && p < (const char *)buf + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        st = SSM_FAIL(SSM_ERR_FORMAT);
        goto done;
    }
    int64_t n_w = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->string || !shard_name_ok(e->valuestring)) {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        n_w++;
    }
    sh = calloc((size_t)(n_w ? n_w : 1), sizeof *sh);
    /* directory of the index, with its trailing slash */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    spath = malloc(dlen + 4097 + 1);
    if (!sh || !spath) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    memcpy(spath, path, dlen);
    for (const cJSON *e = wm->child; e; e = e->next) {
        int64_t s;
        for (s = 0; s < n_sh; s++)
            if (strcmp(sh[s].file, e->valuestring) == 0)
                break;
        if (s == n_sh) {
            /* a new shard: map it and parse it whole */
            sh[s].file = e->valuestring;
            n_sh++;
            strcpy(spath + dlen, e->valuestring);
            ssmi_map m;
            st = add_map(f, spath, &m);
            if (st == SSM_OK)
                st = ssmi_safetensors_parse(m.base, m.len, &sh[s].list);
            if (st == SSM_OK)
                st = sorted_order(&sh[s].list, &sh[s].order);
            if (st != SSM_OK)
                goto done;
            /* the shards' __metadata__, merged (a key's first value wins) */
            for (int64_t k = 0; k < sh[s].list.n_meta; k++) {
                const char *key = sh[s].list.meta[2 * k];
                int64_t j = 0;
                while (j < f->list.n_meta && strcmp(f->list.meta[2 * j], key) != 0)
                    j++;
                if (j < f->list.n_meta)
                    continue;
                st = ssmi_tlist_push_meta(&f->list, key, sh[s].list.meta[2 * k + 1]);
                if (st != SSM_OK)
                    goto done;
            }
        }
        int64_t i = find_sorted(&sh[s].list, sh[s].order, e->string);
        if (i < 0) {   /* mapped to a shard that lacks it */
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        st = ssmi_tlist_push(&f->list, &sh[s].list.t[i]);
        if (st != SSM_OK)
            goto done;
    }
done:
    for (int64_t s = 0; sh && s < n_w; s++) {
        ssmi_tlist_free(&sh[s].list);
        free(sh[s].order);
    }
    free(sh);
    free(spath);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------ */
/* open / close                                                        */

void ssm_tensor_file_close(ssm_tensor_file *f)
{
    if (!f)
        return;
    ssmi_tlist_free(&f->list);
    free(f->order);
    free(f->tmap);
    for (int64_t i = 0; i < f->n_maps; i++)
        unmap(&f->maps[i]);
    free(f->maps);
    free(f);
}

/* The kind of file from its first bytes.  A safetensors file has an 8-byte
 * length that fits the file followed by '{' -- tested first, since its
 * length may begin with the bytes "PK" or '{' (a header of 19280 bytes
 * does); a zip starts with "PK"; an index is JSON text from its first byte. */
static int is_safetensors(const unsigned char *b, size_t len)
{
    return len >= 9 && ssmi_le64(b) <= len - 8 && b[8] == '{';
}

static int is_index(const unsigned char *b, size_t len)
{
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
        i++;
    return i < len && b[i] == '{';
}

/* Which mapping holds each tensor (for pread). */
static ssm_status locate(ssm_tensor_file *f)
{
    f->tmap = malloc((size_t)(f->list.n ? f->list.n : 1) * sizeof *f->tmap);
    if (!f->tmap)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t i = 0; i < f->list.n; i++) {
        const unsigned char *d = f->list.t[i].data;
        int64_t k = 0;
        while (k < f->n_maps &&
               !(f->maps[k].base && d >= (const unsigned char *)f->maps[k].base &&
                 d <= (const unsigned char *)f->maps[k].base + f->maps[k].len))
            k++;
        if (k == f->n_maps)
            return SSM_FAIL(SSM_ERR_FORMAT);   /* cannot happen: parsers check */
        f->tmap[i] = k;
    }
    return SSM_OK;
}

ssm_status ssm_tensor_file_open(ssm_tensor_file **file, const char *path)
{
    if (!file)
        return SSM_FAIL(SSM_ERR_ARG);
    *file = NULL;
    if (!path)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_tensor_file *f = calloc(1, sizeof *f);
    if (!f)
        return SSM_FAIL(SSM_ERR_NOMEM);
    ssmi_map m;
    ssm_status st = add_map(f, path, &m);
    if (st == SSM_OK) {
        const unsigned char *b = m.base;
        if (is_safetensors(b, m.len))
            st = ssmi_safetensors_parse(b, m.len, &f->list);
        else if (m.len >= 4 && b[0] == 'P' && b[1] == 'K')
            st = ssmi_torch_parse(b, m.len, &f->list);
        else if (is_index(b, m.len)) {
            st = open_index(f, path, b, m.len);
            /* the index text is not needed once parsed */
            unmap(&f->maps[0]);
        } else
            st = ssmi_safetensors_parse(b, m.len, &f->list);
    }
    if (st == SSM_OK)
        st = sorted_order(&f->list, &f->order);
    if (st == SSM_OK)
        st = locate(f);
    if (st != SSM_OK) {
        ssm_tensor_file_close(f);
        return st;
    }
    *file = f;
    return SSM_OK;
}

/* ------------------------------------------------------------------ */
/* queries                                                             */

int64_t ssm_tensor_file_count(const ssm_tensor_file *f)
{
    return f ? f->list.n : 0;
}

static void fill_info(const ssmi_tensor *t, ssm_tensor_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->dtype = t->dtype;
    info->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        info->shape[d] = t->shape[d];
    info->numel = t->numel;
}

ssm_status ssm_tensor_file_at(const ssm_tensor_file *f, int64_t i,
                              ssm_tensor_info *info)
{
    if (!f || !info || i < 0 || i >= f->list.n)
        return SSM_FAIL(SSM_ERR_ARG);
    fill_info(&f->list.t[i], info);
    return SSM_OK;
}

static ssm_status lookup_i(const ssm_tensor_file *f, const char *name,
                           const ssmi_tensor **t, int64_t *idx)
{
    if (!f || !name)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t i = find_sorted(&f->list, f->order, name);
    if (i < 0)
        return SSM_FAIL(SSM_ERR_FORMAT);
    *t = &f->list.t[i];
    if (idx)
        *idx = i;
    return SSM_OK;
}

static ssm_status lookup(const ssm_tensor_file *f, const char *name,
                         const ssmi_tensor **t)
{
    return lookup_i(f, name, t, NULL);
}

/* n bytes at offset off of fd into dst: the kernel copies from the page
 * cache (no page faults on the mapping: the cost of one read(2)). */
static ssm_status pread_all(int fd, void *dst, size_t n, uint64_t off)
{
    unsigned char *d = dst;
    while (n > 0) {
        size_t k = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(fd, d, k, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)   /* an error, or the file shrank since it was opened */
            return SSM_FAIL(SSM_ERR_IO);
        d += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return SSM_OK;
}

ssm_status ssm_tensor_file_find(const ssm_tensor_file *f, const char *name,
                                ssm_tensor_info *info)
{
    const ssmi_tensor *t;
    SSM_TRY(lookup(f, name, &t));
    fill_info(t, info);
    return SSM_OK;
}

ssm_status ssm_tensor_file_data(const ssm_tensor_file *f, const char *name,
                                const void **data, ssm_tensor_info *info)
{
    if (!data)
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_tensor *t;
    SSM_TRY(lookup(f, name, &t));
    *data = t->data;
    fill_info(t, info);
    return SSM_OK;
}

ssm_status ssm_tensor_file_metadata(const ssm_tensor_file *f, const char *key,
                                    const char **value)
{
    if (!f || !key || !value)
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; i < f->list.n_meta; i++)
        if (strcmp(f->list.meta[2 * i], key) == 0) {
            *value = f->list.meta[2 * i + 1];
            return SSM_OK;
        }
    return SSM_FAIL(SSM_ERR_FORMAT);
}

/* IEEE binary16 -> binary32, exactly: every half is a float.  Written
 * without loops or data-dependent control flow beyond selects, so the
 * conversion loops vectorize:
 *   inf/NaN (exponent 31): exponent field all ones, fraction (payload) kept;
 *   normal: the exponent rebiased from 15 to 127, i.e. + (127 - 15) << 23;
 *   subnormal and zero: m 2^-24 with m < 2^10, computed as a float product,
 *   exact (m is exact in float and the scaling is a power of two). */
static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7FFFu, bits;
    float sub = (float)em * 0x1p-24f;
    uint32_t sub_bits;
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    uint32_t infnan = (em << 13) | 0x7F800000u, normal = (em << 13) + 0x38000000u;
    uint32_t is_infnan = 0u - (uint32_t)(em >= 0x7C00u);   /* all ones or 0 */
    uint32_t is_normal = 0u - (uint32_t)(em >= 0x0400u);
    bits = (infnan & is_infnan) | (normal & is_normal & ~is_infnan) |
           (sub_bits & ~is_normal);
    bits |= sign;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* bfloat16 is the top half of a binary32: a shift is exact (NaN payloads
 * included). */
static inline float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

ssm_status ssm_tensor_file_read_f32(const ssm_tensor_file *f, const char *name,
                                    float *out, int64_t count)
{
    const ssmi_tensor *t;
    int64_t idx;
    SSM_TRY(lookup_i(f, name, &t, &idx));
    if (count != t->numel)
        return SSM_FAIL(SSM_ERR_FORMAT);
    if (count == 0)
        return SSM_OK;
    if (!out)
        return SSM_FAIL(SSM_ERR_ARG);
    const ssmi_map *m = &f->maps[f->tmap[idx]];
    uint64_t off = (uint64_t)(t->data - (const unsigned char *)m->base);
    if (t->dtype == SSM_DTYPE_F32)
        return pread_all(m->fd, out, (size_t)t->nbytes, off);
    /* 16-bit types: read blocks of 128 KiB (L2-sized) into a buffer and
     * convert from it */
    enum { BLK = 65536 };
    uint16_t *buf = malloc((size_t)(count < BLK ? count : BLK) * sizeof *buf);
    if (!buf)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t i0 = 0; i0 < count; i0 += BLK) {
        int64_t nb = count - i0 < BLK ? count - i0 : BLK;
        ssm_status st = pread_all(m->fd, buf, (size_t)nb * 2, off + 2 * (uint64_t)i0);
        if (st != SSM_OK) {
            free(buf);
            return st;
        }
        float *o = out + i0;
        if (t->dtype == SSM_DTYPE_F16)
            for (int64_t i = 0; i < nb; i++)
                o[i] = half_to_float(buf[i]);
        else
            for (int64_t i = 0; i < nb; i++)
                o[i] = bf16_to_float(buf[i]);
    }
    free(buf);
    return SSM_OK;
}
