/*
 * ssm_mpi_bench -- libssm_mpi on localhost ranks (a separate program:
 * ssm_bench does not link MPI).
 *
 *   mpirun -np R ssm_mpi_bench [--len Lrank] [--dim D] [--dstate N]
 *                              [--batch B] [--dmodel Dm] [--reps K]
 *
 * Per repeat, the time of the slowest rank (MPI_MAX), medians over K
 * repeats, every variant measured in the same process, interleaved:
 *   scan    local ssm_selective_scan of the rank's block (the baseline),
 *           ssm_mpi_selective_scan of the block (scan + carries + fix-up),
 *           ssm_selective_scan of all R blocks in one process (rank 0);
 *   carries the carry combination alone, 2 B D N floats per rank:
 *           MPI_Exscan with a non-commutative user operation vs a
 *           pipeline (receive from r-1, combine, send to r+1);
 *   layer   ssm_mamba_forward of the block alone vs ssm_mpi_mamba_forward
 *           (halo + carries + fix-up), and the bytes each rank sends per
 *           layer;
 *   ssd     ssm_ssd_scan of the block vs ssm_mpi_ssd_scan;
 *   mamba2  ssm_mamba2_forward of the block vs ssm_mpi_mamba2_forward
 *           (halo over xBC + carries + the block run again from the
 *           entering state on middle ranks);
 *   prefill ssm_model_forward of the rank's block vs ssm_mpi_model_prefill
 *           (--model DIR, default the tiny test fixture: the collectives'
 *           floor per layer, not a model's speed);
 *   allreduce ssm_mpi_allreduce_sum (rank-order double sum) vs
 *           MPI_Allreduce(MPI_SUM) on a gradient of --grad floats.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ssm_mpi.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Slowest rank's time of one collective step (barrier first); this rank's
 * own time in own_t. */
static double own_t;
#define TIMED(out, stmt) do { MPI_Barrier(MPI_COMM_WORLD); double t0_ = MPI_Wtime(); \
    stmt; double t_ = MPI_Wtime() - t0_; own_t = t_; \
    MPI_Allreduce(&t_, &(out), 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); } while (0)

/* Each rank's median, printed by rank 0, one line per rank. */
static void per_rank(const char *what, double *own, int reps, int rank, int R)
{
    double m = median(own, reps);
    double *all = rank == 0 ? malloc((size_t)R * sizeof *all) : NULL;
    MPI_Gather(&m, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0 && all) {
        printf("  %s per rank (ms):", what);
        for (int r = 0; r < R; r++)
            printf(" %.3f", 1e3 * all[r]);
        printf("\n");
    }
    free(all);
}

static void fill(float *x, size_t n, uint64_t s, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = lo + (hi - lo) * (float)((double)(s >> 11) * 0x1.0p-53);
    }
}

