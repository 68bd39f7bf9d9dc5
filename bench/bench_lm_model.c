/*
 * bench_lm_model.c -- the random mamba-130m-shaped language model that
 * `ssm_bench model` and `ssm_bench decode` load (bench_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <ssm.h>
#include "bench_util.h"
#include "layers/gemv.h"

static float unif(uint64_t *s, double lo, double hi)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53);
}

typedef struct lm_file {
    ssm_dtype dt;
    uint64_t s;
    int k, bad;
    ssm_tensor_desc *d;
    void **bufs;
    int64_t (*shapes)[3];
    char (*names)[96];
} lm_file;

/* Appends tensor nm of nd dimensions (a, b, c) drawn from [lo, hi]. */
static void add(lm_file *f, const char *nm, int nd, int64_t a, int64_t b, int64_t c,
                double lo, double hi)
{
    if (f->bad)
        return;
    const int k = f->k;
    const int64_t cnt = a * (nd > 1 ? b : 1) * (nd > 2 ? c : 1);
    const size_t esz = f->dt == SSM_DTYPE_BF16 ? sizeof(uint16_t) : sizeof(float);
    snprintf(f->names[k], sizeof f->names[k], "%s", nm);
    f->shapes[k][0] = a; f->shapes[k][1] = b; f->shapes[k][2] = c;
    f->bufs[k] = malloc((size_t)cnt * esz);
    if (!f->bufs[k]) {
        f->bad = 1;
        return;
    }
    for (int64_t i = 0; i < cnt; i++) {
        const float v = unif(&f->s, lo, hi);
        if (f->dt == SSM_DTYPE_BF16)
            ((uint16_t *)f->bufs[k])[i] = ssmi_f32_to_bf16(v);
        else
            ((float *)f->bufs[k])[i] = v;
    }
    f->d[k] = (ssm_tensor_desc){ f->names[k], f->dt, nd, f->shapes[k], f->bufs[k] };
    f->k++;
}

/* Writes dir/model.safetensors from f's tensors and frees them. */
static int finish(lm_file *f, const char *dir)
{
    char p[512];
    int rc = -1;
    if (!f->bad) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        rc = ssm_safetensors_write(p, f->k, f->d, 0, NULL, NULL) == SSM_OK ? 0 : -1;
    }
    for (int i = 0; i < f->k; i++) free(f->bufs[i]);
    free(f->d); free(f->bufs); free(f->shapes); free(f->names);
    return rc;
}

int bu_write_mamba130m(const char *dir, int nl, ssm_dtype dt, uint64_t seed,
                       const bu_lm_ranges *r)
{
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *cf = fopen(p, "w");
    if (!cf) return -1;
    fprintf(cf, "{\"d_model\": %d, \"n_layer\": %d, \"vocab_size\": %d, \"ssm_cfg\": {},\n"
                " \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
                " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": true}\n",
            BU_DM, nl, BU_VOC);
    fclose(cf);
    const int nt = 2 + 10 * nl;
    lm_file f = { dt, seed, 0, 0, calloc((size_t)nt, sizeof *f.d),
                  calloc((size_t)nt, sizeof *f.bufs), calloc((size_t)nt, sizeof *f.shapes),
                  calloc((size_t)nt, sizeof *f.names) };
    f.bad = !f.d || !f.bufs || !f.shapes || !f.names;
    add(&f, "backbone.embedding.weight", 2, BU_VOCP, BU_DM, 1, -0.1, 0.1);
    if (r->norm_f_first)
        add(&f, "backbone.norm_f.weight", 1, BU_DM, 1, 1, 0.9, 1.1);
    for (int l = 0; l < nl; l++) {
        char nm[96];
#define L(s) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, s), nm)
        add(&f, L("norm.weight"), 1, BU_DM, 1, 1, 0.9, 1.1);
        add(&f, L("mixer.in_proj.weight"), 2, 2 * BU_DI, BU_DM, 1, -0.036, 0.036);
        add(&f, L("mixer.conv1d.weight"), 3, BU_DI, 1, BU_KC, -0.5, 0.5);
        add(&f, L("mixer.conv1d.bias"), 1, BU_DI, 1, 1, -r->conv_b, r->conv_b);
        add(&f, L("mixer.x_proj.weight"), 2, BU_RK + 2 * BU_NS, BU_DI, 1, -0.025, 0.025);
        add(&f, L("mixer.dt_proj.weight"), 2, BU_DI, BU_RK, 1, -0.14, 0.14);
        add(&f, L("mixer.dt_proj.bias"), 1, BU_DI, 1, 1, r->dt_lo, r->dt_hi);
        add(&f, L("mixer.A_log"), 2, BU_DI, BU_NS, 1, 0.0, 2.77);
        add(&f, L("mixer.D"), 1, BU_DI, 1, 1, r->d_lo, r->d_hi);
        add(&f, L("mixer.out_proj.weight"), 2, BU_DM, BU_DI, 1, -0.005, 0.005);
#undef L
    }
    if (!r->norm_f_first)
        add(&f, "backbone.norm_f.weight", 1, BU_DM, 1, 1, 0.9, 1.1);
    return finish(&f, dir);
}

