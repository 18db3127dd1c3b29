/* test_dataset.c: JSONL dataset loading (src/train/dataset.c) with the
 * stories260K tokenizer: exact rows and masks for text, prompt/completion and
 * scene lines, packing (every target exactly once), truncation, the
 * validation split, batch order across epochs, one case per class of bad
 * line, bad parameters, file loading and injected out-of-memory. */
#include "test_util.h"
#include "text/tokenizer.h"
#include "train/dataset.h"
#include "util/alloc.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

static hl_tokenizer *tok;    /* tok512 (stories260K) */
static hl_tokenizer *tok32k; /* Llama-2's, for the completion rule on a real vocabulary */
static int32_t BOS, EOS;

static hl_dataset_params prm(int32_t ctx, int pack, float val, uint64_t seed) {
    hl_dataset_params p = {0};
    p.ctx = ctx;
    p.pack = pack;
    p.val_fraction = val;
    p.seed = seed;
    return p;
}

static hl_status load_t(const hl_tokenizer *t, const char *s, const hl_dataset_params *p, hl_dataset **ds,
                        hl_error *err) {
    memset(err, 0, sizeof *err);
    return hl_dataset_load_memory(s, strlen(s), "t.jsonl", t, p, ds, err);
}
static hl_status load(const char *s, const hl_dataset_params *p, hl_dataset **ds, hl_error *err) {
    return load_t(tok, s, p, ds, err);
}

/* ------------------------------------------------------------ expected sequences */

/* Token sequences with loss flags, built here from hl_tokenizer_encode as the spec says. */
typedef struct seq {
    int32_t t[8192];
    uint8_t f[8192];
    size_t n;
    size_t n_ex;
    int64_t loss; /* flags set, excluding each example's first token (always 0) */
} seq;

static void seq_push(seq *s, int32_t id, uint8_t f) {
    REQUIRE(s->n < sizeof s->f);
    s->t[s->n] = id;
    s->f[s->n] = f;
    s->n++;
    s->loss += f;
}

static void seq_encode(seq *s, const hl_tokenizer *t, const char *text, uint8_t f) {
    int32_t *ids = NULL;
    size_t n = 0;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, &err), &err);
    for (size_t i = 0; i < n; i++) seq_push(s, ids[i], f);
    hl_free(ids);
}

static void seq_text(seq *s, const char *text) {
    seq_push(s, BOS, 0);
    seq_encode(s, tok, text, 1);
    seq_push(s, EOS, 1);
    s->n_ex++;
}

/* completion_as: the text whose plain encoding gives the completion tokens. */
static void seq_prompt(seq *s, const char *prompt, const char *completion_as) {
    seq_push(s, BOS, 0);
    seq_encode(s, tok, prompt, 0);
    seq_encode(s, tok, completion_as, 1);
    seq_push(s, EOS, 1);
    s->n_ex++;
}

/* Expected rows, spec form: packed (row k = S[k*ctx .. k*ctx+ctx]) or one per
 * example; EOS padding with mask 0; rows without a loss target dropped.
 * starts: example start offsets (n_ex + 1) for the unpacked case. */
typedef struct rowset {
    int32_t *tok;
    uint8_t *mask;
    int64_t n;
    int64_t n_real; /* real (non-padding) targets in the kept rows */
} rowset;

static int add_row(rowset *r, int32_t ctx, const int32_t *t, const uint8_t *f, size_t len) {
    size_t w = (size_t)ctx + 1, used = len < w ? len : w;
    int32_t *rt = r->tok + (size_t)r->n * w;
    uint8_t *rm = r->mask + (size_t)r->n * (size_t)ctx;
    int any = 0;
    for (size_t j = 0; j < w; j++) rt[j] = j < used ? t[j] : EOS;
    for (size_t j = 0; j < (size_t)ctx; j++) {
        rm[j] = j + 1 < used ? f[j + 1] : 0;
        any |= rm[j];
    }
    if (any) {
        r->n++;
        r->n_real += (int64_t)used - 1;
    }
    return len > w;
}

static rowset expect_rows(const seq *s, const size_t *starts, int32_t ctx, int pack, int64_t *n_trunc) {
    size_t cap = s->n + s->n_ex + 4;
    rowset r = {malloc(cap * ((size_t)ctx + 1) * sizeof(int32_t)), malloc(cap * (size_t)ctx), 0, 0};
    int64_t trunc = 0;
    if (pack) {
        for (size_t k = 0; k * (size_t)ctx + 1 < s->n; k++)
            add_row(&r, ctx, s->t + k * ctx, s->f + k * ctx, s->n - k * ctx);
    } else {
        for (size_t e = 0; e < s->n_ex; e++)
            trunc += add_row(&r, ctx, s->t + starts[e], s->f + starts[e], starts[e + 1] - starts[e]);
    }
    if (n_trunc) *n_trunc = trunc;
    return r;
}

static void rowset_free(rowset *r) {
    free(r->tok);
    free(r->mask);
}

/* Fetches one epoch of train rows from a fresh cursor. */
static rowset fetch_epoch(const hl_dataset *ds, int32_t ctx) {
    int64_t R = hl_dataset_n_train_rows(ds);
    rowset r = {malloc((size_t)R * ((size_t)ctx + 1) * sizeof(int32_t)), malloc((size_t)R * (size_t)ctx), R, 0};
    hl_data_cursor c = {0, 0};
    hl_dataset_next_batch(ds, &c, (int32_t)R, r.tok, r.mask, NULL);
    CHECK(c.epoch == 0 && c.index == (uint64_t)R);
    return r;
}

/* got must be a permutation of want (as a multiset of rows). */
static void check_same_rows(const rowset *got, const rowset *want, int32_t ctx, const char *what) {
    size_t w = (size_t)ctx + 1;
    CHECK_MSG(got->n == want->n, "%s: %lld rows, want %lld", what, (long long)got->n, (long long)want->n);
    if (got->n != want->n) return;
    char *used = calloc((size_t)want->n + 1, 1);
    for (int64_t i = 0; i < got->n; i++) {
        int64_t hit = -1;
        for (int64_t k = 0; k < want->n && hit < 0; k++) {
            if (used[k]) continue;
            if (memcmp(got->tok + i * w, want->tok + k * w, w * sizeof(int32_t)) == 0 &&
                memcmp(got->mask + i * ctx, want->mask + k * ctx, (size_t)ctx) == 0)
                hit = k;
        }
        CHECK_MSG(hit >= 0, "%s: row %lld matches no expected row", what, (long long)i);
        if (hit >= 0) used[hit] = 1;
    }
    free(used);
}

