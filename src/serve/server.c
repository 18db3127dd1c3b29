/* server.c: the HTTP endpoints of `hyperlora serve` (see server.h): request
 * bodies in, engine jobs, JSON and server-sent events out. libmicrohttpd
 * runs one thread per connection, so a handler may wait for its job. */
#include "serve/server.h"
#include "hyperlexeme/explain.h"
#include "hyperlexeme/lexicon.h"
#include "model/model.h"
#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/json_nul.h"
#include "util/utf8.h"
#include "kernels/dispatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIECE_CAP 2048

/* The page served at / (src/serve/web/index.html, embedded at build time). */
extern const unsigned char hl_web_page[];
extern const size_t hl_web_page_len;
#define MAX_FLOATS (1 << 20)

struct hl_server {
    hl_engine *e;
    hl_server_params p;
    struct MHD_Daemon *d;
    int port;
    time_t started;
    char fingerprint[64];      /* base part of system_fingerprint */
    hl_chat_template chat;     /* how chat messages become the prompt, bound to the base's vocabulary */
    const char *chat_source;   /* why that family: "file", "option", or "fallback" */
    atomic_uint_fast64_t next_id, requests, resp_2xx, resp_4xx, resp_5xx, disconnects;
};

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_big;
} conn;

hl_server_params hl_server_default_params(void) {
    hl_server_params p = {.host = NULL, .port = 8080, .api_key = NULL, .max_body = 1 << 20, .max_tokens = 4096,
                          .max_batch = 64, .timeout_s = 30, .max_connections = 64, .chat_template = NULL};
    return p;
}

/* ------------------------------------------------------------ responses */

static enum MHD_Result send_text(hl_server *s, struct MHD_Connection *c, unsigned code, const char *type,
                                 const char *text, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    if (code < 300) atomic_fetch_add(&s->resp_2xx, 1);
    else if (code < 500) atomic_fetch_add(&s->resp_4xx, 1);
    else atomic_fetch_add(&s->resp_5xx, 1);
    return ok;
}

/* Sends j and frees it. */
static enum MHD_Result send_json(hl_server *s, struct MHD_Connection *c, unsigned code, cJSON *j) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) return send_text(s, c, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}", 38);
    enum MHD_Result ok = send_text(s, c, code, "application/json", text, strlen(text));
    cJSON_free(text);
    return ok;
}

static const char *error_type(unsigned code) {
    switch (code) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 503: return "unavailable_error";
    default: return code >= 500 ? "server_error" : "invalid_request_error";
    }
}

static cJSON *error_json(unsigned code, const char *msg) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(code));
    cJSON_AddNumberToObject(e, "code", code);
    return o;
}

static enum MHD_Result send_error(hl_server *s, struct MHD_Connection *c, unsigned code, const char *fmt, ...)
    HL_PRINTF(4, 5);
static enum MHD_Result send_error(hl_server *s, struct MHD_Connection *c, unsigned code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_json(s, c, code, error_json(code, msg));
}

/* The HTTP code of a library failure. */
static unsigned status_code(hl_status st) {
    switch (st) {
    case HL_ERR_NOT_FOUND: return 404;
    case HL_ERR_LIMIT: case HL_ERR_NOMEM: return 503;
    case HL_ERR_INVALID_ARG: case HL_ERR_FORMAT: case HL_ERR_MISMATCH: case HL_ERR_UNSUPPORTED: case HL_ERR_IO:
        return 400;
    default: return 500;
    }
}

static enum MHD_Result send_failure(hl_server *s, struct MHD_Connection *c, hl_status st, const hl_error *err) {
    return send_error(s, c, status_code(st), "%s", err->msg[0] ? err->msg : hl_status_name(st));
}

/* ------------------------------------------------------------ request fields */

/* Each reader leaves *out alone when the key is absent and fills msg on a wrong type or range. */
static int field_string(const cJSON *o, const char *key, const char **out, char *msg, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsString(v)) {
        snprintf(msg, cap, "field \"%s\" must be a string", key);
        return 0;
    }
    *out = v->valuestring;
    return 1;
}

static int field_number(const cJSON *o, const char *key, double lo, double hi, double *out, char *msg, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(msg, cap, "field \"%s\" must be a number", key);
        return 0;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(msg, cap, "field \"%s\" must be in %g..%g (got %g)", key, lo, hi, v->valuedouble);
        return 0;
    }
    *out = v->valuedouble;
    return 1;
}

static int field_int(const cJSON *o, const char *key, double lo, double hi, double *out, char *msg, size_t cap) {
    double v = *out;
    if (!field_number(o, key, lo, hi, &v, msg, cap)) return 0;
    if (v != floor(v)) {
        snprintf(msg, cap, "field \"%s\" must be an integer", key);
        return 0;
    }
    *out = v;
    return 1;
}

static int field_bool(const cJSON *o, const char *key, int *out, char *msg, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsBool(v)) {
        snprintf(msg, cap, "field \"%s\" must be true or false", key);
        return 0;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

/* Sampling and length fields shared by completions and scenes. */
static int read_sampling(hl_server *s, const cJSON *o, hl_job_desc *d, double max_default, double temp_default,
                         char *msg, size_t cap) {
    double max_tokens = max_default, temp = temp_default, top_p = 1, top_k = 0, seed = 0;
    int ignore_eos = 0;
    if (!field_int(o, "max_tokens", 0, s->p.max_tokens, &max_tokens, msg, cap) ||
        !field_number(o, "temperature", 0, 100, &temp, msg, cap) ||
        !field_number(o, "top_p", 1e-9, 1, &top_p, msg, cap) ||
        !field_int(o, "top_k", 0, 1 << 24, &top_k, msg, cap) ||
        !field_int(o, "seed", 0, 9007199254740992.0, &seed, msg, cap) ||
        !field_bool(o, "ignore_eos", &ignore_eos, msg, cap))
        return 0;
    d->n_predict = (int32_t)max_tokens;
    d->stop_at_eos = !ignore_eos;
    d->sampler = hl_sampler_default_params();
    d->sampler.temperature = (float)temp;
    d->sampler.top_p = (float)top_p;
    d->sampler.top_k = (int32_t)top_k;
    d->sampler.seed = (uint64_t)seed;
    return 1;
}

/* "lora" / "adapters": [{"id": N | "name": S, "scale": X}] into ads (cap 64). */
static int read_adapters(const cJSON *o, const char *key, hl_job_desc *d, hl_job_adapter *ads, char *msg,
                         size_t cap) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!arr || cJSON_IsNull(arr)) return 1;
    if (!cJSON_IsArray(arr)) {
        snprintf(msg, cap, "field \"%s\" must be an array of {\"name\" or \"id\", \"scale\"}", key);
        return 0;
    }
    int n = cJSON_GetArraySize(arr);
    if (n > 64) {
        snprintf(msg, cap, "field \"%s\": at most 64 adapters (got %d)", key, n);
        return 0;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsObject(it)) {
            snprintf(msg, cap, "%s[%d] must be an object", key, i);
            return 0;
        }
        const char *name = NULL;
        double id = -1, scale = 1;
        if (!field_string(it, "name", &name, msg, cap) || !field_int(it, "id", 0, 1 << 30, &id, msg, cap) ||
            !field_number(it, "scale", -1e6, 1e6, &scale, msg, cap))
            return 0;
        if (!name && id < 0) {
            snprintf(msg, cap, "%s[%d] needs \"name\" or \"id\"", key, i);
            return 0;
        }
        ads[i] = (hl_job_adapter){.name = name, .id = (int32_t)id, .scale = (float)scale};
        i++;
    }
    d->adapters = ads;
    d->n_adapters = n;
    d->use_adapters = 1;
    return 1;
}

