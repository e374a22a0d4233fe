/* mail_template.c - built-in templates, owner overrides, {{name}} substitution (see
 * mail_template.h).
 *
 * The built-ins are C strings rather than files read at run time so that the binary needs
 * nothing beside it (`make run` from any directory, a container with the binary alone). Their
 * text is the file format an owner's override uses: a subject line, then the body. */
#include "notify/mail_template.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct builtin {
    const char *name;
    const char *text; /* "Subject: ...\n" + body */
    const char *html;
} builtin_t;

static const builtin_t builtins[] = {
    {"confirm_email",
     "Subject: Confirm your email address\n"
     "Hello {{customer_name}},\n"
     "\n"
     "please confirm that {{customer_email}} is your address by opening this link:\n"
     "\n"
     "{{link}}\n"
     "\n"
     "The link works once and expires in 24 hours. If you did not sign up, ignore this message.\n"
     "",
     "Subject: Confirm your email address\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>please confirm that <b>{{customer_email}}</b> is your address:</p>\n"
     "<p><a href=\"{{link}}\">Confirm my address</a></p>\n"
     "<p>The link works once and expires in 24 hours. If you did not sign up, ignore this message.</p>\n"
     "</body></html>\n"
     ""},
    {"reset_password",
     "Subject: Reset your password\n"
     "Hello {{customer_name}},\n"
     "\n"
     "someone (we hope you) asked to reset the password of {{customer_email}}. Choose a new one here:\n"
     "\n"
     "{{link}}\n"
     "\n"
     "The link works once and expires in one hour; using it signs out every session. If you did not ask, ignore this message: your password stays as it is.\n"
     "",
     "Subject: Reset your password\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>someone (we hope you) asked to reset the password of <b>{{customer_email}}</b>.</p>\n"
     "<p><a href=\"{{link}}\">Choose a new password</a></p>\n"
     "<p>The link works once and expires in one hour; using it signs out every session. If you did not ask, ignore this message: your password stays as it is.</p>\n"
     "</body></html>\n"
     ""},
    {"usage.threshold_reached",
     "Subject: You have used {{threshold_percent}}% of your {{metric_name}} allowance\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your usage of {{metric_name}} reached {{threshold_percent}}% of the allowance included in your plan this period ({{used_text}} of {{included_text}}).\n"
     "\n"
     "See your usage: {{portal_url}}app.html#usage\n"
     "",
     "Subject: You have used {{threshold_percent}}% of your {{metric_name}} allowance\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your usage of <b>{{metric_name}}</b> reached <b>{{threshold_percent}}%</b> of the allowance included in your plan this period ({{used_text}} of {{included_text}}).</p>\n"
     "<p><a href=\"{{portal_url}}app.html#usage\">See your usage</a></p>\n"
     "</body></html>\n"
     ""},
    {"quota.exhausted",
     "Subject: Your {{metric_name}} quota is used up\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your plan's allowance of {{metric_name}} for this period is used up: calls are refused until the period ends or you change plans.\n"
     "\n"
     "Change plan: {{portal_url}}app.html#plan\n"
     "",
     "Subject: Your {{metric_name}} quota is used up\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your plan's allowance of <b>{{metric_name}}</b> for this period is used up: calls are refused until the period ends or you change plans.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#plan\">Change plan</a></p>\n"
     "</body></html>\n"
     ""},
    {"budget.exceeded",
     "Subject: Your estimated bill passed your budget\n"
     "Hello {{customer_name}},\n"
     "\n"
     "the estimated bill for this period ({{estimate_text}}) passed the budget you set ({{budget_text}}).\n"
     "\n"
     "See your usage: {{portal_url}}app.html#usage\n"
     "",
     "Subject: Your estimated bill passed your budget\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>the estimated bill for this period (<b>{{estimate_text}}</b>) passed the budget you set ({{budget_text}}).</p>\n"
     "<p><a href=\"{{portal_url}}app.html#usage\">See your usage</a></p>\n"
     "</body></html>\n"
     ""},
    {"trial.will_end",
     "Subject: Your trial ends on {{trial_end}}\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your trial of the {{plan}} plan ends on {{trial_end}}. After that the plan's price applies.\n"
     "\n"
     "Your account: {{portal_url}}app.html#billing\n"
     "",
     "Subject: Your trial ends on {{trial_end}}\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your trial of the <b>{{plan}}</b> plan ends on <b>{{trial_end}}</b>. After that the plan's price applies.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#billing\">Your account</a></p>\n"
     "</body></html>\n"
     ""},
    {"invoice.finalized",
     "Subject: Your invoice {{number}}\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your invoice {{number}} for {{total_text}} is ready.\n"
     "\n"
     "See it: {{portal_url}}app.html#invoices\n"
     "",
     "Subject: Your invoice {{number}}\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your invoice <b>{{number}}</b> for <b>{{total_text}}</b> is ready.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#invoices\">See it</a></p>\n"
     "</body></html>\n"
     ""},
    {"invoice.paid",
     "Subject: Payment received for invoice {{number}}\n"
     "Hello {{customer_name}},\n"
     "\n"
     "thank you: invoice {{number}} ({{total_text}}) is paid.\n"
     "\n"
     "Your invoices: {{portal_url}}app.html#invoices\n"
     "",
     "Subject: Payment received for invoice {{number}}\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>thank you: invoice <b>{{number}}</b> ({{total_text}}) is paid.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#invoices\">Your invoices</a></p>\n"
     "</body></html>\n"
     ""},
    {"invoice.payment_failed",
     "Subject: Payment failed for invoice {{number}}\n"
     "Hello {{customer_name}},\n"
     "\n"
     "we could not collect the payment of invoice {{number}} ({{total_text}}). Please check your payment method.\n"
     "\n"
     "Billing: {{portal_url}}app.html#billing\n"
     "",
     "Subject: Payment failed for invoice {{number}}\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>we could not collect the payment of invoice <b>{{number}}</b> ({{total_text}}). Please check your payment method.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#billing\">Billing</a></p>\n"
     "</body></html>\n"
     ""},
    {"account.past_due",
     "Subject: Your account is past due\n"
     "Hello {{customer_name}},\n"
     "\n"
     "a payment is overdue. Your API keys still work for now; please update your payment method to avoid a suspension.\n"
     "\n"
     "Billing: {{portal_url}}app.html#billing\n"
     "",
     "Subject: Your account is past due\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>a payment is overdue. Your API keys still work for now; please update your payment method to avoid a suspension.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#billing\">Billing</a></p>\n"
     "</body></html>\n"
     ""},
    {"account.suspended",
     "Subject: Your account is suspended\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your account is suspended: API calls are refused until the overdue payment is made.\n"
     "\n"
     "Billing: {{portal_url}}app.html#billing\n"
     "",
     "Subject: Your account is suspended\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your account is suspended: API calls are refused until the overdue payment is made.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#billing\">Billing</a></p>\n"
     "</body></html>\n"
     ""},
    {"account.resumed",
     "Subject: Your account is active again\n"
     "Hello {{customer_name}},\n"
     "\n"
     "thank you: your account is active again and your API keys work.\n"
     "\n"
     "Your account: {{portal_url}}app.html\n"
     "",
     "Subject: Your account is active again\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>thank you: your account is active again and your API keys work.</p>\n"
     "<p><a href=\"{{portal_url}}app.html\">Your account</a></p>\n"
     "</body></html>\n"
     ""},
    {"key.created",
     "Subject: A new API key was created\n"
     "Hello {{customer_name}},\n"
     "\n"
     "a new API key ({{prefix}}...) was created on your account. If this was not you, revoke it now.\n"
     "\n"
     "Your keys: {{portal_url}}app.html#keys\n"
     "",
     "Subject: A new API key was created\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>a new API key (<code>{{prefix}}...</code>) was created on your account. If this was not you, revoke it now.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#keys\">Your keys</a></p>\n"
     "</body></html>\n"
     ""},
    {"key.rotated",
     "Subject: An API key was rotated\n"
     "Hello {{customer_name}},\n"
     "\n"
     "the API key {{prefix}}... was rotated. The old key keeps working until {{grace_until}}.\n"
     "\n"
     "Your keys: {{portal_url}}app.html#keys\n"
     "",
     "Subject: An API key was rotated\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>the API key <code>{{prefix}}...</code> was rotated. The old key keeps working until {{grace_until}}.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#keys\">Your keys</a></p>\n"
     "</body></html>\n"
     ""},
    {"key.revoked",
     "Subject: An API key was revoked\n"
     "Hello {{customer_name}},\n"
     "\n"
     "the API key {{prefix}}... was revoked: calls with it are refused from now on.\n"
     "\n"
     "Your keys: {{portal_url}}app.html#keys\n"
     "",
     "Subject: An API key was revoked\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>the API key <code>{{prefix}}...</code> was revoked: calls with it are refused from now on.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#keys\">Your keys</a></p>\n"
     "</body></html>\n"
     ""},
    {"plan.changed",
     "Subject: Your plan is now {{to_plan}}\n"
     "Hello {{customer_name}},\n"
     "\n"
     "your plan changed from {{previous_plan}} to {{plan}}.\n"
     "\n"
     "Your account: {{portal_url}}app.html#plan\n"
     "",
     "Subject: Your plan is now {{plan}}\n"
     "<!doctype html>\n"
     "<html><body style=\"font-family:sans-serif\">\n"
     "<p>Hello {{customer_name}},</p>\n"
     "<p>your plan changed from <b>{{previous_plan}}</b> to <b>{{plan}}</b>.</p>\n"
     "<p><a href=\"{{portal_url}}app.html#plan\">Your account</a></p>\n"
     "</body></html>\n"
     ""},
};

