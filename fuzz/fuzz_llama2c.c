/* fuzz_llama2c.c: libFuzzer target for hl_llama2c_open_memory on arbitrary
 * bytes. The input is copied into a 64-byte-aligned buffer first, as an mmap
 * would be page-aligned (libFuzzer's own buffer has no alignment promise).
 * A refused input must come back with a status, a message naming the input
 * and a zeroed struct. An accepted one must have a sane config, and every
 * view must lie inside the buffer at the offset the documented layout gives
 * (recomputed here independently); the first and last float of every view
 * are read, so ASan catches any view that runs past the end. */
#include "hyperlora.h"
#include "io/llama2c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#define NAME "fuzz.bin"

static volatile float sink;

/* Reads the first and last of n floats at p and checks they lie in [lo, hi). */
static void touch(const float *p, uint64_t n, const uint8_t *lo, const uint8_t *hi) {
    ASSERT(p != NULL && n > 0);
    ASSERT((const uint8_t *)p >= lo && (const uint8_t *)(p + n) <= hi);
    sink = p[0];
    sink = p[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    hl_llama2c c;
    hl_error err;
    memset(&err, 0x55, sizeof err); /* a message must be written, and terminated */
    hl_status s = hl_llama2c_open_memory(buf, size, NAME, &c, &err);
    if (s != HL_OK) {
        ASSERT(s == HL_ERR_FORMAT);
        ASSERT(memchr(err.msg, 0, sizeof err.msg) && strncmp(err.msg, NAME, strlen(NAME)) == 0);
        ASSERT(c.token_embd == NULL && c.wcls == NULL && c.owns_map == 0);
        free(buf);
        return 0;
    }
    const hl_model_config *k = &c.cfg;
    ASSERT(k->dim >= 1 && k->hidden_dim >= 1 && k->n_layers >= 1 && k->n_heads >= 1 && k->n_kv_heads >= 1);
    ASSERT(k->vocab_size >= 1 && k->seq_len >= 1);
    ASSERT(k->dim % k->n_heads == 0 && k->n_heads % k->n_kv_heads == 0 && (k->dim / k->n_heads) % 2 == 0);
    ASSERT(c.shared_classifier == k->tied_output && !c.owns_map);
    uint64_t C = (uint64_t)k->dim, F = (uint64_t)k->hidden_dim, L = (uint64_t)k->n_layers, V = (uint64_t)k->vocab_size;
    uint64_t D = C / (uint64_t)k->n_heads, KV = (uint64_t)k->n_kv_heads * D, S = (uint64_t)k->seq_len;
    /* The size check passed, so none of these overflow (the file is at most max_len bytes). */
    const float *views[11] = {c.token_embd, c.rms_att, c.wq, c.wk, c.wv, c.wo, c.rms_ffn, c.w1, c.w2, c.w3, c.rms_final};
    uint64_t n[11] = {V * C, L * C, L * C * C, L * KV * C, L * KV * C, L * C * C, L * C, L * F * C, L * C * F,
                      L * F * C, C};
    const uint8_t *lo = buf + 28, *hi = buf + size;
    const float *expect = (const float *)lo;
    for (int i = 0; i < 11; i++) {
        ASSERT(views[i] == expect); /* in order, back to back */
        touch(views[i], n[i], lo, hi);
        expect += n[i];
    }
    expect += 2 * S * (D / 2); /* freq_cis real and imaginary */
    if (c.shared_classifier) {
        ASSERT(c.wcls == c.token_embd);
        ASSERT((const uint8_t *)expect == hi);
    } else {
        ASSERT(c.wcls == expect);
        touch(c.wcls, V * C, lo, hi);
        ASSERT((const uint8_t *)(expect + V * C) == hi);
    }
    hl_llama2c_close(&c);
    free(buf);
    return 0;
}
