/* test_gguf.c: GGUF reader facts on the shared reference files, byte-exact
 * round trips through the writer, every KV/array type, getter type checks,
 * and allocation-failure injection. */
#include "io/gguf.h"
#include "util/alloc.h"
#include "test_util.h"

#include <stdint.h>
#include <unistd.h>

static int str_eq(hl_gguf_str s, const char *c) {
    return s.data && s.len == strlen(c) && memcmp(s.data, c, s.len) == 0;
}

/* Copies every KV and tensor of g into a new writer. */
static hl_gguf_writer *copy_all(const hl_gguf *g, hl_error *err) {
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) CHECK(hl_gguf_writer_copy_kv(w, g, i) == HL_OK);
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        char *name = hl_strndup(t->name.data, (size_t)t->name.len);
        REQUIRE(name);
        CHECK_OK(hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, err), err);
        hl_free(name);
    }
    return w;
}

/* Reads path, writes it back (memory and file) and compares bytes. */
static void roundtrip_file(const char *path) {
    hl_error err = {0};
    size_t size = 0;
    uint8_t *orig = read_whole(path, &size);
    REQUIRE(orig);
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open(path, &g, &err), &err);
    REQUIRE(g);
    hl_gguf_writer *w = copy_all(g, &err);
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK_OK(hl_gguf_writer_write_memory(w, &buf, &n, &err), &err);
    CHECK_MSG(n == size && memcmp(buf, orig, size) == 0, "%s: memory round trip differs (%zu vs %zu bytes)", path, n, size);

    const char *tmp = "test_gguf_roundtrip.tmp.gguf";
    CHECK_OK(hl_gguf_writer_write_file(w, tmp, &err), &err);
    size_t fsize = 0;
    uint8_t *back = read_whole(tmp, &fsize);
    CHECK_MSG(back && fsize == size && memcmp(back, orig, size) == 0, "%s: file round trip differs", path);
    free(back);
    unlink(tmp);

    /* the in-memory parser sees the same structure as the mmap one */
    hl_gguf *m = NULL;
    CHECK_OK(hl_gguf_open_memory(orig, size, "orig", &m, &err), &err);
    if (m) {
        CHECK(hl_gguf_n_tensors(m) == hl_gguf_n_tensors(g));
        for (int64_t i = 0; i < hl_gguf_n_tensors(m); i++)
            CHECK((const uint8_t *)hl_gguf_tensor_at(m, i)->data - orig ==
                  (const uint8_t *)hl_gguf_tensor_at(g, i)->data - (const uint8_t *)hl_gguf_tensor_at(g, 0)->data +
                  ((const uint8_t *)hl_gguf_tensor_at(m, 0)->data - orig));
        hl_gguf_free(m);
    }
    printf("round trip %s: %zu bytes, %s\n", path, size, n == size && memcmp(buf, orig, size) == 0 ? "identical" : "DIFFERENT");
    hl_free(buf);
    hl_gguf_writer_free(w);
    hl_gguf_free(g);
    free(orig);
}

