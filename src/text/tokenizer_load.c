/*
 * tokenizer_load.c -- reading a Hugging Face tokenizer.json (byte-level BPE
 * family) into an immutable ssm_tokenizer; vocabulary queries.
 *
 * The rules are those of huggingface/tokenizers (tokenizer/serialization.rs,
 * models/bpe/serialization.rs and model.rs, tokenizer/added_vocabulary.rs):
 *   - added tokens get the id the library computes, not the "id" written
 *     in the file (which it only warns about): the vocabulary id of the
 *     same content if there is one, else the next id from the size of the
 *     model vocabulary on;
 *   - a merge is the pair of vocabulary ids of its two sides, its rank is
 *     its index in "merges", and its result is the vocabulary id of the
 *     concatenation; a side or result missing from the vocabulary is an
 *     error; a repeated pair keeps its last rank (HashMap collect);
 *   - "normalized" added tokens are matched after normalization, in their
 *     normalized spelling, which is also what decode returns for them.
 * The file is refused (SSM_ERR_FORMAT) for anything this library would
 * otherwise get wrong: other models, normalizers, pre-tokenizers or
 * decoders, dropout, subword prefixes/suffixes, duplicate JSON keys,
 * non-integer ids, strings that are not UTF-8.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "text/text_internal.h"
#include "io/io_internal.h"   /* ssmi_json_parse */

#define TOK_MAX_FILE ((int64_t)1 << 31)   /* 2 GiB: far above any tokenizer.json */
#define TOK_MAX_ID   ((int64_t)1 << 30)   /* ids are int32; a sane vocabulary is far smaller */

/* The GPT-2 pre-tokenizer pattern, as tokenizers' ByteLevel compiles it. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct ssmi_block { struct ssmi_block *prev; size_t used, cap; char data[]; };

const char *ssmi_tok_store(ssm_tokenizer *t, const char *s, size_t n)
{
    struct ssmi_block *b = t->blocks;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > ((size_t)1 << 20) ? n + 1 : ((size_t)1 << 20);
        struct ssmi_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->prev = b; nb->used = 0; nb->cap = cap;
        t->blocks = b = nb;
    }
    char *p = b->data + b->used;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

/* ---- small JSON helpers ---- */

