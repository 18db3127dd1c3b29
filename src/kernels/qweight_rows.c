/* qweight_rows.c: rows of a quantized weight as f32 (see qweight_rows.h).
 * Compiled once: hl_dequantize is the dispatched name, so the row is
 * dequantized at the level the CPU was given at run time. */
#include "kernels/qweight_rows.h"
#include "kernels/kernels.h"

void hl_qweight_blocks(const hl_qweight *w, int64_t r, int64_t b0, int64_t n, float *dst) {
    const hl_type_traits *tr = hl_type_traits_of(w->type);
    const uint8_t *row = (const uint8_t *)w->data + (uint64_t)r * w->row_bytes;
    hl_dequantize(w->type, row + b0 * tr->block_bytes, dst, n);
}

void hl_qweight_row(const hl_qweight *w, int64_t r, float *dst) {
    hl_qweight_blocks(w, r, 0, w->cols / hl_type_traits_of(w->type)->block_elems, dst);
}
