/*
 * ssm_mpi.h -- libssm_mpi: sequence-parallel scans and Mamba layers over MPI.
 *
 * The ranks of a communicator hold consecutive blocks of the same
 * sequences, in rank order (rank 0 the first tokens).  The recurrences
 * compose: each rank scans its block from a zero state, the ranks combine
 * their (decay product, end state) carries with an exclusive scan
 * (MPI_Exscan with a non-commutative user operation, log2(R) steps), and
 * each rank adds to its block what the state entering it contributes.
 * Also a deterministic sum over the ranks for data-parallel gradients.
 * See docs/mpi.md for the algorithm, the cost model and the figures.
 *
 * Common rules of every function here:
 *  - Collective over comm (an intracommunicator): every rank calls it.
 *  - Validation first: one MPI_Allreduce of the ranks' argument checks and
 *    shared sizes precedes any other work.  An invalid argument on any
 *    rank, or ranks disagreeing on what must be shared, is SSM_ERR_ARG on
 *    EVERY rank, never a hang.  SSM_ERR_NOMEM (any rank's allocation) and
 *    SSM_ERR_MPI (an MPI call failed) are agreed the same way.  A rank
 *    passing MPI_COMM_NULL (or an intercommunicator) gets SSM_ERR_ARG
 *    alone: it cannot talk to the others.
 *  - Errors of MPI itself are returned, not fatal: during the call comm's
 *    error handler is MPI_ERRORS_RETURN; the caller's handler is restored
 *    before returning.  Only collectives are used (no point-to-point), so
 *    the caller's pending messages on comm are never matched.
 *  - Block lengths may differ between ranks; a block may have length 1.
 *    A rank may also hold an empty block (len = 0): its data pointers may
 *    then be NULL and it passes the state through; the total length over
 *    all ranks must be >= 1.
 *  - Results are identical bit for bit for a given number of ranks and
 *    block lengths, whatever the OpenMP thread counts (the Mamba layers:
 *    for a fixed BLAS thread count, as in <ssm/mamba.h>).  Against the
 *    single-process function on the concatenated sequence they agree to
 *    rounding (normwise ~1e-7 for Mamba-like inputs).
 *  - Thread safety: as MPI's.  Two threads may not run collectives on the
 *    same communicator at once.
 */
#ifndef SSM_MPI_H
#define SSM_MPI_H

#include <mpi.h>
#include <ssm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sequence-parallel selective scan.  The ranks of comm hold consecutive
 * blocks of the same sequences, in rank order: rank r passes its own
 * block (args->len may differ between ranks; batch, dim, dstate, ngroups,
 * A, D, delta_bias, delta_softplus must agree).  Each rank's y is its block
 * of ssm_selective_scan over the whole concatenated sequence (to rounding:
 * normwise 1e-6 for Mamba-like inputs); args->h0 is read on rank 0 only;
 * args->h_last, if not NULL, receives the state at the end of the rank's
 * own block (on the last rank: the final state).  Collective; results are
 * identical for a given number of ranks, whatever the thread counts.
 * Errors: an invalid argument on any rank, or ranks disagreeing on the
 * shared sizes, returns SSM_ERR_ARG on every rank (never a hang);
 * SSM_ERR_NOMEM, SSM_ERR_MPI likewise on every rank.  <ssm_mpi.h> includes
 * <mpi.h> and <ssm.h>; pkg-config ssm-mpi brings -lssm with it.
 *
 * Agreement is checked on batch, dim, dstate, ngroups, delta_softplus
 * (zero or not), the presence of D, z and delta_bias, and a 64-bit hash of
 * the bytes of A, D and delta_bias.  args->len = 0 is allowed (see above);
 * h0 on other ranks than 0 is ignored.  Aliasing as ssm_selective_scan
 * (h0 == h_last on rank 0). */
SSM_API ssm_status ssm_mpi_selective_scan(MPI_Comm comm, const ssm_scan_args *args);

/* Sequence-parallel ssm_diag_scan (S4D recurrent mode): rank r passes its
 * block u, y [batch][channels][L] (L may differ between ranks, 0 allowed);
 * batch, channels, n and the contents of Ad, Bd, C, D (hashed) must agree.
 * h0 [batch][channels][n] is read on rank 0 only (NULL: zeros); h_last, if
 * not NULL, receives the state at the end of the rank's own block.
 * h0 == h_last allowed on rank 0.  Errors: as ssm_mpi_selective_scan, plus
 * ssm_diag_scan's (non-finite Ad, Bd, C, D: SSM_ERR_ARG everywhere). */
