/* fuzz_scan: the recurrences (include/ssm/scan.h, include/ssm/lti.h):
 * ssm_selective_scan / ssm_selective_step (all optional pointers, groups,
 * softplus, state in place, the time-chunked and split-state paths of long
 * single channels), ssm_diag_scan / ssm_diag_step, ssm_lti_scan /
 * ssm_lti_step, with special values in every array.
 * Beyond the statuses: the documented step/scan identities, bit for bit
 * (NaN compared as NaN): L selective steps equal the channel-parallel scan,
 * L diagonal steps equal the diagonal scan, L LTI steps equal the LTI scan. */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_selective(fd_in *d)
{
    int64_t batch = fd_size(d, 2), dim = fd_size(d, 6), N = fd_size(d, 17), L = fd_size(d, 24);
    int g = fd_u8(d) % 4, nul = fd_u8(d) % 40, flags = fd_u8(d), inplace = fd_bool(d);
    if (fd_u8(d) % 32 == 0 && L > 0 && L < 100 && batch > 0 && dim > 0 && batch <= 8 && dim <= 8 && batch * dim <= 8)
        L += 2040 + (L & 7) * 33;   /* long single channels: the chunked and split-state paths */
    int64_t G = g == 0 ? 1 : g == 1 ? dim : g == 2 ? 2 : 3;
    int64_t bx = fd_bytes(batch, dim, L, 4), bA = fd_bytes(dim, N, 1, 4),
            bh = fd_bytes(batch, dim, N, 4), bB = fd_bytes(batch, G > 0 ? G : 1, N, 4);
    int64_t bBL = bB < 0 ? -1 : fd_bytes(bB / 4, L, 1, 4);
    int dummy = bx < 0 || bA < 0 || bh < 0 || bBL < 0;
    if (!dummy && (bx > (1 << 18) || bA > (1 << 12) || bBL > (1 << 19))) return;  /* valid, too big here */
    int bad = dummy || G < 1 || dim % (G < 1 ? 1 : G) != 0 || nul < 6;
    float *u = fd_alloc(dummy ? 64 : bx), *delta = fd_alloc(dummy ? 64 : bx), *z = fd_alloc(dummy ? 64 : bx);
    float *A = fd_alloc(dummy ? 64 : bA), *Dv = fd_alloc(dummy ? 64 : dim * 4), *bias = fd_alloc(dummy ? 64 : dim * 4);
    float *B = fd_alloc(dummy ? 64 : bBL), *C = fd_alloc(dummy ? 64 : bBL);
    float *h0 = fd_alloc(dummy ? 64 : bh), *hl = fd_alloc(dummy ? 64 : bh), *y = fd_alloc(dummy ? 64 : bx);
    if (!dummy) {
        int64_t nx = bx / 4, nB = bBL / 4;
        fd_fill_f(d, u, nx); fd_fill_f(d, delta, nx); fd_fill_f(d, z, nx);
        fd_fill_f(d, A, bA / 4); fd_fill_f(d, Dv, dim); fd_fill_f(d, bias, dim);
        fd_fill_f(d, B, nB); fd_fill_f(d, C, nB); fd_fill_f(d, h0, bh / 4);
    }
    ssm_scan_args a = {
        .batch = batch, .dim = dim, .dstate = N, .len = L, .ngroups = G,
        .u = nul == 0 ? NULL : u, .delta = nul == 1 ? NULL : delta, .A = nul == 2 ? NULL : A,
        .B = nul == 3 ? NULL : B, .C = nul == 4 ? NULL : C, .y = nul == 5 ? NULL : y,
        .D = (flags & 1) ? Dv : NULL, .z = (flags & 2) ? z : NULL,
        .delta_bias = (flags & 4) ? bias : NULL, .delta_softplus = (flags & 8) != 0,
        .h0 = (flags & 16) ? h0 : NULL, .h_last = (flags & 32) ? (inplace && (flags & 16) ? h0 : hl) : NULL,
    };
    float *h0copy = NULL;
    if (!dummy && (flags & 16)) { h0copy = fd_alloc(bh); memcpy(h0copy, h0, (size_t)bh); }
    ssm_status st = ssm_selective_scan(nul == 39 ? NULL : &a);
    if (bad || nul == 39) FD_EXPECT_ARG(st, "NULL, bad size or groups");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        int chunked = batch * dim <= 8 && L >= 2048;
        if (st == SSM_OK && !chunked) {
            /* L steps from the same initial state give the scan's bytes. */
            float *h = fd_alloc(bh), *ys = fd_alloc(bx), *ut = fd_alloc(batch * dim * 4),
                  *dt = fd_alloc(batch * dim * 4), *zt = fd_alloc(batch * dim * 4),
                  *Bt = fd_alloc(batch * G * N * 4), *Ct = fd_alloc(batch * G * N * 4), *yt = fd_alloc(batch * dim * 4);
            if (flags & 16) memcpy(h, h0copy, (size_t)bh);
            for (int64_t t = 0; t < L; t++) {
                for (int64_t i = 0; i < batch * dim; i++)
                    ut[i] = u[i * L + t], dt[i] = delta[i * L + t], zt[i] = z[i * L + t];
                for (int64_t i = 0; i < batch * G * N; i++) Bt[i] = B[i * L + t], Ct[i] = C[i * L + t];
                ssm_status s2 = ssm_selective_step(batch, dim, N, G, h, ut, dt, A, Bt, Ct, a.D,
                                                   a.z ? zt : NULL, a.delta_bias, a.delta_softplus, yt);
                FD_ALLOWED(s2, SSM_OK, SSM_ERR_NOMEM);
                if (s2 != SSM_OK) goto skip;
                for (int64_t i = 0; i < batch * dim; i++) ys[i * L + t] = yt[i];
            }
            FD_CHECK(fd_same_f(ys, y, batch * dim * L), "L selective steps differ from the scan");
            if (a.h_last) FD_CHECK(fd_same_f(h, a.h_last, batch * dim * N), "final state differs");
        skip:
            free(h); free(ys); free(ut); free(dt); free(zt); free(Bt); free(Ct); free(yt);
        }
    }
    if (!dummy && nul < 12) {   /* the step's own argument checks */
        st = ssm_selective_step(batch, dim, N, G, nul == 6 ? NULL : h0, nul == 7 ? NULL : u,
                                nul == 8 ? NULL : delta, nul == 9 ? NULL : A, nul == 10 ? NULL : B,
                                nul == 11 ? NULL : C, NULL, NULL, NULL, 1, y);
        if (G < 1 || dim % G != 0 || nul >= 6) FD_EXPECT_ARG(st, "step: NULL or bad groups");
        else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
    }
    free(h0copy);
    free(u); free(delta); free(z); free(A); free(Dv); free(bias); free(B); free(C); free(h0); free(hl); free(y);
}

