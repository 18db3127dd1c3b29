/* test_tokenizer_bpe.c: the byte-level BPE tokenizer ("gpt2" model) against
 * llama.cpp. Every shared case (../shared/oracle/llamacpp/arch/tokenizer:
 * the real Llama-3 and Qwen vocabularies, 764 strings, parse_special on and
 * off) must give exactly llama.cpp's ids; decoding must give back the text's
 * bytes, and with special tokens rendered and llama.cpp's space clean-up,
 * exactly llama.cpp's detokenized text. Also: hand-checked pre-tokenizer
 * cases for the pre types without a shared vocabulary (smollm, default,
 * gpt-2), hyperlexemes on a byte-level vocabulary, a to_gguf/from_gguf round
 * trip, refusals (unsupported pre-tokenizer, invalid UTF-8 with its offset),
 * and the tokenizing speed. */
#include "test_util.h"
#include "gguf_edit.h"
#include "io/gguf.h"
#include "text/bpe.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <cjson/cJSON.h>
#include <time.h>

#define ARCH "oracle/llamacpp/arch/"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hl_tokenizer *load_tok(const char *rel, hl_gguf **gout) {
    hl_gguf *g = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(shared_path(rel), &g, &err), &err);
    REQUIRE(g);
    hl_tokenizer *t = NULL;
    double t0 = now_s();
    CHECK_OK(hl_tokenizer_from_gguf(g, &t, &err), &err);
    REQUIRE(t);
    printf("%s: tokenizer loaded in %.3f s (%d tokens, pre %s)\n", rel, now_s() - t0, hl_tokenizer_n_vocab(t),
           hl_tokenizer_pre_name(t));
    if (gout) *gout = g;
    else hl_gguf_free(g);
    return t;
}

/* Concatenated decoding of ids[from..n). */
static size_t decode_all(const hl_tokenizer *t, const int32_t *ids, size_t from, size_t n, int special, char *buf,
                         size_t cap) {
    size_t w = 0;
    for (size_t i = from; i < n; i++) {
        REQUIRE(cap - w >= HL_TOKENIZER_MAX_PIECE);
        w += hl_tokenizer_decode_special(t, i ? ids[i - 1] : -1, ids[i], special, buf + w, cap - w);
    }
    return w;
}

/* cJSON ends a string at a decoded NUL, and some cases hold "\u0000": each
 * such escape is rewritten as U+10FFFD (absent from the files), which
 * unmark() turns back into NUL, giving the length. */
static void mark_nuls(char *line) {
    for (char *p = line; (p = strstr(p, "\\u0000")) != NULL;) {
        size_t bs = 0; /* an escaped backslash before it makes it plain text */
        for (char *q = p; q > line && q[-1] == '\\'; q--) bs++;
        if (bs % 2) { p += 6; continue; }
        char *tail = p + 6;
        memmove(p + 12, tail, strlen(tail) + 1);
        memcpy(p, "\\uDBFF\\uDFFD", 12);
        p += 12;
    }
}
static size_t unmark(char *s) {
    size_t w = 0, n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (n - i >= 4 && memcmp(s + i, "\xf4\x8f\xbf\xbd", 4) == 0) {
            s[w++] = 0;
            i += 4;
        } else {
            s[w++] = s[i++];
        }
    }
    return w;
}

