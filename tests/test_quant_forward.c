/* test_quant_forward.c: the forward pass over quantized bases.
 *
 * For each shared quantized file (every pure type and the _M mixes), with
 * the quantized products pinned to f32 ($HYPERLORA_QPRODUCT=f32):
 * - the logits of ids64.txt (one batch, every position) are within 2e-5 of
 *   llama.cpp's logits on the dequantized-f32 copy of the same file (the
 *   exact-arithmetic reference), and within 3e-2 of its logits on the
 *   quantized file (llama.cpp quantizes activations; this path does not);
 * - with the shared rank-4 adapter (Q8_0, Q4_K_M, Q6_K), the same against
 *   the *.lora_r4 references;
 * - threads 1 and 2, and batched against one token at a time, give
 *   identical bits.
 * With the default 8-bit activations (every block type: hl_qmatmul_a8):
 * - the logits are within 3e-2 of llama.cpp's on the quantized file (3.5e-2
 *   with the adapter), as llama.cpp's own are of exact arithmetic;
 * - threads 1 and 2, and batched against one token at a time, give
 *   identical bits;
 * - decoding several weights in one dispatch gives each its own bits;
 * - each SIMD level this build and CPU have gives the same bits, and each
 *   product agrees with a double-precision sum of the dequantized weights
 *   times the documented int8 activations;
 * - the projections stay quantized: the model owns no f32 copy of them.
 * A file with an infinite scale in one block is refused, naming the tensor;
 * so is an adapter whose q8_0 lora_a has one (and loads without it). */
#include "hyperlora.h"
#include "model/model.h"
#include "io/gguf.h"
#include "quant/quant_types.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "kernels/dispatch.h"
#include "kernels/kernel_choice.h"
#include "kernels/kernels.h"
#include "kernels/qweight_rows.h"
#include "util/half.h"
#include "util/threadpool.h"

#define T 64
#define V 512

static const char *types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
                              "Q5_K", "Q6_K", "Q3_K_M", "Q4_K_M", "Q5_K_M"};

static int32_t ids[T];

static void read_ids(void) {
    FILE *f = fopen(shared_path("oracle/llamacpp/quant/ids64.txt"), "r");
    REQUIRE(f);
    for (int i = 0; i < T; i++) REQUIRE(fscanf(f, "%d", &ids[i]) == 1);
    fclose(f);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static hl_context *new_ctx(const hl_model *m, int threads) {
    hl_context_params p = hl_context_default_params();
    p.n_threads = threads;
    p.n_ctx = T;
    hl_context *ctx = NULL;
    hl_error err = {0};
    CHECK_OK(hl_context_init(m, &p, &ctx, &err), &err);
    REQUIRE(ctx);
    return ctx;
}

static float *eval_all(const hl_model *m, const hl_adapter *lora, int threads, int one_by_one) {
    hl_context *ctx = new_ctx(m, threads);
    hl_error err = {0};
    if (lora) {
        const hl_adapter *set[1] = {lora};
        float one = 1.0f;
        CHECK_OK(hl_context_set_adapters(ctx, set, &one, 1, &err), &err);
    }
    float *logits = malloc(sizeof(float) * T * V);
    REQUIRE(logits);
    if (one_by_one)
        for (int t = 0; t < T; t++) CHECK_OK(hl_context_eval(ctx, &ids[t], 1, t, logits + (size_t)t * V, 0, &err), &err);
    else
        CHECK_OK(hl_context_eval(ctx, ids, T, 0, logits, 1, &err), &err);
    hl_context_free(ctx);
    return logits;
}

static void compare(const char *what, const float *got, const char *ref_name, double tol) {
    char rel[256];
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/logits/%s", ref_name);
    size_t size;
    float *ref = read_whole(shared_path(rel), &size);
    REQUIRE(ref && size == sizeof(float) * T * V);
    double d = max_abs_diff(got, ref, (size_t)T * V);
    CHECK_MSG(d <= tol, "%s: max |logit - %s| = %.3g > %.3g", what, ref_name, d, tol);
    printf("  %-22s vs %-40s max abs %.3g\n", what, ref_name, d);
    free(ref);
}

static void set_product(const char *v) { setenv("HYPERLORA_QPRODUCT", v, 1); }

/* The shared q256 file of a type (NULL, counted as a failure, when it does not load). */
static hl_model *load_type(const char *type) {
    char rel[256];
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", type);
    hl_model *m = NULL;
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path(rel), NULL, &m, &err), &err);
    return m;
}

