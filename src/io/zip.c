/*
 * zip.c -- the central directory of a zip archive (PKWARE APPNOTE.TXT,
 * sections 4.3.12 to 4.3.16 and 4.5.3), zip64 included: what torch.save
 * writes (PyTorch's miniz-based writer stores every entry uncompressed,
 * aligned, and writes zip64 records).
 *
 * No decompression: a compressed entry is listed with data = NULL and the
 * caller refuses it (SSM_ERR_FORMAT).  Every offset and size is checked
 * against the buffer before it is used.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define SIG_EOCD   0x06054b50u
#define SIG_LOC64  0x07064b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_CDIR   0x02014b50u
#define SIG_LOCAL  0x04034b50u

static int cmp_entry(const void *a, const void *b)
{
    const ssmi_zip_entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void ssmi_zip_free(ssmi_zip *z)
{
    if (!z)
        return;
    free(z->e);
    free(z->names);
    memset(z, 0, sizeof *z);
}

/* Find the end-of-central-directory record: the last signature whose
 * comment runs exactly to the end of the buffer. */
static int64_t find_eocd(const unsigned char *buf, size_t len)
{
    if (len < 22)
        return -1;
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t p = len - 22 + 1; p-- > lo;) {
        if (ssmi_le32(buf + p) == SIG_EOCD &&
            p + 22 + (size_t)ssmi_le16(buf + p + 20) == len)
            return (int64_t)p;
    }
    return -1;
}

ssm_status ssmi_zip_parse(const unsigned char *buf, size_t len, ssmi_zip *z)
{
    memset(z, 0, sizeof *z);
    int64_t pe = find_eocd(buf, len);
    if (pe < 0)
        return SSM_FAIL(SSM_ERR_FORMAT);
    const unsigned char *eo = buf + pe;
    if (ssmi_le16(eo + 4) != 0 || ssmi_le16(eo + 6) != 0)   /* multi-disk */
        return SSM_FAIL(SSM_ERR_FORMAT);
    uint64_t n = ssmi_le16(eo + 10), cd_size = ssmi_le32(eo + 12),
             cd_off = ssmi_le32(eo + 16);
    uint64_t cd_limit = (uint64_t)pe;   /* the directory ends before this */
    /* zip64: a locator right before the EOCD points at the zip64 record */
    if (pe >= 20 && ssmi_le32(buf + pe - 20) == SIG_LOC64) {
        const unsigned char *loc = buf + pe - 20;
        uint64_t r = ssmi_le64(loc + 8);
        if (ssmi_le32(loc + 4) != 0 || ssmi_le32(loc + 16) > 1 ||
            r > (uint64_t)pe - 20 || (uint64_t)pe - 20 - r < 56)
            return SSM_FAIL(SSM_ERR_FORMAT);
        const unsigned char *e64 = buf + r;
        if (ssmi_le32(e64) != SIG_EOCD64 || ssmi_le32(e64 + 16) != 0 ||
            ssmi_le32(e64 + 20) != 0)
            return SSM_FAIL(SSM_ERR_FORMAT);
        n = ssmi_le64(e64 + 32);
        cd_size = ssmi_le64(e64 + 40);
        cd_off = ssmi_le64(e64 + 48);
        cd_limit = r;
    } else if (n == 0xFFFFu || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu)
        return SSM_FAIL(SSM_ERR_FORMAT);   /* says zip64 but has no record */
    if (cd_off > cd_limit || cd_size > cd_limit - cd_off || n > cd_size / 46)
        return SSM_FAIL(SSM_ERR_FORMAT);
    z->e = calloc((size_t)(n ? n : 1), sizeof *z->e);
    /* every name fits in the directory, so cd_size + n bytes hold them all */
    z->names = malloc((size_t)(cd_size + n + 1));
    if (!z->e || !z->names) {
        ssmi_zip_free(z);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    const unsigned char *cd = buf + cd_off;
    uint64_t pos = 0, name_pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *h = cd + pos;
        if (cd_size - pos < 46 || ssmi_le32(h) != SIG_CDIR)
            goto bad;
        unsigned flags = ssmi_le16(h + 8), method = ssmi_le16(h + 10);
        uint64_t csize = ssmi_le32(h + 20), usize = ssmi_le32(h + 24);
        size_t nl = ssmi_le16(h + 28), xl = ssmi_le16(h + 30), cl = ssmi_le16(h + 32);
        uint64_t loff = ssmi_le32(h + 42);
        unsigned disk = ssmi_le16(h + 34);
        if (cd_size - pos - 46 < (uint64_t)nl + xl + cl || disk != 0)
            goto bad;
        const unsigned char *nm = h + 46, *x = nm + nl;
        /* zip64 extended information: the saturated fields, in order */
        for (size_t k = 0; k + 4 <= xl;) {
            unsigned id = ssmi_le16(x + k), sz = ssmi_le16(x + k + 2);
            if (k + 4 + sz > xl)
                goto bad;
            if (id == 0x0001) {
                const unsigned char *d = x + k + 4;
                size_t left = sz;
                uint64_t *f[3] = {&usize, &csize, &loff};
                for (int j = 0; j < 3; j++) {
                    if (*f[j] != 0xFFFFFFFFu)
                        continue;
                    if (left < 8)
                        goto bad;
                    *f[j] = ssmi_le64(d);
                    d += 8;
                    left -= 8;
                }
            }
            k += 4 + sz;
        }
        if (memchr(nm, 0, nl))
            goto bad;
        ssmi_zip_entry *e = &z->e[i];
        memcpy(z->names + name_pos, nm, nl);
        z->names[name_pos + nl] = 0;
        e->name = z->names + name_pos;
        e->name_len = nl;
        name_pos += nl + 1;
        e->method = (int)method;
        e->encrypted = (flags & 1u) != 0;
        e->size = usize;
        e->data = NULL;
        /* the local header gives where the data starts */
        if (loff > (uint64_t)len || (uint64_t)len - loff < 30 ||
            ssmi_le32(buf + loff) != SIG_LOCAL)
            goto bad;
        uint64_t start = loff + 30 + ssmi_le16(buf + loff + 26) +
                         ssmi_le16(buf + loff + 28);
        if (start > (uint64_t)len || csize > (uint64_t)len - start)
            goto bad;
        if (method == 0 && !e->encrypted) {
            if (csize != usize)
                goto bad;
            e->data = buf + start;
        }
        pos += 46 + (uint64_t)nl + xl + cl;
    }
    z->n = (int64_t)n;
    qsort(z->e, (size_t)n, sizeof *z->e, cmp_entry);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(z->e[i - 1].name, z->e[i].name) == 0)
            goto bad;
    return SSM_OK;
bad:
    ssmi_zip_free(z);
    return SSM_FAIL(SSM_ERR_FORMAT);
}

const ssmi_zip_entry *ssmi_zip_find(const ssmi_zip *z, const char *name)
{
    ssmi_zip_entry key;
    memset(&key, 0, sizeof key);
    key.name = name;
    return bsearch(&key, z->e, (size_t)z->n, sizeof *z->e, cmp_entry);
}
