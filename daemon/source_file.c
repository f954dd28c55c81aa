/* SPDX-License-Identifier: Apache-2.0 */
/* source_file.c — replay of a recorded WAV or FLAC file as a source.
 *
 * DESIGN: open() validates the file (libsndfile; WAV/WAVE_EXTENSIBLE/RF64 or
 * FLAC holding 16/24/32-bit integers or 32-bit floats) and makes one stream
 * per channel, named by cfg_channel_name() given the file's channel count:
 * NAME for a mono file, NAME/0, NAME/1... (or NAME/<channel_names[i]>)
 * otherwise, where NAME is the configured stream name (the command line
 * passes the file's basename without extension).  The capture thread reads float frames (libsndfile
 * divides integers by 2^(bits-1), as docs/DESIGN.md asks), de-interleaves each
 * channel straight into the free segments of its ring, and:
 *
 *   pace = fast      writes as fast as the rings take it; a full ring makes
 *                    it wait (short bounded sleeps) — a replay is lossless;
 *   pace = realtime  writes chunk k once the absolute deadline
 *                    t0 + (frames up to the end of chunk k) / rate has passed
 *                    (clock_nanosleep TIMER_ABSTIME on CLOCK_MONOTONIC): the
 *                    deadline is computed from the frame count, never from the
 *                    previous wake-up, so late wake-ups do not accumulate.
 *                    Like a live device it never waits for the pipeline:
 *                    samples that find the ring full are dropped, counted
 *                    and their place recorded (stream_note_drop), and the
 *                    clock is re-anchored at the next sample written, so
 *                    `t` stays the time of the sample in the file.
 *
 * A paced file stands for a device of its own, and separate devices are
 * not phase-locked: each paced file starts at a phase of its own within
 * its window period (hop / rate, at most 100 ms; from a hash of its name),
 * so that many files started together do not all complete a window in the
 * same millisecond (measured, 32 streams at 12 kHz, hop 512, 2 cores:
 * latency p99 1.5 ms instead of 7-12 ms; the channels of one file, like
 * those of one device, stay in step).  The clock is anchored at the start: sample 0 is the Unix time at which
 * the replay started, sample n is that plus n / rate (after a realtime
 * loss: frame n of the replay).  With `loop` the
 * file is read again from its start and positions and times run on.  After
 * the last write every stream gets `eof`.  The thread never logs.
 */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define FILE_CHUNK      4096u        /* frames per read in fast mode */
#define FILE_RT_PERIOD  0.005        /* seconds per chunk in realtime mode */
#define FILE_RING_MIN   16384u       /* samples per ring, at least: 4 RS_CHUNKs */
/* pace = fast: a ring of 128 windows of 1024, and a full ring is retried
 * every millisecond: even at 4,000 windows/s per worker the pipeline finds
 * 32 ms of samples waiting, and the thread wakes 1,000 times a second at
 * most (a 16384-sample ring retried every 200 us cost one wake-up per
 * window: context switches that the workers paid for). */
#define FILE_RING_FAST  131072u
#define FILE_WAIT_NS    1000000L     /* back-off while a ring is full */
/* pace = realtime: a second of samples up to 1 MHz (the ALSA rate bound),
 * never more, whatever rate the file's header claims (fuzz_source: a WAV
 * header saying 839 MHz asked for 4 GiB per channel). */
#define FILE_RING_RT_MAX (1u << 20)
#define FILE_MAX_CH     256u

struct file_priv {
    SNDFILE         *sf;
    SF_INFO          info;
    const char      *path;
    unsigned         chunk;          /* frames per read */
    float           *ibuf;           /* chunk * channels interleaved */
    pthread_t        thread;
    bool             started;
    _Atomic bool     stop;
    _Atomic int      error;          /* a read error ended the replay early */
    _Atomic uint64_t missing;        /* frames short of the header's count at eof */
};

static const char *major_name(int fmt)
{
    switch (fmt & SF_FORMAT_TYPEMASK) {
    case SF_FORMAT_WAV:   return "WAV";
    case SF_FORMAT_WAVEX: return "WAV";
    case SF_FORMAT_RF64:  return "RF64";
    case SF_FORMAT_FLAC:  return "FLAC";
    default:              return NULL;
    }
}

/* The clipping level of an integer file (winfeat.h: quality "clipped"), 0 for
 * float samples. */
