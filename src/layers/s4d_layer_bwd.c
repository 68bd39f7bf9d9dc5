/*
 * s4d_layer_bwd.c -- backward of the S4D layer's convolution mode
 * (ssm_s4d_layer_forward with SSM_MODE_CONV, from the zero state).
 *
 * The forward is y = K * u + D u (S4 eq. (4)-(5)) with, per channel,
 *   K[l] = Re sum_k Ce_k Bd_k Ad_k^l   (S4D eq. (6), Vandermonde kernel),
 * (Ad, Bd) = discretize(lambda, B, dt) by the layer's method and Ce = 2 C
 * for the complex inits (conjugate pairs halved, S4D sec. 3.2), Ce = C for
 * REAL.  The backward is the composition of two existing pieces:
 *   ssm_conv_backward:       dy -> du, dK, dD (time-reversed correlations
 *                            through a plan of the forward's sizes);
 *   ssm_s4d_kernel_backward: dK -> dlambda, dB, dCe, ddt per channel, in
 *                            double from the continuous parameters;
 * and dC = 2 dCe (complex inits) by the chain rule through Ce = 2 C.
 *
 * The layer rounds Ad, Bd, Ce and the kernel to float once; the gradient is
 * that of the exact (double) kernel, i.e. it treats those roundings as
 * exact (their derivative is 1): the difference is of the order of the
 * float rounding of K, eps_f ||K||, relative to the gradient.
 *
 * Determinism: ssm_conv_backward is thread-count independent, and each
 * channel's kernel backward is one independent call writing only that
 * channel's outputs, so the result is the same bytes for any thread count.
 */
#include <complex.h>
#include <math.h>
#include <string.h>

#include "internal.h"
#include "ssm/conv.h"
#include "ssm/layer.h"
#include "ssm/train.h"

ssm_status ssm_s4d_layer_backward(const ssm_s4d_layer *layer, int64_t batch,
                                  int64_t L, const float *u, const float *dy,
                                  float *du, ssm_cdouble *dlambda, double *ddt,
                                  ssm_cdouble *dB, ssm_cdouble *dC, float *dD)
{
    int64_t H = 0, n = 0, total, hl, hn;
    ssm_s4d_init init;
    ssm_disc disc;
    if (layer == NULL || u == NULL || dy == NULL) return SSM_FAIL(SSM_ERR_ARG);
    if (ssm_s4d_layer_info(layer, &H, &n, &init, &disc) != SSM_OK)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&total, sizeof(float), 3, batch, H, L) ||
        !ssmi_sizes_ok(&hl, sizeof(double), 2, H, L) ||
        !ssmi_sizes_ok(&hn, sizeof(double complex), 2, H, n))
        return SSM_FAIL(SSM_ERR_ARG);
    (void)total;
    const int want_k = dlambda != NULL || ddt != NULL || dB != NULL || dC != NULL;
    if (!want_k && du == NULL && dD == NULL) return SSM_OK;

    ssm_status st = SSM_OK;
    ssm_conv_plan *plan = NULL;
    float *K = NULL, *dK = NULL, *D = NULL;
    double *dKd = NULL, *dt = NULL;
    double complex *lam = NULL, *B = NULL, *Ce = NULL;

    /* The plan first: it rejects an L too large for the FFT before any
     * allocation of that size is tried. */
    if ((st = ssm_conv_plan_create(&plan, H, L)) != SSM_OK) goto done;
    /* Float parameters and kernel: exactly the forward's bytes. */
    D = ssmi_alloc((size_t)H, sizeof *D);
    if (D == NULL) { st = SSM_FAIL(SSM_ERR_NOMEM); goto done; }
    if ((st = ssm_s4d_layer_get_params(layer, NULL, NULL, NULL, NULL, D)) != SSM_OK) goto done;
    if (du != NULL) {
        K = ssmi_alloc((size_t)hl, sizeof *K);
        if (K == NULL) { st = SSM_FAIL(SSM_ERR_NOMEM); goto done; }
        if ((st = ssm_s4d_layer_kernel(layer, L, K)) != SSM_OK) goto done;
    }
    if (want_k) {
        dK = ssmi_alloc((size_t)hl, sizeof *dK);
        if (dK == NULL) { st = SSM_FAIL(SSM_ERR_NOMEM); goto done; }
    }
    if ((st = ssm_conv_backward(plan, batch, K, D, u, dy, du, dK, dD)) != SSM_OK) goto done;
    if (!want_k) goto done;

    dKd = ssmi_alloc((size_t)hl, sizeof *dKd);
    lam = ssmi_alloc((size_t)(3 * hn), sizeof *lam);
    if (dKd == NULL || lam == NULL) { st = SSM_FAIL(SSM_ERR_NOMEM); goto done; }
    B = lam + hn;
    Ce = B + hn;
    dt = ssmi_alloc((size_t)H, sizeof *dt);
    if (dt == NULL) { st = SSM_FAIL(SSM_ERR_NOMEM); goto done; }
    st = ssm_s4d_layer_get_params(layer, lam, dt, B, Ce, NULL);
    if (st == SSM_OK) {
        /* The kernel backward sees the effective C of the forward. */
        const double cscale = init == SSM_S4D_REAL ? 1.0 : 2.0;
        for (int64_t i = 0; i < hn; i++) Ce[i] *= cscale;
        for (int64_t i = 0; i < hl; i++) dKd[i] = (double)dK[i];
        ssm_status cst = SSM_OK;
        /* One call per channel, writing only that channel's outputs; the
         * per-channel call parallelizes over modes itself (deterministic). */
        for (int64_t c = 0; c < H && cst == SSM_OK; c++) {
            cst = ssm_s4d_kernel_backward(disc, n, lam + c * n, B + c * n, Ce + c * n, dt[c],
                                          L, dKd + c * L,
                                          dlambda ? dlambda + c * n : NULL,
                                          dB ? dB + c * n : NULL,
                                          dC ? dC + c * n : NULL,
                                          ddt ? ddt + c : NULL);
            if (cst == SSM_OK && dC != NULL)
                for (int64_t k = 0; k < n; k++) dC[c * n + k] *= cscale;
        }
        st = cst;
    }

done:
    ssm_conv_plan_destroy(plan);
    ssmi_free(K);
    ssmi_free(dK);
    ssmi_free(D);
    ssmi_free(dKd);
    ssmi_free(dt);
    ssmi_free(lam);
    return st;
}
