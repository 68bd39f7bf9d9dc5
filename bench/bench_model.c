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

static uint64_t bm_s = 0x1234;
static float bm_unif(double lo, double hi)
{
    uint64_t z = (bm_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53);
}

static float *bm_fill(int64_t n, double lo, double hi)
{
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) return NULL;
    for (int64_t i = 0; i < n; i++) x[i] = bm_unif(lo, hi);
    return x;
}

enum { DM = 768, DI = 1536, NS = 16, KC = 4, RK = 48, VOC = 50277, VOCP = 50280 };

/* Write config.json and model.safetensors of a random model; 0 on success. */
static int write_model(const char *dir, int nl)
{
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f, "{\"d_model\": %d, \"n_layer\": %d, \"vocab_size\": %d, \"ssm_cfg\": {},\n"
               " \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
               " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": true}\n", DM, nl, VOC);
    fclose(f);
    int nt = 2 + 10 * nl;
    ssm_tensor_desc *d = calloc((size_t)nt, sizeof *d);
    float **bufs = calloc((size_t)nt, sizeof *bufs);
    int64_t (*shapes)[3] = calloc((size_t)nt, sizeof *shapes);
    char (*names)[96] = calloc((size_t)nt, sizeof *names);
    if (!d || !bufs || !shapes || !names) return -1;
    int k = 0, bad = 0;
#define ADD(nm, nd, a, b, c, lo, hi) do {                                       \
        snprintf(names[k], sizeof names[k], "%s", nm);                         \
        shapes[k][0] = a; shapes[k][1] = b; shapes[k][2] = c;                  \
        bufs[k] = bm_fill((int64_t)(a) * (nd > 1 ? b : 1) * (nd > 2 ? c : 1), lo, hi); \
        if (!bufs[k]) bad = 1;                                                 \
        d[k] = (ssm_tensor_desc){ names[k], SSM_DTYPE_F32, nd, shapes[k], bufs[k] }; \
        k++; } while (0)
    ADD("backbone.embedding.weight", 2, VOCP, DM, 0, -0.1, 0.1);
    for (int l = 0; l < nl; l++) {
        char nm[96];
#define L_(suf) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, suf), nm)
        ADD(L_("norm.weight"), 1, DM, 0, 0, 0.9, 1.1);
        ADD(L_("mixer.in_proj.weight"), 2, 2 * DI, DM, 0, -0.036, 0.036);
        ADD(L_("mixer.conv1d.weight"), 3, DI, 1, KC, -0.5, 0.5);
        ADD(L_("mixer.conv1d.bias"), 1, DI, 0, 0, -0.5, 0.5);
        ADD(L_("mixer.x_proj.weight"), 2, RK + 2 * NS, DI, 0, -0.025, 0.025);
        ADD(L_("mixer.dt_proj.weight"), 2, DI, RK, 0, -0.14, 0.14);
        ADD(L_("mixer.dt_proj.bias"), 1, DI, 0, 0, -6.9, -2.3);
        ADD(L_("mixer.A_log"), 2, DI, NS, 0, 0.0, 2.77);
        ADD(L_("mixer.D"), 1, DI, 0, 0, 0.9, 1.1);
        ADD(L_("mixer.out_proj.weight"), 2, DM, DI, 0, -0.005, 0.005);
#undef L_
    }
    ADD("backbone.norm_f.weight", 1, DM, 0, 0, 0.9, 1.1);
#undef ADD
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!bad && ssm_safetensors_write(p, k, d, 0, NULL, NULL) != SSM_OK) bad = 1;
    for (int i = 0; i < k; i++) free(bufs[i]);
    free(d); free(bufs); free(shapes); free(names);
    return bad ? -1 : 0;
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
           DM, nl, VOC, bu_threads());
    double tw = bu_now();
    int rc = 1;
    ssm_model *m = NULL;
    ssm_model_state *s1 = NULL, *s8 = NULL;
    int32_t *tok = NULL;
    char *buf = NULL;
    float *lg = NULL;
    if (write_model(dir, nl)) { fprintf(stderr, "bench model: cannot write %s\n", dir); goto out; }
    struct stat sb;
    stat(file, &sb);
    size_t size = (size_t)sb.st_size;
    printf("wrote %.1f MB in %.2f s\n", (double)size / 1e6, bu_now() - tw);
    FILE *la = fopen("/proc/loadavg", "r");
    double load1 = -1;
    if (la) {
        if (fscanf(la, "%lf", &load1) != 1) load1 = -1;
        fclose(la);
    }
    printf("load average %.2f (other processes share the cores: figures scale with it)\n", load1);
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
    lg = malloc((size_t)8 * VOC * sizeof *lg);
    if (!tok || !lg) goto out;
    for (int i = 0; i < L; i++) tok[i] = (int32_t)((i * 7919u) % VOC);
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
