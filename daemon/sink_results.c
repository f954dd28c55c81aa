/* SPDX-License-Identifier: Apache-2.0 */
/* sink_results.c — what is published, as JSON Lines files on disk.
 *
 * A queued sink (sink.h): its own thread writes DIR/results.jsonl, one
 * object a line, the message's JSON with "topic" as its first member
 * ({"topic":"pump","stream":"pump","seq":...}; "_events", "_severity",
 * "_stats").  Results only with results.every.  Before a line would take
 * the file beyond results.max_bytes the file is closed and rotated:
 * results.jsonl.(N-1) -> .N, ..., results.jsonl -> results.jsonl.1, and a
 * new results.jsonl is started; what would become .(results.files + 1) is
 * deleted.  So the directory holds at most results.files + 1 files of at
 * most max_bytes each, and the newest data is always in results.jsonl.
 * An existing results.jsonl is appended to (a restart continues it).
 *
 * Lines are written with one write(2) each (O_APPEND), so a reader that
 * follows the file (tail -F) never sees half a line, unless the disk
 * fills.  A failed write is counted (lost()) and logged once; the sink then
 * tries the next line again, so it resumes when space is back.
 */
#include "sink.h"

#include "config.h"
#include "log.h"
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rsink {
    char            *dir;
    bool             every;
    uint64_t         max_bytes;
    unsigned         files;
    int              fd;
    uint64_t         size;          /* bytes in results.jsonl */
    char            *buf;
    size_t           len;
    bool             failing;       /* the last write failed (logged once) */
    _Atomic uint64_t lost;
};

static int open_current(struct rsink *r, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/results.jsonl", r->dir);
    r->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->fd < 0) {
        int e = errno;
        if (err)
            snprintf(err, errlen, "results.path: cannot open %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    r->size = fstat(r->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static void rotate(struct rsink *r)
{
    char from[PATH_MAX], to[PATH_MAX];
    close(r->fd);
    r->fd = -1;
    snprintf(to, sizeof to, "%s/results.jsonl.%u", r->dir, r->files);
    unlink(to);
    for (unsigned i = r->files; i > 1; i--) {
        snprintf(from, sizeof from, "%s/results.jsonl.%u", r->dir, i - 1);
        snprintf(to, sizeof to, "%s/results.jsonl.%u", r->dir, i);
        rename(from, to);
    }
    snprintf(from, sizeof from, "%s/results.jsonl", r->dir);
    snprintf(to, sizeof to, "%s/results.jsonl.1", r->dir);
    if (rename(from, to) && errno != ENOENT)
        log_warn("results: cannot rotate %s: %s", from, strerror(errno));
    if (open_current(r, NULL, 0))
        log_warn("results: cannot open %s/results.jsonl: %s", r->dir, strerror(errno));
}

/* Write the line in r->buf (n bytes, newline included). */
static int put(struct rsink *r, size_t n)
{
    if (r->fd >= 0 && r->size && r->size + n > r->max_bytes)
        rotate(r);
    if (r->fd < 0 && open_current(r, NULL, 0) < 0) {
        atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
        return -EIO;
    }
    ssize_t w = write(r->fd, r->buf, n);
    if (w == (ssize_t)n) {
        r->size += n;
        if (r->failing)
            log_info("results: writing %s/results.jsonl again", r->dir);
        r->failing = false;
        return 0;
    }
    int e = w < 0 ? errno : ENOSPC;
    if (w > 0) {
        /* half a line: end it, so the next one starts clean */
        (void)!write(r->fd, "\n", 1);
        r->size += (size_t)w + 1;
    }
    atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
    if (!r->failing)
        log_warn("results: cannot write %s/results.jsonl: %s (lines are lost, counted, "
                 "until it works again)", r->dir, strerror(e));
    r->failing = true;
    return -e;
}

typedef size_t (*render_fn)(const void *msg, char *buf, size_t len);

/* {"topic":TOPIC, then the members of the object fn renders, a newline. */
static int line(struct rsink *r, const char *topic, render_fn fn, const void *msg)
{
    for (int tries = 0; tries < 2; tries++) {
        size_t pos = 0;
        publish_json_printf(r->buf, r->len, &pos, "{\"topic\":");
        publish_json_string(r->buf, r->len, &pos, topic);
        size_t need = pos < r->len ? fn(msg, r->buf + pos, r->len - pos) : r->len;
        if (pos + need + 1 < r->len) {
            r->buf[pos] = ',';          /* the object's '{' */
            r->buf[pos + need] = '\n';
            return put(r, pos + need + 1);
        }
        char *nb = realloc(r->buf, pos + need + 2);
        if (!nb)
            break;
        r->buf = nb;
        r->len = pos + need + 2;
    }
    atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
    return -ENOMEM;
}

static size_t r_result(const void *m, char *b, size_t n)   { return publish_format(m, b, n); }
static size_t r_event(const void *m, char *b, size_t n)    { return sink_json_event(m, b, n); }
static size_t r_severity(const void *m, char *b, size_t n) { return sink_json_severity(m, b, n); }
static size_t r_stats(const void *m, char *b, size_t n)    { return sink_json_stats(m, b, n); }

static bool rs_enabled(const struct cfg *c) { return c->results_path != NULL; }

static int rs_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    struct rsink *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(c->results_path)) || !(r->buf = malloc(r->len = 8192))) {
        if (r)
            free(r->dir);
        free(r);
        return -ENOMEM;
    }
    r->every = c->results_every;
    r->max_bytes = c->results_max_bytes;
    r->files = c->results_files;
    r->fd = -1;
    int rc = 0;
    if (mkdir(r->dir, 0755) && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "results.path: cannot create %s: %s", r->dir, strerror(-rc));
    }
    if (!rc)
        rc = open_current(r, err, errlen);
    if (rc) {
        free(r->buf);
        free(r->dir);
        free(r);
        return rc;
    }
    *state = r;
    return 0;
}

static int rs_result(void *s, const struct result *res)
{
    struct rsink *r = s;
    return r->every ? line(r, res->stream, r_result, res) : 0;
}

static int rs_event(void *s, const struct sink_event *e)
{
    return line(s, "_events", r_event, e);
}

static int rs_severity(void *s, const struct sink_severity *e)
{
    return line(s, "_severity", r_severity, e);
}

static int rs_stats(void *s, const struct sink_stats *st, int kind)
{
    (void)kind;
    return line(s, "_stats", r_stats, st);
}

static uint64_t rs_lost(void *s)
{
    return atomic_load_explicit(&((struct rsink *)s)->lost, memory_order_relaxed);
}

static void rs_destroy(void *s)
{
    struct rsink *r = s;
    if (r->fd >= 0) {
        fsync(r->fd);
        close(r->fd);
    }
    free(r->buf);
    free(r->dir);
    free(r);
}

const struct sink_ops sink_results_ops = {
    .name = "results", .async = true, .stats_kinds = SINK_STATS_PERIODIC,
    .enabled = rs_enabled, .create = rs_create,
    .result = rs_result, .event = rs_event, .severity = rs_severity, .stats = rs_stats,
    .lost = rs_lost, .destroy = rs_destroy,
};
