/* matmul_packed.c: x·Wᵀ from weights repacked into 16-row panels, the
 * layout inference runs on in AVX2 and AVX-512 builds.
 *
 * hl_matmul's dot form keeps W row-major and sums lanes of k in a tree; each
 * weight load feeds only the few tokens whose accumulators fit beside it (4
 * rows × 3 tokens of ymm on AVX2). Here W (O, K) is stored as ceil(O/16)
 * panels of (K, 16): row o of k sits at panel o/16, offset k·16 + o%16, and
 * rows past O are zero. One k step loads the panel's 16 weights, broadcasts
 * x[t][k] and does one FMA per output, so a tile of 16 rows × 6 tokens (12
 * ymm accumulators) or 16 rows × 12 tokens (12 zmm) reuses each load 6 or 12
 * times. Measured on s110M's shapes at 2 threads on a Zen 5 guest: 227–279
 * GFLOP/s on AVX2 against 119–137 for the dot form, and 400–435 on AVX-512
 * against 185–219. AVX-512 prompts now take two panels at a time (32 rows ×
 * 12 tokens, prompt_tile2), so each broadcast feeds two FMAs.
 *
 * The canonical order here is the plain sequential one (hl_dot_seq): each
 * element is a chain of fused multiply-adds over k = 0, 1, ..., K-1 starting
 * from zero. Prompt tiles (K cut into blocks whose partial sums pass through
 * the output, exactly as the chain would carry them), decode tiles (four
 * panels × one token) and the ymm, zmm and scalar code all run that same
 * chain, so a token's result is bitwise the same batched or alone, at any
 * thread count, and in AVX2 and AVX-512 builds alike.
 *
 * The same panels also give training's input gradient dX = dY·W
 * (hl_matmul_packed_nn, at the end of this file), so LoRA training reads
 * one packed copy of the frozen base in both directions. */
#include "kernels/kernels.h"
#include "kernels/lane_sums.h"

#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HL_PACKED_SIMD 1
#endif

#define PANEL HL_PACK_ROWS
#if defined(HL_PACKED_SIMD) && defined(__AVX512F__)
#define HL_PACKED_ZMM 1
#define TOKENS 12   /* tokens per prompt tile: one zmm accumulator each */
#else
#define TOKENS 6    /* tokens per prompt tile: 12 ymm accumulators */
#endif
#define DECODE_PANELS 4 /* panels per one-token tile: 8 independent chains */
#define K_BLOCK 256 /* a panel's K_BLOCK × 16 slice (16 KiB) stays in L1 over all token tiles */
#define PROMPT_GRAIN 4 /* panels a thread claims at a time for a prompt (hl_pool_for_balanced) */
#define T_BLOCK 144 /* tokens per pass: their T_BLOCK × K_BLOCK slice of x (144 KiB) stays in L2 */

float hl_dot_seq(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t k = 0; k < n; k++) s = fmaf(a[k], b[k], s);
    return s;
}

int64_t hl_packed_floats(int64_t O, int64_t K) { return (O + PANEL - 1) / PANEL * PANEL * K; }

void hl_pack_weights(float *dst, const float *w, int64_t O, int64_t K) {
    int64_t n_panels = (O + PANEL - 1) / PANEL;
    for (int64_t p = 0; p < n_panels; p++) {
        float *panel = dst + p * PANEL * K; /* (K, 16) */
        for (int r = 0; r < PANEL; r++) {
            int64_t o = p * PANEL + r;
            if (o < O)
                for (int64_t k = 0; k < K; k++) panel[k * PANEL + r] = w[o * K + k];
            else
                for (int64_t k = 0; k < K; k++) panel[k * PANEL + r] = 0.0f;
        }
    }
}

/* out (C tokens × 16; row stride ldo) = chain over n steps of k, starting
 * from the values already in out (load) or from zero. wp: panel at the first
 * k; x: token 0 at the first k, row stride ldx. */
#ifdef HL_PACKED_ZMM
/* AVX-512: a panel's 16 rows are one zmm, so a tile is 16 rows × 12 tokens
 * with one accumulator per token. The chains are the same as below. */
