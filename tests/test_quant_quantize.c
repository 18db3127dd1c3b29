/* test_quant_quantize.c: quantizing f32 to ggml blocks against
 * llama-quantize's own output.
 *
 * Every 2-D tensor of the shared q256-f32.gguf, quantized by
 * hl_quantize_blocks, must have exactly the bytes of the same tensor in
 * q256-<TYPE>.gguf (llama-quantize --pure, no importance matrix), for each
 * type hl_quantize_supported accepts. Then `hyperlora quantize` must write
 * the whole file byte for byte (metadata, tensor order, padding), and so
 * must `--type q3_K_M|q4_K_M|q5_K_M` (llama-quantize's mixes). The _S/_L
 * mixes are checked against llama-quantize's output recorded in
 * tests/data/quant_mix_types.txt: the sha256 of the same 2-layer file, and
 * each tensor's type in a 16-layer and an 80-layer GQA model (where the
 * layer rules and the 70B-class rule apply). A block
 * of zeros quantizes to zero scales, and its dequantization is zero. Inputs
 * that cannot be quantized are refused naming the file and tensor, and no
 * output is left behind. */
#include "io/gguf.h"
#include "model/quantize_model.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "sha256.h"

#include <sys/wait.h>

#ifndef HL_SOURCE_DIR
#define HL_SOURCE_DIR "."
#endif

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

/* The line of quant_mix_types.txt for (model, mix), after "model mix ", or NULL. */
static const char *recorded(const char *data, const char *model, const char *mix, char *line, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "%s %s ", model, mix);
    for (const char *p = data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, strlen(key))) continue;
        const char *b = p + strlen(key), *e = strchr(b, '\n');
        size_t n = e ? (size_t)(e - b) : strlen(b);
        if (n >= cap) return NULL;
        memcpy(line, b, n);
        line[n] = 0;
        return line;
    }
    return NULL;
}

/* The digit quant_mix_types.txt uses for a type: its bits (3 q3_K .. 6 q6_K). */
static char type_char(uint32_t t) {
    switch (t) {
    case HL_TYPE_Q2_K: return '2';
    case HL_TYPE_Q3_K: return '3';
    case HL_TYPE_Q4_K: return '4';
    case HL_TYPE_Q5_K: return '5';
    case HL_TYPE_Q6_K: return '6';
    case HL_TYPE_Q8_0: return '8';
    default: return '?';
    }
}

/* The file's 2-D types in the recorded form: per role, layer by layer,
 * run-length coded; then output and token_embd. */
static void type_summary(const hl_gguf *g, int n_layers, char *out, size_t cap) {
    static const char *roles[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    size_t o = 0;
    out[0] = 0;
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%s=", r ? " " : "", roles[r]);
        char prev = 0;
        int run = 0;
        for (int l = 0; l <= n_layers; l++) {
            char c = 0;
            if (l < n_layers) {
                char tn[64];
                snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, roles[r]);
                int64_t ti = hl_gguf_find_tensor(g, tn);
                const hl_gguf_tensor *t = ti >= 0 ? hl_gguf_tensor_at(g, ti) : NULL;
                c = t ? type_char(t->type) : '-';
            }
            if (c == prev) {
                run++;
                continue;
            }
            if (run) o += (size_t)snprintf(out + o, cap - o, "%s%c*%d", out[o - 1] == '=' ? "" : ",", prev, run);
            prev = c;
            run = 1;
        }
    }
    int64_t ti = hl_gguf_find_tensor(g, "output.weight"), ei = hl_gguf_find_tensor(g, "token_embd.weight");
    const hl_gguf_tensor *t = ti >= 0 ? hl_gguf_tensor_at(g, ti) : NULL, *e = ei >= 0 ? hl_gguf_tensor_at(g, ei) : NULL;
    snprintf(out + o, cap - o, " output=%c token_embd=%c", t ? type_char(t->type) : '-', e ? type_char(e->type) : '-');
}

/* A llama model of n_layers (8 heads, 2 KV heads) whose 2-D tensors are one
 * row of 256: the mixes' rules read only names, row lengths and metadata. */
static void write_rule_model(const char *path, int n_layers) {
    static const char *roles[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    static float row[256];
    for (int i = 0; i < 256; i++) row[i] = (float)((i * 37) % 101 - 50) * 1e-3f;
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    hl_error err = {0};
    hl_gguf_writer_set_str(w, "general.architecture", "llama");
    hl_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)n_layers);
    hl_gguf_writer_set_u32(w, "llama.attention.head_count", 8);
    hl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 2);
    const int64_t ne[2] = {256, 1};
    CHECK_OK(hl_gguf_writer_add_tensor(w, "token_embd.weight", HL_TYPE_F32, 2, ne, row, &err), &err);
    CHECK_OK(hl_gguf_writer_add_tensor(w, "output.weight", HL_TYPE_F32, 2, ne, row, &err), &err);
    char names[80 * 7][40];
    int k = 0;
    for (int l = 0; l < n_layers && l < 80; l++)
        for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++, k++) {
            snprintf(names[k], sizeof names[k], "blk.%d.%s.weight", l, roles[r]);
            CHECK_OK(hl_gguf_writer_add_tensor(w, names[k], HL_TYPE_F32, 2, ne, row, &err), &err);
        }
    CHECK_OK(hl_gguf_writer_write_file(w, path, &err), &err);
    hl_gguf_writer_free(w);
}

