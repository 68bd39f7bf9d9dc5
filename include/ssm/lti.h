/*
 * ssm/lti.h -- dense LTI recurrences (the recurrent mode of dense HiPPO/S4 systems).
 *
 * (filled in by the demo work)
 */
#ifndef SSM_LTI_H
#define SSM_LTI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* SSM_LTI_H */
