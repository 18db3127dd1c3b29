/* test_quant_quantize.c: quantizing f32 to ggml blocks against
 * llama-quantize's own output.
 *
 * Every 2-D tensor of the shared q256-f32.gguf, quantized by
 * hl_quantize_blocks, must have exactly the bytes of the same tensor in
 * q256-<TYPE>.gguf (llama-quantize --pure, no importance matrix), for each
 * type hl_quantize_supported accepts. Then `hyperlora quantize` must write
 * the whole file byte for byte (metadata, tensor order, padding), and so
 * must `--type q3_K_M|q4_K_M|q5_K_M` (llama-quantize's mixes; the test
 * model has 2 layers, so only the layer rules that 2 layers reach are
 * exercised). A block
 * of zeros quantizes to zero scales, and its dequantization is zero. Inputs
 * that cannot be quantized are refused naming the file and tensor, and no
 * output is left behind. */
#include "io/gguf.h"
#include "model/quantize_model.h"
#include "quant/quantize.h"
#include "test_util.h"

#include <sys/wait.h>

static const struct { const char *name; uint32_t type; } types[] = {
    {"Q8_0", HL_TYPE_Q8_0}, {"Q4_0", HL_TYPE_Q4_0}, {"Q4_1", HL_TYPE_Q4_1}, {"Q5_0", HL_TYPE_Q5_0},
    {"Q5_1", HL_TYPE_Q5_1}, {"Q2_K", HL_TYPE_Q2_K}, {"Q3_K", HL_TYPE_Q3_K}, {"Q4_K", HL_TYPE_Q4_K},
    {"Q5_K", HL_TYPE_Q5_K}, {"Q6_K", HL_TYPE_Q6_K}};

static void check_tensors(const hl_gguf *f32, const char *name, uint32_t type) {
    char rel[256];
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", name);
    hl_gguf *q = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(shared_path(rel), &q, &err), &err);
    if (!q) return;
    const hl_type_traits *tr = hl_type_traits_of(type);
    int same = 0, n2d = 0;
    for (int64_t i = 0; i < hl_gguf_n_tensors(f32); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(f32, i);
        if (t->n_dims != 2) continue;
        n2d++;
        char tn[128];
        snprintf(tn, sizeof tn, "%.*s", (int)t->name.len, t->name.data);
        const hl_gguf_tensor *r = hl_gguf_tensor_at(q, hl_gguf_find_tensor(q, tn));
        REQUIRE(r && r->type == type);
        int64_t n = t->ne[0] * t->ne[1], nb = n / tr->block_elems;
        float *x = malloc(sizeof(float) * n);
        uint8_t *out = malloc((size_t)(nb * tr->block_bytes));
        REQUIRE(x && out && (uint64_t)(nb * tr->block_bytes) == r->nbytes);
        memcpy(x, t->data, sizeof(float) * n);
        hl_quantize_blocks(type, x, out, nb);
        int64_t bad = -1;
        for (int64_t b = 0; b < nb && bad < 0; b++)
            if (memcmp(out + b * tr->block_bytes, (const uint8_t *)r->data + b * tr->block_bytes, (size_t)tr->block_bytes))
                bad = b;
        CHECK_MSG(bad < 0, "%s %s: block %lld of %lld differs from llama-quantize's", name, tn, (long long)bad,
                  (long long)nb);
        same += bad < 0;
        free(x);
        free(out);
    }
    printf("  %-5s %d/%d tensors byte-identical\n", name, same, n2d);
    hl_gguf_free(q);
}

static void check_zero_block(uint32_t type) {
    const hl_type_traits *tr = hl_type_traits_of(type);
    float x[256] = {0}, y[256];
    uint8_t b[256];
    memset(b, 0xaa, sizeof b);
    hl_quantize_blocks(type, x, b, 1);
    CHECK(hl_quant_find_bad_scale(type, b, 1) == -1);
    hl_dequantize(type, b, y, 1);
    int zero = 1;
    for (int j = 0; j < tr->block_elems; j++) zero &= y[j] == 0.0f;
    CHECK_MSG(zero, "%s: a zero block does not come back as zeros", tr->name);
}

