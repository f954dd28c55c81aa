/* SPDX-License-Identifier: Apache-2.0 */
/* sink.h — where results leave trident: the plug-in edge of the publisher.
 *
 * The publisher thread (pipeline.c) hands every message to a sink set as a
 * structure, never as rendered text; each sink renders it its own way:
 *
 *   zmq      the XPUB socket, one JSON object per message (publish_zmq.c)
 *   stdout   the same JSON, one line each (journal under systemd)
 *   results  JSON Lines files with size-based rotation (sink_results.c)
 *   http     /metrics, /api/status and a live page (sink_http.c)
 *   mqtt     states, events and Home Assistant discovery (sink_mqtt.c)
 *
 * A sink is one file that defines a `const struct sink_ops` and one line in
 * sink.c's table.  Its settings are the keys of its own group in the config
 * file ("http.listen", "mqtt.broker", ...): they live in config.c's key
 * table like every key, so that --help, the example file and validation
 * know them, and reach the sink as `const struct cfg *`.  `enabled` says
 * from the config whether the sink runs at all.
 *
 * Two kinds of sink:
 *   - direct (async = false): called on the publisher thread.  zmq and
 *     stdout are: their own queue (the socket's hwm, the pipe) is the bound,
 *     and --replay's back-pressure (publish.nodrop) must reach the pipeline.
 *   - queued (async = true): sink.c gives each its own thread and a bounded
 *     queue (a byte ring preallocated at start; no allocation per message).
 *     The publisher copies each message in and never waits: a message that
 *     does not fit is dropped and counted ("sinks" in _stats, and the
 *     sink's own /metrics).  So a stalled MQTT broker or HTTP client never
 *     delays classification or ZeroMQ.  The sink's callbacks then run on its
 *     thread, one at a time, with structures that live for the call only.
 *
 * Every pointer in a message is valid only during the call.
 */
#ifndef TRIDENT_SINK_H
#define TRIDENT_SINK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct cfg;

/* One classification (docs/DESIGN.md "Messages": the stream's topic). */
struct result {
    const char   *stream;
    uint64_t      seq;
    uint64_t      sample;
    double        t;            /* Unix time of the window's first sample */
    int           cls;          /* -1: no class (quality not ok): class, label null */
    const char   *label;        /* NULL: null */
    const char   *state;        /* the smoothed state (pipeline.c "States"); NULL: null */
    float         score;
    const float  *probs;        /* n_classes values; NULL when there are none */
    const float  *logits;       /* n_classes values; NULL when there are none */
    int           n_classes;
    const char   *quality;      /* "ok", "no_signal", "clipped", "nonfinite" */
    double        rms, peak, crest, kurtosis;   /* of the raw window (NaN: null) */
    bool          has_detector; /* anomaly and threshold are given */
    double        anomaly, threshold;
    bool          gap;
    int64_t       latency_us;
    const char   *model;        /* 12 hex digits */
};

/* A state change of one stream ("_events"). */
struct sink_event {
    const char *stream;
    const char *from;           /* NULL: the first state */
    const char *to;
    uint64_t    seq, sample;    /* the first window of the new state */
    double      t;              /* its time (NaN: null) */
    uint64_t    at_seq;         /* the window that made the change */
    unsigned    agree, windows; /* votes for `to` among the last `windows` */
    double      score;          /* mean top probability of those votes (NaN: none) */
    const char *model;
};

#define SINK_NDEFECT 4          /* ftf, bpfo, bpfi, bsf */

/* A vibration-severity estimate ("_severity"; dsp/severity.h). */
struct sink_severity {
    const char *stream;
    double      t, seconds;     /* the block's first sample and its length */
    uint64_t    sample;
    double      velocity_mm_s;  /* NaN: null */
    const char *zone;           /* "A".."D", NULL: null */
    double      band_hz[2];
    double      bounds_mm_s[3];
    bool        has_defects;
    double      defect_hz[SINK_NDEFECT], defect_db[SINK_NDEFECT]; /* db NaN: null */
};

/* One stream in a statistics snapshot.  Counters are totals since start (a
 * stream added by a reload starts at 0). */
struct sink_stream_stats {
    const char *stream;
    uint64_t    windows, gaps, samples, dropped, xruns, span, skipped, tail, backlog;
    bool        resampling;
    uint64_t    resampled;
    uint64_t    quality[4];     /* ok, no_signal, clipped, nonfinite */
    uint64_t    unknown, anomalous;
    const char *state;          /* NULL: none yet */
    uint64_t    state_seq, state_sample;   /* since (when state != NULL) */
    double      state_t;
    uint64_t    events;
    bool        has_severity;
    uint64_t    sev_blocks, sev_dropped;
    double      sev_velocity;   /* the last one (NaN: none) */
    const char *sev_zone;
    bool        has_record;     /* record = { ... } (daemon/record.h) */
    uint64_t    rec_files, rec_recorded, rec_lost, rec_unrecorded, rec_bytes;
    bool        rec_stopped;
    bool        has_keep;       /* keep = { ... } */
    uint64_t    keep_kept, keep_rate_limited, keep_capped, keep_full, keep_failed,
                keep_bytes;
    bool        eof, down;
    uint64_t    reopens;
    const struct stats_hist *latency;   /* every window's latency, µs, since start */
};

/* What a queued sink has dropped (for _stats and /metrics). */
struct sink_account {
    const char *name;
    uint64_t    queued;         /* messages taken into its queue */
    uint64_t    dropped;        /* messages that did not fit */
    uint64_t    lost;           /* messages the sink could not deliver (ops->lost) */
};

