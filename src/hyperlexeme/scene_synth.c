/* scene_synth.c: the scene corpus generator (see scene_synth.h): word pools
 * from the base vocabulary, seeded scenes and splits, per-(form, register,
 * language) templates, JSONL out through the crash-safe writer. */
#include "hyperlexeme/scene_synth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "hyperlexeme/lexicon.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/rng.h"

#define MAX_PARTS 5
#define N_PAIRS (HL_FORM_COUNT * HL_REGISTER_COUNT)
#define SP "\xE2\x96\x81" /* SentencePiece's word-start mark */

enum { EN, RU, N_LANG };
static const char *const lang_name[N_LANG] = {"en", "ru"};

/* Facet pools (English words, as in examples/scenes) and a glyph per archetype for the symbols form.
 * Bases spell a glyph byte by byte, so no two glyphs share their first two UTF-8 bytes: road was `⇢`,
 * which shares E2 87 with passage's `⇶`, and readers swapped the two more than any other pair
 * (BENCHMARKS.md, "the same recipe with another training seed"). */
static const char *const archetypes[] = {"threshold", "passage", "storm", "garden", "mirror", "tower", "river", "road"};
static const char *const glyphs[] = {"⟁", "⇶", "🜁", "❀", "◐", "♜", "≋", "↝"};
static const char *const actions[] = {"enter", "flee", "wait", "search", "rise", "fall", "hide", "return"};
static const char *const fields[] = {"home", "mind", "city", "sea", "forest", "sky", "body", "night"};
static const char *const tones[] = {"fear", "hope", "calm", "joy", "grief", "awe", "anger", "longing"};
#define POOL 8

/* Words the templates themselves use: never parts, so that finding a part in
 * an output means the decoder named it. */
static const char *const template_words[] = {
    "all", "and", "count", "drifts", "dream", "elements", "end", "field", "first", "hence", "items", "like",
    "report", "see", "so", "status", "then", "the", "tone", "verse", "what", "follows", "yes", "you", "in", "of",
    "it", "do", "всё", "плывёт", "как", "во", "сне", "сначала", "затем", "итоге", "элементы", "всего", "что", "ты",
    "видишь", "из", "этого", "следует", "статус", "да", "отчёт", "тон", "поле", "стихах", "значит", "пункты", "и",
    "в"};

typedef struct {
    char **w;
    int32_t n;
    uint8_t *unseen;
} pool;

typedef struct {
    int lang;
    int n;
    int32_t part[MAX_PARTS]; /* indices into the language's pool */
    int arch, action, field, tone;
    int split;               /* 0 train, 1 held-out scene, 2 unseen-word scene */
    int held_pair;           /* train: the (form, register) pair held out */
    uint16_t pairs;          /* train: bit per trained pair */
} scene;

void hl_synth_params_default(hl_synth_params *p) {
    *p = (hl_synth_params){.seed = 1, .n_scenes = 2000, .heldout_fraction = 0.2f, .words_per_lang = 400,
                           .unseen_per_lang = 20, .n_unseen_scenes = 100, .pairs_per_scene = 3, .min_parts = 2,
                           .max_parts = 5, .balance_words = 1};
}

/* ------------------------------------------------------------ words */

/* Letters of one language only, all lowercase, at least 3; returns the count or 0. */
static int word_letters(const char *s, int lang) {
    int n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (lang == EN) {
            if (*p < 'a' || *p > 'z') return 0;
            p++;
        } else {
            /* а..п: D0 B0..BF; р..я: D1 80..8F; ё: D1 91 */
            if (p[0] == 0xD0 && p[1] >= 0xB0 && p[1] <= 0xBF) p += 2;
            else if (p[0] == 0xD1 && ((p[1] >= 0x80 && p[1] <= 0x8F) || p[1] == 0x91)) p += 2;
            else return 0;
        }
        n++;
    }
    return n >= 3 ? n : 0;
}

