/*
 * norm_row.h -- one row of the language model's pre-norm: RMSNorm (Zhang
 * and Sennrich 2019, Mamba's backbone) or LayerNorm, sums in double in
 * order.  Shared by src/models/run.c and src/mpi/mpi_model.c, which must
 * round alike (the MPI prompt matches the single-process one); header-only
 * because libssm_mpi links libssm through the public API only.  Never
 * installed.
 */
#ifndef SSM_MODELS_NORM_ROW_H
#define SSM_MODELS_NORM_ROW_H

#include <math.h>
#include <stdint.h>

/* o[i] = (x[i] - mean) / sqrt(var + eps) * w[i] (+ b[i]) over dm values;
 * rms: mean taken as 0 and no bias (b unused).  x == o allowed. */
static inline void ssmi_norm_row(int64_t dm, const float *x, float *o,
                                 const float *w, const float *b, double eps,
                                 int rms)
{
    double mean = 0.0, ss = 0.0;
    if (!rms) {
        for (int64_t i = 0; i < dm; i++) mean += x[i];
        mean /= (double)dm;
    }
    for (int64_t i = 0; i < dm; i++) {
        double v = x[i] - mean;
        ss += v * v;
    }
    float inv = (float)(1.0 / sqrt(ss / (double)dm + eps));
    if (rms)
        for (int64_t i = 0; i < dm; i++) o[i] = x[i] * inv * w[i];
    else
        for (int64_t i = 0; i < dm; i++)
            o[i] = (float)(x[i] - mean) * inv * w[i] + b[i];
}

#endif /* SSM_MODELS_NORM_ROW_H */
