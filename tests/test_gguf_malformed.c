/* test_gguf_malformed.c: one hand-built broken GGUF per defect class (see
 * ../shared/DESIGN.md section 3). Each must be refused with the expected
 * status and a message that names the file and the offending field.
 *
 * With HL_WRITE_SEEDS set, the small cases (valid and invalid) are also
 * written as fuzzing seeds to <source>/fuzz/corpus/gguf/, or to the
 * directory HL_WRITE_SEEDS names when it is not "1" (see fuzz/README.md). */
#include "io/gguf.h"
#include "util/alloc.h"
#include "test_util.h"

#include <stdint.h>

/* ---- a tiny little-endian byte builder ---- */
typedef struct bb { uint8_t *p; size_t n, cap; } bb;

static void put(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        REQUIRE(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void u8(bb *b, uint8_t v) { put(b, &v, 1); }
static void u32(bb *b, uint32_t v) { for (int i = 0; i < 4; i++) u8(b, (uint8_t)(v >> (8 * i))); }
static void u64(bb *b, uint64_t v) { for (int i = 0; i < 8; i++) u8(b, (uint8_t)(v >> (8 * i))); }
static void zeros(bb *b, size_t n) {
    static const uint8_t z[4096];
    while (n) { size_t k = n < sizeof z ? n : sizeof z; put(b, z, k); n -= k; }
}
static void str(bb *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4); u32(b, version); u64(b, n_tensors); u64(b, n_kv);
}
static void kv_str(bb *b, const char *k, const char *v) { str(b, k); u32(b, HL_GGUF_STRING); str(b, v); }
static void kv_u32(bb *b, const char *k, uint32_t v) { str(b, k); u32(b, HL_GGUF_UINT32); u32(b, v); }
static void tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    str(b, name); u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) u64(b, ne[d]);
    u32(b, type); u64(b, offset);
}
static void pad(bb *b, size_t align) { while (b->n % align) u8(b, 0); }
/* data section of n bytes (a recognizable pattern) after padding */
static void data(bb *b, size_t align, size_t n) {
    pad(b, align);
    for (size_t i = 0; i < n; i++) u8(b, (uint8_t)(i * 7 + 1));
}

static const uint64_t NE_A[2] = {4, 2}; /* 32 bytes of f32 */
static const uint64_t NE_B[1] = {8};    /* 32 bytes of f32 */

/* The valid base every case starts from: 2 KVs, tensors a (offset 0) and b (32). */
static void base_kvs(bb *b) {
    kv_str(b, "general.architecture", "llama");
    kv_u32(b, "llama.embedding_length", 64);
}
static void base_tensors(bb *b) {
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, 32);
    data(b, 32, 64);
}