static void test_stories(void) {
    hl_error err = {0};
    const char *path = shared_path("models/stories260K/stories260K-f32.gguf");
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open(path, &g, &err), &err);
    REQUIRE(g);
    CHECK(hl_gguf_version(g) == 3);
    CHECK(hl_gguf_n_tensors(g) == 48);
    CHECK(hl_gguf_n_kv(g) == 19);
    CHECK(hl_gguf_alignment(g) == 32);
    CHECK(strcmp(hl_gguf_path(g), path) == 0);

    hl_gguf_str s;
    CHECK_OK(hl_gguf_get_str(g, "general.architecture", &s, &err), &err);
    CHECK(str_eq(s, "llama"));
    uint32_t u = 0;
    CHECK_OK(hl_gguf_get_u32(g, "llama.embedding_length", &u, &err), &err);
    CHECK(u == 64);
    CHECK_OK(hl_gguf_get_u32(g, "llama.block_count", &u, &err), &err);
    CHECK(u == 5);
    float f = 0;
    CHECK_OK(hl_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f, &err), &err);
    CHECK(fabsf(f - 1e-5f) < 1e-9f);

    int64_t ti = hl_gguf_find_tensor(g, "token_embd.weight");
    CHECK(ti == 0);
    const hl_gguf_tensor *t = hl_gguf_tensor_at(g, ti);
    REQUIRE(t);
    CHECK(str_eq(t->name, "token_embd.weight"));
    CHECK(t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 && t->ne[2] == 1 && t->ne[3] == 1);
    CHECK(t->type == HL_TYPE_F32 && strcmp(hl_gguf_type_name(t->type), "f32") == 0);
    CHECK(t->nbytes == 64 * 512 * 4 && t->offset == 0);
    CHECK(hl_gguf_find_tensor(g, "blk.4.ffn_norm.weight") == 47);
    CHECK(hl_gguf_find_tensor(g, "nope") == -1);
    CHECK(hl_gguf_find_tensor(g, "token_embd.weigh") == -1);
    CHECK(hl_gguf_tensor_at(g, 48) == NULL && hl_gguf_tensor_at(g, -1) == NULL);
    for (int64_t i = 0; i < 48; i++) /* data views are aligned and inside the file */
        CHECK(hl_gguf_tensor_at(g, i)->offset % 32 == 0);

    hl_gguf_kv_type et;
    uint64_t len = 0;
    CHECK_OK(hl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &len, &err), &err);
    CHECK(et == HL_GGUF_STRING && len == 512);
    int64_t ki = hl_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(ki == 0 && hl_gguf_kv_type_of(g, ki) == HL_GGUF_ARRAY);
    CHECK(hl_gguf_arr_data(g, ki) == NULL);
    CHECK(str_eq(hl_gguf_arr_str(g, ki, 0), "<unk>"));
    CHECK(str_eq(hl_gguf_arr_str(g, ki, 1), "<s>"));
    CHECK(str_eq(hl_gguf_arr_str(g, ki, 2), "</s>"));
    CHECK(hl_gguf_arr_str(g, ki, 511).data != NULL);
    CHECK(hl_gguf_arr_str(g, ki, 512).data == NULL);
    int64_t si = hl_gguf_find_key(g, "tokenizer.ggml.scores");
    CHECK(hl_gguf_kv_arr(g, si, &et, &len) == HL_OK && et == HL_GGUF_FLOAT32 && len == 512);
    CHECK(hl_gguf_arr_data(g, si) != NULL);
    CHECK(hl_gguf_arr_str(g, si, 0).data == NULL);
    int64_t tt = hl_gguf_find_key(g, "tokenizer.ggml.token_type");
    CHECK(hl_gguf_kv_arr(g, tt, &et, &len) == HL_OK && et == HL_GGUF_INT32 && len == 512);
    int32_t types[3];
    memcpy(types, hl_gguf_arr_data(g, tt), sizeof types);
    CHECK(types[0] == 2 && types[1] == 3 && types[2] == 3);

    /* KV index accessors */
    CHECK(str_eq(hl_gguf_key(g, 4), "general.architecture"));
    CHECK(hl_gguf_key(g, 19).data == NULL && hl_gguf_kv_type_of(g, 19) == HL_GGUF_KV_TYPE_COUNT);
    double d = 0;
    int64_t iv = 0;
    ki = hl_gguf_find_key(g, "tokenizer.ggml.seperator_token_id");
    CHECK(hl_gguf_kv_scalar(g, ki, &d, &iv) == 1 && iv == 4294967295LL && d == 4294967295.0);
    CHECK(hl_gguf_kv_scalar(g, 0, &d, &iv) == 0); /* array */
    CHECK(hl_gguf_kv_scalar(g, 4, &d, &iv) == 0); /* string */
    CHECK(hl_gguf_kv_string(g, 4, &s) == HL_OK && str_eq(s, "llama"));
    CHECK(hl_gguf_kv_string(g, ki, &s) == HL_ERR_FORMAT);
    CHECK(hl_gguf_kv_string(g, 99, &s) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_kv_arr(g, 4, &et, &len) == HL_ERR_FORMAT);
    CHECK(hl_gguf_find_key(g, "general.alignment") == -1);

    /* getters refuse type confusion, naming file and key */
    err.msg[0] = 0;
    CHECK(hl_gguf_get_f32(g, "tokenizer.ggml.bos_token_id", &f, &err) == HL_ERR_FORMAT);
    printf("  mismatch: %s\n", err.msg);
    CHECK(strstr(err.msg, "tokenizer.ggml.bos_token_id") && strstr(err.msg, "uint32") && strstr(err.msg, "stories260K"));
    CHECK(hl_gguf_get_str(g, "llama.embedding_length", &s, &err) == HL_ERR_FORMAT);
    CHECK(strstr(err.msg, "llama.embedding_length") && strstr(err.msg, "string"));
    CHECK(hl_gguf_get_u32(g, "general.architecture", &u, &err) == HL_ERR_FORMAT);
    CHECK(strstr(err.msg, "general.architecture"));
    CHECK(hl_gguf_get_u32(g, "tokenizer.ggml.scores", &u, &err) == HL_ERR_FORMAT);
    CHECK(hl_gguf_get_u32(g, "llama.attention.layer_norm_rms_epsilon", &u, &err) == HL_ERR_FORMAT);
    int b;
    CHECK(hl_gguf_get_bool(g, "llama.block_count", &b, &err) == HL_ERR_FORMAT);
    CHECK(strstr(err.msg, "bool"));
    CHECK(hl_gguf_get_arr(g, "general.name", &et, &len, &err) == HL_ERR_FORMAT);
    CHECK(strstr(err.msg, "array"));
    CHECK(hl_gguf_get_u32(g, "llama.missing", &u, &err) == HL_ERR_FORMAT);
    printf("  missing: %s\n", err.msg);
    CHECK(strstr(err.msg, "llama.missing") && strstr(err.msg, "not found"));
    hl_gguf_free(g);
}

