/* SPDX-License-Identifier: Apache-2.0 */
/* sink_http.c — the HTTP sink: /metrics (Prometheus text format 0.0.4),
 * /api/status and /api/history (JSON) and a live page at / (http_page.c).
 *
 * Two threads meet here.  The sink's callbacks (result, event, severity,
 * stats) run one at a time on the sink's own thread (sink.c); libmicrohttpd
 * answers requests on its internal polling thread.  They share a "board":
 *
 *   - per stream, a slot: the last window (label, score, probabilities,
 *     anomaly, level), the counters of the last statistics snapshot, the
 *     labels counted from results, the states seen, and a ring of one point
 *     per second for the page's charts (http.history seconds);
 *   - the last EVENTS_KEPT state changes;
 *   - the model and the queued sinks' accounts from the last snapshot.
 *
 * One mutex guards the board.  A callback holds it for a few copies; a
 * request holds it while it renders into its own buffer, then unlocks and
 * lets libmicrohttpd send.  So a client that never reads its response costs
 * one connection slot until the timeout, never the lock, and never the
 * publisher: the publisher only copies into this sink's queue (sink.c) and
 * counts what does not fit.
 *
 * Slots are allocated when a stream first appears (a result or a snapshot
 * naming it); after that a result is copied into preallocated memory.
 *
 * Security: the listening socket is bound here to exactly http.listen
 * (cfg_validate refused a non-loopback address without http.remote and a
 * token).  With http.token_file every request needs "Authorization: Bearer
 * TOKEN" — or, for the page "/" only, which holds no data, "?token=TOKEN"
 * so that a browser can open it; the page then sends the header itself.
 * Only GET and HEAD; connections are limited in number, per address and in
 * idle time, so stalled clients cannot hold the server for long.
 */
#include "sink.h"
#include "sink_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#ifndef TRIDENT_VERSION
#define TRIDENT_VERSION "0.0.0"
#endif

enum {
    MAX_STREAMS    = 1024,  /* slots; a result of a stream beyond is lost() */
    MAX_PROBS      = 64,    /* class probabilities kept per window */
    HIST_CLASSES   = 16,    /* ... and per history point */
    MAX_LABELS     = 32,    /* distinct labels counted per stream */
    MAX_STATES     = 16,    /* distinct states remembered per stream */
    SHORT          = 48,    /* label, state and quality strings */
    EVENTS_KEPT    = 100,
    MAX_SINKS      = 8,
    TOKEN_MIN      = 16,
    TOKEN_MAX      = 512,
    CONN_LIMIT     = 32,    /* connections at once */
    CONN_PER_IP    = 16,    /* ... from one address (a browser opens ~6) */
    CONN_TIMEOUT_S = 10,    /* idle seconds before a connection is closed */
};

/* The latency histogram's bounds, seconds (trident_latency_seconds). */
static const double le_bounds[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                    0.05, 0.1, 0.2, 0.5, 1.0 };
#define N_LE (sizeof le_bounds / sizeof le_bounds[0])

static const char *const quality_names[4] = { "ok", "no_signal", "clipped", "nonfinite" };

/* One second of one stream: the mean of its windows' values (peak: max). */
struct point {
    double   t;                 /* whole second (Unix), 0: empty */
    unsigned n;
    float    p[HIST_CLASSES];
    float    anomaly, threshold, rms, peak;
};

struct label_count {
    char     name[SHORT];
    uint64_t n;
};

struct slot {
    char    *name;
    uint64_t snap_gen;          /* == board's: named in the last snapshot */
    double   last_wall;         /* wall time of its last result */

    /* the last window */
    bool     has_result;
    uint64_t seq;
    double   t;
    int      cls;
    char     label[SHORT];      /* "": null */
    char     quality[SHORT];
    float    score;
    unsigned n_probs;
    float    probs[MAX_PROBS];
    bool     has_detector;
    double   anomaly, threshold;
    double   rms, peak;
    int64_t  latency_us;

    /* the state: from results, events and snapshots, whichever came last */
    char     state[SHORT];      /* "": none yet */
    bool     has_since;
    uint64_t since_seq;
    double   since_t;
    char     states[MAX_STATES][SHORT];
    unsigned n_states;

    /* counted here, from results */
    struct label_count labels[MAX_LABELS];
    unsigned n_labels;
    uint64_t results;

    /* from the last snapshot */
    bool     has_snap;
    uint64_t windows, gaps, samples, dropped, xruns, skipped;
    uint64_t quality_n[4], unknown, anomalous, events;
    bool     eof, down;
    bool     has_severity;
    double   sev_velocity;
    char     sev_zone[4];
    bool     has_latency;
    struct stats_hist latency;

    /* one point per second, oldest first from hist_head - hist_n */
    struct point *hist;
    unsigned hist_cap, hist_n, hist_head;
};

struct event_rec {
    char     stream[64];
    char     from[SHORT], to[SHORT];   /* from "": null */
    uint64_t seq, at_seq;
    double   t, wall;
    unsigned agree, windows;
    double   score;
};

struct account {
    char     name[16];
    uint64_t queued, dropped, lost;
};

/* Requests counted for trident_http_requests_total. */
enum { P_PAGE, P_METRICS, P_STATUS, P_HISTORY, P_OTHER, N_PATHS };
static const char *const path_names[N_PATHS] = { "/", "/metrics", "/api/status",
                                                 "/api/history", "other" };
static const unsigned codes[] = { 200, 204, 401, 404, 405, 500 };
#define N_CODES (sizeof codes / sizeof codes[0])

struct sink_http {
    pthread_mutex_t    mu;
    struct MHD_Daemon *mhd;
    unsigned           port;
    char              *token;   /* NULL: no authentication */
    size_t             token_len;
    unsigned           history; /* seconds */
    double             start_wall;