static int is_reserved(const char *w) {
    for (size_t i = 0; i < sizeof template_words / sizeof *template_words; i++)
        if (!strcmp(w, template_words[i])) return 1;
    const char *const *facet_pools[4] = {archetypes, actions, fields, tones};
    for (int f = 0; f < 4; f++)
        for (int i = 0; i < POOL; i++)
            if (!strcmp(w, facet_pools[f][i])) return 1;
    return 0;
}

static void pools_free(pool *pl) {
    for (int l = 0; l < N_LANG; l++) {
        for (int32_t i = 0; i < pl[l].n; i++) hl_free(pl[l].w[i]);
        hl_free(pl[l].w);
        hl_free(pl[l].unseen);
    }
}

/* The marks a template writes straight after a part (render below). */
static const char *const marks_after_part[] = {",", ".", ";", ":"};

/* The whole-word pieces of each language, in vocabulary order. */
static hl_status build_pools(const hl_tokenizer *tok, const hl_synth_params *p, pool *pl, hl_error *err) {
    int32_t V = hl_tokenizer_n_vocab(tok);
    for (int l = 0; l < N_LANG; l++) {
        pl[l].w = hl_calloc((size_t)p->words_per_lang, sizeof *pl[l].w);
        pl[l].unseen = hl_calloc((size_t)p->words_per_lang, 1);
        if (!pl[l].w || !pl[l].unseen) return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
    }
    const int byte_level = hl_tokenizer_is_byte_level(tok);
    for (int32_t id = 0; id < V; id++) {
        /* A word-start piece: "▁word" (SentencePiece) or " word" in bytes (byte-level BPE, "Ġword"). */
        char text[HL_TOKENIZER_MAX_PIECE + 1];
        const char *w;
        if (byte_level) {
            size_t k = hl_tokenizer_decode(tok, -1, id, text, sizeof text - 1);
            text[k] = 0;
            if (k < 2 || text[0] != ' ' || strlen(text) != k) continue;
            w = text + 1;
        } else {
            const char *piece = hl_tokenizer_piece(tok, id);
            if (!piece || strncmp(piece, SP, 3) != 0) continue;
            w = piece + 3;
        }
        for (int l = 0; l < N_LANG; l++) {
            if (pl[l].n >= p->words_per_lang || !word_letters(w, l) || is_reserved(w)) continue;
            int32_t *ids = NULL;
            size_t n = 0;
            hl_error e = {0};
            /* the word, as a part is composed (byte-level: after one space), must be this one token */
            const char *enc = byte_level ? w - 1 : w;
            int one = hl_tokenizer_encode(tok, enc, strlen(enc), 0, 0, &ids, &n, &e) == HL_OK && n == 1 && ids[0] == id;
            hl_free(ids);
            /* ... and stay this token when a template writes a mark right after it: under SentencePiece
             * merges "same," can be "▁s am e,", and a part spelled by other pieces is one the reader
             * cannot copy from its composed row (BENCHMARKS.md, "parts spelled by other pieces") */
            for (size_t m = 0; one && m < sizeof marks_after_part / sizeof *marks_after_part; m++) {
                char with[HL_TOKENIZER_MAX_PIECE + 8];
                snprintf(with, sizeof with, "%s%s", enc, marks_after_part[m]);
                ids = NULL;
                n = 0;
                one = hl_tokenizer_encode(tok, with, strlen(with), 0, 0, &ids, &n, &e) == HL_OK && n >= 1 && ids[0] == id;
                hl_free(ids);
            }
            if (!one) continue;
            if (!(pl[l].w[pl[l].n] = hl_strdup(w))) return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
            pl[l].n++;
        }
    }
    for (int l = 0; l < N_LANG; l++)
        if (pl[l].n < p->max_parts + p->unseen_per_lang + 1)
            return hl_fail(err, HL_ERR_INVALID_ARG,
                           "scene synth: the base spells only %d %s words as one token that stays whole before , . ; "
                           "and : (need at least %d for %d unseen and scenes of up to %d parts)",
                           (int)pl[l].n, l == EN ? "English" : "Russian", p->max_parts + p->unseen_per_lang + 1,
                           (int)p->unseen_per_lang, (int)p->max_parts);
    return HL_OK;
}

