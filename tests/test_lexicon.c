/* test_lexicon.c: hyperlexemes: atomic tokenization in every context, the
 * composed embeddings against the documented rule recomputed here, base
 * logits bitwise untouched, the lexicon travelling inside an adapter,
 * scene prompts/examples, decoder bundles, and one test per bad input. */
#include "hyperlora.h"
#include "hyperlexeme/bundle.h"
#include "hyperlexeme/scene.h"
#include "lora/adapter_io.h"
#include "lora/create.h"
#include "model/model.h"
#include "hyperlexeme/compose.h"
#include "hyperlexeme/lexicon.h"
#include "text/tokenizer.h"
#include "test_util.h"

#include <math.h>
#include <unistd.h>

static const char *LEX =
    "{\"lexeme\": \"Δ21\", \"parts\": [\"тишина\", \"вход\", \"страх\"], \"facets\": {\"archetype\": \"threshold\", \"tone\": \"fear\"}}\n"
    "{\"lexeme\": \"вспышкавходстрах\", \"parts\": [\"вспышка\", \"вход\", \"страх\"]}\n"
    "\n"
    "{\"lexeme\": \"Δ2\", \"parts\": [\"rain\", \"door\"], \"weights\": [1, 3]}\n"
    "{\"lexeme\": \"stormgatejoy\", \"parts\": [\"storm\", \"gate\", \"joy\"]}\n";

static hl_model *g_model;

static hl_lexicon *load(const char *text, hl_error *err) {
    hl_lexicon *lex = NULL;
    hl_lexicon_load_memory(text, strlen(text), "lex.jsonl", g_model, &lex, err);
    return lex;
}

static void test_atomic(hl_lexicon *lex) {
    const hl_tokenizer *t = hl_lexicon_tokenizer(lex);
    const hl_tokenizer *base = hl_model_get_tokenizer(g_model);
    hl_error err = {0};
    const char *contexts[] = {"%s", " %s", "%s.", "(%s)", "a %s b", "Он сказал: «%s»!", "%s%s", "%s Δ2 %s",
                              "x%sy", "%s—%s", "\n%s\n", "%s,%s;%s"};
    for (int32_t i = 0; i < hl_lexicon_n_entries(lex); i++) {
        const char *lx = hl_lexicon_lexeme(lex, i);
        int32_t id = hl_lexicon_token(lex, i);
        for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++) {
            char text[512];
            snprintf(text, sizeof text, contexts[c], lx, lx, lx);
            int32_t *ids;
            size_t n;
            CHECK_OK(hl_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, &err), &err);
            /* count occurrences of the lexeme in text and of its id in ids */
            int want = 0, got = 0;
            for (const char *p = strstr(text, lx); p; p = strstr(p + strlen(lx), lx)) want++;
            for (size_t k = 0; k < n; k++) got += ids[k] == id;
            CHECK_MSG(want == got, "\"%s\": %d occurrences of %s, %d tokens", text, want, lx, got);
            /* decoding gives the text back */
            char dec[1024];
            size_t dl = 0;
            int32_t prev = hl_tokenizer_bos(t);
            for (size_t k = 0; k < n; k++) {
                dl += hl_tokenizer_decode(t, prev, ids[k], dec + dl, sizeof dec - dl - 1);
                prev = ids[k];
            }
            dec[dl] = 0;
            CHECK_MSG(!strcmp(dec, text), "decode \"%s\" -> \"%s\"", text, dec);
            hl_free(ids);
        }
    }
    /* Text without lexemes tokenizes exactly as with the base tokenizer. */
    const char *plain[] = {"Once upon a time", "The little dog ran to the park.", "тишина у входа", "🜂⟁ ∴ ok",
                           "Lily wanted to play.\nShe smiled.", "Δ", "Δ3 is not a lexeme", ""};
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        int32_t *a, *b;
        size_t na, nb;
        CHECK_OK(hl_tokenizer_encode(base, plain[k], strlen(plain[k]), 1, 0, &a, &na, &err), &err);
        CHECK_OK(hl_tokenizer_encode(t, plain[k], strlen(plain[k]), 1, 0, &b, &nb, &err), &err);
        CHECK_MSG(na == nb && !memcmp(a, b, na * sizeof *a), "plain text \"%s\" encodes differently", plain[k]);
        hl_free(a);
        hl_free(b);
    }
    /* Longest match first: Δ21 wins over Δ2. */
    int32_t *ids;
    size_t n;
    CHECK_OK(hl_tokenizer_encode(t, "Δ21Δ2", strlen("Δ21Δ2"), 0, 0, &ids, &n, &err), &err);
    CHECK(n == 2 && ids[0] == hl_lexicon_token(lex, 0) && ids[1] == hl_lexicon_token(lex, 2));
    hl_free(ids);
}

