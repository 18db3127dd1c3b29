/* fuzz_dataset.c: libFuzzer target for hl_dataset_load_memory on arbitrary
 * bytes, with a small tokenizer built in-process (unk/bos/eos, the 256 byte
 * tokens, a few words) and a fake scene formatter. The parameters (ctx,
 * packing, validation fraction, formatter or none) come from a hash of the
 * input, so every input runs under one fixed, reproducible setting.
 * A refused input must name the buffer in its message and use a data status;
 * an accepted one must give rows whose ids are in the vocabulary, whose masks
 * are 0/1 with at least one bit per row and sum to the stats, and the same
 * batches on a second load. */
#include "hyperlora.h"
#include "text/tokenizer.h"
#include "train/dataset.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/hash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#define NAME "fuzz.jsonl"
#define MAX_ROWS 2048 /* rows checked per input; keeps each run fast */

static hl_tokenizer *tok;
static int32_t n_vocab;

static void build(void) {
    static const char *extra[] = {"\xE2\x96\x81", "\xE2\x96\x81t", "h", "e", "t", "a", "he", "\xE2\x96\x81the",
                                  ("\xE2\x96\x81" "a"), "in", "\n", ".", "\xE2\x96\x81."};
    enum { NE = sizeof extra / sizeof extra[0], N = 3 + 256 + NE };
    static char bytes[256][8];
    const char *pieces[N];
    float scores[N];
    pieces[0] = "<unk>";
    pieces[1] = "<s>";
    pieces[2] = "</s>";
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        pieces[3 + i] = bytes[i];
    }
    for (int i = 0; i < N; i++) scores[i] = 0.0f;
    for (int i = 0; i < NE; i++) {
        pieces[259 + i] = extra[i];
        scores[259 + i] = (float)-(i % 3);
    }
    hl_error err;
    if (hl_tokenizer_init(N, pieces, scores, NULL, 1, 2, 0, &tok, &err) != HL_OK) abort();
    n_vocab = hl_tokenizer_n_vocab(tok);
}

/* [BOS] scene bytes output bytes [EOS], loss on the output and EOS; fails on a scene "fail". */
static hl_status fake_format(void *user, const char *scene, const char *form, const char *reg, const char *output,
                             int32_t **ids, uint8_t **mask, size_t *n, hl_error *err) {
    (void)user, (void)form, (void)reg;
    *ids = NULL;
    *mask = NULL;
    *n = 0;
    if (strcmp(scene, "fail") == 0) return hl_fail(err, HL_ERR_FORMAT, "unknown hyperlexeme");
    size_t ns = strlen(scene), no = strlen(output), k = 0;
    *n = ns + no + 2;
    *ids = hl_malloc(*n * sizeof **ids);
    *mask = hl_malloc(*n);
    if (!*ids || !*mask) return HL_ERR_NOMEM;
    (*ids)[k] = 1;
    (*mask)[k++] = 0;
    for (size_t i = 0; i < ns; i++) {
        (*ids)[k] = 3 + (uint8_t)scene[i];
        (*mask)[k++] = 0;
    }
    for (size_t i = 0; i < no; i++) {
        (*ids)[k] = 3 + (uint8_t)output[i];
        (*mask)[k++] = 1;
    }
    (*ids)[k] = 2;
    (*mask)[k++] = 1;
    return HL_OK;
}

static uint64_t fnv1a(const uint8_t *d, size_t n) {
    return hl_fnv1a(HL_FNV1A_BASIS, d, n);
}

