/* utf8_oracle.h: an independent UTF-8 validity check for the tokenizer fuzz
 * harnesses (fuzz_tokenize.c, bpe_harness.h), written apart from the
 * library's so that the two judge each other: decode the scalar value, then
 * range-check it (overlongs, surrogates, above U+10FFFF, truncation). */
#ifndef HL_FUZZ_UTF8_ORACLE_H
#define HL_FUZZ_UTF8_ORACLE_H
#include <stddef.h>
#include <stdint.h>

static inline int fuzz_valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], need, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { need = 1; c &= 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { need = 2; c &= 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { need = 3; c &= 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= need) return 0;
        for (uint32_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}
#endif
