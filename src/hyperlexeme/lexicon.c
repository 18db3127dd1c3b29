/* lexicon.c: loading and validating a hyperlexeme lexicon, composing the
 * frozen embeddings, and the extended model/tokenizer view (see lexicon.h). */
#include "hyperlexeme/lexicon.h"
#include "hyperlexeme/compose.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/hashset.h"
#include "util/json_nul.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LEXICON_MAX_FILE (64u << 20)
#define N_CONTROLS (HL_FORM_COUNT + HL_REGISTER_COUNT + 1)

static const char *form_names[HL_FORM_COUNT] = {"text", "symbols", "formula", "dialogue", "report"};
static const char *register_names[HL_REGISTER_COUNT] = {"poetic", "logical", "technical"};
/* Controls: lexeme and the plain word it is composed from. */
static const char *control_lexemes[N_CONTROLS] = {
    "⟨form:text⟩",       "⟨form:symbols⟩",   "⟨form:formula⟩",        "⟨form:dialogue⟩", "⟨form:report⟩",
    "⟨register:poetic⟩", "⟨register:logical⟩", "⟨register:technical⟩", "⟨sep⟩"};
static const char *control_words[N_CONTROLS] = {"text",   "symbols", "formula",   "dialogue", "report",
                                                "poetic", "logical", "technical", "then"};

typedef struct entry {
    char *lexeme;
    char **parts;
    float *weights;  /* [n_parts] or NULL */
    int32_t n_parts;
    char *facets;    /* "key=value\n..." */
    char **facet_values; /* [n_facets]: the values, composed in under a +facets rule */
    char **facet_keys;   /* [n_facets]: their keys (the slots rule transforms a value by its key) */
    int32_t n_facets;
    int is_vector;
} entry;

struct hl_lexicon {
    const hl_model *base;
    hl_model *view;        /* base + extra rows, borrowed weights */
    hl_tokenizer *tok;     /* owned by view */
    int32_t n;             /* lexicon entries (controls excluded) */
    entry *e;
    char *source;          /* the JSONL text, carried into adapters */
    int rule;              /* composition rule (hyperlexeme/compose.h) */
    int32_t *slot_code;    /* (HL_LEXICON_MAX_PARTS, C) part transforms under slots, made on first use */
    int32_t n_parts_total, n_parts_bytes; /* parts (and facet words) composed; those that are byte fallback only */
    float *embd, *out;     /* (N_CONTROLS + n, C) */
    hl_hashset lexemes;    /* every entry's lexeme, added in file order: duplicates and lookups in O(1) */
};

const char *hl_form_name(int form) { return form >= 0 && form < HL_FORM_COUNT ? form_names[form] : "?"; }
const char *hl_register_name(int reg) { return reg >= 0 && reg < HL_REGISTER_COUNT ? register_names[reg] : "?"; }
int hl_form_from_name(const char *name) {
    for (int i = 0; i < HL_FORM_COUNT; i++)
        if (!strcmp(name, form_names[i])) return i;
    return -1;
}
int hl_register_from_name(const char *name) {
    for (int i = 0; i < HL_REGISTER_COUNT; i++)
        if (!strcmp(name, register_names[i])) return i;
    return -1;
}

static void free_entry(entry *e) {
    hl_free(e->lexeme);
    for (int32_t p = 0; p < e->n_parts; p++) hl_free(e->parts[p]);
    hl_free(e->parts);
    hl_free(e->weights);
    hl_free(e->facets);
    for (int32_t f = 0; f < e->n_facets; f++) {
        hl_free(e->facet_values[f]);
        hl_free(e->facet_keys[f]);
    }
    hl_free(e->facet_values);
    hl_free(e->facet_keys);
}

void hl_lexicon_free(hl_lexicon *lex) {
    if (!lex) return;
    for (int32_t i = 0; i < lex->n; i++) free_entry(&lex->e[i]);
    hl_free(lex->e);
    hl_free(lex->source);
    hl_free(lex->embd);
    hl_free(lex->out);
    hl_free(lex->slot_code);
    hl_hashset_free(&lex->lexemes);
    if (lex->view) hl_model_free(lex->view); /* frees the extended tokenizer */
    else hl_tokenizer_free(lex->tok);
    hl_free(lex);
}

const hl_model *hl_lexicon_model(const hl_lexicon *lex) { return lex->view; }
const hl_tokenizer *hl_lexicon_tokenizer(const hl_lexicon *lex) { return lex->tok; }
int32_t hl_lexicon_n_entries(const hl_lexicon *lex) { return lex->n; }
const char *hl_lexicon_lexeme(const hl_lexicon *lex, int32_t i) { return lex->e[i].lexeme; }
int32_t hl_lexicon_token(const hl_lexicon *lex, int32_t i) { return lex->base->n_vocab_base + N_CONTROLS + i; }
int32_t hl_lexicon_n_parts(const hl_lexicon *lex, int32_t i) { return lex->e[i].n_parts; }
const char *hl_lexicon_part(const hl_lexicon *lex, int32_t i, int32_t p) { return lex->e[i].parts[p]; }
const char *hl_lexicon_facets(const hl_lexicon *lex, int32_t i) { return lex->e[i].facets ? lex->e[i].facets : ""; }
const float *hl_lexicon_embedding(const hl_lexicon *lex, int32_t i) {
    return lex->embd + (int64_t)(N_CONTROLS + i) * lex->base->cfg.dim;
}
int32_t hl_lexicon_form_token(const hl_lexicon *lex, int form) { return lex->base->n_vocab_base + form; }
int32_t hl_lexicon_register_token(const hl_lexicon *lex, int reg) {
    return lex->base->n_vocab_base + HL_FORM_COUNT + reg;
}
int32_t hl_lexicon_sep_token(const hl_lexicon *lex) { return lex->base->n_vocab_base + N_CONTROLS - 1; }

