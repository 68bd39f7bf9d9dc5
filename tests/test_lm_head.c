/* ctest-labels: train */
/*
 * test_lm_head.c -- the LM head's cross-entropy and the embedding, forward
 * and backward (ssm/train.h), black-box.
 *
 * Reference: the loss and its gradients written here in double from the
 * float inputs (softmax minus one-hot over count), itself checked against
 * central finite differences of the double loss.  Error model of the
 * library: each logit is a float dot product of dm terms, |dl| <= gamma_dm
 * sum_j |h_j W_vj| (u = eps_f / 2, gamma_n ~ n u); the loss moves by at most
 * 2 max|dl| per row (|softmax - onehot|_1 <= 2), a probability by
 * 2 p max|dl|; then G (rounded once, u) goes through float products
 * of V (dh) or rows (dW) terms.  The bounds below are those sums, per
 * element, times 2 (the gamma approximations).
 */
#include <ssm.h>
#include "testutil.h"

typedef struct ref_out {
    double loss;
    int64_t count;
    double *dh, *dW;       /* analytic gradients in double */
    double *bdh, *bdW;     /* elementwise error bounds for the float library */
    double bloss;
    int32_t *am;           /* argmax */
    double *gap;           /* top-1 minus top-2 logit */
    double dl;             /* max logit error bound */
} ref_out;

static void ref_out_alloc(ref_out *o, int64_t R, int64_t dm, int64_t Vp)
{
    o->dh = tu_alloc((size_t)(R * dm), sizeof(double));
    o->bdh = tu_alloc((size_t)(R * dm), sizeof(double));
    o->dW = tu_alloc((size_t)(Vp * dm), sizeof(double));
    o->bdW = tu_alloc((size_t)(Vp * dm), sizeof(double));
    o->am = tu_alloc((size_t)R, sizeof(int32_t));
    o->gap = tu_alloc((size_t)R, sizeof(double));
}

static void ref_out_free(ref_out *o)
{
    free(o->dh); free(o->bdh); free(o->dW); free(o->bdW); free(o->am); free(o->gap);
}

/* Hidden rows h [R][dm] ~ N(0, 1), then head weights W [Vp][dm] ~ N(0, ws^2)
 * (that draw order). */
static void draw_hW(tu_rng *rng, int64_t R, int64_t dm, int64_t Vp, double ws,
                    float **h, float **W)
{
    *h = tu_alloc((size_t)(R * dm), sizeof(float));
    *W = tu_alloc((size_t)(Vp * dm), sizeof(float));
    tu_fill_normal_f(rng, *h, R * dm, 1.0);
    tu_fill_normal_f(rng, *W, Vp * dm, ws);
}

static double ref_loss(int64_t R, int64_t dm, int64_t V, const double *h,
                       const double *W, const int32_t *t, int32_t ign)
{
    double tot = 0.0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < R; r++) {
        if (t[r] == ign)
            continue;
        double mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            double l = 0.0;
            for (int64_t j = 0; j < dm; j++)
                l += h[r * dm + j] * W[v * dm + j];
            mx = fmax(mx, l);
        }
        double s = 0.0, lt = 0.0;
        for (int64_t v = 0; v < V; v++) {
            double l = 0.0;
            for (int64_t j = 0; j < dm; j++)
                l += h[r * dm + j] * W[v * dm + j];
            s += exp(l - mx);
            if (v == t[r])
                lt = l;
        }
        tot += mx + log(s) - lt;
        cnt++;
    }
    return cnt ? tot / (double)cnt : 0.0;
}

