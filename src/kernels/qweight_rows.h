/* qweight_rows.h: rows of a quantized weight view (quant/quant_types.h) as
 * f32, dequantized by the kernels of the SIMD level chosen at run time. */
#ifndef HL_KERNELS_QWEIGHT_ROWS_H
#define HL_KERNELS_QWEIGHT_ROWS_H
#include <stdint.h>
#include "quant/quant_types.h"

/* dst[0..cols) = row r of w. */
void hl_qweight_row(const hl_qweight *w, int64_t r, float *dst);
/* dst[0 .. n·block_elems) = blocks b0 .. b0+n-1 of row r of w. */
void hl_qweight_blocks(const hl_qweight *w, int64_t r, int64_t b0, int64_t n, float *dst);
#endif
