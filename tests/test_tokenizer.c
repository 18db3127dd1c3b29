/* test_tokenizer.c: the tokenizer against llama2.c's own encode() (oracle
 * ids for tok512 and the 32000-token Llama-2 vocabulary), the heap merge
 * against the plain rescan loop on random text, decode round trips,
 * invalid UTF-8, and hostile llama2.c tokenizer.bin files. */
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <cjson/cJSON.h>
#include <time.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) { /* xorshift64*, deterministic */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Decodes ids[from..n) (prev = ids[from-1] or -1) into a malloc'd string. */
static char *decode_all(const hl_tokenizer *t, const int32_t *ids, size_t n, size_t from, size_t *out_len) {
    size_t cap = 16, len = 0;
    for (size_t i = from; i < n; i++) cap += strlen(hl_tokenizer_piece(t, ids[i]));
    char *s = malloc(cap + 1);
    for (size_t i = from; i < n; i++)
        len += hl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], s + len, cap - len);
    s[len] = 0;
    *out_len = len;
    return s;
}

/* Encodes with both algorithms; checks they agree and that decoding after
 * BOS gives the text back. Returns the fast ids (malloc'd by the library). */
static int32_t *encode_checked(const hl_tokenizer *t, const char *text, size_t len, size_t *n) {
    hl_error err = {0};
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(hl_tokenizer_encode(t, text, len, 1, 0, &a, &na, &err), &err);
    CHECK_OK(hl_tokenizer_encode_reference(t, text, len, 1, 0, &b, &nb, &err), &err);
    int same = a && b && na == nb && memcmp(a, b, na * sizeof *a) == 0;
    CHECK_MSG(same, "fast and reference encodings differ for \"%.*s\" (%zu vs %zu ids)", (int)len, text, na, nb);
    if (a) {
        size_t dl;
        char *d = decode_all(t, a, na, 1, &dl);
        CHECK_MSG(dl == len && memcmp(d, text, len) == 0, "round trip: \"%.*s\" -> \"%s\"", (int)len, text, d);
        free(d);
    }
    hl_free(b);
    *n = na;
    return a;
}

/* ------------------------------------------------------------ oracle */

static void test_oracle(hl_tokenizer *tok512, hl_tokenizer *tok32k) {
    size_t size;
    char *data = read_whole(shared_path("oracle/llama2c/tokenizer_encodings.jsonl"), &size);
    REQUIRE(data);
    data = realloc(data, size + 1);
    data[size] = 0;
    int lines = 0, per[2] = {0, 0};
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!*line) continue;
        cJSON *j = cJSON_Parse(line);
        REQUIRE(j);
        const char *tk = cJSON_GetObjectItem(j, "tokenizer")->valuestring;
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        int bos = cJSON_IsTrue(cJSON_GetObjectItem(j, "bos")), eos = cJSON_IsTrue(cJSON_GetObjectItem(j, "eos"));
        cJSON *arr = cJSON_GetObjectItem(j, "ids");
        int k = strstr(tk, "tok512") ? 0 : 1;
        hl_tokenizer *t = k ? tok32k : tok512;
        per[k]++;
        hl_error err = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(hl_tokenizer_encode(t, text, strlen(text), bos, eos, &ids, &n, &err), &err);
        int ok = (int)n == cJSON_GetArraySize(arr);
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(arr, (int)i)->valueint;
        CHECK_MSG(ok, "%s: \"%s\": ids differ from llama2.c", tk, text);
        if (!ok) {
            fprintf(stderr, "  got:");
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
        hl_free(ids);
        size_t m;
        ids = encode_checked(t, text, strlen(text), &m); /* reference agreement + round trip */
        hl_free(ids);
        cJSON_Delete(j);
        lines++;
    }
    CHECK(per[0] >= 7 && per[1] >= 7);
    printf("oracle: %d lines (tok512 %d, llama2 %d)\n", lines, per[0], per[1]);
    free(data);
}

/* ------------------------------------------------------ vocabulary facts */