/* Analytic double gradients and the bounds of the error model. */
static void reference(int64_t R, int64_t dm, int64_t V, int64_t Vp,
                      const float *hf, const float *Wf, const int32_t *t,
                      int32_t ign, ref_out *o)
{
    const double u = FLT_EPSILON / 2;
    double *lg = tu_alloc((size_t)(R * V), sizeof(double));
    double *P = tu_alloc((size_t)(R * V), sizeof(double));
    double *G = tu_alloc((size_t)(R * V), sizeof(double));
    double dl = 0.0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < R; r++)
        cnt += t[r] != ign;
    o->count = cnt;
    for (int64_t r = 0; r < R; r++)
        for (int64_t v = 0; v < V; v++) {
            double l = 0.0, a = 0.0;
            for (int64_t j = 0; j < dm; j++) {
                l += (double)hf[r * dm + j] * Wf[v * dm + j];
                a += fabs((double)hf[r * dm + j] * Wf[v * dm + j]);
            }
            lg[r * V + v] = l;
            dl = fmax(dl, (double)dm * u * a);
        }
    o->dl = dl;
    double tot = 0.0;
    for (int64_t r = 0; r < R; r++) {
        double mx = -INFINITY, m2 = -INFINITY;
        int32_t am = 0;
        for (int64_t v = 0; v < V; v++) {
            const double l = lg[r * V + v];
            if (l > mx) { m2 = mx; mx = l; am = (int32_t)v; }
            else if (l > m2) m2 = l;
        }
        o->am[r] = am;
        o->gap[r] = mx - m2;
        double s = 0.0;
        for (int64_t v = 0; v < V; v++)
            s += exp(lg[r * V + v] - mx);
        const int ig = t[r] == ign;
        if (!ig)
            tot += mx + log(s) - lg[r * V + t[r]];
        for (int64_t v = 0; v < V; v++) {
            const double p = exp(lg[r * V + v] - mx) / s;
            P[r * V + v] = ig || !cnt ? 0.0 : p / (double)cnt;
            G[r * V + v] = ig || !cnt ? 0.0 : (p - (v == t[r])) / (double)cnt;
        }
    }
    o->loss = cnt ? tot / (double)cnt : 0.0;
    o->bloss = 2.0 * (2.0 * dl + 64 * DBL_EPSILON * fabs(o->loss)) + 1e-300;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < dm; j++) {
            double g = 0.0, b = 0.0;
            for (int64_t v = 0; v < V; v++) {
                const double w = Wf[v * dm + j];
                g += G[r * V + v] * w;
                b += (2.0 * dl * P[r * V + v] + u * fabs(G[r * V + v])
                      + (double)(V + 1) * u * fabs(G[r * V + v])) * fabs(w);
            }
            o->dh[r * dm + j] = g;
            o->bdh[r * dm + j] = 2.0 * b + 1e-30;
        }
    for (int64_t v = 0; v < Vp; v++)
        for (int64_t j = 0; j < dm; j++) {
            double g = 0.0, b = 0.0;
            if (v < V)
                for (int64_t r = 0; r < R; r++) {
                    const double x = hf[r * dm + j];
                    g += G[r * V + v] * x;
                    b += (2.0 * dl * P[r * V + v] + u * fabs(G[r * V + v])
                          + (double)(R + 1) * u * fabs(G[r * V + v])) * fabs(x);
                }
            o->dW[v * dm + j] = g;
            o->bdW[v * dm + j] = 2.0 * b + 1e-30;
        }
    free(lg); free(P); free(G);
}

static double max_ratio(const float *a, const double *ref, const double *bnd, int64_t n)
{
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - ref[i]);
        w = fmax(w, e / bnd[i]);
        if (e != e)
            return INFINITY;
    }
    return w;
}