static void check_type(const char *type) {
    hl_model *m = load_type(type);
    hl_error err = {0};
    if (!m) return;
    /* quantized projections are views of the file, not owned copies */
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int t = 0; t < HL_TARGET_OUTPUT; t++) {
            const hl_qweight *q = hl_model_qweight(m, l, t);
            CHECK_MSG(q && q->type != HL_TYPE_F32 && (const uint8_t *)q->data >= m->map_begin &&
                          (const uint8_t *)q->data < m->map_end,
                      "%s: layer %d target %d is not a quantized view of the file", type, l, t);
        }
    CHECK(hl_model_qweight(m, -1, HL_TARGET_OUTPUT) != NULL);
    CHECK_MSG(m->n_owned == 0, "%s: the model owns %d converted tensors", type, m->n_owned);

    set_product("f32");
    float *a = eval_all(m, NULL, 1, 0);
    char name[128];
    snprintf(name, sizeof name, "q256-%s.dequantized-f32.logits.bin", type);
    compare(type, a, name, 2e-5);
    snprintf(name, sizeof name, "q256-%s.logits.bin", type);
    compare(type, a, name, 3e-2);
    float *b = eval_all(m, NULL, 2, 0);
    CHECK_MSG(memcmp(a, b, sizeof(float) * T * V) == 0, "%s: threads 1 and 2 differ", type);
    float *c = eval_all(m, NULL, 2, 1);
    CHECK_MSG(memcmp(a, c, sizeof(float) * T * V) == 0, "%s: batched and one token at a time differ", type);
    free(a);
    free(b);
    free(c);

    /* The default: 8-bit activations where the types have them. */
    set_product("int8");
    a = eval_all(m, NULL, 1, 0);
    char what8[64];
    snprintf(what8, sizeof what8, "%s int8", type);
    snprintf(name, sizeof name, "q256-%s.logits.bin", type);
    compare(what8, a, name, 3e-2);
    snprintf(name, sizeof name, "q256-%s.dequantized-f32.logits.bin", type);
    compare(what8, a, name, 4e-2); /* our own activation error, for the record */
    b = eval_all(m, NULL, 2, 0);
    CHECK_MSG(memcmp(a, b, sizeof(float) * T * V) == 0, "%s int8: threads 1 and 2 differ", type);
    c = eval_all(m, NULL, 2, 1);
    CHECK_MSG(memcmp(a, c, sizeof(float) * T * V) == 0, "%s int8: batched and one token at a time differ", type);
    free(a);
    free(b);
    free(c);

    if (!strcmp(type, "Q8_0") || !strcmp(type, "Q4_K_M") || !strcmp(type, "Q6_K")) {
        hl_adapter *lora = NULL;
        CHECK_OK(hl_adapter_load(shared_path("oracle/llamacpp/quant/models/q256-lora-r4.gguf"), m, 0, &lora, &err),
                 &err);
        if (lora) {
            set_product("f32");
            float *x = eval_all(m, lora, 1, 0), *y = eval_all(m, lora, 2, 1);
            char what[64];
            snprintf(what, sizeof what, "%s + lora_r4", type);
            snprintf(name, sizeof name, "q256-%s.dequantized-f32.lora_r4.logits.bin", type);
            compare(what, x, name, 2e-5);
            snprintf(name, sizeof name, "q256-%s.lora_r4.logits.bin", type);
            compare(what, x, name, 3.5e-2);
            CHECK_MSG(memcmp(x, y, sizeof(float) * T * V) == 0, "%s + lora: 1 thread batched != 2 threads one by one",
                      type);
            free(x);
            free(y);
            set_product("int8");
            x = eval_all(m, lora, 1, 0);
            y = eval_all(m, lora, 2, 1);
            snprintf(what, sizeof what, "%s int8 + lora_r4", type);
            compare(what, x, name, 3.5e-2);
            CHECK_MSG(memcmp(x, y, sizeof(float) * T * V) == 0,
                      "%s int8 + lora: 1 thread batched != 2 threads one by one", type);
            free(x);
            free(y);
            hl_adapter_free(lora);
        }
    }
    hl_model_free(m);
}

/* The f32 original still loads as before: plain float views, no qweights. */
static void check_f32(void) {
    hl_model *m = NULL;
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path("oracle/llamacpp/quant/models/q256-f32.gguf"), NULL, &m, &err), &err);
    if (!m) return;
    CHECK(hl_model_qweight(m, 0, HL_TARGET_Q) == NULL && m->layers[0].wq != NULL);
    float *a = eval_all(m, NULL, 1, 0);
    compare("f32", a, "q256-f32.logits.bin", 2e-5);
    free(a);
    hl_model_free(m);
}