/* --------------------------------------------------------------- jobs */

/* 1 when the client has closed its side of the connection (a peek reads end-of-file). */
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The whole output of a job: waits for its end, checking that the client is
 * still there (else the job is cancelled: HL_ERR_INTERRUPTED). NULL on failure (err set). */
static char *job_text(hl_job *j, struct MHD_Connection *c, int32_t *n_tokens, hl_error *err) {
    int32_t n = 0;
    while (hl_job_get_state(j) < HL_JOB_DONE_EOS) {
        n = hl_job_wait(j, n, 250);
        if (client_gone(c)) {
            hl_job_cancel(j);
            hl_fail(err, HL_ERR_INTERRUPTED, "the client went away");
            return NULL;
        }
    }
    n = hl_job_wait(j, -1, 0);
    if (hl_job_status(j, err) != HL_OK) return NULL;
    size_t len = 0, cap = 256;
    char *out = hl_malloc(cap), piece[PIECE_CAP];
    for (int32_t i = 0; out && i < n; i++) {
        size_t k = hl_job_piece(j, i, piece, sizeof piece);
        if (len + k + 1 > cap) {
            cap = (len + k + 1) * 2;
            char *nb = hl_realloc(out, cap);
            if (!nb) {
                hl_free(out);
                out = NULL;
                break;
            }
            out = nb;
        }
        memcpy(out + len, piece, k);
        len += k;
    }
    if (!out) {
        hl_fail(err, HL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    out[len] = 0;
    /* JSON must be UTF-8; sampled byte tokens need not be. */
    char *clean = hl_malloc(3 * len + 1);
    if (!clean) {
        hl_free(out);
        hl_fail(err, HL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    hl_utf8_sanitize(out, len, clean);
    hl_free(out);
    *n_tokens = n;
    return clean;
}

/* Nobody to answer: the connection is dropped. */
static enum MHD_Result client_left(hl_server *s) {
    atomic_fetch_add(&s->disconnects, 1);
    return MHD_NO;
}

static const char *finish_reason(hl_job_state st) { return st == HL_JOB_DONE_EOS ? "stop" : "length"; }

/* "hyperlora-VERSION-SIMD-LAYOUT-BASEFP[+adapter...]": the build, the weight layout, the base and the
 * adapters that made the bytes. */
static void fingerprint(const hl_server *s, const hl_job_desc *d, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "%s", s->fingerprint);
    for (int32_t i = 0; d->use_adapters && i < d->n_adapters && n < cap; i++) {
        if (d->adapters[i].name) n += (size_t)snprintf(out + n, cap - n, "+%s", d->adapters[i].name);
        else n += (size_t)snprintf(out + n, cap - n, "+#%d", d->adapters[i].id);
    }
}

/* chat: 0 a text completion, 1 a chat completion (the whole message), 2 a chat stream chunk (a delta). */
static cJSON *completion_chunk(hl_server *s, int chat, const char *id, const char *model, const char *fp,
                               const char *text, const char *reason) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", chat == 1 ? "chat.completion" : chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "system_fingerprint", fp);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c0, chat == 1 ? "message" : "delta");
        cJSON_AddStringToObject(m, "role", "assistant");
        if (chat == 1 || text[0] || !reason) cJSON_AddStringToObject(m, "content", text);
    } else cJSON_AddStringToObject(c0, "text", text);
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON_AddNullToObject(c0, "logprobs");
    if (reason) cJSON_AddStringToObject(c0, "finish_reason", reason);
    else cJSON_AddNullToObject(c0, "finish_reason");
    (void)s;
    return o;
}

static void add_usage(cJSON *o, int32_t prompt, int32_t gen) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + gen);
}

/* ---------------------------------------------------------- streaming */

typedef struct stream {
    hl_server *s;
    hl_job *job;
    int chat;            /* 2 for chat chunks, 0 for text completions, 3 for scene decodes */
    char id[48], model[HL_ENGINE_NAME_MAX], fp[512];
    int32_t sent;        /* tokens turned into events */
    char *carry;         /* decoded bytes not yet sent (an unfinished UTF-8 character) */
    size_t carry_len, carry_cap;
    char *out;           /* the events being written */
    size_t out_len, out_off;
    int finished;
} stream;

static int buf_add(char **b, size_t *len, size_t *cap, const char *src, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *nb = hl_realloc(*b, nc);
        if (!nb) return 0;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, src, n);
    *len += n;
    (*b)[*len] = 0;
    return 1;
}

static int add_event(stream *st, cJSON *o, size_t *cap) {
    char *t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!t) return 0;
    int ok = buf_add(&st->out, &st->out_len, cap, "data: ", 6) && buf_add(&st->out, &st->out_len, cap, t, strlen(t)) &&
             buf_add(&st->out, &st->out_len, cap, "\n\n", 2);
    cJSON_free(t);
    return ok;
}

/* One event of a stream: a completion chunk, or for a scene {"text": delta}
 * and at the end {"text": "", "finish_reason", "tokens"}. */
static cJSON *stream_chunk(stream *st, const char *text, const char *reason, int32_t n) {
    if (st->chat != 3) return completion_chunk(st->s, st->chat, st->id, st->model, st->fp, text, reason);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "object", "scene.chunk");
    cJSON_AddStringToObject(o, "text", text);
    if (reason) {
        cJSON_AddStringToObject(o, "finish_reason", reason);
        cJSON_AddNumberToObject(o, "tokens", n);
    }
    return o;
}

/* The next events: every token since the last call, whole characters only. */
static int stream_fill(stream *st) {
    hl_free(st->out);
    st->out = NULL;
    st->out_len = st->out_off = 0;
    size_t cap = 0;
    int32_t n = hl_job_wait(st->job, st->sent, -1);
    hl_job_state js = hl_job_get_state(st->job);
    if (js >= HL_JOB_DONE_EOS) n = hl_job_wait(st->job, -1, 0);
    char piece[PIECE_CAP];
    for (; st->sent < n; st->sent++) {
        size_t k = hl_job_piece(st->job, st->sent, piece, sizeof piece);
        if (!buf_add(&st->carry, &st->carry_len, &st->carry_cap, piece, k)) return 0;
    }
    int end = js >= HL_JOB_DONE_EOS;
    size_t cut = end ? st->carry_len : hl_utf8_complete_prefix(st->carry ? st->carry : "", st->carry_len);
    if (cut) {
        /* JSON must be UTF-8: bytes that cannot start a character become U+FFFD. */
        char *clean = hl_malloc(3 * cut + 1);
        if (!clean) return 0;
        hl_utf8_sanitize(st->carry, cut, clean);
        int ok = add_event(st, stream_chunk(st, clean, NULL, 0), &cap);
        hl_free(clean);
        if (!ok) return 0;
        memmove(st->carry, st->carry + cut, st->carry_len - cut + 1);
        st->carry_len -= cut;
    }
    if (end) {
        hl_error err = {0};
        if (hl_job_status(st->job, &err) != HL_OK) {
            if (!add_event(st, error_json(status_code(err.status), err.msg), &cap)) return 0;
        } else {
            cJSON *last = stream_chunk(st, "", finish_reason(js), n);
            if (st->chat != 3) add_usage(last, hl_job_prompt_tokens(st->job), n);
            if (!add_event(st, last, &cap)) return 0;
        }
        if (!buf_add(&st->out, &st->out_len, &cap, "data: [DONE]\n\n", 14)) return 0;
        st->finished = 1;
    }
    return 1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->out_off == st->out_len) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!stream_fill(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out_len - st->out_off < max ? st->out_len - st->out_off : max;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    if (!st->finished) atomic_fetch_add(&st->s->disconnects, 1);
    hl_job_release(st->job); /* cancels the job when the client left early */
    hl_free(st->carry);
    hl_free(st->out);
    hl_free(st);
}

