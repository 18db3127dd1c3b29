/* compose.c: the composition rules' names and the per-slot signed
 * permutations of the order-aware rule (see compose.h). */
#include "hyperlexeme/compose.h"
#include "util/hash.h"
#include "util/rng.h"

#include <string.h>

static const char *rule_names[HL_COMPOSE_N_RULES] = {
    "parts",  "parts+facets",  "slots", "slots+facets", "ranked", "ranked+facets", "decay", "decay+facets",
    [HL_COMPOSE_DECAY | HL_COMPOSE_FACETS | HL_COMPOSE_FACET_WORDS] = "decay+facet-words"};

const char *hl_compose_rule_name(int rule) {
    return rule >= 0 && rule < HL_COMPOSE_N_RULES && rule_names[rule] ? rule_names[rule] : "?";
}

int hl_compose_rule_from_name(const char *name) {
    for (int r = 0; r < HL_COMPOSE_N_RULES; r++)
        if (rule_names[r] && !strcmp(name, rule_names[r])) return r;
    return -1;
}

const char *hl_compose_rule_list(void) {
    return "parts, parts+facets, slots, slots+facets, ranked, ranked+facets, decay, decay+facets, decay+facet-words";
}

/* decay's ratio: each part leads the next by 1/0.6 ≈ 1.7, so the order is
 * the order of strength, and the fifth part (0.13 of the first) can still
 * be peeled off a 64-wide row (BENCHMARKS.md, readout ceilings). */
#define DECAY_RATIO 0.6

double hl_compose_part_weight(int order, int32_t k, double entry_weight) {
    if (order == HL_COMPOSE_RANKED) return entry_weight / (k + 1);
    if (order == HL_COMPOSE_DECAY) { /* by multiplication, not pow(): the same bits on every libm */
        double w = entry_weight;
        for (int32_t i = 0; i < k; i++) w *= DECAY_RATIO;
        return w;
    }
    return entry_weight;
}

double hl_compose_facet_weight(int order) { return order == HL_COMPOSE_DECAY ? 0.25 : 1.0; }

int hl_compose_facets_transformed(int rule) {
    const int order = HL_COMPOSE_ORDER(rule);
    return order == HL_COMPOSE_SLOTS || (order == HL_COMPOSE_DECAY && !(rule & HL_COMPOSE_FACET_WORDS));
}

/* Keys are domain-separated so a part position never shares a transform with a facet key. */
uint64_t hl_compose_part_key(int32_t k) { return 0x51075107ull << 32 | (uint32_t)k; }

uint64_t hl_compose_facet_key(const char *facet_key) {
    uint64_t h = hl_fnv1a_str(HL_FNV1A_BASIS, facet_key);
    return h | 1ull << 63; /* part keys have the top bit clear */
}

void hl_compose_transform(uint64_t key, int64_t C, int32_t *code) {
    for (int64_t c = 0; c < C; c++) code[c] = (int32_t)(c << 1);
    if (key == hl_compose_part_key(0)) return; /* the first position is the word itself */
    hl_rng r;
    hl_rng_seed(&r, key);
    for (int64_t c = C - 1; c > 0; c--) { /* Fisher-Yates */
        int64_t j = (int64_t)hl_rng_below(&r, (uint64_t)c + 1);
        int32_t t = code[c];
        code[c] = code[j];
        code[j] = t;
    }
    for (int64_t c = 0; c < C; c++) code[c] |= (int32_t)(hl_rng_next(&r) >> 63);
}
