/* quant_types.c: the type table and the reference dequantizer of every block
 * type (see quant_types.h). Each block layout is written out beside its
 * dequantizer, byte offsets included; blocks are read with byte loads, so a
 * block may sit at any address.
 *
 * The float arithmetic is ggml's reference order, one rounding per written
 * operation: the build keeps -ffp-contract=off (ISO C11), so a*b - c stays a
 * multiply then a subtract. */
#include "quant/quant_types.h"
#include "quant/block_simd.h"

/* ggml's reference arithmetic rounds every multiply and add on its own. GCC
 * in ISO C mode never fuses them; clang fuses a*b+c within an expression by
 * default (-ffp-contract=on), which changes the chosen scales, so say so. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "util/half.h"
#include "util/le_bytes.h"

#include <math.h>
#include <string.h>

/* A portable build compiles this file once for the type table (the parts
 * under !HL_ISA_SUFFIX) and once per SIMD level for the dequantizers (the
 * part under HL_ISA_SUFFIX, hl_dequantize renamed per level by isa_names.h);
 * a native build (no HL_ISA_DISPATCH) compiles all of it once. */
#ifndef HL_ISA_SUFFIX /* the type table: once */
static const hl_type_traits traits_f32 = {"f32", 1, 4, 0};
static const hl_type_traits traits_f16 = {"f16", 1, 2, 0};
static const hl_type_traits traits_bf16 = {"bf16", 1, 2, 0};
static const hl_type_traits traits_q4_0 = {"q4_0", HL_QK, 18, 1};
static const hl_type_traits traits_q4_1 = {"q4_1", HL_QK, 20, 1};
static const hl_type_traits traits_q5_0 = {"q5_0", HL_QK, 22, 1};
static const hl_type_traits traits_q5_1 = {"q5_1", HL_QK, 24, 1};
static const hl_type_traits traits_q8_0 = {"q8_0", HL_QK, 34, 1};
static const hl_type_traits traits_q2_k = {"q2_K", HL_QK_K, 84, 1};
static const hl_type_traits traits_q3_k = {"q3_K", HL_QK_K, 110, 1};
static const hl_type_traits traits_q4_k = {"q4_K", HL_QK_K, 144, 1};
static const hl_type_traits traits_q5_k = {"q5_K", HL_QK_K, 176, 1};
static const hl_type_traits traits_q6_k = {"q6_K", HL_QK_K, 210, 1};

const hl_type_traits *hl_type_traits_of(uint32_t type) {
    switch (type) {
    case HL_TYPE_F32: return &traits_f32;
    case HL_TYPE_F16: return &traits_f16;
    case HL_TYPE_BF16: return &traits_bf16;
    case HL_TYPE_Q4_0: return &traits_q4_0;
    case HL_TYPE_Q4_1: return &traits_q4_1;
    case HL_TYPE_Q5_0: return &traits_q5_0;
    case HL_TYPE_Q5_1: return &traits_q5_1;
    case HL_TYPE_Q8_0: return &traits_q8_0;
    case HL_TYPE_Q2_K: return &traits_q2_k;
    case HL_TYPE_Q3_K: return &traits_q3_k;
    case HL_TYPE_Q4_K: return &traits_q4_k;
    case HL_TYPE_Q5_K: return &traits_q5_k;
    case HL_TYPE_Q6_K: return &traits_q6_k;
    default: return NULL;
    }
}

const char *hl_ggml_type_name(uint32_t t) {
    static const char *names[] = {
        "f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0", "q8_1",
        "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs",
        "iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64",
        "iq1_m", "bf16", "q4_0_4_4", "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0",
        "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4"};
    if (t < sizeof names / sizeof names[0]) return names[t];
    return "unknown";
}

int hl_type_row_bytes(uint32_t type, int64_t n, uint64_t *out) {
    const hl_type_traits *tr = hl_type_traits_of(type);
    if (!tr || n <= 0 || n % tr->block_elems) return 0;
    uint64_t blocks = (uint64_t)(n / tr->block_elems);
    return !__builtin_mul_overflow(blocks, (uint64_t)tr->block_bytes, out);
}
#endif /* !HL_ISA_SUFFIX */
#if !defined(HL_ISA_DISPATCH) || defined(HL_ISA_SUFFIX) /* the dequantizers: once per level */