#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static const char *names[NBUILTINS + 1];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void fill_names(void)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        names[i] = builtins[i].name;
}

const char *const *tg_mail_template_names(void)
{
    pthread_once(&names_once, fill_names);
    return names;
}

static const builtin_t *find(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}

int tg_mail_template_known(const char *name)
{
    return name != NULL && find(name) != NULL;
}

/* ---- substitution ---- */

typedef struct sb {
    char *p;
    size_t n, cap;
    int failed;
} sb_t;

static void sb_put(sb_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > SIZE_MAX / 4 || b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1 && cap < SIZE_MAX / 4)
            cap *= 2;
        char *p = cap >= b->n + n + 1 ? realloc(b->p, cap) : NULL;
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

static void sb_put_escaped(sb_t *b, const char *s, size_t n, int html)
{
    if (!html) {
        sb_put(b, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': sb_put(b, "&amp;", 5); break;
        case '<': sb_put(b, "&lt;", 4); break;
        case '>': sb_put(b, "&gt;", 4); break;
        case '"': sb_put(b, "&quot;", 6); break;
        case '\'': sb_put(b, "&#39;", 5); break;
        default: sb_put(b, s + i, 1);
        }
    }
}

/* The value at dotted path `key` (klen bytes) in vars, or NULL. */
static const json_t *lookup(const json_t *vars, const char *key, size_t klen)
{
    const json_t *v = vars;
    while (v != NULL && klen > 0) {
        const char *dot = memchr(key, '.', klen);
        size_t seg = dot != NULL ? (size_t)(dot - key) : klen;
        char name[64];
        if (seg == 0 || seg >= sizeof(name) || !json_is_object(v))
            return NULL;
        memcpy(name, key, seg);
        name[seg] = '\0';
        v = json_object_get(v, name);
        if (dot == NULL)
            break;
        key += seg + 1;
        klen -= seg + 1;
    }
    return v;
}

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

