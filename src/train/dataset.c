/* dataset.c: JSONL training data -> tokenized rows (see dataset.h for the
 * rules). Loading runs in three passes: parse and tokenize every line into
 * one growing token/flag buffer (file order), pick the validation examples,
 * then cut each split into rows. After loading the dataset is read-only
 * except for the cached epoch permutation used by next_batch.
 * Not implemented here: formatting scene examples (a callback does that). */
#include "train/dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/rng.h"

#define SPLIT_SALT 0x73706c6974ULL          /* "split": keeps the split stream apart from epoch streams */
#define PACK_SALT 0x7061636b73ULL           /* "packs": the order in which documents are packed */
#define EPOCH_MUL 0x9E3779B97F4A7C15ULL

/* The permutation of train rows for one epoch, computed on demand. Kept
 * behind a pointer so next_batch can refresh it through a const dataset. */
typedef struct perm_cache {
    int valid;
    uint64_t epoch;
    int64_t *perm; /* n_train_rows entries */
} perm_cache;

struct hl_dataset {
    int32_t ctx;
    int32_t pad;              /* EOS: the padding token */
    uint64_t seed;
    int32_t *train_tok;       /* n_train_rows × (ctx+1) */
    uint8_t *train_mask;      /* n_train_rows × ctx */
    int32_t *train_pos;       /* n_train_rows × ctx, document packing only (else NULL: 0..ctx-1) */
    int32_t *val_tok;         /* n_val_rows × (ctx+1) */
    uint8_t *val_mask;        /* n_val_rows × ctx */
    int32_t *val_pos;         /* n_val_rows × ctx, or NULL as train_pos */
    hl_dataset_stats stats;
    perm_cache *cache;
};

/* ------------------------------------------------------------ examples */

/* All examples back to back: tok/flag hold the tokens and their loss flags,
 * example e spans [start[e], start[e+1]). */
typedef struct examples {
    int32_t *tok;
    uint8_t *flag;
    size_t n_tok, cap_tok, cap_flag;
    size_t *start;            /* n_ex + 1 entries once finished */
    size_t n_ex, cap_ex;
} examples;

static void examples_free(examples *x) {
    hl_free(x->tok);
    hl_free(x->flag);
    hl_free(x->start);
}

/* Grows *p (elem bytes each) so that it holds at least need entries. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) {
        if (!hl_mul_size(c, 2, &c)) return 0;
    }
    size_t bytes;
    if (!hl_mul_size(c, elem, &bytes)) return 0;
    void *np = hl_realloc(*p, bytes);
    if (!np) return 0;
    *p = np;
    *cap = c;
    return 1;
}

/* Appends n tokens with flags (flags NULL: all set to `all`). */
static int append_tokens(examples *x, const int32_t *ids, const uint8_t *flags, uint8_t all, size_t n) {
    size_t need;
    if (!hl_add_size(x->n_tok, n, &need)) return 0;
    if (!grow((void **)&x->tok, &x->cap_tok, need, sizeof *x->tok)) return 0;
    if (!grow((void **)&x->flag, &x->cap_flag, need, 1)) return 0;
    if (n) memcpy(x->tok + x->n_tok, ids, n * sizeof *ids);
    if (flags)
        memcpy(x->flag + x->n_tok, flags, n);
    else
        memset(x->flag + x->n_tok, all, n);
    x->n_tok = need;
    return 1;
}

static int begin_example(examples *x) {
    if (!grow((void **)&x->start, &x->cap_ex, x->n_ex + 2, sizeof *x->start)) return 0;
    x->start[x->n_ex] = x->n_tok;
    return 1;
}

/* Closes the example begun at start[n_ex]: its first token is never its own target. */
static void end_example(examples *x) {
    x->flag[x->start[x->n_ex]] = 0;
    x->n_ex++;
    x->start[x->n_ex] = x->n_tok;
}

/* ------------------------------------------------------------ line errors */

typedef struct line_ctx {
    const char *name;
    long long line;
    hl_error *err;
} line_ctx;

/* Fails with "NAME:LINE: message". */
static hl_status HL_PRINTF(3, 4) line_fail(const line_ctx *lc, hl_status s, const char *fmt, ...) {
    char msg[sizeof lc->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hl_fail(lc->err, s, "%s:%lld: %s", lc->name, lc->line, msg);
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

/* A tokenizer failure on a field: bad UTF-8 is a data error (FORMAT), the
 * tokenizer's own message (byte offset) is kept. */
static hl_status field_encode_fail(const line_ctx *lc, const char *field, hl_status s, const hl_error *e) {
    if (s == HL_ERR_INVALID_ARG) s = HL_ERR_FORMAT;
    return line_fail(lc, s, "field \"%s\": %s", field, e->msg);
}

/* Offset of the first "\u0000" escape in a line that cJSON accepted, or -1.
 * cJSON decodes it to a NUL byte, which would silently cut the C string. */
static long find_escaped_nul(const char *s, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            if (s[i] == '"') in_str = 1;
        } else if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\') {
            if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) return (long)i;
            i++; /* skip the escaped character; \uXXXX hex digits are harmless */
        }
    }
    return -1;
}