#if defined(__F16C__)
#include <immintrin.h>
/* The hardware conversion: exact for every finite f16 (subnormals too), as
 * the portable one is; it only quiets a signalling NaN, and a non-finite
 * scale never reaches a dequantizer (the model loader refuses it). */
static float f16_at(const uint8_t *p) { return _cvtsh_ss(hl_le16(p)); }
#else
static float f16_at(const uint8_t *p) { return hl_f16_to_f32(hl_le16(p)); }
#endif

/* AVX-512 builds dequantize 16 elements per step with the same integer steps
 * and the same float operations, one rounding each (multiply, then add or
 * subtract: never fused), so both forms give identical values. */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline __m512i u8x16(const uint8_t *p) { return hl_u8x16(p); }
static inline __m512i lo4(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi32(0x0f)); }
static inline __m512i hi4(__m512i v) { return _mm512_srli_epi32(v, 4); }
static inline __m512 to_ps(__m512i v) { return _mm512_cvtepi32_ps(v); }
/* y[0..16) = a·q - c */
static inline void store_mul_sub(float *y, float a, __m512i q, float c) { _mm512_storeu_ps(y, hl_mul_sub16(a, q, c)); }
#elif defined(__AVX2__)
/* AVX2 builds: 8 elements per step, for the types the compiler does not vectorise by itself. */
#include <immintrin.h>
static inline __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline __m256i lo4_8(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi32(0x0f)); }
static inline __m256i hi4_8(__m256i v) { return _mm256_srli_epi32(v, 4); }
/* bit (j0 + lane) of qh, moved to bit 4 */
static inline __m256i qh_bits8(uint32_t qh, int j0) {
    const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(j0));
    return _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)qh), idx), _mm256_set1_epi32(1)), 4);
}
#endif

/* ---- 32-element types ---- */

/* q4_0, 18 bytes: f16 d @0; u8 qs[16] @2. Element j < 16 is the low nibble of
 * qs[j], element j + 16 its high nibble; y = (q - 8)·d. */
static void deq_q4_0(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b);
    const uint8_t *qs = b + 2;
#if defined(__AVX512F__)
    const __m512i v = u8x16(qs), eight = _mm512_set1_epi32(8);
    _mm512_storeu_ps(y, _mm512_mul_ps(to_ps(_mm512_sub_epi32(lo4(v), eight)), _mm512_set1_ps(d)));
    _mm512_storeu_ps(y + 16, _mm512_mul_ps(to_ps(_mm512_sub_epi32(hi4(v), eight)), _mm512_set1_ps(d)));
#elif defined(__AVX2__)
    const __m256i eight = _mm256_set1_epi32(8);
    const __m256 dv = _mm256_set1_ps(d);
    for (int h = 0; h < 2; h++) {
        const __m256i v = u8x8(qs + 8 * h);
        _mm256_storeu_ps(y + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(lo4_8(v), eight)), dv));
        _mm256_storeu_ps(y + 16 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(hi4_8(v), eight)), dv));
    }
#else
    for (int j = 0; j < 16; j++) y[j] = (float)((qs[j] & 0x0f) - 8) * d;
    for (int j = 0; j < 16; j++) y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
#endif
}

/* q4_1, 20 bytes: f16 d @0; f16 m @2; u8 qs[16] @4. y = q·d + m. */
static void deq_q4_1(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
#if defined(__AVX512F__)
    const __m512i v = u8x16(qs);
    _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(to_ps(lo4(v)), _mm512_set1_ps(d)), _mm512_set1_ps(m)));
    _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(to_ps(hi4(v)), _mm512_set1_ps(d)), _mm512_set1_ps(m)));
#elif defined(__AVX2__)
    const __m256 dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    for (int h = 0; h < 2; h++) {
        const __m256i v = u8x8(qs + 8 * h);
        _mm256_storeu_ps(y + 8 * h, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(lo4_8(v)), dv), mv));
        _mm256_storeu_ps(y + 16 + 8 * h, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hi4_8(v)), dv), mv));
    }
#else
    for (int j = 0; j < 16; j++) y[j] = (float)(qs[j] & 0x0f) * d + m;
    for (int j = 0; j < 16; j++) y[j + 16] = (float)(qs[j] >> 4) * d + m;
