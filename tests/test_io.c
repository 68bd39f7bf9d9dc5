/* ctest-labels: io */
/*
 * test_io.c -- safetensors files (src/io): reader, writer, sharded index,
 * F16/BF16 conversion, bad files, the S4D layer loader.
 *
 *  - files are made by a writer in this test (raw bytes: header text and
 *    data chosen here) so the reader is never checked against itself; the
 *    library's writer is checked separately (its bytes and a read-back);
 *  - F16 and BF16: every one of the 65536 bit patterns against an
 *    independent formula (ldexp on the sign, exponent and fraction fields),
 *    exactly (both conversions are exact: the error bound is 0);
 *  - bad files, table-driven: SSM_ERR_IO or SSM_ERR_FORMAT, never a crash
 *    (the sanitizer build checks reads and leaks); a small file truncated at
 *    every byte;
 *  - ssm_s4d_layer_load: the layer's parameters against exp() of the stored
 *    values, its kernel against a long double evaluation of the s4
 *    module's formula.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"
#include "tu_files.h"

static char tmpdir[256];

static void make_tmpdir(void) { tu_make_tmpdir(tmpdir, sizeof tmpdir, "ssm_test_io"); }
static void rm_tmpdir(void) { ck_assert_int_eq(tu_rm_tree(tmpdir), 0); }

static void tpath(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* A safetensors image: 8-byte LE length of hdr, hdr, then data bytes. */
static unsigned char *st_image(const char *hdr, const void *data, size_t dlen,
                               size_t *len)
{
    size_t h = strlen(hdr);
    unsigned char *b = tu_alloc(8 + h + dlen + 1, 1);
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, hdr, h);
    if (dlen)
        memcpy(b + 8 + h, data, dlen);
    *len = 8 + h + dlen;
    return b;
}

static void write_st(const char *path, const char *hdr, const void *data, size_t dlen)
{
    size_t len;
    unsigned char *b = st_image(hdr, data, dlen, &len);
    tu_write_bytes(path, b, len);
    free(b);
}

/* ---- reading what the test wrote ---------------------------------------- */

START_TEST(test_read_basic)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "a.safetensors");
    /* a: F32 [2][3], b: F16 [2] (1.5, -0.25), c: BF16 [] (3.0), e: F32 [0][4];
     * data stored out of name order and not 4-byte aligned for a (offset 6) */
    unsigned char data[6 + 24];
    const float av[6] = {1.0f, -2.0f, 3.5f, 0.1f, 1e-30f, -7.25f};
    const uint16_t bv[2] = {0x3E00, 0xB400}, cv = 0x4040;
    memcpy(data, bv, 4);
    memcpy(data + 4, &cv, 2);
    memcpy(data + 6, av, 24);
    write_st(p, "{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                "\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\\\"y\"},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[6,30]},"
                "\"c\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[4,6]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[30,30]}}   ",
             data, sizeof data);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_count(f), 4);
    ssm_tensor_info info;
    const char *order[4] = {"b", "a", "c", "e"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(ssm_tensor_file_at(f, i, &info), SSM_OK);
        ck_assert_str_eq(info.name, order[i]);
    }
    ck_assert_int_eq(ssm_tensor_file_find(f, "a", &info), SSM_OK);
    ck_assert_int_eq(info.dtype, SSM_DTYPE_F32);
    ck_assert_int_eq(info.ndim, 2);
    ck_assert_int_eq(info.shape[0], 2);
    ck_assert_int_eq(info.shape[1], 3);
    ck_assert_int_eq(info.numel, 6);
    float out[6];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "a", out, 6), SSM_OK);
    ck_assert_mem_eq(out, av, sizeof av);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "b", out, 2), SSM_OK);
    ck_assert(out[0] == 1.5f && out[1] == -0.25f);
    ck_assert_int_eq(ssm_tensor_file_find(f, "c", &info), SSM_OK);
    ck_assert_int_eq(info.ndim, 0);
    ck_assert_int_eq(info.numel, 1);
    ck_assert_int_eq(info.dtype, SSM_DTYPE_BF16);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "c", out, 1), SSM_OK);
    ck_assert(out[0] == 3.0f);
    ck_assert_int_eq(ssm_tensor_file_find(f, "e", &info), SSM_OK);
    ck_assert_int_eq(info.numel, 0);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "e", NULL, 0), SSM_OK);
    /* zero-copy: the bytes in the mapping, at their unaligned place */
    const void *d;
    ck_assert_int_eq(ssm_tensor_file_data(f, "a", &d, &info), SSM_OK);
    ck_assert_mem_eq(d, av, sizeof av);
    const char *v;
    ck_assert_int_eq(ssm_tensor_file_metadata(f, "format", &v), SSM_OK);
    ck_assert_str_eq(v, "pt");
    ck_assert_int_eq(ssm_tensor_file_metadata(f, "note", &v), SSM_OK);
    ck_assert_str_eq(v, "x\"y");
    ck_assert_int_eq(ssm_tensor_file_metadata(f, "nope", &v), SSM_ERR_FORMAT);
    /* errors of the accessors */
    ck_assert_int_eq(ssm_tensor_file_find(f, "zz", &info), SSM_ERR_FORMAT);
    ck_assert_int_eq(ssm_tensor_file_find(f, NULL, &info), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_find(NULL, "a", &info), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_at(f, 4, &info), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_at(f, -1, &info), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_at(f, 0, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "a", out, 5), SSM_ERR_FORMAT);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "a", NULL, 6), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "zz", out, 6), SSM_ERR_FORMAT);
    ck_assert_int_eq(ssm_tensor_file_data(f, "a", NULL, &info), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_metadata(NULL, "a", &v), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_count(NULL), 0);
    ssm_tensor_file_close(f);
    ssm_tensor_file_close(NULL);
    ck_assert_int_eq(ssm_tensor_file_open(NULL, p), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_tensor_file_open(&f, NULL), SSM_ERR_ARG);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(ssm_dtype_size(SSM_DTYPE_F32), 4);
    ck_assert_uint_eq(ssm_dtype_size(SSM_DTYPE_F16), 2);
    ck_assert_uint_eq(ssm_dtype_size(SSM_DTYPE_BF16), 2);
    ck_assert_uint_eq(ssm_dtype_size((ssm_dtype)7), 0);
    rm_tmpdir();
}
END_TEST

