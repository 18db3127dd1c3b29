/* bpe_train.c: the BPE trainer (see bpe_train.h for the contract).
 *
 * Pipeline: (1) validate the UTF-8 and count code points, the dummy-prefix
 * and space "▁" included; (2) keep the most frequent characters up to the
 * coverage (SentencePiece's rule); (3) cut the text into words as the
 * encoder would see them and count distinct words; (4) classic BPE over the
 * distinct words, weighted by their counts: the pair counts live in a hash
 * map, each pair keeps the list of words it occurs in, and a lazy max-heap
 * (stale entries are fixed when popped) gives the most frequent pair, ties
 * to the lexicographically smallest concatenation.
 *
 * Why the encoder reproduces the merges: a merge applied to all occurrences
 * in order never lets a piece's string sit in the symbol list split any
 * other way than its own merge (a region holding no crossing symbol evolves
 * exactly like the string alone, and the string alone ends as that merge),
 * so at every step the adjacent pairs whose concatenation is a piece are
 * exactly the applicable merges, and the highest score is the earliest one.
 * tests/test_bpe_train.c checks this against a plain merge-in-order apply.
 */
#include "text/bpe_train.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/heap.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_PIECE "\xe2\x96\x81" /* U+2581 */
#define SPACE_CP 0x2581
#define N_CP 0x110000
#define N_SPECIAL 3
#define FIRST_CHAR HL_BPE_FIRST_CHAR_ID
#define CHAR_SCORE (-1e6f)

/* FNV's low bits are weak; mix before masking (murmur3 finalizer). */
static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

void hl_bpe_train_params_default(hl_bpe_train_params *p) {
    memset(p, 0, sizeof *p);
    p->min_frequency = 2;
    p->max_piece_bytes = 16;
    p->character_coverage = 0.9999;
    p->line_dummy_prefix = 1;
}

/* Length of the UTF-8 sequence at s (left > 0) with its code point, or 0
 * with *why set. Same acceptance as the encoder: no overlongs, surrogates
 * or code points above U+10FFFF. */
static size_t utf8_next(const uint8_t *s, size_t left, int32_t *cp, const char **why) {
    hl_utf8_defect defect;
    uint32_t code;
    size_t k = hl_utf8_decode(s, left, &code, &defect);
    *cp = k ? (int32_t)code : -1;
    if (!k) *why = defect == HL_UTF8_MISSING_CONTINUATION ? "truncated sequence" : hl_utf8_defect_text(defect);
    return k;
}

/* ---------------------------------------------------------- vocabulary */

/* Pieces (GGUF form, NUL-terminated) back to back, with a string hash set
 * so that merges never create a piece twice. */
typedef struct vocab {
    char *arena;
    size_t used, cap;
    size_t *off;
    uint32_t *len;
    uint64_t *hash;
    int32_t n, cap_n;
    int32_t *table; /* -1 = empty, load <= 1/2 */
    size_t mask;
} vocab;

static const char *piece(const vocab *v, int32_t id) { return v->arena + v->off[id]; }

static int32_t vocab_find2(const vocab *v, const char *a, size_t an, const char *b, size_t bn) {
    uint64_t h = hl_fnv1a(hl_fnv1a(HL_FNV1A_BASIS, a, an), b, bn);
    for (size_t i = mix(h) & v->mask;; i = (i + 1) & v->mask) {
        int32_t id = v->table[i];
        if (id < 0) return -1;
        const char *p = piece(v, id);
        if (v->hash[id] == h && v->len[id] == an + bn && !memcmp(p, a, an) && !memcmp(p + an, b, bn)) return id;
    }
}

