/*
 * ssm_demo.c -- libssm's main program: synthetic memory tasks that show,
 * with no Python anywhere, that HiPPO/S4 state-space models remember, that
 * the convolution and recurrent modes compute the same thing, and what
 * selectivity (Mamba) adds.  Everything is generated from --seed.
 *
 *   delay           recall u(t - tau) from a LegT memory (closed-form readout)
 *   copy            K one-hot tokens, a gap of T blanks, recall all K
 *   reconstruct     the last window of a smooth signal from the final state
 *   selective-copy  data tokens among noise tokens: LTI vs selective memory
 *
 * LTI outputs come from the convolution mode (ssm_kernel_dense per readout
 * row, ssm_conv_execute) or from the recurrent mode (ssm_lti_scan), both
 * built from the same float-rounded Ad, Bd, C.  Exit status: 0 success,
 * 1 a library error or the two modes disagreeing by more than 1e-5,
 * 2 a bad command line.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lapacke.h>
#include <ssm.h>

#define PI 3.14159265358979323846

/* Largest accepted normwise relative difference between the two modes: both
 * are float computations of the same float parameters, so they agree to a
 * few float roundings (eps_f = 6e-8) times a modest growth. */
#define MODE_TOL 1e-5

enum { MODE_CONV = 1, MODE_REC = 2 };
enum { T_DELAY = 1, T_COPY = 2, T_RECON = 4, T_SEL = 8, T_ALL = 15 };

#define MAXPTS 64

typedef struct demo {
    int modes;
    unsigned tasks;
    int64_t n, len;
    uint64_t seed;
    ssm_disc disc;
    const char *csv_path, *plot_path;
    int quiet, tty;
    int bar;             /* a progress bar is on the terminal */
    FILE *csv;
    double max_diff;     /* largest conv-vs-recurrent difference seen */
    /* data kept for --plot */
    int64_t pd_m, pd_n, pd_tau, pd_theta;
    double *pd_u, *pd_y, *pd_y8;             /* delay: u(t - tau), recall at n, at 8 */
    int64_t pr_m, pr_n;
    double *pr_u, *pr_legt, *pr_fout;       /* reconstruct, oldest first */
    int pc_cnt;
    int64_t pc_n[MAXPTS], pc_T[MAXPTS];
    double pc_acc[MAXPTS];                  /* copy: accuracy vs gap */
    int ps_have;
    double ps_lti, ps_sel, ps_chance;       /* selective-copy */
} demo;

/* ------------------------------------------------------------------ */
/* small utilities                                                      */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ssm_demo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xcalloc(int64_t count, size_t elem)
{
    if (count < 1)
        count = 1;
    if ((uint64_t)count > SIZE_MAX / elem)
        die("out of memory (%" PRId64 " x %zu bytes)", count, elem);
    void *p = calloc((size_t)count, elem);
    if (!p)
        die("out of memory (%" PRId64 " x %zu bytes)", count, elem);
    return p;
}

