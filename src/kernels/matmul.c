/* matmul.c: the dot product and x·Wᵀ kernels, in one canonical order per
 * element (see hl_dot) whatever the tile, batch or thread.
 *
 * AVX-512 builds use 16 lanes: 8 weight rows × 3 tokens = 24 zmm
 * accumulators per tile (measured on a Zen 5 core: 204 GFLOP/s, against 100
 * for the AVX2 4×3 tile and 131 for OpenBLAS's AVX2 sgemm). AVX2 builds use 8
 * lanes and 4 rows × 3 tokens = 12 ymm accumulators; other builds run the
 * same order in scalar code. Tail rows/tokens use the same per-element order,
 * which is what keeps results independent of batching and threading. Short
 * rows (adapters' B) have a tile of their own: 16 rows at AVX-512
 * (tile_short_x16), 8 at AVX2 (tile_short_x8). */
#include "kernels/kernels.h"
#include "kernels/lane_sums.h"

#include <math.h>
#include <stddef.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HL_HAVE_AVX2 1
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define HL_HAVE_AVX512 1
#endif
#endif

#ifdef HL_HAVE_AVX512
#define LANES 16
#else
#define LANES 8
#endif

static inline float dot_tail(float s, const float *a, const float *b, int64_t k0, int64_t n) {
    for (int64_t k = k0; k < n; k++) s = s + a[k] * b[k];
    return s;
}

#ifdef HL_HAVE_AVX2
#ifdef HL_HAVE_AVX512
float hl_dot(const float *a, const float *b, int64_t n) {
    int64_t nl = n - n % LANES;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < nl; k += LANES)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    return dot_tail(hl_hsum16(acc), a, b, nl, n);
}
#else
float hl_dot(const float *a, const float *b, int64_t n) {
    int64_t n8 = n - n % LANES;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < n8; k += LANES)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    return dot_tail(hl_hsum8(acc), a, b, n8, n);
}
#endif
#else
float hl_dot(const float *a, const float *b, int64_t n) {
    int64_t n8 = n - n % LANES;
    float l[LANES] = {0};
    for (int64_t k = 0; k < n8; k += LANES)
        for (int j = 0; j < LANES; j++) l[j] = fmaf(a[k + j], b[k + j], l[j]);
    return dot_tail(hl_hsum8_scalar(l), a, b, n8, n);
}
#endif

typedef struct {
    float *out;
    const float *x, *w;
    int64_t T, K, O;
    float scale;
    int accumulate;
    int64_t ldo; /* row stride of out */
} matmul_job;

static inline void store(const matmul_job *j, int64_t t, int64_t o, float v) {
    float *dst = j->out + t * j->ldo + o;
    if (j->accumulate) *dst = *dst + j->scale * v;
    else *dst = v;
}

#ifdef HL_HAVE_AVX512

/* R weight rows × C tokens of 16-lane accumulators (R·C ≤ 24 of the 32 zmm
 * registers). Called with constant R and C, so each use is fully unrolled. */
static inline __attribute__((always_inline)) void tile_zmm(const matmul_job *j, int64_t o, int64_t t, const int R,
                                                           const int C) {
    const int64_t K = j->K, nl = K - K % LANES;
    const float *w = j->w + o * K, *x = j->x + t * K;
    __m512 acc[8][3];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nl; k += LANES) {
        __m512 v[3];
        for (int c = 0; c < C; c++) v[c] = _mm512_loadu_ps(x + c * K + k);
        for (int r = 0; r < R; r++) {
            __m512 wr = _mm512_loadu_ps(w + r * K + k);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(wr, v[c], acc[r][c]);
        }
    }
    /* fmadd(w, x) vs fmadd(x, w): multiplication commutes exactly, so this equals hl_dot(x, w). */
    if (R == 8 && nl == K) { /* no tail: reduce 8 rows at once and store 8 adjacent outputs */
        for (int c = 0; c < C; c++) {
            __m512 col[8];
            for (int r = 0; r < 8; r++) col[r] = acc[r][c];
            __m256 v = hl_hsum16_x8(col);
            float *dst = j->out + (t + c) * j->ldo + o;
            if (j->accumulate) v = _mm256_add_ps(_mm256_loadu_ps(dst), _mm256_mul_ps(_mm256_set1_ps(j->scale), v));
            _mm256_storeu_ps(dst, v);
        }
        return;
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) store(j, t + c, o + r, dot_tail(hl_hsum16(acc[r][c]), x + c * K, w + r * K, nl, K));
}
#define ROW_TILE 8
static void tile_rows_x3(const matmul_job *j, int64_t o, int64_t t) { tile_zmm(j, o, t, 8, 3); }
static void tile_rows_x1(const matmul_job *j, int64_t o, int64_t t) { tile_zmm(j, o, t, 8, 1); }