static void test_pieces(hl_tokenizer *t, int32_t n) {
    CHECK(hl_tokenizer_n_vocab(t) == n);
    CHECK(hl_tokenizer_bos(t) == 1 && hl_tokenizer_eos(t) == 2 && hl_tokenizer_unk(t) == 0);
    CHECK(strcmp(hl_tokenizer_piece(t, 0), "<unk>") == 0 && hl_tokenizer_type(t, 0) == HL_TOKEN_UNKNOWN);
    CHECK(strcmp(hl_tokenizer_piece(t, 1), "<s>") == 0 && hl_tokenizer_type(t, 1) == HL_TOKEN_CONTROL);
    CHECK(strcmp(hl_tokenizer_piece(t, 2), "</s>") == 0 && hl_tokenizer_type(t, 2) == HL_TOKEN_CONTROL);
    for (int b = 0; b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        CHECK(strcmp(hl_tokenizer_piece(t, b + 3), p) == 0 && hl_tokenizer_type(t, b + 3) == HL_TOKEN_BYTE);
    }
    int normal = 1, found = 1, nospace = 1;
    for (int32_t i = 259; i < n; i++) normal &= hl_tokenizer_type(t, i) == HL_TOKEN_NORMAL;
    for (int32_t i = 0; i < n; i++) {
        const char *p = hl_tokenizer_piece(t, i);
        found &= hl_tokenizer_find(t, p, strlen(p)) == i;
        nospace &= strchr(p, ' ') == NULL;
    }
    CHECK(normal && found && nospace);
    CHECK(hl_tokenizer_find(t, "\xe2\x96\x81", 3) >= 0); /* "▁" */
    CHECK(hl_tokenizer_find(t, "no such piece", 13) == -1);
    CHECK(hl_tokenizer_piece(t, n) == NULL && hl_tokenizer_piece(t, -1) == NULL);
    CHECK(hl_tokenizer_type(t, n) == 0 && hl_tokenizer_score(t, -1) == 0.0f);
}

/* ----------------------------------------------------------- decode */

static void test_decode(hl_tokenizer *t) {
    char buf[64];
    int32_t sp_t = hl_tokenizer_find(t, "\xe2\x96\x81t", 4); /* "▁t" */
    REQUIRE(sp_t >= 0);
    CHECK(hl_tokenizer_decode(t, 1, sp_t, buf, sizeof buf) == 1 && buf[0] == 't'); /* after BOS */
    CHECK(hl_tokenizer_decode(t, 5, sp_t, buf, sizeof buf) == 2 && memcmp(buf, " t", 2) == 0);
    CHECK(hl_tokenizer_decode(t, -1, 1, buf, sizeof buf) == 0);             /* <s> */
    CHECK(hl_tokenizer_decode(t, -1, 2, buf, sizeof buf) == 0);             /* </s> */
    CHECK(hl_tokenizer_decode(t, -1, 0, buf, sizeof buf) == 5 && memcmp(buf, "<unk>", 5) == 0);
    CHECK(hl_tokenizer_decode(t, -1, 13, buf, sizeof buf) == 1 && buf[0] == '\n'); /* <0x0A> */
    CHECK(hl_tokenizer_decode(t, 1, 3 + ' ', buf, sizeof buf) == 1 && buf[0] == ' '); /* a byte space stays */
    CHECK(hl_tokenizer_decode(t, -1, 3 + 0xE2, buf, sizeof buf) == 1 && (uint8_t)buf[0] == 0xE2);
    CHECK(hl_tokenizer_decode(t, 5, sp_t, buf, 1) == 1 && buf[0] == ' '); /* truncated to cap */
    CHECK(hl_tokenizer_decode(t, 5, sp_t, NULL, 0) == 0);
    CHECK(hl_tokenizer_decode(t, -1, -1, buf, sizeof buf) == 0);
    CHECK(hl_tokenizer_decode(t, -1, hl_tokenizer_n_vocab(t), buf, sizeof buf) == 0);
}

/* ------------------------------------------------------- invalid UTF-8 */

