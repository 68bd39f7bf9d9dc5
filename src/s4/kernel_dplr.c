/*
 * kernel_dplr.c -- the S4 convolution kernel of a diagonal-plus-low-rank
 * (DPLR) system (S4: Gu et al. 2022, Section 3.3, Algorithm 1, Lemmas
 * C.2-C.4), for the bilinear discretization.
 *
 * System (shapes [R][N] for P and Q):
 *     A = diag(lambda) - sum_r p_r q_r^*,   h = dt/2,
 *     Abar = (I - h A)^-1 (I + h A),  Bbar = (I - h A)^-1 dt B,
 *     K[l] = Re(C Abar^l Bbar),  l < L,  for any complex B and C.
 *
 * 1. Truncated generating function (Lemma C.2).  With omega_j =
 *    exp(-2 pi i j / L) (omega_j^L = 1),
 *        Khat_j = sum_{l<L} C Abar^l Bbar omega_j^l = Ct (I - omega_j Abar)^-1 Bbar,
 *        Ct = C (I - Abar^L),
 *    and K_c = IDFT(Khat) exactly (K_c the complex kernel, K = Re K_c): all
 *    L nodes and a complex inverse FFT, because a half spectrum would only
 *    give the right answer for a real kernel.
 * 2. Bilinear step (Lemma C.3):  (I - omega Abar)^-1 Bbar
 *        = (2 / (1 + omega)) (g - A)^-1 B,  g = (2/dt)(1 - omega)/(1 + omega).
 *    For omega = e^{-i theta}: g = (2i/dt) tan(theta/2) and
 *    2/(1 + omega) = 1 + i tan(theta/2), so every node is evaluated from
 *    t_j = tan(pi j / L) alone (no cancellation in 1 - omega near omega = 1).
 *    The node omega = -1 (t = inf, even L) is the finite limit
 *        Khat = (dt/2) Ct B.
 * 3. Woodbury (Lemma C.4) for any rank, in the dt-scaled form
 *        (g - A)^-1 = dt (D^-1 + P' Q^*)^-1,  D = diag(1/(2 i t - dt lambda)),
 *        P' = dt P,
 *        Ct (g - A)^-1 B = dt [k00 - k0P (I + kQP)^-1 kQB],
 *    with the Cauchy sums k_ab = sum_n a_n b_n / (2 i t - dt lambda_n); the
 *    small (rank x rank) complex system is solved per node by Gaussian
 *    elimination with partial pivoting written here (no complex BLAS).
 *
 * Ct needs Abar^L applied to C.  S4 treats Ct as the trained parameter;
 * here C is given, so Ct is computed by L applications of Abar from the
 * right to the row vector C, each through the DPLR structure in O(n rank)
 * (a Woodbury solve with the fixed diagonal I - h diag(lambda)): O(n rank L)
 * in all, never forming Abar or its powers.  (Repeated squaring of a dense
 * Abar would cost O(n^3 log L) and n^2 memory.)
 *
 * Nodes near poles.  The Cauchy terms lose accuracy like
 * eps max(|g|, |lambda|, 1/dt) / |g - lambda|, and a node on a pole
 * (FOUT has lambda = 0 exactly, LEGT/LAGT at odd n one of ~1e-16, which
 * meet g_0 = 0) gives 0/0.  Such nodes (relative distance below 2^-10, or a
 * Woodbury pivot below 2^-10 of its column) are flagged and evaluated
 * instead by the generating function itself: the same sweep that builds Ct
 * yields the direct values C Abar^l Bbar = dt (C Abar^l (I - hA)^-1) B, and
 * a forward FFT of those gives Khat at every node; only the flagged nodes
 * take it.  Cost: O(n rank^2 L) Cauchy sums + O(n rank L) sweep
 * + O(L log L) FFTs.
 */
#include <limits.h>
#include <string.h>
#include "s4/fftw_internal.h"   /* fftw_complex is double complex */

#define DPLR_PI_4 0.78539816339744830962
typedef double v2d __attribute__((vector_size(16)));
#define DPLR_NB 8                 /* nodes per Cauchy block (SIMD lanes) */
static const double DPLR_TAU = 0x1p-10;   /* relative pole distance flag */

