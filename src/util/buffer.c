/* buffer.c: the growable byte buffer (see buffer.h). Capacity starts at 256
 * bytes and doubles. */
#include "util/buffer.h"
#include "util/alloc.h"
#include "util/checked.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Makes room for n more bytes; 0 (and oom set) when it cannot. */
static int reserve(hl_buf *b, size_t n) {
    if (b->oom) return 0;
    size_t need;
    if (!hl_add_size(b->len, n, &need)) {
        b->oom = 1;
        return 0;
    }
    if (need <= b->cap) return 1;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        if (!hl_mul_size(ncap, 2, &ncap)) {
            b->oom = 1;
            return 0;
        }
    }
    char *np = hl_realloc(b->p, ncap);
    if (!np) {
        b->oom = 1;
        return 0;
    }
    b->p = np;
    b->cap = ncap;
    return 1;
}

void hl_buf_put(hl_buf *b, const void *data, size_t n) {
    if (!reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

void hl_buf_str(hl_buf *b, const char *s) { hl_buf_put(b, s, strlen(s)); }

void hl_buf_u64(hl_buf *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    hl_buf_put(b, tmp, (size_t)n);
}

void hl_buf_printf(hl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (!reserve(b, (size_t)n + 1)) return; /* + 1: vsnprintf writes a NUL */
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hl_buf_json_str(hl_buf *b, const char *s, size_t n) {
    hl_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            hl_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            hl_buf_put(b, esc, 6);
        } else
            hl_buf_put(b, &s[i], 1);
    }
    hl_buf_put(b, "\"", 1);
}

void hl_buf_free(hl_buf *b) {
    hl_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
