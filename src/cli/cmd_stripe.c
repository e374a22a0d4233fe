/* cmd_stripe.c - `tollgate stripe sync-catalog`: makes Stripe's catalog match the plans, for
 * `stripe.billing: stripe`.
 *
 * An operator command, run by hand or from a deploy script: it calls Stripe synchronously with
 * the configured secret key (payments/stripe_client.h), not through the outbox, which is for work
 * the server queues off its request paths. What the catalog must hold comes from the pure mapping
 * in payments/stripe_catalog.h; this file lists what Stripe has, decides per object (keep, create,
 * update, replace), and does it:
 *   - products are found by metadata[tollgate_plan] (listing every product: Stripe's search is
 *     only eventually consistent, and a run right after another must see what it made);
 *   - meters by event_name among the active ones; a meter whose aggregation or mappings differ
 *     cannot be changed in Stripe, so that is an error before anything is sent;
 *   - prices by lookup_key. Prices are immutable: one that differs is replaced by a new Price
 *     that takes the lookup key over (transfer_lookup_key=true), and the old one is deactivated
 *     (subscriptions on it keep it; new ones get the new price through the lookup key). An active
 *     price this command made on a plan's product that holds no catalog key any more (a charge
 *     was removed, or a run stopped between a replacement and the deactivation) is retired too.
 * Every POST carries an Idempotency-Key derived from what it sends and from the state it changes
 * (the price it replaces, the product's last update), so a retried call, in this run or in a run
 * started again within Stripe's 24 hours, never makes a second object; and a later change back
 * to earlier content still gets a fresh key. A second run finds everything and sends nothing. */
#include <errno.h>
#include <getopt.h>
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "config/config.h"
#include "payments/stripe_catalog.h"
#include "payments/stripe_client.h"
#include "payments/stripe_form.h"
#include "util/clock.h"

#define CALL_ATTEMPTS 4     /* a call Stripe says to retry (429, 5xx, no answer) is tried this often */
#define LIST_PAGES_MAX 1000 /* 100 objects a page: far past any catalog */
#define ID_MAX 128

static const char stripe_usage[] =
    "usage: tollgate stripe sync-catalog -c FILE [--dry-run]\n"
    "       tollgate stripe reconcile -c FILE --period YYYY-MM [--customer ID] [--json]\n"
    "\n"
    "For stripe.billing: stripe. Makes Stripe's catalog match the plans of FILE: a Product per\n"
    "plan (metadata[tollgate_plan]), a licensed Price for its base fee (lookup key\n"
    "tollgate_PLAN_base), a Billing Meter per charged metric (event_name = the metric, sum) and a\n"
    "metered Price per charge (lookup key tollgate_PLAN_METRIC). It creates what is missing,\n"
    "updates what differs (a changed price becomes a new Price that takes the lookup key over; the\n"
    "old one is deactivated, as is the price of a charge no longer in the plans) and leaves the\n"
    "rest: running it again changes nothing. A plan Stripe cannot bill exactly (a minimum or\n"
    "maximum, volume tiers or packages after an included allowance, ...) is refused with its\n"
    "line, and nothing is sent.\n"
    "\n"
    "This is an operator command: it calls Stripe directly and synchronously with stripe.secret_key\n"
    "(the running server is not involved and need not run). Run it before serving new plans.\n"
    "\n"
    "  -c, --config FILE  configuration file (required)\n"
    "  -n, --dry-run      list what would be created, updated or kept, and send nothing\n"
    "  -h, --help         print this help\n"
    "\n"
    "Exit status: 0 done (or nothing to do), 1 Stripe refused or could not be reached (its message\n"
    "is printed), 2 usage or configuration error.\n";

typedef enum action {
    ACT_KEEP = 0,
    ACT_CREATE,
    ACT_UPDATE,  /* product: name or active; price: reactivate */
    ACT_REPLACE, /* price: a new one takes the lookup key, the old one is deactivated */
    ACT_CONFLICT /* meter that cannot be changed */
} action_t;

