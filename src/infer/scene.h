/* scene.h: the scene decoder: a base model, a hyperlexeme lexicon and the
 * adapters that turn a scene into a form and register.
 *
 * The lexicon comes from --lexicon or from the first adapter that carries one
 * (hyperlora.lexicon.jsonl). Adapters are loaded once per path and chosen per
 * (form, register): the --lora list, plus a bundle's entry when one is given.
 * Decoding is greedy by default; with a temperature it samples from a seeded
 * RNG, so the same scene, adapters and seed always give the same bytes. */
#ifndef HL_INFER_SCENE_H
#define HL_INFER_SCENE_H
#include "hyperlora.h"
#include "infer/bundle.h"
#include "text/lexicon.h"

#include <stdio.h>

typedef struct hl_scene_decoder hl_scene_decoder;

typedef struct hl_scene_decoder_params {
    const char *model_path, *tokenizer_path;
    const char *lexicon_path;          /* optional */
    const char *compose;               /* with lexicon_path: "parts" / "parts+facets", NULL = the file's rule */
    const char *const *lora_paths;     /* applied for every (form, register) */
    const float *lora_scales;
    int32_t n_lora;
    const char *bundle_path;           /* optional */
    int32_t n_threads;
    int force;                         /* adapters made for another base */
} hl_scene_decoder_params;

hl_status hl_scene_decoder_init(const hl_scene_decoder_params *p, hl_scene_decoder **out, hl_error *err);
void hl_scene_decoder_free(hl_scene_decoder *d);
const hl_lexicon *hl_scene_decoder_lexicon(const hl_scene_decoder *d);
const hl_model *hl_scene_decoder_base(const hl_scene_decoder *d);
int hl_scene_decoder_has_adapters(const hl_scene_decoder *d);

/* Decodes a scene (text with lexemes) or, with scene == NULL, n_vectors mute
 * scene vectors (n_vectors × C floats). *text is hl_malloc'd, without the
 * trailing EOS and without a leading space. */
/* Mute-scene files (decode --scene-vector): raw little-endian f32, 1..
 * HL_SCENE_MAX_VECTORS vectors of C floats, every one finite. *out is
 * hl_malloc'd; name is used in messages. */
#define HL_SCENE_MAX_VECTORS 64
hl_status hl_scene_vectors_parse(const void *data, size_t size, const char *name, int64_t C, float **out,
                                 int32_t *n, hl_error *err);
hl_status hl_scene_vectors_load(const char *path, int64_t C, float **out, int32_t *n, hl_error *err);
hl_status hl_scene_decode(hl_scene_decoder *d, const char *scene, const float *vectors, int32_t n_vectors, int form,
                          int reg, const hl_sampler_params *sp, int32_t max_tokens, char **text, hl_error *err);
#endif

/* ---- evaluation: decode every example of a scene JSONL and compare ---- */

typedef struct hl_scene_eval {
    int64_t n, exact;
    int64_t edits, ref_chars;  /* character error rate = edits / ref_chars (code points) */
    int64_t per_form_n[8], per_form_exact[8];
} hl_scene_eval;

/* Greedy-decodes each {"scene","form","register","output"} line of path
 * (only lines of form only_form when >= 0; at most limit lines when > 0) and
 * accumulates exact matches and Levenshtein distance over code points. With
 * details != NULL, writes one line per example there. */
hl_status hl_scene_eval_file(hl_scene_decoder *d, const char *path, int only_form, int64_t limit,
                             hl_scene_eval *res, FILE *details, hl_error *err);
/* Levenshtein distance between two UTF-8 strings, in code points (test hook). */
int64_t hl_utf8_edit_distance(const char *a, const char *b, int64_t *len_b);
