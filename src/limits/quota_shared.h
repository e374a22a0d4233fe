/* quota_shared.h - period allowances shared by every node of a cluster (quota.h is the
 * interface, cluster.h the sync thread, README "Shared limits across nodes" the bound).
 *
 * Redis keeps, per (customer, period, metric), the units of the allowance granted to all nodes.
 * In block mode a node reserves only from units it was granted (its lease), so the nodes together
 * never pass the allowance while Redis answers, except by a key's first call on each node (allowed
 * on credit when this node's store says there is room). Units beyond a lease (bill and throttle
 * modes, units the upstream reports) are counted and added to the shared counter in the
 * background. Billing never depends on any of this: usage comes from the metering logs. */
#ifndef TG_QUOTA_SHARED_H
#define TG_QUOTA_SHARED_H

#include "limits/cluster.h"
#include "limits/quota.h"

/* A shared quota on cluster c (which must outlive it, and be stopped before it is freed). NULL on
 * ENOMEM. */
tg_quota_t *tg_quota_shared_new(tg_cluster_t *c);

#endif
