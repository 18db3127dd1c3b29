/* test_word_rows.c: composed output-adapter rows for words declared after
 * training (hyperlexeme/word_rows.h), checked against the primal ridge
 * regression recomputed here in double by another route (normal equations
 * over the explicit features, Gaussian elimination), and every row that is
 * not a new word's left bit for bit as it was. */
#include "hyperlora.h"
#include "hyperlexeme/lexicon.h"
#include "hyperlexeme/word_rows.h"
#include "lora/adapter.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>

#define N_TRAINED 24
#define N_NEW 5

static hl_model *g_model;

/* One-token words of the base: "▁word" pieces of 2+ ASCII letters that encode back to themselves. */
static int32_t one_token_words(char words[][32], int32_t cap) {
    const hl_tokenizer *t = hl_model_get_tokenizer(g_model);
    int32_t n = 0;
    for (int32_t id = 0; id < hl_tokenizer_n_vocab(t) && n < cap; id++) {
        const char *p = hl_tokenizer_piece(t, id);
        if (!p || strncmp(p, "\xe2\x96\x81", 3)) continue;
        const char *w = p + 3;
        size_t len = strlen(w);
        int letters = len >= 2 && len < 31;
        for (size_t i = 0; letters && i < len; i++) letters = w[i] >= 'a' && w[i] <= 'z';
        if (!letters) continue;
        int32_t *ids = NULL;
        size_t nt = 0;
        hl_error err = {0};
        if (hl_lexicon_word_ids(g_model, w, &ids, &nt, &err) == HL_OK && nt == 1 && ids[0] == id)
            snprintf(words[n++], 32, "%s", w);
        hl_free(ids);
    }
    return n;
}

static int32_t token_of(const char *w) {
    int32_t *ids = NULL;
    size_t n = 0;
    hl_error err = {0};
    hl_lexicon_word_ids(g_model, w, &ids, &n, &err);
    int32_t id = n == 1 ? ids[0] : -1;
    hl_free(ids);
    return id;
}

/* One lexeme per word in [from, to), two parts each (the word twice is fine: parts repeat in scenes). */
static hl_lexicon *lexicon(char words[][32], int32_t from, int32_t to, const char *extra_part) {
    char *text = hl_calloc(64 * 1024, 1);
    size_t len = 0;
    for (int32_t i = from; i < to; i++)
        len += (size_t)snprintf(text + len, 64 * 1024 - len, "{\"lexeme\": \"L%d\", \"parts\": [\"%s\", \"%s\"]}\n",
                                (int)i, words[i], words[from + (i - from + 1) % (to - from)]);
    if (extra_part)
        len += (size_t)snprintf(text + len, 64 * 1024 - len, "{\"lexeme\": \"Lx\", \"parts\": [\"%s\"]}\n", extra_part);
    hl_lexicon *lex = NULL;
    hl_error err = {0};
    CHECK_OK(hl_lexicon_load_memory(text, len, "words.jsonl", g_model, &lex, &err), &err);
    hl_free(text);
    return lex;
}

/* f(e) = [e, e/|e|, 1, |e|] */
static void features(int32_t id, double *f, int64_t C) {
    float buf[1024];
    const float *e = hl_model_output_row(g_model, id, buf);
    double ss = 0;
    for (int64_t c = 0; c < C; c++) ss += (double)e[c] * e[c];
    double n = sqrt(ss);
    for (int64_t c = 0; c < C; c++) {
        f[c] = e[c];
        f[C + c] = e[c] / n;
    }
    f[2 * C] = 1;
    f[2 * C + 1] = n;
}

/* Solves M x = y (n, n) by Gaussian elimination with partial pivoting, for r right-hand sides in y (n, r). */
static void solve(double *M, double *y, int64_t n, int64_t r) {
    for (int64_t k = 0; k < n; k++) {
        int64_t piv = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(M[i * n + k]) > fabs(M[piv * n + k])) piv = i;
        for (int64_t j = 0; j < n; j++) {
            double t = M[k * n + j];
            M[k * n + j] = M[piv * n + j];
            M[piv * n + j] = t;
        }
        for (int64_t j = 0; j < r; j++) {
            double t = y[k * r + j];
            y[k * r + j] = y[piv * r + j];
            y[piv * r + j] = t;
        }
        for (int64_t i = k + 1; i < n; i++) {
            double f = M[i * n + k] / M[k * n + k];
            for (int64_t j = k; j < n; j++) M[i * n + j] -= f * M[k * n + j];
            for (int64_t j = 0; j < r; j++) y[i * r + j] -= f * y[k * r + j];
        }
    }
    for (int64_t k = n - 1; k >= 0; k--)
        for (int64_t j = 0; j < r; j++) {
            double s = y[k * r + j];
            for (int64_t i = k + 1; i < n; i++) s -= M[k * n + i] * y[i * r + j];
            y[k * r + j] = s / M[k * n + k];
        }
}

