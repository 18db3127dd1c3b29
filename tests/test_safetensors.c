/* test_safetensors.c: the safetensors reader against the PEFT/PyTorch
 * reference files, the writer's round trips, and dtype conversions. */
#include "hyperlora.h"
#include "io/safetensors.h"
#include "util/alloc.h"
#include "test_util.h"

#include <glob.h>
#include <stdint.h>
#include <unistd.h>

/* 8-byte LE length + header + data: the raw format, built by hand. */
static uint8_t *build(const char *json, const void *data, size_t dsize, size_t *out_size) {
    size_t h = strlen(json);
    uint8_t *b = malloc(8 + h + dsize + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    if (dsize) memcpy(b + 8 + h, data, dsize);
    *out_size = 8 + h + dsize;
    return b;
}

static int bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_peft_plain(void) {
    hl_error err = {0};
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open(shared_path("oracle/peft_hf/plain/adapter_model.safetensors"), &st, &err), &err);
    REQUIRE(st);
    CHECK(hl_st_n_tensors(st) == 60);
    CHECK(hl_st_metadata(st, "format") && strcmp(hl_st_metadata(st, "format"), "pt") == 0);
    CHECK(hl_st_metadata(st, "missing") == NULL);
    CHECK(hl_st_n_metadata(st) == 1);
    CHECK(hl_st_metadata_key_at(st, 0) && strcmp(hl_st_metadata_key_at(st, 0), "format") == 0);
    CHECK(hl_st_metadata_key_at(st, 1) == NULL);
    for (int64_t i = 1; i < hl_st_n_tensors(st); i++)
        CHECK(strcmp(hl_st_tensor_at(st, i - 1)->name, hl_st_tensor_at(st, i)->name) < 0);
    CHECK(hl_st_tensor_at(st, -1) == NULL && hl_st_tensor_at(st, 60) == NULL);

    const hl_st_tensor *t = hl_st_find(st, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    REQUIRE(t);
    CHECK(t->dtype == HL_ST_F32 && t->n_dims == 2 && t->shape[0] == 4 && t->shape[1] == 64 && t->nbytes == 1024);
    t = hl_st_find(st, "base_model.model.model.layers.4.mlp.down_proj.lora_A.weight");
    REQUIRE(t);
    CHECK(t->n_dims == 2 && t->shape[0] == 4 && t->shape[1] == 172);
    t = hl_st_find(st, "base_model.model.model.layers.2.mlp.gate_proj.lora_B.weight");
    REQUIRE(t);
    CHECK(t->n_dims == 2 && t->shape[0] == 172 && t->shape[1] == 4);
    CHECK(hl_st_find(st, "base_model.model.model.layers.5.mlp.gate_proj.lora_B.weight") == NULL);
    CHECK(hl_st_find(st, "") == NULL && hl_st_find(st, NULL) == NULL);
    /* The same adapter as adapter_init.f32: gate_proj = w1, whose B sits
     * right after its 4x64 A at 1408 within a layer (no row reordering). */
    float buf[1024];
    size_t rsize = 0;
    float *ref = read_whole(shared_path("oracle/torch/ref/attn_ffn/adapter_init.f32"), &rsize);
    REQUIRE(ref && rsize == 84800);
    CHECK_OK(hl_st_read_f32(t, buf, 688, &err), &err);
    CHECK(memcmp(buf, ref + 4240 * 2 + 1408 + 256, 688 * sizeof(float)) == 0);
    t = hl_st_find(st, "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight");
    REQUIRE(t);
    CHECK_OK(hl_st_read_f32(t, buf, 256, &err), &err);
    CHECK(memcmp(buf, ref + 4240 * 1 + 512, 256 * sizeof(float)) == 0);
    free(ref);
    uint64_t total = 0;
    for (int64_t i = 0; i < hl_st_n_tensors(st); i++) total += hl_st_tensor_at(st, i)->nbytes;
    CHECK(total == 84800);
    hl_st_free(st);
}

static const char *const targets[6] = {"wq", "wv", "wo", "w1", "w2", "w3"};

static void tensor_name(char *buf, size_t cap, int l, int k, char ab) {
    snprintf(buf, cap, "base_model.model.layers.%d.%s.%s.lora_%c.weight", l, k < 3 ? "attention" : "feed_forward",
             targets[k], ab);
}

static void test_torch_init(void) {
    hl_error err = {0};
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open(shared_path("oracle/torch/ref/attn_ffn/adapter_init.safetensors"), &st, &err), &err);
    REQUIRE(st);
    CHECK(hl_st_n_tensors(st) == 60);
    CHECK(hl_st_metadata(st, "r") && strcmp(hl_st_metadata(st, "r"), "4") == 0);
    CHECK(hl_st_metadata(st, "lora_alpha") && strcmp(hl_st_metadata(st, "lora_alpha"), "8.0") == 0);
    CHECK(hl_st_metadata(st, "target_modules") &&
          strcmp(hl_st_metadata(st, "target_modules"), "wq,wv,wo,w1,w2,w3") == 0);

    size_t fsize = 0;
    float *ref = read_whole(shared_path("oracle/torch/ref/attn_ffn/adapter_init.f32"), &fsize);
    REQUIRE(ref);
    CHECK(fsize == 21200 * sizeof(float));
    size_t off = 0;
    int n_ok = 0;
    float *buf = malloc(4096 * sizeof(float));
    for (int l = 0; l < 5; l++) {
        CHECK(off == (size_t)4240 * l);
        for (int k = 0; k < 6; k++) {
            for (int ab = 0; ab < 2; ab++) {
                char name[128];
                tensor_name(name, sizeof name, l, k, ab ? 'B' : 'A');
                const hl_st_tensor *t = hl_st_find(st, name);
                CHECK_MSG(t != NULL, "%s missing", name);
                if (!t) continue;
                CHECK(t->dtype == HL_ST_F32 && t->n_dims == 2);
                CHECK(ab ? t->shape[1] == 4 : t->shape[0] == 4);
                uint64_t n = (uint64_t)(t->shape[0] * t->shape[1]);
                REQUIRE(n <= 4096 && off + n <= 21200);
                CHECK_OK(hl_st_read_f32(t, buf, n, &err), &err);
                CHECK_MSG(bits_equal(buf, ref + off, (size_t)n), "%s differs from adapter_init.f32", name);
                n_ok += bits_equal(buf, ref + off, (size_t)n);
                off += (size_t)n;
            }
        }
    }
    CHECK(off == 21200);
    CHECK(n_ok == 60);
    /* Layout spot checks from the README: wv A at 512, w3 A at 3296 in a layer. */
    const hl_st_tensor *t = hl_st_find(st, "base_model.model.layers.3.feed_forward.w3.lora_A.weight");
    REQUIRE(t);
    CHECK_OK(hl_st_read_f32(t, buf, 256, &err), &err);
    CHECK(bits_equal(buf, ref + 4240 * 3 + 3296, 256));
    /* Wrong count is refused. */
    hl_error e2 = {0};
    CHECK(hl_st_read_f32(t, buf, 255, &e2) == HL_ERR_INVALID_ARG);
    CHECK(strstr(e2.msg, "asked for 255") != NULL);
    free(buf);
    free(ref);
    hl_st_free(st);
}

