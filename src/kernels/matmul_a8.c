/* matmul_a8.c: x·Wᵀ over a quantized weight with 8-bit activations and
 * integer dot products (see kernels.h, hl_qmatmul_a8), for rows of every
 * block type we read (q8_0, q4_0, q4_1, q5_0, q5_1, q2_K ... q6_K): the
 * weight's blocks are never turned into floats.
 *
 * Each token of x is first quantized, per block of the weight's block size,
 * to int8 with one scale: q = round-to-nearest-even(x·(127/max|x|)), clamped
 * to ±127, and d = max|x|/127 (rounded to f16 for the blocks of
 * the 32-element types, as llama.cpp stores them): llama.cpp's own
 * activation rule. The blocks also keep the sums of their q's: each 32 (for
 * q4_1 and q5_1's offsets), each 16 (for the K types). The products are
 * then integer sums, exact in any order, times the two blocks' scales.
 *
 * One fixed float order, the same at every SIMD level.
 * - The 32-element types (q8_0, q4_0, q4_1, q5_0, q5_1): each block's 32
 *   integer products summed exactly into one int32 s, then, over the blocks
 *   in order, acc = fma(d_w·d_x, (float)s, acc) from 0; the _1 types also
 *   chain macc = fma(m·d_x, (float)(sum of the block's q), macc), and the
 *   row's value is acc (+ macc). Prompts multiply eight tokens at once in
 *   panels (q8_panel_dots, small_panel_dots).
 * - The K types: the integer products
 *   of a block land in 8 int32 lanes, lane l holding the elements 4l..4l+3 of
 *   each 32 (what one 256-bit multiply-add of bytes gives; q6_K's lane l also
 *   takes off 32·(sc·sum of q) of its 16-element groups 2l and 2l+1, q3_K's
 *   4·(...)); per block, each lane does acc[l] = fma(d_w·d_x, (float)lane[l],
 *   acc[l]), and for q4_K/q5_K then acc[l] = fma(-(dmin·d_x), (float)(min_l·
 *   sum of group l's q), acc[l]) (q2_K: groups 2l and 2l+1's terms); the
 *   row's value is ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
 * The scalar code computes exactly these sums, so the scalar, AVX2 and
 * AVX-512 builds give the same bits, at any thread count and batch size.
 *
 * Shapes: x (T, K), W (O, K) as an hl_qweight, out (T, O; row stride ldo).
 * scratch holds the quantized tokens, as many at a time as fit. */
#include "kernels/kernel_choice.h"
#include "kernels/kernels.h"
#include "quant/block_simd.h"
#include "quant/quant_types.h"
#include "util/half.h"
#include "util/le_bytes.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define HL_A8_SIMD 1
#endif

/* One token quantized, as stored in the scratch (each token 64-byte
 * aligned, so the 32-byte loads of q never straddle cache lines), every
 * field at its own alignment:
 *   32-element form:  q (K int8), scales (K/32 f32), sums of each 32 q's (K/32 int16);
 *   256-element form: q (K int8), sums of each 16 q's (K/16 int16), sums of
 *   each 32 q's (K/32 int32, for the two-row q4_K/q5_K decoding), scales
 *   (K/256 f32). */
typedef struct {
    const int8_t *q;
    const int16_t *bsum;
    const int32_t *sum32; /* the 256-element form only */
    const float *d;
} a8_tok;

static inline a8_tok a8_at(const uint8_t *act, int64_t K, int k_type) {
    a8_tok v = {(const int8_t *)act, (const int16_t *)(act + (k_type ? K : K + K / 8)),
                k_type ? (const int32_t *)(act + K + K / 8) : NULL,
                (const float *)(act + (k_type ? K + K / 4 : K))};
    return v;
}

static float f16_at(const uint8_t *p) {
#ifdef HL_A8_SIMD
    return _cvtsh_ss(hl_le16(p));
#else
    return hl_f16_to_f32(hl_le16(p));
#endif
}

/* q[0..n) = x quantized with one scale; returns the scale. n is 32 or 256.
 * The SIMD form gives the same bytes: the maximum is exact, the product is
 * one rounding, and converting rounds to nearest even as lrintf does. */
#ifdef HL_A8_SIMD
static float quantize_block(const float *x, int n, int8_t *q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m); /* NaN: skipped */
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float amax = _mm_cvtss_f32(h), id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int i = 0; i < n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid)), lo), hi);
        const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(b, order));
    }
    return amax / 127.0f;
}
#else
static float quantize_block(const float *x, int n, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < n; i++) {
        long v = lrintf(x[i] * id);
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return amax / 127.0f;
}
#endif

/* The bytes one token of K elements takes quantized (a multiple of 64). */
static int64_t a8_token_bytes(uint32_t type, int64_t K) {
    const int64_t n = hl_qmatmul_a8_form(type) == 0 ? K + K / 16 + K / 8 : K + K / 4 + K / 64;
    return (n + 63) / 64 * 64;
}

#if defined(__AVX512BW__)
/* The order of a K-type token's eight 32-byte pieces in each block, for
 * the 512-bit q4_K-q6_K forms (see quantize_token); NULL: the block's own. */
static const int *paired_order(uint32_t type) {
    static const int q45[8] = {0, 2, 1, 3, 4, 6, 5, 7}, q6[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    return type == HL_TYPE_Q6_K ? q6 : type == HL_TYPE_Q4_K || type == HL_TYPE_Q5_K ? q45 : NULL;
}
#endif
/* Which quantized token a weight type reads: types with the same key read
 * the same bytes. */
static int token_layout(uint32_t type) {
#if defined(__AVX512BW__)
    if (type == HL_TYPE_Q6_K) return 3;
    if (type == HL_TYPE_Q4_K || type == HL_TYPE_Q5_K) return 2;
#endif
    return hl_qmatmul_a8_form(type);
}

static void quantize_token(uint32_t type, const float *x, int64_t K, uint8_t *dst) {
    int8_t *q = (int8_t *)dst;
    if (hl_qmatmul_a8_form(type) == 0) {
        float *d = (float *)(dst + K);
        int16_t *sum = (int16_t *)(dst + K + K / 8);
        /* the scale rounded to f16, as llama.cpp stores its 32-element activations */
        for (int64_t i = 0; i < K / 32; i++) {
            d[i] = hl_f16_to_f32(hl_f32_to_f16(quantize_block(x + 32 * i, 32, q + 32 * i)));
            int s = 0;
            for (int k = 0; k < 32; k++) s += q[32 * i + k];
            sum[i] = (int16_t)s;
        }
        return;
    }
    int16_t *bsum = (int16_t *)(dst + K);
    int32_t *sum32 = (int32_t *)(dst + K + K / 8);
    float *d = (float *)(dst + K + K / 4);
    for (int64_t i = 0; i < K / 256; i++) d[i] = quantize_block(x + 256 * i, 256, q + 256 * i);
    for (int64_t g = 0; g < K / 16; g++) {
        int s = 0;
        for (int k = 0; k < 16; k++) s += q[16 * g + k];
        bsum[g] = (int16_t)s;
    }
    for (int64_t g = 0; g < K / 32; g++) sum32[g] = bsum[2 * g] + bsum[2 * g + 1];
#if defined(__AVX512BW__)
    /* The 512-bit q4_K-q6_K forms pair two 32-byte pieces of a block in one
     * register (q45_k_token512, q6_k_token512). Stored in that order, each
     * register is one aligned load instead of two loads and an insert
     * (q4_K decoding from cache 4-8% faster on a Zen 5). The sums above
     * were taken in the block's own order, and every byte still meets the
     * same weight byte, so no value changes. */
    const int *order = paired_order(type);
    for (int64_t i = 0; order && i < K / 256; i++) {
        int8_t block[256];
        memcpy(block, q + 256 * i, sizeof block);
        for (int c = 0; c < 8; c++) memcpy(q + 256 * i + 32 * c, block + 32 * order[c], 32);
    }
#endif
}

/* The token quantize_token(to) writes, made from the one it wrote for
 * `from` (the same form): the quantized bytes and their sums are the same,
 * only the order of the 32-byte pieces within each block can differ. A
 * group whose parts read both (q4_K and q6_K in the _M mixes) quantizes
 * its token once. */
static void relayout_token(uint32_t from, uint32_t to, const uint8_t *src, int64_t K, uint8_t *dst) {
    memcpy(dst, src, (size_t)a8_token_bytes(to, K));
#if defined(__AVX512BW__)
    const int *order_from = paired_order(from), *order_to = paired_order(to);
    if (order_from == order_to) return;
    for (int64_t i = 0; i < K / 256; i++) {
        int8_t block[256]; /* the block in its own order */
        for (int c = 0; c < 8; c++) memcpy(block + 32 * (order_from ? order_from[c] : c), src + 256 * i + 32 * c, 32);
        for (int c = 0; c < 8; c++) memcpy(dst + 256 * i + 32 * c, block + 32 * (order_to ? order_to[c] : c), 32);
    }
#else
    (void)from;
#endif
}

static float lanes_sum(const float a[8]) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

/* ---- the documented lanes, element by element ---- */
#ifndef HL_A8_SIMD
/* q8_0 has its own order (see the top of the file): one exact integer sum
 * per block and one float chain per (row, token). */
static float dot_q8_0(const uint8_t *w, const uint8_t *act, int64_t nb) {
    const a8_tok x = a8_at(act, nb * 32, 0);
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += 34) {
        const int8_t *qw = (const int8_t *)(w + 2), *qx = x.q + 32 * b;
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += (int32_t)qw[i] * qx[i];
        acc = fmaf(f16_at(w) * x.d[b], (float)s, acc);
    }
    return acc;
}

/* The 32-element types: element i of a block as an integer, and the block's
 * f16 scale d and (q4_1, q5_1) f16 offset m at the block's start. Values:
 * q4_0 nib - 8, q5_0 (nib | h << 4) - 16, q4_1 nib, q5_1 nib | h << 4, with
 * nib the low (i < 16) or high (i >= 16) half of byte i % 16. */
static int small_value(uint32_t type, const uint8_t *w, int i) {
    switch (type) {
    case HL_TYPE_Q4_0: return (i < 16 ? w[2 + i] & 15 : w[2 + i - 16] >> 4) - 8;
    case HL_TYPE_Q4_1: return i < 16 ? w[4 + i] & 15 : w[4 + i - 16] >> 4;
    case HL_TYPE_Q5_0: return ((i < 16 ? w[6 + i] & 15 : w[6 + i - 16] >> 4) | ((hl_le32(w + 2) >> i) & 1) << 4) - 16;
    default: return (i < 16 ? w[8 + i] & 15 : w[8 + i - 16] >> 4) | ((hl_le32(w + 4) >> i) & 1) << 4;
    }
}

/* q4_0, q4_1, q5_0, q5_1: q8_0's order (one exact integer sum per block,
 * one float chain); the _1 types add m·d_x·(sum of the block's q) into a
 * second chain, added to the first at the end. */