static void test_adapter(void) {
    hl_error err = {0};
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open(shared_path("oracle/llamacpp/random_lora_r4.gguf"), &g, &err), &err);
    REQUIRE(g);
    CHECK(hl_gguf_n_tensors(g) == 50 && hl_gguf_n_kv(g) == 5);
    hl_gguf_str s;
    CHECK_OK(hl_gguf_get_str(g, "general.type", &s, &err), &err);
    CHECK(str_eq(s, "adapter"));
    CHECK_OK(hl_gguf_get_str(g, "adapter.type", &s, &err), &err);
    CHECK(str_eq(s, "lora"));
    float alpha = 0;
    CHECK_OK(hl_gguf_get_f32(g, "adapter.lora.alpha", &alpha, &err), &err);
    CHECK(alpha == 8.0f);
    const hl_gguf_tensor *t = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, "blk.4.ffn_up.weight.lora_b"));
    REQUIRE(t);
    CHECK(t->ne[0] == 4 && t->ne[1] == 172 && t->nbytes == 4 * 172 * 4);
    hl_gguf_free(g);
}

/* A writer-built file with every setter, arrays of every element type,
 * F32/F16/BF16 tensors and a non-default alignment. */
static void test_writer_all_types(uint32_t alignment) {
    hl_error err = {0};
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    CHECK(hl_gguf_writer_set_str(w, "general.architecture", "llama") == HL_OK);
    CHECK(hl_gguf_writer_set_u32(w, "k.u32", 4000000000u) == HL_OK);
    CHECK(hl_gguf_writer_set_i32(w, "k.i32", -7) == HL_OK);
    CHECK(hl_gguf_writer_set_u64(w, "k.u64", 0xfedcba9876543210ull) == HL_OK);
    CHECK(hl_gguf_writer_set_f32(w, "k.f32", 1.5f) == HL_OK);
    CHECK(hl_gguf_writer_set_bool(w, "k.bool", 42) == HL_OK);
    CHECK(hl_gguf_writer_set_str(w, "k.str", "") == HL_OK);
    if (alignment != HL_GGUF_DEFAULT_ALIGNMENT) CHECK(hl_gguf_writer_set_alignment(w, alignment) == HL_OK);

    uint8_t a_u8[3] = {1, 2, 255};
    int8_t a_i8[3] = {-1, 0, 127};
    uint16_t a_u16[2] = {65535, 7};
    int16_t a_i16[2] = {-32768, 5};
    uint32_t a_u32[2] = {1, 4294967295u};
    int32_t a_i32[2] = {-2147483647 - 1, 9};
    float a_f32[3] = {0.5f, -2.0f, 1e30f};
    uint8_t a_bool[4] = {1, 0, 0, 1};
    uint64_t a_u64[2] = {0, UINT64_MAX};
    int64_t a_i64[2] = {INT64_MIN, -3};
    double a_f64[2] = {3.25, -1e300};
    struct { const char *key; hl_gguf_kv_type t; const void *data; uint64_t n; size_t es; } arrs[] = {
        {"a.u8", HL_GGUF_UINT8, a_u8, 3, 1}, {"a.i8", HL_GGUF_INT8, a_i8, 3, 1},
        {"a.u16", HL_GGUF_UINT16, a_u16, 2, 2}, {"a.i16", HL_GGUF_INT16, a_i16, 2, 2},
        {"a.u32", HL_GGUF_UINT32, a_u32, 2, 4}, {"a.i32", HL_GGUF_INT32, a_i32, 2, 4},
        {"a.f32", HL_GGUF_FLOAT32, a_f32, 3, 4}, {"a.bool", HL_GGUF_BOOL, a_bool, 4, 1},
        {"a.u64", HL_GGUF_UINT64, a_u64, 2, 8}, {"a.i64", HL_GGUF_INT64, a_i64, 2, 8},
        {"a.f64", HL_GGUF_FLOAT64, a_f64, 2, 8}, {"a.empty", HL_GGUF_UINT32, NULL, 0, 4},
    };
    size_t n_arrs = sizeof arrs / sizeof arrs[0];
    for (size_t i = 0; i < n_arrs; i++)
        CHECK(hl_gguf_writer_set_arr(w, arrs[i].key, arrs[i].t, arrs[i].data, arrs[i].n) == HL_OK);
    const char *toks[] = {"<unk>", "", "hello world", "\xe2\x96\x81the"};
    CHECK(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4) == HL_OK);
    CHECK(hl_gguf_writer_set_arr_str(w, "a.str_empty", NULL, 0) == HL_OK);

    /* replace in place keeps the position, even across types */
    CHECK(hl_gguf_writer_set_u32(w, "k.i32", 11) == HL_OK);
    CHECK(hl_gguf_writer_set_i32(w, "k.i32", -7) == HL_OK);
    CHECK(hl_gguf_writer_set_str(w, "k.tmp", "x") == HL_OK);
    CHECK(hl_gguf_writer_remove_key(w, "k.tmp") == HL_OK);
    CHECK(hl_gguf_writer_remove_key(w, "k.tmp") == HL_OK); /* idempotent */

    /* writer argument checks */
    CHECK(hl_gguf_writer_set_u32(w, "", 1) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_u32(w, NULL, 1) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_str(w, "k.null", NULL) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_arr(w, "a.bad", HL_GGUF_STRING, a_u8, 1) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_arr(w, "a.bad", HL_GGUF_ARRAY, a_u8, 1) == HL_ERR_INVALID_ARG);
    uint8_t bad_bool[2] = {0, 2};
    CHECK(hl_gguf_writer_set_arr(w, "a.bad", HL_GGUF_BOOL, bad_bool, 2) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_alignment(w, 48) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_alignment(w, 0) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_alignment(w, HL_GGUF_MAX_ALIGNMENT * 2) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_u32(w, "general.alignment", 3) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_set_i32(w, "general.alignment", 64) == HL_ERR_INVALID_ARG);

    float t32[15];
    for (int i = 0; i < 15; i++) t32[i] = (float)i * 0.25f - 1.0f;
    uint16_t t16[7] = {0x3c00, 0xbc00, 0x0000, 0x7bff, 0x0001, 0x8000, 0x4000};
    uint16_t tbf[120];
    for (int i = 0; i < 120; i++) tbf[i] = (uint16_t)(0x3f80 + i);
    int64_t ne32[2] = {3, 5}, ne16[1] = {7}, nebf[4] = {2, 3, 4, 5};
    CHECK_OK(hl_gguf_writer_add_tensor(w, "t.f32", HL_TYPE_F32, 2, ne32, t32, &err), &err);
    CHECK_OK(hl_gguf_writer_add_tensor(w, "t.f16", HL_TYPE_F16, 1, ne16, t16, &err), &err);
    CHECK_OK(hl_gguf_writer_add_tensor(w, "t.bf16", HL_TYPE_BF16, 4, nebf, tbf, &err), &err);
    CHECK(hl_gguf_writer_add_tensor(w, "t.f16", HL_TYPE_F16, 1, ne16, t16, &err) == HL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "duplicate") && strstr(err.msg, "t.f16"));
    CHECK(hl_gguf_writer_add_tensor(w, "t.q", 16, 1, ne16, t16, &err) == HL_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "type 16 (iq2_xxs)"));
    /* a block type: the row must be whole blocks */
    CHECK(hl_gguf_writer_add_tensor(w, "t.q8", HL_TYPE_Q8_0, 1, ne16, t16, &err) == HL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "t.q8") && strstr(err.msg, "whole blocks"));
    int64_t bad_ne[2] = {3, 0};
    CHECK(hl_gguf_writer_add_tensor(w, "t.z", HL_TYPE_F32, 2, bad_ne, t32, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_add_tensor(w, "t.z", HL_TYPE_F32, 5, ne32, t32, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_gguf_writer_add_tensor(w, "t.z", HL_TYPE_F32, 0, ne32, t32, &err) == HL_ERR_INVALID_ARG);
    int64_t huge_ne[2] = {INT64_MAX, 4};
    CHECK(hl_gguf_writer_add_tensor(w, "t.z", HL_TYPE_F32, 2, huge_ne, t32, &err) == HL_ERR_INVALID_ARG);

    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK_OK(hl_gguf_writer_write_memory(w, &buf, &n, &err), &err);
    REQUIRE(buf);
    CHECK(n % alignment == 0);
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open_memory(buf, n, "writer-built", &g, &err), &err);
    REQUIRE(g);
    CHECK(hl_gguf_alignment(g) == alignment);
    CHECK(hl_gguf_n_kv(g) == (int64_t)(7 + n_arrs + 2 + (alignment != HL_GGUF_DEFAULT_ALIGNMENT)));
    CHECK(str_eq(hl_gguf_key(g, 2), "k.i32")); /* position kept */
    uint32_t u;
    CHECK_OK(hl_gguf_get_u32(g, "k.u32", &u, &err), &err);
    CHECK(u == 4000000000u);
    CHECK(hl_gguf_get_u32(g, "k.i32", &u, &err) == HL_ERR_FORMAT); /* -7 does not fit */
    CHECK(strstr(err.msg, "k.i32") && strstr(err.msg, "-7"));
    CHECK(hl_gguf_get_u32(g, "k.u64", &u, &err) == HL_ERR_FORMAT);
    double d;
    int64_t iv;
    CHECK(hl_gguf_kv_scalar(g, hl_gguf_find_key(g, "k.i32"), &d, &iv) && iv == -7 && d == -7.0);
    CHECK(hl_gguf_kv_scalar(g, hl_gguf_find_key(g, "k.u64"), &d, &iv) && (uint64_t)iv == 0xfedcba9876543210ull);
    float f;
    CHECK_OK(hl_gguf_get_f32(g, "k.f32", &f, &err), &err);
    CHECK(f == 1.5f);
    int b = 0;
    CHECK_OK(hl_gguf_get_bool(g, "k.bool", &b, &err), &err);
    CHECK(b == 1);
    hl_gguf_str s;
    CHECK_OK(hl_gguf_get_str(g, "k.str", &s, &err), &err);
    CHECK(s.len == 0);
    CHECK(hl_gguf_find_key(g, "k.tmp") == -1);
    for (size_t i = 0; i < n_arrs; i++) {
        int64_t ki = hl_gguf_find_key(g, arrs[i].key);
        hl_gguf_kv_type et;
        uint64_t len;
        CHECK(hl_gguf_kv_arr(g, ki, &et, &len) == HL_OK && et == arrs[i].t && len == arrs[i].n);
        CHECK(hl_gguf_kv_type_size(et) == arrs[i].es);
        const void *p = hl_gguf_arr_data(g, ki);
        CHECK_MSG(p && (len == 0 || memcmp(p, arrs[i].data, (size_t)len * arrs[i].es) == 0), "array %s", arrs[i].key);
    }
    int64_t tk = hl_gguf_find_key(g, "tokenizer.ggml.tokens");
    for (int j = 0; j < 4; j++) CHECK(str_eq(hl_gguf_arr_str(g, tk, (uint64_t)j), toks[j]));
    hl_gguf_kv_type et;
    uint64_t len = 9;
    CHECK(hl_gguf_get_arr(g, "a.str_empty", &et, &len, &err) == HL_OK && et == HL_GGUF_STRING && len == 0);

    const hl_gguf_tensor *t = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, "t.f16"));
    REQUIRE(t);
    CHECK(t->type == HL_TYPE_F16 && t->n_dims == 1 && t->ne[0] == 7 && t->nbytes == 14);
    CHECK(memcmp(t->data, t16, 14) == 0 && t->offset % alignment == 0);
    t = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, "t.bf16"));
    REQUIRE(t);
    CHECK(t->type == HL_TYPE_BF16 && t->n_dims == 4 && t->ne[3] == 5 && t->nbytes == 240);
    CHECK(memcmp(t->data, tbf, 240) == 0 && t->offset % alignment == 0);
    CHECK(strcmp(hl_gguf_type_name(t->type), "bf16") == 0 && strcmp(hl_gguf_type_name(HL_TYPE_F16), "f16") == 0);
    CHECK(strcmp(hl_gguf_type_name(16), "?") == 0 && strcmp(hl_gguf_type_name(HL_TYPE_Q4_K), "q4_K") == 0);
    t = hl_gguf_tensor_at(g, 0);
    CHECK(memcmp(t->data, t32, sizeof t32) == 0);
    /* padding between tensors is zero */
    const uint8_t *pad = (const uint8_t *)t->data + t->nbytes;
    int zero = 1;
    for (const uint8_t *q = pad; q < (const uint8_t *)hl_gguf_tensor_at(g, 1)->data; q++) zero &= *q == 0;
    CHECK(zero);

    /* copying the parsed file reproduces it byte for byte */
    hl_gguf_writer *w2 = copy_all(g, &err);
    uint8_t *buf2 = NULL;
    size_t n2 = 0;
    CHECK_OK(hl_gguf_writer_write_memory(w2, &buf2, &n2, &err), &err);
    CHECK(n2 == n && buf2 && memcmp(buf, buf2, n) == 0);
    hl_free(buf2);
    hl_gguf_writer_free(w2);

    /* removing general.alignment returns the writer to the default */
    if (alignment != HL_GGUF_DEFAULT_ALIGNMENT) {
        CHECK(hl_gguf_writer_remove_key(w, "general.alignment") == HL_OK);
        CHECK_OK(hl_gguf_writer_write_memory(w, &buf2, &n2, &err), &err);
        hl_gguf *g2 = NULL;
        CHECK_OK(hl_gguf_open_memory(buf2, n2, "realigned", &g2, &err), &err);
        CHECK(g2 && hl_gguf_alignment(g2) == HL_GGUF_DEFAULT_ALIGNMENT);
        hl_gguf_free(g2);
        hl_free(buf2);
    }
    hl_gguf_free(g);
    hl_free(buf);
    hl_gguf_writer_free(w);
}