/* ------------------------------------------------------------ per shape */

static hl_status add_text(examples *x, const hl_tokenizer *tok, const line_ctx *lc, const char *text) {
    size_t len = strlen(text), n = 0;
    if (len == 0) return line_fail(lc, HL_ERR_FORMAT, "field \"text\": is empty");
    int32_t *ids = NULL;
    hl_error e = {0};
    hl_status s = hl_tokenizer_encode_special(tok, text, len, hl_tokenizer_add_bos(tok), 1, 1, &ids, &n, &e);
    if (s != HL_OK) return field_encode_fail(lc, "text", s, &e);
    int ok = begin_example(x) && append_tokens(x, ids, NULL, 1, n);
    hl_free(ids);
    if (!ok) return line_fail(lc, HL_ERR_NOMEM, "out of memory");
    end_example(x);
    return HL_OK;
}

/* True for a token that is exactly the dummy-prefix space: "▁", or the byte
 * token for ' ' when the vocabulary has no "▁" piece. */
static int is_lone_space(const hl_tokenizer *tok, int32_t id) {
    const char *p = hl_tokenizer_piece(tok, id);
    return p && (strcmp(p, "\xE2\x96\x81") == 0 || strcmp(p, "<0x20>") == 0);
}

/* Encodes a completion that continues a prompt (rule in dataset.h). */
static hl_status encode_completion(const hl_tokenizer *tok, const line_ctx *lc, const char *c, int32_t **ids,
                                   size_t *n) {
    size_t len = strlen(c);
    hl_error e = {0};
    hl_status s;
    if (len == 0) return line_fail(lc, HL_ERR_FORMAT, "field \"completion\": is empty");
    if (hl_tokenizer_is_byte_level(tok)) { /* no dummy prefix: the bytes are encoded as they are */
        s = hl_tokenizer_encode_special(tok, c, len, 0, 0, 1, ids, n, &e);
        return s == HL_OK ? s : field_encode_fail(lc, "completion", s, &e);
    }
    if (c[0] == ' ') {
        /* Its leading space plays the dummy prefix: exact SentencePiece tokens for c. */
        if (len == 1) return line_fail(lc, HL_ERR_FORMAT, "field \"completion\": is only a space");
        s = hl_tokenizer_encode(tok, c + 1, len - 1, 0, 0, ids, n, &e);
        if (s == HL_ERR_INVALID_ARG) {
            /* Re-encode the whole field (it fails the same way) for a byte offset counted from its start. */
            int32_t *again = NULL;
            size_t n_again = 0;
            if (hl_tokenizer_encode(tok, c, len, 0, 0, &again, &n_again, &e) == HL_OK) hl_free(again);
        }
        if (s != HL_OK) return field_encode_fail(lc, "completion", s, &e);
        return HL_OK;
    }
    s = hl_tokenizer_encode(tok, c, len, 0, 0, ids, n, &e);
    if (s != HL_OK) return field_encode_fail(lc, "completion", s, &e);
    /* A prefix that merged with nothing can be removed exactly: every merge
     * chosen was strictly better than any pair involving it, so the rest is
     * the tokenization of c alone. A merged prefix stays (documented). */
    if (*n > 1 && is_lone_space(tok, (*ids)[0])) {
        memmove(*ids, *ids + 1, (*n - 1) * sizeof **ids);
        (*n)--;
    }
    return HL_OK;
}

static hl_status add_prompt(examples *x, const hl_tokenizer *tok, const line_ctx *lc, const char *prompt,
                            const char *completion) {
    int32_t *p = NULL, *c = NULL;
    size_t np = 0, nc = 0;
    hl_error e = {0};
    /* Prompt exactly as generation encodes it, so training matches inference. */
    hl_status s = hl_tokenizer_encode_special(tok, prompt, strlen(prompt), hl_tokenizer_add_bos(tok), 0, 1, &p, &np, &e);
    if (s != HL_OK) return field_encode_fail(lc, "prompt", s, &e);
    s = encode_completion(tok, lc, completion, &c, &nc);
    if (s != HL_OK) {
        hl_free(p);
        return s;
    }
    int32_t eos = hl_tokenizer_eos(tok);
    int ok = begin_example(x) && append_tokens(x, p, NULL, 0, np) && append_tokens(x, c, NULL, 1, nc) &&
             append_tokens(x, &eos, NULL, 1, 1);
    hl_free(p);
    hl_free(c);
    if (!ok) return line_fail(lc, HL_ERR_NOMEM, "out of memory");
    end_example(x);
    return HL_OK;
}

