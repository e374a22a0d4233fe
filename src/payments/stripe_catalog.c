/* stripe_catalog.c - the Stripe catalog of the configured plans; see stripe_catalog.h.
 *
 * The exactness argument for each mapping, with q the usage of a period, I the plan's allowance
 * of the metric (0 when the plan has no `included` entry for it, as in billing/pricing.c) and
 * b = max(q - I, 0) the billable quantity tollgate prices:
 *   per_unit   tollgate: u x b. Stripe, I = 0: per_unit u x q. I > 0: graduated tiers
 *              [1, I] at 0 and [I+1, inf) at u: u x (q - I) when q > I, 0 otherwise. Exact.
 *   graduated  tollgate: tier k priced over the billable units in (a_k, b_k], its flat fee when
 *              one falls there. Stripe with every bound shifted by I and a free first tier
 *              [1, I]: tier k+1 holds the units (a_k + I, b_k + I] of q, the same count, the same
 *              flat fee under the same condition. Exact.
 *   volume     tollgate picks the tier from b; Stripe would pick it from q and price all q units,
 *              so with 0 < I < unlimited no table is exact: refused. I = 0: the same tiers.
 *   package    tollgate: ceil or floor(b / size) x price; Stripe's transform_quantity divides q,
 *              and cannot be combined with tiers (no free tier): refused when 0 < I < unlimited.
 *   I = unlimited (an explicit `included: {m: unlimited}`): nothing is ever billable, which is a
 *              per_unit price of 0 under every model.
 * Quantity 0 costs 0 under every model on both sides. Rounding to the minor unit is Stripe's
 * (per invoice line) in this mode; the amounts themselves are carried exactly. */
#include "payments/stripe_catalog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payments/stripe_form.h"
#include "util/money.h"

_Static_assert(TG_MONEY_DIGITS <= 12, "amounts must fit Stripe's 12 decimal places of the minor unit");

#define LOOKUP_KEY_MAX 200 /* Stripe: "This may be up to 200 characters." */

/* ---- building ---- */

typedef struct builder {
    tg_catalog_t *c;
    int oom;
} builder_t;

static tg_catalog_item_t *add_item(builder_t *b, tg_catalog_kind_t kind, const char *key, const char *plan,
                                   const char *metric)
{
    if (b->oom)
        return NULL;
    tg_catalog_item_t *items = realloc(b->c->items, (b->c->nitems + 1) * sizeof(*items));
    if (items == NULL) {
        b->oom = 1;
        return NULL;
    }
    b->c->items = items;
    tg_catalog_item_t *it = &items[b->c->nitems++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    snprintf(it->key, sizeof(it->key), "%s", key);
    it->plan = plan;
    it->metric = metric;
    return it;
}

static void add_field(builder_t *b, tg_catalog_item_t *it, tg_catalog_ref_t ref, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_field(builder_t *b, tg_catalog_item_t *it, tg_catalog_ref_t ref, const char *key, const char *fmt, ...)
{
    if (b->oom || it == NULL)
        return;
    if (it->nfields >= TG_CATALOG_FIELDS_MAX) { /* cannot happen with the config's caps */
        b->oom = 1;
        return;
    }
    tg_catalog_field_t *f = realloc(it->fields, (it->nfields + 1) * sizeof(*f));
    if (f == NULL) {
        b->oom = 1;
        return;
    }
    it->fields = f;
    tg_catalog_field_t *x = &f[it->nfields++];
    memset(x, 0, sizeof(*x));
    snprintf(x->key, sizeof(x->key), "%s", key);
    x->ref = ref;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->value, sizeof(x->value), fmt, ap);
        va_end(ap);
    }
}

