/*
 * mpi_allreduce.c -- a sum over the ranks whose order is ours, not the MPI
 * library's: for data-parallel training, N ranks must produce the same
 * gradient sum on every rank and every run, whatever MPI_Allreduce's
 * algorithm (which may change the association with the message size or the
 * library version).
 *
 * Reduce-scatter by segments (MPI_Alltoallv: rank r receives segment r of
 * every rank's vector), a sum in rank order in double on each segment's
 * owner, rounded once to float, then MPI_Allgatherv of the segments:
 * 2 n (R-1)/R floats per rank each way, as a bandwidth-optimal allreduce.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

/* Segment r of m elements over R ranks: the first m % R segments one longer. */
static int64_t seg_len(int64_t m, int R, int r)
{
    return m / R + (r < m % R ? 1 : 0);
}
static int64_t seg_off(int64_t m, int R, int r)
{
    return r * (m / R) + (r < m % R ? r : m % R);
}

ssm_status ssm_mpi_allreduce_sum(MPI_Comm comm, float *buf, int64_t n)
{
    ssmi_mpi_ctx c;
    ssm_status st = ssmi_mpi_enter(&c, comm);
    if (st != SSM_OK)
        return st;
    const int R = c.size;
    /* Pieces of at most `piece` elements keep every count an int. */
    const int64_t piece = (int64_t)1 << 26;
    const int ok = n >= 0 && (n == 0 || buf) && n <= INT64_MAX / 8;
    const int64_t pm = ok ? (n < piece ? n : piece) : 0;
    const int64_t seg_max = pm / R + 1;
    float *recv = NULL;
    int *scnt = NULL, *sdis = NULL, *rcnt = NULL, *rdis = NULL;
    if (ok && n > 0) {
        recv = ssmi_mpi_alloc((size_t)(seg_max * R), sizeof(float));
        scnt = ssmi_mpi_alloc((size_t)R * 4, sizeof(int));
        if (scnt) {
            sdis = scnt + R; rcnt = scnt + 2 * R; rdis = scnt + 3 * R;
        }
    }
    const int nomem = ok && n > 0 && (!recv || !scnt);
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    ssmi_agree_add(&g, ok ? n : -1);
    st = ssmi_agree_run(&c, &g);
    const int agreed = st == SSM_OK;
    for (int64_t o = 0; agreed && st == SSM_OK && o < n; o += piece) {
        const int64_t m = n - o < piece ? n - o : piece;
        const int64_t mine = seg_len(m, R, c.rank), moff = seg_off(m, R, c.rank);
        for (int r = 0; r < R; r++) {
            scnt[r] = (int)seg_len(m, R, r);
            sdis[r] = (int)seg_off(m, R, r);
            rcnt[r] = (int)mine;
            rdis[r] = (int)(r * mine);
        }
        if (MPI_Alltoallv(buf + o, scnt, sdis, MPI_FLOAT, recv, rcnt, rdis, MPI_FLOAT,
                          c.comm) != MPI_SUCCESS) {
            st = SSMI_MPI_FAIL(SSM_ERR_MPI);
            break;
        }
        /* rank order, double accumulation, one rounding */
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < mine; i++) {
            double s = 0.0;
            for (int r = 0; r < R; r++)
                s += (double)recv[r * mine + i];
            buf[o + moff + i] = (float)s;
        }
        for (int r = 0; r < R; r++)
            rcnt[r] = scnt[r];
        if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf + o, rcnt, sdis, MPI_FLOAT,
                           c.comm) != MPI_SUCCESS) {
            st = SSMI_MPI_FAIL(SSM_ERR_MPI);
            break;
        }
    }
    if (agreed)
        st = ssmi_mpi_status_agree(&c, st);
    free(recv);
    free(scnt);
    ssmi_mpi_leave(&c);
    return st;
}
