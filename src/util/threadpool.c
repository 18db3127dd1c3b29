/* threadpool.c: persistent workers for data-parallel loops.
 *
 * A decode step runs ~50 small parallel loops per token, so waking workers
 * through a condition variable each time (tens of microseconds) would cost
 * more than the work. Workers therefore spin briefly on an atomic generation
 * counter after each job and only then sleep on the condition variable; the
 * caller takes chunk 0 itself and spins until the others report done. A
 * 1-thread pool has no workers and no synchronisation at all.
 *
 * hl_pool_for_balanced hands out the same even chunks, but each thread
 * claims its chunk a grain at a time with a compare-and-swap on its own
 * cache line, and a thread that is done claims from the back of the others'
 * chunks: on a shared machine one thread is often slowed, and with fixed
 * chunks the other would wait for it at the end of every loop.
 *
 * hl_pool_for_adaptive keeps one contiguous chunk per thread, but moves the
 * caller's share a step after each such loop: up when the caller had to
 * wait for a worker, down when the workers were done before it. Stealing
 * costs cache-line transfers between cores at every loop (about 0.24 us
 * each way on the 2-vCPU guest measured), which a 10 us decoding product
 * cannot afford; the step costs none, and follows a core that streams
 * memory slower than the other (there 24 against 33 GB/s) over a few
 * dozen loops. */
#include "util/threadpool.h"
#include "util/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_LIMIT 4000 /* pause loops (a few tens of microseconds) before a thread blocks: short, so
                         * a busy machine's other processes get the core back quickly */

struct hl_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;             /* the caller waits here after spinning */
    atomic_int caller_waiting;
    atomic_uint_fast64_t generation; /* bumped once per job */
    atomic_int pending;              /* workers still running the current job */
    atomic_int sleepers;             /* workers blocked on the condition variable */
    atomic_int stopping;
    /* the current job: written before generation is bumped */
    hl_pool_fn fn;
    void *arg;
    int64_t n, grain;
    int balanced; /* 1: hl_pool_for_balanced's job: threads claim items from ranges */
    int adaptive; /* 1: hl_pool_for_adaptive's job: the caller's chunk is its `lead` share */
    int lead_job; /* the current job's lead, as chunk_bounds reads it: `lead` moves while a worker may not
                   * yet have read its chunk */
    int lead;     /* the caller's share above an even one, in 1/LEAD_UNIT of the items; the caller's alone */
    /* per thread, on its own cache line: the items [lo, hi) of its chunk not
     * yet claimed, as lo << 32 | hi. The owner claims from lo, a thread that
     * has finished its own chunk takes from hi. */
    struct claim_range { atomic_uint_fast64_t v; char pad[64 - sizeof(atomic_uint_fast64_t)]; } *ranges;
};

typedef struct { hl_pool *pool; int index; } worker_arg;

#define LEAD_UNIT 1024
#define LEAD_STEP 4 /* 0.4% of the items per loop */

/* Thread index's chunk of [0, p->n) split into blocks of grain items: even,
 * or for an adaptive job the caller's share moved by lead_job. */
static void chunk_bounds(const hl_pool *p, int64_t grain, int index, int64_t *b, int64_t *e) {
    int64_t blocks = (p->n + grain - 1) / grain, start, count;
    if (p->adaptive) {
        const int64_t even = LEAD_UNIT / p->n_threads;
        int64_t first = (blocks * (even + p->lead_job) + LEAD_UNIT / 2) / LEAD_UNIT; /* the caller's blocks */
        if (first > blocks) first = blocks;
        const int64_t rest = blocks - first, per = rest / (p->n_threads - 1), extra = rest % (p->n_threads - 1);
        const int64_t k = index - 1;
        start = index == 0 ? 0 : first + k * per + (k < extra ? k : extra);
        count = index == 0 ? first : per + (k < extra ? 1 : 0);
    } else {
        const int64_t per = blocks / p->n_threads, extra = blocks % p->n_threads;
        start = index * per + (index < extra ? index : extra);
        count = per + (index < extra ? 1 : 0);
    }
    *b = start * grain;
    *e = (start + count) * grain;
    if (*b > p->n) *b = p->n;
    if (*e > p->n) *e = p->n;
}

/* Claims up to `grain` items of range r, from the low end (the owner's, so
 * that it runs its chunk in order) or from the high end; 0 when none is left. */
