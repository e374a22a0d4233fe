/* test_stripe_client.c - one call to Stripe (src/payments/stripe_client.c): how an answer is
 * classified (the pure rules: Stripe-Should-Retry, 409 lock vs idempotency_error, 429, 5xx,
 * other 4xx, no answer), Stripe's error object, and real calls through libcurl to a scripted
 * local server: the headers sent (Bearer key, the pinned Stripe-Version, Idempotency-Key on a
 * POST), the form body, and each outcome read off the wire. The backoff schedule is tested in
 * test_outbox.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <string.h>

#include "../support/tiny_http.h"
#include "payments/stripe_client.h"

static void test_classify(void **state)
{
    (void)state;
    /* no answer at all: the call may have run; the idempotency key makes a retry safe */
    assert_int_equal(tg_stripe_classify(0, -1, 1, ""), TG_STRIPE_RETRY);
    assert_int_equal(tg_stripe_classify(200, -1, 0, ""), TG_STRIPE_OK);
    assert_int_equal(tg_stripe_classify(201, 0, 0, ""), TG_STRIPE_OK); /* 2xx wins over the header */
    /* the header decides over the status */
    assert_int_equal(tg_stripe_classify(400, 1, 0, "invalid_request_error"), TG_STRIPE_RETRY);
    assert_int_equal(tg_stripe_classify(500, 0, 0, "api_error"), TG_STRIPE_PERMANENT);
    assert_int_equal(tg_stripe_classify(429, 0, 0, ""), TG_STRIPE_PERMANENT);
    /* 409: a concurrent request holds the key (lock_timeout) is retryable; the key used with
     * other parameters is not */
    assert_int_equal(tg_stripe_classify(409, -1, 0, "invalid_request_error"), TG_STRIPE_RETRY);
    assert_int_equal(tg_stripe_classify(409, -1, 0, "idempotency_error"), TG_STRIPE_PERMANENT);
    assert_int_equal(tg_stripe_classify(429, -1, 0, "rate_limit_error"), TG_STRIPE_RETRY);
    assert_int_equal(tg_stripe_classify(500, -1, 0, "api_error"), TG_STRIPE_RETRY);
    assert_int_equal(tg_stripe_classify(503, -1, 0, NULL), TG_STRIPE_RETRY);
    long permanent[] = {400, 401, 402, 403, 404, 422};
    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
        assert_int_equal(tg_stripe_classify(permanent[i], -1, 0, "invalid_request_error"), TG_STRIPE_PERMANENT);
}

static void test_parse_error(void **state)
{
    (void)state;
    json_t *b = json_loads("{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\","
                           "\"param\":\"customer\",\"message\":\"No such customer: 'cus_x'\","
                           "\"doc_url\":\"https://stripe.com/docs/error-codes/resource-missing\"}}",
                           0, NULL);
    tg_stripe_result_t r;
    memset(&r, 0, sizeof(r));
    tg_stripe_parse_error(b, &r);
    assert_string_equal(r.error_type, "invalid_request_error");
    assert_string_equal(r.error_code, "resource_missing");
    assert_string_equal(r.error_param, "customer");
    assert_string_equal(r.message, "No such customer: 'cus_x'");
    json_decref(b);
    /* no error object: nothing filled */
    memset(&r, 0, sizeof(r));
    b = json_loads("{\"error\":\"x\"}", 0, NULL);
    tg_stripe_parse_error(b, &r);
    assert_string_equal(r.error_type, "");
    json_decref(b);
}

static tg_stripe_settings_t settings(tiny_http_t *t, char *base, size_t cap)
{
    snprintf(base, cap, "http://127.0.0.1:%d/", t->port); /* the trailing slash is dropped */
    tg_stripe_settings_t s = {.secret_key = "sk_test_abc123", .api_base = base, .timeout_ms = 5000};
    return s;
}

