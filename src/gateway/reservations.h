/* reservations.h - admitted calls waiting for their settlement, for the decision API.
 *
 * When tollgate proxies a call it settles it itself (gateway.h): it sees the upstream's answer.
 * When another program forwards the call (nginx's auth_request, an API's own code through POST
 * /v1/check), tollgate only decides; the answer comes back later and separately (nginx's access
 * log over syslog, POST /v1/report). Between the two the admitted call - its quota reservation,
 * its identity, its units - waits here, under an unguessable id handed to the forwarder.
 *
 * Each reservation is settled exactly once: by tg_reservations_settle (the first settlement
 * wins; a repeated one finds nothing), or, when none arrives within the timeout, by
 * tg_reservations_expire under the configured rule: BILL meters the call as answered with its
 * route's units (a lost log line must not make a call free), RELEASE gives the reservation back
 * (nothing billed). The table is bounded: when it is full a new call is refused (TG_ELIMIT), never
 * admitted without a record; so is each customer's share of it (TG_ESTATE), so that one customer
 * holding calls open (slow answers, lost log lines) cannot refuse everybody else's.
 * Thread-safe: gateway loops hold, the settlement receiver and POST /v1/report settle, one thread
 * expires; nothing here blocks on I/O (metering hands the usage to the meter, meter.h). Sharded
 * locks, held only to link or unlink an entry.
 *
 * With a file (opts.file, reservation_file.h), every open reservation also has a slot in a
 * shared file mapping, so that a process death (kill -9, OOM, a crash) does not make the calls
 * it admitted free: the next start settles them by the timeout rule before serving, each once
 * (a reservation whose usage reached the metering log before the death is not billed again).
 * A slot is written when the call is held, with plain stores into the page cache (no syscall,
 * no lock), and freed once its usage is in the metering log (the meter's callback) or it was
 * released. Without a file, a hard kill loses the reservations open at that moment. */
#ifndef TG_RESERVATIONS_H
#define TG_RESERVATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"
#include "util/err.h"

/* "rsv_" and 32 lowercase hex digits (16 random bytes), plus the NUL. */
#define TG_RESERVATION_ID_LEN 36
#define TG_RESERVATION_ID_MAX (TG_RESERVATION_ID_LEN + 1)

typedef struct tg_reservations tg_reservations_t;
typedef struct tg_reservation_file tg_reservation_file_t;

/* decide.on_timeout; the values are the config's (config.h). */
typedef enum tg_reservation_timeout_rule {
    TG_RESERVATION_BILL = 0,
    TG_RESERVATION_RELEASE = 1
} tg_reservation_timeout_rule_t;

/* What the forwarder said about the decided call, kept with its reservation so that the line
 * written when it ends (the on_end hook: the access log) names the call by itself, without a
 * join on the reservation id. Bounded copies: longer values are cut (the method at 15 bytes, the
 * path at 255, the request id at 128), and an empty string means "not given". About 400 bytes
 * per open reservation (decide.max_pending of them at most). */
#define TG_RESERVATION_METHOD_MAX 16
#define TG_RESERVATION_PATH_MAX 256
#define TG_RESERVATION_REQUEST_ID_MAX 129
typedef struct tg_reservation_label {
    char method[TG_RESERVATION_METHOD_MAX];
    char path[TG_RESERVATION_PATH_MAX];
    char request_id[TG_RESERVATION_REQUEST_ID_MAX];
} tg_reservation_label_t;

/* Fills label from the given bytes (any of them NULL or empty: ""), cutting each to its size. */
void tg_reservation_label_set(tg_reservation_label_t *label, const char *method, size_t method_len, const char *path,
                              size_t path_len, const char *request_id, size_t request_id_len);

typedef struct tg_reservations_opts {
    size_t capacity;     /* reservations held at once, at most */
    size_t per_customer; /* ... and by one customer (tg_account_reservation_take); 0: no cap */
    int64_t timeout_ns;  /* after this, tg_reservations_expire settles by the rule */
    int on_timeout;      /* a tg_reservation_timeout_rule_t */
    /* Called once per reservation when it ends, after the gateway billed or released its call
     * (call->nmetered: what was billed, 0 for nothing): by its settlement (expired 0, status as
     * reported) or by the timeout rule (expired 1, status 0), also when the table is freed, with
     * the label it was held with. For the access log; any thread, must not block. NULL: nothing
     * is called. */
    void (*on_end)(void *arg, const tg_call_t *call, const tg_reservation_label_t *label, const char *id, int status,
                   int expired);
    void *on_end_arg;
    /* Where the open reservations outlive the process: recovered (tg_reservation_file_recover)
     * for at least `capacity` slots; must outlive the table and the meter (its callbacks free
     * slots), so close it after tg_meter_stop. NULL: in memory only. */
    tg_reservation_file_t *file;
} tg_reservations_opts_t;

typedef struct tg_reservations_stats {
    uint64_t held;          /* open now */
    uint64_t settled;       /* settled by their id */
    uint64_t expired;       /* settled by the timeout rule */
    uint64_t full;          /* calls refused because the table was full */
    uint64_t customer_full; /* calls refused because their customer held per_customer */
    uint64_t unknown;       /* settlements naming no open reservation (unknown, settled, expired) */
} tg_reservations_stats_t;

/* gw settles the calls and must outlive the table. NULL when out of memory. */
tg_reservations_t *tg_reservations_new(tg_gateway_t *gw, const tg_reservations_opts_t *opts);

/* Settles every open reservation by the timeout rule (the meter must still run), then frees. */
void tg_reservations_free(tg_reservations_t *r);

/* Takes over an admitted, unsettled call (a copy is kept, and of label when not NULL; the
 * caller's call is marked settled so that its own abandon does nothing) and writes its new id
 * into id_out. TG_ELIMIT when the table is full, TG_ESTATE when the call's customer holds
 * opts.per_customer already, TG_ENOMEM: the call is then left to the caller, unsettled.
 * now_mono_ns starts its timeout. Any thread. */
int tg_reservations_hold(tg_reservations_t *r, tg_call_t *call, const tg_reservation_label_t *label,
                         int64_t now_mono_ns, char id_out[TG_RESERVATION_ID_MAX], tg_err_t *err);

/* The call held under id was answered with `status` (a 5xx, or upstream_failed, releases it, as
 * for proxied calls), the upstream reporting units_header ("metric=n, ..." as Tollgate-Units;
 * NULL: none). Returns 1 when billed (cb, if not NULL, fires once the usage is durable, as
 * tg_gateway_settle), 0 when released (cb does not fire), TG_ENOTFOUND when no open reservation
 * has that id (never held, already settled, or expired: a repeated settlement does nothing), or
 * a negative meter error (usage could not be queued; cb does not fire). Any thread. */
int tg_reservations_settle(tg_reservations_t *r, const char *id, size_t id_len, int status, int upstream_failed,
                           const char *units_header, size_t units_len, tg_meter_done_cb cb, void *arg);

/* Settles, by the timeout rule, every reservation held for longer than the timeout at
 * now_mono_ns; returns how many. Call it often (the decision API's receiver thread does, every
 * 100 ms); any thread. */
size_t tg_reservations_expire(tg_reservations_t *r, int64_t now_mono_ns);

void tg_reservations_get_stats(tg_reservations_t *r, tg_reservations_stats_t *out);

#endif
