/*
 * ssm/layer.h -- the S4D layer (Gu et al. 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models"): H independent channels,
 * each a diagonal SSM with n complex modes, usable without knowing the math.
 *
 * Shapes (C order, slowest first): lambda, B, C [H][N]; dt, D [H];
 * u, y [B][H][L]; state x [B][H][N] (float complex).
 *
 * Per channel c the layer is the continuous system
 *   x' = diag(lambda_c) x + B_c u,   y = Re(Ce_c x) + D_c u,
 * with Ce = 2 C for the complex inits (LEGS, LIN, INV: each mode stands for
 * a conjugate pair of a real state of size 2n, S4D sec. 3.2) and Ce = C for
 * REAL (a real state of size n).  It is discretized with step dt_c by the
 * layer's method (ssm_discretize_diag), and the discrete Ad, Bd, Ce are
 * rounded to float once: BOTH modes use those same floats (the convolution
 * kernel is ssm_kernel_diag of the floats promoted to double, rounded to
 * float), so the convolution and recurrent modes agree to float rounding
 * (normwise ~1e-6 at L = 16384) at every dt.
 *
 * Stability.  The layer must be a stable filter: every discrete |Ad| <= 1
 * (up to the float rounding of unit-modulus values, |Ad|^2 <= 1 + 4
 * FLT_EPSILON).  create and set_params refuse parameters that break this
 * with SSM_ERR_NUMERIC (set_params then leaves the layer unchanged), in
 * particular SSM_EULER at dt |lambda|^2 > 2 |Re lambda|: forward Euler is
 * stable only for small dt, and with the complex inits (LIN, LEGS, INV),
 * whose |Im lambda| grows with n, almost never.  So for finite inputs both
 * modes give finite outputs, and neither reports an error the other does
 * not.  Non-finite inputs propagate (NaN in, NaN out) in both modes.
 *
 * Threads: forward, forward_state, step, get_params, get_discrete, kernel
 * and info may run concurrently on one layer (forward's cache of the
 * kernel spectra is behind a mutex and shared by concurrent calls).
 * set_params and destroy need exclusive use of the layer: no other call on
 * it may run at the same time.
 */
#ifndef SSM_LAYER_H
#define SSM_LAYER_H

#include "common.h"
#include "hippo.h"
#include "s4.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_s4d_layer ssm_s4d_layer;

/* New layer of `channels` channels and n modes each: lambda =
 * ssm_s4d_lambda(init, n) for every channel, and from the seeded generator
 * (per channel in this order): dt log-uniform in [1e-3, 1e-1], C ~ complex
 * N(0, 1) (real and imaginary parts N(0, 1/2)), D ~ N(0, 1); B = 1.
 * disc: any ssm_disc (ZOH and BILINEAR are the S4D choices; EULER is only
 * stable for small dt, see Stability above).  The same seed gives the same
 * layer.
 * Errors: SSM_ERR_ARG (layer NULL, channels or n < 1, overflow, bad init or
 * disc), SSM_ERR_NOMEM, SSM_ERR_LAPACK (LEGS init), SSM_ERR_NUMERIC (the
 * drawn dt make an unstable discretization, some |Ad| > 1: EULER).
 * *layer is NULL on error. */
SSM_API ssm_status ssm_s4d_layer_create(ssm_s4d_layer **layer, int64_t channels,
                                        int64_t n, ssm_s4d_init init,
                                        ssm_disc disc, uint64_t seed);
SSM_API void ssm_s4d_layer_destroy(ssm_s4d_layer *layer);   /* NULL is a no-op */

/* Set any subset of the continuous parameters (NULL: unchanged): lambda,
 * B, C [H][N] (C is the half-system C; the layer applies the 2 of
 * conjugate pairs itself), dt, D [H].  Checks: lambda finite with
 * Re(lambda) <= 0 (a stable layer), dt finite and > 0, B, C, D finite.
 * All or nothing: on any error the layer is unchanged.  Recomputes the
 * discrete parameters and drops the cached kernel (D alone keeps it).
 * Errors: SSM_ERR_ARG (layer NULL, a check above), SSM_ERR_NOMEM,
 * SSM_ERR_NUMERIC (singular GBT step, discrete values overflowing float,
 * or an unstable discretization: some |Ad| > 1, see Stability above).
 * Not thread-safe on one layer (see above). */
