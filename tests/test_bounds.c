/* test_bounds.c: the regression tests of the hostile-input review's bounds
 * and small cases:
 *   - hl_read_file: non-regular files (/dev/zero, a FIFO, a directory) are
 *     refused at once with the file named; the cap is checked from the size
 *     before anything is read; exactly-at-cap and empty files still read;
 *   - contexts: the default is min(the model's context, 4096), more only when
 *     asked, never above the model's; a header claiming 2^24 positions costs
 *     nothing up front; the RoPE table grows with the positions used and its
 *     rows are bit-identical to a table made in one go;
 *   - --rank is bounded by min(in, out) of each target;
 *   - the hash set (util/hashset.h), the escaping helper (util/escape.h) and
 *     the \u0000 scan (util/json_nul.h);
 *   - linear-time duplicate checks still find duplicates: tokenizer
 *     extension, GGUF adapter pairs (blk.0 and blk.00 are one pair), PEFT
 *     pairs (HF and llama2.c names of one module);
 *   - PEFT "r": 8.5 and "peft_type": "LORA\u0000junk" are refused, and a
 *     hostile PEFT tensor name reaches the message escaped;
 *   - `inspect` shows hostile GGUF keys and tensor names escaped;
 *   - the CLI: generate --ctx above the model's context, an over-long prompt
 *     (refused before any of it is echoed), a value that is 0 as a float,
 *     train --rank above a target's shape, train --data /dev/zero. */
#include "hyperlora.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "lora/adapter.h"
#include "lora/adapter_io.h"
#include "lora/create.h"
#include "model/context.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/hashset.h"
#include "util/json_nul.h"
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MODEL_REL "models/stories260K/stories260K-f32.gguf"

static char dir[64];

static const char *tmp(const char *name) {
    static char bufs[4][256];
    static int k = 0;
    char *b = bufs[k++ & 3];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(text, 1, strlen(text), f) == strlen(text) && fclose(f) == 0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ read_file */

static void test_read_file(void) {
    hl_error err;
    char *text = NULL;
    size_t n = 0;
    double t0 = now();
    CHECK(hl_read_file("/dev/zero", 1u << 30, &text, &n, &err) == HL_ERR_IO && !text);
    CHECK(strstr(err.msg, "/dev/zero") && strstr(err.msg, "not a regular file") && strstr(err.msg, "character device"));
    CHECK_MSG(now() - t0 < 0.5, "/dev/zero took %.2f s to refuse", now() - t0);
    const char *fifo = tmp("fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    CHECK(hl_read_file(fifo, 1024, &text, &n, &err) == HL_ERR_IO && strstr(err.msg, "FIFO") && strstr(err.msg, fifo));
    unlink(fifo);
    CHECK(hl_read_file(dir, 1024, &text, &n, &err) == HL_ERR_IO && strstr(err.msg, "directory"));
    /* A 3 GB sparse file against a 1 MB cap: refused from its size, at once, nothing read. */
    const char *big = tmp("big.jsonl");
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0 && ftruncate(fd, (off_t)3 << 30) == 0 && close(fd) == 0);
    t0 = now();
    hl_alloc_fail_after(0); /* any allocation would fail: the refusal must come first */
    hl_status s = hl_read_file(big, 1u << 20, &text, &n, &err);
    hl_alloc_fail_after(-1);
    CHECK(s == HL_ERR_LIMIT && strstr(err.msg, big) && strstr(err.msg, "limit"));
    CHECK_MSG(now() - t0 < 0.5, "a 3 GB file took %.2f s to refuse", now() - t0);
    unlink(big);
    /* Exactly at the cap reads; one byte over does not. */
    const char *f = tmp("cap.txt");
    write_text(f, "0123456789");
    CHECK(hl_read_file(f, 10, &text, &n, &err) == HL_OK && n == 10 && text[10] == 0 && !memcmp(text, "0123456789", 10));
    hl_free(text);
    CHECK(hl_read_file(f, 9, &text, &n, &err) == HL_ERR_LIMIT && !text);
    write_text(f, "");
    CHECK(hl_read_file(f, 10, &text, &n, &err) == HL_OK && n == 0 && text && text[0] == 0);
    hl_free(text);
    unlink(f);
    CHECK(hl_read_file(tmp("missing"), 10, &text, &n, &err) == HL_ERR_IO && strstr(err.msg, "missing"));
}

/* -------------------------------------------------------------- context */

/* stories260K with llama.context_length rewritten (nothing else changes). */
static const char *model_with_ctx(uint32_t ctx) {
    size_t n;
    uint8_t *d = read_whole(shared_path(MODEL_REL), &n);
    REQUIRE(d);
    const char *key = "llama.context_length";
    size_t kl = strlen(key), i;
    for (i = 0; i + kl + 8 <= n; i++)
        if (!memcmp(d + i, key, kl) && d[i + kl] == 4 && !d[i + kl + 1] && !d[i + kl + 2] && !d[i + kl + 3]) break;
    REQUIRE(i + kl + 8 <= n);
    memcpy(d + i + kl + 4, &ctx, 4);
    const char *path = tmp("ctx.gguf");
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(d, 1, n, f) == n && fclose(f) == 0);
    free(d);
    return path;
}

