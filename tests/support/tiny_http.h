/* tiny_http.h - a one-thread HTTP/1.1 server on 127.0.0.1 for unit tests of HTTP clients: it
 * answers each connection with the next scripted response (status line, headers and body
 * exactly as given; or closes the socket without answering, for a "response lost") and keeps
 * the raw requests it read, so that a test can check what the client sent. A real server on a
 * real socket: the code under test talks to it through libcurl unchanged.
 * Header-only: include it in one test file. */
#ifndef TG_TINY_HTTP_H
#define TG_TINY_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define TINY_MAX 16
#define TINY_REQ_MAX 8192

typedef struct tiny_http {
    int fd, port;
    pthread_t tid;
    pthread_mutex_t mu;
    const char *heads[TINY_MAX]; /* status line and headers, each ending in CRLF; NULL: close without answering */
    const char *bodies[TINY_MAX];
    size_t nresp, next;
    char requests[TINY_MAX][TINY_REQ_MAX];
    size_t nreq;
    int stop;
} tiny_http_t;

/* Reads one request (head and Content-Length body) into buf; its length, or -1. */
static ssize_t tiny_read_request(int c, char *buf, size_t cap)
{
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t r = read(c, buf + len, cap - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        size_t body = 0;
        for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2)
            if (strncasecmp(h, "Content-Length:", 15) == 0)
                body = strtoul(h + 15, NULL, 10);
        if (len >= (size_t)(end + 4 - buf) + body)
            return (ssize_t)len;
    }
    return (ssize_t)len;
}

static void *tiny_main(void *arg)
{
    tiny_http_t *t = arg;
    for (;;) {
        int c = accept(t->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_mutex_lock(&t->mu);
        int stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop) {
            close(c);
            return NULL;
        }
        char buf[TINY_REQ_MAX];
        if (tiny_read_request(c, buf, sizeof(buf)) < 0) {
            close(c);
            continue;
        }
        pthread_mutex_lock(&t->mu);
        const char *head = "HTTP/1.1 500 Internal Server Error\r\n", *rbody = "";
        if (t->next < t->nresp) {
            head = t->heads[t->next];
            rbody = t->bodies[t->next];
            t->next++;
        }
        if (t->nreq < TINY_MAX)
            memcpy(t->requests[t->nreq++], buf, sizeof(buf));
        pthread_mutex_unlock(&t->mu);
        if (head != NULL) {
            char resp[TINY_REQ_MAX];
            snprintf(resp, sizeof(resp), "%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s", head, strlen(rbody),
                     rbody);
            size_t off = 0, n = strlen(resp);
            while (off < n) {
                ssize_t w = write(c, resp + off, n - off);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(c);
    }
}

static int tiny_start(tiny_http_t *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (t->fd < 0 || bind(t->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(t->fd, 16) != 0 ||
        getsockname(t->fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    t->port = ntohs(a.sin_port);
    return pthread_create(&t->tid, NULL, tiny_main, t);
}

/* Queues a response: head is the status line and headers (each line ending in CRLF; the
 * server adds Content-Length), or NULL to close the connection without answering. Both must
 * outlive the server (string literals). */
static void tiny_push(tiny_http_t *t, const char *head, const char *body)
{
    pthread_mutex_lock(&t->mu);
    if (t->nresp < TINY_MAX) {
        t->heads[t->nresp] = head;
        t->bodies[t->nresp++] = body != NULL ? body : "";
    }
    pthread_mutex_unlock(&t->mu);
}

__attribute__((unused)) static size_t tiny_nreq(tiny_http_t *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->nreq;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void tiny_stop(tiny_http_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_mutex_unlock(&t->mu);
    /* wake accept() with a connection of our own */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)t->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (c >= 0) {
        connect(c, (struct sockaddr *)&a, sizeof(a));
        close(c);
    }
    pthread_join(t->tid, NULL);
    close(t->fd);
    pthread_mutex_destroy(&t->mu);
}

#endif
