/* SPDX-License-Identifier: Apache-2.0 */
/* source.c — what every source shares: a stream's ring, counters and clock.
 *
 * The clock is a small history of anchors behind one seqlock, with one
 * writer (the capture thread) and one reader (the windower; tests may add
 * more).  The writer makes `seq` odd, stores the next anchor (overwriting
 * the oldest of STREAM_CLOCK_HIST) and the count `n`, and makes `seq` even
 * again; a reader retries while `seq` is odd or changed under it.  One
 * seqlock over the whole array is enough: anchors are written at most once
 * per source write (a discontinuity, a drift step) and in a few
 * nanoseconds, so a reader almost never retries, and a lookup is a binary
 * search over the kept anchors (their positions never decrease).  Every field is an atomic, so there is no
 * data race for TSan to see even on a torn read; the fences order the field
 * accesses against the `seq` accesses (the classic C11 seqlock, see Boehm,
 * "Can seqlocks get along with programming language memory models?", 2012).
 */
#include "source.h"
#include "record.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int stream_init(struct stream *st, const char *name, double rate, unsigned hop,
                uint32_t ring_capacity)
{
    memset(st, 0, sizeof *st);
    if (!name || strlen(name) >= sizeof st->name || !(rate > 0) || hop == 0)
        return -EINVAL;
    strcpy(st->name, name);
    st->rate = rate;
    st->hop = hop;
    st->ring = ring_create(ring_capacity);
    if (!st->ring)
        return -ENOMEM;
    atomic_init(&st->written, 0);
    atomic_init(&st->dropped, 0);
    atomic_init(&st->xruns, 0);
    atomic_init(&st->eof, false);
    atomic_init(&st->down, false);
    atomic_init(&st->reopens, 0);
    atomic_init(&st->clock.seq, 0);
    atomic_init(&st->clock.n, 0);
    for (unsigned i = 0; i < STREAM_CLOCK_HIST; i++) {
        atomic_init(&st->clock.a[i].pos, 0);
        atomic_init(&st->clock.a[i].t_ns, 0);
    }
    for (unsigned i = 0; i < STREAM_GAPQ; i++)
        atomic_init(&st->gap_q[i], 0);
    atomic_init(&st->gap_head, 0);
    atomic_init(&st->gap_tail, 0);
    atomic_init(&st->gap_exact, false);
    atomic_init(&st->gap_lost, false);
    for (unsigned i = 0; i < STREAM_WLOG; i++) {
        atomic_init(&st->wlog[i].end, 0);
        atomic_init(&st->wlog[i].ns, 0);
    }
    atomic_init(&st->wlog_n, 0);
    atomic_init(&st->wlog_w, 0);
    return 0;
}

void stream_fini(struct stream *st)
{
    if (!st)
        return;
    ring_destroy(st->ring);
    st->ring = NULL;
}

void stream_clock_set(struct stream *st, uint64_t pos, int64_t t_ns)
{
    struct stream_clock *c = &st->clock;
    /* seq and n are this thread's own: relaxed loads are enough. */
    uint32_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);

    atomic_store_explicit(&c->seq, s + 1, memory_order_relaxed);
    /* The odd seq must be visible before any new field value: a reader that
     * sees a new field (this fence pairs with the reader's acquire fence)
     * then sees seq changed and retries. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&c->a[n % STREAM_CLOCK_HIST].pos, pos, memory_order_relaxed);
    atomic_store_explicit(&c->a[n % STREAM_CLOCK_HIST].t_ns, t_ns, memory_order_relaxed);
    atomic_store_explicit(&c->n, n + 1, memory_order_relaxed);
    /* Release: the fields are written before seq is even again (pairs with
     * the reader's acquire load of seq). */
    atomic_store_explicit(&c->seq, s + 2, memory_order_release);
}

double stream_time(const struct stream *st, uint64_t pos)
{
    const struct stream_clock *c = &st->clock;
    uint32_t s1, s2;
    uint64_t pos0;
    int64_t t_ns;

    for (;;) {
        /* Acquire: if seq is even here, the fields of that version are
         * visible to the loads below. */
        s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (s1 & 1)
            continue;               /* a write is under way; it is short */
        uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
        uint32_t kept = n < STREAM_CLOCK_HIST ? n : STREAM_CLOCK_HIST;
        /* Anchors are in position order: the newest one at or before pos
         * is the one whose stretch of the timeline holds pos (binary
         * search over the kept ones).  None: the oldest kept one. */
        uint32_t lo = n - kept, hi = n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (atomic_load_explicit(&c->a[mid % STREAM_CLOCK_HIST].pos, memory_order_relaxed) <= pos)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint32_t i = (lo > n - kept ? lo - 1 : n - kept) % STREAM_CLOCK_HIST;
        pos0 = kept ? atomic_load_explicit(&c->a[i].pos, memory_order_relaxed) : 0;
        t_ns = kept ? atomic_load_explicit(&c->a[i].t_ns, memory_order_relaxed) : 0;
        /* Acquire: the field loads complete before seq is read again (pairs
         * with the writer's release fence: a field value from a newer write
         * comes with that write's odd seq). */
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&c->seq, memory_order_relaxed);
        if (s1 == s2)
            break;
    }
    /* pos may precede the anchor (older than every kept anchor): the signed
     * difference handles it. */
    return (double)t_ns / 1e9 + (double)(int64_t)(pos - pos0) / st->rate;
}