    /* the board (mu) */
    struct slot      **slots;
    unsigned           n_slots, cap_slots;
    uint64_t           snap_gen;
    bool               have_snap;
    double             snap_t, snap_uptime;
    uint64_t           queue_depth;
    unsigned           queue_slots, workers;
    char               model[16], model_kind[16];
    char              *model_path;
    char             **classes;
    unsigned           n_classes;
    struct account     acc[MAX_SINKS];
    unsigned           n_acc;
    struct event_rec   ev[EVENTS_KEPT];
    unsigned           ev_n, ev_head;
    uint64_t           requests[N_PATHS][N_CODES];

    /* any thread */
    atomic_uint_fast64_t lost;          /* results of streams beyond MAX_STREAMS */
    atomic_uint_fast64_t failed;        /* responses not completed (timeout, error) */
    atomic_uint_fast64_t connections;   /* accepted */
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void copy_str(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

/* ---- the board, written by the sink's thread ---------------------------- */

static struct slot *slot_find(struct sink_http *h, const char *name)
{
    for (unsigned i = 0; i < h->n_slots; i++)
        if (!strcmp(h->slots[i]->name, name))
            return h->slots[i];
    return NULL;
}

static void slot_free(struct slot *sl)
{
    if (!sl)
        return;
    free(sl->name);
    free(sl->hist);
    free(sl);
}

/* The slot of NAME, made when the stream is new; NULL when out of memory or
 * beyond MAX_STREAMS.  Called with mu held. */
static struct slot *slot_get(struct sink_http *h, const char *name)
{
    struct slot *sl = slot_find(h, name);
    if (sl || h->n_slots >= MAX_STREAMS)
        return sl;
    if (h->n_slots == h->cap_slots) {
        unsigned cap = h->cap_slots ? 2 * h->cap_slots : 16;
        struct slot **s = realloc(h->slots, cap * sizeof *s);
        if (!s)
            return NULL;
        h->slots = s;
        h->cap_slots = cap;
    }
    sl = calloc(1, sizeof *sl);
    if (!sl)
        return NULL;
    sl->name = strdup(name);
    sl->hist_cap = h->history;
    sl->hist = calloc(sl->hist_cap, sizeof *sl->hist);
    if (!sl->name || !sl->hist) {
        slot_free(sl);
        return NULL;
    }
    sl->anomaly = sl->threshold = sl->rms = sl->peak = NAN;
    sl->sev_velocity = NAN;
    h->slots[h->n_slots++] = sl;
    return sl;
}

static void slot_state(struct slot *sl, const char *state)
{
    if (!state)
        return;
    copy_str(sl->state, sizeof sl->state, state);
    for (unsigned i = 0; i < sl->n_states; i++)
        if (!strcmp(sl->states[i], sl->state))
            return;
    /* Remember it for trident_state's zeros; beyond MAX_STATES the oldest
     * goes (a gauge of 0 for a state long gone says little). */
    if (sl->n_states == MAX_STATES) {
        memmove(sl->states[0], sl->states[1], (MAX_STATES - 1) * sizeof sl->states[0]);
        sl->n_states--;
    }
    copy_str(sl->states[sl->n_states++], SHORT, sl->state);
}

static void slot_count_label(struct slot *sl, const char *label)
{
    for (unsigned i = 0; i < sl->n_labels; i++)
        if (!strcmp(sl->labels[i].name, label)) {
            sl->labels[i].n++;
            return;
        }
    if (sl->n_labels < MAX_LABELS) {
        copy_str(sl->labels[sl->n_labels].name, SHORT, label);
        sl->labels[sl->n_labels++].n = 1;
    }
}

static float fl(double v)
{
    return (float)v;
}

/* Fold a window into the point of the current second. */
static void slot_history(struct slot *sl, const struct result *r, double wall)
{
    double sec = floor(wall);
    struct point *p = sl->hist_n ? &sl->hist[(sl->hist_head + sl->hist_cap - 1) % sl->hist_cap]
                                 : NULL;
    if (!p || p->t != sec) {
        p = &sl->hist[sl->hist_head];
        sl->hist_head = (sl->hist_head + 1) % sl->hist_cap;
        if (sl->hist_n < sl->hist_cap)
            sl->hist_n++;
        memset(p, 0, sizeof *p);
        p->t = sec;
        p->anomaly = p->threshold = p->rms = p->peak = NAN;
    }
    p->n++;
    float k = 1.0f / (float)p->n;      /* running mean: no sum to keep */
    for (int i = 0; i < HIST_CLASSES; i++) {
        float v = r->probs && i < r->n_classes ? r->probs[i] : 0.0f;
        p->p[i] += (v - p->p[i]) * k;
    }
#define MEAN(field, v)                                                        \
    do {                                                                      \
        float v_ = fl(v);                                                     \
        if (isfinite(v_))                                                     \
            p->field = isfinite(p->field) ? p->field + (v_ - p->field) * k : v_; \
    } while (0)
    if (r->has_detector) {
        MEAN(anomaly, r->anomaly);
        MEAN(threshold, r->threshold);
    }
    MEAN(rms, r->rms);
#undef MEAN
    if (isfinite(r->peak) && (!isfinite(p->peak) || fl(r->peak) > p->peak))
        p->peak = fl(r->peak);
}

static int http_result(void *s, const struct result *r)
{
    struct sink_http *h = s;
    double wall = wall_now();

    pthread_mutex_lock(&h->mu);
    struct slot *sl = slot_get(h, r->stream);
    if (!sl) {
        pthread_mutex_unlock(&h->mu);
        atomic_fetch_add(&h->lost, 1);
        return 0;
    }
    sl->has_result = true;
    sl->last_wall = wall;
    sl->seq = r->seq;
    sl->t = r->t;
    sl->cls = r->cls;
    copy_str(sl->label, sizeof sl->label, r->label);
    copy_str(sl->quality, sizeof sl->quality, r->quality);
    sl->score = r->score;
    sl->n_probs = r->probs && r->n_classes > 0
                  ? (unsigned)(r->n_classes < MAX_PROBS ? r->n_classes : MAX_PROBS) : 0;
    if (sl->n_probs)
        memcpy(sl->probs, r->probs, sl->n_probs * sizeof *sl->probs);
    sl->has_detector = r->has_detector;
    sl->anomaly = r->has_detector ? r->anomaly : NAN;
    sl->threshold = r->has_detector ? r->threshold : NAN;
    sl->rms = r->rms;
    sl->peak = r->peak;
    sl->latency_us = r->latency_us;
    slot_state(sl, r->state);
    if (r->label)
        slot_count_label(sl, r->label);
    sl->results++;
    slot_history(sl, r, wall);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static int http_event(void *s, const struct sink_event *e)
{
    struct sink_http *h = s;
    double wall = wall_now();

    pthread_mutex_lock(&h->mu);
    struct event_rec *ev = &h->ev[h->ev_head];
    h->ev_head = (h->ev_head + 1) % EVENTS_KEPT;
    if (h->ev_n < EVENTS_KEPT)
        h->ev_n++;
    copy_str(ev->stream, sizeof ev->stream, e->stream);
    copy_str(ev->from, sizeof ev->from, e->from);
    copy_str(ev->to, sizeof ev->to, e->to);
    ev->seq = e->seq;
    ev->at_seq = e->at_seq;
    ev->t = e->t;
    ev->wall = wall;
    ev->agree = e->agree;
    ev->windows = e->windows;
    ev->score = e->score;
    struct slot *sl = slot_get(h, e->stream);
    if (sl) {
        slot_state(sl, e->to);
        sl->has_since = true;
        sl->since_seq = e->seq;
        sl->since_t = e->t;
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static int http_severity(void *s, const struct sink_severity *e)
{
    struct sink_http *h = s;

    pthread_mutex_lock(&h->mu);
    struct slot *sl = slot_get(h, e->stream);
    if (sl) {
        sl->has_severity = true;
        sl->sev_velocity = e->velocity_mm_s;
        copy_str(sl->sev_zone, sizeof sl->sev_zone, e->zone);
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

/* A new model (or the first): copy its names; only when the digest changes. */
static void board_model(struct sink_http *h, const struct sink_stats *st)
{
    if (!st->model || !strcmp(h->model, st->model))
        return;
    char **cl = st->n_classes ? calloc(st->n_classes, sizeof *cl) : NULL;
    char *path = st->model_path ? strdup(st->model_path) : NULL;
    bool ok = (!st->n_classes || cl) && (!st->model_path || path);
    for (unsigned i = 0; ok && i < st->n_classes; i++)
        ok = (cl[i] = strdup(st->classes[i] ? st->classes[i] : "")) != NULL;
    if (!ok) {                  /* keep the old names; try again next second */
        for (unsigned i = 0; cl && i < st->n_classes; i++)
            free(cl[i]);
        free(cl);
        free(path);
        return;
    }
    for (unsigned i = 0; i < h->n_classes; i++)
        free(h->classes[i]);
    free(h->classes);
    free(h->model_path);
    h->classes = cl;
    h->n_classes = st->n_classes;
    h->model_path = path;
    copy_str(h->model, sizeof h->model, st->model);
    copy_str(h->model_kind, sizeof h->model_kind, st->model_kind);
}

static int http_stats(void *s, const struct sink_stats *st, int kind)
{
    struct sink_http *h = s;

    if (kind == SINK_STATS_STATE)
        return 0;
    pthread_mutex_lock(&h->mu);
    h->snap_gen++;
    h->have_snap = true;
    h->snap_t = st->t;
    h->snap_uptime = st->uptime;
    h->queue_depth = st->queue_depth;
    h->queue_slots = st->queue_slots;
    h->workers = st->workers;
    board_model(h, st);
    h->n_acc = 0;
    for (unsigned i = 0; i < st->n_sinks && h->n_acc < MAX_SINKS; i++) {
        struct account *a = &h->acc[h->n_acc++];
        copy_str(a->name, sizeof a->name, st->sinks[i].name);
        a->queued = st->sinks[i].queued;
        a->dropped = st->sinks[i].dropped;
        a->lost = st->sinks[i].lost;
    }
    for (unsigned i = 0; i < st->n_streams; i++) {
        const struct sink_stream_stats *ss = &st->streams[i];
        struct slot *sl = slot_get(h, ss->stream);
        if (!sl)
            continue;
        sl->snap_gen = h->snap_gen;
        sl->has_snap = true;
        sl->windows = ss->windows;
        sl->gaps = ss->gaps;
        sl->samples = ss->samples;
        sl->dropped = ss->dropped;
        sl->xruns = ss->xruns;
        sl->skipped = ss->skipped;
        memcpy(sl->quality_n, ss->quality, sizeof sl->quality_n);
        sl->unknown = ss->unknown;
        sl->anomalous = ss->anomalous;
        sl->events = ss->events;
        sl->eof = ss->eof;
        sl->down = ss->down;
        if (ss->state) {
            slot_state(sl, ss->state);
            sl->has_since = true;
            sl->since_seq = ss->state_seq;
            sl->since_t = ss->state_t;
        }
        sl->has_severity = ss->has_severity;
        if (ss->has_severity) {
            sl->sev_velocity = ss->sev_velocity;
            copy_str(sl->sev_zone, sizeof sl->sev_zone, ss->sev_zone);
        }
        sl->has_latency = ss->latency != NULL;
        if (ss->latency)
            sl->latency = *ss->latency;
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static uint64_t http_lost(void *s)
{
    struct sink_http *h = s;
    return atomic_load(&h->lost);
}

/* Is the slot shown?  Streams of the last snapshot, and any with a result
 * since (a reload's new stream before its first snapshot); a stream that a
 * reload removed disappears with the next snapshot. */
static bool slot_live(const struct sink_http *h, const struct slot *sl)
{
    if (!h->have_snap)
        return true;
    return sl->snap_gen == h->snap_gen || (sl->has_result && sl->last_wall >= h->snap_t);
}

/* ---- a growing text buffer for the renderers ---------------------------- */

struct sbuf {
    char  *p;
    size_t len, cap;
    bool   oom;
};

static void sb_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    if (b->oom)
        return;
    for (;;) {
        va_list aq;
        va_copy(aq, ap);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, aq);
        va_end(aq);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 16384;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* A label value of the exposition format: \\, \" and \n escaped. */
static void sb_label(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_printf(b, "\\\\");
        else if (*s == '"')
            sb_printf(b, "\\\"");
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
}

/* A sample value: Go's ParseFloat spellings for the special values. */
static void sb_value(struct sbuf *b, double v)
{
    if (isnan(v))
        sb_printf(b, "NaN");
    else if (isinf(v))
        sb_printf(b, v > 0 ? "+Inf" : "-Inf");
    else
        sb_printf(b, "%.17g", v);
}

static void sb_family(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{stream="S"[,k="v"]} value */
static void sb_stream_sample(struct sbuf *b, const char *name, const char *stream,
                             const char *k, const char *v, double value)
{
    sb_printf(b, "%s{stream=\"", name);
    sb_label(b, stream);
    if (k) {
        sb_printf(b, "\",%s=\"", k);
        sb_label(b, v);
    }
    sb_printf(b, "\"} ");
    sb_value(b, value);
    sb_printf(b, "\n");
}

/* Upper bound (µs) of the latency histogram's bucket i (stats.c). */
static uint64_t hist_top(unsigned i)
{
    if (i < 16)
        return i;
    unsigned e = (i - 16u) / 8u + 4u, sub = (i - 16u) % 8u;
    if (e == 63 && sub == 7)
        return UINT64_MAX;
    return ((uint64_t)(8u + sub + 1u) << (e - 3u)) - 1u;
}

/* One stream's trident_latency_seconds.  A bucket of the log-linear
 * histogram is counted under the smallest `le` at or above its upper bound,
 * so a count under `le` is never a window slower than `le`.  The sum is not
 * kept by the histogram: estimated from the buckets' midpoints. */
static void metrics_latency(struct sbuf *b, const struct slot *sl)
{
    uint64_t cum[N_LE] = { 0 };
    double sum = 0;
    for (unsigned i = 0; i < STATS_BUCKETS; i++) {
        uint64_t n = sl->latency.b[i];
        if (!n)
            continue;
        uint64_t top = hist_top(i);
        uint64_t lo = i == 0 ? 0 : hist_top(i - 1) + 1;
        double mid = ((double)lo + (double)(top < sl->latency.max ? top : sl->latency.max)) / 2;
        sum += (double)n * mid * 1e-6;
        for (unsigned j = 0; j < N_LE; j++)
            if ((double)top <= le_bounds[j] * 1e6) {
                cum[j] += n;
                break;
            }
    }
    uint64_t run = 0;
    for (unsigned j = 0; j < N_LE; j++) {
        run += cum[j];
        char le[32];
        snprintf(le, sizeof le, "%g", le_bounds[j]);
        sb_stream_sample(b, "trident_latency_seconds_bucket", sl->name, "le", le, (double)run);
    }
    sb_stream_sample(b, "trident_latency_seconds_bucket", sl->name, "le", "+Inf",
                     (double)sl->latency.n);
    sb_stream_sample(b, "trident_latency_seconds_sum", sl->name, NULL, NULL, sum);
    sb_stream_sample(b, "trident_latency_seconds_count", sl->name, NULL, NULL,
                     (double)sl->latency.n);
}

static const char *class_name(const struct sink_http *h, unsigned i, char *buf, size_t n)
{
    if (i < h->n_classes)
        return h->classes[i];
    snprintf(buf, n, "%u", i);
    return buf;
}

/* A per-stream family: HELP/TYPE once, then one sample per live slot for
 * which `want` holds.  The macro keeps the 25 families below one line each. */
#define PER_STREAM(fam, type, help, want, value)                             \
    do {                                                                      \
        sb_family(b, fam, type, help);                                       \
        for (unsigned i_ = 0; i_ < h->n_slots; i_++) {                        \
            const struct slot *sl = h->slots[i_];                             \
            if (slot_live(h, sl) && (want))                                   \
                sb_stream_sample(b, fam, sl->name, NULL, NULL, (double)(value)); \
        }                                                                     \
    } while (0)

static void render_metrics(struct sink_http *h, struct sbuf *b)
{
    double now = wall_now();

    sb_family(b, "trident_build_info", "gauge", "The running tridentd's version.");
    sb_printf(b, "trident_build_info{version=\"");
    sb_label(b, TRIDENT_VERSION);
    sb_printf(b, "\"} 1\n");
    if (h->model[0]) {
        sb_family(b, "trident_model_info", "gauge", "The model in use: its digest, kind and file.");
        sb_printf(b, "trident_model_info{digest=\"");
        sb_label(b, h->model);
        sb_printf(b, "\",kind=\"");
        sb_label(b, h->model_kind);
        sb_printf(b, "\",path=\"");
        sb_label(b, h->model_path ? h->model_path : "");
        sb_printf(b, "\"} 1\n");
    }
    sb_family(b, "trident_uptime_seconds", "gauge", "Seconds since the publisher started.");
    sb_printf(b, "trident_uptime_seconds ");
    sb_value(b, h->have_snap ? h->snap_uptime : now - h->start_wall);
    sb_printf(b, "\n");
    if (h->have_snap) {
        sb_family(b, "trident_queue_depth", "gauge", "Windows waiting for a worker.");
        sb_printf(b, "trident_queue_depth %" PRIu64 "\n", h->queue_depth);
        sb_family(b, "trident_workers", "gauge", "Classification worker threads.");
        sb_printf(b, "trident_workers %u\n", h->workers);
    }

    PER_STREAM("trident_windows_total", "counter", "Windows classified.",
               sl->has_snap, sl->windows);
    PER_STREAM("trident_samples_total", "counter", "Samples read from the source.",
               sl->has_snap, sl->samples);
    PER_STREAM("trident_dropped_samples_total", "counter", "Samples lost before windowing.",
               sl->has_snap, sl->dropped);
    PER_STREAM("trident_gaps_total", "counter", "Windows that follow a gap in the input.",
               sl->has_snap, sl->gaps);
    PER_STREAM("trident_xruns_total", "counter", "Capture overruns.", sl->has_snap, sl->xruns);
    PER_STREAM("trident_unknown_windows_total", "counter",
               "Windows rejected as unknown (score below the threshold).",
               sl->has_snap, sl->unknown);
    PER_STREAM("trident_anomalous_windows_total", "counter",
               "Windows whose anomaly score was above the threshold.", sl->has_snap, sl->anomalous);
    PER_STREAM("trident_state_changes_total", "counter", "State changes (events) of the stream.",
               sl->has_snap, sl->events);
    PER_STREAM("trident_source_down", "gauge", "1 while the stream's source is down.",
               sl->has_snap, sl->down);

    sb_family(b, "trident_window_quality_total", "counter", "Windows by input quality.");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl) && sl->has_snap)
            for (unsigned q = 0; q < 4; q++)
                sb_stream_sample(b, "trident_window_quality_total", sl->name, "quality",
                                 quality_names[q], (double)sl->quality_n[q]);
    }
    sb_family(b, "trident_label_windows_total", "counter",
              "Windows by label, counted by this sink since it started (windows with no label "
              "are in trident_window_quality_total).");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl))
            for (unsigned k = 0; k < sl->n_labels; k++)
                sb_stream_sample(b, "trident_label_windows_total", sl->name, "label",
                                 sl->labels[k].name, (double)sl->labels[k].n);
    }
    sb_family(b, "trident_state", "gauge",
              "The stream's smoothed state: 1 for the current one, 0 for others seen.");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl))
            for (unsigned k = 0; k < sl->n_states; k++)
                sb_stream_sample(b, "trident_state", sl->name, "state", sl->states[k],
                                 !strcmp(sl->states[k], sl->state));
    }
    sb_family(b, "trident_class_probability", "gauge", "Class probabilities of the last window.");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl) && sl->has_result)
            for (unsigned k = 0; k < sl->n_probs; k++) {
                char nb[16];
                sb_stream_sample(b, "trident_class_probability", sl->name, "class",
                                 class_name(h, k, nb, sizeof nb), sl->probs[k]);
            }
    }
    PER_STREAM("trident_score", "gauge", "Top probability (or score) of the last window.",
               sl->has_result && sl->cls >= 0, sl->score);
    PER_STREAM("trident_anomaly_score", "gauge", "Anomaly score of the last window.",
               sl->has_result && sl->has_detector, sl->anomaly);
    PER_STREAM("trident_anomaly_threshold", "gauge", "Anomaly threshold of the last window.",
               sl->has_result && sl->has_detector, sl->threshold);
    PER_STREAM("trident_signal_rms", "gauge", "RMS of the last raw window (full scale 1).",
               sl->has_result, sl->rms);
    PER_STREAM("trident_signal_peak", "gauge", "Peak of the last raw window (full scale 1).",
               sl->has_result, sl->peak);
    PER_STREAM("trident_severity_velocity_meters_per_second", "gauge",
               "RMS vibration velocity of the last severity block (ISO 10816 band).",
               sl->has_severity && isfinite(sl->sev_velocity), sl->sev_velocity * 1e-3);
    sb_family(b, "trident_severity_zone", "gauge", "ISO 10816 zone of the last severity block.");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl) && sl->has_severity && sl->sev_zone[0])
            sb_stream_sample(b, "trident_severity_zone", sl->name, "zone", sl->sev_zone, 1);
    }

    sb_family(b, "trident_latency_seconds", "histogram",
              "Window latency, from its last sample to its result (sum estimated).");
    for (unsigned i = 0; i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (slot_live(h, sl) && sl->has_latency)
            metrics_latency(b, sl);
    }

    static const char *const acc_names[3] = { "trident_sink_queued_total",
                                              "trident_sink_dropped_total",
                                              "trident_sink_lost_total" };
    static const char *const acc_help[3] = {
        "Messages taken into a queued sink's queue.",
        "Messages that did not fit a queued sink's queue.",
        "Messages a queued sink could not deliver." };
    for (unsigned f = 0; f < 3; f++) {
        sb_family(b, acc_names[f], "counter", acc_help[f]);
        for (unsigned i = 0; i < h->n_acc; i++) {
            const struct account *a = &h->acc[i];
            sb_printf(b, "%s{sink=\"", acc_names[f]);
            sb_label(b, a->name);
            sb_printf(b, "\"} %" PRIu64 "\n", f == 0 ? a->queued : f == 1 ? a->dropped : a->lost);
        }
    }

    sb_family(b, "trident_http_requests_total", "counter", "HTTP requests by path and status.");
    for (unsigned p = 0; p < N_PATHS; p++)
        for (unsigned c = 0; c < N_CODES; c++)
            if (h->requests[p][c])
                sb_printf(b, "trident_http_requests_total{path=\"%s\",code=\"%u\"} %" PRIu64 "\n",
                          path_names[p], codes[c], h->requests[p][c]);
    sb_family(b, "trident_http_connections_total", "counter", "HTTP connections accepted.");
    sb_printf(b, "trident_http_connections_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&h->connections));
    sb_family(b, "trident_http_responses_failed_total", "counter",
              "HTTP responses not completed (client timed out, went away or failed).");
    sb_printf(b, "trident_http_responses_failed_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&h->failed));
}
#undef PER_STREAM

/* ---- JSON ---------------------------------------------------------------- */

/* A number, or null for NaN and infinities (JSON has no spelling for them). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jstr(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *status_stream(const struct sink_http *h, const struct slot *sl)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "stream", json_string(sl->name));
    json_object_set_new(o, "state", jstr(sl->state));
    json_object_set_new(o, "since", sl->has_since
                        ? json_pack("{s:I,s:o}", "seq", (json_int_t)sl->since_seq,
                                    "t", jnum(sl->since_t))
                        : json_null());
    json_object_set_new(o, "seq", sl->has_result ? json_integer((json_int_t)sl->seq) : json_null());
    json_object_set_new(o, "t", sl->has_result ? jnum(sl->t) : json_null());
    json_object_set_new(o, "label", sl->has_result ? jstr(sl->label) : json_null());
    json_object_set_new(o, "score", sl->has_result && sl->cls >= 0 ? jnum(sl->score) : json_null());
    json_t *probs = json_object();
    for (unsigned k = 0; probs && k < sl->n_probs; k++) {
        char nb[16];
        json_object_set_new(probs, class_name(h, k, nb, sizeof nb), jnum(sl->probs[k]));
    }
    json_object_set_new(o, "probs", probs ? probs : json_null());
    json_object_set_new(o, "anomaly", jnum(sl->anomaly));
    json_object_set_new(o, "threshold", jnum(sl->threshold));
    json_object_set_new(o, "quality", sl->has_result ? jstr(sl->quality) : json_null());
    json_object_set_new(o, "rms", jnum(sl->rms));
    json_object_set_new(o, "peak", jnum(sl->peak));
    json_object_set_new(o, "latency_us", sl->has_result ? json_integer(sl->latency_us)
                                                          : json_null());
    json_object_set_new(o, "windows", json_integer((json_int_t)sl->windows));
    json_object_set_new(o, "samples", json_integer((json_int_t)sl->samples));
    json_object_set_new(o, "dropped", json_integer((json_int_t)sl->dropped));
    json_object_set_new(o, "gaps", json_integer((json_int_t)sl->gaps));
    json_object_set_new(o, "xruns", json_integer((json_int_t)sl->xruns));
    json_object_set_new(o, "events", json_integer((json_int_t)sl->events));
    json_object_set_new(o, "eof", json_boolean(sl->eof));
    json_object_set_new(o, "down", json_boolean(sl->down));
    if (sl->has_severity)
        json_object_set_new(o, "severity", json_pack("{s:o,s:o}",
                            "velocity_mm_s", jnum(sl->sev_velocity), "zone", jstr(sl->sev_zone)));
    return o;
}

static json_t *event_json(const struct event_rec *ev)
{
    return json_pack("{s:s,s:o,s:s,s:I,s:o,s:I,s:i,s:i,s:o,s:o}",
                     "stream", ev->stream, "from", jstr(ev->from), "to", ev->to,
                     "seq", (json_int_t)ev->seq, "t", jnum(ev->t),
                     "at_seq", (json_int_t)ev->at_seq, "agree", (int)ev->agree,
                     "windows", (int)ev->windows, "score", jnum(ev->score),
                     "received", jnum(ev->wall));
}

static json_t *model_json(const struct sink_http *h)
{
    if (!h->model[0])
        return json_null();
    json_t *cl = json_array();
    for (unsigned i = 0; cl && i < h->n_classes; i++)
        json_array_append_new(cl, json_string(h->classes[i]));
    return json_pack("{s:s,s:o,s:o,s:o}", "digest", h->model, "kind", jstr(h->model_kind),
                     "path", jstr(h->model_path), "classes", cl ? cl : json_null());
}

static json_t *render_status(struct sink_http *h)
{
    double now = wall_now();
    json_t *streams = json_array(), *events = json_array();
    for (unsigned i = 0; streams && i < h->n_slots; i++)
        if (slot_live(h, h->slots[i]))
            json_array_append_new(streams, status_stream(h, h->slots[i]));
    for (unsigned i = 0; events && i < h->ev_n; i++)       /* oldest first */
        json_array_append_new(events,
                              event_json(&h->ev[(h->ev_head + EVENTS_KEPT - h->ev_n + i) % EVENTS_KEPT]));
    json_t *sinks = json_array();
    for (unsigned i = 0; sinks && i < h->n_acc; i++)
        json_array_append_new(sinks, json_pack("{s:s,s:I,s:I,s:I}", "name", h->acc[i].name,
                              "queued", (json_int_t)h->acc[i].queued,
                              "dropped", (json_int_t)h->acc[i].dropped,
                              "lost", (json_int_t)h->acc[i].lost));
    return json_pack("{s:o,s:o,s:s,s:o,s:o,s:o,s:o}",
                     "t", jnum(now),
                     "uptime", jnum(h->have_snap ? h->snap_uptime : now - h->start_wall),
                     "version", TRIDENT_VERSION,
                     "model", model_json(h),
                     "streams", streams ? streams : json_null(),
                     "events", events ? events : json_null(),
                     "sinks", sinks ? sinks : json_null());
}

