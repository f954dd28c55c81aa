/* SPDX-License-Identifier: Apache-2.0 */
/* state.c — K-of-N smoothing of a stream's votes into a state (state.h).
 *
 * The last N votes sit in a circle, with a count per code kept as votes
 * enter and leave, so a push is O(1) except at a change (which walks the
 * circle once for the first window and the mean score).  Names are copied
 * into two buffers (current and previous state) that grow only when a
 * longer name comes; the previous one is what sm_change.from points at.
 */
#include "state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct vote {
    int      code;
    uint64_t seq, sample;
    double   t, score;
};

struct smoother {
    unsigned     n, k, hold, n_codes;
    struct vote *ring;
    unsigned     len, pos;          /* votes held, next slot */
    uint16_t    *count;             /* per code, among the held votes */
    unsigned     held;              /* windows since the last change */
    char        *name[2];           /* current state, previous state */
    size_t       cap[2];
    bool         has[2];
    uint64_t     since_seq, since_sample;
    double       since_t;
    uint64_t     changes;
};

smoother *sm_create(unsigned windows, unsigned agree, unsigned hold, unsigned n_codes)
{
    if (windows < 1 || windows > 65535 || agree < 1 || agree > windows || n_codes < 1)
        return NULL;
    smoother *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n = windows;
    s->k = agree;
    s->hold = hold;
    s->n_codes = n_codes;
    s->ring = calloc(windows, sizeof *s->ring);
    s->count = calloc(n_codes, sizeof *s->count);
    if (!s->ring || !s->count) {
        sm_destroy(s);
        return NULL;
    }
    s->held = hold;                 /* the first state is not held back */
    s->since_t = NAN;
    return s;
}

void sm_destroy(smoother *s)
{
    if (!s)
        return;
    free(s->ring);
    free(s->count);
    free(s->name[0]);
    free(s->name[1]);
    free(s);
}

void sm_forget(smoother *s)
{
    s->len = s->pos = 0;
    memset(s->count, 0, s->n_codes * sizeof *s->count);
}

/* Copy name into buffer i; false when out of memory (the state is kept). */
static bool keep_name(smoother *s, int i, const char *name)
{
    size_t n = strlen(name) + 1;
    if (n > s->cap[i]) {
        char *b = realloc(s->name[i], n);
        if (!b)
            return false;
        s->name[i] = b;
        s->cap[i] = n;
    }
    memcpy(s->name[i], name, n);
    s->has[i] = true;
    return true;
}

bool sm_push(smoother *s, int code, const char *name, uint64_t seq, uint64_t sample,
             double t, double score, struct sm_change *ch)
{
    if (code < SM_NONE || code >= (int)s->n_codes)
        code = SM_NONE;
    if (s->len == s->n) {            /* the oldest vote leaves */
        int old = s->ring[s->pos].code;
        if (old != SM_NONE)
            s->count[old]--;
    } else {
        s->len++;
    }
    s->ring[s->pos] = (struct vote){ code, seq, sample, t, score };
    s->pos = (s->pos + 1) % s->n;
    if (code != SM_NONE)
        s->count[code]++;
    if (s->held < s->hold)
        s->held++;

    if (code == SM_NONE || s->count[code] < s->k || s->held < s->hold)
        return false;
    if (s->has[0] && !strcmp(s->name[0], name))
        return false;                /* already the state */

    /* A change: the previous state moves to buffer 1 (swap, no copy). */
    char *tb = s->name[1];
    size_t tc = s->cap[1];
    s->name[1] = s->name[0];
    s->cap[1] = s->cap[0];
    s->has[1] = s->has[0];
    s->name[0] = tb;
    s->cap[0] = tc;
    if (!keep_name(s, 0, name)) {    /* undo: keep the old state */
        s->name[0] = s->name[1];
        s->cap[0] = s->cap[1];
        s->has[0] = s->has[1];
        s->name[1] = tb;
        s->cap[1] = tc;
        s->has[1] = false;
        return false;
    }
    /* the first of the held votes for it, oldest first, and their mean score */
    const struct vote *first = NULL;
    double sum = 0;
    unsigned scored = 0;
    for (unsigned i = 0; i < s->len; i++) {
        const struct vote *v = &s->ring[(s->pos + s->n - s->len + i) % s->n];
        if (v->code != code)
            continue;
        if (!first)
            first = v;
        if (!isnan(v->score)) {
            sum += v->score;
            scored++;
        }
    }
    s->since_seq = first->seq;
    s->since_sample = first->sample;
    s->since_t = first->t;
    s->held = 0;
    s->changes++;
    *ch = (struct sm_change){
        .from = s->has[1] ? s->name[1] : NULL,
        .to = s->name[0],
        .seq = first->seq, .sample = first->sample, .t = first->t,
        .agree = s->count[code], .windows = s->n,
        .score = scored ? sum / scored : NAN,
    };
    return true;
}

const char *sm_state(const smoother *s)
{
    return s->has[0] ? s->name[0] : NULL;
}

void sm_since(const smoother *s, uint64_t *seq, uint64_t *sample, double *t)
{
    *seq = s->since_seq;
    *sample = s->since_sample;
    *t = s->since_t;
}

uint64_t sm_changes(const smoother *s)
{
    return s->changes;
}
