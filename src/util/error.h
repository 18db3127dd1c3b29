/* error.h: filling an hl_error with a status and a printf-style message.
 * Every fallible function takes an `hl_error *err` (which may be NULL) and
 * returns an hl_status; there is no global error state. */
#ifndef HL_UTIL_ERROR_H
#define HL_UTIL_ERROR_H
#include "hyperlora.h"

#if defined(__GNUC__)
#define HL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HL_PRINTF(a, b)
#endif

/* Sets err (if non-NULL) and returns status, so callers can write
 * `return hl_fail(err, HL_ERR_FORMAT, "%s: bad magic", path);` */
hl_status hl_fail(hl_error *err, hl_status status, const char *fmt, ...) HL_PRINTF(3, 4);

/* Prepends "context: " to an existing message (used when a lower layer fails). */
void hl_error_prefix(hl_error *err, const char *fmt, ...) HL_PRINTF(2, 3);

#endif
