/* pipeline.c — the windower, the worker pool and the publisher thread.
 *
 * DESIGN (see pipeline.h for the picture and the job-slot circle).
 *
 * Windower: one thread visits every stream in turn, takes at most RS_CHUNK
 * samples from its ring (zero copy: the ring's segments are read in place
 * and committed afterwards), resamples them to the model's rate when the
 * stream's rate differs (libsoxr through rs_*), and cuts NET_WIN windows every
 * hop straight into the next free job slot.  A window carries its stream,
 * seq (from 0 per stream), sample (index of its first sample after
 * resampling), t (stream_time() of that sample mapped back to the input
 * rate: the source's clock is in input samples) and gap (the stream's
 * dropped counter grew since its previous window).  When a visit finds
 * nothing anywhere it sleeps on the sources' semaphore (bounded).  A stream
 * whose ring is empty after its eof was seen is flushed (the resampler's
 * tail) and ends; when every stream has ended the windower says so and
 * leaves.
 *
 * Synchronisation of the slots: one mutex and three condition variables
 * (work for the workers, done for the publisher, free for the windower).
 * A slot is filled or computed outside the lock: ownership moves with the
 * counters, which only change under it.  Per window that is three short
 * critical sections against ~16 M multiply-adds of work.  Every wait is a
 * timed wait (CLOCK_MONOTONIC), so a lost wake-up costs at most a tick.
 *
 * Publisher thread: sends slot `tail` once done, accounts latency into
 * fixed histograms (the interval's and each stream's), and every
 * stats_interval seconds formats a "_stats" object into a buffer sized at
 * start-up.
 */
#include "pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "resample.h"
#include "stats.h"
#include "window.h"

#define TICK_NS     200000000L       /* bound on every wait, 200 ms */
#define IDLE_NS     20000000L        /* windower sleep when all rings are empty */

struct slot {
    float   *x;                      /* NET_WIN samples, normalised in place */
    float   *logits;                 /* n_classes */
    float   *probs;                  /* n_classes */
    unsigned stream;
    uint64_t seq, sample;
    double   t;
    bool     gap;
    int      cls;
    int64_t  taken_ns;               /* CLOCK_MONOTONIC: last sample out of the ring */
    bool     done;                   /* under mu */
};

struct pl_stream {
    struct stream   *st;
    const char      *path;           /* the file, for messages; may be NULL */
    double           in_rate, out_rate;
    resampler       *rs;             /* NULL: no resampling */
    windower        *win;
    float           *rsbuf;          /* resampler output */
    size_t           rscap;
    _Atomic uint64_t popped;         /* samples taken out of the ring (windower) */
    /* windower thread */
    uint64_t         last_dropped;
    bool             ended;
    /* publisher thread */
    uint64_t         published;
    struct stats_hist lat;
};

struct pipeline {
    const net_model  *m;
    int               n_classes;
    enum norm_kind    norm;
    double            model_rate;
    double            stats_interval;

    struct pl_stream *streams;
    unsigned          n_streams;
    sem_t             wake;
    bool              wake_ok;

    unsigned          n_workers;
    net_scratch     **scratch;
    pthread_t        *worker_tid;
    unsigned          workers_started;
    pthread_t         windower_tid, publisher_tid;
    bool              windower_started, publisher_started, joined;
    publisher        *pub;

    struct slot      *slots;
    unsigned          n_slots;
    float            *slot_mem;

    pthread_mutex_t   mu;
    pthread_cond_t    cv_work, cv_done, cv_free;
    uint64_t          head, next, tail;        /* under mu */
    bool              input_done;              /* under mu: windower finished */
    bool              abort;                   /* under mu: start failed, leave now */
    _Atomic bool      finished;
    _Atomic uint64_t  published;               /* publisher: windows sent */