/* Answers with the job's tokens as server-sent events (stream mode: see
 * stream.chat). Takes over j. Headers wait for the first token, so a refusal
 * is still a plain error. */
static enum MHD_Result send_stream(hl_server *s, struct MHD_Connection *c, hl_job *j, int mode, const char *id,
                                   const char *model, const char *fp) {
    hl_error err = {0};
    hl_job_wait(j, 0, -1);
    if (hl_job_get_state(j) == HL_JOB_FAILED) {
        hl_job_status(j, &err);
        hl_job_release(j);
        return send_failure(s, c, err.status, &err);
    }
    stream *sm = hl_calloc(1, sizeof *sm);
    if (!sm) {
        hl_job_release(j);
        return send_error(s, c, 503, "out of memory");
    }
    sm->s = s;
    sm->job = j;
    sm->chat = mode;
    snprintf(sm->id, sizeof sm->id, "%s", id);
    snprintf(sm->model, sizeof sm->model, "%s", model);
    snprintf(sm->fp, sizeof sm->fp, "%s", fp);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sm, stream_free);
    if (!r) {
        stream_free(sm);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    atomic_fetch_add(&s->resp_2xx, 1);
    return ok;
}

/* ------------------------------------------------ scenes from parts */

typedef struct rule_probe {
    char rule[64];
} rule_probe;

static void read_rule(void *user, const hl_lexicon *lex, const hl_model *base) {
    (void)base;
    snprintf(((rule_probe *)user)->rule, sizeof ((rule_probe *)user)->rule, "%s", hl_lexicon_compose_rule(lex));
}

/* A scene typed as parts (a JSON array of words) and optional facets (a JSON
 * object of strings, used by the "+facets" rules), composed the way the
 * lexicon of `adapter` (NULL: the server's default) composes its entries,
 * into *lex: a one-entry lexicon on the base whose entry 0 is the new scene.
 * Nothing is declared in the server. 0 with msg set on bad input. */
static int compose_parts(hl_server *s, const char *adapter, const cJSON *parts, const cJSON *facets, hl_lexicon **lex,
                         char *msg, size_t cap) {
    *lex = NULL;
    int n = cJSON_IsArray(parts) ? cJSON_GetArraySize(parts) : -1;
    if (n < 1 || n > HL_LEXICON_MAX_PARTS) {
        snprintf(msg, cap, "field \"parts\" must be an array of 1..%d words", HL_LEXICON_MAX_PARTS);
        return 0;
    }
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, parts) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            snprintf(msg, cap, "parts[%d] must be a non-empty string", i);
            return 0;
        }
        i++;
    }
    if (facets && !cJSON_IsNull(facets)) {
        if (!cJSON_IsObject(facets)) {
            snprintf(msg, cap, "field \"facets\" must be an object of strings");
            return 0;
        }
        cJSON_ArrayForEach(it, facets) {
            if (!cJSON_IsString(it)) {
                snprintf(msg, cap, "facets.%.64s must be a string", it->string);
                return 0;
            }
        }
    } else facets = NULL;
    hl_error err = {0};
    rule_probe rp = {""};
    if (hl_engine_with_lexicon(s->e, adapter, read_rule, &rp, &err) != HL_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return 0;
    }
    cJSON *head = cJSON_CreateObject(), *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(head, "compose", rp.rule);
    cJSON_AddStringToObject(entry, "lexeme", "typed-scene");
    cJSON_AddItemToObject(entry, "parts", cJSON_Duplicate(parts, 1));
    if (facets) cJSON_AddItemToObject(entry, "facets", cJSON_Duplicate(facets, 1));
    char *a = cJSON_PrintUnformatted(head), *b = cJSON_PrintUnformatted(entry);
    cJSON_Delete(head);
    cJSON_Delete(entry);
    char *text = NULL;
    size_t len = 0, tcap = 0;
    int ok = a && b && buf_add(&text, &len, &tcap, a, strlen(a)) && buf_add(&text, &len, &tcap, "\n", 1) &&
             buf_add(&text, &len, &tcap, b, strlen(b));
    cJSON_free(a);
    cJSON_free(b);
    if (!ok) {
        hl_free(text);
        snprintf(msg, cap, "out of memory");
        return 0;
    }
    hl_status st = hl_lexicon_load_memory(text, len, "the request's parts", hl_engine_base(s->e), lex, &err);
    hl_free(text);
    if (st != HL_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------- endpoints */

static enum MHD_Result do_text_job(hl_server *s, struct MHD_Connection *c, const cJSON *req, hl_job_desc *dp,
                                   hl_job_adapter *ads, int chat, char *msg, size_t msg_cap) {
    hl_job_desc d = *dp;
    const char *model = NULL;
    int stream_on = 0;
    if (!field_string(req, "model", &model, msg, msg_cap) || !field_bool(req, "stream", &stream_on, msg, msg_cap) ||
        !read_sampling(s, req, &d, 16, 1.0, msg, msg_cap) || !read_adapters(req, "lora", &d, ads, msg, msg_cap))
        return send_error(s, c, 400, "%s", msg);
    const char *base = hl_engine_model_name(s->e);
    if (model && strcmp(model, base) && !d.use_adapters) {
        /* "model" names an adapter: that adapter at scale 1. */
        ads[0] = (hl_job_adapter){.name = model, .scale = 1.0f};
        d.adapters = ads;
        d.n_adapters = 1;
        d.use_adapters = 1;
    }
    hl_error err = {0};
    hl_job *j = NULL;
    hl_status st = hl_engine_submit(s->e, &d, &j, &err);
    if (st != HL_OK) return send_failure(s, c, st, &err);
    char id[48], fp[512];
    snprintf(id, sizeof id, chat ? "chatcmpl-%llu" : "cmpl-%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    fingerprint(s, &d, fp, sizeof fp);
    const char *model_out = model ? model : base;
    if (stream_on) return send_stream(s, c, j, chat ? 2 : 0, id, model_out, fp);
    int32_t n = 0;
    char *text = job_text(j, c, &n, &err);
    hl_job_state js = hl_job_get_state(j);
    int32_t np = hl_job_prompt_tokens(j);
    hl_job_release(j);
    if (!text && err.status == HL_ERR_INTERRUPTED) return client_left(s);
    if (!text) return send_failure(s, c, err.status, &err);
    cJSON *o = completion_chunk(s, chat, id, model_out, fp, text, finish_reason(js));
    hl_free(text);
    add_usage(o, np, n);
    return send_json(s, c, 200, o);
}

/* The prompt of a chat as token ids, written by the server's chat template
 * (text/chat_template.h), with the assistant's turn opened. Messages'
 * contents never become special tokens. NULL with msg set on a bad message
 * list. */
static int32_t *chat_prompt(hl_server *s, const cJSON *req, size_t *n_ids, char *msg, size_t cap) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(req, "messages");
    int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : -1;
    if (n < 1 || n > 1024) {
        snprintf(msg, cap, "field \"messages\" must be an array of 1..1024 {\"role\", \"content\"}");
        return NULL;
    }
    hl_chat_message m[1024];
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ms) {
        const char *role = NULL, *content = NULL;
        if (!cJSON_IsObject(it) || !field_string(it, "role", &role, msg, cap) ||
            !field_string(it, "content", &content, msg, cap) || !role || !content) {
            if (!msg[0]) snprintf(msg, cap, "messages[%d] needs \"role\" and \"content\" strings", i);
            return NULL;
        }
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            snprintf(msg, cap, "messages[%d]: role \"%.32s\" is not system, user or assistant", i, role);
            return NULL;
        }
        m[i++] = (hl_chat_message){.role = role, .content = content};
    }
    hl_error err = {0};
    int32_t *ids = NULL;
    if (hl_chat_encode(&s->chat, hl_model_get_tokenizer(hl_engine_base(s->e)), m, n, 1, &ids, n_ids, &err) != HL_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return NULL;
    }
    return ids;
}

