/* ctest-labels: io */
/*
 * test_io_torch.c -- PyTorch checkpoints (torch.save zip + restricted
 * pickle, src/io).
 *
 *  - tests/fixtures/pytorch_model.bin (and _p4, pickle protocol 4), made by
 *    tests/fixtures/make_pt_fixture.py with Debian's torch: every tensor
 *    against the values torch itself read back (pytorch_model.expected,
 *    exact hex floats: the bound is 0 differing bits), including F16
 *    subnormals/inf/nan, BF16, a storage offset, a shared storage, 0-d and
 *    empty tensors; an S4D layer loaded from it against the kernel torch
 *    computed in float64 with the s4 module's formula;
 *  - refusals: a non-contiguous tensor, a pickle that would call os.system
 *    (made by torch.save; and hand-written ones naming os/posix/builtins/
 *    subprocess globals with a command that would create a file: the file
 *    must not exist afterwards), unknown opcodes, malformed pickles,
 *    storages out of range, compressed or encrypted entries, big-endian
 *    archives: SSM_ERR_FORMAT, table-driven;
 *  - (the fixture cut at every byte and damaged at every byte: wbtest_io.c,
 *    in memory).
 */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ssm.h>
#include "testutil.h"
#include "tu_files.h"

static char tmpdir[256];

static void make_tmpdir(void) { tu_make_tmpdir(tmpdir, sizeof tmpdir, "ssm_test_iot"); }
static void rm_tmpdir(void) { ck_assert_int_eq(tu_rm_tree(tmpdir), 0); }

/* ---- the PyTorch-made fixture ------------------------------------------- */

/* Check every tensor of the file against pytorch_model.expected. */
static void check_expected(const char *bin)
{
    char p[512];
    tu_fixture_path(p, sizeof p, "pytorch_model.expected");
    size_t len;
    char *text = (char *)tu_read_all(p, &len);
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, bin), SSM_OK);
    int64_t count = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], dt[8];
        int ndim, pos;
        ck_assert_int_eq(sscanf(line, "%127s %7s %d%n", name, dt, &ndim, &pos), 3);
        char *q = line + pos;
        int64_t shape[8], numel = 1;
        for (int d = 0; d < ndim; d++) {
            shape[d] = strtoll(q, &q, 10);
            numel *= shape[d];
        }
        while (*q == ' ' || *q == ':')
            q++;
        ssm_tensor_info info;
        ck_assert_int_eq(ssm_tensor_file_at(f, count, &info), SSM_OK);
        ck_assert_str_eq(info.name, name);   /* the state dict's order */
        ck_assert_int_eq(info.dtype, strcmp(dt, "F32") == 0 ? SSM_DTYPE_F32
                                     : strcmp(dt, "F16") == 0 ? SSM_DTYPE_F16
                                                              : SSM_DTYPE_BF16);
        ck_assert_int_eq(info.ndim, ndim);
        for (int d = 0; d < ndim; d++)
            ck_assert_int_eq(info.shape[d], shape[d]);
        ck_assert_int_eq(info.numel, numel);
        float *out = tu_alloc((size_t)numel + 1, sizeof *out);
        ck_assert_int_eq(ssm_tensor_file_read_f32(f, name, out, numel), SSM_OK);
        int64_t bad = 0;
        for (int64_t i = 0; i < numel; i++) {
            double want = strtod(q, &q);
            if (isnan(want) ? !isnan(out[i])
                            : ((double)out[i] != want || !signbit(out[i]) != !signbit(want)))
                bad++;
        }
        ck_assert_msg(bad == 0, "%s: %lld of %lld values differ from torch's", name,
                      (long long)bad, (long long)numel);
        free(out);
        count++;
    }
    ck_assert_int_eq(ssm_tensor_file_count(f), count);
    /* tied names share one storage: the same bytes in the mapping */
    const void *a, *b;
    ck_assert_int_eq(ssm_tensor_file_data(f, "tied_a", &a, NULL), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_data(f, "tied_b", &b, NULL), SSM_OK);
    ck_assert_ptr_eq(a, b);
    ssm_tensor_file_close(f);
    free(text);
}