static int64_t mask_sum(const uint8_t *m, size_t n) {
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += m[i];
    return s;
}

/* ------------------------------------------------------------ text rows */

static void test_text_rows(void) {
    const char *file = "{\"text\": \"Once upon a time\"}\n"
                       "\n"
                       "{\"text\": \"The cat sat.\", \"id\": 7, \"meta\": {\"x\": [1, 2]}}\n";
    seq s = {0};
    size_t starts[3];
    starts[0] = 0;
    seq_text(&s, "Once upon a time");
    starts[1] = s.n;
    seq_text(&s, "The cat sat.");
    starts[2] = s.n;
    /* The ids are the tokenizer's own: BOS + encode + EOS. */
    int32_t *ids = NULL;
    size_t n = 0;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_encode(tok, "Once upon a time", 16, 1, 1, &ids, &n, &err), &err);
    CHECK(n == starts[1] && memcmp(ids, s.t, n * sizeof *ids) == 0);
    hl_free(ids);

    for (int pack = 0; pack <= 1; pack++) {
        hl_dataset_params p = prm(pack ? 5 : 32, pack, 0, 1);
        hl_dataset *ds = NULL;
        CHECK_OK(load(file, &p, &ds, &err), &err);
        REQUIRE(ds);
        const hl_dataset_stats *st = hl_dataset_get_stats(ds);
        int64_t trunc = 0;
        rowset want = expect_rows(&s, starts, p.ctx, pack, &trunc);
        rowset got = fetch_epoch(ds, p.ctx);
        check_same_rows(&got, &want, p.ctx, pack ? "text packed" : "text rows");
        CHECK(st->n_examples == 2 && st->n_train_examples == 2 && st->n_val_examples == 0);
        CHECK(st->n_train_rows == want.n && st->n_val_rows == 0 && hl_dataset_n_val_rows(ds) == 0);
        CHECK(st->n_tokens == (int64_t)s.n - (pack ? 1 : 2)); /* real targets: all but the first (of each row) */
        CHECK(st->n_tokens == want.n_real);
        CHECK(st->n_loss_tokens == s.loss && st->n_truncated == 0);
        if (!pack) {
            /* Spelled out: the row of example 1 is BOS ids EOS, EOS padding, mask 1 up to EOS. */
            size_t len = starts[1];
            int found = 0;
            for (int64_t r = 0; r < got.n; r++) {
                const int32_t *t = got.tok + r * 33;
                const uint8_t *m = got.mask + r * 32;
                if (t[1] != s.t[1]) continue;
                found = 1;
                CHECK(t[0] == BOS && t[len - 1] == EOS);
                for (size_t j = 0; j < 32; j++) CHECK(m[j] == (j + 1 < len));
                for (size_t j = len; j < 33; j++) CHECK(t[j] == EOS);
            }
            CHECK(found);
        } else {
            CHECK(st->n_train_rows == (int64_t)((s.n - 1 + 4) / 5));
        }
        rowset_free(&want);
        rowset_free(&got);
        hl_dataset_free(ds);
    }
}

/* Packing, exactly: rows overlap by one token; the last row is padded. */
static void test_pack_exact(void) {
    const char *texts[] = {"Lily liked the sun.", "Tom ran.", "A big red ball was in the park and the dog saw it."};
    char file[1024] = "";
    seq s = {0};
    for (int i = 0; i < 3; i++) {
        seq_text(&s, texts[i]);
        snprintf(file + strlen(file), sizeof file - strlen(file), "{\"text\": \"%s\"}\n", texts[i]);
    }
    for (int32_t ctx = 1; ctx <= 9; ctx += 4) {
        hl_dataset_params p = prm(ctx, 1, 0, 3);
        hl_dataset *ds = NULL;
        hl_error err;
        CHECK_OK(load(file, &p, &ds, &err), &err);
        REQUIRE(ds);
        rowset want = expect_rows(&s, NULL, ctx, 1, NULL);
        rowset got = fetch_epoch(ds, ctx);
        check_same_rows(&got, &want, ctx, "packed");
        const hl_dataset_stats *st = hl_dataset_get_stats(ds);
        CHECK(st->n_tokens == want.n_real);
        /* Every token but the first is a real target, except where ctx 1 drops rows predicting a BOS. */
        CHECK(st->n_tokens == (int64_t)s.n - 1 - (ctx == 1 ? 2 : 0));
        CHECK(st->n_loss_tokens == (int64_t)s.n - 3); /* all but the three BOS */
        CHECK(mask_sum(got.mask, (size_t)got.n * ctx) == st->n_loss_tokens);
        /* Consecutive expected rows share a token (when none was dropped). */
        for (int64_t k = 0; ctx > 1 && k + 1 < want.n; k++)
            CHECK(want.tok[k * (ctx + 1) + ctx] == want.tok[(k + 1) * (ctx + 1)]);
        rowset_free(&want);
        rowset_free(&got);
        hl_dataset_free(ds);
    }
}

/* ------------------------------------------------------------ prompt/completion */

/* Loads one prompt line (no packing) and returns the completion's tokens
 * (those between the prompt and EOS), checking the prompt part and masks. */
static int32_t *completion_tokens(const hl_tokenizer *t, const char *prompt, const char *completion, size_t *nc,
                                  int32_t *prev) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddStringToObject(o, "completion", completion);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    hl_dataset_params p = prm(512, 0, 0, 1);
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load_t(t, line, &p, &ds, &err), &err);
    free(line);
    *nc = 0;
    if (!ds) return NULL;
    int32_t *row = malloc(513 * sizeof *row);
    uint8_t mask[512];
    hl_data_cursor c = {0, 0};
    hl_dataset_next_batch(ds, &c, 1, row, mask, NULL);
    int32_t *pids = NULL;
    size_t np = 0;
    CHECK_OK(hl_tokenizer_encode(t, prompt, strlen(prompt), 1, 0, &pids, &np, &err), &err);
    CHECK(memcmp(row, pids, np * sizeof *row) == 0); /* the prompt as generation encodes it */
    size_t n_loss = (size_t)mask_sum(mask, 512);
    *nc = n_loss - 1;
    for (size_t j = 0; j < 512; j++) CHECK(mask[j] == (j + 1 >= np && j + 1 < np + n_loss));
    CHECK(row[np + *nc] == hl_tokenizer_eos(t));
    int32_t *out = malloc((*nc + 1) * sizeof *out);
    memcpy(out, row + np, *nc * sizeof *out);
    *prev = row[np - 1];
    hl_free(pids);
    free(row);
    hl_dataset_free(ds);
    return out;
}