/* 1 if object o has no repeated key. */
static int keys_unique(const cJSON *o)
{
    for (const cJSON *a = o->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && !strcmp(a->string, b->string)) return 0;
    return 1;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Boolean member: absent or null gives dflt; a non-boolean: -1. */
static int get_bool(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}

static int is_utf8(const char *s)
{
    size_t n = strlen(s);
    return ssmi_utf8_valid_prefix((const unsigned char *)s, n) == n;
}

/* A string member equal to want. */
static int type_is(const cJSON *o, const char *want)
{
    const cJSON *v = get(o, "type");
    return v && cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

/* ---- normalizer ---- */

static ssm_status parse_normalizer(ssm_tokenizer *t, const cJSON *n, int depth)
{
    if (!n || cJSON_IsNull(n)) return SSM_OK;
    if (!cJSON_IsObject(n) || !keys_unique(n) || depth > 8) return SSM_FAIL(SSM_ERR_FORMAT);
    const cJSON *ty = get(n, "type");
    if (!ty || !cJSON_IsString(ty)) return SSM_FAIL(SSM_ERR_FORMAT);
    int form = 0;
    if (!strcmp(ty->valuestring, "NFC")) form = SSMI_NORM_NFC;
    else if (!strcmp(ty->valuestring, "NFD")) form = SSMI_NORM_NFD;
    else if (!strcmp(ty->valuestring, "NFKC")) form = SSMI_NORM_NFKC;
    else if (!strcmp(ty->valuestring, "NFKD")) form = SSMI_NORM_NFKD;
    else if (!strcmp(ty->valuestring, "Sequence")) {
        const cJSON *arr = get(n, "normalizers");
        if (!arr || !cJSON_IsArray(arr)) return SSM_FAIL(SSM_ERR_FORMAT);
        for (const cJSON *c = arr->child; c; c = c->next)
            SSM_TRY(parse_normalizer(t, c, depth + 1));
        return SSM_OK;
    } else return SSM_FAIL(SSM_ERR_FORMAT);
    if (t->nnorm >= (int)(sizeof t->norm / sizeof t->norm[0])) return SSM_FAIL(SSM_ERR_FORMAT);
    t->norm[t->nnorm++] = form;
    return SSM_OK;
}

ssm_status ssmi_tok_normalize(const ssm_tokenizer *t, const char *s, size_t n,
                              char **out, size_t *outn)
{
    *out = NULL; *outn = n;
    if (t->nnorm == 0 || n == 0) return SSM_OK;
    size_t i = 0;
    while (i < n && !((unsigned char)s[i] & 0x80)) i++;
    if (i == n) return SSM_OK;
    if (n > (size_t)INT32_MAX) return SSM_FAIL(SSM_ERR_NOMEM);
    char *cur = NULL; size_t curn = n;
    for (int k = 0; k < t->nnorm; k++) {
        int opt = UTF8PROC_STABLE;
        switch (t->norm[k]) {
        case SSMI_NORM_NFC:  opt |= UTF8PROC_COMPOSE; break;
        case SSMI_NORM_NFD:  opt |= UTF8PROC_DECOMPOSE; break;
        case SSMI_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
        default:             opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
        }
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)(cur ? cur : s),
                                          (utf8proc_ssize_t)curn, &dst, (utf8proc_option_t)opt);
        free(cur);
        if (r < 0) {
            free(dst);
            return SSM_FAIL(r == UTF8PROC_ERROR_NOMEM || r == UTF8PROC_ERROR_OVERFLOW
                            ? SSM_ERR_NOMEM : SSM_ERR_FORMAT);
        }
        cur = (char *)dst; curn = (size_t)r;
    }
    *out = cur; *outn = curn;
    return SSM_OK;
}

/* ---- pre-tokenizer ---- */

static ssm_status parse_pretok(ssm_tokenizer *t, const cJSON *p, int depth)
{
    if (!p || cJSON_IsNull(p)) return SSM_OK;
    if (!cJSON_IsObject(p) || !keys_unique(p) || depth > 8) return SSM_FAIL(SSM_ERR_FORMAT);
    if (type_is(p, "Sequence")) {
        const cJSON *arr = get(p, "pretokenizers");
        if (!arr || !cJSON_IsArray(arr)) return SSM_FAIL(SSM_ERR_FORMAT);
        for (const cJSON *c = arr->child; c; c = c->next)
            SSM_TRY(parse_pretok(t, c, depth + 1));
        return SSM_OK;
    }
    if (t->npt >= (int)(sizeof t->pt / sizeof t->pt[0])) return SSM_FAIL(SSM_ERR_FORMAT);
    ssmi_pretok *pt = &t->pt[t->npt];
    memset(pt, 0, sizeof *pt);
    ssm_status st = SSM_OK;
    if (type_is(p, "ByteLevel")) {
        pt->type = SSMI_PT_BYTELEVEL;
        pt->add_prefix_space = get_bool(p, "add_prefix_space", 1);
        pt->use_regex = get_bool(p, "use_regex", 1);
        if (get_bool(p, "trim_offsets", 1) < 0 || pt->add_prefix_space < 0 || pt->use_regex < 0)
            return SSM_FAIL(SSM_ERR_FORMAT);
        if (pt->use_regex) {
            pt->re = ssmi_regex_compile(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, &st);
            if (!pt->re) return st;
        }
    } else if (type_is(p, "Split")) {
        pt->type = SSMI_PT_SPLIT;
        const cJSON *pat = get(p, "pattern"), *beh = get(p, "behavior");
        pt->invert = get_bool(p, "invert", -2);
        if (pt->invert < 0 || !pat || !cJSON_IsObject(pat) || !keys_unique(pat)
            || !beh || !cJSON_IsString(beh))
            return SSM_FAIL(SSM_ERR_FORMAT);
        const char *b = beh->valuestring;
        if (!strcmp(b, "Removed")) pt->behavior = SSMI_SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) pt->behavior = SSMI_SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) pt->behavior = SSMI_SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) pt->behavior = SSMI_SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) pt->behavior = SSMI_SPLIT_CONTIGUOUS;
        else return SSM_FAIL(SSM_ERR_FORMAT);
        const cJSON *rx = get(pat, "Regex"), *lit = get(pat, "String");
        if ((rx != NULL) == (lit != NULL)) return SSM_FAIL(SSM_ERR_FORMAT);
        if (rx) {
            if (!cJSON_IsString(rx) || !is_utf8(rx->valuestring)) return SSM_FAIL(SSM_ERR_FORMAT);
            pt->re = ssmi_regex_compile(rx->valuestring, strlen(rx->valuestring), &st);
            if (!pt->re) return st;
        } else {
            if (!cJSON_IsString(lit) || !is_utf8(lit->valuestring)) return SSM_FAIL(SSM_ERR_FORMAT);
            size_t n = strlen(lit->valuestring);
            /* an empty literal matches an empty string everywhere in
             * Oniguruma; nothing real uses it */
            if (n == 0) return SSM_FAIL(SSM_ERR_FORMAT);
            pt->lit = malloc(n + 1);
            if (!pt->lit) return SSM_FAIL(SSM_ERR_NOMEM);
            memcpy(pt->lit, lit->valuestring, n + 1);
            pt->litlen = (int32_t)n;
        }
    } else {
        return SSM_FAIL(SSM_ERR_FORMAT);
    }
    t->npt++;
    return SSM_OK;
}

