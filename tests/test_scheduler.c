/* test_scheduler.c: batch invariance of the scheduler: each sequence's
 * tokens are the ones hl_generate gives it alone, whatever shares its steps
 * (other prompts, adapters, samplers, late arrivals), at 1, 2 or 3 threads,
 * each sequence on its own pass or the decoding ones sharing each base
 * product (shared_base);
 * and the KV cap and sequence cap refuse cleanly. */
#include "hyperlora.h"
#include "infer/scheduler.h"
#include "lora/create.h"
#include "lora/adapter.h"
#include "test_util.h"

#define N_SEQ 6
#define N_PRED 40

typedef struct {
    const char *prompt;
    int adapter;   /* 0: none, else the adapter at scale */
    float scale;
    float temp;
    uint64_t seed;
} seq_spec;

static const seq_spec specs[N_SEQ] = {
    {"Once upon a time", 0, 0, 0, 0},
    {"Once upon a time", 1, 1.0f, 0, 0},
    {"The little dog", 1, 0.5f, 0.8f, 7},
    {"Lily and Tom", 0, 0, 1.0f, 42},
    {"Once upon a time", 1, 1.0f, 0.9f, 3},
    {"One day", 1, -0.7f, 0, 0},
};

static int32_t *encode(const hl_model *m, const char *text, int32_t *n) {
    int32_t *ids = NULL;
    size_t ni = 0;
    hl_error err = {0};
    REQUIRE(hl_tokenizer_encode(hl_model_get_tokenizer(m), text, strlen(text), 1, 0, &ids, &ni, &err) == HL_OK);
    *n = (int32_t)ni;
    return ids;
}

/* Tokens of one spec alone, through hl_generate on a context of its own. */
static int32_t alone(const hl_model *m, const hl_adapter *a, const seq_spec *sp, int threads, int32_t *out) {
    hl_error err = {0};
    hl_context_params cp = hl_context_default_params();
    cp.n_threads = threads;
    hl_context *ctx = NULL;
    REQUIRE(hl_context_init(m, &cp, &ctx, &err) == HL_OK);
    if (sp->adapter) {
        const hl_adapter *set[1] = {a};
        REQUIRE(hl_context_set_adapters(ctx, set, &sp->scale, 1, &err) == HL_OK);
    }
    hl_sampler_params spar = hl_sampler_default_params();
    spar.temperature = sp->temp;
    spar.seed = sp->seed;
    hl_sampler *smp = NULL;
    REQUIRE(hl_sampler_init(&spar, hl_model_get_config(m)->vocab_size, &smp, &err) == HL_OK);
    int32_t n = 0, np = 0;
    int32_t *ids = encode(m, sp->prompt, &np);
    hl_generate_params gp = {.n_predict = N_PRED, .stop_at_eos = 1};
    CHECK_OK(hl_generate(ctx, smp, ids, np, &gp, NULL, NULL, out, &n, &err), &err);
    hl_free(ids);
    hl_sampler_free(smp);
    hl_context_free(ctx);
    return n;
}

static hl_seq *add(hl_sched *s, const hl_model *m, const hl_adapter *a, int i) {
    const seq_spec *sp = &specs[i];
    int32_t np = 0;
    int32_t *ids = encode(m, sp->prompt, &np);
    const hl_adapter *set[1] = {a};
    hl_seq_desc d = {.model = m, .adapters = set, .scales = &sp->scale, .n_adapters = sp->adapter ? 1 : 0,
                     .prompt = ids, .n_prompt = np, .n_predict = N_PRED, .stop_at_eos = 1,
                     .sampler = hl_sampler_default_params()};
    d.sampler.temperature = sp->temp;
    d.sampler.seed = sp->seed;
    hl_seq *q = NULL;
    hl_error err = {0};
    CHECK_OK(hl_sched_add(s, &d, (void *)(intptr_t)i, &q, &err), &err);
    hl_free(ids); /* the scheduler keeps its own copy */
    return q;
}