    /* publisher thread */
    struct stats_hist lat_interval;
    uint64_t          publish_errors;
    char             *stats_buf;
    size_t            stats_len;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
    return (struct timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
}

static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    struct timespec ts = ts_of(deadline_ns);
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- creation --------------------------------------------------------------- */

int pipeline_create(const net_model *m, const struct pipeline_opts *o,
                    pipeline **out, char *err, size_t errlen)
{
    pipeline *p = calloc(1, sizeof *p);
    pthread_condattr_t ca;
    long ncpu;

    *out = NULL;
    if (!p)
        goto nomem;
    p->m = m;
    p->n_classes = net_classes(m);
    p->norm = net_normalize(m);
    p->model_rate = net_sample_rate(m);
    p->stats_interval = o->stats_interval;
    atomic_init(&p->finished, false);
    atomic_init(&p->published, 0);

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    p->n_workers = o->workers ? o->workers : (ncpu > 0 ? (unsigned)ncpu : 1);

    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv_work, &ca);
    pthread_cond_init(&p->cv_done, &ca);
    pthread_cond_init(&p->cv_free, &ca);
    pthread_condattr_destroy(&ca);
    if (sem_init(&p->wake, 0, 0) < 0) {
        snprintf(err, errlen, "pipeline: sem_init: %s", strerror(errno));
        pipeline_destroy(p);
        return -errno;
    }
    p->wake_ok = true;

    p->scratch = calloc(p->n_workers, sizeof *p->scratch);
    p->worker_tid = calloc(p->n_workers, sizeof *p->worker_tid);
    if (!p->scratch || !p->worker_tid)
        goto nomem;
    for (unsigned i = 0; i < p->n_workers; i++)
        if (!(p->scratch[i] = net_scratch_create(m)))
            goto nomem;

    /* Enough slots to keep every worker busy while the publisher waits for
     * the oldest one, and a little more for the windower to run ahead. */
    p->n_slots = 4 * p->n_workers + 8;
    size_t nc = ((size_t)p->n_classes + 15) & ~(size_t)15;   /* 64-byte multiples */
    size_t per = NET_WIN + 2 * nc;
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    p->slot_mem = aligned_alloc(64, sizeof(float) * per * p->n_slots);
    if (!p->slots || !p->slot_mem)
        goto nomem;
    memset(p->slot_mem, 0, sizeof(float) * per * p->n_slots);
    for (unsigned i = 0; i < p->n_slots; i++) {
        float *b = p->slot_mem + per * i;
        p->slots[i].x = b;
        p->slots[i].logits = b + NET_WIN;
        p->slots[i].probs = b + NET_WIN + nc;
    }
    stats_hist_reset(&p->lat_interval);
    *out = p;
    return 0;
nomem:
    snprintf(err, errlen, "pipeline: out of memory");
    pipeline_destroy(p);
    return -ENOMEM;
}

int pipeline_add_source(pipeline *p, struct source *s, char *err, size_t errlen)
{
    const char *path = (s->cfg && s->cfg->type == CFG_FILE) ? s->cfg->path : NULL;

    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        for (unsigned j = 0; j < p->n_streams; j++)
            if (strcmp(p->streams[j].st->name, st->name) == 0) {
                snprintf(err, errlen, "%s%sstream name \"%s\" is used twice (also by %s): "
                         "streams need unique names", path ? path : "", path ? ": " : "",
                         st->name, p->streams[j].path ? p->streams[j].path : "another source");
                return -EEXIST;
            }
    }
    /* A file too short for one window at the model's rate gives nothing. */
    double out_rate = p->model_rate > 0 ? p->model_rate : s->streams[0].rate;
    if (s->frames && s->n_streams) {
        double in_rate = s->streams[0].rate;
        uint64_t len = in_rate == out_rate ? s->frames
                                           : rs_out_len(in_rate, out_rate, s->frames);
        if (len < NET_WIN) {
            if (in_rate == out_rate)
                snprintf(err, errlen, "%s: too short: %" PRIu64 " samples, fewer than one "
                         "%d-sample window", path ? path : s->streams[0].name, s->frames, NET_WIN);
            else
                snprintf(err, errlen, "%s: too short: %" PRIu64 " samples at %g Hz make %" PRIu64
                         " at the model's %g Hz, fewer than one %d-sample window",
                         path ? path : s->streams[0].name, s->frames, in_rate, len, out_rate,
                         NET_WIN);
            return -ENODATA;
        }
    }

    struct pl_stream *ns = realloc(p->streams, sizeof *ns * (p->n_streams + s->n_streams));
    if (!ns)
        goto nomem;
    p->streams = ns;
    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        struct pl_stream *ps = &p->streams[p->n_streams];
        memset(ps, 0, sizeof *ps);
        atomic_init(&ps->popped, 0);
        ps->st = st;
        ps->path = path;
        ps->in_rate = st->rate;
        ps->out_rate = p->model_rate > 0 ? p->model_rate : st->rate;
        stats_hist_reset(&ps->lat);
        if (ps->in_rate != ps->out_rate) {
            char rerr[256] = "";
            ps->rs = rs_create(ps->in_rate, ps->out_rate, rerr, sizeof rerr);
            if (!ps->rs) {
                snprintf(err, errlen, "stream %s: resampler %g -> %g Hz: %s", st->name,
                         ps->in_rate, ps->out_rate, rerr);
                return -EINVAL;
            }
            /* resample.h: soxr's output per call is bursty, up to ~1.5x the
             * average; 2x + 64 never holds anything back. */
            ps->rscap = (size_t)ceil(2.0 * RS_CHUNK * ps->out_rate / ps->in_rate) + 64;
            ps->rsbuf = malloc(sizeof(float) * ps->rscap);
        }
        ps->win = win_create(NET_WIN, st->hop);
        p->n_streams++;          /* from here pipeline_destroy releases it */
        if (!ps->win || (ps->rs && !ps->rsbuf))
            goto nomem;
    }
    s->wake = &p->wake;
    return 0;
