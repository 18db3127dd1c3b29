/* dispatch.h: the instruction-set level the kernels run at.
 *
 * A native build (HL_NATIVE=ON, -march=native) has one level, fixed at
 * compile time. A portable build compiles the kernels that hold SIMD code
 * once per level (scalar x86-64, AVX2+FMA, AVX-512) and picks one at run
 * time: the best the CPU has, or a lower one named by $HYPERLORA_ISA
 * ("scalar", "avx2", "avx512"). The choice is made once per process, before
 * the first kernel runs, and never changes; see dispatch.c.
 *
 * Each level keeps its own documented order of operations (kernels.h: the
 * dot product's lane count follows the level), so results are bit-identical
 * run to run and across thread counts on one level, not across levels. */
#ifndef HL_KERNELS_DISPATCH_H
#define HL_KERNELS_DISPATCH_H
#include "hyperlora.h"

typedef enum { HL_ISA_SCALAR = 0, HL_ISA_AVX2 = 1, HL_ISA_AVX512 = 2, HL_ISA_COUNT = 3 } hl_isa;

/* "scalar", "avx2", "avx512". */
const char *hl_isa_name(hl_isa level);
/* 1 if this build has code for level and this CPU can run it. */
int hl_isa_available(hl_isa level);
/* The level in use (choosing it on the first call). Never fails: when
 * $HYPERLORA_ISA is invalid the best available level runs, and
 * hl_isa_check reports the problem. */
hl_isa hl_isa_active(void);
/* HL_OK, or HL_ERR_INVALID_ARG with a message when $HYPERLORA_ISA names an
 * unknown level or one this CPU or build lacks. Context creation and the CLI
 * call it, so a wrong setting is refused rather than silently ignored. */
hl_status hl_isa_check(hl_error *err);
/* 1 in a portable (dispatching) build, 0 in a native one. */
int hl_isa_dispatching(void);

/* The kernels that exist once per level, as X(return type, return keyword or
 * nothing, name, parameters, arguments). dispatch.c builds the per-level
 * tables and the forwarders from it; isa_names.h must rename the same names. */