static float dot_small(uint32_t type, const uint8_t *w, const uint8_t *act, int64_t nb) {
    const a8_tok x = a8_at(act, nb * 32, 0);
    const int bytes = type == HL_TYPE_Q4_0 ? 18 : type == HL_TYPE_Q4_1 ? 20 : type == HL_TYPE_Q5_0 ? 22 : 24;
    const int offset = type == HL_TYPE_Q4_1 || type == HL_TYPE_Q5_1;
    float acc = 0.0f, macc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += bytes) {
        const int8_t *qx = x.q + 32 * b;
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += small_value(type, w, i) * qx[i];
        acc = fmaf(f16_at(w) * x.d[b], (float)s, acc);
        if (offset) macc = fmaf(f16_at(w + 2) * x.d[b], (float)x.bsum[b], macc);
    }
    return acc + macc;
}
static float dot_q4_0(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_small(HL_TYPE_Q4_0, w, act, nb); }
static float dot_q4_1(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_small(HL_TYPE_Q4_1, w, act, nb); }
static float dot_q5_0(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_small(HL_TYPE_Q5_0, w, act, nb); }
static float dot_q5_1(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_small(HL_TYPE_Q5_1, w, act, nb); }

/* q4_K (qh NULL) and q5_K (qh: the fifth bits, bit 2j of qh[i] for element
 * i of group 2j, bit 2j + 1 for group 2j + 1): the same lanes. */
static float dot_q45_k(const uint8_t *w, const uint8_t *act, int64_t nb, int five) {
    const a8_tok x = a8_at(act, nb * 256, 1);
    float acc[8] = {0};
    const int64_t bytes = five ? 176 : 144;
    for (int64_t b = 0; b < nb; b++, w += bytes) {
        const uint8_t *scales = w + 4, *q = w + (five ? 48 : 16), *qh = w + 16;
        int32_t lane[8] = {0}, mins[8];
        for (int j = 0; j < 4; j++) {
            uint8_t sc1, m1, sc2, m2;
            hl_k4_scale_min(2 * j, scales, &sc1, &m1);
            hl_k4_scale_min(2 * j + 1, scales, &sc2, &m2);
            const int8_t *y = x.q + 256 * b + 64 * j;
            const int16_t *bs = x.bsum + 16 * b + 4 * j;
            for (int l = 0; l < 8; l++) {
                int32_t s1 = 0, s2 = 0;
                for (int i = 4 * l; i < 4 * l + 4; i++) {
                    const int h1 = five ? ((qh[i] >> (2 * j)) & 1) << 4 : 0, h2 = five ? ((qh[i] >> (2 * j + 1)) & 1) << 4 : 0;
                    s1 += ((q[32 * j + i] & 15) | h1) * y[i];
                    s2 += ((q[32 * j + i] >> 4) | h2) * y[32 + i];
                }
                lane[l] += sc1 * s1 + sc2 * s2;
            }
            mins[2 * j] = m1 * (bs[0] + bs[1]);
            mins[2 * j + 1] = m2 * (bs[2] + bs[3]);
        }
        const float dd = f16_at(w) * x.d[b], dm = f16_at(w + 2) * x.d[b];
        for (int l = 0; l < 8; l++) acc[l] = fmaf(-dm, (float)mins[l], fmaf(dd, (float)lane[l], acc[l]));
    }
    return lanes_sum(acc);
}
static float dot_q4_k(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_q45_k(w, act, nb, 0); }
static float dot_q5_k(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_q45_k(w, act, nb, 1); }

/* Element e of a q6_K half (128 elements): chunk c = e/32, i = e%32. */
static int q6_value(const uint8_t *ql, const uint8_t *qh, int c, int i) {
    const int lo = c & 1 ? ql[32 + i] : ql[i];
    return (c < 2 ? lo & 15 : lo >> 4) | ((qh[i] >> (2 * c)) & 3) << 4;
}

static float dot_q6_k(const uint8_t *w, const uint8_t *act, int64_t nb) {
    const a8_tok x = a8_at(act, nb * 256, 1);
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        int32_t lane[8] = {0};
        for (int h = 0; h < 2; h++)
            for (int c = 0; c < 4; c++) {
                const int8_t *y = x.q + 256 * b + 128 * h + 32 * c;
                for (int l = 0; l < 8; l++) {
                    int32_t s = 0;
                    for (int i = 4 * l; i < 4 * l + 4; i++) s += q6_value(w + 64 * h, w + 128 + 32 * h, c, i) * y[i];
                    lane[l] += sc[8 * h + 2 * c + l / 4] * s;
                }
            }
        for (int l = 0; l < 8; l++) lane[l] -= 32 * (sc[2 * l] * x.bsum[16 * b + 2 * l] + sc[2 * l + 1] * x.bsum[16 * b + 2 * l + 1]);
        const float dd = f16_at(w + 208) * x.d[b];
        for (int l = 0; l < 8; l++) acc[l] = fmaf(dd, (float)lane[l], acc[l]);
    }
    return lanes_sum(acc);
}

/* The 16 signed scales of a q3_K block (each stored as 6 bits, offset by
 * 32): the low 4 bits of scale i in byte i % 8 (low half for i < 8), the
 * high 2 bits in byte 8 + i % 4 at bit 2·(i / 4). */
static void q3_k_scales(const uint8_t *s, int8_t sc[16]) {
    for (int i = 0; i < 16; i++) {
        const int lo = i < 8 ? s[i] & 15 : s[i - 8] >> 4, hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        sc[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* q2_K (84 bytes: 16 scale bytes, low 4 bits scale and high 4 bits min of
 * each 16 elements; 64 bytes of 2-bit values; f16 d, dmin) and q3_K (110
 * bytes: 32 bytes of high bits, set meaning +0 and clear -4; 64 bytes of
 * 2-bit values; 12 scale bytes; f16 d). Element e = 128h + 32j + i of a
 * block: bits 2j of value byte 32h + i, high bit 4h + j of hmask byte i;
 * its 16-element group 8h + 2j + i/16. q3_K's lanes use the value + 4
 * (0..7) and take off 4·(sc·sum of q) of their groups 2l and 2l + 1 as
 * q6_K's do; q2_K's min term is q4_K's, per group pair. */
static float dot_q23_k(const uint8_t *w, const uint8_t *act, int64_t nb, int three) {
    const a8_tok x = a8_at(act, nb * 256, 1);
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++, w += three ? 110 : 84) {
        const uint8_t *q = w + (three ? 32 : 16), *hm = w;
        const int16_t *bs = x.bsum + 16 * b;
        int8_t sc3[16];
        if (three) q3_k_scales(w + 96, sc3);
        int32_t lane[8] = {0}, mins[8];
        for (int c = 0; c < 8; c++) {
            const int h = c / 4, j = c % 4;
            const int8_t *y = x.q + 256 * b + 32 * c;
            for (int l = 0; l < 8; l++) {
                int32_t s = 0;
                for (int i = 4 * l; i < 4 * l + 4; i++) {
                    const int v = (q[32 * h + i] >> (2 * j)) & 3;
                    s += (three ? v + 4 * ((hm[i] >> (4 * h + j)) & 1) : v) * y[i];
                }
                lane[l] += (three ? sc3[2 * c + l / 4] : w[2 * c + l / 4] & 15) * s;
            }
        }
        for (int l = 0; l < 8; l++) {
            if (three) lane[l] -= 4 * (sc3[2 * l] * bs[2 * l] + sc3[2 * l + 1] * bs[2 * l + 1]);
            else mins[l] = (w[2 * l] >> 4) * bs[2 * l] + (w[2 * l + 1] >> 4) * bs[2 * l + 1];
        }
        if (three) {
            const float dd = f16_at(w + 108) * x.d[b];
            for (int l = 0; l < 8; l++) acc[l] = fmaf(dd, (float)lane[l], acc[l]);
        } else {
            const float dd = f16_at(w + 80) * x.d[b], dm = f16_at(w + 82) * x.d[b];
            for (int l = 0; l < 8; l++) acc[l] = fmaf(-dm, (float)mins[l], fmaf(dd, (float)lane[l], acc[l]));
        }
    }
    return lanes_sum(acc);
}
static float dot_q2_k(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_q23_k(w, act, nb, 0); }
static float dot_q3_k(const uint8_t *w, const uint8_t *act, int64_t nb) { return dot_q23_k(w, act, nb, 1); }
#else
/* ---- the same lanes, 32 bytes at a time ----
 * One row (the K types' dots_) or nr ≤ 2 rows rs bytes apart (rdots_)
 * against nt tokens (nt ≤ 4; nr and nt constants at each call): a row's
 * bytes are unpacked once per block and multiplied with each token's, and
 * a token's bytes and scale are loaded once for both rows, which is what
 * makes prompts fast; each (row, token) keeps the lanes and float chain
 * above (d_w·d_x is the same one rounding as a vector product). out[t·ldo
 * + r]; tokens are stride bytes apart. */
/* Decoding (one token) streams each weight byte from memory once: q8_0
 * asks for the bytes A8_AHEAD on from each block early. On a Zen 3 the
 * hardware prefetchers alone left q8_0 decode 15-20% slower (s110M tg32,
 * 2 threads; 1-8 KiB ahead measured alike in one thread), while the same
 * requests made the K types' decode 25-45% slower and q4_0's no faster.
 * On an Intel AVX-512 guest, q8_0's s110M tg64 at 2 threads ran 131 tok/s
 * without them, 221-250 at 2 KiB, 270-287 at 4, 295-309 at 8, 282-292 at
 * 16 and 257-264 at 32 (1 thread: 120 at 2 KiB, 128 at 8), hence 8 KiB.
 * q4_K, q5_K and q6_K ask for each row's blocks a distance ahead only
 * where the CPU's table row says so (kernel_choice.c: a Zen 4 decoded
 * s110M q4_K_M, q5_K_M and q6_K 5-14% faster asking 4 KiB ahead). No
 * value depends on them. */
#define A8_AHEAD 8192
static inline __attribute__((always_inline)) void prefetch_ahead(const uint8_t *w, const int block_bytes) {
    for (int i = 0; i < block_bytes; i += 64) _mm_prefetch((const char *)w + A8_AHEAD + i, _MM_HINT_T0);
}

/* Each 32-bit lane l: the four byte products a[4l..4l+3]·b[4l..4l+3], a
 * unsigned and b signed. With VNNI (AVX512-VNNI with VL, or AVX-VNNI) that
 * is one instruction; otherwise pairs into 16 bits, then pairs of those.
 * The lanes are equal: every call bounds a pair's sum below the 16-bit
 * limit (q8_0: 2·128·127), so the two-step form never saturates. */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define HL_A8_DPBUSD 1
#define DPBUSD(src, a, b) _mm256_dpbusd_epi32(src, a, b)
#elif defined(__AVXVNNI__)
#define HL_A8_DPBUSD 1
#define DPBUSD(src, a, b) _mm256_dpbusd_avx_epi32(src, a, b)
#else
#define HL_A8_DPBUSD 0
#endif
static inline __m256i sum4_u8s8(__m256i a, __m256i b) {
#if HL_A8_DPBUSD
    return DPBUSD(_mm256_setzero_si256(), a, b);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
#endif
}

/* acc + the pairwise int16 products of a and b summed into int32 lanes:
 * one instruction with VNNI (AVX512-VNNI with VL, or AVX-VNNI), a
 * multiply-add and an add otherwise. Exact either way: no sum here comes
 * near the int32 limit. */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define WORDS_DOT256(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#elif defined(__AVXVNNI__)
#define WORDS_DOT256(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#else
#define WORDS_DOT256(acc, a, b) _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
#endif

/* int16 word k of each 128-bit half of v, in every word of that half (a
 * byte shuffle: no general-register round trip per scale). */
static inline __m256i words_broadcast(__m256i v, int k_low, int k_high) {
    return _mm256_shuffle_epi8(v, _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * k_high)),
                                                   _mm_set1_epi16((short)(0x0100 + 0x0202 * k_low))));
}