/* A row must hold vocabulary ids and a 0/1 mask with at least one bit. Returns the mask sum. */
static int64_t check_row(const int32_t *t, const uint8_t *m, int32_t ctx) {
    int64_t sum = 0;
    for (int32_t j = 0; j <= ctx; j++) ASSERT(t[j] >= 0 && t[j] < n_vocab);
    for (int32_t j = 0; j < ctx; j++) {
        ASSERT(m[j] <= 1);
        sum += m[j];
    }
    ASSERT(sum > 0);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) build();
    uint64_t h = fnv1a(data, size);
    hl_dataset_params p = {0};
    p.ctx = 1 + (int32_t)(h % 9);
    p.pack = ((h >> 8) & 1) ? HL_PACK_STREAM : ((h >> 13) & 1) ? HL_PACK_DOCS : HL_PACK_NONE;
    p.val_fraction = (float)((h >> 9) & 3) * 0.125f;
    p.seed = h >> 16;
    p.scene_format = ((h >> 11) & 3) ? fake_format : NULL; /* mostly with a formatter */
    hl_dataset *ds = NULL, *ds2 = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err); /* a message must be written, and terminated */
    hl_status s = hl_dataset_load_memory((const char *)data, size, NAME, tok, &p, &ds, &err);
    if (s != HL_OK) {
        ASSERT(ds == NULL);
        ASSERT(s == HL_ERR_FORMAT || s == HL_ERR_LIMIT || s == HL_ERR_INVALID_ARG);
        ASSERT(memchr(err.msg, 0, sizeof err.msg) && strncmp(err.msg, NAME, strlen(NAME)) == 0);
        return 0;
    }
    const hl_dataset_stats *st = hl_dataset_get_stats(ds);
    ASSERT(st->n_examples >= 1 && st->n_train_examples + st->n_val_examples == st->n_examples);
    ASSERT(st->n_train_examples >= 1 && st->n_train_rows >= 1 && st->n_train_rows == hl_dataset_n_train_rows(ds));
    ASSERT(st->n_val_rows == hl_dataset_n_val_rows(ds));
    ASSERT(st->n_loss_tokens >= st->n_train_rows && st->n_tokens >= st->n_loss_tokens);
    if (p.pack == HL_PACK_STREAM) ASSERT(st->n_truncated == 0);

    /* One full epoch (when small enough): masks sum to the stats; a second
     * load gives the same batches; the epoch after wraps. */
    int32_t ctx = p.ctx, w = ctx + 1;
    int64_t R = st->n_train_rows < MAX_ROWS ? st->n_train_rows : MAX_ROWS;
    int32_t *t = malloc((size_t)R * (size_t)w * sizeof *t), *t2 = malloc((size_t)R * (size_t)w * sizeof *t2);
    uint8_t *m = malloc((size_t)R * (size_t)ctx), *m2 = malloc((size_t)R * (size_t)ctx);
    int32_t *pos = malloc((size_t)R * (size_t)ctx * sizeof *pos);
    hl_data_cursor c = {0, 0}, c2 = {0, 0};
    hl_dataset_next_batch(ds, &c, (int32_t)R, t, m, pos);
    int64_t sum = 0;
    for (int64_t r = 0; r < R; r++) {
        sum += check_row(t + r * w, m + r * ctx, ctx);
        /* positions: each row starts a document, documents count up from 0 */
        const int32_t *pr = pos + r * ctx;
        for (int32_t j = 0; j < ctx; j++) {
            ASSERT(pr[j] == 0 || (j > 0 && pr[j] == pr[j - 1] + 1));
            if (p.pack != HL_PACK_DOCS) ASSERT(pr[j] == j);
        }
    }
    if (R == st->n_train_rows) ASSERT(sum == st->n_loss_tokens && c.epoch == 0 && c.index == (uint64_t)R);
    ASSERT(hl_dataset_load_memory((const char *)data, size, NAME, tok, &p, &ds2, &err) == HL_OK);
    hl_dataset_next_batch(ds2, &c2, (int32_t)R, t2, m2, NULL);
    ASSERT(memcmp(t, t2, (size_t)R * (size_t)w * sizeof *t) == 0 && memcmp(m, m2, (size_t)R * (size_t)ctx) == 0);
    ASSERT(memcmp(st, hl_dataset_get_stats(ds2), sizeof *st) == 0);
    if (R == st->n_train_rows) {
        hl_dataset_next_batch(ds, &c, 1, t, m, NULL);
        ASSERT(c.epoch == 1 && c.index == 1);
        check_row(t, m, ctx);
    }
    for (int64_t i = 0; i < st->n_val_rows && i < MAX_ROWS; i++) {
        hl_dataset_val_row(ds, i, t, m, NULL);
        check_row(t, m, ctx);
    }
    free(t);
    free(t2);
    free(m);
    free(m2);
    free(pos);
    hl_dataset_free(ds);
    hl_dataset_free(ds2);
    return 0;
}