/* Every record of one oracle file; returns the bytes tokenized. */
static size_t oracle_file(const hl_tokenizer *t, const char *rel, int *n_records, double *secs) {
    size_t size;
    char *data = read_whole(shared_path(rel), &size);
    REQUIRE(data);
    data = realloc(data, size + 1);
    data[size] = 0;
    int records = 0, bad_ids = 0, bad_detok = 0, bad_trip = 0, cleaned = 0;
    size_t bytes = 0, cap = 1 << 20;
    char *buf = malloc(cap), *buf2 = malloc(cap);
    REQUIRE(buf && buf2);
    double tsum = 0;
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *lbuf = malloc(strlen(line) * 2 + 1); /* room for the longer escapes */
        REQUIRE(lbuf);
        strcpy(lbuf, line);
        mark_nuls(lbuf);
        cJSON *j = cJSON_Parse(lbuf);
        free(lbuf);
        if (!j) continue;
        cJSON *jt = cJSON_GetObjectItem(j, "text"), *ja = cJSON_GetObjectItem(j, "ids");
        cJSON *jd = cJSON_GetObjectItem(j, "detok");
        REQUIRE(cJSON_IsString(jt) && cJSON_IsArray(ja) && cJSON_IsString(jd));
        const char *text = jt->valuestring;
        size_t len = unmark(jt->valuestring), dlen = unmark(jd->valuestring);
        int ps = cJSON_IsTrue(cJSON_GetObjectItem(j, "parse_special"));
        REQUIRE(cJSON_IsTrue(cJSON_GetObjectItem(j, "add_special")));
        hl_error err = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        double t0 = now_s();
        CHECK_OK(hl_tokenizer_encode_special(t, text, len, hl_tokenizer_add_bos(t), hl_tokenizer_add_eos(t), ps,
                                             &ids, &n, &err), &err);
        tsum += now_s() - t0;
        if (!ps) { /* the heap merge equals the plain rescan loop */
            int32_t *r = NULL;
            size_t nr = 0;
            CHECK_OK(hl_tokenizer_encode_reference(t, text, len, hl_tokenizer_add_bos(t), hl_tokenizer_add_eos(t), &r,
                                                   &nr, &err), &err);
            CHECK_MSG(nr == n && (n == 0 || !memcmp(r, ids, n * sizeof *r)), "%s: reference merge differs", rel);
            hl_free(r);
        }
        bytes += len;
        int ok = (int)n == cJSON_GetArraySize(ja);
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(ja, (int)i)->valueint;
        if (!ok && bad_ids++ < 8) {
            fprintf(stderr, "%s: ids differ (parse_special %d) for \"%s\":\n  ours:", rel, ps, text);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n  llama.cpp: %s\n", cJSON_PrintUnformatted(ja));
        }
        /* llama.cpp's detok: special tokens rendered, spaces cleaned as the pre type says */
        size_t w = decode_all(t, ids, 0, n, 1, buf, cap);
        size_t w0 = w;
        if (t && hl_tokenizer_pre_name(t) && strcmp(hl_tokenizer_pre_name(t), "qwen2") != 0)
            w = hl_bpe_clean_spaces(buf, w);
        cleaned += w != w0;
        if ((w != dlen || memcmp(buf, jd->valuestring, w) != 0) && bad_detok++ < 5)
            fprintf(stderr, "%s: detok differs for \"%s\": \"%.*s\" vs \"%s\"\n", rel, text, (int)w, buf,
                    jd->valuestring);
        /* Round trip: the text's bytes come back (BOS skipped; with parse_special the
         * control tokens matched in the text render as written). */
        size_t from = hl_tokenizer_add_bos(t) ? 1 : 0;
        size_t w2 = decode_all(t, ids, from, n, ps, buf2, cap);
        if ((w2 != len || memcmp(buf2, text, len) != 0) && bad_trip++ < 5)
            fprintf(stderr, "%s: round trip fails for \"%s\": \"%.*s\"\n", rel, text, (int)w2, buf2);
        hl_free(ids);
        cJSON_Delete(j);
        records++;
    }
    CHECK_MSG(bad_ids == 0, "%s: %d of %d records give other ids than llama.cpp", rel, bad_ids, records);
    CHECK_MSG(bad_detok == 0, "%s: %d of %d detokenizations differ from llama.cpp", rel, bad_detok, records);
    CHECK_MSG(bad_trip == 0, "%s: %d of %d round trips fail", rel, bad_trip, records);
    CHECK_MSG(records == 1528, "%s: %d records, expected 1528", rel, records);
    printf("%s: %d records, ids equal llama.cpp's: %d, detok equal: %d (%d cleaned), round trips: %d\n", rel, records,
           records - bad_ids, records - bad_detok, cleaned, records - bad_trip);
    free(buf);
    free(buf2);
    free(data);
    *n_records = records;
    *secs = tsum;
    return bytes;
}

