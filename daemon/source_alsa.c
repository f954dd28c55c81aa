/* SPDX-License-Identifier: Apache-2.0 */
/* source_alsa.c — live capture from an ALSA PCM: one thread per device, one ring per channel.
 *
 * DESIGN
 *
 * open() negotiates exactly what the config asks: RW interleaved access, the
 * format, the channel count and the rate, with alsa-lib's own resampler
 * disabled.  A device that cannot give one of them is refused with one line
 * naming the device, what was asked and what the device offers; trident never
 * resamples or reinterprets behind the user's back.  Period and buffer are
 * only wishes (set_*_near); what was granted is reported by info().
 *
 * The capture thread polls the device's descriptors (plus an eventfd that
 * stop() writes) and nothing else: it never waits on a lock, a ring or the
 * pipeline.  Each wake-up reads what is available in chunks of one period,
 * de-interleaves every channel straight into its ring's free segments
 * (cvt_to_float, no intermediate copy) and posts the pipeline's semaphore.
 * A ring without room for the whole chunk loses the chunk (the newest
 * block); the loss is recorded with stream_note_drop() (counted in
 * `dropped`, its position queued) and the stream's clock re-anchored, so the
 * pipeline flags the first window holding a later sample as a gap.
 *
 * Time.  Software timestamps are enabled (tstamp mode ENABLE, type MONOTONIC)
 * so snd_pcm_status() tells when the hardware pointer was where it is; the
 * next frame to read was captured avail/rate before that.  The first such
 * measurement anchors the device timeline (converted to Unix time); later
 * frames get anchor + frames/rate, which is what makes successive windows
 * advance by exactly hop/rate.  Every wake-up measures again; measurements
 * are only ever late (preemption between the pointer update and the stamp),
 * so the minimum error over about a second estimates the drift between the
 * device clock and the system clock, and the anchor is stepped when it
 * exceeds CLOCK_STEP_NS (counted in clock_steps).
 *
 * Discontinuities, all handled in the capture thread, none silent:
 *   -EPIPE (overrun): snd_pcm_recover() and restart; `xruns` grows; the
 *       frames lost are estimated at the first read after the restart as
 *       (measured time - predicted time) x rate, added to `dropped` (at least
 *       one frame: an overrun always loses data) and the clock re-anchored.
 *   -ESTRPIPE (suspend): snd_pcm_resume() while it says -EAGAIN (bounded);
 *       if it failed or left the PCM SUSPENDED, prepare and start; a resumed
 *       PCM is RUNNING again and is not restarted.  `suspends` grows; the
 *       loss is estimated the same way.
 *   anything else (-ENODEV: unplugged; -EIO, -EBADFD...; or no wake-up for
 *       4 buffers + 1 s): `down` is set, the PCM closed and reopened with
 *       back-off (100 ms doubling to 5 s) until it comes back with the same
 *       format, rate and channels (period and buffer are whatever it grants
 *       then); `down` is then cleared and the loss
 *       estimated as above.  Other sources have their own threads and never
 *       notice.
 * Capture threads never log; the counters (stream fields and those in
 * struct alsa_src) are what the main loop reports.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>

#include "convert.h"
#include "log.h"
#include "ring.h"
#include "source.h"

#define DEFAULT_RATE      48000
#define DEFAULT_FORMAT    "S16_LE"
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define CLOCK_STEP_NS     2000000      /* re-anchor beyond 2 ms of drift */
#define MAX_PFDS          16
#define RESUME_TRIES      50           /* x 100 ms */

struct alsa_src {
    struct source     *src;
    const char        *device;
    snd_pcm_t         *pcm;           /* NULL while the device is gone */
    enum cvt_format    cvt;
    snd_pcm_format_t   format;
    unsigned           rate;
    unsigned           channels;
    /* Granted by the device, frames; atomic because a reopen (capture
     * thread) may change them while info() (main loop) reads them. */
    _Atomic unsigned long period;
    _Atomic unsigned long buffer;
    unsigned           chunk;         /* frames per read: the largest granted period */
    size_t             frame_bytes;
    unsigned char     *buf;           /* chunk interleaved frames */
    bool              *reanchor;      /* per stream: set its clock before its next write */
    int                stop_fd;       /* eventfd: stop() writes it */
    pthread_t          thread;
    bool               thread_started;
    int                tstamp_type;   /* SND_PCM_TSTAMP_TYPE_* actually in use */

