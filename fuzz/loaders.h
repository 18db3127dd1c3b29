/* loaders.h: the harness bodies of the fuzz targets that go past a parser
 * into what is built from it, shared by the targets (fuzz/fuzz_model.c,
 * fuzz_checkpoint.c, fuzz_metrics.c, fuzz_scene_vectors.c, fuzz_scene_eval.c)
 * and by their seed writer and replayer, tests/test_fuzz_loaders.c:
 *
 *   model          GGUF bytes -> memfd -> hl_model_load (config checks and
 *                  hl_tokenizer_from_gguf) -> a context -> a prompt and two
 *                  greedy steps -> decode (a byte-level vocabulary without
 *                  the pieces of "the rain" must refuse it by name);
 *   checkpoint     a training checkpoint -> hl_checkpoint_load into a LoRA
 *                  trainer of the tiny model -> one resumed training step;
 *   metrics        a metrics JSONL -> the plot reader (hl_plot_metrics_svg)
 *                  and the resume rewrite (hl_metrics_open with append);
 *   scene_vectors  a --scene-vector file -> hl_scene_vectors_parse (and the
 *                  same bytes through hl_scene_vectors_load) -> a mute-scene
 *                  decode;
 *   scene_eval     a decode --eval JSONL -> hl_scene_eval_file;
 *   bpe_train      a pretraining corpus (raw text) -> hl_tokenizer_train_bpe
 *                  -> the corpus encoded with the trained tokenizer, by the
 *                  fast encoder and the reference one, which must agree.
 *
 * Everything runs against the tiny random model of tiny_model.h; the targets
 * that take paths write the input into a private temp directory made once
 * per process. A refused input must come back with a status in range and a
 * terminated, non-empty message; an accepted one must be usable. The state
 * a run changes (trainer weights, optimizer moments) is reset before each
 * input, so an input always behaves the same. LOADERS_ASSERT may be defined
 * before inclusion (the tests count failures instead of trapping). */
#ifndef HL_FUZZ_LOADERS_H
#define HL_FUZZ_LOADERS_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "hyperlora.h"
#include "hyperlexeme/scene.h"
#include "lora/adapter.h"
#include "model/model.h"
#include "hyperlexeme/lexicon.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "cli/plot.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/hash.h"
#include "tiny_model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each target uses one of the harness bodies. */
#define LOADERS_FN static __attribute__((unused))
#ifndef LOADERS_ASSERT
#define LOADERS_ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#endif

/* The lexicon the scene targets decode with. */
static const char loaders_lexicon[] = "{\"lexeme\": \"\xCE\x94" "1\", \"parts\": [\"rain\", \"door\"]}\n"
                                      "{\"lexeme\": \"\xCE\x94" "2\", \"parts\": [\"storm\"], \"weights\": [2]}\n";

typedef struct loaders_state {
    hl_model *tiny;
    char dir[64];
    char base_path[128], lex_path[128], input_path[128], svg_path[128];
    FILE *devnull;
    int memfd;
    /* checkpoint */
    hl_adapter *adapter;
    hl_trainer *tr;
    hl_adamw opt;
    float **snap;      /* [3 n]: each parameter, its m and its v as made */
    int32_t n_params;
    /* scene targets */
    hl_scene_decoder *dec;
} loaders_state;

static loaders_state L;

static void loaders_cleanup(void) {
    unlink(L.base_path);
    unlink(L.lex_path);
    unlink(L.input_path);
    unlink(L.svg_path);
    rmdir(L.dir);
}

static void loaders_write(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) abort();
}

