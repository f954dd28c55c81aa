/* SPDX-License-Identifier: Apache-2.0 */
/* test_stream_clock.c — a stream's clock: the anchor history behind its
 * seqlock, and the ring-entry log (stream_commit, stream_entered_ns).
 *
 * A source re-anchors its stream's clock after every discontinuity.  A window
 * that begins before a re-anchor but is cut after it must get its time from
 * the anchor of its own side of the gap, not from the newest one extrapolated
 * backwards (which is off by the time lost in the gap).  The threaded test
 * runs a writer and a reader the way the capture thread and the windower do,
 * so that TSan (make check runs every unit test under it) checks the
 * ordering, and each answer is checked against the anchor it must come from.
 * The entry log's threaded test does the same for a writer committing blocks
 * and a reader timing every block it takes out of the ring.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "source.h"
#include "test.h"

#define RATE 1000.0

/* Before any anchor: 0 + pos / rate. */
TEST(no_anchor)
{
    struct stream st;
    REQUIRE(stream_init(&st, "s", RATE, 10, 64) == 0);
    CHECK(stream_time(&st, 0) == 0.0);
    CHECK(fabs(stream_time(&st, 2500) - 2.5) < 1e-12);
    stream_fini(&st);
}

/* 1000 samples from t = 100 s, then 0.5 s lost, then from 101.5 s. */
TEST(earlier_position_uses_its_own_anchor)
{
    struct stream st;
    REQUIRE(stream_init(&st, "s", RATE, 10, 64) == 0);
    stream_clock_set(&st, 0, 100000000000LL);
    CHECK(fabs(stream_time(&st, 500) - 100.5) < 1e-9);
    stream_clock_set(&st, 1000, 101500000000LL);
    /* The window began before the re-anchor: its time is on the old timeline. */
    double t = stream_time(&st, 500);
    CHECKF(fabs(t - 100.5) < 1e-9, "t(500) = %.6f, want 100.5", t);
    CHECKF(fabs(stream_time(&st, 999) - 100.999) < 1e-9, "t(999) = %.6f",
           stream_time(&st, 999));
    CHECK(fabs(stream_time(&st, 1000) - 101.5) < 1e-9);
    CHECK(fabs(stream_time(&st, 1500) - 102.0) < 1e-9);
    stream_fini(&st);
}

/* Two anchors at one position: the newer one counts. */
TEST(same_position_newest_wins)
{
    struct stream st;
    REQUIRE(stream_init(&st, "s", RATE, 10, 64) == 0);
    stream_clock_set(&st, 0, 0);
    stream_clock_set(&st, 100, 5000000000LL);
    stream_clock_set(&st, 100, 7000000000LL);
    CHECK(fabs(stream_time(&st, 150) - 7.05) < 1e-9);
    CHECK(fabs(stream_time(&st, 50) - 0.05) < 1e-9);
    stream_fini(&st);
}

/* Anchor k at pos 100 k, t = k s + k ms (every anchor a jump).  The last
 * STREAM_CLOCK_HIST are kept; older positions extrapolate from the oldest. */
static int64_t anchor_ns(uint64_t k) { return (int64_t)k * 1001000000LL; }

static double expect_time(uint64_t pos)
{
    uint64_t k = pos / 100;
    return (double)anchor_ns(k) / 1e9 + (double)(pos - k * 100) / RATE;
}

TEST(history_depth)
{
    struct stream st;
    const unsigned n = STREAM_CLOCK_HIST + 2;
    REQUIRE(stream_init(&st, "s", RATE, 10, 64) == 0);
    for (uint64_t k = 0; k < n; k++)
        stream_clock_set(&st, k * 100, anchor_ns(k));
    const uint64_t oldest = n - STREAM_CLOCK_HIST;
    unsigned bad = 0;
    for (uint64_t pos = oldest * 100; pos < n * 100 + 50; pos += 7) {
        double t = stream_time(&st, pos);
        uint64_t k = pos / 100 < n ? pos / 100 : n - 1;
        double want = (double)anchor_ns(k) / 1e9 + (double)(pos - k * 100) / RATE;
        if (fabs(t - want) > 1e-9 && !bad++)
            printf("# first wrong: pos %llu: %.6f, want %.6f\n", (unsigned long long)pos, t, want);
    }
    CHECKF(bad == 0, "%u positions got a wrong time", bad);
    /* Older than every kept anchor: from the oldest kept one, backwards. */
    uint64_t pos = oldest * 100 - 30;
    double want = (double)anchor_ns(oldest) / 1e9 - 30 / RATE;
    CHECKF(fabs(stream_time(&st, pos) - want) < 1e-9, "pos %llu: %.6f, want %.6f",
           (unsigned long long)pos, stream_time(&st, pos), want);
    stream_fini(&st);
}