SSM_API ssm_status ssm_mpi_diag_scan(MPI_Comm comm, int64_t batch, int64_t channels,
                             int64_t n, int64_t L, const ssm_cfloat *Ad,
                             const ssm_cfloat *Bd, const ssm_cfloat *C,
                             const float *D, const float *u,
                             const ssm_cfloat *h0, ssm_cfloat *h_last,
                             float *y);

/* Sequence-parallel Mamba block forward (ssm_mamba_forward over the
 * concatenated sequence): rank r passes its block x, y [batch][L][Dm]
 * (y may equal x).  Every rank passes a block of the same configuration
 * and parameters (hashed and checked).  The causal conv's left context
 * (the last d_conv - 1 pre-conv inputs before the block, from as many
 * previous ranks as needed) and the scan's entering state travel by
 * exclusive scans.
 * st (a state of blk's shape, batch <= its max batch, or NULL):
 *   rank 0: read as the state before the sequence (NULL: zeros, a prompt);
 *   every rank: if not NULL, receives the state after its own block, so the
 *   last rank's st continues the sequences with ssm_mamba_step.
 * Errors: as ssm_mpi_selective_scan, and ssm_mamba_forward's. */
SSM_API ssm_status ssm_mpi_mamba_forward(MPI_Comm comm, const ssm_mamba *blk,
                                 ssm_mamba_state *st, int64_t batch,
                                 int64_t L, const float *x, float *y);

/* Sequence-parallel residual stack forward (ssm_mamba_stack_forward over
 * the concatenated sequence): x, y [batch][L][Dm] per rank (y may equal x).
 * states: NULL, or an array of n_layers block states, states[l] made with
 * ssm_mamba_state_create for layer l's block (ssm_mamba_stack_block):
 * read on rank 0 as the state before the sequence, written on every rank
 * with the state after its own block (the last rank: ready for decoding,
 * see ssm_mpi_mamba_stack_step).  ssm_mpi_mamba_stack_forward_state
 * takes an ssm_mamba_stack_state instead.
 * Errors: as ssm_mpi_mamba_forward, and ssm_mamba_stack_forward's. */
SSM_API ssm_status ssm_mpi_mamba_stack_forward(MPI_Comm comm,
                                       const ssm_mamba_stack *stk,
                                       ssm_mamba_state *const *states,
                                       int64_t batch, int64_t L,
                                       const float *x, float *y);

/* ssm_mpi_mamba_stack_forward with an ssm_mamba_stack_state (made with
 * ssm_mamba_stack_state_create for stk, or NULL): read on rank 0 as the
 * state before the sequence, written on every rank with the state after its
 * own block, so the last rank's st is ready for ssm_mamba_stack_step.
 * Errors: as ssm_mpi_mamba_stack_forward; st with another number of layers
 * than stk is SSM_ERR_ARG (on every rank). */
SSM_API ssm_status ssm_mpi_mamba_stack_forward_state(MPI_Comm comm,
                                             const ssm_mamba_stack *stk,
                                             ssm_mamba_stack_state *st,
                                             int64_t batch, int64_t L,
                                             const float *x, float *y);

/* One token per sequence through the stack with per-layer states (the
 * decoding twin of ssm_mpi_mamba_stack_forward; local, no MPI):
 * h = x; h += block_l(rmsnorm_l(h)) with ssm_mamba_step on states[l];
 * y = rmsnorm_f(h).  x, y [batch][Dm] (y may equal x).  Allocates a
 * 2*batch*Dm workspace.  Errors: as ssm_mamba_stack_step, SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_mpi_mamba_stack_step(const ssm_mamba_stack *stk,
                                    ssm_mamba_state *const *states,
                                    int64_t batch, const float *x, float *y);

/* Sequence-parallel SSD scan of Mamba-2 (ssm_ssd_scan over the
 * concatenated sequence): args as ssm_ssd_scan's, args->len this rank's
 * block (>= 0; an empty block's x, dt, B, C, z, y may be NULL); h0 read on
 * rank 0 only; h_last (if not NULL) receives the state after this rank's
 * block (the last rank: the final state, ready for ssm_ssd_step).  The
 * shapes, dt_softplus, dt_min, dt_max, the presence of D, z, dt_bias and
 * the values of A, D, dt_bias must agree on every rank.  Carry: per
 * (batch, head) the decay product and the [P][N] state, one exclusive scan.
 * Errors: SSM_ERR_ARG (a rank's args invalid, ranks disagreeing, or no
 * token at all; on every rank), SSM_ERR_NOMEM, SSM_ERR_MPI (every rank). */
SSM_API ssm_status ssm_mpi_ssd_scan(MPI_Comm comm, const ssm_ssd_args *args);