nomem:
    snprintf(err, errlen, "pipeline: out of memory");
    return -ENOMEM;
}

/* ---- windower ------------------------------------------------------------- */

/* The next free slot (wait for the publisher to free one), or NULL on abort. */
static struct slot *slot_free(pipeline *p)
{
    struct slot *sl = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->head - p->tail >= p->n_slots && !p->abort)
        cond_wait_until(&p->cv_free, &p->mu, mono_ns() + TICK_NS);
    if (!p->abort)
        sl = &p->slots[p->head % p->n_slots];
    pthread_mutex_unlock(&p->mu);
    return sl;
}

static void slot_submit(pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->head++;
    pthread_cond_signal(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
}

/* Cut every complete window of x[0..n) into slots. */
static void feed(pipeline *p, unsigned si, const float *x, size_t n, int64_t taken_ns)
{
    struct pl_stream *ps = &p->streams[si];
    do {
        size_t k = win_push(ps->win, x, n);
        x += k;
        n -= k;
        for (;;) {
            struct slot *sl = slot_free(p);
            uint64_t seq, start;
            if (!sl)
                return;
            if (!win_next(ps->win, sl->x, &seq, &start))
                break;
            /* Map the window's first sample back to the input rate, where
             * the source's clock counts. */
            double ipos = ps->rs ? (double)start * ps->in_rate / ps->out_rate : (double)start;
            double ifloor = floor(ipos);
            uint64_t dropped = atomic_load_explicit(&ps->st->dropped, memory_order_acquire);
            sl->stream = si;
            sl->seq = seq;
            sl->sample = start;
            sl->t = stream_time(ps->st, (uint64_t)ifloor) + (ipos - ifloor) / ps->in_rate;
            sl->gap = dropped != ps->last_dropped;
            ps->last_dropped = dropped;
            sl->taken_ns = taken_ns;
            sl->done = false;
            slot_submit(p);
        }
    } while (n > 0);
}

static void resample_feed(pipeline *p, unsigned si, const float *x, size_t n, int64_t taken_ns)
{
    struct pl_stream *ps = &p->streams[si];
    if (!ps->rs) {
        feed(p, si, x, n, taken_ns);
        return;
    }
    long k = rs_process(ps->rs, x, n, ps->rsbuf, ps->rscap);
    if (k > 0)
        feed(p, si, ps->rsbuf, (size_t)k, taken_ns);
}

/* One visit: true if it took samples. */
static bool visit(pipeline *p, unsigned si)
{
    struct pl_stream *ps = &p->streams[si];
    struct ring_vec v;

    /* Acquire: eof is stored after the last write, so if it is seen here,
     * an empty ring below is empty for good. */
    bool eof = atomic_load_explicit(&ps->st->eof, memory_order_acquire);
    uint32_t n = ring_read_vec(ps->st->ring, &v);
    if (n == 0) {
        if (eof) {
            if (ps->rs) {
                long k;
                while ((k = rs_flush(ps->rs, ps->rsbuf, ps->rscap)) > 0)
                    feed(p, si, ps->rsbuf, (size_t)k, mono_ns());
            }
            ps->ended = true;
        }
        return false;
    }
    if (n > RS_CHUNK)
        n = RS_CHUNK;
    int64_t taken = mono_ns();
    uint32_t n0 = n < v.n[0] ? n : v.n[0];
    resample_feed(p, si, v.p[0], n0, taken);
    if (n > n0)
        resample_feed(p, si, v.p[1], n - n0, taken);
    ring_read_commit(ps->st->ring, n);
    atomic_store_explicit(&ps->popped, atomic_load_explicit(&ps->popped, memory_order_relaxed) + n,
                          memory_order_relaxed);
    return true;
}

static void *windower_main(void *arg)
{
    pipeline *p = arg;
    unsigned live = p->n_streams;

    while (live > 0) {
        bool progress = false;
        pthread_mutex_lock(&p->mu);
        bool ab = p->abort;
        pthread_mutex_unlock(&p->mu);
        if (ab)
            break;
        for (unsigned i = 0; i < p->n_streams; i++) {
            if (p->streams[i].ended)
                continue;
            if (visit(p, i))
                progress = true;
            else if (p->streams[i].ended)
                live--;
        }
        if (!progress && live > 0) {
            struct timespec ts = ts_of(mono_ns() + IDLE_NS);
            while (sem_clockwait(&p->wake, CLOCK_MONOTONIC, &ts) < 0 && errno == EINTR)
                ;
            /* Posts pile up while the windower is busy (one per source
             * write); one visit answers them all.  A write after this
             * posts again. */
            while (sem_trywait(&p->wake) == 0)
                ;
        }
    }
    pthread_mutex_lock(&p->mu);
    p->input_done = true;
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- workers ---------------------------------------------------------------- */

struct worker_arg {
    pipeline *p;
    unsigned  id;
};

static void *worker_main(void *arg)
{
    pipeline *p = ((struct worker_arg *)arg)->p;
    net_scratch *scratch = p->scratch[((struct worker_arg *)arg)->id];

    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->next == p->head && !p->input_done && !p->abort)
            cond_wait_until(&p->cv_work, &p->mu, mono_ns() + TICK_NS);
        if (p->abort || (p->next == p->head && p->input_done))
            break;
        uint64_t idx = p->next++;
        struct slot *sl = &p->slots[idx % p->n_slots];
        pthread_mutex_unlock(&p->mu);

        norm_apply(p->norm, sl->x, sl->x, NET_WIN);
        net_forward(p->m, scratch, sl->x, sl->logits);
        net_softmax(sl->logits, p->n_classes, sl->probs);
        sl->cls = net_argmax(sl->probs, p->n_classes);

        pthread_mutex_lock(&p->mu);
        sl->done = true;
        if (idx == p->tail)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- publisher -------------------------------------------------------------- */

/* Append a JSON string (quoted, escaped) at *pos; stops at the buffer's end. */
static void json_str(char *buf, size_t len, size_t *pos, const char *s)
{
    size_t i = *pos;
    if (i < len)
        buf[i++] = '"';
    for (; *s && i + 7 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[i++] = '\\';
            buf[i++] = (char)c;
        } else if (c < 0x20) {
            i += (size_t)snprintf(buf + i, len - i, "\\u%04x", c);
        } else {
            buf[i++] = (char)c;
        }
    }
    if (i < len)
        buf[i++] = '"';
    *pos = i;
}

static void json_fmt(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void json_fmt(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    if (*pos >= len)
        return;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (k > 0)
        *pos += (size_t)k < len - *pos ? (size_t)k : len - *pos - 1;
}

static void publish_stats(pipeline *p, uint64_t depth, double uptime)
{
    char *b = p->stats_buf;
    size_t len = p->stats_len, pos = 0;
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    json_fmt(b, len, &pos, "{\"t\":%.6f,\"uptime\":%.3f,\"interval\":%g,\"streams\":[",
             (double)now.tv_sec + now.tv_nsec / 1e9, uptime, p->stats_interval);
    for (unsigned i = 0; i < p->n_streams; i++) {
        struct pl_stream *ps = &p->streams[i];
        json_fmt(b, len, &pos, "%s{\"stream\":", i ? "," : "");
        json_str(b, len, &pos, ps->st->name);
        json_fmt(b, len, &pos, ",\"windows\":%" PRIu64 ",\"samples\":%" PRIu64
                 ",\"dropped\":%" PRIu64 ",\"xruns\":%" PRIu64 ",\"eof\":%s}",
                 ps->published, atomic_load_explicit(&ps->st->written, memory_order_relaxed),
                 atomic_load_explicit(&ps->st->dropped, memory_order_relaxed),
                 atomic_load_explicit(&ps->st->xruns, memory_order_relaxed),
                 atomic_load_explicit(&ps->st->eof, memory_order_relaxed) ? "true" : "false");
    }
    json_fmt(b, len, &pos, "],\"queue\":{\"depth\":%" PRIu64 ",\"slots\":%u,\"workers\":%u},"
             "\"latency_us\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
             ",\"max\":%" PRIu64 "}}",
             depth, p->n_slots, p->n_workers, p->lat_interval.n,
             stats_hist_pct(&p->lat_interval, 0.50), stats_hist_pct(&p->lat_interval, 0.99),
             p->lat_interval.max);
    stats_hist_reset(&p->lat_interval);
    if (pos < len && publish_raw(p->pub, "_stats", b) < 0)
        p->publish_errors++;
}

static void publish_slot(pipeline *p, struct slot *sl)
{
    struct pl_stream *ps = &p->streams[sl->stream];
    struct result r = {
        .stream = ps->st->name,
        .seq = sl->seq,
        .sample = sl->sample,
        .t = sl->t,
        .cls = sl->cls,
        .label = net_class_name(p->m, sl->cls),
        .score = sl->probs[sl->cls],
        .probs = sl->probs,
        .logits = sl->logits,
        .n_classes = p->n_classes,
        .gap = sl->gap,
        .model = net_digest(p->m),
    };
    /* latency_us covers the send itself, so it is known only after it; the
     * message carries the time up to the call. */
    r.latency_us = (mono_ns() - sl->taken_ns) / 1000;
    if (publish_result(p->pub, &r) < 0)
        p->publish_errors++;
    uint64_t us = (uint64_t)((mono_ns() - sl->taken_ns) / 1000);
    stats_hist_add(&ps->lat, us);
    stats_hist_add(&p->lat_interval, us);
    ps->published++;
    atomic_fetch_add_explicit(&p->published, 1, memory_order_relaxed);
}

static void *publisher_main(void *arg)
{
    pipeline *p = arg;
    const int64_t t0 = mono_ns();
    const int64_t period = p->stats_interval > 0 ? (int64_t)(p->stats_interval * 1e9) : 0;
    int64_t next_stats = period ? t0 + period : INT64_MAX;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        int64_t now = mono_ns();
        if (now >= next_stats) {
            uint64_t depth = p->head - p->tail;
            pthread_mutex_unlock(&p->mu);
            publish_stats(p, depth, (double)(now - t0) / 1e9);
            next_stats += period;
            if (next_stats <= now)           /* we fell behind: skip, don't burst */
                next_stats = now + period;
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->abort)
            break;
        if (p->tail < p->head && p->slots[p->tail % p->n_slots].done) {
            struct slot *sl = &p->slots[p->tail % p->n_slots];
            pthread_mutex_unlock(&p->mu);
            publish_slot(p, sl);
            pthread_mutex_lock(&p->mu);
            sl->done = false;
            p->tail++;
            pthread_cond_signal(&p->cv_free);
            continue;
        }
        if (p->input_done && p->tail == p->head)
            break;
        int64_t until = now + TICK_NS;
        cond_wait_until(&p->cv_done, &p->mu, until < next_stats ? until : next_stats);
    }
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->finished, true);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------- */

int pipeline_start(pipeline *p, publisher *pub)
{
    int rc;

    p->pub = pub;
    /* Room for every stream's line with a fully escaped name. */
    p->stats_len = 512 + (size_t)p->n_streams * (STREAM_NAME_MAX * 6 + 200);
    p->stats_buf = malloc(p->stats_len);
    if (!p->stats_buf)
        return -ENOMEM;
    for (unsigned i = 0; i < p->n_workers; i++) {
        struct worker_arg *a = malloc(sizeof *a);
        if (!a) {
            rc = ENOMEM;
            goto fail;
        }
        a->p = p;
        a->id = i;
        rc = pthread_create(&p->worker_tid[i], NULL, worker_main, a);
        if (rc) {
            free(a);
            goto fail;
        }
        p->workers_started++;
    }
    rc = pthread_create(&p->publisher_tid, NULL, publisher_main, p);
    if (rc)
        goto fail;
    p->publisher_started = true;
    rc = pthread_create(&p->windower_tid, NULL, windower_main, p);
    if (rc)
        goto fail;
    p->windower_started = true;
    return 0;
fail:
    pthread_mutex_lock(&p->mu);
    p->abort = true;
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_done);
    pthread_cond_broadcast(&p->cv_free);
    pthread_mutex_unlock(&p->mu);
    pipeline_join(p);
    return -rc;
}

