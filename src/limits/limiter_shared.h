/* limiter_shared.h - the rate limiter shared by every node of a cluster (see limiter.h for the
 * interface, cluster.h for the sync thread, README "Shared limits across nodes" for the bound).
 *
 * Each key's budget is one GCRA state in Redis. A node decides a call from cells it holds (its
 * lease): a compare-and-swap on a local counter, no lock, no network. The cluster's sync thread
 * tops the lease up from Redis when it runs low, sizes it adaptively (lease.h), gives it back
 * after about a second unused, and charges Redis for a key's first call on this node (allowed on
 * credit, so that a customer's first call is never refused for want of a lease). Differences
 * from the local limiter: X-RateLimit-Remaining and the reset time are this node's view as of the
 * last sync; a plan change drops the cells leased under the old plan (the Redis state itself is
 * converted as tg_gcra_convert does). */
#ifndef TG_LIMITER_SHARED_H
#define TG_LIMITER_SHARED_H

#include "limits/cluster.h"
#include "limits/limiter.h"

/* A shared limiter on cluster c (which must outlive it, and be stopped before it is freed).
 * NULL on ENOMEM. */
tg_limiter_t *tg_limiter_shared_new(tg_cluster_t *c);

#endif