/* Runs all specs in one scheduler (the odd ones join after `late` steps) and compares with ref. */
static void batched(const hl_model *m, const hl_adapter *a, int threads, int late, int shared,
                    int32_t ref[N_SEQ][N_PRED], const int32_t *ref_n) {
    hl_error err = {0};
    hl_sched_params p = {.n_threads = threads, .max_seqs = 16, .kv_cap_bytes = 0, .shared_base = shared};
    hl_sched *s = NULL;
    REQUIRE(hl_sched_init(&p, &s, &err) == HL_OK);
    hl_seq *qs[N_SEQ] = {0};
    for (int i = 0; i < N_SEQ; i += late ? 2 : 1) qs[i] = add(s, m, a, i);
    int steps = 0;
    while (hl_sched_n_running(s) > 0 || (late && steps < late)) {
        if (late && steps == late)
            for (int i = 1; i < N_SEQ; i += 2) qs[i] = add(s, m, a, i);
        CHECK_OK(hl_sched_step(s, &err), &err);
        steps++;
    }
    CHECK(hl_sched_n_seqs(s) == N_SEQ);
    for (int i = 0; i < N_SEQ; i++) {
        REQUIRE(qs[i]);
        int32_t n = 0;
        const int32_t *t = hl_seq_tokens(qs[i], &n);
        CHECK_MSG(n == ref_n[i] && !memcmp(t, ref[i], (size_t)n * sizeof *t),
                  "sequence %d (threads %d, late %d, shared %d): %d tokens, alone %d", i, threads, late,
                  shared, n, ref_n[i]);
        CHECK(hl_seq_get_state(qs[i]) == (n < N_PRED ? HL_SEQ_STOP_EOS : HL_SEQ_STOP_LENGTH));
        CHECK((intptr_t)hl_seq_user(qs[i]) == i);
    }
    CHECK(hl_sched_kv_bytes(s) > 0);
    for (int i = 0; i < N_SEQ; i++) hl_sched_remove(s, qs[i]);
    CHECK(hl_sched_n_seqs(s) == 0 && hl_sched_kv_bytes(s) == 0);
    hl_sched_free(s);
}

/* References alone (at 1 and 2 threads), then every batched configuration up to max_threads. */
static void invariance(const hl_model *m, const hl_adapter *a, int32_t ref[N_SEQ][N_PRED], int32_t *ref_n,
                       int max_threads) {
    for (int i = 0; i < N_SEQ; i++) {
        ref_n[i] = alone(m, a, &specs[i], 1, ref[i]);
        int32_t again[N_PRED];
        int32_t n2 = alone(m, a, &specs[i], 2, again);
        CHECK(n2 == ref_n[i] && !memcmp(again, ref[i], (size_t)n2 * sizeof *again));
    }
    /* The specs must differ from each other, or sameness would prove little. */
    CHECK(ref_n[0] != ref_n[1] || memcmp(ref[0], ref[1], (size_t)ref_n[0] * sizeof(int32_t)));
    CHECK(ref_n[1] != ref_n[4] || memcmp(ref[1], ref[4], (size_t)ref_n[1] * sizeof(int32_t)));
    for (int threads = 1; threads <= max_threads; threads++)
        for (int late = 0; late <= 3; late += 3)
            for (int shared = 0; shared <= 1; shared++) batched(m, a, threads, late, shared, ref, ref_n);
}

