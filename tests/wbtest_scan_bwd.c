/* ctest-labels: scan;train */
/*
 * wbtest_scan_bwd.c -- white-box tests of the selective scan backward: the
 * checkpoint interval changes no bit (1, primes, 64, len, the automatic
 * one), every instruction set's kernels agree with finite differences and
 * with each other to rounding, and the automatic interval is as documented.
 */
#include <ssm.h>
#include "scan/selective_bwd_internal.h"
#include "scan_bwd_ref.h"

typedef struct wgrads {
    ssm_scan_grads g;
    float *buf;
    int64_t total;
} wgrads;

/* All nine gradients in one buffer (the problem has every option). */
static void wg_make(wgrads *W, const bprob *p)
{
    const int64_t nx = p->batch * p->dim * p->len;
    const int64_t nbc = p->batch * p->ngroups * p->dstate * p->len;
    const int64_t ns = p->batch * p->dim * p->dstate;
    W->total = 4 * nx + 2 * nbc + p->dim * p->dstate + 2 * p->dim + ns;
    W->buf = tu_alloc((size_t)W->total, sizeof(float));
    float *q = W->buf;
    W->g.du = q; q += nx;
    W->g.ddelta = q; q += nx;
    W->g.dz = q; q += nx;
    W->g.dB = q; q += nbc;
    W->g.dC = q; q += nbc;
    W->g.dA = q; q += p->dim * p->dstate;
    W->g.dD = q; q += p->dim;
    W->g.ddelta_bias = q; q += p->dim;
    W->g.dh0 = q;
}

START_TEST(chunk_changes_no_bit)
{
    static const int64_t Ls[] = { 1, 5, 97, 300 };
    const int64_t L = Ls[_i];
    bprob p;
    bp_make(&p, 2, 12, 16, L, 2, BO_ALL, 31u + (uint64_t)_i);
    const ssm_scan_args a = bp_args(&p);
    wgrads ref;
    wg_make(&ref, &p);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &ref.g, 0,
                                                     SSM_SCAN_ISA_AUTO), SSM_OK);
    const int64_t chunks[] = { 1, 2, 7, 13, 64, L, L + 5 };
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        wgrads W;
        wg_make(&W, &p);
        ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &W.g, chunks[c],
                                                         SSM_SCAN_ISA_AUTO), SSM_OK);
        ck_assert_msg(!memcmp(W.buf, ref.buf, (size_t)ref.total * sizeof(float)),
                      "L=%lld: chunk %lld differs from the automatic one",
                      (long long)L, (long long)chunks[c]);
        free(W.buf);
    }
    free(ref.buf);
    bp_free(&p);
}
END_TEST

/* Each ISA this CPU runs: against finite differences (sampled), and the
 * same to rounding as the generic kernels. */
START_TEST(every_isa_matches_finite_differences)
{
    const int isa = _i;
    if (!ssmi_scan_isa_ok(isa)) {
        printf("isa %d not supported here: skipped\n", isa);
        return;
    }
    bprob p;
    bp_make(&p, 1, 9, 17, 71, 3, BO_ALL, 8u);
    const ssm_scan_args a = bp_args(&p);
    wgrads W, Gn;
    wg_make(&W, &p);
    wg_make(&Gn, &p);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &W.g, 16, isa), SSM_OK);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &Gn.g, 16,
                                                     SSM_SCAN_ISA_GENERIC), SSM_OK);
    float *g[9] = { W.g.du, W.g.ddelta, W.g.dA, W.g.dB, W.g.dC, W.g.dD, W.g.dz,
                    W.g.ddelta_bias, W.g.dh0 };
    double *x[9] = { p.ud, p.deltad, p.Ad, p.Bd, p.Cd, p.Dd, p.zd, p.biasd, p.h0d };
    const int64_t nx = 9 * 71, nbc = 3 * 17 * 71;
    const int64_t n[9] = { nx, nx, 9 * 17, nbc, nbc, 9, nx, 9, 9 * 17 };
    double worst = 0.0;
    for (int i = 0; i < 9; i++)
        worst = fmax(worst, bp_check(&p, "grad", g[i], x[i], n[i], 30, "isa"));
    printf("isa %d: worst error/bound vs finite differences %.3f\n", isa, worst);
    TU_CHECK_ERR(worst, 1.0, "isa %d", isa);
    /* Elementwise the kernels compute the same operations; only the
     * compiler's choice of vector width differs, so agreement is expected
     * to be exact or within the same rounding bound. */
    const double rel = tu_relerr_ff(W.buf, Gn.buf, W.total);
    const double bound = 4.0 * (71 + 17 + 4) * FLT_EPSILON;
    printf("isa %d vs generic: relative difference %.2e (ratio %.3f)\n", isa, rel, rel / bound);
    TU_CHECK_ERR(rel, bound, "isa %d vs generic", isa);
    free(W.buf);
    free(Gn.buf);
    bp_free(&p);
}
END_TEST

