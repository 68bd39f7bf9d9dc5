/*
 * selective_bwd_internal.h -- private entry points of the selective scan
 * backward (src/scan/selective_bwd.c), for the white-box tests and the
 * benchmark.  Never installed.
 */
#ifndef SSM_SELECTIVE_BWD_INTERNAL_H
#define SSM_SELECTIVE_BWD_INTERNAL_H

#include "scan_internal.h"

/* ssm_selective_scan_backward with the checkpoint interval (chunk >= 1
 * steps; 0: the automatic one) and the ISA (SSM_SCAN_ISA_*) forced.  The
 * chunk changes no number on the sequential paths: the state recomputed
 * inside a chunk is the state of the forward, whatever the interval.  Only
 * chunk 0 lets few long channels take the time-chunked path
 * (ssmi_scan_bwd_tc_path), whose numbers differ from the sequential ones by
 * rounding; a forced chunk keeps the sequential paths.  Same validation
 * otherwise. */
ssm_status ssmi_selective_scan_backward_ex(const ssm_scan_args *args,
                                           const float *dy,
                                           const float *dh_last,
                                           const ssm_scan_grads *grads,
                                           int64_t chunk, int isa);

/* The automatic checkpoint interval for a length and state size (shapes
 * only): a power of two >= sqrt(len) and >= max(64, 4096/dstate), at most len. */
int64_t ssmi_scan_bwd_auto_chunk(int64_t len, int64_t dstate);

/* The automatic interval when a group has a channel-vector block (more
 * than 8 channels): a power of two >= sqrt(len), at least 64, at most len. */
int64_t ssmi_scan_bwd_cv_chunk(int64_t len);

/* 1 when the backward takes the state-split path (one long channel:
 * batch * dim = 1, dstate a multiple of 32, len >= 4096); shapes only. */
int ssmi_scan_bwd_split(int64_t batch, int64_t dim, int64_t dstate, int64_t len);

/* The time-chunked path (selective_bwd_tc.c; few long channels: batch *
 * dim <= 8, at least 8 chunks, not the state-split shape); shapes only. */
int ssmi_scan_bwd_tc_path(int64_t batch, int64_t dim, int64_t dstate, int64_t len);

/* Its chunk length for these shapes (ssmi_scan_bwd_auto_chunk). */
int64_t ssmi_scan_bwd_tc_chunk(int64_t len, int64_t dstate);

/* The time-chunked backward on arguments that ssm_selective_scan_backward
 * has validated, with the chunk length (0: the automatic one; any
 * chunk >= 1 for the white-box tests: the chunk changes the rounding of
 * the carries, not the result beyond it) and the ISA forced.
 * ssmi_selective_scan_backward_ex calls it with chunk 0 where
 * ssmi_scan_bwd_tc_path says so (a forced checkpoint interval keeps the
 * sequential paths, whose numbers do not depend on it). */
ssm_status ssmi_scan_bwd_tc(const ssm_scan_args *args, const float *dy,
                            const float *dh_last, const ssm_scan_grads *grads,
                            int64_t chunk, int isa);

/* The backward's kernels of one instruction set (selective_bwd.c
 * instantiates them: per channel in selective_bwd_kernel.h and
 * selective_bwd_tc_kernel.h, channel vectors in selective_bwd_cv.h), shared
 * by the sequential, split and time-chunked paths. */
