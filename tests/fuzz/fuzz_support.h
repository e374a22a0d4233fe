/* fuzz_support.h - what the fuzz targets that need files share: a temporary directory that
 * lives as long as the process and is removed at exit. */
#ifndef TG_FUZZ_SUPPORT_H
#define TG_FUZZ_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>

static char fuzz_dir[64];

static void fuzz_remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fuzz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* Creates /tmp/tg_fuzz_<name>_XXXXXX and "sqlite:<it>/t.db" in url; aborts if it cannot. */
static inline void fuzz_temp_db(const char *name, char *url, size_t cap)
{
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/tg_fuzz_%s_XXXXXX", name);
    if (mkdtemp(fuzz_dir) == NULL)
        abort();
    atexit(fuzz_remove_dir);
    snprintf(url, cap, "sqlite:%s/t.db", fuzz_dir);
}

#endif
