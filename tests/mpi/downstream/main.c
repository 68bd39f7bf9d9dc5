/* A downstream MPI program built against the installed libssm_mpi: one
 * scan over the ranks of MPI_COMM_WORLD, checked against one process. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <ssm_mpi.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    enum { D = 2, N = 3, LR = 5 };
    float u[D * LR * 8], dl[D * LR * 8], A[D * N], Bm[N * LR * 8], C[N * LR * 8], y[D * LR * 8];
    float uu[D * LR], dd[D * LR], bb[N * LR], cc[N * LR], yy[D * LR];
    const int L = LR * R;
    if (R > 8) { MPI_Finalize(); return 1; }
    for (int i = 0; i < D * N; i++) A[i] = -(float)(i % N + 1);
    for (int i = 0; i < D * L; i++) { u[i] = sinf((float)i); dl[i] = 0.05f + 0.01f * cosf((float)i); }
    for (int i = 0; i < N * L; i++) { Bm[i] = cosf(0.3f * (float)i); C[i] = sinf(0.7f * (float)i); }
    for (int d = 0; d < D; d++) {
        memcpy(uu + d * LR, u + d * L + rank * LR, LR * sizeof(float));
        memcpy(dd + d * LR, dl + d * L + rank * LR, LR * sizeof(float));
    }
    for (int n = 0; n < N; n++) {
        memcpy(bb + n * LR, Bm + n * L + rank * LR, LR * sizeof(float));
        memcpy(cc + n * LR, C + n * L + rank * LR, LR * sizeof(float));
    }
    ssm_scan_args a;
    memset(&a, 0, sizeof a);
    a.batch = 1; a.dim = D; a.dstate = N; a.len = LR; a.ngroups = 1;
    a.u = uu; a.delta = dd; a.A = A; a.B = bb; a.C = cc; a.y = yy;
    ssm_status s = ssm_mpi_selective_scan(MPI_COMM_WORLD, &a);
    a.len = L; a.u = u; a.delta = dl; a.B = Bm; a.C = C; a.y = y;
    ssm_status s1 = ssm_selective_scan(&a);
    double e = 0, n2 = 0;
    for (int d = 0; d < D; d++)
        for (int t = 0; t < LR; t++) {
            double r = y[d * L + rank * LR + t];
            e += (yy[d * LR + t] - r) * (yy[d * LR + t] - r);
            n2 += r * r;
        }
    int ok = s == SSM_OK && s1 == SSM_OK && sqrt(e / n2) <= 1e-6, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0)
        printf("downstream ssm_mpi_selective_scan on %d ranks: %s\n", R, all ? "ok" : "FAILED");
    MPI_Finalize();
    return all ? 0 : 1;
}