static inline float lanes_sum8(__m256 v) {
    float a[8];
    _mm256_storeu_ps(a, v);
    return lanes_sum(a);
}

/* The 8 six-bit scales and mins of a q4_K/q5_K block from its 12 scale
 * bytes, four at a time in 32-bit words (the same values as
 * hl_k4_scale_min). */
static inline void k4_scales_mins(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    const uint32_t s0 = u0 & 0x3f3f3f3fu, m0 = u1 & 0x3f3f3f3fu;
    const uint32_t s1 = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    const uint32_t m1 = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    memcpy(sc, &s0, 4);
    memcpy(sc + 4, &s1, 4);
    memcpy(mn, &m0, 4);
    memcpy(mn + 4, &m1, 4);
}

/* The sum of a vector's eight 32-bit integer lanes (exact: any order). */
static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* q8_0, one row against one token in its own layout (decoding, and the
 * prompt path when the scratch cannot hold a panel): each block's 32
 * products summed exactly, then the row's one float chain. Four blocks'
 * lanes are summed together (two rounds of pairwise additions and the
 * halves), which is what keeps decoding at its old speed: one block at a
 * time took 15% longer on a Zen 4. */
static inline __attribute__((always_inline)) __m256i q8_block_lanes(const uint8_t *w, const int8_t *qx) {
    const __m256i qw = _mm256_loadu_si256((const __m256i *)(w + 2));
    const __m256i x = _mm256_load_si256((const __m256i *)qx);
    /* |w|·(x·sign w): unsigned × signed bytes, pairs at most 2·128·127 */
    return sum4_u8s8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(x, qw));
}

static inline __attribute__((always_inline)) float q8_dot_one(const uint8_t *w, const int8_t *qx, const float *dx,
                                                             int64_t nb, const int prefetch) {
    float acc = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * 34) {
        if (prefetch) prefetch_ahead(w, 4 * 34);
        const __m256i v0 = q8_block_lanes(w, qx + 32 * b), v1 = q8_block_lanes(w + 34, qx + 32 * b + 32);
        const __m256i v2 = q8_block_lanes(w + 68, qx + 32 * b + 64), v3 = q8_block_lanes(w + 102, qx + 32 * b + 96);
        /* [v0 v1 v2 v3 low-half sums | the same of the high halves] */
        const __m256i g = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
        const __m128 sv = _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1)));
        const __m128i h = _mm_setr_epi16((short)hl_le16(w), (short)hl_le16(w + 34), (short)hl_le16(w + 68),
                                         (short)hl_le16(w + 102), 0, 0, 0, 0);
        const __m128 dv = _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(dx + b));
        float d[4], s[4];
        _mm_storeu_ps(d, dv);
        _mm_storeu_ps(s, sv);
        for (int i = 0; i < 4; i++) acc = fmaf(d[i], s[i], acc);
    }
    for (; b < nb; b++, w += 34) {
        const int32_t s = hsum_epi32(q8_block_lanes(w, qx + 32 * b));
        acc = fmaf(f16_at(w) * dx[b], (float)s, acc);
    }
    return acc;
}

static inline __attribute__((always_inline)) void rdots_q8_0(const uint8_t *w, int64_t rs, const int nr,
                                                            const uint8_t *act, int64_t stride, int64_t nb,
                                                            const int nt, float *out, int64_t ldo) {
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) {
            const a8_tok x = a8_at(act + t * stride, nb * 32, 0);
            out[t * ldo + r] = q8_dot_one(w + r * rs, x.q, x.d, nb, nt == 1);
        }
}

/* Prompts of the 32-element types: the tokens in panels of eight, one
 * token per 32-bit lane (q8_0 first; the others below).
 * A panel holds, per block b: the bytes as 8 steps of (8 tokens x 4 bytes),
 * step k carrying each token's elements 4k..4k+3 (256 bytes); then the 8
 * tokens' scales (f32), then the sums of their q's over the block (int32).
 * One four-byte group of a weight row, broadcast to every lane,
 * multiplies a step of all eight tokens at once, so a block's exact sums
 * for 8 tokens land in one vector with no horizontal additions, and the
 * float work (d_w·d_x, convert, multiply-add) is one vector per (row,
 * block) instead of one per (row, token, block). With VNNI the weight bytes
 * are made unsigned (w+128) and the lanes start from the correction; without
 * it, |w| times x·sign(w) as in the decoding kernel. Lanes past the last
 * token are zero tokens, computed and dropped. q4_0 ... q5_1 use the same
 * panels (small_panel_dots). */
#define PANEL_TOKENS 8
static int64_t a8_panel_bytes(int64_t K) { return (K / 32 * 320 + 63) / 64 * 64; }

/* Token x (K floats; NULL: a zero token) into lane t of a panel. */
static void a8_panel_token(const float *x, int64_t K, uint8_t *panel, int t) {
    const int64_t nb = K / 32;
    float *d = (float *)(panel + nb * 256);
    int32_t *sum = (int32_t *)(panel + nb * 288);
    for (int64_t b = 0; b < nb; b++) {
        int8_t q[32] = {0};
        int s = 0;
        d[8 * b + t] = x ? hl_f16_to_f32(hl_f32_to_f16(quantize_block(x + 32 * b, 32, q))) : 0.0f;
        for (int k = 0; k < 32; k++) s += q[k];
        for (int k = 0; k < 8; k++) memcpy(panel + 256 * b + 32 * k + 4 * t, q + 4 * k, 4);
        sum[8 * b + t] = s;
    }
}

/* nr rows against one panel: out[t·ldo + r] for the first nt tokens. */
static inline __attribute__((always_inline)) void q8_panel_dots(const uint8_t *w, int64_t rs, const int nr,
                                                               const uint8_t *panel, int64_t nb, float *out,
                                                               int64_t ldo, int nt) {
    const float *pd = (const float *)(panel + nb * 256);
#if HL_A8_DPBUSD
    const int32_t *psum = (const int32_t *)(panel + nb * 288);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
#endif
    __m256 acc[4];
    for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 34) {
        const uint8_t *pq = panel + 256 * b;
        __m256i s[4];
        for (int r = 0; r < nr; r++) {
#if HL_A8_DPBUSD
            s[r] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(_mm256_load_si256((const __m256i *)(psum + 8 * b)), 7));
#else
            s[r] = _mm256_setzero_si256();
#endif
        }
        for (int k = 0; k < 8; k++) {
            const __m256i x = _mm256_load_si256((const __m256i *)(pq + 32 * k));
            for (int r = 0; r < nr; r++) {
                int32_t four;
                memcpy(&four, w + r * rs + 2 + 4 * k, 4);
                const __m256i wb = _mm256_set1_epi32(four);
#if HL_A8_DPBUSD
                /* (w+128)·x, the lanes having started at -128·(sum of x) */
                s[r] = DPBUSD(s[r], _mm256_xor_si256(wb, flip), x);
#else
                s[r] = _mm256_add_epi32(s[r], sum4_u8s8(_mm256_sign_epi8(wb, wb), _mm256_sign_epi8(x, wb)));
#endif
            }
        }
        const __m256 dx = _mm256_load_ps(pd + 8 * b);
        for (int r = 0; r < nr; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(w + r * rs)), dx),
                                     _mm256_cvtepi32_ps(s[r]), acc[r]);
    }
    for (int r = 0; r < nr; r++) {
        float a[8];
        _mm256_storeu_ps(a, acc[r]);
        for (int t = 0; t < nt; t++) out[t * ldo + r] = a[t];
    }
}

/* byte i = 0x10 where bit i of bits is set, else 0 */
static inline __m256i fifth_bits(uint32_t bits) {
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    /* all bits but bit i % 8 set: all ones exactly where that bit was set */
    const __m256i probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_and_si256(_mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
}

/* q4_0, q4_1, q5_0, q5_1 (type a constant at each call). The 32 values of
 * a block in element order as unsigned bytes: the _1 types' values, and
 * q4_0's and q5_0's plus their bias (8, 16), which the integer sums take off
 * again as bias·(sum of the token's q). */
static inline int small_bytes(const uint32_t type) {
    return type == HL_TYPE_Q4_0 ? 18 : type == HL_TYPE_Q4_1 ? 20 : type == HL_TYPE_Q5_0 ? 22 : 24;
}
static inline int small_bias_shift(const uint32_t type) { /* bias = 1 << shift; 0: none */
    return type == HL_TYPE_Q4_0 ? 3 : type == HL_TYPE_Q5_0 ? 4 : 0;
}
static inline __attribute__((always_inline)) __m256i small_unsigned(const uint32_t type, const uint8_t *wr) {
    const int qs_at = type == HL_TYPE_Q4_0 ? 2 : type == HL_TYPE_Q4_1 ? 4 : type == HL_TYPE_Q5_0 ? 6 : 8;
    const __m128i low = _mm_set1_epi8(0x0f);
    const __m128i qs = _mm_loadu_si128((const __m128i *)(wr + qs_at));
    __m256i v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), low), _mm_and_si128(qs, low));
    if (type == HL_TYPE_Q5_0 || type == HL_TYPE_Q5_1)
        v = _mm256_or_si256(v, fifth_bits(hl_le32(wr + (type == HL_TYPE_Q5_0 ? 2 : 4))));
    return v;
}

/* One row against one token in its own layout, four blocks' lanes summed
 * together as in q8_dot_one. Values at most 31: the byte pairs never
 * saturate. */
static inline __attribute__((always_inline)) float small_dot_one(const uint32_t type, const uint8_t *w,
                                                                const uint8_t *act, int64_t nb) {
    const a8_tok x = a8_at(act, nb * 32, 0);
    const int bytes = small_bytes(type), shift = small_bias_shift(type);
    const int offset = type == HL_TYPE_Q4_1 || type == HL_TYPE_Q5_1;
    float acc = 0.0f, macc = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * bytes) {
        __m256i v[4];
        for (int i = 0; i < 4; i++)
            v[i] = sum4_u8s8(small_unsigned(type, w + i * bytes), _mm256_load_si256((const __m256i *)(x.q + 32 * (b + i))));
        const __m256i g = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        __m128i si = _mm_add_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1));
        const __m128i bs = _mm_cvtepi16_epi32(_mm_loadl_epi64((const __m128i *)(x.bsum + b)));
        if (shift) si = _mm_sub_epi32(si, _mm_slli_epi32(bs, shift));
        const __m128i h = _mm_setr_epi16((short)hl_le16(w), (short)hl_le16(w + bytes), (short)hl_le16(w + 2 * bytes),
                                         (short)hl_le16(w + 3 * bytes), 0, 0, 0, 0);
        const __m128 dx = _mm_loadu_ps(x.d + b);
        float d[4], sf[4];
        _mm_storeu_ps(d, _mm_mul_ps(_mm_cvtph_ps(h), dx));
        _mm_storeu_ps(sf, _mm_cvtepi32_ps(si));
        for (int i = 0; i < 4; i++) acc = fmaf(d[i], sf[i], acc);
        if (offset) {
            const __m128i hm = _mm_setr_epi16((short)hl_le16(w + 2), (short)hl_le16(w + bytes + 2),
                                              (short)hl_le16(w + 2 * bytes + 2), (short)hl_le16(w + 3 * bytes + 2), 0,
                                              0, 0, 0);
            float m[4], bf[4];
            _mm_storeu_ps(m, _mm_mul_ps(_mm_cvtph_ps(hm), dx));
            _mm_storeu_ps(bf, _mm_cvtepi32_ps(bs));
            for (int i = 0; i < 4; i++) macc = fmaf(m[i], bf[i], macc);
        }
    }
    for (; b < nb; b++, w += bytes) {
        int32_t s = hsum_epi32(sum4_u8s8(small_unsigned(type, w), _mm256_load_si256((const __m256i *)(x.q + 32 * b))));
        if (shift) s -= x.bsum[b] * (1 << shift);
        acc = fmaf(f16_at(w) * x.d[b], (float)s, acc);
        if (offset) macc = fmaf(f16_at(w + 2) * x.d[b], (float)x.bsum[b], macc);
    }
    return acc + macc;
}