/* /api/history: per stream, one point per second of the last http.history
 * seconds: [t, rms, peak, anomaly, threshold, p0, p1, ...] (null: none). */
static json_t *render_history(struct sink_http *h)
{
    double now = floor(wall_now());
    json_t *streams = json_array();
    for (unsigned i = 0; streams && i < h->n_slots; i++) {
        const struct slot *sl = h->slots[i];
        if (!slot_live(h, sl))
            continue;
        unsigned nc = sl->n_probs < HIST_CLASSES ? sl->n_probs : HIST_CLASSES;
        json_t *pts = json_array();
        for (unsigned k = 0; pts && k < sl->hist_n; k++) {
            const struct point *p = &sl->hist[(sl->hist_head + sl->hist_cap - sl->hist_n + k)
                                              % sl->hist_cap];
            if (p->t <= now - h->history)
                continue;
            json_t *a = json_pack("[f,o,o,o,o]", p->t, jnum(p->rms), jnum(p->peak),
                                  jnum(p->anomaly), jnum(p->threshold));
            for (unsigned c = 0; a && c < nc; c++)
                json_array_append_new(a, json_real(round(p->p[c] * 1e4) / 1e4));
            json_array_append_new(pts, a);
        }
        json_array_append_new(streams, json_pack("{s:s,s:b,s:o}", "stream", sl->name,
                              "detector", sl->has_detector, "points", pts ? pts : json_null()));
    }
    json_t *cl = json_array();
    for (unsigned i = 0; cl && i < h->n_classes && i < HIST_CLASSES; i++)
        json_array_append_new(cl, json_string(h->classes[i]));
    return json_pack("{s:f,s:i,s:o,s:o,s:o,s:o}", "t", now, "seconds", (int)h->history,
                     "kind", jstr(h->model_kind),
                     "columns", json_pack("[s,s,s,s,s]", "t", "rms", "peak", "anomaly", "threshold"),
                     "classes", cl ? cl : json_null(), "streams", streams ? streams : json_null());
}

