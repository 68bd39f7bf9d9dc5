/*
 * mpi_scan.c -- sequence-parallel selective scan (Mamba S6) and diagonal
 * scan (S4D recurrent mode) over MPI.
 *
 * Both recurrences are affine in the state, h_t = a_t h_{t-1} + b_t, so a
 * block of steps is one affine map h -> P h + hloc, with P the product of
 * the block's a_t and hloc the block's end state from h = 0.  Composing
 * the maps of the blocks in rank order is an exclusive scan with the
 * non-commutative operation (P1, h1) then (P2, h2) = (P2 P1, P2 h1 + h2)
 * (the carry combination of parallel scans, Blelloch 1990; the chunked
 * form of Mamba's scan, Gu and Dao 2023, section 3.3.2; Martin and Cundy
 * 2018).  Rank r then holds the state entering its block, h_in, and adds
 * its contribution to every output of the block:
 *   selective:  y_t += silu(z_t) sum_n C_t,n exp(A_n sum_{s<=t} dt_s) h_in,n
 *   diagonal:   y_t += Re sum_k C_k Ad_k^(t+1) h_in,k
 * a map over t with no dependence between steps (not a second scan: no
 * input term, no sequential chain), stopped exactly once every decay has
 * underflowed to 0.  The end state is P h_in + hloc.
 */
#include <complex.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "mpi_internal.h"

/* ------------------------------------------------ exp, softplus, silu --- */

#include "mpi_exp.h"

/* scan_softplus (src/scan/scan_vmath.h), operation for operation:
 * max(x, 0) + log1p(t), t = exp(-|x|), log1p(t) = t + t^2 q(t) with q its
 * degree-8 minimax polynomial (coefficients SP_Q8 .. SP_Q0 there); no
 * branch, Mamba's threshold 20 holds by itself.  wbtest_mpi_alloc checks
 * the two bit for bit (ssmi_mpi_softplus). */
MINLINE float msoftplus(float x)
{
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    xb |= 0x80000000u;
    float nax;
    memcpy(&nax, &xb, sizeof nax);
    const float t = mexpf(nax);
    float q = -3.318474585e-03f;
    q = fmaf(q, t, 2.020459415e-02f);
    q = fmaf(q, t, -5.766446165e-02f);
    q = fmaf(q, t, 1.068055730e-01f);
    q = fmaf(q, t, -1.535539738e-01f);
    q = fmaf(q, t, 1.969540093e-01f);
    q = fmaf(q, t, -2.495858751e-01f);
    q = fmaf(q, t, 3.333051133e-01f);
    q = fmaf(q, t, -4.999993276e-01f);
    const float lp = fmaf(t * t, q, t);
    return (x > 0.0f ? x : 0.0f) + lp;
}

float ssmi_mpi_softplus(float x) { return msoftplus(x); }

MINLINE float msilu(float z)
{
    return z / (1.0f + mexpf(-z));
}

/* --------------------------------------------------------- validation --- */

static int sizes_ok(int64_t *out, size_t elem, int64_t a, int64_t b, int64_t c,
                    int64_t d)
{
    /* product of sizes >= 0 fitting int64_t and size_t bytes */
    int64_t p = 1;
    const int64_t f[4] = { a, b, c, d };
    for (int i = 0; i < 4; i++)
        if (f[i] < 0 || __builtin_mul_overflow(p, f[i], &p))
            return 0;
    int64_t bytes;
    if (__builtin_mul_overflow(p, (int64_t)elem, &bytes) ||
        (uint64_t)bytes > (uint64_t)SIZE_MAX / 2)
        return 0;
    *out = p;
    return 1;
}

int ssmi_scan_args_ok(const ssm_scan_args *a)
{
    int64_t t;
    if (!a || !a->A)
        return 0;
    if (a->batch < 1 || a->dim < 1 || a->dstate < 1 || a->ngroups < 1 ||
        a->len < 0 || a->dim % a->ngroups != 0)
        return 0;
    if (a->len > 0 && (!a->u || !a->delta || !a->B || !a->C || !a->y))
        return 0;
    /* carries: 2 floats per (b, d, n) */
    return sizes_ok(&t, sizeof(float), a->batch, a->dim, a->len, 1) &&
           sizes_ok(&t, sizeof(float), a->batch, a->ngroups, a->dstate, a->len) &&
           sizes_ok(&t, 2 * sizeof(float), a->batch, a->dim, a->dstate, 1);
}

