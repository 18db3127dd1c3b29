/* rng.c: xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "util/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void hl_rng_seed(hl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hl_rng_next(hl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float hl_rng_uniform(hl_rng *r) { return (float)(hl_rng_next(r) >> 40) * (1.0f / 16777216.0f); }
double hl_rng_uniform_f64(hl_rng *r) { return (double)(hl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

float hl_rng_normal(hl_rng *r) {
    double u1 = hl_rng_uniform_f64(r), u2 = hl_rng_uniform_f64(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t hl_rng_below(hl_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = hl_rng_next(r);
    while (x >= limit);
    return x % n;
}