/* Tokenizing speed on one long text (every case text of cases.json, joined). */
static void speed(const hl_tokenizer *t, const char *label) {
    size_t size;
    char *data = read_whole(shared_path(ARCH "tokenizer/cases.json"), &size);
    REQUIRE(data);
    data = realloc(data, size + 1);
    data[size] = 0;
    cJSON *arr = cJSON_Parse(data);
    REQUIRE(cJSON_IsArray(arr));
    size_t cap = 1 << 22, len = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    while (len < 2000000) {
        for (int i = 0; i < cJSON_GetArraySize(arr) && len < 2000000; i++) {
            const char *s = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "text")->valuestring;
            size_t n = strlen(s);
            if (len + n + 1 > cap) break;
            memcpy(text + len, s, n);
            len += n;
            text[len++] = '\n';
        }
    }
    int32_t *ids = NULL;
    size_t n = 0;
    hl_error err = {0};
    double t0 = now_s();
    CHECK_OK(hl_tokenizer_encode_special(t, text, len, 0, 0, 0, &ids, &n, &err), &err);
    double dt = now_s() - t0;
    printf("speed (%s): %.2f MB of text -> %zu ids in %.3f s: %.1f MB/s, %.2f M tokens/s\n", label, len / 1e6, n, dt,
           len / 1e6 / dt, n / 1e6 / dt);
    /* decoding it gives the text back */
    char *back = malloc(len + HL_TOKENIZER_MAX_PIECE);
    REQUIRE(back);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        REQUIRE(w + HL_TOKENIZER_MAX_PIECE <= len + HL_TOKENIZER_MAX_PIECE);
        w += hl_tokenizer_decode(t, -1, ids[i], back + w, len + HL_TOKENIZER_MAX_PIECE - w);
    }
    CHECK_MSG(w == len && memcmp(back, text, len) == 0, "%s: the long text does not round-trip", label);
    free(back);
    hl_free(ids);
    free(text);
    cJSON_Delete(arr);
    free(data);
}

/* Inputs that a quadratic step would stall on: one 1 MB word, 1 MB of
 * spaces, 1 MB of digits, 150k special tokens back to back. Each must
 * round-trip; the times are printed. */
static void adversarial(const hl_tokenizer *t, const char *label) {
    size_t len = 1 << 20;
    char *text = malloc(len + 1), *back = malloc(len + HL_TOKENIZER_MAX_PIECE);
    REQUIRE(text && back);
    const char *fill[4] = {"a", " ", "7", "<think>"};
    for (int k = 0; k < 4; k++) {
        size_t fl = strlen(fill[k]), n_fill = len / fl;
        for (size_t i = 0; i < n_fill; i++) memcpy(text + i * fl, fill[k], fl);
        size_t n_text = n_fill * fl;
        if (k == 1) text[n_text - 1] = 'x';
        int32_t *ids = NULL;
        size_t n = 0;
        hl_error err = {0};
        double t0 = now_s();
        CHECK_OK(hl_tokenizer_encode(t, text, n_text, 0, 0, &ids, &n, &err), &err);
        double dt = now_s() - t0;
        size_t w = decode_all(t, ids, 0, n, 0, back, len + HL_TOKENIZER_MAX_PIECE);
        CHECK_MSG(w == n_text && memcmp(back, text, w) == 0, "%s: adversarial %d does not round-trip", label, k);
        int32_t think = hl_tokenizer_find(t, "<think>", 7);
        if (k == 3 && think >= 0 && hl_tokenizer_type(t, think) == HL_TOKEN_USER_DEFINED)
            CHECK_MSG(n == n_fill, "%s: %zu special tokens give %zu ids", label, n_fill, n);
        printf("adversarial (%s) %zu bytes of \"%s\": %zu ids in %.3f s\n", label, n_text, k == 1 ? "space" : fill[k],
               n, dt);
        hl_free(ids);
    }
    free(text);
    free(back);
}

/* Ids of text, as a space-separated string, for compact expectations. */
static const char *ids_str(const hl_tokenizer *t, const char *text, int ps) {
    static char out[4096];
    int32_t *ids = NULL;
    size_t n = 0;
    hl_error err = {0};
    out[0] = 0;
    if (hl_tokenizer_encode_special(t, text, strlen(text), 0, 0, ps, &ids, &n, &err) != HL_OK) {
        snprintf(out, sizeof out, "error: %s", err.msg);
        return out;
    }
    size_t w = 0;
    for (size_t i = 0; i < n && w + 16 < sizeof out; i++) w += (size_t)snprintf(out + w, sizeof out - w, "%s%d", i ? " " : "", ids[i]);
    hl_free(ids);
    return out;
}

/* The words pre-tokenizer pre cuts text into, joined by '|', must be
 * expect. The vocabulary is the 256 byte pieces plus every prefix of each
 * expected word, with merges that build each word left to right, so every
 * word comes out as one token and the tokens show the word boundaries. */
