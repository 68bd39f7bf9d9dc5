/*
 * ssm/tokenizer.h -- byte-level BPE tokenizer read from a Hugging Face
 * tokenizer.json (src/text): GPT-2, GPT-NeoX (the tokenizer of the Mamba
 * language models) and the models that reuse them.  Ids are exactly those of
 * Hugging Face tokenizers' encode(text, add_special_tokens=False); the manual
 * is docs/tokenizer.md.
 *
 * Supported tokenizer.json content (anything else: SSM_ERR_FORMAT at load):
 *   added_tokens   special or not, with single_word/lstrip/rstrip/normalized
 *   normalizer     null, NFC, NFD, NFKC, NFKD, Sequence of these
 *   pre_tokenizer  ByteLevel (add_prefix_space, use_regex), Split (Regex or
 *                  String pattern, every behavior, invert), Sequence of these
 *   model          BPE (vocab; merges as "a b" strings or ["a", "b"] pairs;
 *                  unk_token, fuse_unk, byte_fallback, ignore_merges; no
 *                  dropout, no subword prefix/suffix)
 *   decoder        ByteLevel, or null (tokens joined by spaces)
 *
 * A loaded tokenizer is immutable: any number of threads may encode and
 * decode with it at once.  Sizes follow snprintf: a function writes at most
 * cap elements and reports the full count, so a first call with cap = 0
 * sizes the buffer.
 */
#ifndef SSM_TOKENIZER_H
#define SSM_TOKENIZER_H

#include <stdint.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_tokenizer ssm_tokenizer;

/* path: a Hugging Face tokenizer.json whose model is byte-level BPE (as
 * GPT-2 and GPT-NeoX, the tokenizer of the Mamba language models).
 * Errors: SSM_ERR_ARG (NULL), SSM_ERR_IO (cannot open or read),
 * SSM_ERR_FORMAT (not JSON, or anything unsupported or inconsistent: other
 * models such as WordPiece or Unigram, merges naming unknown tokens, a
 * vocabulary id at or past 2 n + 65536 for n entries, ...), SSM_ERR_NOMEM.
 * *tok is NULL on error. */
SSM_API ssm_status ssm_tokenizer_load(ssm_tokenizer **tok, const char *path);
SSM_API void       ssm_tokenizer_destroy(ssm_tokenizer *tok);         /* NULL: no-op */

/* The ids of Hugging Face tokenizers' encode(text, add_special_tokens=False)
 * for nbytes of UTF-8 text (added tokens matched first, normalizer,
 * byte-level pre-tokenization, BPE merges by rank).  Writes min(*n, cap)
 * ids and sets *n to the full count (as snprintf; ids may be NULL when cap
 * is 0).  Invalid UTF-8: SSM_ERR_FORMAT. */
/* nbytes >= 0: an empty text gives *n = 0 (text may then be NULL). */
SSM_API ssm_status ssm_tokenizer_encode(const ssm_tokenizer *tok, const char *text,
                                        int64_t nbytes, int32_t *ids, int64_t cap,
                                        int64_t *n);

/* The UTF-8 of decode(ids, skip_special_tokens=False); byte sequences that
 * are not valid UTF-8 come out as U+FFFD, as Hugging Face does.  Writes
 * min(*nbytes, cap) bytes, no terminating NUL, and sets *nbytes to the full
 * length.  An id outside the vocabulary: SSM_ERR_ARG. */
/* n >= 0: no ids give *nbytes = 0. */
SSM_API ssm_status ssm_tokenizer_decode(const ssm_tokenizer *tok, const int32_t *ids,
                                        int64_t n, char *text, int64_t cap,
                                        int64_t *nbytes);

/* ---- vocabulary ---- */

/* 1 + the largest id of the vocabulary and the added tokens (0 for NULL).
 * Every id below it that the file assigns decodes; a model's embedding
 * table is often padded beyond it (GPT-NeoX: 50277 ids, 50280 rows): mask
 * those logits, their ids do not decode (SSM_ERR_ARG). */
SSM_API int64_t ssm_tokenizer_vocab_size(const ssm_tokenizer *tok);

/* The id of the token spelled exactly token (NUL-terminated) as in
 * tokenizer.json: an added token's content ("<|endoftext|>") or a vocabulary
 * entry in its byte-level spelling ("\xc4\xa0the" = "Ġthe"); -1 if none or
 * on NULL arguments. */
SSM_API int32_t ssm_tokenizer_token_to_id(const ssm_tokenizer *tok, const char *token);

/* The stored spelling of id (owned by tok, NUL-terminated), NULL if id is
 * not assigned. */
SSM_API const char *ssm_tokenizer_id_to_token(const ssm_tokenizer *tok, int32_t id);

/* 1 if id is an added token marked "special" (such as <|endoftext|>),
 * 0 otherwise (also for ids not assigned). */
SSM_API int ssm_tokenizer_is_special(const ssm_tokenizer *tok, int32_t id);

/* ---- streaming decode, for generation that prints as it goes ----
 *
 * A token may end inside a UTF-8 character.  The stream keeps those bytes
 * until the character is complete and emits only complete characters (or
 * U+FFFD for a byte sequence that cannot become valid), so that the
 * concatenation of every push and the final flush is byte for byte
 * ssm_tokenizer_decode of all the ids at once.  The state lives in the
 * caller's memory; push and flush never allocate.
 *
 *   ssm_tokenizer_stream st;
 *   char buf[256];             // or ssm_tokenizer_stream_bound(tok) bytes
 *   ssm_tokenizer_stream_init(&st);
 *   for each generated id:
 *       ssm_tokenizer_stream_push(tok, &st, id, buf, sizeof buf, &len);
 *       fwrite(buf, 1, len, stdout);          // (len <= sizeof buf)
 *   ssm_tokenizer_stream_flush(tok, &st, buf, sizeof buf, &len);
 *   fwrite(buf, 1, len, stdout);
 */
typedef struct ssm_tokenizer_stream {
    /* private: set by ssm_tokenizer_stream_init, read only by the library */
    unsigned char pending[4];  /* bytes of an incomplete UTF-8 character */
    int32_t npending;
    int32_t ntokens;           /* tokens pushed so far */
} ssm_tokenizer_stream;

/* Reset st to the start of a text.  NULL: no-op. */
SSM_API void ssm_tokenizer_stream_init(ssm_tokenizer_stream *st);

/* Append token id; writes to text the bytes that are now complete and sets
 * *nbytes to their count.  If they do not fit (*nbytes > cap), nothing is
 * written and st is unchanged: push again with a larger buffer.  A cap of
 * ssm_tokenizer_stream_bound(tok) always suffices.  Errors: SSM_ERR_ARG
 * (NULL tok/st/nbytes, text NULL with cap > 0, cap < 0, id not assigned;
 * st is then unchanged). */
SSM_API ssm_status ssm_tokenizer_stream_push(const ssm_tokenizer *tok,
                                             ssm_tokenizer_stream *st, int32_t id,
                                             char *text, int64_t cap, int64_t *nbytes);

/* End of text: writes U+FFFD for an incomplete character left over (as
 * the whole-sequence decode does) and resets st.  Same sizing rule as push
 * (at most 3 bytes). */
SSM_API ssm_status ssm_tokenizer_stream_flush(const ssm_tokenizer *tok,
                                              ssm_tokenizer_stream *st,
                                              char *text, int64_t cap, int64_t *nbytes);

/* A cap that always suffices for one push or flush on tok (0 for NULL). */
SSM_API int64_t ssm_tokenizer_stream_bound(const ssm_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif /* SSM_TOKENIZER_H */
