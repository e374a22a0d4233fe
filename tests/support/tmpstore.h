/* tmpstore.h - test support: a migrated SQLite store in a fresh temporary folder, and its
 * removal. Used by the unit tests of the modules that take a store (subscriptions, keys, the
 * Stripe outbox), so that each does not carry its own copy of this setup. */
#ifndef TG_TEST_TMPSTORE_H
#define TG_TEST_TMPSTORE_H

#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

typedef struct tg_tmpstore {
    char dir[64];  /* /tmp/tg_<tag>_XXXXXX */
    char url[160]; /* sqlite:<dir>/t.db */
    tg_store_t *st;
} tg_tmpstore_t;

/* Makes the folder, opens and migrates the store. 0, or -1 with nothing to close. */
static inline int tg_tmpstore_open(tg_tmpstore_t *t, const char *tag)
{
    tg_err_t err = {0};
    snprintf(t->dir, sizeof(t->dir), "/tmp/tg_%s_XXXXXX", tag);
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(t->url, sizeof(t->url), "sqlite:%s/t.db", t->dir);
    if (tg_store_open(t->url, &t->st, &err) != 0)
        return -1;
    if (tg_store_migrate(t->st, &err) != 0) {
        tg_store_close(t->st);
        return -1;
    }
    return 0;
}

/* Closes the store and removes the folder. 0 or -1. */
static inline int tg_tmpstore_close(tg_tmpstore_t *t)
{
    char cmd[128];
    tg_store_close(t->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
