/* stripe_form.h - Stripe's request body: application/x-www-form-urlencoded with nested keys.
 *
 * Stripe takes every POST parameter as a form field; structure is written into the key, the
 * way Rack and PHP parse it: `metadata[tollgate_customer]=cus_1`, `items[0][price]=price_1`.
 * A tg_form_t is a growable buffer with a hard cap; fields are appended in order, each key and
 * value percent-encoded by the form rules (WHATWG urlencoded: ALPHA DIGIT `*-._` stay, a space
 * is `+`, every other byte is %XX, UTF-8 byte by byte), except that the brackets that give a key
 * its structure stay literal, as Stripe's own libraries send them.
 *
 * Pure: no I/O, no globals; any thread, one thread per tg_form_t. */
#ifndef TG_STRIPE_FORM_H
#define TG_STRIPE_FORM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_FORM_MAX_DEFAULT (64 * 1024) /* a Stripe call's body; Stripe's own limit is larger */
#define TG_FORM_DEPTH_MAX 8             /* nesting of a jansson value (Stripe goes to about 5) */

typedef struct tg_form {
    char *buf; /* NUL-terminated; NULL until the first field */
    size_t len, cap, max;
} tg_form_t;

/* The digits of the unit Stripe's API counts amounts of `currency` (ISO 4217, either case) in:
 * the ISO minor unit (util/money.h), except where Stripe kept another for compatibility: ISK has
 * no minor unit in ISO 4217 but "will remain a two-decimal currency in the Stripe API" (an amount
 * of 100 is 1 krona). -1 for a currency tollgate does not know. Every amount tollgate sends to
 * Stripe or reads from it is converted with this. */
int tg_stripe_currency_digits(const char *currency);

/* An empty form that refuses to grow past max bytes (0: TG_FORM_MAX_DEFAULT). */
void tg_form_init(tg_form_t *f, size_t max);
/* Frees the buffer; f can be initialised again. */
void tg_form_free(tg_form_t *f);

/* Appends `key=value`. key is written with its brackets as given ("metadata[a]", "items[0][x]");
 * its other bytes and every byte of value are percent-encoded. TG_EINVAL for an empty key or
 * one whose brackets do not pair as `name[seg][seg]...`; TG_ELIMIT past the cap (the form is
 * then unchanged). */
int tg_form_add(tg_form_t *f, const char *key, const char *value, tg_err_t *err);
int tg_form_add_int(tg_form_t *f, const char *key, int64_t value, tg_err_t *err);

/* Appends a jansson value under prefix (NULL or "" only for an object: its members become the
 * top-level keys): an object's members as prefix[name], an array's items as prefix[i], strings
 * as they are, integers in decimal, true/false as "true"/"false", null as "" (Stripe's way of
 * unsetting a field). Members are written in the object's order. TG_EINVAL for a real number
 * (amounts are integers in the minor unit), a member name with '[' or ']' or empty, a depth
 * past TG_FORM_DEPTH_MAX; TG_ELIMIT past the cap. On error the form is unchanged. */
int tg_form_add_json(tg_form_t *f, const char *prefix, const json_t *v, tg_err_t *err);

/* The encoded body so far ("" when empty) and its length. */
const char *tg_form_data(const tg_form_t *f, size_t *len);

/* Percent-encodes n bytes of s into out (cap bytes, NUL-terminated) by the form rules; keeps
 * '[' and ']' literal when keep_brackets. Returns the encoded length, or (size_t)-1 if it does
 * not fit (out is then ""). */
size_t tg_form_encode(const char *s, size_t n, int keep_brackets, char *out, size_t cap);

#endif