static hl_status add_scene(examples *x, const hl_tokenizer *tok, const hl_dataset_params *params,
                           const line_ctx *lc, const char *const f[4]) {
    static const char *names[4] = {"scene", "form", "register", "output"};
    /* Validate UTF-8 with the tokenizer (one definition of valid text), so
     * the error names the field rather than leaving it to the formatter. */
    for (int i = 0; i < 4; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        hl_error e = {0};
        hl_status s = hl_tokenizer_encode(tok, f[i], strlen(f[i]), 0, 0, &ids, &n, &e);
        hl_free(ids);
        if (s != HL_OK) return field_encode_fail(lc, names[i], s, &e);
    }
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    hl_error e = {0};
    hl_status s = params->scene_format(params->scene_user, f[0], f[1], f[2], f[3], &ids, &mask, &n, &e);
    if (s != HL_OK) {
        hl_free(ids);
        hl_free(mask);
        return line_fail(lc, s, "scene: %s", e.msg);
    }
    int32_t nv = hl_tokenizer_n_vocab(tok);
    if (n < 2 || !ids || !mask) {
        s = line_fail(lc, HL_ERR_FORMAT, "scene: the formatter returned %zu tokens (need >= 2)", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) {
            s = line_fail(lc, HL_ERR_FORMAT, "scene: the formatter returned token id %ld at %zu (vocabulary %ld)",
                          (long)ids[i], i, (long)nv);
            goto done;
        }
        mask[i] = mask[i] != 0; /* normalise to 0/1 so sums count targets */
    }
    if (!begin_example(x) || !append_tokens(x, ids, mask, 0, n)) {
        s = line_fail(lc, HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    end_example(x);
done:
    hl_free(ids);
    hl_free(mask);
    return s;
}

/* ------------------------------------------------------------ one line */

enum { K_TEXT, K_PROMPT, K_COMPLETION, K_SCENE, K_FORM, K_REGISTER, K_OUTPUT, K_COUNT };
static const char *const key_names[K_COUNT] = {"text", "prompt", "completion", "scene", "form", "register", "output"};

/* The string value of key k; fails naming the field when it is missing, repeated or not a string. */
static hl_status get_string(const line_ctx *lc, const cJSON *const *v, const int *count, int k, const char *shape,
                            const char **out) {
    if (!v[k]) return line_fail(lc, HL_ERR_FORMAT, "field \"%s\": missing (%s)", key_names[k], shape);
    if (count[k] > 1) return line_fail(lc, HL_ERR_FORMAT, "field \"%s\": appears %d times", key_names[k], count[k]);
    if (!cJSON_IsString(v[k]) || !v[k]->valuestring)
        return line_fail(lc, HL_ERR_FORMAT, "field \"%s\": must be a string (got %s)", key_names[k],
                         json_type_name(v[k]));
    *out = v[k]->valuestring;
    return HL_OK;
}

/* Parses one non-blank line (NUL-terminated copy in buf, n bytes) into x. */
static hl_status parse_line(examples *x, const hl_tokenizer *tok, const hl_dataset_params *params,
                            const line_ctx *lc, const char *buf, size_t n) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        size_t col = end && end >= buf && end <= buf + n ? (size_t)(end - buf) + 1 : 0;
        if (col) return line_fail(lc, HL_ERR_FORMAT, "invalid JSON near column %zu", col);
        return line_fail(lc, HL_ERR_FORMAT, "invalid JSON");
    }
    hl_status s = HL_OK;
    long nul = find_escaped_nul(buf, n);
    if (nul >= 0) {
        s = line_fail(lc, HL_ERR_FORMAT, "\\u0000 (NUL) at column %ld: not supported in strings", nul + 1);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        s = line_fail(lc, HL_ERR_FORMAT, "expected a JSON object with \"text\", \"prompt\"/\"completion\" or "
                                         "\"scene\", got %s", json_type_name(root));
        goto done;
    }
    const cJSON *v[K_COUNT] = {0};
    int count[K_COUNT] = {0};
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) continue;
        for (int k = 0; k < K_COUNT; k++) {
            if (strcmp(c->string, key_names[k]) == 0) {
                if (!v[k]) v[k] = c;
                count[k]++;
            }
        }
    }
    int has_text = v[K_TEXT] != NULL, has_pc = v[K_PROMPT] || v[K_COMPLETION], has_scene = v[K_SCENE] != NULL;
    if (has_text + has_pc + has_scene > 1) {
        const char *pc = v[K_PROMPT] ? "prompt" : "completion";
        s = line_fail(lc, HL_ERR_FORMAT, "field \"%s\": ambiguous next to field \"%s\" (use one shape per line)",
                      has_text ? "text" : pc, has_scene ? "scene" : pc);
        goto done;
    }
    if (has_text) {
        const char *t;
        s = get_string(lc, v, count, K_TEXT, "a text example needs \"text\"", &t);
        if (s == HL_OK) s = add_text(x, tok, lc, t);
    } else if (has_pc) {
        const char *p, *c;
        const char *shape = "a prompt example needs \"prompt\" and \"completion\"";
        s = get_string(lc, v, count, K_PROMPT, shape, &p);
        if (s == HL_OK) s = get_string(lc, v, count, K_COMPLETION, shape, &c);
        if (s == HL_OK) s = add_prompt(x, tok, lc, p, c);
    } else if (has_scene) {
        /* Say "no lexicon" first: it concerns every scene line, not this one. */
        if (!params->scene_format) {
            s = line_fail(lc, HL_ERR_INVALID_ARG, "scene examples need a lexicon (--lexicon)");
            goto done;
        }
        const char *f[4];
        const char *shape = "a scene example needs \"scene\", \"form\", \"register\" and \"output\"";
        for (int i = 0; i < 4 && s == HL_OK; i++) s = get_string(lc, v, count, K_SCENE + i, shape, &f[i]);
        if (s == HL_OK) s = add_scene(x, tok, params, lc, f);
    } else {
        s = line_fail(lc, HL_ERR_FORMAT, "field \"text\": missing (expected \"text\", \"prompt\"+\"completion\" "
                                         "or \"scene\"+\"form\"+\"register\"+\"output\")");
    }
