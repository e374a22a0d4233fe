/* fuzz_mail.c - the message builder and the template substitution against arbitrary values
 * (libFuzzer). The input is split at 0x01 bytes into a display name, a subject, a recipient and a
 * body (values customers control end up in each). Properties: a value with CR or LF in a header
 * field is refused (TG_EINVAL), never built; a built message has CRLF line ends only, every line
 * at most 998 characters and every body line at most 76 (quoted-printable), exactly one From, To
 * and Subject, and every header line is a known field or a folded continuation, so no value can
 * add a header; {{v}} in HTML never lets '<', '>' or '"' of a value through, and in text gives the
 * value back unchanged. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify/mail.h"
#include "notify/mail_template.h"

static int starts(const char *line, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(line, lit, l) == 0;
}

static void check_message(const char *m, size_t len)
{
    int from = 0, to = 0, subject = 0, in_head = 1;
    size_t i = 0;
    while (i < len) {
        const char *eol = memchr(m + i, '\n', len - i);
        if (eol == NULL || eol == m + i || eol[-1] != '\r')
            abort(); /* every line ends with CRLF */
        size_t n = (size_t)(eol - (m + i)) - 1;
        const char *line = m + i;
        if (memchr(line, '\r', n) != NULL || n > 998)
            abort();
        if (in_head && n == 0) {
            in_head = 0;
        } else if (in_head) {
            from += starts(line, n, "From: ");
            to += starts(line, n, "To: ");
            subject += starts(line, n, "Subject: ");
            if (!(starts(line, n, "From: ") || starts(line, n, "To: ") || starts(line, n, "Subject: ") ||
                  starts(line, n, "Date: ") || starts(line, n, "Message-ID: ") || starts(line, n, "MIME-Version: ") ||
                  starts(line, n, "Content-Type: ") || starts(line, n, "Content-Transfer-Encoding: ") ||
                  line[0] == ' '))
                abort();
        } else if (n > 76 && !starts(line, n, "Content-Type: ")) {
            abort(); /* quoted-printable keeps body lines short */
        }
        i = (size_t)(eol - m) + 1;
    }
    if (from != 1 || to != 1 || subject != 1 || in_head)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *part[4] = {buf, "", "a@example.org", ""};
    char *p = buf;
    for (int k = 1; k < 4; k++) {
        char *sep = strchr(p, '\x01');
        if (sep == NULL)
            break;
        *sep = '\0';
        part[k] = p = sep + 1;
    }
    char from[600];
    snprintf(from, sizeof(from), "%.200s <billing@example.com>", part[0]);
    tg_mail_msg_t m = {.from = from,
                       .to = part[2],
                       .subject = part[1],
                       .text = part[3],
                       .html = part[3],
                       .date = 0,
                       .message_id = "<x@example.com>",
                       .boundary = "=_tg_fuzz"};
    char *out = NULL;
    size_t len = 0;
    tg_err_t err = {0};
    int rc = tg_mail_build(&m, &out, &len, &err);
    int breaks = strpbrk(from, "\r\n") != NULL || strpbrk(part[1], "\r\n") != NULL || strpbrk(part[2], "\r\n") != NULL;
    if (breaks && rc != TG_EINVAL)
        abort();
    if (rc == 0) {
        if (out == NULL || strlen(out) != len)
            abort();
        check_message(out, len);
    } else if (out != NULL || (rc != TG_EINVAL && rc != TG_ELIMIT && rc != TG_ENOMEM)) {
        abort();
    }
    free(out);

    json_t *vars = json_object();
    json_t *v = json_stringn(part[3], strlen(part[3]));
    if (vars != NULL && v != NULL) {
        json_object_set_new(vars, "v", v);
        char *h = tg_mail_template_expand("<p>{{v}}</p>", vars, 1);
        if (h != NULL) {
            size_t hl = strlen(h);
            if (hl < 7 || memcmp(h, "<p>", 3) != 0 || strcmp(h + hl - 4, "</p>") != 0)
                abort();
            for (size_t k = 3; k < hl - 4; k++)
                if (h[k] == '<' || h[k] == '>' || h[k] == '"')
                    abort(); /* a value never brings markup */
        }
        free(h);
        char *t = tg_mail_template_expand("{{v}}", vars, 0);
        if (t != NULL && strcmp(t, part[3]) != 0)
            abort(); /* text is never escaped */
        free(t);
    } else {
        json_decref(v);
    }
    json_decref(vars);
    free(buf);
    return 0;
}
