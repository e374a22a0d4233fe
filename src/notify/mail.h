/* mail.h - one email message: building it (RFC 5322 + MIME) and sending it over SMTP (libcurl).
 *
 * tg_mail_build is pure (no I/O, no clock: the caller passes the date and the random parts), so
 * the unit tests check its bytes. It writes what libcurl does not: the header fields (From, To,
 * Subject as an RFC 2047 encoded word when it is not plain ASCII, Date, Message-ID,
 * MIME-Version), a multipart/alternative body with a text/plain and a text/html part, each
 * quoted-printable, CRLF line ends throughout. Dot-stuffing and the final "." are libcurl's.
 * A header value holding CR or LF is refused with TG_EINVAL naming the field: values come from
 * customers (a name, an address) and a line break there would add header fields.
 *
 * tg_mail_send blocks for up to its timeout: call it from the mail sender thread, never from an
 * event loop. curl_global_init must have run (main does it before starting threads). */
#ifndef TG_MAIL_H
#define TG_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_MAIL_MAX_BYTES (1024 * 1024)  /* a built message past this is refused */
#define TG_MAIL_ADDR_MAX 254            /* RFC 5321's path limit, less the brackets */
#define TG_MAIL_SUBJECT_MAX 900 /* bytes before encoding: "Subject: " and it stay under RFC 5322's 998 */

typedef struct tg_mail_msg {
    const char *from;       /* "Display Name <addr@host>" or "addr@host" (the config's email.from) */
    const char *to;         /* one addr-spec */
    const char *subject;    /* UTF-8 */
    const char *text;       /* UTF-8 plain-text body (\n or \r\n line ends) */
    const char *html;       /* UTF-8 HTML body; NULL: a single text/plain message */
    int64_t date;           /* Unix seconds, written in UTC */
    const char *message_id; /* "<...@host>" stable across retries; NULL: none written */
    const char *boundary;   /* the multipart boundary: 1-60 of [A-Za-z0-9'()+_,-./:=?], not in any body */
} tg_mail_msg_t;

/* 1 when s (n bytes) is an address this module sends to: local@domain, printable ASCII without
 * spaces, quotes, angle brackets, commas, semicolons, colons, backslashes or brackets, at most
 * TG_MAIL_ADDR_MAX bytes. Deliberately stricter than RFC 5321: it goes into an SMTP command and a
 * header unquoted. */
int tg_mail_addr_ok(const char *s, size_t n);

/* Builds the message into *out (NUL-terminated, *out_len bytes without the NUL; the caller frees
 * it). Returns 0; TG_EINVAL when a field is missing or malformed (a header value with CR or LF, a
 * bad address, a bad boundary; err names the field), TG_ELIMIT past TG_MAIL_MAX_BYTES,
 * TG_ENOMEM. On error *out is NULL. */
int tg_mail_build(const tg_mail_msg_t *m, char **out, size_t *out_len, tg_err_t *err);

/* Quoted-printable (RFC 2045 6.7) of a UTF-8 text: line ends become CRLF, lines are at most 76
 * characters (soft breaks "=" CRLF), '=' and bytes outside printable ASCII are =XX, a space or
 * tab before a line end is encoded. Appended to nothing: returns a new string or NULL (ENOMEM or
 * past TG_MAIL_MAX_BYTES). Exposed for the tests. */
char *tg_mail_qp(const char *s, size_t *out_len);

/* An unstructured header value (Subject, a display name): as is when it is printable ASCII,
 * else RFC 2047 encoded words "=?UTF-8?B?...?=" of whole UTF-8 characters, each at most 75
 * characters, separated by CRLF SP (folding). Returns a new string or NULL. */
char *tg_mail_encode_header(const char *s);

typedef struct tg_mail_server {
    const char *url;           /* smtp://host:port or smtps://host:port */
    const char *username;      /* NULL: no AUTH */
    const char *password;
    int starttls;              /* 1: CURLUSESSL_ALL (STARTTLS required) */
    long timeout_ms;           /* whole exchange; 0: 30 s */
    const _Atomic int *cancel; /* NULL, or a flag that cuts a send short once non-zero (shutdown) */
} tg_mail_server_t;

typedef enum tg_mail_outcome {
    TG_MAIL_SENT = 0,
    TG_MAIL_RETRY = 1,     /* no answer, a 4xx reply, a dropped connection: try again later */
    TG_MAIL_PERMANENT = 2, /* a 5xx reply (an unknown recipient, a refused sender): retrying gives the same */
} tg_mail_outcome_t;

/* What an exchange's end means (pure): curl_code is the CURLcode, smtp_code the server's last
 * reply code (0 when none arrived). OK with no 5xx -> SENT; a 5xx reply -> PERMANENT except 5xx to
 * AUTH (535: the owner fixes the password, the mail waits); everything else -> RETRY. */
tg_mail_outcome_t tg_mail_classify(int curl_code, long smtp_code);

/* Sends msg (len bytes, as built by tg_mail_build) from envelope sender from_addr to to.
 * Blocks up to the timeout. Returns 0 when the server accepted it; TG_EIO for RETRY, TG_ESTATE
 * for PERMANENT, TG_EINVAL for a bad address (nothing sent), TG_ENOMEM. *smtp_code (may be NULL)
 * gets the server's last reply code (0 when none); err gets a sentence naming curl's error and
 * the reply code. The password never appears in err. */
int tg_mail_send(const tg_mail_server_t *s, const char *from_addr, const char *to, const char *msg, size_t len,
                 long *smtp_code, tg_err_t *err);

#endif