done:
    cJSON_Delete(root);
    return s;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Splits data into lines and parses each into x. */
static hl_status parse_all(examples *x, const char *data, size_t size, const char *name, const hl_tokenizer *tok,
                           const hl_dataset_params *params, hl_error *err) {
    line_ctx lc = {name, 0, err};
    char *buf = NULL;
    size_t buf_cap = 0;
    hl_status s = HL_OK;
    size_t pos = 0;
    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* editors' UTF-8 BOM */
    while (pos < size) {
        lc.line++;
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - p) : size - pos;
        pos += n + (nl != NULL);
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n > HL_DATASET_MAX_LINE) {
            s = line_fail(&lc, HL_ERR_LIMIT, "line of %zu bytes exceeds the %u-byte limit", n, HL_DATASET_MAX_LINE);
            break;
        }
        if (is_blank(p, n)) continue;
        const char *z = memchr(p, 0, n);
        if (z) {
            s = line_fail(&lc, HL_ERR_FORMAT, "invalid JSON: NUL byte at column %zu", (size_t)(z - p) + 1);
            break;
        }
        /* cJSON wants a NUL-terminated string: copy the line. */
        if (!grow((void **)&buf, &buf_cap, n + 1, 1)) {
            s = line_fail(&lc, HL_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(buf, p, n);
        buf[n] = 0;
        s = parse_line(x, tok, params, &lc, buf, n);
        if (s != HL_OK) break;
    }
    hl_free(buf);
    if (s == HL_OK && x->n_ex == 0) {
        if (lc.line == 0)
            s = hl_fail(err, HL_ERR_FORMAT, "%s: no examples: the file is empty", name);
        else
            s = hl_fail(err, HL_ERR_FORMAT, "%s: no examples: all %lld lines are blank", name, lc.line);
    }
    return s;
}

/* ------------------------------------------------------------ rows */

typedef struct rows {
    int32_t *tok;
    uint8_t *mask;
    int32_t *pos;             /* document packing only */
    int64_t n;
    int64_t n_tokens, n_loss, n_truncated;
} rows;

/* Writes one row from a token/flag run (len tokens, maybe more than ctx+1:
 * only the first ctx+1 are used); keeps it only if some target counts. */
static void put_row(rows *r, int32_t ctx, int32_t pad, const int32_t *t, const uint8_t *f, size_t len) {
    size_t w = (size_t)ctx + 1, used = len < w ? len : w;
    int32_t *rt = r->tok + (size_t)r->n * w;
    uint8_t *rm = r->mask + (size_t)r->n * (size_t)ctx;
    int64_t loss = 0;
    memcpy(rt, t, used * sizeof *t);
    for (size_t j = used; j < w; j++) rt[j] = pad;
    for (size_t j = 0; j < (size_t)ctx; j++) {
        rm[j] = j + 1 < used ? f[j + 1] : 0;
        loss += rm[j];
    }
    if (!loss) return; /* trains nothing: drop */
    r->n++;
    r->n_tokens += (int64_t)used - 1;
    r->n_loss += loss;
}

