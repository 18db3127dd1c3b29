/* checkpoint.c: training checkpoints as validated, checksummed GGUF files. */
#include "train/checkpoint.h"
#include "io/gguf.h"
#include "lora/adapter_io.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static const char *suffix[6] = {"lora_a", "lora_b", "adam_m_a", "adam_v_a", "adam_m_b", "adam_v_b"};

static void fnv(uint64_t *h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) *h = (*h ^ p[i]) * 0x100000001b3ULL;
}

static uint64_t state_checksum(const hl_checkpoint_state *st, uint32_t n_weights) {
    uint64_t h = 0xcbf29ce484222325ULL;
    fnv(&h, &st->step, sizeof st->step);
    fnv(&h, &st->tokens, sizeof st->tokens);
    fnv(&h, &st->cursor.epoch, sizeof st->cursor.epoch);
    fnv(&h, &st->cursor.index, sizeof st->cursor.index);
    fnv(&h, st->rng.s, sizeof st->rng.s);
    fnv(&h, &n_weights, sizeof n_weights);
    fnv(&h, st->config, strlen(st->config));
    return h;
}

hl_status hl_checkpoint_save(const char *path, const hl_adapter *a, const hl_adamw *opt,
                             const hl_checkpoint_state *st, hl_error *err) {
    if (opt->n != 2 * a->n_weights)
        return hl_fail(err, HL_ERR_INVALID_ARG, "checkpoint: optimizer does not match the adapter");
    hl_gguf_writer *w = hl_gguf_writer_init();
    float *alphas = hl_malloc_array((size_t)a->n_weights, sizeof(float));
    if (!w || !alphas) {
        hl_gguf_writer_free(w);
        hl_free(alphas);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    uint64_t sum = state_checksum(st, (uint32_t)a->n_weights);
    hl_status s = HL_OK;
    char name[256], base[128];
    for (int32_t i = 0; s == HL_OK && i < a->n_weights; i++) {
        const hl_lora_weight *lw = &a->w[i];
        alphas[i] = lw->alpha;
        hl_model_tensor_name(lw->layer, lw->target, base, sizeof base);
        const float *data[6] = {lw->A, lw->B, opt->m[2 * i], opt->v[2 * i], opt->m[2 * i + 1], opt->v[2 * i + 1]};
        for (int k = 0; k < 6 && s == HL_OK; k++) {
            int is_b = k == 1 || k >= 4;
            int64_t ne[2] = {is_b ? lw->rank : lw->n_in, is_b ? lw->n_out : lw->rank};
            snprintf(name, sizeof name, "%s.%s", base, suffix[k]);
            fnv(&sum, data[k], (size_t)(ne[0] * ne[1]) * sizeof(float));
            s = hl_gguf_writer_add_tensor(w, name, HL_TYPE_F32, 2, ne, data[k], err);
        }
    }
    fnv(&sum, alphas, (size_t)a->n_weights * sizeof(float));
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
    KV(hl_gguf_writer_set_str(w, "hyperlora.adapter.name", a->name ? a->name : "adapter"));
    KV(hl_gguf_writer_set_f32(w, "hyperlora.adapter.alpha", a->alpha));
    KV(hl_gguf_writer_set_bool(w, "hyperlora.adapter.rslora", a->rslora));
    KV(hl_gguf_writer_set_arr(w, "hyperlora.adapter.alphas", HL_GGUF_FLOAT32, alphas, (uint64_t)a->n_weights));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.base.fingerprint", a->base_fingerprint));
    KV(hl_gguf_writer_set_u64(w, "hyperlora.checkpoint.checksum", sum));
#undef KV
    if (s == HL_OK) s = hl_gguf_writer_write_file(w, path, err);
    hl_gguf_writer_free(w);
    hl_free(alphas);
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

hl_status hl_checkpoint_load(const char *path, const hl_model *m, hl_adapter **adapter, hl_adamw *opt,
                             hl_checkpoint_state *st, char **config_out, hl_error *err) {
    *adapter = NULL;
    *config_out = NULL;
    memset(opt, 0, sizeof *opt);
    hl_gguf *g = NULL;
    hl_status s = hl_gguf_open(path, &g, err);
    if (s != HL_OK) return s;
    hl_adapter *a = NULL;
    hl_gguf_str str;
    uint32_t version = 0;
    uint64_t step, tokens, epoch, index, adam_t, fp, sum;
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
    hl_gguf_kv_type et;
    uint64_t n_rng = 0, n_alpha = 0;
    hl_gguf_str cfg;
    if (hl_gguf_get_arr(g, "hyperlora.checkpoint.rng", &et, &n_rng, NULL) != HL_OK || et != HL_GGUF_UINT64 || n_rng != 4 ||
        hl_gguf_get_arr(g, "hyperlora.adapter.alphas", &et, &n_alpha, NULL) != HL_OK || et != HL_GGUF_FLOAT32 ||
        hl_gguf_get_str(g, "hyperlora.checkpoint.config", &cfg, NULL) != HL_OK) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint rng, alphas or config missing or ill-typed", path);
        goto done;
    }
    if (fp != m->fingerprint) {
        s = hl_fail(err, HL_ERR_MISMATCH, "%s: checkpoint was made on another base model", path);
        goto done;
    }
    float alpha = 0;
    int rslora = 0;
    if ((s = hl_gguf_get_f32(g, "hyperlora.adapter.alpha", &alpha, err)) ||
        (s = hl_gguf_get_bool(g, "hyperlora.adapter.rslora", &rslora, err)))
        goto done;
    hl_gguf_str an;
    char aname[201] = "adapter";
    if (hl_gguf_get_str(g, "hyperlora.adapter.name", &an, NULL) == HL_OK)
        snprintf(aname, sizeof aname, "%.*s", (int)(an.len > 200 ? 200 : an.len), an.data);
    if ((s = hl_adapter_new(m, aname, alpha, rslora, &a, err))) goto done;
    int64_t nt = hl_gguf_n_tensors(g);
    if (nt % 6 != 0 || (uint64_t)(nt / 6) != n_alpha || n_alpha == 0) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint has %lld tensors for %llu weights", path, (long long)nt,
                    (unsigned long long)n_alpha);
        goto done;
    }
    const float *alphas_raw = hl_gguf_arr_data(g, hl_gguf_find_key(g, "hyperlora.adapter.alphas"));
    hl_checkpoint_state tmp_state = {.step = (int64_t)step, .tokens = (int64_t)tokens,
                                     .cursor = {epoch, index}};
    const void *rng_raw = hl_gguf_arr_data(g, hl_gguf_find_key(g, "hyperlora.checkpoint.rng"));
    memcpy(tmp_state.rng.s, rng_raw, sizeof tmp_state.rng.s);
    char *config = hl_strndup(cfg.data, cfg.len);
    if (!config) {
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    tmp_state.config = config;
    uint64_t check = state_checksum(&tmp_state, (uint32_t)n_alpha);
    float *alphas = hl_malloc_array((size_t)n_alpha, sizeof(float));
    if (!alphas) {
        hl_free(config);
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(alphas, alphas_raw, (size_t)n_alpha * sizeof(float));
    /* Tensors come in groups of six per weight: A, B, then the moments. */
    for (int64_t i = 0; s == HL_OK && i < nt; i += 6) {
        const hl_gguf_tensor *ta = hl_gguf_tensor_at(g, i), *tb = hl_gguf_tensor_at(g, i + 1);
        size_t blen = ta->name.len > 7 ? (size_t)ta->name.len - 7 : 0;
        int layer, target;
        if (ta->n_dims != 2 || tb->n_dims != 2 || ta->type != HL_TYPE_F32 || tb->type != HL_TYPE_F32 ||
            !hl_adapter_parse_base_name(ta->name.data, blen, &layer, &target) || ta->ne[1] != tb->ne[0]) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint tensor %lld is not a LoRA weight", path, (long long)i);
            break;
        }
        if ((s = hl_adapter_add(a, m, layer, target, (int)ta->ne[1], alphas[i / 6], ta->data, tb->data, err))) break;
        hl_lora_weight *w = &a->w[a->n_weights - 1];
        if (w->n_in != ta->ne[0] || w->n_out != tb->ne[1]) {
            s = hl_fail(err, HL_ERR_MISMATCH, "%s: checkpoint weight %lld does not fit the model", path, (long long)i / 6);
            break;
        }
        for (int k = 0; k < 6; k++) {
            const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i + k);
            int is_b = k == 1 || k >= 4;
            int64_t want0 = is_b ? w->rank : w->n_in, want1 = is_b ? w->n_out : w->rank;
            if (t->n_dims != 2 || t->type != HL_TYPE_F32 || t->ne[0] != want0 || t->ne[1] != want1) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint tensor %.*s has the wrong shape", path,
                            (int)t->name.len, t->name.data);
                break;
            }
            fnv(&check, t->data, (size_t)t->nbytes);
        }
    }
    if (s == HL_OK) {
        fnv(&check, alphas, (size_t)n_alpha * sizeof(float));
        if (check != sum) s = hl_fail(err, HL_ERR_FORMAT, "%s: checkpoint checksum mismatch (corrupt file)", path);
    }
    hl_free(alphas);
    if (s == HL_OK) s = hl_adapter_index(a, err);
    if (s == HL_OK) {
        /* Optimizer moments, in parameter order (A0, B0, A1, B1, ...). */
        opt->n = 2 * a->n_weights;
        opt->t = (int64_t)adam_t;
        opt->m = hl_calloc((size_t)opt->n, sizeof *opt->m);
        opt->v = hl_calloc((size_t)opt->n, sizeof *opt->v);
        opt->len = hl_calloc((size_t)opt->n, sizeof *opt->len);
        if (!opt->m || !opt->v || !opt->len) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; s == HL_OK && i < a->n_weights; i++)
            for (int part = 0; part < 2 && s == HL_OK; part++) {
                int32_t p = 2 * i + part;
                const hl_gguf_tensor *tm = hl_gguf_tensor_at(g, 6 * i + (part ? 4 : 2));
                const hl_gguf_tensor *tv = hl_gguf_tensor_at(g, 6 * i + (part ? 5 : 3));
                opt->len[p] = (int64_t)(tm->nbytes / sizeof(float));
                opt->m[p] = hl_malloc(tm->nbytes);
                opt->v[p] = hl_malloc(tv->nbytes);
                if (!opt->m[p] || !opt->v[p]) {
                    s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                    break;
                }
                memcpy(opt->m[p], tm->data, tm->nbytes);
                memcpy(opt->v[p], tv->data, tv->nbytes);
            }
    }
    if (s == HL_OK) {
        *st = tmp_state;
        st->config = NULL;
        *config_out = config;
    } else {
        hl_free(config);
        hl_adamw_free(opt);
    }
done:
    hl_gguf_free(g);
    if (s != HL_OK) {
        hl_adapter_free(a);
        return s;
    }
    *adapter = a;
    return HL_OK;
}
