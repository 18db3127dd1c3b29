/* bench_infer.c: inference speed of one GGUF model.
 *
 *   pp<N>  one batched hl_context_eval of N prompt tokens at position 0,
 *          tokens/s = N / time: variant "base" asks for the logits of the
 *          last token only, "all logits" for those of every token (the LM
 *          head then runs on all N);
 *   tg<N>  N single-token evals (greedy argmax fed back) after a short
 *          untimed prompt, tokens/s = N / time;
 *
 * each at every --threads value, as the median of --runs runs after one
 * untimed warm-up. With --adapters, decode (tg) is also measured with one
 * merged rank-R adapter (merged into a new GGUF with hl_merge_to_gguf and
 * loaded like any base) and with 1, 2 and 4 unmerged rank-R adapters on
 * q,v,o,gate,up,down, all at --adapter-threads. --weights packed,rows
 * measures the speed configurations once per weight layout (hl_weight_layout;
 * default: the build's choice); the table says which layout each row ran on.
 *
 * All configurations are measured round-robin inside each run, so a burst of
 * load from elsewhere on the machine hits them alike. Results go to stdout as
 * a table and, with --json FILE, as one JSON object per line appended to FILE. */
#include "hyperlora.h"
#include "lora/create.h"
#include "lora/merge.h"
#include "model/model.h"
#include "util/rng.h"
#include "util/threadpool.h"

#include "bench_lora.h"
#include "bench_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIGS 32
#define MAX_RUNS 64

typedef struct config {
    char test[16];       /* "pp128", "tg64" */
    char variant[32];    /* "base", "merged", "lora x1", ... */
    int threads;
    int is_pp;
    const char *weights; /* "packed" or "rows": the layout the context runs on */
    int all_logits;      /* pp: logits of every prompt token (the LM head runs on all of them) */
    hl_context *ctx;
    const hl_adapter *const *adapters;
    int n_adapters;
    double tok_s[MAX_RUNS];
    double read_gbs[MAX_RUNS]; /* tg: read bandwidth measured just before each run, same thread count */
    bench_interference_sum timed; /* the machine's busy time, ours and the wall time of the timed regions */
    int n;
} config;

typedef struct opts {
    const char *model, *name, *json, *workdir;
    int runs, pp, tg, prompt, rank, adapters, adapter_threads;
    int threads[8], n_threads;
    int layouts[2], n_layouts; /* hl_weight_layout of the speed configurations */
} opts;

static void usage(void) {
    printf("usage: bench_infer -m MODEL.gguf [--name LABEL] [--runs N] [--threads 1,2] [--pp 128] [--tg 64]\n"
           "                   [--prompt 8] [--adapters] [--adapter-threads 2] [--rank 16] [--workdir DIR]\n"
           "                   [--weights auto|packed|rows|packed,rows] [--json FILE]\n");
}