/* The whole daemon at one moment ("_stats", /metrics). */
struct sink_stats {
    double      t;              /* Unix time */
    double      uptime;         /* seconds since the publisher started */
    double      interval;       /* publish.stats_interval */
    bool        final;          /* the last one, after everything was published */
    unsigned    n_streams;
    const struct sink_stream_stats *streams;
    uint64_t    queue_depth;
    unsigned    queue_slots, workers;
    const struct stats_hist *latency_interval;  /* since the previous _stats */
    unsigned    n_sinks;
    const struct sink_account *sinks;
    const char *model;          /* digest of the current model */
    const char *model_path;
    const char *model_kind;     /* "classifier" or "anomaly" */
    unsigned    n_classes;
    const char *const *classes;
};

/* A sink's callbacks.  Each returns 0 or a negative errno (counted by the
 * caller as a publish error; -ECANCELED, a hard stop's give-up, is not). */
struct sink_ops {
    const char *name;           /* table key and config group */
    bool        async;          /* queued: its own thread (see above) */
    int         stats_kinds;    /* SINK_STATS_* wanted; 0: PERIODIC and LIVE when
                                 * queued, PERIODIC and STATE when direct */
    /* Queued sinks: the most messages the queue holds (NULL: the sink's
     * "queue" key, NAME.queue). */
    unsigned (*queue)(const struct cfg *c);
    /* From the config: does this sink run? */
    bool (*enabled)(const struct cfg *c);
    /* Open it (bind, connect, ...): 0, or -errno with one line naming the
     * key or address in err.  Runs on the main thread before the pipeline. */
    int  (*create)(const struct cfg *c, void **state, char *err, size_t errlen);
    int  (*result)(void *s, const struct result *r);
    int  (*event)(void *s, const struct sink_event *e);
    int  (*severity)(void *s, const struct sink_severity *e);   /* may be NULL */
    /* kind: SINK_STATS_PERIODIC (every publish.stats_interval, the "_stats"
     * message), SINK_STATS_LIVE (every second, for sinks that show the
     * present: http, mqtt), SINK_STATS_STATE (the zmq sink's answer to a
     * "_state" subscription: only the states matter) */
    int  (*stats)(void *s, const struct sink_stats *st, int kind);
    /* Direct sinks: does the sink want a SINK_STATS_STATE now?  May be NULL. */
    bool (*want_state)(void *s);
    /* Called on the sink's thread every 100 ms or so when idle (queued
     * sinks: reconnects, housekeeping).  May be NULL. */
    void (*tick)(void *s);
    /* Messages the sink itself could not deliver or dropped (a broker away
     * beyond its own queue, a failed write): read from any thread (keep it
     * an atomic counter).  May be NULL. */
    uint64_t (*lost)(void *s);
    /* Last: after the sink's thread ended (queued sinks) or the publisher
     * stopped (direct ones). */
    void (*destroy)(void *s);
};

enum { SINK_STATS_PERIODIC = 1, SINK_STATS_LIVE = 2, SINK_STATS_STATE = 4 };

extern const struct sink_ops sink_zmq_ops, sink_stdout_ops, sink_results_ops,
                             sink_http_ops, sink_mqtt_ops;

/* Every sink trident knows (sink.c), NULL-terminated. */
extern const struct sink_ops *const sink_table[];
const struct sink_ops *sink_find(const char *name);

typedef struct sink_set sink_set;

/* Create every enabled sink of the table.  0, or the first failure's
 * -errno with its message in err (the ones created are destroyed). */
int  sinks_create(const struct cfg *c, sink_set **out, char *err, size_t errlen);
/* The same from another NULL-terminated table (tests). */
int  sinks_create_from(const struct sink_ops *const *table, const struct cfg *c,
                       sink_set **out, char *err, size_t errlen);
/* Flush: queued sinks get what is queued (at most 2 s each), then every sink
 * is destroyed. */
void sinks_destroy(sink_set *ss);
/* The state of the named sink when it runs, else NULL (main.c asks for the
 * zmq publisher: endpoints, waiting for subscribers, abort). */
void *sinks_state(sink_set *ss, const char *name);
/* Does any running sink want SINK_STATS_LIVE snapshots? */
bool sinks_want_live(const sink_set *ss);

/* The publisher thread's calls: direct sinks in turn, queued ones copied
 * into their queues.  Return the number of direct sinks that failed; a
 * -ECANCELED from one sets *cancelled. */
int  sinks_result(sink_set *ss, const struct result *r, bool *cancelled);
int  sinks_event(sink_set *ss, const struct sink_event *e);
int  sinks_severity(sink_set *ss, const struct sink_severity *e);
/* kind: one of SINK_STATS_*; a sink gets only the kinds it asked for
 * (queued sinks: PERIODIC and LIVE; direct sinks: PERIODIC and STATE). */
int  sinks_stats(sink_set *ss, const struct sink_stats *st, int kind);
bool sinks_want_state(sink_set *ss);
/* The queued sinks' accounts, for a snapshot: fills at most n, returns how
 * many sinks are queued. */
unsigned sinks_accounts(const sink_set *ss, struct sink_account *a, unsigned n);

/* The JSON renderings (publish_json.c), shared by zmq, stdout and results.
 * Like snprintf: return the length needed; buf NUL-terminated when len > 0.
 * The result object is publish_format() (publish.h). */
size_t sink_json_event(const struct sink_event *e, char *buf, size_t len);
size_t sink_json_severity(const struct sink_severity *e, char *buf, size_t len);
size_t sink_json_stats(const struct sink_stats *st, char *buf, size_t len);
size_t sink_json_state(const struct sink_stats *st, char *buf, size_t len);

#endif
