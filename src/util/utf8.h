/* utf8.h: the project's one UTF-8 decoder and validator. Text from
 * untrusted sources (request bodies, vocabularies, lexicons, file names and
 * tensor names) is checked here; a stream of decoded bytes is cut here at a
 * character boundary. Overlong forms, surrogates and code points above
 * U+10FFFF are invalid. */
#ifndef HL_UTIL_UTF8_H
#define HL_UTIL_UTF8_H
#include <stddef.h>
#include <stdint.h>

/* Why a sequence is not valid UTF-8. */
typedef enum hl_utf8_defect {
    HL_UTF8_OK = 0,
    HL_UTF8_STRAY_CONTINUATION,   /* starts with a continuation byte (0x80..0xBF) */
    HL_UTF8_OVERLONG,             /* a longer form than the code point needs */
    HL_UTF8_SURROGATE,            /* U+D800..U+DFFF */
    HL_UTF8_ABOVE_MAX,            /* above U+10FFFF */
    HL_UTF8_BAD_LEAD,             /* 0xF8..0xFF */
    HL_UTF8_CUT_SHORT,            /* the bytes end inside a sequence that is valid so far */
    HL_UTF8_MISSING_CONTINUATION, /* a byte that should continue the sequence does not */
} hl_utf8_defect;

/* Decodes the sequence at s (left > 0 bytes available): returns its length
 * (1..4) and stores the code point in *cp (may be NULL); or returns 0 and
 * stores the defect in *defect (may be NULL). */
size_t hl_utf8_decode(const uint8_t *s, size_t left, uint32_t *cp, hl_utf8_defect *defect);
/* A defect in words ("stray continuation byte", "overlong encoding", ...). */
const char *hl_utf8_defect_text(hl_utf8_defect defect);

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