/* ---- model ---- */

static ssm_status merge_put(ssmi_mergemap *m, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t j = (key * 0x9E3779B97F4A7C15ull >> 17) & m->mask;
    while (m->slot[j].key && m->slot[j].key != key) j = (j + 1) & m->mask;
    m->slot[j] = (ssmi_merge){ key, rank, id };
    return SSM_OK;
}

static ssm_status parse_model(ssm_tokenizer *t, const cJSON *m)
{
    if (!m || !cJSON_IsObject(m) || !keys_unique(m)) return SSM_FAIL(SSM_ERR_FORMAT);
    const cJSON *ty = get(m, "type");
    if (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "BPE")))
        return SSM_FAIL(SSM_ERR_FORMAT);                 /* WordPiece, Unigram, WordLevel */
    const cJSON *vocab = get(m, "vocab"), *merges = get(m, "merges");
    if (!vocab || !cJSON_IsObject(vocab) || !merges || !cJSON_IsArray(merges))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const cJSON *drop = get(m, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return SSM_FAIL(SSM_ERR_FORMAT);                 /* random merges: not reproducible */
    const char *aff[2] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int k = 0; k < 2; k++) {
        const cJSON *v = get(m, aff[k]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && v->valuestring[0] == 0))
            return SSM_FAIL(SSM_ERR_FORMAT);
    }
    t->fuse_unk = get_bool(m, "fuse_unk", 0);
    t->byte_fallback = get_bool(m, "byte_fallback", 0);
    t->ignore_merges = get_bool(m, "ignore_merges", 0);
    if (t->fuse_unk < 0 || t->byte_fallback < 0 || t->ignore_merges < 0)
        return SSM_FAIL(SSM_ERR_FORMAT);

    /* vocab */
    int64_t nv = cJSON_GetArraySize(vocab);
    SSM_TRY(ssmi_strmap_init(&t->vocab, nv));
    int64_t maxid = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!e->string || !is_utf8(e->string) || !cJSON_IsNumber(e)) return SSM_FAIL(SSM_ERR_FORMAT);
        double d = e->valuedouble;
        if (!(d >= 0 && d < (double)TOK_MAX_ID) || d != (double)(int64_t)d)
            return SSM_FAIL(SSM_ERR_FORMAT);
        size_t len = strlen(e->string);
        if (ssmi_strmap_get(&t->vocab, e->string, (int32_t)len) >= 0)
            return SSM_FAIL(SSM_ERR_FORMAT);             /* duplicate key */
        const char *s = ssmi_tok_store(t, e->string, len);
        if (!s) return SSM_FAIL(SSM_ERR_NOMEM);
        SSM_TRY(ssmi_strmap_put(&t->vocab, s, (int32_t)len, (int32_t)d));
        if (d > (double)maxid) maxid = (int64_t)d;
    }
    /* Vocabulary ids are dense in real files (0 .. n-1, maybe a few
     * holes).  The tables by id are as long as the largest id, so a sparse
     * one would let a few bytes of JSON ask for gigabytes (fuzz_tokenizer_load
     * found {"a": 922222222}): ids past twice the entries plus 65536 are
     * refused. */
    if (maxid >= 2 * nv + 65536) return SSM_FAIL(SSM_ERR_FORMAT);
    t->nvocab = t->vocab.n;
    t->nids = maxid + 1;

    /* unk */
    const cJSON *unk = get(m, "unk_token");
    t->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk)) return SSM_FAIL(SSM_ERR_FORMAT);
        t->has_unk = 1;
        t->unk_id = ssmi_strmap_get(&t->vocab, unk->valuestring, (int32_t)strlen(unk->valuestring));
        /* HF fails at encode time when the unk token is needed but absent:
         * so does this library (unk_id stays -1 with has_unk set) */
    }

    /* merges */
    int64_t nm = cJSON_GetArraySize(merges);
    uint64_t ns = 16;
    while ((int64_t)ns < 2 * nm + 16) ns <<= 1;
    t->merges.slot = calloc(ns, sizeof *t->merges.slot);
    if (!t->merges.slot) return SSM_FAIL(SSM_ERR_NOMEM);
    t->merges.mask = ns - 1;
    char *buf = NULL; size_t bufcap = 0;
    uint32_t rank = 0;
    ssm_status st = SSM_OK;
    for (const cJSON *e = merges->child; e; e = e->next) {
        const char *a, *b; size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring;
            if (!strncmp(s, "#version", 8)) continue;    /* merges.txt header line */
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) { st = SSM_FAIL(SSM_ERR_FORMAT); break; }
            a = s; la = (size_t)(sp - s); b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2
                   && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            a = e->child->valuestring; la = strlen(a);
            b = e->child->next->valuestring; lb = strlen(b);
        } else { st = SSM_FAIL(SSM_ERR_FORMAT); break; }
        /* an empty side would make a token its own merge result: HF's
         * stale-entry test could then accept outdated pairs; refused */
        if (la == 0 || lb == 0) { st = SSM_FAIL(SSM_ERR_FORMAT); break; }
        int32_t ia = ssmi_strmap_get(&t->vocab, a, (int32_t)la);
        int32_t ib = ssmi_strmap_get(&t->vocab, b, (int32_t)lb);
        if (ia < 0 || ib < 0) { st = SSM_FAIL(SSM_ERR_FORMAT); break; }
        if (la + lb + 1 > bufcap) {
            size_t nc = (la + lb + 1) * 2;
            char *q = realloc(buf, nc);
            if (!q) { st = SSM_FAIL(SSM_ERR_NOMEM); break; }
            buf = q; bufcap = nc;
        }
        memcpy(buf, a, la); memcpy(buf + la, b, lb);
        int32_t ic = ssmi_strmap_get(&t->vocab, buf, (int32_t)(la + lb));
        if (ic < 0) { st = SSM_FAIL(SSM_ERR_FORMAT); break; }
        merge_put(&t->merges, ia, ib, rank++, ic);
    }
    free(buf);
    t->nmerges = rank;
    return st;
}

