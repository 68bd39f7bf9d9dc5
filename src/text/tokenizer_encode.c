/*
 * tokenizer_encode.c -- text to ids, as Hugging Face tokenizers'
 * encode(text, add_special_tokens=False) for the byte-level BPE family.
 *
 * Stages (tokenizer/mod.rs encode_single_sequence, added_vocabulary.rs
 * extract_and_normalize, pre_tokenizers/, models/bpe/):
 *   1. added tokens with normalized=false are cut out of the raw text;
 *   2. each other piece is normalized, then added tokens with
 *      normalized=true are cut out of it;
 *   3. the pre-tokenizers split the remaining pieces (ByteLevel: prefix
 *      space, the GPT-2 regex, then every byte to its GPT-2 character);
 *   4. BPE: each final piece becomes one symbol per character, then the
 *      adjacent pair of lowest merge rank (leftmost among equals) is merged
 *      until no pair has a rank; through a binary heap, O(n log n) per word.
 * Empty pieces vanish at every stage.  Words of less than 256 bytes are
 * cached for the duration of the call (the tokenizer itself is immutable:
 * no shared mutable state, any number of threads may encode at once).
 */
#include <stdlib.h>
#include <string.h>

#include "text/text_internal.h"

#define CACHE_MAX_WORD 256
#define SHORT_WORD 32          /* symbols: merged by scanning, not through the heap */
#define MAX_LEVELS 16

typedef struct bufu8 { unsigned char *p; size_t cap; } bufu8;

typedef struct cache_ent { uint32_t koff, klen; uint32_t ioff, ilen; } cache_ent;
/* slot: the high hash bits as a tag, so a probe rarely touches an entry */
typedef struct cache_slot { uint32_t tag; int32_t idx; } cache_slot;

typedef struct enc {
    const ssm_tokenizer *t;
    int32_t *ids; int64_t cap, n;
    ssm_status st;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    bufu8 pre[MAX_LEVELS], map[MAX_LEVELS];
    /* BPE word */
    int32_t *c, *prev, *next, *len; size_t symcap;
    struct hent { uint32_t rank; int32_t pos, id; } *heap; size_t heapcap;
    /* cache */
    cache_slot *cslot; uint64_t cmask; cache_ent *cent; int64_t cn, ccap;
    unsigned char *ckeys; size_t ckn, ckcap;
    int32_t *cids; size_t cin, cicap;
} enc;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return 0;
    *p = q; *cap = nc;
    return 1;
}

static inline void emit(enc *e, int32_t id)
{
    if (e->n < e->cap) e->ids[e->n] = id;
    e->n++;
}

/* ---- BPE (models/bpe/model.rs merge_word, word.rs merge_all) ---- */

static inline int merge_get(const ssmi_mergemap *m, int32_t a, int32_t b,
                            uint32_t *rank, int32_t *id)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t j = (key * 0x9E3779B97F4A7C15ull >> 17) & m->mask;
    for (;;) {
        const ssmi_merge *e = &m->slot[j];
        if (e->key == key) { *rank = e->rank; *id = e->id; return 1; }
        uint64_t k = e->key;
        if (!k) return 0;
        j = (j + 1) & m->mask;
    }
}

/* 4-ary min-heap on (rank, pos), keyed as one 64-bit integer (rank in the
 * high half): half the depth of a binary heap, children in one cache line. */
static inline uint64_t hkey(uint32_t rank, int32_t pos) { return (uint64_t)rank << 32 | (uint32_t)pos; }

