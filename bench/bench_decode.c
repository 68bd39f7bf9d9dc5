/*
 * bench_decode.c -- `ssm_bench decode [n_layer]`: decoding steps against
 * their floors (issue 13, targets 4 and 6).
 *
 *   triad:   STREAM triad a = b + s c over 3 x 64 MiB, at 1 and 2 threads:
 *            the bandwidth the weight-read floor is measured with.
 *   kernels: the step's projection shapes (mamba-130m: 768 -> 2x1536,
 *            1536 -> 80, 48 -> 1536, 1536 -> 768) for batch 1 and 8,
 *            through each instruction-set path of src/layers/gemv.c and
 *            through OpenBLAS (sgemv for batch 1, sgemm else: the step
 *            before issue 13), 1 thread.
 *   stack:   ssm_mamba_stack_step at the mamba-130m shape (d_model 768,
 *            24 layers), batch 1 and 8, at 1 and 2 threads; the weight-read
 *            floor = parameter bytes / triad bandwidth of the same thread
 *            count.  Targets: B=8 <= 1.5x B=1 (1 and 2 threads); B=8 at 2
 *            threads >= 1.5x faster than at 1; B=1 <= 1.2x the floor.
 *            At 1 thread also the bounds of B=8's products: the memory
 *            floor (their weight bytes / triad) and the FMA floor (8 x
 *            their multiply-adds at the batch-8 kernel's rate with weights
 *            in L2); full overlap of the two would take the larger, none
 *            their sum; the bench prints how much overlapped.
 *   bf16:    a language model (ssm/model.h, mamba-130m shape, tied
 *            embedding) written as a BF16 checkpoint, loaded three times:
 *            as float (converted at load), with keep_bf16 + bf16_exact
 *            (widened: a step from the same state gives the float model's
 *            bits, a prompt differs by float rounding) and with keep_bf16
 *            alone (the default: BF16 arithmetic, vdpbf16ps steps and
 *            oneDNN prompts where available; logits within 1e-2); step
 *            time batch 1 and 8 at 1 and 2 threads (target default / fp32
 *            <= 0.6 at batch 1), prefill L 512 and 2048 at 1 and 2 threads
 *            (docs/bf16.md).
 *   mamba2:  a Mamba-2 language model (mamba2-130m shape, F32) stepping
 *            1 and 8 slots: the batch in one call against the same slots
 *            one call each (as before stop 30), and each against its
 *            floor (weights plus the states read and written once, at the
 *            triad's rate).
 * Medians of repeats (SSM_BENCH_REPEATS, default 7) of 16 steps after 4
 * warm-up steps.  The load average is printed: this machine is shared.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <math.h>
#include <unistd.h>
#include <cblas.h>
#include <ssm.h>
#include "bench_util.h"
#include "layers/gemv.h"
#include "layers/gemv_bf16dp.h"
#include "layers/bf16_gemm.h"
#include "layers/layers_internal.h"

static void fill(float *x, int64_t n, uint64_t seed, double scale)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(scale * ((double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0));
    }
}

/* ---- STREAM triad ---- */

static double triad_gbs(int th)
{
    const int64_t n = (int64_t)16 << 20;      /* 64 MiB per array */
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b),
          *c = malloc((size_t)n * sizeof *c);
    if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
    bu_set_threads_blas(th);
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
    double t[16];
    int reps = 9;
    for (int r = 0; r < reps; r++) {
        double t0 = bu_now();
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        t[r] = bu_now() - t0;
    }
    /* best of the repeats, as STREAM reports */
    double best = t[0];
    for (int r = 1; r < reps; r++) if (t[r] < best) best = t[r];
    volatile float sink = a[n / 2];
    (void)sink;
    free(a); free(b); free(c);
    return 3.0 * (double)n * sizeof(float) / best * 1e-9;
}

/* ---- kernels ---- */

typedef struct kshape { const char *name; int64_t N, K; } kshape;

static double time_kernel(int isa, int blas, int64_t M, int64_t N, int64_t K,
                          const float *X, const float *W, float *out, int reps)
{
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = bu_now();
        for (int i = 0; i < 20; i++) {
            if (!blas)
                ssmi_xwt_ex(isa, M, N, K, X, K, W, NULL, K, out, N);
            else if (M == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, W,
                            (int)K, X, 1, 0.0f, out, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N,
                            (int)K, 1.0f, X, (int)K, W, (int)K, 0.0f, out, (int)N);
        }
        if (r >= 0) t[r] = (bu_now() - t0) / 20;
    }
    return bu_median(t, reps);
}

