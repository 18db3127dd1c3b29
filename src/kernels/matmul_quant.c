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
#include "kernels/qweight_rows.h"
#include "quant/quant_types.h"
#include "util/le_bytes.h"

#include <math.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)
#include "kernels/lane_sums.h"
#define HL_Q8_0_DECODE 1
#endif

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

#ifdef HL_Q8_0_DECODE
/* One token over q8_0 rows [o, o + R), without a tile: each 16-element half
 * of a block becomes q·d in a register (one rounding, as the dequantizer
 * gives it) and is chained into its row's 16-lane accumulator over k in
 * order, then reduced by hl_hsum16: hl_dot's order, so the same bits as the
 * tile path. R rows at once keep R independent FMA chains in flight. The
 * rows are whole blocks of 32, so there is no scalar tail. */
static inline __attribute__((always_inline)) void q8_0_rows_x1(const qjob *j, int64_t o, const int R) {
    const hl_qweight *w = j->w;
    const int64_t nb = w->cols / HL_QK;
    const uint8_t *row[8];
    __m512 acc[8];
    for (int r = 0; r < R; r++) {
        row[r] = (const uint8_t *)w->data + (uint64_t)(o + r) * w->row_bytes;
        acc[r] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const __m512 x0 = _mm512_loadu_ps(j->x + b * HL_QK), x1 = _mm512_loadu_ps(j->x + b * HL_QK + 16);
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = row[r] + b * 34;
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(hl_le16(blk)));
            const __m512 w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)))), d);
            const __m512 w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)))), d);
            acc[r] = _mm512_fmadd_ps(w0, x0, acc[r]);
            acc[r] = _mm512_fmadd_ps(w1, x1, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) j->out[o + r] = hl_hsum16(acc[r]);
}

static void q8_0_decode_rows(const qjob *j, int64_t o_begin, int64_t o_end) {
    int64_t o = o_begin;
    for (; o + 8 <= o_end; o += 8) q8_0_rows_x1(j, o, 8);
    for (; o < o_end; o++) q8_0_rows_x1(j, o, 1);
}
#endif

static void qmatmul_rows(void *arg, int64_t o_begin, int64_t o_end, int worker) {
    const qjob *j = arg;
#ifdef HL_Q8_0_DECODE
    if (j->T == 1 && j->w->type == HL_TYPE_Q8_0) {
        q8_0_decode_rows(j, o_begin, o_end);
        return;
    }
#endif
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

/* Blocks [b_begin, b_end) of every row: columns k of those blocks of out.
 * The rows of W come in panels of HL_QTILE (their segments dequantized side
 * by side into the worker's scratch); for each token, 64 columns at a time
 * take the panel's rows in order, so every element still chains its fused
 * multiply-adds over o = 0, 1, 2, ... while out and the panel stay in L1. */
static void qmatmul_nn_cols(void *arg, int64_t b_begin, int64_t b_end, int worker) {
    const qjob *j = arg;
    const int64_t K = j->w->cols, O = j->w->rows, k0 = b_begin * j->block, nk = (b_end - b_begin) * j->block;
    float *panel = j->scratch + (int64_t)worker * HL_QTILE * K; /* (HL_QTILE, nk) */
    if (!j->accumulate)
        for (int64_t t = 0; t < j->T; t++)
            for (int64_t k = 0; k < nk; k++) j->out[t * K + k0 + k] = 0.0f;
    for (int64_t o0 = 0; o0 < O; o0 += HL_QTILE) {
        const int64_t ob = O - o0 < HL_QTILE ? O - o0 : HL_QTILE;
        for (int64_t r = 0; r < ob; r++) hl_qweight_blocks(j->w, o0 + r, b_begin, b_end - b_begin, panel + r * nk);
        for (int64_t t = 0; t < j->T; t++) {
            const float *g = j->x + t * O + o0;
            float *dst = j->out + t * K + k0;
            int64_t k = 0;
#if defined(__AVX512F__)
            for (; k + 64 <= nk; k += 64) { /* the same chains, 4 zmm registers of columns */
                __m512 a0 = _mm512_loadu_ps(dst + k), a1 = _mm512_loadu_ps(dst + k + 16);
                __m512 a2 = _mm512_loadu_ps(dst + k + 32), a3 = _mm512_loadu_ps(dst + k + 48);
                for (int64_t r = 0; r < ob; r++) {
                    const __m512 gr = _mm512_set1_ps(g[r]);
                    const float *p = panel + r * nk + k;
                    a0 = _mm512_fmadd_ps(gr, _mm512_loadu_ps(p), a0);
                    a1 = _mm512_fmadd_ps(gr, _mm512_loadu_ps(p + 16), a1);
                    a2 = _mm512_fmadd_ps(gr, _mm512_loadu_ps(p + 32), a2);
                    a3 = _mm512_fmadd_ps(gr, _mm512_loadu_ps(p + 48), a3);
                }
                _mm512_storeu_ps(dst + k, a0);
                _mm512_storeu_ps(dst + k + 16, a1);
                _mm512_storeu_ps(dst + k + 32, a2);
                _mm512_storeu_ps(dst + k + 48, a3);
            }
#elif defined(__AVX2__) && defined(__FMA__)
            for (; k + 64 <= nk; k += 64) { /* the same chains, 8 ymm registers of columns */
                __m256 a[8];
                for (int c = 0; c < 8; c++) a[c] = _mm256_loadu_ps(dst + k + 8 * c);
                for (int64_t r = 0; r < ob; r++) {
                    const __m256 gr = _mm256_set1_ps(g[r]);
                    const float *p = panel + r * nk + k;
                    for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(gr, _mm256_loadu_ps(p + 8 * c), a[c]);
                }
                for (int c = 0; c < 8; c++) _mm256_storeu_ps(dst + k + 8 * c, a[c]);
            }
#endif
            for (; k < nk; k += 64) {
                const int64_t kn = nk - k < 64 ? nk - k : 64;
                float acc[64];
                memcpy(acc, dst + k, sizeof(float) * (size_t)kn);
                for (int64_t r = 0; r < ob; r++) {
                    const float gr = g[r], *p = panel + r * nk + k;
                    for (int64_t c = 0; c < kn; c++) acc[c] = fmaf(gr, p[c], acc[c]);
                }
                memcpy(dst + k, acc, sizeof(float) * (size_t)kn);
            }
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