    /* Device timeline, capture thread only. */
    uint64_t           dev_pos;       /* frames read since open */
    bool               anchored;
    uint64_t           anchor_pos;
    int64_t            anchor_ns;     /* Unix time of frame anchor_pos */
    bool               gap_pending;   /* estimate a loss at the next measurement */
    int64_t            err_min_ns;    /* drift filter */
    uint64_t           err_window_end;

    /* For the main loop (info(), stats). */
    int                rt_err;        /* 0, or -errno: SCHED_FIFO refused */
    _Atomic uint64_t   reopens;
    _Atomic uint64_t   suspends;
    _Atomic uint64_t   clock_steps;
    _Atomic int        last_err;      /* last device error, -errno */
};

static _Atomic int alsa_open_sources;   /* the last close frees alsa-lib's global config */

/* alsa-lib reports details (an unknown PCM name, a plugin's complaint) by
 * printing them.  While sources exist, they are kept per thread instead:
 * open() appends the last one to its error line, and capture threads, which
 * never log, stay quiet while they retry a vanished device. */
static _Thread_local char alsa_msg[256];

static void alsa_error_handler(const char *file, int line, const char *function, int err,
                               const char *fmt, ...)
{
    (void)file, (void)line, (void)function, (void)err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(alsa_msg, sizeof alsa_msg, fmt, ap);
    va_end(ap);
}

/* ---- formats ------------------------------------------------------------ */

static snd_pcm_format_t to_snd_format(enum cvt_format f)
{
    switch (f) {
    case CVT_S16_LE:   return SND_PCM_FORMAT_S16_LE;
    case CVT_S24_LE:   return SND_PCM_FORMAT_S24_LE;
    case CVT_S24_3LE:  return SND_PCM_FORMAT_S24_3LE;
    case CVT_S32_LE:   return SND_PCM_FORMAT_S32_LE;
    case CVT_FLOAT_LE: return SND_PCM_FORMAT_FLOAT_LE;
    }
    return SND_PCM_FORMAT_UNKNOWN;
}

/* ---- negotiation -------------------------------------------------------- */

static size_t appendf(char *buf, size_t len, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t appendf(char *buf, size_t len, size_t at, const char *fmt, ...)
{
    if (at >= len)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + at, len - at, fmt, ap);
    va_end(ap);
    return n < 0 ? at : at + (size_t)n;
}

/* What the device offers for what was refused, appended to the error line. */
static size_t describe_formats(snd_pcm_t *pcm, const snd_pcm_hw_params_t *base,
                               char *buf, size_t len, size_t at)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_hw_params_alloca(&hw);
    int any = 0;
    for (int f = 0; f <= SND_PCM_FORMAT_LAST; f++) {
        const char *name = snd_pcm_format_name((snd_pcm_format_t)f);
        if (!name)
            continue;
        snd_pcm_hw_params_copy(hw, base);
        if (snd_pcm_hw_params_test_format(pcm, hw, (snd_pcm_format_t)f) == 0)
            at = appendf(buf, len, at, "%s%s", any++ ? " " : "", name);
    }
    if (!any)
        at = appendf(buf, len, at, "none");
    return at;
}

static size_t describe_rates(snd_pcm_t *pcm, const snd_pcm_hw_params_t *base,
                             char *buf, size_t len, size_t at)
{
    static const unsigned usual[] = { 8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000,
                                      64000, 88200, 96000, 176400, 192000, 384000 };
    unsigned lo = 0, hi = 0;
    snd_pcm_hw_params_t *hw;
    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_copy(hw, base);
    snd_pcm_hw_params_get_rate_min(hw, &lo, NULL);
    snd_pcm_hw_params_get_rate_max(hw, &hi, NULL);
    if (lo == hi)
        return appendf(buf, len, at, "%u Hz", lo);
    /* An interval may hide a list (8000 and 48000 only): name the usual rates inside. */
    at = appendf(buf, len, at, "%u..%u Hz; usual rates accepted:", lo, hi);
    int any = 0;
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++) {
        snd_pcm_hw_params_copy(hw, base);
        if (snd_pcm_hw_params_test_rate(pcm, hw, usual[i], 0) == 0) {
            at = appendf(buf, len, at, " %u", usual[i]);
            any = 1;
        }
    }
    if (!any)
        at = appendf(buf, len, at, " none");
    return at;
}

