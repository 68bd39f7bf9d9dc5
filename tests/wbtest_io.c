/* ctest-labels: io */
/*
 * wbtest_io.c -- the parsers of src/io on memory buffers (white-box): the
 * PyTorch fixture and a safetensors image cut at every byte and damaged at
 * every byte, each variant in its own exact-size heap block so that the
 * sanitizer build flags any read past the end.  Every cut is
 * SSM_ERR_FORMAT; a damaged image is SSM_OK or SSM_ERR_FORMAT and, when it
 * parses, every tensor lies inside the buffer.
 */
#include "io/io_internal.h"
#include "testutil.h"

static unsigned char *read_fixture(const char *name, size_t *len)
{
    const char *f = __FILE__, *sl = strrchr(f, '/');
    char p[512];
    snprintf(p, sizeof p, "%.*s/fixtures/%s", sl ? (int)(sl - f) : 1, sl ? f : ".", name);
    FILE *fp = fopen(p, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", p);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = tu_alloc((size_t)n, 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

typedef ssm_status (*parse_fn)(const unsigned char *, size_t, ssmi_tlist *);

static void check_inside(const ssmi_tlist *l, const unsigned char *b, size_t len)
{
    for (int64_t i = 0; i < l->n; i++) {
        const ssmi_tensor *t = &l->t[i];
        ck_assert(t->data >= b && t->nbytes <= len &&
                  (size_t)(t->data - b) <= len - t->nbytes);
        volatile unsigned char sum = 0;   /* touch every byte (ASan) */
        for (uint64_t k = 0; k < t->nbytes; k++)
            sum ^= t->data[k];
        (void)sum;
    }
}

static void sweep(const char *what, parse_fn parse, const unsigned char *img, size_t len)
{
    ssmi_tlist l;
    ck_assert_int_eq(parse(img, len, &l), SSM_OK);
    ssmi_tlist_free(&l);
    for (size_t k = 0; k < len; k++) {
        unsigned char *c = tu_alloc(k ? k : 1, 1);
        memcpy(c, img, k);
        ssm_status st = parse(c, k, &l);
        ck_assert_msg(st == SSM_ERR_FORMAT, "%s cut at %zu of %zu: %d", what, k, len, st);
        free(c);
    }
    int64_t ok = 0, refused = 0;
    for (int way = 0; way < 3; way++)
        for (size_t k = 0; k < len; k++) {
            unsigned char *c = tu_alloc(len, 1);
            memcpy(c, img, len);
            c[k] = way == 0 ? 0xFF : way == 1 ? (unsigned char)(c[k] ^ 0x55) : 0x00;
            ssm_status st = parse(c, len, &l);
            ck_assert_msg(st == SSM_OK || st == SSM_ERR_FORMAT, "%s byte %zu: %d", what, k, st);
            if (st == SSM_OK) {
                check_inside(&l, c, len);
                ssmi_tlist_free(&l);
                ok++;
            } else
                refused++;
            free(c);
        }
    printf("%s: %zu bytes, cut at each: all refused; damaged at each (3 ways): "
           "%lld parsed in bounds, %lld refused\n", what, len, (long long)ok, (long long)refused);
}

START_TEST(test_torch_sweep)
{
    const char *names[] = {"pytorch_model.bin", "pytorch_model_p4.bin"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        unsigned char *img = read_fixture(names[i], &len);
        sweep(names[i], ssmi_torch_parse, img, len);
        free(img);
    }
}
END_TEST

START_TEST(test_safetensors_sweep)
{
    const char hdr[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                       "\"y\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[12,20]},"
                       "\"z\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[20,22]}}  ";
    size_t h = sizeof hdr - 1, len = 8 + h + 22;
    unsigned char *img = tu_alloc(len, 1);
    for (int k = 0; k < 8; k++)
        img[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(img + 8, hdr, h);
    for (size_t k = 0; k < 22; k++)
        img[8 + h + k] = (unsigned char)(k * 37);
    sweep("safetensors", ssmi_safetensors_parse, img, len);
    free(img);
}
END_TEST

/* The pickle machine alone on the fixture's data.pkl, cut at every byte. */
START_TEST(test_pickle_cut)
{
    size_t len;
    unsigned char *img = read_fixture("pytorch_model.bin", &len);
    ssmi_zip z;
    ck_assert_int_eq(ssmi_zip_parse(img, len, &z), SSM_OK);
    const ssmi_zip_entry *e = ssmi_zip_find(&z, "pytorch_model/data.pkl");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(e->data);
    ssmi_pk_result r;
    ck_assert_int_eq(ssmi_pickle_load(e->data, (size_t)e->size, &r), SSM_OK);
    ck_assert_int_gt(r.n, 5);
    ssmi_pk_result_free(&r);
    for (size_t k = 0; k < e->size; k++) {
        unsigned char *c = tu_alloc(k ? k : 1, 1);
        memcpy(c, e->data, k);
        ck_assert_int_eq(ssmi_pickle_load(c, k, &r), SSM_ERR_FORMAT);
        free(c);
    }
    ssmi_zip_free(&z);
    free(img);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("wb_io");
    TCase *tc = tcase_create("sweeps");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_torch_sweep);
    tcase_add_test(tc, test_safetensors_sweep);
    tcase_add_test(tc, test_pickle_cut);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
