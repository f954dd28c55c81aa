/* SPDX-License-Identifier: Apache-2.0 */
/* record.c — recording per stream, and keeping the interesting windows.
 *
 * DESIGN (docs/DESIGN.md, "Recording and kept windows"):
 *
 *   capture thread ──rec_push──▶ tap queue (ring) ──┐
 *                  ──rec_loss──▶ loss queue ─────────┤
 *   publisher      ──keep_offer▶ clip slots ─────────┴─▶ writer thread ─▶ disk
 *
 * Recording.  Each recording tap has a ring of REC_QUEUE_S seconds of
 * samples (at the stream's rate) and a loss queue, both single-producer
 * (the source's capture thread) single-consumer (the writer).  rec_push()
 * copies the samples just written into the stream ring, all or none: when
 * the queue has no room (the disk is slower than the input) the samples are
 * counted as lost and the queue refills only once it is half empty, so one
 * episode of a slow disk is one entry in the file's sidecar, not hundreds.
 * Positions count every sample the stream captured (its `written` count,
 * the window "sample" of a stream at the model's rate), lost to the queue
 * or not; a loss entry {at, n, why} is pushed before the first sample after
 * it, so the writer, which reads the queue (acquire) before the loss queue,
 * always sees it in time.  Losses of the stream itself (stream_note_drop:
 * an xrun, a full stream ring) are entries too, with n = 0 samples skipped
 * in the file (they never were in the stream).  Entries wait on the
 * producer side (pend_*) while the loss queue is full, and the samples
 * that would need them are lost with them: a position is never guessed.
 * A file source at pace = fast is the exception: it waits for the stream
 * ring already (lossless), and rec_push() waits for the queue as well.
 *
 * Files are 32-bit float WAV, mono, at the stream's rate: the samples the
 * daemon classified, bit-exact (16- and 24-bit input converts to float
 * exactly).  A file is named STREAM-YYYYmmddTHHMMSSZ-FIRST.wav after its
 * first sample's time and position; it rotates before it would exceed
 * max_bytes and after max_age seconds of samples, so consecutive files
 * continue each other sample for sample.  Its sidecar FILE.json is written
 * when the file opens ("complete": false) and again when it closes.  A
 * failed write or open (a full disk) stops the tap's recording for good:
 * one log line, "stopped" in _stats; what arrives afterwards is counted as
 * unrecorded.  Classification never notices.
 *
 * Kept windows.  A keep tap has KEEP_SLOTS slots filled by the publisher
 * thread (keep_offer) and emptied by the writer, each a window's raw
 * samples and its metadata, the probabilities already formatted.  The rate
 * limit (max_per_minute, per minute of CLOCK_MONOTONIC) and the size cap
 * (each clip counts as KEEP_CLIP_BYTES) are checked by the publisher; a
 * full set of slots is counted too, except for a fast file source, whose
 * publisher waits for the writer (the replay of a recording loses nothing).
 *
 * The writer wakes every WRITER_TICK_MS, or at once for a detach or a
 * fast file source waiting for room (a semaphore: sem_post never blocks).  The tap
 * list is under r->mu; the writer unlinks a tap when it has finished it and
 * only then marks it closed, so the main thread frees only unlinked taps and
 * the writer never follows a pointer to a freed one.
 *
 * Test hook: TRIDENT_TEST_RECORD_DELAY_MS=N makes the writer sleep N ms
 * after every write of at most REC_CHUNK samples (a slow disk), except for
 * the last drain of a tap at its detach.
 */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sndfile.h>

#include "config.h"
#include "log.h"
#include "net.h"
#include "publish.h"
#include "source.h"

#define REC_QUEUE_S     4.0
#define REC_QUEUE_MIN   (1u << 15)
#define REC_LOSSQ       64u
#define REC_CHUNK       4096u
#define REC_HEADER      1024u           /* bytes left for a WAV header */
#define REC_LOSS_JSON   4096u           /* a file's losses, as JSON */
#define KEEP_SLOTS      32u
#define KEEP_CLIP_BYTES (NET_WIN * 4u + 2048u)
#define WRITER_TICK_MS  20
#define REC_WAIT_MS     5000            /* a fast file source waits at most this per push */
#define KEEP_WAIT_MS    1000            /* the publisher, per clip, only in a pure replay */

enum { WHY_WRITER, WHY_INPUT };
static const char *const why_names[] = { "writer", "input" };

struct keep_slot {
    float    x[NET_WIN];
    uint64_t seq, sample;
    double   t, rate, score, anomaly, threshold;
    char     label[96], state[96], quality[16], reason[16], model[16];
    char     probs[1024];
};

