/* admin_search.c - the owner's customer list with search, filters and a choice of order:
 * GET /v1/admin/customers?q=&plan=&status=&sort=&order=&limit=&cursor= (docs/api.md).
 *
 * This adapter only reads and checks the parameters; the store does the search
 * (tg_store_customer_search, store.h, which says what matches and why). Without any of q, plan,
 * status, sort and order the list is the one it always was (admin_lists.c). A cursor carries
 * its order in the list's name ("customers.email.asc"): a cursor of one order passed with
 * another is a 400, never a page that silently skips rows; the filters may change between pages
 * (the cursor is a position in the order, not in the result). */
#include <string.h>

#include "admin/admin_int.h"
#include "util/utf8.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int tg_adm_query_text(const tg_admin_request_t *r, const char *name, char *out, size_t cap)
{
    char raw[3 * 256];
    int got = tg_adm_query_param(r, name, raw, sizeof(raw));
    if (got <= 0)
        return got;
    size_t n = 0;
    for (const char *p = raw; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) /* a bad escape, or a NUL */
                return -1;
            c = hi * 16 + lo;
            p += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    char check[3 * 256]; /* n < cap <= ... : valid UTF-8 is what the scrub leaves unchanged */
    if (n >= sizeof(check))
        return -1;
    memcpy(check, out, n + 1);
    tg_utf8_scrub(check);
    return strcmp(check, out) == 0 ? 1 : -1;
}

static int one_of(const char *v, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

static int valid_plan_id(const char *s)
{
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

void tg_adm_search_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    static const char *const statuses[] = {"trialing", "active",     "past_due", "suspended",
                                           "canceled", "incomplete", NULL};
    static const char *const sorts[] = {"created", "email", "name", NULL};
    char q[TG_CUSTOMER_SEARCH_MAX] = "", plan[TG_PLAN_ID_MAX] = "", status[TG_STATUS_MAX] = "", sort[16] = "created",
         order[8] = "";
    if (tg_adm_query_text(r, "q", q, sizeof(q)) < 0) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "q: at most %d bytes of percent-encoded UTF-8.",
                           TG_CUSTOMER_SEARCH_MAX - 1);
        return;
    }
    if (tg_adm_query_text(r, "plan", plan, sizeof(plan)) < 0 || !valid_plan_id(plan)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "plan: a plan id.");
        return;
    }
    if (tg_adm_query_text(r, "status", status, sizeof(status)) < 0 ||
        (status[0] != '\0' && !one_of(status, statuses))) {
        tg_adm_reply_error(res, 400, "invalid_parameter",
                           "status: trialing, active, past_due, suspended, canceled or incomplete.");
        return;
    }
    if (tg_adm_query_text(r, "sort", sort, sizeof(sort)) < 0 || !one_of(sort, sorts)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "sort: created, email or name.");
        return;
    }
    tg_customer_query_t cq = {q, plan, status, tg_adm_now_s(), TG_CUSTOMER_SORT_CREATED, 0};
    cq.sort = strcmp(sort, "email") == 0  ? TG_CUSTOMER_SORT_EMAIL
              : strcmp(sort, "name") == 0 ? TG_CUSTOMER_SORT_NAME
                                          : TG_CUSTOMER_SORT_CREATED;
    cq.ascending = cq.sort != TG_CUSTOMER_SORT_CREATED; /* newest first; A to Z */
    int got = tg_adm_query_text(r, "order", order, sizeof(order));
    if (got < 0 || (got > 0 && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "order: asc or desc.");
        return;
    }
    if (got > 0)
        cq.ascending = strcmp(order, "asc") == 0;
    /* the historical order keeps its cursors' list name: its keys are the same */
    char list[40] = "customers";
    if (cq.sort != TG_CUSTOMER_SORT_CREATED || cq.ascending)
        snprintf(list, sizeof(list), "customers.%s.%s", sort, cq.ascending ? "asc" : "desc");
    tg_page_t page;
    if (tg_adm_page_parse(r, list, &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    tg_adm_list_ctx_t lc = {a, json_array()};
    int rc = tg_store_customer_search(a->d.store, &cq, &page, tg_adm_list_customer_cb, &lc, &end, &err);
    if (rc != 0) {
        json_decref(lc.arr);
        tg_adm_reply_list_error(res, rc, "customers", &err);
        return;
    }
    tg_adm_reply_page(res, list, lc.arr, &end);
}
