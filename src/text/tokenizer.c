/* tokenizer.c: the SentencePiece-style "llama" tokenizer (BPE by piece score,
 * byte fallback): building it from caller arrays, encoding and decoding. The
 * loaders (GGUF tokenizer.ggml.* metadata, llama2.c tokenizer.bin) are in
 * tokenizer_load.c, the GGUF export in tokenizer_gguf.c.
 *
 * Encoding gives exactly the ids of llama2.c run.c's encode() on llama2.c
 * vocabularies. The merge loop runs in O(n log n): symbols form a linked
 * list and candidate pairs sit in a binary heap ordered by (score desc,
 * position asc), so the pair popped is the one llama2.c's rescan would pick;
 * stale entries are skipped when popped. The text is first cut where no
 * piece could ever span the boundary (typically before each "▁"), and each
 * segment is merged alone, which keeps the heap small and in cache. The
 * plain rescan loop is kept as hl_tokenizer_encode_reference so tests can
 * hold the two equal.
 *
 * Where llama2.c has no defined behaviour we choose, and document:
 *  - control, unknown and byte pieces are never matched from text, and
 *    byte-fallback tokens never merge (as in SentencePiece; in llama2.c's
 *    vocabularies no piece contains "<0x..>", "<s>" or "<unk>", so it cannot
 *    happen there either), hence decode(encode(text)) == text;
 *  - a literal U+2581 in the text is not a space: llama2.c's pieces hold ' ',
 *    so it never matched a piece there, and it falls back to byte tokens here;
 *  - without a "▁" piece a space becomes the byte token <0x20>; without a
 *    byte token a byte becomes unk.
 * Byte-level BPE vocabularies (tokenizer.ggml.model "gpt2") share the piece
 * table, types and lookups here; their merging, pre-tokenizers and special
 * tokens live in bpe.c, which encode and decode dispatch to.
 * Not implemented: NFKC normalization, special-token parsing in
 * SentencePiece text, the unigram algorithm, models other than "llama" and
 * "gpt2".
 */
#include "text/tokenizer_internal.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/hashset.h"
#include "util/hash.h"
#include "util/heap.h"
#include "util/utf8.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

/* FNV's low bits are weak; mix before masking (murmur3 finalizer). */
static size_t slot_of(uint64_t h, size_t mask) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & mask;
}

/* Length of the valid UTF-8 sequence at s (left > 0 bytes available), or 0
 * with *why naming the defect (util/utf8.h). */
static size_t utf8_len(const uint8_t *s, size_t left, const char **why) {
    hl_utf8_defect defect;
    size_t k = hl_utf8_decode(s, left, NULL, &defect);
    if (!k) *why = hl_utf8_defect_text(defect);
    return k;
}

/* Offset of the first invalid sequence in s, or n if all valid. */
static size_t utf8_check(const uint8_t *s, size_t n, const char **why) {
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_len(s + i, n - i, why);
        if (!k) return i;
        i += k;
    }
    return n;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}
