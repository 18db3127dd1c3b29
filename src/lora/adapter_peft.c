/* adapter_peft.c: Hugging Face PEFT adapters (adapter_model.safetensors +
 * adapter_config.json), read and written.
 *
 * Module names: HF Llama ("base_model.model.model.layers.N.self_attn.q_proj",
 * "...mlp.gate_proj", "base_model.model.lm_head") or llama2.c's model.py
 * ("base_model.model.layers.N.attention.wq", "...feed_forward.w1",
 * "base_model.model.output"). HF Llama rotates the two halves of each head
 * where GGUF rotates adjacent pairs, so the rows of q/k lora_B are permuted
 * on the way in and back on the way out; llama2.c names need no permutation.
 * Qwen2/Qwen3 (the same HF module names) rotate the halves in GGUF too
 * (llama.cpp's NEOX RoPE), so their rows are never permuted, as llama.cpp's
 * converters leave them.
 * rank_pattern / alpha_pattern keys match a module whose name ends with
 * ".KEY" (or equals KEY), PEFT's rule for plain keys; regex keys are not
 * interpreted. */
#include "lora/adapter_io.h"
#include "io/safetensors.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/json_nul.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX (4u << 20)

static const char *hf_modules[HL_TARGET_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                  "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                  "mlp.down_proj",    "lm_head"};
static const char *l2c_modules[HL_TARGET_COUNT] = {"attention.wq",    "attention.wk",    "attention.wv",
                                                   "attention.wo",    "feed_forward.w1", "feed_forward.w3",
                                                   "feed_forward.w2", "output"};

/* Parses a PEFT tensor name into (layer, target, is_B, hf_naming) and its module name. */
static int parse_peft_name(const char *name, int *layer, int *target, int *is_b, int *hf, char *module,
                           size_t module_cap) {
    const char *p = name;
    const char *prefix = "base_model.model.";
    if (strncmp(p, prefix, strlen(prefix)) != 0) return 0;
    p += strlen(prefix);
    size_t n = strlen(p);
    const char *suffixes[2] = {".lora_A.weight", ".lora_B.weight"};
    int which = -1;
    for (int k = 0; k < 2; k++) {
        size_t sl = strlen(suffixes[k]);
        if (n > sl && !strcmp(p + n - sl, suffixes[k])) {
            which = k;
            n -= sl;
        }
    }
    if (which < 0 || n + 1 > module_cap) return 0;
    memcpy(module, p, n);
    module[n] = 0;
    *is_b = which;
    if (!strcmp(module, "lm_head") || !strcmp(module, "output")) {
        *layer = -1;
        *target = HL_TARGET_OUTPUT;
        *hf = !strcmp(module, "lm_head");
        return 1;
    }
    const char *q = module;
    *hf = !strncmp(q, "model.layers.", 13);
    if (*hf) q += 13;
    else if (!strncmp(q, "layers.", 7)) q += 7;
    else return 0;
    long l = 0;
    if (*q < '0' || *q > '9') return 0;
    while (*q >= '0' && *q <= '9') {
        l = l * 10 + (*q++ - '0');
        if (l > 100000) return 0;
    }
    if (*q++ != '.') return 0;
    const char **table = *hf ? hf_modules : l2c_modules;
    for (int t = 0; t < HL_TARGET_OUTPUT; t++)
        if (!strcmp(q, table[t])) {
            *layer = (int)l;
            *target = t;
            return 1;
        }
    return 0;
}

/* PEFT pattern rule for plain keys: the module name equals KEY or ends with ".KEY". */
static const cJSON *match_pattern(const cJSON *pattern, const char *module) {
    if (!cJSON_IsObject(pattern)) return NULL;
    size_t ml = strlen(module);
    for (const cJSON *it = pattern->child; it; it = it->next) {
        size_t kl = strlen(it->string);
        if (kl == 0 || kl > ml) continue;
        if (!strcmp(module + ml - kl, it->string) && (kl == ml || module[ml - kl - 1] == '.')) return it;
    }
    return NULL;
}

/* GGUF row r of a head-interleaved projection <- HF row. D = rows per head. */
static void permute_rows(float *dst, const float *src, int64_t rows, int64_t cols, int64_t n_heads, int to_gguf) {
    int64_t D = rows / n_heads, half = D / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t part = 0; part < 2; part++) {
                int64_t g = h * D + 2 * i + part, f = h * D + part * half + i;
                const float *s = src + (to_gguf ? f : g) * cols;
                float *d = dst + (to_gguf ? g : f) * cols;
                memcpy(d, s, (size_t)cols * sizeof(float));
            }
}