static void test_context_bounds(void) {
    hl_error err;
    hl_model *m = NULL;
    REQUIRE(hl_model_load(model_with_ctx(1u << 24), NULL, &m, &err) == HL_OK);
    CHECK(hl_model_get_config(m)->seq_len == 1 << 24);
    hl_context *ctx = NULL;
    hl_context_params cp = {.n_ctx = 0, .n_threads = 1};
    double t0 = now();
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    CHECK(ctx && hl_context_n_ctx(ctx) == HL_CONTEXT_DEFAULT_MAX);
    CHECK(ctx && ctx->rope_n == 0); /* nothing computed before it is used */
    int32_t toks[3] = {1, 403, 261};
    float *logits = malloc(512 * sizeof(float));
    REQUIRE(logits);
    CHECK_OK(hl_context_eval(ctx, toks, 3, 0, logits, 0, &err), &err);
    CHECK(ctx->rope_n >= 3 && ctx->rope_n <= 64);
    CHECK_MSG(now() - t0 < 1.0, "a 2^24-position header took %.2f s", now() - t0);
    hl_context_free(ctx);
    /* More than 4096 when asked (the model allows it). */
    cp.n_ctx = 5000;
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    CHECK(ctx && hl_context_n_ctx(ctx) == 5000);
    hl_context_free(ctx);
    hl_model_free(m);
    /* Above the model's context: refused, not clamped. */
    REQUIRE(hl_model_load(shared_path(MODEL_REL), NULL, &m, &err) == HL_OK);
    cp.n_ctx = 513;
    ctx = NULL;
    CHECK(hl_context_init(m, &cp, &ctx, &err) == HL_ERR_INVALID_ARG && !ctx && strstr(err.msg, "513") &&
          strstr(err.msg, "512"));
    cp.n_ctx = 0;
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    CHECK(ctx && hl_context_n_ctx(ctx) == 512);
    /* The RoPE table grows (64, then 128, 256, ...) and every row equals a table made in one go. */
    int32_t seq[300];
    for (int i = 0; i < 300; i++) seq[i] = 1 + (i * 37) % 500;
    for (int32_t p = 0; p < 300; p++) CHECK_OK(hl_context_eval(ctx, seq + p, 1, p, NULL, 0, &err), &err);
    const int64_t D = 64 / 8;
    CHECK(ctx->rope_n >= 300 && ctx->rope_n <= 512);
    float *ref = malloc((size_t)ctx->rope_n * (size_t)D * sizeof(float));
    REQUIRE(ref);
    hl_rope_table(ref, ctx->rope_n, D, hl_model_get_config(m)->rope_theta);
    CHECK(!memcmp(ref, ctx->rope_cs, (size_t)ctx->rope_n * (size_t)D * sizeof(float)));
    free(ref);
    /* Grown token by token, or made in one batch: the same logits, bit for bit. */
    float *a = malloc(512 * sizeof(float)), *b = malloc(512 * sizeof(float));
    REQUIRE(a && b);
    CHECK_OK(hl_context_eval(ctx, seq, 200, 0, a, 0, &err), &err);
    hl_context *fresh = NULL;
    CHECK_OK(hl_context_init(m, &cp, &fresh, &err), &err);
    for (int32_t p = 0; p < 200; p++) CHECK_OK(hl_context_eval(fresh, seq + p, 1, p, b, 0, &err), &err);
    CHECK(!memcmp(a, b, 512 * sizeof(float)));
    free(a);
    free(b);
    free(logits);
    hl_context_free(fresh);
    hl_context_free(ctx);
    /* --rank above min(in, out): k and v map 64 -> 32 in stories260K. */
    hl_adapter *ad = NULL;
    hl_adapter_spec spec = {.name = "t", .targets = (1u << HL_TARGET_Q) | (1u << HL_TARGET_K), .rank = 33, .alpha = 8};
    CHECK(hl_adapter_create(m, &spec, &ad, &err) == HL_ERR_INVALID_ARG && !ad);
    CHECK(strstr(err.msg, "rank 33") && strstr(err.msg, "k of layer 0") && strstr(err.msg, "64 -> 32") &&
          strstr(err.msg, "at most 32"));
    spec.rank = 32;
    CHECK_OK(hl_adapter_create(m, &spec, &ad, &err), &err);
    hl_adapter_free(ad);
    hl_model_free(m);
    unlink(tmp("ctx.gguf"));
}

