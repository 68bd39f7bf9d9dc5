/* ctest-labels: scan;ssd */
/*
 * test_ssd.c -- the Mamba-2 SSD scan (include/ssm/ssd.h).
 *
 * References, both written here from the formulas, in double:
 *   (1) the literal recurrence S = a S + dt x B^T, y = S C + D x, * silu(z);
 *   (2) the quadratic "attention" form of the duality (Dao and Gu 2024,
 *       eq. 16): y_t = sum_{s<=t} (C_t . B_s) exp(cs_t - cs_s) dt_s x_s
 *       + exp(cs_t) C_t . h0 + D x_t, cs_t = sum_{r<=t} dt_r A.
 * (1) and (2) must agree to ~1e-12 (the duality itself), and the float scan
 * (both evaluation orders) must stay within a derived forward-error bound.
 *
 * The bound (u = FLT_EPSILON/2).  In float, each step of the recurrence
 * rounds the decayed state and the new term (a mul and an fma: 2u), the
 * decay a = exp(dt A) carries (1 + |dt A|) u (the product dt A and the exp),
 * so a contribution that entered s steps ago carries a relative error of at
 * most sum_r (4 + |dt_r A|) u.  The reference tracks these weights:
 *   Sabs = a Sabs + |dt x B|,   W = a (W + (4 + |dt A|) Sabs) + 2 |dt x B|
 * so |S - S_ref| <= u W (first order).  The chunked order sums the same
 * terms in other groupings: at most Q (chunk) extra terms per sum and
 * exponentials of float differences of double cumulative sums (covered by
 * the |dt A| weights).  The readout is a dot product of length N.  Hence
 *   |y - y_ref| <= u [ |silu z| ( sum_n |C_n| (W_n + (N + Q + 4) Sabs_n)
 *                      + 3 |D x| ) + 4 |y_ref| ]
 * and ratio = max |y - y_ref| / bound must be <= 1; measured ratios are
 * printed with SSM_TEST_VERBOSE=1 (typically 1e-3 .. 1e-1).
 */
#include <ssm.h>
#include "testutil.h"

#define U_F (FLT_EPSILON / 2.0)

static int verbose(void) { return getenv("SSM_TEST_VERBOSE") != NULL; }

/* ------------------------------------------------------------------ */
/* problems                                                           */

typedef struct prob {
    int64_t B, L, H, P, N, G;
    int use_D, D_pc, use_z, use_bias, softplus, clamp, use_h0;
    float *x, *dt, *A, *Bm, *Cm, *D, *z, *bias, *h0;
    float dt_min, dt_max;
} prob;

static void prob_make(prob *p, uint64_t seed)
{
    tu_rng r = { seed };
    const int64_t nx = p->B * p->L * p->H * p->P;
    const int64_t nbc = p->B * p->L * p->G * p->N;
    p->x = tu_alloc((size_t)nx, sizeof(float));
    p->z = p->use_z ? tu_alloc((size_t)nx, sizeof(float)) : NULL;
    p->dt = tu_alloc((size_t)(p->B * p->L * p->H), sizeof(float));
    p->A = tu_alloc((size_t)p->H, sizeof(float));
    p->Bm = tu_alloc((size_t)nbc, sizeof(float));
    p->Cm = tu_alloc((size_t)nbc, sizeof(float));
    p->D = p->use_D ? tu_alloc((size_t)(p->D_pc ? p->H * p->P : p->H), sizeof(float)) : NULL;
    p->bias = p->use_bias ? tu_alloc((size_t)p->H, sizeof(float)) : NULL;
    p->h0 = p->use_h0 ? tu_alloc((size_t)(p->B * p->H * p->P * p->N), sizeof(float)) : NULL;
    tu_fill_normal_f(&r, p->x, nx, 1.0);
    if (p->z) tu_fill_normal_f(&r, p->z, nx, 1.5);
    /* Mamba-2 ranges: A = -exp(A_log), A in [-16, -1]; dt ~ 1e-3 .. 0.1
     * after softplus of (dt + bias); B, C ~ N(0, 1). */
    for (int64_t h = 0; h < p->H; h++)
        p->A[h] = (float)-tu_range(&r, 1.0, 16.0);
    for (int64_t i = 0; i < p->B * p->L * p->H; i++)
        p->dt[i] = p->softplus ? (float)tu_range(&r, -6.0, 0.5)
                               : (float)tu_range(&r, -0.01, 0.12);
    if (p->bias)
        for (int64_t h = 0; h < p->H; h++)
            p->bias[h] = p->softplus ? (float)tu_range(&r, -2.0, 0.5)
                                     : (float)tu_range(&r, -0.02, 0.05);
    tu_fill_normal_f(&r, p->Bm, nbc, 1.0);
    tu_fill_normal_f(&r, p->Cm, nbc, 1.0);
    if (p->D)
        for (int64_t i = 0; i < (p->D_pc ? p->H * p->P : p->H); i++)
            p->D[i] = (float)tu_range(&r, 0.5, 1.5);
    if (p->h0)
        tu_fill_normal_f(&r, p->h0, p->B * p->H * p->P * p->N, 0.5);
    p->dt_min = p->clamp ? 0.004f : 0.0f;
    p->dt_max = p->clamp ? 0.05f : INFINITY;
}

