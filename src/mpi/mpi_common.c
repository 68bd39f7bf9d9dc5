/*
 * mpi_common.c -- libssm_mpi's plumbing: error handler swap, the one
 * validation allreduce, status agreement, and the exclusive scans of
 * carries with their non-commutative MPI operations.
 */
#include <limits.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

ssm_status ssmi_mpi_fail_(ssm_status s, const char *file, int line)
{
    (void)file;
    (void)line;
    return s;
}

/* The failure injector (mpi_internal.h), as libssm's ssmi_alloc_inject:
 * two atomics, the count of allocations since arming and the one to fail
 * (0: disarmed). */
static atomic_llong inj_count;
static atomic_llong inj_fail_at;

void ssmi_mpi_alloc_inject(int64_t k)
{
    atomic_store(&inj_fail_at, 0);
    atomic_store(&inj_count, 0);
    atomic_store(&inj_fail_at, k > 0 ? (long long)k : 0);
}

int64_t ssmi_mpi_alloc_count(void)
{
    return (int64_t)atomic_load(&inj_count);
}

void *ssmi_mpi_alloc(size_t count, size_t elem)
{
    const long long at = atomic_load_explicit(&inj_fail_at, memory_order_relaxed);
    const long long k = atomic_fetch_add(&inj_count, 1) + 1;
    if (at > 0 && k == at)
        return NULL;
    size_t bytes;
    if (__builtin_mul_overflow(count, elem, &bytes))
        return NULL;
    if (bytes == 0)
        bytes = 64;
    /* aligned_alloc wants a multiple of the alignment. */
    if (bytes > SIZE_MAX - 63)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

ssm_status ssmi_mpi_enter(ssmi_mpi_ctx *c, MPI_Comm comm)
{
    memset(c, 0, sizeof *c);
    c->comm = MPI_COMM_NULL;
    if (comm == MPI_COMM_NULL)
        return SSMI_MPI_FAIL(SSM_ERR_ARG);
    int inter = 0;
    if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS)
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    if (inter)
        return SSMI_MPI_FAIL(SSM_ERR_ARG);
    if (MPI_Comm_get_errhandler(comm, &c->saved) != MPI_SUCCESS)
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    if (MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN) != MPI_SUCCESS) {
        MPI_Errhandler_free(&c->saved);
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    }
    c->comm = comm;
    if (MPI_Comm_rank(comm, &c->rank) != MPI_SUCCESS ||
        MPI_Comm_size(comm, &c->size) != MPI_SUCCESS) {
        ssmi_mpi_leave(c);
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    }
    return SSM_OK;
}

void ssmi_mpi_leave(ssmi_mpi_ctx *c)
{
    if (c->comm == MPI_COMM_NULL)
        return;
    MPI_Comm_set_errhandler(c->comm, c->saved);
    MPI_Errhandler_free(&c->saved);
    c->comm = MPI_COMM_NULL;
}

/* ------------------------------------------------------------ agreement */

/* Layout of v: [0] bad, [1] nomem, [2] any-flag, [3] any declared,
 * then pairs (q, -q). */
#define AG_HEAD 4

void ssmi_agree_init(ssmi_agree *a, int bad, int nomem)
{
    memset(a, 0, sizeof *a);
    a->v[0] = bad ? 1 : 0;
    a->v[1] = nomem ? 1 : 0;
    /* A rank that failed to allocate may not have the values it would
     * share (zeros where a parameter copy failed): its values enter as
     * absent, so that the others' agreement stands and the answer is
     * SSM_ERR_NOMEM, not a disagreement (SSM_ERR_ARG). */
    a->absent = nomem && !bad;
}

void ssmi_agree_add(ssmi_agree *a, int64_t q)
{
    if (a->absent) {
        ssmi_agree_add_opt(a, 0, q);
        return;
    }
    if (a->n >= SSMI_AGREE_MAX - 2)
        return;
    /* -INT64_MIN overflows: clamp one below (such a size is invalid anyway). */
    if (q <= INT64_MIN + 2)
        q = INT64_MIN + 2;
    a->v[AG_HEAD + 2 * a->n] = q;
    a->v[AG_HEAD + 2 * a->n + 1] = -q;
    a->n++;
}

/* An absent value enters as (S, S), S = INT64_MIN + 1, below every
 * present q and -q: the maxima are then the present ranks'. */
