/* money.h - exact money: signed 64-bit integers of nano-units (1e-9 of a currency's major unit).
 *
 * Why nano-units: unit prices such as 0.000000125 per token must be exact, and int64 still holds
 * ±9.2 billion major units, far above any invoice. Products of a price and a quantity are
 * computed in 128 bits and range-checked, so overflow is an error, never a wrap.
 * Rounding to a currency's minor unit happens once per invoice line, half away from zero. */
#ifndef TG_MONEY_H
#define TG_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef int64_t tg_money_t;

#define TG_MONEY_DIGITS 9
#define TG_MONEY_SCALE INT64_C(1000000000)
#define TG_MONEY_FMT_MAX 32 /* enough for any tg_money_t rendered by tg_money_format */

/* Parses a plain decimal ("49", "0.0005", "-1.25") of at most 9 fractional digits. No exponent,
 * no float. TG_EINVAL for malformed text or too many decimals, TG_ERANGE when it does not fit. */
int tg_money_parse(const char *s, size_t len, tg_money_t *out, tg_err_t *err);

/* Writes `amount` as a decimal in major units with exactly `digits` fractional digits (0..9),
 * truncating nothing: `amount` must already be a multiple of 10^(9-digits), else the extra digits
 * are printed too. Returns the length written, or TG_ERANGE if cap is too small. */
int tg_money_format(tg_money_t amount, int digits, char *buf, size_t cap);

/* Rounds to `digits` fractional digits of the major unit, half away from zero. */
tg_money_t tg_money_round(tg_money_t amount, int digits);

/* *out = unit_price * quantity, exactly; TG_ERANGE if the product leaves int64. */
int tg_money_mul(tg_money_t unit_price, uint64_t quantity, tg_money_t *out);

/* *out = a + b; TG_ERANGE on overflow. */
int tg_money_add(tg_money_t a, tg_money_t b, tg_money_t *out);

/* *out = amount * num / den rounded half away from zero, 128-bit intermediate (proration).
 * den must be > 0. TG_ERANGE if the result leaves int64. */
int tg_money_scale(tg_money_t amount, int64_t num, int64_t den, tg_money_t *out);

/* ISO 4217 minor-unit digits for a lowercase or uppercase currency code ("usd" -> 2, "jpy" -> 0),
 * or -1 for a code this table does not know. */
int tg_currency_digits(const char *code);

#endif
