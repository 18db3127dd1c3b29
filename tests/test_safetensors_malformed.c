/* test_safetensors_malformed.c: one named case per class of defect the
 * safetensors reader must refuse, each with the status and a message
 * substring; plus valid edge cases it must accept.
 *
 * With HL_WRITE_SEEDS set in the environment, every small case is also
 * written to fuzz/corpus/safetensors/<case>.safetensors as a fuzzing seed. */
#include "hyperlora.h"
#include "io/safetensors.h"
#include "util/alloc.h"
#include "test_util.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#ifndef HL_SOURCE_DIR
#define HL_SOURCE_DIR "."
#endif
#define SEED_DIR HL_SOURCE_DIR "/fuzz/corpus/safetensors"
#define SEED_MAX 16384

static int write_seeds = 0;
static int n_cases = 0;

static void write_seed(const char *name, const uint8_t *b, size_t n) {
    if (!write_seeds || n > SEED_MAX) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", SEED_DIR, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) fprintf(stderr, "cannot write seed %s\n", path);
    if (f) fclose(f);
}

/* Opens b as a safetensors file named after the case; checks the outcome. */
static void expect(const char *name, const uint8_t *b, size_t n, hl_status want, const char *substr) {
    hl_error err = {0};
    hl_safetensors *st = NULL;
    hl_status s = hl_st_open_memory(b, n, name, &st, &err);
    n_cases++;
    write_seed(name, b, n);
    CHECK_MSG(s == want, "case %s: got %s, want %s (%s)", name, hl_status_name(s), hl_status_name(want),
              s == HL_OK ? "" : err.msg);
    if (want == HL_OK) {
        CHECK_MSG(st != NULL, "case %s: no handle", name);
        printf("  %-34s accepted (%lld tensors)\n", name, (long long)hl_st_n_tensors(st));
        hl_st_free(st);
        return;
    }
    CHECK_MSG(st == NULL, "case %s: handle returned on error", name);
    hl_st_free(st);
    if (s == HL_OK) return;
    /* Every message names the file (here: the case name) first. */
    CHECK_MSG(strncmp(err.msg, name, strlen(name)) == 0, "case %s: message does not name the file: %s", name,
              err.msg);
    CHECK_MSG(strstr(err.msg, substr) != NULL, "case %s: message lacks \"%s\": %s", name, substr, err.msg);
    printf("  %-34s %s\n", name, err.msg);
}

/* 8-byte LE length + header bytes + dsize zero bytes of data. */
static uint8_t *mk_len(const char *hdr, size_t hlen, size_t dsize, size_t *n) {
    uint8_t *b = calloc(8 + hlen + dsize + 1, 1);
    REQUIRE(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    *n = 8 + hlen + dsize;
    return b;
}

static void case_json(const char *name, const char *json, size_t dsize, hl_status want, const char *substr) {
    size_t n;
    uint8_t *b = mk_len(json, strlen(json), dsize, &n);
    expect(name, b, n, want, substr);
    free(b);
}

/* Header bytes that may contain NULs. */
static void case_hdr(const char *name, const char *hdr, size_t hlen, size_t dsize, hl_status want,
                     const char *substr) {
    size_t n;
    uint8_t *b = mk_len(hdr, hlen, dsize, &n);
    expect(name, b, n, want, substr);
    free(b);
}

static void case_raw_len(const char *name, uint64_t hlen, const char *hdr, hl_status want, const char *substr) {
    size_t h = strlen(hdr);
    uint8_t *b = calloc(8 + h + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, hdr, h);
    expect(name, b, 8 + h, want, substr);
    free(b);
}

#define T1 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static void size_cases(void) {
    expect("empty_file", (const uint8_t *)"", 0, HL_ERR_FORMAT, "too short for the 8-byte header length");
    expect("short_file", (const uint8_t *)"\x02\0\0\0\0", 5, HL_ERR_FORMAT, "too short");
    case_raw_len("header_len_over_limit", (uint64_t)HL_ST_MAX_HEADER + 1, "{}", HL_ERR_LIMIT,
                 "exceeds the limit of 104857600 bytes");
    case_raw_len("header_len_u64_max", UINT64_MAX, "{}", HL_ERR_LIMIT, "exceeds the limit");
    case_raw_len("header_len_beyond_file", 100, "{}", HL_ERR_FORMAT, "beyond the end of the file");
    case_raw_len("header_len_one_past_file", 3, "{}", HL_ERR_FORMAT, "beyond the end of the file");
    case_raw_len("header_len_zero", 0, "", HL_ERR_FORMAT, "header is empty");
}

