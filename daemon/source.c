/* source.c — what every source shares: a stream's ring, counters and clock.
 *
 * The clock is a small history of anchors behind one seqlock, with one
 * writer (the capture thread) and one reader (the windower; tests may add
 * more).  The writer makes `seq` odd, stores the next anchor (overwriting
 * the oldest of STREAM_CLOCK_HIST) and the count `n`, and makes `seq` even
 * again; a reader retries while `seq` is odd or changed under it.  One
 * seqlock over the whole array is enough: anchors are rare (a discontinuity,
 * a drift step), so a reader almost never retries, and a lookup scans at
 * most STREAM_CLOCK_HIST entries.  Every field is an atomic, so there is no
 * data race for TSan to see even on a torn read; the fences order the field
 * accesses against the `seq` accesses (the classic C11 seqlock, see Boehm,
 * "Can seqlocks get along with programming language memory models?", 2012).
 */
#include "source.h"

#include <errno.h>
#include <string.h>

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
        pos0 = 0;
        t_ns = 0;
        /* Newest first: the first anchor at or before pos is the one whose
         * stretch of the timeline holds pos.  None: the oldest kept one. */
        for (uint32_t k = 1; k <= kept; k++) {
            uint32_t i = (n - k) % STREAM_CLOCK_HIST;
            pos0 = atomic_load_explicit(&c->a[i].pos, memory_order_relaxed);
            t_ns = atomic_load_explicit(&c->a[i].t_ns, memory_order_relaxed);
            if (pos0 <= pos)
                break;
        }
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
}

bool stream_gap_before(struct stream *st, uint64_t end)
{
    bool gap = false;
    uint32_t t = atomic_load_explicit(&st->gap_tail, memory_order_relaxed);
    /* Acquire: pairs with the producer's release of gap_head. */
    uint32_t h = atomic_load_explicit(&st->gap_head, memory_order_acquire);

    while (t != h && atomic_load_explicit(&st->gap_q[t % STREAM_GAPQ],
                                          memory_order_relaxed) < end) {
        gap = true;
        t++;
    }
    /* Release: the entries are read before the producer may reuse them. */
    atomic_store_explicit(&st->gap_tail, t, memory_order_release);
    if (atomic_load_explicit(&st->gap_lost, memory_order_relaxed)
        && atomic_exchange_explicit(&st->gap_lost, false, memory_order_relaxed))
        gap = true;
    return gap;
}
