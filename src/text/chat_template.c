/* chat_template.c: the chat template families of chat_template.h, their
 * detection from a template's text, and their formatting as text and as
 * token ids. One writer per family emits the prompt as a sequence of text
 * runs and markers; formatting joins them, encoding turns each marker into
 * its id and each text run into ids with special-token parsing off. It
 * interprets no Jinja. */
#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdint.h>
#include <string.h>

/* Marker texts, by kind. */
enum { MK_BOS, MK_EOS, MK_TURN_BEGIN, MK_HEADER_END, MK_END_OF_TURN, MK_COUNT };

static const char *const family_names[HL_CHAT_FAMILY_COUNT] = {"plain", "chatml", "llama3", "llama2"};

/* marker_text[family][kind]: NULL where the family has no such marker. */
static const char *const marker_text[HL_CHAT_FAMILY_COUNT][MK_COUNT] = {
    [HL_CHAT_PLAIN] = {NULL, NULL, NULL, NULL, NULL},
    [HL_CHAT_CHATML] = {NULL, NULL, "<|im_start|>", NULL, "<|im_end|>"},
    [HL_CHAT_LLAMA3] = {"<|begin_of_text|>", NULL, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
    [HL_CHAT_LLAMA2] = {"<s>", "</s>", NULL, NULL, NULL},
};

const char *hl_chat_family_name(hl_chat_family f) {
    return (unsigned)f < HL_CHAT_FAMILY_COUNT ? family_names[f] : NULL;
}

int hl_chat_family_from_name(const char *name) {
    for (int f = 0; name && f < HL_CHAT_FAMILY_COUNT; f++)
        if (!strcmp(name, family_names[f])) return f;
    return -1;
}

static int contains(const char *text, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (text[i] == needle[0] && !memcmp(text + i, needle, n)) return 1;
    return 0;
}

hl_chat_family hl_chat_detect(const char *text, size_t len) {
    if (!text || !len) return HL_CHAT_PLAIN;
    if (contains(text, len, "<|im_start|>")) return HL_CHAT_CHATML;
    if (contains(text, len, "<|start_header_id|>") && contains(text, len, "<|eot_id|>")) return HL_CHAT_LLAMA3;
    if (contains(text, len, "[INST]")) return HL_CHAT_LLAMA2;
    return HL_CHAT_PLAIN;
}

hl_chat_family hl_chat_detect_gguf(const hl_gguf *g, int *has_template) {
    hl_gguf_str s = {0};
    hl_error err = {0};
    int has = g && hl_gguf_find_key(g, "tokenizer.chat_template") >= 0 &&
              hl_gguf_get_str(g, "tokenizer.chat_template", &s, &err) == HL_OK && s.len > 0;
    if (has_template) *has_template = has;
    return has ? hl_chat_detect(s.data, (size_t)s.len) : HL_CHAT_PLAIN;
}

hl_status hl_chat_template_init(hl_chat_family f, const hl_tokenizer *tok, hl_chat_template *out, hl_error *err) {
    if ((unsigned)f >= HL_CHAT_FAMILY_COUNT || !tok || !out)
        return hl_fail(err, HL_ERR_INVALID_ARG, "chat template: bad arguments");
    int32_t id[MK_COUNT];
    for (int k = 0; k < MK_COUNT; k++) {
        const char *m = marker_text[f][k];
        id[k] = m ? hl_tokenizer_find(tok, m, strlen(m)) : -1;
        if (m && id[k] < 0)
            return hl_fail(err, HL_ERR_UNSUPPORTED, "chat template %s: the vocabulary has no token \"%s\"",
                           family_names[f], m);
    }
    *out = (hl_chat_template){.family = f,
                              .add_bos = (f == HL_CHAT_PLAIN || f == HL_CHAT_CHATML) && hl_tokenizer_add_bos(tok),
                              .bos = f == HL_CHAT_LLAMA3 || f == HL_CHAT_LLAMA2 ? id[MK_BOS] : hl_tokenizer_bos(tok),
                              .eos = f == HL_CHAT_LLAMA2 ? id[MK_EOS] : hl_tokenizer_eos(tok),
                              .turn_begin = id[MK_TURN_BEGIN],
                              .header_end = id[MK_HEADER_END],
                              .end_of_turn = f == HL_CHAT_LLAMA2 ? id[MK_EOS] : id[MK_END_OF_TURN]};
    return HL_OK;
}

/* ------------------------------------------------------------ writers */

/* Where a writer's runs and markers go. put returns 0 after failing (err set). */
typedef struct sink {
    int (*put)(struct sink *k, const char *s, size_t n, int marker); /* marker: MK_* or -1 for text */
    const hl_chat_template *t;
    hl_error *err;
} sink;

static int text(sink *k, const char *s, size_t n) { return n == 0 || k->put(k, s, n, -1); }
static int str(sink *k, const char *s) { return text(k, s, strlen(s)); }
static int mark(sink *k, int kind) {
    const char *m = marker_text[k->t->family][kind];
    return k->put(k, m, strlen(m), kind);
}

/* Python's str.strip() over ASCII whitespace (Jinja's trim): *s advanced, the length returned. */
static size_t trim(const char **s) {
    static const char ws[] = " \t\n\v\f\r\x1c\x1d\x1e\x1f";
    const char *p = *s;
    size_t n = strlen(p);
    while (n && memchr(ws, p[0], sizeof ws - 1)) p++, n--;
    while (n && memchr(ws, p[n - 1], sizeof ws - 1)) n--;
    *s = p;
    return n;
}

static int write_plain(sink *k, const hl_chat_message *m, int32_t n, int gen) {
    for (int32_t i = 0; i < n; i++)
        if (!str(k, m[i].role) || !str(k, ": ") || !str(k, m[i].content) || !str(k, "\n")) return 0;
    return !gen || str(k, "assistant:");
}

static int write_chatml(sink *k, const hl_chat_message *m, int32_t n, int gen) {
    for (int32_t i = 0; i < n; i++)
        if (!mark(k, MK_TURN_BEGIN) || !str(k, m[i].role) || !str(k, "\n") || !str(k, m[i].content) ||
            !mark(k, MK_END_OF_TURN) || !str(k, "\n"))
            return 0;
    return !gen || (mark(k, MK_TURN_BEGIN) && str(k, "assistant\n"));
}

static int write_llama3(sink *k, const hl_chat_message *m, int32_t n, int gen) {
    if (!mark(k, MK_BOS)) return 0;
    for (int32_t i = 0; i < n; i++) {
        const char *c = m[i].content;
        size_t cn = trim(&c);
        if (!mark(k, MK_TURN_BEGIN) || !str(k, m[i].role) || !mark(k, MK_HEADER_END) || !str(k, "\n\n") ||
            !text(k, c, cn) || !mark(k, MK_END_OF_TURN))
            return 0;
    }
    return !gen || (mark(k, MK_TURN_BEGIN) && str(k, "assistant") && mark(k, MK_HEADER_END) && str(k, "\n\n"));
}

/* One [INST] turn: the system messages sys[0..n_sys) then the user's text u
 * (NULL: none), the whole stripped as Llama-2's template strips it. */
static int llama2_inst(sink *k, const hl_chat_message *const *sys, int32_t n_sys, const char *u) {
    size_t len = 0;
    for (int32_t i = 0; i < n_sys; i++) len += strlen(sys[i]->content) + 20;
    len += u ? strlen(u) : 0;
    char *b = hl_malloc(len + 1), *w = b;
    if (!b) {
        hl_fail(k->err, HL_ERR_NOMEM, "chat template: out of memory");
        return 0;
    }
    for (int32_t i = 0; i < n_sys; i++) {
        size_t cn = strlen(sys[i]->content);
        memcpy(w, "<<SYS>>\n", 8), w += 8;
        memcpy(w, sys[i]->content, cn), w += cn;
        memcpy(w, "\n<</SYS>>\n\n", 11), w += 11;
    }
    if (u) memcpy(w, u, strlen(u)), w += strlen(u);
    *w = 0;
    const char *c = b;
    size_t cn = trim(&c);
    int ok = mark(k, MK_BOS) && str(k, "[INST] ") && text(k, c, cn) && str(k, " [/INST]");
    hl_free(b);
    return ok;
}

static int write_llama2(sink *k, const hl_chat_message *m, int32_t n, int gen) {
    (void)gen; /* the reply follows "[/INST]" directly */
    const hl_chat_message **sys = hl_malloc_array(n > 0 ? (size_t)n : 1, sizeof *sys);
    if (!sys) {
        hl_fail(k->err, HL_ERR_NOMEM, "chat template: out of memory");
        return 0;
    }
    int32_t n_sys = 0;
    int ok = 1;
    for (int32_t i = 0; ok && i < n; i++) {
        if (!strcmp(m[i].role, "system")) sys[n_sys++] = &m[i];
        else if (!strcmp(m[i].role, "assistant")) {
            const char *c = m[i].content;
            size_t cn = trim(&c);
            ok = str(k, " ") && text(k, c, cn) && str(k, " ") && mark(k, MK_EOS);
        } else {
            ok = llama2_inst(k, sys, n_sys, m[i].content);
            n_sys = 0;
        }
    }
    if (ok && n_sys) ok = llama2_inst(k, sys, n_sys, NULL);
    hl_free(sys);
    return ok;
}

static int write_prompt(sink *k, const hl_chat_message *m, int32_t n, int gen) {
    switch (k->t->family) {
    case HL_CHAT_CHATML: return write_chatml(k, m, n, gen);
    case HL_CHAT_LLAMA3: return write_llama3(k, m, n, gen);
    case HL_CHAT_LLAMA2: return write_llama2(k, m, n, gen);
    default: return write_plain(k, m, n, gen);
    }
}

static hl_status check_args(const hl_chat_template *t, const hl_chat_message *m, int32_t n, hl_error *err) {
    if (!t || (unsigned)t->family >= HL_CHAT_FAMILY_COUNT || n < 0 || (n && !m))
        return hl_fail(err, HL_ERR_INVALID_ARG, "chat template: bad arguments");
    for (int32_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return hl_fail(err, HL_ERR_INVALID_ARG, "chat template: message %d has no role or content", i);
    return HL_OK;
}

/* ------------------------------------------------------------ as text */

typedef struct text_sink {
    sink k;
    char *b;
    size_t len, cap;
} text_sink;

static int grow(void **b, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return 0;
        nc *= 2;
    }
    void *nb = hl_realloc(*b, nc * elem);
    if (!nb) return 0;
    *b = nb;
    *cap = nc;
    return 1;
}

static int text_put(sink *k, const char *s, size_t n, int marker) {
    (void)marker;
    text_sink *ts = (text_sink *)k;
    if (!grow((void **)&ts->b, &ts->cap, ts->len + n + 1, 1)) {
        hl_fail(k->err, HL_ERR_NOMEM, "chat template: out of memory");
        return 0;
    }
    memcpy(ts->b + ts->len, s, n);
    ts->len += n;
    ts->b[ts->len] = 0;
    return 1;
}

hl_status hl_chat_format(const hl_chat_template *t, const hl_chat_message *msgs, int32_t n, int add_generation_prompt,
                         char **out, size_t *len, hl_error *err) {
    *out = NULL;
    *len = 0;
    hl_status s = check_args(t, msgs, n, err);
    if (s != HL_OK) return s;
    hl_error local = {0};
    if (!err) err = &local;
    text_sink ts = {.k = {.put = text_put, .t = t, .err = err}};
    if (!text_put(&ts.k, "", 0, -1) || !write_prompt(&ts.k, msgs, n, add_generation_prompt)) {
        hl_free(ts.b);
        return err->status ? err->status : HL_ERR_NOMEM;
    }
    *out = ts.b;
    *len = ts.len;
    return HL_OK;
}

/* ------------------------------------------------------------ as ids */

typedef struct id_sink {
    sink k;
    const hl_tokenizer *tok;
    char *run; /* text since the last marker */
    size_t run_len, run_cap;
    int32_t *ids;
    size_t n, cap;
} id_sink;

static int add_ids(id_sink *is, const int32_t *ids, size_t n) {
    if (!n) return 1;
    if (!grow((void **)&is->ids, &is->cap, is->n + n, sizeof *is->ids)) {
        hl_fail(is->k.err, HL_ERR_NOMEM, "chat template: out of memory");
        return 0;
    }
    memcpy(is->ids + is->n, ids, n * sizeof *ids);
    is->n += n;
    return 1;
}

/* Encodes the pending text run with special-token parsing off. */
static int flush_run(id_sink *is) {
    if (!is->run_len) return 1;
    int32_t *ids = NULL;
    size_t n = 0;
    if (hl_tokenizer_encode_special(is->tok, is->run, is->run_len, 0, 0, 0, &ids, &n, is->k.err) != HL_OK) return 0;
    int ok = add_ids(is, ids, n);
    hl_free(ids);
    is->run_len = 0;
    return ok;
}

static int id_put(sink *k, const char *s, size_t n, int marker) {
    id_sink *is = (id_sink *)k;
    if (marker < 0) {
        if (!grow((void **)&is->run, &is->run_cap, is->run_len + n, 1)) {
            hl_fail(k->err, HL_ERR_NOMEM, "chat template: out of memory");
            return 0;
        }
        memcpy(is->run + is->run_len, s, n);
        is->run_len += n;
        return 1;
    }
    const hl_chat_template *t = k->t;
    int32_t id = marker == MK_BOS          ? t->bos
                 : marker == MK_EOS        ? t->eos
                 : marker == MK_TURN_BEGIN ? t->turn_begin
                 : marker == MK_HEADER_END ? t->header_end
                                           : t->end_of_turn;
    if (id < 0 || id >= hl_tokenizer_n_vocab(is->tok)) {
        hl_fail(k->err, HL_ERR_INVALID_ARG, "chat template %s: no id for \"%s\" (not bound to this vocabulary)",
                family_names[t->family], s);
        return 0;
    }
    return flush_run(is) && add_ids(is, &id, 1);
}

hl_status hl_chat_encode(const hl_chat_template *t, const hl_tokenizer *tok, const hl_chat_message *msgs, int32_t n,
                         int add_generation_prompt, int32_t **ids, size_t *n_ids, hl_error *err) {
    *ids = NULL;
    *n_ids = 0;
    hl_status s = check_args(t, msgs, n, err);
    if (s == HL_OK && !tok) s = hl_fail(err, HL_ERR_INVALID_ARG, "chat template: no tokenizer");
    if (s != HL_OK) return s;
    hl_error local = {0};
    if (!err) err = &local;
    id_sink is = {.k = {.put = id_put, .t = t, .err = err}, .tok = tok};
    int ok = (!t->add_bos || t->bos < 0 || add_ids(&is, &t->bos, 1)) &&
             write_prompt(&is.k, msgs, n, add_generation_prompt) && flush_run(&is);
    hl_free(is.run);
    if (!ok) {
        hl_free(is.ids);
        return err->status ? err->status : HL_ERR_NOMEM;
    }
    *ids = is.ids;
    *n_ids = is.n;
    return HL_OK;
}
