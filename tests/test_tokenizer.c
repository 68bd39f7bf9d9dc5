/* ctest-labels: text */
/*
 * test_tokenizer.c -- the byte-level BPE tokenizer (src/text) on small
 * tokenizer.json files written here, whose every expected id is worked out
 * by hand in the comments; decode and streaming decode; the bad-input table.
 *
 * The toy vocabulary (byte-level spellings: G = U+0120 'Ġ', the space byte):
 *    0 h   1 e   2 l   3 o   4 G   5 w   6 r   7 d   8 he  9 ll  10 llo
 *   11 hello  12 Gw  13 or  14 Gwor  15 Gworld  16 ld  17 Ã (byte C3)
 *   18 © (byte A9)  19 Ã©  20 !  21 Ċ (byte 0A)  22 GG  23 '  24 s  25 's
 *   26 Ghello  27 1  28 2  29 12
 * merges, by rank: 0 h+e  1 l+l  2 G+w  3 o+r  4 ll+o  5 he+llo  6 Gw+or
 *   7 l+d  8 Gwor+ld  9 Ã+©  10 G+G  11 '+s  12 G+hello  13 1+2
 * (30 entries: the first added token that is not in it gets id 30).
 */
#define _POSIX_C_SOURCE 200809L
#include <ssm.h>
#include <unistd.h>
#include "testutil.h"

static const char *VOCAB =
    "{\"h\":0,\"e\":1,\"l\":2,\"o\":3,\"\\u0120\":4,\"w\":5,\"r\":6,\"d\":7,\"he\":8,"
    "\"ll\":9,\"llo\":10,\"hello\":11,\"\\u0120w\":12,\"or\":13,\"\\u0120wor\":14,"
    "\"\\u0120world\":15,\"ld\":16,\"\\u00c3\":17,\"\\u00a9\":18,\"\\u00c3\\u00a9\":19,"
    "\"!\":20,\"\\u010a\":21,\"\\u0120\\u0120\":22,\"'\":23,\"s\":24,\"'s\":25,"
    "\"\\u0120hello\":26,\"1\":27,\"2\":28,\"12\":29}";
static const char *MERGES_STR =
    "[\"h e\",\"l l\",\"\\u0120 w\",\"o r\",\"ll o\",\"he llo\",\"\\u0120w or\",\"l d\","
    "\"\\u0120wor ld\",\"\\u00c3 \\u00a9\",\"\\u0120 \\u0120\",\"' s\",\"\\u0120 hello\",\"1 2\"]";
static const char *MERGES_PAIR =
    "[[\"h\",\"e\"],[\"l\",\"l\"],[\"\\u0120\",\"w\"],[\"o\",\"r\"],[\"ll\",\"o\"],"
    "[\"he\",\"llo\"],[\"\\u0120w\",\"or\"],[\"l\",\"d\"],[\"\\u0120wor\",\"ld\"],"
    "[\"\\u00c3\",\"\\u00a9\"],[\"\\u0120\",\"\\u0120\"],[\"'\",\"s\"],[\"\\u0120\",\"hello\"],"
    "[\"1\",\"2\"]]";

static const char *BL = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";
static const char *EOT = "{\"id\":30,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,"
                         "\"rstrip\":false,\"normalized\":false,\"special\":true}";

static char g_dir[256];

static const char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void write_file(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(s, 1, n, f), n);
    fclose(f);
}

/* A tokenizer.json from its parts (NULL: the toy default). */
static char *toy_json(const char *added, const char *normalizer, const char *pretok,
                      const char *decoder, const char *model)
{
    static char model_buf[8192];
    if (!model) {
        snprintf(model_buf, sizeof model_buf,
                 "{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
                 "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,"
                 "\"vocab\":%s,\"merges\":%s}", VOCAB, MERGES_STR);
        model = model_buf;
    }
    size_t n = 16384 + strlen(model);
    char *j = tu_alloc(n, 1);
    snprintf(j, n, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":%s,"
             "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":%s,\"model\":%s}",
             added ? added : "[]", normalizer ? normalizer : "null", pretok ? pretok : BL,
             decoder ? decoder : BL, model);
    return j;
}

static ssm_tokenizer *load_json(const char *json, const char *name)
{
    const char *p = tmp_path(name);
    write_file(p, json, strlen(json));
    ssm_tokenizer *t = NULL;
    ssm_status st = ssm_tokenizer_load(&t, p);
    ck_assert_msg(st == SSM_OK, "load %s: %s", name, ssm_status_string(st));
    return t;
}

