/*
 * scan_internal.h -- private entry points of the recurrences (src/scan),
 * for the white-box tests and the benchmark.  Never installed.
 */
#ifndef SSM_SCAN_INTERNAL_H
#define SSM_SCAN_INTERNAL_H

#include "internal.h"

/* Instruction sets of the kernels, chosen at run time (__builtin_cpu_supports).
 * Within one ISA the results are bit-for-bit reproducible.  On the
 * sequential path and in the step every ISA gives the same bytes (one
 * arithmetic per channel); on the time-chunked and split paths (few long
 * channels) ISAs agree to rounding only. */
enum {
    SSM_SCAN_ISA_AUTO    = -1,
    SSM_SCAN_ISA_GENERIC = 0,   /* portable C, scalar fmaf */
    SSM_SCAN_ISA_AVX2    = 1,   /* AVX2 + FMA, 8 lanes */
    SSM_SCAN_ISA_AVX512  = 2    /* AVX-512F, 16 lanes */
};

/* Paths of the driver. */
enum {
    SSM_SCAN_PATH_AUTO    = 0,
    SSM_SCAN_PATH_SEQ     = 1,  /* parallel over (batch, channel blocks), sequential in time */
    SSM_SCAN_PATH_CHUNKED = 2,  /* also parallel over time chunks, carries passed across */
    SSM_SCAN_PATH_SPLIT   = 3   /* one channel: the state dimension split in halves */
};

/* Best ISA this CPU supports (compiled-in and reported by the CPU). */
int ssmi_scan_best_isa(void);
/* Nonzero when `isa` can run here. */
int ssmi_scan_isa_ok(int isa);

/* The float exp of the scan, scalar form: x = k ln2 + r (two-constant
 * Cody-Waite split, k rounded to nearest even), e^r by a degree-6 minimax
 * polynomial in Horner form with fmaf, times 2^k built in the exponent bits.
 * x < -88 gives 0 (about 2^-127: no subnormal garbage), x > 88 gives +inf,
 * NaN gives NaN.  The vector kernels compute exactly this, lane by lane. */
float ssmi_scan_expf(float x);

/* y[i] = exp(x[i]) for i < n with the vector body of `isa` and its scalar
 * tail (white-box accuracy tests).  Returns 0, or -1 if isa cannot run. */
int ssmi_scan_vexpf(int isa, const float *x, float *y, int64_t n);

/* The scan's decay exp(dt A) from dt and a2 = A log2(e) (scan_vmath.h,
 * scan_decayf), and its vector forms over n values (white-box tests):
 * mode 0 any input, 1 valid where dt a2 <= 0 or NaN, 2 where moreover
 * |dt a2| <= 125.5.  Returns 0, or -1 if isa cannot run or mode is bad. */
float ssmi_scan_decayf(float dt, float a2);
float ssmi_scan_a2(float A);   /* A log2(e) rounded once (scan_a2) */
int ssmi_scan_vdecay(int isa, int mode, const float *dt, const float *a2, float *y, int64_t n);

/* The scan's softplus (scan_vmath.h, scan_softplus: max(x, 0) +
 * log1p(exp(-|x|)), Mamba's threshold 20 included) and its vector forms
 * over n values (white-box tests).  Returns 0, or -1 if isa cannot run. */
float ssmi_scan_softplusf(float x);
int ssmi_scan_vsoftplus(int isa, const float *x, float *y, int64_t n);

/* The scan with the path, chunk length (chunked path; for the split path
 * the steps per tile; 0: the automatic one) and ISA forced.  Same validation and semantics as ssm_selective_scan. */
ssm_status ssmi_selective_scan_ex(const ssm_scan_args *args, int path,
                                 int64_t chunk_len, int isa);

/* What ssm_selective_scan chooses for these shapes: the path, and the chunk
 * length of the chunked path. */
int ssmi_scan_auto_path(int64_t batch, int64_t dim, int64_t dstate, int64_t len);
int64_t ssmi_scan_auto_chunk(int64_t len);

/* ssm_diag_scan / ssm_diag_step after argument validation: every pointer
 * except D, x0, x_last non-NULL, sizes >= 1 with products that fit,
 * Ad, Bd, C finite.  Same code, same bytes as the public calls (the S4D
 * layer's recurrent mode). */
ssm_status ssmi_diag_scan_unchecked(int64_t batch, int64_t channels, int64_t n,
                                   int64_t L, const float complex *Ad,
                                   const float complex *Bd,
                                   const float complex *C, const float *D,
                                   const float *u, const float complex *x0,
                                   float complex *x_last, float *y);

/* ssm_diag_step after validation (h non-NULL besides the above): no
 * allocation, the bytes of ssmi_diag_scan_unchecked with L = 1 and
 * x0 = x_last = h (the S4D layer's step). */
void ssmi_diag_step_unchecked(int64_t batch, int64_t channels, int64_t n,
                              float complex *h, const float complex *Ad,
                              const float complex *Bd, const float complex *C,
                              const float *D, const float *u, float *y);

#endif /* SSM_SCAN_INTERNAL_H */
