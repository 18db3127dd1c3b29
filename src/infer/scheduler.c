/* scheduler.c: continuous batching over per-sequence contexts (see
 * scheduler.h). Each sequence repeats hl_generate's calls one step at a
 * time: eval the prompt (in the shared pass, possibly over several steps),
 * sample; then eval the last token, sample; so its tokens are the ones it
 * gets alone. Not here: prefix sharing, preemption. */
#include "infer/scheduler.h"
#include "infer/batch_decode.h"
#include "model/context.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

#include <stdint.h>
#include <string.h>

struct hl_seq {
    void *user;
    hl_context *ctx;
    hl_sampler *sampler;
    int32_t *prompt;
    int32_t n_prompt;
    float *vectors;       /* owned copy of the scene vectors, or NULL */
    float *logits;        /* (V) */
    int32_t *tokens;      /* (n_predict) generated so far */
    int32_t n_tokens, n_predict;
    int32_t pos;          /* next position to evaluate */
    int stop_at_eos;
    int32_t bos, eos;
    const hl_tokenizer *tok;  /* the model's: its end-of-generation set */
    int32_t stop_ids[HL_SEQ_MAX_STOP];
    int32_t n_stop_ids;
    size_t kv_bytes;
    hl_seq_state state;
    hl_error err;
};

struct hl_sched {
    hl_sched_params p;
    hl_pool *pool;
    hl_seq **seqs;        /* (max_seqs) held, in the order added */
    int32_t n;
    hl_seq **run;         /* (max_seqs) scratch: the unfinished ones of a step run alone */
    hl_seq **batch;       /* (seg_cap) scratch: the sequence of each segment of the shared pass */
    hl_batch_seg *segs;   /* (seg_cap) their rows in it: a decoding token, or a prompt chunk */
    int32_t seg_cap;
    hl_batch_decode *bd;
    size_t kv_bytes;
};

size_t hl_sched_kv_bytes_for(const hl_model *m, int32_t positions) {
    const hl_model_config *c = hl_model_get_config(m);
    size_t kv = (size_t)c->n_kv_heads * (size_t)hl_cfg_head_dim(c);
    /* k and v, each as hl_context_init maps it (whole huge pages from 2 MiB) */
    return 2u * hl_huge_bytes((size_t)c->n_layers * (size_t)positions * kv * sizeof(float));
}

hl_status hl_sched_init(const hl_sched_params *p, hl_sched **out, hl_error *err) {
    *out = NULL;
    if (p->n_threads < 1 || p->n_threads > 256)
        return hl_fail(err, HL_ERR_INVALID_ARG, "scheduler: threads must be in 1..256 (got %d)", p->n_threads);
    if (p->max_prompt_rows < 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "scheduler: negative prompt row budget (%d)", p->max_prompt_rows);
    if (p->max_seqs < 1 || p->max_seqs > 65536)
        return hl_fail(err, HL_ERR_INVALID_ARG, "scheduler: max sequences must be in 1..65536 (got %d)", p->max_seqs);
    hl_sched *s = hl_calloc(1, sizeof *s);
    if (!s) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->pool = hl_pool_init(p->n_threads);
    s->seqs = hl_calloc((size_t)p->max_seqs, sizeof *s->seqs);
    s->run = hl_calloc((size_t)p->max_seqs, sizeof *s->run);
    if (!s->pool || !s->seqs || !s->run) {
        hl_sched_free(s);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory creating a scheduler");
    }
    *out = s;
    return HL_OK;
}

static void seq_free(hl_seq *q) {
    if (!q) return;
    hl_context_free(q->ctx);
    hl_sampler_free(q->sampler);
    hl_free(q->prompt);
    hl_free(q->vectors);
    hl_free(q->logits);
    hl_free(q->tokens);
    hl_free(q);
}

void hl_sched_free(hl_sched *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n; i++) seq_free(s->seqs[i]);
    hl_free(s->seqs);
    hl_free(s->run);
    hl_free(s->batch);
    hl_free(s->segs);
    hl_batch_decode_free(s->bd);
    hl_pool_free(s->pool);
    hl_free(s);
}