static inline __attribute__((always_inline)) void prompt_tile(const float *wp, const float *x, int64_t ldx,
                                                              int64_t n, float *out, int64_t ldo, int load,
                                                              const float *pf, const int C) {
    __m512 a[TOKENS];
    for (int c = 0; c < C; c++) a[c] = load ? _mm512_loadu_ps(out + c * ldo) : _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k++) {
        __m512 w = _mm512_loadu_ps(wp + k * PANEL);
        if (pf) _mm_prefetch((const char *)(pf + k * PANEL), _MM_HINT_T0);
        for (int c = 0; c < C; c++) a[c] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[c * ldx + k]), a[c]);
    }
    for (int c = 0; c < C; c++) _mm512_storeu_ps(out + c * ldo, a[c]);
}

/* Two adjacent panels (32 rows; the second ps floats after the first, its
 * outputs 16 columns on) × C tokens: 24 accumulators, and per k two weight
 * loads and C broadcasts feed 2·C fused multiply-adds, where one panel
 * needs C + 1 loads for C. The one-panel tile was load-bound on an Intel
 * part with two 512-bit FMA pipes (its x·Wᵀ ran at 66% of OpenBLAS's
 * sgemm there). Each element's chain is the same as above. */
static inline __attribute__((always_inline)) void prompt_tile2(const float *wp, int64_t ps, const float *x,
                                                               int64_t ldx, int64_t n, float *out, int64_t ldo,
                                                               int load, const float *pf, const int C) {
    __m512 a[2][TOKENS];
    for (int c = 0; c < C; c++) {
        a[0][c] = load ? _mm512_loadu_ps(out + c * ldo) : _mm512_setzero_ps();
        a[1][c] = load ? _mm512_loadu_ps(out + c * ldo + PANEL) : _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < n; k++) {
        const __m512 w0 = _mm512_loadu_ps(wp + k * PANEL), w1 = _mm512_loadu_ps(wp + ps + k * PANEL);
        if (pf) {
            _mm_prefetch((const char *)(pf + k * PANEL), _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + ps + k * PANEL), _MM_HINT_T0);
        }
        for (int c = 0; c < C; c++) {
            const __m512 b = _mm512_set1_ps(x[c * ldx + k]);
            a[0][c] = _mm512_fmadd_ps(w0, b, a[0][c]);
            a[1][c] = _mm512_fmadd_ps(w1, b, a[1][c]);
        }
    }
    for (int c = 0; c < C; c++) {
        _mm512_storeu_ps(out + c * ldo, a[0][c]);
        _mm512_storeu_ps(out + c * ldo + PANEL, a[1][c]);
    }
}
#elif defined(HL_PACKED_SIMD)
static inline __attribute__((always_inline)) void prompt_tile(const float *wp, const float *x, int64_t ldx,
                                                              int64_t n, float *out, int64_t ldo, int load,
                                                              const float *pf, const int C) {
    __m256 a[TOKENS][2];
    for (int c = 0; c < C; c++) {
        a[c][0] = load ? _mm256_loadu_ps(out + c * ldo) : _mm256_setzero_ps();
        a[c][1] = load ? _mm256_loadu_ps(out + c * ldo + 8) : _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < n; k++) {
        __m256 w0 = _mm256_loadu_ps(wp + k * PANEL), w1 = _mm256_loadu_ps(wp + k * PANEL + 8);
        if (pf) _mm_prefetch((const char *)(pf + k * PANEL), _MM_HINT_T0);
        for (int c = 0; c < C; c++) {
            __m256 b = _mm256_broadcast_ss(x + c * ldx + k);
            a[c][0] = _mm256_fmadd_ps(w0, b, a[c][0]);
            a[c][1] = _mm256_fmadd_ps(w1, b, a[c][1]);
        }
    }
    for (int c = 0; c < C; c++) {
        _mm256_storeu_ps(out + c * ldo, a[c][0]);
        _mm256_storeu_ps(out + c * ldo + 8, a[c][1]);
    }
}
#endif

#ifdef HL_PACKED_SIMD
/* One token, P consecutive panels (panel stride ps), the whole K from zero:
 * out[16·i .. 16·i+15] for panel i. */