START_TEST(test_fixture_values)
{
    char p[512];
    tu_fixture_path(p, sizeof p, "pytorch_model.bin");
    check_expected(p);
    tu_fixture_path(p, sizeof p, "pytorch_model_p4.bin");
    check_expected(p);
}
END_TEST

START_TEST(test_fixture_s4d)
{
    char p[512];
    tu_fixture_path(p, sizeof p, "pytorch_model.bin");
    ssm_tensor_file *f;
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_OK);
    ssm_s4d_layer *layer;
    ck_assert_int_eq(ssm_s4d_layer_load(&layer, f, "", SSM_ZOH), SSM_OK);
    tu_fixture_path(p, sizeof p, "s4d_kernel.expected");
    size_t len;
    char *text = (char *)tu_read_all(p, &len), *q = text;
    int H = (int)strtol(q, &q, 10), N = (int)strtol(q, &q, 10), L = (int)strtol(q, &q, 10);
    ck_assert(H == 3 && N == 4 && L == 16);
    float *K = tu_alloc((size_t)(H * L), sizeof *K);
    ck_assert_int_eq(ssm_s4d_layer_kernel(layer, L, K), SSM_OK);
    /* magnitudes of the kernel's terms, from the stored parameters */
    float log_dt[3], log_a[12], a_im[12], c[24];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "kernel.log_dt", log_dt, 3), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "kernel.log_A_real", log_a, 12), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "kernel.A_imag", a_im, 12), SSM_OK);
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "kernel.C", c, 24), SSM_OK);
    /* Bound as in test_io.c: float Ad, Bd, 2C and l powers of Ad, then K
     * rounded: (l + 4) eps_f 2 sum_n |C_n Bd_n| |Ad_n|^l. */
    double worst = 0;
    for (int h = 0; h < H; h++)
        for (int l = 0; l < L; l++) {
            double ref = strtod(q, &q), mag = 0, dt = exp((double)log_dt[h]);
            for (int n = 0; n < N; n++) {
                int k = h * N + n;
                double complex A = tu_cmplx(-exp((double)log_a[k]), a_im[k]);
                double complex Cn = tu_cmplx(c[2 * k], c[2 * k + 1]);
                mag += cabs(Cn * (cexp(dt * A) - 1) / A) * exp(creal(dt * A) * l);
            }
            double bound = (l + 4) * FLT_EPSILON * 2 * mag + FLT_MIN;
            double ratio = fabs(K[h * L + l] - ref) / bound;
            if (ratio > worst)
                worst = ratio;
        }
    printf("torch fixture: S4D kernel vs torch float64, worst error/bound = %.3f\n", worst);
    TU_CHECK_ERR(worst, 1.0, "S4D kernel from pytorch_model.bin");
    free(K);
    free(text);
    ssm_s4d_layer_destroy(layer);
    ssm_tensor_file_close(f);
}
END_TEST

START_TEST(test_fixture_refusals)
{
    char p[512];
    ssm_tensor_file *f = (ssm_tensor_file *)1;
    tu_fixture_path(p, sizeof p, "noncontig.bin");
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_FORMAT);
    ck_assert_ptr_null(f);
    /* evil.bin would run os.system("touch ssm_io_evil_ran") in the cwd */
    make_tmpdir();
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    tu_fixture_path(p, sizeof p, "evil.bin");
    ck_assert_int_eq(access(p, R_OK), 0);
    ck_assert_int_eq(ssm_tensor_file_open(&f, p), SSM_ERR_FORMAT);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(access("ssm_io_evil_ran", F_OK), -1);
    ck_assert_int_eq(chdir(cwd), 0);
    rm_tmpdir();
}
END_TEST

/* ---- hand-made archives and pickles ------------------------------------- */