static void test_invalid_utf8(hl_tokenizer *t) {
    static const struct { const char *s; size_t off; const char *why; } cases[] = {
        {"\x80", 0, "stray continuation"},
        {"ab\xBF", 2, "stray continuation"},
        {"\xC0\xAF", 0, "overlong"},
        {"x\xC1\x81", 1, "overlong"},
        {"\xE0\x80\xAF", 0, "overlong"},
        {"\xF0\x80\x80\xAF", 0, "overlong"},
        {"\xED\xA0\x80", 0, "surrogate"},
        {"ok \xED\xBF\xBF", 3, "surrogate"},
        {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},
        {"\xF5\x80\x80\x80", 0, "above U+10FFFF"},
        {"\xF8\x88\x80\x80\x80", 0, "invalid lead byte"},
        {"\xFF", 0, "invalid lead byte"},
        {"\xFE\xFF", 0, "invalid lead byte"},
        {"\xE2\x82", 0, "truncated"},
        {"hi \xF0\x9F\x98", 3, "truncated"},
        {"\xC3(", 0, "truncated"},
        {"\xE2\x28\xA1", 0, "truncated"},
        {"\xD0\xB8\xD0", 2, "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_error err = {0};
        int32_t *ids = (int32_t *)&err; /* must be reset to NULL */
        size_t n = 99;
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", cases[i].off);
        for (int ref = 0; ref < 2; ref++) {
            hl_status s = (ref ? hl_tokenizer_encode_reference : hl_tokenizer_encode)(t, cases[i].s, strlen(cases[i].s),
                                                                                      1, 0, &ids, &n, &err);
            CHECK_MSG(s == HL_ERR_INVALID_ARG && ids == NULL && n == 0, "case %zu", i);
            CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, cases[i].why), "case %zu: \"%s\"", i, err.msg);
        }
    }
    /* The same bytes are fine as valid sequences at the extremes. */
    static const char *valid[] = {"\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
                                  "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\x7F"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t n;
        hl_free(encode_checked(t, valid[i], strlen(valid[i]), &n));
        CHECK(n >= 2);
    }
}

static void test_empty_and_args(hl_tokenizer *t) {
    hl_error err = {0};
    int32_t *ids;
    size_t n;
    CHECK_OK(hl_tokenizer_encode(t, "", 0, 1, 0, &ids, &n, &err), &err);
    CHECK(n == 1 && ids[0] == 1);
    hl_free(ids);
    CHECK_OK(hl_tokenizer_encode(t, NULL, 0, 0, 0, &ids, &n, &err), &err);
    CHECK(n == 0 && ids != NULL);
    hl_free(ids);
    CHECK_OK(hl_tokenizer_encode(t, "", 0, 1, 1, &ids, &n, &err), &err);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 2);
    hl_free(ids);
    CHECK_OK(hl_tokenizer_encode(t, "a", 1, 0, 1, &ids, &n, &err), &err);
    CHECK(n >= 2 && ids[n - 1] == 2 && ids[0] != 1);
    hl_free(ids);
    CHECK(hl_tokenizer_encode(t, NULL, 3, 1, 0, &ids, &n, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_tokenizer_encode(t, "a", 1, 1, 0, NULL, &n, &err) == HL_ERR_INVALID_ARG);
    /* NUL bytes are text like any other (byte fallback) and round trip. */
    hl_free(encode_checked(t, "a\0b", 3, &n));
    /* A literal U+2581 is not a space: byte tokens, and it decodes back to itself. */
    CHECK_OK(hl_tokenizer_encode(t, "\xe2\x96\x81", 3, 1, 0, &ids, &n, &err), &err);
    CHECK(n == 5 && ids[2] == 3 + 0xE2 && ids[3] == 3 + 0x96 && ids[4] == 3 + 0x81);
    hl_free(ids);
    hl_free(encode_checked(t, "a\xe2\x96\x81 b \xe2\x96\x81\xe2\x96\x81", 13, &n));
}

/* ------------------------------------------------- random equivalence */

static const char *const alphabet[] = {
    "a", "b", "e", "h", "t", "o", "n", "s", "l", "i", "y", "d", "L", "O", "T", " ", " ", " ", "  ", "\n", "\t",
    ".", ",", "'", "!", "?", "\"", "0", "1", "9", "the", " the", "Once", " upon", " a", " time", "Lily",
    " little", " dog", "ing", "ed", "\xD1\x82", "\xD0\xB8", "\xD1\x88", "\xD0\xB0", "\xD0\xB2", "\xD1\x85",
    "\xD0\xBE", "\xD0\xB4", "\xD1\x81", "\xD1\x80", " \xD1\x82\xD0\xB8\xD1\x88\xD0\xB8\xD0\xBD\xD0\xB0",
    "\xE2\x80\x94", "\xC3\xA9", "\xC3\xAF", "\xE6\x97\xA5", "\xE6\x9C\xAC", "\xE8\xAA\x9E", "\xF0\x9F\x98\x80",
    "\xF0\x9F\x9C\x82", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xE2\x96\x81", "\xCC\x81", "<s>", "<0x41>", "<unk>",
};