static void rows_free(rows *r) {
    hl_free(r->tok);
    hl_free(r->mask);
    hl_free(r->pos);
    memset(r, 0, sizeof *r);
}

/* The leftmost of n rows (a max tree over their free slots, `size` leaves)
 * with at least need free slots; rows not opened yet are empty, so there is
 * always one while n covers every example. */
static size_t first_fit(const int32_t *tree, size_t size, int32_t need) {
    size_t i = 1;
    while (i < size) i = tree[2 * i] >= need ? 2 * i : 2 * i + 1;
    return i - size;
}

static void tree_set(int32_t *tree, size_t size, size_t leaf, int32_t v) {
    size_t i = leaf + size;
    tree[i] = v;
    for (i /= 2; i >= 1; i /= 2) tree[i] = tree[2 * i] > tree[2 * i + 1] ? tree[2 * i] : tree[2 * i + 1];
}

/* Document packing (dataset.h): the selected examples that train something,
 * in a seeded shuffled order, each cut to ctx+1 tokens, placed whole into the
 * first row with room (first fit). A document of len tokens takes len slots
 * of a row's ctx+1; its positions count from 0; padding after the last
 * document is one more document of EOS with mask 0. */
static hl_status build_doc_rows(const examples *x, const uint8_t *sel, uint8_t want, const hl_dataset_params *params,
                                int32_t pad, const char *name, rows *r, hl_error *err) {
    const size_t ctx = (size_t)params->ctx, w = ctx + 1;
    size_t n = 0;
    for (size_t e = 0; e < x->n_ex; e++) n += sel[e] == want;
    if (n == 0) return HL_OK;
    size_t size = 1;
    while (size < n) size *= 2;
    size_t *order = hl_malloc_array(n, sizeof *order);
    size_t *row_of = hl_malloc_array(n, sizeof *row_of), *slot_of = hl_malloc_array(n, sizeof *slot_of);
    int32_t *tree = hl_malloc_array(2 * size, sizeof *tree);
    hl_status s = HL_OK;
    size_t n_rows = 0;
    if (!order || !row_of || !slot_of || !tree) goto oom;
    /* The documents that train something, shuffled with their own seeded stream. */
    size_t k = 0;
    for (size_t e = 0; e < x->n_ex; e++) {
        if (sel[e] != want) continue;
        size_t a = x->start[e], len = x->start[e + 1] - a;
        if (len > w) {
            r->n_truncated++;
            len = w;
        }
        int any = 0;
        for (size_t j = 1; j < len && !any; j++) any = x->flag[a + j] != 0;
        if (any) order[k++] = e;
    }
    hl_rng rng;
    hl_rng_seed(&rng, params->seed ^ PACK_SALT ^ ((uint64_t)want * EPOCH_MUL));
    for (size_t i = k; i > 1; i--) {
        size_t j = (size_t)hl_rng_below(&rng, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < 2 * size; i++) tree[i] = i >= size + k ? -1 : (int32_t)w; /* leaves past k never open */
    for (size_t i = size - 1; i >= 1; i--) tree[i] = tree[2 * i] > tree[2 * i + 1] ? tree[2 * i] : tree[2 * i + 1];
    for (size_t i = 0; i < k; i++) {
        size_t e = order[i], len = x->start[e + 1] - x->start[e];
        if (len > w) len = w;
        size_t row = first_fit(tree, size, (int32_t)len);
        int32_t free_slots = tree[row + size];
        row_of[i] = row;
        slot_of[i] = w - (size_t)free_slots;
        tree_set(tree, size, row, free_slots - (int32_t)len);
        if (row + 1 > n_rows) n_rows = row + 1;
    }
    if (n_rows == 0) goto done;
    size_t nt, nm;
    if (!hl_mul_size(n_rows, w, &nt) || !hl_mul_size(nt, sizeof(int32_t), &nt) || !hl_mul_size(n_rows, ctx, &nm)) {
        s = hl_fail(err, HL_ERR_LIMIT, "%s: %zu rows of %zu tokens do not fit in memory", name, n_rows, w);
        goto done;
    }
    r->tok = hl_malloc(nt);
    r->mask = hl_calloc(nm, 1);
    r->pos = hl_malloc_array(nm, sizeof *r->pos);
    if (!r->tok || !r->mask || !r->pos) goto oom;
    for (size_t j = 0; j < n_rows * w; j++) r->tok[j] = pad;
    for (size_t i = 0; i < k; i++) {
        size_t e = order[i], a = x->start[e], len = x->start[e + 1] - a, o = slot_of[i];
        if (len > w) len = w;
        int32_t *rt = r->tok + row_of[i] * w;
        uint8_t *rm = r->mask + row_of[i] * ctx;
        int32_t *rp = r->pos + row_of[i] * ctx;
        memcpy(rt + o, x->tok + a, len * sizeof *rt);
        for (size_t j = 0; j + 1 < len; j++) { /* input o+j predicts o+j+1, inside the document */
            rm[o + j] = x->flag[a + j + 1];
            r->n_loss += rm[o + j];
        }
        for (size_t j = 0; j < len && o + j < ctx; j++) rp[o + j] = (int32_t)j;
        r->n_tokens += (int64_t)len - 1;
    }
    for (size_t row = 0; row < n_rows; row++) { /* the padding after the last document: a document of its own */
        size_t used = w - (size_t)tree[row + size];
        for (size_t j = used; j < ctx; j++) r->pos[row * ctx + j] = (int32_t)(j - used);
    }
    r->n = (int64_t)n_rows;
    goto done;
oom:
    s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory packing %zu examples into rows of %zu tokens", name, n, w);
done:
    if (s != HL_OK) rows_free(r);
    hl_free(order);
    hl_free(row_of);
    hl_free(slot_of);
    hl_free(tree);
    return s;
}

/* Builds the rows of the examples with sel[e] == want. */
static hl_status build_rows(const examples *x, const uint8_t *sel, uint8_t want, const hl_dataset_params *params,
                            int32_t pad, const char *name, rows *r, hl_error *err) {
    size_t ctx = (size_t)params->ctx, w = ctx + 1, n_rows = 0, total = 0;
    memset(r, 0, sizeof *r);
    if (params->pack == HL_PACK_DOCS) return build_doc_rows(x, sel, want, params, pad, name, r, err);
    for (size_t e = 0; e < x->n_ex; e++) {
        if (sel[e] != want) continue;
        size_t len = x->start[e + 1] - x->start[e];
        total += len; /* cannot overflow: bounded by x->n_tok */
        n_rows++;
        if (len > w) r->n_truncated += params->pack == HL_PACK_NONE;
    }
    if (params->pack == HL_PACK_STREAM) n_rows = total > 1 ? (total - 1 + ctx - 1) / ctx : 0; /* ceil(targets / ctx) */
    if (n_rows == 0) return HL_OK;
    size_t nt, nm;
    if (!hl_mul_size(n_rows, w, &nt) || !hl_mul_size(nt, sizeof(int32_t), &nt) || !hl_mul_size(n_rows, ctx, &nm))
        return hl_fail(err, HL_ERR_LIMIT, "%s: %zu rows of %zu tokens do not fit in memory", name, n_rows, w);
    r->tok = hl_malloc(nt);
    r->mask = hl_malloc(nm ? nm : 1);
    int32_t *st = NULL;
    uint8_t *sf = NULL;
    if (!r->tok || !r->mask) goto oom;
    if (params->pack == HL_PACK_NONE) {
        for (size_t e = 0; e < x->n_ex; e++) {
            if (sel[e] != want) continue;
            size_t a = x->start[e];
            put_row(r, params->ctx, pad, x->tok + a, x->flag + a, x->start[e + 1] - a);
        }
        return HL_OK;
    }
    /* The stream of the selected examples; the whole buffer when all are selected. */
    const int32_t *S = x->tok;
    const uint8_t *F = x->flag;
    if (total != x->n_tok) {
        st = hl_malloc_array(total, sizeof *st);
        sf = hl_malloc(total);
        if (!st || !sf) goto oom;
        size_t o = 0;
        for (size_t e = 0; e < x->n_ex; e++) {
            if (sel[e] != want) continue;
            size_t a = x->start[e], len = x->start[e + 1] - a;
            memcpy(st + o, x->tok + a, len * sizeof *st);
            memcpy(sf + o, x->flag + a, len);
            o += len;
        }
        S = st;
        F = sf;
    }
    for (size_t k = 0; k < n_rows; k++) put_row(r, params->ctx, pad, S + k * ctx, F + k * ctx, total - k * ctx);
    hl_free(st);
    hl_free(sf);
    return HL_OK;
oom:
    hl_free(st);
    hl_free(sf);
    rows_free(r);
    return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %zu rows of %zu tokens", name, n_rows, w);
}

/* ------------------------------------------------------------ load */

/* Marks the validation examples: the first n_val of a seeded permutation. */
static hl_status split(size_t n, float fraction, uint64_t seed, uint8_t **is_val, size_t *n_val, hl_error *err,
                       const char *name) {
    *is_val = hl_calloc(n, 1);
    if (!*is_val) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    size_t k = 0;
    if (fraction > 0 && n >= 2) {
        k = (size_t)floor((double)fraction * (double)n);
        if (k < 1) k = 1;
        if (k > n - 1) k = n - 1; /* keep a training example (fraction <= 0.5 already ensures it) */
        size_t *idx = hl_malloc_array(n, sizeof *idx);
        if (!idx) {
            hl_free(*is_val);
            *is_val = NULL;
            return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
        }
        for (size_t i = 0; i < n; i++) idx[i] = i;
        hl_rng r;
        hl_rng_seed(&r, seed ^ SPLIT_SALT);
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)hl_rng_below(&r, i + 1);
            size_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (size_t i = 0; i < k; i++) (*is_val)[idx[i]] = 1;
        hl_free(idx);
    }
    *n_val = k;
    return HL_OK;
}