static hl_adapter *make_adapter(int with_output, int rank) {
    hl_error err = {0};
    hl_adapter *a = NULL;
    CHECK_OK(hl_adapter_new(g_model, "words", 2.0f * (float)rank, 0, &a, &err), &err);
    const int64_t C = hl_model_get_config(g_model)->dim, V = g_model->n_vocab_base;
    float *A = hl_malloc((size_t)(rank * C) * sizeof(float)), *B = hl_malloc((size_t)(V * rank) * sizeof(float));
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int64_t i = 0; i < rank * C; i++) A[i] = (float)((double)((x = x * 6364136223846793005ULL + 1) >> 40) / (1 << 24) - 0.5);
    for (int64_t i = 0; i < V * rank; i++) B[i] = (float)((double)((x = x * 6364136223846793005ULL + 1) >> 40) / (1 << 24) - 0.5);
    CHECK_OK(hl_adapter_add(a, g_model, 0, HL_TARGET_Q, rank, 2.0f * (float)rank, A, NULL, &err), &err);
    if (with_output) CHECK_OK(hl_adapter_add(a, g_model, -1, HL_TARGET_OUTPUT, rank, 2.0f * (float)rank, A, B, &err), &err);
    CHECK_OK(hl_adapter_index(a, &err), &err);
    hl_free(A);
    hl_free(B);
    return a;
}

static const hl_lora_weight *output_weight(const hl_adapter *a) { return hl_adapter_find(a, -1, HL_TARGET_OUTPUT); }