static void fuzz_diag(fd_in *d)
{
    int64_t batch = fd_size(d, 2), H = fd_size(d, 3), n = fd_size(d, 12), L = fd_size(d, 32);
    int nul = fd_u8(d) % 24, flags = fd_u8(d);
    int64_t bx = fd_bytes(batch, H, L, 4), bp = fd_bytes(H, n, 1, 8), bs = fd_bytes(batch, H, n, 8);
    int dummy = bx < 0 || bp < 0 || bs < 0;
    if (!dummy && (bx > (1 << 16) || bp > (1 << 12) || bs > (1 << 14))) return;
    float *Ad = fd_alloc(dummy ? 64 : bp), *Bd = fd_alloc(dummy ? 64 : bp), *C = fd_alloc(dummy ? 64 : bp);
    float *D = fd_alloc(dummy ? 64 : H * 4), *u = fd_alloc(dummy ? 64 : bx), *y = fd_alloc(dummy ? 64 : bx);
    float *x0 = fd_alloc(dummy ? 64 : bs), *xl = fd_alloc(dummy ? 64 : bs);
    if (!dummy) {
        fd_fill_c(d, Ad, H * n); fd_fill_c(d, Bd, H * n); fd_fill_c(d, C, H * n);
        fd_fill_f(d, D, H); fd_fill_f(d, u, batch * H * L); fd_fill_c(d, x0, batch * H * n);
    }
    const float *Dp = (flags & 1) ? D : NULL;
    int bad = dummy || nul < 5 || !fd_all_finite_f(Ad, dummy ? 0 : 2 * H * n) ||
              !fd_all_finite_f(Bd, dummy ? 0 : 2 * H * n) || !fd_all_finite_f(C, dummy ? 0 : 2 * H * n) ||
              (Dp && !fd_all_finite_f(D, H));
    float *xs = dummy ? NULL : fd_alloc(bs);
    if (xs) memcpy(xs, x0, (size_t)bs);
    ssm_status st = ssm_diag_scan(batch, H, n, L, nul == 0 ? NULL : (ssm_cfloat *)Ad, nul == 1 ? NULL : (ssm_cfloat *)Bd,
                                  nul == 2 ? NULL : (ssm_cfloat *)C, Dp, nul == 3 ? NULL : u,
                                  (flags & 2) ? (ssm_cfloat *)x0 : NULL, (flags & 4) ? (ssm_cfloat *)xl : NULL,
                                  nul == 4 ? NULL : y);
    if (bad) FD_EXPECT_ARG(st, "NULL, bad size or non-finite parameters");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        if (st == SSM_OK) {
            float *ys = fd_alloc(bx), *ut = fd_alloc(batch * H * 4), *yt = fd_alloc(batch * H * 4);
            if (!(flags & 2)) memset(xs, 0, (size_t)bs);
            for (int64_t t = 0; t < L; t++) {
                for (int64_t i = 0; i < batch * H; i++) ut[i] = u[i * L + t];
                ssm_status s2 = ssm_diag_step(batch, H, n, (ssm_cfloat *)xs, (ssm_cfloat *)Ad, (ssm_cfloat *)Bd,
                                              (ssm_cfloat *)C, Dp, ut, yt);
                FD_CHECK(s2 == SSM_OK, "diag_step failed after the scan succeeded: %d", (int)s2);
                for (int64_t i = 0; i < batch * H; i++) ys[i * L + t] = yt[i];
            }
            FD_CHECK(fd_same_f(ys, y, batch * H * L), "L diagonal steps differ from the scan");
            if (flags & 4) FD_CHECK(fd_same_f(xs, xl, 2 * batch * H * n), "final state differs");
            free(ys); free(ut); free(yt);
        }
    }
    free(xs);
    free(Ad); free(Bd); free(C); free(D); free(u); free(y); free(x0); free(xl);
}