static void bench_kernels(int reps)
{
    static const kshape sh[] = {
        { "in_proj half 768->1536", 1536, 768 }, { "x_proj 1536->80", 80, 1536 },
        { "dt_proj 48->1536", 1536, 48 }, { "out_proj 1536->768", 768, 1536 },
    };
    bu_set_threads_blas(1);
    printf("\n   kernels, 1 thread, us per call (median of %d x 20); weights stay in L2/L3 here\n", reps);
    printf("   %-24s %5s %9s %9s %9s %9s\n", "shape", "batch", "OpenBLAS", "generic", "avx2", "avx512");
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        const int64_t N = sh[s].N, K = sh[s].K;
        float *W = bu_falloc((size_t)(N * K)), *X = bu_falloc((size_t)(8 * K)),
              *o = bu_falloc((size_t)(8 * N));
        if (!W || !X || !o) { free(W); free(X); free(o); return; }
        fill(W, N * K, 7 + s, 0.05);
        fill(X, 8 * K, 9 + s, 1.0);
        for (int64_t M = 1; M <= 8; M *= 8) {
            printf("   %-24s %5lld %9.2f", sh[s].name, (long long)M,
                   1e6 * time_kernel(0, 1, M, N, K, X, W, o, reps));
            for (int isa = SSMI_GEMV_GENERIC; isa <= SSMI_GEMV_AVX512; isa++) {
                if (ssmi_gemv_isa_ok(isa))
                    printf(" %9.2f", 1e6 * time_kernel(isa, 0, M, N, K, X, W, o, reps));
                else
                    printf(" %9s", "n/a");
            }
            printf("\n");
        }
        free(W); free(X); free(o);
    }
}

/* Multiply-adds per second of the batch-8 product kernel (dispatched
 * path, 1 thread) with its weights in L2: in_proj's half shape cut to 192
 * rows (576 KiB), so that memory plays no part.  Median of repeats. */
static double fma_rate_hot(int reps)
{
    const int64_t N = 192, K = 768, M = 8;
    float *W = bu_falloc((size_t)(N * K)), *X = bu_falloc((size_t)(M * K)),
          *o = bu_falloc((size_t)(M * N));
    double r = 0;
    if (W && X && o) {
        fill(W, N * K, 21, 0.05);
        fill(X, M * K, 22, 1.0);
        double t[64];
        if (reps > 64) reps = 64;
        for (int i = -1; i < reps; i++) {
            double t0 = bu_now();
            for (int j = 0; j < 200; j++)
                ssmi_xwt_ex(SSMI_GEMV_AUTO, M, N, K, X, K, W, NULL, K, o, N);
            if (i >= 0) t[i] = (bu_now() - t0) / 200;
        }
        r = (double)(M * N * K) / bu_median(t, reps);
    }
    free(W); free(X); free(o);
    return r;
}

/* ---- stack ---- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Batch 1 and batch 8 steps timed alternately (so that a change of load
 * on this shared machine hits both alike): medians of wall time per step,
 * and of process CPU time (meaningful at 1 thread: it excludes the time
 * other processes hold the core), and the stage shares of batch 8 / 1. */
static void stack_step_times(ssm_mamba_stack *stk, ssm_mamba_stack_state *st,
                             const float *xs, float *ys, int reps, int *rc,
                             double wall[2], double cpu[2], ssmi_mamba_timing tm[2])
{
    const int nstep = 16;
    double tw[2][64], tc[2][64];
    if (reps > 64) reps = 64;
    for (int bi = 0; bi < 2; bi++) {
        ssm_mamba_stack_state_reset(st);
        for (int k = 0; k < 4; k++)
            if (ssm_mamba_stack_step(stk, st, bi ? 8 : 1, xs, ys) != SSM_OK) *rc = 1;
        memset(&tm[bi], 0, sizeof tm[bi]);
    }
    for (int i = 0; i < reps; i++)
        for (int bi = 0; bi < 2; bi++) {
            double t0 = bu_now(), c0 = cpu_now();
            for (int k = 0; k < nstep; k++)
                if (ssmi_mamba_stack_step_ex(stk, st, bi ? 8 : 1, xs, ys, &tm[bi]) != SSM_OK) *rc = 1;
            tw[bi][i] = (bu_now() - t0) / nstep;
            tc[bi][i] = (cpu_now() - c0) / nstep;
        }
    for (int bi = 0; bi < 2; bi++) {
        wall[bi] = bu_median(tw[bi], reps);
        cpu[bi] = bu_median(tc[bi], reps);
    }
}

