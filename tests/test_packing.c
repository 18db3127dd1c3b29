/* test_packing.c: document packing trains exactly what each example alone
 * trains. On stories260K (8 heads over 4 KV heads: GQA) with a LoRA adapter
 * on every target, a batch of rows holding 1, 2 and 6 documents of different
 * lengths (positions restarting at 0 in each) must give, against the same
 * documents each alone at the start of a padded row:
 *   - every document's loss within 1e-6 (relative),
 *   - every LoRA gradient within 1e-5 (max |diff| / max |alone| per tensor),
 *   - bit-identical loss and gradients at 1 and 2 threads.
 * Then the whole path: a JSONL loaded with --pack docs gives rows whose
 * documents are the examples, whole, each exactly once. */
#include "hyperlora.h"
#include "lora/create.h"
#include "train/dataset.h"
#include "text/tokenizer.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/rng.h"
#include "test_util.h"

#define T 64
#define N_DOCS 9
#define ROWS 3
#define VOCAB 512
#define EOS 2

/* rows of 1, 2 and 6 documents; a document of len tokens takes len of a row's T+1 slots */
static const int row_of[N_DOCS] = {0, 1, 1, 2, 2, 2, 2, 2, 2};
static const int doc_len[N_DOCS] = {65, 30, 35, 2, 9, 12, 20, 8, 5};

typedef struct {
    int32_t tok[T + 1];
    uint8_t mask[T]; /* mask[i]: target tok[i+1] counts */
} doc;

/* The packed batch (ROWS × T) and the alone batch (N_DOCS × T, each document at position 0). */
typedef struct {
    int32_t ptok[ROWS * (T + 1)], atok[N_DOCS * (T + 1)];
    uint8_t pmask[ROWS * T], amask[N_DOCS * T];
    int32_t ppos[ROWS * T];
    int start[N_DOCS]; /* slot of each document in its packed row */
} batches;

static void build(batches *b, const doc *d) {
    int fill[ROWS] = {0};
    for (int i = 0; i < ROWS * (T + 1); i++) b->ptok[i] = EOS;
    for (int i = 0; i < N_DOCS * (T + 1); i++) b->atok[i] = EOS;
    memset(b->pmask, 0, sizeof b->pmask);
    memset(b->amask, 0, sizeof b->amask);
    for (int e = 0; e < N_DOCS; e++) {
        int r = row_of[e], a = fill[r], len = doc_len[e];
        REQUIRE(a + len <= T + 1);
        b->start[e] = a;
        for (int j = 0; j < len; j++) {
            b->ptok[r * (T + 1) + a + j] = d[e].tok[j];
            b->atok[e * (T + 1) + j] = d[e].tok[j];
            if (a + j < T) b->ppos[r * T + a + j] = j;
        }
        for (int j = 0; j + 1 < len; j++) {
            b->pmask[r * T + a + j] = d[e].mask[j];
            b->amask[e * T + j] = d[e].mask[j];
        }
        fill[r] = a + len;
    }
    for (int r = 0; r < ROWS; r++) /* padding after the last document is a document of its own */
        for (int j = fill[r]; j < T; j++) b->ppos[r * T + j] = j - fill[r];
}

static hl_adapter *make_adapter(const hl_model *m) {
    hl_error err = {0};
    uint32_t targets;
    CHECK_OK(hl_parse_targets("q,k,v,o,gate,up,down,output", &targets, &err), &err);
    hl_adapter_spec spec = {.name = "pack", .targets = targets, .rank = 4, .alpha = 8, .seed = 5};
    hl_adapter *ad = NULL;
    CHECK_OK(hl_adapter_create(m, &spec, &ad, &err), &err);
    REQUIRE(ad);
    /* B = 0 would leave A's gradients at zero: give B values so both are tested. */
    hl_rng rng;
    hl_rng_seed(&rng, 17);
    for (int32_t i = 0; i < ad->n_weights; i++)
        for (int64_t e = 0; e < (int64_t)ad->w[i].n_out * ad->w[i].rank; e++) ad->w[i].B[e] = 0.05f * hl_rng_normal(&rng);
    return ad;
}