/* ------------------------------------------------------------ scenes */

static uint64_t scene_key(const scene *s) {
    uint64_t h = HL_FNV1A_BASIS ^ (uint64_t)s->lang;
    for (int i = 0; i < s->n; i++) h = hl_fnv1a_word(h, (uint64_t)(s->part[i] + 1));
    return hl_fnv1a_word(h, (uint64_t)s->n);
}

static int same_parts(const scene *a, const scene *b) {
    if (a->lang != b->lang || a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->part[i] != b->part[i]) return 0;
    return 1;
}

/* Draws a scene of language lang; with need_unseen, exactly one part is an
 * unseen word, else none is. */
static void draw_scene(hl_rng *r, const hl_synth_params *p, const pool *pl, int lang, int need_unseen, scene *s) {
    const pool *w = &pl[lang];
    memset(s, 0, sizeof *s);
    s->lang = lang;
    s->n = p->min_parts + (int)hl_rng_below(r, (uint64_t)(p->max_parts - p->min_parts + 1));
    int forced = need_unseen ? (int)hl_rng_below(r, (uint64_t)s->n) : -1;
    for (int i = 0; i < s->n; i++) {
        for (;;) {
            int32_t k = (int32_t)hl_rng_below(r, (uint64_t)w->n);
            /* the forced slot takes an unseen word, every other slot a seen one (with one unseen
             * word per language, a second slot wanting it would never find another) */
            if (i == forced ? !w->unseen[k] : w->unseen[k]) continue;
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= s->part[j] == k;
            if (dup) continue;
            s->part[i] = k;
            break;
        }
    }
    s->arch = (int)hl_rng_below(r, POOL);
    s->action = (int)hl_rng_below(r, POOL);
    s->field = (int)hl_rng_below(r, POOL);
    s->tone = (int)hl_rng_below(r, POOL);
}

/* ------------------------------------------------------------ templates */

typedef struct {
    char *b;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *s, const char *t) {
    size_t k = strlen(t);
    if (s->oom) return;
    if (s->n + k + 1 > s->cap) {
        size_t c = (s->n + k + 1) * 2;
        char *nb = hl_realloc(s->b, c);
        if (!nb) {
            s->oom = 1;
            return;
        }
        s->b = nb;
        s->cap = c;
    }
    memcpy(s->b + s->n, t, k + 1);
    s->n += k;
}

/* Parts [from, to) joined by sep, the last two by last (NULL: sep). */
static void parts(sbuf *o, const pool *w, const scene *s, int from, int to, const char *sep, const char *last) {
    for (int i = from; i < to; i++) {
        if (i > from) put(o, i == to - 1 && last ? last : sep);
        put(o, w->w[s->part[i]]);
    }
}

/* The output of scene s in (form, reg). Every part appears in order, as
 * given; Russian parts stay in the nominative (lists, after colons). Every
 * part follows a space, so it is spelled by the word's own "▁word" piece,
 * the token whose embedding the scene was composed from. */
