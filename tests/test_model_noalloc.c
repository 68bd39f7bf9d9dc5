/* ctest-labels: model */
/*
 * test_model_noalloc.c -- the decoding step never allocates once its state
 * exists (ssm/model.h: ssm_model_forward with len == 1 and
 * ssm_model_forward_slots; ssm/sample.h: ssm_sampler_sample), for a
 * Mamba-1 and a Mamba-2 model.
 *
 * This program replaces malloc and friends (ELF interposition: the
 * definitions here win over libc's for the whole process, libssm.so
 * included) with counting wrappers around glibc's __libc_* allocator, and
 * counts the calls made during steady-state decoding steps.  Under a
 * sanitizer, which owns malloc, the count cannot be taken: the test says
 * so and checks only that decoding works.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"
#include "model2_tiny.h"

#if defined(__SANITIZE_ADDRESS__)
#define NOALLOC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOALLOC_SANITIZED 1
#endif
#endif

static volatile int counting;
static volatile long n_alloc;

#ifndef NOALLOC_SANITIZED
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    if (counting) n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (counting) n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (counting) n_alloc++;
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t al, size_t n)
{
    if (counting) n_alloc++;
    return __libc_memalign(al, n);
}
void *memalign(size_t al, size_t n)
{
    if (counting) n_alloc++;
    return __libc_memalign(al, n);
}
int posix_memalign(void **p, size_t al, size_t n)
{
    if (counting) n_alloc++;
    void *q = __libc_memalign(al, n);
    if (!q) return ENOMEM;
    *p = q;
    return 0;
}
void free(void *p)
{
    __libc_free(p);
}
#endif

START_TEST(test_decode_does_not_allocate)
{
    tiny_model m;
    char dir[] = "/tmp/ssm_test_noalloc_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tiny_make(&m, 5, 2, 1, 1, 1, 0, 0);
    ck_assert_int_eq(tiny_write(&m, dir, SSM_DTYPE_F16, 0, 0), 0);
    ssm_model *model;
    ck_assert_int_eq(ssm_model_load(&model, dir), SSM_OK);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 4), SSM_OK);
    ssm_sampler_params p;
    ssm_sampler_params_init(&p);
    p.top_k = 10; p.top_p = 0.9; p.min_p = 0.01; p.temperature = 0.8;
    p.repetition_penalty = 1.3;
    ssm_sampler *smp;
    ck_assert_int_eq(ssm_sampler_create(&smp, &p, m.V, 3), SSM_OK);
    int32_t prompt[4 * 6];
    for (int i = 0; i < 24; i++) prompt[i] = (int32_t)(i * 5 % m.V);
    float lg[4 * 37];
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 6, prompt, lg), SSM_OK);
    int32_t hist[64] = { 0 }, tok[4] = { 1, 2, 3, 4 };
    int64_t slots[3] = { 3, 0, 2 };
    /* warm-up: the first parallel regions, lazy library set-up */
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 1, tok, lg), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 3, slots, 1, tok, lg), SSM_OK);
    ck_assert_int_eq(ssm_sampler_sample(smp, lg, hist, 8, &tok[0]), SSM_OK);
    int ok = 1;
    n_alloc = 0;
    counting = 1;
    for (int step = 0; step < 20 && ok; step++) {
        ok &= ssm_model_forward(model, s, 4, 1, tok, lg) == SSM_OK;
        for (int b = 0; b < 4 && ok; b++) {
            ok &= ssm_sampler_sample(smp, lg + b * m.V, hist, 8 + step, &tok[b]) == SSM_OK;
            hist[8 + step] = tok[b];
        }
        ok &= ssm_model_forward_slots(model, s, 3, slots, 1, tok, lg) == SSM_OK;
        ok &= ssm_model_forward(model, s, 1, 1, tok, NULL) == SSM_OK;
    }
    /* a real vocabulary's worth of candidates through every filter */
    counting = 0;
    enum { BIGV = 50280 };
    float *big = malloc(BIGV * sizeof *big);
    int32_t bt = 0;
    ssm_sampler *bs;
    ck_assert_int_eq(ssm_sampler_create(&bs, &p, BIGV, 9), SSM_OK);
    for (int i = 0; i < BIGV; i++) big[i] = (float)((i * 7919) % 1000) / 100.0f;
    ck_assert_int_eq(ssm_sampler_sample(bs, big, hist, 8, &bt), SSM_OK);
    counting = 1;
    for (int r = 0; r < 3 && ok; r++)
        ok &= ssm_sampler_sample(bs, big, hist, 8, &bt) == SSM_OK;
    counting = 0;
    ssm_sampler_destroy(bs);
    p.top_k = 0;
    ck_assert_int_eq(ssm_sampler_create(&bs, &p, BIGV, 9), SSM_OK);
    counting = 1;
    for (int r = 0; r < 3 && ok; r++)
        ok &= ssm_sampler_sample(bs, big, hist, 8, &bt) == SSM_OK;
    counting = 0;
    ssm_sampler_destroy(bs);
    free(big);
    long n = n_alloc;
    ck_assert(ok);
#ifdef NOALLOC_SANITIZED
    printf("noalloc: sanitizer build, allocation count not available (decoding ran)\n");
    (void)n;
#else
    printf("noalloc: %ld allocations in 20 x (batch-4 step, 4 samples, 3-slot step, 1-slot step)"
           " and 6 samples over 50280 ids (top-k + top-p, top-p alone)\n", n);
    ck_assert_int_eq(n, 0);