static size_t random_text(char *buf, size_t cap, const hl_tokenizer *t) {
    size_t len = 0, parts = rnd(40);
    int mode = (int)rnd(3); /* 0: alphabet, 1: vocabulary pieces, 2: both */
    for (size_t k = 0; k < parts; k++) {
        char piece[64];
        size_t pl;
        if (mode == 0 || (mode == 2 && rnd(2))) {
            const char *a = alphabet[rnd(sizeof alphabet / sizeof alphabet[0])];
            pl = strlen(a);
            memcpy(piece, a, pl);
        } else {
            int32_t id = 259 + (int32_t)rnd((uint32_t)hl_tokenizer_n_vocab(t) - 259);
            pl = hl_tokenizer_decode(t, -1, id, piece, sizeof piece);
        }
        if (len + pl > cap) break;
        memcpy(buf + len, piece, pl);
        len += pl;
    }
    return len;
}

static void test_random(hl_tokenizer *t, int count) {
    char buf[1024];
    size_t total_ids = 0;
    for (int i = 0; i < count; i++) {
        size_t len = random_text(buf, sizeof buf, t), n;
        hl_free(encode_checked(t, buf, len, &n));
        total_ids += n;
    }
    printf("random: %d strings, %zu ids, fast == reference\n", count, total_ids);
}

/* Many equal scores: only leftmost-first tie breaking gives llama2.c's ids. */
static void test_ties(void) {
    static const char *pieces[] = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "ba", "aa", "bb", "abab", "aab", "bab",
                                   "cc", "ccc", "ac", "ca", "\xe2\x96\x81", ("\xe2\x96\x81" "a"), "<0x62>"};
    enum { N = sizeof pieces / sizeof pieces[0] };
    float scores[N];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) scores[i] = k == 0 ? -1.0f : (float)-(int)rnd(3);
        scores[N - 1] = 0.0f;
        if (k) scores[9] = -1e10f; /* at llama2.c's floor: never merges */
        hl_tokenizer *t;
        hl_error err = {0};
        CHECK_OK(hl_tokenizer_init(N, pieces, scores, NULL, 1, 2, 0, &t, &err), &err);
        if (!t) return;
        CHECK(hl_tokenizer_type(t, 19) == HL_TOKEN_BYTE && hl_tokenizer_type(t, 1) == HL_TOKEN_CONTROL &&
              hl_tokenizer_type(t, 0) == HL_TOKEN_UNKNOWN && hl_tokenizer_type(t, 3) == HL_TOKEN_NORMAL);
        char buf[64];
        for (int i = 0; i < 3000; i++) {
            size_t len = rnd(40);
            for (size_t j = 0; j < len; j++) buf[j] = "abc "[rnd(j ? 4 : 3)];
            int32_t *a, *b;
            size_t na, nb;
            CHECK_OK(hl_tokenizer_encode(t, buf, len, 1, 1, &a, &na, &err), &err);
            CHECK_OK(hl_tokenizer_encode_reference(t, buf, len, 1, 1, &b, &nb, &err), &err);
            CHECK_MSG(na == nb && memcmp(a, b, na * sizeof *a) == 0, "ties: \"%.*s\"", (int)len, buf);
            hl_free(a);
            hl_free(b);
        }
        /* "aaa": three tied candidates (aa, aa); the leftmost merges first. */
        int32_t *ids;
        size_t n;
        if (k == 0) {
            CHECK_OK(hl_tokenizer_encode(t, "aaa", 3, 0, 0, &ids, &n, &err), &err);
            /* ▁ a a a -> (▁a) a a -> (▁a)(aa) */
            CHECK(n == 2 && ids[0] == 18 && ids[1] == 8);
            hl_free(ids);
        }
        /* "b" never becomes the <0x62> byte piece though it exists; there
         * is no byte token for 'd', so it is unk. */
        CHECK_OK(hl_tokenizer_encode(t, "bd", 2, 0, 0, &ids, &n, &err), &err);
        CHECK(n == 3 && ids[0] == 17 && ids[1] == 4 && ids[2] == 0);
        hl_free(ids);
        hl_tokenizer_free(t);
    }
}