static void render(sbuf *o, const pool *pl, const scene *s, int form, int reg) {
    const pool *w = &pl[s->lang];
    const int ru = s->lang == RU, n = s->n;
    const char *and_ = ru ? " и " : " and ";
    char num[16];
    switch (form) {
    case HL_FORM_SYMBOLS:
        /* The glyph (the archetype) follows the parts: a reader peels a decay row's parts off in order of
         * strength, and a facet read before them competes with all of them (BENCHMARKS.md, "facets read
         * after the parts"). */
        parts(o, w, s, 0, n, " — ", NULL);
        put(o, " ");
        put(o, glyphs[s->arch]);
        put(o, reg == HL_REGISTER_POETIC ? " ✶" : reg == HL_REGISTER_LOGICAL ? " ∴" : "");
        break;
    case HL_FORM_FORMULA: {
        const char *op = reg == HL_REGISTER_POETIC ? " ∘ " : reg == HL_REGISTER_LOGICAL ? " ∧ " : " + ";
        const char *rel = reg == HL_REGISTER_POETIC ? " ≈ " : reg == HL_REGISTER_LOGICAL ? " → " : " = ";
        put(o, "f( ");
        parts(o, w, s, 0, n, ", ", NULL);
        put(o, " ) = ");
        parts(o, w, s, 0, n - 1, op, NULL);
        put(o, rel);
        parts(o, w, s, n - 1, n, "", NULL);
        break;
    }
    case HL_FORM_TEXT:
        if (reg == HL_REGISTER_POETIC) {
            parts(o, w, s, 0, n, ", ", and_);
            put(o, ru ? ": всё плывёт, как во сне." : ": all of it drifts like a dream.");
        } else if (reg == HL_REGISTER_LOGICAL) {
            put(o, ru ? "Сначала " : "First ");
            parts(o, w, s, 0, n - 1, ru ? ", затем " : ", then ", NULL);
            put(o, ru ? ", и в итоге " : ", so in the end ");
            parts(o, w, s, n - 1, n, "", NULL);
            put(o, ".");
        } else {
            put(o, ru ? "Элементы: " : "Elements: ");
            parts(o, w, s, 0, n, "; ", NULL);
            snprintf(num, sizeof num, "%d", n);
            put(o, ru ? ". Всего: " : ". Count: ");
            put(o, num);
            put(o, ".");
        }
        break;
    case HL_FORM_DIALOGUE:
        if (reg == HL_REGISTER_POETIC) {
            put(o, ru ? "— Что ты видишь?\n— " : "— What do you see?\n— ");
            parts(o, w, s, 0, n, ", ", and_);
            put(o, ru ? ", как во сне." : ", like a dream.");
        } else if (reg == HL_REGISTER_LOGICAL) { /* premises, then what follows: the parts in the scene's order */
            put(o, "— ");
            parts(o, w, s, 0, n - 1, ", ", and_);
            put(o, ru ? ": что из этого следует?\n— " : ": what follows?\n— ");
            parts(o, w, s, n - 1, n, "", NULL);
            put(o, ".");
        } else {
            put(o, ru ? "— Статус?\n— " : "— Status?\n— ");
            for (int i = 0; i < n; i++) {
                if (i) put(o, " ");
                put(o, w->w[s->part[i]]);
                put(o, ru ? ": да." : ": yes.");
            }
        }
        break;
    default: /* report */
        put(o, reg == HL_REGISTER_POETIC ? (ru ? "Отчёт в стихах: " : "Report in verse: ")
                                         : reg == HL_REGISTER_LOGICAL ? (ru ? "Отчёт: " : "Report: ")
                                                                      : (ru ? "Отчёт. Пункты: " : "Report. Items: "));
        parts(o, w, s, 0, n, reg == HL_REGISTER_TECHNICAL ? "; " : ", ", reg == HL_REGISTER_TECHNICAL ? NULL : and_);
        if (reg == HL_REGISTER_LOGICAL) {
            put(o, ru ? "; значит, " : "; hence ");
            put(o, actions[s->action]);
        }
        if (reg == HL_REGISTER_TECHNICAL) {
            put(o, ru ? ". Поле: " : ". Field: ");
            put(o, fields[s->field]);
        }
        put(o, ru ? ". Тон: " : ". Tone: ");
        put(o, tones[s->tone]);
        put(o, ".");
        break;
    }
}

/* ------------------------------------------------------------ output */

static void lexeme_name(char *buf, size_t cap, int32_t i) { snprintf(buf, cap, "Σ%04d", (int)i); }

typedef struct {
    hl_atomic_file f;
    int open;
} out_file;

static hl_status open_out(out_file *o, const char *dir, const char *name, hl_error *err) {
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= sizeof path) return hl_fail(err, HL_ERR_INVALID_ARG, "scene synth: path too long: %s", dir);
    hl_status s = hl_atomic_file_open(&o->f, path, err);
    o->open = s == HL_OK;
    return s;
}

