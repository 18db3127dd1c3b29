/* adapter_gguf.c: LoRA adapters in llama.cpp's GGUF layout (read + write),
 * and the human-readable summary shown by `inspect`. */
#include "lora/adapter_io.h"
#include "io/gguf.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/escape.h"
#include "util/half.h"
#include "util/hashset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *gguf_target_names[HL_TARGET_COUNT] = {"attn_q",   "attn_k", "attn_v",   "attn_output",
                                                         "ffn_gate", "ffn_up", "ffn_down", "output"};

int hl_adapter_parse_base_name(const char *name, size_t len, int *layer, int *target) {
    if (len == 13 && !memcmp(name, "output.weight", 13)) {
        *layer = -1;
        *target = HL_TARGET_OUTPUT;
        return 1;
    }
    if (len < 5 || memcmp(name, "blk.", 4) != 0) return 0;
    size_t i = 4;
    long l = 0;
    if (i >= len || name[i] < '0' || name[i] > '9') return 0;
    while (i < len && name[i] >= '0' && name[i] <= '9') {
        l = l * 10 + (name[i++] - '0');
        if (l > 100000) return 0;
    }
    if (i >= len || name[i++] != '.') return 0;
    for (int t = 0; t < HL_TARGET_OUTPUT; t++) {
        size_t n = strlen(gguf_target_names[t]);
        if (len - i == n + 7 && !memcmp(name + i, gguf_target_names[t], n) && !memcmp(name + i + n, ".weight", 7)) {
            *layer = (int)l;
            *target = t;
            return 1;
        }
    }
    return 0;
}

static int str_eq(hl_gguf_str s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.data, lit, s.len); }

static int ends_with(hl_gguf_str s, const char *suffix, size_t *base_len) {
    size_t n = strlen(suffix);
    if (s.len < n || memcmp(s.data + s.len - n, suffix, n) != 0) return 0;
    *base_len = (size_t)s.len - n;
    return 1;
}

/* Copies a 2-D tensor of any type the reader accepts into a new f32 buffer
 * (the reader made ne[0] a whole number of blocks). */
static float *tensor_to_f32(const hl_gguf_tensor *t) {
    uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
    float *buf = hl_malloc_array((size_t)n, sizeof(float));
    if (!buf) return NULL;
    hl_dequantize(t->type, t->data, buf, (int64_t)n / hl_type_traits_of(t->type)->block_elems);
    return buf;
}

/* File-controlled names in messages (util/escape.h). */
#define ESC(p, n) hl_escape((p), (size_t)(n), shown, sizeof shown)
#define ESC2(p, n) hl_escape((p), (size_t)(n), shown2, sizeof shown2)

