/*
 * bench_conv.c -- `ssm_bench conv`: the convolution mode of S4/S4D against
 * the bare FFTW floor, and its recurrent twin.
 *
 * For H = 256 channels, n = 64 modes, L = 4096 and 65536, batch 1 and 8,
 * at 1 and 2 OpenMP threads, medians of SSM_BENCH_REPEATS (default 5):
 *   kernel_diag  ssm_kernel_diag (S4D Vandermonde), per channel
 *   kernel_dplr  ssm_kernel_dplr on the NPLR form of LegS (S4), per channel
 *                (both timed on a subset of KSUB channels, parallel over
 *                them, and scaled to H: printed as "x H" figures)
 *   conv         ssm_conv_execute (kernel spectra + rows)
 *   cached       ssm_conv_execute_spectrum (kernel spectra precomputed)
 *   floor        bare FFTW in this process: one r2c per kernel row, one r2c
 *                and one c2r per input row, same padded length, same
 *                threads, no copies (conv must be within 1.5x of it)
 *   floor_noK    the same without the kernel transforms (cached within 1.5x)
 *   scan         ssm_diag_scan over all rows (at L = 65536 on a subset of
 *                SSUB channels and scaled to H, said so in the output)
 * Every timed path is validated first (conv against the direct sum on
 * sampled outputs, cached = conv bytes, scan against conv of the
 * ssm_kernel_diag kernel).
 */
#include <complex.h>
#include <math.h>
#include <fftw3.h>
#include <ssm.h>

#include "bench_util.h"

/* CMPLX is defined by glibc for GCC only; build it through the array
 * representation of a complex number (C11 6.2.5p13). */
static inline double complex bench_cmplx(double re, double im)
{ union { double complex z; double p[2]; } u; u.p[0] = re; u.p[1] = im; return u.z; }

#define BH 256
#define BN 64
#define KSUB 8    /* channels timed for the kernels, scaled to BH */
#define SSUB 16   /* channels timed for the scan at large L, scaled to BH */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Interleaved timing of nf bodies: repeat r runs body 0, 1, ..., nf-1 in
 * turn, so that a change of machine load hits every body alike (the ratios
 * are what matter).  Medians of wall and of process CPU time (the latter
 * robust to other processes on a loaded machine). */
#define MAXF 4
static void time_interleaved(void (*const *fn)(void *), void *const *ctx,
                             int nf, int reps, double *wall, double *cpu)
{
    double tw[MAXF][64], tc[MAXF][64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        for (int f = 0; f < nf; f++) {
            const double c0 = cpu_now(), w0 = bu_now();
            fn[f](ctx[f]);
            tw[f][r] = bu_now() - w0;
            tc[f][r] = cpu_now() - c0;
        }
    }
    for (int f = 0; f < nf; f++) {
        wall[f] = bu_median(tw[f], reps);
        cpu[f] = bu_median(tc[f], reps);
    }
}

typedef struct brng { uint64_t s; } brng;
static double bnormal(brng *r)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) * 0x1.0p-53;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

/* ---- timed bodies ------------------------------------------------------ */

typedef struct ctx {
    int64_t H, L, B, N, n;
    const float *K, *D, *u;
    float *y;
    ssm_conv_plan *plan;
    ssm_conv_spectrum *spec;
    fftwf_plan r2c, c2r;
    int with_k;
    ssm_status st;
    /* kernels */
    const double complex *Ad, *Bd, *C;              /* [KSUB][n] diag */
    const double complex *lam, *P, *Bt, *Cd;        /* dplr, shared A */
    const double *dt;                               /* [KSUB] */
    double *Kd;                                     /* [KSUB][L] */
    /* scan */
    int64_t Hs;
    const float complex *fAd, *fBd, *fC;
} ctx;

static void run_conv(void *p)
{
    ctx *c = p;
    c->st |= ssm_conv_execute(c->plan, c->B, c->K, c->D, c->u, c->y);
}

