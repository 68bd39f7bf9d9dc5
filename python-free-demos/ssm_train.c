/*
 * ssm_train -- trains an S4D model from scratch in plain C (no Python) on
 * the delay task of ssm_demo: the input is a seeded band-limited signal
 * u (unit RMS), channel h must output u(t - tau_h), tau_h = tau (h+1)/H.
 *
 * Model, per channel h (S4D, Gu et al. 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models"): n complex modes with
 *   lambda = -exp(log_re) + i im,  dt = exp(log_dt),  B, C complex,
 *   K[l] = 2 Re sum_k C_k Bd_k Ad_k^l  (ZOH; conjugate pairs halved),
 *   y = K * u + D u                     (S4 eq. (4)-(5), FFT convolution).
 * Loss: mean squared error over batch, channels and time.
 * Gradients: ssm_conv_backward gives dK and dD, ssm_s4d_kernel_backward
 * takes dK to d lambda, dB, dC, d dt; chained to log_re, im, log_dt here.
 * Optimizer: AdamW, linear warmup + cosine, global-norm clipping at 1.
 * Every step is deterministic: the same losses for any thread count.
 */
#define _POSIX_C_SOURCE 200809L
#include <complex.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ssm.h>

#define PI 3.14159265358979323846

typedef struct opts {
    int64_t steps, n, len, H, batch, tau;
    uint64_t seed;
    double lr;
    const char *csv, *plot, *save, *load;
    int quiet;
    /* --model mamba */
    int mamba;                   /* 0: S4D (delay task), 1: Mamba LM (selective copy) */
    int64_t dm, layers, dstate, copies, nvals, evals;
    int set_len, set_batch, set_lr, set_steps;
} opts;

/* ---- random numbers and data (as ssm_demo: splitmix64, band-limited) ---- */
typedef struct rng { uint64_t s; } rng;
static uint64_t rng_u64(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(rng *r) { return ((double)(rng_u64(r) >> 11) + 0.5) * 0x1.0p-53; }
static double rng_normal(rng *r)
{
    double a = rng_unif(r), b = rng_unif(r);
    return sqrt(-2.0 * log(a)) * cos(2.0 * PI * b);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) { fprintf(stderr, "ssm_train: out of memory\n"); exit(1); }
    return p;
}

/* Unit-RMS sum of 24 cosines with random frequencies below fmax. */
static void bandlimited(rng *r, int64_t L, double fmax, float *u)
{
    enum { Q = 24 };
    double f[Q], a[Q], ph[Q], ss = 0.0;
    for (int q = 0; q < Q; q++) {
        f[q] = fmax * rng_unif(r);
        a[q] = rng_normal(r);
        ph[q] = 2.0 * PI * rng_unif(r);
    }
    double *v = xcalloc((size_t)L, sizeof(double));
    for (int64_t t = 0; t < L; t++) {
        double s = 0.0;
        for (int q = 0; q < Q; q++) s += a[q] * cos(2.0 * PI * f[q] * (double)t + ph[q]);
        v[t] = s;
        ss += s * s;
    }
    const double sc = ss > 0 ? 1.0 / sqrt(ss / (double)L) : 1.0;
    for (int64_t t = 0; t < L; t++) u[t] = (float)(v[t] * sc);
    free(v);
}

/* A batch: u [B][H][L] (one signal per sequence, on every channel) and
 * the delayed targets (zero before tau_h, as the causal model sees zeros). */
static void make_batch(rng *r, const opts *o, float *u, float *tgt)
{
    const int64_t L = o->len, H = o->H;
    float *s = xcalloc((size_t)L, sizeof(float));
    for (int64_t b = 0; b < o->batch; b++) {
        bandlimited(r, L, 1.0 / (double)o->tau, s);
        for (int64_t h = 0; h < H; h++) {
            const int64_t tau = o->tau * (h + 1) / H;
            float *ub = u + (b * H + h) * L, *yb = tgt + (b * H + h) * L;
            for (int64_t t = 0; t < L; t++) {
                ub[t] = s[t];
                yb[t] = t >= tau ? s[t - tau] : 0.0f;
            }
        }
    }
    free(s);
}

/* ---- parameters: one flat array, tensors at fixed offsets ---------------- */
enum { P_LOGDT, P_D, P_LOGRE, P_IM, P_B, P_C, P_COUNT };
static const char *pname[P_COUNT] = { "kernel.log_dt", "D", "kernel.log_A_real",
                                      "kernel.A_imag", "kernel.B", "kernel.C" };
typedef struct model {
    int64_t H, n, off[P_COUNT + 1];
    float *p, *g, *m, *v;   /* params, grads, AdamW moments */
} model;

static int64_t psize(const model *md, int k)
{
    return k <= P_D ? md->H : (k <= P_IM ? md->H * md->n : 2 * md->H * md->n);
}

static void model_init(model *md, int64_t H, int64_t n, uint64_t seed)
{
    md->H = H; md->n = n; md->off[0] = 0;
    for (int k = 0; k < P_COUNT; k++) md->off[k + 1] = md->off[k] + psize(md, k);
    const int64_t N = md->off[P_COUNT];
    md->p = xcalloc((size_t)N, sizeof(float)); md->g = xcalloc((size_t)N, sizeof(float));
    md->m = xcalloc((size_t)N, sizeof(float)); md->v = xcalloc((size_t)N, sizeof(float));
    rng r = { seed ^ 0x5EEDull }; rng_u64(&r);
    float *P = md->p;
    /* S4D-Lin initialisation: lambda_k = -1/2 + i pi k, B = 1, C ~ N(0, 1/2)
     * complex, log dt uniform in [log 1e-3, log 1e-1], D ~ N(0, 1). */
    for (int64_t h = 0; h < H; h++) {
        P[md->off[P_LOGDT] + h] = (float)(log(1e-3) + rng_unif(&r) * (log(1e-1) - log(1e-3)));
        P[md->off[P_D] + h] = (float)rng_normal(&r);
        for (int64_t k = 0; k < n; k++) {
            P[md->off[P_LOGRE] + h * n + k] = (float)log(0.5);
            P[md->off[P_IM] + h * n + k] = (float)(PI * (double)k);
            P[md->off[P_B] + 2 * (h * n + k)] = 1.0f;
            P[md->off[P_C] + 2 * (h * n + k)] = (float)(rng_normal(&r) * sqrt(0.5));
            P[md->off[P_C] + 2 * (h * n + k) + 1] = (float)(rng_normal(&r) * sqrt(0.5));
        }
    }
}

