/*
 * conv.c -- the convolution mode of S4/S4D (Gu et al. 2022, "Efficiently
 * Modeling Long Sequences with Structured State Spaces", sec. 3.2: the
 * output is the causal convolution y = K * u + D u of eq. (4)/(5)), computed
 * as a zero-padded FFT product through FFTW in single precision.
 *
 * Design (FFTW's rules, doc/threads.texi and "New-array Execute Functions"):
 *  - The plan object owns two FFTW plans (r2c and c2r of the padded length
 *    N) made once with FFTW_ESTIMATE on fftwf_malloc'ed buffers that only the
 *    plan uses; FFTW_ESTIMATE picks the same algorithm in every run, so the
 *    same input gives the same bytes (no wisdom, no timing).
 *  - Executing never writes into the plan.  Every call takes its own scratch
 *    from fftwf_malloc, which has the alignment of the planning arrays, and
 *    runs the plans through fftwf_execute_dft_r2c / _c2r (the only FFTW calls
 *    that may run concurrently on one plan).  So ssm_conv_execute may run on
 *    one plan from many threads at once.
 *  - The planner and fftwf_destroy_plan are not thread-safe: both only ever
 *    run inside ssmi_fftw_lock().
 *  - Zero padding to N >= 2L makes the circular convolution of length N equal
 *    to the linear one on t < L (the wrapped terms have t - s + N >= L).
 *  - The unnormalised c2r gives N times the result; the 1/N is folded into
 *    the kernel spectrum once per channel.
 *  - Each (batch, channel) row is one task with one writer; every row does the
 *    same arithmetic whatever thread runs it, so the bytes do not depend on
 *    the number of OpenMP threads.
 *
 * FFTW aborts the process when one of its own internal allocations fails
 * (kernel/alloc.c); that cannot be intercepted from here.  Our buffers come
 * from fftwf_malloc (through ssmi_fftwf_malloc, the allocation-failure
 * injector's gate), which returns NULL, and map to SSM_ERR_NOMEM.
 */
#include <limits.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "s4/fftw_internal.h"   /* fftwf_complex is float complex */

struct ssm_conv_plan {
    int64_t channels;   /* H */
    int64_t L;          /* sequence length */
    int64_t N;          /* padded FFT length, 7-smooth, >= 2L, fits int */
    int64_t nc;         /* N/2 + 1 complex bins */
    int64_t ncs;        /* row stride of spectra: nc rounded up to 8 (64 bytes) */
    fftwf_plan r2c;     /* N reals -> nc complex, out of place */
    fftwf_plan c2r;     /* nc complex -> N reals, out of place */
    float *rbuf;        /* the planning arrays: owned, never user data, */
    fftwf_complex *cbuf;/* never written after planning */
};

struct ssm_conv_spectrum {
    int64_t channels, L, N, ncs;
    fftwf_complex *Kf;  /* [channels][ncs], already scaled by 1/N */
};

/* Per-thread scratch of one execution, see ws_carve. */
typedef struct conv_ws {
    float *rin, *rout;
    fftwf_complex *cb;
    fftwf_complex *kf;   /* fused path only: one channel's spectrum */
} conv_ws;

/* Smallest 2^a 3^b 5^c 7^d >= m, or -1 when it does not fit in int. */
int64_t ssmi_conv_fast_length(int64_t m)
{
    for (int64_t c = m; c <= INT_MAX; c++) {
        int64_t r = c;
        while (r % 2 == 0) r /= 2;
        while (r % 3 == 0) r /= 3;
        while (r % 5 == 0) r /= 5;
        while (r % 7 == 0) r /= 7;
        if (r == 1) return c;
    }
    return -1;
}