static inline __attribute__((always_inline)) void decode_tile(const float *wp, int64_t ps, const float *x, int64_t K,
                                                              float *out, const int P) {
    __m256 a[DECODE_PANELS][2];
    for (int p = 0; p < P; p++) a[p][0] = a[p][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m256 b = _mm256_broadcast_ss(x + k);
        for (int p = 0; p < P; p++) {
            a[p][0] = _mm256_fmadd_ps(_mm256_loadu_ps(wp + p * ps + k * PANEL), b, a[p][0]);
            a[p][1] = _mm256_fmadd_ps(_mm256_loadu_ps(wp + p * ps + k * PANEL + 8), b, a[p][1]);
        }
    }
    for (int p = 0; p < P; p++) {
        _mm256_storeu_ps(out + p * PANEL, a[p][0]);
        _mm256_storeu_ps(out + p * PANEL + 8, a[p][1]);
    }
}
#else
/* Scalar builds: the same chains, one element at a time. */
static void prompt_tile(const float *wp, const float *x, int64_t ldx, int64_t n, float *out, int64_t ldo, int load,
                        const float *pf, const int C) {
    (void)pf;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < PANEL; r++) {
            float s = load ? out[c * ldo + r] : 0.0f;
            for (int64_t k = 0; k < n; k++) s = fmaf(wp[k * PANEL + r], x[c * ldx + k], s);
            out[c * ldo + r] = s;
        }
}

static void decode_tile(const float *wp, int64_t ps, const float *x, int64_t K, float *out, const int P) {
    for (int p = 0; p < P; p++) prompt_tile(wp + p * ps, x, K, K, out + p * PANEL, PANEL, 0, NULL, 1);
}
#endif

/* Token tiles of TOKENS (6 or 12) over T tokens, each call with a constant count. The
 * first tile pulls the next panel's slice (pf, or NULL) into the cache one
 * line per k step: streaming weights from memory, the hardware prefetcher
 * alone stalled the first tile of every slice (≈20% of a prompt on s110M). */
static inline void prompt_tiles(const float *wp, const float *x, int64_t K, int64_t T, int64_t n_k, float *out,
                                int64_t ldo, int load, const float *pf) {
    int64_t t = 0;
    if (T >= TOKENS) {
        prompt_tile(wp, x, K, n_k, out, ldo, load, pf, TOKENS);
        t = TOKENS;
    }
    for (; t + TOKENS <= T; t += TOKENS) prompt_tile(wp, x + t * K, K, n_k, out + t * ldo, ldo, load, NULL, TOKENS);
    switch (T - t) { /* the tail, again with a constant count */
#define TAIL(n) case n: prompt_tile(wp, x + t * K, K, n_k, out + t * ldo, ldo, load, NULL, n); break
#if TOKENS > 6
    TAIL(11); TAIL(10); TAIL(9); TAIL(8); TAIL(7); TAIL(6);
#endif
    TAIL(5); TAIL(4); TAIL(3); TAIL(2); TAIL(1);
#undef TAIL
    default: break;
    }
}

#ifdef HL_PACKED_ZMM
/* prompt_tiles for two adjacent panels (prompt_tile2); pf: the next pair. */
static inline void prompt_tiles2(const float *wp, int64_t ps, const float *x, int64_t K, int64_t T, int64_t n_k,
                                 float *out, int64_t ldo, int load, const float *pf) {
    int64_t t = 0;
    if (T >= TOKENS) {
        prompt_tile2(wp, ps, x, K, n_k, out, ldo, load, pf, TOKENS);
        t = TOKENS;
    }
    for (; t + TOKENS <= T; t += TOKENS) prompt_tile2(wp, ps, x + t * K, K, n_k, out + t * ldo, ldo, load, NULL, TOKENS);
    switch (T - t) {
#define TAIL(n) case n: prompt_tile2(wp, ps, x + t * K, K, n_k, out + t * ldo, ldo, load, NULL, n); break
    TAIL(11); TAIL(10); TAIL(9); TAIL(8); TAIL(7); TAIL(6); TAIL(5); TAIL(4); TAIL(3); TAIL(2); TAIL(1);
#undef TAIL
    default: break;
    }
}
#endif

typedef struct {
    float *out;
    int64_t ldo;
    const float *wp; /* packed */
    int64_t O;
} part;

typedef struct {
    const float *x;
    int64_t T, K;
    part parts[HL_MATMUL_MAX_PARTS];
    int64_t first_panel[HL_MATMUL_MAX_PARTS + 1];
    int n;
} packed_job;