#endif
}

/* q5_0, 22 bytes: f16 d @0; u32 qh @2 (bit j: the fifth bit of element j);
 * u8 qs[16] @6 (nibbles as q4_0). y = (q - 16)·d. */
static void deq_q5_0(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b);
    const uint32_t qh = hl_le32(b + 2);
    const uint8_t *qs = b + 6;
#if defined(__AVX512F__)
    const __m512i v = u8x16(qs), hv = _mm512_set1_epi32((int)qh), one = _mm512_set1_epi32(1);
    const __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(hv, idx), one), 4);
    const __m512i h1 = _mm512_slli_epi32(
        _mm512_and_si512(_mm512_srlv_epi32(hv, _mm512_add_epi32(idx, _mm512_set1_epi32(16))), one), 4);
    const __m512i sixteen = _mm512_set1_epi32(16);
    _mm512_storeu_ps(y, _mm512_mul_ps(to_ps(_mm512_sub_epi32(_mm512_or_si512(lo4(v), h0), sixteen)), _mm512_set1_ps(d)));
    _mm512_storeu_ps(y + 16,
                     _mm512_mul_ps(to_ps(_mm512_sub_epi32(_mm512_or_si512(hi4(v), h1), sixteen)), _mm512_set1_ps(d)));
#elif defined(__AVX2__)
    const __m256i sixteen = _mm256_set1_epi32(16);
    const __m256 dv = _mm256_set1_ps(d);
    for (int h = 0; h < 2; h++) {
        const __m256i v = u8x8(qs + 8 * h);
        const __m256i q0 = _mm256_sub_epi32(_mm256_or_si256(lo4_8(v), qh_bits8(qh, 8 * h)), sixteen);
        const __m256i q1 = _mm256_sub_epi32(_mm256_or_si256(hi4_8(v), qh_bits8(qh, 16 + 8 * h)), sixteen);
        _mm256_storeu_ps(y + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(q0), dv));
        _mm256_storeu_ps(y + 16 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(q1), dv));
    }
#else
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)(((qs[j] & 0x0f) | h0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
#endif
}

/* q5_1, 24 bytes: f16 d @0; f16 m @2; u32 qh @4; u8 qs[16] @8. y = q·d + m. */
static void deq_q5_1(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint32_t qh = hl_le32(b + 4);
    const uint8_t *qs = b + 8;
#if defined(__AVX512F__)
    const __m512i v = u8x16(qs), hv = _mm512_set1_epi32((int)qh), one = _mm512_set1_epi32(1);
    const __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(hv, idx), one), 4);
    const __m512i h1 = _mm512_slli_epi32(
        _mm512_and_si512(_mm512_srlv_epi32(hv, _mm512_add_epi32(idx, _mm512_set1_epi32(16))), one), 4);
    _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(to_ps(_mm512_or_si512(lo4(v), h0)), _mm512_set1_ps(d)),
                                      _mm512_set1_ps(m)));
    _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(to_ps(_mm512_or_si512(hi4(v), h1)), _mm512_set1_ps(d)),
                                           _mm512_set1_ps(m)));
#elif defined(__AVX2__)
    const __m256 dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    for (int h = 0; h < 2; h++) {
        const __m256i v = u8x8(qs + 8 * h);
        const __m256i q0 = _mm256_or_si256(lo4_8(v), qh_bits8(qh, 8 * h));
        const __m256i q1 = _mm256_or_si256(hi4_8(v), qh_bits8(qh, 16 + 8 * h));
        _mm256_storeu_ps(y + 8 * h, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q0), dv), mv));
        _mm256_storeu_ps(y + 16 + 8 * h, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q1), dv), mv));
    }
#else
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)((qs[j] & 0x0f) | h0) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | h1) * d + m;
    }
#endif
}

/* q8_0, 34 bytes: f16 d @0; i8 qs[32] @2. y = q·d. */
static void deq_q8_0(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b);
#if defined(__AVX512F__)
    for (int h = 0; h < 2; h++) _mm512_storeu_ps(y + 16 * h, hl_q8_0_16(b + 2 + 16 * h, d));
#else
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
#endif
}

/* ---- K types: super-blocks of 256 ---- */

