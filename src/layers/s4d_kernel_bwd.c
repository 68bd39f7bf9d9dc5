/*
 * s4d_kernel_bwd.c -- gradients of the S4D Vandermonde kernel (Gu et al.
 * 2022, "On the Parameterization and Initialization of Diagonal State Space
 * Models", eq. (5) and Table 1) with respect to lambda, B, C and dt, through
 * the ZOH and the GBT (bilinear, Euler, backward Euler) discretizations.
 *
 * Forward (ssm_discretize_diag then ssm_kernel_diag), per mode k, z = dt lambda:
 *   K[l] = Re sum_k C_k Bd_k Ad_k^l,   Bd = beta(lambda, dt) B
 *   ZOH:        Ad = e^z,                     beta = dt phi1(z)
 *   GBT(alpha): Ad = (1 + (1-alpha) z) q,     beta = dt q,   q = 1/(1 - alpha z)
 * With S_k = sum_l dK[l] Ad_k^l and S'_k = sum_l l dK[l] Ad_k^(l-1)
 * (Horner, both at once), Loss = sum_l dK[l] K[l] = Re sum_k f_k,
 * f_k = C_k Bd_k S_k, holomorphic in each complex parameter p, so
 * dLoss/dRe p + i dLoss/dIm p = conj(df/dp):
 *   dC = conj(Bd S),  dB = conj(C beta S),
 *   dlambda = conj(C B beta_lambda S + C Bd S' Ad_lambda),
 *   ddt = Re sum_k (C B beta_dt S + C Bd S' Ad_dt)
 * with  ZOH: Ad_lambda = dt Ad, Ad_dt = lambda Ad, beta_lambda = dt^2 phi1'(z),
 *            beta_dt = e^z (d/dz of z phi1(z));
 *       GBT: Ad_lambda = dt q^2, Ad_dt = lambda q^2, beta_lambda = alpha dt^2 q^2,
 *            beta_dt = q^2.
 */
#include <string.h>

#include "internal.h"

/* phi1(z) = (e^z - 1)/z as src/s4/discretize.c computes it (copied: that
 * file's helper is static): Taylor series for |z| < 1/4, else expm1 and
 * sin without cancellation. */
static double complex kb_phi1(double complex z)
{
    const double x = creal(z), y = cimag(z);
    if (x * x + y * y < 0.0625) {
        double complex h = 1.0;
        for (int k = 18; k >= 2; k--)
            h = 1.0 + z * h / (double)k;
        return h;
    }
    const double sh = sin(0.5 * y);
    return ssmi_cmplx(expm1(x) * cos(y) - 2.0 * sh * sh, exp(x) * sin(y)) / z;
}

/* phi1'(z) = sum_k (k+1) z^k / (k+2)!  for |z| < 1/4 (19 terms), else
 * (e^z - phi1(z)) / z. */
static double complex kb_dphi1(double complex z)
{
    const double x = creal(z), y = cimag(z);
    if (x * x + y * y < 0.0625) {
        /* c_k = (k+1)/(k+2)!, Horner from k = 18 down */
        double f = 1.0;   /* (k+2)! built up: start at 2! */
        double c[19];
        for (int k = 0; k <= 18; k++) {
            f *= (double)(k + 2);
            c[k] = (double)(k + 1) / f;
        }
        double complex h = c[18];
        for (int k = 17; k >= 0; k--)
            h = c[k] + z * h;
        return h;
    }
    return (cexp(z) - kb_phi1(z)) / z;
}

ssm_status ssm_s4d_kernel_backward(ssm_disc method, int64_t n,
                                   const ssm_cdouble *lambda,
                                   const ssm_cdouble *B, const ssm_cdouble *C,
                                   double dt, int64_t L, const double *dK,
                                   ssm_cdouble *dlambda, ssm_cdouble *dB,
                                   ssm_cdouble *dC, double *ddt)
{
    if (!lambda || !B || !C || !dK || !ssmi_dt_ok(dt)
        || !ssmi_sizes_ok(NULL, sizeof(double complex), 1, n)
        || !ssmi_sizes_ok(NULL, sizeof(double), 1, L)
        || (method != SSM_ZOH && method != SSM_BILINEAR && method != SSM_EULER
            && method != SSM_BACKWARD_EULER))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_finite_z(lambda, n) || !ssmi_finite_z(B, n) || !ssmi_finite_z(C, n))
        return SSM_FAIL(SSM_ERR_ARG);
    const double alpha = method == SSM_BILINEAR ? 0.5 : method == SSM_EULER ? 0.0 : 1.0;
    double *fdt = ssmi_alloc((size_t)n, sizeof(double));
    if (!fdt)
        return SSM_FAIL(SSM_ERR_NOMEM);
    int bad = 0;
    /* Modes are independent: one writer per mode; ddt summed afterwards in
     * mode order. */
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int64_t k = 0; k < n; k++) {
        const double complex lam = lambda[k], z = dt * lam;
        double complex Ad, beta, Ad_l, Ad_t, beta_l, beta_t;
        if (method == SSM_ZOH) {
            Ad = cexp(z);
            beta = dt * kb_phi1(z);
            Ad_l = dt * Ad;
            Ad_t = lam * Ad;
            beta_l = (dt * dt) * kb_dphi1(z);
            beta_t = Ad;
        } else {
            const double complex den = 1.0 - alpha * z;
            if (den == 0.0) {
                bad = 1;
                continue;
            }
            const double complex q = 1.0 / den, q2 = q * q;
            Ad = (1.0 + (1.0 - alpha) * z) * q;
            beta = dt * q;
            Ad_l = dt * q2;
            Ad_t = lam * q2;
            beta_l = (alpha * dt * dt) * q2;
            beta_t = q2;
        }
        /* Horner for S = sum_l dK[l] Ad^l and its derivative in Ad. */
        double complex S = dK[L - 1], dS = 0.0;
        for (int64_t l = L - 2; l >= 0; l--) {
            dS = dS * Ad + S;
            S = S * Ad + dK[l];
        }
        const double complex Bd = beta * B[k], CB = C[k] * B[k];
        if (dC)
            dC[k] = conj(Bd * S);
        if (dB)
            dB[k] = conj(C[k] * beta * S);
        if (dlambda)
            dlambda[k] = conj(CB * beta_l * S + C[k] * Bd * dS * Ad_l);
        fdt[k] = creal(CB * beta_t * S + C[k] * Bd * dS * Ad_t);
        if (!isfinite(creal(S)) || !isfinite(cimag(S)) || !isfinite(fdt[k]))
            bad = 1;
    }
    if (ddt && !bad) {
        double s = 0.0;
        for (int64_t k = 0; k < n; k++)
            s += fdt[k];
        *ddt = s;
    }
    ssmi_free(fdt);
    return bad ? SSM_FAIL(SSM_ERR_NUMERIC) : SSM_OK;
}