static hl_status load_gguf(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err) {
    *out = NULL;
    hl_gguf *g = NULL;
    hl_hashset pairs; /* the (layer, target) pairs seen */
    hl_hashset_init(&pairs);
    char shown[HL_ESCAPE_NAME], shown2[HL_ESCAPE_NAME]; /* file-controlled names, escaped for messages */
    hl_status s = hl_gguf_open(path, &g, err);
    if (s != HL_OK) return s;
    hl_adapter *a = hl_calloc(1, sizeof *a);
    hl_gguf_str str;
    if (!a) {
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (hl_gguf_get_str(g, "general.type", &str, NULL) != HL_OK || !str_eq(str, "adapter")) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: general.type is not \"adapter\" (is this a base model?)", path);
        goto done;
    }
    if (hl_gguf_get_str(g, "adapter.type", &str, NULL) != HL_OK || !str_eq(str, "lora")) {
        s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: adapter.type must be \"lora\"", path);
        goto done;
    }
    if ((s = hl_gguf_get_str(g, "general.architecture", &str, err)) != HL_OK) goto done; /* names the file */
    {
        /* the base's architecture when there is a base (llama.cpp refuses any other), else any we support */
        int arch = -1;
        for (int k = 0; k < HL_ARCH_COUNT; k++)
            if (str_eq(str, hl_arch_name((hl_arch)k))) arch = k;
        const char *want = m ? hl_arch_name((hl_arch)m->cfg.arch) : NULL;
        if (arch < 0 || (want && !str_eq(str, want))) {
            s = hl_fail(err, HL_ERR_MISMATCH, "%s: adapter architecture \"%s\" does not match the base (\"%s\")",
                        path, hl_escape(str.data, (size_t)str.len, shown, sizeof shown),
                        want ? want : "llama, qwen2 or qwen3");
            goto done;
        }
        a->arch = hl_strdup(hl_arch_name((hl_arch)arch));
    }
    float alpha = 0;
    if (hl_gguf_find_key(g, "adapter.lora.alpha") >= 0 &&
        (s = hl_gguf_get_f32(g, "adapter.lora.alpha", &alpha, err)) != HL_OK)
        goto done; /* the getter's message names the file */
    if (!isfinite(alpha)) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: adapter.lora.alpha is not finite", path);
        goto done;
    }
    a->alpha = alpha;
    if (hl_gguf_get_str(g, "general.name", &str, NULL) == HL_OK) /* a display name: kept escaped */
        a->name = hl_strdup(hl_escape(str.data, (size_t)str.len, shown, sizeof shown));
    else {
        const char *b = strrchr(path, '/');
        a->name = hl_strdup(b ? b + 1 : path);
    }
    uint64_t fp = 0;
    int64_t fk = hl_gguf_find_key(g, "hyperlora.base.fingerprint");
    if (fk >= 0) {
        double d;
        int64_t iv;
        if (hl_gguf_kv_type_of(g, fk) != HL_GGUF_UINT64 || !hl_gguf_kv_scalar(g, fk, &d, &iv)) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: hyperlora.base.fingerprint must be a uint64", path);
            goto done;
        }
        fp = (uint64_t)iv;
        a->base_fingerprint = fp;
        a->has_fingerprint = 1;
    }
    if (!a->name || !a->arch) {
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (hl_gguf_find_key(g, "hyperlora.lexicon.jsonl") >= 0) {
        if (hl_gguf_get_str(g, "hyperlora.lexicon.jsonl", &str, NULL) != HL_OK) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: hyperlora.lexicon.jsonl must be a string", path);
            goto done;
        }
        if (!(a->lexicon = hl_strndup(str.data, str.len))) {
            s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (m && a->has_fingerprint && fp != m->fingerprint && !force) {
        s = hl_fail(err, HL_ERR_MISMATCH,
                    "%s: adapter was made for another base model (fingerprint %016llx, this model %016llx); "
                    "use --force to apply it anyway",
                    path, (unsigned long long)fp, (unsigned long long)m->fingerprint);
        goto done;
    }

    /* Pair up tensors; each (layer, target) once, checked through the hash set. */
    int64_t nt = hl_gguf_n_tensors(g);
    int max_layer = -1;
    a->n_layers = m ? m->cfg.n_layers : 0;
    for (int64_t i = 0; i < nt; i++) {
        const hl_gguf_tensor *ta = hl_gguf_tensor_at(g, i);
        size_t base_len;
        if (ends_with(ta->name, "_norm.weight", &base_len)) continue; /* accepted and ignored, as llama.cpp */
        if (ends_with(ta->name, ".lora_b", &base_len)) {
            char bname[256];
            snprintf(bname, sizeof bname, "%.*s.lora_a", (int)(base_len > 200 ? 200 : base_len), ta->name.data);
            if (hl_gguf_find_tensor(g, bname) < 0) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s has no matching %s", path,
                            ESC(ta->name.data, ta->name.len), ESC2(bname, strlen(bname)));
                goto done;
            }
            continue;
        }
        if (!ends_with(ta->name, ".lora_a", &base_len)) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s has an unexpected suffix (want .lora_a / .lora_b)", path,
                        ESC(ta->name.data, ta->name.len));
            goto done;
        }
        const char *bn = ta->name.data;
        if (base_len >= 10 && !memcmp(bn, "token_embd", 10)) {
            s = hl_fail(err, HL_ERR_UNSUPPORTED,
                        "%s: adapts %s: token embeddings are never adapted (they carry the frozen scene vectors)",
                        path, ESC(bn, base_len));
            goto done;
        }
        int layer, target;
        if (!hl_adapter_parse_base_name(bn, base_len, &layer, &target)) {
            s = hl_fail(err, HL_ERR_UNSUPPORTED, "%s: %s is not an adaptable projection (q k v o gate up down output)",
                        path, ESC(bn, base_len));
            goto done;
        }
        char bname[256];
        snprintf(bname, sizeof bname, "%.*s.lora_b", (int)base_len, bn);
        int64_t jb = hl_gguf_find_tensor(g, bname);
        if (jb < 0) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s has no matching %s", path, ESC(ta->name.data, ta->name.len),
                        ESC2(bname, strlen(bname)));
            goto done;
        }
        const hl_gguf_tensor *tb = hl_gguf_tensor_at(g, jb);
        if (ta->n_dims != 2 || tb->n_dims != 2 || ta->ne[1] != tb->ne[0]) {
            s = hl_fail(err, HL_ERR_FORMAT,
                        "%s: %s: lora_a ne [%lld, %lld] and lora_b ne [%lld, %lld] do not chain "
                        "(want lora_a [in, r], lora_b [r, out])",
                        path, ESC(bn, base_len), (long long)ta->ne[0], (long long)ta->ne[1], (long long)tb->ne[0],
                        (long long)tb->ne[1]);
            goto done;
        }
        int64_t rank = tb->ne[0], n_in = ta->ne[0], n_out = tb->ne[1];
        if (rank > 65536) {
            s = hl_fail(err, HL_ERR_LIMIT, "%s: %s: rank %lld is above 65536", path, ESC(bn, base_len), (long long)rank);
            goto done;
        }
        if (m) {
            int64_t rows, cols;
            if (target != HL_TARGET_OUTPUT && layer >= m->cfg.n_layers) {
                s = hl_fail(err, HL_ERR_MISMATCH, "%s: %s: the base has only %d layers", path, ESC(bn, base_len),
                            m->cfg.n_layers);
                goto done;
            }
            hl_model_weight(m, layer, target, &rows, &cols);
            if (cols != n_in || rows != n_out) {
                s = hl_fail(err, HL_ERR_MISMATCH,
                            "%s: %s: adapter maps %lld -> %lld but the base weight is %lld -> %lld", path,
                            ESC(bn, base_len), (long long)n_in, (long long)n_out, (long long)cols, (long long)rows);
                goto done;
            }
        }
        if (layer > max_layer) max_layer = layer;
        /* Grow and add (without a model, shapes come from the file). */
        if (a->n_weights == a->cap_weights) {
            int32_t cap = a->cap_weights ? a->cap_weights * 2 : 16;
            hl_lora_weight *nw = hl_realloc(a->w, (size_t)cap * sizeof *nw);
            if (!nw) {
                s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                goto done;
            }
            a->w = nw;
            a->cap_weights = cap;
        }
        int32_t pair[2] = {layer, target};
        int added = hl_hashset_add(&pairs, pair, sizeof pair, NULL);
        if (added <= 0) {
            s = added < 0 ? hl_fail(err, HL_ERR_NOMEM, "out of memory")
                          : hl_fail(err, HL_ERR_FORMAT, "%s: %s appears twice", path,
                                    hl_escape(bn, base_len, shown, sizeof shown));
            goto done;
        }
        /* A block-type A or B must have finite scales (llama.cpp stores adapters in f32/f16, but a file may not). */
        const hl_gguf_tensor *tq[2] = {ta, tb};
        for (int k = 0; k < 2; k++) {
            const hl_type_traits *tr = hl_type_traits_of(tq[k]->type);
            int64_t bad = hl_quant_find_bad_scale(tq[k]->type, tq[k]->data, (int64_t)(tq[k]->nbytes / (uint64_t)tr->block_bytes));
            if (bad >= 0) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s: %s.%s (%s): block %lld has a non-finite scale", path,
                            ESC(bn, base_len), k ? "lora_b" : "lora_a", tr->name, (long long)bad);
                goto done;
            }
        }
        hl_lora_weight w = {.layer = layer, .target = target, .rank = (int32_t)rank, .n_in = n_in, .n_out = n_out};
        /* llama.cpp: scale = alpha / r, or 1 when alpha is 0. */
        w.alpha = alpha != 0.0f ? alpha : (float)rank;
        w.A = tensor_to_f32(ta);
        w.B = tensor_to_f32(tb);
        if (!w.A || !w.B) {
            hl_free(w.A);
            hl_free(w.B);
            s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
            goto done;
        }
        a->w[a->n_weights++] = w;
    }
    if (a->n_weights == 0) {
        s = hl_fail(err, HL_ERR_FORMAT, "%s: the adapter has no lora_a/lora_b tensors", path);
        goto done;
    }
    if (!m) a->n_layers = max_layer + 1;
    if (alpha == 0.0f) a->alpha = 0.0f;
    s = hl_adapter_index(a, err);
