/* money.c - see money.h. */
#include "util/money.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const int64_t pow10_table[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                        100000000, 1000000000};

int tg_money_parse(const char *s, size_t len, tg_money_t *out, tg_err_t *err)
{
    size_t i = 0;
    int negative = 0;
    __int128 whole = 0;
    int64_t frac = 0;
    int frac_digits = 0, int_digits = 0;

    if (s == NULL) { /* so the messages below never print a null pointer */
        s = "";
        len = 0;
    }
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        i = 1;
    }
    for (; i < len && isdigit((unsigned char)s[i]); i++) {
        whole = whole * 10 + (s[i] - '0');
        if (whole > INT64_MAX / TG_MONEY_SCALE)
            return tg_errf(err, TG_ERANGE, "amount \"%.*s\" is too large", (int)len, s);
        int_digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        for (; i < len && isdigit((unsigned char)s[i]); i++) {
            if (++frac_digits > TG_MONEY_DIGITS)
                return tg_errf(err, TG_EINVAL,
                               "amount \"%.*s\" has more than %d decimal places", (int)len, s,
                               TG_MONEY_DIGITS);
            frac = frac * 10 + (s[i] - '0');
        }
        if (frac_digits == 0)
            return tg_errf(err, TG_EINVAL, "amount \"%.*s\" has no digits after '.'", (int)len, s);
    }
    if (i != len || int_digits + frac_digits == 0)
        return tg_errf(err, TG_EINVAL, "\"%.*s\" is not a decimal amount", (int)len, s);
    /* The whole part alone was bounded above; with its decimals it can still pass INT64_MAX
     * ("9223372036.9"), so check the magnitude against the range of the sign it will take. */
    __int128 v = whole * TG_MONEY_SCALE + (__int128)frac * pow10_table[TG_MONEY_DIGITS - frac_digits];
    if (v > (negative ? -(__int128)INT64_MIN : (__int128)INT64_MAX))
        return tg_errf(err, TG_ERANGE, "amount \"%.*s\" is too large", (int)len, s);
    *out = (tg_money_t)(negative ? -v : v);
    return 0;
}

int tg_money_format(tg_money_t amount, int digits, char *buf, size_t cap)
{
    if (digits < 0)
        digits = 0;
    if (digits > TG_MONEY_DIGITS)
        digits = TG_MONEY_DIGITS;
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = mag / (uint64_t)TG_MONEY_SCALE, frac = mag % (uint64_t)TG_MONEY_SCALE;
    int shown = digits;
    /* Never hide value: extend past `digits` while non-zero nano digits remain. */
    while (shown < TG_MONEY_DIGITS && frac % (uint64_t)pow10_table[TG_MONEY_DIGITS - shown] != 0)
        shown++;
    int n;
    if (shown == 0)
        n = snprintf(buf, cap, "%s%llu", amount < 0 ? "-" : "", (unsigned long long)whole);
    else
        n = snprintf(buf, cap, "%s%llu.%0*llu", amount < 0 ? "-" : "", (unsigned long long)whole,
                     shown, (unsigned long long)(frac / (uint64_t)pow10_table[TG_MONEY_DIGITS - shown]));
    if (n < 0 || (size_t)n >= cap)
        return TG_ERANGE;
    return n;
}

tg_money_t tg_money_round(tg_money_t amount, int digits)
{
    if (digits >= TG_MONEY_DIGITS)
        return amount;
    if (digits < 0)
        digits = 0;
    int64_t step = pow10_table[TG_MONEY_DIGITS - digits];
    __int128 a = amount, half = step / 2;
    __int128 q = a >= 0 ? (a + half) / step : -((-a + half) / step);
    __int128 r = q * step;
    if (r > INT64_MAX || r < INT64_MIN) /* only at the extremes of the range */
        return amount;
    return (tg_money_t)r;
}

int tg_money_mul(tg_money_t unit_price, uint64_t quantity, tg_money_t *out)
{
    __int128 p = (__int128)unit_price * (__int128)quantity;
    if (p > INT64_MAX || p < INT64_MIN)
        return TG_ERANGE;
    *out = (tg_money_t)p;
    return 0;
}

int tg_money_add(tg_money_t a, tg_money_t b, tg_money_t *out)
{
    if (__builtin_add_overflow(a, b, out))
        return TG_ERANGE;
    return 0;
}

int tg_money_scale(tg_money_t amount, int64_t num, int64_t den, tg_money_t *out)
{
    if (den <= 0)
        return TG_EINVAL;
    __int128 p = (__int128)amount * num;
    __int128 q = p >= 0 ? (p + den / 2) / den : -((-p + den / 2) / den);
    if (q > INT64_MAX || q < INT64_MIN)
        return TG_ERANGE;
    *out = (tg_money_t)q;
    return 0;
}

int tg_currency_digits(const char *code)
{
    /* ISO 4217 exponents; currencies not listed here with 2 digits are rejected rather than
     * guessed, so a typo like "usdd" is a config error. */
    static const struct {
        const char *code;
        int digits;
    } table[] = {
        {"usd", 2}, {"eur", 2}, {"gbp", 2}, {"chf", 2}, {"cad", 2}, {"aud", 2}, {"nzd", 2},
        {"sek", 2}, {"nok", 2}, {"dkk", 2}, {"pln", 2}, {"czk", 2}, {"inr", 2}, {"cny", 2},
        {"hkd", 2}, {"sgd", 2}, {"brl", 2}, {"mxn", 2}, {"zar", 2}, {"ils", 2}, {"try", 2},
        {"jpy", 0}, {"krw", 0}, {"clp", 0}, {"isk", 0}, {"vnd", 0}, {"huf", 2},
        {"bhd", 3}, {"kwd", 3}, {"omr", 3}, {"jod", 3}, {"tnd", 3},
    };
    if (code == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcasecmp(code, table[i].code) == 0)
            return table[i].digits;
    return -1;
}