/* Gaussian elimination with partial pivoting on the r x r row-major M,
 * solving M x = b in place (b <- x).  Moduli are measured by zmag.
 * Returns the smallest |pivot| met (0
 * when a pivot is zero or not finite): the caller compares it with the
 * scale of M to flag a node, or the whole system, as (nearly) singular. */
/* max(|re z|, |im z|): within sqrt2 of |z|, no hypot, no overflow. */
static inline double zmag(double complex z)
{
    const double a = fabs(creal(z)), b = fabs(cimag(z));
    return a > b ? a : b;
}

static double zsolve(int64_t r, double complex *M, double complex *b)
{
    double worst = INFINITY;
    for (int64_t c = 0; c < r; c++) {
        int64_t piv = c;
        double best = zmag(M[c * r + c]);
        for (int64_t i = c + 1; i < r; i++) {
            double a = zmag(M[i * r + c]);
            if (a > best) { best = a; piv = i; }
        }
        if (!(best > 0.0) || !isfinite(best))
            return 0.0;
        if (best < worst) worst = best;
        if (piv != c) {
            for (int64_t j = 0; j < r; j++) {
                double complex t = M[c * r + j];
                M[c * r + j] = M[piv * r + j];
                M[piv * r + j] = t;
            }
            double complex t = b[c]; b[c] = b[piv]; b[piv] = t;
        }
        const double complex inv = 1.0 / M[c * r + c];
        for (int64_t i = c + 1; i < r; i++) {
            const double complex f = M[i * r + c] * inv;
            if (f == 0.0)
                continue;
            for (int64_t j = c + 1; j < r; j++)
                M[i * r + j] -= f * M[c * r + j];
            b[i] -= f * b[c];
        }
    }
    for (int64_t c = r - 1; c >= 0; c--) {
        double complex s = b[c];
        for (int64_t j = c + 1; j < r; j++)
            s -= M[c * r + j] * b[j];
        b[c] = s / M[c * r + c];
    }
    return worst;
}

/* 1 + the largest modulus of X (r x r): the scale of I + X against which a
 * pivot of I + X is judged. */
static double ident_scale(int64_t r, const double complex *X, int64_t ld, int64_t off)
{
    double s = 0.0;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < r; j++) {
            double a = zmag(X[(i + off) * ld + j + off]);
            if (a > s) s = a;
        }
    return 1.0 + s;
}

/* t_j = tan(pi j / L) for node j, with the index reduced exactly so that
 * the argument is at most pi/4 (cot of the complement beyond): relative
 * error a few eps at every node.  Returns 0 for the node omega = -1. */
static int node_tan(int64_t j, int64_t L, double *t)
{
    if (2 * j == L)
        return 0;
    const int64_t m = 2 * j < L ? j : j - L;      /* |m| < L/2 */
    const int64_t am = m < 0 ? -m : m;
    double v;
    if (4 * am <= L)
        v = tan(DPLR_PI_4 * (double)(4 * am) / (double)L);
    else
        v = 1.0 / tan(2.0 * DPLR_PI_4 * (double)(L - 2 * am) / (double)L);
    *t = m < 0 ? -v : v;
    return 1;
}

/* Workspace of one kernel evaluation (split arrays for the hot loops). */
typedef struct dplr_ws {
    int64_t n, r, m;               /* m = r + 1 */
    double dt, h;
    /* recurrence (row vector v <- v Abar) */
    double *iEr, *iEi;             /* 1 / (1 - h lambda)            [N] */
    double *Fr, *Fi;               /* 1 + h lambda                  [N] */
    double *Per, *Pei;             /* p_s / (1 - h lambda)          [R][N] */
    double *Qhr, *Qhi;             /* h conj(q_r)                   [R][N] */
    double *Br, *Bi;               /* B                             [N] */
    double *vr, *vi, *zr, *zi;     /* current row, low-rank part    [N] */
    double *ur, *ui;               /* v (I - hA)^-1                 [N] */
    double complex *G;             /* LU-free copy of I + h P E^-1 Q^*, [R][R] */
    double complex *Gw, *a;        /* per-step copy and right side  */
    /* Cauchy */
    double *lr, *li;               /* dt lambda                     [N] */
    double *ls;                    /* max(|dt lambda|^2, 1)         [N] */
    double *Wr, *Wi;               /* a_n b_n products              [M][M][N] */
    double *acc;                   /* accumulators 2 M M NB */
    double complex *S;             /* M x M per node */
} dplr_ws;

