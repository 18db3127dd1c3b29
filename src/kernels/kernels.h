/* kernels.h: the numeric kernels of the forward pass.
 *
 * Every fast kernel has a plain reference in reference.c that tests compare
 * against. Reductions have one canonical order per output element (see
 * hl_dot), independent of thread count and of how many tokens are batched
 * together, so a token's logits are bit-identical whether it is decoded alone
 * or inside a prompt batch, at any --threads.
 *
 * Matrix convention: row-major, weights [out][in] (ggml ne = [in, out]).
 */
#ifndef HL_KERNELS_H
#define HL_KERNELS_H
#include <stdint.h>
#include "kernels/dispatch.h"  /* the SIMD level the kernels run at */
#include "util/isa_names.h" /* per-level names in a portable build */
#include "quant/quant_types.h"
#include "util/threadpool.h"

/* The canonical dot product: L interleaved lanes (lane j sums the products
 * k = j, j+L, ... with fused multiply-add), lanes combined in a fixed tree,
 * then the n % L tail added in order. L = 16 at the AVX-512 level (lanes j
 * and j+8 added first, then the 8-lane tree), 8 at the AVX2 and scalar levels;
 * the SIMD and scalar code of a level agree bitwise. One order per level
 * (kernels/dispatch.h: fixed at compile time in a native build, chosen once
 * per process in a portable one), so results are the same on every run and
 * thread count at that level; AVX2 and scalar give the same bits. */
float hl_dot(const float *a, const float *b, int64_t n);

/* out (T, O) = x (T, K) · w (O, K)ᵀ, threads split over O. */
void hl_matmul(hl_pool *pool, float *out, const float *x, const float *w, int64_t T, int64_t K, int64_t O);

/* The same with an output row stride ldo >= O (a slice of wider rows);
 * accumulate adds scale·(x·Wᵀ), otherwise stores x·Wᵀ (scale ignored). */
void hl_matmul_strided(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K,
                       int64_t O, float scale, int accumulate);
/* hl_matmul_strided (store, not accumulate) on the calling thread only: the
 * quantized kernels run it on a dequantized tile of rows. */
void hl_matmul_serial(float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K, int64_t O);
/* Several x·Wᵀ products of one input x (T, K) in one dispatch: part i stores
 * out_i (T, O_i; row stride ldo_i) = x · W_iᵀ, bitwise as hl_matmul_strided. */
#define HL_MATMUL_MAX_PARTS 4
typedef struct {
    float *out;
    int64_t ldo;
    const float *w;
    int64_t O;
} hl_matmul_part;
void hl_matmul_group(hl_pool *pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n);
/* Packed weights (matmul_packed.c), what SIMD builds run inference on:
 * W (O, K) as ceil(O/16) panels of (K, 16), rows past O zero. Each element is
 * hl_dot_seq's chain (fused multiply-adds over k in order from zero) in every
 * tile, batch and thread count, so batched == token by token here too; the
 * bits differ from hl_matmul's lane-tree order. */
#define HL_PACK_ROWS 16
float hl_dot_seq(const float *a, const float *b, int64_t n);
int64_t hl_packed_floats(int64_t O, int64_t K); /* floats hl_pack_weights writes */
void hl_pack_weights(float *dst, const float *w, int64_t O, int64_t K);
/* out (T, O; row stride ldo) = x (T, K) · Wᵀ with W packed; the group form
 * takes hl_matmul_part entries whose w is packed. Stores, never accumulates. */
void hl_matmul_packed(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *wp, int64_t T, int64_t K,
                      int64_t O);
void hl_matmul_packed_group(hl_pool *pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n);
/* out (T, K) (+)= dy (T, O) · W (O, K) with W packed (O-row panels, as
 * above): training's input gradient from the same copy. Each element: O cut
 * into blocks of 64 panels; in a block, lane r = o % 16 chains fused
 * multiply-adds over the panels in order, the 16 lanes reduced by
 * hl_hsum16's tree; block sums added to out in order. Threads split over K.
 * hl_matmul_packed_nn_is_fast: 1 where it is vectorised (AVX2 and AVX-512,
 * the same bits), else it runs the same order in scalar code. */
