/* test_alloc_failures.c: SQLite-style fault injection. For each operation,
 * k = 0, 1, 2, ...: make the (k+1)-th allocation from now fail (and every
 * one after it: the injector stays tripped), run the operation, and require
 * a clean refusal: a status other than HL_OK, a non-empty message, nothing
 * handed out, and (under the sanitized suite's LeakSanitizer) nothing
 * leaked. The loop ends at the first k whose run allocates fewer than k+1
 * times, i.e. succeeds with no injected failure; that run must succeed.
 * A run that succeeds although an allocation failed would mean a failure was
 * swallowed; that is an error too.
 *
 * Operations: model load (GGUF, and llama2.c .bin + tokenizer.bin), context
 * init, adapter load (GGUF and PEFT), lexicon load, dataset load, trainer +
 * AdamW init, checkpoint save and load; and over a quantized base (Q4_K_M):
 * model load, context init + one eval, LoRA trainer init, and quantize
 * (which must leave neither its output nor a temp file behind). */
#include "hyperlora.h"
#include "lora/adapter_io.h"
#include "lora/create.h"
#include "model/context.h"
#include "model/model.h"
#include "model/quantize_model.h"
#include "hyperlexeme/lexicon.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#define MAX_K 100000 /* a guard: no operation here allocates nearly this often */

static hl_model *g_model; /* stories260K GGUF, loaded without injection */
static char tmpdir[64];

/* One operation under test: returns its status; on HL_OK it has released
 * everything it made (the loop only cares about the status and leaks). */
typedef hl_status (*op_fn)(void *user, hl_error *err);

static void run_op(const char *name, op_fn fn, void *user) {
    long k = 0;
    int refusals = 0, non_nomem = 0;
    for (; k < MAX_K; k++) {
        hl_error err;
        memset(&err, 0, sizeof err);
        hl_alloc_fail_after(k);
        hl_status s = fn(user, &err);
        long injected = hl_alloc_failures();
        hl_alloc_fail_after(-1);
        if (injected == 0) {
            CHECK_MSG(s == HL_OK, "%s: fails with no injected failure (k=%ld): %s: %s", name, k, hl_status_name(s),
                      err.msg);
            break;
        }
        CHECK_MSG(s != HL_OK, "%s: k=%ld: succeeded although allocation %ld failed (swallowed)", name, k, k + 1);
        if (s == HL_OK) continue;
        refusals++;
        CHECK_MSG(err.msg[0] != 0, "%s: k=%ld: %s without a message", name, k, hl_status_name(s));
        if (s != HL_ERR_NOMEM) {
            /* Tolerated (the error is clean), but reported: an OOM shown as another status misleads. */
            if (non_nomem++ < 3) printf("  note: %s: k=%ld: out of memory reported as %s: %s\n", name, k,
                                        hl_status_name(s), err.msg);
        }
    }
    CHECK_MSG(k < MAX_K, "%s: never succeeded", name);
    printf("%-28s %5ld allocations, %5d clean refusals (%d not HL_ERR_NOMEM)\n", name, k, refusals, non_nomem);
}

/* ------------------------------------------------------------ operations */

typedef struct {
    const char *path, *tok;
} load_args;

static hl_status op_model_load(void *user, hl_error *err) {
    load_args *a = user;
    hl_model *m = (hl_model *)err; /* must be reset to NULL on failure */
    hl_status s = hl_model_load(a->path, a->tok, &m, err);
    if (s == HL_OK) hl_model_free(m);
    else CHECK(m == NULL);
    return s;
}

static hl_status op_context_init(void *user, hl_error *err) {
    (void)user;
    hl_context *ctx = NULL;
    hl_context_params p = {.n_ctx = 64, .n_threads = 2};
    hl_status s = hl_context_init(g_model, &p, &ctx, err);
    if (s == HL_OK) hl_context_free(ctx);
    else CHECK(ctx == NULL);
    return s;
}

/* hl_aligned_calloc: aligned, zeroed, overflow refused, and an injected
 * failure is a NULL; a context's activations and caches come from it. */