/* Sequence-parallel Mamba-2 block forward (ssm_mamba2_forward over the
 * concatenated sequence): rank r passes its block x, y [batch][L][Dm]
 * (y may equal x; L may differ between ranks, 0 allowed).  Every rank
 * passes a block of the same configuration and small parameters (conv,
 * dt_bias, A_log, D, norm weight: hashed and checked).  The conv's left
 * context over the xBC channels (the last d_conv pre-conv inputs before the
 * block, from as many previous ranks as needed) and the SSD state entering
 * the block travel by exclusive scans; each rank then runs
 * ssm_mamba2_forward from that state (every rank but the last first runs
 * the block's in_proj, conv and SSD scan for its carry, about 0.6 of a
 * block; see docs/mpi.md).  On one rank the bytes of ssm_mamba2_forward.
 * st (a state of blk's shape, batch <= its max batch, or NULL): rank 0
 * reads it as the state before the sequence (NULL: zeros); every rank, if
 * not NULL, receives the state after its own block (the last rank: ready
 * for ssm_mamba2_step).  Errors: as ssm_mpi_mamba_forward, and
 * ssm_mamba2_forward's. */
SSM_API ssm_status ssm_mpi_mamba2_forward(MPI_Comm comm, const ssm_mamba2 *blk,
                                          ssm_mamba2_state *st, int64_t batch,
                                          int64_t L, const float *x, float *y);

/* Sequence-parallel Mamba-2 residual stack forward
 * (ssm_mamba2_stack_forward over the concatenated sequence), x, y
 * [batch][L][Dm] per rank (y may equal x).  st: an ssm_mamba2_stack_state
 * made for stk, or NULL: read on rank 0 as the state before the sequence,
 * written on every rank with the state after its own block, so the last
 * rank continues with ssm_mamba2_stack_step.  On one rank the bytes of
 * ssm_mamba2_stack_forward.  Errors: as ssm_mpi_mamba2_forward; a state of
 * another stack shape is SSM_ERR_ARG (on every rank). */
SSM_API ssm_status ssm_mpi_mamba2_stack_forward(MPI_Comm comm,
                                                const ssm_mamba2_stack *stk,
                                                ssm_mamba2_stack_state *st,
                                                int64_t batch, int64_t L,
                                                const float *x, float *y);

/* Language-model prefill of one long prompt spread over the ranks
 * (ssm_model_forward of the whole prompt, batch 1): rank r passes its own
 * consecutive block tokens[len] of the prompt (len may differ between
 * ranks, 0 allowed; the total must be >= 1); every rank has loaded the
 * same model (sizes, norm kind and eps, and the small per-layer weights
 * are checked; the big matrices are not hashed).
 * state, slot: rank 0 reads the slot as the prefix before the prompt
 * (usually empty; state NULL: the empty prefix); the last rank, if its
 * state is not NULL, receives in that slot the state after the prompt
 * (its token count: rank 0's prefix + the whole prompt), ready for
 * ssm_model_forward / ssm_model_forward_slots to decode there.  The state
 * is ignored on the other ranks.  logits [vocab] (last rank, if not NULL):
 * the next-token logits after the prompt's last token.  Mamba-1 and
 * Mamba-2 models.  Memory: about len (3 Dm + 6 Di + R + 2N) floats per
 * rank (the whole block at once, not in chunks).
 * Errors: SSM_ERR_ARG (on every rank: NULL model, len < 0, a token id
 * outside [0, vocab), a slot out of range or a state of another model on
 * rank 0 or the last rank, ranks disagreeing on the model, no token at
 * all), SSM_ERR_NOMEM, SSM_ERR_MPI; a failed call leaves the slot as it
 * was. */
SSM_API ssm_status ssm_mpi_model_prefill(MPI_Comm comm, const ssm_model *model,
                                         ssm_model_state *state, int64_t slot,
                                         int64_t len, const int32_t *tokens,
                                         float *logits);

/* Deterministic sum of a float vector over the ranks (data-parallel
 * training: each rank's gradient in, the sum of all ranks' gradients out):
 * every rank's buf [n] is replaced by buf_0 + buf_1 + ... + buf_{R-1},
 * accumulated in double in rank order and rounded once, so the result is
 * the same bytes on every rank, on every run and for any MPI library or
 * algorithm (MPI_Allreduce's reduction order is the library's choice).
 * Reduce-scatter then allgather by segments: each rank sends and receives
 * about 2 n (R-1)/R floats.  n must agree (hashed with the other checks);
 * n = 0 is allowed (buf may then be NULL).
 * Errors: as ssm_mpi_selective_scan (SSM_ERR_ARG: n < 0, buf NULL with
 * n > 0, ranks disagreeing on n). */
SSM_API ssm_status ssm_mpi_allreduce_sum(MPI_Comm comm, float *buf, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* SSM_MPI_H */
