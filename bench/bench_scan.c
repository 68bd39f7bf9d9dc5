/* bench_scan.c -- placeholder until the scan benchmark lands. */
#include "bench_util.h"

int bench_scan(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("scan: no benchmark yet\n");
    return 0;
}
