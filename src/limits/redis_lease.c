/* redis_lease.c - see redis_lease.h.
 *
 * Lua numbers are doubles: times are kept in microseconds (2^53 us is 285 years) with the
 * fraction of a cell's interval, and counts must stay under 2^53. Replies are integers. */
#include "limits/redis_lease.h"

#include <hiredis.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/redis_url.h"

/* KEYS[1] = tg:r:KEY. ARGV: T (ns per cell), burst, op (0 take, 1 return, 2 merge, 3 get,
 * 4 charge), n. State: tat (us, may be fractional), T (us), b. Returns {granted, fill}. A merge
 * (what a node spent from its own share while Redis was away) stops at a full bucket; a charge
 * (what a node spent on credit, on its last view of the bucket) does not: the fill may then exceed
 * the burst, and no lease is granted until the bucket has drained what it owes. */
static const char rate_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = tonumber(ARGV[1]) / 1000\n"
    "local burst = tonumber(ARGV[2])\n"
    "local op = tonumber(ARGV[3])\n"
    "local n = tonumber(ARGV[4])\n"
    "local h = redis.call('HMGET', KEYS[1], 'tat', 'T', 'b')\n"
    "local tat = tonumber(h[1]) or now\n"
    "local oT = tonumber(h[2]) or T\n"
    "local ob = tonumber(h[3]) or burst\n"
    "if tat < now then tat = now end\n"
    "if oT ~= T or ob ~= burst then\n"
    "  local cells = math.ceil((tat - now) / oT - 1e-9)\n"
    "  if cells > burst then cells = burst end\n"
    "  tat = now + cells * T\n"
    "end\n"
    "local tau = T * burst\n"
    "local granted = 0\n"
    "if op == 0 then\n"
    "  local room = math.floor((now + tau - tat) / T + 1e-9)\n"
    "  if room > 0 then granted = math.min(n, room) end\n"
    "  tat = tat + granted * T\n"
    "elseif op == 1 then\n"
    "  tat = tat - n * T\n"
    "  if tat < now then tat = now end\n"
    "  granted = n\n"
    "elseif op == 2 then\n"
    "  tat = tat + n * T\n"
    "  if tat > now + tau then tat = now + tau end\n"
    "  granted = n\n"
    "elseif op == 4 then\n"
    "  tat = tat + n * T\n"
    "  granted = n\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tat', string.format('%.17g', tat), 'T', string.format('%.17g', T), 'b', burst)\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(tau, tat - now) / 1000) + 60000)\n"
    "return {granted, math.ceil((tat - now) / T - 1e-9)}\n";

/* KEYS[1] = tg:q:KEY. ARGV: op, n, included, floor_units. Returns {granted, total}. A missing counter
 * (first use, or Redis restarted empty) starts from floor_units; an existing one is never raised to it
 * (a node's view may predate another node's give-back). The counter lives 400 days after its
 * last use: longer than a yearly period. */
static const char quota_lua[] = "local cur = redis.call('GET', KEYS[1])\n"
                                "local op = tonumber(ARGV[1])\n"
                                "local n = tonumber(ARGV[2])\n"
                                "local inc = tonumber(ARGV[3])\n"
                                "local g = tonumber(cur or ARGV[4])\n"
                                "local granted = 0\n"
                                "if op == 0 then\n"
                                "  if inc > g then granted = math.min(n, inc - g) end\n"
                                "  g = g + granted\n"
                                "elseif op == 1 then\n"
                                "  g = g - n\n"
                                "  if g < 0 then g = 0 end\n"
                                "  granted = n\n"
                                "elseif op == 2 then\n"
                                "  g = g + n\n"
                                "  granted = n\n"
                                "end\n"
                                "redis.call('SET', KEYS[1], string.format('%.0f', g), 'EX', 34560000)\n"
                                "return {granted, g}\n";

/* KEYS[1] = tg:node:ID, KEYS[2] = tg:nodes. ARGV: token, ttl ms, id, leave. Returns
 * {1, live} or {-1, live} when another process holds the id. */
