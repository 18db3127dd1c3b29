/* fuzz_lexicon.c: libFuzzer target for hl_lexicon_load_memory (hyperlexeme
 * JSONL) on arbitrary bytes, against the tiny random model of tiny_model.h.
 * A refused input must name the input in its message and use a data status.
 * An accepted one is used: every lexeme must encode, alone, to exactly its
 * own token (atomic matching) and decode back; a few fixed strings and the
 * first lexeme in context encode to ids inside the extended vocabulary; scene
 * prompts (text and mute) and a training example are built for every form and
 * register; every composed embedding row is read. */
#include "hyperlora.h"
#include "model/model.h"
#include "hyperlexeme/lexicon.h"
#include "text/tokenizer.h"
#include "tiny_model.h"
#include "util/alloc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#define NAME "fuzz.jsonl"

static hl_model *model;
static volatile float sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = tiny_model_build();
    return 0;
}

static void check_ids(const int32_t *ids, size_t n, int32_t vocab, int allow_mute) {
    for (size_t i = 0; i < n; i++) ASSERT(ids[i] < vocab && (allow_mute || ids[i] >= 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_lexicon *lex = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err); /* a message must be written, and terminated */
    hl_status s = hl_lexicon_load_memory((const char *)data, size, NAME, model, &lex, &err);
    if (s != HL_OK) {
        ASSERT(lex == NULL);
        ASSERT(s == HL_ERR_FORMAT || s == HL_ERR_LIMIT || s == HL_ERR_INVALID_ARG);
        ASSERT(memchr(err.msg, 0, sizeof err.msg) && strncmp(err.msg, NAME, strlen(NAME)) == 0);
        return 0;
    }
    const hl_tokenizer *tok = hl_lexicon_tokenizer(lex);
    const hl_model *view = hl_lexicon_model(lex);
    int32_t V = view->cfg.vocab_size, n = hl_lexicon_n_entries(lex), C = view->cfg.dim;
    ASSERT(n >= 1 && hl_tokenizer_n_vocab(tok) == V && V == model->cfg.vocab_size + 9 + n);
    for (int32_t i = 0; i < n; i++) {
        const char *lx = hl_lexicon_lexeme(lex, i);
        ASSERT(hl_lexicon_find(lex, lx) == i);
        int32_t *ids = NULL;
        size_t ni = 0;
        ASSERT(hl_tokenizer_encode(tok, lx, strlen(lx), 0, 0, &ids, &ni, &err) == HL_OK);
        ASSERT(ni == 1 && ids[0] == hl_lexicon_token(lex, i));
        char buf[HL_TOKENIZER_MAX_PIECE];
        size_t dl = hl_tokenizer_decode(tok, -1, ids[0], buf, sizeof buf);
        char want[HL_TOKENIZER_MAX_PIECE];
        size_t wl = 0;
        for (const char *q = lx; *q;) { /* decode prints U+2581 as a space */
            if (!strncmp(q, "\xE2\x96\x81", 3)) want[wl++] = ' ', q += 3;
            else want[wl++] = *q++;
        }
        ASSERT(dl == wl && memcmp(buf, want, dl) == 0);
        hl_free(ids);
        const float *e = hl_lexicon_embedding(lex, i);
        sink = e[0];
        sink = e[C - 1];
        for (int32_t p = 0; p < hl_lexicon_n_parts(lex, i); p++) ASSERT(hl_lexicon_part(lex, i, p)[0] != 0);
        (void)strlen(hl_lexicon_facets(lex, i));
    }
    /* The composed rows are the last rows of the view. */
    sink = view->extra_embd[(int64_t)view->n_extra * C - 1];
    sink = view->extra_out[(int64_t)view->n_extra * C - 1];

    char text[3 * HL_LEXEME_MAX_BYTES + 32]; /* never truncated: a cut could split a UTF-8 sequence */
    const char *first = hl_lexicon_lexeme(lex, 0);
    snprintf(text, sizeof text, "the rain %s, %s.%s", first, first, hl_lexicon_lexeme(lex, n - 1));
    const char *strings[] = {"Once upon a time", "", " the door \xE2\x9F\xA8sep\xE2\x9F\xA9", text};
    for (size_t k = 0; k < sizeof strings / sizeof strings[0]; k++) {
        int32_t *ids = NULL;
        size_t ni = 0;
        ASSERT(hl_tokenizer_encode(tok, strings[k], strlen(strings[k]), 1, 1, &ids, &ni, &err) == HL_OK);
        check_ids(ids, ni, V, 0);
        hl_free(ids);
    }
    for (int f = 0; f < HL_FORM_COUNT; f++)
        for (int r = 0; r < HL_REGISTER_COUNT; r++) {
            int32_t *ids = NULL;
            size_t ni = 0;
            ASSERT(hl_lexicon_scene_prompt(lex, first, 0, f, r, &ids, &ni, &err) == HL_OK);
            ASSERT(ni == 5 && ids[1] == hl_lexicon_form_token(lex, f) && ids[2] == hl_lexicon_register_token(lex, r));
            ASSERT(ids[3] == hl_lexicon_token(lex, 0) && ids[4] == hl_lexicon_sep_token(lex));
            check_ids(ids, ni, V, 0);
            hl_free(ids);
            ASSERT(hl_lexicon_scene_prompt(lex, NULL, 3, f, r, &ids, &ni, &err) == HL_OK);
            ASSERT(ni == 7 && ids[3] == -1 && ids[5] == -3);
            check_ids(ids, ni, V, 1);
            hl_free(ids);
        }
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t ni = 0;
    ASSERT(hl_lexicon_scene_format(lex, first, "report", "technical", "the door", &ids, &mask, &ni, &err) == HL_OK);
    check_ids(ids, ni, V, 0);
    ASSERT(ni > 5 && mask[0] == 0 && mask[ni - 1] == 1);
    hl_free(ids);
    hl_free(mask);
    hl_lexicon_free(lex);
    return 0;
}
