/* ctest-labels: model */
/*
 * test_model_bf16.c -- BF16 weights kept in memory (ssm_model_load_ex with
 * keep_bf16, ssm/model.h).
 *
 * The checkpoint: the torch-made fixture tests/fixtures/model (mamba_ssm
 * MambaLMHeadModel, F32 pytorch_model.bin) with every tensor rounded to
 * bfloat16 (nearest even, computed here) and written as a BF16 safetensors
 * file by the library's writer.  The same file is loaded twice: as float
 * (ssm_model_load widens every BF16 value exactly) and with keep_bf16 and
 * bf16_exact (every product widens the weights exactly).  Both models hold
 * the same numbers, so:
 *  - decoding steps (len 1, batch 1 and 3, and through slots) agree bit
 *    for bit: the step's products widen each BF16 weight exactly and run
 *    the same lanes in the same order as the float kernel
 *    (src/layers/gemv.h; tests/wbtest_gemv.c checks the kernels);
 *  - prompt chunks (len > 1) agree to float rounding: the BF16 model widens
 *    256-row tiles for sgemm, and sgemm may block a tile's dot products
 *    differently from the whole matrix's.  Bound: twice the bound of
 *    test_model.c on float logits against exact ones (each model is within
 *    it of the same exact logits), ratio printed;
 *  - the bytes held: the BF16 model's weight bytes are about half;
 *  - bad options: SSM_ERR_ARG; keep_bf16 on an F32 checkpoint changes
 *    nothing; a struct_size ending at keep_bf16 (older programs) loads.
 *
 * The default BF16 step (bf16_exact 0: vdpbf16ps on CPUs with AVX512_BF16,
 * activations rounded to BF16; src/layers/gemv_bf16dp.h), on the fixture
 * and on a random model large enough for the products to be split among
 * threads (d_model 256, 2 layers, BF16 written here):
 *  - step logits against the float model's, normwise relative, within
 *    min(1e-2, first-order bound): the target is 1e-2; the bound
 *    adds, over the S = 4 n_layer + 1 products on a token's path (in_proj,
 *    x_proj, dt_proj, out_proj per layer, the head), each product's
 *    normwise relative error u8 + gamma_n(K) (u8 = 2^-8: BF16 rounding of
 *    the input; gamma_n: the float sums, n = 2 ceil(K/32) + 4), i.e. it
 *    assumes that no stage amplifies a relative error (first order); both
 *    ratios printed;
 *  - the same bytes at 1, 2 and 3 threads, and for a slot alone as in a
 *    batch of 3;
 *  - prompts (len > 1) are not affected: the same bytes as bf16_exact.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"

#define U32 0x1.0p-24

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);   /* finite inputs: nearest even */
    return (uint16_t)(u >> 16);
}

static char dir[64];
/* tests/fixtures/model, found from this file's path (as test_model_torch). */
static const char *fixture(void)
{
    static char p[1024];
    const char *f = __FILE__, *sl = strrchr(f, '/');
    int dl = sl ? (int)(sl - f) : 1;
    snprintf(p, sizeof p, "%.*s/fixtures/model", dl, sl ? f : ".");
    return p;
}

