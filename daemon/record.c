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
 *
 * The code: record.c holds the recorder, its taps, the capture side, the
 * writer thread and _stats; record_file.c the writer's recordings (WAV files
 * and sidecars); keep.c kept windows (the publisher's offer and the writer's
 * clips); record_int.h what they share.
 */
#include "record_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "publish.h"

const char *const rec_why_names[] = { "writer", "input" };

int64_t rec_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rec_add(_Atomic uint64_t *c, uint64_t n)
{
    /* one writer: a relaxed load and store would do; fetch_add is as cheap */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

uint64_t rec_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A name safe in a file name: letters, digits, '.', '-', '_'; others '_'. */
void rec_safe_name(char *dst, size_t len, const char *s)
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

void rec_utc_stamp(double t, char *buf, size_t len)
{
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

void rec_iso_time(double t, char *buf, size_t len)
{
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06ldZ", (long)((t - floor(t)) * 1e6));
}

/* Write text to path atomically (path.tmp, then rename).  0 or -errno. */
int rec_write_text(const char *path, const char *text, size_t n)
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

uint64_t rec_file_size(const char *path)
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
    rec_safe_name(t->name, sizeof t->name, st->name);
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
        t->k_minute = rec_mono_ns();
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
void rec_wake_writer(recorder *r)
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
        rec_add(&t->unrecorded, n);
        t->pos += n;
        t->pend_in_n = 0;
        return;
    }
    uint32_t space = ring_write_space(t->q);
    /* A fast file source waits for its stream ring already (lossless):
     * it waits for the disk too.  The writer drains on its own. */
    if (t->wait && space < n) {
        /* bounded: a stalled disk must not hold the source's stop for good */
        int64_t until = rec_mono_ns() + REC_WAIT_MS * 1000000LL;
        while (space < n && !atomic_load_explicit(&t->stopped, memory_order_relaxed)
               && rec_mono_ns() < until) {
            struct timespec ts = { 0, 200000 };
            rec_wake_writer(t->r);
            nanosleep(&ts, NULL);
            space = ring_write_space(t->q);
        }
    }
    if (atomic_load_explicit(&t->stopped, memory_order_relaxed)) {
        rec_add(&t->unrecorded, n);
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
        rec_add(&t->lost, n);
        return;
    }
    t->losing = false;
    uint32_t a = n < v->n[0] ? n : v->n[0];
    ring_write(t->q, v->p[0], a);
    if (n > a)
        ring_write(t->q, v->p[1], n - a);
    t->pos += n;
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
                rec_service_keep(t);
            else
                rec_service_record(t, closing);
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

void rec_stats_fill(const struct rec_tap *rec, const struct rec_tap *keep,
                    struct sink_stream_stats *s)
{
    if ((s->has_record = rec != NULL)) {
        s->rec_files = rec_get(&rec->files);
        s->rec_recorded = rec_get(&rec->recorded);
        s->rec_lost = rec_get(&rec->lost);
        s->rec_unrecorded = rec_get(&rec->unrecorded);
        s->rec_bytes = rec_get(&rec->bytes);
        s->rec_stopped = atomic_load_explicit(&rec->stopped, memory_order_relaxed);
    }
    if ((s->has_keep = keep != NULL)) {
        s->keep_kept = rec_get(&keep->kept);
        s->keep_rate_limited = rec_get(&keep->rate_limited);
        s->keep_capped = rec_get(&keep->capped);
        s->keep_full = rec_get(&keep->full);
        s->keep_failed = rec_get(&keep->failed);
        s->keep_bytes = rec_get(&keep->bytes);
    }
}