/* q2_K, 84 bytes: u8 scales[16] @0 (low nibble: scale, high: min, per 16
 * elements); u8 qs[64] @16 (2-bit values); f16 d @80; f16 dmin @82.
 * Each half of 128 elements uses 32 bytes of qs: element 32·j' + l of the
 * half (j' = 0..3 the bit pair) is bits 2j'..2j'+1 of qs[l]; the 16-element
 * groups take scales in order. y = d·sc·q - dmin·mn. */
static void deq_q2_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *scales = b, *q = b + 16;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    int is = 0;
    for (int half = 0; half < 2; half++) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; part++) {
                const uint8_t sc = scales[is++];
                const float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
                const uint8_t *qq = q + 16 * part;
#if defined(__AVX512F__)
                store_mul_sub(y, dl, _mm512_and_si512(_mm512_srl_epi32(u8x16(qq), _mm_cvtsi32_si128(shift)),
                                                      _mm512_set1_epi32(3)), ml);
#elif defined(__AVX2__)
                for (int h = 0; h < 2; h++) {
                    const __m256i v = _mm256_and_si256(_mm256_srl_epi32(u8x8(qq + 8 * h), _mm_cvtsi32_si128(shift)),
                                                       _mm256_set1_epi32(3));
                    _mm256_storeu_ps(y + 8 * h, _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(dl), _mm256_cvtepi32_ps(v)),
                                                              _mm256_set1_ps(ml)));
                }
#else
                for (int l = 0; l < 16; l++) y[l] = dl * (float)((qq[l] >> shift) & 3) - ml;
#endif
                y += 16;
            }
        }
        q += 32;
    }
}

/* q3_K, 110 bytes: u8 hmask[32] @0 (the high bit, inverted: set means +0,
 * clear means -4); u8 qs[64] @32 (2-bit low parts, as q2_K); u8 scales[12]
 * @96 (16 signed 6-bit scales, offset by 32: the low 4 bits of scale i are
 * nibble i of bytes 0..7 (low nibbles first for i < 8), the high 2 bits are
 * bits 2(i/4 % 4).. of byte 8 + i % 4); f16 d @108. y = d·(sc - 32)·q. */
static void deq_q3_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *hm = b, *q = b + 32, *s = b + 96;
    const float d_all = f16_at(b + 108);
    int8_t sc[16];
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
        int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        sc[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
    int is = 0;
    uint8_t m = 1;
    for (int half = 0; half < 2; half++) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; part++) {
                const float dl = d_all * (float)sc[is++];
                const uint8_t *qq = q + 16 * part, *hh = hm + 16 * part;
#if defined(__AVX512F__)
                const __m512i lo = _mm512_and_si512(_mm512_srl_epi32(u8x16(qq), _mm_cvtsi32_si128(shift)),
                                                    _mm512_set1_epi32(3));
                const __mmask16 set = _mm512_test_epi32_mask(u8x16(hh), _mm512_set1_epi32(m));
                const __m512i v = _mm512_sub_epi32(lo, _mm512_maskz_mov_epi32((__mmask16)~set, _mm512_set1_epi32(4)));
                _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_set1_ps(dl), to_ps(v)));
#elif defined(__AVX2__)
                for (int h = 0; h < 2; h++) {
                    const __m256i lo = _mm256_and_si256(_mm256_srl_epi32(u8x8(qq + 8 * h), _mm_cvtsi32_si128(shift)),
                                                        _mm256_set1_epi32(3));
                    const __m256i clear = _mm256_cmpeq_epi32(_mm256_and_si256(u8x8(hh + 8 * h), _mm256_set1_epi32(m)),
                                                             _mm256_setzero_si256());
                    const __m256i v = _mm256_sub_epi32(lo, _mm256_and_si256(clear, _mm256_set1_epi32(4)));
                    _mm256_storeu_ps(y + 8 * h, _mm256_mul_ps(_mm256_set1_ps(dl), _mm256_cvtepi32_ps(v)));
                }
#else
                for (int l = 0; l < 16; l++) y[l] = dl * (float)(((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4));
#endif
                y += 16;
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}


/* q4_K, 144 bytes: f16 d @0; f16 dmin @2; u8 scales[12] @4; u8 qs[128] @16.
 * Each 64 elements use 32 bytes of qs: the low nibbles (group 2i), then the
 * high nibbles (group 2i + 1). y = d·sc·q - dmin·mn. */
