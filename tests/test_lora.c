/* test_lora.c: adapters against the references: llama.cpp's merged model,
 * the PyTorch f64 LoRA reference (adapter_init, logits, merged wq), the three
 * PEFT encodings of one adapter, round trips, and refusals. */
#include "hyperlora.h"
#include "io/gguf.h"
#include "lora/adapter_io.h"
#include "lora/merge.h"
#include "test_util.h"
#include "util/rng.h"

#include <sys/stat.h>
#include <unistd.h>

#define STORIES "models/stories260K/"
#define TORCH "oracle/torch/ref/"

static float *read_f32(const char *rel, size_t expect) {
    size_t size;
    float *p = read_whole(shared_path(rel), &size);
    REQUIRE(p && size == expect * sizeof(float));
    return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

/* Logits for the reference batch: 4 rows of 32 tokens, each from position 0. */
static void batch_logits(const hl_model *m, const hl_adapter *a, float scale, float *out) {
    size_t size;
    int32_t *tok = read_whole(shared_path(TORCH "batch_tokens.i32"), &size);
    REQUIRE(tok && size == 4 * 33 * sizeof(int32_t));
    hl_error err = {0};
    hl_context *ctx;
    hl_context_params cp = {.n_ctx = 64, .n_threads = 2};
    REQUIRE(hl_context_init(m, &cp, &ctx, &err) == HL_OK);
    if (a) {
        const hl_adapter *set[1] = {a};
        CHECK_OK(hl_context_set_adapters(ctx, set, &scale, 1, &err), &err);
    }
    int V = hl_model_get_config(m)->vocab_size;
    for (int b = 0; b < 4; b++) CHECK_OK(hl_context_eval(ctx, tok + b * 33, 32, 0, out + (size_t)b * 32 * V, 1, &err), &err);
    hl_context_free(ctx);
    free(tok);
}

static void test_llamacpp_merge(const hl_model *gguf) {
    hl_error err = {0};
    hl_adapter *a;
    CHECK_OK(hl_adapter_load(shared_path("oracle/llamacpp/random_lora_r4.gguf"), gguf, 0, &a, &err), &err);
    REQUIRE(a);
    const hl_adapter *set[1] = {a};
    float one = 1.0f;
    const char *out = "test_lora_merged.gguf";
    CHECK_OK(hl_merge_to_gguf(gguf, set, &one, 1, out, &err), &err);
    hl_gguf *ours, *ref;
    CHECK_OK(hl_gguf_open(out, &ours, &err), &err);
    CHECK_OK(hl_gguf_open(shared_path("oracle/llamacpp/merged_lora_r4.gguf"), &ref, &err), &err);
    REQUIRE(ours && ref);
    CHECK(hl_gguf_n_tensors(ours) == hl_gguf_n_tensors(ref));
    double worst = 0;
    for (int64_t i = 0; i < hl_gguf_n_tensors(ref); i++) {
        const hl_gguf_tensor *rt = hl_gguf_tensor_at(ref, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)rt->name.len, rt->name.data);
        int64_t j = hl_gguf_find_tensor(ours, name);
        CHECK_MSG(j >= 0, "merged model lacks %s", name);
        if (j < 0) continue;
        const hl_gguf_tensor *ot = hl_gguf_tensor_at(ours, j);
        CHECK(ot->nbytes == rt->nbytes && ot->type == HL_TYPE_F32 && rt->type == HL_TYPE_F32);
        double d = max_abs_diff(ot->data, rt->data, rt->nbytes / 4);
        if (d > worst) worst = d;
    }
    printf("merge vs llama-export-lora: max |diff| %.3g over all weights\n", worst);
    CHECK(worst <= 1e-6);
    hl_gguf_free(ours);
    hl_gguf_free(ref);

    /* Merged model logits == unmerged adapter logits (within 1e-4). */
    hl_model *merged;
    CHECK_OK(hl_model_load(out, NULL, &merged, &err), &err);
    REQUIRE(merged);
    CHECK(hl_model_fingerprint(merged) != hl_model_fingerprint(gguf));
    int V = hl_model_get_config(gguf)->vocab_size;
    float *u = malloc(sizeof(float) * 4 * 32 * V), *mg = malloc(sizeof(float) * 4 * 32 * V);
    batch_logits(gguf, a, 1.0f, u);
    batch_logits(merged, NULL, 1.0f, mg);
    double d = max_abs_diff(u, mg, (size_t)4 * 32 * V);
    printf("merged vs unmerged logits: max |diff| %.3g\n", d);
    CHECK(d < 1e-4);
    /* An adapter that names its base refuses another one (llama.cpp's file names none). */
    const char *ours_path = "test_lora_ours.gguf";
    CHECK(!a->has_fingerprint);
    a->base_fingerprint = hl_model_fingerprint(gguf); /* as for an adapter we trained on this base */
    a->has_fingerprint = 1;
    CHECK_OK(hl_adapter_save_gguf(a, ours_path, &err), &err);
    hl_adapter *again = NULL;
    CHECK_OK(hl_adapter_load(ours_path, gguf, 0, &again, &err), &err);
    hl_adapter_free(again);
    again = NULL;
    hl_status st = hl_adapter_load(ours_path, merged, 0, &again, &err);
    CHECK(st == HL_ERR_MISMATCH && strstr(err.msg, "another base"));
    printf("refused (other base): %s\n", err.msg);
    CHECK_OK(hl_adapter_load(ours_path, merged, 1, &again, &err), &err); /* forced */
    hl_adapter_free(again);
    free(u);
    free(mg);
    hl_model_free(merged);
    hl_adapter_free(a);
    unlink(out);
    unlink(ours_path);
}