static void test_post_sends_headers_and_form(void **state)
{
    (void)state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRequest-Id: req_123\r\n",
              "{\"id\":\"cus_S1\",\"object\":\"customer\"}");
    char base[64];
    tg_stripe_settings_t s = settings(&t, base, sizeof(base));
    tg_stripe_result_t r;
    tg_err_t err = {0};
    const char *form = "email=a%40b.co&metadata[tollgate_customer]=cus_1";
    assert_int_equal(
        tg_stripe_call(&s, "POST", "/v1/customers", form, strlen(form), "tg_customer.create_cus_1", &r, &err), 0);
    assert_int_equal(r.outcome, TG_STRIPE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.id, "cus_S1");
    assert_string_equal(r.request_id, "req_123");
    tg_stripe_result_clear(&r);
    tiny_stop(&t);
    const char *req = t.requests[0];
    assert_non_null(strstr(req, "POST /v1/customers HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "\r\nAuthorization: Bearer sk_test_abc123\r\n"));
    assert_non_null(strstr(req, "\r\nStripe-Version: " TG_STRIPE_VERSION "\r\n"));
    assert_non_null(strstr(req, "\r\nIdempotency-Key: tg_customer.create_cus_1\r\n"));
    assert_non_null(strstr(req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    assert_non_null(strstr(req, "\r\n\r\nemail=a%40b.co&metadata[tollgate_customer]=cus_1"));
}

static void test_post_needs_a_key(void **state)
{
    (void)state;
    tg_stripe_settings_t s = {.secret_key = "sk_test_abc", .api_base = "http://127.0.0.1:9", .timeout_ms = 1000};
    tg_stripe_result_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_call(&s, "POST", "/v1/customers", "", 0, NULL, &r, &err), TG_EINVAL);
    assert_int_equal(r.outcome, TG_STRIPE_PERMANENT); /* never "ok": the outbox must not mark it done */
    assert_int_equal(tg_stripe_call(&s, "POST", "/v1/customers", "", 0, "has space", &r, &err), TG_EINVAL);
    s.secret_key = "sk_test\r\nX: y"; /* no header injection through the key */
    assert_int_equal(tg_stripe_call(&s, "GET", "/v1/customers", "", 0, NULL, &r, &err), TG_EINVAL);
    tg_stripe_result_clear(&r);
}

typedef struct {
    const char *head, *body;
    tg_stripe_outcome_t outcome;
    int rc;
    long status;
    const char *type, *code, *in_message;
} outcome_case_t;

static void test_outcomes_on_the_wire(void **state)
{
    (void)state;
    static const outcome_case_t cases[] = {
        {"HTTP/1.1 429 Too Many Requests\r\n",
         "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\",\"message\":\"Too many requests\"}}",
         TG_STRIPE_RETRY, TG_EIO, 429, "invalid_request_error", "rate_limit", "Too many requests"},
        {"HTTP/1.1 500 Internal Server Error\r\nStripe-Should-Retry: false\r\n",
         "{\"error\":{\"type\":\"api_error\",\"message\":\"do not retry\"}}", TG_STRIPE_PERMANENT, TG_ESTATE, 500,
         "api_error", "", "do not retry"},
        {"HTTP/1.1 400 Bad Request\r\nstripe-should-retry: true\r\n",
         "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"try again\"}}", TG_STRIPE_RETRY, TG_EIO, 400,
         "invalid_request_error", "", "try again"},
        {"HTTP/1.1 409 Conflict\r\n",
         "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"lock_timeout\",\"message\":\"key in use\"}}",
         TG_STRIPE_RETRY, TG_EIO, 409, "invalid_request_error", "lock_timeout", "key in use"},
        {"HTTP/1.1 400 Bad Request\r\n",
         "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for idempotent requests\"}}",
         TG_STRIPE_PERMANENT, TG_ESTATE, 400, "idempotency_error", "", "Keys for idempotent"},
        {"HTTP/1.1 402 Payment Required\r\n",
         "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"param\":\"\",\"message\":\"Your card was "
         "declined.\"}}",
         TG_STRIPE_PERMANENT, TG_ESTATE, 402, "card_error", "card_declined", "declined"},
        /* 2xx that is not JSON: not Stripe; retried (the key replays) */
        {"HTTP/1.1 200 OK\r\n", "hello", TG_STRIPE_RETRY, TG_EIO, 200, "", "", "without a JSON"},
        /* the connection closes without an answer: "processed but the response was lost" */
        {NULL, NULL, TG_STRIPE_RETRY, TG_EIO, 0, "", "", "POST /v1/x"},
    };
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        tiny_push(&t, cases[i].head, cases[i].body);
    char base[64];
    tg_stripe_settings_t s = settings(&t, base, sizeof(base));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_stripe_result_t r;
        tg_err_t err = {0};
        int rc = tg_stripe_call(&s, "POST", "/v1/x", "a=1", 3, "tg_k", &r, &err);
        if (rc != cases[i].rc || r.outcome != cases[i].outcome || r.status != cases[i].status ||
            strcmp(r.error_type, cases[i].type) != 0 || strcmp(r.error_code, cases[i].code) != 0 ||
            strstr(err.msg, cases[i].in_message) == NULL)
            fail_msg("case %zu: rc %d outcome %d status %ld type \"%s\" code \"%s\" err \"%s\"", i, rc, r.outcome,
                     r.status, r.error_type, r.error_code, err.msg);
        tg_stripe_result_clear(&r);
    }
    tiny_stop(&t);
}

/* An error message that quotes the secret key (Stripe masks it; a proxy might not) is stored and
 * shown to the owner: the key is masked before it leaves the client. */
static void test_secret_key_masked_in_errors(void **state)
{
    (void)state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 401 Unauthorized\r\n",
              "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"api_key_invalid\","
              "\"message\":\"Invalid API Key provided: sk_test_abc123 (twice: sk_test_abc123)\"}}");
    char base[64];
    tg_stripe_settings_t s = settings(&t, base, sizeof(base));
    tg_stripe_result_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_call(&s, "POST", "/v1/customers", "a=1", 3, "tg_k", &r, &err), TG_ESTATE);
    tiny_stop(&t);
    assert_int_equal(r.outcome, TG_STRIPE_PERMANENT);
    assert_null(strstr(r.message, "sk_test_abc123"));
    assert_null(strstr(err.msg, "sk_test_abc123"));
    assert_string_equal(
        r.message,
        "Invalid API Key provided: sk_test******* (twice: sk_test*******)"); /* half of a short key at most */
    tg_stripe_result_clear(&r);
}

