/* mail_template.h - the text and HTML of every email tollgate sends, and {{name}} substitution.
 *
 * A template has a name: a customer-facing event type ("invoice.paid", ...) or "confirm_email",
 * "reset_password". It is two files, NAME.txt and NAME.html; the first line of each is the
 * subject ("Subject: ..." or the whole line), the rest the body; the message's subject is the
 * one of NAME.txt. The built-in ones are C string tables in mail_template.c (so the binary
 * works from any directory); the owner's folder (email.templates) replaces them file by file.
 *
 * {{name}} takes the value `name` from a JSON object (a dotted path "a.b" reads nested
 * objects); strings as they are, numbers in decimal, true/false, anything else (missing, null,
 * an object) as nothing. In the HTML body the value is HTML-escaped; in the text body and the
 * subject never (the subject's control characters become spaces: the builder refuses line
 * breaks in a header). Pure apart from reading the override files; any thread. */
#ifndef TG_MAIL_TEMPLATE_H
#define TG_MAIL_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "util/err.h"

#define TG_MAIL_TEMPLATE_FILE_MAX (256 * 1024) /* an override file past this is refused */

typedef struct tg_mail_rendered {
    char *subject;
    char *text;
    char *html;
} tg_mail_rendered_t;

/* 1 when name is a template this build knows (only those may be read from the owner's folder). */
int tg_mail_template_known(const char *name);

/* The names, NULL-terminated (for docs and tests). */
const char *const *tg_mail_template_names(void);

/* Renders template `name` with vars (an object; NULL = no values) into *out (free it with
 * tg_mail_rendered_free, also after an error). dir: the owner's folder or NULL. Returns 0;
 * TG_ENOTFOUND for an unknown name; TG_EIO when an override file exists but cannot be read or
 * is larger than TG_MAIL_TEMPLATE_FILE_MAX; TG_ENOMEM. */
int tg_mail_template_render(const char *dir, const char *name, const json_t *vars, tg_mail_rendered_t *out,
                            tg_err_t *err);

void tg_mail_rendered_free(tg_mail_rendered_t *r);

/* {{name}} substitution of tmpl (exposed for the tests): html = 1 escapes & < > " '. Returns a
 * new string or NULL (ENOMEM). */
char *tg_mail_template_expand(const char *tmpl, const json_t *vars, int html);

#endif