static uint64_t n_elems(const hl_st_tensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

/* Copies every tensor (as F32) and metadata entry of st into a new writer. */
static hl_st_writer *writer_from(const hl_safetensors *st, float **storage) {
    hl_error err = {0};
    hl_st_writer *w = hl_st_writer_init();
    REQUIRE(w);
    uint64_t total = 0;
    for (int64_t i = 0; i < hl_st_n_tensors(st); i++) total += 4 * n_elems(hl_st_tensor_at(st, i));
    float *all = malloc(total ? (size_t)total : 1);
    uint64_t pos = 0;
    for (int64_t i = 0; i < hl_st_n_tensors(st); i++) {
        const hl_st_tensor *t = hl_st_tensor_at(st, i);
        uint64_t n = n_elems(t);
        CHECK_OK(hl_st_read_f32(t, all + pos, n, &err), &err);
        CHECK_OK(hl_st_writer_add_f32(w, t->name, t->n_dims, t->shape, all + pos, &err), &err);
        pos += n;
    }
    for (int64_t i = 0; i < hl_st_n_metadata(st); i++) {
        const char *k = hl_st_metadata_key_at(st, i);
        CHECK(hl_st_writer_set_metadata(w, k, hl_st_metadata(st, k)) == HL_OK);
    }
    *storage = all;
    return w;
}

static void check_same(const hl_safetensors *a, const hl_safetensors *b) {
    hl_error err = {0};
    REQUIRE(hl_st_n_tensors(a) == hl_st_n_tensors(b));
    CHECK(hl_st_n_metadata(a) == hl_st_n_metadata(b));
    for (int64_t i = 0; i < hl_st_n_metadata(a) && i < hl_st_n_metadata(b); i++) {
        const char *k = hl_st_metadata_key_at(a, i);
        CHECK(strcmp(k, hl_st_metadata_key_at(b, i)) == 0);
        CHECK(strcmp(hl_st_metadata(a, k), hl_st_metadata(b, k)) == 0);
    }
    for (int64_t i = 0; i < hl_st_n_tensors(a); i++) {
        const hl_st_tensor *x = hl_st_tensor_at(a, i), *y = hl_st_tensor_at(b, i);
        CHECK(strcmp(x->name, y->name) == 0);
        CHECK(x->n_dims == y->n_dims);
        CHECK(memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->n_dims) == 0);
        uint64_t n = n_elems(x);
        CHECK(y->dtype == HL_ST_F32 && y->nbytes == 4 * n);
        float *fa = malloc(4 * n + 4), *fb = malloc(4 * n + 4);
        CHECK_OK(hl_st_read_f32(x, fa, n, &err), &err);
        CHECK_OK(hl_st_read_f32(y, fb, n, &err), &err);
        CHECK(bits_equal(fa, fb, (size_t)n));
        free(fa);
        free(fb);
    }
}