char *tg_mail_template_expand(const char *tmpl, const json_t *vars, int html)
{
    sb_t b = {0};
    sb_put(&b, "", 0);
    const char *p = tmpl;
    while (*p != '\0' && !b.failed) {
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            sb_put(&b, p, strlen(p));
            break;
        }
        const char *k = open + 2, *e = k;
        while (*e == ' ')
            e++;
        const char *ks = e;
        while (is_key_char(*e))
            e++;
        const char *ke = e;
        while (*e == ' ')
            e++;
        if (ke == ks || strncmp(e, "}}", 2) != 0) { /* not a placeholder: keep the braces */
            sb_put(&b, p, (size_t)(k - p));
            p = k;
            continue;
        }
        sb_put(&b, p, (size_t)(open - p));
        const json_t *v = lookup(vars, ks, (size_t)(ke - ks));
        char num[64];
        if (json_is_string(v)) {
            sb_put_escaped(&b, json_string_value(v), json_string_length(v), html);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            sb_put(&b, num, strlen(num));
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%.17g", json_real_value(v));
            sb_put(&b, num, strlen(num));
        } else if (json_is_boolean(v)) {
            sb_put(&b, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5);
        }
        p = e + 2;
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- files ---- */

/* The override dir/name.ext: 0 and *out (NULL when there is no such file), or TG_EIO. */
static int read_override(const char *dir, const char *name, const char *ext, char **out, tg_err_t *err)
{
    *out = NULL;
    if (dir == NULL)
        return 0;
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
    if (n < 0 || (size_t)n >= sizeof(path))
        return tg_errf(err, TG_EIO, "template path too long");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? 0 : tg_errf(err, TG_EIO, "%s: %s", path, strerror(errno));
    char *s = malloc(TG_MAIL_TEMPLATE_FILE_MAX + 1);
    if (s == NULL) {
        fclose(f);
        return tg_errf(err, TG_ENOMEM, "out of memory");
    }
    size_t got = fread(s, 1, TG_MAIL_TEMPLATE_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got > TG_MAIL_TEMPLATE_FILE_MAX) {
        free(s);
        return tg_errf(err, TG_EIO, "%s: %s", path,
                       bad ? "read error" : "larger than " "256 KiB");
    }
    s[got] = '\0';
    if (memchr(s, '\0', got) != NULL) {
        free(s);
        return tg_errf(err, TG_EIO, "%s: holds a NUL byte", path);
    }
    *out = s;
    return 0;
}

/* Splits "Subject: X\nbody" into the subject line and the body (pointers into s). */
static void split_subject(const char *s, const char **subj, size_t *subj_len, const char **body)
{
    const char *nl = strchr(s, '\n');
    const char *line = s;
    size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len >= 8 && strncasecmp(line, "Subject:", 8) == 0) {
        line += 8;
        len -= 8;
        while (len > 0 && (*line == ' ' || *line == '\t')) {
            line++;
            len--;
        }
    }
    *subj = line;
    *subj_len = len;
    *body = nl != NULL ? nl + 1 : s + strlen(s);
}