static void expect_ids(const ssm_tokenizer *t, const char *text, size_t n,
                       const int32_t *want, int64_t nwant)
{
    int32_t got[256];
    int64_t ng = -1;
    ssm_status st = ssm_tokenizer_encode(t, text, (int64_t)n, got, 256, &ng);
    ck_assert_msg(st == SSM_OK, "encode \"%s\": %s", text, ssm_status_string(st));
    char gs[1024] = "", ws[1024] = "";
    for (int64_t i = 0; i < ng && i < 64; i++) snprintf(gs + strlen(gs), sizeof gs - strlen(gs), " %d", got[i]);
    for (int64_t i = 0; i < nwant; i++) snprintf(ws + strlen(ws), sizeof ws - strlen(ws), " %d", want[i]);
    ck_assert_msg(ng == nwant && !memcmp(got, want, (size_t)nwant * sizeof *want),
                  "encode \"%s\": got [%s ] want [%s ]", text, gs, ws);
}
#define EXPECT(t, text, ...) do { const int32_t w_[] = { __VA_ARGS__ }; \
    expect_ids(t, text, sizeof(text) - 1, w_, (int64_t)(sizeof w_ / sizeof w_[0])); } while (0)

static void expect_text(const ssm_tokenizer *t, const int32_t *ids, int64_t n,
                        const char *want, size_t wn)
{
    char buf[1024];
    int64_t nb = -1;
    ssm_status st = ssm_tokenizer_decode(t, ids, n, buf, sizeof buf, &nb);
    ck_assert_int_eq(st, SSM_OK);
    ck_assert_msg(nb == (int64_t)wn && !memcmp(buf, want, wn), "decode: got \"%.*s\" (%lld bytes) want \"%s\"",
                  (int)(nb > 0 && nb < 1024 ? nb : 0), buf, (long long)nb, want);
}
#define EXPECT_TEXT(t, want, ...) do { const int32_t i_[] = { __VA_ARGS__ }; \
    expect_text(t, i_, (int64_t)(sizeof i_ / sizeof i_[0]), want, sizeof(want) - 1); } while (0)

/* ---- encoding, worked by hand ---- */

static void toy_cases(const ssm_tokenizer *t)
{
    /* "hello": h e l l o -> (h,e) r0 -> he l l o -> (l,l) r1 -> he ll o ->
     * (ll,o) r4 -> he llo -> (he,llo) r5 -> hello.  " world": G w o r l d
     * -> r2 Gw, r3 or, r6 Gwor, r7 ld, r8 Gworld. */
    EXPECT(t, "hello world", 11, 15);
    /* \s+(?!\S) leaves the space before "world" to " world" */
    EXPECT(t, "hello  world", 11, 4, 15);
    /* newlines: "\n" twice (the lookahead keeps the second one alone),
     * then "world" without space: w o r l d -> w or ld */
    EXPECT(t, "hello\n\nworld", 11, 21, 21, 5, 13, 16);
    /* equal ranks: the leftmost pair first: l l l -> ll l */
    EXPECT(t, "lll", 9, 2);
    /* no merge (he, ll) */
    EXPECT(t, "hell", 8, 9);
    /* contraction pattern 's */
    EXPECT(t, "hello's", 11, 25);
    /* G h e l l o -> ... G hello -> r12 Ghello */
    EXPECT(t, "hello hello", 11, 26);
    /* digits: "12" -> 12; " 1212" -> G 1 2 1 2 -> G 12 12 */
    EXPECT(t, "12 1212", 29, 4, 29, 29);
    /* 'z' is not in the vocabulary and there is no unk: dropped, as HF */
    EXPECT(t, "hz!", 0, 20);
    /* added tokens first */
    EXPECT(t, "<|endoftext|>hello<|endoftext|>", 30, 11, 30);
    EXPECT(t, "<|endoftext|><|endoftext|>", 30, 30);
    /* two trailing spaces: one piece GG */
    EXPECT(t, "  ", 22);
    /* U+00E9 = C3 A9 -> Ã © -> r9 */
    EXPECT(t, "\xc3\xa9", 19);
    /* e + U+0301 without a normalizer: "e", then the mark (CC 81 -> two
     * characters outside the vocabulary: dropped) */
    EXPECT(t, "e\xcc\x81", 1);
}