/* What the checkpoint target trains: q and v of the tiny model at rank 2. */
static hl_adapter *loaders_adapter(const hl_model *m) {
    hl_adapter *a = NULL;
    hl_error err;
    if (hl_adapter_new(m, "fuzz", 4.0f, 0, &a, &err) != HL_OK) abort();
    float A[2 * 8], B[8 * 2];
    for (int i = 0; i < 16; i++) A[i] = 0.05f * (float)((i * 7) % 11 - 5), B[i] = 0.01f * (float)((i * 5) % 9 - 4);
    if (hl_adapter_add(a, m, 0, HL_TARGET_Q, 2, 4.0f, A, B, &err) != HL_OK ||
        hl_adapter_add(a, m, 0, HL_TARGET_V, 2, 4.0f, A, B, &err) != HL_OK || hl_adapter_index(a, &err) != HL_OK)
        abort();
    return a;
}

static void loaders_init(void) {
    if (L.tiny) return;
    L.tiny = tiny_model_build();
    snprintf(L.dir, sizeof L.dir, "/tmp/hl_fuzz_loaders_XXXXXX");
    L.devnull = fopen("/dev/null", "w");
    if (!L.devnull || !mkdtemp(L.dir)) abort();
    snprintf(L.base_path, sizeof L.base_path, "%s/base.gguf", L.dir);
    snprintf(L.lex_path, sizeof L.lex_path, "%s/lexicon.jsonl", L.dir);
    snprintf(L.input_path, sizeof L.input_path, "%s/input", L.dir);
    snprintf(L.svg_path, sizeof L.svg_path, "%s/plot.svg", L.dir);
    atexit(loaders_cleanup);
    hl_error err;
    if (hl_model_save_gguf(L.tiny, L.base_path, &err) != HL_OK) abort();
    loaders_write(L.lex_path, loaders_lexicon, strlen(loaders_lexicon));
    L.memfd = memfd_create("hl_fuzz_model", MFD_CLOEXEC);
    if (L.memfd < 0) abort();
    /* checkpoint: a LoRA trainer and optimizer, and a snapshot to restore before each input */
    L.adapter = loaders_adapter(L.tiny);
    hl_trainer_params tp = {.batch = 1, .ctx = 8, .n_threads = 1, .seed = 7};
    hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    if (hl_trainer_init(L.tiny, L.adapter, &tp, &L.tr, &err) != HL_OK || hl_adamw_init(&L.opt, &ap, L.tr, &err) != HL_OK)
        abort();
    L.n_params = hl_trainer_n_params(L.tr);
    L.snap = calloc((size_t)L.n_params * 3, sizeof *L.snap);
    if (!L.snap) abort();
    for (int32_t i = 0; i < L.n_params; i++) {
        hl_param p = hl_trainer_param(L.tr, i);
        const float *src[3] = {p.value, L.opt.m[i], L.opt.v[i]};
        for (int k = 0; k < 3; k++) {
            L.snap[3 * i + k] = malloc((size_t)p.n * sizeof(float));
            if (!L.snap[3 * i + k]) abort();
            memcpy(L.snap[3 * i + k], src[k], (size_t)p.n * sizeof(float));
        }
    }
    /* scene targets: a decoder over the tiny base saved as GGUF, with the lexicon above */
    hl_scene_decoder_params dp = {.model_path = L.base_path, .lexicon_path = L.lex_path, .n_threads = 1};
    if (hl_scene_decoder_init(&dp, &L.dec, &err) != HL_OK) {
        fprintf(stderr, "loaders: %s\n", err.msg);
        abort();
    }
}

/* A refused input: a status in range and a terminated, non-empty message. */
static void loaders_refused(hl_status s, const hl_error *err) {
    if (getenv("LOADERS_VERBOSE")) fprintf(stderr, "refused (%d): %.512s\n", (int)s, err->msg);
    LOADERS_ASSERT(s > HL_OK && s < HL_STATUS_COUNT);
    LOADERS_ASSERT(memchr(err->msg, 0, sizeof err->msg) && err->msg[0] != 0);
}

/* ------------------------------------------------------------------ model */