void hl_matmul_packed_nn(hl_pool *pool, float *out, const float *dy, const float *wp, int64_t T, int64_t O, int64_t K,
                         int accumulate);
int hl_matmul_packed_nn_is_fast(void);
/* out (T, K) (+)= scale · dy (T, O) · W (O, K): the input gradient of a
 * projection (dX = dY·W, W never transposed or copied). Each element sums
 * over o in order with fused multiply-adds; threads split over K. */
void hl_matmul_nn(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                  float scale, int accumulate);
/* G (M, N) += Pᵀ · Q with P (T, M), Q (T, N): the weight gradient of LoRA's
 * small matrices. Sums over t in order; threads split over M. */
void hl_matmul_tn_acc(hl_pool *pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N);

/* The same three products on OpenBLAS (gemm_blas.c), for training: a fixed
 * tile grid per shape, one single-threaded sgemm per tile, so results are
 * identical at any thread count but not equal bit for bit to hl_matmul's
 * canonical order. Same arguments as hl_matmul_strided, hl_matmul_nn and
 * hl_matmul_tn_acc. */
void hl_gemm_nt(hl_pool *pool, float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K,
                int64_t O, float scale, int accumulate);
void hl_gemm_nn(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                float scale, int accumulate);
void hl_gemm_tn_acc(hl_pool *pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N);
/* hl_gemm_nn for a reduction much longer than the output (the LM head's input
 * gradient, O = vocabulary): O is cut into HL_GEMM_SPLIT_K parts computed side
 * by side and added in order, so no tile repacks the long operands. scratch:
 * HL_GEMM_SPLIT_K · T · K floats. */
#define HL_GEMM_SPLIT_K 2
void hl_gemm_nn_split(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                      float scale, int accumulate, float *scratch);
/* Makes OpenBLAS single-threaded (once per process); the hl_gemm_* and
 * training attention call it themselves. */
void hl_gemm_init(void);

/* out[i] = exp(x[i] − shift) (out may be NULL or alias x); returns Σ out[i]
 * in double, 8 lanes in a fixed tree (exp_sum.c). For shift ≥ max(x). */
double hl_exp_sum(float *out, const float *x, int64_t n, float shift);
/* out[i] = exp(x[i]) by the same method (0 below −86 and for NaN, +inf above 88). out may alias x. */
void hl_exp(float *out, const float *x, int64_t n);

/* out = w ⊙ x / sqrt(mean(x²) + eps), one row of C. out may alias x. */
void hl_rmsnorm(float *out, const float *x, const float *w, int64_t C, float eps);
/* x = softmax(x) in place, n ≥ 1: the exponentials and their sum by
 * hl_exp_sum (shifted by the maximum), as the training attention takes them. */
void hl_softmax(float *x, int64_t n);
/* RoPE rotates adjacent pairs (2i, 2i+1) of each head of size D by
 * pos·theta^(-2i/D) (GGUF/llama.cpp "normal" order, as llama2.c). The angles
 * are tabulated once: cs (n_pos, D) holds (cos, sin) of pair i/2 at
 * [pos·D + i, pos·D + i + 1], computed in double and rounded once. */
void hl_rope_table(float *cs, int64_t n_pos, int64_t D, float theta);
/* Rotates vec (n_heads·D floats) by one position's row of the table; with
 * inverse, by the negative angle (RoPE's gradient: the rotation is orthogonal). */
void hl_rope_apply(float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse);
/* As hl_rope_table with per-pair frequency factors (Llama-3's rope_freqs):
 * pair i/2's angle is divided by ff[i/2]; ff NULL means all 1. */
void hl_rope_table_scaled(float *cs, int64_t n_pos, int64_t D, float theta, const float *ff);
/* RoPE on the pairs (j, j + D/2) (llama.cpp's NEOX order, qwen2/qwen3),
 * pair j turned by the angle at cs[2j], cs[2j+1] of the same table. */
void hl_rope_apply_neox(float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse);
/* dx (+)= the input gradient of rmsnorm for one row (x, w, dy). */
void hl_rmsnorm_backward(float *dx, const float *x, const float *w, const float *dy, int64_t C, float eps,
                         int accumulate);