static void prob_free(prob *p)
{
    free(p->x); free(p->z); free(p->dt); free(p->A); free(p->Bm); free(p->Cm);
    free(p->D); free(p->bias); free(p->h0);
}

static ssm_ssd_args prob_args(const prob *p, float *y, float *h_last)
{
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = p->B; a.len = p->L; a.nheads = p->H; a.headdim = p->P;
    a.dstate = p->N; a.ngroups = p->G;
    a.x = p->x; a.dt = p->dt; a.A = p->A; a.B = p->Bm; a.C = p->Cm;
    a.D = p->D; a.D_per_channel = p->D_pc; a.z = p->z; a.dt_bias = p->bias;
    a.dt_softplus = p->softplus; a.dt_min = p->dt_min; a.dt_max = p->dt_max;
    a.h0 = p->h0; a.y = y; a.h_last = h_last;
    return a;
}

/* ------------------------------------------------------------------ */
/* references                                                         */

static double ref_dt(const prob *p, int64_t b, int64_t t, int64_t h)
{
    double v = p->dt[(b * p->L + t) * p->H + h];
    if (p->bias)
        v += p->bias[h];
    if (p->softplus && v <= 20.0)
        v = log1p(exp(v));
    if (v < p->dt_min) v = p->dt_min;
    if (v > p->dt_max) v = p->dt_max;
    return v;
}

static double ref_silu(double z) { return z / (1.0 + exp(-z)); }

static double ref_D(const prob *p, int64_t h, int64_t q)
{
    return p->D ? (p->D_pc ? p->D[h * p->P + q] : p->D[h]) : 0.0;
}

/* (1) literal recurrence; y [B][L][H][P], bound [B][L][H][P] (the
 * forward-error bound above for chunk Q), hl [B][H][P][N], hbound likewise. */
static void ref_recurrence(const prob *p, int64_t Q, double *y, double *bound,
                           double *hl, double *hbound)
{
    const int64_t P = p->P, N = p->N, hpg = p->H / p->G;
    double *S = tu_alloc((size_t)(P * N), sizeof(double));
    double *Sa = tu_alloc((size_t)(P * N), sizeof(double));
    double *W = tu_alloc((size_t)(P * N), sizeof(double));
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < p->H; h++) {
            const int64_t g = h / hpg;
            for (int64_t i = 0; i < P * N; i++) {
                S[i] = p->h0 ? p->h0[(b * p->H + h) * P * N + i] : 0.0;
                Sa[i] = fabs(S[i]);
                W[i] = 0.0;
            }
            for (int64_t t = 0; t < p->L; t++) {
                const double dt = ref_dt(p, b, t, h), dA = dt * p->A[h];
                const double a = exp(dA);
                const float *Bv = p->Bm + ((b * p->L + t) * p->G + g) * N;
                const float *Cv = p->Cm + ((b * p->L + t) * p->G + g) * N;
                const int64_t o = ((b * p->L + t) * p->H + h) * P;
                for (int64_t q = 0; q < P; q++) {
                    const double xv = p->x[o + q];
                    double acc = 0.0, accb = 0.0;
                    for (int64_t n = 0; n < N; n++) {
                        const int64_t i = q * N + n;
                        const double nu = dt * xv * Bv[n];
                        S[i] = a * S[i] + nu;
                        W[i] = a * (W[i] + (4.0 + fabs(dA)) * Sa[i]) + 2.0 * fabs(nu);
                        Sa[i] = a * Sa[i] + fabs(nu);
                        acc += Cv[n] * S[i];
                        accb += fabs(Cv[n]) * (W[i] + (double)(N + Q + 4) * Sa[i]);
                    }
                    const double dx = ref_D(p, h, q) * xv;
                    double yv = acc + dx, g2 = 1.0;
                    if (p->z) {
                        g2 = ref_silu(p->z[o + q]);
                        yv *= g2;
                    }
                    y[o + q] = yv;
                    bound[o + q] = U_F * (fabs(g2) * (accb + 3.0 * fabs(dx)) + 4.0 * fabs(yv));
                }
            }
            for (int64_t i = 0; i < P * N; i++) {
                hl[(b * p->H + h) * P * N + i] = S[i];
                hbound[(b * p->H + h) * P * N + i] =
                    U_F * (W[i] + (double)(Q + 4) * Sa[i]) + 1e-30;
            }
        }
    free(S); free(Sa); free(W);
}

