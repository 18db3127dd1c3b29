/* checkpoint.c: training checkpoints as validated, checksummed GGUF files. */
#include "train/checkpoint.h"
#include "io/gguf.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/hash.h"

#include <stdio.h>
#include <string.h>


static uint64_t state_checksum(const hl_checkpoint_state *st, const char *config, int64_t adam_t, int32_t n) {
    uint64_t h = HL_FNV1A_BASIS;
    h = hl_fnv1a(h, &st->step, sizeof st->step);
    h = hl_fnv1a(h, &st->tokens, sizeof st->tokens);
    h = hl_fnv1a(h, &st->cursor.epoch, sizeof st->cursor.epoch);
    h = hl_fnv1a(h, &st->cursor.index, sizeof st->cursor.index);
    h = hl_fnv1a(h, st->rng.s, sizeof st->rng.s);
    h = hl_fnv1a(h, &st->base_fingerprint, sizeof st->base_fingerprint);
    h = hl_fnv1a(h, &adam_t, sizeof adam_t);
    h = hl_fnv1a(h, &n, sizeof n);
    h = hl_fnv1a(h, config, strlen(config));
    return h;
}

hl_status hl_checkpoint_save(const char *path, const hl_trainer *tr, const hl_adamw *opt,
                             const hl_checkpoint_state *st, hl_error *err) {
    int32_t n = hl_trainer_n_params(tr);
    if (opt->n != n) return hl_fail(err, HL_ERR_INVALID_ARG, "checkpoint: optimizer does not match the trainer");
    hl_gguf_writer *w = hl_gguf_writer_init();
    if (!w) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    uint64_t sum = state_checksum(st, st->config, opt->t, n);
    hl_status s = HL_OK;
    char name[160];
    static const char *suffix[3] = {"", ".adam_m", ".adam_v"};
    for (int32_t i = 0; s == HL_OK && i < n; i++) {
        hl_param p = hl_trainer_param(tr, i);
        const float *data[3] = {p.value, opt->m[i], opt->v[i]};
        int64_t ne[2] = {p.ne0, p.ne1};
        for (int k = 0; k < 3 && s == HL_OK; k++) {
            snprintf(name, sizeof name, "%s%s", p.name, suffix[k]);
            sum = hl_fnv1a(sum, data[k], (size_t)p.n * sizeof(float));
            s = hl_gguf_writer_add_tensor(w, name, HL_TYPE_F32, p.ne1 > 1 ? 2 : 1, ne, data[k], err);
        }
    }
    uint64_t rng_state[4];
    memcpy(rng_state, st->rng.s, sizeof rng_state);
#define KV(call) if (s == HL_OK && (s = (call)) != HL_OK) hl_fail(err, s, "%s: cannot set checkpoint metadata", path)
    KV(hl_gguf_writer_set_str(w, "general.architecture", "llama"));
    KV(hl_gguf_writer_set_str(w, "general.type", "hyperlora.checkpoint"));
    KV(hl_gguf_writer_set_u32(w, "hyperlora.checkpoint.version", HL_CHECKPOINT_VERSION));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.step", (uint64_t)st->step));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.tokens", (uint64_t)st->tokens));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.epoch", st->cursor.epoch));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.index", st->cursor.index));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.adam_t", (uint64_t)opt->t));
    KV(hl_gguf_writer_set_arr(w, "hyperlora.checkpoint.rng", HL_GGUF_UINT64, rng_state, 4));
    KV(hl_gguf_writer_set_str(w, "hyperlora.checkpoint.config", st->config));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.base.fingerprint", st->base_fingerprint));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.checksum", sum));
#undef KV
    if (s == HL_OK) s = hl_gguf_writer_write_file(w, path, err);
    hl_gguf_writer_free(w);
    return s;
}

static hl_status get_u64(const hl_gguf *g, const char *path, const char *key, uint64_t *out, hl_error *err) {
    int64_t i = hl_gguf_find_key(g, key);
    double d;
    int64_t v;
    if (i < 0 || hl_gguf_kv_type_of(g, i) != HL_GGUF_UINT64 || !hl_gguf_kv_scalar(g, i, &d, &v))
        return hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint field %s is missing or not a uint64", path, key);
    *out = (uint64_t)v;
    return HL_OK;
}