static int vocab_reserve(vocab *v, size_t bytes) {
    if (v->n == v->cap_n) {
        int32_t nc = v->cap_n ? v->cap_n * 2 : 1024;
        size_t *no = hl_realloc(v->off, (size_t)nc * sizeof *no);
        if (!no) return 0;
        v->off = no;
        uint32_t *nl = hl_realloc(v->len, (size_t)nc * sizeof *nl);
        if (!nl) return 0;
        v->len = nl;
        uint64_t *nh = hl_realloc(v->hash, (size_t)nc * sizeof *nh);
        if (!nh) return 0;
        v->hash = nh;
        v->cap_n = nc;
    }
    if (v->used + bytes > v->cap) {
        size_t nc = v->cap ? v->cap : 8192;
        while (v->used + bytes > nc) nc *= 2;
        char *na = hl_realloc(v->arena, nc);
        if (!na) return 0;
        v->arena = na;
        v->cap = nc;
    }
    if ((size_t)(v->n + 1) * 2 > v->mask + 1) { /* rehash into twice the size */
        size_t cap = (v->mask + 1) * 2;
        int32_t *nt = hl_malloc_array(cap, sizeof *nt);
        if (!nt) return 0;
        memset(nt, 0xff, cap * sizeof *nt);
        for (int32_t id = 0; id < v->n; id++) {
            size_t i = mix(v->hash[id]) & (cap - 1);
            while (nt[i] >= 0) i = (i + 1) & (cap - 1);
            nt[i] = id;
        }
        hl_free(v->table);
        v->table = nt;
        v->mask = cap - 1;
    }
    return 1;
}

/* Registers the n bytes just written at the end of the arena as a piece. */
static int32_t vocab_commit(vocab *v, size_t n) {
    char *d = v->arena + v->used;
    d[n] = 0;
    int32_t id = v->n++;
    v->off[id] = v->used;
    v->len[id] = (uint32_t)n;
    v->hash[id] = hl_fnv1a(HL_FNV1A_BASIS, d, n);
    v->used += n + 1;
    size_t i = mix(v->hash[id]) & v->mask;
    while (v->table[i] >= 0) i = (i + 1) & v->mask;
    v->table[i] = id;
    return id;
}

/* Appends the piece a‖b (known absent; not pointing into the arena). -1 on OOM. */
static int32_t vocab_add2(vocab *v, const char *a, size_t an, const char *b, size_t bn) {
    if (!vocab_reserve(v, an + bn + 1)) return -1;
    memcpy(v->arena + v->used, a, an);
    memcpy(v->arena + v->used + an, b, bn);
    return vocab_commit(v, an + bn);
}

/* Appends the concatenation of pieces a and b (known absent). -1 on OOM. */
static int32_t vocab_add_pair(vocab *v, int32_t a, int32_t b) {
    size_t an = v->len[a], bn = v->len[b];
    if (!vocab_reserve(v, an + bn + 1)) return -1; /* may move the arena: take pointers after */
    memcpy(v->arena + v->used, piece(v, a), an);
    memcpy(v->arena + v->used + an, piece(v, b), bn);
    return vocab_commit(v, an + bn);
}

static void vocab_free(vocab *v) {
    hl_free(v->arena);
    hl_free(v->off);
    hl_free(v->len);
    hl_free(v->hash);
    hl_free(v->table);
}

/* Compares the byte strings a‖b and c‖d. */
static int cat_cmp(const vocab *v, int32_t a, int32_t b, int32_t c, int32_t d) {
    const uint8_t *x0 = (const uint8_t *)piece(v, a), *x1 = (const uint8_t *)piece(v, b);
    const uint8_t *y0 = (const uint8_t *)piece(v, c), *y1 = (const uint8_t *)piece(v, d);
    size_t xn0 = v->len[a], xn = xn0 + v->len[b], yn0 = v->len[c], yn = yn0 + v->len[d];
    for (size_t k = 0; k < xn && k < yn; k++) {
        uint8_t x = k < xn0 ? x0[k] : x1[k - xn0], y = k < yn0 ? y0[k] : y1[k - yn0];
        if (x != y) return x < y ? -1 : 1;
    }
    return xn < yn ? -1 : xn > yn;
}

/* ------------------------------------------------------------- trainer */

typedef struct word {
    size_t off, clen;  /* the text after the leading space or dummy prefix */
    uint64_t hash;
    int64_t count;
    int32_t prefix;    /* starts with "▁" */
    int32_t ncp;       /* code points in the text part */
} word;

typedef struct pair {
    int32_t a, b;
    int64_t count;
    int32_t *where;    /* words that held the pair when it was counted up (may be stale, may repeat) */
    uint32_t n_where, cap_where;
    int32_t touched;   /* step that last counted it up */
    int32_t banned;    /* too long, or its concatenation already is a piece */
} pair;