static enum MHD_Result do_completions(hl_server *s, struct MHD_Connection *c, const cJSON *req, int chat) {
    char msg[512] = "";
    hl_job_desc d = {.kind = HL_JOB_TEXT};
    hl_job_adapter ads[64];
    int32_t *owned = NULL;
    if (chat) {
        size_t n_ids = 0;
        if (!(owned = chat_prompt(s, req, &n_ids, msg, sizeof msg))) return send_error(s, c, 400, "%s", msg);
        if (n_ids > INT32_MAX) {
            hl_free(owned);
            return send_error(s, c, 400, "the chat is too long");
        }
        d.prompt_ids = owned;
        d.n_prompt_ids = (int32_t)n_ids;
        if (s->chat.end_of_turn >= 0) d.stop_ids[d.n_stop_ids++] = s->chat.end_of_turn;
    } else {
        const cJSON *pv = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (!pv || !cJSON_IsString(pv)) return send_error(s, c, 400, "field \"prompt\" must be a string");
        d.prompt = pv->valuestring;
    }
    enum MHD_Result r = do_text_job(s, c, req, &d, ads, chat, msg, sizeof msg);
    hl_free(owned);
    return r;
}


/* One scene of a decode request into d (vectors into *vec, hl_malloc'd). */
/* A decoder bundle sent in the request, over loaded adapters:
 *   {"decoders": [{"form": F|"*", "register": R|"*", "adapters": [{"name"|"id", "scale"}]}, ...]}
 * The job takes the entry for its (form, register), preferring as bundle
 * files do (hyperlexeme/bundle.h): exact, (form, *), (*, register), (*, *).
 * Adapters are named, never paths: a client cannot make the server open files. */
static int read_request_bundle(const cJSON *bj, hl_job_desc *d, hl_job_adapter *ads, char *msg, size_t cap) {
    const cJSON *decs = cJSON_GetObjectItemCaseSensitive(bj, "decoders");
    int n = cJSON_IsArray(decs) ? cJSON_GetArraySize(decs) : -1;
    if (n < 1 || n > 256) {
        snprintf(msg, cap, "bundle: \"decoders\" must be an array of 1..256 entries");
        return 0;
    }
    const cJSON *best = NULL;
    int best_rank = 4, i = 0, seen[HL_FORM_COUNT + 1][HL_REGISTER_COUNT + 1] = {{0}};
    const cJSON *e;
    cJSON_ArrayForEach(e, decs) {
        const char *f = NULL, *r = NULL;
        if (!cJSON_IsObject(e) || !field_string(e, "form", &f, msg, cap) || !field_string(e, "register", &r, msg, cap)) {
            if (!cJSON_IsObject(e)) snprintf(msg, cap, "bundle: decoders[%d] must be an object", i);
            return 0;
        }
        int fi = !f || !strcmp(f, "*") ? HL_FORM_COUNT : hl_form_from_name(f);
        int ri = !r || !strcmp(r, "*") ? HL_REGISTER_COUNT : hl_register_from_name(r);
        if (fi < 0 || ri < 0) {
            snprintf(msg, cap, "bundle: decoders[%d]: unknown %s \"%.64s\"", i, fi < 0 ? "form" : "register",
                     fi < 0 ? f : r);
            return 0;
        }
        if (seen[fi][ri]++) {
            snprintf(msg, cap, "bundle: decoders[%d]: a second entry for form %s, register %s", i,
                     fi == HL_FORM_COUNT ? "*" : hl_form_name(fi), ri == HL_REGISTER_COUNT ? "*" : hl_register_name(ri));
            return 0;
        }
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(e, "adapters"))) {
            snprintf(msg, cap, "bundle: decoders[%d] needs \"adapters\": [{\"name\", \"scale\"}]", i);
            return 0;
        }
        int fm = fi == d->form, fa = fi == HL_FORM_COUNT, rm = ri == d->reg, ra = ri == HL_REGISTER_COUNT;
        int rank = fm && rm ? 0 : fm && ra ? 1 : fa && rm ? 2 : fa && ra ? 3 : 4;
        if (rank < best_rank) {
            best_rank = rank;
            best = e;
        }
        i++;
    }
    if (!best) {
        snprintf(msg, cap, "bundle: no decoder for form %s, register %s", hl_form_name(d->form),
                 hl_register_name(d->reg));
        return 0;
    }
    if (!read_adapters(best, "adapters", d, ads, msg, cap)) return 0;
    d->use_adapters = 1;
    return 1;
}

