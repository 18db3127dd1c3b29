/* utf8.c: UTF-8 validation and stream cutting (see utf8.h). */
#include "util/utf8.h"

#include <stdint.h>

/* Length of the valid sequence at s (1..4), 0 when invalid, or -k when the
 * k bytes left are a valid but unfinished start. */
static int seq_len(const uint8_t *s, size_t left) {
    uint8_t c = s[0];
    int n;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= left) {
            /* Unfinished: the bytes so far must still allow a valid code point. */
            if (n == 3 && i >= 2 && (cp < (min >> 6) || (cp >= (0xD800 >> 6) && cp <= (0xDFFF >> 6)))) return 0;
            if (n == 4 && i >= 2 && (cp < (min >> 12) || cp > (0x10FFFF >> 12))) return 0;
            return -(int)left;
        }
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int hl_utf8_valid(const char *s, size_t n, size_t *bad) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        int k = seq_len(u + i, n - i);
        if (k <= 0) {
            if (bad) *bad = i;
            return 0;
        }
        i += (size_t)k;
    }
    return 1;
}

size_t hl_utf8_complete_prefix(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        int k = seq_len(u + i, n - i);
        if (k < 0) return i;     /* an unfinished tail waits */
        i += k ? (size_t)k : 1;  /* invalid bytes are passed on as they are */
    }
    return n;
}

size_t hl_utf8_sanitize(const char *s, size_t n, char *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int k = seq_len(u + i, n - i);
        if (k > 0) {
            for (int j = 0; j < k; j++) out[o++] = s[i + j];
            i += (size_t)k;
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
