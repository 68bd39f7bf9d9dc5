/* ctest-labels: train;mamba2 */
/*
 * wbtest_ssd_bwd_generic.c -- the whole of test_ssd_bwd.c (finite
 * differences of a double forward, NULL outputs, thread bytes, bad
 * arguments) run on the portable C item body of ssm_ssd_scan_backward.
 * The public call dispatches to the AVX2 + FMA body on every CPU that has
 * it, so without this test the portable body would never run on such a
 * machine.
 */
#include <ssm.h>
#include "scan/ssd_internal.h"

static ssm_status wb_ssd_bwd_generic(const ssm_ssd_args *a, const float *dy,
                                     const float *dh_last,
                                     const ssm_ssd_grads *g)
{
    return ssmi_ssd_scan_backward_isa(a, dy, dh_last, g, SSM_SCAN_ISA_GENERIC);
}

/* Every call of the black-box test goes to the portable body. */
#define ssm_ssd_scan_backward wb_ssd_bwd_generic
#include "test_ssd_bwd.c"