static int read_scene(hl_server *s, const cJSON *o, hl_job_desc *d, hl_job_adapter *ads, float **vec, char *msg,
                      size_t cap) {
    const char *form = "text", *reg = "poetic";
    *d = (hl_job_desc){.kind = HL_JOB_SCENE};
    if (!field_string(o, "scene", &d->scene, msg, cap) || !field_string(o, "form", &form, msg, cap) ||
        !field_string(o, "register", &reg, msg, cap) || !read_sampling(s, o, d, 128, 0.0, msg, cap) ||
        !read_adapters(o, "adapters", d, ads, msg, cap))
        return 0;
    if (cJSON_GetObjectItemCaseSensitive(o, "adapters") && cJSON_GetObjectItemCaseSensitive(o, "bundle")) {
        snprintf(msg, cap, "give \"adapters\" or \"bundle\", not both");
        return 0;
    }
    if ((d->form = hl_form_from_name(form)) < 0) {
        snprintf(msg, cap, "unknown form \"%.64s\" (text, symbols, formula, dialogue, report)", form);
        return 0;
    }
    if ((d->reg = hl_register_from_name(reg)) < 0) {
        snprintf(msg, cap, "unknown register \"%.64s\" (poetic, logical, technical)", reg);
        return 0;
    }
    const cJSON *bj = cJSON_GetObjectItemCaseSensitive(o, "bundle");
    if (cJSON_IsObject(bj)) {
        if (!read_request_bundle(bj, d, ads, msg, cap)) return 0;
    } else {
        int bundle = 1;
        if (!field_bool(o, "bundle", &bundle, msg, cap)) {
            snprintf(msg, cap, "field \"bundle\" must be true, false or a bundle object {\"decoders\": [...]}");
            return 0;
        }
        if (!bundle && !d->use_adapters) d->use_adapters = 1; /* "bundle": false: no adapters at all */
    }
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(o, "scene_vector");
    if (sv && !cJSON_IsNull(sv)) {
        const int64_t C = hl_model_get_config(hl_engine_base(s->e))->dim;
        int n = cJSON_IsArray(sv) ? cJSON_GetArraySize(sv) : -1;
        if (n <= 0 || n > MAX_FLOATS || n % C) {
            snprintf(msg, cap, "field \"scene_vector\" must be an array of k × %lld numbers (the model dimension)",
                     (long long)C);
            return 0;
        }
        if (!(*vec = hl_malloc_array((size_t)n, sizeof(float)))) {
            snprintf(msg, cap, "out of memory");
            return 0;
        }
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, sv) {
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 3.0e38) {
                snprintf(msg, cap, "scene_vector[%d] must be a finite number", i);
                return 0;
            }
            (*vec)[i++] = (float)it->valuedouble;
        }
        d->scene_vectors = *vec;
        d->n_vectors = (int32_t)(n / C);
    }
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(o, "parts");
    if (parts && !cJSON_IsNull(parts)) {
        if (d->scene || d->scene_vectors) {
            snprintf(msg, cap, "give exactly one of \"scene\" (lexemes), \"scene_vector\" and \"parts\"");
            return 0;
        }
        /* A scene typed from parts: composed as its decoder composes, then decoded as a mute scene. */
        hl_lexicon *lex = NULL;
        const char *by = d->use_adapters && d->n_adapters > 0 ? d->adapters[0].name : NULL;
        if (!compose_parts(s, by, parts, cJSON_GetObjectItemCaseSensitive(o, "facets"), &lex, msg, cap)) return 0;
        const int64_t C = hl_model_get_config(hl_engine_base(s->e))->dim;
        if ((*vec = hl_malloc_array((size_t)C, sizeof(float)))) memcpy(*vec, hl_lexicon_embedding(lex, 0), (size_t)C * sizeof(float));
        hl_lexicon_free(lex);
        if (!*vec) {
            snprintf(msg, cap, "out of memory");
            return 0;
        }
        d->scene_vectors = *vec;
        d->n_vectors = 1;
    }
    if (!d->scene == !d->scene_vectors) {
        snprintf(msg, cap, "give exactly one of \"scene\" (lexemes), \"scene_vector\" and \"parts\"");
        return 0;
    }
    return 1;
}

static cJSON *scene_result(const hl_job_desc *d, const char *text, int32_t n, hl_job_state js) {
    cJSON *o = cJSON_CreateObject();
    if (d->scene) cJSON_AddStringToObject(o, "scene", d->scene);
    else cJSON_AddNumberToObject(o, "scene_vectors", d->n_vectors);
    cJSON_AddStringToObject(o, "form", hl_form_name(d->form));
    cJSON_AddStringToObject(o, "register", hl_register_name(d->reg));
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "tokens", n);
    cJSON_AddStringToObject(o, "finish_reason", finish_reason(js));
    return o;
}

static enum MHD_Result do_scenes(hl_server *s, struct MHD_Connection *c, const cJSON *req) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(req, "scenes");
    int batch = list && !cJSON_IsNull(list);
    int n = 1;
    if (batch) {
        n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
        if (n < 1 || n > s->p.max_batch)
            return send_error(s, c, 400, "field \"scenes\" must be an array of 1..%d scene objects", s->p.max_batch);
    }
    int stream_on = 0;
    char smsg[160] = "";
    if (!field_bool(req, "stream", &stream_on, smsg, sizeof smsg)) return send_error(s, c, 400, "%s", smsg);
    if (stream_on && batch) return send_error(s, c, 400, "\"stream\" takes one scene, not \"scenes\"");
    hl_job_desc *ds = hl_calloc((size_t)n, sizeof *ds);
    hl_job_adapter *ads = hl_calloc((size_t)n * 64, sizeof *ads);
    float **vecs = hl_calloc((size_t)n, sizeof *vecs);
    hl_job **jobs = hl_calloc((size_t)n, sizeof *jobs);
    enum MHD_Result ok;
    char msg[512] = "";
    hl_error err = {0};
    int i = 0, failed = 0;
    if (!ds || !ads || !vecs || !jobs) {
        ok = send_error(s, c, 503, "out of memory");
        goto done;
    }
    /* Every scene is read and queued before any is waited for, so they share steps. */
    for (i = 0; i < n; i++) {
        const cJSON *o = batch ? cJSON_GetArrayItem(list, i) : req;
        if (!cJSON_IsObject(o) || !read_scene(s, o, &ds[i], ads + (size_t)i * 64, &vecs[i], msg, sizeof msg)) {
            ok = batch ? send_error(s, c, 400, "scenes[%d]: %s", i, cJSON_IsObject(o) ? msg : "must be an object")
                       : send_error(s, c, 400, "%s", msg);
            goto done;
        }
        hl_status st = hl_engine_submit(s->e, &ds[i], &jobs[i], &err);
        if (st != HL_OK) {
            if (batch) hl_error_prefix(&err, "scenes[%d]", i);
            ok = send_failure(s, c, st, &err);
            goto done;
        }
    }
    if (stream_on) {
        char id[48];
        snprintf(id, sizeof id, "scene-%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
        ok = send_stream(s, c, jobs[0], 3, id, hl_engine_model_name(s->e), s->fingerprint);
        jobs[0] = NULL; /* the stream owns it now */
        goto done;
    }
    cJSON *results = batch ? cJSON_CreateArray() : NULL, *one = NULL;
    for (i = 0; i < n; i++) {
        int32_t nt = 0;
        char *text = job_text(jobs[i], c, &nt, &err);
        if (!text) {
            failed = 1;
            if (batch) hl_error_prefix(&err, "scenes[%d]", i);
            break;
        }
        cJSON *r = scene_result(&ds[i], text, nt, hl_job_get_state(jobs[i]));
        hl_free(text);
        if (batch) cJSON_AddItemToArray(results, r);
        else one = r;
    }
    if (failed) {
        cJSON_Delete(results);
        cJSON_Delete(one);
        ok = err.status == HL_ERR_INTERRUPTED ? client_left(s) : send_failure(s, c, err.status, &err);
    } else if (batch) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "results", results);
        ok = send_json(s, c, 200, o);
    } else ok = send_json(s, c, 200, one);
done:
    for (int k = 0; k < n && jobs; k++)
        if (jobs[k]) hl_job_release(jobs[k]);
    for (int k = 0; k < n && vecs; k++) hl_free(vecs[k]);
    hl_free(jobs);
    hl_free(vecs);
    hl_free(ads);
    hl_free(ds);
    return ok;
}

/* ------------------------------------------------ lexicon and explain */

/* "key=value" lines -> {"key": "value", ...}. */
static cJSON *facets_json(const char *facets) {
    cJSON *o = cJSON_CreateObject();
    for (const char *f = facets; f && *f;) {
        const char *nl = strchr(f, '\n'), *end = nl ? nl : f + strlen(f), *eq = memchr(f, '=', (size_t)(end - f));
        if (eq) {
            char key[128], val[512];
            snprintf(key, sizeof key, "%.*s", (int)(eq - f), f);
            snprintf(val, sizeof val, "%.*s", (int)(end - eq - 1), eq + 1);
            cJSON_AddStringToObject(o, key, val);
        }
        f = nl ? nl + 1 : end;
    }
    return o;
}

