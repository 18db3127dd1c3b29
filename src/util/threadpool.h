/* threadpool.h: a fixed pool of worker threads running data-parallel loops.
 * hl_pool_for splits [0, n) into one contiguous chunk per thread. Kernels
 * split by output element (rows, heads), never by a summed dimension, so
 * results are bit-identical for any thread count. */
#ifndef HL_UTIL_THREADPOOL_H
#define HL_UTIL_THREADPOOL_H
#include <stdint.h>

typedef struct hl_pool hl_pool;
/* fn(arg, begin, end, worker) processes items [begin, end); worker is the
 * index (0..n_threads-1) of the thread running it, for per-thread scratch. */
typedef void (*hl_pool_fn)(void *arg, int64_t begin, int64_t end, int worker);

hl_pool *hl_pool_init(int n_threads); /* NULL on failure; n_threads >= 1 */
void hl_pool_free(hl_pool *p);
int hl_pool_n_threads(const hl_pool *p);
/* Runs fn over [0, n) and returns when all chunks are done. Items are handed
 * out in chunks aligned to `grain` (>= 1). p may be NULL (runs inline). */
void hl_pool_for(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg);
/* [0, n) split evenly (ignoring grain), each thread running its chunk in
 * order `grain` items at a time; a thread that is done takes `grain` items
 * at a time from the back of chunks other threads have not finished, so a
 * thread the machine slows down does less. Only for loops whose results do
 * not depend on which thread runs an item (fn must not let `worker` reach
 * the output). */
void hl_pool_for_balanced(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg);
/* As hl_pool_for (one contiguous chunk per thread, one fn call each), but
 * the caller's chunk grows a step after a loop in which it waited for a
 * worker and shrinks after one in which the workers finished first (within
 * half an even share either way), so that loops run again and again follow
 * a core the machine makes slower. For loops whose results do not depend on
 * where the chunks end (decoding products: each row its own). */
void hl_pool_for_adaptive(hl_pool *p, int64_t n, int64_t grain, hl_pool_fn fn, void *arg);
#endif
