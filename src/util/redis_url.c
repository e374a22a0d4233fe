/* redis_url.c - see redis_url.h. */
#include "util/redis_url.h"

#include <stdio.h>
#include <string.h>

static int number(const char *s, size_t len, int max, int *out)
{
    if (len == 0 || len > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int tg_redis_url_parse(const char *url, tg_redis_url_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(why, cap, "must be redis://HOST[:PORT][/DB], like redis://127.0.0.1:6379/0");
        return -1;
    }
    const char *p = url + 8, *end = p + strlen(p);
    for (const char *c = p; c < end; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            snprintf(why, cap, "must not contain spaces or control characters");
            return -1;
        }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = NULL;
    for (const char *c = p; c < (slash != NULL ? slash : end); c++)
        if (*c == '@')
            auth_end = c; /* the last @ before the path: a password may hold one */
    if (auth_end != NULL) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        size_t ul = colon != NULL ? (size_t)(colon - p) : (size_t)(auth_end - p);
        size_t pl = colon != NULL ? (size_t)(auth_end - colon - 1) : 0;
        if (ul >= sizeof(out->user) || pl >= sizeof(out->password)) {
            snprintf(why, cap, "has a user name or password that is too long");
            return -1;
        }
        memcpy(out->user, p, ul);
        if (colon != NULL)
            memcpy(out->password, colon + 1, pl);
        p = auth_end + 1;
    }
    const char *hend = slash != NULL ? slash : end, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (rb == NULL) {
            snprintf(why, cap, "has an IPv6 address without its closing bracket");
            return -1;
        }
        size_t hl = (size_t)(rb - p - 1);
        if (hl == 0 || hl >= sizeof(out->host)) {
            snprintf(why, cap, "has no host");
            return -1;
        }
        memcpy(out->host, p + 1, hl);
        if (rb + 1 < hend) {
            if (rb[1] != ':') {
                snprintf(why, cap, "has something after the IPv6 address other than :PORT");
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hend - p));
        size_t hl = (size_t)((colon != NULL ? colon : hend) - p);
        if (hl == 0 || hl >= sizeof(out->host)) {
            snprintf(why, cap, hl == 0 ? "has no host" : "has a host name that is too long");
            return -1;
        }
        memcpy(out->host, p, hl);
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL && (number(port, (size_t)(hend - port), 65535, &out->port) != 0 || out->port == 0)) {
        snprintf(why, cap, "has a port that is not a number from 1 to 65535");
        return -1;
    }
    if (slash != NULL && slash + 1 < end && number(slash + 1, (size_t)(end - slash - 1), 15, &out->db) != 0) {
        snprintf(why, cap, "has a database that is not a number from 0 to 15");
        return -1;
    }
    return 0;
}
