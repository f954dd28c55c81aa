/* SPDX-License-Identifier: Apache-2.0 */
/* publish.h — every classification out: ZeroMQ XPUB and/or stdout JSON lines.
 *
 * One publisher thread owns the publisher (ZeroMQ sockets are not
 * thread-safe).  Messages are two frames: the topic (stream name) and one
 * JSON object (docs/DESIGN.md "Messages").  The socket is an XPUB; what
 * happens when a subscriber's high-water mark (hwm) is reached is the
 * caller's choice, publish_opts.nodrop:
 *
 *   nodrop = true   (tridentd --replay; publish.nodrop = true)  back-pressure:
 *                   ZMQ_XPUB_NODROP, publish_result() waits until the
 *                   subscriber has room — a fast replay loses nothing to a
 *                   slow subscriber, and a subscriber that reads nothing at
 *                   all holds every stream (until publish_set_abort's flag).
 *   nodrop = false  (the service's default)  libzmq's normal behaviour: a
 *                   message that does not fit is dropped for that subscriber
 *                   only; the others, and publish_result(), never wait, so a
 *                   stuck subscriber cannot stall live capture.  libzmq does
 *                   not tell which messages it dropped nor count them, so
 *                   neither can we: the hwm must be sized for the longest
 *                   pause a subscriber may take (a gap in its seq shows it).
 *
 * A subscriber that goes away is simply no longer sent to.
 *
 * The wait is a blocking zmq_send() in slices of 100 ms (ZMQ_SNDTIMEO):
 * libzmq wakes it as soon as the subscriber's pipe has room again.  (Polling
 * for ZMQ_POLLOUT would spin: an XPUB always reports POLLOUT, even when
 * NODROP refuses the message.)  Between slices the publisher reads the
 * subscription messages and checks the abort flag (publish_set_abort).
 *
 * The socket lingers at most 2 s on publish_destroy(): messages still queued
 * for a subscriber that cannot take them within 2 s are lost, so exit never
 * hangs on a stuck peer.
 *
 * JSON (publish_format): fields in docs/DESIGN.md's order; floats as %.9g (exact
 * float32 round trip; ".0" added to integral values, so score, probs, logits
 * are always JSON reals), t as %.6f (microseconds); a non-finite number (NaN,
 * ±Inf) is written as null, since JSON has no such values; latency_us below 0
 * is written as 0.  Strings are JSON-escaped; bytes that are not valid UTF-8
 * become U+FFFD (so the stream field can differ from the raw topic frame only
 * for such names); a NULL string is written as "".  Numbers use the C
 * locale's decimal point (the daemon never calls setlocale(LC_NUMERIC)).
 */
#ifndef TRIDENT_PUBLISH_H
#define TRIDENT_PUBLISH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"

/* struct result: sink.h */

struct publish_opts {
    char *const *endpoints;
    unsigned     n_endpoints;   /* 0: no socket (stdout only) */
    int          hwm;           /* per-subscriber high-water mark, messages */
    bool         nodrop;        /* wait at a subscriber's hwm instead of dropping */
    bool         to_stdout;
};

typedef struct publisher publisher;

/* Create the socket and bind every endpoint. 0, or -errno with a one-line
 * message naming the endpoint in err ("cannot bind tcp://…: Address already
 * in use").  An endpoint with a bracketed IPv6 literal (tcp://[::1]:5556)
 * is bound with ZMQ_IPV6; others IPv4 only. */
int  publish_create(const struct publish_opts *o, publisher **out, char *err, size_t errlen);
/* Close the socket (lingering at most 2 s for queued messages) and free. */
void publish_destroy(publisher *p);
/* Make publish_destroy() drop queued messages instead of lingering (the
 * second SIGTERM's hard stop). */
void publish_no_linger(publisher *p);
/* The endpoint actually bound for o->endpoints[i] (ZMQ_LAST_ENDPOINT: the
 * real port of "tcp://host:*"), or NULL when i is out of range. */
const char *publish_endpoint(const publisher *p, unsigned i);
/* Give up a send blocked by back-pressure once *flag is non-zero (checked
 * every 100 ms; set it with a plain or an atomic store, read atomically): publish_result()/publish_raw() then return -ECANCELED and
 * every later send does too, at once.  For a hard stop (a second signal, a
 * shutdown deadline) — a graceful stop keeps publishing what was captured.
 * NULL (the default) never gives up.  Call before the publisher thread
 * starts. */
void publish_set_abort(publisher *p, const volatile sig_atomic_t *flag);
/* Block until n subscriptions are present (subscribe minus unsubscribe
 * messages, as publish_subscribers()) or *stop becomes non-zero (checked every
 * 100 ms; stop may be NULL).  0, -EINTR when stopped, -ENOTCONN when n > 0 and
 * there is no socket. */
int  publish_wait_subscribers(publisher *p, unsigned n, const volatile sig_atomic_t *stop);
/* Publish one classification (formats into the publisher's own buffer, which
 * grows only if a message is larger than any before).  0, -ECANCELED (abort),
 * -ENOMEM, or -errno of a failed send or stdout write. */
int  publish_result(publisher *p, const struct result *r);
/* Publish a ready one-line JSON object under a topic (statistics: "_stats").
 * Same returns as publish_result(). */
int  publish_raw(publisher *p, const char *topic, const char *json);
/* Format r as the one-line JSON object (no newline); returns its length, or
 * the length it would need (like snprintf: buf always NUL-terminated when
 * len > 0, the output truncated when the result is >= len). */
size_t publish_format(const struct result *r, char *buf, size_t len);
/* The same JSON writing for other messages (the "_stats" object), so that
 * every message follows the rules above (a stream name that is not UTF-8
 * gets U+FFFD everywhere).  Both append at *pos and behave like snprintf:
 * *pos advances by every byte the output needs, even past len; only what
 * fits is stored, and buf stays NUL-terminated (len > 0).  The object is
 * complete when *pos < len at the end.  publish_json_string writes s quoted
 * and escaped (NULL as ""); publish_json_printf formats numbers and
 * punctuation (its arguments must not need escaping). */
void publish_json_string(char *buf, size_t len, size_t *pos, const char *s);
void publish_json_printf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Subscriptions currently known (XPUB subscribe minus unsubscribe messages;
 * a subscriber that disconnects unsubscribes from all its topics), as of the
 * last publish or wait call, which read the subscription messages. */
unsigned publish_subscribers(const publisher *p);
/* Reads the subscription messages waiting; true once after a subscription
 * to exactly "_state" arrived: the caller then publishes the "_state"
 * message (pipeline.c "States").  (Not "" or "_": a subscriber to
 * everything is not asking, and would otherwise get one at every join.) */
bool publish_state_wanted(publisher *p);

/* The publisher of a zmq or stdout sink's state (sinks_state()), or NULL. */
publisher *sink_zmq_publisher(void *state);

#endif