static int parse_threads(const char *s, opts *o) {
    o->n_threads = 0;
    while (*s && o->n_threads < 8) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 256) return 0;
        o->threads[o->n_threads++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return o->n_threads > 0;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.runs = 5, .pp = 128, .tg = 64, .prompt = 8, .rank = 16, .adapter_threads = 2, .workdir = "."};
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads = 2;
    o->layouts[0] = HL_WEIGHTS_AUTO;
    o->n_layouts = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            exit(0);
        } else if (!strcmp(a, "--adapters")) {
            o->adapters = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_infer: %s needs a value\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "--name")) o->name = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--workdir")) o->workdir = v;
        else if (!strcmp(a, "--runs")) o->runs = atoi(v);
        else if (!strcmp(a, "--pp")) o->pp = atoi(v);
        else if (!strcmp(a, "--tg")) o->tg = atoi(v);
        else if (!strcmp(a, "--prompt")) o->prompt = atoi(v);
        else if (!strcmp(a, "--rank")) o->rank = atoi(v);
        else if (!strcmp(a, "--adapter-threads")) o->adapter_threads = atoi(v);
        else if (!strcmp(a, "--weights")) {
            if (!strcmp(v, "auto")) o->layouts[0] = HL_WEIGHTS_AUTO, o->n_layouts = 1;
            else if (!strcmp(v, "packed")) o->layouts[0] = HL_WEIGHTS_PACKED, o->n_layouts = 1;
            else if (!strcmp(v, "rows")) o->layouts[0] = HL_WEIGHTS_ROWS, o->n_layouts = 1;
            else if (!strcmp(v, "packed,rows")) {
                o->layouts[0] = HL_WEIGHTS_PACKED;
                o->layouts[1] = HL_WEIGHTS_ROWS;
                o->n_layouts = 2;
            } else {
                fprintf(stderr, "bench_infer: bad --weights \"%s\"\n", v);
                return 0;
            }
        }
        else if (!strcmp(a, "--threads")) {
            if (!parse_threads(v, o)) {
                fprintf(stderr, "bench_infer: bad --threads \"%s\"\n", v);
                return 0;
            }
        } else {
            fprintf(stderr, "bench_infer: unknown option %s\n", a);
            return 0;
        }
    }
    if (!o->model) {
        usage();
        return 0;
    }
    if (o->runs < 1 || o->runs > MAX_RUNS || o->pp < 1 || o->tg < 1 || o->prompt < 1 || o->rank < 1 ||
        o->adapter_threads < 1) {
        fprintf(stderr, "bench_infer: runs must be 1..%d and pp, tg, prompt, rank, adapter-threads >= 1\n", MAX_RUNS);
        return 0;
    }
    if (!o->name) o->name = o->model;
    return 1;
}

