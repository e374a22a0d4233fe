/* assets.h - the portal's and the dashboard's files, built into the binary.
 *
 * The Makefile embeds every file under web/ at its URL path ("/portal/app.js") and Debian's
 * Chart.js at "/vendor/chart.min.js" (scripts/embed-assets.sh), so the binary serves its pages
 * from any working directory and after `make install`, with nothing to find at run time: a page
 * that is not in the build is not a page. TOLLGATE_WEB_ROOT (a directory laid out like web/)
 * serves files from disk instead, for editing pages without rebuilding (admin_static.c). */
#ifndef TG_ASSETS_H
#define TG_ASSETS_H

#include <stddef.h>

typedef struct tg_asset {
    const char *path; /* the URL path */
    const unsigned char *data;
    size_t size;
} tg_asset_t;

extern const tg_asset_t tg_assets[];
extern const size_t tg_assets_count;

#endif
