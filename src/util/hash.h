/* hash.h: FNV-1a, the one non-cryptographic byte hash of the project: model
 * and checkpoint fingerprints, and the slots of the vocabulary and name
 * tables (hash-flooding-resistant sets use SipHash, util/hashset.h).
 * Chaining calls hashes the concatenation: hl_fnv1a(hl_fnv1a(HL_FNV1A_BASIS, a, n), b, m). */
#ifndef HL_UTIL_HASH_H
#define HL_UTIL_HASH_H
#include <stddef.h>
#include <stdint.h>

#define HL_FNV1A_BASIS 0xcbf29ce484222325ull
#define HL_FNV1A_PRIME 0x100000001b3ull

/* h extended by the n bytes at data. */
static inline uint64_t hl_fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * HL_FNV1A_PRIME;
    return h;
}

/* h extended by the bytes of a NUL-terminated string. */
static inline uint64_t hl_fnv1a_str(uint64_t h, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * HL_FNV1A_PRIME;
    return h;
}

/* h extended by one 64-bit word taken whole (one xor and one multiply), for
 * keys that are lists of integers rather than bytes. */
static inline uint64_t hl_fnv1a_word(uint64_t h, uint64_t word) { return (h ^ word) * HL_FNV1A_PRIME; }

/* 32-bit FNV-1a of n bytes. */
static inline uint32_t hl_fnv1a32(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
#endif