static inline __attribute__((always_inline)) void dots_small(const uint32_t type, const uint8_t *w, int64_t rs,
                                                             const int nr, const uint8_t *act, int64_t stride,
                                                             int64_t nb, const int nt, float *out, int64_t ldo) {
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) out[t * ldo + r] = small_dot_one(type, w + r * rs, act + t * stride, nb);
}
/* nr rows of a small type against one panel (see q8_panel_dots): each
 * row's block unpacked once to unsigned bytes, and a four-byte group of
 * them broadcast per step; the lanes start from -bias·(sum of x), and the _1
 * types' offsets go into their own chain, vector-wide as well. */
static inline __attribute__((always_inline)) void small_panel_dots(const uint32_t type, const uint8_t *w, int64_t rs,
                                                                  const int nr, const uint8_t *panel, int64_t nb,
                                                                  float *out, int64_t ldo, int nt) {
    const int bytes = small_bytes(type), shift = small_bias_shift(type);
    const int offset = type == HL_TYPE_Q4_1 || type == HL_TYPE_Q5_1;
    const float *pd = (const float *)(panel + nb * 256);
    const int32_t *psum = (const int32_t *)(panel + nb * 288);
    __m256 acc[4], macc[4];
    _Alignas(32) uint8_t u[4][32];
    for (int r = 0; r < nr; r++) acc[r] = macc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += bytes) {
        const uint8_t *pq = panel + 256 * b;
        const __m256i bs = _mm256_load_si256((const __m256i *)(psum + 8 * b));
        const __m256i start = shift ? _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(bs, shift))
                                    : _mm256_setzero_si256();
        __m256i s[4];
        for (int r = 0; r < nr; r++) {
            _mm256_store_si256((__m256i *)u[r], small_unsigned(type, w + r * rs));
            s[r] = start;
        }
        for (int k = 0; k < 8; k++) {
            const __m256i x = _mm256_load_si256((const __m256i *)(pq + 32 * k));
            for (int r = 0; r < nr; r++) {
                int32_t four;
                memcpy(&four, u[r] + 4 * k, 4);
#if HL_A8_DPBUSD
                s[r] = DPBUSD(s[r], _mm256_set1_epi32(four), x);
#else
                s[r] = _mm256_add_epi32(s[r], sum4_u8s8(_mm256_set1_epi32(four), x));
#endif
            }
        }
        const __m256 dx = _mm256_load_ps(pd + 8 * b);
        for (int r = 0; r < nr; r++) {
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(w + r * rs)), dx), _mm256_cvtepi32_ps(s[r]),
                                     acc[r]);
            if (offset)
                macc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(w + r * rs + 2)), dx),
                                          _mm256_cvtepi32_ps(bs), macc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        float a[8];
        _mm256_storeu_ps(a, offset ? _mm256_add_ps(acc[r], macc[r]) : acc[r]);
        for (int t = 0; t < nt; t++) out[t * ldo + r] = a[t];
    }
}

/* dots_<type> for a kernel that serves several types: fn with the type's
 * variant fixed. ROWS_DOTS: the same for a kernel that takes nr rows, rs
 * bytes apart. */
#define VARIANT_DOTS(name, fn, ...)                                                                              \
    static inline __attribute__((always_inline)) void name(const uint8_t *w, const uint8_t *act, int64_t stride, \
                                                           int64_t nb, const int nt, float *out, int64_t ldo) {  \
        fn(__VA_ARGS__, w, act, stride, nb, nt, out, ldo);                                                      \
    }
#define ROWS_DOTS(name, fn, ...)                                                                                 \
    static inline __attribute__((always_inline)) void name(const uint8_t *w, int64_t rs, const int nr,           \
                                                           const uint8_t *act, int64_t stride, int64_t nb,        \
                                                           const int nt, float *out, int64_t ldo) {               \
        fn(__VA_ARGS__, w, rs, nr, act, stride, nb, nt, out, ldo);                                              \
    }
ROWS_DOTS(rdots_q4_0, dots_small, HL_TYPE_Q4_0)
ROWS_DOTS(rdots_q4_1, dots_small, HL_TYPE_Q4_1)
ROWS_DOTS(rdots_q5_0, dots_small, HL_TYPE_Q5_0)
ROWS_DOTS(rdots_q5_1, dots_small, HL_TYPE_Q5_1)
#undef ROWS_DOTS

#if defined(__AVX512BW__)
/* acc + the pairwise int16 products of a and b summed into int32 lanes:
 * one instruction with AVX512-VNNI, a multiply-add and an add otherwise.
 * Exact either way (no sum here comes near the int32 limit). */
#ifdef __AVX512VNNI__
#define WORDS_DOT(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
#else
#define WORDS_DOT(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
#endif
/* One q4_K/q5_K row's int32 lanes for one block (before the halves are
 * added): w the block, scb its 8 scales as bytes base .. base+7 of every
 * 128-bit lane (each becomes a word as it is broadcast: zero-extended by
 * the byte shuffle, so no widening step), ya
 * and yb the token's bytes for the low and high nibbles of q's two 64-byte
 * halves (group 2i in the low half of a vector, 2i+1 in the high half). */
static inline __attribute__((always_inline)) void q45_k_lanes512_n(const int five, const uint8_t *w, const __m512i scb,
                                                                   const int base, const __m512i ya[][2],
                                                                   const __m512i yb[][2], const int nt,
                                                                   __m512i lane[]) {
    const __m512i low = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    const uint8_t *q = w + (five ? 48 : 16);
    const __m512i hb =
        five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 16))) : _mm512_setzero_si512();
    for (int t = 0; t < nt; t++) lane[t] = _mm512_setzero_si512();
    for (int i = 0; i < 2; i++) {
        const __m512i v = _mm512_loadu_si512((const void *)(q + 64 * i));
        __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        if (five) { /* group 2i's bits 4i and 4i+1 of qh, group 2i+1's bits 4i+2 and 4i+3 */
            const __m512i c1 = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * i)),
                                                  _mm256_set1_epi16((short)(4 * i + 2)), 1);
            const __m512i c2 = _mm512_add_epi16(c1, _mm512_set1_epi16(1));
            lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, c1), one), 4));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, c2), one), 4));
        }
        /* scale k as a word across each 256-bit half: sub-blocks 4i, 4i+1 (low half), 4i+2, 4i+3 (high
         * half); index bytes with the top bit set give zero */
        const __m512i k1 = _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 | (base + 4 * i))),
                                              _mm256_set1_epi16((short)(0x8000 | (base + 4 * i + 2))), 1);
        const __m512i k2 = _mm512_add_epi16(k1, _mm512_set1_epi16(1));
        const __m512i s1 = _mm512_shuffle_epi8(scb, k1), s2 = _mm512_shuffle_epi8(scb, k2);
        for (int t = 0; t < nt; t++) {
            const __m512i p1 = _mm512_maddubs_epi16(lo, ya[t][i]), p2 = _mm512_maddubs_epi16(hi, yb[t][i]);
            lane[t] = WORDS_DOT(lane[t], p1, s1);
            lane[t] = WORDS_DOT(lane[t], p2, s2);
        }
    }
}
/* The same for one token. */
static inline __attribute__((always_inline)) __m512i q45_k_lanes512(const int five, const uint8_t *w, const __m512i scb,
                                                                    const int base, const __m512i ya[2],
                                                                    const __m512i yb[2]) {
    __m512i lane;
    q45_k_lanes512_n(five, w, scb, base, (const __m512i(*)[2])ya, (const __m512i(*)[2])yb, 1, &lane);
    return lane;
}

/* The token's bytes of block y for q45_k_lanes512: the 32 bytes against
 * each group's low nibbles, and the next 32 against its high ones
 * (quantize_token stored them in this order). */
static inline __attribute__((always_inline)) void q45_k_token512(const int8_t *y, __m512i ya[2], __m512i yb[2]) {
    for (int i = 0; i < 2; i++) {
        ya[i] = _mm512_load_si512((const void *)(y + 128 * i));
        yb[i] = _mm512_load_si512((const void *)(y + 128 * i + 64));
    }
}

/* One q4_K/q5_K row against nt ≤ 4 tokens with 512-bit integer work: two
 * 32-byte groups of a block per operation (q45_k_lanes512_n), each block
 * unpacked once for all the tokens. The low and high halves' int32 lanes
 * are added at the end of each block, which gives exactly the 256-bit
 * form's lanes (exact integer sums, another order), so each token's float
 * chain, and the bits, are the same. out[t·ldo]; tokens are stride bytes
 * apart. */
static inline __attribute__((always_inline)) void dot_q45_k_512(const int five, const uint8_t *w, const uint8_t *act,
                                                                int64_t stride, int64_t nb, const int nt, float *out,
                                                                int64_t ldo) {
    __m256 acc[4];
    a8_tok x[4];
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = a8_at(act + t * stride, nb * 256, 1);
    }
    for (int64_t b = 0; b < nb; b++, w += five ? 176 : 144) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(w + 4, sc, mn);
        const __m128i mb = _mm_loadl_epi64((const __m128i *)mn);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
        const __m512i scb = _mm512_broadcast_i32x4(_mm_loadl_epi64((const __m128i *)sc));
        __m512i ya[4][2], yb[4][2], lane[4];
        for (int t = 0; t < nt; t++) q45_k_token512(x[t].q + 256 * b, ya[t], yb[t]);
        q45_k_lanes512_n(five, w, scb, 0, ya, yb, nt, lane);
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int t = 0; t < nt; t++) {
            const __m256i lane8 =
                _mm256_add_epi32(_mm512_castsi512_si256(lane[t]), _mm512_extracti64x4_epi64(lane[t], 1));
            const __m256i mins = _mm256_madd_epi16(mn16, _mm256_load_si256((const __m256i *)(x[t].bsum + 16 * b)));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t].d[b]), _mm256_cvtepi32_ps(lane8), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * x[t].d[b]), _mm256_cvtepi32_ps(mins), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t * ldo] = lanes_sum8(acc[t]);
}
/* lanes_sum of each 256-bit half of acc (row 0's lanes low, row 1's high),
 * the tree's three levels done for both rows at once: the same additions in
 * the same order, so the same bits as two lanes_sum8 calls, without the
 * scalar epilogue that cost as much as a block at K = 768. */
