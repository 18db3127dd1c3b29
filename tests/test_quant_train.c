/* test_quant_train.c: LoRA training over a quantized frozen base.
 *
 * - The quantized kernels against f32 products on the dequantized weight:
 *   hl_qmatmul bitwise equal to hl_matmul_strided (same per-element order),
 *   hl_qmatmul_nn within 1e-5 relative of the plain reference, and both
 *   bitwise the same at 1 and 2 threads.
 * - For the shared Q8_0 and Q4_K files: a rank-4 adapter on every target
 *   (B random, so every gradient flows), one forward/backward over 2 rows of
 *   48 tokens (96 logit rows: a full chunk of 64 and a partial one). The gradients of every LoRA tensor match those over an f32
 *   copy of the same dequantized weights (written here as a GGUF and loaded
 *   as an ordinary f32 base) within 1e-4 of each tensor's max-abs, the
 *   losses within 1e-5, and 1 and 2 threads give identical bytes. */
#include "kernels/qweight_rows.h"
#include "hyperlora.h"
#include "io/gguf.h"
#include "kernels/kernels.h"
#include "lora/create.h"
#include "model/model.h"
#include "train/trainer.h"
#include "util/rng.h"
#include "test_util.h"

#define NB 2
#define NT 48 /* 96 rows: a quantized base's logits come in chunks of 64, so a full and a partial one */

/* ---- kernels ---- */

static void test_kernels(void) {
    hl_gguf *g = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(shared_path("oracle/llamacpp/quant/models/q256-Q4_K_M.gguf"), &g, &err), &err);
    REQUIRE(g);
    const char *names[3] = {"blk.0.ffn_down.weight", "blk.1.ffn_down.weight", "blk.0.attn_k.weight"}; /* q4_K, q6_K, q4_K */
    hl_pool *pools[2] = {hl_pool_init(1), hl_pool_init(2)};
    REQUIRE(pools[0] && pools[1]);
    hl_rng rng;
    hl_rng_seed(&rng, 3);
    for (int n = 0; n < 3; n++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, hl_gguf_find_tensor(g, names[n]));
        REQUIRE(t);
        const int64_t K = t->ne[0], O = t->ne[1], TT = 37; /* 37 tokens: tiles and tails */
        uint64_t rb;
        REQUIRE(hl_type_row_bytes(t->type, K, &rb));
        hl_qweight q = {t->data, t->type, O, K, rb};
        float *w = malloc(sizeof(float) * O * K), *x = malloc(sizeof(float) * TT * K), *dy = malloc(sizeof(float) * TT * O);
        float *a = malloc(sizeof(float) * TT * O), *b = malloc(sizeof(float) * TT * O);
        float *dx[2] = {malloc(sizeof(float) * TT * K), malloc(sizeof(float) * TT * K)}, *ref = malloc(sizeof(float) * TT * K);
        float *scratch = malloc(sizeof(float) * hl_qmatmul_scratch_floats(2, K));
        REQUIRE(w && x && dy && a && b && dx[0] && dx[1] && ref && scratch);
        for (int64_t o = 0; o < O; o++) hl_qweight_row(&q, o, w + o * K);
        for (int64_t i = 0; i < TT * K; i++) x[i] = hl_rng_normal(&rng);
        for (int64_t i = 0; i < TT * O; i++) dy[i] = hl_rng_normal(&rng);
        hl_matmul_strided(pools[1], b, O, x, w, TT, K, O, 1.0f, 0);
        hl_matmul_nn_ref(ref, dy, w, TT, O, K);
        double ref_max = 0;
        for (int64_t i = 0; i < TT * K; i++) ref_max = fmax(ref_max, fabs(ref[i]));
        for (int th = 0; th < 2; th++) {
            hl_qmatmul(pools[th], a, O, x, &q, TT, scratch);
            CHECK_MSG(!memcmp(a, b, sizeof(float) * TT * O), "%s: hl_qmatmul != hl_matmul_strided on the f32 copy (%d threads)",
                      names[n], th + 1);
            hl_qmatmul_nn(pools[th], dx[th], dy, &q, TT, 0, scratch);
            double d = 0;
            for (int64_t i = 0; i < TT * K; i++) d = fmax(d, fabs((double)dx[th][i] - ref[i]));
            CHECK_MSG(d <= 1e-5 * ref_max, "%s: dY·W off by %.3g (max %.3g, %d threads)", names[n], d, ref_max, th + 1);
        }
        CHECK_MSG(!memcmp(dx[0], dx[1], sizeof(float) * TT * K), "%s: dY·W differs between 1 and 2 threads", names[n]);
        /* accumulate adds onto what is there */
        memcpy(ref, dx[0], sizeof(float) * TT * K);
        hl_qmatmul_nn(pools[1], dx[0], dy, &q, TT, 1, scratch);
        double d = 0;
        for (int64_t i = 0; i < TT * K; i++) d = fmax(d, fabs((double)dx[0][i] - 2.0 * ref[i]));
        CHECK_MSG(d <= 1e-5 * ref_max, "%s: accumulating dY·W off by %.3g", names[n], d);
        free(w); free(x); free(dy); free(a); free(b); free(dx[0]); free(dx[1]); free(ref); free(scratch);
    }
    hl_pool_free(pools[0]);
    hl_pool_free(pools[1]);
    hl_gguf_free(g);
}

