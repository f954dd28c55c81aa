/* SPDX-License-Identifier: Apache-2.0 */
/* pipeline.c — the windower, the worker pool and the publisher thread.
 *
 * DESIGN (see pipeline.h for the picture, the job-slot circle and reload).
 *
 * Windower: one thread visits every live stream in turn, takes at most
 * RS_CHUNK samples from its ring (zero copy: the ring's segments are read in
 * place and committed afterwards), resamples them to the model's rate when
 * the stream's rate differs (libsoxr through rs_*), and cuts NET_WIN windows
 * every hop straight into the next free job slot.  A window carries its
 * stream, seq (from 0 per stream), sample (index of its first sample after
 * resampling), t (stream_time() of that sample mapped back to the input
 * rate: the source's clock is in input samples), gap (source.h: the window
 * holds the first sample after a loss) and, stamped on submission, the
 * model that will classify it.  When a visit finds nothing anywhere it
 * sleeps on the sources' semaphore (bounded).  A stream whose ring is empty
 * after its eof was seen is flushed (the resampler's tail) and ends.  Once
 * the pipeline is sealed (no more sources) and every stream has ended the
 * windower says so and leaves.
 *
 * Streams: each pl_stream is allocated on its own and listed in `reg`, which
 * only the main thread changes (add, release), under mu.  The windower works
 * on its private copy of the live entries, refreshed when reg_version moves;
 * it marks a stream ended (under mu, with the slot index it reached), and
 * the main thread frees the stream only once the publisher's tail has passed
 * that index: from then on no thread holds a pointer to it.
 *
 * Models: struct pl_model is a model with one scratch per worker.  Slots
 * point at the one that was current when they were submitted; a superseded
 * one records the head at the switch and is freed once tail reaches it.
 *
 * Synchronisation of the slots: one mutex and three condition variables
 * (work for the workers, done for the publisher, free for the windower).
 * A slot is filled or computed outside the lock: ownership moves with the
 * counters, which only change under it.  What costs is not the lock but
 * the wake-ups (a futex call and a context switch each, on cores the
 * workers need), so each side wakes another only when it must, and then in
 * batches of `batch` (a quarter of the circle):
 *   - the windower fills slots beyond head without the lock while the tail
 *     it last saw says they are free, and submits what one ring read cut
 *     in one lock (at once if a worker waits: `work_waiting`); on a full
 *     circle it waits until a batch is free, not one slot;
 *   - a worker signals the publisher only if it waits, and only once slot
 *     `tail` is done and either a batch of done slots follows it or no work
 *     is queued (not saturated: a live window is sent at once);
 *   - the publisher sends every done slot from tail on with the lock
 *     released, frees them in one go and wakes the windower only if it
 *     waits and a batch is free.
 * Under full load that is about two wake-ups per batch instead of three per
 * window (measured: ~53,000 -> ~6,500 voluntary context switches for a
 * 20,000-window fast replay with 2 workers, 5.1 -> 4.6 CPU-seconds).  Every wait is a timed wait
 * (CLOCK_MONOTONIC), so a case the rules miss costs at most a tick.
 *
 * Publisher thread: sends slot `tail` once done, accounts latency into
 * fixed histograms (the interval's and each stream's), and every
 * stats_interval seconds formats a "_stats" object into a buffer that grows
 * only when streams were added.  Per stream it says windows, samples,
 * dropped, xruns, eof, down (its device is gone, the source reopening it)
 * and reopens (times it came back).
 */
#include "pipeline.h"
#include "record.h"
#include "severity.h"

#include <errno.h>
#include <inttypes.h>
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "resample.h"
#include "state.h"
#include "stats.h"
#include "window.h"
#include "winfeat.h"

/* Smoothing when a source has no config (config.c's defaults are the same). */
#define PL_SMOOTH_WINDOWS 5
#define PL_SMOOTH_AGREE   4
/* Vote codes ("States"): a class, then unknown, then the qualities. */
#define VOTE_UNKNOWN      NET_MAX_CLASSES
#define VOTE_QUALITY      (NET_MAX_CLASSES + 1)
#define VOTE_CODES        (VOTE_QUALITY + FEAT_NQUALITY)
#define TICK_NS     200000000L       /* bound on every wait, 200 ms */
#define IDLE_NS     20000000L        /* windower sleep when all rings are empty */
/* Slots hold logits and probs for any model a reload may bring. */
#define SLOT_CLASSES (((size_t)NET_MAX_CLASSES + 15) & ~(size_t)15)

struct pl_model {
    net_model        *m;
    uint64_t          id;             /* 1, 2, ...: which model, for the states' votes */
    net_scratch     **scratch;        /* one per worker */
    int               n_classes;
    enum norm_kind    norm;
    uint64_t          end;            /* under mu: superseded at this head */
    struct pl_model  *next;           /* under mu: the retired list */
};

struct pl_stream;

/* A severity block's result, carried by the next slot to the publisher.
 * SEV_Q of them per window: more (a hop far above the block) are counted. */
#define SEV_Q 4
struct sev_est {
    double   v;                       /* velocity RMS, mm/s (NaN: non-finite input) */
    uint64_t end;                     /* samples at the model's rate up to its end */
    double   db[SEV_NDEFECT];         /* defect prominences, dB (bearing set; NaN: none) */
};

struct slot {
    float            *x;              /* NET_WIN raw samples (the model's rate) */
    float            *logits;         /* SLOT_CLASSES */
    float            *probs;          /* SLOT_CLASSES */
    struct pl_stream *ps;
    struct pl_model  *model;          /* stamped under mu on submission */
    uint64_t          seq, sample;
    double            t;
    bool              gap;
    int               cls;            /* -1: no class (quality not ok) */
    bool              unknown;        /* a classifier's detector rejected it */
    struct feat_health health;        /* of the raw window */
    double            anomaly;        /* detector score, NaN: none */
    unsigned          sev_n;          /* severity blocks that ended before this window: */
    struct sev_est    sev[SEV_Q];     /*   their velocity and end, oldest first */
    double            threshold;
    int64_t           entered_ns;     /* CLOCK_MONOTONIC: the window's last sample entered
                                       * its ring (or, unknown, was taken out of it) */
    bool              done;           /* under mu */
};

struct pl_stream {
    struct stream   *st;
    struct source   *src;
    const char      *path;           /* the file, for messages; may be NULL */
    double           in_rate, out_rate;
    resampler       *rs;             /* NULL: no resampling */
    windower        *win;
    float           *rsbuf;          /* resampler output */
    size_t           rscap;
    /* windower thread writes, others read */
    _Atomic uint64_t popped;         /* samples taken out of the ring */
    _Atomic uint64_t discarded;      /* of those, thrown away at a stop past its deadline */
    _Atomic uint64_t rs_lost;        /* of those, lost by a failing resampler */
    _Atomic uint64_t resampled;      /* samples out of the resampler (model rate) */
    /* windower thread */
    severity        *sev;            /* severity = { ... }, NULL: off */
    double           sev_bounds[3];  /* zone boundaries, mm/s */
    bool             sev_bearing;    /* defect frequencies too (severity.rpm ...) */
    double           sev_hz[SEV_NDEFECT];
    struct sev_est   sev_q[SEV_Q];   /* blocks ended, not yet on a slot */
    unsigned         sev_qn;
    _Atomic uint64_t sev_dropped;    /* blocks not published: beyond SEV_Q before a window,
                                      * or ended after the stream's last window */
    uint64_t         last_dropped;
    uint64_t         gap_pos;        /* 1 + the newest loss position seen (0: none) */
    bool             drained;
    bool             force_gap;      /* input lost here (resampler error) */
    uint64_t         rs_errors;      /* failed rs_process() calls (read by the summary after join) */
    /* under mu */
    bool             ended;
    uint64_t         end_head;       /* head when it ended: its windows are below */
    /* set at creation: quality and detector settings (config or defaults) */
    double           floor, full_scale, threshold;
    /* publisher thread (others read them once the stream is released) */
    uint64_t         quality[FEAT_NQUALITY];  /* windows per quality */
    uint64_t         unknown, anomalous;      /* windows labelled so */
    uint64_t         published;
    uint64_t         gaps;           /* of those, flagged "gap" */
    smoother        *sm;             /* the state ("States" below) */
    uint64_t         sm_model;       /* pl_model.id the smoother's votes are of */
    double           min_score;      /* smooth.min_score */
    uint64_t         events;         /* state changes published */
    double           sev_last;       /* the last velocity published (NaN: none) */
    uint64_t         sev_blocks;     /* severity estimates published */
    struct stats_hist lat;
};