static const char *const new_mixes[] = {"Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S"};
static const char *const all_mixes[] = {"Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"};

/* Each mix's per-tensor types on 16 and 80 layers, and the 2-layer file's
 * bytes, against llama-quantize's recorded choices. */
static void check_mixes_recorded(void) {
    size_t n;
    char *data = read_whole(HL_SOURCE_DIR "/tests/data/quant_mix_types.txt", &n);
    REQUIRE(data);
    data = realloc(data, n + 1);
    REQUIRE(data);
    data[n] = 0;
    for (size_t i = 0; i < sizeof new_mixes / sizeof new_mixes[0]; i++) {
        char want[128], line[160], got[72];
        snprintf(want, sizeof want, "sha256=");
        const char *rec = recorded(data, "q256", new_mixes[i], line, sizeof line);
        CHECK_MSG(rec, "no q256 %s line recorded", new_mixes[i]);
        if (!rec) continue;
        int32_t mix = hl_quantize_mix_by_name(new_mixes[i]);
        CHECK_MSG(mix > 0, "%s is not a mix", new_mixes[i]);
        if (mix <= 0) continue;
        const char *out = "test_quant_quantize_mix.gguf";
        hl_error err = {0};
        CHECK_OK(hl_model_quantize_file_mix(shared_path("oracle/llamacpp/quant/models/q256-f32.gguf"), out,
                                            (hl_quant_mix)mix, &err), &err);
        size_t nb;
        uint8_t *b = read_whole(out, &nb);
        REQUIRE(b);
        sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, b, nb);
        sha256_final_hex(&c, got);
        free(b);
        remove(out);
        snprintf(want, sizeof want, "sha256=%s", got);
        CHECK_MSG(!strcmp(rec, want), "quantize --type %s of q256-f32.gguf: %s, llama-quantize's %s", new_mixes[i], want,
                  rec);
        if (!strcmp(rec, want)) printf("  quantize --type %-6s: identical to llama-quantize's (sha256)\n", new_mixes[i]);
    }
    const int layer_counts[2] = {16, 80};
    for (int m = 0; m < 2; m++) {
        char model[16], in[64], out[64];
        snprintf(model, sizeof model, "m%d", layer_counts[m]);
        snprintf(in, sizeof in, "test_quant_quantize_rules%d.gguf", layer_counts[m]);
        snprintf(out, sizeof out, "test_quant_quantize_rules%d_q.gguf", layer_counts[m]);
        write_rule_model(in, layer_counts[m]);
        int same = 0;
        for (size_t i = 0; i < sizeof all_mixes / sizeof all_mixes[0]; i++) {
            char line[4096], got[4096];
            const char *rec = recorded(data, model, all_mixes[i], line, sizeof line);
            CHECK_MSG(rec, "no %s %s line recorded", model, all_mixes[i]);
            int32_t mix = hl_quantize_mix_by_name(all_mixes[i]);
            hl_error err = {0};
            hl_gguf *g = NULL;
            if (!rec || mix <= 0) continue;
            CHECK_OK(hl_model_quantize_file_mix(in, out, (hl_quant_mix)mix, &err), &err);
            CHECK_OK(hl_gguf_open(out, &g, &err), &err);
            if (!g) continue;
            type_summary(g, layer_counts[m], got, sizeof got);
            hl_gguf_free(g);
            CHECK_MSG(!strcmp(got, rec), "%s layers, %s: types\n  ours:            %s\n  llama-quantize's: %s",
                      model + 1, all_mixes[i], got, rec);
            same += !strcmp(got, rec);
        }
        printf("  %d-layer GQA model: %d of %zu mixes choose llama-quantize's type for every tensor\n", layer_counts[m],
               same, sizeof all_mixes / sizeof all_mixes[0]);
        remove(in);
        remove(out);
    }
    free(data);
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
    check_mixes_recorded();
    CHECK(hl_quantize_mix_by_name("q4_K_S") == HL_QUANT_Q4_K_S && hl_quantize_mix_by_name("q3_k_l") == HL_QUANT_Q3_K_L);
    CHECK(hl_quantize_mix_by_name("q4_K") == -1 && hl_quantize_mix_by_name("q2_K_S") == -1 &&
          hl_quantize_mix_by_name("q4_K_Mx") == -1);
    CHECK(!strcmp(hl_quantize_mix_name(HL_QUANT_Q5_K_S), "q5_K_S") && !strcmp(hl_quantize_mix_name(HL_QUANT_PURE), "pure"));
    CHECK(!hl_quantize_supported(HL_TYPE_F32) && !hl_quantize_supported(16));
    hl_gguf_free(f32);
    return hl_test_finish("test_quant_quantize");
}
