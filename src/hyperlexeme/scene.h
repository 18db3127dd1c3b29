/* scene.h: the scene decoder: a base model, a hyperlexeme lexicon and the
 * adapters that turn a scene into a form and register.
 *
 * The lexicon is the one the first adapter carries (hyperlora.lexicon.jsonl),
 * with the entries of lexicon_path added after it when both are given
 * (scenes declared after training: hl_lexicon_from_adapter_extra), or
 * lexicon_path alone when no adapter carries one. A scene is one or more
 * lexemes separated by spaces; a word that is not a lexeme is refused with
 * the nearest lexemes named, unless allow_text says plain text may stand
 * between them. Adapters are loaded once per path and chosen per
 * (form, register): the --lora list, plus a bundle's entry when one is given.
 * Decoding is greedy by default; with a temperature it samples from a seeded
 * RNG, so the same scene, adapters and seed always give the same bytes. */
#ifndef HL_HYPERLEXEME_SCENE_H
#define HL_HYPERLEXEME_SCENE_H
#include "hyperlora.h"
#include "hyperlexeme/bundle.h"
#include "hyperlexeme/lexicon.h"

#include <stdio.h>

/* hl_scene_decoder, its params, init/free, hl_scene_decode and
 * hl_scene_vectors_load are public: include/hyperlora.h. */
int hl_scene_decoder_has_adapters(const hl_scene_decoder *d);

/* Mute-scene bytes (decode --scene-vector) from memory: raw little-endian
 * f32, 1..HL_SCENE_MAX_VECTORS vectors of C floats, every one finite. *out is
 * hl_malloc'd; name is used in messages. */
hl_status hl_scene_vectors_parse(const void *data, size_t size, const char *name, int64_t C, float **out,
                                 int32_t *n, hl_error *err);

/* ---- evaluation: decode every example of a scene JSONL and compare ---- */

/* What outputs say about their scenes (scene_metrics.c). A part or facet
 * value counts where the reference output names it as a word. */
typedef struct hl_read_stats {
    int64_t n, exact;
    int64_t edits, ref_chars;       /* character error rate = edits / ref_chars (code points) */
    int64_t parts_ref, parts_hit;   /* part recall = hit / ref */
    int64_t named, named_right;     /* part precision: distinct output words that are some lexeme's part, and
                                     * of those the scene's own */
    int64_t order_n, order_ok;      /* symbols and formula outputs naming >= 2 parts: in the scene's order */
    int64_t facets_ref, facets_hit; /* facet recall */
} hl_read_stats;

/* Adds one output's part, order and facet counts to st (not n, exact or
 * the CER terms). parts and facets are the scene's (facets: values);
 * order_form says whether the form states the parts' order; is_any_part(user,
 * lowercased word) says whether a word is a part of any lexeme (NULL: no
 * precision counts). */
void hl_read_score(const char *got, const char *ref, const char *const *parts, int n_parts, const char *const *facets,
                   int n_facets, int order_form, int (*is_any_part)(void *, const char *), void *user,
                   hl_read_stats *st);
/* w as one lowercased word (as the metrics compare words); "" when w is not one word. */
void hl_read_lower_word(const char *w, char *out, size_t cap);

#define HL_EVAL_MAX_GROUPS 512
typedef struct hl_eval_group {
    char key[128];                  /* "form register lang split"; lang and split from the line, "-" if absent */
    hl_read_stats st;
} hl_eval_group;

typedef struct hl_scene_eval {
    int64_t n, exact;
    int64_t edits, ref_chars;  /* character error rate = edits / ref_chars (code points) */
    int64_t per_form_n[HL_FORM_COUNT], per_form_exact[HL_FORM_COUNT];
    hl_read_stats all;
    int32_t n_groups;          /* groups beyond HL_EVAL_MAX_GROUPS are counted in all only */
    hl_eval_group groups[HL_EVAL_MAX_GROUPS];
} hl_scene_eval;

/* Greedy-decodes each {"scene","form","register","output"} line of path
 * (only lines of form only_form when >= 0; at most limit lines when > 0) and
 * accumulates exact matches and Levenshtein distance over code points. With
 * details != NULL, writes one line per example there. */
hl_status hl_scene_eval_file(hl_scene_decoder *d, const char *path, int only_form, int64_t limit,
                             hl_scene_eval *res, FILE *details, hl_error *err);
/* Levenshtein distance between two UTF-8 strings, in code points (test hook). */
int64_t hl_utf8_edit_distance(const char *a, const char *b, int64_t *len_b);
#endif
