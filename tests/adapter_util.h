/* adapter_util.h: comparing adapters in tests, bit for bit. */
#ifndef HL_TEST_ADAPTER_UTIL_H
#define HL_TEST_ADAPTER_UTIL_H
#include "lora/adapter.h"
#include <string.h>

/* 1 when a and b hold the same weights, in the same order, to the bit. */
static inline int same_weights(const hl_adapter *a, const hl_adapter *b) {
    if (a->n_weights != b->n_weights) return 0;
    for (int32_t i = 0; i < a->n_weights; i++) {
        const hl_lora_weight *x = &a->w[i], *y = &b->w[i];
        if (x->rank != y->rank || x->n_in != y->n_in || x->n_out != y->n_out ||
            memcmp(x->A, y->A, (size_t)(x->rank * x->n_in) * sizeof(float)) ||
            memcmp(x->B, y->B, (size_t)(x->n_out * x->rank) * sizeof(float)))
            return 0;
    }
    return 1;
}
#endif
