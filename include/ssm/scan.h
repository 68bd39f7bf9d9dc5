/*
 * ssm/scan.h -- recurrences (the recurrent mode): the selective scan
 * (Mamba S6, Gu and Dao 2023) and the diagonal LTI scan (S4D).
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

/* Arguments of ssm_selective_scan, filled by the caller (designated
 * initializers recommended; every pointer not given is then NULL).  ABI:
 * this layout is frozen for the 1.x series.  Unlike ssm_mamba_config it has
 * no struct_size (it is fixed by the published API and other interfaces,
 * such as the backward pass, take it as is); a version that needs more
 * fields adds a new struct and a new function instead of growing this one,
 * so programs compiled against this header keep working. */
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
 * path; allocates, so not async-signal-safe.  An OpenMP runtime that cannot
 * create its thread team ends the process (libgomp does; see ssm/conv.h).
 * Thread safety: reentrant; calls on different outputs may run at once. */
SSM_API ssm_status ssm_selective_scan(const ssm_scan_args *args);

/* One step of the same recurrence for streaming inference (Mamba's
 * selective_state_update); h (batch*dim*dstate) is read and updated in
 * place; u, delta, z, y: batch*dim; B, C: batch*ngroups*dstate; D, z,
 * delta_bias may be NULL as in the scan.
 * Bit for bit the results of ssm_selective_scan with len = 1 (so L steps
 * equal one scan of length L bit for bit on the channel-parallel path, and to
 * rounding where the scan takes its time-chunked path).
 * No allocation: the state is updated in place and the kernels read B and
 * C where they are, so streaming never allocates (and never fails for
 * memory).  Parallel over (batch, channel) once batch*dim*dstate > 4096.
 * Errors: SSM_ERR_ARG (h, u, delta, A, B, C or y NULL; a size < 1; ngroups
 * not dividing dim; overflow).  Reentrant. */
SSM_API ssm_status ssm_selective_step(int64_t batch, int64_t dim,
                                      int64_t dstate, int64_t ngroups,
                                      float *h, const float *u,
                                      const float *delta, const float *A,
                                      const float *B, const float *C,
                                      const float *D, const float *z,
                                      const float *delta_bias,
                                      int delta_softplus, float *y);

/* ---- recurrent twin (S4D eq. (2), diagonal Abar) ------------------------
 *
 * Diagonal complex LTI recurrence, per batch b, channel c, mode k, step t:
 *   h[k] = Ad[c,k] h[k] + Bd[c,k] u[b,c,t]
 *   y[b,c,t] = Re(sum_k C[c,k] h[k]) + D[c] u[b,c,t]
 * Shapes: Ad, Bd, C [channels][n]; D [channels] or NULL;
 * h0, h_last [batch][channels][n] or NULL (zero initial state / final
 * state not wanted); u, y [batch][channels][L].  h0 == h_last is allowed
 * (state carried in place); y must not overlap the inputs.
 * For a conjugate-halved S4D system pass 2*C (the state of the other half
 * is the conjugate, so Re doubles).
 * Float arithmetic in a fixed order (8 partial sums over the modes, fixed
 * tree): the same bytes for any number of OpenMP threads (parallel over
 * (batch, channel) rows) and any vector width.  O(batch channels n L).
 * Errors: SSM_ERR_ARG (Ad, Bd, C, u, y NULL, sizes < 1 or overflowing,
 * non-finite Ad, Bd, C or D), SSM_ERR_NOMEM.  u and h0 are not inspected.
 * Reentrant. */
SSM_API ssm_status ssm_diag_scan(int64_t batch, int64_t channels, int64_t n,
                                 int64_t L, const ssm_cfloat *Ad,
                                 const ssm_cfloat *Bd,
                                 const ssm_cfloat *C, const float *D,
                                 const float *u, const ssm_cfloat *h0,
                                 ssm_cfloat *h_last, float *y);

/* One step of the same recurrence for streaming (one sample per channel):
 * h [batch][channels][n] is read and updated in place; u, y
 * [batch][channels].  Bit for bit ssm_diag_scan with L = 1 and
 * h0 == h_last == h (it runs the very same row code), so L calls equal one
 * scan of length L.  No allocation (the modes are processed in tiles of 256
 * on the stack).  Errors: as ssm_diag_scan but never SSM_ERR_NOMEM, and h
 * NULL.  Reentrant. */
SSM_API ssm_status ssm_diag_step(int64_t batch, int64_t channels, int64_t n,
                                 ssm_cfloat *h, const ssm_cfloat *Ad,
                                 const ssm_cfloat *Bd, const ssm_cfloat *C,
                                 const float *D, const float *u, float *y);

/* ---- selective scan backward (training) ---------------------------------- */

typedef struct ssm_scan_grads {
    float *du;           /* [B][D][L]    */
    float *ddelta;       /* [B][D][L]    dLoss/d(delta) as passed in, i.e. before bias and softplus */
    float *dA;           /* [D][N]       */
    float *dB;           /* [B][G][N][L] */
    float *dC;           /* [B][G][N][L] */
    float *dD;           /* [D]          */
    float *dz;           /* [B][D][L]    */
    float *ddelta_bias;  /* [D]          */
    float *dh0;          /* [B][D][N]    */
} ssm_scan_grads;

/* Gradients of a scalar loss through ssm_selective_scan(args).
 * dy [B][D][L] = dLoss/dy; dh_last [B][D][N] = dLoss/dh_last, or NULL for zero.
 * args describes the forward exactly as it was run; its y and h_last are
 * ignored (may be NULL).  dh0 is the gradient at the initial state (the
 * zero state when args->h0 is NULL).  Every gradient pointer may be NULL (not wanted); one
 * whose input is absent (dD without D, dz without z, ddelta_bias without
 * delta_bias) must be NULL, else SSM_ERR_ARG.  Gradients are overwritten,
 * not accumulated.  Memory: O(batch*dim*dstate*(len/chunk + chunk)), never
 * [B][D][L][N].  Deterministic: identical bit for bit for any thread count.
 *
 * Semantics: the reverse mode of the recurrence above (Mamba's
 * selective_scan_ref / selective_scan_bwd), with d softplus(x)/dx =
 * sigmoid(x) for x <= 20 and 1 above, as the forward's threshold.
 * Method: a forward pass keeps the state every `chunk` steps (a power of
 * two >= sqrt(len) and >= max(64, 4096/dstate)); the chunks are then walked last to first,
 * each recomputed from its checkpoint and run through the adjoint
 * recurrence g_t = dy0_t C_t + exp(dt_(t+1) A) g_(t+1).  Work: about 3
 * forward scans; OpenMP over (batch, group, block of <= 8 channels), one
 * barrier per chunk; dB, dC (shared by the channels of a group), dA, dD and
 * ddelta_bias are summed in an order fixed by the shapes, so neither the
 * thread count nor the chunk changes a bit.  A NULL gradient changes no other.
 * Errors: SSM_ERR_ARG (args, dy or grads NULL; u, delta, A, B or C NULL;
 * sizes as ssm_selective_scan; a gradient for an absent input),
 * SSM_ERR_NOMEM.  Outputs must not overlap inputs or each other.
 * Reentrant. */
SSM_API ssm_status ssm_selective_scan_backward(const ssm_scan_args *args,
                                               const float *dy,
                                               const float *dh_last,
                                               const ssm_scan_grads *grads);

#ifdef __cplusplus
}
#endif

#endif /* SSM_SCAN_H */
