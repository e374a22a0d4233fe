/* test_mail.c - the message builder of src/notify/mail.c: header fields and their encodings
 * (RFC 2047 encoded words split on whole UTF-8 characters, quoted display names), the
 * multipart/alternative structure with CRLF everywhere, quoted-printable bodies (76-character
 * lines, "=" and trailing blanks encoded), refusal of CR/LF in every header value (header
 * injection) naming the field, and the classification of SMTP outcomes (4xx and no answer are
 * retried, 5xx is final). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "notify/mail.h"

static tg_mail_msg_t base_msg(void)
{
    return (tg_mail_msg_t){.from = "API billing <billing@example.com>",
                           .to = "ada@example.org",
                           .subject = "Confirm your address",
                           .text = "Hello Ada,\nopen the link.\n",
                           .html = "<p>Hello Ada,</p>\n<p>open the link.</p>\n",
                           .date = 1796331600, /* 2026-12-03 21:00:00 UTC, a Thursday */
                           .message_id = "<m1.abc@example.com>",
                           .boundary = "=_tg_0123456789abcdef"};
}

/* Every line ends with CRLF and no bare CR or LF is left. */
static void assert_crlf_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
        if (s[i] == '\r')
            assert_true(i + 1 < n && s[i + 1] == '\n');
    }
}

/* The header block: everything before the first empty line. */
static char *headers_of(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    return strndup(msg, (size_t)(end - msg) + 2);
}

