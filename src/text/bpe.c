/* bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"): merge table, the
 * hand-written pre-tokenizers, special-token splitting, byte mapping and
 * decoding. See bpe.h for the algorithm; this banner records the choices.
 *
 * Pre-tokenizers are matchers written out from the regexes llama.cpp names
 * for each pre type (no regex engine): at every position the regex's
 * alternatives are tried in order, with the backtracking those regexes need
 * written out by hand (\s+(?!\S) gives back one space; \s*[\r\n]+ ends at
 * the last CR/LF of a whitespace run). A fragment's end counts as the end
 * of the text, as in llama.cpp, where each regex of a multi-regex pre type
 * runs on the pieces the previous one left, and text no alternative matches
 * stays a piece of its own. Letter, number, punctuation and white-space
 * classes come from unicode_flags.c. No Unicode normalisation is applied
 * (llama.cpp applies none for these pre types).
 *
 * Merging: symbols are token ids; the table maps a pair of ids to its rank
 * and result. A word is merged with a linked list and a binary heap of
 * candidate pairs ordered by (rank, position), stale entries skipped when
 * popped: O(m log m) for a word of m bytes.
 *
 * Special tokens are cut out as llama.cpp does: longest text first, each
 * token taking every occurrence in the fragments still raw. A memchr/memcmp
 * scan finds them; a token absent from the whole text costs one scan.
 *
 * Choices where a file could ask for more:
 *  - a merge whose parts are not pieces is dropped (it could only apply to
 *    symbols that are not tokens); one whose result is not a piece never
 *    applies (llama.cpp would merge, then spell the result in bytes);
 *  - a byte without a piece of its own cannot be encoded: the text is
 *    refused naming the byte (real vocabularies have all 256);
 *  - token attributes llama.cpp sets by model name (lstrip/rstrip) are not
 *    applied; none of the supported pre types uses them.
 */
#include "text/bpe.h"
#include "text/unicode_flags.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/heap.h"

#include <stdlib.h>
#include <string.h>

struct hl_bpe {
    hl_bpe_pre pre;
    int32_t n_vocab;            /* of the tokenizer it was built for */
    int32_t (*merges)[2];       /* [n_merges]: (left, right) ids by rank */
    size_t n_merges;
    uint64_t *mkey;             /* open addressing: left << 32 | right, UINT64_MAX = empty */
    int32_t *mrank, *mresult;
    size_t mmask;
    int32_t byte_tok[256];      /* the piece of each byte's code point, -1 if absent */
    int32_t *special;           /* ids cut out before pre-tokenization, longest text first */
    size_t n_special;
};

/* ------------------------------------------------------ byte mapping */

/* GPT-2's byte-to-unicode table: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF
 * stand for themselves; the rest take U+0100 onwards in byte order. */
static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t k = 0; /* how many unprintable bytes come before b */
    if (b <= 0x20) k = b;
    else if (b <= 0xA0) k = 0x21 + (uint32_t)(b - 0x7F);        /* 0x7F..0xA0 after the 33 of 0..0x20 */
    else k = 0x21 + 0x22;                                        /* 0xAD, the last one */
    return 0x100 + k;
}

/* The byte a code point stands for, or -1. */
static int cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_to_cp((uint8_t)cp) == cp ? (int)cp : -1;
    if (cp > 0x143) return -1;
    uint32_t k = cp - 0x100;
    if (k <= 0x20) return (int)k;
    if (k < 0x21 + 0x22) return (int)(0x7F + (k - 0x21));
    return 0xAD;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the code point at s (valid UTF-8 assumed, n > 0 bytes left); *k = its length. */
static uint32_t get_utf8(const uint8_t *s, size_t n, size_t *k) {
    uint8_t c = s[0];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len > n) len = n;
    uint32_t cp = len == 1 ? c : len == 2 ? (uint32_t)(c & 0x1F) : len == 3 ? (uint32_t)(c & 0x0F) : (uint32_t)(c & 0x07);
    for (size_t i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3F);
    *k = len;
    return cp;
}

/* ------------------------------------------------------ names */