static void refuse(builder_t *b, const tg_plan_t *p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(builder_t *b, const tg_plan_t *p, const char *field, const char *fmt, ...)
{
    if (b->oom)
        return;
    tg_catalog_refusal_t *r = realloc(b->c->refusals, (b->c->nrefusals + 1) * sizeof(*r));
    if (r == NULL) {
        b->oom = 1;
        return;
    }
    b->c->refusals = r;
    tg_catalog_refusal_t *x = &r[b->c->nrefusals++];
    memset(x, 0, sizeof(*x));
    x->plan = p->id;
    x->line = p->line;
    snprintf(x->field, sizeof(x->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, sizeof(x->why), fmt, ap);
    va_end(ap);
}

int tg_catalog_minor_decimal(tg_money_t amount, int digits, char *buf, size_t cap)
{
    if (digits < 0 || digits > TG_MONEY_DIGITS || cap == 0)
        return TG_ERANGE;
    /* amount is in 1e-9 major units = 10^(digits-9) minor units: the minor amount is amount with
     * the decimal point 9 - digits places from the right. */
    int frac_digits = TG_MONEY_DIGITS - digits;
    uint64_t scale = 1;
    for (int i = 0; i < frac_digits; i++)
        scale *= 10;
    int neg = amount < 0;
    uint64_t mag = neg ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = mag / scale, frac = mag % scale;
    char fbuf[32] = "";
    if (frac != 0) {
        snprintf(fbuf, sizeof(fbuf), ".%0*" PRIu64, frac_digits, frac);
        size_t n = strlen(fbuf);
        while (n > 1 && fbuf[n - 1] == '0')
            fbuf[--n] = '\0';
    }
    int n = snprintf(buf, cap, "%s%" PRIu64 "%s", neg ? "-" : "", whole, fbuf);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return TG_ERANGE;
    }
    return n;
}

/* The allowance for pricing, as billing/pricing.c reads it: no entry = 0. */
static uint64_t allowance_of(const tg_plan_t *p, const char *metric)
{
    for (size_t i = 0; i < p->nincluded; i++)
        if (p->included[i].metric != NULL && strcmp(p->included[i].metric, metric) == 0)
            return p->included[i].amount;
    return 0;
}

static int whole_minor(tg_money_t amount, int digits)
{
    tg_money_t unit = 1;
    for (int i = 0; i < TG_MONEY_DIGITS - digits; i++)
        unit *= 10;
    return amount % unit == 0;
}

/* The digits of the unit Stripe's API counts amounts of the plan's currency in (ISK in hundredths,
 * see tg_stripe_currency_digits). */
static int stripe_digits(const tg_plan_t *p)
{
    return tg_stripe_currency_digits(p->currency);
}

/* Checks what a plan needs and what Stripe cannot express; returns the number of refusals. */
static size_t check_plan(builder_t *b, const tg_plan_t *p)
{
    size_t before = b->c->nrefusals;
    char field[96];
    if (p->currency_digits < 0 || p->currency_digits > TG_MONEY_DIGITS || tg_currency_digits(p->currency) < 0)
        refuse(b, p, "currency", "Stripe needs the currency's minor unit, and %s has none known", p->currency);
    if (p->minimum != 0)
        refuse(b, p, "minimum", "Stripe prices have no minimum commitment: Stripe would bill the usage alone");
    if (p->maximum != 0)
        refuse(b, p, "maximum", "Stripe prices have no spending cap: Stripe would bill usage above the maximum");
    if (p->price < 0)
        refuse(b, p, "price", "a Stripe price cannot be negative");
    if (strlen("tollgate_") + strlen(p->id) + strlen("_base") > LOOKUP_KEY_MAX)
        refuse(b, p, "id", "the lookup key tollgate_%.20s..._base would pass Stripe's 200 characters", p->id);
    for (size_t i = 0; i < p->ncharges; i++) {
        const tg_charge_t *c = &p->charges[i];
        snprintf(field, sizeof(field), "charges[%zu] (%.63s)", i, c->metric);
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->charges[j].metric, c->metric) == 0) {
                refuse(b, p, field,
                       "a second charge on %s: one metered price per metric and plan in Stripe (lookup key "
                       "tollgate_%s_%s), and each would bill the whole usage",
                       c->metric, p->id, c->metric);
                break;
            }
        if (strlen("tollgate_") + strlen(p->id) + 1 + strlen(c->metric) > LOOKUP_KEY_MAX)
            refuse(b, p, field, "the lookup key tollgate_%.20s..._%s would pass Stripe's 200 characters", p->id,
                   c->metric);
        uint64_t inc = allowance_of(p, c->metric);
        if (inc == TG_UNLIMITED)
            continue; /* nothing billable: a price of 0 whatever the model */
        if (c->model == TG_MODEL_VOLUME && inc > 0)
            refuse(b, p, field,
                   "volume tiers after an included allowance of %" PRIu64 ": tollgate picks the tier from the usage "
                   "above the allowance, Stripe from all the usage, and Stripe has no free allowance outside tiers",
                   inc);
        if (c->model == TG_MODEL_PACKAGE && inc > 0)
            refuse(b, p, field,
                   "packages after an included allowance of %" PRIu64 ": Stripe's transform_quantity divides all the "
                   "usage and cannot be combined with a free tier",
                   inc);
        if (c->model == TG_MODEL_PER_UNIT && c->unit_price < 0)
            refuse(b, p, field, "unit_price: a Stripe price cannot be negative");
        if (c->model == TG_MODEL_PACKAGE && c->package_price < 0)
            refuse(b, p, field, "package_price: a Stripe price cannot be negative");
        if (c->model == TG_MODEL_GRADUATED || c->model == TG_MODEL_VOLUME) {
            if (c->ntiers == 0)
                refuse(b, p, field, "tiers: a tiered price needs tiers");
            for (size_t t = 0; t < c->ntiers; t++) {
                const tg_tier_t *tr = &c->tiers[t];
                if (tr->unit_price < 0 || tr->flat_price < 0)
                    refuse(b, p, field, "tiers[%zu]: a Stripe price cannot be negative", t);
                else if (p->currency_digits >= 0 && p->currency_digits <= TG_MONEY_DIGITS &&
                         !whole_minor(tr->flat_price, stripe_digits(p)))
                    refuse(b, p, field,
                           "tiers[%zu].flat_price: Stripe's flat amounts are whole %s minor units (flat_amount_decimal "
                           "represents an integer), this one has a fraction of one",
                           t, p->currency);
                if (tr->up_to != TG_UNLIMITED && tr->up_to > (uint64_t)INT64_MAX - inc)
                    refuse(b, p, field, "tiers[%zu].up_to: shifted by the allowance it leaves Stripe's integers", t);
            }
        }
    }
    return b->c->nrefusals - before;
}