static void aligned_calloc_checks(void) {
    for (size_t n = 1; n <= 4097; n = n * 3 + 1) {
        unsigned char *p = hl_aligned_calloc(n, 3);
        REQUIRE(p);
        CHECK((uintptr_t)p % HL_VECTOR_ALIGN == 0);
        size_t nonzero = 0;
        for (size_t i = 0; i < n * 3; i++) nonzero += p[i] != 0;
        CHECK(nonzero == 0);
        memset(p, 0xff, n * 3); /* the whole size is usable (ASan checks the bounds) */
        hl_aligned_free(p);
    }
    CHECK(hl_aligned_calloc(SIZE_MAX / 2, 4) == NULL);
    CHECK(hl_aligned_calloc(1, SIZE_MAX - 8) == NULL);
    hl_aligned_free(NULL);
    hl_alloc_fail_after(0);
    CHECK(hl_aligned_calloc(4, 4) == NULL);
    CHECK(hl_alloc_failures() == 1);
    hl_alloc_fail_after(-1);

    hl_context *ctx = NULL;
    hl_context_params cp = {.n_ctx = 64, .n_threads = 2};
    hl_error err = {0};
    CHECK_OK(hl_context_init(g_model, &cp, &ctx, &err), &err);
    REQUIRE(ctx);
    const float *bufs[] = {ctx->kcache, ctx->vcache, ctx->x, ctx->xb, ctx->q, ctx->att, ctx->hb, ctx->hb2, ctx->proj};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        CHECK_MSG((uintptr_t)bufs[i] % HL_VECTOR_ALIGN == 0, "context buffer %zu is not 64-byte aligned", i);
    hl_context_free(ctx);
}

/* The mapping of /proc/self/smaps that holds p: its THPeligible flag (1 or
 * 0), or -1 when it cannot be read. */
static int thp_eligible(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0, flag = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && sscanf(line, "THPeligible: %d", &flag) == 1) break;
    }
    fclose(f);
    return flag;
}

/* 1 when the kernel gives transparent huge pages to madvised mappings. */
static int thp_on_request(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char line[128] = {0};
    const int ok = fgets(line, sizeof line, f) && (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    return ok;
}

/* hl_huge_calloc (KV caches): small blocks as hl_aligned_calloc; from
 * HL_HUGE_MIN on Linux, zeroed, on 2 MiB boundaries, usable to the last
 * byte and marked for huge pages where the kernel offers them; overflow
 * and an injected failure refused. */
static void huge_calloc_checks(void) {
    size_t mapped = 1;
    float *small = hl_huge_calloc(100, sizeof(float), &mapped);
    REQUIRE(small);
    CHECK(mapped == 0 && (uintptr_t)small % HL_VECTOR_ALIGN == 0 && small[0] == 0 && small[99] == 0);
    hl_huge_free(small, mapped);
    const size_t n = HL_HUGE_MIN + 12345; /* not a whole number of huge pages */
    unsigned char *p = hl_huge_calloc(n, 1, &mapped);
    REQUIRE(p);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i += 4093) nonzero += p[i] != 0;
    nonzero += p[n - 1] != 0;
    CHECK(nonzero == 0);
    memset(p, 0xa5, n);
#if defined(__linux__)
    CHECK_MSG(mapped >= n && mapped % ((size_t)2 << 20) == 0 && (uintptr_t)p % ((size_t)2 << 20) == 0,
              "a %zu-byte cache: %zu bytes mapped at %p, not whole huge pages", n, mapped, (void *)p);
    const int eligible = thp_eligible(p);
    if (thp_on_request() && eligible >= 0)
        CHECK_MSG(eligible == 1, "a %zu-byte cache is not eligible for transparent huge pages", n);
    printf("  hl_huge_calloc: %zu bytes, %zu mapped, THPeligible %d (huge pages on request: %d)\n", n, mapped, eligible,
           thp_on_request());
#endif
    CHECK_MSG(hl_huge_bytes(n) == mapped, "hl_huge_bytes(%zu) = %zu, but %zu were mapped", n, hl_huge_bytes(n), mapped);
    CHECK(hl_huge_bytes(100) == 100);
    hl_huge_free(p, mapped);
    CHECK(hl_huge_calloc(SIZE_MAX / 2, 4, &mapped) == NULL && mapped == 0);
    hl_alloc_fail_after(0);
    CHECK(hl_huge_calloc(HL_HUGE_MIN, 1, &mapped) == NULL && mapped == 0);
    CHECK(hl_alloc_failures() == 1);
    hl_alloc_fail_after(-1);
}

