/*
 * ssm/conv.h -- the convolution mode (batched causal FFT convolution through
 * FFTW, single precision) and its recurrent twin for diagonal LTI systems.
 *
 * Shapes: K [H][L]; D [H]; u, y [B][H][L]; Ad, Bd, C [H][N];
 * x0, x_last [B][H][N].
 */
#ifndef SSM_CONV_H
#define SSM_CONV_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- FFT convolution (S4 eq. (4)-(5): y = K * u + D u) ----------------
 *
 * Batched causal convolution through FFTW (single precision), plan made
 * once, run many times:
 *   y[b,c,t] = sum_{s<=t} K[c,s] u[b,c,t-s] + D[c] u[b,c,t].
 * Shapes: K [channels][L]; D [channels] or NULL (no skip term);
 * u, y [batch][channels][L].  y must not overlap u, K or D.
 *
 * The plan pads to the smallest length N = 2^a 3^b 5^c 7^d >= 2L (so the
 * circular FFT product is the linear convolution) and holds an r2c and a
 * c2r FFTW plan of length N made with FFTW_ESTIMATE on buffers it owns: the
 * same input gives the same bytes in every run and for any number of OpenMP
 * threads.  The plan is immutable after creation.
 *
 * Accuracy: the usual FFT convolution bound, |y - y_exact| of order
 * eps_float log2(N) ||K[c]||_2 ||u[b,c]||_2 per output (normwise, not
 * relative to each output).
 *
 * Threads: ssm_conv_execute and ssm_conv_execute_spectrum may run on one
 * plan (and one spectrum) from many threads at once; each call takes its
 * own scratch, one aligned block allocated before its parallel region
 * (about N floats + N+2 complex per OpenMP thread, plus the spectra of
 * all channels, channels x (N/2+1) complex, when ssm_conv_execute runs
 * with fewer than 2 channels per thread) and
 * runs OpenMP-parallel over the rows, one writer per row.  Create and
 * destroy take the library's FFTW lock, so they too may run concurrently
 * with anything (but destroy only once no call uses the plan).
 *
 * FFTW and host programs.  FFTW's planner (every fftw_plan_* and
 * fftw_destroy_plan call) is not thread-safe.  libssm serialises its own
 * planner calls with a lock, and when it is loaded it calls
 * fftw_make_planner_thread_safe() and fftwf_make_planner_thread_safe()
 * once (FFTW >= 3.3.5; libfftw3_threads and libfftw3f_threads are linked
 * for it): from then on every planner call in the process, the host
 * program's own included, takes FFTW's mutex, so a host may plan its own
 * transforms in threads while libssm runs.  A host that installs other
 * hooks with fftw_set_planner_hooks replaces these and must serialise
 * itself.  libssm never calls fftw_cleanup, never uses wisdom and never
 * changes FFTW's thread settings.
 *
 * Plans of the free functions.  ssm_kernel_dplr and ssm_conv_execute_d
 * have no object to keep plans in: they borrow double-precision plans
 * from a process-wide cache of the 16 most recently used lengths
 * (FFTW_ESTIMATE, so a cached and a fresh plan give the same bytes),
 * freed when libssm is unloaded or the process exits.  It holds the
 * FFTW twiddle tables of those lengths, about 16 n bytes per plan.
 *
 * The two ways libssm can end the process (documented, not avoidable from
 * inside the library; every other failure is a status code):
 *  - FFTW aborts (fftw_assertion_failed / abort) when one of its internal
 *    allocations fails inside the planner (plans, twiddle tables).  The
 *    buffers libssm allocates for FFTW are its own and fail with
 *    SSM_ERR_NOMEM; FFTW's internal ones cannot be intercepted.
 *  - libgomp (GCC's OpenMP runtime) prints "libgomp: Thread creation
 *    failed" or an out-of-memory message and exits when it cannot create
 *    or allocate its thread team at the first parallel region of a new
 *    size.  Lower OMP_NUM_THREADS (or call omp_set_num_threads) where
 *    threads or memory are scarce.
 * Both happen only when the machine is out of memory or threads. */
typedef struct ssm_conv_plan ssm_conv_plan;

/* Plan for `channels` rows of length L.
 * Errors: SSM_ERR_ARG (plan NULL, channels or L < 1, product overflow, 2L or
 * its padding not representable as int for FFTW), SSM_ERR_NOMEM,
 * SSM_ERR_FFTW (FFTW returned no plan).  *plan is NULL on error. */
SSM_API ssm_status ssm_conv_plan_create(ssm_conv_plan **plan, int64_t channels,
                                        int64_t L);

/* Convolve every row.  Each kernel spectrum is computed once per channel
 * (not per batch row): with at least 2 channels per OpenMP thread, in
 * parallel over channels, each thread transforming its channel's kernel
 * and then its batch rows; otherwise all spectra first, then the (batch,
 * channel) rows in parallel.  Both orders give the same bytes.
 * Errors: SSM_ERR_ARG (plan, K, u or y NULL, batch < 1, overflow of
 * batch*channels*L, a non-finite D), SSM_ERR_NOMEM.  D is a parameter and
 * checked as in ssm_diag_scan; K and u have the sequence's length and are
 * never inspected: non-finite values propagate. */
SSM_API ssm_status ssm_conv_execute(const ssm_conv_plan *plan, int64_t batch,
                                    const float *K, const float *D,
                                    const float *u, float *y);

SSM_API void       ssm_conv_plan_destroy(ssm_conv_plan *plan);  /* NULL is a no-op */

/* Sizes of a plan (any output may be NULL): channels, L and the padded FFT
 * length N.  Errors: SSM_ERR_ARG (plan NULL). */
SSM_API ssm_status ssm_conv_plan_info(const ssm_conv_plan *plan,
                                      int64_t *channels, int64_t *L,
                                      int64_t *fft_length);

/* Kernel spectra kept between calls, for inference with a fixed kernel: the
 * FFT of every kernel row (padded, scaled by 1/N), about 4N bytes per
 * channel.  Immutable after creation; usable with any plan of the same
 * channels and L, from many threads at once. */
typedef struct ssm_conv_spectrum ssm_conv_spectrum;

/* Spectra of K [channels][L] for `plan`.
 * Errors: SSM_ERR_ARG (spec, plan or K NULL), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_conv_spectrum_create(ssm_conv_spectrum **spec,
                                            const ssm_conv_plan *plan,
                                            const float *K);
SSM_API void ssm_conv_spectrum_destroy(ssm_conv_spectrum *spec); /* NULL: no-op */

/* ssm_conv_execute with the kernel spectra precomputed: the same bytes as
 * ssm_conv_execute(plan, batch, K, D, u, y) for the K of `spec`, without
 * the kernel transforms.  Errors: SSM_ERR_ARG (NULL, batch < 1, overflow,
 * spec made for another channels/L, a non-finite D), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_conv_execute_spectrum(const ssm_conv_plan *plan,
                                             const ssm_conv_spectrum *spec,
                                             int64_t batch, const float *D,
                                             const float *u, float *y);

/* Double-precision twin of ssm_conv_execute for verification paths, in
 * one call: K [channels][L], D [channels] or NULL, u, y
 * [batch][channels][L].  Its FFTW plans come from the library's plan
 * cache (see above: planned once per padded length, FFTW_ESTIMATE),
 * OpenMP-parallel over rows, the same bytes for any thread count and on
 * every call.  Error about eps_double log2(N) ||K[c]|| ||u[b,c]||.
 * Errors: SSM_ERR_ARG (NULL, sizes < 1, overflow, 2L too large for int, a
 * non-finite D), SSM_ERR_NOMEM, SSM_ERR_FFTW.  Reentrant. */
SSM_API ssm_status ssm_conv_execute_d(int64_t batch, int64_t channels,
                                      int64_t L, const double *K,
                                      const double *D, const double *u,
                                      double *y);

#ifdef __cplusplus
}
#endif

#endif /* SSM_CONV_H */