/* ---- F16 / BF16: all 65536 patterns against ldexp on the fields -------- */

static double ref_half(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);                 /* subnormal: m 2^-24 */
    else
        v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

static double ref_bf16(uint16_t h)
{
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 255)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -133);                /* m 2^-7 2^-126 */
    else
        v = ldexp(1.0 + m / 128.0, e - 127);
    return s ? -v : v;
}

START_TEST(test_half_bf16_all)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "h.safetensors");
    uint16_t *all = tu_alloc(65536, sizeof *all);
    for (uint32_t i = 0; i < 65536; i++)
        all[i] = (uint16_t)i;
    unsigned char *data = tu_alloc(2 * 131072, 1);
    memcpy(data, all, 131072);
    memcpy(data + 131072, all, 131072);
    write_st(p, "{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]},"
                "\"b\":{\"dtype\":\"BF16\",\"shape\":[65536],\"data_offsets\":[131072,262144]}}",
             data, 262144);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    float *out = tu_alloc(65536, sizeof *out);
    for (int which = 0; which < 2; which++) {
        ck_assert_int_eq(ssm_tensor_file_read_f32(f, which ? "b" : "h", out, 65536), SSM_OK);
        int64_t bad = 0;
        for (uint32_t i = 0; i < 65536; i++) {
            double r = which ? ref_bf16((uint16_t)i) : ref_half((uint16_t)i);
            float x = out[i];
            int ok;
            if (isnan(r))
                ok = isnan(x) && (signbit(x) != 0) == ((i >> 15) != 0);
            else
                ok = (double)x == r && (signbit(x) != 0) == (signbit(r) != 0);
            if (!ok && bad++ < 5)
                fprintf(stderr, "%s 0x%04x: got %a want %a\n", which ? "bf16" : "f16",
                        i, (double)x, r);
        }
        /* exact conversions: the tolerance is 0 mismatches */
        ck_assert_msg(bad == 0, "%lld of 65536 %s patterns differ from the ldexp formula",
                      (long long)bad, which ? "BF16" : "F16");
        /* BF16 is the top half of the float: bit-exact, NaN payloads too */
        if (which)
            for (uint32_t i = 0; i < 65536; i++) {
                uint32_t u;
                memcpy(&u, &out[i], 4);
                ck_assert_uint_eq(u, i << 16);
            }
    }
    ssm_tensor_file_close(f);
    free(out);
    free(all);
    free(data);
    rm_tmpdir();
}
END_TEST

/* ---- the library's writer ---------------------------------------------- */