void ssmi_scan_args_agree(ssmi_agree *g, const ssm_scan_args *a, int ok)
{
    /* Always the same number of values, valid or not. */
    uint64_t hA = SSMI_HASH0, hD = SSMI_HASH0, hb = SSMI_HASH0;
    if (ok) {
        hA = ssmi_hash(hA, a->A, (size_t)(a->dim * a->dstate) * sizeof(float));
        hD = ssmi_hash(hD, a->D, (size_t)a->dim * sizeof(float));
        hb = ssmi_hash(hb, a->delta_bias, (size_t)a->dim * sizeof(float));
    }
    ssmi_agree_add(g, ok ? a->batch : 0);
    ssmi_agree_add(g, ok ? a->dim : 0);
    ssmi_agree_add(g, ok ? a->dstate : 0);
    ssmi_agree_add(g, ok ? a->ngroups : 0);
    ssmi_agree_add(g, ok ? (a->delta_softplus != 0) : 0);
    ssmi_agree_add(g, ok ? (a->D != NULL) : 0);
    ssmi_agree_add(g, ok ? (a->delta_bias != NULL) : 0);
    /* z is sequence data: an empty block may pass none, the others agree. */
    ssmi_agree_add_opt(g, !ok || a->len > 0, ok ? (a->z != NULL) : 0);
    ssmi_agree_add(g, ssmi_hash_q(hA));
    ssmi_agree_add(g, ssmi_hash_q(hD));
    ssmi_agree_add(g, ssmi_hash_q(hb));
    ssmi_agree_any(g, ok && a->len > 0);
}

/* ------------------------------------------------------ selective core --- */

#define FIX_T 256   /* time tile of the fix-up and of the dt sums */

/* The kernels, twice: portable, and with AVX2+FMA where the CPU has them
 * (chosen at run time; the same bits either way). */
#define KN(name) name##_generic
#define KTGT
#include "mpi_scan_kernel.h"
#undef KN
#undef KTGT
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MPI_HAVE_FMA_KERNELS 1
#define KN(name) name##_fma
#define KTGT __attribute__((target("avx2,fma")))
#include "mpi_scan_kernel.h"
#undef KN
#undef KTGT
#endif

static int cpu_fma(void)
{
#ifdef MPI_HAVE_FMA_KERNELS
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static double dt_sum(const ssm_scan_args *a, int64_t row, int fma)
{
#ifdef MPI_HAVE_FMA_KERNELS
    if (fma)
        return dt_sum_fma(a, row);
#endif
    (void)fma;
    return dt_sum_generic(a, row);
}

static void fix_row(const ssm_scan_args *a, int64_t b, int64_t d,
                    const float *hin, int64_t hstride, int fma)
{
#ifdef MPI_HAVE_FMA_KERNELS
    if (fma) {
        fix_row_fma(a, b, d, hin, hstride);
        return;
    }
#endif
    (void)fma;
    fix_row_generic(a, b, d, hin, hstride);
}

int ssmi_sel_ws_alloc(ssmi_sel_ws *w, const ssm_scan_args *a)
{
    const int64_t cnt = a->batch * a->dim * a->dstate;
    w->send = ssmi_mpi_alloc((size_t)cnt, 2 * sizeof(float));
    w->recv = ssmi_mpi_alloc((size_t)cnt, 2 * sizeof(float));
    w->hloc = ssmi_mpi_alloc((size_t)cnt, sizeof(float));
    w->S = ssmi_mpi_alloc((size_t)(a->batch * a->dim), sizeof(double));
    if (w->send && w->recv && w->hloc && w->S)
        return 1;
    ssmi_sel_ws_free(w);
    return 0;
}

void ssmi_sel_ws_free(ssmi_sel_ws *w)
{
    free(w->send);
    free(w->recv);
    free(w->hloc);
    free(w->S);
    memset(w, 0, sizeof *w);
}

ssm_status ssmi_mpi_selective_core(const ssmi_mpi_ctx *c,
                                   const ssm_scan_args *a,
                                   const ssmi_sel_ws *w)
{
    const int64_t B = a->batch, D = a->dim, N = a->dstate, L = a->len;
    const int64_t cnt = B * D * N;
    ssm_status st = SSM_OK;
    float *send = w->send, *recv = w->recv, *hloc = w->hloc;
    double *S = w->S;
    const float *h0 = c->rank == 0 ? a->h0 : NULL;
    const int fma = cpu_fma();

    if (L > 0) {
        /* 1. This rank's block from a zero state (rank 0: from h0). */
        ssm_scan_args la = *a;
        la.h0 = h0;
        la.h_last = hloc;
        st = ssm_selective_scan(&la);
        /* 2. Its decay products exp(A sum dt), sum in a fixed order. */
        #pragma omp parallel for schedule(static)
        for (int64_t row = 0; row < B * D; row++)
            S[row] = dt_sum(a, row, fma);
        if (st == SSM_OK)
            for (int64_t i = 0; i < cnt; i++) {
                const int64_t row = i / N, n = i % N;
                send[2 * i] = (float)exp((double)a->A[(row % D) * N + n] * S[row]);
                send[2 * i + 1] = hloc[i];
            }
        else
            memset(send, 0, (size_t)cnt * 2 * sizeof(float));
    } else {
        /* An empty block: the identity map (rank 0: it holds h0). */
        for (int64_t i = 0; i < cnt; i++) {
            send[2 * i] = 1.0f;
            send[2 * i + 1] = h0 ? h0[i] : 0.0f;
        }
    }

    /* 3. The entering states: exclusive scan of the carries.  Every rank
     * takes part, even after a local failure (its status is agreed after). */
    {
        ssm_status e = ssmi_mpi_exscan_real(c, send, recv, cnt);
        if (st == SSM_OK)
            st = e;
    }
    if (st != SSM_OK)
        return st;

    /* 4. Rank r > 0 adds what h_in contributes to its block. */
    if (c->rank > 0 && L > 0) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t row = 0; row < B * D; row++)
            fix_row(a, row / D, row % D, recv + 2 * row * N + 1, 2, fma);
    }
    if (a->h_last) {
        if (c->rank == 0)
            for (int64_t i = 0; i < cnt; i++)
                a->h_last[i] = send[2 * i + 1];
        else
            for (int64_t i = 0; i < cnt; i++)
                a->h_last[i] = fmaf(send[2 * i], recv[2 * i + 1], send[2 * i + 1]);
    }
    return SSM_OK;
}