/* "<0xNN>" -> NN, else -1. */
int hl_byte_piece_value(const char *p, size_t n) {
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
    int hi = hexval(p[3]), lo = hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int hl_piece_is(const piece_ref *r, const char *s) {
    size_t n = strlen(s);
    return r->n == n && memcmp(r->p, s, n) == 0;
}

/* Pieces the encoder may produce from text (see the banner). */
static int matchable(const hl_tokenizer *t, int32_t id) {
    int32_t ty = t->types[id];
    return ty != HL_TOKEN_CONTROL && ty != HL_TOKEN_UNKNOWN && ty != HL_TOKEN_BYTE && id < t->atomic_first;
}


/* Id of the piece a‖b (b may be empty), h = FNV state after a; -1 if absent. */
static int32_t lookup_cat(const hl_tokenizer *t, uint64_t h, const char *a, size_t an, const char *b, size_t bn) {
    if (an + bn > t->max_len) return -1;
    if (bn) h = hl_fnv1a(h, b, bn);
    for (size_t i = slot_of(h, t->mask);; i = (i + 1) & t->mask) {
        int32_t id = t->table[i];
        if (id < 0) return -1;
        if (t->hash[id] != h || t->len[id] != an + bn) continue;
        const char *p = hl_tokenizer_piece_at(t, id);
        if ((an == 0 || memcmp(p, a, an) == 0) && (bn == 0 || memcmp(p + an, b, bn) == 0)) return id;
    }
}

/* Merge result of tokens a, b if it may merge (llama2.c's test), else -1. */
static int32_t pair_id(const hl_tokenizer *t, int32_t a, int32_t b) {
    if (!matchable(t, a) || !matchable(t, b)) return -1; /* byte fallback stays bytes */
    int32_t id = lookup_cat(t, t->hash[a], hl_tokenizer_piece_at(t, a), t->len[a], hl_tokenizer_piece_at(t, b), t->len[b]);
    if (id < 0 || !matchable(t, id) || !(t->scores[id] > SCORE_FLOOR)) return -1;
    return id;
}

/* Code point of an initial symbol, or -1 for byte fallback (which never merges). */
static int32_t symbol_cp(const hl_tokenizer *t, int32_t id) {
    if (!matchable(t, id) || t->len[id] == 0) return -1;
    const uint8_t *p = (const uint8_t *)hl_tokenizer_piece_at(t, id);
    uint32_t cp;
    size_t k = hl_utf8_decode(p, t->len[id], &cp, NULL);
    return k == t->len[id] ? (int32_t)cp : -1;
}

static uint64_t span_key(int32_t a, int32_t b) { return (uint64_t)a << 21 | (uint64_t)b; }

/* Whether some matchable piece contains code point a directly followed by
 * b. If not, no merge can ever join symbols across an a|b boundary. */
static int spans_possible(const hl_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = span_key(a, b);
    for (size_t i = slot_of(key, t->span_mask);; i = (i + 1) & t->span_mask) {
        if (t->spans[i] == key) return 1;
        if (t->spans[i] == 0) return 0; /* 0 = empty: pieces hold no NUL, so no key is 0 */
    }
}

/* -------------------------------------------------------------- build */

static void span_insert(uint64_t *set, size_t mask, uint64_t key) {
    size_t s = slot_of(key, mask);
    while (set[s] != 0 && set[s] != key) s = (s + 1) & mask;
    set[s] = key;
}

/* Fills t->spans from every matchable piece, growing at half load. 0 on OOM. */
static int build_spans(hl_tokenizer *t) {
    size_t cap = 1024, used = 0;
    t->spans = hl_calloc(cap, sizeof *t->spans);
    if (!t->spans) return 0;
    t->span_mask = cap - 1;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!matchable(t, i)) continue;
        const uint8_t *p = (const uint8_t *)hl_tokenizer_piece_at(t, i);
        int32_t prev = -1;
        for (size_t j = 0, k; j < t->len[i]; j += k) {
            uint32_t code;
            k = hl_utf8_decode(p + j, t->len[i] - j, &code, NULL); /* validated at build: never 0 */
            int32_t cp = (int32_t)code;
            if (prev >= 0 && !spans_possible(t, prev, cp)) {
                if (2 * (used + 1) > cap) { /* rehash into twice the size */
                    uint64_t *ns = hl_calloc(cap * 2, sizeof *ns);
                    if (!ns) return 0;
                    for (size_t q = 0; q < cap; q++)
                        if (t->spans[q]) span_insert(ns, cap * 2 - 1, t->spans[q]);
                    hl_free(t->spans);
                    t->spans = ns;
                    cap *= 2;
                    t->span_mask = cap - 1;
                }
                span_insert(t->spans, t->span_mask, span_key(prev, cp));
                used++;
            }
            prev = cp;
        }
    }
    return 1;
}

