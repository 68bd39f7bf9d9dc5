/*
 * s4d_layer.c -- the S4D layer (Gu et al. 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models", sec. 2-3): H independent
 * channels, each a diagonal SSM x' = diag(lambda) x + B u, y = 2 Re(C x) + D u
 * (conjugate pairs, sec. 3.2 "2 Re"; REAL init: y = Re(C x) + D u).
 *
 * Both modes share ONE set of float discrete parameters: Ad, Bd from
 * ssm_discretize_diag in double, rounded to float complex, and Ce = 2C (or C
 * for REAL) rounded to float.  The recurrent mode runs ssm_diag_scan on them;
 * the convolution kernel (S4D eq. (6), the Vandermonde product) is built by
 * ssm_kernel_diag from those very floats promoted back to double, then
 * rounded once to float.  Otherwise the two modes would differ by the
 * rounding of Ad amplified over ~1/(dt |Re lambda|) steps, which at
 * dt = 1e-3 is far above float eps.
 *
 * The discrete parameters are recomputed eagerly by create/set_params, so
 * forward_state and step only read the layer.  The convolution mode keeps
 * the FFT plan and the kernel spectra of the last L in a cache behind a
 * mutex: entries are immutable and reference counted, so concurrent
 * forward calls on one layer share them without holding the lock during
 * the FFTs.
 */
#include <float.h>
#include <pthread.h>
#include <string.h>

#include "s4/conv_internal.h"
#include "scan/scan_internal.h"

/* Largest |Ad|^2 - 1 accepted (see discretize_all): 4 float epsilons. */
#define SSMI_S4D_AD_MARGIN (4.0 * (double)FLT_EPSILON)

typedef struct conv_cache {
    int64_t L;
    ssm_conv_plan *plan;
    ssm_conv_spectrum *spec;
    int refs;      /* forward calls using the entry right now */
    int retired;   /* no longer the layer's current entry */
} conv_cache;

struct ssm_s4d_layer {
    int64_t H, n;
    ssm_s4d_init init;
    ssm_disc disc;
    /* continuous parameters */
    double complex *lambda, *B, *C;   /* [H][n] */
    double *dt;                       /* [H] */
    float *D;                         /* [H] */
    /* discrete parameters shared by both modes */
    float complex *Ad, *Bd, *Ce;      /* [H][n] */
    pthread_mutex_t mu;               /* guards cache */
    conv_cache *cache;
};

static void cache_free(conv_cache *e)
{
    if (e == NULL) return;
    ssm_conv_spectrum_destroy(e->spec);
    ssm_conv_plan_destroy(e->plan);
    ssmi_free(e);
}

/* Called with mu held: drop the current entry (freed now or by its last
 * user). */
static void cache_retire_locked(ssm_s4d_layer *ly)
{
    conv_cache *e = ly->cache;
    ly->cache = NULL;
    if (e == NULL) return;
    if (e->refs == 0) cache_free(e);
    else e->retired = 1;
}

static int valid_disc(ssm_disc d)
{
    return d == SSM_ZOH || d == SSM_BILINEAR || d == SSM_EULER ||
           d == SSM_BACKWARD_EULER;
}

static int valid_init(ssm_s4d_init i)
{
    return i == SSM_S4D_LEGS || i == SSM_S4D_LIN || i == SSM_S4D_INV ||
           i == SSM_S4D_REAL;
}

/* Discrete float parameters of channels [0, H) from the given continuous
 * ones.  Nothing of the layer is written. */
