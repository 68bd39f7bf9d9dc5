/*
 * bf16_gemm.c -- BF16 prompt products through oneDNN's matmul, each block
 * of weight rows on one thread (see bf16_gemm.h for the contract and why).
 *
 * Why oneDNN: Debian 12's OpenBLAS has no bf16 GEMM (sbgemm), and the
 * float path widens 256-row tiles of the weights for sgemm, which runs
 * ~100 GFLOP/s per Zen 5 core; oneDNN's bf16 matmul (brgemm kernels,
 * vdpbf16ps) ran the same Mamba-1 projections 2-4x faster per core
 * (`ssm_bench bf16`, docs/bf16.md).  Built only with SSM_HAVE_DNNL (CMake
 * finds libdnnl-dev); without it the functions below say "not available".
 */
#include <string.h>

#include "internal.h"
#include "layers/bf16_gemm.h"
#include "layers/gemv_bf16dp.h"

#ifdef SSM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

/* Rows of the weights per block: from the shape only (never the thread
 * count); 128 keeps every Mamba-1 projection at >= 6 blocks (but x_proj)
 * and each block large enough for oneDNN's kernels. */
#define BLK 128

int ssmi_bf16_gemm_ok(void)
{
    return ssmi_bf16dp_ok();
}

/* One thread's primitive for blocks of one shape (rows r of M or N). */
typedef struct prim {
    int64_t rows;
    dnnl_primitive_t p;
    dnnl_memory_desc_t a, b, c;
} prim;

static void prim_free(prim *q)
{
    if (q->p) dnnl_primitive_destroy(q->p);
    q->p = NULL;
}

static int prim_make(prim *q, dnnl_engine_t eng, int64_t M, int64_t N, int64_t K,
                     int64_t a_m, int64_t a_k, int64_t b_k, int64_t b_n,
                     int64_t ldc)
{
    dnnl_dims_t da = { M, K }, sa = { a_m, a_k };
    dnnl_dims_t db = { K, N }, sb = { b_k, b_n };
    dnnl_dims_t dc = { M, N }, sc = { ldc, 1 };
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_memory_desc_init_by_strides(&q->a, 2, da, dnnl_bf16, sa) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&q->b, 2, db, dnnl_bf16, sb) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&q->c, 2, dc, dnnl_f32, sc) != dnnl_success ||
        dnnl_matmul_desc_init(&md, &q->a, &q->b, NULL, &q->c) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success)
        return -1;
    dnnl_status_t s = dnnl_primitive_create(&q->p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? 0 : -1;
}

static int run_block(const prim *q, dnnl_engine_t eng, dnnl_stream_t st,
                     const uint16_t *A, const uint16_t *B, float *C)
{
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
    int rc = -1;
    /* oneDNN takes non-const handles; it only reads A and B. */
    if (dnnl_memory_create(&ma, &q->a, eng, (void *)(uintptr_t)A) == dnnl_success &&
        dnnl_memory_create(&mb, &q->b, eng, (void *)(uintptr_t)B) == dnnl_success &&
        dnnl_memory_create(&mc, &q->c, eng, C) == dnnl_success) {
        dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb },
                                    { DNNL_ARG_DST, mc } };
        if (dnnl_primitive_execute(q->p, st, 3, args) == dnnl_success &&
            dnnl_stream_wait(st) == dnnl_success)
            rc = 0;
    }
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    return rc;
}

ssm_status ssmi_bf16_gemm(int64_t M, int64_t N, int64_t K, const uint16_t *A,
                          int64_t a_m, int64_t a_k, const uint16_t *B,
                          int64_t b_k, int64_t b_n, float *C, int64_t ldc,
                          int split_m)
{
    const int64_t R = split_m ? M : N;
    const int64_t nblk = (R + BLK - 1) / BLK;
    int failed = 0;
    #pragma omp parallel
    {
        /* This thread's nested regions, oneDNN's included, get one thread:
         * oneDNN plans (dnnl_get_max_threads) and runs each matmul on this
         * thread alone.  The ICV belongs to this region's implicit task:
         * the caller's setting is untouched. */
        omp_set_num_threads(1);
        dnnl_engine_t eng = NULL;
        dnnl_stream_t st = NULL;
        prim full = { 0 }, tail = { 0 };
        int bad = dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
                  dnnl_stream_create(&st, eng, dnnl_stream_default_flags) != dnnl_success;
        #pragma omp for schedule(static)
        for (int64_t bk = 0; bk < nblk; bk++) {
            if (bad) continue;
            const int64_t r0 = bk * BLK, rows = R - r0 < BLK ? R - r0 : BLK;
            prim *q = rows == BLK ? &full : &tail;
            if (!q->p) {
                q->rows = rows;
                if (prim_make(q, eng, split_m ? rows : M, split_m ? N : rows, K,
                              a_m, a_k, b_k, b_n, ldc)) {
                    bad = 1;
                    continue;
                }
            }
            const uint16_t *Ab = split_m ? A + r0 * a_m : A;
            const uint16_t *Bb = split_m ? B : B + r0 * b_n;
            float *Cb = split_m ? C + r0 * ldc : C + r0;
            if (run_block(q, eng, st, Ab, Bb, Cb)) bad = 1;
        }
        prim_free(&full);
        prim_free(&tail);
        if (st) dnnl_stream_destroy(st);
        if (eng) dnnl_engine_destroy(eng);
        if (bad) {
            #pragma omp atomic write
            failed = 1;
        }
    }
    return failed ? SSM_FAIL(SSM_ERR_NOMEM) : SSM_OK;
}

#else /* !SSM_HAVE_DNNL */

int ssmi_bf16_gemm_ok(void)
{
    return 0;
}

ssm_status ssmi_bf16_gemm(int64_t M, int64_t N, int64_t K, const uint16_t *A,
                          int64_t a_m, int64_t a_k, const uint16_t *B,
                          int64_t b_k, int64_t b_n, float *C, int64_t ldc,
                          int split_m)
{
    (void)M; (void)N; (void)K; (void)A; (void)a_m; (void)a_k; (void)B;
    (void)b_k; (void)b_n; (void)C; (void)ldc; (void)split_m;
    return SSM_FAIL(SSM_ERR_ARG);
}

#endif /* SSM_HAVE_DNNL */