static void test_round_trip(void) {
    hl_error err = {0};
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open(shared_path("oracle/torch/ref/attn_ffn/adapter_init.safetensors"), &st, &err), &err);
    REQUIRE(st);
    float *store1;
    hl_st_writer *w = writer_from(st, &store1);
    uint8_t *bytes1 = NULL;
    size_t size1 = 0;
    CHECK_OK(hl_st_writer_write_memory(w, &bytes1, &size1, &err), &err);
    REQUIRE(bytes1);
    /* Header padded so the data start is 8-byte aligned, metadata first. */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes1[i];
    CHECK((8 + hlen) % 8 == 0);
    CHECK(size1 == 8 + hlen + 84800);
    CHECK(memcmp(bytes1 + 8, "{\"__metadata__\":{", 17) == 0);

    hl_safetensors *st2 = NULL;
    CHECK_OK(hl_st_open_memory(bytes1, size1, "roundtrip1", &st2, &err), &err);
    REQUIRE(st2);
    check_same(st, st2);
    for (int64_t i = 0; i < hl_st_n_tensors(st2); i++)
        CHECK(((uintptr_t)hl_st_tensor_at(st2, i)->data & 3) == 0); /* malloc'd copy + aligned start */

    /* Writing what we read back gives the same bytes. */
    float *store2;
    hl_st_writer *w2 = writer_from(st2, &store2);
    uint8_t *bytes2 = NULL;
    size_t size2 = 0;
    CHECK_OK(hl_st_writer_write_memory(w2, &bytes2, &size2, &err), &err);
    CHECK(size2 == size1 && bytes2 && memcmp(bytes1, bytes2, size1) == 0);

    /* write_file produces the same bytes and a file hl_st_open accepts. */
    char path[256];
    snprintf(path, sizeof path, "/tmp/hl_test_st_%ld.safetensors", (long)getpid());
    CHECK_OK(hl_st_writer_write_file(w2, path, &err), &err);
    size_t fsize = 0;
    uint8_t *fbytes = read_whole(path, &fsize);
    CHECK(fbytes && fsize == size1 && memcmp(fbytes, bytes1, size1) == 0);
    hl_safetensors *st3 = NULL;
    CHECK_OK(hl_st_open(path, &st3, &err), &err);
    if (st3) check_same(st, st3);
    hl_st_free(st3);
    free(fbytes);
    unlink(path);
    /* The temp file is gone after commit. */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.*", path);
    glob_t g;
    CHECK(glob(tmp, 0, NULL, &g) != 0);

    /* Writing into a missing directory fails cleanly. */
    hl_error e3 = {0};
    CHECK(hl_st_writer_write_file(w2, "/nonexistent-dir/x.safetensors", &e3) == HL_ERR_IO);
    CHECK(strstr(e3.msg, "/nonexistent-dir/x.safetensors") != NULL);

    hl_free(bytes1);
    hl_free(bytes2);
    hl_st_writer_free(w);
    hl_st_writer_free(w2);
    free(store1);
    free(store2);
    hl_st_free(st);
    hl_st_free(st2);
}