#endif
    ssm_sampler_destroy(smp);
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    tiny_free(&m);
    char pth[128];
    snprintf(pth, sizeof pth, "%s/config.json", dir);
    remove(pth);
    snprintf(pth, sizeof pth, "%s/model.safetensors", dir);
    remove(pth);
    rmdir(dir);
}
END_TEST

/* BF16 weights kept (ssm_model_load_ex keep_bf16): the default step
 * (vdpbf16ps on AVX512_BF16 CPUs, activations rounded into the state's
 * scratch) and the exact one (bf16_exact) allocate nothing either. */
START_TEST(test_decode_bf16_does_not_allocate)
{
    tiny_model m;
    char dir[] = "/tmp/ssm_test_noalloc_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tiny_make(&m, 5, 2, 1, 1, 1, 0, 0);
    ck_assert_int_eq(tiny_write(&m, dir, SSM_DTYPE_BF16, 0, 0), 0);
    ssm_model_load_options o;
    ssm_model_load_options_init(&o);
    o.keep_bf16 = 1;
    o.bf16_exact = _i;
    ssm_model *model;
    ck_assert_int_eq(ssm_model_load_ex(&model, dir, &o), SSM_OK);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 4), SSM_OK);
    int32_t prompt[4 * 6], tok[4] = { 1, 2, 3, 4 };
    for (int i = 0; i < 24; i++) prompt[i] = (int32_t)(i * 5 % m.V);
    float lg[4 * 37];
    int64_t slots[3] = { 3, 0, 2 };
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 6, prompt, lg), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 1, tok, lg), SSM_OK);   /* warm-up */
    int ok = 1;
    n_alloc = 0;
    counting = 1;
    for (int step = 0; step < 20 && ok; step++) {
        ok &= ssm_model_forward(model, s, 4, 1, tok, lg) == SSM_OK;
        ok &= ssm_model_forward_slots(model, s, 3, slots, 1, tok, lg) == SSM_OK;
        ok &= ssm_model_forward(model, s, 1, 1, tok, NULL) == SSM_OK;
    }
    counting = 0;
    long n = n_alloc;
    ck_assert(ok);
#ifdef NOALLOC_SANITIZED
    (void)n;
#else
    printf("noalloc: %ld allocations in 20 x 3 steps, BF16 weights kept, bf16_exact %d\n", n, _i);
    ck_assert_int_eq(n, 0);
#endif
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    tiny_free(&m);
    char pth[128];
    snprintf(pth, sizeof pth, "%s/config.json", dir);
    remove(pth);
    snprintf(pth, sizeof pth, "%s/model.safetensors", dir);
    remove(pth);
    rmdir(dir);
}
END_TEST

/* The same for a Mamba-2 model (the stack's step per slot). */
START_TEST(test_decode_mamba2_does_not_allocate)
{
    tiny2_model m;
    char dir[] = "/tmp/ssm_test_noalloc2_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tiny2_make(&m, 6, 2, 1, 1, 0, SSM_MAMBA2_NORM_GATED, 0, 0, 0);
    ck_assert_int_eq(tiny2_write(&m, dir, SSM_DTYPE_BF16, 0, NULL, NULL), 0);
    ssm_model *model;
    ck_assert_int_eq(ssm_model_load(&model, dir), SSM_OK);
    ssm_model_state *s;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 4), SSM_OK);
    int32_t prompt[4 * 6];
    for (int i = 0; i < 24; i++) prompt[i] = (int32_t)(i * 5 % m.V);
    float lg[4 * 37];
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 6, prompt, lg), SSM_OK);
    int32_t tok[4] = { 1, 2, 3, 4 };
    int64_t slots[3] = { 3, 0, 2 };
    ck_assert_int_eq(ssm_model_forward(model, s, 4, 1, tok, lg), SSM_OK);
    ck_assert_int_eq(ssm_model_forward_slots(model, s, 3, slots, 1, tok, lg), SSM_OK);
    int ok = 1;
    n_alloc = 0;
    counting = 1;
    for (int step = 0; step < 20 && ok; step++) {
        ok &= ssm_model_forward(model, s, 4, 1, tok, lg) == SSM_OK;
        for (int b = 0; b < 4; b++) tok[b] = (int32_t)((tok[b] * 7 + step) % m.V);
        ok &= ssm_model_forward_slots(model, s, 3, slots, 1, tok, lg) == SSM_OK;
        ok &= ssm_model_forward(model, s, 1, 1, tok, NULL) == SSM_OK;
    }
    counting = 0;
    long n = n_alloc;
    ck_assert(ok);
#ifdef NOALLOC_SANITIZED
    printf("noalloc mamba2: sanitizer build, allocation count not available (decoding ran)\n");
    (void)n;
#else
    printf("noalloc mamba2: %ld allocations in 20 x (batch-4 step, 3-slot step, 1-slot step)\n", n);
    ck_assert_int_eq(n, 0);
#endif
    ssm_model_state_destroy(s);
    ssm_model_destroy(model);
    tiny2_free(&m);
    char pth[128];
    snprintf(pth, sizeof pth, "%s/config.json", dir);
    remove(pth);
    snprintf(pth, sizeof pth, "%s/model.safetensors", dir);
    remove(pth);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_noalloc");
    TCase *tc = tcase_create("noalloc");
    tcase_add_test(tc, test_decode_does_not_allocate);
    tcase_add_test(tc, test_decode_mamba2_does_not_allocate);
    tcase_add_loop_test(tc, test_decode_bf16_does_not_allocate, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