done:
    hl_hashset_free(&pairs);
    hl_gguf_free(g);
    if (s != HL_OK) {
        hl_adapter_free(a);
        return s;
    }
    *out = a;
    return HL_OK;
}

hl_status hl_adapter_load_gguf(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err) {
    return load_gguf(path, m, force, out, err);
}

hl_status hl_adapter_load_gguf_standalone(const char *path, hl_adapter **out, hl_error *err) {
    return load_gguf(path, NULL, 1, out, err);
}

/* The single alpha written to GGUF: the adapter's alpha when every tensor
 * scales by it as alpha / r, else the one that leaves most tensors unfolded. */
static float gguf_alpha(const hl_adapter *a) {
    float best = 0;
    int best_count = -1;
    for (int32_t i = 0; i < a->n_weights; i++) {
        const hl_lora_weight *wi = &a->w[i];
        float cand = a->rslora ? (float)((double)wi->alpha * sqrt((double)wi->rank)) : wi->alpha;
        int count = 0;
        for (int32_t j = 0; j < a->n_weights; j++)
            if (hl_lora_weight_scale(a, &a->w[j]) == cand / (float)a->w[j].rank) count++;
        if (count > best_count) {
            best = cand;
            best_count = count;
        }
    }
    return best;
}

hl_status hl_adapter_save_gguf(const hl_adapter *a, const char *path, hl_error *err) {
    if (a->n_weights == 0) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: adapter has no weights", path);
    hl_gguf_writer *w = hl_gguf_writer_init();
    if (!w) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    float alpha = gguf_alpha(a);
    float **folded = hl_calloc((size_t)a->n_weights, sizeof *folded);
    hl_status s = folded ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "out of memory");
    int any_folded = 0;