static char *decode_run(const hl_tokenizer *t, int32_t prev, const int32_t *ids, size_t n) {
    char *s = malloc(n * HL_TOKENIZER_MAX_PIECE + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += hl_tokenizer_decode(t, prev, ids[i], s + len, HL_TOKENIZER_MAX_PIECE);
        prev = ids[i];
    }
    s[len] = 0;
    return s;
}

static void test_prompt_completion(void) {
    /* Exact row: prompt masked, completion + EOS counted. */
    const char *file = "{\"prompt\": \"Q: What is two plus two? A:\", \"completion\": \" four.\"}\n"
                       "{\"prompt\": \"\", \"completion\": \" Hi there\"}\n";
    seq s = {0};
    size_t starts[3] = {0};
    seq_prompt(&s, "Q: What is two plus two? A:", "four.");
    starts[1] = s.n;
    seq_prompt(&s, "", "Hi there");
    starts[2] = s.n;
    hl_dataset_params p = prm(40, 0, 0, 9);
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load(file, &p, &ds, &err), &err);
    REQUIRE(ds);
    rowset want = expect_rows(&s, starts, p.ctx, 0, NULL);
    rowset got = fetch_epoch(ds, p.ctx);
    check_same_rows(&got, &want, p.ctx, "prompt rows");
    CHECK(hl_dataset_get_stats(ds)->n_loss_tokens == s.loss);
    rowset_free(&want);
    rowset_free(&got);
    hl_dataset_free(ds);

    /* The completion rule: exact text where the prefix can go, documented space where it merged. */
    const hl_tokenizer *toks[2] = {tok, tok32k};
    for (int ti = 0; ti < 2; ti++) {
        const hl_tokenizer *t = toks[ti];
        struct { const char *c, *decoded; } cases[] = {
            {" four.", " four."}, {"  two spaces", "  two spaces"}, {"\nfour", "\nfour"}, {"\n", "\n"},
            {".", NULL}, {"!!", NULL}, {"\xC3\xA9t\xC3\xA9", NULL}, {"four", " four"}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t nc;
            int32_t prev;
            int32_t *c = completion_tokens(t, "The answer:", cases[i].c, &nc, &prev);
            if (!c) continue;
            char *d = decode_run(t, prev, c, nc);
            if (cases[i].decoded)
                CHECK_MSG(strcmp(d, cases[i].decoded) == 0, "completion \"%s\" decodes to \"%s\"", cases[i].c, d);
            else
                CHECK_MSG(strcmp(d, cases[i].c) == 0 || (d[0] == ' ' && strcmp(d + 1, cases[i].c) == 0),
                          "completion \"%s\" decodes to \"%s\"", cases[i].c, d);
            free(d);
            free(c);
        }
        /* Random completions: a leading space gives encode(rest) exactly; decoding gives c (or " " + c
         * only when c has no leading space and the prefix merged into its first word). */
        const char *alphabet[] = {" ", "a", "b", "the", "\n", ".", ",", "\xC3\xA9", "\xE2\x96\x81", "x", "1"};
        uint64_t st = 12345 + (uint64_t)ti;
        for (int it = 0; it < 150; it++) {
            char c[64] = "";
            int len = 1 + (int)((st = st * 6364136223846793005ULL + 1442695040888963407ULL) >> 60) % 8;
            for (int k = 0; k < len; k++) {
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                strcat(c, alphabet[(st >> 33) % (sizeof alphabet / sizeof alphabet[0])]);
            }
            if (strcmp(c, " ") == 0) continue;
            size_t nc;
            int32_t prev;
            int32_t *ct = completion_tokens(t, "Say:", c, &nc, &prev);
            if (!ct) continue;
            char *d = decode_run(t, prev, ct, nc);
            if (c[0] == ' ') {
                int32_t *ref = NULL;
                size_t nr = 0;
                CHECK_OK(hl_tokenizer_encode(t, c + 1, strlen(c) - 1, 0, 0, &ref, &nr, &err), &err);
                CHECK(nr == nc && memcmp(ref, ct, nc * sizeof *ct) == 0);
                hl_free(ref);
                CHECK_MSG(strcmp(d, c) == 0, "\"%s\" -> \"%s\"", c, d);
            } else {
                CHECK_MSG(strcmp(d, c) == 0 || (d[0] == ' ' && strcmp(d + 1, c) == 0), "\"%s\" -> \"%s\"", c, d);
                /* The space is kept only when the first token is a merged "▁..." piece. */
                if (strcmp(d, c) != 0) {
                    const char *piece = hl_tokenizer_piece(t, ct[0]);
                    CHECK(strncmp(piece, "\xE2\x96\x81", 3) == 0 && strlen(piece) > 3);
                }
            }
            free(d);
            free(ct);
        }
    }
}

/* ------------------------------------------------------------ coverage, truncation */

static const char *mixed_file =
    "{\"text\": \"One day, a little girl named Lily found a needle in her room.\"}\n"
    "{\"prompt\": \"Once upon a time\", \"completion\": \" there was a cat.\"}\n"
    "{\"text\": \"Tom and Sue went to the park.\"}\n"
    "\n"
    "{\"prompt\": \"The dog said\", \"completion\": \" woof!\"}\n"
    "{\"text\": \"It was sunny.\"}\n"
    "{\"prompt\": \"Where is the ball? It is\", \"completion\": \" under the bed.\"}\n"
    "{\"text\": \"The end.\"}\n"
    "{\"prompt\": \"A\", \"completion\": \" B\"}\n"
    "{\"text\": \"Mom made a cake and they ate it together happily.\"}\n"
    "{\"prompt\": \"Why?\", \"completion\": \" Because.\"}\n";

static void mixed_seq(seq *s, size_t *starts) {
    memset(s, 0, sizeof *s);
    size_t k = 0;
    starts[k++] = 0;
    seq_text(s, "One day, a little girl named Lily found a needle in her room.");
    starts[k++] = s->n;
    seq_prompt(s, "Once upon a time", "there was a cat.");
    starts[k++] = s->n;
    seq_text(s, "Tom and Sue went to the park.");
    starts[k++] = s->n;
    seq_prompt(s, "The dog said", "woof!");
    starts[k++] = s->n;
    seq_text(s, "It was sunny.");
    starts[k++] = s->n;
    seq_prompt(s, "Where is the ball? It is", "under the bed.");
    starts[k++] = s->n;
    seq_text(s, "The end.");
    starts[k++] = s->n;
    seq_prompt(s, "A", "B");
    starts[k++] = s->n;
    seq_text(s, "Mom made a cake and they ate it together happily.");
    starts[k++] = s->n;
    seq_prompt(s, "Why?", "Because.");
    starts[k++] = s->n;
}