static cJSON *entry_json(const hl_lexicon *lex, int32_t i) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "lexeme", hl_lexicon_lexeme(lex, i));
    cJSON *parts = cJSON_AddArrayToObject(o, "parts");
    for (int32_t k = 0; k < hl_lexicon_n_parts(lex, i); k++)
        cJSON_AddItemToArray(parts, cJSON_CreateString(hl_lexicon_part(lex, i, k)));
    cJSON_AddItemToObject(o, "facets", facets_json(hl_lexicon_facets(lex, i)));
    return o;
}

typedef struct listing {
    int32_t limit;
    cJSON *out;
} listing;

static void list_lexicon(void *user, const hl_lexicon *lex, const hl_model *base) {
    (void)base;
    listing *l = user;
    int32_t n = hl_lexicon_n_entries(lex);
    cJSON_AddStringToObject(l->out, "compose", hl_lexicon_compose_rule(lex));
    cJSON_AddNumberToObject(l->out, "total", n);
    cJSON *arr = cJSON_AddArrayToObject(l->out, "lexemes");
    for (int32_t i = 0; i < n && i < l->limit; i++) cJSON_AddItemToArray(arr, entry_json(lex, i));
}

/* GET /v1/scenes/lexicon[?adapter=NAME][&limit=N]: the scenes a decoder reads. */
static enum MHD_Result do_scene_lexicon(hl_server *s, struct MHD_Connection *c) {
    const char *adapter = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "adapter");
    const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    listing l = {.limit = 1000, .out = cJSON_CreateObject()};
    if (lim) {
        char *end = NULL;
        long v = strtol(lim, &end, 10);
        if (!*lim || *end || v < 1 || v > 100000) {
            cJSON_Delete(l.out);
            return send_error(s, c, 400, "limit must be a number in 1..100000");
        }
        l.limit = (int32_t)v;
    }
    hl_error err = {0};
    hl_status st = hl_engine_with_lexicon(s->e, adapter && *adapter ? adapter : NULL, list_lexicon, &l, &err);
    if (st != HL_OK) {
        cJSON_Delete(l.out);
        return send_failure(s, c, st, &err);
    }
    return send_json(s, c, 200, l.out);
}

typedef struct explaining {
    const char *scene;         /* lexemes separated by spaces, or NULL */
    const hl_lexicon *typed;   /* a scene typed as parts (entry 0), or NULL */
    int32_t top;
    cJSON *out;
    hl_status st;
    hl_error err;
} explaining;

/* What one composed row is near: base tokens and the lexicon's lexemes. */
static void explain_row(cJSON *o, const float *e, const hl_lexicon *lex, int32_t self, const hl_model *base,
                        int32_t top) {
    hl_neighbour toks[32], ents[32];
    int32_t nt = 0, ne = 0;
    hl_error err = {0};
    if (hl_lexicon_neighbours(lex, base, e, self, top, toks, &nt, ents, &ne, &err) != HL_OK) nt = ne = 0;
    cJSON *arr = cJSON_AddArrayToObject(o, "nearest_tokens");
    for (int32_t k = 0; k < nt; k++) {
        char piece[256];
        size_t n = hl_tokenizer_decode(base->tok, -1, toks[k].id, piece, sizeof piece - 1);
        piece[n] = 0;
        size_t bad = 0;
        if (!hl_utf8_valid(piece, n, &bad)) snprintf(piece, sizeof piece, "<token %d>", toks[k].id);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "piece", piece);
        cJSON_AddNumberToObject(t, "cosine", toks[k].cosine);
        cJSON_AddItemToArray(arr, t);
    }
    arr = cJSON_AddArrayToObject(o, "nearest_lexemes");
    for (int32_t k = 0; k < ne; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "lexeme", hl_lexicon_lexeme(lex, ents[k].id));
        cJSON_AddNumberToObject(t, "cosine", ents[k].cosine);
        cJSON_AddItemToArray(arr, t);
    }
}

static void explain_scene(void *user, const hl_lexicon *lex, const hl_model *base) {
    explaining *x = user;
    cJSON *arr = cJSON_AddArrayToObject(x->out, "lexemes");
    if (x->typed) {
        cJSON *o = entry_json(x->typed, 0);
        cJSON_ReplaceItemInObject(o, "lexeme", cJSON_CreateNull());
        explain_row(o, hl_lexicon_embedding(x->typed, 0), lex, -1, base, x->top);
        cJSON_AddItemToArray(arr, o);
        return;
    }
    if ((x->st = hl_lexicon_check_scene(lex, x->scene, &x->err)) != HL_OK) return;
    for (const char *w = x->scene; *w;) {
        while (*w == ' ') w++;
        const char *end = strchr(w, ' ');
        size_t n = end ? (size_t)(end - w) : strlen(w);
        if (!n) break;
        char word[HL_LEXEME_MAX_BYTES + 1];
        snprintf(word, sizeof word, "%.*s", (int)n, w);
        int32_t i = hl_lexicon_find(lex, word);
        if (i >= 0) {
            cJSON *o = entry_json(lex, i);
            cJSON_AddNumberToObject(o, "token", hl_lexicon_token(lex, i));
            explain_row(o, hl_lexicon_embedding(lex, i), lex, i, base, x->top);
            cJSON_AddItemToArray(arr, o);
        }
        w += n;
    }
}

/* POST /v1/scenes/explain {"scene" | "parts", "adapter", "top"}: what a
 * scene is made of and what its composed rows are near (`scene explain`). */
static enum MHD_Result do_scene_explain(hl_server *s, struct MHD_Connection *c, const cJSON *req) {
    char msg[512] = "";
    const char *scene = NULL, *adapter = NULL;
    double top = 5;
    if (!field_string(req, "scene", &scene, msg, sizeof msg) || !field_string(req, "adapter", &adapter, msg, sizeof msg) ||
        !field_int(req, "top", 1, 32, &top, msg, sizeof msg))
        return send_error(s, c, 400, "%s", msg);
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(req, "parts");
    if (parts && cJSON_IsNull(parts)) parts = NULL;
    if (!scene == !parts) return send_error(s, c, 400, "give exactly one of \"scene\" (lexemes) and \"parts\"");
    explaining x = {.scene = scene, .top = (int32_t)top, .out = cJSON_CreateObject()};
    hl_lexicon *typed = NULL;
    if (parts && !compose_parts(s, adapter, parts, cJSON_GetObjectItemCaseSensitive(req, "facets"), &typed, msg,
                                sizeof msg)) {
        cJSON_Delete(x.out);
        return send_error(s, c, 400, "%s", msg);
    }
    x.typed = typed;
    hl_error err = {0};
    hl_status st = hl_engine_with_lexicon(s->e, adapter, explain_scene, &x, &err);
    hl_lexicon_free(typed);
    if (st == HL_OK && x.st != HL_OK) {
        st = x.st;
        err = x.err;
    }
    if (st != HL_OK) {
        cJSON_Delete(x.out);
        return send_failure(s, c, st, &err);
    }
    return send_json(s, c, 200, x.out);
}