/* ---- training ---- */

/* Writes every tensor of src dequantized to F32 (metadata copied): the f32
 * base with exactly the quantized file's weights. */
static void write_dequantized(const char *src, const char *dst) {
    hl_gguf *g = NULL;
    hl_error err = {0};
    CHECK_OK(hl_gguf_open(src, &g, &err), &err);
    REQUIRE(g);
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) REQUIRE(hl_gguf_writer_copy_kv(w, g, i) == HL_OK);
    REQUIRE(hl_gguf_writer_set_u32(w, "general.file_type", 0) == HL_OK);
    int64_t nt = hl_gguf_n_tensors(g);
    float **bufs = calloc((size_t)nt, sizeof *bufs);
    REQUIRE(bufs);
    for (int64_t i = 0; i < nt; i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        bufs[i] = malloc(sizeof(float) * n);
        REQUIRE(bufs[i]);
        hl_dequantize(t->type, t->data, bufs[i], n / hl_type_traits_of(t->type)->block_elems);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        CHECK_OK(hl_gguf_writer_add_tensor(w, name, HL_TYPE_F32, t->n_dims, t->ne, bufs[i], &err), &err);
    }
    CHECK_OK(hl_gguf_writer_write_file(w, dst, &err), &err);
    hl_gguf_writer_free(w);
    for (int64_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    hl_gguf_free(g);
}

static hl_adapter *make_adapter(const hl_model *m) {
    hl_adapter_spec spec = {.name = "t", .targets = (1u << HL_TARGET_COUNT) - 1, .rank = 4, .alpha = 8,
                            .init = HL_INIT_KAIMING, .seed = 5};
    hl_adapter *a = NULL;
    hl_error err = {0};
    CHECK_OK(hl_adapter_create(m, &spec, &a, &err), &err);
    REQUIRE(a);
    hl_rng rng;
    hl_rng_seed(&rng, 9);
    for (int32_t i = 0; i < a->n_weights; i++) /* B = 0 would leave every A gradient zero */
        for (int64_t e = 0; e < (int64_t)a->w[i].n_out * a->w[i].rank; e++) a->w[i].B[e] = 0.05f * hl_rng_normal(&rng);
    return a;
}

