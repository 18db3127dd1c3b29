/* test_bpe_train.c: the BPE trainer on a small English/Russian corpus:
 * vocabulary layout, the encoder reproducing a plain "apply the merges in
 * order" BPE on the corpus and on random text, round trips, determinism
 * (GGUF bytes), Cyrillic compression, parameters, refused inputs, and
 * allocation failures. */
#include "test_util.h"
#include "io/gguf.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <stdint.h>

static const char corpus[] =
    "The river starts in the hills above the old town, where the snow melts slowly in the spring. "
    "Every morning the fishermen walk down to the water with their nets and their long wooden boats. "
    "They talk about the weather, about the price of bread, and about the children who left for the city.\n"
    "In the evening the town is quiet. The bakers close their shops, the lights go on in the windows, "
    "and the smell of smoke and fresh bread fills the narrow streets. An old man sits on the bench near "
    "the bridge and watches the river; he has watched it for seventy years and he says it never looks the same.\n"
    "Learning a language is like walking along that river. At first every word is strange and every sentence "
    "is a small mountain. Then, one day, the words begin to flow, and you notice that you are no longer "
    "translating in your head. You are simply thinking, reading and listening, and the language has become "
    "a part of you.\n"
    "A tokenizer splits text into pieces. Frequent words become single pieces, rare words are built from "
    "smaller parts, and unknown characters fall back to bytes, so that nothing is ever lost. "
    "The training counts pairs of symbols, merges the most frequent pair, and repeats the process until "
    "the vocabulary is full.\n"
    "Numbers such as 1984, 2024 and 3.14159 appear in the text too, together with punctuation: commas, "
    "colons, semicolons; question marks? exclamation marks! and quotes \"like these\".\n"
    "Река начинается в холмах над старым городом, где весной медленно тает снег. Каждое утро рыбаки "
    "спускаются к воде со своими сетями и длинными деревянными лодками. Они говорят о погоде, о цене "
    "хлеба и о детях, которые уехали в город.\n"
    "Вечером в городе тихо. Пекари закрывают свои лавки, в окнах зажигается свет, и запах дыма и свежего "
    "хлеба наполняет узкие улицы. Старик сидит на скамейке у моста и смотрит на реку; он смотрит на неё "
    "уже семьдесят лет и говорит, что она никогда не бывает одинаковой.\n"
    "Изучать язык — это как идти вдоль этой реки. Сначала каждое слово кажется странным, а каждое "
    "предложение похоже на маленькую гору. Потом, в один прекрасный день, слова начинают течь, и ты "
    "замечаешь, что больше не переводишь в голове. Ты просто думаешь, читаешь и слушаешь, и язык "
    "становится частью тебя.\n"
    "Токенизатор делит текст на части. Частые слова становятся отдельными частями, редкие слова "
    "собираются из более мелких частей, а неизвестные символы превращаются в байты, чтобы ничего не "
    "потерялось. Обучение считает пары символов, объединяет самую частую пару и повторяет это, пока "
    "словарь не заполнится.\n"
    "В тексте встречаются и числа, например 1984, 2024 и 3.14159, и знаки препинания: запятые, "
    "двоеточия, точки с запятой; вопросительные знаки? восклицательные знаки! и кавычки «вот такие».\n"
    "Зимой река замерзает, и дети катаются на коньках, а старики ловят рыбу через лунки во льду. "
    "Летом на берегу растут высокие травы, и по вечерам поют птицы. Осенью листья падают в воду и "
    "медленно плывут вниз по течению, к морю, которого никто из жителей города никогда не видел.\n"
    "The library in the old town has three floors. On the first floor there are newspapers and maps, "
    "on the second floor there are novels and poems, and on the third floor, under the roof, there are "
    "old books that nobody has opened for a hundred years. The librarian knows every one of them and can "
    "tell you where each book came from, who wrote it, and why it was forgotten.\n"
    "Библиотека в старом городе занимает три этажа. На первом этаже лежат газеты и карты, на втором "
    "стоят романы и стихи, а на третьем, под самой крышей, хранятся старые книги, которые никто не "
    "открывал сто лет. Библиотекарь знает каждую из них и может рассказать, откуда пришла каждая книга, "
    "кто её написал и почему о ней забыли.\n"
    "Однажды в библиотеку пришла девочка и спросила, есть ли здесь книга о реке. Библиотекарь долго "
    "думал, потом поднялся на третий этаж и вернулся с тонкой книгой в синей обложке. В ней были "
    "рисунки реки, холмов и города, сделанные много лет назад, и девочка узнала на одном из них мост, "
    "возле которого сидит старик.\n"
    "One day a girl came to the library and asked whether there was a book about the river. The librarian "
    "thought for a long time, then climbed to the third floor and came back with a thin book in a blue "
    "cover. It held drawings of the river, the hills and the town, made many years ago, and the girl "
    "recognised in one of them the bridge where the old man sits.\n"
    "In winter the river freezes, the children skate on the ice, and the old men fish through holes "
    "in it. In summer tall grass grows on the banks and birds sing in the evenings. In autumn the leaves "
    "fall into the water and drift slowly downstream, towards the sea that nobody in the town has ever seen.\n";

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(uint32_t n) { /* xorshift64*, deterministic */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static size_t u8len(uint8_t c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* ------------------------------------------------ reference BPE apply */

/* The classic algorithm, written independently of the encoder: initial
 * symbols (dummy prefix, "▁" for spaces, single-code-point pieces, else
 * bytes), cut into pre-tokens before every "▁" and around line breaks and
 * bytes, then in each pre-token merge the adjacent pair with the lowest
 * merge rank (leftmost first) until none is a rule. */
typedef struct ref_bpe {
    const hl_tokenizer *t;
    int32_t first, n_merges, V, space;
    int32_t *rank; /* V*V, -1 = no rule */
} ref_bpe;

static void ref_init(ref_bpe *r, const hl_tokenizer *t, const int32_t *merges, int32_t n_merges) {
    r->t = t;
    r->V = hl_tokenizer_n_vocab(t);
    r->n_merges = n_merges;
    r->first = r->V - n_merges;
    r->space = hl_tokenizer_find(t, "\xe2\x96\x81", 3);
    r->rank = malloc((size_t)r->V * r->V * sizeof *r->rank);
    REQUIRE(r->rank);
    memset(r->rank, 0xff, (size_t)r->V * r->V * sizeof *r->rank);
    for (int32_t k = 0; k < n_merges; k++) r->rank[merges[2 * k] * r->V + merges[2 * k + 1]] = k;
}

static int is_cut(const ref_bpe *r, int32_t id) {
    if (hl_tokenizer_type(r->t, id) == HL_TOKEN_BYTE) return 1;
    const char *p = hl_tokenizer_piece(r->t, id);
    return !strcmp(p, "\n") || !strcmp(p, "\r");
}

/* Returns malloc'd ids of text (no BOS/EOS). */
static int32_t *ref_encode(const ref_bpe *r, const char *text, size_t len, size_t *n_out) {
    int32_t *sym = malloc((len + 2) * sizeof *sym), *out = malloc((len + 2) * sizeof *out);
    REQUIRE(sym && out);
    size_t n = 0, m = 0;
    if (len) sym[n++] = r->space;
    for (size_t i = 0; i < len;) {
        size_t k = u8len((uint8_t)text[i]);
        int32_t id = -1;
        if (text[i] == ' ') id = r->space;
        else if (!(k == 3 && memcmp(text + i, "\xe2\x96\x81", 3) == 0)) id = hl_tokenizer_find(r->t, text + i, k);
        if (id >= 0 && hl_tokenizer_type(r->t, id) == HL_TOKEN_NORMAL) {
            sym[n++] = id;
        } else {
            for (size_t j = 0; j < k; j++) {
                char b[8];
                snprintf(b, sizeof b, "<0x%02X>", (uint8_t)text[i + j]);
                sym[n++] = hl_tokenizer_find(r->t, b, 6);
            }
        }
        i += k;
    }
    for (size_t s = 0; s < n;) {
        size_t e = s + 1; /* pre-token [s, e) */
        if (!is_cut(r, sym[s]))
            while (e < n && sym[e] != r->space && !is_cut(r, sym[e])) e++;
        size_t w = e - s;
        int32_t *p = sym + s;
        for (;;) {
            int32_t best = INT32_MAX;
            size_t at = 0;
            for (size_t i = 0; i + 1 < w; i++) {
                int32_t k = r->rank[p[i] * r->V + p[i + 1]];
                if (k >= 0 && k < best) best = k, at = i;
            }
            if (best == INT32_MAX) break;
            p[at] = r->first + best;
            memmove(p + at + 1, p + at + 2, (w - at - 2) * sizeof *p);
            w--;
        }
        memcpy(out + m, p, w * sizeof *p);
        m += w;
        s = e;
    }
    free(sym);
    *n_out = m;
    return out;
}

/* Encoder == reference, and decode(encode(text)) == text. Returns 1 when both hold. */
static int check_string(const ref_bpe *r, const char *text, size_t len) {
    hl_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0, nr = 0;
    hl_status s = hl_tokenizer_encode(r->t, text, len, 1, 0, &ids, &n, &err);
    CHECK_MSG(s == HL_OK, "encode: %s", err.msg);
    if (s != HL_OK) return 0;
    int32_t *ref = ref_encode(r, text, len, &nr);
    int same = nr == n - 1 && memcmp(ref, ids + 1, nr * sizeof *ref) == 0;
    if (!same) {
        fprintf(stderr, "encoder vs merges-in-order differ on \"%.*s\":\n  encoder:", (int)len, text);
        for (size_t i = 1; i < n; i++) fprintf(stderr, " [%s]", hl_tokenizer_piece(r->t, ids[i]));
        fprintf(stderr, "\n  merges: ");
        for (size_t i = 0; i < nr; i++) fprintf(stderr, " [%s]", hl_tokenizer_piece(r->t, ref[i]));
        fprintf(stderr, "\n");
    }
    char *dec = malloc(len * 4 + 16);
    size_t dl = 0;
    for (size_t i = 1; i < n; i++) dl += hl_tokenizer_decode(r->t, ids[i - 1], ids[i], dec + dl, len * 4 + 16 - dl);
    int round = dl == len && memcmp(dec, text, len) == 0;
    CHECK_MSG(round, "round trip of \"%.*s\" gave \"%.*s\"", (int)len, text, (int)dl, dec);
    free(dec);
    free(ref);
    hl_free(ids);
    return same && round;
}

/* Corpus lines, 500 random strings over the corpus alphabet and 500 mutated
 * corpus fragments. Returns the number of disagreements. */
static int check_reproduces(const hl_tokenizer *t, const int32_t *merges, int32_t n_merges, const char *text,
                            size_t len) {
    ref_bpe r;
    ref_init(&r, t, merges, n_merges);
    int bad = 0;
    bad += !check_string(&r, text, len);
    for (const char *p = text, *e = text + len; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(e - p);
        bad += !check_string(&r, p, l);
        p += l + 1;
    }
    /* the alphabet: every code point of the text, as offsets */
    size_t *cps = malloc(len * sizeof *cps), n_cp = 0;
    for (size_t i = 0; i < len; i += u8len((uint8_t)text[i])) cps[n_cp++] = i;
    char buf[512];
    for (int k = 0; k < 500; k++) {
        size_t bl = 0, want = 1 + rnd(80);
        for (size_t c = 0; c < want; c++) {
            size_t o = cps[rnd((uint32_t)n_cp)], cl = u8len((uint8_t)text[o]);
            memcpy(buf + bl, text + o, cl);
            bl += cl;
        }
        bad += !check_string(&r, buf, bl);
    }
    for (int k = 0; k < 500; k++) { /* real words, cut anywhere and stitched with random characters */
        size_t bl = 0;
        for (int part = 0, parts = 1 + (int)rnd(4); part < parts; part++) {
            size_t a = rnd((uint32_t)n_cp), b = a + 1 + rnd(40);
            if (b > n_cp) b = n_cp;
            size_t from = cps[a], to = b < n_cp ? cps[b] : len;
            memcpy(buf + bl, text + from, to - from);
            bl += to - from;
            size_t o = cps[rnd((uint32_t)n_cp)], cl = u8len((uint8_t)text[o]);
            memcpy(buf + bl, text + o, cl);
            bl += cl;
        }
        bad += !check_string(&r, buf, bl);
    }
    free(cps);
    free(r.rank);
    return bad;
}

/* ------------------------------------------------------------ helpers */

static uint8_t *gguf_bytes(const hl_tokenizer *t, size_t *n) {
    hl_error err = {0};
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    uint8_t *buf = NULL;
    CHECK_OK(hl_tokenizer_to_gguf(t, w, &err), &err);
    CHECK_OK(hl_gguf_writer_write_memory(w, &buf, n, &err), &err);
    hl_gguf_writer_free(w);
    return buf;
}

static int is_cyrillic(uint32_t cp) { return cp >= 0x400 && cp <= 0x4FF; }

/* Tokens that overlap a Cyrillic letter, per Cyrillic letter, over the lines of text. */
static double cyrillic_tokens_per_letter(const hl_tokenizer *t, const char *text, size_t len) {
    size_t letters = 0, toks = 0;
    for (const char *p = text, *e = text + len; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(e - p);
        uint8_t *cyr = calloc(l + 1, 1); /* byte i belongs to a Cyrillic letter */
        for (size_t i = 0; i < l;) {
            uint8_t c = (uint8_t)p[i];
            size_t k = u8len(c);
            if (k == 2 && is_cyrillic((uint32_t)(c & 0x1F) << 6 | ((uint8_t)p[i + 1] & 0x3F))) {
                cyr[i] = cyr[i + 1] = 1;
                letters++;
            }
            i += k;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        hl_error err = {0};
        CHECK_OK(hl_tokenizer_encode(t, p, l, 1, 0, &ids, &n, &err), &err);
        char piece[HL_TOKENIZER_MAX_PIECE];
        size_t at = 0;
        for (size_t i = 1; i < n; i++) {
            size_t d = hl_tokenizer_decode(t, ids[i - 1], ids[i], piece, sizeof piece), hit = 0;
            for (size_t j = at; j < at + d && j < l; j++) hit |= cyr[j];
            toks += hit;
            at += d;
        }
        hl_free(ids);
        free(cyr);
        p += l + 1;
    }
    return letters ? (double)toks / (double)letters : 0.0;
}

static int count_calls(void *user, int32_t done, int32_t max) {
    int *calls = user;
    ++*calls;
    return done >= 10; /* stop after ten merges */
}

/* ---------------------------------------------------------------- tests */

static void test_layout_and_reproduction(void) {
    hl_error err = {0};
    hl_tokenizer *t = NULL;
    int32_t *merges = NULL, n_merges = 0;
    size_t len = strlen(corpus);
    CHECK_OK(hl_tokenizer_train_bpe_merges(corpus, len, 600, NULL, &t, &merges, &n_merges, &err), &err);
    REQUIRE(t);
    int32_t V = hl_tokenizer_n_vocab(t), first = V - n_merges;
    printf("corpus %zu bytes: vocab %d, %d characters, %d merges\n", len, V, first - HL_BPE_FIRST_CHAR_ID,
           n_merges);
    CHECK(V == 600); /* the corpus has pairs enough */
    CHECK(!strcmp(hl_tokenizer_piece(t, 0), "<unk>") && hl_tokenizer_type(t, 0) == HL_TOKEN_UNKNOWN);
    CHECK(!strcmp(hl_tokenizer_piece(t, 1), "<s>") && hl_tokenizer_type(t, 1) == HL_TOKEN_CONTROL);
    CHECK(!strcmp(hl_tokenizer_piece(t, 2), "</s>") && hl_tokenizer_type(t, 2) == HL_TOKEN_CONTROL);
    CHECK(hl_tokenizer_bos(t) == 1 && hl_tokenizer_eos(t) == 2 && hl_tokenizer_unk(t) == 0);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        CHECK(!strcmp(hl_tokenizer_piece(t, 3 + b), want) && hl_tokenizer_type(t, 3 + b) == HL_TOKEN_BYTE);
    }
    CHECK(!strcmp(hl_tokenizer_piece(t, HL_BPE_FIRST_CHAR_ID), "\xe2\x96\x81"));
    int layout_ok = 1;
    for (int32_t i = HL_BPE_FIRST_CHAR_ID; i < V; i++) {
        const char *p = hl_tokenizer_piece(t, i);
        size_t pl = strlen(p);
        layout_ok &= hl_tokenizer_type(t, i) == HL_TOKEN_NORMAL;
        layout_ok &= hl_tokenizer_find(t, p, pl) == i; /* no two pieces are equal */
        if (i < first) {
            layout_ok &= pl == u8len((uint8_t)p[0]) && hl_tokenizer_score(t, i) == -1e6f;
        } else {
            int32_t k = i - first, a = merges[2 * k], b = merges[2 * k + 1];
            layout_ok &= hl_tokenizer_score(t, i) == (float)-k;
            layout_ok &= a >= HL_BPE_FIRST_CHAR_ID && a < i && b >= HL_BPE_FIRST_CHAR_ID && b < i;
            const char *pa = hl_tokenizer_piece(t, a), *pb = hl_tokenizer_piece(t, b);
            layout_ok &= pl == strlen(pa) + strlen(pb) && !memcmp(p, pa, strlen(pa)) && !strcmp(p + strlen(pa), pb);
            layout_ok &= pl <= 16;
            /* "▁" only leads a piece; no line break inside one */
            layout_ok &= !strstr(p + 1, "\xe2\x96\x81") && !strchr(p, '\n');
        }
    }
    CHECK(layout_ok);
    for (int32_t i = first; i < V && i < first + 12; i++) printf("[%s] ", hl_tokenizer_piece(t, i));
    printf("...\n");

    int bad = check_reproduces(t, merges, n_merges, corpus, len);
    CHECK_MSG(bad == 0, "%d strings where the encoder and the merges disagree", bad);

    double cyr = cyrillic_tokens_per_letter(t, corpus, len);
    printf("Cyrillic: %.3f tokens per letter\n", cyr);
    CHECK(cyr > 0.0 && cyr < 1.2);

    /* Determinism: the same GGUF bytes and merges twice. */
    hl_tokenizer *t2 = NULL;
    int32_t *merges2 = NULL, n2 = 0;
    CHECK_OK(hl_tokenizer_train_bpe_merges(corpus, len, 600, NULL, &t2, &merges2, &n2, &err), &err);
    size_t na = 0, nb = 0;
    uint8_t *ga = gguf_bytes(t, &na), *gb = t2 ? gguf_bytes(t2, &nb) : NULL;
    CHECK(ga && gb && na == nb && memcmp(ga, gb, na) == 0);
    CHECK(n2 == n_merges && merges2 && memcmp(merges, merges2, 2 * (size_t)n_merges * sizeof *merges) == 0);
    hl_free(ga);
    hl_free(gb);
    hl_free(merges2);
    hl_tokenizer_free(t2);

    /* The plain entry point builds the same tokenizer. */
    hl_tokenizer *t3 = NULL;
    CHECK_OK(hl_tokenizer_train_bpe(corpus, len, 600, NULL, &t3, &err), &err);
    uint8_t *gc = t3 ? gguf_bytes(t3, &nb) : NULL;
    ga = gguf_bytes(t, &na);
    CHECK(gc && na == nb && memcmp(ga, gc, na) == 0);
    hl_free(ga);
    hl_free(gc);
    hl_tokenizer_free(t3);

    hl_free(merges);
    hl_tokenizer_free(t);
}

/* Other parameters keep the property: coverage that leaves characters to
 * bytes, the whole-text dummy prefix, short pieces, more merges. */
static void test_params(void) {
    size_t len = strlen(corpus);
    struct { double cov; int line; int32_t max_bytes; int64_t min_freq; int32_t vocab; } cases[] = {
        {0.99, 1, 16, 2, 600}, {1.0, 0, 16, 2, 600}, {0.9999, 1, 4, 2, 500}, {1.0, 1, 64, 1, 1500},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hl_bpe_train_params p;
        hl_bpe_train_params_default(&p);
        p.character_coverage = cases[c].cov;
        p.line_dummy_prefix = cases[c].line;
        p.max_piece_bytes = cases[c].max_bytes;
        p.min_frequency = cases[c].min_freq;
        hl_error err = {0};
        hl_tokenizer *t = NULL;
        int32_t *merges = NULL, n_merges = 0;
        CHECK_OK(hl_tokenizer_train_bpe_merges(corpus, len, cases[c].vocab, &p, &t, &merges, &n_merges, &err), &err);
        if (!t) continue;
        int32_t V = hl_tokenizer_n_vocab(t), longest = 0;
        for (int32_t i = V - n_merges; i < V; i++) {
            int32_t pl = (int32_t)strlen(hl_tokenizer_piece(t, i));
            if (pl > longest) longest = pl;
        }
        CHECK(longest <= cases[c].max_bytes);
        CHECK(V <= cases[c].vocab);
        int bad = check_reproduces(t, merges, n_merges, corpus, len);
        CHECK_MSG(bad == 0, "case %zu: %d disagreements", c, bad);
        printf("case %zu: vocab %d, %d chars, %d merges, longest piece %d bytes\n", c, V,
               V - n_merges - HL_BPE_FIRST_CHAR_ID, n_merges, longest);
        if (c == 0) { /* 0.99 leaves the rarest characters (e.g. the digit 9, '!') to byte fallback */
            CHECK(V - n_merges - HL_BPE_FIRST_CHAR_ID < 120);
            CHECK(hl_tokenizer_find(t, "\xc2\xab", 2) < 0); /* '«' occurs once */
        }
        hl_free(merges);
        hl_tokenizer_free(t);
    }

    /* Pieces that spell special or byte pieces, a literal U+2581, NUL, CR. */
    char odd[4096];
    size_t ol = 0;
    for (int k = 0; k < 40; k++) {
        static const char chunk[] = "<s> </s> <unk> <0x41> \xe2\x96\x81x\xe2\x96\x81 a\r\nb \n<s>\n<0x41>\n";
        memcpy(odd + ol, chunk, sizeof chunk - 1);
        ol += sizeof chunk - 1;
    }
    odd[ol++] = 0; /* a NUL byte inside the text */
    memcpy(odd + ol, "tail", 4);
    ol += 4;
    hl_bpe_train_params p;
    hl_bpe_train_params_default(&p);
    p.character_coverage = 1.0;
    p.line_dummy_prefix = 0; /* so that "<s>" after a newline is a word of its own, "<s" + ">" a candidate */
    hl_error err = {0};
    hl_tokenizer *t = NULL;
    int32_t *merges = NULL, n_merges = 0;
    CHECK_OK(hl_tokenizer_train_bpe_merges(odd, ol, 400, &p, &t, &merges, &n_merges, &err), &err);
    if (t) {
        int32_t V = hl_tokenizer_n_vocab(t);
        int unique = 1;
        for (int32_t i = 0; i < V; i++) {
            const char *pc = hl_tokenizer_piece(t, i);
            unique &= hl_tokenizer_find(t, pc, strlen(pc)) == i;
        }
        CHECK(unique);
        /* "s>" and "0x41>" are merged, and "<" + them would be the top pair, but they spell <s> and <0x41> */
        CHECK(hl_tokenizer_find(t, "s>", 2) >= HL_BPE_FIRST_CHAR_ID);
        CHECK(hl_tokenizer_find(t, "0x41>", 5) >= HL_BPE_FIRST_CHAR_ID);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(hl_tokenizer_encode(t, "\n<s>\n<0x41>", 11, 0, 0, &ids, &n, &err), &err);
        int normal = n == 7; /* ▁ \n < s> \n < 0x41> */
        for (size_t i = 0; i < n; i++) normal &= hl_tokenizer_type(t, ids[i]) == HL_TOKEN_NORMAL;
        CHECK(normal);
        hl_free(ids);
        CHECK(check_reproduces(t, merges, n_merges, odd, ol) == 0);
        hl_free(merges);
        hl_tokenizer_free(t);
    }

    /* The progress callback sees every merge and can stop training. */
    int calls = 0;
    p.progress = count_calls;
    p.progress_user = &calls;
    t = NULL;
    hl_status s = hl_tokenizer_train_bpe(corpus, len, 600, &p, &t, &err);
    CHECK(s == HL_ERR_INTERRUPTED && t == NULL && calls == 10);
    CHECK(strstr(err.msg, "progress") != NULL);
}

static void test_errors(void) {
    hl_error err = {0};
    hl_tokenizer *t = NULL;
    size_t len = strlen(corpus);
    hl_status s = hl_tokenizer_train_bpe("", 0, 600, NULL, &t, &err);
    CHECK(s == HL_ERR_INVALID_ARG && t == NULL && strstr(err.msg, "empty"));
    s = hl_tokenizer_train_bpe(NULL, 0, 600, NULL, &t, &err);
    CHECK(s == HL_ERR_INVALID_ARG && strstr(err.msg, "empty"));

    s = hl_tokenizer_train_bpe(corpus, len, 300, NULL, &t, &err);
    CHECK(s == HL_ERR_INVALID_ARG && t == NULL && strstr(err.msg, "too small"));
    printf("vocab too small: %s\n", err.msg);
    s = hl_tokenizer_train_bpe(corpus, len, -5, NULL, &t, &err);
    CHECK(s == HL_ERR_INVALID_ARG && strstr(err.msg, "too small"));
    /* exactly the fixed pieces: no merges, still a working tokenizer */
    hl_tokenizer *t0 = NULL;
    CHECK_OK(hl_tokenizer_train_bpe("abc abd", 7, 259 + 5, NULL, &t0, &err), &err);
    CHECK(t0 && hl_tokenizer_n_vocab(t0) == 264);
    hl_tokenizer_free(t0);
    s = hl_tokenizer_train_bpe("abc abd", 7, 259 + 4, NULL, &t, &err);
    CHECK(s == HL_ERR_INVALID_ARG && strstr(err.msg, "at least 264"));

    static const char *const bad_utf8[] = {"abc \xff def", "ab\xc3", "x\xc0\xafy", "\xed\xa0\x80", "ok \xf4\x90\x80\x80"};
    static const size_t bad_at[] = {4, 2, 1, 0, 3};
    for (size_t k = 0; k < sizeof bad_utf8 / sizeof bad_utf8[0]; k++) {
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad_at[k]);
        s = hl_tokenizer_train_bpe(bad_utf8[k], strlen(bad_utf8[k]), 600, NULL, &t, &err);
        CHECK_MSG(s == HL_ERR_INVALID_ARG && t == NULL && strstr(err.msg, want), "case %zu: %s", k, err.msg);
    }
    printf("invalid UTF-8: %s\n", err.msg);

    hl_bpe_train_params p;
    hl_bpe_train_params_default(&p);
    p.character_coverage = 0.0;
    CHECK(hl_tokenizer_train_bpe(corpus, len, 600, &p, &t, &err) == HL_ERR_INVALID_ARG);
    hl_bpe_train_params_default(&p);
    p.min_frequency = 0;
    CHECK(hl_tokenizer_train_bpe(corpus, len, 600, &p, &t, &err) == HL_ERR_INVALID_ARG);
    hl_bpe_train_params_default(&p);
    p.max_piece_bytes = 2000;
    CHECK(hl_tokenizer_train_bpe(corpus, len, 600, &p, &t, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_tokenizer_train_bpe(corpus, len, 600, NULL, NULL, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_tokenizer_train_bpe(corpus, len, HL_TOKENIZER_MAX_VOCAB + 1, NULL, &t, &err) == HL_ERR_LIMIT);

    /* A vocab_size above what the text gives yields a smaller vocabulary. */
    CHECK_OK(hl_tokenizer_train_bpe("abc abc abc", 11, 100000, NULL, &t, &err), &err);
    CHECK(t && hl_tokenizer_n_vocab(t) < 280);
    hl_tokenizer_free(t);
}

/* Every allocation failure is HL_ERR_NOMEM, with nothing returned or leaked. */
static void test_oom(void) {
    static const char text[] = "the cat sat on the mat, the cat ate the rat.\nкот сидит на коврике, кот ест.\n";
    hl_error err = {0};
    int saw_ok = 0, k;
    for (k = 0; k < 5000 && !saw_ok; k++) {
        hl_tokenizer *t = NULL;
        int32_t *m = NULL, nm = 0;
        hl_alloc_fail_after(k);
        hl_status s = hl_tokenizer_train_bpe_merges(text, sizeof text - 1, 320, NULL, &t, &m, &nm, &err);
        hl_alloc_fail_after(-1);
        CHECK_MSG(s == HL_OK || (s == HL_ERR_NOMEM && t == NULL && m == NULL), "fail_after %d: %s", k,
                  hl_status_name(s));
        saw_ok = s == HL_OK;
        hl_free(m);
        hl_tokenizer_free(t);
    }
    CHECK(saw_ok);
    printf("allocation failures: %d points checked\n", k);
}

int main(void) {
    test_layout_and_reproduction();
    test_params();
    test_errors();
    test_oom();
    return hl_test_finish("test_bpe_train");
}
