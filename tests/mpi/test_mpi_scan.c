/* ctest-labels: mpi */
/*
 * test_mpi_scan.c -- ssm_mpi_selective_scan and ssm_mpi_diag_scan against
 * (a) a double-precision direct loop written here (the recurrences of
 * <ssm/scan.h>, evaluated on the whole sequence) and (b) the
 * single-process ssm_selective_scan / ssm_diag_scan on the concatenated
 * sequence.  Tolerance: API.md's normwise 1e-6 for Mamba-like inputs; it
 * is the float scan's own ~1e-7 (eps_f * a few) plus the fix-up's few
 * roundings per output, with margin.  Run under mpirun with 1..4 ranks.
 */
#include "mpi_testutil.h"

#define TOL 1e-6

/* ------------------------------------------------------------ problem --- */

typedef struct sel_problem {
    int64_t B, D, N, G, L;          /* L: total length */
    float *u, *delta, *A, *Bm, *C, *Dv, *z, *bias, *h0;
    int softplus;
} sel_problem;

/* Mamba-like: A = -(n+1) (S4D-real), delta + bias ~ softplus^-1 of
 * dt in [1e-3, 0.1] roughly, unit normal u, B, C, z. */
static void sel_make(sel_problem *p, int64_t B, int64_t D, int64_t N, int64_t G,
                     int64_t L, unsigned opts, uint64_t seed)
{
    tu_rng r = { seed };
    memset(p, 0, sizeof *p);
    p->B = B; p->D = D; p->N = N; p->G = G; p->L = L;
    p->softplus = (opts & 8) != 0;
    p->u = tu_alloc((size_t)(B * D * L), sizeof(float));
    p->delta = tu_alloc((size_t)(B * D * L), sizeof(float));
    p->A = tu_alloc((size_t)(D * N), sizeof(float));
    p->Bm = tu_alloc((size_t)(B * G * N * L), sizeof(float));
    p->C = tu_alloc((size_t)(B * G * N * L), sizeof(float));
    tu_fill_normal_f(&r, p->u, B * D * L, 1.0);
    tu_fill_normal_f(&r, p->Bm, B * G * N * L, 1.0);
    tu_fill_normal_f(&r, p->C, B * G * N * L, 1.0);
    for (int64_t d = 0; d < D; d++)
        for (int64_t n = 0; n < N; n++)
            p->A[d * N + n] = -(float)(n + 1) * (float)tu_range(&r, 0.5, 1.5);
    for (int64_t i = 0; i < B * D * L; i++)
        p->delta[i] = p->softplus ? (opts & 32 ? (float)tu_range(&r, -1.0, 1.0)
                                               : (float)tu_range(&r, -5.0, -1.0))
                                  : (float)tu_range(&r, 0.001, 0.2);
    if (opts & 1) {
        p->Dv = tu_alloc((size_t)D, sizeof(float));
        tu_fill_normal_f(&r, p->Dv, D, 1.0);
    }
    if (opts & 2) {
        p->z = tu_alloc((size_t)(B * D * L), sizeof(float));
        tu_fill_normal_f(&r, p->z, B * D * L, 1.0);
    }
    if (opts & 4) {
        p->bias = tu_alloc((size_t)D, sizeof(float));
        for (int64_t d = 0; d < D; d++)
            p->bias[d] = (float)tu_range(&r, -0.5, 0.5) * (p->softplus ? 1.0f : 0.1f);
        if (!p->softplus)   /* keep dt = delta + bias >= 0 */
            for (int64_t d = 0; d < D; d++)
                p->bias[d] = fabsf(p->bias[d]);
    }
    if (opts & 16) {
        p->h0 = tu_alloc((size_t)(B * D * N), sizeof(float));
        tu_fill_normal_f(&r, p->h0, B * D * N, 1.0);
    }
}

static void sel_free(sel_problem *p)
{
    free(p->u); free(p->delta); free(p->A); free(p->Bm); free(p->C);
    free(p->Dv); free(p->z); free(p->bias); free(p->h0);
}

/* The recurrence of <ssm/scan.h> in double on the whole sequence: y and
 * the state after step `tend` - 1 (tend = 0: the initial state). */
