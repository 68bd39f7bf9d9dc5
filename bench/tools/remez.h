/*
 * remez.h -- the Remez exchange steps shared by the *_minimax.c tools of
 * bench/tools (long double; not part of the library).
 */
#ifndef SSM_TOOLS_REMEZ_H
#define SSM_TOOLS_REMEZ_H

#include <math.h>

typedef long double ld;

/* M x = rhs by Gauss-Jordan with partial pivoting; M is n x (n + 1), row
 * major, the last column the right-hand side, overwritten by the solution. */
static void remez_solve(int n, ld *M)
{
    const int w = n + 1;
    for (int i = 0; i < n; i++) {
        int p = i;
        for (int k = i + 1; k < n; k++)
            if (fabsl(M[k * w + i]) > fabsl(M[p * w + i]))
                p = k;
        for (int j = 0; j <= n; j++) {
            const ld t = M[i * w + j];
            M[i * w + j] = M[p * w + j];
            M[p * w + j] = t;
        }
        for (int k = 0; k < n; k++)
            if (k != i) {
                const ld f = M[k * w + i] / M[i * w + i];
                for (int j = i; j <= n; j++)
                    M[k * w + j] -= f * M[i * w + j];
            }
    }
    for (int i = 0; i < n; i++)
        M[i * w + n] /= M[i * w + i];
}

/* The new reference: over the grid a + (b - a) g / G, g = g0 .. G, the
 * point of largest |err| of each sign-alternating run, the first np runs.
 * Returns the number of runs found (np when the exchange can go on). */
static int remez_exchange(ld (*err)(const ld *c, ld t), const ld *c, ld a, ld b,
                          long G, long g0, ld *xs, int np)
{
    ld best = a + (b - a) * g0 / G, bestv = err(c, best);
    int n = 0, sgn = bestv > 0;
    for (long g = g0 + 1; g <= G; g++) {
        const ld t = a + (b - a) * g / G, e = err(c, t);
        if ((e > 0) != sgn) {
            if (n < np)
                xs[n++] = best;
            sgn = e > 0;
            best = t;
            bestv = e;
        } else if (fabsl(e) > fabsl(bestv)) {
            best = t;
            bestv = e;
        }
    }
    if (n < np)
        xs[n++] = best;
    return n;
}

#endif /* SSM_TOOLS_REMEZ_H */
