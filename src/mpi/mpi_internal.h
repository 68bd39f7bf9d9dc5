/*
 * mpi_internal.h -- helpers shared by the files of libssm_mpi.  Never
 * installed.  libssm_mpi links the shared libssm through its public API
 * only (libssm's ssmi_* symbols are hidden), so it has its own failure
 * hook, allocation and argument agreement.
 */
#ifndef SSM_MPI_INTERNAL_H
#define SSM_MPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ssm_mpi.h"

/* Every failure of libssm_mpi passes through this non-inlined function
 * (break ssmi_mpi_fail_ in gdb), as libssm's ssmi_fail_. */
ssm_status ssmi_mpi_fail_(ssm_status s, const char *file, int line);
#define SSMI_MPI_FAIL(s) ssmi_mpi_fail_((s), __FILE__, __LINE__)

/* 64-byte aligned allocation of count * elem bytes (NULL on overflow or
 * failure); free with free(). */
void *ssmi_mpi_alloc(size_t count, size_t elem);

/* Allocation-failure injection for the white-box MPI test
 * (tests/mpi/wbtest_mpi_alloc.c, which compiles these sources): the k-th
 * ssmi_mpi_alloc from now fails, once (k = 0 disarms; resets the count);
 * the count of allocations since.  Inert unless armed. */
void ssmi_mpi_alloc_inject(int64_t k);
int64_t ssmi_mpi_alloc_count(void);

/* A call's view of the communicator: its rank and size, and the caller's
 * error handler, swapped for MPI_ERRORS_RETURN for the call's duration. */
typedef struct ssmi_mpi_ctx {
    MPI_Comm comm;
    MPI_Errhandler saved;
    int rank, size;
} ssmi_mpi_ctx;

/* The fix-up's dt: softplus as the scan computes it (mpi_scan.c;
 * white-box tests compare it with ssmi_scan_softplusf bit for bit). */
float ssmi_mpi_softplus(float x);

/* Local checks of comm (not MPI_COMM_NULL, an intracommunicator), then
 * the error handler swap.  SSM_ERR_ARG / SSM_ERR_MPI on this rank only. */
ssm_status ssmi_mpi_enter(ssmi_mpi_ctx *c, MPI_Comm comm);
void ssmi_mpi_leave(ssmi_mpi_ctx *c);

/* The validation vector: local error flags and the sizes every rank must
 * agree on, reduced by ONE MPI_Allreduce(MAX) with each value q entered as
 * (q, -q), so both the largest and the smallest come back. */
#define SSMI_AGREE_MAX 48
typedef struct ssmi_agree {
    int64_t v[2 + 2 * SSMI_AGREE_MAX];
    int n;          /* values added */
    int absent;     /* this rank failed to allocate: its values count as absent */
    int64_t any;    /* after the reduction: max of the "any" flag */
} ssmi_agree;
void ssmi_agree_init(ssmi_agree *a, int bad, int nomem);
void ssmi_agree_add(ssmi_agree *a, int64_t q);
/* A value only the ranks with present != 0 must agree on. */
void ssmi_agree_add_opt(ssmi_agree *a, int present, int64_t q);
/* Slot for an "any rank" flag (MAX of 0/1), e.g. a nonempty block. */
void ssmi_agree_any(ssmi_agree *a, int flag);
/* Runs the allreduce; SSM_ERR_ARG if any rank was bad or two ranks
 * differ on an added value, SSM_ERR_NOMEM if any rank failed to allocate,
 * SSM_ERR_ARG if no rank set the "any" flag while one was declared,
 * SSM_ERR_MPI if MPI failed.  The same answer on every rank. */
ssm_status ssmi_agree_run(const ssmi_mpi_ctx *c, ssmi_agree *a);

/* The status of every rank made one: MPI_Allreduce(MIN) of the local
 * statuses (all negative codes), SSM_ERR_MPI if that fails. */