hl_status hl_dataset_load_memory(const char *data, size_t size, const char *name, const hl_tokenizer *tok,
                                 const hl_dataset_params *params, hl_dataset **out, hl_error *err) {
    if (!name) name = "<memory>";
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: out is NULL", name);
    *out = NULL;
    if (!tok || !params || (!data && size))
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: NULL tokenizer, params or data", name);
    if (params->ctx < 1 || params->ctx > HL_DATASET_MAX_CTX)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: ctx %ld out of range 1..%d", name, (long)params->ctx,
                       HL_DATASET_MAX_CTX);
    if (params->pack != HL_PACK_NONE && params->pack != HL_PACK_STREAM && params->pack != HL_PACK_DOCS)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: pack mode %d is not none (0), stream (1) or docs (2)", name,
                       (int)params->pack);
    if (!(params->val_fraction >= 0.0f && params->val_fraction <= 0.5f)) /* also refuses NaN */
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: val_fraction %g out of range 0..0.5", name,
                       (double)params->val_fraction);
    if (size > HL_DATASET_MAX_FILE)
        return hl_fail(err, HL_ERR_LIMIT, "%s: %zu bytes exceeds the %u-byte dataset limit", name, size,
                       HL_DATASET_MAX_FILE);

    examples x = {0};
    uint8_t *is_val = NULL;
    rows tr = {0}, va = {0};
    hl_dataset *ds = NULL;
    size_t n_val = 0;
    int32_t pad = hl_tokenizer_eos(tok);
    hl_status s = parse_all(&x, data, size, name, tok, params, err);
    if (s == HL_OK) s = split(x.n_ex, params->val_fraction, params->seed, &is_val, &n_val, err, name);
    if (s == HL_OK) s = build_rows(&x, is_val, 0, params, pad, name, &tr, err);
    if (s == HL_OK) s = build_rows(&x, is_val, 1, params, pad, name, &va, err);
    if (s == HL_OK && tr.n == 0)
        s = hl_fail(err, HL_ERR_FORMAT, "%s: no training row has a loss target (prompts longer than ctx %ld?)", name,
                    (long)params->ctx);
    if (s == HL_OK) {
        ds = hl_calloc(1, sizeof *ds);
        perm_cache *pc = hl_calloc(1, sizeof *pc);
        int64_t *perm = hl_malloc_array((size_t)tr.n, sizeof *perm);
        if (!ds || !pc || !perm) {
            hl_free(ds);
            hl_free(pc);
            hl_free(perm);
            ds = NULL;
            s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
        } else {
            pc->perm = perm;
            ds->cache = pc;
        }
    }
    if (s != HL_OK) {
        examples_free(&x);
        hl_free(is_val);
        rows_free(&tr);
        rows_free(&va);
        return s;
    }
    ds->ctx = params->ctx;
    ds->pad = pad;
    ds->seed = params->seed;
    ds->train_tok = tr.tok;
    ds->train_mask = tr.mask;
    ds->train_pos = tr.pos;
    ds->val_tok = va.tok;
    ds->val_mask = va.mask;
    ds->val_pos = va.pos;
    ds->stats.n_examples = (int64_t)x.n_ex;
    ds->stats.n_val_examples = (int64_t)n_val;
    ds->stats.n_train_examples = (int64_t)(x.n_ex - n_val);
    ds->stats.n_train_rows = tr.n;
    ds->stats.n_val_rows = va.n;
    ds->stats.n_tokens = tr.n_tokens;
    ds->stats.n_loss_tokens = tr.n_loss;
    ds->stats.n_truncated = tr.n_truncated + va.n_truncated;
    for (size_t e = 0; e < x.n_ex; e++) {
        int64_t len = (int64_t)(x.start[e + 1] - x.start[e]);
        if (len > ds->stats.max_example_tokens) ds->stats.max_example_tokens = len;
    }
    examples_free(&x);
    hl_free(is_val);
    *out = ds;
    return HL_OK;
}