START_TEST(test_writer)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "w.safetensors");
    tu_rng r = {77};
    float x[15];
    tu_fill_normal_f(&r, x, 15, 1.0);
    uint16_t h[3] = {0x3C00, 0x0001, 0xFC00}, bf[2] = {0x3F80, 0x7F80};
    int64_t sx[2] = {3, 5}, sh[1] = {3}, sb[2] = {1, 2};
    ssm_tensor_desc t[4] = {
        {"weird \"name\"\n\\", SSM_DTYPE_F16, 1, sh, h},
        {"x", SSM_DTYPE_F32, 2, sx, x},
        {"b", SSM_DTYPE_BF16, 2, sb, bf},
        {"s", SSM_DTYPE_F32, 0, NULL, &x[3]},
    };
    const char *keys[2] = {"format", "k\"ey"}, *vals[2] = {"pt", "v\001"};
    ck_assert_int_eq(ssm_safetensors_write(p, 4, t, 2, keys, vals), SSM_OK);
    /* the bytes: header length a multiple of 8 padded with spaces, data
     * after it in the given order */
    FILE *fp = fopen(p, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++)
        hl |= (uint64_t)buf[k] << (8 * k);
    ck_assert_uint_eq(hl % 8, 0);
    ck_assert_uint_eq(len, 8 + hl + 6 + 60 + 4 + 4);
    ck_assert(buf[8] == '{');
    ck_assert_mem_eq(buf + 8 + hl, h, 6);
    ck_assert_mem_eq(buf + 8 + hl + 6, x, 60);
    ck_assert_mem_eq(buf + 8 + hl + 66, bf, 4);
    ck_assert_mem_eq(buf + 8 + hl + 70, &x[3], 4);
    size_t e = 8 + hl;
    while (buf[e - 1] == ' ')
        e--;
    ck_assert(buf[e - 1] == '}');
    ck_assert_uint_lt(8 + hl - e, 8);
    /* no temporary file left beside it */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    /* read back */
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_count(f), 4);
    float o[15];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "x", o, 15), SSM_OK);
    ck_assert_mem_eq(o, x, sizeof x);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "weird \"name\"\n\\", o, 3), SSM_OK);
    ck_assert(o[0] == 1.0f && o[1] == 0x1p-24f && o[2] == -INFINITY);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "b", o, 2), SSM_OK);
    ck_assert(o[0] == 1.0f && o[1] == INFINITY);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "s", o, 1), SSM_OK);
    ck_assert(o[0] == x[3]);
    const char *v;
    ck_assert_int_eq(ssm_tensor_file_metadata(f, "k\"ey", &v), SSM_OK);
    ck_assert_str_eq(v, "v\001");
    ssm_tensor_file_close(f);
    /* overwrite in place with no tensors and no metadata */
    ck_assert_int_eq(ssm_safetensors_write(p, 0, NULL, 0, NULL, NULL), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_count(f), 0);
    ssm_tensor_file_close(f);
    /* bad arguments, table-driven: nothing written */
    int64_t neg[1] = {-1}, big[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    const char bad_utf8[] = {'a', (char)0xC0, (char)0x80, 0};
    ssm_tensor_desc dup[2] = {{"x", SSM_DTYPE_F32, 1, sh, x}, {"x", SSM_DTYPE_F32, 1, sh, x}};
    const struct { const ssm_tensor_desc d; } bad[] = {
        {{NULL, SSM_DTYPE_F32, 1, sh, x}},
        {{"__metadata__", SSM_DTYPE_F32, 1, sh, x}},
        {{"y", (ssm_dtype)9, 1, sh, x}},
        {{"y", SSM_DTYPE_F32, -1, sh, x}},
        {{"y", SSM_DTYPE_F32, 9, sh, x}},
        {{"y", SSM_DTYPE_F32, 1, NULL, x}},
        {{"y", SSM_DTYPE_F32, 1, neg, x}},
        {{"y", SSM_DTYPE_F32, 2, big, x}},
        {{"y", SSM_DTYPE_F32, 1, sh, NULL}},
        {{bad_utf8, SSM_DTYPE_F32, 1, sh, x}},
    };
    char q[300];
    tpath(q, sizeof q, "bad.safetensors");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(ssm_safetensors_write(q, 1, &bad[i].d, 0, NULL, NULL) == SSM_ERR_ARG,
                      "bad writer case %zu", i);
        ck_assert_int_eq(access(q, F_OK), -1);
    }
    ck_assert_int_eq(ssm_safetensors_write(q, 2, dup, 0, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_safetensors_write(NULL, 1, t, 0, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_safetensors_write(q, -1, t, 0, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_safetensors_write(q, 1, NULL, 0, NULL, NULL), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_safetensors_write(q, 1, t, 1, NULL, vals), SSM_ERR_ARG);
    const char *dk[2] = {"a", "a"};
    ck_assert_int_eq(ssm_safetensors_write(q, 1, t, 2, dk, vals), SSM_ERR_ARG);
    ck_assert_int_eq(access(q, F_OK), -1);
    /* an unwritable place: IO, and no temporary file */
    ck_assert_int_eq(ssm_safetensors_write("/nonexistent-dir/x.safetensors", 1, t, 0,
                                           NULL, NULL), SSM_ERR_IO);
    rm_tmpdir();
}
END_TEST

/* ---- sharded: model.safetensors.index.json ----------------------------- */

START_TEST(test_sharded)
{
    make_tmpdir();
    char p[300], idx[300];
    const float a[2] = {1.0f, 2.0f}, b[3] = {3.0f, 4.0f, 5.0f};
    tpath(p, sizeof p, "model-00001-of-00002.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"__metadata__\":{\"format\":\"pt\"},"
                "\"unlisted\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
             (const float[3]){1.0f, 2.0f, 9.0f}, 12);
    tpath(p, sizeof p, "model-00002-of-00002.safetensors");
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", b, 12);
    tpath(idx, sizeof idx, "model.safetensors.index.json");
    const char *good = "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
                       "\"b\":\"model-00002-of-00002.safetensors\","
                       "\"a\":\"model-00001-of-00002.safetensors\"}}\n";
    tu_write_bytes(idx, good, strlen(good));
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, idx), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_count(f), 2);   /* the weight_map's names */
    ssm_tensor_info info;
    ck_assert_int_eq(ssm_tensor_file_at(f, 0, &info), SSM_OK);
    ck_assert_str_eq(info.name, "b");
    float o[3];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "a", o, 2), SSM_OK);
    ck_assert_mem_eq(o, a, sizeof a);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "b", o, 3), SSM_OK);
    ck_assert_mem_eq(o, b, sizeof b);
    ck_assert_int_eq(ssm_tensor_file_find(f, "unlisted", &info), SSM_ERR_FORMAT);
    const char *v;
    ck_assert_int_eq(ssm_tensor_file_metadata(f, "format", &v), SSM_OK);
    ssm_tensor_file_close(f);
    /* bad indexes, table-driven */
    const struct { const char *text; ssm_status want; } bad[] = {
        /* a name mapped to a shard that lacks it */
        {"{\"weight_map\":{\"b\":\"model-00001-of-00002.safetensors\"}}", SSM_ERR_FORMAT},
        /* a missing shard */
        {"{\"weight_map\":{\"a\":\"model-00009-of-00009.safetensors\"}}", SSM_ERR_IO},
        /* a shard outside the folder */
        {"{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}}", SSM_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"/etc/passwd\"}}", SSM_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"..\"}}", SSM_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"\"}}", SSM_ERR_FORMAT},
        /* the same name twice */
        {"{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
         "\"a\":\"model-00001-of-00002.safetensors\"}}", SSM_ERR_FORMAT},
        {"{\"weight_map\":[]}", SSM_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":1}}", SSM_ERR_FORMAT},
        {"{\"metadata\":{}}", SSM_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"", SSM_ERR_FORMAT},
        {"{\"weight_map\":{}} x", SSM_ERR_FORMAT},
        /* a shard that is itself an index (not a safetensors file) */
        {"{\"weight_map\":{\"a\":\"model.safetensors.index.json\"}}", SSM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_write_bytes(idx, bad[i].text, strlen(bad[i].text));
        f = (ssm_tensor_file *)1;
        ssm_status st = ssm_tensor_file_open(&f, idx);
        ck_assert_msg(st == bad[i].want, "index case %zu: %d, want %d", i, st, bad[i].want);
        ck_assert_ptr_null(f);
    }
    /* an empty weight_map is an empty model */
    tu_write_bytes(idx, "{\"weight_map\":{}}", 17);
    ck_assert_int_eq(ssm_tensor_file_open(&f, idx), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_count(f), 0);
    ssm_tensor_file_close(f);
    rm_tmpdir();
}
END_TEST