static void test_writer_edge_cases(void) {
    hl_error err = {0};
    /* Empty writer: "{}" padded, reads back with no tensors. */
    hl_st_writer *w = hl_st_writer_init();
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(hl_st_writer_write_memory(w, &b, &n, &err), &err);
    CHECK(n == 16 && b && memcmp(b + 8, "{}      ", 8) == 0);
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open_memory(b, n, "empty", &st, &err), &err);
    CHECK(st && hl_st_n_tensors(st) == 0 && hl_st_n_metadata(st) == 0);
    hl_st_free(st);
    hl_free(b);

    /* Names needing escapes, scalars, zero-size tensors, metadata overwrite. */
    float one = 1.5f, v6[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh_scalar[1] = {0}, sh_zero[2] = {0, 4}, sh23[2] = {2, 3};
    const char *weird = "quote\" back\\slash \n tab\t \x01 caf\xc3\xa9 \xf0\x9f\x98\x80";
    CHECK_OK(hl_st_writer_add_f32(w, weird, 2, sh23, v6, &err), &err);
    CHECK_OK(hl_st_writer_add_f32(w, "scalar", 0, sh_scalar, &one, &err), &err);
    CHECK_OK(hl_st_writer_add_f32(w, "empty", 2, sh_zero, NULL, &err), &err);
    CHECK_OK(hl_st_writer_add_f32(w, "", 1, sh23, v6, &err), &err);
    CHECK(hl_st_writer_set_metadata(w, "k", "v1") == HL_OK);
    CHECK(hl_st_writer_set_metadata(w, "k", "v2\"\n") == HL_OK);
    CHECK(hl_st_writer_set_metadata(w, "a", "") == HL_OK);
    CHECK(hl_st_writer_set_metadata(w, "bad", "\xff") == HL_ERR_INVALID_ARG);

    hl_error e = {0};
    CHECK(hl_st_writer_add_f32(w, "scalar", 0, NULL, &one, &e) == HL_ERR_INVALID_ARG);
    CHECK(strstr(e.msg, "duplicate tensor name 'scalar'") != NULL);
    CHECK(hl_st_writer_add_f32(w, "__metadata__", 0, NULL, &one, &e) == HL_ERR_INVALID_ARG);
    int64_t neg[1] = {-1}, many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(hl_st_writer_add_f32(w, "neg", 1, neg, v6, &e) == HL_ERR_INVALID_ARG);
    CHECK(hl_st_writer_add_f32(w, "many", 9, many, v6, &e) == HL_ERR_INVALID_ARG);
    CHECK(hl_st_writer_add_f32(w, "bad\xc0\x80", 1, sh23, v6, &e) == HL_ERR_INVALID_ARG);
    CHECK(strstr(e.msg, "not valid UTF-8") != NULL);
    CHECK(hl_st_writer_add_f32(w, "nodata", 1, sh23, NULL, &e) == HL_ERR_INVALID_ARG);
    int64_t huge[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
    CHECK(hl_st_writer_add_f32(w, "huge", 4, huge, v6, &e) == HL_ERR_INVALID_ARG);

    CHECK_OK(hl_st_writer_write_memory(w, &b, &n, &err), &err);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    CHECK(hl % 8 == 0 && n == 8 + hl + 36);
    CHECK_OK(hl_st_open_memory(b, n, "edge", &st, &err), &err);
    REQUIRE(st);
    CHECK(hl_st_n_tensors(st) == 4);
    const hl_st_tensor *t = hl_st_find(st, weird);
    REQUIRE(t);
    float out[6];
    CHECK(t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK_OK(hl_st_read_f32(t, out, 6, &err), &err);
    CHECK(bits_equal(out, v6, 6));
    t = hl_st_find(st, "scalar");
    CHECK(t && t->n_dims == 0 && t->nbytes == 4);
    if (t) {
        CHECK_OK(hl_st_read_f32(t, out, 1, &err), &err);
        CHECK(out[0] == 1.5f);
    }
    t = hl_st_find(st, "empty");
    CHECK(t && t->n_dims == 2 && t->shape[0] == 0 && t->nbytes == 0);
    if (t) CHECK_OK(hl_st_read_f32(t, NULL, 0, &err), &err);
    CHECK(hl_st_find(st, "") != NULL);
    CHECK(strcmp(hl_st_tensor_at(st, 0)->name, "") == 0); /* byte order: "" first */
    CHECK(hl_st_metadata(st, "k") && strcmp(hl_st_metadata(st, "k"), "v2\"\n") == 0);
    CHECK(hl_st_metadata(st, "a") && strcmp(hl_st_metadata(st, "a"), "") == 0);
    CHECK(hl_st_metadata(st, "bad") == NULL);
    /* And again, byte-identical. */
    float *store;
    hl_st_writer *w2 = writer_from(st, &store);
    uint8_t *b2 = NULL;
    size_t n2 = 0;
    CHECK_OK(hl_st_writer_write_memory(w2, &b2, &n2, &err), &err);
    CHECK(n2 == n && b2 && memcmp(b, b2, n) == 0);
    hl_free(b2);
    hl_st_writer_free(w2);
    free(store);
    hl_st_free(st);
    hl_free(b);
    hl_st_writer_free(w);
    hl_st_writer_free(NULL);
    hl_st_free(NULL);
}

/* Many tensors exercise the writer's hash table growth and sorting. */
static void test_many_tensors(void) {
    hl_error err = {0};
    hl_st_writer *w = hl_st_writer_init();
    static float vals[3000];
    int64_t sh[1] = {1};
    for (int i = 0; i < 3000; i++) {
        char name[32];
        vals[i] = (float)i;
        snprintf(name, sizeof name, "t%d", (i * 7919) % 3000);
        CHECK_OK(hl_st_writer_add_f32(w, name, 1, sh, &vals[i], &err), &err);
    }
    hl_error e = {0};
    CHECK(hl_st_writer_add_f32(w, "t1234", 1, sh, vals, &e) == HL_ERR_INVALID_ARG);
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(hl_st_writer_write_memory(w, &b, &n, &err), &err);
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open_memory(b, n, "many", &st, &err), &err);
    REQUIRE(st);
    CHECK(hl_st_n_tensors(st) == 3000);
    int good = 1;
    for (int i = 0; i < 3000; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", (i * 7919) % 3000);
        const hl_st_tensor *t = hl_st_find(st, name);
        float v = -1;
        if (!t || hl_st_read_f32(t, &v, 1, &err) != HL_OK || v != (float)i) good = 0;
    }
    CHECK(good);
    hl_st_free(st);
    hl_free(b);
    hl_st_writer_free(w);
}

static void test_f16(void) {
    hl_error err = {0};
    static const uint16_t h[] = {0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8001, 0x03ff, 0x0400,
                                 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x3800, 0x0200};
    const int n = (int)(sizeof h / sizeof h[0]);
    char json[200];
    snprintf(json, sizeof json, "{\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]}}", n, 2 * n);
    /* An odd header length makes the data start unaligned on purpose. */
    if (strlen(json) % 2 == 0) strcat(json, " ");
    size_t size;
    uint8_t *b = build(json, h, sizeof h, &size);
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open_memory(b, size, "f16", &st, &err), &err);
    REQUIRE(st);
    const hl_st_tensor *t = hl_st_find(st, "h");
    REQUIRE(t && t->dtype == HL_ST_F16 && t->nbytes == sizeof h);
    CHECK(((uintptr_t)t->data & 1) == 1);
    float out[32];
    CHECK_OK(hl_st_read_f32(t, out, (uint64_t)n, &err), &err);
    CHECK(bits_of(out[0]) == 0x00000000u);
    CHECK(bits_of(out[1]) == 0x80000000u);
    CHECK(out[2] == 1.0f);
    CHECK(out[3] == -2.0f);
    CHECK(out[4] == 65504.0f);
    CHECK(out[5] == 0x1p-24f);                /* smallest subnormal */
    CHECK(out[6] == -0x1p-24f);
    CHECK(out[7] == 1023.0f * 0x1p-24f);      /* largest subnormal */
    CHECK(out[8] == 0x1p-14f);                /* smallest normal */
    CHECK(isinf(out[9]) && out[9] > 0);
    CHECK(isinf(out[10]) && out[10] < 0);
    CHECK(isnan(out[11]));
    CHECK(out[12] == 0.333251953125f);
    CHECK(out[13] == 0.5f);
    CHECK(out[14] == 0x1p-15f);               /* subnormal 512 * 2^-24 */
    CHECK(strcmp(hl_st_dtype_name(t->dtype), "F16") == 0);
    hl_st_free(st);
    free(b);

    /* All 65536 halves: normals/subnormals agree with the arithmetic definition. */
    static uint16_t all[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    b = build("{\"all\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}", all, sizeof all, &size);
    CHECK_OK(hl_st_open_memory(b, size, "f16all", &st, &err), &err);
    REQUIRE(st);
    static float o[65536];
    CHECK_OK(hl_st_read_f32(hl_st_tensor_at(st, 0), o, 65536, &err), &err);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        int e = (i >> 10) & 31, m = i & 1023;
        double v = e == 0 ? m * 0x1p-24 : e == 31 ? (m ? NAN : INFINITY) : ldexp(1.0 + m / 1024.0, e - 15);
        if (i & 0x8000) v = -v;
        if (isnan(v) ? !isnan(o[i]) : (double)o[i] != v || !signbit(o[i]) != !signbit(v)) bad++;
    }
    CHECK_MSG(bad == 0, "%d halves converted wrongly", bad);
    hl_st_free(st);
    free(b);
}