/* ---- cases ---- */
static void c_valid(bb *b) { hdr(b, 3, 2, 2); base_kvs(b); base_tensors(b); }
static void c_valid_v2(bb *b) { hdr(b, 2, 2, 2); base_kvs(b); base_tensors(b); }
static void c_valid_all_types(bb *b) {
    hdr(b, 3, 3, 18);
    kv_str(b, "general.architecture", "llama");
    kv_u32(b, "general.alignment", 64);
    str(b, "k.u8"); u32(b, HL_GGUF_UINT8); u8(b, 200);
    str(b, "k.i8"); u32(b, HL_GGUF_INT8); u8(b, 0x80);
    str(b, "k.u16"); u32(b, HL_GGUF_UINT16); u8(b, 1); u8(b, 2);
    str(b, "k.i16"); u32(b, HL_GGUF_INT16); u8(b, 0xff); u8(b, 0xff);
    str(b, "k.i32"); u32(b, HL_GGUF_INT32); u32(b, 0xfffffff0u);
    str(b, "k.f32"); u32(b, HL_GGUF_FLOAT32); u32(b, 0x3f800000u);
    str(b, "k.bool"); u32(b, HL_GGUF_BOOL); u8(b, 1);
    str(b, "k.u64"); u32(b, HL_GGUF_UINT64); u64(b, UINT64_MAX);
    str(b, "k.i64"); u32(b, HL_GGUF_INT64); u64(b, (uint64_t)1 << 63);
    str(b, "k.f64"); u32(b, HL_GGUF_FLOAT64); u64(b, 0x3ff0000000000000ull);
    str(b, "tokenizer.ggml.tokens"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_STRING); u64(b, 4);
    str(b, "<unk>"); str(b, "<s>"); str(b, ""); str(b, "\xe2\x96\x81hi");
    str(b, "tokenizer.ggml.scores"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_FLOAT32); u64(b, 4);
    for (int i = 0; i < 4; i++) u32(b, 0xbf800000u);
    str(b, "tokenizer.ggml.token_type"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_INT32); u64(b, 4);
    for (int i = 0; i < 4; i++) u32(b, 1);
    str(b, "a.bool"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_BOOL); u64(b, 3); u8(b, 0); u8(b, 1); u8(b, 1);
    str(b, "a.u64"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_UINT64); u64(b, 1); u64(b, 5);
    str(b, "a.empty"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_UINT8); u64(b, 0);
    uint64_t ne1[1] = {3}, ne4[4] = {2, 1, 2, 1};
    tinfo(b, "t.f32", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "t.f16", 1, ne1, HL_TYPE_F16, 64);
    tinfo(b, "t.bf16", 4, ne4, HL_TYPE_BF16, 128);
    data(b, 64, 136);
    pad(b, 64);
}
static void c_valid_adapter(bb *b) {
    hdr(b, 3, 2, 4);
    kv_str(b, "general.architecture", "llama");
    kv_str(b, "general.type", "adapter");
    kv_str(b, "adapter.type", "lora");
    str(b, "adapter.lora.alpha"); u32(b, HL_GGUF_FLOAT32); u32(b, 0x41000000u);
    uint64_t nea[2] = {4, 2}, neb[2] = {2, 4};
    tinfo(b, "blk.0.attn_q.weight.lora_a", 2, nea, HL_TYPE_F32, 0);
    tinfo(b, "blk.0.attn_q.weight.lora_b", 2, neb, HL_TYPE_F32, 32);
    data(b, 32, 64);
}
static void c_empty_file(bb *b) { (void)b; }
static void c_bad_magic(bb *b) { c_valid(b); memcpy(b->p, "GGML", 4); }
static void c_bad_version(bb *b) { hdr(b, 4, 2, 2); base_kvs(b); base_tensors(b); }
static void c_version_1(bb *b) { hdr(b, 1, 2, 2); base_kvs(b); base_tensors(b); }
static void c_big_endian(bb *b) { hdr(b, 0x03000000u, 2, 2); base_kvs(b); base_tensors(b); }
static void c_truncated_header(bb *b) { put(b, "GGUF", 4); u32(b, 3); u32(b, 2); }
static void c_huge_n_kv(bb *b) { hdr(b, 3, 2, (uint64_t)1 << 62); base_kvs(b); base_tensors(b); }
static void c_huge_n_tensors(bb *b) { hdr(b, 3, UINT64_MAX, 2); base_kvs(b); base_tensors(b); }
static void c_n_kv_above_cap(bb *b) { hdr(b, 3, 0, HL_GGUF_MAX_KV + 1ull); zeros(b, 14ull * (HL_GGUF_MAX_KV + 1)); }
static void c_n_tensors_above_cap(bb *b) { hdr(b, 3, HL_GGUF_MAX_TENSORS + 1ull, 0); zeros(b, 32ull * (HL_GGUF_MAX_TENSORS + 1)); }
static void c_key_length_huge(bb *b) { hdr(b, 3, 0, 1); u64(b, (uint64_t)1 << 63); put(b, "general.architecture", 20); zeros(b, 40); }
static void c_string_past_eof(bb *b) {
    hdr(b, 3, 0, 1); str(b, "general.architecture"); u32(b, HL_GGUF_STRING); u64(b, 100); put(b, "llama", 5);
}
static void c_string_above_cap(bb *b) {
    hdr(b, 3, 0, 1); str(b, "general.name"); u32(b, HL_GGUF_STRING);
    u64(b, HL_GGUF_MAX_STRING + 1ull); zeros(b, HL_GGUF_MAX_STRING + 1ull);
}
static void c_empty_key(bb *b) { hdr(b, 3, 0, 1); str(b, ""); u32(b, HL_GGUF_UINT32); u32(b, 1); zeros(b, 8); }
static void c_array_length_huge(bb *b) {
    hdr(b, 3, 0, 1); str(b, "tokenizer.ggml.scores"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_FLOAT32);
    u64(b, (uint64_t)1 << 62); zeros(b, 64);
}
static void c_array_bytes_wrap(bb *b) { /* n * 8 wraps to a small number */
    hdr(b, 3, 0, 1); str(b, "a.u64"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_UINT64);
    u64(b, ((uint64_t)1 << 61) + 1); zeros(b, 64);
}
static void c_array_above_cap(bb *b) {
    hdr(b, 3, 0, 1); str(b, "a.u8"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_UINT8);
    u64(b, HL_GGUF_MAX_ARRAY + 1ull); zeros(b, HL_GGUF_MAX_ARRAY + 1ull);
}
static void c_string_array_huge(bb *b) {
    hdr(b, 3, 0, 1); str(b, "tokenizer.ggml.tokens"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_STRING);
    u64(b, (uint64_t)1 << 40); str(b, "a"); str(b, "b");
}
static void c_string_array_elem_past_eof(bb *b) {
    hdr(b, 3, 0, 1); str(b, "tokenizer.ggml.tokens"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_STRING);
    u64(b, 3); str(b, "<unk>"); u64(b, 1000); put(b, "abc", 3); zeros(b, 16);
}
static void c_array_of_arrays(bb *b) {
    hdr(b, 3, 0, 1); str(b, "a.nested"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_ARRAY); u64(b, 1);
    u32(b, HL_GGUF_UINT8); u64(b, 1); u8(b, 1); zeros(b, 8);
}
static void c_unknown_kv_type(bb *b) { hdr(b, 3, 0, 1); str(b, "k.weird"); u32(b, 13); u32(b, 0); zeros(b, 8); }
static void c_unknown_elem_type(bb *b) {
    hdr(b, 3, 0, 1); str(b, "a.weird"); u32(b, HL_GGUF_ARRAY); u32(b, 99); u64(b, 1); zeros(b, 8);
}
static void c_bad_bool(bb *b) { hdr(b, 3, 0, 1); str(b, "k.flag"); u32(b, HL_GGUF_BOOL); u8(b, 2); zeros(b, 8); }
static void c_bad_bool_array(bb *b) {
    hdr(b, 3, 0, 1); str(b, "a.flags"); u32(b, HL_GGUF_ARRAY); u32(b, HL_GGUF_BOOL); u64(b, 3);
    u8(b, 1); u8(b, 255); u8(b, 0); zeros(b, 8);
}
static void c_duplicate_key(bb *b) {
    hdr(b, 3, 2, 3); base_kvs(b); kv_str(b, "general.architecture", "gpt2"); base_tensors(b);
}
static void c_duplicate_tensor(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "a", 1, NE_B, HL_TYPE_F32, 32);
    data(b, 32, 64);
}
static void c_alignment_type(bb *b) {
    hdr(b, 3, 2, 3); base_kvs(b); str(b, "general.alignment"); u32(b, HL_GGUF_INT32); u32(b, 32); base_tensors(b);
}
static void c_alignment_u64(bb *b) {
    hdr(b, 3, 2, 3); base_kvs(b); str(b, "general.alignment"); u32(b, HL_GGUF_UINT64); u64(b, 32); base_tensors(b);
}
static void c_alignment_zero(bb *b) { hdr(b, 3, 2, 3); base_kvs(b); kv_u32(b, "general.alignment", 0); base_tensors(b); }
static void c_alignment_npot(bb *b) { hdr(b, 3, 2, 3); base_kvs(b); kv_u32(b, "general.alignment", 48); base_tensors(b); }
static void c_alignment_huge(bb *b) { hdr(b, 3, 2, 3); base_kvs(b); kv_u32(b, "general.alignment", 1u << 31); base_tensors(b); }
static void c_n_dims_0(bb *b) { hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 0, NE_A, HL_TYPE_F32, 0); data(b, 32, 32); }
static void c_n_dims_5(bb *b) {
    uint64_t ne[5] = {1, 1, 1, 1, 32};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 5, ne, HL_TYPE_F32, 0); data(b, 32, 128);
}
static void c_n_dims_huge(bb *b) { hdr(b, 3, 1, 2); base_kvs(b); str(b, "a"); u32(b, 0xffffffffu); zeros(b, 64); }
static void c_ne_zero(bb *b) {
    uint64_t ne[2] = {4, 0};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_F32, 0); data(b, 32, 32);
}
static void c_ne_negative(bb *b) {
    uint64_t ne[2] = {(uint64_t)-4, (uint64_t)-2};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_F32, 0); data(b, 32, 32);
}
static void c_ne_overflow(bb *b) {
    uint64_t ne[4] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 1, 1};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 4, ne, HL_TYPE_F32, 0); data(b, 32, 32);
}
static void c_ne_int64_overflow(bb *b) { /* product 2^63 fits u64 but not int64 */
    uint64_t ne[2] = {(uint64_t)1 << 32, (uint64_t)1 << 31};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_F16, 0); data(b, 32, 32);
}
static void c_nbytes_overflow(bb *b) {
    uint64_t ne[2] = {(uint64_t)1 << 31, (uint64_t)1 << 31}; /* 2^62 elements x 4 bytes */
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_F32, 0); data(b, 32, 32);
}
/* Valid block-type tensors: q8_0 (2 rows of 32: 68 bytes), q4_K and q6_K (one
 * 256-element row each: 144 and 210 bytes), each at the next multiple of 32. */