int bu_write_mamba2_130m(const char *dir, int nl, uint64_t seed)
{
    enum { H = BU_DI / BU2_P, DC = BU_DI + 2 * BU2_N, DP = 2 * BU_DI + 2 * BU2_N + H };
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *cf = fopen(p, "w");
    if (!cf) return -1;
    fprintf(cf, "{\"d_model\": %d, \"d_intermediate\": 0, \"n_layer\": %d, \"vocab_size\": %d,\n"
                " \"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_state\": %d, \"d_conv\": %d,\n"
                "             \"expand\": 2, \"headdim\": %d, \"ngroups\": 1},\n"
                " \"attn_layer_idx\": [], \"attn_cfg\": {}, \"rms_norm\": true,\n"
                " \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
                " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": true}\n",
            BU_DM, nl, BU_VOC, BU2_N, BU_KC, BU2_P);
    fclose(cf);
    const int nt = 2 + 9 * nl;
    lm_file f = { SSM_DTYPE_F32, seed, 0, 0, calloc((size_t)nt, sizeof *f.d),
                  calloc((size_t)nt, sizeof *f.bufs), calloc((size_t)nt, sizeof *f.shapes),
                  calloc((size_t)nt, sizeof *f.names) };
    f.bad = !f.d || !f.bufs || !f.shapes || !f.names;
    add(&f, "backbone.embedding.weight", 2, BU_VOCP, BU_DM, 1, -0.1, 0.1);
    for (int l = 0; l < nl; l++) {
        char nm[96];
#define L(s) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, s), nm)
        add(&f, L("norm.weight"), 1, BU_DM, 1, 1, 0.9, 1.1);
        add(&f, L("mixer.in_proj.weight"), 2, DP, BU_DM, 1, -0.036, 0.036);
        add(&f, L("mixer.conv1d.weight"), 3, DC, 1, BU_KC, -0.5, 0.5);
        add(&f, L("mixer.conv1d.bias"), 1, DC, 1, 1, -0.1, 0.1);
        add(&f, L("mixer.dt_bias"), 1, H, 1, 1, -4.0, -2.0);
        add(&f, L("mixer.A_log"), 1, H, 1, 1, 0.0, 2.77);
        add(&f, L("mixer.D"), 1, H, 1, 1, 0.5, 1.5);
        add(&f, L("mixer.norm.weight"), 1, BU_DI, 1, 1, 0.9, 1.1);
        add(&f, L("mixer.out_proj.weight"), 2, BU_DM, BU_DI, 1, -0.005, 0.005);
#undef L
    }
    add(&f, "backbone.norm_f.weight", 1, BU_DM, 1, 1, 0.9, 1.1);
    return finish(&f, dir);
}