static void test_bf16_f64(void) {
    hl_error err = {0};
    static const uint16_t bf[] = {0x3f80, 0xc040, 0x7f80, 0xff80, 0x0001, 0x7fc0, 0x8000, 0x4049};
    static const double dv[] = {1.0,   -2.5,   1e300, -1e300, 1e-50, 0.1, 0x1.ffffffp127, 0x1.fffffefffffffp127,
                                3.4028234663852886e38, -0.0, 1e-45};
    const int nb = (int)(sizeof bf / sizeof bf[0]), nd = (int)(sizeof dv / sizeof dv[0]);
    uint8_t data[256];
    memcpy(data, bf, sizeof bf);
    memcpy(data + sizeof bf, dv, sizeof dv);
    size_t nd_plus_nan = sizeof dv + 8;
    double nanv = NAN;
    memcpy(data + sizeof bf + sizeof dv, &nanv, 8);
    char json[300];
    snprintf(json, sizeof json,
             "{\"d\":{\"dtype\":\"F64\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]},"
             " \"b\" : {\"shape\":[2,%d],\"dtype\":\"BF16\",\"extra\":[1,{\"x\":null}],\"data_offsets\":[0,%zu]}} \n\t",
             nd + 1, sizeof bf, sizeof bf + nd_plus_nan, nb / 2, sizeof bf);
    size_t size;
    uint8_t *b = build(json, data, sizeof bf + nd_plus_nan, &size);
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open_memory(b, size, "bf16f64", &st, &err), &err);
    REQUIRE(st);
    REQUIRE(hl_st_n_tensors(st) == 2);
    CHECK(strcmp(hl_st_tensor_at(st, 0)->name, "b") == 0);
    const hl_st_tensor *t = hl_st_find(st, "b");
    REQUIRE(t && t->dtype == HL_ST_BF16 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == nb / 2);
    float out[32];
    CHECK_OK(hl_st_read_f32(t, out, (uint64_t)nb, &err), &err);
    CHECK(out[0] == 1.0f && out[1] == -3.0f);
    CHECK(isinf(out[2]) && out[2] > 0 && isinf(out[3]) && out[3] < 0);
    CHECK(bits_of(out[4]) == 0x00010000u);
    CHECK(isnan(out[5]));
    CHECK(bits_of(out[6]) == 0x80000000u);
    CHECK(out[7] == f_from_bits(0x40490000u));
    t = hl_st_find(st, "d");
    REQUIRE(t && t->dtype == HL_ST_F64);
    CHECK(hl_st_read_f32(t, out, (uint64_t)nd, &err) == HL_ERR_INVALID_ARG);
    CHECK_OK(hl_st_read_f32(t, out, (uint64_t)nd + 1, &err), &err);
    CHECK(out[0] == 1.0f && out[1] == -2.5f);
    CHECK(isinf(out[2]) && out[2] > 0 && isinf(out[3]) && out[3] < 0);
    CHECK(out[4] == 0.0f);
    CHECK(out[5] == 0.1f);
    CHECK(isinf(out[6]));                    /* halfway to 2^128 rounds up */
    CHECK(out[7] == 0x1.fffffep127f);        /* just below halfway rounds to FLT_MAX */
    CHECK(out[8] == 0x1.fffffep127f);
    CHECK(bits_of(out[9]) == 0x80000000u);
    CHECK(out[10] == 0x1p-149f);             /* rounds to the smallest float subnormal */
    CHECK(isnan(out[11]));
    CHECK(strcmp(hl_st_dtype_name(HL_ST_BF16), "BF16") == 0 && strcmp(hl_st_dtype_name(HL_ST_F64), "F64") == 0 &&
          strcmp(hl_st_dtype_name(HL_ST_F32), "F32") == 0 && strcmp(hl_st_dtype_name(HL_ST_DTYPE_COUNT), "?") == 0);

    /* Converted tensors write back as F32 with the same values. */
    float *store;
    hl_st_writer *w = writer_from(st, &store);
    uint8_t *wb = NULL;
    size_t wn = 0;
    CHECK_OK(hl_st_writer_write_memory(w, &wb, &wn, &err), &err);
    hl_safetensors *st2 = NULL;
    CHECK_OK(hl_st_open_memory(wb, wn, "bf16f64-rt", &st2, &err), &err);
    if (st2) check_same(st, st2);
    hl_st_free(st2);
    hl_free(wb);
    hl_st_writer_free(w);
    free(store);
    hl_st_free(st);
    free(b);
}