static void run_cached(void *p)
{
    ctx *c = p;
    c->st |= ssm_conv_execute_spectrum(c->plan, c->spec, c->B, c->D, c->u, c->y);
}

/* The bare transforms the convolution needs, nothing else: r2c from a fixed
 * padded input, c2r into another buffer (the values stay bounded, no
 * copies of u or y). */
static void run_floor(void *p)
{
    ctx *c = p;
    const int64_t H = c->H, B = c->B, N = c->N;
#pragma omp parallel
    {
        float *r = fftwf_malloc((size_t)N * sizeof(float));
        float *o = fftwf_malloc((size_t)N * sizeof(float));
        fftwf_complex *z = fftwf_malloc((size_t)(N / 2 + 1) * sizeof(fftwf_complex));
        if (r != NULL && o != NULL && z != NULL) {
            for (int64_t i = 0; i < N; i++) r[i] = i < c->L ? (float)(i % 7) - 3.0f : 0.0f;
            if (c->with_k) {
#pragma omp for schedule(static)
                for (int64_t h = 0; h < H; h++)
                    fftwf_execute_dft_r2c(c->r2c, r, z);
            }
#pragma omp for collapse(2) schedule(static)
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++) {
                    fftwf_execute_dft_r2c(c->r2c, r, z);
                    fftwf_execute_dft_c2r(c->c2r, z, o);
                }
        }
        fftwf_free(r);
        fftwf_free(o);
        fftwf_free(z);
    }
}

static void run_kdiag(void *p)
{
    ctx *c = p;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(|:bad)
    for (int64_t h = 0; h < KSUB; h++)
        bad |= ssm_kernel_diag(c->n, c->Ad + h * c->n, c->Bd + h * c->n,
                               c->C + h * c->n, c->L, c->Kd + h * c->L) != SSM_OK;
    c->st |= bad ? SSM_ERR_ARG : SSM_OK;
}

static void run_kdplr(void *p)
{
    ctx *c = p;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(|:bad)
    for (int64_t h = 0; h < KSUB; h++)
        bad |= ssm_kernel_dplr(c->n, 1, c->lam, c->P, c->P, c->Bt,
                               c->Cd + h * c->n, c->dt[h], c->L,
                               c->Kd + h * c->L) != SSM_OK;
    c->st |= bad ? SSM_ERR_ARG : SSM_OK;
}

static void run_scan(void *p)
{
    ctx *c = p;
    c->st |= ssm_diag_scan(c->B, c->Hs, c->n, c->L, c->fAd, c->fBd, c->fC,
                           c->D, c->u, NULL, NULL, c->y);
}

/* ---- validation -------------------------------------------------------- */

/* Conv against the direct sum on a few outputs of a few rows; returns the
 * worst |err| / (eps log2 N ||K|| ||u||). */
static double check_conv(const ctx *c)
{
    double worst = 0;
    const int64_t rows[3] = {0, c->H - 1, (c->B - 1) * c->H + c->H / 2};
    for (int i = 0; i < 3; i++) {
        const int64_t row = rows[i], h = row % c->H;
        const float *K = c->K + h * c->L, *u = c->u + row * c->L;
        double kk = 0, uu = 0;
        for (int64_t t = 0; t < c->L; t++) { kk += (double)K[t] * K[t]; uu += (double)u[t] * u[t]; }
        const int64_t ts[4] = {0, 1, c->L / 3, c->L - 1};
        for (int j = 0; j < 4; j++) {
            const int64_t t = ts[j];
            double s = (double)c->D[h] * u[t];
            for (int64_t q = 0; q <= t; q++) s += (double)K[q] * u[t - q];
            const double e = fabs(s - c->y[row * c->L + t]) /
                             (1.19e-7 * log2((double)c->N) * sqrt(kk * uu));
            if (e > worst) worst = e;
        }
    }
    return worst;
}