/* ---- bad files, table-driven --------------------------------------------- */

#define T1 "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"

static const struct {
    const char *why, *hdr;
    size_t dlen;
    ssm_status want;
} bad_headers[] = {
    {"invalid JSON", "{\"a\":{" T1 "[0,8]}", 8, SSM_ERR_FORMAT},
    {"not an object", "[1,2,3]", 0, SSM_ERR_FORMAT},
    {"entry not an object", "{\"a\":[0,8]}", 8, SSM_ERR_FORMAT},
    {"duplicate names", "{\"a\":{" T1 "[0,8]},\"a\":{" T1 "[8,16]}}", 16, SSM_ERR_FORMAT},
    {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, SSM_ERR_FORMAT},
    {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, SSM_ERR_FORMAT},
    {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, SSM_ERR_FORMAT},
    {"metadata not an object", "{\"__metadata__\":\"x\"}", 0, SSM_ERR_FORMAT},
    {"end beyond the data", "{\"a\":{" T1 "[0,8]}}", 7, SSM_ERR_FORMAT},
    {"begin beyond the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8, SSM_ERR_FORMAT},
    {"inverted offsets", "{\"a\":{" T1 "[8,0]}}", 8, SSM_ERR_FORMAT},
    {"overlapping", "{\"a\":{" T1 "[0,8]},\"b\":{" T1 "[4,12]}}", 12, SSM_ERR_FORMAT},
    {"same range twice", "{\"a\":{" T1 "[0,8]},\"b\":{" T1 "[0,8]}}", 8, SSM_ERR_FORMAT},
    {"size not dtype x shape", "{\"a\":{" T1 "[0,12]}}", 12, SSM_ERR_FORMAT},
    {"size not dtype x shape (F16)", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"unknown dtype", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"unsupported dtype F64", "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"dim as a string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"shape overflowing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"shape overflowing in bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 8, SSM_ERR_FORMAT},
    {"huge offset", "{\"a\":{" T1 "[1e300,1e300]}}", 8, SSM_ERR_FORMAT},
    {"negative offset", "{\"a\":{" T1 "[-8,0]}}", 8, SSM_ERR_FORMAT},
    {"three offsets", "{\"a\":{" T1 "[0,4,8]}}", 8, SSM_ERR_FORMAT},
    {"one offset", "{\"a\":{" T1 "[8]}}", 8, SSM_ERR_FORMAT},
    {"no offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, SSM_ERR_FORMAT},
    {"no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"no dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SSM_ERR_FORMAT},
    {"text after the JSON", "{\"a\":{" T1 "[0,8]}} {}", 8, SSM_ERR_FORMAT},
    {"invalid UTF-8 name", "{\"a\xff\":{" T1 "[0,8]}}", 8, SSM_ERR_FORMAT},
    {"overlong UTF-8", "{\"a\xc0\xaf\":{" T1 "[0,8]}}", 8, SSM_ERR_FORMAT},
    {"surrogate in UTF-8", "{\"a\xed\xa0\x80\":{" T1 "[0,8]}}", 8, SSM_ERR_FORMAT},
    {"header not starting with {", " {\"a\":{" T1 "[0,8]}}", 8, SSM_ERR_FORMAT},
    {"deep nesting", "{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0, SSM_ERR_FORMAT},
};

START_TEST(test_bad_headers)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "bad.safetensors");
    unsigned char zero[64] = {0};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        write_st(p, bad_headers[i].hdr, zero, bad_headers[i].dlen);
        ssm_tensor_file *f = (ssm_tensor_file *)1;
        ssm_status st = ssm_tensor_file_open(&f, p);
        ck_assert_msg(st == bad_headers[i].want, "%s: status %d (%s), want %d",
                      bad_headers[i].why, st, ssm_status_string(st), bad_headers[i].want);
        ck_assert_ptr_null(f);
    }
    /* the same header valid, to show the table's cases fail for their reason */
    write_st(p, "{\"a\":{" T1 "[0,8]},\"b\":{" T1 "[8,16]}}", zero, 16);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ssm_tensor_file_close(f);
    rm_tmpdir();
}
END_TEST

