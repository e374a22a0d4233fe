/* db_url.h - storage URLs in messages and printed configurations. */
#ifndef TG_DB_URL_H
#define TG_DB_URL_H

#include <stddef.h>

/* url without its password, for anything a person or a log may read: the password of
 * "postgresql://user:PASSWORD@host/db" becomes "***", and the query string (which may hold
 * password=...) is dropped. Other URLs are copied as they are. Truncated to cap. */
void tg_db_url_redact(const char *url, char *out, size_t cap);

#endif