hl_status hl_sched_add(hl_sched *s, const hl_seq_desc *d, void *user, hl_seq **out, hl_error *err) {
    *out = NULL;
    if (!d->model) return hl_fail(err, HL_ERR_INVALID_ARG, "sequence: no model");
    const hl_model_config *c = hl_model_get_config(d->model);
    if (d->n_prompt < 1 || !d->prompt) return hl_fail(err, HL_ERR_INVALID_ARG, "sequence: the prompt has no tokens");
    if (d->n_predict < 0) return hl_fail(err, HL_ERR_INVALID_ARG, "sequence: negative token count");
    if (d->n_stop_ids < 0 || d->n_stop_ids > HL_SEQ_MAX_STOP)
        return hl_fail(err, HL_ERR_INVALID_ARG, "sequence: %d stop tokens (at most %d)", d->n_stop_ids,
                       HL_SEQ_MAX_STOP);
    if (d->n_scene_vectors < 0 || d->n_scene_vectors > 65536)
        return hl_fail(err, HL_ERR_INVALID_ARG, "sequence: %d scene vectors", d->n_scene_vectors);
    /* Positions evaluated: the prompt, then every generated token but the last. */
    int64_t positions = (int64_t)d->n_prompt + (d->n_predict > 0 ? d->n_predict - 1 : 0);
    if (positions > c->seq_len)
        return hl_fail(err, HL_ERR_LIMIT, "%d prompt tokens and %d more to generate exceed the model's context of %d",
                       d->n_prompt, d->n_predict, c->seq_len);
    if (s->n == s->p.max_seqs)
        return hl_fail(err, HL_ERR_LIMIT, "%d sequences are already running (the most at once)", s->n);
    size_t kv = hl_sched_kv_bytes_for(d->model, (int32_t)positions);
    if (s->p.kv_cap_bytes && (kv > s->p.kv_cap_bytes || s->kv_bytes > s->p.kv_cap_bytes - kv))
        return hl_fail(err, HL_ERR_LIMIT,
                       "the KV cache of this request (%zu bytes) does not fit: %zu of %zu bytes are in use", kv,
                       s->kv_bytes, s->p.kv_cap_bytes);
    hl_seq *q = hl_calloc(1, sizeof *q);
    if (!q) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    q->user = user;
    q->n_prompt = d->n_prompt;
    q->n_predict = d->n_predict;
    q->stop_at_eos = d->stop_at_eos;
    q->kv_bytes = kv;
    const hl_tokenizer *tok = hl_model_get_tokenizer(d->model);
    q->bos = hl_tokenizer_bos(tok);
    q->eos = hl_tokenizer_eos(tok);
    q->tok = tok;
    q->n_stop_ids = d->n_stop_ids;
    memcpy(q->stop_ids, d->stop_ids, (size_t)d->n_stop_ids * sizeof *q->stop_ids);
    hl_status st = HL_OK;
    q->prompt = hl_malloc_array((size_t)d->n_prompt, sizeof(int32_t));
    q->tokens = hl_malloc_array((size_t)(d->n_predict > 0 ? d->n_predict : 1), sizeof(int32_t));
    q->logits = hl_malloc_array((size_t)c->vocab_size, sizeof(float));
    if (!q->prompt || !q->tokens || !q->logits) st = hl_fail(err, HL_ERR_NOMEM, "out of memory for a sequence");
    if (st == HL_OK) memcpy(q->prompt, d->prompt, (size_t)d->n_prompt * sizeof(int32_t));
    if (st == HL_OK && d->n_scene_vectors > 0) {
        size_t nf = (size_t)d->n_scene_vectors * (size_t)c->dim;
        if (!(q->vectors = hl_malloc_array(nf, sizeof(float)))) st = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else memcpy(q->vectors, d->scene_vectors, nf * sizeof(float));
    }
    if (st == HL_OK) {
        /* Scratch for all the scheduler's threads, but no workers of its own: a
         * sequence runs inline on one worker beside the others, or alone on the
         * scheduler's pool (hl_sched_step). */
        hl_context_params cp = {.n_ctx = (int32_t)(positions > 0 ? positions : 1), .n_threads = s->p.n_threads,
                                .weights = s->p.weights};
        st = hl_context_init(d->model, &cp, &q->ctx, err);
        if (st == HL_OK) {
            hl_pool_free(q->ctx->pool);
            q->ctx->pool = NULL;
        }
    }
    if (st == HL_OK && d->n_adapters)
        st = hl_context_set_adapters(q->ctx, d->adapters, d->scales, d->n_adapters, err);
    if (st == HL_OK && q->vectors) st = hl_context_set_scene_vectors(q->ctx, q->vectors, d->n_scene_vectors, err);
    if (st == HL_OK) st = hl_sampler_init(&d->sampler, c->vocab_size, &q->sampler, err);
    if (st != HL_OK) {
        seq_free(q);
        return st;
    }
    if (d->n_predict == 0) q->state = HL_SEQ_STOP_LENGTH;
    s->seqs[s->n++] = q;
    s->kv_bytes += kv;
    *out = q;
    return HL_OK;
}