static void test_open_errors(void) {
    hl_error err = {0};
    hl_safetensors *st = (hl_safetensors *)&err;
    CHECK(hl_st_open("/nonexistent/file.safetensors", &st, &err) == HL_ERR_IO);
    CHECK(st == NULL);
    CHECK(strstr(err.msg, "/nonexistent/file.safetensors") != NULL);
    CHECK(hl_st_open("/tmp", &st, &err) == HL_ERR_IO);
    CHECK(hl_st_open_memory(NULL, 4, "x", &st, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_st_open_memory("", 0, NULL, &st, &err) == HL_ERR_FORMAT);
    CHECK(strstr(err.msg, "<memory>") != NULL);
    /* NULL err is allowed everywhere. */
    CHECK(hl_st_open_memory("", 0, "x", &st, NULL) == HL_ERR_FORMAT);
    CHECK(hl_st_n_tensors(NULL) == 0 && hl_st_find(NULL, "x") == NULL && hl_st_metadata(NULL, "x") == NULL);
}

/* Every allocation failure is reported as HL_ERR_NOMEM and leaks nothing
 * (LeakSanitizer checks the latter). cJSON's own allocations are not hooked. */
static void test_oom(void) {
    size_t size = 0;
    uint8_t *file = read_whole(shared_path("oracle/torch/ref/attn_ffn/adapter_init.safetensors"), &size);
    REQUIRE(file);
    int ok = 0, nomem = 0, other = 0;
    for (long k = 0; k < 400 && !ok; k++) {
        hl_error err = {0};
        hl_safetensors *st = NULL;
        hl_alloc_fail_after(k);
        hl_status s = hl_st_open_memory(file, size, "oom", &st, &err);
        hl_alloc_fail_after(-1);
        if (s == HL_OK) ok = 1;
        else if (s == HL_ERR_NOMEM) nomem++;
        else other++;
        CHECK((s == HL_OK) == (st != NULL));
        hl_st_free(st);
    }
    CHECK(ok && nomem > 60 && other == 0);

    hl_error err = {0};
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open_memory(file, size, "oom", &st, &err), &err);
    REQUIRE(st);
    ok = 0;
    other = 0;
    for (long k = 0; k < 1000 && !ok; k++) {
        hl_alloc_fail_after(k);
        hl_st_writer *w = hl_st_writer_init();
        hl_status s = w ? HL_OK : HL_ERR_NOMEM;
        for (int64_t i = 0; i < hl_st_n_tensors(st) && s == HL_OK; i++) {
            const hl_st_tensor *t = hl_st_tensor_at(st, i);
            s = hl_st_writer_add_f32(w, t->name, t->n_dims, t->shape, t->data, &err);
        }
        if (s == HL_OK) s = hl_st_writer_set_metadata(w, "format", "pt");
        uint8_t *b = NULL;
        size_t n = 0;
        if (s == HL_OK) s = hl_st_writer_write_memory(w, &b, &n, &err);
        hl_alloc_fail_after(-1);
        if (s == HL_OK) ok = 1;
        else if (s != HL_ERR_NOMEM) other++;
        hl_free(b);
        hl_st_writer_free(w);
    }
    CHECK(ok && other == 0);
    hl_st_free(st);
    free(file);
}

int main(void) {
    test_peft_plain();
    test_torch_init();
    test_round_trip();
    test_writer_edge_cases();
    test_many_tensors();
    test_f16();
    test_bf16_f64();
    test_open_errors();
    test_oom();
    return hl_test_finish("test_safetensors");
}
