/*
 * ssm/ssd.h -- the state space dual (SSD) scan of Mamba-2 (Dao and Gu 2024,
 * "Transformers are SSMs: Generalized Models and Efficient Algorithms
 * Through Structured State Space Duality").
 *
 * Token-major layouts, as Mamba-2 stores them (legend: B batch, L length,
 * H heads, P headdim, G groups, N dstate):
 *   x, z, y [B][L][H][P]; dt [B][L][H]; A, dt_bias [H]; B, C [B][L][G][N];
 *   D [H] or [H][P]; h0, h_last [B][H][P][N].
 * H heads of P channels each share one scalar decay per head; G groups of B
 * and C (G divides H; head h uses group g = h / (H/G)).
 */
#ifndef SSM_SSD_H
#define SSM_SSD_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_ssd_args {
    int64_t batch, len, nheads, headdim, dstate, ngroups;
    const float *x;          /* [B][L][H][P] */
    const float *dt;         /* [B][L][H] */
    const float *A;          /* [H] */
    const float *B;          /* [B][L][G][N] */
    const float *C;          /* [B][L][G][N] */
    const float *D;          /* [H], or [H][P] if D_per_channel; or NULL */
    int D_per_channel;
    const float *z;          /* [B][L][H][P] or NULL */
    const float *dt_bias;    /* [H] or NULL */
    int dt_softplus;         /* nonzero: dt = softplus(dt + dt_bias), threshold 20 as in the scan */
    float dt_min, dt_max;    /* then dt = min(max(dt, dt_min), dt_max), always (as Mamba-2);
                                dt_limit's default 0, INFINITY keeps every dt >= 0 unchanged */
    const float *h0;         /* [B][H][P][N] initial state, or NULL for zeros */
    float *y;                /* [B][L][H][P] */
    float *h_last;           /* [B][H][P][N] final state, or NULL */
} ssm_ssd_args;

/* For batch b, step t, head h (group g), channel p, state n:
 *   a = exp(dt[b,t,h] * A[h])
 *   S[p][n] = a * S[p][n] + dt[b,t,h] * x[b,t,h,p] * B[b,t,g,n]
 *   y[b,t,h,p] = sum_n C[b,t,g,n] * S[p][n] + D * x[b,t,h,p], then * silu(z[b,t,h,p]) if z
 * (the recurrence of Mamba-2, Dao and Gu 2024, eq. 1 with scalar A per head).
 * dt is first dt + dt_bias, then softplus(.) if dt_softplus (log1p(exp(v))
 * for v <= 20, v above), then clamped to [dt_min, dt_max] (NaN passes).
 * Note that a zeroed struct has dt_max = 0: set dt_max = INFINITY for no
 * upper limit (Mamba-2's default dt_limit is (0, inf)).
 *
 * Two evaluation orders, chosen from the shapes only (never the thread
 * count), so results are identical bit for bit for any number of threads:
 *   - the chunked SSD algorithm (Dao and Gu 2024, section 6, listing 1):
 *     per chunk of Q tokens the intra-chunk output (C B^T o Lmask) X with
 *     Lmask[t][s] = exp(cs_t - cs_s) (cs the cumulative sum of dt A over
 *     the chunk, accumulated in double; only differences with s <= t are
 *     exponentiated, never exp of a large positive number when A <= 0),
 *     the state entering the chunk read out through C, and the state
 *     passed to the next chunk; every product a register-blocked kernel of
 *     libssm's own (no BLAS: the result of each output element is one fma
 *     chain in a fixed order);
 *   - the recurrence above, token by token (one exp per head and token,
 *     the P x N state in cache): ssm_ssd_step.
 * The two agree to rounding (see docs/mamba2.md for the measured errors).
 * Memory: O(chunk * (P + N + chunk) + P * N) per thread, never
 * [B][L][H][P][N].  64-bit offsets throughout.
 * Aliasing: h0 == h_last allowed; y must not overlap an input.
 * Errors: SSM_ERR_ARG (args, x, dt, A, B, C or y NULL; a size < 1; ngroups
 * not dividing nheads; dt_min or dt_max NaN, dt_min > dt_max; a size product
 * overflowing int64_t or size_t), SSM_ERR_NOMEM.  Sequence data and A are
 * never inspected: NaN/Inf propagate like in any float code.
 * Thread safety: reentrant. */
SSM_API ssm_status ssm_ssd_scan(const ssm_ssd_args *args);

/* Evaluation order of ssm_ssd_scan_ex. */
typedef enum ssm_ssd_path {
    SSM_SSD_AUTO      = 0,   /* what ssm_ssd_scan chooses (shapes only) */
    SSM_SSD_CHUNKED   = 1,   /* chunked SSD algorithm */
    SSM_SSD_RECURRENT = 2    /* token-by-token recurrence (as ssm_ssd_step) */
} ssm_ssd_path;

