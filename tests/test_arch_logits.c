/* test_arch_logits.c: the llama (Llama-3 RoPE scaling, GQA, tied output),
 * qwen2 (q/k/v biases) and qwen3 (per-head q/k norm, head size != dim/heads)
 * forward passes against llama.cpp's f32 logits on the shared tiny models
 * (../shared/oracle/llamacpp/arch/logits): every logits row of s1, s2, s3
 * and the last row of the 72-token sequence within 2e-5, and 32 greedy ids
 * from each sequence equal llama.cpp's, decoding one token at a time
 * through the KV cache. Also the RoPE kernels against their double
 * references, and refusals of unsupported architectures. */
#include "test_util.h"
#include "gguf_edit.h"
#include "io/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "util/alloc.h"

#define ARCH "oracle/llamacpp/arch/"
#define TOL 2e-5

static int read_ids(const char *rel, int32_t *ids, int cap) {
    FILE *f = fopen(shared_path(rel), "r");
    REQUIRE(f);
    int n = 0;
    while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    return n;
}

/* The greedy ids of a greedy32 file (its second column). */
static int read_greedy(const char *rel, int32_t *ids, int cap) {
    FILE *f = fopen(shared_path(rel), "r");
    REQUIRE(f);
    char line[512];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        int step, id;
        if (line[0] == '#') continue;
        if (sscanf(line, "%d %d", &step, &id) == 2 && step == n) ids[n++] = id;
    }
    fclose(f);
    return n;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; /* NaN counts as infinitely far */
    }
    return mx;
}

static int32_t argmax(const float *x, int64_t n) {
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int32_t)i;
    return best;
}

/* The logits and greedy ids of model file path (NULL: the shared <name>.gguf) against <name>'s references. */
static void check_model(const char *name, const char *path) {
    char rel[256];
    snprintf(rel, sizeof rel, ARCH "%s.gguf", name);
    hl_model *m = NULL;
    hl_error err = {0};
    CHECK_OK(hl_model_load(path ? path : shared_path(rel), NULL, &m, &err), &err);
    REQUIRE(m);
    const hl_model_config *c = hl_model_get_config(m);
    const int64_t V = c->vocab_size;
    hl_context_params cp = hl_context_default_params();
    cp.n_ctx = 128;
    static const char *const seqs[4] = {"s1", "s2", "s3", "long"};
    double worst = 0;
    int greedy_ok = 0;
    for (int k = 0; k < 4; k++) {
        int32_t ids[128];
        snprintf(rel, sizeof rel, ARCH "logits/%s.%s.ids.txt", name, seqs[k]);
        int n = read_ids(rel, ids, 128);
        REQUIRE(n > 0 && n <= 80);
        hl_context *ctx = NULL;
        CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
        REQUIRE(ctx);
        float *logits = hl_malloc_array((size_t)n * (size_t)V, sizeof(float));
        REQUIRE(logits);
        CHECK_OK(hl_context_eval(ctx, ids, n, 0, logits, 1, &err), &err);
        size_t size = 0;
        int last_only = k == 3;
        if (last_only) snprintf(rel, sizeof rel, ARCH "logits/%s.long.last.bin", name);
        else snprintf(rel, sizeof rel, ARCH "logits/%s.%s.bin", name, seqs[k]);
        float *ref = read_whole(shared_path(rel), &size);
        REQUIRE(ref);
        size_t rows = last_only ? 1 : (size_t)n;
        CHECK_MSG(size == rows * (size_t)V * sizeof(float), "%s: %s has %zu bytes", name, rel, size);
        double d = max_diff(logits + (last_only ? (size_t)(n - 1) * V : 0), ref, rows * (size_t)V);
        CHECK_MSG(d <= TOL, "%s %s: max |logit - llama.cpp| = %.3g > %.0e", name, seqs[k], d, TOL);
        if (d > worst || d != d) worst = d;
        free(ref);
        /* 32 greedy steps through the cache */
        int32_t want[32];
        snprintf(rel, sizeof rel, ARCH "logits/%s.%s.greedy32.txt", name, seqs[k]);
        REQUIRE(read_greedy(rel, want, 32) == 32);
        float *row = hl_malloc_array((size_t)V, sizeof(float));
        REQUIRE(row);
        int32_t next = argmax(logits + (size_t)(n - 1) * V, V);
        int same = 0;
        for (int step = 0; step < 32; step++) {
            if (next != want[step]) break;
            same++;
            if (step == 31) break;
            CHECK_OK(hl_context_eval(ctx, &next, 1, n + step, row, 0, &err), &err);
            next = argmax(row, V);
        }
        CHECK_MSG(same == 32, "%s %s: greedy ids equal llama.cpp's for %d of 32 steps", name, seqs[k], same);
        greedy_ok += same == 32;
        hl_free(row);
        hl_free(logits);
        hl_context_free(ctx);
    }
    printf("%s%s (%s, head %lld, %s rope%s): max |logit - llama.cpp| over s1, s2, s3, long = %.3g; greedy 32/32 on "
           "%d of 4 sequences\n",
           name, path ? " (rope_freqs from llama3 keys)" : "", hl_arch_name(c->arch), (long long)hl_cfg_head_dim(c), hl_cfg_rope_neox(c) ? "neox" : "normal",
           m->rope_freqs ? ", rope_freqs" : "", worst, greedy_ok);
    hl_model_free(m);
}