struct rec_tap {
    recorder        *r;
    struct rec_tap  *next;           /* r->taps, under r->mu */
    struct stream   *st;
    bool             keep;           /* a keep tap, else a recording tap */
    char             name[STREAM_NAME_MAX];   /* for file names */
    char             dir[PATH_MAX];
    char             input[PATH_MAX + 16];    /* "file PATH", "alsa DEVICE" */
    char             format[24];     /* the input's sample format */
    /* recording, set at attach */
    ring            *q;
    uint64_t         max_samples;    /* per file */
    bool             wait;           /* a fast file source: wait for room, lose nothing */
    double           max_age;
    /* capture thread */
    uint64_t         pos;            /* samples offered so far (stream position) */
    bool             losing;         /* queue full: refill to half first */
    uint64_t         pend_at, pend_n;          /* queue loss not yet pushed */
    uint64_t         pend_in_at, pend_in_n;    /* input loss not yet pushed */
    struct { _Atomic uint64_t at, n; _Atomic uint32_t why; } lq[REC_LOSSQ];
    _Atomic uint32_t lq_head, lq_tail;
    /* writer */
    SNDFILE         *sf;
    char             base[PATH_MAX]; /* the open file, without .wav */
    uint64_t         wpos;           /* stream position of the next queued sample */
    uint64_t         f_first, f_n;   /* the open file: first position, samples */
    double           f_start;        /* Unix time of its first sample */
    char             f_loss[REC_LOSS_JSON];
    size_t           f_loss_len;
    unsigned         f_loss_more;    /* entries beyond f_loss */
    uint64_t         f_lost_writer, f_lost_input;
    bool             stop_logged;
    /* keep, set at attach */
    double           unsure_below;
    bool             k_unknown, k_anomaly, k_events;
    uint64_t         k_max_bytes;
    unsigned         k_per_minute;
    /* publisher */
    int64_t          k_minute;       /* start of the current minute, ns */
    unsigned         k_in_minute;
    uint64_t         k_reserved;     /* bytes counted against the cap */
    struct keep_slot *slots;         /* KEEP_SLOTS */
    _Atomic uint32_t k_head, k_tail;
    /* counters: one writer each, read by _stats */
    _Atomic uint64_t recorded, lost, unrecorded, files, bytes;   /* recording */
    _Atomic uint64_t kept, rate_limited, capped, full, failed;   /* keep */
    _Atomic uint64_t k_refund;       /* writer: bytes of failed clips, given back to the cap */
    _Atomic bool     stopped;        /* writer: a write failed, recording off */
    /* under r->mu */
    bool             closing, closed;
};

struct recorder {
    pthread_mutex_t  mu;
    sem_t            wake;           /* the writer waits here (posted: work waits) */
    pthread_cond_t   cv_closed;      /* detach waits here */
    struct rec_tap  *taps;
    bool             quit;
    pthread_t        tid;
    unsigned         delay_ms;       /* test hook */
    char             model[16];      /* under mu */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
    /* one writer: a relaxed load and store would do; fetch_add is as cheap */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A name safe in a file name: letters, digits, '.', '-', '_'; others '_'. */
static void safe_name(char *dst, size_t len, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c == '.' || c == '-' || c == '_' ? (char)c : '_';
    }
    dst[i] = 0;
    if (dst[0] == '.')
        dst[0] = '_';           /* no hidden files, no ".." */
}

