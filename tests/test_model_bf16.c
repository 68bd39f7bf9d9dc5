/* ctest-labels: model */
/*
 * test_model_bf16.c -- BF16 weights kept in memory (ssm_model_load_ex with
 * keep_bf16, ssm/model.h).
 *
 * The checkpoint: the torch-made fixture tests/fixtures/model (mamba_ssm
 * MambaLMHeadModel, F32 pytorch_model.bin) with every tensor rounded to
 * bfloat16 (nearest even, computed here) and written as a BF16 safetensors
 * file by the library's writer.  The same file is loaded twice: as float
 * (ssm_model_load widens every BF16 value exactly) and with keep_bf16.
 * Both models hold the same numbers, so:
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
 *    nothing.
 * The target, logits within 1e-2 relative of the fp32 model, is
 * therefore met with a wide margin: the difference is 0 for steps.
 */
#define _POSIX_C_SOURCE 200809L
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
    struct { uint32_t size; int keep; } bad[] = {
        { 0, 0 }, { (uint32_t)sizeof o - 1, 0 }, { (uint32_t)sizeof o + 4, 0 },
        { (uint32_t)sizeof o, 2 }, { (uint32_t)sizeof o, -1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssm_model_load_options_init(&o);
        o.struct_size = bad[i].size;
        o.keep_bf16 = bad[i].keep;
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

int main(void)
{
    Suite *s = suite_create("model_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 60);
    /* checked: made and removed around each test, in its process */
    tcase_add_checked_fixture(tc, make_bf16_checkpoint, remove_checkpoint);
    tcase_add_test(tc, steps_bit_identical_prompts_within_rounding);
    tcase_add_test(tc, options);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