/* The documented rule, recomputed from the model's tensors in double. */
/* with_facets: entry 0's facet values ("threshold", "fear") join its parts at weight 1. */
/* Every entry's rows recomputed in double from the base tables by the rule
 * as compose.h states it (order rule: HL_COMPOSE_PARTS/SLOTS/RANKED/DECAY;
 * facet_words: decay's facets as they are, unpermuted). */
static void test_composition_rule(hl_lexicon *lex, int order, int with_facets, int facet_words) {
    const hl_model_config *c = hl_model_get_config(g_model);
    const hl_tokenizer *base = hl_model_get_tokenizer(g_model);
    hl_error err = {0};
    double worst = 0;
    int32_t *code = malloc(sizeof(int32_t) * (size_t)c->dim);
    for (int32_t i = 0; i < hl_lexicon_n_entries(lex); i++) {
        int32_t np = hl_lexicon_n_parts(lex, i), nparts = np;
        const char *words[8], *keys[8] = {0};
        for (int32_t p = 0; p < np; p++) words[p] = hl_lexicon_part(lex, i, p);
        if (with_facets && i == 0) {
            keys[np] = "archetype";
            words[np++] = "threshold";
            keys[np] = "tone";
            words[np++] = "fear";
        }
        double w[8] = {1, 1, 1, 1, 1, 1, 1, 1}, norm = 0;
        if (i == 2) { w[0] = 1; w[1] = 3; } /* Δ2's weights */
        for (int32_t p = 0; p < nparts && order == HL_COMPOSE_RANKED; p++) w[p] /= p + 1;
        for (int32_t p = 0; p < nparts && order == HL_COMPOSE_DECAY; p++) w[p] *= pow(0.6, p);
        for (int32_t p = nparts; p < np && order == HL_COMPOSE_DECAY; p++) w[p] = 0.25;
        for (int32_t p = 0; p < np; p++) norm += order == HL_COMPOSE_SLOTS ? w[p] * w[p] : w[p];
        if (order == HL_COMPOSE_SLOTS) norm = sqrt(norm);
        double *emb = calloc((size_t)c->dim, sizeof(double)), *out = calloc((size_t)c->dim, sizeof(double));
        if (order == HL_COMPOSE_DECAY) { /* the end-of-text rows close the parts, one weight further down */
            const double w_end = pow(0.6, nparts);
            const int32_t eos = hl_tokenizer_eos(base);
            norm += w_end;
            for (int d = 0; d < c->dim; d++) {
                emb[d] += w_end / norm * g_model->token_embd[(int64_t)eos * c->dim + d];
                out[d] += w_end / norm * g_model->output[(int64_t)eos * c->dim + d];
            }
        }
        for (int32_t p = 0; p < np; p++) {
            const char *part = words[p];
            int32_t *ids;
            size_t n;
            CHECK_OK(hl_tokenizer_encode(base, part, strlen(part), 0, 0, &ids, &n, &err), &err);
            const int permuted =
                p < nparts ? order == HL_COMPOSE_SLOTS
                           : order == HL_COMPOSE_SLOTS || (order == HL_COMPOSE_DECAY && !facet_words);
            if (permuted)
                hl_compose_transform(p < nparts ? hl_compose_part_key(p) : hl_compose_facet_key(keys[p]), c->dim, code);
            for (size_t k = 0; k < n; k++)
                for (int d = 0; d < c->dim; d++) {
                    int src = permuted ? code[d] >> 1 : d;
                    double sign = permuted && (code[d] & 1) ? -1 : 1;
                    emb[d] += sign * w[p] / norm / (double)n * g_model->token_embd[(int64_t)ids[k] * c->dim + src];
                    out[d] += sign * w[p] / norm / (double)n * g_model->output[(int64_t)ids[k] * c->dim + src];
                }
            hl_free(ids);
        }
        const hl_model *view = hl_lexicon_model(lex);
        int32_t row = hl_lexicon_token(lex, i) - view->n_vocab_base;
        for (int d = 0; d < c->dim; d++) {
            worst = fmax(worst, fabs(emb[d] - view->extra_embd[(int64_t)row * c->dim + d]));
            worst = fmax(worst, fabs(out[d] - view->extra_out[(int64_t)row * c->dim + d]));
            CHECK(view->extra_embd[(int64_t)row * c->dim + d] == hl_lexicon_embedding(lex, i)[d]);
        }
        free(emb);
        free(out);
    }
    free(code);
    printf("composed embeddings (%s) vs the rule recomputed in double: max |diff| %.3g\n",
           hl_lexicon_compose_rule(lex), worst);
    CHECK(worst < 1e-6);
}

static void test_composition(hl_lexicon *lex, int with_facets) {
    test_composition_rule(lex, HL_COMPOSE_PARTS, with_facets, 0);
}

/* The transforms are signed permutations, position 0 the identity, each
 * position and facet key its own; the order-aware rules tell "a b c" from
 * "c b a", the mean does not; every rule recomputed in double. */