/* See tokenizer_internal.h. */
hl_status hl_tokenizer_build_pieces(int32_t n, const piece_ref *refs, const float *scores, const int32_t *types,
                                     int32_t bos, int32_t eos, int32_t unk, hl_status bad, const char *name,
                                     int byte_level, hl_tokenizer **out, hl_error *err) {
    *out = NULL;
    if (n <= 0) return hl_fail(err, bad, "%s: tokenizer has no tokens", name);
    if (n > HL_TOKENIZER_MAX_VOCAB)
        return hl_fail(err, HL_ERR_LIMIT, "%s: tokenizer has %ld tokens, above the limit of %d", name,
                       (long)n, HL_TOKENIZER_MAX_VOCAB);
    static const char *const id_names[3] = {"bos", "eos", "unknown"};
    const int32_t ids[3] = {bos, eos, unk};
    for (int k = 0; k < 3; k++)
        if (ids[k] < 0 || ids[k] >= n)
            return hl_fail(err, bad, "%s: %s token id %ld is out of range (n_vocab %ld)", name, id_names[k],
                           (long)ids[k], (long)n);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const piece_ref *r = &refs[i];
        const char *why = NULL;
        if (r->n > HL_TOKENIZER_MAX_PIECE)
            return hl_fail(err, HL_ERR_LIMIT, "%s: token %ld: piece of %zu bytes exceeds the %d-byte limit", name,
                           (long)i, r->n, HL_TOKENIZER_MAX_PIECE);
        if (r->n && memchr(r->p, 0, r->n))
            return hl_fail(err, bad, "%s: token %ld: piece contains a NUL byte", name, (long)i);
        size_t at = utf8_check((const uint8_t *)r->p, r->n, &why);
        if (at != r->n)
            return hl_fail(err, bad, "%s: token %ld: piece is not valid UTF-8 at byte offset %zu: %s", name,
                           (long)i, at, why);
        if (scores && isnan(scores[i])) return hl_fail(err, bad, "%s: token %ld: score is NaN", name, (long)i);
        if (types) {
            if (types[i] < HL_TOKEN_NORMAL || types[i] > HL_TOKEN_BYTE)
                return hl_fail(err, bad, "%s: token %ld: token type %ld is not one of 1..6", name, (long)i,
                               (long)types[i]);
            if (types[i] == HL_TOKEN_BYTE && hl_byte_piece_value(r->p, r->n) < 0)
                return hl_fail(err, bad, "%s: token %ld: type BYTE but the piece is not of the form <0xNN>", name,
                               (long)i);
        }
        if (!hl_add_size(total, r->n + 1, &total))
            return hl_fail(err, HL_ERR_LIMIT, "%s: pieces too large", name);
    }
    size_t cap = 1;
    while (cap < (size_t)n * 2) cap <<= 1; /* n <= 2^24: no overflow; load factor <= 1/2 */

    hl_tokenizer *t = hl_calloc(1, sizeof *t);
    if (!t) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for the tokenizer", name);
    t->n_vocab = n;
    t->bos = bos;
    t->eos = eos;
    t->unk = unk;
    t->blob = hl_malloc(total);
    t->off = hl_malloc_array((size_t)n, sizeof *t->off);
    t->len = hl_malloc_array((size_t)n, sizeof *t->len);
    t->hash = hl_malloc_array((size_t)n, sizeof *t->hash);
    t->scores = hl_malloc_array((size_t)n, sizeof *t->scores);
    t->types = hl_malloc_array((size_t)n, sizeof *t->types);
    t->table = hl_malloc_array(cap, sizeof *t->table);
    if (!t->blob || !t->off || !t->len || !t->hash || !t->scores || !t->types || !t->table) {
        hl_tokenizer_free(t);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %ld tokens", name, (long)n);
    }
    t->mask = cap - 1;
    memset(t->table, 0xff, cap * sizeof *t->table);
    for (int k = 0; k < 256; k++) t->byte_id[k] = -1;
    t->space_id = -1;
    size_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        const piece_ref *r = &refs[i];
        if (r->n) memcpy(t->blob + pos, r->p, r->n);
        t->blob[pos + r->n] = 0;
        t->off[i] = pos;
        t->len[i] = (uint32_t)r->n;
        t->hash[i] = hl_fnv1a(HL_FNV1A_BASIS, r->p, r->n);
        t->scores[i] = scores ? scores[i] : 0.0f;
        pos += r->n + 1;
        if (r->n > t->max_len) t->max_len = r->n;
        int32_t ty = HL_TOKEN_NORMAL;
        if (types) ty = types[i];
        else if (hl_piece_is(r, "<unk>")) ty = HL_TOKEN_UNKNOWN;
        else if (hl_piece_is(r, "<s>") || hl_piece_is(r, "</s>")) ty = HL_TOKEN_CONTROL;
        else if (hl_byte_piece_value(r->p, r->n) >= 0) ty = HL_TOKEN_BYTE;
        t->types[i] = ty;
        if (ty == HL_TOKEN_BYTE) {
            int b = hl_byte_piece_value(r->p, r->n);
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
        }
        size_t s = slot_of(t->hash[i], t->mask);
        for (;; s = (s + 1) & t->mask) {
            int32_t o = t->table[s];
            if (o < 0) { t->table[s] = i; break; }
            if (t->hash[o] == t->hash[i] && t->len[o] == r->n && memcmp(hl_tokenizer_piece_at(t, o), r->p, r->n) == 0)
                break; /* duplicate piece: the first id keeps it */
        }
    }
    t->atomic_first = n;
    t->add_bos = 1;
    int32_t sp = hl_tokenizer_find(t, SPACE_PIECE, 3);
    if (sp >= 0 && matchable(t, sp) && !byte_level) t->space_id = sp;
    if (!byte_level && !build_spans(t)) { /* the spans serve SentencePiece merging only */
        hl_tokenizer_free(t);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %ld tokens", name, (long)n);
    }
    *out = t;
    return HL_OK;
}

hl_status hl_tokenizer_init(int32_t n_vocab, const char *const *pieces, const float *scores, const int32_t *types,
                            int32_t bos_id, int32_t eos_id, int32_t unk_id, hl_tokenizer **out, hl_error *err) {
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_init: out is NULL");
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > HL_TOKENIZER_MAX_VOCAB || !pieces || !scores)
        return hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_init: n_vocab %ld out of range or NULL arrays",
                       (long)n_vocab);
    piece_ref *refs = hl_malloc_array((size_t)n_vocab, sizeof *refs);
    if (!refs) return hl_fail(err, HL_ERR_NOMEM, "hl_tokenizer_init: out of memory");
    hl_status s = HL_OK;
    for (int32_t i = 0; i < n_vocab && s == HL_OK; i++) {
        if (!pieces[i]) s = hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_init: piece %ld is NULL", (long)i);
        else refs[i] = (piece_ref){pieces[i], strnlen(pieces[i], HL_TOKENIZER_MAX_PIECE + 1)};
    }
    if (s == HL_OK)
        s = hl_tokenizer_build_pieces(n_vocab, refs, scores, types, bos_id, eos_id, unk_id, HL_ERR_INVALID_ARG, "hl_tokenizer_init",
                      0, out, err);
    hl_free(refs);
    return s;
}

