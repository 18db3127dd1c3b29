/* isa_names.h: per-level symbol names for the kernels that exist once per
 * instruction-set level.
 *
 * A portable build (HL_NATIVE=OFF) compiles the files with ISA-specific code
 * (the HL_ISA_KERNELS list in dispatch.h) once per level, with
 * -DHL_ISA_SUFFIX=scalar, avx2 or avx512 and that level's -march. This header,
 * included by kernels.h and quant_types.h, then renames every function those
 * files export, hl_dot becoming hl_dot_avx2 and so on, so the three copies
 * link side by side and call each other within their own level. dispatch.c,
 * compiled once, defines the plain names as forwarders into the level chosen
 * at run time. Without HL_ISA_SUFFIX (every other file, and the whole native
 * build) nothing is renamed.
 *
 * Keep this list equal to HL_ISA_KERNELS: a name missing here fails the link
 * (dispatch.c would find no hl_x_avx2, or hl_x would be defined twice).
 * It is macros only, and sits in util/ because quant/, a layer below
 * kernels/, includes it for its dequantizers too. */
#ifndef HL_UTIL_ISA_NAMES_H
#define HL_UTIL_ISA_NAMES_H

#define HL_ISA_CAT_(a, b) a##_##b
#define HL_ISA_CAT(a, b) HL_ISA_CAT_(a, b)

#ifdef HL_ISA_SUFFIX
#define HL_ISA_NAME(f) HL_ISA_CAT(f, HL_ISA_SUFFIX)
/* matmul.c */
#define hl_dot HL_ISA_NAME(hl_dot)
#define hl_matmul HL_ISA_NAME(hl_matmul)
#define hl_matmul_strided HL_ISA_NAME(hl_matmul_strided)
#define hl_matmul_serial HL_ISA_NAME(hl_matmul_serial)
#define hl_matmul_group HL_ISA_NAME(hl_matmul_group)
/* matmul_packed.c */
#define hl_dot_seq HL_ISA_NAME(hl_dot_seq)
#define hl_packed_floats HL_ISA_NAME(hl_packed_floats)
#define hl_pack_weights HL_ISA_NAME(hl_pack_weights)
#define hl_matmul_packed HL_ISA_NAME(hl_matmul_packed)
#define hl_matmul_packed_group HL_ISA_NAME(hl_matmul_packed_group)
#define hl_matmul_packed_nn HL_ISA_NAME(hl_matmul_packed_nn)
#define hl_matmul_packed_nn_is_fast HL_ISA_NAME(hl_matmul_packed_nn_is_fast)
/* matmul_grad.c */
#define hl_matmul_nn HL_ISA_NAME(hl_matmul_nn)
#define hl_matmul_tn_acc HL_ISA_NAME(hl_matmul_tn_acc)
/* exp_sum.c */
#define hl_exp_sum HL_ISA_NAME(hl_exp_sum)
#define hl_exp HL_ISA_NAME(hl_exp)
#define hl_exp_sum_ref HL_ISA_NAME(hl_exp_sum_ref)
#define hl_exp_ref HL_ISA_NAME(hl_exp_ref)
/* attention.c */
#define hl_attention HL_ISA_NAME(hl_attention)
/* matmul_quant.c */
#define hl_qmatmul_scratch_floats HL_ISA_NAME(hl_qmatmul_scratch_floats)
#define hl_qmatmul HL_ISA_NAME(hl_qmatmul)
#define hl_qmatmul_nn HL_ISA_NAME(hl_qmatmul_nn)
/* matmul_a8.c */
#define hl_qmatmul_a8 HL_ISA_NAME(hl_qmatmul_a8)
#define hl_qmatmul_a8_group HL_ISA_NAME(hl_qmatmul_a8_group)
/* ops.c */
#define hl_rmsnorm HL_ISA_NAME(hl_rmsnorm)
#define hl_rmsnorm_backward HL_ISA_NAME(hl_rmsnorm_backward)
#define hl_softmax HL_ISA_NAME(hl_softmax)
#define hl_rope_table HL_ISA_NAME(hl_rope_table)
#define hl_rope_table_scaled HL_ISA_NAME(hl_rope_table_scaled)
#define hl_rope_apply HL_ISA_NAME(hl_rope_apply)
#define hl_rope_apply_neox HL_ISA_NAME(hl_rope_apply_neox)
#define hl_swiglu HL_ISA_NAME(hl_swiglu)
#define hl_swiglu_backward HL_ISA_NAME(hl_swiglu_backward)
/* quant/quant_types.c (its dequantizers; the type table is compiled once) */
#define hl_dequantize HL_ISA_NAME(hl_dequantize)
#endif

#endif
