/* gguf.h: GGUF reader (versions 2 and 3, little-endian; mmap, zero-copy, fully
 * validated) and writer (version 3).
 *
 * Reading never trusts the file: every count, length, dimension, offset and
 * size product is checked against the bytes remaining and the caps below,
 * at runtime, with a message naming the file and the field (see
 * ../shared/DESIGN.md section 3 for the real CVEs this guards against).
 * Tensor types: F32, F16, BF16 and the block types of quant/quant_types.h
 * (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K); any other type is refused. A
 * block-type tensor's ne[0] must be a multiple of its block size, and its
 * size is rows × blocks per row × block bytes, each product checked.
 *
 * Writing keeps KV order and tensor order as added, and lays tensor data out
 * canonically (each tensor at the next multiple of the alignment, data
 * section aligned), so a canonical file read and written back is byte-equal.
 * Files are written crash-safe (temp file, fsync, rename, directory fsync).
 */
#ifndef HL_IO_GGUF_H
#define HL_IO_GGUF_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"

/* Caps (documented resource limits; a tiny file can never force a huge allocation). */
#define HL_GGUF_MAX_KV        (1u << 20)   /* key/value pairs */
#define HL_GGUF_MAX_TENSORS   (1u << 20)
#define HL_GGUF_MAX_STRING    (1u << 24)   /* bytes in one string (16 MiB) */
#define HL_GGUF_MAX_ARRAY     (1u << 26)   /* elements in one array */
#define HL_GGUF_MAX_DIMS      4
#define HL_GGUF_MAX_ALIGNMENT (1u << 16)
#define HL_GGUF_DEFAULT_ALIGNMENT 32

typedef enum hl_gguf_kv_type {
    HL_GGUF_UINT8 = 0, HL_GGUF_INT8 = 1, HL_GGUF_UINT16 = 2, HL_GGUF_INT16 = 3,
    HL_GGUF_UINT32 = 4, HL_GGUF_INT32 = 5, HL_GGUF_FLOAT32 = 6, HL_GGUF_BOOL = 7,
    HL_GGUF_STRING = 8, HL_GGUF_ARRAY = 9, HL_GGUF_UINT64 = 10, HL_GGUF_INT64 = 11,
    HL_GGUF_FLOAT64 = 12, HL_GGUF_KV_TYPE_COUNT
} hl_gguf_kv_type;

/* hl_tensor_type (ggml's numbering) and the block layouts live in quant/. */
#include "quant/quant_types.h"

typedef struct hl_gguf_str { const char *data; uint64_t len; } hl_gguf_str; /* not NUL-terminated */