/* Per-step scratch. */
typedef struct work {
    ssm_cdouble *lam, *B, *C2, *Ad, *Bd, *dlam, *dB, *dC;
    double *Kd, *dKd;
    float *K, *dK, *dD, *y, *dy;
} work;

/* Kernels K [H][L] from the parameters. */
static int kernels(const model *md, int64_t L, work *w)
{
    const int64_t n = md->n;
    const float *P = md->p;
    for (int64_t h = 0; h < md->H; h++) {
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = h * n + k;
            w->lam[k] = -exp((double)P[md->off[P_LOGRE] + i]) + I * (double)P[md->off[P_IM] + i];
            w->B[k] = P[md->off[P_B] + 2 * i] + I * (double)P[md->off[P_B] + 2 * i + 1];
            w->C2[k] = 2.0 * (P[md->off[P_C] + 2 * i] + I * (double)P[md->off[P_C] + 2 * i + 1]);
        }
        const double dt = exp((double)P[md->off[P_LOGDT] + h]);
        if (ssm_discretize_diag(SSM_ZOH, n, w->lam, w->B, dt, w->Ad, w->Bd) != SSM_OK ||
            ssm_kernel_diag(n, w->Ad, w->Bd, w->C2, L, w->Kd) != SSM_OK)
            return 1;
        for (int64_t l = 0; l < L; l++) w->K[h * L + l] = (float)w->Kd[l];
    }
    return 0;
}

/* Forward (+ loss); with grads, the backward into md->g. */
static double step_fg(model *md, const ssm_conv_plan *plan, int64_t batch, int64_t L,
                      const float *u, const float *tgt, work *w, int grads)
{
    const int64_t H = md->H, n = md->n, cnt = batch * H * L;
    if (kernels(md, L, w)) return NAN;
    const float *D = md->p + md->off[P_D];
    if (ssm_conv_execute(plan, batch, w->K, D, u, w->y) != SSM_OK) return NAN;
    double loss = 0.0;
    for (int64_t i = 0; i < cnt; i++) {
        const double e = (double)w->y[i] - tgt[i];
        loss += e * e;
        w->dy[i] = (float)(2.0 * e / (double)cnt);
    }
    loss /= (double)cnt;
    if (!grads) return loss;
    if (ssm_conv_backward(plan, batch, w->K, D, u, w->dy, NULL, w->dK, w->dD) != SSM_OK)
        return NAN;
    float *G = md->g;
    const float *P = md->p;
    for (int64_t h = 0; h < H; h++) {
        G[md->off[P_D] + h] = w->dD[h];
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = h * n + k;
            w->lam[k] = -exp((double)P[md->off[P_LOGRE] + i]) + I * (double)P[md->off[P_IM] + i];
            w->B[k] = P[md->off[P_B] + 2 * i] + I * (double)P[md->off[P_B] + 2 * i + 1];
            w->C2[k] = 2.0 * (P[md->off[P_C] + 2 * i] + I * (double)P[md->off[P_C] + 2 * i + 1]);
        }
        const double dt = exp((double)P[md->off[P_LOGDT] + h]);
        for (int64_t l = 0; l < L; l++) w->dKd[l] = w->dK[h * L + l];
        double ddt = 0.0;
        if (ssm_s4d_kernel_backward(SSM_ZOH, n, w->lam, w->B, w->C2, dt, L, w->dKd,
                                    w->dlam, w->dB, w->dC, &ddt) != SSM_OK)
            return NAN;
        G[md->off[P_LOGDT] + h] = (float)(dt * ddt);
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = h * n + k;
            /* lambda = -exp(log_re) + i im; C2 = 2 C so dC = 2 dC2. */
            G[md->off[P_LOGRE] + i] = (float)(creal(w->lam[k]) * creal(w->dlam[k]));
            G[md->off[P_IM] + i] = (float)cimag(w->dlam[k]);
            G[md->off[P_B] + 2 * i] = (float)creal(w->dB[k]);
            G[md->off[P_B] + 2 * i + 1] = (float)cimag(w->dB[k]);
            G[md->off[P_C] + 2 * i] = (float)(2.0 * creal(w->dC[k]));
            G[md->off[P_C] + 2 * i + 1] = (float)(2.0 * cimag(w->dC[k]));
        }
    }
    return loss;
}

/* ---- save / load --------------------------------------------------------- */
/* The kernel sees B and C only through the products C_k B_k (K[l] =
 * 2 Re sum_k C_k B_k dt phi1(z_k) e^(z_k l), ZOH), so the file stores C B as
 * kernel.C and B = 1: the s4 module's layout, which ssm_s4d_layer_load reads
 * (it has no B) into the same model; --load gets the same model back. */
static int save_model(const model *md, const char *path)
{
    int64_t shp[P_COUNT][3];
    ssm_tensor_desc t[P_COUNT];
    const int64_t hn = md->H * md->n;
    float *fold = xcalloc((size_t)(4 * hn), sizeof(float)), *Bone = fold + 2 * hn;
    for (int64_t i = 0; i < hn; i++) {
        const float br = md->p[md->off[P_B] + 2 * i], bi = md->p[md->off[P_B] + 2 * i + 1];
        const float cr = md->p[md->off[P_C] + 2 * i], ci = md->p[md->off[P_C] + 2 * i + 1];
        fold[2 * i] = (float)((double)cr * br - (double)ci * bi);
        fold[2 * i + 1] = (float)((double)cr * bi + (double)ci * br);
        Bone[2 * i] = 1.0f;
        Bone[2 * i + 1] = 0.0f;
    }
    for (int k = 0; k < P_COUNT; k++) {
        shp[k][0] = md->H; shp[k][1] = md->n; shp[k][2] = 2;
        t[k].name = pname[k];
        t[k].dtype = SSM_DTYPE_F32;
        t[k].ndim = k <= P_D ? 1 : (k <= P_IM ? 2 : 3);
        t[k].shape = shp[k];
        t[k].data = k == P_C ? fold : (k == P_B ? Bone : md->p + md->off[k]);
    }
    const char *keys[] = { "format", "producer" }, *vals[] = { "pt", "libssm ssm_train (S4D, delay task)" };
    ssm_status st = ssm_safetensors_write(path, P_COUNT, t, 2, keys, vals);
    free(fold);
    if (st != SSM_OK)
        fprintf(stderr, "ssm_train: cannot write '%s': %s\n", path, ssm_status_string(st));
    return st != SSM_OK;
}

