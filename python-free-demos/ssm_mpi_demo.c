/*
 * ssm_mpi_demo -- a long selective scan (Mamba S6) split over MPI ranks.
 *
 *   mpirun -np 4 ssm_mpi_demo [--len N] [--dim D] [--dstate N] [--batch B]
 *                             [--check | --no-check] [--seed S]
 *
 * Every rank generates its own consecutive block of one long synthetic
 * Mamba-like sequence (the data of token t depends on t only, not on the
 * split), the ranks run ssm_mpi_selective_scan, and the demo prints the
 * time and throughput.  For small problems (or --check) rank 0 also gathers
 * the blocks, runs ssm_selective_scan on the whole sequence in one process
 * and prints the normwise difference against API.md's 1e-6; the exit status
 * is nonzero if it is exceeded.  Needs: libssm_mpi (an MPI installation).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <ssm_mpi.h>

/* A value in [-1, 1) from (what, row, t): the sequence is defined
 * globally, so a rank can make its block alone (splitmix64). */
static float synth(uint64_t seed, uint64_t what, uint64_t row, uint64_t t)
{
    uint64_t z = seed ^ (what * 0x9E3779B97F4A7C15ull) ^ (row * 0xD1B54A32D192ED03ull) ^
                 (t * 0x94D049BB133111EBull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1.0p-52 - 1.0);
}

