/* test_stripe_signature.c - Stripe-Signature verification against vectors made by the official
 * stripe npm package (stripe.webhooks.generateTestHeaderString, stripe 23.2.0), and every way a
 * header can be wrong. The integration test tests/integration/stripe_webhooks.test.mjs signs
 * fresh events with the same package and sends them to the real binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "payments/stripe_signature.h"

/* generateTestHeaderString({payload: BODY, secret: "whsec_unit_test_secret", timestamp: 1764720000}) */
#define BODY "{\n  \"id\": \"evt_test_1\",\n  \"object\": \"event\",\n  \"type\": \"invoice.paid\"\n}"
#define T 1764720000
#define SIG_MAIN "3441ed29c6aa81eb42b46b46d34448e9a0161da4cf199b3e4533f51f6616a971"
/* the same with secret "whsec_rolled_secret" */
#define SIG_ROLLED "896c1de1218453694a463298e916f8fc9d969ac049d7215e1d799c56a7b759c7"

static const char *const main_only[] = {"whsec_unit_test_secret"};
static const char *const both[] = {"whsec_rolled_secret", "whsec_unit_test_secret"};

static tg_stripe_sig_result_t verify(const char *const *secrets, size_t n, const char *header, const char *body,
                                     int64_t now, tg_err_t *err)
{
    return tg_stripe_signature_verify(secrets, n, header, header != NULL ? strlen(header) : 0, body, strlen(body), now,
                                      TG_STRIPE_SIG_TOLERANCE_S, NULL, err);
}

static void test_reference_vectors(void **state)
{
    (void)state;
    tg_err_t err = {0};
    int64_t t = 0;
    const char *h = "t=1764720000,v1=" SIG_MAIN;
    assert_int_equal(tg_stripe_signature_verify(main_only, 1, h, strlen(h), BODY, strlen(BODY), T, 300, &t, &err),
                     TG_STRIPE_SIG_OK);
    assert_int_equal(t, T);
    /* Rolling secrets: either configured secret passes. */
    assert_int_equal(verify(both, 2, "t=1764720000,v1=" SIG_ROLLED, BODY, T, &err), TG_STRIPE_SIG_OK);
    assert_int_equal(verify(both, 2, h, BODY, T, &err), TG_STRIPE_SIG_OK);
    /* Several v1 (Stripe sends one per active secret), other schemes ignored, spaces tolerated. */
    assert_int_equal(verify(main_only, 1, "t=1764720000,v1=" SIG_ROLLED ",v1=" SIG_MAIN ",v0=abc", BODY, T, &err),
                     TG_STRIPE_SIG_OK);
    assert_int_equal(verify(main_only, 1, "v0=deadbeef, t=1764720000 , v1=" SIG_MAIN, BODY, T, &err),
                     TG_STRIPE_SIG_OK);
    /* Upper-case hex decodes to the same bytes. */
    char upper[] = "t=1764720000,v1=" SIG_MAIN;
    for (char *p = upper + 16; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(verify(main_only, 1, upper, BODY, T, &err), TG_STRIPE_SIG_OK);
}

static void test_tolerance(void **state)
{
    (void)state;
    tg_err_t err = {0};
    const char *h = "t=1764720000,v1=" SIG_MAIN;
    assert_int_equal(verify(main_only, 1, h, BODY, T + 300, &err), TG_STRIPE_SIG_OK);
    assert_int_equal(verify(main_only, 1, h, BODY, T - 300, &err), TG_STRIPE_SIG_OK);
    assert_int_equal(verify(main_only, 1, h, BODY, T + 301, &err), TG_STRIPE_SIG_STALE);
    assert_non_null(strstr(err.msg, "301 s behind now"));
    assert_int_equal(verify(main_only, 1, h, BODY, T - 301, &err), TG_STRIPE_SIG_STALE);
    assert_non_null(strstr(err.msg, "ahead of now"));
    /* A stale header with a wrong signature is a mismatch: the signature is checked first. */
    assert_int_equal(verify(main_only, 1, "t=1764720000,v1=" SIG_ROLLED, BODY, T + 9999, &err), TG_STRIPE_SIG_MISMATCH);
}

static void test_refusals(void **state)
{
    (void)state;
    tg_err_t err = {0};
    const char *h = "t=1764720000,v1=" SIG_MAIN;
    /* A tampered body: one byte changed, one added, one removed. */
    assert_int_equal(verify(main_only, 1, h, "{\n  \"id\": \"evt_test_2\",\n  \"object\": \"event\",\n  \"type\": \"invoice.paid\"\n}", T, &err),
                     TG_STRIPE_SIG_MISMATCH);
    assert_int_equal(verify(main_only, 1, h, BODY " ", T, &err), TG_STRIPE_SIG_MISMATCH);
    assert_int_equal(tg_stripe_signature_verify(main_only, 1, h, strlen(h), BODY, strlen(BODY) - 1, T, 300, NULL, &err),
                     TG_STRIPE_SIG_MISMATCH);
    /* The JSON re-serialised (compact) is not what was signed. */
    assert_int_equal(verify(main_only, 1, h, "{\"id\":\"evt_test_1\",\"object\":\"event\",\"type\":\"invoice.paid\"}", T, &err),
                     TG_STRIPE_SIG_MISMATCH);
    assert_non_null(strstr(err.msg, "No v1 signature"));
    assert_null(strstr(err.msg, "whsec_")); /* never quotes a secret */
    /* A wrong secret. */
    static const char *const other[] = {"whsec_someone_else"};
    assert_int_equal(verify(other, 1, h, BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    /* The timestamp is signed: moving it breaks the signature. */
    assert_int_equal(verify(main_only, 1, "t=1764720001,v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    assert_int_equal(verify(main_only, 1, "t=01764720000,v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    /* Missing and malformed headers. */
    assert_int_equal(verify(main_only, 1, NULL, BODY, T, &err), TG_STRIPE_SIG_MISSING);
    assert_int_equal(verify(main_only, 1, "", BODY, T, &err), TG_STRIPE_SIG_MISSING);
    assert_int_equal(verify(main_only, 1, "v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=1764720000", BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=1764720000,v0=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=-5,v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=17647e0000,v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=1,t=1764720000,v1=" SIG_MAIN, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    assert_int_equal(verify(main_only, 1, "t=1764720000,v1=" SIG_MAIN "00", BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    assert_int_equal(verify(main_only, 1, "t=1764720000,v1=zz", BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    /* Caps: 17 v1 entries, an over-long header. */
    char many[2048];
    size_t used = (size_t)snprintf(many, sizeof(many), "t=1764720000");
    for (int i = 0; i < 17; i++)
        used += (size_t)snprintf(many + used, sizeof(many) - used, ",v1=" SIG_ROLLED);
    assert_int_equal(verify(main_only, 1, many, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    static char huge[TG_STRIPE_SIG_HEADER_MAX + 2];
    memset(huge, 'a', sizeof(huge) - 1);
    assert_int_equal(verify(main_only, 1, huge, BODY, T, &err), TG_STRIPE_SIG_MALFORMED);
    /* No secret configured: nothing passes. */
    assert_int_equal(verify(main_only, 0, h, BODY, T, &err), TG_STRIPE_SIG_MISMATCH);
    assert_string_equal(tg_stripe_sig_result_type(TG_STRIPE_SIG_STALE), "stale_signature");
    assert_string_equal(tg_stripe_sig_result_type(TG_STRIPE_SIG_MISMATCH), "invalid_signature");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_tolerance),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