/* Random small vocabularies (duplicates, ties, scores at llama2.c's floor,
 * missing byte tokens) over a tiny alphabet, where merges chain a lot. */
static void test_random_vocabs(void) {
    static const char *cps[] = {"a", "b", "c", "\xe2\x96\x81", "\xD0\xB8", "\xF0\x9F\x98\x80"};
    static const char *text_cps[] = {"a", "b", "c", " ", "\xD0\xB8", "\xF0\x9F\x98\x80", "d", "\xe2\x96\x81"};
    static const float score_set[] = {0.0f, -0.0f, -1.0f, -2.0f, -3.5f, -1e10f, -1e9f, 1.0f};
    int mismatches = 0, texts = 0;
    for (int v = 0; v < 60; v++) {
        enum { MAXV = 3 + 256 + 64 };
        static char store[MAXV][32];
        const char *pieces[MAXV];
        float scores[MAXV];
        int n = 0;
        pieces[n++] = "<unk>";
        pieces[n++] = "<s>";
        pieces[n++] = "</s>";
        for (int b = 0; b < 256; b++)
            if (rnd(4)) snprintf(store[n], sizeof store[n], "<0x%02X>", b), pieces[n] = store[n], n++;
        int extra = 5 + (int)rnd(60);
        for (int k = 0; k < extra; k++) {
            store[n][0] = 0;
            for (int l = 1 + (int)rnd(k < 6 ? 1 : 5); l > 0; l--) strcat(store[n], cps[rnd(6)]);
            pieces[n] = store[n];
            n++;
        }
        for (int i = 0; i < n; i++) scores[i] = i > 258 ? score_set[rnd(8)] : 0.0f;
        hl_tokenizer *t = NULL;
        hl_error err = {0};
        CHECK_OK(hl_tokenizer_init(n, pieces, scores, NULL, 1, 2, 0, &t, &err), &err);
        if (!t) continue;
        for (int k = 0; k < 100; k++) {
            char buf[256];
            size_t len = 0;
            for (int l = (int)rnd(50); l > 0; l--) {
                const char *c = text_cps[rnd(8)];
                memcpy(buf + len, c, strlen(c));
                len += strlen(c);
            }
            int32_t *a, *b;
            size_t na, nb;
            CHECK_OK(hl_tokenizer_encode(t, buf, len, 1, 1, &a, &na, &err), &err);
            CHECK_OK(hl_tokenizer_encode_reference(t, buf, len, 1, 1, &b, &nb, &err), &err);
            int same = na == nb && memcmp(a, b, na * sizeof *a) == 0;
            mismatches += !same;
            CHECK_MSG(same, "random vocab %d: \"%.*s\"", v, (int)len, buf);
            hl_free(a);
            hl_free(b);
            texts++;
        }
        hl_tokenizer_free(t);
    }
    printf("random vocabularies: %d texts, %d mismatches\n", texts, mismatches);
}

/* Byte-fallback tokens never merge, even where their text concatenates to a
 * piece (SentencePiece; llama2.c's own vocabularies have no such piece). */
static void test_fallback_no_merge(void) {
    static const char *pieces[] = {"<unk>", "<s>", "</s>", "<0x64>", "a", "<0x64>a", "\xe2\x96\x81", "<0x"};
    float scores[] = {0, 0, 0, 0, -1, 0, -2, -1};
    hl_tokenizer *t;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_init(8, pieces, scores, NULL, 1, 2, 0, &t, &err), &err);
    if (!t) return;
    int32_t *ids;
    size_t n;
    CHECK_OK(hl_tokenizer_encode(t, "da", 2, 1, 0, &ids, &n, &err), &err);
    CHECK(n == 4 && ids[1] == 6 && ids[2] == 3 && ids[3] == 4);
    hl_free(ids);
    hl_free(encode_checked(t, "dad a", 5, &n));
    hl_tokenizer_free(t);
}