bool pipeline_finished(const pipeline *p)
{
    return atomic_load(&((pipeline *)p)->finished);
}

void pipeline_join(pipeline *p)
{
    if (!p || p->joined)
        return;
    if (p->windower_started)
        pthread_join(p->windower_tid, NULL);
    if (p->publisher_started)
        pthread_join(p->publisher_tid, NULL);
    for (unsigned i = 0; i < p->workers_started; i++)
        pthread_join(p->worker_tid[i], NULL);
    p->joined = true;
    if (!p->publisher_started)
        return;
    for (unsigned i = 0; i < p->n_streams; i++) {
        struct pl_stream *ps = &p->streams[i];
        log_info("stream %s: %" PRIu64 " windows, %" PRIu64 " samples, %" PRIu64
                 " dropped, %" PRIu64 " xruns, latency p50 %" PRIu64 " us, p99 %" PRIu64
                 " us, max %" PRIu64 " us",
                 ps->st->name, ps->published,
                 atomic_load(&ps->st->written), atomic_load(&ps->st->dropped),
                 atomic_load(&ps->st->xruns), stats_hist_pct(&ps->lat, 0.5),
                 stats_hist_pct(&ps->lat, 0.99), ps->lat.max);
    }
    if (p->publish_errors)
        log_warn("%" PRIu64 " messages could not be published", p->publish_errors);
}

