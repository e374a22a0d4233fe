/* webhook_url.h - what a webhook endpoint's URL may be, and which addresses a delivery may
 * connect to (the SSRF guard). Pure: no I/O (name resolution is the caller's), any thread.
 *
 * At creation a URL is refused when it is plainly bad: not http(s) (http only with
 * notifications.allow_http), user information in it, a control character or space, longer than
 * TG_WEBHOOK_URL_MAX - 1, no host. At delivery, every address the host resolves to is checked:
 * loopback, private (RFC 1918, fc00::/7), link-local, CGNAT (100.64.0.0/10), multicast,
 * unspecified, reserved and documentation ranges are refused, IPv4-mapped and NAT64 IPv6
 * addresses as the IPv4 address they carry, unless an allow-list range
 * (notifications.allow_private_networks) holds the address. */
#ifndef TG_NOTIFY_WEBHOOK_URL_H
#define TG_NOTIFY_WEBHOOK_URL_H

#include <stddef.h>
#include <sys/socket.h>

#include "util/cidr.h"
#include "util/err.h"

#define TG_WEBHOOK_HOST_MAX 256

typedef struct tg_webhook_target {
    int https;
    char host[TG_WEBHOOK_HOST_MAX]; /* without IPv6 brackets */
    int port;
} tg_webhook_target_t;

/* 0, or TG_EINVAL with the reason in err. target (may be NULL) gets the scheme, host and port. */
int tg_webhook_url_check(const char *url, int allow_http, tg_webhook_target_t *target, tg_err_t *err);

/* 1 if a delivery may connect to addr (text, as inet_ntop writes it): a public address, or one
 * in allow[0..nallow). */
int tg_webhook_addr_allowed(const char *addr, const tg_cidr_t *allow, size_t nallow);

#endif