void tg_mail_rendered_free(tg_mail_rendered_t *r)
{
    if (r == NULL)
        return;
    free(r->subject);
    free(r->text);
    free(r->html);
    r->subject = r->text = r->html = NULL;
}

int tg_mail_template_render(const char *dir, const char *name, const json_t *vars, tg_mail_rendered_t *out,
                            tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const builtin_t *b = name != NULL ? find(name) : NULL;
    if (b == NULL)
        return tg_errf(err, TG_ENOTFOUND, "no email template named \"%.64s\"", name != NULL ? name : "");
    char *text_file = NULL, *html_file = NULL;
    int rc = read_override(dir, name, "txt", &text_file, err);
    if (rc == 0)
        rc = read_override(dir, name, "html", &html_file, err);
    if (rc != 0) {
        free(text_file);
        free(html_file);
        return rc;
    }
    const char *subj, *text_body, *hsubj, *html_body;
    size_t slen, hslen;
    split_subject(text_file != NULL ? text_file : b->text, &subj, &slen, &text_body);
    split_subject(html_file != NULL ? html_file : b->html, &hsubj, &hslen, &html_body);
    char *subj_tmpl = strndup(subj, slen);
    if (subj_tmpl != NULL) {
        out->subject = tg_mail_template_expand(subj_tmpl, vars, 0);
        out->text = tg_mail_template_expand(text_body, vars, 0);
        out->html = tg_mail_template_expand(html_body, vars, 1);
    }
    free(subj_tmpl);
    free(text_file);
    free(html_file);
    if (out->subject == NULL || out->text == NULL || out->html == NULL) {
        tg_mail_rendered_free(out);
        return tg_errf(err, TG_ENOMEM, "out of memory rendering a template");
    }
    for (char *c = out->subject; *c != '\0'; c++) /* one header line, whatever a value held */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    return 0;
}