static const char *const action_names[] = {"keep", "create", "update", "replace", "conflict"};
static const char *const kind_names[] = {"product", "meter", "price"};

typedef struct plan_entry {
    action_t act;
    char id[ID_MAX];     /* the Stripe object it is (keep, update) or becomes (create, replace) */
    char old_id[ID_MAX]; /* replace: the price replaced */
    int old_active;      /* replace: whether that price is still active (then it is deactivated) */
    char prior[160];     /* state the change depends on, for the idempotency key */
    char why[256];       /* what differs */
} plan_entry_t;

typedef struct sync {
    tg_stripe_settings_t s;
    const tg_catalog_t *cat;
    plan_entry_t *plan; /* one per catalog item */
    json_t *products;   /* array: products with metadata[tollgate_plan] */
    json_t *meters;     /* array: active meters */
    json_t *prices;     /* object: lookup_key -> price */
    json_t *stale;      /* array: active tollgate prices of the plans' products that hold no catalog key */
} sync_t;

/* ---- calls ---- */

static void backoff(int attempt)
{
    /* 0.25, 0.5, 1 s; an absolute deadline, so that a signal's EINTR resumes the rest only */
    struct timespec until = tg_clock_deadline(CLOCK_MONOTONIC, INT64_C(250) << attempt);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
}

/* One call, tried again while Stripe's answer says so (same idempotency key). On failure prints
 * "tollgate stripe sync-catalog: WHAT: Stripe's message" and returns non-zero. */
static int call(const sync_t *y, const char *method, const char *path, const tg_form_t *f, const char *idem,
                const char *what, tg_stripe_result_t *out)
{
    size_t len = 0;
    const char *data = f != NULL ? tg_form_data(f, &len) : "";
    tg_err_t err = {0};
    int rc = 0;
    for (int attempt = 0; attempt < CALL_ATTEMPTS; attempt++) {
        if (attempt > 0)
            backoff(attempt - 1);
        tg_stripe_result_clear(out);
        memset(out, 0, sizeof(*out));
        rc = tg_stripe_call(&y->s, method, path, data, len, idem, out, &err);
        if (rc != TG_EIO) /* anything but "try again" */
            break;
    }
    if (rc != 0)
        fprintf(stderr, "tollgate stripe sync-catalog: %s: %s\n", what, err.msg);
    return rc;
}

/* Every object of a list endpoint (following has_more) with the given filters (NULL, or key, value,
 * ..., NULL), appended to acc when keep(obj) says so. */
static int list_all(const sync_t *y, const char *path, const char *const *filters, int (*keep)(const json_t *),
                    json_t *acc)
{
    char after[ID_MAX] = "";
    for (int page = 0; page < LIST_PAGES_MAX; page++) {
        tg_form_t f;
        tg_form_init(&f, 0);
        tg_err_t err = {0};
        int rc = tg_form_add_int(&f, "limit", 100, &err);
        for (size_t i = 0; filters != NULL && filters[i] != NULL && rc == 0; i += 2)
            rc = tg_form_add(&f, filters[i], filters[i + 1], &err);
        if (rc == 0 && after[0] != '\0')
            rc = tg_form_add(&f, "starting_after", after, &err);
        tg_stripe_result_t r = {0};
        char what[96];
        snprintf(what, sizeof(what), "listing %s", path);
        if (rc == 0)
            rc = call(y, "GET", path, &f, NULL, what, &r);
        tg_form_free(&f);
        if (rc != 0) {
            tg_stripe_result_clear(&r);
            return rc;
        }
        json_t *data = json_object_get(r.body, "data");
        size_t i;
        json_t *o;
        json_array_foreach(data, i, o)
        {
            if (keep == NULL || keep(o))
                json_array_append(acc, o);
            const char *id = json_string_value(json_object_get(o, "id"));
            snprintf(after, sizeof(after), "%s", id != NULL ? id : "");
        }
        int more = json_is_true(json_object_get(r.body, "has_more")) && json_array_size(data) > 0;
        tg_stripe_result_clear(&r);
        if (!more)
            return 0;
    }
    fprintf(stderr, "tollgate stripe sync-catalog: listing %s: more than %d pages\n", path, LIST_PAGES_MAX);
    return TG_ELIMIT;
}

