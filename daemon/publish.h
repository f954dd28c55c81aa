/* publish.h — every classification out: ZeroMQ XPUB and/or stdout JSON lines.
 *
 * One publisher thread owns the publisher (ZeroMQ sockets are not
 * thread-safe).  Messages are two frames: the topic (stream name) and one
 * JSON object (../DESIGN.md "Messages").  The socket is an XPUB with
 * ZMQ_XPUB_NODROP: when a subscriber's high-water mark is reached,
 * publish_result() waits (back-pressure) rather than drop — a fast replay
 * loses nothing to a slow subscriber.  A subscriber that goes away is simply
 * no longer sent to.
 */
#ifndef TRIDENT_PUBLISH_H
#define TRIDENT_PUBLISH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct result {
    const char   *stream;
    uint64_t      seq;
    uint64_t      sample;
    double        t;            /* Unix time of the window's first sample */
    int           cls;
    const char   *label;
    float         score;
    const float  *probs;
    const float  *logits;
    int           n_classes;
    bool          gap;
    int64_t       latency_us;
    const char   *model;        /* 12 hex digits */
};

struct publish_opts {
    char *const *endpoints;
    unsigned     n_endpoints;   /* 0: no socket (stdout only) */
    int          hwm;           /* per-subscriber high-water mark, messages */
    bool         to_stdout;
};

typedef struct publisher publisher;

/* Create the socket and bind every endpoint. 0, or -errno with a message
 * naming the endpoint in err. */
int  publish_create(const struct publish_opts *o, publisher **out, char *err, size_t errlen);
void publish_destroy(publisher *p);
/* Block until n subscriptions have arrived or *stop becomes non-zero.
 * 0, or -EINTR when stopped. */
int  publish_wait_subscribers(publisher *p, unsigned n, const volatile sig_atomic_t *stop);
/* Publish one classification (formats into the publisher's own buffer). */
int  publish_result(publisher *p, const struct result *r);
/* Publish a ready JSON object under a topic (statistics: "_stats"). */
int  publish_raw(publisher *p, const char *topic, const char *json);
/* Format r as the one-line JSON object; returns its length, or the length it
 * would need (like snprintf). */
size_t publish_format(const struct result *r, char *buf, size_t len);
/* Subscriptions currently known (XPUB subscribe minus unsubscribe messages). */
unsigned publish_subscribers(const publisher *p);

#endif