static void shares(const char *what, const ssmi_mamba_timing *t)
{
    double tot = t->gemm + t->scan + t->conv + t->norm;
    if (tot > 0)
        printf("       %-8s GEMV %4.1f%%  scan %4.1f%%  conv %4.1f%%  norm+residual %4.1f%%\n",
               what, 100 * t->gemm / tot, 100 * t->scan / tot, 100 * t->conv / tot, 100 * t->norm / tot);
}

static int bench_stack(int64_t nl, const double bw[3], int reps)
{
    const int64_t dm = 768, maxb = 8;
    ssm_mamba_config cfg = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba_stack *stk = NULL;
    ssm_mamba_stack_state *st = NULL;
    if (ssm_mamba_stack_create(&stk, &cfg, nl, 1234) != SSM_OK ||
        ssm_mamba_stack_state_create(&st, stk, maxb) != SSM_OK) {
        printf("   cannot create the stack\n");
        ssm_mamba_stack_destroy(stk);
        return 1;
    }
    int64_t params = (nl + 1) * dm;
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba *blk;
        ssm_mamba_stack_block(stk, l, &blk);
        for (int p = 0; p < SSM_MAMBA_NPARAMS; p++) {
            int64_t c = 0;
            if (ssm_mamba_param_count(blk, (ssm_mamba_param)p, &c) == SSM_OK) params += c;
        }
    }
    /* the four products' weights: what a step streams through the GEMVs */
    int64_t prod = 0;
    for (int64_t l = 0; l < nl; l++) {
        ssm_mamba *blk;
        ssm_mamba_stack_block(stk, l, &blk);
        static const ssm_mamba_param pp[4] = { SSM_MAMBA_IN_PROJ, SSM_MAMBA_X_PROJ,
                                               SSM_MAMBA_DT_PROJ_W, SSM_MAMBA_OUT_PROJ };
        for (int p = 0; p < 4; p++) {
            int64_t c = 0;
            if (ssm_mamba_param_count(blk, pp[p], &c) == SSM_OK) prod += c;
        }
    }
    const double bytes = (double)params * sizeof(float);
    float xs[8 * 768], ys[8 * 768];
    fill(xs, maxb * dm, 2, 1.0);
    int rc = 0;
    double t1[3], t8[3];
    printf("\n   Mamba stack step (d_model %lld, %lld layers, d_state 16, expand 2): %.1f MB of parameters, gemv path %s\n",
           (long long)dm, (long long)nl, bytes * 1e-6, ssmi_gemv_isa_name(ssmi_gemv_isa_auto()));
    for (int th = 1; th <= 2; th++) {
        bu_set_threads_blas(th);
        double w[2], c[2];
        ssmi_mamba_timing tm[2];
        stack_step_times(stk, st, xs, ys, reps, &rc, w, c, tm);
        t1[th] = w[0];
        t8[th] = w[1];
        double floor_s = bytes / (bw[th] * 1e9);
        printf("   %d thread%s  wall: batch 1 %7.3f ms  batch 8 %7.3f ms  floor %7.3f ms (%.1f GB/s)\n",
               th, th > 1 ? "s" : " ", 1e3 * t1[th], 1e3 * t8[th], 1e3 * floor_s, bw[th]);
        printf("       B=8 / B=1  %5.2f  (target <= 1.50)   B=1 / floor  %5.2f  (target <= 1.20)\n",
               t8[th] / t1[th], t1[th] / floor_s);
        if (th == 1) {
            printf("       CPU time: batch 1 %7.3f ms  batch 8 %7.3f ms: B=8 / B=1 %5.2f, B=1 / floor %5.2f\n",
                   1e3 * c[0], 1e3 * c[1], c[1] / c[0], c[0] / floor_s);
        }
        shares("batch 1", &tm[0]);
        shares("batch 8", &tm[1]);
        if (th == 1) {
            /* Why B=8 costs more than B=1 at 1 thread: its products must
             * both stream the weights (memory floor, as B=1) and do 8x the
             * multiply-adds (FMA floor, the 3 x 8 kernel's rate from L2);
             * how far the two overlap decides the ratio. */
            const double tot = tm[1].gemm + tm[1].scan + tm[1].conv + tm[1].norm;
            const double gemm8 = tot > 0 ? t8[1] * tm[1].gemm / tot : 0;
            const double rest8 = t8[1] - gemm8;
            const double fr = fma_rate_hot(reps);
            const double memf = (double)prod * sizeof(float) / (bw[1] * 1e9);
            const double fmaf = fr > 0 ? 8.0 * (double)prod / fr : 0;
            const double lo = (memf > fmaf ? memf : fmaf) + rest8, hi = memf + fmaf + rest8;
            printf("       batch 8 products %7.3f ms: memory floor %6.3f ms + FMA floor %6.3f ms (%.1f GFMA/s from L2);\n"
                   "       overlapped %.0f%% (B=8/B=1 with full overlap %4.2f, with none %4.2f; the rest %.3f ms)\n",
                   1e3 * gemm8, 1e3 * memf, 1e3 * fmaf, 1e-9 * fr,
                   fmaf > 0 ? 100.0 * (memf + fmaf - gemm8) / (memf < fmaf ? memf : fmaf) : 0.0,
                   lo / t1[1], hi / t1[1], 1e3 * rest8);
        }
    }
    printf("   B=8: 1 thread / 2 threads  %5.2f  (target >= 1.50)   B=1: %5.2f\n",
           t8[1] / t8[2], t1[1] / t1[2]);
    ssm_mamba_stack_state_destroy(st);
    ssm_mamba_stack_destroy(stk);
    return rc;
}