/* (2) the quadratic (attention) form of the same map. */
static void ref_quadratic(const prob *p, double *y)
{
    const int64_t P = p->P, N = p->N, hpg = p->H / p->G, L = p->L;
    double *cs = tu_alloc((size_t)L, sizeof(double));
    double *dtv = tu_alloc((size_t)L, sizeof(double));
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < p->H; h++) {
            const int64_t g = h / hpg;
            double c = 0.0;
            for (int64_t t = 0; t < L; t++) {
                dtv[t] = ref_dt(p, b, t, h);
                c += dtv[t] * p->A[h];
                cs[t] = c;
            }
            for (int64_t t = 0; t < L; t++) {
                const float *Ct = p->Cm + ((b * L + t) * p->G + g) * N;
                const int64_t o = ((b * L + t) * p->H + h) * P;
                for (int64_t q = 0; q < P; q++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s <= t; s++) {
                        const float *Bs = p->Bm + ((b * L + s) * p->G + g) * N;
                        double cb = 0.0;
                        for (int64_t n = 0; n < N; n++)
                            cb += (double)Ct[n] * Bs[n];
                        acc += cb * exp(cs[t] - cs[s]) * dtv[s] *
                               p->x[((b * L + s) * p->H + h) * P + q];
                    }
                    if (p->h0) {
                        const float *hh = p->h0 + ((b * p->H + h) * P + q) * N;
                        double ch = 0.0;
                        for (int64_t n = 0; n < N; n++)
                            ch += (double)Ct[n] * hh[n];
                        acc += exp(cs[t]) * ch;
                    }
                    acc += ref_D(p, h, q) * p->x[o + q];
                    if (p->z)
                        acc *= ref_silu(p->z[o + q]);
                    y[o + q] = acc;
                }
            }
        }
    free(cs); free(dtv);
}

/* max_i |a_i - ref_i| / bound_i */
static double max_ratio(const float *a, const double *ref, const double *bound,
                        int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - ref[i]);
        const double r = e == 0.0 ? 0.0 : e / bound[i];
        if (!(r <= m))
            m = r;   /* NaN wins */
    }
    return m;
}

/* ------------------------------------------------------------------ */
/* the two references agree (the duality)                             */

