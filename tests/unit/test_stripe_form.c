/* test_stripe_form.c - Stripe's form encoding (src/payments/stripe_form.c): nested keys as
 * Stripe's own libraries write them (metadata[k], items[0][price]), percent-encoding by the form
 * rules (reserved characters, spaces, UTF-8 byte by byte), refusals (real numbers, brackets in
 * names, depth) and the size cap, with the form left as it was after any refusal. The outcome
 * classification of stripe_client.c is tested in test_stripe_client.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "payments/stripe_form.h"

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_PRESERVE_ORDER, &je);
    if (v == NULL)
        fail_msg("bad JSON in test: %s", je.text);
    return v;
}

static void test_flat_and_metadata(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    assert_string_equal(tg_form_data(&f, NULL), "");
    assert_int_equal(tg_form_add(&f, "email", "ada@example.com", &err), 0);
    assert_int_equal(tg_form_add(&f, "name", "Ada Lovelace", &err), 0);
    assert_int_equal(tg_form_add(&f, "metadata[tollgate_customer]", "cus_123", &err), 0);
    assert_int_equal(tg_form_add_int(&f, "amount", -1999, &err), 0);
    size_t len;
    const char *d = tg_form_data(&f, &len);
    assert_string_equal(d,
                        "email=ada%40example.com&name=Ada+Lovelace&metadata[tollgate_customer]=cus_123&amount=-1999");
    assert_int_equal(len, strlen(d));
    tg_form_free(&f);
}

static void test_reserved_characters(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    /* Every byte that means something in a form or a URL is escaped in a value, brackets too;
     * the four unreserved punctuation marks of the form rules are not. */
    assert_int_equal(tg_form_add(&f, "description", "a&b=c+d%e[f]g?h#i/j~k*l-m.n_o p", &err), 0);
    assert_string_equal(tg_form_data(&f, NULL), "description=a%26b%3Dc%2Bd%25e%5Bf%5Dg%3Fh%23i%2Fj%7Ek*l-m.n_o+p");
    tg_form_free(&f);

    char out[64];
    assert_int_equal(tg_form_encode("\n\r\t\"'", 5, 0, out, sizeof(out)), 15);
    assert_string_equal(out, "%0A%0D%09%22%27");
    /* too small a buffer: refused, "" */
    assert_int_equal(tg_form_encode("abc&", 4, 0, out, 6), (size_t)-1);
    assert_string_equal(out, "");
    assert_int_equal(tg_form_encode("a[b]", 4, 1, out, sizeof(out)), 4);
    assert_string_equal(out, "a[b]");
}

static void test_utf8(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    /* "Zoë Ünal €" : each byte of the UTF-8 sequence, uppercase hex */
    assert_int_equal(tg_form_add(&f, "name", "Zo\xc3\xab \xc3\x9cnal \xe2\x82\xac", &err), 0);
    /* a metadata key in UTF-8 keeps its brackets and escapes its bytes */
    assert_int_equal(tg_form_add(&f, "metadata[caf\xc3\xa9]", "1", &err), 0);
    assert_string_equal(tg_form_data(&f, NULL), "name=Zo%C3%AB+%C3%9Cnal+%E2%82%AC&metadata[caf%C3%A9]=1");
    tg_form_free(&f);
}