/* One block of blk.0.attn_k.weight gets an infinite d: refused, named. */
static void check_bad_scale(void) {
    size_t size;
    uint8_t *buf = read_whole(shared_path("oracle/llamacpp/quant/models/q256-Q8_0.gguf"), &size);
    REQUIRE(buf);
    hl_gguf *g = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open_memory(buf, size, "mem", &g, &err), &err);
    REQUIRE(g);
    const hl_gguf_tensor *t = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, "blk.1.attn_k.weight"));
    REQUIRE(t && t->type == HL_TYPE_Q8_0);
    size_t at = (size_t)((const uint8_t *)t->data - buf) + 5 * 34; /* block 5's d */
    hl_gguf_free(g);
    buf[at] = 0x00;
    buf[at + 1] = 0x7c;
    const char *path = "test_quant_forward_bad_scale.gguf";
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(buf, 1, size, f) == size);
    fclose(f);
    hl_model *m = NULL;
    hl_status s = hl_model_load(path, NULL, &m, &err);
    CHECK(s == HL_ERR_FORMAT && m == NULL);
    CHECK_MSG(strstr(err.msg, "blk.1.attn_k.weight") && strstr(err.msg, "block 5") && strstr(err.msg, "non-finite"),
              "message: %s", err.msg);
    hl_model_free(m);
    remove(path);
    free(buf);
}

/* The shared adapter with every lora_a (ne0 = 256 or 768: whole blocks)
 * stored as q8_0; block 2 of one of them gets an infinite d when bad. */
static void write_q8_adapter(const char *path, int bad) {
    hl_gguf *g = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(shared_path("oracle/llamacpp/quant/models/q256-lora-r4.gguf"), &g, &err), &err);
    REQUIRE(g);
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) REQUIRE(hl_gguf_writer_copy_kv(w, g, i) == HL_OK);
    int64_t nt = hl_gguf_n_tensors(g);
    uint8_t **bufs = calloc((size_t)nt, sizeof *bufs);
    REQUIRE(bufs);
    int bad_done = 0;
    for (int64_t i = 0; i < nt; i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        size_t nl = strlen(name);
        if (t->type == HL_TYPE_F32 && nl > 7 && !strcmp(name + nl - 7, ".lora_a") && t->ne[0] % 32 == 0) {
            int64_t n = t->ne[0] * t->ne[1];
            float *x = malloc(sizeof(float) * (size_t)n);
            bufs[i] = malloc((size_t)(n / 32 * 34));
            REQUIRE(x && bufs[i]);
            memcpy(x, t->data, sizeof(float) * (size_t)n);
            hl_quantize_blocks(HL_TYPE_Q8_0, x, bufs[i], n / 32);
            free(x);
            if (bad && !bad_done && !strcmp(name, "blk.1.ffn_up.weight.lora_a")) {
                bufs[i][2 * 34] = 0x00;
                bufs[i][2 * 34 + 1] = 0x7c;
                bad_done = 1;
            }
            CHECK_OK(hl_gguf_writer_add_tensor(w, name, HL_TYPE_Q8_0, 2, t->ne, bufs[i], &err), &err);
        } else {
            CHECK_OK(hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err), &err);
        }
    }
    CHECK(!bad || bad_done);
    CHECK_OK(hl_gguf_writer_write_file(w, path, &err), &err);
    hl_gguf_writer_free(w);
    for (int64_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    hl_gguf_free(g);
}

static void check_q8_adapter(void) {
    hl_model *m = NULL;
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path("oracle/llamacpp/quant/models/q256-Q8_0.gguf"), NULL, &m, &err), &err);
    REQUIRE(m);
    const char *path = "test_quant_forward_q8_adapter.gguf";
    write_q8_adapter(path, 0);
    hl_adapter *a = NULL;
    CHECK_OK(hl_adapter_load(path, m, 0, &a, &err), &err);
    CHECK(a != NULL);
    hl_adapter_free(a);
    write_q8_adapter(path, 1);
    a = NULL;
    hl_status s = hl_adapter_load(path, m, 0, &a, &err);
    CHECK_MSG(s == HL_ERR_FORMAT && !a && strstr(err.msg, "blk.1.ffn_up.weight.lora_a (q8_0): block 2 has a non-finite scale"),
              "%s", err.msg);
    remove(path);
    hl_model_free(m);
}

