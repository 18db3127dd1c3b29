/* alloc.c: allocation wrappers with test-only failure injection. */
#include "util/alloc.h"
#include "hyperlora.h" /* hl_free is public */
#include "util/checked.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1; /* -1: disarmed */
static atomic_long fail_count = 0;

static int should_fail(void) {
    long c = atomic_load(&fail_countdown);
    while (c >= 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1)) {
            if (c == 0) {
                atomic_store(&fail_countdown, 0); /* keep failing once triggered */
                atomic_fetch_add(&fail_count, 1);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

void hl_alloc_fail_after(long n) {
    atomic_store(&fail_countdown, n < 0 ? -1 : n);
    atomic_store(&fail_count, 0);
}
long hl_alloc_failures(void) { return atomic_load(&fail_count); }

void *hl_malloc(size_t size) {
    if (should_fail()) return NULL;
    return malloc(size ? size : 1);
}
void *hl_calloc(size_t n, size_t size) {
    size_t total;
    if (!hl_mul_size(n, size, &total)) return NULL;
    if (should_fail()) return NULL;
    return calloc(total ? total : 1, 1);
}
void *hl_malloc_array(size_t n, size_t size) {
    size_t total;
    if (!hl_mul_size(n, size, &total)) return NULL;
    return hl_malloc(total);
}
void *hl_realloc(void *ptr, size_t size) {
    if (should_fail()) return NULL;
    return realloc(ptr, size ? size : 1);
}
void *hl_aligned_alloc(size_t align, size_t size) {
    if (should_fail()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : align) != 0) return NULL;
    return p;
}
/* calloc's block with the pointer moved up to the next line (1 to 64
 * bytes); the byte before the pointer holds that distance. */
void *hl_aligned_calloc(size_t n, size_t size) {
    size_t total;
    if (!hl_mul_size(n, size, &total) || total > SIZE_MAX - HL_VECTOR_ALIGN) return NULL;
    unsigned char *block = hl_calloc(1, total + HL_VECTOR_ALIGN);
    if (!block) return NULL;
    const size_t shift = HL_VECTOR_ALIGN - (size_t)((uintptr_t)block % HL_VECTOR_ALIGN);
    block[shift - 1] = (unsigned char)shift;
    return block + shift;
}
void hl_aligned_free(void *ptr) {
    if (ptr) hl_free((unsigned char *)ptr - ((unsigned char *)ptr)[-1]);
}
void hl_free(void *ptr) { free(ptr); }
char *hl_strndup(const char *s, size_t n) {
    char *d = hl_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
char *hl_strdup(const char *s) { return hl_strndup(s, strlen(s)); }