/* ---- added tokens (AddedVocabulary::add_tokens) ---- */

static ssm_status trie_add(ssmi_trie *tr, const char *s, int32_t len, int32_t idx)
{
    if (tr->n == 0) {
        tr->next = calloc(1, sizeof *tr->next);
        tr->term = calloc(1, sizeof *tr->term);
        if (!tr->next || !tr->term) return SSM_FAIL(SSM_ERR_NOMEM);
        tr->n = 1;
    }
    int32_t node = 0;
    for (int32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!tr->next[node][c]) {
            int32_t (*nx)[256] = realloc(tr->next, (size_t)(tr->n + 1) * sizeof *nx);
            if (!nx) return SSM_FAIL(SSM_ERR_NOMEM);
            tr->next = nx;
            int32_t *tm = realloc(tr->term, (size_t)(tr->n + 1) * sizeof *tm);
            if (!tm) return SSM_FAIL(SSM_ERR_NOMEM);
            tr->term = tm;
            memset(tr->next[tr->n], 0, sizeof tr->next[tr->n]);
            tr->term[tr->n] = 0;
            tr->next[node][c] = tr->n++;
        }
        node = tr->next[node][c];
    }
    tr->term[node] = idx + 1;
    tr->first[(unsigned char)s[0]] = 1;
    return SSM_OK;
}