/* dgate, dup from d(out) for out = silu(gate) ⊙ up (sigmoid through hl_exp). */
void hl_swiglu_backward(float *dgate, float *dup, const float *gate, const float *up, const float *dout, int64_t n);

/* Training attention over B rows of T tokens: q (B·T, H·D), k, v (B·T, Hkv·D)
 * -> out (B·T, H·D). pos (B, T) gives each token's position in its document,
 * or is NULL for one document per row (positions 0..T-1). A row may hold
 * several documents: a document starts where pos is 0 (pos[b][0] must be 0)
 * and pos otherwise counts up by one. A token attends to the tokens of its own
 * document up to itself. scratch: n_threads · T · T floats (each worker's
 * probabilities for one head; nothing is kept for the backward pass). */
void hl_attention_train(hl_pool *pool, float *out, const float *q, const float *k, const float *v,
                        const int32_t *pos, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, float *scratch);
/* dq (B·T, H·D), dk, dv (B·T, Hkv·D) from dout; overwrites dq/dk/dv; pos as above.
 * Each head's probabilities are recomputed from q and k exactly as the forward
 * pass made them. Threads split over (sequence, kv head) so the group's dk/dv
 * sums keep one order. scratch: 2 · n_threads · T · T floats. Both passes run
 * on OpenBLAS (attention_train.c). */
void hl_attention_train_backward(hl_pool *pool, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                                 int64_t Hkv, int64_t D, float *scratch);
/* out = silu(gate) ⊙ up, n floats, the sigmoid through hl_exp. out may alias gate. */
void hl_swiglu(float *out, const float *gate, const float *up, int64_t n);

/* Causal grouped-query attention for T query tokens at positions pos0..pos0+T-1.
 * q (T, H·D); kcache, vcache (n_ctx, Hkv·D) already hold positions 0..pos0+T-1;
 * out (T, H·D); scratch: n_threads · n_ctx floats. Threads split over (t, h). */
void hl_attention(hl_pool *pool, float *out, const float *q, const float *kcache, const float *vcache,
                  int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t n_ctx, float *scratch);

/* Quantized weights (matmul_quant.c): W is an hl_qweight (rows O, cols K)
 * read straight from its blocks. hl_qmatmul stores out (T, O; row stride
 * ldo) = x (T, K) · Wᵀ: each thread dequantizes HL_QTILE rows of W at a time
 * into its slice of scratch and runs hl_matmul_serial on them, so every
 * element is hl_dot(x_t, dequantized row), bit-identical to hl_matmul_strided
 * on the dequantized f32 copy, at any batch size and thread count.
 * hl_qmatmul_nn: out (T, K) (+)= dy (T, O) · W, threads split over the
 * blocks of a row; each element chains fused multiply-adds over o in order,
 * starting from 0 (store) or from out's value (accumulate).
 * scratch: hl_qmatmul_scratch_floats(threads, K) floats, for both. */
#define HL_QTILE 16
int64_t hl_qmatmul_scratch_floats(int n_threads, int64_t K);
void hl_qmatmul(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                float *scratch);
void hl_qmatmul_nn(hl_pool *pool, float *out, const float *dy, const hl_qweight *w, int64_t T, int accumulate,
                   float *scratch);

/* 8-bit activations (matmul_a8.c): out (T, O; row stride ldo) = x (T, K) ·
 * Wᵀ for weights of every block type (q4_0 ... q8_0, q2_K ... q6_K:
 * hl_qmatmul_a8_supports), with each
 * token quantized to int8 per weight block and integer dot products, as
 * llama.cpp's CPU kernels do: within about 3e-2 of exact arithmetic on the
 * logits, not bit-equal to hl_qmatmul. Its float order is fixed and shared
 * by every SIMD level, so scalar, AVX2 and AVX-512 builds, any thread count
 * and any batch size give the same bits. scratch: at least
 * hl_qmatmul_a8_scratch_bytes(K) bytes (one token, or one q8_0 panel of
 * eight); more lets it quantize more tokens at once. */
