/* test_scheduler_prefill.c: prompts in the shared pass. New requests
 * (prompts of different lengths, one longer than a context's chunk, one
 * with scene vectors, different adapters and samplers) start in the same
 * step as other sequences' decoding tokens, under several prompt row
 * budgets (whole prompts, chunks of 1, 16, 128 or 200 rows per step), at 1
 * and 2 threads; each sequence's tokens must be the ones hl_generate gives
 * it alone. And a prompt evaluated in chunks gives the logits of one
 * evaluated at once, bit for bit (what chunked prefill relies on). */
#include "hyperlora.h"
#include "infer/scheduler.h"
#include "lora/adapter.h"
#include "util/alloc.h"
#include "test_util.h"

#define N_SPEC 6
#define N_PRED 24
#define N_VEC 3
#define LATE 3 /* the new requests join after this many steps */

typedef struct {
    int32_t len;   /* prompt tokens: 0 = the text's, else made up */
    const char *text;
    int vectors;   /* the scene vectors -1..-N_VEC before the text */
    int adapter;
    float scale, temp;
    uint64_t seed;
    int late;      /* joins after LATE steps, while the others decode */
} spec;

static const spec specs[N_SPEC] = {
    {0, "Once upon a time", 0, 0, 0, 0, 0, 0},
    {0, "The little dog", 0, 1, 1.0f, 0.8f, 7, 0},
    {300, NULL, 0, 1, 1.0f, 0, 0, 1},            /* three chunks of a context's 128 */
    {0, "Lily", 0, 1, -0.7f, 1.0f, 42, 1},
    {0, "The little dog", 1, 1, 0.5f, 0, 0, 1},   /* scene vectors first */
    {150, NULL, 0, 0, 0, 0.9f, 3, 1},
};

static float vectors[N_VEC * 64];

static int32_t *prompt_of(const hl_model *m, const spec *sp, int32_t *n) {
    int32_t *ids = hl_malloc_array(512, sizeof(int32_t));
    REQUIRE(ids);
    const int32_t V = hl_model_get_config(m)->vocab_size;
    if (sp->len) {
        ids[0] = hl_tokenizer_bos(hl_model_get_tokenizer(m));
        for (int32_t i = 1; i < sp->len; i++) ids[i] = 3 + (int32_t)((i * 37 + 11) % (V - 3));
        *n = sp->len;
        return ids;
    }
    int32_t *text = NULL;
    size_t nt = 0;
    hl_error err = {0};
    REQUIRE(hl_tokenizer_encode(hl_model_get_tokenizer(m), sp->text, strlen(sp->text), 1, 0, &text, &nt, &err) == HL_OK);
    int32_t k = 0;
    for (int32_t v = 0; sp->vectors && v < N_VEC; v++) ids[k++] = -v - 1;
    for (size_t i = 0; i < nt; i++) ids[k++] = text[i];
    hl_free(text);
    *n = k;
    return ids;
}

static hl_sampler_params sampler_of(const spec *sp) {
    hl_sampler_params p = hl_sampler_default_params();
    p.temperature = sp->temp;
    p.seed = sp->seed;
    return p;
}

/* hl_generate alone on a context of its own. */
static int32_t alone(const hl_model *m, const hl_adapter *a, const spec *sp, int threads, int32_t *out) {
    hl_error err = {0};
    hl_context_params cp = hl_context_default_params();
    cp.n_threads = threads;
    hl_context *ctx = NULL;
    REQUIRE(hl_context_init(m, &cp, &ctx, &err) == HL_OK);
    if (sp->adapter) {
        const hl_adapter *set[1] = {a};
        REQUIRE(hl_context_set_adapters(ctx, set, &sp->scale, 1, &err) == HL_OK);
    }
    if (sp->vectors) REQUIRE(hl_context_set_scene_vectors(ctx, vectors, N_VEC, &err) == HL_OK);
    hl_sampler_params spar = sampler_of(sp);
    hl_sampler *smp = NULL;
    REQUIRE(hl_sampler_init(&spar, hl_model_get_config(m)->vocab_size, &smp, &err) == HL_OK);
    int32_t n = 0, np = 0;
    int32_t *ids = prompt_of(m, sp, &np);
    hl_generate_params gp = {.n_predict = N_PRED, .stop_at_eos = 1};
    CHECK_OK(hl_generate(ctx, smp, ids, np, &gp, NULL, NULL, out, &n, &err), &err);
    hl_free(ids);
    hl_sampler_free(smp);
    hl_context_free(ctx);
    return n;
}

static hl_seq *add(hl_sched *s, const hl_model *m, const hl_adapter *a, int i) {
    const spec *sp = &specs[i];
    int32_t np = 0;
    int32_t *ids = prompt_of(m, sp, &np);
    const hl_adapter *set[1] = {a};
    hl_seq_desc d = {.model = m, .adapters = set, .scales = &sp->scale, .n_adapters = sp->adapter,
                     .scene_vectors = sp->vectors ? vectors : NULL, .n_scene_vectors = sp->vectors ? N_VEC : 0,
                     .prompt = ids, .n_prompt = np, .n_predict = N_PRED, .stop_at_eos = 1, .sampler = sampler_of(sp)};
    hl_seq *q = NULL;
    hl_error err = {0};
    CHECK_OK(hl_sched_add(s, &d, NULL, &q, &err), &err);
    hl_free(ids);
    return q;
}

static int32_t n_tokens(const hl_seq *q) {
    int32_t n = 0;
    hl_seq_tokens(q, &n);
    return n;
}