static ssm_status parse_added(ssm_tokenizer *t, const cJSON *arr)
{
    if (!arr || cJSON_IsNull(arr)) return SSM_OK;
    if (!cJSON_IsArray(arr)) return SSM_FAIL(SSM_ERR_FORMAT);
    int64_t na = cJSON_GetArraySize(arr);
    t->added = calloc((size_t)(na ? na : 1), sizeof *t->added);
    if (!t->added) return SSM_FAIL(SSM_ERR_NOMEM);
    SSM_TRY(ssmi_strmap_init(&t->added_map, na));
    int64_t next_id = t->nvocab;        /* model.get_vocab_size(): entries, not max id + 1 */
    for (const cJSON *e = arr->child; e; e = e->next) {
        if (!cJSON_IsObject(e) || !keys_unique(e)) return SSM_FAIL(SSM_ERR_FORMAT);
        const cJSON *c = get(e, "content");
        if (!c || !cJSON_IsString(c) || !is_utf8(c->valuestring)) return SSM_FAIL(SSM_ERR_FORMAT);
        int sw = get_bool(e, "single_word", 0), ls = get_bool(e, "lstrip", 0),
            rs = get_bool(e, "rstrip", 0), sp = get_bool(e, "special", 0);
        int nz = get_bool(e, "normalized", !sp);
        if (sw < 0 || ls < 0 || rs < 0 || sp < 0 || nz < 0) return SSM_FAIL(SSM_ERR_FORMAT);
        int32_t len = (int32_t)strlen(c->valuestring);
        if (len == 0) continue;                         /* ignored by HF */
        int32_t id = ssmi_strmap_get(&t->added_map, c->valuestring, len);
        if (id >= 0) {
            /* the same content again: HF keeps its id and takes the new
             * flags; a change of "normalized" would move it between the two
             * matching passes: refused rather than guessed */
            for (int32_t k = 0; k < t->nadded; k++)
                if (t->added[k].id == id) {
                    ssmi_added *a = &t->added[k];
                    if (a->normalized != nz) return SSM_FAIL(SSM_ERR_FORMAT);
                    a->single_word = (unsigned char)sw; a->lstrip = (unsigned char)ls;
                    a->rstrip = (unsigned char)rs; a->special = (unsigned char)sp;
                }
            continue;
        }
        id = ssmi_strmap_get(&t->vocab, c->valuestring, len);
        if (id < 0) {
            if (next_id >= TOK_MAX_ID) return SSM_FAIL(SSM_ERR_FORMAT);
            id = (int32_t)next_id++;
        }
        const char *raw = ssmi_tok_store(t, c->valuestring, (size_t)len);
        if (!raw) return SSM_FAIL(SSM_ERR_NOMEM);
        SSM_TRY(ssmi_strmap_put(&t->added_map, raw, len, id));
        /* an id given twice (a vocab id reused): the last token wins, as
         * added_tokens_map_r.insert does */
        for (int32_t k = 0; k < t->nadded; k++)
            if (t->added[k].id == id) return SSM_FAIL(SSM_ERR_FORMAT);
        ssmi_added *a = &t->added[t->nadded++];
        a->content = raw; a->len = len; a->id = id;
        a->single_word = (unsigned char)sw; a->lstrip = (unsigned char)ls;
        a->rstrip = (unsigned char)rs; a->normalized = (unsigned char)nz;
        a->special = (unsigned char)sp;
        if (id + 1 > t->nids) t->nids = id + 1;
    }
    return SSM_OK;
}

