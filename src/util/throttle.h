/* throttle.h - bounded, exact-key counters for abuse control: failures with an exponential
 * delay (sign-in guessing) and events per window (sign-ups).
 *
 * A hash map keyed by the exact bytes of each key (no fixed slots: two keys never share an
 * entry), hashed with SipHash under a random per-map key so nobody can aim keys at one bucket.
 * At most `capacity` entries: when full, the least recently *penalised* entry is evicted (reads
 * do not refresh an entry). Entries older than `forget_ns` are dropped. To push a given entry out,
 * an attacker must create `capacity` newer ones, each of which costs a request that itself went
 * through the throttles. Memory: capacity * (~80 bytes + key length).
 *
 * Not thread-safe: one owner thread (the admin back thread). Time is passed in (monotonic ns),
 * so tests need no clock. */
#ifndef TG_THROTTLE_H
#define TG_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tg_throttle tg_throttle_t;

typedef struct tg_throttle_policy {
    size_t capacity;   /* entries kept at most */
    int64_t forget_ns; /* an entry untouched this long is forgotten */
    /* Failures: the first free_failures cost nothing; each one after waits base_ns, doubled per
     * further failure, at most max_ns. */
    uint32_t free_failures;
    int64_t base_ns, max_ns;
} tg_throttle_policy_t;

/* NULL on ENOMEM. */
tg_throttle_t *tg_throttle_new(const tg_throttle_policy_t *policy);
void tg_throttle_free(tg_throttle_t *t);

/* How long key must still wait before its next attempt (0: it may go now). */
int64_t tg_throttle_wait_ns(tg_throttle_t *t, const char *key, int64_t now);

/* Records one failure of key at now: sets its delay by the policy. Returns the failure count. */
uint32_t tg_throttle_fail(tg_throttle_t *t, const char *key, int64_t now);

/* Takes back one failure (an attempt counted up front that succeeded); the delay then follows
 * the lower count. */
void tg_throttle_forgive(tg_throttle_t *t, const char *key, int64_t now);

/* Forgets key entirely. */
void tg_throttle_reset(tg_throttle_t *t, const char *key);

/* Events per window: if key had fewer than `limit` events in the current window of window_ns,
 * counts one and returns 0; otherwise returns the ns until the window ends (nothing counted). */
int64_t tg_throttle_hit(tg_throttle_t *t, const char *key, uint64_t limit, int64_t window_ns, int64_t now);

/* Entries held now (for tests and metrics). */
size_t tg_throttle_size(const tg_throttle_t *t);

#endif