static inline __attribute__((always_inline)) void pair_lanes_sum(__m512 acc, float out[2]) {
    const __m512 t1 = _mm512_add_ps(acc, _mm512_shuffle_f32x4(acc, acc, 0xb1)); /* lane l: a_l + a_(l+4) */
    const __m512 t2 = _mm512_add_ps(t1, _mm512_permute_ps(t1, 0x4e));           /* lane 0: (a0+a4)+(a2+a6) */
    const __m512 t3 = _mm512_add_ps(t2, _mm512_permute_ps(t2, 0xb1));           /* lane 0: that + ((a1+a5)+(a3+a7)) */
    out[0] = _mm512_cvtss_f32(t3);
    out[1] = _mm_cvtss_f32(_mm512_extractf32x4_ps(t3, 2));
}
/* Two rows (w0 and w1, anywhere) against one token, for decoding. One row at a
 * time, a Zen 5 core decoded q4_K from cache at about 30 GB/s, less than it
 * reads from memory, so the per-block work that does not depend on the
 * weight's bytes is done for both rows at once: row 0's
 * eight float lanes in the low half of one 512-bit accumulator and row 1's
 * in the high half, one conversion, one multiply-add and one min term for
 * both (min_l·(sum of group l's 32 q) from the token's sum32, the same
 * integer as the 16-element form). Each lane runs the one-row kernel's
 * float chain, so the bits are the same. out[0], out[1]. */
static inline __attribute__((always_inline)) void dot_q45_k_two512(const int five, const uint8_t *w0, const uint8_t *w1,
                                                                   const uint8_t *act, int64_t nb, float *out) {
    __m512 acc = _mm512_setzero_ps();
    const __m512i d_at = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i m_at = _mm512_add_epi32(d_at, _mm512_set1_epi32(1));
    const a8_tok x = a8_at(act, nb * 256, 1);
    const int bb = five ? 176 : 144;
    for (int64_t b = 0; b < nb; b++, w0 += bb, w1 += bb) {
        __m512i ya[2], yb[2];
        q45_k_token512(x.q + 256 * b, ya, yb);
        /* Both rows' first 16 bytes (d, dmin, the 12 scale bytes as words u0 u1
         * u2), row 0 in the low 128 bits: k4_scales_mins for both rows at once
         * in vector registers, to dwords [s0, m0, s1, m1] of each row. */
        const __m256i hd = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)w0)),
                                                   _mm_loadu_si128((const __m128i *)w1), 1);
        const __m256i u012 = _mm256_shuffle_epi32(hd, 0xf9); /* u0 u1 u2 u2 */
        const __m256i u01 = _mm256_shuffle_epi32(hd, 0x90);  /* dwords 2, 3: u0 u1 */
        const __m256i smn = _mm256_or_si256(
            _mm256_and_si256(_mm256_srlv_epi32(u012, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)),
                             _mm256_setr_epi32(0x3f3f3f3f, 0x3f3f3f3f, 0x0f0f0f0f, 0x0f0f0f0f, 0x3f3f3f3f, 0x3f3f3f3f,
                                               0x0f0f0f0f, 0x0f0f0f0f)),
            _mm256_and_si256(_mm256_srli_epi32(u01, 2),
                             _mm256_setr_epi32(0, 0, 0x30303030, 0x30303030, 0, 0, 0x30303030, 0x30303030)));
        /* [row 0's 8 scales, row 1's | row 0's 8 mins, row 1's] as bytes */
        const __m256i sm = _mm256_permute4x64_epi64(
            _mm256_shuffle_epi8(smn, _mm256_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 3,
                                                      8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15)),
            0xd8);
        /* both rows' scales as bytes in every 128-bit lane: row 0's at 0-7, row 1's at 8-15 */
        const __m512i scb = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
        /* lane l: min_l·sum32_l, row 0 in lanes 0-7, row 1 in 8-15 (the token's sums fit in 16 bits) */
        const __m512i s32 = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(x.sum32 + 8 * b)));
        const __m512i mins = _mm512_madd_epi16(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(sm, 1)), s32);
        const __m512i lane[2] = {q45_k_lanes512(five, w0, scb, 0, ya, yb), q45_k_lanes512(five, w1, scb, 8, ya, yb)};
        /* [row 0's low half + high half | row 1's] */
        const __m512i both = _mm512_add_epi32(_mm512_shuffle_i64x2(lane[0], lane[1], 0x44),
                                              _mm512_shuffle_i64x2(lane[0], lane[1], 0xee));
        /* d0, dmin0, d1, dmin1, each times the token's scale (one rounding, as the one-row form) */
        const __m128i h =
            _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(hd, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0)));
        const __m512 dm = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(h), _mm_set1_ps(x.d[b])));
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(d_at, dm), _mm512_cvtepi32_ps(both), acc);
        acc = _mm512_fnmadd_ps(_mm512_permutexvar_ps(m_at, dm), _mm512_cvtepi32_ps(mins), acc);
    }
    pair_lanes_sum(acc, out);
}
#endif

/* q4_K, or q5_K when five (the fifth bits from qh, as in the scalar form). */
static inline __attribute__((always_inline)) void dots_q45_k(const int five, const uint8_t *w, const uint8_t *act,
                                                             int64_t stride, int64_t nb, const int nt, float *out,
                                                             int64_t ldo) {
#if defined(__AVX512BW__)
    dot_q45_k_512(five, w, act, stride, nb, nt, out, ldo);
    return;
#endif
    __m256 acc[4];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++, w += five ? 176 : 144) {
        const uint8_t *scales = w + 4, *q = w + (five ? 48 : 16);
        const __m256i hb = five ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
        uint8_t sc[8], mn[8];
        k4_scales_mins(scales, sc, mn);
        /* each min twice, as 16 int16: against the 16 sums of 16 of a token */
        const __m128i mb = _mm_loadl_epi64((const __m128i *)mn);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
        /* the 8 scales as int16, in both halves */
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        __m256i lane[4];
        for (int t = 0; t < nt; t++) lane[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
            __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            if (five) { /* values ≤ 31: the shifts stay inside each byte */
                const __m128i s1 = _mm_cvtsi32_si128(2 * j), s2 = _mm_cvtsi32_si128(2 * j + 1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hb, s1), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hb, s2), one), 4));
            }
            /* decoding: a byte shuffle per scale (8% faster on a Zen 4); with
             * four tokens, the broadcasts from memory measured 6% faster */
            const __m256i s1 = nt == 1 ? words_broadcast(sc16, 2 * j, 2 * j) : _mm256_set1_epi16(sc[2 * j]);
            const __m256i s2 = nt == 1 ? words_broadcast(sc16, 2 * j + 1, 2 * j + 1) : _mm256_set1_epi16(sc[2 * j + 1]);
            for (int t = 0; t < nt; t++) {
                const int8_t *y = (const int8_t *)(act + t * stride) + 256 * b + 64 * j;
                const __m256i p1 = _mm256_maddubs_epi16(lo, _mm256_load_si256((const __m256i *)y));
                const __m256i p2 = _mm256_maddubs_epi16(hi, _mm256_load_si256((const __m256i *)(y + 32)));
                lane[t] = WORDS_DOT256(WORDS_DOT256(lane[t], p1, s1), p2, s2);
            }
        }
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int t = 0; t < nt; t++) {
            const a8_tok x = a8_at(act + t * stride, nb * 256, 1);
            const __m256i mins = _mm256_madd_epi16(mn16, _mm256_load_si256((const __m256i *)(x.bsum + 16 * b)));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d[b]), _mm256_cvtepi32_ps(lane[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * x.d[b]), _mm256_cvtepi32_ps(mins), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t * ldo] = lanes_sum8(acc[t]);
}
VARIANT_DOTS(dots_q4_k, dots_q45_k, 0)
VARIANT_DOTS(dots_q5_k, dots_q45_k, 1)

/* q2_K, or q3_K when three: as the scalar form. */
static inline __attribute__((always_inline)) void dots_q23_k(const int three, const uint8_t *w, const uint8_t *act,
                                                             int64_t stride, int64_t nb, const int nt, float *out,
                                                             int64_t ldo) {
    __m256 acc[4];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i bits2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++, w += three ? 110 : 84) {
        const uint8_t *q = w + (three ? 32 : 16);
        int8_t sc[16];
        __m256i sc16, mn16 = _mm256_setzero_si256();
        if (three) {
            uint32_t a0, a1, t;
            memcpy(&a0, w + 96, 4);
            memcpy(&a1, w + 100, 4);
            memcpy(&t, w + 104, 4);
            const uint32_t u[4] = {(a0 & 0x0f0f0f0fu) | (t & 0x03030303u) << 4,
                                   (a1 & 0x0f0f0f0fu) | ((t >> 2) & 0x03030303u) << 4,
                                   ((a0 >> 4) & 0x0f0f0f0fu) | ((t >> 4) & 0x03030303u) << 4,
                                   ((a1 >> 4) & 0x0f0f0f0fu) | ((t >> 6) & 0x03030303u) << 4};
            const __m128i s8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)u), _mm_set1_epi8(32));
            _mm_storeu_si128((__m128i *)sc, s8);
            sc16 = _mm256_cvtepi8_epi16(s8);
        } else {
            const __m128i raw = _mm_loadu_si128((const __m128i *)w);
            const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
            _mm_storeu_si128((__m128i *)sc, lo);
            sc16 = _mm256_cvtepu8_epi16(lo);
            mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f)));
        }
        const __m256i hm = three ? _mm256_loadu_si256((const __m256i *)w) : _mm256_setzero_si256();
        /* scales 0-7 and 8-15 as int16, each in both halves */
        const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
        const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        __m256i lane[4];
        for (int t = 0; t < nt; t++) lane[t] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            const int h = c / 4, j = c % 4;
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * h));
            __m256i v = _mm256_and_si256(_mm256_srl_epi16(qv, _mm_cvtsi32_si128(2 * j)), bits2);
            if (three)
                v = _mm256_or_si256(
                    v, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + j)), one), 2));
            const __m256i s = nt == 1 ? words_broadcast(h ? sc_hi : sc_lo, 2 * j, 2 * j + 1)
                                      : _mm256_set_m128i(_mm_set1_epi16(sc[2 * c + 1]), _mm_set1_epi16(sc[2 * c]));
            for (int t = 0; t < nt; t++) {
                const int8_t *y = (const int8_t *)(act + t * stride) + 256 * b + 32 * c;
                const __m256i p = _mm256_maddubs_epi16(v, _mm256_load_si256((const __m256i *)y)); /* ≤ 2·7·127 */
                lane[t] = WORDS_DOT256(lane[t], p, s);
            }
        }
        const __m256 d = _mm256_set1_ps(f16_at(w + (three ? 108 : 80)));
        const float dmin = three ? 0.0f : f16_at(w + 82);
        for (int t = 0; t < nt; t++) {
            const a8_tok x = a8_at(act + t * stride, nb * 256, 1);
            const __m256i bs = _mm256_load_si256((const __m256i *)(x.bsum + 16 * b));
            if (three) {
                const __m256i l = _mm256_sub_epi32(lane[t], _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2));
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x.d[b])), _mm256_cvtepi32_ps(l), acc[t]);
            } else {
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x.d[b])), _mm256_cvtepi32_ps(lane[t]), acc[t]);
                acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * x.d[b]), _mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, bs)), acc[t]);
            }
        }
    }
    for (int t = 0; t < nt; t++) out[t * ldo] = lanes_sum8(acc[t]);
}
VARIANT_DOTS(dots_q2_k, dots_q23_k, 0)
VARIANT_DOTS(dots_q3_k, dots_q23_k, 1)

