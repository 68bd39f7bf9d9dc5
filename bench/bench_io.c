/*
 * bench_io.c -- ssm_bench io: what opening and reading a checkpoint costs
 * against reading the file once, at the tensor shapes of mamba-130m
 * (24 layers, d_model 768, vocab 50280; ~129 M parameters), for F32 (read
 * is one memcpy from the mapping) and BF16/F16 (converted while read).
 *
 *   baseline  read(2) of the whole file into one buffer
 *   load      ssm_tensor_file_open + ssm_tensor_file_read_f32 of every
 *             tensor into buffers allocated beforehand
 *   map       ssm_tensor_file_open + one byte per 4 KiB page of every
 *             tensor through ssm_tensor_file_data (zero-copy use)
 * warm: the file in the page cache; cold: its pages dropped with
 * posix_fadvise(DONTNEED) before each repeat.  Medians of repeats.
 * SSM_BENCH_IO_LAYERS=n uses n layers instead of 24 (smaller files).
 */
#include <fcntl.h>
#include <unistd.h>
#include <ssm.h>
#include "bench_util.h"

typedef struct io_ctx {
    const char *path;
    int64_t     n;
    float     **bufs;
    int64_t    *numel;
    char       *raw;
    size_t      raw_len;
    int         cold;
    unsigned    sink;
} io_ctx;

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

static void run_read(void *p)
{
    io_ctx *c = p;
    if (c->cold)
        drop_cache(c->path);
    int fd = open(c->path, O_RDONLY);
    size_t got = 0;
    while (fd >= 0 && got < c->raw_len) {
        ssize_t k = read(fd, c->raw + got, c->raw_len - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (fd >= 0)
        close(fd);
    c->sink += (unsigned char)c->raw[got / 2];
}

static void run_load(void *p)
{
    io_ctx *c = p;
    if (c->cold)
        drop_cache(c->path);
    ssm_tensor_file *f;
    if (ssm_tensor_file_open(&f, c->path) != SSM_OK)
        return;
    for (int64_t i = 0; i < c->n; i++) {
        ssm_tensor_info info;
        ssm_tensor_file_at(f, i, &info);
        ssm_tensor_file_read_f32(f, info.name, c->bufs[i], info.numel);
    }
    ssm_tensor_file_close(f);
}

static void run_map(void *p)
{
    io_ctx *c = p;
    if (c->cold)
        drop_cache(c->path);
    ssm_tensor_file *f;
    if (ssm_tensor_file_open(&f, c->path) != SSM_OK)
        return;
    for (int64_t i = 0; i < c->n; i++) {
        ssm_tensor_info info;
        const void *d;
        ssm_tensor_file_at(f, i, &info);
        ssm_tensor_file_data(f, info.name, &d, &info);
        size_t bytes = (size_t)info.numel * ssm_dtype_size(info.dtype);
        for (size_t k = 0; k < bytes; k += 4096)
            c->sink += ((const unsigned char *)d)[k];
    }
    ssm_tensor_file_close(f);
}

int bench_io(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *e = getenv("SSM_BENCH_IO_LAYERS");
    int layers = e && atoi(e) > 0 ? atoi(e) : 24;
    const int64_t D = 768, E = 1536, N = 16, R = 48, V = 50280, K = 4;
    int64_t n = 2 + 9 * (int64_t)layers;
    ssm_tensor_desc *t = calloc((size_t)n, sizeof *t);
    int64_t (*shapes)[3] = calloc((size_t)n, sizeof *shapes);
    char (*names)[64] = calloc((size_t)n, sizeof *names);
    int64_t *numel = calloc((size_t)n, sizeof *numel);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    if (!t || !shapes || !names || !numel || !bufs)
        return 1;
    int64_t k = 0, total = 0;
#define ADD(nm, d0, d1, d2, nd) do { \
        snprintf(names[k], 64, "%s", nm); shapes[k][0] = d0; shapes[k][1] = d1; \
        shapes[k][2] = d2; t[k].name = names[k]; t[k].ndim = nd; t[k].shape = shapes[k]; \
        numel[k] = (d0) * (nd > 1 ? (d1) : 1) * (nd > 2 ? (d2) : 1); total += numel[k]; k++; } while (0)
    ADD("backbone.embedding.weight", V, D, 1, 2);
    for (int l = 0; l < layers; l++) {
        char b[64];
#define LN(s) (snprintf(b, sizeof b, "backbone.layers.%d.%s", l, s), b)
        ADD(LN("mixer.in_proj.weight"), 2 * E, D, 1, 2);
        ADD(LN("mixer.conv1d.weight"), E, 1, K, 3);
        ADD(LN("mixer.conv1d.bias"), E, 1, 1, 1);
        ADD(LN("mixer.x_proj.weight"), R + 2 * N, E, 1, 2);
        ADD(LN("mixer.dt_proj.weight"), E, R, 1, 2);
        ADD(LN("mixer.A_log"), E, N, 1, 2);
        ADD(LN("mixer.D"), E, 1, 1, 1);
        ADD(LN("mixer.out_proj.weight"), D, E, 1, 2);
        ADD(LN("norm.weight"), D, 1, 1, 1);
#undef LN
    }
    ADD("backbone.norm_f.weight", D, 1, 1, 1);
#undef ADD
    /* one buffer of random-ish bits reused as every tensor's data */
    int64_t maxn = 0;
    for (int64_t i = 0; i < n; i++)
        maxn = numel[i] > maxn ? numel[i] : maxn;
    float *src = malloc((size_t)maxn * sizeof *src);
    for (int64_t i = 0; i < n; i++)
        bufs[i] = malloc((size_t)numel[i] * sizeof(float));
    if (!src)
        return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < maxn; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        src[i] = (float)((double)(s >> 11) * 0x1p-53 - 0.5);
    }
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/ssm_bench_io_%d.safetensors", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    printf("\n== io: mamba-130m tensor shapes, %d layers, %lld tensors, %.1f M parameters ==\n",
           layers, (long long)n, total / 1e6);
    const ssm_dtype dts[2] = {SSM_DTYPE_F32, SSM_DTYPE_BF16};
    const char *dtn[2] = {"F32", "BF16"};
    int reps = bu_repeats(3);
    for (int di = 0; di < 2; di++) {
        for (int64_t i = 0; i < n; i++) {
            t[i].dtype = dts[di];
            t[i].data = src;
        }
        if (ssm_safetensors_write(path, n, t, 0, NULL, NULL) != SSM_OK) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        io_ctx c = {path, n, bufs, numel, NULL, 0, 0, 0};
        c.raw_len = (size_t)total * ssm_dtype_size(dts[di]) + 65536;
        c.raw = malloc(c.raw_len);
        for (int cold = 0; cold < 2; cold++) {
            c.cold = cold;
            double tr = bu_time(run_read, &c, reps);
            double tl = bu_time(run_load, &c, reps);
            double tm = bu_time(run_map, &c, reps);
            double mb = (double)total * (double)ssm_dtype_size(dts[di]) / 1e6;
            printf("%-4s %s  file %7.1f MB  read %7.1f ms (%6.0f MB/s)  load %7.1f ms (x%.2f)  "
                   "map+touch %7.1f ms (x%.2f)\n", dtn[di], cold ? "cold" : "warm", mb,
                   1e3 * tr, mb / tr, 1e3 * tl, tl / tr, 1e3 * tm, tm / tr);
        }
        free(c.raw);
    }
    unlink(path);
    for (int64_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs); free(src); free(t); free(shapes); free(names); free(numel);
    return 0;
}