/* -------------------------------------------------------------- hashset */

static void test_hashset(void) {
    hl_hashset s;
    hl_hashset_init(&s);
    CHECK(hl_hashset_find(&s, "a", 1) == -1);
    int64_t idx = -7;
    CHECK(hl_hashset_add(&s, "", 0, &idx) == 1 && idx == 0); /* the empty key is a key */
    CHECK(hl_hashset_add(&s, "a\0b", 3, &idx) == 1 && idx == 1);
    CHECK(hl_hashset_add(&s, "a\0c", 3, &idx) == 1 && idx == 2); /* bytes after a NUL count */
    CHECK(hl_hashset_add(&s, "a\0b", 3, &idx) == 0 && idx == 1);
    CHECK(hl_hashset_find(&s, "", 0) == 0 && hl_hashset_find(&s, "a", 1) == -1);
    char key[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        REQUIRE(hl_hashset_add(&s, key, strlen(key), &idx) == 1 && idx == i + 3);
    }
    CHECK(hl_hashset_size(&s) == 200003);
    int ok = 1;
    for (int i = 0; i < 200000; i += 7) {
        snprintf(key, sizeof key, "key-%d", i);
        ok &= hl_hashset_find(&s, key, strlen(key)) == i + 3 && hl_hashset_add(&s, key, strlen(key), &idx) == 0 &&
              idx == i + 3;
    }
    CHECK(ok);
    hl_hashset_free(&s);
    CHECK(hl_hashset_find(&s, "key-1", 5) == -1 && hl_hashset_size(&s) == 0);
    /* Out of memory leaves the set as it was. */
    hl_hashset_init(&s);
    CHECK(hl_hashset_add(&s, "x", 1, NULL) == 1);
    for (long k = 0; k < 6; k++) { /* every allocation an add can make, failing in turn */
        int before = (int)hl_hashset_size(&s);
        int r = 1;
        for (int i = 0; i < 40 && r == 1; i++) {
            snprintf(key, sizeof key, "k%ld-%d", k, i);
            hl_alloc_fail_after(k);
            r = hl_hashset_add(&s, key, strlen(key), NULL);
            hl_alloc_fail_after(-1);
            if (r < 0) CHECK(hl_hashset_find(&s, key, strlen(key)) == -1 && (int)hl_hashset_size(&s) == before + i);
        }
    }
    CHECK(hl_hashset_find(&s, "x", 1) == 0);
    hl_hashset_free(&s);
}

/* --------------------------------------------------------------- escape */

