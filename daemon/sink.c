/* SPDX-License-Identifier: Apache-2.0 */
/* sink.c — the sink table, and the queue and thread of every queued sink.
 *
 * Adding a sink: write daemon/sink_NAME.c defining `const struct sink_ops
 * sink_NAME_ops` (sink.h), declare it in sink.h, add one line to
 * sink_table below, and its keys to config.c's table (group NAME).
 *
 * The queue of a queued sink is a byte ring: the publisher thread packs each
 * message into it (the structure, then its strings and arrays, pointers
 * stored as offsets), the sink's thread unpacks it in place (the offsets
 * become pointers again) and calls the sink.  The ring is allocated at
 * create: no allocation per message.  The publisher never waits for the
 * sink: a message that does not fit — in bytes or in count (the sink's
 * "queue" key) — is dropped and counted.  A message is 8-byte aligned,
 * behind an 8-byte header {length, kind}; one that would cross the end of
 * the ring starts at 0 and leaves a padding header (or, when fewer than 8
 * bytes remain, nothing: the reader knows) behind.
 */
#include "sink.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct sink_ops *const sink_table[] = {
    &sink_zmq_ops,
    &sink_stdout_ops,
    &sink_results_ops,
    &sink_http_ops,
    &sink_mqtt_ops,
    NULL
};

const struct sink_ops *sink_find(const char *name)
{
    for (const struct sink_ops *const *o = sink_table; *o; o++)
        if (!strcmp((*o)->name, name))
            return *o;
    return NULL;
}

/* ---- packing ------------------------------------------------------------------ */

enum { MSG_PAD, MSG_RESULT, MSG_EVENT, MSG_SEVERITY, MSG_STATS };

struct msg_hdr {
    uint32_t len;       /* bytes after the header, a multiple of 8 */
    uint32_t kind;      /* MSG_*; the stats kind in the top byte for MSG_STATS */
};

/* A packer: with base == NULL it only counts. */
struct pk {
    char  *base;
    size_t pos;
};

static size_t pk_put(struct pk *p, const void *src, size_t n, size_t align)
{
    p->pos = (p->pos + align - 1) & ~(align - 1);
    size_t at = p->pos;
    if (p->base && n)
        memcpy(p->base + at, src, n);
    p->pos += n;
    return at;
}

/* Pointers become offset + 1 (0 stays NULL) in the packed copy. */
#define PK_REF(p, field, src, n, align)                                           \
    do {                                                                          \
        uintptr_t off_ = (src) ? pk_put((p), (src), (n), (align)) + 1 : 0;          \
        if ((p)->base)                                                            \
            memcpy(&(field), &off_, sizeof off_);                                 \
    } while (0)
#define PK_STR(p, field, s) PK_REF(p, field, s, (s) ? strlen(s) + 1 : 0, 1)

static void *fix(char *base, const void *ref)
{
    uintptr_t off = (uintptr_t)ref;
    return off ? base + off - 1 : NULL;
}
#define FIX(base, field) ((field) = fix((base), (field)))

static void pack_result(struct pk *p, const struct result *r)
{
    size_t at = pk_put(p, r, sizeof *r, alignof(struct result));
    struct result *d = p->base ? (struct result *)(p->base + at) : NULL;
    struct result dummy;
    if (!d)
        d = &dummy;
    size_t nf = r->n_classes > 0 ? (size_t)r->n_classes * sizeof(float) : 0;
    PK_STR(p, d->stream, r->stream);
    PK_STR(p, d->label, r->label);
    PK_STR(p, d->state, r->state);
    PK_STR(p, d->quality, r->quality);
    PK_STR(p, d->model, r->model);
    PK_REF(p, d->probs, r->probs, nf, alignof(float));
    PK_REF(p, d->logits, r->logits, nf, alignof(float));
}

static void unpack_result(char *b)
{
    struct result *r = (struct result *)b;
    FIX(b, r->stream); FIX(b, r->label); FIX(b, r->state); FIX(b, r->quality);
    FIX(b, r->model); FIX(b, r->probs); FIX(b, r->logits);
}

