/* A downstream program: builds against the installed libssm and uses it.
 * Compiled as C11 and as C++11, with -Wall -Wextra -Wpedantic -Werror.
 * It names its own variables I and complex after including <ssm.h>: had the
 * header pulled in <complex.h>, I would be the macro _Complex_I and these
 * lines would not compile (the C99 complex types need no header). */
#include <ssm.h>
#include <stdio.h>
#include <string.h>

static const int I = 3;
static const int complex = 4;

int main(void)
{
    double A[16], B[4];
    if (strcmp(ssm_version(), "") == 0)
        return 1;
    if (ssm_hippo(SSM_LEGS, I + 1, A, B) != SSM_OK)
        return 2;
    /* LegS: A[1][0] = -sqrt(3) sqrt(1), A[3][3] = -4 */
    if (A[3 * complex + 3] != -4.0 || A[0] != -1.0)
        return 3;
    printf("downstream ok: libssm %s, %s\n", ssm_version(),
           ssm_status_string(SSM_ERR_ARG));
    return 0;
}