/* Open and configure the device.  0 or -errno with the reason in err. */
static int pcm_open_configure(struct alsa_src *a, snd_pcm_t **out, unsigned long *period,
                              unsigned long *buffer, char *err, size_t errlen)
{
    const struct cfg_stream *c = a->src->cfg;
    snd_pcm_t *pcm;
    snd_pcm_hw_params_t *hw, *probe;
    snd_pcm_sw_params_t *sw;
    int e;

    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_alloca(&probe);
    snd_pcm_sw_params_alloca(&sw);
    *out = NULL;

    alsa_msg[0] = 0;
    e = snd_pcm_open(&pcm, a->device, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK);
    if (e < 0) {
        snprintf(err, errlen, "alsa device '%s': cannot open for capture: %s%s%s",
                 a->device, snd_strerror(e), alsa_msg[0] ? ": " : "", alsa_msg);
        return e;
    }
    if ((e = snd_pcm_hw_params_any(pcm, hw)) < 0) {
        snprintf(err, errlen, "alsa device '%s': no hardware parameters: %s",
                 a->device, snd_strerror(e));
        goto fail;
    }
    /* plug devices would otherwise convert any rate: we want the device's own. */
    snd_pcm_hw_params_set_rate_resample(pcm, hw, 0);
    if ((e = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0) {
        snprintf(err, errlen, "alsa device '%s': interleaved read access not supported",
                 a->device);
        goto fail;
    }

    /* Test format, channels and rate each against the full space, so that one
     * message lists every refusal. */
    size_t at = 0;
    bool refused = false;
    snd_pcm_hw_params_copy(probe, hw);
    if (snd_pcm_hw_params_test_format(pcm, probe, a->format) < 0) {
        at = appendf(err, errlen, at, "alsa device '%s': format %s refused (device offers: ",
                     a->device, cvt_name(a->cvt));
        at = describe_formats(pcm, hw, err, errlen, at);
        at = appendf(err, errlen, at, ")");
        refused = true;
    }
    snd_pcm_hw_params_copy(probe, hw);
    if (snd_pcm_hw_params_test_channels(pcm, probe, a->channels) < 0) {
        unsigned lo = 0, hi = 0;
        snd_pcm_hw_params_get_channels_min(hw, &lo);
        snd_pcm_hw_params_get_channels_max(hw, &hi);
        at = appendf(err, errlen, at, refused ? "; " : "alsa device '%s': ", a->device);
        at = appendf(err, errlen, at, "%u channels refused (device offers: %u..%u)",
                     a->channels, lo, hi);
        refused = true;
    }
    snd_pcm_hw_params_copy(probe, hw);
    if (snd_pcm_hw_params_test_rate(pcm, probe, a->rate, 0) < 0) {
        at = appendf(err, errlen, at, refused ? "; " : "alsa device '%s': ", a->device);
        at = appendf(err, errlen, at, "rate %u Hz refused (device offers: ", a->rate);
        at = describe_rates(pcm, hw, err, errlen, at);
        at = appendf(err, errlen, at, ")");
        refused = true;
    }
    if (refused) {
        e = -EINVAL;
        goto fail;
    }
    if ((e = snd_pcm_hw_params_set_format(pcm, hw, a->format)) < 0 ||
        (e = snd_pcm_hw_params_set_channels(pcm, hw, a->channels)) < 0 ||
        (e = snd_pcm_hw_params_set_rate(pcm, hw, a->rate, 0)) < 0) {
        snprintf(err, errlen, "alsa device '%s': %s, %u channels, %u Hz not offered together",
                 a->device, cvt_name(a->cvt), a->channels, a->rate);
        goto fail;
    }

    /* Unless configured: 20 ms periods (latency), and half a second of buffer
     * (tolerance: the buffer only matters when the thread is late). */
    snd_pcm_uframes_t p = c->period ? c->period : (a->rate / 50 ? a->rate / 50 : 1);
    snd_pcm_uframes_t b = c->buffer ? c->buffer : (p * 4 > a->rate / 2 ? p * 4 : a->rate / 2);
    int dir = 0;
    snd_pcm_hw_params_set_period_size_near(pcm, hw, &p, &dir);
    snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &b);
    if ((e = snd_pcm_hw_params(pcm, hw)) < 0) {
        snprintf(err, errlen, "alsa device '%s': setting %s, %u channels, %u Hz failed: %s",
                 a->device, cvt_name(a->cvt), a->channels, a->rate, snd_strerror(e));
        goto fail;
    }
    unsigned granted_rate = 0;
    snd_pcm_hw_params_get_rate(hw, &granted_rate, NULL);
    snd_pcm_hw_params_get_period_size(hw, &p, NULL);
    snd_pcm_hw_params_get_buffer_size(hw, &b);
    if (granted_rate != a->rate) {
        snprintf(err, errlen, "alsa device '%s': asked %u Hz, got %u Hz", a->device, a->rate,
                 granted_rate);
        e = -EINVAL;
        goto fail;
    }

    /* Software parameters: wake per period, stop on overrun, timestamp the pointer. */
    if ((e = snd_pcm_sw_params_current(pcm, sw)) < 0 ||
        (e = snd_pcm_sw_params_set_avail_min(pcm, sw, p)) < 0 ||
        (e = snd_pcm_sw_params_set_stop_threshold(pcm, sw, b)) < 0 ||
        (e = snd_pcm_sw_params_set_tstamp_mode(pcm, sw, SND_PCM_TSTAMP_ENABLE)) < 0) {
        snprintf(err, errlen, "alsa device '%s': software parameters refused: %s",
                 a->device, snd_strerror(e));
        goto fail;
    }
    a->tstamp_type = SND_PCM_TSTAMP_TYPE_GETTIMEOFDAY;
    if (snd_pcm_sw_params_set_tstamp_type(pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC) == 0)
        a->tstamp_type = SND_PCM_TSTAMP_TYPE_MONOTONIC;
    if ((e = snd_pcm_sw_params(pcm, sw)) < 0) {
        snprintf(err, errlen, "alsa device '%s': software parameters refused: %s",
                 a->device, snd_strerror(e));
        goto fail;
    }
    if (snd_pcm_poll_descriptors_count(pcm) > MAX_PFDS - 1) {
        snprintf(err, errlen, "alsa device '%s': too many poll descriptors", a->device);
        e = -E2BIG;
        goto fail;
    }
    *period = p;
    *buffer = b;
    *out = pcm;
    return 0;
fail:
    snd_pcm_close(pcm);
    return e;
}

