/* test_threadpool.c: the worker pool's loops (util/threadpool.c).
 * hl_pool_for, hl_pool_for_balanced and hl_pool_for_adaptive must run
 * every item exactly once for any size, grain and thread count. A balanced
 * loop must let a free thread take grains from a slowed thread's chunk; an
 * adaptive loop run again and again must give a slowed caller a smaller
 * chunk, and a caller slowed workers wait for a larger one. The packed
 * product, which runs on both (prompts balanced, decoding adaptive), must
 * give the same bits however the panels end up shared. */
#include "kernels/kernels.h"
#include "util/threadpool.h"
#include "test_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MAX_ITEMS 4096

typedef struct {
    atomic_int runs[MAX_ITEMS];
    atomic_int by_worker[8];      /* items each worker ran */
    atomic_int steals;            /* items a worker ran outside its own hl_pool_for chunk */
    atomic_int taken_from_slow;   /* items of the slow worker's chunk that another worker ran */
    int64_t n, grain;
    int n_threads, slow_worker;   /* slow_worker: this worker sleeps per call (-1: none) */
    int wait_for_steal;           /* 1: the slow worker also waits until another has taken from its chunk */
} count_job;

/* hl_pool_for's chunk of worker w, in items: whole grains split as evenly as
 * possible, the first chunks one grain longer. */
static void own_chunk(const count_job *j, int w, int64_t *b, int64_t *e) {
    int64_t blocks = (j->n + j->grain - 1) / j->grain, per = blocks / j->n_threads, extra = blocks % j->n_threads;
    int64_t start = w * per + (w < extra ? w : extra), count = per + (w < extra ? 1 : 0);
    *b = start * j->grain < j->n ? start * j->grain : j->n;
    *e = (start + count) * j->grain < j->n ? (start + count) * j->grain : j->n;
}

static void count_items(void *arg, int64_t b, int64_t e, int worker) {
    count_job *j = arg;
    if (worker == j->slow_worker) {
        /* In a balanced loop the slowed worker also waits (up to 5 s) until
         * another has taken an item of its chunk, so that the check does not
         * rest on how the host schedules the threads within 2 ms. */
        for (int ms = 0; j->wait_for_steal && ms < 5000 && atomic_load(&j->taken_from_slow) == 0; ms++)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        j->wait_for_steal = 0; /* once per loop: a pool that never takes fails in 5 s, not 5 s a call */
        nanosleep(&(struct timespec){0, 2000000}, NULL); /* 2 ms */
    }
    int64_t ob, oe, sb = 0, se = 0;
    own_chunk(j, worker, &ob, &oe);
    if (j->slow_worker >= 0) own_chunk(j, j->slow_worker, &sb, &se);
    for (int64_t i = b; i < e; i++) {
        atomic_fetch_add(&j->runs[i], 1);
        if (i < ob || i >= oe) atomic_fetch_add(&j->steals, 1);
        if (worker != j->slow_worker && i >= sb && i < se) atomic_fetch_add(&j->taken_from_slow, 1);
    }
    atomic_fetch_add(&j->by_worker[worker], (int)(e - b));
}

static count_job job;

/* mode 0: hl_pool_for, 1: hl_pool_for_balanced, 2: hl_pool_for_adaptive */
static void run_counted(hl_pool *pool, int n_threads, int64_t n, int64_t grain, int mode, int slow) {
    memset(&job, 0, sizeof job);
    job.n = n;
    job.grain = grain;
    job.n_threads = n_threads;
    job.slow_worker = slow;
    job.wait_for_steal = mode == 1 && slow >= 0;
    if (mode == 1) hl_pool_for_balanced(pool, n, grain, count_items, &job);
    else if (mode == 2) hl_pool_for_adaptive(pool, n, grain, count_items, &job);
    else hl_pool_for(pool, n, grain, count_items, &job);
}

static int every_item_once(int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&job.runs[i]) != 1) return 0;
    return 1;
}

static const char *const mode_names[] = {"plain", "balanced", "adaptive"};

/* 64 adaptive loops of 1024 items on a new pool of nt threads, thread
 * `slow` sleeping 2 ms a call: the caller's chunk of the last one. */
static int adaptive_caller_items(int nt, int slow) {
    hl_pool *pool = hl_pool_init(nt);
    REQUIRE(pool);
    for (int r = 0; r < 64; r++) {
        run_counted(pool, nt, 1024, 1, 2, slow);
        CHECK_MSG(every_item_once(1024), "adaptive, %d threads, thread %d slowed, loop %d: an item ran other than once",
                  nt, slow, r);
    }
    hl_pool_free(pool);
    return atomic_load(&job.by_worker[0]);
}