/* Reload the saved file with ssm_s4d_layer_load and check that the layer
 * (conv mode) reproduces the model's outputs y on the inputs u.  Expected
 * difference per channel h, normwise (Young: ||K * u|| <= ||K||_1 ||u||):
 * both kernels are the exact one up to ~(l + 4) eps_f per term (the layer's
 * float Ad, Bd, Ce and the folded C B), plus the FFTs' eps_f log2 N, so
 *   ||y_layer - y_model|| <= 2 eps_f (L + log2 N + 8) (||Kabs||_1 + |D|) ||u||
 * with Kabs[l] = sum_k |2 C_k Bd_k| |Ad_k|^l. */
static int verify_saved(const model *md, const char *path, int64_t batch, int64_t L,
                        const float *u, const float *y, work *w)
{
    ssm_tensor_file *f = NULL;
    ssm_s4d_layer *ly = NULL;
    const int64_t H = md->H, n = md->n;
    float *yl = xcalloc((size_t)(batch * H * L), sizeof(float));
    ssm_status st = ssm_tensor_file_open(&f, path);
    if (st == SSM_OK) st = ssm_s4d_layer_load(&ly, f, "", SSM_ZOH);
    if (st == SSM_OK) st = ssm_s4d_layer_forward(ly, SSM_MODE_CONV, batch, L, u, yl);
    ssm_s4d_layer_destroy(ly);
    ssm_tensor_file_close(f);
    if (st != SSM_OK) {
        fprintf(stderr, "ssm_train: ssm_s4d_layer_load cannot use '%s': %s\n", path,
                ssm_status_string(st));
        free(yl);
        return 1;
    }
    double N = 1.0, worst = 0.0;
    while (N < 2.0 * (double)L) N *= 2.0;
    const float *P = md->p;
    for (int64_t h = 0; h < H; h++) {
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = h * n + k;
            w->lam[k] = -exp((double)P[md->off[P_LOGRE] + i]) + I * (double)P[md->off[P_IM] + i];
            w->B[k] = P[md->off[P_B] + 2 * i] + I * (double)P[md->off[P_B] + 2 * i + 1];
        }
        if (ssm_discretize_diag(SSM_ZOH, n, w->lam, w->B, exp((double)P[md->off[P_LOGDT] + h]),
                                w->Ad, w->Bd) != SSM_OK) { free(yl); return 1; }
        double kabs = fabs((double)P[md->off[P_D] + h]);
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = h * n + k;
            double a = 2.0 * cabs((P[md->off[P_C] + 2 * i] + I * (double)P[md->off[P_C] + 2 * i + 1]) *
                                  w->Bd[k]);
            for (int64_t l = 0; l < L; l++, a *= cabs(w->Ad[k])) kabs += a;
        }
        double e2 = 0.0, u2 = 0.0;
        for (int64_t b = 0; b < batch; b++)
            for (int64_t t = 0; t < L; t++) {
                const int64_t j = (b * H + h) * L + t;
                e2 += ((double)yl[j] - y[j]) * ((double)yl[j] - y[j]);
                u2 += (double)u[j] * u[j];
            }
        const double bound = 2.0 * FLT_EPSILON * ((double)L + log2(N) + 8.0) * kabs * sqrt(u2);
        const double r = bound > 0.0 ? sqrt(e2) / bound : (e2 > 0.0 ? INFINITY : 0.0);
        if (r > worst) worst = r;
    }
    free(yl);
    printf("saved model reloaded by ssm_s4d_layer_load: worst channel error/bound %.3g\n", worst);
    if (!(worst <= 1.0)) {
        fprintf(stderr, "ssm_train: the layer loaded from '%s' does not reproduce the model\n", path);
        return 1;
    }
    return 0;
}

static int load_model(model *md, const char *path)
{
    ssm_tensor_file *f = NULL;
    ssm_status st = ssm_tensor_file_open(&f, path);
    for (int k = 0; k < P_COUNT && st == SSM_OK; k++)
        st = ssm_tensor_file_read_f32(f, pname[k], md->p + md->off[k], psize(md, k));
    ssm_tensor_file_close(f);
    if (st != SSM_OK)
        fprintf(stderr, "ssm_train: cannot load '%s' (H = %" PRId64 ", n = %" PRId64 "): %s\n",
                path, md->H, md->n, ssm_status_string(st));
    return st != SSM_OK;
}

/* ---- --model mamba: a tiny Mamba language model on selective copying ----
 *
 * Task (Mamba, Gu and Dao 2023, section 4.1.1, "selective copying"): a
 * context of `len` tokens is noise (token 0) except `copies` data tokens
 * (values 2..nvals+1) at random positions; then `copies` marker tokens
 * (1) follow, and at the i-th marker the model must output the i-th data
 * token.  Positions vary per sequence, so a time-invariant model (S4D's
 * convolution) cannot solve it; the input-dependent selection of Mamba can.
 * Model: token embedding E [Vp][Dm] -> Mamba stack (pre-norm residual
 * blocks, final RMSNorm; ssm/mamba.h) -> head tied to E (ssm/model.h's
 * network).  Loss: cross-entropy on the answer positions only (every other
 * target is the ignore index).  Gradients: ssm_lm_head_xent (dh, dE from
 * the head), ssm_mamba_stack_forward_train + ssm_mamba_stack_backward_saved
 * (dx, every block and norm weight; the forward's residual inputs kept),
 * ssm_embedding_backward (adds into dE).  All deterministic: the same loss
 * curve for any thread count. */

enum { SC_NOISE = 0, SC_MARK = 1, SC_IGNORE = -1 };

typedef struct lm {
    int64_t V, Vp, Dm, T, np;   /* vocabulary, padded rows, width, sequence, stack floats */
    ssm_mamba_stack *stk;
    ssm_mamba_stack_grads *grads;
    float *E, *dE, *mE, *vE;    /* embedding, its gradient, AdamW moments */
    float *p, *m, *v;           /* stack parameters (flat), AdamW moments */
    float *x, *y, *dy;          /* [B][T][Dm] */
    int32_t *tok, *tgt, *pred;  /* [B][T] */
} lm;

