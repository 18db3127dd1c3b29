/* utf8.c: UTF-8 decoding, validation and stream cutting (see utf8.h). */
#include "util/utf8.h"

/* The second byte's range decides overlongs, surrogates and the U+10FFFF
 * limit (Unicode's table of well-formed sequences); later bytes need only be
 * continuation bytes. */
size_t hl_utf8_decode(const uint8_t *s, size_t left, uint32_t *cp, hl_utf8_defect *defect) {
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    hl_utf8_defect d = HL_UTF8_OK;
    if (c < 0x80) {
        if (cp) *cp = c;
        return 1;
    }
    if (c < 0xC0) d = HL_UTF8_STRAY_CONTINUATION;
    else if (c < 0xC2) d = HL_UTF8_OVERLONG;
    else if (c >= 0xF8) d = HL_UTF8_BAD_LEAD;
    else if (c >= 0xF5) d = HL_UTF8_ABOVE_MAX;
    if (d != HL_UTF8_OK) {
        if (defect) *defect = d;
        return 0;
    }
    if (c < 0xE0) n = 2;
    else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    }
    uint32_t v = c & (0x7Fu >> n);
    for (size_t k = 1; k < n; k++) {
        if (k >= left) d = HL_UTF8_CUT_SHORT;
        else if ((s[k] & 0xC0) != 0x80) d = HL_UTF8_MISSING_CONTINUATION;
        else if (k == 1 && (s[k] < lo || s[k] > hi))
            d = c == 0xED ? HL_UTF8_SURROGATE : c == 0xF4 ? HL_UTF8_ABOVE_MAX : HL_UTF8_OVERLONG;
        if (d != HL_UTF8_OK) {
            if (defect) *defect = d;
            return 0;
        }
        v = v << 6 | (s[k] & 0x3Fu);
    }
    if (cp) *cp = v;
    return n;
}

const char *hl_utf8_defect_text(hl_utf8_defect defect) {
    switch (defect) {
    case HL_UTF8_OK: return "valid";
    case HL_UTF8_STRAY_CONTINUATION: return "stray continuation byte";
    case HL_UTF8_OVERLONG: return "overlong encoding";
    case HL_UTF8_SURROGATE: return "surrogate code point";
    case HL_UTF8_ABOVE_MAX: return "code point above U+10FFFF";
    case HL_UTF8_BAD_LEAD: return "invalid lead byte";
    case HL_UTF8_CUT_SHORT: return "truncated sequence";
    case HL_UTF8_MISSING_CONTINUATION: return "truncated sequence (missing continuation byte)";
    }
    return "invalid UTF-8";
}

int hl_utf8_valid(const char *s, size_t n, size_t *bad) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t k = hl_utf8_decode(u + i, n - i, NULL, NULL);
        if (!k) {
            if (bad) *bad = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

size_t hl_utf8_complete_prefix(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        hl_utf8_defect d;
        size_t k = hl_utf8_decode(u + i, n - i, NULL, &d);
        if (!k && d == HL_UTF8_CUT_SHORT) return i; /* an unfinished tail waits */
        i += k ? k : 1;                              /* invalid bytes are passed on as they are */
    }
    return n;
}

size_t hl_utf8_sanitize(const char *s, size_t n, char *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hl_utf8_decode(u + i, n - i, NULL, NULL);
        if (k > 0) {
            for (size_t j = 0; j < k; j++) out[o++] = s[i + j];
            i += k;
        } else { /* an invalid byte, or a start cut off by the end: U+FFFD */
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i++;
        }
    }
    out[o] = 0;
    return o;
}