static void c_valid_quant(bb *b) {
    uint64_t ne_q8[2] = {32, 2}, ne_k[2] = {256, 1};
    hdr(b, 3, 3, 2); base_kvs(b);
    tinfo(b, "q8", 2, ne_q8, HL_TYPE_Q8_0, 0);
    tinfo(b, "q4k", 2, ne_k, HL_TYPE_Q4_K, 96);
    tinfo(b, "q6k", 2, ne_k, HL_TYPE_Q6_K, 256);
    data(b, 32, 466);
}
/* Block types: a row must be whole blocks, and rows × row bytes must not wrap. */
static void c_quant_row_partial(bb *b) {
    uint64_t ne[2] = {48, 2};
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_Q4_K, 0); data(b, 32, 288);
}
static void c_quant_row_partial_q8_0(bb *b) {
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, NE_A, HL_TYPE_Q8_0, 0); data(b, 32, 64);
}
static void c_quant_nbytes_overflow(bb *b) {
    uint64_t ne[2] = {(uint64_t)31 << 58, 1}; /* < 2^63 elements, but 31·2^53 blocks of 34 bytes > 2^63 */
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_Q8_0, 0); data(b, 32, 68);
}
static void c_quant_truncated(bb *b) {
    uint64_t ne[2] = {32, 2}; /* two q8_0 blocks: 68 bytes, only 60 present */
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 2, ne, HL_TYPE_Q8_0, 0); data(b, 32, 60);
}
static void c_unknown_tensor_type(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, 16 /* iq2_xxs */, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, 32);
    data(b, 32, 64);
}
static void c_tensor_type_huge(bb *b) {
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "weird", 1, NE_B, 0xdeadbeefu, 0); data(b, 32, 32);
}
static void c_misaligned_offset(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, 40);
    data(b, 32, 96);
}
static void c_overlap_same(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, 0);
    data(b, 32, 64);
}
static void c_overlap_partial(bb *b) {
    uint64_t ne[1] = {16}; /* 64 bytes at offset 32 overlaps c (at 64) */
    hdr(b, 3, 3, 2); base_kvs(b);
    tinfo(b, "c", 1, NE_B, HL_TYPE_F32, 64);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, ne, HL_TYPE_F32, 32);
    data(b, 32, 128);
}
static void c_data_past_eof(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, 32);
    data(b, 32, 40);
}
static void c_offset_wraps(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    tinfo(b, "b", 1, NE_B, HL_TYPE_F32, UINT64_MAX - 31);
    data(b, 32, 64);
}
static void c_data_section_past_eof(bb *b) { /* metadata ends unaligned and the file stops */
    hdr(b, 3, 1, 2); base_kvs(b); tinfo(b, "a", 1, NE_B, HL_TYPE_F32, 0);
}
/* Truncations inside a field: the counts still fit in what is left, so the
 * field-level check (not the up-front count bound) must catch them. */