struct pipeline {
    double            model_rate;
    double            stats_interval;
    int64_t           stall_after;    /* test-only fault hook; -1: off */

    /* main thread changes these (under mu); others read under mu */
    struct pl_stream **reg;
    unsigned          n_reg;
    uint64_t          reg_version;
    struct pl_model  *cur;            /* under mu (main reads it freely) */
    struct pl_model  *retired;        /* under mu */
    bool              sealed;         /* under mu */
    unsigned          n_live;         /* under mu: streams of live (alsa) or paced sources */
    _Atomic bool      may_wait;       /* n_live == 0 and no abort: the publisher may wait
                                       * for the recorder's writer (keep_offer) */

    struct pl_stream **wlist;         /* windower: its live streams */
    sem_t             wake;
    bool              wake_ok;

    unsigned          n_workers;
    pthread_t        *worker_tid;
    float            *norm_mem;       /* NET_WIN per worker: its window, normalised */
    unsigned          workers_started;
    pthread_t         windower_tid, publisher_tid;
    bool              windower_started, publisher_started, joined;
    sink_set         *sinks;

    struct slot      *slots;
    unsigned          n_slots;
    float            *slot_mem;

    pthread_mutex_t   mu;
    pthread_cond_t    cv_work, cv_done, cv_free;
    uint64_t          head, next, tail;        /* under mu */
    unsigned          batch;                   /* slots per wake-up of the publisher / windower */
    _Atomic unsigned  work_waiting;            /* changed under mu: workers waiting for a slot */
    bool              pub_waiting;             /* under mu: publisher waits on cv_done */
    bool              free_waiting;            /* under mu: windower waits on cv_free */
    /* windower thread */
    uint64_t          w_head;                  /* slots filled: [head, w_head) not yet submitted */
    uint64_t          w_tail;                  /* tail as last seen (tail only grows) */
    bool              input_done;              /* under mu: windower finished */
    bool              abort;                   /* under mu: start failed, leave now */
    _Atomic bool      finished;
    _Atomic bool      discard;                 /* stop deadline passed: empty the rings */
    _Atomic uint64_t  published;               /* publisher: windows sent */

    /* publisher thread */
    struct stats_hist lat_interval;
    struct stats_hist lat_status;              /* for STATUS=, every STATUS_NS */
    _Atomic uint64_t  status_p50, status_p99, status_max;   /* main reads them */
    _Atomic uint64_t  gaps;                    /* windows published with "gap" */
    uint64_t          publish_errors;          /* failed sends / writes */
    uint64_t          publish_abandoned;       /* results given up at a hard stop */
    char             *snap_buf;                /* snapshot() */
    size_t            snap_len;
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

/* ---- models ----------------------------------------------------------------- */

static void model_destroy(struct pl_model *g, unsigned n_workers, bool with_model)
{
    if (!g)
        return;
    if (g->scratch)
        for (unsigned i = 0; i < n_workers; i++)
            net_scratch_destroy(g->scratch[i]);
    free(g->scratch);
    if (with_model)
        net_destroy(g->m);
    free(g);
}

static struct pl_model *model_create(net_model *m, unsigned n_workers)
{
    static _Atomic uint64_t ids;
    struct pl_model *g = calloc(1, sizeof *g);
    if (g)
        g->id = atomic_fetch_add_explicit(&ids, 1, memory_order_relaxed) + 1;
    if (!g)
        return NULL;
    g->m = m;
    g->n_classes = net_classes(m);
    g->norm = net_normalize(m);
    g->end = UINT64_MAX;
    g->scratch = calloc(n_workers, sizeof *g->scratch);
    if (!g->scratch)
        goto fail;
    for (unsigned i = 0; i < n_workers; i++)
        if (!(g->scratch[i] = net_scratch_create(m)))
            goto fail;
    return g;
fail:
    model_destroy(g, n_workers, false);
    return NULL;
}

/* ---- creation --------------------------------------------------------------- */

static void stream_free(struct pl_stream *ps)
{
    if (!ps)
        return;
    if (ps->rs)
        rs_destroy(ps->rs);
    if (ps->win)
        win_destroy(ps->win);
    sev_destroy(ps->sev);
    sm_destroy(ps->sm);
    free(ps->rsbuf);
    free(ps);
}

int pipeline_create(net_model *m, const struct pipeline_opts *o,
                    pipeline **out, char *err, size_t errlen)
{
    pipeline *p = calloc(1, sizeof *p);
    pthread_condattr_t ca;
    long ncpu;

    *out = NULL;
    if (!p)
        goto nomem;
    p->model_rate = net_sample_rate(m);
    p->stats_interval = o->stats_interval;
    p->stall_after = -1;
    atomic_init(&p->finished, false);
    atomic_init(&p->discard, false);
    atomic_init(&p->published, 0);
    atomic_init(&p->work_waiting, 0);

    /* Test-only fault hook (pipeline.h). */
    const char *stall = getenv("TRIDENT_TEST_STALL_AFTER");
    if (stall && *stall) {
        char *end;
        long long v = strtoll(stall, &end, 10);
        if (*end || v < 0) {
            snprintf(err, errlen, "TRIDENT_TEST_STALL_AFTER=\"%s\": not a window count", stall);
            free(p);
            return -EINVAL;
        }
        p->stall_after = v;
        log_warn("TRIDENT_TEST_STALL_AFTER=%lld: test fault hook, the workers stall "
                 "after %lld windows", v, v);
    }

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
        int e = errno;
        snprintf(err, errlen, "pipeline: sem_init: %s", strerror(e));
        pipeline_destroy(p);
        return -e;
    }
    p->wake_ok = true;

    p->reg = calloc(PIPELINE_MAX_STREAMS, sizeof *p->reg);
    p->wlist = calloc(PIPELINE_MAX_STREAMS, sizeof *p->wlist);
    p->worker_tid = calloc(p->n_workers, sizeof *p->worker_tid);
    if (!p->reg || !p->wlist || !p->worker_tid)
        goto nomem;

    /* Enough slots to keep every worker busy while the publisher waits for
     * the oldest one, and room for batches of a quarter of the circle (8
     * per worker: 16 slots per worker measured 40% fewer context switches
     * than 8, at ~4.5 KB a slot). */
    p->n_slots = 16 * p->n_workers + 32;
    p->batch = p->n_slots / 4;
    size_t per = NET_WIN + 2 * SLOT_CLASSES;
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    p->slot_mem = aligned_alloc(64, sizeof(float) * per * p->n_slots);
    p->norm_mem = aligned_alloc(64, sizeof(float) * NET_WIN * p->n_workers);
    if (!p->slots || !p->slot_mem || !p->norm_mem)
        goto nomem;
    memset(p->slot_mem, 0, sizeof(float) * per * p->n_slots);
    for (unsigned i = 0; i < p->n_slots; i++) {
        float *b = p->slot_mem + per * i;
        p->slots[i].x = b;
        p->slots[i].logits = b + NET_WIN;
        p->slots[i].probs = b + NET_WIN + SLOT_CLASSES;
    }
    stats_hist_reset(&p->lat_interval);
    stats_hist_reset(&p->lat_status);
    atomic_init(&p->status_p50, 0);
    atomic_init(&p->status_p99, 0);
    atomic_init(&p->status_max, 0);
    atomic_init(&p->gaps, 0);
    atomic_init(&p->may_wait, true);
    /* Last: from here on the pipeline owns m. */
    if (!(p->cur = model_create(m, p->n_workers)))
        goto nomem;
    *out = p;
    return 0;
nomem:
    snprintf(err, errlen, "pipeline: out of memory");
    pipeline_destroy(p);
    return -ENOMEM;
}

/* Samples that arrive at their own pace (a device, a realtime-paced file):
 * their windows are published as soon as they are classified. */
static bool source_live(const struct source *s)
{
    return s->cfg && (s->cfg->type == CFG_ALSA || s->cfg->pace == CFG_PACE_REALTIME);
}