static hl_trainer *make_trainer(const hl_model *m, hl_adapter *ad, int32_t batch, int threads) {
    hl_error err = {0};
    hl_trainer_params p = {.batch = batch, .ctx = T, .n_threads = threads, .seed = 1};
    hl_trainer *t = NULL;
    CHECK_OK(hl_trainer_init(m, ad, &p, &t, &err), &err);
    REQUIRE(t);
    return t;
}

/* Gradients of the summed loss (grad_scale = number of counted targets). */
static double grads_of_sum(hl_trainer *t, const int32_t *tok, const uint8_t *mask, const int32_t *pos) {
    hl_error err = {0};
    double loss;
    int64_t n;
    hl_trainer_zero_grad(t);
    int64_t count = 0;
    for (int pass = 0; pass < 2; pass++) { /* first count, then the real pass with the scale */
        if (pass) hl_trainer_zero_grad(t);
        CHECK_OK(hl_trainer_forward_backward(t, tok, mask, pos, pass ? (float)count : 1.0f, 0, &loss, &n, &err), &err);
        count = n;
    }
    return loss * (double)count;
}

/* One document's loss (sum over its targets) from a batch, by masking all other targets. */
static double doc_loss(hl_trainer *t, const int32_t *tok, const uint8_t *mask, const int32_t *pos, int rows,
                       int row, int a, int len, int64_t *count) {
    hl_error err = {0};
    uint8_t only[N_DOCS * T];
    memset(only, 0, sizeof only);
    for (int j = 0; j + 1 < len; j++) only[row * T + a + j] = mask[row * T + a + j];
    (void)rows;
    double s;
    CHECK_OK(hl_trainer_eval(t, tok, only, pos, &s, count, &err), &err);
    return s;
}

static void test_exact(const hl_model *m) {
    hl_rng rng;
    hl_rng_seed(&rng, 23);
    doc d[N_DOCS];
    for (int e = 0; e < N_DOCS; e++) {
        d[e].tok[0] = 1; /* BOS */
        for (int j = 1; j <= T; j++) d[e].tok[j] = 3 + (int32_t)hl_rng_below(&rng, VOCAB - 3);
        int prompt = doc_len[e] / 3; /* targets before it do not count, as for a prompt */
        for (int j = 0; j < T; j++) d[e].mask[j] = j + 1 >= prompt && j + 1 < doc_len[e];
        if (doc_len[e] == 2) d[e].mask[0] = 1;
    }
    static batches b;
    build(&b, d);
    hl_adapter *ad = make_adapter(m);
    hl_trainer *tp = make_trainer(m, ad, ROWS, 1), *tp2 = make_trainer(m, ad, ROWS, 2);
    hl_trainer *ta = make_trainer(m, ad, N_DOCS, 1);

    double lp = grads_of_sum(tp, b.ptok, b.pmask, b.ppos);
    double lp2 = grads_of_sum(tp2, b.ptok, b.pmask, b.ppos);
    double la = grads_of_sum(ta, b.atok, b.amask, NULL);
    CHECK_MSG(fabs(lp - la) <= 1e-6 * fabs(la), "summed loss: packed %.9g, alone %.9g", lp, la);
    CHECK_MSG(lp == lp2, "packed loss differs at 1 and 2 threads: %.17g %.17g", lp, lp2);
    double worst = 0;
    int same = 1, nonzero = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(tp); i++) {
        hl_param p = hl_trainer_param(tp, i), p2 = hl_trainer_param(tp2, i), a = hl_trainer_param(ta, i);
        double d_max = 0, a_max = 0;
        for (int64_t e = 0; e < p.n; e++) {
            d_max = fmax(d_max, fabs((double)p.grad[e] - a.grad[e]));
            a_max = fmax(a_max, fabs((double)a.grad[e]));
        }
        nonzero += a_max > 0;
        double rel = a_max > 0 ? d_max / a_max : d_max;
        worst = fmax(worst, rel);
        CHECK_MSG(rel <= 1e-5, "%s: packed vs alone gradient max|diff| %g of max %g", p.name, d_max, a_max);
        same &= !memcmp(p.grad, p2.grad, sizeof(float) * (size_t)p.n);
    }
    CHECK_MSG(nonzero == hl_trainer_n_params(tp), "%d of %d gradients are all zero", hl_trainer_n_params(tp) - nonzero,
              hl_trainer_n_params(tp));
    CHECK_MSG(same, "packed gradients differ between 1 and 2 threads");
    printf("packed vs alone, %d tensors: summed loss %.9g vs %.9g, worst gradient max|diff| / max|alone| %.3g\n",
           hl_trainer_n_params(tp), lp, la, worst);

    double worst_loss = 0;
    for (int e = 0; e < N_DOCS; e++) {
        int64_t cp, ca;
        double sp = doc_loss(tp, b.ptok, b.pmask, b.ppos, ROWS, row_of[e], b.start[e], doc_len[e], &cp);
        double sa = doc_loss(ta, b.atok, b.amask, NULL, N_DOCS, e, 0, doc_len[e], &ca);
        CHECK(cp == ca && cp > 0);
        double rel = fabs(sp - sa) / fabs(sa);
        worst_loss = fmax(worst_loss, rel);
        CHECK_MSG(rel <= 1e-6, "document %d (%d tokens): loss %.9g packed, %.9g alone", e, doc_len[e], sp, sa);
    }
    printf("per-document loss, %d documents: worst relative difference %.3g\n", N_DOCS, worst_loss);

    /* Without the positions the same rows are one sequence each: the
     * documents then see each other, and the loss must change (the test can fail). */
    double ln = grads_of_sum(tp, b.ptok, b.pmask, NULL);
    CHECK_MSG(fabs(ln - la) > 1e-4 * fabs(la), "rows without positions gave the alone loss: %.9g", ln);

    /* Bad positions are refused with a message. */
    hl_error err = {0};
    int32_t bad[ROWS * T];
    memcpy(bad, b.ppos, sizeof bad);
    bad[T + 5] += 3;
    double l;
    int64_t n;
    CHECK(hl_trainer_eval(tp, b.ptok, b.pmask, bad, &l, &n, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "position"));
    bad[T + 5] = b.ppos[T + 5];
    bad[0] = 1;
    CHECK(hl_trainer_eval(tp, b.ptok, b.pmask, bad, &l, &n, &err) == HL_ERR_INVALID_ARG);
    hl_trainer_free(tp);
    hl_trainer_free(tp2);
    hl_trainer_free(ta);
    hl_adapter_free(ad);
}