static const char node_lua[] = "local t = redis.call('TIME')\n"
                               "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                               "local ttl = tonumber(ARGV[2])\n"
                               "local cur = redis.call('GET', KEYS[1])\n"
                               "if cur and cur ~= ARGV[1] then\n"
                               "  return {-1, redis.call('ZCOUNT', KEYS[2], now - ttl, '+inf')}\n"
                               "end\n"
                               "if ARGV[4] == '1' then\n"
                               "  redis.call('DEL', KEYS[1])\n"
                               "  redis.call('ZREM', KEYS[2], ARGV[3])\n"
                               "else\n"
                               "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
                               "  redis.call('ZADD', KEYS[2], now, ARGV[3])\n"
                               "end\n"
                               "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)\n"
                               "redis.call('PEXPIRE', KEYS[2], ttl * 10)\n"
                               "return {1, redis.call('ZCOUNT', KEYS[2], now - ttl, '+inf')}\n";

enum { SCRIPT_RATE, SCRIPT_QUOTA, SCRIPT_NODE, NSCRIPTS };
static const char *const script_src[NSCRIPTS] = {rate_lua, quota_lua, node_lua};

struct tg_redis {
    redisContext *c;
    char sha[NSCRIPTS][41];
    uint64_t trips;
};

uint64_t tg_redis_round_trips(const tg_redis_t *r)
{
    return r != NULL ? r->trips : 0;
}

/* The reply's error text, cut: it may quote our script, never a secret. */
static int reply_error(tg_err_t *err, const char *what, redisContext *c, redisReply *rp)
{
    if (rp == NULL)
        return tg_errf(err, TG_EIO, "redis: %s: %s", what, c->errstr[0] ? c->errstr : "no reply");
    return tg_errf(err, TG_EIO, "redis: %s: %.200s", what,
                   rp->type == REDIS_REPLY_ERROR ? rp->str : "unexpected reply");
}

static int load_scripts(tg_redis_t *r, tg_err_t *err)
{
    for (int i = 0; i < NSCRIPTS; i++) {
        redisReply *rp = redisCommand(r->c, "SCRIPT LOAD %s", script_src[i]);
        r->trips++;
        if (rp == NULL || rp->type != REDIS_REPLY_STRING || rp->len != 40) {
            int rc = reply_error(err, "SCRIPT LOAD", r->c, rp);
            if (rp != NULL)
                freeReplyObject(rp);
            return rc;
        }
        memcpy(r->sha[i], rp->str, 40);
        r->sha[i][40] = '\0';
        freeReplyObject(rp);
    }
    return 0;
}

