/* test_tokenizer_gguf.c: the tokenizer read from GGUF metadata (llama.cpp's
 * own conversion of stories260K) equals the one read from tok512.bin, a
 * to_gguf/from_gguf round trip is lossless, and malformed tokenizer.ggml.*
 * metadata is refused with a message naming the key. */
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <cjson/cJSON.h>

static void same_tokenizer(const hl_tokenizer *a, const hl_tokenizer *b, const char *what) {
    int32_t n = hl_tokenizer_n_vocab(a);
    CHECK_MSG(n == hl_tokenizer_n_vocab(b), "%s: n_vocab", what);
    CHECK_MSG(hl_tokenizer_bos(a) == hl_tokenizer_bos(b) && hl_tokenizer_eos(a) == hl_tokenizer_eos(b) &&
                  hl_tokenizer_unk(a) == hl_tokenizer_unk(b), "%s: special ids", what);
    int bad = 0;
    for (int32_t i = 0; i < n && i < hl_tokenizer_n_vocab(b); i++) {
        float sa = hl_tokenizer_score(a, i), sb = hl_tokenizer_score(b, i);
        int ok = strcmp(hl_tokenizer_piece(a, i), hl_tokenizer_piece(b, i)) == 0 && memcmp(&sa, &sb, 4) == 0 &&
                 hl_tokenizer_type(a, i) == hl_tokenizer_type(b, i);
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s: token %d: \"%s\" %g %d vs \"%s\" %g %d\n", what, i, hl_tokenizer_piece(a, i), sa,
                    hl_tokenizer_type(a, i), hl_tokenizer_piece(b, i), sb, hl_tokenizer_type(b, i));
    }
    CHECK_MSG(bad == 0, "%s: %d tokens differ", what, bad);
}

/* Every tok512 line of the llama2.c oracle, encoded by t. */
static void oracle_tok512(const hl_tokenizer *t) {
    size_t size;
    char *data = read_whole(shared_path("oracle/llama2c/tokenizer_encodings.jsonl"), &size);
    REQUIRE(data);
    data = realloc(data, size + 1);
    data[size] = 0;
    int lines = 0;
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        if (strstr(cJSON_GetObjectItem(j, "tokenizer")->valuestring, "tok512")) {
            const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
            cJSON *arr = cJSON_GetObjectItem(j, "ids");
            hl_error err = {0};
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(hl_tokenizer_encode(t, text, strlen(text), cJSON_IsTrue(cJSON_GetObjectItem(j, "bos")),
                                         cJSON_IsTrue(cJSON_GetObjectItem(j, "eos")), &ids, &n, &err), &err);
            int ok = (int)n == cJSON_GetArraySize(arr);
            for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(arr, (int)i)->valueint;
            CHECK_MSG(ok, "gguf tokenizer: \"%s\": ids differ from llama2.c", text);
            hl_free(ids);
            lines++;
        }
        cJSON_Delete(j);
    }
    CHECK(lines >= 7);
    printf("oracle (tok512 lines through the GGUF tokenizer): %d\n", lines);
    free(data);
}

/* Serializes w and reads the tokenizer back; *g is kept open for messages. */
static hl_status load_from_writer(hl_gguf_writer *w, hl_tokenizer **t, hl_error *err) {
    uint8_t *buf = NULL;
    size_t size = 0;
    hl_gguf *g = NULL;
    *t = NULL;
    hl_status s = hl_gguf_writer_write_memory(w, &buf, &size, err);
    if (s == HL_OK) s = hl_gguf_open_memory(buf, size, "mem.gguf", &g, err);
    if (s == HL_OK) s = hl_tokenizer_from_gguf(g, t, err);
    hl_gguf_free(g);
    hl_free(buf);
    return s;
}

/* A writer holding t's keys, then one defect applied by the caller. */
static hl_gguf_writer *writer_of(const hl_tokenizer *t) {
    hl_gguf_writer *w = hl_gguf_writer_init();
    hl_error err = {0};
    REQUIRE(w);
    CHECK_OK(hl_tokenizer_to_gguf(t, w, &err), &err);
    return w;
}

static void expect_bad(hl_gguf_writer *w, hl_status want, const char *sub1, const char *sub2, const char *what) {
    hl_tokenizer *t = NULL;
    hl_error err = {0};
    hl_status s = load_from_writer(w, &t, &err);
    CHECK_MSG(s == want && t == NULL, "%s: got %s (%s)", what, hl_status_name(s), err.msg);
    CHECK_MSG(strstr(err.msg, sub1) && (!sub2 || strstr(err.msg, sub2)), "%s: message \"%s\"", what, err.msg);
    printf("  %-28s -> %s: %s\n", what, hl_status_name(s), err.msg);
    hl_tokenizer_free(t);
    hl_gguf_writer_free(w);
}