ssm_status ssm_conv_plan_create(ssm_conv_plan **plan, int64_t channels,
                                int64_t L)
{
    int64_t tot;
    if (plan == NULL) return SSM_FAIL(SSM_ERR_ARG);
    *plan = NULL;
    if (!ssmi_sizes_ok(&tot, sizeof(float), 2, channels, L))
        return SSM_FAIL(SSM_ERR_ARG);
    /* FFTW's basic interface takes int sizes: 2L and its padding must fit. */
    if (L > INT_MAX / 2) return SSM_FAIL(SSM_ERR_ARG);
    int64_t N = ssmi_conv_fast_length(2 * L);
    if (N < 0) return SSM_FAIL(SSM_ERR_ARG);
    int64_t nc = N / 2 + 1;
    int64_t ncs = (nc + 7) / 8 * 8;
    /* The spectrum of all channels must be addressable. */
    if (!ssmi_sizes_ok(&tot, sizeof(fftwf_complex), 2, channels, ncs))
        return SSM_FAIL(SSM_ERR_ARG);

    ssm_conv_plan *p = ssmi_calloc(1, sizeof *p);   /* NULL plans, buffers */
    if (p == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    p->channels = channels;
    p->L = L;
    p->N = N;
    p->nc = nc;
    p->ncs = ncs;

    /* Planning arrays: owned by the plan for its lifetime (FFTW's plans
     * refer to them), used only for planning (FFTW_ESTIMATE does not touch
     * them); executions pass their own fftwf_malloc'ed arrays of the same
     * alignment to the new-array execute functions. */
    p->rbuf = ssmi_fftwf_malloc((size_t)N * sizeof(float));
    p->cbuf = ssmi_fftwf_malloc((size_t)nc * sizeof(fftwf_complex));
    if (p->rbuf == NULL || p->cbuf == NULL) {
        ssm_conv_plan_destroy(p);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    ssmi_fftw_thread_safe_init();
    ssmi_fftw_lock();
    p->r2c = fftwf_plan_dft_r2c_1d((int)N, p->rbuf, p->cbuf, FFTW_ESTIMATE);
    p->c2r = fftwf_plan_dft_c2r_1d((int)N, p->cbuf, p->rbuf, FFTW_ESTIMATE);
    ssmi_fftw_unlock();
    if (p->r2c == NULL || p->c2r == NULL) {
        ssm_conv_plan_destroy(p);
        return SSM_FAIL(SSM_ERR_FFTW);
    }
    *plan = p;
    return SSM_OK;
}

void ssm_conv_plan_destroy(ssm_conv_plan *plan)
{
    if (plan == NULL) return;
    ssmi_fftw_lock();
    if (plan->r2c) fftwf_destroy_plan(plan->r2c);
    if (plan->c2r) fftwf_destroy_plan(plan->c2r);
    ssmi_fftw_unlock();
    fftwf_free(plan->rbuf);
    fftwf_free(plan->cbuf);
    ssmi_free(plan);
}

ssm_status ssm_conv_plan_info(const ssm_conv_plan *plan, int64_t *channels,
                              int64_t *L, int64_t *fft_length)
{
    if (plan == NULL) return SSM_FAIL(SSM_ERR_ARG);
    if (channels) *channels = plan->channels;
    if (L) *L = plan->L;
    if (fft_length) *fft_length = plan->N;
    return SSM_OK;
}

/* ---- kernel spectra ---------------------------------------------------- */

static size_t ws_bytes(const ssm_conv_plan *p, int with_kf);
static void ws_carve(conv_ws *w, const ssm_conv_plan *p, void *slice, int with_kf);
static void kernel_row(const ssm_conv_plan *p, const float *Kc, conv_ws *w,
                       fftwf_complex *kf);

/* Kf[c] = FFT(K[c] zero-padded to N) / N for every channel c, in parallel
 * over channels.  Returns SSM_ERR_NOMEM if a thread's scratch failed. */
static ssm_status spectra_fill(const ssm_conv_plan *p, const float *K,
                               fftwf_complex *Kf)
{
    const int64_t H = p->channels, L = p->L, ncs = p->ncs;
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, ws_bytes(p, 0), H));
#pragma omp parallel num_threads(sc.nt)
    {
        conv_ws w;
        ws_carve(&w, p, ssmi_scratch_mine(&sc), 0);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < H; c++)
            kernel_row(p, K + c * L, &w, Kf + c * ncs);
    }
    ssmi_scratch_free(&sc);
    return SSM_OK;
}

