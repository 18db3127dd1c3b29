/* escape.c: hl_escape, the one way untrusted names reach a terminal (see
 * escape.h for what is escaped and why). It does not quote the result or
 * choose a length: callers pick a buffer and print the result where they
 * would have printed the raw name. */
#include "util/escape.h"

#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid
 * (bad lead, bad continuation, overlong, surrogate, above U+10FFFF or cut
 * off by the end). *cp receives the code point. */
static size_t utf8_seq(const unsigned char *p, size_t left, uint32_t *cp) {
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || len > left) return 0;
    uint32_t v = len == 1 ? c : c & (0x7fu >> len);
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[k] & 0x3f);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_for_len[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Code points shown escaped although they are valid UTF-8. */
static int unsafe_cp(uint32_t v) {
    return v < 0x20 || v == 0x7f || v == '\\' || (v >= 0x80 && v <= 0x9f) || (v >= 0x202a && v <= 0x202e) ||
           (v >= 0x2066 && v <= 0x2069);
}

int hl_escape_is_clean(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t v;
        size_t len = utf8_seq(p + i, n - i, &v);
        if (!len || unsafe_cp(v)) return 0;
        i += len;
    }
    return 1;
}

/* Bytes the escaped form of s[0..n) takes, without the NUL. */
static size_t escaped_len(const unsigned char *p, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n;) {
        uint32_t v = 0;
        size_t len = utf8_seq(p + i, n - i, &v);
        int escape = !len || unsafe_cp(v);
        if (!len) len = 1;
        total += escape ? 4 * len : len;
        i += len;
    }
    return total;
}

const char *hl_escape(const char *s, size_t n, char *buf, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    if (!buf || cap < 8) return "";
    if (!s) s = "(null)", n = 6;
    const unsigned char *p = (const unsigned char *)s;
    /* Everything when it fits; else as much as fits before "...". */
    const size_t limit = escaped_len(p, n) <= cap - 1 ? cap - 1 : cap - 4;
    size_t o = 0, i = 0;
    while (i < n) {
        uint32_t v = 0;
        size_t len = utf8_seq(p + i, n - i, &v);
        int escape = !len || unsafe_cp(v);
        if (!len) len = 1; /* an invalid byte is escaped alone; the next one is looked at afresh */
        if (o + (escape ? 4 * len : len) > limit) break;
        for (size_t k = 0; k < len; k++) {
            if (escape) {
                buf[o++] = '\\';
                buf[o++] = 'x';
                buf[o++] = hex[p[i + k] >> 4];
                buf[o++] = hex[p[i + k] & 15];
            } else buf[o++] = (char)p[i + k];
        }
        i += len;
    }
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

const char *hl_escape_str(const char *s, char *buf, size_t cap) { return hl_escape(s, s ? strlen(s) : 0, buf, cap); }