static inline int hl_qmatmul_a8_supports(uint32_t type) {
    return type == 2 || type == 3 || type == 6 || type == 7 || type == 8 || (type >= 10 && type <= 14);
}
/* 0: 32-element activation blocks (q4_0, q4_1, q5_0, q5_1, q8_0); 1: 256 (the K types). */
static inline int hl_qmatmul_a8_form(uint32_t type) { return type <= 8 ? 0 : 1; }
static inline int64_t hl_qmatmul_a8_scratch_bytes(int64_t K) { return 10 * K + 128; } /* a q8_0 panel, aligned */
void hl_qmatmul_a8(hl_pool *pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T,
                   void *scratch, int64_t scratch_bytes);
/* Decoding one token through several weights that read it (q, k and v;
 * gate and up) in one dispatch: the token is quantized once per activation
 * layout, and the weights' rows are split between the threads as one range,
 * so each thread streams fewer, longer runs. parts[i].out (w->rows floats)
 * gets exactly what hl_qmatmul_a8 gives it (hl_qgroup_row_at says where
 * the threads' rows end). n ≤ HL_QGROUP_MAX weights of
 * hl_qmatmul_a8_supports types with the same cols; scratch as for
 * hl_qmatmul_a8 (when it cannot hold the group's layouts, the parts run one
 * at a time: the same bits). */
#define HL_QGROUP_MAX 4
typedef struct hl_qpart {
    float *out;
    const hl_qweight *w;
} hl_qpart;
void hl_qmatmul_a8_group(hl_pool *pool, const float *x, const hl_qpart *parts, int n, void *scratch,
                         int64_t scratch_bytes);
/* How hl_qmatmul_a8_group splits its rows: by the bytes they read, not by
 * their count, so that a thread given q and k (q4_K) does as much as one
 * given v (q6_K, half as many bytes again per row). Part i's rows are
 * [first[i], first[i+1]) and its bytes [unit_first[i], unit_first[i+1]);
 * the row that byte u of the whole falls at or after, rounded up to a
 * multiple of `panel` within its part. Non-decreasing in u, from 0 at u = 0
 * to first[n] at u ≥ unit_first[n], so the threads' byte ranges give each
 * row to exactly one of them. */
static inline int64_t hl_qgroup_row_at(const int64_t *first, const int64_t *unit_first, int n, int64_t u,
                                       int64_t panel) {
    int i = 0;
    while (i < n && u >= unit_first[i + 1]) i++;
    if (i == n) return first[n];
    const int64_t rows = first[i + 1] - first[i], row_bytes = (unit_first[i + 1] - unit_first[i]) / rows;
    int64_t r = (u - unit_first[i] + row_bytes - 1) / row_bytes;
    r = (r + panel - 1) / panel * panel;
    return first[i] + (r < rows ? r : rows);
}

/* ---- plain references (tests only) ---- */
double hl_exp_sum_ref(float *out, const float *x, int64_t n, float shift);
void hl_exp_ref(float *out, const float *x, int64_t n);
void hl_matmul_nn_ref(float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K);
void hl_matmul_tn_ref(float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N);
void hl_matmul_ref(float *out, const float *x, const float *w, int64_t T, int64_t K, int64_t O);
void hl_rmsnorm_ref(float *out, const float *x, const float *w, int64_t C, float eps);
void hl_rope_ref(float *vec, int64_t n_heads, int64_t D, int64_t pos, float theta);
/* NEOX order with frequency factors (ff may be NULL), in double. */
void hl_rope_neox_ref(float *vec, int64_t n_heads, int64_t D, int64_t pos, float theta, const float *ff);
void hl_swiglu_ref(float *out, const float *gate, const float *up, int64_t n);
void hl_swiglu_backward_ref(float *dgate, float *dup, const float *gate, const float *up, const float *dout, int64_t n);
void hl_attention_train_ref(float *out, float *probs, const float *q, const float *k, const float *v,
                            const int32_t *pos, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D);
void hl_attention_train_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                     const float *q, const float *k, const float *v, const int32_t *pos, int64_t B,
                                     int64_t T, int64_t H, int64_t Hkv, int64_t D);
void hl_attention_ref(float *out, const float *q, const float *kcache, const float *vcache,
                      int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D);
#endif
