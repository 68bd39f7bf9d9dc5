/*
 * s4d_load.c -- an S4D layer from the parameters of the s4 repository's
 * standalone S4D module (state-spaces/s4, models/s4/s4d.py; S4D paper,
 * Gu et al. 2022, sec. 3).  That module computes its kernel as
 *   dt = exp(log_dt),  A = -exp(log_A_real) + i A_imag,  C = view_as_complex(C),
 *   K[l] = 2 Re( sum_n C_n (exp(dt A_n) - 1) / A_n exp(dt A_n l) ),
 * i.e. the ZOH discretization with B = 1 and the conjugate-pair factor 2,
 * which is what ssm_s4d_layer computes for a complex init.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

/* Read prefix+name as float after checking its shape exactly. */
static ssm_status read_param(const ssm_tensor_file *f, const char *prefix,
                             const char *name, int ndim, const int64_t *shape,
                             float **out)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    char *full = malloc(pl + nl + 1);
    if (!full)
        return SSM_FAIL(SSM_ERR_NOMEM);
    memcpy(full, prefix, pl);
    memcpy(full + pl, name, nl + 1);
    ssm_tensor_info info;
    ssm_status st = ssm_tensor_file_find(f, full, &info);
    if (st == SSM_OK && info.ndim != ndim)
        st = SSM_FAIL(SSM_ERR_FORMAT);
    for (int d = 0; st == SSM_OK && d < ndim; d++)
        if (shape[d] >= 0 && info.shape[d] != shape[d])
            st = SSM_FAIL(SSM_ERR_FORMAT);
    if (st == SSM_OK && info.numel < 1)
        st = SSM_FAIL(SSM_ERR_FORMAT);
    *out = NULL;
    if (st == SSM_OK) {
        *out = malloc((size_t)info.numel * sizeof **out);
        st = *out ? ssm_tensor_file_read_f32(f, full, *out, info.numel)
                  : SSM_FAIL(SSM_ERR_NOMEM);
    }
    free(full);
    return st;
}

ssm_status ssm_s4d_layer_load(ssm_s4d_layer **layer, const ssm_tensor_file *file,
                              const char *prefix, ssm_disc disc)
{
    if (!layer)
        return SSM_FAIL(SSM_ERR_ARG);
    *layer = NULL;
    if (!file || (int)disc < SSM_ZOH || (int)disc > SSM_BACKWARD_EULER)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!prefix)
        prefix = "";
    float *log_dt = NULL, *log_a = NULL, *a_im = NULL, *c = NULL, *d = NULL;
    double *dt = NULL;
    ssm_cdouble *lam = NULL, *cc = NULL, *bb = NULL;
    ssm_s4d_layer *l = NULL;
    ssm_tensor_info info;
    ssm_status st = SSM_OK;
    /* H from log_dt, N from log_A_real; the rest must agree */
    char *name = malloc(strlen(prefix) + 32);
    if (!name)
        return SSM_FAIL(SSM_ERR_NOMEM);
    strcpy(name, prefix);
    strcat(name, "kernel.log_A_real");
    st = ssm_tensor_file_find(file, name, &info);
    free(name);
    if (st != SSM_OK)
        return st;
    if (info.ndim != 2 || info.shape[0] < 1 || info.shape[1] < 1)
        return SSM_FAIL(SSM_ERR_FORMAT);
    const int64_t H = info.shape[0], N = info.shape[1];
    const int64_t sh_h[1] = {H}, sh_hn[2] = {H, N}, sh_c[3] = {H, N, 2};
    if (!ssmi_sizes_ok(NULL, 2 * sizeof(double), 2, H, N))
        return SSM_FAIL(SSM_ERR_FORMAT);
    const int64_t HN = H * N;
    if ((st = read_param(file, prefix, "kernel.log_dt", 1, sh_h, &log_dt)) != SSM_OK ||
        (st = read_param(file, prefix, "kernel.log_A_real", 2, sh_hn, &log_a)) != SSM_OK ||
        (st = read_param(file, prefix, "kernel.A_imag", 2, sh_hn, &a_im)) != SSM_OK ||
        (st = read_param(file, prefix, "kernel.C", 3, sh_c, &c)) != SSM_OK ||
        (st = read_param(file, prefix, "D", 1, sh_h, &d)) != SSM_OK)
        goto done;
    dt = malloc((size_t)H * sizeof *dt);
    lam = malloc((size_t)HN * sizeof *lam);
    cc = malloc((size_t)HN * sizeof *cc);
    bb = malloc((size_t)HN * sizeof *bb);
    if (!dt || !lam || !cc || !bb) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    for (int64_t h = 0; h < H; h++)
        dt[h] = exp((double)log_dt[h]);
    for (int64_t k = 0; k < HN; k++) {
        lam[k] = ssmi_cmplx(-exp((double)log_a[k]), (double)a_im[k]);
        cc[k] = ssmi_cmplx((double)c[2 * k], (double)c[2 * k + 1]);
        bb[k] = 1.0;
    }
    st = ssm_s4d_layer_create(&l, H, N, SSM_S4D_LIN, disc, 0);
    if (st != SSM_OK)
        goto done;
    st = ssm_s4d_layer_set_params(l, lam, dt, bb, cc, d);
    /* set_params refuses non-finite or unstable values as arguments; coming
     * from a file they make the file unusable */
    if (st == SSM_ERR_ARG)
        st = SSM_FAIL(SSM_ERR_FORMAT);
done:
    free(log_dt); free(log_a); free(a_im); free(c); free(d);
    free(dt); free(lam); free(cc); free(bb);
    if (st != SSM_OK)
        ssm_s4d_layer_destroy(l);
    else
        *layer = l;
    return st;
}
