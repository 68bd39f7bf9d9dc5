/*
 * ssm/io.h -- tensor files as users download them (src/io): safetensors
 * (single file or sharded through model.safetensors.index.json) and PyTorch
 * zip checkpoints (torch.save, read through a restricted pickle reader that
 * can never run code), and a safetensors writer.
 *
 * A tensor file is opened once (memory-mapped), validated completely before
 * the open returns, then read by name.  Every size and offset in the file is
 * checked (header length against the file size and a limit, well-formed
 * JSON, no duplicate names, offsets inside the data, begin <= end, byte size
 * = dtype size x product of the shape with overflow checks, no overlaps):
 * a hostile file gives SSM_ERR_FORMAT, never a crash or a read out of
 * bounds.
 */
#ifndef SSM_IO_H
#define SSM_IO_H

#include <stddef.h>
#include "common.h"
#include "s4.h"
#include "layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of stored tensors. */
typedef enum ssm_dtype {
    SSM_DTYPE_F32  = 0,
    SSM_DTYPE_F16  = 1,   /* IEEE half, converted exactly (subnormals too) */
    SSM_DTYPE_BF16 = 2    /* bfloat16, converted by a 16-bit shift */
} ssm_dtype;

/* Bytes of one element of dtype (0 for an unknown value). */
SSM_API size_t ssm_dtype_size(ssm_dtype dtype);

#define SSM_TENSOR_MAX_DIMS 8

/* What the file says of one tensor. */
typedef struct ssm_tensor_info {
    const char *name;                     /* owned by the file; valid until close */
    ssm_dtype   dtype;
    int         ndim;                     /* 0 (scalar) .. SSM_TENSOR_MAX_DIMS */
    int64_t     shape[SSM_TENSOR_MAX_DIMS];
    int64_t     numel;                    /* product of shape (1 for a scalar) */
} ssm_tensor_info;

typedef struct ssm_tensor_file ssm_tensor_file;

/* Open path: a .safetensors file, a model.safetensors.index.json (every
 * shard of its weight_map, one namespace), or a PyTorch zip checkpoint
 * (pytorch_model.bin); the kind is found from the content, not the name.
 * docs/io.md lists every check.  *file is NULL on error.
 * Errors: SSM_ERR_ARG (NULL), SSM_ERR_IO (missing, unreadable, not a
 * regular file, cannot map; a missing shard), SSM_ERR_FORMAT (empty, or
 * anything malformed or disallowed: bad header or offsets, unsupported
 * dtype, compressed zip entry, non-contiguous tensor, a pickle asking for
 * anything but tensor storage), SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_tensor_file_open(ssm_tensor_file **file, const char *path);
SSM_API void       ssm_tensor_file_close(ssm_tensor_file *file);   /* NULL: no-op */

/* Number of tensors (0 for NULL), and the i-th one's description
 * (0 <= i < count, in the file's order: header order for safetensors,
 * weight_map order for an index, state-dict order for PyTorch).
 * Errors: SSM_ERR_ARG. */
SSM_API int64_t    ssm_tensor_file_count(const ssm_tensor_file *file);
SSM_API ssm_status ssm_tensor_file_at(const ssm_tensor_file *file, int64_t i,
                                      ssm_tensor_info *info);

/* The tensor called name.  SSM_ERR_FORMAT when there is none (a checkpoint
 * missing a tensor is malformed). */
SSM_API ssm_status ssm_tensor_file_find(const ssm_tensor_file *file,
                                        const char *name, ssm_tensor_info *info);

/* Read tensor name converted to float into out (count elements, which must
 * equal its numel, else SSM_ERR_FORMAT).  F32 bytes go straight from the
 * file into out (pread: the cost of reading them once); F16 (exact, also
 * subnormals, inf, NaN) and BF16 (16-bit shift) are converted.  Errors:
 * SSM_ERR_ARG (NULL), SSM_ERR_FORMAT (missing, count), SSM_ERR_IO (the file
 * shrank or failed since it was opened), SSM_ERR_NOMEM.  Reentrant: many
 * threads may read from one open file. */
SSM_API ssm_status ssm_tensor_file_read_f32(const ssm_tensor_file *file,
                                            const char *name, float *out,
                                            int64_t count);

/* Zero-copy access: *data points at the stored elements of name inside the
 * read-only mapping (valid until close; any alignment: copy or use
 * memcpy-safe loads; little-endian), in the dtype of its info (may be NULL).
 * As with any mapping, a file truncated by someone else after the open
 * faults on access.  Errors: SSM_ERR_ARG (NULL), SSM_ERR_FORMAT (missing). */
SSM_API ssm_status ssm_tensor_file_data(const ssm_tensor_file *file,
                                        const char *name, const void **data,
                                        ssm_tensor_info *info);

/* The __metadata__ string value of key (safetensors only; a sharded
 * checkpoint merges its shards', the first shard naming a key wins).  *value is owned by the file.
 * Errors: SSM_ERR_ARG (NULL), SSM_ERR_FORMAT (no such key). */
SSM_API ssm_status ssm_tensor_file_metadata(const ssm_tensor_file *file,
                                            const char *key, const char **value);

/* One tensor to write: row-major data of dtype with the given shape. */
typedef struct ssm_tensor_desc {
    const char    *name;
    ssm_dtype      dtype;
    int            ndim;
    const int64_t *shape;
    const void    *data;
} ssm_tensor_desc;

/* Write a safetensors file with these tensors (names unique, in this order)
 * and optional string metadata (n_meta pairs keys[i] -> values[i]; may be
 * 0 with NULL arrays).  Written to a temporary file beside path and renamed,
 * so a failure leaves no partial file.  Errors: SSM_ERR_ARG, SSM_ERR_IO,
 * SSM_ERR_NOMEM. */
SSM_API ssm_status ssm_safetensors_write(const char *path, int64_t n,
                                         const ssm_tensor_desc *tensors,
                                         int64_t n_meta, const char *const *keys,
                                         const char *const *values);

/* Load an S4D layer from the parameters of the s4 repository's standalone
 * S4D module (state-spaces/s4, models/s4/s4d.py), named
 *   <prefix>D                   [H]
 *   <prefix>kernel.log_dt       [H]
 *   <prefix>kernel.log_A_real   [H][N]
 *   <prefix>kernel.A_imag       [H][N]
 *   <prefix>kernel.C            [H][N][2]  (real, imaginary pairs)
 * with N = d_state / 2 complex modes: the layer gets lambda =
 * -exp(log_A_real) + i A_imag, dt = exp(log_dt), B = 1, C as stored (the
 * module's kernel is 2 Re(...): a complex-init layer applies that 2), D.
 * disc: the module discretizes by ZOH (SSM_ZOH reproduces its kernel);
 * any ssm_disc is accepted.  prefix may be "" or NULL (no prefix), e.g.
 * "model.layers.0." for a module inside a bigger model.  The module's
 * output_linear (Conv1d + GLU) is not part of ssm_s4d_layer and is not read.
 * Errors: SSM_ERR_ARG (NULL layer/file, bad disc), SSM_ERR_FORMAT (a
 * tensor missing, mis-shaped, or giving non-finite/unstable parameters),
 * SSM_ERR_NOMEM, SSM_ERR_NUMERIC.  *layer is NULL on error. */
SSM_API ssm_status ssm_s4d_layer_load(ssm_s4d_layer **layer,
                                      const ssm_tensor_file *file,
                                      const char *prefix, ssm_disc disc);

#ifdef __cplusplus
}
#endif

#endif /* SSM_IO_H */
