/*
 * fuzz_ssd.c -- libFuzzer target for the SSD scan and the Mamba-2 block's
 * argument handling: sizes, options, dt limits and data from the input
 * (small sizes, possibly invalid: 0, groups not dividing heads, NaN limits),
 * every path and chunk length; the calls must return a status, never crash
 * or read out of bounds (run under ASan/UBSan).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ssm.h>

static int64_t take(const uint8_t **d, size_t *n, int64_t mod)
{
    if (*n == 0)
        return 0;
    int64_t v = **d % mod;
    (*d)++;
    (*n)--;
    return v;
}

static float takef(const uint8_t **d, size_t *n)
{
    if (*n < 4)
        return 0.5f;
    float f;
    memcpy(&f, *d, 4);
    *d += 4;
    *n -= 4;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *d = data;
    size_t n = size;
    const int64_t B = take(&d, &n, 3), L = take(&d, &n, 40), H = take(&d, &n, 6);
    const int64_t P = take(&d, &n, 9), N = take(&d, &n, 9), G = take(&d, &n, 4);
    const int64_t opt = take(&d, &n, 256), path = take(&d, &n, 4), chunk = take(&d, &n, 20);
    const float dtmin = takef(&d, &n), dtmax = takef(&d, &n);
    const int64_t bl = (B ? B : 1) * (L ? L : 1), hh = H ? H : 1, gg = G ? G : 1;
    const int64_t nx = bl * hh * (P ? P : 1), nbc = bl * gg * (N ? N : 1);
    const int64_t nh = (B ? B : 1) * hh * (P ? P : 1) * (N ? N : 1);
    float *x = calloc((size_t)nx, 4), *z = calloc((size_t)nx, 4), *y = calloc((size_t)nx, 4);
    float *dt = calloc((size_t)(bl * hh), 4), *A = calloc((size_t)hh, 4);
    float *Bm = calloc((size_t)nbc, 4), *Cm = calloc((size_t)nbc, 4);
    float *D = calloc((size_t)(hh * (P ? P : 1)), 4), *bias = calloc((size_t)hh, 4);
    float *h = calloc((size_t)nh, 4);
    if (!x || !z || !y || !dt || !A || !Bm || !Cm || !D || !bias || !h)
        goto out;
    /* data: the rest of the input, cycled (any bit patterns, NaN included) */
    float *arrs[] = { x, z, dt, A, Bm, Cm, D, bias, h };
    const int64_t lens[] = { nx, nx, bl * hh, hh, nbc, nbc, hh * (P ? P : 1), hh, nh };
    for (int a = 0; a < 9; a++)
        for (int64_t i = 0; i < lens[a]; i++)
            arrs[a][i] = n >= 4 ? takef(&d, &n) : (float)((i * 7 + a) % 5) * 0.25f - 0.5f;
    ssm_ssd_args s;
    memset(&s, 0, sizeof s);
    s.batch = B; s.len = L; s.nheads = H; s.headdim = P; s.dstate = N; s.ngroups = G;
    s.x = x; s.dt = dt; s.A = A; s.B = Bm; s.C = Cm;
    s.D = (opt & 1) ? D : NULL; s.D_per_channel = (opt >> 1) & 1;
    s.z = (opt & 4) ? z : NULL; s.dt_bias = (opt & 8) ? bias : NULL;
    s.dt_softplus = (opt >> 4) & 1; s.dt_min = dtmin; s.dt_max = dtmax;
    s.h0 = (opt & 32) ? h : NULL; s.h_last = (opt & 64) ? h : NULL; s.y = y;
    (void)ssm_ssd_scan(&s);
    (void)ssm_ssd_scan_ex(&s, (ssm_ssd_path)path, chunk);
    s.len = L ? 1 : 0; s.h0 = h; s.h_last = h;
    (void)ssm_ssd_step(&s);
    /* a small Mamba-2 block from the same bytes */
    ssm_mamba2_config cfg;
    ssm_mamba2_config_init(&cfg);
    cfg.d_model = (int64_t)(opt % 9); cfg.d_state = N; cfg.headdim = P; cfg.ngroups = G;
    cfg.d_conv = chunk % 6; cfg.expand = path; cfg.norm = (int)(opt % 4);
    cfg.dt_min = dtmin < 0.1f ? dtmin : 0.0f;
    cfg.struct_size = (opt & 128) ? (uint32_t)(opt % sizeof cfg) : cfg.struct_size;
    ssm_mamba2 *blk = NULL;
    ssm_mamba2_state *st = NULL;
    if (ssm_mamba2_create(&blk, &cfg, 1) == SSM_OK &&
        ssm_mamba2_state_create(&st, blk, 2) == SSM_OK) {
        ssm_mamba2_config rc;
        ssm_mamba2_config_init(&rc);
        ssm_mamba2_get_config(blk, &rc);
        const int64_t dm = rc.d_model, Lb = L ? L : 1;
        float *bx = calloc((size_t)(2 * Lb * dm), 4), *by = calloc((size_t)(2 * Lb * dm), 4);
        if (bx && by) {
            for (int64_t i = 0; i < 2 * Lb * dm; i++)
                bx[i] = x[i % nx];
            (void)ssm_mamba2_forward(blk, st, B, L, bx, by);
            (void)ssm_mamba2_step(blk, st, B, bx, by);
        }
        free(bx);
        free(by);
    }
    ssm_mamba2_state_destroy(st);
    ssm_mamba2_destroy(blk);
out:
    free(x); free(z); free(y); free(dt); free(A); free(Bm); free(Cm); free(D); free(bias); free(h);
    return 0;
}
