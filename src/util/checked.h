/* checked.h: overflow-checked size arithmetic, used by every parser.
 * Never write a raw a*b or a+b on values read from a file; use these.
 * Each returns 1 on success (result stored) and 0 on overflow. */
#ifndef HL_UTIL_CHECKED_H
#define HL_UTIL_CHECKED_H
#include <stddef.h>
#include <stdint.h>

static inline int hl_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline int hl_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int hl_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline int hl_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
/* Product of n dims into *out, checked: returns 0 when a dim is negative or the
 * product overflows, else 1 (a zero dim is allowed and gives *out = 0). */
static inline int hl_mul_dims(const int64_t *dims, int n, uint64_t *out) {
    uint64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) return 0;
        if (__builtin_mul_overflow(p, (uint64_t)dims[i], &p)) return 0;
    }
    *out = p;
    return 1;
}
/* Rounds x up to a multiple of align (align > 0), checked. */
static inline int hl_align_up(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t rem = x % align;
    if (rem == 0) { *out = x; return 1; }
    return hl_add_u64(x, align - rem, out);
}
#endif
