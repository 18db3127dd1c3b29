/* test_quant_dequant.c: the block layouts and reference dequantizers of
 * quant/quant_types.c against ggml's own dequantization.
 *
 * For every tensor of every shared quantized file (q256-<TYPE>.gguf, the
 * _M mixes and the f32 original), the tensor is dequantized by
 * hl_dequantize and the sha256 of its little-endian f32 values (rows of
 * ne0, ggml order) must equal the one llama.cpp's to_float gave
 * (../shared/oracle/llamacpp/quant/dequant/). Bit-exact, no tolerance.
 * Also: the raw blk.0.attn_q.weight dumps agree element for element, the
 * type table's sizes match the files' tensors, every scale in the files is
 * finite, and a non-finite f16 scale is found at the block that holds it. */
#include "io/gguf.h"
#include "quant/quant_types.h"
#include "util/half.h"
#include "sha256.h"
#include "test_util.h"

static const char *files[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
                              "Q5_K", "Q6_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "f32"};

/* Dequantizes tensor t (all of it) into a malloc'd buffer. */
static float *dequant_all(const hl_gguf_tensor *t, int64_t *n_out) {
    const hl_type_traits *tr = hl_type_traits_of(t->type);
    REQUIRE(tr);
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
    float *y = malloc((size_t)n * sizeof *y);
    REQUIRE(y);
    hl_dequantize(t->type, t->data, y, n / tr->block_elems);
    *n_out = n;
    return y;
}

static void check_file(const char *type) {
    char rel[256], tsv_rel[256];
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", type);
    snprintf(tsv_rel, sizeof tsv_rel, "oracle/llamacpp/quant/dequant/q256-%s.dequant_sha256.tsv", type);
    hl_error err = {0};
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open(shared_path(rel), &g, &err), &err);
    if (!g) return;
    FILE *f = fopen(shared_path(tsv_rel), "r");
    REQUIRE(f);
    char name[128], tname[32], want[80];
    long long ne0, ne1;
    int lines = 0, matched = 0;
    while (fscanf(f, "%127s %31s %lld %lld %79s", name, tname, &ne0, &ne1, want) == 5) {
        lines++;
        int64_t i = hl_gguf_find_tensor(g, name);
        CHECK_MSG(i >= 0, "%s: no tensor %s", type, name);
        if (i < 0) continue;
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        CHECK_MSG(strcmp(hl_gguf_type_name(t->type), tname) == 0, "%s %s: type %s, oracle says %s", type, name,
                  hl_gguf_type_name(t->type), tname);
        CHECK(t->ne[0] == ne0 && t->ne[1] == ne1);
        /* the table's size of the tensor is what the file lays out */
        uint64_t row_bytes;
        CHECK(hl_type_row_bytes(t->type, t->ne[0], &row_bytes) && row_bytes * (uint64_t)t->ne[1] == t->nbytes);
        const hl_type_traits *tr = hl_type_traits_of(t->type);
        CHECK_MSG(hl_quant_find_bad_scale(t->type, t->data, (int64_t)(t->nbytes / (uint64_t)tr->block_bytes)) == -1,
                  "%s %s: a finite scale flagged", type, name);
        int64_t n;
        float *y = dequant_all(t, &n);
        sha256_ctx c;
        char got[65];
        sha256_init(&c);
        sha256_update(&c, y, (size_t)n * sizeof *y); /* host is little-endian (gguf.c checks) */
        sha256_final_hex(&c, got);
        int ok = strcmp(got, want) == 0;
        matched += ok;
        CHECK_MSG(ok, "%s %s (%s): dequantized sha256 %s, ggml's %s", type, name, tname, got, want);
        if (strcmp(name, "blk.0.attn_q.weight") == 0 && strcmp(type, "f32") != 0) {
            char raw_rel[256];
            snprintf(raw_rel, sizeof raw_rel, "oracle/llamacpp/quant/dequant/q256-%s.blk.0.attn_q.weight.f32", type);
            size_t size;
            float *ref = read_whole(shared_path(raw_rel), &size);
            REQUIRE(ref && size == (size_t)n * sizeof(float));
            int64_t first_bad = -1;
            for (int64_t k = 0; k < n && first_bad < 0; k++)
                if (memcmp(&ref[k], &y[k], sizeof(float)) != 0) first_bad = k;
            CHECK_MSG(first_bad < 0, "%s blk.0.attn_q.weight: element %lld is %.9g, ggml's %.9g", type,
                      (long long)first_bad, first_bad < 0 ? 0.0 : y[first_bad], first_bad < 0 ? 0.0 : ref[first_bad]);
            free(ref);
        }
        free(y);
    }
    fclose(f);
    CHECK_MSG(lines == hl_gguf_n_tensors(g) && lines > 0, "%s: %d lines for %lld tensors", type, lines,
              (long long)hl_gguf_n_tensors(g));
    printf("  %-7s %d/%d tensors bit-exact\n", type, matched, lines);
    hl_gguf_free(g);
}

