/* admin_cluster.c - /metrics' cluster figures: whether this node runs the schedulers, and how
 * the directory sync follows the other nodes' changes (cluster/directory_sync.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "cluster/directory_sync.h"

char *tg_adm_cluster_metrics(tg_admin_t *a, char *body)
{
    if (body == NULL)
        return body;
    tg_dirsync_stats_t s;
    tg_dirsync_stats(a->d.dirsync, &s);
    char more[1536];
    int n = snprintf(more, sizeof(more),
                     "# HELP tollgate_cluster_scheduler 1 when this node holds the scheduler lock (period closing,"
                     " invoicing, dunning run here).\n"
                     "# TYPE tollgate_cluster_scheduler gauge\n"
                     "tollgate_cluster_scheduler %d\n",
                     atomic_load(&a->leader));
    if (n > 0 && (size_t)n < sizeof(more) && a->d.dirsync != NULL)
        n += snprintf(more + n, sizeof(more) - (size_t)n,
                      "# HELP tollgate_directory_sync_connected 1 while this node follows the database's change"
                      " notifications.\n"
                      "# TYPE tollgate_directory_sync_connected gauge\n"
                      "tollgate_directory_sync_connected %d\n"
                      "# HELP tollgate_directory_sync_notifications_total Changes announced by the database.\n"
                      "# TYPE tollgate_directory_sync_notifications_total counter\n"
                      "tollgate_directory_sync_notifications_total %llu\n"
                      "# HELP tollgate_directory_sync_reloads_total Customers reloaded for them.\n"
                      "# TYPE tollgate_directory_sync_reloads_total counter\n"
                      "tollgate_directory_sync_reloads_total %llu\n"
                      "# HELP tollgate_directory_sync_resyncs_total Full reloads of the directory.\n"
                      "# TYPE tollgate_directory_sync_resyncs_total counter\n"
                      "tollgate_directory_sync_resyncs_total %llu\n"
                      "# HELP tollgate_directory_sync_failures_total Connection losses and failed reloads.\n"
                      "# TYPE tollgate_directory_sync_failures_total counter\n"
                      "tollgate_directory_sync_failures_total %llu\n",
                      s.connected, (unsigned long long)s.notifications, (unsigned long long)s.reloads,
                      (unsigned long long)s.resyncs, (unsigned long long)s.failures);
    if (n < 0 || (size_t)n >= sizeof(more))
        return body;
    size_t len = strlen(body);
    char *nb = realloc(body, len + (size_t)n + 1);
    if (nb == NULL) {
        free(body);
        return NULL;
    }
    memcpy(nb + len, more, (size_t)n + 1);
    return nb;
}
