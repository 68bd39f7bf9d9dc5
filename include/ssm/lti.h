/*
 * ssm/lti.h -- dense LTI recurrences: the recurrent mode of a dense
 * single-input HiPPO/S4 system (Ad, Bd from ssm_discretize), the twin of the
 * convolution mode K[l] = C Ad^l Bd (ssm_kernel_dense + ssm_conv_execute).
 *
 * Shapes (slowest first): Ad [N][N] row-major; Bd [N]; C [O][N]; D [O];
 * u [B][L]; x0, x_last [B][N]; y [B][O][L].
 *   B batch, N state size, O readout rows (outputs), L length.
 */
#ifndef SSM_LTI_H
#define SSM_LTI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dense real LTI recurrence, per batch row b and step t (HiPPO, Gu et al.
 * 2020, eq. (4) discretized; S4, Gu et al. 2022, eq. (3)):
 *   h_t       = Ad h_{t-1} + Bd u[b][t]          (h_{-1} = h0[b], or 0)
 *   y[b][o][t] = C[o] . h_t + D[o] u[b][t]       (D NULL: no D term)
 * With h0 = 0 this equals the causal convolution
 *   y[b][o][t] = sum_{s<=t} K_o[s] u[b][t-s] + D[o] u[b][t],
 *   K_o[s] = C[o] Ad^s Bd            (ssm_kernel_dense with C = row o).
 *
 * The state and every dot product are carried in double inside a call
 * (rounded to float only in y and h_last), each in a fixed order (state
 * column j = 0..N-1 into h, state index i = 0..N-1 into y), so the result
 * does not depend on the number of OpenMP threads, bit for bit; batch rows
 * run in parallel when there is enough work.
 *
 * Ad, Bd, C, u, y: required.  D, h0, h_last: may be NULL.  h0 == h_last is
 * allowed (the state is carried in place); y must not overlap any input.
 * Errors: SSM_ERR_ARG (NULL required pointer, a size < 1, a size product
 * that overflows int64_t, non-finite Ad, Bd, C or D), SSM_ERR_NOMEM.
 * u and h0 are sequence data: never inspected.  Thread-safe (no shared
 * state); allocates O(N*N + N*O) scratch per call. */
SSM_API ssm_status ssm_lti_scan(int64_t batch, int64_t n, int64_t nout,
                                int64_t L, const float *Ad, const float *Bd,
                                const float *C, const float *D,
                                const float *u, const float *h0,
                                float *h_last, float *y);

/* One step of the same recurrence for streaming: h [B][N] is read and
 * updated in place, u [B], y [B][O].  Bit for bit ssm_lti_scan with L = 1
 * and h0 = h_last = h.  No allocation for n <= 1024 (the new state, n
 * doubles, is kept on the stack); a larger n allocates n doubles per call
 * (SSM_ERR_NOMEM possible).  Errors and thread-safety as ssm_lti_scan. */
SSM_API ssm_status ssm_lti_step(int64_t batch, int64_t n, int64_t nout,
                                float *h, const float *Ad, const float *Bd,
                                const float *C, const float *D,
                                const float *u, float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_LTI_H */