/* Texts of end-of-generation tokens: generation stops at any of these (and
 * at eos), as llama.cpp's EOG set holds them (Llama-3: <|eot_id|>; Qwen:
 * <|endoftext|>, <|im_end|>, </s>, <|fim_pad|>, <|repo_name|>, <|file_sep|>). */
static const char *const EOG_TEXTS[] = {
    "</s>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
};

void hl_tokenizer_find_eog(hl_tokenizer *t) {
    t->n_eog = 0;
    for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; k++) {
        int32_t id = hl_tokenizer_find(t, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
        if (id >= 0 && id != t->eos && t->n_eog < (int)(sizeof t->eog / sizeof t->eog[0])) t->eog[t->n_eog++] = id;
    }
}

hl_status hl_tokenizer_init_byte_level(int32_t n_vocab, const char *const *pieces, const int32_t *types,
                                       const char *const *merges, int32_t n_merges, const char *pre, int32_t bos_id,
                                       int32_t eos_id, int add_bos, hl_tokenizer **out, hl_error *err) {
    const char *name = "hl_tokenizer_init_byte_level";
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: out is NULL", name);
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > HL_TOKENIZER_MAX_VOCAB || !pieces || n_merges < 0 || (n_merges && !merges))
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: n_vocab %ld or merges out of range, or NULL arrays", name,
                       (long)n_vocab);
    int p = pre ? hl_bpe_pre_from_name(pre, strlen(pre)) : HL_BPE_PRE_DEFAULT;
    if (p < 0) return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%.64s\"; supported: %s", name, pre,
                              hl_bpe_pre_names());
    piece_ref *refs = hl_malloc_array((size_t)n_vocab, sizeof *refs);
    size_t *ml = hl_malloc_array(n_merges ? (size_t)n_merges : 1, sizeof *ml);
    hl_status s = refs && ml ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    for (int32_t i = 0; i < n_vocab && s == HL_OK; i++) {
        if (!pieces[i]) s = hl_fail(err, HL_ERR_INVALID_ARG, "%s: piece %ld is NULL", name, (long)i);
        else refs[i] = (piece_ref){pieces[i], strnlen(pieces[i], HL_TOKENIZER_MAX_PIECE + 1)};
    }
    for (int32_t i = 0; i < n_merges && s == HL_OK; i++) {
        if (!merges[i]) s = hl_fail(err, HL_ERR_INVALID_ARG, "%s: merge %ld is NULL", name, (long)i);
        else ml[i] = strnlen(merges[i], 2 * HL_TOKENIZER_MAX_PIECE + 2);
    }
    if (s == HL_OK)
        s = hl_tokenizer_build_pieces(n_vocab, refs, NULL, types, bos_id, eos_id, 0, HL_ERR_INVALID_ARG, name, 1, out, err);
    if (s == HL_OK) {
        (*out)->add_bos = add_bos != 0;
        hl_tokenizer_find_eog(*out);
        s = hl_bpe_init(*out, (hl_bpe_pre)p, merges, ml, (size_t)n_merges, name, &(*out)->bpe, err);
        if (s != HL_OK) {
            hl_tokenizer_free(*out);
            *out = NULL;
        }
    }
    hl_free(refs);
    hl_free(ml);
    return s;
}

void hl_tokenizer_free(hl_tokenizer *t) {
    if (!t) return;
    hl_free(t->blob);
    hl_free(t->off);
    hl_free(t->len);
    hl_free(t->hash);
    hl_free(t->scores);
    hl_free(t->types);
    hl_free(t->table);
    hl_free(t->spans);
    hl_bpe_free(t->bpe);
    hl_free(t);
}

/* ---------------------------------------------------------- accessors */