/* NEOX RoPE (with Llama-3 factors) and normal RoPE against their double
 * references, and each inverse giving its input back. */
static void rope_kernels(void) {
    const int64_t H = 3, D = 8;
    const float ff[4] = {1.0f, 1.0f, 2.69453001f, 8.0f};
    float cs_ff[40 * 8], cs[40 * 8];
    hl_rope_table_scaled(cs_ff, 40, D, 500000.0f, ff);
    hl_rope_table(cs, 40, D, 500000.0f);
    double worst = 0;
    for (int64_t pos = 0; pos < 40; pos += 13)
        for (int neox = 0; neox < 2; neox++) {
            float in[24], a[24], b[24];
            for (int i = 0; i < 24; i++) in[i] = a[i] = b[i] = sinf(0.7f * (float)i + (float)pos);
            if (neox) {
                hl_rope_neox_ref(a, H, D, pos, 500000.0f, ff);
                hl_rope_apply_neox(b, H, D, cs_ff + pos * D, 0);
            } else {
                hl_rope_ref(a, H, D, pos, 500000.0f);
                hl_rope_apply(b, H, D, cs + pos * D, 0);
            }
            worst = fmax(worst, max_diff(a, b, 24));
            if (neox) hl_rope_apply_neox(b, H, D, cs_ff + pos * D, 1);
            else hl_rope_apply(b, H, D, cs + pos * D, 1);
            CHECK_MSG(max_diff(b, in, 24) < 1e-6, "rope inverse (neox %d, pos %lld)", neox, (long long)pos);
        }
    CHECK_MSG(worst < 1e-6, "rope kernels vs references: %.3g", worst);
    /* the factors change the angles: pair 3 (factor 8) turns 8 times slower */
    CHECK(fabsf(cs_ff[13 * D + 6] - cosf(13.0f * powf(500000.0f, -6.0f / 8.0f) / 8.0f)) < 1e-6f);
}

/* A copy of a model file with one key changed (or removed when value is NULL), loaded. */
static hl_status load_edited(const char *rel, const char *key, const char *value, hl_error *err) {
    hl_gguf *g = NULL;
    REQUIRE(hl_gguf_open(shared_path(rel), &g, err) == HL_OK);
    hl_gguf_writer *w = gguf_edited_copy(g, key, value, 1);
    const char *path = "test_arch_edited.gguf";
    REQUIRE(hl_gguf_writer_write_file(w, path, err) == HL_OK);
    hl_gguf_writer_free(w);
    hl_gguf_free(g);
    hl_model *m = NULL;
    hl_status s = hl_model_load(path, NULL, &m, err);
    hl_model_free(m);
    remove(path);
    return s;
}

