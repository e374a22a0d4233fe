/* backoff.h - retry waits with exponential backoff and full jitter, shared by the outboxes (the
 * Stripe outbox, webhook deliveries). Pure: no clock, no globals, any thread. */
#ifndef TG_BACKOFF_H
#define TG_BACKOFF_H

#include <stdint.h>

/* The wait before retry number `attempts` (1 = the first retry), full jitter: uniform in
 * [0, min(cap_ms, base_ms * 2^(attempts-1))], drawn from `random` (any 32-bit value). A cap
 * below the base counts as the base. */
int64_t tg_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, uint32_t random);

#endif