/* Scalar types the writer has no setter for, built by hand, read, checked,
 * and reproduced exactly through copy_kv. */
typedef struct bb { uint8_t b[1024]; size_t n; } bb;
static void put(bb *b, const void *p, size_t n) { REQUIRE(b->n + n <= sizeof b->b); memcpy(b->b + b->n, p, n); b->n += n; }
static void put_u32(bb *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bb *b, uint64_t v) { put(b, &v, 8); }
static void put_key(bb *b, const char *k, uint32_t type) { put_u64(b, strlen(k)); put(b, k, strlen(k)); put_u32(b, type); }

static void test_scalar_types(void) {
    bb b = {{0}, 0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 8);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    int64_t i64 = -5000000000LL; double f64 = 0.1; double f64big = 1e300; int64_t i64small = 12;
    put_key(&b, "s.u8", HL_GGUF_UINT8); put(&b, &u8, 1);
    put_key(&b, "s.i8", HL_GGUF_INT8); put(&b, &i8, 1);
    put_key(&b, "s.u16", HL_GGUF_UINT16); put(&b, &u16, 2);
    put_key(&b, "s.i16", HL_GGUF_INT16); put(&b, &i16, 2);
    put_key(&b, "s.i64", HL_GGUF_INT64); put(&b, &i64, 8);
    put_key(&b, "s.f64", HL_GGUF_FLOAT64); put(&b, &f64, 8);
    put_key(&b, "s.f64big", HL_GGUF_FLOAT64); put(&b, &f64big, 8);
    put_key(&b, "s.i64small", HL_GGUF_INT64); put(&b, &i64small, 8);
    while (b.n % 32) b.b[b.n++] = 0;

    hl_error err = {0};
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open_memory(b.b, b.n, "scalars", &g, &err), &err);
    REQUIRE(g);
    double d;
    int64_t iv;
    CHECK(hl_gguf_kv_scalar(g, 0, &d, &iv) && iv == 200);
    CHECK(hl_gguf_kv_scalar(g, 1, &d, &iv) && iv == -100);
    CHECK(hl_gguf_kv_scalar(g, 2, &d, &iv) && iv == 60000);
    CHECK(hl_gguf_kv_scalar(g, 3, &d, &iv) && iv == -30000);
    CHECK(hl_gguf_kv_scalar(g, 4, &d, &iv) && iv == -5000000000LL);
    CHECK(hl_gguf_kv_scalar(g, 5, &d, &iv) && d == 0.1 && iv == 0);
    uint32_t u;
    CHECK(hl_gguf_get_u32(g, "s.u8", &u, &err) == HL_OK && u == 200);
    CHECK(hl_gguf_get_u32(g, "s.u16", &u, &err) == HL_OK && u == 60000);
    CHECK(hl_gguf_get_u32(g, "s.i64small", &u, &err) == HL_OK && u == 12);
    CHECK(hl_gguf_get_u32(g, "s.i8", &u, &err) == HL_ERR_FORMAT);
    printf("  %s\n", err.msg);
    CHECK(hl_gguf_get_u32(g, "s.i64", &u, &err) == HL_ERR_FORMAT);
    float f;
    CHECK(hl_gguf_get_f32(g, "s.f64", &f, &err) == HL_OK && f == 0.1f);
    CHECK(hl_gguf_get_f32(g, "s.f64big", &f, &err) == HL_ERR_FORMAT);
    printf("  %s\n", err.msg);
    CHECK(strstr(err.msg, "s.f64big"));
    CHECK(hl_gguf_get_f32(g, "s.u8", &f, &err) == HL_ERR_FORMAT);
    int bo;
    CHECK(hl_gguf_get_bool(g, "s.u8", &bo, &err) == HL_ERR_FORMAT);
    for (int t = 0; t < HL_GGUF_KV_TYPE_COUNT; t++) CHECK(strcmp(hl_gguf_kv_type_name((hl_gguf_kv_type)t), "?") != 0);
    CHECK(strcmp(hl_gguf_kv_type_name(HL_GGUF_KV_TYPE_COUNT), "?") == 0);

    hl_gguf_writer *w = copy_all(g, &err);
    uint8_t *out = NULL;
    size_t n = 0;
    CHECK_OK(hl_gguf_writer_write_memory(w, &out, &n, &err), &err);
    CHECK(n == b.n && out && memcmp(out, b.b, n) == 0);
    /* an empty writer writes a bare, padded header */
    hl_gguf_writer *e = hl_gguf_writer_init();
    uint8_t *eo = NULL;
    CHECK_OK(hl_gguf_writer_write_memory(e, &eo, &n, &err), &err);
    CHECK(n == 32 && eo && memcmp(eo, "GGUF\3\0\0\0", 8) == 0);
    hl_gguf *ge = NULL;
    CHECK_OK(hl_gguf_open_memory(eo, n, "empty", &ge, &err), &err);
    CHECK(ge && hl_gguf_n_kv(ge) == 0 && hl_gguf_n_tensors(ge) == 0);
    hl_gguf_free(ge);
    /* and a bare 24-byte header (no padding, no tensors) is also readable */
    CHECK_OK(hl_gguf_open_memory(eo, 24, "bare", &ge, &err), &err);
    hl_gguf_free(ge);
    hl_free(eo);
    hl_gguf_writer_free(e);
    hl_free(out);
    hl_gguf_writer_free(w);
    hl_gguf_free(g);
}