START_TEST(test_bad_lengths)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "bad.safetensors");
    ssm_tensor_file *f = (ssm_tensor_file *)1;
    /* missing, a directory: IO */
    tpath(p, sizeof p, "missing.safetensors");
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_IO);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(ssm_tensor_file_open(&f, tmpdir), SSM_ERR_IO);
    ck_assert_int_eq(ssm_tensor_file_open(&f, "/dev/zero"), SSM_ERR_IO);
    tpath(p, sizeof p, "fifo");
    ck_assert_int_eq(mkfifo(p, 0600), 0);   /* must not block the open */
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_IO);
    tpath(p, sizeof p, "bad.safetensors");
    /* empty, shorter than the length field */
    tu_write_bytes(p, "", 0);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_FORMAT);
    tu_write_bytes(p, "\x02\0\0\0\0\0\0", 7);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_FORMAT);
    /* header length beyond the file, huge, 2^64 - 1, zero, over the limit */
    const uint64_t lens[] = {40, UINT64_C(1) << 62, UINT64_MAX, 0, 1, 100000001};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        unsigned char b[40] = "........{\"a\":{\"dtype\":\"F32\"}}";
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)(lens[i] >> (8 * k));
        tu_write_bytes(p, b, sizeof b);
        ck_assert_msg(ssm_tensor_file_open(&f, p) == SSM_ERR_FORMAT, "length %llu",
                      (unsigned long long)lens[i]);
        ck_assert_ptr_null(f);
    }
    /* a length over the 100 MB limit in a file that holds it (sparse) */
    FILE *fp = fopen(p, "wb");
    ck_assert_ptr_nonnull(fp);
    unsigned char b[9] = {0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0, '{'};   /* 100000001 */
    fwrite(b, 1, 9, fp);
    ck_assert_int_eq(fseek(fp, 100000100L, SEEK_SET), 0);
    fputc('}', fp);
    fclose(fp);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_FORMAT);
    rm_tmpdir();
}
END_TEST