int main(void) {
    const int64_t sizes[] = {1, 2, 3, 7, 16, 17, 100, 1000, MAX_ITEMS};
    const int64_t grains[] = {1, 3, 4, 16, 5000};
    for (int nt = 1; nt <= 4; nt++) {
        hl_pool *pool = hl_pool_init(nt);
        REQUIRE(pool);
        for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                for (int mode = 0; mode < 3; mode++) {
                    run_counted(pool, nt, sizes[a], grains[g], mode, -1);
                    CHECK_MSG(every_item_once(sizes[a]),
                              "%s, %d threads, n %lld, grain %lld: an item ran other than once", mode_names[mode], nt,
                              (long long)sizes[a], (long long)grains[g]);
                }
        /* Worker 0 (the caller) is slowed (count_items): the others finish
         * their own chunks and take the rest of its chunk from the back. */
        if (nt > 1) {
            run_counted(pool, nt, 64, 1, 1, 0);
            int64_t ob, oe;
            own_chunk(&job, 0, &ob, &oe);
            CHECK_MSG(every_item_once(64), "balanced, %d threads, a slowed caller: an item ran other than once", nt);
            CHECK_MSG(atomic_load(&job.taken_from_slow) > 0 && atomic_load(&job.by_worker[0]) < oe - ob,
                      "balanced, %d threads: the slowed caller ran %d of its %lld items, the others took %d", nt,
                      atomic_load(&job.by_worker[0]), (long long)(oe - ob), atomic_load(&job.taken_from_slow));
            run_counted(pool, nt, 64, 1, 0, 0);
            CHECK_MSG(atomic_load(&job.steals) == 0, "plain, %d threads: items ran outside their chunks", nt);
            /* Adaptive: a slowed caller ends with less than an even share,
             * a caller that waits for a slowed worker with more. */
            const int even = 1024 / nt, slowed = adaptive_caller_items(nt, 0);
            CHECK_MSG(slowed < even, "adaptive, %d threads, the caller slowed: it still runs %d of 1024 items", nt,
                      slowed);
            const int waiting = adaptive_caller_items(nt, 1);
            CHECK_MSG(waiting > even, "adaptive, %d threads, a worker slowed: the caller runs only %d of 1024 items",
                      nt, waiting);
        }
        hl_pool_free(pool);
    }
    /* No pool: one call over every item, on the caller (worker 0). */
    for (int mode = 0; mode < 3; mode++) {
        run_counted(NULL, 1, 10, 2, mode, -1);
        CHECK_MSG(every_item_once(10) && atomic_load(&job.by_worker[0]) == 10,
                  "%s without a pool: the caller ran %d of 10 items", mode_names[mode], atomic_load(&job.by_worker[0]));
    }

    /* The packed product at 1, 2 and 3 threads, for a prompt (37 tokens) and
     * decoding (one): identical bits. With 2 and 3 threads the split moves
     * from run to run (balanced claims; adaptive chunks); ten runs each must
     * all agree with the single thread. */
    for (int64_t T = 37; T >= 1; T = T > 1 ? 1 : 0) {
        const int64_t K = 300, O = 16 * 13 + 5; /* a partial last panel, K not a multiple of the K block */
        float *w = malloc((size_t)(O * K) * sizeof *w), *x = malloc((size_t)(T * K) * sizeof *x);
        float *wp = malloc((size_t)hl_packed_floats(O, K) * sizeof *wp);
        float *ref = malloc((size_t)(T * O) * sizeof *ref), *out = malloc((size_t)(T * O) * sizeof *out);
        REQUIRE(w && x && wp && ref && out);
        uint32_t s = 12345;
        for (int64_t i = 0; i < O * K; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        for (int64_t i = 0; i < T * K; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        hl_pack_weights(wp, w, O, K);
        hl_matmul_packed(NULL, ref, O, x, wp, T, K, O);
        int same = 1;
        for (int64_t i = 0; i < T * O; i++) same &= fabsf(ref[i] - (float)hl_dot_seq(x + i / O * K, w + i % O * K, K)) <= 0;
        CHECK_MSG(same, "packed product at 1 thread, %lld tokens, differs from the sequential chain", (long long)T);
        for (int nt = 2; nt <= 3; nt++) {
            hl_pool *pool = hl_pool_init(nt);
            REQUIRE(pool);
            for (int r = 0; r < 10; r++) {
                memset(out, 0xff, (size_t)(T * O) * sizeof *out);
                hl_matmul_packed(pool, out, O, x, wp, T, K, O);
                CHECK_MSG(!memcmp(out, ref, (size_t)(T * O) * sizeof *out),
                          "packed product, %lld tokens, %d threads, run %d: bits differ", (long long)T, nt, r);
            }
            hl_pool_free(pool);
        }
        free(w), free(x), free(wp), free(ref), free(out);
    }
    return hl_test_finish("test_threadpool");
}
