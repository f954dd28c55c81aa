/* SPDX-License-Identifier: Apache-2.0 */
/* ring.c — lock-free single-producer/single-consumer ring of float samples.
 *
 * DESIGN (after PipeWire's spa_ringbuffer, ck_ring and JACK's ringbuffer):
 * two free-running 32-bit indices, each written by exactly one thread.  The
 * slot of index i is buf[i & mask]; readable = write - read and free =
 * capacity - readable, both modulo 2^32, which is why the capacity is a power
 * of two no larger than 2^31 (the difference of two indices must be able to
 * say "full" unambiguously).  Nothing is ever reset, so there is no ABA and no
 * "one slot kept empty" trick.
 *
 * Memory ordering, the whole protocol:
 *   producer: w = own index (relaxed, it is the only writer)
 *             r = read index  (ACQUIRE: the consumer finished reading the
 *                              slots below r before publishing r, so we may
 *                              overwrite them)
 *             write samples into [w, w+n)
 *             write index = w+n (RELEASE: the samples are visible to whoever
 *                              acquires this value)
 *   consumer: the mirror image, with read and write swapped.
 * No other fence exists; x86 compiles all of this to plain moves, and TSan
 * checks it (tests/unit/test_ring.c runs a threaded hammer in make check).
 *
 * Each index sits alone on its own 64-byte cache line, and the read-only
 * fields (mask, buf) on a third, so the two threads never false-share.
 */
#include "ring.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define RING_LINE 64

struct ring {
    alignas(RING_LINE) _Atomic uint32_t write_idx;  /* producer-owned */
    alignas(RING_LINE) _Atomic uint32_t read_idx;   /* consumer-owned */
    alignas(RING_LINE) uint32_t capacity;           /* immutable after create */
    uint32_t mask;
    float   *buf;
};

ring *ring_create_at(uint32_t capacity, uint32_t start)
{
    if (capacity == 0 || capacity > (UINT32_C(1) << 31)) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    /* aligned_alloc wants a size that is a multiple of the alignment; the
     * alignas members make sizeof(struct ring) one. */
    ring *r = aligned_alloc(RING_LINE, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->buf = malloc((size_t)cap * sizeof *r->buf);
    if (!r->buf) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    r->capacity = cap;
    r->mask = cap - 1;
    /* Plain initialisation: the ring is handed to the threads later through
     * something that synchronises (pthread_create, a mutex). */
    atomic_init(&r->write_idx, start);
    atomic_init(&r->read_idx, start);
    return r;
}

ring *ring_create(uint32_t capacity)
{
    return ring_create_at(capacity, 0);
}

void ring_destroy(ring *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

uint32_t ring_capacity(const ring *r)
{
    return r->capacity;
}

/* Split the n slots starting at index idx into the part up to the end of
 * buf and the part that wraps to its start. */
static void segments(const ring *r, uint32_t idx, uint32_t n, struct ring_vec *v)
{
    uint32_t off = idx & r->mask;
    uint32_t first = r->capacity - off;
    if (first > n)
        first = n;
    v->p[0] = r->buf + off;
    v->n[0] = first;
    v->p[1] = r->buf;
    v->n[1] = n - first;
}

/* ---- producer --------------------------------------------------------- */

uint32_t ring_write_space(const ring *r)
{
    /* relaxed: only this (producer) thread stores write_idx */
    uint32_t w = atomic_load_explicit(&r->write_idx, memory_order_relaxed);
    /* acquire: pairs with the consumer's release of read_idx; its reads of
     * the slots below rd happened before, so they may be overwritten now */
    uint32_t rd = atomic_load_explicit(&r->read_idx, memory_order_acquire);
    return r->capacity - (w - rd);
}

uint32_t ring_write_vec(ring *r, struct ring_vec *v)
{
    uint32_t space = ring_write_space(r);   /* acquire inside */
    /* relaxed: own index */
    segments(r, atomic_load_explicit(&r->write_idx, memory_order_relaxed), space, v);
    return space;
}

void ring_write_commit(ring *r, uint32_t n)
{
    /* relaxed: own index */
    uint32_t w = atomic_load_explicit(&r->write_idx, memory_order_relaxed);
    /* release: pairs with the consumer's acquire of write_idx, publishing the
     * samples written into [w, w+n) before this store */
    atomic_store_explicit(&r->write_idx, w + n, memory_order_release);
}

uint32_t ring_write(ring *r, const float *src, uint32_t n)
{
    struct ring_vec v;
    uint32_t space = ring_write_vec(r, &v);
    if (n > space)
        n = space;
    uint32_t a = n < v.n[0] ? n : v.n[0];
    memcpy(v.p[0], src, (size_t)a * sizeof *src);
    memcpy(v.p[1], src + a, (size_t)(n - a) * sizeof *src);
    ring_write_commit(r, n);   /* release inside */
    return n;
}

/* ---- consumer --------------------------------------------------------- */

uint32_t ring_read_avail(const ring *r)
{
    /* acquire: pairs with the producer's release of write_idx, so the
     * samples below w are visible to this thread */
    uint32_t w = atomic_load_explicit(&r->write_idx, memory_order_acquire);
    /* relaxed: only this (consumer) thread stores read_idx */
    uint32_t rd = atomic_load_explicit(&r->read_idx, memory_order_relaxed);
    return w - rd;
}

uint32_t ring_read_vec(const ring *r, struct ring_vec *v)
{
    uint32_t avail = ring_read_avail(r);   /* acquire inside */
    /* relaxed: own index */
    segments(r, atomic_load_explicit(&r->read_idx, memory_order_relaxed), avail, v);
    return avail;
}

void ring_read_commit(ring *r, uint32_t n)
{
    /* relaxed: own index */
    uint32_t rd = atomic_load_explicit(&r->read_idx, memory_order_relaxed);
    /* release: pairs with the producer's acquire of read_idx; our reads of
     * [rd, rd+n) are done before the producer may reuse those slots */
    atomic_store_explicit(&r->read_idx, rd + n, memory_order_release);
}

uint32_t ring_peek(const ring *r, float *dst, uint32_t n)
{
    struct ring_vec v;
    uint32_t avail = ring_read_vec(r, &v);   /* acquire inside */
    if (n > avail)
        n = avail;
    uint32_t a = n < v.n[0] ? n : v.n[0];
    memcpy(dst, v.p[0], (size_t)a * sizeof *dst);
    memcpy(dst + a, v.p[1], (size_t)(n - a) * sizeof *dst);
    return n;
}

uint32_t ring_read(ring *r, float *dst, uint32_t n)
{
    n = ring_peek(r, dst, n);
    ring_read_commit(r, n);   /* release inside */
    return n;
}

bool ring_valid(const ring *r)
{
    if (!r || !r->buf || r->capacity < 2 || r->capacity > (UINT32_C(1) << 31) ||
        (r->capacity & (r->capacity - 1)) || r->mask != r->capacity - 1)
        return false;
    /* read first, then write: write only moves forward and never passes
     * read + capacity, so from either side the difference is exact.
     * acquire on both: pairs with the owners' release stores */
    uint32_t rd = atomic_load_explicit(&r->read_idx, memory_order_acquire);
    uint32_t w = atomic_load_explicit(&r->write_idx, memory_order_acquire);
    return w - rd <= r->capacity;
}