/* ---- requests (libmicrohttpd's thread) ---------------------------------- */

/* Constant time in the token's content: a wrong guess learns nothing from
 * how long the answer took (the length still shows; it is not the secret). */
static bool token_equal(const char *given, size_t glen, const char *token, size_t tlen)
{
    unsigned char d = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        d |= (unsigned char)(given[i < glen ? i : 0] ^ token[i]);
    return glen > 0 && d == 0;
}

static bool authorized(const struct sink_http *h, struct MHD_Connection *conn, bool page)
{
    if (!h->token)
        return true;
    const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a && !strncasecmp(a, "Bearer ", 7)) {
        a += 7;
        while (*a == ' ')
            a++;
        if (token_equal(a, strlen(a), h->token, h->token_len))
            return true;
    }
    if (page) {
        const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
        if (q && token_equal(q, strlen(q), h->token, h->token_len))
            return true;
    }
    return false;
}

static void count_request(struct sink_http *h, unsigned path, unsigned code)
{
    for (unsigned c = 0; c < N_CODES; c++)
        if (codes[c] == code) {
            pthread_mutex_lock(&h->mu);
            h->requests[path][c]++;
            pthread_mutex_unlock(&h->mu);
            return;
        }
}

static enum MHD_Result reply(struct sink_http *h, struct MHD_Connection *conn, unsigned path,
                             unsigned code, const char *type, void *body, size_t len,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (path == P_PAGE && code == 200) {
        /* The page's own script and style only; data from this origin only. */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (code == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"trident\"");
    if (code == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    count_request(h, path, code);
    return ret;
}

static enum MHD_Result reply_text(struct sink_http *h, struct MHD_Connection *conn, unsigned path,
                                  unsigned code, const char *text)
{
    return reply(h, conn, path, code, "text/plain; charset=utf-8", (void *)text, strlen(text),
                 MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result reply_json(struct sink_http *h, struct MHD_Connection *conn, unsigned path,
                                  json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return reply_text(h, conn, path, 500, "out of memory\n");
    return reply(h, conn, path, 200, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **req)
{
    struct sink_http *h = cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;

    unsigned path = !strcmp(url, "/") || !strcmp(url, "/index.html") ? P_PAGE
                  : !strcmp(url, "/metrics")     ? P_METRICS
                  : !strcmp(url, "/api/status")  ? P_STATUS
                  : !strcmp(url, "/api/history") ? P_HISTORY : P_OTHER;

    /* Answered at the first call, before any body: nothing is read from a
     * request that is refused. */
    if (!authorized(h, conn, path == P_PAGE))
        return reply_text(h, conn, path, 401, "a bearer token is required\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(h, conn, path, 405, "only GET and HEAD\n");

    switch (path) {
    case P_PAGE:
        return reply(h, conn, path, 200, "text/html; charset=utf-8", (void *)sink_http_page,
                     sink_http_page_len, MHD_RESPMEM_PERSISTENT);
    case P_METRICS: {
        struct sbuf b = { 0 };
        pthread_mutex_lock(&h->mu);
        render_metrics(h, &b);
        pthread_mutex_unlock(&h->mu);
        if (b.oom) {
            free(b.p);
            return reply_text(h, conn, path, 500, "out of memory\n");
        }
        return reply(h, conn, path, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
                     MHD_RESPMEM_MUST_FREE);
    }
    case P_STATUS:
    case P_HISTORY: {
        pthread_mutex_lock(&h->mu);
        json_t *j = path == P_STATUS ? render_status(h) : render_history(h);
        pthread_mutex_unlock(&h->mu);
        return reply_json(h, conn, path, j);       /* serialised outside the lock */
    }
    default:
        if (!strcmp(url, "/favicon.ico"))
            return reply(h, conn, path, 204, "image/x-icon", (void *)"", 0, MHD_RESPMEM_PERSISTENT);
        return reply_text(h, conn, path, 404, "not found: try /, /metrics, /api/status, /api/history\n");
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req,
                         enum MHD_RequestTerminationCode toe)
{
    struct sink_http *h = cls;
    (void)conn;
    (void)req;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
        atomic_fetch_add(&h->failed, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **sock,
                          enum MHD_ConnectionNotificationCode what)
{
    struct sink_http *h = cls;
    (void)conn;
    (void)sock;
    if (what == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&h->connections, 1);
}

/* libmicrohttpd's own complaints (a full connection table, a client's
 * malformed request): debug only, a client must not be able to fill the log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (LOG_DEBUG <= log_max_level) {
        char m[256];
        vsnprintf(m, sizeof m, fmt, ap);
        m[strcspn(m, "\n")] = 0;
        log_debug("http: %s", m);
    }
}

/* ---- create / destroy ----------------------------------------------------- */

static int read_token(struct sink_http *h, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "http.token_file: cannot read %s: %s", path, strerror(e));
        return -e;
    }
    char line[TOKEN_MAX + 2];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = got ? strcspn(line, "\r\n") : 0;
    line[n] = 0;
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f) {
            snprintf(err, errlen, "http.token_file: %s: the token must be printable ASCII "
                                  "without spaces", path);
            return -EINVAL;
        }
    if (n < TOKEN_MIN || n > TOKEN_MAX) {
        snprintf(err, errlen, "http.token_file: %s: the first line must hold a token of %d to "
                              "%d characters", path, TOKEN_MIN, TOKEN_MAX);
        return -EINVAL;
    }
    h->token = strdup(line);
    explicit_bzero(line, sizeof line);
    if (!h->token) {
        snprintf(err, errlen, "http.token_file: out of memory");
        return -ENOMEM;
    }
    h->token_len = n;
    return 0;
}

/* Bind a listening socket to exactly http.listen (port 0: any; tests). */
static int listen_on(const char *addr, int *fd_out, bool *v6, unsigned *port_out,
                     char *shown, size_t shownlen, char *err, size_t errlen)
{
    char host[64], msg[160];
    unsigned port;
    bool loop;
    int r = cfg_split_hostport(addr, host, sizeof host, &port, &loop, msg, sizeof msg);
    if (r < 0) {
        /* cfg_validate refuses port 0 in a config; tests use it for a free one. */
        size_t n = strlen(addr);
        char one[128];
        if (n < 2 || n >= sizeof one || strcmp(addr + n - 2, ":0")) {
            snprintf(err, errlen, "http.listen: %s", msg);
            return r;
        }
        snprintf(one, sizeof one, "%.*s:1", (int)(n - 2), addr);
        r = cfg_split_hostport(one, host, sizeof host, &port, &loop, msg, sizeof msg);
        if (r < 0) {
            snprintf(err, errlen, "http.listen: %s", msg);
            return r;
        }
        port = 0;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
        *v6 = false;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
        *v6 = true;
    } else {
        snprintf(err, errlen, "http.listen: \"%s\": not a numeric address", host);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "http.listen: cannot listen on %s: %s", addr, strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (*v6)            /* [::1] means ::1, never also 127.0.0.1 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "http.listen: cannot listen on %s: %s", addr, strerror(e));
        return -e;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(*v6 ? a6->sin6_port : a4->sin_port);
    snprintf(shown, shownlen, *v6 ? "[%s]:%u" : "%s:%u", host, *port_out);
    *fd_out = fd;
    return 0;
}

static void http_destroy(void *s)
{
    struct sink_http *h = s;
    if (!h)
        return;
    if (h->mhd)
        MHD_stop_daemon(h->mhd);        /* joins its thread, closes the socket */
    for (unsigned i = 0; i < h->n_slots; i++)
        slot_free(h->slots[i]);
    free(h->slots);
    for (unsigned i = 0; i < h->n_classes; i++)
        free(h->classes[i]);
    free(h->classes);
    free(h->model_path);
    if (h->token) {
        explicit_bzero(h->token, h->token_len);
        free(h->token);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int http_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    struct sink_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "http: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->history = c->http_history >= 10 ? c->http_history : 300;
    h->start_wall = wall_now();
    int r;
    if (c->http_token_file && (r = read_token(h, c->http_token_file, err, errlen)) < 0) {
        http_destroy(h);
        return r;
    }
    int fd = -1;
    bool v6;
    char shown[96];
    if ((r = listen_on(c->http_listen, &fd, &v6, &h->port, shown, sizeof shown, err, errlen)) < 0) {
        http_destroy(h);
        return r;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                              MHD_OPTION_LISTEN_SOCKET, fd,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONN_PER_IP,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                              MHD_OPTION_END);
    if (!h->mhd) {
        close(fd);
        snprintf(err, errlen, "http.listen: cannot listen on %s: libmicrohttpd did not start",
                 c->http_listen);
        http_destroy(h);
        return -EIO;
    }
    log_info("http: serving on http://%s/%s", shown, h->token ? " (bearer token required)" : "");
    *state = h;
    return 0;
}

static bool http_enabled(const struct cfg *c)
{
    return c->http_listen != NULL;
}

unsigned sink_http_port(void *s)
{
    return ((struct sink_http *)s)->port;
}

const struct sink_ops sink_http_ops = {
    .name     = "http",
    .async    = true,
    .enabled  = http_enabled,
    .create   = http_create,
    .result   = http_result,
    .event    = http_event,
    .severity = http_severity,
    .stats    = http_stats,
    .lost     = http_lost,
    .destroy  = http_destroy,
};
