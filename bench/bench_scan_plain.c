/*
 * bench_scan_plain.c -- the "best simple alternative" of issue 13 for
 * `ssm_bench scan`: the selective scan as a plain C loop with B and C
 * token-major ([batch][len][dstate], so the state loop is contiguous), built
 * with -O3 -ffast-math (bench/CMakeLists.txt, this file only) so that GCC
 * vectorizes the state loop and calls glibc's libmvec expf.  Channels are
 * spread over OpenMP threads.  A baseline only: never used by the library.
 *
 * Instantiated three times (portable, AVX2+FMA, AVX-512F) through target
 * attributes and picked at run time, so the bench runs on any x86-64 and the
 * baseline uses the widest vectors of the machine, as -march=native would.
 */
#include <math.h>
#include <stdint.h>
#include "bench_scan_plain.h"

/* Per channel, tiles of PLAIN_TILE steps: the per-step scalars (softplus of
 * delta, the z gate) first, in loops over time that GCC vectorizes with
 * libmvec's log1pf and expf; then the state loop; D and the gate applied as
 * each step's sum is made.  Computing softplus and silu inside the step loop
 * instead (scalar libm calls per step) made this baseline 3x slower, far
 * below the plain loop issue 13 measured (22.8 ms at (1,1536,16,2048)); this
 * form gives that figure. */
#define PLAIN_TILE 1024
#define PLAIN_BODY                                                            \
    {                                                                        \
        const int64_t N = NCONST ? NCONST : p->N, L = p->L, dim = p->dim;    \
        _Pragma("omp parallel for schedule(static) collapse(2)")             \
        for (int64_t b = 0; b < p->batch; b++)                               \
            for (int64_t d = 0; d < dim; d++) {                              \
                float h[64], dtb[PLAIN_TILE], gate[PLAIN_TILE];              \
                const int64_t bd = b * dim + d;                              \
                const float *A = p->A + d * N, bias = p->bias[d];            \
                const float *delta = p->delta + bd * L, *u = p->u + bd * L;  \
                const float *z = p->z + bd * L;                              \
                float *y = p->y + bd * L;                                    \
                for (int64_t n = 0; n < N; n++)                              \
                    h[n] = 0.0f;                                             \
                for (int64_t t0 = 0; t0 < L; t0 += PLAIN_TILE) {             \
                    const int64_t tn = L - t0 < PLAIN_TILE ? L - t0 : PLAIN_TILE; \
                    for (int64_t t = 0; t < tn; t++) {                       \
                        const float x = delta[t0 + t] + bias;                \
                        dtb[t] = x <= 20.0f ? log1pf(expf(x)) : x;           \
                    }                                                        \
                    for (int64_t t = 0; t < tn; t++)                         \
                        gate[t] = z[t0 + t] / (1.0f + expf(-z[t0 + t]));     \
                    for (int64_t t = 0; t < tn; t++) {                       \
                        const float dt = dtb[t], uu = u[t0 + t], du = dt * uu; \
                        const float *Bt = p->Bt + (b * L + t0 + t) * N;      \
                        const float *Ct = p->Ct + (b * L + t0 + t) * N;      \
                        float s = 0.0f;                                      \
                        for (int64_t n = 0; n < N; n++) {                    \
                            h[n] = expf(dt * A[n]) * h[n] + du * Bt[n];      \
                            s += Ct[n] * h[n];                               \
                        }                                                    \
                        y[t0 + t] = (s + p->D[d] * uu) * gate[t];            \
                    }                                                        \
                }                                                            \
            }                                                                \
    }

/* NCONST: dstate as a compile-time constant (16, Mamba's), so that the state
 * loop unrolls and h stays in registers, as a hand-written loop would; 0 for
 * any dstate. */
#define NCONST 16
static void plain16_generic(const bsp_args *p) PLAIN_BODY
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void plain16_avx2(const bsp_args *p) PLAIN_BODY
__attribute__((target("avx512f"))) static void plain16_avx512(const bsp_args *p) PLAIN_BODY
#endif
#undef NCONST
#define NCONST 0
static void plain_generic(const bsp_args *p) PLAIN_BODY
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void plain_avx2(const bsp_args *p) PLAIN_BODY
__attribute__((target("avx512f"))) static void plain_avx512(const bsp_args *p) PLAIN_BODY
#endif

/* GCC vectorizes expf through libmvec under -ffast-math; clang 14 does not
 * (no -fveclib=libmvec): its baseline is scalar expf, and says so. */
#if defined(__clang__)
#define VNOTE " (clang: scalar expf, no libmvec)"
#else
#define VNOTE " + libmvec"
#endif

const char *bsp_plain(const bsp_args *p)
{
    if (p->N > 64)
        return "dstate > 64";
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        if (p->N == 16)
            plain16_avx512(p);
        else
            plain_avx512(p);
        return "avx512" VNOTE;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        if (p->N == 16)
            plain16_avx2(p);
        else
            plain_avx2(p);
        return "avx2" VNOTE;
    }
#endif
    if (p->N == 16)
        plain16_generic(p);
    else
        plain_generic(p);
    return "generic" VNOTE;
}