static void sel_ref(const sel_problem *p, int64_t tend, double *y, double *hend)
{
    const int64_t B = p->B, D = p->D, N = p->N, L = p->L;
    double *h = malloc((size_t)N * sizeof *h);
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            const int64_t g = d / (D / p->G), row = b * D + d;
            for (int64_t n = 0; n < N; n++)
                h[n] = p->h0 ? p->h0[row * N + n] : 0.0;
            if (tend == 0)
                for (int64_t n = 0; n < N; n++)
                    hend[row * N + n] = h[n];
            for (int64_t t = 0; t < L; t++) {
                double v = p->delta[row * L + t] + (p->bias ? p->bias[d] : 0.0);
                double dt = p->softplus ? (v > 20.0 ? v : log1p(exp(v))) : v;
                double uu = p->u[row * L + t], acc = 0.0;
                for (int64_t n = 0; n < N; n++) {
                    const int64_t bi = ((b * p->G + g) * N + n) * L + t;
                    h[n] = exp(dt * p->A[d * N + n]) * h[n] + dt * p->Bm[bi] * uu;
                    acc += p->C[bi] * h[n];
                }
                if (p->Dv)
                    acc += p->Dv[d] * uu;
                if (p->z) {
                    double zz = p->z[row * L + t];
                    acc *= zz / (1.0 + exp(-zz));
                }
                y[row * L + t] = acc;
                if (t + 1 == tend)
                    for (int64_t n = 0; n < N; n++)
                        hend[row * N + n] = h[n];
            }
        }
    free(h);
}

/* This rank's block of p as scan args (buffers owned by the caller). */
typedef struct sel_block {
    float *u, *delta, *Bm, *C, *z, *y, *h_last;
    ssm_scan_args a;
} sel_block;

static void block_make(sel_block *k, const sel_problem *p, int64_t off, int64_t len)
{
    const int64_t B = p->B, D = p->D, N = p->N, G = p->G;
    memset(k, 0, sizeof *k);
    k->u = tu_alloc((size_t)(B * D * len), sizeof(float));
    k->delta = tu_alloc((size_t)(B * D * len), sizeof(float));
    k->Bm = tu_alloc((size_t)(B * G * N * len), sizeof(float));
    k->C = tu_alloc((size_t)(B * G * N * len), sizeof(float));
    k->y = tu_alloc((size_t)(B * D * len), sizeof(float));
    k->h_last = tu_alloc((size_t)(B * D * N), sizeof(float));
    mt_slice(p->u, B * D, p->L, off, len, k->u);
    mt_slice(p->delta, B * D, p->L, off, len, k->delta);
    mt_slice(p->Bm, B * G * N, p->L, off, len, k->Bm);
    mt_slice(p->C, B * G * N, p->L, off, len, k->C);
    if (p->z) {
        k->z = tu_alloc((size_t)(B * D * len), sizeof(float));
        mt_slice(p->z, B * D, p->L, off, len, k->z);
    }
    ssm_scan_args *a = &k->a;
    a->batch = B; a->dim = D; a->dstate = N; a->len = len; a->ngroups = G;
    a->u = k->u; a->delta = k->delta; a->A = p->A; a->B = k->Bm; a->C = k->C;
    a->D = p->Dv; a->z = k->z; a->delta_bias = p->bias;
    a->delta_softplus = p->softplus; a->h0 = p->h0; a->y = k->y;
    a->h_last = k->h_last;
}

static void block_free(sel_block *k)
{
    free(k->u); free(k->delta); free(k->Bm); free(k->C); free(k->z);
    free(k->y); free(k->h_last);
}

/* Offsets of the ranks' blocks. */
static int64_t my_offset(const int64_t *len, int rank)
{
    int64_t off = 0;
    for (int r = 0; r < rank; r++)
        off += len[r];
    return off;
}

/* --------------------------------------------------- selective: values --- */

/* One configuration: MPI result vs the double loop and vs the
 * single-process scan, y and h_last. */
