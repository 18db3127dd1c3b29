/* rng.h: the seeded random number generator used for everything random
 * (sampling, init, dropout, shuffling): xoshiro256** seeded by splitmix64.
 * The whole state is 4 words, so checkpoints can store and restore it. */
#ifndef HL_UTIL_RNG_H
#define HL_UTIL_RNG_H
#include <stdint.h>

typedef struct hl_rng { uint64_t s[4]; } hl_rng;

void hl_rng_seed(hl_rng *r, uint64_t seed);
uint64_t hl_rng_next(hl_rng *r);
float hl_rng_uniform(hl_rng *r);          /* [0, 1), 24 random bits */
double hl_rng_uniform_f64(hl_rng *r);     /* [0, 1), 53 random bits */
float hl_rng_normal(hl_rng *r);           /* N(0, 1), Box-Muller in double */
uint64_t hl_rng_below(hl_rng *r, uint64_t n); /* uniform in [0, n), unbiased */
#endif