static void test_speed(hl_tokenizer *t) {
    size_t cap = 200 * 1024, len = 0;
    char *text = malloc(cap);
    while (len < cap) {
        char piece[64];
        size_t pl;
        if (rnd(4)) {
            int32_t id = 259 + (int32_t)rnd((uint32_t)hl_tokenizer_n_vocab(t) - 259);
            pl = hl_tokenizer_decode(t, -1, id, piece, sizeof piece);
        } else {
            const char *a = alphabet[rnd(sizeof alphabet / sizeof alphabet[0])];
            pl = strlen(a);
            memcpy(piece, a, pl);
        }
        if (len + pl > cap) break;
        memcpy(text + len, piece, pl);
        len += pl;
    }
    hl_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = now_s();
    CHECK_OK(hl_tokenizer_encode(t, text, len, 1, 0, &ids, &n, &err), &err);
    double dt = now_s() - t0;
    printf("speed: %zu bytes -> %zu ids in %.3f s (vocab %d)\n", len, n, dt, hl_tokenizer_n_vocab(t));
    size_t dl;
    char *d = decode_all(t, ids, n, 1, &dl);
    CHECK(dl == len && memcmp(d, text, len) == 0);
    free(d);
    hl_free(ids);
    free(text);
}

/* ------------------------------------------- hostile tokenizer.bin files */

typedef struct bbuf { uint8_t *p; size_t n; } bbuf;
static void put(bbuf *b, const void *d, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_i32(bbuf *b, int32_t v) { put(b, &v, 4); } /* little-endian host */
static void put_tok(bbuf *b, float score, const char *s, size_t n) {
    put(b, &score, 4);
    put_i32(b, (int32_t)n);
    put(b, s, n);
}

/* A small valid llama2.c tokenizer: unk, bos, eos, 256 bytes, a few pieces. */
static bbuf synth_bin(void) {
    bbuf b = {0};
    put_i32(&b, 8);
    put_tok(&b, 0, "<unk>", 5);
    put_tok(&b, 0, "\n<s>\n", 5);
    put_tok(&b, 0, "\n</s>\n", 6);
    for (int i = 0; i < 256; i++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", i);
        put_tok(&b, 0, p, 6);
    }
    static const char *extra[] = {" ", "e", "h", "l", "o", " h", "he", "ll", " he", "llo", " hello", "\xD0\xB8"};
    for (int i = 0; i < 12; i++) put_tok(&b, (float)-i, extra[i], strlen(extra[i]));
    return b;
}

static void expect_bin(const bbuf *b, int32_t n_vocab, hl_status want, const char *sub, const char *what) {
    hl_tokenizer *t = (hl_tokenizer *)b; /* must be reset to NULL */
    hl_error err = {0};
    hl_status s = hl_tokenizer_from_llama2c_memory(b->p, b->n, "evil.bin", n_vocab, &t, &err);
    CHECK_MSG(s == want && t == NULL, "%s: got %s: %s", what, hl_status_name(s), err.msg);
    CHECK_MSG(strstr(err.msg, sub) && strstr(err.msg, "evil.bin"), "%s: message \"%s\" lacks \"%s\"", what, err.msg,
              sub);
}

static void test_bin_valid(void) {
    bbuf b = synth_bin();
    hl_tokenizer *t = NULL;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_from_llama2c_memory(b.p, b.n, "synth.bin", 0, &t, &err), &err);
    REQUIRE(t);
    CHECK(hl_tokenizer_n_vocab(t) == 271);
    CHECK(strcmp(hl_tokenizer_piece(t, 259), "\xe2\x96\x81") == 0);
    CHECK(strcmp(hl_tokenizer_piece(t, 269), "\xe2\x96\x81hello") == 0);
    int32_t *ids;
    size_t n;
    CHECK_OK(hl_tokenizer_encode(t, "hello hello!", 12, 1, 0, &ids, &n, &err), &err);
    CHECK(n == 4 && ids[1] == 269 && ids[2] == 269 && ids[3] == 3 + '!');
    hl_free(ids);
    hl_free(encode_checked(t, "hello \xD0\xB8\xD0\xB9 w\xF0\x9F\x98\x80", 17, &n));
    hl_tokenizer_free(t);
    CHECK_OK(hl_tokenizer_from_llama2c_memory(b.p, b.n, "synth.bin", 271, &t, &err), &err);
    hl_tokenizer_free(t);

    /* Every allocation failure is reported as HL_ERR_NOMEM and leaks nothing. */
    int k, saw_ok = 0;
    for (k = 0; k < 64 && !saw_ok; k++) {
        hl_alloc_fail_after(k);
        hl_status s = hl_tokenizer_from_llama2c_memory(b.p, b.n, "synth.bin", 0, &t, &err);
        int32_t *e = NULL;
        hl_status s2 = HL_OK;
        if (s == HL_OK) s2 = hl_tokenizer_encode(t, "hello hello", 11, 1, 1, &e, &n, &err);
        hl_alloc_fail_after(-1);
        CHECK_MSG(s == HL_OK || (s == HL_ERR_NOMEM && t == NULL), "fail_after %d: %s", k, hl_status_name(s));
        CHECK_MSG(s2 == HL_OK || s2 == HL_ERR_NOMEM, "fail_after %d (encode): %s", k, hl_status_name(s2));
        saw_ok = s == HL_OK && s2 == HL_OK;
        hl_free(e);
        hl_tokenizer_free(t);
    }
    CHECK(saw_ok);

    /* Every proper prefix fails cleanly when the count is known. */
    int bad = 0;
    for (size_t cut = 0; cut < b.n; cut++) {
        hl_status s = hl_tokenizer_from_llama2c_memory(b.p, cut, "cut.bin", 271, &t, &err);
        bad += s == HL_OK;
        if (s == HL_OK) hl_tokenizer_free(t);
        s = hl_tokenizer_from_llama2c_memory(b.p, cut, "cut.bin", 0, &t, &err); /* may be a valid shorter vocab */
        if (s == HL_OK) hl_tokenizer_free(t);
    }
    CHECK(bad == 0);
    free(b.p);
}