static hl_status op_adapter_load(void *user, hl_error *err) {
    hl_adapter *a = NULL;
    hl_status s = hl_adapter_load(user, g_model, 0, &a, err);
    if (s == HL_OK) hl_adapter_free(a);
    else CHECK(a == NULL);
    return s;
}

static const char *LEXICON =
    "{\"lexeme\": \"\xCE\x94" "21\", \"parts\": [\"rain\", \"door\", \"fear\"], \"facets\": {\"tone\": \"fear\"}}\n"
    "\n"
    "{\"lexeme\": \"stormgatejoy\", \"parts\": [\"storm\", \"gate\", \"joy\"], \"weights\": [1, 2, 1]}\n";

static hl_status op_lexicon_load(void *user, hl_error *err) {
    (void)user;
    hl_lexicon *lex = NULL;
    hl_status s = hl_lexicon_load_memory(LEXICON, strlen(LEXICON), "lex.jsonl", g_model, &lex, err);
    if (s == HL_OK) hl_lexicon_free(lex);
    else CHECK(lex == NULL);
    return s;
}

static const char *DATA = "{\"text\": \"Once upon a time there was a little dog.\"}\n"
                          "{\"prompt\": \"Lily said\", \"completion\": \" hello to the cat.\"}\n"
                          "\n"
                          "{\"text\": \"The sun was warm and the girl was happy.\"}\n"
                          "{\"text\": \"He ran to the park to play.\"}\n";

static hl_status op_dataset_load(void *user, hl_error *err) {
    const int *pack = user;
    hl_dataset_params p = {.ctx = 8, .pack = *pack, .val_fraction = 0.25f, .seed = 7};
    hl_dataset *ds = NULL;
    hl_status s = hl_dataset_load_memory(DATA, strlen(DATA), "data.jsonl", hl_model_get_tokenizer(g_model), &p, &ds, err);
    if (s == HL_OK) hl_dataset_free(ds);
    else CHECK(ds == NULL);
    return s;
}

static hl_status op_trainer_init(void *user, hl_error *err) {
    hl_adapter *ad = user;
    hl_trainer_params tp = {.batch = 2, .ctx = 16, .n_threads = 2, .dropout = 0.1f, .seed = 3};
    hl_trainer *tr = NULL;
    hl_adamw opt;
    memset(&opt, 0, sizeof opt);
    hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    hl_status s = hl_trainer_init(g_model, ad, &tp, &tr, err);
    if (s == HL_OK) s = hl_adamw_init(&opt, &ap, tr, err);
    hl_adamw_free(&opt);
    hl_trainer_free(tr);
    return s;
}

/* Quantized base: a context, and a prompt through it. */
static hl_status op_quant_context_eval(void *user, hl_error *err) {
    const hl_model *m = user;
    hl_context *ctx = NULL;
    hl_context_params p = {.n_ctx = 16, .n_threads = 2};
    hl_status s = hl_context_init(m, &p, &ctx, err);
    if (s != HL_OK) {
        CHECK(ctx == NULL);
        return s;
    }
    const int32_t ids[4] = {1, 300, 42, 7};
    float *logits = malloc(sizeof(float) * (size_t)hl_model_get_config(m)->vocab_size); /* not injected */
    REQUIRE(logits);
    s = hl_context_eval(ctx, ids, 4, 0, logits, 0, err);
    free(logits);
    hl_context_free(ctx);
    return s;
}

typedef struct { const hl_model *m; hl_adapter *ad; } qtrain_args;

static hl_status op_quant_trainer_init(void *user, hl_error *err) {
    qtrain_args *a = user;
    hl_trainer_params tp = {.batch = 1, .ctx = 16, .n_threads = 2, .seed = 3};
    hl_trainer *tr = NULL;
    hl_status s = hl_trainer_init(a->m, a->ad, &tp, &tr, err);
    hl_trainer_free(tr);
    return s;
}

