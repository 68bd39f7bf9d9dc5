/*
 * sample.c -- next-token sampling (ssm/sample.h): the filters of mamba_ssm's
 * utils/generation.py in double precision, over scratch space owned by the
 * sampler (no allocation per token), with an explicit splitmix64 generator.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ssm/sample.h"

typedef struct cand { double v; int32_t i; int32_t pad_; } cand;

struct ssm_sampler {
    ssm_sampler_params p;
    int64_t vocab;
    ssmi_rng rng;
    double *val;          /* [vocab] penalized logits */
    unsigned char *mark;  /* [vocab] zero between calls */
    cand *c;              /* [vocab] candidates */
};

void ssm_sampler_params_init(ssm_sampler_params *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->temperature = 1.0;
    p->top_k = 1;
    p->top_p = 0.0;
    p->min_p = 0.0;
    p->repetition_penalty = 1.0;
}

static int params_ok(const ssm_sampler_params *p)
{
    return p->struct_size == sizeof *p &&
           isfinite(p->temperature) && p->temperature >= 0.0 &&
           p->top_k >= 0 &&
           isfinite(p->top_p) && p->top_p >= 0.0 && p->top_p <= 1.0 &&
           isfinite(p->min_p) && p->min_p >= 0.0 && p->min_p <= 1.0 &&
           isfinite(p->repetition_penalty) && p->repetition_penalty > 0.0;
}

ssm_status ssm_sampler_create(ssm_sampler **out, const ssm_sampler_params *p,
                              int64_t vocab, uint64_t seed)
{
    if (!out) return SSM_FAIL(SSM_ERR_ARG);
    *out = NULL;
    if (!p || !params_ok(p) || vocab < 1 || vocab > INT32_MAX)
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_sampler *s = calloc(1, sizeof *s);
    if (!s) return SSM_FAIL(SSM_ERR_NOMEM);
    s->p = *p;
    s->vocab = vocab;
    s->rng.s = seed;
    s->val = malloc((size_t)vocab * sizeof *s->val);
    s->mark = calloc((size_t)vocab, 1);
    s->c = malloc((size_t)vocab * sizeof *s->c);
    if (!s->val || !s->mark || !s->c) {
        ssm_sampler_destroy(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    *out = s;
    return SSM_OK;
}

void ssm_sampler_destroy(ssm_sampler *s)
{
    if (!s) return;
    free(s->val);
    free(s->mark);
    free(s->c);
    free(s);
}

ssm_status ssm_sampler_seed(ssm_sampler *s, uint64_t seed)
{
    if (!s) return SSM_FAIL(SSM_ERR_ARG);
    s->rng.s = seed;
    return SSM_OK;
}

/* Larger value first; ties: lower index first (a total, deterministic
 * order where torch.sort/topk leave ties unspecified). */
static int cmp_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* a goes after b in cmp_desc's order. */
static int after(const cand *a, const cand *b) { return cmp_desc(a, b) > 0; }

/* In-place heapsort into cmp_desc order.  Not qsort: glibc's qsort
 * allocates a merge buffer for arrays above a few KB (a real vocabulary's
 * candidates are ~800 KB) and sampling must not allocate. */
static void sift(cand *c, int64_t i, int64_t n)
{
    for (;;) {
        int64_t l = 2 * i + 1, m = i;
        if (l < n && after(&c[l], &c[m])) m = l;
        if (l + 1 < n && after(&c[l + 1], &c[m])) m = l + 1;
        if (m == i) return;
        cand t = c[i]; c[i] = c[m]; c[m] = t;
        i = m;
    }
}

static void sort_desc(cand *c, int64_t n)
{
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift(c, i, n);
    for (int64_t e = n - 1; e > 0; e--) {
        cand t = c[0]; c[0] = c[e]; c[e] = t;
        sift(c, 0, e);
    }
}

/* Apply the filters: candidates s->c[0..*m) with their tempered logits
 * (sorted when a filter needed it), or *greedy >= 0 for the greedy id. */
static ssm_status filter(ssm_sampler *s, const float *logits,
                         const int32_t *hist, int64_t nh, int64_t *m,
                         int32_t *greedy)
{
    const ssm_sampler_params *p = &s->p;
    const int64_t V = s->vocab;
    if (!logits || nh < 0 || (nh > 0 && !hist)) return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t j = 0; j < nh; j++)
        if (hist[j] < 0 || hist[j] >= V) return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t i = 0; i < V; i++) s->val[i] = logits[i];
    /* 1. repetition penalty, once per distinct id (torch's gather/scatter
     * writes the same value for repeated ids). */
    if (p->repetition_penalty != 1.0) {
        const double r = p->repetition_penalty;
        for (int64_t j = 0; j < nh; j++) {
            int32_t t = hist[j];
            if (s->mark[t]) continue;
            s->mark[t] = 1;
            s->val[t] = s->val[t] < 0 ? s->val[t] * r : s->val[t] / r;
        }
        for (int64_t j = 0; j < nh; j++) s->mark[hist[j]] = 0;
    }
    /* Candidates: numbers above -inf. */
    int64_t n = 0, best = -1;
    for (int64_t i = 0; i < V; i++) {
        double v = s->val[i];
        if (!(v > -INFINITY)) continue;      /* -inf and NaN */
        if (best < 0 || v > s->val[best]) best = i;
        s->c[n].v = v;
        s->c[n].i = (int32_t)i;
        n++;
    }
    if (n == 0) return SSM_FAIL(SSM_ERR_NUMERIC);
    *greedy = -1;
    /* 2. greedy */
    if (p->top_k == 1 || p->temperature == 0.0) {
        *greedy = (int32_t)best;
        return SSM_OK;
    }
    const int top_p_on = p->top_p > 0.0 && p->top_p < 1.0;
    if ((p->top_k > 0 && p->top_k < n) || top_p_on)
        sort_desc(s->c, n);
    /* 3. top-k */
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    /* 4. min-p: p_i / p_max = exp(l_i - l_max) (a ratio of softmax
     * entries: the same over any candidate set containing both). */
    const double lmax = s->val[best];
    if (p->min_p > 0.0) {
        int64_t k = 0;
        for (int64_t j = 0; j < n; j++)
            if (exp(s->c[j].v - lmax) >= p->min_p) s->c[k++] = s->c[j];
        n = k;     /* the top token always passes (ratio 1 >= min_p) */
    }
    /* 5. temperature */
    if (p->temperature != 1.0)
        for (int64_t j = 0; j < n; j++) s->c[j].v /= p->temperature;
    /* 6. top-p over the sorted (descending) candidates: walking up from the
     * least likely, drop while the cumulative probability stays <= 1 - p. */
    if (top_p_on) {
        const double vmax = s->c[0].v;
        double tot = 0.0;
        for (int64_t j = 0; j < n; j++) tot += exp(s->c[j].v - vmax);
        double cum = 0.0;
        int64_t keep = n;
        for (int64_t j = n - 1; j > 0; j--) {
            cum += exp(s->c[j].v - vmax) / tot;
            if (cum <= 1.0 - p->top_p) keep = j;
            else break;
        }
        n = keep;
    }
    *m = n;
    return SSM_OK;
}

