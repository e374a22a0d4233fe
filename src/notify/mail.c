/* mail.c - MIME building and SMTP sending (see mail.h).
 *
 * The message is built in one capped buffer. Bodies are quoted-printable: the templates are
 * mostly ASCII text with a few non-ASCII characters, where QP stays readable in a raw dump and
 * never produces a line that starts with the boundary ("=" is always encoded, and every boundary
 * we use contains "=_"). Header values are checked for CR/LF before anything is written:
 * refusing is the only safe answer to a value that would add header fields. */
#include "notify/mail.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a capped growable buffer ---- */

typedef struct buf {
    char *p;
    size_t n, cap;
    int failed; /* 1: out of memory, 2: past TG_MAIL_MAX_BYTES */
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > TG_MAIL_MAX_BYTES || b->n + n > TG_MAIL_MAX_BYTES) {
        b->failed = 2;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Returns the string (the caller frees it) or NULL after freeing, when anything failed. */
static char *take(buf_t *b, size_t *len)
{
    if (b->failed || b->p == NULL) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    if (len != NULL)
        *len = b->n;
    return b->p;
}

/* ---- checks ---- */

int tg_mail_addr_ok(const char *s, size_t n)
{
    if (s == NULL || n < 3 || n > TG_MAIL_ADDR_MAX)
        return 0;
    const char *at = memchr(s, '@', n);
    if (at == NULL || at == s || at == s + n - 1 || memchr(at + 1, '@', (size_t)(s + n - at - 1)) != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>(),;:\\[]", c) != NULL)
            return 0;
    }
    return 1;
}

static int has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int boundary_ok(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > 60)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("'()+_,-./:=?", c) != NULL))
            return 0;
    }
    return 1;
}

/* ---- encodings ---- */

char *tg_mail_qp(const char *s, size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_t b = {0};
    size_t col = 0;
    put(&b, "", 0);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && !b.failed; p++) {
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) {
            if (*p == '\r')
                p++;
            put(&b, "\r\n", 2);
            col = 0;
            continue;
        }
        char tok[3];
        size_t tl;
        int at_eol = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        if ((*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !at_eol)) {
            tok[0] = (char)*p;
            tl = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[*p >> 4];
            tok[2] = hex[*p & 15];
            tl = 3;
        }
        /* 76 characters at most, the soft break's "=" included */
        if (col + tl > 75) {
            put(&b, "=\r\n", 3);
            col = 0;
        }
        put(&b, tok, tl);
        col += tl;
    }
    return take(&b, out_len);
}

static int printable_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return strstr(s, "=?") == NULL; /* would read as an encoded word */
}

/* The length of the UTF-8 sequence that starts with c (1 for a stray byte: it is sent as is,
 * inside base64, never split further). */
static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

#define EW_RAW 36 /* 48 base64 characters: "=?UTF-8?B?" + 48 + "?=" = 60, under RFC 2047's 75 */

char *tg_mail_encode_header(const char *s)
{
    buf_t b = {0};
    put(&b, "", 0);
    if (printable_ascii(s)) {
        puts_(&b, s);
        return take(&b, NULL);
    }
    size_t n = strlen(s), i = 0;
    while (i < n && !b.failed) {
        size_t j = i;
        while (j < n) {
            size_t l = utf8_len((unsigned char)s[j]);
            if (j + l > n)
                l = n - j;
            if (j - i + l > EW_RAW)
                break;
            j += l;
        }
        char b64[sodium_base64_ENCODED_LEN(EW_RAW, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)s + i, j - i, sodium_base64_VARIANT_ORIGINAL);
        if (i > 0)
            put(&b, "\r\n ", 3);
        puts_(&b, "=?UTF-8?B?");
        puts_(&b, b64);
        puts_(&b, "?=");
        i = j;
    }
    return take(&b, NULL);
}

/* A display name as a phrase: atoms as is, other printable ASCII as a quoted-string, anything
 * else as encoded words. */
