/* decide_syslog.c - see decide_syslog.h.
 *
 * One thread, "tg-decide": poll(2) on the UDP socket with a 100 ms timeout, drain what arrived
 * (non-blocking reads, at most 1024 datagrams a round so that expiry still runs under a flood),
 * then tg_reservations_expire. The socket's receive buffer is raised to 4 MiB: a burst from nginx
 * waits there rather than being dropped by the kernel (a dropped line is settled by the timeout
 * rule, not lost, but late). Nothing here touches a gateway loop. */
#include "http/decide_syslog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_int.h"
#include "metrics/metrics.h"
#include "util/clock.h"

#define MSG_MAGIC "tollgate1 "
#define MSG_MAGIC_LEN 10
#define UNITS_MAX 1024
#define SECRET_MAX 256 /* decide.syslog_secret's bound in config.c */
#define DRAIN_MAX 1024
#define TICK_MS 100

int tg_decide_syslog_parse(const char *line, size_t len, int with_secret, tg_decide_settlement_t *out)
{
    if (len > TG_DECIDE_LINE_MAX)
        return TG_EINVAL;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    /* <PRI>: one to three digits */
    size_t i = 0;
    if (len < 3 || line[0] != '<')
        return TG_EINVAL;
    for (i = 1; i < len && i <= 4 && line[i] >= '0' && line[i] <= '9'; i++)
        ;
    if (i == 1 || i > 4 || i >= len || line[i] != '>')
        return TG_EINVAL;
    i++;
    /* TIMESTAMP [HOST ]TAG: the header holds no ": " before the tag's (the time is "hh:mm:ss") */
    const char *msg = NULL;
    for (size_t j = i; j + 1 < len; j++) {
        if ((unsigned char)line[j] < 0x20 || line[j] == 0x7f)
            return TG_EINVAL;
        if (line[j] == ':' && line[j + 1] == ' ') {
            msg = line + j + 2;
            break;
        }
    }
    if (msg == NULL)
        return TG_EINVAL;
    size_t mlen = len - (size_t)(msg - line);
    if (mlen < MSG_MAGIC_LEN || memcmp(msg, MSG_MAGIC, MSG_MAGIC_LEN) != 0)
        return TG_EINVAL;
    const char *p = msg + MSG_MAGIC_LEN, *end = msg + mlen;
    out->secret = NULL;
    out->secret_len = 0;
    if (with_secret) { /* SECRET, then one space */
        size_t k = 0;
        while (p + k < end && p[k] != ' ' && k <= SECRET_MAX) {
            if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
                return TG_EINVAL;
            k++;
        }
        if (k == 0 || k > SECRET_MAX || p + k == end)
            return TG_EINVAL;
        out->secret = p;
        out->secret_len = k;
        p += k + 1;
    }
    /* RESERVATION */
    if ((size_t)(end - p) < TG_RESERVATION_ID_LEN + 1 || memcmp(p, "rsv_", 4) != 0)
        return TG_EINVAL;
    for (size_t k = 4; k < TG_RESERVATION_ID_LEN; k++)
        if (!((p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f')))
            return TG_EINVAL;
    if (p[TG_RESERVATION_ID_LEN] != ' ')
        return TG_EINVAL;
    out->reservation = p;
    out->reservation_len = TG_RESERVATION_ID_LEN;
    p += TG_RESERVATION_ID_LEN + 1;
    /* STATUS */
    if (end - p < 4 || p[3] != ' ')
        return TG_EINVAL;
    int status = 0;
    for (int k = 0; k < 3; k++) {
        if (p[k] < '0' || p[k] > '9')
            return TG_EINVAL;
        status = status * 10 + (p[k] - '0');
    }
    if (status < 100 || status > 599)
        return TG_EINVAL;
    out->status = status;
    p += 4;
    /* UNITS */
    size_t ulen = (size_t)(end - p);
    if (ulen == 0 || ulen > UNITS_MAX)
        return TG_EINVAL;
    for (size_t k = 0; k < ulen; k++)
        if ((unsigned char)p[k] < 0x20 || (unsigned char)p[k] >= 0x7f)
            return TG_EINVAL;
    if (ulen == 1 && p[0] == '-') {
        out->units = NULL;
        out->units_len = 0;
    } else {
        out->units = p;
        out->units_len = ulen;
    }
    return 0;
}

struct tg_decide_receiver {
    tg_reservations_t *reservations;
    int has_secret;
    uint8_t secret_digest[32]; /* of decide.syslog_secret: compared with a line's, in constant time */
    int fd;                    /* -1: no syslog receiver */
    pthread_t tid;
    _Atomic int stopping;
};

/* Hashed first so that the comparison takes as long whatever the lengths (as decide.token's). */
static int secret_ok(const tg_decide_receiver_t *rc, const tg_decide_settlement_t *s)
{
    uint8_t got[32];
    crypto_generichash(got, sizeof(got), (const uint8_t *)s->secret, s->secret_len, NULL, 0);
    return sodium_memcmp(got, rc->secret_digest, sizeof(got)) == 0;
}

/* One datagram: settle its reservation. A client that left (nginx's 499) gives the reservation
 * back, as tollgate's own proxy does when a client leaves before the answer. With a secret, a
 * line in the format without one counts as bad_secret, not malformed: a forger's or a log_format
 * that misses it. */
static void settle_line(tg_decide_receiver_t *rc, const char *buf, size_t n)
{
    tg_decide_settlement_t s;
    if (tg_decide_syslog_parse(buf, n, rc->has_secret, &s) != 0) {
        int unsigned_line = rc->has_secret && tg_decide_syslog_parse(buf, n, 0, &s) == 0;
        tg_metrics_count_decide_line(unsigned_line ? TG_DECIDE_LINE_BAD_SECRET : TG_DECIDE_LINE_MALFORMED);
        return;
    }
    if (rc->has_secret && !secret_ok(rc, &s)) {
        tg_metrics_count_decide_line(TG_DECIDE_LINE_BAD_SECRET);
        return;
    }
    int r = tg_reservations_settle(rc->reservations, s.reservation, s.reservation_len, s.status, s.status == 499,
                                   s.units, s.units_len, NULL, NULL);
    tg_metrics_count_decide_line(r == TG_ENOTFOUND ? TG_DECIDE_LINE_UNKNOWN : TG_DECIDE_LINE_SETTLED);
}

static void drain(tg_decide_receiver_t *rc)
{
    char buf[TG_DECIDE_LINE_MAX + 1];
    for (int k = 0; k < DRAIN_MAX; k++) {
        ssize_t n = recv(rc->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            return; /* EAGAIN, or an error the next poll reports again */
        settle_line(rc, buf, (size_t)n > sizeof(buf) ? sizeof(buf) : (size_t)n);
    }
}

static void *receiver_main(void *arg)
{
    tg_decide_receiver_t *rc = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "tg-decide");
    while (!atomic_load(&rc->stopping)) {
        if (rc->fd >= 0) {
            struct pollfd pfd = {.fd = rc->fd, .events = POLLIN};
            if (poll(&pfd, 1, TICK_MS) > 0)
                drain(rc);
        } else {
            struct timespec ts = {0, TICK_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        size_t n = tg_reservations_expire(rc->reservations, tg_clock_mono_ns());
        if (n > 0)
            tg_metrics_count_decide_expired(n);
        tg_reservations_stats_t st;
        tg_reservations_get_stats(rc->reservations, &st);
        tg_metrics_decide_table(st.held, st.full, st.customer_full);
    }
    if (rc->fd >= 0)
        drain(rc); /* what nginx sent before the stop */
    return NULL;
}

int tg_decide_receiver_start(const char *address, const char *secret, tg_reservations_t *r, tg_decide_receiver_t **out,
                             tg_err_t *err)
{
    tg_decide_receiver_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the decision API");
    rc->reservations = r;
    if (secret != NULL) {
        rc->has_secret = 1;
        crypto_generichash(rc->secret_digest, sizeof(rc->secret_digest), (const uint8_t *)secret, strlen(secret), NULL,
                           0);
    }
    rc->fd = -1;
    if (address != NULL) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int prc = tg_http_parse_listen(address, &ss, &len, err);
        if (prc != 0) {
            free(rc);
            return prc;
        }
        int rcvbuf = 4 * 1024 * 1024;
        rc->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (rc->fd < 0 || bind(rc->fd, (struct sockaddr *)&ss, len) != 0) {
            int e = errno;
            if (rc->fd >= 0)
                close(rc->fd);
            free(rc);
            return tg_errf(err, TG_EIO, "decide.syslog: cannot listen on udp %s: %s", address, strerror(e));
        }
        setsockopt(rc->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* capped by rmem_max */
    }
    if (pthread_create(&rc->tid, NULL, receiver_main, rc) != 0) {
        if (rc->fd >= 0)
            close(rc->fd);
        free(rc);
        return tg_errf(err, TG_EIO, "cannot start the decision API's thread");
    }
    *out = rc;
    return 0;
}

void tg_decide_receiver_stop(tg_decide_receiver_t *rc)
{
    if (rc == NULL)
        return;
    atomic_store(&rc->stopping, 1);
    pthread_join(rc->tid, NULL);
    if (rc->fd >= 0)
        close(rc->fd);
    free(rc);
}