static void test_pack_covers_targets(void) {
    seq s;
    size_t starts[16];
    mixed_seq(&s, starts);
    int32_t ctxs[] = {1, 2, 3, 7, 16, 64};
    for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++) {
        for (int pack = 0; pack <= 1; pack++) {
            int32_t ctx = ctxs[i];
            hl_dataset_params p = prm(ctx, pack, 0, 77);
            hl_dataset *ds = NULL;
            hl_error err;
            CHECK_OK(load(mixed_file, &p, &ds, &err), &err);
            if (!ds) continue;
            rowset got = fetch_epoch(ds, ctx);
            const hl_dataset_stats *st = hl_dataset_get_stats(ds);
            int64_t sum = mask_sum(got.mask, (size_t)got.n * ctx);
            CHECK(sum == st->n_loss_tokens);
            if (pack) CHECK_MSG(sum == s.loss, "ctx %d: %lld loss targets in rows, %lld in examples", ctx,
                                (long long)sum, (long long)s.loss);
            int64_t trunc = 0;
            rowset want = expect_rows(&s, starts, ctx, pack, &trunc);
            check_same_rows(&got, &want, ctx, pack ? "mixed packed" : "mixed rows");
            CHECK(st->n_truncated == (pack ? 0 : trunc));
            CHECK(st->n_tokens == want.n_real);
            for (int64_t r = 0; r < got.n; r++) CHECK(mask_sum(got.mask + r * ctx, (size_t)ctx) > 0);
            if (ctx == 64 && !pack) CHECK(sum == s.loss && trunc == 0);
            rowset_free(&want);
            rowset_free(&got);
            hl_dataset_free(ds);
        }
    }
}

static void test_truncation(void) {
    const char *file = "{\"text\": \"Hi.\"}\n"
                       "{\"text\": \"Once upon a time there was a little girl.\"}\n"
                       "{\"prompt\": \"This prompt is far longer than the row\", \"completion\": \" so it goes.\"}\n"
                       "{\"prompt\": \"Hi\", \"completion\": \" there, my good friend of old\"}\n";
    seq s = {0};
    size_t starts[5] = {0};
    seq_text(&s, "Hi.");
    starts[1] = s.n;
    seq_text(&s, "Once upon a time there was a little girl.");
    starts[2] = s.n;
    seq_prompt(&s, "This prompt is far longer than the row", "so it goes.");
    starts[3] = s.n;
    seq_prompt(&s, "Hi", "there, my good friend of old");
    starts[4] = s.n;
    hl_dataset_params p = prm(4, 0, 0, 5);
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load(file, &p, &ds, &err), &err);
    REQUIRE(ds);
    int64_t trunc = 0;
    rowset want = expect_rows(&s, starts, 4, 0, &trunc);
    rowset got = fetch_epoch(ds, 4);
    check_same_rows(&got, &want, 4, "truncated rows");
    const hl_dataset_stats *st = hl_dataset_get_stats(ds);
    CHECK(trunc == 3 && st->n_truncated == 3);
    CHECK(st->n_train_rows == 3); /* the long prompt leaves no target in its row: dropped */
    CHECK(st->n_examples == 4 && st->n_train_examples == 4);
    rowset_free(&want);
    rowset_free(&got);
    hl_dataset_free(ds);

    /* Only rows without targets: nothing to train on. */
    const char *none = "{\"prompt\": \"This prompt is far longer than the row\", \"completion\": \" x\"}\n";
    CHECK(load(none, &p, &ds, &err) == HL_ERR_FORMAT && ds == NULL);
    CHECK(strstr(err.msg, "t.jsonl") && strstr(err.msg, "loss target"));
    printf("  [no targets] %s\n", err.msg);
}

/* ------------------------------------------------------------ split */

