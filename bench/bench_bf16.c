/*
 * bench_bf16.c -- `ssm_bench bf16 [L]`: prompt (prefill) products with BF16
 * weights (issue 13, target 6, docs/bf16.md).
 *
 * For each projection of a Mamba-1 layer at the mamba-130m shape (d_model
 * 768, d_inner 1536, dt_rank 48, d_state 16) and L tokens (default 512
 * and 2048), out[L][N] = X[L][K] W[N][K]^T, at 1 and 2 threads:
 *   fp32:   cblas_sgemm on float weights (the float model's prompt);
 *   tiles:  libssm's BF16 prompt path (src/models/run.c): 256-row tiles of
 *           W widened to float, one sgemm per tile;
 *   dnnl:   oneDNN's bf16 matmul (libdnnl-dev, when the bench was built
 *           with it): X rounded to BF16 (timed), W BF16 in its plain
 *           layout, float output; and "dnnl-packed": W reordered once
 *           (not timed) into the layout oneDNN picks ("any").
 * Medians of repeats (SSM_BENCH_REPEATS, default 7), the paths timed in
 * turn within each repeat.  Also: each path's normwise relative error
 * against a double product of the float X and the BF16 W, and whether
 * oneDNN gives the same bytes at 1 and 2 threads.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <math.h>
#include <time.h>
#include <cblas.h>
#include <ssm.h>
#include "bench_util.h"
#include "layers/gemv.h"

#ifdef SSM_BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static void set_threads(int n)
{
    bu_set_threads(n);
    void *s = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (s) {
        void (*fn)(int);
        memcpy(&fn, &s, sizeof fn);
        fn(n);
    }
}

static double loadavg1(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = -1;
    if (f) {
        if (fscanf(f, "%lf", &a) != 1) a = -1;
        fclose(f);
    }
    return a;
}

#define WTILE 256   /* as src/models/run.c */

/* run.c's prompt product for BF16 weights (mm_xwt, not transposed). */
static void tiles_xwt(int64_t M, int64_t N, int64_t K, const float *X,
                      const uint16_t *Wh, float *out, float *wt)
{
    for (int64_t j0 = 0; j0 < N; j0 += WTILE) {
        const int64_t nr = N - j0 < WTILE ? N - j0 : WTILE;
        ssmi_bf16_widen(Wh + j0 * K, wt, nr * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nr, (int)K,
                    1.0f, X, (int)K, wt, (int)K, 0.0f, out + j0, (int)N);
    }
}

static void fp32_xwt(int64_t M, int64_t N, int64_t K, const float *X,
                     const float *W, float *out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K,
                1.0f, X, (int)K, W, (int)K, 0.0f, out, (int)N);
}

#ifdef SSM_BENCH_HAVE_DNNL
typedef struct dnn {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t prim[2];    /* plain W, packed W */
    dnnl_memory_t src, wei[2], dst;
    void *packed;
    int ok;
} dnn;

#define DN(call) do { if ((call) != dnnl_success) { d->ok = 0; return; } } while (0)

/* The matmul primitives for out[M][N] = Xh[M][K] W^T, W [N][K] BF16. */
static void dnn_make(dnn *d, int64_t M, int64_t N, int64_t K, uint16_t *Xh,
                     uint16_t *Wh, float *out)
{
    memset(d, 0, sizeof *d);
    d->ok = 1;
    DN(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags));
    dnnl_memory_desc_t smd, wmd, wany, dmd;
    dnnl_dims_t sd = { M, K }, wd = { K, N }, dd = { M, N };
    DN(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_ba));   /* [N][K] rows */
    DN(dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_bf16, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
    DN(dnnl_memory_create(&d->src, &smd, d->eng, Xh));
    DN(dnnl_memory_create(&d->dst, &dmd, d->eng, out));
    DN(dnnl_memory_create(&d->wei[0], &wmd, d->eng, Wh));
    for (int v = 0; v < 2; v++) {
        dnnl_matmul_desc_t md;
        DN(dnnl_matmul_desc_init(&md, &smd, v ? &wany : &wmd, NULL, &dmd));
        dnnl_primitive_desc_t pd;
        DN(dnnl_primitive_desc_create(&pd, &md, NULL, d->eng, NULL));
        if (v) {
            /* Reorder W once into the layout the primitive wants. */
            const dnnl_memory_desc_t *pw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
            DN(dnnl_memory_create(&d->wei[1], pw, d->eng, DNNL_MEMORY_ALLOCATE));
            dnnl_primitive_desc_t rpd;
            DN(dnnl_reorder_primitive_desc_create(&rpd, &wmd, d->eng, pw, d->eng, NULL));
            dnnl_primitive_t r;
            DN(dnnl_primitive_create(&r, rpd));
            dnnl_exec_arg_t ra[2] = { { DNNL_ARG_FROM, d->wei[0] }, { DNNL_ARG_TO, d->wei[1] } };
            DN(dnnl_primitive_execute(r, d->st, 2, ra));
            DN(dnnl_stream_wait(d->st));
            dnnl_primitive_destroy(r);
            dnnl_primitive_desc_destroy(rpd);
        }
        DN(dnnl_primitive_create(&d->prim[v], pd));
        dnnl_primitive_desc_destroy(pd);
    }
}