SSM_API ssm_status ssm_s4d_layer_set_params(ssm_s4d_layer *layer,
                                            const ssm_cdouble *lambda,
                                            const double *dt,
                                            const ssm_cdouble *B,
                                            const ssm_cdouble *C,
                                            const float *D);

/* Read any subset back (NULL: not wanted); shapes as set_params.
 * Errors: SSM_ERR_ARG (layer NULL). */
SSM_API ssm_status ssm_s4d_layer_get_params(const ssm_s4d_layer *layer,
                                            ssm_cdouble *lambda, double *dt,
                                            ssm_cdouble *B,
                                            ssm_cdouble *C, float *D);

/* Sizes and methods (any output may be NULL).  Errors: SSM_ERR_ARG. */
SSM_API ssm_status ssm_s4d_layer_info(const ssm_s4d_layer *layer,
                                      int64_t *channels, int64_t *n,
                                      ssm_s4d_init *init, ssm_disc *disc);

/* The float discrete parameters both modes use (any output may be NULL):
 * Ad, Bd, Ceff [H][N], Ceff = 2C (complex inits) or C (REAL), so that
 * ssm_diag_scan(batch, H, n, L, Ad, Bd, Ceff, D, ...) is the recurrent
 * mode exactly.  Errors: SSM_ERR_ARG (layer NULL). */
SSM_API ssm_status ssm_s4d_layer_get_discrete(const ssm_s4d_layer *layer,
                                              ssm_cfloat *Ad,
                                              ssm_cfloat *Bd,
                                              ssm_cfloat *Ceff);

/* The convolution kernel K [H][L] of the convolution mode (the bytes the
 * layer convolves with).  O(H n L), parallel over channels.
 * Errors: SSM_ERR_ARG (NULL, L < 1, overflow), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_s4d_layer_kernel(const ssm_s4d_layer *layer, int64_t L,
                                        float *K);

/* y = layer(x) over [batch][H][L] from the zero state.
 *   SSM_MODE_CONV: FFT convolution with the kernel of length L.  The FFT
 *     plan and kernel spectra of the last L are cached in the layer and
 *     rebuilt when L or the parameters change (first call for an L costs
 *     the kernel, O(H n L), and its FFTs); the cache holds H (N/2+1)
 *     complex floats, N ~ 2L (about 8 H L bytes) until the layer is
 *     destroyed or L changes.  L must satisfy 2L <= INT_MAX.
 *   SSM_MODE_RECURRENT: ssm_diag_scan on the discrete parameters, O(B H n L).
 * The two modes agree to float rounding, not bit for bit.
 * Errors: SSM_ERR_ARG (NULL, bad mode, batch or L < 1, overflow, L too
 * large for the FFT in conv mode), SSM_ERR_NOMEM, SSM_ERR_FFTW.
 * Concurrent calls on one layer are safe. */
SSM_API ssm_status ssm_s4d_layer_forward(ssm_s4d_layer *layer, ssm_mode mode,
                                         int64_t batch, int64_t L,
                                         const float *x, float *y);

/* Recurrent forward with explicit state: h0 [batch][H][N] or NULL (zeros),
 * h_last [batch][H][N] or NULL (not wanted); h0 == h_last allowed (state
 * carried in place), so a sequence may be fed in pieces: the pieces give
 * the bytes of the whole.  With h0 NULL: the bytes of forward in
 * SSM_MODE_RECURRENT.  Errors: SSM_ERR_ARG (NULL, sizes < 1, overflow),
 * SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_s4d_layer_forward_state(const ssm_s4d_layer *layer,
                                               const ssm_cfloat *h0,
                                               ssm_cfloat *h_last,
                                               int64_t batch, int64_t L,
                                               const float *x, float *y);

/* One sample per channel (streaming inference): h [batch][H][N] updated in
 * place (start from zeros), x, y [batch][H].  L steps give bit for bit the
 * recurrent forward of length L.  No allocation.  Errors: SSM_ERR_ARG
 * (NULL, batch < 1, overflow).  Reentrant. */
SSM_API ssm_status ssm_s4d_layer_step(const ssm_s4d_layer *layer, ssm_cfloat *h,
                                      int64_t batch, const float *x,
                                      float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_LAYER_H */
