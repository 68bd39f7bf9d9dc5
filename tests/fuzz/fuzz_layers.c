/* fuzz_layers: the S4D layer (include/ssm/layer.h), the Mamba block and the
 * residual stack (include/ssm/mamba.h): create with fuzzed sizes, enums and
 * configs, parameters set to special values (all or nothing on error),
 * forward in both modes, forward_state, step, kernel, block and stack
 * forward and step with states, batch beyond the state's maximum, in-place
 * outputs.
 * Beyond the statuses: L S4D steps give the recurrent forward's bytes, and
 * forward_state from a NULL state gives forward(RECURRENT)'s bytes (both
 * documented); a refused set_params / set_param / state_set leaves the
 * object unchanged. */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Issue 9 (being fixed in src/layers): an S4D layer with EULER at a legal
 * dt where |Ad| > 1 gives SSM_ERR_NUMERIC in conv mode and in
 * ssm_s4d_layer_kernel, which layer.h does not list.  While this is 1 the
 * harness tolerates that one status for EULER layers; set it to 0 once the
 * fix lands and layer.h says what happens. */
#ifndef FUZZ_KNOWN_EULER_NUMERIC
#define FUZZ_KNOWN_EULER_NUMERIC 0   /* the S4D layer now refuses unstable discretizations */
#endif