int pipeline_check_source(double model_rate, const struct source *s, char *err, size_t errlen)
{
    const char *path = (s->cfg && s->cfg->type == CFG_FILE) ? s->cfg->path : NULL;

    /* A file too short for one window at the model's rate gives nothing. */
    if (!s->frames || !s->n_streams)
        return 0;
    double in_rate = s->streams[0].rate;
    double out_rate = model_rate > 0 ? model_rate : in_rate;
    uint64_t len = in_rate == out_rate ? s->frames : rs_out_len(in_rate, out_rate, s->frames);
    if (len >= NET_WIN)
        return 0;
    if (in_rate == out_rate)
        snprintf(err, errlen, "%s: too short: %" PRIu64 " samples, fewer than one "
                 "%d-sample window", path ? path : s->streams[0].name, s->frames, NET_WIN);
    else
        snprintf(err, errlen, "%s: too short: %" PRIu64 " samples at %g Hz make %" PRIu64
                 " at the model's %g Hz, fewer than one %d-sample window",
                 path ? path : s->streams[0].name, s->frames, in_rate, len, out_rate, NET_WIN);
    return -ENODATA;
}

int pipeline_add_source(pipeline *p, struct source *s, char *err, size_t errlen)
{
    const char *path = (s->cfg && s->cfg->type == CFG_FILE) ? s->cfg->path : NULL;
    struct pl_stream *made[s->n_streams ? s->n_streams : 1];
    unsigned n_made = 0;
    int rc;

    /* reg changes only in this (the main) thread: reading it needs no lock. */
    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        for (unsigned j = 0; j < p->n_reg; j++)
            if (strcmp(p->reg[j]->st->name, st->name) == 0) {
                snprintf(err, errlen, "%s%sstream name \"%s\" is used twice (also by %s): "
                         "streams need unique names", path ? path : "", path ? ": " : "",
                         st->name, p->reg[j]->path ? p->reg[j]->path : "another source");
                return -EEXIST;
            }
    }
    if ((rc = pipeline_check_source(p->model_rate, s, err, errlen)) < 0)
        return rc;
    if (p->n_reg + s->n_streams > PIPELINE_MAX_STREAMS) {
        snprintf(err, errlen, "%s%stoo many streams (at most %d)", path ? path : "",
                 path ? ": " : "", PIPELINE_MAX_STREAMS);
        return -ENOSPC;
    }

    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        struct pl_stream *ps = calloc(1, sizeof *ps);
        if (!ps)
            goto nomem;
        made[n_made++] = ps;
        atomic_init(&ps->popped, 0);
        atomic_init(&ps->discarded, 0);
        atomic_init(&ps->rs_lost, 0);
        atomic_init(&ps->resampled, 0);
        atomic_init(&ps->sev_dropped, 0);
        ps->st = st;
        ps->src = s;
        ps->path = path;
        ps->in_rate = st->rate;
        ps->out_rate = p->model_rate > 0 ? p->model_rate : st->rate;
        ps->floor = s->cfg ? s->cfg->signal_floor : 0;
        ps->threshold = s->cfg ? s->cfg->anomaly_threshold : 0;
        ps->full_scale = st->full_scale;
        ps->min_score = s->cfg ? s->cfg->smooth_min_score : 0;
        ps->sev_last = NAN;
        if (!(ps->sm = sm_create(s->cfg ? s->cfg->smooth_windows : PL_SMOOTH_WINDOWS,
                                 s->cfg ? s->cfg->smooth_agree : PL_SMOOTH_AGREE,
                                 s->cfg ? s->cfg->smooth_hold : 0, VOTE_CODES)))
            goto nomem;
        stats_hist_reset(&ps->lat);
        if (ps->in_rate != ps->out_rate) {
            char rerr[256] = "";
            ps->rs = rs_create(ps->in_rate, ps->out_rate, rerr, sizeof rerr);
            if (!ps->rs) {
                snprintf(err, errlen, "stream %s: resampler %g -> %g Hz: %s", st->name,
                         ps->in_rate, ps->out_rate, rerr);
                rc = -EINVAL;
                goto fail;
            }
            /* resample.h: soxr's output per call is bursty, up to ~1.5x the
             * average; 2x + 64 never holds anything back. */
            ps->rscap = (size_t)ceil(2.0 * RS_CHUNK * ps->out_rate / ps->in_rate) + 64;
            if (!(ps->rsbuf = malloc(sizeof(float) * ps->rscap)))
                goto nomem;
        }
        if (!(ps->win = win_create(NET_WIN, st->hop)))
            goto nomem;
        const struct cfg_stream *c = s->cfg;
        if (c && (c->sev_scale > 0 || c->sev_sensitivity > 0)) {
            double scale = c->sev_scale > 0 ? c->sev_scale : 9.80665 / c->sev_sensitivity;
            if (ps->out_rate <= 2 * SEV_F_HI) {
                snprintf(err, errlen, "stream %s: severity: the model's rate, %g Hz, must be "
                         "above %g Hz for the %g-%g Hz band", st->name, ps->out_rate,
                         2 * SEV_F_HI, SEV_F_LO, SEV_F_HI);
                rc = -EINVAL;
                goto fail;
            }
            if (!(ps->sev = sev_create(ps->out_rate, scale, SEV_F_LO, SEV_F_HI, c->sev_seconds))) {
                if (errno != EINVAL)
                    goto nomem;
                snprintf(err, errlen, "stream %s: severity.seconds: %g s at %g Hz is a block "
                         "above %u samples", st->name, c->sev_seconds, ps->out_rate,
                         SEV_MAX_BLOCK);
                rc = -EINVAL;
                goto fail;
            }
            sev_iso_bounds((int)c->sev_group, c->sev_foundation
                           && !strcmp(c->sev_foundation, "flexible"), ps->sev_bounds);
            if (c->sev_rpm > 0) {
                struct sev_bearing b = { .rpm = c->sev_rpm, .balls = c->sev_balls,
                                         .ball_diameter = c->sev_ball_d,
                                         .pitch_diameter = c->sev_pitch_d,
                                         .contact_deg = c->sev_contact,
                                         .envelope_hz = c->sev_env_hz };
                int brc = sev_set_bearing(ps->sev, &b);
                if (brc == -ENOMEM)
                    goto nomem;
                if (brc < 0) {
                    snprintf(err, errlen, "stream %s: severity.envelope_hz: %g Hz is not below "
                             "half the model's rate (%g Hz)", st->name, c->sev_env_hz,
                             ps->out_rate / 2);
                    rc = -EINVAL;
                    goto fail;
                }
                double db[SEV_NDEFECT];
                ps->sev_bearing = sev_defects(ps->sev, ps->sev_hz, db);
            }
        }
    }
    s->wake = &p->wake;
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < n_made; i++)
        p->reg[p->n_reg++] = made[i];
    if (source_live(s))
        p->n_live += n_made;
    atomic_store_explicit(&p->may_wait, p->n_live == 0 && !p->abort, memory_order_relaxed);
    p->reg_version++;
    pthread_mutex_unlock(&p->mu);
    sem_post(&p->wake);
    return 0;
nomem:
    snprintf(err, errlen, "pipeline: out of memory");
    rc = -ENOMEM;
fail:
    for (unsigned i = 0; i < n_made; i++)
        stream_free(made[i]);
    return rc;
}

/* pipeline.h: where every sample of a stream went.  The windower's
 * counters are read before the source's, so written >= popped here. */
static void stream_acct(const struct pl_stream *ps, struct pipeline_acct *a)
{
    const uint64_t W = NET_WIN, H = ps->st->hop, k = ps->published;
    uint64_t popped = atomic_load_explicit(&ps->popped, memory_order_relaxed);
    uint64_t discarded = atomic_load_explicit(&ps->discarded, memory_order_relaxed);
    uint64_t rs_lost = atomic_load_explicit(&ps->rs_lost, memory_order_relaxed);
    uint64_t resampled = atomic_load_explicit(&ps->resampled, memory_order_relaxed);
    uint64_t src_dropped = atomic_load_explicit(&ps->st->dropped, memory_order_acquire);
    uint64_t written = atomic_load_explicit(&ps->st->written, memory_order_acquire);

    a->windows = k;
    a->gaps = ps->gaps;
    a->in = written + src_dropped;
    a->dropped = src_dropped + discarded + rs_lost;
    a->backlog = written - popped;
    a->resampled = resampled;
    /* Samples the windower has or will have, at the model's rate. */
    uint64_t pos = ps->rs ? resampled : written - discarded;
    /* k windows of W every H: they cover [0, (k-1)H + W) if they overlap or
     * touch, else k*W with H - W skipped between them; the next window
     * starts at kH.  Samples before max(end, kH) are in a window or
     * skipped; the rest wait for the next window: the tail. */
    uint64_t span = k == 0 ? 0 : (H < W ? (k - 1) * H + W : k * W);
    uint64_t end = k == 0 ? 0 : (k - 1) * H + W;
    uint64_t bound = end > k * H ? end : k * H;
    uint64_t m = pos < bound ? pos : bound;
    a->span = span;
    a->skipped = m > span ? m - span : 0;
    a->tail = pos - m;
}

