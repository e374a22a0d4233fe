/* backoff.c - see backoff.h. */
#include "util/backoff.h"

int64_t tg_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, uint32_t random)
{
    if (attempts < 1)
        attempts = 1;
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t ceiling = base_ms;
    for (int i = 1; i < attempts && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    /* uniform in [0, ceiling]: 32 random bits scaled, no modulo bias worth a retry's time */
    return (int64_t)(((unsigned __int128)((uint64_t)ceiling + 1) * random) >> 32);
}