/* Finds the documents of R packed rows among the n alone rows (each an
 * example at position 0); adds 1 to found[e] for each. Returns the most
 * documents seen in one row. */
static int match_docs(const int32_t *ptok, const uint8_t *pmask, const int32_t *ppos, int64_t R, const int32_t *atok,
                      const uint8_t *amask, int n, int *found) {
    int max_docs = 0;
    for (int64_t r = 0; r < R; r++) {
        int in_row = 0;
        for (int s0 = 0, s1; s0 < T; s0 = s1) {
            CHECK(ppos[r * T + s0] == 0);
            for (s1 = s0 + 1; s1 < T && ppos[r * T + s1] != 0; s1++) CHECK(ppos[r * T + s1] == s1 - s0);
            if (ptok[r * (T + 1) + s0] == EOS) continue; /* the padding document */
            in_row++;
            /* which example: the alone row whose tokens start the same and run to its EOS */
            int hit = -1;
            for (int e = 0; e < n && hit < 0; e++) {
                int len = 0;
                while (len <= T && atok[e * (T + 1) + len] != EOS) len++;
                len++; /* with its EOS */
                if (s0 + len > T + 1) continue;
                if (!memcmp(atok + e * (T + 1), ptok + r * (T + 1) + s0, sizeof(int32_t) * (size_t)len) &&
                    !memcmp(amask + e * T, pmask + r * T + s0, (size_t)len - 1) &&
                    (s0 + len - 1 >= T || pmask[r * T + s0 + len - 1] == 0))
                    hit = e;
            }
            CHECK_MSG(hit >= 0, "row %lld, document at %d is not one of the examples", (long long)r, s0);
            if (hit >= 0) found[hit]++;
        }
        if (in_row > max_docs) max_docs = in_row;
    }
    return max_docs;
}

/* The dataset side: prompt/completion examples loaded with docs packing give
 * rows whose documents are exactly the examples (tokens and loss flags as
 * loaded one per row), each once, with positions from 0; the batches then
 * train as above. */
