/* lease.c - see lease.h. Every product saturates: a bound that wrapped would promise nothing. */
#include "limits/lease.h"

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t tg_lease_rate_cap(uint64_t burst, uint32_t nodes, uint64_t max_weight)
{
    uint64_t n = nodes == 0 ? 1 : nodes;
    uint64_t cap = burst / (2 * n);
    if (cap < max_weight)
        cap = max_weight;
    return cap == 0 ? 1 : cap;
}

uint64_t tg_lease_quota_cap(uint64_t included, uint32_t nodes, uint64_t max_units)
{
    uint64_t n = nodes == 0 ? 1 : nodes;
    uint64_t cap = included / (4 * n);
    if (cap < max_units)
        cap = max_units;
    return cap == 0 ? 1 : cap;
}

uint64_t tg_lease_floor(uint64_t cap, uint64_t max_call)
{
    uint64_t f = cap / 64;
    if (f < max_call)
        f = max_call;
    return f == 0 ? 1 : f;
}

uint64_t tg_lease_target(uint64_t consumed, uint64_t prev_target, uint64_t floor, uint64_t cap)
{
    uint64_t t = sat_mul(consumed, 2), decayed = prev_target - prev_target / 4 - (prev_target % 4 != 0);
    if (t < decayed)
        t = decayed;
    if (t > cap)
        t = cap;
    if (t < floor)
        t = floor;
    return t;
}

uint64_t tg_lease_gcra_grant(int64_t *tat, int64_t T, uint64_t burst, uint64_t want, int64_t now)
{
    if (T < 1)
        T = 1;
    __int128 t = *tat > now ? *tat : now;
    __int128 room = ((__int128)now + (__int128)T * burst - t) / T;
    if (room <= 0 || want == 0)
        return 0;
    uint64_t g = room < (__int128)want ? (uint64_t)room : want;
    __int128 next = t + (__int128)T * g;
    *tat = next > INT64_MAX ? INT64_MAX : (int64_t)next;
    return g;
}

uint64_t tg_lease_gcra_fill(int64_t tat, int64_t T, int64_t now)
{
    if (tat <= now || T < 1)
        return 0;
    return (uint64_t)(((__int128)tat - now + T - 1) / T);
}

void tg_lease_fallback_rate(int64_t T, uint64_t burst, uint32_t nodes, int64_t *fb_T, uint64_t *fb_burst)
{
    uint64_t n = nodes == 0 ? 1 : nodes;
    __int128 t = (__int128)T * n;
    *fb_T = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    *fb_burst = burst / n == 0 ? 1 : burst / n;
}

uint64_t tg_lease_fallback_quota(uint64_t included, uint64_t granted_seen, uint32_t nodes)
{
    if (granted_seen >= included)
        return 0;
    return (included - granted_seen) / (nodes == 0 ? 1 : nodes);
}

uint64_t tg_lease_rate_credit_cap(uint64_t lease, uint64_t max_weight)
{
    uint64_t c = lease / 4;
    if (c < max_weight)
        c = max_weight;
    return c == 0 ? 1 : c;
}

uint64_t tg_lease_rate_credit(uint64_t lease, uint64_t max_weight, uint64_t burst, uint64_t fill, uint64_t drained)
{
    uint64_t c = tg_lease_rate_credit_cap(lease, max_weight);
    uint64_t now_fill = fill > drained ? fill - drained : 0; /* may exceed burst: a bucket that owes cells */
    uint64_t room = now_fill < burst ? burst - now_fill : 0;
    return c < room ? c : room;
}

uint64_t tg_lease_rate_bound(uint32_t nodes, uint64_t lease, uint64_t weight)
{
    return sat_add(sat_mul(nodes, lease), sat_mul(nodes, tg_lease_rate_credit_cap(lease, weight)));
}

uint64_t tg_lease_quota_bound(uint32_t nodes, uint64_t lease, uint64_t units, unsigned outages)
{
    uint64_t others = nodes > 0 ? nodes - 1 : 0;
    return sat_add(sat_mul(nodes, units), sat_mul(sat_mul(2 * others, lease), outages));
}