static void json_cases(void) {
    case_json("not_json", "{not json}", 0, HL_ERR_FORMAT, "not valid JSON");
    case_json("truncated_json", "{\"a\":{\"dtype\":\"F32\"", 0, HL_ERR_FORMAT, "not valid JSON");
    case_json("only_spaces", "        ", 0, HL_ERR_FORMAT, "not valid JSON");
    case_json("unterminated_string", "{\"a", 0, HL_ERR_FORMAT, "not valid JSON");
    case_json("root_array", "[1,2]", 0, HL_ERR_FORMAT, "header is not a JSON object");
    case_json("root_number", "42", 0, HL_ERR_FORMAT, "header is not a JSON object");
    case_json("root_string", "\"x\"", 0, HL_ERR_FORMAT, "header is not a JSON object");
    case_json("root_null", "null", 0, HL_ERR_FORMAT, "header is not a JSON object");
    case_json("trailing_garbage", "{}  x", 0, HL_ERR_FORMAT, "trailing data after the JSON object");
    case_json("two_objects", "{}{}", 0, HL_ERR_FORMAT, "trailing data");
    case_hdr("trailing_nul_padding", "{}\0\0", 4, 0, HL_ERR_FORMAT, "control character");
    case_hdr("nul_in_key", "{\"a\0b\":" T1 "}", 7 + strlen(T1) + 1, 4, HL_ERR_FORMAT, "raw control character");
    case_json("control_char_in_key", "{\"a\x01\":" T1 "}", 4, HL_ERR_FORMAT, "raw control character");
    case_json("escaped_nul_in_name", "{\"a\\u0000b\":" T1 "}", 4, HL_ERR_FORMAT, "\\u0000");
    case_json("bad_utf8_byte", "{\"\xff\":" T1 "}", 4, HL_ERR_FORMAT, "not valid UTF-8");
    case_json("bad_utf8_overlong_nul", "{\"a\xc0\x80\":" T1 "}", 4, HL_ERR_FORMAT, "not valid UTF-8");
    case_json("bad_utf8_surrogate", "{\"\xed\xa0\x80\":" T1 "}", 4, HL_ERR_FORMAT, "not valid UTF-8");
    case_json("bad_utf8_above_10ffff", "{\"\xf4\x90\x80\x80\":" T1 "}", 4, HL_ERR_FORMAT, "not valid UTF-8");
    case_json("bad_utf8_truncated_at_end", "{}\xe2\x82", 0, HL_ERR_FORMAT, "not valid UTF-8");
    case_json("lone_low_surrogate_escape", "{\"\\udc00\":" T1 "}", 4, HL_ERR_FORMAT, "not valid JSON");

    /* Nesting: 17 levels trips our limit, long before cJSON's 1000. */
    char deep[20100];
    strcpy(deep, "{\"a\":");
    size_t p = strlen(deep);
    for (int i = 0; i < 16; i++) deep[p++] = '[';
    for (int i = 0; i < 16; i++) deep[p++] = ']';
    deep[p++] = '}';
    deep[p] = 0;
    case_json("nesting_too_deep", deep, 0, HL_ERR_FORMAT, "nesting too deep");
    p = 0;
    for (int i = 0; i < 10000; i++) deep[p++] = '[';
    deep[p] = 0;
    case_json("nesting_10000_unclosed", deep, 0, HL_ERR_FORMAT, "nesting too deep");
    /* Brackets inside strings do not count. */
    case_json("brackets_in_name_ok",
              "{\"[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{{\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
              HL_OK, "");
}