/* Short rows (an adapter's B: K = its rank, a multiple of 8 up to
 * SHORT_ROWS_MAX): there the reduction and the scalar tail, not the loads,
 * set the pace (on a Zen 5 core, 2048 rows of 16 ran at 44 GB/s from cache
 * on 8-row tiles, rows of 8, the default rank, at 9). 16 rows × 1 token
 * share one hl_hsum16_x16, and the 8 columns past the last whole vector
 * (all of them at rank 8) run in the 16 rows' lanes, transposed in
 * registers (gathering them was slower than the scalar tail from memory).
 * The same operations per element as hl_dot. */
#define SHORT_ROWS_MAX 64
/* Rows o, o+1 against token x over the whole vectors [0, nl): their accumulators, one step reduced. */
static inline __attribute__((always_inline)) __m512 short_pair(const float *w, const float *x, int64_t K, int64_t nl) {
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    for (int64_t k = 0; k < nl; k += LANES) {
        const __m512 v = _mm512_loadu_ps(x + k);
        a = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), v, a);
        b = _mm512_fmadd_ps(_mm512_loadu_ps(w + K + k), v, b);
    }
    return hl_hsum16_pair(a, b);
}
static void tile_short_x16(const matmul_job *j, int64_t o, int64_t t) {
    const int64_t K = j->K, nl = K - K % LANES;
    const float *w = j->w + o * K, *x = j->x + t * K;
    __m512 sum = _mm512_setzero_ps(); /* hl_hsum16 of zero accumulators */
    if (nl)
        sum = hl_hsum16_x16(short_pair(w, x, K, nl), short_pair(w + 2 * K, x, K, nl), short_pair(w + 4 * K, x, K, nl),
                            short_pair(w + 6 * K, x, K, nl), short_pair(w + 8 * K, x, K, nl),
                            short_pair(w + 10 * K, x, K, nl), short_pair(w + 12 * K, x, K, nl),
                            short_pair(w + 14 * K, x, K, nl));
    if (nl < K) { /* the 8 tail columns: dot_tail in the lanes, s = s + x_k·w_k */
        __m512 z[8], tt[8], u[8];
        for (int i = 0; i < 8; i++) /* [row i | row i+8] */
            z[i] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(w + i * K + nl)),
                                      _mm256_loadu_ps(w + (i + 8) * K + nl), 1);
        for (int i = 0; i < 8; i += 2) {
            tt[i] = _mm512_unpacklo_ps(z[i], z[i + 1]);
            tt[i + 1] = _mm512_unpackhi_ps(z[i], z[i + 1]);
        }
        for (int h = 0; h < 8; h += 4) { /* u[h + c]: column c (quads 0, 2) and c + 4 (quads 1, 3) of 4 rows */
            u[h + 0] = _mm512_shuffle_ps(tt[h], tt[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[h + 1] = _mm512_shuffle_ps(tt[h], tt[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[h + 2] = _mm512_shuffle_ps(tt[h + 1], tt[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[h + 3] = _mm512_shuffle_ps(tt[h + 1], tt[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        /* Column c's lanes hold rows 0-3, 8-11, 4-7, 12-15: sum goes to that order and back. */
        const __m512i order = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
        sum = _mm512_permutexvar_ps(order, sum);
        for (int c = 0; c < 8; c++) {
            const __m512 col = c < 4 ? _mm512_shuffle_f32x4(u[c], u[c + 4], _MM_SHUFFLE(2, 0, 2, 0))
                                     : _mm512_shuffle_f32x4(u[c - 4], u[c], _MM_SHUFFLE(3, 1, 3, 1));
            sum = _mm512_add_ps(sum, _mm512_mul_ps(_mm512_set1_ps(x[nl + c]), col));
        }
        sum = _mm512_permutexvar_ps(order, sum); /* the order is its own inverse */
    }
    float *dst = j->out + t * j->ldo + o;
    if (j->accumulate) sum = _mm512_add_ps(_mm512_loadu_ps(dst), _mm512_mul_ps(_mm512_set1_ps(j->scale), sum));
    _mm512_storeu_ps(dst, sum);
}
#elif defined(HL_HAVE_AVX2)
/* 4 rows × 3 tokens. */
static void tile_4x3(const matmul_job *j, int64_t o, int64_t t) {
    const int64_t K = j->K, n8 = K - K % LANES;
    const float *w0 = j->w + o * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    const float *x0 = j->x + t * K, *x1 = x0 + K, *x2 = x1 + K;
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    for (int64_t k = 0; k < n8; k += LANES) {
        __m256 v0 = _mm256_loadu_ps(x0 + k), v1 = _mm256_loadu_ps(x1 + k), v2 = _mm256_loadu_ps(x2 + k);
        __m256 w = _mm256_loadu_ps(w0 + k);
        a00 = _mm256_fmadd_ps(w, v0, a00); a01 = _mm256_fmadd_ps(w, v1, a01); a02 = _mm256_fmadd_ps(w, v2, a02);
        w = _mm256_loadu_ps(w1 + k);
        a10 = _mm256_fmadd_ps(w, v0, a10); a11 = _mm256_fmadd_ps(w, v1, a11); a12 = _mm256_fmadd_ps(w, v2, a12);
        w = _mm256_loadu_ps(w2 + k);
        a20 = _mm256_fmadd_ps(w, v0, a20); a21 = _mm256_fmadd_ps(w, v1, a21); a22 = _mm256_fmadd_ps(w, v2, a22);
        w = _mm256_loadu_ps(w3 + k);
        a30 = _mm256_fmadd_ps(w, v0, a30); a31 = _mm256_fmadd_ps(w, v1, a31); a32 = _mm256_fmadd_ps(w, v2, a32);
    }
    /* fmadd(w, x) vs fmadd(x, w): multiplication commutes exactly, so this equals hl_dot(x, w). */
    store(j, t + 0, o + 0, dot_tail(hl_hsum8(a00), x0, w0, n8, K));
    store(j, t + 1, o + 0, dot_tail(hl_hsum8(a01), x1, w0, n8, K));
    store(j, t + 2, o + 0, dot_tail(hl_hsum8(a02), x2, w0, n8, K));
    store(j, t + 0, o + 1, dot_tail(hl_hsum8(a10), x0, w1, n8, K));
    store(j, t + 1, o + 1, dot_tail(hl_hsum8(a11), x1, w1, n8, K));
    store(j, t + 2, o + 1, dot_tail(hl_hsum8(a12), x2, w1, n8, K));
    store(j, t + 0, o + 2, dot_tail(hl_hsum8(a20), x0, w2, n8, K));
    store(j, t + 1, o + 2, dot_tail(hl_hsum8(a21), x1, w2, n8, K));
    store(j, t + 2, o + 2, dot_tail(hl_hsum8(a22), x2, w2, n8, K));
    store(j, t + 0, o + 3, dot_tail(hl_hsum8(a30), x0, w3, n8, K));
    store(j, t + 1, o + 3, dot_tail(hl_hsum8(a31), x1, w3, n8, K));
    store(j, t + 2, o + 3, dot_tail(hl_hsum8(a32), x2, w3, n8, K));
}

/* 4 rows × 1 token: the decode (GEMV) path, 4 independent accumulator chains. */
static void tile_4x1(const matmul_job *j, int64_t o, int64_t t) {
    const int64_t K = j->K, n8 = K - K % LANES;
    const float *w0 = j->w + o * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    const float *x0 = j->x + t * K;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < n8; k += LANES) {
        __m256 v0 = _mm256_loadu_ps(x0 + k);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), v0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), v0, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), v0, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), v0, a3);
    }
    store(j, t, o + 0, dot_tail(hl_hsum8(a0), x0, w0, n8, K));
    store(j, t, o + 1, dot_tail(hl_hsum8(a1), x0, w1, n8, K));
    store(j, t, o + 2, dot_tail(hl_hsum8(a2), x0, w2, n8, K));
    store(j, t, o + 3, dot_tail(hl_hsum8(a3), x0, w3, n8, K));
}
/* Short rows (an adapter's B: K = its rank, a multiple of 8 up to
 * SHORT_ROWS_MAX, so whole vectors only): 8 rows × 1 token share one
 * hl_hsum8_x8 instead of a reduction and a scalar store per row. The same
 * operations per element as hl_dot. */
#define SHORT_ROWS_MAX 64
static void tile_short_x8(const matmul_job *j, int64_t o, int64_t t) {
    const int64_t K = j->K;
    const float *w = j->w + o * K, *x = j->x + t * K;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t k = 0; k < K; k += LANES) {
        const __m256 v = _mm256_loadu_ps(x + k);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), v, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + K + k), v, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 2 * K + k), v, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 3 * K + k), v, a3);
        a4 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 4 * K + k), v, a4);
        a5 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 5 * K + k), v, a5);
        a6 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 6 * K + k), v, a6);
        a7 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 7 * K + k), v, a7);
    }
    __m256 sum = hl_hsum8_x8(a0, a1, a2, a3, a4, a5, a6, a7);
    float *dst = j->out + t * j->ldo + o;
    if (j->accumulate) sum = _mm256_add_ps(_mm256_loadu_ps(dst), _mm256_mul_ps(_mm256_set1_ps(j->scale), sum));
    _mm256_storeu_ps(dst, sum);
}
#define ROW_TILE 4
static void tile_rows_x3(const matmul_job *j, int64_t o, int64_t t) { tile_4x3(j, o, t); }
static void tile_rows_x1(const matmul_job *j, int64_t o, int64_t t) { tile_4x1(j, o, t); }
#endif

