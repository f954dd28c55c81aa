/* SPDX-License-Identifier: Apache-2.0 */
/* ring.h — lock-free single-producer/single-consumer ring of float samples.
 *
 * One capture thread writes, one pipeline thread reads; neither ever blocks
 * here: waiting (for data, or for room) is the caller's business.
 *
 *   write_idx (producer-owned, free-running u32)    read_idx (consumer-owned)
 *   ─────────┬─────────────────────────────────────┬──────────────
 *            │  readable = write_idx - read_idx     │
 *   buf[idx & (cap-1)]   cap is a power of two, readable <= cap
 *
 * Indices run freely and wrap at 2^32; differences are taken modulo 2^32, so
 * capacity is at most 2^31.  The producer loads read_idx with acquire (the
 * consumer's reads of those slots happened before) and stores write_idx with
 * release (publishing the samples it wrote); the consumer mirrors that.  The
 * two indices live on separate cache lines.
 *
 * Zero copy: *_vec() hand out up to two segments (the second after the wrap);
 * fill or read them, then *_commit() the count actually used.
 */
#ifndef TRIDENT_RING_H
#define TRIDENT_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ring ring;

struct ring_vec {
    float   *p[2];
    uint32_t n[2];
};

/* capacity: samples, rounded up to a power of two (2 .. 2^31).  NULL on
 * ENOMEM/EINVAL (errno set; capacity 0 or above 2^31 is EINVAL). */
ring    *ring_create(uint32_t capacity);
/* For tests: as ring_create() but both indices start at `start` instead of
 * 0, so that the 2^32 wrap-around of the free-running indices can be
 * reached (start = UINT32_MAX - k) without pushing 4 G samples. */
ring    *ring_create_at(uint32_t capacity, uint32_t start);
void     ring_destroy(ring *r);
uint32_t ring_capacity(const ring *r);

/* Producer side. */
uint32_t ring_write_space(const ring *r);
uint32_t ring_write(ring *r, const float *src, uint32_t n);   /* writes min(n, space), returns it */
uint32_t ring_write_vec(ring *r, struct ring_vec *v);         /* free segments, returns total */
void     ring_write_commit(ring *r, uint32_t n);              /* n <= total of the last _vec */

/* Consumer side. */
uint32_t ring_read_avail(const ring *r);
uint32_t ring_read(ring *r, float *dst, uint32_t n);          /* reads min(n, avail), returns it */
uint32_t ring_peek(const ring *r, float *dst, uint32_t n);    /* like read, index not advanced */
uint32_t ring_read_vec(const ring *r, struct ring_vec *v);    /* filled segments, returns total */
void     ring_read_commit(ring *r, uint32_t n);               /* also: skip n <= avail samples */

/* Invariants hold (0 <= write - read <= capacity, capacity a power of two):
 * for tests and asserts.  Exact when called from the producer or the
 * consumer thread (or with both idle); a commit larger than allowed above
 * is not checked on the fast path but makes it return false. */
bool     ring_valid(const ring *r);

#endif