int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t) { return t->n_vocab; }
int32_t hl_tokenizer_bos(const hl_tokenizer *t) { return t->bos; }
int32_t hl_tokenizer_eos(const hl_tokenizer *t) { return t->eos; }
int32_t hl_tokenizer_unk(const hl_tokenizer *t) { return t->unk; }
const char *hl_tokenizer_piece(const hl_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? hl_tokenizer_piece_at(t, id) : NULL;
}
float hl_tokenizer_score(const hl_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->scores[id] : 0.0f;
}
int32_t hl_tokenizer_type(const hl_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->types[id] : 0;
}
size_t hl_tokenizer_piece_len(const hl_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->len[id] : 0;
}
int hl_tokenizer_is_byte_level(const hl_tokenizer *t) { return t->bpe != NULL; }
int hl_tokenizer_is_eog(const hl_tokenizer *t, int32_t id) {
    if (id == t->eos) return 1;
    for (int k = 0; k < t->n_eog; k++)
        if (t->eog[k] == id) return 1;
    return 0;
}
int hl_tokenizer_add_bos(const hl_tokenizer *t) { return t->add_bos; }
int hl_tokenizer_add_eos(const hl_tokenizer *t) { return t->add_eos; }
const char *hl_tokenizer_pre_name(const hl_tokenizer *t) {
    return t->bpe ? hl_bpe_pre_name(hl_bpe_pre_of(t->bpe)) : NULL;
}
int32_t hl_tokenizer_find(const hl_tokenizer *t, const char *piece, size_t len) {
    if (!piece && len) return -1;
    if (len > t->max_len) return -1;
    return lookup_cat(t, hl_fnv1a(HL_FNV1A_BASIS, piece, len), piece, len, NULL, 0);
}

/* ------------------------------------------------------------- encode */

static int32_t byte_token(const hl_tokenizer *t, uint8_t b) { return t->byte_id[b] >= 0 ? t->byte_id[b] : t->unk; }

/* Appends the initial symbols of text (dummy prefix, then one per code
 * point, byte tokens where no piece matches) to sym; returns their count,
 * or (size_t)-1 after reporting invalid UTF-8. sym holds len + 1 entries. */
static size_t initial_symbols(const hl_tokenizer *t, const uint8_t *s, size_t len, int32_t *sym, int dummy_prefix,
                              size_t base_offset, hl_error *err) {
    size_t n = 0;
    if (len == 0) return 0;
    if (dummy_prefix) sym[n++] = t->space_id >= 0 ? t->space_id : byte_token(t, ' ');
    for (size_t i = 0; i < len;) {
        const char *why = NULL;
        size_t k = utf8_len(s + i, len - i, &why);
        if (!k) {
            hl_fail(err, HL_ERR_INVALID_ARG, "invalid UTF-8 at byte offset %zu: %s (byte 0x%02X)", base_offset + i,
                    why, s[i]);
            return (size_t)-1;
        }
        int32_t id = -1;
        if (k == 1 && s[i] == ' ') {
            id = t->space_id >= 0 ? t->space_id : byte_token(t, ' ');
        } else if (!(k == 3 && memcmp(s + i, SPACE_PIECE, 3) == 0)) {
            id = hl_tokenizer_find(t, (const char *)s + i, k);
            if (id >= 0 && !matchable(t, id)) id = -1;
        }
        if (id >= 0) {
            sym[n++] = id;
        } else {
            for (size_t j = 0; j < k; j++) sym[n++] = byte_token(t, s[i + j]);
        }
        i += k;
    }
    return n;
}

/* llama2.c's loop: rescan every adjacent pair, merge the best (strictly
 * greater score wins, so the leftmost of equals), repeat. O(n^2). */
static size_t merge_naive(const hl_tokenizer *t, int32_t *tok, size_t n) {
    for (;;) {
        float best = SCORE_FLOOR;
        size_t best_i = (size_t)-1;
        int32_t best_id = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t id = pair_id(t, tok[i], tok[i + 1]);
            if (id >= 0 && t->scores[id] > best) {
                best = t->scores[id];
                best_i = i;
                best_id = id;
            }
        }
        if (best_id < 0) return n;
        tok[best_i] = best_id;
        memmove(tok + best_i + 1, tok + best_i + 2, (n - best_i - 2) * sizeof *tok);
        n--;
    }
}

/* A candidate merge of node left (spanning lcnt initial symbols) with the
 * node right after it (rcnt symbols). It is stale once either span changed. */
typedef struct cand {
    float score;
    int32_t left, lcnt, rcnt, id;
} cand;

/* Heap order: higher score first, then leftmost, as llama2.c's rescan picks. */
static int cand_before(const void *x, const void *y, const void *unused) {
    const cand *a = x, *b = y;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap * 2, bytes;
        if (!hl_mul_size(cap, sizeof *h->v, &bytes)) return 0;
        cand *nv = hl_realloc(h->v, bytes);
        if (!nv) return 0;
        h->v = nv;
        h->cap = cap;
    }
    hl_heap_push(h->v, &h->n, sizeof c, &c, cand_before, NULL);
    return 1;
}

static cand heap_pop(heap *h) {
    cand top;
    hl_heap_pop(h->v, &h->n, sizeof top, &top, cand_before, NULL);
    return top;
}

/* Nodes are indexed by their first initial symbol; cnt == 0 marks a node
 * merged into its left neighbour. */
typedef struct node {
    int32_t tok, cnt, prev, next;
} node;

static int try_push(const hl_tokenizer *t, heap *h, const node *nd, int32_t l, int32_t r) {
    int32_t id = pair_id(t, nd[l].tok, nd[r].tok);
    if (id < 0) return 1;
    return heap_push(h, (cand){t->scores[id], l, nd[l].cnt, nd[r].cnt, id});
}