static void test_order_rules(void) {
    const int64_t C = hl_model_get_config(g_model)->dim;
    int32_t *code = malloc(sizeof(int32_t) * (size_t)C), *other = malloc(sizeof(int32_t) * (size_t)C);
    char *seen = calloc((size_t)C, 1);
    hl_compose_transform(hl_compose_part_key(0), C, code);
    int identity = 1;
    for (int64_t c = 0; c < C; c++) identity &= code[c] == (int32_t)(c << 1);
    CHECK(identity);
    for (int k = 1; k < 6; k++) {
        hl_compose_transform(hl_compose_part_key(k), C, code);
        memset(seen, 0, (size_t)C);
        int64_t fixed = 0, negative = 0;
        for (int64_t c = 0; c < C; c++) {
            int32_t src = code[c] >> 1;
            CHECK(src >= 0 && src < C && !seen[src]);
            if (src >= 0 && src < C) seen[src] = 1;
            fixed += src == c;
            negative += code[c] & 1;
        }
        CHECK_MSG(fixed < C / 4 && negative > C / 4 && negative < 3 * C / 4, "slot %d: %lld fixed, %lld negative", k,
                  (long long)fixed, (long long)negative);
        hl_compose_transform(hl_compose_part_key(k + 1), C, other);
        CHECK(memcmp(code, other, sizeof(int32_t) * (size_t)C) != 0);
    }
    hl_compose_transform(hl_compose_facet_key("tone"), C, code);
    hl_compose_transform(hl_compose_facet_key("field"), C, other);
    CHECK(memcmp(code, other, sizeof(int32_t) * (size_t)C) != 0);
    hl_compose_transform(hl_compose_facet_key("tone"), C, other);
    CHECK(!memcmp(code, other, sizeof(int32_t) * (size_t)C));
    free(code);
    free(other);
    free(seen);

    static const char *ORDER =
        "{\"lexeme\": \"abc\", \"parts\": [\"storm\", \"gate\", \"joy\"]}\n"
        "{\"lexeme\": \"cba\", \"parts\": [\"joy\", \"gate\", \"storm\"]}\n";
    const char *rules[] = {"parts",        "slots",         "ranked",       "decay",
                           "slots+facets", "ranked+facets", "decay+facets", "decay+facet-words"};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        hl_error err = {0};
        char text[4096];
        snprintf(text, sizeof text, "{\"compose\": \"%s\"}\n%s", rules[r], LEX);
        hl_lexicon *lex = load(text, &err);
        CHECK_MSG(lex != NULL, "%s: %s", rules[r], err.msg);
        if (!lex) continue;
        CHECK(!strcmp(hl_lexicon_compose_rule(lex), rules[r]));
        int rule = hl_compose_rule_from_name(rules[r]);
        test_composition_rule(lex, HL_COMPOSE_ORDER(rule), rule & HL_COMPOSE_FACETS, rule & HL_COMPOSE_FACET_WORDS);
        hl_lexicon_free(lex);
        snprintf(text, sizeof text, "{\"compose\": \"%s\"}\n%s", rules[r], ORDER);
        REQUIRE((lex = load(text, &err)) != NULL);
        int same = !memcmp(hl_lexicon_embedding(lex, 0), hl_lexicon_embedding(lex, 1), sizeof(float) * (size_t)C);
        CHECK_MSG(same == (r == 0), "%s: \"storm gate joy\" and \"joy gate storm\" %s", rules[r],
                  same ? "compose the same" : "differ");
        hl_lexicon_free(lex);
    }
}

static void test_base_untouched(hl_lexicon *lex) {
    hl_error err = {0};
    const hl_model *view = hl_lexicon_model(lex);
    int32_t V = g_model->n_vocab_base, Vx = view->cfg.vocab_size;
    CHECK(Vx == V + 9 + hl_lexicon_n_entries(lex));
    int32_t *ids;
    size_t n;
    const char *text = "Once upon a time, there was a little girl named Lily. She loved to play.";
    CHECK_OK(hl_tokenizer_encode(hl_model_get_tokenizer(g_model), text, strlen(text), 1, 0, &ids, &n, &err), &err);
    hl_context *a, *b;
    hl_context_params cp = {.n_ctx = 128, .n_threads = 2};
    CHECK_OK(hl_context_init(g_model, &cp, &a, &err), &err);
    CHECK_OK(hl_context_init(view, &cp, &b, &err), &err);
    float *la = malloc(sizeof(float) * n * (size_t)V), *lb = malloc(sizeof(float) * n * (size_t)Vx);
    CHECK_OK(hl_context_eval(a, ids, (int32_t)n, 0, la, 1, &err), &err);
    CHECK_OK(hl_context_eval(b, ids, (int32_t)n, 0, lb, 1, &err), &err);
    int same = 1;
    for (size_t t = 0; t < n; t++) same &= !memcmp(la + t * V, lb + t * Vx, sizeof(float) * (size_t)V);
    CHECK_MSG(same, "base-token logits changed with the lexicon loaded");
    free(la);
    free(lb);
    hl_free(ids);
    hl_context_free(a);
    hl_context_free(b);
}

