/* cmd_admin.c - `tollgate customers|keys|usage`: the admin API from the command line.
 *
 * Each command is one or two HTTP calls (libcurl) to a running server's admin port, with the
 * admin token from TOLLGATE_ADMIN_TOKEN or the config file. Output is a table for people, or the
 * API's JSON with --json for scripts. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin_commands.h"
#include "config/config.h"
#include "util/money_text.h"

#define MAX_RESPONSE (16 * 1024 * 1024)

typedef struct opts {
    const char *server;
    const char *config;
    int json;
    const char *name, *email, *plan, *period, *customer, *when, *description, *amount;
    const char *actor, *action, *target_type, *target_id, *from, *to; /* tollgate audit */
    int test_mode, daily, now;
    long grace;
    int argc;
    char **argv; /* positional arguments after the subcommand */
} opts_t;

typedef struct buf {
    char *p;
    size_t len;
} buf_t;

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    size_t add = size * n;
    if (b->len + add > MAX_RESPONSE)
        return 0;
    char *np = realloc(b->p, b->len + add + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->len, ptr, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* Calls the admin API. Returns the HTTP status (or -1 with a message printed) and the parsed
 * body in *out (may be NULL if the body is not JSON). */
static long call_api(const opts_t *o, const char *method, const char *path, json_t *body, json_t **out)
{
    static char server[512], token[512];
    *out = NULL;
    const char *srv = o->server, *tok = getenv("TOLLGATE_ADMIN_TOKEN");
    if (o->config != NULL && (srv == NULL || tok == NULL)) {
        char errbuf[4096];
        tg_config_t *cfg = NULL;
        if (tg_config_load(o->config, &cfg, errbuf, sizeof(errbuf)) != 0) {
            fprintf(stderr, "%s", errbuf);
            return -1;
        }
        if (srv == NULL) {
            snprintf(server, sizeof(server), "%s://%s", /* the admin listener (server.admin_listen is kept equal) */
                     cfg->listeners[TG_LISTENER_ADMIN].certificate != NULL ? "https" : "http", cfg->server.admin_listen);
            srv = server;
        }
        if (tok == NULL) {
            snprintf(token, sizeof(token), "%s", cfg->admin.token);
            tok = token;
        }
        tg_config_free(cfg);
    }
    if (srv == NULL)
        srv = getenv("TOLLGATE_SERVER");
    if (srv == NULL)
        srv = "http://127.0.0.1:8081";
    if (tok == NULL || *tok == '\0') {
        fprintf(stderr, "tollgate: no admin token: set TOLLGATE_ADMIN_TOKEN or pass -c CONFIG\n");
        return -1;
    }
    char url[1024], auth[600];
    snprintf(url, sizeof(url), "%s%s", srv, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "tollgate: cannot initialise libcurl\n");
        return -1;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    /* the audit log names the tollgate command as the actor ("cli") rather than a script */
    hdrs = curl_slist_append(hdrs, "X-Tollgate-Client: cli");
    char *payload = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    buf_t b = {NULL, 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (payload != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK)
        fprintf(stderr, "tollgate: cannot reach the admin API at %s: %s\n", srv, curl_easy_strerror(rc));
    else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (b.p != NULL)
            *out = json_loadb(b.p, b.len, 0, NULL);
    }
    free(b.p);
    free(payload);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return status;
}

/* GETs every page of a paged list (docs/api.md, "Lists and pagination"), 1,000 items a page,
 * following next_cursor; *out receives {"data": [all items]}, or the failing page's body. A
 * cursor must move on every page: a server that repeats one would loop, so that stops it. */
static long call_api_all(const opts_t *o, const char *path, json_t **out)
{
    json_t *all = json_array();
    char url[1024], cursor[512] = "";
    long status;
    *out = NULL;
    for (;;) {
        int n = snprintf(url, sizeof(url), "%s%climit=1000%s%s", path, strchr(path, '?') ? '&' : '?',
                         cursor[0] ? "&cursor=" : "", cursor);
        if (n < 0 || (size_t)n >= sizeof(url)) {
            fprintf(stderr, "tollgate: the list's address is too long\n");
            json_decref(all);
            return -1;
        }
        json_t *page = NULL;
        status = call_api(o, "GET", url, NULL, &page);
        if (status != 200) {
            json_decref(all);
            *out = page;
            return status;
        }
        json_array_extend(all, json_object_get(page, "data"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        int more = json_is_true(json_object_get(page, "has_more")) && next != NULL && strlen(next) < sizeof(cursor) &&
                   strcmp(next, cursor) != 0;
        if (more)
            snprintf(cursor, sizeof(cursor), "%s", next);
        json_decref(page);
        if (!more)
            break;
    }
    *out = json_pack("{s:o}", "data", all);
    return status;
}

/* Prints the API's error for a non-2xx status; returns the exit code. */
static int api_failed(long status, json_t *j)
{
    if (status < 0)
        return 1;
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    fprintf(stderr, "tollgate: the admin API answered %ld%s%s%s%s\n", status, type ? " " : "", type ? type : "",
            msg ? ": " : "", msg ? msg : "");
    return 1;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL && *s != '\0' ? s : "-";
}

/* An amount of o's currency for people ("$49.00", "€0.50"), right-aligned in `width` columns
 * (the symbol may take several bytes for one column); as given when it is not a plain decimal. */
static void print_money(const char *amount, const char *currency, int width)
{
    char text[80];
    const char *t = tg_money_text(amount, currency, text, sizeof(text)) >= 0 ? text : amount;
    int cols = 0;
    for (const char *p = t; *p != '\0'; p++)
        cols += ((unsigned char)*p & 0xC0) != 0x80; /* UTF-8: count lead bytes */
    printf("%*s%s", cols < width ? width - cols : 0, "", t);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

/* Prints rows of cells with columns padded to the widest cell. */
static void print_table(const char *const *head, size_t ncol, const char **cells, size_t nrows)
{
    size_t w[16] = {0};
    for (size_t c = 0; c < ncol && c < 16; c++) {
        w[c] = strlen(head[c]);
        for (size_t r = 0; r < nrows; r++)
            if (strlen(cells[r * ncol + c]) > w[c])
                w[c] = strlen(cells[r * ncol + c]);
    }
    for (size_t c = 0; c < ncol; c++)
        printf("%-*s%s", (int)w[c], head[c], c + 1 < ncol ? "  " : "\n");
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncol; c++)
            printf("%-*s%s", (int)w[c], cells[r * ncol + c], c + 1 < ncol ? "  " : "\n");
}

static int parse_opts(int argc, char **argv, opts_t *o, const char *usage)
{
    static const struct option lo[] = {
        {"server", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},         {"name", required_argument, NULL, 'n'},
        {"email", required_argument, NULL, 'e'},  {"plan", required_argument, NULL, 'p'},
        {"period", required_argument, NULL, 'P'}, {"test", no_argument, NULL, 't'},
        {"daily", no_argument, NULL, 'd'},        {"grace", required_argument, NULL, 'g'},
        {"customer", required_argument, NULL, 'C'}, {"when", required_argument, NULL, 'W'},
        {"now", no_argument, NULL, 'N'},          {"description", required_argument, NULL, 'D'},
        {"amount", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'},
        {"actor", required_argument, NULL, 1},    {"action", required_argument, NULL, 2},
        {"target-type", required_argument, NULL, 3}, {"target-id", required_argument, NULL, 4},
        {"from", required_argument, NULL, 5},     {"to", required_argument, NULL, 6},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->grace = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":s:c:jh", lo, NULL)) != -1) {
        switch (c) {
        case 's': o->server = optarg; break;
        case 'c': o->config = optarg; break;
        case 'j': o->json = 1; break;
        case 'n': o->name = optarg; break;
        case 'e': o->email = optarg; break;
        case 'p': o->plan = optarg; break;
        case 'P': o->period = optarg; break;
        case 'C': o->customer = optarg; break;
        case 'W': o->when = optarg; break;
        case 'N': o->now = 1; break;
        case 'D': o->description = optarg; break;
        case 'A': o->amount = optarg; break;
        case 1: o->actor = optarg; break;
        case 2: o->action = optarg; break;
        case 3: o->target_type = optarg; break;
        case 4: o->target_id = optarg; break;
        case 5: o->from = optarg; break;
        case 6: o->to = optarg; break;
        case 't': o->test_mode = 1; break;
        case 'd': o->daily = 1; break;
        case 'g': {
            char *end;
            o->grace = strtol(optarg, &end, 10);
            if (*end != '\0' || o->grace < 0) {
                fprintf(stderr, "tollgate: --grace needs a number of seconds, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': printf("%s", usage); return 1;
        case ':': fprintf(stderr, "tollgate: option %s needs a value\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "tollgate: unknown option %s\n%s", argv[optind - 1], usage); return 2;
        }
    }
    o->argc = argc - optind;
    o->argv = argv + optind;
    return 0;
}

static const char customers_usage[] =
    "usage: tollgate customers add --email E --plan P [--name N]\n"
    "       tollgate customers list\n"
    "       tollgate customers show ID\n"
    "       tollgate customers set-plan ID PLAN [--when now|period_end]\n"
    "       tollgate customers cancel ID [--now]\n"
    "       tollgate customers add-item ID --description D --amount A\n"
    "       tollgate customers suspend ID | resume ID\n"
    "set-plan: an upgrade takes effect at once (prorated), a downgrade at the period's end (at once\n"
    "during a trial); --when overrides. cancel: at the period's end, or --now with a final invoice.\n"
    "add-item: a one-off charge on the next invoice; a negative --amount (\"-12.50\") is a credit.\n"
    "options: --server URL (admin API, default http://127.0.0.1:8081) -c CONFIG --json\n"
    "The admin token comes from TOLLGATE_ADMIN_TOKEN or the config's admin.token.\n";

static void print_customer(json_t *c)
{
    json_t *p = json_object_get(c, "current_period");
    printf("id:       %s\nemail:    %s\nname:     %s\nplan:     %s\nstatus:   %s\ncreated:  %s\n", str(c, "id"),
           str(c, "email"), str(c, "name"), str(c, "plan"), str(c, "status"), str(c, "created_at"));
    if (json_is_string(json_object_get(c, "trial_end")))
        printf("trial:    until %s\n", str(c, "trial_end"));
    printf("period:   %s to %s\n", str(p, "start"), str(p, "end"));
    if (json_is_string(json_object_get(c, "pending_plan")))
        printf("pending:  plan %s from %s\n", str(c, "pending_plan"), str(c, "pending_at"));
    if (json_is_string(json_object_get(c, "cancel_at")))
        printf("cancel:   %s %s\n", strcmp(str(c, "status"), "canceled") == 0 ? "canceled at" : "at",
               str(c, "cancel_at"));
}

/* One line after a change: the plan, the status and what is scheduled. */
static void print_change(json_t *c)
{
    printf("Customer %s: plan %s, status %s", str(c, "id"), str(c, "plan"), str(c, "status"));
    if (json_is_string(json_object_get(c, "pending_plan")))
        printf("; changes to %s on %s", str(c, "pending_plan"), str(c, "pending_at"));
    if (json_is_string(json_object_get(c, "cancel_at")) && strcmp(str(c, "status"), "canceled") != 0)
        printf("; cancels on %s", str(c, "cancel_at"));
    printf("\n");
}

int tg_cmd_customers(int argc, char **argv)
{
    opts_t o;
    if (argc < 2) {
        fprintf(stderr, "%s", customers_usage);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        printf("%s", customers_usage);
        return 0;
    }
    int rc = parse_opts(argc - 1, argv + 1, &o, customers_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *res = NULL, *body = NULL;
    long status;
    char path[512];
    int exit_code = 0;
    if (strcmp(sub, "add") == 0) {
        if (o.email == NULL || o.plan == NULL || o.argc != 0) {
            fprintf(stderr, "tollgate customers add: --email and --plan are required\n");
            return 2;
        }
        body = json_pack("{s:s,s:s,s:s}", "email", o.email, "plan", o.plan, "name", o.name ? o.name : "");
        status = call_api(&o, "POST", "/v1/admin/customers", body, &res);
        if (status != 201)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            printf("Created customer %s (%s) on plan %s", str(res, "id"), str(res, "email"), str(res, "plan"));
            if (json_is_string(json_object_get(res, "trial_end")))
                printf(", trialing until %s", str(res, "trial_end"));
            printf("\n");
        }
    } else if (strcmp(sub, "list") == 0) {
        status = call_api_all(&o, "/v1/admin/customers", &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            json_t *data = json_object_get(res, "data");
            size_t n = json_array_size(data), i;
            const char **cells = calloc(n * 5 + 1, sizeof(char *));
            json_t *c;
            json_array_foreach(data, i, c)
            {
                cells[i * 5] = str(c, "id");
                cells[i * 5 + 1] = str(c, "email");
                cells[i * 5 + 2] = str(c, "plan");
                cells[i * 5 + 3] = str(c, "status");
                cells[i * 5 + 4] = str(c, "created_at");
            }
            static const char *const head[] = {"ID", "EMAIL", "PLAN", "STATUS", "CREATED"};
            print_table(head, 5, cells, n);
            free(cells);
        }
    } else if (strcmp(sub, "cancel") == 0 || strcmp(sub, "add-item") == 0) {
        int cancel = strcmp(sub, "cancel") == 0;
        if (o.argc != 1 || (!cancel && (o.description == NULL || o.amount == NULL))) {
            fprintf(stderr, "tollgate customers %s: expected %s\n", sub,
                    cancel ? "ID [--now]" : "ID --description D --amount A");
            return 2;
        }
        snprintf(path, sizeof(path), "/v1/admin/customers/%s/%s", o.argv[0], cancel ? "cancel" : "items");
        body = cancel ? json_pack("{s:b}", "at_period_end", !o.now)
                      : json_pack("{s:s,s:s}", "description", o.description, "amount", o.amount);
        status = call_api(&o, "POST", path, body, &res);
        if (status != (cancel ? 200 : 201))
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else if (cancel)
            print_change(res);
        else
        {
            printf("Added \"%s\" (", str(res, "description"));
            print_money(str(res, "amount"), str(res, "currency"), 0);
            printf(") to the next invoice of %s\n", str(res, "customer"));
        }
    } else if (strcmp(sub, "show") == 0 || strcmp(sub, "set-plan") == 0 || strcmp(sub, "suspend") == 0 ||
               strcmp(sub, "resume") == 0) {
        int need = strcmp(sub, "set-plan") == 0 ? 2 : 1;
        if (o.argc != need) {
            fprintf(stderr, "tollgate customers %s: expected %s\n", sub, need == 2 ? "ID PLAN" : "ID");
            return 2;
        }
        if (o.when != NULL && need != 2) {
            fprintf(stderr, "tollgate customers %s: --when is for set-plan\n", sub);
            return 2;
        }
        snprintf(path, sizeof(path), "/v1/admin/customers/%s", o.argv[0]);
        if (strcmp(sub, "show") == 0)
            status = call_api(&o, "GET", path, NULL, &res);
        else {
            body = strcmp(sub, "set-plan") == 0 ? json_pack("{s:s}", "plan", o.argv[1])
                                                : json_pack("{s:s}", "status",
                                                            strcmp(sub, "suspend") == 0 ? "suspended" : "active");
            if (o.when != NULL) /* the API checks the value: one place for the rule */
                json_object_set_new(body, "when", json_string(o.when));
            status = call_api(&o, "PATCH", path, body, &res);
        }
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else if (strcmp(sub, "show") == 0)
            print_customer(res);
        else
            print_change(res);
    } else {
        fprintf(stderr, "tollgate customers: unknown subcommand \"%s\"\n%s", sub, customers_usage);
        exit_code = 2;
    }
    json_decref(body);
    json_decref(res);
    curl_global_cleanup();
    return exit_code;
}

static const char keys_usage[] = "usage: tollgate keys create CUSTOMER_ID [--name N] [--test]\n"
                                 "       tollgate keys list CUSTOMER_ID\n"
                                 "       tollgate keys revoke KEY_ID\n"
                                 "       tollgate keys rotate KEY_ID [--grace SECONDS]\n"
                                 "options: --server URL -c CONFIG --json\n";

static void print_secret(json_t *k)
{
    printf("API key %s (%s) for customer %s:\n\n    %s\n\n", str(k, "id"), str(k, "name"), str(k, "customer"),
           str(k, "secret"));
    printf("Store it now: it is shown only once and cannot be recovered.\n");
}

int tg_cmd_keys(int argc, char **argv)
{
    opts_t o;
    if (argc < 2) {
        fprintf(stderr, "%s", keys_usage);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        printf("%s", keys_usage);
        return 0;
    }
    int rc = parse_opts(argc - 1, argv + 1, &o, keys_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (o.argc != 1) {
        fprintf(stderr, "tollgate keys %s: expected one id\n%s", sub, keys_usage);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *res = NULL, *body = NULL;
    long status;
    char path[512];
    int exit_code = 0;
    if (strcmp(sub, "create") == 0) {
        snprintf(path, sizeof(path), "/v1/admin/customers/%s/keys", o.argv[0]);
        body = json_pack("{s:s,s:s}", "name", o.name ? o.name : "", "mode", o.test_mode ? "test" : "live");
        status = call_api(&o, "POST", path, body, &res);
        if (status != 201)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else
            print_secret(res);
    } else if (strcmp(sub, "list") == 0) {
        snprintf(path, sizeof(path), "/v1/admin/customers/%s/keys", o.argv[0]);
        status = call_api_all(&o, path, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            json_t *data = json_object_get(res, "data"), *k;
            size_t n = json_array_size(data), i;
            const char **cells = calloc(n * 6 + 1, sizeof(char *));
            json_array_foreach(data, i, k)
            {
                cells[i * 6] = str(k, "id");
                cells[i * 6 + 1] = str(k, "prefix");
                cells[i * 6 + 2] = str(k, "name");
                cells[i * 6 + 3] = str(k, "status");
                cells[i * 6 + 4] = str(k, "created_at");
                cells[i * 6 + 5] = str(k, "last_used_at");
            }
            static const char *const head[] = {"ID", "PREFIX", "NAME", "STATUS", "CREATED", "LAST USED"};
            print_table(head, 6, cells, n);
            free(cells);
        }
    } else if (strcmp(sub, "revoke") == 0) {
        snprintf(path, sizeof(path), "/v1/admin/keys/%s", o.argv[0]);
        status = call_api(&o, "DELETE", path, NULL, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else
            printf("Key %s revoked at %s; it stops working within a second.\n", str(res, "id"), str(res, "revoked_at"));
    } else if (strcmp(sub, "rotate") == 0) {
        snprintf(path, sizeof(path), "/v1/admin/keys/%s/rotate", o.argv[0]);
        body = o.grace >= 0 ? json_pack("{s:I}", "grace_seconds", (json_int_t)o.grace) : json_object();
        status = call_api(&o, "POST", path, body, &res);
        if (status != 201)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            print_secret(res);
            printf("The old key %s keeps working until %s.\n", str(res, "replaces"), str(res, "old_key_expires_at"));
        }
    } else {
        fprintf(stderr, "tollgate keys: unknown subcommand \"%s\"\n%s", sub, keys_usage);
        exit_code = 2;
    }
    json_decref(body);
    json_decref(res);
    curl_global_cleanup();
    return exit_code;
}

static const char reload_usage[] =
    "usage: tollgate reload -c FILE [--server URL] [--json]\n\n"
    "Asks the running server (admin API: POST /v1/admin/reload) to re-read its configuration\n"
    "file, as SIGHUP does. Prints the settings that only a restart changes, or every FILE:LINE\n"
    "problem when the server refuses the file (it then keeps the configuration in effect), and\n"
    "exits 1. The server reads the file it was started with; FILE tells where its admin API is\n"
    "and its token (or --server URL and TOLLGATE_ADMIN_TOKEN).\n";

/* Prints each item of a JSON array of strings, indented. */
static void print_lines(FILE *out, json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v)) fprintf(out, "  %s\n", json_string_value(v));
}

int tg_cmd_reload(int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(argc, argv, &o, reload_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (o.argc > 0) {
        fprintf(stderr, "tollgate reload: unexpected argument \"%s\"\n%s", o.argv[0], reload_usage);
        return 2;
    }
    if (o.config == NULL && o.server == NULL) {
        fprintf(stderr, "tollgate reload: -c FILE (or --server URL) is required\n%s", reload_usage);
        return 2;
    }
    if (o.config != NULL) {
        /* A file that does not load here would be refused by the server too (the same parser):
         * say so without asking it, as the address and token come from that file. */
        char errbuf[8192];
        tg_config_t *cfg = NULL;
        if (tg_config_load(o.config, &cfg, errbuf, sizeof(errbuf)) != 0) {
            fprintf(stderr, "%s", errbuf);
            fprintf(stderr, "tollgate reload: %s is invalid; the server was not asked and keeps its configuration\n",
                    o.config);
            return 1;
        }
        tg_config_free(cfg);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *res = NULL;
    long status = call_api(&o, "POST", "/v1/admin/reload", NULL, &res);
    int exit_code = 0;
    if (status == 200 && o.json) {
        print_json(res);
    } else if (status == 200) {
        printf("reloaded %s (configuration %lld since the start)\n", str(res, "file"),
               (long long)json_integer_value(json_object_get(res, "generation")));
        json_t *kept = json_object_get(res, "restart_required");
        if (json_array_size(kept) > 0) {
            printf("changed in the file but kept until a restart:\n");
            print_lines(stdout, kept);
        }
        json_t *hooks = json_object_get(res, "hook_errors");
        if (json_array_size(hooks) > 0) {
            printf("not reloaded (the previous state stays):\n");
            print_lines(stdout, hooks);
        }
    } else {
        exit_code = api_failed(status, res);
        json_t *errors = json_object_get(json_object_get(res, "error"), "errors");
        if (json_array_size(errors) > 0) {
            fprintf(stderr, "the server keeps the configuration in effect; the file's problems:\n");
            print_lines(stderr, errors);
        }
    }
    json_decref(res);
    curl_global_cleanup();
    return exit_code;
}

static const char usage_usage[] = "usage: tollgate usage CUSTOMER_ID [--period YYYY-MM] [--daily]\n"
                                  "options: --server URL -c CONFIG --json\n";

static void num_or_dash(json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, cap, "-");
}

/* A metric's display name from the report's own metrics list (the server's metering.metrics), or
 * the id when the list does not name it. */
static const char *metric_name(json_t *metrics, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(metrics, i, m)
    {
        if (strcmp(str(m, "metric"), id) == 0 && json_is_string(json_object_get(m, "name")))
            return str(m, "name");
    }
    return id;
}

int tg_cmd_usage(int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(argc, argv, &o, usage_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (o.argc != 1) {
        fprintf(stderr, "tollgate usage: expected CUSTOMER_ID\n%s", usage_usage);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char path[512];
    snprintf(path, sizeof(path), "/v1/admin/customers/%s/usage%s%s", o.argv[0], o.period ? "?period=" : "",
             o.period ? o.period : "");
    json_t *res = NULL;
    long status = call_api(&o, "GET", path, NULL, &res);
    int exit_code = 0;
    if (status != 200)
        exit_code = api_failed(status, res);
    else if (o.json)
        print_json(res);
    else {
        json_t *per = json_object_get(res, "period"), *metrics = json_object_get(res, "metrics"), *m;
        printf("customer %s, plan %s, period %s to %s\n\n", str(res, "customer"), str(res, "plan"), str(per, "start"),
               str(per, "end"));
        size_t n = json_array_size(metrics), i;
        char(*nums)[4][24] = calloc(n + 1, sizeof(*nums));
        const char **cells = calloc(n * 5 + 1, sizeof(char *));
        json_array_foreach(metrics, i, m)
        {
            num_or_dash(json_object_get(m, "used"), nums[i][0], 24);
            num_or_dash(json_object_get(m, "included"), nums[i][1], 24);
            num_or_dash(json_object_get(m, "overage"), nums[i][2], 24);
            num_or_dash(json_object_get(m, "remaining"), nums[i][3], 24);
            cells[i * 5] = json_is_string(json_object_get(m, "name")) ? str(m, "name") : str(m, "metric");
            for (int k = 0; k < 4; k++)
                cells[i * 5 + 1 + k] = nums[i][k];
        }
        static const char *const head[] = {"METRIC", "USED", "INCLUDED", "OVERAGE", "REMAINING"};
        print_table(head, 5, cells, n);
        free(cells);
        free(nums);
        if (o.daily) {
            json_t *daily = json_object_get(res, "daily"), *d;
            printf("\n");
            json_array_foreach(daily, i, d)
                printf("%s  %-20s %lld\n", str(d, "day"), metric_name(metrics, str(d, "metric")),
                       (long long)json_integer_value(json_object_get(d, "units")));
        }
    }
    json_decref(res);
    curl_global_cleanup();
    return exit_code;
}

static const char invoices_usage[] = "usage: tollgate invoices run [--customer ID] [--period YYYY-MM]\n"
                                     "       tollgate invoices list [--customer ID]\n"
                                     "       tollgate invoices show ID\n"
                                     "       tollgate invoices upcoming CUSTOMER_ID\n"
                                     "       tollgate invoices finalize|void|mark-paid|mark-uncollectible ID\n"
                                     "run closes every ended billing period that has no invoice yet (drafts);\n"
                                     "with --period, only periods that ended by the end of that month.\n"
                                     "upcoming: the current period's invoice so far (nothing is stored).\n"
                                     "options: --server URL -c CONFIG --json\n";

static void print_invoice(json_t *inv)
{
    json_t *per = json_object_get(inv, "period"), *l;
    if (json_is_string(json_object_get(inv, "id")))
        printf("invoice %s  %s  %s\ncustomer %s, period %s to %s\n\n", str(inv, "id"), str(inv, "number"),
               str(inv, "status"), str(inv, "customer"), str(per, "start"), str(per, "end"));
    else /* the upcoming invoice: an estimate, not stored */
        printf("upcoming invoice (so far; nothing is stored)\ncustomer %s, period %s to %s\n\n", str(inv, "customer"),
               str(per, "start"), str(per, "end"));
    size_t i;
    json_array_foreach(json_object_get(inv, "lines"), i, l)
    {
        /* the line as people read it (the server's "text"), else as stored */
        const char *text = json_is_string(json_object_get(l, "text")) ? str(l, "text") : str(l, "description");
        printf("  %-56s %8lld ", text, (long long)json_integer_value(json_object_get(l, "quantity")));
        print_money(str(l, "amount"), str(inv, "currency"), 14);
        printf("\n");
    }
    printf("\n  %-56s %8s ", "Total", "");
    print_money(str(inv, "total"), str(inv, "currency"), 14);
    printf("\n");
}

int tg_cmd_invoices(int argc, char **argv)
{
    opts_t o;
    if (argc < 2) {
        fprintf(stderr, "%s", invoices_usage);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        printf("%s", invoices_usage);
        return 0;
    }
    int rc = parse_opts(argc - 1, argv + 1, &o, invoices_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *res = NULL, *body = NULL;
    long status;
    char path[512];
    int exit_code = 0;
    if (strcmp(sub, "run") == 0 && o.argc == 0) {
        body = json_object();
        if (o.customer != NULL)
            json_object_set_new(body, "customer", json_string(o.customer));
        if (o.period != NULL)
            json_object_set_new(body, "period", json_string(o.period));
        status = call_api(&o, "POST", "/v1/admin/invoices/run", body, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            printf("%lld invoice(s) created, %lld customer(s) failed\n",
                   (long long)json_integer_value(json_object_get(res, "created")),
                   (long long)json_integer_value(json_object_get(res, "failed")));
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(res, "failures"), i, f)
                printf("  %s: %s (%s)\n", str(f, "customer"), str(f, "message"), str(f, "type"));
        }
    } else if (strcmp(sub, "list") == 0 && o.argc == 0) {
        snprintf(path, sizeof(path), "/v1/admin/invoices%s%s", o.customer ? "?customer=" : "",
                 o.customer ? o.customer : "");
        status = call_api_all(&o, path, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            json_t *data = json_object_get(res, "data"), *inv;
            size_t n = json_array_size(data), i;
            const char **cells = calloc(n * 6 + 1, sizeof(char *));
            json_array_foreach(data, i, inv)
            {
                cells[i * 6] = str(inv, "id");
                cells[i * 6 + 1] = str(inv, "number");
                cells[i * 6 + 2] = str(inv, "customer");
                cells[i * 6 + 3] = str(json_object_get(inv, "period"), "start");
                cells[i * 6 + 4] = str(inv, "status");
                cells[i * 6 + 5] = str(inv, "total");
            }
            static const char *const head[] = {"ID", "NUMBER", "CUSTOMER", "PERIOD", "STATUS", "TOTAL"};
            print_table(head, 6, cells, n);
            free(cells);
        }
    } else if (o.argc == 1 && strcmp(sub, "upcoming") == 0) {
        snprintf(path, sizeof(path), "/v1/admin/customers/%s/invoices/upcoming", o.argv[0]);
        status = call_api(&o, "GET", path, NULL, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else
            print_invoice(res);
    } else if (o.argc == 1 && (strcmp(sub, "show") == 0 || strcmp(sub, "finalize") == 0 || strcmp(sub, "void") == 0 ||
                               strcmp(sub, "mark-paid") == 0 || strcmp(sub, "mark-uncollectible") == 0)) {
        if (strcmp(sub, "show") == 0) {
            snprintf(path, sizeof(path), "/v1/admin/invoices/%s", o.argv[0]);
            status = call_api(&o, "GET", path, NULL, &res);
        } else {
            snprintf(path, sizeof(path), "/v1/admin/invoices/%s/%s", o.argv[0], sub);
            status = call_api(&o, "POST", path, NULL, &res);
        }
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else
            print_invoice(res);
    } else {
        fprintf(stderr, "tollgate invoices: bad arguments for \"%s\"\n%s", sub, invoices_usage);
        exit_code = 2;
    }
    json_decref(body);
    json_decref(res);
    curl_global_cleanup();
    return exit_code;
}

static const char audit_usage[] =
    "usage: tollgate audit [--actor ID] [--action PREFIX] [--target-type T] [--target-id ID]\n"
    "                      [--from TIME] [--to TIME]\n"
    "The audit log (GET /v1/admin/audit), newest first: who changed what through the admin API,\n"
    "the portal or this command. --action matches the start (\"key.\" = every key action); TIME is\n"
    "milliseconds since 1970 or a UTC time such as 2026-03-01T00:00:00Z (--from inclusive, --to not).\n"
    "options: --server URL (admin API, default http://127.0.0.1:8081) -c CONFIG --json\n"
    "The admin token comes from TOLLGATE_ADMIN_TOKEN or the config's admin.token.\n";

int tg_cmd_audit(int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts(argc, argv, &o, audit_usage);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (o.argc != 0) {
        fprintf(stderr, "tollgate audit: unexpected argument \"%s\"\n%s", o.argv[0], audit_usage);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *esc = curl_easy_init();
    char path[1024] = "/v1/admin/audit";
    size_t len = strlen(path);
    const struct {
        const char *name, *value;
    } params[] = {{"actor", o.actor},         {"action", o.action}, {"target_type", o.target_type},
                  {"target_id", o.target_id}, {"from", o.from},     {"to", o.to}};
    int exit_code = esc != NULL ? 0 : 1;
    for (size_t i = 0; exit_code == 0 && i < sizeof(params) / sizeof(params[0]); i++) {
        if (params[i].value == NULL)
            continue;
        char *v = curl_easy_escape(esc, params[i].value, 0);
        int n = v != NULL ? snprintf(path + len, sizeof(path) - len, "%c%s=%s", len == strlen("/v1/admin/audit") ? '?' : '&',
                                     params[i].name, v)
                          : -1;
        curl_free(v);
        if (n < 0 || (size_t)n >= sizeof(path) - len) {
            fprintf(stderr, "tollgate audit: the filters are too long\n");
            exit_code = 2;
        } else
            len += (size_t)n;
    }
    json_t *res = NULL;
    if (exit_code == 0) {
        long status = call_api_all(&o, path, &res);
        if (status != 200)
            exit_code = api_failed(status, res);
        else if (o.json)
            print_json(res);
        else {
            json_t *data = json_object_get(res, "data"), *e;
            size_t n = json_array_size(data), i;
            const char **cells = calloc(n * 5 + 1, sizeof(char *));
            char (*who)[200] = calloc(n + 1, sizeof(*who)), (*what)[200] = calloc(n + 1, sizeof(*what));
            if (cells == NULL || who == NULL || what == NULL) {
                fprintf(stderr, "tollgate audit: out of memory\n");
                exit_code = 1;
                n = 0;
            }
            json_array_foreach(data, i, e)
            {
                if (i >= n)
                    break;
                json_t *actor = json_object_get(e, "actor"), *target = json_object_get(e, "target");
                snprintf(who[i], sizeof(who[i]), "%s:%s", str(actor, "kind"), str(actor, "id"));
                snprintf(what[i], sizeof(what[i]), "%s/%s", str(target, "type"), str(target, "id"));
                cells[i * 5] = str(e, "at");
                cells[i * 5 + 1] = who[i];
                cells[i * 5 + 2] = str(e, "source");
                cells[i * 5 + 3] = str(e, "action");
                cells[i * 5 + 4] = what[i];
            }
            static const char *const head[] = {"AT", "ACTOR", "SOURCE", "ACTION", "TARGET"};
            if (exit_code == 0)
                print_table(head, 5, cells, n);
            free(cells);
            free(who);
            free(what);
        }
    }
    json_decref(res);
    curl_easy_cleanup(esc);
    curl_global_cleanup();
    return exit_code;
}
