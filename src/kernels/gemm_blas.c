/* gemm_blas.c: the training pass's large matrix products on OpenBLAS.
 *
 * Training spends ~80% of a step in three products: x·Wᵀ (forward), dY·W
 * (input gradients) and, in full mode, dYᵀ·X (weight gradients). Our own
 * kernels (matmul.c, matmul_grad.c) keep one canonical summation order so
 * that inference is identical batched or token by token; training does not
 * need that property, only identical results at any thread count and on
 * resume. So here each product is cut into a fixed grid of tiles that depends
 * on the shapes alone, every tile is one single-threaded cblas_sgemm call, and
 * our pool hands tiles to workers. Which worker computes a tile never changes
 * its bits, so --threads 1 and 2 give the same bytes.
 *
 * OpenBLAS must not start its own threads under ours: the first call sets its
 * thread count to 1 (a process-wide OpenBLAS setting).
 */
#include "kernels/kernels.h"

#include <cblas.h>
#include <pthread.h>

/* Declared by OpenBLAS's cblas.h; repeated so that another CBLAS header still builds. */
void openblas_set_num_threads(int num_threads);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

/* Tiles: a function of the shape only. Each tile repacks the operand it
 * shares with the others, so tiles stay at least MIN_TILE wide along the split
 * dimension (measured on s15M training: 16 → 1,930 tok/s, 128 → 2,260, 256 →
 * 2,010 as 288-wide outputs then fall to one tile). About 1 MFLOP each, at most
 * 32, and an even count so that two threads get equal shares. */
#define TILE_FLOPS (1.0e6)
#define MIN_TILE 128
#define MAX_TILES 32

static int64_t tile_count(int64_t split_dim, double flops) {
    int64_t n = (int64_t)(flops / TILE_FLOPS);
    if (n > MAX_TILES) n = MAX_TILES;
    if (n > split_dim / MIN_TILE) n = split_dim / MIN_TILE;
    if (n < 2 && split_dim >= 32 && flops >= 2 * TILE_FLOPS) n = 2; /* e.g. 288 wide: two halves */
    if (n > 2) n &= ~(int64_t)1;
    return n < 1 ? 1 : n;
}

/* Bounds of tile i of n over [0, dim), edges rounded down to multiples of 16. */
static void tile_range(int64_t dim, int64_t n, int64_t i, int64_t *b, int64_t *e) {
    *b = i == 0 ? 0 : (dim * i / n) & ~(int64_t)15;
    *e = i + 1 == n ? dim : (dim * (i + 1) / n) & ~(int64_t)15;
}

typedef struct {
    int kind; /* 0: out = x·Wᵀ, 1: out = dy·W, 2: g += pᵀ·q */
    float *out;
    int64_t ldo;
    const float *a, *b;
    int64_t T, K, O; /* kind 0/1: the projection's shapes; kind 2: T, M = K, N = O */
    float scale, beta;
    int64_t n_tiles;
    int split_rows; /* 1: tiles over output rows, 0: over output columns */
} gemm_job;