static int temp_files_left(void);

static hl_status op_quantize(void *user, hl_error *err) {
    char out[128];
    snprintf(out, sizeof out, "%s/q.gguf", tmpdir);
    unlink(out);
    hl_status s = hl_model_quantize_file(user, out, HL_TYPE_Q4_K, err);
    CHECK_MSG(temp_files_left() == 0, "quantize left a temp file (%s)", hl_status_name(s));
    if (s != HL_OK) CHECK_MSG(access(out, F_OK) != 0, "a failed quantize left %s", out);
    unlink(out);
    return s;
}

typedef struct {
    hl_trainer *tr, *tr2; /* tr2/opt2: where loads go, built for the same settings */
    hl_adamw *opt, *opt2;
    const char *path;
} ckpt_args;

static const char *CONFIG = "test config: rank=2 ctx=16";

/* No temp file may be left next to the checkpoint after a failed save. */
static int temp_files_left(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static hl_status op_checkpoint_save(void *user, hl_error *err) {
    ckpt_args *a = user;
    hl_checkpoint_state st = {.step = 5, .tokens = 160, .cursor = {1, 3}, .config = CONFIG,
                              .base_fingerprint = hl_model_fingerprint(g_model)};
    hl_rng_seed(&st.rng, 11);
    unlink(a->path);
    hl_status s = hl_checkpoint_save(a->path, a->tr, a->opt, &st, err);
    CHECK_MSG(temp_files_left() == 0, "checkpoint save left a temp file (%s)", hl_status_name(s));
    if (s != HL_OK) CHECK_MSG(access(a->path, F_OK) != 0, "a failed checkpoint save left %s", a->path);
    return s;
}

static hl_status op_checkpoint_load(void *user, hl_error *err) {
    ckpt_args *a = user;
    hl_checkpoint_state st;
    memset(&st, 0, sizeof st);
    char *config = NULL;
    hl_status s = hl_checkpoint_load(a->path, a->tr2, a->opt2, &st, &config, err);
    if (s == HL_OK) {
        CHECK(st.step == 5 && st.tokens == 160 && st.cursor.epoch == 1 && st.cursor.index == 3);
        CHECK(config && !strcmp(config, CONFIG));
        hl_param p = hl_trainer_param(a->tr, 0), q = hl_trainer_param(a->tr2, 0);
        CHECK(p.n == q.n && !memcmp(p.value, q.value, (size_t)p.n * sizeof(float)));
    } else CHECK(config == NULL);
    hl_free(config);
    return s;
}

/* Full-parameter (pretraining) setup on a small random model. */
static hl_status op_trainer_init_full(void *user, hl_error *err) {
    hl_model *m = user;
    hl_trainer_params tp = {.full = 1, .batch = 2, .ctx = 16, .n_threads = 2};
    hl_trainer *tr = NULL;
    hl_adamw opt;
    memset(&opt, 0, sizeof opt);
    hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    hl_status s = hl_trainer_init(m, NULL, &tp, &tr, err);
    if (s == HL_OK) s = hl_adamw_init(&opt, &ap, tr, err);
    hl_adamw_free(&opt);
    hl_trainer_free(tr);
    return s;
}

int main(void) {
    hl_error err = {0};
    const char *gguf = shared_path("models/stories260K/stories260K-f32.gguf");
    load_args la_gguf = {gguf, NULL};
    load_args la_bin = {shared_path("models/stories260K/stories260K.bin"), shared_path("models/stories260K/tok512.bin")};
    CHECK_OK(hl_model_load(gguf, NULL, &g_model, &err), &err);
    REQUIRE(g_model);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hl_alloc_XXXXXX");
    REQUIRE(mkdtemp(tmpdir));

    aligned_calloc_checks();
    huge_calloc_checks();
    run_op("model load (GGUF)", op_model_load, &la_gguf);
    run_op("model load (llama2.c .bin)", op_model_load, &la_bin);
    run_op("context init", op_context_init, NULL);
    run_op("adapter load (GGUF)", op_adapter_load, (void *)shared_path("oracle/llamacpp/random_lora_r4.gguf"));
    run_op("adapter load (PEFT rsLoRA)", op_adapter_load, (void *)shared_path("oracle/peft_hf/rslora"));
    run_op("lexicon load", op_lexicon_load, NULL);
    int pack = 1, nopack = 0;
    run_op("dataset load (packed)", op_dataset_load, &pack);
    run_op("dataset load (padded)", op_dataset_load, &nopack);

    /* Training setup on a fresh adapter (made without injection). */
    uint32_t targets;
    CHECK_OK(hl_parse_targets("q,k,v,o,gate,up,down,output", &targets, &err), &err);
    hl_adapter_spec spec = {.name = "alloc-test", .targets = targets, .rank = 2, .alpha = 4, .seed = 1};
    hl_adapter *ad = NULL;
    CHECK_OK(hl_adapter_create(g_model, &spec, &ad, &err), &err);
    REQUIRE(ad);
    run_op("trainer + AdamW init", op_trainer_init, ad);

    hl_model *rnd = NULL;
    hl_model_config rc = {.dim = 16, .hidden_dim = 32, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .seq_len = 32};
    CHECK_OK(hl_model_init_random(&rc, shared_path("models/stories260K/tok512.bin"), 5, &rnd, &err), &err);
    REQUIRE(rnd);
    run_op("trainer + AdamW init (full)", op_trainer_init_full, rnd);
    hl_model_free(rnd);

    /* Checkpoints: saved from one trainer, loaded into a second built alike. */
    hl_adapter *ad2 = NULL;
    CHECK_OK(hl_adapter_create(g_model, &spec, &ad2, &err), &err);
    REQUIRE(ad2);
    hl_trainer *tr = NULL, *tr2 = NULL;
    hl_trainer_params tp = {.batch = 2, .ctx = 16, .n_threads = 1};
    hl_adamw opt, opt2;
    memset(&opt, 0, sizeof opt);
    memset(&opt2, 0, sizeof opt2);
    hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK_OK(hl_trainer_init(g_model, ad, &tp, &tr, &err), &err);
    CHECK_OK(hl_adamw_init(&opt, &ap, tr, &err), &err);
    CHECK_OK(hl_trainer_init(g_model, ad2, &tp, &tr2, &err), &err);
    CHECK_OK(hl_adamw_init(&opt2, &ap, tr2, &err), &err);
    REQUIRE(tr && tr2);
    hl_trainer_param(tr, 0).value[0] = 0.125f; /* so a load visibly changes tr2 */
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", tmpdir);
    ckpt_args ca = {tr, tr2, &opt, &opt2, ckpt};
    run_op("checkpoint save", op_checkpoint_save, &ca);
    REQUIRE(access(ckpt, F_OK) == 0); /* the last, uninjected save wrote it */
    run_op("checkpoint load", op_checkpoint_load, &ca);

    /* Quantized bases. */
    const char *q4km = shared_path("oracle/llamacpp/quant/models/q256-Q4_K_M.gguf");
    load_args la_q = {q4km, NULL};
    run_op("model load (Q4_K_M)", op_model_load, &la_q);
    hl_model *qm = NULL;
    CHECK_OK(hl_model_load(q4km, NULL, &qm, &err), &err);
    REQUIRE(qm);
    run_op("context init + eval (Q4_K_M)", op_quant_context_eval, qm);
    hl_adapter *qad = NULL;
    CHECK_OK(hl_adapter_create(qm, &spec, &qad, &err), &err);
    REQUIRE(qad);
    qtrain_args qa = {qm, qad};
    run_op("LoRA trainer init (Q4_K_M)", op_quant_trainer_init, &qa);
    hl_adapter_free(qad);
    hl_model_free(qm);
    run_op("quantize (f32 -> q4_K)", op_quantize, (void *)shared_path("oracle/llamacpp/quant/models/q256-f32.gguf"));

    unlink(ckpt);
    rmdir(tmpdir);
    hl_adamw_free(&opt);
    hl_adamw_free(&opt2);
    hl_trainer_free(tr);
    hl_trainer_free(tr2);
    hl_adapter_free(ad);
    hl_adapter_free(ad2);
    hl_model_free(g_model);
    return hl_test_finish("test_alloc_failures");
}
