/* fuzz_conv: FFT convolution (include/ssm/conv.h): plans of fuzzed sizes,
 * ssm_conv_plan_info, ssm_conv_execute, kernel spectra and
 * ssm_conv_execute_spectrum (the same bytes as ssm_conv_execute, as
 * documented), a spectrum used with a plan of another shape, and the double
 * twin ssm_conv_execute_d.  For finite inputs the output is compared with a
 * direct O(L^2) convolution in double against conv.h's bound
 * eps_float log2(N) ||K[c]|| ||u[b,c]|| (times a safety factor 16). */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int smooth7(int64_t N)
{
    static const int p[] = { 2, 3, 5, 7 };
    for (int i = 0; i < 4; i++) while (N % p[i] == 0) N /= p[i];
    return N == 1;
}

/* Direct reference and the bound of conv.h for every output. */
static void check_direct(int64_t batch, int64_t H, int64_t L, int64_t N, const float *K,
                         const float *D, const float *u, const float *y)
{
    double lg = log2((double)N) + 1;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < H; c++) {
            const float *kc = K + c * L, *ub = u + (b * H + c) * L;
            double nk = 0, nu = 0;
            for (int64_t t = 0; t < L; t++) nk += (double)kc[t] * kc[t], nu += (double)ub[t] * ub[t];
            double bound = 16 * FLT_EPSILON * lg * sqrt(nk) * sqrt(nu);
            for (int64_t t = 0; t < L; t++) {
                double r = 0;
                for (int64_t s = 0; s <= t; s++) r += (double)kc[s] * ub[t - s];
                double du = D ? (double)D[c] * ub[t] : 0;
                double tol = bound + 4 * FLT_EPSILON * (fabs(r) + fabs(du)) + 1e-37;
                double err = fabs((double)y[(b * H + c) * L + t] - (r + du));
                FD_CHECK(err <= tol, "y[%lld][%lld][%lld]: error %.3e > bound %.3e (ratio %.2f)",
                         (long long)b, (long long)c, (long long)t, err, tol, err / tol);
            }
        }
}

static int moderate(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) if (!(fabsf(x[i]) < 1e15f)) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_in d = { data, size };
    int64_t H = fd_size(&d, 4), L = fd_size(&d, 80), batch = fd_size(&d, 3);
    int nul = fd_u8(&d) % 32, useD = fd_bool(&d);
    ssm_conv_plan *plan = NULL;
    ssm_status st = ssm_conv_plan_create(nul == 0 ? NULL : &plan, H, L);
    if (nul == 0 || fd_bytes(H, L, 1, 4) < 0 || L > INT32_MAX / 2) {
        FD_EXPECT_ARG(st, "NULL plan, bad sizes, or 2L beyond int");
        FD_CHECK(plan == NULL, "plan set on error");
        return 0;
    }
    FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_FFTW, SSM_ERR_ARG);
    if (st != SSM_OK) { FD_CHECK(plan == NULL, "plan set on error"); return 0; }
    int64_t ih = 0, il = 0, N = 0;
    FD_CHECK(ssm_conv_plan_info(plan, &ih, &il, &N) == SSM_OK, "plan_info");
    FD_CHECK(ih == H && il == L && N >= 2 * L && smooth7(N), "plan_info: %lld %lld %lld", (long long)ih, (long long)il, (long long)N);
    FD_EXPECT_ARG(ssm_conv_plan_info(NULL, &ih, &il, &N), "NULL plan");
    if (H > 4 || L > 80) { ssm_conv_plan_destroy(plan); return 0; }  /* valid, too big to run here */

    int64_t bb = fd_bytes(batch, H, L, 4);
    int dummy = bb < 0;
    if (!dummy && batch > 3) batch = 1 + batch % 3, bb = fd_bytes(batch, H, L, 4);
    float *K = fd_alloc(H * L * 4), *D = fd_alloc(H * 4);
    float *u = fd_alloc(dummy ? 64 : bb), *y = fd_alloc(dummy ? 64 : bb), *y2 = fd_alloc(dummy ? 64 : bb);
    fd_fill_f(&d, K, H * L); fd_fill_f(&d, D, H);
    if (!dummy) fd_fill_f(&d, u, batch * H * L);
    st = ssm_conv_execute(nul == 1 ? NULL : plan, batch, nul == 2 ? NULL : K, useD ? D : NULL,
                          nul == 3 ? NULL : u, nul == 4 ? NULL : y);
    /* A non-finite D is refused by every convolution (conv.h, as ssm_diag_scan). */
    const int Dbad = useD && !fd_all_finite_f(D, H);
    if (dummy || (nul >= 1 && nul <= 4) || Dbad) FD_EXPECT_ARG(st, "NULL, bad batch or non-finite D");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        if (st == SSM_OK && moderate(K, H * L) && moderate(D, H) && moderate(u, batch * H * L))
            check_direct(batch, H, L, N, K, useD ? D : NULL, u, y);
    }

    ssm_conv_spectrum *spec = NULL;
    st = ssm_conv_spectrum_create(nul == 5 ? NULL : &spec, nul == 6 ? NULL : plan, nul == 7 ? NULL : K);
    if (nul >= 5 && nul <= 7) FD_EXPECT_ARG(st, "NULL argument");
    else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
    if (st == SSM_OK) {
        if (!dummy && nul > 7) {
            ssm_status s2 = ssm_conv_execute_spectrum(plan, spec, batch, useD ? D : NULL, u, y2);
            if (Dbad) FD_EXPECT_ARG(s2, "non-finite D");
            else FD_ALLOWED(s2, SSM_OK, SSM_ERR_NOMEM);
            if (s2 == SSM_OK && nul > 4)
                FD_CHECK(fd_same_f(y, y2, batch * H * L), "execute_spectrum differs from execute");
        }
        /* The spectrum with a plan of another length must be refused. */
        ssm_conv_plan *other = NULL;
        if (ssm_conv_plan_create(&other, H, L + 1) == SSM_OK) {
            float *yo = fd_alloc(H * (L + 1) * 4), *uo = fd_alloc(H * (L + 1) * 4);
            FD_EXPECT_ARG(ssm_conv_execute_spectrum(other, spec, 1, NULL, uo, yo), "spectrum of another plan");
            free(yo); free(uo);
            ssm_conv_plan_destroy(other);
        }
        ssm_conv_spectrum_destroy(spec);
    } else FD_CHECK(spec == NULL, "spectrum set on error");

    /* The double twin, on the same data promoted. */
    if (!dummy) {
        int64_t n = batch * H * L;
        double *Kd = fd_alloc(H * L * 8), *Dd = fd_alloc(H * 8), *ud = fd_alloc(n * 8), *yd = fd_alloc(n * 8);
        for (int64_t i = 0; i < H * L; i++) Kd[i] = K[i];
        for (int64_t i = 0; i < H; i++) Dd[i] = D[i];
        for (int64_t i = 0; i < n; i++) ud[i] = u[i];
        st = ssm_conv_execute_d(batch, H, L, nul == 8 ? NULL : Kd, useD ? Dd : NULL, ud, yd);
        if (nul == 8 || Dbad) FD_EXPECT_ARG(st, "NULL K or non-finite D");
        else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_FFTW);
        free(Kd); free(Dd); free(ud); free(yd);
    }
    FD_EXPECT_ARG(ssm_conv_execute_d(batch, H, INT64_MAX, K == NULL ? NULL : (double *)K, NULL,
                                     (double *)u, (double *)y), "overflowing L");
    free(K); free(D); free(u); free(y); free(y2);
    ssm_conv_plan_destroy(plan);
    return 0;
}