int32_t hl_lexicon_find(const hl_lexicon *lex, const char *lexeme) {
    return (int32_t)hl_hashset_find(&lex->lexemes, lexeme, strlen(lexeme));
}

static int has_space(const char *s) {
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f') return 1;
    return 0;
}

/* Mean over the tokens of `word` (encoded standalone) of rows of `table` (V, C), added with weight w into acc.
 * *bytes_only is set when every token is a byte-fallback piece (other than the dummy-prefix space).
 * Byte-level BPE has no dummy prefix: the word is encoded after one space, as it stands inside a
 * sentence ("Ġcat"), which is what SentencePiece's prefix gives; its "byte pieces" are tokens of
 * one byte that is part of a multi-byte character (a word the vocabulary spells byte by byte).
 * table: 0 the input embeddings, 1 the LM head's rows (either may be quantized; row: C floats of scratch). */
hl_status hl_lexicon_word_ids(const hl_model *m, const char *word, int32_t **ids, size_t *n, hl_error *err) {
    const hl_tokenizer *tok = m->tok;
    const int byte_level = hl_tokenizer_is_byte_level(tok);
    size_t tlen = strlen(word);
    char *spaced = byte_level ? hl_malloc(tlen + 2) : NULL;
    if (byte_level && !spaced) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    if (spaced) {
        spaced[0] = ' ';
        memcpy(spaced + 1, word, tlen + 1);
    }
    hl_status s = hl_tokenizer_encode(tok, spaced ? spaced : word, tlen + (spaced ? 1 : 0), 0, 0, ids, n, err);
    hl_free(spaced);
    return s;
}

static hl_status add_word(const hl_model *m, int table, float *row, int64_t C, const char *word, double w,
                          double *acc, int *bytes_only, const char *where, hl_error *err) {
    const hl_tokenizer *tok = m->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    const int byte_level = hl_tokenizer_is_byte_level(tok);
    hl_status s = hl_lexicon_word_ids(m, word, &ids, &n, err);
    char shown[HL_ESCAPE_NAME];
    if (s != HL_OK) {
        hl_error_prefix(err, "%s: part \"%s\"", where, hl_escape_str(word, shown, sizeof shown));
        return s;
    }
    if (n == 0) {
        hl_free(ids);
        return hl_fail(err, HL_ERR_FORMAT, "%s: part \"%s\" encodes to no tokens", where,
                       hl_escape_str(word, shown, sizeof shown));
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] == hl_tokenizer_unk(tok)) {
            hl_free(ids);
            return hl_fail(err, HL_ERR_FORMAT, "%s: part \"%s\" does not tokenize in the base vocabulary (<unk>)",
                           where, hl_escape_str(word, shown, sizeof shown));
        }
    int bytes = 0, others = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece = hl_tokenizer_piece(tok, ids[i]);
        if (byte_level) {
            char b[HL_TOKENIZER_MAX_PIECE];
            size_t k = hl_tokenizer_decode(tok, -1, ids[i], b, sizeof b);
            if (k == 1 && (uint8_t)b[0] >= 0x80) bytes++;
            else if (!(k == 1 && b[0] == ' ')) others++; /* a lone space token is only the prefix */
        } else if (hl_tokenizer_type(tok, ids[i]) == HL_TOKEN_BYTE) bytes++;
        else if (!piece || strcmp(piece, "\xe2\x96\x81")) others++; /* a lone "▁" is only the prefix space */
    }
    if (bytes_only) *bytes_only = bytes > 0 && others == 0;
    for (size_t i = 0; i < n; i++) {
        const float *r = table ? hl_model_output_row(m, ids[i], row) : hl_model_embd_row(m, ids[i], row);
        for (int64_t c = 0; c < C; c++) acc[c] += w / (double)n * r[c];
    }
    hl_free(ids);
    return HL_OK;
}