static void test_torch(const hl_model *bin, const hl_model *gguf) {
    hl_error err = {0};
    int V = 512;
    size_t nlog = (size_t)4 * 32 * V;
    float *ref = read_f32(TORCH "attn_ffn/logits_init.f32", nlog), *ours = malloc(sizeof(float) * nlog);
    float *base_ref = read_f32(TORCH "logits_base.f32", nlog);
    batch_logits(bin, NULL, 1.0f, ours);
    double d = max_abs_diff(ours, base_ref, nlog);
    printf("torch base logits: max |diff| %.3g\n", d);
    CHECK(d < 1e-4);

    hl_adapter *a;
    CHECK_OK(hl_adapter_load(shared_path(TORCH "attn_ffn/adapter_init.safetensors"), bin, 0, &a, &err), &err);
    REQUIRE(a);
    CHECK(a->n_weights == 30);
    batch_logits(bin, a, 1.0f, ours);
    d = max_abs_diff(ours, ref, nlog);
    printf("torch adapter_init logits (llama2.c names): max |diff| %.3g\n", d);
    CHECK(d < 1e-4);

    /* merged layer-0 wq == reference W + 2·B·A */
    float *wq_ref = read_f32(TORCH "attn_ffn/merged_layer0_wq.f32", 64 * 64), wq[64 * 64];
    const hl_adapter *set[1] = {a};
    float one = 1.0f;
    CHECK_OK(hl_merge_weight(bin, set, &one, 1, 0, HL_TARGET_Q, wq, &err), &err);
    d = max_abs_diff(wq, wq_ref, 64 * 64);
    printf("merged layer-0 wq vs torch: max |diff| %.3g\n", d);
    CHECK(d < 1e-6);
    free(wq_ref);

    /* first 8 positions of row 0, unmerged and merged */
    float *f8u = read_f32(TORCH "attn_ffn/logits_first8_unmerged.f32", 8 * V);
    float *f8m = read_f32(TORCH "attn_ffn/logits_first8_merged.f32", 8 * V);
    d = max_abs_diff(ours, f8u, (size_t)8 * V);
    CHECK(d < 1e-4);
    const char *mpath = "test_lora_torch_merged.gguf";
    CHECK_OK(hl_merge_to_gguf(bin, set, &one, 1, mpath, &err), &err);
    hl_model *merged = NULL;
    CHECK_OK(hl_model_load(mpath, NULL, &merged, &err), &err);
    REQUIRE(merged);
    float *ml = malloc(sizeof(float) * nlog);
    batch_logits(merged, NULL, 1.0f, ml);
    double dm = max_abs_diff(ml, f8m, (size_t)8 * V);
    printf("torch first-8 logits: unmerged %.3g, merged %.3g\n", d, dm);
    CHECK(dm < 1e-4);
    free(ml);
    hl_model_free(merged);
    unlink(mpath);
    free(f8u);
    free(f8m);

    /* PEFT: three encodings of the same adapter, HF names and HF rotary row order. */
    const char *variants[3] = {"oracle/peft_hf/plain", "oracle/peft_hf/rslora", "oracle/peft_hf/alpha_pattern"};
    for (int k = 0; k < 3; k++) {
        hl_adapter *p = NULL;
        CHECK_OK(hl_adapter_load(shared_path(variants[k]), gguf, 0, &p, &err), &err);
        if (!p) continue;
        batch_logits(gguf, p, 1.0f, ours);
        d = max_abs_diff(ours, ref, nlog);
        printf("PEFT %s: logits max |diff| %.3g (rslora %d)\n", variants[k], d, p->rslora);
        CHECK(d < 1e-4);
        /* the same effective s·B as the llama2.c-named adapter */
        double worst = 0;
        for (int32_t i = 0; i < p->n_weights; i++) {
            const hl_lora_weight *pw = &p->w[i];
            const hl_lora_weight *aw = hl_adapter_find(a, pw->layer, pw->target);
            REQUIRE(aw);
            float sp = hl_lora_weight_scale(p, pw), sa = hl_lora_weight_scale(a, aw);
            for (int64_t e = 0; e < pw->n_out * pw->rank; e++) {
                double dd = fabs((double)sp * pw->B[e] - (double)sa * aw->B[e]);
                if (dd > worst) worst = dd;
            }
            CHECK(!memcmp(pw->A, aw->A, sizeof(float) * (size_t)(pw->rank * pw->n_in)));
        }
        CHECK_MSG(worst < 1e-7, "%s: effective s*B differs by %g", variants[k], worst);
        hl_adapter_free(p);
    }
    hl_adapter_free(a);
    free(ref);
    free(base_ref);
    free(ours);
}