static void pre_case(hl_bpe_pre pre, const char *text, const char *expect) {
    char words[64][64];
    int nw = 0;
    for (const char *p = expect; *p && nw < 64;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        REQUIRE(n < 64);
        memcpy(words[nw], p, n);
        words[nw][n] = 0;
        nw++;
        p += n + (bar ? 1 : 0);
        if (!bar) break;
    }
    /* mapped form of a byte (GPT-2's table, written out again here) */
    char mapped[256][3];
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) cp = (uint32_t)b;
        else {
            uint32_t k = 0;
            for (int c = 0; c < b; c++)
                if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) k++;
            cp = 0x100 + k;
        }
        if (cp < 0x80) { mapped[b][0] = (char)cp; mapped[b][1] = 0; }
        else { mapped[b][0] = (char)(0xC0 | cp >> 6); mapped[b][1] = (char)(0x80 | (cp & 0x3F)); mapped[b][2] = 0; }
    }
    const char *pieces[256 + 64 * 64];
    static char store[64 * 64][160];
    const char *merges[64 * 64];
    static char mstore[64 * 64][330];
    int np = 0, nm = 0, ns = 0;
    for (int b = 0; b < 256; b++) pieces[np++] = mapped[b];
    for (int w = 0; w < nw; w++) {
        size_t n = strlen(words[w]);
        char acc[160] = "";
        for (size_t k = 0; k < n; k++) {
            const char *m = mapped[(uint8_t)words[w][k]];
            if (k > 0) {
                snprintf(mstore[nm], sizeof mstore[nm], "%s %s", acc, m);
                merges[nm] = mstore[nm];
                nm++;
            }
            strcat(acc, m);
            if (k > 0) {
                snprintf(store[ns], sizeof store[ns], "%s", acc);
                pieces[np++] = store[ns++];
            }
        }
    }
    float *scores = calloc((size_t)np, sizeof *scores);
    int32_t *types = malloc((size_t)np * sizeof *types);
    for (int i = 0; i < np; i++) types[i] = HL_TOKEN_NORMAL;
    /* duplicate pieces are allowed (first id keeps the lookup) */
    hl_tokenizer *t = NULL;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_init(np, pieces, scores, types, 0, 0, 0, &t, &err), &err);
    REQUIRE(t);
    size_t ml[64 * 64];
    for (int i = 0; i < nm; i++) ml[i] = strlen(merges[i]);
    hl_bpe *b = NULL;
    CHECK_OK(hl_bpe_init(t, pre, merges, ml, (size_t)nm, "test merges", &b, &err), &err);
    REQUIRE(b);
    size_t len = strlen(text);
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    size_t n = 0;
    CHECK_OK(hl_bpe_encode(b, t, (const uint8_t *)text, len, 0, 0, ids, &n, &err), &err);
    char got[2048];
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) got[w++] = '|';
        w += hl_bpe_decode(b, t, ids[i], 0, got + w, sizeof got - w - 1);
    }
    got[w] = 0;
    CHECK_MSG(strcmp(got, expect) == 0, "pre %s: \"%s\" splits as \"%s\", expected \"%s\"", hl_bpe_pre_name(pre),
              text, got, expect);
    free(ids);
    hl_bpe_free(b);
    hl_tokenizer_free(t);
    free(scores);
    free(types);
}

static void pre_tokenizers(void) {
    /* gpt-2: case-sensitive contractions, " ?\p{N}+" keeps digit runs whole */
    pre_case(HL_BPE_PRE_GPT2, "I'm 12345 ok'S  x", "I|'m| 12345| ok|'|S| | x");
    pre_case(HL_BPE_PRE_GPT2, "a\n\nb", "a|\n|\n|b"); /* no optional newline before letters */
    /* smollm: every digit alone first, then GPT-2's regex */
    pre_case(HL_BPE_PRE_SMOLLM, "ab 1234x", "ab| |1|2|3|4|x");
    pre_case(HL_BPE_PRE_SMOLLM, "I'll go!!", "I|'ll| go|!!");
    /* default: punctuation runs, GPT-2, digit runs, groups of three ASCII digits */
    pre_case(HL_BPE_PRE_DEFAULT, "x 1234567, y", "x| |123|456|7|,| y");
    pre_case(HL_BPE_PRE_DEFAULT, "a+=b", "a|+=|b");
    /* llama3 / qwen2 on the same words */
    pre_case(HL_BPE_PRE_LLAMA3, "I'LL 12345\r\n\n  z", "I|'LL| |123|45|\r\n\n| | z");
    pre_case(HL_BPE_PRE_QWEN2, "x 123", "x| |1|2|3");
}

