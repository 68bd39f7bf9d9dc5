/*
 * ssm_generate -- run a Mamba language model from a checkpoint directory as
 * published (state-spaces/mamba-130m, mamba-130m-hf, ...): generate text
 * or token ids, or measure perplexity.  No Python, no conversion.
 *
 *   ssm_generate -m DIR [-t tokenizer.json] (-p TEXT | --ids "1 2 3") [-n N]
 *                [--temp T] [--top-k K] [--top-p P] [--min-p P]
 *                [--repeat-penalty R] [--seed S] [--print-ids]
 *                [--state-save F] [--state-load F]
 *   ssm_generate -m DIR [-t tokenizer.json] --perplexity FILE
 *
 * Tokens are printed as they are produced; prefill and decode speeds go to
 * stderr at the end.  Exit status: 0 success, 1 a library error (bad
 * checkpoint, file missing, ...), 2 bad options.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <ssm.h>

static const char usage[] =
"usage: ssm_generate -m DIR [-t tokenizer.json] (-p TEXT | --ids \"1 2 3\") [-n N]\n"
"                    [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
"                    [--repeat-penalty R] [--seed S] [--print-ids]\n"
"                    [--state-save F] [--state-load F]\n"
"       ssm_generate -m DIR [-t tokenizer.json] --perplexity FILE\n"
"\n"
"  -m DIR              checkpoint directory: config.json and model.safetensors,\n"
"                      model.safetensors.index.json + shards, or pytorch_model.bin\n"
"                      (mamba_ssm or Hugging Face names; F32, F16, BF16)\n"
"  -t FILE             Hugging Face tokenizer.json (default: DIR/tokenizer.json if\n"
"                      present); needed for -p and for text output\n"
"  -p TEXT             prompt text\n"
"  --ids \"1 2 3\"       prompt as token ids (works without a tokenizer)\n"
"  -n N                tokens to generate (default 64; 0: prompt only)\n"
"  --temp T            temperature (default 1; 0: greedy)\n"
"  --top-k K           keep the K most likely tokens (1: greedy)\n"
"  --top-p P           nucleus sampling: smallest set of probability > P\n"
"  --min-p P           drop tokens below P times the top probability\n"
"  --repeat-penalty R  divide positive (multiply negative) logits of seen ids by R\n"
"                      Without --temp/--top-p/--min-p/--top-k decoding is greedy;\n"
"                      with any of them, top-k defaults to 0 (off).\n"
"  --seed S            sampling seed (default 1)\n"
"  --print-ids         print token ids instead of text\n"
"  --state-save F      save the state after the prompt to F (prompt caching)\n"
"  --state-load F      start from the state in F; the prompt continues it\n"
"  --perplexity FILE   perplexity of FILE (text through the tokenizer, or\n"
"                      whitespace-separated ids without one)\n"
"  -h, --help          this text\n"
"Exit status: 0 ok, 1 library or file error, 2 bad options.\n";

static int bad_option(const char *fmt, const char *arg)
{
    fprintf(stderr, "ssm_generate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return 2;
}

static int lib_error(const char *what, const char *arg, ssm_status st)
{
    fprintf(stderr, "ssm_generate: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "",
            ssm_status_string(st));
    return 1;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (*s == '-') return 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end) return 0;
    *v = x;
    return 1;
}

static int parse_dbl(const char *s, double lo, double hi, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(x) || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

/* Whitespace-separated ids; *n set; 0 on a malformed entry. */
static int parse_ids(const char *s, int32_t **ids, int64_t *n)
{
    int64_t cap = 16, k = 0;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' && *end != ',')) {
            free(v);
            return 0;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) { free(v); return 0; }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *ids = v;
    *n = k;
    return 1;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    if (b && ferror(f)) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[len] = 0; *n = len; }
    return b;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Text to ids through the tokenizer. */
static ssm_status encode(const ssm_tokenizer *tok, const char *text, size_t nb,
                         int32_t **ids, int64_t *n)
{
    int64_t cnt = 0;
    ssm_status st = ssm_tokenizer_encode(tok, text, (int64_t)nb, NULL, 0, &cnt);
    if (st != SSM_OK) return st;
    *ids = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof **ids);
    if (!*ids) return SSM_ERR_NOMEM;
    st = ssm_tokenizer_encode(tok, text, (int64_t)nb, *ids, cnt, n);
    return st;
}