static int is_tollgate_product(const json_t *o)
{
    return json_is_string(json_object_get(json_object_get(o, "metadata"), "tollgate_plan"));
}

/* The prices holding the catalog's lookup keys, 10 keys a call (Stripe's limit). */
static int list_prices(sync_t *y)
{
    const tg_catalog_t *c = y->cat;
    size_t i = 0;
    while (i < c->nitems) {
        tg_form_t f;
        tg_form_init(&f, 0);
        tg_err_t err = {0};
        int rc = tg_form_add_int(&f, "limit", 100, &err);
        if (rc == 0)
            rc = tg_form_add(&f, "expand[0]", "data.tiers", &err); /* tiers are not in a price by default */
        int n = 0;
        for (; i < c->nitems && n < 10 && rc == 0; i++) {
            if (c->items[i].kind != TG_CATALOG_PRICE)
                continue;
            char key[32];
            snprintf(key, sizeof(key), "lookup_keys[%d]", n++);
            rc = tg_form_add(&f, key, c->items[i].key, &err);
        }
        tg_stripe_result_t r = {0};
        if (rc == 0 && n > 0)
            rc = call(y, "GET", "/v1/prices", &f, NULL, "listing prices by lookup key", &r);
        tg_form_free(&f);
        if (rc != 0) {
            tg_stripe_result_clear(&r);
            return rc;
        }
        size_t k;
        json_t *o;
        json_array_foreach(json_object_get(r.body, "data"), k, o)
        {
            const char *lk = json_string_value(json_object_get(o, "lookup_key"));
            if (lk != NULL)
                json_object_set(y->prices, lk, o);
        }
        tg_stripe_result_clear(&r);
    }
    return 0;
}

/* ---- deciding ---- */

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* The id a plan's product has or will have ("" when it will be created). */
static const char *ref_id(const sync_t *y, tg_catalog_kind_t kind, const char *key)
{
    const tg_catalog_item_t *it = tg_catalog_find(y->cat, kind, key);
    return it != NULL ? y->plan[it - y->cat->items].id : "";
}

static void decide_product(const sync_t *y, const tg_catalog_item_t *it, plan_entry_t *e)
{
    const json_t *found = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(y->products, i, o)
    {
        if (strcmp(str_of(json_object_get(o, "metadata"), "tollgate_plan"), it->key) != 0)
            continue;
        if (found == NULL ||
            (!json_is_true(json_object_get(found, "active")) && json_is_true(json_object_get(o, "active"))))
            found = o; /* an active one wins over an archived one */
    }
    if (found == NULL) {
        e->act = ACT_CREATE;
        return;
    }
    snprintf(e->id, sizeof(e->id), "%s", str_of(found, "id"));
    int active = json_is_true(json_object_get(found, "active"));
    int same = tg_catalog_matches(it, NULL, NULL, found, e->why, sizeof(e->why));
    if (same && active) {
        e->act = ACT_KEEP;
        return;
    }
    e->act = ACT_UPDATE; /* name and active are what the catalog sets on a product */
    if (same)
        snprintf(e->why, sizeof(e->why), "archived");
    else if (!active)
        snprintf(e->why + strlen(e->why), sizeof(e->why) - strlen(e->why), "; archived");
    snprintf(e->prior, sizeof(e->prior), "%" JSON_INTEGER_FORMAT ";%d",
             json_integer_value(json_object_get(found, "updated")), active);
}

static void decide_meter(const sync_t *y, const tg_catalog_item_t *it, plan_entry_t *e)
{
    size_t i;
    json_t *o;
    json_array_foreach(y->meters, i, o)
    {
        if (strcmp(str_of(o, "event_name"), it->key) != 0)
            continue;
        snprintf(e->id, sizeof(e->id), "%s", str_of(o, "id"));
        e->act = tg_catalog_matches(it, NULL, NULL, o, e->why, sizeof(e->why)) ? ACT_KEEP : ACT_CONFLICT;
        return;
    }
    e->act = ACT_CREATE;
}