static void check(ssm_status st, const char *what)
{
    if (st != SSM_OK)
        die("%s failed: %s", what, ssm_status_string(st));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64 with an explicit state: every task derives its own stream
 * from --seed, so one task's output does not depend on which others ran. */
typedef struct rng { uint64_t s; } rng;
static uint64_t rng_u64(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(rng *r) { return ((double)(rng_u64(r) >> 11) + 0.5) * 0x1.0p-53; }
static double rng_normal(rng *r)
{
    double a = rng_unif(r), b = rng_unif(r);
    return sqrt(-2.0 * log(a)) * cos(2.0 * PI * b);
}
static int64_t rng_below(rng *r, int64_t m) { return (int64_t)(rng_u64(r) % (uint64_t)m); }
static rng task_rng(const demo *d, uint64_t task) { rng r = { d->seed ^ (task * 0xD1B54A32D192ED03ull) }; rng_u64(&r); return r; }

/* Progress bar on stderr, only when stderr is a terminal. */
static void progress(demo *d, const char *task, double frac)
{
    if (!d->tty || d->quiet)
        return;
    if (frac < 0) {                      /* clear the line */
        if (d->bar)
            fprintf(stderr, "\r%60s\r", "");
        d->bar = 0;
        return;
    }
    int w = 30, k = (int)(frac * w + 0.5);
    fprintf(stderr, "\r%-15s [", task);
    for (int i = 0; i < w; i++)
        fputc(i < k ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%%", (int)(100 * frac + 0.5));
    d->bar = 1;
    fflush(stderr);
}

static void say(demo *d, const char *fmt, ...)
{
    if (d->quiet)
        return;
    if (d->bar) {                        /* wipe the progress bar first */
        fprintf(stderr, "\r%60s\r", "");
        d->bar = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *mode_name(int mode) { return mode == MODE_CONV ? "conv" : "recurrent"; }

/* One CSV record: task,mode,n,setting,metric,value,seconds */
static void csv_row(const demo *d, const char *task, const char *mode, int64_t n,
                    const char *setting, const char *metric, double value,
                    double secs)
{
    if (!d->csv)
        return;
    fprintf(d->csv, "%s,%s,%" PRId64 ",%s,%s,%.6e,%.4f\n", task, mode, n,
            setting, metric, value, secs);
}

/* ||a - b||_2 / ||b||_2 in double. */
static double relnorm_f(const float *a, const float *b, int64_t m)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < m; i++) {
        double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Legendre P_0..P_{n-1} at x by the three-term recurrence. */
static void legendre(int64_t n, double x, double *p)
{
    p[0] = 1.0;
    if (n > 1)
        p[1] = x;
    for (int64_t k = 1; k + 1 < n; k++)
        p[k + 1] = ((double)(2 * k + 1) * x * p[k] - (double)k * p[k - 1]) / (double)(k + 1);
}

/* The closed-form readout row of API.md's HiPPO table: the coefficients r
 * with u(t - s) ~ sum_k r_k x_k, for a window theta and delay s.
 *   LegT: r_k = s_k P_k(1 - 2 s/theta), s_k = sqrt(2k+1)
 *   FouT: r_0 = 1, r_2j = sqrt2 cos(2 pi j s/theta), r_2j+1 = sqrt2 sin(...) */
static void readout_row(ssm_measure m, int64_t n, double theta, double s, double *r)
{
    if (m == SSM_LEGT) {
        legendre(n, 1.0 - 2.0 * s / theta, r);
        for (int64_t k = 0; k < n; k++)
            r[k] *= sqrt(2.0 * (double)k + 1.0);
    } else {
        for (int64_t k = 0; k < n; k++) {
            int64_t j = k / 2;
            double ph = 2.0 * PI * (double)j * s / theta;
            if (k == 0)
                r[k] = 1.0;
            else if (k == 1)
                r[k] = 0.0;
            else
                r[k] = sqrt(2.0) * ((k % 2) ? sin(ph) : cos(ph));
        }
    }
}

/* Sample offset of the readout.  Both rules here feed u_t alone into step
 * t, i.e. they treat u as held over (t-1, t] (ZOH exactly; bilinear to
 * first order), so the sample u_{t-tau} sits at the centre tau + 1/2 of its
 * interval in the continuous window.  Measured on the delay task: the
 * NRMSE drops from ~2e-2 (offset 0) to ~1e-4 (offset 1/2). */
#define READ_OFFSET 0.5

/* ------------------------------------------------------------------ */
/* the LTI memory and its two evaluation modes                          */

typedef struct memory {
    int64_t n;
    float *Ad, *Bd;   /* float-rounded: both modes start from these */
} memory;

/* HiPPO measure m with window theta samples (A/theta, B/theta, API.md),
 * discretized with a step of one sample. */
static memory memory_make(const demo *d, ssm_measure m, int64_t n, double theta)
{
    memory mem = { n, xcalloc(n * n, sizeof(float)), xcalloc(n, sizeof(float)) };
    double *A = xcalloc(n * n, sizeof(double)), *B = xcalloc(n, sizeof(double));
    double *Ad = xcalloc(n * n, sizeof(double)), *Bd = xcalloc(n, sizeof(double));
    check(ssm_hippo(m, n, A, B), "ssm_hippo");
    for (int64_t i = 0; i < n * n; i++)
        A[i] /= theta;
    for (int64_t i = 0; i < n; i++)
        B[i] /= theta;
    check(ssm_discretize(d->disc, n, A, B, 1.0, Ad, Bd), "ssm_discretize");
    for (int64_t i = 0; i < n * n; i++)
        mem.Ad[i] = (float)Ad[i];
    for (int64_t i = 0; i < n; i++)
        mem.Bd[i] = (float)Bd[i];
    free(A); free(B); free(Ad); free(Bd);
    return mem;
}

static void memory_free(memory *m) { free(m->Ad); free(m->Bd); }

/* y [batch][nout][L] = readout C [nout][n] of the memory driven by
 * u [batch][L], from a zero state, in one mode.
 *   conv:      K_o[l] = C_o Ad^l Bd (ssm_kernel_dense on the float
 *              parameters promoted to double), then ssm_conv_execute with
 *              u repeated over the nout channels.
 *   recurrent: ssm_lti_scan. */
static void lti_eval(int mode, const memory *mem, int64_t nout, const float *C,
                     int64_t batch, int64_t L, const float *u, float *y)
{
    int64_t n = mem->n;
    if (mode == MODE_REC) {
        check(ssm_lti_scan(batch, n, nout, L, mem->Ad, mem->Bd, C, NULL, u, NULL,
                           NULL, y), "ssm_lti_scan");
        return;
    }
    double *Ad = xcalloc(n * n, sizeof(double)), *Bd = xcalloc(n, sizeof(double));
    double *Co = xcalloc(n, sizeof(double)), *Kd = xcalloc(L, sizeof(double));
    float *K = xcalloc(nout * L, sizeof(float));
    for (int64_t i = 0; i < n * n; i++)
        Ad[i] = mem->Ad[i];
    for (int64_t i = 0; i < n; i++)
        Bd[i] = mem->Bd[i];
    for (int64_t o = 0; o < nout; o++) {
        for (int64_t i = 0; i < n; i++)
            Co[i] = C[o * n + i];
        check(ssm_kernel_dense(n, Ad, Bd, Co, L, Kd), "ssm_kernel_dense");
        for (int64_t l = 0; l < L; l++)
            K[o * L + l] = (float)Kd[l];
    }
    float *ur = xcalloc(batch * nout * L, sizeof(float));
    for (int64_t b = 0; b < batch; b++)
        for (int64_t o = 0; o < nout; o++)
            memcpy(ur + (b * nout + o) * L, u + b * L, (size_t)L * sizeof(float));
    ssm_conv_plan *plan = NULL;
    check(ssm_conv_plan_create(&plan, nout, L), "ssm_conv_plan_create");
    check(ssm_conv_execute(plan, batch, K, NULL, ur, y), "ssm_conv_execute");
    ssm_conv_plan_destroy(plan);
    free(Ad); free(Bd); free(Co); free(Kd); free(K); free(ur);
}

/* Record the difference between the modes' outputs (--mode both). */
static void mode_diff(demo *d, const char *task, int64_t n, const char *setting,
                      const float *yc, const float *yr, int64_t m)
{
    double e = relnorm_f(yc, yr, m);
    if (e > d->max_diff || e != e)
        d->max_diff = e != e ? INFINITY : e;
    csv_row(d, task, "both", n, setting, "mode_diff", e, 0.0);
    if (e > MODE_TOL || e != e)
        fprintf(stderr, "ssm_demo: %s %s: conv and recurrent differ by %.3e > %.0e\n",
                task, setting, e, MODE_TOL);
}

/* Band-limited random signal, unit RMS: a sum of cosines with random
 * frequencies below fmax (cycles per sample), amplitudes and phases. */
static void bandlimited(rng *r, int64_t L, double fmax, float *u)
{
    enum { Q = 24 };
    double f[Q], a[Q], ph[Q];
    for (int q = 0; q < Q; q++) {
        f[q] = fmax * rng_unif(r);
        a[q] = rng_normal(r);
        ph[q] = 2.0 * PI * rng_unif(r);
    }
    double ss = 0;
    double *v = xcalloc(L, sizeof(double));
    for (int64_t t = 0; t < L; t++) {
        double s = 0;
        for (int q = 0; q < Q; q++)
            s += a[q] * cos(2.0 * PI * f[q] * (double)t + ph[q]);
        v[t] = s;
        ss += s * s;
    }
    double sc = ss > 0 ? 1.0 / sqrt(ss / (double)L) : 1.0;
    for (int64_t t = 0; t < L; t++)
        u[t] = (float)(v[t] * sc);
    free(v);
}

/* n = 4, 8, 16, ... below nmax, then nmax itself. */
static int n_sweep(int64_t nmin, int64_t nmax, int even, int64_t *ns)
{
    int c = 0;
    for (int64_t v = nmin; v < nmax && c < 15; v *= 2)
        ns[c++] = v;
    ns[c++] = even && (nmax % 2) ? nmax - 1 : nmax;
    return c;
}

/* ------------------------------------------------------------------ */
/* task 1: delay                                                        */

#define DELAY_BW 4.0   /* signal bandwidth: cycles per window theta */

static void task_delay(demo *d)
{
    const int64_t L = d->len;
    const double theta = (double)(L / 4 < 256 ? L / 4 : 256);
    const int NT = 4;
    int64_t tau[4];
    for (int i = 0; i < NT; i++)
        tau[i] = (int64_t)llround(theta * (i + 1) / NT);
    rng r = task_rng(d, 1);
    float *u = xcalloc(L, sizeof(float));
    bandlimited(&r, L, DELAY_BW / theta, u);

    int64_t ns[16];
    int nn = n_sweep(4, d->n, 0, ns);
    say(d, "\n== delay: recall u(t - tau) from a LegT memory, window theta = %g, %s, "
           "signal band %.0f cycles/window, L = %" PRId64 "\n", theta,
        d->disc == SSM_ZOH ? "ZOH" : "bilinear", DELAY_BW, L);
    say(d, "%-10s %5s", "mode", "n");
    for (int i = 0; i < NT; i++)
        say(d, "  tau=%-6" PRId64, tau[i]);
    say(d, "  %8s\n", "time[s]");
    say(d, "%-10s %5s", "", "");
    for (int i = 0; i < NT; i++)
        say(d, "  %-10s", "NRMSE");
    say(d, "\n");

    int step = 0, steps = nn * ((d->modes & MODE_CONV ? 1 : 0) + (d->modes & MODE_REC ? 1 : 0));
    for (int in = 0; in < nn; in++) {
        const int64_t n = ns[in];
        memory mem = memory_make(d, SSM_LEGT, n, theta);
        float *C = xcalloc(NT * n, sizeof(float));
        double *row = xcalloc(n, sizeof(double));
        for (int i = 0; i < NT; i++) {
            readout_row(SSM_LEGT, n, theta, (double)tau[i] + READ_OFFSET, row);
            for (int64_t k = 0; k < n; k++)
                C[i * n + k] = (float)row[k];
        }
        float *y[2] = { NULL, NULL };
        for (int mi = 0; mi < 2; mi++) {
            int mode = mi == 0 ? MODE_CONV : MODE_REC;
            if (!(d->modes & mode))
                continue;
            y[mi] = xcalloc(NT * L, sizeof(float));
            double t0 = now();
            lti_eval(mode, &mem, NT, C, 1, L, u, y[mi]);
            double secs = now() - t0;
            say(d, "%-10s %5" PRId64, mode_name(mode), n);
            for (int i = 0; i < NT; i++) {
                /* error over t >= theta, once the window has filled */
                double num = 0, den = 0;
                for (int64_t t = (int64_t)theta; t < L; t++) {
                    double e = (double)y[mi][i * L + t] - (double)u[t - tau[i]];
                    num += e * e;
                    den += (double)u[t - tau[i]] * (double)u[t - tau[i]];
                }
                double nrmse = sqrt(num / den);
                char set[32];
                snprintf(set, sizeof set, "tau=%" PRId64, tau[i]);
                csv_row(d, "delay", mode_name(mode), n, set, "nrmse", nrmse, secs);
                say(d, "  %-10.3e", nrmse);
            }
            say(d, "  %8.3f\n", secs);
            progress(d, "delay", (double)++step / steps);
            if (n == 8 && in < nn - 1 && (mode == MODE_REC || !(d->modes & MODE_REC))) {
                int64_t m = (int64_t)(2 * theta), t0s = L - m;
                free(d->pd_y8);
                d->pd_y8 = xcalloc(m, sizeof(double));
                for (int64_t t = 0; t < m; t++)
                    d->pd_y8[t] = y[mi][1 * L + t0s + t];
            }
            /* plot: the largest n, tau = theta/2, the last 2 theta samples */
            if (in == nn - 1 && (mode == MODE_REC || !(d->modes & MODE_REC))) {
                int64_t m = (int64_t)(2 * theta), t0s = L - m;
                free(d->pd_u); free(d->pd_y);
                d->pd_u = xcalloc(m, sizeof(double));
                d->pd_y = xcalloc(m, sizeof(double));
                d->pd_m = m; d->pd_n = n; d->pd_tau = tau[1]; d->pd_theta = (int64_t)theta;
                for (int64_t t = 0; t < m; t++) {
                    d->pd_u[t] = u[t0s + t - tau[1]];
                    d->pd_y[t] = y[mi][1 * L + t0s + t];
                }
            }
        }
        if (y[0] && y[1]) {
            char set[32];
            snprintf(set, sizeof set, "n=%" PRId64, n);
            mode_diff(d, "delay", n, set, y[0], y[1], NT * L);
        }
        free(y[0]); free(y[1]); free(C); free(row); memory_free(&mem);
    }
    progress(d, NULL, -1);
    free(u);
}

/* ------------------------------------------------------------------ */
/* task 2: copy                                                         */

#define COPY_M 8      /* alphabet: one-hot channels */
#define COPY_SEQ 32   /* sequences per configuration */

static void task_copy(demo *d)
{
    /* (n, K, T): the gap grows until the window theta = K + T + 1 holds more
     * samples than a LegT memory of n coefficients can resolve (~n). */
    int64_t nbig = d->n, nsmall = d->n / 4 < 4 ? 4 : d->n / 4;
    const int64_t K = 8;
    const int64_t gaps[] = { 0, 8, 24, 56, 120, 248 };
    const int ng = (int)(sizeof gaps / sizeof gaps[0]);
    rng r = task_rng(d, 2);
    say(d, "\n== copy: %" PRId64 " one-hot tokens (%d symbols), a gap of T blanks, recall all "
           "from a LegT memory (window K + T + 1, closed-form readout), %d sequences\n",
        K, COPY_M, COPY_SEQ);
    say(d, "%-10s %5s %4s %5s  %-9s %8s\n", "mode", "n", "K", "T", "accuracy", "time[s]");
    int step = 0, steps = 2 * ng * ((d->modes & MODE_CONV ? 1 : 0) + (d->modes & MODE_REC ? 1 : 0));
    d->pc_cnt = 0;
    for (int which = 0; which < 2; which++) {
        const int64_t n = which == 0 ? nsmall : nbig;
        for (int ig = 0; ig < ng; ig++) {
            const int64_t T = gaps[ig], L = K + T;
            const double theta = (double)(K + T + 1);
            const int64_t batch = COPY_SEQ * COPY_M;
            int *tok = xcalloc(COPY_SEQ * K, sizeof(int));
            float *u = xcalloc(batch * L, sizeof(float));
            for (int64_t s = 0; s < COPY_SEQ; s++)
                for (int64_t k = 0; k < K; k++) {
                    tok[s * K + k] = (int)rng_below(&r, COPY_M);
                    u[(s * COPY_M + tok[s * K + k]) * L + k] = 1.0f;
                }
            memory mem = memory_make(d, SSM_LEGT, n, theta);
            /* readout row k evaluates the memory at the delay of token k */
            float *C = xcalloc(K * n, sizeof(float));
            double *row = xcalloc(n, sizeof(double));
            for (int64_t k = 0; k < K; k++) {
                readout_row(SSM_LEGT, n, theta, (double)(L - 1 - k) + READ_OFFSET, row);
                for (int64_t i = 0; i < n; i++)
                    C[k * n + i] = (float)row[i];
            }
            float *y[2] = { NULL, NULL };
            for (int mi = 0; mi < 2; mi++) {
                int mode = mi == 0 ? MODE_CONV : MODE_REC;
                if (!(d->modes & mode))
                    continue;
                y[mi] = xcalloc(batch * K * L, sizeof(float));
                double t0 = now();
                lti_eval(mode, &mem, K, C, batch, L, u, y[mi]);
                double secs = now() - t0;
                int64_t ok = 0;
                for (int64_t s = 0; s < COPY_SEQ; s++)
                    for (int64_t k = 0; k < K; k++) {
                        int best = 0;
                        double bv = -INFINITY;
                        for (int c = 0; c < COPY_M; c++) {
                            double v = y[mi][((s * COPY_M + c) * K + k) * L + L - 1];
                            if (v > bv) { bv = v; best = c; }
                        }
                        ok += best == tok[s * K + k];
                    }
                double acc = (double)ok / (double)(COPY_SEQ * K);
                char set[48];
                snprintf(set, sizeof set, "K=%" PRId64 " T=%" PRId64, K, T);
                csv_row(d, "copy", mode_name(mode), n, set, "accuracy", acc, secs);
                say(d, "%-10s %5" PRId64 " %4" PRId64 " %5" PRId64 "  %-9.3f %8.3f\n",
                    mode_name(mode), n, K, T, acc, secs);
                if ((mode == MODE_REC || !(d->modes & MODE_REC)) && d->pc_cnt < MAXPTS) {
                    d->pc_n[d->pc_cnt] = n; d->pc_T[d->pc_cnt] = T;
                    d->pc_acc[d->pc_cnt++] = acc;
                }
                progress(d, "copy", (double)++step / steps);
            }
            if (y[0] && y[1]) {
                char set[48];
                snprintf(set, sizeof set, "K=%" PRId64 " T=%" PRId64, K, T);
                mode_diff(d, "copy", n, set, y[0], y[1], batch * K * L);
            }
            free(y[0]); free(y[1]); free(C); free(row); free(u); free(tok);
            memory_free(&mem);
        }
    }
    progress(d, NULL, -1);
}

/* ------------------------------------------------------------------ */
/* task 3: reconstruct                                                  */

#define RECON_BW 3.0   /* cycles per window */

static void task_reconstruct(demo *d)
{
    /* window as in delay; the signal only needs to fill it a few times over */
    const double theta = (double)(d->len / 4 < 256 ? d->len / 4 : 256);
    const int64_t L = d->len < 4 * (int64_t)theta ? d->len : 4 * (int64_t)theta;
    const int64_t W = (int64_t)theta;
    rng r = task_rng(d, 3);
    float *u = xcalloc(L, sizeof(float));
    bandlimited(&r, L, RECON_BW / theta, u);
    int64_t ns[16];
    int nn = n_sweep(8, d->n, 1, ns);
    const ssm_measure ms[2] = { SSM_LEGT, SSM_FOUT };
    say(d, "\n== reconstruct: the last window (theta = %" PRId64 ") of a smooth random signal "
           "(%.0f cycles/window, L = %" PRId64 ") from the final state\n", W, RECON_BW, L);
    say(d, "%-10s %-8s %5s  %-10s %8s\n", "mode", "measure", "n", "rel.error", "time[s]");
    int step = 0, steps = 2 * nn * ((d->modes & MODE_CONV ? 1 : 0) + (d->modes & MODE_REC ? 1 : 0));
    for (int im = 0; im < 2; im++) {
        for (int in = 0; in < nn; in++) {
            const int64_t n = ns[in];
            memory mem = memory_make(d, ms[im], n, theta);
            /* identity readout: the outputs are the state trajectory */
            float *C = xcalloc(n * n, sizeof(float));
            for (int64_t i = 0; i < n; i++)
                C[i * n + i] = 1.0f;
            double *row = xcalloc(n, sizeof(double)), *rec = xcalloc(W, sizeof(double));
            float *y[2] = { NULL, NULL };
            for (int mi = 0; mi < 2; mi++) {
                int mode = mi == 0 ? MODE_CONV : MODE_REC;
                if (!(d->modes & mode))
                    continue;
                y[mi] = xcalloc(n * L, sizeof(float));
                double t0 = now();
                lti_eval(mode, &mem, n, C, 1, L, u, y[mi]);
                double num = 0, den = 0;
                for (int64_t s = 0; s < W; s++) {
                    readout_row(ms[im], n, theta, (double)s + READ_OFFSET, row);
                    double v = 0;
                    for (int64_t k = 0; k < n; k++)
                        v += row[k] * (double)y[mi][k * L + L - 1];
                    rec[s] = v;
                    double e = v - (double)u[L - 1 - s];
                    num += e * e;
                    den += (double)u[L - 1 - s] * (double)u[L - 1 - s];
                }
                double secs = now() - t0, err = sqrt(num / den);
                const char *mn = ms[im] == SSM_LEGT ? "legt" : "fout";
                char set[32];
                snprintf(set, sizeof set, "measure=%s", mn);
                csv_row(d, "reconstruct", mode_name(mode), n, set, "relerr", err, secs);
                say(d, "%-10s %-8s %5" PRId64 "  %-10.3e %8.3f\n", mode_name(mode),
                    ms[im] == SSM_LEGT ? "LegT" : "FouT", n, err, secs);
                if ((n == 16 || (in == nn - 1 && ns[nn - 1] < 16)) &&
                    (mode == MODE_REC || !(d->modes & MODE_REC))) {
                    if (!d->pr_u) {
                        d->pr_u = xcalloc(W, sizeof(double));
                        d->pr_legt = xcalloc(W, sizeof(double));
                        d->pr_fout = xcalloc(W, sizeof(double));
                    }
                    d->pr_m = W; d->pr_n = n;
                    for (int64_t s = 0; s < W; s++) {   /* oldest first */
                        d->pr_u[W - 1 - s] = u[L - 1 - s];
                        (im == 0 ? d->pr_legt : d->pr_fout)[W - 1 - s] = rec[s];
                    }
                }
                progress(d, "reconstruct", (double)++step / steps);
            }
            if (y[0] && y[1]) {
                char set[32];
                snprintf(set, sizeof set, "measure=%s", ms[im] == SSM_LEGT ? "legt" : "fout");
                mode_diff(d, "reconstruct", n, set, y[0], y[1], n * L);
            }
            free(y[0]); free(y[1]); free(C); free(row); free(rec); memory_free(&mem);
        }
    }
    progress(d, NULL, -1);
    free(u);
}

/* ------------------------------------------------------------------ */
/* task 4: selective copy                                               */

#define SC_M 8        /* data symbols; channel SC_M is the noise token */
#define SC_K 6        /* data tokens to recall, in order */
#define SC_L 64       /* sequence length */
#define SC_TRAIN 800
#define SC_TEST 400

/* Least-squares readout W [P][R] from features F [N][P] to targets
 * Y [N][R] (LAPACKE_dgels on the ridge-augmented system [F; sqrt(lam) I],
 * so a rank-deficient F cannot fail), then the test accuracy of argmax over
 * each block of SC_M target columns. */
static double fit_and_score(const double *Ftr, const double *Ytr, int64_t ntr,
                            const double *Fte, const int *tokte, int64_t nte,
                            int64_t P)
{
    const int64_t R = SC_K * SC_M, rows = ntr + P;
    double *A = xcalloc(rows * P, sizeof(double)), *B = xcalloc(rows * R, sizeof(double));
    double fro = 0;
    for (int64_t i = 0; i < ntr * P; i++)
        fro += Ftr[i] * Ftr[i];
    const double lam = 1e-8 * fro / (double)P + 1e-300;
    memcpy(A, Ftr, (size_t)(ntr * P) * sizeof(double));
    memcpy(B, Ytr, (size_t)(ntr * R) * sizeof(double));
    for (int64_t p = 0; p < P; p++)
        A[(ntr + p) * P + p] = sqrt(lam);
    lapack_int info = LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', (lapack_int)rows,
                                    (lapack_int)P, (lapack_int)R, A, (lapack_int)P,
                                    B, (lapack_int)R);
    if (info != 0)
        die("LAPACKE_dgels failed (info = %d)", (int)info);
    int64_t ok = 0;
    for (int64_t s = 0; s < nte; s++)
        for (int64_t k = 0; k < SC_K; k++) {
            int best = 0;
            double bv = -INFINITY;
            for (int c = 0; c < SC_M; c++) {
                double v = 0;
                for (int64_t p = 0; p < P; p++)
                    v += Fte[s * P + p] * B[p * R + k * SC_M + c];
                if (v > bv) { bv = v; best = c; }
            }
            ok += best == tokte[s * SC_K + k];
        }
    free(A); free(B);
    return (double)ok / (double)(nte * SC_K);
}

static void task_selective(demo *d)
{
    const int64_t n = d->n < 16 ? d->n : 16;   /* state per channel */
    const int64_t nseq = SC_TRAIN + SC_TEST, CH = SC_M + 1, L = SC_L;
    const int64_t P = CH * n + 1;               /* features + bias */
    rng r = task_rng(d, 4);
    int *tok = xcalloc(nseq * SC_K, sizeof(int));
    unsigned char *isdata = xcalloc(nseq * L, 1);
    float *u = xcalloc(nseq * CH * L, sizeof(float));
    for (int64_t s = 0; s < nseq; s++) {
        /* SC_K distinct random positions (selection sampling keeps them in order) */
        int64_t need = SC_K, k = 0;
        for (int64_t t = 0; t < L; t++) {
            if ((int64_t)rng_below(&r, L - t) < need) {
                int c = (int)rng_below(&r, SC_M);
                tok[s * SC_K + k++] = c;
                isdata[s * L + t] = 1;
                u[(s * CH + c) * L + t] = 1.0f;
                need--;
            } else {
                u[(s * CH + SC_M) * L + t] = 1.0f;   /* noise token */
            }
        }
    }
    double *Ytr = xcalloc(SC_TRAIN * SC_K * SC_M, sizeof(double));
    for (int64_t s = 0; s < SC_TRAIN; s++)
        for (int64_t k = 0; k < SC_K; k++)
            Ytr[(s * SC_K + k) * SC_M + tok[s * SC_K + k]] = 1.0;
    double *F = xcalloc(nseq * P, sizeof(double));

    say(d, "\n== selective-copy: %d data tokens (%d symbols) at random places among noise "
           "tokens, L = %" PRId64 ", recall them in order; linear readout fitted by least squares "
           "(LAPACKE_dgels) on %d sequences, scored on %d others; state %" PRId64 " per channel\n",
        SC_K, SC_M, L, SC_TRAIN, SC_TEST, n);
    say(d, "%-10s %-28s %-9s %8s\n", "mode", "model", "accuracy", "time[s]");
    const double chance = 1.0 / SC_M;

    /* LTI baseline: a LegT memory over the whole sequence, constant step. */
    memory mem = memory_make(d, SSM_LEGT, n, (double)L);
    float *C = xcalloc(n * n, sizeof(float));
    for (int64_t i = 0; i < n; i++)
        C[i * n + i] = 1.0f;
    float *y[2] = { NULL, NULL };
    double lti_acc = 0;
    int step = 0, steps = (d->modes & MODE_CONV ? 1 : 0) + (d->modes & MODE_REC ? 2 : 0);
    for (int mi = 0; mi < 2; mi++) {
        int mode = mi == 0 ? MODE_CONV : MODE_REC;
        if (!(d->modes & mode))
            continue;
        y[mi] = xcalloc(nseq * CH * n * L, sizeof(float));
        double t0 = now();
        lti_eval(mode, &mem, n, C, nseq * CH, L, u, y[mi]);
        for (int64_t s = 0; s < nseq; s++) {
            for (int64_t c = 0; c < CH; c++)
                for (int64_t i = 0; i < n; i++)
                    F[s * P + c * n + i] = y[mi][((s * CH + c) * n + i) * L + L - 1];
            F[s * P + P - 1] = 1.0;
        }
        lti_acc = fit_and_score(F, Ytr, SC_TRAIN, F + SC_TRAIN * P, tok + SC_TRAIN * SC_K,
                                SC_TEST, P);
        double secs = now() - t0;
        csv_row(d, "selective-copy", mode_name(mode), n, "model=lti", "accuracy", lti_acc, secs);
        say(d, "%-10s %-28s %-9.3f %8.3f\n", mode_name(mode), "LTI (LegT, constant step)",
            lti_acc, secs);
        progress(d, "selective-copy", (double)++step / steps);
    }
    if (y[0] && y[1])
        mode_diff(d, "selective-copy", n, "model=lti", y[0], y[1], nseq * CH * n * L);
    free(y[0]); free(y[1]);

    if (!(d->modes & MODE_REC)) {
        say(d, "%-10s %-28s %s\n", "conv", "selective (Mamba S6)",
            "skipped: an input-dependent step has no convolution mode "
            "(run --mode recurrent or both)");
    } else {
        /* Selective memory (Mamba S6, Gu and Dao 2023, Alg. 2): diagonal
         * A[c][k] = -(k+1), B = 1, and a step that depends on the input:
         * dt = 2/n on data tokens, 0 on noise tokens, so a noise token
         * neither decays the state (exp(0 A) = 1) nor enters it (0 B u).
         * The data tokens then reach the state as if they were adjacent. */
        float *A = xcalloc(CH * n, sizeof(float));
        float *Bm = xcalloc(nseq * n * L, sizeof(float));
        float *Cm = xcalloc(nseq * n * L, sizeof(float));
        float *delta = xcalloc(nseq * CH * L, sizeof(float));
        float *ys = xcalloc(nseq * CH * L, sizeof(float));
        float *h = xcalloc(nseq * CH * n, sizeof(float));
        for (int64_t c = 0; c < CH; c++)
            for (int64_t k = 0; k < n; k++)
                A[c * n + k] = -(float)(k + 1);
        for (int64_t i = 0; i < nseq * n * L; i++)
            Bm[i] = Cm[i] = 1.0f;
        for (int64_t s = 0; s < nseq; s++)
            for (int64_t c = 0; c < CH; c++)
                for (int64_t t = 0; t < L; t++)
                    delta[(s * CH + c) * L + t] = isdata[s * L + t] ? 2.0f / (float)n : 0.0f;
        ssm_scan_args a;
        memset(&a, 0, sizeof a);
        a.batch = nseq; a.dim = CH; a.dstate = n; a.len = L; a.ngroups = 1;
        a.u = u; a.delta = delta; a.A = A; a.B = Bm; a.C = Cm;
        a.delta_softplus = 0; a.y = ys; a.h_last = h;
        double t0 = now();
        check(ssm_selective_scan(&a), "ssm_selective_scan");
        for (int64_t s = 0; s < nseq; s++) {
            for (int64_t j = 0; j < CH * n; j++)
                F[s * P + j] = h[s * CH * n + j];
            F[s * P + P - 1] = 1.0;
        }
        double sel = fit_and_score(F, Ytr, SC_TRAIN, F + SC_TRAIN * P, tok + SC_TRAIN * SC_K,
                                   SC_TEST, P);
        double secs = now() - t0;
        csv_row(d, "selective-copy", "recurrent", n, "model=selective", "accuracy", sel, secs);
        say(d, "%-10s %-28s %-9.3f %8.3f\n", "recurrent", "selective (Mamba S6 scan)", sel, secs);
        progress(d, "selective-copy", (double)++step / steps);
        csv_row(d, "selective-copy", "recurrent", n, "model=selective-lti", "accuracy_gap",
                sel - lti_acc, 0.0);
        d->ps_have = 1; d->ps_sel = sel;
        free(A); free(Bm); free(Cm); free(delta); free(ys); free(h);
    }
    say(d, "(chance: %.3f)\n", chance);
    csv_row(d, "selective-copy", "-", n, "model=chance", "accuracy", chance, 0.0);
    d->ps_lti = lti_acc; d->ps_chance = chance;
    if (!(d->modes & MODE_REC))
        d->ps_have = 2;
    progress(d, NULL, -1);
    memory_free(&mem);
    free(C); free(F); free(Ytr); free(u); free(isdata); free(tok);
}

/* ------------------------------------------------------------------ */
/* --plot                                                               */

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static int plot(const demo *d)
{
    if (!have_gnuplot()) {
        fprintf(stderr, "ssm_demo: --plot needs gnuplot, which is not installed: "
                        "apt-get install gnuplot-nox (no plot written)\n");
        remove(d->plot_path);   /* the empty file main() probed with */
        return 0;
    }
    int panels = (d->pd_m > 0) + (d->pc_cnt > 0) + (d->pr_m > 0) + (d->ps_have > 0);
    if (panels == 0)
        return 0;
    FILE *probe = fopen(d->plot_path, "wb");   /* fail early, with our own message */
    if (!probe) {
        fprintf(stderr, "ssm_demo: cannot write '%s': %s\n", d->plot_path, strerror(errno));
        return 1;
    }
    fclose(probe);
    signal(SIGPIPE, SIG_IGN);   /* a gnuplot that dies must not kill us: pclose reports it */
    /* gnuplot writes the PNG to stdout when it cannot open the file: never ours */
    FILE *g = popen("gnuplot >/dev/null", "w");
    if (!g) {
        fprintf(stderr, "ssm_demo: could not run gnuplot: %s\n", strerror(errno));
        return 1;
    }
    int rows = panels > 2 ? 2 : 1, cols = panels > 1 ? 2 : 1;
    /* pngcairo when built in (gnuplot-nox has it), else the libgd png */
    fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size %d,%d font 'sans,10'\n"
               "} else {\n  set terminal png size %d,%d\n}\n",
            640 * cols, 420 * rows, 640 * cols, 420 * rows);
    fprintf(g, "set output '");
    for (const char *p = d->plot_path; *p; p++) {   /* quote for gnuplot */
        if (*p == '\'')
            fputc('\'', g);
        fputc(*p, g);
    }
    fprintf(g, "'\nset multiplot layout %d,%d title 'ssm\\_demo (libssm %s), seed %" PRIu64 "'\n",
            rows, cols, ssm_version(), d->seed);
    fprintf(g, "set grid\nset key top right\nset autoscale xfix\n");
    if (d->pd_m > 0) {
        fprintf(g, "set title 'delay: LegT memory, window %" PRId64 ", recall u(t - %" PRId64 ")'\n"
                   "set xlabel 't (last samples)'\nset ylabel 'value'\n"
                   "plot '-' w l lw 2 t 'u(t - tau)', '-' w l lw 1.5 dt 2 t 'recall, n = %" PRId64 "'%s\n",
                d->pd_theta, d->pd_tau, d->pd_n, d->pd_y8 ? ", '-' w l lw 1 t 'recall, n = 8'" : "");
        for (int64_t i = 0; i < d->pd_m; i++) fprintf(g, "%" PRId64 " %g\n", i, d->pd_u[i]);
        fprintf(g, "e\n");
        for (int64_t i = 0; i < d->pd_m; i++) fprintf(g, "%" PRId64 " %g\n", i, d->pd_y[i]);
        fprintf(g, "e\n");
        if (d->pd_y8) {
            for (int64_t i = 0; i < d->pd_m; i++) fprintf(g, "%" PRId64 " %g\n", i, d->pd_y8[i]);
            fprintf(g, "e\n");
        }
    }
    if (d->pr_m > 0) {
        fprintf(g, "set title 'reconstruct: last window from the final state, n = %" PRId64 "'\n"
                   "set xlabel 'position in window (oldest first)'\nset ylabel 'value'\n"
                   "plot '-' w l lw 2 t 'original', '-' w l lw 1.5 t 'LegT', '-' w l lw 1.5 dt 2 t 'FouT'\n",
                d->pr_n);
        for (int k = 0; k < 3; k++) {
            const double *v = k == 0 ? d->pr_u : k == 1 ? d->pr_legt : d->pr_fout;
            for (int64_t i = 0; i < d->pr_m; i++) fprintf(g, "%" PRId64 " %g\n", i, v[i]);
            fprintf(g, "e\n");
        }
    }
    if (d->pc_cnt > 0) {
        fprintf(g, "set title 'copy: token accuracy vs gap (K = 8)'\nset xlabel 'gap T (T = 0 drawn at 1)'\n"
                   "set ylabel 'accuracy'\nset yrange [0:1.05]\nset logscale x 2\n"
                   "set key bottom left\n");
        int64_t n0 = d->pc_n[0], n1 = d->pc_n[d->pc_cnt - 1];
        fprintf(g, "plot '-' w lp lw 2 pt 7 t 'n = %" PRId64 "', '-' w lp lw 2 pt 5 t 'n = %" PRId64 "'\n",
                n0, n1);
        for (int w = 0; w < 2; w++) {
            for (int i = 0; i < d->pc_cnt; i++)
                if (d->pc_n[i] == (w ? n1 : n0))
                    fprintf(g, "%" PRId64 " %g\n", d->pc_T[i] > 0 ? d->pc_T[i] : 1, d->pc_acc[i]);
            fprintf(g, "e\n");
        }
        fprintf(g, "unset logscale x\nset autoscale y\nset key top right\n");
    }
    if (d->ps_have) {
        fprintf(g, "set title 'selective copy: held-out token accuracy'\nset xlabel ''\n"
                   "set ylabel 'accuracy'\nset yrange [0:1.15]\nset style fill solid 0.6\n"
                   "set boxwidth 0.6\nset xtics ('LTI' 0, 'selective' 1, 'chance' 2)\n"
                   "plot '-' u 1:2 w boxes notitle, '-' u 1:2:3 w labels offset 0,1 notitle\n");
        for (int k = 0; k < 2; k++) {
            fprintf(g, "0 %g %.2f\n", d->ps_lti, d->ps_lti);
            if (d->ps_have == 1)
                fprintf(g, "1 %g %.2f\n", d->ps_sel, d->ps_sel);
            fprintf(g, "2 %g %.2f\ne\n", d->ps_chance, d->ps_chance);
        }
    }
    fprintf(g, "unset multiplot\n");
    int rc = pclose(g);
    if (rc != 0) {
        fprintf(stderr, "ssm_demo: gnuplot failed (status %d)\n", rc);
        return 1;
    }
    if (!d->quiet)
        printf("\nplot written to %s\n", d->plot_path);
    return 0;
}

/* ------------------------------------------------------------------ */
/* command line                                                         */

static void usage(FILE *f)
{
    fprintf(f,
"usage: ssm_demo [--mode conv|recurrent|both] [--task NAME|all] [--n N] [--len L]\n"
"                [--seed S] [--disc zoh|bilinear] [--csv FILE] [--plot FILE.png] [--quiet]\n"
"\n"
"Synthetic memory tasks for HiPPO/S4 state-space models and the Mamba selective\n"
"scan, computed by libssm %s (no Python, nothing downloaded).\n"
"\n"
"  --mode M      conv (kernel + FFT convolution), recurrent (scan), or both\n"
"                (default): both also checks that the two modes agree to 1e-5\n"
"  --task T      delay, copy, reconstruct, selective-copy, or all (default)\n"
"  --n N         largest state size, 4..256 (default 64); the tasks sweep n up to N\n"
"                (selective-copy uses min(N, 16) per channel)\n"
"  --len L       input length of delay and reconstruct, 64..65536 (default 2048);\n"
"                window theta = min(256, L/4); reconstruct uses min(L, 4 theta) samples\n"
"  --seed S      seed of every random input (default 1)\n"
"  --disc D      discretization: zoh (default) or bilinear\n"
"  --csv FILE    write the numbers as CSV: task,mode,n,setting,metric,value,seconds\n"
"  --plot FILE   draw a PNG through gnuplot, when it is installed\n"
"  --quiet       print nothing but errors\n"
"  --help        this text\n"
"\n"
"Exit status: 0 success, 1 a library error or modes disagreeing, 2 bad options.\n",
            ssm_version());
}

static void bad_option(const char *fmt, const char *arg)
{
    fputs("ssm_demo: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (try --help)\n", stderr);
    exit(2);
}

static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "ssm_demo: %s: expected an integer in [%" PRId64 ", %" PRId64
                        "], got '%s' (try --help)\n", opt, lo, hi, s);
        exit(2);
    }
    return (int64_t)v;
}

