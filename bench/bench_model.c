/*
 * bench_model.c -- `ssm_bench model [n_layer]`: the language model of
 * src/models at the mamba-130m shape (d_model 768, 24 layers, d_state 16,
 * d_conv 4, expand 2, dt_rank 48, vocab 50277 padded to 50280, tied
 * embedding) with random weights written as one F32 safetensors file in a
 * temporary directory (about 0.5 GB; an optional n_layer argument makes a
 * smaller model for a quick run).
 *
 *   load:    ssm_model_load vs reading the file once (read() into a
 *            buffer), both with a warm page cache and, where
 *            posix_fadvise(POSIX_FADV_DONTNEED) can drop the file's pages,
 *            a cold one.  F32 weights stay in the mapping; the load checks
 *            every weight for finiteness, which reads each page once.
 *   prefill: batch 1, L = 2048 tokens, one ssm_model_forward (tokens/s)
 *   decode:  batch 1 and 8, one token per sequence per call (tokens/s)
 * Medians: load 3 runs, prefill 2 (0.5 TFLOP each), decode 32 steps after
 * 4 warm-up steps.  Threads: OpenMP's default (OMP_NUM_THREADS).
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "bench_util.h"

static int bu_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Drop the file's pages from the page cache; 1 if the kernel took it. */
static int drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    int ok = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
    close(fd);
    return ok;
}

static double read_once(const char *path, size_t size, char *buf)
{
    double t0 = bu_now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t got = 0;
    ssize_t r;
    while (got < size && (r = read(fd, buf + got, size - got)) > 0) got += (size_t)r;
    close(fd);
    return got == size ? bu_now() - t0 : -1;
}

static double time_load(const char *dir, ssm_model **keep)
{
    double t0 = bu_now();
    ssm_model *m;
    if (ssm_model_load(&m, dir) != SSM_OK) return -1;
    double t = bu_now() - t0;
    if (keep) *keep = m; else ssm_model_destroy(m);
    return t;
}

int bench_model(int argc, char **argv)
{
    int nl = argc > 1 ? atoi(argv[1]) : 24;
    if (nl < 1 || nl > 64) { fprintf(stderr, "ssm_bench model [n_layer 1..64]\n"); return 2; }
    char dir[] = "/tmp/ssm_bench_model_XXXXXX", file[64];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    printf("\n== model: mamba-130m shape (d_model %d, %d layers, vocab %d), random F32 weights, %d threads ==\n",
           BU_DM, nl, BU_VOC, bu_threads());
    double tw = bu_now();
    int rc = 1;
    ssm_model *m = NULL;
    ssm_model_state *s1 = NULL, *s8 = NULL;
    int32_t *tok = NULL;
    char *buf = NULL;
    float *lg = NULL;
    const bu_lm_ranges rg = { 0.5, -6.9, -2.3, 0.9, 1.1, 0 };
    if (bu_write_mamba130m(dir, nl, SSM_DTYPE_F32, 0x1234, &rg)) { fprintf(stderr, "bench model: cannot write %s\n", dir); goto out; }
    struct stat sb;
    stat(file, &sb);
    size_t size = (size_t)sb.st_size;
    printf("wrote %.1f MB in %.2f s\n", (double)size / 1e6, bu_now() - tw);
    printf("load average %.2f (other processes share the cores: figures scale with it)\n",
           bu_loadavg());
    buf = malloc(size);
    if (!buf) goto out;

    /* load vs one read of the file, warm and cold page cache */
    double r_warm[3], l_warm[3], r_cold[3], l_cold[3];
    int cold = 1;
    for (int i = 0; i < 3; i++) {
        cold &= drop_cache(file);
        r_cold[i] = read_once(file, size, buf);
        cold &= drop_cache(file);
        l_cold[i] = time_load(dir, NULL);
        r_warm[i] = read_once(file, size, buf);
        l_warm[i] = time_load(dir, NULL);
    }
    double rw = bu_median(r_warm, 3), lw = bu_median(l_warm, 3);
    printf("load, warm cache: %.3f s; read() of the file: %.3f s (%.2f GB/s); ratio %.2f\n",
           lw, rw, (double)size / rw / 1e9, lw / rw);
    if (cold) {
        double rc_ = bu_median(r_cold, 3), lc = bu_median(l_cold, 3);
        printf("load, cold cache: %.3f s; read() of the file: %.3f s (%.2f GB/s); ratio %.2f\n",
               lc, rc_, (double)size / rc_ / 1e9, lc / rc_);
    } else {
        printf("load, cold cache: not measured (posix_fadvise could not drop the pages)\n");
    }
    if (time_load(dir, &m) < 0) goto out;
    ssm_model_info info;
    ssm_model_info_init(&info);
    ssm_model_get_info(m, &info);
    printf("weights: %.1f MB used in place from the mapping, %.1f MB owned\n",
           (double)info.bytes_mapped / 1e6, (double)info.bytes_owned / 1e6);

    /* prefill: B = 1, L = 2048 */
    enum { L = 2048, STEPS = 32, WARM = 4 };
    tok = malloc(L * sizeof *tok);
    lg = malloc((size_t)8 * BU_VOC * sizeof *lg);
    if (!tok || !lg) goto out;
    for (int i = 0; i < L; i++) tok[i] = (int32_t)((i * 7919u) % BU_VOC);
    if (ssm_model_state_create(&s1, m, 1) != SSM_OK ||
        ssm_model_state_create(&s8, m, 8) != SSM_OK) goto out;
    double tp[2];
    for (int i = 0; i < 2; i++) {
        ssm_model_state_reset(s1);
        double t0 = bu_now();
        if (ssm_model_forward(m, s1, 1, L, tok, lg) != SSM_OK) goto out;
        tp[i] = bu_now() - t0;
    }
    double tpm = bu_median(tp, 2);
    printf("prefill B=1 L=%d: %.2f s, %.1f tokens/s\n", L, tpm, L / tpm);

    /* decode: B = 1 and 8 */
    for (int bi = 0; bi < 2; bi++) {
        int B = bi ? 8 : 1;
        ssm_model_state *s = bi ? s8 : s1;
        double t[STEPS];
        for (int i = 0; i < WARM + STEPS; i++) {
            double t0 = bu_now();
            if (ssm_model_forward(m, s, B, 1, tok + i, lg) != SSM_OK) goto out;
            if (i >= WARM) t[i - WARM] = bu_now() - t0;
        }
        double tm = bu_median(t, STEPS);
        printf("decode B=%d: %.2f ms per step, %.1f tokens/s\n", B, 1e3 * tm, B / tm);
    }
    rc = 0;
out:
    ssm_model_state_destroy(s1);
    ssm_model_state_destroy(s8);
    ssm_model_destroy(m);
    free(tok); free(lg); free(buf);
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p);
    remove(file);
    rmdir(dir);
    return rc;
}
