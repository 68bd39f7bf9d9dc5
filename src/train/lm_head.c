/*
 * lm_head.c -- the language-model head with cross-entropy loss and the
 * token embedding, forward and backward (ssm/train.h):
 * ssm_lm_head_xent, ssm_embedding_forward, ssm_embedding_backward.
 *
 * logits[r][v] = h[r] . W[v] (v < V, the real vocabulary; rows V..Vp-1 of W
 * are padding that never reaches a logit), loss = mean over the rows whose
 * target is not ignored of  logsumexp_v(logits[r]) - logits[r][target_r].
 * Gradients (softmax minus one-hot, divided by the count):
 *   G[r][v] = (softmax(logits[r])_v - [v == t_r]) / count
 *   dh = G W,   dW = G^T h   (rows >= V zero)
 *
 * Memory: the rows run in blocks of XR = 64; one block of XR x V logits
 * exists at a time (plus nothing else of size V).
 *
 * Determinism.  Every product is cut into tiles of at most 64 x 64 x 64
 * (M N K <= 262144, at or below OpenBLAS's threading threshold, so each
 * cblas_sgemm call runs on the calling thread in any OpenBLAS build) and
 * the K pieces accumulate in a fixed order (beta = 1).  The tiles of one
 * phase are distributed over libssm's own OpenMP threads, one writer per
 * output tile; the row blocks run in order, so dW accumulates block after
 * block.  The tiling depends on the shapes only: the same bytes for any
 * OpenMP or BLAS thread count (for the same BLAS library and CPU).
 */
#include <string.h>
#include <cblas.h>

#include "internal.h"

#define XT 64   /* tile edge: rows per block, vocab and model-dim tiles */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* C[M][N] = A[M][K] B^T (B [N][K]) or = A^T B, K cut into XT pieces
 * (first piece beta0, then accumulate). */
static void gemm_tiles(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M,
                       int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta0, float *C,
                       int64_t ldc)
{
    for (int64_t k0 = 0; k0 < K; k0 += XT) {
        const int64_t kk = min64(XT, K - k0);
        /* the K offset moves along columns of a non-transposed operand,
         * along rows of a transposed one (row-major) */
        const float *Ak = ta == CblasNoTrans ? A + k0 : A + k0 * lda;
        const float *Bk = tb == CblasNoTrans ? B + k0 * ldb : B + k0;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)kk, 1.0f,
                    Ak, (int)lda, Bk, (int)ldb, k0 == 0 ? beta0 : 1.0f, C,
                    (int)ldc);
    }
}