static void fuzz_s4d_layer(fd_in *d)
{
    int64_t H = fd_size(d, 3), n = fd_size(d, 8);
    int init = fd_enum(d, 4), disc = fd_enum(d, 4), nul = fd_u8(d) % 32;
    uint64_t seed = fd_u64(d);
    int64_t bp = fd_bytes(H, n, 1, 16);
    if (bp > (1 << 12)) return;               /* valid, too big to run here */
    int bad = bp < 0 || init < 0 || init > 3 || disc < 0 || disc > 3 || nul == 0;
    ssm_s4d_layer *layer = NULL;
    ssm_status st = ssm_s4d_layer_create(nul == 0 ? NULL : &layer, H, n, (ssm_s4d_init)init, (ssm_disc)disc, seed);
    if (bad) { FD_EXPECT_ARG(st, "NULL, bad size or enum"); FD_CHECK(layer == NULL, "layer set on error"); return; }
    FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_LAPACK, SSM_ERR_NUMERIC);
    if (st != SSM_OK) { FD_CHECK(layer == NULL, "layer set on error"); return; }
    int64_t ih, in; ssm_s4d_init ii; ssm_disc id;
    FD_CHECK(ssm_s4d_layer_info(layer, &ih, &in, &ii, &id) == SSM_OK && ih == H && in == n &&
             (int)ii == init && (int)id == disc, "layer_info");

    /* set_params: any subset, special values; all or nothing. */
    int which = fd_u8(d);
    double *lam = fd_alloc(H * n * 16), *dt = fd_alloc(H * 8), *B = fd_alloc(H * n * 16), *C = fd_alloc(H * n * 16);
    float *D = fd_alloc(H * 4);
    double *lam0 = fd_alloc(H * n * 16), *dt0 = fd_alloc(H * 8), *B0 = fd_alloc(H * n * 16), *C0 = fd_alloc(H * n * 16);
    float *D0 = fd_alloc(H * 4);
    FD_CHECK(ssm_s4d_layer_get_params(layer, (ssm_cdouble *)lam0, dt0, (ssm_cdouble *)B0, (ssm_cdouble *)C0, D0) == SSM_OK, "get_params");
    memcpy(lam, lam0, (size_t)(H * n * 16)); memcpy(dt, dt0, (size_t)(H * 8));
    if (which & 1) for (int64_t i = 0; i < H * n; i++) {   /* mostly stable: Re <= 0 */
        lam[2 * i] = fd_double(d); lam[2 * i + 1] = fd_double(d);
        if (!(which & 64) && lam[2 * i] > 0) lam[2 * i] = -lam[2 * i];
    }
    if (which & 2) for (int64_t i = 0; i < H; i++) { dt[i] = fd_double(d); if (!(which & 64) && dt[i] < 0) dt[i] = -dt[i]; }
    if (which & 4) fd_fill_z(d, B, H * n);
    if (which & 8) fd_fill_z(d, C, H * n);
    if (which & 16) fd_fill_f(d, D, H);
    if (which & 31) {
        int sbad = 0;
        if (which & 1) for (int64_t i = 0; i < H * n; i++) sbad |= !isfinite(lam[2 * i]) || !isfinite(lam[2 * i + 1]) || lam[2 * i] > 0;
        if (which & 2) for (int64_t i = 0; i < H; i++) sbad |= !(isfinite(dt[i]) && dt[i] > 0);
        if (which & 4) sbad |= !fd_all_finite_d(B, 2 * H * n);
        if (which & 8) sbad |= !fd_all_finite_d(C, 2 * H * n);
        if (which & 16) sbad |= !fd_all_finite_f(D, H);
        st = ssm_s4d_layer_set_params(layer, (which & 1) ? (ssm_cdouble *)lam : NULL, (which & 2) ? dt : NULL,
                                      (which & 4) ? (ssm_cdouble *)B : NULL, (which & 8) ? (ssm_cdouble *)C : NULL,
                                      (which & 16) ? D : NULL);
        if (sbad) FD_EXPECT_ARG(st, "non-finite or unstable parameter");
        else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_NUMERIC);
        if (st != SSM_OK) {
            double *l1 = fd_alloc(H * n * 16), *d1 = fd_alloc(H * 8), *b1 = fd_alloc(H * n * 16), *c1 = fd_alloc(H * n * 16);
            float *D1 = fd_alloc(H * 4);
            FD_CHECK(ssm_s4d_layer_get_params(layer, (ssm_cdouble *)l1, d1, (ssm_cdouble *)b1, (ssm_cdouble *)c1, D1) == SSM_OK, "get_params");
            FD_CHECK(!memcmp(l1, lam0, (size_t)(H * n * 16)) && !memcmp(d1, dt0, (size_t)(H * 8)) &&
                     !memcmp(b1, B0, (size_t)(H * n * 16)) && !memcmp(c1, C0, (size_t)(H * n * 16)) &&
                     !memcmp(D1, D0, (size_t)(H * 4)), "refused set_params changed the layer");
            free(l1); free(d1); free(b1); free(c1); free(D1);
        }
    }
    free(lam); free(dt); free(B); free(C); free(D); free(lam0); free(dt0); free(B0); free(C0); free(D0);

    /* forward in a fuzzed mode, then the recurrent identities. */
    int mode = fd_enum(d, 2);
    int64_t batch = fd_size(d, 2), L = fd_size(d, 40);
    int64_t bx = fd_bytes(batch, H, L, 4), bs = fd_bytes(batch, H, n, 8);
    int dummy = bx < 0;       /* overflowing: ERR_ARG with small buffers */
    if (!dummy && (bx > (1 << 14) || bs < 0 || bs > (1 << 14))) { ssm_s4d_layer_destroy(layer); return; }
    float *u = fd_alloc(dummy ? 64 : bx), *y = fd_alloc(dummy ? 64 : bx), *y2 = fd_alloc(dummy ? 64 : bx);
    float *x = fd_alloc(dummy ? 64 : bs);
    if (!dummy) fd_fill_f(d, u, batch * H * L);
    int euler_tol = FUZZ_KNOWN_EULER_NUMERIC && disc == SSM_EULER;
    st = ssm_s4d_layer_forward(nul == 1 ? NULL : layer, (ssm_mode)mode, batch, L, nul == 2 ? NULL : u, nul == 3 ? NULL : y);
    if (dummy || mode < 0 || mode > 1 || (nul >= 1 && nul <= 3)) FD_EXPECT_ARG(st, "NULL, bad mode or size");
    else if (euler_tol && mode == SSM_MODE_CONV) FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_FFTW, SSM_ERR_NUMERIC);
    else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_FFTW);
    if (!dummy) {
        st = ssm_s4d_layer_forward(layer, SSM_MODE_RECURRENT, batch, L, u, y);
        FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        ssm_status s2 = ssm_s4d_layer_forward_state(layer, NULL, (ssm_cfloat *)x, batch, L, u, y2);
        FD_ALLOWED(s2, SSM_OK, SSM_ERR_NOMEM);
        if (st == SSM_OK && s2 == SSM_OK)
            FD_CHECK(fd_same_f(y, y2, batch * H * L), "forward_state(NULL) differs from forward(RECURRENT)");
        memset(x, 0, (size_t)bs);
        float *ut = fd_alloc(batch * H * 4), *yt = fd_alloc(batch * H * 4);
        int ok = st == SSM_OK;
        for (int64_t t = 0; t < L && ok; t++) {
            for (int64_t i = 0; i < batch * H; i++) ut[i] = u[i * L + t];
            ssm_status s3 = ssm_s4d_layer_step(layer, (ssm_cfloat *)x, batch, ut, yt);
            FD_ALLOWED(s3, SSM_OK, SSM_ERR_NOMEM);
            ok = s3 == SSM_OK;
            for (int64_t i = 0; i < batch * H; i++) y2[i * L + t] = yt[i];
        }
        if (ok) FD_CHECK(fd_same_f(y, y2, batch * H * L), "L steps differ from forward(RECURRENT)");
        FD_EXPECT_ARG(ssm_s4d_layer_step(layer, NULL, batch, ut, yt), "NULL state");
        free(ut); free(yt);
        float *K = fd_alloc(H * L * 4);
        st = ssm_s4d_layer_kernel(layer, L, K);
        if (euler_tol) FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM, SSM_ERR_NUMERIC);
        else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        free(K);
    }
    FD_EXPECT_ARG(ssm_s4d_layer_kernel(layer, INT64_MAX, y), "overflowing L");
    FD_CHECK(ssm_s4d_layer_get_discrete(layer, NULL, NULL, NULL) == SSM_OK, "get_discrete with NULL outputs");
    free(u); free(y); free(y2); free(x);
    ssm_s4d_layer_destroy(layer);
}