START_TEST(duality_of_the_references)
{
    prob p = { .B = 2, .L = 37, .H = 4, .P = 3, .N = 5, .G = 2, .use_D = 1,
               .use_z = 1, .use_bias = 1, .softplus = 1, .use_h0 = 1 };
    prob_make(&p, 11);
    const int64_t ny = p.B * p.L * p.H * p.P, nh = p.B * p.H * p.P * p.N;
    double *y1 = tu_alloc((size_t)ny, sizeof(double)), *y2 = tu_alloc((size_t)ny, sizeof(double));
    double *bd = tu_alloc((size_t)ny, sizeof(double));
    double *hl = tu_alloc((size_t)nh, sizeof(double)), *hb = tu_alloc((size_t)nh, sizeof(double));
    ref_recurrence(&p, 0, y1, bd, hl, hb);
    ref_quadratic(&p, y2);
    /* double rounding, L + N terms: 1e-12 relative is ~1e4 ulps of room. */
    double e = tu_relerr_d(y2, y1, ny);
    if (verbose())
        fprintf(stderr, "duality: recurrence vs quadratic form, double: %.3e (tol 1e-12)\n", e);
    TU_CHECK_ERR(e, 1e-12, "recurrence vs quadratic form");
    free(y1); free(y2); free(bd); free(hl); free(hb);
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the scan against both references                                   */

typedef struct shape {
    int64_t B, L, H, P, N, G;
    int opt;   /* bit 0 D, 1 D per channel, 2 z, 3 bias, 4 softplus, 5 clamp, 6 h0 */
} shape;

#define ALL 0x5d   /* D, z, bias, softplus, h0 */
static const shape shapes[] = {
    { 1, 1, 1, 1, 1, 1, 0 },
    { 1, 1, 2, 4, 8, 1, ALL },
    { 2, 15, 4, 8, 16, 2, ALL },           /* chunk 16: chunk-1 */
    { 2, 16, 4, 8, 16, 2, ALL },           /* chunk */
    { 2, 17, 4, 8, 16, 2, ALL },           /* chunk+1 */
    { 1, 63, 6, 16, 32, 3, ALL | 0x02 },   /* auto chunk 64: -1, per-channel D */
    { 1, 64, 6, 16, 32, 1, ALL | 0x20 },   /* clamp */
    { 1, 65, 3, 17, 19, 3, ALL },          /* odd P, N */
    { 2, 131, 8, 32, 64, 2, ALL },         /* several chunks, prime */
    { 1, 257, 2, 64, 128, 1, 0x1c },       /* Mamba-2 head, no D, no h0 */
    { 3, 97, 6, 5, 7, 6, 0x51 },           /* ngroups = nheads, no z */
    { 1, 200, 4, 33, 65, 1, 0x10 | 0x40 }, /* fringes of every kernel */
    { 1, 41, 2, 8, 16, 2, 0x00 },          /* no softplus, raw dt (some < 0: clamped to 0) */
};

static void make_from_shape(prob *p, const shape *s)
{
    memset(p, 0, sizeof *p);
    p->B = s->B; p->L = s->L; p->H = s->H; p->P = s->P; p->N = s->N; p->G = s->G;
    p->use_D = s->opt & 1; p->D_pc = (s->opt >> 1) & 1; p->use_z = (s->opt >> 2) & 1;
    p->use_bias = (s->opt >> 3) & 1; p->softplus = (s->opt >> 4) & 1;
    p->clamp = (s->opt >> 5) & 1; p->use_h0 = (s->opt >> 6) & 1;
    if (p->D_pc) p->use_D = 1;
}

static void check_paths(const prob *p, const char *what)
{
    const int64_t ny = p->B * p->L * p->H * p->P, nh = p->B * p->H * p->P * p->N;
    double *yr = tu_alloc((size_t)ny, sizeof(double)), *bd = tu_alloc((size_t)ny, sizeof(double));
    double *yq = tu_alloc((size_t)ny, sizeof(double));
    double *hl = tu_alloc((size_t)nh, sizeof(double)), *hb = tu_alloc((size_t)nh, sizeof(double));
    float *y = tu_alloc((size_t)ny, sizeof(float)), *h = tu_alloc((size_t)nh, sizeof(float));
    ref_recurrence(p, 64, yr, bd, hl, hb);
    if (p->L <= 300 && p->P * p->N <= 4096)
        ref_quadratic(p, yq);
    else
        memcpy(yq, yr, (size_t)ny * sizeof(double));
    static const struct { ssm_ssd_path path; int64_t chunk; const char *name; } runs[] = {
        { SSM_SSD_RECURRENT, 0, "recurrent" },
        { SSM_SSD_CHUNKED, 0, "chunked(auto)" },
        { SSM_SSD_CHUNKED, 16, "chunked(16)" },
        { SSM_SSD_CHUNKED, 7, "chunked(7)" },
        { SSM_SSD_AUTO, 0, "auto" },
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        for (int64_t i = 0; i < ny; i++) y[i] = NAN;
        for (int64_t i = 0; i < nh; i++) h[i] = NAN;
        ssm_ssd_args a = prob_args(p, y, h);
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, runs[r].path, runs[r].chunk), SSM_OK);
        double ry = max_ratio(y, yr, bd, ny), rq = max_ratio(y, yq, bd, ny);
        double rh = max_ratio(h, hl, hb, nh);
        if (verbose())
            fprintf(stderr, "%-28s %-14s y/bound %.3e (quadratic form %.3e)  h_last/bound %.3e\n",
                    what, runs[r].name, ry, rq, rh);
        ck_assert_msg(ry <= 1.0 && rq <= 1.0 && rh <= 1.0,
                      "%s %s: error/bound y %.3e, vs quadratic %.3e, h_last %.3e",
                      what, runs[r].name, ry, rq, rh);
    }
    free(yr); free(bd); free(yq); free(hl); free(hb); free(y); free(h);
}

START_TEST(scan_matches_references)
{
    const shape *s = &shapes[_i];
    prob p;
    make_from_shape(&p, s);
    prob_make(&p, 100 + (uint64_t)_i);
    char what[96];
    snprintf(what, sizeof what, "B%lld L%lld H%lld P%lld N%lld G%lld o%02x",
             (long long)s->B, (long long)s->L, (long long)s->H, (long long)s->P,
             (long long)s->N, (long long)s->G, s->opt);
    check_paths(&p, what);
    prob_free(&p);
}
END_TEST

