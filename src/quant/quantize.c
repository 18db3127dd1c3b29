/* quantize.c: ggml's reference quantizers for the 32-element block types
 * and the K types (see quantize.h). Layouts as in quant_types.c; the float arithmetic is
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

/* ggml's reference arithmetic rounds every multiply and add on its own. GCC
 * in ISO C mode never fuses them; clang fuses a*b+c within an expression by
 * default (-ffp-contract=on), which changes the chosen scales, so say so. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
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

/* ---- K types (super-blocks of 256) ----
 *
 * Each super-block is cut into groups (16 or 32 elements); every group gets
 * a scale (and a min) fitted by a small search, then the group scales are
 * themselves quantized to 4, 6 or 8 bits against the super-block's f16 d
 * (and dmin), and finally every element is re-quantized against the scale it
 * will really be decoded with. The searches below are ggml's: the same
 * candidates, weights, sums in the same order and the same tie rules. */

/* Round to nearest, ties to even, as an int (|v| < 2^22). */
static int nearest(float v) { return (int)rintf(v); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

#define GROUP_EPS 1e-15f /* a group whose largest magnitude is below this is all zero */

/* Symmetric levels -nmax..nmax-1 for n values, minimising Σ x²·(x - s·l)²:
 * the scale from -nmax / x_m, then 18 nearby scales (nmax ± 0.1·k); returns
 * the scale, L[i] = l + nmax. (q6_K: n 16, nmax 32.) */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = (float)-nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric levels -nmax..nmax-1 improved one element at a time (up to 5
 * passes) while Σ x²·x·l / sqrt(Σ x²·l²) grows; returns the least-squares
 * scale, L[i] = l + nmax. (q3_K: n 16, nmax 4.) */
static float fit_symmetric_greedy(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = (float)-nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int nl = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * (float)nl;
                    sl2 += w * (float)nl * (float)nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* Levels 0..nmax with an offset, minimising Σ w·err (err = |e| when mad,
 * else e²): the min-max fit, then nstep + 1 scales (nmax + rmin + rdelta·k)
 * each with its least-squares scale and min (a positive min is clamped to 0).
 * Returns the scale; *neg_min = -min (≥ 0). (q2_K, q4_K, q5_K.) */
static float fit_offset(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *Laux,
                        float rmin, float rdelta, int nstep, int mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1.0f / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - min)), 0, nmax);
        float e = scale * (float)L[i] + min - x[i];
        e = mad ? fabsf(e) : e * e;
        best += w[i] * e;
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float s = (sum_w * sum_xl - sum_x * sum_l) / D, m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (m > 0) {
                m = 0;
                s = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float e = s * (float)Laux[i] + m - x[i];
                e = mad ? fabsf(e) : e * e;
                err += w[i] * e;
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = s;
                min = m;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

static float f16_round(uint8_t *p, float v) {
    put_f16(p, v);
    return hl_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

/* q2_K (layout in quant_types.c): 16 groups of 16, 2-bit levels, 4-bit scale and min each. */
static void q2_k(const float *x, uint8_t *b) {
    uint8_t L[256], Laux[16], *scales = b, *qs = b + 16;
    float w[16], mins[16], sc[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        sc[j] = fit_offset(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float d = 0, dmin = 0;
    if (max_scale > 0) {
        float is = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) scales[j] = (uint8_t)nearest(is * sc[j]);
        d = f16_round(b + 80, max_scale / 15.0f);
    } else {
        for (int j = 0; j < 16; j++) scales[j] = 0;
        d = f16_round(b + 80, 0.0f);
    }
    if (max_min > 0) {
        float is = 15.0f / max_min;
        for (int j = 0; j < 16; j++) scales[j] = (uint8_t)(scales[j] | (nearest(is * mins[j]) << 4));
        dmin = f16_round(b + 82, max_min / 15.0f);
    } else {
        dmin = f16_round(b + 82, 0.0f);
    }
    for (int j = 0; j < 16; j++) {
        const float dl = d * (float)(scales[j] & 0x0f);
        if (dl == 0.0f) continue;
        const float ml = dmin * (float)(scales[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)clampi(nearest((x[16 * j + i] + ml) / dl), 0, 3);
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* q3_K: 16 groups of 16, 3-bit signed levels (low 2 bits in qs, high bit in
 * hmask), signed 6-bit scales. */
static void q3_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float sc[16], max_scale = 0, amax = 0;
    uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    for (int j = 0; j < 16; j++) {
        sc[j] = fit_symmetric_greedy(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(sc[j]) > amax) {
            amax = fabsf(sc[j]);
            max_scale = sc[j];
        }
    }
    memset(scales, 0, 12);
    float d;
    if (max_scale != 0.0f) {
        float is = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = clampi((int8_t)nearest(is * sc[j]), -32, 31) + 32;
            if (j < 8) scales[j] = (uint8_t)(l & 0x0f);
            else scales[j - 8] = (uint8_t)(scales[j - 8] | ((l & 0x0f) << 4));
            scales[8 + j % 4] = (uint8_t)(scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
        }
        d = f16_round(b + 108, 1.0f / is);
    } else {
        d = f16_round(b + 108, 0.0f);
    }
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (scales[j] & 0x0f) : (scales[j - 8] >> 4);
        int s6 = (lo | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        const float dl = d * (float)s6;
        if (dl == 0.0f) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(nearest(x[16 * j + i] / dl), -4, 3) + 4);
    }
    memset(hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < 256; j++) {
        if (L[j] > 3) {
            hmask[m] = (uint8_t)(hmask[m] | hm);
            L[j] = (int8_t)(L[j] - 4);
        }
        if (++m == 32) {
            m = 0;
            hm = (uint8_t)(hm << 1);
        }
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* q4_K and q5_K: 8 groups of 32 with levels 0..nmax and an offset, 6-bit
 * scales and mins packed as scale_min_k4 reads them. Writes d, dmin, the 12
 * scale bytes at b + 4 and the final levels into L. */
static void k4_groups(const float *x, uint8_t *b, int nmax, float rmin, int nstep, uint8_t *L) {
    uint8_t Laux[32], *scales = b + 4;
    float w[32], mins[8], sc[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        sc[j] = fit_offset(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest(inv_scale * sc[j]), lm = (uint8_t)nearest(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            scales[j - 4] = (uint8_t)(scales[j - 4] | ((ls >> 4) << 6));
            scales[j] = (uint8_t)(scales[j] | ((lm >> 4) << 6));
        }
    }
    const float d = f16_round(b, max_scale / 63.0f), dmin = f16_round(b + 2, max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        uint8_t s6, m6;
        if (j < 4) {
            s6 = scales[j] & 63;
            m6 = scales[j + 4] & 63;
        } else {
            s6 = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
            m6 = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
        }
        const float dl = d * (float)s6;
        if (dl == 0.0f) continue;
        const float dm = dmin * (float)m6;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(nearest((x[32 * j + i] + dm) / dl), 0, nmax);
    }
}

static void q4_k(const float *x, uint8_t *b) {
    uint8_t L[256], *q = b + 16;
    k4_groups(x, b, 15, -1.0f, 20, L);
    for (int j = 0; j < 256; j += 64) {
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

static void q5_k(const float *x, uint8_t *b) {
    uint8_t L[256], *qh = b + 16, *ql = b + 48;
    k4_groups(x, b, 31, -0.5f, 15, L);
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = (uint8_t)(qh[j] | m1);
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = (uint8_t)(qh[j] | m2);
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

/* q6_K: 16 groups of 16, 6-bit signed levels, int8 scales. */
static void q6_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float sc[16], max_scale = 0, max_abs = 0;
    uint8_t *ql = b, *qh = b + 128;
    int8_t *scales = (int8_t *)(b + 192);
    for (int j = 0; j < 16; j++) {
        sc[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(sc[j]) > max_abs) {
            max_abs = fabsf(sc[j]);
            max_scale = sc[j];
        }
    }
    if (max_abs < GROUP_EPS) {
        memset(b, 0, 210);
        put_f16(b + 208, 0.0f);
        return;
    }
    float is = -128.0f / max_scale;
    const float d = f16_round(b + 208, 1.0f / is);
    for (int j = 0; j < 16; j++) {
        int v = nearest(is * sc[j]);
        scales[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; j++) {
        const float dl = d * (float)scales[j];
        if (dl == 0.0f) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(nearest(x[16 * j + i] / dl), -32, 31) + 32);
    }
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
            ql[l] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                              ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

int hl_quantize_supported(uint32_t type) {
    switch (type) {
    case HL_TYPE_Q8_0: case HL_TYPE_Q4_0: case HL_TYPE_Q4_1: case HL_TYPE_Q5_0: case HL_TYPE_Q5_1:
    case HL_TYPE_Q2_K: case HL_TYPE_Q3_K: case HL_TYPE_Q4_K: case HL_TYPE_Q5_K: case HL_TYPE_Q6_K: return 1;
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
    case HL_TYPE_Q2_K: fn = q2_k; break;
    case HL_TYPE_Q3_K: fn = q3_k; break;
    case HL_TYPE_Q4_K: fn = q4_k; break;
    case HL_TYPE_Q5_K: fn = q5_k; break;
    case HL_TYPE_Q6_K: fn = q6_k; break;
    default: return;
    }
    const hl_type_traits *tr = hl_type_traits_of(type);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n_blocks; i++) fn(x + i * tr->block_elems, b + i * tr->block_bytes);
}
