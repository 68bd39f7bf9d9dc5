/*
 * tokenizer_decode.c -- ids to text, whole (decode) or as they come
 * (stream), identical byte for byte.
 *
 * HF's decode (tokenizer/mod.rs) maps each id to its token (added tokens
 * first), then the ByteLevel decoder maps every character back to its byte
 * and reads the bytes with String::from_utf8_lossy: each maximal prefix of
 * a well-formed sequence that cannot be completed becomes one U+FFFD
 * (Unicode 15, section 3.9, "U+FFFD substitution of maximal subparts"), and
 * so does an incomplete sequence at the very end.  Without a decoder the
 * tokens are joined with single spaces.  The same byte automaton runs both
 * paths, so a stream that ends with a flush reproduces decode exactly.
 */
#include <string.h>

#include "text/text_internal.h"

static const unsigned char FFFD[3] = { 0xEF, 0xBF, 0xBD };

/* Output sink: writes while there is room, counts everything. */
typedef struct sink { char *p; int64_t cap, n; } sink;

static inline void put(sink *o, const unsigned char *s, int64_t n)
{
    if (o->n < o->cap) {
        int64_t k = o->cap - o->n < n ? o->cap - o->n : n;
        memcpy(o->p + o->n, s, (size_t)k);
    }
    o->n += n;
}

/* Expected length of a sequence led by b (0: not a lead byte). */
static inline int seq_len(unsigned b)
{
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* One byte through the automaton (pending bytes of st). */
static void feed(ssm_tokenizer_stream *st, unsigned b, sink *o)
{
    for (;;) {
        if (st->npending == 0) {
            if (b < 0x80) { unsigned char c = (unsigned char)b; put(o, &c, 1); return; }
            if (!seq_len(b)) { put(o, FFFD, 3); return; }
            st->pending[0] = (unsigned char)b; st->npending = 1;
            return;
        }
        unsigned lead = st->pending[0], lo = 0x80, hi = 0xBF;
        if (st->npending == 1) {
            if (lead == 0xE0) lo = 0xA0;
            else if (lead == 0xED) hi = 0x9F;
            else if (lead == 0xF0) lo = 0x90;
            else if (lead == 0xF4) hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            st->pending[st->npending++] = (unsigned char)b;
            if (st->npending == seq_len(lead)) {
                put(o, st->pending, st->npending);
                st->npending = 0;
            }
            return;
        }
        /* the pending prefix can never complete: one U+FFFD, and b starts anew */
        put(o, FFFD, 3);
        st->npending = 0;
    }
}

static int id_ok(const ssm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->nids && t->tok_str[id] != NULL;
}

static void push_token(const ssm_tokenizer *t, ssm_tokenizer_stream *st, int32_t id, sink *o)
{
    const unsigned char *s = (const unsigned char *)t->dec_str[id];
    int32_t n = t->dec_len[id];
    if (!t->dec_bytelevel) {
        /* no decoder: tokens.join(" "); tokens are valid UTF-8 */
        if (st->ntokens > 0) put(o, (const unsigned char *)" ", 1);
        put(o, s, n);
    } else {
        int32_t i = 0;
        while (i < n) {
            if (st->npending == 0 && s[i] < 0x80) {     /* ASCII run: as is */
                int32_t j = i;
                while (j < n && s[j] < 0x80) j++;
                put(o, s + i, j - i);
                i = j;
                continue;
            }
            feed(st, s[i++], o);
        }
    }
    if (st->ntokens < INT32_MAX) st->ntokens++;
}

static void finish(ssm_tokenizer_stream *st, sink *o)
{
    if (st->npending) put(o, FFFD, 3);
    st->npending = 0;
    st->ntokens = 0;
}

ssm_status ssm_tokenizer_decode(const ssm_tokenizer *tok, const int32_t *ids, int64_t n,
                                char *text, int64_t cap, int64_t *nbytes)
{
    if (!tok || !nbytes || n < 0 || cap < 0 || (!ids && n > 0) || (!text && cap > 0))
        return SSM_FAIL(SSM_ERR_ARG);
    *nbytes = 0;
    for (int64_t i = 0; i < n; i++)
        if (!id_ok(tok, ids[i])) return SSM_FAIL(SSM_ERR_ARG);
    ssm_tokenizer_stream st;
    ssm_tokenizer_stream_init(&st);
    sink o = { text, cap, 0 };
    for (int64_t i = 0; i < n; i++) push_token(tok, &st, ids[i], &o);
    finish(&st, &o);
    *nbytes = o.n;
    return SSM_OK;
}

void ssm_tokenizer_stream_init(ssm_tokenizer_stream *st)
{
    if (!st) return;
    memset(st, 0, sizeof *st);
}

static int stream_ok(const ssm_tokenizer_stream *st)
{
    return st->npending >= 0 && st->npending <= 3 && st->ntokens >= 0;
}

ssm_status ssm_tokenizer_stream_push(const ssm_tokenizer *tok, ssm_tokenizer_stream *st,
                                     int32_t id, char *text, int64_t cap, int64_t *nbytes)
{
    if (!tok || !st || !nbytes || cap < 0 || (!text && cap > 0) || !stream_ok(st))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!id_ok(tok, id)) return SSM_FAIL(SSM_ERR_ARG);
    /* count first on a copy; commit only when it fits */
    ssm_tokenizer_stream tmp = *st;
    sink c = { NULL, 0, 0 };
    push_token(tok, &tmp, id, &c);
    *nbytes = c.n;
    if (c.n > cap) return SSM_OK;
    sink o = { text, cap, 0 };
    push_token(tok, st, id, &o);
    return SSM_OK;
}

ssm_status ssm_tokenizer_stream_flush(const ssm_tokenizer *tok, ssm_tokenizer_stream *st,
                                      char *text, int64_t cap, int64_t *nbytes)
{
    if (!tok || !st || !nbytes || cap < 0 || (!text && cap > 0) || !stream_ok(st))
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t need = st->npending ? 3 : 0;
    *nbytes = need;
    if (need > cap) return SSM_OK;
    sink o = { text, cap, 0 };
    finish(st, &o);
    return SSM_OK;
}

int64_t ssm_tokenizer_stream_bound(const ssm_tokenizer *tok)
{
    /* a pending prefix and every byte of the longest token may each turn
     * into U+FFFD (3 bytes), plus the joining space without a decoder */
    return tok ? 3 * tok->max_dec + 4 : 0;
}
