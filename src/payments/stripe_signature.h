/* stripe_signature.h - verifying a Stripe webhook's Stripe-Signature header, as Stripe documents
 * it (https://docs.stripe.com/webhooks#verify-manually).
 *
 * The header is "t=TIMESTAMP,v1=HEX[,v1=HEX...]" (other schemes, such as v0, are ignored). The
 * signed text is "{t}.{raw body}": the timestamp exactly as written in the header, a dot and the
 * body's bytes as received (never a re-serialisation of its JSON). The signature is
 * HMAC-SHA256 keyed with the endpoint secret - the whole "whsec_..." string - in lower-case
 * hex. Any v1 matching any configured secret passes (secrets are rolled by listing two).
 *
 * Pure: no I/O, no clock (the caller passes now), no allocation; any thread. */
#ifndef TG_STRIPE_SIGNATURE_H
#define TG_STRIPE_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_STRIPE_SIG_TOLERANCE_S 300 /* Stripe's default tolerance */
#define TG_STRIPE_SIG_HEADER_MAX 4096 /* longer headers are refused as malformed */
#define TG_STRIPE_SIG_MAX_V1 16       /* more v1 entries are refused as malformed */

typedef enum tg_stripe_sig_result {
    TG_STRIPE_SIG_OK = 0,
    TG_STRIPE_SIG_MISSING = 1,   /* no header, or an empty one */
    TG_STRIPE_SIG_MALFORMED = 2, /* no t, a t that is not a number, no v1, too long */
    TG_STRIPE_SIG_MISMATCH = 3,  /* no v1 is the HMAC of this body with any secret */
    TG_STRIPE_SIG_STALE = 4,     /* a valid signature, but t is more than tolerance_s from now */
} tg_stripe_sig_result_t;

/* Checks `header` (header_len bytes; NULL = absent) against body with each of the nsecrets
 * NUL-terminated secrets, at wall time now_s (seconds), accepting |now_s - t| <= tolerance_s.
 * The signature is checked before the time, so STALE means "signed with our secret, but old".
 * Every comparison is constant-time in the signature's bytes. On anything but OK, err (may be
 * NULL) gets a sentence for the sender; it never quotes a secret or an expected signature.
 * *t_out (may be NULL) receives t when it parsed. */
tg_stripe_sig_result_t tg_stripe_signature_verify(const char *const *secrets, size_t nsecrets, const char *header,
                                                  size_t header_len, const char *body, size_t body_len, int64_t now_s,
                                                  int64_t tolerance_s, int64_t *t_out, tg_err_t *err);

/* The error type an adapter answers for r: "missing_signature", "malformed_signature",
 * "invalid_signature", "stale_signature" (or "ok"). */
const char *tg_stripe_sig_result_type(tg_stripe_sig_result_t r);

#endif