typedef struct pre_name { const char *name; hl_bpe_pre pre; } pre_name;
/* llama.cpp's names for the same regex families (the first of each is canonical). */
static const pre_name PRE_NAMES[] = {
    {"default", HL_BPE_PRE_DEFAULT}, {"gpt-2", HL_BPE_PRE_GPT2},       {"llama-bpe", HL_BPE_PRE_LLAMA3},
    {"llama3", HL_BPE_PRE_LLAMA3},   {"llama-v3", HL_BPE_PRE_LLAMA3},  {"qwen2", HL_BPE_PRE_QWEN2},
    {"smollm", HL_BPE_PRE_SMOLLM},   {"starcoder", HL_BPE_PRE_SMOLLM},
};

int hl_bpe_pre_from_name(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0]; i++)
        if (strlen(PRE_NAMES[i].name) == len && memcmp(PRE_NAMES[i].name, name, len) == 0) return (int)PRE_NAMES[i].pre;
    return -1;
}

const char *hl_bpe_pre_names(void) { return "default, gpt-2, llama-bpe, llama3, llama-v3, qwen2, smollm, starcoder"; }

const char *hl_bpe_pre_name(hl_bpe_pre pre) {
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0]; i++)
        if (PRE_NAMES[i].pre == pre) return PRE_NAMES[i].name;
    return "default";
}

hl_bpe_pre hl_bpe_pre_of(const hl_bpe *b) { return b->pre; }
size_t hl_bpe_n_merges(const hl_bpe *b) { return b->n_merges; }
void hl_bpe_merge(const hl_bpe *b, size_t r, int32_t *left, int32_t *right) {
    *left = r < b->n_merges ? b->merges[r][0] : -1;
    *right = r < b->n_merges ? b->merges[r][1] : -1;
}
int hl_bpe_cleans_spaces(const hl_bpe *b) { return b->pre != HL_BPE_PRE_QWEN2 && b->pre != HL_BPE_PRE_SMOLLM; }

/* ------------------------------------------------------ build */

static size_t mslot(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & mask;
}

/* Rank and result of merging ids l, r; -1 when they do not merge. */
static int32_t merge_rank(const hl_bpe *b, int32_t l, int32_t r, int32_t *result) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (size_t i = mslot(key, b->mmask);; i = (i + 1) & b->mmask) {
        if (b->mkey[i] == key) { *result = b->mresult[i]; return b->mrank[i]; }
        if (b->mkey[i] == UINT64_MAX) return -1;
    }
}

/* Fills the pair table from b->merges (a pair listed twice keeps its lowest rank). */
static int build_table(hl_bpe *b, const hl_tokenizer *t) {
    size_t cap = 16;
    while (cap < b->n_merges * 2 + 2) cap <<= 1;
    b->mkey = hl_malloc_array(cap, sizeof *b->mkey);
    b->mrank = hl_malloc_array(cap, sizeof *b->mrank);
    b->mresult = hl_malloc_array(cap, sizeof *b->mresult);
    if (!b->mkey || !b->mrank || !b->mresult) return 0;
    memset(b->mkey, 0xff, cap * sizeof *b->mkey);
    b->mmask = cap - 1;
    char buf[2 * HL_TOKENIZER_MAX_PIECE];
    for (size_t r = 0; r < b->n_merges; r++) {
        int32_t l = b->merges[r][0], rr = b->merges[r][1];
        size_t ln = hl_tokenizer_piece_len(t, l), rn = hl_tokenizer_piece_len(t, rr);
        memcpy(buf, hl_tokenizer_piece(t, l), ln);
        memcpy(buf + ln, hl_tokenizer_piece(t, rr), rn);
        int32_t res = hl_tokenizer_find(t, buf, ln + rn);
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)rr;
        size_t i = mslot(key, b->mmask);
        while (b->mkey[i] != UINT64_MAX && b->mkey[i] != key) i = (i + 1) & b->mmask;
        if (b->mkey[i] == key) continue;
        b->mkey[i] = key;
        b->mrank[i] = (int32_t)r;
        b->mresult[i] = res;
    }
    return 1;
}