static void test_val_split(void) {
    char file[2048] = "";
    enum { N = 10 };
    seq s = {0};
    size_t starts[N + 1] = {0};
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "Story number %d is about a %s.", i, i % 2 ? "cat" : "dog");
        seq_text(&s, text);
        starts[i + 1] = s.n;
        snprintf(file + strlen(file), sizeof file - strlen(file), "{\"text\": \"%s\"}\n", text);
    }
    const int32_t ctx = 32;
    rowset per_ex = expect_rows(&s, starts, ctx, 0, NULL);
    REQUIRE(per_ex.n == N);
    int first_val[N];
    for (uint64_t seed = 1; seed <= 6; seed++) {
        int is_val[N] = {0}, is_train[N] = {0}, order_ok = 1, last = -1;
        hl_dataset_params p = prm(ctx, 0, 0.3f, seed);
        hl_dataset *ds = NULL, *ds2 = NULL;
        hl_error err;
        CHECK_OK(load(file, &p, &ds, &err), &err);
        CHECK_OK(load(file, &p, &ds2, &err), &err);
        if (!ds || !ds2) continue;
        const hl_dataset_stats *st = hl_dataset_get_stats(ds);
        CHECK(st->n_val_examples == 3 && st->n_train_examples == 7 && st->n_examples == N);
        CHECK(st->n_val_rows == 3 && hl_dataset_n_val_rows(ds) == 3 && hl_dataset_n_train_rows(ds) == 7);
        int32_t t[33], t2[33];
        uint8_t m[32], m2[32];
        for (int64_t i = 0; i < 3; i++) {
            hl_dataset_val_row(ds, i, t, m, NULL);
            hl_dataset_val_row(ds2, i, t2, m2, NULL);
            CHECK(memcmp(t, t2, sizeof t) == 0 && memcmp(m, m2, sizeof m) == 0); /* deterministic */
            int hit = -1;
            for (int e = 0; e < N; e++)
                if (memcmp(t, per_ex.tok + e * (ctx + 1), sizeof t) == 0 && memcmp(m, per_ex.mask + e * ctx, sizeof m) == 0)
                    hit = e;
            CHECK(hit >= 0);
            if (hit >= 0) {
                is_val[hit]++;
                if (hit <= last) order_ok = 0;
                last = hit;
            }
        }
        CHECK(order_ok); /* file order */
        rowset tr = fetch_epoch(ds, ctx);
        for (int64_t r = 0; r < tr.n; r++)
            for (int e = 0; e < N; e++)
                if (memcmp(tr.tok + r * (ctx + 1), per_ex.tok + e * (ctx + 1), (ctx + 1) * sizeof(int32_t)) == 0)
                    is_train[e]++;
        int disjoint = 1, covered = 1;
        for (int e = 0; e < N; e++) {
            if (is_val[e] && is_train[e]) disjoint = 0;
            if (is_val[e] + is_train[e] != 1) covered = 0;
        }
        CHECK(disjoint && covered);
        for (int e = 0; e < N; e++)
            if (is_val[e]) {
                first_val[seed - 1] = e;
                break;
            }
        /* Out-of-range val rows are padding. */
        hl_dataset_val_row(ds, 3, t, m, NULL);
        CHECK(t[0] == EOS && t[ctx] == EOS && mask_sum(m, ctx) == 0);
        hl_dataset_val_row(ds, -1, t, m, NULL);
        CHECK(t[5] == EOS && mask_sum(m, ctx) == 0);
        rowset_free(&tr);
        hl_dataset_free(ds);
        hl_dataset_free(ds2);
    }
    int differ = 0;
    for (int i = 1; i < 6; i++) differ |= first_val[i] != first_val[0];
    CHECK_MSG(differ, "six seeds gave the same validation split");
    rowset_free(&per_ex);

    /* Sizes. */
    struct { const char *file; float f; int64_t n_val; } sz[] = {
        {file, 0.0f, 0}, {file, 0.01f, 1}, {file, 0.5f, 5}, {file, 0.25f, 2},
        {"{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n", 0.5f, 1},
        {"{\"text\": \"a\"}\n{\"text\": \"b\"}\n", 0.5f, 1},
        {"{\"text\": \"only one\"}\n", 0.5f, 0}};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        hl_dataset_params p = prm(16, 1, sz[i].f, 4);
        hl_dataset *ds = NULL;
        hl_error err;
        CHECK_OK(load(sz[i].file, &p, &ds, &err), &err);
        if (!ds) continue;
        const hl_dataset_stats *st = hl_dataset_get_stats(ds);
        CHECK_MSG(st->n_val_examples == sz[i].n_val, "case %zu: %lld val examples, want %lld", i,
                  (long long)st->n_val_examples, (long long)sz[i].n_val);
        CHECK(st->n_train_examples + st->n_val_examples == st->n_examples);
        CHECK((st->n_val_rows > 0) == (sz[i].n_val > 0));
        hl_dataset_free(ds);
    }

    /* Packed split: train + val masks together cover every loss target once. */
    seq ms;
    size_t mst[16];
    mixed_seq(&ms, mst);
    hl_dataset_params p = prm(5, 1, 0.3f, 21);
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load(mixed_file, &p, &ds, &err), &err);
    if (ds) {
        rowset tr = fetch_epoch(ds, 5);
        int64_t sum = mask_sum(tr.mask, (size_t)tr.n * 5);
        int32_t t[6];
        uint8_t m[5];
        for (int64_t i = 0; i < hl_dataset_n_val_rows(ds); i++) {
            hl_dataset_val_row(ds, i, t, m, NULL);
            sum += mask_sum(m, 5);
            CHECK(mask_sum(m, 5) > 0);
        }
        CHECK(sum == ms.loss);
        CHECK(hl_dataset_get_stats(ds)->n_val_examples == 3);
        rowset_free(&tr);
        hl_dataset_free(ds);
    }
}

/* ------------------------------------------------------------ batches */

static void test_batches(void) {
    char file[4096] = "";
    for (int i = 0; i < 20; i++)
        snprintf(file + strlen(file), sizeof file - strlen(file), "{\"text\": \"Line %d of the book.\"}\n", i);
    const int32_t ctx = 16, w = ctx + 1;
    hl_dataset_params p = prm(ctx, 0, 0, 42);
    hl_dataset *a = NULL, *b = NULL, *c = NULL;
    hl_error err;
    CHECK_OK(load(file, &p, &a, &err), &err);
    CHECK_OK(load(file, &p, &b, &err), &err);
    p.seed = 43;
    CHECK_OK(load(file, &p, &c, &err), &err);
    REQUIRE(a && b && c);
    REQUIRE(hl_dataset_n_train_rows(a) == 20);
    /* Three epochs in batches of 7 (wrapping mid-batch). */
    enum { ROWS = 63 };
    int32_t ta[ROWS * 17], tb[ROWS * 17], tc[ROWS * 17];
    uint8_t ma[ROWS * 16], mb[ROWS * 16], mc[ROWS * 16];
    hl_data_cursor ca = {0, 0}, cb = {0, 0}, cc = {0, 0}, saved = {0, 0};
    for (int k = 0; k < ROWS / 7; k++) {
        if (k == 4) saved = ca;
        hl_dataset_next_batch(a, &ca, 7, ta + k * 7 * w, ma + k * 7 * ctx, NULL);
        hl_dataset_next_batch(b, &cb, 7, tb + k * 7 * w, mb + k * 7 * ctx, NULL);
        hl_dataset_next_batch(c, &cc, 7, tc + k * 7 * w, mc + k * 7 * ctx, NULL);
        if (k == 2) CHECK(ca.epoch == 1 && ca.index == 1); /* 21 rows: one past the wrap */
    }
    CHECK(ca.epoch == 3 && ca.index == 3 && cb.epoch == ca.epoch && cb.index == ca.index);
    CHECK(memcmp(ta, tb, sizeof ta) == 0 && memcmp(ma, mb, sizeof ma) == 0); /* same seed: same batches */
    CHECK(memcmp(ta, tc, 20 * w * sizeof(int32_t)) != 0);                    /* other seed: other order */
    /* Each epoch holds every row once; the order changes between epochs. */
    for (int e = 0; e < 3; e++) {
        int seen[20] = {0};
        for (int r = 0; r < 20; r++) {
            const int32_t *row = ta + (e * 20 + r) * w;
            for (int q = 0; q < 20; q++)
                if (memcmp(row, ta + q * w, w * sizeof(int32_t)) == 0) seen[q]++;
        }
        int all = 1;
        for (int q = 0; q < 20; q++) all &= seen[q] == 1;
        CHECK_MSG(all, "epoch %d is not a permutation of epoch 0's rows", e);
    }
    CHECK(memcmp(ta, ta + 20 * w, 20 * w * sizeof(int32_t)) != 0);
    CHECK(memcmp(ta + 20 * w, ta + 40 * w, 20 * w * sizeof(int32_t)) != 0);
    /* Resume: a saved cursor replays exactly, even after the cache moved on. */
    int32_t t1[7 * 17];
    uint8_t m1[7 * 16];
    hl_dataset_next_batch(a, &saved, 7, t1, m1, NULL);
    CHECK(memcmp(t1, ta + 28 * w, sizeof t1) == 0 && memcmp(m1, ma + 28 * ctx, sizeof m1) == 0);
    /* A cursor from another run's end (index past the rows) wraps into the next epoch. */
    hl_data_cursor odd = {0, 1000};
    hl_dataset_next_batch(a, &odd, 1, t1, m1, NULL);
    CHECK(odd.epoch == 1 && odd.index == 1 && memcmp(t1, ta + 20 * w, w * sizeof(int32_t)) == 0);
    hl_dataset_free(a);
    hl_dataset_free(b);
    hl_dataset_free(c);
}