/* Added tokens' matching spelling (normalized when "normalized" and the
 * normalizer changes it, refresh_normalized_tokens), the tries, the tables
 * by id. */
static ssm_status finish(ssm_tokenizer *t)
{
    for (int32_t k = 0; k < t->nadded; k++) {
        ssmi_added *a = &t->added[k];
        if (a->normalized && t->nnorm) {
            char *nb; size_t nn;
            SSM_TRY(ssmi_tok_normalize(t, a->content, (size_t)a->len, &nb, &nn));
            if (nb) {
                const char *s = nn ? ssmi_tok_store(t, nb, nn) : NULL;
                free(nb);
                if (nn == 0) return SSM_FAIL(SSM_ERR_FORMAT);
                if (!s) return SSM_FAIL(SSM_ERR_NOMEM);
                a->content = s; a->len = (int32_t)nn;
            }
        }
        SSM_TRY(trie_add(a->normalized ? &t->trie_norm : &t->trie_raw, a->content, a->len, k));
        if (a->normalized) t->any_norm = 1; else t->any_raw = 1;
    }

    /* spelling by id: added tokens over the model's (simple_id_to_token) */
    size_t nid = (size_t)(t->nids > 0 ? t->nids : 1);
    t->tok_str = calloc(nid, sizeof *t->tok_str);
    t->tok_len = calloc(nid, sizeof *t->tok_len);
    t->dec_str = calloc(nid, sizeof *t->dec_str);
    t->dec_len = calloc(nid, sizeof *t->dec_len);
    t->special = calloc(nid, 1);
    if (!t->tok_str || !t->tok_len || !t->dec_str || !t->dec_len || !t->special)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t i = 0; i < t->vocab.n; i++) {
        const struct ssmi_strent *e = &t->vocab.ent[i];
        if (t->tok_str[e->val]) return SSM_FAIL(SSM_ERR_FORMAT);   /* two tokens, one id */
        t->tok_str[e->val] = e->s;
        t->tok_len[e->val] = e->len;
    }
    for (int32_t k = 0; k < t->nadded; k++) {
        const ssmi_added *a = &t->added[k];
        t->tok_str[a->id] = a->content;
        t->tok_len[a->id] = a->len;
        t->special[a->id] = a->special;
    }
    /* decoder bytes by id.  ByteLevel (decoders/byte_level.rs): every
     * character through the inverse byte map; a token with a character
     * outside the map keeps its own UTF-8 bytes.  No decoder: the token. */
    t->max_dec = 0;
    unsigned char *tmp = NULL; size_t tmpcap = 0;
    for (size_t i = 0; i < (size_t)t->nids; i++) {
        const unsigned char *s = (const unsigned char *)t->tok_str[i];
        int32_t n = t->tok_len[i];
        if (!s) continue;
        t->dec_str[i] = (const char *)s; t->dec_len[i] = n;
        if (t->dec_bytelevel) {
            if ((size_t)n > tmpcap) {
                unsigned char *q = realloc(tmp, (size_t)n);
                if (!q) { free(tmp); return SSM_FAIL(SSM_ERR_NOMEM); }
                tmp = q; tmpcap = (size_t)n;
            }
            int32_t m = 0, ok = 1;
            for (int32_t j = 0; j < n;) {
                uint32_t cp;
                j += ssmi_utf8_dec(s + j, &cp);
                int b = ssmi_cp_to_byte(cp);
                if (b < 0) { ok = 0; break; }
                tmp[m++] = (unsigned char)b;
            }
            if (ok) {
                const char *d = ssmi_tok_store(t, (const char *)tmp, (size_t)m);
                if (!d) { free(tmp); return SSM_FAIL(SSM_ERR_NOMEM); }
                t->dec_str[i] = d; t->dec_len[i] = m;
            }
        }
        if (t->dec_len[i] > t->max_dec) t->max_dec = t->dec_len[i];
    }
    free(tmp);

    /* single-character tokens for the BPE's first step, byte fallback tokens */
    for (uint32_t cp = 0; cp < 512; cp++) {
        unsigned char u[4];
        int n = ssmi_utf8_enc(cp, u);
        t->cp_id[cp] = ssmi_strmap_get(&t->vocab, (const char *)u, n);
    }
    for (unsigned b = 0; b < 256; b++) {
        unsigned char u[4] = { 0 };
        ssmi_utf8_enc(ssmi_byte_to_cp(b), u);
        t->bl_utf8[b][0] = u[0]; t->bl_utf8[b][1] = u[1];
    }
    for (int b = 0; b < 256; b++) {
        char name[16];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        t->byte_tok[b] = ssmi_strmap_get(&t->vocab, name, 6);
    }
    return SSM_OK;
}

