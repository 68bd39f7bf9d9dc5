#define _GNU_SOURCE
/*
 * fuzz_tokenizer_encode.c -- libFuzzer target: arbitrary bytes through
 * ssm_tokenizer_encode / _decode / the stream on a byte-level BPE whose
 * vocabulary holds all 256 byte characters (so nothing is dropped), with
 * added tokens (raw, normalized, lstrip/rstrip, single_word) and a few
 * merges.  Invariants (abort on violation): invalid UTF-8 is FORMAT;
 * otherwise every id is assigned, decode(encode(x)) == x, the stream
 * reproduces decode, and a small cap reports the same count.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/text_internal.h"

static ssm_tokenizer *g_tok;

static void put_cp(char **p, uint32_t cp)
{
    unsigned char u[4];
    int n = ssmi_utf8_enc(cp, u);
    if (cp == '"' || cp == '\\') *(*p)++ = '\\';
    memcpy(*p, u, (size_t)n);
    *p += n;
}

static void init(void)
{
    char *j = malloc(1 << 16), *p = j;
    p += sprintf(p, "{\"version\":\"1.0\",\"added_tokens\":["
        "{\"id\":0,\"content\":\"<|endoftext|>\",\"special\":true,\"normalized\":false},"
        "{\"id\":0,\"content\":\"  \",\"special\":false,\"normalized\":true},"
        "{\"id\":0,\"content\":\"<m>\",\"lstrip\":true,\"rstrip\":true,\"normalized\":false},"
        "{\"id\":0,\"content\":\"ab\",\"single_word\":true,\"normalized\":false}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
        "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (unsigned b = 0; b < 256; b++) {
        *p++ = '"';
        put_cp(&p, ssmi_byte_to_cp(b));
        p += sprintf(p, "\":%u,", b);
    }
    /* merges: "Ġ t" "h e" "t he" "Ġ the" */
    p += sprintf(p, "\"\xc4\xa0t\":256,\"he\":257,\"the\":258,\"\xc4\xa0the\":259,\"\xc4\xa0\xc4\xa0\":260},"
                    "\"merges\":[\"\xc4\xa0 t\",\"h e\",\"t he\",\"\xc4\xa0t he\",[\"\xc4\xa0\",\"\xc4\xa0\"]]}}");
    if (ssmi_tokenizer_load_mem(&g_tok, j, (size_t)(p - j)) != SSM_OK) abort();
    free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_tok) init();
    if (size > (1u << 16)) return 0;
    int64_t n = -1;
    ssm_status st = ssm_tokenizer_encode(g_tok, (const char *)data, (int64_t)size, NULL, 0, &n);
    int valid = ssmi_utf8_valid_prefix(data, size) == size;
    if (!valid) { if (st != SSM_ERR_FORMAT) abort(); return 0; }
    if (st != SSM_OK || n < 0 || n > (int64_t)size) abort();
    int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
    int64_t n2 = -1;
    if (ssm_tokenizer_encode(g_tok, (const char *)data, (int64_t)size, ids, n, &n2) != SSM_OK || n2 != n) abort();
    if (n > 1) {                       /* a small cap: same count */
        int64_t n3 = -1;
        if (ssm_tokenizer_encode(g_tok, (const char *)data, (int64_t)size, ids, 1, &n3) != SSM_OK || n3 != n) abort();
        ssm_tokenizer_encode(g_tok, (const char *)data, (int64_t)size, ids, n, &n3);
    }
    int64_t V = ssm_tokenizer_vocab_size(g_tok);
    for (int64_t i = 0; i < n; i++) if (ids[i] < 0 || ids[i] >= V) abort();
    char *out = malloc(size + 1);
    int64_t nb = -1;
    if (ssm_tokenizer_decode(g_tok, ids, n, out, (int64_t)size + 1, &nb) != SSM_OK) abort();
    /* lstrip/rstrip drop the whitespace around <m>: compare only without it */
    if (!memmem(data, size, "<m>", 3) && (nb != (int64_t)size || memcmp(out, data, size))) abort();
    /* the stream gives decode's bytes */
    ssm_tokenizer_stream s;
    ssm_tokenizer_stream_init(&s);
    int64_t bound = ssm_tokenizer_stream_bound(g_tok), at = 0, k;
    char *piece = malloc((size_t)bound);
    for (int64_t i = 0; i < n; i++) {
        if (ssm_tokenizer_stream_push(g_tok, &s, ids[i], piece, bound, &k) != SSM_OK || k > bound) abort();
        if (at + k > nb || memcmp(piece, out + at, (size_t)k)) abort();
        at += k;
    }
    if (ssm_tokenizer_stream_flush(g_tok, &s, piece, bound, &k) != SSM_OK) abort();
    if (at + k != nb || memcmp(piece, out + at, (size_t)k)) abort();
    free(piece); free(out); free(ids);
    return 0;
}