/* Writes one JSON object as a line and frees it. */
static hl_status write_json(out_file *o, cJSON *j, hl_error *err) {
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
    hl_status s = hl_atomic_file_write(&o->f, txt, strlen(txt), err);
    if (s == HL_OK) s = hl_atomic_file_write(&o->f, "\n", 1, err);
    cJSON_free(txt);
    return s;
}

static hl_status write_example(out_file *o, const pool *pl, const scene *s, int32_t idx, int form, int reg,
                               const char *split, hl_error *err) {
    char name[32];
    sbuf out = {0};
    render(&out, pl, s, form, reg);
    if (out.oom) {
        hl_free(out.b);
        return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
    }
    lexeme_name(name, sizeof name, idx);
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddStringToObject(j, "scene", name);
        cJSON_AddStringToObject(j, "form", hl_form_name(form));
        cJSON_AddStringToObject(j, "register", hl_register_name(reg));
        cJSON_AddStringToObject(j, "output", out.b);
        cJSON_AddStringToObject(j, "lang", lang_name[s->lang]);
        cJSON_AddStringToObject(j, "split", split);
    }
    hl_free(out.b);
    return write_json(o, j, err);
}

static hl_status write_lexicon(out_file *o, const pool *pl, const scene *sc, int32_t n, hl_error *err) {
    hl_status s = HL_OK;
    for (int32_t i = 0; i < n && s == HL_OK; i++) {
        char name[32];
        lexeme_name(name, sizeof name, i);
        cJSON *j = cJSON_CreateObject(), *parts_a = cJSON_CreateArray(), *f = cJSON_CreateObject();
        if (!j || !parts_a || !f) {
            cJSON_Delete(j);
            cJSON_Delete(parts_a);
            cJSON_Delete(f);
            return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
        }
        cJSON_AddStringToObject(j, "lexeme", name);
        for (int k = 0; k < sc[i].n; k++)
            cJSON_AddItemToArray(parts_a, cJSON_CreateString(pl[sc[i].lang].w[sc[i].part[k]]));
        cJSON_AddItemToObject(j, "parts", parts_a);
        cJSON_AddStringToObject(f, "archetype", archetypes[sc[i].arch]);
        cJSON_AddStringToObject(f, "action", actions[sc[i].action]);
        cJSON_AddStringToObject(f, "field", fields[sc[i].field]);
        cJSON_AddStringToObject(f, "tone", tones[sc[i].tone]);
        cJSON_AddItemToObject(j, "facets", f);
        s = write_json(o, j, err);
    }
    return s;
}

static hl_status write_words(out_file *o, const pool *pl, const hl_synth_params *p, const hl_synth_counts *c,
                             hl_error *err) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory");
    cJSON_AddNumberToObject(j, "seed", (double)p->seed);
    for (int l = 0; l < N_LANG; l++) {
        cJSON *lj = cJSON_AddObjectToObject(j, lang_name[l]);
        cJSON *seen = lj ? cJSON_AddArrayToObject(lj, "seen") : NULL, *unseen = lj ? cJSON_AddArrayToObject(lj, "unseen") : NULL;
        for (int32_t i = 0; seen && unseen && i < pl[l].n; i++)
            cJSON_AddItemToArray(pl[l].unseen[i] ? unseen : seen, cJSON_CreateString(pl[l].w[i]));
    }
    cJSON *cj = cJSON_AddObjectToObject(j, "counts");
    if (cj) {
        cJSON_AddNumberToObject(cj, "train_scenes", c->train_scenes);
        cJSON_AddNumberToObject(cj, "heldout_scenes", c->heldout_scenes);
        cJSON_AddNumberToObject(cj, "unseen_scenes", c->unseen_scenes);
        cJSON_AddNumberToObject(cj, "en_scenes", c->scenes[EN]);
        cJSON_AddNumberToObject(cj, "ru_scenes", c->scenes[RU]);
        cJSON_AddNumberToObject(cj, "train_examples", (double)c->train_examples);
        cJSON_AddNumberToObject(cj, "heldout_scene_examples", (double)c->heldout_scene_examples);
        cJSON_AddNumberToObject(cj, "heldout_pair_examples", (double)c->heldout_pair_examples);
        cJSON_AddNumberToObject(cj, "unseen_examples", (double)c->unseen_examples);
    }
    return write_json(o, j, err);
}