/* Merges the symbols tok[0..n) in place, node array nd[0..n) and heap h
 * supplied by the caller; returns the symbol count left. 0 on OOM. */
static size_t merge_segment(const hl_tokenizer *t, int32_t *tok, size_t n, node *nd, heap *h) {
    if (n < 2) return n;
    for (size_t i = 0; i < n; i++)
        nd[i] = (node){tok[i], 1, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    h->n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!try_push(t, h, nd, (int32_t)i, (int32_t)i + 1)) return 0;
    while (h->n) {
        cand c = heap_pop(h);
        int32_t l = c.left, r = c.left + c.lcnt;
        if (nd[l].cnt != c.lcnt || (size_t)r >= n || nd[r].cnt != c.rcnt) continue; /* stale */
        nd[l].tok = c.id;
        nd[l].cnt += nd[r].cnt;
        nd[r].cnt = 0;
        nd[l].next = nd[r].next;
        if (nd[l].next >= 0) nd[nd[l].next].prev = l;
        if (nd[l].prev >= 0 && !try_push(t, h, nd, nd[l].prev, l)) return 0;
        if (nd[l].next >= 0 && !try_push(t, h, nd, l, nd[l].next)) return 0;
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = nd[i].next) tok[m++] = nd[i].tok;
    return m;
}

/* Same result as merge_naive in O(n log n); compacts tok in place.
 * Symbols are cut into segments at boundaries no piece spans (see
 * spans_possible): merges on either side of such a boundary never interact,
 * so merging each segment alone performs, in the same order relative to
 * each other, exactly the merges the whole-text loop would. This keeps the
 * heap word-sized and in cache. */
static hl_status merge_fast(const hl_tokenizer *t, int32_t *tok, size_t *np, hl_error *err) {
    size_t n = *np;
    if (n < 2) return HL_OK;
    node *nd = hl_malloc_array(n, sizeof *nd);
    heap h = {NULL, 0, n < 256 ? n : 256};
    h.v = hl_malloc_array(h.cap, sizeof(cand));
    if (!nd || !h.v) goto oom;
    size_t m = 0, start = 0;
    int32_t prev_cp = symbol_cp(t, tok[0]);
    for (size_t i = 1; i <= n; i++) {
        int32_t cp = i < n ? symbol_cp(t, tok[i]) : -1;
        if (i == n || prev_cp < 0 || cp < 0 || !spans_possible(t, prev_cp, cp)) {
            /* m <= start: the segment moves left, never over unread symbols */
            memmove(tok + m, tok + start, (i - start) * sizeof *tok);
            size_t k = merge_segment(t, tok + m, i - start, nd, &h);
            if (!k) goto oom;
            m += k;
            start = i;
        }
        prev_cp = cp;
    }
    *np = m;
    hl_free(nd);
    hl_free(h.v);
    return HL_OK;
oom:
    hl_free(nd);
    hl_free(h.v);
    return hl_fail(err, HL_ERR_NOMEM, "encode: out of memory for %zu symbols", n);
}

/* BPE-encodes one run of text (no atomic pieces inside) and appends it to out. */
static hl_status encode_run(const hl_tokenizer *t, const uint8_t *s, size_t len, int dummy_prefix, size_t offset,
                            int32_t *out, size_t *n, int reference, hl_error *err) {
    size_t ns = initial_symbols(t, s, len, out + *n, dummy_prefix, offset, err);
    if (ns == (size_t)-1) return HL_ERR_INVALID_ARG;
    if (reference) {
        ns = merge_naive(t, out + *n, ns);
    } else {
        hl_status st = merge_fast(t, out + *n, &ns, err);
        if (st != HL_OK) return st;
    }
    *n += ns;
    return HL_OK;
}

/* The longest atomic piece starting at s (len bytes left), or -1. */
static int32_t atomic_at(const hl_tokenizer *t, const uint8_t *s, size_t len, size_t *match_len) {
    if (!t->atomic_lead[s[0]]) return -1;
    size_t max = len < t->atomic_max_len ? len : t->atomic_max_len;
    for (size_t l = max; l >= 1; l--) {
        int32_t id = hl_tokenizer_find(t, (const char *)s, l);
        if (id >= t->atomic_first) {
            *match_len = l;
            return id;
        }
    }
    return -1;
}

/* Byte-level BPE: the whole text is checked first, so an error names its offset. */
static hl_status encode_byte_level(const hl_tokenizer *t, const uint8_t *s, size_t len, int parse_special,
                                   int reference, int32_t *out, size_t *n, hl_error *err) {
    const char *why = NULL;
    size_t at = utf8_check(s, len, &why);
    if (at != len)
        return hl_fail(err, HL_ERR_INVALID_ARG, "invalid UTF-8 at byte offset %zu: %s (byte 0x%02X)", at, why, s[at]);
    return hl_bpe_encode(t->bpe, t, s, len, parse_special, reference, out, n, err);
}