START_TEST(toy_string_merges)
{
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, NULL, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_str.json");
    toy_cases(t);
    int64_t n = -1;
    ck_assert_int_eq(ssm_tokenizer_encode(t, NULL, 0, NULL, 0, &n), SSM_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ssm_tokenizer_vocab_size(t), 31);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, "<|endoftext|>"), 30);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, "\xc4\xa0world"), 15);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, "nope"), -1);
    ck_assert_str_eq(ssm_tokenizer_id_to_token(t, 11), "hello");
    ck_assert_ptr_null(ssm_tokenizer_id_to_token(t, 31));
    ck_assert_int_eq(ssm_tokenizer_is_special(t, 30), 1);
    ck_assert_int_eq(ssm_tokenizer_is_special(t, 11), 0);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

START_TEST(toy_pair_merges)
{
    char model[8192];
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"vocab\":%s,\"merges\":%s}", VOCAB, MERGES_PAIR);
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, NULL, NULL, model);
    ssm_tokenizer *t = load_json(j, "toy_pair.json");
    toy_cases(t);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* The Llama-3 layout: Split(GPT-2 regex, Isolated) then ByteLevel without
 * its regex gives the same pieces. */
START_TEST(toy_split_sequence)
{
    const char *pt =
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}";
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, pt, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_split.json");
    toy_cases(t);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* Split behaviors on "hello!!world" with the literal "!":
 * matches ! and !, gaps hello and world. */
START_TEST(toy_split_behaviors)
{
    struct { const char *beh; int invert; int32_t want[8]; int nw; } cases[] = {
        /* hello | ! | ! | world   (world: w or ld) */
        { "Isolated", 0, { 11, 20, 20, 5, 13, 16 }, 6 },
        { "Removed", 0, { 11, 5, 13, 16 }, 4 },
        /* hello! | ! | world: "hello!" -> hello ! (no merge) */
        { "MergedWithPrevious", 0, { 11, 20, 20, 5, 13, 16 }, 6 },
        /* hello | ! | !world */
        { "MergedWithNext", 0, { 11, 20, 20, 5, 13, 16 }, 6 },
        { "Contiguous", 0, { 11, 20, 20, 5, 13, 16 }, 6 },
        /* inverted Removed: the gaps are removed, the '!' kept */
        { "Removed", 1, { 20, 20 }, 2 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char pt[1024];
        snprintf(pt, sizeof pt,
                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"!\"},"
                 "\"behavior\":\"%s\",\"invert\":%s},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                 "\"use_regex\":false}]}", cases[c].beh, cases[c].invert ? "true" : "false");
        char *j = toy_json(NULL, NULL, pt, NULL, NULL);
        ssm_tokenizer *t = load_json(j, "toy_beh.json");
        expect_ids(t, "hello!!world", 12, cases[c].want, cases[c].nw);
        ssm_tokenizer_destroy(t);
        free(j);
    }
    /* a behavior that changes the pieces: MergedWithPrevious on "he" as
     * the delimiter in "hehello": he|he|llo -> matches he, he; gap llo ->
     * "he" | "he" + nothing... = he, hello? No: MergedWithPrevious merges a
     * match into the piece before it only when that piece is a non-match:
     * pieces he(m) he(m) llo(g) -> "he", "he", "llo" -> 8 8 10 */
    {
        const char *pt =
            "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"he\"},"
            "\"behavior\":\"MergedWithPrevious\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
            "\"use_regex\":false}]}";
        char *j = toy_json(NULL, NULL, pt, NULL, NULL);
        ssm_tokenizer *t = load_json(j, "toy_beh2.json");
        EXPECT(t, "hehello", 8, 8, 10);
        /* llo | he -> "llohe": l l o h e -> r0 he first? ranks: (h,e) r0,
         * (l,l) r1 -> ll o he -> (ll,o) r4 -> llo he -> 10 8 */
        EXPECT(t, "llohe", 10, 8);
        ssm_tokenizer_destroy(t);
        free(j);
    }
    /* MergedWithNext: "he" joins the gap after it: hellohe -> he|llo|he ->
     * "hello" + "he" -> 11 8 */
    {
        const char *pt =
            "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"he\"},"
            "\"behavior\":\"MergedWithNext\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
            "\"use_regex\":false}]}";
        char *j = toy_json(NULL, NULL, pt, NULL, NULL);
        ssm_tokenizer *t = load_json(j, "toy_beh3.json");
        EXPECT(t, "hellohe", 11, 8);
        ssm_tokenizer_destroy(t);
        free(j);
    }
}
END_TEST

/* add_prefix_space: each piece not starting with a space gets one. */
START_TEST(toy_prefix_space)
{
    const char *pt = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}";
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, pt, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_prefix.json");
    /* " hello" -> Ghello */
    EXPECT(t, "hello", 26);
    EXPECT(t, " hello", 26);
    /* the piece after an added token gets its own prefix */
    EXPECT(t, "hello<|endoftext|>hello", 26, 30, 26);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* NFC and the added-token options. */
START_TEST(toy_nfc_and_added_tokens)
{
    const char *added =
        "[{\"id\":30,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        /* written decomposed; matched (and decoded) as its NFC form "é!" */
        "{\"id\":31,\"content\":\"e\\u0301!\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":false},"
        "{\"id\":32,\"content\":\"<mask>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":33,\"content\":\"wor\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},"
        /* already in the vocabulary: keeps id 11 whatever the file says */
        "{\"id\":99,\"content\":\"hello\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},"
        "{\"id\":34,\"content\":\"<|end\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]";
    char *j = toy_json(added, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]}", NULL, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_nfc.json");
    /* NFC: e + U+0301 -> U+00E9 -> Ã© */
    EXPECT(t, "e\xcc\x81", 19);
    /* the normalized added token, composed or not in the text */
    EXPECT(t, "e\xcc\x81!", 31);
    EXPECT(t, "\xc3\xa9!", 31);
    /* lstrip: the space before <mask> belongs to it */
    EXPECT(t, "hello <mask>", 11, 32);
    /* single_word: "wor" alone matches, inside "world" it does not */
    EXPECT(t, "hello wor", 11, 4, 33);
    EXPECT(t, "world", 5, 13, 16);
    /* "hello" is an added token now: " " then hello, not Ghello */
    EXPECT(t, " hello", 4, 11);
    /* longest first: <|endoftext|> over <|end */
    EXPECT(t, "<|endoftext|><mask>", 30, 32);
    EXPECT(t, "<|end<|endoftext|>", 34, 30);
    /* only added tokens, and empty text */
    EXPECT(t, "hello<|endoftext|>hello", 11, 30, 11);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, "hello"), 11);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, "<|end"), 34);
    ck_assert_int_eq(ssm_tokenizer_vocab_size(t), 35);
    /* decode of a normalized added token goes through the ByteLevel
     * decoder: 'é' is the byte E9 there, followed by '!': not UTF-8 ->
     * U+FFFD then '!' (what HF's decode returns) */
    EXPECT_TEXT(t, "\xef\xbf\xbd!", 31);
    EXPECT_TEXT(t, "<mask>hello", 32, 11);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* ---- decoding ---- */