/* ---- time --------------------------------------------------------------- */

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t predicted_ns(const struct alsa_src *a)
{
    return a->anchor_ns + (int64_t)((double)(a->dev_pos - a->anchor_pos) * 1e9 / a->rate);
}

static void reanchor_all(struct alsa_src *a)
{
    for (unsigned i = 0; i < a->src->n_streams; i++)
        a->reanchor[i] = true;
}

/* One measurement: the Unix time of frame dev_pos.  Anchors, estimates the
 * loss after a discontinuity, or steps the clock when it drifted. */
static void clock_update(struct alsa_src *a, int64_t t_ns)
{
    if (!a->anchored) {
        a->anchored = true;
        a->anchor_pos = a->dev_pos;
        a->anchor_ns = t_ns;
        a->gap_pending = false;
        a->err_min_ns = INT64_MAX;
        a->err_window_end = a->dev_pos + a->rate;
        reanchor_all(a);
        return;
    }
    int64_t pred = predicted_ns(a);
    if (a->gap_pending) {
        a->gap_pending = false;
        double lost = round((double)(t_ns - pred) * a->rate / 1e9);
        uint64_t n = lost >= 1 ? (uint64_t)lost : 1;
        for (unsigned i = 0; i < a->src->n_streams; i++)
            stream_note_drop(&a->src->streams[i], n);   /* before the next sample: the gap */
        a->anchor_pos = a->dev_pos;
        a->anchor_ns = t_ns;
        a->err_min_ns = INT64_MAX;
        a->err_window_end = a->dev_pos + a->rate;
        reanchor_all(a);
        return;
    }
    int64_t e = t_ns - pred;
    if (e < a->err_min_ns)
        a->err_min_ns = e;
    if (a->dev_pos >= a->err_window_end) {
        if (a->err_min_ns > CLOCK_STEP_NS || a->err_min_ns < -CLOCK_STEP_NS) {
            a->anchor_ns = pred + a->err_min_ns;
            a->anchor_pos = a->dev_pos;
            atomic_fetch_add_explicit(&a->clock_steps, 1, memory_order_relaxed);
            reanchor_all(a);
        }
        a->err_min_ns = INT64_MAX;
        a->err_window_end = a->dev_pos + a->rate;
    }
}