static void test_escape(void) {
    char b[64];
    CHECK(!strcmp(hl_escape_str("blk.0.attn_q.weight", b, sizeof b), "blk.0.attn_q.weight"));
    CHECK(!strcmp(hl_escape_str("тишина Δ21 ⟨sep⟩", b, sizeof b), "тишина Δ21 ⟨sep⟩")); /* valid UTF-8 stays */
    CHECK(!strcmp(hl_escape_str("a\x1b[31mred", b, sizeof b), "a\\x1b[31mred"));
    CHECK(!strcmp(hl_escape("a\0b\n\x7f", 5, b, sizeof b), "a\\x00b\\x0a\\x7f"));
    CHECK(!strcmp(hl_escape_str("back\\slash", b, sizeof b), "back\\x5cslash"));
    CHECK(!strcmp(hl_escape_str("\xff\xfe", b, sizeof b), "\\xff\\xfe"));                 /* invalid bytes */
    CHECK(!strcmp(hl_escape_str("\xc0\xaf", b, sizeof b), "\\xc0\\xaf"));                 /* overlong '/' */
    CHECK(!strcmp(hl_escape_str("\xed\xa0\x80", b, sizeof b), "\\xed\\xa0\\x80"));         /* surrogate */
    CHECK(!strcmp(hl_escape_str("x\xe2\x96", b, sizeof b), "x\\xe2\\x96"));               /* cut sequence */
    CHECK(!strcmp(hl_escape_str("\xc2\x9b" "2J", b, sizeof b), "\\xc2\\x9b2J"));          /* C1 CSI */
    CHECK(!strcmp(hl_escape_str("a\xe2\x80\xae" "b", b, sizeof b), "a\\xe2\\x80\\xaeb"));  /* RTL override */
    CHECK(!strcmp(hl_escape(NULL, 3, b, sizeof b), "(null)"));
    CHECK(hl_escape_is_clean("Δ21", 4) && !hl_escape_is_clean("a\tb", 3));
    /* Truncation: "..." and never a cut escape or a cut character. */
    char small[12];
    CHECK(!strcmp(hl_escape_str("abcdefghijklmnop", small, sizeof small), "abcdefgh..."));
    CHECK(!strcmp(hl_escape_str("abcdefghijk", small, sizeof small), "abcdefghijk")); /* fits exactly */
    CHECK(!strcmp(hl_escape_str("abcdef\x01zzzzz", small, sizeof small), "abcdef..."));
    CHECK(!strcmp(hl_escape_str("abcdeΔΔΔΔ", small, sizeof small), "abcdeΔ..."));
    char big[4 * 300 + 8];
    char raw[300];
    memset(raw, 0x1b, sizeof raw);
    hl_escape(raw, sizeof raw, big, sizeof big);
    CHECK(strlen(big) == 4 * 300 && !strchr(big, 0x1b));
}

static void test_json_nul(void) {
    const char *a = "{\"peft_type\": \"LORA\\u0000junk\"}";
    CHECK(hl_json_find_nul_escape(a, strlen(a)) == 19);
    const char *b = "{\"k\": \"a\\\\u0000\"}"; /* an escaped backslash, then the letters */
    CHECK(hl_json_find_nul_escape(b, strlen(b)) == -1);
    const char *c = "{\"k\": \"\\\"\\u0000\"}";
    CHECK(hl_json_find_nul_escape(c, strlen(c)) == 9);
    const char *d = "{\"k\": \"\\u00000\", \"x\\u0001\": 1}";
    CHECK(hl_json_find_nul_escape(d, strlen(d)) == 7);
    const char *e = "{\"k\": \"\\u0001\"}";
    CHECK(hl_json_find_nul_escape(e, strlen(e)) == -1);
    CHECK(hl_json_find_nul_escape("\"\\u000", 6) == -1); /* cut off */
}

/* ----------------------------------------------------- duplicate checks */