static void seq_fail(hl_seq *q, hl_status st) {
    q->err.status = st;
    q->state = HL_SEQ_FAILED;
}

static void seq_sample(hl_seq *q);

/* One token of one sequence: exactly one loop turn of hl_generate (the rest of
 * its prompt when the shared pass has run some of it: the same bits,
 * batch_decode.h). */
static void seq_step(hl_seq *q) {
    hl_status st;
    if (q->n_tokens == 0) {
        st = hl_context_eval(q->ctx, q->prompt + q->pos, q->n_prompt - q->pos, q->pos, q->logits, 0, &q->err);
        q->pos = q->n_prompt;
    } else {
        st = hl_context_eval(q->ctx, &q->tokens[q->n_tokens - 1], 1, q->pos++, q->logits, 0, &q->err);
    }
    if (st != HL_OK) seq_fail(q, st);
    else seq_sample(q);
}

/* Whether next ends the sequence (with stop_at_eos): the tokens hl_generate stops at, and the extra ones. */
static int seq_stops_at(const hl_seq *q, int32_t next) {
    if (next == q->eos || next == q->bos || hl_tokenizer_is_eog(q->tok, next)) return 1;
    for (int32_t i = 0; i < q->n_stop_ids; i++)
        if (next == q->stop_ids[i]) return 1;
    return 0;
}

/* The next token from the logits just computed, and whether to stop. */
static void seq_sample(hl_seq *q) {
    int32_t next = hl_sampler_sample(q->sampler, q->logits);
    q->tokens[q->n_tokens++] = next;
    if (q->stop_at_eos && seq_stops_at(q, next)) q->state = HL_SEQ_STOP_EOS;
    else if (q->n_tokens == q->n_predict || q->pos >= hl_context_n_ctx(q->ctx)) q->state = HL_SEQ_STOP_LENGTH;
}

static void step_range(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    hl_seq **run = arg;
    for (int64_t i = begin; i < end; i++) seq_step(run[i]);
}

/* Room for n segments in the shared pass. */
static hl_status reserve_segs(hl_sched *s, int64_t n, hl_error *err) {
    if (n <= s->seg_cap) return HL_OK;
    int64_t cap = n > 2 * (int64_t)s->seg_cap ? n : 2 * (int64_t)s->seg_cap;
    if (cap > INT32_MAX) return hl_fail(err, HL_ERR_LIMIT, "scheduler: too many prompt chunks in one step");
    hl_seq **batch = hl_calloc((size_t)cap, sizeof *batch);
    hl_batch_seg *segs = hl_calloc((size_t)cap, sizeof *segs);
    if (!batch || !segs) {
        hl_free(batch);
        hl_free(segs);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory for a step of %lld segments", (long long)cap);
    }
    hl_free(s->batch);
    hl_free(s->segs);
    s->batch = batch;
    s->segs = segs;
    s->seg_cap = (int32_t)cap;
    return HL_OK;
}

static int32_t min_i32(int64_t a, int64_t b) { return (int32_t)(a < b ? a : b); }

/* The shared pass over the first running sequence's weights: every decoding sequence's token, then the
 * prompts in the order added, each in chunks of at most its context's n_batch tokens (the chunks a
 * context evaluates alone), while the prompt row budget lasts. A prompt may take several chunks in one
 * pass: its later chunks attend over the K and V its earlier ones wrote in the same layer. Returns the
 * segment count, 0 when fewer than two sequences could share the pass (one alone runs on its own
 * context), or -1 with *err set when there is no memory for the plan. */