/* Write dir/config.json (copied) and dir/model.safetensors (BF16). */
static void make_bf16_checkpoint(void)
{
    snprintf(dir, sizeof dir, "/tmp/ssm_test_bf16_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", fixture());
    FILE *in = fopen(p, "rb");
    ck_assert_ptr_nonnull(in);
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *out = fopen(p, "wb");
    ck_assert_ptr_nonnull(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);

    snprintf(p, sizeof p, "%s/pytorch_model.bin", fixture());
    ssm_tensor_file *f = NULL;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    int64_t nt = ssm_tensor_file_count(f);
    ck_assert_int_ge(nt, 1);
    ssm_tensor_desc *d = tu_alloc((size_t)nt, sizeof *d);
    uint16_t **bufs = tu_alloc((size_t)nt, sizeof *bufs);
    int64_t (*shapes)[SSM_TENSOR_MAX_DIMS] = tu_alloc((size_t)nt, sizeof *shapes);
    for (int64_t i = 0; i < nt; i++) {
        ssm_tensor_info info;
        ck_assert_int_eq(ssm_tensor_file_at(f, i, &info), SSM_OK);
        float *v = tu_alloc((size_t)info.numel, sizeof(float));
        ck_assert_int_eq(ssm_tensor_file_read_f32(f, info.name, v, info.numel), SSM_OK);
        bufs[i] = tu_alloc((size_t)info.numel, sizeof(uint16_t));
        for (int64_t k = 0; k < info.numel; k++) bufs[i][k] = to_bf16(v[k]);
        free(v);
        memcpy(shapes[i], info.shape, sizeof shapes[i]);
        d[i] = (ssm_tensor_desc){ info.name, SSM_DTYPE_BF16, info.ndim, shapes[i], bufs[i] };
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_int_eq(ssm_safetensors_write(p, nt, d, 0, NULL, NULL), SSM_OK);
    ssm_tensor_file_close(f);
    for (int64_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs); free(d); free(shapes);
}

static void remove_checkpoint(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir); remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir); remove(p);
    rmdir(dir);
}

static void load_pair(ssm_model **m32, ssm_model **m16)
{
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    o.bf16_exact = 1;
    ck_assert_int_eq(ssm_model_load(m32, dir), SSM_OK);
    ck_assert_int_eq(ssm_model_load_ex(m16, dir, &o), SSM_OK);
}

static double relerr(const float *a, const float *b, int64_t n)
{
    return tu_relerr_ff(a, b, n);
}

START_TEST(steps_bit_identical_prompts_within_rounding)
{
    ssm_model *m32 = NULL, *m16 = NULL;
    load_pair(&m32, &m16);
    ssm_model_info i32, i16;
    ssm_model_info_init(&i32);
    ssm_model_info_init(&i16);
    ck_assert_int_eq(ssm_model_get_info(m32, &i32), SSM_OK);
    ck_assert_int_eq(ssm_model_get_info(m16, &i16), SSM_OK);
    const int64_t V = i32.vocab, dm = i32.d_model, di = i32.d_inner, nl = i32.n_layer;
    /* The read-only float views exist for the float model only. */
    ssm_model_weights w;
    ssm_model_layer_weights lw;
    ssm_model_weights_init(&w);
    ssm_model_layer_weights_init(&lw);
    ck_assert_int_eq(ssm_model_get_weights(m32, &w), SSM_OK);
    ck_assert_int_eq(ssm_model_get_layer_weights(m32, 0, &lw), SSM_OK);
    ck_assert_ptr_nonnull(w.emb);
    ck_assert_ptr_nonnull(lw.in_w);
    ck_assert_int_eq(ssm_model_get_weights(m16, &w), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_get_layer_weights(m16, 0, &lw), SSM_ERR_ARG);
    /* Matrices (embedding, in/x/dt/out_proj) are nearly all the bytes:
     * kept as BF16 they take half. */
    const double b32 = (double)(i32.bytes_mapped + i32.bytes_owned),
                 b16 = (double)(i16.bytes_mapped + i16.bytes_owned);
    printf("weight bytes: float %.0f, bf16 kept %.0f (%.3f)\n", b32, b16, b16 / b32);
    ck_assert_msg(b16 < 0.62 * b32, "bf16 model holds %.0f of %.0f bytes", b16, b32);

    enum { B = 3, P = 11, S = 6 };
    ssm_model_state *s32 = NULL, *s16 = NULL;
    ck_assert_int_eq(ssm_model_state_create(&s32, m32, B), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&s16, m16, B), SSM_OK);
    int32_t prompt[B * P], tok[B];
    for (int i = 0; i < B * P; i++) prompt[i] = (int32_t)((i * 7 + 3) % V);
    float *a = tu_alloc((size_t)(B * P * V), sizeof(float)), *b = tu_alloc((size_t)(B * P * V), sizeof(float));

    /* Prompt chunks: every position's logits. */
    ck_assert_int_eq(ssm_model_forward_all(m32, s32, B, P, prompt, a), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_all(m16, s16, B, P, prompt, b), SSM_OK);
    const double bound = 2 * 4.0 * U32 * ((double)nl * (sqrt((double)dm) + sqrt((double)i32.d_conv) +
                                          2 * sqrt((double)di) + sqrt((double)i32.dt_rank) +
                                          sqrt((double)P) + 16) + sqrt((double)dm));
    TU_CHECK_ERR(relerr(b, a, B * P * V), bound,
                 "prompt logits, bf16 kept vs float (same values), batch %d len %d", B, P);

    /* Steps from the same states (copy the float model's so that any
     * prompt difference does not carry into them): bit for bit. */
    for (int64_t sl = 0; sl < B; sl++)
        ck_assert_int_eq(ssm_model_state_copy(s16, sl, s32, sl), SSM_OK);
    for (int t = 0; t < S; t++) {
        for (int i = 0; i < B; i++) tok[i] = (int32_t)((t * 5 + i * 11 + 1) % V);
        ck_assert_int_eq(ssm_model_forward(m32, s32, B, 1, tok, a), SSM_OK);
        ck_assert_int_eq(ssm_model_forward(m16, s16, B, 1, tok, b), SSM_OK);
        ck_assert_msg(!memcmp(a, b, (size_t)(B * V) * sizeof(float)),
                      "step %d batch %d: bf16 logits differ from float (rel %.3e)", t, B,
                      relerr(b, a, B * V));
        /* one slot alone */
        int64_t slot = (t % B);
        ck_assert_int_eq(ssm_model_forward_slots(m32, s32, 1, &slot, 1, tok, a), SSM_OK);
        ck_assert_int_eq(ssm_model_forward_slots(m16, s16, 1, &slot, 1, tok, b), SSM_OK);
        ck_assert_msg(!memcmp(a, b, (size_t)V * sizeof(float)),
                      "step %d slot %lld: bf16 logits differ from float", t, (long long)slot);
    }
    printf("ratio 0 (bit-identical)  %d steps of batch %d and %d single-slot steps, bf16 kept vs float\n",
           S, B, S);
    free(a); free(b);
    ssm_model_state_destroy(s32);
    ssm_model_state_destroy(s16);
    ssm_model_destroy(m32);
    ssm_model_destroy(m16);
}
END_TEST