typedef struct bwd_kern {
    /* per channel */
    void (*local)(int flush, int64_t T, int64_t N, const float *A,
                  const float *Bt, const float *Ct, const float *dt,
                  const float *u, const float *dy0, float *h, float *p,
                  float *G);
    void (*dt)(int64_t T, const float *delta, float bias, int softplus,
               float *dt, float *dsig);
    void (*state)(int64_t T, int64_t N, const float *A, const float *Bt,
                  const float *dt, const float *u, float *h);
    void (*recompute)(int64_t T, int64_t N, const float *A, const float *Bt,
                      const float *Ct, const float *dt, const float *u,
                      const float *hin, float *H, float *Q, float *P0);
    void (*adjoint)(int wb, int wc, int first, int64_t t0, int64_t T,
                    int64_t N, const float *A, const float *Bt,
                    const float *Ct, const float *dt, const float *u,
                    const float *dy0, const float *hin, const float *H,
                    const float *Q, float *g, float *dAc, double *dAd,
                    float *P1, float *P2, float *dBp, float *dCp);
    void (*tree)(int64_t T, int64_t N, float *P, float *s);
    void (*add)(int64_t n, const float *x, float *y);
    void (*dsum)(int64_t t0, int64_t T, const float *x, const float *y, double *acc);
    void (*pre)(int64_t T, const float *dy, const float *z, float *dy0);
    void (*post)(int64_t T, int hasD, float Dd, const float *dt,
                 const float *dsig, const float *u, const float *dy,
                 const float *z, const float *dy0, const float *s1,
                 const float *s2, const float *ys, float *du, float *dx,
                 float *dz);
    void (*adjoint2)(int wb, int wc, int first, int64_t t0, int64_t T,
                     const float *const *A, const float *Bt, const float *Ct,
                     const float *const *dt, const float *const *u,
                     const float *const *dy0, const float *const *hin,
                     const float *const *H, const float *const *Q,
                     float *const *g, float *const *dAc, double *const *dAd,
                     float *const *P1, float *const *P2, float *dBp, float *dCp);
    void (*tr)(int64_t ni, int64_t nj, const float *src, int64_t ss, float *dst,
               int64_t ds);
    /* channel vectors */
    void (*cv_gather)(const float *src, int64_t ld, int64_t m, int64_t T, float *dst);
    void (*cv_scatter)(const float *src, int64_t m, int64_t T, float *dst, int64_t ld);
    void (*cv_scatter_nt)(const float *src, int64_t m, int64_t T, float *dst, int64_t ld);
    void (*cv_dt)(int64_t T, float *dl, const float *ul, const float *bl,
                  int softplus, float *wl);
    void (*cv_pre)(int64_t T, const float *dtl, const float *ul, int softplus,
                   const float *dyl, const float *zl, float *wl, float *dsl,
                   float *dy0l, float *denl);
    void (*cv_state)(int neg, int64_t T, int64_t N, int64_t ld, const float *Al,
                     const float *Bn, const float *dtl, const float *wl, float *h,
                     float *Qs);
    void (*cv_recompute)(int neg, int wc, int64_t T, int64_t N, int64_t ld,
                         const float *Al, const float *Bn, const float *Cn,
                         const float *dtl, const float *wl, const float *dy0l,
                         const float *hin, float *H, float *Q, float *ysl,
                         float *pC, int acc);
    void (*cv_adjoint)(int wb, int64_t t0, int64_t T, int64_t N, int64_t ld,
                       const float *Al, const float *Bn, const float *Cn,
                       const float *dtl, const float *wl, const float *dy0l,
                       const float *hin, const float *H, const float *Q,
                       float *g, float *dAc, double *dAd, float *s1l,
                       float *s2l, float *pB, int acc);
    void (*cv_post)(int64_t T, const float *Dl, const float *dtl,
                    const float *dsl, const float *ul, const float *dyl,
                    const float *zl, const float *denl, const float *dy0l,
                    const float *s1l, const float *s2l, const float *ysl,
                    float *dul, float *dxl, float *dzl);
    void (*cv_dsum)(int64_t t0, int64_t T, int64_t m, const float *x,
                    const float *y, double *acc);
    float (*cv_absmax)(int64_t n, const float *x);
} bwd_kern;

/* The kernel table of isa (SSM_SCAN_ISA_*; AUTO: the best this CPU runs);
 * -1 when this CPU cannot run it. */
int ssmi_scan_bwd_kern(int isa, bwd_kern *k);

#endif /* SSM_SELECTIVE_BWD_INTERNAL_H */