static void run_case(int64_t R, int64_t dm, int64_t V, int64_t Vp, int32_t ign,
                     int ignfrac, uint64_t seed)
{
    tu_rng rng = { seed };
    float *h, *W;
    draw_hW(&rng, R, dm, Vp, 2.0 / sqrt((double)dm), &h, &W);
    int32_t *t = tu_alloc((size_t)R, sizeof(int32_t));
    for (int64_t r = 0; r < R; r++) {
        t[r] = (int32_t)(tu_u64(&rng) % (uint64_t)V);
        if (ignfrac && tu_u64(&rng) % (uint64_t)ignfrac == 0)
            t[r] = ign;
    }
    ref_out o;
    ref_out_alloc(&o, R, dm, Vp);
    reference(R, dm, V, Vp, h, W, t, ign, &o);

    float *dh = tu_alloc((size_t)(R * dm), sizeof(float));
    float *dW = tu_alloc((size_t)(Vp * dm), sizeof(float));
    int32_t *pred = tu_alloc((size_t)R, sizeof(int32_t));
    for (int64_t i = 0; i < Vp * dm; i++)
        dW[i] = NAN;   /* overwritten, never accumulated */
    double loss = -1.0;
    int64_t cnt = -1;
    ck_assert_int_eq(ssm_lm_head_xent(R, dm, V, Vp, h, W, t, ign, &loss, &cnt,
                                      pred, dh, dW), SSM_OK);
    ck_assert_int_eq(cnt, o.count);
    char what[160];
    snprintf(what, sizeof what, "R %lld dm %lld V %lld Vp %lld ign %d", (long long)R,
             (long long)dm, (long long)V, (long long)Vp, (int)ign);
    TU_CHECK_ERR(fabs(loss - o.loss), o.bloss, "loss %s", what);
    TU_CHECK_ERR(max_ratio(dh, o.dh, o.bdh, R * dm), 1.0, "dh max err/bound %s", what);
    TU_CHECK_ERR(max_ratio(dW, o.dW, o.bdW, Vp * dm), 1.0, "dW max err/bound %s", what);
    for (int64_t r = 0; r < R; r++)
        if (o.gap[r] > 4.0 * o.dl)
            ck_assert_int_eq(pred[r], o.am[r]);

    /* Evaluation only, and each gradient alone: the same bytes. */
    double l2;
    float *dh2 = tu_alloc((size_t)(R * dm), sizeof(float));
    float *dW2 = tu_alloc((size_t)(Vp * dm), sizeof(float));
    ck_assert_int_eq(ssm_lm_head_xent(R, dm, V, Vp, h, W, t, ign, &l2, NULL, NULL,
                                      NULL, NULL), SSM_OK);
    ck_assert(memcmp(&l2, &loss, sizeof l2) == 0);
    ck_assert_int_eq(ssm_lm_head_xent(R, dm, V, Vp, h, W, t, ign, &l2, NULL, NULL,
                                      dh2, NULL), SSM_OK);
    ck_assert(memcmp(dh2, dh, (size_t)(R * dm) * sizeof(float)) == 0);
    ck_assert_int_eq(ssm_lm_head_xent(R, dm, V, Vp, h, W, t, ign, &l2, NULL, NULL,
                                      NULL, dW2), SSM_OK);
    ck_assert(memcmp(dW2, dW, (size_t)(Vp * dm) * sizeof(float)) == 0);
    free(dh2); free(dW2);
    free(h); free(W); free(t); free(dh); free(dW); free(pred);
    ref_out_free(&o);
}

START_TEST(xent_vs_double_reference)
{
    static const int64_t Rs[] = { 1, 63, 64, 65, 150 };
    static const int64_t dms[] = { 1, 7, 64, 70 };
    static const int64_t Vs[] = { 1, 5, 64, 130 };
    uint64_t seed = 11;
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 4; c++) {
                if (Rs[a] * dms[b] * Vs[c] > 200000)
                    continue;   /* keep the double reference short */
                run_case(Rs[a], dms[b], Vs[c], Vs[c] + (int64_t)(c & 1) * 3, -1,
                         (int)(a % 3) + 2, seed++);
            }
    /* ignore_index inside the vocabulary (PyTorch allows it), no ignored rows,
     * every row ignored (loss 0, zero gradients) */
    run_case(70, 9, 6, 8, 2, 0, 101);
    run_case(70, 9, 6, 6, -100, 0, 102);
    run_case(5, 9, 6, 6, -1, 1, 103);
}
END_TEST

/* The double reference gradient against central differences of the
 * double loss: the reference itself is right (the library is compared with
 * it above). */
START_TEST(reference_vs_finite_differences)
{
    const int64_t R = 9, dm = 5, V = 7, Vp = 8;
    tu_rng rng = { 7 };
    float *hf, *Wf;
    draw_hW(&rng, R, dm, Vp, 0.7, &hf, &Wf);
    double *h = tu_alloc((size_t)(R * dm), sizeof(double));
    double *W = tu_alloc((size_t)(Vp * dm), sizeof(double));
    int32_t t[9];
    for (int64_t r = 0; r < R; r++)
        t[r] = r % 4 == 3 ? -1 : (int32_t)(tu_u64(&rng) % (uint64_t)V);
    for (int64_t i = 0; i < R * dm; i++) h[i] = hf[i];
    for (int64_t i = 0; i < Vp * dm; i++) W[i] = Wf[i];
    ref_out o;
    ref_out_alloc(&o, R, dm, Vp);
    reference(R, dm, V, Vp, hf, Wf, t, -1, &o);
    /* step 1e-5: truncation ~1e-10 |f'''|, rounding ~1e-16 / 1e-5 */
    const double bound = 1e-8;
    double worst = 0.0;
    /* x is h, then W: each entry moved by +-1e-5 in place */
    for (int k = 0; k < 2; k++) {
        double *x = k ? W : h;
        const double *g = k ? o.dW : o.dh;
        for (int64_t i = 0; i < (k ? Vp : R) * dm; i++) {
            const double v = x[i];
            x[i] = v + 1e-5; const double lp = ref_loss(R, dm, V, h, W, t, -1);
            x[i] = v - 1e-5; const double lm = ref_loss(R, dm, V, h, W, t, -1);
            x[i] = v;
            worst = fmax(worst, fabs((lp - lm) / 2e-5 - g[i]));
        }
    }
    TU_CHECK_ERR(worst, bound, "double reference gradient vs central differences");
    free(hf); free(Wf); free(h); free(W);
    ref_out_free(&o);
}
END_TEST