hl_status hl_dataset_load(const char *path, const hl_tokenizer *tok, const hl_dataset_params *params,
                          hl_dataset **out, hl_error *err) {
    if (out) *out = NULL;
    if (!path) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_dataset_load: path is NULL");
    char *data = NULL;
    size_t size = 0;
    hl_status s = hl_read_file(path, HL_DATASET_MAX_FILE, &data, &size, err);
    if (s != HL_OK) return s;
    s = hl_dataset_load_memory(data, size, path, tok, params, out, err);
    hl_free(data);
    return s;
}

void hl_dataset_free(hl_dataset *ds) {
    if (!ds) return;
    hl_free(ds->train_tok);
    hl_free(ds->train_mask);
    hl_free(ds->val_tok);
    hl_free(ds->val_mask);
    hl_free(ds->train_pos);
    hl_free(ds->val_pos);
    if (ds->cache) hl_free(ds->cache->perm);
    hl_free(ds->cache);
    hl_free(ds);
}

const hl_dataset_stats *hl_dataset_get_stats(const hl_dataset *ds) { return ds ? &ds->stats : NULL; }

/* ------------------------------------------------------------ batches */

static void epoch_perm(const hl_dataset *ds, uint64_t epoch) {
    perm_cache *pc = ds->cache;
    if (pc->valid && pc->epoch == epoch) return;
    int64_t n = ds->stats.n_train_rows;
    for (int64_t i = 0; i < n; i++) pc->perm[i] = i;
    hl_rng r;
    hl_rng_seed(&r, ds->seed ^ (EPOCH_MUL * (epoch + 1)));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)hl_rng_below(&r, (uint64_t)i + 1);
        int64_t t = pc->perm[i];
        pc->perm[i] = pc->perm[j];
        pc->perm[j] = t;
    }
    pc->epoch = epoch;
    pc->valid = 1;
}