static int files_equal(const char *x, const char *y) {
    size_t nx, ny;
    void *a = read_whole(x, &nx), *b = read_whole(y, &ny);
    int eq = a && b && nx == ny && !memcmp(a, b, nx);
    free(a);
    free(b);
    return eq;
}

static void test_round_trips(const hl_model *gguf) {
    hl_error err = {0};
    hl_adapter *a = NULL, *b = NULL, *c = NULL;
    /* GGUF -> PEFT -> GGUF is bit-exact (rsLoRA source: folded once into GGUF). */
    CHECK_OK(hl_adapter_load(shared_path("oracle/peft_hf/rslora"), gguf, 0, &a, &err), &err);
    REQUIRE(a);
    CHECK_OK(hl_adapter_save_gguf(a, "rt1.gguf", &err), &err);
    CHECK_OK(hl_adapter_load("rt1.gguf", gguf, 0, &b, &err), &err);
    REQUIRE(b);
    mkdir("rt_peft", 0777);
    CHECK_OK(hl_adapter_save_peft(b, gguf, "rt_peft", &err), &err);
    CHECK_OK(hl_adapter_load("rt_peft", gguf, 0, &c, &err), &err);
    REQUIRE(c);
    CHECK_OK(hl_adapter_save_gguf(c, "rt2.gguf", &err), &err);
    CHECK_MSG(files_equal("rt1.gguf", "rt2.gguf"), "GGUF -> PEFT -> GGUF is not bit-exact");
    /* PEFT written by us, read back: same weights exactly */
    for (int32_t i = 0; i < b->n_weights; i++) {
        const hl_lora_weight *x = &b->w[i], *y = hl_adapter_find(c, x->layer, x->target);
        REQUIRE(y);
        CHECK(x->rank == y->rank && hl_lora_weight_scale(b, x) == hl_lora_weight_scale(c, y));
        CHECK(!memcmp(x->A, y->A, sizeof(float) * (size_t)(x->rank * x->n_in)));
        CHECK(!memcmp(x->B, y->B, sizeof(float) * (size_t)(x->rank * x->n_out)));
    }
    hl_adapter_free(a);
    hl_adapter_free(b);
    hl_adapter_free(c);
    unlink("rt1.gguf");
    unlink("rt2.gguf");
    unlink("rt_peft/adapter_model.safetensors");
    unlink("rt_peft/adapter_config.json");
    rmdir("rt_peft");
}