static enum MHD_Result do_models(hl_server *s, struct MHD_Connection *c) {
    hl_engine_adapter_info info[256];
    int32_t n = hl_engine_adapters(s->e, info, 256);
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddStringToObject(o, "object", "list");
    for (int32_t i = -1; i < n && i < 256; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", i < 0 ? hl_engine_model_name(s->e) : info[i].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->started);
        cJSON_AddStringToObject(m, "owned_by", "hyperlora");
        cJSON_AddStringToObject(m, "kind", i < 0 ? "base" : "adapter");
        if (i < 0) cJSON_AddStringToObject(m, "chat_template", hl_chat_family_name(s->chat.family));
        if (i >= 0) {
            cJSON_AddBoolToObject(m, "scene_decoder", info[i].has_lexicon);
            cJSON_AddNumberToObject(m, "new_word_rows", info[i].new_word_rows);
        }
        cJSON_AddItemToArray(data, m);
    }
    return send_json(s, c, 200, o);
}

static enum MHD_Result do_lora_list(hl_server *s, struct MHD_Connection *c) {
    hl_engine_adapter_info info[256];
    int32_t n = hl_engine_adapters(s->e, info, 256);
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; i < n && i < 256; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "id", info[i].id);
        cJSON_AddStringToObject(m, "name", info[i].name);
        cJSON_AddStringToObject(m, "path", info[i].path);
        cJSON_AddNumberToObject(m, "scale", info[i].scale);
        cJSON_AddNumberToObject(m, "jobs", info[i].jobs);
        cJSON_AddItemToArray(a, m);
    }
    return send_json(s, c, 200, a);
}

/* POST /lora-adapters [{"id", "scale"}]: the global scales; adapters not listed go to 0. */
static enum MHD_Result do_lora_set(hl_server *s, struct MHD_Connection *c, const cJSON *req) {
    if (!cJSON_IsArray(req)) return send_error(s, c, 400, "the body must be an array of {\"id\", \"scale\"}");
    char msg[512] = "";
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, req) {
        double id = -1, scale = 0;
        if (!cJSON_IsObject(it)) return send_error(s, c, 400, "[%d] must be an object", i);
        if (!field_int(it, "id", 0, 1 << 30, &id, msg, sizeof msg) ||
            !field_number(it, "scale", -1e6, 1e6, &scale, msg, sizeof msg))
            return send_error(s, c, 400, "[%d]: %s", i, msg);
        if (id < 0) return send_error(s, c, 400, "[%d] needs \"id\"", i);
        i++;
    }
    hl_engine_adapter_info info[256];
    int32_t n = hl_engine_adapters(s->e, info, 256);
    hl_error err = {0};
    /* Every id must exist before any scale changes. */
    cJSON_ArrayForEach(it, req) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble, k = 0;
        while (k < n && k < 256 && info[k].id != id) k++;
        if (k == n || k == 256) return send_error(s, c, 404, "no adapter with id %d is loaded", id);
    }
    for (int32_t k = 0; k < n && k < 256; k++) hl_engine_adapter_set_scale(s->e, info[k].id, 0.0f, &err);
    cJSON_ArrayForEach(it, req) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "scale");
        hl_status st = hl_engine_adapter_set_scale(s->e, (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble,
                                                   sc ? (float)sc->valuedouble : 0.0f, &err);
        if (st != HL_OK) return send_failure(s, c, st, &err);
    }
    return do_lora_list(s, c);
}

static enum MHD_Result do_adapter_load(hl_server *s, struct MHD_Connection *c, const cJSON *req, int load) {
    char msg[512] = "";
    const char *name = NULL, *path = NULL;
    if (!field_string(req, "name", &name, msg, sizeof msg) || (load && !field_string(req, "path", &path, msg, sizeof msg)))
        return send_error(s, c, 400, "%s", msg);
    if (!name || (load && !path))
        return send_error(s, c, 400, load ? "needs \"name\" and \"path\"" : "needs \"name\"");
    hl_error err = {0};
    hl_status st = load ? hl_engine_adapter_load(s->e, name, path, &err) : hl_engine_adapter_unload(s->e, name, &err);
    if (st != HL_OK) return send_failure(s, c, st, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, load ? "loaded" : "unloaded", name);
    return send_json(s, c, 200, o);
}

static enum MHD_Result do_metrics(hl_server *s, struct MHD_Connection *c) {
    hl_engine_stats st;
    hl_engine_get_stats(s->e, &st);
    char out[4096];
    size_t n = 0;
#define METRIC(name, type, help, fmt, v)                                                                       \
    n += (size_t)snprintf(out + n, sizeof out - n, "# HELP hyperlora_" name " " help "\n# TYPE hyperlora_" name \
                          " " type "\nhyperlora_" name " " fmt "\n", v)
    METRIC("http_requests_total", "counter", "HTTP requests received.", "%llu", (unsigned long long)atomic_load(&s->requests));
    n += (size_t)snprintf(out + n, sizeof out - n,
                          "# HELP hyperlora_http_responses_total HTTP responses by status class.\n"
                          "# TYPE hyperlora_http_responses_total counter\n"
                          "hyperlora_http_responses_total{class=\"2xx\"} %llu\n"
                          "hyperlora_http_responses_total{class=\"4xx\"} %llu\n"
                          "hyperlora_http_responses_total{class=\"5xx\"} %llu\n",
                          (unsigned long long)atomic_load(&s->resp_2xx), (unsigned long long)atomic_load(&s->resp_4xx),
                          (unsigned long long)atomic_load(&s->resp_5xx));
    METRIC("client_disconnects_total", "counter", "Requests whose client left before the answer was complete.", "%llu",
           (unsigned long long)atomic_load(&s->disconnects));
    METRIC("jobs_submitted_total", "counter", "Jobs queued.", "%llu", (unsigned long long)st.jobs_submitted);
    METRIC("jobs_done_total", "counter", "Jobs that ran to their end.", "%llu", (unsigned long long)st.jobs_done);
    METRIC("jobs_failed_total", "counter", "Jobs that failed or were refused for capacity.", "%llu",
           (unsigned long long)st.jobs_failed);
    METRIC("jobs_cancelled_total", "counter", "Jobs dropped because their client left.", "%llu",
           (unsigned long long)st.jobs_cancelled);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens queued.", "%llu", (unsigned long long)st.prompt_tokens);
    METRIC("generated_tokens_total", "counter", "Tokens generated.", "%llu", (unsigned long long)st.generated_tokens);
    METRIC("steps_total", "counter", "Batched decoding steps.", "%llu", (unsigned long long)st.steps);
    METRIC("jobs_pending", "gauge", "Jobs waiting to start.", "%d", st.pending);
    METRIC("jobs_running", "gauge", "Jobs decoding.", "%d", st.running);
    METRIC("adapters_loaded", "gauge", "Adapters loaded.", "%d", st.adapters);
    METRIC("kv_cache_bytes", "gauge", "KV cache bytes held by running jobs.", "%zu", st.kv_bytes);
    METRIC("kv_cache_cap_bytes", "gauge", "KV cache cap (0: none).", "%zu", st.kv_cap_bytes);
#undef METRIC
    return send_text(s, c, 200, "text/plain; version=0.0.4", out, n < sizeof out ? n : sizeof out - 1);
}

/* ------------------------------------------------------------ dispatch */

/* Equal iff same length and bytes; the time depends only on the key's length. */
static int key_equal(const char *given, const char *key) {
    size_t nk = strlen(key), ng = strnlen(given, nk + 1);
    unsigned diff = (unsigned)(ng != nk);
    for (size_t i = 0; i < nk; i++) diff |= (unsigned)((unsigned char)(i < ng ? given[i] : 0) ^ (unsigned char)key[i]);
    return diff == 0;
}

