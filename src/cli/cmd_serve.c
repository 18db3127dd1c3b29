/* cmd_serve.c: `hyperlora serve`: one base model, named adapters and scene
 * decoders behind an HTTP API (src/serve/server.h) until SIGINT or SIGTERM.
 * The HTTP layer needs libmicrohttpd; a build without it (HL_HAVE_HTTP unset)
 * keeps the command, which then says how to get it. */
#include "cli/cli.h"
#include "util/error.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "serve";

#ifndef HL_HAVE_HTTP
int cmd_serve(int argc, char **argv) {
    fprintf(stderr, "hyperlora %s: this hyperlora was built without HTTP support (libmicrohttpd was not found).\n"
                    "  To get it: install pkg-config and libmicrohttpd-dev (as root: bash scripts/deps.sh serve),\n"
                    "  then rebuild (make); CMake finds them and builds the server.\n", CMD);
    return 1;
}
#else
#include "serve/server.h"

static void help(void) {
    printf("usage: hyperlora serve -m BASE [--lora NAME=PATH ...] [--lexicon FILE] [options]\n\n"
           "  -m, --model FILE        base model (GGUF, or llama2.c .bin with --tokenizer)\n"
           "  --tokenizer FILE        llama2.c tokenizer.bin (for .bin bases)\n"
           "  --lora NAME=PATH        load an adapter under NAME (repeatable; PATH alone: NAME is\n"
           "                          the file name without .gguf); requests choose it by \"model\"\n"
           "                          or \"lora\"; more can be loaded at run time (/adapters/load)\n"
           "  --lexicon FILE          scenes for /v1/scenes/decode: added to a decoder's carried\n"
           "                          lexicon, or the lexicon when the adapters carry none; words\n"
           "                          that are parts only of its scenes get composed output rows in\n"
           "                          each decoder loaded (as decode --lexicon)\n"
           "  --no-word-rows          keep the decoders' trained output rows alone\n"
           "  --compose RULE          with --lexicon and no carried lexicon: its composition rule\n"
           "  --bundle FILE           decoder bundle: the adapters of a scene request that names\n"
           "                          none, per (form, register), as decode --bundle\n"
           "  --chat-template NAME    how /v1/chat/completions writes the messages: auto (default: the\n"
           "                          family of the model's tokenizer.chat_template), chatml\n"
           "                          (<|im_start|>role ...), llama3 (<|start_header_id|>role ...),\n"
           "                          llama2 ([INST] ...) or plain (\"role: content\" lines, the\n"
           "                          fallback for unknown templates); replies stop at its end of turn\n"
           "  --host ADDR             IPv4 address to listen on (default 127.0.0.1)\n"
           "  --port N                port (default 8080; 0 = any free one, printed on stderr)\n"
           "  --api-key KEY           require \"Authorization: Bearer KEY\" (all but /health);\n"
           "                          also read from $HYPERLORA_API_KEY\n"
           "  --threads N             decoding threads; outputs are identical for any N (default 1)\n"
           "  --max-seqs N            requests decoding at once (default 32)\n"
           "  --max-adapters N        adapters loaded at once (default 16)\n"
           "  --evict                 loading past --max-adapters unloads the least recently used\n"
           "                          adapter no request is using (else: 503 until one is unloaded)\n"
           "  --kv-cap SIZE           KV cache of all running requests in bytes, K/M/G suffixes allowed\n"
           "                          (default 1G; 0 = no cap); a request that does not fit gets 503\n"
           "  --max-tokens N          max_tokens a request may ask for (default 4096)\n"
           "  --max-body N            request body bytes (default 1048576)\n"
           "  --timeout S             drop a connection idle for S seconds (default 30)\n"
           "  --prompt-rows N         prompt tokens one step evaluates at most, over all new\n"
           "                          requests (default 0 = no bound): a long prompt then goes in\n"
           "                          chunks beside the decoding requests (same outputs)\n"
           "  --separate              give each request its own forward pass instead of sharing\n"
           "                          the base products of all requests (same outputs; for\n"
           "                          comparison)\n");
}

