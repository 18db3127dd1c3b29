/* block_simd.h: pieces of the block dequantizers that more than one kernel
 * needs, so that each makes the same values with the same roundings:
 * quant/quant_types.c writes them to memory, kernels/matmul_quant.c chains
 * them into a decode dot product without a tile.
 *
 * The AVX-512 forms make 16 elements at a time and exist only in files
 * compiled for that level. */
#ifndef HL_QUANT_BLOCK_SIMD_H
#define HL_QUANT_BLOCK_SIMD_H
#include <stdint.h>

/* The 6-bit scale and min of 32-element group j (0..7) of q4_K / q5_K's
 * 12 scale bytes: j < 4: low 6 bits of bytes j and j + 4; otherwise the
 * nibbles of byte j + 4 with the top 2 bits of bytes j - 4 and j on top. */
static inline void hl_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* 16 bytes, zero-extended to 16 lanes. */
static inline __m512i hl_u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

/* a·q - c per lane: a multiply and a subtract, each rounded (never fused). */
static inline __m512 hl_mul_sub16(float a, __m512i q, float c) {
    return _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(a), _mm512_cvtepi32_ps(q)), _mm512_set1_ps(c));
}

/* q8_0: 16 signed bytes times d. */
static inline __m512 hl_q8_0_16(const uint8_t *qs, float d) {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs))),
                         _mm512_set1_ps(d));
}

/* q6_K: 16 elements of one quarter: nibble `nib` (0 or 4) of lo[l], bits
 * hb..hb+1 of qh[l] on top, minus 32, times ds = d·sc (already rounded). */
static inline __m512 hl_q6_k16(const uint8_t *lo, const uint8_t *qh, int nib, int hb, float ds) {
    const __m128i cn = _mm_cvtsi32_si128(nib), ch = _mm_cvtsi32_si128(hb);
    const __m512i l = hl_u8x16(lo), h = hl_u8x16(qh);
    __m512i q = _mm512_or_si512(_mm512_and_si512(_mm512_srl_epi32(l, cn), _mm512_set1_epi32(0x0f)),
                                _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(h, ch), _mm512_set1_epi32(3)), 4));
    q = _mm512_sub_epi32(q, _mm512_set1_epi32(32));
    return _mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(q));
}
#endif
#endif