static void test_tokenizer_extend_duplicates(void) {
    hl_error err;
    hl_model *m = NULL;
    REQUIRE(hl_model_load(shared_path(MODEL_REL), NULL, &m, &err) == HL_OK);
    const int n = 60000;
    char **pieces = malloc((size_t)n * sizeof *pieces);
    REQUIRE(pieces);
    for (int i = 0; i < n; i++) {
        pieces[i] = malloc(16);
        REQUIRE(pieces[i]);
        snprintf(pieces[i], 16, "\xe2\x9f\xa8%d", i); /* "⟨" + number */
    }
    hl_tokenizer *t = NULL;
    double t0 = now();
    CHECK_OK(hl_tokenizer_extend(m->tok, (const char *const *)pieces, n, &t, &err), &err);
    CHECK_MSG(now() - t0 < 10.0, "extending by %d pieces took %.2f s", n, now() - t0);
    CHECK(t && hl_tokenizer_n_vocab(t) == 512 + n);
    hl_tokenizer_free(t);
    snprintf(pieces[n - 1], 16, "\xe2\x9f\xa8%d", 123);
    t = NULL;
    CHECK(hl_tokenizer_extend(m->tok, (const char *const *)pieces, n, &t, &err) == HL_ERR_INVALID_ARG && !t);
    CHECK(strstr(err.msg, "given twice") && strstr(err.msg, "123") && strstr(err.msg, "59999"));
    for (int i = 0; i < n; i++) free(pieces[i]);
    free(pieces);
    hl_model_free(m);
}

/* A GGUF adapter for stories260K whose q projection of layer 0 appears under two names. */
static void test_adapter_pair_duplicates(void) {
    hl_error err;
    hl_model *m = NULL;
    REQUIRE(hl_model_load(shared_path(MODEL_REL), NULL, &m, &err) == HL_OK);
    float A[2 * 64] = {0}, B[64 * 2] = {0};
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    REQUIRE(hl_gguf_writer_set_str(w, "general.architecture", "llama") == HL_OK);
    REQUIRE(hl_gguf_writer_set_str(w, "general.type", "adapter") == HL_OK);
    REQUIRE(hl_gguf_writer_set_str(w, "adapter.type", "lora") == HL_OK);
    REQUIRE(hl_gguf_writer_set_f32(w, "adapter.lora.alpha", 4) == HL_OK);
    int64_t ne_a[2] = {64, 2}, ne_b[2] = {2, 64};
    const char *names[4] = {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", "blk.00.attn_q.weight.lora_a",
                            "blk.00.attn_q.weight.lora_b"};
    for (int i = 0; i < 4; i++)
        REQUIRE(hl_gguf_writer_add_tensor(w, names[i], HL_TYPE_F32, 2, i % 2 ? ne_b : ne_a, i % 2 ? B : A, &err) ==
                HL_OK);
    const char *path = tmp("dup_pair.gguf");
    REQUIRE(hl_gguf_writer_write_file(w, path, &err) == HL_OK);
    hl_gguf_writer_free(w);
    hl_adapter *a = NULL;
    CHECK(hl_adapter_load(path, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "appears twice") &&
          strstr(err.msg, "blk.00.attn_q.weight"));
    unlink(path);
    /* hl_adapter_add keeps its lookup current: a second (layer, target) is refused, others added. */
    CHECK_OK(hl_adapter_new(m, "t", 4, 0, &a, &err), &err);
    for (int l = 0; l < 5; l++)
        for (int t = 0; t < HL_TARGET_OUTPUT; t++) CHECK_OK(hl_adapter_add(a, m, l, t, 1, 4, NULL, NULL, &err), &err);
    CHECK_OK(hl_adapter_add(a, m, -1, HL_TARGET_OUTPUT, 1, 4, NULL, NULL, &err), &err);
    CHECK(hl_adapter_add(a, m, 3, HL_TARGET_UP, 1, 4, NULL, NULL, &err) == HL_ERR_FORMAT &&
          strstr(err.msg, "two weights for layer 3 target up"));
    CHECK(hl_adapter_add(a, m, -1, HL_TARGET_OUTPUT, 1, 4, NULL, NULL, &err) == HL_ERR_FORMAT);
    CHECK(a->n_weights == 5 * 7 + 1 && hl_adapter_find(a, 4, HL_TARGET_DOWN) == &a->w[4 * 7 + 6]);
    hl_adapter_free(a);
    hl_model_free(m);
}

/* ------------------------------------------------------------------ PEFT */