/* Hyperlexemes on a byte-level vocabulary: atomic before pre-tokenization. */
static void lexemes(const hl_tokenizer *t) {
    const char *atomic[2] = {"Δ21", "вспышкавходстрах"};
    hl_tokenizer *x = NULL;
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_extend(t, atomic, 2, &x, &err), &err);
    REQUIRE(x);
    int32_t base = hl_tokenizer_n_vocab(t);
    const char *text = "see Δ21 andвспышкавходстрах.";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(hl_tokenizer_encode(x, text, strlen(text), 0, 0, &a, &na, &err), &err);
    int found0 = 0, found1 = 0;
    for (size_t i = 0; i < na; i++) found0 += a[i] == base, found1 += a[i] == base + 1;
    CHECK_MSG(found0 == 1 && found1 == 1, "lexemes: each atomic piece is one token");
    /* the runs between them encode as the base encodes them alone */
    CHECK_OK(hl_tokenizer_encode(t, "see ", 4, 0, 0, &b, &nb, &err), &err);
    CHECK(na >= nb && memcmp(a, b, nb * sizeof *a) == 0);
    char buf[4096];
    size_t w = decode_all(x, a, 0, na, 0, buf, sizeof buf);
    CHECK_MSG(w == strlen(text) && memcmp(buf, text, w) == 0, "lexemes: round trip");
    /* text without lexemes encodes exactly as with the base */
    hl_free(a);
    hl_free(b);
    const char *plain = "Hello, world! 12345 <think>";
    CHECK_OK(hl_tokenizer_encode(x, plain, strlen(plain), 0, 0, &a, &na, &err), &err);
    CHECK_OK(hl_tokenizer_encode(t, plain, strlen(plain), 0, 0, &b, &nb, &err), &err);
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    hl_free(a);
    hl_free(b);
    hl_tokenizer_free(x);
}

/* to_gguf then from_gguf gives the same tokenizer and the same ids. */
static void round_trip_gguf(const hl_tokenizer *t) {
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    hl_error err = {0};
    CHECK_OK(hl_tokenizer_to_gguf(t, w, &err), &err);
    uint8_t *mem = NULL;
    size_t size = 0;
    CHECK_OK(hl_gguf_writer_write_memory(w, &mem, &size, &err), &err);
    hl_gguf *g = NULL;
    CHECK_OK(hl_gguf_open_memory(mem, size, "roundtrip", &g, &err), &err);
    REQUIRE(g);
    hl_tokenizer *u = NULL;
    CHECK_OK(hl_tokenizer_from_gguf(g, &u, &err), &err);
    REQUIRE(u);
    CHECK(hl_tokenizer_n_vocab(u) == hl_tokenizer_n_vocab(t));
    CHECK(hl_tokenizer_add_bos(u) == hl_tokenizer_add_bos(t) && hl_tokenizer_bos(u) == hl_tokenizer_bos(t));
    CHECK(strcmp(hl_tokenizer_pre_name(u), hl_tokenizer_pre_name(t)) == 0);
    const char *text = "It's 2024: ünïcödé, 你好, <|im_start|> 12345!";
    char a[4096];
    snprintf(a, sizeof a, "%s", ids_str(t, text, 1));
    CHECK_MSG(strcmp(a, ids_str(u, text, 1)) == 0, "round trip: ids differ");
    hl_tokenizer_free(u);
    hl_gguf_free(g);
    free(mem);
    hl_gguf_writer_free(w);
}

/* A copy of the file's key/values with one changed, loaded as a tokenizer. */
static hl_status load_with(const hl_gguf *g, const char *key, const char *value, hl_error *err) {
    hl_gguf_writer *w = gguf_edited_copy(g, key, value, 0);
    uint8_t *mem = NULL;
    size_t size = 0;
    REQUIRE(hl_gguf_writer_write_memory(w, &mem, &size, err) == HL_OK);
    hl_gguf *h = NULL;
    REQUIRE(hl_gguf_open_memory(mem, size, "edited.gguf", &h, err) == HL_OK);
    hl_tokenizer *t = NULL;
    hl_status s = hl_tokenizer_from_gguf(h, &t, err);
    hl_tokenizer_free(t);
    hl_gguf_free(h);
    free(mem);
    hl_gguf_writer_free(w);
    return s;
}