static void decide_price(const sync_t *y, const tg_catalog_item_t *it, plan_entry_t *e)
{
    const json_t *holder = json_object_get(y->prices, it->key);
    if (holder == NULL) {
        e->act = ACT_CREATE;
        return;
    }
    const char *prod = ref_id(y, TG_CATALOG_PRODUCT, it->plan);
    const char *meter = it->metric != NULL ? ref_id(y, TG_CATALOG_METER, it->metric) : NULL;
    int active = json_is_true(json_object_get(holder, "active"));
    if (tg_catalog_matches(it, prod, meter, holder, e->why, sizeof(e->why))) {
        snprintf(e->id, sizeof(e->id), "%s", str_of(holder, "id"));
        e->act = active ? ACT_KEEP : ACT_UPDATE;
        if (!active) {
            snprintf(e->why, sizeof(e->why), "inactive");
            snprintf(e->prior, sizeof(e->prior), "reactivate %s", e->id);
        }
        return;
    }
    e->act = ACT_REPLACE;
    snprintf(e->old_id, sizeof(e->old_id), "%s", str_of(holder, "id"));
    e->old_active = active;
    snprintf(e->prior, sizeof(e->prior), "replaces %s", e->old_id);
}

static int is_tollgate_price(const json_t *o)
{
    return json_is_string(json_object_get(json_object_get(o, "metadata"), "tollgate_plan"));
}

/* Active prices this command made on the plans' products that no catalog entry holds any more: a
 * price a run replaced but could not deactivate before it stopped (its lookup key already moved),
 * or the price of a charge removed from the plans. They are retired (deactivated): subscriptions
 * on them keep them, new ones cannot pick them. */
static int find_stale(sync_t *y)
{
    for (size_t i = 0; i < y->cat->nitems; i++) {
        if (y->cat->items[i].kind != TG_CATALOG_PRODUCT || y->plan[i].id[0] == '\0')
            continue;
        const char *const filters[] = {"product", y->plan[i].id, "active", "true", NULL};
        json_t *all = json_array();
        if (all == NULL)
            return TG_ENOMEM;
        int rc = list_all(y, "/v1/prices", filters, is_tollgate_price, all);
        size_t k;
        json_t *o;
        json_array_foreach(all, k, o)
        {
            const char *id = str_of(o, "id");
            int held = 0;
            const char *lk;
            json_t *holder;
            json_object_foreach(y->prices, lk, holder)
            {
                if (strcmp(str_of(holder, "id"), id) == 0 && tg_catalog_find(y->cat, TG_CATALOG_PRICE, lk) != NULL)
                    held = 1;
            }
            if (!held && json_is_true(json_object_get(o, "active")))
                json_array_append(y->stale, o);
        }
        json_decref(all);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void print_retire(const json_t *price)
{
    const char *lk = str_of(price, "lookup_key");
    printf("%-8s %-7s %-32s %s (%s)\n", "retire", "price", lk[0] != '\0' ? lk : "(no lookup key)", str_of(price, "id"),
           lk[0] != '\0' ? "its charge is no longer in the plans" : "replaced, left active by an interrupted run");
}

/* ---- doing ---- */

/* "tollgate-catalog-" + the first 32 bytes of SHA-256(method, path, body, prior), in hex. */
static void idempotency_key(const char *path, const tg_form_t *f, const char *prior, char out[96])
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    size_t len = 0;
    const char *data = tg_form_data(f, &len);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)"POST\n", 5);
    crypto_hash_sha256_update(&st, (const unsigned char *)path, strlen(path));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)data, len);
    crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)prior, strlen(prior));
    crypto_hash_sha256_final(&st, h);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(out, 96, "tollgate-catalog-%.32s", hex);
}

static int post(const sync_t *y, const char *path, const tg_form_t *f, const char *prior, const char *what,
                char id_out[ID_MAX])
{
    char key[96];
    idempotency_key(path, f, prior, key);
    tg_stripe_result_t r = {0};
    int rc = call(y, "POST", path, f, key, what, &r);
    if (rc == 0 && id_out != NULL)
        snprintf(id_out, ID_MAX, "%s", r.id);
    tg_stripe_result_clear(&r);
    return rc;
}

