/* fuzz_decide_syslog.c - the decision API's settlement line parser (http/decide_syslog.h) against
 * arbitrary datagrams (libFuzzer). Anyone who can reach decide.syslog can send these, and a
 * parsed line settles a reservation. Properties: an accepted line's reservation is "rsv_" and 32
 * lowercase hex digits inside the input, its status 100-599, its units NULL or printable bytes
 * inside the input (at most 1024); and the same fields, written back in nginx's framing, parse to
 * the same fields. The first byte chooses the format with or without decide.syslog_secret's
 * field; with it, the secret is 1-256 bytes inside the input, with no space or control byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/decide_syslog.h"

static int inside(const char *p, size_t n, const uint8_t *data, size_t size)
{
    return p >= (const char *)data && p + n <= (const char *)data + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int with_secret = data[0] & 1;
    data++, size--;
    tg_decide_settlement_t s;
    if (tg_decide_syslog_parse((const char *)data, size, with_secret, &s) != 0)
        return 0;
    if (with_secret) {
        if (s.secret_len == 0 || s.secret_len > 256 || !inside(s.secret, s.secret_len, data, size))
            abort();
        for (size_t i = 0; i < s.secret_len; i++)
            if ((unsigned char)s.secret[i] <= 0x20 || s.secret[i] == 0x7f)
                abort();
    } else if (s.secret != NULL) {
        abort();
    }
    if (s.reservation_len != TG_RESERVATION_ID_LEN || !inside(s.reservation, s.reservation_len, data, size) ||
        memcmp(s.reservation, "rsv_", 4) != 0)
        abort();
    for (size_t i = 4; i < s.reservation_len; i++)
        if (!((s.reservation[i] >= '0' && s.reservation[i] <= '9') ||
              (s.reservation[i] >= 'a' && s.reservation[i] <= 'f')))
            abort();
    if (s.status < 100 || s.status > 599)
        abort();
    if (s.units != NULL) {
        if (s.units_len == 0 || s.units_len > 1024 || !inside(s.units, s.units_len, data, size))
            abort();
        for (size_t i = 0; i < s.units_len; i++)
            if ((unsigned char)s.units[i] < 0x20 || (unsigned char)s.units[i] >= 0x7f)
                abort();
    }
    char line[TG_DECIDE_LINE_MAX];
    int n = snprintf(line, sizeof(line), "<190>Dec  4 14:30:00 tollgate: tollgate1 %.*s%s%.*s %d %.*s\n",
                     (int)s.secret_len, with_secret ? s.secret : "", with_secret ? " " : "", (int)s.reservation_len,
                     s.reservation, s.status, s.units != NULL ? (int)s.units_len : 1, s.units != NULL ? s.units : "-");
    tg_decide_settlement_t again;
    if (n < 0 || (size_t)n >= sizeof(line) || tg_decide_syslog_parse(line, (size_t)n, with_secret, &again) != 0)
        abort();
    if (with_secret && (again.secret_len != s.secret_len || memcmp(again.secret, s.secret, s.secret_len) != 0))
        abort();
    if (again.status != s.status || memcmp(again.reservation, s.reservation, s.reservation_len) != 0 ||
        (again.units == NULL) != (s.units == NULL) || again.units_len != s.units_len ||
        (s.units != NULL && memcmp(again.units, s.units, s.units_len) != 0))
        abort();
    return 0;
}
