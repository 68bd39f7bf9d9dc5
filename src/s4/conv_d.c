/*
 * conv_d.c -- double-precision FFT convolution for verification paths:
 * the same causal convolution as ssm_conv_execute (S4 eq. (4)-(5),
 * y = K * u + D u), one call, with the plans borrowed from the library's
 * plan cache (fft_plans.c: FFTW_ESTIMATE, reproducible bytes; made once
 * per length, not on every call).
 * Its error is about eps_double log2(N) ||K|| ||u||, so it serves as an
 * O(L log L) reference for the float paths where the O(L^2) direct sum is
 * too slow.
 */
#include <limits.h>
#include <string.h>

#include "s4/conv_internal.h"
#include "s4/fftw_internal.h"

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
    if (!ssmi_sizes_ok(&tot, sizeof(fftw_complex), 2, channels, ncs) ||
        (D != NULL && !ssmi_finite_d(D, channels)))
        return SSM_FAIL(SSM_ERR_ARG);

    fftw_complex *Kf = ssmi_fftw_malloc((size_t)(channels * ncs) * sizeof(fftw_complex));
    if (Kf == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    ssmi_fft_ref pr = { NULL, -1 }, pc = { NULL, -1 };
    ssm_status st = ssmi_fft_plan_get(SSMI_FFT_R2C, (int)N, &pr);
    if (st == SSM_OK) st = ssmi_fft_plan_get(SSMI_FFT_C2R, (int)N, &pc);
    const fftw_plan r2c = pr.plan, c2r = pc.plan;

    const double scale = 1.0 / (double)N;
    /* Per thread: r (N reals) and cb (nc complex), each on its own 64-byte
     * line (the alignment of the planning arrays, fft_plans.c). */
    const size_t rbytes = ((size_t)N * sizeof(double) + 63) & ~(size_t)63;
    ssmi_scratch sc = { NULL, 0, 1 };
    if (st == SSM_OK)
        st = ssmi_scratch_init(&sc, rbytes + (size_t)nc * sizeof(fftw_complex), batch * channels);
    if (st == SSM_OK) {
#pragma omp parallel num_threads(sc.nt)
        {
            double *r = ssmi_scratch_mine(&sc);
            fftw_complex *cb = (fftw_complex *)((unsigned char *)r + rbytes);
#pragma omp for schedule(static)
            for (int64_t c = 0; c < channels; c++) {
                memcpy(r, K + c * L, (size_t)L * sizeof(double));
                memset(r + L, 0, (size_t)(N - L) * sizeof(double));
                fftw_execute_dft_r2c(r2c, r, Kf + c * ncs);
                double *f = (double *)(Kf + c * ncs);
                for (int64_t k = 0; k < 2 * nc; k++) f[k] *= scale;
            }
#pragma omp for collapse(2) schedule(static)
            for (int64_t b = 0; b < batch; b++) {
                for (int64_t c = 0; c < channels; c++) {
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
        }
    }
    ssmi_scratch_free(&sc);
    ssmi_fft_plan_put(&pr);
    ssmi_fft_plan_put(&pc);
    fftw_free(Kf);
    return st;
}
