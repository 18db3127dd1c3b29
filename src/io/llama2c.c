/* llama2c.c: validated, zero-copy reading of llama2.c checkpoints. */
#include "io/llama2c.h"
#include "util/checked.h"
#include "util/error.h"

#include <string.h>

static int in_range(int32_t v, int32_t lo, int32_t hi) { return v >= lo && v <= hi; }

hl_status hl_llama2c_open_memory(const void *data, size_t size, const char *name, hl_llama2c *out, hl_error *err) {
    memset(out, 0, sizeof *out);
    if (size < 7 * sizeof(int32_t))
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: neither a GGUF file nor a llama2.c checkpoint (%zu bytes, too short for the header)", name,
                       size);
    int32_t h[7];
    memcpy(h, data, sizeof h);
    static const char *fields[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    int32_t vocab = h[5] < 0 ? (h[5] == INT32_MIN ? 0 : -h[5]) : h[5];
    int32_t caps[7] = {HL_LLAMA2C_MAX_DIM, HL_LLAMA2C_MAX_DIM * 8, HL_LLAMA2C_MAX_LAYERS, HL_LLAMA2C_MAX_DIM,
                       HL_LLAMA2C_MAX_DIM, HL_LLAMA2C_MAX_VOCAB, HL_LLAMA2C_MAX_SEQ};
    for (int i = 0; i < 7; i++) {
        int32_t v = i == 5 ? vocab : h[i];
        if (!in_range(v, 1, caps[i]))
            return hl_fail(err, HL_ERR_FORMAT,
                           "%s: neither a GGUF file nor a llama2.c checkpoint (as llama2.c, header field %s = %d is "
                           "out of range [1, %d])",
                           name, fields[i], h[i], caps[i]);
    }
    hl_model_config c = {.dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3], .n_kv_heads = h[4],
                         .vocab_size = vocab, .seq_len = h[6], .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    if (c.dim % c.n_heads != 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", name, c.dim, c.n_heads);
    if (c.n_heads % c.n_kv_heads != 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", name, c.n_heads,
                       c.n_kv_heads);
    int32_t D = c.dim / c.n_heads;
    if (D % 2 != 0) return hl_fail(err, HL_ERR_FORMAT, "%s: head size %d is odd (RoPE needs pairs)", name, D);
    out->shared_classifier = h[5] > 0;
    c.tied_output = out->shared_classifier;

    /* Element counts, all checked: sizes come from the file. */
    uint64_t C = (uint64_t)c.dim, F = (uint64_t)c.hidden_dim, L = (uint64_t)c.n_layers, V = (uint64_t)vocab;
    uint64_t kv = (uint64_t)c.n_kv_heads * (uint64_t)D, S = (uint64_t)c.seq_len;
    uint64_t n[14];
    int ok = hl_mul_u64(V, C, &n[0]) && hl_mul_u64(L, C, &n[1]) && hl_mul_u64(L * C, C, &n[2]) &&
             hl_mul_u64(L * C, kv, &n[3]) && hl_mul_u64(L * C, kv, &n[4]) && hl_mul_u64(L * C, C, &n[5]) &&
             hl_mul_u64(L, C, &n[6]) && hl_mul_u64(L * C, F, &n[7]) && hl_mul_u64(L * C, F, &n[8]) &&
             hl_mul_u64(L * C, F, &n[9]);
    n[10] = C;
    ok = ok && hl_mul_u64(S, (uint64_t)D / 2, &n[11]);
    n[12] = n[11];
    n[13] = out->shared_classifier ? 0 : n[0];
    uint64_t total = 0;
    for (int i = 0; ok && i < 14; i++) ok = hl_add_u64(total, n[i], &total);
    uint64_t bytes;
    if (!ok || !hl_mul_u64(total, 4, &bytes) || !hl_add_u64(bytes, 28, &bytes))
        return hl_fail(err, HL_ERR_FORMAT, "%s: header implies a size that overflows", name);
    if (bytes != size)
        return hl_fail(err, HL_ERR_FORMAT, "%s: header implies %llu bytes but the file has %zu", name,
                       (unsigned long long)bytes, size);
    /* The f32 data start at byte 28: fine for x86 unaligned float access via memcpy-free
     * loads; mmap bases are page-aligned so the data are 4-byte aligned. */
    const float *p = (const float *)((const uint8_t *)data + 28);
    const float **dst[12] = {&out->token_embd, &out->rms_att, &out->wq, &out->wk, &out->wv, &out->wo,
                             &out->rms_ffn, &out->w1, &out->w2, &out->w3, &out->rms_final, NULL};
    for (int i = 0; i < 11; i++) {
        *dst[i] = p;
        p += n[i];
    }
    p += n[11] + n[12]; /* freq_cis: recomputed by the RoPE kernel */
    out->wcls = out->shared_classifier ? out->token_embd : p;
    out->cfg = c;
    return HL_OK;
}

hl_status hl_llama2c_open(const char *path, hl_llama2c *out, hl_error *err) {
    hl_mapped_file map;
    hl_status s = hl_map_file(path, &map, err);
    if (s != HL_OK) return s;
    s = hl_llama2c_open_memory(map.data, map.size, path, out, err);
    if (s != HL_OK) {
        hl_unmap_file(&map);
        return s;
    }
    out->map = map;
    out->owns_map = 1;
    return HL_OK;
}

void hl_llama2c_close(hl_llama2c *c) {
    if (c->owns_map) hl_unmap_file(&c->map);
    memset(c, 0, sizeof *c);
}