static int authorized(hl_server *s, struct MHD_Connection *c) {
    if (!s->p.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && !strncmp(h, "Bearer ", 7)) return key_equal(h + 7, s->p.api_key);
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    return h && key_equal(h, s->p.api_key);
}

static enum MHD_Result dispatch(hl_server *s, struct MHD_Connection *c, const char *url, const char *method, conn *k) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) {
        if (!get) return send_error(s, c, 405, "%s needs GET", url);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddStringToObject(o, "chat_template", hl_chat_family_name(s->chat.family));
        return send_json(s, c, 200, o);
    }
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        /* The page holds no data; its requests carry the key the user types. */
        if (!get) return send_error(s, c, 405, "%s needs GET", url);
        return send_text(s, c, 200, "text/html; charset=utf-8", (const char *)hl_web_page, hl_web_page_len);
    }
    if (!authorized(s, c)) return send_error(s, c, 401, "a valid API key is needed (Authorization: Bearer KEY)");
    static const char *const gets[] = {"/v1/models", "/lora-adapters", "/metrics", "/v1/scenes/lexicon"};
    static const char *const posts[] = {"/v1/completions", "/v1/chat/completions", "/v1/scenes/decode", "/v1/scenes/explain",
                                        "/lora-adapters", "/adapters/load", "/adapters/unload"};
    int is_get = 0, is_post = 0;
    for (size_t i = 0; i < sizeof gets / sizeof *gets; i++) is_get |= !strcmp(url, gets[i]);
    for (size_t i = 0; i < sizeof posts / sizeof *posts; i++) is_post |= !strcmp(url, posts[i]);
    if (!is_get && !is_post) return send_error(s, c, 404, "no endpoint %.200s", url);
    if (get && is_get) {
        if (!strcmp(url, "/v1/models")) return do_models(s, c);
        if (!strcmp(url, "/lora-adapters")) return do_lora_list(s, c);
        if (!strcmp(url, "/v1/scenes/lexicon")) return do_scene_lexicon(s, c);
        return do_metrics(s, c);
    }
    if (!post || !is_post) return send_error(s, c, 405, "%s does not take %s", url, method);
    if (k->too_big) return send_error(s, c, 413, "the request body is larger than %zu bytes", s->p.max_body);
    size_t bad = 0;
    if (!hl_utf8_valid(k->body ? k->body : "", k->len, &bad))
        return send_error(s, c, 400, "the request body is not valid UTF-8 (byte %zu)", bad);
    int64_t nul = hl_json_find_nul_escape(k->body ? k->body : "", k->len);
    if (nul >= 0) return send_error(s, c, 400, "the request body has a \\u0000 escape (byte %lld)", (long long)nul);
    cJSON *req = k->len ? cJSON_ParseWithLength(k->body, k->len) : NULL;
    if (!req) return send_error(s, c, 400, "the request body is not valid JSON");
    enum MHD_Result ok;
    if (!strcmp(url, "/lora-adapters")) ok = do_lora_set(s, c, req);
    else if (!cJSON_IsObject(req)) ok = send_error(s, c, 400, "the request body must be a JSON object");
    else if (!strcmp(url, "/v1/completions")) ok = do_completions(s, c, req, 0);
    else if (!strcmp(url, "/v1/chat/completions")) ok = do_completions(s, c, req, 1);
    else if (!strcmp(url, "/v1/scenes/decode")) ok = do_scenes(s, c, req);
    else if (!strcmp(url, "/v1/scenes/explain")) ok = do_scene_explain(s, c, req);
    else ok = do_adapter_load(s, c, req, !strcmp(url, "/adapters/load"));
    cJSON_Delete(req);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    hl_server *s = cls;
    conn *k = *con_cls;
    if (!k) {
        if (!(k = hl_calloc(1, sizeof *k))) return MHD_NO;
        *con_cls = k;
        atomic_fetch_add(&s->requests, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!k->too_big && k->len + *upload_size > s->p.max_body) {
            k->too_big = 1;
            hl_free(k->body);
            k->body = NULL;
            k->len = k->cap = 0;
        }
        if (!k->too_big && !buf_add(&k->body, &k->len, &k->cap, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(s, c, url, method, k);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn *k = *con_cls;
    if (!k) return;
    hl_free(k->body);
    hl_free(k);
    *con_cls = NULL;
}

/* The chat template of the server: the family named (NULL or "auto": the one
 * the base file's tokenizer.chat_template shows, plain when it shows none or
 * its markers are not in the vocabulary), bound to the base's vocabulary. */
static hl_status server_chat_template(hl_engine *e, const char *name, hl_chat_template *out, const char **source,
                                      hl_error *err) {
    const hl_model *base = hl_engine_base(e);
    const hl_tokenizer *tok = hl_model_get_tokenizer(base);
    if (name && strcmp(name, "auto")) {
        int f = hl_chat_family_from_name(name);
        if (f < 0)
            return hl_fail(err, HL_ERR_INVALID_ARG, "chat template \"%.64s\" is not one of auto, plain, chatml, llama3, "
                           "llama2", name);
        *source = "option";
        return hl_chat_template_init((hl_chat_family)f, tok, out, err);
    }
    hl_chat_family f = hl_chat_detect_gguf(base->gguf, NULL);
    *source = "file";
    if (hl_chat_template_init(f, tok, out, NULL) == HL_OK) return HL_OK;
    *source = "fallback";
    return hl_chat_template_init(HL_CHAT_PLAIN, tok, out, err);
}

const char *hl_server_chat_template(const hl_server *s, const char **source) {
    if (source) *source = s->chat_source;
    return hl_chat_family_name(s->chat.family);
}

hl_status hl_server_start(hl_engine *e, const hl_server_params *p, hl_server **out, hl_error *err) {
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)p->port);
    const char *host = p->host ? p->host : "127.0.0.1";
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (p->port < 0 || p->port > 65535) return hl_fail(err, HL_ERR_INVALID_ARG, "port %d is not in 0..65535", p->port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return hl_fail(err, HL_ERR_INVALID_ARG, "host \"%.64s\" is not an IPv4 address", host);
    if (p->api_key && !p->api_key[0]) return hl_fail(err, HL_ERR_INVALID_ARG, "the API key is empty");
    hl_chat_template chat;
    const char *chat_source = "file";
    hl_status cs = server_chat_template(e, p->chat_template, &chat, &chat_source, err);
    if (cs != HL_OK) return cs;
    hl_server *s = hl_calloc(1, sizeof *s);
    if (!s) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    s->e = e;
    s->chat = chat;
    s->chat_source = chat_source;
    s->p = *p;
    s->started = time(NULL);
    atomic_store(&s->next_id, 1);
    const char *simd = hl_isa_name(hl_isa_active()); /* the kernels' level, chosen at run time */
    snprintf(s->fingerprint, sizeof s->fingerprint, "hyperlora-%s-%s-%s-%016llx", HL_VERSION_STRING, simd,
             hl_engine_weight_layout(e), (unsigned long long)hl_model_fingerprint(hl_engine_base(e)));
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                            (uint16_t)p->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)p->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned int)p->max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        hl_free(s);
        return hl_fail(err, HL_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)", host, p->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : p->port;
    *out = s;
    return HL_OK;
}

int hl_server_port(const hl_server *s) { return s->port; }

void hl_server_stop(hl_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    hl_free(s);
}