static void hsift_down(struct hent *h, size_t n, size_t i, struct hent x)
{
    uint64_t kx = hkey(x.rank, x.pos);
    for (;;) {
        size_t c = 4 * i + 1, m = i;
        uint64_t km = kx;
        size_t end = c + 4 < n ? c + 4 : n;
        for (size_t j = c; j < end; j++) {
            uint64_t kj = hkey(h[j].rank, h[j].pos);
            if (kj < km) { km = kj; m = j; }
        }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
}

static void hpush(enc *e, size_t *hn, uint32_t rank, int32_t pos, int32_t id)
{
    struct hent x = { rank, pos, id };
    uint64_t kx = hkey(rank, pos);
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (kx >= hkey(e->heap[p].rank, e->heap[p].pos)) break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = x;
}

static struct hent hpop(enc *e, size_t *hn)
{
    struct hent top = e->heap[0], x = e->heap[--(*hn)];
    if (*hn) hsift_down(e->heap, *hn, 0, x);
    return top;
}

static void add_sym(enc *e, size_t *ns, int32_t id, int32_t blen)
{
    size_t i = (*ns)++;
    e->c[i] = id; e->len[i] = blen;
    e->prev[i] = (int32_t)i - 1; e->next[i] = -1;
    if (i) e->next[i - 1] = (int32_t)i;
}

/* The ids of one pre-token s[0..n) (valid UTF-8), appended to the output
 * and, when cache_it, also to the cache's id arena (room for n made). */
static void bpe_word(enc *e, const unsigned char *s, size_t n, int cache_it)
{
    const ssm_tokenizer *t = e->t;
    if (n >= (size_t)INT32_MAX) { e->st = SSM_FAIL(SSM_ERR_NOMEM); return; }  /* int32 positions */
    if (t->ignore_merges) {
        int32_t id = ssmi_strmap_get(&t->vocab, (const char *)s, (int32_t)n);
        if (id >= 0) {
            emit(e, id);
            if (cache_it) e->cids[e->cin++] = id;
            return;
        }
    }
    /* at most n symbols (byte fallback: one per byte) */
    if (n > e->symcap) {
        size_t sc = e->symcap ? e->symcap : 64;
        while (sc < n) sc *= 2;
        int32_t *a = realloc(e->c, sc * sizeof *a); if (a) e->c = a;
        int32_t *b = a ? realloc(e->prev, sc * sizeof *b) : NULL; if (b) e->prev = b;
        int32_t *c = b ? realloc(e->next, sc * sizeof *c) : NULL; if (c) e->next = c;
        int32_t *d = c ? realloc(e->len, sc * sizeof *d) : NULL; if (d) e->len = d;
        if (!d) { e->st = SSM_FAIL(SSM_ERR_NOMEM); return; }
        e->symcap = sc;
    }
    size_t ns = 0;
    int32_t unk = -1, unk_len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int L = ssmi_utf8_dec(s + i, &cp);
        int32_t id = cp < 512 ? t->cp_id[cp] : ssmi_strmap_get(&t->vocab, (const char *)s + i, L);
        if (id >= 0) {
            if (unk >= 0) { add_sym(e, &ns, unk, unk_len); unk = -1; }
            add_sym(e, &ns, id, L);
        } else {
            int done = 0;
            if (t->byte_fallback) {
                int all = 1;
                for (int k = 0; k < L; k++) all &= t->byte_tok[s[i + k]] >= 0;
                if (all) {
                    /* (a pending unk stays pending, as in merge_word) */
                    for (int k = 0; k < L; k++) add_sym(e, &ns, t->byte_tok[s[i + k]], 1);
                    done = 1;
                }
            }
            if (!done && t->has_unk) {
                if (t->unk_id < 0) { e->st = SSM_FAIL(SSM_ERR_FORMAT); return; }
                if (unk >= 0 && t->fuse_unk) unk_len += L;
                else {
                    if (unk >= 0) add_sym(e, &ns, unk, unk_len);
                    unk = t->unk_id; unk_len = L;
                }
            }
            /* neither: the character is dropped, as merge_word does */
        }
        i += (size_t)L;
    }
    if (unk >= 0) add_sym(e, &ns, unk, unk_len);

    if (ns > 1 && ns <= SHORT_WORD) {
        /* Short words: the lowest (rank, position) among the current pairs,
         * found by a scan.  The same merges as the heap below: HF's heap
         * pops the least (rank, position) whose pair still gives the same
         * token, and with no empty token (refused at load) a changed pair
         * never gives the same token as the pair it replaced. */
        uint32_t prk[SHORT_WORD]; int32_t pid[SHORT_WORD];
        uint32_t rk; int32_t nid;
        for (size_t i = 0; i + 1 < ns; i++)
            prk[i] = merge_get(&t->merges, e->c[i], e->c[i + 1], &rk, &nid) ? (pid[i] = nid, rk) : UINT32_MAX;
        prk[ns - 1] = UINT32_MAX;
        for (;;) {
            int32_t best = -1;
            uint32_t br = UINT32_MAX;
            for (int32_t p = 0; p >= 0; p = e->next[p])
                if (prk[p] < br) { br = prk[p]; best = p; }
            if (best < 0) break;
            int32_t p = best, q = e->next[p];
            e->c[p] = pid[p];
            e->len[p] += e->len[q];
            e->next[p] = e->next[q];
            e->len[q] = 0;
            if (e->next[q] >= 0) e->prev[e->next[q]] = p;
            prk[p] = UINT32_MAX;
            if (e->next[p] >= 0 && merge_get(&t->merges, e->c[p], e->c[e->next[p]], &rk, &nid)) {
                prk[p] = rk; pid[p] = nid;
            }
            int32_t l = e->prev[p];
            if (l >= 0) {
                prk[l] = UINT32_MAX;
                if (merge_get(&t->merges, e->c[l], e->c[p], &rk, &nid)) { prk[l] = rk; pid[l] = nid; }
            }
        }
    } else if (ns > 1) {
        if (!grow((void **)&e->heap, &e->heapcap, 3 * ns, sizeof *e->heap)) {
            e->st = SSM_FAIL(SSM_ERR_NOMEM); return;
        }
        size_t hn = 0;
        uint32_t rk; int32_t nid;
        for (size_t i = 0; i + 1 < ns; i++)
            if (merge_get(&t->merges, e->c[i], e->c[i + 1], &rk, &nid))
                e->heap[hn++] = (struct hent){ rk, (int32_t)i, nid };
        /* heapify in O(n) */
        if (hn > 1)
            for (size_t i = (hn - 2) / 4 + 1; i-- > 0;) hsift_down(e->heap, hn, i, e->heap[i]);
        while (hn) {
            struct hent top = hpop(e, &hn);
            int32_t p = top.pos;
            if (e->len[p] == 0) continue;              /* merged away */
            int32_t q = e->next[p];
            if (q < 0) continue;                       /* last symbol */
            /* an outdated entry: the pair at p no longer makes top.id */
            if (!merge_get(&t->merges, e->c[p], e->c[q], &rk, &nid) || nid != top.id) continue;
            e->c[p] = top.id;
            e->len[p] += e->len[q];
            e->next[p] = e->next[q];
            e->len[q] = 0;
            if (e->next[q] >= 0) e->prev[e->next[q]] = p;
            if (e->prev[p] >= 0 && merge_get(&t->merges, e->c[e->prev[p]], e->c[p], &rk, &nid))
                hpush(e, &hn, rk, e->prev[p], nid);
            if (e->next[p] >= 0 && merge_get(&t->merges, e->c[p], e->c[e->next[p]], &rk, &nid))
                hpush(e, &hn, rk, p, nid);
        }
    }
    for (size_t i = 0; i < ns; i++) {
        if (e->len[i] == 0) continue;
        emit(e, e->c[i]);
        if (cache_it) e->cids[e->cin++] = e->c[i];   /* room made by bpe() */
    }
}