static void test_malformed(const hl_tokenizer *ref) {
    int32_t n = hl_tokenizer_n_vocab(ref);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    int8_t *i8 = calloc((size_t)n, 1);
    for (int32_t i = 0; i < n; i++) {
        scores[i] = hl_tokenizer_score(ref, i);
        types[i] = hl_tokenizer_type(ref, i);
    }
    hl_gguf_writer *w;

    w = writer_of(ref); /* type confusion: scores declared as INT8 */
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", HL_GGUF_INT8, i8, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.scores", "int8", "scores as INT8 array");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_f32(w, "tokenizer.ggml.scores", 1.0f) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.scores", "float32", "scores as a scalar");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", HL_GGUF_FLOAT32, scores, (uint64_t)n - 1) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.scores has 511 elements", "512", "scores length mismatch");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_INT32, types, (uint64_t)n - 2) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.token_type has 510", NULL, "token_type length mismatch");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_UINT8, i8, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.token_type", "uint8", "token_type as UINT8 array");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", HL_GGUF_INT32, types, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.tokens", "int32", "tokens as INT32 array");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert") == HL_OK);
    expect_bad(w, HL_ERR_UNSUPPORTED, "\"bert\"", "\"gpt2\"", "model bert (the supported ones listed)");

    w = writer_of(ref); /* byte-level BPE needs its merges */
    CHECK(hl_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "missing tokenizer.ggml.merges", NULL, "model gpt2 without merges");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.model") == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "missing tokenizer.ggml.model", NULL, "model missing");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 512) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 512 is out of range", NULL, "bos id out of range");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", UINT32_MAX) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.unknown_token_id", "out of range", "unk id UINT32_MAX");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_str(w, "tokenizer.ggml.eos_token_id", "2") == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.eos_token_id", NULL, "eos id as a string");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.tokens") == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "missing tokenizer.ggml.tokens", NULL, "tokens missing");

    w = writer_of(ref);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.scores") == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "missing tokenizer.ggml.scores", NULL, "scores missing");

    w = writer_of(ref);
    scores[300] = NAN;
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", HL_GGUF_FLOAT32, scores, (uint64_t)n) == HL_OK);
    scores[300] = hl_tokenizer_score(ref, 300);
    expect_bad(w, HL_ERR_FORMAT, "token 300: score is NaN", "tokenizer.ggml", "NaN score");

    w = writer_of(ref);
    types[400] = 9;
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_INT32, types, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "token 400: token type 9", NULL, "token type 9");
    types[400] = HL_TOKEN_BYTE; /* a BYTE that is not <0xNN> */
    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_INT32, types, (uint64_t)n) == HL_OK);
    types[400] = hl_tokenizer_type(ref, 400);
    expect_bad(w, HL_ERR_FORMAT, "token 400: type BYTE", NULL, "byte type on a normal piece");

    /* Pieces: invalid UTF-8, NUL-free but over the length cap, empty array. */
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    for (int32_t i = 0; i < n; i++) pieces[i] = hl_tokenizer_piece(ref, i);
    pieces[260] = "h\xC3";
    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "token 260: piece is not valid UTF-8", NULL, "invalid UTF-8 piece");
    char *big = malloc(HL_TOKENIZER_MAX_PIECE + 2);
    memset(big, 'x', HL_TOKENIZER_MAX_PIECE + 1);
    big[HL_TOKENIZER_MAX_PIECE + 1] = 0;
    pieces[260] = big;
    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, (uint64_t)n) == HL_OK);
    expect_bad(w, HL_ERR_LIMIT, "tokenizer.ggml.tokens[260]", "limit", "piece over 1 KiB");
    w = writer_of(ref);
    CHECK(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, 0) == HL_OK);
    expect_bad(w, HL_ERR_FORMAT, "tokenizer.ggml.tokens is empty", NULL, "no tokens");

    /* Optional keys: without token_type (inferred) and special ids (defaults). */
    w = writer_of(ref);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.token_type") == HL_OK);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.bos_token_id") == HL_OK);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.eos_token_id") == HL_OK);
    CHECK(hl_gguf_writer_remove_key(w, "tokenizer.ggml.unknown_token_id") == HL_OK);
    hl_tokenizer *t = NULL;
    hl_error err = {0};
    CHECK_OK(load_from_writer(w, &t, &err), &err);
    if (t) same_tokenizer(ref, t, "without optional keys");
    hl_tokenizer_free(t);
    hl_gguf_writer_free(w);

    free(big);
    free(pieces);
    free(scores);
    free(types);
    free(i8);
}

