/* SPDX-License-Identifier: Apache-2.0 */
/* source.h — where samples come from: a vtable, and the streams a source feeds.
 *
 * A source (an ALSA device, a recorded file) owns one capture thread that
 * blocks only on its device or file and writes each channel's samples, as
 * float, into that channel's stream ring.  Replay is just another source: the
 * pipeline behind the rings does not know which kind fed them.
 *
 * Producer-to-consumer signalling without locks:
 *   - samples: the ring (release/acquire on its indices);
 *   - `written`: total samples ever written (u64, wraps never), release after
 *     the ring write;
 *   - `dropped`: samples lost before reaching the ring (ring full on a live
 *     source, xrun).  A source reports a loss with stream_note_drop(), which
 *     also records WHERE it happened (the gap queue below), so the pipeline
 *     flags exactly the first window holding a sample written after the
 *     discontinuity.  A source that only bumps `dropped` still works: the
 *     pipeline then flags the next window it cuts (which may be off by a
 *     window when the loss happened just after that window's end);
 *   - `clock`: anchors (ring position pos0, Unix time t_ns of that sample)
 *     behind one seqlock; the time of a sample is t_ns + (pos - pos0) / rate
 *     from the newest anchor with pos0 <= pos.  The source re-anchors after
 *     any discontinuity; the last STREAM_CLOCK_HIST anchors are kept (an
 *     overloaded realtime source re-anchors after every dropped block, up to
 *     200 times a second, while its ring holds a second or more), so a
 *     window that begins before a re-anchor but is cut after it (the backlog
 *     of a full ring, an xrun) still gets the time of its own side of the
 *     gap.  A position older than every kept anchor is extrapolated back
 *     from the oldest one;
 *   - `down`, `reopens`: the device is gone and being reopened; times it
 *     came back.  The main loop polls them (capture threads never log);
 *   - `eof`: set (release) after the last write; the pipeline drains the ring
 *     and ends the stream;
 *   - `wlog`: when samples entered the ring.  stream_commit() logs (the
 *     `written` count after the write, CLOCK_MONOTONIC time) for every write
 *     before committing it, in a history of STREAM_WLOG entries, so the
 *     pipeline can measure a window's latency from the moment its last
 *     sample entered the ring (docs/DESIGN.md's latency_us), not from the moment
 *     it was captured (a source writes in blocks: a 5 ms chunk, an ALSA
 *     period).  STREAM_WLOG covers a full ring of a realtime-paced file
 *     (about 273 chunks) with room to spare.
 * After each write the capture thread calls source_wake() (a sem_post: never
 * blocks) so the pipeline thread need not poll.
 */
#ifndef TRIDENT_SOURCE_H
#define TRIDENT_SOURCE_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ring.h"

#define STREAM_NAME_MAX 128
#define STREAM_GAPQ     8

#define STREAM_CLOCK_HIST 512
#define STREAM_WLOG       512

struct stream_clock {
    _Atomic uint32_t seq;        /* odd while being written */
    _Atomic uint32_t n;          /* anchors ever set: the newest is a[(n - 1) % HIST] */
    struct {
        _Atomic uint64_t pos;    /* stream sample index (as counted by `written`),
                                  * never decreasing from one anchor to the next */
        _Atomic int64_t  t_ns;   /* Unix time of that sample, ns */
    } a[STREAM_CLOCK_HIST];
};