ssm_status ssm_conv_spectrum_create(ssm_conv_spectrum **spec,
                                    const ssm_conv_plan *plan, const float *K)
{
    if (spec == NULL) return SSM_FAIL(SSM_ERR_ARG);
    *spec = NULL;
    if (plan == NULL || K == NULL) return SSM_FAIL(SSM_ERR_ARG);
    ssm_conv_spectrum *s = ssmi_calloc(1, sizeof *s);
    if (s == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    s->channels = plan->channels;
    s->L = plan->L;
    s->N = plan->N;
    s->ncs = plan->ncs;
    /* Sizes checked against size_t overflow in ssm_conv_plan_create. */
    s->Kf = ssmi_fftwf_malloc((size_t)(plan->channels * plan->ncs) *
                         sizeof(fftwf_complex));
    if (s->Kf == NULL) {
        ssmi_free(s);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    ssm_status st = spectra_fill(plan, K, s->Kf);
    if (st != SSM_OK) {
        ssm_conv_spectrum_destroy(s);
        return st;
    }
    *spec = s;
    return SSM_OK;
}

void ssm_conv_spectrum_destroy(ssm_conv_spectrum *spec)
{
    if (spec == NULL) return;
    fftwf_free(spec->Kf);
    ssmi_free(spec);
}

/* ---- execution --------------------------------------------------------- */

/* Per-thread scratch, one slice of an ssmi_scratch block: rin (N reals,
 * zero on [L, N) for its whole life: only [0, L) is ever written and the
 * out-of-place r2c preserves its input), rout (N reals, the c2r output),
 * cb (nc complex), and on the fused path kf (nc complex).  Each array
 * starts on a 64-byte line: the alignment of the planning arrays from
 * fftwf_malloc, as FFTW's new-array execute functions require. */
static size_t ws_line(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static size_t ws_bytes(const ssm_conv_plan *p, int with_kf)
{
    const size_t r = ws_line((size_t)p->N * sizeof(float));
    const size_t c = ws_line((size_t)p->nc * sizeof(fftwf_complex));
    return 2 * r + (with_kf ? 2 : 1) * c;
}

static void ws_carve(conv_ws *w, const ssm_conv_plan *p, void *slice, int with_kf)
{
    unsigned char *q = slice;
    const size_t r = ws_line((size_t)p->N * sizeof(float));
    const size_t c = ws_line((size_t)p->nc * sizeof(fftwf_complex));
    w->rin = (float *)q;
    w->rout = (float *)(q + r);
    w->cb = (fftwf_complex *)(q + 2 * r);
    w->kf = with_kf ? (fftwf_complex *)(q + 2 * r + c) : NULL;
    memset(w->rin + p->L, 0, (size_t)(p->N - p->L) * sizeof(float));
}

/* One row: y = IFFT(FFT(u zero-padded) * kf)[0..L) + d u.  The only code
 * that forms outputs, so the fused and the two-phase paths below give the
 * same bytes. */
static void conv_row(const ssm_conv_plan *p, const fftwf_complex *kfc,
                     const float *D, int64_t c, const float *ur, float *yr,
                     conv_ws *w)
{
    const int64_t L = p->L, nc = p->nc;
    float *r = w->rout;
    fftwf_complex *cb = w->cb;
    memcpy(w->rin, ur, (size_t)L * sizeof(float));
    fftwf_execute_dft_r2c(p->r2c, w->rin, cb);
    /* Pointwise product in real arithmetic (no __mulsc3 calls, the same
     * rounding on every path). */
    float *z = (float *)cb;
    const float *kf = (const float *)kfc;
    for (int64_t k = 0; k < nc; k++) {
        const float ar = z[2 * k], ai = z[2 * k + 1];
        const float br = kf[2 * k], bi = kf[2 * k + 1];
        z[2 * k] = ar * br - ai * bi;
        z[2 * k + 1] = ar * bi + ai * br;
    }
    fftwf_execute_dft_c2r(p->c2r, cb, r);
    if (D != NULL) {
        const float d = D[c];
        for (int64_t t = 0; t < L; t++) yr[t] = r[t] + d * ur[t];
    } else {
        memcpy(yr, r, (size_t)L * sizeof(float));
    }
}

/* Kernel spectrum of one channel into kf (see spectra_fill). */
static void kernel_row(const ssm_conv_plan *p, const float *Kc, conv_ws *w,
                       fftwf_complex *kf)
{
    const int64_t L = p->L, N = p->N, nc = p->nc;
    const float scale = (float)(1.0 / (double)N);
    memcpy(w->rin, Kc, (size_t)L * sizeof(float));
    fftwf_execute_dft_r2c(p->r2c, w->rin, kf);
    float *f = (float *)kf;
    for (int64_t k = 0; k < 2 * nc; k++) f[k] *= scale;
}

/* y[b,c,:] for all rows from precomputed spectra, in parallel over (b, c),
 * one writer per row. */
static ssm_status conv_rows(const ssm_conv_plan *p, const fftwf_complex *Kf,
                            int64_t batch, const float *D, const float *u,
                            float *y)
{
    const int64_t H = p->channels, L = p->L, ncs = p->ncs;
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, ws_bytes(p, 0), batch * H));
#pragma omp parallel num_threads(sc.nt)
    {
        conv_ws w;
        ws_carve(&w, p, ssmi_scratch_mine(&sc), 0);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < batch; b++) {
            for (int64_t c = 0; c < H; c++) {
                const int64_t row = b * H + c;
                conv_row(p, Kf + c * ncs, D, c, u + row * L, y + row * L, &w);
            }
        }
    }
    ssmi_scratch_free(&sc);
    return SSM_OK;
}

