/* lexicon.h: hyperlexemes: whole scenes as atomic tokens with frozen,
 * composed embeddings.
 *
 * A lexicon is JSONL, one entry per line:
 *   {"lexeme": "Δ21", "parts": ["тишина", "вход", "страх"],
 *    "weights": [1, 1, 2],                       (optional, one per part)
 *    "facets": {"archetype": "...", "action": "...", "field": "...", "tone": "..."}}
 * or, instead of "parts", "vector": [C floats] (a scene vector handed over by
 * an external core). Lexemes are non-empty UTF-8 without whitespace, at most
 * 256 bytes, unique, and must not collide with a special token or a control
 * lexeme. Every part must encode in the base vocabulary without <unk>.
 *
 * Tokens: the control lexemes come first, right after the base vocabulary:
 * the forms ⟨form:text⟩ ⟨form:symbols⟩ ⟨form:formula⟩ ⟨form:dialogue⟩
 * ⟨form:report⟩, the registers ⟨register:poetic⟩ ⟨register:logical⟩
 * ⟨register:technical⟩, and the separator ⟨sep⟩ (each composed from its
 * plain English word), then the lexicon's entries in file order.
 *
 * Composition (default "mean"): a lexeme's input embedding is the mean over
 * its parts of the mean of each part's token embeddings, where a part is
 * encoded as a standalone word (SentencePiece dummy-prefix space included,
 * no BOS; byte-level BPE vocabularies encode it after one space, " word",
 * the same in-sentence form). With "weights" the mean over parts is weighted (weights > 0,
 * normalised by their sum). The output-projection row is composed the same
 * way from the base output rows, so the model can emit lexemes. A "vector"
 * entry uses its vector for both rows. Nothing in the base file changes:
 * the lexicon builds a view of the model whose extra rows are frozen and
 * never trained; base-token logits on ordinary text stay bitwise the same.
 *
 * Composition "parts+facets": a first line {"compose": "parts+facets"} (or
 * hl_lexicon_load_compose) adds each facet value as one more word at weight
 * 1, next to the parts. It is for bases that cannot read the parts: when a
 * part is byte fallback only (Cyrillic in a 512-token English vocabulary), its
 * embedding is the mean of byte pieces the base never trained, and different
 * words come out nearly the same (stories260K: cosine 0.9997 between
 * "вход" and "дверь"). {"compose": "parts"} states the default.
 *
 * Order-aware rules (hyperlexeme/compose.h): "slots" and "slots+facets" transform
 * each part position by its own fixed signed permutation before a
 * norm-keeping sum, so "a b c" and "c b a" get different rows; "ranked"
 * weighs part k by 1/(k+1). The rule is part of the carried text, so an
 * adapter composes as it was trained.
 *
 * A scene-decoder example trains on
 *   [BOS] ⟨form⟩ ⟨register⟩ scene ⟨sep⟩ output [EOS]
 * with the loss on the output and EOS only. */
#ifndef HL_HYPERLEXEME_LEXICON_H
#define HL_HYPERLEXEME_LEXICON_H
#include <stdint.h>
#include "hyperlora.h"
#include "lora/adapter.h"

#define HL_LEXEME_MAX_BYTES 256
#define HL_LEXICON_MAX_ENTRIES 100000
#define HL_LEXICON_MAX_PARTS 64

/* The forms, registers, hl_lexicon and the lexicon calls a program needs are
 * public (include/hyperlora.h); this header adds what the engine uses. */

hl_status hl_lexicon_load_memory(const char *text, size_t len, const char *name, const hl_model *base,
                                 hl_lexicon **out, hl_error *err);
/* compose: NULL for the file's own rule, or a rule's name (hyperlexeme/compose.h;
 * an error if the file states another); the carried text then states it. */
hl_status hl_lexicon_load_compose(const char *path, const hl_model *base, const char *compose, hl_lexicon **out,
                                  hl_error *err);
int hl_lexicon_composes_facets(const hl_lexicon *lex);
const char *hl_lexicon_compose_rule(const hl_lexicon *lex); /* its rule's name (hyperlexeme/compose.h) */
/* Words composed for the entries (parts, and facet values under parts+facets)
 * whose tokens are all byte-fallback pieces; *total gets the number of words. */
