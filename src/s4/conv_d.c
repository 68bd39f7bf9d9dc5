/*
 * conv_d.c -- double-precision FFT convolution for verification paths:
 * the same causal convolution as ssm_conv_execute (S4 eq. (4)-(5),
 * y = K * u + D u), one call, with the plans made and destroyed inside
 * (under the library's FFTW lock, FFTW_ESTIMATE: reproducible bytes).
 * Its error is about eps_double log2(N) ||K|| ||u||, so it serves as an
 * O(L log L) reference for the float paths where the O(L^2) direct sum is
 * too slow.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"
#include "conv_internal.h"
#include <fftw3.h>   /* after <complex.h>: fftw_complex is double complex */

ssm_status ssm_conv_execute_d(int64_t batch, int64_t channels, int64_t L,
                              const double *K, const double *D,
                              const double *u, double *y)
{
    int64_t tot;
    if (K == NULL || u == NULL || y == NULL ||
        !ssmi_sizes_ok(&tot, sizeof(double), 3, batch, channels, L) ||
        L > INT_MAX / 2)
        return SSM_FAIL(SSM_ERR_ARG);
    const int64_t N = ssmi_conv_fast_length(2 * L);
    if (N < 0) return SSM_FAIL(SSM_ERR_ARG);
    const int64_t nc = N / 2 + 1, ncs = (nc + 3) / 4 * 4;
    if (!ssmi_sizes_ok(&tot, sizeof(fftw_complex), 2, channels, ncs))
        return SSM_FAIL(SSM_ERR_ARG);

    double *rb = fftw_malloc((size_t)N * sizeof(double));
    fftw_complex *cbuf = fftw_malloc((size_t)nc * sizeof(fftw_complex));
    fftw_complex *Kf = fftw_malloc((size_t)(channels * ncs) * sizeof(fftw_complex));
    if (rb == NULL || cbuf == NULL || Kf == NULL) {
        fftw_free(rb);
        fftw_free(cbuf);
        fftw_free(Kf);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    ssmi_fftw_lock();
    fftw_plan r2c = fftw_plan_dft_r2c_1d((int)N, rb, cbuf, FFTW_ESTIMATE);
    fftw_plan c2r = fftw_plan_dft_c2r_1d((int)N, cbuf, rb, FFTW_ESTIMATE);
    ssmi_fftw_unlock();
    ssm_status st = SSM_OK;
    if (r2c == NULL || c2r == NULL) st = SSM_FAIL(SSM_ERR_FFTW);

    const double scale = 1.0 / (double)N;
    int fail = 0;
    if (st == SSM_OK) {
#pragma omp parallel
        {
            double *r = fftw_malloc((size_t)N * sizeof(double));
            fftw_complex *cb = fftw_malloc((size_t)nc * sizeof(fftw_complex));
            if (r == NULL || cb == NULL) {
#pragma omp atomic write
                fail = 1;
            }
#pragma omp for schedule(static)
            for (int64_t c = 0; c < channels; c++) {
                if (r == NULL) continue;
                memcpy(r, K + c * L, (size_t)L * sizeof(double));
                memset(r + L, 0, (size_t)(N - L) * sizeof(double));
                fftw_execute_dft_r2c(r2c, r, Kf + c * ncs);
                double *f = (double *)(Kf + c * ncs);
                for (int64_t k = 0; k < 2 * nc; k++) f[k] *= scale;
            }
#pragma omp for collapse(2) schedule(static)
            for (int64_t b = 0; b < batch; b++) {
                for (int64_t c = 0; c < channels; c++) {
                    if (r == NULL || cb == NULL) continue;
                    const double *ur = u + (b * channels + c) * L;
                    double *yr = y + (b * channels + c) * L;
                    memcpy(r, ur, (size_t)L * sizeof(double));
                    memset(r + L, 0, (size_t)(N - L) * sizeof(double));
                    fftw_execute_dft_r2c(r2c, r, cb);
                    double *z = (double *)cb;
                    const double *kf = (const double *)(Kf + c * ncs);
                    for (int64_t k = 0; k < nc; k++) {
                        const double ar = z[2 * k], ai = z[2 * k + 1];
                        const double br = kf[2 * k], bi = kf[2 * k + 1];
                        z[2 * k] = ar * br - ai * bi;
                        z[2 * k + 1] = ar * bi + ai * br;
                    }
                    fftw_execute_dft_c2r(c2r, cb, r);
                    if (D != NULL) {
                        const double d = D[c];
                        for (int64_t t = 0; t < L; t++) yr[t] = r[t] + d * ur[t];
                    } else {
                        memcpy(yr, r, (size_t)L * sizeof(double));
                    }
                }
            }
            fftw_free(r);
            fftw_free(cb);
        }
        if (fail) st = SSM_FAIL(SSM_ERR_NOMEM);
    }
    ssmi_fftw_lock();
    if (r2c) fftw_destroy_plan(r2c);
    if (c2r) fftw_destroy_plan(c2r);
    ssmi_fftw_unlock();
    fftw_free(rb);
    fftw_free(cbuf);
    fftw_free(Kf);
    return st;
}
