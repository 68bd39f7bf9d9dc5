/*
 * ssm/mamba.h -- the Mamba block (Gu and Dao 2023) and a residual stack.
 *
 * (filled in by the Mamba block work)
 */
#ifndef SSM_MAMBA_H
#define SSM_MAMBA_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* SSM_MAMBA_H */