static void gemm_tiles(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const gemm_job *j = arg;
    for (int64_t i = begin; i < end; i++) {
        int64_t rows = j->kind == 2 ? j->K : j->T;
        int64_t cols = j->kind == 0 ? j->O : j->kind == 1 ? j->K : j->O;
        int64_t b, e;
        tile_range(j->split_rows ? rows : cols, j->n_tiles, i, &b, &e);
        if (e <= b) continue;
        int64_t r0 = j->split_rows ? b : 0, nr = j->split_rows ? e - b : rows;
        int64_t c0 = j->split_rows ? 0 : b, nc = j->split_rows ? cols : e - b;
        float *out = j->out + r0 * j->ldo + c0;
        if (j->kind == 0) /* out (nr, nc) = x[r0:] (nr, K) · W[c0:] (nc, K)ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nc, (int)j->K, j->scale,
                        j->a + r0 * j->K, (int)j->K, j->b + c0 * j->K, (int)j->K, j->beta, out, (int)j->ldo);
        else if (j->kind == 1) /* out (nr, nc) = dy[r0:] (nr, O) · W[:, c0:] (O, nc) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)nc, (int)j->O, j->scale,
                        j->a + r0 * j->O, (int)j->O, j->b + c0, (int)j->K, j->beta, out, (int)j->ldo);
        else /* g[r0:, c0:] (nr, nc) += p[:, r0:]ᵀ (nr, T) · q[:, c0:] (T, nc) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)nc, (int)j->T, 1.0f, j->a + r0,
                        (int)j->K, j->b + c0, (int)j->O, 1.0f, out, (int)j->ldo);
    }
}

void hl_gemm_init(void) { pthread_once(&blas_once, blas_single_thread); }

static void run(hl_pool *pool, gemm_job *j, int64_t rows, int64_t cols, int64_t inner) {
    hl_gemm_init();
    double flops = 2.0 * (double)rows * (double)cols * (double)inner;
    j->split_rows = rows >= cols;
    j->n_tiles = tile_count(j->split_rows ? rows : cols, flops);
    hl_pool_for(pool, j->n_tiles, 1, gemm_tiles, j);
}

void hl_gemm_nt(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K,
                int64_t O, float scale, int accumulate) {
    if (T <= 0 || O <= 0) return;
    gemm_job j = {.kind = 0, .out = out, .ldo = ldo, .a = x, .b = w, .T = T, .K = K, .O = O,
                  .scale = accumulate ? scale : 1.0f, .beta = accumulate ? 1.0f : 0.0f};
    run(pool, &j, T, O, K);
}

/* dY·W with a reduction much longer than the output (the LM head's input
 * gradient: 256×32000 · 32000×C): tiles over the output would each repack all
 * of the long operands, so the reduction is cut instead into SPLIT_K parts
 * computed side by side, and the parts are added in order. */
#define SPLIT_K HL_GEMM_SPLIT_K
typedef struct {
    const float *dy, *w;
    float *part; /* (SPLIT_K, T, K) */
    float *out;
    int64_t T, O, K;
    float scale;
    int accumulate;
} split_job;

static void split_parts(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const split_job *j = arg;
    for (int64_t p = begin; p < end; p++) {
        int64_t o0 = j->O * p / SPLIT_K, o1 = j->O * (p + 1) / SPLIT_K;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->T, (int)j->K, (int)(o1 - o0), 1.0f,
                    j->dy + o0, (int)j->O, j->w + o0 * j->K, (int)j->K, 0.0f, j->part + p * j->T * j->K, (int)j->K);
    }
}

static void split_sum(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const split_job *j = arg;
    const int64_t n = j->T * j->K;
    for (int64_t r = begin; r < end; r++)
        for (int64_t e = r * j->K; e < (r + 1) * j->K; e++) {
            float sum = j->part[e];
            for (int p = 1; p < SPLIT_K; p++) sum += j->part[p * n + e];
            j->out[e] = j->accumulate ? j->out[e] + j->scale * sum : j->scale * sum;
        }
}

void hl_gemm_nn_split(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                      float scale, int accumulate, float *scratch) {
    if (T <= 0 || K <= 0) return;
    split_job sj = {dy, w, scratch, out, T, O, K, scale, accumulate};
    hl_gemm_init();
    hl_pool_for(pool, SPLIT_K, 1, split_parts, &sj);
    hl_pool_for(pool, T, 16, split_sum, &sj);
}

void hl_gemm_nn(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                float scale, int accumulate) {
    if (T <= 0 || K <= 0) return;
    gemm_job j = {.kind = 1, .out = out, .ldo = K, .a = dy, .b = w, .T = T, .K = K, .O = O, .scale = scale,
                  .beta = accumulate ? 1.0f : 0.0f};
    run(pool, &j, T, K, O);
}

void hl_gemm_tn_acc(hl_pool *pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N) {
    if (M <= 0 || N <= 0 || T <= 0) return;
    gemm_job j = {.kind = 2, .out = g, .ldo = N, .a = p, .b = q, .T = T, .K = M, .O = N};
    run(pool, &j, M, N, T);
}