/* Every option on its own (and all together), one mid shape. */
START_TEST(each_option)
{
    prob p;
    shape s = { 2, 70, 4, 12, 20, 2, 1 << _i };
    if (_i == 7)
        s.opt = 0x7f;
    make_from_shape(&p, &s);
    prob_make(&p, 300 + (uint64_t)_i);
    char what[64];
    snprintf(what, sizeof what, "option bit %d%s", _i, _i == 7 ? " (all)" : "");
    check_paths(&p, what);
    prob_free(&p);
}
END_TEST

/* A long stream through many chunks: errors must not grow with L. */
START_TEST(long_sequence)
{
    prob p;
    shape s = { 1, 5000, 2, 8, 16, 1, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 77);
    check_paths(&p, "L 5000");
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* structure: step, split, in place, threads                          */

START_TEST(steps_equal_recurrent_scan_bitwise)
{
    prob p;
    shape s = { 2, 23, 4, 16, 32, 2, ALL | 0x02 };
    make_from_shape(&p, &s);
    prob_make(&p, 5);
    const int64_t ny = p.B * p.L * p.H * p.P, nh = p.B * p.H * p.P * p.N;
    const int64_t HP = p.H * p.P, GN = p.G * p.N;
    float *y = tu_alloc((size_t)ny, sizeof(float)), *h = tu_alloc((size_t)nh, sizeof(float));
    ssm_ssd_args a = prob_args(&p, y, h);
    ck_assert_int_eq(ssm_ssd_scan_ex(&a, SSM_SSD_RECURRENT, 0), SSM_OK);
    /* steps: one token of every sequence at a time, [B][...] rows */
    float *st = tu_alloc((size_t)nh, sizeof(float));
    memcpy(st, p.h0, (size_t)nh * sizeof(float));
    float *xs = tu_alloc((size_t)(p.B * HP), sizeof(float)), *zs = tu_alloc((size_t)(p.B * HP), sizeof(float));
    float *ds = tu_alloc((size_t)(p.B * p.H), sizeof(float));
    float *bs = tu_alloc((size_t)(p.B * GN), sizeof(float)), *cs = tu_alloc((size_t)(p.B * GN), sizeof(float));
    float *ys = tu_alloc((size_t)(p.B * HP), sizeof(float));
    for (int64_t t = 0; t < p.L; t++) {
        for (int64_t b = 0; b < p.B; b++) {
            memcpy(xs + b * HP, p.x + (b * p.L + t) * HP, (size_t)HP * sizeof(float));
            memcpy(zs + b * HP, p.z + (b * p.L + t) * HP, (size_t)HP * sizeof(float));
            memcpy(ds + b * p.H, p.dt + (b * p.L + t) * p.H, (size_t)p.H * sizeof(float));
            memcpy(bs + b * GN, p.Bm + (b * p.L + t) * GN, (size_t)GN * sizeof(float));
            memcpy(cs + b * GN, p.Cm + (b * p.L + t) * GN, (size_t)GN * sizeof(float));
        }
        ssm_ssd_args s1 = a;
        s1.len = 1; s1.x = xs; s1.z = zs; s1.dt = ds; s1.B = bs; s1.C = cs;
        s1.y = ys; s1.h0 = st; s1.h_last = st;
        ck_assert_int_eq(ssm_ssd_step(&s1), SSM_OK);
        for (int64_t b = 0; b < p.B; b++)
            ck_assert_msg(memcmp(ys + b * HP, y + (b * p.L + t) * HP,
                                 (size_t)HP * sizeof(float)) == 0,
                          "step %lld batch %lld differs from the scan", (long long)t, (long long)b);
    }
    ck_assert_msg(memcmp(st, h, (size_t)nh * sizeof(float)) == 0, "final states differ");
    free(y); free(h); free(st); free(xs); free(zs); free(ds); free(bs); free(cs); free(ys);
    prob_free(&p);
}
END_TEST

/* Two calls, the state carried in place (h0 == h_last), give the bytes of
 * one call: the recurrence at any split, the chunked order when the split
 * falls on a chunk boundary (same chunks), within the bound otherwise. */
START_TEST(split_equals_whole)
{
    prob p;
    shape s = { 2, 150, 4, 16, 32, 2, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 9);
    const int64_t ny = p.B * p.L * p.H * p.P, nh = p.B * p.H * p.P * p.N;
    const int64_t HP = p.H * p.P, GN = p.G * p.N;
    float *y = tu_alloc((size_t)ny, sizeof(float)), *h = tu_alloc((size_t)nh, sizeof(float));
    float *y2 = tu_alloc((size_t)ny, sizeof(float)), *st = tu_alloc((size_t)nh, sizeof(float));
    const struct { ssm_ssd_path path; int64_t chunk, split; int bitwise; } cases[] = {
        { SSM_SSD_RECURRENT, 0, 61, 1 },
        { SSM_SSD_CHUNKED, 32, 64, 1 },
        { SSM_SSD_CHUNKED, 32, 61, 0 },
    };
    double *yr = tu_alloc((size_t)ny, sizeof(double)), *bd = tu_alloc((size_t)ny, sizeof(double));
    double *hl = tu_alloc((size_t)nh, sizeof(double)), *hb = tu_alloc((size_t)nh, sizeof(double));
    ref_recurrence(&p, 64, yr, bd, hl, hb);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ssm_ssd_args a = prob_args(&p, y, h);
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, cases[c].path, cases[c].chunk), SSM_OK);
        const int64_t L1 = cases[c].split, L2 = p.L - L1;
        memcpy(st, p.h0, (size_t)nh * sizeof(float));
        /* the two parts, copied out so that each is a contiguous problem */
        for (int part = 0; part < 2; part++) {
            const int64_t t0 = part ? L1 : 0, Lp = part ? L2 : L1;
            float *x = tu_alloc((size_t)(p.B * Lp * HP), sizeof(float));
            float *z = tu_alloc((size_t)(p.B * Lp * HP), sizeof(float));
            float *dt = tu_alloc((size_t)(p.B * Lp * p.H), sizeof(float));
            float *bb = tu_alloc((size_t)(p.B * Lp * GN), sizeof(float));
            float *cc = tu_alloc((size_t)(p.B * Lp * GN), sizeof(float));
            float *yp = tu_alloc((size_t)(p.B * Lp * HP), sizeof(float));
            for (int64_t b = 0; b < p.B; b++) {
                memcpy(x + b * Lp * HP, p.x + (b * p.L + t0) * HP, (size_t)(Lp * HP) * sizeof(float));
                memcpy(z + b * Lp * HP, p.z + (b * p.L + t0) * HP, (size_t)(Lp * HP) * sizeof(float));
                memcpy(dt + b * Lp * p.H, p.dt + (b * p.L + t0) * p.H, (size_t)(Lp * p.H) * sizeof(float));
                memcpy(bb + b * Lp * GN, p.Bm + (b * p.L + t0) * GN, (size_t)(Lp * GN) * sizeof(float));
                memcpy(cc + b * Lp * GN, p.Cm + (b * p.L + t0) * GN, (size_t)(Lp * GN) * sizeof(float));
            }
            ssm_ssd_args q = a;
            q.len = Lp; q.x = x; q.z = z; q.dt = dt; q.B = bb; q.C = cc; q.y = yp;
            q.h0 = st; q.h_last = st;
            ck_assert_int_eq(ssm_ssd_scan_ex(&q, cases[c].path, cases[c].chunk), SSM_OK);
            for (int64_t b = 0; b < p.B; b++)
                memcpy(y2 + (b * p.L + t0) * HP, yp + b * Lp * HP, (size_t)(Lp * HP) * sizeof(float));
            free(x); free(z); free(dt); free(bb); free(cc); free(yp);
        }
        if (cases[c].bitwise) {
            ck_assert_msg(memcmp(y, y2, (size_t)ny * sizeof(float)) == 0,
                          "case %zu: split outputs differ from the whole", c);
            ck_assert_msg(memcmp(h, st, (size_t)nh * sizeof(float)) == 0,
                          "case %zu: split state differs from the whole", c);
        } else {
            double r1 = max_ratio(y2, yr, bd, ny), r2 = max_ratio(st, hl, hb, nh);
            if (verbose())
                fprintf(stderr, "split at %lld (chunk %lld): y/bound %.3e h/bound %.3e\n",
                        (long long)L1, (long long)cases[c].chunk, r1, r2);
            ck_assert_msg(r1 <= 1.0 && r2 <= 1.0, "split: ratios %.3e %.3e", r1, r2);
        }
    }
    free(y); free(h); free(y2); free(st); free(yr); free(bd); free(hl); free(hb);
    prob_free(&p);
}
END_TEST

