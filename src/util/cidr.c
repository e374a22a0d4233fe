/* cidr.c - see cidr.h. Addresses are parsed by inet_pton only (no resolver, no zone ids). */
#include "util/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int tg_cidr_parse_addr(const char *s, size_t len, tg_cidr_t *out)
{
    char buf[TG_CIDR_TEXT_MAX];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->addr) != 1)
        return -1;
    if (memcmp(out->addr, v4_mapped, sizeof(v4_mapped)) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->prefix = 32;
        return 0;
    }
    out->v6 = 1;
    out->prefix = 128;
    return 0;
}

int tg_cidr_parse(const char *s, tg_cidr_t *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (tg_cidr_parse_addr(s, alen, out) != 0)
        return -1;
    if (slash == NULL)
        return 0;
    const char *p = slash + 1;
    int prefix = 0, digits = 0;
    if (p[0] == '0' && p[1] != '\0')
        return -1; /* "/08": no leading zeros */
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
        prefix = prefix * 10 + (*p - '0');
    int max = out->v6 ? 128 : 32;
    /* an IPv4-mapped range ("::ffff:10.0.0.0/104") is written in IPv6 prefix bits */
    if (!out->v6 && strchr(s, ':') != NULL && slash != NULL)
        prefix -= 96;
    if (*p != '\0' || digits == 0 || prefix < 0 || prefix > max)
        return -1;
    out->prefix = prefix;
    for (int bit = prefix; bit < max; bit++)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return -1; /* host bits set */
    return 0;
}

static int in_range(const tg_cidr_t *r, const tg_cidr_t *a)
{
    if (r->v6 != a->v6)
        return 0;
    int full = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(r->addr, a->addr, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (r->addr[full] & mask) == (a->addr[full] & mask);
}

int tg_cidr_list_match(const tg_cidr_t *ranges, size_t n, const tg_cidr_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (in_range(&ranges[i], addr))
            return 1;
    return 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The next element from the right of a comma-separated list: [*s, *e) trimmed; moves *end. */
static int prev_element(const char *list, const char **end, const char **s, const char **e)
{
    if (*end <= list)
        return 0;
    const char *stop = *end, *p = stop;
    while (p > list && p[-1] != ',')
        p--;
    *end = p > list ? p - 1 : list;
    while (p < stop && is_ows(*p))
        p++;
    while (stop > p && is_ows(stop[-1]))
        stop--;
    *s = p;
    *e = stop;
    return 1;
}

/* The node of a Forwarded element's for= parameter: [*s, *e), quotes, brackets and port
 * stripped. 0 if the element has none. */
static int forwarded_for(const char *el, const char *el_end, const char **s, const char **e)
{
    const char *p = el;
    while (p < el_end) {
        const char *semi = memchr(p, ';', (size_t)(el_end - p)), *pe = semi != NULL ? semi : el_end;
        while (p < pe && is_ows(*p))
            p++;
        if (pe - p > 4 && strncasecmp(p, "for=", 4) == 0) {
            const char *v = p + 4, *ve = pe;
            while (ve > v && is_ows(ve[-1]))
                ve--;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            if (v < ve && *v == '[') { /* "[2001:db8::1]:4711" */
                const char *rb = memchr(v, ']', (size_t)(ve - v));
                if (rb == NULL)
                    return 0;
                *s = v + 1;
                *e = rb;
                return 1;
            }
            const char *colon = memchr(v, ':', (size_t)(ve - v)); /* "192.0.2.43:47011" */
            *s = v;
            *e = colon != NULL ? colon : ve;
            return 1;
        }
        p = pe + 1;
    }
    return 0;
}

int tg_client_addr(const char *peer, const tg_cidr_t *trusted, size_t ntrusted, const char *xff, size_t xff_len,
                   const char *forwarded, size_t forwarded_len, char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer);
    tg_cidr_t a;
    if (ntrusted == 0 || tg_cidr_parse_addr(peer, strlen(peer), &a) != 0 || !tg_cidr_list_match(trusted, ntrusted, &a))
        return 0;
    const char *list = xff != NULL && xff_len > 0 ? xff : forwarded;
    size_t len = xff != NULL && xff_len > 0 ? xff_len : forwarded_len;
    int is_fwd = list == forwarded;
    if (list == NULL || len == 0)
        return 0;
    const char *end = list + len, *s, *e;
    int from_header = 0;
    while (prev_element(list, &end, &s, &e)) {
        if (is_fwd && !forwarded_for(s, e, &s, &e))
            break;
        if (tg_cidr_parse_addr(s, (size_t)(e - s), &a) != 0)
            break; /* "unknown", an obfuscated node or garbage: stop at the last trusted hop */
        snprintf(out, cap, "%.*s", (int)(e - s), s);
        from_header = 1;
        if (!tg_cidr_list_match(trusted, ntrusted, &a))
            return 1;
    }
    return from_header;
}