/* Cache probe for key[0..kn): 1 (ids emitted) on a hit; else 0 with the
 * slot and tag an insertion would take (*j = -1: the cache is off). */
static int cache_find(enc *e, const unsigned char *key, size_t kn, int64_t *jout, uint32_t *tagout)
{
    *jout = -1;
    if (kn >= CACHE_MAX_WORD || !e->cslot) return 0;
    uint64_t h = ssmi_hash_bytes(key, kn);
    uint32_t tag = (uint32_t)(h >> 32);
    uint64_t j = h & e->cmask;
    while (e->cslot[j].idx >= 0) {
        if (e->cslot[j].tag == tag) {
            const cache_ent *c = &e->cent[e->cslot[j].idx];
            if (c->klen == kn && !memcmp(e->ckeys + c->koff, key, kn)) {
                const int32_t *ids = e->cids + c->ioff;
                if (e->n + c->ilen <= e->cap) memcpy(e->ids + e->n, ids, c->ilen * sizeof *ids);
                else for (uint32_t k = 0; k < c->ilen; k++)
                    if (e->n + k < e->cap) e->ids[e->n + k] = ids[k];
                e->n += c->ilen;
                return 1;
            }
        }
        j = (j + 1) & e->cmask;
    }
    *jout = (int64_t)j; *tagout = tag;
    return 0;
}