static void usage(void)
{
    fprintf(stderr, "usage: mpirun -np R ssm_mpi_demo [--len N] [--dim D] [--dstate N] "
                    "[--batch B] [--check | --no-check] [--seed S]\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    int64_t L = 1 << 20, D = 16, N = 16, B = 1;
    uint64_t seed = 42;
    int check = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--len") && more) L = atoll(argv[++i]);
        else if (!strcmp(a, "--dim") && more) D = atoll(argv[++i]);
        else if (!strcmp(a, "--dstate") && more) N = atoll(argv[++i]);
        else if (!strcmp(a, "--batch") && more) B = atoll(argv[++i]);
        else if (!strcmp(a, "--seed") && more) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--check")) check = 1;
        else if (!strcmp(a, "--no-check")) check = 0;
        else {
            if (rank == 0)
                usage();
            MPI_Finalize();
            return 2;
        }
    }
    if (L < R || D < 1 || N < 1 || B < 1 || L > ((int64_t)1 << 40)) {
        if (rank == 0) {
            fprintf(stderr, "ssm_mpi_demo: need len >= ranks and positive sizes\n");
            usage();
        }
        MPI_Finalize();
        return 2;
    }
    if (check < 0)
        check = B * D * L <= ((int64_t)1 << 24);   /* small: check by default */

    /* This rank's block: an even split, the remainder to the first ranks. */
    const int64_t my = L / R + (rank < L % R), off = rank * (L / R) + (rank < L % R ? rank : L % R);
    const size_t nrow = (size_t)(B * D), nb = nrow * (size_t)my, nbc = (size_t)(B * N) * (size_t)my;
    float *u = malloc(nb * sizeof *u), *delta = malloc(nb * sizeof *delta),
          *z = malloc(nb * sizeof *z), *y = malloc(nb * sizeof *y),
          *Bm = malloc(nbc * sizeof *Bm), *C = malloc(nbc * sizeof *C),
          *A = malloc((size_t)(D * N) * sizeof *A), *Dv = malloc((size_t)D * sizeof *Dv),
          *bias = malloc((size_t)D * sizeof *bias),
          *hl = malloc((size_t)(B * D * N) * sizeof *hl);
    int ok = u && delta && z && y && Bm && C && A && Dv && bias && hl, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        if (rank == 0)
            fprintf(stderr, "ssm_mpi_demo: out of memory for the blocks\n");
        MPI_Finalize();
        return 1;
    }
    for (int64_t d = 0; d < D; d++) {
        for (int64_t n = 0; n < N; n++)
            A[d * N + n] = -(float)(n + 1);            /* S4D-Real, as Mamba */
        Dv[d] = 1.0f;
        bias[d] = -4.0f + 0.5f * synth(seed, 7, (uint64_t)d, 0);  /* dt ~ 0.02 */
    }
    for (size_t i = 0; i < nrow; i++)
        for (int64_t t = 0; t < my; t++) {
            const uint64_t gt = (uint64_t)(off + t);
            u[i * (size_t)my + (size_t)t] = synth(seed, 1, i, gt);
            delta[i * (size_t)my + (size_t)t] = synth(seed, 2, i, gt);
            z[i * (size_t)my + (size_t)t] = synth(seed, 3, i, gt);
        }
    for (size_t i = 0; i < (size_t)(B * N); i++)
        for (int64_t t = 0; t < my; t++) {
            Bm[i * (size_t)my + (size_t)t] = synth(seed, 4, i, (uint64_t)(off + t));
            C[i * (size_t)my + (size_t)t] = synth(seed, 5, i, (uint64_t)(off + t));
        }
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.dim = D; a.dstate = N; a.len = my; a.ngroups = 1;
    a.u = u; a.delta = delta; a.A = A; a.B = Bm; a.C = C; a.D = Dv; a.z = z;
    a.delta_bias = bias; a.delta_softplus = 1; a.y = y; a.h_last = hl;

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    ssm_status st = ssm_mpi_selective_scan(MPI_COMM_WORLD, &a);
    double dt = MPI_Wtime() - t0, dtmax = 0;
    MPI_Reduce(&dt, &dtmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (st != SSM_OK) {
        if (rank == 0)
            fprintf(stderr, "ssm_mpi_selective_scan: %s\n", ssm_status_string(st));
        MPI_Finalize();
        return 1;
    }
    if (rank == 0)
        printf("ssm_mpi_demo: %d ranks, batch %lld, dim %lld, dstate %lld, len %lld "
               "(%lld per rank): %.3f s, %.1f Mtoken-channels/s\n",
               R, (long long)B, (long long)D, (long long)N, (long long)L,
               (long long)(L / R), dtmax, (double)(B * D * L) / dtmax * 1e-6);

    int rc = 0;
    if (check) {
        /* Gather the blocks on rank 0, row by row ([B*D] rows of L). */
        int *cnts = NULL, *displs = NULL;
        float *yall = NULL;
        if (rank == 0) {
            cnts = malloc((size_t)R * sizeof *cnts);
            displs = malloc((size_t)R * sizeof *displs);
            yall = malloc(nrow * (size_t)L * sizeof *yall);
            for (int r = 0; r < R; r++) {
                cnts[r] = (int)(L / R + (r < L % R));
                displs[r] = (int)(r * (L / R) + (r < L % R ? r : L % R));
            }
        }
        for (size_t i = 0; i < nrow; i++)
            MPI_Gatherv(y + i * (size_t)my, (int)my, MPI_FLOAT,
                        yall ? yall + i * (size_t)L : NULL, cnts, displs, MPI_FLOAT, 0,
                        MPI_COMM_WORLD);
        /* The final state from the last rank. */
        float *hfin = malloc((size_t)(B * D * N) * sizeof *hfin);
        if (R > 1) {
            if (rank == R - 1)
                MPI_Send(hl, (int)(B * D * N), MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
            if (rank == 0)
                MPI_Recv(hfin, (int)(B * D * N), MPI_FLOAT, R - 1, 7, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
        } else {
            memcpy(hfin, hl, (size_t)(B * D * N) * sizeof *hfin);
        }
        if (rank == 0) {
            /* One process, the whole sequence, regenerated from the same
             * definition. */
            const size_t n1 = nrow * (size_t)L, n2 = (size_t)(B * N) * (size_t)L;
            float *U = malloc(n1 * sizeof *U), *De = malloc(n1 * sizeof *De),
                  *Z = malloc(n1 * sizeof *Z), *Y = malloc(n1 * sizeof *Y),
                  *BB = malloc(n2 * sizeof *BB), *CC = malloc(n2 * sizeof *CC),
                  *H = malloc((size_t)(B * D * N) * sizeof *H);
            for (size_t i = 0; i < nrow; i++)
                for (int64_t t = 0; t < L; t++) {
                    U[i * (size_t)L + (size_t)t] = synth(seed, 1, i, (uint64_t)t);
                    De[i * (size_t)L + (size_t)t] = synth(seed, 2, i, (uint64_t)t);
                    Z[i * (size_t)L + (size_t)t] = synth(seed, 3, i, (uint64_t)t);
                }
            for (size_t i = 0; i < (size_t)(B * N); i++)
                for (int64_t t = 0; t < L; t++) {
                    BB[i * (size_t)L + (size_t)t] = synth(seed, 4, i, (uint64_t)t);
                    CC[i * (size_t)L + (size_t)t] = synth(seed, 5, i, (uint64_t)t);
                }
            ssm_scan_args w = a;
            w.len = L; w.u = U; w.delta = De; w.z = Z; w.B = BB; w.C = CC; w.y = Y;
            w.h_last = H;
            double t1 = MPI_Wtime();
            ssm_status s1 = ssm_selective_scan(&w);
            double t1e = MPI_Wtime() - t1;
            double num = 0, den = 0, hn = 0, hd = 0;
            for (size_t i = 0; i < n1; i++) {
                num += ((double)yall[i] - Y[i]) * ((double)yall[i] - Y[i]);
                den += (double)Y[i] * Y[i];
            }
            for (int64_t i = 0; i < B * D * N; i++) {
                hn += ((double)hfin[i] - H[i]) * ((double)hfin[i] - H[i]);
                hd += (double)H[i] * H[i];
            }
            const double ey = sqrt(num / (den > 0 ? den : 1)), eh = sqrt(hn / (hd > 0 ? hd : 1));
            printf("check against one process (%.3f s): normwise error y %.2e, final state "
                   "%.2e (bound 1e-6: ratios %.3f, %.3f)\n",
                   t1e, ey, eh, ey / 1e-6, eh / 1e-6);
            if (s1 != SSM_OK || !(ey <= 1e-6) || !(eh <= 1e-6)) {
                printf("CHECK FAILED\n");
                rc = 1;
            } else {
                printf("check passed\n");
            }
            free(U); free(De); free(Z); free(Y); free(BB); free(CC); free(H);
        }
        free(hfin); free(yall); free(cnts); free(displs);
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    free(u); free(delta); free(z); free(y); free(Bm); free(C); free(A); free(Dv);
    free(bias); free(hl);
    MPI_Finalize();
    return rc;
}
