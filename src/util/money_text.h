/* money_text.h - money and counts as people read them in mail and HTML invoices ("$49.00",
 * "€0.0005", "¥1,200", "CHF 10.00", "50,000"), where no browser's Intl.NumberFormat is at hand.
 *
 * Pure functions on text: the amount is the exact decimal string the API and the invoice body
 * carry ("49.00", "-12.5"); its digits are copied, never converted, so nothing is rounded. The
 * symbols follow what Intl.NumberFormat("en-US", {style: "currency"}) writes for the common
 * currencies; any other code is written in front ("CHF 10.00"). */
#ifndef TG_MONEY_TEXT_H
#define TG_MONEY_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Writes `decimal` in `currency` (ISO 4217, either case) into buf: sign, symbol, the whole part
 * grouped by thousands with ',', the fraction as given. Returns the length, or -1 when decimal is
 * not [-]digits[.digits] or buf (cap bytes, NUL included) is too small; buf is then "". */
int tg_money_text(const char *decimal, const char *currency, char *buf, size_t cap);

/* n with ',' between thousands ("1,234,567"). Returns the length, or -1 if cap is too small. */
int tg_count_text(uint64_t n, char *buf, size_t cap);

#endif