/* An index 0..max-1, or a bad one (negative, huge). */
static int64_t fd_index(fd_in *d, int64_t max)
{
    int64_t v = fd_size(d, max);
    return v == INT64_MIN ? v : v - 1;
}

/* A config field: 0 (default), small, or from the size decoder. */
static int64_t cfg_field(fd_in *d, int64_t max)
{
    uint8_t c = fd_u8(d);
    if (c < 64) return 0;
    return fd_size(d, max);
}

static int small_cfg(const ssm_mamba_config *c)
{
    return c->d_model <= 8 && c->d_state <= 8 && c->d_conv <= 4 && c->expand <= 2 && c->dt_rank <= 4;
}

/* Set one parameter of blk to fuzzed values; a refusal leaves it unchanged. */
static void fuzz_set_param(fd_in *d, ssm_mamba *blk)
{
    int p = fd_enum(d, SSM_MAMBA_NPARAMS);
    int64_t cnt = 0;
    ssm_status st = ssm_mamba_param_count(blk, (ssm_mamba_param)p, &cnt);
    if (p < 0 || p >= SSM_MAMBA_NPARAMS) { FD_EXPECT_ARG(st, "unknown parameter"); return; }
    FD_CHECK(st == SSM_OK && cnt >= 1, "param_count");
    int off = fd_u8(d) % 8 == 0;      /* a wrong count */
    float *v = fd_alloc((cnt + 1) * 4), *before = fd_alloc(cnt * 4), *after = fd_alloc(cnt * 4);
    fd_fill_f(d, v, cnt + 1);
    FD_CHECK(ssm_mamba_get_param(blk, (ssm_mamba_param)p, before, cnt) == SSM_OK, "get_param");
    int bad = off || !fd_all_finite_f(v, cnt), edge = 0;
    if (p == SSM_MAMBA_A_LOG)
        for (int64_t i = 0; i < cnt; i++) { if (v[i] > 89.0f) bad = 1; else if (v[i] > 88.5f) edge = 1; }
    st = ssm_mamba_set_param(blk, (ssm_mamba_param)p, v, cnt + off);
    if (bad) FD_EXPECT_ARG(st, "wrong count or non-finite value");
    else if (edge) FD_ALLOWED(st, SSM_OK, SSM_ERR_ARG);
    else FD_CHECK(st == SSM_OK, "set_param refused valid values: %d", (int)st);
    FD_CHECK(ssm_mamba_get_param(blk, (ssm_mamba_param)p, after, cnt) == SSM_OK, "get_param");
    if (st != SSM_OK) FD_CHECK(!memcmp(before, after, (size_t)cnt * 4), "refused set_param changed the block");
    else FD_CHECK(!memcmp(v, after, (size_t)cnt * 4), "set_param did not store the values");
    free(v); free(before); free(after);
}

