/*
 * diag_scan.c -- the recurrent mode of S4D (Gu et al. 2022, "On the
 * Parameterization and Initialization of Diagonal State Space Models",
 * eq. (2): x_t = Abar x_{t-1} + Bbar u_t, y_t = C x_t + D u_t with a
 * diagonal complex Abar), the twin of the convolution mode in conv.c.
 *
 * Per (batch b, channel c) row, mode k, step t, in float complex:
 *   x[k] = Ad[c,k] x[k] + Bd[c,k] u[b,c,t]
 *   y[b,c,t] = Re(sum_k C[c,k] x[k]) + D[c] u[b,c,t]
 *
 * Fixed accumulation order: the modes go into 8 partial sums (mode k into
 * lane k mod 8 of its block, in increasing k), summed at the end of each
 * step by a fixed tree.  The lanes let the compiler vectorize without
 * reassociating anything, so the bytes do not depend on the machine's
 * vector width or on the number of threads.  ssm_diag_step is the scan with
 * L = 1 and runs the same (non-inlined) row function over tiles of modes
 * kept on the stack (no allocation), so it is bit for bit the scan.
 */
#include <string.h>

#include "scan/scan_internal.h"

#define LANES 8

/* Multiply-adds (batch H n L) below which one thread runs the whole call:
 * an OpenMP region costs microseconds, a mode update about a nanosecond. */
#define DIAG_PAR_WORK 65536.0

/* One row, state in split re/im arrays (n each).  noinline: the scan and
 * the step must run the very same machine code.  On x86-64 an AVX2 clone
 * is picked at load time where the CPU has it: every lane does the same
 * IEEE operations in the same order (no FMA, no reassociation), so both
 * clones give the same bytes, only 8 lanes at once instead of 4. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SSM_NO_CLONES)
__attribute__((noinline, target_clones("avx2", "default")))
#else
__attribute__((noinline))
#endif
static void diag_row(int64_t n, int64_t L,
                     const float *restrict ar, const float *restrict ai,
                     const float *restrict br, const float *restrict bi,
                     const float *restrict cr, const float *restrict ci,
                     float *restrict xr, float *restrict xi,
                     float *restrict acc_io, int hasd, float d,
                     const float *restrict u, float *restrict y)
{
    const int64_t nb = n - n % LANES;
    for (int64_t t = 0; t < L; t++) {
        const float ut = u[t];
        float acc[LANES] = {0};
        /* acc_io (step only, L = 1): the partial sums of the modes of the
         * earlier tiles come in, and go out unless this tile is the last
         * (y == NULL): mode k always lands in lane k mod 8 in increasing k,
         * so a row cut into tiles of whole lane blocks sums as the whole. */
        if (acc_io)
            for (int j = 0; j < LANES; j++)
                acc[j] = acc_io[j];
        for (int64_t k0 = 0; k0 < nb; k0 += LANES) {
            for (int j = 0; j < LANES; j++) {
                const int64_t k = k0 + j;
                const float nr = (ar[k] * xr[k] - ai[k] * xi[k]) + br[k] * ut;
                const float ni = (ar[k] * xi[k] + ai[k] * xr[k]) + bi[k] * ut;
                xr[k] = nr;
                xi[k] = ni;
                acc[j] += cr[k] * nr - ci[k] * ni;
            }
        }
        for (int64_t k = nb; k < n; k++) {
            const float nr = (ar[k] * xr[k] - ai[k] * xi[k]) + br[k] * ut;
            const float ni = (ar[k] * xi[k] + ai[k] * xr[k]) + bi[k] * ut;
            xr[k] = nr;
            xi[k] = ni;
            acc[k - nb] += cr[k] * nr - ci[k] * ni;
        }
        if (y == NULL) {
            for (int j = 0; j < LANES; j++)
                acc_io[j] = acc[j];
            continue;
        }
        const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                        ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        y[t] = hasd ? s + d * ut : s;
    }
}

static void split(const float complex *z, int64_t n, float *re, float *im)
{
    const float *f = (const float *)z;
    for (int64_t k = 0; k < n; k++) {
        re[k] = f[2 * k];
        im[k] = f[2 * k + 1];
    }
}

ssm_status ssmi_diag_scan_unchecked(int64_t batch, int64_t channels, int64_t n,
                                   int64_t L, const float complex *Ad,
                                   const float complex *Bd,
                                   const float complex *C, const float *D,
                                   const float *u, const float complex *x0,
                                   float complex *x_last, float *y)
{
    const int64_t H = channels;
    /* Split arrays padded to whole 64-byte lines. */
    const int64_t np = (n + 15) / 16 * 16;
    /* A parallel region costs more than a short row; the `if` only decides
     * who runs a row, never how. */
    const double work = (double)batch * (double)H * (double)n * (double)L;
    ssmi_scratch sc;
    SSM_TRY(ssmi_scratch_init(&sc, (size_t)(8 * np) * sizeof(float), batch * H));
#pragma omp parallel num_threads(sc.nt) if (work > DIAG_PAR_WORK)
    {
        float *w = ssmi_scratch_mine(&sc);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < batch; b++) {
            for (int64_t c = 0; c < H; c++) {
                float *ar = w, *ai = w + np, *br = w + 2 * np, *bi = w + 3 * np;
                float *cr = w + 4 * np, *ci = w + 5 * np;
                float *xr = w + 6 * np, *xi = w + 7 * np;
                split(Ad + c * n, n, ar, ai);
                split(Bd + c * n, n, br, bi);
                split(C + c * n, n, cr, ci);
                const int64_t row = b * H + c;
                if (x0 != NULL) {
                    split(x0 + row * n, n, xr, xi);
                } else {
                    memset(xr, 0, (size_t)n * sizeof(float));
                    memset(xi, 0, (size_t)n * sizeof(float));
                }
                diag_row(n, L, ar, ai, br, bi, cr, ci, xr, xi, NULL, D != NULL,
                         D != NULL ? D[c] : 0.0f, u + row * L, y + row * L);
                if (x_last != NULL) {
                    float *f = (float *)(x_last + row * n);
                    for (int64_t k = 0; k < n; k++) {
                        f[2 * k] = xr[k];
                        f[2 * k + 1] = xi[k];
                    }
                }
            }
        }
    }
    ssmi_scratch_free(&sc);
    return SSM_OK;
}

