/* test_engine.c: the serving core (infer/engine.h) without HTTP: jobs
 * submitted from several threads at once decode as they do alone; an
 * adapter unloaded while a job uses it stays until the job ends; a released
 * job is cancelled and its KV cache freed; the adapter cap, the KV cap,
 * unknown names and invalid UTF-8 are refused with their statuses. Also the
 * UTF-8 helpers the server checks bodies and cuts streams with. */
#include "infer/engine.h"
#include "util/utf8.h"
#include "test_util.h"

#include <pthread.h>
#include <unistd.h>

#define N_JOBS 6

static const char *prompts[N_JOBS] = {"Once upon a time", "The little dog", "Lily and Tom",
                                      "Once upon a time", "One day", "The sun"};

static hl_job_desc desc_of(int i, hl_job_adapter *ad) {
    hl_job_desc d = {.kind = HL_JOB_TEXT, .prompt = prompts[i], .n_predict = 40, .stop_at_eos = 1,
                     .sampler = hl_sampler_default_params(), .use_adapters = 1};
    d.sampler.temperature = i % 2 ? 0.8f : 0.0f;
    d.sampler.seed = (uint64_t)i;
    *ad = (hl_job_adapter){.name = "r4", .scale = i % 3 ? 1.0f : 0.5f};
    d.adapters = ad;
    d.n_adapters = i == 3 ? 0 : 1;
    return d;
}

/* The job's whole text (waits for its end). */
static void text_of(hl_job *j, char *out, size_t cap) {
    int32_t n = 0;
    while (hl_job_get_state(j) < HL_JOB_DONE_EOS) n = hl_job_wait(j, n, -1);
    n = hl_job_wait(j, -1, 0);
    size_t len = 0;
    for (int32_t i = 0; i < n; i++) len += hl_job_piece(j, i, out + len, cap - len);
    out[len] = 0;
}

typedef struct {
    hl_engine *e;
    int i;
    char text[4096];
    hl_status st;
} worker;

static void *run_one(void *v) {
    worker *w = v;
    hl_job_adapter ad;
    hl_job_desc d = desc_of(w->i, &ad);
    hl_job *j = NULL;
    w->st = hl_engine_submit(w->e, &d, &j, NULL);
    if (w->st == HL_OK) {
        text_of(j, w->text, sizeof w->text);
        hl_job_release(j);
    }
    return NULL;
}

static void test_utf8(void) {
    size_t bad = 99;
    CHECK(hl_utf8_valid("", 0, NULL));
    CHECK(hl_utf8_valid("abc \xce\x94 \xe2\x82\xac \xf0\x9f\x98\x80", 15, NULL));
    CHECK(!hl_utf8_valid("ab\xc0\x80", 4, &bad) && bad == 2);         /* overlong NUL */
    CHECK(!hl_utf8_valid("\xed\xa0\x80", 3, &bad) && bad == 0);        /* a surrogate */
    CHECK(!hl_utf8_valid("\xf4\x90\x80\x80", 4, &bad) && bad == 0);    /* above U+10FFFF */
    CHECK(!hl_utf8_valid("a\xe2\x82", 3, &bad) && bad == 1);           /* cut short */
    CHECK(!hl_utf8_valid("\xff", 1, NULL));
    CHECK(hl_utf8_complete_prefix("a\xe2\x82", 3) == 1);                /* waits for the euro sign's end */
    CHECK(hl_utf8_complete_prefix("a\xe2\x82\xac", 4) == 4);
    CHECK(hl_utf8_complete_prefix("a\xf0\x9f", 3) == 1);
    CHECK(hl_utf8_complete_prefix("a\xff", 2) == 2);                    /* invalid bytes are not held back */
    CHECK(hl_utf8_complete_prefix("a\xed\xa0", 3) == 3);                /* nor a surrogate's start */
    char out[64];
    CHECK(hl_utf8_sanitize("a\xe2\x82\xac", 4, out) == 4 && !strcmp(out, "a\xe2\x82\xac")); /* valid: unchanged */
    CHECK(hl_utf8_sanitize("a\xff" "b", 3, out) == 5 && !strcmp(out, "a\xef\xbf\xbd" "b"));
    CHECK(hl_utf8_sanitize("a\xe2\x82", 3, out) == 7 && !strcmp(out, "a\xef\xbf\xbd\xef\xbf\xbd")); /* cut short */
    CHECK(hl_utf8_sanitize("\xed\xa0\x80", 3, out) == 9 && hl_utf8_valid(out, 9, NULL));      /* a surrogate */
    CHECK(hl_utf8_sanitize("", 0, out) == 0 && out[0] == 0);
    /* Three bytes of a four-byte character wait; three bytes that cannot start one do not. */
    CHECK(hl_utf8_complete_prefix("a\xf0\x9f\x98", 4) == 1);
    CHECK(hl_utf8_complete_prefix("a\xf4\x8f\xbf", 4) == 1);
    CHECK(hl_utf8_complete_prefix("a\xf0\x80\x90", 4) == 4);            /* overlong */
    CHECK(hl_utf8_complete_prefix("a\xf4\x90\x80", 4) == 4);            /* above U+10FFFF */
    /* The decoder's code points and defects. */
    uint32_t cp = 0;
    hl_utf8_defect d = HL_UTF8_OK;
    CHECK(hl_utf8_decode((const uint8_t *)"\xf0\x9f\x98\x80", 4, &cp, &d) == 4 && cp == 0x1F600);
    CHECK(hl_utf8_decode((const uint8_t *)"\xce\x94", 2, &cp, &d) == 2 && cp == 0x394);
    CHECK(hl_utf8_decode((const uint8_t *)"\x80", 1, &cp, &d) == 0 && d == HL_UTF8_STRAY_CONTINUATION);
    CHECK(hl_utf8_decode((const uint8_t *)"\xe2\x82", 2, &cp, &d) == 0 && d == HL_UTF8_CUT_SHORT);
    CHECK(hl_utf8_decode((const uint8_t *)"\xe2\x41\xac", 3, &cp, &d) == 0 && d == HL_UTF8_MISSING_CONTINUATION);
    CHECK(hl_utf8_decode((const uint8_t *)"\xf8\x80", 2, &cp, &d) == 0 && d == HL_UTF8_BAD_LEAD);
}