static void sel_case(int64_t B, int64_t D, int64_t N, int64_t G, int pattern,
                     int64_t base, unsigned opts, uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    const int64_t off = my_offset(len, rank), my = len[rank];
    sel_problem p;
    sel_make(&p, B, D, N, G, L, opts, seed);

    double *yd = tu_alloc((size_t)(B * D * L), sizeof(double));
    double *hd = tu_alloc((size_t)(B * D * N), sizeof(double));
    sel_ref(&p, off + my, yd, hd);

    /* single process on the whole sequence, and on the prefix for h */
    sel_block whole, pre;
    block_make(&whole, &p, 0, L);
    ssm_status s1 = ssm_selective_scan(&whole.a);
    MT_EXPECT(s1 == SSM_OK, "single-process scan: %d", s1);
    float *hpre = tu_alloc((size_t)(B * D * N), sizeof(float));
    if (off + my > 0) {
        block_make(&pre, &p, 0, off + my);
        MT_EXPECT(ssm_selective_scan(&pre.a) == SSM_OK, "prefix scan");
        memcpy(hpre, pre.h_last, (size_t)(B * D * N) * sizeof(float));
        block_free(&pre);
    } else if (p.h0) {
        memcpy(hpre, p.h0, (size_t)(B * D * N) * sizeof(float));
    }

    sel_block k;
    block_make(&k, &p, off, my);
    if (rank != 0)
        k.a.h0 = NULL;   /* read on rank 0 only: prove it is not needed */
    ssm_status s = ssm_mpi_selective_scan(MPI_COMM_WORLD, &k.a);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_selective_scan: %s", ssm_status_string(s));

    /* references restricted to this block */
    double *ydb = tu_alloc((size_t)(B * D * (my ? my : 1)), sizeof(double));
    float *yfb = tu_alloc((size_t)(B * D * (my ? my : 1)), sizeof(float));
    for (int64_t i = 0; i < B * D; i++)
        for (int64_t t = 0; t < my; t++) {
            ydb[i * my + t] = yd[i * L + off + t];
            yfb[i * my + t] = whole.y[i * L + off + t];
        }
    if (s == SSM_OK && my > 0) {
        MT_ERR(tu_relerr_f(k.y, ydb, B * D * my), TOL,
               "y vs double, pattern %d opts %u", pattern, opts);
        MT_ERR(tu_relerr_ff(k.y, yfb, B * D * my), TOL,
               "y vs ssm_selective_scan, pattern %d opts %u", pattern, opts);
    }
    if (s == SSM_OK && (off + my > 0 || p.h0)) {
        MT_ERR(tu_relerr_f(k.h_last, hd, B * D * N), TOL,
               "h_last vs double, pattern %d opts %u", pattern, opts);
        MT_ERR(tu_relerr_ff(k.h_last, hpre, B * D * N), TOL,
               "h_last vs ssm_selective_scan, pattern %d opts %u", pattern, opts);
    }
    if (s == SSM_OK && off + my == 0 && !p.h0)
        for (int64_t i = 0; i < B * D * N; i++)
            MT_EXPECT(k.h_last[i] == 0.0f, "empty prefix: zero state");
    free(ydb); free(yfb); free(yd); free(hd); free(hpre);
    block_free(&k);
    block_free(&whole);
    sel_free(&p);
}

/* Every option (D, z, delta_bias, softplus, h0) with every split pattern,
 * ngroups 1 and 2. */
START_TEST(test_selective_options)
{
    for (unsigned opts = 0; opts < 32; opts++)
        for (int pattern = 0; pattern < 4; pattern++)
            sel_case(2, 4, 3, (opts & 1) ? 2 : 1, pattern, 7, opts, 100 + opts * 4 + pattern);
    mt_finish("selective options x splits");
}
END_TEST

/* Long blocks: the fix-up's early stop (every decay underflowed) and the
 * scan's time-chunked path (batch * dim <= 8, len >= 2048). */
START_TEST(test_selective_long)
{
    sel_case(1, 3, 16, 1, 0, 2500, 2 | 4 | 8 | 16, 7);
    sel_case(1, 2, 8, 1, 1, 0, 1 | 8, 8);
    /* dt ~ 0.3..1.3: every decay underflows within ~100 steps */
    sel_case(2, 3, 16, 1, 0, 1000, 2 | 8 | 16 | 32, 9);
    mt_finish("selective long blocks");
}
END_TEST