static void fuzz_mamba(fd_in *d, int stack)
{
    ssm_mamba_config cfg = { (uint32_t)sizeof(ssm_mamba_config), cfg_field(d, 8), cfg_field(d, 8), cfg_field(d, 4), cfg_field(d, 2), cfg_field(d, 4) };
    int64_t nl = stack ? fd_size(d, 3) : 1;
    uint64_t seed = fd_u64(d);
    ssm_mamba_config rc;
    ssm_status sr = ssm_mamba_config_resolve(&cfg, &rc);
    FD_ALLOWED(sr, SSM_OK, SSM_ERR_ARG);
    if (cfg.d_model < 1 || cfg.d_state < 0 || cfg.d_conv < 0 || cfg.expand < 0 || cfg.dt_rank < 0)
        FD_EXPECT_ARG(sr, "bad config field");
    if (sr == SSM_OK && (!small_cfg(&rc) || nl > 3)) return;   /* valid, too big to run here */
    ssm_mamba *blk = NULL;
    ssm_mamba_stack *stk = NULL;
    ssm_status st = stack ? ssm_mamba_stack_create(&stk, &cfg, nl, seed) : ssm_mamba_create(&blk, &cfg, seed);
    if (sr != SSM_OK || nl < 1) {
        FD_EXPECT_ARG(st, "bad config or layer count");
        FD_CHECK(blk == NULL && stk == NULL, "object set on error");
        return;
    }
    FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
    if (st != SSM_OK) { FD_CHECK(blk == NULL && stk == NULL, "object set on error"); return; }
    int64_t Dm = rc.d_model, Di = rc.expand * Dm, N = rc.d_state, K = rc.d_conv;

    /* Parameters: of the block, or of a fuzzed layer of the stack, and norms. */
    if (stack) {
        int64_t layer = fd_index(d, 4), got = 0;
        FD_CHECK(ssm_mamba_stack_layers(stk, &got) == SSM_OK && got == nl, "stack_layers");
        st = ssm_mamba_stack_block(stk, layer, &blk);
        if (layer < 0 || layer >= nl) FD_EXPECT_ARG(st, "layer out of range");
        else FD_CHECK(st == SSM_OK && blk != NULL, "stack_block");
        if (st == SSM_OK) fuzz_set_param(d, blk);
        blk = NULL;
        int64_t nlayer = fd_index(d, 5);
        float *w = fd_alloc(Dm * 4), *w0 = fd_alloc(Dm * 4);
        fd_fill_f(d, w, Dm);
        int nbad = nlayer < 0 || nlayer > nl;
        if (!nbad) FD_CHECK(ssm_mamba_stack_get_norm(stk, nlayer, w0, Dm) == SSM_OK, "get_norm");
        st = ssm_mamba_stack_set_norm(stk, nlayer, w, Dm);
        if (nbad || !fd_all_finite_f(w, Dm)) FD_EXPECT_ARG(st, "norm index or non-finite weight");
        else FD_CHECK(st == SSM_OK, "set_norm refused valid weights");
        FD_EXPECT_ARG(ssm_mamba_stack_set_norm(stk, 0, w, Dm + 1), "wrong norm count");
        free(w); free(w0);
    } else {
        fuzz_set_param(d, blk);
        fuzz_set_param(d, blk);
    }

    /* State, forward, step. */
    int64_t maxb = fd_size(d, 3);
    ssm_mamba_state *sb = NULL;
    ssm_mamba_stack_state *ss = NULL;
    st = stack ? ssm_mamba_stack_state_create(&ss, stk, maxb) : ssm_mamba_state_create(&sb, blk, maxb);
    if (maxb < 1) FD_EXPECT_ARG(st, "max_batch < 1");
    else if (maxb > 3) { FD_ALLOWED(st, SSM_OK, SSM_ERR_ARG, SSM_ERR_NOMEM); goto done; }
    else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
    if (st != SSM_OK) goto done;
    if (!stack && fd_bool(d)) {   /* state_set with fuzzed values: all or nothing */
        int64_t b = 1 + fd_u8(d) % maxb;
        float *conv = fd_alloc(b * Di * K * 4), *h = fd_alloc(b * Di * N * 4);
        float *c0 = fd_alloc(b * Di * K * 4), *h0 = fd_alloc(b * Di * N * 4);
        fd_fill_f(d, conv, b * Di * K); fd_fill_f(d, h, b * Di * N);
        FD_CHECK(ssm_mamba_state_get(sb, b, c0, h0) == SSM_OK, "state_get");
        st = ssm_mamba_state_set(sb, b, conv, h);
        if (!fd_all_finite_f(conv, b * Di * K) || !fd_all_finite_f(h, b * Di * N)) {
            FD_EXPECT_ARG(st, "non-finite state");
            FD_CHECK(ssm_mamba_state_get(sb, b, conv, h) == SSM_OK && !memcmp(conv, c0, (size_t)(b * Di * K * 4)) &&
                     !memcmp(h, h0, (size_t)(b * Di * N * 4)), "refused state_set changed the state");
        } else FD_CHECK(st == SSM_OK, "state_set refused finite values");
        FD_EXPECT_ARG(ssm_mamba_state_set(sb, maxb + 1, conv, h), "batch beyond max");
        free(conv); free(h); free(c0); free(h0);
    }
    {
        int64_t batch = fd_size(d, 4), L = fd_size(d, 6);
        int usest = fd_bool(d), inplace = fd_bool(d);
        int64_t bx = fd_bytes(batch, L, Dm, 4);
        int dummy = bx < 0;
        if (!dummy && bx > (1 << 12)) goto done;
        float *x = fd_alloc(dummy ? 64 : bx), *y = inplace ? x : fd_alloc(dummy ? 64 : bx);
        if (!dummy) fd_fill_f(d, x, batch * L * Dm);
        int fbad = dummy || (usest && batch > maxb);
        st = stack ? ssm_mamba_stack_forward(stk, usest ? ss : NULL, batch, L, x, y)
                   : ssm_mamba_forward(blk, usest ? sb : NULL, batch, L, x, y);
        if (fbad) FD_EXPECT_ARG(st, "bad batch or L");
        else FD_ALLOWED(st, SSM_OK, SSM_ERR_NOMEM);
        if (!dummy) {   /* one token per sequence, continuing the state */
            st = stack ? ssm_mamba_stack_step(stk, ss, batch, x, y) : ssm_mamba_step(blk, sb, batch, x, y);
            if (batch > maxb) FD_EXPECT_ARG(st, "batch beyond max");
            else FD_CHECK(st == SSM_OK, "step failed: %d", (int)st);
        }
        FD_EXPECT_ARG(stack ? ssm_mamba_stack_step(stk, NULL, 1, x, y) : ssm_mamba_step(blk, NULL, 1, x, y), "NULL state");
        free(x);
        if (!inplace) free(y);
    }
    st = stack ? ssm_mamba_stack_state_reset(ss) : ssm_mamba_state_reset(sb);
    FD_CHECK(st == SSM_OK, "state reset");
done:
    ssm_mamba_state_destroy(sb);
    ssm_mamba_stack_state_destroy(ss);
    ssm_mamba_destroy(blk);
    ssm_mamba_stack_destroy(stk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_in d = { data, size };
    switch (fd_u8(&d) % 3) {
    case 0: fuzz_s4d_layer(&d); break;
    case 1: fuzz_mamba(&d, 0); break;
    default: fuzz_mamba(&d, 1); break;
    }
    return 0;
}