START_TEST(options)
{
    ssm_model *m = NULL;
    ssm_model_load_options o;
    ssm_model_load_options_init(NULL);                    /* no-op */
    ssm_model_load_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_int_eq(o.keep_bf16, 0);
    ck_assert_int_eq(o.bf16_exact, 0);
    const uint32_t v1 = (uint32_t)(offsetof(ssm_model_load_options, keep_bf16) + sizeof(int));
    struct { uint32_t size; int keep, exact; } bad[] = {
        { 0, 0, 0 }, { (uint32_t)sizeof o - 1, 0, 0 }, { (uint32_t)sizeof o + 4, 0, 0 },
        { v1 - 1, 0, 0 }, { v1 + 1, 0, 0 },
        { (uint32_t)sizeof o, 2, 0 }, { (uint32_t)sizeof o, -1, 0 },
        { (uint32_t)sizeof o, 1, 2 }, { (uint32_t)sizeof o, 0, -1 },
        { v1, 2, 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssm_model_load_options_init(&o);
        o.struct_size = bad[i].size;
        o.keep_bf16 = bad[i].keep;
        o.bf16_exact = bad[i].exact;
        m = (ssm_model *)&o;   /* must be set to NULL */
        ck_assert_int_eq(ssm_model_load_ex(&m, dir, &o), SSM_ERR_ARG);
        ck_assert_ptr_null(m);
    }
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    ck_assert_int_eq(ssm_model_load_ex(NULL, dir, &o), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_model_load_ex(&m, NULL, &o), SSM_ERR_ARG);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(ssm_model_load_ex(&m, "/nonexistent/dir", &o), SSM_ERR_IO);
    /* NULL options: ssm_model_load */
    ck_assert_int_eq(ssm_model_load_ex(&m, dir, NULL), SSM_OK);
    ssm_model_destroy(m);
    /* The first layout (an older program's struct_size ends at keep_bf16):
     * loads; bf16_exact beyond it is not read (garbage there is ignored). */
    ssm_model_load_options_init(&o);
    o.struct_size = v1;
    o.keep_bf16 = 1;
    o.bf16_exact = 12345;
    ck_assert_int_eq(ssm_model_load_ex(&m, dir, &o), SSM_OK);
    ssm_model_destroy(m);
    m = NULL;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    /* keep_bf16 on the F32 fixture: the same model (weights in place). */
    ssm_model *a = NULL, *b = NULL;
    ck_assert_int_eq(ssm_model_load(&a, fixture()), SSM_OK);
    ck_assert_int_eq(ssm_model_load_ex(&b, fixture(), &o), SSM_OK);
    ssm_model_info ia, ib;
    ssm_model_info_init(&ia);
    ssm_model_info_init(&ib);
    ck_assert_int_eq(ssm_model_get_info(a, &ia), SSM_OK);
    ck_assert_int_eq(ssm_model_get_info(b, &ib), SSM_OK);
    ck_assert_int_eq(ia.bytes_mapped, ib.bytes_mapped);
    ck_assert_int_eq(ia.bytes_owned, ib.bytes_owned);
    ssm_model_destroy(a);
    ssm_model_destroy(b);
}
END_TEST

/* ---- the default BF16 step: vdpbf16ps where the CPU has it ---- */

static uint64_t rs = 0x5eed1234;
static float unif(double lo, double hi)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53);
}