/* Row i's positions into pos (ctx entries): stored for document packing, else 0..ctx-1. */
static void copy_pos(const int32_t *stored, size_t i, size_t c, int32_t *pos) {
    if (!pos) return;
    if (stored) memcpy(pos, stored + i * c, c * sizeof *pos);
    else
        for (size_t j = 0; j < c; j++) pos[j] = (int32_t)j;
}

void hl_dataset_next_batch(const hl_dataset *ds, hl_data_cursor *cursor, int32_t B, int32_t *tokens,
                           uint8_t *mask, int32_t *pos) {
    if (!ds || !cursor || B <= 0 || !tokens || !mask) return;
    size_t w = (size_t)ds->ctx + 1, c = (size_t)ds->ctx;
    uint64_t n = (uint64_t)ds->stats.n_train_rows;
    for (int32_t b = 0; b < B; b++) {
        if (cursor->index >= n) { /* epoch done: the next one reshuffles */
            cursor->epoch++;
            cursor->index = 0;
        }
        epoch_perm(ds, cursor->epoch);
        size_t row = (size_t)ds->cache->perm[cursor->index++];
        memcpy(tokens + (size_t)b * w, ds->train_tok + row * w, w * sizeof *tokens);
        memcpy(mask + (size_t)b * c, ds->train_mask + row * c, c);
        copy_pos(ds->train_pos, row, c, pos ? pos + (size_t)b * c : NULL);
    }
}

int64_t hl_dataset_n_val_rows(const hl_dataset *ds) { return ds ? ds->stats.n_val_rows : 0; }
int64_t hl_dataset_n_train_rows(const hl_dataset *ds) { return ds ? ds->stats.n_train_rows : 0; }
int32_t hl_dataset_ctx(const hl_dataset *ds) { return ds ? ds->ctx : 0; }

void hl_dataset_val_row(const hl_dataset *ds, int64_t i, int32_t *tokens, uint8_t *mask, int32_t *pos) {
    if (!ds || !tokens || !mask || ds->ctx < 1) return;
    size_t w = (size_t)ds->ctx + 1, c = (size_t)ds->ctx;
    if (i < 0 || i >= ds->stats.n_val_rows) {
        for (size_t j = 0; j < w; j++) tokens[j] = ds->pad;
        memset(mask, 0, c);
        copy_pos(NULL, 0, c, pos);
        return;
    }
    memcpy(tokens, ds->val_tok + (size_t)i * w, w * sizeof *tokens);
    memcpy(mask, ds->val_mask + (size_t)i * c, c);
    copy_pos(ds->val_pos, (size_t)i, c, pos);
}