static ssm_status parse_decoder(ssm_tokenizer *t, const cJSON *d)
{
    if (!d || cJSON_IsNull(d)) { t->dec_bytelevel = 0; return SSM_OK; }
    if (!cJSON_IsObject(d) || !keys_unique(d)) return SSM_FAIL(SSM_ERR_FORMAT);
    if (type_is(d, "ByteLevel")) { t->dec_bytelevel = 1; return SSM_OK; }
    return SSM_FAIL(SSM_ERR_FORMAT);
}

static ssm_status read_file(const char *path, char **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return SSM_FAIL(SSM_ERR_IO);
    char *buf = NULL; size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 20;
            if ((int64_t)nc > TOK_MAX_FILE) { free(buf); fclose(f); return SSM_FAIL(SSM_ERR_FORMAT); }
            char *q = realloc(buf, nc + 1);
            if (!q) { free(buf); fclose(f); return SSM_FAIL(SSM_ERR_NOMEM); }
            buf = q; cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return SSM_FAIL(SSM_ERR_IO); }
    buf[len] = 0;
    *data = buf; *n = len;
    return SSM_OK;
}

static ssm_status build(ssm_tokenizer *t, const char *text, size_t n)
{
    /* serde_json reads text: the whole file must be UTF-8 */
    if (ssmi_utf8_valid_prefix((const unsigned char *)text, n) != n) return SSM_FAIL(SSM_ERR_FORMAT);
    /* cJSON ends a string at an escaped NUL: a token spelled with U+0000
     * would be read shorter than it is; byte-level vocabularies never
     * contain one (byte 0 is 'Ā' there), so such files are refused */
    for (size_t i = 0; i + 6 <= n; i++)
        if (text[i] == '\\' && text[i + 1] == 'u' && text[i + 2] == '0' && text[i + 3] == '0'
            && text[i + 4] == '0' && text[i + 5] == '0') {
            /* not when the backslash is itself escaped: count the run */
            size_t k = i; while (k > 0 && text[k - 1] == '\\') k--;
            if ((i - k) % 2 == 0) return SSM_FAIL(SSM_ERR_FORMAT);
        }
    cJSON *root = ssmi_json_parse(text, n, NULL);   /* under the lock: see src/io/json.c */
    if (!root) return SSM_FAIL(SSM_ERR_FORMAT);
    ssm_status st = SSM_OK;
    if (!cJSON_IsObject(root) || !keys_unique(root)) { st = SSM_FAIL(SSM_ERR_FORMAT); goto out; }
    const cJSON *ver = get(root, "version");
    if (ver && !(cJSON_IsString(ver) && !strcmp(ver->valuestring, "1.0"))) {
        st = SSM_FAIL(SSM_ERR_FORMAT); goto out;
    }
    if ((st = parse_model(t, get(root, "model"))) != SSM_OK) goto out;
    if ((st = parse_normalizer(t, get(root, "normalizer"), 0)) != SSM_OK) goto out;
    if ((st = parse_pretok(t, get(root, "pre_tokenizer"), 0)) != SSM_OK) goto out;
    if ((st = parse_decoder(t, get(root, "decoder"))) != SSM_OK) goto out;
    if ((st = parse_added(t, get(root, "added_tokens"))) != SSM_OK) goto out;
    st = finish(t);
out:
    cJSON_Delete(root);
    return st;
}