/* Panels [p0, p1) of one part. A full panel writes its 16 columns of out in
 * place; the last, partial one (O % 16 rows) goes through a small buffer one
 * token tile at a time so that nothing past column O is written. */
static void part_panels(const packed_job *j, const part *pt, int64_t p0, int64_t p1) {
    const int64_t T = j->T, K = j->K, ps = PANEL * K;
    int64_t full_end = pt->O / PANEL; /* panels [0, full_end) are full */
    int64_t f1 = p1 < full_end ? p1 : full_end;
    if (K == 0) { /* an empty sum */
        for (int64_t t = 0; t < T; t++) {
            int64_t c1 = p1 * PANEL < pt->O ? p1 * PANEL : pt->O;
            memset(pt->out + t * pt->ldo + p0 * PANEL, 0, (size_t)(c1 - p0 * PANEL) * sizeof(float));
        }
        return;
    }
    if (T == 1) {
        float tmp[DECODE_PANELS * PANEL];
        int64_t p = p0;
        for (; p + DECODE_PANELS <= f1; p += DECODE_PANELS)
            decode_tile(pt->wp + p * ps, ps, j->x, K, pt->out + p * PANEL, DECODE_PANELS);
        for (; p < f1; p++) decode_tile(pt->wp + p * ps, ps, j->x, K, pt->out + p * PANEL, 1);
        if (p < p1) { /* the partial panel */
            decode_tile(pt->wp + p * ps, ps, j->x, K, tmp, 1);
            memcpy(pt->out + p * PANEL, tmp, (size_t)(pt->O - p * PANEL) * sizeof(float));
        }
        return;
    }
    for (int64_t t0 = 0; t0 < T; t0 += T_BLOCK) {
        const int64_t nt = T - t0 < T_BLOCK ? T - t0 : T_BLOCK;
        const float *x = j->x + t0 * K;
        float *out = pt->out + t0 * pt->ldo;
        for (int64_t k0 = 0; k0 < K; k0 += K_BLOCK) {
            int64_t n = K - k0 < K_BLOCK ? K - k0 : K_BLOCK;
            int64_t p = p0;
#ifdef HL_PACKED_ZMM
            for (; p + 2 <= f1; p += 2)
                prompt_tiles2(pt->wp + p * ps + k0 * PANEL, ps, x + k0, K, nt, n, out + p * PANEL, pt->ldo, k0 > 0,
                              p + 3 < full_end ? pt->wp + (p + 2) * ps + k0 * PANEL : NULL);
#endif
            for (; p < f1; p++)
                prompt_tiles(pt->wp + p * ps + k0 * PANEL, x + k0, K, nt, n, out + p * PANEL, pt->ldo, k0 > 0,
                             p + 1 < full_end ? pt->wp + (p + 1) * ps + k0 * PANEL : NULL);
        }
    }
    if (f1 < p1) {
        float tmp[TOKENS * PANEL];
        int64_t p = f1, cols = pt->O - p * PANEL;
        for (int64_t t = 0; t < T; t += TOKENS) {
            int64_t c = T - t < TOKENS ? T - t : TOKENS;
            prompt_tiles(pt->wp + p * ps, j->x + t * K, K, c, K, tmp, PANEL, 0, NULL);
            for (int64_t i = 0; i < c; i++)
                memcpy(pt->out + (t + i) * pt->ldo + p * PANEL, tmp + i * PANEL, (size_t)cols * sizeof(float));
        }
    }
}

static void packed_panels(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const packed_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        int64_t b = begin > j->first_panel[i] ? begin : j->first_panel[i];
        int64_t e = end < j->first_panel[i + 1] ? end : j->first_panel[i + 1];
        if (b < e) part_panels(j, &j->parts[i], b - j->first_panel[i], e - j->first_panel[i]);
    }
}