/* N = 16 with whole blocks of channels (16 channels, one group: blocks of
 * 4, run two channels per pass by the paired adjoint): every checkpoint
 * interval and every ISA this CPU runs give the bytes of the automatic
 * interval on the generic kernels. */
START_TEST(paired_channels_change_no_bit)
{
    /* _i = 1: 533 channels, 33 vector blocks in partial groups of 2 and 5
     * channels in row blocks (no paired adjoint there: N = 16 but blocks of
     * 1); one span, pass 1 fused with pass 2.
     * _i = 0: one span at every interval, so pass 1 keeps the decays of
     * the vector block for pass 2 (BWD_CV_KEEPQ) at every interval but
     * len, whose one chunk computes them in pass 2: the same bytes.
     * _i = 2: 3 vector blocks over 32805 steps, longer than a span
     * (BWD_SPAN_FLOATS: 32768 steps at N = 16): two spans (pass 1 for all
     * blocks first, dt kept per block), one at chunk len. */
    bprob p;
    if (_i == 0)
        bp_make(&p, 2, 16, 16, 97, 1, BO_ALL, 600u);
    else if (_i == 1)
        bp_make(&p, 1, 533, 16, 1601, 1, BO_ALL, 601u);
    else
        bp_make(&p, 1, 48, 16, 32805, 1, BO_ALL, 602u);
    const ssm_scan_args a = bp_args(&p);
    wgrads ref;
    wg_make(&ref, &p);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &ref.g, 0,
                                                     SSM_SCAN_ISA_GENERIC), SSM_OK);
    const int64_t chunks[] = { 0, 1, 7, 64, 97, p.len };
    for (int isa = SSM_SCAN_ISA_GENERIC; isa <= SSM_SCAN_ISA_AVX512; isa++) {
        if (!ssmi_scan_isa_ok(isa))
            continue;
        for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
            wgrads W;
            wg_make(&W, &p);
            ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, p.dhl, &W.g,
                                                             chunks[c], isa), SSM_OK);
            ck_assert_msg(!memcmp(W.buf, ref.buf, (size_t)ref.total * sizeof(float)),
                          "dim %lld: isa %d, chunk %lld differs", (long long)p.dim, isa,
                          (long long)chunks[c]);
            free(W.buf);
        }
    }
    free(ref.buf);
    bp_free(&p);
}
END_TEST

/* du, ddelta and dz of more than 32 MiB together go out through streaming
 * stores: each 16-channel slice (a problem of its own, below the threshold:
 * plain stores) gives the same bytes, outputs aligned or not. */
