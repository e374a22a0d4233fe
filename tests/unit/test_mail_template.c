/* test_mail_template.c - src/notify/mail_template.c: every customer-facing event type and the two
 * account mails have a built-in template with a subject, a text and an HTML body; {{name}}
 * substitution (dotted paths, numbers, missing values) HTML-escapes in HTML only; the owner's
 * folder replaces a template file by file; only known names are read from the folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "notify/mail_template.h"

static const char *const required[] = {"usage.threshold_reached", "quota.exhausted", "budget.exceeded",
                                       "trial.will_end", "invoice.finalized", "invoice.paid",
                                       "invoice.payment_failed", "account.past_due", "account.suspended",
                                       "account.resumed", "key.created", "key.rotated", "key.revoked",
                                       "plan.changed", "confirm_email", "reset_password", NULL};

static void test_builtins(void **state)
{
    (void)state;
    json_t *vars = json_pack("{s:s, s:s, s:s, s:s}", "customer_name", "Ada", "portal_url",
                             "http://127.0.0.1:8081/portal/", "link", "http://x/confirm#token=abc", "customer_email",
                             "ada@example.org");
    for (size_t i = 0; required[i] != NULL; i++) {
        assert_true(tg_mail_template_known(required[i]));
        tg_mail_rendered_t r;
        tg_err_t err = {0};
        assert_int_equal(tg_mail_template_render(NULL, required[i], vars, &r, &err), 0);
        assert_true(strlen(r.subject) > 3);
        assert_null(strchr(r.subject, '\n'));
        assert_null(strstr(r.subject, "Subject:"));
        assert_non_null(strstr(r.text, "Hello Ada"));
        assert_non_null(strstr(r.html, "<p>Hello Ada,</p>"));
        assert_null(strstr(r.text, "{{"));
        assert_null(strstr(r.html, "{{"));
        /* a portal link or the token link in both parts */
        assert_true(strstr(r.text, "http://") != NULL && strstr(r.html, "href=\"http://") != NULL);
        tg_mail_rendered_free(&r);
    }
    int n = 0;
    for (const char *const *p = tg_mail_template_names(); *p != NULL; p++)
        n++;
    assert_int_equal(n, 16);
    assert_false(tg_mail_template_known("customer.created")); /* owner-only: no customer mail */
    assert_false(tg_mail_template_known("../etc/passwd"));
    tg_mail_rendered_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_mail_template_render(NULL, "../etc/passwd", vars, &r, &err), TG_ENOTFOUND);
    json_decref(vars);
}

static void test_expand(void **state)
{
    (void)state;
    json_t *vars = json_pack("{s:s, s:i, s:f, s:b, s:n, s:{s:s}}", "name", "<b>Tom & \"Jerry\"</b>", "n", 42, "x",
                             0.5, "t", 1, "z", "invoice", "number", "INV-7");
    char *s = tg_mail_template_expand("Hi {{name}}, {{ n }} {{x}} {{t}} [{{z}}] [{{missing}}] {{invoice.number}} "
                                      "{{not closed {{}} {{a b}}",
                                      vars, 0);
    assert_string_equal(s, "Hi <b>Tom & \"Jerry\"</b>, 42 0.5 true [] [] INV-7 {{not closed {{}} {{a b}}");
    free(s);
    s = tg_mail_template_expand("<p>{{name}}</p>", vars, 1);
    assert_string_equal(s, "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</p>");
    free(s);
    json_decref(vars);

    /* a value with a line break cannot break the subject out of its header line */
    vars = json_pack("{s:s}", "customer_name", "Eve\r\nBcc: victim@example.net");
    tg_mail_rendered_t r;
    tg_err_t err = {0};
    char dir[] = "/tmp/tg_tmpl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/key.created.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("Subject: Key for {{customer_name}}\nText {{customer_name}}\n", f);
    fclose(f);
    assert_int_equal(tg_mail_template_render(dir, "key.created", vars, &r, &err), 0);
    assert_null(strpbrk(r.subject, "\r\n"));
    assert_string_equal(r.text, "Text Eve\r\nBcc: victim@example.net\n"); /* the body is not a header */
    tg_mail_rendered_free(&r);
    unlink(path);
    rmdir(dir);
    json_decref(vars);
}

static void test_override(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg_tmpl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/invoice.paid.html", dir);
    FILE *f = fopen(path, "w");
    fputs("Subject: ignored for the message\n<h1>Paid: {{number}}</h1>\n", f);
    fclose(f);
    json_t *vars = json_pack("{s:s}", "number", "INV-<1>");
    tg_mail_rendered_t r;
    tg_err_t err = {0};
    assert_int_equal(tg_mail_template_render(dir, "invoice.paid", vars, &r, &err), 0);
    assert_string_equal(r.html, "<h1>Paid: INV-&lt;1&gt;</h1>\n");
    assert_string_equal(r.subject, "Payment received for invoice INV-<1>"); /* the built-in text file */
    assert_non_null(strstr(r.text, "invoice INV-<1>"));
    tg_mail_rendered_free(&r);
    /* a folder that exists without the file: the built-in one */
    assert_int_equal(tg_mail_template_render(dir, "invoice.finalized", vars, &r, &err), 0);
    assert_non_null(strstr(r.html, "INV-&lt;1&gt;"));
    tg_mail_rendered_free(&r);
    /* an unreadable override is an error, never a silent fallback */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_not_equal(tg_mail_template_render(dir, "invoice.paid", vars, &r, &err), 0);
    tg_mail_rendered_free(&r);
    rmdir(path);
    rmdir(dir);
    json_decref(vars);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