static void c_truncated_tensor_info(bb *b) {
    hdr(b, 3, 2, 2); base_kvs(b); tinfo(b, "a", 2, NE_A, HL_TYPE_F32, 0);
    str(b, "blk.0.attn_output.weight.lora_b.long.name"); u32(b, 1); u8(b, 8); u8(b, 0); /* ne[0] cut short */
}
static void c_truncated_kv_type(bb *b) { hdr(b, 3, 0, 1); str(b, "general.architecture"); u8(b, HL_GGUF_STRING); u8(b, 0); }
static void c_truncated_kv(bb *b) { hdr(b, 3, 0, 1); u64(b, 20); put(b, "general.ar", 10); }
static void c_truncated_kv_value(bb *b) {
    hdr(b, 3, 0, 1); str(b, "general.architecture"); u32(b, HL_GGUF_STRING); u8(b, 5); u8(b, 0);
}

typedef struct mcase {
    const char *name;
    void (*build)(bb *);
    hl_status status;
    const char *expect; /* substring the message must contain (besides the file name) */
    int seed;           /* small enough to be a fuzz seed */
} mcase;

static const mcase cases[] = {
    {"valid", c_valid, HL_OK, NULL, 1},
    {"valid_v2", c_valid_v2, HL_OK, NULL, 1},
    {"valid_all_types", c_valid_all_types, HL_OK, NULL, 1},
    {"valid_quant_types", c_valid_quant, HL_OK, NULL, 1},
    {"valid_adapter", c_valid_adapter, HL_OK, NULL, 1},
    {"empty_file", c_empty_file, HL_ERR_FORMAT, "too small", 0},
    {"bad_magic", c_bad_magic, HL_ERR_FORMAT, "bad magic", 1},
    {"bad_version", c_bad_version, HL_ERR_UNSUPPORTED, "version 4", 1},
    {"version_1", c_version_1, HL_ERR_UNSUPPORTED, "version 1", 0},
    {"big_endian", c_big_endian, HL_ERR_UNSUPPORTED, "big-endian", 0},
    {"truncated_header", c_truncated_header, HL_ERR_FORMAT, "n_tensors", 0},
    {"huge_n_kv", c_huge_n_kv, HL_ERR_FORMAT, "n_kv = 4611686018427387904", 1},
    {"huge_n_tensors", c_huge_n_tensors, HL_ERR_FORMAT, "n_tensors = 18446744073709551615", 1},
    {"n_kv_above_cap", c_n_kv_above_cap, HL_ERR_LIMIT, "n_kv = 1048577 exceeds the limit", 0},
    {"n_tensors_above_cap", c_n_tensors_above_cap, HL_ERR_LIMIT, "n_tensors = 1048577 exceeds the limit", 0},
    {"key_length_huge", c_key_length_huge, HL_ERR_FORMAT, "KV 0 key: string length 9223372036854775808 runs past end", 0},
    {"string_past_eof", c_string_past_eof, HL_ERR_FORMAT, "'general.architecture': string length 100 runs past end", 1},
    {"string_above_cap", c_string_above_cap, HL_ERR_LIMIT, "'general.name': string length 16777217 exceeds the limit", 0},
    {"empty_key", c_empty_key, HL_ERR_FORMAT, "KV 0: empty key", 0},
    {"array_length_huge", c_array_length_huge, HL_ERR_FORMAT, "'tokenizer.ggml.scores': array length 4611686018427387904", 1},
    {"array_bytes_wrap", c_array_bytes_wrap, HL_ERR_FORMAT, "'a.u64': array length 2305843009213693953", 0},
    {"array_above_cap", c_array_above_cap, HL_ERR_LIMIT, "'a.u8': array length 67108865 exceeds the limit", 0},
    {"string_array_huge", c_string_array_huge, HL_ERR_FORMAT, "'tokenizer.ggml.tokens': array length 1099511627776", 1},
    {"string_array_elem_past_eof", c_string_array_elem_past_eof, HL_ERR_FORMAT, "'tokenizer.ggml.tokens': element 1: string length 1000", 1},
    {"array_of_arrays", c_array_of_arrays, HL_ERR_FORMAT, "'a.nested': nested arrays", 1},
    {"unknown_kv_type", c_unknown_kv_type, HL_ERR_FORMAT, "'k.weird': unknown value type 13", 1},
    {"unknown_array_elem_type", c_unknown_elem_type, HL_ERR_FORMAT, "'a.weird': unknown array element type 99", 0},
    {"bad_bool", c_bad_bool, HL_ERR_FORMAT, "'k.flag': bool value 2", 1},
    {"bad_bool_array", c_bad_bool_array, HL_ERR_FORMAT, "'a.flags': element 1: bool value 255", 0},
    {"duplicate_key", c_duplicate_key, HL_ERR_FORMAT, "duplicate key 'general.architecture'", 1},
    {"duplicate_tensor", c_duplicate_tensor, HL_ERR_FORMAT, "duplicate tensor name 'a'", 1},
    {"alignment_wrong_type", c_alignment_type, HL_ERR_FORMAT, "'general.alignment' has type int32, expected uint32", 1},
    {"alignment_u64", c_alignment_u64, HL_ERR_FORMAT, "'general.alignment' has type uint64", 0},
    {"alignment_zero", c_alignment_zero, HL_ERR_FORMAT, "'general.alignment' = 0", 1},
    {"alignment_not_pow2", c_alignment_npot, HL_ERR_FORMAT, "'general.alignment' = 48", 0},
    {"alignment_huge", c_alignment_huge, HL_ERR_FORMAT, "'general.alignment' = 2147483648", 0},
    {"n_dims_0", c_n_dims_0, HL_ERR_FORMAT, "tensor 0 'a': n_dims 0", 1},
    {"n_dims_5", c_n_dims_5, HL_ERR_FORMAT, "tensor 0 'a': n_dims 5", 1},
    {"n_dims_huge", c_n_dims_huge, HL_ERR_FORMAT, "n_dims 4294967295", 0},
    {"ne_zero", c_ne_zero, HL_ERR_FORMAT, "tensor 0 'a': ne[1] = 0", 1},
    {"ne_negative", c_ne_negative, HL_ERR_FORMAT, "tensor 0 'a': ne[0] = -4", 0},
    {"ne_product_overflow", c_ne_overflow, HL_ERR_FORMAT, "tensor 0 'a': element count", 1},
    {"ne_product_int64_overflow", c_ne_int64_overflow, HL_ERR_FORMAT, "tensor 0 'a': element count", 0},
    {"nbytes_overflow", c_nbytes_overflow, HL_ERR_FORMAT, "tensor 0 'a': byte size", 1},
    {"unknown_tensor_type", c_unknown_tensor_type, HL_ERR_UNSUPPORTED, "tensor 0 'a': unsupported tensor type 16 (iq2_xxs)", 1},
    {"quant_row_not_whole_blocks", c_quant_row_partial, HL_ERR_FORMAT, "tensor 0 'a': row length ne[0] = 48 is not a multiple of the q4_K block size 256", 1},
    {"quant_row_partial_q8_0", c_quant_row_partial_q8_0, HL_ERR_FORMAT, "tensor 0 'a': row length ne[0] = 4 is not a multiple of the q8_0 block size 32", 1},
    {"quant_nbytes_overflow", c_quant_nbytes_overflow, HL_ERR_FORMAT, "tensor 0 'a': byte size", 1},
    {"quant_truncated_blocks", c_quant_truncated, HL_ERR_FORMAT, "tensor 0 'a': data (offset 0, 68 bytes) runs past end of file", 1},
    {"tensor_type_huge", c_tensor_type_huge, HL_ERR_UNSUPPORTED, "'weird': unsupported tensor type 3735928559", 0},
    {"misaligned_offset", c_misaligned_offset, HL_ERR_FORMAT, "tensor 1 'b': offset 40 is not a multiple of the alignment 32", 1},
    {"overlap_same_offset", c_overlap_same, HL_ERR_FORMAT, "overlaps: 'a' [0, 32) and 'b' [0, 32)", 1},
    {"overlap_partial", c_overlap_partial, HL_ERR_FORMAT, "overlaps: 'b' [32, 96) and 'c' [64, 96)", 1},
    {"data_past_eof", c_data_past_eof, HL_ERR_FORMAT, "tensor 1 'b': data (offset 32, 32 bytes) runs past end of file", 1},
    {"offset_wraps", c_offset_wraps, HL_ERR_FORMAT, "tensor 1 'b': data (offset 18446744073709551584", 0},
    {"data_section_past_eof", c_data_section_past_eof, HL_ERR_FORMAT, "data section", 0},
    {"truncated_tensor_info", c_truncated_tensor_info, HL_ERR_FORMAT, "tensor 1 'blk.0.attn_output.weight.lora_b.long.name': truncated ne[0]", 1},
    {"truncated_kv_key", c_truncated_kv, HL_ERR_FORMAT, "KV 0 key: string length 20 runs past end", 0},
    {"truncated_kv_type", c_truncated_kv_type, HL_ERR_FORMAT, "'general.architecture': truncated value type", 0},
    {"truncated_kv_value", c_truncated_kv_value, HL_ERR_FORMAT, "'general.architecture': truncated string length", 0},
};

