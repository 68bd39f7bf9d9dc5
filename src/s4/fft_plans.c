/*
 * fft_plans.c -- the cache of double-precision FFTW plans used by the free
 * functions ssm_kernel_dplr and ssm_conv_execute_d (before it, each call
 * planned and destroyed its own transforms, and FFTW's planner, even with
 * FFTW_ESTIMATE, costs about as much as a short transform; it also runs
 * under a process-wide lock, so concurrent callers queued on it).
 *
 * Design.  A fixed table of SSMI_FFT_SLOTS entries (kind, length, plan,
 * users, last use), guarded by ssmi_fftw_lock.  A miss makes the plan
 * (FFTW_ESTIMATE, on freshly fftw_malloc'ed arrays that are freed at once:
 * the plans only ever run through the new-array execute functions) and
 * stores it in a free slot, or in place of the least recently used entry
 * that no call is using (that plan is destroyed); when every slot is busy
 * the caller gets a plan of its own, destroyed when it is given back.  So
 * the cache holds at most SSMI_FFT_SLOTS plans (FFTW_ESTIMATE plans keep
 * twiddle tables of O(n) complex values: about 16 n bytes each), and
 * results never depend on whether a plan came from the cache: FFTW_ESTIMATE
 * picks the same algorithm for the same size and alignment.
 *
 * Lifetime.  The cache is freed by a destructor when libssm is unloaded
 * (dlclose) or the process exits, not by atexit (which a library must not
 * register: it could run after a dlclose); valgrind and LeakSanitizer then
 * see nothing left over.
 */
#include <pthread.h>
#include <string.h>

#include "s4/fftw_internal.h"

#define SSMI_FFT_SLOTS 16

typedef struct fft_slot {
    fftw_plan plan;     /* NULL: free slot */
    int kind, n;
    int users;          /* borrowers right now */
    uint64_t used;      /* tick of the last borrow (LRU) */
} fft_slot;

/* Guarded by ssmi_fftw_lock. */
static fft_slot fft_cache[SSMI_FFT_SLOTS];
static uint64_t fft_tick;

static pthread_once_t fftw_hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    /* FFTW >= 3.3.5: every planner call (fftw_plan_*, fftw_destroy_plan)
     * in the process then takes FFTW's own mutex, for the double and the
     * float library alike (libfftw3_threads / libfftw3f_threads). */
    fftw_make_planner_thread_safe();
    fftwf_make_planner_thread_safe();
}

void ssmi_fftw_thread_safe_init(void)
{
    pthread_once(&fftw_hooks_once, install_hooks);
}

/* At load time, before the host can have FFTW planner calls in flight
 * that the hooks would see only half of. */
__attribute__((constructor)) static void fft_plans_load(void)
{
    ssmi_fftw_thread_safe_init();
}

__attribute__((destructor)) static void fft_plans_unload(void)
{
    for (int i = 0; i < SSMI_FFT_SLOTS; i++)
        if (fft_cache[i].plan) {
            fftw_destroy_plan(fft_cache[i].plan);
            fft_cache[i].plan = NULL;
        }
}

/* A new plan, called with the lock held. */
static ssm_status make_plan(ssmi_fft_kind kind, int n, fftw_plan *out)
{
    const size_t nc = (size_t)n / 2 + 1;
    void *in, *o;
    *out = NULL;
    if (kind == SSMI_FFT_R2C) {
        in = ssmi_fftw_malloc((size_t)n * sizeof(double));
        o = ssmi_fftw_malloc(nc * sizeof(fftw_complex));
    } else if (kind == SSMI_FFT_C2R) {
        in = ssmi_fftw_malloc(nc * sizeof(fftw_complex));
        o = ssmi_fftw_malloc((size_t)n * sizeof(double));
    } else {
        in = ssmi_fftw_malloc((size_t)n * sizeof(fftw_complex));
        o = ssmi_fftw_malloc((size_t)n * sizeof(fftw_complex));
    }
    if (!in || !o) {
        fftw_free(in);
        fftw_free(o);
        return SSM_FAIL(SSM_ERR_NOMEM);
    }
    switch (kind) {
    case SSMI_FFT_R2C:
        *out = fftw_plan_dft_r2c_1d(n, in, o, FFTW_ESTIMATE);
        break;
    case SSMI_FFT_C2R:
        *out = fftw_plan_dft_c2r_1d(n, in, o, FFTW_ESTIMATE);
        break;
    case SSMI_FFT_FWD:
        *out = fftw_plan_dft_1d(n, in, o, FFTW_FORWARD, FFTW_ESTIMATE);
        break;
    case SSMI_FFT_BWD:
        *out = fftw_plan_dft_1d(n, in, o, FFTW_BACKWARD, FFTW_ESTIMATE);
        break;
    }
    fftw_free(in);
    fftw_free(o);
    return *out ? SSM_OK : SSM_FAIL(SSM_ERR_FFTW);
}

ssm_status ssmi_fft_plan_get(ssmi_fft_kind kind, int n, ssmi_fft_ref *ref)
{
    ref->plan = NULL;
    ref->slot = -1;
    ssmi_fftw_lock();
    for (int i = 0; i < SSMI_FFT_SLOTS; i++) {
        fft_slot *s = &fft_cache[i];
        if (s->plan && s->kind == (int)kind && s->n == n) {
            s->users++;
            s->used = ++fft_tick;
            ref->plan = s->plan;
            ref->slot = i;
            ssmi_fftw_unlock();
            return SSM_OK;
        }
    }
    fftw_plan p;
    ssm_status st = make_plan(kind, n, &p);
    if (st != SSM_OK) {
        ssmi_fftw_unlock();
        return st;
    }
    /* A free slot, else the least recently used idle one. */
    int pick = -1;
    for (int i = 0; i < SSMI_FFT_SLOTS && pick < 0; i++)
        if (!fft_cache[i].plan)
            pick = i;
    if (pick < 0) {
        uint64_t oldest = UINT64_MAX;
        for (int i = 0; i < SSMI_FFT_SLOTS; i++)
            if (fft_cache[i].users == 0 && fft_cache[i].used < oldest) {
                oldest = fft_cache[i].used;
                pick = i;
            }
        if (pick >= 0)
            fftw_destroy_plan(fft_cache[pick].plan);
    }
    if (pick >= 0) {
        fft_slot *s = &fft_cache[pick];
        s->plan = p;
        s->kind = (int)kind;
        s->n = n;
        s->users = 1;
        s->used = ++fft_tick;
    }
    ref->plan = p;
    ref->slot = pick;
    ssmi_fftw_unlock();
    return SSM_OK;
}

void ssmi_fft_plan_put(ssmi_fft_ref *ref)
{
    if (!ref->plan)
        return;
    ssmi_fftw_lock();
    if (ref->slot >= 0)
        fft_cache[ref->slot].users--;
    else
        fftw_destroy_plan(ref->plan);
    ssmi_fftw_unlock();
    ref->plan = NULL;
    ref->slot = -1;
}
