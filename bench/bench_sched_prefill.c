/* bench_sched_prefill.c MODEL [PROMPT_ROWS [ROUNDS]]: process CPU time of
 * scheduler steps (1 thread, shared_base, greedy, no adapters), where
 * prompts join the shared pass:
 *
 *   A  32 prompts of 6 tokens start together: CPU time of that first step
 *      (time to first token of all 32), then 63 more tokens each (generated
 *      tokens per CPU second over all the steps).
 *   B  16 sequences decoding; 8 prompts of 200 tokens join: CPU time and
 *      steps until the last of them has its first token (with PROMPT_ROWS
 *      the prompts go in chunks beside the decoding rows).
 *
 * CPU time rather than wall time, so that a shared machine skews it less.
 * Made for a random s15M (hyperlora init-model --preset s15M). */
#include "hyperlora.h"
#include "infer/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static hl_seq *add(hl_sched *s, const hl_model *m, int32_t np, int32_t npred, int k) {
    int32_t ids[256];
    ids[0] = 1;
    for (int32_t i = 1; i < np; i++) ids[i] = 100 + (i * 37 + k * 11) % 3000;
    hl_seq_desc d = {.model = m, .prompt = ids, .n_prompt = np, .n_predict = npred,
                     .sampler = hl_sampler_default_params()};
    d.sampler.temperature = 0;
    hl_seq *q = NULL;
    hl_error err = {0};
    if (hl_sched_add(s, &d, NULL, &q, &err) != HL_OK) {
        fprintf(stderr, "bench_sched_prefill: %s\n", err.msg);
        exit(1);
    }
    return q;
}

static void step(hl_sched *s) {
    hl_error err = {0};
    if (hl_sched_step(s, &err) != HL_OK) {
        fprintf(stderr, "bench_sched_prefill: %s\n", err.msg);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_sched_prefill MODEL [PROMPT_ROWS [ROUNDS]]\n");
        return 2;
    }
    hl_error err = {0};
    hl_model *m = NULL;
    if (hl_model_load(argv[1], NULL, &m, &err) != HL_OK) {
        fprintf(stderr, "bench_sched_prefill: %s\n", err.msg);
        return 1;
    }
    hl_sched_params p = {.n_threads = 1, .max_seqs = 64, .shared_base = 1,
                         .max_prompt_rows = argc > 2 ? atoi(argv[2]) : 0};
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    for (int r = 0; r < rounds; r++) {
        hl_sched *s = NULL;
        if (hl_sched_init(&p, &s, &err) != HL_OK) return 1;
        for (int i = 0; i < 32; i++) add(s, m, 6, 64, i);
        double t0 = cpu_s();
        step(s);
        double t1 = cpu_s();
        while (hl_sched_n_running(s)) step(s);
        double t2 = cpu_s();
        printf("A: first step (32 prompts of 6): %.1f ms; %.0f tok/s (CPU)\n", (t1 - t0) * 1e3, 32 * 64 / (t2 - t0));
        hl_sched_free(s);

        if (hl_sched_init(&p, &s, &err) != HL_OK) return 1;
        for (int i = 0; i < 16; i++) add(s, m, 6, 48, i);
        for (int i = 0; i < 8; i++) step(s);
        hl_seq *last = NULL;
        for (int i = 0; i < 8; i++) last = add(s, m, 200, 8, 100 + i);
        double u0 = cpu_s();
        int steps = 0;
        int32_t n = 0;
        do {
            step(s);
            steps++;
            hl_seq_tokens(last, &n);
        } while (!n);
        double u1 = cpu_s();
        printf("B: 8 prompts of 200 beside 16 decoding, until the last has a token: %.1f ms in %d steps (CPU)\n",
               (u1 - u0) * 1e3, steps);
        hl_sched_free(s);
    }
    hl_model_free(m);
    return 0;
}