/* ---- bf16 language model ---- */

/* The models' steps timed in turn (load changes hit all alike): medians
 * of wall and process CPU time per step. */
static void model_step_times(int nm, ssm_model *const *m, ssm_model_state *const *s,
                             int64_t b, const int32_t *tok, float *lg, int reps, int *rc,
                             double *wall, double *cpu)
{
    const int nstep = 16;
    double tw[3][64], tc[3][64];
    if (reps > 64) reps = 64;
    for (int w = 0; w < nm; w++) {
        ssm_model_state_reset(s[w]);
        for (int k = 0; k < 4; k++)
            if (ssm_model_forward(m[w], s[w], b, 1, tok, lg) != SSM_OK) *rc = 1;
    }
    for (int i = 0; i < reps; i++)
        for (int w = 0; w < nm; w++) {
            double t0 = bu_now(), c0 = cpu_now();
            for (int k = 0; k < nstep; k++)
                if (ssm_model_forward(m[w], s[w], b, 1, tok, lg) != SSM_OK) *rc = 1;
            tw[w][i] = (bu_now() - t0) / nstep;
            tc[w][i] = (cpu_now() - c0) / nstep;
        }
    for (int w = 0; w < nm; w++) {
        wall[w] = bu_median(tw[w], reps);
        cpu[w] = bu_median(tc[w], reps);
    }
}

/* Removes a model directory written by bench_lm_model.c. */
static void rm_model_dir(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir); unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir); unlink(p);
    rmdir(dir);
}