LOADERS_FN hl_status loaders_model(const uint8_t *d, size_t n) {
    loaders_init();
    if (ftruncate(L.memfd, 0) != 0 || (n && pwrite(L.memfd, d, n, 0) != (ssize_t)n)) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", L.memfd);
    hl_model *m = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err);
    hl_status s = hl_model_load(path, NULL, &m, &err);
    if (s != HL_OK) {
        LOADERS_ASSERT(m == NULL);
        loaders_refused(s, &err);
        return s;
    }
    const hl_model_config *c = hl_model_get_config(m);
    const hl_tokenizer *tok = hl_model_get_tokenizer(m);
    LOADERS_ASSERT(c->dim > 0 && c->n_layers > 0 && c->n_heads > 0 && c->n_kv_heads > 0 && c->seq_len > 0);
    LOADERS_ASSERT(c->dim % c->n_heads == 0 && c->n_heads % c->n_kv_heads == 0);
    LOADERS_ASSERT(hl_tokenizer_n_vocab(tok) == c->vocab_size);
    /* A context of at most 8 positions: the header's context length must not matter. */
    hl_context_params cp = {.n_ctx = c->seq_len < 8 ? c->seq_len : 8, .n_threads = 1};
    hl_context *ctx = NULL;
    s = hl_context_init(m, &cp, &ctx, &err);
    LOADERS_ASSERT(s == HL_OK);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    s = hl_tokenizer_encode(tok, "the rain", 8, 1, 0, &ids, &n_ids, &err);
    if (s != HL_OK) {
        /* A byte-level vocabulary may lack the piece of a byte: that text is refused, naming the byte. */
        LOADERS_ASSERT(hl_tokenizer_is_byte_level(tok) && s == HL_ERR_UNSUPPORTED && strstr(err.msg, "no piece for byte"));
        hl_context_free(ctx);
        hl_model_free(m);
        return HL_OK;
    }
    LOADERS_ASSERT(n_ids >= 1);
    for (size_t i = 0; i < n_ids; i++) LOADERS_ASSERT(ids[i] >= 0 && ids[i] < c->vocab_size);
    int32_t n_ctx = hl_context_n_ctx(ctx), np = (int32_t)n_ids < n_ctx ? (int32_t)n_ids : n_ctx;
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    if (!logits) abort();
    s = hl_context_eval(ctx, ids, np, 0, logits, 0, &err);
    LOADERS_ASSERT(s == HL_OK);
    char piece[HL_TOKENIZER_MAX_PIECE + 16];
    int32_t prev = ids[np - 1];
    for (int32_t pos = np; pos < n_ctx && pos < np + 2; pos++) {
        int32_t best = 0;
        for (int32_t v = 1; v < c->vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        size_t k = hl_tokenizer_decode(tok, prev, best, piece, sizeof piece);
        LOADERS_ASSERT(k <= sizeof piece);
        s = hl_context_eval(ctx, &best, 1, pos, logits, 0, &err);
        LOADERS_ASSERT(s == HL_OK);
        prev = best;
    }
    free(logits);
    hl_free(ids);
    hl_context_free(ctx);
    hl_model_free(m);
    return HL_OK;
}

/* ------------------------------------------------------------- checkpoint */

static void loaders_checkpoint_reset(void) {
    for (int32_t i = 0; i < L.n_params; i++) {
        hl_param p = hl_trainer_param(L.tr, i);
        memcpy(p.value, L.snap[3 * i], (size_t)p.n * sizeof(float));
        memcpy(L.opt.m[i], L.snap[3 * i + 1], (size_t)p.n * sizeof(float));
        memcpy(L.opt.v[i], L.snap[3 * i + 2], (size_t)p.n * sizeof(float));
    }
    L.opt.t = 0;
}

