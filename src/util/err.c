/* err.c - see err.h. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

int tg_errf(tg_err_t *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *tg_strerror(int code)
{
    switch (code) {
    case TG_OK: return "ok";
    case TG_ENOMEM: return "out of memory";
    case TG_EINVAL: return "invalid argument";
    case TG_ENOTFOUND: return "not found";
    case TG_EEXIST: return "already exists";
    case TG_EIO: return "I/O error";
    case TG_ESTORE: return "storage error";
    case TG_ECONFIG: return "configuration error";
    case TG_ERANGE: return "out of range";
    case TG_ELIMIT: return "limit reached";
    case TG_ESTATE: return "not allowed in this state";
    case TG_EPAYMENT: return "payment method required";
    case TG_EUNAVAIL: return "database unavailable";
    default: return "unknown error";
    }
}