/* A batch of selective-copy sequences: tok, tgt [B][T], T = len + copies. */
static void sc_batch(rng *r, const opts *o, int32_t *tok, int32_t *tgt)
{
    const int64_t Lc = o->len, M = o->copies, T = Lc + M;
    int64_t pos[64];
    for (int64_t b = 0; b < o->batch; b++) {
        int32_t *tk = tok + b * T, *tg = tgt + b * T;
        for (int64_t t = 0; t < T; t++) {
            tk[t] = t < Lc ? SC_NOISE : SC_MARK;
            tg[t] = SC_IGNORE;
        }
        /* M distinct positions (rejection), then in increasing order */
        for (int64_t i = 0; i < M; i++) {
            int64_t q;
            int dup;
            do {
                q = (int64_t)(rng_u64(r) % (uint64_t)Lc);
                dup = 0;
                for (int64_t j = 0; j < i; j++) dup |= pos[j] == q;
            } while (dup);
            pos[i] = q;
        }
        for (int64_t i = 1; i < M; i++)
            for (int64_t j = i; j > 0 && pos[j - 1] > pos[j]; j--) {
                const int64_t s = pos[j]; pos[j] = pos[j - 1]; pos[j - 1] = s;
            }
        for (int64_t i = 0; i < M; i++) {
            const int32_t val = (int32_t)(2 + rng_u64(r) % (uint64_t)o->nvals);
            tk[pos[i]] = val;
            tg[Lc + i] = val;
        }
    }
}

static ssm_mamba_config lm_cfg(const opts *o)
{
    ssm_mamba_config c;
    ssm_mamba_config_init(&c);
    c.d_model = o->dm;
    c.d_state = o->dstate;
    c.d_conv = 4;
    c.expand = 2;
    return c;
}

static int lm_init(lm *md, const opts *o)
{
    memset(md, 0, sizeof *md);
    md->V = o->nvals + 2;
    md->Vp = (md->V + 7) / 8 * 8;   /* padded as mamba_ssm's pad_vocab_size_multiple 8 */
    md->Dm = o->dm;
    md->T = o->len + o->copies;
    ssm_mamba_config c = lm_cfg(o);
    if (ssm_mamba_stack_create(&md->stk, &c, o->layers, o->seed) != SSM_OK ||
        ssm_mamba_stack_grads_create(&md->grads, md->stk) != SSM_OK ||
        ssm_mamba_stack_param_total(md->stk, &md->np) != SSM_OK) {
        fprintf(stderr, "ssm_train: cannot create the Mamba stack\n");
        return 1;
    }
    const size_t ne = (size_t)(md->Vp * md->Dm), nx = (size_t)(o->batch * md->T * md->Dm);
    md->E = xcalloc(ne, sizeof(float)); md->dE = xcalloc(ne, sizeof(float));
    md->mE = xcalloc(ne, sizeof(float)); md->vE = xcalloc(ne, sizeof(float));
    md->p = xcalloc((size_t)md->np, sizeof(float));
    md->m = xcalloc((size_t)md->np, sizeof(float));
    md->v = xcalloc((size_t)md->np, sizeof(float));
    md->x = xcalloc(nx, sizeof(float)); md->y = xcalloc(nx, sizeof(float));
    md->dy = xcalloc(nx, sizeof(float));
    const size_t nt = (size_t)(o->batch * md->T);
    md->tok = xcalloc(nt, sizeof(int32_t)); md->tgt = xcalloc(nt, sizeof(int32_t));
    md->pred = xcalloc(nt, sizeof(int32_t));
    /* mamba_ssm's _init_weights: embedding ~ N(0, 0.02) */
    rng r = { o->seed ^ 0xE4BEDull }; rng_u64(&r);
    for (size_t i = 0; i < ne; i++) md->E[i] = (float)(0.02 * rng_normal(&r));
    ssm_mamba_stack_params_get(md->stk, md->p, md->np);
    return 0;
}

static void lm_free(lm *md)
{
    ssm_mamba_stack_grads_destroy(md->grads);
    ssm_mamba_stack_destroy(md->stk);
    free(md->E); free(md->dE); free(md->mE); free(md->vE); free(md->p); free(md->m);
    free(md->v); free(md->x); free(md->y); free(md->dy); free(md->tok); free(md->tgt);
    free(md->pred);
}

/* Forward (+ loss and accuracy on the answer positions); with grads, the
 * backward into md->grads and md->dE.  Returns the loss, NaN on failure. */
static double lm_step(lm *md, int64_t Bt, int grads, int64_t *right, int64_t *total)
{
    const int64_t rows = Bt * md->T;
    double loss = NAN;
    int64_t cnt = 0;
    /* training: the forward keeps the residual inputs for the backward */
    if (ssm_embedding_forward(rows, md->Dm, md->Vp, md->E, md->tok, md->x) != SSM_OK ||
        (grads ? ssm_mamba_stack_forward_train(md->stk, md->grads, Bt, md->T, md->x, md->y)
               : ssm_mamba_stack_forward_det(md->stk, Bt, md->T, md->x, md->y)) != SSM_OK ||
        ssm_lm_head_xent(rows, md->Dm, md->V, md->Vp, md->y, md->E, md->tgt, SC_IGNORE,
                         &loss, &cnt, md->pred, grads ? md->dy : NULL,
                         grads ? md->dE : NULL) != SSM_OK)
        return NAN;
    if (right && total) {
        for (int64_t i = 0; i < rows; i++)
            if (md->tgt[i] != SC_IGNORE) {
                *right += md->pred[i] == md->tgt[i];
                (*total)++;
            }
    }
    if (!grads) return loss;
    /* the stack's dx goes into y (no longer needed), then joins the head's dE */
    if (ssm_mamba_stack_backward_saved(md->stk, md->grads, md->dy, md->y) != SSM_OK ||
        ssm_embedding_backward(rows, md->Dm, md->Vp, md->tok, md->y, md->dE) != SSM_OK)
        return NAN;
    return loss;
}

/* Tensor names as mamba_ssm's MambaLMHeadModel (tied head: no lm_head). */
static const char *mixer_name[SSM_MAMBA_NPARAMS] = {
    "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
    "dt_proj.bias", "A_log", "D", "out_proj.weight" };

