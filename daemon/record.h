/* SPDX-License-Identifier: Apache-2.0 */
/* record.h — recording per stream, and keeping the interesting windows.
 *
 * A stream with `record` gets a recording tap: its capture thread copies
 * every sample it commits to the stream ring into the tap's queue (rec_push,
 * from stream_commit) and reports every loss of the stream (rec_loss, from
 * stream_note_drop).  A stream with `keep` gets a keep tap: the publisher
 * thread offers it every published window (keep_offer).  One writer thread
 * per daemon drains every tap to disk.  Neither hot-path call blocks,
 * allocates, or touches the disk; what does not fit is counted.
 * record.c has the design note.
 */
#ifndef TRIDENT_RECORD_H
#define TRIDENT_RECORD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

struct rec_tap;
struct source;
struct result;
struct net_model;
typedef struct recorder recorder;

/* --check: could dir be made (the nearest existing ancestor a writable
 * directory) or, if it exists, is it a writable directory?  Creates
 * nothing.  0 or -errno. */
int  recorder_check_dir(const char *dir);
/* Start the writer thread.  0 or -errno with a message. */
int  recorder_create(recorder **out, char *err, size_t errlen);
/* The model digest written into sidecars from now on (any thread). */
void recorder_set_model(recorder *r, const char *digest);
/* For every stream of an opened, not yet started source whose configuration
 * has record.path or keep.path: a tap, hung on the stream (st->rec,
 * st->keep).  Main thread.  0 or -errno with a message naming the directory
 * (it is created if missing). */
int  recorder_attach(recorder *r, struct source *s, char *err, size_t errlen);
/* The source was stopped and the pipeline released its streams: the writer
 * writes what the taps still hold, closes their files, and they are freed
 * (st->rec, st->keep cleared).  Main thread; waits for the writer. */
void recorder_detach(recorder *r, struct source *s);
/* Stop the writer (after every source was detached) and free. */
void recorder_destroy(recorder *r);

/* Hot path, capture thread: the n samples just written into the free
 * segments v of the stream ring (before their commit). */
void rec_push(struct rec_tap *t, const struct ring_vec *v, uint32_t n);
/* Capture thread: n samples of the stream were lost before the next one. */
void rec_loss(struct rec_tap *t, uint64_t n);

/* Publisher thread: a published window (its result r and raw samples x,
 * NET_WIN of them at the model's rate, before normalisation).  Copied for
 * the writer if it is to be kept: its top probability below
 * keep.unsure_below, labelled unknown or anomaly, or event (it changed the
 * state).  Rate-limited and size-capped (counted).  Never blocks, except
 * for a fast file stream while *may_wait (the pipeline has no live stream
 * and is not being abandoned): then it waits up to KEEP_WAIT_MS for a free
 * slot, so that a replay keeps every clip. */
void keep_offer(struct rec_tap *t, const struct result *r, const float *x,
                const struct net_model *m, bool event, const _Atomic bool *may_wait);

/* The record and keep counters of a stream's snapshot (sink.h; has_record
 * and has_keep false for a NULL tap). */
struct sink_stream_stats;
void rec_stats_fill(const struct rec_tap *rec, const struct rec_tap *keep,
                    struct sink_stream_stats *s);

#endif
