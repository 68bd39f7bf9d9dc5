/*
 * ssm.h -- libssm: state-space sequence models in C.
 *
 * This header is not a manual; README.md is.  It includes every module:
 *
 *   ssm/common.h   status codes, version
 *   ssm/hippo.h    HiPPO matrices, NPLR form, S4D initialisations   (LAPACKE)
 *   ssm/s4.h       discretization and convolution kernels           (src/s4, FFTW)
 *   ssm/conv.h     batched causal FFT convolution                   (src/s4, FFTW)
 *   ssm/scan.h     selective scan (Mamba S6), diagonal LTI scan     (src/scan)
 *   ssm/ssd.h      Mamba-2 state space dual (SSD) scan              (src/scan)
 *   ssm/lti.h      dense LTI recurrences                            (src/scan)
 *   ssm/layer.h    the S4D layer (convolution and recurrent modes)  (src/layers)
 *   ssm/mamba.h    the Mamba block and a residual stack of blocks   (src/layers, CBLAS)
 *   ssm/model.h    Mamba language models from checkpoint directories (src/models)
 *   ssm/sample.h   next-token sampling (greedy, temperature, top-k/p, min-p)
 *   ssm/io.h       safetensors / PyTorch checkpoint reader, writer  (src/io, cJSON)
 *   ssm/tokenizer.h byte-level BPE tokenizer (tokenizer.json)       (src/text, PCRE2, utf8proc)
 *   ssm/mamba2.h   the Mamba-2 block and its residual stack         (src/layers, CBLAS)
 *
 * Shape legend used in every header, slowest dimension first (C order):
 *   B batch, H (or D) channels, G groups, N state size, R rank, L length.
 */
#ifndef SSM_H
#define SSM_H

#define SSM_VERSION_MAJOR 0
#define SSM_VERSION_MINOR 1
#define SSM_VERSION_PATCH 0

#include "ssm/common.h"
#include "ssm/hippo.h"
#include "ssm/s4.h"
#include "ssm/conv.h"
#include "ssm/layer.h"
#include "ssm/lti.h"
#include "ssm/scan.h"
#include "ssm/ssd.h"
#include "ssm/mamba.h"
#include "ssm/model.h"
#include "ssm/sample.h"
#include "ssm/io.h"
#include "ssm/tokenizer.h"
#include "ssm/mamba2.h"
#include "ssm/train.h"

#endif /* SSM_H */
