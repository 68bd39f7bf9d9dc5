/* ctest-labels: scan;train */
/*
 * wbtest_scan_bwd_generic.c -- the whole of test_scan_bwd.c (finite
 * differences of a double forward for every option, channel-vector blocks,
 * the split path; NULL gradients; thread bytes; bad arguments) run with the
 * generic kernels of ssm_selective_scan_backward forced.  The public call
 * dispatches the best ISA of the CPU, so without this test the other
 * kernel sets (portable C, AVX2, AVX-512) would never run on such a
 * machine.  A CPU without the instruction set skips the test (exit 0 with
 * a message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <ssm.h>
#include "scan/selective_bwd_internal.h"

__attribute__((constructor)) static void wb_isa_check(void)
{
    if (!ssmi_scan_isa_ok(SSM_SCAN_ISA_GENERIC)) {
        printf("generic not supported by this CPU: skipped\n");
        exit(0);
    }
}

static ssm_status wb_bwd_isa(const ssm_scan_args *a, const float *dy,
                             const float *dh_last, const ssm_scan_grads *g)
{
    return ssmi_selective_scan_backward_ex(a, dy, dh_last, g, 0, SSM_SCAN_ISA_GENERIC);
}

/* Every call of the black-box test goes to the forced kernels. */
#define ssm_selective_scan_backward wb_bwd_isa
#include "test_scan_bwd.c"