LOADERS_FN hl_status loaders_checkpoint(const uint8_t *d, size_t n) {
    loaders_init();
    loaders_checkpoint_reset();
    loaders_write(L.input_path, d, n);
    hl_checkpoint_state st;
    memset(&st, 0, sizeof st);
    char *config = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err);
    hl_status s = hl_checkpoint_load(L.input_path, L.tr, &L.opt, &st, &config, &err);
    if (s != HL_OK) {
        LOADERS_ASSERT(config == NULL);
        loaders_refused(s, &err);
        return s;
    }
    LOADERS_ASSERT(config != NULL);
    /* Resume: one step on a fixed batch from the loaded state. */
    int32_t tokens[9] = {1, 260, 70, 261, 262, 33, 270, 44, 2};
    double loss = 0;
    int64_t counted = 0;
    hl_trainer_zero_grad(L.tr);
    s = hl_trainer_forward_backward(L.tr, tokens, NULL, NULL, 1.0f, (uint64_t)st.step + 1, &loss, &counted, &err);
    LOADERS_ASSERT(s == HL_OK && counted == 8);
    hl_adamw_step(&L.opt, L.tr, 1e-3f);
    hl_free(config);
    return HL_OK;
}

/* ---------------------------------------------------------------- metrics */

LOADERS_FN hl_status loaders_metrics(const uint8_t *d, size_t n) {
    loaders_init();
    loaders_write(L.input_path, d, n);
    hl_error err;
    memset(&err, 0x55, sizeof err);
    hl_status s = hl_plot_metrics_svg(L.input_path, L.svg_path, "fuzz", &err);
    if (s != HL_OK) loaders_refused(s, &err);
    /* Resume keeps the records before first_step and appends after them. */
    int64_t first_step = 1 + (n ? d[n - 1] % 8 : 0);
    hl_metrics *m = NULL;
    memset(&err, 0x55, sizeof err);
    hl_status s2 = hl_metrics_open(L.input_path, 1, first_step, &m, &err);
    if (s2 != HL_OK) {
        LOADERS_ASSERT(m == NULL);
        loaders_refused(s2, &err);
        return s2;
    }
    hl_step_record r = {.step = first_step, .total_steps = 9, .loss = 2.5, .eval_loss = NAN, .lr = 1e-3,
                        .grad_norm = 0.5, .tokens_per_s = 100, .elapsed_s = 1, .tokens = 64};
    LOADERS_ASSERT(hl_metrics_write(m, &r, &err) == HL_OK);
    hl_metrics_close(m);
    /* The rewritten file holds our record, so it always plots now. */
    memset(&err, 0x55, sizeof err);
    s2 = hl_plot_metrics_svg(L.input_path, L.svg_path, "fuzz", &err);
    if (s2 != HL_OK) loaders_refused(s2, &err);
    return s;
}

/* ---------------------------------------------------------- scene vectors */

LOADERS_FN hl_status loaders_scene_vectors(const uint8_t *d, size_t n) {
    loaders_init();
    const int64_t C = hl_model_get_config(L.tiny)->dim;
    float *v = NULL, *v2 = NULL;
    int32_t nv = 0, nv2 = 0;
    hl_error err;
    memset(&err, 0x55, sizeof err);
    hl_status s = hl_scene_vectors_parse(d, n, "input.f32", C, &v, &nv, &err);
    loaders_write(L.input_path, d, n);
    hl_error err2;
    memset(&err2, 0x55, sizeof err2);
    hl_status s2 = hl_scene_vectors_load(L.input_path, C, &v2, &nv2, &err2);
    LOADERS_ASSERT(s == s2 && nv == nv2);
    if (s != HL_OK) {
        LOADERS_ASSERT(v == NULL && v2 == NULL);
        loaders_refused(s, &err);
        loaders_refused(s2, &err2);
        return s;
    }
    LOADERS_ASSERT(nv >= 1 && nv <= HL_SCENE_MAX_VECTORS && !memcmp(v, v2, (size_t)nv * (size_t)C * sizeof(float)));
    for (int64_t i = 0; i < nv * C; i++) LOADERS_ASSERT(isfinite(v[i]));
    hl_sampler_params sp = hl_sampler_default_params();
    char *text = NULL;
    memset(&err, 0x55, sizeof err);
    s = hl_scene_decode(L.dec, NULL, v, nv, nv % HL_FORM_COUNT, nv % HL_REGISTER_COUNT, &sp, 4, &text, &err);
    if (s != HL_OK) {
        LOADERS_ASSERT(s == HL_ERR_LIMIT && text == NULL); /* only a prompt longer than the context */
        loaders_refused(s, &err);
    }
    hl_free(text);
    hl_free(v);
    hl_free(v2);
    return HL_OK;
}