static void deq_q4_k(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int g = 0; g < 8; g += 2) {
        uint8_t sc, mn;
        hl_k4_scale_min(g, scales, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        hl_k4_scale_min(g + 1, scales, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
#if defined(__AVX512F__)
        const __m512i v0 = u8x16(q), v1 = u8x16(q + 16);
        store_mul_sub(y, d1, lo4(v0), m1);
        store_mul_sub(y + 16, d1, lo4(v1), m1);
        store_mul_sub(y + 32, d2, hi4(v0), m2);
        store_mul_sub(y + 48, d2, hi4(v1), m2);
        y += 64;
#else
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
#endif
        q += 32;
    }
}

/* q5_K, 176 bytes: f16 d @0; f16 dmin @2; u8 scales[12] @4; u8 qh[32] @16
 * (bit 2i of qh[l]: the fifth bit of element l of group 2i, bit 2i + 1 of
 * group 2i + 1); u8 qs[128] @48 (as q4_K). y = d·sc·q - dmin·mn. */
static void deq_q5_k(const uint8_t *restrict b, float *restrict y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int g = 0; g < 8; g += 2) {
        uint8_t sc, mn;
        hl_k4_scale_min(g, scales, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        hl_k4_scale_min(g + 1, scales, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
#if defined(__AVX512F__)
        const int s1 = g, s2 = g + 1; /* u1 = 1 << g, u2 = 1 << (g + 1) */
        for (int h = 0; h < 2; h++) {
            const __m512i v = u8x16(ql + 16 * h), hb = u8x16(qh + 16 * h), one = _mm512_set1_epi32(1);
            const __m512i b1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(hb, _mm_cvtsi32_si128(s1)), one), 4);
            const __m512i b2 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(hb, _mm_cvtsi32_si128(s2)), one), 4);
            store_mul_sub(y + 16 * h, d1, _mm512_add_epi32(lo4(v), b1), m1);
            store_mul_sub(y + 32 + 16 * h, d2, _mm512_add_epi32(hi4(v), b2), m2);
        }
        y += 64;
#else
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
#endif
        ql += 32;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

/* q6_K, 210 bytes: u8 ql[128] @0 (low 4 bits); u8 qh[64] @128 (high 2
 * bits); i8 scales[16] @192 (per 16 elements); f16 d @208. Each half of 128
 * elements uses 64 bytes of ql and 32 of qh: element l + 32i (i = 0..3,
 * l < 32) is the low (i even) or high (i odd) nibble of ql[l + 32(i & 1)]
 * with bits 2i..2i+1 of qh[l] on top. y = d·sc·(q - 32), multiplied left
 * to right. */
/* 32 elements of a q6_K half: nibble nib of lo[l], bits hb of qh[l], groups
 * of 16 scaled by ds0 and ds1. The AVX-512 form does the same integer steps
 * and the same one multiply per element, so the values are identical. */
#if defined(__AVX512F__)
static inline void q6_16(const uint8_t *lo, const uint8_t *qh, int nib, int hb, float ds, float *y) {
    _mm512_storeu_ps(y, hl_q6_k16(lo, qh, nib, hb, ds));
}
static inline void q6_quarter(const uint8_t *restrict lo, const uint8_t *restrict qh, int nib, int hb, float ds0,
                              float ds1, float *restrict y) {
    q6_16(lo, qh, nib, hb, ds0, y);
    q6_16(lo + 16, qh + 16, nib, hb, ds1, y + 16);
}
#else
static inline void q6_quarter(const uint8_t *restrict lo, const uint8_t *restrict qh, int nib, int hb, float ds0,
                              float ds1, float *restrict y) {
    for (int l = 0; l < 32; l++)
        y[l] = (l < 16 ? ds0 : ds1) * (float)((((lo[l] >> nib) & 0x0f) | (((qh[l] >> hb) & 3) << 4)) - 32);
}
#endif

