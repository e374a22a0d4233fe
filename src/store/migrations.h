/* migrations.h - the numbered schema migrations, shared by every SQL backend's runner.
 * Append only: a released migration is never edited; a change is a new number. A number means
 * the same change in every dialect; one a dialect does not need (23: PostgreSQL's change
 * notifications) is empty there. */
#ifndef TG_MIGRATIONS_H
#define TG_MIGRATIONS_H

#include <stddef.h>

typedef struct tg_migration {
    int version;
    const char *name;
    const char *sql; /* one or more statements */
} tg_migration_t;

extern const tg_migration_t tg_sqlite_migrations[];
extern const size_t tg_sqlite_migrations_count;
/* The same versions in PostgreSQL's dialect (migrations_pg.c). */
extern const tg_migration_t tg_pg_migrations[];
extern const size_t tg_pg_migrations_count;

#endif