/* A non-finite f16 scale (inf or NaN in d, m or dmin) is found at its block. */
static void check_bad_scales(void) {
    static const struct { uint32_t type; int off; } fields[] = {
        {HL_TYPE_Q8_0, 0}, {HL_TYPE_Q4_0, 0}, {HL_TYPE_Q4_1, 0}, {HL_TYPE_Q4_1, 2}, {HL_TYPE_Q5_0, 0},
        {HL_TYPE_Q5_1, 2}, {HL_TYPE_Q2_K, 80}, {HL_TYPE_Q2_K, 82}, {HL_TYPE_Q3_K, 108}, {HL_TYPE_Q4_K, 0},
        {HL_TYPE_Q4_K, 2}, {HL_TYPE_Q5_K, 2}, {HL_TYPE_Q6_K, 208}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const hl_type_traits *tr = hl_type_traits_of(fields[i].type);
        REQUIRE(tr);
        uint8_t *blocks = calloc(4, (size_t)tr->block_bytes);
        REQUIRE(blocks);
        CHECK(hl_quant_find_bad_scale(fields[i].type, blocks, 4) == -1);
        uint8_t *at = blocks + 2 * tr->block_bytes + fields[i].off;
        at[0] = 0x00; at[1] = 0x7c; /* +inf */
        CHECK_MSG(hl_quant_find_bad_scale(fields[i].type, blocks, 4) == 2, "%s +inf at byte %d", tr->name, fields[i].off);
        at[0] = 0x01; at[1] = 0xfe; /* NaN */
        CHECK_MSG(hl_quant_find_bad_scale(fields[i].type, blocks, 4) == 2, "%s NaN at byte %d", tr->name, fields[i].off);
        at[0] = 0xff; at[1] = 0x7b; /* 65504, the largest finite f16 */
        CHECK(hl_quant_find_bad_scale(fields[i].type, blocks, 4) == -1);
        free(blocks);
    }
}

/* Row sizes: whole blocks only, products checked. */
static void check_row_bytes(void) {
    uint64_t b = 0;
    CHECK(hl_type_row_bytes(HL_TYPE_Q4_K, 512, &b) && b == 288);
    CHECK(hl_type_row_bytes(HL_TYPE_Q8_0, 64, &b) && b == 68);
    CHECK(hl_type_row_bytes(HL_TYPE_Q6_K, 256, &b) && b == 210);
    CHECK(hl_type_row_bytes(HL_TYPE_F16, 3, &b) && b == 6);
    CHECK(!hl_type_row_bytes(HL_TYPE_Q4_K, 128, &b));
    CHECK(!hl_type_row_bytes(HL_TYPE_Q5_0, 33, &b));
    CHECK(!hl_type_row_bytes(HL_TYPE_Q8_0, 0, &b));
    CHECK(!hl_type_row_bytes(HL_TYPE_Q8_0, INT64_MAX - 31, &b) || b / 34 == (uint64_t)(INT64_MAX - 31) / 32);
    CHECK(!hl_type_row_bytes(HL_TYPE_F32, INT64_MAX, &b));
    CHECK(!hl_type_row_bytes(16 /* iq2_xxs */, 256, &b));
    CHECK(hl_type_traits_of(15 /* q8_K */) == NULL);
    CHECK(strcmp(hl_ggml_type_name(15), "q8_K") == 0);
}

int main(void) {
    check_row_bytes();
    check_bad_scales();
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) check_file(files[i]);
    return hl_test_finish("test_quant_dequant");
}
