/*
 * conv_bwd.c -- backward of the FFT convolution mode of S4/S4D (Gu et al.
 * 2022, eq. (4)-(5)): for y[b,c,t] = sum_{s<=t} K[c,s] u[b,c,t-s] + D[c] u[b,c,t],
 *   du[b,c,s] = sum_{t>=s} dy[b,c,t] K[c,t-s] + D[c] dy[b,c,s]
 *   dK[c,s]   = sum_b sum_{t>=s} dy[b,c,t] u[b,c,t-s]
 *   dD[c]     = sum_b sum_t dy[b,c,t] u[b,c,t].
 *
 * Both sums over t >= s are correlations; with the time reversal
 * r(x)[t] = x[L-1-t] each becomes a causal convolution:
 *   r(du - D dy) = K * r(dy)           (kernel K, input r(dy))
 *   r(dK)        = sum_b u[b] * r(dy[b]) (kernel u[b], input r(dy[b]))
 * (substitute t = L-1-t', s = L-1-s': sum_{t'<=s'} r(dy)[t'] x[s'-t']).
 * So the forward plan (ssm_conv_execute, one r2c/c2r pair of the padded
 * length) computes both, with its accuracy and its determinism: the
 * forward's bytes do not depend on the thread count, and the batch sum of
 * dK and dD runs in double in batch order.
 */
#include <string.h>

#include "internal.h"
#include "ssm/conv.h"
#include "ssm/train.h"

static void reverse_rows(int64_t rows, int64_t L, const float *x, float *xr)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x + r * L;
        float *b = xr + r * L;
        for (int64_t t = 0; t < L; t++) b[t] = a[L - 1 - t];
    }
}

ssm_status ssm_conv_backward(const ssm_conv_plan *plan, int64_t batch,
                             const float *K, const float *D, const float *u,
                             const float *dy, float *du, float *dK, float *dD)
{
    int64_t H = 0, L = 0, total = 0, hl = 0;
    if (plan == NULL || u == NULL || dy == NULL) return SSM_FAIL(SSM_ERR_ARG);
    if (du != NULL && K == NULL) return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(ssm_conv_plan_info(plan, &H, &L, NULL));
    if (batch < 1 || !ssmi_sizes_ok(&total, sizeof(float), 3, batch, H, L) ||
        !ssmi_sizes_ok(&hl, sizeof(double), 2, H, L))
        return SSM_FAIL(SSM_ERR_ARG);
    if (D != NULL && !ssmi_finite_f(D, H)) return SSM_FAIL(SSM_ERR_ARG);

    float *dyr = ssmi_alloc((size_t)total, sizeof(float));
    float *tmp = ssmi_alloc((size_t)total, sizeof(float));
    double *acc = (dK != NULL) ? ssmi_alloc((size_t)hl, sizeof(double)) : NULL;
    ssm_status st = SSM_OK;
    if (dyr == NULL || tmp == NULL || (dK != NULL && acc == NULL)) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    reverse_rows(batch * H, L, dy, dyr);

    /* dD first: du may alias nothing, but compute from inputs only. */
    if (dD != NULL) {
        for (int64_t c = 0; c < H; c++) {
            double s = 0.0;
            for (int64_t b = 0; b < batch; b++) {
                const float *ub = u + (b * H + c) * L, *gb = dy + (b * H + c) * L;
                for (int64_t t = 0; t < L; t++) s += (double)gb[t] * ub[t];
            }
            dD[c] = (float)s;
        }
    }
    if (dK != NULL) {
        memset(acc, 0, (size_t)hl * sizeof(double));
        for (int64_t b = 0; b < batch; b++) {
            /* kernel u[b] [H][L], input r(dy[b]): one batch row. */
            st = ssm_conv_execute(plan, 1, u + b * H * L, NULL, dyr + b * H * L, tmp);
            if (st != SSM_OK) goto done;
            for (int64_t c = 0; c < H; c++)
                for (int64_t s = 0; s < L; s++)
                    acc[c * L + s] += tmp[c * L + (L - 1 - s)];
        }
        for (int64_t i = 0; i < hl; i++) dK[i] = (float)acc[i];
    }
    if (du != NULL) {
        st = ssm_conv_execute(plan, batch, K, NULL, dyr, tmp);
        if (st != SSM_OK) goto done;
        reverse_rows(batch * H, L, tmp, du);
        if (D != NULL)
            for (int64_t b = 0; b < batch; b++)
                for (int64_t c = 0; c < H; c++) {
                    float *o = du + (b * H + c) * L;
                    const float *g = dy + (b * H + c) * L;
                    for (int64_t t = 0; t < L; t++) o[t] += D[c] * g[t];
                }
    }
done:
    ssmi_free(dyr);
    ssmi_free(tmp);
    ssmi_free(acc);
    return st;
}