static int bench_bf16(int nl, int reps)
{
    char dir[] = "/tmp/ssm_bench_bf16_XXXXXX";
    if (!mkdtemp(dir)) { printf("   bf16: no temporary directory\n"); return 1; }
    printf("\n   bf16 weights: language model, mamba-130m shape with %d layers, BF16 checkpoint\n", nl);
    const bu_lm_ranges rg = { 0.1, -4.0, -2.0, 0.5, 1.5, 1 };
    int rc = bu_write_mamba130m(dir, nl, SSM_DTYPE_BF16, 0x5eed, &rg);
    /* m16: keep_bf16 with bf16_exact (weights widened exactly: the float
     * model's logits); mdp: the default (vdpbf16ps where the CPU has it). */
    ssm_model *m32 = NULL, *m16 = NULL, *mdp = NULL;
    ssm_model_state *s32 = NULL, *s16 = NULL, *sdp = NULL;
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    if (rc != 0 || ssm_model_load(&m32, dir) != SSM_OK ||
        ssm_model_load_ex(&mdp, dir, &o) != SSM_OK ||
        (o.bf16_exact = 1, ssm_model_load_ex(&m16, dir, &o)) != SSM_OK ||
        ssm_model_state_create(&s32, m32, 8) != SSM_OK ||
        ssm_model_state_create(&s16, m16, 8) != SSM_OK ||
        ssm_model_state_create(&sdp, mdp, 8) != SSM_OK) {
        printf("   bf16: cannot write or load the model\n");
        rc = 1;
        goto out;
    }
    ssm_model_info i32, i16;
    ssm_model_info_init(&i32);
    ssm_model_info_init(&i16);
    ssm_model_get_info(m32, &i32);
    ssm_model_get_info(m16, &i16);
    printf("   weights in memory: fp32 %.1f MB, bf16 %.1f MB\n",
           (double)(i32.bytes_mapped + i32.bytes_owned) * 1e-6,
           (double)(i16.bytes_mapped + i16.bytes_owned) * 1e-6);
    int32_t tok[8];
    for (int i = 0; i < 8; i++) tok[i] = 17 + 1000 * i;
    float *l32 = malloc((size_t)8 * BU_VOC * sizeof *l32), *l16 = malloc((size_t)8 * BU_VOC * sizeof *l16);
    if (!l32 || !l16) { free(l32); free(l16); rc = 1; goto out; }
    /* The same values either way: the logits must agree bit for bit. */
    {
        int32_t pr[16];
        for (int i = 0; i < 16; i++) pr[i] = (int32_t)(i * 2741 % BU_VOC);
        ssm_model_forward(m32, s32, 1, 16, pr, l32);
        ssm_model_forward(m16, s16, 1, 16, pr, l16);
        double num = 0, den = 0;
        for (int i = 0; i < BU_VOC; i++) {
            double e = (double)l16[i] - l32[i];
            num += e * e;
            den += (double)l32[i] * l32[i];
        }
        /* a step from the same state: must be bit-identical */
        ssm_model_state_copy(s16, 0, s32, 0);
        ssm_model_forward(m32, s32, 1, 1, tok, l32);
        ssm_model_forward(m16, s16, 1, 1, tok, l16);
        double num2 = 0;
        for (int i = 0; i < BU_VOC; i++) {
            double e = (double)l16[i] - l32[i];
            num2 += e * e;
        }
        printf("   logits bf16-in-memory (exact) vs fp32 (same bf16 values): prefill (16 tokens) rel %.2e, step from the same state rel %.2e\n",
               sqrt(num / den), sqrt(num2 / den));
        /* the default (vdpbf16ps) step from the same state */
        ssm_model_state_copy(sdp, 0, s32, 0);
        ssm_model_state_copy(s16, 0, s32, 0);
        ssm_model_forward(m16, s16, 1, 1, tok, l32);
        ssm_model_forward(mdp, sdp, 1, 1, tok, l16);
        double num3 = 0, den3 = 0;
        for (int i = 0; i < BU_VOC; i++) {
            double e = (double)l16[i] - l32[i];
            num3 += e * e;
            den3 += (double)l32[i] * l32[i];
        }
        printf("   logits bf16 default (%s) vs fp32: step from the same state rel %.2e (target <= 1e-2)\n",
               ssmi_bf16dp_ok() ? "vdpbf16ps, activations rounded to BF16" : "no AVX512_BF16: exact path",
               sqrt(num3 / den3));
    }
    bu_set_threads_blas(bu_max_threads());
    /* Prefill, B=1 L=512 and 2048: fp32, bf16 exact (256-row tiles widened
     * for sgemm) and bf16 default (oneDNN bf16 matmul when built with it,
     * else the tiles) in turn, median of 3, at 1 and 2 threads. */
    for (int th = 1; th <= 2; th++) {
        bu_set_threads_blas(th);
        for (int LP = 512; LP <= 2048; LP *= 4) {
            int32_t *pt = malloc((size_t)LP * sizeof *pt);
            if (!pt) break;
            double tp[3][3];
            ssm_model *const ms[3] = { m32, m16, mdp };
            ssm_model_state *const ss[3] = { s32, s16, sdp };
            for (int i = 0; i < LP; i++) pt[i] = (int32_t)((i * 7919) % BU_VOC);
            for (int r = 0; r < 3; r++)
                for (int w = 0; w < 3; w++) {
                    ssm_model_state_reset(ss[w]);
                    double t0 = bu_now();
                    if (ssm_model_forward(ms[w], ss[w], 1, LP, pt, l32) != SSM_OK) rc = 1;
                    tp[w][r] = bu_now() - t0;
                }
            double a = bu_median(tp[0], 3), b = bu_median(tp[1], 3), c = bu_median(tp[2], 3);
            printf("   prefill B=1 L=%4d, %d thr: fp32 %.3f s  exact (tiles) %.3f s (%.2f)  default (%s) %.3f s  default/fp32 %.2f\n",
                   LP, th, a, b, b / a, ssmi_bf16_gemm_ok() ? "oneDNN" : "tiles", c, c / a);
            free(pt);
        }
    }
    printf("   steps: fp32, bf16 exact (bf16_exact = 1: widened), bf16 default (%s); medians of %d x 16 steps\n",
           ssmi_bf16dp_ok() ? "vdpbf16ps" : "= exact, no AVX512_BF16", reps);
    for (int th = 1; th <= 2; th++) {
        bu_set_threads_blas(th);
        for (int bi = 0; bi < 2; bi++) {
            int64_t b = bi ? 8 : 1;
            double w[3], c[3];
            ssm_model *const ms[3] = { m32, m16, mdp };
            ssm_model_state *const ss[3] = { s32, s16, sdp };
            model_step_times(3, ms, ss, b, tok, l32, reps, &rc, w, c);
            printf("   %d thread%s  batch %lld  wall: fp32 %7.3f ms  exact %7.3f ms (%4.2f)  default %7.3f ms  default/fp32 %4.2f%s\n",
                   th, th > 1 ? "s" : " ", (long long)b, 1e3 * w[0], 1e3 * w[1], w[1] / w[0],
                   1e3 * w[2], w[2] / w[0], bi ? "" : "  (target <= 0.60)");
            if (th == 1)
                printf("                       CPU:  fp32 %7.3f ms  exact %7.3f ms (%4.2f)  default %7.3f ms  default/fp32 %4.2f\n",
                       1e3 * c[0], 1e3 * c[1], c[1] / c[0], 1e3 * c[2], c[2] / c[0]);
        }
    }
    free(l32); free(l16);
out:
    ssm_model_state_destroy(s32);
    ssm_model_state_destroy(s16);
    ssm_model_state_destroy(sdp);
    ssm_model_destroy(m32);
    ssm_model_destroy(m16);
    ssm_model_destroy(mdp);
    rm_model_dir(dir);
    return rc;
}

