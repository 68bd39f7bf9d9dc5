/*
 * bench_scan.c -- `ssm_bench scan`: the selective scan (Mamba S6) against the
 * plain scalar loop of API.md's recurrence (float, libm expf, no fast-math,
 * one thread, Mamba's [B][G][N][L] layout), both in this process.
 *
 * For each shape: median time at 1 and 2 threads, state updates per second
 * (batch*dim*len*dstate / s), bytes of input and output per second, the
 * speedup over the plain loop and from 1 to 2 threads.  All options on, as in
 * a Mamba layer: D, z, delta_bias, softplus.
 *
 * The plain loop is slow on the big shapes, so it is timed on a subset of the
 * channels and scaled (said in the output).  For the shapes that take the
 * time-chunked path, the 1-to-2-thread ratio is also given against the
 * sequential path's 1-thread rate, measured on an equal-work proxy of 16
 * batch rows of one channel (batch*dim > 8 takes the sequential path, one
 * channel per work unit as on the shape itself).  The proxy is optimistic
 * for the sequential path: its rows of B and C are 16x shorter, so their
 * strided tile reads alias less in the caches than len = 2^22 rows do (the
 * public API has no switch to force a path on the shape itself).
 */
#include <math.h>
#include <ssm.h>
#include "bench_util.h"

typedef struct scan_data {
    ssm_scan_args a;
    float *buf;
} scan_data;

static uint64_t bs_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double bs_unif(uint64_t *s) { return ((double)(bs_rng(s) >> 11) + 0.5) * 0x1.0p-53; }
static float bs_normal(uint64_t *s)
{
    return (float)(sqrt(-2.0 * log(bs_unif(s))) * cos(6.283185307179586 * bs_unif(s)));
}

static int data_make(scan_data *sd, int64_t batch, int64_t dim, int64_t N, int64_t L)
{
    const int64_t nx = batch * dim * L, nb = batch * N * L;
    const int64_t tot = 4 * nx + 2 * nb + dim * N + 2 * dim;
    sd->buf = malloc((size_t)tot * sizeof(float));
    if (!sd->buf)
        return -1;
    float *p = sd->buf;
    ssm_scan_args *a = &sd->a;
    memset(a, 0, sizeof *a);
    a->batch = batch; a->dim = dim; a->dstate = N; a->len = L; a->ngroups = 1;
    float *u = p; p += nx;
    float *delta = p; p += nx;
    float *z = p; p += nx;
    a->y = p; p += nx;
    float *B = p; p += nb;
    float *C = p; p += nb;
    float *A = p; p += dim * N;
    float *D = p; p += dim;
    float *bias = p;
    uint64_t s = 42;
    for (int64_t i = 0; i < nx; i++) {
        u[i] = bs_normal(&s);
        z[i] = bs_normal(&s);
        double dt = exp(log(1e-3) + (log(1e-1) - log(1e-3)) * bs_unif(&s));
        delta[i] = (float)log(expm1(dt));
    }
    for (int64_t i = 0; i < nb; i++) {
        B[i] = bs_normal(&s);
        C[i] = bs_normal(&s);
    }
    for (int64_t i = 0; i < dim * N; i++)
        A[i] = (float)-exp(log(16.0) * bs_unif(&s));
    for (int64_t d = 0; d < dim; d++) {
        D[d] = bs_normal(&s);
        bias[d] = 0.0f;
    }
    a->u = u; a->delta = delta; a->z = z; a->B = B; a->C = C; a->A = A;
    a->D = D; a->delta_bias = bias; a->delta_softplus = 1;
    return 0;
}

/* The obvious C baseline: API.md's recurrence, channel by channel, over
 * channels [0, nch) of every batch row. */
static void plain_loop(const ssm_scan_args *a, int64_t nch, float *y)
{
    const int64_t N = a->dstate, L = a->len, dim = a->dim, G = a->ngroups;
    float h[1024];
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t d = 0; d < nch; d++) {
            const int64_t g = d / (dim / G), bd = b * dim + d;
            for (int64_t n = 0; n < N; n++)
                h[n] = 0.0f;
            for (int64_t t = 0; t < L; t++) {
                float x = a->delta[bd * L + t] + a->delta_bias[d];
                float dt = x <= 20.0f ? log1pf(expf(x)) : x;
                float uu = a->u[bd * L + t], s = 0.0f;
                for (int64_t n = 0; n < N; n++) {
                    int64_t ib = ((b * G + g) * N + n) * L + t;
                    h[n] = expf(dt * a->A[d * N + n]) * h[n] + dt * a->B[ib] * uu;
                    s += a->C[ib] * h[n];
                }
                s += a->D[d] * uu;
                float zz = a->z[bd * L + t];
                y[bd * L + t] = s * (zz / (1.0f + expf(-zz)));
            }
        }
}

typedef struct plain_ctx { const ssm_scan_args *a; int64_t nch; float *y; } plain_ctx;
static void plain_fn(void *c)
{
    plain_ctx *p = c;
    plain_loop(p->a, p->nch, p->y);
}
static void lib_fn(void *c)
{
    if (ssm_selective_scan((const ssm_scan_args *)c) != SSM_OK)
        fprintf(stderr, "scan failed\n");
}

