/* admin_display.c - what people read beside the figures (issue 15): each metric's display name
 * and unit (metering.metrics) and the portal's branding (portal.title, logo, primary_color,
 * support_email, terms_url, privacy_url, highlight) and each plan's endpoints in words, for the
 * public GET /v1/plans, and the logo's origin for
 * the Content-Security-Policy of HTML pages.
 *
 * The pages format money and numbers themselves (web/portal/format.js); the API keeps exact
 * decimal strings. Runs on the admin loop; reads only the immutable configuration. */
#include <jansson.h>
#include <string.h>

#include "admin/admin_int.h"
#include "apiref/openapi.h"

/* metrics.<id> = {name, unit} for one id, once. */
static void add_metric(json_t *metrics, const tg_config_t *cfg, const char *id)
{
    if (id == NULL || json_object_get(metrics, id) != NULL)
        return;
    json_object_set_new(
        metrics, id,
        json_pack("{s:s,s:s}", "name", tg_config_metric_name(cfg, id), "unit", tg_config_metric_unit(cfg, id)));
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *tg_adm_metrics_json(const tg_config_t *cfg)
{
    json_t *m = json_object();
    for (size_t i = 0; i < cfg->metering.nmetrics; i++)
        add_metric(m, cfg, cfg->metering.metrics[i].metric);
    add_metric(m, cfg, "api_calls");
    for (size_t i = 0; i < cfg->nplans; i++) {
        const tg_plan_t *p = &cfg->plans[i];
        for (size_t j = 0; j < p->nincluded; j++)
            add_metric(m, cfg, p->included[j].metric);
        for (size_t j = 0; j < p->ncharges; j++)
            add_metric(m, cfg, p->charges[j].metric);
    }
    for (size_t i = 0; i < cfg->nroutes; i++)
        for (size_t j = 0; j < cfg->routes[i].nmeter; j++)
            add_metric(m, cfg, cfg->routes[i].meter[j].metric);
    return m;
}

json_t *tg_adm_portal_brand_json(const tg_config_t *cfg)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "title", str_or_null(cfg->portal.title), "logo",
                     str_or_null(cfg->portal.logo), "primary_color", str_or_null(cfg->portal.primary_color),
                     "support_email", str_or_null(cfg->portal.support_email), "terms_url",
                     str_or_null(cfg->portal.terms_url), "privacy_url", str_or_null(cfg->portal.privacy_url),
                     "highlight", str_or_null(cfg->portal.highlight));
}

json_t *tg_adm_public_plan_json(const tg_config_t *cfg, const tg_plan_t *p)
{
    json_t *j = tg_adm_plan_json(p);
    if (j == NULL)
        return NULL;
    json_t *names = json_null();
    if (p->nendpoints > 0 || p->endpoints != NULL) {
        const char *const *words;
        size_t n = tg_openapi_plan_words(cfg->portal.openapi_doc, p->id, &words);
        names = json_array();
        for (size_t i = 0; names != NULL && i < n; i++)
            json_array_append_new(names, json_string(words[i]));
        for (size_t i = 0; names != NULL && n == 0 && i < p->nendpoints; i++) /* no document: the patterns */
            json_array_append_new(names, json_string(p->endpoints[i]));
    }
    json_object_set_new(j, "endpoint_names", names);
    json_object_set_new(j, "self_service", json_boolean(tg_config_self_service(cfg, p->id)));
    return j;
}

void tg_adm_brand_csp(const tg_config_t *cfg, tg_admin_response_t *res)
{
    res->img_origin[0] = '\0';
    const char *logo = cfg->portal.logo;
    if (logo == NULL || logo[0] == '/' || res->content_type == NULL || strncmp(res->content_type, "text/html", 9) != 0)
        return;
    /* scheme://host[:port]: the config checked that the host holds no ';', ',', quote or space */
    const char *host = strstr(logo, "://");
    if (host == NULL)
        return;
    size_t n = (size_t)(host + 3 - logo) + strcspn(host + 3, "/?#");
    if (n < sizeof(res->img_origin)) {
        memcpy(res->img_origin, logo, n);
        res->img_origin[n] = '\0';
    }
}
