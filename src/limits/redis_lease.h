/* redis_lease.h - the Redis side of shared limits: one connection (hiredis) and the atomic Lua
 * scripts that lease, give back and merge budgets, and register this node.
 *
 * Only the cluster's sync thread calls these (cluster.h): they block for a round trip (bounded by
 * the connection's timeout), so they must never run on a request path. Not thread-safe: one
 * connection, one thread. Scripts are loaded once (SCRIPT LOAD) and run by EVALSHA; a server that
 * lost them (restarted) gets them again. Every script reads the time from Redis (TIME), so nodes'
 * clocks never need to agree. Keys: "tg:r:KEY" (a GCRA state: tat, interval, burst), "tg:q:KEY"
 * (the units of a period's allowance granted to all nodes), "tg:node:ID" and "tg:nodes". All
 * expire when unused. Redis Cluster (sharded) is not supported: the node script touches two keys. */
#ifndef TG_REDIS_LEASE_H
#define TG_REDIS_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct tg_redis tg_redis_t;

typedef enum tg_lease_op {
    TG_LEASE_TAKE = 0, /* grant up to n (as many as the budget has) */
    TG_LEASE_RETURN,   /* give back n unused */
    TG_LEASE_MERGE,    /* add n spent while Redis was away (a rate limit: no further than a full bucket) */
    TG_LEASE_GET,      /* only read the state */
    TG_LEASE_CHARGE,   /* a rate limit: charge n spent on credit, in full (the bucket may owe cells after) */
} tg_lease_op_t;

/* Connects to url (cluster.redis), authenticates, selects the database and loads the scripts,
 * each step bounded by timeout_ms. On success *out owns the connection (tg_redis_close). Returns
 * 0, TG_EINVAL (bad URL), TG_EIO (unreachable or refused) with a sentence in err (never the
 * password). */
int tg_redis_connect(const char *url, int timeout_ms, tg_redis_t **out, tg_err_t *err);
void tg_redis_close(tg_redis_t *r);

/* One step on the rate state of key under the policy (T ns per cell, burst). The state converts
 * itself when the policy changed, keeping the cells in the bucket (as tg_gcra_convert does).
 * *granted: cells granted (TAKE) or n; *fill: cells in the bucket afterwards. TG_EIO on any Redis
 * error (the connection must then be closed). */
int tg_redis_rate(tg_redis_t *r, const char *key, size_t klen, tg_lease_op_t op, int64_t T, uint64_t burst, uint64_t n,
                  uint64_t *granted, uint64_t *fill, tg_err_t *err);

/* One step on the quota counter of key: TAKE grants up to n of what is left of `included`
 * (MERGE adds n whatever is left). A missing counter (first use, or Redis restarted empty)
 * starts at floor_units: what this node knows was used (its store at start, or the shared total it
 * saw last). *granted as above; *total: the units granted to all nodes afterwards. Values up to
 * 2^53 (Lua numbers). */
int tg_redis_quota(tg_redis_t *r, const char *key, size_t klen, tg_lease_op_t op, uint64_t n, uint64_t included,
                   uint64_t floor_units, uint64_t *granted, uint64_t *total, tg_err_t *err);

/* Reads the quota counters of n keys (as tg_redis_quota names them) in one round trip: MGETs of
 * at most 256 keys each, pipelined (one command per 256 keys, where a GET per key would be one
 * command and one round trip each). Unlike tg_redis_quota it neither creates nor extends a
 * counter. totals[i]: the units granted to all nodes; found[i]: 0 when the counter does not
 * exist (totals[i] is then 0). Returns 0, TG_ENOMEM, TG_EINVAL (a key too long) or TG_EIO (the
 * connection must then be closed). */
int tg_redis_quota_totals(tg_redis_t *r, const char *const *keys, const size_t *klens, size_t n, uint64_t *totals,
                          int *found, tg_err_t *err);

/* ---- a round's script calls, pipelined ----
 *
 * The sync thread queues every lease script call of a round (tops-ups, give-backs, merges and
 * charges, for any number of keys) in a batch, then sends them all at once with the round's reads
 * of quota totals (hiredis pipelining: every command appended, then every reply read), so that a
 * round costs one round trip however many keys need Redis. Each call then has its own result: one
 * key's failed call (an error reply) does not touch the others'. A batch belongs to one thread. */
typedef struct tg_redis_batch tg_redis_batch_t;

tg_redis_batch_t *tg_redis_batch_new(void); /* NULL: out of memory */
void tg_redis_batch_free(tg_redis_batch_t *b);
/* Empties b (its memory is kept for the next round). */
void tg_redis_batch_reset(tg_redis_batch_t *b);
/* Calls queued. */
size_t tg_redis_batch_size(const tg_redis_batch_t *b);

/* Queue a call as tg_redis_rate / tg_redis_quota would make it. Return its slot (>= 0) for
 * tg_redis_batch_result, or TG_ENOMEM / TG_EINVAL (key too long): then nothing was queued. */
int tg_redis_batch_rate(tg_redis_batch_t *b, const char *key, size_t klen, tg_lease_op_t op, int64_t T, uint64_t burst,
                        uint64_t n);
int tg_redis_batch_quota(tg_redis_batch_t *b, const char *key, size_t klen, tg_lease_op_t op, uint64_t n,
                         uint64_t included, uint64_t floor_units);

/* Sends every queued call, then reads the quota totals of nt keys as tg_redis_quota_totals does,
 * all in one round trip. A server that lost the scripts (NOSCRIPT: restarted, SCRIPT FLUSH) gets
 * them again and the calls it refused for that are sent again, once (they had not run): a second
 * round trip, only then. Returns 0 when the connection held (each call's result is then its own:
 * tg_redis_batch_result), or TG_EIO when it failed (the connection must be closed; the calls
 * without a reply may or may not have run). The totals are valid only when 0 is returned. */
int tg_redis_batch_run(tg_redis_t *r, tg_redis_batch_t *b, const char *const *tkeys, const size_t *tklens, size_t nt,
                       uint64_t *totals, int *found, tg_err_t *err);

/* The result of a slot after tg_redis_batch_run: 0 and the reply's two integers (granted, then
 * fill or total, as tg_redis_rate / tg_redis_quota name them); TG_ESTORE when Redis answered with
 * an error (the script did not run); TG_EIO when no reply came (it may have run); TG_EINVAL for a
 * slot that was never queued (a negative one). */
int tg_redis_batch_result(const tg_redis_batch_t *b, int slot, uint64_t *granted, uint64_t *value);

/* The round trips this connection made since it opened (a pipeline counts once). */
uint64_t tg_redis_round_trips(const tg_redis_t *r);

/* Claims (or renews) node_id for this process (token: random, this process's), with a TTL of
 * ttl_ms; *live: the nodes that renewed within their TTL, this one included. TG_EEXIST when
 * another live process holds node_id. leave != 0 removes the claim instead (*live may be NULL). */
int tg_redis_node(tg_redis_t *r, const char *node_id, const char *token, int ttl_ms, int leave, uint32_t *live,
                  tg_err_t *err);

#endif
