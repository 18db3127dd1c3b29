/* alloc.h: the single allocation path of the library.
 * Every heap allocation goes through hl_malloc/hl_calloc/hl_realloc so that
 * tests can inject out-of-memory failures (SQLite-style fault injection):
 * hl_alloc_fail_after(n) makes the (n+1)-th allocation from now fail.
 * The fault-injection counter is the one piece of process-wide state; it
 * exists only for tests and is inert unless armed. */
#ifndef HL_UTIL_ALLOC_H
#define HL_UTIL_ALLOC_H
#include <stddef.h>

void *hl_malloc(size_t size);
void *hl_calloc(size_t n, size_t size);           /* overflow-checked n*size */
void *hl_realloc(void *ptr, size_t size);
void *hl_malloc_array(size_t n, size_t size);     /* overflow-checked n*size */
void *hl_aligned_alloc(size_t align, size_t size); /* free with hl_free */
/* Activations that kernels read with vector loads: zeroed, 64-byte aligned
 * (a cache line, one AVX-512 vector), so that no load straddles two lines;
 * malloc's large blocks start 16 bytes into a page, which split every other
 * 256-bit load and every 512-bit one. Like calloc, a large block's pages
 * are not touched until used. Overflow-checked n*size; free with
 * hl_aligned_free, never hl_free. */
#define HL_VECTOR_ALIGN 64
void *hl_aligned_calloc(size_t n, size_t size);
void hl_aligned_free(void *ptr);
/* A KV cache: zeroed and, from HL_HUGE_MIN bytes on Linux, mapped on 2 MiB
 * boundaries with transparent huge pages asked for (madvise). Decoding
 * writes each position into fresh pages; with 4 KiB pages every one costs a
 * fault: 9-10 us each in the 2-vCPU KVM guest measured, against about 0.2
 * us per 4 KiB inside a huge page. The price: a layer's part of the cache
 * fills in 2 MiB steps, so resident memory can run ahead of the positions
 * used by up to 2 MiB per layer and cache. Smaller blocks, and systems
 * without it, get hl_aligned_calloc. *mapped receives what hl_huge_free
 * needs (0 for a hl_aligned_calloc block). */
#define HL_HUGE_MIN ((size_t)2 << 20)
void *hl_huge_calloc(size_t n, size_t size, size_t *mapped);
/* The memory a hl_huge_calloc block of that many bytes can come to hold:
 * whole huge pages where it maps them, the bytes themselves otherwise. */
size_t hl_huge_bytes(size_t bytes);
void hl_huge_free(void *ptr, size_t mapped);
void hl_free(void *ptr);
char *hl_strdup(const char *s);
char *hl_strndup(const char *s, size_t n);

/* Test hooks: arm (n >= 0) or disarm (n < 0) failure injection. */
void hl_alloc_fail_after(long n);
long hl_alloc_failures(void); /* how many injected failures so far */
#endif
