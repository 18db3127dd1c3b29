/* threadpool.c: persistent pthread workers woken by a generation counter.
 * The calling thread takes chunk 0 itself, so a 1-thread pool has no
 * workers and no synchronisation at all. */
#include "util/threadpool.h"
#include "util/alloc.h"

#include <pthread.h>

struct hl_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation;
    int pending;   /* workers still running the current job */
    int stopping;
    /* the current job */
    hl_pool_fn fn;
    void *arg;
    int64_t n, grain;
};

typedef struct { hl_pool *pool; int index; } worker_arg;

static void chunk_bounds(const hl_pool *p, int index, int64_t *b, int64_t *e) {
    int64_t blocks = (p->n + p->grain - 1) / p->grain;
    int64_t per = blocks / p->n_threads, extra = blocks % p->n_threads;
    int64_t start = index * per + (index < extra ? index : extra);
    int64_t count = per + (index < extra ? 1 : 0);
    *b = start * p->grain;
    *e = (start + count) * p->grain;
    if (*b > p->n) *b = p->n;
    if (*e > p->n) *e = p->n;
}

static void *worker_main(void *v) {
    worker_arg *wa = v;
    hl_pool *p = wa->pool;
    int index = wa->index;
    hl_free(wa);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->stopping) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        int64_t b, e;
        chunk_bounds(p, index, &b, &e);
        if (b < e) p->fn(p->arg, b, e, index);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

hl_pool *hl_pool_init(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    hl_pool *p = hl_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = hl_calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!p->threads) {
            hl_pool_free(p);
            return NULL;
        }
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
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    hl_free(p->threads);
    hl_free(p);
}

int hl_pool_n_threads(const hl_pool *p) { return p ? p->n_threads : 1; }

void hl_pool_for(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads == 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->grain = grain;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    int64_t b, e;
    chunk_bounds(p, 0, &b, &e);
    if (b < e) fn(arg, b, e, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