typedef struct special_ref { int32_t id; uint32_t len; } special_ref;
static int special_cmp(const void *a, const void *b) {
    const special_ref *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The special list of t: CONTROL, USER_DEFINED and UNKNOWN tokens, longest first. */
static int build_special(hl_bpe *b, const hl_tokenizer *t) {
    int32_t n = hl_tokenizer_n_vocab(t);
    size_t count = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t ty = hl_tokenizer_type(t, i);
        if ((ty == HL_TOKEN_CONTROL || ty == HL_TOKEN_USER_DEFINED || ty == HL_TOKEN_UNKNOWN) &&
            hl_tokenizer_piece_len(t, i) > 0)
            count++;
    }
    special_ref *refs = hl_malloc_array(count ? count : 1, sizeof *refs);
    b->special = hl_malloc_array(count ? count : 1, sizeof *b->special);
    if (!refs || !b->special) { hl_free(refs); return 0; }
    size_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t ty = hl_tokenizer_type(t, i);
        if ((ty == HL_TOKEN_CONTROL || ty == HL_TOKEN_USER_DEFINED || ty == HL_TOKEN_UNKNOWN) &&
            hl_tokenizer_piece_len(t, i) > 0)
            refs[k++] = (special_ref){i, (uint32_t)hl_tokenizer_piece_len(t, i)};
    }
    qsort(refs, count, sizeof *refs, special_cmp);
    for (size_t i = 0; i < count; i++) b->special[i] = refs[i].id;
    b->n_special = count;
    hl_free(refs);
    return 1;
}

static void build_bytes(hl_bpe *b, const hl_tokenizer *t) {
    for (int v = 0; v < 256; v++) {
        char u[4];
        size_t k = put_utf8(byte_to_cp((uint8_t)v), u);
        b->byte_tok[v] = hl_tokenizer_find(t, u, k);
    }
}

void hl_bpe_free(hl_bpe *b) {
    if (!b) return;
    hl_free(b->merges);
    hl_free(b->mkey);
    hl_free(b->mrank);
    hl_free(b->mresult);
    hl_free(b->special);
    hl_free(b);
}

hl_status hl_bpe_init(const hl_tokenizer *t, hl_bpe_pre pre, const char *const *merges, const size_t *merge_len,
                      size_t n_merges, const char *name, hl_bpe **out, hl_error *err) {
    *out = NULL;
    if (!name) name = "tokenizer.ggml.merges";
    if (pre < 0 || pre >= HL_BPE_PRE_COUNT) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: bad pre-tokenizer", name);
    if (n_merges > (size_t)INT32_MAX / 4)
        return hl_fail(err, HL_ERR_LIMIT, "%s: %zu merges, above the limit of %d", name, n_merges, INT32_MAX / 4);
    hl_bpe *b = hl_calloc(1, sizeof *b);
    if (!b) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    b->pre = pre;
    b->n_vocab = hl_tokenizer_n_vocab(t);
    b->merges = hl_malloc_array(n_merges ? n_merges : 1, sizeof *b->merges);
    if (!b->merges) goto oom;
    for (size_t i = 0; i < n_merges; i++) {
        const char *m = merges[i];
        size_t n = merge_len[i];
        const char *sp = n > 1 ? memchr(m + 1, ' ', n - 1) : NULL;
        if (!sp) {
            hl_bpe_free(b);
            return hl_fail(err, HL_ERR_FORMAT, "%s[%zu]: no space divides the merge into two parts", name, i);
        }
        size_t ln = (size_t)(sp - m);
        int32_t l = hl_tokenizer_find(t, m, ln), r = hl_tokenizer_find(t, sp + 1, n - ln - 1);
        if (l < 0 || r < 0) continue; /* can never apply (see bpe.h) */
        if (hl_tokenizer_piece_len(t, l) + hl_tokenizer_piece_len(t, r) > 2 * HL_TOKENIZER_MAX_PIECE) continue;
        b->merges[b->n_merges][0] = l;
        b->merges[b->n_merges][1] = r;
        b->n_merges++;
    }
    if (!build_table(b, t) || !build_special(b, t)) goto oom;
    build_bytes(b, t);
    *out = b;
    return HL_OK;
oom:
    hl_bpe_free(b);
    return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %zu merges", name, n_merges);
}