#undef VARIANT_DOTS

#if defined(__AVX512BW__)
/* One q6_K row's int32 lanes for one block (before the halves are added),
 * the block's two 128-element halves side by side (half 0 low, half 1
 * high): w the block, yc[c] the token's 32 bytes of chunk c of each half;
 * *sc16 gets the block's 16 scales as int16. */
static inline __attribute__((always_inline)) void q6_k_lanes512_n(const uint8_t *w, const __m512i yc[][4], const int nt,
                                                                  __m256i *sc16, __m512i lane[]) {
    const __m512i low = _mm512_set1_epi8(0x0f), bits2 = _mm512_set1_epi8(3);
    *sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
    /* scales 0-7 in the two low 128-bit lanes, 8-15 in the two high ones */
    const __m512i scz = _mm512_castsi256_si512(*sc16);
    const __m512i sc4 = _mm512_shuffle_i64x2(scz, scz, 0x50);
    const __m512i a = _mm512_loadu_si512((const void *)w), c2 = _mm512_loadu_si512((const void *)(w + 64));
    const __m512i l0 = _mm512_shuffle_i64x2(a, c2, 0x44), l1 = _mm512_shuffle_i64x2(a, c2, 0xee);
    const __m512i hb = _mm512_loadu_si512((const void *)(w + 128));
    __m512i v[4];
    v[0] = _mm512_or_si512(_mm512_and_si512(l0, low), _mm512_slli_epi16(_mm512_and_si512(hb, bits2), 4));
    v[1] = _mm512_or_si512(_mm512_and_si512(l1, low),
                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 2), bits2), 4));
    v[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low),
                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4), bits2), 4));
    v[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low),
                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 6), bits2), 4));
    for (int t = 0; t < nt; t++) lane[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
        /* words 2c and 2c+1 of each half's scales, as words_broadcast gives them */
        const __m512i k = _mm512_inserti64x4(_mm512_set1_epi16((short)(0x0100 + 0x0202 * (2 * c))),
                                             _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1))), 1);
        const __m512i kk = _mm512_shuffle_i64x2(k, k, 0x88); /* lanes: 2c, 2c+1, 2c, 2c+1 */
        const __m512i s = _mm512_shuffle_epi8(sc4, kk);
        for (int t = 0; t < nt; t++) {
            const __m512i p = _mm512_maddubs_epi16(v[c], yc[t][c]); /* ≤ 2·63·127 */
            lane[t] = WORDS_DOT(lane[t], p, s);
        }
    }
}
/* The same for one token. */
static inline __attribute__((always_inline)) __m512i q6_k_lanes512(const uint8_t *w, const __m512i yc[4],
                                                                   __m256i *sc16) {
    __m512i lane;
    q6_k_lanes512_n(w, (const __m512i(*)[4])yc, 1, sc16, &lane);
    return lane;
}

/* The token's bytes of block y for q6_k_lanes512: chunk c of each half
 * side by side (quantize_token stored them in this order). */
static inline __attribute__((always_inline)) void q6_k_token512(const int8_t *y, __m512i yc[4]) {
    for (int c = 0; c < 4; c++) yc[c] = _mm512_load_si512((const void *)(y + 64 * c));
}

/* One q6_K row against nt ≤ 4 tokens with 512-bit integer work
 * (q6_k_lanes512_n), each block unpacked once for all the tokens. The
 * halves' int32 lanes are added at the end of each block: exactly the
 * 256-bit form's lanes, so the bits are the same. */
static inline __attribute__((always_inline)) void dot_q6_k_512(const uint8_t *w, const uint8_t *act, int64_t stride,
                                                               int64_t nb, const int nt, float *out, int64_t ldo) {
    __m256 acc[4];
    a8_tok x[4];
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = a8_at(act + t * stride, nb * 256, 1);
    }
    for (int64_t b = 0; b < nb; b++, w += 210) {
        __m512i yc[4][4], lane[4];
        for (int t = 0; t < nt; t++) q6_k_token512(x[t].q + 256 * b, yc[t]);
        __m256i sc16;
        q6_k_lanes512_n(w, yc, nt, &sc16, lane);
        const float d = f16_at(w + 208);
        for (int t = 0; t < nt; t++) {
            const __m256i lane8 =
                _mm256_add_epi32(_mm512_castsi512_si256(lane[t]), _mm512_extracti64x4_epi64(lane[t], 1));
            const __m256i off = _mm256_madd_epi16(sc16, _mm256_load_si256((const __m256i *)(x[t].bsum + 16 * b)));
            const __m256i l = _mm256_sub_epi32(lane8, _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t].d[b]), _mm256_cvtepi32_ps(l), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t * ldo] = lanes_sum8(acc[t]);
}
/* Two q6_K rows (w0 and w1, anywhere) against one token, for decoding, with the
 * per-block tail shared as in dot_q45_k_two512. out[0], out[1]. */
static inline __attribute__((always_inline)) void dot_q6_k_two512(const uint8_t *w0, const uint8_t *w1,
                                                                  const uint8_t *act, int64_t nb, float *out) {
    __m512 acc = _mm512_setzero_ps();
    const __m512i d_at = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const a8_tok x = a8_at(act, nb * 256, 1);
    for (int64_t b = 0; b < nb; b++, w0 += 210, w1 += 210) {
        __m512i yc[4];
        q6_k_token512(x.q + 256 * b, yc);
        const __m512i bsum = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)(x.bsum + 16 * b)));
        __m256i sc16[2];
        const __m512i lane[2] = {q6_k_lanes512(w0, yc, &sc16[0]), q6_k_lanes512(w1, yc, &sc16[1])};
        const __m512i both = _mm512_add_epi32(_mm512_shuffle_i64x2(lane[0], lane[1], 0x44),
                                              _mm512_shuffle_i64x2(lane[0], lane[1], 0xee));
        const __m512i off = _mm512_madd_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(sc16[0]), sc16[1], 1), bsum);
        const __m512i l = _mm512_sub_epi32(both, _mm512_slli_epi32(off, 5));
        const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(hl_le16(w0 + 208)), hl_le16(w1 + 208), 1);
        const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(h), _mm_set1_ps(x.d[b])));
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(d_at, d), _mm512_cvtepi32_ps(l), acc);
    }
    pair_lanes_sum(acc, out);
}
#endif

static inline __attribute__((always_inline)) void dots_q6_k(const uint8_t *w, const uint8_t *act, int64_t stride,
                                                            int64_t nb, const int nt, float *out, int64_t ldo) {
#if defined(__AVX512BW__)
    dot_q6_k_512(w, act, stride, nb, nt, out, ldo);
    return;
#endif
    __m256 acc[4];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f), bits2 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        /* scales 0-7 and 8-15 as int16, each in both halves */
        const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
        const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        __m256i lane[4];
        for (int t = 0; t < nt; t++) lane[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            __m256i v[4];
            v[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(hb, bits2), 4));
            v[1] = _mm256_or_si256(_mm256_and_si256(l1, low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), bits2), 4));
            v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), bits2), 4));
            v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), bits2), 4));
            for (int c = 0; c < 4; c++) {
                const __m256i s = nt == 1 ? words_broadcast(h ? sc_hi : sc_lo, 2 * c, 2 * c + 1)
                                          : _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * c + 1]),
                                                             _mm_set1_epi16(sc[8 * h + 2 * c]));
                for (int t = 0; t < nt; t++) {
                    const int8_t *y = (const int8_t *)(act + t * stride) + 256 * b + 128 * h + 32 * c;
                    const __m256i p = _mm256_maddubs_epi16(v[c], _mm256_load_si256((const __m256i *)y)); /* ≤ 2·63·127 */
                    lane[t] = WORDS_DOT256(lane[t], p, s);
                }
            }
        }
        const float d = f16_at(w + 208);
        for (int t = 0; t < nt; t++) {
            const a8_tok x = a8_at(act + t * stride, nb * 256, 1);
            const __m256i off = _mm256_madd_epi16(sc16, _mm256_load_si256((const __m256i *)(x.bsum + 16 * b)));
            const __m256i l = _mm256_sub_epi32(lane[t], _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d[b]), _mm256_cvtepi32_ps(l), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t * ldo] = lanes_sum8(acc[t]);
}

/* The K types take one row at a time (their unpacking already spans a
 * 256-element block): rdots_<type> runs the nr rows in turn. */
#define EACH_ROW(name, dots)                                                                                     \
    static inline __attribute__((always_inline)) void name(const uint8_t *w, int64_t rs, const int nr,           \
                                                           const uint8_t *act, int64_t stride, int64_t nb,        \
                                                           const int nt, float *out, int64_t ldo) {               \
        for (int r = 0; r < nr; r++) dots(w + r * rs, act, stride, nb, nt, out + r, ldo);                       \
    }
EACH_ROW(rdots_q2_k, dots_q2_k)
EACH_ROW(rdots_q3_k, dots_q3_k)
EACH_ROW(rdots_q4_k, dots_q4_k)
EACH_ROW(rdots_q5_k, dots_q5_k)
EACH_ROW(rdots_q6_k, dots_q6_k)
#if defined(__AVX512BW__)
/* Decoding two rows per call (A8_ROWS, a8_group_rows): rows w0 and w1,
 * into *o0 and *o1. */
#define A8_PAIRS 1
#define PAIR_DOTS(name, two512)                                                                                        \
    static inline __attribute__((always_inline)) void name(const uint8_t *w0, const uint8_t *w1, const uint8_t *act,   \
                                                           int64_t nb, float *o0, float *o1) {                         \
        float two[2];                                                                                                  \
        two512;                                                                                                        \
        *o0 = two[0];                                                                                                  \
        *o1 = two[1];                                                                                                  \
    }
PAIR_DOTS(pair_q4_k, dot_q45_k_two512(0, w0, w1, act, nb, two))
PAIR_DOTS(pair_q5_k, dot_q45_k_two512(1, w0, w1, act, nb, two))
PAIR_DOTS(pair_q6_k, dot_q6_k_two512(w0, w1, act, nb, two))
#undef PAIR_DOTS
#endif
#undef EACH_ROW
#endif /* HL_A8_SIMD */

typedef struct {
    float *out;
    int64_t ldo;
    const float *x;
    const hl_qweight *w;
    int64_t T, act_bytes;
    uint8_t *act;  /* (T, act_bytes) */
    int64_t ahead; /* decoding q4_K-q6_K: bytes ahead of each row asked for early (0: none) */
} a8job;

static void quantize_tokens(void *arg, int64_t t0, int64_t t1, int worker) {
    (void)worker;
    const a8job *j = arg;
    for (int64_t t = t0; t < t1; t++) quantize_token(j->w->type, j->x + t * j->w->cols, j->w->cols, j->act + t * j->act_bytes);
}