START_TEST(threads_give_identical_bytes)
{
    prob p;
    shape s = { 2, 300, 12, 16, 32, 3, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 21);
    const int64_t ny = p.B * p.L * p.H * p.P, nh = p.B * p.H * p.P * p.N;
    const ssm_ssd_path paths[] = { SSM_SSD_AUTO, SSM_SSD_CHUNKED, SSM_SSD_RECURRENT };
    float *y[3], *h[3];
    for (int k = 0; k < 3; k++) {
        y[k] = tu_alloc((size_t)ny, sizeof(float));
        h[k] = tu_alloc((size_t)nh, sizeof(float));
    }
    for (int pi = 0; pi < 3; pi++) {
        for (int k = 0; k < 3; k++) {
            tu_set_threads(k + 1);
            ssm_ssd_args a = prob_args(&p, y[k], h[k]);
            ck_assert_int_eq(ssm_ssd_scan_ex(&a, paths[pi], 0), SSM_OK);
        }
        for (int k = 1; k < 3; k++) {
            ck_assert_msg(memcmp(y[0], y[k], (size_t)ny * sizeof(float)) == 0,
                          "path %d: y with %d threads differs from 1 thread", pi, k + 1);
            ck_assert_msg(memcmp(h[0], h[k], (size_t)nh * sizeof(float)) == 0,
                          "path %d: h_last with %d threads differs", pi, k + 1);
        }
    }
    tu_set_threads(1);
    for (int k = 0; k < 3; k++) { free(y[k]); free(h[k]); }
    prob_free(&p);
}
END_TEST