void pipeline_destroy(pipeline *p)
{
    if (!p)
        return;
    pipeline_join(p);
    for (unsigned i = 0; i < p->n_streams; i++) {
        if (p->streams[i].rs)
            rs_destroy(p->streams[i].rs);
        if (p->streams[i].win)
            win_destroy(p->streams[i].win);
        free(p->streams[i].rsbuf);
    }
    free(p->streams);
    if (p->scratch)
        for (unsigned i = 0; i < p->n_workers; i++)
            if (p->scratch[i])
                net_scratch_destroy(p->scratch[i]);
    free(p->scratch);
    free(p->worker_tid);
    free(p->slots);
    free(p->slot_mem);
    free(p->stats_buf);
    if (p->wake_ok)
        sem_destroy(&p->wake);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_free);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

uint64_t pipeline_published(const pipeline *p)
{
    return atomic_load_explicit(&((pipeline *)p)->published, memory_order_relaxed);
}

bool pipeline_idle(const pipeline *p)
{
    pipeline *q = (pipeline *)p;
    for (unsigned i = 0; i < q->n_streams; i++)
        if (atomic_load_explicit(&q->streams[i].popped, memory_order_relaxed)
            != atomic_load_explicit(&q->streams[i].st->written, memory_order_relaxed))
            return false;
    pthread_mutex_lock(&q->mu);
    bool idle = q->head == q->tail;
    pthread_mutex_unlock(&q->mu);
    return idle;
}

unsigned pipeline_workers(const pipeline *p) { return p->n_workers; }
unsigned pipeline_streams(const pipeline *p) { return p->n_streams; }

void pipeline_stream_info(const pipeline *p, unsigned i, char *buf, size_t len)
{
    const struct pl_stream *ps = &p->streams[i];
    if (ps->rs)
        snprintf(buf, len, "stream %s: %g Hz resampled to %g Hz, hop %u", ps->st->name,
                 ps->in_rate, ps->out_rate, ps->st->hop);
    else
        snprintf(buf, len, "stream %s: %g Hz, hop %u", ps->st->name, ps->in_rate, ps->st->hop);
}