static void dnn_free(dnn *d)
{
    for (int v = 0; v < 2; v++) {
        if (d->prim[v]) dnnl_primitive_destroy(d->prim[v]);
        if (d->wei[v]) dnnl_memory_destroy(d->wei[v]);
    }
    if (d->src) dnnl_memory_destroy(d->src);
    if (d->dst) dnnl_memory_destroy(d->dst);
    if (d->st) dnnl_stream_destroy(d->st);
    if (d->eng) dnnl_engine_destroy(d->eng);
}

/* X rounded to BF16 (timed: part of the path), then the matmul. */
static void dnn_run(dnn *d, int v, int64_t n, const float *X, uint16_t *Xh)
{
    for (int64_t i = 0; i < n; i++) Xh[i] = ssmi_f32_to_bf16(X[i]);
    dnnl_exec_arg_t a[3] = { { DNNL_ARG_SRC, d->src }, { DNNL_ARG_WEIGHTS, d->wei[v] },
                             { DNNL_ARG_DST, d->dst } };
    if (dnnl_primitive_execute(d->prim[v], d->st, 3, a) != dnnl_success) d->ok = 0;
    dnnl_stream_wait(d->st);
}
#endif

/* Normwise relative error of out against the double product. */
static double relerr(int64_t M, int64_t N, int64_t K, const float *X,
                     const uint16_t *Wh, const float *out)
{
    double num = 0, den = 0;
    /* every 7th row keeps it cheap at L 2048 */
    for (int64_t i = 0; i < M; i += 7)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)X[i * K + k] * (double)ssmi_bf16_to_f32(Wh[j * K + k]);
            double e = (double)out[i * N + j] - s;
            num += e * e;
            den += s * s;
        }
    return sqrt(num / den);
}