struct stream {
    char              name[STREAM_NAME_MAX];
    ring             *ring;
    double            rate;      /* rate of the samples in the ring, Hz */
    unsigned          hop;       /* from the config */
    double            full_scale; /* integer input: |x| at or beyond this is clipped
                                   * (1 - 2^-(bits-1)); 0: float input, never */
    _Atomic uint64_t  written;   /* producer: samples written so far */
    _Atomic uint64_t  dropped;   /* producer: samples lost so far */
    _Atomic uint64_t  xruns;     /* producer: device overruns so far */
    _Atomic bool      eof;       /* producer: no more samples will come */
    _Atomic bool      down;      /* producer: device gone, reopening */
    _Atomic uint64_t  reopens;   /* producer: times the device came back */
    struct stream_clock clock;
    /* Where the discontinuities are: an SPSC queue of positions (in
     * `written` counts: the first sample written after each loss), filled
     * by stream_note_drop(), emptied by stream_gap_before().  Losses at the
     * same position make one entry; when more than STREAM_GAPQ are pending
     * (the pipeline far behind) `gap_lost` makes the next window a gap. */
    _Atomic uint64_t  gap_q[STREAM_GAPQ];
    _Atomic uint32_t  gap_head;  /* producer: entries pushed */
    _Atomic uint32_t  gap_tail;  /* consumer: entries popped */
    _Atomic bool      gap_exact; /* producer: uses stream_note_drop() */
    _Atomic bool      gap_lost;  /* producer: the queue was full */
    /* Ring-entry times (stream_commit, stream_entered_ns): entry i is
     * wlog[i % STREAM_WLOG]; wlog_n entries were ever logged. */
    struct {
        _Atomic uint64_t end;    /* `written` after that write */
        _Atomic int64_t  ns;     /* CLOCK_MONOTONIC, when it was committed */
    } wlog[STREAM_WLOG];
    _Atomic uint32_t  wlog_n;    /* entries complete */
    _Atomic uint32_t  wlog_w;    /* entries begun (a seqlock of sorts) */
    /* record = { ... } and keep = { ... } (record.h): set by recorder_attach()
     * before the capture thread starts, cleared by recorder_detach() after
     * it stopped and the pipeline released the stream; NULL: off. */
    struct rec_tap   *rec;       /* stream_commit/stream_note_drop feed it */
    struct rec_tap   *keep;      /* the publisher offers it windows */
};

struct source;

struct source_ops {
    const char *type;                                       /* "file", "alsa" */
    /* Open the file/device, create s->streams (names, rates, rings).
     * 0 or -errno with a one-line message naming the file/device in err. */
    int  (*open)(struct source *s, char *err, size_t errlen);
    int  (*start)(struct source *s);                        /* start the capture thread */
    void (*stop)(struct source *s);                         /* stop and join it; streams end (eof) */
    void (*close)(struct source *s);                        /* release everything open() made */
    void (*info)(const struct source *s, char *buf, size_t len); /* one line for logs/--check */
};

struct source {
    const struct source_ops *ops;
    const struct cfg_stream *cfg;
    struct stream           *streams;   /* n_streams of them, one per channel */
    unsigned                 n_streams;
    uint64_t                 frames;    /* set by open(): frames per channel in one
                                         * pass of a file; 0 for a live source */
    sem_t                   *wake;      /* the pipeline's; posted after writes */
    void                    *priv;      /* the implementation's */
    bool                     failed;    /* set by stop(): the input ended early (a read
                                         * error, a file shorter than announced) */
};

extern const struct source_ops source_file_ops;
extern const struct source_ops source_alsa_ops;

/* Helpers shared by implementations (source.c). */
int  stream_init(struct stream *st, const char *name, double rate, unsigned hop,
                 uint32_t ring_capacity);
void stream_fini(struct stream *st);
/* Producer: sample `pos` (>= every earlier anchor's) was captured at t_ns. */
void stream_clock_set(struct stream *st, uint64_t pos, int64_t t_ns);
/* Consumer: Unix time in seconds of stream sample `pos` (at the stream rate),
 * from the newest anchor at or before pos (0 + pos / rate before any). */
double stream_time(const struct stream *st, uint64_t pos);
/* Producer (capture thread): n samples were lost just before the next
 * sample this stream writes.  Records the position, then adds n to `dropped`
 * (release).  Never blocks. */
void stream_note_drop(struct stream *st, uint64_t n);
/* Producer: the n samples just written into the free segments of st's ring
 * are complete: log their entry time, commit them to the ring and add them
 * to `written` (release).  Every write of a source goes through here. */
void stream_commit(struct stream *st, uint32_t n);
/* Consumer: CLOCK_MONOTONIC ns at which stream sample `pos` (counted as
 * `written`) was committed to the ring, or -1 if the log no longer (or
 * never) held it: a sample older than STREAM_WLOG writes, or a producer
 * that bypassed stream_commit(). */
int64_t stream_entered_ns(const struct stream *st, uint64_t pos);
/* Consumer (pipeline): did a discontinuity happen before stream position
 * `end` that no earlier call reported?  Pops every such entry; if newest is
 * not NULL and an entry was popped, *newest is the last one's position (the
 * first sample written after that loss).  A queue overflow (gap_lost) says
 * true without a position. */
bool stream_gap_before(struct stream *st, uint64_t end, uint64_t *newest);
static inline void source_wake(struct source *s) { if (s->wake) sem_post(s->wake); }

#endif