static const char *interval_name(tg_interval_t iv)
{
    return iv == TG_INTERVAL_YEAR ? "year" : "month";
}

static void add_amount(builder_t *b, tg_catalog_item_t *it, const char *key, tg_money_t amount, int digits)
{
    char dec[48];
    if (tg_catalog_minor_decimal(amount, digits, dec, sizeof(dec)) < 0) {
        b->oom = 1; /* cannot happen: checked digits, 48 bytes hold any int64 */
        return;
    }
    add_field(b, it, TG_CATALOG_REF_NONE, key, "%s", dec);
}

static void add_tier(builder_t *b, tg_catalog_item_t *it, size_t i, uint64_t up_to, tg_money_t unit, tg_money_t flat,
                     int digits)
{
    char key[64];
    snprintf(key, sizeof(key), "tiers[%zu][up_to]", i);
    if (up_to == TG_UNLIMITED)
        add_field(b, it, TG_CATALOG_REF_NONE, key, "inf");
    else
        add_field(b, it, TG_CATALOG_REF_NONE, key, "%" PRIu64, up_to);
    snprintf(key, sizeof(key), "tiers[%zu][unit_amount_decimal]", i);
    add_amount(b, it, key, unit, digits);
    if (flat != 0) {
        snprintf(key, sizeof(key), "tiers[%zu][flat_amount_decimal]", i);
        add_amount(b, it, key, flat, digits);
    }
}

