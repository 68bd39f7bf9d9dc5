/*
 * softplus_minimax.c -- where the scan's softplus coefficients come from
 * (src/scan/scan_vmath.h, SP_Q0 .. SP_Q8).
 *
 * The scan's softplus is Mamba's log1p(exp(x)) (x itself above 20), and
 * it computes it without a division:
 *     softplus(x) = max(x, 0) + log1p(t),  t = exp(-|x|) in (0, 1],
 *     log1p(t) ~ L(t) = t + t^2 q(t),  q of degree NQ - 1,
 * in Horner form with fma (L = fma(t t, q, t)).  This program finds the
 * coefficients of q minimizing the largest relative error
 * max |L(t) / log1p(t) - 1| on (0, 1] by the Remez exchange (long double
 * throughout), then prints them, the truncation error, and the float
 * implementation's ulp error against log1p(exp(x)) in double, next to the
 * form it replaced (log(1 + e) e / ((1 + e) - 1), e = exp(x): two
 * divisions).  Not part of the library or of CTest:
 * `build/bench/softplus_minimax` reruns the derivation.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "remez.h"
#include "scan/scan_vmath.h"   /* the library's exp, scan_expf */

enum { NQ = 9, NP = NQ + 1 };   /* q's coefficients; reference points */

static ld lq(const ld *c, ld t)
{
    ld q = c[NQ - 1];
    for (int k = NQ - 2; k >= 0; k--)
        q = q * t + c[k];
    return t + t * t * q;
}

static ld rel_err(const ld *c, ld t) { return lq(c, t) / log1pl(t) - 1; }


/* The new form with float coefficients cf[0..NQ-1]. */
static float fsoftplus_new(const float *cf, float x)
{
    const float t = scan_expf(scan_nabs(x));
    float q = cf[NQ - 1];
    for (int k = NQ - 2; k >= 0; k--)
        q = fmaf(q, t, cf[k]);
    const float lp = fmaf(t * t, q, t);
    return (x > 0.0f ? x : 0.0f) + lp;
}

/* The form it replaced (scan_softplus until 2026-12-03). */
static float fsoftplus_old(float x)
{
    if (x > 20.0f)
        return x;
    const float e = scan_expf(x);
    const float u = 1.0f + e;
    if (u == 1.0f)
        return e;
    uint32_t ub, mb;
    memcpy(&ub, &u, sizeof ub);
    const uint32_t ix = ub - 0x3f3504f3u;
    const float kf = (float)(int32_t)(ix >> 23);
    mb = (ix & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &mb, sizeof m);
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float R = s * s;
    float q = 0.111111111111111111f;
    q = fmaf(q, R, 0.142857142857142857f);
    q = fmaf(q, R, 0.2f);
    q = fmaf(q, R, 0.333333333333333333f);
    const float t2 = s + s;
    float lg = fmaf(t2 * R, q, t2);
    lg = fmaf(kf, -2.12194440e-4f, lg);
    lg = fmaf(kf, 0.693359375f, lg);
    return lg * (e / (u - 1.0f));
}

static void ulp_report(const float *cf)
{
    const double lo[3] = { -7.0, -87.0, 0.0 }, hi[3] = { -2.0, 0.0, 20.0 };
    for (int k = 0; k < 3; k++) {
        double maxe[2] = { 0, 0 }, sum[2] = { 0, 0 };
        const long n = 1L << 23;
        uint32_t s = 11;
        for (long i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            const float x = (float)(lo[k] + (hi[k] - lo[k]) * (s / 4294967296.0));
            const double ref = log1p(exp((double)x));
            int e;
            frexp(ref, &e);
            const float got[2] = { fsoftplus_new(cf, x), fsoftplus_old(x) };
            for (int j = 0; j < 2; j++) {
                const double err = ((double)got[j] - ref) / ldexp(1.0, e - 24);
                sum[j] += err;
                maxe[j] = fabs(err) > maxe[j] ? fabs(err) : maxe[j];
            }
        }
        printf("  x in [%g, %g]: new max %.3f ulp, mean %+.5f; old max %.3f ulp, mean %+.5f\n",
               lo[k], hi[k], maxe[0], sum[0] / (double)n, maxe[1], sum[1] / (double)n);
    }
}

int main(void)
{
    const ld a = 0, b = 1;
    ld x[NP], c[NQ], E = 0;
    /* First reference: Chebyshev extrema, the one at t = 0 (where the
     * relative error vanishes whatever q is) moved inside. */
    for (int i = 0; i < NP; i++)
        x[i] = (a + b) / 2 + (b - a) / 2 * cosl(3.14159265358979323846L * (NP - 1 - i) / (NP - 1));
    x[0] = x[1] / 4;
    for (int it = 0; it < 40; it++) {
        /* L(t_i) - log1p(t_i) = (-1)^i E log1p(t_i): linear in c and E. */
        ld M[NP][NP + 1];
        for (int i = 0; i < NP; i++) {
            ld tk = x[i] * x[i];
            for (int k = 0; k < NQ; k++, tk *= x[i])
                M[i][k] = tk;
            M[i][NQ] = -((i & 1) ? -1 : 1) * log1pl(x[i]);
            M[i][NP] = log1pl(x[i]) - x[i];
        }
        remez_solve(NP, &M[0][0]);
        for (int k = 0; k < NQ; k++)
            c[k] = M[k][NP];
        E = M[NQ][NP];
        /* New reference: the largest |error| of each sign-alternating run
         * (t = 0 itself excluded: the error is 0 there). */
        ld xs[NP];
        const int n = remez_exchange(rel_err, c, a, b, 400000, 1, xs, NP);
        if (n != NP) {
            fprintf(stderr, "Remez: %d alternation points, %d expected\n", n, NP);
            return 1;
        }
        memcpy(x, xs, sizeof x);
    }
    ld mx = 0;
    for (int g = 1; g <= 1000000; g++) {
        const ld e = fabsl(rel_err(c, a + (b - a) * g / 1000000));
        mx = e > mx ? e : mx;
    }
    printf("degree-%d minimax q for log1p(t) ~ t + t^2 q(t) on (0, 1]: levelled error %.3Le, "
           "max %.3Le relative (%.3Lf ulp of 2^-23)\n", NQ - 1, fabsl(E), mx,
           mx / ldexpl(1, -23));
    float cf[NQ];
    for (int k = 0; k < NQ; k++) {
        cf[k] = (float)c[k];
        printf("#define SP_Q%d %.9ef\n", k, (double)c[k]);
    }
    printf("float evaluation against log1p(exp(x)) in double, 2^23 uniform arguments:\n");
    ulp_report(cf);
    return 0;
}