/* Dot product sum_i (ar + i ai)_i (br + i bi)_i with four partial sums in
 * a fixed order (vectorizable, and the same bits on every run). */
static inline void zdot(int64_t n, const double *restrict ar, const double *restrict ai,
                        const double *restrict br, const double *restrict bi,
                        double *sr, double *si)
{
    double pr[4] = { 0, 0, 0, 0 }, pi[4] = { 0, 0, 0, 0 };
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int q = 0; q < 4; q++) {
            pr[q] += ar[i + q] * br[i + q] - ai[i + q] * bi[i + q];
            pi[q] += ar[i + q] * bi[i + q] + ai[i + q] * br[i + q];
        }
    for (int q = 0; i < n; i++, q++) {
        pr[q] += ar[i] * br[i] - ai[i] * bi[i];
        pi[q] += ar[i] * bi[i] + ai[i] * br[i];
    }
    *sr = (pr[0] + pr[1]) + (pr[2] + pr[3]);
    *si = (pi[0] + pi[1]) + (pi[2] + pi[3]);
}

/* One sweep of L steps of v <- v Abar from v = C.  On exit v = C Abar^L,
 * and kc[l] = C Abar^l Bbar = dt (v_l (I - hA)^-1) . B, the direct values
 * (O(n) more per step; used only for the nodes flagged below).
 * Returns 0 when the rank x rank Woodbury matrix is singular. */
static int sweep(dplr_ws *w, const double complex *C, int64_t L,
                 fftw_complex *kc)
{
    const int64_t n = w->n, r = w->r;
    double *restrict vr = w->vr, *restrict vi = w->vi;
    double *restrict zr = w->zr, *restrict zi = w->zi;
    double *restrict ur = w->ur, *restrict ui = w->ui;
    const double *restrict iEr = w->iEr, *restrict iEi = w->iEi;
    const double *restrict Fr = w->Fr, *restrict Fi = w->Fi;
    for (int64_t i = 0; i < n; i++) {
        vr[i] = creal(C[i]);
        vi[i] = cimag(C[i]);
    }
    for (int64_t l = 0; l < L; l++) {
        /* row solve u (E + h P Q^*) = v:  a = (I + h P E^-1 Q^*)^-1 P E^-1 v,
         * z = h Q^* a (as a row), u = (v - z) E^-1. */
        for (int64_t s = 0; s < r; s++) {
            double sr, si;
            zdot(n, w->Per + s * n, w->Pei + s * n, vr, vi, &sr, &si);
            w->a[s] = ssmi_cmplx(sr, si);
        }
        memcpy(w->Gw, w->G, (size_t)(r * r) * sizeof *w->Gw);
        if (zsolve(r, w->Gw, w->a) == 0.0)
            return 0;
        for (int64_t i = 0; i < n; i++)
            zr[i] = zi[i] = 0.0;
        for (int64_t s = 0; s < r; s++) {
            const double ar = creal(w->a[s]), ai = cimag(w->a[s]);
            const double *restrict qr = w->Qhr + s * n, *restrict qi = w->Qhi + s * n;
            for (int64_t i = 0; i < n; i++) {
                zr[i] += ar * qr[i] - ai * qi[i];
                zi[i] += ar * qi[i] + ai * qr[i];
            }
        }
        for (int64_t i = 0; i < n; i++) {
            const double dr = vr[i] - zr[i], di = vi[i] - zi[i];
            const double xr = dr * iEr[i] - di * iEi[i];
            const double xi = dr * iEi[i] + di * iEr[i];
            ur[i] = xr;
            ui[i] = xi;
            /* v <- u (I + h A) = u (1 + h lambda) - z  (u . p_s = a_s) */
            vr[i] = xr * Fr[i] - xi * Fi[i] - zr[i];
            vi[i] = xr * Fi[i] + xi * Fr[i] - zi[i];
        }
        double kr, ki;
        zdot(n, ur, ui, w->Br, w->Bi, &kr, &ki);
        kc[l] = ssmi_cmplx(w->dt * kr, w->dt * ki);
    }
    return 1;
}