/* The fields every price of plan p starts with. */
static void price_head(builder_t *b, tg_catalog_item_t *it, const tg_plan_t *p)
{
    add_field(b, it, TG_CATALOG_REF_PRODUCT, "product", NULL);
    add_field(b, it, TG_CATALOG_REF_NONE, "currency", "%s", p->currency);
}

static void price_tail(builder_t *b, tg_catalog_item_t *it, const tg_plan_t *p, const char *metric)
{
    add_field(b, it, TG_CATALOG_REF_NONE, "lookup_key", "%s", it->key);
    add_field(b, it, TG_CATALOG_REF_NONE, "metadata[tollgate_plan]", "%s", p->id);
    if (metric != NULL)
        add_field(b, it, TG_CATALOG_REF_NONE, "metadata[tollgate_metric]", "%s", metric);
}

static void recurring(builder_t *b, tg_catalog_item_t *it, const tg_plan_t *p, int metered)
{
    add_field(b, it, TG_CATALOG_REF_NONE, "recurring[interval]", "%s", interval_name(p->interval));
    add_field(b, it, TG_CATALOG_REF_NONE, "recurring[interval_count]", "1");
    add_field(b, it, TG_CATALOG_REF_NONE, "recurring[usage_type]", "%s", metered ? "metered" : "licensed");
    if (metered)
        add_field(b, it, TG_CATALOG_REF_METER, "recurring[meter]", NULL);
}

static void add_plan(builder_t *b, const tg_plan_t *p, int prices)
{
    int d = stripe_digits(p);
    char key[TG_CATALOG_KEY_MAX];
    if (!prices) {
        tg_catalog_item_t *prod = add_item(b, TG_CATALOG_PRODUCT, p->id, p->id, NULL);
        add_field(b, prod, TG_CATALOG_REF_NONE, "name", "%s", p->name != NULL ? p->name : p->id);
        add_field(b, prod, TG_CATALOG_REF_NONE, "metadata[tollgate_plan]", "%s", p->id);
        return;
    }
    snprintf(key, sizeof(key), "tollgate_%s_base", p->id);
    tg_catalog_item_t *base = add_item(b, TG_CATALOG_PRICE, key, p->id, NULL);
    price_head(b, base, p);
    add_field(b, base, TG_CATALOG_REF_NONE, "billing_scheme", "per_unit");
    if (whole_minor(p->price, d))
        add_amount(b, base, "unit_amount", p->price, d);
    else
        add_amount(b, base, "unit_amount_decimal", p->price, d);
    recurring(b, base, p, 0);
    price_tail(b, base, p, NULL);

    for (size_t i = 0; i < p->ncharges; i++) {
        const tg_charge_t *c = &p->charges[i];
        uint64_t inc = allowance_of(p, c->metric);
        snprintf(key, sizeof(key), "tollgate_%s_%s", p->id, c->metric);
        tg_catalog_item_t *it = add_item(b, TG_CATALOG_PRICE, key, p->id, c->metric);
        price_head(b, it, p);
        if (inc == TG_UNLIMITED) {
            add_field(b, it, TG_CATALOG_REF_NONE, "billing_scheme", "per_unit");
            add_field(b, it, TG_CATALOG_REF_NONE, "unit_amount_decimal", "0");
        } else if (c->model == TG_MODEL_PER_UNIT && inc == 0) {
            add_field(b, it, TG_CATALOG_REF_NONE, "billing_scheme", "per_unit");
            add_amount(b, it, "unit_amount_decimal", c->unit_price, d);
        } else if (c->model == TG_MODEL_PER_UNIT) {
            add_field(b, it, TG_CATALOG_REF_NONE, "billing_scheme", "tiered");
            add_field(b, it, TG_CATALOG_REF_NONE, "tiers_mode", "graduated");
            add_tier(b, it, 0, inc, 0, 0, d);
            add_tier(b, it, 1, TG_UNLIMITED, c->unit_price, 0, d);
        } else if (c->model == TG_MODEL_PACKAGE) {
            add_field(b, it, TG_CATALOG_REF_NONE, "billing_scheme", "per_unit");
            add_amount(b, it, "unit_amount_decimal", c->package_price, d);
            add_field(b, it, TG_CATALOG_REF_NONE, "transform_quantity[divide_by]", "%" PRIu64, c->package_size);
            add_field(b, it, TG_CATALOG_REF_NONE, "transform_quantity[round]", "%s", c->round_up ? "up" : "down");
        } else { /* graduated (inc >= 0) or volume (inc == 0, checked) */
            add_field(b, it, TG_CATALOG_REF_NONE, "billing_scheme", "tiered");
            add_field(b, it, TG_CATALOG_REF_NONE, "tiers_mode", "%s",
                      c->model == TG_MODEL_GRADUATED ? "graduated" : "volume");
            size_t n = 0;
            if (inc > 0)
                add_tier(b, it, n++, inc, 0, 0, d);
            for (size_t t = 0; t < c->ntiers; t++) {
                const tg_tier_t *tr = &c->tiers[t];
                add_tier(b, it, n++, tr->up_to == TG_UNLIMITED ? TG_UNLIMITED : tr->up_to + inc, tr->unit_price,
                         tr->flat_price, d);
            }
        }
        recurring(b, it, p, 1);
        price_tail(b, it, p, c->metric);
    }
}

