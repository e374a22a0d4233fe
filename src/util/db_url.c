/* db_url.c - see db_url.h. */
#include "util/db_url.h"

#include <stdio.h>
#include <string.h>

void tg_db_url_redact(const char *url, char *out, size_t cap)
{
    if (cap == 0)
        return;
    const char *scheme_end = strstr(url, "://");
    const char *at = scheme_end != NULL ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = at != NULL ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
    if (colon == NULL)
        snprintf(out, cap, "%s", url);
    else
        snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
    char *q = scheme_end != NULL ? strchr(out, '?') : NULL; /* parameters may hold a password too */
    if (q != NULL)
        *q = '\0';
}