/* Cauchy sums for DPLR_NB nodes with 2 t = tt[0..NB-1] (one node per SIMD
 * lane, so the sums over the modes keep a fixed order), then the Woodbury
 * combination.  out[jj] = Ct (g - A)^-1 B / (dt ... scaled, see above);
 * ok[jj] = 0 when the node is within relative distance DPLR_TAU of a pole
 * (|2it - dt lambda_k| < tau max(|2t|, |dt lambda_k|, 1)) or the small
 * system's pivot is below DPLR_TAU of its scale. */
static void cauchy_block(const dplr_ws *w, const double *tt, double complex *out,
                         int *ok)
{
    const int64_t n = w->n, m = w->m, r = w->r, mm = m * m;
    const double *accr = w->acc, *acci = w->acc + mm * DPLR_NB;
    const double *restrict Wr = w->Wr, *restrict Wi = w->Wi;
    const double *restrict lr = w->lr, *restrict li = w->li, *restrict ls = w->ls;
    const double tau2 = DPLR_TAU * DPLR_TAU;
    double tt2[DPLR_NB], viol[DPLR_NB];
    for (int jj = 0; jj < DPLR_NB; jj++) {
        tt2[jj] = tt[jj] * tt[jj];
        viol[jj] = INFINITY;
    }
    /* GCC vector extension, 2 nodes per vector (SSE2 width, the x86-64
     * baseline): the lane arithmetic is plain IEEE, so the bits are those
     * of the scalar loop. */
    v2d *restrict vacc = (v2d *)w->acc;   /* re [mm][NB/2], then im */
    const v2d zero = { 0.0, 0.0 };
    enum { NV = DPLR_NB / 2 };
    for (int64_t i = 0; i < 2 * mm * NV; i++)
        vacc[i] = zero;
    v2d tv[NV];
    memcpy(tv, tt, sizeof tv);
    for (int64_t k = 0; k < n; k++) {
        const double xr = -lr[k], lik = li[k], sk = ls[k];
        v2d dr[NV], di[NV], den[NV];
        for (int q = 0; q < NV; q++) {
            const v2d xi = tv[q] - lik;
            den[q] = xr * xr + xi * xi;
            const v2d inv = 1.0 / den[q];
            dr[q] = xr * inv;
            di[q] = -xi * inv;
        }
        double dd[DPLR_NB];
        memcpy(dd, den, sizeof dd);
        for (int jj = 0; jj < DPLR_NB; jj++) {
            const double sc = sk > tt2[jj] ? sk : tt2[jj];
            const double v = dd[jj] - tau2 * sc;
            viol[jj] = v < viol[jj] ? v : viol[jj];
        }
        for (int64_t ab = 0; ab < mm; ab++) {
            const double wr = Wr[ab * n + k], wi = Wi[ab * n + k];
            v2d *restrict a = vacc + NV * ab, *restrict b = vacc + NV * (mm + ab);
            for (int q = 0; q < NV; q++) {
                a[q] += wr * dr[q] - wi * di[q];
                b[q] += wr * di[q] + wi * dr[q];
            }
        }
    }
    for (int jj = 0; jj < DPLR_NB; jj++) {
        double complex *S = w->S;
        ok[jj] = viol[jj] >= 0.0;
        if (!ok[jj])
            continue;
        for (int64_t ab = 0; ab < mm; ab++)
            S[ab] = ssmi_cmplx(accr[ab * DPLR_NB + jj], acci[ab * DPLR_NB + jj]);
        /* M = I + kQP (r x r) in Gw, right side kQB in a */
        for (int64_t s = 0; s < r; s++) {
            for (int64_t q = 0; q < r; q++)
                w->Gw[s * r + q] = S[(1 + s) * m + 1 + q] + (s == q ? 1.0 : 0.0);
            w->a[s] = S[(1 + s) * m];
        }
        const double scale = ident_scale(r, S, m, 1);
        const double piv = zsolve(r, w->Gw, w->a);
        ok[jj] = piv >= DPLR_TAU * scale;
        double complex v = S[0];
        for (int64_t q = 0; q < r; q++)
            v -= S[1 + q] * w->a[q];
        out[jj] = w->dt * v;
    }
}