static int execute(const sync_t *y, size_t idx)
{
    const tg_catalog_item_t *it = &y->cat->items[idx];
    plan_entry_t *e = &y->plan[idx];
    if (e->act == ACT_KEEP)
        return 0;
    char what[400], path[256];
    snprintf(what, sizeof(what), "%s %s %s", action_names[e->act], kind_names[it->kind], it->key);
    tg_form_t f;
    tg_form_init(&f, 0);
    tg_err_t err = {0};
    int rc = 0;
    if (e->act == ACT_UPDATE && it->kind == TG_CATALOG_PRODUCT) {
        snprintf(path, sizeof(path), "/v1/products/%s", e->id);
        rc = tg_form_add(&f, "name", it->fields[0].value, &err); /* a product's first field is its name */
        if (rc == 0)
            rc = tg_form_add(&f, "active", "true", &err);
        if (rc == 0)
            rc = post(y, path, &f, e->prior, what, NULL);
    } else if (e->act == ACT_UPDATE) { /* an inactive price that is right: reactivate it */
        snprintf(path, sizeof(path), "/v1/prices/%s", e->id);
        rc = tg_form_add(&f, "active", "true", &err);
        if (rc == 0)
            rc = post(y, path, &f, e->prior, what, NULL);
    } else { /* create, replace */
        const char *prod = it->kind == TG_CATALOG_PRICE ? ref_id(y, TG_CATALOG_PRODUCT, it->plan) : NULL;
        const char *meter =
            it->kind == TG_CATALOG_PRICE && it->metric != NULL ? ref_id(y, TG_CATALOG_METER, it->metric) : NULL;
        const char *ep = it->kind == TG_CATALOG_PRODUCT ? "/v1/products"
                         : it->kind == TG_CATALOG_METER ? "/v1/billing/meters"
                                                        : "/v1/prices";
        rc = tg_catalog_form(it, prod, meter, &f, &err);
        if (rc == 0 && e->act == ACT_REPLACE)
            rc = tg_form_add(&f, "transfer_lookup_key", "true", &err);
        if (rc == 0)
            rc = post(y, ep, &f, e->prior, what, e->id);
        if (rc == 0 && e->act == ACT_REPLACE && e->old_active) {
            tg_form_t g;
            tg_form_init(&g, 0);
            char prior[160];
            snprintf(prior, sizeof(prior), "replaced by %s", e->id);
            snprintf(path, sizeof(path), "/v1/prices/%s", e->old_id);
            snprintf(what, sizeof(what), "deactivate price %s (%s)", e->old_id, it->key);
            rc = tg_form_add(&g, "active", "false", &err);
            if (rc == 0)
                rc = post(y, path, &g, prior, what, NULL);
            tg_form_free(&g);
        }
    }
    tg_form_free(&f);
    if (rc != 0 && err.msg[0] != '\0')
        fprintf(stderr, "tollgate stripe sync-catalog: %s: %s\n", what, err.msg);
    return rc;
}

static void print_entry(const tg_catalog_item_t *it, const plan_entry_t *e, int dry_run)
{
    char detail[640] = "";
    switch (e->act) {
    case ACT_KEEP:
        snprintf(detail, sizeof(detail), "%s", e->id);
        break;
    case ACT_CREATE:
        snprintf(detail, sizeof(detail), "%s", dry_run ? "" : e->id);
        break;
    case ACT_UPDATE:
    case ACT_CONFLICT:
        snprintf(detail, sizeof(detail), "%s (%s)", e->id, e->why);
        break;
    case ACT_REPLACE:
        if (dry_run)
            snprintf(detail, sizeof(detail), "%s (%s)", e->old_id, e->why);
        else
            snprintf(detail, sizeof(detail), "%s replaces %s (%s)%s", e->id, e->old_id, e->why,
                     e->old_active ? "; the old price is deactivated" : "");
        break;
    }
    if (detail[0] == '\0')
        printf("%-8s %-7s %s\n", action_names[e->act], kind_names[it->kind], it->key);
    else
        printf("%-8s %-7s %-32s %s\n", action_names[e->act], kind_names[it->kind], it->key, detail);
}