/* A safetensors header of 19280 = 0x4B50 bytes: the file starts with the
 * bytes "PK" (0x50 0x4B) like a zip, and must still open as safetensors. */
START_TEST(test_pk_length)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "pk.safetensors");
    char *hdr = tu_alloc(19281, 1);
    const char *e = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    memset(hdr, ' ', 19280);
    memcpy(hdr, e, strlen(e));
    const float one = 1.0f;
    write_st(p, hdr, &one, 4);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    float o;
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "a", &o, 1), SSM_OK);
    ck_assert(o == 1.0f);
    ssm_tensor_file_close(f);
    /* and 123 = '{': the length's first byte looks like an index */
    hdr[123] = 0;
    for (size_t k = strlen(e); k < 123; k++)
        hdr[k] = ' ';
    write_st(p, hdr, &one, 4);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ssm_tensor_file_close(f);
    free(hdr);
    rm_tmpdir();
}
END_TEST

/* A small valid file cut at every byte: each prefix is malformed. */
START_TEST(test_truncated_every_byte)
{
    make_tmpdir();
    char p[300], q[300];
    tpath(p, sizeof p, "full.safetensors");
    tpath(q, sizeof q, "cut.safetensors");
    const float data[5] = {1, 2, 3, 4, 5};
    size_t len;
    unsigned char *img = st_image("{\"__metadata__\":{\"a\":\"b\"},"
                                  "\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                                  "\"y\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[12,20]}}",
                                  data, 20, &len);
    tu_write_bytes(p, img, len);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ssm_tensor_file_close(f);
    for (size_t k = 0; k < len; k++) {
        tu_write_bytes(q, img, k);
        f = (ssm_tensor_file *)1;
        ssm_status st = ssm_tensor_file_open(&f, q);
        ck_assert_msg(st == SSM_ERR_FORMAT, "cut at %zu of %zu: %d", k, len, st);
        ck_assert_ptr_null(f);
    }
    free(img);
    rm_tmpdir();
}
END_TEST

/* ---- S4D layer from the s4 repository's parameter names --------------- */

