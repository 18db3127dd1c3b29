/* chat_template.h: turning a list of chat messages into the prompt a chat
 * model was trained on, for the template families that cover most GGUF
 * files. There is no Jinja interpreter here: as llama.cpp does for its
 * built-in templates, the family is recognised from distinctive text in the
 * file's tokenizer.chat_template, and each family is written out in C.
 *
 * Families (each message's role and content as given):
 *   plain   "role: content\n" per message, then "assistant:" (no template;
 *           the fallback for files with none or an unknown one);
 *   chatml  "<|im_start|>role\ncontent<|im_end|>\n" per message, then
 *           "<|im_start|>assistant\n" (Qwen, many others); no default
 *           system message is added;
 *   llama3  "<|begin_of_text|>" once, then
 *           "<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>"
 *           per message (content trimmed, as the Meta template does), then
 *           "<|start_header_id|>assistant<|end_header_id|>\n\n";
 *   llama2  Llama-2's "[INST]" form: "<s>[INST] user [/INST]" per user
 *           message and " assistant </s>" per reply (contents trimmed), a
 *           system message wrapped in "<<SYS>>\n...\n<</SYS>>\n\n" and put
 *           before the next user message; nothing after the last "[/INST]".
 *
 * Safety: the markers the family writes (<|im_start|>, <s>, ...) become
 * their single token ids; everything else, the roles and contents above
 * all, is encoded with special-token parsing off, so a message that
 * contains the text "<|im_start|>" cannot open a turn of its own. Text runs
 * between markers are encoded whole, so the ids equal those of encoding
 * the formatted text with special-token parsing on whenever the contents
 * hold no special-token text (llama.cpp's result).
 *
 * BOS: llama3 and llama2 write it as their first marker, as their
 * templates do; plain and chatml get it when the file asks for it
 * (tokenizer.ggml.add_bos_token), as llama.cpp adds it.
 *
 * Not handled: tools, multi-part contents, other template families
 * (detection says "plain" for them). */
#ifndef HL_TEXT_CHAT_TEMPLATE_H
#define HL_TEXT_CHAT_TEMPLATE_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"
#include "io/gguf.h"
#include "text/tokenizer.h"

typedef enum { HL_CHAT_PLAIN = 0, HL_CHAT_CHATML, HL_CHAT_LLAMA3, HL_CHAT_LLAMA2, HL_CHAT_FAMILY_COUNT } hl_chat_family;

typedef struct hl_chat_message {
    const char *role;    /* "system", "user" or "assistant" (others are written as given) */
    const char *content; /* UTF-8 */
} hl_chat_message;

/* A family bound to a vocabulary: the ids of its markers. */
typedef struct hl_chat_template {
    hl_chat_family family;
    int add_bos; /* plain, chatml: the encoder adds BOS first */
    int32_t bos, eos;
    int32_t turn_begin;  /* chatml <|im_start|>; llama3 <|start_header_id|> */
    int32_t header_end;  /* llama3 <|end_header_id|> */
    int32_t end_of_turn; /* chatml <|im_end|>, llama3 <|eot_id|>, llama2 </s>; -1 for plain */
} hl_chat_template;

/* "plain", "chatml", "llama3", "llama2"; NULL out of range. */
const char *hl_chat_family_name(hl_chat_family f);
/* The family named so; -1 for another name. */
int hl_chat_family_from_name(const char *name);
/* The family of a Jinja template text (len bytes; NULL or 0: none):
 * chatml when it writes "<|im_start|>", llama3 when "<|start_header_id|>"
 * and "<|eot_id|>", llama2 when "[INST]", else plain. */
hl_chat_family hl_chat_detect(const char *text, size_t len);
/* The family of a model file's tokenizer.chat_template (g NULL, or no key:
 * plain); *has_template says whether the file carries one. */
hl_chat_family hl_chat_detect_gguf(const hl_gguf *g, int *has_template);

/* Binds family f to tok: every marker must be one token of tok, else
 * HL_ERR_UNSUPPORTED naming the one missing. */
hl_status hl_chat_template_init(hl_chat_family f, const hl_tokenizer *tok, hl_chat_template *out, hl_error *err);

/* The prompt as text (markers written out; BOS only where the family
 * writes it), NUL-terminated and hl_malloc'd (*len without the NUL). With
 * add_generation_prompt the opening of the assistant's reply follows. */
hl_status hl_chat_format(const hl_chat_template *t, const hl_chat_message *msgs, int32_t n, int add_generation_prompt,
                         char **text, size_t *len, hl_error *err);
/* The prompt as token ids (hl_malloc'd), markers as their ids, all other
 * text with special-token parsing off (see the top of this file). */
hl_status hl_chat_encode(const hl_chat_template *t, const hl_tokenizer *tok, const hl_chat_message *msgs, int32_t n,
                         int add_generation_prompt, int32_t **ids, size_t *n_ids, hl_error *err);
#endif