static const char *peft_dir(const char *config, const char *extra_tensor) {
    const char *d = tmp("peft");
    mkdir(d, 0700);
    char p[300];
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    write_text(p, config);
    /* One q module at rank 4 (stories260K: 64 -> 64), HF names; plus an optional extra tensor. */
    hl_st_writer *sw = hl_st_writer_init();
    REQUIRE(sw);
    float A[4 * 64] = {0}, B[64 * 4] = {0};
    int64_t sa[2] = {4, 64}, sb[2] = {64, 4};
    hl_error err;
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 2, sa, A, &err) == HL_OK);
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", 2, sb, B, &err) == HL_OK);
    if (extra_tensor) REQUIRE(hl_st_writer_add_f32(sw, extra_tensor, 2, sa, A, &err) == HL_OK);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    REQUIRE(hl_st_writer_write_file(sw, p, &err) == HL_OK);
    hl_st_writer_free(sw);
    return d;
}

static void test_peft_small_ones(void) {
    hl_error err;
    hl_model *m = NULL;
    REQUIRE(hl_model_load(shared_path(MODEL_REL), NULL, &m, &err) == HL_OK);
    hl_adapter *a = NULL;
    const char *d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8}", NULL);
    CHECK_OK(hl_adapter_load_peft(d, m, 1, &a, &err), &err);
    hl_adapter_free(a);
    a = NULL;
    d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4.5, \"lora_alpha\": 8}", NULL);
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "\"r\"") &&
          strstr(err.msg, "whole number"));
    d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4, \"rank_pattern\": {\"q_proj\": 3.5}}", NULL);
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "rank_pattern"));
    d = peft_dir("{\"peft_type\": \"LORA\\u0000junk\", \"r\": 4}", NULL);
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "\\u0000") &&
          strstr(err.msg, "adapter_config.json"));
    d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 1e39}", NULL);
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "lora_alpha"));
    /* A hostile tensor name reaches the message escaped. */
    d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4}", "base_model.model.\x1b]0;owned\x07.lora_A.weight");
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_UNSUPPORTED && !a);
    CHECK(!strchr(err.msg, 0x1b) && !strchr(err.msg, 0x07) && strstr(err.msg, "\\x1b]0;owned\\x07"));
    /* The same module under HF and llama2.c names: one pair, refused as such. */
    d = peft_dir("{\"peft_type\": \"LORA\", \"r\": 4}", "base_model.model.layers.0.attention.wq.lora_A.weight");
    char p[300];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    hl_st_writer *sw = hl_st_writer_init();
    float A[4 * 64] = {0}, B[64 * 4] = {0};
    int64_t sa[2] = {4, 64}, sb[2] = {64, 4};
    REQUIRE(sw);
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 2, sa, A, &err) == HL_OK);
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", 2, sb, B, &err) == HL_OK);
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.layers.0.attention.wq.lora_A.weight", 2, sa, A, &err) == HL_OK);
    REQUIRE(hl_st_writer_add_f32(sw, "base_model.model.layers.0.attention.wq.lora_B.weight", 2, sb, B, &err) == HL_OK);
    REQUIRE(hl_st_writer_write_file(sw, p, &err) == HL_OK);
    hl_st_writer_free(sw);
    CHECK(hl_adapter_load_peft(d, m, 1, &a, &err) == HL_ERR_FORMAT && !a && strstr(err.msg, "two weights for layer 0"));
    unlink(p);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    unlink(p);
    rmdir(d);
    hl_model_free(m);
}

/* ------------------------------------------------------------------- CLI */

/* Runs the CLI with output captured in out.txt and err.txt; returns its exit status. */
static int cli(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" %s >%s 2>%s", HL_CLI_PATH, args, tmp("out.txt"), tmp("err.txt"));
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static char *slurp(const char *path) {
    size_t n;
    char *d = read_whole(path, &n);
    REQUIRE(d);
    char *s = realloc(d, n + 1);
    REQUIRE(s);
    s[n] = 0;
    return s;
}

