/* tiny_model.h: the tiny random base model that the adapter and lexicon fuzz
 * targets (and their seed writer / regression replayer in
 * tests/test_fuzz_regressions.c) load inputs against. Shape: dim 8, ffn 16,
 * 1 layer, 2 heads, 2 kv heads, seq 32; weights from a fixed seed, so its
 * fingerprint is the same in every process and seeds made for it pass the
 * fingerprint check. hl_model_init_random only reads a tokenizer.bin from a
 * path, so a tiny one (unk/bos/eos, the 256 byte tokens, a few words) is
 * written to a private temp file once and removed right after loading. */
#ifndef HL_FUZZ_TINY_MODEL_H
#define HL_FUZZ_TINY_MODEL_H
#include "hyperlora.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void tiny_put(FILE *f, const void *p, size_t n) {
    if (fwrite(p, 1, n, f) != n) abort();
}

static void tiny_piece(FILE *f, const char *piece, float score) {
    int32_t len = (int32_t)strlen(piece);
    tiny_put(f, &score, 4);
    tiny_put(f, &len, 4);
    tiny_put(f, piece, (size_t)len);
}

/* Words the seeds use, so their parts tokenize into real merges, not only bytes. */
static const char *const tiny_words[] = {" the", "the", " a", "a", " rain", "rain", " door", "door", " storm",
                                         "storm", " gate", " joy", " text", " then", "th", "he", "in", " ",
                                         "\xD1\x82", "\xD0\xB8"};

static hl_model *tiny_model_build(void) {
    char path[] = "/tmp/hl_tiny_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    FILE *f = fdopen(fd, "wb");
    if (!f) abort();
    int32_t max_len = 16;
    tiny_put(f, &max_len, 4);
    tiny_piece(f, "<unk>", 0);
    tiny_piece(f, "<s>", 0);
    tiny_piece(f, "</s>", 0);
    for (int i = 0; i < 256; i++) {
        char b[8];
        snprintf(b, sizeof b, "<0x%02X>", i);
        tiny_piece(f, b, 0);
    }
    for (size_t i = 0; i < sizeof tiny_words / sizeof tiny_words[0]; i++)
        tiny_piece(f, tiny_words[i], -(float)(i % 5));
    if (fclose(f) != 0) abort();
    hl_model_config cfg = {.dim = 8, .hidden_dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2, .seq_len = 32};
    hl_model *m = NULL;
    hl_error err;
    hl_status s = hl_model_init_random(&cfg, path, 1234, &m, &err);
    unlink(path);
    if (s != HL_OK) {
        fprintf(stderr, "tiny model: %s\n", err.msg);
        abort();
    }
    return m;
}
#endif
