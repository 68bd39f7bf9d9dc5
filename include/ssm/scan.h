/*
 * ssm/scan.h -- the selective scan (Mamba S6, Gu and Dao 2023) on CPUs.
 *
 * Shapes (Mamba's layout): u, delta, z, y [B][D][L]; A [D][N];
 * B, C [B][G][N][L]; D, delta_bias [D]; h0, h_last [B][D][N].
 */
#ifndef SSM_SCAN_H
#define SSM_SCAN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_scan_args {
    int64_t batch, dim, dstate, len;
    int64_t ngroups;          /* B and C shared by dim/ngroups channels; >= 1, divides dim */
    const float *u;           /* batch*dim*len */
    const float *delta;       /* batch*dim*len */
    const float *A;           /* dim*dstate */
    const float *B;           /* batch*ngroups*dstate*len */
    const float *C;           /* batch*ngroups*dstate*len */
    const float *D;           /* dim, or NULL */
    const float *z;           /* batch*dim*len, or NULL */
    const float *delta_bias;  /* dim, or NULL */
    int delta_softplus;       /* nonzero: dt = softplus(delta + bias), else dt = delta + bias */
    const float *h0;          /* batch*dim*dstate initial state, or NULL for zeros */
    float *y;                 /* batch*dim*len output */
    float *h_last;            /* batch*dim*dstate final state, or NULL */
} ssm_scan_args;

/* The selective scan of Mamba (Gu and Dao 2023, Algorithm 2, eq. 2a-2b:
 * ZOH for A, Euler for B, as selective_scan_fn), plus an initial state.
 * For channel d in group g = d / (dim/ngroups), state n, step t:
 *   h = exp(dt*A[d,n]) * h + dt * B[b,g,n,t] * u[b,d,t]
 *   y[b,d,t] = sum_n C[b,g,n,t] * h  (+ D[d]*u[b,d,t]) (* silu(z[b,d,t]))
 * softplus(x) = log1p(exp(x)) for x <= 20, x above (as Mamba's kernels).
 * Output does not depend on the number of OpenMP threads (bit for bit).
 *
 * Shapes: see ssm_scan_args (u, delta, z, y [B][D][L]; A [D][N];
 * B, C [B][G][N][L]; D, delta_bias [D]; h0, h_last [B][D][N]).
 * Aliasing: h0 == h_last is allowed (state carried in place); no other
 * output may overlap an input.
 * Errors: SSM_ERR_ARG (args, u, delta, A, B, C or y NULL; a size < 1;
 * ngroups not dividing dim; a size product overflowing int64_t or size_t),
 * SSM_ERR_NOMEM (workspace).  Sequence data and A are never inspected:
 * NaN/Inf propagate like in any float code.
 * Numerics: float throughout, with the library's own vectorized exp (max
 * error < 1 ulp, mean error ~ -0.01 ulp) and explicit fma; normwise error
 * ~1e-7 relative to a double-precision loop for Mamba-like ranges.  exp
 * underflows to 0 below dt*A ~ -87.7 and gives +inf above dt*A = 88.
 * Work: OpenMP over (batch, channel blocks); few channels with a long
 * sequence (batch*dim <= 8, len >= 2048) also run in parallel over time
 * chunks (at most 2048 chunks, length from len only).  AVX-512F, AVX2+FMA or
 * portable kernels, chosen at run time (results agree across them to
 * rounding; on one machine they are reproducible bit for bit).
 * Memory: per-thread tiles, plus O(batch*dim*dstate) carries on the chunked
 * path; allocates, so not async-signal-safe.
 * Thread safety: reentrant; calls on different outputs may run at once. */
SSM_API ssm_status ssm_selective_scan(const ssm_scan_args *args);

/* One step of the same recurrence for streaming inference (Mamba's
 * selective_state_update); h (batch*dim*dstate) is read and updated in
 * place; u, delta, z, y: batch*dim; B, C: batch*ngroups*dstate; D, z,
 * delta_bias may be NULL as in the scan.
 * Bit for bit the results of ssm_selective_scan with len = 1 (so L steps
 * equal one scan of length L bit for bit on the channel-parallel path, and to
 * rounding where the scan takes its time-chunked path).
 * Errors: SSM_ERR_ARG (h, u, delta, A, B, C or y NULL; a size < 1; ngroups
 * not dividing dim; overflow), SSM_ERR_NOMEM.  Reentrant. */
SSM_API ssm_status ssm_selective_step(int64_t batch, int64_t dim,
                                      int64_t dstate, int64_t ngroups,
                                      float *h, const float *u,
                                      const float *delta, const float *A,
                                      const float *B, const float *C,
                                      const float *D, const float *z,
                                      const float *delta_bias,
                                      int delta_softplus, float *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_SCAN_H */
