/* test_arch_train.c: LoRA training on the llama (Llama-3 rope_freqs), qwen2
 * (q/k/v biases) and qwen3 (q/k head norms, q width != dim) tiny models:
 * for each, an adapter on all eight targets
 *  - has the shapes and GGUF names of the architecture's tensors, and saves
 *    and reloads (GGUF) to the same logits;
 *  - gives the same loss through the training forward as through inference
 *    (hl_context with the adapter), so biases, head norms and NEOX RoPE are
 *    the same in both;
 *  - has gradients that match central finite differences on entries of
 *    every parameter tensor;
 *  - lowers the loss under 20 AdamW steps;
 *  - merges into the base (new GGUF) with the logits of the unmerged run;
 *  - saves as PEFT with HF names and reloads exactly; q/k lora_B rows are
 *    permuted into HF's rotary order for llama only (qwen keeps GGUF order).
 * And hyperlexemes on the byte-level vocabularies: a lexeme is one token,
 * atomic inside text, its embedding the mean of its parts' BPE pieces
 * (each part encoded after a space), and ordinary text keeps its logits. */
#include "test_util.h"
#include "train_fd.h"
#include "lora/adapter.h"
#include "lora/adapter_io.h"
#include "lora/create.h"
#include "lora/merge.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "hyperlexeme/lexicon.h"
#include "text/tokenizer.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/rng.h"

#define ARCH "oracle/llamacpp/arch/"
#define B_ 2
#define T_ 8

