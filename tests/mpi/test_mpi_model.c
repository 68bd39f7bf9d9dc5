/* ctest-labels: mpi */
/*
 * test_mpi_model.c -- ssm_mpi_model_prefill: one prompt spread over the
 * ranks against the single-process language model (ssm_model_forward on
 * the whole prompt) and against the literal double-precision reference of
 * tests/model_tiny.h; the state after the prompt on the last rank (the
 * saved slot's floats) and three decoding steps continued from it; a
 * prefix already in rank 0's slot; argument errors agreed on every rank.
 *
 * Models: tests/fixtures/model (mamba_ssm Mamba-1 checkpoint made by
 * PyTorch), tests/fixtures/model2 (Mamba-2), and tiny checkpoints written
 * here (model_tiny.h) with in/out-proj biases, no conv bias, LayerNorm and
 * an untied head, the variants the MPI block stages gain for models.
 *
 * Tolerance (derived as test_model.c's logits_bound: per layer the float
 * forward rounds dot products of lengths Dm, K, Di (twice), R and a
 * recurrence over L steps, errors growing like sqrt(n) u for these random
 * weights, 16 u for silu, exp, softplus and rsqrt, sqrt(Dm) u for the final
 * norm and head, factor 4 for the products' amplification): against the
 * double reference that bound; against the single-process float forward
 * twice it (both sides' errors); the state after the prompt (an
 * intermediate of the same network) twice it as well.  The MPI path's
 * extra roundings, the carry combination and the fix-up (a few u per
 * element), sit inside the same per-layer budget.  Ratios are printed.
 */
#define _DEFAULT_SOURCE 1   /* mkdtemp */
#include <dirent.h>
#include <float.h>
#include <unistd.h>
#include "mpi_testutil.h"
#include "../model_tiny.h"
#include "../tu_files.h"

#ifndef SSM_SOURCE_DIR
#define SSM_SOURCE_DIR "."
#endif

#define U32 (FLT_EPSILON / 2)
/* Mamba-2 models over MPI (mpi_mamba2.c). */
#define SSM_TEST_MPI_MAMBA2 1

static double lm_bound(int64_t nl, int64_t dm, int64_t K, int64_t di, int64_t R,
                       int64_t L)
{
    return 4.0 * U32 * ((double)nl * (sqrt((double)dm) + sqrt((double)K) +
                                      2 * sqrt((double)di) + sqrt((double)R) +
                                      sqrt((double)L) + 16) + sqrt((double)dm));
}

/* Rank 0 writes the tiny model m into a fresh directory, every rank gets
 * its name. */
