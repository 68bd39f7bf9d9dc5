/*
 * text_internal.h -- the loaded tokenizer of src/text and the helpers its
 * files share.  Never installed.
 *
 * The pipeline is Hugging Face tokenizers' (tokenizer/mod.rs,
 * encode_single_sequence): added tokens that are not "normalized" are cut
 * out of the raw text, the normalizer runs on each remaining piece, added
 * tokens that are "normalized" are cut out of the normalized pieces, the
 * pre-tokenizers split (and, for ByteLevel, byte-map) what is left, and the
 * BPE model turns each final piece into ids.
 */
#ifndef SSM_TEXT_INTERNAL_H
#define SSM_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "internal.h"

/* ---- open-addressing hash maps (power-of-two tables, linear probing) ---- */

uint64_t ssmi_hash_bytes(const void *p, size_t n);

/* String -> int32 map over strings stored elsewhere (an arena). */
typedef struct ssmi_strmap {
    int32_t  *slot;       /* entry index or -1 */
    uint64_t  mask;
    struct ssmi_strent { const char *s; int32_t len; int32_t val; uint64_t h; } *ent;
    int64_t   n, cap;
} ssmi_strmap;

ssm_status ssmi_strmap_init(ssmi_strmap *m, int64_t expected);
void       ssmi_strmap_free(ssmi_strmap *m);
/* Insert or overwrite (s must outlive the map). */
ssm_status ssmi_strmap_put(ssmi_strmap *m, const char *s, int32_t len, int32_t val);
/* The value, or -1. */
int32_t    ssmi_strmap_get(const ssmi_strmap *m, const char *s, int32_t len);

/* (a, b) id pair -> (rank, new id) of a BPE merge. */
typedef struct ssmi_merge { uint64_t key; uint32_t rank; int32_t id; } ssmi_merge;
typedef struct ssmi_mergemap {
    ssmi_merge *slot;     /* key (a << 32 | b) + 1, 0 = empty; one cache line holds 4 */
    uint64_t    mask;
} ssmi_mergemap;

/* ---- the tokenizer ---- */

enum { SSMI_NORM_NFC = 1, SSMI_NORM_NFD, SSMI_NORM_NFKC, SSMI_NORM_NFKD };
enum { SSMI_PT_BYTELEVEL = 1, SSMI_PT_SPLIT };
enum { SSMI_SPLIT_REMOVED = 0, SSMI_SPLIT_ISOLATED, SSMI_SPLIT_MERGED_PREV,
       SSMI_SPLIT_MERGED_NEXT, SSMI_SPLIT_CONTIGUOUS };

typedef struct ssmi_pretok {
    int type;
    int add_prefix_space, use_regex;      /* ByteLevel */
    int behavior, invert;                 /* Split */
    pcre2_code *re;                       /* Split Regex, ByteLevel regex */
    char *lit; int32_t litlen;            /* Split String */
} ssmi_pretok;

typedef struct ssmi_added {
    const char *content; int32_t len;     /* as matched: normalized if normalized */
    int32_t id;
    unsigned char single_word, lstrip, rstrip, normalized, special;
} ssmi_added;

/* A trie over added-token contents, for leftmost-longest matching. */
typedef struct ssmi_trie {
    int32_t (*next)[256];   /* child node or 0 */
    int32_t *term;          /* added index + 1 at a node that ends a token, 0 */
    int32_t  n;
    unsigned char first[256];  /* bytes that start some token */
} ssmi_trie;

struct ssm_tokenizer {
    struct ssmi_block *blocks;    /* every string, in blocks that never move */
    /* model */
    ssmi_strmap vocab;            /* token -> id (model vocab only) */
    int64_t  nvocab;              /* entries of the model vocab */
    ssmi_mergemap merges;
    int64_t  nmerges;
    int32_t  cp_id[512];          /* id of the one-character token U+0000..U+01FF, or -1 */
    int32_t  unk_id;              /* -1: none (or unk_token not in vocab: see unk_missing) */
    int      has_unk, fuse_unk, byte_fallback, ignore_merges;
    int32_t  byte_tok[256];       /* id of "<0xXX>", -1 (byte_fallback) */
    unsigned char bl_utf8[256][2];/* UTF-8 of each byte's GPT-2 character (second 0: one byte) */
    /* ids */
    int64_t  nids;                /* 1 + largest id */
    const char **tok_str; int32_t *tok_len;  /* stored spelling by id, NULL: none */
    const char **dec_str; int32_t *dec_len;  /* decoder bytes by id */
    unsigned char *special;       /* by id */
    int64_t  max_dec;             /* longest dec_len */
    /* added tokens */
    ssmi_added *added; int32_t nadded;
    ssmi_strmap added_map;        /* content -> id */
    ssmi_trie trie_raw, trie_norm;
    int      any_raw, any_norm;
    /* normalizer: sequence of utf8proc forms */
    int      norm[16]; int nnorm;
    /* pre-tokenizers, flattened */
    ssmi_pretok pt[16]; int npt;
    pcre2_code *word_re;          /* Rust's \w for single_word, on one character */
    /* decoder: 1 ByteLevel, 0 none (join with spaces) */
    int      dec_bytelevel;
};

/* ssm_tokenizer_load on the n bytes of a tokenizer.json in memory (the
 * fuzz target's entry). */
ssm_status ssmi_tokenizer_load_mem(ssm_tokenizer **tok, const char *json, size_t n);

/* A copy of n bytes (plus a NUL) owned by t, at an address that never
 * changes; NULL on NOMEM. */
const char *ssmi_tok_store(ssm_tokenizer *t, const char *s, size_t n);

/* t's normalizers applied to s[0..n): *out (malloc'ed, caller frees) and
 * *outn; *out == NULL means unchanged (no normalizer, or ASCII text, which
 * every Unicode normalization form leaves as it is). */
ssm_status ssmi_tok_normalize(const ssm_tokenizer *t, const char *s, size_t n,
                              char **out, size_t *outn);

/* GPT-2's bytes_to_unicode (Radford et al. 2019, encoder.py): printable
 * bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF map to themselves, the other 68 to
 * U+0100 + k in increasing byte order. */
uint32_t ssmi_byte_to_cp(unsigned b);
/* The byte of code point cp under that map, or -1. */
int      ssmi_cp_to_byte(uint32_t cp);

/* Length of the valid UTF-8 prefix of s (== n when all valid). */
size_t   ssmi_utf8_valid_prefix(const unsigned char *s, size_t n);
/* Decode one code point at s (valid UTF-8 assumed); returns its length. */
int      ssmi_utf8_dec(const unsigned char *s, uint32_t *cp);
int      ssmi_utf8_enc(uint32_t cp, unsigned char *out);

/* Regex compiled with Oniguruma's meaning of \s \w \d \h (as the Rust
 * crate compiles it): NULL (with *st) when it cannot be translated. */
pcre2_code *ssmi_regex_compile(const char *pat, size_t len, ssm_status *st);

/* Leftmost-longest match of the trie at or after position pos of s[0..n):
 * 1 with *ms, *me, *idx, else 0. */
int ssmi_trie_find(const ssmi_trie *tr, const unsigned char *s, size_t n, size_t pos,
                   size_t *ms, size_t *me, int32_t *idx);

#endif /* SSM_TEXT_INTERNAL_H */
