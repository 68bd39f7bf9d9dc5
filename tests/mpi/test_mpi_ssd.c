/* ctest-labels: mpi */
/*
 * test_mpi_ssd.c -- ssm_mpi_ssd_scan against (a) a double-precision
 * token-by-token loop written here (the recurrence of <ssm/ssd.h>, Dao and
 * Gu 2024 eq. 1 with scalar A per head, on the whole sequence) and (b) the
 * single-process ssm_ssd_scan on the concatenated sequence.  Tolerance:
 * API.md's normwise 1e-6 (the float scan's own error is a few eps_f, the
 * fix-up adds N + 2 roundings per output on a state of the same scale).
 * Blocks: even, uneven, length 1, one empty; a long block (chunked path).
 */
#include "mpi_testutil.h"

#include <math.h>

#define TOL 1e-6

typedef struct ssd_problem {
    int64_t B, L, H, P, N, G;
    float *x, *dt, *A, *Bm, *C, *D, *z, *bias, *h0;
    int Dpc, softplus;
    float lo, hi;
} ssd_problem;

/* opts: 1 D, 2 z, 4 dt_bias, 8 softplus, 16 h0, 32 D per channel,
 * 64 dt clamp [0.005, 0.08], 128 dt ten times larger (no softplus: the
 * entering state decays below float range within a block, the fix-up's
 * early stop). */
static void make(ssd_problem *p, int64_t B, int64_t L, int64_t H, int64_t P,
                 int64_t N, int64_t G, unsigned opts, uint64_t seed)
{
    tu_rng r = { seed };
    memset(p, 0, sizeof *p);
    p->B = B; p->L = L; p->H = H; p->P = P; p->N = N; p->G = G;
    p->softplus = (opts & 8) != 0;
    p->Dpc = (opts & 32) != 0;
    p->lo = (opts & 64) ? 0.005f : 0.0f;
    p->hi = (opts & 64) ? 0.08f : INFINITY;
    p->x = tu_alloc((size_t)(B * L * H * P), sizeof(float));
    p->dt = tu_alloc((size_t)(B * L * H), sizeof(float));
    p->A = tu_alloc((size_t)H, sizeof(float));
    p->Bm = tu_alloc((size_t)(B * L * G * N), sizeof(float));
    p->C = tu_alloc((size_t)(B * L * G * N), sizeof(float));
    tu_fill_normal_f(&r, p->x, B * L * H * P, 1.0);
    tu_fill_normal_f(&r, p->Bm, B * L * G * N, 1.0);
    tu_fill_normal_f(&r, p->C, B * L * G * N, 1.0);
    /* Mamba-2: A = -exp(A_log), A_log ~ log U[1, 16]; dt ~ 1e-3..0.1 */
    for (int64_t h = 0; h < H; h++)
        p->A[h] = -(float)tu_range(&r, 1.0, 16.0) * 0.25f;
    for (int64_t i = 0; i < B * L * H; i++)
        p->dt[i] = p->softplus ? (float)tu_range(&r, -6.0, -2.0)
                               : (float)tu_range(&r, 0.001, 0.1) * ((opts & 128) ? 10.0f : 1.0f);
    if (opts & 1) {
        const int64_t nd = p->Dpc ? H * P : H;
        p->D = tu_alloc((size_t)nd, sizeof(float));
        tu_fill_normal_f(&r, p->D, nd, 1.0);
    }
    if (opts & 2) {
        p->z = tu_alloc((size_t)(B * L * H * P), sizeof(float));
        tu_fill_normal_f(&r, p->z, B * L * H * P, 1.0);
    }
    if (opts & 4) {
        p->bias = tu_alloc((size_t)H, sizeof(float));
        for (int64_t h = 0; h < H; h++)
            p->bias[h] = (float)tu_range(&r, 0.0, 0.02) * (p->softplus ? 50.0f : 1.0f);
    }
    if (opts & 16) {
        p->h0 = tu_alloc((size_t)(B * H * P * N), sizeof(float));
        tu_fill_normal_f(&r, p->h0, B * H * P * N, 1.0);
    }
}

static void drop(ssd_problem *p)
{
    free(p->x); free(p->dt); free(p->A); free(p->Bm); free(p->C);
    free(p->D); free(p->z); free(p->bias); free(p->h0);
}

