/* admin_cluster.c - /metrics' cluster figures: whether this node runs the schedulers, and how
 * the directory sync follows the other nodes' changes (cluster/directory_sync.h); /readyz. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "cluster/directory_sync.h"
#include "metering/meter.h"
#include "metrics/metrics.h"

void tg_adm_readyz(tg_admin_t *a, tg_admin_response_t *res)
{
    tg_meter_stats_t ms = {0};
    if (a->d.meter != NULL)
        tg_meter_get_stats(a->d.meter, &ms);
    tg_dirsync_stats_t ds = {0};
    if (a->d.dirsync != NULL)
        tg_dirsync_stats(a->d.dirsync, &ds);
    int database_ok = !ms.store_failing && (a->d.dirsync == NULL || ds.connected);
    int log_ok = !ms.log_failing;
    int shared = a->d.cfg->cluster.redis != NULL, redis_ok = !tg_metrics_cluster_fallback();
    int ready = database_ok && log_ok && (!shared || redis_ok);
    tg_adm_reply_json(res, ready ? 200 : 503,
                      json_pack("{s:s,s:{s:s,s:s,s:s}}", "status", ready ? "ready" : "not_ready", "checks", "database",
                                database_ok ? "ok" : "failing", "metering_log", log_ok ? "ok" : "failing", "redis",
                                !shared ? "not_used" : redis_ok ? "ok" : "failing"));
}

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
