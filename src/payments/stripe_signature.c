/* stripe_signature.c - Stripe-Signature verification (see stripe_signature.h).
 *
 * libsodium does the cryptography: crypto_auth_hmacsha256 (streamed, so "{t}.{body}" is never
 * copied into one buffer) and sodium_memcmp for the constant-time comparison; sodium_hex2bin
 * decodes each v1. Parsing follows the header's grammar only: pairs separated by ',', each
 * "key=value"; exactly one t; v1 entries collected; anything else skipped. */
#include "payments/stripe_signature.h"

#include <sodium.h>
#include <string.h>

typedef struct parsed {
    const char *t;
    size_t t_len;
    int64_t t_value;
    const char *v1[TG_STRIPE_SIG_MAX_V1];
    size_t v1_len[TG_STRIPE_SIG_MAX_V1];
    size_t nv1;
} parsed_t;

static int parse_time(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 12) /* seconds: 12 digits reach the year 33658 */
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static tg_stripe_sig_result_t parse(const char *h, size_t n, parsed_t *p, tg_err_t *err)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && h[end] != ',')
            end++;
        const char *item = h + i;
        size_t len = end - i;
        while (len > 0 && (*item == ' ' || *item == '\t')) {
            item++;
            len--;
        }
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        const char *eq = memchr(item, '=', len);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - item), vlen = len - klen - 1;
            if (klen == 1 && item[0] == 't') {
                if (p->t != NULL) {
                    tg_errf(err, TG_EINVAL, "The Stripe-Signature header has more than one t=.");
                    return TG_STRIPE_SIG_MALFORMED;
                }
                p->t = eq + 1;
                p->t_len = vlen;
            } else if (klen == 2 && item[0] == 'v' && item[1] == '1') {
                if (p->nv1 == TG_STRIPE_SIG_MAX_V1) {
                    tg_errf(err, TG_EINVAL, "The Stripe-Signature header has more than %d v1 signatures.",
                            TG_STRIPE_SIG_MAX_V1);
                    return TG_STRIPE_SIG_MALFORMED;
                }
                p->v1[p->nv1] = eq + 1;
                p->v1_len[p->nv1++] = vlen;
            } /* other schemes (v0, ...) are ignored, as Stripe's libraries do */
        }
        i = end + 1;
    }
    if (p->t == NULL || parse_time(p->t, p->t_len, &p->t_value) != 0) {
        tg_errf(err, TG_EINVAL, "The Stripe-Signature header has no valid timestamp (t=<seconds>).");
        return TG_STRIPE_SIG_MALFORMED;
    }
    if (p->nv1 == 0) {
        tg_errf(err, TG_EINVAL, "The Stripe-Signature header has no v1 signature.");
        return TG_STRIPE_SIG_MALFORMED;
    }
    return TG_STRIPE_SIG_OK;
}

tg_stripe_sig_result_t tg_stripe_signature_verify(const char *const *secrets, size_t nsecrets, const char *header,
                                                  size_t header_len, const char *body, size_t body_len, int64_t now_s,
                                                  int64_t tolerance_s, int64_t *t_out, tg_err_t *err)
{
    if (header == NULL || header_len == 0) {
        tg_errf(err, TG_EINVAL, "No Stripe-Signature header: only Stripe's signed webhooks are accepted here.");
        return TG_STRIPE_SIG_MISSING;
    }
    if (header_len > TG_STRIPE_SIG_HEADER_MAX) {
        tg_errf(err, TG_EINVAL, "The Stripe-Signature header is longer than %d bytes.", TG_STRIPE_SIG_HEADER_MAX);
        return TG_STRIPE_SIG_MALFORMED;
    }
    parsed_t p;
    tg_stripe_sig_result_t r = parse(header, header_len, &p, err);
    if (r != TG_STRIPE_SIG_OK)
        return r;
    if (t_out != NULL)
        *t_out = p.t_value;
    uint8_t given[TG_STRIPE_SIG_MAX_V1][crypto_auth_hmacsha256_BYTES];
    int decoded[TG_STRIPE_SIG_MAX_V1] = {0}; /* every entry below p.nv1 is set; zero keeps the rest (and cppcheck) defined */
    for (size_t j = 0; j < p.nv1; j++) {
        size_t bin_len = 0;
        decoded[j] = p.v1_len[j] == 2 * crypto_auth_hmacsha256_BYTES &&
                     sodium_hex2bin(given[j], sizeof(given[j]), p.v1[j], p.v1_len[j], NULL, &bin_len, NULL) == 0 &&
                     bin_len == crypto_auth_hmacsha256_BYTES;
    }
    int match = 0;
    for (size_t i = 0; i < nsecrets; i++) {
        crypto_auth_hmacsha256_state st;
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)secrets[i], strlen(secrets[i]));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)p.t, p.t_len);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
        crypto_auth_hmacsha256_final(&st, mac);
        for (size_t j = 0; j < p.nv1; j++)
            match |= decoded[j] && sodium_memcmp(mac, given[j], sizeof(mac)) == 0;
        sodium_memzero(&st, sizeof(st));
        sodium_memzero(mac, sizeof(mac));
    }
    if (!match) {
        tg_errf(err, TG_EINVAL,
                "No v1 signature in Stripe-Signature matches this body with the configured webhook secret%s.",
                nsecrets == 1 ? "" : "s");
        return TG_STRIPE_SIG_MISMATCH;
    }
    int64_t age = now_s - p.t_value;
    if (age > tolerance_s || age < -tolerance_s) {
        tg_errf(err, TG_EINVAL, "The Stripe-Signature timestamp is %lld s %s now; at most %lld s are accepted.",
                (long long)(age < 0 ? -age : age), age < 0 ? "ahead of" : "behind", (long long)tolerance_s);
        return TG_STRIPE_SIG_STALE;
    }
    return TG_STRIPE_SIG_OK;
}

const char *tg_stripe_sig_result_type(tg_stripe_sig_result_t r)
{
    switch (r) {
    case TG_STRIPE_SIG_OK:
        return "ok";
    case TG_STRIPE_SIG_MISSING:
        return "missing_signature";
    case TG_STRIPE_SIG_MALFORMED:
        return "malformed_signature";
    case TG_STRIPE_SIG_MISMATCH:
        return "invalid_signature";
    case TG_STRIPE_SIG_STALE:
        return "stale_signature";
    }
    return "invalid_signature";
}
