/*
 * optim.c -- AdamW (Loshchilov and Hutter 2019, "Decoupled Weight Decay
 * Regularization", Algorithm 2, in the form of PyTorch's torch.optim.AdamW),
 * gradient-norm clipping and the warmup + cosine learning-rate schedule.
 */
#include <string.h>

#include "internal.h"

static int finite_nonneg(double x) { return isfinite(x) && x >= 0.0; }

ssm_status ssm_adamw_step(const ssm_adamw_config *cfg, int64_t step,
                          int64_t n, float *param, const float *grad,
                          float *m, float *v)
{
    if (!cfg || !param || !grad || !m || !v || n < 1 || step < 1)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!finite_nonneg(cfg->lr) || !finite_nonneg(cfg->eps)
        || !finite_nonneg(cfg->weight_decay)
        || !(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0)
        || !(cfg->beta2 >= 0.0 && cfg->beta2 < 1.0))
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t bytes;
    if (!ssmi_sizes_ok(&bytes, sizeof(float), 1, n))
        return SSM_FAIL(SSM_ERR_ARG);
    /* The scalars as PyTorch forms them (_single_tensor_adamw): the bias
     * corrections in double, step_size = lr / bc1, denominators
     * sqrt(v) / sqrt(bc2) + eps. */
    const double bc1 = 1.0 - pow(cfg->beta1, (double)step);
    const double bc2 = 1.0 - pow(cfg->beta2, (double)step);
    const float decay = (float)(1.0 - cfg->lr * cfg->weight_decay);
    const float w1 = (float)(1.0 - cfg->beta1);
    const float b2 = (float)cfg->beta2, w2 = (float)(1.0 - cfg->beta2);
    const float step_size = (float)(cfg->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)cfg->eps;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        const float p = param[i] * decay;
        const float mi = m[i] + w1 * (g - m[i]);
        const float vi = v[i] * b2 + w2 * g * g;
        const float den = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - step_size * (mi / den);
    }
    return SSM_OK;
}

#define CLIP_BLOCK 65536

ssm_status ssm_clip_grad_norm(float *const *grads, const int64_t *sizes,
                              int count, double max_norm, double *norm_out)
{
    if (!grads || !sizes || count < 1 || !isfinite(max_norm) || !(max_norm > 0.0))
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t nblk = 0, bytes;
    for (int i = 0; i < count; i++) {
        if (!grads[i] || sizes[i] < 1 || !ssmi_sizes_ok(&bytes, sizeof(float), 1, sizes[i]))
            return SSM_FAIL(SSM_ERR_ARG);
        const int64_t b = (sizes[i] + CLIP_BLOCK - 1) / CLIP_BLOCK;
        if (nblk > INT64_MAX - b)
            return SSM_FAIL(SSM_ERR_ARG);
        nblk += b;
    }
    /* Per-block sums of squares (blocks never straddle tensors), then
     * added in block order: fixed by the sizes alone. */
    double *part = ssmi_alloc((size_t)nblk, sizeof(double));
    int64_t *first = ssmi_alloc((size_t)count + 1, sizeof(int64_t));
    if (!part || !first) {
        ssmi_free(part);
        ssmi_free(first);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    first[0] = 0;
    for (int i = 0; i < count; i++)
        first[i + 1] = first[i] + (sizes[i] + CLIP_BLOCK - 1) / CLIP_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < nblk; j++) {
        int i = 0;
        while (first[i + 1] <= j)
            i++;
        const int64_t lo = (j - first[i]) * CLIP_BLOCK;
        const int64_t hi = lo + CLIP_BLOCK < sizes[i] ? lo + CLIP_BLOCK : sizes[i];
        const float *g = grads[i];
        double s = 0.0;
        for (int64_t e = lo; e < hi; e++)
            s += (double)g[e] * (double)g[e];
        part[j] = s;
    }
    double tot = 0.0;
    for (int64_t j = 0; j < nblk; j++)
        tot += part[j];
    ssmi_free(part);
    const double norm = sqrt(tot);
    if (norm_out)
        *norm_out = norm;
    if (!isfinite(norm)) {
        ssmi_free(first);
        return SSM_FAIL(SSM_ERR_NUMERIC);
    }
    if (norm > max_norm) {
        const float coef = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < count; i++) {
            float *g = grads[i];
            const int64_t n = sizes[i];
#pragma omp parallel for schedule(static)
            for (int64_t e = 0; e < n; e++)
                g[e] *= coef;
        }
    }
    ssmi_free(first);
    return SSM_OK;
}

ssm_status ssm_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total,
                                double lr_max, double lr_min, double *lr)
{
    if (!lr || step < 0 || warmup < 0 || total < warmup || !finite_nonneg(lr_max)
        || !finite_nonneg(lr_min) || lr_min > lr_max)
        return SSM_FAIL(SSM_ERR_ARG);
    if (step < warmup) {
        *lr = lr_max * (double)(step + 1) / (double)warmup;
    } else if (step >= total) {
        *lr = lr_min;
    } else {
        const double r = (double)(step - warmup) / (double)(total - warmup);
        *lr = lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(3.14159265358979323846 * r));
    }
    return SSM_OK;
}