static void test_bin_hostile(void) {
    bbuf b = {0};
    expect_bin(&b, 0, HL_ERR_FORMAT, "too short", "empty file");
    put(&b, "\x08\x00", 2);
    expect_bin(&b, 0, HL_ERR_FORMAT, "too short", "2-byte file");
    free(b.p);

    static const int32_t bad_max[] = {0, -1, INT32_MIN, 1025, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        b = (bbuf){0};
        put_i32(&b, bad_max[i]);
        put_tok(&b, 0, "a", 1);
        expect_bin(&b, 0, HL_ERR_FORMAT, "max_token_length", "max_token_length");
        free(b.p);
    }

    b = (bbuf){0};
    put_i32(&b, 8);
    put(&b, "\0\0\0\0\1", 5); /* 5 of the 8 header bytes */
    expect_bin(&b, 0, HL_ERR_FORMAT, "truncated", "truncated token header");
    free(b.p);

    b = (bbuf){0};
    put_i32(&b, 8);
    float zero = 0;
    put(&b, &zero, 4);
    put_i32(&b, -5);
    expect_bin(&b, 0, HL_ERR_FORMAT, "negative piece length -5", "negative length");
    free(b.p);

    b = (bbuf){0};
    put_i32(&b, 8);
    put(&b, &zero, 4);
    put_i32(&b, INT32_MAX);
    expect_bin(&b, 0, HL_ERR_FORMAT, "exceeds max_token_length", "huge length");
    free(b.p);

    b = (bbuf){0};
    put_i32(&b, 1024);
    put(&b, &zero, 4);
    put_i32(&b, 1000);
    put(&b, "abc", 3);
    expect_bin(&b, 0, HL_ERR_FORMAT, "runs past the end", "length past EOF");
    free(b.p);

    b = (bbuf){0};
    put_i32(&b, 8);
    put_tok(&b, NAN, "a", 1);
    expect_bin(&b, 0, HL_ERR_FORMAT, "NaN", "NaN score");
    free(b.p);

    /* The valid synthetic file with one defect each. */
    bbuf v = synth_bin();
    expect_bin(&v, 300, HL_ERR_MISMATCH, "has 271 tokens, expected n_vocab 300", "too few tokens");
    expect_bin(&v, 270, HL_ERR_MISMATCH, "more than the expected n_vocab 270", "too many tokens");
    b = (bbuf){0};
    put(&b, v.p, v.n);
    put_tok(&b, 0, "a\0b", 3);
    expect_bin(&b, 0, HL_ERR_FORMAT, "NUL", "NUL in piece");
    free(b.p);
    b = (bbuf){0};
    put(&b, v.p, v.n);
    put_tok(&b, 0, "\xC3", 1);
    expect_bin(&b, 0, HL_ERR_FORMAT, "not valid UTF-8", "invalid UTF-8 piece");
    free(b.p);
    b = (bbuf){0};
    put(&b, v.p, v.n);
    put(&b, "\0\0", 2); /* trailing garbage when reading to EOF */
    expect_bin(&b, 0, HL_ERR_FORMAT, "truncated", "trailing bytes");
    free(b.p);
    free(v.p);

    b = (bbuf){0};
    put_i32(&b, 8);
    put_tok(&b, 0, "<unk>", 5);
    put_tok(&b, 0, "\n<s>\n", 5);
    expect_bin(&b, 0, HL_ERR_FORMAT, "eos token id 2 is out of range", "two tokens only");
    free(b.p);

    b = (bbuf){0};
    put_i32(&b, 8);
    expect_bin(&b, 0, HL_ERR_FORMAT, "no tokens", "no tokens");
    free(b.p);

    hl_tokenizer *t = NULL;
    hl_error err = {0};
    CHECK(hl_tokenizer_from_llama2c_memory("", 0, "x", -1, &t, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_tokenizer_from_llama2c("/nonexistent/tok.bin", 0, &t, &err) == HL_ERR_IO && t == NULL);
    CHECK(strstr(err.msg, "/nonexistent/tok.bin") != NULL);
}

/* hl_tokenizer_init: argument checks. */
static void test_init_args(void) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", "a"};
    float scores[] = {0, 0, 0, -1};
    int32_t types[] = {2, 3, 3, 1};
    hl_tokenizer *t = NULL;
    hl_error err = {0};
    CHECK(hl_tokenizer_init(0, pieces, scores, NULL, 1, 2, 0, &t, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_tokenizer_init(4, pieces, scores, NULL, 4, 2, 0, &t, &err) == HL_ERR_INVALID_ARG && t == NULL);
    CHECK(strstr(err.msg, "bos token id 4 is out of range"));
    types[3] = 7;
    CHECK(hl_tokenizer_init(4, pieces, scores, types, 1, 2, 0, &t, &err) == HL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "token type 7"));
    types[3] = HL_TOKEN_BYTE;
    CHECK(hl_tokenizer_init(4, pieces, scores, types, 1, 2, 0, &t, &err) == HL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "<0xNN>"));
    types[3] = HL_TOKEN_USER_DEFINED;
    CHECK_OK(hl_tokenizer_init(4, pieces, scores, types, 1, 2, 0, &t, &err), &err);
    CHECK(t && hl_tokenizer_type(t, 3) == HL_TOKEN_USER_DEFINED);
    hl_tokenizer_free(t);
    char big[HL_TOKENIZER_MAX_PIECE + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *p2[] = {"<unk>", "<s>", "</s>", big};
    CHECK(hl_tokenizer_init(4, p2, scores, NULL, 1, 2, 0, &t, &err) == HL_ERR_LIMIT);
    const char *p3[] = {"<unk>", "<s>", NULL, "a"};
    CHECK(hl_tokenizer_init(4, p3, scores, NULL, 1, 2, 0, &t, &err) == HL_ERR_INVALID_ARG);
    hl_tokenizer_free(NULL);
}

int main(void) {
    hl_tokenizer *tok512 = NULL, *tok32k = NULL;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_from_llama2c(shared_path("models/stories260K/tok512.bin"), 0, &tok512, &err), &err);
    CHECK_OK(hl_tokenizer_from_llama2c(shared_path("models/llama2-tokenizer/tokenizer.bin"), 32000, &tok32k, &err),
             &err);
    REQUIRE(tok512 && tok32k);
    test_pieces(tok512, 512);
    test_pieces(tok32k, 32000);
    test_oracle(tok512, tok32k);
    test_decode(tok512);
    test_decode(tok32k);
    test_invalid_utf8(tok512);
    test_invalid_utf8(tok32k);
    test_empty_and_args(tok512);
    test_empty_and_args(tok32k);
    test_random(tok512, 1000);
    test_random(tok32k, 1000);
    test_ties();
    test_fallback_no_merge();
    test_random_vocabs();
    test_speed(tok32k);
    test_speed(tok512);
    test_bin_valid();
    test_bin_hostile();
    test_init_args();
    hl_tokenizer_free(tok512);
    hl_tokenizer_free(tok32k);
    return hl_test_finish("test_tokenizer");
}