ssm_status ssm_mpi_selective_scan(MPI_Comm comm, const ssm_scan_args *args)
{
    ssmi_mpi_ctx c;
    ssm_status st = ssmi_mpi_enter(&c, comm);
    if (st != SSM_OK)
        return st;
    const int ok = ssmi_scan_args_ok(args);
    ssmi_sel_ws w = { 0 };
    const int nomem = ok && !ssmi_sel_ws_alloc(&w, args);
    /* One allreduce of flags and shared sizes before anything else. */
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    ssmi_scan_args_agree(&g, args, ok);
    st = ssmi_agree_run(&c, &g);
    if (st == SSM_OK) {
        st = ssmi_mpi_selective_core(&c, args, &w);
        st = ssmi_mpi_status_agree(&c, st);
    }
    ssmi_sel_ws_free(&w);
    ssmi_mpi_leave(&c);
    return st;
}

/* ------------------------------------------------------- diagonal scan --- */

typedef struct diag_args {
    int64_t B, H, N, L;
    const float complex *Ad, *Bd, *C;
    const float *D, *u;
    const float complex *h0;
    float complex *h_last;
    float *y;
} diag_args;

static int cf_finite(const float complex *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(crealf(x[i])) || !isfinite(cimagf(x[i])))
            return 0;
    return 1;
}

static int diag_ok(const diag_args *a)
{
    int64_t t;
    if (a->B < 1 || a->H < 1 || a->N < 1 || a->L < 0 || !a->Ad || !a->Bd || !a->C)
        return 0;
    if (a->L > 0 && (!a->u || !a->y))
        return 0;
    if (!sizes_ok(&t, sizeof(float), a->B, a->H, a->L, 1) ||
        !sizes_ok(&t, 2 * sizeof(float complex), a->B + 1, a->H, a->N, 1))
        return 0;
    if (!cf_finite(a->Ad, a->H * a->N) || !cf_finite(a->Bd, a->H * a->N) ||
        !cf_finite(a->C, a->H * a->N))
        return 0;
    for (int64_t i = 0; a->D && i < a->H; i++)
        if (!isfinite(a->D[i]))
            return 0;
    return 1;
}

/* z^e for e >= 0 by binary powering in double (deterministic, ~log2(e)
 * roundings). */
static double complex cpow_int(double complex z, int64_t e)
{
    double complex r = 1.0;
    while (e > 0) {
        if (e & 1)
            r *= z;
        z *= z;
        e >>= 1;
    }
    return r;
}

#define DIAG_KC 64   /* modes per pass of the fix-up */

/* y[b, c, :] += Re sum_k C_k Ad_k^(t+1) hin_k, hin_k at hin[k * stride]. */
static void diag_fix_row(const diag_args *a, int64_t b, int64_t c,
                         const float *hin, int64_t stride)
{
    const int64_t N = a->N, L = a->L;
    float *yrow = a->y + (b * a->H + c) * L;
    for (int64_t k0 = 0; k0 < N; k0 += DIAG_KC) {
        const int64_t kc = N - k0 < DIAG_KC ? N - k0 : DIAG_KC;
        double complex p[DIAG_KC], q[DIAG_KC], ad[DIAG_KC];
        int any = 0;
        for (int64_t k = 0; k < kc; k++) {
            const float *h = hin + (k0 + k) * stride;
            const double complex hk = (double)h[0] + I * (double)h[1];
            q[k] = (double complex)a->C[c * N + k0 + k] * hk;
            ad[k] = (double complex)a->Ad[c * N + k0 + k];
            p[k] = 1.0;
            any |= q[k] != 0.0;
        }
        if (!any)
            continue;
        for (int64_t t = 0; t < L; t++) {
            double acc = 0.0;
            int alive = 0;
            for (int64_t k = 0; k < kc; k++) {
                p[k] *= ad[k];
                acc += creal(q[k] * p[k]);
                alive |= p[k] != 0.0;
            }
            yrow[t] += (float)acc;
            if (!alive)
                break;   /* every power underflowed: the rest adds 0 */
        }
    }
}