typedef struct zent {
    const char *name;
    const void *data;
    size_t      len;
    int         method, flags;
} zent;

typedef struct bytes {
    unsigned char *b;
    size_t         n, cap;
} bytes;

static void put(bytes *s, const void *p, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = 2 * (s->n + n) + 64;
        s->b = realloc(s->b, s->cap);
        ck_assert_ptr_nonnull(s->b);
    }
    if (n)
        memcpy(s->b + s->n, p, n);
    s->n += n;
}
static void put_u16(bytes *s, unsigned v) { unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)}; put(s, b, 2); }
static void put_u32(bytes *s, uint32_t v) { put_u16(s, v & 0xFFFF); put_u16(s, v >> 16); }
static void put_c(bytes *s, int c) { unsigned char b = (unsigned char)c; put(s, &b, 1); }
static void put_s(bytes *s, const char *t) { put(s, t, strlen(t)); }

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* A zip (no zip64) of the entries, as APPNOTE 4.3 lays it out. */
static bytes make_zip(const zent *e, int n, const char *comment)
{
    bytes z = {0};
    uint32_t off[16];
    for (int i = 0; i < n; i++) {
        off[i] = (uint32_t)z.n;
        put_u32(&z, 0x04034b50u);
        put_u16(&z, 20); put_u16(&z, (unsigned)e[i].flags); put_u16(&z, (unsigned)e[i].method);
        put_u16(&z, 0); put_u16(&z, 0);
        put_u32(&z, crc32_of(e[i].data, e[i].len));
        put_u32(&z, (uint32_t)e[i].len); put_u32(&z, (uint32_t)e[i].len);
        put_u16(&z, (unsigned)strlen(e[i].name)); put_u16(&z, 0);
        put_s(&z, e[i].name);
        put(&z, e[i].data, e[i].len);
    }
    uint32_t cd = (uint32_t)z.n;
    for (int i = 0; i < n; i++) {
        put_u32(&z, 0x02014b50u);
        put_u16(&z, 20); put_u16(&z, 20); put_u16(&z, (unsigned)e[i].flags);
        put_u16(&z, (unsigned)e[i].method); put_u16(&z, 0); put_u16(&z, 0);
        put_u32(&z, crc32_of(e[i].data, e[i].len));
        put_u32(&z, (uint32_t)e[i].len); put_u32(&z, (uint32_t)e[i].len);
        put_u16(&z, (unsigned)strlen(e[i].name)); put_u16(&z, 0); put_u16(&z, 0);
        put_u16(&z, 0); put_u16(&z, 0); put_u32(&z, 0); put_u32(&z, off[i]);
        put_s(&z, e[i].name);
    }
    uint32_t cd_size = (uint32_t)z.n - cd;
    put_u32(&z, 0x06054b50u);
    put_u16(&z, 0); put_u16(&z, 0); put_u16(&z, (unsigned)n); put_u16(&z, (unsigned)n);
    put_u32(&z, cd_size); put_u32(&z, cd);
    put_u16(&z, comment ? (unsigned)strlen(comment) : 0);
    if (comment)
        put_s(&z, comment);
    return z;
}

/* pickle pieces */
static void pk_str(bytes *p, const char *s)
{
    put_c(p, 'X');
    put_u32(p, (uint32_t)strlen(s));
    put_s(p, s);
}
static void pk_int(bytes *p, int64_t v)
{
    if (v >= 0 && v < 256) {
        put_c(p, 'K');
        put_c(p, (int)v);
    } else {   /* LONG1, 8 bytes two's complement */
        put_c(p, 0x8a);
        put_c(p, 8);
        put_u32(p, (uint32_t)((uint64_t)v & 0xFFFFFFFFu));
        put_u32(p, (uint32_t)((uint64_t)v >> 32));
    }
}
static void pk_global(bytes *p, const char *mod, const char *name)
{
    put_c(p, 'c');
    put_s(p, mod);
    put_c(p, '\n');
    put_s(p, name);
    put_c(p, '\n');
}
static void pk_tuple(bytes *p, int n, const int64_t *v)
{
    put_c(p, '(');
    for (int i = 0; i < n; i++)
        pk_int(p, v[i]);
    put_c(p, 't');
}