static void parse(demo *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        const char *val = NULL;
        char name[32];
        if (strncmp(a, "--", 2) != 0)
            bad_option("unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name)
            bad_option("unknown option '%s'", a);
        memcpy(name, a, len);
        name[len] = 0;
        int flag = !strcmp(name, "--help") || !strcmp(name, "--quiet");
        int known = flag || !strcmp(name, "--mode") || !strcmp(name, "--task") ||
                    !strcmp(name, "--n") || !strcmp(name, "--len") ||
                    !strcmp(name, "--seed") || !strcmp(name, "--csv") ||
                    !strcmp(name, "--plot") || !strcmp(name, "--disc");
        if (!known)
            bad_option("unknown option '%s'", a);
        if (flag) {
            if (eq)
                bad_option("option '%s' takes no value", name);
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                bad_option("option '%s' needs a value", name);
            val = argv[++i];
        }
        if (!strcmp(name, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(name, "--quiet")) {
            d->quiet = 1;
        } else if (!strcmp(name, "--mode")) {
            if (!strcmp(val, "conv")) d->modes = MODE_CONV;
            else if (!strcmp(val, "recurrent")) d->modes = MODE_REC;
            else if (!strcmp(val, "both")) d->modes = MODE_CONV | MODE_REC;
            else bad_option("--mode: expected conv, recurrent or both, got '%s'", val);
        } else if (!strcmp(name, "--task")) {
            if (!strcmp(val, "delay")) d->tasks = T_DELAY;
            else if (!strcmp(val, "copy")) d->tasks = T_COPY;
            else if (!strcmp(val, "reconstruct")) d->tasks = T_RECON;
            else if (!strcmp(val, "selective-copy")) d->tasks = T_SEL;
            else if (!strcmp(val, "all")) d->tasks = T_ALL;
            else bad_option("--task: expected delay, copy, reconstruct, selective-copy or all, got '%s'", val);
        } else if (!strcmp(name, "--disc")) {
            if (!strcmp(val, "zoh")) d->disc = SSM_ZOH;
            else if (!strcmp(val, "bilinear")) d->disc = SSM_BILINEAR;
            else bad_option("--disc: expected zoh or bilinear, got '%s'", val);
        } else if (!strcmp(name, "--n")) {
            d->n = parse_int("--n", val, 4, 256);
        } else if (!strcmp(name, "--len")) {
            d->len = parse_int("--len", val, 64, INT64_C(1) << 16);
        } else if (!strcmp(name, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-')
                bad_option("--seed: expected a non-negative integer, got '%s'", val);
            d->seed = (uint64_t)v;
        } else if (!strcmp(name, "--csv")) {
            if (!*val) bad_option("--csv: empty file name%s", "");
            d->csv_path = val;
        } else if (!strcmp(name, "--plot")) {
            if (!*val) bad_option("--plot: empty file name%s", "");
            d->plot_path = val;
        }
    }
}

int main(int argc, char **argv)
{
    demo d;
    memset(&d, 0, sizeof d);
    d.modes = MODE_CONV | MODE_REC;
    d.tasks = T_ALL;
    d.n = 64;
    d.len = 2048;
    d.seed = 1;
    d.disc = SSM_ZOH;
    parse(&d, argc, argv);
    d.tty = isatty(fileno(stderr));
    if (d.csv_path) {
        d.csv = fopen(d.csv_path, "w");
        if (!d.csv) {
            fprintf(stderr, "ssm_demo: cannot write '%s': %s\n", d.csv_path, strerror(errno));
            return 2;
        }
        fprintf(d.csv, "task,mode,n,setting,metric,value,seconds\n");
    }
    if (d.plot_path) {   /* an unwritable --plot is a bad option: say so before the work */
        FILE *probe = fopen(d.plot_path, "wb");
        if (!probe) {
            fprintf(stderr, "ssm_demo: cannot write '%s': %s\n", d.plot_path, strerror(errno));
            return 2;
        }
        fclose(probe);
    }
    say(&d, "ssm_demo: libssm %s, mode %s, seed %" PRIu64 "\n", ssm_version(),
        d.modes == 3 ? "both" : mode_name(d.modes), d.seed);
    double t0 = now();
    if (d.tasks & T_DELAY) task_delay(&d);
    if (d.tasks & T_COPY) task_copy(&d);
    if (d.tasks & T_RECON) task_reconstruct(&d);
    if (d.tasks & T_SEL) task_selective(&d);
    int rc = 0;
    if (d.modes == (MODE_CONV | MODE_REC)) {
        int ok = d.max_diff <= MODE_TOL;
        say(&d, "\nconv vs recurrent: largest normwise relative difference %.2e (limit %.0e): %s\n",
            d.max_diff, MODE_TOL, ok ? "OK" : "FAIL");
        if (!ok) {
            if (d.quiet)
                fprintf(stderr, "ssm_demo: conv and recurrent modes differ by %.2e > %.0e\n",
                        d.max_diff, MODE_TOL);
            rc = 1;
        }
    }
    say(&d, "total time %.2f s\n", now() - t0);
    if (d.plot_path && plot(&d))
        rc = 1;
    if (d.csv && fclose(d.csv) != 0) {
        fprintf(stderr, "ssm_demo: error writing '%s'\n", d.csv_path);
        rc = 1;
    }
    free(d.pd_u); free(d.pd_y); free(d.pd_y8); free(d.pr_u); free(d.pr_legt); free(d.pr_fout);
    return rc;
}