/* ssm_ssd_scan with the evaluation order and the chunk length (chunked
 * path; 0: automatic, otherwise 1..4096) forced: for tests and benchmarks.
 * Errors: as ssm_ssd_scan, plus SSM_ERR_ARG for a bad path or chunk. */
SSM_API ssm_status ssm_ssd_scan_ex(const ssm_ssd_args *args, ssm_ssd_path path,
                                   int64_t chunk);

/* The path and chunk length (at most len) ssm_ssd_scan takes for these
 * shapes (either pointer may be NULL).  Errors: SSM_ERR_ARG (a size < 1,
 * ngroups not dividing nheads, overflow). */
SSM_API ssm_status ssm_ssd_plan(int64_t batch, int64_t len, int64_t nheads,
                                int64_t headdim, int64_t dstate,
                                int64_t ngroups, ssm_ssd_path *path,
                                int64_t *chunk);

/* One token of the recurrence, state carried in place, for streaming
 * inference (Mamba-2's selective_state_update).  args->len must be 1 and
 * args->h0 == args->h_last != NULL (the state [B][H][P][N], read and
 * updated); everything else as ssm_ssd_scan.  Never allocates.  Bit for bit
 * ssm_ssd_scan_ex(args, SSM_SSD_RECURRENT, 0), so L steps equal one
 * recurrent scan of length L bit for bit.
 * Errors: as ssm_ssd_scan, plus SSM_ERR_ARG if len != 1 or h0 != h_last
 * or h_last is NULL.  Reentrant. */
SSM_API ssm_status ssm_ssd_step(const ssm_ssd_args *args);

/* ---- backward (training) ---- */

/* Gradients of ssm_ssd_scan; shapes as the inputs they belong to. */
typedef struct ssm_ssd_grads {
    float *dx;        /* [B][L][H][P] */
    float *ddt;       /* [B][L][H]  dLoss/d(dt as passed in): before dt_bias,
                         softplus and the clamp (with dt_softplus 0 and no bias,
                         the gradient of the dt the recurrence used, 0 where
                         the clamp held it) */
    float *dA;        /* [H] */
    float *dB;        /* [B][L][G][N] */
    float *dC;        /* [B][L][G][N] */
    float *dD;        /* [H], or [H][P] if D_per_channel */
    float *dz;        /* [B][L][H][P] */
    float *ddt_bias;  /* [H] */
    float *dh0;       /* [B][H][P][N] gradient at the initial state */
} ssm_ssd_grads;

/* Gradients of a scalar loss through ssm_ssd_scan(args).  dy [B][L][H][P] =
 * dLoss/dy; dh_last [B][H][P][N] = dLoss/dh_last, or NULL for zero.  args
 * describes the forward exactly as it was run; its y and h_last are
 * ignored (may be NULL).  dh0 is the gradient at the initial state (the
 * zero state when args->h0 is NULL).  Adjoint of the recurrence
 * (G = dLoss/dS, G_t = a_{t+1} G_{t+1} + dy0_t C_t^T, dy0 = dy silu(z)):
 *   dx = D dy0 + dt G B,  dB = dt G^T x,  dC = S^T dy0,
 *   d(dt) = x . G B + A a <G, S_prev>,  dA = sum dt a <G, S_prev>,
 *   then through the clamp (0 where it held dt: PyTorch's clamp passes the
 *   gradient at the bounds themselves, so does this) and softplus
 *   (sigmoid(v), 1 above the threshold 20); ddt_bias = sum of ddt.
 * Every gradient pointer may be NULL (not wanted; the others are the same
 * bytes); one whose input is absent (dD without D, dz without z, ddt_bias
 * without dt_bias) must be NULL, else SSM_ERR_ARG.  Overwritten, never
 * accumulated.
 * Memory: the state is kept every Q tokens (Q a power of two >= sqrt(L),
 * >= 16) and each chunk's states recomputed: per thread
 * O(P N (L/Q + Q) + L) floats, plus [B][H][L][N] floats for each of dB and
 * dC when a group has several heads; never [B][L][H][P][N].
 * Deterministic: work items (batch, head) run by one thread each, sums
 * over items in index order: identical bytes for any thread count.
 * Errors: SSM_ERR_ARG (args, dy, grads, x, dt, A, B or C NULL; sizes as
 * ssm_ssd_scan; a gradient without its input), SSM_ERR_NOMEM.  Outputs
 * must not overlap inputs.  Reentrant. */
SSM_API ssm_status ssm_ssd_scan_backward(const ssm_ssd_args *args,
                                         const float *dy, const float *dh_last,
                                         const ssm_ssd_grads *grads);

#ifdef __cplusplus
}
#endif

#endif /* SSM_SSD_H */