typedef struct hentry {
    int64_t count;
    int32_t pair;
} hentry;

typedef struct trainer {
    const uint8_t *text;
    int64_t min_freq;
    vocab v;
    word *w;
    int32_t n_words, cap_words;
    int32_t *wtable;
    size_t wmask;
    int32_t *pool;     /* every word's symbols */
    size_t *woff;
    int32_t *wlen;
    int32_t *wstamp;   /* step that last rewrote the word */
    pair *p;
    int32_t n_pairs, cap_pairs;
    int32_t *ptable;
    size_t pmask;
    hentry *heap;
    size_t n_heap, cap_heap;
    int32_t *touched;
    int32_t n_touched, cap_touched;
    int32_t step;
} trainer;

/* Adds one occurrence of the word text[off, off+clen) (with prefix) to the counts. 0 on OOM/limit. */
static int word_add(trainer *t, int prefix, size_t off, size_t clen, int32_t ncp) {
    uint64_t h = hl_fnv1a(HL_FNV1A_BASIS, t->text + off, clen) ^ (uint64_t)prefix;
    size_t i = mix(h) & t->wmask;
    for (;; i = (i + 1) & t->wmask) {
        int32_t id = t->wtable[i];
        if (id < 0) break;
        word *x = &t->w[id];
        if (x->hash == h && x->prefix == prefix && x->clen == clen && !memcmp(t->text + x->off, t->text + off, clen)) {
            x->count++;
            return 1;
        }
    }
    if (t->n_words == t->cap_words) {
        if (t->cap_words > INT32_MAX / 2) return 0;
        int32_t nc = t->cap_words ? t->cap_words * 2 : 4096;
        word *nw = hl_realloc(t->w, (size_t)nc * sizeof *nw);
        if (!nw) return 0;
        t->w = nw;
        t->cap_words = nc;
    }
    int32_t id = t->n_words++;
    t->w[id] = (word){off, clen, h, 1, prefix, ncp};
    t->wtable[i] = id;
    if ((size_t)t->n_words * 2 > t->wmask + 1) {
        size_t cap = (t->wmask + 1) * 2;
        int32_t *nt = hl_malloc_array(cap, sizeof *nt);
        if (!nt) return 0;
        memset(nt, 0xff, cap * sizeof *nt);
        for (int32_t k = 0; k < t->n_words; k++) {
            size_t j = mix(t->w[k].hash) & (cap - 1);
            while (nt[j] >= 0) j = (j + 1) & (cap - 1);
            nt[j] = k;
        }
        hl_free(t->wtable);
        t->wtable = nt;
        t->wmask = cap - 1;
    }
    return 1;
}

static size_t pair_slot(int32_t a, int32_t b, size_t mask) {
    return (size_t)mix((uint64_t)(uint32_t)a << 32 | (uint32_t)b) & mask;
}

static int32_t pair_find(const trainer *t, int32_t a, int32_t b) {
    for (size_t i = pair_slot(a, b, t->pmask);; i = (i + 1) & t->pmask) {
        int32_t id = t->ptable[i];
        if (id < 0 || (t->p[id].a == a && t->p[id].b == b)) return id;
    }
}