static int lm_tensors(lm *md, const opts *o, int load, const char *path)
{
    ssm_mamba_config c;
    ssm_mamba *b0 = NULL;
    ssm_mamba_stack_block(md->stk, 0, &b0);
    ssm_mamba_get_config(b0, &c);
    const int64_t Dm = md->Dm, Di = c.expand * Dm, N = c.d_state, K = c.d_conv, R = c.dt_rank;
    const int64_t shp[SSM_MAMBA_NPARAMS][3] = {
        { 2 * Di, Dm, 0 }, { Di, 1, K }, { Di, 0, 0 }, { R + 2 * N, Di, 0 }, { Di, R, 0 },
        { Di, 0, 0 }, { Di, N, 0 }, { Di, 0, 0 }, { Dm, Di, 0 } };
    const int nd[SSM_MAMBA_NPARAMS] = { 2, 3, 1, 2, 2, 1, 2, 1, 2 };
    const int64_t nt = 2 + o->layers * (SSM_MAMBA_NPARAMS + 1);
    ssm_tensor_desc *t = xcalloc((size_t)nt, sizeof *t);
    char (*names)[96] = xcalloc((size_t)nt, sizeof *names);
    float **bufs = xcalloc((size_t)nt, sizeof(float *));
    int64_t *cnts = xcalloc((size_t)nt, sizeof(int64_t));
    const int64_t vshape[2] = { md->Vp, Dm }, nshape[1] = { Dm };
    int64_t k = 0;
    snprintf(names[k], sizeof names[k], "backbone.embedding.weight");
    t[k].ndim = 2; t[k].shape = vshape; bufs[k] = md->E; cnts[k++] = md->Vp * Dm;
    for (int64_t l = 0; l < o->layers; l++) {
        ssm_mamba *blk = NULL;
        ssm_mamba_stack_block(md->stk, l, &blk);
        for (int p = 0; p < SSM_MAMBA_NPARAMS; p++) {
            snprintf(names[k], sizeof names[k], "backbone.layers.%" PRId64 ".mixer.%s", l,
                     mixer_name[p]);
            t[k].ndim = nd[p]; t[k].shape = shp[p];
            ssm_mamba_param_count(blk, (ssm_mamba_param)p, &cnts[k]);
            bufs[k] = xcalloc((size_t)cnts[k], sizeof(float));
            if (!load) ssm_mamba_get_param(blk, (ssm_mamba_param)p, bufs[k], cnts[k]);
            k++;
        }
        snprintf(names[k], sizeof names[k], "backbone.layers.%" PRId64 ".norm.weight", l);
        t[k].ndim = 1; t[k].shape = nshape; cnts[k] = Dm;
        bufs[k] = xcalloc((size_t)Dm, sizeof(float));
        if (!load) ssm_mamba_stack_get_norm(md->stk, l, bufs[k], Dm);
        k++;
    }
    snprintf(names[k], sizeof names[k], "backbone.norm_f.weight");
    t[k].ndim = 1; t[k].shape = nshape; cnts[k] = Dm;
    bufs[k] = xcalloc((size_t)Dm, sizeof(float));
    if (!load) ssm_mamba_stack_get_norm(md->stk, o->layers, bufs[k], Dm);
    k++;
    ssm_status st = SSM_OK;
    if (!load) {
        for (int64_t i = 0; i < nt; i++) {
            t[i].name = names[i]; t[i].dtype = SSM_DTYPE_F32; t[i].data = bufs[i];
        }
        char meta[4][32];
        snprintf(meta[0], sizeof meta[0], "%" PRId64, Dm);
        snprintf(meta[1], sizeof meta[1], "%" PRId64, o->layers);
        snprintf(meta[2], sizeof meta[2], "%" PRId64, md->V);
        snprintf(meta[3], sizeof meta[3], "%" PRId64, N);
        const char *keys[] = { "format", "producer", "d_model", "n_layer", "vocab_size", "d_state" };
        const char *vals[] = { "pt", "libssm ssm_train (Mamba LM, selective copying; tied embeddings)",
                               meta[0], meta[1], meta[2], meta[3] };
        st = ssm_safetensors_write(path, nt, t, 6, keys, vals);
        if (st != SSM_OK)
            fprintf(stderr, "ssm_train: cannot write '%s': %s\n", path, ssm_status_string(st));
    } else {
        ssm_tensor_file *f = NULL;
        st = ssm_tensor_file_open(&f, path);
        for (int64_t i = 0; i < nt && st == SSM_OK; i++)
            st = ssm_tensor_file_read_f32(f, names[i], bufs[i], cnts[i]);
        ssm_tensor_file_close(f);
        /* into the stack: blocks, norms (each checked: finite values) */
        k = 1;
        for (int64_t l = 0; l < o->layers && st == SSM_OK; l++) {
            ssm_mamba *blk = NULL;
            ssm_mamba_stack_block(md->stk, l, &blk);
            for (int p = 0; p < SSM_MAMBA_NPARAMS && st == SSM_OK; p++, k++)
                st = ssm_mamba_set_param(blk, (ssm_mamba_param)p, bufs[k], cnts[k]);
            if (st == SSM_OK) st = ssm_mamba_stack_set_norm(md->stk, l, bufs[k], Dm);
            k++;
        }
        if (st == SSM_OK) st = ssm_mamba_stack_set_norm(md->stk, o->layers, bufs[k], Dm);
        if (st == SSM_OK) st = ssm_mamba_stack_params_get(md->stk, md->p, md->np);
        for (int64_t i = 0; i < md->Vp * Dm && st == SSM_OK; i++)
            if (!isfinite(md->E[i])) st = SSM_ERR_FORMAT;
        if (st != SSM_OK)
            fprintf(stderr, "ssm_train: cannot load '%s' (Mamba, d_model %" PRId64 ", %" PRId64
                    " layers, d_state %" PRId64 ", vocab %" PRId64 "): %s\n", path, Dm,
                    o->layers, N, md->V, ssm_status_string(st));
    }
    for (int64_t i = 1; i < nt; i++) free(bufs[i]);
    free(bufs); free(cnts); free(names); free(t);
    return st != SSM_OK;
}

static int plot(const char *png, const char *csv, int mamba);
static double now(void);

/* Held-out evaluation: `evals` batches from a stream training never uses. */
static double lm_eval(lm *md, const opts *o, double *acc)
{
    rng held = { o->seed ^ 0xE7A1ull * 0x9E37ull }; rng_u64(&held);
    double loss = 0.0;
    int64_t right = 0, total = 0;
    for (int64_t e = 0; e < o->evals; e++) {
        sc_batch(&held, o, md->tok, md->tgt);
        loss += lm_step(md, o->batch, 0, &right, &total) / (double)o->evals;
    }
    *acc = total ? (double)right / (double)total : 0.0;
    return loss;
}