/* BPE of s[0..n), remembered under key[0..kn) (the piece before the last
 * transformation, which determines s) at slot j. */
static void bpe_insert(enc *e, const unsigned char *key, size_t kn, int64_t j, uint32_t tag,
                       const unsigned char *s, size_t n)
{
    if (j < 0 || e->cn >= e->ccap
        || e->ckn + kn >= UINT32_MAX || e->cin + n >= UINT32_MAX     /* 32-bit offsets */
        || !grow((void **)&e->ckeys, &e->ckcap, e->ckn + kn, 1)
        || !grow((void **)&e->cids, &e->cicap, e->cin + n, sizeof *e->cids)) {
        bpe_word(e, s, n, 0);                       /* cache off or full: plain */
        return;
    }
    size_t i0 = e->cin;
    bpe_word(e, s, n, 1);
    if (e->st != SSM_OK) return;
    memcpy(e->ckeys + e->ckn, key, kn);
    e->cent[e->cn] = (cache_ent){ (uint32_t)e->ckn, (uint32_t)kn, (uint32_t)i0, (uint32_t)(e->cin - i0) };
    e->cslot[j].tag = tag;
    e->cslot[j].idx = (int32_t)e->cn++;
    e->ckn += kn;
}

static void bpe(enc *e, const unsigned char *s, size_t n)
{
    if (n == 0) return;
    int64_t j; uint32_t tag;
    if (cache_find(e, s, n, &j, &tag)) return;
    bpe_insert(e, s, n, j, tag, s, n);
}

/* ---- pre-tokenizers ---- */

static void pretok(enc *e, int k, const unsigned char *s, size_t n);

/* Next match of a Split pattern (regex or literal) in s[0..n) at or
 * after *pos, with the rule of onig's find_iter (and the regex crate's):
 * an empty match right where the previous match ended is skipped. */
typedef struct mit { size_t pos; int64_t last_end; } mit;