int tg_catalog_build(const tg_config_t *cfg, tg_catalog_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    builder_t b = {out, 0};
    unsigned char *ok = calloc(cfg->nplans + 1, 1);
    if (ok == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory building the Stripe catalog");
    for (size_t i = 0; i < cfg->nplans; i++)
        ok[i] = check_plan(&b, &cfg->plans[i]) == 0;
    /* products, then meters (one per metric charged by an accepted plan, first use first), then
     * prices: each refers only to objects before it. */
    for (size_t i = 0; i < cfg->nplans; i++)
        if (ok[i])
            add_plan(&b, &cfg->plans[i], 0);
    for (size_t i = 0; i < cfg->nplans; i++) {
        if (!ok[i])
            continue;
        for (size_t j = 0; j < cfg->plans[i].ncharges; j++) {
            const char *m = cfg->plans[i].charges[j].metric;
            if (b.oom || tg_catalog_find(out, TG_CATALOG_METER, m) != NULL)
                continue;
            tg_catalog_item_t *it = add_item(&b, TG_CATALOG_METER, m, NULL, m);
            add_field(&b, it, TG_CATALOG_REF_NONE, "display_name", "%s", m);
            add_field(&b, it, TG_CATALOG_REF_NONE, "event_name", "%s", m);
            add_field(&b, it, TG_CATALOG_REF_NONE, "default_aggregation[formula]", "sum");
            add_field(&b, it, TG_CATALOG_REF_NONE, "customer_mapping[event_payload_key]", "stripe_customer_id");
            add_field(&b, it, TG_CATALOG_REF_NONE, "customer_mapping[type]", "by_id");
            add_field(&b, it, TG_CATALOG_REF_NONE, "value_settings[event_payload_key]", "value");
        }
    }
    for (size_t i = 0; i < cfg->nplans; i++)
        if (ok[i])
            add_plan(&b, &cfg->plans[i], 1);
    free(ok);
    if (b.oom) {
        tg_catalog_free(out);
        return tg_errf(err, TG_ENOMEM, "out of memory building the Stripe catalog");
    }
    return 0;
}

void tg_catalog_free(tg_catalog_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nitems; i++)
        free(c->items[i].fields);
    free(c->items);
    free(c->refusals);
    memset(c, 0, sizeof(*c));
}

const tg_catalog_item_t *tg_catalog_find(const tg_catalog_t *c, tg_catalog_kind_t kind, const char *key)
{
    for (size_t i = 0; i < c->nitems; i++)
        if (c->items[i].kind == kind && strcmp(c->items[i].key, key) == 0)
            return &c->items[i];
    return NULL;
}