ssm_status ssmi_tokenizer_load_mem(ssm_tokenizer **tok, const char *json, size_t n)
{
    if (!tok) return SSM_FAIL(SSM_ERR_ARG);
    *tok = NULL;
    if (!json && n) return SSM_FAIL(SSM_ERR_ARG);
    ssm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return SSM_FAIL(SSM_ERR_NOMEM);
    /* Rust regex's \w and \s (added_vocabulary.rs: single_word, lstrip/rstrip) */
    int err; PCRE2_SIZE eo;
    t->word_re = pcre2_compile((PCRE2_SPTR)"[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]",
                               PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eo, NULL);
    ssm_status st = t->word_re ? build(t, json ? json : "", n) : SSM_FAIL(SSM_ERR_NOMEM);
    if (st != SSM_OK) { ssm_tokenizer_destroy(t); return st; }
    *tok = t;
    return SSM_OK;
}

ssm_status ssm_tokenizer_load(ssm_tokenizer **tok, const char *path)
{
    if (!tok) return SSM_FAIL(SSM_ERR_ARG);
    *tok = NULL;
    if (!path) return SSM_FAIL(SSM_ERR_ARG);
    char *text = NULL; size_t n = 0;
    SSM_TRY(read_file(path, &text, &n));
    ssm_status st = ssmi_tokenizer_load_mem(tok, text, n);
    free(text);
    return st;
}

void ssm_tokenizer_destroy(ssm_tokenizer *t)
{
    if (!t) return;
    while (t->blocks) { struct ssmi_block *p = t->blocks->prev; free(t->blocks); t->blocks = p; }
    ssmi_strmap_free(&t->vocab);
    ssmi_strmap_free(&t->added_map);
    free(t->merges.slot);
    free(t->tok_str); free(t->tok_len); free(t->dec_str); free(t->dec_len); free(t->special);
    free(t->added);
    free(t->trie_raw.next); free(t->trie_raw.term);
    free(t->trie_norm.next); free(t->trie_norm.term);
    for (int k = 0; k < t->npt; k++) { pcre2_code_free(t->pt[k].re); free(t->pt[k].lit); }
    /* a pre-tokenizer that failed half-way (t->npt not incremented) */
    if (t->npt < (int)(sizeof t->pt / sizeof t->pt[0])) {
        pcre2_code_free(t->pt[t->npt].re); free(t->pt[t->npt].lit);
    }
    pcre2_code_free(t->word_re);
    free(t);
}

/* ---- vocabulary queries ---- */

int64_t ssm_tokenizer_vocab_size(const ssm_tokenizer *t)
{
    return t ? t->nids : 0;
}

int32_t ssm_tokenizer_token_to_id(const ssm_tokenizer *t, const char *token)
{
    if (!t || !token) return -1;
    size_t n = strlen(token);
    if (n > (size_t)INT32_MAX) return -1;
    int32_t id = ssmi_strmap_get(&t->added_map, token, (int32_t)n);
    if (id >= 0) return id;
    return ssmi_strmap_get(&t->vocab, token, (int32_t)n);
}

const char *ssm_tokenizer_id_to_token(const ssm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->nids) return NULL;
    return t->tok_str[id];
}

int ssm_tokenizer_is_special(const ssm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->nids) return 0;
    return t->special[id] != 0;
}