/* ------------------------------------------------------------ scene */

typedef struct fake_lex {
    int calls;
    char last_form[32], last_reg[32];
    int fail_on; /* call number that fails; 0: never */
    int bad_id;
} fake_lex;

/* [BOS] scene bytes (masked out) output bytes (counted) [EOS]; byte b is token 3+b in tok512.
 * Reports mask 5 for counted tokens and 1 for BOS, to check normalisation and the first-token rule. */
static hl_status fake_format(void *user, const char *scene, const char *form, const char *reg, const char *output,
                             int32_t **ids, uint8_t **mask, size_t *n, hl_error *err) {
    fake_lex *lx = user;
    lx->calls++;
    snprintf(lx->last_form, sizeof lx->last_form, "%s", form);
    snprintf(lx->last_reg, sizeof lx->last_reg, "%s", reg);
    if (lx->fail_on == lx->calls) {
        *ids = NULL;
        *mask = NULL;
        *n = 0;
        return hl_fail(err, HL_ERR_FORMAT, "unknown hyperlexeme \"%s\"", scene);
    }
    size_t ns = strlen(scene), no = strlen(output), k = 0;
    *n = ns + no + 2;
    *ids = hl_malloc(*n * sizeof **ids);
    *mask = hl_malloc(*n);
    (*ids)[k] = BOS;
    (*mask)[k++] = 1;
    for (size_t i = 0; i < ns; i++) (*ids)[k] = 3 + (uint8_t)scene[i], (*mask)[k++] = 0;
    for (size_t i = 0; i < no; i++) (*ids)[k] = 3 + (uint8_t)output[i], (*mask)[k++] = 5;
    (*ids)[k] = lx->bad_id ? 100000 : EOS;
    (*mask)[k++] = 5;
    return HL_OK;
}

static void test_scene(void) {
    const char *file = "{\"scene\": \"ab\", \"form\": \"noun\", \"register\": \"plain\", \"output\": \"xyz\"}\n"
                       "{\"text\": \"Hi.\"}\n";
    fake_lex lx = {0};
    hl_dataset_params p = prm(12, 0, 0, 1);
    p.scene_format = fake_format;
    p.scene_user = &lx;
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load(file, &p, &ds, &err), &err);
    REQUIRE(ds);
    CHECK(lx.calls == 1 && strcmp(lx.last_form, "noun") == 0 && strcmp(lx.last_reg, "plain") == 0);
    seq s = {0};
    size_t starts[3] = {0};
    const int32_t sc[] = {BOS, 3 + 'a', 3 + 'b', 3 + 'x', 3 + 'y', 3 + 'z', EOS};
    const uint8_t sf[] = {0, 0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 7; i++) seq_push(&s, sc[i], sf[i]);
    s.n_ex = 1;
    starts[1] = s.n;
    seq_text(&s, "Hi.");
    starts[2] = s.n;
    rowset want = expect_rows(&s, starts, 12, 0, NULL);
    rowset got = fetch_epoch(ds, 12);
    check_same_rows(&got, &want, 12, "scene rows");
    CHECK(hl_dataset_get_stats(ds)->n_loss_tokens == s.loss);
    rowset_free(&want);
    rowset_free(&got);
    hl_dataset_free(ds);

    /* Packed: the scene example's first token (mask 1 from the formatter) is no target. */
    p.pack = 1;
    p.ctx = 3;
    CHECK_OK(load(file, &p, &ds, &err), &err);
    if (ds) {
        CHECK(hl_dataset_get_stats(ds)->n_loss_tokens == s.loss);
        hl_dataset_free(ds);
    }

    /* Formatter errors carry the line; bad ids are refused. */
    const char *two = "{\"text\": \"Hi.\"}\n"
                      "{\"scene\": \"qq\", \"form\": \"f\", \"register\": \"r\", \"output\": \"o\"}\n";
    fake_lex fl = {.fail_on = 1};
    p.scene_user = &fl;
    CHECK(load(two, &p, &ds, &err) == HL_ERR_FORMAT && !ds);
    CHECK(strstr(err.msg, "t.jsonl:2: scene: unknown hyperlexeme \"qq\""));
    printf("  [scene formatter error] %s\n", err.msg);
    fake_lex bad = {.bad_id = 1};
    p.scene_user = &bad;
    CHECK(load(two, &p, &ds, &err) == HL_ERR_FORMAT && !ds);
    CHECK(strstr(err.msg, "t.jsonl:2") && strstr(err.msg, "token id 100000"));
    printf("  [scene bad id] %s\n", err.msg);
    p.scene_user = &lx;

    /* Missing or ill-typed scene fields name the field; bad UTF-8 too. */
    struct { const char *line, *field; } bads[] = {
        {"{\"scene\": \"a\", \"form\": \"f\", \"output\": \"o\"}", "\"register\""},
        {"{\"scene\": \"a\", \"form\": 3, \"register\": \"r\", \"output\": \"o\"}", "\"form\""},
        {"{\"scene\": \"a\", \"form\": \"f\", \"register\": \"r\", \"output\": \"o\xFF\"}", "\"output\""},
        {"{\"scene\": [], \"form\": \"f\", \"register\": \"r\", \"output\": \"o\"}", "\"scene\""}};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        CHECK(load(bads[i].line, &p, &ds, &err) == HL_ERR_FORMAT && !ds);
        CHECK_MSG(strstr(err.msg, "t.jsonl:1") && strstr(err.msg, bads[i].field), "%s", err.msg);
        printf("  [scene field] %s\n", err.msg);
    }

    /* No formatter: refused, saying what is missing. */
    p.scene_format = NULL;
    CHECK(load(file, &p, &ds, &err) == HL_ERR_INVALID_ARG && !ds);
    CHECK(strstr(err.msg, "t.jsonl:1: scene examples need a lexicon (--lexicon)"));
    printf("  [scene without lexicon] %s\n", err.msg);
}