static void pack_event(struct pk *p, const struct sink_event *e)
{
    size_t at = pk_put(p, e, sizeof *e, alignof(struct sink_event));
    struct sink_event dummy, *d = p->base ? (struct sink_event *)(p->base + at) : &dummy;
    PK_STR(p, d->stream, e->stream);
    PK_STR(p, d->from, e->from);
    PK_STR(p, d->to, e->to);
    PK_STR(p, d->model, e->model);
}

static void unpack_event(char *b)
{
    struct sink_event *e = (struct sink_event *)b;
    FIX(b, e->stream); FIX(b, e->from); FIX(b, e->to); FIX(b, e->model);
}

static void pack_severity(struct pk *p, const struct sink_severity *e)
{
    size_t at = pk_put(p, e, sizeof *e, alignof(struct sink_severity));
    struct sink_severity dummy, *d = p->base ? (struct sink_severity *)(p->base + at) : &dummy;
    PK_STR(p, d->stream, e->stream);
    PK_STR(p, d->zone, e->zone);
}

static void unpack_severity(char *b)
{
    struct sink_severity *e = (struct sink_severity *)b;
    FIX(b, e->stream); FIX(b, e->zone);
}

static void pack_stats(struct pk *p, const struct sink_stats *st)
{
    size_t at = pk_put(p, st, sizeof *st, alignof(struct sink_stats));
    struct sink_stats dummy, *d = p->base ? (struct sink_stats *)(p->base + at) : &dummy;
    PK_REF(p, d->streams, st->streams, st->n_streams * sizeof *st->streams,
           alignof(struct sink_stream_stats));
    struct sink_stream_stats *ds = p->base && st->streams
                                       ? fix(p->base, d->streams) : NULL;
    for (unsigned i = 0; i < st->n_streams; i++) {
        const struct sink_stream_stats *s = &st->streams[i];
        struct sink_stream_stats sd, *o = ds ? &ds[i] : &sd;
        PK_STR(p, o->stream, s->stream);
        PK_STR(p, o->state, s->state);
        PK_STR(p, o->sev_zone, s->sev_zone);
        PK_REF(p, o->latency, s->latency, sizeof *s->latency, alignof(struct stats_hist));
    }
    PK_REF(p, d->latency_interval, st->latency_interval, sizeof *st->latency_interval,
           alignof(struct stats_hist));
    PK_REF(p, d->sinks, st->sinks, st->n_sinks * sizeof *st->sinks,
           alignof(struct sink_account));
    struct sink_account *da = p->base && st->sinks ? fix(p->base, d->sinks) : NULL;
    for (unsigned i = 0; i < st->n_sinks; i++) {
        struct sink_account ad, *o = da ? &da[i] : &ad;
        PK_STR(p, o->name, st->sinks[i].name);
    }
    PK_STR(p, d->model, st->model);
    PK_STR(p, d->model_path, st->model_path);
    PK_STR(p, d->model_kind, st->model_kind);
    PK_REF(p, d->classes, st->classes, st->n_classes * sizeof(char *), alignof(char *));
    char **dc = p->base && st->classes ? fix(p->base, d->classes) : NULL;
    for (unsigned i = 0; i < st->n_classes; i++) {
        char *cd, **o = dc ? &dc[i] : &cd;
        PK_STR(p, *o, st->classes[i]);
    }
}

static void unpack_stats(char *b)
{
    struct sink_stats *st = (struct sink_stats *)b;
    FIX(b, st->streams);
    struct sink_stream_stats *ss = (struct sink_stream_stats *)st->streams;
    for (unsigned i = 0; i < st->n_streams; i++) {
        FIX(b, ss[i].stream); FIX(b, ss[i].state); FIX(b, ss[i].sev_zone);
        FIX(b, ss[i].latency);
    }
    FIX(b, st->latency_interval);
    FIX(b, st->sinks);
    struct sink_account *sa = (struct sink_account *)st->sinks;
    for (unsigned i = 0; i < st->n_sinks; i++)
        FIX(b, sa[i].name);
    FIX(b, st->model); FIX(b, st->model_path); FIX(b, st->model_kind);
    FIX(b, st->classes);
    char **cl = (char **)st->classes;
    for (unsigned i = 0; i < st->n_classes; i++)
        FIX(b, cl[i]);
}

