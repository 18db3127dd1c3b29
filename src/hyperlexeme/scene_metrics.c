/* scene_metrics.c: what a decoded scene output says about the scene: which
 * of its parts it names, whether in the scene's order, which facet values,
 * and whether it names parts of other scenes (see hl_read_score in scene.h).
 *
 * Words are maximal runs of letters and digits (ASCII, Latin-1 and Latin
 * Extended, Greek and Cyrillic), compared case-insensitively for ASCII and
 * Cyrillic. A part counts where the reference names it, so written outputs
 * that inflect a part (Russian "у входа" for the part "вход") are not held
 * against the decoder; generated corpora keep every part in its dictionary
 * form, where this is every part. */
#include "hyperlexeme/scene.h"
#include "util/alloc.h"

#include <string.h>

static int is_word_cp(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= 0xC0 && c <= 0x2AF && c != 0xD7 && c != 0xF7) || (c >= 0x370 && c <= 0x52F);
}

static uint32_t lower_cp(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32; /* А..Я */
    if (c >= 0x400 && c <= 0x40F) return c + 80; /* Ѐ..Џ, Ё */
    return c;
}

/* Next code point of s at *i (an invalid byte is itself). */
static uint32_t next_cp(const unsigned char *s, size_t *i) {
    uint32_t c = s[*i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    for (int k = 1; k < len; k++)
        if ((s[*i + k] & 0xc0) != 0x80) len = 1;
    if (len > 1) {
        c &= 0x7fu >> len;
        for (int k = 1; k < len; k++) c = (c << 6) | (s[*i + k] & 0x3f);
    }
    *i += (size_t)len;
    return c;
}

static void put_cp(char *out, size_t *o, uint32_t c) {
    if (c < 0x80) out[(*o)++] = (char)c;
    else if (c < 0x800) {
        out[(*o)++] = (char)(0xC0 | (c >> 6));
        out[(*o)++] = (char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (c >> 12));
        out[(*o)++] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (c & 0x3f));
    } else {
        out[(*o)++] = (char)(0xF0 | (c >> 18));
        out[(*o)++] = (char)(0x80 | ((c >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (c & 0x3f));
    }
}

/* The words of s, lowercased, as NUL-separated strings in *buf (hl_malloc'd);
 * *starts gets each word's offset. Returns the count, or -1 out of memory. */
static int64_t split_words(const char *s, char **buf, size_t **starts) {
    size_t n = strlen(s), o = 0, i = 0;
    int64_t k = 0;
    *buf = hl_malloc(2 * n + 2); /* lowercasing never grows a code point by more than its length */
    *starts = hl_malloc_array(n / 1 + 1, sizeof **starts);
    if (!*buf || !*starts) {
        hl_free(*buf);
        hl_free(*starts);
        *buf = NULL;
        *starts = NULL;
        return -1;
    }
    const unsigned char *u = (const unsigned char *)s;
    int in = 0;
    while (i < n) {
        uint32_t c = next_cp(u, &i);
        if (is_word_cp(c)) {
            if (!in) (*starts)[k++] = o;
            put_cp(*buf, &o, lower_cp(c));
            in = 1;
        } else if (in) {
            (*buf)[o++] = 0;
            in = 0;
        }
    }
    if (in) (*buf)[o++] = 0;
    return k;
}

/* The first index of word w among the k words, or -1. */
static int64_t find_word(const char *buf, const size_t *starts, int64_t k, const char *w) {
    for (int64_t j = 0; j < k; j++)
        if (!strcmp(buf + starts[j], w)) return j;
    return -1;
}

/* w lowercased into out (cap bytes; 0 when it does not fit or is not one word). */
static int one_word(const char *w, char *out, size_t cap) {
    char *b;
    size_t *st;
    int64_t k = split_words(w, &b, &st);
    int ok = k == 1 && strlen(b) < cap;
    if (ok) memcpy(out, b, strlen(b) + 1);
    hl_free(b);
    hl_free(st);
    return ok;
}

void hl_read_score(const char *got, const char *ref, const char *const *parts, int n_parts, const char *const *facets,
                   int n_facets, int order_form, int (*is_any_part)(void *, const char *), void *user,
                   hl_read_stats *st) {
    char *gb = NULL, *rb = NULL;
    size_t *gs = NULL, *rs = NULL;
    int64_t gk = split_words(got, &gb, &gs), rk = split_words(ref, &rb, &rs);
    if (gk < 0 || rk < 0) goto done; /* out of memory: this example adds nothing */
    int64_t pos[64];
    int n_named = 0;
    for (int p = 0; p < n_parts && p < 64; p++) {
        char w[1024];
        pos[p] = -1;
        if (!one_word(parts[p], w, sizeof w) || find_word(rb, rs, rk, w) < 0) continue; /* the reference does not name it */
        st->parts_ref++;
        pos[p] = find_word(gb, gs, gk, w);
        if (pos[p] >= 0) {
            st->parts_hit++;
            n_named++;
        }
    }
    /* Order: the named parts in the scene's order, where the form states one. */
    if (order_form && n_named >= 2) {
        int64_t last = -1;
        int in_order = 1;
        for (int p = 0; p < n_parts && p < 64; p++) {
            if (pos[p] < 0) continue;
            if (pos[p] < last) in_order = 0;
            last = pos[p];
        }
        st->order_n++;
        st->order_ok += in_order;
    }
    for (int f = 0; f < n_facets; f++) {
        char w[1024];
        if (!one_word(facets[f], w, sizeof w) || find_word(rb, rs, rk, w) < 0) continue;
        st->facets_ref++;
        st->facets_hit += find_word(gb, gs, gk, w) >= 0;
    }
    /* Precision: of the output's words that are some lexeme's part, how many are this scene's. */
    if (is_any_part)
        for (int64_t j = 0; j < gk; j++) {
            const char *w = gb + gs[j];
            if (find_word(gb, gs, j, w) >= 0) continue; /* each distinct word once */
            if (!is_any_part(user, w)) continue;
            st->named++;
            for (int p = 0; p < n_parts; p++) {
                char pw[1024];
                if (one_word(parts[p], pw, sizeof pw) && !strcmp(pw, w)) {
                    st->named_right++;
                    break;
                }
            }
        }
done:
    hl_free(gb);
    hl_free(rb);
    hl_free(gs);
    hl_free(rs);
}

void hl_read_lower_word(const char *w, char *out, size_t cap) {
    if (!one_word(w, out, cap) && cap) out[0] = 0;
}
