/* matmul_quant.c: products with a quantized weight read from its blocks
 * (see kernels.h, hl_qmatmul). No f32 copy of the weight is made: each
 * thread dequantizes a tile of HL_QTILE rows (x·Wᵀ) or one row segment at a
 * time (dY·W) into its own slice of the caller's scratch.
 *
 * Shapes: x (T, K), W (O, K) as an hl_qweight, out (T, O) or (T, K).
 * Orders: x·Wᵀ is hl_dot per element (the f32 kernel's order); dY·W sums
 * over o in order with fused multiply-adds. Neither depends on T, on the
 * thread count, or on how the work is split. */
#include "kernels/kernels.h"

#include <math.h>

int64_t hl_qmatmul_scratch_floats(int n_threads, int64_t K) { return (int64_t)n_threads * HL_QTILE * K; }

typedef struct {
    float *out;
    int64_t ldo;
    const float *x;   /* x (T, K), or dy (T, O) */
    const hl_qweight *w;
    int64_t T;
    int accumulate;
    float *scratch;   /* per worker: HL_QTILE · K floats */
    int64_t block;    /* elements per block (nn) */
} qjob;

static void qmatmul_rows(void *arg, int64_t o_begin, int64_t o_end, int worker) {
    const qjob *j = arg;
    const int64_t K = j->w->cols;
    float *tile = j->scratch + (int64_t)worker * HL_QTILE * K;
    for (int64_t o = o_begin; o < o_end; o += HL_QTILE) {
        int64_t n = o_end - o < HL_QTILE ? o_end - o : HL_QTILE;
        for (int64_t r = 0; r < n; r++) hl_qweight_row(j->w, o + r, tile + r * K);
        hl_matmul_serial(j->out + o, j->ldo, j->x, tile, j->T, K, n);
    }
}

void hl_qmatmul(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                float *scratch) {
    qjob j = {out, ldo, x, w, T, 0, scratch, 0};
    if (T * w->cols * w->rows < 32768) pool = NULL; /* as hl_matmul: not worth waking workers */
    hl_pool_for(pool, w->rows, HL_QTILE, qmatmul_rows, &j);
}

/* Blocks [b_begin, b_end) of every row: columns k of those blocks of out. */
static void qmatmul_nn_cols(void *arg, int64_t b_begin, int64_t b_end, int worker) {
    const qjob *j = arg;
    const int64_t K = j->w->cols, O = j->w->rows, k0 = b_begin * j->block, nk = (b_end - b_begin) * j->block;
    float *seg = j->scratch + (int64_t)worker * HL_QTILE * K;
    if (!j->accumulate)
        for (int64_t t = 0; t < j->T; t++)
            for (int64_t k = 0; k < nk; k++) j->out[t * K + k0 + k] = 0.0f;
    for (int64_t o = 0; o < O; o++) {
        hl_qweight_blocks(j->w, o, b_begin, b_end - b_begin, seg);
        for (int64_t t = 0; t < j->T; t++) {
            const float g = j->x[t * O + o];
            float *dst = j->out + t * K + k0;
            for (int64_t k = 0; k < nk; k++) dst[k] = fmaf(g, seg[k], dst[k]);
        }
    }
}

void hl_qmatmul_nn(hl_pool *pool, float *out, const float *dy, const hl_qweight *w, int64_t T, int accumulate,
                   float *scratch) {
    const hl_type_traits *tr = hl_type_traits_of(w->type);
    qjob j = {out, w->cols, dy, w, T, accumulate, scratch, tr->block_elems};
    int64_t n_blocks = w->cols / tr->block_elems;
    if (T * w->cols * w->rows < 32768) pool = NULL;
    /* a worker's scratch slice holds HL_QTILE·K floats: any share of a row's blocks fits */
    hl_pool_for(pool, n_blocks, 1, qmatmul_nn_cols, &j);
}