typedef struct tspec {
    const char *stype, *key;
    int64_t     numel, offset;
    int         ndim;
    int64_t     shape[9], stride[9];
} tspec;

/* _rebuild_tensor_v2(('storage', torch.<stype>, key, 'cpu', numel), offset,
 * shape, stride, False, OrderedDict()) as torch writes it. */
static void pk_tensor(bytes *p, const tspec *t)
{
    pk_global(p, "torch._utils", "_rebuild_tensor_v2");
    put_c(p, '(');
    put_c(p, '(');
    pk_str(p, "storage");
    pk_global(p, "torch", t->stype);
    pk_str(p, t->key);
    pk_str(p, "cpu");
    pk_int(p, t->numel);
    put_c(p, 't');
    put_c(p, 'Q');
    pk_int(p, t->offset);
    pk_tuple(p, t->ndim, t->shape);
    pk_tuple(p, t->ndim, t->stride);
    put_c(p, 0x89);
    pk_global(p, "collections", "OrderedDict");
    put_c(p, ')');
    put_c(p, 'R');
    put_c(p, 't');
    put_c(p, 'R');
}

/* {'w': tensor} */
static bytes pk_state(const tspec *t)
{
    bytes p = {0};
    put_c(&p, 0x80); put_c(&p, 2);
    put_c(&p, '}');
    put_c(&p, '(');
    pk_str(&p, "w");
    pk_tensor(&p, t);
    put_c(&p, 'u');
    put_c(&p, '.');
    return p;
}

static const float storage0[6] = {0.5f, -1.25f, 2.0f, 3.5f, -4.0f, 8.0f};

/* Write arch/data.pkl = pkl and arch/data/0 = storage0 to a zip, open it. */
static ssm_status open_pickle(const void *pkl, size_t n, ssm_tensor_file **f)
{
    zent e[2] = {{"arch/data.pkl", pkl, n, 0, 0}, {"arch/data/0", storage0, sizeof storage0, 0, 0}};
    bytes z = make_zip(e, 2, NULL);
    char q[512];
    snprintf(q, sizeof q, "%s/m.bin", tmpdir);
    tu_write_bytes(q, z.b, z.n);
    free(z.b);
    *f = (ssm_tensor_file *)1;
    ssm_status st = ssm_tensor_file_open(f, q);
    if (st != SSM_OK)
        ck_assert_ptr_null(*f);
    return st;
}

static const tspec good = {"FloatStorage", "0", 6, 1, 2, {2, 2}, {2, 1}};