static void entry_cases(void) {
    case_json("entry_number", "{\"a\":5}", 0, HL_ERR_FORMAT, "tensor 'a': entry is not a JSON object");
    case_json("entry_array", "{\"a\":[0,4]}", 4, HL_ERR_FORMAT, "tensor 'a': entry is not a JSON object");
    case_json("entry_null", "{\"a\":null}", 0, HL_ERR_FORMAT, "entry is not a JSON object");
    case_json("missing_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HL_ERR_FORMAT,
              "tensor 'a': missing \"dtype\"");
    case_json("missing_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, HL_ERR_FORMAT,
              "tensor 'a': missing \"shape\"");
    case_json("missing_data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, HL_ERR_FORMAT,
              "tensor 'a': missing \"data_offsets\"");
    case_json("duplicate_dtype_field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              4, HL_ERR_FORMAT, "tensor 'a': duplicate \"dtype\" field");
    case_json("dtype_number", "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HL_ERR_FORMAT,
              "tensor 'a': \"dtype\" is not a string");
    case_json("dtype_I64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, HL_ERR_UNSUPPORTED,
              "tensor 'w': dtype I64 not supported");
    case_json("dtype_F8_E4M3", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
              HL_ERR_UNSUPPORTED, "dtype F8_E4M3 not supported");
    case_json("dtype_lowercase", "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_UNSUPPORTED, "dtype f32 not supported");
    case_json("dtype_empty", "{\"w\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HL_ERR_UNSUPPORTED,
              "dtype  not supported");
    case_json("shape_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
              HL_ERR_FORMAT, "tensor 'a': \"shape\" is not an array");
    case_json("shape_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_FORMAT, "tensor 'a': shape[1] is not an integer in [0, 2^53)");
    case_json("shape_fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_FORMAT, "shape[0] is not an integer");
    case_json("shape_above_2p53", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9007199254740993],\"data_offsets\":[0,0]}}",
              0, HL_ERR_FORMAT, "shape[1] is not an integer in [0, 2^53)");
    case_json("shape_1e300", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,1e300],\"data_offsets\":[0,0]}}", 0,
              HL_ERR_FORMAT, "shape[1] is not an integer");
    case_json("shape_string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", 16,
              HL_ERR_FORMAT, "shape[0] is not an integer");
    case_json("shape_bool", "{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4, HL_ERR_FORMAT,
              "shape[0] is not an integer");
    case_json("shape_too_many_dims",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, HL_ERR_LIMIT,
              "tensor 'a': shape has 9 dims, more than the limit of 8");
    case_json("shape_count_overflow",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_FORMAT, "tensor 'a': element count x dtype size overflows");
    case_json("shape_bytes_overflow",
              "{\"a\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,4096],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_FORMAT, "element count x dtype size overflows");
    case_json("offsets_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4}}", 4, HL_ERR_FORMAT,
              "tensor 'a': \"data_offsets\" is not an array of two integers");
    case_json("offsets_one_value", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, HL_ERR_FORMAT,
              "\"data_offsets\" is not an array of two integers");
    case_json("offsets_three_values", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
              HL_ERR_FORMAT, "\"data_offsets\" is not an array of two integers");
    case_json("offsets_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
              HL_ERR_FORMAT, "tensor 'a': data_offsets must be two integers in [0, 2^53)");
    case_json("offsets_fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4,
              HL_ERR_FORMAT, "data_offsets must be two integers");
    case_json("offsets_strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4,
              HL_ERR_FORMAT, "data_offsets must be two integers");
    case_json("offsets_huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,"
              "18446744073709551616]}}", 4, HL_ERR_FORMAT, "data_offsets must be two integers");
    case_json("offsets_begin_after_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
              HL_ERR_FORMAT, "tensor 'a': data_offsets begin 8 > end 4");
    case_json("offsets_span_mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
              HL_ERR_FORMAT, "tensor 'a': data_offsets span 4 bytes but shape x dtype size is 8 bytes");
    case_json("offsets_span_mismatch_f16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
              HL_ERR_FORMAT, "span 16 bytes but shape x dtype size is 8 bytes");
}

static void layout_cases(void) {
    case_json("end_beyond_data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, HL_ERR_FORMAT,
              "tensor 'a': data_offsets end 8 beyond the data buffer (4 bytes)");
    case_json("gap_at_start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, HL_ERR_FORMAT,
              "tensor 'a': data starts at byte 4, leaving a gap after byte 0");
    case_json("gap_between",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
              12, HL_ERR_FORMAT, "tensor 'b': data starts at byte 8, leaving a gap after byte 4");
    case_json("overlap",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              12, HL_ERR_FORMAT, "tensor 'b': data [4, 12) overlaps tensor 'a'");
    case_json("same_offsets",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              4, HL_ERR_FORMAT, "overlaps tensor");
    case_json("contained_in_other",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              16, HL_ERR_FORMAT, "tensor 'b': data [4, 8) overlaps tensor 'a'");
    case_json("zero_size_inside_other",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
              8, HL_ERR_FORMAT, "overlaps tensor");
    case_json("data_not_covered", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
              HL_ERR_FORMAT, "data buffer has 4 bytes not covered by any tensor");
    case_json("no_tensors_with_data", "{}", 4, HL_ERR_FORMAT, "no tensors but 4 bytes of data");
    case_json("duplicate_tensor_name",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              8, HL_ERR_FORMAT, "duplicate tensor name 'a'");
    case_json("duplicate_name_via_escape",
              "{\"ab\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\\u0062\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              8, HL_ERR_FORMAT, "duplicate tensor name 'ab'");
    case_json("control_name_printed_safely",
              "{\"x\\ny\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HL_ERR_UNSUPPORTED,
              "tensor 'x\\x0ay': dtype I8"); /* escaped by util/escape.h */

    /* One tensor over the cap: tiny entries are counted before any is parsed. */
    size_t cap = (size_t)(HL_ST_MAX_TENSORS + 1) * 12 + 16, p = 0;
    char *big = malloc(cap);
    big[p++] = '{';
    for (uint32_t i = 0; i <= HL_ST_MAX_TENSORS; i++) p += (size_t)snprintf(big + p, cap - p, "%s\"%x\":0", i ? "," : "", i);
    big[p++] = '}';
    big[p] = 0;
    case_json("too_many_tensors", big, 0, HL_ERR_LIMIT, "too many tensors (1048577, limit 1048576)");
    free(big);
}

static void metadata_cases(void) {
    case_json("metadata_not_object", "{\"__metadata__\":\"pt\"}", 0, HL_ERR_FORMAT, "__metadata__ is not a JSON object");
    case_json("metadata_null", "{\"__metadata__\":null}", 0, HL_ERR_FORMAT, "__metadata__ is not a JSON object");
    case_json("metadata_value_number", "{\"__metadata__\":{\"format\":\"pt\",\"r\":4}}", 0, HL_ERR_FORMAT,
              "__metadata__ value for key 'r' is not a string");
    case_json("metadata_value_object", "{\"__metadata__\":{\"k\":{}}}", 0, HL_ERR_FORMAT,
              "value for key 'k' is not a string");
    case_json("metadata_duplicate_key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, HL_ERR_FORMAT,
              "duplicate __metadata__ key 'k'");
    case_json("metadata_twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, HL_ERR_FORMAT,
              "__metadata__ appears more than once");
}

static void valid_cases(void) {
    case_json("ok_empty", "{}", 0, HL_OK, "");
    case_json("ok_empty_padded", "{}      ", 0, HL_OK, "");
    case_json("ok_whitespace_around", " \n{\"__metadata__\":{}}\t\r\n ", 0, HL_OK, "");
    case_json("ok_one", "{\"__metadata__\":{\"format\":\"pt\"},\"a\":" T1 "}  ", 4, HL_OK, "");
    case_json("ok_scalar", "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, HL_OK, "");
    case_json("ok_zero_size",
              "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
              "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
              "\"y\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]}}",
              4, HL_OK, "");
    case_json("ok_only_zero_size", "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, HL_OK, "");
    case_json("ok_big_dim_times_zero",
              "{\"z\":{\"dtype\":\"F64\",\"shape\":[9007199254740991,0],\"data_offsets\":[0,0]}}", 0, HL_OK, "");
    case_json("ok_unknown_fields",
              "{\"a\":{\"extra\":{\"x\":[1,2]},\"dtype\":\"F16\",\"shape\":[1e0,2],\"data_offsets\":[0,4]}}", 4, HL_OK,
              "");
    case_json("ok_reverse_order",
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              8, HL_OK, "");
    case_json("ok_utf8_names", "{\"caf\xc3\xa9\xf0\x9f\x98\x80\":" T1 "}", 4, HL_OK, "");
}

/* Seeds for the fuzzer also include a file our writer produced. */
static void writer_seed(void) {
    hl_error err = {0};
    hl_st_writer *w = hl_st_writer_init();
    float v[12] = {1, -2, 3.5f, 0, 1e-3f, 7, 8, 9, 10, 11, 12, 13};
    int64_t sa[2] = {2, 3}, sb[1] = {6};
    CHECK_OK(hl_st_writer_add_f32(w, "base_model.model.layers.0.attention.wq.lora_A.weight", 2, sa, v, &err), &err);
    CHECK_OK(hl_st_writer_add_f32(w, "base_model.model.layers.0.attention.wq.lora_B.weight", 1, sb, v + 6, &err), &err);
    CHECK(hl_st_writer_set_metadata(w, "format", "pt") == HL_OK);
    CHECK(hl_st_writer_set_metadata(w, "lora_alpha", "8.0") == HL_OK);
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(hl_st_writer_write_memory(w, &b, &n, &err), &err);
    if (b) expect("ok_written_by_writer", b, n, HL_OK, "");
    hl_free(b);
    hl_st_writer_free(w);
}

int main(void) {
    const char *ws = getenv("HL_WRITE_SEEDS");
    if (ws && *ws) {
        write_seeds = 1;
        mkdir(HL_SOURCE_DIR "/fuzz", 0777);
        mkdir(HL_SOURCE_DIR "/fuzz/corpus", 0777);
        if (mkdir(SEED_DIR, 0777) != 0 && errno != EEXIST) fprintf(stderr, "cannot create %s\n", SEED_DIR);
    }
    size_cases();
    json_cases();
    entry_cases();
    layout_cases();
    metadata_cases();
    valid_cases();
    writer_seed();
    printf("%d cases\n", n_cases);
    return hl_test_finish("test_safetensors_malformed");
}