static void mixed(const hl_model *m, const hl_adapter *a, int threads, int32_t budget, int32_t ref[N_SPEC][N_PRED],
                  const int32_t *ref_n) {
    hl_error err = {0};
    hl_sched_params p = {.n_threads = threads, .max_seqs = 8, .shared_base = 1, .max_prompt_rows = budget};
    hl_sched *s = NULL;
    REQUIRE(hl_sched_init(&p, &s, &err) == HL_OK);
    hl_seq *qs[N_SPEC] = {0};
    for (int i = 0; i < N_SPEC; i++)
        if (!specs[i].late) qs[i] = add(s, m, a, i);
    /* The new requests join once the first ones decode (after LATE steps at least). */
    int joined = 0;
    for (int step = 0; hl_sched_n_running(s) > 0 || !joined; step++) {
        int join = !joined && step >= LATE;
        for (int i = 0; i < N_SPEC; i++)
            if (!specs[i].late && n_tokens(qs[i]) == 0) join = 0;
        int32_t before[N_SPEC] = {0};
        if (join) {
            for (int i = 0; i < N_SPEC; i++)
                if (specs[i].late) qs[i] = add(s, m, a, i);
            for (int i = 0; i < N_SPEC; i++) {
                before[i] = n_tokens(qs[i]);
                if (!specs[i].late) CHECK(hl_seq_get_state(qs[i]) == HL_SEQ_RUNNING);
            }
            joined = 1;
        }
        CHECK_OK(hl_sched_step(s, &err), &err);
        if (join) {
            /* The decoding ones advanced in the step the prompts started in. */
            for (int i = 0; i < N_SPEC; i++)
                if (!specs[i].late) CHECK(n_tokens(qs[i]) == before[i] + 1);
            /* Whole prompts give their first token at once; a budget holds the later ones back. */
            for (int i = 2; i < N_SPEC; i++) CHECK(n_tokens(qs[i]) == (budget == 0));
        }
    }
    for (int i = 0; i < N_SPEC; i++) {
        int32_t n = 0;
        const int32_t *t = hl_seq_tokens(qs[i], &n);
        CHECK_MSG(n == ref_n[i] && !memcmp(t, ref[i], (size_t)n * sizeof *t),
                  "sequence %d (threads %d, prompt rows %d): %d tokens, alone %d", i, threads, budget, n, ref_n[i]);
        CHECK(hl_seq_get_state(qs[i]) == (n < N_PRED ? HL_SEQ_STOP_EOS : HL_SEQ_STOP_LENGTH));
    }
    hl_sched_free(s);
}

/* The last logits of a prompt evaluated at once, and in chunks of each size in turn. */
static void chunks(const hl_model *m, const hl_adapter *a) {
    hl_error err = {0};
    const int32_t V = hl_model_get_config(m)->vocab_size;
    int32_t np = 0;
    int32_t *ids = prompt_of(m, &specs[2], &np);
    float *once = hl_malloc_array((size_t)V, sizeof(float)), *part = hl_malloc_array((size_t)V, sizeof(float));
    REQUIRE(once && part);
    const int32_t sizes[] = {0, 1, 7, 64, 100, 128};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        hl_context_params cp = hl_context_default_params();
        cp.n_threads = 2;
        hl_context *ctx = NULL;
        REQUIRE(hl_context_init(m, &cp, &ctx, &err) == HL_OK);
        const hl_adapter *set[1] = {a};
        const float scale = 1.0f;
        REQUIRE(hl_context_set_adapters(ctx, set, &scale, 1, &err) == HL_OK);
        int32_t step = sizes[k] ? sizes[k] : np;
        for (int32_t at = 0; at < np; at += step) {
            int32_t t = np - at < step ? np - at : step;
            CHECK_OK(hl_context_eval(ctx, ids + at, t, at, k ? part : once, 0, &err), &err);
        }
        if (k) CHECK_MSG(!memcmp(once, part, (size_t)V * sizeof(float)), "chunks of %d: other logits", sizes[k]);
        hl_context_free(ctx);
    }
    hl_free(once);
    hl_free(part);
    hl_free(ids);
}

int main(void) {
    hl_error err = {0};
    hl_model *m = NULL;
    hl_adapter *a = NULL;
    REQUIRE(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &m, &err) == HL_OK);
    REQUIRE(hl_model_get_config(m)->dim == 64);
    REQUIRE(hl_adapter_load(shared_path("oracle/llamacpp/random_lora_r4.gguf"), m, 0, &a, &err) == HL_OK);
    for (int i = 0; i < N_VEC * 64; i++) vectors[i] = 0.5f * (float)((i * 13 + 5) % 17 - 8) / 8.0f;

    chunks(m, a);
    static int32_t ref[N_SPEC][N_PRED];
    int32_t ref_n[N_SPEC];
    for (int i = 0; i < N_SPEC; i++) {
        ref_n[i] = alone(m, a, &specs[i], 1, ref[i]);
        int32_t again[N_PRED];
        int32_t n2 = alone(m, a, &specs[i], 2, again);
        CHECK(n2 == ref_n[i] && !memcmp(again, ref[i], (size_t)n2 * sizeof *again));
        CHECK_MSG(ref_n[i] > 8, "sequence %d stops before the others join", i);
    }
    /* The scene vectors change the tokens, or their test would prove little. */
    CHECK(ref_n[1] != ref_n[4] || memcmp(ref[1], ref[4], (size_t)ref_n[1] * sizeof(int32_t)));
    const int32_t budgets[] = {0, 1, 16, 128, 200};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++) mixed(m, a, threads, budgets[b], ref, ref_n);

    hl_adapter_free(a);
    hl_model_free(m);
    return hl_test_finish("test_scheduler_prefill");
}