/* h0 == h_last (in place) gives the bytes of separate buffers. */
START_TEST(state_in_place)
{
    prob p;
    shape s = { 2, 90, 4, 8, 16, 2, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 31);
    const int64_t ny = p.B * p.L * p.H * p.P, nh = p.B * p.H * p.P * p.N;
    float *y1 = tu_alloc((size_t)ny, sizeof(float)), *y2 = tu_alloc((size_t)ny, sizeof(float));
    float *h1 = tu_alloc((size_t)nh, sizeof(float)), *h2 = tu_alloc((size_t)nh, sizeof(float));
    for (int pi = 1; pi <= 2; pi++) {
        ssm_ssd_args a = prob_args(&p, y1, h1);
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, (ssm_ssd_path)pi, 0), SSM_OK);
        memcpy(h2, p.h0, (size_t)nh * sizeof(float));
        a.y = y2; a.h0 = h2; a.h_last = h2;
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, (ssm_ssd_path)pi, 0), SSM_OK);
        ck_assert(memcmp(y1, y2, (size_t)ny * sizeof(float)) == 0);
        ck_assert(memcmp(h1, h2, (size_t)nh * sizeof(float)) == 0);
        /* h_last NULL: same outputs */
        a.h0 = p.h0; a.h_last = NULL;
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, (ssm_ssd_path)pi, 0), SSM_OK);
        ck_assert(memcmp(y1, y2, (size_t)ny * sizeof(float)) == 0);
    }
    free(y1); free(y2); free(h1); free(h2);
    prob_free(&p);
}
END_TEST

/* A NaN in x at token s reaches no output before s (causality holds in
 * both orders: masked entries are never multiplied), and reaches y at s. */