static hl_status resolve_paths(const char *path, char *st_path, char *cfg_path, size_t cap, hl_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        snprintf(st_path, cap, "%s/adapter_model.safetensors", path);
        snprintf(cfg_path, cap, "%s/adapter_config.json", path);
    } else {
        snprintf(st_path, cap, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(cfg_path, cap, "%.*s/adapter_config.json", (int)(slash - path), path);
        else snprintf(cfg_path, cap, "adapter_config.json");
    }
    return HL_OK;
}

static hl_status json_number(const cJSON *item, const char *file, const char *field, double lo, double hi, double *out,
                             hl_error *err) {
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < lo || item->valuedouble > hi)
        return hl_fail(err, HL_ERR_FORMAT, "%s: \"%s\" must be a number in [%g, %g]", file, field, lo, hi);
    *out = item->valuedouble;
    return HL_OK;
}

/* A rank: a whole number in [lo, hi] (8.5 is refused, not read as 8). */
static hl_status json_integer(const cJSON *item, const char *file, const char *field, double lo, double hi,
                              double *out, hl_error *err) {
    hl_status s = json_number(item, file, field, lo, hi, out, err);
    if (s == HL_OK && *out != floor(*out))
        return hl_fail(err, HL_ERR_FORMAT, "%s: \"%s\" must be a whole number, not %g", file, field, *out);
    return s;
}

