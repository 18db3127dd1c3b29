/* scene_synth.h: a seeded generator of scene-decoder corpora: lexicons and
 * examples built from the base's own words and per-(form, register)
 * templates, in English and Russian, with splits for judging whether a
 * decoder reads scenes rather than remembering them.
 *
 * Words. The parts are whole words the base spells as one token: pieces
 * "▁word" (byte-level BPE: pieces decoding to " word", one token after a
 * space) of the base vocabulary whose letters are all lowercase Latin
 * (English) or all lowercase Cyrillic (Russian), at least 3 letters long, and
 * that the tokenizer encodes back to that one piece. Up to words_per_lang of
 * each language are taken, in vocabulary order (lower ids first).
 * unseen_per_lang of them, chosen by the seed, never appear as parts of a
 * training scene.
 *
 * Scenes. n_scenes scenes, English and Russian interleaved in proportion to
 * the languages' seen words (balance_words, the default: every word is a part
 * about equally often, however unequal the pools) or alternately (half the
 * scenes each), each with 2 to 5
 * distinct parts of its language (uniform), in order, and four facets
 * (archetype, action, field, tone) from fixed English pools. No two scenes
 * share the same parts in the same order. A held-out share of the scenes
 * (new combinations of known words) never trains; each training scene trains
 * on pairs_per_scene (form, register) pairs and holds one more pair out
 * (every pair is trained on other scenes); n_unseen_scenes more scenes each
 * hold exactly one unseen word.
 *
 * Templates keep every part in the form given (dictionary form; Russian parts
 * stay in the nominative, in lists and after a colon or dash), so a part is
 * read iff it appears as a whole word in the output; part recall can match
 * exact word forms in both languages. Every form states the parts in the
 * scene's order, and writes a facet (the symbols glyph, a report's tone)
 * after them: a reader peels a decay row's parts off by strength, and a
 * facet read before them competes with all of them.
 *
 * Output files (JSONL, one object per line, byte-stable for a seed):
 *   lexicon.jsonl          every scene: {"lexeme", "parts", "facets"}
 *   train.jsonl            {"scene", "form", "register", "output", "lang", "split": "train"}
 *   heldout_scenes.jsonl   held-out scenes, every (form, register) pair
 *   heldout_pairs.jsonl    training scenes in the pair each one held out
 *   unseen_words.jsonl     the unseen-word scenes, symbols and formula forms
 *   words.json             the word pools, which are unseen, and the counts */
#ifndef HL_HYPERLEXEME_SCENE_SYNTH_H
#define HL_HYPERLEXEME_SCENE_SYNTH_H
#include <stdint.h>
#include "hyperlora.h"
#include "text/tokenizer.h"

typedef struct hl_synth_params {
    uint64_t seed;
    int32_t n_scenes;         /* training + held-out scenes (default 2000) */
    float heldout_fraction;   /* share of n_scenes held out, 0..0.9 (default 0.2) */
    int32_t words_per_lang;   /* parts pool per language (default 400) */
    int32_t unseen_per_lang;  /* words per language never parts in training (default 20) */
    int32_t n_unseen_scenes;  /* scenes holding unseen words (default 100) */
    int32_t pairs_per_scene;  /* (form, register) pairs each training scene trains on, 1..14 (default 3) */
    int32_t min_parts, max_parts; /* 2..5 */
    int balance_words;        /* 1: scenes per language in proportion to its seen words (default); 0: half each */
} hl_synth_params;

void hl_synth_params_default(hl_synth_params *p);

typedef struct hl_synth_counts {
    int32_t words[2], unseen[2]; /* [0] English, [1] Russian */
    int32_t train_scenes, heldout_scenes, unseen_scenes;
    int32_t scenes[2];           /* training and held-out scenes per language */
    int64_t train_examples, heldout_scene_examples, heldout_pair_examples, unseen_examples;
} hl_synth_counts;

/* Writes the files above into dir (which must exist), each crash-safe. */
hl_status hl_scene_synth(const hl_tokenizer *tok, const hl_synth_params *p, const char *dir, hl_synth_counts *counts,
                         hl_error *err);
#endif
