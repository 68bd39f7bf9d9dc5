/* ctest-labels: mpi */
/*
 * test_mpi_allreduce.c -- ssm_mpi_allreduce_sum: exact sums where the
 * exact sum is representable (closed form), one rounding of the rank-order
 * sum otherwise (bound: half an ulp of the float result plus R eps_d times
 * the sum of magnitudes, against a long double sum), the same bytes on
 * every rank and every run, and agreed errors.
 */
#include "mpi_testutil.h"

/* the value rank r contributes at index i */
static float val_exact(int r, int64_t i) { return (float)((int64_t)((i * 7 + r * 13) % 61) - 30) * 0x1p-10f; }
static float val_rand(int r, int64_t i)
{
    tu_rng g = { (uint64_t)(i * 1000003 + r * 17 + 1) };
    return (float)(tu_normal(&g) * pow(10.0, (double)((i + r) % 7) - 3.0));
}

/* identical bytes on every rank: compare with rank 0's copy */
static int same_everywhere(const float *y, int64_t n)
{
    float *y0 = tu_alloc((size_t)(n ? n : 1), sizeof(float));
    if (n)
        memcpy(y0, y, (size_t)n * sizeof(float));
    MPI_Bcast(y0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    int same = n == 0 || memcmp(y0, y, (size_t)n * sizeof(float)) == 0;
    free(y0);
    return same;
}

START_TEST(test_allreduce_values)
{
    const int R = mt_size(), rank = mt_rank();
    const int64_t sizes[] = { 1, 2, 3, 5, 1000, 4099 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int64_t n = sizes[k];
        float *y = tu_alloc((size_t)n, sizeof(float)), *y2 = tu_alloc((size_t)n, sizeof(float));
        /* exact: integers times 2^-10, small: every partial sum exact */
        for (int64_t i = 0; i < n; i++)
            y[i] = val_exact(rank, i);
        MT_EXPECT(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, y, n) == SSM_OK, "status");
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < R; r++)
                s += val_exact(r, i);
            MT_EXPECT(y[i] == (float)s, "exact sum at %lld: %g vs %g", (long long)i, y[i], s);
        }
        /* random magnitudes over 7 decades */
        for (int64_t i = 0; i < n; i++)
            y[i] = y2[i] = val_rand(rank, i);
        MT_EXPECT(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, y, n) == SSM_OK, "status");
        MT_EXPECT(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, y2, n) == SSM_OK, "status");
        for (int64_t i = 0; i < n; i++) {
            long double s = 0, a = 0;
            for (int r = 0; r < R; r++) {
                s += val_rand(r, i);
                a += fabsl((long double)val_rand(r, i));
            }
            const double bound = 0.5 * FLT_EPSILON * fabs((double)s) + R * 0x1p-53 * (double)a + 0x1p-149;
            MT_ERR(fabs((double)((long double)y[i] - s)), bound, "sum at %lld", (long long)i);
        }
        MT_EXPECT(memcmp(y, y2, (size_t)n * sizeof(float)) == 0, "run to run");
        MT_EXPECT(same_everywhere(y, n), "same bytes on every rank, n %lld", (long long)n);
        free(y); free(y2);
    }
    MT_EXPECT(ssm_mpi_allreduce_sum(MPI_COMM_WORLD, NULL, 0) == SSM_OK, "n = 0");
    mt_finish("allreduce sums");
}
END_TEST

START_TEST(test_allreduce_errors)
{
    const int R = mt_size(), rank = mt_rank(), last = R - 1;
    float y[8] = { 0 };
    for (int c = 0; c < 3; c++) {
        int64_t n = 8;
        float *p = y;
        int expect = R > 1 || c >= 1;
        if (rank == last) {
            if (c == 0) n = 7;          /* disagree on n */
            else if (c == 1) n = -1;
            else p = NULL;
        }
        ssm_status s = ssm_mpi_allreduce_sum(MPI_COMM_WORLD, p, n);
        MT_EXPECT(s == (expect ? SSM_ERR_ARG : SSM_OK), "case %d: %s", c, ssm_status_string(s));
    }
    mt_finish("allreduce errors agreed on every rank");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_allreduce");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_allreduce_values);
    tcase_add_test(tc, test_allreduce_errors);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