/* ---- one sink ------------------------------------------------------------------ */

struct sink {
    const struct sink_ops *ops;
    void            *state;
    int              kinds;         /* SINK_STATS_* it gets */
    /* queued sinks */
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    pthread_t        tid;
    bool             started;
    char            *ring;
    size_t           cap;           /* bytes, a multiple of 8 */
    size_t           head, tail;    /* byte offsets: the writer's, the reader's (< cap) */
    size_t           used;          /* bytes between tail and head, padding included */
    unsigned         n, max_n;      /* messages queued; the sink's "queue" key */
    bool             waiting;       /* the reader sleeps on cv */
    bool             stop;          /* drain, then end */
    bool             quit;          /* end now, dropping what is queued */
    _Atomic uint64_t queued, dropped;
};

struct sink_set {
    unsigned     n;
    struct sink  s[8];
};

static unsigned queue_of(const struct sink_ops *o, const struct cfg *c)
{
    if (!strcmp(o->name, "http"))
        return c->http_queue;
    if (!strcmp(o->name, "mqtt"))
        return c->mqtt_queue;
    if (!strcmp(o->name, "results"))
        return c->results_queue;
    return 4096;
}

static void deliver(struct sink *k, char *b, uint32_t kind)
{
    switch (kind & 0xff) {
    case MSG_RESULT:
        unpack_result(b);
        k->ops->result(k->state, (const struct result *)b);
        break;
    case MSG_EVENT:
        unpack_event(b);
        k->ops->event(k->state, (const struct sink_event *)b);
        break;
    case MSG_SEVERITY:
        unpack_severity(b);
        if (k->ops->severity)
            k->ops->severity(k->state, (const struct sink_severity *)b);
        break;
    case MSG_STATS:
        unpack_stats(b);
        if (k->ops->stats)
            k->ops->stats(k->state, (const struct sink_stats *)b, (int)(kind >> 24));
        break;
    }
}

