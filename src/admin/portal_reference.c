/* portal_reference.c - GET /v1/reference: the upstream API's OpenAPI document (portal.openapi),
 * enriched per operation with the plans that include it and what a call costs
 * (apiref/openapi.h), for the portal's reference page (web/portal/reference.html).
 *
 * Public like /v1/plans: an API reference is what a developer reads before signing up, and the
 * document holds nothing the gateway's own 403 would not tell. Nothing here touches the store,
 * so it answers on the admin loop (the quick path); the document is immutable and lives as long
 * as the configuration that named it. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "apiref/openapi.h"

int tg_adm_reference(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!(s->n == 2 && tg_adm_seg_is(s, 0, "v1") && tg_adm_seg_is(s, 1, "reference")))
        return 0;
    if (!tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
        return 1;
    }
    const tg_config_t *cfg = tg_adm_cfg(a);
    if (cfg->portal.openapi_doc == NULL) {
        tg_adm_reply_error(res, 404, "reference_not_configured",
                           "This service publishes no API reference (portal.openapi is not set).");
        return 1;
    }
    /* rendered once when the configuration loaded (tg_openapi_prepare): a copy, not a rebuild */
    size_t len;
    const char *body = tg_openapi_body(cfg->portal.openapi_doc, &len);
    if (body == NULL || (res->body = malloc(len + 1)) == NULL) {
        tg_adm_reply_error(res, 500, "internal_error", "The API reference could not be served (out of memory).");
        return 1;
    }
    memcpy(res->body, body, len + 1);
    res->body_len = len;
    res->status = 200;
    res->content_type = "application/json";
    return 1;
}

void tg_adm_reference_page(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    static const char page[] = "/portal/reference.html";
    const tg_config_t *cfg = tg_adm_cfg(a);
    if (res->status == 200 && r->path_len == sizeof(page) - 1 && memcmp(r->path, page, sizeof(page) - 1) == 0 &&
        cfg->portal.openapi_doc != NULL && cfg->public_urls.gateway != NULL)
        res->connect_src = cfg->public_urls.gateway;
}
