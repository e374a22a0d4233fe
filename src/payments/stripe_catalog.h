/* stripe_catalog.h - the Stripe catalog that `stripe.billing: stripe` needs, computed from the plans.
 *
 * With billing: stripe, Stripe computes the invoices, so every plan must exist in Stripe as
 * objects that price usage exactly as tollgate's pricing core does (billing/pricing.h):
 *   - a Product per plan, metadata[tollgate_plan] = the plan id;
 *   - a licensed recurring Price for the base fee, lookup_key tollgate_<plan>_base;
 *   - a Billing Meter per metric that some plan charges for (event_name = the metric, sum of the
 *     payload's `value`, customer by the payload's `stripe_customer_id`);
 *   - a metered Price per charge, lookup_key tollgate_<plan>_<metric>, tied to the metric's meter.
 * This module only decides what those objects must look like (their create parameters, in
 * Stripe's form keys) and whether an object that exists in Stripe still matches; the CLI
 * (cli/cmd_stripe.c) lists, creates and updates them. What Stripe cannot price exactly is refused
 * here, with the plan, the field and the reason, and no object of a refused plan is built:
 *   - minimum and maximum (Stripe prices have no commitment or cap);
 *   - two charges on one metric in a plan (one lookup key, and Stripe bills a meter per price);
 *   - a volume or package charge with an included allowance (the tier or the package count
 *     would be chosen from all the usage, not from the usage above the allowance);
 *   - a tier flat fee that is not a whole number of minor units (Stripe's flat_amount_decimal
 *     is "a decimal value representing an integer in the minor units");
 *   - a negative amount, a currency without known minor units, a lookup key past 200 characters.
 * Included usage becomes a free first tier where that is exact: per_unit and graduated charges
 * (tiers shifted up by the allowance). Amounts go to Stripe in the unit Stripe's API counts the
 * currency in (the ISO minor unit, except ISK, which Stripe counts in hundredths): a base
 * fee as unit_amount when whole, unit_amount_decimal otherwise; usage prices always as decimals.
 * tg_money_t has 9 decimals of the major unit, so at most 9 decimals of the minor unit, within
 * Stripe's 12: no amount is ever too precise for Stripe.
 *
 * Pure: no I/O, no clock, no globals; any thread. */
#ifndef TG_STRIPE_CATALOG_H
#define TG_STRIPE_CATALOG_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"
#include "payments/stripe_form.h"
#include "util/err.h"

#define TG_CATALOG_KEY_MAX 201    /* Stripe's lookup keys have up to 200 characters */
#define TG_CATALOG_FIELD_MAX 256  /* a form key or value of the catalog (names are up to 200) */
#define TG_CATALOG_FIELDS_MAX 160 /* 32 tiers x 3 fields + the rest */

typedef enum tg_catalog_kind {
    TG_CATALOG_PRODUCT = 0,
    TG_CATALOG_METER = 1,
    TG_CATALOG_PRICE = 2,
} tg_catalog_kind_t;

/* A field whose value is the Stripe id of another catalog object, known only once it exists. */
typedef enum tg_catalog_ref {
    TG_CATALOG_REF_NONE = 0,
    TG_CATALOG_REF_PRODUCT = 1, /* the plan's product */
    TG_CATALOG_REF_METER = 2,   /* the metric's meter */
} tg_catalog_ref_t;

typedef struct tg_catalog_field {
    char key[64];                     /* Stripe's form key: "tiers[0][up_to]" */
    char value[TG_CATALOG_FIELD_MAX]; /* "" for a reference */
    tg_catalog_ref_t ref;
} tg_catalog_field_t;

typedef struct tg_catalog_item {
    tg_catalog_kind_t kind;
    char key[TG_CATALOG_KEY_MAX]; /* product: plan id; meter: metric; price: its lookup key */
    const char *plan;             /* borrowed from the config; NULL for a meter */
    const char *metric;           /* meter and metered price; NULL otherwise */
    tg_catalog_field_t *fields;   /* the create parameters, in the order they are sent */
    size_t nfields;
} tg_catalog_item_t;

typedef struct tg_catalog_refusal {
    const char *plan; /* borrowed from the config */
    int line;         /* the plan's line in the configuration file */
    char field[96];   /* "minimum", "charges[1] (tokens)" */
    char why[320];
} tg_catalog_refusal_t;

/* The desired catalog: products first, then meters, then prices (each refers only to objects
 * before it). Owned; tg_catalog_free. */
typedef struct tg_catalog {
    tg_catalog_item_t *items;
    size_t nitems;
    tg_catalog_refusal_t *refusals; /* what Stripe cannot price exactly; the plan is left out */
    size_t nrefusals;
} tg_catalog_t;

/* Builds the catalog of every plan in cfg (cfg must outlive the catalog: items borrow plan ids
 * and metrics). Returns 0 with out filled, refusals included (the catalog may be synced only when
 * out->nrefusals is 0); TG_ENOMEM (out is then empty). */
int tg_catalog_build(const tg_config_t *cfg, tg_catalog_t *out, tg_err_t *err);

void tg_catalog_free(tg_catalog_t *c);

/* The item of kind and key, or NULL. */
const tg_catalog_item_t *tg_catalog_find(const tg_catalog_t *c, tg_catalog_kind_t kind, const char *key);

/* Appends an item's create parameters to f, its references written as product_id / meter_id
 * (which may be NULL only when the item has no such reference). TG_EINVAL for a missing
 * reference, TG_ELIMIT past the form's cap. */
int tg_catalog_form(const tg_catalog_item_t *it, const char *product_id, const char *meter_id, tg_form_t *f,
                    tg_err_t *err);

/* Whether an object Stripe returned (a product, a billing.meter, or a price listed with
 * expand[]=data.tiers) prices and behaves as `it` wants, references resolved as product_id /
 * meter_id. Returns 1 when it matches; 0 when not, with the first difference in why
 * ("unit_amount_decimal is 0.04, not 0.05"). Decimals compare by value ("0.50" = "0.5"), a tier's
 * missing amounts count 0, metadata is not compared for prices (it does not price), and a
 * product's or price's `active` is not compared (the caller reactivates). */
int tg_catalog_matches(const tg_catalog_item_t *it, const char *product_id, const char *meter_id, const json_t *obj,
                       char *why, size_t whycap);

/* A decimal amount in the minor unit, exact, no trailing zeros ("0.05", "4900", "0"): amount in
 * nano-units of the major unit of a currency with `digits` minor digits (0..9). Returns the length,
 * or TG_ERANGE when cap is too small or digits is outside 0..9. */
int tg_catalog_minor_decimal(tg_money_t amount, int digits, char *buf, size_t cap);

#endif