static ssm_status discretize_all(const ssm_s4d_layer *ly,
                                 const double complex *lambda,
                                 const double *dt, const double complex *B,
                                 const double complex *C, float complex *Ad,
                                 float complex *Bd, float complex *Ce)
{
    const int64_t H = ly->H, n = ly->n;
    const double cscale = ly->init == SSM_S4D_REAL ? 1.0 : 2.0;
    double complex *ad = ssmi_alloc((size_t)(2 * n), sizeof *ad);
    if (ad == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    double complex *bd = ad + n;
    ssm_status st = SSM_OK;
    for (int64_t c = 0; c < H && st == SSM_OK; c++) {
        st = ssm_discretize_diag(ly->disc, n, lambda + c * n, B + c * n,
                                 dt[c], ad, bd);
        for (int64_t k = 0; k < n && st == SSM_OK; k++) {
            Ad[c * n + k] = (float complex)ad[k];
            Bd[c * n + k] = (float complex)bd[k];
            Ce[c * n + k] = (float complex)(cscale * C[c * n + k]);
        }
    }
    ssmi_free(ad);
    if (st != SSM_OK) return st;
    /* A parameter that overflows float would poison both modes. */
    if (!ssmi_finite_cf(Ad, H * n) || !ssmi_finite_cf(Bd, H * n) ||
        !ssmi_finite_cf(Ce, H * n))
        return SSM_FAIL(SSM_ERR_NUMERIC);
    /* The layer is a stable filter in both modes or it is refused here:
     * with |Ad| > 1 (forward Euler at dt |lambda|^2 > 2 |Re lambda|) the
     * outputs grow like |Ad|^t, the recurrent mode overflows to inf/NaN
     * after a while and the convolution kernel overflows for long L, so the
     * two modes could not agree.  The margin covers the float rounding of
     * a unit-modulus Ad (Re lambda = 0 with ZOH or bilinear): each part
     * rounds by at most 2^-24 relative, |Ad|^2 by at most ~2^-23. */
    for (int64_t i = 0; i < H * n; i++) {
        const double re = crealf(Ad[i]), im = cimagf(Ad[i]);
        if (re * re + im * im > 1.0 + SSMI_S4D_AD_MARGIN)
            return SSM_FAIL(SSM_ERR_NUMERIC);
    }
    return SSM_OK;
}

void ssm_s4d_layer_destroy(ssm_s4d_layer *layer)
{
    if (layer == NULL) return;
    /* No call may be running on a layer being destroyed. */
    cache_free(layer->cache);
    pthread_mutex_destroy(&layer->mu);
    ssmi_free(layer->lambda);
    ssmi_free(layer->B);
    ssmi_free(layer->C);
    ssmi_free(layer->dt);
    ssmi_free(layer->D);
    ssmi_free(layer->Ad);
    ssmi_free(layer->Bd);
    ssmi_free(layer->Ce);
    ssmi_free(layer);
}

ssm_status ssm_s4d_layer_create(ssm_s4d_layer **layer, int64_t channels,
                                int64_t n, ssm_s4d_init init, ssm_disc disc,
                                uint64_t seed)
{
    int64_t hn;
    if (layer == NULL) return SSM_FAIL(SSM_ERR_ARG);
    *layer = NULL;
    if (!ssmi_sizes_ok(&hn, sizeof(double complex), 2, channels, n) ||
        !valid_init(init) || !valid_disc(disc))
        return SSM_FAIL(SSM_ERR_ARG);
    ssm_s4d_layer *ly = ssmi_calloc(1, sizeof *ly);
    if (ly == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    if (pthread_mutex_init(&ly->mu, NULL) != 0) {
        ssmi_free(ly);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    ly->H = channels;
    ly->n = n;
    ly->init = init;
    ly->disc = disc;
    ly->lambda = ssmi_alloc((size_t)hn, sizeof(double complex));
    ly->B = ssmi_alloc((size_t)hn, sizeof(double complex));
    ly->C = ssmi_alloc((size_t)hn, sizeof(double complex));
    ly->dt = ssmi_alloc((size_t)channels, sizeof(double));
    ly->D = ssmi_alloc((size_t)channels, sizeof(float));
    ly->Ad = ssmi_alloc((size_t)hn, sizeof(float complex));
    ly->Bd = ssmi_alloc((size_t)hn, sizeof(float complex));
    ly->Ce = ssmi_alloc((size_t)hn, sizeof(float complex));
    if (!ly->lambda || !ly->B || !ly->C || !ly->dt || !ly->D || !ly->Ad ||
        !ly->Bd || !ly->Ce) {
        ssm_s4d_layer_destroy(ly);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    ssm_status st = ssm_s4d_lambda(init, n, ly->lambda);
    if (st != SSM_OK) {
        ssm_s4d_layer_destroy(ly);
        return st;
    }
    for (int64_t c = 1; c < channels; c++)
        memcpy(ly->lambda + c * n, ly->lambda, (size_t)n * sizeof(double complex));
    /* S4D sec. 3: dt log-uniform in [1e-3, 1e-1], B = 1, C ~ CN(0, 1)
     * (real and imaginary parts N(0, 1/2)).  Draw order, per channel:
     * dt, then (Re C, Im C) for each mode, then D. */
    ssmi_rng rng = {seed};
    const double lo = log(1e-3), hi = log(1e-1);
    const double s = sqrt(0.5);
    for (int64_t c = 0; c < channels; c++) {
        ly->dt[c] = exp(lo + (hi - lo) * ssmi_rng_uniform(&rng));
        for (int64_t k = 0; k < n; k++) {
            const double re = s * ssmi_rng_normal(&rng);
            const double im = s * ssmi_rng_normal(&rng);
            ly->C[c * n + k] = ssmi_cmplx(re, im);
            ly->B[c * n + k] = 1.0;
        }
        ly->D[c] = (float)ssmi_rng_normal(&rng);
    }
    st = discretize_all(ly, ly->lambda, ly->dt, ly->B, ly->C, ly->Ad, ly->Bd,
                        ly->Ce);
    if (st != SSM_OK) {
        ssm_s4d_layer_destroy(ly);
        return st;
    }
    *layer = ly;
    return SSM_OK;
}

ssm_status ssm_s4d_layer_set_params(ssm_s4d_layer *layer,
                                    const double complex *lambda,
                                    const double *dt, const double complex *B,
                                    const double complex *C, const float *D)
{
    if (layer == NULL) return SSM_FAIL(SSM_ERR_ARG);
    const int64_t H = layer->H, n = layer->n, hn = H * n;
    /* Validate everything before changing anything. */
    if (lambda != NULL) {
        if (!ssmi_finite_z(lambda, hn)) return SSM_FAIL(SSM_ERR_ARG);
        for (int64_t i = 0; i < hn; i++)
            if (creal(lambda[i]) > 0.0) return SSM_FAIL(SSM_ERR_ARG);
    }
    if (dt != NULL)
        for (int64_t c = 0; c < H; c++)
            if (!ssmi_dt_ok(dt[c])) return SSM_FAIL(SSM_ERR_ARG);
    if (B != NULL && !ssmi_finite_z(B, hn)) return SSM_FAIL(SSM_ERR_ARG);
    if (C != NULL && !ssmi_finite_z(C, hn)) return SSM_FAIL(SSM_ERR_ARG);
    if (D != NULL && !ssmi_finite_f(D, H)) return SSM_FAIL(SSM_ERR_ARG);

    if (lambda != NULL || dt != NULL || B != NULL || C != NULL) {
        /* New discrete parameters first; the layer changes only if they are
         * all good. */
        float complex *Ad = ssmi_alloc((size_t)(3 * hn), sizeof(float complex));
        if (Ad == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
        float complex *Bd = Ad + hn, *Ce = Ad + 2 * hn;
        ssm_status st = discretize_all(layer, lambda ? lambda : layer->lambda,
                                       dt ? dt : layer->dt, B ? B : layer->B,
                                       C ? C : layer->C, Ad, Bd, Ce);
        if (st != SSM_OK) {
            ssmi_free(Ad);
            return st;
        }
        if (lambda) memcpy(layer->lambda, lambda, (size_t)hn * sizeof *lambda);
        if (dt) memcpy(layer->dt, dt, (size_t)H * sizeof *dt);
        if (B) memcpy(layer->B, B, (size_t)hn * sizeof *B);
        if (C) memcpy(layer->C, C, (size_t)hn * sizeof *C);
        memcpy(layer->Ad, Ad, (size_t)hn * sizeof *Ad);
        memcpy(layer->Bd, Bd, (size_t)hn * sizeof *Bd);
        memcpy(layer->Ce, Ce, (size_t)hn * sizeof *Ce);
        ssmi_free(Ad);
        pthread_mutex_lock(&layer->mu);
        cache_retire_locked(layer);
        pthread_mutex_unlock(&layer->mu);
    }
    /* D is applied outside the kernel: the cache stays valid. */
    if (D != NULL) memcpy(layer->D, D, (size_t)H * sizeof *D);
    return SSM_OK;
}

ssm_status ssm_s4d_layer_get_params(const ssm_s4d_layer *layer,
                                    double complex *lambda, double *dt,
                                    double complex *B, double complex *C,
                                    float *D)
{
    if (layer == NULL) return SSM_FAIL(SSM_ERR_ARG);
    const int64_t H = layer->H, hn = H * layer->n;
    if (lambda) memcpy(lambda, layer->lambda, (size_t)hn * sizeof *lambda);
    if (dt) memcpy(dt, layer->dt, (size_t)H * sizeof *dt);
    if (B) memcpy(B, layer->B, (size_t)hn * sizeof *B);
    if (C) memcpy(C, layer->C, (size_t)hn * sizeof *C);
    if (D) memcpy(D, layer->D, (size_t)H * sizeof *D);
    return SSM_OK;
}

ssm_status ssm_s4d_layer_info(const ssm_s4d_layer *layer, int64_t *channels,
                              int64_t *n, ssm_s4d_init *init, ssm_disc *disc)
{
    if (layer == NULL) return SSM_FAIL(SSM_ERR_ARG);
    if (channels) *channels = layer->H;
    if (n) *n = layer->n;
    if (init) *init = layer->init;
    if (disc) *disc = layer->disc;
    return SSM_OK;
}

ssm_status ssm_s4d_layer_get_discrete(const ssm_s4d_layer *layer,
                                      float complex *Ad, float complex *Bd,
                                      float complex *Ceff)
{
    if (layer == NULL) return SSM_FAIL(SSM_ERR_ARG);
    const size_t hn = (size_t)(layer->H * layer->n);
    if (Ad) memcpy(Ad, layer->Ad, hn * sizeof *Ad);
    if (Bd) memcpy(Bd, layer->Bd, hn * sizeof *Bd);
    if (Ceff) memcpy(Ceff, layer->Ce, hn * sizeof *Ceff);
    return SSM_OK;
}

/* K [H][L] of the layer: ssm_kernel_diag on the float discrete parameters
 * promoted to double, rounded to float; parallel over channels. */
static ssm_status build_kernel(const ssm_s4d_layer *ly, int64_t L, float *K)
{
    const int64_t H = ly->H, n = ly->n;
    int fail = 0;   /* 0, or the first failing status seen by any thread */
    /* Per thread: the promoted parameters (3n complex) and a double kernel
     * row (L); sizes checked by the callers (n by create, L in bytes). */
    const size_t pbytes = (size_t)(3 * n) * sizeof(double complex);
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, pbytes + (size_t)L * sizeof(double), H));
#pragma omp parallel num_threads(sc.nt)
    {
        double complex *p = ssmi_scratch_mine(&sc);
        double *kd = (double *)((unsigned char *)p + pbytes);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < H; c++) {
            for (int64_t k = 0; k < n; k++) {
                p[k] = (double complex)ly->Ad[c * n + k];
                p[n + k] = (double complex)ly->Bd[c * n + k];
                p[2 * n + k] = (double complex)ly->Ce[c * n + k];
            }
            ssm_status st = ssm_kernel_diag(n, p, p + n, p + 2 * n, L, kd);
            /* Every |Ad| <= 1 (to rounding) was checked when the parameters
             * were set, so K cannot grow; should it still overflow (huge
             * C Bd), the values propagate like the recurrent mode's
             * instead of failing one mode only. */
            if (st == SSM_ERR_NUMERIC)
                st = SSM_OK;
            if (st != SSM_OK) {
#pragma omp atomic write
                fail = (int)st;
                continue;
            }
            for (int64_t t = 0; t < L; t++) K[c * L + t] = (float)kd[t];
        }
    }
    ssmi_scratch_free(&sc);
    return fail ? SSM_FAIL((ssm_status)fail) : SSM_OK;
}

ssm_status ssm_s4d_layer_kernel(const ssm_s4d_layer *layer, int64_t L,
                                float *K)
{
    int64_t t;
    if (layer == NULL || K == NULL ||
        !ssmi_sizes_ok(&t, sizeof(float), 2, layer->H, L) ||
        !ssmi_sizes_ok(&t, sizeof(double), 1, L))
        return SSM_FAIL(SSM_ERR_ARG);
    return build_kernel(layer, L, K);
}

/* Build a cache entry for L (plan, kernel, spectra). */
static ssm_status cache_build(const ssm_s4d_layer *ly, int64_t L,
                              conv_cache **out)
{
    *out = NULL;
    conv_cache *e = ssmi_calloc(1, sizeof *e);
    if (e == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    e->L = L;
    ssm_status st = ssm_conv_plan_create(&e->plan, ly->H, L);
    if (st == SSM_OK) {
        float *K = ssmi_alloc((size_t)(ly->H * L), sizeof *K);
        if (K == NULL) st = SSM_FAIL(SSM_ERR_NOMEM);
        if (st == SSM_OK) st = build_kernel(ly, L, K);
        if (st == SSM_OK) st = ssm_conv_spectrum_create(&e->spec, e->plan, K);
        ssmi_free(K);
    }
    if (st != SSM_OK) {
        cache_free(e);
        return st;
    }
    *out = e;
    return SSM_OK;
}

static ssm_status forward_conv(ssm_s4d_layer *ly, int64_t batch, int64_t L,
                               const float *u, float *y)
{
    conv_cache *e;
    pthread_mutex_lock(&ly->mu);
    if (ly->cache == NULL || ly->cache->L != L) {
        conv_cache *ne = NULL;
        ssm_status st = cache_build(ly, L, &ne);
        if (st != SSM_OK) {
            pthread_mutex_unlock(&ly->mu);
            return st;
        }
        cache_retire_locked(ly);
        ly->cache = ne;
    }
    e = ly->cache;
    e->refs++;
    pthread_mutex_unlock(&ly->mu);

    ssm_status st = ssm_conv_execute_spectrum(e->plan, e->spec, batch, ly->D,
                                              u, y);

    pthread_mutex_lock(&ly->mu);
    e->refs--;
    if (e->retired && e->refs == 0) cache_free(e);
    pthread_mutex_unlock(&ly->mu);
    return st;
}

ssm_status ssm_s4d_layer_forward(ssm_s4d_layer *layer, ssm_mode mode,
                                 int64_t batch, int64_t L, const float *u,
                                 float *y)
{
    int64_t t;
    if (layer == NULL || u == NULL || y == NULL ||
        (mode != SSM_MODE_CONV && mode != SSM_MODE_RECURRENT) ||
        !ssmi_sizes_ok(&t, sizeof(float), 3, batch, layer->H, L))
        return SSM_FAIL(SSM_ERR_ARG);
    if (mode == SSM_MODE_RECURRENT)
        return ssmi_diag_scan_unchecked(batch, layer->H, layer->n, L, layer->Ad,
                                       layer->Bd, layer->Ce, layer->D, u,
                                       NULL, NULL, y);
    return forward_conv(layer, batch, L, u, y);
}

ssm_status ssm_s4d_layer_forward_state(const ssm_s4d_layer *layer,
                                       const float complex *x0, float complex *x_last,
                                       int64_t batch, int64_t L,
                                       const float *u, float *y)
{
    int64_t t;
    if (layer == NULL || u == NULL || y == NULL ||
        !ssmi_sizes_ok(&t, sizeof(float), 3, batch, layer->H, L) ||
        !ssmi_sizes_ok(&t, sizeof(float complex), 3, batch, layer->H, layer->n))
        return SSM_FAIL(SSM_ERR_ARG);
    return ssmi_diag_scan_unchecked(batch, layer->H, layer->n, L, layer->Ad,
                                   layer->Bd, layer->Ce, layer->D, u, x0,
                                   x_last, y);
}

ssm_status ssm_s4d_layer_step(const ssm_s4d_layer *layer, float complex *x,
                              int64_t batch, const float *u, float *y)
{
    int64_t t;
    if (layer == NULL || x == NULL || u == NULL || y == NULL ||
        !ssmi_sizes_ok(&t, sizeof(float complex), 3, batch, layer->H, layer->n))
        return SSM_FAIL(SSM_ERR_ARG);
    /* No allocation: the streaming step of ssm_diag_step. */
    ssmi_diag_step_unchecked(batch, layer->H, layer->n, x, layer->Ad, layer->Bd,
                             layer->Ce, layer->D, u, y);
    return SSM_OK;
}