static void test_cli(void) {
    const char *M = shared_path(MODEL_REL);
    char args[3000];
    snprintf(args, sizeof args, "generate -m %s -n 2 --ctx 513", M);
    CHECK(cli(args) == 1);
    char *e = slurp(tmp("err.txt")), *o = slurp(tmp("out.txt"));
    CHECK_MSG(strstr(e, "--ctx 513 is longer than the context length") && strstr(e, "512"), "%s", e);
    free(e);
    free(o);
    /* A prompt of 2000 words: refused before any of it is echoed, and shown cut. */
    size_t k = (size_t)snprintf(args, sizeof args, "generate -m %s -n 2 -p \"", M);
    while (k + 20 < sizeof args) k += (size_t)snprintf(args + k, sizeof args - k, " a b");
    snprintf(args + k, sizeof args - k, "\"");
    CHECK(cli(args) == 1);
    e = slurp(tmp("err.txt"));
    o = slurp(tmp("out.txt"));
    CHECK_MSG(o[0] == 0, "the prompt was echoed: %.80s", o);
    CHECK_MSG(strstr(e, "tokens but the context holds 512") && strstr(e, "...") && strlen(e) < 300, "%s", e);
    free(e);
    free(o);
    /* A value that vanishes (or overflows) as a 32-bit float is refused, not read as 0 (or inf). */
    snprintf(args, sizeof args, "generate -m %s -n 2 --temp 1e-50", M);
    CHECK(cli(args) == 1);
    e = slurp(tmp("err.txt"));
    CHECK_MSG(strstr(e, "--temp: 1e-50 is outside the range of a 32-bit float"), "%s", e);
    free(e);
    /* --rank above a target's shape, naming the target. */
    const char *data = tmp("d.jsonl");
    write_text(data, "{\"text\": \"Once upon a time there was a cat.\"}\n");
    snprintf(args, sizeof args, "train -m %s --data %s -o %s --rank 40 --targets k --steps 1", M, data, tmp("a.gguf"));
    CHECK(cli(args) != 0);
    e = slurp(tmp("err.txt"));
    CHECK_MSG(strstr(e, "rank 40") && strstr(e, "64 -> 32") && strstr(e, "at most 32"), "%s", e);
    free(e);
    /* --data /dev/zero fails at once. */
    double t0 = now();
    snprintf(args, sizeof args, "train -m %s --data /dev/zero -o %s --steps 1", M, tmp("a.gguf"));
    CHECK(cli(args) != 0);
    e = slurp(tmp("err.txt"));
    CHECK_MSG(strstr(e, "/dev/zero") && strstr(e, "not a regular file"), "%s", e);
    CHECK_MSG(now() - t0 < 5, "--data /dev/zero took %.1f s", now() - t0);
    free(e);
    unlink(data);
    /* inspect: hostile keys, string values and tensor names come out escaped. */
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    REQUIRE(hl_gguf_writer_set_str(w, "general.architecture", "llama") == HL_OK);
    REQUIRE(hl_gguf_writer_set_str(w, "evil.\x1b[2J.key", "value\x1b]0;title\x07\xff") == HL_OK);
    float x[4] = {1, 2, 3, 4};
    int64_t ne[1] = {4};
    hl_error err;
    REQUIRE(hl_gguf_writer_add_tensor(w, "t\x1b[31m\xc2\x9b", HL_TYPE_F32, 1, ne, x, &err) == HL_OK);
    REQUIRE(hl_gguf_writer_write_file(w, tmp("evil.gguf"), &err) == HL_OK);
    hl_gguf_writer_free(w);
    snprintf(args, sizeof args, "inspect %s", tmp("evil.gguf"));
    CHECK(cli(args) == 0);
    o = slurp(tmp("out.txt"));
    CHECK(!strchr(o, 0x1b) && !strchr(o, 0x07) && !strstr(o, "\xc2\x9b") && !strchr(o, (char)0xff));
    CHECK_MSG(strstr(o, "evil.\\x1b[2J.key") && strstr(o, "value\\x1b]0;title\\x07\\xff") &&
              strstr(o, "t\\x1b[31m\\xc2\\x9b"), "%s", o);
    free(o);
    unlink(tmp("evil.gguf"));
    unlink(tmp("out.txt"));
    unlink(tmp("err.txt"));
    unlink(tmp("a.gguf"));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hl_test_bounds_XXXXXX");
    REQUIRE(mkdtemp(dir));
    test_read_file();
    test_context_bounds();
    test_hashset();
    test_escape();
    test_json_nul();
    test_tokenizer_extend_duplicates();
    test_adapter_pair_duplicates();
    test_peft_small_ones();
    test_cli();
    rmdir(tmp("peft"));
    rmdir(dir);
    return hl_test_finish("test_bounds");
}