/* The carry operation, here for the carry-only benchmark. */
static void op_pair(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const float *x = in;
    float *y = inout;
    for (int i = 0; i < *len; i++) {
        const float a1 = x[2 * i], b1 = x[2 * i + 1];
        y[2 * i + 1] = fmaf(y[2 * i], b1, y[2 * i + 1]);
        y[2 * i] *= a1;
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    int64_t L = 8192, D = 64, N = 16, B = 1, dm = 128, ng = 1 << 20;
    int reps = 7;
    const char *mdir = SSM_SOURCE_DIR "/tests/fixtures/model";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--len")) L = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) D = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--dstate")) N = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--dmodel")) dm = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) mdir = argv[i + 1];
        else if (!strcmp(argv[i], "--grad")) ng = atoll(argv[i + 1]);
    }
    if (L < 1 || D < 1 || N < 1 || B < 1 || dm < 1 || reps < 1 || reps > 99 || ng < 1) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np R ssm_mpi_bench [--len Lrank] [--dim D] "
                            "[--dstate N] [--batch B] [--dmodel Dm] [--reps K] "
                            "[--model DIR] [--grad N]\n");
        MPI_Finalize();
        return 2;
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    char blas[128];
    ssm_blas_describe(blas, sizeof blas);
    if (rank == 0)
        printf("ssm_mpi_bench: %d ranks x %d OpenMP threads, %s; medians of %d, slowest rank\n",
               R, threads, blas, reps);

    /* ---------------------------------------------------------- scan --- */
    const size_t nx = (size_t)(B * D * L), nbc = (size_t)(B * N * L), nh = (size_t)(B * D * N);
    float *u = malloc(nx * 4), *dl = malloc(nx * 4), *z = malloc(nx * 4), *y = malloc(nx * 4),
          *Bm = malloc(nbc * 4), *C = malloc(nbc * 4), *A = malloc((size_t)(D * N) * 4),
          *Dv = malloc((size_t)D * 4), *hl = malloc(nh * 4);
    fill(u, nx, 1 + (uint64_t)rank, -1, 1);
    fill(dl, nx, 2 + (uint64_t)rank, -5, -2);
    fill(z, nx, 3 + (uint64_t)rank, -1, 1);
    fill(Bm, nbc, 4 + (uint64_t)rank, -1, 1);
    fill(C, nbc, 5 + (uint64_t)rank, -1, 1);
    for (int64_t i = 0; i < D * N; i++)
        A[i] = -(float)(i % N + 1);
    for (int64_t d = 0; d < D; d++)
        Dv[d] = 1.0f;
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.dim = D; a.dstate = N; a.len = L; a.ngroups = 1;
    a.u = u; a.delta = dl; a.A = A; a.B = Bm; a.C = C; a.D = Dv; a.z = z;
    a.delta_softplus = 1; a.y = y; a.h_last = hl;
    /* the whole sequence on rank 0 (other ranks' blocks: copies of its own) */
    ssm_scan_args w = a;
    float *W[5] = { NULL };
    if (rank == 0) {
        const size_t n1 = nx * (size_t)R, n2 = nbc * (size_t)R;
        W[0] = malloc(n1 * 4); W[1] = malloc(n1 * 4); W[2] = malloc(n1 * 4);
        W[3] = malloc(n2 * 4); W[4] = malloc(n2 * 4);
        fill(W[0], n1, 11, -1, 1); fill(W[1], n1, 12, -5, -2); fill(W[2], n1, 13, -1, 1);
        fill(W[3], n2, 14, -1, 1); fill(W[4], n2, 15, -1, 1);
        w.len = L * R; w.u = W[0]; w.delta = W[1]; w.z = W[2]; w.B = W[3]; w.C = W[4];
        w.y = malloc(n1 * 4);
    }
    double tl[99], tm[99], tw[99], te[99], tp[99], ol[99], om[99];
    const int64_t cnt = B * D * N;
    float *cs = malloc((size_t)cnt * 8), *cr = malloc((size_t)cnt * 8);
    fill(cs, (size_t)cnt * 2, 9, 0, 1);
    MPI_Datatype pair;
    MPI_Type_contiguous(2, MPI_FLOAT, &pair);
    MPI_Type_commit(&pair);
    MPI_Op op;
    MPI_Op_create(op_pair, 0, &op);
    ssm_mpi_selective_scan(MPI_COMM_WORLD, &a);   /* warm-up */
    for (int r = 0; r < reps; r++) {
        ssm_scan_args loc = a;
        TIMED(tl[r], ssm_selective_scan(&loc));
        ol[r] = own_t;
        TIMED(tm[r], ssm_mpi_selective_scan(MPI_COMM_WORLD, &a));
        om[r] = own_t;
        TIMED(tw[r], if (rank == 0) ssm_selective_scan(&w));
        TIMED(te[r], MPI_Exscan(cs, cr, (int)cnt, pair, op, MPI_COMM_WORLD));
        fill(cs, (size_t)cnt * 2, 9, 0, 1);
        TIMED(tp[r], {
            if (rank > 0) {
                MPI_Recv(cr, (int)cnt, pair, rank - 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                int len = (int)cnt;
                op_pair(cr, cs, &len, &pair);   /* cs = (incoming) then (own) */
            }
            if (rank + 1 < R)
                MPI_Send(cs, (int)cnt, pair, rank + 1, 3, MPI_COMM_WORLD);
        });
    }
    const double mtl = median(tl, reps), mtm = median(tm, reps), mtw = median(tw, reps),
                 mte = median(te, reps), mtp = median(tp, reps);
    if (rank == 0) {
        printf("\nselective scan: batch %lld, dim %lld, dstate %lld, %lld tokens per rank "
               "(%lld in all)\n", (long long)B, (long long)D, (long long)N, (long long)L,
               (long long)(L * R));
        printf("  %-44s %10.3f ms\n", "local ssm_selective_scan of one block", 1e3 * mtl);
        printf("  %-44s %10.3f ms  (x%.2f the local scan)\n", "ssm_mpi_selective_scan",
               1e3 * mtm, mtm / mtl);
        printf("  %-44s %10.3f ms  (speedup x%.2f)\n", "one process, whole sequence",
               1e3 * mtw, mtw / mtm);
        printf("  carries alone, %lld bytes per rank:\n", (long long)(cnt * 8));
        printf("  %-44s %10.3f ms\n", "  MPI_Exscan, non-commutative op", 1e3 * mte);
        printf("  %-44s %10.3f ms\n", "  pipeline (recv r-1, combine, send r+1)", 1e3 * mtp);
    }
    per_rank("local scan", ol, reps, rank, R);
    per_rank("ssm_mpi_selective_scan", om, reps, rank, R);
    MPI_Op_free(&op);
    MPI_Type_free(&pair);
    free(cs); free(cr);
    if (rank == 0) {
        free((void *)w.y);
        for (int i = 0; i < 5; i++)
            free(W[i]);
    }
    free(u); free(dl); free(z); free(y); free(Bm); free(C); free(A); free(Dv); free(hl);

    /* --------------------------------------------------------- layer --- */
    ssm_mamba_config cfg;
    ssm_mamba_config_init(&cfg);
    cfg.d_model = dm;
    ssm_mamba *blk;
    if (ssm_mamba_create(&blk, &cfg, 7) != SSM_OK) {
        MPI_Finalize();
        return 1;
    }
    ssm_mamba_config rc;
    ssm_mamba_config_init(&rc);
    ssm_mamba_get_config(blk, &rc);
    const int64_t Lb = L < 4096 ? L : 4096;
    const size_t nt = (size_t)(B * Lb * dm);
    float *x = malloc(nt * 4), *yo = malloc(nt * 4);
    fill(x, nt, 21 + (uint64_t)rank, -1, 1);
    double t1[99], t2[99], o1[99], o2[99];
    ssm_mpi_mamba_forward(MPI_COMM_WORLD, blk, NULL, B, Lb, x, yo);   /* warm-up */
    for (int r = 0; r < reps; r++) {
        TIMED(t1[r], ssm_mamba_forward(blk, NULL, B, Lb, x, yo));
        o1[r] = own_t;
        TIMED(t2[r], ssm_mpi_mamba_forward(MPI_COMM_WORLD, blk, NULL, B, Lb, x, yo));
        o2[r] = own_t;
    }
    const double m1 = median(t1, reps), m2 = median(t2, reps);
    const int64_t di = rc.d_model * rc.expand;
    const double carry = 2.0 * (double)(B * di * rc.d_state) * 4,
                 halo = (double)(B * di * (rc.d_conv + 1)) * 4;
    if (rank == 0) {
        printf("\nMamba block: d_model %lld, d_inner %lld, d_state %lld, d_conv %lld, "
               "batch %lld, %lld tokens per rank\n", (long long)dm, (long long)di,
               (long long)rc.d_state, (long long)rc.d_conv, (long long)B, (long long)Lb);
        printf("  %-44s %10.3f ms\n", "ssm_mamba_forward of one block", 1e3 * m1);
        printf("  %-44s %10.3f ms  (x%.2f)\n", "ssm_mpi_mamba_forward", 1e3 * m2, m2 / m1);
        printf("  bytes sent per rank per layer and exscan round: carries %.0f, conv halo "
               "%.0f, plus two small allreduces\n", carry, halo);
        printf("  (an exscan round count is ceil(log2 R) = %d with recursive doubling)\n",
               R > 1 ? (int)ceil(log2((double)R)) : 0);
    }
    per_rank("ssm_mamba_forward", o1, reps, rank, R);
    per_rank("ssm_mpi_mamba_forward", o2, reps, rank, R);
    free(x); free(yo);
    ssm_mamba_destroy(blk);

    /* ------------------------------------------------- SSD (Mamba-2) --- */
    {
        const int64_t H = 4, P = 64, N2 = 64, Ls = L < 4096 ? L : 4096;
        const size_t nxs = (size_t)(B * Ls * H * P), nd = (size_t)(B * Ls * H),
                     nbs = (size_t)(B * Ls * N2);
        float *sx = malloc(nxs * 4), *sz = malloc(nxs * 4), *sy = malloc(nxs * 4),
              *sdt = malloc(nd * 4), *sB = malloc(nbs * 4), *sC = malloc(nbs * 4),
              *sA = malloc((size_t)H * 4), *shl = malloc((size_t)(B * H * P * N2) * 4);
        fill(sx, nxs, 31 + (uint64_t)rank, -1, 1);
        fill(sz, nxs, 32 + (uint64_t)rank, -1, 1);
        fill(sdt, nd, 33 + (uint64_t)rank, -5, -2);
        fill(sB, nbs, 34 + (uint64_t)rank, -1, 1);
        fill(sC, nbs, 35 + (uint64_t)rank, -1, 1);
        for (int64_t h = 0; h < H; h++)
            sA[h] = -(float)(h + 1);
        ssm_ssd_args sa;
        memset(&sa, 0, sizeof sa);
        sa.batch = B; sa.len = Ls; sa.nheads = H; sa.headdim = P; sa.dstate = N2;
        sa.ngroups = 1; sa.x = sx; sa.dt = sdt; sa.A = sA; sa.B = sB; sa.C = sC;
        sa.z = sz; sa.dt_softplus = 1; sa.dt_max = INFINITY; sa.y = sy; sa.h_last = shl;
        double s1[99], s2[99], q1[99], q2[99];
        ssm_mpi_ssd_scan(MPI_COMM_WORLD, &sa);   /* warm-up */
        for (int r = 0; r < reps; r++) {
            TIMED(s1[r], ssm_ssd_scan(&sa));
            q1[r] = own_t;
            TIMED(s2[r], ssm_mpi_ssd_scan(MPI_COMM_WORLD, &sa));
            q2[r] = own_t;
        }
        const double ms1 = median(s1, reps), ms2 = median(s2, reps);
        if (rank == 0) {
            printf("\nSSD scan (Mamba-2): batch %lld, nheads %lld, headdim %lld, dstate %lld, "
                   "%lld tokens per rank, z, softplus\n", (long long)B, (long long)H,
                   (long long)P, (long long)N2, (long long)Ls);
            printf("  %-44s %10.3f ms\n", "local ssm_ssd_scan of one block", 1e3 * ms1);
            printf("  %-44s %10.3f ms  (x%.2f)\n", "ssm_mpi_ssd_scan", 1e3 * ms2, ms2 / ms1);
            printf("  carry bytes per rank and exscan round: %.0f\n",
                   (double)(B * H * (1 + P * N2)) * 4);
        }
        per_rank("ssm_ssd_scan", q1, reps, rank, R);
        per_rank("ssm_mpi_ssd_scan", q2, reps, rank, R);
        free(sx); free(sz); free(sy); free(sdt); free(sB); free(sC); free(sA); free(shl);
    }

    /* ---------------------------------------------- Mamba-2 block --- */
    {
        ssm_mamba2_config c2;
        ssm_mamba2_config_init(&c2);
        c2.d_model = dm;
        ssm_mamba2 *b2 = NULL;
        if (ssm_mamba2_create(&b2, &c2, 9) == SSM_OK) {
            ssm_mamba2_config r2;
            ssm_mamba2_config_init(&r2);
            ssm_mamba2_get_config(b2, &r2);
            const int64_t L2 = L < 2048 ? L : 2048, di2 = r2.d_model * r2.expand,
                          H2 = di2 / r2.headdim, dc = di2 + 2 * r2.ngroups * r2.d_state;
            const size_t n2 = (size_t)(B * L2 * dm);
            float *x2 = malloc(n2 * 4), *y2 = malloc(n2 * 4);
            fill(x2, n2, 41 + (uint64_t)rank, -1, 1);
            double a1[99], a2[99], p1[99], p2[99];
            ssm_mpi_mamba2_forward(MPI_COMM_WORLD, b2, NULL, B, L2, x2, y2);   /* warm-up */
            for (int r = 0; r < reps; r++) {
                TIMED(a1[r], ssm_mamba2_forward(b2, NULL, B, L2, x2, y2));
                p1[r] = own_t;
                TIMED(a2[r], ssm_mpi_mamba2_forward(MPI_COMM_WORLD, b2, NULL, B, L2, x2, y2));
                p2[r] = own_t;
            }
            const double ma1 = median(a1, reps), ma2 = median(a2, reps);
            if (rank == 0) {
                printf("\nMamba-2 block: d_model %lld, d_inner %lld, nheads %lld, headdim %lld, "
                       "d_state %lld, ngroups %lld, batch %lld, %lld tokens per rank\n",
                       (long long)dm, (long long)di2, (long long)H2, (long long)r2.headdim,
                       (long long)r2.d_state, (long long)r2.ngroups, (long long)B,
                       (long long)L2);
                printf("  %-44s %10.3f ms\n", "ssm_mamba2_forward of one block", 1e3 * ma1);
                printf("  %-44s %10.3f ms  (x%.2f)\n", "ssm_mpi_mamba2_forward", 1e3 * ma2,
                       ma2 / ma1);
                printf("  bytes sent per rank per layer and exscan round: carries %.0f, "
                       "conv halo %.0f\n", (double)(B * H2 * (1 + r2.headdim * r2.d_state)) * 4,
                       (double)(B * dc * (r2.d_conv + 1)) * 4);
            }
            per_rank("ssm_mamba2_forward", p1, reps, rank, R);
            per_rank("ssm_mpi_mamba2_forward", p2, reps, rank, R);
            free(x2); free(y2);
        }
        ssm_mamba2_destroy(b2);
    }

    /* ---------------------------------------------- LM prefill --- */
    {
        ssm_model *model = NULL;
        ssm_status ls = ssm_model_load(&model, mdir);
        ssm_model_info info;
        ssm_model_info_init(&info);
        if (ls == SSM_OK)
            ssm_model_get_info(model, &info);
        ssm_model_state *ms = NULL;
        if (ls == SSM_OK)
            ls = ssm_model_state_create(&ms, model, 1);
        int okall = 0, okme = ls == SSM_OK;
        MPI_Allreduce(&okme, &okall, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (okall) {
            const int64_t Lp = L < 4096 ? L : 4096;
            int32_t *tok = malloc((size_t)Lp * sizeof *tok);
            for (int64_t t = 0; t < Lp; t++)
                tok[t] = (int32_t)((t * 31 + rank * 7) % info.vocab);
            float *lg = malloc((size_t)info.vocab * sizeof *lg);
            double b1[99], b2[99], w1[99], w2[99];
            for (int r = 0; r < reps; r++) {
                ssm_model_state_reset(ms);
                TIMED(b1[r], ssm_model_forward(model, ms, 1, Lp, tok, lg));
                w1[r] = own_t;
                ssm_model_state_reset(ms);
                TIMED(b2[r], ssm_mpi_model_prefill(MPI_COMM_WORLD, model, ms, 0, Lp, tok, lg));
                w2[r] = own_t;
            }
            const double mb1 = median(b1, reps), mb2 = median(b2, reps);
            if (rank == 0) {
                printf("\nLM prefill (%s): %lld layers, d_model %lld, d_inner %lld, "
                       "%lld tokens per rank\n", mdir, (long long)info.n_layer,
                       (long long)info.d_model, (long long)info.d_inner, (long long)Lp);
                printf("  %-44s %10.3f ms\n", "ssm_model_forward of one block", 1e3 * mb1);
                printf("  %-44s %10.3f ms  (x%.2f)\n", "ssm_mpi_model_prefill", 1e3 * mb2,
                       mb2 / mb1);
                printf("  bytes sent per rank: per layer the block's halo and carries (above), "
                       "and once %.0f (the last row) plus three small allreduces\n",
                       (double)info.d_model * 8);
            }
            per_rank("ssm_model_forward", w1, reps, rank, R);
            per_rank("ssm_mpi_model_prefill", w2, reps, rank, R);
            free(tok); free(lg);
        } else if (rank == 0) {
            printf("\nLM prefill: cannot load '%s' (skipped)\n", mdir);
        }
        ssm_model_state_destroy(ms);
        ssm_model_destroy(model);
    }

    /* ------------------------------------------------ allreduce --- */
    {
        float *gbuf = malloc((size_t)ng * 4), *gsrc = malloc((size_t)ng * 4);
        fill(gsrc, (size_t)ng, 51 + (uint64_t)rank, -1, 1);
        double c1[99], c2[99], v1[99], v2[99];
        for (int r = 0; r < reps; r++) {
            memcpy(gbuf, gsrc, (size_t)ng * 4);
            TIMED(c1[r], ssm_mpi_allreduce_sum(MPI_COMM_WORLD, gbuf, ng));
            v1[r] = own_t;
            memcpy(gbuf, gsrc, (size_t)ng * 4);
            TIMED(c2[r], MPI_Allreduce(MPI_IN_PLACE, gbuf, (int)ng, MPI_FLOAT, MPI_SUM,
                                       MPI_COMM_WORLD));
            v2[r] = own_t;
        }
        const double mc1 = median(c1, reps), mc2 = median(c2, reps);
        if (rank == 0) {
            printf("\ngradient all-reduce: %lld floats (%.1f MB)\n", (long long)ng,
                   (double)ng * 4e-6);
            printf("  %-44s %10.3f ms\n", "ssm_mpi_allreduce_sum (rank order)", 1e3 * mc1);
            printf("  %-44s %10.3f ms  (x%.2f)\n", "MPI_Allreduce(MPI_SUM)", 1e3 * mc2,
                   mc2 / mc1);
            printf("  bytes sent per rank: %.0f each way (2 n (R-1)/R floats)\n",
                   2.0 * (double)ng * (R - 1) / R * 4);
        }
        per_rank("ssm_mpi_allreduce_sum", v1, reps, rank, R);
        per_rank("MPI_Allreduce", v2, reps, rank, R);
        free(gbuf); free(gsrc);
    }
    MPI_Finalize();
    return 0;
}
