/* tls.c - see tls.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "h2o.h"
#include "http/tls.h"

/* OpenSSL's reason for the last failure, and the queue cleared (it is per thread). */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, cap, "unknown OpenSSL error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

static void harden(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2: forward-secret AEAD suites only (TLS 1.3's defaults are all of that kind) */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
}

int tg_tls_server_ctx(const char *certificate, const char *key, SSL_CTX **out, tg_err_t *err)
{
    char why[256];
    /* fopen-level problems get errno's sentence, not OpenSSL's "system lib" */
    const char *files[2] = {certificate, key};
    for (int i = 0; i < 2; i++)
        if (access(files[i], R_OK) != 0)
            return tg_errf(err, TG_EIO, "cannot read %s: %s", files[i], strerror(errno));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return tg_errf(err, TG_ENOMEM, "cannot create a TLS context: %s", ssl_reason(why, sizeof(why)));
    harden(ctx);
    int rc = 0;
    /* the key is read on its own first, so "not a key" and "not this certificate's key" differ */
    BIO *bio = BIO_new_file(key, "r");
    EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (SSL_CTX_use_certificate_chain_file(ctx, certificate) != 1)
        rc = tg_errf(err, TG_ECONFIG, "%s is not a PEM certificate chain: %s", certificate, ssl_reason(why, sizeof(why)));
    else if (pkey == NULL)
        rc = tg_errf(err, TG_ECONFIG, "%s is not a PEM private key: %s", key, ssl_reason(why, sizeof(why)));
    else if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        rc = tg_errf(err, TG_ECONFIG, "the key in %s does not match the certificate in %s: %s", key, certificate,
                     ssl_reason(why, sizeof(why)));
    EVP_PKEY_free(pkey); /* the context holds its own reference */
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    /* ALPN: h2o's server-side selection, with http/1.1 the only protocol offered */
    static const h2o_iovec_t alpn[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};
    h2o_ssl_register_alpn_protocols(ctx, alpn);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tollgate", 8);
    *out = ctx;
    return 0;
}

/* Info callback of the client context of an IP address upstream: RFC 6066 3 forbids a literal
 * IP address in server_name, and h2o 2.2's h2o_socket_ssl_handshake sets the name it is given
 * on every client SSL (NULL there means "be the server"). HANDSHAKE_START runs inside the
 * first SSL_connect, before the ClientHello is built, so clearing the name here keeps the
 * extension out. The name to verify is in the context's X509_VERIFY_PARAM, not in SNI, so the
 * IP SAN is still checked. */
static void on_ip_client_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if (where & SSL_CB_HANDSHAKE_START)
        SSL_set_tlsext_host_name((SSL *)ssl, NULL); /* NULL: frees and clears the name */
}

int tg_tls_client_ctx(const char *ca_file, const char *host, SSL_CTX **out, tg_err_t *err)
{
    char why[256];
    if (ca_file != NULL && access(ca_file, R_OK) != 0)
        return tg_errf(err, TG_EIO, "cannot read %s: %s", ca_file, strerror(errno));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return tg_errf(err, TG_ENOMEM, "cannot create a TLS context: %s", ssl_reason(why, sizeof(why)));
    harden(ctx);
    int rc = 0;
    if (ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(ctx) != 1)
        rc = tg_errf(err, TG_ECONFIG, "cannot load the CA certificates%s%s: %s", ca_file != NULL ? " of " : "",
                     ca_file != NULL ? ca_file : "", ssl_reason(why, sizeof(why)));
    /* The upstream is one fixed host, so the name to check belongs to the context: OpenSSL
     * then checks it during verification, for DNS names and IP addresses alike (h2o 2.2's own
     * check after the handshake knows DNS names only). */
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (rc == 0 && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1
                          : X509_VERIFY_PARAM_set1_host(param, host, 0) != 1))
        rc = tg_errf(err, TG_ECONFIG, "cannot set the upstream name %s for verification: %s", host,
                     ssl_reason(why, sizeof(why)));
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip)
        SSL_CTX_set_info_callback(ctx, on_ip_client_info);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    *out = ctx;
    return 0;
}
