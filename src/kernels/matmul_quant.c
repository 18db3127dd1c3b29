/* matmul_quant.c: products with a quantized weight read from its blocks
 * (see kernels.h, hl_qmatmul). No f32 copy of the weight is made: each
 * thread dequantizes a tile of HL_QTILE rows (x·Wᵀ) or one row segment at a
 * time (dY·W) into its own slice of the caller's scratch. One token over
 * q8_0, q4_K or q6_K rows (decode) skips the tile in AVX-512 builds: the
 * values are made in registers and used at once.
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
#include "quant/block_simd.h"
#define HL_QDECODE 1
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

#ifdef HL_QDECODE
/* One token without a tile, for the types people decode with most (q8_0,
 * q4_K, q6_K): each 16 elements of a block are made in a register exactly as
 * the dequantizer makes them (block_simd.h: the same roundings) and chained
 * into their row's 16-lane accumulator over k in order, then reduced by
 * hl_hsum16: hl_dot's order, so the same bits as the tile path (rows are
 * whole blocks of 32 or 256, so there is no scalar tail). Each block
 * function takes one block of one row and the matching slice of x. */
static inline __attribute__((always_inline)) __m512 q8_0_block(const uint8_t *b, const float *x, __m512 acc) {
    const float d = _cvtsh_ss(hl_le16(b));
    acc = _mm512_fmadd_ps(hl_q8_0_16(b + 2, d), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(hl_q8_0_16(b + 18, d), _mm512_loadu_ps(x + 16), acc);
}

/* q4_K, 144 bytes: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles
 * (see quant_types.c); y = (d·sc)·q - dmin·mn per 32-element group. */
static inline __attribute__((always_inline)) __m512 q4_k_block(const uint8_t *b, const float *x, __m512 acc) {
    const float d = _cvtsh_ss(hl_le16(b)), dmin = _cvtsh_ss(hl_le16(b + 2));
    const uint8_t *scales = b + 4, *q = b + 16;
    const __m512i low = _mm512_set1_epi32(0x0f);
    for (int g = 0; g < 8; g += 2, q += 32, x += 64) {
        uint8_t sc, mn;
        hl_k4_scale_min(g, scales, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        hl_k4_scale_min(g + 1, scales, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
        const __m512i v0 = hl_u8x16(q), v1 = hl_u8x16(q + 16);
        acc = _mm512_fmadd_ps(hl_mul_sub16(d1, _mm512_and_si512(v0, low), m1), _mm512_loadu_ps(x), acc);
        acc = _mm512_fmadd_ps(hl_mul_sub16(d1, _mm512_and_si512(v1, low), m1), _mm512_loadu_ps(x + 16), acc);
        acc = _mm512_fmadd_ps(hl_mul_sub16(d2, _mm512_srli_epi32(v0, 4), m2), _mm512_loadu_ps(x + 32), acc);
        acc = _mm512_fmadd_ps(hl_mul_sub16(d2, _mm512_srli_epi32(v1, 4), m2), _mm512_loadu_ps(x + 48), acc);
    }
    return acc;
}

/* q6_K, 210 bytes: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8
 * scales, f16 d (see quant_types.c); y = (d·sc)·(q - 32) per 16 elements. */
static inline __attribute__((always_inline)) __m512 q6_k_block(const uint8_t *b, const float *x, __m512 acc) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = _cvtsh_ss(hl_le16(b + 208));
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, x += 128) {
        float ds[8];
        for (int k = 0; k < 8; k++) ds[k] = d * (float)sc[k];
        acc = _mm512_fmadd_ps(hl_q6_k16(ql, qh, 0, 0, ds[0]), _mm512_loadu_ps(x), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 16, qh + 16, 0, 0, ds[1]), _mm512_loadu_ps(x + 16), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 32, qh, 0, 2, ds[2]), _mm512_loadu_ps(x + 32), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 48, qh + 16, 0, 2, ds[3]), _mm512_loadu_ps(x + 48), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql, qh, 4, 4, ds[4]), _mm512_loadu_ps(x + 64), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 16, qh + 16, 4, 4, ds[5]), _mm512_loadu_ps(x + 80), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 32, qh, 4, 6, ds[6]), _mm512_loadu_ps(x + 96), acc);
        acc = _mm512_fmadd_ps(hl_q6_k16(ql + 48, qh + 16, 4, 6, ds[7]), _mm512_loadu_ps(x + 112), acc);
    }
    return acc;
}

/* Rows [o, o + R) of one token: R independent accumulator chains, block by
 * block, so the FMA latency is hidden and x's block stays in L1. */
#define QDECODE_ROWS(name, block_fn)                                                                       \
    static inline __attribute__((always_inline)) void name(const qjob *j, int64_t o, const int R) {         \
        const hl_qweight *w = j->w;                                                                         \
        const hl_type_traits *tr = hl_type_traits_of(w->type);                                              \
        const int64_t nb = w->cols / tr->block_elems, bb = tr->block_bytes, be = tr->block_elems;          \
        const uint8_t *row = (const uint8_t *)w->data + (uint64_t)o * w->row_bytes;                         \
        __m512 acc[8];                                                                                      \
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();                                           \
        for (int64_t b = 0; b < nb; b++)                                                                    \
            for (int r = 0; r < R; r++) acc[r] = block_fn(row + (uint64_t)r * w->row_bytes + b * bb, j->x + b * be, acc[r]); \
        for (int r = 0; r < R; r++) j->out[o + r] = hl_hsum16(acc[r]);                                      \
    }
QDECODE_ROWS(q8_0_rows, q8_0_block)
QDECODE_ROWS(q4_k_rows, q4_k_block)
QDECODE_ROWS(q6_k_rows, q6_k_block)
#undef QDECODE_ROWS

/* 1 when one token's rows of this type go through the tile-free kernels
 * (each call with a constant R, so the row loop unrolls). */
static int qdecode_rows(const qjob *j, int64_t o_begin, int64_t o_end) {
    int64_t o = o_begin;
    switch (j->w->type) {
    case HL_TYPE_Q8_0:
        for (; o + 8 <= o_end; o += 8) q8_0_rows(j, o, 8);
        for (; o < o_end; o++) q8_0_rows(j, o, 1);
        return 1;
    case HL_TYPE_Q4_K:
        for (; o + 4 <= o_end; o += 4) q4_k_rows(j, o, 4);
        for (; o < o_end; o++) q4_k_rows(j, o, 1);
        return 1;
    case HL_TYPE_Q6_K:
        for (; o + 4 <= o_end; o += 4) q6_k_rows(j, o, 4);
        for (; o < o_end; o++) q6_k_rows(j, o, 1);
        return 1;
    default: return 0;
    }
}
#endif

static void qmatmul_rows(void *arg, int64_t o_begin, int64_t o_end, int worker) {
    const qjob *j = arg;
#ifdef HL_QDECODE
    if (j->T == 1 && qdecode_rows(j, o_begin, o_end)) return;
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