static double int_full_scale(int fmt)
{
    switch (fmt & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8: return 1.0 - 1.0 / 128;
    case SF_FORMAT_PCM_16: return 1.0 - 1.0 / 32768;
    case SF_FORMAT_PCM_24: return 1.0 - 1.0 / 8388608;
    case SF_FORMAT_PCM_32: return 1.0 - 1.0 / 2147483648.0;
    default:               return 0;
    }
}

static const char *sub_name(int fmt)
{
    switch (fmt & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_16: return "16-bit";
    case SF_FORMAT_PCM_24: return "24-bit";
    case SF_FORMAT_PCM_32: return "32-bit";
    case SF_FORMAT_FLOAT:  return "float";
    default:               return NULL;
    }
}

/* What libsndfile calls a format we refuse, for the error message. */
static const char *format_desc(int fmt, int sub)
{
    SF_FORMAT_INFO fi = { .format = sub ? (fmt & SF_FORMAT_SUBMASK)
                                        : (fmt & SF_FORMAT_TYPEMASK) };
    if (sf_command(NULL, SFC_GET_FORMAT_INFO,
                   &fi, sizeof fi) == 0 && fi.name)
        return fi.name;
    return "unknown";
}

static void file_close(struct source *s);

static int file_open(struct source *s, char *err, size_t errlen)
{
    const struct cfg_stream *c = s->cfg;
    const char *path = c->path;
    struct file_priv *f;
    struct stat stb;
    int fd, rc;

    if (!path || !*path) {
        snprintf(err, errlen, "file stream %s: no path", c->name ? c->name : "?");
        return -EINVAL;
    }
    if (!c->name || !*c->name) {   /* config and --replay always name it */
        snprintf(err, errlen, "%s: file stream without a name", path);
        return -EINVAL;
    }
    /* O_NONBLOCK: a FIFO named as a recording must not block the open (and
     * start-up with it); it is refused as not a regular file just below. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &stb) < 0 || !S_ISREG(stb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -EISDIR;
    }
    if (stb.st_size == 0) {
        snprintf(err, errlen, "%s: empty file", path);
        close(fd);
        return -ENODATA;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    s->priv = f;
    f->path = path;
    atomic_init(&f->stop, false);
    atomic_init(&f->error, 0);
    atomic_init(&f->missing, 0);
    f->sf = sf_open_fd(fd, SFM_READ, &f->info, 1);   /* closes fd on failure too */
    if (!f->sf) {
        snprintf(err, errlen, "%s: not a WAV or FLAC audio file (%s)", path, sf_strerror(NULL));
        rc = -EINVAL;
        goto fail;
    }
    if (!major_name(f->info.format)) {
        snprintf(err, errlen, "%s: unsupported file format %s (WAV or FLAC only)",
                 path, format_desc(f->info.format, 0));
        rc = -EOPNOTSUPP;
        goto fail;
    }
    if (!sub_name(f->info.format)) {
        snprintf(err, errlen, "%s: unsupported sample format %s "
                 "(16/24/32-bit integer or 32-bit float only)",
                 path, format_desc(f->info.format, 1));
        rc = -EOPNOTSUPP;
        goto fail;
    }
    if (f->info.channels < 1 || (unsigned)f->info.channels > FILE_MAX_CH
        || f->info.samplerate <= 0) {
        snprintf(err, errlen, "%s: unsupported layout: %d channels at %d Hz",
                 path, f->info.channels, f->info.samplerate);
        rc = -EOPNOTSUPP;
        goto fail;
    }
    if (f->info.frames <= 0) {
        snprintf(err, errlen, "%s: empty: no samples", path);
        rc = -ENODATA;
        goto fail;
    }
    s->frames = (uint64_t)f->info.frames;

    if (c->pace == CFG_PACE_REALTIME) {
        f->chunk = (unsigned)(f->info.samplerate * FILE_RT_PERIOD);
        if (f->chunk < 1)
            f->chunk = 1;
        if (f->chunk > FILE_CHUNK)
            f->chunk = FILE_CHUNK;
    } else {
        f->chunk = FILE_CHUNK;
    }
    f->ibuf = malloc(sizeof(float) * f->chunk * (size_t)f->info.channels);
    s->streams = calloc((size_t)f->info.channels, sizeof *s->streams);
    if (!f->ibuf || !s->streams) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -ENOMEM;
        goto fail;
    }
    /* Fast: a small ring, since the file waits for room anyway, and a signal
     * leaves little to drain.  Realtime: a second of samples, so that a
     * stalled pipeline delays the file rather than the clock. */
    uint32_t cap = c->pace == CFG_PACE_REALTIME ? FILE_RING_MIN : FILE_RING_FAST;
    while (c->pace == CFG_PACE_REALTIME && cap < (uint32_t)f->info.samplerate
           && cap < FILE_RING_RT_MAX)
        cap <<= 1;
    /* The config's naming rule, given the file's channel count: names for
     * exactly its channels, none left over or missing (issue 16 item 17). */
    if (c->n_channel_names && c->n_channel_names != (unsigned)f->info.channels) {
        snprintf(err, errlen, "%s: channel_names: %u names for a file of %d channel%s", path,
                 c->n_channel_names, f->info.channels, f->info.channels == 1 ? "" : "s");
        rc = -EINVAL;
        goto fail;
    }
    struct cfg_stream named = *c;
    named.channels = (unsigned)f->info.channels;
    for (int ch = 0; ch < f->info.channels; ch++) {
        char sname[STREAM_NAME_MAX + 16];
        cfg_channel_name(&named, (unsigned)ch, sname, sizeof sname);
        rc = stream_init(&s->streams[ch], sname, f->info.samplerate,
                         c->hop ? c->hop : 1024, cap);
        if (rc < 0) {
            snprintf(err, errlen, "%s: stream %s: %s", path, sname,
                     rc == -EINVAL ? "name too long" : strerror(-rc));
            goto fail;
        }
        s->streams[ch].full_scale = int_full_scale(f->info.format);
        s->n_streams++;
    }
    return 0;
