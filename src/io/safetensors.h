/* safetensors.h: reader and writer for the safetensors format
 * (u64 little-endian header length, a JSON header, then raw tensor data),
 * as used by Hugging Face PEFT's adapter_model.safetensors.
 *
 * The reader applies the format's safety rules: the header is capped,
 * must be valid JSON, every tensor's byte size must equal its checked
 * shape product times the dtype size, and the data offsets must be
 * contiguous, non-overlapping and cover the whole data buffer exactly.
 * Tensor data are zero-copy views into the mapping (may be unaligned).
 * Dtypes: F32, F16, BF16, F64 (others refused with a clear error).
 */
#ifndef HL_IO_SAFETENSORS_H
#define HL_IO_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"

#define HL_ST_MAX_HEADER  (100u << 20)  /* 100 MB, as the format's reference implementation */
#define HL_ST_MAX_TENSORS (1u << 20)
#define HL_ST_MAX_DIMS    8

typedef enum hl_st_dtype { HL_ST_F32, HL_ST_F16, HL_ST_BF16, HL_ST_F64, HL_ST_DTYPE_COUNT } hl_st_dtype;

typedef struct hl_st_tensor {
    const char *name;          /* NUL-terminated, owned by the reader */
    hl_st_dtype dtype;
    int32_t n_dims;
    int64_t shape[HL_ST_MAX_DIMS]; /* row-major, shape[0] outermost (PyTorch order) */
    uint64_t nbytes;
    const void *data;
} hl_st_tensor;

typedef struct hl_safetensors hl_safetensors;

hl_status hl_st_open(const char *path, hl_safetensors **out, hl_error *err);
hl_status hl_st_open_memory(const void *data, size_t size, const char *name, hl_safetensors **out, hl_error *err);
void hl_st_free(hl_safetensors *st);
int64_t hl_st_n_tensors(const hl_safetensors *st);
const hl_st_tensor *hl_st_tensor_at(const hl_safetensors *st, int64_t i); /* sorted by name */
const hl_st_tensor *hl_st_find(const hl_safetensors *st, const char *name);
/* __metadata__ string map; NULL when absent. */
const char *hl_st_metadata(const hl_safetensors *st, const char *key);
/* Enumerates the __metadata__ keys, sorted (for copying or round trips). */
int64_t hl_st_n_metadata(const hl_safetensors *st);
const char *hl_st_metadata_key_at(const hl_safetensors *st, int64_t i);
/* Copies tensor i into n f32 values (converting F16/BF16/F64); n must equal the element count. */
hl_status hl_st_read_f32(const hl_st_tensor *t, float *out, uint64_t n, hl_error *err);
const char *hl_st_dtype_name(hl_st_dtype d);

/* Writer: tensors are written in name order with F32 data (borrowed until write). */
typedef struct hl_st_writer hl_st_writer;
hl_st_writer *hl_st_writer_init(void);
void hl_st_writer_free(hl_st_writer *w);
hl_status hl_st_writer_add_f32(hl_st_writer *w, const char *name, int32_t n_dims, const int64_t *shape,
                               const float *data, hl_error *err);
hl_status hl_st_writer_set_metadata(hl_st_writer *w, const char *key, const char *value);
hl_status hl_st_writer_write_file(hl_st_writer *w, const char *path, hl_error *err);
hl_status hl_st_writer_write_memory(hl_st_writer *w, uint8_t **out, size_t *out_size, hl_error *err);
#endif