/* Fused path: in parallel over channels, each thread makes the spectrum of
 * its channel in a private buffer and runs the channel's batch rows.  No
 * spectra array (H (N/2+1) complex) goes through memory; the bytes are
 * those of spectra_fill + conv_rows (same row code, same order). */
static ssm_status conv_fused(const ssm_conv_plan *p, const float *K,
                             int64_t batch, const float *D, const float *u,
                             float *y)
{
    const int64_t H = p->channels, L = p->L;
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, ws_bytes(p, 1), H));
#pragma omp parallel num_threads(sc.nt)
    {
        conv_ws w;
        ws_carve(&w, p, ssmi_scratch_mine(&sc), 1);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < H; c++) {
            kernel_row(p, K + c * L, &w, w.kf);
            for (int64_t b = 0; b < batch; b++) {
                const int64_t row = b * H + c;
                conv_row(p, w.kf, D, c, u + row * L, y + row * L, &w);
            }
        }
    }
    ssmi_scratch_free(&sc);
    return SSM_OK;
}

static int io_ok(const ssm_conv_plan *plan, int64_t batch, const float *u,
                 const float *y)
{
    int64_t tot;
    if (plan == NULL || u == NULL || y == NULL) return 0;
    return ssmi_sizes_ok(&tot, sizeof(float), 3, batch, plan->channels, plan->L);
}

ssm_status ssm_conv_execute(const ssm_conv_plan *plan, int64_t batch,
                            const float *K, const float *D, const float *u,
                            float *y)
{
    if (!io_ok(plan, batch, u, y) || K == NULL) return SSM_FAIL(SSM_ERR_ARG);
    /* D is a parameter: validated as in ssm_diag_scan (common.h). */
    if (D != NULL && !ssmi_finite_f(D, plan->channels)) return SSM_FAIL(SSM_ERR_ARG);
    /* Each kernel spectrum is made once per channel, not per batch row.
     * With enough channels to keep every thread busy, a thread makes the
     * spectrum of its channel and runs that channel's rows (no spectra
     * array through memory); otherwise all spectra first, then the rows in
     * parallel over (batch, channel).  Both give the same bytes, so the
     * choice may depend on the thread count. */
    if (plan->channels >= 2 * (int64_t)ssmi_max_threads())
        return conv_fused(plan, K, batch, D, u, y);
    fftwf_complex *Kf = ssmi_fftwf_malloc((size_t)(plan->channels * plan->ncs) *
                                     sizeof(fftwf_complex));
    if (Kf == NULL) return SSM_FAIL(SSM_ERR_NOMEM);
    ssm_status st = spectra_fill(plan, K, Kf);
    if (st == SSM_OK) st = conv_rows(plan, Kf, batch, D, u, y);
    fftwf_free(Kf);
    return st;
}

ssm_status ssm_conv_execute_spectrum(const ssm_conv_plan *plan,
                                     const ssm_conv_spectrum *spec,
                                     int64_t batch, const float *D,
                                     const float *u, float *y)
{
    if (!io_ok(plan, batch, u, y) || spec == NULL) return SSM_FAIL(SSM_ERR_ARG);
    if (D != NULL && !ssmi_finite_f(D, plan->channels)) return SSM_FAIL(SSM_ERR_ARG);
    if (spec->channels != plan->channels || spec->L != plan->L ||
        spec->N != plan->N || spec->ncs != plan->ncs)
        return SSM_FAIL(SSM_ERR_ARG);
    return conv_rows(plan, spec->Kf, batch, D, u, y);
}