void hl_matmul_packed_group(hl_pool *pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n) {
    packed_job j = {.x = x, .T = T, .K = K, .n = n < HL_MATMUL_MAX_PARTS ? n : HL_MATMUL_MAX_PARTS};
    int64_t panels = 0, rows = 0;
    for (int i = 0; i < j.n; i++) {
        j.parts[i] = (part){parts[i].out, parts[i].ldo, parts[i].w, parts[i].O};
        j.first_panel[i] = panels;
        panels += (parts[i].O + PANEL - 1) / PANEL;
        rows += parts[i].O;
    }
    j.first_panel[j.n] = panels;
    if (T * K * rows < 32768) pool = NULL; /* not worth waking workers */
    /* Prompts are compute-bound: a thread that finishes its panels first takes
     * the other's last ones (no value depends on which thread runs a panel). */
    if (T > 1) hl_pool_for_balanced(pool, panels, PROMPT_GRAIN, packed_panels, &j);
    else hl_pool_for_adaptive(pool, panels, 1, packed_panels, &j); /* decoding: the shares follow the cores */
}

void hl_matmul_packed(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *wp, int64_t T, int64_t K,
                      int64_t O) {
    hl_matmul_part p = {out, ldo, wp, O};
    hl_matmul_packed_group(pool, x, T, K, &p, 1);
}

/* ---- dX = dY·W from the same panels (training's input gradient) ----
 *
 * At a fixed k a panel holds W[16p .. 16p+15][k] contiguously: the 16 rows
 * o that dy[t][16p .. 16p+15] multiplies. So out[t][k] = Σ_o dy[t][o]·W[o][k]
 * is a 16-lane dot product over o read straight from the panels. Order: O
 * is cut into blocks of NN_O_BLOCK panels; within a block lane r chains
 * fused multiply-adds over the block's panels in order (lane r takes the
 * rows o ≡ r mod 16; rows past O count as zero); the lanes are reduced by
 * hl_hsum16's tree; the blocks' sums go into out in order (the first one
 * stored unless accumulating). Fixed by the shapes alone, so the same at
 * any thread count. */
#define NN_O_BLOCK 64  /* panels per reduction block: 8 columns of them are a 32-KiB slice */
#define NN_TOKENS 3    /* tokens per tile: 8 k × 3 tokens of zmm accumulators */
#define NN_AHEAD 8     /* panels ahead that the AVX-512 tile asks for dY (a prefetch; no value depends on it) */
#define NN_T_BLOCK 96  /* tokens per pass over the columns: their dy rows of a block (384 KiB) stay in L2 */

typedef struct {
    float *out;
    const float *dy, *wp;
    int64_t T, O, K;
    int accumulate;
} nn_job;

static inline void nn_put(float *dst, float v, int add) { *dst = add ? *dst + v : v; }

/* The scalar form of one element's block: the reference for every tile. */
static float nn_block_scalar(const float *dy, const float *wp, int64_t O, int64_t K, int64_t k, int64_t pb,
                             int64_t pe) {
    float l[PANEL] = {0};
    for (int64_t p = pb; p < pe; p++)
        for (int r = 0; r < PANEL; r++) {
            int64_t o = p * PANEL + r;
            l[r] = fmaf(o < O ? dy[o] : 0.0f, wp[p * PANEL * K + k * PANEL + r], l[r]);
        }
    return hl_hsum16_scalar(l);
}

#ifdef HL_PACKED_ZMM
/* 8 k × C tokens over the n panels of one block. slice: the block's rows
 * k .. k+7 gathered contiguously, slice[(p·8 + i)·16 + r] = W[16(pb+p)+r][k+i];
 * dy: token t0's row at the block's first panel (row stride O); valid: rows
 * of the block below O (the last panel may be partial). */