static void refusals(const hl_gguf *g, const hl_tokenizer *t) {
    hl_error err = {0};
    CHECK(load_with(g, "tokenizer.ggml.pre", "falcon", &err) == HL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "\"falcon\"") && strstr(err.msg, "qwen2") && strstr(err.msg, "smollm"),
              "pre refusal names the value and the list: %s", err.msg);
    CHECK(load_with(g, "tokenizer.ggml.model", "bert", &err) == HL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "\"bert\"") && strstr(err.msg, "gpt2") && strstr(err.msg, "llama"),
              "model refusal names the value and the list: %s", err.msg);
    CHECK(load_with(g, "tokenizer.ggml.merges", NULL, &err) == HL_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "tokenizer.ggml.merges"), "missing merges named: %s", err.msg);
    /* missing pre: llama.cpp's default pre-tokenizer */
    CHECK(load_with(g, "tokenizer.ggml.pre", NULL, &err) == HL_OK);
    /* invalid UTF-8: refused with the offset */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(hl_tokenizer_encode(t, "ab\xC3(x", 5, 0, 0, &ids, &n, &err) == HL_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "offset 2"), "offset named: %s", err.msg);
}

/* The end-of-generation set equals the one llama.cpp prints at load (load_logs/). */
static void eog_set(const hl_tokenizer *t, const char *log_rel) {
    size_t size;
    char *log = read_whole(shared_path(log_rel), &size);
    REQUIRE(log);
    log = realloc(log, size + 1);
    log[size] = 0;
    int want[32], nw = 0;
    const char *p = strstr(log, "printing all EOG tokens:");
    REQUIRE(p);
    for (p = strchr(p, '\n'); p && nw < 32; p = strchr(p + 1, '\n')) {
        int id;
        if (sscanf(p + 1, "load:   - %d (", &id) != 1) break;
        want[nw++] = id;
    }
    int got = 0, missing = 0;
    for (int32_t id = 0; id < hl_tokenizer_n_vocab(t); id++) {
        if (!hl_tokenizer_is_eog(t, id)) continue;
        got++;
        int in = 0;
        for (int k = 0; k < nw; k++) in |= want[k] == id;
        CHECK_MSG(in, "%s: id %d is end-of-generation here but not in llama.cpp's set", log_rel, id);
    }
    for (int k = 0; k < nw; k++) missing += !hl_tokenizer_is_eog(t, want[k]);
    CHECK_MSG(nw >= 2 && got == nw && missing == 0, "%s: %d EOG ids here, %d in llama.cpp's set", log_rel, got, nw);
    printf("%s: end-of-generation set of %d ids equals llama.cpp's\n", log_rel, got);
    free(log);
}

int main(void) {
    pre_tokenizers();
    hl_gguf *g = NULL;
    hl_tokenizer *l3 = load_tok(ARCH "llama3_tiny.gguf", &g);
    hl_tokenizer *qw = load_tok(ARCH "qwen3_tiny.gguf", NULL);
    CHECK(hl_tokenizer_add_bos(l3) == 1 && hl_tokenizer_add_bos(qw) == 0);
    CHECK(hl_tokenizer_type(qw, 128247) == HL_TOKEN_CONTROL); /* "</s>", as llama.cpp types it */
    eog_set(l3, ARCH "load_logs/llama3_tiny.txt");
    eog_set(qw, ARCH "load_logs/qwen3_tiny.txt");
    int nr;
    double secs;
    size_t bytes = oracle_file(l3, ARCH "tokenizer/llama3_llama-bpe.jsonl", &nr, &secs);
    printf("llama3 cases: %d in %.4f s (%.1f MB/s)\n", nr, secs, bytes / 1e6 / secs);
    bytes = oracle_file(qw, ARCH "tokenizer/qwen_qwen2.jsonl", &nr, &secs);
    printf("qwen cases: %d in %.4f s (%.1f MB/s)\n", nr, secs, bytes / 1e6 / secs);
    /* spot checks from the arch README */
    CHECK(strcmp(ids_str(qw, "<think>", 0), "151667") == 0);
    CHECK(strcmp(ids_str(qw, "<|im_start|>", 1), "151644") == 0);
    CHECK(strcmp(ids_str(qw, "<|im_start|>", 0), "151644") != 0);
    speed(l3, "llama-bpe");
    speed(qw, "qwen2");
    adversarial(qw, "qwen2");
    adversarial(l3, "llama-bpe");
    lexemes(qw);
    lexemes(l3);
    round_trip_gguf(qw);
    refusals(g, l3);
    hl_tokenizer_free(l3);
    hl_tokenizer_free(qw);
    hl_gguf_free(g);
    return hl_test_finish("test_tokenizer_bpe");
}