hl_status hl_bpe_clone(const hl_bpe *src, const hl_tokenizer *t, hl_bpe **out, hl_error *err) {
    *out = NULL;
    hl_bpe *b = hl_calloc(1, sizeof *b);
    if (!b) return hl_fail(err, HL_ERR_NOMEM, "bpe: out of memory");
    b->pre = src->pre;
    b->n_vocab = hl_tokenizer_n_vocab(t);
    b->n_merges = src->n_merges;
    b->merges = hl_malloc_array(src->n_merges ? src->n_merges : 1, sizeof *b->merges);
    if (b->merges) memcpy(b->merges, src->merges, src->n_merges * sizeof *b->merges);
    if (!b->merges || !build_table(b, t) || !build_special(b, t)) {
        hl_bpe_free(b);
        return hl_fail(err, HL_ERR_NOMEM, "bpe: out of memory");
    }
    build_bytes(b, t);
    *out = b;
    return HL_OK;
}

/* ------------------------------------------------------ pre-tokenizers */

/* A fragment's code points: cp[i], its class bits fl[i], and its byte offset off[i] (off[n] = end). */
typedef struct cps {
    uint32_t *cp;
    uint8_t *fl;
    size_t *off;
    size_t n;
} cps;

#define F_L HL_UNI_LETTER
#define F_N HL_UNI_NUMBER
#define F_P HL_UNI_PUNCT
#define F_S HL_UNI_SPACE