static void test_io_errors(void) {
    hl_error err = {0};
    hl_gguf *g = (hl_gguf *)&err;
    CHECK(hl_gguf_open("/nonexistent/file.gguf", &g, &err) == HL_ERR_IO && g == NULL);
    CHECK(strstr(err.msg, "/nonexistent/file.gguf"));
    CHECK(hl_gguf_open(".", &g, &err) == HL_ERR_IO);
    hl_gguf_writer *w = hl_gguf_writer_init();
    CHECK(hl_gguf_writer_write_file(w, "/nonexistent/dir/out.gguf", &err) == HL_ERR_IO);
    printf("  %s\n", err.msg);
    hl_gguf_writer_free(w);
    hl_gguf_free(NULL);
    hl_gguf_writer_free(NULL);
}

/* Every allocation failure is reported as HL_ERR_NOMEM, never a crash or leak. */
static void test_oom(void) {
    const char *path = shared_path("oracle/llamacpp/random_lora_r4.gguf");
    int injected = 0;
    for (long k = 0; k < 200; k++) {
        hl_error err = {0};
        hl_gguf *g = NULL;
        hl_alloc_fail_after(k);
        hl_status s = hl_gguf_open(path, &g, &err);
        hl_alloc_fail_after(-1);
        if (s == HL_OK) {
            hl_gguf_free(g);
            break;
        }
        injected++;
        CHECK_MSG(s == HL_ERR_NOMEM && g == NULL, "k=%ld: %s", k, err.msg);
    }
    CHECK(injected > 0);
    hl_error err = {0};
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open(path, &g, &err), &err);
    REQUIRE(g);
    int done = 0;
    for (long k = 0; k < 2000 && !done; k++) {
        hl_alloc_fail_after(k);
        hl_gguf_writer *w = hl_gguf_writer_init();
        hl_status s = w ? HL_OK : HL_ERR_NOMEM;
        for (int64_t i = 0; s == HL_OK && i < hl_gguf_n_kv(g); i++) s = hl_gguf_writer_copy_kv(w, g, i);
        for (int64_t i = 0; s == HL_OK && i < hl_gguf_n_tensors(g); i++) {
            const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
            s = hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err);
        }
        if (s == HL_OK) s = hl_gguf_writer_remove_key(w, "general.name");
        uint8_t *buf = NULL;
        size_t n;
        if (s == HL_OK) s = hl_gguf_writer_write_memory(w, &buf, &n, &err);
        hl_alloc_fail_after(-1);
        CHECK(s == HL_OK || s == HL_ERR_NOMEM);
        if (s == HL_OK) done = 1;
        hl_free(buf);
        hl_gguf_writer_free(w);
    }
    CHECK(done);
    hl_gguf_free(g);
}

int main(void) {
    test_stories();
    test_adapter();
    roundtrip_file(shared_path("models/stories260K/stories260K-f32.gguf"));
    roundtrip_file(shared_path("oracle/llamacpp/random_lora_r4.gguf"));
    roundtrip_file(shared_path("oracle/llamacpp/merged_lora_r4.gguf"));
    test_writer_all_types(HL_GGUF_DEFAULT_ALIGNMENT);
    test_writer_all_types(64);
    test_writer_all_types(1);
    test_scalar_types();
    test_io_errors();
    test_oom();
    return hl_test_finish("test_gguf");
}