#define KV(call) if (s == HL_OK && (s = (call)) != HL_OK) hl_fail(err, s, "%s: cannot set metadata", path)
    KV(hl_gguf_writer_set_str(w, "general.architecture", a->arch ? a->arch : "llama"));
    KV(hl_gguf_writer_set_str(w, "general.type", "adapter"));
    KV(hl_gguf_writer_set_str(w, "adapter.type", "lora"));
    KV(hl_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha));
    KV(hl_gguf_writer_set_str(w, "general.name", a->name ? a->name : "adapter"));
    if (a->has_fingerprint) KV(hl_gguf_writer_set_u64(w, "hyperlora.base.fingerprint", a->base_fingerprint));
    if (a->lexicon) KV(hl_gguf_writer_set_str(w, "hyperlora.lexicon.jsonl", a->lexicon));
#undef KV
    char names[2][256];
    for (int32_t i = 0; s == HL_OK && i < a->n_weights; i++) {
        const hl_lora_weight *lw = &a->w[i];
        const float *B = lw->B;
        float want = hl_lora_weight_scale(a, lw), have = alpha / (float)lw->rank;
        if (want != have) {
            /* Fold the scale ratio into B so llama.cpp's alpha / r gives the same product. */
            size_t n = (size_t)lw->n_out * (size_t)lw->rank;
            folded[i] = hl_malloc_array(n, sizeof(float));
            if (!folded[i]) {
                s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                break;
            }
            double ratio = (double)want / (double)have;
            for (size_t k = 0; k < n; k++) folded[i][k] = (float)(lw->B[k] * ratio);
            B = folded[i];
            any_folded = 1;
        }
        char base[128];
        hl_model_tensor_name(lw->layer, lw->target, base, sizeof base);
        snprintf(names[0], sizeof names[0], "%s.lora_a", base);
        snprintf(names[1], sizeof names[1], "%s.lora_b", base);
        int64_t ne_a[2] = {lw->n_in, lw->rank}, ne_b[2] = {lw->rank, lw->n_out};
        if ((s = hl_gguf_writer_add_tensor(w, names[0], HL_TYPE_F32, 2, ne_a, lw->A, err)) == HL_OK)
            s = hl_gguf_writer_add_tensor(w, names[1], HL_TYPE_F32, 2, ne_b, B, err);
    }
    if (s == HL_OK && any_folded && (s = hl_gguf_writer_set_bool(w, "hyperlora.lora.scale_folded", 1)) != HL_OK)
        hl_fail(err, s, "%s: cannot set metadata", path);
    if (s == HL_OK) s = hl_gguf_writer_write_file(w, path, err);
    for (int32_t i = 0; folded && i < a->n_weights; i++) hl_free(folded[i]);
    hl_free(folded);
    hl_gguf_writer_free(w);
    return s;
}