#define TOKEN_BLOCK 48 /* tokens per pass over a row block: keeps x in L2 */

static void matmul_rows(void *arg, int64_t o_begin, int64_t o_end, int worker) {
    (void)worker;
    const matmul_job *j = arg;
#ifdef HL_HAVE_AVX512
    if (j->K <= SHORT_ROWS_MAX && j->K % 8 == 0) /* the rows past the last 16 take the general path */
        for (; o_begin + 16 <= o_end; o_begin += 16)
            for (int64_t t = 0; t < j->T; t++) tile_short_x16(j, o_begin, t);
#elif defined(HL_HAVE_AVX2)
    if (j->K <= SHORT_ROWS_MAX && j->K % 8 == 0) /* the rows past the last 8 take the general path */
        for (; o_begin + 8 <= o_end; o_begin += 8)
            for (int64_t t = 0; t < j->T; t++) tile_short_x8(j, o_begin, t);
#endif
    for (int64_t tb = 0; tb < j->T; tb += TOKEN_BLOCK) {
        int64_t te = tb + TOKEN_BLOCK < j->T ? tb + TOKEN_BLOCK : j->T;
        int64_t o = o_begin;
#ifdef HL_HAVE_AVX2
        for (; o + ROW_TILE <= o_end; o += ROW_TILE) {
            int64_t t = tb;
            for (; t + 3 <= te; t += 3) tile_rows_x3(j, o, t);
            for (; t < te; t++) tile_rows_x1(j, o, t);
        }
#endif
        for (; o < o_end; o++)
            for (int64_t t = tb; t < te; t++)
                store(j, t, o, hl_dot(j->x + t * j->K, j->w + o * j->K, j->K));
    }
}