/* Writes a minimal adapter GGUF with the given tensor names/shapes. */
static void write_adapter(const char *path, const char *arch, const char *na, int64_t a0, int64_t a1, const char *nb,
                          int64_t b0, int64_t b1) {
    hl_gguf_writer *w = hl_gguf_writer_init();
    hl_gguf_writer_set_str(w, "general.architecture", arch);
    hl_gguf_writer_set_str(w, "general.type", "adapter");
    hl_gguf_writer_set_str(w, "adapter.type", "lora");
    hl_gguf_writer_set_f32(w, "adapter.lora.alpha", 8.0f);
    static float zeros[1 << 16];
    hl_error err = {0};
    int64_t nea[2] = {a0, a1}, neb[2] = {b0, b1};
    if (na) CHECK_OK(hl_gguf_writer_add_tensor(w, na, HL_TYPE_F32, 2, nea, zeros, &err), &err);
    if (nb) CHECK_OK(hl_gguf_writer_add_tensor(w, nb, HL_TYPE_F32, 2, neb, zeros, &err), &err);
    CHECK_OK(hl_gguf_writer_write_file(w, path, &err), &err);
    hl_gguf_writer_free(w);
}

static void expect_refusal(const hl_model *m, const char *label, hl_status want, const char *substr) {
    hl_error err = {0};
    hl_adapter *a = NULL;
    hl_status s = hl_adapter_load("bad_adapter.gguf", m, 0, &a, &err);
    CHECK_MSG(s == want && strstr(err.msg, substr), "%s: got %s \"%s\"", label, hl_status_name(s), err.msg);
    printf("refused (%s): %s\n", label, err.msg);
    hl_adapter_free(a);
}

static void test_refusals(const hl_model *gguf) {
    write_adapter("bad_adapter.gguf", "llama", "token_embd.weight.lora_a", 4, 512, "token_embd.weight.lora_b", 4, 64);
    expect_refusal(gguf, "token_embd", HL_ERR_UNSUPPORTED, "never adapted");
    write_adapter("bad_adapter.gguf", "llama", "blk.0.attn_q.weight.lora_a", 63, 4, "blk.0.attn_q.weight.lora_b", 4, 64);
    expect_refusal(gguf, "shape", HL_ERR_MISMATCH, "base weight");
    write_adapter("bad_adapter.gguf", "llama", "blk.9.attn_q.weight.lora_a", 64, 4, "blk.9.attn_q.weight.lora_b", 4, 64);
    expect_refusal(gguf, "layer", HL_ERR_MISMATCH, "layers");
    write_adapter("bad_adapter.gguf", "gpt2", "blk.0.attn_q.weight.lora_a", 64, 4, "blk.0.attn_q.weight.lora_b", 4, 64);
    expect_refusal(gguf, "arch", HL_ERR_MISMATCH, "architecture");
    write_adapter("bad_adapter.gguf", "llama", "blk.0.attn_q.weight.lora_a", 64, 4, NULL, 0, 0);
    expect_refusal(gguf, "missing B", HL_ERR_FORMAT, "no matching");
    write_adapter("bad_adapter.gguf", "llama", "blk.0.attn_q.weight.lora_a", 64, 4, "blk.0.attn_q.weight.lora_b", 3, 64);
    expect_refusal(gguf, "rank chain", HL_ERR_FORMAT, "do not chain");
    write_adapter("bad_adapter.gguf", "llama", "blk.0.attn_q.weight.lora_x", 64, 4, NULL, 0, 0);
    expect_refusal(gguf, "suffix", HL_ERR_FORMAT, "unexpected suffix");
    write_adapter("bad_adapter.gguf", "llama", "blk.0.attn_norm.weight", 64, 1, NULL, 0, 0);
    expect_refusal(gguf, "empty", HL_ERR_FORMAT, "no lora_a");
    write_adapter("bad_adapter.gguf", "llama", "rope_freqs.weight.lora_a", 64, 4, "rope_freqs.weight.lora_b", 4, 64);
    expect_refusal(gguf, "positional", HL_ERR_UNSUPPORTED, "not an adaptable");
    unlink("bad_adapter.gguf");
}

/* hl_adapter_start_from: copies A, keeps s·B, starts extra weights fresh,
 * and refuses (leaving the target untouched) what would lose or misread weights. */