/* A random Mamba-1 model, d_model 256 (d_inner 512, dt_rank 16, d_state
 * 16), 2 layers, vocab 1000, every tensor BF16, into dir; scales as
 * mamba_ssm's initialisation (1/sqrt(fan_in) uniform; out_proj also over
 * sqrt(n_layer)). */
static void make_random_checkpoint(void)
{
    enum { DM = 256, DI = 512, NS = 16, KC = 4, RK = 16, VOC = 1000, NL = 2 };
    snprintf(dir, sizeof dir, "/tmp/ssm_test_bf16r_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"d_model\": %d, \"n_layer\": %d, \"vocab_size\": %d, \"ssm_cfg\": {},\n"
               " \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true,\n"
               " \"pad_vocab_size_multiple\": 8, \"tie_embeddings\": true}\n", DM, NL, VOC);
    fclose(f);
    enum { NT = 2 + 10 * NL };
    ssm_tensor_desc d[NT];
    uint16_t *bufs[NT];
    int64_t shapes[NT][3];
    char names[NT][96];
    int k = 0;
    struct { const char *nm; int nd; int64_t a, b, c; double lo, hi; } spec[] = {
        { "norm.weight", 1, DM, 1, 1, 0.9, 1.1 },
        { "mixer.in_proj.weight", 2, 2 * DI, DM, 1, -0.0625, 0.0625 },
        { "mixer.conv1d.weight", 3, DI, 1, KC, -0.5, 0.5 },
        { "mixer.conv1d.bias", 1, DI, 1, 1, -0.1, 0.1 },
        { "mixer.x_proj.weight", 2, RK + 2 * NS, DI, 1, -0.044, 0.044 },
        { "mixer.dt_proj.weight", 2, DI, RK, 1, -0.25, 0.25 },
        { "mixer.dt_proj.bias", 1, DI, 1, 1, -4.0, -2.0 },
        { "mixer.A_log", 2, DI, NS, 1, 0.0, 2.77 },
        { "mixer.D", 1, DI, 1, 1, 0.5, 1.5 },
        { "mixer.out_proj.weight", 2, DM, DI, 1, -0.031, 0.031 },
    };
    for (int l = -1; l < NL; l++)
        for (int s = 0; s < (l < 0 ? 2 : 10); s++) {
            int nd = 2;
            int64_t a = VOC, b = DM, c = 1;
            double lo = -0.1, hi = 0.1;
            if (l < 0 && s == 0) snprintf(names[k], sizeof names[k], "backbone.embedding.weight");
            else if (l < 0) {
                snprintf(names[k], sizeof names[k], "backbone.norm_f.weight");
                nd = 1; a = DM; lo = 0.9; hi = 1.1;
            } else {
                snprintf(names[k], sizeof names[k], "backbone.layers.%d.%s", l, spec[s].nm);
                nd = spec[s].nd; a = spec[s].a; b = spec[s].b; c = spec[s].c;
                lo = spec[s].lo; hi = spec[s].hi;
            }
            const int64_t cnt = a * (nd > 1 ? b : 1) * (nd > 2 ? c : 1);
            shapes[k][0] = a; shapes[k][1] = b; shapes[k][2] = c;
            bufs[k] = tu_alloc((size_t)cnt, sizeof(uint16_t));
            for (int64_t i = 0; i < cnt; i++) bufs[k][i] = to_bf16(unif(lo, hi));
            d[k] = (ssm_tensor_desc){ names[k], SSM_DTYPE_BF16, nd, shapes[k], bufs[k] };
            k++;
        }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_int_eq(ssm_safetensors_write(p, k, d, 0, NULL, NULL), SSM_OK);
    for (int i = 0; i < k; i++) free(bufs[i]);
}