/* Median seconds of the library at `threads`. */
static double time_lib(ssm_scan_args *a, int threads, int reps)
{
    bu_set_threads(threads);
    return bu_time(lib_fn, a, reps);
}

int bench_scan(int argc, char **argv)
{
    /* `ssm_bench scan [i]`: only shape i (0-3). */
    const int only = argc > 1 ? atoi(argv[1]) : -1;
    const int64_t shapes[][4] = {
        { 1, 1536, 16, 2048 }, { 8, 1536, 16, 2048 },
        { 1, 64, 16, 1 << 20 }, { 1, 1, 16, 1 << 22 },
    };
    const int maxt = bu_max_threads() < 2 ? bu_max_threads() : 2;
    printf("\nselective scan (softplus, bias, D, z on; ngroups 1); plain = scalar C loop, 1 thread\n");
    printf("%-22s %3s %10s %9s %8s %8s %8s\n", "batch,dim,N,len", "thr", "median ms",
           "Gupd/s", "GB/s", "x plain", "x 1thr");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        if (only >= 0 && (size_t)only != si)
            continue;
        const int64_t Bn = shapes[si][0], dim = shapes[si][1], N = shapes[si][2], L = shapes[si][3];
        scan_data sd;
        if (data_make(&sd, Bn, dim, N, L) != 0) {
            printf("(%lld,%lld,%lld,%lld): out of memory, skipped\n", (long long)Bn,
                   (long long)dim, (long long)N, (long long)L);
            continue;
        }
        const double upd = (double)Bn * dim * L * N;
        const double bytes = 4.0 * ((double)Bn * dim * L * 4 + 2.0 * Bn * N * L);
        /* Validate first: the library against the plain loop on a few channels. */
        const int64_t nsub = dim < 4 ? dim : 4;
        float *yp = malloc((size_t)(Bn * dim * L) * sizeof(float));
        if (!yp) { free(sd.buf); continue; }
        bu_set_threads(maxt);
        lib_fn(&sd.a);
        plain_loop(&sd.a, nsub, yp);
        double num = 0, den = 0;
        for (int64_t b = 0; b < Bn; b++)
            for (int64_t i = 0; i < nsub * L; i++) {
                double dd = (double)sd.a.y[b * dim * L + i] - yp[b * dim * L + i];
                num += dd * dd;
                den += (double)yp[b * dim * L + i] * yp[b * dim * L + i];
            }
        /* Plain loop: all channels if < ~1.5e8 updates, else a subset, scaled. */
        int64_t nch = dim;
        while (nch > 1 && (double)Bn * nch * L * N > 1.5e8)
            nch /= 2;
        plain_ctx pc = { &sd.a, nch, yp };
        const double tp = bu_time(plain_fn, &pc, bu_repeats(3)) * (double)dim / (double)nch;
        const int reps = bu_repeats(upd > 5e8 ? 5 : 11);
        double t1 = time_lib(&sd.a, 1, reps);
        double t2 = maxt >= 2 ? time_lib(&sd.a, 2, reps) : t1;
        char name[64];
        snprintf(name, sizeof name, "(%lld,%lld,%lld,%lld)", (long long)Bn, (long long)dim,
                 (long long)N, (long long)L);
        printf("%-22s plain loop %.1f ms%s, %.3f Gupd/s; check vs plain: rel err %.1e\n",
               name, 1e3 * tp, nch < dim ? " (timed on a subset of channels, scaled)" : "",
               upd / tp * 1e-9, den > 0 ? sqrt(num / den) : sqrt(num));
        printf("%-22s %3d %10.2f %9.3f %8.2f %8.1f %8s\n", "", 1, 1e3 * t1, upd / t1 * 1e-9,
               bytes / t1 * 1e-9, tp / t1, "");
        printf("%-22s %3d %10.2f %9.3f %8.2f %8.1f %8.2f\n", "", maxt, 1e3 * t2, upd / t2 * 1e-9,
               bytes / t2 * 1e-9, tp / t2, t1 / t2);
        if (Bn * dim <= 8) {
            /* Same work on many channels takes the sequential path: its
             * 1-thread rate is that path's rate on this shape. */
            /* 16 batch rows of one channel each: batch*dim > 8 takes the
             * sequential path, one channel per work unit as here. */
            scan_data pr;
            int64_t pd = 16, pl = L * Bn * dim / 16;
            if (pl >= 1 && data_make(&pr, pd, 1, N, pl) == 0) {
                double ts = time_lib(&pr.a, 1, reps);
                double ts_eq = ts * upd / ((double)pd * pl * N);
                printf("%-22s sequential path at 1 thread, equal-work proxy (16,%lld,%lld,%lld) (optimistic): "
                       "%.2f ms, %.3f Gupd/s; 2 threads vs the faster 1-thread path: %.2fx\n",
                       "", (long long)1, (long long)N, (long long)pl, 1e3 * ts_eq,
                       upd / ts_eq * 1e-9, (ts_eq < t1 ? ts_eq : t1) / t2);
                free(pr.buf);
            }
        }
        free(yp);
        free(sd.buf);
    }
    bu_set_threads(bu_max_threads());
    return 0;
}