/* Modes per tile of the step: 8 split arrays of DIAG_STEP_TILE floats
 * (8 KiB) live on the stack, whatever n. */
#define DIAG_STEP_TILE 256

/* One step, no workspace: each (batch, channel) row runs diag_row with
 * L = 1 over tiles of DIAG_STEP_TILE modes (a multiple of LANES, so the
 * partial sums carried through acc give the bytes of one call over all n
 * modes, i.e. of the scan with L = 1), split into stack arrays and the
 * state written back per tile. */
void ssmi_diag_step_unchecked(int64_t batch, int64_t channels, int64_t n,
                              float complex *h, const float complex *Ad,
                              const float complex *Bd, const float complex *C,
                              const float *D, const float *u, float *y)
{
    const int64_t H = channels;
    const double work = (double)batch * (double)H * (double)n;
#pragma omp parallel for collapse(2) schedule(static) if (work > DIAG_PAR_WORK)
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t c = 0; c < H; c++) {
            float w[8 * DIAG_STEP_TILE];
            float *ar = w, *ai = w + DIAG_STEP_TILE, *br = w + 2 * DIAG_STEP_TILE;
            float *bi = w + 3 * DIAG_STEP_TILE, *cr = w + 4 * DIAG_STEP_TILE;
            float *ci = w + 5 * DIAG_STEP_TILE, *xr = w + 6 * DIAG_STEP_TILE;
            float *xi = w + 7 * DIAG_STEP_TILE;
            float acc[LANES] = {0};
            const int64_t row = b * H + c;
            for (int64_t k0 = 0; k0 < n; k0 += DIAG_STEP_TILE) {
                const int64_t m = n - k0 < DIAG_STEP_TILE ? n - k0 : DIAG_STEP_TILE;
                const int64_t off = c * n + k0;
                split(Ad + off, m, ar, ai);
                split(Bd + off, m, br, bi);
                split(C + off, m, cr, ci);
                split(h + row * n + k0, m, xr, xi);
                const int last = k0 + m == n;
                diag_row(m, 1, ar, ai, br, bi, cr, ci, xr, xi, acc, D != NULL,
                         D != NULL ? D[c] : 0.0f, u + row, last ? y + row : NULL);
                float *f = (float *)(h + row * n + k0);
                for (int64_t k = 0; k < m; k++) {
                    f[2 * k] = xr[k];
                    f[2 * k + 1] = xi[k];
                }
            }
        }
    }
}

static ssm_status scan_check(int64_t batch, int64_t channels, int64_t n,
                             int64_t L, const float complex *Ad,
                             const float complex *Bd, const float complex *C,
                             const float *D, const float *u, const float *y)
{
    int64_t t;
    if (Ad == NULL || Bd == NULL || C == NULL || u == NULL || y == NULL)
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_sizes_ok(&t, sizeof(float), 3, batch, channels, L) ||
        !ssmi_sizes_ok(&t, sizeof(float complex), 3, batch, channels, n))
        return SSM_FAIL(SSM_ERR_ARG);
    if (!ssmi_finite_cf(Ad, channels * n) || !ssmi_finite_cf(Bd, channels * n) ||
        !ssmi_finite_cf(C, channels * n))
        return SSM_FAIL(SSM_ERR_ARG);
    if (D != NULL && !ssmi_finite_f(D, channels)) return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssm_diag_scan(int64_t batch, int64_t channels, int64_t n, int64_t L,
                         const float complex *Ad, const float complex *Bd,
                         const float complex *C, const float *D,
                         const float *u, const float complex *x0,
                         float complex *x_last, float *y)
{
    SSM_TRY(scan_check(batch, channels, n, L, Ad, Bd, C, D, u, y));
    return ssmi_diag_scan_unchecked(batch, channels, n, L, Ad, Bd, C, D, u, x0,
                                   x_last, y);
}

ssm_status ssm_diag_step(int64_t batch, int64_t channels, int64_t n,
                         float complex *x, const float complex *Ad,
                         const float complex *Bd, const float complex *C,
                         const float *D, const float *u, float *y)
{
    if (x == NULL) return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(scan_check(batch, channels, n, 1, Ad, Bd, C, D, u, y));
    /* u, y [batch][channels] are the [batch][channels][1] of a scan with
     * L = 1; the state is carried in place, without workspace. */
    ssmi_diag_step_unchecked(batch, channels, n, x, Ad, Bd, C, D, u, y);
    return SSM_OK;
}