static void test_get_puts_the_form_in_the_query(void **state)
{
    (void)state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"data\":[],\"a\":1}");
    char base[64];
    tg_stripe_settings_t s = settings(&t, base, sizeof(base));
    /* a restricted key can be long: the configuration allows 1024 characters */
    static char long_key[1025];
    memset(long_key, 'k', 1024);
    memcpy(long_key, "rk_test_", 8);
    s.secret_key = long_key;
    tg_stripe_result_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_call(&s, "GET", "/v1/customers", "limit=3", 7, NULL, &r, &err), 0);
    tg_stripe_result_clear(&r);
    tiny_stop(&t);
    assert_non_null(strstr(t.requests[0], "GET /v1/customers?limit=3 HTTP/1.1\r\n"));
    assert_non_null(strstr(t.requests[0], "Authorization: Bearer rk_test_kkkk"));
    assert_null(strstr(t.requests[0], "Idempotency-Key"));
}

static void test_connection_refused_is_retryable(void **state)
{
    (void)state;
    tiny_http_t t; /* bound then closed: nothing listens on its port */
    assert_int_equal(tiny_start(&t), 0);
    tiny_stop(&t);
    char base[64];
    tg_stripe_settings_t s = settings(&t, base, sizeof(base));
    tg_stripe_result_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_call(&s, "POST", "/v1/customers", "", 0, "tg_k", &r, &err), TG_EIO);
    assert_int_equal(r.outcome, TG_STRIPE_RETRY);
    assert_int_equal(r.status, 0);
    tg_stripe_result_clear(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_parse_error),
        cmocka_unit_test(test_post_sends_headers_and_form),
        cmocka_unit_test(test_post_needs_a_key),
        cmocka_unit_test(test_outcomes_on_the_wire),
        cmocka_unit_test(test_get_puts_the_form_in_the_query),
        cmocka_unit_test(test_secret_key_masked_in_errors),
        cmocka_unit_test(test_connection_refused_is_retryable),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