START_TEST(threads_identical_bytes)
{
    const int64_t R = 200, dm = 150, V = 300, Vp = 304;
    tu_rng rng = { 3 };
    float *h, *W;
    draw_hW(&rng, R, dm, Vp, 0.1, &h, &W);
    int32_t *t = tu_alloc((size_t)R, sizeof(int32_t));
    for (int64_t r = 0; r < R; r++)
        t[r] = r % 5 == 0 ? -1 : (int32_t)(tu_u64(&rng) % (uint64_t)V);
    float *dh[3], *dW[3], *dE[3];
    int32_t *pr[3];
    double loss[3];
    for (int k = 0; k < 3; k++) {
        dh[k] = tu_alloc((size_t)(R * dm), sizeof(float));
        dW[k] = tu_alloc((size_t)(Vp * dm), sizeof(float));
        dE[k] = tu_alloc((size_t)(Vp * dm), sizeof(float));
        pr[k] = tu_alloc((size_t)R, sizeof(int32_t));
        tu_set_threads(k + 1);
        ck_assert_int_eq(ssm_lm_head_xent(R, dm, V, Vp, h, W, t, -1, &loss[k], NULL,
                                          pr[k], dh[k], dW[k]), SSM_OK);
        /* tied: the embedding's gradient (tokens = targets shifted) on top */
        int32_t *tok = tu_alloc((size_t)R, sizeof(int32_t));
        for (int64_t r = 0; r < R; r++)
            tok[r] = (int32_t)((r * 7) % V);
        memcpy(dE[k], dW[k], (size_t)(Vp * dm) * sizeof(float));
        ck_assert_int_eq(ssm_embedding_backward(R, dm, Vp, tok, dh[k], dE[k]), SSM_OK);
        free(tok);
    }
    tu_set_threads(2);
    for (int k = 1; k < 3; k++) {
        ck_assert(memcmp(&loss[k], &loss[0], sizeof(double)) == 0);
        ck_assert(memcmp(dh[k], dh[0], (size_t)(R * dm) * sizeof(float)) == 0);
        ck_assert(memcmp(dW[k], dW[0], (size_t)(Vp * dm) * sizeof(float)) == 0);
        ck_assert(memcmp(dE[k], dE[0], (size_t)(Vp * dm) * sizeof(float)) == 0);
        ck_assert(memcmp(pr[k], pr[0], (size_t)R * sizeof(int32_t)) == 0);
    }
    printf("threads 1/2/3: identical bytes (loss %.17g)\n", loss[0]);
    for (int k = 0; k < 3; k++) { free(dh[k]); free(dW[k]); free(dE[k]); free(pr[k]); }
    free(h); free(W); free(t);
}
END_TEST