static void test_start_from(const hl_model *gguf) {
    hl_error err = {0};
    hl_adapter *src = NULL, *dst = NULL, *more = NULL, *bad = NULL;
    hl_adapter_spec spec = {.name = "src", .targets = (1u << HL_TARGET_Q) | (1u << HL_TARGET_V), .rank = 4,
                            .alpha = 8, .seed = 1};
    CHECK_OK(hl_adapter_create(gguf, &spec, &src, &err), &err);
    REQUIRE(src);
    for (int32_t i = 0; i < src->n_weights; i++)
        for (int64_t e = 0; e < src->w[i].n_out * src->w[i].rank; e++)
            src->w[i].B[e] = 0.01f * (float)((e * 7 + i) % 13 - 6);
    /* alpha 16: twice the scale, so B halves, exactly */
    spec.alpha = 16;
    spec.seed = 2;
    CHECK_OK(hl_adapter_create(gguf, &spec, &dst, &err), &err);
    int32_t fresh = -1;
    CHECK_OK(hl_adapter_start_from(dst, src, &fresh, &err), &err);
    CHECK(fresh == 0);
    for (int32_t i = 0; i < src->n_weights; i++) {
        const hl_lora_weight *x = &src->w[i], *y = hl_adapter_find(dst, x->layer, x->target);
        REQUIRE(y);
        CHECK(!memcmp(x->A, y->A, sizeof(float) * (size_t)(x->rank * x->n_in)));
        for (int64_t e = 0; e < x->n_out * x->rank; e++)
            CHECK_MSG(hl_lora_weight_scale(dst, y) * y->B[e] == hl_lora_weight_scale(src, x) * x->B[e],
                      "s*B differs at weight %d element %lld", (int)i, (long long)e);
    }
    /* more targets: q and v copied, o starts as created (B = 0) */
    spec.targets |= 1u << HL_TARGET_O;
    spec.alpha = 8;
    CHECK_OK(hl_adapter_create(gguf, &spec, &more, &err), &err);
    CHECK_OK(hl_adapter_start_from(more, src, &fresh, &err), &err);
    int32_t n_layers = hl_model_get_config(gguf)->n_layers;
    CHECK_MSG(fresh == n_layers, "fresh %d, want %d", (int)fresh, (int)n_layers);
    const hl_lora_weight *o0 = hl_adapter_find(more, 0, HL_TARGET_O);
    REQUIRE(o0);
    for (int64_t e = 0; e < o0->n_out * o0->rank; e++) CHECK(o0->B[e] == 0.0f);
    /* refusals: another rank, or dropping v; the target keeps its bytes */
    struct { uint32_t targets; int rank; const char *msg; } cases[] = {
        {(1u << HL_TARGET_Q) | (1u << HL_TARGET_V), 2, "rank 4 there and 2 here"},
        {1u << HL_TARGET_Q, 4, "adapts v of layer 0"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hl_adapter_spec bs = {.name = "bad", .targets = cases[c].targets, .rank = cases[c].rank, .alpha = 8, .seed = 3};
        CHECK_OK(hl_adapter_create(gguf, &bs, &bad, &err), &err);
        const hl_lora_weight *q0 = hl_adapter_find(bad, 0, HL_TARGET_Q);
        REQUIRE(q0);
        float a0 = q0->A[0];
        hl_status st = hl_adapter_start_from(bad, src, NULL, &err);
        CHECK_MSG(st == HL_ERR_MISMATCH && strstr(err.msg, cases[c].msg), "case %zu: %s \"%s\"", c, hl_status_name(st),
                  err.msg);
        CHECK(q0->A[0] == a0);
        printf("refused (start_from): %s\n", err.msg);
        hl_adapter_free(bad);
        bad = NULL;
    }
    hl_adapter_free(src);
    hl_adapter_free(dst);
    hl_adapter_free(more);
}

/* A random adapter on `targets`: Kaiming A, and B drawn too, so that it changes the logits. */
static hl_adapter *random_adapter(const hl_model *m, const char *targets, int rank, uint64_t seed) {
    hl_error err = {0};
    uint32_t t = 0;
    CHECK_OK(hl_parse_targets(targets, &t, &err), &err);
    hl_adapter_spec spec = {
        .name = "random", .targets = t, .rank = rank, .alpha = (float)rank, .init = HL_INIT_KAIMING, .seed = seed};
    hl_adapter *a = NULL;
    CHECK_OK(hl_adapter_create(m, &spec, &a, &err), &err);
    REQUIRE(a);
    hl_rng rng;
    hl_rng_seed(&rng, seed ^ 0x5eedULL);
    for (int32_t i = 0; i < a->n_weights; i++)
        for (int64_t k = 0; k < a->w[i].n_out * a->w[i].rank; k++) a->w[i].B[k] = 0.02f * hl_rng_normal(&rng);
    return a;
}

/* Logits (n, V) of ids, with the adapters set, all at once or one token per eval. */
static float *decode_logits(const hl_model *m, const hl_adapter *const *set, const float *scales, int n_set,
                            const int32_t *ids, int n, int threads, int one_by_one) {
    hl_error err = {0};
    hl_context *ctx = NULL;
    hl_context_params cp = hl_context_default_params();
    cp.n_ctx = n;
    cp.n_threads = threads;
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    REQUIRE(ctx);
    CHECK_OK(hl_context_set_adapters(ctx, set, scales, n_set, &err), &err);
    const int V = hl_model_get_config(m)->vocab_size;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)V);
    REQUIRE(out);
    if (one_by_one)
        for (int t = 0; t < n; t++) CHECK_OK(hl_context_eval(ctx, &ids[t], 1, t, out + (size_t)t * V, 0, &err), &err);
    else CHECK_OK(hl_context_eval(ctx, ids, n, 0, out, 1, &err), &err);
    hl_context_free(ctx);
    return out;
}