static void stream_summary(const struct pl_stream *ps)
{
    if (ps->rs_errors)
        log_warn("stream %s: the resampler failed %" PRIu64 " times (input counted as dropped)",
                 ps->st->name, ps->rs_errors);
    struct pipeline_acct a;
    stream_acct(ps, &a);
    uint64_t discarded = atomic_load(&ps->discarded);
    if (discarded)
        log_warn("stream %s: %" PRIu64 " samples still in its ring at the stop deadline were "
                 "not classified (counted as dropped)", ps->st->name, discarded);
    log_info("stream %s: %" PRIu64 " windows (%" PRIu64 " gap), %" PRIu64 " samples in, %"
             PRIu64 " dropped, %" PRIu64 " xruns, latency p50 %" PRIu64 " us, p99 %" PRIu64
             " us, max %" PRIu64 " us",
             ps->st->name, a.windows, a.gaps, a.in, a.dropped,
             atomic_load(&ps->st->xruns), stats_hist_pct(&ps->lat, 0.5),
             stats_hist_pct(&ps->lat, 0.99), ps->lat.max);
    if (ps->rs)
        log_info("stream %s: %" PRIu64 " samples resampled to %g Hz = %" PRIu64 " in windows + %"
                 PRIu64 " skipped by hop + %" PRIu64 " tail", ps->st->name, a.resampled,
                 ps->out_rate, a.span, a.skipped, a.tail);
    else
        log_info("stream %s: %" PRIu64 " samples in = %" PRIu64 " in windows + %" PRIu64
                 " skipped by hop + %" PRIu64 " dropped + %" PRIu64 " tail", ps->st->name,
                 a.in, a.span, a.skipped, a.dropped, a.tail);
}

int pipeline_release_source(pipeline *p, struct source *s)
{
    struct pl_stream *gone[PIPELINE_MAX_STREAMS];
    unsigned n_gone = 0, k = 0;

    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n_reg; i++) {
        struct pl_stream *ps = p->reg[i];
        if (ps->src == s && !(ps->ended && p->tail >= ps->end_head)) {
            pthread_mutex_unlock(&p->mu);
            return -EBUSY;
        }
    }
    for (unsigned i = 0; i < p->n_reg; i++) {
        if (p->reg[i]->src == s)
            gone[n_gone++] = p->reg[i];
        else
            p->reg[k++] = p->reg[i];
    }
    if (source_live(s))
        p->n_live -= n_gone;
    atomic_store_explicit(&p->may_wait, p->n_live == 0 && !p->abort, memory_order_relaxed);
    p->n_reg = k;
    p->reg_version++;
    pthread_mutex_unlock(&p->mu);
    /* The windower dropped them when they ended, the publisher is past
     * their last slot: nobody else holds these pointers. */
    for (unsigned i = 0; i < n_gone; i++) {
        stream_summary(gone[i]);
        stream_free(gone[i]);
    }
    s->wake = NULL;
    return 0;
}

int pipeline_model_compatible(const pipeline *p, const net_model *m, char *err, size_t errlen)
{
    double rate = net_sample_rate(m);
    if (rate == p->model_rate)
        return 0;
    char a[32], b[32];
    snprintf(a, sizeof a, rate > 0 ? "%g Hz" : "none", rate);
    snprintf(b, sizeof b, p->model_rate > 0 ? "%g Hz" : "none", p->model_rate);
    snprintf(err, errlen, "%s: sample rate %s differs from the running model's %s "
             "(the streams' windows are cut at that rate): restart tridentd to change it",
             net_path(m), a, b);
    return -EINVAL;
}