START_TEST(streamed_outputs_same_bytes)
{
    const int64_t dim = 64, N = 16, L = 65536 + 5, Q = 16, nx = dim * L;
    float *buf = tu_alloc((size_t)(4 * nx + 2 * N * L + 4 * dim * N + 2 * dim), sizeof(float));
    float *u = buf, *delta = u + nx, *z = delta + nx, *dy = z + nx, *B = dy + nx;
    float *C = B + N * L, *A = C + N * L, *h0 = A + dim * N, *dhl = h0 + dim * N;
    float *D = dhl + dim * N, *bias = D + dim;
    uint64_t st = 99;
    for (int64_t i = 0; i < 4 * nx + 2 * N * L + 2 * dim * N; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (float)((double)(st >> 40) / 8388608.0 - 1.0);   /* [-1, 1) */
    }
    for (int64_t i = 0; i < nx; i++)
        delta[i] = -4.0f + 2.0f * delta[i];   /* dt = softplus about 0.002 - 0.13 */
    for (int64_t i = 0; i < dim * N; i++)
        A[i] = -1.0f - 7.0f * fabsf(A[i]);
    for (int64_t d = 0; d < dim; d++) {
        D[d] = 0.5f;
        bias[d] = 0.01f * (float)d;
    }
    float *big = tu_alloc((size_t)(3 * nx + 16), sizeof(float));
    float *sub = tu_alloc((size_t)(3 * Q * L), sizeof(float));
    float *pd = tu_alloc((size_t)(2 * (dim * N + 2 * dim + dim * N)), sizeof(float));
    float *pq = pd + dim * N + 2 * dim + dim * N;   /* dA, dD, dbias, dh0 */
    for (int isa = SSM_SCAN_ISA_AVX2; isa <= SSM_SCAN_ISA_AVX512; isa++) {
        if (!ssmi_scan_isa_ok(isa)) {
            printf("isa %d not supported here: skipped\n", isa);
            continue;
        }
        for (int off = 0; off < 2; off++) {
            float *o = big + off;
            ssm_scan_args a;
            memset(&a, 0, sizeof a);
            a.batch = 1; a.dim = dim; a.dstate = N; a.len = L; a.ngroups = 1;
            a.u = u; a.delta = delta; a.A = A; a.B = B; a.C = C; a.D = D; a.z = z;
            a.delta_bias = bias; a.delta_softplus = 1; a.h0 = h0;
            ssm_scan_grads g = { o, o + nx, pd, NULL, NULL, pd + dim * N, o + 2 * nx,
                                 pd + dim * N + dim, pd + dim * N + 2 * dim };
            ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, dy, dhl, &g, 0, isa), SSM_OK);
            for (int64_t d0 = 0; d0 < dim; d0 += Q) {
                ssm_scan_args b = a;
                b.dim = Q;
                b.u += d0 * L; b.delta += d0 * L; b.z += d0 * L; b.A += d0 * N;
                b.D += d0; b.delta_bias += d0; b.h0 += d0 * N;
                ssm_scan_grads h = { sub, sub + Q * L, pq, NULL, NULL, pq + Q * N, sub + 2 * Q * L,
                                     pq + Q * N + Q, pq + Q * N + 2 * Q };
                ck_assert_int_eq(ssmi_selective_scan_backward_ex(&b, dy + d0 * L, dhl + d0 * N, &h,
                                                                 0, isa), SSM_OK);
                for (int w = 0; w < 3; w++)
                    ck_assert_msg(!memcmp(sub + w * Q * L, o + w * nx + d0 * L,
                                          (size_t)(Q * L) * sizeof(float)),
                                  "isa %d, offset %d, channels %lld..: output %d differs",
                                  isa, off, (long long)d0, w);
                ck_assert(!memcmp(pq, pd + d0 * N, (size_t)(Q * N) * sizeof(float)));
                ck_assert(!memcmp(pq + Q * N, pd + dim * N + d0, (size_t)Q * sizeof(float)));
                ck_assert(!memcmp(pq + Q * N + Q, pd + dim * N + dim + d0, (size_t)Q * sizeof(float)));
                ck_assert(!memcmp(pq + Q * N + 2 * Q, pd + dim * N + 2 * dim + d0 * N,
                                  (size_t)(Q * N) * sizeof(float)));
            }
        }
    }
    free(buf); free(big); free(sub); free(pd);
}
END_TEST

START_TEST(auto_chunk_is_documented)
{
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk(1, 16), 1);
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk(64, 16), 64);
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk(2048, 16), 256);
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk(2048, 64), 64);
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk(8192, 64), 128);
    ck_assert_int_eq(ssmi_scan_bwd_auto_chunk((int64_t)1 << 20, 16), 1024);
    for (int64_t N = 1; N <= 256; N *= 4)
        for (int64_t L = 1; L < 100000; L = L * 3 + 1) {
            const int64_t c = ssmi_scan_bwd_auto_chunk(L, N);
            ck_assert(c >= 1 && c <= L);
            ck_assert(c == L || (c >= 64 && c * N >= 4096));
            ck_assert(c == L || c * c >= L);   /* >= sqrt(len) */
            ck_assert((c & (c - 1)) == 0 || c == L);
        }
    /* bad chunk */
    bprob p;
    bp_make(&p, 1, 2, 2, 3, 1, 0, 1u);
    const ssm_scan_args a = bp_args(&p);
    wgrads W;
    wg_make(&W, &p);
    W.g.dD = W.g.dz = W.g.ddelta_bias = NULL;
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, NULL, &W.g, -1,
                                                     SSM_SCAN_ISA_AUTO), SSM_ERR_ARG);
    ck_assert_int_eq(ssmi_selective_scan_backward_ex(&a, p.dy, NULL, &W.g, 0, 99), SSM_ERR_ARG);
    free(W.buf);
    bp_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan_bwd_wb");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, chunk_changes_no_bit, 0, 4);
    tcase_add_loop_test(tc, every_isa_matches_finite_differences, SSM_SCAN_ISA_GENERIC,
                        SSM_SCAN_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, paired_channels_change_no_bit, 0, 3);
    tcase_add_test(tc, auto_chunk_is_documented);
    tcase_add_test(tc, streamed_outputs_same_bytes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
