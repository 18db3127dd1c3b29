/* hashset.c: the byte-string set of hashset.h (open addressing, SipHash-1-3
 * keyed per set). It stores keys and their insertion indices; it does not
 * store values, iterate or remove. */
#include "util/hashset.h"
#include "util/alloc.h"
#include "util/checked.h"

#include <string.h>
#include <time.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIP_ROUND(v0, v1, v2, v3)                                                                            \
    do {                                                                                                     \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                                            \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                                               \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                                               \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                                            \
    } while (0)

/* SipHash-1-3: one compression round per 8-byte word, three finalization rounds. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n) {
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int k = 7; k >= 0; k--) m = (m << 8) | p[i + (size_t)k]; /* little-endian on any host */
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t k = 0; k < (n & 7); k++) last |= (uint64_t)p[whole + k] << (8 * k);
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* A splitmix64 step: spreads the few changing bits of the clock and address. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void hl_hashset_init(hl_hashset *s) {
    memset(s, 0, sizeof *s);
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)s;
    s->k0 = mix64(seed);
    s->k1 = mix64(s->k0 ^ (uint64_t)(uintptr_t)&seed);
}

void hl_hashset_free(hl_hashset *s) {
    hl_free(s->slots);
    hl_free(s->hash);
    hl_free(s->off);
    hl_free(s->len);
    hl_free(s->blob);
    uint64_t k0 = s->k0, k1 = s->k1;
    memset(s, 0, sizeof *s);
    s->k0 = k0, s->k1 = k1; /* reusable after free, like after init */
}

/* The slot holding key (entry index >= 0), or the empty slot where it would go (-1 - slot). */
static int64_t probe(const hl_hashset *s, uint64_t h, const void *key, size_t len) {
    for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
        int32_t e = s->slots[i];
        if (e < 0) return -1 - (int64_t)i;
        if (s->hash[e] == h && s->len[e] == len && (len == 0 || !memcmp(s->blob + s->off[e], key, len))) return e;
    }
}

int64_t hl_hashset_find(const hl_hashset *s, const void *key, size_t len) {
    if (!s->slots) return -1;
    int64_t r = probe(s, siphash13(s->k0, s->k1, key, len), key, len);
    return r >= 0 ? r : -1;
}

/* Rebuilds the slot table at twice the size (or 16 slots at first). */
static int grow_slots(hl_hashset *s) {
    size_t cap = s->slots ? (s->mask + 1) * 2 : 16;
    int32_t *slots = hl_malloc_array(cap, sizeof *slots);
    if (!slots) return 0;
    memset(slots, 0xff, cap * sizeof *slots);
    for (size_t e = 0; e < s->n; e++) {
        size_t i = (size_t)s->hash[e] & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = (int32_t)e;
    }
    hl_free(s->slots);
    s->slots = slots;
    s->mask = cap - 1;
    return 1;
}

static int grow_entries(hl_hashset *s) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    uint64_t *hash = hl_realloc(s->hash, cap * sizeof *hash);
    if (!hash) return 0;
    s->hash = hash;
    size_t *off = hl_realloc(s->off, cap * sizeof *off);
    if (!off) return 0;
    s->off = off;
    size_t *len = hl_realloc(s->len, cap * sizeof *len);
    if (!len) return 0;
    s->len = len;
    s->cap = cap;
    return 1;
}

int hl_hashset_add(hl_hashset *s, const void *key, size_t len, int64_t *index) {
    if (s->n >= INT32_MAX) return -1;
    if ((!s->slots || 2 * (s->n + 1) > s->mask + 1) && !grow_slots(s)) return -1;
    uint64_t h = siphash13(s->k0, s->k1, key, len);
    int64_t r = probe(s, h, key, len);
    if (r >= 0) {
        if (index) *index = r;
        return 0;
    }
    if (s->n == s->cap && !grow_entries(s)) return -1;
    size_t need;
    if (!hl_add_size(s->blob_len, len, &need)) return -1;
    if (need > s->blob_cap) {
        size_t cap = s->blob_cap ? s->blob_cap : 256;
        while (cap < need)
            if (!hl_mul_size(cap, 2, &cap)) return -1;
        char *blob = hl_realloc(s->blob, cap);
        if (!blob) return -1;
        s->blob = blob;
        s->blob_cap = cap;
    }
    if (len) memcpy(s->blob + s->blob_len, key, len);
    s->off[s->n] = s->blob_len;
    s->len[s->n] = len;
    s->hash[s->n] = h;
    s->blob_len = need;
    s->slots[-1 - r] = (int32_t)s->n;
    if (index) *index = (int64_t)s->n;
    s->n++;
    return 1;
}