static void *sink_main(void *arg)
{
    struct sink *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        if (k->quit)
            break;
        if (!k->n) {
            if (k->stop)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            k->waiting = true;
            int rc = pthread_cond_timedwait(&k->cv, &k->mu, &ts);
            k->waiting = false;
            if (rc == ETIMEDOUT && k->ops->tick) {
                pthread_mutex_unlock(&k->mu);
                k->ops->tick(k->state);
                pthread_mutex_lock(&k->mu);
            }
            continue;
        }
        /* the message at tail: skip the padding at the end of the ring */
        size_t t = k->tail;
        if (k->cap - t < sizeof(struct msg_hdr)) {
            k->used -= k->cap - t;
            t = 0;
        }
        struct msg_hdr h;
        memcpy(&h, k->ring + t, sizeof h);
        if (h.kind == MSG_PAD) {
            k->used -= k->cap - t;
            t = 0;
            memcpy(&h, k->ring + t, sizeof h);
        }
        k->tail = t;
        pthread_mutex_unlock(&k->mu);
        /* The writer does not touch [tail, tail + size) until tail moves. */
        deliver(k, k->ring + t + sizeof h, h.kind);
        pthread_mutex_lock(&k->mu);
        size_t size = sizeof h + h.len;
        k->tail = t + size == k->cap ? 0 : t + size;
        k->used -= size;
        k->n--;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* Copy one message into k's ring, or count it dropped. */
static void enqueue(struct sink *k, uint32_t kind, const void *msg,
                    void (*pack)(struct pk *, const void *))
{
    struct pk p = { NULL, 0 };
    pack(&p, msg);
    size_t len = (p.pos + 7) & ~(size_t)7;
    size_t size = sizeof(struct msg_hdr) + len;
    pthread_mutex_lock(&k->mu);
    size_t at = k->head, pad = 0;
    if (k->cap - at < size) {       /* does not fit before the end: wrap */
        pad = k->cap - at;
        at = 0;
    }
    if (k->n >= k->max_n || k->used + pad + size > k->cap || k->stop) {
        pthread_mutex_unlock(&k->mu);
        atomic_fetch_add_explicit(&k->dropped, 1, memory_order_relaxed);
        return;
    }
    if (pad >= sizeof(struct msg_hdr)) {
        struct msg_hdr ph = { (uint32_t)(pad - sizeof ph), MSG_PAD };
        memcpy(k->ring + k->head, &ph, sizeof ph);
    }
    pthread_mutex_unlock(&k->mu);
    /* [at, at + size) is free and only ours until head moves: pack outside
     * the lock. */
    struct msg_hdr h = { (uint32_t)len, kind };
    memcpy(k->ring + at, &h, sizeof h);
    p.base = k->ring + at + sizeof h;
    p.pos = 0;
    pack(&p, msg);
    pthread_mutex_lock(&k->mu);
    k->head = at + size == k->cap ? 0 : at + size;
    k->used += pad + size;
    k->n++;
    if (k->waiting)
        pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    atomic_fetch_add_explicit(&k->queued, 1, memory_order_relaxed);
}

static void pack_result_v(struct pk *p, const void *m)   { pack_result(p, m); }
static void pack_event_v(struct pk *p, const void *m)    { pack_event(p, m); }
static void pack_severity_v(struct pk *p, const void *m) { pack_severity(p, m); }
static void pack_stats_v(struct pk *p, const void *m)    { pack_stats(p, m); }

/* ---- the set ---------------------------------------------------------------------- */

static void sink_end(struct sink *k)
{
    if (k->started) {
        /* what is queued goes out, for at most 2 s */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 2;
        pthread_mutex_lock(&k->mu);
        k->stop = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
        if (pthread_timedjoin_np(k->tid, NULL, &dl)) {
            pthread_mutex_lock(&k->mu);
            unsigned left = k->n;
            k->quit = true;
            pthread_cond_signal(&k->cv);
            pthread_mutex_unlock(&k->mu);
            pthread_join(k->tid, NULL);
            log_warn("%s: %u messages still queued after 2 s: dropped", k->ops->name, left);
        }
    }
    if (k->state)
        k->ops->destroy(k->state);
    if (k->ops->async) {
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
    }
    free(k->ring);
}

int sinks_create(const struct cfg *c, sink_set **out, char *err, size_t errlen)
{
    return sinks_create_from(sink_table, c, out, err, errlen);
}

int sinks_create_from(const struct sink_ops *const *table, const struct cfg *c,
                      sink_set **out, char *err, size_t errlen)
{
    sink_set *ss = calloc(1, sizeof *ss);
    if (!ss)
        return -ENOMEM;
    int rc = 0;
    for (const struct sink_ops *const *o = table; *o && !rc; o++) {
        if (ss->n == sizeof ss->s / sizeof ss->s[0]) {
            snprintf(err, errlen, "%s: too many sinks", (*o)->name);
            rc = -E2BIG;
            break;
        }
        if (!(*o)->enabled(c))
            continue;
        struct sink *k = &ss->s[ss->n];
        k->ops = *o;
        k->kinds = (*o)->async ? SINK_STATS_PERIODIC | SINK_STATS_LIVE
                               : SINK_STATS_PERIODIC | SINK_STATS_STATE;
        if ((*o)->stats_kinds)
            k->kinds = (*o)->stats_kinds;
        if ((*o)->async) {
            k->max_n = (*o)->queue ? (*o)->queue(c) : queue_of(*o, c);
            /* room for max_n messages of about a result each, and for
             * snapshots of many streams */
            k->cap = ((size_t)k->max_n * 1024 + (1u << 20)) & ~(size_t)7;
            k->ring = malloc(k->cap);
            if (!k->ring) {
                rc = -ENOMEM;
                break;
            }
            pthread_mutex_init(&k->mu, NULL);
            pthread_cond_init(&k->cv, NULL);
        }
        ss->n++;
        rc = (*o)->create(c, &k->state, err, errlen);
        if (rc) {
            k->state = NULL;
            break;
        }
        if ((*o)->async) {
            int e = pthread_create(&k->tid, NULL, sink_main, k);
            if (e) {
                snprintf(err, errlen, "%s: cannot start its thread: %s", (*o)->name,
                         strerror(e));
                rc = -e;
                break;
            }
            k->started = true;
        }
    }
    if (rc) {
        sinks_destroy(ss);
        return rc;
    }
    *out = ss;
    return 0;
}

void sinks_destroy(sink_set *ss)
{
    if (!ss)
        return;
    /* queued ones first: they may still be emptying their queues */
    for (unsigned i = 0; i < ss->n; i++)
        if (ss->s[i].ops->async)
            sink_end(&ss->s[i]);
    for (unsigned i = 0; i < ss->n; i++)
        if (!ss->s[i].ops->async)
            sink_end(&ss->s[i]);
    free(ss);
}

void *sinks_state(sink_set *ss, const char *name)
{
    for (unsigned i = 0; ss && i < ss->n; i++)
        if (!strcmp(ss->s[i].ops->name, name))
            return ss->s[i].state;
    return NULL;
}

bool sinks_want_live(const sink_set *ss)
{
    for (unsigned i = 0; i < ss->n; i++)
        if (ss->s[i].kinds & SINK_STATS_LIVE)
            return true;
    return false;
}

static int direct_rc(int rc, bool *cancelled)
{
    if (rc == -ECANCELED) {
        if (cancelled)
            *cancelled = true;
        return 0;
    }
    return rc < 0;
}

int sinks_result(sink_set *ss, const struct result *r, bool *cancelled)
{
    int failed = 0;
    for (unsigned i = 0; i < ss->n; i++) {
        struct sink *k = &ss->s[i];
        if (k->ops->async)
            enqueue(k, MSG_RESULT, r, pack_result_v);
        else
            failed += direct_rc(k->ops->result(k->state, r), cancelled);
    }
    return failed;
}

int sinks_event(sink_set *ss, const struct sink_event *e)
{
    int failed = 0;
    for (unsigned i = 0; i < ss->n; i++) {
        struct sink *k = &ss->s[i];
        if (k->ops->async)
            enqueue(k, MSG_EVENT, e, pack_event_v);
        else
            failed += direct_rc(k->ops->event(k->state, e), NULL);
    }
    return failed;
}

int sinks_severity(sink_set *ss, const struct sink_severity *e)
{
    int failed = 0;
    for (unsigned i = 0; i < ss->n; i++) {
        struct sink *k = &ss->s[i];
        if (!k->ops->severity)
            continue;
        if (k->ops->async)
            enqueue(k, MSG_SEVERITY, e, pack_severity_v);
        else
            failed += direct_rc(k->ops->severity(k->state, e), NULL);
    }
    return failed;
}

int sinks_stats(sink_set *ss, const struct sink_stats *st, int kind)
{
    int failed = 0;
    for (unsigned i = 0; i < ss->n; i++) {
        struct sink *k = &ss->s[i];
        if (!(k->kinds & kind) || !k->ops->stats)
            continue;
        if (k->ops->async)
            enqueue(k, MSG_STATS | (uint32_t)kind << 24, st, pack_stats_v);
        else
            failed += direct_rc(k->ops->stats(k->state, st, kind), NULL);
    }
    return failed;
}

bool sinks_want_state(sink_set *ss)
{
    bool want = false;
    for (unsigned i = 0; i < ss->n; i++) {
        struct sink *k = &ss->s[i];
        if (!k->ops->async && k->ops->want_state && k->ops->want_state(k->state))
            want = true;
    }
    return want;
}

unsigned sinks_accounts(const sink_set *ss, struct sink_account *a, unsigned n)
{
    unsigned m = 0;
    for (unsigned i = 0; i < ss->n; i++) {
        const struct sink *k = &ss->s[i];
        if (!k->ops->async)
            continue;
        if (m < n)
            a[m] = (struct sink_account){
                .name = k->ops->name,
                .queued = atomic_load_explicit(&k->queued, memory_order_relaxed),
                .dropped = atomic_load_explicit(&k->dropped, memory_order_relaxed),
                .lost = k->ops->lost ? k->ops->lost(k->state) : 0,
            };
        m++;
    }
    return m;
}
