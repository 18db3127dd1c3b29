/* alloc.c: allocation wrappers with test-only failure injection. */
#include "util/alloc.h"
#include "hyperlora.h" /* hl_free is public */
#include "util/checked.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

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
#if defined(__linux__)
#define HUGE_PAGE ((size_t)2 << 20)
/* Whether a block of `bytes` gets its own huge-page mapping (room left for
 * the rounding and the alignment slack). */
static int huge_eligible(size_t bytes) { return bytes >= HL_HUGE_MIN && bytes <= SIZE_MAX - 2 * HUGE_PAGE; }
#endif
void *hl_huge_calloc(size_t n, size_t size, size_t *mapped) {
    size_t total;
    *mapped = 0;
    if (!hl_mul_size(n, size, &total)) return NULL;
#if defined(__linux__)
    const size_t huge = HUGE_PAGE;
    if (huge_eligible(total)) {
        if (should_fail()) return NULL;
        const size_t len = hl_huge_bytes(total);
        /* one huge page more than needed, so that a 2 MiB boundary falls inside */
        unsigned char *m = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        unsigned char *p = (unsigned char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
        if (p > m) munmap(m, (size_t)(p - m));
        if (m + huge > p) munmap(p + len, (size_t)(m + huge - p));
#ifdef MADV_HUGEPAGE
        madvise(p, len, MADV_HUGEPAGE); /* advice only: where THP is off, 4 KiB pages */
#endif
        *mapped = len;
        return p;
    }
#endif
    return hl_aligned_calloc(n, size);
}
size_t hl_huge_bytes(size_t bytes) {
#if defined(__linux__)
    if (huge_eligible(bytes)) return (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
#endif
    return bytes;
}
void hl_huge_free(void *ptr, size_t mapped) {
#if defined(__linux__)
    if (ptr && mapped) {
        munmap(ptr, mapped);
        return;
    }
#endif
    hl_aligned_free(ptr);
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