START_TEST(toy_decode_and_stream)
{
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, NULL, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_dec.json");
    EXPECT_TEXT(t, "hello world", 11, 15);
    EXPECT_TEXT(t, "<|endoftext|>hello", 30, 11);
    EXPECT_TEXT(t, "\xc3\xa9", 17, 18);                    /* C3 A9 */
    EXPECT_TEXT(t, "\xef\xbf\xbd", 17);                    /* C3 at the end */
    EXPECT_TEXT(t, "\xef\xbf\xbdh", 17, 0);                /* C3 then 'h' */
    EXPECT_TEXT(t, "\xef\xbf\xbd\xef\xbf\xbd", 18, 17);    /* A9 alone, C3 at the end */
    EXPECT_TEXT(t, "\n\n  ", 21, 21, 22);
    int64_t nb = -1;
    ck_assert_int_eq(ssm_tokenizer_decode(t, NULL, 0, NULL, 0, &nb), SSM_OK);
    ck_assert_int_eq(nb, 0);

    /* streaming: only complete characters come out */
    ssm_tokenizer_stream st;
    char buf[64];
    ssm_tokenizer_stream_init(&st);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 11, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 17, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 0);                                /* C3: waits */
    /* too small a buffer: nothing consumed, the size reported */
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 18, buf, 1, &nb), SSM_OK);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 18, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(memcmp(buf, "\xc3\xa9", 2), 0);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 17, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 0);
    ck_assert_int_eq(ssm_tokenizer_stream_flush(t, &st, buf, 2, &nb), SSM_OK);
    ck_assert_int_eq(nb, 3);                                /* U+FFFD needs 3: retry */
    ck_assert_int_eq(ssm_tokenizer_stream_flush(t, &st, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 3);
    ck_assert_int_eq(memcmp(buf, "\xef\xbf\xbd", 3), 0);
    ck_assert_int_eq(ssm_tokenizer_stream_flush(t, &st, buf, sizeof buf, &nb), SSM_OK);
    ck_assert_int_eq(nb, 0);
    ck_assert_int_ge(ssm_tokenizer_stream_bound(t), 3 * 13 + 3);   /* "<|endoftext|>" */
    ssm_tokenizer_destroy(t);
    free(j);

    /* no decoder: tokens joined by spaces, spelled as stored */
    j = toy_json(NULL, NULL, NULL, "null", NULL);
    t = load_json(j, "toy_nodec.json");
    EXPECT_TEXT(t, "hello \xc4\xa0world", 11, 15);
    ssm_tokenizer_stream_init(&st);
    char all[64]; int64_t na = 0;
    const int32_t ids[] = { 11, 15, 17 };
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, ids[i], all + na, (int64_t)sizeof all - na, &nb), SSM_OK);
        na += nb;
    }
    ck_assert_int_eq(ssm_tokenizer_stream_flush(t, &st, all + na, (int64_t)sizeof all - na, &nb), SSM_OK);
    na += nb;
    ck_assert_int_eq(na, (int64_t)strlen("hello \xc4\xa0world \xc3\x83"));
    ck_assert_int_eq(memcmp(all, "hello \xc4\xa0world \xc3\x83", (size_t)na), 0);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* ---- bad input ---- */

