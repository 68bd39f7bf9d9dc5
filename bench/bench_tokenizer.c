/*
 * bench_tokenizer.c -- `ssm_bench tokenizer [TOKENIZER.json [TEXT]]`: the
 * byte-level BPE tokenizer on a large real text, one thread (encode and
 * decode are sequential by design; callers parallelize over documents).
 *
 * Default tokenizer: GPT-2's vocabulary in tests/fixtures/tokenizer
 * (gpt2.json); default text: every /usr/share/common-licenses/ * and
 * /usr/share/doc/ * /copyright file concatenated (valid UTF-8 lines only).
 * Reported, as medians of repeats (SSM_BENCH_REPEATS): encode MB/s and
 * tokens/s on the whole text in one call, then in 64 KiB and 4 KiB calls
 * (the word cache lives for one call: prompt-sized calls run colder),
 * decode and streaming decode MB/s, and the ratios between them.
 */
#define _POSIX_C_SOURCE 200809L
#include <glob.h>
#include <ssm.h>
#include "bench_util.h"

typedef struct tk_ctx {
    const ssm_tokenizer *t;
    const char *text; size_t n, chunk;
    int32_t *ids; int64_t nids;
    char *out;
} tk_ctx;

static void run_encode(void *p)
{
    tk_ctx *c = p;
    int64_t total = 0;
    for (size_t a = 0; a < c->n;) {
        size_t b = c->chunk && a + c->chunk < c->n ? a + c->chunk : c->n;
        /* cut at a line end (a character boundary) */
        while (b < c->n && c->text[b - 1] != '\n') b++;
        int64_t k = 0;
        ssm_tokenizer_encode(c->t, c->text + a, (int64_t)(b - a), c->ids + total, c->nids + 1 - total, &k);
        total += k;
        a = b;
    }
}

static void run_decode(void *p)
{
    tk_ctx *c = p;
    int64_t nb;
    ssm_tokenizer_decode(c->t, c->ids, c->nids, c->out, (int64_t)c->n + 16, &nb);
}

static void run_stream(void *p)
{
    tk_ctx *c = p;
    ssm_tokenizer_stream st;
    ssm_tokenizer_stream_init(&st);
    int64_t at = 0, k;
    for (int64_t i = 0; i < c->nids; i++) {
        ssm_tokenizer_stream_push(c->t, &st, c->ids[i], c->out + at, (int64_t)c->n + 16 - at, &k);
        at += k;
    }
    ssm_tokenizer_stream_flush(c->t, &st, c->out + at, (int64_t)c->n + 16 - at, &k);
}

/* Median wall and thread-CPU seconds of fn: on a shared machine the CPU
 * time is the figure that does not depend on the other processes. */
static void time_both(void (*fn)(void *), void *ctx, int reps, double *wall, double *cpu)
{
    double w[64], c[64];
    if (reps > 64) reps = 64;
    fn(ctx);
    for (int i = 0; i < reps; i++) {
        struct timespec a, b;
        double t0 = bu_now();
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        fn(ctx);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        w[i] = bu_now() - t0;
        c[i] = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    }
    *wall = bu_median(w, reps);
    *cpu = bu_median(c, reps);
}

static int utf8_line_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!len || i + len > n) return 0;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi)) return 0;
        for (size_t k = 2; k < len; k++) if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

/* Append file path's valid UTF-8 lines to *buf. */
static void add_file(const char *path, char **buf, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        if (!utf8_line_ok((const unsigned char *)line, l)) continue;
        if (*n + l + 1 > *cap) {
            *cap = (*cap ? *cap * 2 : 1 << 20) + l;
            char *q = realloc(*buf, *cap);
            if (!q) { fclose(f); return; }
            *buf = q;
        }
        memcpy(*buf + *n, line, l);
        *n += l;
    }
    fclose(f);
}

