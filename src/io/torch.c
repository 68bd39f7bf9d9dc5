/*
 * torch.c -- PyTorch checkpoints as torch.save writes them (the zip format,
 * default since PyTorch 1.6): <archive>/data.pkl holds the pickled state
 * dict, <archive>/data/<key> the raw little-endian bytes of each storage,
 * <archive>/byteorder (PyTorch >= 2.1) says "little" or "big".
 *
 * The pickle goes through the restricted machine of pickle.c; each tensor
 * is then checked against its storage entry: stored (not compressed),
 * storage numel x element size within the entry, offset + extent within the
 * storage, strides those of a contiguous row-major tensor.  Tensors point
 * into the mapping (several may share a storage, e.g. tied embeddings).
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

/* The archive folder: the single top-level "<prefix>/data.pkl". */
static const ssmi_zip_entry *find_pkl(const ssmi_zip *z, size_t *prefix_len)
{
    const ssmi_zip_entry *found = NULL;
    for (int64_t i = 0; i < z->n; i++) {
        const ssmi_zip_entry *e = &z->e[i];
        const char *sl = strchr(e->name, '/');
        if (sl && sl > e->name && strcmp(sl, "/data.pkl") == 0) {
            if (found)
                return NULL;   /* two archives in one zip */
            found = e;
            *prefix_len = (size_t)(sl - e->name);
        }
    }
    return found;
}

/* Contiguous row-major: stride[d] = prod(shape[d+1:]) wherever shape[d] > 1
 * (a dimension of size 1 may carry any stride, as in torch). */
static int contiguous(const ssmi_pk_tensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect)
            return 0;
        if (!ssmi_mul_ok(expect, t->shape[d], &expect))
            return 0;
    }
    return 1;
}

ssm_status ssmi_torch_parse(const unsigned char *buf, size_t len, ssmi_tlist *out)
{
    memset(out, 0, sizeof *out);
    ssmi_zip z;
    ssmi_pk_result pk;
    memset(&pk, 0, sizeof pk);
    char *path = NULL;
    SSM_TRY(ssmi_zip_parse(buf, len, &z));
    ssm_status st = SSM_OK;
    size_t pl = 0;
    const ssmi_zip_entry *pkl = find_pkl(&z, &pl);
    /* data.pkl must be stored: PyTorch never compresses it, and libssm has
     * no inflater (a zip re-packed with deflate is refused, not misread) */
    if (!pkl || !pkl->data) {
        st = SSM_FAIL(SSM_ERR_FORMAT);
        goto done;
    }
    path = malloc(pl + 4096 + 16);
    if (!path) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    memcpy(path, pkl->name, pl);
    memcpy(path + pl, "/byteorder", 11);
    const ssmi_zip_entry *bo = ssmi_zip_find(&z, path);
    if (bo && (!bo->data || bo->size != 6 || memcmp(bo->data, "little", 6) != 0)) {
        st = SSM_FAIL(SSM_ERR_FORMAT);   /* big-endian or unreadable marker */
        goto done;
    }
    st = ssmi_pickle_load(pkl->data, (size_t)pkl->size, &pk);
    if (st != SSM_OK)
        goto done;
    for (int64_t i = 0; i < pk.n; i++) {
        const ssmi_pk_tensor *p = &pk.t[i];
        size_t kl = strlen(p->storage_key);
        if (kl > 4000) {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        memcpy(path + pl, "/data/", 6);
        memcpy(path + pl + 6, p->storage_key, kl + 1);
        const ssmi_zip_entry *e = ssmi_zip_find(&z, path);
        size_t es = ssm_dtype_size(p->dtype);
        int64_t st_bytes, extent;
        ssmi_tensor t;
        memset(&t, 0, sizeof t);
        t.name = p->name;
        t.dtype = p->dtype;
        t.ndim = p->ndim;
        memcpy(t.shape, p->shape, sizeof t.shape);
        if (!e || !e->data ||   /* missing, compressed or encrypted storage */
            !ssmi_mul_ok(p->storage_numel, (int64_t)es, &st_bytes) ||
            (uint64_t)st_bytes > e->size ||
            !ssmi_shape_bytes(t.shape, t.ndim, es, &t.numel, &t.nbytes) ||
            p->offset < 0 ||
            __builtin_add_overflow(p->offset, t.numel, &extent) ||
            extent > p->storage_numel || !contiguous(p)) {
            st = SSM_FAIL(SSM_ERR_FORMAT);
            goto done;
        }
        t.data = e->data + (size_t)p->offset * es;
        st = ssmi_tlist_push(out, &t);
        if (st != SSM_OK)
            goto done;
    }
done:
    free(path);
    ssmi_pk_result_free(&pk);
    ssmi_zip_free(&z);
    if (st != SSM_OK)
        ssmi_tlist_free(out);
    return st;
}