static int next_match(enc *e, const ssmi_pretok *pt, const unsigned char *s, size_t n,
                      mit *it, size_t *ms, size_t *me)
{
    for (;;) {
        if (it->pos > n) return 0;
        if (pt->re) {
            int rc = pcre2_match(pt->re, s, n, it->pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !e->jit) {
                /* PCRE2's default JIT stack (32 KiB) ran out: a larger one,
                 * made once per call and only when needed */
                e->jit = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
                if (!e->jit) { e->st = SSM_FAIL(SSM_ERR_NOMEM); return 0; }
                pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
                rc = pcre2_match(pt->re, s, n, it->pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
            }
            if (rc == PCRE2_ERROR_NOMATCH) return 0;
            if (rc < 0) {
                e->st = SSM_FAIL(rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT
                                 || rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_MATCHLIMIT
                                 || rc == PCRE2_ERROR_DEPTHLIMIT ? SSM_ERR_NOMEM : SSM_ERR_FORMAT);
                return 0;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
            *ms = ov[0]; *me = ov[1];
            if (*me < *ms) *me = *ms;                  /* \K tricks: refused at compile anyway */
        } else {
            const unsigned char *f = NULL;
            size_t L = (size_t)pt->litlen, i = it->pos;
            while (i + L <= n) {
                const unsigned char *q = memchr(s + i, (unsigned char)pt->lit[0], n - L + 1 - i);
                if (!q) break;
                if (!memcmp(q, pt->lit, L)) { f = q; break; }
                i = (size_t)(q - s) + 1;
            }
            if (!f) return 0;
            *ms = (size_t)(f - s); *me = *ms + L;
        }
        if (*ms == *me && (int64_t)*me == it->last_end) {
            /* step one character */
            if (it->pos >= n) { it->pos = n + 1; continue; }
            unsigned c = s[it->pos];
            it->pos += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            continue;
        }
        it->pos = *me;
        it->last_end = (int64_t)*me;
        return 1;
    }
}

/* Byte-level: every byte to its GPT-2 character, then on. */
static void bytelevel_map(enc *e, int k, const unsigned char *s, size_t n)
{
    if (n == 0) return;
    /* ByteLevel last (the usual case): the raw piece determines the mapped
     * one, so the cache is probed before mapping */
    int last = k + 1 == e->t->npt;
    int64_t j = -1; uint32_t tag = 0;
    if (last && cache_find(e, s, n, &j, &tag)) return;
    bufu8 *b = &e->map[k];
    if (!grow((void **)&b->p, &b->cap, 2 * n, 1)) { e->st = SSM_FAIL(SSM_ERR_NOMEM); return; }
    const ssm_tokenizer *t = e->t;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* every mapped character is U+0021..U+0143: 1 or 2 bytes */
        const unsigned char *u = t->bl_utf8[s[i]];
        b->p[m] = u[0]; b->p[m + 1] = u[1];
        m += u[1] ? 2u : 1u;
    }
    if (last) bpe_insert(e, s, n, j, tag, b->p, m);
    else pretok(e, k + 1, b->p, m);
}

/* Split behaviors (normalizer.rs NormalizedString::split) as a stream. */
typedef struct splitter {
    int behavior;
    int have, pend_match, prev_match;
    size_t ps, pe;
} splitter;

static void split_out(enc *e, int k, const unsigned char *s, size_t a, size_t b)
{
    if (b > a) pretok(e, k + 1, s + a, b - a);
}

static void split_feed(enc *e, int k, splitter *sp, const unsigned char *s,
                       size_t a, size_t b, int is_match)
{
    switch (sp->behavior) {
    case SSMI_SPLIT_ISOLATED: split_out(e, k, s, a, b); break;
    case SSMI_SPLIT_REMOVED: if (!is_match) split_out(e, k, s, a, b); break;
    case SSMI_SPLIT_CONTIGUOUS:
        if (sp->have && is_match == sp->prev_match) sp->pe = b;
        else {
            if (sp->have) split_out(e, k, s, sp->ps, sp->pe);
            sp->ps = a; sp->pe = b; sp->have = 1;
        }
        sp->prev_match = is_match;
        break;
    case SSMI_SPLIT_MERGED_PREV:
        if (is_match && !sp->prev_match && sp->have) sp->pe = b;
        else {
            if (sp->have) split_out(e, k, s, sp->ps, sp->pe);
            sp->ps = a; sp->pe = b; sp->have = 1;
        }
        sp->prev_match = is_match;
        break;
    default: /* MergedWithNext: a match joins the non-match right after it */
        if (sp->have) {
            sp->have = 0;
            if (!is_match) { split_out(e, k, s, sp->ps, b); break; }
            split_out(e, k, s, sp->ps, sp->pe);
        }
        if (is_match) { sp->have = 1; sp->ps = a; sp->pe = b; }
        else split_out(e, k, s, a, b);
        break;
    }
}

static void split_end(enc *e, int k, splitter *sp, const unsigned char *s)
{
    if (sp->have) split_out(e, k, s, sp->ps, sp->pe);
    sp->have = 0;
}

static void pretok(enc *e, int k, const unsigned char *s, size_t n)
{
    const ssm_tokenizer *t = e->t;
    if (n == 0 || e->st != SSM_OK) return;
    if (k == t->npt) { bpe(e, s, n); return; }
    const ssmi_pretok *pt = &t->pt[k];
    if (pt->type == SSMI_PT_BYTELEVEL) {
        const unsigned char *src = s; size_t len = n;
        if (pt->add_prefix_space && s[0] != ' ') {
            bufu8 *b = &e->pre[k];
            if (!grow((void **)&b->p, &b->cap, n + 1, 1)) { e->st = SSM_FAIL(SSM_ERR_NOMEM); return; }
            b->p[0] = ' ';
            memcpy(b->p + 1, s, n);
            src = b->p; len = n + 1;
        }
        if (!pt->use_regex) { bytelevel_map(e, k, src, len); return; }
        /* Isolated: every match and every gap is a piece */
        mit it = { 0, -1 };
        size_t prev = 0, ms, me;
        while (e->st == SSM_OK && next_match(e, pt, src, len, &it, &ms, &me)) {
            if (ms > prev) bytelevel_map(e, k, src + prev, ms - prev);
            bytelevel_map(e, k, src + ms, me - ms);
            prev = me;
        }
        if (e->st == SSM_OK && prev < len) bytelevel_map(e, k, src + prev, len - prev);
        return;
    }
    /* Split */
    splitter sp = { pt->behavior, 0, 0, 0, 0, 0 };
    mit it = { 0, -1 };
    size_t prev = 0, ms, me;
    while (e->st == SSM_OK && next_match(e, pt, s, n, &it, &ms, &me)) {
        if (ms != prev) split_feed(e, k, &sp, s, prev, ms, pt->invert);
        split_feed(e, k, &sp, s, ms, me, !pt->invert);
        prev = me;
    }
    if (e->st != SSM_OK) return;
    if (prev != n) split_feed(e, k, &sp, s, prev, n, pt->invert);
    split_end(e, k, &sp, s);
}

/* ---- added tokens (added_vocabulary.rs find_matches) ---- */

/* Rust regex's \s: the White_Space property (Unicode, stable). */
static int is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680
        || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F
        || c == 0x205F || c == 0x3000;
}