/* The checks of the header comment on the checkpoint in dir. */
static void check_default_step(void)
{
    ssm_model *m32 = NULL, *mx = NULL, *md = NULL;
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    ck_assert_int_eq(ssm_model_load(&m32, dir), SSM_OK);
    ck_assert_int_eq(ssm_model_load_ex(&md, dir, &o), SSM_OK);    /* default */
    o.bf16_exact = 1;
    ck_assert_int_eq(ssm_model_load_ex(&mx, dir, &o), SSM_OK);
    ssm_model_info in;
    ssm_model_info_init(&in);
    ck_assert_int_eq(ssm_model_get_info(m32, &in), SSM_OK);
    const int64_t V = in.vocab, nl = in.n_layer;
    enum { B = 3, P = 2049, S = 5 };  /* P: two chunks, the last of one token */
    ssm_model_state *s32, *sx, *sd, *st;
    ck_assert_int_eq(ssm_model_state_create(&s32, m32, B), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&sx, mx, B), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&sd, md, B), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&st, md, B), SSM_OK);
    int32_t prompt[B * P], tok[B];
    for (int i = 0; i < B * P; i++) prompt[i] = (int32_t)((i * 7 + 3) % V);
    float *a = tu_alloc((size_t)(B * P * V), sizeof(float)), *b = tu_alloc((size_t)(B * P * V), sizeof(float)),
          *c = tu_alloc((size_t)(B * P * V), sizeof(float));
    /* First-order bound: S products, each u8 + gamma_n(K). */
    const double u = 0x1.0p-24, u8 = 0x1.0p-8;
    double first = 0.0;
    const int64_t Ks[4] = { in.d_model, in.d_inner, in.dt_rank, in.d_inner };
    for (int64_t l = 0; l <= nl; l++)
        for (int j = 0; j < (l < nl ? 4 : 1); j++) {
            const int64_t K = l < nl ? Ks[j] : in.d_model;
            const double n = (double)(2 * ((K + 31) / 32) + 4);
            first += u8 + n * u / (1.0 - n * u);
        }
    const double bound = first < 1e-2 ? first : 1e-2;
    /* Prompts: the default model's (oneDNN bf16 matmul when libssm has it,
     * else the exact tiles) against the float model's, every position; the
     * same bytes at 1, 2 and 3 threads. */
    ck_assert_int_eq(ssm_model_forward_all(m32, s32, B, P, prompt, a), SSM_OK);
    for (int th = 1; th <= 3; th++) {
        tu_set_threads(th);
        ck_assert_int_eq(ssm_model_state_reset(sd), SSM_OK);
        ck_assert_int_eq(ssm_model_forward_all(md, sd, B, P, prompt, th == 1 ? b : c), SSM_OK);
        if (th > 1)
            ck_assert_msg(!memcmp(b, c, (size_t)(B * P * V) * sizeof(float)),
                          "prompt: %d threads differ from 1", th);
    }
    tu_set_threads(1);
    ck_assert_int_eq(ssm_model_forward_all(mx, sx, B, P, prompt, c), SSM_OK);
    const double ep = relerr(b, a, B * P * V);
    printf("default bf16 prompt (%s): logits vs float model, batch %d len %d, normwise rel %.3e\n",
           memcmp(b, c, (size_t)(B * P * V) * sizeof(float)) ? "BF16 arithmetic, oneDNN"
                                                             : "exact tiles: no oneDNN or no AVX512_BF16",
           B, P, ep);
    TU_CHECK_ERR(ep, bound, "default bf16 prompt logits vs float model (d_model %lld, %lld layers)",
                 (long long)in.d_model, (long long)nl);
    /* Steps from the float model's states. */
    for (int64_t sl = 0; sl < B; sl++) ck_assert_int_eq(ssm_model_state_copy(sd, sl, s32, sl), SSM_OK);
    double worst = 0.0;
    int differs = 0;
    for (int t = 0; t < S; t++) {
        for (int i = 0; i < B; i++) tok[i] = (int32_t)((t * 5 + i * 11 + 1) % V);
        ck_assert_int_eq(ssm_model_forward(m32, s32, B, 1, tok, a), SSM_OK);
        /* the same bytes at 1, 2 and 3 threads, from the same states */
        for (int th = 1; th <= 3; th++) {
            for (int64_t sl = 0; sl < B; sl++) ck_assert_int_eq(ssm_model_state_copy(st, sl, sd, sl), SSM_OK);
            tu_set_threads(th);
            ck_assert_int_eq(ssm_model_forward(md, th == 3 ? sd : st, B, 1, tok, th == 1 ? b : c), SSM_OK);
            if (th > 1)
                ck_assert_msg(!memcmp(b, c, (size_t)(B * V) * sizeof(float)),
                              "step %d: %d threads differ from 1", t, th);
        }
        tu_set_threads(1);
        /* st holds the state before this step (copied at th = 3): each slot alone */
        for (int64_t sl = 0; sl < B; sl++) {
            ck_assert_int_eq(ssm_model_forward_slots(md, st, 1, &sl, 1, tok + sl, c), SSM_OK);
            ck_assert_msg(!memcmp(c, b + sl * V, (size_t)V * sizeof(float)),
                          "step %d slot %lld: alone differs from in a batch", t, (long long)sl);
        }
        double e = relerr(b, a, B * V);
        if (e > worst) worst = e;
        if (memcmp(a, b, (size_t)(B * V) * sizeof(float))) differs = 1;
    }
    printf("default bf16 step (%s): logits vs float model, %d steps of batch %d, worst normwise rel %.3e; "
           "ratio to first-order bound %.3e: %.3f; to the target 1e-2: %.3f\n",
           differs ? "BF16 arithmetic, vdpbf16ps" : "exact widening: no AVX512_BF16 here",
           S, B, worst, first, worst / first, worst / 1e-2);
    TU_CHECK_ERR(worst, bound, "default bf16 step logits vs float model (d_model %lld, %lld layers)",
                 (long long)in.d_model, (long long)nl);
    free(a); free(b); free(c);
    ssm_model_state_destroy(s32); ssm_model_state_destroy(sx);
    ssm_model_state_destroy(sd); ssm_model_state_destroy(st);
    ssm_model_destroy(m32); ssm_model_destroy(mx); ssm_model_destroy(md);
}

START_TEST(default_step_fixture)
{
    check_default_step();
}
END_TEST

START_TEST(default_step_random)
{
    check_default_step();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 60);
    /* checked: made and removed around each test, in its process */
    tcase_add_checked_fixture(tc, make_bf16_checkpoint, remove_checkpoint);
    tcase_add_test(tc, steps_bit_identical_prompts_within_rounding);
    tcase_add_test(tc, options);
    tcase_add_test(tc, default_step_fixture);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("bf16_random");
    tcase_set_timeout(tr, 120);
    tcase_add_checked_fixture(tr, make_random_checkpoint, remove_checkpoint);
    tcase_add_test(tr, default_step_random);
    suite_add_tcase(s, tr);
    return tu_run(s);
}
