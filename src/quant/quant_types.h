/* quant_types.h: the tensor element types hyperlora reads (ggml's numbering),
 * their block layouts, and a plain reference dequantizer per type.
 *
 * A tensor of a block type stores each row of ne[0] elements as
 * ne[0] / block_elems blocks of block_bytes bytes, back to back; ne[0] must
 * be a multiple of block_elems. F32, F16 and BF16 are "block types" of one
 * element. The block layouts are ggml's (ggml-common.h), written out field by
 * field in quant_types.c; all multi-byte fields are little-endian, and the
 * f16 scales are IEEE binary16.
 *
 * Dequantization follows ggml's reference arithmetic operation for
 * operation (no fused multiply-add), so the values are bit-identical to
 * ggml's to_float. This file does not quantize (see the quantize command)
 * and does not compute products (kernels/matmul_quant.c). */
#ifndef HL_QUANT_QUANT_TYPES_H
#define HL_QUANT_QUANT_TYPES_H
#include <stddef.h>
#include <stdint.h>
#include "util/isa_names.h" /* hl_dequantize exists once per SIMD level in a portable build */

/* ggml tensor types we accept (numbering is ggml's; append-only). */
typedef enum hl_tensor_type {
    HL_TYPE_F32 = 0,
    HL_TYPE_F16 = 1,
    HL_TYPE_Q4_0 = 2,
    HL_TYPE_Q4_1 = 3,
    HL_TYPE_Q5_0 = 6,
    HL_TYPE_Q5_1 = 7,
    HL_TYPE_Q8_0 = 8,
    HL_TYPE_Q2_K = 10,
    HL_TYPE_Q3_K = 11,
    HL_TYPE_Q4_K = 12,
    HL_TYPE_Q5_K = 13,
    HL_TYPE_Q6_K = 14,
    HL_TYPE_BF16 = 30,
    HL_TYPE_COUNT = 31 /* one past the largest value; not every value below it is a type we read */
} hl_tensor_type;

#define HL_QK 32     /* elements per block of the 32-element types */
#define HL_QK_K 256  /* elements per super-block of the K types */

typedef struct hl_type_traits {
    const char *name;     /* ggml's name: "q4_K" */
    int32_t block_elems;  /* elements per block (1 for f32/f16/bf16) */
    int32_t block_bytes;  /* bytes per block */
    int quantized;        /* 1 for the block types with scales */
} hl_type_traits;

/* The traits of a type, or NULL when hyperlora does not read it. */
const hl_type_traits *hl_type_traits_of(uint32_t type);
/* ggml's name of any ggml type number, known to us or not ("iq2_xxs",
 * "unknown"), for messages about types we refuse. */
const char *hl_ggml_type_name(uint32_t type);

/* Bytes of one row of n elements of a supported type: 1 and *out set, or 0
 * when n is not a positive multiple of the block size or the product
 * overflows. */
int hl_type_row_bytes(uint32_t type, int64_t n, uint64_t *out);

/* dst[0 .. n_blocks·block_elems) = the elements of n_blocks consecutive
 * blocks at src (any alignment). The type must be supported. */
void hl_dequantize(uint32_t type, const void *src, float *dst, int64_t n_blocks);

/* Index of the first of n_blocks blocks at src whose f16 scale fields (d,
 * and m or dmin where the type has them) are infinite or NaN, or -1 when
 * every scale is finite (always -1 for f32/f16/bf16, whose values are the
 * data, not scales). */
int64_t hl_quant_find_bad_scale(uint32_t type, const void *src, int64_t n_blocks);

/* A read-only view of a 2-D weight (rows, cols) of any supported type, as
 * the file stores it: row r is cols / block_elems blocks at
 * data + r·row_bytes. */
typedef struct hl_qweight {
    const void *data;
    uint32_t type;
    int64_t rows, cols;  /* (O, K): ggml ne = [cols, rows] */
    uint64_t row_bytes;
} hl_qweight;

/* Reading rows of an hl_qweight (hl_qweight_row, hl_qweight_blocks) is in
 * kernels/qweight_rows.h: it dequantizes at the SIMD level chosen at run time. */
#endif