static double cand_max(const cand *c, int64_t n)
{
    double v = c[0].v;
    for (int64_t j = 1; j < n; j++) if (c[j].v > v) v = c[j].v;
    return v;
}

ssm_status ssm_sampler_probs(ssm_sampler *s, const float *logits,
                             const int32_t *history, int64_t n_history,
                             float *probs)
{
    if (!s || !probs) return SSM_FAIL(SSM_ERR_ARG);
    int64_t n = 0;
    int32_t g;
    SSM_TRY(filter(s, logits, history, n_history, &n, &g));
    memset(probs, 0, (size_t)s->vocab * sizeof *probs);
    if (g >= 0) {
        probs[g] = 1.0f;
        return SSM_OK;
    }
    const double vmax = cand_max(s->c, n);
    double tot = 0.0;
    for (int64_t j = 0; j < n; j++) tot += exp(s->c[j].v - vmax);
    for (int64_t j = 0; j < n; j++)
        probs[s->c[j].i] = (float)(exp(s->c[j].v - vmax) / tot);
    return SSM_OK;
}

ssm_status ssm_sampler_sample(ssm_sampler *s, const float *logits,
                              const int32_t *history, int64_t n_history,
                              int32_t *token)
{
    if (!s || !token) return SSM_FAIL(SSM_ERR_ARG);
    int64_t n = 0;
    int32_t g;
    SSM_TRY(filter(s, logits, history, n_history, &n, &g));
    if (g >= 0) {
        *token = g;
        return SSM_OK;
    }
    const double vmax = cand_max(s->c, n);
    double tot = 0.0;
    for (int64_t j = 0; j < n; j++) tot += exp(s->c[j].v - vmax);
    /* Inverse CDF over the candidates in their (fixed) order. */
    double u = ((double)(ssmi_rng_u64(&s->rng) >> 11) * 0x1.0p-53) * tot, acc = 0.0;
    int32_t pick = s->c[n - 1].i;
    for (int64_t j = 0; j < n; j++) {
        acc += exp(s->c[j].v - vmax);
        if (u < acc) { pick = s->c[j].i; break; }
    }
    *token = pick;
    return SSM_OK;
}
