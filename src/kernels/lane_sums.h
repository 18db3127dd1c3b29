/* lane_sums.h: the fixed addition trees that reduce SIMD accumulators to
 * scalars. Kernels that promise one summation order per element (hl_dot,
 * hl_matmul, hl_matmul_packed_nn) share them, and each vector form has a
 * scalar twin that adds the same pairs in the same order. */
#ifndef HL_KERNELS_LANE_SUMS_H
#define HL_KERNELS_LANE_SUMS_H

/* 8 lanes: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static inline float hl_hsum8_scalar(const float l[8]) {
    float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
    float e = a + c, f = b + d;
    return e + f;
}

/* 16 lanes: lane j and j+8 added first, then the 8-lane tree. */
static inline float hl_hsum16_scalar(const float l[16]) {
    float h[8];
    for (int j = 0; j < 8; j++) h[j] = l[j] + l[j + 8];
    return hl_hsum8_scalar(h);
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hl_hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                 /* (l0+l4, l1+l5, l2+l6, l3+l7) */
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s)); /* (e=s0+s2, f=s1+s3, ..) */
    __m128 u = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(u);
}

/* hl_hsum8 of 8 accumulators at once, lane r of the result = hl_hsum8(hr):
 * the same additions in the same tree (lanes i + i+4; then 0+2 and 1+3;
 * then their sum), with shuffles pairing up the operands. Named arguments
 * rather than an array, so that the compiler keeps them in registers. */
static inline __m256 hl_hsum8_x8(__m256 h0, __m256 h1, __m256 h2, __m256 h3, __m256 h4, __m256 h5, __m256 h6,
                                 __m256 h7) {
#define HL_S(a, b) /* [s(a) | s(b)], s(h)_i = h_i + h_i+4 */                                                           \
    _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31))
    const __m256 s0 = HL_S(h0, h1), s1 = HL_S(h2, h3), s2 = HL_S(h4, h5), s3 = HL_S(h6, h7);
#undef HL_S
#define HL_T(a, b) /* e = s0 + s2, f = s1 + s3: [e f e' f' | ...] */                                                   \
    _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)))
    const __m256 t0 = HL_T(s0, s1), t1 = HL_T(s2, s3);
#undef HL_T
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1))); /* rows 0 2 4 6 1 3 5 7 */
    return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
static inline float hl_hsum16(__m512 v) {
    return hl_hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* hl_hsum16 of 8 accumulators at once, lane r of the result = hl_hsum16(a[r]):
 * lanes j + j+8 first, then hl_hsum8_x8's tree. */
static inline __m256 hl_hsum16_x8(const __m512 a[8]) {
#define HL_H(r) _mm256_add_ps(_mm512_castps512_ps256(a[r]), _mm512_extractf32x8_ps(a[r], 1))
    return hl_hsum8_x8(HL_H(0), HL_H(1), HL_H(2), HL_H(3), HL_H(4), HL_H(5), HL_H(6), HL_H(7));
#undef HL_H
}

/* The first step of hl_hsum16 on two accumulators at once:
 * [h(a) | h(b)] with h(v)_j = v_j + v_j+8. */
static inline __m512 hl_hsum16_pair(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* hl_hsum16 of 16 accumulators, given as hl_hsum16_pair of rows (0, 1),
 * (2, 3), ... (14, 15): lane r = hl_hsum16(row r), by the same tree as
 * hl_hsum16_x8, each step on two rows' worth of 512-bit lanes (about 3
 * operations a row instead of 5). Named arguments rather than an array, so
 * that the compiler keeps them in registers. */
static inline __m512 hl_hsum16_x16(__m512 h0, __m512 h1, __m512 h2, __m512 h3, __m512 h4, __m512 h5, __m512 h6,
                                   __m512 h7) {
#define HL_S(a, b) /* four rows' s(h)_i = h_i + h_i+4, one 128-bit lane each */                                        \
    _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),                                                 \
                  _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)))
    const __m512 s0 = HL_S(h0, h1), s1 = HL_S(h2, h3), s2 = HL_S(h4, h5), s3 = HL_S(h6, h7);
#undef HL_S
#define HL_T(a, b) /* e = s0 + s2, f = s1 + s3: lane k holds [e f] of rows 8m+k and 8m+4+k */                          \
    _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)))
    const __m512 t0 = HL_T(s0, s1), t1 = HL_T(s2, s3);
#undef HL_T
    /* e + f: lane k holds rows k, 4+k, 8+k, 12+k */
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}
#endif
#endif
#endif
