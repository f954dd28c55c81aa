/* SPDX-License-Identifier: Apache-2.0 */
/* sink_zmq.c — the ZeroMQ XPUB and standard-output sinks.
 *
 * Both are direct sinks (sink.h) around a publisher (publish.h): "zmq" binds
 * publish.endpoints, "stdout" writes the same JSON, one line a message, when
 * publish.stdout (or --stdout, --no-publish) asks for it.  Results go out
 * as publish_format() renders them, every other message as sink_json.c
 * does, under its topic ("_events", "_severity", "_stats", "_state").
 * Messages are rendered into a buffer of the sink's that grows only when a
 * message is larger than any before (a reload that added streams).
 */
#include "sink.h"

#include "config.h"
#include "publish.h"

#include <errno.h>
#include <stdlib.h>

struct zsink {
    publisher *pub;
    char      *buf;
    size_t     len;
};

static int zs_create(const struct publish_opts *o, void **state, char *err, size_t errlen)
{
    struct zsink *z = calloc(1, sizeof *z);
    if (!z)
        return -ENOMEM;
    z->len = 4096;
    z->buf = malloc(z->len);
    int rc = z->buf ? publish_create(o, &z->pub, err, errlen) : -ENOMEM;
    if (rc) {
        free(z->buf);
        free(z);
        return rc;
    }
    *state = z;
    return 0;
}

static bool zmq_enabled(const struct cfg *c) { return c->n_endpoints > 0; }
static bool stdout_enabled(const struct cfg *c) { return c->to_stdout; }

static int zmq_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    struct publish_opts o = {
        .endpoints = c->endpoints, .n_endpoints = c->n_endpoints,
        .hwm = c->hwm, .nodrop = c->nodrop,
    };
    return zs_create(&o, state, err, errlen);
}

static int stdout_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    struct publish_opts o = { .hwm = c->hwm, .to_stdout = true };
    return zs_create(&o, state, err, errlen);
}

static int zs_result(void *s, const struct result *r)
{
    return publish_result(((struct zsink *)s)->pub, r);
}

/* Render with fn into the sink's buffer (grown once if short) and send. */
#define ZS_SEND(z, topic, fn, msg)                                                \
    do {                                                                          \
        size_t need_ = fn((msg), (z)->buf, (z)->len);                             \
        if (need_ >= (z)->len) {                                                  \
            char *nb_ = realloc((z)->buf, need_ + 1);                             \
            if (!nb_)                                                             \
                return -ENOMEM;                                                   \
            (z)->buf = nb_;                                                       \
            (z)->len = need_ + 1;                                                 \
            fn((msg), (z)->buf, (z)->len);                                        \
        }                                                                         \
        return publish_raw((z)->pub, (topic), (z)->buf);                          \
    } while (0)

static int zs_event(void *s, const struct sink_event *e)
{
    struct zsink *z = s;
    ZS_SEND(z, "_events", sink_json_event, e);
}

static int zs_severity(void *s, const struct sink_severity *e)
{
    struct zsink *z = s;
    ZS_SEND(z, "_severity", sink_json_severity, e);
}

static int zs_stats(void *s, const struct sink_stats *st, int kind)
{
    struct zsink *z = s;
    if (kind == SINK_STATS_STATE)
        ZS_SEND(z, "_state", sink_json_state, st);
    ZS_SEND(z, "_stats", sink_json_stats, st);
}

static bool zs_want_state(void *s)
{
    return publish_state_wanted(((struct zsink *)s)->pub);
}

static void zs_destroy(void *s)
{
    struct zsink *z = s;
    publish_destroy(z->pub);
    free(z->buf);
    free(z);
}

publisher *sink_zmq_publisher(void *state)
{
    return state ? ((struct zsink *)state)->pub : NULL;
}

const struct sink_ops sink_zmq_ops = {
    .name = "zmq", .async = false, .enabled = zmq_enabled, .create = zmq_create,
    .result = zs_result, .event = zs_event, .severity = zs_severity, .stats = zs_stats,
    .want_state = zs_want_state, .destroy = zs_destroy,
};

const struct sink_ops sink_stdout_ops = {
    .name = "stdout", .async = false, .enabled = stdout_enabled, .create = stdout_create,
    .result = zs_result, .event = zs_event, .severity = zs_severity, .stats = zs_stats,
    .destroy = zs_destroy,
};
