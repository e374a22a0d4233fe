/* admin_static.c - the portal and dashboard pages: plain files from the web root, served as is.
 *
 * /portal/... and /admin/... map to files under $TOLLGATE_WEB_ROOT (default "web", relative to
 * the working directory); /portal/vendor/chart.min.js is Debian's Chart.js
 * (/usr/share/javascript/chart.js, or $TOLLGATE_CHARTJS). Paths are checked character by
 * character (no "..", no hidden files), files are capped at 2 MiB, and the pages only call the
 * JSON API, so nothing here needs a session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin_int.h"

#define MAX_FILE (2 * 1024 * 1024)

static const char *mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    return "application/octet-stream";
}

static int safe_path(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '-' ||
              c == '_' || c == '.'))
            return 0;
        if (c == '.' && (i == 0 || p[i - 1] == '/')) /* "..", hidden files */
            return 0;
    }
    return 1;
}

static int read_file(const char *path, tg_admin_response_t *res)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        fclose(f);
        return 0;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf != NULL ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (buf == NULL || n != (size_t)st.st_size) {
        free(buf);
        return 0;
    }
    res->status = 200;
    res->content_type = mime_of(path);
    res->body = buf;
    res->body_len = n;
    return 1;
}

int tg_adm_static(const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const char *p = r->path;
    size_t n = r->path_len;
    int portal = n >= 7 && memcmp(p, "/portal", 7) == 0 && (n == 7 || p[7] == '/');
    int admin = n >= 6 && memcmp(p, "/admin", 6) == 0 && (n == 6 || p[6] == '/');
    if (!portal && !admin)
        return 0;
    if (!tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Pages are GET only.");
        return 1;
    }
    char path[512];
    if (portal && n == strlen("/portal/vendor/chart.min.js") && memcmp(p, "/portal/vendor/chart.min.js", n) == 0) {
        const char *chart = getenv("TOLLGATE_CHARTJS");
        snprintf(path, sizeof(path), "%s", chart != NULL ? chart : "/usr/share/javascript/chart.js/chart.min.js");
    } else {
        const char *root = getenv("TOLLGATE_WEB_ROOT");
        int dir = p[n - 1] == '/' || n == 6 || n == 7;
        if (!safe_path(p, n) ||
            snprintf(path, sizeof(path), "%s%.*s%s", root != NULL ? root : "web", (int)n, p,
                     dir ? (p[n - 1] == '/' ? "index.html" : "/index.html") : "") >= (int)sizeof(path)) {
            tg_adm_reply_error(res, 404, "not_found", "No such page.");
            return 1;
        }
    }
    if (!read_file(path, res))
        tg_adm_reply_error(res, 404, "not_found", "No such page.");
    return 1;
}