hl_status hl_scene_synth(const hl_tokenizer *tok, const hl_synth_params *p, const char *dir, hl_synth_counts *counts,
                         hl_error *err) {
    if (!tok || !p || !dir) return hl_fail(err, HL_ERR_INVALID_ARG, "scene synth: NULL argument");
    if (p->n_scenes < 2 || p->n_scenes > 100000 || !(p->heldout_fraction >= 0 && p->heldout_fraction <= 0.9f) ||
        p->words_per_lang < 8 || p->words_per_lang > 100000 || p->unseen_per_lang < 0 ||
        p->unseen_per_lang >= p->words_per_lang || p->n_unseen_scenes < 0 || p->n_unseen_scenes > 100000 ||
        (p->n_unseen_scenes > 0 && p->unseen_per_lang == 0) || p->pairs_per_scene < 1 ||
        p->pairs_per_scene > N_PAIRS - 1 || p->min_parts < 2 || p->max_parts > MAX_PARTS || p->min_parts > p->max_parts)
        return hl_fail(err, HL_ERR_INVALID_ARG,
                       "scene synth: parameters out of range (scenes 2..100000, held-out 0..0.9, words >= 8, "
                       "unseen < words, pairs 1..%d, parts 2..%d)", N_PAIRS - 1, MAX_PARTS);
    pool pl[N_LANG];
    memset(pl, 0, sizeof pl);
    int32_t total = p->n_scenes + p->n_unseen_scenes;
    scene *sc = NULL;
    uint64_t *keys = NULL;
    out_file f[6];
    memset(f, 0, sizeof f);
    hl_synth_counts c;
    memset(&c, 0, sizeof c);
    hl_status s = build_pools(tok, p, pl, err);
    if (s != HL_OK) goto done;
    hl_rng r;
    hl_rng_seed(&r, p->seed ^ 0x73796e7468ULL); /* "synth" */
    for (int l = 0; l < N_LANG; l++) { /* the unseen words: a seeded choice per language */
        for (int32_t k = 0; k < p->unseen_per_lang;) {
            int32_t i = (int32_t)hl_rng_below(&r, (uint64_t)pl[l].n);
            if (!pl[l].unseen[i]) {
                pl[l].unseen[i] = 1;
                k++;
            }
        }
        c.words[l] = pl[l].n;
        c.unseen[l] = p->unseen_per_lang;
    }
    sc = hl_calloc((size_t)total, sizeof *sc);
    keys = hl_calloc((size_t)total, sizeof *keys);
    if (!sc || !keys) {
        s = hl_fail(err, HL_ERR_NOMEM, "scene synth: out of memory for %d scenes", (int)total);
        goto done;
    }
    int32_t n_held = (int32_t)((double)p->heldout_fraction * p->n_scenes);
    /* English's share of the scenes, en_w / all_w: its seen words' share, so a word of the larger pool is not
     * a part of fewer scenes (a reader's English, 7 times the Russian pool, read worst; BENCHMARKS.md,
     * "scenes in proportion to the words"); or one half. Scene i is English while English is behind its
     * share, which with 1/2 alternates English and Russian. */
    int64_t en_w = 1, all_w = 2;
    if (p->balance_words) {
        en_w = pl[EN].n - p->unseen_per_lang;
        all_w = en_w + pl[RU].n - p->unseen_per_lang;
    }
    for (int32_t i = 0; i < total; i++) {
        int unseen = i >= p->n_scenes;
        /* the unseen-word scenes stay half and half: each language has unseen_per_lang unseen words */
        int lang = unseen ? ((i - p->n_scenes) % 2 ? RU : EN) : c.scenes[EN] * all_w < (int64_t)(i + 1) * en_w ? EN : RU;
        if (!unseen) c.scenes[lang]++;
        for (int tries = 0;; tries++) {
            draw_scene(&r, p, pl, lang, unseen, &sc[i]);
            keys[i] = scene_key(&sc[i]);
            int dup = 0;
            for (int32_t j = 0; j < i && !dup; j++) dup = keys[j] == keys[i] && same_parts(&sc[j], &sc[i]);
            if (!dup) break;
            if (tries > 1000) {
                s = hl_fail(err, HL_ERR_INVALID_ARG, "scene synth: cannot draw %d distinct scenes from these words",
                            (int)total);
                goto done;
            }
        }
        sc[i].split = unseen ? 2 : 0;
    }
    /* Held-out scenes: a seeded choice among the first n_scenes. */
    for (int32_t k = 0; k < n_held;) {
        int32_t i = (int32_t)hl_rng_below(&r, (uint64_t)p->n_scenes);
        if (sc[i].split == 0) {
            sc[i].split = 1;
            k++;
        }
    }
    /* Training pairs: scene i holds out pair (i mod 15) and trains on pairs_per_scene others. */
    for (int32_t i = 0; i < p->n_scenes; i++) {
        if (sc[i].split != 0) continue;
        sc[i].held_pair = (int)(i % N_PAIRS);
        for (int k = 0; k < p->pairs_per_scene;) {
            int q = (int)hl_rng_below(&r, N_PAIRS);
            if (q == sc[i].held_pair || (sc[i].pairs >> q & 1)) continue;
            sc[i].pairs |= (uint16_t)(1u << q);
            k++;
        }
    }
    static const char *const names[6] = {"lexicon.jsonl", "train.jsonl", "heldout_scenes.jsonl", "heldout_pairs.jsonl",
                                         "unseen_words.jsonl", "words.json"};
    for (int k = 0; k < 6 && s == HL_OK; k++) s = open_out(&f[k], dir, names[k], err);
    if (s == HL_OK) s = write_lexicon(&f[0], pl, sc, total, err);
    for (int32_t i = 0; i < total && s == HL_OK; i++) {
        if (sc[i].split == 0) {
            c.train_scenes++;
            for (int q = 0; q < N_PAIRS && s == HL_OK; q++)
                if (sc[i].pairs >> q & 1) {
                    s = write_example(&f[1], pl, &sc[i], i, q / HL_REGISTER_COUNT, q % HL_REGISTER_COUNT, "train", err);
                    c.train_examples++;
                }
            if (s == HL_OK) {
                int q = sc[i].held_pair;
                s = write_example(&f[3], pl, &sc[i], i, q / HL_REGISTER_COUNT, q % HL_REGISTER_COUNT, "heldout_pair",
                                  err);
                c.heldout_pair_examples++;
            }
        } else if (sc[i].split == 1) {
            c.heldout_scenes++;
            for (int q = 0; q < N_PAIRS && s == HL_OK; q++) {
                s = write_example(&f[2], pl, &sc[i], i, q / HL_REGISTER_COUNT, q % HL_REGISTER_COUNT, "heldout_scene",
                                  err);
                c.heldout_scene_examples++;
            }
        } else {
            c.unseen_scenes++;
            for (int q = 0; q < 2 * HL_REGISTER_COUNT && s == HL_OK; q++) { /* symbols and formula */
                int form = q < HL_REGISTER_COUNT ? HL_FORM_SYMBOLS : HL_FORM_FORMULA;
                s = write_example(&f[4], pl, &sc[i], i, form, q % HL_REGISTER_COUNT, "unseen_words", err);
                c.unseen_examples++;
            }
        }
    }
    if (s == HL_OK) s = write_words(&f[5], pl, p, &c, err);
    for (int k = 0; k < 6 && s == HL_OK; k++) {
        s = hl_atomic_file_commit(&f[k].f, err);
        f[k].open = 0;
    }
    if (s == HL_OK && counts) *counts = c;
done:
    for (int k = 0; k < 6; k++)
        if (f[k].open) hl_atomic_file_abort(&f[k].f);
    hl_free(sc);
    hl_free(keys);
    pools_free(pl);
    return s;
}