int tg_catalog_form(const tg_catalog_item_t *it, const char *product_id, const char *meter_id, tg_form_t *f,
                    tg_err_t *err)
{
    for (size_t i = 0; i < it->nfields; i++) {
        const tg_catalog_field_t *x = &it->fields[i];
        const char *v = x->value;
        if (x->ref == TG_CATALOG_REF_PRODUCT)
            v = product_id;
        else if (x->ref == TG_CATALOG_REF_METER)
            v = meter_id;
        if (v == NULL)
            return tg_errf(err, TG_EINVAL, "%s: %s is not known yet", it->key, x->key);
        int rc = tg_form_add(f, x->key, v, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- comparing with what Stripe has ---- */

/* Decimal text to a canonical form: no sign for zero, no leading zeros, no trailing fractional
 * zeros ("0050.500" -> "50.5", "0.0" -> "0"). Returns 0, or -1 when s is not a plain decimal. */
static int canon_decimal(const char *s, char *out, size_t cap)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    const char *ip = p;
    while (*p >= '0' && *p <= '9')
        p++;
    size_t ilen = (size_t)(p - ip);
    const char *fp = "";
    size_t flen = 0;
    if (*p == '.') {
        fp = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        flen = (size_t)(p - fp);
    }
    if (*p != '\0' || ilen + flen == 0)
        return -1;
    while (ilen > 0 && *ip == '0') {
        ip++;
        ilen--;
    }
    while (flen > 0 && fp[flen - 1] == '0')
        flen--;
    if (ilen == 0 && flen == 0)
        neg = 0;
    int n = snprintf(out, cap, "%s%.*s%s%.*s", neg ? "-" : "", (int)(ilen > 0 ? ilen : 1), ilen > 0 ? ip : "0",
                     flen > 0 ? "." : "", (int)flen, fp);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* obj's value at a form key ("tiers[0][up_to]"), or NULL when absent. */
static const json_t *at_key(const json_t *obj, const char *key)
{
    char seg[64];
    const char *p = key;
    const json_t *v = obj;
    while (*p != '\0' && v != NULL) {
        size_t n = strcspn(p, "[]");
        if (n == 0 || n >= sizeof(seg))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n;
        if (*p == ']')
            p++;
        if (*p == '[')
            p++;
        if (json_is_array(v)) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            v = *end == '\0' ? json_array_get(v, i) : NULL;
        } else {
            v = json_object_get(v, seg);
        }
    }
    return v;
}

/* The text of a JSON scalar for comparison; "" for null or absent, "<object>" otherwise. */
static void scalar_text(const json_t *v, char *out, size_t cap)
{
    if (v == NULL || json_is_null(v))
        snprintf(out, cap, "%s", "");
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_true(v))
        snprintf(out, cap, "true");
    else if (json_is_false(v))
        snprintf(out, cap, "false");
    else
        snprintf(out, cap, "<%s>", json_is_real(v) ? "number" : "object");
}

/* The last segment of a form key: "unit_amount_decimal" for "tiers[1][unit_amount_decimal]". */
static void last_segment(const char *key, const char **seg, size_t *len)
{
    size_t n = strlen(key);
    if (n > 0 && key[n - 1] == ']') {
        const char *open = strrchr(key, '[');
        *seg = open + 1;
        *len = (size_t)(key + n - 1 - *seg);
    } else {
        *seg = key;
        *len = n;
    }
}

static int last_is(const char *key, const char *name)
{
    const char *seg;
    size_t len;
    last_segment(key, &seg, &len);
    return len == strlen(name) && memcmp(seg, name, len) == 0;
}

/* Stripe's value of an amount field: the _decimal field, else its integer twin (the same key
 * without "_decimal"), else 0. */
static void amount_text(const json_t *obj, const char *key, char *out, size_t cap)
{
    const json_t *v = at_key(obj, key);
    const char *seg;
    size_t len;
    last_segment(key, &seg, &len);
    if ((v == NULL || json_is_null(v)) && len > 8 && memcmp(seg + len - 8, "_decimal", 8) == 0) {
        char twin[96];
        size_t keep = (size_t)(seg - key) + len - 8;
        snprintf(twin, sizeof(twin), "%.*s%s", (int)keep, key, seg + len);
        v = at_key(obj, twin);
    }
    scalar_text(v, out, cap);
    if (out[0] == '\0')
        snprintf(out, cap, "0");
}

static int is_amount_key(const char *key)
{
    return last_is(key, "unit_amount") || last_is(key, "unit_amount_decimal") || last_is(key, "flat_amount_decimal");
}

static size_t count_tiers(const tg_catalog_item_t *it)
{
    size_t n = 0;
    for (size_t i = 0; i < it->nfields; i++)
        if (strncmp(it->fields[i].key, "tiers[", 6) == 0 && last_is(it->fields[i].key, "up_to"))
            n++;
    return n;
}

static int has_prefix_field(const tg_catalog_item_t *it, const char *prefix)
{
    for (size_t i = 0; i < it->nfields; i++)
        if (strncmp(it->fields[i].key, prefix, strlen(prefix)) == 0)
            return 1;
    return 0;
}

int tg_catalog_matches(const tg_catalog_item_t *it, const char *product_id, const char *meter_id, const json_t *obj,
                       char *why, size_t whycap)
{
    char have[TG_CATALOG_FIELD_MAX], a[TG_CATALOG_FIELD_MAX], b[TG_CATALOG_FIELD_MAX];
    if (!json_is_object(obj)) {
        snprintf(why, whycap, "not an object");
        return 0;
    }
    for (size_t i = 0; i < it->nfields; i++) {
        const tg_catalog_field_t *x = &it->fields[i];
        const char *want = x->value;
        if (x->ref == TG_CATALOG_REF_PRODUCT)
            want = product_id != NULL ? product_id : "";
        else if (x->ref == TG_CATALOG_REF_METER)
            want = meter_id != NULL ? meter_id : "";
        /* a meter's display name is a label, and a price's metadata does not price */
        if ((it->kind == TG_CATALOG_METER && strcmp(x->key, "display_name") == 0) ||
            (it->kind == TG_CATALOG_PRICE && strncmp(x->key, "metadata[", 9) == 0))
            continue;
        int same;
        if (is_amount_key(x->key)) {
            amount_text(obj, x->key, have, sizeof(have));
            same =
                canon_decimal(have, a, sizeof(a)) == 0 && canon_decimal(want, b, sizeof(b)) == 0 && strcmp(a, b) == 0;
        } else {
            const json_t *v = at_key(obj, x->key);
            scalar_text(v, have, sizeof(have));
            if (last_is(x->key, "up_to") && json_is_null(v))
                snprintf(have, sizeof(have), "inf"); /* Stripe writes the last tier's bound as null */
            same = strcmp(have, want) == 0;
        }
        if (!same) {
            snprintf(why, whycap, "%s is %s, not %s", x->key, have[0] != '\0' ? have : "unset", want);
            return 0;
        }
    }
    if (it->kind == TG_CATALOG_PRICE) {
        const json_t *tiers = json_object_get(obj, "tiers");
        size_t have_n = json_is_array(tiers) ? json_array_size(tiers) : 0, want_n = count_tiers(it);
        if (have_n != want_n) {
            snprintf(why, whycap, "it has %zu tiers, not %zu", have_n, want_n);
            return 0;
        }
        for (size_t t = 0; t < want_n; t++) { /* a flat fee tollgate does not send must be 0 there */
            char key[64];
            snprintf(key, sizeof(key), "tiers[%zu][flat_amount_decimal]", t);
            if (has_prefix_field(it, key))
                continue;
            amount_text(obj, key, have, sizeof(have));
            if (canon_decimal(have, a, sizeof(a)) != 0 || strcmp(a, "0") != 0) {
                snprintf(why, whycap, "%s is %s, not 0", key, have);
                return 0;
            }
        }
        const json_t *tq = json_object_get(obj, "transform_quantity");
        if (!has_prefix_field(it, "transform_quantity[") && tq != NULL && !json_is_null(tq)) {
            snprintf(why, whycap, "it has a transform_quantity, which this price must not");
            return 0;
        }
    }
    return 1;
}
