/* SPDX-License-Identifier: Apache-2.0 */
/* publish_zmq.c — the publisher: one XPUB socket bound to every endpoint,
 * back-pressure or per-subscriber loss at the high-water mark (publish.h),
 * and the same JSON as lines on stdout.
 *
 * Why XPUB and not PUB: the XPUB hands us every subscription message, so the
 * daemon can hold a replay until its consumers are there (a PUB that sends
 * right after bind loses everything before the subscription arrives), and
 * ZMQ_XPUB_NODROP turns "high-water mark reached" from silent loss into
 * EAGAIN.  ZMQ_XPUB_VERBOSER passes every subscribe and every unsubscribe —
 * including the ones libzmq generates when a subscriber disconnects — so
 * publish_subscribers() is a plain count.
 *
 * Why blocking sends in slices: an XPUB always reports ZMQ_POLLOUT (its
 * distributor claims it can always send), so zmq_poll() cannot wait for room.
 * A blocking zmq_send() with ZMQ_SNDTIMEO does: libzmq retries when the
 * subscriber's pipe signals it has drained.  The slice bounds how long an
 * abort request waits.
 *
 * Nothing here allocates per message: the JSON buffer is made at create time
 * and only grows when a message is larger than every earlier one.
 */
#include "publish.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

enum {
    SLICE_MS   = 100,       /* longest wait between abort / subscription checks */
    LINGER_MS  = 2000,      /* destroy never waits longer on a stuck subscriber */
    BUF_START  = 4096,      /* a 4-class message is ~350 bytes */
};

struct publisher {
    void        *ctx;
    void        *sock;          /* NULL: stdout only */
    bool         to_stdout;
    bool         cancelled;     /* a send was abandoned: refuse the rest */
    char        *buf;
    size_t       cap;
    unsigned     subs;          /* subscribe minus unsubscribe messages */
    bool         state_wanted;  /* a subscription to exactly "_state" came in */
    const volatile sig_atomic_t *abort;
    char       **bound;         /* ZMQ_LAST_ENDPOINT per endpoint */
    unsigned     n_bound;
};

static int set_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Read every subscription message waiting on the socket, without blocking.
 * Reading them also keeps libzmq's queue of them from growing. */
static void drain_subscriptions(publisher *p)
{
    static const char state_topic[] = "_state";
    unsigned char m[sizeof state_topic + 1];

    for (;;) {
        int n = zmq_recv(p->sock, m, sizeof m, ZMQ_DONTWAIT);
        if (n < 0)
            return;             /* EAGAIN (nothing more) or EINTR: later */
        if (n < 1)
            continue;
        if (m[0] == 1) {
            p->subs++;
            /* (n is the full length, even when cut to sizeof m) */
            size_t tl = (size_t)n - 1;
            if (tl == sizeof state_topic - 1 && !memcmp(m + 1, state_topic, tl))
                p->state_wanted = true;
        } else if (m[0] == 0 && p->subs > 0) {
            p->subs--;
        }
    }
}

bool publish_state_wanted(publisher *p)
{
    if (!p->sock)
        return false;
    drain_subscriptions(p);
    bool w = p->state_wanted;
    p->state_wanted = false;
    return w;
}

/* true if a process accepts connections on the AF_UNIX socket at path (a
 * stale socket file nobody listens on is false: ZeroMQ may reuse it). */
static bool ipc_in_use(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return false;               /* cfg_check_endpoint refused it already */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool used = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return used;
}