static ssm_ssd_args args_of(const ssd_problem *p)
{
    ssm_ssd_args a;
    memset(&a, 0, sizeof a);
    a.batch = p->B; a.len = p->L; a.nheads = p->H; a.headdim = p->P;
    a.dstate = p->N; a.ngroups = p->G;
    a.x = p->x; a.dt = p->dt; a.A = p->A; a.B = p->Bm; a.C = p->C;
    a.D = p->D; a.D_per_channel = p->Dpc; a.z = p->z; a.dt_bias = p->bias;
    a.dt_softplus = p->softplus; a.dt_min = p->lo; a.dt_max = p->hi;
    a.h0 = p->h0;
    return a;
}

/* The recurrence in double on the whole sequence: y [B][L][H][P] and the
 * state after token `cut` (0 <= cut <= L) [B][H][P][N]. */
static void reference(const ssd_problem *p, int64_t cut, double *y, double *hcut)
{
    const int64_t B = p->B, L = p->L, H = p->H, P = p->P, N = p->N, G = p->G;
    double *S = malloc((size_t)(P * N) * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / (H / G);
            for (int64_t i = 0; i < P * N; i++)
                S[i] = p->h0 ? p->h0[(b * H + h) * P * N + i] : 0.0;
            for (int64_t t = 0; t <= L; t++) {
                if (t == cut)
                    memcpy(hcut + (b * H + h) * P * N, S, (size_t)(P * N) * sizeof(double));
                if (t == L)
                    break;
                double v = p->dt[(b * L + t) * H + h] + (p->bias ? p->bias[h] : 0.0);
                if (p->softplus && v <= 20.0)
                    v = log1p(exp(v));
                if (v < p->lo) v = p->lo;
                if (v > p->hi) v = p->hi;
                const double a = exp(v * p->A[h]);
                const float *xt = p->x + ((b * L + t) * H + h) * P;
                const float *Bt = p->Bm + ((b * L + t) * G + g) * N;
                const float *Ct = p->C + ((b * L + t) * G + g) * N;
                for (int64_t q = 0; q < P; q++) {
                    double acc = 0.0;
                    for (int64_t n = 0; n < N; n++) {
                        S[q * N + n] = a * S[q * N + n] + v * xt[q] * Bt[n];
                        acc += Ct[n] * S[q * N + n];
                    }
                    if (p->D)
                        acc += (double)(p->Dpc ? p->D[h * P + q] : p->D[h]) * xt[q];
                    if (p->z) {
                        const double zz = p->z[((b * L + t) * H + h) * P + q];
                        acc *= zz / (1.0 + exp(-zz));
                    }
                    y[((b * L + t) * H + h) * P + q] = acc;
                }
            }
        }
    free(S);
}

/* dst[b][0..len)[w] = src[b][off..off+len)[w] */
static void tslice(const float *src, int64_t B, int64_t L, int64_t w, int64_t off,
                   int64_t len, float *dst)
{
    for (int64_t b = 0; b < B; b++)
        memcpy(dst + b * len * w, src + (b * L + off) * w, (size_t)(len * w) * sizeof(float));
}

static void tslice_d(const double *src, int64_t B, int64_t L, int64_t w, int64_t off,
                     int64_t len, double *dst)
{
    for (int64_t b = 0; b < B; b++)
        memcpy(dst + b * len * w, src + (b * L + off) * w, (size_t)(len * w) * sizeof(double));
}