static void write_seed(const char *dir, const char *name, const bb *b) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot write seed %s", path);
    if (!f) return;
    CHECK(fwrite(b->p, 1, b->n, f) == b->n);
    fclose(f);
}

/* Every prefix of a valid file that cuts metadata or tensor data must be
 * refused cleanly; prefixes that only drop trailing padding still open. */
static void test_all_truncations(void (*build)(bb *), const char *name) {
    bb b = {0};
    build(&b);
    hl_error err = {0};
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open_memory(b.p, b.n, name, &g, &err), &err);
    REQUIRE(g);
    size_t need = 0;
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        size_t end = (size_t)((const uint8_t *)t->data - b.p) + (size_t)t->nbytes;
        if (end > need) need = end;
    }
    hl_gguf_free(g);
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        /* a heap copy of exactly n bytes, so ASan catches any over-read */
        uint8_t *copy = malloc(n ? n : 1);
        REQUIRE(copy);
        memcpy(copy, b.p, n);
        g = NULL;
        hl_status s = hl_gguf_open_memory(copy, n, name, &g, &err);
        if ((s == HL_OK) != (n >= need)) bad++;
        hl_gguf_free(g);
        free(copy);
    }
    CHECK_MSG(bad == 0, "%s: %d of %zu prefixes misjudged (data ends at %zu)", name, bad, b.n, need);
    printf("%s: all %zu prefixes judged correctly\n", name, b.n);
    free(b.p);
}