#define AG_ABSENT (INT64_MIN + 1)

void ssmi_agree_add_opt(ssmi_agree *a, int present, int64_t q)
{
    if (present && !a->absent) {
        ssmi_agree_add(a, q);
        return;
    }
    if (a->n >= SSMI_AGREE_MAX - 2)
        return;
    a->v[AG_HEAD + 2 * a->n] = AG_ABSENT;
    a->v[AG_HEAD + 2 * a->n + 1] = AG_ABSENT;
    a->n++;
}

void ssmi_agree_any(ssmi_agree *a, int flag)
{
    a->v[2] = flag ? 1 : 0;
    a->v[3] = 1;
}

ssm_status ssmi_agree_run(const ssmi_mpi_ctx *c, ssmi_agree *a)
{
    int cnt = AG_HEAD + 2 * a->n;
    int64_t r[sizeof a->v / sizeof a->v[0]];
    if (MPI_Allreduce(a->v, r, cnt, MPI_INT64_T, MPI_MAX, c->comm) != MPI_SUCCESS)
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    a->any = r[2];
    if (r[0])
        return SSMI_MPI_FAIL(SSM_ERR_ARG);
    for (int i = 0; i < a->n; i++)
        if (!(r[AG_HEAD + 2 * i] == AG_ABSENT && r[AG_HEAD + 2 * i + 1] == AG_ABSENT) &&
            r[AG_HEAD + 2 * i] != -r[AG_HEAD + 2 * i + 1])
            return SSMI_MPI_FAIL(SSM_ERR_ARG);   /* ranks disagree */
    if (r[3] && !r[2])
        return SSMI_MPI_FAIL(SSM_ERR_ARG);       /* every block empty */
    if (r[1])
        return SSMI_MPI_FAIL(SSM_ERR_NOMEM);
    return SSM_OK;
}

ssm_status ssmi_mpi_status_agree(const ssmi_mpi_ctx *c, ssm_status local)
{
    int in = (int)local, out = 0;
    if (MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, c->comm) != MPI_SUCCESS)
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    return out == SSM_OK ? SSM_OK : SSMI_MPI_FAIL((ssm_status)out);
}

