/* log_copy.c - copies of a running gateway's metering logs, for backups (meter.h,
 * tg_meter_copy_logs). The gateway holds its logs with an exclusive flock, which is advisory:
 * reading them from another process is allowed, and the log's own format (CRC per record, a
 * generation per reset) tells a good copy from one caught mid-write. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metering/meter.h"
#include "metering/usage_log.h"

#define COPY_TRIES 5
#define CHUNK (1024 * 1024)

/* Copies src to dest (created, fsync'd). 0; TG_ENOTFOUND if src does not exist; TG_EIO. */
static int copy_file(const char *src, const char *dest, tg_err_t *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? TG_ENOTFOUND : tg_errf(err, TG_EIO, "reading %s: %s", src, strerror(errno));
    int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *buf = malloc(CHUNK);
    int rc = 0;
    if (out < 0 || buf == NULL)
        rc = out < 0 ? tg_errf(err, TG_EIO, "creating %s: %s", dest, strerror(errno)) : tg_errf(err, TG_ENOMEM, "out of memory");
    for (ssize_t n; rc == 0 && (n = read(in, buf, CHUNK)) != 0;) {
        if (n < 0) {
            rc = tg_errf(err, TG_EIO, "reading %s: %s", src, strerror(errno));
            break;
        }
        for (ssize_t done = 0, w; rc == 0 && done < n; done += w)
            if ((w = write(out, buf + done, (size_t)(n - done))) < 0)
                rc = tg_errf(err, TG_EIO, "writing %s: %s", dest, strerror(errno));
    }
    if (rc == 0 && fsync(out) != 0)
        rc = tg_errf(err, TG_EIO, "writing %s: %s", dest, strerror(errno));
    free(buf);
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

typedef struct counted {
    size_t batches, rows;
} counted_t;

static int count_record(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    (void)batch_id, (void)rows;
    counted_t *c = arg;
    c->batches++;
    c->rows += n;
    return 0;
}

/* Opens the copy at path and reads its records: TG_ESTORE if its header is torn. */
static int read_back(const char *path, counted_t *c, tg_err_t *err)
{
    tg_usage_log_t *log = NULL;
    *c = (counted_t){0};
    int rc = tg_usage_log_open(path, &log, err);
    if (rc == 0)
        rc = tg_usage_log_replay(log, count_record, c, err);
    tg_usage_log_close(log);
    return rc;
}

int tg_meter_copy_logs(const char *store_url, const char *log_dir, const char *node, const char *dest_dir,
                       tg_meter_copied_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *src = tg_meter_log_path(store_url, log_dir, node, i, err), dest[4096];
        if (src == NULL)
            return err->code;
        if (snprintf(dest, sizeof(dest), "%s/usage-%d.log", dest_dir, i + 1) >= (int)sizeof(dest)) {
            free(src);
            return tg_errf(err, TG_EINVAL, "the backup directory's path is too long");
        }
        counted_t c = {0};
        for (int attempt = 1;; attempt++) {
            rc = copy_file(src, dest, err);
            if (rc == TG_ENOTFOUND) { /* this log was never made: nothing to keep */
                rc = 0;
                break;
            }
            if (rc == 0)
                rc = read_back(dest, &c, err);
            if (rc == 0) {
                out->logs++;
                out->batches += c.batches;
                out->rows += c.rows;
                break;
            }
            if (rc != TG_ESTORE || attempt == COPY_TRIES) /* torn mid-reset: copy again */
                break;
        }
        free(src);
    }
    return rc;
}
