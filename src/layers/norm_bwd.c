/*
 * norm_bwd.c -- RMSNorm backward (Zhang and Sennrich 2019, "Root Mean
 * Square Layer Normalization", eq. 4 and its derivative).
 *
 * With s = 1 / sqrt(mean(x^2) + eps), y_j = x_j s w_j:
 *   dy_j/dx_i = s w_j delta_ij - x_j w_j s^3 x_i / dim
 * so dx_i = s (w_i dy_i - x_i s^2 (sum_j dy_j w_j x_j) / dim).
 */
#include <string.h>

#include "internal.h"

ssm_status ssm_rmsnorm_backward(int64_t rows, int64_t dim, const float *x,
                                const float *weight, double eps,
                                const float *dy, float *dx, float *dweight)
{
    int64_t n;
    if (!x || !weight || !dy || !isfinite(eps) || eps < 0.0
        || !ssmi_sizes_ok(&n, sizeof(float), 2, rows, dim)
        || !ssmi_sizes_ok(&n, sizeof(double), 1, rows))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!dx && !dweight)
        return SSM_OK;
    double *sc = ssmi_alloc((size_t)rows, sizeof(double));
    if (!sc)
        return SSM_FAIL(SSM_ERR_NOMEM);
    /* Rows are independent: one writer per row of dx. */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim, *gr = dy + r * dim;
        double ss = 0.0, c = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            ss += (double)xr[j] * xr[j];
            c += (double)gr[j] * weight[j] * xr[j];
        }
        const double s = 1.0 / sqrt(ss / (double)dim + eps);
        sc[r] = s;
        if (dx) {
            const double k = s * s * c / (double)dim;
            float *o = dx + r * dim;
            for (int64_t j = 0; j < dim; j++)
                o[j] = (float)(s * ((double)weight[j] * gr[j] - (double)xr[j] * k));
        }
    }
    /* dweight: each column summed over the rows in order, by one thread. */
    if (dweight) {
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < dim; j++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++)
                acc += (double)dy[r * dim + j] * x[r * dim + j] * sc[r];
            dweight[j] = (float)acc;
        }
    }
    ssmi_free(sc);
    return SSM_OK;
}
