/* json_nul.c: the \u0000 scan of json_nul.h. It tracks only whether it is
 * inside a string and skips the character after each backslash; it does not
 * validate JSON. */
#include "util/json_nul.h"

int64_t hl_json_find_nul_escape(const char *text, size_t n) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (!in_string) {
            if (c == '"') in_string = 1;
            continue;
        }
        if (c == '"') in_string = 0;
        else if (c == '\\') {
            if (i + 5 < n && text[i + 1] == 'u' && text[i + 2] == '0' && text[i + 3] == '0' && text[i + 4] == '0' &&
                text[i + 5] == '0')
                return (int64_t)i;
            i++; /* the escaped character, whatever it is */
        }
    }
    return -1;
}