/* `hyperlora quantize` writes llama-quantize's file, byte for byte. */
static void check_cli(const char *name) {
    char out[128], cmd[2048], rel[256];
    snprintf(out, sizeof out, "test_quant_quantize_%s.gguf", name);
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", name);
    char type_arg[16];
    snprintf(type_arg, sizeof type_arg, "%s", name);
    for (char *p = type_arg; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' -o '%s' --type %s 2>/dev/null", HL_CLI_PATH,
             shared_path("oracle/llamacpp/quant/models/q256-f32.gguf"), out, type_arg);
    int rc = system(cmd);
    CHECK_MSG(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "quantize --type %s failed", type_arg);
    size_t na, nb;
    uint8_t *a = read_whole(out, &na), *b = read_whole(shared_path(rel), &nb);
    REQUIRE(b);
    size_t first = 0;
    while (a && first < na && first < nb && a[first] == b[first]) first++;
    CHECK_MSG(a && na == nb && first == na, "quantize --type %s: %zu bytes, llama-quantize's %zu; first difference at %zu",
              type_arg, a ? na : 0, nb, first);
    if (a && na == nb && first == na) printf("  quantize --type %-5s: %zu bytes, identical to llama-quantize's\n", type_arg, na);
    free(a);
    free(b);
    remove(out);
}

static void check_refusals(void) {
    struct { const char *in; uint32_t type; hl_status want; const char *msg; } cases[] = {
        {"oracle/llamacpp/quant/models/q256-Q4_0.gguf", HL_TYPE_Q8_0, HL_ERR_UNSUPPORTED, "is already q4_0"},
        {"models/stories260K/stories260K-f32.gguf", HL_TYPE_Q8_0, HL_ERR_INVALID_ARG,
         "blk.0.ffn_down.weight: rows of 172 elements are not whole q8_0 blocks of 32"},
        {"oracle/llamacpp/quant/models/q256-f32.gguf", HL_TYPE_F32, HL_ERR_UNSUPPORTED, "cannot be written"},
        {"oracle/llamacpp/quant/models/q256-lora-r4.gguf", HL_TYPE_Q8_0, HL_ERR_INVALID_ARG, "this is an adapter"},
    };
    const char *out = "test_quant_quantize_refused.gguf";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_error err = {0};
        remove(out);
        hl_status s = hl_model_quantize_file(shared_path(cases[i].in), out, cases[i].type, &err);
        CHECK_MSG(s == cases[i].want && strstr(err.msg, cases[i].msg), "%s: %s: %s", cases[i].in, hl_status_name(s),
                  err.msg);
        FILE *f = fopen(out, "rb");
        CHECK_MSG(f == NULL, "%s: an output was left behind", cases[i].in);
        if (f) fclose(f);
    }
    CHECK(hl_quantize_type_by_name("Q4_K") == HL_TYPE_Q4_K && hl_quantize_type_by_name("q8_0") == HL_TYPE_Q8_0);
    CHECK(hl_quantize_type_by_name("q4_k_m") == -1 && hl_quantize_type_by_name("f32") == -1 &&
          hl_quantize_type_by_name("") == -1);
}

int main(void) {
    check_refusals();
    hl_gguf *f32 = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(shared_path("oracle/llamacpp/quant/models/q256-f32.gguf"), &f32, &err), &err);
    REQUIRE(f32);
    int n_supported = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (!hl_quantize_supported(types[i].type)) continue;
        n_supported++;
        check_zero_block(types[i].type);
        check_tensors(f32, types[i].name, types[i].type);
        check_cli(types[i].name);
    }
    CHECK(n_supported == 10);
    check_cli("Q3_K_M");
    check_cli("Q4_K_M");
    check_cli("Q5_K_M");
    CHECK(hl_quantize_mix_by_name("Q4_K_M") == HL_QUANT_Q4_K_M && hl_quantize_mix_by_name("q3_k_m") == HL_QUANT_Q3_K_M);
    CHECK(hl_quantize_mix_by_name("q4_K") == -1 && hl_quantize_mix_by_name("q4_K_S") == -1);
    CHECK(!hl_quantize_supported(HL_TYPE_F32) && !hl_quantize_supported(16));
    hl_gguf_free(f32);
    return hl_test_finish("test_quant_quantize");
}
