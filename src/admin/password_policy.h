/* password_policy.h - what a portal password must be: at least 10 characters (Unicode code
 * points) that are not all whitespace, at most 1,024 bytes, not the account's email nor its local
 * part (case-insensitive), and not one of the most common passwords (a short list built in,
 * compared case-insensitively). Pure: no I/O, any thread. */
#ifndef TG_PASSWORD_POLICY_H
#define TG_PASSWORD_POLICY_H

#include "util/err.h"

#define TG_PASSWORD_MIN_CHARS 10
#define TG_PASSWORD_MAX_BYTES 1024

/* 0 if password is acceptable for email; TG_EINVAL with a sentence naming the rule otherwise. */
int tg_password_check(const char *password, const char *email, tg_err_t *err);

#endif