/* ---- the command ---- */

int tg_stripe_catalog_report(const tg_config_t *cfg)
{
    if (!cfg->stripe.enabled || cfg->stripe.billing != TG_STRIPE_BILLING_STRIPE)
        return 0;
    tg_catalog_t c;
    tg_err_t err = {0};
    if (tg_catalog_build(cfg, &c, &err) != 0) {
        fprintf(stderr, "%s: %s\n", cfg->path, err.msg);
        return -1;
    }
    int n = (int)c.nrefusals;
    for (size_t i = 0; i < c.nrefusals; i++) {
        const tg_catalog_refusal_t *r = &c.refusals[i];
        fprintf(stderr, "%s:%d: plans.%s.%s: Stripe cannot bill this exactly (stripe.billing: stripe): %s\n", cfg->path,
                r->line, r->plan, r->field, r->why);
    }
    tg_catalog_free(&c);
    return n;
}

static int sync_catalog(const tg_config_t *cfg, int dry_run)
{
    tg_catalog_t cat;
    tg_err_t err = {0};
    if (tg_catalog_build(cfg, &cat, &err) != 0) {
        fprintf(stderr, "tollgate stripe sync-catalog: %s\n", err.msg);
        return 1;
    }
    sync_t y = {.s = {cfg->stripe.secret_key, cfg->stripe.api_base, 30000, NULL}, .cat = &cat};
    y.plan = calloc(cat.nitems + 1, sizeof(*y.plan));
    y.products = json_array();
    y.meters = json_array();
    y.prices = json_object();
    y.stale = json_array();
    int exit_code = 1;
    if (y.plan == NULL || y.products == NULL || y.meters == NULL || y.prices == NULL || y.stale == NULL) {
        fprintf(stderr, "tollgate stripe sync-catalog: out of memory\n");
        goto out;
    }
    static const char *const active_meters[] = {"status", "active", NULL};
    if (list_all(&y, "/v1/products", NULL, is_tollgate_product, y.products) != 0 ||
        list_all(&y, "/v1/billing/meters", active_meters, NULL, y.meters) != 0 || list_prices(&y) != 0)
        goto out;

    size_t n[5] = {0};
    for (size_t i = 0; i < cat.nitems; i++) {
        const tg_catalog_item_t *it = &cat.items[i];
        plan_entry_t *e = &y.plan[i];
        if (it->kind == TG_CATALOG_PRODUCT)
            decide_product(&y, it, e);
        else if (it->kind == TG_CATALOG_METER)
            decide_meter(&y, it, e);
        else
            decide_price(&y, it, e);
        n[e->act]++;
    }
    if (n[ACT_CONFLICT] > 0) {
        for (size_t i = 0; i < cat.nitems; i++)
            if (y.plan[i].act == ACT_CONFLICT) {
                print_entry(&cat.items[i], &y.plan[i], 1);
                fprintf(stderr,
                        "tollgate stripe sync-catalog: meter %s (%s) exists with %s; Stripe cannot change a meter's "
                        "aggregation or mappings: deactivate it in Stripe and run again. Nothing was sent.\n",
                        cat.items[i].key, y.plan[i].id, y.plan[i].why);
            }
        goto out;
    }
    if (find_stale(&y) != 0)
        goto out;
    size_t retire = json_array_size(y.stale);
    size_t changes = n[ACT_CREATE] + n[ACT_UPDATE] + n[ACT_REPLACE] + retire;
    for (size_t i = 0; i < cat.nitems; i++) {
        if (!dry_run && execute(&y, i) != 0)
            goto stopped;
        print_entry(&cat.items[i], &y.plan[i], dry_run);
    }
    for (size_t i = 0; i < retire; i++) {
        const json_t *p = json_array_get(y.stale, i);
        if (!dry_run) {
            char path[256], what[256];
            tg_form_t f;
            tg_form_init(&f, 0);
            snprintf(path, sizeof(path), "/v1/prices/%s", str_of(p, "id"));
            snprintf(what, sizeof(what), "retire price %s", str_of(p, "id"));
            int rc = tg_form_add(&f, "active", "false", &err);
            if (rc == 0)
                rc = post(&y, path, &f, "retire", what, NULL);
            tg_form_free(&f);
            if (rc != 0)
                goto stopped;
        }
        print_retire(p);
    }
    if (changes == 0)
        printf("Stripe's catalog is up to date: nothing to change (%zu objects)\n", cat.nitems);
    else if (dry_run)
        printf("dry run: would create %zu, update %zu, replace %zu, retire %zu, keep %zu; nothing was sent\n",
               n[ACT_CREATE], n[ACT_UPDATE], n[ACT_REPLACE], retire, n[ACT_KEEP]);
    else
        printf("created %zu, updated %zu, replaced %zu, retired %zu, kept %zu\n", n[ACT_CREATE], n[ACT_UPDATE],
               n[ACT_REPLACE], retire, n[ACT_KEEP]);
    exit_code = 0;
    goto out;
stopped:
    fflush(stdout);
    fprintf(stderr, "tollgate stripe sync-catalog: stopped; what was done stays done, and running the command again "
                    "continues from there\n");
out:
    json_decref(y.products);
    json_decref(y.meters);
    json_decref(y.prices);
    json_decref(y.stale);
    free(y.plan);
    tg_catalog_free(&cat);
    return exit_code;
}