static int main_mamba(const opts *o, FILE *csv)
{
    lm md;
    if (lm_init(&md, o)) return 1;
    if (o->load && lm_tensors(&md, o, 1, o->load)) { lm_free(&md); return 1; }
    float *gflat = NULL;
    int64_t ng = 0;
    ssm_mamba_stack_grads_data(md.grads, &gflat, &ng);
    const int64_t Bt = o->batch, T = md.T;
    if (!o->quiet) {
        char blas[64];
        ssm_blas_describe(blas, sizeof blas);
        printf("ssm_train: Mamba LM, d_model %" PRId64 ", %" PRId64 " layers, d_state %" PRId64
               ", vocab %" PRId64 " (%" PRId64 " rows), %" PRId64 " parameters; selective "
               "copying of %" PRId64 " tokens in %" PRId64 ", batch %" PRId64 ", %" PRId64
               " steps, seed %" PRIu64 "%s%s; %s\n",
               o->dm, o->layers, o->dstate, md.V, md.Vp, md.np + md.Vp * md.Dm, o->copies,
               o->len, Bt, o->steps, o->seed, o->load ? ", from " : "",
               o->load ? o->load : "", blas);
    }
    if (csv) fprintf(csv, "step,lr,loss,grad_norm,accuracy\n");
    rng train = { o->seed ^ 0x7A11ull }; rng_u64(&train);
    ssm_adamw_config cfg = { o->lr, 0.9, 0.999, 1e-8, 0.0 };
    const int64_t warmup = o->steps / 10;
    float *grads[2] = { gflat, md.dE };
    const int64_t sizes[2] = { ng, md.Vp * md.Dm };
    double t0 = now(), last = 0.0, loss0 = NAN, acc_w = 0.0;
    int64_t r_w = 0, n_w = 0;
    int skipped = 0;
    for (int64_t s = 0; s < o->steps; s++) {
        sc_batch(&train, o, md.tok, md.tgt);
        int64_t right = 0, total = 0;
        const double loss = lm_step(&md, Bt, 1, &right, &total);
        if (!isfinite(loss)) {
            fprintf(stderr, "ssm_train: step %" PRId64 ": the loss is not finite\n", s + 1);
            lm_free(&md);
            return 1;
        }
        if (s == 0) loss0 = loss;
        last = loss;
        r_w += right; n_w += total;
        double gn = 0.0;
        ssm_lr_warmup_cosine(s, warmup, o->steps, o->lr, o->lr / 20.0, &cfg.lr);
        ssm_status st = ssm_clip_grad_norm(grads, sizes, 2, 1.0, &gn);
        if (st == SSM_OK) {
            ssm_adamw_step(&cfg, s + 1, md.np, md.p, gflat, md.m, md.v);
            ssm_adamw_step(&cfg, s + 1, md.Vp * md.Dm, md.E, md.dE, md.mE, md.vE);
            if (ssm_mamba_stack_params_set(md.stk, md.p, md.np) != SSM_OK) {
                fprintf(stderr, "ssm_train: step %" PRId64 ": parameters not finite\n", s + 1);
                lm_free(&md);
                return 1;
            }
        } else
            skipped++;
        if (csv)
            fprintf(csv, "%" PRId64 ",%.9g,%.17g,%.9g,%.6f\n", s + 1, cfg.lr, loss, gn,
                    total ? (double)right / (double)total : 0.0);
        if (!o->quiet && ((s + 1) % 25 == 0 || s + 1 == o->steps)) {
            const double el = now() - t0;
            acc_w = n_w ? (double)r_w / (double)n_w : 0.0;
            printf("step %6" PRId64 "/%" PRId64 "  loss %.4f  acc %.3f  lr %.2e  |g| %.3e  "
                   "%.0f tokens/s\n", s + 1, o->steps, loss, acc_w, cfg.lr, gn,
                   (double)(s + 1) * (double)(Bt * T) / el);
            fflush(stdout);
            r_w = n_w = 0;
        }
    }
    const double secs = now() - t0;
    double acc = 0.0;
    const double eval = lm_eval(&md, o, &acc);
    printf("first loss %.6f  last loss %.6f  held-out loss %.6f  accuracy %.4f  (chance %.4f; "
           "%d skipped steps, %.2f s, %.0f tokens/s)\n", loss0, last, eval, acc,
           1.0 / (double)o->nvals, skipped, secs, (double)o->steps * (double)(Bt * T) / secs);
    printf("held-out accuracy: %.6f\n", acc);
    int rc = 0;
    if (o->save) rc |= lm_tensors(&md, o, 0, o->save);
    if (csv) fclose(csv);
    if (o->plot) rc |= plot(o->plot, o->csv, 1);
    lm_free(&md);
    return rc;
}

/* ---- plot ---------------------------------------------------------------- */
static int plot(const char *png, const char *csv, int mamba)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "ssm_train: --plot needs gnuplot, which is not installed: "
                        "apt-get install gnuplot-nox (no plot written)\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    FILE *g = popen("gnuplot >/dev/null", "w");
    if (!g) { fprintf(stderr, "ssm_train: could not run gnuplot\n"); return 1; }
    fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size 800,500 font 'sans,10'\n"
               "} else { set terminal png size 800,500 }\n");
    fprintf(g, "set output '%s'\nset datafile separator ','\nset logscale y\n"
               "set xlabel 'step'\nset ylabel '%s'\nset grid\n"
               "set title 'ssm\\_train: %s'\n"
               "plot '%s' every ::1 using 1:3 with lines lw 2 title 'training loss'\n",
            png, mamba ? "cross-entropy (answer tokens)" : "MSE",
            mamba ? "Mamba LM on selective copying" : "S4D on the delay task", csv);
    int rc = pclose(g);
    if (rc != 0) { fprintf(stderr, "ssm_train: gnuplot failed (status %d)\n", rc); return 1; }
    return 0;
}

