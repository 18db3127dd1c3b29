/* escape.c: hl_escape, the one way untrusted names reach a terminal (see
 * escape.h for what is escaped and why). It does not quote the result or
 * choose a length: callers pick a buffer and print the result where they
 * would have printed the raw name. */
#include "util/escape.h"
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

/* Code points shown escaped although they are valid UTF-8. */
static int unsafe_cp(uint32_t v) {
    return v < 0x20 || v == 0x7f || v == '\\' || (v >= 0x80 && v <= 0x9f) || (v >= 0x202a && v <= 0x202e) ||
           (v >= 0x2066 && v <= 0x2069);
}

int hl_escape_is_clean(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t v;
        size_t len = hl_utf8_decode(p + i, n - i, &v, NULL);
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
        size_t len = hl_utf8_decode(p + i, n - i, &v, NULL);
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
        size_t len = hl_utf8_decode(p + i, n - i, &v, NULL);
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