/* The pair (a, b), created with count 0 if new; -1 on OOM/limit. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b) {
    size_t i = pair_slot(a, b, t->pmask);
    for (;; i = (i + 1) & t->pmask) {
        int32_t id = t->ptable[i];
        if (id < 0) break;
        if (t->p[id].a == a && t->p[id].b == b) return id;
    }
    if (t->n_pairs == t->cap_pairs) {
        if (t->cap_pairs > INT32_MAX / 2) return -1;
        int32_t nc = t->cap_pairs ? t->cap_pairs * 2 : 4096;
        pair *np = hl_realloc(t->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        t->p = np;
        t->cap_pairs = nc;
    }
    int32_t id = t->n_pairs++;
    t->p[id] = (pair){a, b, 0, NULL, 0, 0, -1, 0};
    t->ptable[i] = id;
    if ((size_t)t->n_pairs * 2 > t->pmask + 1) {
        size_t cap = (t->pmask + 1) * 2;
        int32_t *nt = hl_malloc_array(cap, sizeof *nt);
        if (!nt) return -1;
        memset(nt, 0xff, cap * sizeof *nt);
        for (int32_t k = 0; k < t->n_pairs; k++) {
            size_t j = pair_slot(t->p[k].a, t->p[k].b, cap - 1);
            while (nt[j] >= 0) j = (j + 1) & (cap - 1);
            nt[j] = k;
        }
        hl_free(t->ptable);
        t->ptable = nt;
        t->pmask = cap - 1;
    }
    return id;
}

/* Counts up the pair (a, b) by c in word w; remembers it for the heap. 0 on OOM. */
static int pair_inc(trainer *t, int32_t a, int32_t b, int32_t w, int64_t c) {
    int32_t id = pair_get(t, a, b);
    if (id < 0) return 0;
    pair *p = &t->p[id];
    p->count += c;
    if (!p->n_where || p->where[p->n_where - 1] != w) {
        if (p->n_where == p->cap_where) {
            if (p->cap_where > UINT32_MAX / 2) return 0;
            uint32_t nc = p->cap_where ? p->cap_where * 2 : 4;
            int32_t *nw = hl_realloc(p->where, (size_t)nc * sizeof *nw);
            if (!nw) return 0;
            p->where = nw;
            p->cap_where = nc;
        }
        p->where[p->n_where++] = w;
    }
    if (p->touched != t->step) {
        p->touched = t->step;
        if (t->n_touched == t->cap_touched) {
            if (t->cap_touched > INT32_MAX / 2) return 0;
            int32_t nc = t->cap_touched ? t->cap_touched * 2 : 1024;
            int32_t *nt = hl_realloc(t->touched, (size_t)nc * sizeof *nt);
            if (!nt) return 0;
            t->touched = nt;
            t->cap_touched = nc;
        }
        t->touched[t->n_touched++] = id;
    }
    return 1;
}

static void pair_dec(trainer *t, int32_t a, int32_t b, int64_t c) {
    int32_t id = pair_find(t, a, b);
    if (id >= 0) t->p[id].count -= c; /* always present: every adjacency was counted up */
}

/* Heap order: more frequent first, then the smaller concatenation, then the
 * shorter left part (two splits of one string), which makes it total. */
static int before(const void *a, const void *b, const void *ctx) {
    const trainer *t = ctx;
    const hentry *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count;
    if (x->pair == y->pair) return 0;
    const pair *p = &t->p[x->pair], *q = &t->p[y->pair];
    int c = cat_cmp(&t->v, p->a, p->b, q->a, q->b);
    if (c) return c < 0;
    return t->v.len[p->a] < t->v.len[q->a];
}

static int heap_push(trainer *t, int32_t pair_id) {
    if (t->n_heap == t->cap_heap) {
        size_t nc = t->cap_heap ? t->cap_heap * 2 : 4096, bytes;
        if (!hl_mul_size(nc, sizeof(hentry), &bytes)) return 0;
        hentry *nh = hl_realloc(t->heap, bytes);
        if (!nh) return 0;
        t->heap = nh;
        t->cap_heap = nc;
    }
    hentry e = {t->p[pair_id].count, pair_id};
    hl_heap_push(t->heap, &t->n_heap, sizeof e, &e, before, t);
    return 1;
}

static hentry heap_pop(trainer *t) {
    hentry top;
    hl_heap_pop(t->heap, &t->n_heap, sizeof top, &top, before, t);
    return top;
}

/* Pushes the pairs counted up in this step that may still be merged. */
static int push_touched(trainer *t) {
    for (int32_t k = 0; k < t->n_touched; k++) {
        const pair *p = &t->p[t->touched[k]];
        if (!p->banned && p->count >= t->min_freq && !heap_push(t, t->touched[k])) return 0;
    }
    t->n_touched = 0;
    return 1;
}

/* Rewrites every a b in word wi (left to right, not overlapping) as c,
 * moving the neighbouring pair counts along. 0 on OOM. */