static hl_status parse_line(hl_lexicon *lex, const cJSON *o, entry *e, const char *where, int64_t C, hl_error *err) {
    if (!cJSON_IsObject(o)) return hl_fail(err, HL_ERR_FORMAT, "%s: not a JSON object", where);
    for (const cJSON *it = o->child; it; it = it->next)
        if (strcmp(it->string, "lexeme") && strcmp(it->string, "parts") && strcmp(it->string, "weights") &&
            strcmp(it->string, "facets") && strcmp(it->string, "vector")) {
            char shown_field[HL_ESCAPE_NAME];
            return hl_fail(err, HL_ERR_FORMAT, "%s: unknown field \"%s\" (lexeme, parts, weights, facets, vector)",
                           where, hl_escape_str(it->string, shown_field, sizeof shown_field));
        }
    const cJSON *lx = cJSON_GetObjectItemCaseSensitive(o, "lexeme");
    if (!cJSON_IsString(lx)) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"lexeme\": missing or not a string", where);
    const char *L = lx->valuestring;
    size_t ln = strlen(L);
    char shown[HL_ESCAPE_NAME];
    const char *Ls = hl_escape(L, ln, shown, sizeof shown); /* L as messages show it */
    if (ln == 0) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"lexeme\": empty", where);
    if (ln > HL_LEXEME_MAX_BYTES)
        return hl_fail(err, HL_ERR_LIMIT, "%s: field \"lexeme\": longer than %d bytes", where, HL_LEXEME_MAX_BYTES);
    if (!hl_utf8_valid(L, ln, NULL)) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"lexeme\": invalid UTF-8", where);
    if (has_space(L)) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"lexeme\": \"%s\" contains whitespace", where, Ls);
    for (int i = 0; i < N_CONTROLS; i++)
        if (!strcmp(L, control_lexemes[i]))
            return hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\" collides with a control lexeme", where, Ls);
    const hl_tokenizer *bt = lex->base->tok;
    int32_t pid = hl_tokenizer_find(bt, L, ln);
    if (pid >= 0 && hl_tokenizer_type(bt, pid) != HL_TOKEN_NORMAL)
        return hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\" collides with the special token %d", where, Ls, pid);
    if (pid >= 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\" is already the base token %d (it would change how "
                       "ordinary text tokenizes)", where, Ls, pid);
    if (!strcmp(L, "<s>") || !strcmp(L, "</s>") || !strcmp(L, "<unk>") || (ln == 6 && !strncmp(L, "<0x", 3) && L[5] == '>'))
        return hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\" collides with a special token", where, Ls);
    if (!(e->lexeme = hl_strdup(L))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(o, "parts"), *vec = cJSON_GetObjectItemCaseSensitive(o, "vector");
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(o, "weights"), *facets = cJSON_GetObjectItemCaseSensitive(o, "facets");
    if ((parts != NULL) == (vec != NULL))
        return hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\": give exactly one of \"parts\" or \"vector\"", where, Ls);
    if (facets) {
        if (!cJSON_IsObject(facets)) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"facets\": not an object", where);
        size_t cap = 1, used = 0;
        for (const cJSON *f = facets->child; f; f = f->next) {
            if (!cJSON_IsString(f))
                return hl_fail(err, HL_ERR_FORMAT, "%s: field \"facets\": \"%s\" is not a string", where,
                               hl_escape_str(f->string, shown, sizeof shown));
            cap += strlen(f->string) + strlen(f->valuestring) + 2;
        }
        if (!(e->facets = hl_malloc(cap))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        e->facets[0] = 0;
        int nf = cJSON_GetArraySize(facets);
        if (nf > HL_LEXICON_MAX_PARTS)
            return hl_fail(err, HL_ERR_LIMIT, "%s: field \"facets\": more than %d entries", where, HL_LEXICON_MAX_PARTS);
        if (nf && (!(e->facet_values = hl_calloc((size_t)nf, sizeof *e->facet_values)) ||
                   !(e->facet_keys = hl_calloc((size_t)nf, sizeof *e->facet_keys))))
            return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        for (const cJSON *f = facets->child; f; f = f->next) {
            used += (size_t)snprintf(e->facets + used, cap - used, "%s=%s\n", f->string, f->valuestring);
            if ((lex->rule & HL_COMPOSE_FACETS) &&
                (!f->valuestring[0] || !hl_utf8_valid(f->valuestring, strlen(f->valuestring), NULL)))
                return hl_fail(err, HL_ERR_FORMAT, "%s: field \"facets\": \"%s\" must be a non-empty UTF-8 string",
                               where, hl_escape_str(f->string, shown, sizeof shown));
            e->facet_keys[e->n_facets] = hl_strdup(f->string);
            if (!(e->facet_values[e->n_facets++] = hl_strdup(f->valuestring)) || !e->facet_keys[e->n_facets - 1])
                return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        }
    }
    if (vec) {
        if (weights) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"weights\": only for \"parts\"", where);
        if (!cJSON_IsArray(vec) || cJSON_GetArraySize(vec) != C)
            return hl_fail(err, HL_ERR_FORMAT, "%s: field \"vector\": must be an array of %lld numbers (the model dimension)",
                           where, (long long)C);
        int k = 0;
        for (const cJSON *v = vec->child; v; v = v->next, k++)
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !isfinite((float)v->valuedouble))
                return hl_fail(err, HL_ERR_FORMAT,
                               "%s: field \"vector\": element %d is not a number that is finite as a 32-bit float",
                               where, k);
        e->is_vector = 1;
        return HL_OK;
    }
    int np = cJSON_IsArray(parts) ? cJSON_GetArraySize(parts) : -1;
    if (np < 1 || np > HL_LEXICON_MAX_PARTS)
        return hl_fail(err, HL_ERR_FORMAT, "%s: field \"parts\": must be an array of 1..%d strings", where,
                       HL_LEXICON_MAX_PARTS);
    if (!(e->parts = hl_calloc((size_t)np, sizeof *e->parts))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    for (const cJSON *p = parts->child; p; p = p->next) {
        if (!cJSON_IsString(p) || !p->valuestring[0])
            return hl_fail(err, HL_ERR_FORMAT, "%s: field \"parts\": element %d is not a non-empty string", where,
                           e->n_parts);
        if (!hl_utf8_valid(p->valuestring, strlen(p->valuestring), NULL))
            return hl_fail(err, HL_ERR_FORMAT, "%s: field \"parts\": element %d is invalid UTF-8", where, e->n_parts);
        if (!(e->parts[e->n_parts++] = hl_strdup(p->valuestring))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    if (weights) {
        if (!cJSON_IsArray(weights) || cJSON_GetArraySize(weights) != np)
            return hl_fail(err, HL_ERR_FORMAT, "%s: field \"weights\": must have one number per part (%d)", where, np);
        if (!(e->weights = hl_malloc_array((size_t)np, sizeof(float)))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        int k = 0;
        for (const cJSON *w = weights->child; w; w = w->next, k++) {
            if (!cJSON_IsNumber(w) || !(w->valuedouble > 0) || !isfinite(w->valuedouble))
                return hl_fail(err, HL_ERR_FORMAT, "%s: field \"weights\": element %d must be a positive number", where, k);
            e->weights[k] = (float)w->valuedouble;
            /* Finite as a double is not enough: 1e39 is inf as a float, and the composed row would be NaN. */
            if (!isfinite(e->weights[k]) || !(e->weights[k] > 0))
                return hl_fail(err, HL_ERR_FORMAT,
                               "%s: field \"weights\": element %d (%g) is outside the range of a 32-bit float "
                               "(nonzero, below about 3.4e38)", where, k, w->valuedouble);
        }
    }
    return HL_OK;
}

/* The signed permutation of part position k (slots rule), cached. */
static const int32_t *part_code(hl_lexicon *lex, int32_t k, hl_error *err) {
    const int64_t C = lex->base->cfg.dim;
    if (!lex->slot_code) {
        lex->slot_code = hl_malloc_array((size_t)HL_LEXICON_MAX_PARTS * (size_t)C, sizeof(int32_t));
        if (!lex->slot_code) {
            hl_fail(err, HL_ERR_NOMEM, "out of memory");
            return NULL;
        }
        for (int32_t p = 0; p < HL_LEXICON_MAX_PARTS; p++)
            hl_compose_transform(hl_compose_part_key(p), C, lex->slot_code + (int64_t)p * C);
    }
    return lex->slot_code + (int64_t)k * C;
}

/* Adds w · S · word into acc (word: C doubles), S the signed permutation code (NULL: identity). */
static void add_transformed(double *acc, const double *word, const int32_t *code, double w, int64_t C) {
    for (int64_t c = 0; c < C; c++) {
        double v = code ? word[code[c] >> 1] : word[c];
        acc[c] += w * (code && (code[c] & 1) ? -v : v);
    }
}

/* Composes row `row` of embd/out for entry e (parts) or copies the vector,
 * by the lexicon's rule (hyperlexeme/compose.h). */
static hl_status compose(hl_lexicon *lex, const entry *e, const cJSON *vec, int64_t row, const char *where,
                         hl_error *err) {
    const hl_model *m = lex->base;
    const int64_t C = m->cfg.dim;
    float *de = lex->embd + row * C, *dout = lex->out + row * C;
    if (vec) {
        int64_t c = 0;
        for (const cJSON *v = vec->child; v; v = v->next, c++) de[c] = dout[c] = (float)v->valuedouble;
        return HL_OK;
    }
    const int order = HL_COMPOSE_ORDER(lex->rule);
    double *acc_e = hl_calloc((size_t)C * 4, sizeof(double));
    double *acc_o = acc_e ? acc_e + C : NULL, *word_e = acc_e ? acc_e + 2 * C : NULL, *word_o = acc_e ? acc_e + 3 * C : NULL;
    const int permute_facets = hl_compose_facets_transformed(lex->rule);
    int32_t *facet_code = permute_facets && e->n_facets ? hl_malloc_array((size_t)C, sizeof(int32_t)) : NULL;
    float *rowbuf = hl_malloc_array((size_t)C, sizeof(float));
    hl_status s = acc_e && rowbuf && (facet_code || !permute_facets || !e->n_facets)
                      ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "out of memory");
    /* Words: the parts (weighted if "weights", by rank under ranked and decay), then with +facets each facet value
     * (weight 1, or decay's 1/4). */
    const int32_t nf = (lex->rule & HL_COMPOSE_FACETS) ? e->n_facets : 0;
    double wsum = 0, wsq = 0;
    for (int32_t p = 0; p < e->n_parts + nf; p++) {
        double w = p < e->n_parts ? hl_compose_part_weight(order, p, e->weights ? e->weights[p] : 1.0)
                                  : hl_compose_facet_weight(order);
        wsum += w;
        wsq += w * w;
    }
    /* decay closes a scene's parts with the end-of-text row at the next weight down, so the reader that peels
     * the parts off in order of strength finds "the end" after the last one: the scene's length is read as its
     * parts are (without it, decoders ran on past the last part). Controls are words, not scenes. */
    const int32_t eos = hl_tokenizer_eos(m->tok);
    const double w_end = order == HL_COMPOSE_DECAY && row >= N_CONTROLS && eos >= 0 && eos < m->n_vocab_base
                             ? hl_compose_part_weight(order, e->n_parts, 1.0) : 0;
    wsum += w_end;
    const double norm = order == HL_COMPOSE_SLOTS ? sqrt(wsq) : wsum;
    if (s == HL_OK && w_end > 0) {
        const float *re = hl_model_embd_row(m, eos, rowbuf);
        for (int64_t c = 0; c < C; c++) acc_e[c] += w_end / norm * re[c];
        const float *ro = hl_model_output_row(m, eos, rowbuf);
        for (int64_t c = 0; c < C; c++) acc_o[c] += w_end / norm * ro[c];
    }
    for (int32_t p = 0; s == HL_OK && p < e->n_parts + nf; p++) {
        const char *word = p < e->n_parts ? e->parts[p] : e->facet_values[p - e->n_parts];
        double w = p < e->n_parts ? hl_compose_part_weight(order, p, e->weights ? e->weights[p] : 1.0)
                                  : hl_compose_facet_weight(order);
        const int32_t *code = NULL;
        if (order == HL_COMPOSE_SLOTS && p < e->n_parts) {
            if (!(code = part_code(lex, p, err))) s = HL_ERR_NOMEM;
        } else if (permute_facets && p >= e->n_parts) { /* facet: the transform of its key */
            hl_compose_transform(hl_compose_facet_key(e->facet_keys[p - e->n_parts]), C, facet_code);
            code = facet_code;
        }
        int bytes_only = 0;
        memset(word_e, 0, (size_t)C * 2 * sizeof(double));
        if (s == HL_OK && (s = add_word(m, 0, rowbuf, C, word, 1.0, word_e, &bytes_only, where, err)) == HL_OK)
            s = add_word(m, 1, rowbuf, C, word, 1.0, word_o, NULL, where, err);
        if (s == HL_OK) {
            add_transformed(acc_e, word_e, code, w / norm, C);
            add_transformed(acc_o, word_o, code, w / norm, C);
        }
        if (row >= N_CONTROLS) {
            lex->n_parts_total++;
            lex->n_parts_bytes += bytes_only;
        }
    }
    for (int64_t c = 0; s == HL_OK && c < C; c++) {
        de[c] = (float)acc_e[c];
        dout[c] = (float)acc_o[c];
    }
    hl_free(acc_e);
    hl_free(facet_code);
    hl_free(rowbuf);
    return s;
}

static hl_status load_impl(const char *text, size_t len, const char *name, const hl_model *base, const char *forced,
                           hl_lexicon **out, hl_error *err) {
    *out = NULL;
    if (forced && hl_compose_rule_from_name(forced) < 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: unknown composition rule \"%s\" (%s)", name, forced,
                       hl_compose_rule_list());
    if (base->n_extra) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: the model already carries a lexicon", name);
    hl_lexicon *lex = hl_calloc(1, sizeof *lex);
    if (!lex) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    lex->base = base;
    hl_hashset_init(&lex->lexemes);
    const int64_t C = base->cfg.dim;
    hl_status s = HL_OK;
    lex->source = hl_strndup(text, len);
    if (!lex->source) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    /* Pass 1: count lines to size the tables. */
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    lines++;
    if (s == HL_OK && lines > HL_LEXICON_MAX_ENTRIES + 1000)
        s = hl_fail(err, HL_ERR_LIMIT, "%s: more than %d lines", name, HL_LEXICON_MAX_ENTRIES);
    if (s == HL_OK) {
        lex->e = hl_calloc((size_t)lines, sizeof *lex->e);
        lex->embd = hl_calloc((size_t)(N_CONTROLS + lines), (size_t)C * sizeof(float));
        lex->out = hl_calloc((size_t)(N_CONTROLS + lines), (size_t)C * sizeof(float));
        if (!lex->e || !lex->embd || !lex->out) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    if (forced) lex->rule = hl_compose_rule_from_name(forced);
    int had_rule = 0;
    for (int i = 0; s == HL_OK && i < N_CONTROLS; i++) {
        entry ctl = {.parts = (char **)&control_words[i], .n_parts = 1};
        s = compose(lex, &ctl, NULL, i, control_lexemes[i], err);
    }
    const char *p = lex->source, *end = lex->source ? lex->source + len : NULL;
    int64_t line_no = 0;
    while (s == HL_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line_no++;
        char where[512];
        snprintf(where, sizeof where, "%s:%lld", name, (long long)line_no);
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < n && hl_json_find_nul_escape(p, n) >= 0) /* cJSON would cut the string at the NUL */
            s = hl_fail(err, HL_ERR_FORMAT, "%s: a string holds \\u0000 (a NUL character)", where);
        else if (k < n) {
            cJSON *o = cJSON_ParseWithLength(p, n);
            const cJSON *rule = o ? cJSON_GetObjectItemCaseSensitive(o, "compose") : NULL;
            if (!o) s = hl_fail(err, HL_ERR_FORMAT, "%s: invalid JSON", where);
            else if (rule) { /* {"compose": "parts" | "parts+facets"}, before any lexeme */
                int r = cJSON_IsString(rule) ? hl_compose_rule_from_name(rule->valuestring) : -1;
                if (cJSON_GetArraySize(o) != 1)
                    s = hl_fail(err, HL_ERR_FORMAT, "%s: a \"compose\" line takes no other fields", where);
                else if (r < 0)
                    s = hl_fail(err, HL_ERR_FORMAT, "%s: field \"compose\": must be one of %s", where,
                                hl_compose_rule_list());
                else if (lex->n > 0 || had_rule)
                    s = hl_fail(err, HL_ERR_FORMAT, "%s: the \"compose\" line must come once, before the first lexeme",
                                where);
                else if (forced && r != lex->rule)
                    s = hl_fail(err, HL_ERR_FORMAT, "%s: the lexicon's \"compose\": \"%s\" conflicts with the rule "
                                "asked for (%s)", where, rule->valuestring, forced);
                if (s == HL_OK) lex->rule = r;
                had_rule = 1;
                cJSON_Delete(o);
            } else {
                entry *e = &lex->e[lex->n];
                s = parse_line(lex, o, e, where, C, err);
                lex->n++;
                int64_t first = -1;
                int added = s == HL_OK ? hl_hashset_add(&lex->lexemes, e->lexeme, strlen(e->lexeme), &first) : 1;
                if (added < 0) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                else if (added == 0) {
                    char shown[HL_ESCAPE_NAME];
                    s = hl_fail(err, HL_ERR_FORMAT, "%s: lexeme \"%s\" is already defined (entry %lld)", where,
                                hl_escape_str(e->lexeme, shown, sizeof shown), (long long)first + 1);
                }
                if (s == HL_OK)
                    s = compose(lex, e, e->is_vector ? cJSON_GetObjectItemCaseSensitive(o, "vector") : NULL,
                                N_CONTROLS + lex->n - 1, where, err);
                cJSON_Delete(o);
            }
        }
        p += n + 1;
    }
    if (s == HL_OK && lex->n == 0) s = hl_fail(err, HL_ERR_FORMAT, "%s: no lexemes", name);
    if (s == HL_OK && forced && !had_rule) { /* the carried text states the rule it was composed with */
        char line[64];
        snprintf(line, sizeof line, "{\"compose\": \"%s\"}\n", hl_compose_rule_name(lex->rule));
        size_t ll = strlen(line);
        char *src = hl_malloc(ll + len + 1);
        if (!src) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else {
            memcpy(src, line, ll);
            memcpy(src + ll, text, len);
            src[ll + len] = 0;
            hl_free(lex->source);
            lex->source = src;
        }
    }
    /* The extended tokenizer: controls, then entries, matched before BPE. */
    const char **atomic = NULL;
    if (s == HL_OK) {
        atomic = hl_malloc_array((size_t)(N_CONTROLS + lex->n), sizeof *atomic);
        if (!atomic) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        for (int i = 0; s == HL_OK && i < N_CONTROLS; i++) atomic[i] = control_lexemes[i];
        for (int32_t i = 0; s == HL_OK && i < lex->n; i++) atomic[N_CONTROLS + i] = lex->e[i].lexeme;
        if (s == HL_OK) s = hl_tokenizer_extend(base->tok, atomic, N_CONTROLS + lex->n, &lex->tok, err);
        hl_free(atomic);
    }
    if (s == HL_OK) {
        hl_model_view_params vp = {
            .n_extra = N_CONTROLS + lex->n, .extra_embd = lex->embd, .extra_out = lex->out, .tok = lex->tok};
        s = hl_model_view_init(base, &vp, &lex->view, err);
    }
    if (s != HL_OK) {
        hl_lexicon_free(lex);
        return s;
    }
    *out = lex;
    return HL_OK;
}

hl_status hl_lexicon_load_memory(const char *text, size_t len, const char *name, const hl_model *base,
                                 hl_lexicon **out, hl_error *err) {
    return load_impl(text, len, name, base, NULL, out, err);
}

hl_status hl_lexicon_load_compose(const char *path, const hl_model *base, const char *compose, hl_lexicon **out,
                                  hl_error *err) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    hl_status s = hl_read_file(path, LEXICON_MAX_FILE, &text, &len, err);
    if (s != HL_OK) return s;
    s = load_impl(text, len, path, base, compose, out, err);
    hl_free(text);
    return s;
}

int hl_lexicon_composes_facets(const hl_lexicon *lex) { return (lex->rule & HL_COMPOSE_FACETS) != 0; }
const char *hl_lexicon_compose_rule(const hl_lexicon *lex) { return hl_compose_rule_name(lex->rule); }
int32_t hl_lexicon_byte_only_parts(const hl_lexicon *lex, int32_t *total) {
    if (total) *total = lex->n_parts_total;
    return lex->n_parts_bytes;
}

hl_status hl_lexicon_from_adapter(const hl_adapter *a, const hl_model *base, hl_lexicon **out, hl_error *err) {
    *out = NULL;
    if (!a->lexicon) return HL_OK;
    char name[256];
    snprintf(name, sizeof name, "%s (hyperlora.lexicon.jsonl)", a->name ? a->name : "adapter");
    return hl_lexicon_load_memory(a->lexicon, strlen(a->lexicon), name, base, out, err);
}

/* The first lexeme of each line of text (NULL and -1 when none is left):
 * the next "lexeme" string from *pos on, and its 1-based line. */
static char *next_lexeme(const char *text, size_t len, size_t *pos, int64_t *line_no) {
    while (*pos < len) {
        const char *p = text + *pos, *nl = memchr(p, '\n', len - *pos);
        size_t n = nl ? (size_t)(nl - p) : len - *pos;
        *pos += n + 1;
        (*line_no)++;
        cJSON *o = cJSON_ParseWithLength(p, n);
        const cJSON *l = o ? cJSON_GetObjectItemCaseSensitive(o, "lexeme") : NULL;
        char *copy = cJSON_IsString(l) ? hl_strdup(l->valuestring) : NULL;
        cJSON_Delete(o);
        if (copy) return copy;
    }
    return NULL;
}

hl_status hl_lexicon_from_adapter_extra(const hl_adapter *a, const hl_model *base, const char *extra_path,
                                        hl_lexicon **out, hl_error *err) {
    *out = NULL;
    if (!a->lexicon) return hl_fail(err, HL_ERR_INVALID_ARG, "the adapter carries no lexicon to add %s to", extra_path);
    char name[256];
    snprintf(name, sizeof name, "%s (hyperlora.lexicon.jsonl)", a->name ? a->name : "adapter");
    hl_lexicon *carried = NULL, *alone = NULL;
    char *extra = NULL, *merged = NULL;
    size_t extra_len = 0;
    hl_status s = hl_lexicon_load_memory(a->lexicon, strlen(a->lexicon), name, base, &carried, err);
    if (s == HL_OK) s = hl_read_file(extra_path, LEXICON_MAX_FILE, &extra, &extra_len, err);
    /* The extra file alone, under the carried rule: its own errors with its own line numbers. */
    const char *rule = hl_compose_rule_name(carried ? carried->rule : HL_COMPOSE_PARTS);
    if (s == HL_OK) s = load_impl(extra, extra_len, extra_path, base, rule, &alone, err);
    /* A lexeme both define would silently change what the adapter was trained on: refused. */
    size_t pos = 0;
    int64_t line_no = 0;
    char *lexeme;
    while (s == HL_OK && (lexeme = next_lexeme(extra, extra_len, &pos, &line_no))) {
        if (hl_lexicon_find(carried, lexeme) >= 0) {
            char shown[HL_ESCAPE_NAME];
            s = hl_fail(err, HL_ERR_INVALID_ARG,
                        "%s:%lld: lexeme \"%s\" is already in the lexicon the adapter carries (%s); an extra "
                        "lexicon may only add new lexemes",
                        extra_path, (long long)line_no, hl_escape_str(lexeme, shown, sizeof shown), name);
        }
        hl_free(lexeme);
    }
    /* Carried entries first, so their tokens keep the ids the adapter trained with; the extra entries follow. */
    if (s == HL_OK) {
        size_t cl = strlen(carried->source);
        merged = hl_malloc(cl + 1 + extra_len + 1);
        if (!merged) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else {
            memcpy(merged, carried->source, cl);
            size_t m = cl;
            if (m && merged[m - 1] != '\n') merged[m++] = '\n';
            /* the extra file's own "compose" line (already checked against the carried rule) is dropped */
            size_t q = 0;
            while (q < extra_len) {
                const char *p = extra + q, *nl = memchr(p, '\n', extra_len - q);
                size_t n = nl ? (size_t)(nl - p) + 1 : extra_len - q;
                cJSON *o = cJSON_ParseWithLength(p, nl ? n - 1 : n);
                int is_rule = o && cJSON_GetObjectItemCaseSensitive(o, "compose") != NULL;
                cJSON_Delete(o);
                if (!is_rule) {
                    memcpy(merged + m, p, n);
                    m += n;
                }
                q += n;
            }
            char mname[512];
            snprintf(mname, sizeof mname, "%s + %s", name, extra_path);
            s = load_impl(merged, m, mname, base, NULL, out, err);
        }
    }
    hl_lexicon_free(carried);
    hl_lexicon_free(alone);
    hl_free(extra);
    hl_free(merged);
    return s;
}

/* Code points of s (at most cap; an invalid byte counts as one). */
static int cps(const char *s, uint32_t *out, int cap) {
    const unsigned char *p = (const unsigned char *)s;
    int n = 0;
    while (*p && n < cap) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
        uint32_t c = len == 1 ? *p : *p & (0x7fu >> len);
        for (int k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80) {
                len = 1;
                c = *p;
                break;
            }
            c = (c << 6) | (p[k] & 0x3f);
        }
        out[n++] = c;
        p += len;
    }
    return n;
}

