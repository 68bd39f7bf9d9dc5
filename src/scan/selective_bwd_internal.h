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

#endif /* SSM_SELECTIVE_BWD_INTERNAL_H */