#define HL_ISA_KERNELS(X)                                                                                            \
    X(float, return, hl_dot, (const float *a, const float *b, int64_t n), (a, b, n))                                 \
    X(void, , hl_matmul,                                                                                            \
      (hl_pool * pool, float *out, const float *x, const float *w, int64_t T, int64_t K, int64_t O),                  \
      (pool, out, x, w, T, K, O))                                                                                    \
    X(void, , hl_matmul_strided,                                                                                    \
      (hl_pool * pool, float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K, int64_t O,      \
       float scale, int accumulate),                                                                                 \
      (pool, out, ldo, x, w, T, K, O, scale, accumulate))                                                            \
    X(void, , hl_matmul_serial,                                                                                     \
      (float *out, int64_t ldo, const float *x, const float *w, int64_t T, int64_t K, int64_t O),                     \
      (out, ldo, x, w, T, K, O))                                                                                     \
    X(void, , hl_matmul_group,                                                                                      \
      (hl_pool * pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n),                     \
      (pool, x, T, K, parts, n))                                                                                     \
    X(float, return, hl_dot_seq, (const float *a, const float *b, int64_t n), (a, b, n))                             \
    X(int64_t, return, hl_packed_floats, (int64_t O, int64_t K), (O, K))                                             \
    X(void, , hl_pack_weights, (float *dst, const float *w, int64_t O, int64_t K), (dst, w, O, K))                   \
    X(void, , hl_matmul_packed,                                                                                     \
      (hl_pool * pool, float *out, int64_t ldo, const float *x, const float *wp, int64_t T, int64_t K, int64_t O),    \
      (pool, out, ldo, x, wp, T, K, O))                                                                              \
    X(void, , hl_matmul_packed_group,                                                                               \
      (hl_pool * pool, const float *x, int64_t T, int64_t K, const hl_matmul_part *parts, int n),                     \
      (pool, x, T, K, parts, n))                                                                                     \
    X(void, , hl_matmul_packed_nn,                                                                                  \
      (hl_pool * pool, float *out, const float *dy, const float *wp, int64_t T, int64_t O, int64_t K,                 \
       int accumulate),                                                                                              \
      (pool, out, dy, wp, T, O, K, accumulate))                                                                      \
    X(int, return, hl_matmul_packed_nn_is_fast, (void), ())                                                          \
    X(void, , hl_matmul_nn,                                                                                         \
      (hl_pool * pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K, float scale,     \
       int accumulate),                                                                                              \
      (pool, out, dy, w, T, O, K, scale, accumulate))                                                                \
    X(void, , hl_matmul_tn_acc,                                                                                     \
      (hl_pool * pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N),                    \
      (pool, g, p, q, T, M, N))                                                                                      \
    X(double, return, hl_exp_sum, (float *out, const float *x, int64_t n, float shift), (out, x, n, shift))          \
    X(void, , hl_exp, (float *out, const float *x, int64_t n), (out, x, n))                                          \
    X(double, return, hl_exp_sum_ref, (float *out, const float *x, int64_t n, float shift), (out, x, n, shift))      \
    X(void, , hl_exp_ref, (float *out, const float *x, int64_t n), (out, x, n))                                      \
    X(void, , hl_qmatmul_a8,                                                                                        \
      (hl_pool * pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T, void *scratch,        \
       int64_t scratch_bytes),                                                                                       \
      (pool, out, ldo, x, w, T, scratch, scratch_bytes))                                                             \
    X(void, , hl_qmatmul_a8_group,                                                                                   \
      (hl_pool * pool, const float *x, const hl_qpart *parts, int n, void *scratch, int64_t scratch_bytes),          \
      (pool, x, parts, n, scratch, scratch_bytes))                                                                   \
    X(void, , hl_attention,                                                                                         \
      (hl_pool * pool, float *out, const float *q, const float *kcache, const float *vcache, int64_t T,               \
       int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t n_ctx, float *scratch),                              \
      (pool, out, q, kcache, vcache, T, pos0, H, Hkv, D, n_ctx, scratch))                                            \
    X(int64_t, return, hl_qmatmul_scratch_floats, (int n_threads, int64_t K), (n_threads, K))                        \
    X(void, , hl_qmatmul,                                                                                           \
      (hl_pool * pool, float *out, int64_t ldo, const float *x, const hl_qweight *w, int64_t T, float *scratch),      \
      (pool, out, ldo, x, w, T, scratch))                                                                            \
    X(void, , hl_qmatmul_nn,                                                                                        \
      (hl_pool * pool, float *out, const float *dy, const hl_qweight *w, int64_t T, int accumulate, float *scratch),  \
      (pool, out, dy, w, T, accumulate, scratch))                                                                    \
    X(void, , hl_rmsnorm, (float *out, const float *x, const float *w, int64_t C, float eps), (out, x, w, C, eps))  \
    X(void, , hl_rmsnorm_backward,                                                                                  \
      (float *dx, const float *x, const float *w, const float *dy, int64_t C, float eps, int accumulate),            \
      (dx, x, w, dy, C, eps, accumulate))                                                                            \
    X(void, , hl_softmax, (float *x, int64_t n), (x, n))                                                             \
    X(void, , hl_rope_table, (float *cs, int64_t n_pos, int64_t D, float theta), (cs, n_pos, D, theta))              \
    X(void, , hl_rope_table_scaled, (float *cs, int64_t n_pos, int64_t D, float theta, const float *ff),             \
      (cs, n_pos, D, theta, ff))                                                                                     \
    X(void, , hl_rope_apply, (float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse),                 \
      (vec, n_heads, D, cs, inverse))                                                                                \
    X(void, , hl_rope_apply_neox, (float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse),            \
      (vec, n_heads, D, cs, inverse))                                                                                \
    X(void, , hl_swiglu, (float *out, const float *gate, const float *up, int64_t n), (out, gate, up, n))            \
    X(void, , hl_swiglu_backward,                                                                                   \
      (float *dgate, float *dup, const float *gate, const float *up, const float *dout, int64_t n),                  \
      (dgate, dup, gate, up, dout, n))                                                                               \
    X(void, , hl_dequantize, (uint32_t type, const void *src, float *dst, int64_t n_blocks),                        \
      (type, src, dst, n_blocks))

#endif