static void write_tiny(const tiny_model *m, char *dir, size_t n)
{
    if (mt_rank() == 0) {
        snprintf(dir, n, "/tmp/ssm_test_mpi_model_XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(tiny_write(m, dir, SSM_DTYPE_F32, 0, 0), 0);
    }
    MPI_Bcast(dir, (int)n, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* Normwise relative difference of two float vectors. */
static double rel_ff(const float *a, const float *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The floats of a saved slot, and its token count. */
static float *slot_floats(const ssm_model_state *s, int64_t *nf, int64_t *ntok)
{
    int64_t nb = 0;
    ck_assert_int_eq(ssm_model_state_save(s, 0, NULL, 0, &nb), SSM_OK);
    unsigned char *b = malloc((size_t)nb);
    ck_assert_int_eq(ssm_model_state_save(s, 0, b, nb, &nb), SSM_OK);
    *nf = (nb - 64 - 8) / 4;
    float *f = malloc((size_t)*nf * sizeof *f);
    memcpy(f, b + 64, (size_t)*nf * sizeof *f);   /* little-endian host */
    uint64_t nt = 0;
    for (int i = 0; i < 8; i++) nt |= (uint64_t)b[56 + i] << (8 * i);
    *ntok = (int64_t)nt;
    free(b);
    return f;
}

/* Split pattern 4: uneven with the LAST block empty (R >= 2). */
static int64_t split(int pattern, int R, int64_t base, int64_t *len)
{
    if (pattern < 4)
        return mt_split(pattern, R, base, len);
    int64_t tot = 0;
    for (int r = 0; r < R; r++) {
        len[r] = (R >= 2 && r == R - 1) ? 0 : 2 + (r * 3 + 1) % 7;
        tot += len[r];
    }
    return tot;
}

/* One prefill of a prompt of the given split against the single process.
 * ref_lg: double reference logits of every position of prefix+prompt, or
 * NULL.  prefix tokens go into rank 0's slot first (and the reference's). */
static void check_prefill(ssm_model *model, const char *what, int pattern,
                          int64_t base, int64_t npre, const double *ref_lg,
                          uint64_t seed)
{
    const int R = mt_size(), rank = mt_rank();
    int64_t lens[16], off = 0;
    const int64_t Ltot = split(pattern, R, base, lens);
    for (int r = 0; r < rank; r++) off += lens[r];
    ssm_model_info info;
    ssm_model_info_init(&info);
    ck_assert_int_eq(ssm_model_get_info(model, &info), SSM_OK);
    const int64_t V = info.vocab;
    int32_t *tok = malloc((size_t)(npre + Ltot + 3) * sizeof *tok);
    tiny_fill_tokens(tok, npre + Ltot + 3, V, seed);
    const int32_t *prompt = tok + npre, *dec = tok + npre + Ltot;

    /* Single process: prefix, prompt, 3 decoding steps. */
    ssm_model_state *rs = NULL, *ms = NULL;
    ck_assert_int_eq(ssm_model_state_create(&rs, model, 1), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&ms, model, 2), SSM_OK);
    float *rl = malloc((size_t)(4 * V) * sizeof *rl), *ml = malloc((size_t)(4 * V) * sizeof *ml);
    if (npre > 0)
        ck_assert_int_eq(ssm_model_forward(model, rs, 1, npre, tok, NULL), SSM_OK);
    ck_assert_int_eq(ssm_model_forward(model, rs, 1, Ltot, prompt, rl), SSM_OK);
    int64_t nfr, ntr;
    float *rstate = slot_floats(rs, &nfr, &ntr);
    for (int s = 0; s < 3; s++)
        ck_assert_int_eq(ssm_model_forward(model, rs, 1, 1, dec + s, rl + (s + 1) * V), SSM_OK);

    /* Rank 0 holds the prefix in its slot 0. */
    if (rank == 0 && npre > 0)
        ck_assert_int_eq(ssm_model_forward(model, ms, 1, npre, tok, NULL), SSM_OK);
    for (int64_t i = 0; i < V; i++) ml[i] = NAN;
    ssm_status st = ssm_mpi_model_prefill(MPI_COMM_WORLD, model, ms, 0, lens[rank],
                                          lens[rank] ? prompt + off : NULL, ml);
    MT_EXPECT(st == SSM_OK, "%s: prefill: %s", what, ssm_status_string(st));
    const double bound = lm_bound(info.n_layer, info.d_model, info.d_conv, info.d_inner,
                                  info.dt_rank, npre + Ltot + 3);
    if (st == SSM_OK && rank == R - 1) {
        MT_ERR(rel_ff(ml, rl, V), 2 * bound, "%s pattern %d: logits vs single process",
               what, pattern);
        if (ref_lg)
            MT_ERR(tu_relerr_f(ml, ref_lg + (npre + Ltot - 1) * V, V), bound,
                   "%s pattern %d: logits vs double reference", what, pattern);
        int64_t nfm, ntm;
        float *mstate = slot_floats(ms, &nfm, &ntm);
        MT_EXPECT(nfm == nfr && ntm == ntr, "%s: state size %lld/%lld tokens %lld/%lld",
                  what, (long long)nfm, (long long)nfr, (long long)ntm, (long long)ntr);
        if (nfm == nfr)
            MT_ERR(rel_ff(mstate, rstate, nfr), 2 * bound, "%s pattern %d: state", what, pattern);
        free(mstate);
        /* Decoding continues on the last rank from the MPI state. */
        for (int s = 0; s < 3; s++) {
            ssm_status ds = ssm_model_forward(model, ms, 1, 1, dec + s, ml + (s + 1) * V);
            MT_EXPECT(ds == SSM_OK, "%s: decode %d: %s", what, s, ssm_status_string(ds));
            MT_ERR(rel_ff(ml + (s + 1) * V, rl + (s + 1) * V, V), 2 * bound,
                   "%s pattern %d: decode step %d", what, pattern, s);
            if (ref_lg)
                MT_ERR(tu_relerr_f(ml + (s + 1) * V, ref_lg + (npre + Ltot + s) * V, V),
                       bound, "%s pattern %d: decode %d vs double", what, pattern, s);
        }
    }
    free(rstate);
    free(rl); free(ml); free(tok);
    ssm_model_state_destroy(rs);
    ssm_model_state_destroy(ms);
}

static void run_patterns(ssm_model *model, const char *what, const tiny_model *tm)
{
    const int64_t bases[] = { 13, 0, 0, 0, 0, 300 };
    const int pats[] = { 0, 1, 2, 3, 4, 0 };
    for (int i = 0; i < 6; i++) {
        for (int64_t npre = 0; npre <= 5; npre += 5) {
            int64_t lens[16];
            const int64_t Ltot = split(pats[i], mt_size(), bases[i], lens);
            double *ref = NULL;
            if (tm) {
                /* The double reference of every position (same tokens). */
                int32_t *tok = malloc((size_t)(npre + Ltot + 3) * sizeof *tok);
                tiny_fill_tokens(tok, npre + Ltot + 3, tm->V, 77 + (uint64_t)i);
                ref = malloc((size_t)((npre + Ltot + 3) * tm->V) * sizeof *ref);
                tiny_reference(tm, (int)(npre + Ltot + 3), tok, ref);
                free(tok);
            }
            check_prefill(model, what, pats[i], bases[i], npre, ref, 77 + (uint64_t)i);
            free(ref);
        }
    }
}

START_TEST(test_fixture_mamba1)
{
    ssm_model *model = NULL;
    ck_assert_int_eq(ssm_model_load(&model, SSM_SOURCE_DIR "/tests/fixtures/model"), SSM_OK);
    run_patterns(model, "fixture model (Mamba-1)", NULL);
    ssm_model_destroy(model);
    mt_finish("prefill, fixture Mamba-1 model");
}
END_TEST

START_TEST(test_tiny_variants)
{
    /* bias, conv_bias, rms, tied */
    const int var[][4] = { { 1, 0, 0, 0 }, { 0, 1, 1, 1 }, { 1, 1, 0, 1 } };
    for (int v = 0; v < 3; v++) {
        tiny_model tm;
        tiny_make(&tm, 500 + (uint64_t)v, 2, var[v][0], var[v][1], var[v][2], var[v][3], 0);
        char dir[64] = "";
        write_tiny(&tm, dir, sizeof dir);
        ssm_model *model = NULL;
        ck_assert_int_eq(ssm_model_load(&model, dir), SSM_OK);
        char what[96];
        snprintf(what, sizeof what, "tiny bias %d conv_bias %d rms %d tied %d",
                 var[v][0], var[v][1], var[v][2], var[v][3]);
        run_patterns(model, what, &tm);
        ssm_model_destroy(model);
        MPI_Barrier(MPI_COMM_WORLD);
        if (mt_rank() == 0) tu_rm_tree(dir);
        tiny_free(&tm);
    }
    mt_finish("prefill, tiny models (biases, LayerNorm, untied head)");
}
END_TEST

#if SSM_TEST_MPI_MAMBA2
START_TEST(test_fixture_mamba2)
{
    ssm_model *model = NULL;
    ck_assert_int_eq(ssm_model_load(&model, SSM_SOURCE_DIR "/tests/fixtures/model2"), SSM_OK);
    run_patterns(model, "fixture model2 (Mamba-2)", NULL);
    ssm_model_destroy(model);
    mt_finish("prefill, fixture Mamba-2 model");
}
END_TEST
#endif

/* Identical bytes: a second run, and 1 vs 2 OpenMP threads. */
START_TEST(test_repeat_bytes)
{
    const char *dirs[] = { SSM_SOURCE_DIR "/tests/fixtures/model",
                           SSM_SOURCE_DIR "/tests/fixtures/model2" };
    for (int d = 0; d < 1 + SSM_TEST_MPI_MAMBA2; d++) {
        ssm_model *model = NULL;
        ck_assert_int_eq(ssm_model_load(&model, dirs[d]), SSM_OK);
        int64_t lens[16], V = 0, off = 0;
        ck_assert_int_eq(ssm_model_dims(model, NULL, NULL, &V), SSM_OK);
        const int64_t Ltot = split(1, mt_size(), 0, lens);
        for (int r = 0; r < mt_rank(); r++) off += lens[r];
        int32_t *tok = malloc((size_t)Ltot * sizeof *tok);
        tiny_fill_tokens(tok, Ltot, V, 5);
        float *lg[3];
        unsigned char *sb[3];
        int64_t nb = 0;
        for (int run = 0; run < 3; run++) {
            tu_set_threads(run == 2 ? 2 : 1);
            ssm_model_state *s = NULL;
            ck_assert_int_eq(ssm_model_state_create(&s, model, 1), SSM_OK);
            lg[run] = calloc((size_t)V, sizeof(float));
            ssm_status st = ssm_mpi_model_prefill(MPI_COMM_WORLD, model, s, 0,
                                                  lens[mt_rank()], tok + off, lg[run]);
            MT_EXPECT(st == SSM_OK, "repeat: %s", ssm_status_string(st));
            ck_assert_int_eq(ssm_model_state_save(s, 0, NULL, 0, &nb), SSM_OK);
            sb[run] = malloc((size_t)nb);
            ck_assert_int_eq(ssm_model_state_save(s, 0, sb[run], nb, &nb), SSM_OK);
            ssm_model_state_destroy(s);
        }
        tu_set_threads(1);
        if (mt_rank() == mt_size() - 1)
            for (int run = 1; run < 3; run++) {
                MT_EXPECT(!memcmp(lg[0], lg[run], (size_t)V * sizeof(float)),
                          "model %d run %d: logits bytes differ", d, run);
                MT_EXPECT(!memcmp(sb[0], sb[run], (size_t)nb), "model %d run %d: state bytes differ",
                          d, run);
            }
        for (int run = 0; run < 3; run++) { free(lg[run]); free(sb[run]); }
        free(tok);
        ssm_model_destroy(model);
    }
    mt_finish("prefill, identical bytes (rerun, 2 threads)");
}
END_TEST

/* Every bad argument on ONE rank: SSM_ERR_ARG on every rank, the last
 * rank's slot untouched. */
START_TEST(test_errors)
{
    const int R = mt_size(), rank = mt_rank();
    ssm_model *model = NULL, *other = NULL;
    ck_assert_int_eq(ssm_model_load(&model, SSM_SOURCE_DIR "/tests/fixtures/model"), SSM_OK);
    ck_assert_int_eq(ssm_model_load(&other, SSM_SOURCE_DIR "/tests/fixtures/model2"), SSM_OK);
    /* A model of the same sizes with other small weights. */
    tiny_model tm1, tm2;
    tiny_make(&tm1, 1, 2, 0, 1, 1, 1, 0);
    tiny_make(&tm2, 2, 2, 0, 1, 1, 1, 0);
    char d1[64] = "", d2[64] = "";
    write_tiny(&tm1, d1, sizeof d1);
    write_tiny(&tm2, d2, sizeof d2);
    ssm_model *t1 = NULL, *t2 = NULL;
    ck_assert_int_eq(ssm_model_load(&t1, d1), SSM_OK);
    ck_assert_int_eq(ssm_model_load(&t2, d2), SSM_OK);
    int64_t V = 0;
    ck_assert_int_eq(ssm_model_dims(model, NULL, NULL, &V), SSM_OK);
    ssm_model_state *s = NULL, *s_other = NULL;
    ck_assert_int_eq(ssm_model_state_create(&s, model, 2), SSM_OK);
    ck_assert_int_eq(ssm_model_state_create(&s_other, other, 1), SSM_OK);
    int32_t tok[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, badtok[2] = { 1, (int32_t)V };
    float lg[64];
    enum { NCASE = 9 };
    for (int cs = 0; cs < NCASE; cs++) {
        for (int who = 0; who < R; who++) {
            const ssm_model *mdl = model;
            ssm_model_state *st = s;
            int64_t slot = 0, len = 4;
            const int32_t *tk = tok;
            int me = rank == who;
            const char *what = "";
            switch (cs) {
            case 0: what = "NULL model"; if (me) mdl = NULL; break;
            case 1: what = "len < 0"; if (me) len = -1; break;
            case 2: what = "NULL tokens"; if (me) tk = NULL; break;
            case 3: what = "token id = vocab"; if (me) { tk = badtok; len = 2; } break;
            case 4: what = "token id < 0"; if (me) { badtok[0] = -1; tk = badtok; len = 2; } break;
            case 5:
                what = "slot out of range";
                if (me && (who == 0 || who == R - 1)) slot = 2;
                break;
            case 6:
                what = "state of another model";
                if (me && (who == 0 || who == R - 1)) st = s_other;
                break;
            case 7: what = "every block empty"; len = 0; tk = NULL; break;
            default: what = "another model (same sizes)";
                     mdl = t1; if (me && R > 1) mdl = t2; break;
            }
            int64_t nt_before = 0;
            ck_assert_int_eq(ssm_model_state_tokens(s, 0, &nt_before), SSM_OK);
            ssm_status e = ssm_mpi_model_prefill(MPI_COMM_WORLD, mdl, st, slot, len, tk, lg);
            badtok[0] = 1;
            int expect_arg = cs != 8 || R > 1;
            if (cs == 5 || cs == 6)
                expect_arg = who == 0 || who == R - 1;
            if (expect_arg)
                MT_EXPECT(e == SSM_ERR_ARG, "%s on rank %d: got %s", what, who,
                          ssm_status_string(e));
            else
                MT_EXPECT(e == SSM_OK, "%s (control) on rank %d: got %s", what, who,
                          ssm_status_string(e));
            int64_t nt = 0;
            ck_assert_int_eq(ssm_model_state_tokens(s, 0, &nt), SSM_OK);
            if (expect_arg)
                MT_EXPECT(nt == nt_before, "%s: slot changed after an error", what);
            ssm_model_state_reset(s);
        }
    }
    /* MPI_COMM_NULL: SSM_ERR_ARG on the calling rank alone. */
    MT_EXPECT(ssm_mpi_model_prefill(MPI_COMM_NULL, model, s, 0, 4, tok, lg) == SSM_ERR_ARG,
              "MPI_COMM_NULL");
    ssm_model_state_destroy(s);
    ssm_model_state_destroy(s_other);
    ssm_model_destroy(model);
    ssm_model_destroy(other);
    ssm_model_destroy(t1);
    ssm_model_destroy(t2);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) { tu_rm_tree(d1); tu_rm_tree(d2); }
    tiny_free(&tm1);
    tiny_free(&tm2);
    mt_finish("prefill, argument errors");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("mpi_model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fixture_mamba1);
    tcase_add_test(tc, test_tiny_variants);
#if SSM_TEST_MPI_MAMBA2
    tcase_add_test(tc, test_fixture_mamba2);
#endif
    tcase_add_test(tc, test_repeat_bytes);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return mt_run(s);
}