hl_status hl_adapter_load_peft(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err) {
    *out = NULL;
    char st_path[4096], cfg_path[4096];
    hl_status s = resolve_paths(path, st_path, cfg_path, sizeof st_path, err);
    if (s != HL_OK) return s;
    char *text = NULL;
    cJSON *cfg = NULL;
    hl_safetensors *st = NULL;
    hl_adapter *a = NULL;
    float *tmp = NULL;
    size_t text_len = 0;
    if ((s = hl_read_file(cfg_path, CONFIG_MAX, &text, &text_len, err)) != HL_OK) goto done;
    int64_t nul_at = hl_json_find_nul_escape(text, text_len);
    if (nul_at >= 0) { /* cJSON would cut the string there: "LORA\u0000junk" would read as "LORA" */
        s = hl_fail(err, HL_ERR_FORMAT, "%s: byte %lld: a string holds \\u0000 (a NUL character)", cfg_path,
                    (long long)nul_at);
        goto done;
    }
    cfg = cJSON_ParseWithLength(text, text_len);
    if (!cJSON_IsObject(cfg)) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: not a JSON object", cfg_path);
        goto done;
    }
    const cJSON *peft_type = cJSON_GetObjectItemCaseSensitive(cfg, "peft_type");
    if (peft_type && (!cJSON_IsString(peft_type) || strcmp(peft_type->valuestring, "LORA") != 0)) {
        s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: peft_type must be \"LORA\"", cfg_path);
        goto done;
    }
    double r_default = 0, alpha_default = 8;
    if ((s = json_integer(cJSON_GetObjectItemCaseSensitive(cfg, "r"), cfg_path, "r", 1, 65536, &r_default, err)))
        goto done;
    const cJSON *alpha_item = cJSON_GetObjectItemCaseSensitive(cfg, "lora_alpha");
    if (alpha_item && (s = json_number(alpha_item, cfg_path, "lora_alpha", -1e9, 1e9, &alpha_default, err))) goto done;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "use_rslora");
    if (rs && !cJSON_IsBool(rs)) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: \"use_rslora\" must be true or false", cfg_path);
        goto done;
    }
    const cJSON *fifo = cJSON_GetObjectItemCaseSensitive(cfg, "fan_in_fan_out");
    if (cJSON_IsTrue(fifo)) {
        s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: fan_in_fan_out adapters (Conv1D bases) are not supported", cfg_path);
        goto done;
    }
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(cfg, "bias");
    if (bias && (!cJSON_IsString(bias) || strcmp(bias->valuestring, "none") != 0)) {
        s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: bias must be \"none\" (Llama projections have no bias)", cfg_path);
        goto done;
    }
    const cJSON *rank_pattern = cJSON_GetObjectItemCaseSensitive(cfg, "rank_pattern");
    const cJSON *alpha_pattern = cJSON_GetObjectItemCaseSensitive(cfg, "alpha_pattern");
    if ((rank_pattern && !cJSON_IsObject(rank_pattern)) || (alpha_pattern && !cJSON_IsObject(alpha_pattern))) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: rank_pattern and alpha_pattern must be objects", cfg_path);
        goto done;
    }
    if ((s = hl_st_open(st_path, &st, err)) != HL_OK) goto done;
    if ((s = hl_adapter_new(m, NULL, (float)alpha_default, cJSON_IsTrue(rs), &a, err)) != HL_OK) goto done;
    const char *meta_name = hl_st_metadata(st, "hyperlora.name");
    const cJSON *base_name = cJSON_GetObjectItemCaseSensitive(cfg, "base_model_name_or_path");
    const char *nm = meta_name ? meta_name : (cJSON_IsString(base_name) ? "peft-adapter" : "peft-adapter");
    hl_free(a->name);
    char shown[HL_ESCAPE_NAME], shown2[HL_ESCAPE_NAME]; /* file-controlled names, escaped for messages */
    if (!(a->name = hl_strdup(hl_escape_str(nm, shown, sizeof shown)))) { /* a display name: kept escaped */
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *lexicon = hl_st_metadata(st, "hyperlora.lexicon.jsonl");
    if (lexicon && !(a->lexicon = hl_strdup(lexicon))) {
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *fp = hl_st_metadata(st, "hyperlora.base.fingerprint");
    if (fp) {
        char *end;
        unsigned long long v = strtoull(fp, &end, 16);
        if (*end || end == fp) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: hyperlora.base.fingerprint \"%s\" is not hex", st_path,
                        hl_escape(fp, strnlen(fp, 40), shown, sizeof shown));
            goto done;
        }
        a->base_fingerprint = v;
        if (v != m->fingerprint && !force) {
            s = hl_fail(err, HL_ERR_MISMATCH,
                        "%s: adapter was made for another base model (fingerprint %016llx, this model %016llx); "
                        "use --force to apply it anyway",
                        st_path, v, (unsigned long long)m->fingerprint);
            goto done;
        }
    } else a->has_fingerprint = 0;

    for (int64_t i = 0; i < hl_st_n_tensors(st); i++) {
        const hl_st_tensor *t = hl_st_tensor_at(st, i);
        if (strstr(t->name, "embed_tokens") || strstr(t->name, "lora_embedding") || strstr(t->name, "tok_embeddings")) {
            s = hl_fail(err, HL_ERR_UNSUPPORTED,
                        "%s: %s adapts the token embeddings, which are never adapted (they carry the frozen scene "
                        "vectors)",
                        st_path, hl_escape_str(t->name, shown, sizeof shown));
            goto done;
        }
        int layer, target, is_b, hf;
        char module[512];
        if (!parse_peft_name(t->name, &layer, &target, &is_b, &hf, module, sizeof module)) {
            s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: tensor %s is not a LoRA weight of an adaptable projection",
                        st_path, hl_escape_str(t->name, shown, sizeof shown));
            goto done;
        }
        if (is_b) continue; /* handled with its A */
        char bname[600];
        snprintf(bname, sizeof bname, "base_model.model.%s.lora_B.weight", module);
        const hl_st_tensor *tb = hl_st_find(st, bname);
        if (!tb) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: %s has no matching %s", st_path,
                        hl_escape_str(t->name, shown, sizeof shown), hl_escape_str(bname, shown2, sizeof shown2));
            goto done;
        }
        if (t->n_dims != 2 || tb->n_dims != 2 || t->shape[0] != tb->shape[1]) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: %s: lora_A and lora_B shapes do not chain (want A [r, in], B [out, r])",
                        st_path, hl_escape_str(module, shown, sizeof shown));
            goto done;
        }
        int64_t rank = t->shape[0], n_in = t->shape[1], n_out = tb->shape[0];
        int64_t rows, cols;
        if (target != HL_TARGET_OUTPUT && layer >= m->cfg.n_layers) {
            s = hl_fail(err, HL_ERR_MISMATCH, "%s: %s: the base has only %d layers", st_path,
                        hl_escape_str(module, shown, sizeof shown), m->cfg.n_layers);
            goto done;
        }
        hl_model_weight(m, layer, target, &rows, &cols);
        if (cols != n_in || rows != n_out) {
            s = hl_fail(err, HL_ERR_MISMATCH, "%s: %s: adapter maps %lld -> %lld but the base weight is %lld -> %lld",
                        st_path, hl_escape_str(module, shown, sizeof shown), (long long)n_in, (long long)n_out,
                        (long long)cols, (long long)rows);
            goto done;
        }
        const cJSON *rp = match_pattern(rank_pattern, module), *ap = match_pattern(alpha_pattern, module);
        double want_rank = r_default, alpha = alpha_default;
        if (rp && (s = json_integer(rp, cfg_path, "rank_pattern", 1, 65536, &want_rank, err))) goto done;
        if (ap && (s = json_number(ap, cfg_path, "alpha_pattern", -1e9, 1e9, &alpha, err))) goto done;
        if ((int64_t)want_rank != rank) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: %s has rank %lld but the config says %g", st_path,
                        hl_escape_str(module, shown, sizeof shown), (long long)rank, want_rank);
            goto done;
        }
        if ((s = hl_adapter_add(a, m, layer, target, (int)rank, (float)alpha, NULL, NULL, err))) goto done;
        hl_lora_weight *w = &a->w[a->n_weights - 1];
        if ((s = hl_st_read_f32(t, w->A, (uint64_t)(rank * n_in), err)) ||
            (s = hl_st_read_f32(tb, w->B, (uint64_t)(n_out * rank), err)))
            goto done;
        if (hf && !hl_cfg_rope_neox(&m->cfg) && (target == HL_TARGET_Q || target == HL_TARGET_K)) {
            int64_t heads = target == HL_TARGET_Q ? m->cfg.n_heads : m->cfg.n_kv_heads;
            hl_free(tmp);
            tmp = hl_malloc_array((size_t)(n_out * rank), sizeof(float));
            if (!tmp) {
                s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                goto done;
            }
            permute_rows(tmp, w->B, n_out, rank, heads, 1);
            memcpy(w->B, tmp, (size_t)(n_out * rank) * sizeof(float));
        }
    }
    if (a->n_weights == 0) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: no LoRA weights found", st_path);
        goto done;
    }
    s = hl_adapter_index(a, err);