/* Same bytes for 1, 2 and 3 OpenMP threads, and run to run. */
START_TEST(test_selective_threads)
{
    const int R = mt_size(), rank = mt_rank();
    int64_t len[64];
    const int64_t L = mt_split(0, R, 300, len);
    sel_problem p;
    sel_make(&p, 2, 24, 16, 2, L, 31, 99);
    sel_block k;
    block_make(&k, &p, my_offset(len, rank), len[rank]);
    const int64_t ny = 2 * 24 * len[rank], nh = 2 * 24 * 16;
    float *y1 = tu_alloc((size_t)ny, sizeof(float)), *h1 = tu_alloc((size_t)nh, sizeof(float));
    for (int run = 0; run < 4; run++) {
        tu_set_threads(run == 0 ? 1 : run);
        ssm_status s = ssm_mpi_selective_scan(MPI_COMM_WORLD, &k.a);
        MT_EXPECT(s == SSM_OK, "run %d: %s", run, ssm_status_string(s));
        if (run == 0) {
            memcpy(y1, k.y, (size_t)ny * sizeof(float));
            memcpy(h1, k.h_last, (size_t)nh * sizeof(float));
        } else {
            MT_EXPECT(memcmp(y1, k.y, (size_t)ny * sizeof(float)) == 0,
                      "y differs with %d threads", run);
            MT_EXPECT(memcmp(h1, k.h_last, (size_t)nh * sizeof(float)) == 0,
                      "h_last differs with %d threads", run);
        }
    }
    tu_set_threads(1);
    free(y1); free(h1);
    block_free(&k);
    sel_free(&p);
    mt_finish("selective thread-count determinism");
}
END_TEST

/* h0 == h_last on rank 0 (state carried in place). */
START_TEST(test_selective_inplace)
{
    const int R = mt_size(), rank = mt_rank();
    int64_t len[64];
    const int64_t L = mt_split(1, R, 0, len);
    sel_problem p;
    sel_make(&p, 1, 4, 4, 1, L, 16 | 8, 5);
    sel_block k, w;
    block_make(&k, &p, my_offset(len, rank), len[rank]);
    block_make(&w, &p, my_offset(len, rank), len[rank]);
    ssm_status s = ssm_mpi_selective_scan(MPI_COMM_WORLD, &w.a);
    float *h = tu_alloc(16, sizeof(float));
    memcpy(h, p.h0, 16 * sizeof(float));
    k.a.h0 = h;
    k.a.h_last = h;
    ssm_status s2 = ssm_mpi_selective_scan(MPI_COMM_WORLD, &k.a);
    MT_EXPECT(s == SSM_OK && s2 == SSM_OK, "status");
    MT_EXPECT(memcmp(k.y, w.y, (size_t)(4 * len[rank]) * sizeof(float)) == 0, "y in place");
    MT_EXPECT(memcmp(h, w.h_last, 16 * sizeof(float)) == 0, "h_last in place");
    free(h);
    block_free(&k); block_free(&w);
    sel_free(&p);
    mt_finish("selective h0 == h_last");
}
END_TEST

/* --------------------------------------------------- selective: errors --- */

/* A fault on one rank (the last) or a disagreement: SSM_ERR_ARG on every
 * rank, promptly (the CTest timeout catches a hang). */
START_TEST(test_selective_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    enum { NCASE = 14 };
    for (int c = 0; c < NCASE; c++) {
        if (R == 1 && c <= 8)
            continue;   /* one rank cannot disagree with itself */
        sel_problem p;
        int64_t len[64];
        const int64_t L = mt_split(0, R, 5, len);
        sel_make(&p, 1, 4, 3, 1, L, 1 | 2 | 4 | 8, 3);
        sel_block k;
        block_make(&k, &p, my_offset(len, rank), len[rank]);
        ssm_scan_args a = k.a;
        float *A2 = tu_alloc(16 * 3, sizeof(float));
        memcpy(A2, p.A, 12 * sizeof(float));
        const ssm_scan_args *ap = &a;
        int expect_arg = 1;
        if (rank == last) {
            switch (c) {
            case 0: a.dim = 2; break;              /* disagree on dim (smaller: in bounds) */
            case 1: a.dstate = 2; break;
            case 2: a.batch = 2; a.len = 1; break; /* in bounds of the buffers */
            case 3: a.ngroups = 2; break;
            case 4: a.delta_softplus = 0; break;
            case 5: a.D = NULL; break;
            case 6: a.z = NULL; break;
            case 7: a.delta_bias = NULL; break;
            case 8: A2[5] += 1.0f; a.A = A2; break;  /* A contents */
            case 9: a.u = NULL; break;             /* invalid on one rank */
            case 10: ap = NULL; break;
            case 11: a.ngroups = 3; break;         /* does not divide dim */
            case 12: a.len = -1; break;
            default: expect_arg = 0; break;        /* all fine */
            }
        }
        if (c == 13) {   /* every block empty: no sequence at all */
            a.len = 0;
            expect_arg = 1;
        }
        ssm_status s = ssm_mpi_selective_scan(MPI_COMM_WORLD, ap);
        MT_EXPECT(s == (expect_arg ? SSM_ERR_ARG : SSM_OK),
                  "case %d: got %s", c, ssm_status_string(s));
        free(A2);
        block_free(&k);
        sel_free(&p);
    }
    /* MPI_COMM_NULL: this rank alone, SSM_ERR_ARG. */
    ssm_scan_args none;
    memset(&none, 0, sizeof none);
    MT_EXPECT(ssm_mpi_selective_scan(MPI_COMM_NULL, &none) == SSM_ERR_ARG, "MPI_COMM_NULL");
    /* The caller's error handler is restored. */
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh);
    MT_EXPECT(eh == MPI_ERRORS_ARE_FATAL, "error handler restored");
    MPI_Errhandler_free(&eh);
    mt_finish("selective errors agreed on every rank");
}
END_TEST

