/*
 * mpi_model.c -- the language model's prefill of one long prompt spread
 * over the ranks (<ssm/model.h>'s network, Gu and Dao 2023, section 3.4):
 *
 *   h = E[token];  per layer h += mixer_l(norm_l(h));  logits = W norm_f(h)
 *
 * Rank r embeds its own consecutive block of the prompt; every layer runs
 * over the ranks as ssm_mpi_mamba_stack_forward does (the Mamba-1 block's
 * stages of mpi_mamba.c on views of the model's weights, with the optional
 * in/out-proj and conv biases and LayerNorm of language-model checkpoints;
 * Mamba-2 models through the Mamba-2 stack over MPI, mpi_mamba2.c); the
 * last token's residual row travels to the last rank (an exclusive scan of
 * "the last row so far", so an empty last block still gets it), which
 * computes the logits; and the state after the whole prompt is written on
 * the last rank into an ssm_model_state slot, through the documented byte
 * format of ssm_model_state_save / _restore, so that ssm_model_forward
 * continues from it there.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "mpi_internal.h"
#include "../models/norm_row.h"

/* The byte format of ssm_model_state_save (<ssm/model.h>). */
#define ST_HEADER 64

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static void get_floats(const unsigned char *p, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = get_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}
static void put_floats(unsigned char *p, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(p + 4 * i, u);
    }
}

/* What the ranks need about the model. */
typedef struct lm {
    ssm_model_info info;
    ssm_model_weights w;
    int64_t kind, dm, di, n, k, r, nl, V;
    int64_t conv_per, h_per;   /* floats per layer of the saved state */
    int64_t nheads, ngroups;   /* Mamba-2 */
} lm;

static int lm_get(lm *m, const ssm_model *model)
{
    memset(m, 0, sizeof *m);
    ssm_model_info_init(&m->info);
    ssm_model_weights_init(&m->w);
    if (!model || ssm_model_get_info(model, &m->info) != SSM_OK ||
        ssm_model_get_weights(model, &m->w) != SSM_OK)
        return 0;
    m->kind = m->w.kind;
    m->dm = m->info.d_model; m->di = m->info.d_inner; m->n = m->info.d_state;
    m->k = m->info.d_conv; m->r = m->info.dt_rank; m->nl = m->info.n_layer;
    m->V = m->info.vocab;
    if (m->kind == 2) {
        ssm_mamba2_config cfg;
        ssm_mamba2_config_init(&cfg);
        ssm_mamba2_stack *stk = (ssm_mamba2_stack *)(uintptr_t)m->w.mamba2;
        ssm_mamba2 *b0 = NULL;
        if (!stk || ssm_mamba2_stack_block(stk, 0, &b0) != SSM_OK ||
            ssm_mamba2_get_config(b0, &cfg) != SSM_OK)
            return 0;
        m->nheads = cfg.d_model * cfg.expand / cfg.headdim;
        m->ngroups = cfg.ngroups;
        m->conv_per = (m->di + 2 * m->ngroups * m->n) * m->k;
        m->h_per = m->di * m->n;
    } else {
        m->conv_per = m->di * (m->k - 1);
        m->h_per = m->di * m->n;
    }
    /* The state format's size, cross-checked with the library's. */
    int64_t per = m->conv_per + m->h_per;
    return per > 0 && m->nl > 0 && per <= (INT64_MAX / 8 - ST_HEADER) / m->nl &&
           ST_HEADER + 4 * per * m->nl + 8 == m->info.state_bytes;
}

/* The state's header agrees with the model (a state made for it). */
static int header_ok(const lm *m, const unsigned char *p)
{
    return !memcmp(p, "SSMSTATE", 8) && get_u32(p + 8) == 1 &&
           get_u32(p + 12) == (uint32_t)m->kind &&
           get_u64(p + 16) == (uint64_t)m->nl && get_u64(p + 24) == (uint64_t)m->dm &&
           get_u64(p + 32) == (uint64_t)m->di && get_u64(p + 40) == (uint64_t)m->n &&
           get_u64(p + 48) == (uint64_t)m->k && get_u64(p + 56) <= (uint64_t)INT64_MAX / 2;
}

/* rows of in [rows][dm] -> out: the model's RMSNorm or LayerNorm, the
 * operations of src/models/run.c (sums in double, in order). */
