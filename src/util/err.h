/* err.h - error codes and the caller-owned message buffer every fallible call fills.
 *
 * Functions return 0 on success or a negative TG_E* code, and write one human sentence into a
 * tg_err_t the caller passed (curl's failf). Library code never prints and never exits. */
#ifndef TG_ERR_H
#define TG_ERR_H

#include <stddef.h>

enum {
    TG_OK = 0,
    TG_ENOMEM = -1,    /* allocation failed */
    TG_EINVAL = -2,    /* caller passed something malformed */
    TG_ENOTFOUND = -3, /* the named thing does not exist */
    TG_EEXIST = -4,    /* a unique thing exists already */
    TG_EIO = -5,       /* operating system or disk error */
    TG_ESTORE = -6,    /* the database refused */
    TG_ECONFIG = -7,   /* configuration is invalid */
    TG_ERANGE = -8,    /* a number does not fit */
    TG_ELIMIT = -9,    /* a limit (rate, quota, size) was reached */
    TG_ESTATE = -10,   /* operation not allowed in the current state */
    TG_EPAYMENT = -11, /* a payment method must be on file first */
    TG_EUNAVAIL = -12, /* the database cannot be reached now: try again later */
};

#define TG_ERR_MAX 512

typedef struct tg_err {
    int code;
    char msg[TG_ERR_MAX];
} tg_err_t;

/* Records code and a formatted message in err (which may be NULL); returns code so callers can
 * write `return tg_errf(err, TG_EINVAL, "...")`. */
int tg_errf(tg_err_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A short English name for a TG_E* code ("not found"). Never NULL. */
const char *tg_strerror(int code);

#endif