/* ------------------------------------------------------------ diagonal --- */

static void diag_case(int pattern, int64_t base, int withD, int withh0, uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t B = 2, H = 3, N = 5;
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    const int64_t off = my_offset(len, rank), my = len[rank];
    tu_rng r = { seed };
    float complex *Ad = tu_alloc((size_t)(H * N), sizeof *Ad);
    float complex *Bd = tu_alloc((size_t)(H * N), sizeof *Bd);
    float complex *C = tu_alloc((size_t)(H * N), sizeof *C);
    float complex *h0 = tu_alloc((size_t)(B * H * N), sizeof *h0);
    float *D = tu_alloc((size_t)H, sizeof *D);
    float *u = tu_alloc((size_t)(B * H * L), sizeof *u);
    for (int64_t i = 0; i < H * N; i++) {
        /* S4D-Lin-like modes discretized with ZOH at a small step */
        const double dt = 0.05, re = -0.5, im = 3.14159265358979323846 * (double)(i % N);
        const double mag = exp(re * dt);
        Ad[i] = tu_cmplxf((float)(mag * cos(im * dt)), (float)(mag * sin(im * dt)));
        Bd[i] = tu_cmplxf((float)(dt * tu_normal(&r)), (float)(dt * tu_normal(&r)));
        C[i] = tu_cmplxf((float)tu_normal(&r), (float)tu_normal(&r));
    }
    for (int64_t i = 0; i < B * H * N; i++)
        h0[i] = tu_cmplxf((float)tu_normal(&r), (float)tu_normal(&r));
    tu_fill_normal_f(&r, D, H, 1.0);
    tu_fill_normal_f(&r, u, B * H * L, 1.0);
    const float *Dp = withD ? D : NULL;
    const float complex *h0p = withh0 ? h0 : NULL;

    /* double reference of the block and of the state at its end */
    const int64_t myb = my ? my : 1;
    double *yd = tu_alloc((size_t)(B * H * myb), sizeof(double));
    double *hd = tu_alloc((size_t)(B * H * N * 2), sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < H; c++) {
            const int64_t row = b * H + c;
            double complex h[16];
            for (int64_t k = 0; k < N; k++)
                h[k] = h0p ? (double complex)h0p[row * N + k] : 0.0;
            for (int64_t t = 0; t < off + my; t++) {
                double acc = 0.0;
                for (int64_t k = 0; k < N; k++) {
                    h[k] = (double complex)Ad[c * N + k] * h[k] +
                           (double complex)Bd[c * N + k] * u[row * L + t];
                    acc += creal((double complex)C[c * N + k] * h[k]);
                }
                if (Dp)
                    acc += Dp[c] * u[row * L + t];
                if (t >= off)
                    yd[row * my + t - off] = acc;
            }
            for (int64_t k = 0; k < N; k++) {
                hd[2 * (row * N + k)] = creal(h[k]);
                hd[2 * (row * N + k) + 1] = cimag(h[k]);
            }
        }
    /* single process on the whole sequence */
    float *yw = tu_alloc((size_t)(B * H * L), sizeof(float));
    MT_EXPECT(ssm_diag_scan(B, H, N, L, Ad, Bd, C, Dp, u, h0p, NULL, yw) == SSM_OK,
              "ssm_diag_scan");
    float *ub = tu_alloc((size_t)(B * H * myb), sizeof(float));
    float *yb = tu_alloc((size_t)(B * H * myb), sizeof(float));
    float *ywb = tu_alloc((size_t)(B * H * myb), sizeof(float));
    float complex *hl = tu_alloc((size_t)(B * H * N), sizeof *hl);
    mt_slice(u, B * H, L, off, my, ub);
    mt_slice(yw, B * H, L, off, my, ywb);
    ssm_status s = ssm_mpi_diag_scan(MPI_COMM_WORLD, B, H, N, my, Ad, Bd, C, Dp,
                                     my ? ub : NULL, rank == 0 ? h0p : NULL, hl,
                                     my ? yb : NULL);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_diag_scan: %s", ssm_status_string(s));
    if (s == SSM_OK && my > 0) {
        MT_ERR(tu_relerr_f(yb, yd, B * H * my), TOL, "diag y vs double, pattern %d", pattern);
        MT_ERR(tu_relerr_ff(yb, ywb, B * H * my), TOL, "diag y vs ssm_diag_scan, pattern %d", pattern);
    }
    if (s == SSM_OK && (off + my > 0 || h0p))
        MT_ERR(tu_relerr_f((const float *)hl, hd, 2 * B * H * N), TOL,
               "diag h_last vs double, pattern %d", pattern);
    free(Ad); free(Bd); free(C); free(h0); free(D); free(u); free(yd); free(hd);
    free(yw); free(ub); free(yb); free(ywb); free(hl);
}