static void die(const char *what, const hl_error *err) {
    fprintf(stderr, "bench_infer: %s: %s\n", what, err->msg);
    exit(1);
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* CPU cores used by other processes during the timed regions of c, or NAN when they
 * were too short for the jiffy clock to say. */
static double other_cores(const config *c) { return bench_interference_cores(&c->timed); }

/* The same-moment bandwidth reference: this host's memory bandwidth drifts
 * (1.6x between runs of one evening), so each decode run is paired with a
 * read of READ_BYTES, on as many threads, taken right before it. */
#define READ_FLOATS ((int64_t)1 << 27) /* 512 MiB */
typedef struct read_job {
    const float *buf;
    float partial[64];
} read_job;
static void read_chunk(void *arg, int64_t begin, int64_t end, int worker) {
    read_job *j = arg;
    j->partial[worker] += bench_sum_stream(j->buf, begin, end);
}
static double read_gbs(hl_pool *pool, const float *buf) {
    read_job j = {buf, {0}};
    double t0 = bench_now();
    hl_pool_for(pool, READ_FLOATS, 4096, read_chunk, &j);
    double t = bench_now() - t0;
    if (j.partial[0] == 12345.0f) fprintf(stderr, "."); /* keeps the sum alive */
    return (double)READ_FLOATS * 4 / t / 1e9;
}

/* One timed measurement of a configuration; returns tokens/s. */
static double measure(config *c, const opts *o, const int32_t *prompt, int32_t V, float *logits, float *all_logits,
                      int timed) {
    hl_error err = {0};
    if (hl_context_set_adapters(c->ctx, c->adapters, NULL, 0, &err) != HL_OK) die("set adapters", &err);
    if (c->n_adapters) {
        float scales[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        if (hl_context_set_adapters(c->ctx, c->adapters, scales, c->n_adapters, &err) != HL_OK)
            die("set adapters", &err);
    }
    bench_interference bi;
    double t0, t1;
    if (c->is_pp) {
        bench_interference_begin(&bi);
        t0 = bench_now();
        if (hl_context_eval(c->ctx, prompt, o->pp, 0, c->all_logits ? all_logits : logits, c->all_logits, &err) !=
            HL_OK)
            die("eval", &err);
        t1 = bench_now();
        if (timed) (void)bench_interference_end(&bi, &c->timed);
        return o->pp / (t1 - t0);
    }
    if (hl_context_eval(c->ctx, prompt, o->prompt, 0, logits, 0, &err) != HL_OK) die("eval", &err);
    int32_t tok = argmax(logits, V);
    bench_interference_begin(&bi);
    t0 = bench_now();
    for (int i = 0; i < o->tg; i++) {
        if (hl_context_eval(c->ctx, &tok, 1, o->prompt + i, logits, 0, &err) != HL_OK) die("eval", &err);
        tok = argmax(logits, V);
    }
    t1 = bench_now();
    if (timed) (void)bench_interference_end(&bi, &c->timed);
    return o->tg / (t1 - t0);
}

/* Bytes of weights one decoded token reads: each layer matrix and the LM head
 * once, in the type the model holds it (quantized blocks or f32), the norms,
 * and one embedding row. */
static double weight_bytes_per_token(const hl_model *m) {
    const hl_model_config *c = &m->cfg;
    double C = c->dim, F = c->hidden_dim, D = C / c->n_heads, kv = c->n_kv_heads * D, V = m->n_vocab_base;
    const double f32_elems[HL_TARGET_COUNT] = {
        [HL_TARGET_Q] = C * C, [HL_TARGET_K] = kv * C, [HL_TARGET_V] = kv * C, [HL_TARGET_O] = C * C,
        [HL_TARGET_GATE] = F * C, [HL_TARGET_UP] = F * C, [HL_TARGET_DOWN] = C * F, [HL_TARGET_OUTPUT] = V * C};
    double bytes = 4.0 * (c->n_layers * 2 * C + C + C); /* norms, output norm, embedding row */
    for (int l = 0; l <= c->n_layers; l++)
        for (int t = 0; t < HL_TARGET_COUNT; t++) {
            if ((l == c->n_layers) != (t == HL_TARGET_OUTPUT)) continue;
            const hl_qweight *q = m->quantized ? &m->qw[(size_t)l * HL_TARGET_COUNT + t] : NULL;
            bytes += q && q->data ? (double)q->rows * (double)q->row_bytes : 4.0 * f32_elems[t];
        }
    return bytes;
}

/* Forward FLOPs per prompt token of pp<n>: the layer matmuls, causal attention
 * (positions 0..n-1) and the LM head, on every token or on the last only. */
static double pp_flops_per_token(const hl_model_config *c, int n, int all_logits) {
    double C = c->dim, F = c->hidden_dim, D = C / c->n_heads, kv = c->n_kv_heads * D, V = c->vocab_size;
    double mats = c->n_layers * (C * C * 2 + 2 * kv * C + 3 * C * F);
    double attn = c->n_layers * 4.0 * C * (n + 1) / 2.0;
    double head = 2.0 * C * V * (all_logits ? 1.0 : 1.0 / n);
    return 2.0 * mats + attn + head;
}

static double adapter_bytes(const hl_adapter *a) {
    double n = 0;
    for (int32_t i = 0; i < a->n_weights; i++)
        n += (double)a->w[i].rank * (double)(a->w[i].n_in + a->w[i].n_out);
    return 4.0 * n;
}

static hl_adapter *random_adapter(const hl_model *m, int rank, uint64_t seed) {
    hl_error err = {0};
    hl_adapter *a = bench_random_adapter(m, rank, seed, &err);
    if (!a) die("adapter create", &err);
    return a;
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) return 2;
    hl_error err = {0};
    hl_model *m = NULL;
    if (hl_model_load(o.model, NULL, &m, &err) != HL_OK) die(o.model, &err);
    const hl_model_config *mc = hl_model_get_config(m);
    const int32_t V = mc->vocab_size;
    int need = o.pp > o.prompt + o.tg ? o.pp : o.prompt + o.tg;
    if (need > mc->seq_len) {
        fprintf(stderr, "bench_infer: the model's context (%d) is shorter than the %d positions needed\n", mc->seq_len,
                need);
        return 2;
    }
    /* pp<N> evaluates the first pp tokens, tg<N> the first `prompt` before
     * decoding: the array holds whichever is longer (the same tokens either way) */
    const int n_prompt = o.pp > o.prompt ? o.pp : o.prompt;
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    float *logits = malloc((size_t)V * sizeof *logits);
    float *all_logits = malloc((size_t)o.pp * (size_t)V * sizeof *all_logits);
    if (!prompt || !logits || !all_logits) return 1;
    hl_rng rng;
    hl_rng_seed(&rng, 1234);
    const hl_tokenizer *tok = hl_model_get_tokenizer(m);
    prompt[0] = tok ? hl_tokenizer_bos(tok) : 1;
    if (prompt[0] < 0 || prompt[0] >= V) prompt[0] = 1;
    for (int i = 1; i < n_prompt; i++) prompt[i] = (int32_t)hl_rng_below(&rng, (uint64_t)V);

    config cfg[MAX_CONFIGS];
    int nc = 0;
    hl_context *ctxs[16];
    int nctx = 0;
    for (int li = 0; li < o.n_layouts; li++)
        for (int ti = 0; ti < o.n_threads; ti++) {
            hl_context_params p = {.n_ctx = need, .n_threads = o.threads[ti], .weights = o.layouts[li]};
            hl_context *ctx = NULL;
            if (hl_context_init(m, &p, &ctx, &err) != HL_OK) die("context", &err);
            ctxs[nctx++] = ctx;
            const char *w = hl_context_weight_layout(ctx) == HL_WEIGHTS_PACKED ? "packed" : "rows";
            cfg[nc] = (config){.threads = o.threads[ti], .is_pp = 1, .ctx = ctx, .weights = w};
            snprintf(cfg[nc].test, sizeof cfg[nc].test, "pp%d", o.pp);
            snprintf(cfg[nc].variant, sizeof cfg[nc].variant, "base");
            nc++;
            cfg[nc] = (config){.threads = o.threads[ti], .is_pp = 1, .all_logits = 1, .ctx = ctx, .weights = w};
            snprintf(cfg[nc].test, sizeof cfg[nc].test, "pp%d", o.pp);
            snprintf(cfg[nc].variant, sizeof cfg[nc].variant, "all logits");
            nc++;
            cfg[nc] = (config){.threads = o.threads[ti], .is_pp = 0, .ctx = ctx, .weights = w};
            snprintf(cfg[nc].test, sizeof cfg[nc].test, "tg%d", o.tg);
            snprintf(cfg[nc].variant, sizeof cfg[nc].variant, "base");
            nc++;
        }

    hl_model *merged = NULL;
    hl_adapter *ad[4] = {0};
    int first_adapter_cfg = nc;
    double ad_bytes = 0;
    if (o.adapters) {
        for (int i = 0; i < 4; i++) ad[i] = random_adapter(m, o.rank, 1000 + (uint64_t)i);
        ad_bytes = adapter_bytes(ad[0]);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-merged-r%d.gguf", o.workdir, o.name, o.rank);
        const hl_adapter *one[1] = {ad[0]};
        float one_scale[1] = {1.0f};
        double t0 = bench_now();
        if (hl_merge_to_gguf(m, one, one_scale, 1, path, &err) != HL_OK) die("merge", &err);
        fprintf(stderr, "bench_infer: merged a rank-%d adapter into %s (%.1f s)\n", o.rank, path, bench_now() - t0);
        if (hl_model_load(path, NULL, &merged, &err) != HL_OK) die(path, &err);
        hl_context_params p = {.n_ctx = need, .n_threads = o.adapter_threads};
        hl_context *base_ctx = NULL, *merged_ctx = NULL;
        if (hl_context_init(m, &p, &base_ctx, &err) != HL_OK || hl_context_init(merged, &p, &merged_ctx, &err) != HL_OK)
            die("context", &err);
        ctxs[nctx++] = base_ctx;
        ctxs[nctx++] = merged_ctx;
        static const hl_adapter *set[4];
        for (int i = 0; i < 4; i++) set[i] = ad[i];
        const char *names[] = {"no adapter", "merged", "unmerged x1", "unmerged x2", "unmerged x4"};
        const int counts[] = {0, 0, 1, 2, 4};
        for (int k = 0; k < 5; k++) {
            hl_context *cx = k == 1 ? merged_ctx : base_ctx;
            cfg[nc] = (config){.threads = o.adapter_threads, .is_pp = 0, .ctx = cx, .adapters = set,
                               .n_adapters = counts[k],
                               .weights = hl_context_weight_layout(cx) == HL_WEIGHTS_PACKED ? "packed" : "rows"};
            snprintf(cfg[nc].test, sizeof cfg[nc].test, "tg%d", o.tg);
            snprintf(cfg[nc].variant, sizeof cfg[nc].variant, "%s", names[k]);
            nc++;
        }
    }

    double load0 = bench_loadavg1();
    /* warm-up: page the weights in, fault the scratch, start the threads */
    for (int c = 0; c < nc; c++) {
        measure(&cfg[c], &o, prompt, V, logits, all_logits, 0);
    }
    float *rbuf = malloc((size_t)READ_FLOATS * sizeof(float));
    hl_pool *rpool[3] = {NULL, hl_pool_init(1), hl_pool_init(2)};
    if (!rbuf) return 1;
    for (int64_t i = 0; i < READ_FLOATS; i++) rbuf[i] = (float)(i & 1023) * 1e-3f;
    /* The first pass over a freshly written buffer ran at a tenth of the later
     * ones on a KVM guest (3 against 52 GB/s): one pass per pool, discarded. */
    for (int t = 1; t <= 2; t++)
        if (rpool[t]) (void)read_gbs(rpool[t], rbuf);
    for (int r = 0; r < o.runs; r++)
        for (int c = 0; c < nc; c++) {
            if (!cfg[c].is_pp && cfg[c].threads <= 2 && rpool[cfg[c].threads])
                cfg[c].read_gbs[r] = read_gbs(rpool[cfg[c].threads], rbuf);
            else cfg[c].read_gbs[r] = NAN;
            cfg[c].tok_s[r] = measure(&cfg[c], &o, prompt, V, logits, all_logits, 1);
            cfg[c].n = r + 1;
        }
    free(rbuf);
    hl_pool_free(rpool[1]);
    hl_pool_free(rpool[2]);
    double load1 = bench_loadavg1();

    const double wbytes = weight_bytes_per_token(m);
    FILE *js = o.json ? fopen(o.json, "a") : NULL;
    if (o.json && !js) {
        perror(o.json);
        return 1;
    }
    double base_tg = 0;
    for (int c = first_adapter_cfg; c < nc; c++)
        if (!strcmp(cfg[c].variant, "no adapter")) base_tg = bench_median(cfg[c].tok_s, cfg[c].n);

    printf("\n%s  (dim %d, layers %d, ffn %d, vocab %d; %.0f MB of weights read per decoded token; "
           "median of %d runs; load1 %.2f -> %.2f)\n",
           o.name, mc->dim, mc->n_layers, mc->hidden_dim, V, wbytes / 1e6, o.runs, load0, load1);
    printf("%-6s %-12s %-7s %7s %12s %20s %12s %10s %12s %14s\n", "test", "variant", "weights", "threads", "tok/s",
           "min-max", "weight GB/s", "vs base", "other cores", "of read GB/s");
    for (int c = 0; c < nc; c++) {
        config *x = &cfg[c];
        double med = bench_median(x->tok_s, x->n), lo = bench_min(x->tok_s, x->n), hi = bench_max(x->tok_s, x->n);
        double omax = other_cores(x);
        double bytes = wbytes + (x->is_pp ? 0 : ad_bytes * x->n_adapters);
        double gbs = x->is_pp ? NAN : med * bytes / 1e9;
        int is_adapter_cfg = c >= first_adapter_cfg;
        double overhead = is_adapter_cfg && base_tg > 0 ? base_tg / med - 1.0 : NAN;
        char range[48], ov[16], gb[16];
        snprintf(range, sizeof range, "%.1f-%.1f", lo, hi);
        if (isnan(gbs)) snprintf(gb, sizeof gb, "-");
        else snprintf(gb, sizeof gb, "%.1f", gbs);
        if (isnan(overhead)) snprintf(ov, sizeof ov, "-");
        else snprintf(ov, sizeof ov, "%+.1f%%", 100 * overhead);
        char oc[16];
        if (isnan(omax)) snprintf(oc, sizeof oc, "-");
        else snprintf(oc, sizeof oc, "%.2f", omax);
        /* weight stream / same-moment read bandwidth, median over the paired runs */
        double frac[MAX_RUNS], rd = NAN, fr = NAN;
        int nf = 0;
        for (int r = 0; !x->is_pp && r < x->n; r++)
            if (!isnan(x->read_gbs[r])) frac[nf++] = x->tok_s[r] * bytes / 1e9 / x->read_gbs[r];
        if (nf) {
            fr = bench_median(frac, nf);
            rd = bench_median(x->read_gbs, x->n);
        }
        char rf[32];
        if (isnan(fr)) snprintf(rf, sizeof rf, "-");
        else snprintf(rf, sizeof rf, "%.0f%% of %.1f", 100 * fr, rd);
        printf("%-6s %-12s %-7s %7d %12.1f %20s %12s %10s %12s %14s\n", x->test, x->variant, x->weights, x->threads, med,
               range, gb, ov, oc, rf);
        if (js) {
            fprintf(js,
                    "{\"bench\":\"infer\",\"model\":\"%s\",\"test\":\"%s\",\"variant\":\"%s\",\"weights\":\"%s\","
                    "\"section\":\"%s\",\"threads\":%d,\"adapters\":%d,\"rank\":%d,\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,"
                    "\"runs\":%d,\"run_tok_s\":[",
                    o.name, x->test, x->variant, x->weights, is_adapter_cfg ? "adapter" : "speed", x->threads, x->n_adapters,
                    o.rank, med, lo, hi, x->n);
            for (int r = 0; r < x->n; r++) fprintf(js, "%s%.3f", r ? "," : "", x->tok_s[r]);
            fprintf(js, "],\"decode_overhead\":");
            if (isnan(overhead)) fprintf(js, "null");
            else fprintf(js, "%.5f", overhead);
            if (x->is_pp) {
                double f = pp_flops_per_token(mc, o.pp, x->all_logits);
                fprintf(js, ",\"flops_per_token\":%.0f,\"gflops\":%.3f", f, f * med / 1e9);
            }
            fprintf(js, ",\"weight_bytes_per_token\":%.0f,\"weight_GBps\":", bytes);
            if (isnan(gbs)) fprintf(js, "null");
            else fprintf(js, "%.3f", gbs);
            fprintf(js, ",\"read_GBps_adjacent\":");
            if (isnan(rd)) fprintf(js, "null");
            else fprintf(js, "%.3f", rd);
            fprintf(js, ",\"stream_fraction\":");
            if (isnan(fr)) fprintf(js, "null");
            else fprintf(js, "%.4f", fr);
            fprintf(js, ",\"other_cores\":");
            if (isnan(omax)) fprintf(js, "null");
            else fprintf(js, "%.3f", omax);
            fprintf(js, ",\"loadavg1_start\":%.2f,\"loadavg1_end\":%.2f}\n", load0, load1);
        }
    }
    if (js) fclose(js);

    for (int i = 0; i < nctx; i++) hl_context_free(ctxs[i]);
    for (int i = 0; i < 4; i++) hl_adapter_free(ad[i]);
    hl_model_free(merged);
    hl_model_free(m);
    free(prompt);
    free(logits);
    free(all_logits);
    return 0;
}