static int cmd_sync_catalog(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int dry_run = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'n':
            dry_run = 1;
            break;
        case 'h':
            fputs(stripe_usage, stdout);
            return 0;
        case ':':
            fprintf(stderr, "tollgate stripe sync-catalog: option %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tollgate stripe sync-catalog: unknown option %s (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate stripe sync-catalog: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (path == NULL) {
        fprintf(stderr, "tollgate stripe sync-catalog: -c FILE is required\n");
        return 2;
    }
    tg_config_t *cfg = tg_stripe_cli_config("tollgate stripe sync-catalog", path);
    if (cfg == NULL)
        return 2;
    int rc = 2;
    if (tg_stripe_catalog_report(cfg) != 0)
        fprintf(stderr, "tollgate stripe sync-catalog: nothing was sent\n");
    else if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fprintf(stderr, "tollgate stripe sync-catalog: libsodium or libcurl failed to initialise\n");
    else {
        rc = sync_catalog(cfg, dry_run);
        curl_global_cleanup();
    }
    tg_config_free(cfg);
    return rc;
}

/* The `tollgate stripe` subcommands (others, like reconcile, join this table). */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
} stripe_commands[] = {
    {"sync-catalog", cmd_sync_catalog},
    {"reconcile", tg_cmd_stripe_reconcile}, /* cmd_stripe_reconcile.c */
};

tg_config_t *tg_stripe_cli_config(const char *cmd, const char *path)
{
    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(path, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s%s", errbuf, errbuf[0] != '\0' && errbuf[strlen(errbuf) - 1] != '\n' ? "\n" : "");
        return NULL;
    }
    if (cfg->stripe.enabled && cfg->stripe.billing == TG_STRIPE_BILLING_STRIPE)
        return cfg;
    if (!cfg->stripe.enabled)
        fprintf(stderr, "%s: %s has no stripe section\n", cmd, path);
    else
        fprintf(stderr,
                "%s: %s has stripe.billing: tollgate. When stripe.billing is tollgate, tollgate computes the "
                "invoices and Stripe's are copies of them, line for line; this command is for billing: stripe\n",
                cmd, path);
    tg_config_free(cfg);
    return NULL;
}

int tg_cmd_stripe(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(stripe_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(stripe_commands) / sizeof(stripe_commands[0]); i++)
        if (strcmp(argv[1], stripe_commands[i].name) == 0)
            return stripe_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tollgate stripe: unknown subcommand \"%s\"\n\n%s", argv[1], stripe_usage);
    return 2;
}