/* ------------------------------------------------------------- scene eval */

LOADERS_FN hl_status loaders_scene_eval(const uint8_t *d, size_t n) {
    loaders_init();
    loaders_write(L.input_path, d, n);
    hl_scene_eval res;
    hl_error err;
    memset(&err, 0x55, sizeof err);
    /* Files that end in a newline evaluate every line; any other last byte picks -1 (all) .. one form. */
    int only_form = n && d[n - 1] != '\n' ? (int)(d[n - 1] % (HL_FORM_COUNT + 1)) - 1 : -1;
    hl_status s = hl_scene_eval_file(L.dec, L.input_path, only_form, 3, &res, L.devnull, &err);
    if (s != HL_OK) {
        loaders_refused(s, &err);
        return s;
    }
    LOADERS_ASSERT(res.n >= 0 && res.n <= 3 && res.exact >= 0 && res.exact <= res.n && res.edits >= 0);
    LOADERS_ASSERT(res.ref_chars >= 0);
    return HL_OK;
}
/* -------------------------------------------------------------- bpe train */

LOADERS_FN hl_status loaders_bpe_train(const uint8_t *d, size_t n) {
    /* The settings come from a hash of the input, so one corpus can try several. */
    uint32_t h = hl_fnv1a32(d, n);
    hl_bpe_train_params p;
    hl_bpe_train_params_default(&p);
    p.min_frequency = 1 + (h & 1);
    p.line_dummy_prefix = (h >> 1) & 1;
    p.max_piece_bytes = 4 + (int32_t)((h >> 2) % 13);
    p.character_coverage = (h >> 6) & 1 ? 1.0 : 0.95;
    int32_t vocab = 259 + 96 + (int32_t)((h >> 7) % 256);
    hl_tokenizer *t = NULL;
    int32_t *merges = NULL, n_merges = 0;
    hl_error err;
    memset(&err, 0x55, sizeof err);
    hl_status s = hl_tokenizer_train_bpe_merges((const char *)d, n, vocab, &p, &t, &merges, &n_merges, &err);
    if (s != HL_OK) {
        LOADERS_ASSERT(t == NULL && merges == NULL);
        loaders_refused(s, &err);
        return s;
    }
    const int32_t nv = hl_tokenizer_n_vocab(t);
    LOADERS_ASSERT(nv >= HL_BPE_FIRST_CHAR_ID && nv <= vocab && n_merges >= 0 && n_merges <= nv - HL_BPE_FIRST_CHAR_ID);
    for (int32_t k = 0; k < n_merges; k++) {
        int32_t id = nv - n_merges + k;
        LOADERS_ASSERT(merges[2 * k] >= 0 && merges[2 * k] < id && merges[2 * k + 1] >= 0 && merges[2 * k + 1] < id);
    }
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    LOADERS_ASSERT(hl_tokenizer_encode(t, (const char *)d, n, 1, 0, &a, &na, &err) == HL_OK);
    LOADERS_ASSERT(hl_tokenizer_encode_reference(t, (const char *)d, n, 1, 0, &b, &nb, &err) == HL_OK);
    LOADERS_ASSERT(na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a)));
    for (size_t i = 0; i < na; i++) LOADERS_ASSERT(a[i] >= 0 && a[i] < nv);
    hl_free(a);
    hl_free(b);
    hl_free(merges);
    hl_tokenizer_free(t);
    return HL_OK;
}
#endif