int main(void) {
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &g_model, &err), &err);
    REQUIRE(g_model);
    const int64_t C = hl_model_get_config(g_model)->dim, V = g_model->n_vocab_base;
    static char words[N_TRAINED + N_NEW][32];
    int32_t nw = one_token_words(words, N_TRAINED + N_NEW);
    CHECK_MSG(nw == N_TRAINED + N_NEW, "the base spells only %d such words as one token", (int)nw);
    REQUIRE(nw == N_TRAINED + N_NEW);
    hl_lexicon *carried = lexicon(words, 0, N_TRAINED, NULL);
    /* all: the carried entries, then scenes of new words, one of them spelled by several tokens */
    hl_lexicon *all = lexicon(words, 0, N_TRAINED + N_NEW, "zqxjv");
    REQUIRE(carried && all);

    const int rank = 4;
    hl_adapter *a = make_adapter(1, rank), *before = make_adapter(1, rank);
    hl_word_rows_report rep;
    CHECK_OK(hl_word_rows_compose(a, g_model, carried, all, &rep, &err), &err);
    CHECK_MSG(rep.n_fit == N_TRAINED, "fitted on %d words, not %d", rep.n_fit, N_TRAINED);
    CHECK_MSG(rep.n_new == N_NEW, "%d new words, not %d", rep.n_new, N_NEW);
    CHECK_MSG(rep.n_skipped > 0, "the several-token word's tokens were not reported (%d)", rep.n_skipped);

    /* The primal ridge over the explicit features, in double. */
    const int64_t P = 2 * C + 2;
    double *F = hl_calloc((size_t)(N_TRAINED * P), sizeof(double)), *M = hl_calloc((size_t)(P * P), sizeof(double));
    double *Wt = hl_calloc((size_t)(P * rank), sizeof(double)), *f = hl_calloc((size_t)P, sizeof(double));
    const hl_lora_weight *w0 = output_weight(before), *w1 = output_weight(a);
    double trace = 0;
    for (int32_t i = 0; i < N_TRAINED; i++) {
        features(token_of(words[i]), F + i * P, C);
        for (int64_t k = 0; k < P; k++) trace += F[i * P + k] * F[i * P + k];
    }
    for (int64_t p = 0; p < P; p++) {
        for (int64_t q = 0; q < P; q++)
            for (int32_t i = 0; i < N_TRAINED; i++) M[p * P + q] += F[i * P + p] * F[i * P + q];
        M[p * P + p] += 0.01 * trace / (double)P;
        for (int64_t j = 0; j < rank; j++)
            for (int32_t i = 0; i < N_TRAINED; i++)
                Wt[p * rank + j] += F[i * P + p] * w0->B[(int64_t)token_of(words[i]) * rank + j];
    }
    solve(M, Wt, P, rank);
    uint8_t *is_new = hl_calloc((size_t)V, 1);
    double worst = 0, scale = 0;
    for (int32_t i = N_TRAINED; i < N_TRAINED + N_NEW; i++) {
        int32_t id = token_of(words[i]);
        is_new[id] = 1;
        features(id, f, C);
        for (int64_t j = 0; j < rank; j++) {
            double want = 0;
            for (int64_t p = 0; p < P; p++) want += f[p] * Wt[p * rank + j];
            want *= 0.9; /* SHRINK */
            double d = fabs(want - (double)w1->B[(int64_t)id * rank + j]);
            worst = d > worst ? d : worst;
            scale = fabs(want) > scale ? fabs(want) : scale;
        }
    }
    CHECK_MSG(scale > 0 && worst <= 1e-5 * scale + 1e-7, "composed rows off the primal ridge by %.3g (scale %.3g)",
              worst, scale);
    /* Every other row, A and every other weight: bit for bit. */
    int64_t changed = 0;
    for (int64_t v = 0; v < V; v++)
        if (!is_new[v] && memcmp(w0->B + v * rank, w1->B + v * rank, (size_t)rank * sizeof(float))) changed++;
    CHECK_MSG(changed == 0, "%lld rows that are not new words changed", (long long)changed);
    CHECK(!memcmp(w0->A, w1->A, (size_t)(rank * C) * sizeof(float)));
    const hl_lora_weight *q0 = hl_adapter_find(before, 0, HL_TARGET_Q), *q1 = hl_adapter_find(a, 0, HL_TARGET_Q);
    CHECK(!memcmp(q0->A, q1->A, (size_t)(rank * C) * sizeof(float)) &&
          !memcmp(q0->B, q1->B, (size_t)(rank * C) * sizeof(float)));

    /* The same bits again from a fresh copy. */
    hl_adapter *again = make_adapter(1, rank);
    CHECK_OK(hl_word_rows_compose(again, g_model, carried, all, &rep, &err), &err);
    CHECK(!memcmp(output_weight(again)->B, w1->B, (size_t)(V * rank) * sizeof(float)));

    /* Nothing new (all == carried), no output adapter, too few trained words: nothing changes. */
    hl_adapter *same = make_adapter(1, rank);
    CHECK_OK(hl_word_rows_compose(same, g_model, carried, carried, &rep, &err), &err);
    CHECK(rep.n_new == 0 && !memcmp(output_weight(same)->B, w0->B, (size_t)(V * rank) * sizeof(float)));
    hl_adapter *no_out = make_adapter(0, rank);
    CHECK_OK(hl_word_rows_compose(no_out, g_model, carried, all, &rep, &err), &err);
    CHECK(rep.n_new == 0 && rep.n_fit == 0);
    hl_lexicon *few = lexicon(words, 0, HL_WORD_ROWS_MIN_FIT - 1, NULL);
    hl_adapter *small = make_adapter(1, rank);
    CHECK_OK(hl_word_rows_compose(small, g_model, few, all, &rep, &err), &err);
    CHECK(rep.n_new == 0 && rep.n_fit == HL_WORD_ROWS_MIN_FIT - 1 &&
          !memcmp(output_weight(small)->B, w0->B, (size_t)(V * rank) * sizeof(float)));

    hl_free(F);
    hl_free(M);
    hl_free(Wt);
    hl_free(f);
    hl_free(is_new);
    hl_adapter_free(a);
    hl_adapter_free(before);
    hl_adapter_free(again);
    hl_adapter_free(same);
    hl_adapter_free(no_out);
    hl_adapter_free(small);
    hl_lexicon_free(few);
    hl_lexicon_free(carried);
    hl_lexicon_free(all);
    hl_model_free(g_model);
    return hl_test_finish("test_word_rows");
}