static void test_scene_format(hl_lexicon *lex) {
    hl_error err = {0};
    int32_t *ids;
    uint8_t *mask;
    size_t n;
    CHECK_OK(hl_lexicon_scene_format(lex, "Δ21", "symbols", "poetic", "⟁🜂 тишина", &ids, &mask, &n, &err), &err);
    const hl_tokenizer *t = hl_lexicon_tokenizer(lex);
    CHECK(ids[0] == hl_tokenizer_bos(t));
    CHECK(ids[1] == hl_lexicon_form_token(lex, HL_FORM_SYMBOLS));
    CHECK(ids[2] == hl_lexicon_register_token(lex, HL_REGISTER_POETIC));
    CHECK(ids[3] == hl_lexicon_token(lex, 0));
    CHECK(ids[4] == hl_lexicon_sep_token(lex));
    CHECK(ids[n - 1] == hl_tokenizer_eos(t));
    for (size_t i = 0; i < n; i++) CHECK(mask[i] == (i >= 5));
    hl_free(ids);
    hl_free(mask);
    hl_status s = hl_lexicon_scene_format(lex, "Δ21", "poem", "poetic", "x", &ids, &mask, &n, &err);
    CHECK(s == HL_ERR_FORMAT && strstr(err.msg, "form"));
    s = hl_lexicon_scene_format(lex, "Δ21", "text", "lyrical", "x", &ids, &mask, &n, &err);
    CHECK(s == HL_ERR_FORMAT && strstr(err.msg, "register"));
    /* mute scene prompt */
    CHECK_OK(hl_lexicon_scene_prompt(lex, NULL, 2, HL_FORM_TEXT, HL_REGISTER_LOGICAL, &ids, &n, &err), &err);
    CHECK(n == 6 && ids[3] == -1 && ids[4] == -2 && ids[5] == hl_lexicon_sep_token(lex));
    hl_free(ids);
}

static void test_adapter_carries_lexicon(hl_lexicon *lex) {
    hl_error err = {0};
    hl_adapter *a = NULL, *b = NULL;
    hl_adapter_spec spec = {.name = "dec", .targets = (1u << HL_TARGET_Q) | (1u << HL_TARGET_OUTPUT), .rank = 4,
                            .alpha = 8, .seed = 3};
    CHECK_OK(hl_adapter_create(g_model, &spec, &a, &err), &err);
    REQUIRE(a);
    /* give B some values so the adapter does something */
    for (int32_t i = 0; i < a->n_weights; i++)
        for (int64_t e = 0; e < a->w[i].n_out * a->w[i].rank; e++) a->w[i].B[e] = 0.01f * (float)((e * 7) % 13 - 6);
    CHECK_OK(hl_lexicon_attach(lex, a, &err), &err);
    CHECK_OK(hl_adapter_save_gguf(a, "lex_dec.gguf", &err), &err);
    CHECK_OK(hl_adapter_load("lex_dec.gguf", g_model, 0, &b, &err), &err);
    REQUIRE(b && b->lexicon);
    CHECK(!strcmp(b->lexicon, a->lexicon));
    hl_lexicon *back = NULL;
    CHECK_OK(hl_lexicon_from_adapter(b, g_model, &back, &err), &err);
    REQUIRE(back);
    CHECK(hl_lexicon_n_entries(back) == hl_lexicon_n_entries(lex));
    CHECK(!memcmp(hl_lexicon_embedding(back, 1), hl_lexicon_embedding(lex, 1), sizeof(float) * 64));
    /* still a llama.cpp adapter: required keys and tensor names */
    hl_gguf *g;
    CHECK_OK(hl_gguf_open("lex_dec.gguf", &g, &err), &err);
    hl_gguf_str str;
    CHECK(hl_gguf_get_str(g, "general.type", &str, &err) == HL_OK && str.len == 7);
    CHECK(hl_gguf_find_key(g, "adapter.lora.alpha") >= 0);
    CHECK(hl_gguf_find_tensor(g, "output.weight.lora_b") >= 0);
    hl_gguf_free(g);

    /* Decoding: byte-identical across runs and thread counts. */
    char *outs[4] = {0};
    for (int run = 0; run < 4; run++) {
        hl_scene_decoder *d = NULL;
        const char *paths[1] = {"lex_dec.gguf"};
        hl_scene_decoder_params p = {.model_path = shared_path("models/stories260K/stories260K-f32.gguf"),
                                     .lora_paths = paths, .n_lora = 1, .n_threads = run == 3 ? 2 : 1};
        CHECK_OK(hl_scene_decoder_init(&p, &d, &err), &err);
        REQUIRE(d);
        hl_sampler_params sp = hl_sampler_default_params();
        CHECK_OK(hl_scene_decode(d, "Δ21", NULL, 0, HL_FORM_TEXT, HL_REGISTER_POETIC, &sp, 40, &outs[run], &err), &err);
        hl_scene_decoder_free(d);
    }
    for (int run = 1; run < 4; run++) CHECK(outs[run] && outs[0] && !strcmp(outs[0], outs[run]));
    printf("decoded Δ21 (untrained decoder): \"%s\"\n", outs[0] ? outs[0] : "(null)");
    for (int run = 0; run < 4; run++) hl_free(outs[run]);
    hl_lexicon_free(back);
    hl_adapter_free(a);
    hl_adapter_free(b);
    unlink("lex_dec.gguf");
}