static void test_json_nesting_and_arrays(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    json_t *v = J("{\"customer\":\"cus_1\",\"collection_method\":\"charge_automatically\","
                  "\"metadata\":{\"tollgate_invoice\":\"inv_9\",\"n\":3},"
                  "\"items\":[{\"price\":\"price_a\",\"quantity\":2},{\"price\":\"price_b\"}],"
                  "\"expand\":[\"latest_invoice\",\"customer\"],"
                  "\"recurring\":{\"usage_type\":\"metered\",\"meter\":\"mtr_1\"},"
                  "\"auto_advance\":false,\"livemode\":true,\"description\":null}");
    assert_int_equal(tg_form_add_json(&f, NULL, v, &err), 0);
    assert_string_equal(tg_form_data(&f, NULL), "customer=cus_1&collection_method=charge_automatically"
                                                "&metadata[tollgate_invoice]=inv_9&metadata[n]=3"
                                                "&items[0][price]=price_a&items[0][quantity]=2&items[1][price]=price_b"
                                                "&expand[0]=latest_invoice&expand[1]=customer"
                                                "&recurring[usage_type]=metered&recurring[meter]=mtr_1"
                                                "&auto_advance=false&livemode=true&description=");
    json_decref(v);

    /* under a prefix, after fields added by name; an array of arrays */
    tg_form_free(&f);
    v = J("{\"tiers\":[{\"up_to\":1000,\"unit_amount\":0},{\"up_to\":\"inf\",\"unit_amount_decimal\":\"0.25\"}],"
          "\"m\":[[1,2],[3]]}");
    assert_int_equal(tg_form_add(&f, "currency", "usd", &err), 0);
    assert_int_equal(tg_form_add_json(&f, "price_data", v, &err), 0);
    assert_string_equal(tg_form_data(&f, NULL),
                        "currency=usd&price_data[tiers][0][up_to]=1000&price_data[tiers][0][unit_amount]=0"
                        "&price_data[tiers][1][up_to]=inf&price_data[tiers][1][unit_amount_decimal]=0.25"
                        "&price_data[m][0][0]=1&price_data[m][0][1]=2&price_data[m][1][0]=3");
    json_decref(v);
    tg_form_free(&f);
}

static void test_refusals_leave_the_form(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    assert_int_equal(tg_form_add(&f, "a", "1", &err), 0);
    const char *bad_json[] = {
        "{\"amount\":19.99}",                            /* money as a real */
        "{\"metadata\":{\"x[y]\":\"1\"}}",               /* a bracket in a member name */
        "{\"metadata\":{\"\":\"1\"}}",                   /* an empty member name */
        "{\"ok\":\"1\",\"deep\":[[[[[[[[[[1]]]]]]]]]]}", /* too deep: "ok" must not stay */
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        json_t *v = J(bad_json[i]);
        int rc = tg_form_add_json(&f, NULL, v, &err);
        json_decref(v);
        assert_int_equal(rc, TG_EINVAL);
        assert_true(err.msg[0] != '\0');
        assert_string_equal(tg_form_data(&f, NULL), "a=1");
    }
    /* a bare value needs a name */
    json_t *s = json_string("x");
    assert_int_equal(tg_form_add_json(&f, NULL, s, &err), TG_EINVAL);
    json_decref(s);
    /* malformed keys */
    const char *bad_keys[] = {"", "[a]", "a[", "a]", "a[b", "a[]", "a[b]c", "a[b][c"};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
        assert_int_equal(tg_form_add(&f, bad_keys[i], "v", &err), TG_EINVAL);
    assert_int_equal(tg_form_add(&f, "a[b][0][c]", "v", &err), 0);
    assert_string_equal(tg_form_data(&f, NULL), "a=1&a[b][0][c]=v");
    tg_form_free(&f);
}

static void test_cap(void **state)
{
    (void)state;
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 16);
    assert_int_equal(tg_form_add(&f, "a", "12345678", &err), 0);     /* "a=12345678": 10 */
    assert_int_equal(tg_form_add(&f, "b", "1234", &err), TG_ELIMIT); /* "&b=1234": 17 */
    assert_int_equal(tg_form_add(&f, "b", "123", &err), 0);          /* "&b=123": 16, the cap */
    assert_string_equal(tg_form_data(&f, NULL), "a=12345678&b=123");
    tg_form_free(&f);

    tg_form_init(&f, 16);
    assert_int_equal(tg_form_add(&f, "a", "12345", &err), 0);    /* "a=12345": 7 */
    assert_int_equal(tg_form_add(&f, "b", "12345", &err), 0);    /* "&b=12345": 15 */
    assert_int_equal(tg_form_add(&f, "c", "", &err), TG_ELIMIT); /* "&c=": 18 */
    assert_string_equal(tg_form_data(&f, NULL), "a=12345&b=12345");
    /* the encoded size counts: one "&" is three bytes */
    tg_form_free(&f);
    tg_form_init(&f, 8);
    assert_int_equal(tg_form_add(&f, "a", "&&x", &err), TG_ELIMIT); /* "a=%26%26x": 9 */
    assert_int_equal(tg_form_add(&f, "a", "&a", &err), 0);          /* "a=%26a": 6 */
    tg_form_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_and_metadata),
        cmocka_unit_test(test_reserved_characters),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_json_nesting_and_arrays),
        cmocka_unit_test(test_refusals_leave_the_form),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