ssm_status ssmi_mpi_status_agree(const ssmi_mpi_ctx *c, ssm_status local);

/* FNV-1a over bytes, continued from h (start with SSMI_HASH0); NULL p
 * hashes a distinct marker.  Returned masked to 62 bits so -h fits. */
#define SSMI_HASH0 0xcbf29ce484222325ull
uint64_t ssmi_hash(uint64_t h, const void *p, size_t bytes);
static inline int64_t ssmi_hash_q(uint64_t h) { return (int64_t)(h & 0x3fffffffffffffffull); }

/* Exclusive scans of carries, MPI_Exscan with non-commutative user
 * operations (the earlier block's carry applied first):
 *   real:    elements (a, b) of 2 floats:  (a1,b1) then (a2,b2) ->
 *            (a2 a1, a2 b1 + b2)          [selective scan, per (b,d,n)]
 *   complex: elements (a, b_0..b_{B-1}) of 1+B complex floats, a shared
 *            by the B states                [diagonal scan, per (c,k)]
 *   halo:    elements (count, v_1..v_W) of 1+W floats: the last
 *            count <= W values of a stream, right-aligned; combining keeps
 *            the last W of the concatenation  [causal conv context]
 * in, out: cnt elements; out is undefined on rank 0.  Counts above
 * INT_MAX are split into several calls. */
ssm_status ssmi_mpi_exscan_real(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt);
ssm_status ssmi_mpi_exscan_cplx(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt, int64_t B);
ssm_status ssmi_mpi_exscan_halo(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt, int64_t W);
/* shared:  elements (a, b_1..b_M) of 1+M floats, a real decay shared by
 *          the M states: (a1,b1) then (a2,b2) -> (a2 a1, a2 b1 + b2)
 *          [SSD scan, per (batch, head), M = headdim dstate] */
ssm_status ssmi_mpi_exscan_shared(const ssmi_mpi_ctx *c, const float *in,
                                  float *out, int64_t cnt, int64_t M);
/* out = combine(earlier, later) of one halo element, as the operation. */
void ssmi_halo_combine(const float *earlier, float *later, int64_t W);

/* Workspace of the selective scan core: carries out and in [B*D*N][2],
 * the local end state [B*D*N], the block's sum of dt per row [B*D]. */
typedef struct ssmi_sel_ws {
    float *send, *recv, *hloc;
    double *S;
} ssmi_sel_ws;
/* 1 on success; on failure nothing is held. */
int ssmi_sel_ws_alloc(ssmi_sel_ws *w, const ssm_scan_args *a);
void ssmi_sel_ws_free(ssmi_sel_ws *w);   /* zeroed w: no-op */

/* The selective scan of valid, agreed arguments (ws allocated on every
 * rank): scans the block from the right state, combines the carries,
 * corrects y and writes h_last.  Returns this rank's status, to be agreed
 * with ssmi_mpi_status_agree (every rank took part in the collectives). */
ssm_status ssmi_mpi_selective_core(const ssmi_mpi_ctx *c,
                                   const ssm_scan_args *a,
                                   const ssmi_sel_ws *w);

/* Local checks of scan args with len >= 0 (as ssm_selective_scan's, and
 * data pointers may be NULL when len == 0).  1 if valid. */
int ssmi_scan_args_ok(const ssm_scan_args *a);
/* Adds the values the ranks must agree on for a scan to the vector. */
void ssmi_scan_args_agree(ssmi_agree *g, const ssm_scan_args *a, int ok);

/* ---- the Mamba-1 block's stages over MPI (mpi_mamba.c) ---- */

/* A block's parameters: views (in PyTorch's layout, <ssm/mamba.h>) that
 * ssmi_blk_core reads, onto the owned copies p[], A of an ssm_mamba's
 * parameters (mpi_mamba.c) or onto a loaded language model's weights
 * (mpi_model.c, p[] and A unused).  in_b, out_b, conv_b may be NULL. */
