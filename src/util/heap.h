/* heap.h: a binary heap over a caller's array of fixed-size elements, kept
 * in the order of a caller's "before" function (the first element is the
 * one before all others). The array and its capacity stay the caller's; the
 * functions only sift. They are inline so that each caller's comparison
 * inlines into its loops (the tokenizers' merge loops are hot).
 * For a total order the elements come out in one order whatever the
 * insertion order; with ties the order depends on the pushes, the same way
 * on every run. */
#ifndef HL_UTIL_HEAP_H
#define HL_UTIL_HEAP_H
#include <stddef.h>
#include <string.h>

/* Nonzero when a must come out before b; ctx is the caller's. */
typedef int (*hl_heap_before_fn)(const void *a, const void *b, const void *ctx);

/* Adds a copy of *elem (size bytes, not inside v) to v[0..*n), which must
 * have room for one more element; *n grows by one. */
static inline void hl_heap_push(void *v, size_t *n, size_t size, const void *elem, hl_heap_before_fn before,
                                const void *ctx) {
    unsigned char *b = v;
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(elem, b + up * size, ctx)) break;
        memcpy(b + i * size, b + up * size, size);
        i = up;
    }
    memcpy(b + i * size, elem, size);
}

/* Moves the first element of v[0..*n) (*n > 0) to *top; *n shrinks by one.
 * The last element fills the hole from the top down; it is read in place,
 * which the sifting never overwrites (it only writes below the new *n). */
static inline void hl_heap_pop(void *v, size_t *n, size_t size, void *top, hl_heap_before_fn before,
                               const void *ctx) {
    unsigned char *b = v;
    memcpy(top, b, size);
    size_t count = --(*n);
    const unsigned char *last = b + count * size;
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && before(b + (c + 1) * size, b + c * size, ctx)) c++;
        if (!before(b + c * size, last, ctx)) break;
        memcpy(b + i * size, b + c * size, size);
        i = c;
    }
    if (count) memcpy(b + i * size, last, size);
}
#endif