static void test_structure(void **state)
{
    (void)state;
    tg_mail_msg_t m = base_msg();
    char *out;
    size_t len;
    tg_err_t err = {0};
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    assert_int_equal(strlen(out), len);
    assert_crlf_only(out, len);
    char *h = headers_of(out);
    assert_non_null(strstr(h, "From: API billing <billing@example.com>\r\n"));
    assert_non_null(strstr(h, "To: <ada@example.org>\r\n"));
    assert_non_null(strstr(h, "Subject: Confirm your address\r\n"));
    assert_non_null(strstr(h, "Date: Thu, 03 Dec 2026 21:00:00 +0000\r\n"));
    assert_non_null(strstr(h, "Message-ID: <m1.abc@example.com>\r\n"));
    assert_non_null(strstr(h, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(h, "Content-Type: multipart/alternative; boundary=\"=_tg_0123456789abcdef\"\r\n"));
    free(h);
    /* two parts, text first (RFC 2046: the last alternative is the preferred one), then the end */
    const char *t = strstr(out, "--=_tg_0123456789abcdef\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\nHello Ada,\r\nopen the link.\r\n");
    const char *hp = strstr(out, "--=_tg_0123456789abcdef\r\nContent-Type: text/html; charset=UTF-8\r\n");
    const char *end = strstr(out, "\r\n--=_tg_0123456789abcdef--\r\n");
    assert_non_null(t);
    assert_non_null(hp);
    assert_non_null(end);
    assert_true(t < hp && hp < end);
    assert_string_equal(end + strlen("\r\n--=_tg_0123456789abcdef--\r\n"), "");
    free(out);

    /* text only: a single part */
    m.html = NULL;
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    assert_null(strstr(out, "multipart"));
    assert_non_null(strstr(out, "Content-Type: text/plain; charset=UTF-8\r\n"));
    free(out);
}

static void test_encoded_words(void **state)
{
    (void)state;
    /* a plain ASCII subject is written as is; one with "=?" is encoded (it would be decoded) */
    char *s = tg_mail_encode_header("Invoice paid");
    assert_string_equal(s, "Invoice paid");
    free(s);
    s = tg_mail_encode_header("=?UTF-8?B?SGk=?=");
    assert_true(strncmp(s, "=?UTF-8?B?", 10) == 0);
    free(s);

    /* non-ASCII: base64 words of whole characters, each at most 75 characters, folded */
    const char *subj = "Votre facture est payée — merci, Zoë! Ünïcödé ääääääääääääää €€€€€€€€€€€€";
    s = tg_mail_encode_header(subj);
    assert_non_null(s);
    char decoded[512] = "";
    size_t dl = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *w = strtok_r(copy, "\r\n ", &save); w != NULL; w = strtok_r(NULL, "\r\n ", &save)) {
        size_t wl = strlen(w);
        assert_true(wl <= 75);
        assert_true(strncmp(w, "=?UTF-8?B?", 10) == 0);
        assert_string_equal(w + wl - 2, "?=");
        unsigned char bin[128];
        size_t bl;
        assert_int_equal(sodium_base642bin(bin, sizeof(bin), w + 10, wl - 12, NULL, &bl, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
        /* each word decodes to whole UTF-8 characters: it does not end inside a sequence */
        size_t k = bl;
        while (k > 0 && (bin[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && bin[k - 1] >= 0xC0) {
            size_t need = bin[k - 1] >= 0xF0 ? 4 : bin[k - 1] >= 0xE0 ? 3 : 2;
            assert_int_equal(bl - (k - 1), need);
        }
        memcpy(decoded + dl, bin, bl);
        dl += bl;
    }
    decoded[dl] = '\0';
    assert_string_equal(decoded, subj);
    assert_non_null(strstr(s, "?=\r\n =?UTF-8?B?")); /* long enough to be folded */
    free(copy);
    free(s);

    /* a non-ASCII display name in From is an encoded word too; a name with specials is quoted */
    tg_mail_msg_t m = base_msg();
    m.from = "Zoë's Billing <billing@example.com>";
    char *out;
    size_t len;
    tg_err_t err = {0};
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    assert_non_null(strstr(out, "From: =?UTF-8?B?"));
    assert_non_null(strstr(out, "?= <billing@example.com>\r\n"));
    free(out);
    m.from = "Billing, Inc. <billing@example.com>";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    assert_non_null(strstr(out, "From: \"Billing, Inc.\" <billing@example.com>\r\n"));
    free(out);
    m.from = "billing@example.com";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    assert_non_null(strstr(out, "From: <billing@example.com>\r\n"));
    free(out);
}

static void test_quoted_printable(void **state)
{
    (void)state;
    size_t n;
    char *q = tg_mail_qp("a=b caf\xc3\xa9 \nend\t\r\nx", &n);
    assert_string_equal(q, "a=3Db caf=C3=A9=20\r\nend=09\r\nx");
    assert_int_equal(n, strlen(q));
    free(q);
    /* a long line is cut with soft breaks into lines of at most 76 characters; decoding gives it back */
    char longline[400];
    memset(longline, 'x', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    longline[100] = '=';
    q = tg_mail_qp(longline, &n);
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '\r') {
            assert_true(col <= 76);
            col = 0;
            i++;
        } else {
            col++;
        }
    }
    assert_true(col <= 76);
    char back[400];
    size_t bl = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '=' && q[i + 1] == '\r') {
            i += 2;
        } else if (q[i] == '=') {
            back[bl++] = (char)strtol((char[]){q[i + 1], q[i + 2], 0}, NULL, 16);
            i += 2;
        } else {
            back[bl++] = q[i];
        }
    }
    back[bl] = '\0';
    assert_string_equal(back, longline);
    free(q);
}

/* A CR or LF in any header value is refused, naming the field; nothing is built. */
static void test_header_injection(void **state)
{
    (void)state;
    char *out = (char *)1;
    size_t len;
    tg_err_t err = {0};
    tg_mail_msg_t m = base_msg();
    m.subject = "Hello\r\nBcc: victim@example.net";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err.msg, "Subject"));
    m = base_msg();
    m.subject = "Hello\nX-Injected: 1";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    m = base_msg();
    m.to = "ada@example.org\r\nBcc: victim@example.net";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "To"));
    m = base_msg();
    m.from = "Billing\r\nBcc: x@y.z <billing@example.com>";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "From"));
    m = base_msg();
    m.message_id = "<a@b>\rX: y";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "Message-ID"));
    /* addresses that would break out of <...> or an SMTP command */
    m = base_msg();
    m.to = "ada@example.org>, <victim@example.net";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    m.to = "a da@example.org";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    assert_false(tg_mail_addr_ok("no-at-sign", 10));
    assert_false(tg_mail_addr_ok("a@b@c", 5));
    assert_true(tg_mail_addr_ok("a.b+c@d.example", 15));
    /* a body that holds the boundary is refused (it would end the part early) */
    m = base_msg();
    m.boundary = "plainboundary";
    m.text = "x\n--plainboundary--\n";
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    /* the subject's cap keeps its header line within RFC 5322's 998 characters */
    char subj[TG_MAIL_SUBJECT_MAX + 2];
    memset(subj, 's', sizeof(subj) - 1);
    subj[sizeof(subj) - 1] = '\0';
    m = base_msg();
    m.subject = subj;
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_EINVAL);
    subj[TG_MAIL_SUBJECT_MAX] = '\0';
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), 0);
    for (const char *l = out; l != NULL && *l != '\0';) {
        const char *e = strstr(l, "\r\n");
        assert_non_null(e);
        assert_true(e - l <= 998);
        l = e + 2;
    }
    free(out);
    /* the body cap */
    m = base_msg();
    char *big = malloc(TG_MAIL_MAX_BYTES);
    memset(big, '=', TG_MAIL_MAX_BYTES - 1);
    big[TG_MAIL_MAX_BYTES - 1] = '\0';
    m.text = big;
    assert_int_equal(tg_mail_build(&m, &out, &len, &err), TG_ELIMIT);
    assert_null(out);
    free(big);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(tg_mail_classify(CURLE_OK, 250), TG_MAIL_SENT);
    assert_int_equal(tg_mail_classify(CURLE_COULDNT_CONNECT, 0), TG_MAIL_RETRY);
    assert_int_equal(tg_mail_classify(CURLE_OPERATION_TIMEDOUT, 0), TG_MAIL_RETRY);
    assert_int_equal(tg_mail_classify(CURLE_SEND_ERROR, 451), TG_MAIL_RETRY);
    assert_int_equal(tg_mail_classify(CURLE_WEIRD_SERVER_REPLY, 421), TG_MAIL_RETRY);
    assert_int_equal(tg_mail_classify(CURLE_SEND_ERROR, 550), TG_MAIL_PERMANENT);
    assert_int_equal(tg_mail_classify(CURLE_RECV_ERROR, 554), TG_MAIL_PERMANENT);
    assert_int_equal(tg_mail_classify(CURLE_LOGIN_DENIED, 535), TG_MAIL_RETRY);
}

/* Sending to a port nothing listens on is a RETRY (TG_EIO), not a failure for good. */
static void test_send_refused(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tg_mail_server_t s = {.url = "smtp://127.0.0.1:1", .timeout_ms = 5000};
    tg_err_t err = {0};
    long code = -1;
    const char *msg = "Subject: x\r\n\r\nbody\r\n";
    assert_int_equal(tg_mail_send(&s, "billing@example.com", "ada@example.org", msg, strlen(msg), &code, &err),
                     TG_EIO);
    assert_int_equal(code, 0);
    assert_int_equal(tg_mail_send(&s, "billing@example.com", "ada@example.org>\r\nRCPT TO:<x@y.z", msg, strlen(msg),
                                  &code, &err),
                     TG_EINVAL);
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),       cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_quoted_printable), cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_classify),        cmocka_unit_test(test_send_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