static inline __attribute__((always_inline)) void nn_tile(const float *slice, int64_t n, const float *dy, int64_t O,
                                                          int64_t valid, float *out, int64_t K, int add, const int C) {
    __m512 acc[NN_TOKENS][8];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < 8; i++) acc[c][i] = _mm512_setzero_ps();
    /* the full panels with plain loads, dY asked for NN_AHEAD panels early;
     * then the last, partial one (rows past O read as zero) */
    const int64_t full = valid >= n * PANEL ? n : valid / PANEL;
    for (int64_t p = 0; p < n; p++) {
        __m512 d[NN_TOKENS];
        if (p < full) {
            for (int c = 0; c < C; c++) {
                d[c] = _mm512_loadu_ps(dy + c * O + p * PANEL);
                _mm_prefetch((const char *)(dy + c * O + (p + NN_AHEAD) * PANEL), _MM_HINT_T0);
            }
        } else {
            const __mmask16 m = (__mmask16)((1u << (valid - p * PANEL)) - 1u);
            for (int c = 0; c < C; c++) d[c] = _mm512_maskz_loadu_ps(m, dy + c * O + p * PANEL);
        }
        const float *w = slice + p * 8 * PANEL;
        for (int i = 0; i < 8; i++) {
            __m512 wv = _mm512_load_ps(w + i * PANEL);
            for (int c = 0; c < C; c++) acc[c][i] = _mm512_fmadd_ps(d[c], wv, acc[c][i]);
        }
    }
    for (int c = 0; c < C; c++) {
        __m256 v = hl_hsum16_x8(acc[c]);
        float *dst = out + c * K;
        if (add) v = _mm256_add_ps(_mm256_loadu_ps(dst), v);
        _mm256_storeu_ps(dst, v);
    }
}
#endif

#if defined(HL_PACKED_SIMD) && !defined(HL_PACKED_ZMM)
#define HL_PACKED_NN_YMM 1
#define NN_YMM_TOKENS 2 /* tokens per tile */
#define NN_YMM_COLS 2   /* columns per tile: 2 tokens × 2 columns × 16 lanes = 8 ymm accumulators */
/* The AVX2 form of nn_tile (before it, AVX2 builds ran nn_block_scalar:
 * 5-9 GFLOP/s on a Zen 3 guest; this tile 59-84 over two runs, where OpenBLAS ran
 * 139-178, so that machine trains on OpenBLAS tiles; 1 token x 4 columns
 * measured 49-110). NK columns i0 .. i0+NK-1 of the 8 in the slice,
 * C tokens. Lanes 0-7 and 8-15 of each element's 16 live in two ymm
 * registers and chain the same fused multiply-adds; at the end lane j and
 * j+8 are added and hl_hsum8 finishes hl_hsum16's tree, so the bits are
 * those of nn_block_scalar (and of the AVX-512 form). Each loaded weight
 * feeds C tokens and each loaded dy NK columns. */
static inline __attribute__((always_inline)) void nn_tile_ymm(const float *slice, int64_t n, const float *dy, int64_t O,
                                                              int64_t valid, float *out, int64_t K, int add, int i0,
                                                              const int C, const int NK) {
    __m256 lo[NN_YMM_TOKENS][NN_YMM_COLS], hi[NN_YMM_TOKENS][NN_YMM_COLS];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < NK; i++) lo[c][i] = hi[c][i] = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t p = 0; p < n; p++) {
        const int64_t left = valid - p * PANEL;
        __m256 dl[NN_YMM_TOKENS], dh[NN_YMM_TOKENS];
        if (left >= PANEL) {
            for (int c = 0; c < C; c++) {
                dl[c] = _mm256_loadu_ps(dy + c * O + p * PANEL);
                dh[c] = _mm256_loadu_ps(dy + c * O + p * PANEL + 8);
            }
        } else { /* the last, partial panel: rows past O read as zero */
            const __m256i ml = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane);
            const __m256i mh = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left - 8), lane);
            for (int c = 0; c < C; c++) {
                dl[c] = _mm256_maskload_ps(dy + c * O + p * PANEL, ml);
                dh[c] = _mm256_maskload_ps(dy + c * O + p * PANEL + 8, mh);
            }
        }
        const float *w = slice + p * 8 * PANEL + i0 * PANEL;
        for (int i = 0; i < NK; i++) {
            const __m256 wl = _mm256_load_ps(w + i * PANEL), wh = _mm256_load_ps(w + i * PANEL + 8);
            for (int c = 0; c < C; c++) {
                lo[c][i] = _mm256_fmadd_ps(dl[c], wl, lo[c][i]);
                hi[c][i] = _mm256_fmadd_ps(dh[c], wh, hi[c][i]);
            }
        }
    }
    for (int c = 0; c < C; c++)
        for (int i = 0; i < NK; i++) nn_put(out + c * K + i0 + i, hl_hsum8(_mm256_add_ps(lo[c][i], hi[c][i])), add);
}
#endif