int bench_tokenizer(int argc, char **argv)
{
    char dflt[1024];
    snprintf(dflt, sizeof dflt, "%s", __FILE__);
    char *slash = strrchr(dflt, '/');
    if (slash) *slash = 0; else snprintf(dflt, sizeof dflt, ".");
    strncat(dflt, "/../tests/fixtures/tokenizer/gpt2.json", sizeof dflt - strlen(dflt) - 1);
    const char *tpath = argc > 1 ? argv[1] : dflt;
    ssm_tokenizer *t;
    ssm_status st = ssm_tokenizer_load(&t, tpath);
    if (st != SSM_OK) { fprintf(stderr, "tokenizer %s: %s\n", tpath, ssm_status_string(st)); return 1; }
    char *text = NULL; size_t n = 0, cap = 0;
    int nfiles = 0;
    if (argc > 2) { add_file(argv[2], &text, &n, &cap); nfiles = 1; }
    else {
        const char *pats[2] = { "/usr/share/common-licenses/*", "/usr/share/doc/*/copyright" };
        for (int p = 0; p < 2; p++) {
            glob_t g;
            if (glob(pats[p], 0, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++) { add_file(g.gl_pathv[i], &text, &n, &cap); nfiles++; }
                globfree(&g);
            }
        }
    }
    if (!n) { fprintf(stderr, "no text\n"); ssm_tokenizer_destroy(t); return 1; }
    bu_set_threads(1);
    int reps = bu_repeats(5);
    tk_ctx c = { t, text, n, 0, NULL, 0, NULL };
    ssm_tokenizer_encode(t, text, (int64_t)n, NULL, 0, &c.nids);
    c.ids = malloc((size_t)(c.nids + 1) * sizeof *c.ids);
    c.out = malloc(n + 16);
    if (!c.ids || !c.out) { fprintf(stderr, "out of memory\n"); return 1; }
    /* validate first: the round trip is exact */
    run_encode(&c);
    run_decode(&c);
    int rt = !memcmp(c.out, text, n);
    printf("\n== tokenizer: %s, vocabulary %lld ids ==\n", tpath, (long long)ssm_tokenizer_vocab_size(t));
    printf("text: %zu files, %.1f MB, %lld tokens (%.2f bytes/token), round trip %s; 1 thread, median of %d\n",
           (size_t)nfiles, (double)n / 1e6, (long long)c.nids, (double)n / (double)c.nids,
           rt ? "exact" : "FAILED", reps);
    double mb = (double)n / 1e6;
    struct { const char *name; void (*fn)(void *); size_t chunk; double w, c; } ops[] = {
        { "encode, one call", run_encode, 0, 0, 0 },
        { "encode, 64 KiB calls", run_encode, 65536, 0, 0 },
        { "encode, 4 KiB calls", run_encode, 4096, 0, 0 },
        { "decode, one call", run_decode, 0, 0, 0 },
        { "stream decode, per token", run_stream, 0, 0, 0 },
    };
    const int nops = (int)(sizeof ops / sizeof ops[0]);
    for (int i = 0; i < nops; i++) {
        c.chunk = ops[i].chunk;
        if (ops[i].fn != run_encode) { c.chunk = 0; run_encode(&c); }
        time_both(ops[i].fn, &c, reps, &ops[i].w, &ops[i].c);
    }
    printf("%-28s %10s %10s %14s %8s\n", "operation", "MB/s wall", "MB/s CPU", "Mtokens/s CPU", "ratio");
    for (int i = 0; i < nops; i++)
        printf("%-28s %10.1f %10.1f %14.2f %8.2f\n", ops[i].name, mb / ops[i].w, mb / ops[i].c,
               (double)c.nids / ops[i].c / 1e6, ops[0].c / ops[i].c);
    printf("(CPU: this thread's CPU time, unaffected by other processes on a shared machine;\n"
           " ratio: CPU speed relative to encode in one call)\n");
    free(c.ids); free(c.out); free(text);
    ssm_tokenizer_destroy(t);
    return rt ? 0 : 1;
}
