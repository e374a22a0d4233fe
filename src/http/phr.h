/* phr.h - picohttpparser's declarations. The parser ships inside libh2o (its symbols are
 * exported) without a header in Debian's package; these are its declarations as of h2o 2.2.
 * Internal to src/http/. */
#ifndef TG_PHR_H
#define TG_PHR_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
    const char *name; /* NULL for an obs-fold continuation line */
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg,
                       size_t *msg_len, struct phr_header *headers, size_t *num_headers, size_t last_len);

struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