static int32_t plan_batch(hl_sched *s, hl_error *err) {
    int32_t nq = 0;
    int64_t nseg = 0;
    const hl_seq *lead = NULL;
    for (int32_t i = 0; i < s->n; i++) {
        hl_seq *q = s->seqs[i];
        if (q->state != HL_SEQ_RUNNING) continue;
        if (!lead) lead = q;
        if (!hl_batch_decode_compatible(lead->ctx, q->ctx)) continue;
        s->run[nq++] = q; /* the candidates, for now */
        nseg += q->n_tokens > 0 ? 1 : (q->n_prompt - q->pos + q->ctx->n_batch - 1) / q->ctx->n_batch;
    }
    if (nq < 2) return 0;
    if (reserve_segs(s, nseg, err) != HL_OK) return -1;
    int64_t budget = s->p.max_prompt_rows ? s->p.max_prompt_rows : INT64_MAX;
    int32_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < nq; i++) {
            hl_seq *q = s->run[i];
            if ((q->n_tokens == 0) != (pass == 1)) continue;
            if (q->n_tokens > 0) {
                s->segs[k] = (hl_batch_seg){q->ctx, &q->tokens[q->n_tokens - 1], 1, q->pos, q->logits};
                s->batch[k++] = q;
                continue;
            }
            for (int32_t at = q->pos; at < q->n_prompt && budget > 0;) {
                int32_t t = min_i32(min_i32(q->n_prompt - at, q->ctx->n_batch), budget);
                budget -= t;
                s->segs[k] = (hl_batch_seg){q->ctx, q->prompt + at, t, at, at + t == q->n_prompt ? q->logits : NULL};
                s->batch[k++] = q;
                at += t;
            }
        }
    return k;
}

hl_status hl_sched_step(hl_sched *s, hl_error *err) {
    hl_error perr = {0};
    int32_t n = 0, nb = s->p.shared_base ? plan_batch(s, &perr) : 0;
    if (nb < 0) {
        if (err) *err = perr;
        return perr.status;
    }
    for (int32_t i = 0; i < s->n; i++) {
        hl_seq *q = s->seqs[i];
        int in_batch = 0;
        for (int32_t k = 0; k < nb && !in_batch; k++) in_batch = s->batch[k] == q;
        /* A prompt left out of a shared pass by the row budget waits for the next step. */
        int waits = nb && q->n_tokens == 0 && hl_batch_decode_compatible(s->batch[0]->ctx, q->ctx);
        if (q->state == HL_SEQ_RUNNING && !in_batch && !waits) s->run[n++] = q;
    }
    if (nb) {
        hl_error berr = {0};
        hl_status st = hl_batch_decode_run(&s->bd, s->pool, s->segs, nb, &berr);
        for (int32_t k = 0; k < nb; k++) {
            hl_seq *q = s->batch[k];
            if (st != HL_OK) {
                q->err = berr;
                seq_fail(q, st);
                continue;
            }
            q->pos += s->segs[k].n;
            if (s->segs[k].logits) seq_sample(q);
        }
    }
    if (n == 1) {
        /* Alone, a sequence's kernels take every thread (same bits at any count). */
        s->run[0]->ctx->pool = s->pool;
        seq_step(s->run[0]);
        s->run[0]->ctx->pool = NULL;
    } else if (n) hl_pool_for(s->pool, n, 1, step_range, s->run);
    return HL_OK;
}

void hl_sched_remove(hl_sched *s, hl_seq *q) {
    for (int32_t i = 0; i < s->n; i++)
        if (s->seqs[i] == q) {
            memmove(&s->seqs[i], &s->seqs[i + 1], (size_t)(s->n - i - 1) * sizeof *s->seqs);
            s->n--;
            s->kv_bytes -= q->kv_bytes;
            seq_free(q);
            return;
        }
}

int32_t hl_sched_n_seqs(const hl_sched *s) { return s->n; }
int32_t hl_sched_n_running(const hl_sched *s) {
    int32_t n = 0;
    for (int32_t i = 0; i < s->n; i++) n += s->seqs[i]->state == HL_SEQ_RUNNING;
    return n;
}
size_t hl_sched_kv_bytes(const hl_sched *s) { return s->kv_bytes; }
hl_seq *hl_sched_seq(const hl_sched *s, int32_t i) { return i >= 0 && i < s->n ? s->seqs[i] : NULL; }

void *hl_seq_user(const hl_seq *q) { return q->user; }
hl_seq_state hl_seq_get_state(const hl_seq *q) { return q->state; }
const int32_t *hl_seq_tokens(const hl_seq *q, int32_t *n) {
    *n = q->n_tokens;
    return q->tokens;
}
hl_status hl_seq_status(const hl_seq *q, hl_error *err) {
    if (q->state != HL_SEQ_FAILED) return HL_OK;
    if (err) *err = q->err;
    return q->err.status;
}
