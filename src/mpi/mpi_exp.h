/*
 * mpi_exp.h -- libssm_mpi's branch-free float exp (shared by the scan
 * fix-up kernels and the Mamba-2 carry pass).  Never installed.
 */
#ifndef SSM_MPI_EXP_H
#define SSM_MPI_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* dt must be the scan's dt bit for bit, so that sum dt is the exponent
 * the scan's product of exp(dt A) approximates: the same operations as
 * src/scan/selective.c (scan_expf: Cody-Waite reduction, degree-6 minimax
 * polynomial with fma, 2^k in the exponent bits; scan_softplus: Mamba's
 * log1p(exp(x)) below the threshold 20, x above, as max(x, 0) +
 * log1p(exp(-|x|)): mpi_scan.c's msoftplus). */
#define EXP_LOG2E   1.44269504088896341f
#define EXP_SHIFT   12582912.0f
#define EXP_LN2HI   0.693359375f
#define EXP_LN2LO  -2.12194440e-4f
#define EXP_LO     -88.0f
#define EXP_HI      88.0f

/* Forced inline so that the AVX2+FMA instantiation of the kernels below
 * gets them with hardware fma and vectorizes its loops; branch-free
 * (selects) for the same reason.  Every variant computes the same IEEE
 * operations (fma is exactly rounded everywhere): the same bits. */
#define MINLINE static inline __attribute__((always_inline))

MINLINE float mexpf(float x)
{
    const float xc = EXP_LO > x ? EXP_LO : x;
    const float kf = fmaf(xc, EXP_LOG2E, EXP_SHIFT);
    const float shift = EXP_SHIFT;
    uint32_t kb, shb, sb;
    memcpy(&kb, &kf, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const float k = kf - EXP_SHIFT;
    float r = fmaf(-k, EXP_LN2HI, xc);
    r = fmaf(-k, EXP_LN2LO, r);
    /* scan_vmath.h's EXP_C6 .. EXP_C2 (not included here: private to
     * the scan). */
    float p = 1.381461318e-03f;
    p = fmaf(p, r, 8.368709823e-03f);
    p = fmaf(p, r, 4.166838736e-02f);
    p = fmaf(p, r, 1.666652069e-01f);
    p = fmaf(p, r, 4.999999345e-01f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    /* x <= -88 gives k = -127, a zero scale: exp is exactly 0 there, which
     * the fix-up's early stop relies on. */
    sb = ((kb - shb) + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    const float res = p * scale;
    return x > EXP_HI ? HUGE_VALF : res;
}

#endif /* SSM_MPI_EXP_H */
