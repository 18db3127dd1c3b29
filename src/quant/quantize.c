/* quantize.c: ggml's reference quantizers for the 32-element block types
 * (see quantize.h). Layouts as in quant_types.c; the float arithmetic is
 * written operation by operation in ggml's order (no fused multiply-add:
 * the build keeps -ffp-contract=off), scales rounded to f16 to nearest even.
 *
 * q8_0: d = max|x| / 127, q = round(x / d) (ties away from zero).
 * q4_0 / q5_0: d = x_m / -8 (/ -16), x_m the element of largest magnitude
 *   (the first such), q = min(15 (31), trunc(x / d + 8.5 (16.5))).
 * q4_1 / q5_1: d = (max - min) / 15 (/ 31), m = min,
 *   q = trunc((x - min) / d + 0.5), at most 15 for q4_1.
 * "x / d" is x · (1/d), with 1/d taken as 0 when d is 0. */
#include "quant/quantize.h"
#include "util/half.h"

#include <float.h>
#include <math.h>
#include <string.h>

static void put_f16(uint8_t *p, float v) {
    uint16_t h = hl_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The element of largest magnitude (the first one on ties), sign kept. */
static float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < HL_QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < HL_QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < HL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < HL_QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void q4_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[16 + j] * id;
        int q0 = (int)(x0 + 8.5f), q1 = (int)(x1 + 8.5f);
        if (q0 > 15) q0 = 15;
        if (q1 > 15) q1 = 15;
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q4_1(const float *x, uint8_t *b) {
    float mn, mx;
    min_max(x, &mn, &mx);
    const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    put_f16(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - mn) * id, x1 = (x[16 + j] - mn) * id;
        int q0 = (int)(x0 + 0.5f), q1 = (int)(x1 + 0.5f);
        if (q0 > 15) q0 = 15;
        if (q1 > 15) q1 = 15;
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q5_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[16 + j] * id;
        int q0 = (int)(x0 + 16.5f), q1 = (int)(x1 + 16.5f);
        if (q0 > 31) q0 = 31;
        if (q1 > 31) q1 = 31;
        b[6 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    put_u32(b + 2, qh);
}

static void q5_1(const float *x, uint8_t *b) {
    float mn, mx;
    min_max(x, &mn, &mx);
    const float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    put_f16(b + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - mn) * id, x1 = (x[16 + j] - mn) * id;
        int q0 = (int)(x0 + 0.5f) & 0xff, q1 = (int)(x1 + 0.5f) & 0xff; /* ggml stores the uint8 as is */
        b[8 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    put_u32(b + 4, qh);
}

int hl_quantize_supported(uint32_t type) {
    switch (type) {
    case HL_TYPE_Q8_0: case HL_TYPE_Q4_0: case HL_TYPE_Q4_1: case HL_TYPE_Q5_0: case HL_TYPE_Q5_1: return 1;
    default: return 0;
    }
}

void hl_quantize_blocks(uint32_t type, const float *x, void *dst, int64_t n_blocks) {
    void (*fn)(const float *, uint8_t *) = NULL;
    switch (type) {
    case HL_TYPE_Q8_0: fn = q8_0; break;
    case HL_TYPE_Q4_0: fn = q4_0; break;
    case HL_TYPE_Q4_1: fn = q4_1; break;
    case HL_TYPE_Q5_0: fn = q5_0; break;
    case HL_TYPE_Q5_1: fn = q5_1; break;
    default: return;
    }
    const hl_type_traits *tr = hl_type_traits_of(type);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n_blocks; i++) fn(x + i * HL_QK, b + i * tr->block_bytes);
}