/* Levenshtein distance in code points (the first 256 of each). */
static int edit_distance(const char *a, const char *b) {
    uint32_t ca[256], cb[256];
    int na = cps(a, ca, 256), nb = cps(b, cb, 256), row[257];
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j], best = diag + (ca[i - 1] != cb[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

int32_t hl_lexicon_nearest(const hl_lexicon *lex, const char *word, int32_t *idx, int32_t k) {
    /* The k lexemes with the smallest edit distance to word (ties: file order). */
    int best[16];
    if (k > 16) k = 16;
    int32_t n = 0;
    for (int32_t i = 0; i < lex->n; i++) {
        int d = edit_distance(word, lex->e[i].lexeme);
        int32_t at = n < k ? n : k;
        while (at > 0 && best[at - 1] > d) at--;
        if (at >= k) continue;
        int32_t last = n < k ? n : k - 1;
        for (int32_t j = last; j > at; j--) {
            best[j] = best[j - 1];
            idx[j] = idx[j - 1];
        }
        best[at] = d;
        idx[at] = i;
        if (n < k) n++;
    }
    return n;
}

hl_status hl_lexicon_check_scene(const hl_lexicon *lex, const char *scene, hl_error *err) {
    const char *p = scene;
    int words = 0;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != ' ') q++;
        char word[HL_LEXEME_MAX_BYTES + 1];
        size_t n = (size_t)(q - p);
        words++;
        if (n <= HL_LEXEME_MAX_BYTES) {
            memcpy(word, p, n);
            word[n] = 0;
            if (hl_lexicon_find(lex, word) >= 0) {
                p = q;
                continue;
            }
        } else {
            memcpy(word, p, HL_LEXEME_MAX_BYTES);
            word[HL_LEXEME_MAX_BYTES] = 0;
        }
        int32_t near[3];
        int32_t k = hl_lexicon_nearest(lex, word, near, 3);
        char shown[HL_ESCAPE_NAME], sugg[3][HL_ESCAPE_NAME];
        for (int32_t i = 0; i < 3; i++) {
            if (i < k) hl_escape_str(hl_lexicon_lexeme(lex, near[i]), sugg[i], sizeof sugg[i]);
            else sugg[i][0] = 0;
        }
        return hl_fail(err, HL_ERR_INVALID_ARG,
                       "scene word \"%s\" is not a lexeme of the lexicon (%d entries); nearest: %s%s%s%s%s",
                       hl_escape_str(word, shown, sizeof shown), (int)hl_lexicon_n_entries(lex), sugg[0],
                       k > 1 ? ", " : "", sugg[1], k > 2 ? ", " : "", sugg[2]);
    }
    return words ? HL_OK : hl_fail(err, HL_ERR_INVALID_ARG, "empty scene");
}

