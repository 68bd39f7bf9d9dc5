/*
 * exp_minimax.c -- where the scan's exp coefficients come from
 * (src/scan/scan_vmath.h, EXP_C2 .. EXP_C6).
 *
 * The scan's exp reduces x = k ln2 + r, |r| <= ln2/2, and evaluates
 *     e^r ~ p(r) = 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4)
 * in Horner form with fma.  This program finds c2..c6 minimizing the
 * largest relative error max |p(r) e^-r - 1| by the Remez exchange
 * (long double throughout), then prints them, the truncation error, and
 * the float implementation's ulp error over the ranges of the scan's test
 * (tests/wbtest_scan.c, exp_accuracy_max_and_mean), against the degree-7
 * Taylor polynomial it replaced.  Not part of the library or of CTest:
 * `build/bench/exp_minimax` reruns the derivation.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "remez.h"

enum { NC = 5, NP = NC + 1 };   /* c2..c6; reference points */

static ld poly(const ld *c, ld r)
{
    ld p = c[NC - 1];
    for (int k = NC - 2; k >= 0; k--)
        p = p * r + c[k];
    return 1 + r + r * r * p;
}

static ld rel_err(const ld *c, ld r) { return poly(c, r) / expl(r) - 1; }


/* The float exp as scan_expf computes it, with coefficients c[2..deg]. */
static float fexp(const float *c, int deg, float x)
{
    const float xc = -88.0f > x ? -88.0f : x;
    const float shift = 12582912.0f;
    const float kf = fmaf(xc, 1.44269504088896341f, shift);
    uint32_t kb, shb;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const float k = kf - shift;
    float r = fmaf(-k, 0.693359375f, xc);
    r = fmaf(-k, -2.12194440e-4f, r);
    float p = c[deg];
    for (int i = deg - 1; i >= 2; i--)
        p = fmaf(p, r, c[i]);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const uint32_t sb = ((kb - shb) + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    return p * scale;
}

static void ulp_report(const char *name, const float *c, int deg)
{
    const double lo[2] = { -20.0, -87.0 }, hi[2] = { 0.0, 88.0 };
    for (int k = 0; k < 2; k++) {
        double maxe = 0, sum = 0;
        const long n = 1L << 23;
        uint32_t s = 11;
        for (long i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            const float x = (float)(lo[k] + (hi[k] - lo[k]) * (s / 4294967296.0));
            const double ref = exp((double)x);
            int e;
            frexp(ref, &e);
            const double err = ((double)fexp(c, deg, x) - ref) / ldexp(1.0, e - 24);
            sum += err;
            if (fabs(err) > maxe)
                maxe = fabs(err);
        }
        printf("  %-10s on [%g, %g]: max %.3f ulp, mean %+.5f ulp\n", name, lo[k], hi[k],
               maxe, sum / (double)n);
    }
}

int main(void)
{
    const ld a = -0.5L * logl(2.0L), b = -a;
    ld x[NP], c[NC], E = 0;
    for (int i = 0; i < NP; i++)   /* Chebyshev extrema as the first reference */
        x[i] = (a + b) / 2 + (b - a) / 2 * cosl(3.14159265358979323846L * (NP - 1 - i) / (NP - 1));
    for (int it = 0; it < 30; it++) {
        /* p(x_i) - e^x_i = (-1)^i E e^x_i: linear in c2..c6 and E. */
        ld M[NP][NP + 1];
        for (int i = 0; i < NP; i++) {
            ld rk = x[i] * x[i];
            for (int k = 0; k < NC; k++, rk *= x[i])
                M[i][k] = rk;
            M[i][NC] = ((i & 1) ? -1 : 1) * expl(x[i]);
            M[i][NP] = expl(x[i]) - 1 - x[i];
        }
        remez_solve(NP, &M[0][0]);
        for (int k = 0; k < NC; k++)
            c[k] = M[k][NP];
        E = M[NC][NP];
        /* New reference: the largest |error| of each sign-alternating run. */
        ld xs[NP];
        const int n = remez_exchange(rel_err, c, a, b, 200000, 0, xs, NP);
        if (n != NP) {
            fprintf(stderr, "Remez: %d alternation points, %d expected\n", n, NP);
            return 1;
        }
        memcpy(x, xs, sizeof x);
    }
    ld mx = 0;
    for (int g = 0; g <= 1000000; g++) {
        const ld e = fabsl(rel_err(c, a + (b - a) * g / 1000000));
        mx = e > mx ? e : mx;
    }
    printf("degree-6 minimax for e^r on |r| <= ln2/2: levelled error %.3Le, max %.3Le "
           "relative (%.3Lf ulp of 2^-23)\n", fabsl(E), mx, mx / ldexpl(1, -23));
    float cf[8] = { 0 }, taylor[8] = { 0 };
    for (int k = 0; k < NC; k++) {
        cf[k + 2] = (float)c[k];
        printf("#define EXP_C%d %.9ef\n", k + 2, (double)c[k]);
    }
    ld f = 1;
    for (int k = 2; k <= 7; k++)
        taylor[k] = (float)(1 / (f *= k));
    printf("float evaluation (scan_expf's operations), 2^23 uniform arguments:\n");
    ulp_report("minimax 6", cf, 6);
    ulp_report("Taylor 7", taylor, 7);
    return 0;
}