typedef struct hl_gguf_tensor {
    hl_gguf_str name;
    uint32_t n_dims;
    int64_t ne[HL_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the contiguous (innermost) dim; unused dims = 1 */
    uint32_t type;                /* hl_tensor_type */
    uint64_t offset;              /* relative to the data section */
    uint64_t nbytes;
    const void *data;             /* zero-copy view into the mapping */
} hl_gguf_tensor;

typedef struct hl_gguf hl_gguf; /* opaque reader */

hl_status hl_gguf_open(const char *path, hl_gguf **out, hl_error *err);
/* Parses a buffer the caller keeps alive (fuzzing, in-memory files). name is used in messages. */
hl_status hl_gguf_open_memory(const void *data, size_t size, const char *name, hl_gguf **out, hl_error *err);
void hl_gguf_free(hl_gguf *g);

uint32_t hl_gguf_version(const hl_gguf *g);
uint32_t hl_gguf_alignment(const hl_gguf *g);
const char *hl_gguf_path(const hl_gguf *g);
/* The file mapping of hl_gguf_open (NULL, 0 for hl_gguf_open_memory). */
void hl_gguf_mapping(const hl_gguf *g, const uint8_t **data, size_t *size);
/* HL_ERR_IO when the mapped file was truncated by another process since it
 * was opened (hl_mapped_file_check); HL_OK for an in-memory GGUF. */
hl_status hl_gguf_check_mapping(const hl_gguf *g, hl_error *err);

/* Key/values. Index-based access; find returns -1 when absent. */
int64_t hl_gguf_n_kv(const hl_gguf *g);
int64_t hl_gguf_find_key(const hl_gguf *g, const char *key);
hl_gguf_str hl_gguf_key(const hl_gguf *g, int64_t i);
hl_gguf_kv_type hl_gguf_kv_type_of(const hl_gguf *g, int64_t i);
/* Scalar getters: return HL_OK, or HL_ERR_FORMAT with a message naming the key
 * when the key is absent or has a different type (no silent conversion,
 * except that get_u32 accepts any unsigned/signed integer type whose value fits,
 * and get_f32 accepts FLOAT32 or FLOAT64). */
hl_status hl_gguf_get_u32(const hl_gguf *g, const char *key, uint32_t *out, hl_error *err);
hl_status hl_gguf_get_f32(const hl_gguf *g, const char *key, float *out, hl_error *err);
hl_status hl_gguf_get_str(const hl_gguf *g, const char *key, hl_gguf_str *out, hl_error *err);
hl_status hl_gguf_get_bool(const hl_gguf *g, const char *key, int *out, hl_error *err);
/* Raw scalar value of KV i as a double/int64 (for inspect); strings via get_str. */
int hl_gguf_kv_scalar(const hl_gguf *g, int64_t i, double *as_double, int64_t *as_int);
hl_status hl_gguf_kv_string(const hl_gguf *g, int64_t i, hl_gguf_str *out);
/* Arrays: element type and length; elements of fixed-size types are a
 * zero-copy pointer (possibly unaligned: use memcpy), strings by index. */
hl_status hl_gguf_get_arr(const hl_gguf *g, const char *key, hl_gguf_kv_type *elem_type, uint64_t *len, hl_error *err);
hl_status hl_gguf_kv_arr(const hl_gguf *g, int64_t i, hl_gguf_kv_type *elem_type, uint64_t *len);
const void *hl_gguf_arr_data(const hl_gguf *g, int64_t i);             /* NULL for string arrays */
hl_gguf_str hl_gguf_arr_str(const hl_gguf *g, int64_t i, uint64_t j);  /* j < len, string arrays only */

/* Tensors */
int64_t hl_gguf_n_tensors(const hl_gguf *g);
int64_t hl_gguf_find_tensor(const hl_gguf *g, const char *name);
const hl_gguf_tensor *hl_gguf_tensor_at(const hl_gguf *g, int64_t i);

const char *hl_gguf_type_name(uint32_t tensor_type);   /* "f32", "f16", "bf16", "q4_K", ..., "?" */
size_t hl_gguf_kv_type_size(hl_gguf_kv_type t);         /* 0 for STRING/ARRAY */
const char *hl_gguf_kv_type_name(hl_gguf_kv_type t);

/* ---- writer ---- */
typedef struct hl_gguf_writer hl_gguf_writer;

hl_gguf_writer *hl_gguf_writer_init(void); /* NULL on OOM */
void hl_gguf_writer_free(hl_gguf_writer *w);
/* Setting an existing key replaces its value in place (keeps its position). */
hl_status hl_gguf_writer_set_u32(hl_gguf_writer *w, const char *key, uint32_t v);
hl_status hl_gguf_writer_set_i32(hl_gguf_writer *w, const char *key, int32_t v);
hl_status hl_gguf_writer_set_u64(hl_gguf_writer *w, const char *key, uint64_t v);
hl_status hl_gguf_writer_set_f32(hl_gguf_writer *w, const char *key, float v);
hl_status hl_gguf_writer_set_bool(hl_gguf_writer *w, const char *key, int v);
hl_status hl_gguf_writer_set_str(hl_gguf_writer *w, const char *key, const char *v);
/* Fixed-size element arrays (data copied), and string arrays. */
hl_status hl_gguf_writer_set_arr(hl_gguf_writer *w, const char *key, hl_gguf_kv_type elem_type, const void *data, uint64_t n);
hl_status hl_gguf_writer_set_arr_str(hl_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Copies KV i of a reader verbatim (any type, arrays included). */
hl_status hl_gguf_writer_copy_kv(hl_gguf_writer *w, const hl_gguf *g, int64_t i);
hl_status hl_gguf_writer_remove_key(hl_gguf_writer *w, const char *key);
/* Tensor data is borrowed: it must stay valid until write_file returns.
 * ne in ggml order, n_dims 1..4. Duplicate names are refused. */
hl_status hl_gguf_writer_add_tensor(hl_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const int64_t *ne, const void *data, hl_error *err);
hl_status hl_gguf_writer_set_alignment(hl_gguf_writer *w, uint32_t alignment);
hl_status hl_gguf_writer_write_file(hl_gguf_writer *w, const char *path, hl_error *err);
/* In-memory serialization (tests, fuzz seeds): *out is hl_malloc'd. */
hl_status hl_gguf_writer_write_memory(hl_gguf_writer *w, uint8_t **out, size_t *out_size, hl_error *err);

#endif