hl_status hl_checkpoint_load(const char *path, hl_trainer *tr, hl_adamw *opt, hl_checkpoint_state *st,
                             char **config_out, hl_error *err) {
    *config_out = NULL;
    hl_gguf *g = NULL;
    hl_status s = hl_gguf_open(path, &g, err);
    if (s != HL_OK) return s;
    hl_gguf_str str, cfg;
    uint32_t version = 0;
    uint64_t step = 0, tokens = 0, epoch = 0, index = 0, adam_t = 0, fp = 0, sum = 0, n_rng = 0;
    hl_gguf_kv_type et;
    char *config = NULL;
    int32_t n = hl_trainer_n_params(tr);
    if (hl_gguf_get_str(g, "general.type", &str, NULL) != HL_OK || str.len != 20 ||
        memcmp(str.data, "hyperlora.checkpoint", 20) != 0) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: not a hyperlora training checkpoint", path);
        goto done;
    }
    if ((s = hl_gguf_get_u32(g, "hyperlora.checkpoint.version", &version, err))) goto done;
    if (version != HL_CHECKPOINT_VERSION) {
        s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: checkpoint version %u (this build reads %d)", path, version,
                    HL_CHECKPOINT_VERSION);
        goto done;
    }
    if ((s = get_u64(g, path, "hyperlora.checkpoint.step", &step, err)) ||
        (s = get_u64(g, path, "hyperlora.checkpoint.tokens", &tokens, err)) ||
        (s = get_u64(g, path, "hyperlora.checkpoint.epoch", &epoch, err)) ||
        (s = get_u64(g, path, "hyperlora.checkpoint.index", &index, err)) ||
        (s = get_u64(g, path, "hyperlora.checkpoint.adam_t", &adam_t, err)) ||
        (s = get_u64(g, path, "hyperlora.base.fingerprint", &fp, err)) ||
        (s = get_u64(g, path, "hyperlora.checkpoint.checksum", &sum, err)))
        goto done;
    if (hl_gguf_get_arr(g, "hyperlora.checkpoint.rng", &et, &n_rng, NULL) != HL_OK || et != HL_GGUF_UINT64 ||
        n_rng != 4 || hl_gguf_get_str(g, "hyperlora.checkpoint.config", &cfg, NULL) != HL_OK) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint rng or config missing or ill-typed", path);
        goto done;
    }
    if (!(config = hl_strndup(cfg.data, cfg.len))) {
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    hl_checkpoint_state loaded = {.step = (int64_t)step, .tokens = (int64_t)tokens, .cursor = {epoch, index},
                                  .base_fingerprint = fp};
    memcpy(loaded.rng.s, hl_gguf_arr_data(g, hl_gguf_find_key(g, "hyperlora.checkpoint.rng")), sizeof loaded.rng.s);
    if (hl_gguf_n_tensors(g) != 3 * (int64_t)n) {
        s = hl_fail(err, HL_ERR_MISMATCH, "%s: checkpoint holds %lld tensors, this run trains %d (x3)", path,
                    (long long)hl_gguf_n_tensors(g), n);
        goto done;
    }
    /* Verify everything before touching the trainer: a bad file changes nothing. */
    uint64_t check = state_checksum(&loaded, config, (int64_t)adam_t, n);
    static const char *suffix[3] = {"", ".adam_m", ".adam_v"};
    const hl_gguf_tensor *found[3];
    char name[160];
    for (int32_t i = 0; s == HL_OK && i < n; i++) {
        hl_param p = hl_trainer_param(tr, i);
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "%s%s", p.name, suffix[k]);
            int64_t ti = hl_gguf_find_tensor(g, name);
            const hl_gguf_tensor *t = ti >= 0 ? hl_gguf_tensor_at(g, ti) : NULL;
            if (!t || t->type != HL_TYPE_F32 || t->ne[0] != p.ne0 || (t->n_dims > 1 ? t->ne[1] : 1) != p.ne1) {
                s = hl_fail(err, HL_ERR_MISMATCH, "%s: tensor %s is missing or shaped differently from this run", path,
                            name);
                break;
            }
            found[k] = t;
            check = hl_fnv1a(check, t->data, (size_t)t->nbytes);
        }
    }
    if (s == HL_OK && check != sum) s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint checksum mismatch (corrupt file)", path);
    for (int32_t i = 0; s == HL_OK && i < n; i++) {
        hl_param p = hl_trainer_param(tr, i);
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "%s%s", p.name, suffix[k]);
            found[k] = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, name));
        }
        memcpy(p.value, found[0]->data, (size_t)p.n * sizeof(float));
        memcpy(opt->m[i], found[1]->data, (size_t)p.n * sizeof(float));
        memcpy(opt->v[i], found[2]->data, (size_t)p.n * sizeof(float));
    }
    if (s == HL_OK) {
        opt->t = (int64_t)adam_t;
        *st = loaded;
        *config_out = config;
        config = NULL;
    }
done:
    hl_free(config);
    hl_gguf_free(g);
    return s;
}