int pipeline_set_model(pipeline *p, net_model *m, char *err, size_t errlen)
{
    int rc = pipeline_model_compatible(p, m, err, errlen);
    if (rc < 0)
        return rc;
    struct pl_model *g = model_create(m, p->n_workers);
    if (!g) {
        snprintf(err, errlen, "%s: out of memory for the workers' scratch", net_path(m));
        return -ENOMEM;
    }
    pthread_mutex_lock(&p->mu);
    struct pl_model *old = p->cur;
    old->end = p->head;            /* slots [.., head) may still use it */
    old->next = p->retired;
    p->retired = old;
    p->cur = g;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

const net_model *pipeline_model(const pipeline *p)
{
    return p->cur->m;
}

void pipeline_reap(pipeline *p)
{
    struct pl_model *dead = NULL;

    pthread_mutex_lock(&p->mu);
    for (struct pl_model **pp = &p->retired; *pp;) {
        struct pl_model *g = *pp;
        if (g->end <= p->tail) {
            *pp = g->next;
            g->next = dead;
            dead = g;
        } else {
            pp = &g->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (dead) {
        struct pl_model *g = dead;
        dead = g->next;
        log_info("model %s (%s) no longer used: freed", net_digest(g->m), net_path(g->m));
        model_destroy(g, p->n_workers, true);
    }
}

/* ---- windower ------------------------------------------------------------- */

/* A counter only the windower writes (others read it): a plain add, no
 * locked read-modify-write on the per-window path. */
static inline void count_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Hand the filled slots [head, w_head) to the workers, stamped with the
 * model that is current now: a model switch (under the same lock) falls
 * between two windows, never inside one.  Called with mu held. */
static void slots_submit_locked(pipeline *p)
{
    if (p->w_head == p->head)
        return;
    for (uint64_t i = p->head; i < p->w_head; i++)
        p->slots[i % p->n_slots].model = p->cur;
    unsigned n = (unsigned)(p->w_head - p->head);
    p->head = p->w_head;
    /* Only a waiting worker needs a wake-up; one per new slot at most. */
    unsigned waiting = atomic_load_explicit(&p->work_waiting, memory_order_relaxed);
    if (waiting > 1 && n > 1)
        pthread_cond_broadcast(&p->cv_work);
    else if (waiting)
        pthread_cond_signal(&p->cv_work);
}

static void slots_submit(pipeline *p)
{
    if (p->w_head == p->head)     /* head changes only in this thread */
        return;
    pthread_mutex_lock(&p->mu);
    slots_submit_locked(p);
    pthread_mutex_unlock(&p->mu);
}

/* The next free slot, or NULL on abort.  Free per the tail last seen needs
 * no lock (the real tail is at least that far); else it submits what is
 * filled, and if the circle is full waits until the publisher freed a
 * batch of slots (one wake-up per batch, not per window). */
static struct slot *slot_free(pipeline *p)
{
    if (p->w_head - p->w_tail < p->n_slots)
        return &p->slots[p->w_head % p->n_slots];
    struct slot *sl = NULL;
    pthread_mutex_lock(&p->mu);
    slots_submit_locked(p);
    if (p->head - p->tail >= p->n_slots) {
        while (p->head - p->tail > p->n_slots - p->batch && !p->abort) {
            p->free_waiting = true;
            cond_wait_until(&p->cv_free, &p->mu, mono_ns() + TICK_NS);
            p->free_waiting = false;
        }
    }
    p->w_tail = p->tail;
    if (!p->abort)
        sl = &p->slots[p->w_head % p->n_slots];
    pthread_mutex_unlock(&p->mu);
    return sl;
}

/* Cut every complete window of x[0..n) into slots. */
static void feed(pipeline *p, struct pl_stream *ps, const float *x, size_t n, int64_t taken_ns)
{
    /* Severity: every sample, block after block; what ends goes out with
     * the next window cut. */
    for (size_t j = 0; ps->sev && j < n;) {
        bool done;
        double v;
        unsigned long long end;
        j += sev_feed(ps->sev, x + j, n - j, &done, &v, &end);
        if (!done)
            continue;
        if (ps->sev_qn == SEV_Q) {
            memmove(ps->sev_q, ps->sev_q + 1, sizeof ps->sev_q[0] * (SEV_Q - 1));
            ps->sev_qn--;
            atomic_fetch_add_explicit(&ps->sev_dropped, 1, memory_order_relaxed);
        }
        struct sev_est *e = &ps->sev_q[ps->sev_qn++];
        *e = (struct sev_est){ .v = v, .end = end };
        double hz[SEV_NDEFECT];
        if (!ps->sev_bearing || !sev_defects(ps->sev, hz, e->db))
            for (int d = 0; d < SEV_NDEFECT; d++)
                e->db[d] = NAN;
    }
    do {
        size_t k = win_push(ps->win, x, n);
        x += k;
        n -= k;
        /* A slot is looked for (and waited for) only once a window is
         * there to fill it: a push that completes none never blocks. */
        while (win_ready(ps->win)) {
            struct slot *sl = slot_free(p);
            uint64_t seq, start;
            if (!sl)
                goto out;
            win_next(ps->win, sl->x, &seq, &start);
            /* Map the window's first sample back to the input rate, where
             * the source's clock and its loss positions count. */
            double ratio = ps->rs ? ps->in_rate / ps->out_rate : 1.0;
            double ipos = (double)start * ratio;
            double ifloor = floor(ipos);
            uint64_t iend = (uint64_t)ceil((double)(start + NET_WIN) * ratio);
            /* Acquire: a count seen here comes with the source's gap queue
             * entries and flags (stream_note_drop). */
            uint64_t dropped = atomic_load_explicit(&ps->st->dropped, memory_order_acquire);
            uint64_t newest = UINT64_MAX;
            bool gap = false;
            if (stream_gap_before(ps->st, iend, &newest)) {
                if (newest == UINT64_MAX)
                    gap = true;           /* the queue overflowed: no position */
                else if (newest + 1 > ps->gap_pos)
                    ps->gap_pos = newest + 1;
            }
            /* Every window that holds a first sample after a loss: with
             * overlapping windows, more than one. */
            if (ps->gap_pos > (uint64_t)ifloor)
                gap = true;
            /* A source that only bumps `dropped` (no position): the next
             * window is the best guess. */
            if (dropped != ps->last_dropped
                && !atomic_load_explicit(&ps->st->gap_exact, memory_order_relaxed))
                gap = true;
            ps->last_dropped = dropped;
            if (ps->force_gap) {          /* the resampler lost input */
                gap = true;
                ps->force_gap = false;
            }
            sl->ps = ps;
            sl->sev_n = ps->sev_qn;
            memcpy(sl->sev, ps->sev_q, sizeof sl->sev[0] * ps->sev_qn);
            ps->sev_qn = 0;
            sl->seq = seq;
            sl->sample = start;
            sl->t = stream_time(ps->st, (uint64_t)ifloor) + (ipos - ifloor) / ps->in_rate;
            sl->gap = gap;
            /* Latency runs from the moment the window's last sample entered
             * the ring (a resampled window's: the input sample it ends at;
             * after a flush it may lie beyond the input: the last one). */
            uint64_t written = atomic_load_explicit(&ps->st->written, memory_order_relaxed);
            uint64_t ilast = iend - 1 < written ? iend - 1 : written - 1;
            int64_t entered = stream_entered_ns(ps->st, ilast);
            sl->entered_ns = entered >= 0 ? entered : taken_ns;
            p->w_head++;
            /* A worker waits for work: give it this one now rather than at
             * the end of the pass. */
            if (atomic_load_explicit(&p->work_waiting, memory_order_relaxed))
                slots_submit(p);
        }
    } while (n > 0);
out:
    /* Everything cut in this pass goes to the workers in one lock. */
    slots_submit(p);
}

static void resample_feed(pipeline *p, struct pl_stream *ps, const float *x, size_t n,
                          int64_t taken_ns)
{
    if (!ps->rs) {
        feed(p, ps, x, n, taken_ns);
        return;
    }
    long k = rs_process(ps->rs, x, n, ps->rsbuf, ps->rscap);
    if (k > 0) {
        count_add(&ps->resampled, (uint64_t)k);
        feed(p, ps, ps->rsbuf, (size_t)k, taken_ns);
    }
    if (k < 0) {
        /* The samples are already out of the ring: count them as dropped
         * (so _stats, STATUS= and the summary show the loss) and flag the
         * next window. */
        count_add(&ps->rs_lost, n);
        ps->force_gap = true;
        if (ps->rs_errors++ == 0)
            log_warn("stream %s: resampler failed (%s): %zu samples dropped; further "
                     "failures are counted in its summary", ps->st->name, strerror((int)-k), n);
    }
}

/* One visit: true if it took samples.  Sets ps->drained when the stream
 * ended (eof seen, ring empty, resampler flushed). */
static bool visit(pipeline *p, struct pl_stream *ps)
{
    struct ring_vec v;

    /* Acquire: eof is stored after the last write, so if it is seen here,
     * an empty ring below is empty for good. */
    bool eof = atomic_load_explicit(&ps->st->eof, memory_order_acquire);
    bool discard = atomic_load_explicit(&p->discard, memory_order_relaxed);
    uint32_t n = ring_read_vec(ps->st->ring, &v);
    if (n > 0 && discard) {
        /* A stop past its deadline (pipeline_discard): what the ring still
         * holds is counted as dropped, not classified. */
        ring_read_commit(ps->st->ring, n);
        count_add(&ps->discarded, n);
        count_add(&ps->popped, n);
        return true;
    }
    if (n == 0) {
        if (eof) {
            long k;
            while (ps->rs && !discard && (k = rs_flush(ps->rs, ps->rsbuf, ps->rscap)) > 0) {
                count_add(&ps->resampled, (uint64_t)k);
                feed(p, ps, ps->rsbuf, (size_t)k, mono_ns());
            }
            ps->drained = true;
        }
        return false;
    }
    if (n > RS_CHUNK)
        n = RS_CHUNK;
    int64_t taken = mono_ns();
    uint32_t n0 = n < v.n[0] ? n : v.n[0];
    resample_feed(p, ps, v.p[0], n0, taken);
    if (n > n0)
        resample_feed(p, ps, v.p[1], n - n0, taken);
    ring_read_commit(ps->st->ring, n);
    count_add(&ps->popped, n);
    return true;
}

static void *windower_main(void *arg)
{
    pipeline *p = arg;
    struct pl_stream **w = p->wlist;
    unsigned wn = 0;
    uint64_t wver = UINT64_MAX;

    for (;;) {
        bool progress = false;
        pthread_mutex_lock(&p->mu);
        if (p->abort) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        if (p->reg_version != wver) {
            /* Streams came or went: the live ones, in registration order. */
            wn = 0;
            for (unsigned i = 0; i < p->n_reg; i++)
                if (!p->reg[i]->ended)
                    w[wn++] = p->reg[i];
            wver = p->reg_version;
        }
        bool sealed = p->sealed;
        pthread_mutex_unlock(&p->mu);
        if (wn == 0 && sealed)
            break;
        for (unsigned i = 0; i < wn;) {
            struct pl_stream *ps = w[i];
            if (visit(p, ps)) {
                progress = true;
            } else if (ps->drained) {
                /* Every window it gave is below head: once the publisher's
                 * tail passes it, the stream may be freed.  Severity blocks
                 * that ended after its last window have no slot to ride
                 * on: counted, not lost silently. */
                if (ps->sev_qn) {
                    atomic_fetch_add_explicit(&ps->sev_dropped, ps->sev_qn, memory_order_relaxed);
                    ps->sev_qn = 0;
                }
                pthread_mutex_lock(&p->mu);
                ps->ended = true;
                ps->end_head = p->head;
                pthread_mutex_unlock(&p->mu);
                memmove(&w[i], &w[i + 1], sizeof *w * (wn - i - 1));
                wn--;
                continue;
            }
            i++;
        }
        if (!progress) {
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

/* Worth waking the publisher (under mu)?  Slot `tail` is done and either a
 * batch of done slots follows from it, or no work is queued (the pipeline
 * is not saturated: a live stream's window must not wait for company), or
 * the input ended.  Under full load that is one wake-up per batch; a lost
 * case costs at most the publisher's tick. */
static bool tail_ready(const pipeline *p)
{
    if (p->tail == p->head || !p->slots[p->tail % p->n_slots].done)
        return false;
    /* A live stream's window never waits for company: latency, not the
     * wake-ups saved, is what counts there (a burst of windows from many
     * streams would otherwise wait for a batch to be done). */
    if (p->next == p->head || p->input_done || p->n_live)
        return true;
    uint64_t end = p->tail + p->batch < p->head ? p->tail + p->batch : p->head;
    for (uint64_t i = p->tail + 1; i < end; i++)
        if (!p->slots[i % p->n_slots].done)
            return false;
    return end - p->tail >= p->batch;
}

/* One window: its health on the raw samples; a window that is not ok gets
 * no class (nothing of it reaches the network: a NaN would give class 0).
 * Then the detector's score on the raw samples, and the network on the
 * normalised ones.  An anomaly model's class is normal/anomaly by the
 * score; a classifier's window scoring above the threshold is "unknown"
 * (its class and probabilities still given). */
static void classify(const struct pl_model *g, net_scratch *scr, float *xn, struct slot *sl)
{
    const struct pl_stream *ps = sl->ps;
    const net_model *m = g->m;

    feat_health(sl->x, NET_WIN, ps->floor, ps->full_scale, &sl->health);
    sl->anomaly = NAN;
    sl->unknown = false;
    sl->threshold = ps->threshold > 0 ? ps->threshold : net_detector_threshold(m);
    if (sl->health.quality != FEAT_OK) {
        sl->cls = -1;
        return;
    }
    if (net_detector_dim(m)) {
        double f[FEAT_MAX_DIM];
        feat_spectral(sl->x, net_detector_bands(m), net_detector_level(m), f);
        sl->anomaly = net_detector_score(m, f);
    }
    if (net_kind(m) == NET_ANOMALY) {
        sl->cls = sl->anomaly > sl->threshold;
        return;
    }
    /* out of place: the raw window stays for keep = { ... } */
    norm_apply(g->norm, sl->x, xn, NET_WIN);
    net_forward(m, scr, xn, sl->logits);
    net_softmax(sl->logits, g->n_classes, sl->probs);
    sl->cls = net_argmax(sl->probs, g->n_classes);
    sl->unknown = net_detector_dim(m) && sl->anomaly > sl->threshold;
}

static void *worker_main(void *arg)
{
    pipeline *p = ((struct worker_arg *)arg)->p;
    unsigned id = ((struct worker_arg *)arg)->id;

    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->next == p->head && !p->input_done && !p->abort) {
            atomic_fetch_add_explicit(&p->work_waiting, 1, memory_order_relaxed);
            cond_wait_until(&p->cv_work, &p->mu, mono_ns() + TICK_NS);
            atomic_fetch_sub_explicit(&p->work_waiting, 1, memory_order_relaxed);
        }
        if (p->abort || (p->next == p->head && p->input_done))
            break;
        uint64_t idx = p->next++;
        struct slot *sl = &p->slots[idx % p->n_slots];
        if (p->stall_after >= 0 && idx >= (uint64_t)p->stall_after) {
            /* Test-only fault hook (pipeline.h): stuck with the slot. */
            while (!p->abort)
                cond_wait_until(&p->cv_work, &p->mu, mono_ns() + TICK_NS);
            break;
        }
        struct pl_model *g = sl->model;
        pthread_mutex_unlock(&p->mu);

        classify(g, g->scratch[id], p->norm_mem + (size_t)id * NET_WIN, sl);

        pthread_mutex_lock(&p->mu);
        sl->done = true;
        if (p->pub_waiting && tail_ready(p))
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- publisher -------------------------------------------------------------- */

/* Snapshots (sink.h struct sink_stats) are copied whole, under mu, into
 * p->snap_buf: the streams' entries, their latency histograms, then every
 * string they point to (names, states, the model's), so that the sinks can
 * be called with the lock released and a reload may drop a stream or a model
 * meanwhile.  The buffer grows (rarely: a reload added streams) outside
 * the lock. */
static size_t snap_need(const pipeline *p)
{
    const net_model *m = p->cur->m;
    size_t n = (size_t)p->n_reg * (sizeof(struct sink_stream_stats) + sizeof(struct stats_hist));
    n += (size_t)net_classes(m) * sizeof(char *) + 64 + strlen(net_path(m));
    for (int i = 0; i < net_classes(m); i++)
        n += strlen(net_class_name(m, i)) + 1;
    for (unsigned i = 0; i < p->n_reg; i++) {
        n += strlen(p->reg[i]->st->name) + 1;
        if (sm_state(p->reg[i]->sm))
            n += strlen(sm_state(p->reg[i]->sm)) + 1;
    }
    return n + 64;
}

static char *snap_str(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*at, s, n);
    *at += n;
    return d;
}

/* Fill *st (under mu).  false: out of memory. */
static bool snapshot(pipeline *p, struct sink_stats *st, double uptime, bool final)
{
    while (snap_need(p) > p->snap_len) {
        size_t need = snap_need(p) * 2;
        pthread_mutex_unlock(&p->mu);
        char *nb = realloc(p->snap_buf, need);
        pthread_mutex_lock(&p->mu);
        if (!nb)
            return false;
        p->snap_buf = nb;
        p->snap_len = need;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const net_model *m = p->cur->m;
    struct sink_stream_stats *ss = (struct sink_stream_stats *)p->snap_buf;
    struct stats_hist *hs = (struct stats_hist *)(ss + p->n_reg);
    const char **cls = (const char **)(hs + p->n_reg);
    char *str = (char *)(cls + net_classes(m));
    for (unsigned i = 0; i < p->n_reg; i++) {
        struct pl_stream *ps = p->reg[i];
        struct pipeline_acct a;
        stream_acct(ps, &a);
        const struct rec_tap *rec = ps->st->rec, *keep = ps->st->keep;
        hs[i] = ps->lat;
        ss[i] = (struct sink_stream_stats){
            .stream = snap_str(&str, ps->st->name),
            .windows = a.windows, .gaps = a.gaps, .samples = a.in, .dropped = a.dropped,
            .xruns = atomic_load_explicit(&ps->st->xruns, memory_order_relaxed),
            .span = a.span, .skipped = a.skipped, .tail = a.tail, .backlog = a.backlog,
            .resampling = ps->rs != NULL, .resampled = a.resampled,
            .quality = { ps->quality[FEAT_OK], ps->quality[FEAT_NO_SIGNAL],
                         ps->quality[FEAT_CLIPPED], ps->quality[FEAT_NONFINITE] },
            .unknown = ps->unknown, .anomalous = ps->anomalous,
            .state = snap_str(&str, sm_state(ps->sm)),
            .events = ps->events,
            .has_severity = ps->sev != NULL, .sev_blocks = ps->sev_blocks,
            .sev_dropped = atomic_load_explicit(&ps->sev_dropped, memory_order_relaxed),
            .sev_velocity = ps->sev_last,
            .sev_zone = ps->sev ? sev_zone(ps->sev_last, ps->sev_bounds) : NULL,
            .eof = atomic_load_explicit(&ps->st->eof, memory_order_relaxed),
            .down = atomic_load_explicit(&ps->st->down, memory_order_relaxed),
            .reopens = atomic_load_explicit(&ps->st->reopens, memory_order_relaxed),
            .latency = &hs[i],
        };
        if (ss[i].state)
            sm_since(ps->sm, &ss[i].state_seq, &ss[i].state_sample, &ss[i].state_t);
        rec_stats_fill(rec, keep, &ss[i]);
    }
    for (int i = 0; i < net_classes(m); i++)
        cls[i] = snap_str(&str, net_class_name(m, i));
    *st = (struct sink_stats){
        .t = (double)now.tv_sec + now.tv_nsec / 1e9,
        .uptime = uptime, .interval = p->stats_interval, .final = final,
        .n_streams = p->n_reg, .streams = ss,
        .queue_depth = p->head - p->tail, .queue_slots = p->n_slots, .workers = p->n_workers,
        .latency_interval = &p->lat_interval,
        .model = snap_str(&str, net_digest(m)),
        .model_path = snap_str(&str, net_path(m)),
        .model_kind = net_kind(m) == NET_ANOMALY ? "anomaly" : "classifier",
        .n_classes = (unsigned)net_classes(m), .classes = cls,
    };
    return true;
}

/* One snapshot to the sinks that take KIND. */
static void publish_stats(pipeline *p, double uptime, bool final, int kind)
{
    struct sink_account acc[8];
    struct sink_stats st;
    pthread_mutex_lock(&p->mu);
    bool ok = snapshot(p, &st, uptime, final);
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        p->publish_errors++;
        return;
    }
    st.n_sinks = sinks_accounts(p->sinks, acc, 8);
    if (st.n_sinks > 8)
        st.n_sinks = 8;
    st.sinks = acc;
    p->publish_errors += (uint64_t)sinks_stats(p->sinks, &st, kind);
    if (kind == SINK_STATS_PERIODIC)
        stats_hist_reset(&p->lat_interval);
}

/* pipeline.h: from the moment the window's last sample entered its ring. */
static int64_t latency_ns(const struct slot *sl)
{
    return mono_ns() - sl->entered_ns;
}

/* ---- States ------------------------------------------------------------------
 * Every window votes for a state (state.h): a window that is not ok for its
 * quality ("no_signal", "clipped", "nonfinite"), a rejected one for
 * "unknown", a classifier's window whose top probability is below the
 * stream's smooth.min_score for nothing, any other for its label (an
 * anomaly model's "normal" or "anomaly").  The publisher sees a stream's
 * windows in order, so the smoother lives here.  A change goes out on topic
 * "_events" (and --stdout) right after the window that made it, and each
 * message carries the state after its window.  A subscription to exactly
 * "_state" is answered with a "_state" message holding every stream's
 * state: a late subscriber learns where things stand without waiting for
 * the next change (it goes to every subscriber of "_state", "_" and "",
 * like any message). */
static int vote_of(const struct slot *sl, const char **name)
{
    const net_model *m = sl->model->m;
    if (sl->cls < 0) {
        *name = feat_quality_name(sl->health.quality);
        return VOTE_QUALITY + (int)sl->health.quality;
    }
    if (sl->unknown) {
        *name = "unknown";
        return VOTE_UNKNOWN;
    }
    *name = net_class_name(m, sl->cls);
    if (net_kind(m) != NET_ANOMALY && sl->probs[sl->cls] < sl->ps->min_score)
        return SM_NONE;
    return sl->cls;
}

static void publish_event(pipeline *p, const struct pl_stream *ps, const struct sm_change *c,
                          uint64_t at_seq, const char *model)
{
    struct sink_event e = {
        .stream = ps->st->name, .from = c->from, .to = c->to,
        .seq = c->seq, .sample = c->sample, .t = c->t, .at_seq = at_seq,
        .agree = c->agree, .windows = c->windows, .score = c->score, .model = model,
    };
    p->publish_errors += (uint64_t)sinks_event(p->sinks, &e);
}

/* The "_severity" message: the velocity of the block that ended before
 * this window, and its zone.  Its t is the time of the block's first sample
 * (the window's own clock, counted back). */
static void publish_severity(pipeline *p, struct pl_stream *ps, const struct slot *sl,
                             const struct sev_est *e)
{
    size_t n = sev_block(ps->sev);
    struct sink_severity m = {
        .stream = ps->st->name,
        .t = sl->t - ((double)sl->sample - (double)(e->end - n)) / ps->out_rate,
        .seconds = (double)n / ps->out_rate,
        .sample = e->end - n,
        .velocity_mm_s = e->v,
        .zone = sev_zone(e->v, ps->sev_bounds),
        .band_hz = { SEV_F_LO, SEV_F_HI },
        .bounds_mm_s = { ps->sev_bounds[0], ps->sev_bounds[1], ps->sev_bounds[2] },
        .has_defects = ps->sev_bearing,
    };
    static_assert(SEV_NDEFECT == SINK_NDEFECT, "the same four defect frequencies");
    for (int d = 0; d < SEV_NDEFECT; d++) {
        m.defect_hz[d] = ps->sev_hz[d];
        m.defect_db[d] = e->db[d];
    }
    p->publish_errors += (uint64_t)sinks_severity(p->sinks, &m);
    ps->sev_last = e->v;
    ps->sev_blocks++;
}

static void publish_slot(pipeline *p, struct slot *sl)
{
    struct pl_stream *ps = sl->ps;
    const struct pl_model *g = sl->model;
    const char *vname = NULL;
    int vote = vote_of(sl, &vname);
    struct sm_change change;
    if (ps->sm_model != g->id) {
        sm_forget(ps->sm);
        ps->sm_model = g->id;
    }
    bool changed = sm_push(ps->sm, vote, vname, sl->seq, sl->sample, sl->t,
                           sl->cls < 0 || net_kind(g->m) == NET_ANOMALY ? NAN
                                                                         : sl->probs[sl->cls],
                           &change);
    struct result r = {
        .stream = ps->st->name,
        .seq = sl->seq,
        .sample = sl->sample,
        .t = sl->t,
        .cls = sl->cls,
        .label = sl->cls < 0 ? NULL : sl->unknown ? "unknown" : net_class_name(g->m, sl->cls),
        .state = sm_state(ps->sm),
        .score = sl->cls < 0 || net_kind(g->m) == NET_ANOMALY ? NAN : sl->probs[sl->cls],
        .probs = sl->cls < 0 || net_kind(g->m) == NET_ANOMALY ? NULL : sl->probs,
        .logits = sl->cls < 0 || net_kind(g->m) == NET_ANOMALY ? NULL : sl->logits,
        .n_classes = g->n_classes,
        .quality = feat_quality_name(sl->health.quality),
        .rms = sl->health.rms, .peak = sl->health.peak,
        .crest = sl->health.crest, .kurtosis = sl->health.kurtosis,
        .has_detector = net_detector_dim(g->m) > 0,
        .anomaly = sl->anomaly, .threshold = sl->threshold,
        .gap = sl->gap,
        .model = net_digest(g->m),
    };
    /* latency_us covers the send itself, so it is known only after it; the
     * message carries the time up to the call. */
    r.latency_us = latency_ns(sl) / 1000;
    bool cancelled = false;
    p->publish_errors += (uint64_t)sinks_result(p->sinks, &r, &cancelled);
    if (cancelled)
        p->publish_abandoned++;
    if (ps->st->keep)
        keep_offer(ps->st->keep, &r, sl->x, g->m, changed, &p->may_wait);
    for (unsigned i = 0; i < sl->sev_n; i++)
        publish_severity(p, ps, sl, &sl->sev[i]);
    if (changed) {
        publish_event(p, ps, &change, sl->seq, net_digest(g->m));
        ps->events++;
    }
    uint64_t us = (uint64_t)(latency_ns(sl) / 1000);
    stats_hist_add(&ps->lat, us);
    stats_hist_add(&p->lat_interval, us);
    stats_hist_add(&p->lat_status, us);
    ps->published++;
    ps->quality[sl->health.quality]++;
    ps->unknown += sl->unknown;
    ps->anomalous += net_kind(g->m) == NET_ANOMALY && sl->cls == 1;
    ps->gaps += sl->gap;
    if (sl->gap)
        atomic_fetch_add_explicit(&p->gaps, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->published, 1, memory_order_relaxed);
}

static void *publisher_main(void *arg)
{
    pipeline *p = arg;
    const int64_t t0 = mono_ns();
    const int64_t period = p->stats_interval > 0 ? (int64_t)(p->stats_interval * 1e9) : 0;
    int64_t next_stats = period ? t0 + period : INT64_MAX;
    int64_t next_status = t0 + PIPELINE_STATUS_NS;
    const bool live = sinks_want_live(p->sinks);
    int64_t next_live = live ? t0 + PIPELINE_LIVE_NS : INT64_MAX;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        int64_t now = mono_ns();
        if (now >= next_status) {
            /* The latency over the last period, for the main thread's
             * STATUS= (pipeline_latency). */
            atomic_store_explicit(&p->status_p50, stats_hist_pct(&p->lat_status, 0.50),
                                  memory_order_relaxed);
            atomic_store_explicit(&p->status_p99, stats_hist_pct(&p->lat_status, 0.99),
                                  memory_order_relaxed);
            atomic_store_explicit(&p->status_max, p->lat_status.max, memory_order_relaxed);
            stats_hist_reset(&p->lat_status);
            next_status = now + PIPELINE_STATUS_NS;
        }
        /* stop first, then stats: a stats message never delays a stop; and
         * no `continue` after one, so done slots go out between any two
         * (a tiny interval cannot starve them: issue 16). */
        if (p->abort) {
            /* Between two batches: every slot from tail to head is cut
             * but will never go out (pipeline_abandon, a failed start). */
            p->publish_abandoned += p->head - p->tail;
            break;
        }
        if (now >= next_stats) {
            pthread_mutex_unlock(&p->mu);
            publish_stats(p, (double)(now - t0) / 1e9, false, SINK_STATS_PERIODIC);
            /* the next one a period after this one ended, whatever it cost */
            next_stats = mono_ns() + period;
            pthread_mutex_lock(&p->mu);
        }
        if (live && now >= next_live) {
            pthread_mutex_unlock(&p->mu);
            publish_stats(p, (double)(now - t0) / 1e9, false, SINK_STATS_LIVE);
            next_live = mono_ns() + PIPELINE_LIVE_NS;
            pthread_mutex_lock(&p->mu);
        }
        if (sinks_want_state(p->sinks)) {
            pthread_mutex_unlock(&p->mu);
            publish_stats(p, (double)(now - t0) / 1e9, false, SINK_STATS_STATE);
            pthread_mutex_lock(&p->mu);
        }
        /* Every done slot from tail on, sent with the lock released and
         * freed in one go. */
        uint64_t t0s = p->tail, end = t0s;
        while (end < p->head && p->slots[end % p->n_slots].done)
            end++;
        if (end > t0s) {
            pthread_mutex_unlock(&p->mu);
            for (uint64_t i = t0s; i < end; i++)
                publish_slot(p, &p->slots[i % p->n_slots]);
            pthread_mutex_lock(&p->mu);
            for (uint64_t i = t0s; i < end; i++)
                p->slots[i % p->n_slots].done = false;
            p->tail = end;
            if (p->free_waiting && p->head - p->tail <= p->n_slots - p->batch)
                pthread_cond_signal(&p->cv_free);
            continue;
        }
        if (p->input_done && p->tail == p->head)
            break;
        int64_t until = now + TICK_NS;
        p->pub_waiting = true;
        if (until > next_stats)
            until = next_stats;
        if (until > next_status)
            until = next_status;
        if (until > next_live)
            until = next_live;
        cond_wait_until(&p->cv_done, &p->mu, until);
        p->pub_waiting = false;
    }
    bool aborted = p->abort;
    pthread_mutex_unlock(&p->mu);
    /* The last word: every stream's final account, once all was published
     * (not after a hard stop: the publisher is being given up). */
    if (period && !aborted)
        publish_stats(p, (double)(mono_ns() - t0) / 1e9, true,
                      SINK_STATS_PERIODIC | (live ? SINK_STATS_LIVE : 0));
    atomic_store(&p->finished, true);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------- */

int pipeline_start(pipeline *p, sink_set *sinks)
{
    int rc;

    p->sinks = sinks;
    p->snap_len = snap_need(p) * 2;
    p->snap_buf = malloc(p->snap_len);
    if (!p->snap_buf)
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

void pipeline_seal(pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->sealed = true;
    pthread_mutex_unlock(&p->mu);
    if (p->wake_ok)
        sem_post(&p->wake);
}

bool pipeline_finished(const pipeline *p)
{
    return atomic_load(&((pipeline *)p)->finished);
}

void pipeline_join(pipeline *p)
{
    if (!p || p->joined)
        return;
    pipeline_seal(p);
    if (p->windower_started)
        pthread_join(p->windower_tid, NULL);
    if (p->publisher_started)
        pthread_join(p->publisher_tid, NULL);
    for (unsigned i = 0; i < p->workers_started; i++)
        pthread_join(p->worker_tid[i], NULL);
    p->joined = true;
    if (!p->publisher_started)
        return;
    for (unsigned i = 0; i < p->n_reg; i++)
        stream_summary(p->reg[i]);
    if (p->publish_errors)
        log_warn("%" PRIu64 " messages could not be published", p->publish_errors);
    if (p->publish_abandoned)
        log_warn("%" PRIu64 " results abandoned at the hard stop (a second signal, "
                 "or a subscriber that took nothing)", p->publish_abandoned);
}

uint64_t pipeline_publish_errors(const pipeline *p)
{
    return p->publish_errors;
}

void pipeline_destroy(pipeline *p)
{
    if (!p)
        return;
    pipeline_join(p);
    for (unsigned i = 0; i < p->n_reg; i++)
        stream_free(p->reg[i]);
    free(p->reg);
    free(p->wlist);
    model_destroy(p->cur, p->n_workers, true);
    while (p->retired) {
        struct pl_model *g = p->retired;
        p->retired = g->next;
        model_destroy(g, p->n_workers, true);
    }
    free(p->worker_tid);
    free(p->slots);
    free(p->slot_mem);
    free(p->norm_mem);
    free(p->snap_buf);
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
    /* reg changes only in the main thread, the caller. */
    for (unsigned i = 0; i < q->n_reg; i++)
        if (atomic_load_explicit(&q->reg[i]->popped, memory_order_relaxed)
            != atomic_load_explicit(&q->reg[i]->st->written, memory_order_relaxed))
            return false;
    pthread_mutex_lock(&q->mu);
    bool idle = q->head == q->tail;
    pthread_mutex_unlock(&q->mu);
    return idle;
}

uint64_t pipeline_dropped(const pipeline *p)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < p->n_reg; i++) {
        const struct pl_stream *ps = p->reg[i];
        n += atomic_load_explicit(&ps->st->dropped, memory_order_relaxed)
             + atomic_load_explicit(&ps->discarded, memory_order_relaxed)
             + atomic_load_explicit(&ps->rs_lost, memory_order_relaxed);
    }
    return n;
}

void pipeline_queue(const pipeline *p, unsigned *depth, unsigned *slots, uint64_t *backlog)
{
    pipeline *q = (pipeline *)p;
    uint64_t b = 0;
    /* reg changes only in the main thread, the caller. */
    for (unsigned i = 0; i < q->n_reg; i++)
        b += atomic_load_explicit(&q->reg[i]->st->written, memory_order_relaxed)
             - atomic_load_explicit(&q->reg[i]->popped, memory_order_relaxed);
    pthread_mutex_lock(&q->mu);
    *depth = (unsigned)(q->head - q->tail);
    pthread_mutex_unlock(&q->mu);
    *slots = q->n_slots;
    *backlog = b;
}

uint64_t pipeline_gaps(const pipeline *p)
{
    return atomic_load_explicit(&((pipeline *)p)->gaps, memory_order_relaxed);
}

void pipeline_latency(const pipeline *p, uint64_t *p50, uint64_t *p99, uint64_t *max)
{
    pipeline *q = (pipeline *)p;
    *p50 = atomic_load_explicit(&q->status_p50, memory_order_relaxed);
    *p99 = atomic_load_explicit(&q->status_p99, memory_order_relaxed);
    *max = atomic_load_explicit(&q->status_max, memory_order_relaxed);
}

void pipeline_abandon(pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->abort = true;
    atomic_store_explicit(&p->may_wait, false, memory_order_relaxed);
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_done);
    pthread_cond_broadcast(&p->cv_free);
    pthread_mutex_unlock(&p->mu);
    pipeline_discard(p);        /* and wake the windower */
}

void pipeline_discard(pipeline *p)
{
    atomic_store_explicit(&p->discard, true, memory_order_relaxed);
    if (p->wake_ok)
        sem_post(&p->wake);
}

unsigned pipeline_workers(const pipeline *p) { return p->n_workers; }
unsigned pipeline_streams(const pipeline *p) { return p->n_reg; }

void pipeline_stream_info(const pipeline *p, unsigned i, char *buf, size_t len)
{
    const struct pl_stream *ps = p->reg[i];
    if (ps->rs)
        snprintf(buf, len, "stream %s: %g Hz resampled to %g Hz, hop %u", ps->st->name,
                 ps->in_rate, ps->out_rate, ps->st->hop);
    else
        snprintf(buf, len, "stream %s: %g Hz, hop %u", ps->st->name, ps->in_rate, ps->st->hop);
}
