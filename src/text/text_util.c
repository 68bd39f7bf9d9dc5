/*
 * text_util.c -- hash maps, UTF-8, the GPT-2 byte map, the regex
 * translation and the added-token trie used by the tokenizer.
 */
#include <stdlib.h>
#include <string.h>

#include "text/text_internal.h"

/* ---- hashing: 64-bit multiply-xorshift over 8-byte words ---- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t ssmi_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w);
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    return mix64(h ^ w ^ 0xFF51AFD7ED558CCDull);
}

/* ---- string map ---- */

static uint64_t pow2_at_least(int64_t n)
{
    uint64_t c = 16;
    while ((int64_t)c < n) c <<= 1;
    return c;
}

ssm_status ssmi_strmap_init(ssmi_strmap *m, int64_t expected)
{
    memset(m, 0, sizeof *m);
    if (expected < 8) expected = 8;
    if (expected > ((int64_t)1 << 40)) return SSM_FAIL(SSM_ERR_NOMEM);
    uint64_t ns = pow2_at_least(2 * expected);
    m->slot = malloc(ns * sizeof *m->slot);
    m->ent = malloc((size_t)expected * sizeof *m->ent);
    if (!m->slot || !m->ent) { ssmi_strmap_free(m); return SSM_FAIL(SSM_ERR_NOMEM); }
    memset(m->slot, 0xFF, ns * sizeof *m->slot);
    m->mask = ns - 1;
    m->cap = expected;
    return SSM_OK;
}

void ssmi_strmap_free(ssmi_strmap *m)
{
    free(m->slot); free(m->ent);
    memset(m, 0, sizeof *m);
}