START_TEST(bad_files)
{
    ssm_tokenizer *t = (ssm_tokenizer *)1;
    ck_assert_int_eq(ssm_tokenizer_load(&t, tmp_path("does_not_exist.json")), SSM_ERR_IO);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(ssm_tokenizer_load(&t, g_dir), SSM_ERR_IO);      /* a directory */
    ck_assert_int_eq(ssm_tokenizer_load(NULL, tmp_path("x")), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_load(&t, NULL), SSM_ERR_ARG);
    ssm_tokenizer_destroy(NULL);

    char model_unk[8192], model_res[8192], model_wp[512], model_uni[512], model_drop[8192],
         model_pfx[8192], model_dupk[512], model_dupid[512], model_badid[512], model_sp3[512],
         model_nomerges[512], model_farid[512];
    snprintf(model_unk, sizeof model_unk, "{\"type\":\"BPE\",\"vocab\":%s,\"merges\":[\"h e\",\"q u\"]}", VOCAB);
    /* both sides known, the result "hl" is not */
    snprintf(model_res, sizeof model_res, "{\"type\":\"BPE\",\"vocab\":%s,\"merges\":[\"h l\"]}", VOCAB);
    snprintf(model_wp, sizeof model_wp, "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,\"a\":1}}");
    snprintf(model_uni, sizeof model_uni, "{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0]]}");
    snprintf(model_drop, sizeof model_drop, "{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":%s,\"merges\":%s}", VOCAB, MERGES_STR);
    snprintf(model_pfx, sizeof model_pfx, "{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\",\"vocab\":%s,\"merges\":%s}", VOCAB, MERGES_STR);
    snprintf(model_dupk, sizeof model_dupk, "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}");
    snprintf(model_dupid, sizeof model_dupid, "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}");
    snprintf(model_badid, sizeof model_badid, "{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}");
    snprintf(model_sp3, sizeof model_sp3, "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"aa\":1},\"merges\":[\"a a a\"]}");
    snprintf(model_nomerges, sizeof model_nomerges, "{\"type\":\"BPE\",\"vocab\":{\"a\":0}}");
    /* 2 entries: ids up to 2 * 2 + 65535 are taken, this one would ask for
     * ~25 GB of tables (the input fuzz_tokenizer_load found) */
    snprintf(model_farid, sizeof model_farid, "{\"type\":\"BPE\",\"vocab\":{\"a\":922222222,\"b\":1},\"merges\":[]}");
    struct { const char *what; char *json; ssm_status want; } cases[] = {
        { "not JSON", NULL, SSM_ERR_FORMAT },
        { "truncated", NULL, SSM_ERR_FORMAT },
        { "empty file", NULL, SSM_ERR_FORMAT },
        { "invalid UTF-8 in the file", NULL, SSM_ERR_FORMAT },
        { "JSON array", NULL, SSM_ERR_FORMAT },
        { "merge naming an unknown token", toy_json(NULL, NULL, NULL, NULL, model_unk), SSM_ERR_FORMAT },
        { "merge result not in vocab", toy_json(NULL, NULL, NULL, NULL, model_res), SSM_ERR_FORMAT },
        { "WordPiece", toy_json(NULL, NULL, NULL, NULL, model_wp), SSM_ERR_FORMAT },
        { "Unigram", toy_json(NULL, NULL, NULL, NULL, model_uni), SSM_ERR_FORMAT },
        { "dropout", toy_json(NULL, NULL, NULL, NULL, model_drop), SSM_ERR_FORMAT },
        { "subword prefix", toy_json(NULL, NULL, NULL, NULL, model_pfx), SSM_ERR_FORMAT },
        { "duplicate vocab key", toy_json(NULL, NULL, NULL, NULL, model_dupk), SSM_ERR_FORMAT },
        { "two tokens one id", toy_json(NULL, NULL, NULL, NULL, model_dupid), SSM_ERR_FORMAT },
        { "fractional id", toy_json(NULL, NULL, NULL, NULL, model_badid), SSM_ERR_FORMAT },
        { "vocab id far past the vocabulary", toy_json(NULL, NULL, NULL, NULL, model_farid), SSM_ERR_FORMAT },
        { "merge with two spaces", toy_json(NULL, NULL, NULL, NULL, model_sp3), SSM_ERR_FORMAT },
        { "merge with an empty side", toy_json(NULL, NULL, NULL, NULL, "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\":1},\"merges\":[[\"a\",\"\"]]}"), SSM_ERR_FORMAT },
        { "no merges", toy_json(NULL, NULL, NULL, NULL, model_nomerges), SSM_ERR_FORMAT },
        { "Lowercase normalizer", toy_json(NULL, "{\"type\":\"Lowercase\"}", NULL, NULL, NULL), SSM_ERR_FORMAT },
        { "Whitespace pre-tokenizer", toy_json(NULL, NULL, "{\"type\":\"Whitespace\"}", NULL, NULL), SSM_ERR_FORMAT },
        { "Metaspace pre-tokenizer", toy_json(NULL, NULL, "{\"type\":\"Metaspace\",\"replacement\":\"_\"}", NULL, NULL), SSM_ERR_FORMAT },
        { "bad regex", toy_json(NULL, NULL, "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\",\"invert\":false}", NULL, NULL), SSM_ERR_FORMAT },
        { "unknown behavior", toy_json(NULL, NULL, "{\"type\":\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"Sideways\",\"invert\":false}", NULL, NULL), SSM_ERR_FORMAT },
        { "WordPiece decoder", toy_json(NULL, NULL, NULL, "{\"type\":\"WordPiece\",\"prefix\":\"##\"}", NULL), SSM_ERR_FORMAT },
        { "added token without content", toy_json("[{\"id\":30}]", NULL, NULL, NULL, NULL), SSM_ERR_FORMAT },
        { "added tokens not an array", toy_json("{}", NULL, NULL, NULL, NULL), SSM_ERR_FORMAT },
        { "token with U+0000", toy_json("[{\"content\":\"a\\u0000b\"}]", NULL, NULL, NULL, NULL), SSM_ERR_FORMAT },
        { "version 2.0", NULL, SSM_ERR_FORMAT },
        { "model missing", NULL, SSM_ERR_FORMAT },
    };
    const size_t nc = sizeof cases / sizeof cases[0];
    char *good = toy_json(NULL, NULL, NULL, NULL, NULL);
    cases[0].json = strdup("hello, not json");
    cases[1].json = strdup(good); cases[1].json[strlen(good) / 2] = 0;
    cases[2].json = strdup("");
    cases[3].json = strdup(good); { char *p = strstr(cases[3].json, "\"h\":0"); p[1] = (char)0xC0; }
    cases[4].json = strdup("[1,2,3]");
    cases[nc - 2].json = strdup(good); memcpy(strstr(cases[nc - 2].json, "\"1.0\""), "\"2.0\"", 5);
    cases[nc - 1].json = strdup("{\"version\":\"1.0\",\"added_tokens\":[]}");
    for (size_t c = 0; c < nc; c++) {
        const char *p = tmp_path("bad.json");
        write_file(p, cases[c].json, strlen(cases[c].json));
        t = (ssm_tokenizer *)1;
        ssm_status st = ssm_tokenizer_load(&t, p);
        ck_assert_msg(st == cases[c].want, "%s: got %s, want %s", cases[c].what,
                      ssm_status_string(st), ssm_status_string(cases[c].want));
        ck_assert_ptr_null(t);
        free(cases[c].json);
    }
    free(good);
}
END_TEST

