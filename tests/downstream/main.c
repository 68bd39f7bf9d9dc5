/* A downstream program: builds against the installed libssm and uses it. */
#include <ssm.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    double A[16], B[4];
    if (strcmp(ssm_version(), "") == 0)
        return 1;
    if (ssm_hippo(SSM_LEGS, 4, A, B) != SSM_OK)
        return 2;
    /* LegS: A[1][0] = -sqrt(3) sqrt(1), A[3][3] = -4 */
    if (A[3 * 4 + 3] != -4.0 || A[0] != -1.0)
        return 3;
    printf("downstream ok: libssm %s, %s\n", ssm_version(),
           ssm_status_string(SSM_ERR_ARG));
    return 0;
}