int publish_create(const struct publish_opts *o, publisher **out, char *err, size_t errlen)
{
    publisher *p;
    int rc = 0;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (o->n_endpoints && o->hwm < 0) {
        snprintf(err, errlen, "publish hwm %d: must be >= 0", o->hwm);
        return -EINVAL;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->to_stdout = o->to_stdout;
    p->cap = BUF_START;
    p->buf = malloc(p->cap);
    if (!p->buf)
        goto nomem;
    if (o->n_endpoints == 0) {
        *out = p;
        return 0;
    }
    p->bound = calloc(o->n_endpoints, sizeof *p->bound);
    if (!p->bound)
        goto nomem;
    p->ctx = zmq_ctx_new();
    if (!p->ctx) {
        rc = -errno;
        snprintf(err, errlen, "cannot create ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    p->sock = zmq_socket(p->ctx, ZMQ_XPUB);
    if (!p->sock || set_int(p->sock, ZMQ_XPUB_NODROP, o->nodrop)
        || set_int(p->sock, ZMQ_XPUB_VERBOSER, 1)
        || set_int(p->sock, ZMQ_SNDHWM, o->hwm) || set_int(p->sock, ZMQ_LINGER, LINGER_MS)
        || set_int(p->sock, ZMQ_SNDTIMEO, SLICE_MS)) {
        rc = -errno;
        snprintf(err, errlen, "cannot set up the ZeroMQ XPUB socket: %s", zmq_strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < o->n_endpoints; i++) {
        char last[256];
        size_t ll = sizeof last;

        /* IPv6 only for a bracketed IPv6 literal: turned on for every bind,
         * it would report 127.0.0.1 as [::ffff:127.0.0.1], which an IPv4-only
         * subscriber cannot connect to. */
        const char *host = strstr(o->endpoints[i], "://");
        set_int(p->sock, ZMQ_IPV6, host && host[3] == '[');
        /* ZeroMQ unlinks an ipc:// path before binding it, silently
         * stealing it from a daemon already listening there: probe first. */
        if (!strncmp(o->endpoints[i], "ipc://", 6) && ipc_in_use(o->endpoints[i] + 6)) {
            rc = -EADDRINUSE;
            snprintf(err, errlen, "cannot bind %s: another process is listening on it",
                     o->endpoints[i]);
            goto fail;
        }
        if (zmq_bind(p->sock, o->endpoints[i]) != 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot bind %s: %s", o->endpoints[i], zmq_strerror(errno));
            goto fail;
        }
        if (zmq_getsockopt(p->sock, ZMQ_LAST_ENDPOINT, last, &ll) != 0)
            snprintf(last, sizeof last, "%s", o->endpoints[i]);
        p->bound[i] = strdup(last);
        if (!p->bound[i])
            goto nomem;
        p->n_bound = i + 1;
    }
    *out = p;
    return 0;

nomem:
    rc = -ENOMEM;
    snprintf(err, errlen, "publisher: out of memory");
fail:
    if (p->sock)
        set_int(p->sock, ZMQ_LINGER, 0);
    publish_destroy(p);
    return rc;
}

void publish_destroy(publisher *p)
{
    if (!p)
        return;
    if (p->sock)
        zmq_close(p->sock);
    if (p->ctx)
        while (zmq_ctx_term(p->ctx) != 0 && errno == EINTR)
            ;                   /* a signal: the linger bound still holds */
    for (unsigned i = 0; i < p->n_bound; i++)
        free(p->bound[i]);
    free(p->bound);
    free(p->buf);
    free(p);
}

const char *publish_endpoint(const publisher *p, unsigned i)
{
    return i < p->n_bound ? p->bound[i] : NULL;
}

void publish_no_linger(publisher *p)
{
    if (p->sock)
        set_int(p->sock, ZMQ_LINGER, 0);
}

void publish_set_abort(publisher *p, const volatile sig_atomic_t *flag)
{
    p->abort = flag;
}

unsigned publish_subscribers(const publisher *p)
{
    return p->subs;
}

int publish_wait_subscribers(publisher *p, unsigned n, const volatile sig_atomic_t *stop)
{
    if (n == 0)
        return 0;
    if (!p->sock)
        return -ENOTCONN;
    for (;;) {
        drain_subscriptions(p);
        if (p->subs >= n)
            return 0;
        if (stop && *stop)
            return -EINTR;
        zmq_pollitem_t it = { .socket = p->sock, .events = ZMQ_POLLIN };
        if (zmq_poll(&it, 1, SLICE_MS) < 0 && errno != EINTR)
            return -errno;
    }
}

/* One frame, waiting while a subscriber is at its high-water mark. */
static int send_frame(publisher *p, const void *data, size_t len, int more)
{
    for (;;) {
        if (zmq_send(p->sock, data, len, more ? ZMQ_SNDMORE : 0) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        /* A full slice went by without room (or a signal came).  The flag is
         * set by a signal handler or by another thread (main's shutdown
         * deadline): an atomic read. */
        if (p->abort && __atomic_load_n(p->abort, __ATOMIC_RELAXED)) {
            p->cancelled = true;
            return -ECANCELED;
        }
        drain_subscriptions(p);
    }
}

static int send_message(publisher *p, const char *topic, const char *json, size_t len)
{
    int rc;

    /* Once a send is abandoned, the rest are too, at once: a hard stop must
     * not cost a slice per remaining message.  (It also keeps a half-sent
     * message from being completed by the next one — though the high-water
     * mark counts whole messages, so once the first frame is in, the second
     * never waits.) */
    if (p->cancelled)
        return -ECANCELED;
    drain_subscriptions(p);
    rc = send_frame(p, topic, strlen(topic), 1);
    if (rc)
        return rc;
    return send_frame(p, json, len, 0);
}

static int write_line(const char *json, size_t len)
{
    /* One line per message, flushed, so a pipe consumer sees it live. */
    if (fwrite(json, 1, len, stdout) != len || putc('\n', stdout) == EOF || fflush(stdout) != 0)
        return errno ? -errno : -EIO;
    return 0;
}

int publish_result(publisher *p, const struct result *r)
{
    size_t n;
    int rc = 0;

    if (!p->sock && !p->to_stdout)
        return 0;
    n = publish_format(r, p->buf, p->cap);
    if (n >= p->cap) {
        /* Bigger than every message so far (many classes, long names):
         * grow once, with room to spare, and format again. */
        size_t cap = (n + 1) * 2;
        char *b = realloc(p->buf, cap);
        if (!b)
            return -ENOMEM;
        p->buf = b;
        p->cap = cap;
        n = publish_format(r, p->buf, p->cap);
    }
    if (p->sock)
        rc = send_message(p, r->stream ? r->stream : "", p->buf, n);
    if (rc == 0 && p->to_stdout) {
        errno = 0;
        rc = write_line(p->buf, n);
    }
    return rc;
}

int publish_raw(publisher *p, const char *topic, const char *json)
{
    size_t n = strlen(json);
    int rc = 0;

    if (p->sock)
        rc = send_message(p, topic, json, n);
    if (rc == 0 && p->to_stdout) {
        errno = 0;
        rc = write_line(json, n);
    }
    return rc;
}
