/* lease.h - the arithmetic of leased budgets, shared by the shared limiter and quota: pure
 * functions (no I/O, no clock, no globals), so that the sizes and bounds the README states are
 * the ones the code computes, and are tested alone.
 *
 * A node of an N-node cluster decides every call from a local balance: cells (rate limits) or
 * units (quotas) that its sync thread leased from the shared state in Redis and tops up every
 * S = cluster.sync_ms. What it holds at most, per key, is its lease size L: adaptive (twice what
 * the key used in the last interval, so an idle key holds little and a hot one enough for an
 * interval), never less than one call and never more than the cap below. */
#ifndef TG_LEASE_H
#define TG_LEASE_H

#include <stdint.h>

/* The most a node may hold of a rate limit with this burst: a share of the burst small enough
 * that the N nodes together hold at most half of it, but at least one call of the heaviest weight
 * seen (max_weight), or that call could never pass. */
uint64_t tg_lease_rate_cap(uint64_t burst, uint32_t nodes, uint64_t max_weight);

/* The most a node may lease of a quota's allowance at once: a quarter of the allowance split over
 * the nodes, at least the largest call seen. */
uint64_t tg_lease_quota_cap(uint64_t included, uint32_t nodes, uint64_t max_units);

/* The smallest lease: one call (the heaviest seen), or 1/64 of the cap if that is more, so that
 * a generous limit (a cap of thousands) is not leased a few cells at a time, a Redis call each:
 * the bound depends only on the cap. */
uint64_t tg_lease_floor(uint64_t cap, uint64_t max_call);

/* The next lease size: twice the consumption of the last interval, decaying by a quarter per idle
 * interval, clamped to [floor, cap]. */
uint64_t tg_lease_target(uint64_t consumed, uint64_t prev_target, uint64_t floor, uint64_t cap);

/* How many cells up to `want` a GCRA state (tat, interval T ns, burst) can grant at now, and
 * advances tat by them. Used as the lease source while Redis is unreachable (the node's fallback
 * bucket), and by tests as the model of the Redis script. */
uint64_t tg_lease_gcra_grant(int64_t *tat, int64_t T, uint64_t burst, uint64_t want, int64_t now);

/* The cells in a GCRA bucket at now (what has not drained yet). */
uint64_t tg_lease_gcra_fill(int64_t tat, int64_t T, int64_t now);

/* Redis down: a node enforces the limit divided by the live nodes it last saw. For a rate limit:
 * the interval times N, the burst divided by N (at least one). */
void tg_lease_fallback_rate(int64_t T, uint64_t burst, uint32_t nodes, int64_t *fb_T, uint64_t *fb_burst);

/* For a quota: the allowance left when last seen (included - granted_seen) divided by N. */
uint64_t tg_lease_fallback_quota(uint64_t included, uint64_t granted_seen, uint32_t nodes);

/* A rate limit's credit: what a node that holds no lease of a key (its first use, or after it gave
 * an idle lease back) may spend before its sync thread leases, so that the key's first calls are
 * not refused while the shared bucket has room. At most C = max(w, L / 4) cells (lease cap L,
 * heaviest call w), and no more than the room the node last saw in the shared bucket: `fill` cells
 * in it at its last reply, `drained` cells' time ago. The sync thread charges what was spent at its
 * next round, in full (past the burst if need be: the bucket then owes it, and the next leases wait
 * as long). */
uint64_t tg_lease_rate_credit_cap(uint64_t lease, uint64_t max_weight);
uint64_t tg_lease_rate_credit(uint64_t lease, uint64_t max_weight, uint64_t burst, uint64_t fill, uint64_t drained);

/* The overshoot bounds the README states (see "Shared limits across nodes"), in cells or units.
 * Rate limit, over any window: N * L (cells leased and not yet spent) + N * C (the credit a node
 * spends on its last view of the shared bucket while it holds no lease, C above; w is the
 * heaviest call). Quota in block mode: N * u for the credit, plus 2 * (N - 1) * L per Redis outage
 * (leases other nodes took since this node's last sync). */
uint64_t tg_lease_rate_bound(uint32_t nodes, uint64_t lease, uint64_t weight);
uint64_t tg_lease_quota_bound(uint32_t nodes, uint64_t lease, uint64_t units, unsigned outages);

#endif