static void lm_norm(const lm *m, int64_t rows, const float *in, float *out,
                    const float *w, const float *b)
{
    const int64_t dm = m->dm;
    const double eps = m->info.norm_eps;
    const int rms = m->info.rms_norm;
    #pragma omp parallel for schedule(static) if (rows * dm > 32768)
    for (int64_t r = 0; r < rows; r++)
        ssmi_norm_row(dm, in + r * dm, out + r * dm, w, b, eps, rms);
}

/* Block parameter views onto layer l's weights (Mamba-1). */
static int lm_layer(const ssm_model *model, const lm *m, int64_t l,
                    blk_params *bp, ssm_model_layer_weights *lw)
{
    ssm_model_layer_weights_init(lw);
    if (ssm_model_get_layer_weights(model, l, lw) != SSM_OK)
        return 0;
    memset(bp, 0, sizeof *bp);
    bp->dm = m->dm; bp->di = m->di; bp->n = m->n; bp->k = m->k; bp->r = m->r;
    bp->in_w = lw->in_w; bp->in_b = lw->in_b;
    bp->conv_w = lw->conv_w; bp->conv_b = lw->conv_b;
    bp->x_w = lw->x_w; bp->dt_w = lw->dt_w; bp->dt_b = lw->dt_b;
    bp->Av = lw->A; bp->D = lw->D;
    bp->out_w = lw->out_w; bp->out_b = lw->out_b;
    return 1;
}

/* Hash of what the ranks' models must share, beyond the sizes: the small
 * weights of every layer (conv, dt bias, A, D, norms) and norm_f.  The big
 * matrices (embedding, projections, head) are not hashed: reading them all
 * on every call would cost more than a short prompt's prefill. */
static uint64_t lm_hash(const ssm_model *model, const lm *m)
{
    uint64_t h = SSMI_HASH0;
    const size_t f = sizeof(float);
    if (m->kind == 2)
        return h;   /* hashed by the Mamba-2 stack's own agreement */
    for (int64_t l = 0; l < m->nl; l++) {
        ssm_model_layer_weights lw;
        blk_params bp;
        if (!lm_layer(model, m, l, &bp, &lw))
            return h;
        h = ssmi_hash(h, lw.conv_w, (size_t)(m->di * m->k) * f);
        h = ssmi_hash(h, lw.conv_b, lw.conv_b ? (size_t)m->di * f : 0);
        h = ssmi_hash(h, lw.dt_b, (size_t)m->di * f);
        h = ssmi_hash(h, lw.A, (size_t)(m->di * m->n) * f);
        h = ssmi_hash(h, lw.D, (size_t)m->di * f);
        h = ssmi_hash(h, lw.norm_w, (size_t)m->dm * f);
        h = ssmi_hash(h, lw.norm_b, lw.norm_b ? (size_t)m->dm * f : 0);
        h = ssmi_hash(h, lw.in_b, lw.in_b ? (size_t)(2 * m->di) * f : 0);
        h = ssmi_hash(h, lw.out_b, lw.out_b ? (size_t)m->dm * f : 0);
    }
    h = ssmi_hash(h, m->w.norm_f_w, (size_t)m->dm * f);
    h = ssmi_hash(h, m->w.norm_f_b, m->w.norm_f_b ? (size_t)m->dm * f : 0);
    return h;
}

/* The Mamba-1 layers over the ranks: hbuf [L][Dm] (the embeddings) becomes
 * the last residual stream; rank 0 starts from sin (the saved slot's
 * floats, NULL: the empty prefix), the last rank leaves the state after
 * the prompt in sout (the saved format's floats) when sout is not NULL.
 * Every rank runs every layer's collectives; returns the local status. */