/* ---- threaded ------------------------------------------------------------- */

#define ANCHORS   50000
#define LAG       3          /* the writer runs at most this many anchors ahead of the reader */
#define LOOKBACK  300        /* the reader asks for positions this far behind `published` */

struct shared {
    struct stream    st;
    _Atomic uint64_t published;   /* writer: positions below this are "written" */
    _Atomic uint64_t acked;       /* reader: the last `published` it has seen */
    _Atomic bool     done;
    uint64_t         bad, asked;
    double           worst;
};

static void *writer(void *arg)
{
    struct shared *sh = arg;
    for (uint64_t k = 0; k < ANCHORS; k++) {
        /* Bounded lead, as a windower that keeps up: the positions the
         * reader may still ask for stay within the kept anchors. */
        while (k * 100 > atomic_load_explicit(&sh->acked, memory_order_acquire) + LAG * 100)
            sched_yield();
        stream_clock_set(&sh->st, k * 100, anchor_ns(k));
        /* Release: the anchor is set before the samples it covers are
         * published (as the capture thread sets it before `written`). */
        atomic_store_explicit(&sh->published, (k + 1) * 100, memory_order_release);
    }
    atomic_store_explicit(&sh->done, true, memory_order_release);
    return NULL;
}

static void *reader(void *arg)
{
    struct shared *sh = arg;
    uint32_t x = 2463534242u;
    for (;;) {
        bool done = atomic_load_explicit(&sh->done, memory_order_acquire);
        uint64_t pub = atomic_load_explicit(&sh->published, memory_order_acquire);
        if (pub) {
            /* Any position written, up to LOOKBACK behind the newest: often
             * before the newest anchor, as a window cut after a re-anchor. */
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            uint64_t back = x % (pub < LOOKBACK ? pub : LOOKBACK) + 1;
            uint64_t pos = pub - back;
            double t = stream_time(&sh->st, pos), e = fabs(t - expect_time(pos));
            sh->asked++;
            if (e > 1e-6)
                sh->bad++;
            if (e > sh->worst)
                sh->worst = e;
            if (atomic_load_explicit(&sh->acked, memory_order_relaxed) == pub)
                sched_yield();      /* nothing new: let the writer run */
            atomic_store_explicit(&sh->acked, pub, memory_order_release);
        }
        if (done)
            break;
    }
    return NULL;
}