int main(void) {
    hl_error err = {0};
    hl_model *m = NULL;
    hl_adapter *a = NULL;
    REQUIRE(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &m, &err) == HL_OK);
    REQUIRE(hl_adapter_load(shared_path("oracle/llamacpp/random_lora_r4.gguf"), m, 0, &a, &err) == HL_OK);

    static int32_t ref[N_SEQ][N_PRED];
    int32_t ref_n[N_SEQ];
    invariance(m, a, ref, ref_n, 3);
    /* Quantized bases (a k-quant mix and q8_0) with their adapter, through the same paths. */
    const char *qtypes[2] = {"Q4_K_M", "Q8_0"};
    for (int t = 0; t < 2; t++) {
        char rel[128];
        snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", qtypes[t]);
        hl_model *qm = NULL;
        hl_adapter *qa = NULL;
        REQUIRE(hl_model_load(shared_path(rel), NULL, &qm, &err) == HL_OK);
        REQUIRE(hl_adapter_load(shared_path("oracle/llamacpp/quant/models/q256-lora-r4.gguf"), qm, 0, &qa, &err) == HL_OK);
        static int32_t qref[N_SEQ][N_PRED];
        int32_t qref_n[N_SEQ];
        invariance(qm, qa, qref, qref_n, 2);
        hl_adapter_free(qa);
        hl_model_free(qm);
    }

    /* The other architectures (qwen2 biases, qwen3 q/k norms, Llama-3 frequency factors) decode one
     * context at a time even with the shared pass asked for, and still give the tokens alone. */
    static const struct { const char *model, *lora; } arch[] = {
        {"oracle/llamacpp/arch/qwen2_tiny.gguf", "lora_qwen2_tiny.gguf"},
        {"oracle/llamacpp/arch/qwen3_tiny.gguf", NULL},
        {"oracle/llamacpp/arch/llama3_tiny.gguf", "lora_llama3_tiny.gguf"}};
    for (size_t k = 0; k < sizeof arch / sizeof arch[0]; k++) {
        hl_model *am = NULL;
        hl_adapter *aa = NULL;
        REQUIRE(hl_model_load(shared_path(arch[k].model), NULL, &am, &err) == HL_OK);
        if (arch[k].lora) {
            char path[1024];
            snprintf(path, sizeof path, "%s/tests/data/%s", HL_SOURCE_DIR, arch[k].lora);
            REQUIRE(hl_adapter_load(path, am, 0, &aa, &err) == HL_OK);
        } else {
            hl_adapter_spec spec = {.name = "q3", .targets = (1u << HL_TARGET_Q) | (1u << HL_TARGET_V), .rank = 2,
                                    .alpha = 4, .init = HL_INIT_KAIMING, .seed = 9};
            CHECK_OK(hl_adapter_create(am, &spec, &aa, &err), &err);
            REQUIRE(aa);
            for (int32_t w = 0; w < aa->n_weights; w++) /* B != 0, so the adapter changes the tokens */
                for (int64_t e = 0; e < (int64_t)aa->w[w].n_out * aa->w[w].rank; e++)
                    aa->w[w].B[e] = 0.05f * (float)((e * 7 + w) % 5 - 2);
        }
        static int32_t aref[N_SEQ][N_PRED];
        int32_t aref_n[N_SEQ];
        invariance(am, aa, aref, aref_n, 2);
        hl_adapter_free(aa);
        hl_model_free(am);
    }

    /* A sequence alone runs its kernels on all the scheduler's threads: the same tokens. */
    for (int threads = 1; threads <= 3; threads++)
        for (int i = 0; i < N_SEQ; i += 2) {
            hl_sched_params p1 = {.n_threads = threads, .max_seqs = 4};
            hl_sched *s1 = NULL;
            REQUIRE(hl_sched_init(&p1, &s1, &err) == HL_OK);
            hl_seq *q = add(s1, m, a, i);
            while (hl_sched_n_running(s1) > 0) CHECK_OK(hl_sched_step(s1, &err), &err);
            int32_t n = 0;
            const int32_t *t = hl_seq_tokens(q, &n);
            CHECK_MSG(n == ref_n[i] && !memcmp(t, ref[i], (size_t)n * sizeof *t), "sequence %d alone at %d threads", i,
                      threads);
            hl_sched_free(s1);
        }

    /* Caps: the KV cap refuses a sequence that does not fit, and nothing changes. */
    int32_t np = 0;
    int32_t *ids = encode(m, "Once upon a time", &np);
    size_t one = hl_sched_kv_bytes_for(m, np + N_PRED - 1);
    hl_sched_params p = {.n_threads = 1, .max_seqs = 2, .kv_cap_bytes = one + one / 2};
    hl_sched *s = NULL;
    REQUIRE(hl_sched_init(&p, &s, &err) == HL_OK);
    hl_seq_desc d = {.model = m, .prompt = ids, .n_prompt = np, .n_predict = N_PRED, .stop_at_eos = 1,
                     .sampler = hl_sampler_default_params()};
    hl_seq *q1 = NULL, *q2 = NULL;
    CHECK_OK(hl_sched_add(s, &d, NULL, &q1, &err), &err);
    CHECK(hl_sched_add(s, &d, NULL, &q2, &err) == HL_ERR_LIMIT && q2 == NULL);
    CHECK(strstr(err.msg, "KV cache") != NULL);
    CHECK(hl_sched_kv_bytes(s) == one && hl_sched_n_seqs(s) == 1);
    hl_sched_remove(s, q1);
    CHECK_OK(hl_sched_add(s, &d, NULL, &q1, &err), &err);
    /* A request longer than the model's context is refused up front. */
    d.n_predict = hl_model_get_config(m)->seq_len;
    CHECK(hl_sched_add(s, &d, NULL, &q2, &err) == HL_ERR_LIMIT);
    hl_sched_free(s);
    /* The sequence cap. */
    p.kv_cap_bytes = 0;
    p.max_seqs = 1;
    d.n_predict = 4;
    REQUIRE(hl_sched_init(&p, &s, &err) == HL_OK);
    CHECK_OK(hl_sched_add(s, &d, NULL, &q1, &err), &err);
    CHECK(hl_sched_add(s, &d, NULL, &q2, &err) == HL_ERR_LIMIT);
    hl_sched_free(s);
    hl_free(ids);

    hl_adapter_free(a);
    hl_model_free(m);
    return hl_test_finish("test_scheduler");
}