static ssm_status lm_layers1(const ssmi_mpi_ctx *c, const ssm_model *model,
                             const lm *m, int64_t L, float *hbuf, float *normed,
                             float *out, blk_ws *w, const float *sin,
                             float *sout, ssm_status e)
{
    const int64_t di = m->di, k = m->k, per = m->conv_per + m->h_per;
    float *cin = NULL;
    if (c->rank == 0 && sin) {
        cin = ssmi_mpi_alloc((size_t)(di * k), sizeof(float));
        if (!cin && e == SSM_OK)
            e = SSMI_MPI_FAIL(SSM_ERR_NOMEM);
    }
    for (int64_t l = 0; l < m->nl; l++) {
        blk_params bp;
        ssm_model_layer_weights lw;
        ssm_status le = e;
        if (!lm_layer(model, m, l, &bp, &lw)) {
            /* Cannot happen for a checked model; keep the collectives. */
            lm_layer(model, m, 0, &bp, &lw);
            if (le == SSM_OK)
                le = SSMI_MPI_FAIL(SSM_ERR_ARG);
        }
        const float *ci = NULL, *hi = NULL;
        if (le == SSM_OK && cin) {
            /* The saved conv state holds the last K-1 inputs; the block's
             * has K (the oldest is not read by the conv). */
            const float *sc = sin + l * per;
            for (int64_t d = 0; d < di; d++) {
                cin[d * k] = 0.0f;
                memcpy(cin + d * k + 1, sc + d * (k - 1), (size_t)(k - 1) * sizeof(float));
            }
            ci = cin;
            hi = sc + m->conv_per;
        }
        if (le == SSM_OK && L > 0)
            lm_norm(m, L, hbuf, normed, lw.norm_w, lw.norm_b);
        if (le != SSM_OK)
            w->L = 0;   /* keep the collectives, compute nothing */
        ssm_status be = ssmi_blk_core(c, &bp, w, normed, out, ci, hi, sout != NULL);
        if (le == SSM_OK)
            le = be;
        if (le == SSM_OK && sout) {
            float *so = sout + l * per;
            for (int64_t d = 0; d < di; d++)
                memcpy(so + d * (k - 1), w->conv + d * k + 1, (size_t)(k - 1) * sizeof(float));
            memcpy(so + m->conv_per, w->h, (size_t)m->h_per * sizeof(float));
        }
        if (le == SSM_OK && L > 0)
            for (int64_t i = 0; i < L * m->dm; i++)
                hbuf[i] += out[i];
        e = le;
    }
    free(cin);
    return e;
}