START_TEST(bad_calls)
{
    char added[512];
    snprintf(added, sizeof added, "[%s]", EOT);
    char *j = toy_json(added, NULL, NULL, NULL, NULL);
    ssm_tokenizer *t = load_json(j, "toy_bad.json");
    int32_t ids[8];
    int64_t n = 0;
    /* arguments */
    ck_assert_int_eq(ssm_tokenizer_encode(NULL, "a", 1, ids, 8, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_encode(t, "a", 1, ids, 8, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_encode(t, NULL, 1, ids, 8, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_encode(t, "a", -1, ids, 8, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_encode(t, "a", 1, ids, -1, &n), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_encode(t, "a", 1, NULL, 8, &n), SSM_ERR_ARG);
    /* invalid UTF-8 */
    const char *bad[] = { "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf5\x80\x80\x80", "\x80",
                          "ok\xff", "\xf4\x90\x80\x80", "\xe0\x9f\xbf", "hello\xc3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ssm_tokenizer_encode(t, bad[i], (int64_t)strlen(bad[i]), ids, 8, &n) == SSM_ERR_FORMAT,
                      "invalid UTF-8 case %zu accepted", i);
    /* small cap: exactly cap ids written, full count reported */
    int32_t small[8] = { -7, -7, -7, -7, -7, -7, -7, -7 };
    ck_assert_int_eq(ssm_tokenizer_encode(t, "hello\n\nworld", 12, small, 3, &n), SSM_OK);
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(small[0], 11); ck_assert_int_eq(small[1], 21); ck_assert_int_eq(small[2], 21);
    ck_assert_int_eq(small[3], -7);
    ck_assert_int_eq(ssm_tokenizer_encode(t, "hello\n\nworld", 12, NULL, 0, &n), SSM_OK);
    ck_assert_int_eq(n, 6);
    /* decode: ids out of range, arguments, small cap */
    char buf[16];
    int64_t nb;
    const int32_t out_of_range[] = { -1, 31, 1 << 30, INT32_MAX, INT32_MIN };
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        int32_t two[2] = { 11, out_of_range[i] };
        ck_assert_int_eq(ssm_tokenizer_decode(t, two, 2, buf, sizeof buf, &nb), SSM_ERR_ARG);
        ssm_tokenizer_stream st;
        ssm_tokenizer_stream_init(&st);
        ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, out_of_range[i], buf, sizeof buf, &nb), SSM_ERR_ARG);
    }
    const int32_t hw[] = { 11, 15 };
    ck_assert_int_eq(ssm_tokenizer_decode(NULL, hw, 2, buf, sizeof buf, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_decode(t, NULL, 2, buf, sizeof buf, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, -1, buf, sizeof buf, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, 2, NULL, 4, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, 2, buf, -1, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, 2, buf, sizeof buf, NULL), SSM_ERR_ARG);
    memset(buf, '#', sizeof buf);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, 2, buf, 4, &nb), SSM_OK);
    ck_assert_int_eq(nb, 11);
    ck_assert_int_eq(memcmp(buf, "hell#", 5), 0);
    ck_assert_int_eq(ssm_tokenizer_decode(t, hw, 2, NULL, 0, &nb), SSM_OK);
    ck_assert_int_eq(nb, 11);
    /* stream arguments */
    ssm_tokenizer_stream st;
    ssm_tokenizer_stream_init(&st);
    ssm_tokenizer_stream_init(NULL);
    ck_assert_int_eq(ssm_tokenizer_stream_push(NULL, &st, 11, buf, sizeof buf, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, NULL, 11, buf, sizeof buf, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 11, NULL, 4, &nb), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 11, buf, sizeof buf, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tokenizer_stream_flush(t, NULL, buf, sizeof buf, &nb), SSM_ERR_ARG);
    st.npending = 9;                                       /* a corrupted state */
    ck_assert_int_eq(ssm_tokenizer_stream_push(t, &st, 11, buf, sizeof buf, &nb), SSM_ERR_ARG);
    /* queries on NULL / out of range */
    ck_assert_int_eq(ssm_tokenizer_vocab_size(NULL), 0);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(NULL, "a"), -1);
    ck_assert_int_eq(ssm_tokenizer_token_to_id(t, NULL), -1);
    ck_assert_ptr_null(ssm_tokenizer_id_to_token(t, -1));
    ck_assert_ptr_null(ssm_tokenizer_id_to_token(NULL, 0));
    ck_assert_int_eq(ssm_tokenizer_is_special(t, 1 << 30), 0);
    ck_assert_int_eq(ssm_tokenizer_stream_bound(NULL), 0);
    ssm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* unk_token, fuse_unk, byte_fallback (model.rs merge_word). */