ssm_status ssm_lm_head_xent(int64_t rows, int64_t dm, int64_t vocab,
                            int64_t vocab_padded, const float *h,
                            const float *W, const int32_t *targets,
                            int32_t ignore_index, double *loss,
                            int64_t *count, int32_t *pred, float *dh,
                            float *dW)
{
    if (!h || !W || !targets || !loss || rows < 1 || dm < 1 || vocab < 1 ||
        vocab_padded < vocab)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t n;
    /* cblas takes int: dimensions and leading dimensions must fit. */
    if (!ssmi_sizes_ok(&n, sizeof(float), 2, rows, dm) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, vocab_padded, dm) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, XT, vocab) ||
        dm > INT32_MAX || vocab > INT32_MAX || vocab_padded > INT32_MAX)
        return SSM_FAIL(SSM_ERR_ARG);
    int64_t cnt = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int32_t t = targets[r];
        if (t == ignore_index)
            continue;
        if (t < 0 || (int64_t)t >= vocab)
            return SSM_FAIL(SSM_ERR_ARG);
        cnt++;
    }
    float *lg = ssmi_alloc((size_t)(XT * vocab), sizeof(float));
    double *rl = ssmi_alloc((size_t)XT, sizeof(double));
    if (!lg || !rl) {
        ssmi_free(lg);
        ssmi_free(rl);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    const int grad = dh || dW;
    const float inv = cnt > 0 ? (float)(1.0 / (double)cnt) : 0.0f;
    const int64_t nvt = (vocab + XT - 1) / XT, ndt = (dm + XT - 1) / XT;
    double total = 0.0;
    if (dW && vocab_padded > vocab)
        memset(dW + vocab * dm, 0, (size_t)((vocab_padded - vocab) * dm) * sizeof(float));
    for (int64_t r0 = 0; r0 < rows; r0 += XT) {
        const int64_t R = min64(XT, rows - r0);
        const float *hb = h + r0 * dm;
        /* logits block [R][V], vocab tiles in parallel */
        #pragma omp parallel for schedule(static) if (nvt > 1)
        for (int64_t vt = 0; vt < nvt; vt++) {
            const int64_t v0 = vt * XT, nv = min64(XT, vocab - v0);
            gemm_tiles(CblasNoTrans, CblasTrans, R, nv, dm, hb, dm,
                       W + v0 * dm, dm, 0.0f, lg + v0, vocab);
        }
        /* Per row, in double: the stable log-sum-exp, the loss, the argmax
         * (first maximum), then the logits become G in place. */
        #pragma omp parallel for schedule(static) if (R * vocab >= 32768)
        for (int64_t i = 0; i < R; i++) {
            float *l = lg + i * vocab;
            const int32_t t = targets[r0 + i];
            double mx = l[0];
            int64_t am = 0;
            for (int64_t v = 1; v < vocab; v++)
                if (l[v] > mx) {
                    mx = l[v];
                    am = v;
                }
            if (pred)
                pred[r0 + i] = (int32_t)am;
            double s = 0.0;
            for (int64_t v = 0; v < vocab; v++)
                s += exp((double)l[v] - mx);
            const int ign = t == ignore_index;
            rl[i] = ign ? 0.0 : mx + log(s) - (double)l[t];
            if (!grad)
                continue;
            if (ign) {
                memset(l, 0, (size_t)vocab * sizeof(float));
                continue;
            }
            const double is = 1.0 / s;
            for (int64_t v = 0; v < vocab; v++) {
                const double p = exp((double)l[v] - mx) * is;
                l[v] = (float)((p - (v == t ? 1.0 : 0.0)) * inv);
            }
        }
        for (int64_t i = 0; i < R; i++)
            total += rl[i];
        if (!grad)
            continue;
        /* dh[R][dm tile] = G W (K = vocab), and dW[v tile][d tile] (+)=
         * G^T h (K = R): one list of output tiles, one writer each. */
        const int64_t ntask = (dh ? ndt : 0) + (dW ? nvt * ndt : 0);
        #pragma omp parallel for schedule(static) if (ntask > 1)
        for (int64_t k = 0; k < ntask; k++) {
            if (dh && k < ndt) {
                const int64_t d0 = k * XT, nd = min64(XT, dm - d0);
                gemm_tiles(CblasNoTrans, CblasNoTrans, R, nd, vocab, lg,
                           vocab, W + d0, dm, 0.0f, dh + r0 * dm + d0, dm);
            } else {
                const int64_t q = dh ? k - ndt : k;
                const int64_t v0 = (q / ndt) * XT, d0 = (q % ndt) * XT;
                const int64_t nv = min64(XT, vocab - v0), nd = min64(XT, dm - d0);
                gemm_tiles(CblasTrans, CblasNoTrans, nv, nd, R, lg + v0, vocab,
                           hb + d0, dm, r0 == 0 ? 0.0f : 1.0f,
                           dW + v0 * dm + d0, dm);
            }
        }
    }
    ssmi_free(lg);
    ssmi_free(rl);
    *loss = cnt > 0 ? total / (double)cnt : 0.0;
    if (count)
        *count = cnt;
    return SSM_OK;
}

static ssm_status emb_check(int64_t rows, int64_t dm, int64_t vp,
                            const int32_t *tokens)
{
    int64_t n;
    if (rows < 1 || dm < 1 || vp < 1 || !ssmi_sizes_ok(&n, sizeof(float), 2, rows, dm) ||
        !ssmi_sizes_ok(&n, sizeof(float), 2, vp, dm))
        return SSM_FAIL(SSM_ERR_ARG);
    for (int64_t r = 0; r < rows; r++)
        if (tokens[r] < 0 || (int64_t)tokens[r] >= vp)
            return SSM_FAIL(SSM_ERR_ARG);
    return SSM_OK;
}

ssm_status ssm_embedding_forward(int64_t rows, int64_t dm, int64_t vocab_padded,
                                 const float *E, const int32_t *tokens,
                                 float *out)
{
    if (!E || !tokens || !out)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(emb_check(rows, dm, vocab_padded, tokens));
    for (int64_t r = 0; r < rows; r++)
        memcpy(out + r * dm, E + (int64_t)tokens[r] * dm, (size_t)dm * sizeof(float));
    return SSM_OK;
}

ssm_status ssm_embedding_backward(int64_t rows, int64_t dm, int64_t vocab_padded,
                                  const int32_t *tokens, const float *dout,
                                  float *dE)
{
    if (!tokens || !dout || !dE)
        return SSM_FAIL(SSM_ERR_ARG);
    SSM_TRY(emb_check(rows, dm, vocab_padded, tokens));
    /* Columns in parallel, rows in order inside each column block: every
     * dE element receives its rows' additions in row order. */
    const int64_t ndt = (dm + XT - 1) / XT;
    #pragma omp parallel for schedule(static) if (ndt > 1 && rows * dm >= 65536)
    for (int64_t k = 0; k < ndt; k++) {
        const int64_t d0 = k * XT, nd = min64(XT, dm - d0);
        for (int64_t r = 0; r < rows; r++) {
            float *e = dE + (int64_t)tokens[r] * dm + d0;
            const float *g = dout + r * dm + d0;
            for (int64_t j = 0; j < nd; j++)
                e[j] += g[j];
        }
    }
    return SSM_OK;
}