static int merge_word(trainer *t, int32_t wi, int32_t a, int32_t b, int32_t c) {
    int32_t *s = t->pool + t->woff[wi];
    int32_t n = t->wlen[wi], j = 0;
    int64_t cnt = t->w[wi].count;
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            /* s[j-1] is already final (maybe a c just made): that is the left neighbour now */
            if (j > 0) {
                pair_dec(t, s[j - 1], a, cnt);
                if (!pair_inc(t, s[j - 1], c, wi, cnt)) return 0;
            }
            pair_dec(t, a, b, cnt);
            if (i + 2 < n) {
                pair_dec(t, b, s[i + 2], cnt);
                if (!pair_inc(t, c, s[i + 2], wi, cnt)) return 0;
            }
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    t->wlen[wi] = j;
    return 1;
}

static void trainer_free(trainer *t) {
    vocab_free(&t->v);
    hl_free(t->w);
    hl_free(t->wtable);
    hl_free(t->pool);
    hl_free(t->woff);
    hl_free(t->wlen);
    hl_free(t->wstamp);
    for (int32_t k = 0; k < t->n_pairs; k++) hl_free(t->p[k].where);
    hl_free(t->p);
    hl_free(t->ptable);
    hl_free(t->heap);
    hl_free(t->touched);
}

typedef struct cp_count {
    int32_t cp;
    uint64_t n;
} cp_count;

static int by_count(const void *x, const void *y) {
    const cp_count *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return (a->cp > b->cp) - (a->cp < b->cp);
}

/* Whether a dummy prefix "▁" goes before this character, the first one
 * after a document start (a newline in line mode makes an empty line). */
static int takes_prefix(int pending, int32_t cp, int line_mode) { return pending && (cp != '\n' || !line_mode); }