ssm_status ssm_mpi_diag_scan(MPI_Comm comm, int64_t batch, int64_t channels,
                             int64_t n, int64_t L, const ssm_cfloat *Ad,
                             const ssm_cfloat *Bd, const ssm_cfloat *C,
                             const float *D, const float *u,
                             const ssm_cfloat *h0, ssm_cfloat *h_last,
                             float *y)
{
    ssmi_mpi_ctx c;
    ssm_status st = ssmi_mpi_enter(&c, comm);
    if (st != SSM_OK)
        return st;
    const diag_args a = { batch, channels, n, L, Ad, Bd, C, D, u,
                          c.rank == 0 ? h0 : NULL, h_last, y };
    const int ok = diag_ok(&a);
    float *send = NULL, *recv = NULL;
    float complex *hloc = NULL;
    int64_t cnt = 0, w = 0;
    if (ok) {
        cnt = channels * n;
        w = 2 * (1 + batch);
        send = ssmi_mpi_alloc((size_t)cnt, (size_t)w * sizeof(float));
        recv = ssmi_mpi_alloc((size_t)cnt, (size_t)w * sizeof(float));
        hloc = ssmi_mpi_alloc((size_t)(batch * cnt), sizeof(float complex));
    }
    const int nomem = ok && (!send || !recv || !hloc);
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    {
        uint64_t h = SSMI_HASH0;
        if (ok) {
            const size_t bytes = (size_t)(channels * n) * sizeof(float complex);
            h = ssmi_hash(h, Ad, bytes);
            h = ssmi_hash(h, Bd, bytes);
            h = ssmi_hash(h, C, bytes);
            h = ssmi_hash(h, D, (size_t)channels * sizeof(float));
        }
        ssmi_agree_add(&g, ok ? batch : 0);
        ssmi_agree_add(&g, ok ? channels : 0);
        ssmi_agree_add(&g, ok ? n : 0);
        ssmi_agree_add(&g, ssmi_hash_q(h));
        ssmi_agree_any(&g, ok && L > 0);
    }
    st = ssmi_agree_run(&c, &g);
    if (st != SSM_OK)
        goto out;

    const int64_t B = batch, H = channels, N = n;
    if (L > 0)
        st = ssm_diag_scan(B, H, N, L, Ad, Bd, C, D, u, a.h0, hloc, y);
    for (int64_t i = 0; i < cnt; i++) {
        /* element (c, k): a = Ad^L, then the B end states */
        float *e = send + i * w;
        const double complex pw = L > 0 ? cpow_int((double complex)Ad[i], L) : 1.0;
        e[0] = (float)creal(pw);
        e[1] = (float)cimag(pw);
        for (int64_t b = 0; b < B; b++) {
            float complex v = 0.0f;
            if (st == SSM_OK)
                v = L > 0 ? hloc[b * cnt + i] : (a.h0 ? a.h0[b * cnt + i] : 0.0f);
            e[2 + 2 * b] = crealf(v);
            e[3 + 2 * b] = cimagf(v);
        }
    }
    {
        ssm_status e = ssmi_mpi_exscan_cplx(&c, send, recv, cnt, B);
        if (st == SSM_OK)
            st = e;
    }
    if (st == SSM_OK && c.rank > 0 && L > 0) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t row = 0; row < B * H; row++) {
            const int64_t b = row / H, ch = row % H;
            diag_fix_row(&a, b, ch, recv + (ch * N) * w + 2 + 2 * b, w);
        }
    }
    if (st == SSM_OK && h_last) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < cnt; i++) {
                const float *e = send + i * w, *r = recv + i * w;
                float re = e[2 + 2 * b], im = e[3 + 2 * b];
                if (c.rank > 0) {
                    const float hr = r[2 + 2 * b], hi = r[3 + 2 * b];
                    re = e[0] * hr - e[1] * hi + re;
                    im = e[0] * hi + e[1] * hr + im;
                }
                float *o = (float *)&h_last[b * cnt + i];
                o[0] = re;
                o[1] = im;
            }
    }
    st = ssmi_mpi_status_agree(&c, st);
out:
    free(send);
    free(recv);
    free(hloc);
    ssmi_mpi_leave(&c);
    return st;
}