ssm_status ssm_mpi_model_prefill(MPI_Comm comm, const ssm_model *model,
                                 ssm_model_state *state, int64_t slot,
                                 int64_t len, const int32_t *tokens,
                                 float *logits)
{
    ssmi_mpi_ctx c;
    ssm_status e = ssmi_mpi_enter(&c, comm);
    if (e != SSM_OK)
        return e;
    const int last = c.rank == c.size - 1;
    lm m;
    blk_ws w;
    memset(&w, 0, sizeof w);
    float *hbuf = NULL, *normed = NULL, *out = NULL, *sin = NULL, *sout = NULL;
    float *xs = NULL, *xr = NULL;   /* the last row's exchange [Dm][2] */
    ssmi_m2_stack s2;
    ssm_mamba2_stack_state *t0 = NULL, *tl = NULL;
    memset(&s2, 0, sizeof s2);
    unsigned char *bytes = NULL, *sbytes = NULL;
    int64_t nact = 0, ntok0 = 0, nbytes = 0, tot[2] = { 0, 0 };
    int ok = lm_get(&m, model) && len >= 0 && (len == 0 || tokens) &&
             !__builtin_mul_overflow(len, m.dm, &nact), nomem = 0;
    for (int64_t t = 0; ok && t < len; t++)
        if (tokens[t] < 0 || tokens[t] >= m.V)
            ok = 0;
    /* The slot: read on rank 0, written on the last rank (state NULL:
     * the empty prefix, nothing kept). */
    if (ok && state && (c.rank == 0 || last)) {
        int64_t nt = 0;
        unsigned char hdr[ST_HEADER];
        ssm_status se = SSM_ERR_ARG;
        if (ssm_model_state_tokens(state, slot, &nt) == SSM_OK)
            se = ssm_model_state_save(state, slot, hdr, ST_HEADER, &nbytes);
        if (se == SSM_ERR_NOMEM)
            nomem = 1;   /* a short save goes through a full copy */
        else if (se != SSM_OK || nbytes != m.info.state_bytes || !header_ok(&m, hdr))
            ok = 0;
    }
    blk_params bp0;
    ssm_model_layer_weights lw0;
    if (ok && m.kind == 1) {
        if (!lm_layer(model, &m, 0, &bp0, &lw0) || !ssmi_blk_ws_sizes_ok(&bp0, 1, len) ||
            m.k > 64)
            ok = 0;
    }
    /* Mamba-2: the stack over MPI (mpi_mamba2.c) with batch 1; the slot's
     * state goes through temporary stack states (rank 0: in, last: out). */
    if (ok && m.kind == 2) {
        int nm2 = 0;
        ok = ssmi_m2_stack_prepare(&s2, &c, m.w.mamba2, NULL, 1, len, &nm2);
        nomem |= nm2;
        if (ok && !nomem && state && c.rank == 0 &&
            ssm_mamba2_stack_state_create(&t0, m.w.mamba2, 1) != SSM_OK)
            nomem = 1;
        if (ok && !nomem && state && last &&
            ssm_mamba2_stack_state_create(&tl, m.w.mamba2, 1) != SSM_OK)
            nomem = 1;
    }
    if (ok && !nomem) {
        const int64_t na = nact > 0 ? nact : 1, per = m.conv_per + m.h_per;
        hbuf = ssmi_mpi_alloc((size_t)na, sizeof(float));
        normed = ssmi_mpi_alloc((size_t)na, sizeof(float));
        out = ssmi_mpi_alloc((size_t)na, sizeof(float));
        xs = ssmi_mpi_alloc((size_t)(2 * m.dm), sizeof(float));
        xr = ssmi_mpi_alloc((size_t)(2 * m.dm), sizeof(float));
        if (!hbuf || !normed || !out || !xs || !xr ||
            (m.kind == 1 && !ssmi_blk_ws_alloc(&w, &bp0, 1, len)))
            nomem = 1;
        if (!nomem && state && c.rank == 0) {
            bytes = ssmi_mpi_alloc((size_t)nbytes, 1);
            sin = ssmi_mpi_alloc((size_t)(per * m.nl), sizeof(float));
            int64_t nb2 = 0;
            if (!bytes || !sin)
                nomem = 1;
            else if (ssm_model_state_save(state, slot, bytes, nbytes, &nb2) != SSM_OK)
                nomem = 1;   /* only NOMEM is possible for a slot checked above */
            else {
                ntok0 = (int64_t)get_u64(bytes + 56);
                get_floats(bytes + ST_HEADER, sin, per * m.nl);
            }
        }
        if (!nomem && state && last) {
            sout = ssmi_mpi_alloc((size_t)(per * m.nl), sizeof(float));
            sbytes = ssmi_mpi_alloc((size_t)nbytes, 1);
            if (!sout || !sbytes)
                nomem = 1;
        }
    }
    ssmi_agree g;
    ssmi_agree_init(&g, !ok, nomem);
    ssmi_agree_add(&g, ok ? m.kind : 0);
    ssmi_agree_add(&g, ok ? m.nl : 0);
    ssmi_agree_add(&g, ok ? m.dm : 0);
    ssmi_agree_add(&g, ok ? m.di : 0);
    ssmi_agree_add(&g, ok ? m.n : 0);
    ssmi_agree_add(&g, ok ? m.k : 0);
    ssmi_agree_add(&g, ok ? m.r : 0);
    ssmi_agree_add(&g, ok ? m.V : 0);
    ssmi_agree_add(&g, ok ? m.info.vocab_padded : 0);
    ssmi_agree_add(&g, ok ? m.info.rms_norm : 0);
    {
        double eps = ok ? m.info.norm_eps : 0.0;
        int64_t eb;
        memcpy(&eb, &eps, sizeof eb);
        ssmi_agree_add(&g, ssmi_hash_q((uint64_t)eb));
    }
    ssmi_agree_add(&g, ok ? ssmi_hash_q(lm_hash(model, &m)) : 0);
    if (m.kind == 2)
        ssmi_m2_stack_agree(&g, &s2, ok && !nomem);
    ssmi_agree_any(&g, ok && len > 0);
    e = ssmi_agree_run(&c, &g);
    if (e != SSM_OK)
        goto done;

    /* Rank 0's prefix length and the prompt's total length reach every
     * rank (the last one writes their sum into the slot). */
    int64_t cnt[2] = { c.rank == 0 ? ntok0 : 0, len };
    if (MPI_Allreduce(cnt, tot, 2, MPI_INT64_T, MPI_SUM, c.comm) != MPI_SUCCESS) {
        e = SSMI_MPI_FAIL(SSM_ERR_MPI);
        goto agree;
    }

    /* Embedding of this rank's block: h = E[token]. */
    for (int64_t t = 0; t < len; t++)
        memcpy(hbuf + t * m.dm, m.w.emb + (int64_t)tokens[t] * m.dm,
               (size_t)m.dm * sizeof(float));
    const float *fo = hbuf;   /* rows whose last one becomes the logits */
    if (m.kind == 1) {
        e = lm_layers1(&c, model, &m, len, hbuf, normed, out, &w, sin, sout, e);
    } else {
        /* The stack ends with norm_f: its output rows go to the head. */
        const int64_t per = m.conv_per + m.h_per;
        for (int64_t l = 0; t0 && l < m.nl && e == SSM_OK; l++) {
            ssm_mamba2_state *ls = NULL;
            e = ssm_mamba2_stack_state_layer(t0, l, &ls);
            if (e == SSM_OK)
                e = ssm_mamba2_state_set(ls, 1, sin + l * per, sin + l * per + m.conv_per);
        }
        e = ssmi_m2_stack_run(&c, &s2, t0, tl, hbuf, normed, e);
        for (int64_t l = 0; tl && l < m.nl && e == SSM_OK; l++) {
            ssm_mamba2_state *ls = NULL;
            e = ssm_mamba2_stack_state_layer(tl, l, &ls);
            if (e == SSM_OK)
                e = ssm_mamba2_state_get(ls, 1, sout + l * per, sout + l * per + m.conv_per);
        }
        fo = normed;
    }

    /* The last token's residual row, to the last rank: elements (count,
     * value), one per channel, "keep the latest" (the halo operation with
     * a window of 1), so that an empty last block gets its predecessors'. */
    for (int64_t j = 0; j < m.dm; j++) {
        xs[2 * j] = len > 0 ? 1.0f : 0.0f;
        xs[2 * j + 1] = len > 0 ? fo[(len - 1) * m.dm + j] : 0.0f;
    }
    {
        ssm_status ce = ssmi_mpi_exscan_halo(&c, xs, xr, m.dm, 1);
        if (e == SSM_OK)
            e = ce;
    }
    if (e == SSM_OK && last && logits) {
        float *fin = xs, *nrm = xs + m.dm;   /* xs is free again */
        for (int64_t j = 0; j < m.dm; j++)
            fin[j] = len > 0 ? fo[(len - 1) * m.dm + j] : xr[2 * j + 1];
        if (m.kind == 1)
            lm_norm(&m, 1, fin, nrm, m.w.norm_f_w, m.w.norm_f_b);
        else
            memcpy(nrm, fin, (size_t)m.dm * sizeof(float));
        /* The product of src/models/run.c (one row: sgemv). */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m.V, (int)m.dm, 1.0f,
                    m.w.head, (int)m.dm, nrm, 1, 0.0f, logits, 1);
    }