START_TEST(nan_is_causal)
{
    prob p;
    shape s = { 1, 40, 2, 8, 16, 1, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 41);
    const int64_t ny = p.L * p.H * p.P, s0 = 21;
    p.x[(s0 * p.H + 1) * p.P + 3] = NAN;
    float *y = tu_alloc((size_t)ny, sizeof(float));
    for (int pi = 1; pi <= 2; pi++) {
        ssm_ssd_args a = prob_args(&p, y, NULL);
        ck_assert_int_eq(ssm_ssd_scan_ex(&a, (ssm_ssd_path)pi, 16), SSM_OK);
        for (int64_t i = 0; i < s0 * p.H * p.P; i++)
            ck_assert_msg(isfinite(y[i]), "path %d: NaN reached y[%lld] before token %lld",
                          pi, (long long)i, (long long)s0);
        ck_assert(isnan(y[(s0 * p.H + 1) * p.P + 3]));
        /* head 0 never sees it */
        for (int64_t t = 0; t < p.L; t++)
            for (int64_t q = 0; q < p.P; q++)
                ck_assert(isfinite(y[(t * p.H) * p.P + q]));
    }
    free(y);
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bad arguments                                                      */

START_TEST(rejects_bad_arguments)
{
    prob p;
    shape s = { 1, 8, 4, 4, 8, 2, ALL };
    make_from_shape(&p, &s);
    prob_make(&p, 3);
    float *y = tu_alloc(1024, sizeof(float)), *h = tu_alloc(1024, sizeof(float));
    const ssm_ssd_args ok = prob_args(&p, y, h);
    ck_assert_int_eq(ssm_ssd_scan(&ok), SSM_OK);
    ck_assert_int_eq(ssm_ssd_scan(NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_step(NULL), SSM_ERR_ARG);
    enum { X, DT, A, BB, CC, Y, BATCH0, LEN0, H0, P0, N0, G0, BATCHN, GDIV, GBIG,
           DTMIN_NAN, DTMAX_NAN, DTMIN_GT, OVF1, OVF2, OVF3, NCASE };
    for (int c = 0; c < NCASE; c++) {
        ssm_ssd_args a = ok;
        switch (c) {
        case X: a.x = NULL; break;
        case DT: a.dt = NULL; break;
        case A: a.A = NULL; break;
        case BB: a.B = NULL; break;
        case CC: a.C = NULL; break;
        case Y: a.y = NULL; break;
        case BATCH0: a.batch = 0; break;
        case LEN0: a.len = 0; break;
        case H0: a.nheads = 0; break;
        case P0: a.headdim = 0; break;
        case N0: a.dstate = 0; break;
        case G0: a.ngroups = 0; break;
        case BATCHN: a.batch = -3; break;
        case GDIV: a.ngroups = 3; break;
        case GBIG: a.ngroups = 8; break;
        case DTMIN_NAN: a.dt_min = NAN; break;
        case DTMAX_NAN: a.dt_max = NAN; break;
        case DTMIN_GT: a.dt_min = 0.2f; a.dt_max = 0.1f; break;
        case OVF1: a.len = INT64_MAX / 2; break;
        case OVF2: a.headdim = (int64_t)1 << 40; a.dstate = (int64_t)1 << 40; break;
        case OVF3: a.batch = (int64_t)1 << 62; break;
        }
        ck_assert_msg(ssm_ssd_scan(&a) == SSM_ERR_ARG, "case %d accepted by scan", c);
        ck_assert_msg(ssm_ssd_scan_ex(&a, SSM_SSD_CHUNKED, 0) == SSM_ERR_ARG, "case %d accepted (chunked)", c);
        a.len = c == LEN0 ? 0 : 1;
        if (c == OVF1) a.len = INT64_MAX / 2;
        a.h0 = a.h_last;
        ck_assert_msg(ssm_ssd_step(&a) == SSM_ERR_ARG, "case %d accepted by step", c);
    }
    /* path and chunk */
    ck_assert_int_eq(ssm_ssd_scan_ex(&ok, (ssm_ssd_path)3, 0), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_ex(&ok, (ssm_ssd_path)-1, 0), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_ex(&ok, SSM_SSD_CHUNKED, -1), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_ex(&ok, SSM_SSD_CHUNKED, 4097), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_scan_ex(&ok, SSM_SSD_CHUNKED, 4096), SSM_OK);
    /* step: len != 1, h0 != h_last, h_last NULL */
    ssm_ssd_args st = ok;
    st.len = 1; st.h0 = h; st.h_last = h;
    ck_assert_int_eq(ssm_ssd_step(&st), SSM_OK);
    st.len = 2;
    ck_assert_int_eq(ssm_ssd_step(&st), SSM_ERR_ARG);
    st.len = 1; st.h0 = NULL;
    ck_assert_int_eq(ssm_ssd_step(&st), SSM_ERR_ARG);
    st.h0 = p.h0;
    ck_assert_int_eq(ssm_ssd_step(&st), SSM_ERR_ARG);
    st.h0 = NULL; st.h_last = NULL;
    ck_assert_int_eq(ssm_ssd_step(&st), SSM_ERR_ARG);
    /* plan */
    ssm_ssd_path path;
    int64_t chunk;
    ck_assert_int_eq(ssm_ssd_plan(1, 4096, 24, 64, 128, 1, &path, &chunk), SSM_OK);
    ck_assert(path == SSM_SSD_CHUNKED || path == SSM_SSD_RECURRENT);
    ck_assert(chunk >= 1);
    ck_assert_int_eq(ssm_ssd_plan(1, 0, 24, 64, 128, 1, &path, &chunk), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_ssd_plan(1, 1, 24, 64, 128, 5, NULL, NULL), SSM_ERR_ARG);
    /* an equal clamp is allowed */
    ssm_ssd_args eq = ok;
    eq.dt_min = eq.dt_max = 0.01f;
    ck_assert_int_eq(ssm_ssd_scan(&eq), SSM_OK);
    free(y); free(h);
    prob_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, duality_of_the_references);
    tcase_add_loop_test(tc, scan_matches_references, 0,
                        (int)(sizeof shapes / sizeof shapes[0]));
    tcase_add_loop_test(tc, each_option, 0, 8);
    tcase_add_test(tc, long_sequence);
    tcase_add_test(tc, steps_equal_recurrent_scan_bitwise);
    tcase_add_test(tc, split_equals_whole);
    tcase_add_test(tc, threads_give_identical_bytes);
    tcase_add_test(tc, state_in_place);
    tcase_add_test(tc, nan_is_causal);
    tcase_add_test(tc, rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
