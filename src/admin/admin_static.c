/* admin_static.c - the portal and dashboard pages, served as they are.
 *
 * /portal/... and /admin/... are the files of web/ built into the binary (assets.h);
 * /portal/vendor/chart.min.js and /admin/vendor/chart.min.js are Debian's Chart.js, built in
 * too (the dashboard loads nothing from /portal/ but its stylesheet). For editing pages without
 * rebuilding, $TOLLGATE_WEB_ROOT names a directory laid out like web/ and $TOLLGATE_CHARTJS a
 * Chart.js file, read on each request instead: there paths are checked character by character
 * (no "..", no hidden files), symbolic links below the web root are never followed and files are
 * capped at 2 MiB. The pages only call the JSON API, so nothing here needs a session. Runs on the
 * admin loop (tg_admin_handle_quick).
 *
 * A few URLs are another file under a second name (SHARED_FILES): the dashboard's /admin/format.js
 * is web/portal/format.js: one source for both sites' money and number formatting, while the
 * dashboard's modules keep importing './format.js' and load no script from /portal/.
 *
 * /openapi.json is docs/openapi.yaml, the description of this port's API, converted to JSON when
 * the binary was built (tools/gen/yaml2json.c) and public like the pricing API it describes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admin/assets.h"

#define MAX_FILE (2 * 1024 * 1024)

/* URL path -> the web/ path whose bytes it serves (in the binary and under TOLLGATE_WEB_ROOT). */
static const struct {
    const char *url, *file;
} SHARED_FILES[] = {
    {"/admin/format.js", "/portal/format.js"},
};

/* The web/ path for the URL path rel: its SHARED_FILES target, or rel itself. */
static const char *shared_file(const char *rel)
{
    for (size_t i = 0; i < sizeof(SHARED_FILES) / sizeof(SHARED_FILES[0]); i++)
        if (strcmp(rel, SHARED_FILES[i].url) == 0)
            return SHARED_FILES[i].file;
    return rel;
}

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
    if (strcmp(dot, ".json") == 0)
        return "application/json";
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

/* Opens root/rel for reading without following a symbolic link anywhere below root: each
 * directory is opened with O_NOFOLLOW | O_DIRECTORY relative to the one before, and the file with
 * O_NOFOLLOW, so a link planted in the web root (to /etc, to the database) is never served. The
 * root itself may be a link (TOLLGATE_WEB_ROOT is the operator's choice). rel is '/'-separated and
 * already checked by safe_path. Returns a descriptor or -1. */
static int open_beneath(const char *root, const char *rel)
{
    int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = rel;
    while (dir >= 0) {
        while (*p == '/')
            p++;
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        char name[256];
        if (n == 0 || n >= sizeof(name)) {
            close(dir);
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int last = slash == NULL || slash[1] == '\0';
        int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY));
        close(dir);
        if (last || fd < 0)
            return fd;
        dir = fd;
        p = slash + 1;
    }
    return -1;
}

static int read_fd(int fd, const char *name, tg_admin_response_t *res)
{
    struct stat st;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        close(fd);
        return 0;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size + 1);
    while (buf != NULL && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || got != size) {
        free(buf);
        return 0;
    }
    res->status = 200;
    res->content_type = mime_of(name);
    res->body = buf;
    res->body_len = got;
    return 1;
}

/* The built-in file at URL path p (n bytes), copied into res; 0 if there is none. */
static int reply_asset(const char *p, size_t n, tg_admin_response_t *res)
{
    for (size_t i = 0; i < tg_assets_count; i++) {
        const tg_asset_t *f = &tg_assets[i];
        if (strlen(f->path) != n || memcmp(f->path, p, n) != 0)
            continue;
        /* the response owns a malloc'd body; the pages are small and cached by the browser */
        char *body = malloc(f->size ? f->size : 1);
        if (body == NULL)
            return 0;
        memcpy(body, f->data, f->size);
        res->status = 200;
        res->content_type = mime_of(f->path);
        res->body = body;
        res->body_len = f->size;
        return 1;
    }
    return 0;
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
    char rel[512];
    int dir = p[n - 1] == '/' || n == 6 || n == 7;
    if (!safe_path(p, n) || snprintf(rel, sizeof(rel), "%.*s%s", (int)n, p,
                                     dir ? (p[n - 1] == '/' ? "index.html" : "/index.html") : "") >= (int)sizeof(rel)) {
        tg_adm_reply_error(res, 404, "not_found", "No such page.");
        return 1;
    }
    int served;
    const char *chart = strstr(rel, "/vendor/chart.min.js");
    if (chart != NULL && chart == rel + (portal ? 7 : 6) && chart[strlen("/vendor/chart.min.js")] == '\0') {
        const char *file = getenv("TOLLGATE_CHARTJS"); /* a system file: its links are the distribution's */
        served = file != NULL ? read_fd(open(file, O_RDONLY | O_CLOEXEC), "chart.min.js", res)
                              : reply_asset(chart, strlen(chart), res);
    } else {
        const char *root = getenv("TOLLGATE_WEB_ROOT"), *file = shared_file(rel);
        served = root != NULL ? read_fd(open_beneath(root, file), file, res) : reply_asset(file, strlen(file), res);
    }
    if (!served)
        tg_adm_reply_error(res, 404, "not_found", "No such page.");
    return 1;
}

int tg_adm_openapi(const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD"))
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
    else if (!reply_asset("/openapi.json", strlen("/openapi.json"), res))
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory.");
    return 1;
}