/* ---- options ------------------------------------------------------------- */
static void usage(FILE *f)
{
    fprintf(f,
"usage: ssm_train [--model s4d|mamba] [--task delay|selective-copy] [--steps S]\n"
"                 [--seed S] [--len L] [--batch B] [--lr LR] [--csv FILE]\n"
"                 [--plot FILE.png] [--save FILE.safetensors]\n"
"                 [--load FILE.safetensors] [--quiet]\n"
"                 s4d:   [--n N] [--channels H] [--tau T]\n"
"                 mamba: [--d-model D] [--layers NL] [--d-state N] [--copies M]\n"
"                        [--values V] [--evals E]\n"
"--model s4d (default; task delay): trains an S4D layer (lambda, B, C, dt, D per\n"
"channel) on the delay task of ssm_demo: channel h outputs its band-limited\n"
"input delayed by tau (h+1)/H.\n"
"--model mamba (task selective-copy): trains a Mamba language model (embedding,\n"
"Mamba blocks, tied head) to copy M data tokens scattered among noise tokens,\n"
"in order, at M marker tokens after the context (Mamba paper, section 4.1.1);\n"
"cross-entropy on the answer tokens, held-out accuracy at the end.\n"
"  --steps S     optimizer steps, 1..1000000 (default 300; mamba 400)\n"
"  --seed S      seed of the data and the initialisation (default 1)\n"
"  --len L       sequence length, 16..65536 (default 256); mamba: context\n"
"                length before the markers, 8..4096 (default 16)\n"
"  --batch B     sequences per step, 1..1024 (default 8; mamba 16)\n"
"  --lr LR       peak learning rate, (0, 1] (default 0.01)\n"
"  --csv FILE    loss curve: step,lr,loss,grad_norm (mamba: ,accuracy)\n"
"  --plot FILE   draw the --csv loss curve as a PNG through gnuplot, when installed\n"
"  --save FILE   write the trained parameters (safetensors; mamba: mamba_ssm names)\n"
"  --load FILE   start from saved parameters (fine-tuning)\n"
"  --quiet       no progress lines\n"
"  --n N         s4d: complex modes per channel, 1..1024 (default 32)\n"
"  --channels H  s4d: channels (one delay each), 1..64 (default 4)\n"
"  --tau T       s4d: the largest delay, 1..len-1 (default len/8)\n"
"  --d-model D   mamba: model width, 1..1024 (default 32)\n"
"  --layers NL   mamba: Mamba blocks, 1..64 (default 2)\n"
"  --d-state N   mamba: SSM state size, 1..256 (default 16)\n"
"  --copies M    mamba: data tokens to copy, 1..64, below the context length (default 3)\n"
"  --values V    mamba: distinct data tokens, 2..1000 (default 8; chance 1/V)\n"
"  --evals E     mamba: held-out batches, 1..1000 (default 16)\n");
}

static void bad_option(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ssm_train: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try --help)\n", stderr);
    va_end(ap);
    exit(2);
}

static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        bad_option("%s: expected an integer in [%" PRId64 ", %" PRId64 "], got '%s'", opt, lo, hi, s);
    return (int64_t)v;
}