/* ---- the capture thread ------------------------------------------------- */

/* n frames in a->buf, the first being device frame dev_pos. */
static void deliver(struct alsa_src *a, unsigned n)
{
    struct source *s = a->src;
    int64_t t = predicted_ns(a);
    for (unsigned c = 0; c < s->n_streams; c++) {
        struct stream *st = &s->streams[c];
        if (ring_write_space(st->ring) < n) {
            /* Drop the newest block: the pipeline sees `dropped` grow and flags a gap. */
            stream_note_drop(st, n);
            a->reanchor[c] = true;
            continue;
        }
        uint64_t w = atomic_load_explicit(&st->written, memory_order_relaxed);
        if (a->reanchor[c]) {
            stream_clock_set(st, w, t);
            a->reanchor[c] = false;
        }
        struct ring_vec v;
        ring_write_vec(st->ring, &v);
        uint32_t n0 = v.n[0] < n ? v.n[0] : n;
        cvt_to_float(a->cvt, a->buf, a->channels, c, v.p[0], n0);
        if (n0 < n)
            cvt_to_float(a->cvt, a->buf + (size_t)n0 * a->frame_bytes, a->channels, c,
                         v.p[1], n - n0);
        stream_commit(st, n);    /* logs the entry time, commits, counts (release) */
    }
    a->dev_pos += n;
    source_wake(s);
}

static bool stop_requested(struct alsa_src *a, int timeout_ms)
{
    struct pollfd p = { .fd = a->stop_fd, .events = POLLIN };
    return poll(&p, 1, timeout_ms) > 0;
}

static void set_down(struct alsa_src *a, bool down)
{
    for (unsigned i = 0; i < a->src->n_streams; i++)
        atomic_store_explicit(&a->src->streams[i].down, down, memory_order_release);
}

/* The device is gone (or failed beyond recovery): close it and reopen it with
 * back-off until it returns or stop() is called.  false: stop requested. */