#ifndef HL_A8_SIMD
/* The scalar path: the same per-token functions, one row and token at a time. */
#define SCALAR_DOTS(name, dot)                                                                                 \
    static inline void name(const uint8_t *w, int64_t rs, const int nr, const uint8_t *act, int64_t stride,  \
                            int64_t nb, const int nt, float *out, int64_t ldo) {                            \
        for (int r = 0; r < nr; r++)                                                                        \
            for (int t = 0; t < nt; t++) out[t * ldo + r] = dot(w + r * rs, act + t * stride, nb);          \
    }
SCALAR_DOTS(rdots_q8_0, dot_q8_0)
SCALAR_DOTS(rdots_q4_0, dot_q4_0)
SCALAR_DOTS(rdots_q4_1, dot_q4_1)
SCALAR_DOTS(rdots_q5_0, dot_q5_0)
SCALAR_DOTS(rdots_q5_1, dot_q5_1)
SCALAR_DOTS(rdots_q2_k, dot_q2_k)
SCALAR_DOTS(rdots_q3_k, dot_q3_k)
SCALAR_DOTS(rdots_q4_k, dot_q4_k)
SCALAR_DOTS(rdots_q5_k, dot_q5_k)
SCALAR_DOTS(rdots_q6_k, dot_q6_k)
#undef SCALAR_DOTS
#endif

/* Rows [o0, o1) in panels of A8_PANEL rows; each panel against the tokens
 * four at a time, then the tokens left over one at a time, one row per
 * call. The K types' prompts come this way; the 32-element types come here
 * to decode, and for prompts only when the scratch is too small for a token
 * panel (a8_panel_rows takes them otherwise). A row's bytes are unpacked
 * once per four tokens, and both the panel and the four tokens stay in L1
 * (a panel of s110M's widest rows, q8_0 at K = 2048, is 35 KiB; four tokens
 * 9 KiB). Decoding streams the weights from memory, where two neighbouring
 * rows interleaved ran 40% slower than one (q8_0 at 131072 x 768, Zen 3;
 * q4_K and q6_K at 98304 x 768 on a Zen 5 about half as fast), hence one
 * row per call. The exception is q4_K, q5_K and q6_K at AVX-512
 * (A8_PAIRS): each thread runs the two halves of its rows side by side, two
 * sequential streams, so that the two-row kernels share the per-block work
 * (q4_K at 98304 x 768, 2 threads on a Zen 5: 44 GB/s median against 35
 * one row at a time; q6_K 47 against 40). Which rows share a call changes
 * no value: each row's sums are its own. */
#define A8_PANEL 16
/* Asks for the cache lines of [p, p + n) without waiting for them (never
 * faults, whatever the address). */
static inline void prefetch_span(const uint8_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 64) __builtin_prefetch(p + i, 0, 3);
}
/* Rows [p, pe) against nt tokens from act, one row per call. */
#define A8_PANEL_TOKENS(dots, nt)                                                                            \
    do {                                                                                                    \
        const uint8_t *a = j->act + t * j->act_bytes;                                                       \
        for (int64_t o = p; o < pe; o++)                                                                    \
            dots((const uint8_t *)w->data + o * rs, rs, 1, a, j->act_bytes, nb, nt, j->out + t * j->ldo + o, \
                 j->ldo);                                                                                   \
    } while (0)
#define A8_ROWS(name, dots, pairs, pair)                                                                               \
    static void name(const a8job *j, int64_t o0, int64_t o1, int64_t nb) {                                             \
        const hl_qweight *w = j->w;                                                                                    \
        const int64_t rs = (int64_t)w->row_bytes;                                                                      \
        if (pairs && j->T == 1) { /* decoding: the two halves of [o0, o1) side by side */                              \
            const uint8_t *wd = (const uint8_t *)w->data;                                                              \
            const int64_t h = (o1 - o0) / 2;                                                                           \
            for (int64_t o = o0; o < o0 + h; o++) {                                                                    \
                if (j->ahead > 0) {                                                                                    \
                    prefetch_span(wd + o * rs + j->ahead, rs);                                                         \
                    prefetch_span(wd + (o + h) * rs + j->ahead, rs);                                                   \
                }                                                                                                      \
                pair(wd + o * rs, wd + (o + h) * rs, j->act, nb, j->out + o, j->out + o + h);                          \
            }                                                                                                          \
            if ((o1 - o0) % 2) dots(wd + (o1 - 1) * rs, rs, 1, j->act, j->act_bytes, nb, 1, j->out + o1 - 1, j->ldo);  \
            return;                                                                                                    \
        }                                                                                                              \
        if (j->ahead > 0) { /* decoding (one token): each row's bytes asked for j->ahead early */                      \
            const uint8_t *wd = (const uint8_t *)w->data;                                                              \
            int64_t o = o0;                                                                                            \
            for (; o < o1; o++) {                                                                                      \
                prefetch_span(wd + o * rs + j->ahead, rs);                                                             \
                dots(wd + o * rs, rs, 1, j->act, j->act_bytes, nb, 1, j->out + o, j->ldo);                             \
            }                                                                                                          \
            return;                                                                                                    \
        }                                                                                                              \
        for (int64_t p = o0; p < o1; p += A8_PANEL) {                                                                  \
            const int64_t pe = o1 - p < A8_PANEL ? o1 : p + A8_PANEL;                                                  \
            int64_t t = 0;                                                                                             \
            for (; t + 4 <= j->T; t += 4) A8_PANEL_TOKENS(dots, 4);                                                    \
            for (; t < j->T; t++) A8_PANEL_TOKENS(dots, 1);                                                            \
        }                                                                                                              \
    }
#ifndef A8_PAIRS /* one row per call */
#define A8_PAIRS 0
#define pair_q4_k NO_PAIR
#define pair_q5_k NO_PAIR
#define pair_q6_k NO_PAIR
#endif
#define NO_PAIR(w0, w1, act, nb, o0, o1) ((void)0)
A8_ROWS(rows_q8_0, rdots_q8_0, 0, NO_PAIR)
A8_ROWS(rows_q4_0, rdots_q4_0, 0, NO_PAIR)
A8_ROWS(rows_q4_1, rdots_q4_1, 0, NO_PAIR)
A8_ROWS(rows_q5_0, rdots_q5_0, 0, NO_PAIR)
A8_ROWS(rows_q5_1, rdots_q5_1, 0, NO_PAIR)
A8_ROWS(rows_q2_k, rdots_q2_k, 0, NO_PAIR)
A8_ROWS(rows_q3_k, rdots_q3_k, 0, NO_PAIR)
A8_ROWS(rows_q4_k, rdots_q4_k, A8_PAIRS, pair_q4_k)
A8_ROWS(rows_q5_k, rdots_q5_k, A8_PAIRS, pair_q5_k)
A8_ROWS(rows_q6_k, rdots_q6_k, A8_PAIRS, pair_q6_k)
#undef NO_PAIR
#undef A8_ROWS
#undef A8_PANEL_TOKENS

static void a8_rows(void *arg, int64_t o0, int64_t o1, int worker) {
    (void)worker;
    const a8job *j = arg;
    const hl_qweight *w = j->w;
    switch (w->type) {
    case HL_TYPE_Q8_0: rows_q8_0(j, o0, o1, w->cols / 32); break;
    case HL_TYPE_Q4_0: rows_q4_0(j, o0, o1, w->cols / 32); break;
    case HL_TYPE_Q4_1: rows_q4_1(j, o0, o1, w->cols / 32); break;
    case HL_TYPE_Q5_0: rows_q5_0(j, o0, o1, w->cols / 32); break;
    case HL_TYPE_Q5_1: rows_q5_1(j, o0, o1, w->cols / 32); break;
    case HL_TYPE_Q2_K: rows_q2_k(j, o0, o1, w->cols / 256); break;
    case HL_TYPE_Q3_K: rows_q3_k(j, o0, o1, w->cols / 256); break;
    case HL_TYPE_Q4_K: rows_q4_k(j, o0, o1, w->cols / 256); break;
    case HL_TYPE_Q5_K: rows_q5_k(j, o0, o1, w->cols / 256); break;
    default: rows_q6_k(j, o0, o1, w->cols / 256); break;
    }
}

#ifdef HL_A8_SIMD
/* Prompts of the 32-element types in panels (q8_panel_dots,
 * small_panel_dots): j->act holds the panels,
 * j->act_bytes apart, and j->T tokens, the last panel padded with zero
 * tokens. */
static void a8_panel_tokens(void *arg, int64_t i0, int64_t i1, int worker) {
    (void)worker;
    const a8job *j = arg;
    const int64_t K = j->w->cols;
    for (int64_t i = i0; i < i1; i++)
        a8_panel_token(i < j->T ? j->x + i * K : NULL, K, j->act + i / PANEL_TOKENS * j->act_bytes,
                       (int)(i % PANEL_TOKENS));
}

/* Rows [o0, o1) in panels of A8_PANEL rows, each against every token panel,
 * four rows per call and the rows left over one at a time. */
static void a8_panel_rows(void *arg, int64_t o0, int64_t o1, int worker) {
    (void)worker;
    const a8job *j = arg;
    const int64_t rs = (int64_t)j->w->row_bytes, nb = j->w->cols / 32;
    const uint8_t *wd = (const uint8_t *)j->w->data;
    for (int64_t p = o0; p < o1; p += A8_PANEL) {
        const int64_t pe = o1 - p < A8_PANEL ? o1 : p + A8_PANEL;
        for (int64_t t = 0; t < j->T; t += PANEL_TOKENS) {
            const int nt = j->T - t < PANEL_TOKENS ? (int)(j->T - t) : PANEL_TOKENS;
            const uint8_t *pan = j->act + t / PANEL_TOKENS * j->act_bytes;
            float *o_t = j->out + t * j->ldo;
            int64_t o = p;
#define PANEL_CALLS(call)                                                                                    \
    do {                                                                                                    \
        for (; o + 4 <= pe; o += 4) call(4);                                                                \
        for (; o < pe; o++) call(1);                                                                        \
    } while (0)
#define Q8(nr) q8_panel_dots(wd + o * rs, rs, nr, pan, nb, o_t + o, j->ldo, nt)
#define SMALL(type, nr) small_panel_dots(type, wd + o * rs, rs, nr, pan, nb, o_t + o, j->ldo, nt)
#define Q4_0(nr) SMALL(HL_TYPE_Q4_0, nr)
#define Q4_1(nr) SMALL(HL_TYPE_Q4_1, nr)
#define Q5_0(nr) SMALL(HL_TYPE_Q5_0, nr)
#define Q5_1(nr) SMALL(HL_TYPE_Q5_1, nr)
            switch (j->w->type) {
            case HL_TYPE_Q8_0: PANEL_CALLS(Q8); break;
            case HL_TYPE_Q4_0: PANEL_CALLS(Q4_0); break;
            case HL_TYPE_Q4_1: PANEL_CALLS(Q4_1); break;
            case HL_TYPE_Q5_0: PANEL_CALLS(Q5_0); break;
            default: PANEL_CALLS(Q5_1); break;
            }
#undef Q8
#undef SMALL
#undef Q4_0
#undef Q4_1
#undef Q5_0
#undef Q5_1
#undef PANEL_CALLS
        }
    }
}

/* The prompt path of the 32-element types; 0 when the scratch cannot hold
 * one panel (the caller then runs the per-token path: the same bits). */