static hl_status encode_impl(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                             int parse_special, int32_t **ids, size_t *n_ids, hl_error *err, int reference) {
    if (!ids || !n_ids || !t || (!text && len))
        return hl_fail(err, HL_ERR_INVALID_ARG, "encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > HL_TOKENIZER_MAX_TEXT)
        return hl_fail(err, HL_ERR_LIMIT, "encode: text of %zu bytes exceeds the %u-byte limit", len,
                       HL_TOKENIZER_MAX_TEXT);
    /* At most one symbol per byte, plus the dummy prefix, bos and eos. */
    int32_t *out = hl_malloc_array(len + 3, sizeof *out);
    if (!out) return hl_fail(err, HL_ERR_NOMEM, "encode: out of memory for %zu bytes of text", len);
    size_t n = 0;
    hl_status st = HL_OK;
    const uint8_t *s = (const uint8_t *)text;
    if (add_bos) out[n++] = t->bos;
    if (t->bpe) {
        st = encode_byte_level(t, s, len, parse_special, reference, out, &n, err);
    } else if (t->atomic_first >= t->n_vocab) {
        st = encode_run(t, s, len, 1, 0, out, &n, reference, err);
    } else {
        /* Split on atomic pieces (longest match, left to right); only a run at
         * the very start of the text gets the dummy-prefix space, so text
         * without atomic pieces encodes exactly as before. */
        size_t run = 0;
        for (size_t i = 0; i < len && st == HL_OK;) {
            size_t ml = 0;
            int32_t id = atomic_at(t, s + i, len - i, &ml);
            if (id >= 0) {
                if (i > run) st = encode_run(t, s + run, i - run, run == 0, run, out, &n, reference, err);
                out[n++] = id;
                i += ml;
                run = i;
                continue;
            }
            const char *why = NULL;
            size_t k = utf8_len(s + i, len - i, &why);
            if (!k) {
                st = hl_fail(err, HL_ERR_INVALID_ARG, "invalid UTF-8 at byte offset %zu: %s (byte 0x%02X)", i, why,
                             s[i]);
                break;
            }
            i += k;
        }
        if (st == HL_OK && run < len) st = encode_run(t, s + run, len - run, run == 0, run, out, &n, reference, err);
    }
    if (st != HL_OK) {
        hl_free(out);
        return st;
    }
    if (add_eos) out[n++] = t->eos;
    int32_t *shrunk = hl_realloc(out, (n ? n : 1) * sizeof *out); /* failure just keeps the larger block */
    *ids = shrunk ? shrunk : out;
    *n_ids = n;
    return HL_OK;
}

hl_status hl_tokenizer_extend(const hl_tokenizer *base, const char *const *atomic, int32_t n_atomic,
                              hl_tokenizer **out, hl_error *err) {
    *out = NULL;
    if (!base || n_atomic < 0 || (n_atomic && !atomic))
        return hl_fail(err, HL_ERR_INVALID_ARG, "extend: bad arguments");
    if (base->atomic_first < base->n_vocab)
        return hl_fail(err, HL_ERR_INVALID_ARG, "extend: the tokenizer already has atomic pieces");
    int64_t total = (int64_t)base->n_vocab + n_atomic;
    if (total > HL_TOKENIZER_MAX_VOCAB)
        return hl_fail(err, HL_ERR_LIMIT, "extend: %lld tokens exceed the limit of %d", (long long)total,
                       HL_TOKENIZER_MAX_VOCAB);
    piece_ref *refs = hl_malloc_array((size_t)total, sizeof *refs);
    float *scores = hl_malloc_array((size_t)total, sizeof *scores);
    int32_t *types = hl_malloc_array((size_t)total, sizeof *types);
    hl_status st = refs && scores && types ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "extend: out of memory");
    hl_hashset seen; /* the atomic pieces so far: a repeat is found in O(1), not by a scan */
    hl_hashset_init(&seen);
    for (int32_t i = 0; st == HL_OK && i < base->n_vocab; i++) {
        refs[i] = (piece_ref){hl_tokenizer_piece_at(base, i), base->len[i]};
        scores[i] = base->scores[i];
        types[i] = base->types[i];
    }
    for (int32_t k = 0; st == HL_OK && k < n_atomic; k++) {
        const char *a = atomic[k];
        size_t an = a ? strnlen(a, HL_TOKENIZER_MAX_PIECE + 1) : 0;
        if (an == 0 || an > HL_TOKENIZER_MAX_PIECE) {
            st = hl_fail(err, HL_ERR_INVALID_ARG, "extend: atomic piece %d is empty or longer than %d bytes", k,
                         HL_TOKENIZER_MAX_PIECE);
            break;
        }
        char shown[HL_ESCAPE_NAME];
        int32_t clash = hl_tokenizer_find(base, a, an);
        if (clash >= 0) {
            st = hl_fail(err, HL_ERR_INVALID_ARG, "extend: \"%s\" is already the base token %d",
                         hl_escape(a, an, shown, sizeof shown), clash);
            break;
        }
        int64_t first = -1;
        int added = hl_hashset_add(&seen, a, an, &first);
        if (added <= 0) {
            st = added < 0 ? hl_fail(err, HL_ERR_NOMEM, "extend: out of memory")
                           : hl_fail(err, HL_ERR_INVALID_ARG, "extend: \"%s\" is given twice (atomic pieces %lld and %d)",
                                     hl_escape(a, an, shown, sizeof shown), (long long)first, k);
            break;
        }
        refs[base->n_vocab + k] = (piece_ref){a, an};
        scores[base->n_vocab + k] = 0.0f;
        types[base->n_vocab + k] = HL_TOKEN_USER_DEFINED;
    }
    hl_hashset_free(&seen);
    hl_tokenizer *t = NULL;
    if (st == HL_OK)
        st = hl_tokenizer_build_pieces((int32_t)total, refs, scores, types, base->bos, base->eos, base->unk, HL_ERR_INVALID_ARG,
                       "extend", base->bpe != NULL, &t, err);
    if (st == HL_OK) {
        t->add_bos = base->add_bos;
        t->add_eos = base->add_eos;
        memcpy(t->eog, base->eog, sizeof t->eog);
        t->n_eog = base->n_eog;
    }
    if (st == HL_OK && base->bpe) { /* byte-level: the atomic pieces join the special tokens */
        t->atomic_first = base->n_vocab;
        st = hl_bpe_clone(base->bpe, t, &t->bpe, err);
        if (st != HL_OK) {
            hl_tokenizer_free(t);
            t = NULL;
        }
    } else if (st == HL_OK) {
        t->atomic_first = base->n_vocab;
        for (int32_t k = 0; k < n_atomic; k++) {
            int32_t id = base->n_vocab + k;
            t->atomic_lead[(uint8_t)hl_tokenizer_piece_at(t, id)[0]] = 1;
            if (t->len[id] > t->atomic_max_len) t->atomic_max_len = t->len[id];
        }
        /* The merge spans must not lead into atomic pieces: rebuild them. */
        hl_free(t->spans);
        t->spans = NULL;
        if (!build_spans(t)) {
            hl_tokenizer_free(t);
            t = NULL;
            st = hl_fail(err, HL_ERR_NOMEM, "extend: out of memory");
        }
    }
    hl_free(refs);
    hl_free(scores);
    hl_free(types);
    if (st == HL_OK) *out = t;
    return st;
}

