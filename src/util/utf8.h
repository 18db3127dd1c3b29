/* utf8.h: checking UTF-8 from untrusted sources (request bodies) and cutting
 * a stream of decoded bytes at a character boundary. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid. */
#ifndef HL_UTIL_UTF8_H
#define HL_UTIL_UTF8_H
#include <stddef.h>

/* 1 when s[0..n) is valid UTF-8; else 0, with the offset of the first bad byte in *bad (may be NULL). */
int hl_utf8_valid(const char *s, size_t n, size_t *bad);
/* The length of the longest prefix of s[0..n) that does not end inside an
 * unfinished (but so far valid) multi-byte sequence: what a stream can send
 * now; the rest waits for the next bytes. */
size_t hl_utf8_complete_prefix(const char *s, size_t n);
/* Copies s[0..n) to out as valid UTF-8: every byte that does not begin a
 * valid sequence (including a sequence cut off by the end) becomes U+FFFD.
 * out needs 3n + 1 bytes; it is NUL-terminated. Returns the length written.
 * For text that must be UTF-8, such as JSON, made from model output, whose
 * byte tokens can form anything. */
size_t hl_utf8_sanitize(const char *s, size_t n, char *out);
#endif