static int is_l(const cps *c, size_t i, size_t e) { return i < e && (c->fl[i] & F_L); }
static int is_n(const cps *c, size_t i, size_t e) { return i < e && (c->fl[i] & F_N); }
static int is_s(const cps *c, size_t i, size_t e) { return i < e && (c->fl[i] & F_S); }
/* [^\s\p{L}\p{N}] */
static int is_other(const cps *c, size_t i, size_t e) { return i < e && !(c->fl[i] & (F_S | F_L | F_N)); }
static int is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }
static uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/* 's 't 're 've 'm 'll 'd at i (case-free when fold): the match end, or 0. */
static size_t contraction(const cps *c, size_t i, size_t e, int fold) {
    if (c->cp[i] != '\'' || i + 1 >= e) return 0;
    uint32_t a = c->cp[i + 1], b = i + 2 < e ? c->cp[i + 2] : 0;
    if (fold) { a = ascii_lower(a); b = ascii_lower(b); }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

/* The whitespace alternatives at i (a white-space code point): with crlf,
 * \s*[\r\n]+ first; then \s+(?!\S), then \s+. */
static size_t whitespace(const cps *c, size_t i, size_t e, int crlf) {
    size_t j = i, last_rn = 0;
    while (is_s(c, j, e)) {
        if (is_crlf(c->cp[j])) last_rn = j + 1;
        j++;
    }
    if (crlf && last_rn) return last_rn;
    if (j - i > 1 && j < e) return j - 1;
    return j;
}

/* Llama-3 (max_digits 3) and Qwen2 (1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_llama3(const cps *c, size_t i, size_t e, size_t max_digits) {
    size_t j = contraction(c, i, e, 1);
    if (j) return j;
    uint32_t cp = c->cp[i];
    if (is_l(c, i, e) || (!is_crlf(cp) && !is_n(c, i, e) && is_l(c, i + 1, e))) {
        j = i + 1;
        while (is_l(c, j, e)) j++;
        return j;
    }
    if (is_n(c, i, e)) {
        j = i + 1;
        while (j - i < max_digits && is_n(c, j, e)) j++;
        return j;
    }
    j = cp == ' ' && is_other(c, i + 1, e) ? i + 1 : i;
    if (is_other(c, j, e)) {
        while (is_other(c, j, e)) j++;
        while (j < e && is_crlf(c->cp[j])) j++;
        return j;
    }
    return whitespace(c, i, e, 1);
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const cps *c, size_t i, size_t e) {
    size_t j = contraction(c, i, e, 0);
    if (j) return j;
    int sp = c->cp[i] == ' ';
    int (*cls[3])(const cps *, size_t, size_t) = {is_l, is_n, is_other};
    for (int k = 0; k < 3; k++) {
        j = cls[k](c, i, e) ? i : sp && cls[k](c, i + 1, e) ? i + 1 : e + 1;
        if (j <= e) {
            while (cls[k](c, j, e)) j++;
            return j;
        }
    }
    return whitespace(c, i, e, 0);
}

/* Splitting regexes that do not cover the text: each match is a piece and
 * so is each run between matches. */
typedef enum split_kind { SPLIT_DIGIT, SPLIT_DIGITS, SPLIT_PUNCT, SPLIT_ASCII3 } split_kind;

static int punct_or_symbol(const cps *c, size_t i) {
    uint32_t cp = c->cp[i];
    return (c->fl[i] & F_P) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' || cp == '^' ||
           cp == '~' || cp == '|';
}
static int ascii_digit(const cps *c, size_t i, size_t e) { return i < e && c->cp[i] >= '0' && c->cp[i] <= '9'; }

/* The end of the match at i, or 0 when none starts there. */
static size_t split_match(const cps *c, size_t i, size_t e, split_kind k) {
    size_t j = i;
    switch (k) {
    case SPLIT_DIGIT: return is_n(c, i, e) ? i + 1 : 0;
    case SPLIT_DIGITS: while (is_n(c, j, e)) j++; return j > i ? j : 0;
    case SPLIT_PUNCT: while (j < e && punct_or_symbol(c, j)) j++; return j > i ? j : 0;
    case SPLIT_ASCII3: return ascii_digit(c, i, e) && ascii_digit(c, i + 1, e) && ascii_digit(c, i + 2, e) ? i + 3 : 0;
    }
    return 0;
}

/* One pass over the pieces ends[0..n) (piece p runs from the previous end,
 * or 0, to ends[p]): writes the finer pieces to out, returns their count. */
typedef enum pass_kind { PASS_LLAMA3, PASS_QWEN2, PASS_GPT2, PASS_SPLIT } pass_kind;

static size_t run_pass(const cps *c, const size_t *ends, size_t n, size_t *out, pass_kind pk, split_kind sk) {
    size_t m = 0, s = 0;
    for (size_t p = 0; p < n; s = ends[p++]) {
        size_t e = ends[p], i = s;
        if (pk == PASS_SPLIT) {
            size_t gap = s;
            while (i < e) {
                size_t j = split_match(c, i, e, sk);
                if (!j) { i++; continue; }
                if (gap < i) out[m++] = i;
                out[m++] = j;
                i = gap = j;
            }
            if (gap < e) out[m++] = e;
            continue;
        }
        while (i < e) {
            size_t j = pk == PASS_LLAMA3 ? match_llama3(c, i, e, 3)
                       : pk == PASS_QWEN2 ? match_llama3(c, i, e, 1)
                                          : match_gpt2(c, i, e);
            out[m++] = j;
            i = j;
        }
    }
    return m;
}

/* Splits c into words: ends written to a (b is scratch; both hold c->n),
 * the count returned; *res says which of a, b holds the result. */
static size_t pretokenize(hl_bpe_pre pre, const cps *c, size_t *a, size_t *b, size_t **res) {
    size_t n = 0;
    if (c->n == 0) { *res = a; return 0; }
    a[0] = c->n;
    n = 1;
    size_t *cur = a, *nxt = b, *tmp;
#define PASS(pk, sk) (n = run_pass(c, cur, n, nxt, pk, sk), tmp = cur, cur = nxt, nxt = tmp)
    switch (pre) {
    case HL_BPE_PRE_LLAMA3: PASS(PASS_LLAMA3, SPLIT_DIGIT); break;
    case HL_BPE_PRE_QWEN2: PASS(PASS_QWEN2, SPLIT_DIGIT); break;
    case HL_BPE_PRE_GPT2: PASS(PASS_GPT2, SPLIT_DIGIT); break;
    case HL_BPE_PRE_SMOLLM:
        PASS(PASS_SPLIT, SPLIT_DIGIT);
        PASS(PASS_GPT2, SPLIT_DIGIT);
        break;
    default:
        PASS(PASS_SPLIT, SPLIT_PUNCT);
        PASS(PASS_GPT2, SPLIT_DIGIT);
        PASS(PASS_SPLIT, SPLIT_DIGITS);
        PASS(PASS_SPLIT, SPLIT_ASCII3);
        break;
    }
#undef PASS
    *res = cur;
    return n;
}

/* ------------------------------------------------------ merging */

typedef struct cand { int32_t rank, left, ltok, rtok; } cand;

static int cand_before(const void *x, const void *y, const void *unused) {
    const cand *a = x, *b = y;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* Scratch for one encode call, sized by the longest fragment. */
typedef struct scratch {
    int32_t *tok, *next, *prev;
    cand *heap;
    size_t nheap;
    char *mapped; /* a word in mapped form: <= 2 bytes per byte */
    int reference; /* merge with the plain rescan loop (tests) */
} scratch;

static void heap_push(scratch *s, cand c) { hl_heap_push(s->heap, &s->nheap, sizeof c, &c, cand_before, NULL); }

static cand heap_pop(scratch *s) {
    cand top;
    hl_heap_pop(s->heap, &s->nheap, sizeof top, &top, cand_before, NULL);
    return top;
}

static void try_pair(const hl_bpe *b, scratch *s, int32_t l, int32_t r) {
    int32_t res;
    int32_t rank = merge_rank(b, s->tok[l], s->tok[r], &res);
    if (rank >= 0 && res >= 0) heap_push(s, (cand){rank, l, s->tok[l], s->tok[r]});
}

/* BPE of one word w[0..m) appended to out. The heap never holds more than
 * m - 1 + 2 * (merges done) <= 3m entries. */
static hl_status encode_word(const hl_bpe *b, const hl_tokenizer *t, scratch *s, const uint8_t *w, size_t m,
                             size_t offset, int32_t *out, size_t *n, hl_error *err) {
    for (size_t i = 0; i < m; i++) {
        s->tok[i] = b->byte_tok[w[i]];
        if (s->tok[i] < 0)
            return hl_fail(err, HL_ERR_UNSUPPORTED, "encode: the vocabulary has no piece for byte 0x%02X (byte offset %zu)",
                           w[i], offset + i);
    }
    if (m == 1) {
        out[(*n)++] = s->tok[0];
        return HL_OK;
    }
    if (b->pre == HL_BPE_PRE_LLAMA3) { /* ignore_merges: a word that is a piece is taken whole */
        size_t k = 0;
        for (size_t i = 0; i < m; i++) k += put_utf8(byte_to_cp(w[i]), s->mapped + k);
        int32_t id = hl_tokenizer_find(t, s->mapped, k);
        if (id >= 0) {
            out[(*n)++] = id;
            return HL_OK;
        }
    }
    if (s->reference) { /* rescan every adjacent pair, merge the lowest rank (leftmost), repeat: O(m^2) */
        size_t k = m;
        for (;;) {
            int32_t best = -1, best_res = -1;
            size_t at = 0;
            for (size_t i = 0; i + 1 < k; i++) {
                int32_t res, rank = merge_rank(b, s->tok[i], s->tok[i + 1], &res);
                if (rank >= 0 && res >= 0 && (best < 0 || rank < best)) {
                    best = rank;
                    best_res = res;
                    at = i;
                }
            }
            if (best < 0) break;
            s->tok[at] = best_res;
            memmove(s->tok + at + 1, s->tok + at + 2, (k - at - 2) * sizeof *s->tok);
            k--;
        }
        for (size_t i = 0; i < k; i++) out[(*n)++] = s->tok[i];
        return HL_OK;
    }
    for (size_t i = 0; i < m; i++) {
        s->next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
        s->prev[i] = (int32_t)i - 1;
    }
    s->nheap = 0;
    for (size_t i = 0; i + 1 < m; i++) try_pair(b, s, (int32_t)i, (int32_t)i + 1);
    while (s->nheap) {
        cand c = heap_pop(s);
        int32_t l = c.left, r = s->next[l];
        if (s->tok[l] != c.ltok || r < 0 || s->tok[r] != c.rtok) continue; /* stale */
        int32_t res = -1;
        merge_rank(b, c.ltok, c.rtok, &res);
        s->tok[l] = res;
        s->tok[r] = -1; /* dead: never equal to a candidate's token */
        s->next[l] = s->next[r];
        if (s->next[l] >= 0) s->prev[s->next[l]] = l;
        if (s->prev[l] >= 0) try_pair(b, s, s->prev[l], l);
        if (s->next[l] >= 0) try_pair(b, s, l, s->next[l]);
    }
    for (int32_t i = 0; i >= 0; i = s->next[i]) out[(*n)++] = s->tok[i];
    return HL_OK;
}

/* Pre-tokenizes and merges the raw run text[0..len) (offset = its place in the whole text). */
static hl_status encode_raw(const hl_bpe *b, const hl_tokenizer *t, scratch *s, cps *c, size_t *ea, size_t *eb,
                            const uint8_t *text, size_t len, size_t offset, int32_t *out, size_t *n, hl_error *err) {
    c->n = 0;
    for (size_t i = 0; i < len;) {
        size_t k;
        uint32_t cp = get_utf8(text + i, len - i, &k);
        c->cp[c->n] = cp;
        c->fl[c->n] = hl_unicode_flags(cp);
        c->off[c->n] = i;
        c->n++;
        i += k;
    }
    c->off[c->n] = len;
    size_t *ends;
    size_t nw = pretokenize(b->pre, c, ea, eb, &ends);
    size_t start = 0;
    for (size_t w = 0; w < nw; w++) {
        size_t from = c->off[start], to = c->off[ends[w]];
        hl_status st = encode_word(b, t, s, text + from, to - from, offset + from, out, n, err);
        if (st != HL_OK) return st;
        start = ends[w];
    }
    return HL_OK;
}

/* The first occurrence of p[0..pn) in s[0..n), or NULL (pn > 0). */
static const uint8_t *find_bytes(const uint8_t *s, size_t n, const char *p, size_t pn) {
    const uint8_t *end = s + n;
    while ((size_t)(end - s) >= pn) {
        const uint8_t *hit = memchr(s, (uint8_t)p[0], (size_t)(end - s) - pn + 1);
        if (!hit) return NULL;
        if (memcmp(hit, p, pn) == 0) return hit;
        s = hit + 1;
    }
    return NULL;
}

/* A run of the text: raw (to be pre-tokenized) or one special token. */
typedef struct frag { size_t off, len; int32_t id; } frag; /* id < 0: raw */
typedef struct frag_list { frag *v; size_t n, cap; } frag_list;

static int frag_push(frag_list *l, frag f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16, bytes;
        if (!hl_mul_size(cap, sizeof *l->v, &bytes)) return 0;
        frag *v = hl_realloc(l->v, bytes);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return 1;
}

hl_status hl_bpe_encode(const hl_bpe *b, const hl_tokenizer *t, const uint8_t *text, size_t len, int parse_special,
                        int reference, int32_t *out, size_t *n, hl_error *err) {
    if (len == 0) return HL_OK;
    /* 1. Special tokens. Each token that occurs rewrites the fragment list
     * (text order) into a second one: O(fragments + text) per token. */
    frag_list fl = {NULL, 0, 0}, nx = {NULL, 0, 0};
    if (!frag_push(&fl, (frag){0, len, -1})) goto oom;
    for (size_t k = 0; k < b->n_special; k++) {
        int32_t id = b->special[k];
        int32_t ty = hl_tokenizer_type(t, id);
        if (!parse_special && (ty == HL_TOKEN_CONTROL || ty == HL_TOKEN_UNKNOWN)) continue;
        const char *p = hl_tokenizer_piece(t, id);
        size_t pl = hl_tokenizer_piece_len(t, id);
        if (pl > len || !find_bytes(text, len, p, pl)) continue; /* one scan of the whole text first */
        nx.n = 0;
        for (size_t i = 0; i < fl.n; i++) {
            frag f = fl.v[i];
            const uint8_t *hit;
            while (f.id < 0 && f.len >= pl && (hit = find_bytes(text + f.off, f.len, p, pl)) != NULL) {
                size_t at = (size_t)(hit - text);
                if (at > f.off && !frag_push(&nx, (frag){f.off, at - f.off, -1})) goto oom;
                if (!frag_push(&nx, (frag){at, pl, id})) goto oom;
                f.len -= at + pl - f.off;
                f.off = at + pl;
            }
            if ((f.id >= 0 || f.len) && !frag_push(&nx, f)) goto oom;
        }
        frag_list tmp = fl;
        fl = nx;
        nx = tmp;
    }
    hl_free(nx.v);
    nx.v = NULL;
    frag *f = fl.v;
    size_t nf = fl.n;
    /* 2. Raw runs: scratch sized by the longest. */
    size_t maxlen = 0;
    for (size_t i = 0; i < nf; i++)
        if (f[i].id < 0 && f[i].len > maxlen) maxlen = f[i].len;
    hl_status st = HL_OK;
    scratch s = {0};
    s.reference = reference;
    cps c = {0};
    size_t *ea = NULL, *eb = NULL;
    if (maxlen) {
        size_t m = maxlen + 1;
        s.tok = hl_malloc_array(m, sizeof *s.tok);
        s.next = hl_malloc_array(m, sizeof *s.next);
        s.prev = hl_malloc_array(m, sizeof *s.prev);
        s.heap = hl_malloc_array(m, 3 * sizeof *s.heap);
        s.mapped = hl_malloc_array(m, 2);
        c.cp = hl_malloc_array(m, sizeof *c.cp);
        c.fl = hl_malloc_array(m, sizeof *c.fl);
        c.off = hl_malloc_array(m, sizeof *c.off);
        ea = hl_malloc_array(m, sizeof *ea);
        eb = hl_malloc_array(m, sizeof *eb);
        if (!s.tok || !s.next || !s.prev || !s.heap || !s.mapped || !c.cp || !c.fl || !c.off || !ea || !eb)
            st = hl_fail(err, HL_ERR_NOMEM, "encode: out of memory for %zu bytes of text", maxlen);
    }
    for (size_t i = 0; i < nf && st == HL_OK; i++) {
        if (f[i].id >= 0) out[(*n)++] = f[i].id;
        else st = encode_raw(b, t, &s, &c, ea, eb, text + f[i].off, f[i].len, f[i].off, out, n, err);
    }
    hl_free(s.tok);
    hl_free(s.next);
    hl_free(s.prev);
    hl_free(s.heap);
    hl_free(s.mapped);
    hl_free(c.cp);
    hl_free(c.fl);
    hl_free(c.off);
    hl_free(ea);
    hl_free(eb);
    hl_free(f);
    return st;
oom:
    hl_free(fl.v);
    hl_free(nx.v);
    return hl_fail(err, HL_ERR_NOMEM, "encode: out of memory");
}

/* ------------------------------------------------------ decoding */

size_t hl_bpe_decode(const hl_bpe *b, const hl_tokenizer *t, int32_t id, int special, char *buf, size_t cap) {
    (void)b;
    int32_t ty = hl_tokenizer_type(t, id);
    const char *p = hl_tokenizer_piece(t, id);
    size_t n = hl_tokenizer_piece_len(t, id), w = 0;
    if (!p || ty == HL_TOKEN_UNUSED || (ty == HL_TOKEN_CONTROL && !special)) return 0;
    if (ty == HL_TOKEN_CONTROL || ty == HL_TOKEN_USER_DEFINED || ty == HL_TOKEN_UNKNOWN) {
        w = n < cap ? n : cap;
        memcpy(buf, p, w);
        return w;
    }
    for (size_t i = 0; i < n && w < cap;) {
        size_t k;
        uint32_t cp = get_utf8((const uint8_t *)p + i, n - i, &k);
        int v = cp_to_byte(cp);
        if (v >= 0) {
            buf[w++] = (char)v;
        } else { /* not a mapped byte: the code point as written */
            if (w + k > cap) break;
            memcpy(buf + w, p + i, k);
            w += k;
        }
        i += k;
    }
    return w;
}

size_t hl_bpe_clean_spaces(char *s, size_t n) {
    size_t w, i;
    if (n == 0) return 0;
    /* " ?", " !", " .", " ," lose the space */
    for (w = 1, i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        s[w++] = x;
    }
    n = w;
    /* " ' " becomes "'" */
    for (w = 1, i = 1; i < n; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            w--;
            s[++i] = '\0'; /* the next space goes too, and is no space for the next test */
        }
        s[w++] = x;
    }
    n = w;
    /* " 's", " 'm", " 're", " 've" lose the space */
    for (w = 1, i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char a = s[i + 1], c = i + 2 < n ? s[i + 2] : 0;
            if (a == 's' || a == 'm' || (a == 'r' && c == 'e') || (a == 'v' && c == 'e')) w--;
        }
        s[w++] = x;
    }
    return w;
}
