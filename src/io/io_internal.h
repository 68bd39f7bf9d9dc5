/*
 * io_internal.h -- the parsers behind ssm/io.h, on memory buffers so that
 * the fuzz targets (tests/fuzz/fuzz_{safetensors,zip,pickle}.c) drive
 * exactly the code that ssm_tensor_file_open runs.  Never installed.
 *
 * Every parser validates its whole input before it reports success and
 * never reads outside [buf, buf + len); on failure it frees what it built.
 */
#ifndef SSM_IO_INTERNAL_H
#define SSM_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* cJSON_ParseWithLengthOpts(text, len, end, 0) under a lock (json.c: cJSON
 * writes a static error position on every parse).  Every JSON parse in
 * libssm (safetensors headers, indexes, config.json, tokenizer.json) must
 * use this.  *end: where the value ended. */
cJSON *ssmi_json_parse(const char *text, size_t len, const char **end);

/* Little-endian loads at any alignment (memcpy: no aligned access is ever
 * assumed of a mapped file). */
static inline uint16_t ssmi_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ssmi_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t ssmi_le64(const unsigned char *p)
{
    return (uint64_t)ssmi_le32(p) | ((uint64_t)ssmi_le32(p + 4) << 32);
}

/* One tensor as the reader keeps it: name (malloc'd, owned by the list),
 * description, and where its elements lie (inside a mapping or buffer). */
typedef struct ssmi_tensor {
    char                *name;
    ssm_dtype            dtype;
    int                  ndim;
    int64_t              shape[SSM_TENSOR_MAX_DIMS];
    int64_t              numel;
    const unsigned char *data;
    uint64_t             nbytes;   /* numel * dtype size */
} ssmi_tensor;

/* A growable list of tensors and of metadata pairs (all strings owned). */
typedef struct ssmi_tlist {
    ssmi_tensor *t;
    int64_t      n, cap;
    char       **meta;             /* key0, value0, key1, value1, ... */
    int64_t      n_meta, cap_meta;
} ssmi_tlist;

void       ssmi_tlist_free(ssmi_tlist *l);
/* Append a copy of t (the name is copied, t->name stays the caller's). */
ssm_status ssmi_tlist_push(ssmi_tlist *l, const ssmi_tensor *t);
ssm_status ssmi_tlist_push_meta(ssmi_tlist *l, const char *key, const char *value);
/* Sort-and-compare check that no two tensors share a name: SSM_ERR_FORMAT. */
ssm_status ssmi_tlist_unique(const ssmi_tlist *l);

/* numel = product of shape (each >= 0) and bytes = numel * elem, both
 * overflow-checked (0 on overflow, 1 if fine). */
int ssmi_shape_bytes(const int64_t *shape, int ndim, size_t elem,
                     int64_t *numel, uint64_t *bytes);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates, or NUL). */
int ssmi_utf8_ok(const unsigned char *s, size_t n);

/* ---- safetensors (safetensors.c) ----
 * Parse a whole safetensors image buf[0..len): tensors and __metadata__
 * are appended to out, data pointers into buf.  The header must be at
 * most SSMI_ST_MAX_HEADER bytes (as the upstream reader's limit). */
#define SSMI_ST_MAX_HEADER 100000000u
ssm_status ssmi_safetensors_parse(const unsigned char *buf, size_t len,
                                  ssmi_tlist *out);

/* ---- zip (zip.c): the central directory of a zip image ---- */
typedef struct ssmi_zip_entry {
    const char          *name;     /* NUL-terminated copy */
    size_t               name_len;
    int                  method;   /* 0 stored, 8 deflate, ... */
    int                  encrypted;
    const unsigned char *data;     /* NULL unless stored and in bounds */
    uint64_t             size;     /* uncompressed size */
} ssmi_zip_entry;

typedef struct ssmi_zip {
    ssmi_zip_entry *e;             /* sorted by name, names unique */
    int64_t         n;
    char           *names;         /* one block for every name */
} ssmi_zip;

ssm_status ssmi_zip_parse(const unsigned char *buf, size_t len, ssmi_zip *z);
void       ssmi_zip_free(ssmi_zip *z);
/* The entry called name, or NULL. */
const ssmi_zip_entry *ssmi_zip_find(const ssmi_zip *z, const char *name);

/* ---- restricted pickle (pickle.c) ----
 * What a torch state dict's data.pkl says of one tensor: its name (the
 * dict key), storage (dtype, key of data/<key>, element count) and view
 * (element offset, shape, strides). */
typedef struct ssmi_pk_tensor {
    char     *name;
    char     *storage_key;
    ssm_dtype dtype;
    int64_t   storage_numel;
    int64_t   offset;
    int       ndim;
    int64_t   shape[SSM_TENSOR_MAX_DIMS];
    int64_t   stride[SSM_TENSOR_MAX_DIMS];
} ssmi_pk_tensor;

typedef struct ssmi_pk_result {
    ssmi_pk_tensor *t;
    int64_t         n;
} ssmi_pk_result;

/* Run the restricted pickle machine over buf[0..len).  The result must be
 * a dict (or OrderedDict) whose values are tensors; anything outside the
 * allow-list (other globals, other callables, unknown opcodes) is
 * SSM_ERR_FORMAT.  Nothing in the pickle is ever executed. */
ssm_status ssmi_pickle_load(const unsigned char *buf, size_t len,
                            ssmi_pk_result *out);
void       ssmi_pk_result_free(ssmi_pk_result *r);

/* A torch.save zip image -> tensors (data pointers into buf). */
ssm_status ssmi_torch_parse(const unsigned char *buf, size_t len, ssmi_tlist *out);

#endif /* SSM_IO_INTERNAL_H */
