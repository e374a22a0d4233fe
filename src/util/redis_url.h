/* redis_url.h - parses redis://[[user]:password@]host[:port][/db], the form of cluster.redis.
 *
 * A pure function (no I/O): the configuration checks a URL with it and the Redis client connects
 * with what it returns. Hosts are names or IPv4 addresses, or IPv6 addresses in brackets. */
#ifndef TG_REDIS_URL_H
#define TG_REDIS_URL_H

#include <stddef.h>

#define TG_REDIS_HOST_MAX 256
#define TG_REDIS_PASS_MAX 256

typedef struct tg_redis_url {
    char host[TG_REDIS_HOST_MAX];
    int port;                         /* default 6379 */
    int db;                           /* default 0; 0 to 15 */
    char user[TG_REDIS_PASS_MAX];     /* empty: none (Redis 6 ACL user) */
    char password[TG_REDIS_PASS_MAX]; /* empty: none; a secret, wiped by the caller */
} tg_redis_url_t;

/* Parses url into *out. Returns 0, or -1 with the end of a sentence saying what is wrong in why
 * (it never quotes the password). */
int tg_redis_url_parse(const char *url, tg_redis_url_t *out, char *why, size_t cap);

#endif