hl_status hl_tokenizer_encode(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                              int32_t **ids, size_t *n_ids, hl_error *err) {
    return encode_impl(t, text, len, add_bos, add_eos, 0, ids, n_ids, err, 0);
}

hl_status hl_tokenizer_encode_special(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                                      int parse_special, int32_t **ids, size_t *n_ids, hl_error *err) {
    return encode_impl(t, text, len, add_bos, add_eos, parse_special, ids, n_ids, err, 0);
}

hl_status hl_tokenizer_encode_reference(const hl_tokenizer *t, const char *text, size_t len, int add_bos,
                                        int add_eos, int32_t **ids, size_t *n_ids, hl_error *err) {
    return encode_impl(t, text, len, add_bos, add_eos, 0, ids, n_ids, err, 1);
}

/* ------------------------------------------------------------- decode */

/* Returns the bytes written: the decoding truncated to cap when longer. */
size_t hl_tokenizer_decode(const hl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap) {
    return hl_tokenizer_decode_special(t, prev, id, 0, buf, cap);
}

size_t hl_tokenizer_decode_special(const hl_tokenizer *t, int32_t prev, int32_t id, int special, char *buf,
                                   size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab || (!buf && cap)) return 0;
    if (t->bpe) return hl_bpe_decode(t->bpe, t, id, special, buf, cap);
    int32_t ty = t->types[id];
    const char *p = hl_tokenizer_piece_at(t, id);
    size_t n = t->len[id], w = 0;
    if (ty == HL_TOKEN_CONTROL) {
        if (!special) return 0;
        size_t w0 = n < cap ? n : cap;
        memcpy(buf, p, w0);
        return w0;
    }
    if (ty == HL_TOKEN_BYTE) {
        if (cap == 0) return 0;
        buf[0] = (char)hl_byte_piece_value(p, n);
        return 1;
    }
    size_t i = 0;
    if (prev == t->bos && n >= 3 && memcmp(p, SPACE_PIECE, 3) == 0) i = 3; /* SentencePiece drops the dummy prefix */
    while (i < n && w < cap) {
        if (n - i >= 3 && memcmp(p + i, SPACE_PIECE, 3) == 0) {
            buf[w++] = ' ';
            i += 3;
        } else {
            buf[w++] = p[i++];
        }
    }
    return w;
}
