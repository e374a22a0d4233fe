/* store_pg.c - the PostgreSQL backend of store.h (libpq). */
#include "store/store_ops.h"

int tg_pg_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    (void)url;
    *out = NULL;
    return tg_errf(err, TG_EINVAL, "the PostgreSQL backend is not built yet");
}