static int put_display_name(buf_t *b, const char *name, size_t n)
{
    char *copy = strndup(name, n);
    if (copy == NULL)
        return TG_ENOMEM;
    int plain = printable_ascii(copy), atoms = 1;
    for (size_t i = 0; i < n; i++)
        if (!((copy[i] >= 'a' && copy[i] <= 'z') || (copy[i] >= 'A' && copy[i] <= 'Z') ||
              (copy[i] >= '0' && copy[i] <= '9') || strchr(" !#$%&'*+-/=?^_`{|}~", copy[i]) != NULL))
            atoms = 0;
    if (plain && atoms) {
        puts_(b, copy);
    } else if (plain) {
        put(b, "\"", 1);
        for (size_t i = 0; i < n; i++) {
            if (copy[i] == '"' || copy[i] == '\\')
                put(b, "\\", 1);
            put(b, copy + i, 1);
        }
        put(b, "\"", 1);
    } else {
        char *enc = tg_mail_encode_header(copy);
        if (enc == NULL) {
            free(copy);
            return TG_ENOMEM;
        }
        puts_(b, enc);
        free(enc);
    }
    free(copy);
    return 0;
}

static void put_date(buf_t *b, int64_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    char s[64];
    if (gmtime_r(&tt, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    snprintf(s, sizeof(s), "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    puts_(b, s);
}

static void put_part(buf_t *b, const char *boundary, const char *type, const char *qp)
{
    puts_(b, "--");
    puts_(b, boundary);
    puts_(b, "\r\nContent-Type: ");
    puts_(b, type);
    puts_(b, "; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    puts_(b, qp);
    puts_(b, "\r\n");
}

int tg_mail_build(const tg_mail_msg_t *m, char **out, size_t *out_len, tg_err_t *err)
{
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    const struct {
        const char *name, *value;
    } fields[] = {{"From", m->from}, {"To", m->to}, {"Subject", m->subject}, {"Message-ID", m->message_id}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (fields[i].value == NULL) {
            if (i == 3)
                continue; /* Message-ID is optional */
            return tg_errf(err, TG_EINVAL, "%s: missing", fields[i].name);
        }
        if (has_line_break(fields[i].value))
            return tg_errf(err, TG_EINVAL, "%s: contains a line break (CR or LF), refused (header injection)",
                           fields[i].name);
    }
    if (!tg_mail_addr_ok(m->to, strlen(m->to)))
        return tg_errf(err, TG_EINVAL, "To: not an address this server sends to");
    if (strlen(m->subject) > TG_MAIL_SUBJECT_MAX)
        return tg_errf(err, TG_EINVAL, "Subject: longer than %d bytes", TG_MAIL_SUBJECT_MAX);
    const char *lt = strchr(m->from, '<');
    const char *addr = lt != NULL ? lt + 1 : m->from;
    size_t alen = lt != NULL ? strcspn(addr, ">") : strlen(addr);
    if (!tg_mail_addr_ok(addr, alen) || (lt != NULL && strcmp(addr + alen, ">") != 0))
        return tg_errf(err, TG_EINVAL, "From: not \"Name <address>\" or an address");
    if (m->text == NULL)
        return tg_errf(err, TG_EINVAL, "the text body is missing");
    if (m->html != NULL && (m->boundary == NULL || !boundary_ok(m->boundary)))
        return tg_errf(err, TG_EINVAL, "the multipart boundary is missing or malformed");

    char *text_qp = tg_mail_qp(m->text, NULL), *html_qp = m->html != NULL ? tg_mail_qp(m->html, NULL) : NULL;
    if (text_qp == NULL || (m->html != NULL && html_qp == NULL)) {
        free(text_qp);
        free(html_qp);
        return tg_errf(err, TG_ELIMIT, "a body is larger than %d bytes once encoded", TG_MAIL_MAX_BYTES);
    }
    if (m->html != NULL && (strstr(text_qp, m->boundary) != NULL || strstr(html_qp, m->boundary) != NULL)) {
        free(text_qp);
        free(html_qp);
        return tg_errf(err, TG_EINVAL, "the multipart boundary occurs in a body");
    }

    buf_t b = {0};
    int rc = 0;
    puts_(&b, "From: ");
    if (lt != NULL) {
        size_t nl = (size_t)(lt - m->from);
        while (nl > 0 && m->from[nl - 1] == ' ')
            nl--;
        if (nl > 0) {
            rc = put_display_name(&b, m->from, nl);
            put(&b, " ", 1);
        }
    }
    put(&b, "<", 1);
    put(&b, addr, alen);
    puts_(&b, ">\r\nTo: <");
    puts_(&b, m->to);
    puts_(&b, ">\r\nSubject: ");
    char *subject = tg_mail_encode_header(m->subject);
    if (subject == NULL)
        rc = TG_ENOMEM;
    else
        puts_(&b, subject);
    free(subject);
    puts_(&b, "\r\nDate: ");
    put_date(&b, m->date);
    puts_(&b, "\r\n");
    if (m->message_id != NULL) {
        puts_(&b, "Message-ID: ");
        puts_(&b, m->message_id);
        puts_(&b, "\r\n");
    }
    puts_(&b, "MIME-Version: 1.0\r\n");
    if (m->html != NULL) {
        puts_(&b, "Content-Type: multipart/alternative; boundary=\"");
        puts_(&b, m->boundary);
        puts_(&b, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n");
        put_part(&b, m->boundary, "text/plain", text_qp);
        put_part(&b, m->boundary, "text/html", html_qp);
        puts_(&b, "--");
        puts_(&b, m->boundary);
        puts_(&b, "--\r\n");
    } else {
        puts_(&b, "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
        puts_(&b, text_qp);
        puts_(&b, "\r\n");
    }
    free(text_qp);
    free(html_qp);
    int failed = b.failed;
    *out = take(&b, out_len);
    if (rc != 0 || *out == NULL) {
        free(*out);
        *out = NULL;
        if (failed == 2)
            return tg_errf(err, TG_ELIMIT, "the message is larger than %d bytes", TG_MAIL_MAX_BYTES);
        return tg_errf(err, TG_ENOMEM, "out of memory building a message");
    }
    return 0;
}

/* ---- sending ---- */

tg_mail_outcome_t tg_mail_classify(int curl_code, long smtp_code)
{
    if (curl_code == CURLE_OK && (smtp_code < 400 || smtp_code > 599))
        return TG_MAIL_SENT;
    if (curl_code == CURLE_LOGIN_DENIED)
        return TG_MAIL_RETRY; /* the credentials are the owner's to fix; the mail waits for them */
    if (smtp_code >= 500 && smtp_code <= 599)
        return TG_MAIL_PERMANENT;
    return TG_MAIL_RETRY;
}

typedef struct upload {
    const char *p;
    size_t len, off;
} upload_t;

static size_t on_read(char *dst, size_t size, size_t nitems, void *userdata)
{
    upload_t *u = userdata;
    size_t room = size * nitems, n = u->len - u->off;
    if (n > room)
        n = room;
    memcpy(dst, u->p + u->off, n);
    u->off += n;
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return *(const _Atomic int *)clientp != 0; /* non-zero aborts the transfer */
}

int tg_mail_send(const tg_mail_server_t *s, const char *from_addr, const char *to, const char *msg, size_t len,
                 long *smtp_code, tg_err_t *err)
{
    if (smtp_code != NULL)
        *smtp_code = 0;
    if (!tg_mail_addr_ok(from_addr, strlen(from_addr)) || !tg_mail_addr_ok(to, strlen(to)))
        return tg_errf(err, TG_EINVAL, "the sender or the recipient is not an address this server sends to");
    char from_path[TG_MAIL_ADDR_MAX + 3], to_path[TG_MAIL_ADDR_MAX + 3];
    snprintf(from_path, sizeof(from_path), "<%s>", from_addr);
    snprintf(to_path, sizeof(to_path), "<%s>", to);
    CURL *h = curl_easy_init();
    struct curl_slist *rcpt = curl_slist_append(NULL, to_path);
    if (h == NULL || rcpt == NULL) {
        curl_easy_cleanup(h);
        curl_slist_free_all(rcpt);
        return tg_errf(err, TG_ENOMEM, "out of memory starting an SMTP session");
    }
    long timeout = s->timeout_ms > 0 ? s->timeout_ms : 30000;
    upload_t up = {msg, len, 0};
    char curl_msg[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_path);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    if (s->starttls)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (s->username != NULL) {
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password != NULL ? s->password : "");
    }
    if (s->cancel != NULL) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)s->cancel);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);
    if (smtp_code != NULL)
        *smtp_code = code;
    switch (tg_mail_classify((int)rc, code)) {
    case TG_MAIL_SENT:
        return 0;
    case TG_MAIL_PERMANENT:
        return tg_errf(err, TG_ESTATE, "SMTP refused the message for good (reply %ld): %s", code,
                       curl_msg[0] != '\0' ? curl_msg : curl_easy_strerror(rc));
    default:
        return tg_errf(err, TG_EIO, "SMTP: %s (reply %ld); will retry", curl_msg[0] != '\0' ? curl_msg : curl_easy_strerror(rc),
                       code);
    }
}