/* Mean loss of rows tokens[b] (T_+1 ids each) under inference with adapter a (NULL: none). */
static double infer_loss(const hl_model *m, const hl_adapter *a, const int32_t *tok, float *first_logits) {
    hl_error err = {0};
    hl_context *ctx = NULL;
    hl_context_params cp = hl_context_default_params();
    cp.n_ctx = 64;
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    REQUIRE(ctx);
    const float one = 1.0f;
    if (a) CHECK_OK(hl_context_set_adapters(ctx, &a, &one, 1, &err), &err);
    const int64_t V = hl_model_get_config(m)->vocab_size;
    float *lg = hl_malloc_array((size_t)T_ * (size_t)V, sizeof(float));
    REQUIRE(lg);
    double sum = 0;
    for (int b = 0; b < B_; b++) {
        const int32_t *row = tok + b * (T_ + 1);
        CHECK_OK(hl_context_eval(ctx, row, T_, 0, lg, 1, &err), &err);
        if (b == 0 && first_logits) memcpy(first_logits, lg, (size_t)V * sizeof(float));
        for (int i = 0; i < T_; i++) {
            const float *x = lg + (int64_t)i * V;
            double mx = x[0], se = 0;
            for (int64_t v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
            for (int64_t v = 0; v < V; v++) se += exp((double)x[v] - mx);
            sum += mx + log(se) - x[row[i + 1]];
        }
    }
    hl_free(lg);
    hl_context_free(ctx);
    return sum / (B_ * T_);
}

static void check_arch(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, ARCH "%s.gguf", name);
    hl_error err = {0};
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path(rel), NULL, &m, &err), &err);
    REQUIRE(m);
    const hl_model_config *c = hl_model_get_config(m);
    const int64_t V = c->vocab_size;

    hl_adapter_spec spec = {.name = name, .rank = 2, .alpha = 4.0f, .init = HL_INIT_KAIMING, .seed = 7};
    CHECK_OK(hl_parse_targets("q,k,v,o,gate,up,down,output", &spec.targets, &err), &err);
    hl_adapter *a = NULL;
    CHECK_OK(hl_adapter_create(m, &spec, &a, &err), &err);
    REQUIRE(a);
    /* B != 0 so that the adapter changes the model and A gets gradients */
    hl_rng rng;
    hl_rng_seed(&rng, 3);
    for (int32_t i = 0; i < a->n_weights; i++) {
        hl_lora_weight *w = &a->w[i];
        for (int64_t e = 0; e < w->n_out * w->rank; e++) w->B[e] = 0.3f * hl_rng_normal(&rng);
    }
    /* shapes and names: each weight fits the tensor of that name in the file */
    int fit = 0;
    for (int32_t i = 0; i < a->n_weights; i++) {
        const hl_lora_weight *w = &a->w[i];
        char tname[64];
        hl_model_tensor_name(w->layer, w->target, tname, sizeof tname);
        int64_t ti = hl_gguf_find_tensor(m->gguf, w->target == HL_TARGET_OUTPUT ? "token_embd.weight" : tname);
        const hl_gguf_tensor *gt = ti >= 0 ? hl_gguf_tensor_at(m->gguf, ti) : NULL;
        int ok = gt && gt->ne[0] == w->n_in && gt->ne[1] == w->n_out;
        CHECK_MSG(ok, "%s: adapter weight %s is (%lld out, %lld in), not the file's tensor", name, tname,
                  (long long)w->n_out, (long long)w->n_in);
        fit += ok;
    }
    CHECK(a->n_weights == 7 * c->n_layers + 1);

    /* tokens: ids from the shared long sequence */
    int32_t ids[80], tok[B_ * (T_ + 1)];
    snprintf(rel, sizeof rel, ARCH "logits/%s.long.ids.txt", name);
    FILE *f = fopen(shared_path(rel), "r");
    REQUIRE(f);
    int n = 0;
    while (n < 80 && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    REQUIRE(n >= B_ * (T_ + 1) + 5);
    for (int i = 0; i < B_ * (T_ + 1); i++) tok[i] = ids[i + 1];

    hl_trainer *tr = NULL;
    hl_trainer_params p = {.batch = B_, .ctx = T_, .n_threads = 1, .dropout = 0, .seed = 1};
    CHECK_OK(hl_trainer_init(m, a, &p, &tr, &err), &err);
    REQUIRE(tr);
    double loss;
    int64_t cnt;
    hl_trainer_zero_grad(tr);
    CHECK_OK(hl_trainer_forward_backward(tr, tok, NULL, NULL, 1.0f, 0, &loss, &cnt, &err), &err);
    double inf = infer_loss(m, a, tok, NULL);
    double base = infer_loss(m, NULL, tok, NULL);
    CHECK_MSG(fabs(inf - loss) < 1e-5, "%s: training loss %.8f vs inference %.8f", name, loss, inf);
    CHECK_MSG(fabs(base - loss) > 1e-3, "%s: the adapter changes the loss (%.6f -> %.6f)", name, base, loss);

    /* finite differences: 3 entries of every parameter tensor. These random
     * models have large weights (std 1/sqrt(fan_in)), so truncation error
     * grows fast with the step: the worst entry measured 0.45 / 0.066 /
     * 0.014 / 0.036 (rounding noise) at h = 4e-2 / 1e-2 / 3e-3 / 1e-3. */
    int32_t np = hl_trainer_n_params(tr);
    double worst = 0;
    int checked = 0;
    for (int32_t pi = 0; pi < np; pi++) {
        hl_param prm = hl_trainer_param(tr, pi);
        float *g = malloc((size_t)prm.n * sizeof(float));
        REQUIRE(g);
        memcpy(g, prm.grad, (size_t)prm.n * sizeof(float));
        for (int k = 0; k < 3; k++) {
            /* the entry with the largest gradient, then two at random */
            int64_t e = 0;
            if (k == 0) {
                for (int64_t i = 1; i < prm.n; i++)
                    if (fabsf(g[i]) > fabsf(g[e])) e = i;
            } else {
                e = (int64_t)hl_rng_below(&rng, (uint64_t)prm.n);
            }
            double fd = central_fd(tr, tok, &prm.value[e], 3e-3f);
            double d = fabs(fd - g[e]) / (fabs(g[e]) + 1e-3);
            if (d > worst) worst = d;
            CHECK_MSG(d < 2e-2, "%s: %s[%lld]: fd %.6g vs grad %.6g", name, prm.name, (long long)e, fd, g[e]);
            checked++;
        }
        free(g);
    }

    /* AdamW on this batch lowers the loss */
    hl_adamw opt;
    hl_adamw_params ap = {0.9f, 0.999f, 1e-8f, 0.0f};
    CHECK_OK(hl_adamw_init(&opt, &ap, tr, &err), &err);
    double first = loss, last = loss;
    for (int step = 0; step < 20; step++) {
        hl_trainer_zero_grad(tr);
        CHECK_OK(hl_trainer_forward_backward(tr, tok, NULL, NULL, 1.0f, (uint64_t)step, &last, &cnt, &err), &err);
        hl_adamw_step(&opt, tr, 1e-2f);
    }
    CHECK_OK(hl_trainer_eval(tr, tok, NULL, NULL, &last, &cnt, &err), &err);
    last /= (double)cnt;
    CHECK_MSG(last < 0.8 * first, "%s: loss %.5f -> %.5f after 20 AdamW steps", name, first, last);
    hl_adamw_free(&opt);
    hl_trainer_free(tr);

    /* save (GGUF) and reload: same logits; merge: same logits as unmerged */
    float *l_ad = hl_malloc_array((size_t)V, sizeof(float)), *l_rt = hl_malloc_array((size_t)V, sizeof(float)),
          *l_mg = hl_malloc_array((size_t)V, sizeof(float));
    REQUIRE(l_ad && l_rt && l_mg);
    double loss_ad = infer_loss(m, a, tok, l_ad);
    char apath[128], mpath[128];
    snprintf(apath, sizeof apath, "test_arch_train_%s.adapter.gguf", name);
    snprintf(mpath, sizeof mpath, "test_arch_train_%s.merged.gguf", name);
    CHECK_OK(hl_adapter_save_gguf(a, apath, &err), &err);
    hl_adapter *back = NULL;
    CHECK_OK(hl_adapter_load_gguf(apath, m, 0, &back, &err), &err);
    REQUIRE(back);
    {   /* the file names the base's architecture, as llama.cpp requires */
        hl_gguf *ag = NULL;
        hl_gguf_str as = {0};
        CHECK_OK(hl_gguf_open(apath, &ag, &err), &err);
        CHECK(ag && hl_gguf_get_str(ag, "general.architecture", &as, &err) == HL_OK &&
              as.len == strlen(hl_arch_name(c->arch)) && !memcmp(as.data, hl_arch_name(c->arch), as.len));
        hl_gguf_free(ag);
    }
    double loss_rt = infer_loss(m, back, tok, l_rt);
    double drt = 0;
    for (int64_t v = 0; v < V; v++) drt = fmax(drt, fabs((double)l_rt[v] - l_ad[v]));
    CHECK_MSG(drt == 0 && loss_rt == loss_ad, "%s: reloaded adapter moves logits by %.3g", name, drt);
    const hl_adapter *list[1] = {a};
    const float one = 1.0f;
    CHECK_OK(hl_merge_to_gguf(m, list, &one, 1, mpath, &err), &err);
    hl_model *merged = NULL;
    CHECK_OK(hl_model_load(mpath, NULL, &merged, &err), &err);
    double dmg = 1;
    if (merged) {
        infer_loss(merged, NULL, tok, l_mg);
        dmg = 0;
        for (int64_t v = 0; v < V; v++) dmg = fmax(dmg, fabs((double)l_mg[v] - l_ad[v]));
        CHECK_MSG(dmg < 2e-5, "%s: merged logits differ from unmerged by %.3g", name, dmg);
        CHECK(hl_model_get_config(merged)->arch == c->arch);
    }
    /* PEFT: exact round trip; q lora_B rows permuted for llama only */
    char pdir[128], stp[192];
    snprintf(pdir, sizeof pdir, "test_arch_train_%s.peft", name);
    CHECK_OK(hl_adapter_save_peft(a, m, pdir, &err), &err);
    hl_adapter *pb = NULL;
    CHECK_OK(hl_adapter_load_peft(pdir, m, 0, &pb, &err), &err);
    int peft_same = pb && pb->n_weights == a->n_weights;
    for (int32_t i = 0; peft_same && i < a->n_weights; i++) {
        const hl_lora_weight *x = &a->w[i], *y = hl_adapter_find(pb, x->layer, x->target);
        peft_same = y && y->rank == x->rank && !memcmp(x->A, y->A, (size_t)(x->rank * x->n_in) * sizeof(float)) &&
                    !memcmp(x->B, y->B, (size_t)(x->n_out * x->rank) * sizeof(float));
    }
    CHECK_MSG(peft_same, "%s: PEFT round trip changes the adapter", name);
    snprintf(stp, sizeof stp, "%s/adapter_model.safetensors", pdir);
    hl_safetensors *st = NULL;
    CHECK_OK(hl_st_open(stp, &st, &err), &err);
    const hl_st_tensor *qb = st ? hl_st_find(st, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight") : NULL;
    CHECK_MSG(qb != NULL, "%s: PEFT file lacks the HF name of q's lora_B", name);
    if (qb) {
        const hl_lora_weight *wq = hl_adapter_find(a, 0, HL_TARGET_Q);
        float *fb = malloc((size_t)(wq->n_out * wq->rank) * sizeof(float));
        REQUIRE(fb);
        CHECK_OK(hl_st_read_f32(qb, fb, (uint64_t)(wq->n_out * wq->rank), &err), &err);
        int same_order = !memcmp(fb, wq->B, (size_t)(wq->n_out * wq->rank) * sizeof(float));
        CHECK_MSG(same_order == (c->arch != HL_ARCH_LLAMA), "%s: q lora_B rows %s in the PEFT file", name,
                  same_order ? "kept in GGUF order" : "permuted");
        free(fb);
    }
    hl_st_free(st);
    hl_adapter_free(pb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pdir);
    CHECK(system(cmd) == 0);

    printf("%s: %d/%d adapter weights fit the file's tensors; loss train %.6f = inference %.6f (base %.6f); "
           "%d finite differences, worst rel %.3g; 20 AdamW steps %.5f -> %.5f; reload max diff %.3g; "
           "merged vs unmerged %.3g\n",
           name, fit, a->n_weights, loss, inf, base, checked, worst, first, last, drt, dmg);
    hl_model_free(merged);
    remove(apath);
    remove(mpath);
    hl_free(l_ad);
    hl_free(l_rt);
    hl_free(l_mg);
    hl_adapter_free(back);
    hl_adapter_free(a);
    hl_model_free(m);
}

static void lexicon_on(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, ARCH "%s.gguf", name);
    hl_error err = {0};
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path(rel), NULL, &m, &err), &err);
    REQUIRE(m);
    const char *text = "{\"lexeme\": \"\u039421\", \"parts\": [\"cat\", \"house\"]}\n";
    hl_lexicon *lex = NULL;
    CHECK_OK(hl_lexicon_load_memory(text, strlen(text), "lex.jsonl", m, &lex, &err), &err);
    REQUIRE(lex);
    const hl_tokenizer *bt = hl_model_get_tokenizer(m), *lt = hl_lexicon_tokenizer(lex);
    const hl_model *view = hl_lexicon_model(lex);
    int32_t id = hl_lexicon_token(lex, 0);
    const char *s = "a cat\xce\x94" "21house";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(hl_tokenizer_encode(lt, s, strlen(s), 0, 0, &ids, &n, &err), &err);
    int found = 0;
    for (size_t i = 0; i < n; i++) found += ids[i] == id;
    CHECK_MSG(found == 1, "%s: the lexeme is one token inside text", name);
    char buf[4096];
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += hl_tokenizer_decode(lt, -1, ids[i], buf + w, sizeof buf - w);
    CHECK_MSG(w == strlen(s) && !memcmp(buf, s, w), "%s: text with a lexeme round-trips", name);
    hl_free(ids);
    /* the embedding: mean over parts of the mean of " cat" and " house" pieces */
    const int64_t C = hl_model_get_config(m)->dim;
    double want[64] = {0};
    REQUIRE(C <= 64);
    const char *parts[2] = {" cat", " house"};
    for (int p = 0; p < 2; p++) {
        CHECK_OK(hl_tokenizer_encode(bt, parts[p], strlen(parts[p]), 0, 0, &ids, &n, &err), &err);
        for (size_t i = 0; i < n; i++)
            for (int64_t c = 0; c < C; c++) want[c] += 0.5 / (double)n * m->token_embd[(int64_t)ids[i] * C + c];
        hl_free(ids);
    }
    const float *row = view->extra_embd + (int64_t)(id - view->n_vocab_base) * C;
    double d = 0;
    for (int64_t c = 0; c < C; c++) d = fmax(d, fabs(row[c] - want[c]));
    CHECK_MSG(d < 1e-6, "%s: lexeme embedding differs from its parts' mean by %.3g", name, d);
    /* ordinary text: the same base logits with and without the lexicon */
    const int64_t V = hl_model_get_config(m)->vocab_size;
    const int64_t Vx = hl_model_get_config(view)->vocab_size; /* base + control lexemes + entries */
    CHECK(Vx > V);
    float *a = hl_malloc_array((size_t)V, sizeof(float)), *b = hl_malloc_array((size_t)Vx, sizeof(float));
    REQUIRE(a && b);
    hl_context *c1 = NULL, *c2 = NULL;
    hl_context_params cp = hl_context_default_params();
    cp.n_ctx = 32;
    CHECK_OK(hl_context_init(m, &cp, &c1, &err), &err);
    CHECK_OK(hl_context_init(view, &cp, &c2, &err), &err);
    REQUIRE(c1 && c2);
    int32_t t3[3] = {9707, 1879, 0};
    CHECK_OK(hl_context_eval(c1, t3, 3, 0, a, 0, &err), &err);
    CHECK_OK(hl_context_eval(c2, t3, 3, 0, b, 0, &err), &err);
    CHECK_MSG(!memcmp(a, b, (size_t)V * sizeof(float)), "%s: the lexicon view changes base logits", name);
    printf("%s: hyperlexeme one token, round trip, embedding = parts' BPE mean (max diff %.3g), base logits kept\n",
           name, d);
    hl_context_free(c1);
    hl_context_free(c2);
    hl_free(a);
    hl_free(b);
    hl_lexicon_free(lex);
    hl_model_free(m);
}