START_TEST(test_pickle_good)
{
    make_tmpdir();
    bytes p = pk_state(&good);
    ssm_tensor_file *f;
    ck_assert_int_eq(open_pickle(p.b, p.n, &f), SSM_OK);
    float o[4];
    ck_assert_int_eq(ssm_tensor_file_read_f32(f, "w", o, 4), SSM_OK);
    ck_assert_mem_eq(o, storage0 + 1, sizeof o);   /* offset 1 */
    ssm_tensor_file_close(f);
    free(p.b);
    /* size-1 dimensions may carry any stride (torch calls them contiguous);
     * a 0-d tensor; a zip with a comment; HalfStorage over the same bytes */
    const tspec ok[] = {
        {"FloatStorage", "0", 6, 0, 3, {1, 3, 1}, {99, 1, 7}},
        {"FloatStorage", "0", 6, 5, 0, {0}, {0}},
        {"FloatStorage", "0", 6, 6, 2, {0, 4}, {4, 1}},
        {"HalfStorage", "0", 12, 3, 1, {9}, {1}},
        {"BFloat16Storage", "0", 12, 0, 2, {3, 4}, {4, 1}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        p = pk_state(&ok[i]);
        ck_assert_msg(open_pickle(p.b, p.n, &f) == SSM_OK, "ok case %zu", i);
        ssm_tensor_file_close(f);
        free(p.b);
    }
    rm_tmpdir();
}
END_TEST

/* A pickle calling mod.name("touch <tmpdir>/pwned"), by GLOBAL (protocol 2)
 * and by STACK_GLOBAL (protocol 4): refused, and the file never appears. */
START_TEST(test_pickle_forbidden_globals)
{
    make_tmpdir();
    char cmd[600], marker[400];
    snprintf(marker, sizeof marker, "%s/pwned", tmpdir);
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    const char *g[][2] = {
        {"posix", "system"}, {"os", "system"}, {"nt", "system"},
        {"builtins", "eval"}, {"builtins", "exec"}, {"__builtin__", "eval"},
        {"builtins", "getattr"}, {"subprocess", "check_output"},
        {"subprocess", "Popen"}, {"torch", "load"}, {"torch.serialization", "load"},
        {"collections", "OrderedDictX"}, {"collection", "OrderedDict"},
        {"torch._utils", "_rebuild_tensor"}, {"torch._utils", "_rebuild_tensor_v3"},
        {"torch", "LongStorage"}, {"torch", "DoubleStorage"}, {"torch", "storage"},
        {"numpy.core.multiarray", "_reconstruct"}, {"", ""}, {"torch\nx", "y"},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        for (int way = 0; way < 2; way++) {
            bytes p = {0};
            put_c(&p, 0x80);
            put_c(&p, way ? 4 : 2);
            if (way) {
                put_c(&p, 0x8c); put_c(&p, (int)strlen(g[i][0])); put_s(&p, g[i][0]);
                put_c(&p, 0x8c); put_c(&p, (int)strlen(g[i][1])); put_s(&p, g[i][1]);
                put_c(&p, 0x93);
            } else
                pk_global(&p, g[i][0], g[i][1]);
            pk_str(&p, cmd);
            put_c(&p, 0x85);
            put_c(&p, 'R');
            put_c(&p, '.');
            ssm_tensor_file *f;
            ssm_status st = open_pickle(p.b, p.n, &f);
            ck_assert_msg(st == SSM_ERR_FORMAT, "%s.%s (way %d): %d", g[i][0], g[i][1], way, st);
            ck_assert_msg(access(marker, F_OK) == -1, "%s.%s ran!", g[i][0], g[i][1]);
            free(p.b);
        }
    rm_tmpdir();
}
END_TEST

/* Malformed pickles (raw bytes after the protocol header), table-driven. */
static const struct {
    const char *why;
    const char *b;
    size_t n;
} bad_pk[] = {
#define B(why, s) {why, s, sizeof(s) - 1}
    B("no STOP", "}"),
    B("empty", ""),
    B("STOP on an empty stack", "."),
    B("STOP inside a mark", "(}."),
    B("result not a dict", ")."),
    B("result an int", "K\x01."),
    B("BINGET of an unset slot", "}h\x05."),
    B("LONG_BINGET far away", "}j\xff\xff\xff\x7f."),
    B("LONG_BINPUT far away", "}r\xff\xff\xff\x7f."),
    B("BINPUT on an empty stack", "q\x00}."),
    B("SETITEM on a tuple", ")K\x01K\x02s."),
    B("SETITEM short of items", "}K\x01s."),
    B("SETITEMS odd count", "}(K\x01u."),
    B("SETITEMS without a mark", "}K\x01K\x02u."),
    B("TUPLE without a mark", "K\x01t."),
    B("TUPLE2 short", "}(K\x01\x86."),
    B("APPEND to a dict", "}K\x01" "a."),
    B("truncated BININT", "J\x01\x02"),
    B("truncated BININT2", "M\x01"),
    B("truncated LONG1", "\x8a\x08\x01\x02"),
    B("LONG1 of 9 bytes", "\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01."),
    B("BINUNICODE beyond the end", "X\xff\x00\x00\x00" "abc"),
    B("BINUNICODE invalid UTF-8", "}X\x02\x00\x00\x00\xc3\x28."),
    B("SHORT_BINUNICODE beyond the end", "\x8c\x09" "abc"),
    B("FRAME beyond the end", "\x95\xff\x00\x00\x00\x00\x00\x00\x00}."),
    B("PROTO 6", "\x80\x06}."),
    B("PROTO 1", "\x80\x01}."),
    B("GLOBAL without newline", "ccollections OrderedDict"),
    B("GLOBAL one line", "ccollections\n"),
    B("STACK_GLOBAL of ints", "K\x01K\x02\x93."),
    B("REDUCE of a non-callable", "X\x01\x00\x00\x00" "f)R."),
    B("REDUCE of a storage class", "ctorch\nFloatStorage\n)R."),
    B("REDUCE OrderedDict with args", "ccollections\nOrderedDict\nK\x01\x85R."),
    B("REDUCE args not a tuple", "ccollections\nOrderedDict\n}R."),
    B("_rebuild_tensor_v2 with 2 args", "ctorch._utils\n_rebuild_tensor_v2\nK\x01K\x02\x86R."),
    B("_rebuild_parameter of an int", "ctorch._utils\n_rebuild_parameter\nK\x01\x89}\x87R."),
    B("BUILD on a tuple", ")}b."),
    B("BUILD with an int state", "}K\x01" "b."),
    B("BINPERSID of a string", "X\x01\x00\x00\x00" "0Q."),
    B("BINPERSID of a 4-tuple", "(X\x07\x00\x00\x00" "storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cputQ."),
    B("BINPERSID not 'storage'", "(X\x07\x00\x00\x00" "storagxctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."),
    B("BINPERSID type OrderedDict", "(X\x07\x00\x00\x00" "storageccollections\nOrderedDict\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."),
    B("BINPERSID key an int", "(X\x07\x00\x00\x00" "storagectorch\nFloatStorage\nK\x00X\x03\x00\x00\x00" "cpuK\x01tQ."),
    B("BINPERSID negative numel", "(X\x07\x00\x00\x00" "storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuJ\xff\xff\xff\xfftQ."),
    B("dict key an int", "}K\x01K\x02s."),
    /* opcodes outside the machine */
    B("INT (text)", "I1\n."), B("LONG (text)", "L1\n."), B("FLOAT (text)", "F1.0\n."),
    B("STRING", "S'a'\n."), B("BINSTRING", "T\x01\x00\x00\x00" "a."),
    B("SHORT_BINSTRING", "U\x01" "a."), B("UNICODE", "Vabc\n."),
    B("BINBYTES", "B\x01\x00\x00\x00" "a."), B("SHORT_BINBYTES", "C\x01" "a."),
    B("BINBYTES8", "\x8e\x01\x00\x00\x00\x00\x00\x00\x00" "a."),
    B("BYTEARRAY8", "\x96\x01\x00\x00\x00\x00\x00\x00\x00" "a."),
    B("BINUNICODE8", "\x8d\x01\x00\x00\x00\x00\x00\x00\x00" "a."),
    B("INST", "iposix\nsystem\n."), B("OBJ", "(ccollections\nOrderedDict\no."),
    B("NEWOBJ", "ccollections\nOrderedDict\n)\x81."),
    B("NEWOBJ_EX", "ccollections\nOrderedDict\n)}\x92."),
    B("PERSID (text)", "P0\n."), B("DUP", "}2."), B("POP", "}}0."),
    B("POP_MARK", "}(1."), B("DICT", "(d."), B("LIST", "(l."),
    B("EXT1", "\x82\x01."), B("EXT2", "\x83\x01\x00."), B("EXT4", "\x84\x01\x00\x00\x00."),
    B("GET (text)", "}p0\ng0\n."), B("EMPTY_SET", "\x8f."), B("FROZENSET", "(\x91."),
    B("ADDITEMS", "\x8f(\x90."), B("NEXT_BUFFER", "\x97."), B("READONLY_BUFFER", "}\x98."),
    B("LONG4", "\x8b\x01\x00\x00\x00\x01."), B("FLOAT", "F0.5\n."),
    B("byte 0xff", "\xff."), B("byte 0x00", "\x00."),
#undef B
};

START_TEST(test_pickle_malformed)
{
    make_tmpdir();
    for (size_t i = 0; i < sizeof bad_pk / sizeof bad_pk[0]; i++) {
        bytes p = {0};
        if (strncmp(bad_pk[i].b, "\x80", 1) != 0) {
            put_c(&p, 0x80);
            put_c(&p, 2);
        }
        put(&p, bad_pk[i].b, bad_pk[i].n);
        ssm_tensor_file *f;
        ssm_status st = open_pickle(p.b, p.n, &f);
        ck_assert_msg(st == SSM_ERR_FORMAT, "%s: %d", bad_pk[i].why, st);
        free(p.b);
    }
    /* deep marks, long tuples and many memo slots: bounded, no crash */
    bytes p = {0};
    put_c(&p, 0x80); put_c(&p, 2);
    for (int i = 0; i < 200000; i++)
        put_c(&p, '(');
    ssm_tensor_file *f;
    ck_assert_int_eq(open_pickle(p.b, p.n, &f), SSM_ERR_FORMAT);
    p.n = 2;
    put_c(&p, '}');
    for (int i = 0; i < 100000; i++) {
        put_c(&p, 'h');   /* BINGET 0 pushes the dict again */
        put_c(&p, 0);
        if (i == 0) {
            p.n -= 2;
            put_c(&p, 'q');
            put_c(&p, 0);
        }
    }
    put_c(&p, '.');
    ck_assert_int_eq(open_pickle(p.b, p.n, &f), SSM_OK);   /* an empty dict */
    ck_assert_int_eq(ssm_tensor_file_count(f), 0);
    ssm_tensor_file_close(f);
    free(p.b);
    rm_tmpdir();
}
END_TEST

/* Tensors that do not fit their storage or are not contiguous. */
START_TEST(test_pickle_bad_tensors)
{
    make_tmpdir();
    const tspec bad[] = {
        {"FloatStorage", "7", 6, 0, 1, {6}, {1}},          /* no data/7 */
        {"FloatStorage", "0", 7, 0, 1, {7}, {1}},          /* numel beyond the entry */
        {"FloatStorage", "0", 6, 1, 1, {6}, {1}},          /* offset + size > numel */
        {"FloatStorage", "0", 6, 7, 0, {0}, {0}},          /* offset > numel */
        {"FloatStorage", "0", 6, -1, 1, {2}, {1}},         /* negative offset */
        {"FloatStorage", "0", 6, 0, 1, {-2}, {1}},         /* negative size */
        {"FloatStorage", "0", 6, 0, 2, {2, 3}, {1, 2}},    /* transposed */
        {"FloatStorage", "0", 6, 0, 2, {2, 2}, {3, 1}},    /* row gaps */
        {"FloatStorage", "0", 6, 0, 1, {3}, {2}},          /* every other */
        {"FloatStorage", "0", 6, 0, 1, {3}, {0}},          /* broadcast */
        {"FloatStorage", "0", 6, 0, 9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}},
        {"FloatStorage", "0", INT64_MAX, 0, 1, {1}, {1}},  /* numel x 4 overflows */
        {"FloatStorage", "0", 6, INT64_MAX, 1, {2}, {1}},  /* offset + size overflows */
        {"FloatStorage", "0", 6, 0, 2, {INT64_C(1) << 62, 4}, {4, 1}},
        {"HalfStorage", "0", 13, 0, 1, {13}, {1}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bytes p = pk_state(&bad[i]);
        ssm_tensor_file *f;
        ssm_status st = open_pickle(p.b, p.n, &f);
        ck_assert_msg(st == SSM_ERR_FORMAT, "bad tensor %zu: %d", i, st);
        free(p.b);
    }
    rm_tmpdir();
}
END_TEST

/* Archive-level refusals: compressed, encrypted, big-endian, ambiguous. */
START_TEST(test_zip_refusals)
{
    make_tmpdir();
    bytes p = pk_state(&good);
    char q[512];
    snprintf(q, sizeof q, "%s/z.bin", tmpdir);
    const zent ok_pkl = {"arch/data.pkl", p.b, p.n, 0, 0};
    const zent ok_st = {"arch/data/0", storage0, sizeof storage0, 0, 0};
    const struct {
        const char *why;
        zent e[3];
        int n;
        const char *comment;
        ssm_status want;
    } cases[] = {
        {"good", {ok_pkl, ok_st}, 2, NULL, SSM_OK},
        {"good with a comment", {ok_pkl, ok_st}, 2, "a comment PK\x05\x06", SSM_OK},
        {"little-endian marker", {ok_pkl, ok_st, {"arch/byteorder", "little", 6, 0, 0}}, 3, NULL, SSM_OK},
        {"big-endian marker", {ok_pkl, ok_st, {"arch/byteorder", "big", 3, 0, 0}}, 3, NULL, SSM_ERR_FORMAT},
        {"deflated data.pkl", {{"arch/data.pkl", p.b, p.n, 8, 0}, ok_st}, 2, NULL, SSM_ERR_FORMAT},
        {"deflated storage", {ok_pkl, {"arch/data/0", storage0, sizeof storage0, 8, 0}}, 2, NULL, SSM_ERR_FORMAT},
        {"encrypted storage", {ok_pkl, {"arch/data/0", storage0, sizeof storage0, 0, 1}}, 2, NULL, SSM_ERR_FORMAT},
        {"no data.pkl", {ok_st}, 1, NULL, SSM_ERR_FORMAT},
        {"data.pkl at the root", {{"data.pkl", p.b, p.n, 0, 0}, ok_st}, 2, NULL, SSM_ERR_FORMAT},
        {"two archives", {ok_pkl, ok_st, {"b/data.pkl", p.b, p.n, 0, 0}}, 3, NULL, SSM_ERR_FORMAT},
        {"storage in another archive", {ok_pkl, {"b/data/0", storage0, sizeof storage0, 0, 0}}, 2, NULL, SSM_ERR_FORMAT},
        {"duplicate entry", {ok_pkl, ok_st, ok_st}, 3, NULL, SSM_ERR_FORMAT},
        {"empty zip", {ok_pkl}, 0, NULL, SSM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes z = make_zip(cases[i].e, cases[i].n, cases[i].comment);
        tu_write_bytes(q, z.b, z.n);
        free(z.b);
        ssm_tensor_file *f = (ssm_tensor_file *)1;
        ssm_status st = ssm_tensor_file_open(&f, q);
        ck_assert_msg(st == cases[i].want, "%s: %d, want %d", cases[i].why, st, cases[i].want);
        if (st == SSM_OK) {
            float o[4];
            ck_assert_int_eq(ssm_tensor_file_read_f32(f, "w", o, 4), SSM_OK);
            ck_assert_mem_eq(o, storage0 + 1, sizeof o);
        }
        ssm_tensor_file_close(st == SSM_OK ? f : NULL);
    }
    free(p.b);
    rm_tmpdir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("io_torch");
    TCase *tc = tcase_create("torch");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_fixture_values);
    tcase_add_test(tc, test_fixture_s4d);
    tcase_add_test(tc, test_fixture_refusals);
    tcase_add_test(tc, test_pickle_good);
    tcase_add_test(tc, test_pickle_forbidden_globals);
    tcase_add_test(tc, test_pickle_malformed);
    tcase_add_test(tc, test_pickle_bad_tensors);
    tcase_add_test(tc, test_zip_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