START_TEST(toy_unk_and_byte_fallback)
{
    const char *vocab =
        "{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"<0x7A>\":4,\"<0xC3>\":5,\"<0xA9>\":6}";
    char model[1024];
    /* no pre-tokenizer, no decoder: the text goes to BPE as it is */
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":false,"
             "\"byte_fallback\":false,\"vocab\":%s,\"merges\":[\"a b\"]}", vocab);
    char *j = toy_json(NULL, NULL, "null", "null", model);
    ssm_tokenizer *t = load_json(j, "toy_unk.json");
    EXPECT(t, "abxyab", 3, 0, 0, 3);
    ssm_tokenizer_destroy(t); free(j);

    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
             "\"vocab\":%s,\"merges\":[\"a b\"]}", vocab);
    j = toy_json(NULL, NULL, "null", "null", model);
    t = load_json(j, "toy_fuse.json");
    EXPECT(t, "abxyab", 3, 0, 3);
    ssm_tokenizer_destroy(t); free(j);

    /* byte fallback: z -> <0x7A>; é -> <0xC3> <0xA9>; x has no byte token: unk */
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,"
             "\"vocab\":%s,\"merges\":[\"a b\"]}", vocab);
    j = toy_json(NULL, NULL, "null", "null", model);
    t = load_json(j, "toy_bf.json");
    EXPECT(t, "az\xc3\xa9x", 1, 4, 5, 6, 0);
    ssm_tokenizer_destroy(t); free(j);

    /* an unk_token missing from the vocabulary fails when it is needed */
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"unk_token\":\"<nope>\",\"vocab\":%s,\"merges\":[]}", vocab);
    j = toy_json(NULL, NULL, "null", "null", model);
    t = load_json(j, "toy_unk2.json");
    EXPECT(t, "ab", 1, 2);
    int32_t ids[4]; int64_t n;
    ck_assert_int_eq(ssm_tokenizer_encode(t, "aq", 2, ids, 4, &n), SSM_ERR_FORMAT);
    ssm_tokenizer_destroy(t); free(j);

    /* ignore_merges: a word in the vocabulary is taken whole */
    const char *v2 = "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5}";
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"ignore_merges\":false,\"vocab\":%s,\"merges\":[\"b c\",\"a b\"]}", v2);
    j = toy_json(NULL, NULL, "null", "null", model);
    t = load_json(j, "toy_im0.json");
    EXPECT(t, "abc", 0, 4);                          /* b+c first (rank 0), no a+bc */
    ssm_tokenizer_destroy(t); free(j);
    snprintf(model, sizeof model, "{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":%s,\"merges\":[\"b c\",\"a b\"]}", v2);
    j = toy_json(NULL, NULL, "null", "null", model);
    t = load_json(j, "toy_im1.json");
    EXPECT(t, "abc", 5);
    ssm_tokenizer_destroy(t); free(j);
    /* ... also when the word comes again (from the call's word cache) */
    const char *sp = "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Removed\",\"invert\":false}";
    j = toy_json(NULL, NULL, sp, "null", model);
    t = load_json(j, "toy_im2.json");
    EXPECT(t, "abc abc ab abc", 5, 5, 3, 5);
    ssm_tokenizer_destroy(t); free(j);
}
END_TEST

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ssm_test_tokenizer_%ld", base ? base : "/tmp", (long)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("toy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, toy_string_merges);
    tcase_add_test(tc, toy_pair_merges);
    tcase_add_test(tc, toy_split_sequence);
    tcase_add_test(tc, toy_split_behaviors);
    tcase_add_test(tc, toy_prefix_space);
    tcase_add_test(tc, toy_nfc_and_added_tokens);
    tcase_add_test(tc, toy_decode_and_stream);
    tcase_add_test(tc, toy_unk_and_byte_fallback);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, bad_calls);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
