/* fuzz_units.c - the Tollgate-Units response header parser against arbitrary values (libFuzzer).
 * The upstream writes this header, and the gateway bills what it says. Properties: at most cap
 * rows; each has a metric of lowercase letters, digits and '_' (terminated, under
 * TG_METRIC_MAX) and units from 1 to INT64_MAX; written back as "metric=units, ..." the rows
 * parse to the same rows. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

#define CAP 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_usage_t rows[CAP], again[CAP];
    memset(rows, 0xAA, sizeof(rows)); /* nothing may rely on zeroed rows */
    size_t n = tg_gateway_parse_units((const char *)data, size, rows, CAP);
    if (n > CAP)
        abort();
    char text[CAP * (TG_METRIC_MAX + 24)];
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(rows[i].metric, sizeof(rows[i].metric));
        if (len == 0 || len >= sizeof(rows[i].metric) || rows[i].units == 0 || rows[i].units > (uint64_t)INT64_MAX)
            abort();
        for (size_t k = 0; k < len; k++)
            if (!(islower((unsigned char)rows[i].metric[k]) || isdigit((unsigned char)rows[i].metric[k]) ||
                  rows[i].metric[k] == '_'))
                abort();
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s=%llu", i ? ", " : "", rows[i].metric,
                                 (unsigned long long)rows[i].units);
    }
    if (tg_gateway_parse_units(text, used, again, CAP) != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strcmp(again[i].metric, rows[i].metric) != 0 || again[i].units != rows[i].units)
            abort();
    return 0;
}