typedef struct blk_params {
    int64_t dm, di, n, k, r;
    float *p[SSM_MAMBA_NPARAMS];
    float *A;      /* [Di][N] = -exp(A_log), as the block computes it */
    const float *in_w, *in_b, *conv_w, *conv_b, *x_w, *dt_w, *dt_b, *Av,
                *D, *out_w, *out_b;
} blk_params;

/* Workspace of one block forward on B x L tokens. */
typedef struct blk_ws {
    int64_t B, L;
    float *xp;      /* [B][Di][K-1+L] pre-conv inputs with left context */
    float *z, *u, *delta, *ys;   /* [B][Di][L] */
    float *dtl;     /* [B][R][L] */
    float *bt, *ct; /* [B][N][L] */
    float *hsend, *hrecv;        /* halo elements [B*Di][1+K] */
    float *conv, *h;             /* state in/out [B][Di][K], [B][Di][N] */
    ssmi_sel_ws sel;
} blk_ws;

/* Sizes valid for B x L tokens (buffers' bytes, BLAS int dimensions). */
int ssmi_blk_ws_sizes_ok(const blk_params *bp, int64_t B, int64_t L);
/* 1 on success (w zeroed on failure). */
int ssmi_blk_ws_alloc(blk_ws *w, const blk_params *bp, int64_t B, int64_t L);
void ssmi_blk_ws_free(blk_ws *w);
/* One block over this rank's B x w->L tokens (x, y [B][L][Dm]); conv_in
 * [B][Di][K], h_in [B][Di][N]: rank 0's state before the sequence, or NULL
 * for zeros (read on rank 0 only).  want_state: leave the state after the
 * block in w->conv, w->h.  Every rank runs both exclusive scans whatever
 * its local status (w->L = 0 computes nothing); returns the local status,
 * to be agreed. */
ssm_status ssmi_blk_core(const ssmi_mpi_ctx *c, const blk_params *bp,
                         blk_ws *w, const float *x, float *y,
                         const float *conv_in, const float *h_in,
                         int want_state);

/* ---- the Mamba-2 stack over MPI (mpi_mamba2.c; used by mpi_model.c) */

typedef struct ssmi_m2_stack {
    const ssm_mamba2_stack *stk;
    int64_t nl, B, L;
    struct m2ws *ws;              /* the layers' workspace */
    float *norms;                 /* [nl + 1][Dm] */
    float *h, *normed, *out;      /* [B][L][Dm] */
    uint64_t hash;                /* small parameters and norms */
} ssmi_m2_stack;

/* Local checks and allocation for a stack forward of batch x L tokens on
 * this rank (st: a stack state to check against stk, or NULL).  Returns 1
 * if the arguments are valid (then *nomem tells an allocation failure), 0
 * if not; s is always safe to pass to _agree and _free. */
int ssmi_m2_stack_prepare(ssmi_m2_stack *s, const ssmi_mpi_ctx *c,
                          const ssm_mamba2_stack *stk, ssm_mamba2_stack_state *st,
                          int64_t batch, int64_t L, int *nomem);
/* Adds the configuration, layer count, batch and hash to the agreement. */
void ssmi_m2_stack_agree(ssmi_agree *g, const ssmi_m2_stack *s, int ok);
void ssmi_m2_stack_free(ssmi_m2_stack *s);
/* The stack over the ranks (after an agreement that passed): x, y
 * [B][L][Dm]; st0 read on rank 0 (NULL: zeros), stout (any rank, NULL:
 * not kept) receives the state after the rank's block.  Every rank runs
 * every collective whatever e; returns the local status, to be agreed. */
ssm_status ssmi_m2_stack_run(const ssmi_mpi_ctx *c, ssmi_m2_stack *s,
                             ssm_mamba2_stack_state *st0,
                             ssm_mamba2_stack_state *stout, const float *x,
                             float *y, ssm_status e);

#endif /* SSM_MPI_INTERNAL_H */
