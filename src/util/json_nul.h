/* json_nul.h: finding "\u0000" in JSON text before cJSON parses it.
 *
 * cJSON decodes the escape \u0000 into a NUL byte inside a C string, so
 * "LORA\u0000junk" reads back as "LORA": the rest of the value silently
 * vanishes. Readers of untrusted JSON whose strings must mean exactly what
 * they say (adapter_config.json, lexicons) look for the escape first and
 * refuse it. Only an escape inside a string counts; "\\u0000" (an escaped
 * backslash, then the letters) is not one. */
#ifndef HL_UTIL_JSON_NUL_H
#define HL_UTIL_JSON_NUL_H
#include <stddef.h>
#include <stdint.h>

/* The byte offset of the first \u0000 escape inside a JSON string of
 * text[0..n), or -1 when there is none. Malformed JSON is scanned the same
 * way (the parser reports it afterwards). */
int64_t hl_json_find_nul_escape(const char *text, size_t n);
#endif