/* Unmerged adapters give the same bits one token at a time as batched, at
 * any thread count: a rank large enough that its products are split between
 * threads, two adapters on overlapping targets (one on a single part of
 * q/k/v and of gate/up), the LM head, on an f32 and a quantized base. */
static void test_decode_terms(void) {
    const char *files[2] = {"oracle/llamacpp/quant/models/q256-f32.gguf",
                            "oracle/llamacpp/quant/models/q256-Q4_K_M.gguf"};
    enum { N = 24 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 37 + 11) % 500);
    for (int f = 0; f < 2; f++) {
        hl_error err = {0};
        hl_model *m = NULL;
        CHECK_OK(hl_model_load(shared_path(files[f]), NULL, &m, &err), &err);
        if (!m) continue;
        hl_adapter *big = random_adapter(m, "q,k,v,o,gate,up,down,output", 64, 3);
        hl_adapter *small = random_adapter(m, "q,up", 8, 4);
        const hl_adapter *set[2] = {big, small};
        const float scales[2] = {1.0f, 0.5f};
        const size_t bytes = sizeof(float) * N * (size_t)hl_model_get_config(m)->vocab_size;
        float *base = decode_logits(m, NULL, NULL, 0, ids, N, 2, 1);
        float *batched = decode_logits(m, set, scales, 2, ids, N, 1, 0);
        const int threads[3] = {1, 2, 3};
        for (int k = 0; k < 3; k++) {
            float *one = decode_logits(m, set, scales, 2, ids, N, threads[k], 1);
            CHECK_MSG(!memcmp(one, batched, bytes), "%s: one token at a time on %d threads != batched on 1", files[f],
                      threads[k]);
            free(one);
        }
        double d = max_abs_diff(base, batched, bytes / sizeof(float));
        CHECK_MSG(d > 1e-2 && isfinite(d), "%s: the adapters moved the logits by %.3g only", files[f], d);
        printf("decode terms, %s: 1, 2 and 3 threads one token at a time == batched (adapters move logits by %.3g)\n",
               files[f], d);
        free(base);
        free(batched);
        hl_adapter_free(big);
        hl_adapter_free(small);
        hl_model_free(m);
    }
}

int main(void) {
    hl_error err = {0};
    hl_model *bin = NULL, *gguf = NULL;
    CHECK_OK(hl_model_load(shared_path(STORIES "stories260K.bin"), shared_path(STORIES "tok512.bin"), &bin, &err), &err);
    CHECK_OK(hl_model_load(shared_path(STORIES "stories260K-f32.gguf"), NULL, &gguf, &err), &err);
    REQUIRE(bin && gguf);
    test_llamacpp_merge(gguf);
    test_torch(bin, gguf);
    test_round_trips(gguf);
    test_refusals(gguf);
    test_start_from(gguf);
    test_decode_terms();
    hl_model_free(bin);
    hl_model_free(gguf);
    return hl_test_finish("test_lora");
}
