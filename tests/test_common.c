/*
 * test_common.c -- status strings, version, header macros.
 */
#include <ssm.h>
#include "testutil.h"

START_TEST(status_strings_cover_every_code)
{
    const ssm_status codes[] = { SSM_OK, SSM_ERR_ARG, SSM_ERR_NOMEM,
                                 SSM_ERR_LAPACK, SSM_ERR_FFTW, SSM_ERR_NUMERIC,
                                 SSM_ERR_IO, SSM_ERR_FORMAT, SSM_ERR_MPI };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = ssm_status_string(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_gt((int)strlen(s), 3);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, ssm_status_string(codes[j]));
    }
    /* Unknown codes still give a string, never NULL. */
    ck_assert_ptr_nonnull(ssm_status_string((ssm_status)42));
    ck_assert_ptr_nonnull(ssm_status_string((ssm_status)-1000));
    ck_assert_str_eq(ssm_status_string((ssm_status)42),
                     ssm_status_string((ssm_status)-1000));
}
END_TEST

START_TEST(status_values_are_pinned)
{
    /* API.md fixes the numeric values: bindings rely on them. */
    ck_assert_int_eq(SSM_OK, 0);
    ck_assert_int_eq(SSM_ERR_ARG, -1);
    ck_assert_int_eq(SSM_ERR_NOMEM, -2);
    ck_assert_int_eq(SSM_ERR_LAPACK, -3);
    ck_assert_int_eq(SSM_ERR_FFTW, -4);
    ck_assert_int_eq(SSM_ERR_NUMERIC, -5);
    ck_assert_int_eq(SSM_ERR_IO, -6);
    ck_assert_int_eq(SSM_ERR_FORMAT, -7);
    ck_assert_int_eq(SSM_ERR_MPI, -8);
}
END_TEST

START_TEST(version_matches_macros)
{
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", SSM_VERSION_MAJOR,
             SSM_VERSION_MINOR, SSM_VERSION_PATCH);
    ck_assert_str_eq(ssm_version(), want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_strings_cover_every_code);
    tcase_add_test(tc, status_values_are_pinned);
    tcase_add_test(tc, version_matches_macros);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