int main(void) {
    hl_error err = {0};
    hl_gguf *g = NULL;
    hl_tokenizer *from_gguf = NULL, *from_bin = NULL;
    CHECK_OK(hl_gguf_open(shared_path("models/stories260K/stories260K-f32.gguf"), &g, &err), &err);
    REQUIRE(g);
    CHECK_OK(hl_tokenizer_from_gguf(g, &from_gguf, &err), &err);
    CHECK_OK(hl_tokenizer_from_llama2c(shared_path("models/stories260K/tok512.bin"), 512, &from_bin, &err), &err);
    REQUIRE(from_gguf && from_bin);
    same_tokenizer(from_gguf, from_bin, "gguf vs tok512.bin");
    oracle_tok512(from_gguf);

    /* The public loader tells the two formats apart by the GGUF magic. */
    hl_tokenizer *pub_gguf = NULL, *pub_bin = NULL, *pub_none = NULL;
    CHECK_OK(hl_tokenizer_load(shared_path("models/stories260K/stories260K-f32.gguf"), &pub_gguf, &err), &err);
    CHECK_OK(hl_tokenizer_load(shared_path("models/stories260K/tok512.bin"), &pub_bin, &err), &err);
    if (pub_gguf) same_tokenizer(from_gguf, pub_gguf, "hl_tokenizer_load gguf");
    if (pub_bin) same_tokenizer(from_bin, pub_bin, "hl_tokenizer_load tok512.bin");
    CHECK(hl_tokenizer_load("no/such/tokenizer.bin", &pub_none, &err) == HL_ERR_IO && !pub_none);
    CHECK(strstr(err.msg, "no/such/tokenizer.bin") != NULL);
    hl_tokenizer_free(pub_gguf);
    hl_tokenizer_free(pub_bin);

    /* to_gguf -> bytes -> from_gguf is lossless, and writes llama.cpp's keys. */
    hl_gguf_writer *w = writer_of(from_bin);
    uint8_t *buf = NULL;
    size_t size = 0;
    hl_gguf *g2 = NULL;
    hl_tokenizer *back = NULL;
    CHECK_OK(hl_gguf_writer_write_memory(w, &buf, &size, &err), &err);
    CHECK_OK(hl_gguf_open_memory(buf, size, "roundtrip.gguf", &g2, &err), &err);
    REQUIRE(g2);
    CHECK_OK(hl_tokenizer_from_gguf(g2, &back, &err), &err);
    REQUIRE(back);
    same_tokenizer(from_bin, back, "round trip");
    static const char *const keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                                       "tokenizer.ggml.model", "tokenizer.ggml.unknown_token_id",
                                       "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t a = hl_gguf_find_key(g, keys[i]), b = hl_gguf_find_key(g2, keys[i]);
        CHECK_MSG(a >= 0 && b >= 0 && hl_gguf_kv_type_of(g, a) == hl_gguf_kv_type_of(g2, b), "key %s", keys[i]);
        if (a < 0 || b < 0) continue;
        hl_gguf_kv_type ea = HL_GGUF_KV_TYPE_COUNT, eb = HL_GGUF_KV_TYPE_COUNT;
        uint64_t na = 0, nb = 1;
        if (hl_gguf_kv_type_of(g, a) == HL_GGUF_ARRAY) {
            CHECK(hl_gguf_kv_arr(g, a, &ea, &na) == HL_OK && hl_gguf_kv_arr(g2, b, &eb, &nb) == HL_OK);
            CHECK_MSG(ea == eb && na == nb, "key %s: array shape", keys[i]);
        } else {
            int64_t va = 0, vb = 0;
            if (hl_gguf_kv_scalar(g, a, NULL, &va)) CHECK_MSG(hl_gguf_kv_scalar(g2, b, NULL, &vb) && va == vb,
                                                              "key %s: value", keys[i]);
        }
    }
    hl_gguf_str model;
    CHECK(hl_gguf_get_str(g2, "tokenizer.ggml.model", &model, &err) == HL_OK && model.len == 5 &&
          memcmp(model.data, "llama", 5) == 0);
    hl_tokenizer_free(back);
    hl_gguf_free(g2);
    hl_free(buf);
    hl_gguf_writer_free(w);

    /* Allocation failures in from_gguf are reported, never crash or leak. */
    int saw_ok = 0;
    for (int k = 0; k < 32 && !saw_ok; k++) {
        hl_tokenizer *t = NULL;
        hl_alloc_fail_after(k);
        hl_status s = hl_tokenizer_from_gguf(g, &t, &err);
        hl_alloc_fail_after(-1);
        CHECK_MSG(s == HL_OK || (s == HL_ERR_NOMEM && !t), "fail_after %d: %s", k, hl_status_name(s));
        saw_ok = s == HL_OK;
        hl_tokenizer_free(t);
    }
    CHECK(saw_ok);

    printf("malformed tokenizer metadata:\n");
    test_malformed(from_bin);

    hl_tokenizer_free(from_gguf);
    hl_tokenizer_free(from_bin);
    hl_gguf_free(g);
    return hl_test_finish("test_tokenizer_gguf");
}