/* ---- Mamba-2 language model ---- */

/* One step of every slot in one call (bi 1), of slot 0 alone (bi 0), or
 * of the 8 slots one call each (bi 2: how the model stepped them before
 * stop 30), timed in turn: medians of reps x 8 steps. */
static void m2_step_times(ssm_model *m, ssm_model_state *s, const int32_t *tok, float *lg,
                          int reps, int *rc, double t[3])
{
    static const int64_t slots[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    const int nstep = 8;
    double tw[3][64];
    if (reps > 64) reps = 64;
    for (int i = 0; i < reps; i++)
        for (int w = 0; w < 3; w++) {
            double t0 = bu_now();
            for (int k = 0; k < nstep; k++) {
                if (w < 2) {
                    if (ssm_model_forward_slots(m, s, w ? 8 : 1, slots, 1, tok, lg) != SSM_OK) *rc = 1;
                } else {
                    for (int b = 0; b < 8; b++)
                        if (ssm_model_forward_slots(m, s, 1, slots + b, 1, tok + b, lg) != SSM_OK) *rc = 1;
                }
            }
            tw[w][i] = (bu_now() - t0) / nstep;
        }
    for (int w = 0; w < 3; w++) t[w] = bu_median(tw[w], reps);
}

/* A Mamba-2 language model (mamba2-130m shape) stepping 1 and 8 slots:
 * the batch of 8 in one call (every weight read once) against the same 8
 * slots stepped one call each, and each against its floor: the weight
 * bytes plus the states read and written once, at the triad's rate. */
static int bench_mamba2(int nl, double bw[3], int reps)
{
    char dir[] = "/tmp/ssm_bench_m2_XXXXXX";
    if (!mkdtemp(dir)) { printf("   mamba2: no temporary directory\n"); return 1; }
    printf("\n   Mamba-2 language model, mamba2-130m shape with %d layers (d_state 128, headdim 64), F32\n", nl);
    ssm_model *m = NULL;
    ssm_model_state *s = NULL;
    float *lg = malloc((size_t)8 * BU_VOC * sizeof *lg);
    int rc = bu_write_mamba2_130m(dir, nl, 0x2eed);
    if (rc != 0 || !lg || ssm_model_load(&m, dir) != SSM_OK ||
        ssm_model_state_create(&s, m, 8) != SSM_OK) {
        printf("   mamba2: cannot write or load the model\n");
        rc = 1;
        goto out;
    }
    ssm_model_info in;
    ssm_model_info_init(&in);
    ssm_model_get_info(m, &in);
    const double wbytes = (double)(in.bytes_mapped + in.bytes_owned);
    const double sbytes = (double)nl * ((double)(BU_DI / BU2_P) * BU2_P * BU2_N +
                                        (double)(BU_DI + 2 * BU2_N) * BU_KC) * sizeof(float);
    printf("   weights %.1f MB, state %.1f MB a slot\n", wbytes * 1e-6, sbytes * 1e-6);
    for (int th = 1; th <= 2; th++)
        if (bw[th] <= 0) bw[th] = triad_gbs(th);
    int32_t tok[8], pr[16];
    for (int i = 0; i < 8; i++) tok[i] = 17 + 1000 * i;
    for (int b = 0; b < 8; b++) {
        const int64_t sl = b;
        for (int i = 0; i < 16; i++) pr[i] = (int32_t)((i * 2741 + 97 * b) % BU_VOC);
        if (ssm_model_forward_slots(m, s, 1, &sl, 16, pr, lg) != SSM_OK) rc = 1;
    }
    for (int th = 1; th <= 2; th++) {
        bu_set_threads_blas(th);
        double t[3];
        m2_step_times(m, s, tok, lg, reps, &rc, t);
        const double f1 = (wbytes + 2 * sbytes) / (bw[th] * 1e9), f8 = (wbytes + 16 * sbytes) / (bw[th] * 1e9);
        printf("   %d thread%s  batch 1 %7.3f ms (floor %6.3f, x%4.2f)  batch 8 %7.3f ms (floor %6.3f, x%4.2f)"
               "  8 slots one call each %7.3f ms: %4.2fx the batch\n",
               th, th > 1 ? "s" : " ", 1e3 * t[0], 1e3 * f1, t[0] / f1, 1e3 * t[1], 1e3 * f8, t[1] / f8,
               1e3 * t[2], t[2] / t[1]);
    }
out:
    free(lg);
    ssm_model_state_destroy(s);
    ssm_model_destroy(m);
    rm_model_dir(dir);
    return rc;
}

int bench_decode(int argc, char **argv)
{
    const int64_t nl = argc > 1 ? atoi(argv[1]) : 24;
    const char *only = argc > 2 ? argv[2] : "all";
    const int reps = bu_repeats(7);
    printf("\n== decode: steps vs their floors (issue 13, targets 4 and 6), %lld layers\n", (long long)nl);
    printf("   load average before the runs: %.2f\n", bu_loadavg());
    if (nl < 1) return 2;
    int rc = 0;
    double bw[3] = { 0, 0, 0 };
    if (!strcmp(only, "all") || !strcmp(only, "stack")) {
        bw[1] = triad_gbs(1);
        bw[2] = triad_gbs(2);
        printf("   STREAM triad: 1 thread %.1f GB/s, 2 threads %.1f GB/s\n", bw[1], bw[2]);
        rc |= bench_stack(nl, bw, reps);
    }
    if (!strcmp(only, "all") || !strcmp(only, "kernels"))
        bench_kernels(reps);
    if (!strcmp(only, "all") || !strcmp(only, "bf16"))
        rc |= bench_bf16((int)nl, reps);
    if (!strcmp(only, "all") || !strcmp(only, "mamba2"))
        rc |= bench_mamba2((int)nl, bw, reps);
    bu_set_threads_blas(bu_max_threads());
    printf("   load average after the runs: %.2f\n", bu_loadavg());
    return rc;
}