done:
    hl_free(tmp);
    hl_free(text);
    cJSON_Delete(cfg);
    hl_st_free(st);
    if (s != HL_OK) {
        hl_adapter_free(a);
        return s;
    }
    *out = a;
    return HL_OK;
}

hl_status hl_adapter_save_peft(const hl_adapter *a, const hl_model *m, const char *dir, hl_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return hl_fail(err, HL_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (a->n_weights == 0) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: adapter has no weights", dir);
    /* The most common rank and alpha become r / lora_alpha; the rest go in the patterns. */
    int32_t r_mode = a->w[0].rank, best = 0;
    float alpha_mode = a->w[0].alpha;
    int best_a = 0;
    for (int32_t i = 0; i < a->n_weights; i++) {
        int cr = 0, ca = 0;
        for (int32_t j = 0; j < a->n_weights; j++) {
            cr += a->w[j].rank == a->w[i].rank;
            ca += a->w[j].alpha == a->w[i].alpha;
        }
        if (cr > best) { best = cr; r_mode = a->w[i].rank; }
        if (ca > best_a) { best_a = ca; alpha_mode = a->w[i].alpha; }
    }
    hl_st_writer *sw = hl_st_writer_init();
    cJSON *cfg = cJSON_CreateObject(), *targets = cJSON_CreateArray(), *rp = cJSON_CreateObject(),
          *ap = cJSON_CreateObject();
    float **permuted = hl_calloc((size_t)a->n_weights, sizeof *permuted);
    hl_status s = (sw && cfg && targets && rp && ap && permuted) ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "out of memory");
    int seen[HL_TARGET_COUNT] = {0};
    char names[2][600], module[256];
    for (int32_t i = 0; s == HL_OK && i < a->n_weights; i++) {
        const hl_lora_weight *w = &a->w[i];
        if (w->target == HL_TARGET_OUTPUT) snprintf(module, sizeof module, "lm_head");
        else snprintf(module, sizeof module, "model.layers.%d.%s", w->layer, hf_modules[w->target]);
        snprintf(names[0], sizeof names[0], "base_model.model.%s.lora_A.weight", module);
        snprintf(names[1], sizeof names[1], "base_model.model.%s.lora_B.weight", module);
        const float *B = w->B;
        if (!hl_cfg_rope_neox(&m->cfg) && (w->target == HL_TARGET_Q || w->target == HL_TARGET_K)) {
            int64_t heads = w->target == HL_TARGET_Q ? m->cfg.n_heads : m->cfg.n_kv_heads;
            permuted[i] = hl_malloc_array((size_t)(w->n_out * w->rank), sizeof(float));
            if (!permuted[i]) {
                s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                break;
            }
            permute_rows(permuted[i], w->B, w->n_out, w->rank, heads, 0);
            B = permuted[i];
        }
        int64_t sa[2] = {w->rank, w->n_in}, sb[2] = {w->n_out, w->rank};
        if ((s = hl_st_writer_add_f32(sw, names[0], 2, sa, w->A, err)) ||
            (s = hl_st_writer_add_f32(sw, names[1], 2, sb, B, err)))
            break;
        if (w->rank != r_mode) cJSON_AddNumberToObject(rp, module, w->rank);
        if (w->alpha != alpha_mode) cJSON_AddNumberToObject(ap, module, w->alpha);
        if (!seen[w->target]++) {
            const char *leaf = strrchr(hf_modules[w->target], '.');
            cJSON_AddItemToArray(targets, cJSON_CreateString(leaf ? leaf + 1 : hf_modules[w->target]));
        }
    }
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)a->base_fingerprint);
    if (s == HL_OK) {
        hl_st_writer_set_metadata(sw, "format", "pt");
        hl_st_writer_set_metadata(sw, "hyperlora.name", a->name ? a->name : "adapter");
        if (a->has_fingerprint) hl_st_writer_set_metadata(sw, "hyperlora.base.fingerprint", fp);
        if (a->lexicon) hl_st_writer_set_metadata(sw, "hyperlora.lexicon.jsonl", a->lexicon);
        cJSON_AddStringToObject(cfg, "peft_type", "LORA");
        cJSON_AddStringToObject(cfg, "task_type", "CAUSAL_LM");
        cJSON_AddStringToObject(cfg, "base_model_name_or_path", m->name ? m->name : "");
        cJSON_AddNumberToObject(cfg, "r", r_mode);
        cJSON_AddNumberToObject(cfg, "lora_alpha", alpha_mode);
        cJSON_AddNumberToObject(cfg, "lora_dropout", 0.0);
        cJSON_AddBoolToObject(cfg, "use_rslora", a->rslora);
        cJSON_AddBoolToObject(cfg, "fan_in_fan_out", 0);
        cJSON_AddStringToObject(cfg, "bias", "none");
        cJSON_AddBoolToObject(cfg, "inference_mode", 1);
        cJSON_AddItemToObject(cfg, "target_modules", targets);
        cJSON_AddItemToObject(cfg, "rank_pattern", rp);
        cJSON_AddItemToObject(cfg, "alpha_pattern", ap);
        targets = rp = ap = NULL;
        char path[4096];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        s = hl_st_writer_write_file(sw, path, err);
        char *json = s == HL_OK ? cJSON_Print(cfg) : NULL;
        if (s == HL_OK && !json) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        if (s == HL_OK) {
            snprintf(path, sizeof path, "%s/adapter_config.json", dir);
            hl_atomic_file af;
            if ((s = hl_atomic_file_open(&af, path, err)) == HL_OK) {
                if ((s = hl_atomic_file_write(&af, json, strlen(json), err)) == HL_OK &&
                    (s = hl_atomic_file_write(&af, "\n", 1, err)) == HL_OK)
                    s = hl_atomic_file_commit(&af, err);
                else hl_atomic_file_abort(&af);
            }
        }
        cJSON_free(json);
    }
    for (int32_t i = 0; permuted && i < a->n_weights; i++) hl_free(permuted[i]);
    hl_free(permuted);
    cJSON_Delete(targets);
    cJSON_Delete(rp);
    cJSON_Delete(ap);
    cJSON_Delete(cfg);
    hl_st_writer_free(sw);
    return s;
}