/* ------------------------------------------------------------ bad lines */

typedef struct bad_case {
    const char *name;
    const char *data;
    size_t size; /* 0: strlen(data) */
    hl_status status;
    const char *where; /* "t.jsonl:N" */
    const char *what;  /* field name or other word the message must contain */
} bad_case;

static void check_bad(const bad_case *c) {
    hl_dataset_params p = prm(16, 1, 0.2f, 1);
    hl_dataset *ds = (hl_dataset *)&p; /* must be reset to NULL */
    hl_error err = {0};
    size_t size = c->size ? c->size : strlen(c->data);
    hl_status s = hl_dataset_load_memory(c->data, size, "t.jsonl", tok, &p, &ds, &err);
    CHECK_MSG(s == c->status, "%s: status %s, want %s (%s)", c->name, hl_status_name(s), hl_status_name(c->status),
              err.msg);
    CHECK_MSG(ds == NULL, "%s: out not NULL", c->name);
    CHECK_MSG(strstr(err.msg, c->where) != NULL, "%s: \"%s\" lacks \"%s\"", c->name, err.msg, c->where);
    CHECK_MSG(strstr(err.msg, c->what) != NULL, "%s: \"%s\" lacks \"%s\"", c->name, err.msg, c->what);
    printf("  [%s] %s\n", c->name, err.msg);
}