static int is_word_char(enc *e, const unsigned char *s, int L)
{
    int rc = pcre2_match(e->t->word_re, s, (PCRE2_SIZE)L, 0,
                         PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, e->md, NULL);
    return rc >= 0;
}

static size_t char_start_before(const unsigned char *s, size_t i)
{
    do i--; while (i > 0 && (s[i] & 0xC0) == 0x80);
    return i;
}

typedef void (*gap_fn)(enc *e, const unsigned char *s, size_t n);

static void split_added(enc *e, const ssmi_trie *tr, const unsigned char *s, size_t n, gap_fn gap)
{
    const ssm_tokenizer *t = e->t;
    size_t start_offset = 0, pos = 0, ms, me;
    int32_t idx;
    while (e->st == SSM_OK && ssmi_trie_find(tr, s, n, pos, &ms, &me, &idx)) {
        pos = me;
        const ssmi_added *a = &t->added[idx];
        size_t start = ms, stop = me;
        if (a->single_word) {
            int start_space = 1, stop_space = 1;
            if (ms > 0) {
                size_t c0 = char_start_before(s, ms);
                start_space = !is_word_char(e, s + c0, (int)(ms - c0));
            }
            if (me < n) {
                uint32_t cp;
                int L = ssmi_utf8_dec(s + me, &cp);
                stop_space = !is_word_char(e, s + me, L);
            }
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t c0 = char_start_before(s, ns);
                uint32_t cp;
                ssmi_utf8_dec(s + c0, &cp);
                if (!is_white_space(cp)) break;
                ns = c0;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int L = ssmi_utf8_dec(s + stop, &cp);
                if (!is_white_space(cp)) break;
                stop += (size_t)L;
            }
        }
        if (start_offset < start) gap(e, s + start_offset, start - start_offset);
        if (e->st != SSM_OK) return;
        emit(e, a->id);
        start_offset = stop;
    }
    if (e->st == SSM_OK && start_offset < n) gap(e, s + start_offset, n - start_offset);
}