int main(void) {
#ifndef HL_SOURCE_DIR
#define HL_SOURCE_DIR "."
#endif
    const char *seed_dir = getenv("HL_WRITE_SEEDS");
    if (seed_dir && (!seed_dir[0] || strcmp(seed_dir, "1") == 0)) seed_dir = HL_SOURCE_DIR "/fuzz/corpus/gguf";
    int n_cases = (int)(sizeof cases / sizeof cases[0]), passed = 0;
    for (int i = 0; i < n_cases; i++) {
        const mcase *c = &cases[i];
        bb b = {0};
        c->build(&b);
        /* exact-size heap copy: any read past the end is an ASan error */
        uint8_t *copy = malloc(b.n ? b.n : 1);
        REQUIRE(copy);
        if (b.n) memcpy(copy, b.p, b.n);
        hl_error err = {HL_OK, ""};
        hl_gguf *g = NULL;
        hl_status s = hl_gguf_open_memory(copy, b.n, c->name, &g, &err);
        int ok = s == c->status;
        if (c->status == HL_OK) {
            ok = ok && g != NULL;
        } else {
            ok = ok && g == NULL && strncmp(err.msg, c->name, strlen(c->name)) == 0 && strstr(err.msg, c->expect) != NULL;
        }
        printf("%-28s %-24s %s\n", c->name, hl_status_name(s), s == HL_OK ? "(opened)" : err.msg);
        CHECK_MSG(ok, "case %s: expected %s containing \"%s\", got %s: %s", c->name,
                  hl_status_name(c->status), c->expect ? c->expect : "", hl_status_name(s), err.msg);
        passed += ok;
        hl_gguf_free(g);
        if (seed_dir && c->seed) write_seed(seed_dir, c->name, &b);
        free(copy);
        free(b.p);
    }
    printf("%d/%d malformed-file cases behave as expected\n", passed, n_cases);
    test_all_truncations(c_valid, "valid-truncated");
    test_all_truncations(c_valid_all_types, "all-types-truncated");
    test_all_truncations(c_valid_quant, "quant-truncated");
    test_all_truncations(c_valid_adapter, "adapter-truncated");
    return hl_test_finish("test_gguf_malformed");
}