void hl_adapter_print_summary(const hl_adapter *a, FILE *f) {
    uint64_t params = 0;
    int targets[HL_TARGET_COUNT] = {0}, rmin = 1 << 30, rmax = 0;
    float smin = INFINITY, smax = -INFINITY;
    for (int32_t i = 0; i < a->n_weights; i++) {
        const hl_lora_weight *w = &a->w[i];
        params += (uint64_t)w->rank * (uint64_t)(w->n_in + w->n_out);
        targets[w->target]++;
        if (w->rank < rmin) rmin = w->rank;
        if (w->rank > rmax) rmax = w->rank;
        float sc = hl_lora_weight_scale(a, w);
        if (sc < smin) smin = sc;
        if (sc > smax) smax = sc;
    }
    fprintf(f, "adapter: %s (LoRA, %s)\n", a->name, a->arch ? a->arch : "llama");
    fprintf(f, "  alpha %g, %s scaling, rank %d", a->alpha, a->rslora ? "rsLoRA (alpha/sqrt(r))" : "alpha/r", rmin);
    if (rmax != rmin) fprintf(f, "..%d", rmax);
    fprintf(f, ", scale %g", smin);
    if (smax != smin) fprintf(f, "..%g", smax);
    fprintf(f, "\n  targets:");
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        if (targets[t]) fprintf(f, " %s(x%d)", hl_target_name(t), targets[t]);
    fprintf(f, "\n  %d weight pairs, %llu parameters\n", a->n_weights, (unsigned long long)params);
    if (a->has_fingerprint) fprintf(f, "  base fingerprint %016llx\n", (unsigned long long)a->base_fingerprint);
}

hl_status hl_adapter_load(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err) {
    if (hl_file_starts_with(path, "GGUF", 4)) return hl_adapter_load_gguf(path, m, force, out, err);
    struct stat st; /* else a PEFT directory or safetensors file; a FIFO or a device is neither */
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return hl_fail(err, HL_ERR_IO, "%s: not an adapter file or a PEFT directory (%s)", path,
                       S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket");
    return hl_adapter_load_peft(path, m, force, out, err);
}