static void fuzz_lti(fd_in *d)
{
    int64_t batch = fd_size(d, 2), n = fd_size(d, 6), O = fd_size(d, 3), L = fd_size(d, 32);
    int nul = fd_u8(d) % 24, flags = fd_u8(d);
    int64_t bA = fd_bytes(n, n, 1, 4), bC = fd_bytes(O, n, 1, 4), bu = fd_bytes(batch, L, 1, 4),
            by = fd_bytes(batch, O, L, 4), bs = fd_bytes(batch, n, 1, 4);
    int dummy = bA < 0 || bC < 0 || bu < 0 || by < 0 || bs < 0;
    if (!dummy && (bA > (1 << 12) || bC > (1 << 12) || by > (1 << 14))) return;
    float *Ad = fd_alloc(dummy ? 64 : bA), *Bd = fd_alloc(dummy ? 64 : n * 4), *C = fd_alloc(dummy ? 64 : bC);
    float *D = fd_alloc(dummy ? 64 : O * 4), *u = fd_alloc(dummy ? 64 : bu), *y = fd_alloc(dummy ? 64 : by);
    float *x0 = fd_alloc(dummy ? 64 : bs), *xl = fd_alloc(dummy ? 64 : bs);
    if (!dummy) {
        fd_fill_f(d, Ad, n * n); fd_fill_f(d, Bd, n); fd_fill_f(d, C, O * n); fd_fill_f(d, D, O);
        fd_fill_f(d, u, batch * L); fd_fill_f(d, x0, batch * n);
    }
    const float *Dp = (flags & 1) ? D : NULL;
    int bad = dummy || nul < 5 || !fd_all_finite_f(Ad, dummy ? 0 : n * n) || !fd_all_finite_f(Bd, dummy ? 0 : n) ||
              !fd_all_finite_f(C, dummy ? 0 : O * n) || (Dp && !fd_all_finite_f(D, O));
    float *xs = dummy ? NULL : fd_alloc(bs);
    if (xs) memcpy(xs, x0, (size_t)bs);
    ssm_status st = ssm_lti_scan(batch, n, O, L, nul == 0 ? NULL : Ad, nul == 1 ? NULL : Bd, nul == 2 ? NULL : C,
                                 Dp, nul == 3 ? NULL : u, (flags & 2) ? x0 : NULL, (flags & 4) ? xl : NULL,
                                 nul == 4 ? NULL : y);
    if (bad) FD_EXPECT_ARG(st, "NULL, bad size or non-finite parameters");
    else {
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        if (st == SSM_OK) {
            /* lti.h: a step is bit for bit ssm_lti_scan with L = 1 and
             * x0 = x_last = x (the scan carries its state in double within
             * a call, so L steps equal the scan of L only to rounding). */
            float *ut = fd_alloc(batch * 4), *yt = fd_alloc(batch * O * 4), *y1 = fd_alloc(batch * O * 4);
            float *x1 = fd_alloc(bs);
            if (!(flags & 2)) memset(xs, 0, (size_t)bs);
            for (int64_t t = 0; t < L; t++) {
                for (int64_t b = 0; b < batch; b++) ut[b] = u[b * L + t];
                memcpy(x1, xs, (size_t)bs);
                ssm_status s1 = ssm_lti_scan(batch, n, O, 1, Ad, Bd, C, Dp, ut, x1, x1, y1);
                ssm_status s2 = ssm_lti_step(batch, n, O, xs, Ad, Bd, C, Dp, ut, yt);
                FD_ALLOWED(s1, SSM_OK, SSM_ERR_NOMEM);
                FD_ALLOWED(s2, SSM_OK, SSM_ERR_NOMEM);
                if (s1 != SSM_OK || s2 != SSM_OK) break;
                FD_CHECK(fd_same_f(y1, yt, batch * O) && fd_same_f(x1, xs, batch * n),
                         "LTI step differs from the scan with L = 1 (t = %lld)", (long long)t);
            }
            free(ut); free(yt); free(y1); free(x1);
        }
    }
    free(xs);
    free(Ad); free(Bd); free(C); free(D); free(u); free(y); free(x0); free(xl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_in d = { data, size };
    switch (fd_u8(&d) % 3) {
    case 0: fuzz_selective(&d); break;
    case 1: fuzz_diag(&d); break;
    default: fuzz_lti(&d); break;
    }
    return 0;
}
