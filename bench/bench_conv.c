/* bench_conv.c -- placeholder until the conv benchmark lands. */
#include "bench_util.h"

int bench_conv(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("conv: no benchmark yet\n");
    return 0;
}
