/* hashset.h: a set of byte strings with linear-time duplicate checks.
 *
 * Keys are copied into the set, so callers may pass temporary buffers. Each
 * key added gets the next index (0, 1, 2, ... in insertion order), which
 * hl_hashset_add and hl_hashset_find report, so a set doubles as the
 * "which earlier entry was this" map a duplicate error message wants.
 *
 * Open addressing with linear probing, kept at most half full, doubling as
 * it grows: adding n keys costs O(total key bytes) expected. The hash is
 * SipHash-1-3 under a key drawn per set (clock and address), so a crafted
 * file cannot pick names that all collide and turn the checks quadratic.
 * The key does not affect any result, only where entries sit in the table.
 *
 * Not thread-safe; no removal. Every allocation goes through util/alloc. */
#ifndef HL_UTIL_HASHSET_H
#define HL_UTIL_HASHSET_H
#include <stddef.h>
#include <stdint.h>

typedef struct hl_hashset {
    uint64_t k0, k1;   /* SipHash key */
    int32_t *slots;    /* [mask + 1]: entry index, or -1 when empty */
    size_t mask;
    uint64_t *hash;    /* [n]: each entry's hash */
    size_t *off;       /* [n]: where its bytes start in blob */
    size_t *len;       /* [n] */
    size_t n, cap;     /* entries, and room in the per-entry arrays */
    char *blob;        /* every key's bytes, back to back */
    size_t blob_len, blob_cap;
} hl_hashset;

/* An empty set (allocates nothing until the first add). */
void hl_hashset_init(hl_hashset *s);
void hl_hashset_free(hl_hashset *s);
/* Adds key[0..len) unless it is present. Returns 1 when added (*index, if
 * non-NULL, gets its new index), 0 when it was already there (*index gets
 * the index it was added under), -1 when out of memory (set unchanged). */
int hl_hashset_add(hl_hashset *s, const void *key, size_t len, int64_t *index);
/* The index key[0..len) was added under, or -1 when absent. */
int64_t hl_hashset_find(const hl_hashset *s, const void *key, size_t len);
/* Number of keys. */
static inline size_t hl_hashset_size(const hl_hashset *s) { return s->n; }
#endif
