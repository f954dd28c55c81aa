/* SPDX-License-Identifier: Apache-2.0 */
/* window.c — cutting a sample stream into windows of `size` every `hop`.
 *
 * DESIGN: one buffer of `size` floats, allocated at create, holds the window
 * being assembled.  win_push() appends until the window is full and then
 * stops (so the caller never needs more than one window of buffer here);
 * win_next() copies it out and advances: with hop < size the last size - hop
 * samples slide to the front and become the start of the next window; with
 * hop >= size the buffer empties and the next hop - size input samples are
 * skipped.  The slide costs one memmove of at most size floats per window,
 * the same order as the copy out, and keeps the window contiguous.  Stream
 * positions are 64-bit: a 48 kHz stream overflows them after 12 million
 * years.
 */
#include "window.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct windower {
    unsigned  size, hop;
    unsigned  fill;        /* samples of the next window already in buf */
    uint64_t  skip;        /* input samples to drop before the next window (hop > size) */
    uint64_t  seq;         /* number of the next window */
    uint64_t  start;       /* stream index of the next window's first sample */
    float    *buf;         /* size floats */
};

windower *win_create(unsigned size, unsigned hop)
{
    if (size == 0 || hop == 0) {
        errno = EINVAL;
        return NULL;
    }
    windower *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->buf = malloc((size_t)size * sizeof *w->buf);
    if (!w->buf) {
        free(w);
        return NULL;
    }
    w->size = size;
    w->hop = hop;
    return w;
}

void win_destroy(windower *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w);
}

void win_reset(windower *w)
{
    w->fill = 0;
    w->skip = 0;
    w->seq = 0;
    w->start = 0;
}

size_t win_push(windower *w, const float *x, size_t n)
{
    size_t used = 0;
    while (used < n && w->fill < w->size) {
        size_t left = n - used;
        if (w->skip) {   /* hop > size: samples between windows */
            size_t k = w->skip < left ? (size_t)w->skip : left;
            w->skip -= k;
            used += k;
            continue;
        }
        size_t k = w->size - w->fill;
        if (k > left)
            k = left;
        memcpy(w->buf + w->fill, x + used, k * sizeof *x);
        w->fill += (unsigned)k;
        used += k;
    }
    return used;
}

int win_ready(const windower *w)
{
    return w->fill >= w->size;
}

int win_next(windower *w, float *out, uint64_t *seq, uint64_t *start)
{
    if (w->fill < w->size)
        return 0;
    memcpy(out, w->buf, (size_t)w->size * sizeof *out);
    *seq = w->seq++;
    *start = w->start;
    w->start += w->hop;
    if (w->hop < w->size) {
        /* the overlap becomes the head of the next window */
        w->fill = w->size - w->hop;
        memmove(w->buf, w->buf + w->hop, (size_t)w->fill * sizeof *w->buf);
    } else {
        w->fill = 0;
        w->skip = w->hop - w->size;
    }
    return 1;
}
