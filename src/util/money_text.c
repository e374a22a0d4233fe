/* money_text.c - see money_text.h. */
#include "util/money_text.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *code, *symbol;
} symbols[] = {{"usd", "$"},   {"eur", "€"},   {"gbp", "£"},  {"jpy", "¥"},   {"cny", "CN¥"}, {"inr", "₹"},
               {"krw", "₩"},   {"cad", "CA$"}, {"aud", "A$"}, {"nzd", "NZ$"}, {"brl", "R$"},  {"mxn", "MX$"},
               {"hkd", "HK$"}, {"ils", "₪"},   {"vnd", "₫"},  {"twd", "NT$"}, {"php", "₱"}};

/* Appends s (n bytes) at *used; -1 if it does not fit with the final NUL. */
static int put(char *buf, size_t cap, size_t *used, const char *s, size_t n)
{
    if (n >= cap - *used)
        return -1;
    memcpy(buf + *used, s, n);
    *used += n;
    buf[*used] = '\0';
    return 0;
}

/* The digits s[0..n) grouped by thousands. */
static int put_grouped(char *buf, size_t cap, size_t *used, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && put(buf, cap, used, ",", 1) != 0)
            return -1;
        if (put(buf, cap, used, s + i, 1) != 0)
            return -1;
    }
    return 0;
}

int tg_money_text(const char *decimal, const char *currency, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return -1;
    buf[0] = '\0';
    if (decimal == NULL || currency == NULL || strlen(currency) != 3)
        return -1;
    const char *p = decimal;
    int neg = *p == '-';
    p += neg;
    size_t whole = strspn(p, "0123456789");
    const char *frac = p + whole;
    size_t nfrac = 0;
    if (*frac == '.') {
        nfrac = strspn(frac + 1, "0123456789");
        if (nfrac == 0 || frac[1 + nfrac] != '\0')
            return -1;
    } else if (*frac != '\0')
        return -1;
    if (whole == 0)
        return -1;
    const char *symbol = NULL;
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++)
        if (strcasecmp(symbols[i].code, currency) == 0)
            symbol = symbols[i].symbol;
    char code[5] = {(char)toupper((unsigned char)currency[0]), (char)toupper((unsigned char)currency[1]),
                    (char)toupper((unsigned char)currency[2]), ' ', '\0'};
    size_t used = 0;
    int ok = (!neg || put(buf, cap, &used, "-", 1) == 0) &&
             (symbol != NULL ? put(buf, cap, &used, symbol, strlen(symbol)) : put(buf, cap, &used, code, 4)) == 0 &&
             put_grouped(buf, cap, &used, p, whole) == 0 && (nfrac == 0 || put(buf, cap, &used, frac, nfrac + 1) == 0);
    if (!ok) {
        buf[0] = '\0';
        return -1;
    }
    return (int)used;
}

int tg_count_text(uint64_t n, char *buf, size_t cap)
{
    char digits[24];
    int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    size_t used = 0;
    if (buf == NULL || cap == 0)
        return -1;
    buf[0] = '\0';
    if (put_grouped(buf, cap, &used, digits, (size_t)len) != 0) {
        buf[0] = '\0';
        return -1;
    }
    return (int)used;
}