/* An adapter made for one architecture is refused by a base of another. */
static void cross_arch(void) {
    hl_error err = {0};
    hl_model *q = NULL, *l = NULL;
    CHECK_OK(hl_model_load(shared_path(ARCH "qwen2_tiny.gguf"), NULL, &q, &err), &err);
    CHECK_OK(hl_model_load(shared_path(ARCH "llama3_tiny.gguf"), NULL, &l, &err), &err);
    REQUIRE(q && l);
    hl_adapter_spec spec = {.name = "x", .rank = 2, .alpha = 2.0f, .seed = 1};
    CHECK_OK(hl_parse_targets("v", &spec.targets, &err), &err);
    hl_adapter *a = NULL, *b = NULL;
    CHECK_OK(hl_adapter_create(q, &spec, &a, &err), &err);
    REQUIRE(a);
    CHECK_OK(hl_adapter_save_gguf(a, "test_arch_cross.gguf", &err), &err);
    CHECK(hl_adapter_load_gguf("test_arch_cross.gguf", l, 1, &b, &err) == HL_ERR_MISMATCH && !b);
    CHECK_MSG(strstr(err.msg, "\"qwen2\"") && strstr(err.msg, "\"llama\""), "cross-arch refusal: %s", err.msg);
    remove("test_arch_cross.gguf");
    hl_adapter_free(a);
    hl_model_free(q);
    hl_model_free(l);
}

int main(void) {
    cross_arch();
    lexicon_on("qwen2_tiny");
    lexicon_on("llama3_tiny");
    check_arch("llama3_tiny");
    check_arch("qwen2_tiny");
    check_arch("qwen3_tiny");
    return hl_test_finish("test_arch_train");
}
