/* escape.h: printing untrusted names safely.
 *
 * Tensor names, GGUF keys, PEFT module names, lexemes and other strings that
 * come from a file can hold terminal escape sequences or invalid UTF-8. Every
 * message, `inspect` line or `scene explain` line that shows one passes it
 * through hl_escape first, which keeps valid printable UTF-8 as it is and
 * writes everything else as \xNN:
 *   - C0 control bytes (0x00..0x1f) and DEL (0x7f);
 *   - C1 control characters (U+0080..U+009F, which some terminals obey);
 *   - bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069),
 *     which can make a name display as something else;
 *   - every byte of an invalid, overlong or truncated UTF-8 sequence;
 *   - the backslash itself (as \x5c), so an escaped name is unambiguous.
 * The result is truncated with "..." when it does not fit. */
#ifndef HL_UTIL_ESCAPE_H
#define HL_UTIL_ESCAPE_H
#include <stddef.h>

/* Room for a name of up to about 64 bytes shown in full (each byte can take 4). */
#define HL_ESCAPE_NAME 272

/* Writes the escaped form of s[0..n) into buf (cap >= 8) and returns buf.
 * s may contain NUL bytes (shown as \x00); s == NULL gives "(null)". */
const char *hl_escape(const char *s, size_t n, char *buf, size_t cap);
/* The same for a NUL-terminated string. */
const char *hl_escape_str(const char *s, char *buf, size_t cap);
/* 1 when hl_escape would change nothing (valid, printable UTF-8, no backslash). */
int hl_escape_is_clean(const char *s, size_t n);
#endif