/* hl_qmatmul_a8 at every level against a double-precision sum of the
 * dequantized weights times the int8 activations made by the documented
 * rule (d = max|x|/127, q = lrintf(x·(127/max|x|))): a wrong nibble, scale
 * or lane shows as a difference far above float rounding. */
#ifdef HL_ISA_DISPATCH
#define A8_DECL(level)                                                                                                 \
    void hl_qmatmul_a8_##level(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w,            \
                               int64_t T_, void *scratch, int64_t scratch_bytes);                                      \
    void hl_qmatmul_a8_group_##level(hl_pool *pool, const float *x, const hl_qpart *parts, int n, void *scratch,       \
                                     int64_t scratch_bytes);
A8_DECL(scalar)
A8_DECL(avx2)
A8_DECL(avx512)
A8_DECL(avx2vnni)
A8_DECL(avx512vnni)
#endif

static double rand_normal(uint64_t *s) { /* xorshift64*, Box-Muller */
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        u[i] = ((double)((*s * 2685821657736338717ULL) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static int vnni_checked; /* twin comparisons made */

/* Batch size changes no bit: 13 tokens (two q8_0 panels, the second part
 * padding) through a scratch of one panel, so they go in two chunks; and
 * through a scratch too small for a panel (the per-token path), against
 * each token alone (the decoding path). The first nt tokens are x's. */
static void check_a8_batch(const char *type, const hl_qweight *w, const float *x, int64_t nt) {
    const int64_t K = w->cols, O = w->rows, NT = 13;
    float *xs = malloc(sizeof(float) * (size_t)(NT * K)), *one = malloc(sizeof(float) * (size_t)(NT * O));
    float *batch = malloc(sizeof(float) * (size_t)(NT * O));
    const int64_t sb = hl_qmatmul_a8_scratch_bytes(K);
    void *scratch = malloc((size_t)sb);
    REQUIRE(xs && one && batch && scratch);
    for (int64_t i = 0; i < NT * K; i++) xs[i] = i < nt * K ? x[i] : x[i % (nt * K)] * (float)(1 + i / (nt * K));
    for (int64_t t = 0; t < NT; t++) hl_qmatmul_a8(NULL, one + t * O, O, xs + t * K, w, 1, scratch, sb);
    hl_qmatmul_a8(NULL, batch, O, xs, w, NT, scratch, sb);
    CHECK_MSG(memcmp(one, batch, sizeof(float) * (size_t)(NT * O)) == 0, "%s: 13 tokens at once differ from one at a time",
              type);
    memset(batch, 0xff, sizeof(float) * (size_t)(NT * O));
    hl_qmatmul_a8(NULL, batch, O, xs, w, NT, scratch, K + K / 4 + K / 64 + 128);
    CHECK_MSG(memcmp(one, batch, sizeof(float) * (size_t)(NT * O)) == 0,
              "%s: 13 tokens through a one-token scratch differ from one at a time", type);
    free(xs);
    free(one);
    free(batch);
    free(scratch);
}

/* unit_x: every activation ±1, so each one quantizes to ±127 */
static void check_a8_weight(const char *type, int target, const hl_qweight *w, int unit_x) {
    REQUIRE(w && hl_qmatmul_a8_supports(w->type));
    const int64_t K = w->cols, O = w->rows, nt = 5, blk = hl_qmatmul_a8_form(w->type) == 0 ? 32 : 256;
    float *x = malloc(sizeof(float) * (size_t)(nt * K)), *row = malloc(sizeof(float) * (size_t)K);
    float *out = malloc(sizeof(float) * (size_t)(nt * O)), *other = malloc(sizeof(float) * (size_t)(nt * O));
    int64_t sb = hl_qmatmul_a8_scratch_bytes(K) * 2; /* two tokens at a time: the chunking is exercised too */
    void *scratch = malloc((size_t)sb);
    REQUIRE(x && row && out && other && scratch);
    uint64_t s = 7;
    for (int64_t i = 0; i < nt * K; i++)
        x[i] = unit_x ? (i % 5 == 2 || i % 7 == 0 ? -1.0f : 1.0f) : (float)(rand_normal(&s) * (i % 97 == 0 ? 8.0 : 1.0));
    for (int64_t i = 0; i < K; i++) x[3 * K + i] = 0.0f; /* an all-zero token: scale 0 */
    hl_qmatmul_a8(NULL, out, O, x, w, nt, scratch, sb);
    double worst = 0;
    for (int64_t o = 0; o < O; o++) {
        hl_qweight_row(w, o, row);
        for (int64_t t = 0; t < nt; t++) {
            double sum = 0, mag = 0;
            for (int64_t b0 = 0; b0 < K; b0 += blk) {
                float amax = 0;
                for (int64_t i = 0; i < blk; i++) amax = fabsf(x[t * K + b0 + i]) > amax ? fabsf(x[t * K + b0 + i]) : amax;
                const float id = amax > 0 ? 127.0f / amax : 0.0f;
                const float d = blk == 32 ? hl_f16_to_f32(hl_f32_to_f16(amax / 127.0f)) : amax / 127.0f;
                for (int64_t i = 0; i < blk; i++) {
                    long q = lrintf(x[t * K + b0 + i] * id);
                    q = q > 127 ? 127 : q < -127 ? -127 : q;
                    double term = (double)row[b0 + i] * (double)d * (double)q;
                    sum += term;
                    mag += fabs(term);
                }
            }
            double e = fabs((double)out[t * O + o] - sum) / (mag + 1e-30);
            if (t == 3) CHECK_MSG(out[t * O + o] == 0.0f, "%s: a zero token gives %g", type, out[t * O + o]);
            if (e > worst) worst = e;
        }
    }
    CHECK_MSG(worst < 2e-6, "%s target %d: int8 product off the double-precision sum by %.3g of its magnitude", type,
              target, worst);
    printf("  %-8s target %d int8 product vs double: %.2g of the magnitude\n", type, target, worst);
    check_a8_batch(type, w, x, nt);
#ifdef HL_ISA_DISPATCH
    for (int level = 0; level < 3; level++) {
        if (!hl_isa_available((hl_isa)level)) continue;
        memset(other, 0xff, sizeof(float) * (size_t)(nt * O));
        if (level == 0) hl_qmatmul_a8_scalar(NULL, other, O, x, w, nt, scratch, sb);
        if (level == 1) hl_qmatmul_a8_avx2(NULL, other, O, x, w, nt, scratch, sb);
        if (level == 2) hl_qmatmul_a8_avx512(NULL, other, O, x, w, nt, scratch, sb);
        CHECK_MSG(memcmp(out, other, sizeof(float) * (size_t)(nt * O)) == 0, "%s: level %s gives other bits", type,
                  hl_isa_name((hl_isa)level));
        /* the level's VNNI twin (main turned the forwarding off, so the
         * call above ran the plain form) */
        if (level == 0 || !hl_isa_available((hl_isa)level) || !hl_cpu_has_vnni((hl_isa)level)) continue;
        memset(other, 0xff, sizeof(float) * (size_t)(nt * O));
        if (level == 1) hl_qmatmul_a8_avx2vnni(NULL, other, O, x, w, nt, scratch, sb);
        if (level == 2) hl_qmatmul_a8_avx512vnni(NULL, other, O, x, w, nt, scratch, sb);
        CHECK_MSG(memcmp(out, other, sizeof(float) * (size_t)(nt * O)) == 0, "%s: level %s with VNNI gives other bits",
                  type, hl_isa_name((hl_isa)level));
        /* and the twin's decoding path (one token per call) */
        memset(other, 0xff, sizeof(float) * (size_t)(nt * O));
        for (int64_t t = 0; t < nt; t++) {
            if (level == 1) hl_qmatmul_a8_avx2vnni(NULL, other + t * O, O, x + t * K, w, 1, scratch, sb);
            if (level == 2) hl_qmatmul_a8_avx512vnni(NULL, other + t * O, O, x + t * K, w, 1, scratch, sb);
        }
        CHECK_MSG(memcmp(out, other, sizeof(float) * (size_t)(nt * O)) == 0,
                  "%s: level %s with VNNI, one token at a time, gives other bits", type, hl_isa_name((hl_isa)level));
        vnni_checked++;
    }
#endif
    free(x);
    free(row);
    free(out);
    free(other);
    free(scratch);
}

static void check_a8_kernel(const char *type, int target) {
    hl_model *m = load_type(type);
    if (!m) return;
    check_a8_weight(type, target, hl_model_qweight(m, 1, target), 0);
    hl_model_free(m);
}

/* A weight of K columns and O rows made here. A 32-element type at K = 96:
 * a row length that is not a multiple of 64 puts every field of a quantized
 * token at an offset the shared files (K = 256, 768) never reach. The K
 * types at an odd number of rows: decoding takes rows in pairs where the
 * level can, and a row left over alone (at 1 row, only that one). */
static void check_a8_made(uint32_t type, const char *name, int64_t K, int64_t O) {
    const int64_t nb = K / (hl_qmatmul_a8_form(type) == 0 ? 32 : 256);
    uint64_t row_bytes = 0;
    REQUIRE(hl_type_row_bytes(type, K, &row_bytes));
    float *w = malloc(sizeof(float) * (size_t)(K * O));
    uint8_t *blocks = malloc((size_t)(row_bytes * O));
    REQUIRE(w && blocks);
    uint64_t s = 11;
    for (int64_t i = 0; i < K * O; i++) w[i] = (float)(0.05 * rand_normal(&s));
    for (int64_t o = 0; o < O; o++) hl_quantize_blocks(type, w + o * K, blocks + o * row_bytes, nb);
    const hl_qweight q = {blocks, type, O, K, row_bytes};
    check_a8_weight(name, -1, &q, 0);
    free(w);
    free(blocks);
}

/* q8_0 at its extremes: every weight byte -128 or 127 against activations
 * that all quantize to ±127, the largest pair sums the two-step byte product
 * can meet (2·128·127). The plain form must not saturate, so every level,
 * with and without VNNI, and the double sum agree. */
static void check_a8_q8_extremes(void) {
    const int64_t K = 64, O = 4, nb = K / 32;
    uint64_t row_bytes = 0;
    REQUIRE(hl_type_row_bytes(HL_TYPE_Q8_0, K, &row_bytes));
    uint8_t *blocks = calloc((size_t)O, (size_t)row_bytes);
    REQUIRE(blocks);
    for (int64_t o = 0; o < O; o++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = blocks + o * row_bytes + 34 * b;
            const uint16_t one = hl_f32_to_f16(1.0f);
            memcpy(blk, &one, 2);
            for (int i = 0; i < 32; i++)
                blk[2 + i] = o == 0 ? 0x80 : o == 1 ? 0x7f : o == 2 ? (i % 2 ? 0x80 : 0x7f) : (i % 3 ? 0x80 : 0x81);
        }
    const hl_qweight q = {blocks, HL_TYPE_Q8_0, O, K, row_bytes};
    check_a8_weight("q8_0 extremes", -1, &q, 1);
    free(blocks);
}

/* Decoding several weights in one dispatch (hl_qmatmul_a8_group, as q, k
 * and v decode) gives each part exactly its own call's bits: types that
 * read differently arranged tokens side by side, or one type whose rows a
 * thread pairs across the parts' boundaries; row counts that put the
 * threads' boundaries inside parts, 1 to 3 threads, every level and VNNI
 * twin, and a scratch too small for the group (the parts then run one at a
 * time). */
#define NP HL_QGROUP_MAX
static void check_a8_group(const char *what, const uint32_t type[NP], const int64_t rows[NP]) {
    enum { K = 512 };
    uint8_t *blocks[NP];
    hl_qweight w[NP];
    float *alone[NP], *got[NP], x[K], wrow[K];
    uint64_t s = 23;
    for (int i = 0; i < K; i++) x[i] = (float)rand_normal(&s);
    for (int p = 0; p < NP; p++) {
        uint64_t row_bytes = 0;
        REQUIRE(hl_type_row_bytes(type[p], K, &row_bytes));
        blocks[p] = malloc((size_t)(row_bytes * (uint64_t)rows[p]));
        alone[p] = malloc(sizeof(float) * (size_t)rows[p]);
        got[p] = malloc(sizeof(float) * (size_t)rows[p]);
        REQUIRE(blocks[p] && alone[p] && got[p]);
        for (int64_t o = 0; o < rows[p]; o++) {
            for (int i = 0; i < K; i++) wrow[i] = (float)(0.05 * rand_normal(&s));
            hl_quantize_blocks(type[p], wrow, blocks[p] + o * row_bytes,
                               K / (hl_qmatmul_a8_form(type[p]) == 0 ? 32 : 256));
        }
        const hl_qweight q = {blocks[p], type[p], rows[p], K, row_bytes};
        w[p] = q;
    }
    const int64_t sb = hl_qmatmul_a8_scratch_bytes(K), small = K + K / 4 + K / 64 + 128;
    void *scratch = malloc((size_t)sb);
    REQUIRE(scratch);
    for (int p = 0; p < NP; p++) hl_qmatmul_a8(NULL, alone[p], rows[p], x, &w[p], 1, scratch, sb);
    hl_qpart parts[NP];
    for (int p = 0; p < NP; p++) {
        parts[p].out = got[p];
        parts[p].w = &w[p];
    }
    int compared = 0;
    for (int threads = 1; threads <= 3; threads++)
        for (int n = 1; n <= NP; n++)
            for (int tight = 0; tight < 2; tight++)
                for (int level = -1; level < 6; level++) {
#ifdef HL_ISA_DISPATCH
                    const int lv = level < 0 ? -1 : level % 3, twin = level >= 3;
                    if (lv >= 0 &&
                        (!hl_isa_available((hl_isa)lv) || (twin && (lv == 0 || !hl_cpu_has_vnni((hl_isa)lv)))))
                        continue;
#else
                    const int lv = level, twin = 0;
                    if (level >= 0) continue;
#endif
                    hl_pool *pool = threads > 1 ? hl_pool_init(threads) : NULL;
                    for (int p = 0; p < n; p++) memset(got[p], 0xff, sizeof(float) * (size_t)rows[p]);
                    const int64_t bytes = tight ? small : sb;
                    if (lv < 0) hl_qmatmul_a8_group(pool, x, parts, n, scratch, bytes);
#ifdef HL_ISA_DISPATCH
                    else if (lv == 0) hl_qmatmul_a8_group_scalar(pool, x, parts, n, scratch, bytes);
                    else if (lv == 1 && !twin) hl_qmatmul_a8_group_avx2(pool, x, parts, n, scratch, bytes);
                    else if (lv == 2 && !twin) hl_qmatmul_a8_group_avx512(pool, x, parts, n, scratch, bytes);
                    else if (lv == 1) hl_qmatmul_a8_group_avx2vnni(pool, x, parts, n, scratch, bytes);
                    else hl_qmatmul_a8_group_avx512vnni(pool, x, parts, n, scratch, bytes);
#endif
                    hl_pool_free(pool);
                    for (int p = 0; p < n; p++)
                        CHECK_MSG(memcmp(got[p], alone[p], sizeof(float) * (size_t)rows[p]) == 0,
                                  "%s: group of %d, part %d, %d threads, level %d%s%s: other bits than alone", what, n,
                                  p, threads, lv, twin ? " (VNNI)" : "", tight ? ", small scratch" : "");
                    compared++;
                }
    printf("  decoding groups (%s) against one call per weight: %d comparisons\n", what, compared);
    for (int p = 0; p < NP; p++) {
        free(blocks[p]);
        free(alone[p]);
        free(got[p]);
    }
    free(scratch);
}

/* hl_qgroup_row_at, the split of a decoding group between threads: q and
 * k in q4_K and v in q6_K at K = 768 (432 and 630 bytes a row), as s110M's
 * q4_K_M layers. Every byte position maps to a row at a panel boundary of
 * its part, never backwards; the middle byte splits the bytes, not the
 * rows, evenly (split by rows, the second thread would read 31% more). */
static void check_group_split(void) {
    const int64_t first[4] = {0, 768, 1536, 2304}, row_bytes[3] = {432, 432, 630}, panel = 16;
    int64_t unit_first[4] = {0};
    for (int i = 0; i < 3; i++) unit_first[i + 1] = unit_first[i] + (first[i + 1] - first[i]) * row_bytes[i];
    const int64_t total = unit_first[3];
    CHECK(hl_qgroup_row_at(first, unit_first, 3, 0, panel) == 0);
    CHECK(hl_qgroup_row_at(first, unit_first, 3, total, panel) == first[3]);
    CHECK(hl_qgroup_row_at(first, unit_first, 3, total + 5, panel) == first[3]);
    int64_t prev = 0, bad_order = 0, bad_panel = 0;
    for (int64_t u = 0; u <= total; u += 97) {
        const int64_t r = hl_qgroup_row_at(first, unit_first, 3, u, panel);
        if (r < prev) bad_order++;
        prev = r;
        int i = 0;
        while (i < 3 && r >= first[i + 1]) i++;
        if (i < 3 && (r - first[i]) % panel) bad_panel++;
    }
    CHECK_MSG(bad_order == 0, "group split: %lld byte positions map to an earlier row than the one before",
              (long long)bad_order);
    CHECK_MSG(bad_panel == 0, "group split: %lld rows off their part's panel boundaries", (long long)bad_panel);
    const int64_t mid = hl_qgroup_row_at(first, unit_first, 3, total / 2, panel);
    int64_t below = 0;
    for (int i = 0; i < 3; i++) {
        const int64_t hi = mid < first[i + 1] ? mid : first[i + 1];
        if (hi > first[i]) below += (hi - first[i]) * row_bytes[i];
    }
    const int64_t off = below > total / 2 ? below - total / 2 : total / 2 - below;
    CHECK_MSG(off <= panel * 630, "group split: the middle byte gives the first thread %lld of %lld bytes (row %lld)",
              (long long)below, (long long)total, (long long)mid);
    printf("  decoding group split by bytes: row %lld of %lld at the middle byte (%lld of %lld bytes before it)\n",
           (long long)mid, (long long)first[3], (long long)below, (long long)total);
}

int main(void) {
    /* the level functions below run their plain form; the VNNI twins are
     * called by name (check_a8_weight) */
    setenv("HYPERLORA_VNNI", "off", 1);
    read_ids();
    check_a8_q8_extremes();
    check_a8_kernel("Q8_0", HL_TARGET_DOWN);
    check_a8_kernel("Q4_0", HL_TARGET_DOWN);
    check_a8_kernel("Q4_1", HL_TARGET_DOWN);
    check_a8_kernel("Q5_0", HL_TARGET_DOWN);
    check_a8_kernel("Q5_1", HL_TARGET_DOWN);
    check_a8_kernel("Q2_K", HL_TARGET_DOWN);
    check_a8_kernel("Q3_K", HL_TARGET_DOWN);
    check_a8_kernel("Q4_K", HL_TARGET_DOWN);
    check_a8_kernel("Q5_K", HL_TARGET_DOWN);
    check_a8_kernel("Q6_K", HL_TARGET_DOWN);
    check_a8_kernel("Q6_K", HL_TARGET_GATE);
    check_a8_made(HL_TYPE_Q8_0, "q8_0/96", 96, 7);
    check_a8_made(HL_TYPE_Q4_0, "q4_0/96", 96, 7);
    check_a8_made(HL_TYPE_Q4_1, "q4_1/96", 96, 7);
    check_a8_made(HL_TYPE_Q5_0, "q5_0/96", 96, 7);
    check_a8_made(HL_TYPE_Q5_1, "q5_1/96", 96, 7);
    check_a8_made(HL_TYPE_Q4_K, "q4_K x7", 512, 7);
    check_a8_made(HL_TYPE_Q5_K, "q5_K x7", 512, 7);
    check_a8_made(HL_TYPE_Q6_K, "q6_K x7", 512, 7);
    /* one-block rows, 13 of them: decoding pairs rows 0-5 with 6-11 and takes row 12 alone */
    check_a8_made(HL_TYPE_Q4_K, "q4_K x13", 256, 13);
    check_a8_made(HL_TYPE_Q6_K, "q6_K x13", 256, 13);
    check_a8_made(HL_TYPE_Q4_K, "q4_K x1", 256, 1);
    check_a8_made(HL_TYPE_Q6_K, "q6_K x1", 256, 1);
    {
        const uint32_t mixed[NP] = {HL_TYPE_Q4_K, HL_TYPE_Q6_K, HL_TYPE_Q8_0, HL_TYPE_Q5_K};
        const uint32_t q4k[NP] = {HL_TYPE_Q4_K, HL_TYPE_Q4_K, HL_TYPE_Q4_K, HL_TYPE_Q4_K};
        const uint32_t q6k[NP] = {HL_TYPE_Q6_K, HL_TYPE_Q6_K, HL_TYPE_Q6_K, HL_TYPE_Q5_K};
        /* q3_K's token is in the blocks' own order; q6_K and q4_K reorder it */
        const uint32_t k_orders[NP] = {HL_TYPE_Q3_K, HL_TYPE_Q6_K, HL_TYPE_Q2_K, HL_TYPE_Q4_K};
        const int64_t rows[NP] = {37, 13, 21, 16}, rows2[NP] = {7, 30, 1, 19};
        check_group_split();
        check_a8_group("mixed types", mixed, rows);
        check_a8_group("q4_K", q4k, rows);
        check_a8_group("q6_K, then q5_K", q6k, rows2);
        check_a8_group("q3_K, q6_K, q2_K, q4_K", k_orders, rows);
    }
    check_f32();
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) check_type(types[i]);
    check_bad_scale();
    check_q8_adapter();
    printf("  VNNI twins compared with the plain form: %d products\n", vnni_checked);
    return hl_test_finish("test_quant_forward");
}