int main(void) {
    test_utf8();
    hl_error err = {0};
    hl_engine *e = NULL;
    const char *r4 = shared_path("oracle/llamacpp/random_lora_r4.gguf");
    hl_engine_params p = {.model_path = shared_path("models/stories260K/stories260K-f32.gguf"), .n_threads = 2,
                          .max_seqs = 16, .max_adapters = 2, .kv_cap_bytes = 400000};
    REQUIRE(hl_engine_init(&p, &e, &err) == HL_OK);
    CHECK_OK(hl_engine_adapter_load(e, "r4", r4, &err), &err);
    CHECK(hl_engine_adapter_load(e, "r4", r4, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "already"));
    CHECK(hl_engine_adapter_load(e, "a/b", r4, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_engine_adapter_load(e, "stories260K-f32.gguf", r4, &err) == HL_ERR_INVALID_ARG);
    CHECK(hl_engine_adapter_load(e, "missing", "/nonexistent.gguf", &err) == HL_ERR_IO);
    CHECK_OK(hl_engine_adapter_load(e, "r4x", r4, &err), &err);
    CHECK(hl_engine_adapter_load(e, "third", r4, &err) == HL_ERR_LIMIT);

    /* Alone, one after another; then all at once from their own threads. */
    static worker alone[N_JOBS], together[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        alone[i] = (worker){.e = e, .i = i};
        run_one(&alone[i]);
        CHECK_OK(alone[i].st, &err);
        CHECK(strlen(alone[i].text) > 20);
    }
    CHECK(strcmp(alone[0].text, alone[3].text)); /* adapter or not: the cases differ */
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        together[i] = (worker){.e = e, .i = i};
        REQUIRE(pthread_create(&th[i], NULL, run_one, &together[i]) == 0);
    }
    for (int i = 0; i < N_JOBS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_JOBS; i++)
        CHECK_MSG(together[i].st == HL_OK && !strcmp(alone[i].text, together[i].text), "job %d: \"%s\" vs \"%s\"", i,
                  alone[i].text, together[i].text);

    /* Unloading an adapter a job holds: the name goes at once, the job ends with it. */
    hl_job_adapter ad = {.name = "r4x", .scale = 1.0f};
    hl_job_desc d = {.kind = HL_JOB_TEXT, .prompt = "Once upon a time", .n_predict = 200, .stop_at_eos = 0,
                     .sampler = hl_sampler_default_params(), .adapters = &ad, .n_adapters = 1, .use_adapters = 1};
    hl_job *j = NULL, *k = NULL;
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err);
    CHECK_OK(hl_engine_adapter_unload(e, "r4x", &err), &err);
    hl_engine_adapter_info info[4];
    CHECK(hl_engine_adapters(e, info, 4) == 1 && !strcmp(info[0].name, "r4"));
    CHECK(hl_engine_submit(e, &d, &k, &err) == HL_ERR_NOT_FOUND && k == NULL && strstr(err.msg, "r4x"));
    static char held[8192], fresh[8192];
    text_of(j, held, sizeof held);
    CHECK(hl_job_get_state(j) == HL_JOB_DONE_LENGTH);
    hl_job_release(j);
    ad.name = "r4";
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err);
    text_of(j, fresh, sizeof fresh);
    hl_job_release(j);
    CHECK(strlen(held) > 200 && !strcmp(held, fresh));
    CHECK(hl_engine_adapter_unload(e, "r4x", &err) == HL_ERR_NOT_FOUND);

    /* A released job is cancelled and its KV cache given back. */
    hl_engine_stats st;
    hl_engine_get_stats(e, &st);
    uint64_t cancelled = st.jobs_cancelled;
    d.n_predict = 300;
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err);
    hl_job_wait(j, 0, -1);
    hl_job_release(j);
    for (int t = 0; t < 200; t++) {
        hl_engine_get_stats(e, &st);
        if (st.running == 0 && st.pending == 0) break;
        usleep(10000);
    }
    CHECK(st.running == 0 && st.kv_bytes == 0);
    CHECK(st.jobs_cancelled == cancelled + 1);

    /* The KV cap: the job is refused when admitted, with HL_ERR_LIMIT. */
    d.n_predict = 400;
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err);
    hl_job_wait(j, 0, -1);
    CHECK(hl_job_get_state(j) == HL_JOB_FAILED && hl_job_status(j, &err) == HL_ERR_LIMIT && strstr(err.msg, "KV"));
    hl_job_release(j);
    /* Invalid UTF-8 and a prompt past the context are refused at submit. */
    d.n_predict = 4;
    d.prompt = "bad \xff byte";
    CHECK(hl_engine_submit(e, &d, &j, &err) == HL_ERR_INVALID_ARG);
    static char longp[20000];
    for (int i = 0; i < 1000; i++) strcat(longp, "dog ");
    d.prompt = longp;
    CHECK(hl_engine_submit(e, &d, &j, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "context"));
    /* A scene job without any lexicon. */
    hl_job_desc sd = {.kind = HL_JOB_SCENE, .scene = "Δ21", .n_predict = 4, .sampler = hl_sampler_default_params()};
    CHECK(hl_engine_submit(e, &sd, &j, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "lexicon"));
    hl_engine_get_stats(e, &st);
    CHECK(st.jobs_done >= 2 * N_JOBS + 2 && st.generated_tokens > 400 && st.adapters == 1);
    hl_engine_free(e);

    /* With evict, loading past the cap unloads the least recently used adapter no job holds. */
    p.evict = 1;
    p.kv_cap_bytes = 0;
    REQUIRE(hl_engine_init(&p, &e, &err) == HL_OK);
    CHECK_OK(hl_engine_adapter_load(e, "a", r4, &err), &err);
    CHECK_OK(hl_engine_adapter_load(e, "b", r4, &err), &err);
    ad = (hl_job_adapter){.name = "a", .scale = 1.0f};
    d.prompt = "Once upon a time";
    d.n_predict = 8;
    d.adapters = &ad;
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err); /* "a" is now the more recent */
    text_of(j, held, sizeof held);
    hl_job_release(j);
    CHECK_OK(hl_engine_adapter_load(e, "c", r4, &err), &err);
    CHECK(hl_engine_adapters(e, info, 4) == 2 && !strcmp(info[0].name, "a") && !strcmp(info[1].name, "c"));
    /* Both in use: nothing to evict. */
    d.n_predict = 400;
    d.stop_at_eos = 0;
    hl_job_adapter both[2] = {{.name = "a", .scale = 1.0f}, {.name = "c", .scale = 0.5f}};
    d.adapters = both;
    d.n_adapters = 2;
    CHECK_OK(hl_engine_submit(e, &d, &j, &err), &err);
    CHECK(hl_engine_adapter_load(e, "d", r4, &err) == HL_ERR_LIMIT && strstr(err.msg, "in use"));
    hl_job_release(j);
    hl_engine_free(e);
    return hl_test_finish("test_engine");
}