int bench_bf16(int argc, char **argv)
{
    const int reps = bu_repeats(7);
    int64_t Ls[2] = { 512, 2048 };
    int nL = 2;
    if (argc > 1) { Ls[0] = atoi(argv[1]); nL = 1; }
    static const struct { const char *name; int64_t N, K; } sh[] = {
        { "in_proj  768 -> 3072", 3072, 768 },
        { "x_proj  1536 -> 80", 80, 1536 },
        { "dt_proj   48 -> 1536", 1536, 48 },
        { "out_proj 1536 -> 768", 768, 1536 },
    };
    printf("\n== bf16: prompt products with BF16 weights (issue 13, target 6)\n");
    printf("   load average before: %.2f; medians of %d repeats, ms per product\n", loadavg1(), reps);
#ifdef SSM_BENCH_HAVE_DNNL
    {
        const dnnl_version_t *v = dnnl_version();
        printf("   oneDNN %d.%d.%d (cpu runtime %u, isa %s)\n", v->major, v->minor, v->patch,
               v->cpu_runtime, "as dispatched; ONEDNN_VERBOSE=1 names the kernel");
    }
#else
    printf("   oneDNN: not built in (install libdnnl-dev and reconfigure)\n");
#endif
    int rc = 0;
    for (int li = 0; li < nL; li++) {
        const int64_t L = Ls[li];
        for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
            const int64_t N = sh[s].N, K = sh[s].K;
            float *X = malloc((size_t)(L * K) * sizeof *X);
            float *W = malloc((size_t)(N * K) * sizeof *W);
            uint16_t *Wh = malloc((size_t)(N * K) * sizeof *Wh);
            uint16_t *Xh = malloc((size_t)(L * K) * sizeof *Xh);
            float *o[4], *wt = malloc((size_t)(WTILE * K) * sizeof *wt);
            for (int p = 0; p < 4; p++) o[p] = malloc((size_t)(L * N) * sizeof(float));
            if (!X || !W || !Wh || !Xh || !wt || !o[0] || !o[1] || !o[2] || !o[3]) {
                printf("   no memory\n");
                return 1;
            }
            uint64_t r = 12345 + (uint64_t)s;
            for (int64_t i = 0; i < L * K; i++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                X[i] = (float)((double)(r >> 11) * 0x1.0p-53 * 2.0 - 1.0);
            }
            for (int64_t i = 0; i < N * K; i++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                Wh[i] = ssmi_f32_to_bf16((float)(((double)(r >> 11) * 0x1.0p-53 * 2.0 - 1.0) * 0.05));
                W[i] = ssmi_bf16_to_f32(Wh[i]);
            }
            int have_dnn = 0;
#ifdef SSM_BENCH_HAVE_DNNL
            dnn d;
            dnn_make(&d, L, N, K, Xh, Wh, o[2]);
            have_dnn = d.ok;
            float *o1 = malloc((size_t)(L * N) * sizeof(float));
#endif
            printf("   L %5lld  %-22s", (long long)L, sh[s].name);
            double gflop = 2e-9 * (double)L * (double)N * (double)K;
            double med[2][4];
            for (int th = 1; th <= 2; th++) {
                set_threads(th);
                double t[4][64];
                int R = reps > 64 ? 64 : reps;
                for (int i = -1; i < R; i++)       /* i = -1: warm-up */
                    for (int p = 0; p < 4; p++) {
                        double t0 = bu_now();
                        if (p == 0) fp32_xwt(L, N, K, X, W, o[0]);
                        else if (p == 1) tiles_xwt(L, N, K, X, Wh, o[1], wt);
#ifdef SSM_BENCH_HAVE_DNNL
                        else if (have_dnn) dnn_run(&d, p - 2, L * K, X, Xh);
#endif
                        if (i >= 0) t[p][i] = bu_now() - t0;
                    }
                for (int p = 0; p < 4; p++) med[th - 1][p] = bu_median(t[p], R);
#ifdef SSM_BENCH_HAVE_DNNL
                if (have_dnn) {
                    dnn_run(&d, 1, L * K, X, Xh);
                    if (th == 1) memcpy(o1, o[2], (size_t)(L * N) * sizeof(float));
                    else if (memcmp(o1, o[2], (size_t)(L * N) * sizeof(float)))
                        printf("[oneDNN 1 vs 2 threads: DIFFERENT bytes] ");
                }
#endif
            }
            printf("\n");
            for (int th = 1; th <= 2; th++) {
                double *m = med[th - 1];
                printf("      %d thr: fp32 %7.3f  tiles %7.3f (%.2fx fp32)", th, 1e3 * m[0], 1e3 * m[1],
                       m[1] / m[0]);
                if (have_dnn)
                    printf("  dnnl %7.3f  dnnl-packed %7.3f (%.2fx tiles, %.0f GFLOP/s)", 1e3 * m[2],
                           1e3 * m[3], m[3] / m[1], gflop / m[3]);
                printf("\n");
            }
            /* Accuracy of each path against the double product. */
            fp32_xwt(L, N, K, X, W, o[0]);
            tiles_xwt(L, N, K, X, Wh, o[1], wt);
            printf("      rel. error vs double: fp32 %.1e  tiles %.1e", relerr(L, N, K, X, Wh, o[0]),
                   relerr(L, N, K, X, Wh, o[1]));
#ifdef SSM_BENCH_HAVE_DNNL
            if (have_dnn) {
                dnn_run(&d, 1, L * K, X, Xh);
                printf("  dnnl %.1e (X rounded to BF16)", relerr(L, N, K, X, Wh, o[2]));
            }
            dnn_free(&d);
            free(o1);
#endif
            printf("\n");
            free(X); free(W); free(Wh); free(Xh); free(wt);
            for (int p = 0; p < 4; p++) free(o[p]);
        }
    }
    set_threads(bu_max_threads());
    printf("   load average after: %.2f\n", loadavg1());
    return rc;
}