static void run(hl_pool *pool, matmul_job *j) {
    /* Small products are not worth waking workers for. */
    int64_t work = j->T * j->K * j->O;
    if (work < 32768) pool = NULL;
    /* Decoding streams the weights, each thread its rows in order; the
     * shares follow the cores' speeds (hl_pool_for_adaptive). No value
     * depends on where they end. */
    if (j->T == 1) hl_pool_for_adaptive(pool, j->O, 8, matmul_rows, j);
    else hl_pool_for(pool, j->O, 8, matmul_rows, j);
}

void hl_matmul(hl_pool *pool, float *out, const float *x, const float *w, int64_t T, int64_t K, int64_t O) {
    matmul_job j = {out, x, w, T, K, O, 1.0f, 0, O};
    run(pool, &j);
}

void hl_matmul_strided(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K,
                       int64_t O, float scale, int accumulate) {
    matmul_job j = {out, x, w, T, K, O, scale, accumulate, ldo};
    run(pool, &j);
}

void hl_matmul_serial(float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K, int64_t O) {
    matmul_job j = {out, x, w, T, K, O, 1.0f, 0, ldo};
    matmul_rows(&j, 0, O, 0);
}

/* Several products of the same input as one pool dispatch: the rows of all
 * parts are split across the threads together, so q/k/v or gate/up wake the
 * workers once and share the load evenly. Each element is computed exactly as
 * hl_matmul_strided computes it. */
typedef struct {
    matmul_job jobs[HL_MATMUL_MAX_PARTS];
    int64_t first_row[HL_MATMUL_MAX_PARTS + 1];
    int n;
} group_job;

static void group_rows(void *arg, int64_t begin, int64_t end, int worker) {
    const group_job *g = arg;
    for (int i = 0; i < g->n; i++) {
        int64_t b = begin > g->first_row[i] ? begin : g->first_row[i];
        int64_t e = end < g->first_row[i + 1] ? end : g->first_row[i + 1];
        if (b < e) matmul_rows((void *)&g->jobs[i], b - g->first_row[i], e - g->first_row[i], worker);
    }
}

void hl_matmul_group(hl_pool *pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n) {
    group_job g = {.n = n};
    int64_t rows = 0;
    for (int i = 0; i < n && i < HL_MATMUL_MAX_PARTS; i++) {
        g.jobs[i] = (matmul_job){parts[i].out, x, parts[i].w, T, K, parts[i].O, 1.0f, 0, parts[i].ldo};
        g.first_row[i] = rows;
        rows += parts[i].O;
    }
    g.first_row[n] = rows;
    if (T * K * rows < 32768) pool = NULL;
    if (T == 1) hl_pool_for_adaptive(pool, rows, 8, group_rows, &g); /* as run() */
    else hl_pool_for(pool, rows, 8, group_rows, &g);
}