/* Gradients of one forward/backward, copied out in parameter order. */
static float *grads(const hl_model *m, hl_adapter *a, int threads, const int32_t *tokens, double *loss, int64_t *total) {
    hl_trainer *tr = NULL;
    hl_error err = {0};
    hl_trainer_params p = {.batch = NB, .ctx = NT, .n_threads = threads, .dropout = 0, .seed = 1};
    CHECK_OK(hl_trainer_init(m, a, &p, &tr, &err), &err);
    REQUIRE(tr);
    hl_trainer_zero_grad(tr);
    int64_t counted;
    CHECK_OK(hl_trainer_forward_backward(tr, tokens, NULL, NULL, 1.0f, 0, loss, &counted, &err), &err);
    int64_t n = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(tr); i++) n += hl_trainer_param(tr, i).n;
    float *out = malloc(sizeof(float) * n);
    REQUIRE(out);
    n = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(tr); i++) {
        hl_param pp = hl_trainer_param(tr, i);
        memcpy(out + n, pp.grad, sizeof(float) * pp.n);
        n += pp.n;
    }
    *total = n;
    hl_trainer_free(tr);
    return out;
}

static void test_train(const char *type) {
    char rel[256], f32_path[256];
    snprintf(rel, sizeof rel, "oracle/llamacpp/quant/models/q256-%s.gguf", type);
    snprintf(f32_path, sizeof f32_path, "test_quant_train_%s_deq.gguf", type);
    write_dequantized(shared_path(rel), f32_path);
    hl_model *mq = NULL, *mf = NULL;
    hl_error err = {0};
    CHECK_OK(hl_model_load(shared_path(rel), NULL, &mq, &err), &err);
    CHECK_OK(hl_model_load(f32_path, NULL, &mf, &err), &err);
    REQUIRE(mq && mf);
    CHECK(mq->quantized && !mf->quantized);
    hl_adapter *aq = make_adapter(mq), *af = make_adapter(mf);
    int32_t tokens[NB * (NT + 1)];
    hl_rng rng;
    hl_rng_seed(&rng, 21);
    for (int i = 0; i < NB * (NT + 1); i++) tokens[i] = (int32_t)(hl_rng_next(&rng) % 512);
    double lq, lf, l2;
    int64_t nq, nf, n2;
    float *gq = grads(mq, aq, 1, tokens, &lq, &nq), *gf = grads(mf, af, 1, tokens, &lf, &nf);
    float *g2 = grads(mq, aq, 2, tokens, &l2, &n2);
    REQUIRE(nq == nf && nq == n2);
    CHECK_MSG(fabs(lq - lf) <= 1e-5, "%s: loss %.9g over the quantized base, %.9g over its f32 copy", type, lq, lf);
    CHECK_MSG(!memcmp(gq, g2, sizeof(float) * nq) && lq == l2, "%s: gradients differ between 1 and 2 threads", type);
    /* per tensor: max |gq - gf| <= 1e-4 · max |gf| */
    int64_t off = 0;
    double worst = 0;
    for (int32_t i = 0; i < aq->n_weights; i++)
        for (int ab = 0; ab < 2; ab++) {
            int64_t n = (int64_t)aq->w[i].rank * (ab ? aq->w[i].n_out : aq->w[i].n_in);
            double mx = 0, d = 0;
            for (int64_t e = 0; e < n; e++) {
                mx = fmax(mx, fabs(gf[off + e]));
                d = fmax(d, fabs((double)gq[off + e] - gf[off + e]));
            }
            CHECK_MSG(mx > 0 && d <= 1e-4 * mx, "%s: weight %d %s: max diff %.3g, max-abs %.3g", type, i, ab ? "B" : "A", d,
                      mx);
            if (mx > 0) worst = fmax(worst, d / mx);
            off += n;
        }
    CHECK(off == nq);
    printf("  %s: loss %.6f (f32 copy %.6f), worst gradient diff %.3g of the tensor's max-abs\n", type, lq, lf, worst);
    free(gq); free(gf); free(g2);
    hl_adapter_free(aq);
    hl_adapter_free(af);
    hl_model_free(mq);
    hl_model_free(mf);
    remove(f32_path);
}

int main(void) {
    test_kernels();
    test_train("Q8_0");
    test_train("Q4_K");
    return hl_test_finish("test_quant_train");
}
