/* tls.h - OpenSSL contexts for tollgate's listeners and for https:// upstreams (src/http/tls.c).
 *
 * Both sides use h2o's socket layer for the handshake and the records
 * (h2o_socket_ssl_handshake); this module only builds the SSL_CTX: TLS 1.2 and 1.3 only,
 * ALPN "http/1.1" (tollgate serves HTTP/1.1 alone, docs/api.md), no compression, no
 * renegotiation. Internal to src/http/. Runs on whichever thread calls it; a context, once
 * built, is read-only and shared by every loop (OpenSSL's SSL_CTX is thread-safe for SSL_new). */
#ifndef TG_TLS_H
#define TG_TLS_H

#include <openssl/ssl.h>

#include "util/err.h"

/* A server context for a listener: `certificate` is a PEM chain (leaf first), `key` its private
 * key. Errors (TG_EIO unreadable, TG_ECONFIG not PEM or the key does not match the leaf) name
 * the file and OpenSSL's reason. On success *out is owned by the caller (SSL_CTX_free). */
int tg_tls_server_ctx(const char *certificate, const char *key, SSL_CTX **out, tg_err_t *err);

/* A client context for the upstream `host`: the peer's chain is verified against `ca_file`
 * (PEM, NULL: the system's store) and its certificate must name `host` (a DNS name, or an IP
 * address matched against the IP SANs); a failure ends the handshake with an error. SNI carries
 * a DNS name only: for an IP address no server_name is sent (RFC 6066 3). */
int tg_tls_client_ctx(const char *ca_file, const char *host, SSL_CTX **out, tg_err_t *err);

#endif
