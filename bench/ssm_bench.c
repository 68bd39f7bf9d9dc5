/*
 * ssm_bench -- libssm's benchmark program (never run by CTest).
 *   ssm_bench conv    S4/S4D kernels, FFT convolution vs the bare FFTW floor
 *   ssm_bench scan    selective scan vs a plain scalar loop
 *   ssm_bench mamba   Mamba stack shaped like mamba-130m
 *   ssm_bench io      checkpoint open + read vs one read of the file
 *   ssm_bench model   language model at the mamba-130m shape from a file (load, prefill, decode)
 *   ssm_bench tokenizer [TOKENIZER.json [TEXT]]  byte-level BPE encode/decode MB/s
 *   ssm_bench ssd     Mamba-2 SSD scan vs FMA peak, step vs bandwidth, Mamba-2 stack
 *                     (ssm_bench ssd [scan|step|stack])
 *   ssm_bench train   backward passes vs their forwards
 *   ssm_bench train-lm  LM head + cross-entropy, SSD scan backward vs forward
 *   ssm_bench prefill [n_layers]  Mamba-1 stack prompt vs its sgemm calls alone
 *   ssm_bench decode [n_layer [stack|kernels|bf16|mamba2]]  decoding steps vs the weight-read floor, bf16 weights
 *   ssm_bench bf16 [L]  BF16-weight prompt products: widened tiles + sgemm vs oneDNN bf16 matmul
 *   ssm_bench all     everything
 * Every figure is a median of repeats; ratios are measured in one process.
 */
#include <ssm.h>
#include "bench_util.h"

int bench_prefill(int argc, char **argv);   /* bench_prefill.c */
int bench_bf16(int argc, char **argv);      /* bench_bf16.c */

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "all";
    printf("libssm %s benchmark, %d processors\n", ssm_version(), bu_max_threads());
    if (!strcmp(cmd, "conv")) return bench_conv(argc - 1, argv + 1);
    if (!strcmp(cmd, "scan")) return bench_scan(argc - 1, argv + 1);
    if (!strcmp(cmd, "mamba")) return bench_mamba(argc - 1, argv + 1);
    if (!strcmp(cmd, "io")) return bench_io(argc - 1, argv + 1);
    if (!strcmp(cmd, "model")) return bench_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenizer")) return bench_tokenizer(argc - 1, argv + 1);
    if (!strcmp(cmd, "ssd")) return bench_ssd(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return bench_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "train-lm")) return bench_train_lm(argc - 1, argv + 1);
    if (!strcmp(cmd, "prefill")) return bench_prefill(argc - 1, argv + 1);
    if (!strcmp(cmd, "decode")) return bench_decode(argc - 1, argv + 1);
    if (!strcmp(cmd, "bf16")) return bench_bf16(argc - 1, argv + 1);
    if (!strcmp(cmd, "all")) {
        int rc = bench_conv(argc - 1, argv + 1);
        rc |= bench_scan(argc - 1, argv + 1);
        rc |= bench_mamba(argc - 1, argv + 1);
        rc |= bench_ssd(argc - 1, argv + 1);
        return rc;
    }
    fprintf(stderr, "usage: ssm_bench COMMAND [ARGS]: commands at the top of bench/ssm_bench.c\n");
    return 2;
}
