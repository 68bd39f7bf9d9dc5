/*
 * conv_bwd.c -- backward of the causal depthwise convolution of the Mamba
 * block (Gu and Dao 2023, Section 3.4: the short conv before the SSM),
 * zero left padding, tap k-1 the newest input.
 *
 * y[t] = bias + sum_j w[j] x[t-(k-1)+j] is a correlation, so its adjoint in
 * x is the correlation of dy with the reversed taps:
 *   dx[s] = sum_j w[j] dy[s+(k-1)-j]     (terms with t = s+(k-1)-j < len)
 * and dw[j] = sum_t dy[t] x[t-(k-1)+j], dbias = sum_t dy[t].
 */
#include <string.h>

#include "internal.h"

ssm_status ssm_causal_conv1d_backward(int64_t batch, int64_t dim, int64_t len,
                                      int64_t k, const float *x, const float *w,
                                      const float *dy, float *dx, float *dw,
                                      float *dbias)
{
    int64_t n;
    if (!x || !w || !dy || !ssmi_sizes_ok(&n, sizeof(float), 3, batch, dim, len)
        || !ssmi_sizes_ok(&n, sizeof(float), 2, dim, k))
        return SSM_FAIL(SSM_ERR_ARG);
    /* One channel per iteration: it owns dw[d], dbias[d] and its rows of
     * dx, so every sum has one writer and a fixed order. */
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < dim; d++) {
        const float *wd = w + d * k;
        double db = 0.0;
        for (int64_t b = 0; b < batch; b++) {
            const float *gr = dy + (b * dim + d) * len;
            if (dx) {
                float *o = dx + (b * dim + d) * len;
                for (int64_t s = 0; s < len; s++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < k; j++) {
                        const int64_t t = s + (k - 1) - j;
                        if (t < len)
                            acc += (double)wd[j] * gr[t];
                    }
                    o[s] = (float)acc;
                }
            }
            if (dbias)
                for (int64_t t = 0; t < len; t++)
                    db += gr[t];
        }
        if (dbias)
            dbias[d] = (float)db;
        if (dw)
            for (int64_t j = 0; j < k; j++) {
                double acc = 0.0;
                for (int64_t b = 0; b < batch; b++) {
                    const float *xr = x + (b * dim + d) * len, *gr = dy + (b * dim + d) * len;
                    /* x index t-(k-1)+j >= 0 */
                    for (int64_t t = (k - 1) - j; t < len; t++)
                        acc += (double)gr[t] * xr[t - (k - 1) + j];
                }
                dw[d * k + j] = (float)acc;
            }
    }
    return SSM_OK;
}