static ssm_status strmap_grow(ssmi_strmap *m)
{
    int64_t ncap = m->cap * 2;
    uint64_t ns = pow2_at_least(2 * ncap);
    int32_t *slot = malloc(ns * sizeof *slot);
    struct ssmi_strent *ent = realloc(m->ent, (size_t)ncap * sizeof *ent);
    if (!slot || !ent) {
        free(slot);
        if (ent) m->ent = ent;
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    m->ent = ent;
    memset(slot, 0xFF, ns * sizeof *slot);
    for (int64_t i = 0; i < m->n; i++) {
        uint64_t j = ent[i].h & (ns - 1);
        while (slot[j] >= 0) j = (j + 1) & (ns - 1);
        slot[j] = (int32_t)i;
    }
    free(m->slot);
    m->slot = slot; m->mask = ns - 1; m->cap = ncap;
    return SSM_OK;
}

ssm_status ssmi_strmap_put(ssmi_strmap *m, const char *s, int32_t len, int32_t val)
{
    uint64_t h = ssmi_hash_bytes(s, (size_t)len);
    uint64_t j = h & m->mask;
    while (m->slot[j] >= 0) {
        struct ssmi_strent *e = &m->ent[m->slot[j]];
        if (e->h == h && e->len == len && !memcmp(e->s, s, (size_t)len)) {
            e->val = val;
            return SSM_OK;
        }
        j = (j + 1) & m->mask;
    }
    if (m->n == m->cap) {
        if (m->cap >= INT32_MAX / 2) return SSM_FAIL(SSM_ERR_NOMEM);
        SSM_TRY(strmap_grow(m));
        j = h & m->mask;
        while (m->slot[j] >= 0) j = (j + 1) & m->mask;
    }
    m->ent[m->n] = (struct ssmi_strent){ s, len, val, h };
    m->slot[j] = (int32_t)m->n++;
    return SSM_OK;
}

int32_t ssmi_strmap_get(const ssmi_strmap *m, const char *s, int32_t len)
{
    if (!m->slot) return -1;
    uint64_t h = ssmi_hash_bytes(s, (size_t)len);
    uint64_t j = h & m->mask;
    while (m->slot[j] >= 0) {
        const struct ssmi_strent *e = &m->ent[m->slot[j]];
        if (e->h == h && e->len == len && !memcmp(e->s, s, (size_t)len)) return e->val;
        j = (j + 1) & m->mask;
    }
    return -1;
}

/* ---- GPT-2 byte map ---- */

static int printable_byte(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t ssmi_byte_to_cp(unsigned b)
{
    if (printable_byte(b)) return b;
    /* k = number of non-printable bytes below b */
    unsigned k = 0;
    for (unsigned c = 0; c < b; c++) k += !printable_byte(c);
    return 0x100 + k;
}

int ssmi_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) return printable_byte(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    unsigned k = cp - 0x100;
    for (unsigned c = 0; c < 256; c++)
        if (!printable_byte(c) && k-- == 0) return (int)c;
    return -1;
}

/* ---- UTF-8 ---- */

/* Well-formed UTF-8 (Unicode 15, table 3-7): the allowed range of the
 * second byte depends on the first; the rest are 80..BF. */
size_t ssmi_utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII run, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len; unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (i + len > n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

int ssmi_utf8_dec(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xE0) { *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu); return 2; }
    if (c < 0xF0) {
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return 4;
}

int ssmi_utf8_enc(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- regex: Oniguruma (Ruby syntax, UTF-8) meaning through PCRE2 ----
 *
 * tokenizers compiles Split patterns and the ByteLevel pattern with
 * Oniguruma.  PCRE2 in UTF + UCP mode agrees on the syntax these patterns
 * use, but not on every shorthand class, so those are rewritten:
 *   \s \S  Oniguruma: the White_Space property (PCRE2's \s adds U+180E)
 *   \w \W  Oniguruma: Alphabetic, M, Nd, Pc (+ the Latin-1 digits and
 *          fractions that its ctype table marks as word characters)
 *   \d \D  Nd in both (kept)
 *   \h \H  Oniguruma: hexadecimal digit (PCRE2: horizontal space)
 * \b and \B (defined from \w) are written as look-arounds.  Oniguruma's ^
 * and $ are line anchors at \n (PCRE2_MULTILINE with LF newlines) and its
 * '.' excludes only \n (PCRE2 with LF newlines).  Anything else that the
 * two engines might read differently (\G, \R, \X, \K, POSIX brackets,
 * a class escape that has no in-class form) is refused: SSM_ERR_FORMAT. */

#define ONIG_WORD_IN "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256);
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) { b->oom = 1; return; }
        b->p = q; b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

pcre2_code *ssmi_regex_compile(const char *pat, size_t len, ssm_status *st)
{
    sbuf b = { 0 };
    int inclass = 0;     /* inside [...] (nesting is Oniguruma-only: refused) */
    int class_first = 0; /* just after '[' or '[^' (a ']' there is literal) */
    *st = SSM_OK;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\') {
            if (i + 1 >= len) { *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail; }
            char e = pat[++i];
            class_first = 0;
            const char *rep = NULL;
            if (!inclass) {
                switch (e) {
                case 's': rep = "\\p{White_Space}"; break;
                case 'S': rep = "\\P{White_Space}"; break;
                case 'w': rep = "[" ONIG_WORD_IN "]"; break;
                case 'W': rep = "[^" ONIG_WORD_IN "]"; break;
                case 'h': rep = "[0-9A-Fa-f]"; break;
                case 'H': rep = "[^0-9A-Fa-f]"; break;
                case 'b': rep = "(?:(?<![" ONIG_WORD_IN "])(?=[" ONIG_WORD_IN "])|(?<=[" ONIG_WORD_IN "])(?![" ONIG_WORD_IN "]))"; break;
                case 'B': rep = "(?:(?<![" ONIG_WORD_IN "])(?![" ONIG_WORD_IN "])|(?<=[" ONIG_WORD_IN "])(?=[" ONIG_WORD_IN "]))"; break;
                case 'G': case 'R': case 'X': case 'K': case 'N': case 'O': case 'y': case 'Y':
                case 'g': case 'k':
                    *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail;
                default: break;
                }
            } else {
                switch (e) {
                case 's': rep = "\\p{White_Space}"; break;
                case 'S': rep = "\\P{White_Space}"; break;
                case 'w': rep = ONIG_WORD_IN; break;
                case 'h': rep = "0-9A-Fa-f"; break;
                case 'W': case 'H': case 'R': case 'X': case 'N':
                    *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail;
                default: break;
                }
            }
            if (rep) { sb_str(&b, rep); continue; }
            /* other escapes (\p{..}, \x{..}, \n, \t, \', \d, ...) pass as written */
            sb_add(&b, pat + i - 1, 2);
            continue;
        }
        if (inclass) {
            if (c == '[') {
                if (i + 1 < len && (pat[i + 1] == ':' || pat[i + 1] == '=' || pat[i + 1] == '.')) {
                    *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail;   /* POSIX bracket */
                }
                *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail;       /* nested class */
            }
            if (c == '&' && i + 1 < len && pat[i + 1] == '&') {
                *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail;       /* intersection */
            }
            if (c == ']' && !class_first) inclass = 0;
            class_first = 0;
            sb_add(&b, &c, 1);
            if (c == '^' && i > 0 && pat[i - 1] == '[') class_first = 1;
            continue;
        }
        if (c == '[') {
            inclass = 1; class_first = 1;
            sb_add(&b, &c, 1);
            continue;
        }
        sb_add(&b, &c, 1);
    }
    if (inclass) { *st = SSM_FAIL(SSM_ERR_FORMAT); goto fail; }
    if (b.oom) { *st = SSM_FAIL(SSM_ERR_NOMEM); goto fail; }
    if (!b.p) sb_add(&b, "", 0);
    if (b.oom) { *st = SSM_FAIL(SSM_ERR_NOMEM); goto fail; }
    {
        pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
        if (!cc) { *st = SSM_FAIL(SSM_ERR_NOMEM); goto fail; }
        pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
        pcre2_set_bsr(cc, PCRE2_BSR_UNICODE);
        int err; PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.n,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &eoff, cc);
        pcre2_compile_context_free(cc);
        free(b.p);
        if (!re) {
            *st = SSM_FAIL(err == PCRE2_ERROR_HEAPLIMIT || err == PCRE2_ERROR_NOMEMORY
                           ? SSM_ERR_NOMEM : SSM_ERR_FORMAT);
            return NULL;
        }
        /* JIT when available; the interpreter gives the same matches. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        return re;
    }
fail:
    free(b.p);
    return NULL;
}

/* ---- added-token trie: leftmost-longest, as daachorse's LeftmostLongest ---- */

int ssmi_trie_find(const ssmi_trie *tr, const unsigned char *s, size_t n, size_t pos,
                   size_t *ms, size_t *me, int32_t *idx)
{
    if (tr->n == 0) return 0;
    for (size_t i = pos; i < n; i++) {
        if (!tr->first[s[i]]) continue;
        int32_t node = 0, best = 0; size_t bend = 0;
        for (size_t j = i; j < n; j++) {
            node = tr->next[node][s[j]];
            if (!node) break;
            if (tr->term[node]) { best = tr->term[node]; bend = j + 1; }
        }
        if (best) { *ms = i; *me = bend; *idx = best - 1; return 1; }
    }
    return 0;
}
