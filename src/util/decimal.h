/* decimal.h - unsigned integers as decimal text, without printf.
 *
 * The request path writes a handful of numbers per call (the rate-limit and quota headers,
 * gateway/gateway.c); snprintf's format parsing and locale machinery cost more than the digits.
 * Pure: no allocation, no globals; any thread. */
#ifndef TG_DECIMAL_H
#define TG_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define TG_DECIMAL_U64_MAX 20 /* the digits of UINT64_MAX, 18446744073709551615 */

/* Writes v in decimal (no sign, no leading zeros, "0" for 0) into out, which has room for
 * TG_DECIMAL_U64_MAX bytes; no NUL is written. Returns the number of digits (1 to 20). */
size_t tg_decimal_u64(char *out, uint64_t v);

#endif