int tg_redis_connect(const char *url, int timeout_ms, tg_redis_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_redis_url_t u;
    char why[160];
    if (tg_redis_url_parse(url, &u, why, sizeof(why)) != 0) {
        sodium_memzero(&u, sizeof(u));
        return tg_errf(err, TG_EINVAL, "cluster.redis %s", why);
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    tg_redis_t *r = calloc(1, sizeof(*r));
    int rc = TG_ENOMEM;
    if (r == NULL)
        goto fail;
    r->c = redisConnectWithTimeout(u.host, u.port, tv);
    if (r->c == NULL || r->c->err) {
        rc = tg_errf(err, TG_EIO, "redis: cannot connect to %s:%d: %s", u.host, u.port,
                     r->c != NULL ? r->c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(r->c, tv) != REDIS_OK) {
        rc = tg_errf(err, TG_EIO, "redis: cannot set the timeout");
        goto fail;
    }
    if (u.password[0] != '\0') {
        redisReply *rp = u.user[0] != '\0' ? redisCommand(r->c, "AUTH %s %s", u.user, u.password)
                                           : redisCommand(r->c, "AUTH %s", u.password);
        int ok = rp != NULL && rp->type == REDIS_REPLY_STATUS;
        if (!ok)
            rc = reply_error(err, "AUTH", r->c, rp);
        if (rp != NULL)
            freeReplyObject(rp);
        if (!ok)
            goto fail;
    }
    if (u.db != 0) {
        redisReply *rp = redisCommand(r->c, "SELECT %d", u.db);
        int ok = rp != NULL && rp->type == REDIS_REPLY_STATUS;
        if (!ok)
            rc = reply_error(err, "SELECT", r->c, rp);
        if (rp != NULL)
            freeReplyObject(rp);
        if (!ok)
            goto fail;
    }
    if ((rc = load_scripts(r, err)) != 0)
        goto fail;
    sodium_memzero(&u, sizeof(u));
    *out = r;
    return 0;
fail:
    sodium_memzero(&u, sizeof(u));
    tg_redis_close(r);
    return rc;
}

void tg_redis_close(tg_redis_t *r)
{
    if (r == NULL)
        return;
    if (r->c != NULL)
        redisFree(r->c);
    free(r);
}

/* EVALSHA script with one or two keys and the given arguments; a server that forgot the script
 * (NOSCRIPT: restarted, or SCRIPT FLUSH) gets it again once. Returns the two integers of the
 * reply. */
static int eval2(tg_redis_t *r, int script, int nkeys, const char **argv, const size_t *lens, int argc,
                 long long res[2], tg_err_t *err)
{
    char nk[4];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    const char *av[12];
    size_t al[12];
    if (argc + 3 > 12)
        return tg_errf(err, TG_EINVAL, "redis: too many arguments");
    av[0] = "EVALSHA", al[0] = 7;
    av[1] = r->sha[script], al[1] = 40;
    av[2] = nk, al[2] = strlen(nk);
    for (int i = 0; i < argc; i++)
        av[3 + i] = argv[i], al[3 + i] = lens[i];
    for (int attempt = 0;; attempt++) {
        redisReply *rp = redisCommandArgv(r->c, argc + 3, av, al);
        r->trips++;
        if (rp != NULL && rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
            freeReplyObject(rp);
            int rc = load_scripts(r, err);
            if (rc != 0)
                return rc;
            continue;
        }
        if (rp == NULL || rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 ||
            rp->element[0]->type != REDIS_REPLY_INTEGER || rp->element[1]->type != REDIS_REPLY_INTEGER) {
            int rc = reply_error(err, "EVALSHA", r->c, rp);
            if (rp != NULL)
                freeReplyObject(rp);
            return rc;
        }
        res[0] = rp->element[0]->integer;
        res[1] = rp->element[1]->integer;
        freeReplyObject(rp);
        return 0;
    }
}

#define KEY_CAP 320

static int prefixed(char out[KEY_CAP], const char *prefix, const char *key, size_t klen, size_t *len)
{
    size_t pl = strlen(prefix);
    if (pl + klen > KEY_CAP)
        return -1;
    memcpy(out, prefix, pl);
    memcpy(out + pl, key, klen);
    *len = pl + klen;
    return 0;
}

int tg_redis_rate(tg_redis_t *r, const char *key, size_t klen, tg_lease_op_t op, int64_t T, uint64_t burst, uint64_t n,
                  uint64_t *granted, uint64_t *fill, tg_err_t *err)
{
    char k[KEY_CAP], a1[24], a2[24], a3[4], a4[24];
    size_t kl;
    if (prefixed(k, "tg:r:", key, klen, &kl) != 0)
        return tg_errf(err, TG_EINVAL, "redis: key too long");
    snprintf(a1, sizeof(a1), "%" PRId64, T);
    snprintf(a2, sizeof(a2), "%" PRIu64, burst);
    snprintf(a3, sizeof(a3), "%d", (int)op);
    snprintf(a4, sizeof(a4), "%" PRIu64, n);
    const char *av[] = {k, a1, a2, a3, a4};
    size_t al[] = {kl, strlen(a1), strlen(a2), strlen(a3), strlen(a4)};
    long long res[2];
    int rc = eval2(r, SCRIPT_RATE, 1, av, al, 5, res, err);
    if (rc != 0)
        return rc;
    *granted = res[0] > 0 ? (uint64_t)res[0] : 0;
    *fill = res[1] > 0 ? (uint64_t)res[1] : 0;
    return 0;
}

int tg_redis_quota(tg_redis_t *r, const char *key, size_t klen, tg_lease_op_t op, uint64_t n, uint64_t included,
                   uint64_t floor_units, uint64_t *granted, uint64_t *total, tg_err_t *err)
{
    char k[KEY_CAP], a1[4], a2[24], a3[24], a4[24];
    size_t kl;
    if (prefixed(k, "tg:q:", key, klen, &kl) != 0)
        return tg_errf(err, TG_EINVAL, "redis: key too long");
    snprintf(a1, sizeof(a1), "%d", (int)op);
    snprintf(a2, sizeof(a2), "%" PRIu64, n);
    snprintf(a3, sizeof(a3), "%" PRIu64, included);
    snprintf(a4, sizeof(a4), "%" PRIu64, floor_units);
    const char *av[] = {k, a1, a2, a3, a4};
    size_t al[] = {kl, strlen(a1), strlen(a2), strlen(a3), strlen(a4)};
    long long res[2];
    int rc = eval2(r, SCRIPT_QUOTA, 1, av, al, 5, res, err);
    if (rc != 0)
        return rc;
    *granted = res[0] > 0 ? (uint64_t)res[0] : 0;
    *total = res[1] > 0 ? (uint64_t)res[1] : 0;
    return 0;
}

#define MGET_KEYS 256

/* A counter's value as the quota script writes it ("%.0f" of a count under 2^53). */
static int parse_total(const redisReply *rp, uint64_t *out)
{
    if (rp->len == 0 || rp->len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < rp->len; i++) {
        if (rp->str[i] < '0' || rp->str[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(rp->str[i] - '0');
    }
    *out = v;
    return 0;
}

/* Appends the MGETs of n quota counters (one per MGET_KEYS keys) to the connection's output;
 * *sent: the commands appended, each of which must be read back (totals_read) or the connection
 * closed. */
static int totals_append(tg_redis_t *r, const char *const *keys, const size_t *klens, size_t n, size_t *sent,
                         tg_err_t *err)
{
    *sent = 0;
    if (n == 0)
        return 0;
    size_t chunk = n < MGET_KEYS ? n : MGET_KEYS;
    const char **av = malloc((chunk + 1) * sizeof(*av));
    size_t *al = malloc((chunk + 1) * sizeof(*al));
    char *names = malloc(chunk * KEY_CAP);
    if (av == NULL || al == NULL || names == NULL) {
        free(av), free(al), free(names);
        return tg_errf(err, TG_ENOMEM, "out of memory");
    }
    int rc = 0;
    av[0] = "MGET", al[0] = 4;
    for (size_t at = 0; at < n && rc == 0; at += chunk) {
        size_t m = n - at < chunk ? n - at : chunk;
        for (size_t i = 0; i < m && rc == 0; i++) {
            char *k = names + i * KEY_CAP;
            if (prefixed(k, "tg:q:", keys[at + i], klens[at + i], &al[1 + i]) != 0)
                rc = tg_errf(err, TG_EINVAL, "redis: key too long");
            av[1 + i] = k;
        }
        /* hiredis copies the command into its output buffer: names can be reused at once */
        if (rc == 0 && redisAppendCommandArgv(r->c, (int)m + 1, av, al) != REDIS_OK)
            rc = tg_errf(err, TG_EIO, "redis: MGET: %s", r->c->errstr[0] ? r->c->errstr : "out of memory");
        if (rc == 0)
            (*sent)++;
    }
    free(av), free(al), free(names);
    return rc;
}

/* Reads the replies of the `sent` MGETs totals_append appended for n keys. rc: an earlier error
 * (the replies are still read, so that the connection stays in step). */
static int totals_read(tg_redis_t *r, size_t n, size_t sent, uint64_t *totals, int *found, int rc, tg_err_t *err)
{
    size_t chunk = n < MGET_KEYS ? n : MGET_KEYS;
    for (size_t j = 0, at = 0; j < sent; j++, at += chunk) {
        redisReply *rp = NULL;
        if (redisGetReply(r->c, (void **)&rp) != REDIS_OK || rp == NULL)
            return reply_error(err, "MGET", r->c, NULL); /* the connection is unusable: TG_EIO */
        size_t m = n - at < chunk ? n - at : chunk;
        if (rc == 0 && (rp->type != REDIS_REPLY_ARRAY || rp->elements != m))
            rc = reply_error(err, "MGET", r->c, rp);
        for (size_t i = 0; rc == 0 && i < m; i++) {
            const redisReply *e = rp->element[i];
            totals[at + i] = 0;
            found[at + i] = 0;
            if (e->type == REDIS_REPLY_STRING && parse_total(e, &totals[at + i]) == 0)
                found[at + i] = 1;
            else if (e->type != REDIS_REPLY_NIL)
                rc = tg_errf(err, TG_EIO, "redis: MGET: a quota counter that is not a count");
        }
        freeReplyObject(rp);
    }
    return rc;
}

int tg_redis_quota_totals(tg_redis_t *r, const char *const *keys, const size_t *klens, size_t n, uint64_t *totals,
                          int *found, tg_err_t *err)
{
    size_t sent = 0;
    int rc = totals_append(r, keys, klens, n, &sent, err);
    if (sent > 0)
        r->trips++;
    return totals_read(r, n, sent, totals, found, rc, err);
}

/* ---- batches ---- */

enum { SLOT_QUEUED, SLOT_OK, SLOT_REFUSED, SLOT_NOSCRIPT, SLOT_NO_REPLY };

/* One queued script call: everything needed to send it again after a NOSCRIPT. */
typedef struct slot {
    int script, state;
    size_t kl;
    char key[KEY_CAP];
    char arg[4][24];
    long long res[2];
} slot_t;

struct tg_redis_batch {
    slot_t *slots;
    size_t n, cap;
};

tg_redis_batch_t *tg_redis_batch_new(void)
{
    return calloc(1, sizeof(tg_redis_batch_t));
}

void tg_redis_batch_free(tg_redis_batch_t *b)
{
    if (b == NULL)
        return;
    free(b->slots);
    free(b);
}

void tg_redis_batch_reset(tg_redis_batch_t *b)
{
    b->n = 0;
}

size_t tg_redis_batch_size(const tg_redis_batch_t *b)
{
    return b->n;
}

/* A new slot for script on "prefix KEY", or NULL (out of memory, key too long: *rc says). */
static slot_t *batch_slot(tg_redis_batch_t *b, int script, const char *prefix, const char *key, size_t klen, int *rc)
{
    if (b->n == b->cap) {
        size_t cap = b->cap == 0 ? 64 : b->cap * 2;
        slot_t *s = cap > SIZE_MAX / sizeof(*s) ? NULL : realloc(b->slots, cap * sizeof(*s));
        if (s == NULL) {
            *rc = TG_ENOMEM;
            return NULL;
        }
        b->slots = s;
        b->cap = cap;
    }
    slot_t *s = &b->slots[b->n];
    if (prefixed(s->key, prefix, key, klen, &s->kl) != 0) {
        *rc = TG_EINVAL;
        return NULL;
    }
    s->script = script;
    s->state = SLOT_QUEUED;
    s->res[0] = s->res[1] = 0;
    *rc = (int)b->n++;
    return s;
}

int tg_redis_batch_rate(tg_redis_batch_t *b, const char *key, size_t klen, tg_lease_op_t op, int64_t T, uint64_t burst,
                        uint64_t n)
{
    int rc;
    slot_t *s = batch_slot(b, SCRIPT_RATE, "tg:r:", key, klen, &rc);
    if (s == NULL)
        return rc;
    snprintf(s->arg[0], sizeof(s->arg[0]), "%" PRId64, T);
    snprintf(s->arg[1], sizeof(s->arg[1]), "%" PRIu64, burst);
    snprintf(s->arg[2], sizeof(s->arg[2]), "%d", (int)op);
    snprintf(s->arg[3], sizeof(s->arg[3]), "%" PRIu64, n);
    return rc;
}

int tg_redis_batch_quota(tg_redis_batch_t *b, const char *key, size_t klen, tg_lease_op_t op, uint64_t n,
                         uint64_t included, uint64_t floor_units)
{
    int rc;
    slot_t *s = batch_slot(b, SCRIPT_QUOTA, "tg:q:", key, klen, &rc);
    if (s == NULL)
        return rc;
    snprintf(s->arg[0], sizeof(s->arg[0]), "%d", (int)op);
    snprintf(s->arg[1], sizeof(s->arg[1]), "%" PRIu64, n);
    snprintf(s->arg[2], sizeof(s->arg[2]), "%" PRIu64, included);
    snprintf(s->arg[3], sizeof(s->arg[3]), "%" PRIu64, floor_units);
    return rc;
}

/* Appends the EVALSHA of every slot in state `which` to the connection's output; *sent: how
 * many. Every one appended must be read back (read_slots) or the connection closed. */
static int append_slots(tg_redis_t *r, tg_redis_batch_t *b, int which, size_t *sent, tg_err_t *err)
{
    *sent = 0;
    for (size_t i = 0; i < b->n; i++) {
        slot_t *s = &b->slots[i];
        if (s->state != which)
            continue;
        const char *av[] = {"EVALSHA", r->sha[s->script], "1", s->key, s->arg[0], s->arg[1], s->arg[2], s->arg[3]};
        size_t al[] = {7, 40, 1, s->kl, strlen(s->arg[0]), strlen(s->arg[1]), strlen(s->arg[2]), strlen(s->arg[3])};
        if (redisAppendCommandArgv(r->c, 8, av, al) != REDIS_OK)
            return tg_errf(err, TG_EIO, "redis: EVALSHA: %s", r->c->errstr[0] ? r->c->errstr : "out of memory");
        s->state = SLOT_NO_REPLY; /* until its reply is read */
        (*sent)++;
    }
    return 0;
}

/* Reads the replies of the `sent` slots append_slots sent (in order: those in SLOT_NO_REPLY).
 * Returns 0, or TG_EIO when the connection failed (the slots left without a reply stay so). */
static int read_slots(tg_redis_t *r, tg_redis_batch_t *b, size_t sent, size_t *noscript, tg_err_t *err)
{
    *noscript = 0;
    for (size_t i = 0; i < b->n && sent > 0; i++) {
        slot_t *s = &b->slots[i];
        if (s->state != SLOT_NO_REPLY)
            continue;
        sent--;
        redisReply *rp = NULL;
        if (redisGetReply(r->c, (void **)&rp) != REDIS_OK || rp == NULL)
            return reply_error(err, "EVALSHA", r->c, NULL);
        if (rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0) {
            s->state = SLOT_NOSCRIPT;
            (*noscript)++;
        } else if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 && rp->element[0]->type == REDIS_REPLY_INTEGER &&
                   rp->element[1]->type == REDIS_REPLY_INTEGER) {
            s->res[0] = rp->element[0]->integer;
            s->res[1] = rp->element[1]->integer;
            s->state = SLOT_OK;
        } else {
            s->state = SLOT_REFUSED; /* this key's call only: the others' replies follow */
        }
        freeReplyObject(rp);
    }
    return 0;
}

int tg_redis_batch_run(tg_redis_t *r, tg_redis_batch_t *b, const char *const *tkeys, const size_t *tklens, size_t nt,
                       uint64_t *totals, int *found, tg_err_t *err)
{
    size_t sent = 0, tsent = 0, noscript = 0;
    int rc = append_slots(r, b, SLOT_QUEUED, &sent, err);
    if (rc != 0)
        return rc; /* a partial command may be in the output buffer: the connection must go */
    rc = totals_append(r, tkeys, tklens, nt, &tsent, err);
    if (rc == TG_EIO)
        return rc;
    if (sent + tsent == 0)
        return rc;
    r->trips++; /* hiredis writes the whole output buffer before it reads the first reply */
    int rrc = read_slots(r, b, sent, &noscript, err);
    if (rrc != 0)
        return rrc;
    rc = totals_read(r, nt, tsent, totals, found, rc, err);
    if (rc == TG_EIO)
        return rc;
    if (noscript > 0) { /* they did not run: load the scripts, send them again, once */
        if ((rrc = load_scripts(r, err)) != 0)
            return rrc == TG_EIO ? rrc : tg_errf(err, TG_EIO, "redis: SCRIPT LOAD failed");
        if ((rrc = append_slots(r, b, SLOT_NOSCRIPT, &sent, err)) != 0)
            return rrc;
        r->trips++;
        if ((rrc = read_slots(r, b, sent, &noscript, err)) != 0)
            return rrc;
        for (size_t i = 0; i < b->n; i++) /* refused twice: the server keeps losing them */
            if (b->slots[i].state == SLOT_NOSCRIPT)
                b->slots[i].state = SLOT_REFUSED;
    }
    return rc;
}

int tg_redis_batch_result(const tg_redis_batch_t *b, int slot, uint64_t *granted, uint64_t *value)
{
    *granted = *value = 0;
    if (slot < 0 || (size_t)slot >= b->n)
        return TG_EINVAL;
    const slot_t *s = &b->slots[slot];
    switch (s->state) {
    case SLOT_OK:
        *granted = s->res[0] > 0 ? (uint64_t)s->res[0] : 0;
        *value = s->res[1] > 0 ? (uint64_t)s->res[1] : 0;
        return 0;
    case SLOT_REFUSED:
    case SLOT_NOSCRIPT:
        return TG_ESTORE;
    default:
        return TG_EIO;
    }
}

int tg_redis_node(tg_redis_t *r, const char *node_id, const char *token, int ttl_ms, int leave, uint32_t *live,
                  tg_err_t *err)
{
    char k[KEY_CAP], ttl[16];
    size_t kl;
    if (prefixed(k, "tg:node:", node_id, strlen(node_id), &kl) != 0)
        return tg_errf(err, TG_EINVAL, "redis: node id too long");
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    const char *av[] = {k, "tg:nodes", token, ttl, node_id, leave ? "1" : "0"};
    size_t al[] = {kl, 8, strlen(token), strlen(ttl), strlen(node_id), 1};
    long long res[2];
    int rc = eval2(r, SCRIPT_NODE, 2, av, al, 6, res, err);
    if (rc != 0)
        return rc;
    if (live != NULL)
        *live = res[1] > 0 ? (uint32_t)res[1] : 1;
    if (res[0] < 0)
        return tg_errf(err, TG_EEXIST, "cluster.node_id \"%s\" is held by another live node; give each node its own",
                       node_id);
    return 0;
}