static void test_bad_lines(void) {
    static const char nul_line[] = "{\"text\": \"a\"}\n{\"text\": \"a\0b\"}\n";
    const bad_case cases[] = {
        {"invalid JSON", "{\"text\": \"a\"}\n{\"text\": \"b\"\n", 0, HL_ERR_FORMAT, "t.jsonl:2", "invalid JSON"},
        {"invalid JSON: trailing garbage", "{\"text\": \"a\"} x\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "invalid JSON"},
        {"invalid JSON: two objects", "{\"text\": \"a\"}{\"text\": \"b\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "column 14"},
        {"invalid JSON: lone surrogate escape", "{\"text\": \"\\ud800\"}", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "invalid JSON"},
        {"invalid JSON: raw NUL byte", nul_line, sizeof nul_line - 1, HL_ERR_FORMAT, "t.jsonl:2", "NUL byte"},
        {"non-object: array", "[\"text\", \"a\"]\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "got array"},
        {"non-object: string", "{\"text\": \"a\"}\n\"text\"\n", 0, HL_ERR_FORMAT, "t.jsonl:2", "got string"},
        {"non-object: number", "42", 0, HL_ERR_FORMAT, "t.jsonl:1", "got number"},
        {"missing completion", "{\"prompt\": \"x\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "field \"completion\": missing"},
        {"missing prompt", "{\"completion\": \" x\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "field \"prompt\": missing"},
        {"no known field", "{\"txt\": \"x\", \"n\": 1}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "field \"text\": missing"},
        {"empty object", "{}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "\"prompt\"+\"completion\""},
        {"keys are case-sensitive", "{\"Text\": \"x\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "field \"text\": missing"},
        {"non-string text", "{\"text\": 5}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "field \"text\": must be a string (got number)"},
        {"non-string prompt", "{\"prompt\": null, \"completion\": \" x\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"prompt\": must be a string (got null)"},
        {"non-string completion", "{\"prompt\": \"a\", \"completion\": [\"x\"]}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"completion\": must be a string (got array)"},
        {"non-string text: object", "{\"text\": {\"a\": \"b\"}}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "(got object)"},
        {"non-string text: bool", "{\"text\": true}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "(got boolean)"},
        {"empty text", "{\"text\": \"a\"}\n{\"text\": \"\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:2", "field \"text\": is empty"},
        {"empty completion", "{\"prompt\": \"a\", \"completion\": \"\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"completion\": is empty"},
        {"completion only a space", "{\"prompt\": \"a\", \"completion\": \" \"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"completion\""},
        {"invalid UTF-8 in text", "{\"text\": \"ab\xFF\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"text\": invalid UTF-8 at byte offset 2"},
        {"invalid UTF-8 in prompt: overlong", "{\"prompt\": \"\xC0\xAF\", \"completion\": \" x\"}\n", 0, HL_ERR_FORMAT,
         "t.jsonl:1", "field \"prompt\": invalid UTF-8"},
        {"invalid UTF-8 in completion: truncated", "{\"prompt\": \"a\", \"completion\": \" x\xC3\"}\n", 0,
         HL_ERR_FORMAT, "t.jsonl:1", "field \"completion\": invalid UTF-8 at byte offset 2"},
        {"invalid UTF-8: raw surrogate", "{\"text\": \"\xED\xA0\x80\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"text\": invalid UTF-8"},
        {"escaped NUL", "{\"text\": \"a\\u0000b\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1", "\\u0000"},
        {"two shapes", "{\"text\": \"a\", \"prompt\": \"b\", \"completion\": \" c\"}\n", 0, HL_ERR_FORMAT,
         "t.jsonl:1", "field \"text\": ambiguous"},
        {"duplicate field", "{\"text\": \"a\", \"text\": \"b\"}\n", 0, HL_ERR_FORMAT, "t.jsonl:1",
         "field \"text\": appears 2 times"},
        {"line numbers count blank and CRLF lines", "{\"text\": \"a\"}\r\n\r\n\n{\"text\": 1}\r\n", 0,
         HL_ERR_FORMAT, "t.jsonl:4", "field \"text\""},
        {"empty file", "", 0, HL_ERR_FORMAT, "t.jsonl", "empty"},
        {"only blank lines", "\n  \n\t\r\n", 0, HL_ERR_FORMAT, "t.jsonl", "blank"},
        {"only a BOM", "\xEF\xBB\xBF", 0, HL_ERR_FORMAT, "t.jsonl", "no examples"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_bad(&cases[i]);

    /* Line length: exactly at the cap is fine, one byte over is refused with the line number. */
    size_t cap = HL_DATASET_MAX_LINE;
    char *big = malloc(cap + 64);
    strcpy(big, "{\"text\": \"ok\"}\n{\"text\": \"");
    size_t head = strlen(big), body = cap - strlen("{\"text\": \"") - 2;
    memset(big + head, 'a', body);
    strcpy(big + head + body, "\"}\n");
    hl_dataset_params p = prm(64, 1, 0, 1);
    hl_dataset *ds = NULL;
    hl_error err;
    CHECK_OK(load(big, &p, &ds, &err), &err);
    hl_dataset_free(ds);
    memset(big + head, 'a', body + 1);
    strcpy(big + head + body + 1, "\"}\n");
    bad_case too_long = {"line too long", big, 0, HL_ERR_LIMIT, "t.jsonl:2", "limit"};
    check_bad(&too_long);
    free(big);

    /* Accepted oddities: BOM, CRLF, no final newline, extra fields of any type. */
    const char *ok = "\xEF\xBB\xBF{\"text\": \"a\", \"weight\": [1, {\"x\": null}]}\r\n"
                     "  {\"prompt\": \"p\", \"completion\": \" c\", \"source\": 3}  \r\n"
                     "{\"text\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\"}";
    CHECK_OK(load(ok, &p, &ds, &err), &err);
    if (ds) CHECK(hl_dataset_get_stats(ds)->n_examples == 3);
    hl_dataset_free(ds);
}

/* ------------------------------------------------------------ params, files, memory */

static void test_params(void) {
    const char *file = "{\"text\": \"a\"}\n";
    hl_dataset *ds = NULL;
    hl_error err;
    hl_dataset_params bad[] = {prm(0, 1, 0, 1), prm(-3, 0, 0, 1), prm(HL_DATASET_MAX_CTX + 1, 1, 0, 1),
                               prm(8, 1, 0.6f, 1), prm(8, 1, -0.1f, 1), prm(8, 1, NAN, 1)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(load(file, &bad[i], &ds, &err) == HL_ERR_INVALID_ARG && ds == NULL);
        CHECK(strstr(err.msg, "t.jsonl"));
        printf("  [bad params] %s\n", err.msg);
    }
    hl_dataset_params p = prm(8, 1, 0, 1);
    CHECK(hl_dataset_load_memory(file, strlen(file), "t.jsonl", NULL, &p, &ds, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_dataset_load_memory(file, strlen(file), "t.jsonl", tok, NULL, &ds, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_dataset_load_memory(file, strlen(file), "t.jsonl", tok, &p, NULL, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_dataset_load_memory(NULL, 0, NULL, tok, &p, &ds, &err) == HL_ERR_FORMAT && ds == NULL);
    CHECK(strstr(err.msg, "<memory>"));
    CHECK(hl_dataset_get_stats(NULL) == NULL && hl_dataset_n_train_rows(NULL) == 0);
    hl_dataset_free(NULL);
}

static void test_file(void) {
    char path[] = "/tmp/hl_test_dataset_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    size_t len = strlen(mixed_file);
    REQUIRE(write(fd, mixed_file, len) == (ssize_t)len);
    close(fd);
    hl_dataset_params p = prm(7, 1, 0.2f, 8);
    hl_dataset *a = NULL, *b = NULL;
    hl_error err;
    CHECK_OK(hl_dataset_load(path, tok, &p, &a, &err), &err);
    CHECK_OK(load(mixed_file, &p, &b, &err), &err);
    if (a && b) {
        rowset ra = fetch_epoch(a, 7), rb = fetch_epoch(b, 7);
        CHECK(ra.n == rb.n && memcmp(ra.tok, rb.tok, (size_t)ra.n * 8 * sizeof(int32_t)) == 0);
        CHECK(memcmp(hl_dataset_get_stats(a), hl_dataset_get_stats(b), sizeof(hl_dataset_stats)) == 0);
        rowset_free(&ra);
        rowset_free(&rb);
    }
    hl_dataset_free(a);
    hl_dataset_free(b);
    /* Errors name the path. */
    FILE *f = fopen(path, "wb");
    fputs("{\"text\": \"fine\"}\n{\"prompt\": 1}\n", f);
    fclose(f);
    CHECK(hl_dataset_load(path, tok, &p, &a, &err) == HL_ERR_FORMAT && !a);
    char want[64];
    snprintf(want, sizeof want, "%s:2: field \"prompt\"", path);
    CHECK_MSG(strstr(err.msg, want), "%s", err.msg);
    unlink(path);
    CHECK(hl_dataset_load(path, tok, &p, &a, &err) == HL_ERR_IO && !a && strstr(err.msg, path));
    printf("  [missing file] %s\n", err.msg);
}

/* Every allocation failing in turn: NOMEM (or success), never a leak or crash. */
static void test_oom(void) {
    hl_dataset_params p = prm(6, 1, 0.3f, 2);
    int done = 0;
    for (long k = 0; k < 100000 && !done; k++) {
        hl_dataset *ds = NULL;
        hl_error err = {0};
        hl_alloc_fail_after(k);
        hl_status s = load(mixed_file, &p, &ds, &err);
        long failures = hl_alloc_failures();
        hl_alloc_fail_after(-1);
        if (failures == 0) {
            CHECK_OK(s, &err);
            done = 1;
        } else {
            CHECK_MSG(s == HL_ERR_NOMEM || s == HL_OK, "fail after %ld: %s: %s", k, hl_status_name(s), err.msg);
            if (s == HL_ERR_NOMEM) CHECK(ds == NULL && strstr(err.msg, "t.jsonl"));
        }
        hl_dataset_free(ds);
    }
    CHECK(done);
}

int main(void) {
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_from_llama2c(shared_path("models/stories260K/tok512.bin"), 512, &tok, &err), &err);
    CHECK_OK(hl_tokenizer_from_llama2c(shared_path("models/llama2-tokenizer/tokenizer.bin"), 32000, &tok32k, &err),
             &err);
    REQUIRE(tok && tok32k);
    BOS = hl_tokenizer_bos(tok);
    EOS = hl_tokenizer_eos(tok);
    test_text_rows();
    test_pack_exact();
    test_prompt_completion();
    test_pack_covers_targets();
    test_truncation();
    test_val_split();
    test_batches();
    test_scene();
    test_bad_lines();
    test_params();
    test_file();
    test_oom();
    hl_tokenizer_free(tok);
    hl_tokenizer_free(tok32k);
    return hl_test_finish("test_dataset");
}