static double relerr(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

/* Float parameters promoted back to double in a non-inlined function: GCC
 * 12's SLP vectorizer can fold (double)(float)x to x when the rounding and
 * the promotion meet in one function. */
__attribute__((noinline))
static void promote(const float complex *a, int64_t m, double complex *p)
{
    for (int64_t i = 0; i < m; i++) p[i] = bench_cmplx(crealf(a[i]), cimagf(a[i]));
}

/* ---- driver ------------------------------------------------------------ */

int bench_conv(int argc, char **argv)
{
    (void)argc; (void)argv;
    const int reps = bu_repeats(5);
    const int64_t Ls[2] = {4096, 65536}, Bs[2] = {1, 8};
    const int threads[2] = {1, 2};
    const int64_t H = BH, n = BN;
    int rc = 0;
    printf("conv: H=%d channels, n=%d modes, median of %d (SSM_BENCH_REPEATS)\n",
           BH, BN, reps);
    printf("  kernels: timed on %d channels in parallel, scaled to H=%d; scan at L=65536 on %d channels, scaled\n",
           KSUB, BH, SSUB);
    printf("  floor = bare FFTW r2c per kernel row + r2c/c2r per input row; floor_noK without the kernel rows\n");
    fflush(stdout);

    /* S4D system: LIN-like lambda is irrelevant for speed; use the S4D
     * LEGS init, ZOH, dt log-spaced; S4: the NPLR form of LegS. */
    double complex *lam = malloc(sizeof(double complex) * (size_t)n);
    double complex *Pt = malloc(sizeof(double complex) * (size_t)n);
    double complex *Btt = malloc(sizeof(double complex) * (size_t)n);
    double complex *V = malloc(sizeof(double complex) * (size_t)(n * n));
    double complex *lam4 = malloc(sizeof(double complex) * (size_t)n);
    double complex *ones = malloc(sizeof(double complex) * (size_t)n);
    double complex *Ad = malloc(sizeof(double complex) * (size_t)(H * n));
    double complex *Bd = malloc(sizeof(double complex) * (size_t)(H * n));
    double complex *Cc = malloc(sizeof(double complex) * (size_t)(H * n));
    float complex *fAd = malloc(sizeof(float complex) * (size_t)(H * n));
    float complex *fBd = malloc(sizeof(float complex) * (size_t)(H * n));
    float complex *fC = malloc(sizeof(float complex) * (size_t)(H * n));
    double dt[BH];
    float D[BH];
    if (!lam || !Pt || !Btt || !V || !lam4 || !ones || !Ad || !Bd || !Cc || !fAd || !fBd || !fC) {
        fprintf(stderr, "conv: out of memory\n");
        return 1;
    }
    int have_dplr = ssm_hippo_nplr(SSM_LEGS, n, 1, lam, Pt, Btt, V) == SSM_OK;
    if (ssm_s4d_lambda(SSM_S4D_LEGS, n, lam4) != SSM_OK &&
        ssm_s4d_lambda(SSM_S4D_LIN, n, lam4) != SSM_OK) {
        fprintf(stderr, "conv: ssm_s4d_lambda failed\n");
        return 1;
    }
    brng r = {2024};
    for (int64_t k = 0; k < n; k++) ones[k] = 1.0;
    for (int64_t h = 0; h < H; h++) {
        dt[h] = exp(log(1e-3) + (log(1e-1) - log(1e-3)) * (double)h / (double)(H - 1));
        D[h] = (float)bnormal(&r);
        if (ssm_discretize_diag(SSM_ZOH, n, lam4, ones, dt[h], Ad + h * n, Bd + h * n) != SSM_OK) {
            fprintf(stderr, "conv: ssm_discretize_diag failed\n");
            return 1;
        }
        for (int64_t k = 0; k < n; k++) {
            Cc[h * n + k] = bench_cmplx(bnormal(&r), bnormal(&r)) * sqrt(0.5);
            fAd[h * n + k] = (float complex)Ad[h * n + k];
            fBd[h * n + k] = (float complex)Bd[h * n + k];
            fC[h * n + k] = (float complex)(2.0 * Cc[h * n + k]);
        }
    }
    /* the conv kernel is built from the float parameters, as the layer does */
    promote(fAd, H * n, Ad);
    promote(fBd, H * n, Bd);
    promote(fC, H * n, Cc);

    for (int li = 0; li < 2; li++) {
        const int64_t L = Ls[li];
        const int64_t Bmax = Bs[1];
        float *K = malloc(sizeof(float) * (size_t)(H * L));
        float *u = malloc(sizeof(float) * (size_t)(Bmax * H * L));
        float *y = malloc(sizeof(float) * (size_t)(Bmax * H * L));
        float *y2 = malloc(sizeof(float) * (size_t)(Bmax * H * L));
        double *Kd = malloc(sizeof(double) * (size_t)(H > KSUB ? H : KSUB) * (size_t)L);
        if (!K || !u || !y || !y2 || !Kd) {
            fprintf(stderr, "conv: out of memory at L=%lld\n", (long long)L);
            free(K); free(u); free(y); free(y2); free(Kd);
            return 1;
        }
        for (int64_t i = 0; i < Bmax * H * L; i++) u[i] = (float)bnormal(&r);
        ctx c = {0};
        c.H = H; c.L = L; c.n = n; c.K = K; c.D = D; c.u = u; c.y = y;
        c.Ad = Ad; c.Bd = Bd; c.C = Cc; c.lam = lam; c.P = Pt; c.Bt = Btt;
        c.Cd = Cc; c.dt = dt; c.Kd = Kd; c.fAd = fAd; c.fBd = fBd; c.fC = fC;
        /* the full kernel, once, untimed */
        bu_set_threads(2);
        int kbad = 0;
#pragma omp parallel for schedule(static) reduction(|:kbad)
        for (int64_t h = 0; h < H; h++) {
            kbad |= ssm_kernel_diag(n, Ad + h * n, Bd + h * n, Cc + h * n, L, Kd + h * L) != SSM_OK;
        }
        if (kbad) { fprintf(stderr, "conv: ssm_kernel_diag failed\n"); return 1; }
        for (int64_t i = 0; i < H * L; i++) K[i] = (float)Kd[i];
        if (ssm_conv_plan_create(&c.plan, H, L) != SSM_OK ||
            ssm_conv_spectrum_create(&c.spec, c.plan, K) != SSM_OK) {
            fprintf(stderr, "conv: plan failed\n");
            return 1;
        }
        ssm_conv_plan_info(c.plan, NULL, NULL, &c.N);
        {
            float *rb = fftwf_malloc(sizeof(float) * (size_t)c.N);
            fftwf_complex *cb = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(c.N / 2 + 1));
            c.r2c = fftwf_plan_dft_r2c_1d((int)c.N, rb, cb, FFTW_ESTIMATE);
            c.c2r = fftwf_plan_dft_c2r_1d((int)c.N, cb, rb, FFTW_ESTIMATE);
            fftwf_free(rb);
            fftwf_free(cb);
        }
        printf("\n  L=%lld (FFT length %lld)\n", (long long)L, (long long)c.N);
        for (int ti = 0; ti < 2; ti++) {
            const int T = threads[ti];
            bu_set_threads(T);
            c.st = SSM_OK;
            const int kr = L > 8192 && reps > 3 ? 3 : reps;
            double tkd = bu_time(run_kdiag, &c, kr) * (double)H / KSUB;
            double tkp = -1;
            if (have_dplr) {
                ctx c2 = c;
                c2.st = SSM_OK;
                run_kdplr(&c2);
                if (c2.st == SSM_OK) tkp = bu_time(run_kdplr, &c2, kr) * (double)H / KSUB;
            }
            printf("  T=%d kernel_diag %8.2f ms (x H)   kernel_dplr ", T, 1e3 * tkd);
            if (tkp >= 0) printf("%8.2f ms (x H)\n", 1e3 * tkp);
            else printf("     n/a (ssm_kernel_dplr failed)\n");
            fflush(stdout);
            for (int bi = 0; bi < 2; bi++) {
                const int64_t B = Bs[bi];
                c.B = B;
                c.st = SSM_OK;
                /* validate */
                run_conv(&c);
                const double cerr = check_conv(&c);
                c.y = y2;
                run_cached(&c);
                c.y = y;
                const int same = memcmp(y, y2, sizeof(float) * (size_t)(B * H * L)) == 0;
                if (c.st != SSM_OK || cerr > 30.0 || !same) {
                    printf("  VALIDATION FAILED: status %d, conv ratio %.3g, cached same %d\n",
                           (int)c.st, cerr, same);
                    rc = 1;
                    continue;
                }
                /* the largest case (~0.5 GB per array, seconds per call)
                 * with at most 3 repeats, to keep the run to minutes; the
                 * validation calls above were the warm-up */
                const int rp = B * L > 65536 * 4 && reps > 3 ? 3 : reps;
                ctx ck = c, c0 = c;
                ck.with_k = 1;
                c0.with_k = 0;
                void (*const fns[4])(void *) = {run_conv, run_cached, run_floor, run_floor};
                void *const ctxs[4] = {&c, &c, &ck, &c0};
                double tw[4], tc[4];
                run_floor(&ck);
                time_interleaved(fns, ctxs, 4, rp, tw, tc);
                const double tconv = tw[0], tcach = tw[1], tfl = tw[2], tfl0 = tw[3];
                /* scan: all channels at L = 4096, a subset at 65536 */
                c.Hs = L > 8192 ? SSUB : H;
                const float *usave = c.u;
                float *us = NULL;
                if (c.Hs < H) {
                    /* rows of the first Hs channels, contiguous [B][Hs][L] */
                    us = malloc(sizeof(float) * (size_t)(B * c.Hs * L));
                    if (us == NULL) { fprintf(stderr, "conv: out of memory\n"); return 1; }
                    for (int64_t b = 0; b < B; b++)
                        memcpy(us + b * c.Hs * L, u + b * H * L, sizeof(float) * (size_t)(c.Hs * L));
                    c.u = us;
                }
                c.y = y2;
                run_scan(&c);
                /* recurrent vs convolution on the scanned rows */
                double serr = 0;
                for (int64_t b = 0; b < B; b++) {
                    double e = relerr(y + b * H * L, y2 + b * c.Hs * L, c.Hs * L);
                    if (e > serr) serr = e;
                }
                const double tscan = bu_time(run_scan, &c, rp) * (double)H / (double)c.Hs;
                c.y = y;
                c.u = usave;
                free(us);
                if (c.st != SSM_OK) { printf("  a timed call failed\n"); rc = 1; }
                printf("  T=%d B=%lld conv %8.2f ms  cached %8.2f ms  floor %8.2f ms  floor_noK %8.2f ms"
                       "  conv/floor %.2f%s  cached/floor_noK %.2f%s\n",
                       T, (long long)B, 1e3 * tconv, 1e3 * tcach, 1e3 * tfl, 1e3 * tfl0,
                       tconv / tfl, tconv / tfl <= 1.5 ? "" : " (>1.5!)",
                       tcach / tfl0, tcach / tfl0 <= 1.5 ? "" : " (>1.5!)");
                printf("           by CPU time: conv/floor %.2f  cached/floor_noK %.2f\n",
                       tc[0] / tc[2], tc[1] / tc[3]);
                printf("           scan %8.2f ms%s  [valid: conv ratio %.2g/30, scan vs conv %.2e]\n",
                       1e3 * tscan, c.Hs < H ? " (x H from a channel subset)" : "", cerr, serr);
                fflush(stdout);
            }
        }
        ssm_conv_spectrum_destroy(c.spec);
        ssm_conv_plan_destroy(c.plan);
        fftwf_destroy_plan(c.r2c);
        fftwf_destroy_plan(c.c2r);
        free(K); free(u); free(y); free(y2); free(Kd);
    }
    free(lam); free(Pt); free(Btt); free(V); free(lam4); free(ones);
    free(Ad); free(Bd); free(Cc); free(fAd); free(fBd); free(fC);
    return rc;
}