static void expect_bad(const char *label, const char *text, hl_status want, const char *substr);

/* The "parts+facets" rule: from a first line or asked for at load time, the
 * documented mean recomputed; the rule travels with the adapter; misuse is
 * refused; parts that are byte fallback only are counted. */
static void test_compose_rule(hl_lexicon *plain) {
    hl_error err = {0};
    int32_t total = 0;
    CHECK(hl_lexicon_byte_only_parts(plain, &total) == 6 && total == 11); /* the six Cyrillic parts */
    CHECK(!hl_lexicon_composes_facets(plain));
    char text[4096];
    snprintf(text, sizeof text, "{\"compose\": \"parts+facets\"}\n%s", LEX);
    hl_lexicon *lf = load(text, &err);
    CHECK_MSG(lf != NULL, "compose line: %s", err.msg);
    REQUIRE(lf);
    CHECK(hl_lexicon_composes_facets(lf) && hl_lexicon_byte_only_parts(lf, &total) == 6 && total == 13);
    test_composition(lf, 1);
    /* entries without facets compose as before; Δ21 moves */
    CHECK(!memcmp(hl_lexicon_embedding(lf, 1), hl_lexicon_embedding(plain, 1), sizeof(float) * 64));
    CHECK(memcmp(hl_lexicon_embedding(lf, 0), hl_lexicon_embedding(plain, 0), sizeof(float) * 64) != 0);
    /* asked for at load time: same vectors, and the carried text states the rule */
    FILE *f = fopen("lex_compose.jsonl", "wb");
    REQUIRE(f);
    fputs(LEX, f);
    fclose(f);
    hl_lexicon *forced = NULL, *back = NULL;
    CHECK_OK(hl_lexicon_load_compose("lex_compose.jsonl", g_model, "parts+facets", &forced, &err), &err);
    REQUIRE(forced);
    CHECK(!memcmp(hl_lexicon_embedding(forced, 0), hl_lexicon_embedding(lf, 0), sizeof(float) * 64));
    hl_adapter *a = NULL;
    hl_adapter_spec spec = {.name = "dec", .targets = 1u << HL_TARGET_Q, .rank = 2, .alpha = 2, .seed = 1};
    CHECK_OK(hl_adapter_create(g_model, &spec, &a, &err), &err);
    CHECK_OK(hl_lexicon_attach(forced, a, &err), &err);
    const char *rule_line = "{\"compose\": \"parts+facets\"}\n";
    CHECK(a && a->lexicon && !strncmp(a->lexicon, rule_line, strlen(rule_line)) &&
          !strcmp(a->lexicon + strlen(rule_line), LEX));
    CHECK_OK(hl_lexicon_from_adapter(a, g_model, &back, &err), &err);
    CHECK(back && !memcmp(hl_lexicon_embedding(back, 0), hl_lexicon_embedding(lf, 0), sizeof(float) * 64));
    hl_lexicon_free(back);
    hl_adapter_free(a);
    /* a file that states another rule than the one asked for */
    f = fopen("lex_compose.jsonl", "wb");
    REQUIRE(f);
    fprintf(f, "{\"compose\": \"parts\"}\n%s", LEX);
    fclose(f);
    hl_lexicon *bad = NULL;
    hl_status st = hl_lexicon_load_compose("lex_compose.jsonl", g_model, "parts+facets", &bad, &err);
    CHECK_MSG(st == HL_ERR_FORMAT && !bad && strstr(err.msg, "lex_compose.jsonl:1") && strstr(err.msg, "conflicts"),
              "conflicting rule: %s", err.msg);
    st = hl_lexicon_load_compose("lex_compose.jsonl", g_model, "facets", &bad, &err);
    CHECK_MSG(st == HL_ERR_INVALID_ARG && !bad && strstr(err.msg, "unknown composition rule"), "unknown rule: %s", err.msg);
    unlink("lex_compose.jsonl");
    expect_bad("compose after a lexeme", "{\"lexeme\": \"Δ9\", \"parts\": [\"rain\"]}\n{\"compose\": \"parts\"}",
               HL_ERR_FORMAT, "lex.jsonl:2: the \"compose\" line must come once");
    expect_bad("compose twice", "{\"compose\": \"parts\"}\n{\"compose\": \"parts\"}\n{\"lexeme\": \"Δ9\", \"parts\": [\"x\"]}",
               HL_ERR_FORMAT, "must come once");
    expect_bad("compose rule", "{\"compose\": \"facets\"}", HL_ERR_FORMAT,
               "must be one of parts, parts+facets, slots, slots+facets, ranked, ranked+facets, decay, decay+facets, "
               "decay+facet-words");
    expect_bad("compose extra field", "{\"compose\": \"parts\", \"lexeme\": \"Δ9\"}", HL_ERR_FORMAT, "no other fields");
    expect_bad("empty facet composed", "{\"compose\": \"parts+facets\"}\n{\"lexeme\": \"Δ9\", \"parts\": [\"x\"], "
               "\"facets\": {\"tone\": \"\"}}", HL_ERR_FORMAT, "\"tone\" must be a non-empty");
    hl_lexicon_free(forced);
    hl_lexicon_free(lf);
}