/* llama3_tiny with its rope_freqs.weight tensor replaced by the llama3
 * rope-scaling keys of its HF config (factor 8, low 1, high 4, original
 * context 8192): the computed factors equal the tensor's, and so do the logits. */
static void llama3_keys(void) {
    hl_error err = {0};
    hl_gguf *g = NULL;
    REQUIRE(hl_gguf_open(shared_path(ARCH "llama3_tiny.gguf"), &g, &err) == HL_OK);
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) REQUIRE(hl_gguf_writer_copy_kv(w, g, i) == HL_OK);
    REQUIRE(hl_gguf_writer_set_str(w, "llama.rope.scaling.type", "llama3") == HL_OK);
    REQUIRE(hl_gguf_writer_set_f32(w, "llama.rope.scaling.factor", 8.0f) == HL_OK);
    REQUIRE(hl_gguf_writer_set_f32(w, "llama.rope.scaling.low_freq_factor", 1.0f) == HL_OK);
    REQUIRE(hl_gguf_writer_set_f32(w, "llama.rope.scaling.high_freq_factor", 4.0f) == HL_OK);
    REQUIRE(hl_gguf_writer_set_u32(w, "llama.rope.scaling.original_context_length", 8192) == HL_OK);
    const float *tensor_ff = NULL;
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        if (!strcmp(name, "rope_freqs.weight")) {
            tensor_ff = t->data;
            continue;
        }
        REQUIRE(hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err) == HL_OK);
    }
    REQUIRE(tensor_ff);
    const char *path = "test_arch_llama3_keys.gguf";
    REQUIRE(hl_gguf_writer_write_file(w, path, &err) == HL_OK);
    hl_gguf_writer_free(w);
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(path, NULL, &m, &err), &err);
    double d = 1;
    if (m && m->rope_freqs) {
        d = 0;
        for (int i = 0; i < 4; i++) d = fmax(d, fabs((double)m->rope_freqs[i] - (double)tensor_ff[i]) / tensor_ff[i]);
    }
    CHECK_MSG(d < 1e-6, "llama3 keys: factors differ from rope_freqs.weight by %.3g (relative)", d);
    printf("llama3 rope-scaling keys: factors %g %g %g %g, rope_freqs.weight %g %g %g %g\n",
           m && m->rope_freqs ? m->rope_freqs[0] : 0, m && m->rope_freqs ? m->rope_freqs[1] : 0,
           m && m->rope_freqs ? m->rope_freqs[2] : 0, m && m->rope_freqs ? m->rope_freqs[3] : 0, tensor_ff[0],
           tensor_ff[1], tensor_ff[2], tensor_ff[3]);
    hl_model_free(m);
    check_model("llama3_tiny", path);
    remove(path);
    hl_gguf_free(g);
}

static void refusals(void) {
    hl_error err = {0};
    CHECK(load_edited(ARCH "qwen2_tiny.gguf", "general.architecture", "gemma", &err) == HL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "\"gemma\"") && strstr(err.msg, "llama, qwen2, qwen3"), "arch refusal: %s", err.msg);
    /* qwen2 tensors read as llama: the biases would be ignored, so refused */
    CHECK(load_edited(ARCH "qwen2_tiny.gguf", "general.architecture", "llama", &err) != HL_OK);
    /* qwen3 without its q/k norms read as qwen2: biases missing */
    CHECK(load_edited(ARCH "qwen3_tiny.gguf", "general.architecture", "qwen2", &err) != HL_OK);
    CHECK_MSG(strstr(err.msg, "attn_q.bias") || strstr(err.msg, "qwen2"), "qwen3 as qwen2: %s", err.msg);
    CHECK(load_edited(ARCH "qwen2_tiny.gguf", "qwen2.rope.scaling.type", "yarn", &err) == HL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "\"yarn\"") && strstr(err.msg, "llama3"), "rope scaling refusal: %s", err.msg);
}

int main(void) {
    rope_kernels();
    check_model("llama3_tiny", NULL);
    check_model("qwen2_tiny", NULL);
    check_model("qwen3_tiny", NULL);
    llama3_keys();
    refusals();
    return hl_test_finish("test_arch_logits");
}