START_TEST(test_s4d_load)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "s4d.safetensors");
    enum { H = 3, N = 5, L = 64 };
    tu_rng r = {4242};
    float log_dt[H], log_a[H * N], a_im[H * N], c[H * N * 2], d[H];
    for (int h = 0; h < H; h++) {
        log_dt[h] = (float)tu_range(&r, log(1e-3), log(1e-1));
        d[h] = (float)tu_normal(&r);
    }
    for (int k = 0; k < H * N; k++) {
        log_a[k] = (float)(log(0.5) + 0.3 * tu_normal(&r));
        a_im[k] = (float)(3.14159265358979323846 * (k % N) + 0.1 * tu_normal(&r));
        c[2 * k] = (float)tu_normal(&r);
        c[2 * k + 1] = (float)tu_normal(&r);
    }
    int64_t sh_h[1] = {H}, sh_hn[2] = {H, N}, sh_c[3] = {H, N, 2};
    ssm_tensor_desc t[5] = {
        {"layers.0.D", SSM_DTYPE_F32, 1, sh_h, d},
        {"layers.0.kernel.log_dt", SSM_DTYPE_F32, 1, sh_h, log_dt},
        {"layers.0.kernel.log_A_real", SSM_DTYPE_F32, 2, sh_hn, log_a},
        {"layers.0.kernel.A_imag", SSM_DTYPE_F32, 2, sh_hn, a_im},
        {"layers.0.kernel.C", SSM_DTYPE_F32, 3, sh_c, c},
    };
    ck_assert_int_eq(ssm_safetensors_write(p, 5, t, 0, NULL, NULL), SSM_OK);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ssm_s4d_layer *layer;
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, "layers.0.", SSM_ZOH), SSM_OK);
    int64_t hh, nn;
    ck_assert_int_eq(ssm_s4d_layer_info(layer, &hh, &nn, NULL, NULL), SSM_OK);
    ck_assert_int_eq(hh, H);
    ck_assert_int_eq(nn, N);
    double complex lam[H * N], cc[H * N], bb[H * N];
    double dt[H];
    float dd[H];
    ck_assert_int_eq(ssm_s4d_layer_get_params(layer, lam, dt, bb, cc, dd), SSM_OK);
    /* the module's parametrization, evaluated here: exact up to exp's ulp */
    for (int h = 0; h < H; h++) {
        TU_CHECK_ERR(fabs(dt[h] - exp((double)log_dt[h])) / exp((double)log_dt[h]),
                     2 * DBL_EPSILON, "dt[%d]", h);
        ck_assert(dd[h] == d[h]);
    }
    for (int k = 0; k < H * N; k++) {
        double re = -exp((double)log_a[k]);
        TU_CHECK_ERR(fabs(creal(lam[k]) - re) / fabs(re), 2 * DBL_EPSILON, "Re lambda[%d]", k);
        ck_assert(cimag(lam[k]) == (double)a_im[k]);
        ck_assert(creal(cc[k]) == (double)c[2 * k] && cimag(cc[k]) == (double)c[2 * k + 1]);
        ck_assert(creal(bb[k]) == 1.0 && cimag(bb[k]) == 0.0);
    }
    /* the kernel against the s4 module's formula in long double:
     * K[l] = 2 Re sum_n C_n (exp(dt A_n) - 1) / A_n exp(dt A_n l).
     * The layer rounds Ad, Bd, 2C to float (eps_f/2 each) and takes powers
     * Ad^l (l rounding steps), then rounds K: each term of the sum is off by
     * at most (l + 4) eps_f of its magnitude, so
     * |K - K_ref| <= (l + 4) eps_f 2 sum_n |C_n Bd_n| |Ad_n|^l. */
    float *K = tu_alloc(H * L, sizeof *K);
    ck_assert_int_eq(ssm_s4d_layer_kernel(layer, L, K), SSM_OK);
    double worst = 0;
    for (int h = 0; h < H; h++)
        for (int l = 0; l < L; l++) {
            long double complex acc = 0;
            long double mag = 0, dtl = expl((long double)log_dt[h]);
            for (int n = 0; n < N; n++) {
                int k = h * N + n;
                long double complex A = tu_cmplxl(-expl((long double)log_a[k]), a_im[k]);
                long double complex C = tu_cmplxl(c[2 * k], c[2 * k + 1]);
                long double complex term = C * (cexpl(dtl * A) - 1) / A * cexpl(dtl * A * l);
                acc += term;
                mag += cabsl(term);
            }
            double ref = (double)(2 * creall(acc));
            double bound = (l + 4) * FLT_EPSILON * 2 * (double)mag + FLT_MIN;
            double ratio = fabs(K[h * L + l] - ref) / bound;
            if (ratio > worst)
                worst = ratio;
        }
    printf("s4d_load: kernel vs s4 formula, worst error/bound = %.3f\n", worst);
    TU_CHECK_ERR(worst, 1.0, "S4D kernel");
    ssm_s4d_layer_destroy(layer);
    free(K);
    /* no prefix: nothing called "D" -> FORMAT; bad arguments */
    layer = (ssm_s4d_layer *)1;
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, NULL, SSM_ZOH), SSM_ERR_FORMAT);
    ck_assert_ptr_null(layer);
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, "layers.1.", SSM_ZOH), SSM_ERR_FORMAT);
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, NULL, "", SSM_ZOH), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_layer_load(NULL, f, "", SSM_ZOH), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, "layers.0.", (ssm_disc)9), SSM_ERR_ARG);
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, "layers.0.", SSM_BILINEAR), SSM_OK);
    ssm_s4d_layer_destroy(layer);
    ssm_tensor_file_close(f);
    /* mis-shaped or non-finite parameters: FORMAT, table-driven */
    int64_t sh_h2[1] = {H + 1}, sh_c2[3] = {H, N, 3}, sh_hn2[2] = {H, N + 1};
    float big[64] = {0}, inf_dt[H] = {1000.0f, 0.0f, 0.0f};
    const struct { int which; ssm_tensor_desc d; } mis[] = {
        {0, {"layers.0.D", SSM_DTYPE_F32, 1, sh_h2, big}},
        {1, {"layers.0.kernel.log_dt", SSM_DTYPE_F32, 1, sh_h2, big}},
        {1, {"layers.0.kernel.log_dt", SSM_DTYPE_F32, 2, sh_hn, big}},
        {1, {"layers.0.kernel.log_dt", SSM_DTYPE_F32, 1, sh_h, inf_dt}},   /* exp overflows */
        {3, {"layers.0.kernel.A_imag", SSM_DTYPE_F32, 2, sh_hn2, big}},
        {4, {"layers.0.kernel.C", SSM_DTYPE_F32, 3, sh_c2, big}},
        {4, {"layers.0.kernel.C", SSM_DTYPE_F32, 2, sh_hn, big}},
    };
    for (size_t i = 0; i < sizeof mis / sizeof mis[0]; i++) {
        ssm_tensor_desc u[5];
        memcpy(u, t, sizeof u);
        u[mis[i].which] = mis[i].d;
        ck_assert_int_eq(ssm_safetensors_write(p, 5, u, 0, NULL, NULL), SSM_OK);
        ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
        layer = (ssm_s4d_layer *)1;
        ssm_status st = ssm_s4d_layer_load(&layer, f, "layers.0.", SSM_ZOH);
        ck_assert_msg(st == SSM_ERR_FORMAT, "mis-shaped case %zu: %d", i, st);
        ck_assert_ptr_null(layer);
        ssm_tensor_file_close(f);
    }
    rm_tmpdir();
}
END_TEST