static int claim(struct claim_range *r, int from_low, int64_t grain, int64_t *b, int64_t *e) {
    uint_fast64_t v = atomic_load(&r->v);
    for (;;) {
        const int64_t lo = (int64_t)(v >> 32), hi = (int64_t)(v & 0xffffffffu);
        if (lo >= hi) return 0;
        const int64_t n = hi - lo < grain ? hi - lo : grain;
        *b = from_low ? lo : hi - n;
        *e = *b + n;
        const uint_fast64_t next = from_low ? (uint_fast64_t)*e << 32 | (uint_fast64_t)hi
                                            : (uint_fast64_t)lo << 32 | (uint_fast64_t)*b;
        if (atomic_compare_exchange_weak(&r->v, &v, next)) return 1;
    }
}

/* The thread's part of the current job: its fixed chunk; or, for a balanced
 * job, its chunk a grain at a time in order and then, from the back, what
 * other threads have not reached. */
static void run_share(hl_pool *p, int index) {
    if (!p->balanced) {
        int64_t b, e;
        chunk_bounds(p, p->grain, index, &b, &e);
        if (b < e) p->fn(p->arg, b, e, index);
        return;
    }
    for (int k = 0; k < p->n_threads; k++) {
        struct claim_range *r = &p->ranges[(index + k) % p->n_threads];
        for (int64_t b, e; claim(r, k == 0, p->grain, &b, &e);) p->fn(p->arg, b, e, index);
    }
}

static void *worker_main(void *v) {
    worker_arg *wa = v;
    hl_pool *p = wa->pool;
    int index = wa->index;
    hl_free(wa);
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g;
        int spins = 0;
        while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stopping)) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stopping))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stopping)) return NULL;
        seen = g;
        run_share(p, index);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

hl_pool *hl_pool_init(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    hl_pool *p = hl_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stopping, 0);
    atomic_init(&p->caller_waiting, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = hl_calloc((size_t)n_threads - 1, sizeof(pthread_t));
        p->ranges = hl_aligned_alloc(64, (size_t)n_threads * sizeof *p->ranges);
        if (!p->threads || !p->ranges) {
            p->n_threads = 1; /* no workers to join */
            hl_pool_free(p);
            return NULL;
        }
        for (int i = 0; i < n_threads; i++) atomic_init(&p->ranges[i].v, 0);
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = hl_malloc(sizeof *wa);
            if (!wa) {
                p->n_threads = i;
                hl_pool_free(p);
                return NULL;
            }
            wa->pool = p;
            wa->index = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                hl_free(wa);
                p->n_threads = i;
                hl_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void hl_pool_free(hl_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    hl_free(p->threads);
    hl_free(p->ranges);
    hl_free(p);
}

int hl_pool_n_threads(const hl_pool *p) { return p ? p->n_threads : 1; }

static void pool_run(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg, int balanced, int adaptive) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads == 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    if (n > 0xffffffff) balanced = 0; /* the ranges hold 32-bit item numbers */
    p->fn = fn;
    p->arg = arg;
    p->balanced = balanced;
    p->adaptive = adaptive;
    p->lead_job = p->lead;
    p->n = n;
    p->grain = grain;
    if (balanced) /* the items split evenly, each thread then claiming `grain` at a time */
        for (int i = 0; i < p->n_threads; i++) {
            int64_t b, e;
            chunk_bounds(p, 1, i, &b, &e);
            atomic_store(&p->ranges[i].v, (uint_fast64_t)b << 32 | (uint_fast64_t)e);
        }
    atomic_store(&p->pending, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1); /* publishes the job (sequentially consistent) */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_share(p, 0);
    if (adaptive) { /* the caller last: a smaller share next time; a worker last: a larger one */
        const int even = LEAD_UNIT / p->n_threads;
        p->lead += atomic_load(&p->pending) > 0 ? LEAD_STEP : -LEAD_STEP;
        if (p->lead > even / 2) p->lead = even / 2;
        if (p->lead < -even / 2) p->lead = -even / 2;
    }
    for (int spins = 0; spins < SPIN_LIMIT && atomic_load(&p->pending) > 0; spins++) cpu_relax();
    if (atomic_load(&p->pending) > 0) {
        /* A worker lost its core: block until the last one signals. */
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waiting, 1);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
}

void hl_pool_for(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg) {
    pool_run(p, n, grain, fn, arg, 0, 0);
}

void hl_pool_for_adaptive(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg) {
    pool_run(p, n, grain, fn, arg, 0, 1);
}

void hl_pool_for_balanced(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg) {
    pool_run(p, n, grain, fn, arg, 1, 0);
}