hl_status hl_tokenizer_train_bpe_merges(const char *text, size_t len, int32_t vocab_size,
                                        const hl_bpe_train_params *params, hl_tokenizer **out, int32_t **merges,
                                        int32_t *n_merges, hl_error *err) {
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: out is NULL");
    *out = NULL;
    if (merges) *merges = NULL;
    if (n_merges) *n_merges = 0;
    hl_bpe_train_params prm;
    if (params) prm = *params;
    else hl_bpe_train_params_default(&prm);
    if (prm.min_frequency < 1)
        return hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: min_frequency %lld must be at least 1",
                       (long long)prm.min_frequency);
    if (prm.max_piece_bytes < 1 || prm.max_piece_bytes > HL_TOKENIZER_MAX_PIECE)
        return hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: max_piece_bytes %ld is outside [1, %d]",
                       (long)prm.max_piece_bytes, HL_TOKENIZER_MAX_PIECE);
    if (!(prm.character_coverage > 0.0 && prm.character_coverage <= 1.0))
        return hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: character_coverage %g is outside (0, 1]",
                       prm.character_coverage);
    if (!text || len == 0) return hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: the training text is empty");
    if (len > HL_TOKENIZER_MAX_TEXT)
        return hl_fail(err, HL_ERR_LIMIT, "train_bpe: text of %zu bytes exceeds the %u-byte limit", len,
                       HL_TOKENIZER_MAX_TEXT);
    if (vocab_size > HL_TOKENIZER_MAX_VOCAB)
        return hl_fail(err, HL_ERR_LIMIT, "train_bpe: vocab_size %ld exceeds the limit of %d", (long)vocab_size,
                       HL_TOKENIZER_MAX_VOCAB);
    const int line_mode = prm.line_dummy_prefix != 0;
    const uint8_t *s = (const uint8_t *)text;

    trainer t;
    memset(&t, 0, sizeof t);
    t.text = s;
    t.min_freq = prm.min_frequency;
    uint64_t *counts = NULL;
    int32_t *cp_id = NULL, *rules = NULL;
    cp_count *cands = NULL;
    const char **pieces = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    int32_t n_done = 0, cap_rules = 0;
    hl_status st = HL_OK;

    /* 1. Validate and count characters; "▁" counts the spaces and dummy prefixes. */
    counts = hl_calloc(N_CP, sizeof *counts);
    if (!counts) goto oom;
    uint64_t n_space = 0;
    int32_t max_cp = 0; /* later scans stop here */
    int pending = 1;
    for (size_t i = 0; i < len;) {
        const char *why = NULL;
        int32_t cp;
        size_t k = utf8_next(s + i, len - i, &cp, &why);
        if (!k) {
            st = hl_fail(err, HL_ERR_INVALID_ARG, "train_bpe: invalid UTF-8 at byte offset %zu: %s (byte 0x%02X)", i,
                         why, s[i]);
            goto done;
        }
        if (takes_prefix(pending, cp, line_mode)) {
            n_space++;
            pending = 0;
        }
        if (cp == ' ') n_space++;
        else counts[cp]++;
        if (cp > max_cp) max_cp = cp;
        if (cp == '\n' && line_mode) pending = 1;
        i += k;
    }

    /* 2. Characters by coverage. NUL (no piece may hold it) and a literal
     * U+2581 (the encoder sends it to byte fallback) are never kept. */
    uint64_t total = n_space;
    int32_t n_cands = 0;
    for (int32_t c = 0; c <= max_cp; c++) {
        total += counts[c];
        n_cands += counts[c] && c != 0 && c != SPACE_CP;
    }
    cands = hl_malloc_array((size_t)n_cands + 1, sizeof *cands);
    cp_id = hl_malloc_array((size_t)max_cp + 1, sizeof *cp_id);
    if (!cands || !cp_id) goto oom;
    n_cands = 0;
    for (int32_t c = 0; c <= max_cp; c++)
        if (counts[c] && c != 0 && c != SPACE_CP) cands[n_cands++] = (cp_count){c, counts[c]};
    qsort(cands, (size_t)n_cands, sizeof *cands, by_count);
    int32_t n_kept = 0;
    uint64_t acc = n_space; /* "▁" is always kept: every encoded text starts with it */
    for (; n_kept < n_cands; n_kept++) {
        if ((double)acc / (double)total >= prm.character_coverage) break;
        acc += cands[n_kept].n;
    }
    int64_t need = FIRST_CHAR + 1 + (int64_t)n_kept;
    if (vocab_size < need) {
        st = hl_fail(err, HL_ERR_INVALID_ARG,
                     "train_bpe: vocab_size %ld is too small: the 259 special and byte pieces and the %ld characters "
                     "kept (coverage %g) need at least %lld",
                     (long)vocab_size, (long)n_kept + 1, prm.character_coverage, (long long)need);
        goto done;
    }
    hl_free(counts);
    counts = NULL;

    /* 3. The fixed vocabulary: special pieces, bytes, characters. */
    t.v.mask = 2047;
    t.v.table = hl_malloc_array(t.v.mask + 1, sizeof *t.v.table);
    if (!t.v.table) goto oom;
    memset(t.v.table, 0xff, (t.v.mask + 1) * sizeof *t.v.table);
    static const char *const special[N_SPECIAL] = {"<unk>", "<s>", "</s>"};
    for (int k = 0; k < N_SPECIAL; k++)
        if (vocab_add2(&t.v, special[k], strlen(special[k]), "", 0) < 0) goto oom;
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        if (vocab_add2(&t.v, buf, 6, "", 0) < 0) goto oom;
    }
    memset(cp_id, 0xff, ((size_t)max_cp + 1) * sizeof *cp_id);
    const int32_t space_id = vocab_add2(&t.v, SPACE_PIECE, 3, "", 0);
    if (space_id < 0) goto oom;
    for (int32_t k = 0; k < n_kept; k++) {
        char buf[4];
        int32_t c = cands[k].cp;
        size_t n;
        if (c < 0x80) { buf[0] = (char)c; n = 1; }
        else if (c < 0x800) { buf[0] = (char)(0xC0 | c >> 6); buf[1] = (char)(0x80 | (c & 0x3F)); n = 2; }
        else if (c < 0x10000) {
            buf[0] = (char)(0xE0 | c >> 12); buf[1] = (char)(0x80 | (c >> 6 & 0x3F));
            buf[2] = (char)(0x80 | (c & 0x3F)); n = 3;
        } else {
            buf[0] = (char)(0xF0 | c >> 18); buf[1] = (char)(0x80 | (c >> 12 & 0x3F));
            buf[2] = (char)(0x80 | (c >> 6 & 0x3F)); buf[3] = (char)(0x80 | (c & 0x3F)); n = 4;
        }
        if ((cp_id[c] = vocab_add2(&t.v, buf, n, "", 0)) < 0) goto oom;
    }
    const int32_t n_fixed = t.v.n;
    const int32_t max_merges = vocab_size - n_fixed;

    /* 4. Distinct words, cut as the encoder's merges are: before each "▁",
     * around line breaks and around characters left to byte fallback. Words
     * of one symbol have no pair and are dropped. */
    t.wmask = 4095;
    t.wtable = hl_malloc_array(t.wmask + 1, sizeof *t.wtable);
    if (!t.wtable) goto oom;
    memset(t.wtable, 0xff, (t.wmask + 1) * sizeof *t.wtable);
    {
        int have = 0, prefix = 0;
        size_t a = 0;
        int32_t ncp = 0;
        pending = 1;
#define FLUSH(end)                                                                                   \
    do {                                                                                             \
        if (have && prefix + ncp >= 2 && !word_add(&t, prefix, a, (end) - a, ncp)) goto oom;         \
        have = 0;                                                                                    \
    } while (0)
        for (size_t i = 0; i < len;) {
            const char *why;
            int32_t cp;
            size_t k = utf8_next(s + i, len - i, &cp, &why); /* validated above */
            if (takes_prefix(pending, cp, line_mode)) {
                pending = 0;
                have = 1, prefix = 1, a = i, ncp = 0;
            }
            if (cp == ' ') {
                FLUSH(i);
                have = 1, prefix = 1, a = i + 1, ncp = 0;
            } else if (cp == '\n' || cp == '\r' || cp_id[cp] < 0) {
                FLUSH(i);
                if (cp == '\n' && line_mode) pending = 1;
            } else {
                if (!have) have = 1, prefix = 0, a = i, ncp = 0;
                ncp++;
            }
            i += k;
        }
        FLUSH(len);
#undef FLUSH
    }
    hl_free(t.wtable);
    t.wtable = NULL;

    /* 5. Symbols of the distinct words, and the initial pair counts. */
    size_t n_sym = 0;
    for (int32_t w = 0; w < t.n_words; w++) n_sym += (size_t)(t.w[w].prefix + t.w[w].ncp);
    t.pool = hl_malloc_array(n_sym ? n_sym : 1, sizeof *t.pool);
    t.woff = hl_malloc_array((size_t)t.n_words + 1, sizeof *t.woff);
    t.wlen = hl_malloc_array((size_t)t.n_words + 1, sizeof *t.wlen);
    t.wstamp = hl_calloc((size_t)t.n_words + 1, sizeof *t.wstamp);
    t.pmask = 4095;
    t.ptable = hl_malloc_array(t.pmask + 1, sizeof *t.ptable);
    if (!t.pool || !t.woff || !t.wlen || !t.wstamp || !t.ptable) goto oom;
    memset(t.ptable, 0xff, (t.pmask + 1) * sizeof *t.ptable);
    size_t pos = 0;
    for (int32_t w = 0; w < t.n_words; w++) {
        const word *x = &t.w[w];
        t.woff[w] = pos;
        t.wlen[w] = x->prefix + x->ncp;
        if (x->prefix) t.pool[pos++] = space_id;
        for (size_t i = x->off; i < x->off + x->clen;) {
            const char *why;
            int32_t cp;
            i += utf8_next(s + i, x->off + x->clen - i, &cp, &why);
            t.pool[pos++] = cp_id[cp];
        }
        const int32_t *sym = t.pool + t.woff[w];
        for (int32_t i = 0; i + 1 < t.wlen[w]; i++)
            if (!pair_inc(&t, sym[i], sym[i + 1], w, x->count)) goto oom;
    }
    if (!push_touched(&t)) goto oom;

    /* 6. Merge. */
    while (n_done < max_merges && t.n_heap) {
        hentry e = heap_pop(&t);
        pair *p = &t.p[e.pair];
        if (p->banned) continue;
        if (p->count != e.count) { /* stale: requeue at its current count */
            if (p->count >= t.min_freq && !heap_push(&t, e.pair)) goto oom;
            continue;
        }
        if (e.count < t.min_freq) break;
        const int32_t a = p->a, b = p->b;
        if (t.v.len[a] + t.v.len[b] > (uint32_t)prm.max_piece_bytes ||
            vocab_find2(&t.v, piece(&t.v, a), t.v.len[a], piece(&t.v, b), t.v.len[b]) >= 0) {
            p->banned = 1;
            continue;
        }
        const int32_t c = vocab_add_pair(&t.v, a, b);
        if (c < 0) goto oom;
        if (n_done == cap_rules) { /* grown as merges happen: vocab_size may be far above what the text gives */
            int32_t nc = cap_rules ? (cap_rules < max_merges / 2 ? cap_rules * 2 : max_merges) : 1024;
            int32_t *nr = hl_realloc(rules, 2 * (size_t)nc * sizeof *nr);
            if (!nr) goto oom;
            rules = nr;
            cap_rules = nc;
        }
        rules[2 * n_done] = a;
        rules[2 * n_done + 1] = b;
        n_done++;
        /* Detach the word list: pair_inc may move t.p, and (a, b) is spent. */
        int32_t *where = p->where;
        uint32_t n_where = p->n_where;
        p->where = NULL;
        p->n_where = p->cap_where = 0;
        t.step++;
        for (uint32_t k = 0; k < n_where; k++) {
            int32_t w = where[k];
            if (t.wstamp[w] == t.step) continue;
            t.wstamp[w] = t.step;
            if (!merge_word(&t, w, a, b, c)) {
                hl_free(where);
                goto oom;
            }
        }
        hl_free(where);
        if (!push_touched(&t)) goto oom;
        if (prm.progress && prm.progress(prm.progress_user, n_done, max_merges)) {
            st = hl_fail(err, HL_ERR_INTERRUPTED, "train_bpe: stopped by the progress callback after %ld merges",
                         (long)n_done);
            goto done;
        }
    }

    /* 7. The tokenizer. */
    int32_t n_vocab = t.v.n;
    pieces = hl_malloc_array((size_t)n_vocab, sizeof *pieces);
    scores = hl_malloc_array((size_t)n_vocab, sizeof *scores);
    types = hl_malloc_array((size_t)n_vocab, sizeof *types);
    if (!pieces || !scores || !types) goto oom;
    for (int32_t i = 0; i < n_vocab; i++) {
        pieces[i] = piece(&t.v, i);
        if (i < N_SPECIAL) {
            scores[i] = 0.0f;
            types[i] = i == 0 ? HL_TOKEN_UNKNOWN : HL_TOKEN_CONTROL;
        } else if (i < FIRST_CHAR) {
            scores[i] = 0.0f;
            types[i] = HL_TOKEN_BYTE;
        } else if (i < n_fixed) {
            scores[i] = CHAR_SCORE;
            types[i] = HL_TOKEN_NORMAL;
        } else {
            scores[i] = (float)-(int64_t)(i - n_fixed); /* earliest merge scores highest (0) */
            types[i] = HL_TOKEN_NORMAL;
        }
    }
    st = hl_tokenizer_init(n_vocab, pieces, scores, types, 1, 2, 0, out, err);
    if (st != HL_OK) {
        hl_error_prefix(err, "train_bpe");
        goto done;
    }
    if (merges) {
        *merges = rules;
        rules = NULL;
    }
    if (n_merges) *n_merges = n_done;
    goto done;
oom:
    st = hl_fail(err, HL_ERR_NOMEM, "train_bpe: out of memory (or more than 2^31 words or pairs)");
done:
    hl_free(counts);
    hl_free(cp_id);
    hl_free(cands);
    hl_free(rules);
    hl_free(pieces);
    hl_free(scores);
    hl_free(types);
    trainer_free(&t);
    return st;
}

hl_status hl_tokenizer_train_bpe(const char *text, size_t len, int32_t vocab_size, const hl_bpe_train_params *p,
                                 hl_tokenizer **out, hl_error *err) {
    return hl_tokenizer_train_bpe_merges(text, len, vocab_size, p, out, NULL, NULL, err);
}