hl_status hl_lexicon_attach(const hl_lexicon *lex, hl_adapter *a, hl_error *err) {
    char *copy = hl_strdup(lex->source);
    if (!copy) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    hl_free(a->lexicon);
    a->lexicon = copy;
    return HL_OK;
}

static hl_status append(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap) {
        size_t nc = (*n + k) * 2 + 16;
        int32_t *p = hl_realloc(*ids, nc * sizeof *p);
        if (!p) return HL_ERR_NOMEM;
        *ids = p;
        *cap = nc;
    }
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return HL_OK;
}

hl_status hl_lexicon_scene_prompt(const hl_lexicon *lex, const char *scene, int32_t n_vectors, int form, int reg,
                                  int32_t **ids, size_t *n, hl_error *err) {
    *ids = NULL;
    *n = 0;
    if (form < 0 || form >= HL_FORM_COUNT || reg < 0 || reg >= HL_REGISTER_COUNT)
        return hl_fail(err, HL_ERR_INVALID_ARG, "unknown form or register");
    size_t cap = 0;
    int32_t head[3] = {hl_tokenizer_bos(lex->tok), hl_lexicon_form_token(lex, form), hl_lexicon_register_token(lex, reg)};
    int32_t sep = hl_lexicon_sep_token(lex);
    hl_status s = append(ids, n, &cap, head, 3);
    if (s == HL_OK && scene) {
        int32_t *sc = NULL;
        size_t ns = 0;
        if ((s = hl_tokenizer_encode(lex->tok, scene, strlen(scene), 0, 0, &sc, &ns, err)) != HL_OK) {
            char shown[96]; /* the start of the scene, escaped */
            hl_error_prefix(err, "scene \"%s\"", hl_escape_str(scene, shown, sizeof shown));
            hl_free(*ids);
            *ids = NULL;
            return s;
        }
        if (ns == 0) s = hl_fail(err, HL_ERR_INVALID_ARG, "empty scene");
        else s = append(ids, n, &cap, sc, ns);
        hl_free(sc);
    } else if (s == HL_OK) {
        if (n_vectors < 1) s = hl_fail(err, HL_ERR_INVALID_ARG, "a mute scene needs at least one vector");
        for (int32_t k = 0; s == HL_OK && k < n_vectors; k++) {
            int32_t id = -k - 1;
            s = append(ids, n, &cap, &id, 1);
        }
    }
    if (s == HL_OK) s = append(ids, n, &cap, &sep, 1);
    if (s != HL_OK) {
        hl_free(*ids);
        *ids = NULL;
        *n = 0;
        if (err && s == HL_ERR_NOMEM) hl_fail(err, s, "out of memory");
    }
    return s;
}

