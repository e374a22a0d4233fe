/* store_page.h - the paged lists' sort keys, shared by the backends. Not for use outside src/store. */
#ifndef TG_STORE_PAGE_H
#define TG_STORE_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "util/err.h"

/* Sort keys of the paged lists: "<int64>", "<int64>/<id>", "<id>" (an id: 1 to TG_ID_MAX-1
 * characters of [A-Za-z0-9_]). TG_EINVAL if key is not one. */
int tg_page_key_parse_num(const char *key, int64_t *num);
int tg_page_key_parse_num_id(const char *key, int64_t *num, char id[TG_ID_MAX]);
int tg_page_key_parse_id(const char *key, char id[TG_ID_MAX]);
/* ":<id>/<text>" (the customer search's text orders; the ':' tells it from "<int64>/<id>", since
 * an id may be all digits): the id up to the first '/', then any text of fewer than cap bytes
 * (it may hold '/'). */
int tg_page_key_parse_id_text(const char *key, char id[TG_ID_MAX], char *text, size_t cap);

#endif
