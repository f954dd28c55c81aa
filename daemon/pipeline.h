/* SPDX-License-Identifier: Apache-2.0 */
/* pipeline.h — rings to windows to workers to the publisher.
 *
 *   stream rings ──► windower thread ──► job slots (K, preallocated) ──► publisher thread
 *                    pop, resample,       │ ▲                              publish_result() in
 *                    cut windows          ▼ │ N workers: normalise,        submission order
 *                                         forward, softmax, argmax
 *
 * The job slots are a circle of K entries indexed by three counters that only
 * grow: head (next slot the windower fills), next (next slot a worker takes)
 * and tail (next slot the publisher sends); tail <= next <= head <= tail + K.
 * Workers finish in any order, but the publisher sends slot `tail` only once
 * it is done, so messages leave in submission order: the windows of one
 * stream in seq order, and the same output whatever the number of workers.
 * A full circle makes the windower wait, which leaves samples in the rings,
 * which makes a file source wait: back-pressure all the way to the file.
 *
 * Reload (SIGHUP) changes two things while the threads run:
 *
 *   the model   pipeline_set_model() makes a new model current.  The
 *               windower stamps each slot with the model current when it
 *               submits the slot, so the switch falls on a window boundary:
 *               every window is classified exactly once, by the model its
 *               slot names, and messages say which (`model`).  The old
 *               model (and its workers' scratch) is freed by pipeline_reap()
 *               once the publisher has sent every slot stamped with it.
 *   the streams pipeline_add_source() works before and after
 *               pipeline_start(); a source to remove is stopped by its owner
 *               (its streams reach eof), the windower drains and ends them,
 *               and pipeline_release_source() says when every window they
 *               gave was published; then the source may be closed.
 *
 * latency_us, up to the publish_result() call (the time a message carries
 * cannot include its own send; the _stats and exit summaries measure up to
 * its return), is measured, as docs/DESIGN.md says, from the moment the window's
 * last sample entered its ring (source.h: the ring-entry log every write
 * goes through), for every kind of source: the time samples wait in the
 * ring, the resampler, the slots and the workers counts; the time a source
 * gathers a block before it writes it (a 5 ms chunk of a paced file, an
 * ALSA period) does not — `t` says when the sample was captured.  A
 * resampled window's last sample is the input sample it ends at.  A sample
 * the log no longer holds (older than STREAM_WLOG writes) is timed from the
 * moment the windower took it out of the ring: a lower bound.
 *
 * gap: a window is flagged when it holds the first sample written after a
 * loss (source.h: stream_note_drop() records where), not merely the first
 * window cut after the loss was counted; with overlapping windows (hop <
 * 1024) every window that holds it.

 * Lifecycle (main's init chain): pipeline_create (slots, scratch) ->
 * pipeline_add_source for every opened source -> pipeline_start (threads) ->
 * sources start ... [reload: set_model / add_source / release_source /
 * reap] ... sources stop (every stream reaches eof) -> pipeline_join (drains
 * the rings, publishes everything, joins the threads, logs a summary per
 * stream) -> sources close -> pipeline_destroy.  Nothing is allocated per
 * window; adding a source or a model allocates (in the caller's thread).
 *
 * Test-only fault hook: when the environment variable
 * TRIDENT_TEST_STALL_AFTER=N is set at pipeline_create(), a worker that
 * takes window number N (counted over all streams, from 0) or any later one
 * blocks on it for good: nothing more is published while work keeps
 * arriving — what a stuck worker looks like to the watchdog.  Unset (always,
 * outside tests) it costs one comparison per window.  A stalled daemon does
 * not finish a drain: stop it with SIGKILL, as systemd's watchdog does.
 */
#ifndef TRIDENT_PIPELINE_H
#define TRIDENT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"
#include "publish.h"
#include "sink.h"
#include "source.h"

#define PIPELINE_MAX_STREAMS 1024

struct pipeline_opts {
    unsigned workers;           /* 0: one per online CPU */
    double   stats_interval;    /* seconds between "_stats" messages; 0: none */
};

typedef struct pipeline pipeline;

/* Job slots and one scratch per worker.  On success the pipeline owns m
 * (pipeline_destroy frees it); on failure the caller still does.  0 or
 * -errno with a message. */
int      pipeline_create(net_model *m, const struct pipeline_opts *o,
                         pipeline **out, char *err, size_t errlen);
/* Would s give at least one window at the model's rate (model_rate 0: its
 * own)?  0, or -ENODATA with "FILE: too short: ..." (for --check and before
 * a reload commits). */
int      pipeline_check_source(double model_rate, const struct source *s,
                               char *err, size_t errlen);
/* Take an opened source's streams (sets s->wake), before or after
 * pipeline_start (main thread only).  Refuses a stream whose name is taken
 * (-EEXIST), a file too short for one window (-ENODATA), more than
 * PIPELINE_MAX_STREAMS streams (-ENOSPC). */
int      pipeline_add_source(pipeline *p, struct source *s, char *err, size_t errlen);
/* For a source whose owner stopped it (its streams reached eof): -EBUSY
 * while the windower still drains its rings or windows it gave are not yet
 * published; then 0, and the pipeline has forgotten its streams (logging
 * each one's summary): the source may be closed.  Main thread only. */