static void parse(opts *o, int argc, char **argv)
{
    static const char *names[] = { "--steps", "--seed", "--n", "--len", "--channels", "--tau",
                                   "--batch", "--lr", "--csv", "--plot", "--save", "--load",
                                   "--model", "--task", "--d-model", "--layers", "--d-state",
                                   "--copies", "--values", "--evals" };
    int task = -1;   /* 0 delay, 1 selective-copy */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (strncmp(a, "--", 2) != 0) bad_option("unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int which = -1;
        for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
            if (strlen(names[k]) == len && !strncmp(a, names[k], len)) which = k;
        if (which < 0) bad_option("unknown option '%s'", a);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) bad_option("option '%s' needs a value", names[which]);
            val = argv[++i];
        }
        switch (which) {
        case 0: o->steps = parse_int("--steps", val, 1, 1000000); o->set_steps = 1; break;
        case 1: o->seed = (uint64_t)parse_int("--seed", val, 0, INT64_MAX); break;
        case 2: o->n = parse_int("--n", val, 1, 1024); break;
        case 3: o->len = parse_int("--len", val, 8, 65536); o->set_len = 1; break;
        case 4: o->H = parse_int("--channels", val, 1, 64); break;
        case 5: o->tau = parse_int("--tau", val, 1, 65535); break;
        case 6: o->batch = parse_int("--batch", val, 1, 1024); o->set_batch = 1; break;
        case 7: {
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !(v > 0.0 && v <= 1.0))
                bad_option("--lr: expected a number in (0, 1], got '%s'", val);
            o->lr = v;
            o->set_lr = 1;
            break;
        }
        case 12:
            if (!strcmp(val, "s4d")) o->mamba = 0;
            else if (!strcmp(val, "mamba")) o->mamba = 1;
            else bad_option("--model: expected s4d or mamba, got '%s'", val);
            break;
        case 13:
            if (!strcmp(val, "delay")) task = 0;
            else if (!strcmp(val, "selective-copy")) task = 1;
            else bad_option("--task: expected delay or selective-copy, got '%s'", val);
            break;
        case 14: o->dm = parse_int("--d-model", val, 1, 1024); break;
        case 15: o->layers = parse_int("--layers", val, 1, 64); break;
        case 16: o->dstate = parse_int("--d-state", val, 1, 256); break;
        case 17: o->copies = parse_int("--copies", val, 1, 64); break;
        case 18: o->nvals = parse_int("--values", val, 2, 1000); break;
        case 19: o->evals = parse_int("--evals", val, 1, 1000); break;
        default:
            if (!*val) bad_option("option '%s' needs a non-empty value", names[which]);
            if (which == 8) o->csv = val;
            else if (which == 9) o->plot = val;
            else if (which == 10) o->save = val;
            else o->load = val;
        }
    }
    if (o->plot && !o->csv) bad_option("--plot draws the --csv file: give --csv too");
    if ((o->plot && strchr(o->plot, '\'')) || (o->plot && strchr(o->csv, '\'')))
        bad_option("--plot: file names with a single quote cannot be passed to gnuplot");
    if (task >= 0 && task != o->mamba)
        bad_option("--task %s needs --model %s", task ? "selective-copy" : "delay",
                   task ? "mamba" : "s4d");
    if (o->mamba) {
        if (!o->set_len) o->len = 16;
        if (!o->set_batch) o->batch = 16;
        if (!o->set_lr) o->lr = 0.01;
        if (!o->set_steps) o->steps = 400;
        if (o->len > 4096) bad_option("--len: at most 4096 with --model mamba");
        if (o->copies >= o->len)
            bad_option("--copies: must be below --len (%" PRId64 ")", o->len);
        return;
    }
    if (o->len < 16) bad_option("--len: expected an integer in [16, 65536] with --model s4d");
    if (o->tau == 0) o->tau = o->len / 8;
    if (o->tau >= o->len) bad_option("--tau: must be below --len (%" PRId64 ")", o->len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    opts o = { .steps = 300, .n = 32, .len = 256, .H = 4, .batch = 8, .tau = 0,
               .seed = 1, .lr = 0.01, .dm = 32, .layers = 2, .dstate = 16, .copies = 3,
               .nvals = 8, .evals = 16 };
    parse(&o, argc, argv);
    FILE *csv = NULL;
    if (o.csv && !(csv = fopen(o.csv, "w"))) {
        fprintf(stderr, "ssm_train: cannot write '%s': %s\n", o.csv, strerror(errno));
        return 2;
    }
    if (o.plot) {   /* fail before training, with our own message */
        FILE *pr = fopen(o.plot, "wb");
        if (!pr) {
            fprintf(stderr, "ssm_train: cannot write '%s': %s\n", o.plot, strerror(errno));
            return 2;
        }
        fclose(pr);
        remove(o.plot);
    }
    if (o.mamba) return main_mamba(&o, csv);
    const int64_t H = o.H, n = o.n, L = o.len, Bt = o.batch, cnt = Bt * H * L;
    model md;
    model_init(&md, H, n, o.seed);
    if (o.load && load_model(&md, o.load)) {
        free(md.p); free(md.g); free(md.m); free(md.v);
        return 1;
    }

    work w;
    w.lam = xcalloc((size_t)n, sizeof(ssm_cdouble)); w.B = xcalloc((size_t)n, sizeof(ssm_cdouble));
    w.C2 = xcalloc((size_t)n, sizeof(ssm_cdouble)); w.Ad = xcalloc((size_t)n, sizeof(ssm_cdouble));
    w.Bd = xcalloc((size_t)n, sizeof(ssm_cdouble)); w.dlam = xcalloc((size_t)n, sizeof(ssm_cdouble));
    w.dB = xcalloc((size_t)n, sizeof(ssm_cdouble)); w.dC = xcalloc((size_t)n, sizeof(ssm_cdouble));
    w.Kd = xcalloc((size_t)L, sizeof(double)); w.dKd = xcalloc((size_t)L, sizeof(double));
    w.K = xcalloc((size_t)(H * L), sizeof(float)); w.dK = xcalloc((size_t)(H * L), sizeof(float));
    w.dD = xcalloc((size_t)H, sizeof(float));
    w.y = xcalloc((size_t)cnt, sizeof(float)); w.dy = xcalloc((size_t)cnt, sizeof(float));
    float *u = xcalloc((size_t)cnt, sizeof(float)), *tgt = xcalloc((size_t)cnt, sizeof(float));

    ssm_conv_plan *plan = NULL;
    if (ssm_conv_plan_create(&plan, H, L) != SSM_OK) {
        fprintf(stderr, "ssm_train: cannot plan the FFT convolution\n");
        return 1;
    }
    if (!o.quiet)
        printf("ssm_train: S4D, %" PRId64 " channels x %" PRId64 " modes (%" PRId64
               " parameters), delay task L = %" PRId64 ", tau up to %" PRId64 ", batch %" PRId64
               ", %" PRId64 " steps, seed %" PRIu64 "%s%s\n",
               H, n, md.off[P_COUNT], L, o.tau, Bt, o.steps, o.seed,
               o.load ? ", from " : "", o.load ? o.load : "");
    if (csv) fprintf(csv, "step,lr,loss,grad_norm\n");

    rng train = { o.seed ^ 0x7A11ull }; rng_u64(&train);
    ssm_adamw_config cfg = { o.lr, 0.9, 0.999, 1e-8, 0.0 };
    const int64_t warmup = o.steps / 10;
    float *grads[1] = { md.g };
    const int64_t sizes[1] = { md.off[P_COUNT] };
    double t0 = now(), last = 0.0, loss0 = NAN;
    int skipped = 0;
    for (int64_t s = 0; s < o.steps; s++) {
        make_batch(&train, &o, u, tgt);
        const double loss = step_fg(&md, plan, Bt, L, u, tgt, &w, 1);
        if (!isfinite(loss)) {
            fprintf(stderr, "ssm_train: step %" PRId64 ": the model became unstable\n", s + 1);
            return 1;
        }
        if (s == 0) loss0 = loss;
        last = loss;
        double gn = 0.0;
        ssm_lr_warmup_cosine(s, warmup, o.steps, o.lr, o.lr / 20.0, &cfg.lr);
        ssm_status st = ssm_clip_grad_norm(grads, sizes, 1, 1.0, &gn);
        if (st == SSM_OK)
            ssm_adamw_step(&cfg, s + 1, md.off[P_COUNT], md.p, md.g, md.m, md.v);
        else
            skipped++;
        if (csv) fprintf(csv, "%" PRId64 ",%.9g,%.17g,%.9g\n", s + 1, cfg.lr, loss, gn);
        if (!o.quiet && ((s + 1) % 25 == 0 || s + 1 == o.steps)) {
            const double el = now() - t0;
            printf("step %6" PRId64 "/%" PRId64 "  loss %.6f  lr %.2e  |g| %.3e  %.0f tokens/s\n",
                   s + 1, o.steps, loss, cfg.lr, gn, (double)(s + 1) * (double)(Bt * L) / el);
            fflush(stdout);
        }
    }
    const double secs = now() - t0;
    if (csv) fclose(csv);

    /* Held-out evaluation: 4 batches from a stream training never uses. */
    rng held = { o.seed ^ 0xE7A1ull * 0x9E37ull }; rng_u64(&held);
    double eval = 0.0;
    for (int e = 0; e < 4; e++) {
        make_batch(&held, &o, u, tgt);
        eval += step_fg(&md, plan, Bt, L, u, tgt, &w, 0) / 4.0;
    }
    printf("first loss %.6f  last loss %.6f  held-out mse %.6f  (%d skipped steps, %.2f s, "
           "%.0f tokens/s)\n", loss0, last, eval, skipped, secs,
           (double)o.steps * (double)(Bt * L) / secs);
    printf("held-out mse: %.9g\n", eval);
    int rc = 0;
    /* u, w.y: the last held-out batch and the model's outputs on it */
    if (o.save) rc |= save_model(&md, o.save) || verify_saved(&md, o.save, Bt, L, u, w.y, &w);
    if (o.plot) rc |= plot(o.plot, o.csv, 0);
    ssm_conv_plan_destroy(plan);
    free(u); free(tgt); free(w.lam); free(w.B); free(w.C2); free(w.Ad); free(w.Bd);
    free(w.dlam); free(w.dB); free(w.dC); free(w.Kd); free(w.dKd); free(w.K); free(w.dK);
    free(w.dD); free(w.y); free(w.dy);
    free(md.p); free(md.g); free(md.m); free(md.v);
    return rc;
}
