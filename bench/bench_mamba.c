/*
 * bench_mamba.c -- `ssm_bench mamba`: a residual Mamba stack shaped like
 * mamba-130m (d_model 768, 24 layers, d_state 16, d_conv 4, expand 2,
 * dt_rank 48) with random (default-initialised) weights.
 *
 *   prompt: batch 1, L = 2048 tokens, one stack forward (tokens/s)
 *   step:   streaming, batch 1 and 8, one token per sequence per call
 * at 1 and 2 threads (OpenMP, and OpenBLAS through openblas_set_num_threads
 * when that symbol is present: the OpenMP build of OpenBLAS follows
 * omp_set_num_threads anyway, the pthreads build needs the explicit call).
 * Prints the share of time in GEMM / scan / conv / norms+residual, from
 * ssm_mamba_stack_*_ex's per-stage timers.  There are no explicit
 * transposes: the scan's [B][Di][L] layout comes straight out of the GEMMs
 * (W x^T, ys^T W^T), so their cost is inside the GEMM share.
 *
 * The prompt forward is expensive (~0.37 TFLOP per run), so it uses few
 * repeats: median of 3, no separate warm-up (SSM_BENCH_REPEATS overrides);
 * steps: median of 5 runs of 32 tokens after 4 warm-up steps.  On a shared
 * machine, OpenMP threads that spin-wait while other processes hold the
 * cores slow the 2-thread runs dramatically: the load average is printed,
 * and OMP_WAIT_POLICY=passive helps there.  Validate first: prompt + steps
 * must equal one forward to rounding.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <math.h>
#include <ssm.h>
#include "bench_util.h"
#include "layers/layers_internal.h"

static double relerr(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void fill(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
}

static void print_shares(const char *what, const ssmi_mamba_timing *t)
{
    double tot = t->gemm + t->scan + t->conv + t->norm;
    if (tot <= 0)
        return;
    printf("    %-24s GEMM %5.1f%%  scan %5.1f%%  conv %5.1f%%  norm+residual %5.1f%%  transposes 0%% (in GEMM)\n",
           what, 100 * t->gemm / tot, 100 * t->scan / tot, 100 * t->conv / tot,
           100 * t->norm / tot);
}

int bench_mamba(int argc, char **argv)
{
    (void)argc; (void)argv;
    const int64_t dm = 768, nl = 24, Lp = 2048, nstep = 32, maxb = 8;
    printf("\n== mamba: residual stack like mamba-130m (d_model %lld, %lld layers, d_state 16, d_conv 4, expand 2, dt_rank 48)\n",
           (long long)dm, (long long)nl);
    bu_print_blas_load();

    ssm_mamba_config cfg = { sizeof(ssm_mamba_config), dm, 0, 0, 0, 0 };
    ssm_mamba_stack *stk = NULL;
    ssm_mamba_stack_state *st = NULL;
    if (ssm_mamba_stack_create(&stk, &cfg, nl, 1234) != SSM_OK ||
        ssm_mamba_stack_state_create(&st, stk, maxb) != SSM_OK) {
        printf("   cannot create the stack (out of memory?)\n");
        ssm_mamba_stack_destroy(stk);
        return 1;
    }
    float *x = malloc((size_t)(Lp * dm) * sizeof *x);
    float *y = malloc((size_t)(Lp * dm) * sizeof *y);
    float *xs = malloc((size_t)(maxb * dm) * sizeof *xs);
    float *ys = malloc((size_t)(maxb * dm) * sizeof *ys);
    if (!x || !y || !xs || !ys) {
        printf("   out of memory\n");
        free(x); free(y); free(xs); free(ys);
        ssm_mamba_stack_state_destroy(st);
        ssm_mamba_stack_destroy(stk);
        return 1;
    }
    fill(x, Lp * dm, 1);
    fill(xs, maxb * dm, 2);

    /* Validate: 16-token forward == 8-token prompt (state) + 8 steps. */
    {
        const int64_t L = 16, P = 8;
        float *yv = malloc((size_t)(L * dm) * sizeof *yv);
        int ok = yv != NULL;
        ok = ok && ssm_mamba_stack_forward(stk, NULL, 1, L, x, y) == SSM_OK;
        ok = ok && ssm_mamba_stack_state_reset(st) == SSM_OK;
        ok = ok && ssm_mamba_stack_forward(stk, st, 1, P, x, yv) == SSM_OK;
        for (int64_t t = P; ok && t < L; t++)
            ok = ssm_mamba_stack_step(stk, st, 1, x + t * dm, yv + t * dm) == SSM_OK;
        if (!ok) {
            printf("   validation run failed\n");
            free(yv); free(x); free(y); free(xs); free(ys);
            ssm_mamba_stack_state_destroy(st);
            ssm_mamba_stack_destroy(stk);
            return 1;
        }
        printf("   check: 8-token prompt + 8 steps vs 16-token forward, rel. error %.2e\n",
               relerr(yv, y, L * dm));
        free(yv);
    }

    const int prep = bu_repeats(3), srep = bu_repeats(5);
    int rc = 0;
    for (int th = 1; th <= 2; th++) {
        bu_set_threads_blas(th);
        /* prompt */
        ssmi_mamba_timing tm = { 0, 0, 0, 0 };
        double t[64];
        int n = prep > 64 ? 64 : prep;
        /* No separate warm-up: the validation run warmed the caches and
         * the median of 3 discards a slow first run. */
        for (int i = 0; i < n; i++) {
            double t0 = bu_now();
            if (ssmi_mamba_stack_forward_ex(stk, NULL, 1, Lp, x, y, &tm) != SSM_OK)
                rc = 1;
            t[i] = bu_now() - t0;
        }
        double med = bu_median(t, n);
        printf("   %d thread%s  prompt  batch 1, L %lld: %8.3f s  %9.1f tokens/s  (median of %d)\n",
               th, th > 1 ? "s" : " ", (long long)Lp, med, (double)Lp / med, n);
        print_shares("prompt", &tm);
        fflush(stdout);

        /* streaming steps */
        for (int64_t b = 1; b <= maxb; b *= 8) {
            ssmi_mamba_timing ts = { 0, 0, 0, 0 };
            int m = srep > 64 ? 64 : srep;
            ssm_mamba_stack_state_reset(st);
            for (int64_t k = 0; k < 4; k++)   /* warm-up */
                if (ssm_mamba_stack_step(stk, st, b, xs, ys) != SSM_OK)
                    rc = 1;
            for (int i = 0; i < m; i++) {
                double t0 = bu_now();
                for (int64_t k = 0; k < nstep; k++)
                    if (ssmi_mamba_stack_step_ex(stk, st, b, xs, ys, &ts) != SSM_OK)
                        rc = 1;
                t[i] = bu_now() - t0;
            }
            double ms = bu_median(t, m);
            printf("   %d thread%s  step    batch %lld:          %8.3f ms/token-step  %9.1f tokens/s  (median of %d x %lld steps)\n",
                   th, th > 1 ? "s" : " ", (long long)b, 1e3 * ms / (double)nstep,
                   (double)(b * nstep) / ms, m, (long long)nstep);
            char what[32];
            snprintf(what, sizeof what, "step batch %lld", (long long)b);
            print_shares(what, &ts);
            fflush(stdout);
        }
    }
    bu_set_threads_blas(bu_max_threads());
    free(x); free(y); free(xs); free(ys);
    ssm_mamba_stack_state_destroy(st);
    ssm_mamba_stack_destroy(stk);
    return rc;
}