/* Step 1: the diagonal splitting E = I - h diag(lambda), F = I + h
 * diag(lambda) and the Woodbury matrix G = I + h P E^-1 Q^* of I - hA
 * (S4, Lemma C.3 with the bilinear step).  SSM_ERR_NUMERIC when a
 * 1 - h lambda_k vanishes or G is singular to working precision. */
static ssm_status dplr_setup(dplr_ws *w, const double complex *lambda,
                             const double complex *P, const double complex *Q,
                             const double complex *B)
{
    const int64_t n = w->n, rank = w->r;
    const double dt = w->dt;
    for (int64_t i = 0; i < n; i++) {
        const double complex hl = w->h * lambda[i];
        const double complex e = 1.0 - hl;
        if (e == 0.0)   /* the diagonal splitting of I - hA breaks down */
            return SSM_FAIL(SSM_ERR_NUMERIC);
        const double complex ie = 1.0 / e;
        w->iEr[i] = creal(ie); w->iEi[i] = cimag(ie);
        w->Fr[i] = creal(1.0 + hl); w->Fi[i] = cimag(1.0 + hl);
        w->Br[i] = creal(B[i]); w->Bi[i] = cimag(B[i]);
        w->lr[i] = dt * creal(lambda[i]); w->li[i] = dt * cimag(lambda[i]);
        const double s2 = w->lr[i] * w->lr[i] + w->li[i] * w->li[i];
        w->ls[i] = s2 > 1.0 ? s2 : 1.0;
        for (int64_t s = 0; s < rank; s++) {
            const double complex pe = P[s * n + i] * ie;
            const double complex qh = w->h * conj(Q[s * n + i]);
            w->Per[s * n + i] = creal(pe); w->Pei[s * n + i] = cimag(pe);
            w->Qhr[s * n + i] = creal(qh); w->Qhi[s * n + i] = cimag(qh);
        }
    }
    /* G = I + h P E^-1 Q^*:  G[s][q] = delta + sum_i (p_s/E)_i h conj(q_q)_i */
    for (int64_t s = 0; s < rank; s++)
        for (int64_t q = 0; q < rank; q++) {
            double sr, si;
            zdot(n, w->Per + s * n, w->Pei + s * n, w->Qhr + q * n, w->Qhi + q * n, &sr, &si);
            w->G[s * rank + q] = ssmi_cmplx(sr + (s == q ? 1.0 : 0.0), si);
        }
    memcpy(w->Gw, w->G, (size_t)(rank * rank) * sizeof *w->Gw);
    for (int64_t s = 0; s < rank; s++)
        w->a[s] = 0.0;
    /* I - hA singular to working precision (its Woodbury matrix is) */
    if (zsolve(rank, w->Gw, w->a) < 0x1p-52 * (ident_scale(rank, w->G, rank, 0) + 1.0))
        return SSM_FAIL(SSM_ERR_NUMERIC);
    return SSM_OK;
}

/* Step 3: the Cauchy products W_ab = left_a * right_b, left = [Ct;
 * conj(Q)], right = [B; dt P] (Ct in w->v after the sweep). */
static void dplr_cauchy_inputs(dplr_ws *w, const double complex *P,
                               const double complex *Q, const double complex *B)
{
    const int64_t n = w->n, m = w->m;
    for (int64_t a = 0; a < m; a++)
        for (int64_t b = 0; b < m; b++)
            for (int64_t k = 0; k < n; k++) {
                double complex lft = a == 0 ? ssmi_cmplx(w->vr[k], w->vi[k]) : conj(Q[(a - 1) * n + k]);
                double complex rgt = b == 0 ? B[k] : w->dt * P[(b - 1) * n + k];
                double complex p = lft * rgt;
                w->Wr[(a * m + b) * n + k] = creal(p);
                w->Wi[(a * m + b) * n + k] = cimag(p);
            }
}