static void deq_q6_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = f16_at(b + 208);
    for (int half = 0; half < 2; half++) {
        /* quarter i of the half: nibble (i >> 1) of ql[l + 32(i & 1)], bits 2i of
         * qh[l]; its two 16-element groups use scales 2i and 2i + 1 of the half.
         * ggml's d·sc·q multiplies left to right: (d·sc)·q. */
        float ds[8];
        for (int k = 0; k < 8; k++) ds[k] = d * (float)sc[k];
        q6_quarter(ql, qh, 0, 0, ds[0], ds[1], y);
        q6_quarter(ql + 32, qh, 0, 2, ds[2], ds[3], y + 32);
        q6_quarter(ql, qh, 4, 4, ds[4], ds[5], y + 64);
        q6_quarter(ql + 32, qh, 4, 6, ds[6], ds[7], y + 96);
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* One loop per type over the blocks, so each block's code is inlined and
 * vectorised. */
#define DEQ_LOOP(fn, bytes, elems)                                              \
    static void fn##_blocks(const uint8_t *p, float *y, int64_t n) {           \
        for (int64_t i = 0; i < n; i++) fn(p + i * (bytes), y + i * (elems));  \
    }
DEQ_LOOP(deq_q4_0, 18, HL_QK)
DEQ_LOOP(deq_q4_1, 20, HL_QK)
DEQ_LOOP(deq_q5_0, 22, HL_QK)
DEQ_LOOP(deq_q5_1, 24, HL_QK)
DEQ_LOOP(deq_q8_0, 34, HL_QK)
DEQ_LOOP(deq_q2_k, 84, HL_QK_K)
DEQ_LOOP(deq_q3_k, 110, HL_QK_K)
DEQ_LOOP(deq_q4_k, 144, HL_QK_K)
DEQ_LOOP(deq_q5_k, 176, HL_QK_K)
DEQ_LOOP(deq_q6_k, 210, HL_QK_K)
#undef DEQ_LOOP

void hl_dequantize(uint32_t type, const void *src, float *dst, int64_t n_blocks) {
    const uint8_t *p = src;
    switch (type) {
    case HL_TYPE_F32: memcpy(dst, p, (size_t)n_blocks * 4); return;
    case HL_TYPE_F16:
        for (int64_t i = 0; i < n_blocks; i++) dst[i] = f16_at(p + 2 * i);
        return;
    case HL_TYPE_BF16:
        for (int64_t i = 0; i < n_blocks; i++) dst[i] = hl_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    case HL_TYPE_Q4_0: deq_q4_0_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q4_1: deq_q4_1_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q5_0: deq_q5_0_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q5_1: deq_q5_1_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q8_0: deq_q8_0_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q2_K: deq_q2_k_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q3_K: deq_q3_k_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q4_K: deq_q4_k_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q5_K: deq_q5_k_blocks(p, dst, n_blocks); return;
    case HL_TYPE_Q6_K: deq_q6_k_blocks(p, dst, n_blocks); return;
    default: return;
    }
}

#endif /* dequantizers */

#ifndef HL_ISA_SUFFIX /* scale checks and row views: once */
/* Byte offsets of a block's f16 scale fields (-1: none). */
static void scale_offsets(uint32_t type, int *a, int *b) {
    *a = -1;
    *b = -1;
    switch (type) {
    case HL_TYPE_Q4_0: case HL_TYPE_Q5_0: case HL_TYPE_Q8_0: *a = 0; break;
    case HL_TYPE_Q4_1: case HL_TYPE_Q5_1: case HL_TYPE_Q4_K: case HL_TYPE_Q5_K: *a = 0; *b = 2; break;
    case HL_TYPE_Q2_K: *a = 80; *b = 82; break;
    case HL_TYPE_Q3_K: *a = 108; break;
    case HL_TYPE_Q6_K: *a = 208; break;
    default: break;
    }
}

static int f16_finite(const uint8_t *p) { return ((p[1] >> 2) & 0x1f) != 0x1f; } /* exponent not all ones */

int64_t hl_quant_find_bad_scale(uint32_t type, const void *src, int64_t n_blocks) {
    const hl_type_traits *tr = hl_type_traits_of(type);
    int a, b;
    scale_offsets(type, &a, &b);
    if (!tr || a < 0) return -1;
    const uint8_t *p = src;
    for (int64_t i = 0; i < n_blocks; i++, p += tr->block_bytes)
        if (!f16_finite(p + a) || (b >= 0 && !f16_finite(p + b))) return i;
    return -1;
}

#endif /* !HL_ISA_SUFFIX */