TEST(threaded_reanchor_while_reading)
{
    static struct shared sh;
    REQUIRE(stream_init(&sh.st, "s", RATE, 10, 64) == 0);
    atomic_init(&sh.published, 0);
    atomic_init(&sh.acked, 0);
    atomic_init(&sh.done, false);
    pthread_t w, r;
    REQUIRE(pthread_create(&r, NULL, reader, &sh) == 0);
    REQUIRE(pthread_create(&w, NULL, writer, &sh) == 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    printf("# %llu lookups, %llu wrong, worst error %.3g s\n", (unsigned long long)sh.asked,
           (unsigned long long)sh.bad, sh.worst);
    CHECK(sh.asked >= ANCHORS / (LAG + 1));
    CHECKF(sh.bad == 0, "%llu of %llu lookups used the wrong anchor (worst %.3g s)",
           (unsigned long long)sh.bad, (unsigned long long)sh.asked, sh.worst);
    stream_fini(&sh.st);
}

/* ---- the ring-entry log ------------------------------------------------------ */

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Commit n samples (their values do not matter here) and take them out of
 * the ring again; the times just before and after the commit. */
static void commit(struct stream *st, uint32_t n, int64_t *before, int64_t *after)
{
    struct ring_vec v;
    *before = mono();
    REQUIRE(ring_write_vec(st->ring, &v) >= n);
    stream_commit(st, n);
    *after = mono();
    ring_read_commit(st->ring, n);
}

TEST(entry_log)
{
    struct stream st;
    int64_t b[3], a[3], x, y;
    REQUIRE(stream_init(&st, "s", RATE, 10, 1024) == 0);
    CHECK(stream_entered_ns(&st, 0) == -1);              /* nothing written */
    commit(&st, 10, &b[0], &a[0]);
    commit(&st, 20, &b[1], &a[1]);
    commit(&st, 5, &b[2], &a[2]);
    CHECK(atomic_load(&st.written) == 35);
    static const uint64_t pos[] = { 0, 9, 10, 29, 30, 34 };
    static const int blk[] = { 0, 0, 1, 1, 2, 2 };
    for (int i = 0; i < 6; i++) {
        int64_t e = stream_entered_ns(&st, pos[i]);
        CHECKF(e >= b[blk[i]] && e <= a[blk[i]], "sample %llu: %lld not in [%lld, %lld]",
               (unsigned long long)pos[i], (long long)e, (long long)b[blk[i]],
               (long long)a[blk[i]]);
    }
    CHECK(stream_entered_ns(&st, 35) == -1);             /* not written yet */
    /* A full log later the first blocks are forgotten, the newest known. */
    for (unsigned i = 0; i < STREAM_WLOG; i++)
        commit(&st, 1, &x, &y);
    CHECK(stream_entered_ns(&st, 0) == -1);
    CHECK(stream_entered_ns(&st, 34) == -1);
    int64_t e = stream_entered_ns(&st, 35 + STREAM_WLOG - 1);
    CHECKF(e >= x && e <= y, "newest: %lld not in [%lld, %lld]", (long long)e, (long long)x,
           (long long)y);
    stream_fini(&st);
}

#define BLOCKS 20000
#define BLOCK  7

struct wshared {
    struct stream    st;
    int64_t          before[BLOCKS];  /* writer, before committing block k */
    uint64_t         bad, unknown, asked;
};

static void *log_writer(void *arg)
{
    struct wshared *sh = arg;
    for (unsigned k = 0; k < BLOCKS; k++) {
        struct ring_vec v;
        while (ring_write_vec(sh->st.ring, &v) < BLOCK)
            sched_yield();
        sh->before[k] = mono();
        /* Release (inside): `before` and the entry are visible to whoever
         * sees the samples. */
        stream_commit(&sh->st, BLOCK);
    }
    atomic_store_explicit(&sh->st.eof, true, memory_order_release);
    return NULL;
}

static void *log_reader(void *arg)
{
    struct wshared *sh = arg;
    uint64_t taken = 0, pos = 0;       /* every third sample is timed */
    for (;;) {
        bool eof = atomic_load_explicit(&sh->st.eof, memory_order_acquire);
        struct ring_vec v;
        uint32_t n = ring_read_vec(sh->st.ring, &v);
        for (; pos < taken + n; pos += 3) {
            int64_t e = stream_entered_ns(&sh->st, pos), now = mono();
            sh->asked++;
            if (e < 0)
                sh->unknown++;
            else if (e < sh->before[pos / BLOCK] || e > now)
                sh->bad++;
        }
        ring_read_commit(sh->st.ring, n);
        taken += n;
        if (n == 0 && eof)
            break;
        if (n == 0)
            sched_yield();
    }
    return NULL;
}

TEST(threaded_entry_log)
{
    static struct wshared sh;
    /* A ring of 1024 holds ~146 blocks: every sample the reader takes out is
     * among the kept entries. */
    REQUIRE(stream_init(&sh.st, "s", RATE, 10, 1024) == 0);
    pthread_t w, r;
    REQUIRE(pthread_create(&r, NULL, log_reader, &sh) == 0);
    REQUIRE(pthread_create(&w, NULL, log_writer, &sh) == 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    printf("# %llu lookups, %llu unknown, %llu outside [commit, now]\n",
           (unsigned long long)sh.asked, (unsigned long long)sh.unknown,
           (unsigned long long)sh.bad);
    CHECK(sh.asked == (BLOCKS * BLOCK + 2) / 3);
    CHECKF(sh.bad == 0 && sh.unknown == 0, "%llu wrong, %llu unknown",
           (unsigned long long)sh.bad, (unsigned long long)sh.unknown);
    stream_fini(&sh.st);
}

int main(void)
{
    RUN(no_anchor);
    RUN(earlier_position_uses_its_own_anchor);
    RUN(same_position_newest_wins);
    RUN(history_depth);
    RUN(threaded_reanchor_while_reading);
    RUN(entry_log);
    RUN(threaded_entry_log);
    return TEST_END();
}