hl_status hl_lexicon_scene_format(void *user, const char *scene, const char *form, const char *reg,
                                  const char *output, int32_t **ids, uint8_t **mask, size_t *n, hl_error *err) {
    const hl_lexicon *lex = user;
    *ids = NULL;
    *mask = NULL;
    int f = hl_form_from_name(form), r = hl_register_from_name(reg);
    if (f < 0)
        return hl_fail(err, HL_ERR_FORMAT, "field \"form\": unknown form \"%.40s\" (text, symbols, formula, dialogue, report)", form);
    if (r < 0)
        return hl_fail(err, HL_ERR_FORMAT, "field \"register\": unknown register \"%.40s\" (poetic, logical, technical)", reg);
    size_t np = 0, no = 0;
    int32_t *prompt = NULL, *outp = NULL;
    hl_status s = hl_lexicon_check_scene(lex, scene, err); /* a scene that is not lexemes would train as text */
    if (s != HL_OK) {
        hl_error_prefix(err, "field \"scene\"");
        if (s == HL_ERR_INVALID_ARG) { /* bad data, not a bad call */
            s = HL_ERR_FORMAT;
            if (err) err->status = s;
        }
        return s;
    }
    s = hl_lexicon_scene_prompt(lex, scene, 0, f, r, &prompt, &np, err);
    if (s == HL_OK && (s = hl_tokenizer_encode(lex->tok, output, strlen(output), 0, 1, &outp, &no, err)) != HL_OK)
        hl_error_prefix(err, "field \"output\"");
    if (s == HL_OK && no < 2) s = hl_fail(err, HL_ERR_FORMAT, "field \"output\": empty");
    if (s == HL_OK) {
        *ids = hl_malloc_array(np + no, sizeof **ids);
        *mask = hl_calloc(np + no, 1);
        if (!*ids || !*mask) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    if (s == HL_OK) {
        memcpy(*ids, prompt, np * sizeof *prompt);
        memcpy(*ids + np, outp, no * sizeof *outp);
        for (size_t i = np; i < np + no; i++) (*mask)[i] = 1; /* output tokens and EOS are the targets */
        *n = np + no;
    } else {
        hl_free(*ids);
        hl_free(*mask);
        *ids = NULL;
        *mask = NULL;
    }
    hl_free(prompt);
    hl_free(outp);
    return s;
}
