/*
 * mpi_scan_kernel.h -- the selective scan's per-row kernels of
 * mpi_scan.c, instantiated twice (KN: name suffix, KTGT: target
 * attribute): portable and AVX2+FMA.  Included by mpi_scan.c only.
 *
 * dt is computed in a vectorizable loop into a tile, then summed in double
 * in time order (a fixed order, independent of the vector width).
 */

/* dt of steps [t0, t0 + T) of row into dt[]. */
static KTGT void KN(dt_tile)(const ssm_scan_args *a, int64_t row, int64_t t0,
                             int64_t T, float *dt)
{
    const float *dr = a->delta + row * a->len + t0;
    /* Without a bias, + 0.0f changes at most the sign of a zero, which
     * neither softplus nor the sums below can see. */
    const float bias = a->delta_bias ? a->delta_bias[row % a->dim] : 0.0f;
    if (a->delta_softplus) {
        #pragma omp simd
        for (int64_t t = 0; t < T; t++)
            dt[t] = msoftplus(dr[t] + bias);
    } else {
        #pragma omp simd
        for (int64_t t = 0; t < T; t++)
            dt[t] = dr[t] + bias;
    }
}

/* sum_t dt of the row, in double, in time order. */
static KTGT double KN(dt_sum)(const ssm_scan_args *a, int64_t row)
{
    float dt[FIX_T];
    double s = 0.0;
    for (int64_t t0 = 0; t0 < a->len; t0 += FIX_T) {
        const int64_t T = a->len - t0 < FIX_T ? a->len - t0 : FIX_T;
        KN(dt_tile)(a, row, t0, T, dt);
        for (int64_t t = 0; t < T; t++)
            s += (double)dt[t];
    }
    return s;
}

/* y of row (b, d) += silu(z) sum_n C_t,n exp(A_n cum_t) hin_n, with
 * cum_t = sum_{s<=t} dt_s (the same double sums as dt_sum), hin_n at
 * hin[n * hstride].  Stops once every term is exactly 0 for good. */
static KTGT void KN(fix_row)(const ssm_scan_args *a, int64_t b, int64_t d,
                             const float *hin, int64_t hstride)
{
    const int64_t L = a->len, N = a->dstate, D = a->dim;
    const int64_t g = d / (D / a->ngroups), row = b * D + d;
    const float *Crow = a->C + (b * a->ngroups + g) * N * L;
    const float *zrow = a->z ? a->z + row * L : NULL;
    const float *Arow = a->A + d * N;
    float *yrow = a->y + row * L;
    int any = 0, monotone = a->delta_softplus != 0;
    for (int64_t n = 0; n < N; n++) {
        any |= hin[n * hstride] != 0.0f;
        monotone &= Arow[n] <= 0.0f;
    }
    if (!any)
        return;   /* a zero entering state contributes exactly nothing */
    double cum = 0.0;
    double cumt[FIX_T];
    float dt[FIX_T], acc[FIX_T];
    for (int64_t t0 = 0; t0 < L; t0 += FIX_T) {
        const int64_t T = L - t0 < FIX_T ? L - t0 : FIX_T;
        KN(dt_tile)(a, row, t0, T, dt);
        for (int64_t t = 0; t < T; t++) {
            cum += (double)dt[t];
            cumt[t] = cum;
            acc[t] = 0.0f;
        }
        int dead = monotone;
        for (int64_t n = 0; n < N; n++) {
            const float hn = hin[n * hstride];
            if (hn == 0.0f)
                continue;
            const double an = (double)Arow[n];
            const float *cr = Crow + n * L + t0;
            #pragma omp simd
            for (int64_t t = 0; t < T; t++) {
                const float w = mexpf((float)(an * cumt[t]));
                acc[t] = fmaf(cr[t], w * hn, acc[t]);
            }
            /* With dt >= 0 (softplus) and A <= 0 the exponent only falls:
             * once it is <= -88 at the tile's end, exp is 0 from there on. */
            dead &= an * cumt[T - 1] <= -88.0;
        }
        if (zrow) {
            #pragma omp simd
            for (int64_t t = 0; t < T; t++)
                yrow[t0 + t] += acc[t] * msilu(zrow[t0 + t]);
        } else {
            for (int64_t t = 0; t < T; t++)
                yrow[t0 + t] += acc[t];
        }
        if (dead)
            break;
    }
}