static double relerr_fd(const float *a, const double *ref, int64_t n)
{
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - ref[i];
        e += d * d;
        s += ref[i] * ref[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* One problem, split by `pattern` (or every rank `base` tokens). */
static void run_case(int pattern, int64_t base, int64_t G, unsigned opts, uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    int64_t len[64];
    const int64_t L = mt_split(pattern, R, base, len);
    int64_t off = 0;
    for (int r = 0; r < rank; r++)
        off += len[r];
    const int64_t my = len[rank];
    ssd_problem p;
    make(&p, 2, L, 4, 3, 5, G, opts, seed);
    const int64_t B = p.B, H = p.H, P = p.P, N = p.N, HP = H * P, SN = B * H * P * N;
    /* references on the whole sequence */
    double *yd = tu_alloc((size_t)(B * L * HP), sizeof(double));
    double *hd = tu_alloc((size_t)SN, sizeof(double));
    reference(&p, off + my, yd, hd);
    float *ys = tu_alloc((size_t)(B * L * HP), sizeof(float));
    ssm_ssd_args ga = args_of(&p);
    ga.y = ys;
    MT_EXPECT(ssm_ssd_scan(&ga) == SSM_OK, "single-process scan");
    /* this rank's block */
    const int64_t m1 = my ? my : 1;
    float *x = tu_alloc((size_t)(B * m1 * HP), sizeof(float));
    float *z = tu_alloc((size_t)(B * m1 * HP), sizeof(float));
    float *dt = tu_alloc((size_t)(B * m1 * H), sizeof(float));
    float *Bm = tu_alloc((size_t)(B * m1 * G * N), sizeof(float));
    float *C = tu_alloc((size_t)(B * m1 * G * N), sizeof(float));
    float *y = tu_alloc((size_t)(B * m1 * HP), sizeof(float));
    float *y2 = tu_alloc((size_t)(B * m1 * HP), sizeof(float));
    float *yref = tu_alloc((size_t)(B * m1 * HP), sizeof(float));
    double *ydb = tu_alloc((size_t)(B * m1 * HP), sizeof(double));
    float *hl = tu_alloc((size_t)SN, sizeof(float));
    tslice(p.x, B, L, HP, off, my, x);
    if (p.z)
        tslice(p.z, B, L, HP, off, my, z);
    tslice(p.dt, B, L, H, off, my, dt);
    tslice(p.Bm, B, L, G * N, off, my, Bm);
    tslice(p.C, B, L, G * N, off, my, C);
    tslice(ys, B, L, HP, off, my, yref);
    tslice_d(yd, B, L, HP, off, my, ydb);
    ssm_ssd_args a = args_of(&p);
    a.len = my;
    a.x = my ? x : NULL; a.dt = my ? dt : NULL; a.B = my ? Bm : NULL;
    a.C = my ? C : NULL; a.z = (p.z && my) ? z : NULL; a.y = my ? y : NULL;
    a.h0 = rank == 0 ? p.h0 : NULL;
    a.h_last = hl;
    ssm_status s = ssm_mpi_ssd_scan(MPI_COMM_WORLD, &a);
    MT_EXPECT(s == SSM_OK, "ssm_mpi_ssd_scan (pattern %d, opts %u, G %d): %s", pattern,
              opts, (int)G, ssm_status_string(s));
    if (s == SSM_OK) {
        if (my > 0) {
            MT_ERR(relerr_fd(y, ydb, B * my * HP), TOL,
                   "y vs double, pattern %d opts %u G %d", pattern, opts, (int)G);
            MT_ERR(tu_relerr_ff(y, yref, B * my * HP), TOL,
                   "y vs ssm_ssd_scan, pattern %d opts %u G %d", pattern, opts, (int)G);
            if (R == 1)
                MT_EXPECT(memcmp(y, yref, (size_t)(B * my * HP) * sizeof(float)) == 0,
                          "one rank: the bytes of ssm_ssd_scan");
        }
        MT_ERR(relerr_fd(hl, hd, SN), TOL, "h_last vs double, pattern %d opts %u G %d",
               pattern, opts, (int)G);
        /* the same bytes on a second run (fixed rank count) */
        if (my > 0) {
            a.y = y2;
            MT_EXPECT(ssm_mpi_ssd_scan(MPI_COMM_WORLD, &a) == SSM_OK, "second run");
            MT_EXPECT(memcmp(y, y2, (size_t)(B * my * HP) * sizeof(float)) == 0,
                      "second run: same bytes");
        } else {
            MT_EXPECT(ssm_mpi_ssd_scan(MPI_COMM_WORLD, &a) == SSM_OK, "second run");
        }
    }
    free(x); free(z); free(dt); free(Bm); free(C); free(y); free(y2); free(yref);
    free(ydb); free(hl); free(yd); free(hd); free(ys);
    drop(&p);
}

START_TEST(test_ssd_values)
{
    for (int pattern = 0; pattern < 4; pattern++)
        for (unsigned opts = 0; opts < 128; opts += (pattern == 0 ? 1 : 13))
            run_case(pattern, 9, (opts & 1) ? 2 : 1, opts, 100 + opts + 1000 * (unsigned)pattern);
    mt_finish("ssd scan vs double and ssm_ssd_scan");
}
END_TEST

/* Long blocks: the single-process scan takes the chunked path (several
 * chunks), the fix-up runs over hundreds of steps. */
START_TEST(test_ssd_long)
{
    run_case(0, 300, 2, 1 | 2 | 4 | 8 | 16, 7);
    run_case(0, 257, 1, 2 | 16 | 64, 8);
    run_case(0, 300, 2, 1 | 2 | 16 | 128, 10);
    run_case(1, 0, 1, 2 | 16 | 128, 11);
    mt_finish("ssd scan, long blocks");
}
END_TEST

/* Different OpenMP thread counts: the same bytes. */
START_TEST(test_ssd_threads)
{
    const int R = mt_size();
    ssd_problem p;
    make(&p, 2, 64 * R, 4, 3, 5, 2, 1 | 2 | 16, 9);
    float *ref = NULL;
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        /* every rank scans 64 tokens of the global problem */
        const int64_t my = 64, off = (int64_t)mt_rank() * 64;
        const int64_t HP = p.H * p.P;
        float *x = tu_alloc((size_t)(p.B * my * HP), sizeof(float));
        float *z = tu_alloc((size_t)(p.B * my * HP), sizeof(float));
        float *dt = tu_alloc((size_t)(p.B * my * p.H), sizeof(float));
        float *Bm = tu_alloc((size_t)(p.B * my * p.G * p.N), sizeof(float));
        float *C = tu_alloc((size_t)(p.B * my * p.G * p.N), sizeof(float));
        float *y = tu_alloc((size_t)(p.B * my * HP), sizeof(float));
        tslice(p.x, p.B, p.L, HP, off, my, x);
        tslice(p.z, p.B, p.L, HP, off, my, z);
        tslice(p.dt, p.B, p.L, p.H, off, my, dt);
        tslice(p.Bm, p.B, p.L, p.G * p.N, off, my, Bm);
        tslice(p.C, p.B, p.L, p.G * p.N, off, my, C);
        ssm_ssd_args a = args_of(&p);
        a.len = my; a.x = x; a.z = z; a.dt = dt; a.B = Bm; a.C = C; a.y = y;
        a.h0 = mt_rank() == 0 ? p.h0 : NULL;
        MT_EXPECT(ssm_mpi_ssd_scan(MPI_COMM_WORLD, &a) == SSM_OK, "threads %d", th);
        if (!ref)
            ref = y;
        else {
            MT_EXPECT(memcmp(ref, y, (size_t)(p.B * my * HP) * sizeof(float)) == 0,
                      "%d threads: same bytes as 1", th);
            free(y);
        }
        free(x); free(z); free(dt); free(Bm); free(C);
    }
    omp_set_num_threads(1);
    free(ref);
    drop(&p);
    mt_finish("ssd scan, thread counts");
}
END_TEST

/* Invalid arguments on one rank, or ranks disagreeing: SSM_ERR_ARG on every
 * rank (the test would hang, not fail, if a rank left early). */
START_TEST(test_ssd_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    ssd_problem p;
    make(&p, 1, 2, 2, 2, 3, 1, 1 | 4, 3);
    float y[8], A2[2], bias2[2];
    memcpy(A2, p.A, sizeof A2);
    A2[1] *= 2.0f;
    memcpy(bias2, p.bias, sizeof bias2);
    bias2[0] += 1.0f;
    for (int c = 0; c < 14; c++) {
        ssm_ssd_args a = args_of(&p);
        a.y = y;
        int expect = 1;
        const int me = rank == last;
        switch (c) {
        case 0: expect = 0; break;                             /* valid */
        case 1: if (me && R > 1) a.headdim = 3; expect = R > 1; break; /* shape (1 rank: would overrun) */
        case 2: if (me) a.ngroups = 3; break;                    /* G > H: invalid */
        case 3: if (me) a.A = A2; expect = R > 1; break;         /* A values */
        case 4: if (me) a.dt_bias = bias2; expect = R > 1; break;
        case 5: if (me) a.D = NULL; expect = R > 1; break;       /* presence */
        case 6: if (me) a.dt_softplus = 1; expect = R > 1; break;
        case 7: if (me) a.dt_max = 0.5f; expect = R > 1; break;
        case 8: if (me) a.dt_min = NAN; break;
        case 9: if (me) a.x = NULL; break;
        case 10: if (me) a.batch = 0; break;
        case 11: if (me) a.len = -1; break;
        case 12: a.len = 0; a.x = NULL; a.y = NULL; break;      /* no token anywhere */
        default: if (me) a.ngroups = 0; break;
        }
        ssm_status s = ssm_mpi_ssd_scan(MPI_COMM_WORLD, c == 13 && me ? NULL : &a);
        if (c == 13)
            expect = 1;
        MT_EXPECT(s == (expect ? SSM_ERR_ARG : SSM_OK), "case %d: %s", c,
                  ssm_status_string(s));
    }
    MT_EXPECT(ssm_mpi_ssd_scan(MPI_COMM_NULL, NULL) == SSM_ERR_ARG, "MPI_COMM_NULL");
    drop(&p);
    mt_finish("ssd errors agreed on every rank");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *su = suite_create("mpi_ssd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ssd_values);
    tcase_add_test(tc, test_ssd_long);
    tcase_add_test(tc, test_ssd_threads);
    tcase_add_test(tc, test_ssd_errors);
    suite_add_tcase(su, tc);
    return mt_run(su);
}
