/* fuzz_money.c - exact money parsing against arbitrary text (libFuzzer).
 * Properties: a parsed amount formats back (9 digits) to text that parses to the same amount;
 * rounding gives a multiple of the unit at most half a unit away, ties away from zero, and is
 * idempotent (at the very ends of the range, where that would leave int64, it returns the
 * amount unchanged, as documented); multiplication and
 * addition either give the exact result or refuse with TG_ERANGE (UBSan sees any overflow); the
 * text for people (tg_money_text) of that decimal, without its symbol and thousands separators,
 * is the decimal itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/money.h"
#include "util/money_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_err_t err = {0};
    tg_money_t a;
    if (tg_money_parse((const char *)data, size, &a, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    char buf[TG_MONEY_FMT_MAX];
    int n = tg_money_format(a, 9, buf, sizeof(buf));
    tg_money_t back;
    if (n <= 0 || tg_money_parse(buf, (size_t)n, &back, &err) != 0 || back != a)
        abort();
    char shown[80], plain[80];
    int m = tg_money_text(buf, "usd", shown, sizeof(shown));
    if (m <= 0)
        abort();
    size_t k = 0;
    for (const char *c = shown; *c != '\0'; c++)
        if (*c != '$' && *c != ',')
            plain[k++] = *c;
    plain[k] = '\0';
    if (strcmp(plain, buf) != 0)
        abort();
    for (int digits = 0; digits <= 9; digits++) {
        tg_money_t r = tg_money_round(a, digits);
        tg_money_t unit = 1;
        for (int i = digits; i < 9; i++)
            unit *= 10;
        __int128 diff = (__int128)r - a;
        if (r % unit != 0) { /* documented: unrounded only where rounding would leave int64 */
            if (r != a || ((__int128)a + unit / 2 <= INT64_MAX && (__int128)a - unit / 2 >= INT64_MIN))
                abort();
            continue;
        }
        if (tg_money_round(r, digits) != r || diff > unit / 2 || diff < -(unit / 2))
            abort();
        if ((diff == unit / 2 || diff == -(unit / 2)) && unit > 1 && (a > 0 ? r < a : r > a))
            abort(); /* a tie goes away from zero */
    }
    tg_money_t p, s;
    uint64_t q = size;
    int rc = tg_money_mul(a, q, &p);
    __int128 exact = (__int128)a * q;
    if ((rc == 0) != (exact >= INT64_MIN && exact <= INT64_MAX) || (rc == 0 && p != (tg_money_t)exact))
        abort();
    rc = tg_money_add(a, a, &s);
    exact = (__int128)a + a;
    if ((rc == 0) != (exact >= INT64_MIN && exact <= INT64_MAX) || (rc == 0 && s != (tg_money_t)exact))
        abort();
    return 0;
}