/* A file cut short after it was opened: read_f32 reports SSM_ERR_IO (it
 * reads through pread, so no SIGBUS from the mapping). */
START_TEST(test_shrunk_after_open)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "s.safetensors");
    float x[1024];
    for (int i = 0; i < 1024; i++)
        x[i] = (float)i;
    uint16_t h[1024] = {0};
    int64_t sh[1] = {1024};
    ssm_tensor_desc t[2] = {{"x", SSM_DTYPE_F32, 1, sh, x}, {"h", SSM_DTYPE_BF16, 1, sh, h}};
    ck_assert_int_eq(ssm_safetensors_write(p, 2, t, 0, NULL, NULL), SSM_OK);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ck_assert_int_eq(truncate(p, 16), 0);
    float o[1024];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "x", o, 1024), SSM_ERR_IO);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "h", o, 1024), SSM_ERR_IO);
    ssm_tensor_file_close(f);
    rm_tmpdir();
}
END_TEST

/* Many threads reading one open file (reentrant reads). */
START_TEST(test_concurrent_reads)
{
    make_tmpdir();
    char p[300];
    tpath(p, sizeof p, "c.safetensors");
    enum { M = 4096 };
    uint16_t *h = tu_alloc(M, sizeof *h);
    for (int i = 0; i < M; i++)
        h[i] = (uint16_t)(i * 7);
    int64_t sh[1] = {M};
    ssm_tensor_desc t = {"h", SSM_DTYPE_F16, 1, sh, h};
    ck_assert_int_eq(ssm_safetensors_write(p, 1, &t, 0, NULL, NULL), SSM_OK);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    int bad = 0;
    #pragma omp parallel for reduction(+:bad)
    for (int rep = 0; rep < 64; rep++) {
        float *o = malloc(M * sizeof *o);
        if (!o || ssm_tensor_file_read_f32(f, "h", o, M) != SSM_OK)
            bad++;
        else
            for (int i = 0; i < M; i++) {
                double r = ref_half(h[i]);
                if (!(isnan(r) ? isnan(o[i]) : (double)o[i] == r))
                    bad++;
            }
        free(o);
    }
    ck_assert_int_eq(bad, 0);
    ssm_tensor_file_close(f);
    /* concurrent opens (JSON parsing is serialized inside) */
    #pragma omp parallel for reduction(+:bad)
    for (int rep = 0; rep < 64; rep++) {
        ssm_tensor_file *g;
        if (ssm_tensor_file_open(&g, p) != SSM_OK || ssm_tensor_file_count(g) != 1)
            bad++;
        ssm_tensor_file_close(g);
    }
    ck_assert_int_eq(bad, 0);
    free(h);
    rm_tmpdir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_read_basic);
    tcase_add_test(tc, test_half_bf16_all);
    tcase_add_test(tc, test_writer);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_bad_lengths);
    tcase_add_test(tc, test_truncated_every_byte);
    tcase_add_test(tc, test_pk_length);
    tcase_add_test(tc, test_s4d_load);
    tcase_add_test(tc, test_concurrent_reads);
    tcase_add_test(tc, test_shrunk_after_open);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