uint64_t ssmi_hash(uint64_t h, const void *p, size_t bytes)
{
    if (!p) {
        h ^= 0x5a5a5a5a5a5a5a5aull;
        return h * 0x100000001b3ull;
    }
    const unsigned char *s = p;
    for (size_t i = 0; i < bytes; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ------------------------------------------------------- carry exscans */

/* MPI applies a user operation as inoutvec[i] = invec[i] o inoutvec[i],
 * invec holding the lower ranks' (earlier) partial result; the operation
 * is declared non-commutative so that order is kept. */

/* Carries of h -> a h + b composed: applying (a1, b1) then (a2, b2) is
 * h -> a2 (a1 h + b1) + b2 = (a2 a1) h + (a2 b1 + b2). */
static void op_real(void *invec, void *inoutvec, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const float *x = invec;
    float *y = inoutvec;
    for (int i = 0; i < *len; i++) {
        const float a1 = x[2 * i], b1 = x[2 * i + 1];
        const float a2 = y[2 * i], b2 = y[2 * i + 1];
        y[2 * i] = a2 * a1;
        y[2 * i + 1] = fmaf(a2, b1, b2);
    }
}

/* The same with complex a and B states sharing it; B from the datatype. */
static void op_cplx(void *invec, void *inoutvec, int *len, MPI_Datatype *dt)
{
    int bytes = 0;
    MPI_Type_size(*dt, &bytes);
    const int64_t w = bytes / (int)sizeof(float);   /* 2 (1 + B) */
    const float *x = invec;
    float *y = inoutvec;
    for (int i = 0; i < *len; i++) {
        const float *xi = x + (int64_t)i * w;
        float *yi = y + (int64_t)i * w;
        const float a2r = yi[0], a2i = yi[1];
        for (int64_t j = 2; j < w; j += 2) {
            const float br = xi[j], bi = xi[j + 1];
            yi[j] = a2r * br - a2i * bi + yi[j];
            yi[j + 1] = a2r * bi + a2i * br + yi[j + 1];
        }
        const float a1r = xi[0], a1i = xi[1];
        yi[0] = a2r * a1r - a2i * a1i;
        yi[1] = a2r * a1i + a2i * a1r;
    }
}

/* The same with one real a for the M states of an element (SSD: a head's
 * scalar decay and its P x N state); M from the datatype. */
static void op_shared(void *invec, void *inoutvec, int *len, MPI_Datatype *dt)
{
    int bytes = 0;
    MPI_Type_size(*dt, &bytes);
    const int64_t w = bytes / (int)sizeof(float);   /* 1 + M */
    const float *x = invec;
    float *y = inoutvec;
    for (int i = 0; i < *len; i++) {
        const float *xi = x + (int64_t)i * w;
        float *yi = y + (int64_t)i * w;
        const float a2 = yi[0];
        for (int64_t j = 1; j < w; j++)
            yi[j] = fmaf(a2, xi[j], yi[j]);
        yi[0] = a2 * xi[0];
    }
}

void ssmi_halo_combine(const float *earlier, float *later, int64_t W)
{
    /* Element: [0] = count (a small integer, exact in float), values
     * right-aligned in [1 + W - count, 1 + W). */
    const int64_t c2 = (int64_t)later[0];
    if (c2 >= W)
        return;
    const int64_t c1 = (int64_t)earlier[0];
    const int64_t take = c1 < W - c2 ? c1 : W - c2;
    /* Shift the later values to the right end (they already are), then
     * put the last `take` earlier values just before them. */
    float *dst = later + 1 + W - c2 - take;
    const float *src = earlier + 1 + W - take;
    memcpy(dst, src, (size_t)take * sizeof(float));
    later[0] = (float)(c2 + take);
}

static void op_halo(void *invec, void *inoutvec, int *len, MPI_Datatype *dt)
{
    int bytes = 0;
    MPI_Type_size(*dt, &bytes);
    const int64_t w = bytes / (int)sizeof(float);   /* 1 + W */
    for (int i = 0; i < *len; i++)
        ssmi_halo_combine((const float *)invec + (int64_t)i * w,
                          (float *)inoutvec + (int64_t)i * w, w - 1);
}

/* One Exscan per slice of at most `chunk` elements of `width` floats. */
static ssm_status exscan_elems(const ssmi_mpi_ctx *c, const float *in,
                               float *out, int64_t cnt, int64_t width,
                               MPI_User_function *fn)
{
    if (width > INT_MAX / 4)
        return SSMI_MPI_FAIL(SSM_ERR_ARG);
    MPI_Datatype t;
    MPI_Op op;
    if (MPI_Type_contiguous((int)width, MPI_FLOAT, &t) != MPI_SUCCESS)
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    if (MPI_Type_commit(&t) != MPI_SUCCESS) {
        MPI_Type_free(&t);
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    }
    if (MPI_Op_create(fn, 0 /* not commutative */, &op) != MPI_SUCCESS) {
        MPI_Type_free(&t);
        return SSMI_MPI_FAIL(SSM_ERR_MPI);
    }
    ssm_status st = SSM_OK;
    /* Slices of at most 2^24 elements keep the count an int and the
     * library's internal byte counts small. */
    const int64_t chunk = (int64_t)1 << 24;
    for (int64_t o = 0; o < cnt && st == SSM_OK; o += chunk) {
        const int64_t m = cnt - o < chunk ? cnt - o : chunk;
        if (MPI_Exscan(in + o * width, out + o * width, (int)m, t, op,
                       c->comm) != MPI_SUCCESS)
            st = SSMI_MPI_FAIL(SSM_ERR_MPI);
    }
    MPI_Op_free(&op);
    MPI_Type_free(&t);
    return st;
}

ssm_status ssmi_mpi_exscan_real(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt)
{
    return exscan_elems(c, in, out, cnt, 2, op_real);
}

ssm_status ssmi_mpi_exscan_cplx(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt, int64_t B)
{
    return exscan_elems(c, in, out, cnt, 2 * (1 + B), op_cplx);
}

ssm_status ssmi_mpi_exscan_halo(const ssmi_mpi_ctx *c, const float *in,
                                float *out, int64_t cnt, int64_t W)
{
    return exscan_elems(c, in, out, cnt, 1 + W, op_halo);
}

ssm_status ssmi_mpi_exscan_shared(const ssmi_mpi_ctx *c, const float *in,
                                  float *out, int64_t cnt, int64_t M)
{
    return exscan_elems(c, in, out, cnt, 1 + M, op_shared);
}
