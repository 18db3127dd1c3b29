/* error.c: status names and message formatting for hl_error. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *hl_status_name(hl_status status) {
    static const char *names[HL_STATUS_COUNT] = {
        [HL_OK] = "ok",
        [HL_ERR_IO] = "i/o error",
        [HL_ERR_FORMAT] = "malformed input",
        [HL_ERR_NOMEM] = "out of memory",
        [HL_ERR_INVALID_ARG] = "invalid argument",
        [HL_ERR_UNSUPPORTED] = "unsupported",
        [HL_ERR_MISMATCH] = "mismatch",
        [HL_ERR_LIMIT] = "resource limit exceeded",
        [HL_ERR_INTERRUPTED] = "interrupted",
        [HL_ERR_NOT_FOUND] = "not found",
    };
    if ((int)status < 0 || status >= HL_STATUS_COUNT || !names[status]) return "unknown status";
    return names[status];
}

hl_status hl_fail(hl_error *err, hl_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void hl_error_prefix(hl_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable here: the message is for humans. */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    size_t room = sizeof err->msg - n - 2;
    size_t ol = strnlen(old, sizeof old);
    if (ol >= room) ol = room - 1;
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = 0;
}
