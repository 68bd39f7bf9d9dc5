/* bench_scan_plain.h -- the -ffast-math plain-loop baseline of `ssm_bench scan`. */
#ifndef SSM_BENCH_SCAN_PLAIN_H
#define SSM_BENCH_SCAN_PLAIN_H
#include <stdint.h>

/* One (batch, dim, N, L) scan, ngroups 1, softplus, bias, D, z on.
 * u, delta, z, y: [batch][dim][L]; Bt, Ct: [batch][L][N] (token-major);
 * A: [dim][N]; D, bias: [dim]. */
typedef struct bsp_args {
    int64_t batch, dim, N, L;
    const float *u, *delta, *z, *Bt, *Ct, *A, *D, *bias;
    float *y;
} bsp_args;

/* Runs the baseline (OpenMP over channels); returns the ISA it used. */
const char *bsp_plain(const bsp_args *p);

#endif