/* mkdir -p */
static int make_dir(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return -ENAMETOOLONG;
    for (char *c = p + 1; ; c++) {
        if (*c == '/' || !*c) {
            char keep = *c;
            *c = 0;
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -errno;
            *c = keep;
            if (!keep)
                break;
        }
    }
    struct stat sb;
    if (stat(p, &sb) < 0)
        return -errno;
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

int recorder_check_dir(const char *dir)
{
    char p[PATH_MAX];
    struct stat sb;
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return -ENAMETOOLONG;
    for (;;) {
        if (stat(p, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                return -ENOTDIR;
            return access(p, W_OK | X_OK) == 0 ? 0 : -errno;
        }
        if (errno != ENOENT)
            return -errno;
        char *slash = strrchr(p, '/');
        if (!slash)
            return access(".", W_OK | X_OK) == 0 ? 0 : -errno;   /* relative, first part */
        if (slash == p) {
            p[1] = 0;       /* "/" */
            continue;
        }
        *slash = 0;
    }
}

static void utc_stamp(double t, char *buf, size_t len)
{
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

static void iso_time(double t, char *buf, size_t len)
{
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06ldZ", (long)((t - floor(t)) * 1e6));
}

/* Write text to path atomically (path.tmp, then rename).  0 or -errno. */
static int write_text(const char *path, const char *text, size_t n)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    size_t w = fwrite(text, 1, n, f);
    int rc = (w == n && fflush(f) == 0) ? 0 : -(errno ? errno : EIO);
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path) < 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void *writer_main(void *arg);

int recorder_create(recorder **out, char *err, size_t errlen)
{
    recorder *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    sem_init(&r->wake, 0, 0);
    pthread_cond_init(&r->cv_closed, &ca);
    pthread_condattr_destroy(&ca);
    const char *d = getenv("TRIDENT_TEST_RECORD_DELAY_MS");
    if (d && *d)
        r->delay_ms = (unsigned)strtoul(d, NULL, 10);
    /* The writer takes no signals: the main thread does (a reload creates
     * it with them unblocked). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&r->tid, NULL, writer_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errlen, "cannot start the recording thread: %s", strerror(rc));
        sem_destroy(&r->wake);
        pthread_cond_destroy(&r->cv_closed);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return -rc;
    }
    *out = r;
    return 0;
}

void recorder_set_model(recorder *r, const char *digest)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->model, sizeof r->model, "%s", digest ? digest : "");
    pthread_mutex_unlock(&r->mu);
}

static void tap_free(struct rec_tap *t)
{
    if (!t)
        return;
    if (t->q)
        ring_destroy(t->q);
    free(t->slots);
    free(t);
}

static struct rec_tap *tap_new(recorder *r, struct stream *st, const struct cfg_stream *c,
                               bool keep)
{
    struct rec_tap *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->r = r;
    t->st = st;
    t->keep = keep;
    t->wait = c->type == CFG_FILE && c->pace == CFG_PACE_FAST;
    safe_name(t->name, sizeof t->name, st->name);
    snprintf(t->dir, sizeof t->dir, "%s", keep ? c->keep_path : c->record_path);
    snprintf(t->input, sizeof t->input, "%s", c->type == CFG_FILE ? c->path : c->device);
    snprintf(t->format, sizeof t->format, "%s", c->type == CFG_ALSA && c->format ? c->format
                                                                                  : "file");
    if (keep) {
        t->slots = calloc(KEEP_SLOTS, sizeof *t->slots);
        if (!t->slots) {
            free(t);
            return NULL;
        }
        t->unsure_below = c->keep_unsure_below;
        t->k_unknown = c->keep_unknown;
        t->k_anomaly = c->keep_anomaly;
        t->k_events = c->keep_events;
        t->k_max_bytes = c->keep_max_bytes;
        t->k_per_minute = c->keep_max_per_minute;
        t->k_minute = mono_ns();
        return t;
    }
    double cap = st->rate * REC_QUEUE_S;
    if (cap < REC_QUEUE_MIN)
        cap = REC_QUEUE_MIN;
    if (cap > (double)(1u << 28))
        cap = (double)(1u << 28);
    t->q = ring_create((uint32_t)cap);
    if (!t->q) {
        free(t);
        return NULL;
    }
    t->max_samples = (c->record_max_bytes - REC_HEADER) / sizeof(float);
    t->max_age = c->record_max_age;
    return t;
}

static void tap_link(recorder *r, struct rec_tap *t)
{
    pthread_mutex_lock(&r->mu);
    t->next = r->taps;
    r->taps = t;
    pthread_mutex_unlock(&r->mu);
}

int recorder_attach(recorder *r, struct source *s, char *err, size_t errlen)
{
    const struct cfg_stream *c = s->cfg;
    int rc;
    for (int k = 0; k < 2; k++) {
        const char *dir = k ? c->keep_path : c->record_path;
        if (!dir)
            continue;
        if ((rc = make_dir(dir)) < 0 || (rc = access(dir, W_OK) < 0 ? -errno : 0) < 0) {
            snprintf(err, errlen, "%s.path \"%s\": %s", k ? "keep" : "record", dir,
                     strerror(-rc));
            return rc;
        }
    }
    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        if (c->record_path && !(st->rec = tap_new(r, st, c, false)))
            goto nomem;
        if (c->keep_path && !(st->keep = tap_new(r, st, c, true)))
            goto nomem;
    }
    for (unsigned i = 0; i < s->n_streams; i++) {
        if (s->streams[i].rec)
            tap_link(r, s->streams[i].rec);
        if (s->streams[i].keep)
            tap_link(r, s->streams[i].keep);
    }
    return 0;
nomem:
    for (unsigned i = 0; i < s->n_streams; i++) {
        tap_free(s->streams[i].rec);
        tap_free(s->streams[i].keep);
        s->streams[i].rec = s->streams[i].keep = NULL;
    }
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static void tap_close_wait(recorder *r, struct rec_tap *t)
{
    pthread_mutex_lock(&r->mu);
    t->closing = true;
    sem_post(&r->wake);
    while (!t->closed)
        pthread_cond_wait(&r->cv_closed, &r->mu);
    pthread_mutex_unlock(&r->mu);
    tap_free(t);
}

void recorder_detach(recorder *r, struct source *s)
{
    if (!r)
        return;
    for (unsigned i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        if (st->rec)
            tap_close_wait(r, st->rec);
        if (st->keep)
            tap_close_wait(r, st->keep);
        st->rec = st->keep = NULL;
    }
}

void recorder_destroy(recorder *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_mutex_unlock(&r->mu);
    sem_post(&r->wake);
    pthread_join(r->tid, NULL);
    sem_destroy(&r->wake);
    pthread_cond_destroy(&r->cv_closed);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- capture thread ------------------------------------------------------- */

/* Wake the writer unless a wake-up is pending already (a waiting thread
 * must not pile up posts that the writer would then spin through). */
static void wake_writer(recorder *r)
{
    int v = 1;
    if (sem_getvalue(&r->wake, &v) == 0 && v == 0)
        sem_post(&r->wake);
}


/* Push the pending entries, in position order; false if the loss queue has
 * no room for them (they stay pending). */
static bool push_pending(struct rec_tap *t)
{
    uint32_t h = atomic_load_explicit(&t->lq_head, memory_order_relaxed);
    uint32_t tl = atomic_load_explicit(&t->lq_tail, memory_order_acquire);
    unsigned need = (t->pend_n > 0) + (t->pend_in_n > 0);
    if (need == 0)
        return true;
    if (REC_LOSSQ - (h - tl) < need)
        return false;
    /* the queue loss began first unless the input loss is older */
    bool in_first = t->pend_in_n && (!t->pend_n || t->pend_in_at < t->pend_at);
    for (int k = 0; k < 2; k++) {
        bool input = (k == 0) == in_first;
        uint64_t at = input ? t->pend_in_at : t->pend_at, n = input ? t->pend_in_n : t->pend_n;
        if (!n)
            continue;
        atomic_store_explicit(&t->lq[h % REC_LOSSQ].at, at, memory_order_relaxed);
        atomic_store_explicit(&t->lq[h % REC_LOSSQ].n, n, memory_order_relaxed);
        atomic_store_explicit(&t->lq[h % REC_LOSSQ].why, input ? WHY_INPUT : WHY_WRITER,
                              memory_order_relaxed);
        h++;
    }
    /* Release: the entries before the samples after them (ring commit). */
    atomic_store_explicit(&t->lq_head, h, memory_order_release);
    t->pend_n = t->pend_in_n = 0;
    return true;
}

void rec_loss(struct rec_tap *t, uint64_t n)
{
    if (!t->pend_in_n)
        t->pend_in_at = t->pos;
    t->pend_in_n += n;
}

void rec_push(struct rec_tap *t, const struct ring_vec *v, uint32_t n)
{
    if (n == 0)
        return;
    if (atomic_load_explicit(&t->stopped, memory_order_relaxed)) {
        add(&t->unrecorded, n);
        t->pos += n;
        t->pend_in_n = 0;
        return;
    }
    uint32_t space = ring_write_space(t->q);
    /* A fast file source waits for its stream ring already (lossless):
     * it waits for the disk too.  The writer drains on its own. */
    if (t->wait && space < n) {
        /* bounded: a stalled disk must not hold the source's stop for good */
        int64_t until = mono_ns() + REC_WAIT_MS * 1000000LL;
        while (space < n && !atomic_load_explicit(&t->stopped, memory_order_relaxed)
               && mono_ns() < until) {
            struct timespec ts = { 0, 200000 };
            wake_writer(t->r);
            nanosleep(&ts, NULL);
            space = ring_write_space(t->q);
        }
    }
    if (atomic_load_explicit(&t->stopped, memory_order_relaxed)) {
        add(&t->unrecorded, n);
        t->pos += n;
        t->pend_in_n = 0;
        return;
    }
    if (t->losing && space < ring_capacity(t->q) / 2)
        space = 0;
    if (space < n || !push_pending(t)) {
        t->losing = true;
        if (!t->pend_n)
            t->pend_at = t->pos;
        t->pend_n += n;
        t->pos += n;
        add(&t->lost, n);
        return;
    }
    t->losing = false;
    uint32_t a = n < v->n[0] ? n : v->n[0];
    ring_write(t->q, v->p[0], a);
    if (n > a)
        ring_write(t->q, v->p[1], n - a);
    t->pos += n;
}

/* ---- publisher thread ----------------------------------------------------- */

void keep_offer(struct rec_tap *t, const struct result *r, const float *x,
                const net_model *m, bool event, const _Atomic bool *may_wait)
{
    const char *reason = NULL;
    if (event && t->k_events)
        reason = "event";
    else if (r->label && !strcmp(r->label, "unknown") && t->k_unknown)
        reason = "unknown";
    else if (r->label && !strcmp(r->label, "anomaly") && t->k_anomaly)
        reason = "anomaly";
    else if (r->probs && t->unsure_below > 0 && r->score < t->unsure_below)
        reason = "unsure";
    if (!reason)
        return;
    int64_t now = mono_ns();
    if (now - t->k_minute >= 60000000000LL) {
        t->k_minute = now;
        t->k_in_minute = 0;
    }
    if (t->k_in_minute >= t->k_per_minute) {
        add(&t->rate_limited, 1);
        return;
    }
    uint64_t refunded = get(&t->k_refund);
    if (t->k_reserved - refunded + KEEP_CLIP_BYTES > t->k_max_bytes) {
        add(&t->capped, 1);
        return;
    }
    uint32_t h = atomic_load_explicit(&t->k_head, memory_order_relaxed);
    uint32_t tl = atomic_load_explicit(&t->k_tail, memory_order_acquire);
    /* a pure replay: the publisher waits for the writer, for a while */
    for (int64_t until = mono_ns() + KEEP_WAIT_MS * 1000000LL;
         t->wait && h - tl >= KEEP_SLOTS && atomic_load_explicit(may_wait, memory_order_relaxed)
         && mono_ns() < until;) {
        struct timespec ts = { 0, 200000 };
        wake_writer(t->r);
        nanosleep(&ts, NULL);
        tl = atomic_load_explicit(&t->k_tail, memory_order_acquire);
    }
    if (h - tl >= KEEP_SLOTS) {
        add(&t->full, 1);
        return;
    }
    t->k_in_minute++;
    t->k_reserved += KEEP_CLIP_BYTES;
    struct keep_slot *k = &t->slots[h % KEEP_SLOTS];
    memcpy(k->x, x, sizeof k->x);
    k->seq = r->seq;
    k->sample = r->sample;
    k->t = r->t;
    k->rate = net_sample_rate(m) > 0 ? net_sample_rate(m) : t->st->rate;
    k->score = r->score;
    k->anomaly = r->has_detector ? r->anomaly : NAN;
    k->threshold = r->has_detector ? r->threshold : NAN;
    snprintf(k->label, sizeof k->label, "%s", r->label ? r->label : "");
    snprintf(k->state, sizeof k->state, "%s", r->state ? r->state : "");
    snprintf(k->quality, sizeof k->quality, "%s", r->quality ? r->quality : "");
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    snprintf(k->model, sizeof k->model, "%s", r->model ? r->model : "");
    size_t pos = 0;
    k->probs[0] = 0;
    if (r->probs) {
        publish_json_printf(k->probs, sizeof k->probs, &pos, "{");
        for (int i = 0; i < r->n_classes; i++) {
            if (i)
                publish_json_printf(k->probs, sizeof k->probs, &pos, ",");
            publish_json_string(k->probs, sizeof k->probs, &pos, net_class_name(m, i));
            publish_json_printf(k->probs, sizeof k->probs, &pos, ":%.9g", (double)r->probs[i]);
        }
        publish_json_printf(k->probs, sizeof k->probs, &pos, "}");
        if (pos >= sizeof k->probs)
            snprintf(k->probs, sizeof k->probs, "null");    /* cut short: none */
    } else
        snprintf(k->probs, sizeof k->probs, "null");
    /* Release: the slot is written before the writer can see it. */
    atomic_store_explicit(&t->k_head, h + 1, memory_order_release);
}

/* ---- the writer ----------------------------------------------------------- */

static void stop_recording(struct rec_tap *t, const char *what, const char *why)
{
    if (!t->stop_logged)
        log_err("stream %s: recording stopped: %s: %s (classification goes on)",
                t->st->name, what, why);
    t->stop_logged = true;
    atomic_store_explicit(&t->stopped, true, memory_order_relaxed);
}

static void sidecar(struct rec_tap *t, bool complete)
{
    /* the input's path and the stream's name escaped at worst 6 bytes a byte */
    char model[16], path[PATH_MAX + 8], start[40],
         b[REC_LOSS_JSON + 6 * (PATH_MAX + 16) + 6 * STREAM_NAME_MAX + 1024];
    size_t pos = 0;
    pthread_mutex_lock(&t->r->mu);
    memcpy(model, t->r->model, sizeof model);
    pthread_mutex_unlock(&t->r->mu);
    iso_time(t->f_start, start, sizeof start);
    publish_json_printf(b, sizeof b, &pos, "{\"stream\":");
    publish_json_string(b, sizeof b, &pos, t->st->name);
    publish_json_printf(b, sizeof b, &pos, ",\"input\":");
    publish_json_string(b, sizeof b, &pos, t->input);
    publish_json_printf(b, sizeof b, &pos, ",\"input_format\":");
    publish_json_string(b, sizeof b, &pos, t->format);
    publish_json_printf(b, sizeof b, &pos,
                        ",\"rate\":%.17g,\"encoding\":\"float32\",\"channels\":1,"
                        "\"first_sample\":%" PRIu64 ",\"samples\":%" PRIu64
                        ",\"start\":\"%s\",\"start_unix\":%.6f,\"model\":",
                        t->st->rate, t->f_first, t->f_n, start, t->f_start);
    publish_json_string(b, sizeof b, &pos, model);
    publish_json_printf(b, sizeof b, &pos,
                        ",\"lost_writer\":%" PRIu64 ",\"lost_input\":%" PRIu64
                        ",\"losses\":[%.*s],\"losses_not_listed\":%u,\"complete\":%s}\n",
                        t->f_lost_writer, t->f_lost_input, (int)t->f_loss_len, t->f_loss,
                        t->f_loss_more, complete ? "true" : "false");
    snprintf(path, sizeof path, "%s.json", t->base);
    if (pos < sizeof b && write_text(path, b, pos) == 0)
        add(&t->bytes, pos);
}

static void close_file(struct rec_tap *t)
{
    if (!t->sf)
        return;
    char path[PATH_MAX + 8];
    int rc = sf_close(t->sf);
    t->sf = NULL;
    snprintf(path, sizeof path, "%s.wav", t->base);
    add(&t->bytes, file_size(path));
    if (rc)
        stop_recording(t, path, "cannot close the file");
    sidecar(t, rc == 0);
}

/* Create BASE.wav, never over an existing file: on a clash (a restart in
 * the same second, two names that map to the same safe name, clips of an
 * earlier run) BASE gets "-1", "-2", ...  The SNDFILE, or NULL with errno
 * (and *why libsndfile's word, if it refused). */
static SNDFILE *create_wav(char *base, size_t len, const SF_INFO *info0, const char **why)
{
    size_t n0 = strlen(base);
    *why = NULL;
    for (int k = 0; k < 1000; k++) {
        char path[PATH_MAX + 24];
        if (k && (n0 + 12 >= len || snprintf(base + n0, len - n0, "-%d", k) < 0)) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        snprintf(path, sizeof path, "%s.wav", base);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return NULL;
        }
        SF_INFO info = *info0;
        SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, SF_TRUE);    /* closes fd on failure */
        if (!sf) {
            *why = sf_strerror(NULL);
            unlink(path);
            errno = EIO;
        }
        return sf;
    }
    errno = EEXIST;
    return NULL;
}

static bool open_file(struct rec_tap *t)
{
    char stamp[32], path[PATH_MAX + 8];
    t->f_first = t->wpos;
    t->f_start = stream_time(t->st, t->wpos);
    utc_stamp(t->f_start, stamp, sizeof stamp);
    int n = snprintf(t->base, sizeof t->base, "%s/%s-%s-%" PRIu64, t->dir, t->name, stamp,
                     t->wpos);
    if (n < 0 || (size_t)n + 8 >= sizeof t->base) {
        stop_recording(t, t->dir, "file name too long");
        return false;
    }
    snprintf(path, sizeof path, "%s.wav", t->base);
    SF_INFO info = { .samplerate = (int)lround(t->st->rate), .channels = 1,
                     .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
    if (t->st->rate > 4.0e6 || fabs(t->st->rate - info.samplerate) > 1e-9) {
        stop_recording(t, path, "a WAV file holds only an integer rate");
        return false;
    }
    const char *why;
    t->sf = create_wav(t->base, sizeof t->base, &info, &why);
    if (!t->sf) {
        stop_recording(t, path, why ? why : strerror(errno));
        return false;
    }
    /* no PEAK chunk: its header rewrite is of no use here */
    sf_command(t->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    t->f_n = 0;
    t->f_loss_len = 0;
    t->f_loss_more = 0;
    t->f_lost_writer = t->f_lost_input = 0;
    add(&t->files, 1);
    sidecar(t, false);
    return true;
}

static void note_loss(struct rec_tap *t, unsigned why, uint64_t n)
{
    if (why == WHY_WRITER)
        t->f_lost_writer += n;
    else
        t->f_lost_input += n;
    int k = snprintf(t->f_loss + t->f_loss_len, sizeof t->f_loss - t->f_loss_len,
                     "%s{\"at\":%" PRIu64 ",\"n\":%" PRIu64 ",\"why\":\"%s\"}",
                     t->f_loss_len ? "," : "", t->f_n, n, why_names[why]);
    if (k > 0 && t->f_loss_len + (size_t)k < sizeof t->f_loss)
        t->f_loss_len += (size_t)k;
    else
        t->f_loss_more++;
}

static void writer_sleep(const recorder *r, bool final)
{
    if (!r->delay_ms || final)      /* the test's slow disk ends with the stop */
        return;
    struct timespec ts = { r->delay_ms / 1000, (long)(r->delay_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Write n queued samples (stream positions wpos...) into files, rotating
 * as needed.  false once the recording stopped. */
static bool write_samples(struct rec_tap *t, uint32_t n, bool final)
{
    while (n > 0) {
        if (t->sf && (t->f_n >= t->max_samples || (double)t->f_n >= t->max_age * t->st->rate))
            close_file(t);
        if (!t->sf && !open_file(t))
            return false;
        uint64_t room = t->max_samples - t->f_n;
        uint64_t age = (uint64_t)ceil(t->max_age * t->st->rate);
        if (age > t->f_n && age - t->f_n < room)
            room = age - t->f_n;
        struct ring_vec v;
        ring_read_vec(t->q, &v);
        uint32_t k = n < v.n[0] ? n : v.n[0];
        if (k > REC_CHUNK)
            k = REC_CHUNK;
        if (k > room)
            k = (uint32_t)room;
        sf_count_t w = sf_write_float(t->sf, v.p[0], k);
        writer_sleep(t->r, final);
        if (w != (sf_count_t)k) {
            char path[PATH_MAX + 8];
            snprintf(path, sizeof path, "%s.wav", t->base);
            stop_recording(t, path, sf_strerror(t->sf));
            if (w > 0) {
                t->f_n += (uint64_t)w;
                add(&t->recorded, (uint64_t)w);
            }
            ring_read_commit(t->q, k);
            t->wpos += k;
            add(&t->unrecorded, k - (uint64_t)(w > 0 ? w : 0));
            close_file(t);
            return false;
        }
        ring_read_commit(t->q, k);
        t->wpos += k;
        t->f_n += k;
        add(&t->recorded, k);
        n -= k;
    }
    return true;
}

/* Drain what the queue holds now. */
static void service_record(struct rec_tap *t, bool final)
{
    uint32_t avail = ring_read_avail(t->q);       /* acquire: entries before these */
    for (;;) {
        uint32_t h = atomic_load_explicit(&t->lq_head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&t->lq_tail, memory_order_relaxed);
        bool have = tl != h;
        uint64_t at = have ? atomic_load_explicit(&t->lq[tl % REC_LOSSQ].at,
                                                  memory_order_relaxed) : 0;
        if (have && at <= t->wpos) {
            uint64_t n = atomic_load_explicit(&t->lq[tl % REC_LOSSQ].n, memory_order_relaxed);
            unsigned why = atomic_load_explicit(&t->lq[tl % REC_LOSSQ].why, memory_order_relaxed);
            /* Release: the entry is read before the producer reuses it. */
            atomic_store_explicit(&t->lq_tail, tl + 1, memory_order_release);
            if (!atomic_load_explicit(&t->stopped, memory_order_relaxed)
                && (t->sf || open_file(t)))
                note_loss(t, why, n);
            if (why == WHY_WRITER)
                t->wpos += n;
            continue;
        }
        uint64_t lim = avail;
        if (have && at - t->wpos < lim)
            lim = at - t->wpos;
        if (lim == 0)
            break;
        if (atomic_load_explicit(&t->stopped, memory_order_relaxed)) {
            ring_read_commit(t->q, (uint32_t)lim);
            t->wpos += lim;
            add(&t->unrecorded, lim);
        } else if (!write_samples(t, (uint32_t)lim, final)) {
            /* stopped part-way: count again, the rest is discarded above */
            avail = ring_read_avail(t->q);
            continue;
        }
        avail -= (uint32_t)lim;
    }
    if (final) {
        /* The capture thread is gone: what it still held as pending. */
        if (!atomic_load_explicit(&t->stopped, memory_order_relaxed) && t->sf) {
            if (t->pend_n)
                note_loss(t, WHY_WRITER, t->pend_n);
            if (t->pend_in_n)
                note_loss(t, WHY_INPUT, t->pend_in_n);
        }
        t->pend_n = t->pend_in_n = 0;
        close_file(t);
    }
}

static void service_keep(struct rec_tap *t)
{
    uint32_t h = atomic_load_explicit(&t->k_head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&t->k_tail, memory_order_relaxed);
    for (; tl != h; tl++) {
        const struct keep_slot *k = &t->slots[tl % KEEP_SLOTS];
        char lab[96], base[PATH_MAX], path[PATH_MAX + 24], iso[40],
             b[2048 + sizeof k->probs + 6 * (STREAM_NAME_MAX + sizeof k->label + sizeof k->state)];
        safe_name(lab, sizeof lab, k->label[0] ? k->label : k->quality);
        int n = snprintf(base, sizeof base, "%s/%s-%" PRIu64 "-%s", t->dir, t->name, k->seq, lab);
        bool ok = n > 0 && (size_t)n + 8 < sizeof base;
        if (ok) {
            SF_INFO info = { .samplerate = (int)lround(k->rate), .channels = 1,
                             .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
            const char *why;
            SNDFILE *sf = create_wav(base, sizeof base, &info, &why);   /* base may grow "-N" */
            snprintf(path, sizeof path, "%s.wav", base);
            ok = sf != NULL;
            if (sf) {
                sf_command(sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
                ok = sf_write_float(sf, k->x, NET_WIN) == NET_WIN;
                ok &= sf_close(sf) == 0;
                writer_sleep(t->r, false);
            }
            if (ok) {
                size_t pos = 0;
                iso_time(k->t, iso, sizeof iso);
                publish_json_printf(b, sizeof b, &pos, "{\"stream\":");
                publish_json_string(b, sizeof b, &pos, t->st->name);
                publish_json_printf(b, sizeof b, &pos,
                                    ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64
                                    ",\"t\":%.6f,\"time\":\"%s\",\"rate\":%.17g,\"kept\":\"%s\",\"label\":",
                                    k->seq, k->sample, k->t, iso, k->rate, k->reason);
                if (k->label[0])
                    publish_json_string(b, sizeof b, &pos, k->label);
                else
                    publish_json_printf(b, sizeof b, &pos, "null");
                publish_json_printf(b, sizeof b, &pos, ",\"state\":");
                if (k->state[0])
                    publish_json_string(b, sizeof b, &pos, k->state);
                else
                    publish_json_printf(b, sizeof b, &pos, "null");
                publish_json_printf(b, sizeof b, &pos, ",\"quality\":\"%s\",\"score\":", k->quality);
                publish_json_printf(b, sizeof b, &pos, isfinite(k->score) ? "%.9g" : "null",
                                    k->score);
                publish_json_printf(b, sizeof b, &pos, ",\"anomaly\":");
                publish_json_printf(b, sizeof b, &pos, isfinite(k->anomaly) ? "%.6g" : "null",
                                    k->anomaly);
                publish_json_printf(b, sizeof b, &pos, ",\"threshold\":");
                publish_json_printf(b, sizeof b, &pos, isfinite(k->threshold) ? "%.6g" : "null",
                                    k->threshold);
                publish_json_printf(b, sizeof b, &pos, ",\"probs\":%s,\"model\":\"%s\"}\n",
                                    k->probs, k->model);
                char jp[PATH_MAX + 8];
                snprintf(jp, sizeof jp, "%s.json", base);
                ok = pos < sizeof b && write_text(jp, b, pos) == 0;
                if (ok)
                    add(&t->bytes, file_size(path) + pos);
            }
            if (!ok && sf)
                unlink(path);       /* ours (create_wav made it), half written */
        }
        if (ok)
            add(&t->kept, 1);
        else {
            add(&t->k_refund, KEEP_CLIP_BYTES);
            if (!get(&t->failed))
                log_err("stream %s: cannot keep a window in %s: %s (counted as failed)",
                        t->st->name, t->dir, errno ? strerror(errno) : "write error");
            add(&t->failed, 1);
        }
        /* Release: the slot is read before the publisher reuses it. */
        atomic_store_explicit(&t->k_tail, tl + 1, memory_order_release);
    }
}

static void *writer_main(void *arg)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        struct rec_tap *t = r->taps;
        while (t) {
            bool closing = t->closing;
            pthread_mutex_unlock(&r->mu);
            if (t->keep)
                service_keep(t);
            else
                service_record(t, closing);
            pthread_mutex_lock(&r->mu);
            struct rec_tap *next = t->next;
            if (closing) {
                /* finished: unlink, then (only then) closed */
                struct rec_tap **pp = &r->taps;
                while (*pp != t)
                    pp = &(*pp)->next;
                *pp = t->next;
                t->closed = true;
                pthread_cond_broadcast(&r->cv_closed);
            }
            t = next;
        }
        if (r->quit && !r->taps)
            break;
        bool pending = false;
        for (struct rec_tap *u = r->taps; u; u = u->next)
            pending |= u->closing;
        if (!pending) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += WRITER_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_mutex_unlock(&r->mu);
            while (sem_clockwait(&r->wake, CLOCK_MONOTONIC, &ts) < 0 && errno == EINTR)
                ;
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- _stats ---------------------------------------------------------------- */

void rec_stats_json(const struct rec_tap *rec, const struct rec_tap *keep,
                    char *b, size_t len, size_t *pos)
{
    if (rec)
        publish_json_printf(b, len, pos,
                            ",\"record\":{\"files\":%" PRIu64 ",\"recorded\":%" PRIu64
                            ",\"lost\":%" PRIu64 ",\"unrecorded\":%" PRIu64 ",\"bytes\":%" PRIu64
                            ",\"stopped\":%s}",
                            get(&rec->files), get(&rec->recorded), get(&rec->lost),
                            get(&rec->unrecorded), get(&rec->bytes),
                            atomic_load_explicit(&rec->stopped, memory_order_relaxed)
                                ? "true" : "false");
    if (keep)
        publish_json_printf(b, len, pos,
                            ",\"keep\":{\"kept\":%" PRIu64 ",\"rate_limited\":%" PRIu64
                            ",\"capped\":%" PRIu64 ",\"full\":%" PRIu64 ",\"failed\":%" PRIu64
                            ",\"bytes\":%" PRIu64 "}",
                            get(&keep->kept), get(&keep->rate_limited), get(&keep->capped),
                            get(&keep->full), get(&keep->failed), get(&keep->bytes));
}
