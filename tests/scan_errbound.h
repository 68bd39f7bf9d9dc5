/*
 * scan_errbound.h -- the expected float error of a selective scan instance,
 * shared by test_scan.c and wbtest_scan.c (header-only, needs testutil.h).
 */
#ifndef SSM_SCAN_ERRBOUND_H
#define SSM_SCAN_ERRBOUND_H

#include "testutil.h"

/* The error to expect of a float evaluation of the scan, computed along the
 * double reference: a first-order model in which every float operation of
 * the recurrence rounds independently with a relative error uniform on
 * [-u, u] (u = 2^-24, variance u^2/3), the library's exp adds an error of
 * at most 1 ulp (2u relative, variance 4u^2/3) with a mean below 0.02 ulp
 * (wbtest_scan measures it; counted as a systematic bias), dt carries 2u
 * (softplus, bias add).  Per state, with a = exp(dt A), b = dt B u:
 *   Var(E_h') = a^2 Var(E_h) + (a h)^2 (4/3 + 2 (dt A)^2/3 + 4/3) u^2
 *               + b^2 (2/3 + 4/3) u^2 + h'^2 u^2/3
 *   bias(E_h') = a bias(E_h) + 0.04 u |a h|
 * and per output Var(E_y) = sum_n C^2 Var(E_h) (+ a rounding for each
 * partial sum, the D term and silu(z)).  Probabilistic rounding error
 * analysis (Higham and Mary 2019) bounds the sum of such errors by a small
 * multiple lambda of this standard deviation with overwhelming
 * probability; lambda = 6 here.  Returned: the predicted normwise relative
 * errors of y and h_last (the bound the tests divide by). */
#define SCAN_LAMBDA 6.0
typedef struct tu_scan_problem {
    int64_t batch, dim, dstate, len, ngroups;
    const float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0;
    int softplus;
} tu_scan_problem;

static inline void tu_scan_errbound(const tu_scan_problem *p, double *ey, double *eh)
{
    const int64_t N = p->dstate, L = p->len, dim = p->dim, G = p->ngroups;
    const double u = 0x1p-24, u2 = u * u;
    double *h = tu_alloc((size_t)N, sizeof(double)), *vh = tu_alloc((size_t)N, sizeof(double));
    double *bh = tu_alloc((size_t)N, sizeof(double));
    long double vy = 0, ny = 0, vhl = 0, nhl = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t d = 0; d < dim; d++) {
            const int64_t g = d / (dim / G), bd = b * dim + d;
            for (int64_t n = 0; n < N; n++) {
                h[n] = p->h0 ? p->h0[bd * N + n] : 0.0;
                vh[n] = 0; bh[n] = 0;
            }
            for (int64_t t = 0; t < L; t++) {
                double x = (double)p->delta[bd * L + t] + (p->bias ? p->bias[d] : 0.0);
                double dt = p->softplus ? (x <= 20.0 ? log1p(exp(x)) : x) : x;
                double uu = p->u[bd * L + t], s = 0.0, vs = 0.0, bs = 0.0, ss = 0.0;
                for (int64_t n = 0; n < N; n++) {
                    int64_t ib = ((b * G + g) * N + n) * L + t;
                    double pa = dt * p->A[d * N + n], a = exp(pa), ah = a * h[n];
                    double bb = dt * p->B[ib] * uu, hn = ah + bb;
                    vh[n] = a * a * vh[n] + ah * ah * (8.0 / 3 + 2 * pa * pa / 3) * u2
                            + bb * bb * 2.0 * u2 + hn * hn * u2 / 3;
                    bh[n] = a * bh[n] + 0.04 * u * fabs(ah);
                    h[n] = hn;
                    double c = p->C[ib];
                    s += c * h[n];
                    vs += c * c * vh[n] + s * s * u2 / 3;
                    bs += fabs(c) * bh[n];
                    ss += fabs(c * h[n]);
                }
                if (p->D) { s += p->D[d] * uu; vs += s * s * u2 / 3; }
                if (p->z) {   /* y *= silu(z): exp, add, divide, multiply */
                    double zz = p->z[bd * L + t], f = zz / (1.0 + exp(-zz));
                    vs = vs * f * f + s * s * f * f * 2.0 * u2;
                    bs *= fabs(f);
                    s *= f;
                }
                (void)ss;
                vy += vs + bs * bs;
                ny += s * s;
            }
            for (int64_t n = 0; n < N; n++) { vhl += vh[n] + bh[n] * bh[n]; nhl += h[n] * h[n]; }
        }
    *ey = SCAN_LAMBDA * (double)(ny > 0 ? sqrtl(vy / ny) : sqrtl(vy));
    *eh = SCAN_LAMBDA * (double)(nhl > 0 ? sqrtl(vhl / nhl) : sqrtl(vhl));
    free(h); free(vh); free(bh);
}

#endif /* SSM_SCAN_ERRBOUND_H */
