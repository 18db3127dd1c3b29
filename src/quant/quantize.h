/* quantize.h: f32 rows to ggml blocks, by ggml's reference algorithms
 * (no importance matrix), so that a tensor quantized here has the same bytes
 * as llama-quantize's. Types: q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K,
 * q4_K, q5_K, q6_K (hl_quantize_supported says which).
 *
 * Each block is quantized from its own elements only: the result does not
 * depend on how rows are split or threaded. */
#ifndef HL_QUANT_QUANTIZE_H
#define HL_QUANT_QUANTIZE_H
#include <stdint.h>
#include "quant/quant_types.h"

/* 1 when hl_quantize_blocks can write type. */
int hl_quantize_supported(uint32_t type);
/* n_blocks blocks of type at dst (n_blocks · block_bytes bytes) from the
 * n_blocks · block_elems values at x, which must be finite. */
void hl_quantize_blocks(uint32_t type, const float *x, void *dst, int64_t n_blocks);
#endif