agree:
    e = ssmi_mpi_status_agree(&c, e);
    if (e != SSM_OK)
        goto done;
    /* Only once every rank succeeded: the slot after the prompt, on the
     * last rank (a failed call leaves the slot as it was), and a second
     * agreement (the restore may fail for memory). */
    if (last && sout) {
        unsigned char *p = sbytes, *q = p + ST_HEADER;
        memcpy(p, "SSMSTATE", 8);
        put_u32(p + 8, 1);
        put_u32(p + 12, (uint32_t)m.kind);
        put_u64(p + 16, (uint64_t)m.nl);
        put_u64(p + 24, (uint64_t)m.dm);
        put_u64(p + 32, (uint64_t)m.di);
        put_u64(p + 40, (uint64_t)m.n);
        put_u64(p + 48, (uint64_t)m.k);
        put_u64(p + 56, (uint64_t)(tot[0] + tot[1]));
        put_floats(q, sout, (m.conv_per + m.h_per) * m.nl);
        q += 4 * (m.conv_per + m.h_per) * m.nl;
        put_u64(q, ssmi_hash(SSMI_HASH0, p, (size_t)(q - p)));
        e = ssm_model_state_restore(state, slot, sbytes, nbytes);
    }
    e = ssmi_mpi_status_agree(&c, e);
done:
    free(hbuf); free(normed); free(out); free(sin); free(sout);
    free(bytes); free(sbytes); free(xs); free(xr);
    ssmi_blk_ws_free(&w);
    ssmi_m2_stack_free(&s2);
    ssm_mamba2_stack_state_destroy(t0);
    ssm_mamba2_stack_state_destroy(tl);
    ssmi_mpi_leave(&c);
    return e;
}
