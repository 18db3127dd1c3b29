/* buffer.h: a growable byte buffer for building text and headers in memory
 * (JSON headers of files this project writes, reports). Appends never fail
 * loudly: an allocation failure or a size overflow sets oom, later appends
 * do nothing, and the caller checks oom once at the end. */
#ifndef HL_UTIL_BUFFER_H
#define HL_UTIL_BUFFER_H
#include <stddef.h>
#include <stdint.h>
#include "util/error.h"

typedef struct hl_buf {
    char *p;      /* the bytes, not NUL-terminated; NULL while empty */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    int oom;      /* an append failed: the contents are incomplete */
} hl_buf;

/* Appends n bytes. */
void hl_buf_put(hl_buf *b, const void *data, size_t n);
/* Appends a NUL-terminated string (without its NUL). */
void hl_buf_str(hl_buf *b, const char *s);
/* Appends v in decimal. */
void hl_buf_u64(hl_buf *b, uint64_t v);
/* Appends printf-formatted text. */
void hl_buf_printf(hl_buf *b, const char *fmt, ...) HL_PRINTF(2, 3);
/* Appends s[0..n) as a JSON string literal, quotes included: '"' and '\'
 * get a backslash, other bytes below 0x20 become \u00XX, all other bytes
 * (UTF-8 included) pass as they are. */
void hl_buf_json_str(hl_buf *b, const char *s, size_t n);
/* Frees the bytes and empties the buffer. */
void hl_buf_free(hl_buf *b);
#endif