/* The gap queue: free-running u32 indices as in the ring.  The producer
 * fills an entry, then publishes it with a release store of gap_head; the
 * consumer reads entries after an acquire load of gap_head and frees them
 * with a release store of gap_tail.  The producer pushes a position before
 * it writes the sample at that position, and the pipeline reads the ring
 * (acquire) before asking about a window that ends beyond it, so an entry
 * is always visible by the time the window that holds it is cut. */
void stream_note_drop(struct stream *st, uint64_t n)
{
    /* `written` is this thread's own counter: relaxed is enough. */
    uint64_t pos = atomic_load_explicit(&st->written, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&st->gap_head, memory_order_relaxed);
    /* Acquire: entries the consumer freed are no longer read by it. */
    uint32_t t = atomic_load_explicit(&st->gap_tail, memory_order_acquire);

    atomic_store_explicit(&st->gap_exact, true, memory_order_relaxed);
    if (h != t && atomic_load_explicit(&st->gap_q[(h - 1) % STREAM_GAPQ],
                                       memory_order_relaxed) == pos) {
        /* Another loss at the same place (nothing written in between). */
    } else if (h - t < STREAM_GAPQ) {
        atomic_store_explicit(&st->gap_q[h % STREAM_GAPQ], pos, memory_order_relaxed);
        /* Release: the entry is written before the consumer can see it. */
        atomic_store_explicit(&st->gap_head, h + 1, memory_order_release);
    } else {
        atomic_store_explicit(&st->gap_lost, true, memory_order_relaxed);
    }
    /* Release: whoever sees the new count sees the entry and the flags. */
    atomic_fetch_add_explicit(&st->dropped, n, memory_order_release);
    if (st->rec)
        rec_loss(st->rec, n);
}

bool stream_gap_before(struct stream *st, uint64_t end, uint64_t *newest)
{
    bool gap = false;
    uint32_t t = atomic_load_explicit(&st->gap_tail, memory_order_relaxed);
    /* Acquire: pairs with the producer's release of gap_head. */
    uint32_t h = atomic_load_explicit(&st->gap_head, memory_order_acquire);

    while (t != h && atomic_load_explicit(&st->gap_q[t % STREAM_GAPQ],
                                          memory_order_relaxed) < end) {
        if (newest)
            *newest = atomic_load_explicit(&st->gap_q[t % STREAM_GAPQ], memory_order_relaxed);
        gap = true;
        t++;
    }
    /* Release: the entries are read before the producer may reuse them. */
    atomic_store_explicit(&st->gap_tail, t, memory_order_release);
    if (atomic_load_explicit(&st->gap_lost, memory_order_relaxed)
        && atomic_exchange_explicit(&st->gap_lost, false, memory_order_relaxed))
        gap = true;         /* no position: *newest untouched */
    return gap;
}

/* The entry log: one writer, readers that check afterwards that the writer
 * did not begin to overwrite what they read.  The writer announces entry j
 * in wlog_w before touching its slot (the release fence orders that store
 * before the field stores) and publishes it in wlog_n after; a reader
 * searches only entries at least WLOG_SLACK writes away from being reused,
 * then reads wlog_w again behind an acquire fence: if a field it read came
 * from a newer write, that write's announcement is visible and it retries. */
#define WLOG_SLACK 64u

void stream_commit(struct stream *st, uint32_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* `written` and the log counters are this thread's own: relaxed. */
    uint64_t end = atomic_load_explicit(&st->written, memory_order_relaxed) + n;
    uint32_t j = atomic_load_explicit(&st->wlog_n, memory_order_relaxed);

    atomic_store_explicit(&st->wlog_w, j + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&st->wlog[j % STREAM_WLOG].end, end, memory_order_relaxed);
    atomic_store_explicit(&st->wlog[j % STREAM_WLOG].ns,
                          (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, memory_order_relaxed);
    /* Release: a reader that sees the samples (ring, written) sees their
     * entry, which is published first. */
    atomic_store_explicit(&st->wlog_n, j + 1, memory_order_release);
    if (st->rec) {
        struct ring_vec v;
        ring_write_vec(st->ring, &v);   /* the segments just filled */
        rec_push(st->rec, &v, n);
    }
    ring_write_commit(st->ring, n);
    atomic_fetch_add_explicit(&st->written, n, memory_order_release);
}

int64_t stream_entered_ns(const struct stream *st, uint64_t pos)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        uint32_t n = atomic_load_explicit(&st->wlog_n, memory_order_acquire);
        uint32_t kept = n < STREAM_WLOG - WLOG_SLACK ? n : STREAM_WLOG - WLOG_SLACK;
        uint32_t first = n - kept, lo = first, hi = n;
        /* The first entry whose end is beyond pos is the write that held it. */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (atomic_load_explicit(&st->wlog[mid % STREAM_WLOG].end, memory_order_relaxed) > pos)
                hi = mid;
            else
                lo = mid + 1;
        }
        int64_t ns = lo < n ? atomic_load_explicit(&st->wlog[lo % STREAM_WLOG].ns,
                                                   memory_order_relaxed) : -1;
        atomic_thread_fence(memory_order_acquire);
        uint32_t w = atomic_load_explicit(&st->wlog_w, memory_order_relaxed);
        if (w - first > STREAM_WLOG)
            continue;                    /* the writer lapped what we read */
        /* Not logged (yet), or older than the kept entries (the write
         * that held it may be one before `first`). */
        if (lo == n || (lo == first && first > 0))
            return -1;
        return ns;
    }
    return -1;
}