static void expect_bad(const char *label, const char *text, hl_status want, const char *substr) {
    hl_error err = {0};
    hl_lexicon *lex = load(text, &err);
    CHECK_MSG(!lex && err.status == want && strstr(err.msg, substr), "%s: status %s, message \"%s\"", label,
              hl_status_name(err.status), err.msg);
    printf("bad lexicon (%s): %s\n", label, err.msg);
    hl_lexicon_free(lex);
}

static void test_bad_lexicons(void) {
    char vec_wrong_dim[2048] = "{\"lexeme\": \"v1\", \"vector\": [1, 2, 3]}";
    expect_bad("invalid JSON", "{\"lexeme\": \"Δ9\", \"parts\": [\"x\"]", HL_ERR_FORMAT, "lex.jsonl:1: invalid JSON");
    expect_bad("not an object", "[1, 2]", HL_ERR_FORMAT, "not a JSON object");
    expect_bad("missing lexeme", "{\"parts\": [\"rain\"]}", HL_ERR_FORMAT, "\"lexeme\"");
    expect_bad("empty lexeme", "{\"lexeme\": \"\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "empty");
    expect_bad("whitespace", "{\"lexeme\": \"a b\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "whitespace");
    expect_bad("duplicate", "{\"lexeme\": \"Δ1\", \"parts\": [\"rain\"]}\n{\"lexeme\": \"Δ1\", \"parts\": [\"sun\"]}",
               HL_ERR_FORMAT, "lex.jsonl:2: lexeme \"Δ1\" is already defined");
    expect_bad("special token", "{\"lexeme\": \"</s>\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "special token");
    expect_bad("control lexeme", "{\"lexeme\": \"⟨sep⟩\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "control lexeme");
    expect_bad("base piece", "{\"lexeme\": \"ing\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "lex.jsonl:1: lexeme \"ing\" is already the base token");
    expect_bad("parts and vector", "{\"lexeme\": \"Δ9\", \"parts\": [\"x\"], \"vector\": [1]}", HL_ERR_FORMAT, "exactly one");
    expect_bad("no parts", "{\"lexeme\": \"Δ9\", \"parts\": []}", HL_ERR_FORMAT, "\"parts\"");
    expect_bad("part not string", "{\"lexeme\": \"Δ9\", \"parts\": [3]}", HL_ERR_FORMAT, "element 0");
    expect_bad("vector dim", vec_wrong_dim, HL_ERR_FORMAT, "model dimension");
    char buf[4096];
    int off = snprintf(buf, sizeof buf, "{\"lexeme\": \"v1\", \"vector\": [");
    for (int i = 0; i < 64; i++) off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%s", i ? ", " : "", i == 5 ? "\"x\"" : "0.5");
    snprintf(buf + off, sizeof buf - (size_t)off, "]}");
    expect_bad("vector not finite", buf, HL_ERR_FORMAT, "element 5");
    expect_bad("weights count", "{\"lexeme\": \"Δ9\", \"parts\": [\"x\", \"y\"], \"weights\": [1]}", HL_ERR_FORMAT, "weights");
    expect_bad("weight zero", "{\"lexeme\": \"Δ9\", \"parts\": [\"x\"], \"weights\": [0]}", HL_ERR_FORMAT, "positive");
    expect_bad("unknown field", "{\"lexeme\": \"Δ9\", \"part\": [\"x\"]}", HL_ERR_FORMAT, "unknown field \"part\"");
    expect_bad("facets type", "{\"lexeme\": \"Δ9\", \"parts\": [\"x\"], \"facets\": {\"tone\": 3}}", HL_ERR_FORMAT, "facets");
    expect_bad("invalid UTF-8 lexeme", "{\"lexeme\": \"\xff\xfe\", \"parts\": [\"x\"]}", HL_ERR_FORMAT, "invalid");
    expect_bad("empty file", "\n\n", HL_ERR_FORMAT, "no lexemes");
    /* A mute-scene vector with 64 finite values is fine. */
    off = snprintf(buf, sizeof buf, "{\"lexeme\": \"v1\", \"vector\": [");
    for (int i = 0; i < 64; i++) off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%g", i ? ", " : "", 0.01 * i);
    snprintf(buf + off, sizeof buf - (size_t)off, "]}");
    hl_error err = {0};
    hl_lexicon *ok = load(buf, &err);
    CHECK_MSG(ok != NULL, "vector entry refused: %s", err.msg);
    if (ok) CHECK(hl_lexicon_embedding(ok, 0)[10] == 0.1f && hl_lexicon_n_parts(ok, 0) == 0);
    hl_lexicon_free(ok);
    /* Finite after conversion (hostile-input review): a double beyond float range would give an
     * inf weight and NaN embeddings; refused naming the file, line and field. */
    expect_bad("weight beyond float", "{\"lexeme\": \"Δ9\", \"parts\": [\"rain\"]}\n"
               "{\"lexeme\": \"Δ8\", \"parts\": [\"rain\", \"sun\"], \"weights\": [1e39, 1]}",
               HL_ERR_FORMAT, "lex.jsonl:2: field \"weights\": element 0 (1e+39) is outside the range of a 32-bit float");
    expect_bad("weight underflows", "{\"lexeme\": \"Δ8\", \"parts\": [\"rain\", \"sun\"], \"weights\": [1e-60, 1]}",
               HL_ERR_FORMAT, "element 0");
    off = snprintf(buf, sizeof buf, "{\"lexeme\": \"v1\", \"vector\": [");
    for (int i = 0; i < 64; i++) off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%s", i ? ", " : "", i == 7 ? "3.5e38" : "1");
    snprintf(buf + off, sizeof buf - (size_t)off, "]}");
    expect_bad("vector beyond float", buf, HL_ERR_FORMAT, "field \"vector\": element 7");
    /* The largest finite weights still compose to finite rows. */
    ok = load("{\"lexeme\": \"Δ8\", \"parts\": [\"rain\", \"sun\"], \"weights\": [3e38, 1]}", &err);
    CHECK_MSG(ok != NULL, "3e38 weight refused: %s", err.msg);
    for (int c = 0; ok && c < 64; c++) CHECK(isfinite(hl_lexicon_embedding(ok, 0)[c]));
    hl_lexicon_free(ok);
    /* \u0000 would cut the lexeme short ("Δ1\u0000junk" read as "Δ1"). */
    expect_bad("NUL in lexeme", "{\"lexeme\": \"Δ1\\u0000junk\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT,
               "lex.jsonl:1: a string holds \\u0000");
    /* Hostile lexemes and field names are escaped in messages. */
    expect_bad("escape in lexeme", "{\"lexeme\": \"a\\u001b[2Jb\", \"parts\": [\"rain\"]}\n"
               "{\"lexeme\": \"a\\u001b[2Jb\", \"parts\": [\"rain\"]}", HL_ERR_FORMAT, "lexeme \"a\\x1b[2Jb\" is already defined");
    expect_bad("escape in field", "{\"lexeme\": \"Δ9\", \"x\\u001b\": 1}", HL_ERR_FORMAT, "unknown field \"x\\x1b\"");
}

/* Duplicate checks are linear (a hash set): the 100,000-entry cap loads whole
 * (timed in bench/bench_bounds.c, not here), and a duplicate at the very end
 * is still found and names the first entry. */
static void test_many_entries(void) {
    const int n = HL_LEXICON_MAX_ENTRIES;
    static const char *words[] = {"rain", "door", "cat", "sun", "tree", "dog", "ball", "happy", "park", "girl"};
    size_t cap = (size_t)n * 96, len = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "{\"lexeme\": \"Δ%d\", \"parts\": [\"%s\", \"%s\"]}\n", i,
                                words[i % 10], words[(i / 10) % 10]);
    hl_error err = {0};
    hl_lexicon *lex = NULL;
    CHECK_OK(hl_lexicon_load_memory(text, len, "big.jsonl", g_model, &lex, &err), &err);
    if (lex) {
        CHECK(hl_lexicon_n_entries(lex) == n);
        CHECK(hl_lexicon_find(lex, "Δ0") == 0 && hl_lexicon_find(lex, "Δ99999") == n - 1 &&
              hl_lexicon_find(lex, "Δ100000") == -1);
        int32_t *ids = NULL;
        size_t ni = 0;
        CHECK_OK(hl_tokenizer_encode(hl_lexicon_tokenizer(lex), "Δ77777", 7, 0, 0, &ids, &ni, &err), &err);
        CHECK(ni == 1 && ids && ids[0] == hl_lexicon_token(lex, 77777));
        hl_free(ids);
    }
    hl_lexicon_free(lex);
    /* The last line repeats entry 4242. */
    char *last = text + len - 1;
    while (last > text && last[-1] != '\n') last--;
    len = (size_t)(last - text);
    len += (size_t)snprintf(text + len, cap - len, "{\"lexeme\": \"Δ4242\", \"parts\": [\"sun\"]}\n");
    lex = NULL;
    CHECK(hl_lexicon_load_memory(text, len, "big.jsonl", g_model, &lex, &err) == HL_ERR_FORMAT && !lex);
    CHECK_MSG(strstr(err.msg, "big.jsonl:100000: lexeme \"Δ4242\" is already defined (entry 4243)"), "%s", err.msg);
    free(text);
}

static void test_bundles(void) {
    hl_error err = {0};
    hl_bundle *b = NULL;
    const char *good = "{\"decoders\": [{\"form\": \"text\", \"register\": \"poetic\", \"adapters\": "
                       "[{\"path\": \"scene.gguf\"}, {\"path\": \"/abs/style.gguf\", \"scale\": 0.5}]},"
                       "{\"form\": \"*\", \"register\": \"*\", \"adapters\": [{\"path\": \"scene.gguf\"}]}]}";
    CHECK_OK(hl_bundle_parse(good, strlen(good), "b.json", "dir", &b, &err), &err);
    REQUIRE(b);
    const char *const *paths;
    const float *scales;
    int32_t n;
    CHECK_OK(hl_bundle_lookup(b, HL_FORM_TEXT, HL_REGISTER_POETIC, &paths, &scales, &n, &err), &err);
    CHECK(n == 2 && !strcmp(paths[0], "dir/scene.gguf") && !strcmp(paths[1], "/abs/style.gguf") && scales[1] == 0.5f);
    CHECK_OK(hl_bundle_lookup(b, HL_FORM_SYMBOLS, HL_REGISTER_LOGICAL, &paths, &scales, &n, &err), &err);
    CHECK(n == 1 && scales[0] == 1.0f);
    hl_bundle_free(b);
    struct { const char *label, *json, *substr; } bad[] = {
        {"not JSON", "{", "invalid JSON"},
        {"no decoders", "{}", "\"decoders\""},
        {"empty decoders", "{\"decoders\": []}", "empty"},
        {"bad form", "{\"decoders\": [{\"form\": \"poem\", \"register\": \"*\", \"adapters\": [{\"path\": \"a\"}]}]}", "unknown form"},
        {"bad register", "{\"decoders\": [{\"form\": \"*\", \"register\": \"loud\", \"adapters\": [{\"path\": \"a\"}]}]}", "unknown register"},
        {"no adapters", "{\"decoders\": [{\"form\": \"*\", \"register\": \"*\", \"adapters\": []}]}", "\"adapters\""},
        {"path type", "{\"decoders\": [{\"form\": \"*\", \"register\": \"*\", \"adapters\": [{\"path\": 3}]}]}", "\"path\""},
        {"scale type", "{\"decoders\": [{\"form\": \"*\", \"register\": \"*\", \"adapters\": [{\"path\": \"a\", \"scale\": \"x\"}]}]}", "\"scale\""},
        {"duplicate", "{\"decoders\": [{\"form\": \"*\", \"register\": \"*\", \"adapters\": [{\"path\": \"a\"}]},"
                      "{\"form\": \"*\", \"register\": \"*\", \"adapters\": [{\"path\": \"b\"}]}]}", "duplicates"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hl_bundle *x = NULL;
        hl_status s = hl_bundle_parse(bad[i].json, strlen(bad[i].json), "b.json", "", &x, &err);
        CHECK_MSG(s != HL_OK && !x && strstr(err.msg, bad[i].substr), "bundle %s: \"%s\"", bad[i].label, err.msg);
        printf("bad bundle (%s): %s\n", bad[i].label, err.msg);
    }
    /* no entry for a pair */
    const char *partial = "{\"decoders\": [{\"form\": \"text\", \"register\": \"poetic\", \"adapters\": [{\"path\": \"a\"}]}]}";
    CHECK_OK(hl_bundle_parse(partial, strlen(partial), "b.json", "", &b, &err), &err);
    CHECK(hl_bundle_lookup(b, HL_FORM_REPORT, HL_REGISTER_POETIC, &paths, &scales, &n, &err) == HL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "report") != NULL);
    hl_bundle_free(b);
}

static void test_edit_distance(void) {
    int64_t lb;
    CHECK(hl_utf8_edit_distance("тишина", "тишина", &lb) == 0 && lb == 6);
    CHECK(hl_utf8_edit_distance("тишна", "тишина", &lb) == 1);
    CHECK(hl_utf8_edit_distance("", "🜂⟁", &lb) == 2 && lb == 2);
    CHECK(hl_utf8_edit_distance("kitten", "sitting", &lb) == 3);
}

int main(void) {
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &g_model, &err), &err);
    REQUIRE(g_model);
    hl_lexicon *lex = load(LEX, &err);
    CHECK_MSG(lex != NULL, "lexicon: %s", err.msg);
    REQUIRE(lex);
    CHECK(hl_lexicon_n_entries(lex) == 4);
    test_atomic(lex);
    test_composition(lex, 0);
    test_compose_rule(lex);
    test_order_rules();
    test_base_untouched(lex);
    test_scene_format(lex);
    test_adapter_carries_lexicon(lex);
    test_bad_lexicons();
    test_many_entries();
    test_bundles();
    test_edit_distance();
    hl_lexicon_free(lex);
    hl_model_free(g_model);
    return hl_test_finish("test_lexicon");
}
