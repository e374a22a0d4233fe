/* webhook_url.c - see webhook_url.h. URLs are parsed by libcurl's URL API, the parser that
 * sends the request, so the host checked is the host connected to. */
#include "notify/webhook_url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_notify.h"

int tg_webhook_url_check(const char *url, int allow_http, tg_webhook_target_t *target, tg_err_t *err)
{
    if (url == NULL || url[0] == '\0')
        return tg_errf(err, TG_EINVAL, "url is required");
    size_t len = strnlen(url, TG_WEBHOOK_URL_MAX);
    if (len >= TG_WEBHOOK_URL_MAX)
        return tg_errf(err, TG_EINVAL, "url is longer than %d characters", TG_WEBHOOK_URL_MAX - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return tg_errf(err, TG_EINVAL, "url holds a space or a control character");
    int https = strncmp(url, "https://", 8) == 0, http = strncmp(url, "http://", 7) == 0;
    if (!https && !(http && allow_http))
        return tg_errf(err, TG_EINVAL, "url must start with https://%s", http ? " (http:// is refused here)" : "");
    CURLU *u = curl_url();
    if (u == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory parsing a URL");
    int rc = 0;
    char *host = NULL, *port = NULL, *user = NULL, *password = NULL, *zone = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        rc = tg_errf(err, TG_EINVAL, "url is not a valid URL");
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
        rc = tg_errf(err, TG_EINVAL, "url must not hold a user name or password");
    else if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) /* fe80::1%eth0: this machine's interface */
        rc = tg_errf(err, TG_EINVAL, "url's host must not name a network interface");
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL || host[0] == '\0')
        rc = tg_errf(err, TG_EINVAL, "url has no host");
    else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK || port == NULL)
        rc = tg_errf(err, TG_EINVAL, "url has no port");
    else if (target != NULL) {
        memset(target, 0, sizeof(*target));
        target->https = https;
        const char *h = host;
        size_t hl = strlen(h);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* IPv6 literal */
            h++;
            hl -= 2;
        }
        if (hl >= sizeof(target->host))
            rc = tg_errf(err, TG_EINVAL, "url's host is too long");
        else {
            memcpy(target->host, h, hl);
            target->host[hl] = '\0';
            /* a zone index (fe80::1%eth0) names an interface of this machine */
            if (strchr(target->host, '%') != NULL)
                rc = tg_errf(err, TG_EINVAL, "url's host must not name a network interface");
            char *end = NULL;
            long p = strtol(port, &end, 10);
            if (end == NULL || *end != '\0' || p < 1 || p > 65535)
                rc = tg_errf(err, TG_EINVAL, "url's port is not 1 to 65535");
            target->port = (int)p;
        }
    }
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(password);
    curl_free(zone);
    curl_url_cleanup(u);
    return rc;
}

/* Ranges never connected to unless allowed (IPv4 ones also match IPv4-mapped IPv6 addresses,
 * which tg_cidr_parse_addr reads as IPv4). */
static const char *const blocked[] = {
    "0.0.0.0/8",      "10.0.0.0/8",    "100.64.0.0/10",  "127.0.0.0/8",    "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24",   "192.0.2.0/24",  "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",  "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4",   "240.0.0.0/4",    "::/128",         "::1/128",        "::/96",
    "100::/64",       "2001:db8::/32", "2002::/16",      "fc00::/7",       "fe80::/10",      "fec0::/10",
    "ff00::/8",       "2001::/32",
};

/* NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits: judged as that address. */
static int nat64_v4(const tg_cidr_t *a, tg_cidr_t *v4)
{
    static const uint8_t pfx[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (!a->v6 || memcmp(a->addr, pfx, sizeof(pfx)) != 0)
        return 0;
    memset(v4, 0, sizeof(*v4));
    memcpy(v4->addr, a->addr + 12, 4);
    v4->prefix = 32;
    return 1;
}

static int is_blocked(const tg_cidr_t *a)
{
    for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
        tg_cidr_t r;
        if (tg_cidr_parse(blocked[i], &r) == 0 && tg_cidr_list_match(&r, 1, a))
            return 1;
    }
    return 0;
}

int tg_webhook_addr_allowed(const char *addr, const tg_cidr_t *allow, size_t nallow)
{
    tg_cidr_t a;
    if (addr == NULL || tg_cidr_parse_addr(addr, strlen(addr), &a) != 0)
        return 0;
    if (nallow > 0 && tg_cidr_list_match(allow, nallow, &a))
        return 1;
    tg_cidr_t v4;
    if (nat64_v4(&a, &v4))
        return !is_blocked(&v4) || (nallow > 0 && tg_cidr_list_match(allow, nallow, &v4));
    return !is_blocked(&a);
}