/* Columns [8·kb0, 8·kb1) of out (clipped to K), all tokens. Per block of
 * panels and 8 columns, the panels' rows for those columns are gathered
 * into one contiguous slice first: read in place, each step of the
 * reduction would jump 16·K floats to the next panel (a new page every
 * time), which measured 140–157 GFLOP/s against ~230 for OpenBLAS. */
static void nn_columns(void *arg, int64_t kb0, int64_t kb1, int worker) {
    (void)worker;
    const nn_job *j = arg;
    const int64_t K = j->K, O = j->O, T = j->T, n_panels = (O + PANEL - 1) / PANEL;
    const int64_t k0 = kb0 * 8, k1 = kb1 * 8 < K ? kb1 * 8 : K;
    if (n_panels == 0) { /* O = 0: an empty sum */
        for (int64_t t = 0; !j->accumulate && t < T; t++)
            memset(j->out + t * K + k0, 0, (size_t)(k1 - k0) * sizeof(float));
        return;
    }
    for (int64_t pb = 0; pb < n_panels; pb += NN_O_BLOCK) {
        const int64_t pe = pb + NN_O_BLOCK < n_panels ? pb + NN_O_BLOCK : n_panels;
        const int add = j->accumulate || pb > 0;
        int64_t k = k0;
#if defined(HL_PACKED_ZMM) || defined(HL_PACKED_NN_YMM)
        _Alignas(64) float slice[NN_O_BLOCK * 8 * PANEL]; /* 32 KiB */
        const int64_t n = pe - pb, valid = O - pb * PANEL, ps = PANEL * K;
        const int64_t k8 = k0 + (k1 - k0) / 8 * 8;
        /* tokens in blocks of NN_T_BLOCK, so that their rows of dy for this
         * block of panels stay in L2 across all the columns */
        for (int64_t t0 = 0; t0 < T; t0 += NN_T_BLOCK) {
            const int64_t t1 = T - t0 < NN_T_BLOCK ? T : t0 + NN_T_BLOCK;
            for (k = k0; k < k8; k += 8) {
                for (int64_t p = 0; p < n; p++)
                    memcpy(slice + p * 8 * PANEL, j->wp + (pb + p) * ps + k * PANEL, 8 * PANEL * sizeof(float));
                int64_t t = t0;
#ifdef HL_PACKED_ZMM
                for (; t + NN_TOKENS <= t1; t += NN_TOKENS)
                    nn_tile(slice, n, j->dy + t * O + pb * PANEL, O, valid, j->out + t * K + k, K, add, NN_TOKENS);
                for (; t < t1; t++)
                    nn_tile(slice, n, j->dy + t * O + pb * PANEL, O, valid, j->out + t * K + k, K, add, 1);
#else
                for (; t + NN_YMM_TOKENS <= t1; t += NN_YMM_TOKENS)
                    for (int i0 = 0; i0 < 8; i0 += NN_YMM_COLS)
                        nn_tile_ymm(slice, n, j->dy + t * O + pb * PANEL, O, valid, j->out + t * K + k, K, add, i0,
                                    NN_YMM_TOKENS, NN_YMM_COLS);
                for (; t < t1; t++)
                    for (int i0 = 0; i0 < 8; i0 += NN_YMM_COLS)
                        nn_tile_ymm(slice, n, j->dy + t * O + pb * PANEL, O, valid, j->out + t * K + k, K, add, i0,
                                    1, NN_YMM_COLS);
#endif
            }
        }
        k = k8;
#endif
        for (; k < k1; k++)
            for (int64_t t = 0; t < T; t++)
                nn_put(j->out + t * K + k, nn_block_scalar(j->dy + t * O, j->wp, O, K, k, pb, pe), add);
    }
}

void hl_matmul_packed_nn(hl_pool *pool, float *out, const float *dy, const float *wp, int64_t T, int64_t O, int64_t K,
                         int accumulate) {
    nn_job j = {out, dy, wp, T, O, K, accumulate};
    if (T * K * O < 32768) pool = NULL; /* not worth waking workers */
    hl_pool_for(pool, (K + 7) / 8, 1, nn_columns, &j);
}

int hl_matmul_packed_nn_is_fast(void) {
#if defined(HL_PACKED_ZMM) || defined(HL_PACKED_NN_YMM)
    return 1;
#else
    return 0;
#endif
}
