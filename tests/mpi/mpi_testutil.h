/*
 * mpi_testutil.h -- helpers of the libssm_mpi tests (run under mpirun).
 *
 * Every rank builds the same global problem from a fixed seed, computes the
 * single-process references on the whole concatenated sequence, runs the
 * MPI function on its own block and compares its block.  Assertions are
 * collective: failures are counted locally and summed with MPI_Allreduce
 * at the end of a test, so no rank leaves a test early (that would strand
 * the others in a collective).  Check runs without fork (CK_FORK=no).
 */
#ifndef SSM_MPI_TESTUTIL_H
#define SSM_MPI_TESTUTIL_H

#include <ssm_mpi.h>
#include "testutil.h"

static int mt_fail;
static char mt_msg[512];
static double mt_ratio;      /* largest error/bound ratio of the test */

static inline int mt_rank(void) { int r; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int mt_size(void) { int r; MPI_Comm_size(MPI_COMM_WORLD, &r); return r; }

#define MT_EXPECT(cond, ...) do { if (!(cond)) { \
        if (!mt_fail) \
            snprintf(mt_msg, sizeof mt_msg, __VA_ARGS__); \
        mt_fail++; \
    } } while (0)

/* err <= tol, recording the ratio. */
#define MT_ERR(err, tol, ...) do { double mt_e_ = (err), mt_t_ = (tol); \
    if (mt_e_ / mt_t_ > mt_ratio || mt_e_ != mt_e_) mt_ratio = mt_e_ / mt_t_; \
    if (!(mt_e_ <= mt_t_)) { char mt_b_[256]; snprintf(mt_b_, sizeof mt_b_, __VA_ARGS__); \
        MT_EXPECT(0, "%s: error %.3e > bound %.3e", mt_b_, mt_e_, mt_t_); } } while (0)

/* End of a test: sum failures over the ranks, print the largest ratio. */
static inline void mt_finish(const char *name)
{
    int f = mt_fail, tot = 0;
    double r = mt_ratio, rmax = 0;
    MPI_Allreduce(&f, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&r, &rmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (mt_rank() == 0)
        printf("%s (%d ranks): largest error/bound ratio %.3g, %d failures\n",
               name, mt_size(), rmax, tot);
    mt_fail = 0;
    mt_ratio = 0;
    char m[600];
    snprintf(m, sizeof m, "%s", mt_msg);
    mt_msg[0] = '\0';
    ck_assert_msg(tot == 0, "%s: %d failure(s) over the ranks (rank %d: %s)",
                  name, tot, mt_rank(), f ? m : "none");
}

/* Block lengths of the R ranks for a split pattern; returns the total.
 *   0: even (remainder to the first ranks) of `base` tokens per rank
 *   1: uneven, 1..9 tokens
 *   2: every block of length 1
 *   3: uneven with one empty block (R >= 2) */
static inline int64_t mt_split(int pattern, int R, int64_t base, int64_t *len)
{
    int64_t tot = 0;
    for (int r = 0; r < R; r++) {
        switch (pattern) {
        case 0: len[r] = base; break;
        case 1: len[r] = 1 + (r * 5 + 2) % 9; break;
        case 2: len[r] = 1; break;
        default: len[r] = (R >= 2 && r == R / 2) ? 0 : 1 + (r * 7 + 3) % 8; break;
        }
        tot += len[r];
    }
    return tot;
}

/* Where rank's block starts: the lengths of the ranks before it. */
static inline int64_t mt_offset(const int64_t *len, int rank)
{
    int64_t o = 0;
    for (int r = 0; r < rank; r++)
        o += len[r];
    return o;
}

/* x [B][Ltot][Dm] -> this rank's [B][len][Dm] (tokens off .. off+len). */
static inline void mt_tok_slice(const float *x, int64_t B, int64_t Ltot, int64_t dm,
                                int64_t off, int64_t len, float *dst)
{
    for (int64_t b = 0; b < B; b++)
        memcpy(dst + b * len * dm, x + (b * Ltot + off) * dm,
               (size_t)(len * dm) * sizeof(float));
}

/* dst[row][0..len) = src[row][off..off+len) for rows of Ltot. */
static inline void mt_slice(const float *src, int64_t rows, int64_t Ltot, int64_t off,
                     int64_t len, float *dst)
{
    for (int64_t i = 0; i < rows; i++)
        memcpy(dst + i * len, src + i * Ltot + off, (size_t)len * sizeof(float));
}

/* Run suite s on every rank without fork (ranks must stay in step through
 * the collectives), print on rank 0 only, finalize MPI; the exit status. */
static inline int mt_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, mt_rank() == 0 ? CK_NORMAL : CK_SILENT);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    MPI_Finalize();
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* SSM_MPI_TESTUTIL_H */