int      pipeline_release_source(pipeline *p, struct source *s);
/* Make m the model for every window submitted from now on (main thread).
 * The pipeline owns m on success.  Refuses (-EINVAL, message in err) a
 * model at another sample rate than the current one: the streams' windows
 * are cut at that rate. */
int      pipeline_set_model(pipeline *p, net_model *m, char *err, size_t errlen);
/* Could m replace the current model?  0, or -EINVAL with "MODEL: sample
 * rate ... differs ..." in err (the check pipeline_set_model() makes; a
 * reload validates with it before it commits anything). */
int      pipeline_model_compatible(const pipeline *p, const net_model *m,
                                   char *err, size_t errlen);
/* The current model (main thread). */
const net_model *pipeline_model(const pipeline *p);
/* Free the models that no submitted window refers to any more (main
 * thread; call now and then). */
void     pipeline_reap(pipeline *p);
/* Start the windower, the workers and the publisher thread, which from now
 * on is the only one to touch pub.  0 or -errno. */
int      pipeline_start(pipeline *p, sink_set *sinks);
/* No source will be added any more: once every stream ended and everything
 * was published, pipeline_finished() becomes true.  (--replay.) */
void     pipeline_seal(pipeline *p);
/* Sealed, every stream ended and everything was published. */
bool     pipeline_finished(const pipeline *p);
/* Seal, wait for every stream to end (stop the sources first), publish
 * everything, join the threads, log the summaries.  Safe if never started. */
void     pipeline_join(pipeline *p);
void     pipeline_destroy(pipeline *p);

/* Progress, for the watchdog and STATUS= (main thread): windows published
 * so far, whether the pipeline is idle (every sample written to a ring was
 * taken out and every window cut from them was published), and the samples
 * dropped by the current streams' sources. */
uint64_t pipeline_published(const pipeline *p);
bool     pipeline_idle(const pipeline *p);
uint64_t pipeline_dropped(const pipeline *p);
/* Queue depths now (main thread): job slots in use of `slots`, and the
 * samples waiting in the current streams' rings (summed; written - taken,
 * read without a lock, so approximate by a write or two). */
void     pipeline_queue(const pipeline *p, unsigned *depth, unsigned *slots, uint64_t *backlog);
/* Windows published with "gap" so far. */
uint64_t pipeline_gaps(const pipeline *p);
/* Latency percentiles (us) of the windows published in the last complete
 * PIPELINE_STATUS_NS period (0 if none), for STATUS=. */
#define PIPELINE_STATUS_NS 2000000000LL
/* Between two SINK_STATS_LIVE snapshots (sinks_want_live). */
#define PIPELINE_LIVE_NS 1000000000LL
void     pipeline_latency(const pipeline *p, uint64_t *p50, uint64_t *p99, uint64_t *max);
/* Stop deadline (main thread, after the sources stopped): from now on the
 * windower empties the rings without classifying, counting what they held
 * as dropped (and each stream's summary says how much), so the drain ends
 * in a bounded time however far behind an overload left the pipeline.
 * Windows already cut are still classified and published. */
void     pipeline_discard(pipeline *p);
/* Hard stop (a second signal, or the drain's deadline): the threads leave
 * at once, as they are.  Windows cut but not yet published are neither
 * classified nor sent; the publisher counts them with the abandoned sends
 * (pipeline_join logs the total).  The rings' samples are the sources'
 * summaries' business, as after any stop. */
void     pipeline_abandon(pipeline *p);

/* Where every sample of a stream went, as `_stats` and the exit summary
 * report it.  In the stream's samples, for a stream at the model's rate:
 *
 *     in = span + skipped + dropped + tail
 *
 *   in       samples the source produced: written to the ring, or lost
 *            (`dropped` below) because the ring was full or the device
 *            overran;
 *   span     samples inside at least one published window;
 *   skipped  samples between published windows (hop > 1024);
 *   dropped  lost before the ring, thrown away at a stop deadline
 *            (pipeline_discard), or lost by a failing resampler;
 *   tail     samples not in any published window yet: still in the ring
 *            (`backlog`), in windows being classified, or waiting for the
 *            next window to fill — at the end, the last partial window.
 * For a resampled stream `in` and `dropped` count input samples, and the
 * windows' side is at the model's rate: resampled = span + skipped + tail
 * (the resampler's output; once the input ended and was flushed,
 * resampled = rs_out_len(in - dropped)). */
struct pipeline_acct {
    uint64_t windows, gaps;              /* published, of which flagged "gap" */
    uint64_t in, dropped, span, skipped, tail;
    uint64_t backlog;                    /* in the ring now */
    uint64_t resampled;                  /* resampled streams only */
};
/* Messages (results and "_stats") that could not be published: a failed
 * send, or a failed write to standard output (EPIPE once the reader of
 * --stdout went away).  Results given up at a hard stop (publish_set_abort)
 * are not errors; pipeline_join() logs them apart, as abandoned.  After
 * pipeline_join() (the publisher thread's count). */
uint64_t pipeline_publish_errors(const pipeline *p);

unsigned pipeline_workers(const pipeline *p);
unsigned pipeline_streams(const pipeline *p);
/* One line describing stream i (name, rate, resampling) for the log. */
void     pipeline_stream_info(const pipeline *p, unsigned i, char *buf, size_t len);

#endif