/* "N", "NK", "NM" or "NG" (powers of 1024), at most 2^50. */
static int parse_size(const char *v, uint64_t *out) {
    char *end = NULL;
    if (*v < '0' || *v > '9') return 0;
    unsigned long long n = strtoull(v, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end || n > (1ull << 50) >> shift) return 0;
    *out = (uint64_t)n << shift;
    return 1;
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *lexicon = NULL, *compose = NULL, *bundle = NULL;
    const char *loras[CLI_MAX_LORA];
    uint64_t kv_cap = 1ull << 30;
    int n_lora = 0;
    long threads = 1, max_seqs = 32, max_adapters = 16, max_tokens = 4096, max_body = 1 << 20;
    long timeout = 30, port = 8080, prompt_rows = 0;
    int separate = 0, evict = 0, no_word_rows = 0;
    hl_server_params sp = hl_server_default_params();
    sp.api_key = getenv("HYPERLORA_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!strcmp(a, "--no-word-rows")) {
            no_word_rows = 1;
            continue;
        }
        if (!strcmp(a, "--separate") || !strcmp(a, "--evict")) {
            *(a[2] == 's' ? &separate : &evict) = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--lexicon")) lexicon = v;
        else if (!strcmp(a, "--compose")) compose = v;
        else if (!strcmp(a, "--bundle")) bundle = v;
        else if (!strcmp(a, "--host")) sp.host = v;
        else if (!strcmp(a, "--chat-template")) sp.chat_template = v;
        else if (!strcmp(a, "--api-key")) sp.api_key = v;
        else if (!strcmp(a, "--lora")) {
            if (n_lora == CLI_MAX_LORA) return cli_error(CMD, "at most %d --lora", CLI_MAX_LORA);
            loras[n_lora++] = v;
        } else if (!strcmp(a, "--port")) {
            if (!cli_int(CMD, a, v, 0, 65535, &port)) return 1;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_int(CMD, a, v, 1, 256, &threads)) return 1;
        } else if (!strcmp(a, "--max-seqs")) {
            if (!cli_int(CMD, a, v, 1, 65536, &max_seqs)) return 1;
        } else if (!strcmp(a, "--max-adapters")) {
            if (!cli_int(CMD, a, v, 0, 4096, &max_adapters)) return 1;
        } else if (!strcmp(a, "--kv-cap")) {
            if (!parse_size(v, &kv_cap)) return cli_error(CMD, "--kv-cap %s: expected bytes, optionally with K, M or G", v);
        } else if (!strcmp(a, "--max-tokens")) {
            if (!cli_int(CMD, a, v, 1, 1 << 24, &max_tokens)) return 1;
        } else if (!strcmp(a, "--max-body")) {
            if (!cli_int(CMD, a, v, 64, 1L << 30, &max_body)) return 1;
        } else if (!strcmp(a, "--prompt-rows")) {
            if (!cli_int(CMD, a, v, 0, 1 << 24, &prompt_rows)) return 1;
        } else if (!strcmp(a, "--timeout")) {
            if (!cli_int(CMD, a, v, 1, 86400, &timeout)) return 1;
        } else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!model) return cli_error(CMD, "missing -m MODEL (see --help)");
    if (n_lora > max_adapters) return cli_error(CMD, "%d --lora but --max-adapters %ld", n_lora, max_adapters);
    sp.port = (int)port;
    sp.max_body = (size_t)max_body;
    sp.max_tokens = (int32_t)max_tokens;
    sp.timeout_s = (int)timeout;

    /* The signals are waited for below; every thread started from here on inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    hl_error err = {0};
    hl_engine *e = NULL;
    hl_server *srv = NULL;
    hl_engine_params ep = {.model_path = model, .tokenizer_path = tok, .lexicon_path = lexicon, .compose = compose,
                           .bundle_path = bundle, .n_threads = (int32_t)threads, .max_seqs = (int32_t)max_seqs,
                           .max_adapters = (int32_t)max_adapters, .kv_cap_bytes = (size_t)kv_cap,
                           .separate = separate, .evict = evict, .max_prompt_rows = (int32_t)prompt_rows,
                           .no_word_rows = no_word_rows};
    if (hl_engine_init(&ep, &e, &err) != HL_OK) return cli_fail(CMD, &err);
    int rc = 1;
    for (int i = 0; i < n_lora; i++) {
        char name[HL_ENGINE_NAME_MAX];
        const char *eq = strchr(loras[i], '='), *path = eq ? eq + 1 : loras[i];
        if (eq) snprintf(name, sizeof name, "%.*s", (int)(eq - loras[i]), loras[i]);
        else {
            const char *base = strrchr(path, '/');
            snprintf(name, sizeof name, "%s", base ? base + 1 : path);
            char *dot = strstr(name, ".gguf");
            if (dot && dot != name && !dot[5]) *dot = 0;
        }
        if (hl_engine_adapter_load(e, name, path, &err) != HL_OK) {
            hl_error_prefix(&err, "--lora %s", loras[i]);
            cli_fail(CMD, &err);
            goto done;
        }
    }
    if (hl_server_start(e, &sp, &srv, &err) != HL_OK) {
        cli_fail(CMD, &err);
        goto done;
    }
    if (sp.host && strncmp(sp.host, "127.", 4) && strcmp(sp.host, "localhost") && !sp.api_key)
        fprintf(stderr, "hyperlora serve: note: listening on %s without --api-key: anyone who can reach it may "
                "load adapters from this machine's files\n", sp.host);
    const char *chat_source = NULL, *chat = hl_server_chat_template(srv, &chat_source);
    if (!strcmp(chat_source, "option")) fprintf(stderr, "hyperlora serve: chat template %s (--chat-template)\n", chat);
    else if (!strcmp(chat_source, "fallback"))
        fprintf(stderr, "hyperlora serve: chat template plain: the model's template looks like another family, but "
                "the vocabulary lacks its tokens\n");
    else if (!strcmp(chat, "plain"))
        fprintf(stderr, "hyperlora serve: chat template plain (\"role: content\" lines): the model's "
                "tokenizer.chat_template is missing or of no known family\n");
    else fprintf(stderr, "hyperlora serve: chat template %s (from the model's tokenizer.chat_template)\n", chat);
    fprintf(stderr, "hyperlora serve: listening on http://%s:%d (model %s, %d adapter%s, %ld thread%s)\n",
            sp.host ? sp.host : "127.0.0.1", hl_server_port(srv), hl_engine_model_name(e), n_lora,
            n_lora == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "hyperlora serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
done:
    hl_server_stop(srv);
    hl_engine_free(e);
    return rc;
}
#endif