/* Step 4: the generating function at every node but omega = -1 into X,
 * DPLR_NB nodes at a time (Lemma C.2-C.4, times 2/(1 + omega) = 1 + i t);
 * nodes too near a pole or with a nearly singular Woodbury system are
 * flagged instead.  Returns the number of flagged nodes; *jinf is the node
 * omega = -1 (even L) or -1. */
static int64_t dplr_nodes(dplr_ws *w, int64_t L, fftw_complex *X,
                          unsigned char *flag, int64_t *jinf)
{
    int64_t nflag = 0;
    *jinf = -1;
    for (int64_t j0 = 0; j0 < L; j0 += DPLR_NB) {
        double tt[DPLR_NB], tj[DPLR_NB];
        double complex out[DPLR_NB];
        int ok[DPLR_NB];
        for (int jj = 0; jj < DPLR_NB; jj++) {
            tj[jj] = 0.0;              /* padding lanes and omega = -1 */
            if (j0 + jj < L && !node_tan(j0 + jj, L, &tj[jj]))
                *jinf = j0 + jj;
            tt[jj] = 2.0 * tj[jj];
        }
        cauchy_block(w, tt, out, ok);
        for (int jj = 0; jj < DPLR_NB && j0 + jj < L; jj++) {
            const int64_t j = j0 + jj;
            flag[j] = 0;
            if (j == *jinf)
                continue;
            if (!ok[jj] || !isfinite(creal(out[jj])) || !isfinite(cimag(out[jj]))) {
                flag[j] = 1;
                nflag++;
                continue;
            }
            X[j] = out[jj] * ssmi_cmplx(1.0, tj[jj]);
        }
    }
    return nflag;
}

