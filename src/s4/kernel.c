/*
 * kernel.c -- convolution kernels of discrete LTI systems, K[l] = C Ad^l Bd
 * (S4: Gu et al. 2022, eq. (4)-(5)).
 *
 *   ssm_kernel_dense  dense real system, O(n^2 L): the slow reference path.
 *   ssm_kernel_diag   diagonal complex system, the S4D Vandermonde kernel
 *                     (S4D: Gu et al. 2022, eq. (5) / Section 3), O(n L).
 * The DPLR (S4) kernel is in kernel_dplr.c.
 */
#include <string.h>

#include "internal.h"

/* K[l] = C Ad^l Bd.  The row vector w_l = C Ad^l is propagated
 * (w_{l+1} = w_l Ad, contiguous axpys over the rows of Ad), and
 * K[l] = w_l . Bd.  Each step is one vector-matrix product in a fixed
 * order: the result does not depend on anything but the inputs. */
ssm_status ssm_kernel_dense(int64_t n, const double *Ad, const double *Bd,
                            const double *C, int64_t L, double *K)
{
    if (!Ad || !Bd || !C || !K || !ssmi_sizes_ok(NULL, sizeof(double), 2, n, n) ||
        !ssmi_sizes_ok(NULL, sizeof(double), 1, L))
        return SSM_FAIL(SSM_ERR_ARG);
    double *w = ssmi_alloc((size_t)n * 2, sizeof(double));
    if (!w)
        return SSM_FAIL(SSM_ERR_NOMEM);
    if (!ssmi_finite_d(Ad, n * n) || !ssmi_finite_d(Bd, n) || !ssmi_finite_d(C, n)) {
        ssmi_free(w);
        return SSM_FAIL(SSM_ERR_ARG);
    }
    double *v = w + n;
    memcpy(w, C, (size_t)n * sizeof(double));
    for (int64_t l = 0; l < L; l++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += w[i] * Bd[i];
        K[l] = s;
        if (l + 1 == L)
            break;
        for (int64_t j = 0; j < n; j++)
            v[j] = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double wi = w[i];
            const double *row = Ad + i * n;
            for (int64_t j = 0; j < n; j++)
                v[j] += wi * row[j];
        }
        double *t = w; w = v; v = t;
    }
    ssmi_free(w < v ? w : v);
    return ssmi_finite_d(K, L) ? SSM_OK : SSM_FAIL(SSM_ERR_NUMERIC);
}

/* Vandermonde kernel: K[l] = Re sum_k c_k z_k^l with c_k = C_k Bd_k,
 * z_k = Ad_k (S4D: Gu et al. 2022, eq. (5)).
 *
 * Accuracy: z^l by repeated multiplication has relative error up to about
 * l eps (random-walk sqrt(l) eps typically).  To keep that bounded
 * independently of L, the powers restart at the start of every block of
 * KD_BLOCK steps from a seed z^l0 held in long double (x87, 64-bit
 * mantissa): the seed is advanced from block to block by one long-double
 * product with z^KD_BLOCK, and recomputed from exp(l0 log z) every
 * KD_RESEED blocks, so its error stays ~1e-16 relative for every L this
 * library accepts; inside a block, at most KD_BLOCK products in double.
 *
 * Speed: modes are taken KD_W at a time in separate re/im arrays, so the
 * inner loop over the KD_W lanes is a plain SIMD complex multiply; the
 * lanes are summed into K[l] in a fixed order (bitwise reproducible).
 * No allocation. */
#define KD_W 8
#define KD_BLOCK 256
#define KD_RESEED 64

typedef long double complex ldcx;

/* z^l0 from l0 log z (lz = log z), exact cases first. */
static ldcx seed_pow(double complex z, ldcx lz, int64_t l0)
{
    if (l0 == 0)
        return 1.0L;
    if (z == 0.0)
        return 0.0L;
    return cexpl((long double)l0 * lz);
}

ssm_status ssm_kernel_diag(int64_t n, const double complex *Ad,
                           const double complex *Bd, const double complex *C,
                           int64_t L, double *K)
{
    if (!Ad || !Bd || !C || !K || !ssmi_sizes_ok(NULL, sizeof(double complex), 1, n) ||
        !ssmi_sizes_ok(NULL, sizeof(double), 1, L))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_finite_z(Ad, n) || !ssmi_finite_z(Bd, n) || !ssmi_finite_z(C, n))
        return SSM_FAIL(SSM_ERR_ARG);

    for (int64_t l = 0; l < L; l++)
        K[l] = 0.0;
    for (int64_t k0 = 0; k0 < n; k0 += KD_W) {
        double zr[KD_W], zi[KD_W];
        double complex c[KD_W];
        ldcx lz[KD_W], zb[KD_W], seed[KD_W];
        for (int j = 0; j < KD_W; j++) {
            const int64_t k = k0 + j;
            const double complex z = k < n ? Ad[k] : 0.0;   /* idle lane: 0 */
            c[j] = k < n ? C[k] * Bd[k] : 0.0;
            zr[j] = creal(z);
            zi[j] = cimag(z);
            lz[j] = z == 0.0 ? 0.0L : clogl((ldcx)z);
            zb[j] = seed_pow(z, lz[j], KD_BLOCK);
            seed[j] = 1.0L;
        }
        for (int64_t l0 = 0, blk = 0; l0 < L; l0 += KD_BLOCK, blk++) {
            const int64_t nb = L - l0 < KD_BLOCK ? L - l0 : KD_BLOCK;
            double qr[KD_W], qi[KD_W];
            for (int j = 0; j < KD_W; j++) {
                const double complex z = ssmi_cmplx(zr[j], zi[j]);
                seed[j] = blk % KD_RESEED == 0 ? seed_pow(z, lz[j], l0) : seed[j] * zb[j];
                const double complex q = c[j] * (double complex)seed[j];
                qr[j] = creal(q);
                qi[j] = cimag(q);
            }
            for (int64_t l = 0; l < nb; l++) {
                double s = 0.0;
                for (int j = 0; j < KD_W; j++)
                    s += qr[j];
                K[l0 + l] += s;
                for (int j = 0; j < KD_W; j++) {
                    const double a = qr[j] * zr[j] - qi[j] * zi[j];
                    const double b = qr[j] * zi[j] + qi[j] * zr[j];
                    qr[j] = a;
                    qi[j] = b;
                }
            }
        }
    }
    return ssmi_finite_d(K, L) ? SSM_OK : SSM_FAIL(SSM_ERR_NUMERIC);
}
