/* server.h: `hyperlora serve`'s HTTP layer (libmicrohttpd, cJSON bodies)
 * over the library's serving core (infer/engine.h). It holds no model logic:
 * it parses requests, maps them to engine jobs and writes JSON or
 * server-sent events back.
 *
 * Endpoints: POST /v1/completions and /v1/chat/completions (OpenAI-compatible,
 * "stream": true for SSE; a chat is written in the base model's chat
 * template family, text/chat_template.h, and ends at its end-of-turn token;
 * GET /health and the base's entry in GET /v1/models name the family),
 * POST /v1/scenes/decode, GET /v1/models, GET/POST /lora-adapters
 * (llama.cpp-compatible), POST /adapters/load, POST /adapters/unload,
 * GET /health, GET /metrics (Prometheus text).
 *
 * Hostile clients: bodies are capped (413), must be valid UTF-8 and JSON
 * objects with fields of the right types (400), unknown adapters or models
 * are 404, a request the KV cache or the sequence cap cannot take is 503;
 * every error is {"error": {"message", "type", "code"}}. Slow clients are
 * dropped after timeout_s of silence; a client that goes away before its
 * answer is complete (streamed or not) has its job cancelled. With an API key every endpoint but /health needs
 * "Authorization: Bearer KEY", compared in constant time. */
#ifndef HL_SERVE_SERVER_H
#define HL_SERVE_SERVER_H
#include <stddef.h>
#include "hyperlora.h"
#include "infer/engine.h"

typedef struct hl_server hl_server;

typedef struct hl_server_params {
    const char *host;          /* IPv4 address to listen on; NULL = 127.0.0.1 */
    int port;                  /* 0 = any free port (hl_server_port says which) */
    const char *api_key;       /* NULL = none */
    size_t max_body;           /* bytes per request body */
    int32_t max_tokens;        /* max_tokens a request may ask for */
    int32_t max_batch;         /* scenes in one /v1/scenes/decode request */
    int timeout_s;             /* idle connection timeout */
    int32_t max_connections;
    const char *chat_template; /* how chat messages become the prompt: "plain", "chatml", "llama3", "llama2",
                                * or NULL / "auto": the family of the base file's tokenizer.chat_template
                                * (text/chat_template.h), plain when it has none the server knows */
} hl_server_params;

hl_server_params hl_server_default_params(void);
/* Starts listening; the engine must outlive the server. */
hl_status hl_server_start(hl_engine *e, const hl_server_params *p, hl_server **out, hl_error *err);
int hl_server_port(const hl_server *s);
/* The chat template family in use ("chatml", ...); *source (if not NULL) says
 * why: "option" (named), "file" (detected; "plain" when the file has no
 * known template), "fallback" (detected, but its markers are not tokens). */
const char *hl_server_chat_template(const hl_server *s, const char **source);
/* Stops listening, waits for the connections to end and frees the server. */
void hl_server_stop(hl_server *s);
#endif