ssm_status ssm_kernel_dplr(int64_t n, int64_t rank,
                           const double complex *lambda,
                           const double complex *P, const double complex *Q,
                           const double complex *B, const double complex *C,
                           double dt, int64_t L, double *K)
{
    int64_t nr, nw;
    if (!lambda || !P || !Q || !B || !C || !K || !ssmi_dt_ok(dt) ||
        !ssmi_sizes_ok(NULL, 16, 1, n) || !ssmi_sizes_ok(NULL, 16, 1, L) ||
        L > INT_MAX || rank < 1 || rank >= INT32_MAX ||
        !ssmi_sizes_ok(&nr, 2 * sizeof(double), 2, rank, n) ||
        !ssmi_sizes_ok(&nw, 2 * sizeof(double), 3, rank + 1, rank + 1, n) ||
        !ssmi_sizes_ok(NULL, 2 * sizeof(double), 3, rank + 1, rank + 1, (int64_t)DPLR_NB))
        return SSM_FAIL(SSM_ERR_ARG);

    ssm_status st = SSM_OK;
    dplr_ws w;
    memset(&w, 0, sizeof w);
    w.n = n; w.r = rank; w.m = rank + 1; w.dt = dt; w.h = 0.5 * dt;
    const int64_t mm = w.m * w.m;
    /* one block of doubles: 17 n + 4 n r + 2 n m^2 + 2 m^2 NB */
    size_t nd = 17 * (size_t)n + 4 * (size_t)nr + 2 * (size_t)nw +
                2 * (size_t)mm * DPLR_NB + 8;
    double *blk = ssmi_alloc(nd, sizeof(double));
    double complex *zblk = ssmi_alloc(3 * (size_t)(rank * rank) + 2 * (size_t)rank + (size_t)mm,
                                     sizeof(double complex));
    unsigned char *flag = ssmi_alloc((size_t)L, 1);
    fftw_complex *X = ssmi_fftw_malloc((size_t)L * sizeof(fftw_complex));
    fftw_complex *Y = ssmi_fftw_malloc((size_t)L * sizeof(fftw_complex));
    fftw_complex *Z = NULL;
    ssmi_fft_ref pb = { NULL, -1 }, pf = { NULL, -1 };
    if (!blk || !zblk || !flag || !X || !Y) {
        st = SSM_FAIL(SSM_ERR_NOMEM);
        goto done;
    }
    if (!ssmi_finite_z(lambda, n) || !ssmi_finite_z(P, nr) || !ssmi_finite_z(Q, nr) ||
        !ssmi_finite_z(B, n) || !ssmi_finite_z(C, n)) {
        st = SSM_FAIL(SSM_ERR_ARG);
        goto done;
    }
    {
        double *p = blk;
        w.iEr = p; p += n; w.iEi = p; p += n; w.Fr = p; p += n; w.Fi = p; p += n;
        w.Br = p; p += n; w.Bi = p; p += n; w.vr = p; p += n; w.vi = p; p += n;
        w.zr = p; p += n; w.zi = p; p += n; w.ur = p; p += n; w.ui = p; p += n;
        w.lr = p; p += n; w.li = p; p += n; w.ls = p; p += n;
        p += 2 * n;   /* spare */
        w.Per = p; p += nr; w.Pei = p; p += nr; w.Qhr = p; p += nr; w.Qhi = p; p += nr;
        w.Wr = p; p += nw; w.Wi = p; p += nw;
        p = blk + (((size_t)(p - blk) + 7) & ~(size_t)7);   /* 64-byte aligned */
        w.acc = p;
        w.G = zblk; w.Gw = zblk + rank * rank; w.a = w.Gw + 2 * rank * rank;
        w.S = w.a + 2 * rank;
    }

    /* 1. splitting and Woodbury matrix of I - hA */
    st = dplr_setup(&w, lambda, P, Q, B);
    if (st != SSM_OK)
        goto done;

    /* 2. the sweep: Ct = C - C Abar^L, and the direct values in Y */
    if (!sweep(&w, C, L, Y)) {
        st = SSM_FAIL(SSM_ERR_NUMERIC);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {   /* v <- Ct, in place */
        w.vr[i] = creal(C[i]) - w.vr[i];
        w.vi[i] = cimag(C[i]) - w.vi[i];
    }

    /* 3.-4. Cauchy inputs, then every node but omega = -1 */
    dplr_cauchy_inputs(&w, P, Q, B);
    int64_t jinf;
    const int64_t nflag = dplr_nodes(&w, L, X, flag, &jinf);
    if (jinf >= 0) {   /* omega = -1: (dt/2) Ct B */
        double sr, si;
        zdot(n, w.vr, w.vi, w.Br, w.Bi, &sr, &si);
        X[jinf] = ssmi_cmplx(w.h * sr, w.h * si);
    }

    /* 5. flagged nodes: Khat from the forward FFT of the direct values */
    if (nflag > 0) {
        Z = ssmi_fftw_malloc((size_t)L * sizeof(fftw_complex));
        if (!Z) {
            st = SSM_FAIL(SSM_ERR_NOMEM);
            goto done;
        }
        st = ssmi_fft_plan_get(SSMI_FFT_FWD, (int)L, &pf);
        if (st != SSM_OK)
            goto done;
        fftw_execute_dft(pf.plan, Y, Z);
        for (int64_t j = 0; j < L; j++)
            if (flag[j])
                X[j] = Z[j];
    }

    /* 6. inverse DFT: K_c[l] = (1/L) sum_j Khat_j omega_j^-l, K = Re K_c */
    st = ssmi_fft_plan_get(SSMI_FFT_BWD, (int)L, &pb);
    if (st != SSM_OK)
        goto done;
    fftw_execute_dft(pb.plan, X, Y);
    const double invL = 1.0 / (double)L;
    for (int64_t l = 0; l < L; l++)
        K[l] = creal(Y[l]) * invL;
    if (!ssmi_finite_d(K, L))
        st = SSM_FAIL(SSM_ERR_NUMERIC);

done:
    ssmi_fft_plan_put(&pb);
    ssmi_fft_plan_put(&pf);
    if (X) fftw_free(X);
    if (Y) fftw_free(Y);
    if (Z) fftw_free(Z);
    ssmi_free(blk);
    ssmi_free(zblk);
    ssmi_free(flag);
    return st;
}