fail:
    file_close(s);
    return rc;
}

static int64_t now_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t mono_ns)
{
    struct timespec ts = { .tv_sec = mono_ns / 1000000000, .tv_nsec = mono_ns % 1000000000 };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Where in its window period a paced file starts (see the top of the
 * file): FNV-1a of the stream's name spread over min(hop / rate, 100 ms).
 * Deterministic, so a replay is the same every time. */
static int64_t pace_phase_ns(const struct cfg_stream *c, double rate)
{
    uint32_t h = 2166136261u;
    for (const char *p = c->name; p && *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    double period = (c->hop ? c->hop : 1024) / rate;
    if (period > 0.1)
        period = 0.1;
    return (int64_t)((double)(h % 1024) / 1024.0 * period * 1e9);
}

/* De-interleave channel ch of n frames into st's ring.  Fast: waits for
 * room; false if asked to stop before all of it was written.  Realtime: as
 * a live device, never waits: what does not fit is dropped (counted, its
 * place recorded, stream_note_drop), and *reanchor says the clock must be
 * re-anchored at the next sample written, which is no longer `total`
 * frames after the start. */
static bool put_channel(struct source *s, struct file_priv *f, unsigned ch, uint32_t n,
                        bool realtime, bool *reanchor)
{
    struct stream *st = &s->streams[ch];
    const unsigned nch = s->n_streams;
    const float *src = f->ibuf + ch;
    uint32_t done = 0;

    while (done < n) {
        struct ring_vec v;
        uint32_t space = ring_write_vec(st->ring, &v);
        if (space == 0) {
            if (realtime) {
                stream_note_drop(st, n - done);
                *reanchor = true;
                return true;
            }
            if (atomic_load_explicit(&f->stop, memory_order_relaxed))
                return false;
            struct timespec ts = { 0, FILE_WAIT_NS };
            nanosleep(&ts, NULL);
            continue;
        }
        uint32_t k = n - done < space ? n - done : space;
        uint32_t k0 = k < v.n[0] ? k : v.n[0];
        for (uint32_t i = 0; i < k0; i++)
            v.p[0][i] = src[(size_t)(done + i) * nch];
        for (uint32_t i = k0; i < k; i++)
            v.p[1][i - k0] = src[(size_t)(done + i) * nch];
        stream_commit(st, k);    /* entry time, commit, `written` (release) */
        done += k;
        source_wake(s);
    }
    return true;
}

static void *file_thread(void *arg)
{
    struct source *s = arg;
    struct file_priv *f = s->priv;
    const bool realtime = s->cfg->pace == CFG_PACE_REALTIME;
    const double rate = f->info.samplerate;
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    if (realtime) {
        t0 += pace_phase_ns(s->cfg, rate);
        sleep_until(t0);
    }
    const int64_t t0_real = now_ns(CLOCK_REALTIME);
    uint64_t total = 0;             /* frames read, over every pass */
    uint64_t pass = 0;              /* frames read in this pass */
    bool pass_had_frames = false;
    bool reanchor[FILE_MAX_CH] = { false };

    for (unsigned ch = 0; ch < s->n_streams; ch++)
        stream_clock_set(&s->streams[ch], 0, t0_real);

    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        sf_count_t n = sf_readf_float(f->sf, f->ibuf, f->chunk);
        if (n <= 0) {
            if (sf_error(f->sf) != SF_ERR_NO_ERROR) {
                atomic_store(&f->error, sf_error(f->sf));
                break;
            }
            /* End of the file before its announced frame count: a
             * truncated FLAC, a WAV that shrank under us.  Not a success. */
            if (pass < (uint64_t)f->info.frames) {
                atomic_store(&f->missing, (uint64_t)f->info.frames - pass);
                break;
            }
            /* End of the file: again from its start, unless a whole pass
             * gave nothing (a file that shrank under us). */
            if (!s->cfg->loop || !pass_had_frames
                || sf_seek(f->sf, 0, SEEK_SET) != 0)
                break;
            pass_had_frames = false;
            pass = 0;
            continue;
        }
        pass_had_frames = true;
        pass += (uint64_t)n;
        if (realtime)
            sleep_until(t0 + (int64_t)((double)(total + (uint64_t)n) * 1e9 / rate));
        for (unsigned ch = 0; ch < s->n_streams; ch++) {
            struct stream *st = &s->streams[ch];
            if (reanchor[ch] && ring_write_space(st->ring) > 0) {
                /* After a loss the next sample written is frame `total`. */
                stream_clock_set(st, atomic_load_explicit(&st->written, memory_order_relaxed),
                                 t0_real + (int64_t)((double)total * 1e9 / rate));
                reanchor[ch] = false;
            }
            if (!put_channel(s, f, ch, (uint32_t)n, realtime, &reanchor[ch]))
                goto out;
        }
        total += (uint64_t)n;
    }
out:
    /* Release: the pipeline sees eof only after every write above. */
    for (unsigned ch = 0; ch < s->n_streams; ch++)
        atomic_store_explicit(&s->streams[ch].eof, true, memory_order_release);
    source_wake(s);
    return NULL;
}

static int file_start(struct source *s)
{
    struct file_priv *f = s->priv;
    int rc = pthread_create(&f->thread, NULL, file_thread, s);
    if (rc)
        return -rc;
    f->started = true;
    return 0;
}

static void file_stop(struct source *s)
{
    struct file_priv *f = s->priv;
    if (!f)
        return;
    atomic_store(&f->stop, true);
    if (f->started) {
        pthread_join(f->thread, NULL);
        f->started = false;
    }
    for (unsigned ch = 0; ch < s->n_streams; ch++)
        atomic_store_explicit(&s->streams[ch].eof, true, memory_order_release);
    source_wake(s);
    int e = atomic_load(&f->error);
    if (e) {
        log_err("%s: read error, replay ended early: %s", f->path, sf_error_number(e));
        atomic_store(&f->error, 0);
        s->failed = true;
    }
    uint64_t miss = atomic_exchange(&f->missing, 0);
    if (miss) {
        log_err("%s: ended %" PRIu64 " frames before the %" PRId64 " its header announces "
                "(truncated or shrunk during the replay)", f->path, miss,
                (int64_t)f->info.frames);
        s->failed = true;
    }
}

static void file_close(struct source *s)
{
    struct file_priv *f = s->priv;
    if (f && f->started)
        file_stop(s);
    for (unsigned ch = 0; ch < s->n_streams; ch++)
        stream_fini(&s->streams[ch]);
    free(s->streams);
    s->streams = NULL;
    s->n_streams = 0;
    if (f) {
        if (f->sf)
            sf_close(f->sf);
        free(f->ibuf);
        free(f);
    }
    s->priv = NULL;
}

static void file_info(const struct source *s, char *buf, size_t len)
{
    const struct file_priv *f = s->priv;
    if (!f || !f->sf) {
        snprintf(buf, len, "file %s (not open)", s->cfg->path);
        return;
    }
    snprintf(buf, len, "%s: %s %s, %d channel%s, %d Hz, %" PRId64 " frames (%.2f s), pace %s%s",
             f->path, major_name(f->info.format), sub_name(f->info.format),
             f->info.channels, f->info.channels == 1 ? "" : "s", f->info.samplerate,
             (int64_t)f->info.frames, (double)f->info.frames / f->info.samplerate,
             s->cfg->pace == CFG_PACE_REALTIME ? "realtime" : "fast",
             s->cfg->loop ? ", loop" : "");
}

const struct source_ops source_file_ops = {
    .type  = "file",
    .open  = file_open,
    .start = file_start,
    .stop  = file_stop,
    .close = file_close,
    .info  = file_info,
};