int32_t hl_lexicon_byte_only_parts(const hl_lexicon *lex, int32_t *total);
/* The lexicon carried by an adapter (hyperlora.lexicon.* metadata); NULL in *out when it has none. */
hl_status hl_lexicon_from_adapter(const hl_adapter *a, const hl_model *base, hl_lexicon **out, hl_error *err);
/* The adapter's carried lexicon with the entries of extra_path added after
 * it (scenes declared after training; nothing is retrained): the carried
 * entries keep their token ids, the extra ones follow, composed by the
 * carried rule. A lexeme defined in both, or an extra "compose" line that
 * differs from the carried rule, is refused naming the file, line and adapter. */
hl_status hl_lexicon_from_adapter_extra(const hl_adapter *a, const hl_model *base, const char *extra_path,
                                        hl_lexicon **out, hl_error *err);
void hl_lexicon_free(hl_lexicon *lex);
/* A part's tokens as the lexicon composes it and as an output spells it
 * after a space: SentencePiece with its dummy prefix, byte-level BPE after
 * one space (" word"). *ids is released with hl_free. */
hl_status hl_lexicon_word_ids(const hl_model *m, const char *word, int32_t **ids, size_t *n, hl_error *err);

/* The base model seen with the lexicon: vocabulary extended, extra rows frozen. */
const hl_model *hl_lexicon_model(const hl_lexicon *lex);
const hl_tokenizer *hl_lexicon_tokenizer(const hl_lexicon *lex);
/* Stores the lexicon in the adapter, so a saved adapter is one self-contained decoder. */
hl_status hl_lexicon_attach(const hl_lexicon *lex, hl_adapter *a, hl_error *err);

int32_t hl_lexicon_n_entries(const hl_lexicon *lex);
const char *hl_lexicon_lexeme(const hl_lexicon *lex, int32_t i);
int32_t hl_lexicon_token(const hl_lexicon *lex, int32_t i);
int32_t hl_lexicon_find(const hl_lexicon *lex, const char *lexeme); /* entry index or -1 */
/* Up to k (<= 16) entries nearest to word by edit distance over code points
 * (ties in file order) into idx; returns how many. For "did you mean". */
int32_t hl_lexicon_nearest(const hl_lexicon *lex, const char *word, int32_t *idx, int32_t k);
/* Parts (NULL for vector entries), facets as "key=value" lines (may be ""). */
int32_t hl_lexicon_n_parts(const hl_lexicon *lex, int32_t i);
const char *hl_lexicon_part(const hl_lexicon *lex, int32_t i, int32_t p);
const char *hl_lexicon_facets(const hl_lexicon *lex, int32_t i);
const float *hl_lexicon_embedding(const hl_lexicon *lex, int32_t i); /* (C) composed input row */

const char *hl_form_name(int form);
const char *hl_register_name(int reg);
int hl_form_from_name(const char *name);      /* -1 if unknown */
int hl_register_from_name(const char *name);  /* -1 if unknown */
int32_t hl_lexicon_form_token(const hl_lexicon *lex, int form);
int32_t hl_lexicon_register_token(const hl_lexicon *lex, int reg);
int32_t hl_lexicon_sep_token(const hl_lexicon *lex);

/* HL_OK when scene is one or more lexemes separated by spaces; otherwise
 * HL_ERR_INVALID_ARG naming the first word that is not one and the nearest
 * lexemes. Training's formatter and the decoder check scenes with it. */
hl_status hl_lexicon_check_scene(const hl_lexicon *lex, const char *scene, hl_error *err);
/* The training formatter hl_lexicon_scene_format is public (include/hyperlora.h);
 * its scene must pass hl_lexicon_check_scene. */
/* The decoding prompt [BOS] ⟨form⟩ ⟨register⟩ scene ⟨sep⟩; with scene == NULL
 * the scene is n_vectors mute-scene positions (token ids -1..-n_vectors). */
hl_status hl_lexicon_scene_prompt(const hl_lexicon *lex, const char *scene, int32_t n_vectors, int form, int reg,
                                  int32_t **ids, size_t *n, hl_error *err);
#endif
