/* bench_mamba.c -- placeholder until the mamba benchmark lands. */
#include "bench_util.h"

int bench_mamba(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("mamba: no benchmark yet\n");
    return 0;
}