static int a8_panels(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                     void *scratch, int64_t scratch_bytes) {
    const int64_t K = w->cols, pb = a8_panel_bytes(K);
    uint8_t *act = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t panels = (scratch_bytes - (act - (uint8_t *)scratch)) / pb;
    if (panels < 1) return 0;
    const int64_t chunk = panels * PANEL_TOKENS; /* no output depends on it */
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        const int64_t n = T - t0 < chunk ? T - t0 : chunk;
        a8job j = {out + t0 * ldo, ldo, x + t0 * K, w, n, pb, act, 0};
        hl_pool_for(pool, (n + PANEL_TOKENS - 1) / PANEL_TOKENS * PANEL_TOKENS, 1, a8_panel_tokens, &j);
        hl_pool_for_balanced(pool, w->rows, A8_PANEL, a8_panel_rows, &j); /* rows are independent */
    }
    return 1;
}
#endif

/* Decoding: how far ahead of each row its bytes are asked for (0: not at
 * all). q4_K, q5_K and q6_K ask where this CPU's table row says so
 * (kernel_choice.c); no value depends on it. q2_K and q3_K, whose
 * unpacking rather than memory sets their pace, decoded 1-7% slower with it
 * on a Zen 4. */
static int64_t decode_ahead(uint32_t type) {
    const int streams = type == HL_TYPE_Q4_K || type == HL_TYPE_Q5_K || type == HL_TYPE_Q6_K;
    return streams ? hl_kernel_choice_active().decode_ahead : 0;
}

#ifdef HL_A8_VNNI_TWIN
/* This file compiled again with the level's VNNI (CMakeLists.txt): the same
 * function under the name HL_A8_VNNI_TWIN, taken when the CPU has it
 * (kernel_choice.c, hl_a8_vnni_active). Same lanes, same bits. */
void HL_A8_VNNI_TWIN(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                     void *scratch, int64_t scratch_bytes);
void HL_A8_VNNI_TWIN_GROUP(hl_pool *pool, const float *x, const hl_qpart *parts, int n, void *scratch,
                           int64_t scratch_bytes);
#endif

void hl_qmatmul_a8(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                   void *scratch, int64_t scratch_bytes) {
#ifdef HL_A8_VNNI_TWIN
    if (hl_a8_vnni_active()) {
        HL_A8_VNNI_TWIN(pool, out, ldo, x, w, T, scratch, scratch_bytes);
        return;
    }
#endif
    const int64_t K = w->cols, act_bytes = a8_token_bytes(w->type, K);
    uint8_t *act = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63); /* 64-byte aligned tokens */
    int64_t chunk = (scratch_bytes - (act - (uint8_t *)scratch)) / act_bytes; /* tokens quantized at once;
                                                                                 no output depends on it */
    if (chunk < 1) chunk = 1; /* the caller gives at least hl_qmatmul_a8_scratch_bytes(K) */
    if (T * K * w->rows < 32768) pool = NULL; /* as hl_matmul: not worth waking workers */
    const int64_t ahead = decode_ahead(w->type);
#ifdef HL_A8_SIMD
    if (hl_qmatmul_a8_form(w->type) == 0 && T > 1 && a8_panels(pool, out, ldo, x, w, T, scratch, scratch_bytes))
        return;
#endif
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        const int64_t n = T - t0 < chunk ? T - t0 : chunk;
        a8job j = {out + t0 * ldo, ldo, x + t0 * K, w, n, act_bytes, act, n == 1 ? ahead : 0};
        if (n > 1) hl_pool_for(pool, n, 1, quantize_tokens, &j);
        else quantize_tokens(&j, 0, 1, 0);
        /* prompts: compute-bound, so a free thread takes a slowed one's last rows (rows are
         * independent); decoding streams each thread's rows in order, with the shares
         * following the cores' speeds (taking rows from another thread cost 10-20% on
         * 768-row products, its cache-line transfers included) */
        if (n > 1) hl_pool_for_balanced(pool, w->rows, A8_PANEL, a8_rows, &j);
        else hl_pool_for_adaptive(pool, w->rows, A8_PANEL, a8_rows, &j);
    }
}

/* hl_qmatmul_a8_group: the parts' rows as one range [0, Σ rows), part i at
 * [first[i], first[i+1]). Each piece a thread gets runs a8_rows on that
 * part's own job, exactly as the part alone would. */
typedef struct {
    a8job job[HL_QGROUP_MAX];
    int64_t first[HL_QGROUP_MAX + 1];
    int64_t unit_first[HL_QGROUP_MAX + 1]; /* the parts' bytes, as one range: what the threads share */
    int n;
} a8group;

#if A8_PAIRS
/* [r0, r1) of a group whose parts there all have the pairable type `type`
 * (a constant at each call, so the kernel is inlined into the loop as in
 * A8_ROWS): the range's two halves side by side across the parts'
 * boundaries, as one weight's rows would run. */
static inline __attribute__((always_inline)) void group_pairs(const a8group *g, int64_t r0, int64_t r1,
                                                              const uint32_t type) {
    const int64_t h = (r1 - r0) / 2;
    int ia = 0, ib = 0;
    for (int64_t i = 0; i < h; i++) {
        const int64_t ra = r0 + i, rb = r0 + h + i;
        while (ra >= g->first[ia + 1]) ia++;
        while (rb >= g->first[ib + 1]) ib++;
        const a8job *ja = &g->job[ia], *jb = &g->job[ib];
        const int64_t oa = ra - g->first[ia], ob = rb - g->first[ib];
        const uint8_t *wa = (const uint8_t *)ja->w->data + oa * (int64_t)ja->w->row_bytes;
        const uint8_t *wb = (const uint8_t *)jb->w->data + ob * (int64_t)jb->w->row_bytes;
        if (ja->ahead > 0) {
            prefetch_span(wa + ja->ahead, (int64_t)ja->w->row_bytes);
            prefetch_span(wb + jb->ahead, (int64_t)jb->w->row_bytes);
        }
        const int64_t nb = ja->w->cols / 256;
        if (type == HL_TYPE_Q4_K) pair_q4_k(wa, wb, ja->act, nb, ja->out + oa, jb->out + ob);
        else if (type == HL_TYPE_Q5_K) pair_q5_k(wa, wb, ja->act, nb, ja->out + oa, jb->out + ob);
        else pair_q6_k(wa, wb, ja->act, nb, ja->out + oa, jb->out + ob);
    }
    if ((r1 - r0) % 2) { /* the last row alone */
        while (r1 - 1 >= g->first[ib + 1]) ib++;
        a8_rows((void *)&g->job[ib], r1 - 1 - g->first[ib], r1 - g->first[ib], 0);
    }
}
#endif

static void a8_group_rows(void *arg, int64_t r0, int64_t r1, int worker) {
    a8group *g = arg;
#if A8_PAIRS
    /* When every part in [r0, r1) has one type that decodes in pairs, its
     * rows run as one weight's would: two streams per thread, however many
     * parts it reads. */
    int same = 1, type = -1;
    for (int i = 0; i < g->n; i++) {
        if (g->first[i + 1] <= r0 || g->first[i] >= r1) continue;
        if (type < 0) type = (int)g->job[i].w->type;
        if ((int)g->job[i].w->type != type) same = 0;
    }
    if (same && (type == HL_TYPE_Q4_K || type == HL_TYPE_Q5_K || type == HL_TYPE_Q6_K)) {
        if (type == HL_TYPE_Q4_K) group_pairs(g, r0, r1, HL_TYPE_Q4_K);
        else if (type == HL_TYPE_Q5_K) group_pairs(g, r0, r1, HL_TYPE_Q5_K);
        else group_pairs(g, r0, r1, HL_TYPE_Q6_K);
        return;
    }
#endif
    for (int i = 0; i < g->n; i++) {
        const int64_t lo = r0 > g->first[i] ? r0 : g->first[i], hi = r1 < g->first[i + 1] ? r1 : g->first[i + 1];
        if (lo < hi) a8_rows(&g->job[i], lo - g->first[i], hi - g->first[i], worker);
    }
}

/* A thread's bytes [u0, u1) of the group, as its rows (hl_qgroup_row_at). */
static void a8_group_bytes(void *arg, int64_t u0, int64_t u1, int worker) {
    a8group *g = arg;
    const int64_t r0 = hl_qgroup_row_at(g->first, g->unit_first, g->n, u0, A8_PANEL);
    const int64_t r1 = hl_qgroup_row_at(g->first, g->unit_first, g->n, u1, A8_PANEL);
    if (r0 < r1) a8_group_rows(g, r0, r1, worker);
}

void hl_qmatmul_a8_group(hl_pool *pool, const float *x, const hl_qpart *parts, int n, void *scratch,
                         int64_t scratch_bytes) {
#ifdef HL_A8_VNNI_TWIN_GROUP
    if (hl_a8_vnni_active()) {
        HL_A8_VNNI_TWIN_GROUP(pool, x, parts, n, scratch, scratch_bytes);
        return;
    }
#endif
    if (n < 1) return;
    const int64_t K = parts[0].w->cols;
    uint8_t *const base = (uint8_t *)scratch, *act = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint8_t *slot[4] = {NULL, NULL, NULL, NULL}; /* by token_layout */
    int64_t used = act - base;
    int grouped = n <= HL_QGROUP_MAX;
    for (int i = 0; grouped && i < n; i++) {
        const uint32_t type = parts[i].w->type;
        const int key = token_layout(type);
        if (!hl_qmatmul_a8_supports(type) || parts[i].w->cols != K) grouped = 0;
        else if (!slot[key]) {
            const int64_t bytes = a8_token_bytes(type, K);
            if (used + bytes > scratch_bytes) grouped = 0;
            else {
                slot[key] = base + used;
                used += bytes;
            }
        }
    }
    if (!grouped) {
        for (int i = 0; i < n; i++)
            hl_qmatmul_a8(pool, parts[i].out, parts[i].w->rows, x, parts[i].w, 1, scratch, scratch_bytes);
        return;
    }
    a8group g;
    g.n = n;
    g.first[0] = g.unit_first[0] = 0;
    int done[4] = {0, 0, 0, 0};
    int k_key = -1; /* the first 256-element-form token quantized, if any */
    uint32_t k_type = 0;
    for (int i = 0; i < n; i++) {
        const hl_qweight *w = parts[i].w;
        const int key = token_layout(w->type);
        if (!done[key]) {
            if (hl_qmatmul_a8_form(w->type) == 0) quantize_token(w->type, x, K, slot[key]);
            else if (k_key >= 0) relayout_token(k_type, w->type, slot[k_key], K, slot[key]);
            else {
                quantize_token(w->type, x, K, slot[key]);
                k_key = key;
                k_type = w->type;
            }
        }
        done[key] = 1;
        const a8job j = {parts[i].out, w->rows, x, w, 1, a8_token_bytes(w->type, K), slot[key], decode_ahead(w->type)};
        g.job[i] = j;
        g.first[i + 1] = g.first[i] + w->rows;
        g.unit_first[i + 1] = g.unit_first[i] + w->rows * (int64_t)w->row_bytes;
    }
    if (K * g.first[n] < 32768) pool = NULL; /* as hl_qmatmul_a8 */
    /* Shared by bytes: split by rows, the thread given v (q6_K in the _M
     * mixes) read 31% more of s110M's q, k and v than the one given q and
     * k (q4_K), and the other waited for it. */
    hl_pool_for_adaptive(pool, g.unit_first[n], 1, a8_group_bytes, &g);
}