static bool reopen(struct alsa_src *a)
{
    char scratch[512];
    unsigned long p, b;
    int backoff = BACKOFF_MIN_MS;

    set_down(a, true);
    if (a->pcm) {
        snd_pcm_close(a->pcm);
        a->pcm = NULL;
    }
    a->gap_pending = a->anchored;
    for (;;) {
        if (stop_requested(a, backoff))
            return false;
        snd_pcm_t *pcm;
        int e = pcm_open_configure(a, &pcm, &p, &b, scratch, sizeof scratch);
        if (e == 0 && (e = snd_pcm_start(pcm)) == 0) {
            a->pcm = pcm;
            /* The device may grant other sizes this time: use them (poll
             * timeout, read cap, info()).  A larger period gets a larger
             * read buffer; if that allocation fails, reading in the old
             * chunks still works. */
            a->period = p;
            a->buffer = b;
            unsigned char *nb;
            if (p > a->chunk && p <= UINT_MAX
                && (nb = realloc(a->buf, (size_t)p * a->frame_bytes))) {
                a->buf = nb;
                a->chunk = (unsigned)p;
            }
            atomic_fetch_add_explicit(&a->reopens, 1, memory_order_relaxed);
            for (unsigned i = 0; i < a->src->n_streams; i++)
                atomic_fetch_add_explicit(&a->src->streams[i].reopens, 1, memory_order_relaxed);
            set_down(a, false);     /* release: whoever sees it up sees the count */
            return true;
        }
        if (pcm)
            snd_pcm_close(pcm);
        atomic_store_explicit(&a->last_err, e, memory_order_relaxed);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Recover from err (< 0).  false: stop requested while waiting. */
static bool recover(struct alsa_src *a, int err)
{
    /* A signal, not the device: try again (signals are blocked in this
     * thread, but a handler-less delivery must not cost a reopen). */
    if (err == -EINTR || err == -EAGAIN)
        return true;
    atomic_store_explicit(&a->last_err, err, memory_order_relaxed);
    if (err == -EPIPE) {
        for (unsigned i = 0; i < a->src->n_streams; i++)
            atomic_fetch_add_explicit(&a->src->streams[i].xruns, 1, memory_order_relaxed);
        if (snd_pcm_recover(a->pcm, err, 1) == 0 && snd_pcm_start(a->pcm) == 0) {
            a->gap_pending = a->anchored;
            return true;
        }
    } else if (err == -ESTRPIPE) {
        atomic_fetch_add_explicit(&a->suspends, 1, memory_order_relaxed);
        int e = -EAGAIN;
        for (int i = 0; i < RESUME_TRIES && (e = snd_pcm_resume(a->pcm)) == -EAGAIN; i++)
            if (stop_requested(a, 100))
                return false;
        /* alsa-lib's ioplug (1.2.8) returns 0 whether or not its plugin
         * resumed: the state says whether it did. */
        if (e == 0 && snd_pcm_state(a->pcm) == SND_PCM_STATE_SUSPENDED)
            e = -ENOSYS;
        if (e < 0)
            e = snd_pcm_prepare(a->pcm);
        /* A resumed stream runs again (the driver restores the state it had
         * before the suspend, and snd_pcm_start() would say -EBADFD); a
         * prepared one must be started. */
        if (e == 0 && snd_pcm_state(a->pcm) == SND_PCM_STATE_PREPARED)
            e = snd_pcm_start(a->pcm);
        if (e == 0) {
            a->gap_pending = a->anchored;
            return true;
        }
    }
    return reopen(a);
}

static int state_error(snd_pcm_state_t state)
{
    switch (state) {
    case SND_PCM_STATE_XRUN:         return -EPIPE;
    case SND_PCM_STATE_SUSPENDED:    return -ESTRPIPE;
    case SND_PCM_STATE_DISCONNECTED: return -ENODEV;
    case SND_PCM_STATE_OPEN:
    case SND_PCM_STATE_SETUP:        return -EBADFD;
    default:                         return 0;
    }
}

/* Read what the device has (at most a buffer's worth, so the loop always goes
 * back to poll and sees stop()).  0 or -errno. */
static int drain(struct alsa_src *a)
{
    snd_pcm_status_t *st;
    snd_pcm_status_alloca(&st);
    int e = snd_pcm_status(a->pcm, st);
    if (e < 0)
        return e;
    if ((e = state_error(snd_pcm_status_get_state(st))) < 0)
        return e;
    snd_pcm_sframes_t avail = snd_pcm_avail_update(a->pcm);
    if (avail < 0)
        return (int)avail;
    if (avail == 0)
        return 0;

    /* The status stamped the pointer; the frames pending before it were
     * captured avail/rate earlier.  Convert the device clock to Unix time. */
    snd_htimestamp_t h;
    struct timespec mono, real;
    snd_pcm_status_get_htstamp(st, &h);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    int64_t stamp = ts_ns(&h);
    bool unix_clock = a->tstamp_type == SND_PCM_TSTAMP_TYPE_GETTIMEOFDAY;
    if (stamp == 0)   /* a plugin that does not stamp: now is the best we know */
        stamp = unix_clock ? ts_ns(&real) : ts_ns(&mono);
    if (!unix_clock)
        stamp += ts_ns(&real) - ts_ns(&mono);
    snd_pcm_sframes_t pending = snd_pcm_status_get_avail(st);
    if (pending <= 0 || pending > avail)
        pending = avail;
    clock_update(a, stamp - (int64_t)((double)pending * 1e9 / a->rate));

    snd_pcm_sframes_t left = avail < (snd_pcm_sframes_t)a->buffer ? avail
                                                                  : (snd_pcm_sframes_t)a->buffer;
    while (left > 0) {
        snd_pcm_uframes_t want = (snd_pcm_uframes_t)left < a->chunk ? (snd_pcm_uframes_t)left
                                                                    : a->chunk;
        snd_pcm_sframes_t n = snd_pcm_readi(a->pcm, a->buf, want);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        deliver(a, (unsigned)n);
        left -= n;
    }
    return 0;
}

static void *capture_thread(void *arg)
{
    struct alsa_src *a = arg;
    struct pollfd pfds[MAX_PFDS];
    int e = snd_pcm_start(a->pcm);
    if (e < 0 && !recover(a, e))
        return NULL;
    for (;;) {
        int n = snd_pcm_poll_descriptors(a->pcm, pfds, MAX_PFDS - 1);
        if (n < 0) {
            if (!recover(a, n))
                break;
            continue;
        }
        pfds[n] = (struct pollfd){ .fd = a->stop_fd, .events = POLLIN };
        /* The timeout only catches a device that stops interrupting. */
        int timeout = (int)(a->buffer * 1000 / a->rate) * 4 + 1000;
        int r = poll(pfds, (nfds_t)n + 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (pfds[n].revents)
            break;
        unsigned short rev = 0;
        if (r == 0) {
            /* Silent for several buffers while running: a hung device, reopen it. */
            if ((e = state_error(snd_pcm_state(a->pcm))) == 0)
                e = -ETIMEDOUT;
        } else if ((e = snd_pcm_poll_descriptors_revents(a->pcm, pfds, (unsigned)n, &rev)) == 0) {
            if (rev & (POLLERR | POLLNVAL | POLLHUP))
                e = state_error(snd_pcm_state(a->pcm));
            if (e == 0 && (rev & (POLLERR | POLLNVAL | POLLHUP)) && !(rev & POLLIN))
                e = -EIO;
            if (e == 0 && (rev & POLLIN))
                e = drain(a);
        }
        if (e < 0 && !recover(a, e))
            break;
    }
    return NULL;
}

/* ---- the vtable --------------------------------------------------------- */

static void alsa_close(struct source *s);

static int alsa_open(struct source *s, char *err, size_t errlen)
{
    const struct cfg_stream *c = s->cfg;
    struct alsa_src *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "alsa stream '%s': out of memory", c->name);
        return -ENOMEM;
    }
    a->src = s;
    a->stop_fd = -1;
    s->priv = a;
    if (atomic_fetch_add(&alsa_open_sources, 1) == 0)
        snd_lib_error_set_handler(alsa_error_handler);
    a->device = c->device && *c->device ? c->device : "default";
    a->rate = c->rate ? c->rate : DEFAULT_RATE;
    a->channels = c->channels ? c->channels : 1;
    const char *fmt = c->format && *c->format ? c->format : DEFAULT_FORMAT;
    int e;
    if (cvt_parse(fmt, &a->cvt) < 0 || (a->format = to_snd_format(a->cvt)) == SND_PCM_FORMAT_UNKNOWN) {
        snprintf(err, errlen, "alsa stream '%s': unknown format '%s' (S16_LE, S24_LE, S24_3LE, "
                 "S32_LE, FLOAT_LE)", c->name, fmt);
        e = -EINVAL;
        goto fail;
    }
    if (c->n_channel_names && c->n_channel_names != a->channels) {
        snprintf(err, errlen, "alsa stream '%s': %u channel_names for %u channels", c->name,
                 c->n_channel_names, a->channels);
        e = -EINVAL;
        goto fail;
    }
    a->frame_bytes = cvt_bytes(a->cvt) * a->channels;

    unsigned long p, b;
    if ((e = pcm_open_configure(a, &a->pcm, &p, &b, err, errlen)) < 0)
        goto fail;
    a->period = p;
    a->buffer = b;
    a->chunk = (unsigned)p;
    if (!(a->buf = malloc((size_t)a->chunk * a->frame_bytes)) ||
        !(a->reanchor = calloc(a->channels, sizeof *a->reanchor)) ||
        !(s->streams = calloc(a->channels, sizeof *s->streams))) {
        snprintf(err, errlen, "alsa stream '%s': out of memory", c->name);
        e = -ENOMEM;
        goto fail;
    }
    if ((a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        e = -errno;
        snprintf(err, errlen, "alsa stream '%s': eventfd: %s", c->name, strerror(-e));
        goto fail;
    }

    /* Rings hold about 2 s (and several device buffers): enough to ride out a
     * slow worker without dropping, bounded whatever happens. */
    uint64_t cap = 8192;
    while (cap < (uint64_t)a->rate * 2 || cap < (uint64_t)a->buffer * 4)
        cap <<= 1;
    for (unsigned i = 0; i < a->channels; i++) {
        char name[STREAM_NAME_MAX];
        cfg_channel_name(c, i, name, sizeof name);   /* NAME, NAME/<k> or NAME/<channel_names[k]> */
        if ((e = stream_init(&s->streams[i], name, a->rate, c->hop, (uint32_t)cap)) < 0) {
            snprintf(err, errlen, "alsa stream '%s': cannot create ring: %s", name, strerror(-e));
            goto fail;
        }
        /* quality "clipped" (winfeat.h): at or beyond the largest positive code */
        s->streams[i].full_scale = a->cvt == CVT_FLOAT_LE ? 0 :
            1.0 - ldexp(1.0, -(a->cvt == CVT_S16_LE ? 15 : a->cvt == CVT_S32_LE ? 31 : 23));
        s->n_streams = i + 1;
    }
    return 0;
fail:
    alsa_close(s);
    return e;
}

static int alsa_start(struct source *s)
{
    struct alsa_src *a = s->priv;
    const struct cfg_stream *c = s->cfg;
    int e = EPERM;
    if (c->rt_priority > 0) {
        pthread_attr_t attr;
        struct sched_param sp = { .sched_priority = c->rt_priority };
        pthread_attr_init(&attr);
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &sp);
        e = pthread_create(&a->thread, &attr, capture_thread, a);
        pthread_attr_destroy(&attr);
        /* One line either way, from here: the source line logged when the
         * stream was added came before this attempt. */
        if (e != 0) {
            a->rt_err = -e;
            log_warn("alsa stream '%s': rt_priority %d refused (%s): capturing without "
                     "real-time priority", c->name, c->rt_priority, strerror(e));
        } else {
            log_info("alsa stream '%s': SCHED_FIFO %d granted to the capture thread", c->name,
                     c->rt_priority);
        }
    }
    if (e != 0 && (e = pthread_create(&a->thread, NULL, capture_thread, a)) != 0)
        return -e;
    a->thread_started = true;
    return 0;
}

static void alsa_stop(struct source *s)
{
    struct alsa_src *a = s->priv;
    if (!a)
        return;
    if (a->thread_started) {
        uint64_t one = 1;
        if (write(a->stop_fd, &one, sizeof one) < 0) { /* an eventfd write cannot fail here */ }
        pthread_join(a->thread, NULL);
        a->thread_started = false;
    }
    for (unsigned i = 0; i < s->n_streams; i++)
        atomic_store_explicit(&s->streams[i].eof, true, memory_order_release);
}

static void alsa_close(struct source *s)
{
    struct alsa_src *a = s->priv;
    if (!a)
        return;
    alsa_stop(s);
    if (a->pcm)
        snd_pcm_close(a->pcm);
    for (unsigned i = 0; i < s->n_streams; i++)
        stream_fini(&s->streams[i]);
    free(s->streams);
    s->streams = NULL;
    s->n_streams = 0;
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    free(a->buf);
    free(a->reanchor);
    free(a);
    s->priv = NULL;
    /* alsa-lib keeps the parsed configuration for the process; the last
     * source gone gives it back (valgrind would call it a leak otherwise). */
    if (atomic_fetch_sub(&alsa_open_sources, 1) == 1) {
        snd_config_update_free_global();
        snd_lib_error_set_handler(NULL);
    }
}

static void alsa_info(const struct source *s, char *buf, size_t len)
{
    const struct alsa_src *a = s->priv;
    if (!a) {
        snprintf(buf, len, "alsa: not open");
        return;
    }
    size_t at = appendf(buf, len, 0, "alsa '%s': %s, %u Hz, %u ch, period %lu, buffer %lu frames "
                        "(%.1f ms)", a->device, cvt_name(a->cvt), a->rate, a->channels, a->period,
                        a->buffer, a->buffer * 1000.0 / a->rate);
    if (s->cfg->rt_priority > 0) {
        if (a->rt_err)
            at = appendf(buf, len, at, ", rt_priority %d refused (%s)", s->cfg->rt_priority,
                         strerror(-a->rt_err));
        else if (a->thread_started)
            at = appendf(buf, len, at, ", SCHED_FIFO %d", s->cfg->rt_priority);
        else    /* not tried yet: the kernel decides at start() */
            at = appendf(buf, len, at, ", rt_priority %d (asked)", s->cfg->rt_priority);
    }
    uint64_t r = atomic_load_explicit(&a->reopens, memory_order_relaxed);
    uint64_t su = atomic_load_explicit(&a->suspends, memory_order_relaxed);
    uint64_t cs = atomic_load_explicit(&a->clock_steps, memory_order_relaxed);
    if (r || su || cs)
        appendf(buf, len, at, ", reopened %" PRIu64 ", suspended %" PRIu64 ", clock steps %" PRIu64,
                r, su, cs);
}

const struct source_ops source_alsa_ops = {
    .type = "alsa",
    .open = alsa_open,
    .start = alsa_start,
    .stop = alsa_stop,
    .close = alsa_close,
    .info = alsa_info,
};