START_TEST(test_diag_values)
{
    for (int pattern = 0; pattern < 4; pattern++)
        for (int o = 0; o < 4; o++)
            diag_case(pattern, 9, o & 1, (o & 2) != 0, 40 + pattern * 4 + o);
    diag_case(0, 700, 1, 1, 77);   /* long blocks */
    mt_finish("diag options x splits");
}
END_TEST

START_TEST(test_diag_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    float complex Ad[6], Bd[6], C[6], hl[12];
    float u[2 * 3 * 2], y[2 * 3 * 2], D[3] = { 1, 2, 3 };
    for (int i = 0; i < 6; i++) {
        Ad[i] = tu_cmplxf(0.5f, 0.1f);
        Bd[i] = tu_cmplxf(1.0f, 0.0f);
        C[i] = tu_cmplxf(0.0f, 1.0f);
    }
    for (int i = 0; i < 12; i++)
        u[i] = (float)i;
    for (int c = 0; c < 6; c++) {
        int64_t H = 3, n = 2, L = 2;
        float complex Ad2[6];
        memcpy(Ad2, Ad, sizeof Ad);
        const float complex *adp = Ad;
        const float *Dp = D, *up = u;
        int expect = R > 1 || c >= 3;
        if (rank == last) {
            switch (c) {
            case 0: H = 2; break;                     /* disagree on channels */
            case 1: Dp = NULL; break;                 /* D presence */
            case 2: Ad2[3] = tu_cmplxf(0.25f, 0.0f); adp = Ad2; break;
            case 3: Ad2[1] = tu_cmplxf(NAN, 0.0f); adp = Ad2; break;  /* non-finite */
            case 4: up = NULL; break;
            default: L = -3; break;
            }
        }
        ssm_status s = ssm_mpi_diag_scan(MPI_COMM_WORLD, 2, H, n, L, adp, Bd, C, Dp,
                                         up, NULL, hl, y);
        MT_EXPECT(s == (expect ? SSM_ERR_ARG : SSM_OK), "diag case %d: %s", c,
                  ssm_status_string(s));
    }
    mt_finish("diag errors agreed on every rank");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_scan");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_selective_options);
    tcase_add_test(tc, test_selective_long);
    tcase_add_test(tc, test_selective_threads);
    tcase_add_test(tc, test_selective_inplace);
    tcase_add_test(tc, test_selective_errors);
    tcase_add_test(tc, test_diag_values);
    tcase_add_test(tc, test_diag_errors);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
