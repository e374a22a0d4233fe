/* cidr.h - IPv4/IPv6 address ranges ("10.0.0.0/8", "fd00::/8", a bare address) and the client
 * address behind trusted reverse proxies.
 *
 * Pure: no I/O, no globals, any thread. IPv4-mapped IPv6 addresses (::ffff:10.1.2.3, what a dual-
 * stack socket reports for an IPv4 peer) match IPv4 ranges. */
#ifndef TG_CIDR_H
#define TG_CIDR_H

#include <stddef.h>
#include <stdint.h>

#define TG_CIDR_TEXT_MAX 64 /* an address or range as text, with its NUL */

typedef struct tg_cidr {
    int v6;           /* 0: addr[0..3] is IPv4 */
    uint8_t addr[16]; /* network order; host bits cleared */
    int prefix;       /* 0-32 or 0-128 */
} tg_cidr_t;

/* Parses "ADDR/PREFIX" or "ADDR" (a single host). Returns 0, or -1 when s is not a range (host
 * bits set beyond the prefix are an error too: "10.0.0.1/8" is most likely a typo). */
int tg_cidr_parse(const char *s, tg_cidr_t *out);

/* Parses an address (IPv4, IPv6, IPv4-mapped IPv6 becomes IPv4) into a /32 or /128 range.
 * Returns 0 or -1. Takes a length: header values are not NUL-terminated. */
int tg_cidr_parse_addr(const char *s, size_t len, tg_cidr_t *out);

/* 1 if addr (a host, from tg_cidr_parse_addr) lies in one of the n ranges. */
int tg_cidr_list_match(const tg_cidr_t *ranges, size_t n, const tg_cidr_t *addr);

/* The client's address for a request whose TCP peer is `peer` (text). When the peer is in
 * `trusted`, walks X-Forwarded-For (xff, comma-separated, all such headers joined) from the right,
 * skipping trusted addresses, and returns the first one that is not trusted (the right-most
 * untrusted: what the nearest trusted proxy saw); without X-Forwarded-For, the same over the
 * `for=` parameters of Forwarded (RFC 7239). An entry that is not an address stops the walk at the
 * last trusted one. Otherwise (peer not trusted, or no header) the peer itself. Writes the
 * address as text into out (cap bytes, at least TG_CIDR_TEXT_MAX) and returns 1 if it came from
 * a header, 0 if it is the peer. */
int tg_client_addr(const char *peer, const tg_cidr_t *trusted, size_t ntrusted, const char *xff, size_t xff_len,
                   const char *forwarded, size_t forwarded_len, char *out, size_t cap);

#endif