static void after_norm(enc *e, const unsigned char *s, size_t n)
{
    pretok(e, 0, s, n);
}

static void normalize_piece(enc *e, const unsigned char *s, size_t n)
{
    if (n == 0) return;
    char *nb; size_t nn;
    ssm_status st = ssmi_tok_normalize(e->t, (const char *)s, n, &nb, &nn);
    if (st != SSM_OK) { e->st = st; return; }
    const unsigned char *p = nb ? (const unsigned char *)nb : s;
    if (e->t->any_norm) split_added(e, &e->t->trie_norm, p, nn, after_norm);
    else pretok(e, 0, p, nn);
    free(nb);
}

/* ---- entry point ---- */

static void enc_free(enc *e)
{
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mctx);
    if (e->jit) pcre2_jit_stack_free(e->jit);
    for (int k = 0; k < MAX_LEVELS; k++) { free(e->pre[k].p); free(e->map[k].p); }
    free(e->c); free(e->prev); free(e->next); free(e->len); free(e->heap);
    free(e->cslot); free(e->cent); free(e->ckeys); free(e->cids);
}

ssm_status ssm_tokenizer_encode(const ssm_tokenizer *tok, const char *text,
                                int64_t nbytes, int32_t *ids, int64_t cap, int64_t *n)
{
    if (!tok || !n || nbytes < 0 || cap < 0 || (!text && nbytes > 0) || (!ids && cap > 0))
        return SSM_FAIL(SSM_ERR_ARG);
    *n = 0;
    if (nbytes == 0) return SSM_OK;
    if ((uint64_t)nbytes > (uint64_t)SIZE_MAX / 4) return SSM_FAIL(SSM_ERR_NOMEM);
    const unsigned char *s = (const unsigned char *)text;
    size_t len = (size_t)nbytes;
    if (ssmi_utf8_valid_prefix(s, len) != len) return SSM_FAIL(SSM_ERR_FORMAT);

    enc e;
    memset(&e, 0, sizeof e);
    e.t = tok; e.ids = ids; e.cap = cap; e.st = SSM_OK;
    e.md = pcre2_match_data_create(1, NULL);
    e.mctx = pcre2_match_context_create(NULL);
    if (!e.md || !e.mctx) { enc_free(&e); return SSM_FAIL(SSM_ERR_NOMEM); }
    /* the word cache, sized from the text (at most 64 Ki words) */
    {
        uint64_t slots = 64;
        while (slots < (uint64_t)len / 2 && slots < (1u << 18)) slots <<= 1;
        e.cslot = malloc(slots * sizeof *e.cslot);
        e.cent = malloc((slots / 2) * sizeof *e.cent);
        if (e.cslot && e.cent) {
            for (uint64_t i = 0; i < slots; i++) e.cslot[i] = (cache_slot){ 0, -1 };
            e.cmask = slots - 1; e.ccap = (int64_t)(slots / 2);
        } else {
            free(e.cslot); free(e.cent); e.cslot = NULL; e.cent = NULL;   /* run uncached */
        }
    }
    if (tok->any_raw) split_added(&e, &tok->trie_raw, s, len, normalize_piece);
    else normalize_piece(&e, s, len);
    ssm_status st = e.st;
    *n = st == SSM_OK ? e.n : 0;
    enc_free(&e);
    return st;
}