static void test_dataset_docs(const hl_model *m) {
    const hl_tokenizer *tok = hl_model_get_tokenizer(m);
    char buf[16384];
    size_t o = 0;
    static const char *words[] = {"cat", "dog", "sun", "tree", "ran", "big", "red", "happy", "Lily", "Tom"};
    hl_rng rng;
    hl_rng_seed(&rng, 99);
    for (int e = 0; e < 40; e++) {
        o += (size_t)snprintf(buf + o, sizeof buf - o, "{\"prompt\": \"Q%d", e);
        int n = 1 + (int)hl_rng_below(&rng, 6);
        for (int i = 0; i < n; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, " %s", words[hl_rng_below(&rng, 10)]);
        o += (size_t)snprintf(buf + o, sizeof buf - o, ":\", \"completion\": \"");
        n = 1 + (int)hl_rng_below(&rng, 8);
        for (int i = 0; i < n; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, " %s", words[hl_rng_below(&rng, 10)]);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "\"}\n");
    }
    REQUIRE(o < sizeof buf - 1);
    hl_error err = {0};
    hl_dataset_params pd = {.ctx = T, .pack = HL_PACK_DOCS, .seed = 4}, pn = pd;
    pn.pack = HL_PACK_NONE;
    hl_dataset *dd = NULL, *dn = NULL;
    CHECK_OK(hl_dataset_load_memory(buf, o, "docs", tok, &pd, &dd, &err), &err);
    CHECK_OK(hl_dataset_load_memory(buf, o, "none", tok, &pn, &dn, &err), &err);
    REQUIRE(dd && dn);
    const hl_dataset_stats *sd = hl_dataset_get_stats(dd), *sn = hl_dataset_get_stats(dn);
    CHECK(sn->n_train_rows == 40 && sd->n_train_rows < 40 && sd->n_train_rows >= 1);
    CHECK(sd->n_loss_tokens == sn->n_loss_tokens && sd->n_tokens == sn->n_tokens);
    int64_t R = sd->n_train_rows;
    int32_t *ptok = malloc(sizeof(int32_t) * (size_t)R * (T + 1)), *ppos = malloc(sizeof(int32_t) * (size_t)R * T);
    uint8_t *pmask = malloc((size_t)R * T);
    int32_t atok[40 * (T + 1)];
    uint8_t amask[40 * T];
    hl_data_cursor c = {0, 0}, ca = {0, 0};
    hl_dataset_next_batch(dd, &c, (int32_t)R, ptok, pmask, ppos);
    hl_dataset_next_batch(dn, &ca, 40, atok, amask, NULL);
    int found[40] = {0}, docs = 0;
    int max_docs = match_docs(ptok, pmask, ppos, R, atok, amask, 40, found);
    for (int e = 0; e < 40; e++) docs += found[e];
    int once = 1;
    for (int e = 0; e < 40; e++) once &= found[e] == 1;
    CHECK_MSG(once && docs == 40, "%d documents in the packed rows; every example must appear exactly once", docs);
    CHECK(max_docs >= 3);
    printf("docs packing: 40 examples in %lld rows (none: 40), up to %d per row, padding %.1f%% vs %.1f%%\n",
           (long long)R, max_docs, 100.0 * (1.0 - (double)sd->n_tokens / ((double)R * T)),
           100.0 * (1.0 - (double)sn->n_tokens / (40.0 * T)));

    /* A validation split: its examples are packed into their own rows and
     * never into training rows; together they are every example once. */
    hl_dataset_params pv = pd;
    pv.val_fraction = 0.25f;
    hl_dataset *dv = NULL;
    CHECK_OK(hl_dataset_load_memory(buf, o, "val", tok, &pv, &dv, &err), &err);
    REQUIRE(dv);
    const hl_dataset_stats *sv = hl_dataset_get_stats(dv);
    CHECK(sv->n_val_examples == 10 && sv->n_train_examples == 30 && sv->n_val_rows >= 1);
    int in_train[40] = {0}, in_val[40] = {0};
    {
        int64_t Rt = sv->n_train_rows, Rv = sv->n_val_rows;
        int32_t *tt = malloc(sizeof(int32_t) * (size_t)(Rt + Rv) * (T + 1)), *tp = malloc(sizeof(int32_t) * (size_t)(Rt + Rv) * T);
        uint8_t *tm = malloc((size_t)(Rt + Rv) * T);
        hl_data_cursor cv = {0, 0};
        hl_dataset_next_batch(dv, &cv, (int32_t)Rt, tt, tm, tp);
        for (int64_t i = 0; i < Rv; i++)
            hl_dataset_val_row(dv, i, tt + (Rt + i) * (T + 1), tm + (Rt + i) * T, tp + (Rt + i) * T);
        match_docs(tt, tm, tp, Rt, atok, amask, 40, in_train);
        match_docs(tt + Rt * (T + 1), tm + Rt * T, tp + Rt * T, Rv, atok, amask, 40, in_val);
        free(tt);
        free(tp);
        free(tm);
    }
    int split_ok = 1, n_val = 0;
    for (int e = 0; e < 40; e++) {
        split_ok &= in_train[e] + in_val[e] == 1;
        n_val += in_val[e];
    }
    CHECK_MSG(split_ok && n_val == 10, "validation split: %d held-out documents; each example in exactly one split", n_val);
    hl_dataset_free(dv);

    /* Truncation: an example longer than ctx + 1 is cut and counted; one that
     * is cut before any counted target trains nothing and is left out. */
    char lng[4096];
    int k = snprintf(lng, sizeof lng, "{\"text\": \"");
    for (int i = 0; i < 80; i++) k += snprintf(lng + k, sizeof lng - (size_t)k, " happy");
    k += snprintf(lng + k, sizeof lng - (size_t)k, "\"}\n{\"prompt\": \"");
    for (int i = 0; i < 80; i++) k += snprintf(lng + k, sizeof lng - (size_t)k, " sun");
    k += snprintf(lng + k, sizeof lng - (size_t)k, "\", \"completion\": \" end\"}\n{\"text\": \"a cat\"}\n");
    hl_dataset *dt = NULL;
    CHECK_OK(hl_dataset_load_memory(lng, (size_t)k, "long", tok, &pd, &dt, &err), &err);
    REQUIRE(dt);
    const hl_dataset_stats *st = hl_dataset_get_stats(dt);
    CHECK_MSG(st->n_truncated == 2 && st->n_train_rows == 2, "truncated %lld, rows %lld", (long long)st->n_truncated,
              (long long)st->n_train_rows);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(hl_tokenizer_encode(tok, "a cat", 5, 1, 1, &ids, &n_ids, &err), &err);
    CHECK_MSG(st->n_tokens == T + (int64_t)n_ids - 1, "%lld targets: the cut text's T and the short one's %zu",
              (long long)st->n_tokens, n_ids - 1);
    hl_free(ids);
    hl_dataset_free(dt);

    /* The loaded batches train as each example alone. */
    hl_adapter *ad = make_adapter(m);
    hl_trainer *tp = make_trainer(m, ad, (int32_t)R, 2), *ta = make_trainer(m, ad, 40, 2);
    double lp = grads_of_sum(tp, ptok, pmask, ppos), la = grads_of_sum(ta, atok, amask, NULL), worst = 0;
    CHECK_MSG(fabs(lp - la) <= 1e-6 * fabs(la), "dataset batches: summed loss packed %.9g, alone %.9g", lp, la);
    for (int32_t i = 0; i < hl_trainer_n_params(tp); i++) {
        hl_param p = hl_trainer_param(tp, i), a = hl_trainer_param(ta, i);
        double d_max = 0, a_max = 0;
        for (int64_t e = 0; e < p.n; e++) {
            d_max = fmax(d_max, fabs((double)p.grad[e] - a.grad[e]));
            a_max = fmax(a_max, fabs((double)a.grad[e]));
        }
        worst = fmax(worst, a_max > 0 ? d_max / a_max : d_max);
    }
    CHECK_MSG(worst <= 1e-5, "dataset batches: worst gradient difference %g", worst);
    printf("dataset batches packed vs alone: summed loss %.9g vs %.9g, worst gradient %.3g\n", lp, la, worst);
    hl_trainer_free(tp);
    hl_trainer_free(ta);
    hl_adapter_free(ad);
    free(ptok);
    free(ppos);
    free(pmask);
    hl_dataset_free(dd);
    hl_dataset_free(dn);
}

int main(void) {
    hl_error err = {0};
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &m, &err), &err);
    REQUIRE(m);
    test_exact(m);
    test_dataset_docs(m);
    hl_model_free(m);
    return hl_test_finish("test_packing");
}