/* Mean negative log-likelihood of ids[1..n) given the prefixes. */
static int perplexity(const ssm_model *model, const int32_t *ids, int64_t n, int64_t V)
{
    if (n < 2) {
        fprintf(stderr, "ssm_generate: --perplexity needs at least 2 tokens\n");
        return 1;
    }
    enum { CH = 512 };
    ssm_model_state *st;
    ssm_status s = ssm_model_state_create(&st, model, 1);
    if (s != SSM_OK) return lib_error("state", NULL, s);
    float *lg = malloc((size_t)CH * (size_t)V * sizeof *lg);
    if (!lg) { ssm_model_state_destroy(st); return lib_error("memory", NULL, SSM_ERR_NOMEM); }
    double nll = 0;
    double t0 = now();
    /* tokens 0..n-2 predict 1..n-1 */
    for (int64_t a = 0; a < n - 1; a += CH) {
        int64_t L = n - 1 - a < CH ? n - 1 - a : CH;
        s = ssm_model_forward_all(model, st, 1, L, ids + a, lg);
        if (s != SSM_OK) break;
        for (int64_t t = 0; t < L; t++) {
            const float *row = lg + t * V;
            double mx = row[0], z = 0;
            for (int64_t v = 1; v < V; v++) if (row[v] > mx) mx = row[v];
            for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
            nll -= (double)row[ids[a + t + 1]] - mx - log(z);
        }
    }
    double dt = now() - t0;
    free(lg);
    ssm_model_state_destroy(st);
    if (s != SSM_OK) return lib_error("forward", NULL, s);
    printf("perplexity %.4f over %lld tokens (mean NLL %.6f nats)\n",
           exp(nll / (double)(n - 1)), (long long)(n - 1), nll / (double)(n - 1));
    fprintf(stderr, "ssm_generate: scored %lld tokens in %.3f s (%.1f tokens/s)\n",
            (long long)(n - 1), dt, (double)(n - 1) / dt);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *tok_path = NULL, *prompt = NULL, *ids_arg = NULL,
               *save_path = NULL, *load_path = NULL, *ppl_path = NULL;
    int64_t n_gen = 64, top_k = -1;
    double temp = 1.0, top_p = 0.0, min_p = 0.0, rep = 1.0;
    int sampling = 0, print_ids = 0;
    uint64_t seed = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--print-ids")) { print_ids = 1; continue; }
        static const char *const with_arg[] = {
            "-m", "-t", "-p", "--ids", "-n", "--temp", "--top-k", "--top-p", "--min-p",
            "--repeat-penalty", "--seed", "--state-save", "--state-load", "--perplexity"
        };
        int known = 0;
        for (size_t k = 0; k < sizeof with_arg / sizeof with_arg[0]; k++)
            if (!strcmp(a, with_arg[k])) known = 1;
        if (!known) return bad_option("unknown option %s", a);
        if (i + 1 >= argc) return bad_option("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m")) dir = v;
        else if (!strcmp(a, "-t")) tok_path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "--ids")) ids_arg = v;
        else if (!strcmp(a, "--state-save")) save_path = v;
        else if (!strcmp(a, "--state-load")) load_path = v;
        else if (!strcmp(a, "--perplexity")) ppl_path = v;
        else if (!strcmp(a, "-n")) {
            if (!parse_i64(v, 0, INT32_MAX, &n_gen)) return bad_option("-n wants an integer >= 0, not '%s'", v);
        } else if (!strcmp(a, "--top-k")) {
            if (!parse_i64(v, 0, INT32_MAX, &top_k)) return bad_option("--top-k wants an integer >= 0, not '%s'", v);
            sampling = 1;
        } else if (!strcmp(a, "--temp")) {
            if (!parse_dbl(v, 0.0, 1e6, &temp)) return bad_option("--temp wants a number >= 0, not '%s'", v);
            sampling = 1;
        } else if (!strcmp(a, "--top-p")) {
            if (!parse_dbl(v, 0.0, 1.0, &top_p)) return bad_option("--top-p wants a number in [0, 1], not '%s'", v);
            sampling = 1;
        } else if (!strcmp(a, "--min-p")) {
            if (!parse_dbl(v, 0.0, 1.0, &min_p)) return bad_option("--min-p wants a number in [0, 1], not '%s'", v);
            sampling = 1;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!parse_dbl(v, 1e-6, 1e6, &rep)) return bad_option("--repeat-penalty wants a number > 0, not '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, &seed)) return bad_option("--seed wants an integer >= 0, not '%s'", v);
        }
    }
    if (!dir) return bad_option("%s", "-m DIR is required");
    if (ppl_path && (prompt || ids_arg || load_path || save_path))
        return bad_option("%s", "--perplexity goes with -m and -t only");
    if (!ppl_path && !!prompt == !!ids_arg)
        return bad_option("%s", "give exactly one of -p TEXT and --ids \"1 2 3\"");

    /* Parse --ids before loading anything: a bad list is a bad option. */
    int32_t *prompt_ids = NULL;
    int64_t n_prompt = 0;
    if (ids_arg && !parse_ids(ids_arg, &prompt_ids, &n_prompt))
        return bad_option("--ids wants whitespace-separated ids >= 0, not '%s'", ids_arg);

    int rc = 0;
    ssm_model *model = NULL;
    ssm_tokenizer *tok = NULL;
    ssm_model_state *state = NULL;
    ssm_sampler *sampler = NULL;
    float *logits = NULL;
    int32_t *hist = NULL;
    char *text = NULL;
    ssm_status st;

    double t_load = now();
    st = ssm_model_load(&model, dir);
    if (st != SSM_OK) { rc = lib_error("cannot load model from", dir, st); goto done; }
    t_load = now() - t_load;
    int64_t n_layer, d_model, V;
    ssm_model_dims(model, &n_layer, &d_model, &V);

    /* the tokenizer: -t, else DIR/tokenizer.json when present */
    char *deftok = NULL;
    if (!tok_path) {
        size_t L = strlen(dir) + 32;
        deftok = malloc(L);
        struct stat sb;
        if (deftok) {
            snprintf(deftok, L, "%s/tokenizer.json", dir);
            if (stat(deftok, &sb) == 0) tok_path = deftok;
        }
    }
    if (tok_path) {
        st = ssm_tokenizer_load(&tok, tok_path);
        if (st != SSM_OK) { rc = lib_error("cannot load tokenizer", tok_path, st); free(deftok); goto done; }
    }
    free(deftok);
    if (prompt && !tok) {
        rc = bad_option("%s", "-p needs a tokenizer (-t tokenizer.json); or use --ids");
        goto done;
    }

    if (ppl_path) {
        size_t nb;
        text = read_file(ppl_path, &nb);
        if (!text) { rc = lib_error("cannot read", ppl_path, SSM_ERR_IO); goto done; }
        if (tok) st = encode(tok, text, nb, &prompt_ids, &n_prompt);
        else st = parse_ids(text, &prompt_ids, &n_prompt) ? SSM_OK : SSM_ERR_FORMAT;
        if (st != SSM_OK) { rc = lib_error("cannot tokenize", ppl_path, st); goto done; }
        for (int64_t i = 0; i < n_prompt; i++)
            if (prompt_ids[i] >= V) {
                rc = lib_error("token id out of the model's vocabulary in", ppl_path, SSM_ERR_ARG);
                goto done;
            }
        rc = perplexity(model, prompt_ids, n_prompt, V);
        goto done;
    }
    if (prompt) {
        st = encode(tok, prompt, strlen(prompt), &prompt_ids, &n_prompt);
        if (st != SSM_OK) { rc = lib_error("cannot tokenize the prompt", NULL, st); goto done; }
    }
    if (n_prompt == 0) { rc = bad_option("%s", "the prompt has no tokens"); goto done; }
    /* The embedding is often padded beyond the tokenizer's ids (GPT-NeoX:
     * 50277 ids, 50280 rows): sample only ids the tokenizer can decode. */
    int64_t Vs = V;
    if (tok && ssm_tokenizer_vocab_size(tok) < Vs)
        Vs = ssm_tokenizer_vocab_size(tok);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt_ids[i] >= Vs) {
            fprintf(stderr, "ssm_generate: prompt id %ld is outside the vocabulary [0, %lld)\n",
                    (long)prompt_ids[i], (long long)Vs);
            rc = 2;
            goto done;
        }

    ssm_sampler_params sp;
    ssm_sampler_params_init(&sp);
    if (sampling) {
        sp.top_k = top_k >= 0 ? top_k : 0;
        sp.temperature = temp;
        sp.top_p = top_p;
        sp.min_p = min_p;
    }
    sp.repetition_penalty = rep;
    st = ssm_sampler_create(&sampler, &sp, Vs, seed);   /* the first Vs logits */
    if (st == SSM_OK) st = ssm_model_state_create(&state, model, 1);
    if (st != SSM_OK) { rc = lib_error("setup", NULL, st); goto done; }
    if (load_path) {
        st = ssm_model_state_restore_file(state, 0, load_path);
        if (st != SSM_OK) { rc = lib_error("cannot restore state from", load_path, st); goto done; }
    }
    logits = malloc((size_t)V * sizeof *logits);
    hist = malloc((size_t)(n_prompt + n_gen + 1) * sizeof *hist);
    if (!logits || !hist) { rc = lib_error("memory", NULL, SSM_ERR_NOMEM); goto done; }
    memcpy(hist, prompt_ids, (size_t)n_prompt * sizeof *hist);
    int64_t nh = n_prompt;

    double t_pre = now();
    st = ssm_model_forward(model, state, 1, n_prompt, prompt_ids, logits);
    t_pre = now() - t_pre;
    if (st != SSM_OK) { rc = lib_error("prefill", NULL, st); goto done; }
    if (save_path) {
        st = ssm_model_state_save_file(state, 0, save_path);
        if (st != SSM_OK) { rc = lib_error("cannot save state to", save_path, st); goto done; }
    }

    int64_t cap = tok ? ssm_tokenizer_stream_bound(tok) : 0;
    char *piece = malloc((size_t)(cap > 0 ? cap : 1));
    ssm_tokenizer_stream ts;
    ssm_tokenizer_stream_init(&ts);
    double t_dec = now();
    int64_t produced = 0;
    for (int64_t g = 0; g < n_gen; g++) {
        int32_t id;
        st = ssm_sampler_sample(sampler, logits, hist, nh, &id);
        if (st != SSM_OK) { rc = lib_error("sampling", NULL, st); break; }
        hist[nh++] = id;
        produced++;
        if (print_ids || !tok) {
            printf(g ? " %ld" : "%ld", (long)id);
        } else {
            int64_t nb = 0;
            if (piece && ssm_tokenizer_stream_push(tok, &ts, id, piece, cap, &nb) == SSM_OK)
                fwrite(piece, 1, (size_t)nb, stdout);
        }
        fflush(stdout);
        /* an end-of-text special token ends the generation */
        if (tok && ssm_tokenizer_is_special(tok, id)) break;
        if (g + 1 == n_gen) break;           /* its logits are not needed */
        st = ssm_model_forward(model, state, 1, 1, &id, logits);
        if (st != SSM_OK) { rc = lib_error("decode", NULL, st); break; }
    }
    t_dec = now() - t_dec;
    if (tok && !print_ids && piece) {
        int64_t nb = 0;
        if (ssm_tokenizer_stream_flush(tok, &ts, piece, cap, &nb) == SSM_OK)
            fwrite(piece, 1, (size_t)nb, stdout);
    }
    free(piece);
    printf("\n");
    fprintf(stderr, "ssm_generate: %lld layers, d_model %lld, vocab %lld; load %.3f s\n"
            "ssm_generate: prefill %lld tokens in %.3f s (%.1f tokens/s); "
            "decode %lld tokens in %.3f s (%.1f tokens/s)\n",
            (long long)n_layer, (long long)d_model, (long long)V, t_load,
            (long long)n_prompt, t_pre, (double)n_prompt / (t_pre > 0 ? t_pre : 1e-9),
            (long long)produced, t_dec, (double)produced / (t_dec > 0 ? t_dec : 1e-9));
done:
    free(text);
    free(prompt_ids);
    free(logits);
    free(hist);
    ssm_sampler_destroy(sampler);
    ssm_model_state_destroy(state);
    ssm_tokenizer_destroy(tok);
    ssm_model_destroy(model);
    return rc;
}
