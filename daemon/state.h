/* SPDX-License-Identifier: Apache-2.0 */
/* state.h — a stream's smoothed state: labels in, one state out, and a
 * change reported once.
 *
 * A label per 85 ms window flaps; what a person watching a machine wants is
 * a state that changes when the machine does.  Each window votes (pipeline.c
 * says for what: its label, "unknown", "anomaly", or its quality when that
 * is not ok); the smoother keeps the last N votes and the state is the
 * value that K of them (agree) voted for:
 *
 *   - the state changes only at a window voting for the new value, once
 *     that value has K of the last N votes and the current state has been
 *     held for at least `hold` windows;
 *   - the state stays what it is while no other value has K votes (a state
 *     does not expire); with K > (N+1)/2 labels that alternate window by
 *     window never reach K, so the state does not flap with them;
 *   - before any value reached K the state is none (NULL): the first state
 *     is a change too (from NULL), so a stream that starts on a faulty
 *     machine still raises its event.
 *
 * Votes are small integer codes (the caller's), compared as such; states
 * are compared by name, so that a reload that brings a model with other
 * class numbers but the same names does not raise a change: the caller
 * calls sm_forget() when the codes change meaning (a new model), which
 * clears the votes and keeps the state.
 *
 * One smoother per stream, used by one thread (the publisher: windows of a
 * stream reach it in order).  sm_push() allocates nothing except when a
 * state name longer than any before must be kept (a change, never per
 * window).
 */
#ifndef TRIDENT_STATE_H
#define TRIDENT_STATE_H

#include <stdbool.h>
#include <stdint.h>

#define SM_NONE (-1)           /* a vote for nothing (below min_score) */

typedef struct smoother smoother;

struct sm_change {
    const char *from;          /* NULL: the first state */
    const char *to;
    uint64_t    seq, sample;   /* the first window of the last N that voted for `to` */
    double      t;
    unsigned    agree;         /* votes for `to` among the last N */
    unsigned    windows;       /* N */
    double      score;         /* mean score of those votes (NaN: none had one) */
};

/* n_codes: votes are SM_NONE or 0..n_codes-1.  NULL when out of memory or
 * the settings are out of range (1 <= agree <= windows). */
smoother   *sm_create(unsigned windows, unsigned agree, unsigned hold, unsigned n_codes);
void        sm_destroy(smoother *s);
/* The codes change meaning from the next vote on: forget the votes. */
void        sm_forget(smoother *s);
/* One window's vote (code, and the name of the state it stands for; name
 * ignored for SM_NONE), with its position and score (NaN: none).  true
 * when the state changed: *ch describes it, valid until the next call. */
bool        sm_push(smoother *s, int code, const char *name, uint64_t seq, uint64_t sample,
                    double t, double score, struct sm_change *ch);
/* The current state (NULL: none yet), valid until the next sm_push(). */
const char *sm_state(const smoother *s);
/* The window the current state was entered at (its first vote), and the
 * number of changes so far. */
void        sm_since(const smoother *s, uint64_t *seq, uint64_t *sample, double *t);
uint64_t    sm_changes(const smoother *s);

#endif