START_TEST(embedding_forward_backward)
{
    const int64_t R = 300, dm = 130, Vp = 11;
    tu_rng rng = { 5 };
    float *E = tu_alloc((size_t)(Vp * dm), sizeof(float));
    float *g = tu_alloc((size_t)(R * dm), sizeof(float));
    float *out = tu_alloc((size_t)(R * dm), sizeof(float));
    float *dE = tu_alloc((size_t)(Vp * dm), sizeof(float));
    double *ref = tu_alloc((size_t)(Vp * dm), sizeof(double));
    double *abs_ = tu_alloc((size_t)(Vp * dm), sizeof(double));
    int32_t *tok = tu_alloc((size_t)R, sizeof(int32_t));
    tu_fill_normal_f(&rng, E, Vp * dm, 1.0);
    tu_fill_normal_f(&rng, g, R * dm, 1.0);
    int64_t maxc = 0, c[11] = { 0 };
    for (int64_t r = 0; r < R; r++) {
        tok[r] = (int32_t)(tu_u64(&rng) % 10);   /* row 10 never used */
        maxc = ++c[tok[r]] > maxc ? c[tok[r]] : maxc;
    }
    ck_assert_int_eq(ssm_embedding_forward(R, dm, Vp, E, tok, out), SSM_OK);
    for (int64_t r = 0; r < R; r++)
        ck_assert(memcmp(out + r * dm, E + tok[r] * dm, (size_t)dm * sizeof(float)) == 0);
    for (int64_t i = 0; i < Vp * dm; i++) {
        dE[i] = E[i];   /* accumulates onto what is there */
        ref[i] = E[i];
        abs_[i] = fabs(E[i]);
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < dm; j++) {
            ref[tok[r] * dm + j] += g[r * dm + j];
            abs_[tok[r] * dm + j] += fabs(g[r * dm + j]);
        }
    ck_assert_int_eq(ssm_embedding_backward(R, dm, Vp, tok, g, dE), SSM_OK);
    /* float sums of up to maxc + 1 terms in order: gamma_(maxc+1) sum |.| */
    double worst = 0.0;
    for (int64_t i = 0; i < Vp * dm; i++)
        worst = fmax(worst, fabs(dE[i] - ref[i]) /
                                ((double)(maxc + 1) * FLT_EPSILON / 2 * abs_[i] + 1e-300));
    TU_CHECK_ERR(worst, 1.0, "embedding backward vs double sums, max err/bound");
    ck_assert(memcmp(dE + 10 * dm, E + 10 * dm, (size_t)dm * sizeof(float)) == 0);
    free(E); free(g); free(out); free(dE); free(ref); free(abs_); free(tok);
}
END_TEST

START_TEST(bad_arguments)
{
    float h[6] = { 0 }, W[12] = { 0 }, dh[6], dW[12], out[6];
    int32_t t[2] = { 0, 1 }, tbad[2] = { 0, 4 }, tneg[2] = { -2, 1 };
    double loss;
    struct { int64_t R, dm, V, Vp; const float *h, *W; const int32_t *t; double *loss; } c[] = {
        { 2, 3, 3, 4, NULL, W, t, &loss },
        { 2, 3, 3, 4, h, NULL, t, &loss },
        { 2, 3, 3, 4, h, W, NULL, &loss },
        { 2, 3, 3, 4, h, W, t, NULL },
        { 0, 3, 3, 4, h, W, t, &loss },
        { 2, 0, 3, 4, h, W, t, &loss },
        { 2, 3, 0, 4, h, W, t, &loss },
        { 2, 3, 3, 2, h, W, t, &loss },       /* Vp < V */
        { 2, 3, 3, 4, h, W, tbad, &loss },    /* target >= V (though < Vp) */
        { 2, 3, 3, 4, h, W, tneg, &loss },    /* negative, not the ignore index */
        { INT64_MAX / 2, 3, 3, 4, h, W, t, &loss },
        { 2, INT64_MAX / 4, 3, 4, h, W, t, &loss },
        { 2, 3, 3, INT64_MAX / 2, h, W, t, &loss },
        { 2, (int64_t)1 << 32, 1, 1, h, W, t, &loss },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        for (int k = 0; k < 6; k++) dh[k] = 7.0f;
        ck_assert_msg(ssm_lm_head_xent(c[i].R, c[i].dm, c[i].V, c[i].Vp, c[i].h, c[i].W,
                                       c[i].t, -1, c[i].loss, NULL, NULL, dh, dW)
                      == SSM_ERR_ARG, "case %zu", i);
        ck_assert_msg(dh[0] == 7.0f, "case %zu wrote", i);
    }
    int32_t tok[2] = { 0, 3 }, tokb[2] = { 0, 4 }, tokn[2] = { -1, 0 };
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, W, tok, out), SSM_OK);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, NULL, tok, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, W, NULL, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, W, tok, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, W, tokb, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 4, W, tokn, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(0, 3, 4, W, tok, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 0, 4, W, tok, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(2, 3, 0, W, tok, out), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_forward(INT64_MAX / 2, 3, 4, W, tok, out), SSM_ERR_ARG);
    for (int k = 0; k < 12; k++) dW[k] = 5.0f;
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 4, tokb, h, dW), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 4, tokn, h, dW), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 4, NULL, h, dW), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 4, tok, NULL, dW), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 4, tok, h, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_embedding_backward(2, 3, 3, tok, h, dW), SSM_ERR_ARG);
    for (int k = 0; k < 12; k++) ck_assert(dW[k] == 5.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lm_head");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, xent_vs_double_reference);
    tcase_add_test(tc, reference_vs_finite_differences);
    tcase_add_test(tc, threads_identical_bytes);
    tcase_add_test(tc, embedding_forward_backward);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
