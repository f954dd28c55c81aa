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
 * latency_us is measured from the moment the windower took the window's last
 * sample out of its ring (the ring read that completed the window) to the
 * publish_result() call (the time a message carries cannot include its own
 * send); the _stats and exit summaries measure up to its return.  (DESIGN.md
 * says "entering the ring": the ring keeps no per-sample time, and for a
 * live source the two differ by the time samples wait in the ring.)
 *
 * Lifecycle (main's init chain): pipeline_create (slots, scratch) ->
 * pipeline_add_source for every opened source -> pipeline_start (threads) ->
 * sources start ... sources stop (every stream reaches eof) ->
 * pipeline_join (drains the rings, publishes everything, joins the threads,
 * logs a summary per stream) -> sources close -> pipeline_destroy.
 * Nothing is allocated between pipeline_start and pipeline_join.
 */
#ifndef TRIDENT_PIPELINE_H
#define TRIDENT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"
#include "publish.h"
#include "source.h"

struct pipeline_opts {
    unsigned workers;           /* 0: one per online CPU */
    double   stats_interval;    /* seconds between "_stats" messages; 0: none */
};

typedef struct pipeline pipeline;

/* Job slots and one scratch per worker.  0 or -errno with a message. */
int      pipeline_create(const net_model *m, const struct pipeline_opts *o,
                         pipeline **out, char *err, size_t errlen);
/* Take an opened source's streams (sets s->wake).  Refuses a stream whose
 * name is already taken and a file too short for one window at the model's
 * rate (-ENODATA).  Before pipeline_start only. */
int      pipeline_add_source(pipeline *p, struct source *s, char *err, size_t errlen);
/* Start the windower, the workers and the publisher thread, which from now
 * on is the only one to touch pub.  0 or -errno. */
int      pipeline_start(pipeline *p, publisher *pub);
/* Every stream ended and everything was published. */
bool     pipeline_finished(const pipeline *p);
/* Wait for every stream to end (stop the sources first), publish everything,
 * join the threads, log the summaries.  Safe if never started. */
void     pipeline_join(pipeline *p);
void     pipeline_destroy(pipeline *p);

/* Progress, for the watchdog and STATUS= (any thread): windows published so
 * far, and whether the pipeline is idle (every sample written to a ring was
 * taken out and every window cut from them was published). */
uint64_t pipeline_published(const pipeline *p);
bool     pipeline_idle(const pipeline *p);

unsigned pipeline_workers(const pipeline *p);
unsigned pipeline_streams(const pipeline *p);
/* One line describing stream i (name, rate, resampling) for the start-up log. */
void     pipeline_stream_info(const pipeline *p, unsigned i, char *buf, size_t len);

#endif
