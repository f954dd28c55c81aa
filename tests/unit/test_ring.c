/* SPDX-License-Identifier: Apache-2.0 */
/* test_ring.c — the SPSC ring: edge cases on one thread, then a hammer.
 *
 * Single thread: capacity rounding, empty, full, wrap, both vector segments,
 * peek, commit as skip, indices crossing 2^32 (ring_create_at), ring_valid()
 * catching a bad commit.  Threaded: one producer and one consumer move
 * sequence-numbered samples (exact integers in float) through a small ring in
 * random chunks with randomly mixed plain and vector calls, starting just
 * below the 2^32 index wrap; the consumer checks that nothing is lost,
 * duplicated or reordered.  make check runs this under TSan too.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "ring.h"
#include "test.h"

static void fill_seq(float *x, uint32_t n, uint32_t from)
{
    for (uint32_t i = 0; i < n; i++)
        x[i] = (float)(from + i);
}

static int is_seq(const float *x, uint32_t n, uint32_t from)
{
    for (uint32_t i = 0; i < n; i++)
        if (x[i] != (float)(from + i))
            return 0;
    return 1;
}

TEST(capacity_rounding)
{
    const uint32_t in[] = { 1, 2, 3, 4, 5, 1000, 1024, 1025, 65537 };
    const uint32_t out[] = { 2, 2, 4, 4, 8, 1024, 1024, 2048, 131072 };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        ring *r = ring_create(in[i]);
        REQUIRE(r);
        CHECKF(ring_capacity(r) == out[i], "%u -> %u", in[i], ring_capacity(r));
        CHECK(ring_write_space(r) == out[i] && ring_read_avail(r) == 0 && ring_valid(r));
        ring_destroy(r);
    }
    errno = 0;
    CHECK(ring_create(0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ring_create((UINT32_C(1) << 31) + 1) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ring_create(UINT32_MAX) == NULL && errno == EINVAL);
    ring_destroy(NULL);
}

TEST(empty)
{
    ring *r = ring_create(8);
    REQUIRE(r);
    float x[8];
    struct ring_vec v;
    CHECK(ring_read(r, x, 8) == 0);
    CHECK(ring_peek(r, x, 8) == 0);
    CHECK(ring_read_vec(r, &v) == 0 && v.n[0] == 0 && v.n[1] == 0);
    CHECK(ring_write_vec(r, &v) == 8 && v.n[0] == 8 && v.n[1] == 0);
    ring_destroy(r);
}

TEST(full)
{
    ring *r = ring_create(8);
    REQUIRE(r);
    float x[12], y[12];
    fill_seq(x, 12, 100);
    CHECK(ring_write(r, x, 12) == 8);       /* only what fits */
    CHECK(ring_write_space(r) == 0 && ring_read_avail(r) == 8 && ring_valid(r));
    CHECK(ring_write(r, x, 1) == 0);
    struct ring_vec v;
    CHECK(ring_write_vec(r, &v) == 0 && v.n[0] == 0 && v.n[1] == 0);
    CHECK(ring_read(r, y, 12) == 8 && is_seq(y, 8, 100));
    CHECK(ring_read_avail(r) == 0 && ring_write_space(r) == 8);
    ring_destroy(r);
}

TEST(wrap_and_segments)
{
    ring *r = ring_create(8);
    REQUIRE(r);
    float x[8], y[8];
    fill_seq(x, 5, 0);
    CHECK(ring_write(r, x, 5) == 5);
    CHECK(ring_read(r, y, 5) == 5 && is_seq(y, 5, 0));
    /* write side: free slots 5..7 then 0..4 */
    struct ring_vec v;
    CHECK(ring_write_vec(r, &v) == 8);
    CHECK(v.n[0] == 3 && v.n[1] == 5 && v.p[1] + 5 == v.p[0]);
    fill_seq(x, 6, 5);
    CHECK(ring_write(r, x, 6) == 6);        /* wraps: 3 at the end, 3 at the start */
    CHECK(ring_read_vec(r, &v) == 6);
    CHECK(v.n[0] == 3 && v.n[1] == 3 && v.p[1] + 5 == v.p[0]);
    CHECK(is_seq(v.p[0], 3, 5) && is_seq(v.p[1], 3, 8));
    CHECK(ring_read(r, y, 8) == 6 && is_seq(y, 6, 5));
    CHECK(ring_valid(r));
    ring_destroy(r);
}

TEST(vec_partial_commit)
{
    ring *r = ring_create(16);
    REQUIRE(r);
    struct ring_vec v;
    uint32_t seq = 0, rd = 0;
    for (int round = 0; round < 50; round++) {
        /* fill part of the free space through the vector, across the wrap */
        uint32_t tot = ring_write_vec(r, &v), k = tot > 7 ? 7 : tot;
        uint32_t a = k < v.n[0] ? k : v.n[0];
        fill_seq(v.p[0], a, seq);
        fill_seq(v.p[1], k - a, seq + a);
        ring_write_commit(r, k);
        seq += k;
        /* consume 5 through the read vector */
        tot = ring_read_vec(r, &v);
        k = tot > 5 ? 5 : tot;
        a = k < v.n[0] ? k : v.n[0];
        CHECKF(is_seq(v.p[0], a, rd) && is_seq(v.p[1], k - a, rd + a), "round %d", round);
        ring_read_commit(r, k);
        rd += k;
        CHECK(ring_valid(r) && ring_read_avail(r) == seq - rd);
    }
    ring_destroy(r);
}

TEST(peek_and_skip)
{
    ring *r = ring_create(8);
    REQUIRE(r);
    float x[8], y[8];
    fill_seq(x, 7, 40);
    ring_write(r, x, 7);
    CHECK(ring_peek(r, y, 3) == 3 && is_seq(y, 3, 40));
    CHECK(ring_peek(r, y, 8) == 7 && is_seq(y, 7, 40));   /* not advanced */
    CHECK(ring_read_avail(r) == 7);
    ring_read_commit(r, 4);                                 /* skip 4 */
    CHECK(ring_read_avail(r) == 3 && ring_write_space(r) == 5);
    CHECK(ring_read(r, y, 8) == 3 && is_seq(y, 3, 44));
    ring_destroy(r);
}

/* Indices cross 2^32 mid-ring: counts and contents stay right. */
TEST(index_wraparound)
{
    for (uint32_t back = 0; back < 10; back++) {
        ring *r = ring_create_at(8, UINT32_MAX - back);
        REQUIRE(r);
        float x[8], y[8];
        uint32_t seq = 0, rd = 0;
        for (int round = 0; round < 20; round++) {
            uint32_t n = (uint32_t)(round % 7) + 1;
            fill_seq(x, n, seq);
            uint32_t w = ring_write(r, x, n);
            seq += w;
            CHECK(ring_valid(r) && ring_read_avail(r) == seq - rd);
            CHECK(ring_write_space(r) == 8 - (seq - rd));
            uint32_t k = ring_read(r, y, (uint32_t)(round % 5) + 1);
            CHECKF(is_seq(y, k, rd), "back %u round %d", back, round);
            rd += k;
        }
        ring_destroy(r);
    }
}

TEST(valid_catches_bad_commit)
{
    ring *r = ring_create(8);
    REQUIRE(r);
    CHECK(ring_valid(r));
    ring_write_commit(r, 9);        /* more than the free space */
    CHECK(!ring_valid(r));
    ring_destroy(r);
    r = ring_create_at(8, 5);
    REQUIRE(r);
    ring_read_commit(r, 1);         /* more than is readable */
    CHECK(!ring_valid(r));
    ring_destroy(r);
    CHECK(!ring_valid(NULL));
}

/* ---- threaded hammer -------------------------------------------------- */

#define HAMMER_N   3000000u          /* < 2^24: exact as floats */
#define HAMMER_CAP 1024u

struct hammer {
    ring    *r;
    uint32_t seed;
    int      invalid;    /* ring_valid() failed on this side */
    uint32_t bad_at;     /* consumer: first wrong sample's position, or HAMMER_N */
    float    bad_val;
    uint32_t stalls;     /* calls that moved nothing: ring full / empty */
};

/* Set by the consumer when it stops early, so the producer does not wait
 * forever on a full ring. */
static atomic_int hammer_stop;

static uint32_t xs(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *producer(void *arg)
{
    struct hammer *h = arg;
    static float buf[HAMMER_CAP * 2];
    uint32_t seq = 0;
    while (seq < HAMMER_N && !atomic_load(&hammer_stop)) {
        uint32_t want = 1 + xs(&h->seed) % (HAMMER_CAP + HAMMER_CAP / 2);
        if (want > HAMMER_N - seq)
            want = HAMMER_N - seq;
        uint32_t done;
        if (xs(&h->seed) & 1) {
            fill_seq(buf, want, seq);
            done = ring_write(h->r, buf, want);
        } else {
            struct ring_vec v;
            uint32_t tot = ring_write_vec(h->r, &v);
            done = want < tot ? want : tot;
            uint32_t a = done < v.n[0] ? done : v.n[0];
            fill_seq(v.p[0], a, seq);
            fill_seq(v.p[1], done - a, seq + a);
            ring_write_commit(h->r, done);
        }
        seq += done;
        if (!ring_valid(h->r))
            h->invalid = 1;
        if (done == 0) {
            h->stalls++;
            sched_yield();   /* full: let the consumer run (2 shared cores) */
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct hammer *h = arg;
    static float buf[HAMMER_CAP * 2];
    uint32_t seq = 0;
    h->bad_at = HAMMER_N;
    while (seq < HAMMER_N) {
        uint32_t want = 1 + xs(&h->seed) % (HAMMER_CAP + HAMMER_CAP / 2), done;
        switch (xs(&h->seed) % 3) {
        case 0:
            done = ring_read(h->r, buf, want);
            break;
        case 1:   /* peek, then commit as skip */
            done = ring_peek(h->r, buf, want);
            ring_read_commit(h->r, done);
            break;
        default: {
            struct ring_vec v;
            uint32_t tot = ring_read_vec(h->r, &v);
            done = want < tot ? want : tot;
            uint32_t a = done < v.n[0] ? done : v.n[0];
            memcpy(buf, v.p[0], a * sizeof *buf);
            memcpy(buf + a, v.p[1], (done - a) * sizeof *buf);
            ring_read_commit(h->r, done);
        }
        }
        for (uint32_t i = 0; i < done && h->bad_at == HAMMER_N; i++)
            if (buf[i] != (float)(seq + i)) {
                h->bad_at = seq + i;
                h->bad_val = buf[i];
            }
        if (h->bad_at != HAMMER_N) {
            atomic_store(&hammer_stop, 1);
            return NULL;   /* a lost, repeated or reordered sample: stop */
        }
        seq += done;
        if (!ring_valid(h->r))
            h->invalid = 1;
        if (done == 0) {
            h->stalls++;
            sched_yield();
        }
    }
    return NULL;
}

TEST(threaded_hammer)
{
    /* start 1.5 M samples below the 2^32 index wrap: the run crosses it */
    ring *r = ring_create_at(HAMMER_CAP, UINT32_MAX - 1500000u);
    REQUIRE(r);
    struct hammer p = { .r = r, .seed = 0x9e3779b9u }, c = { .r = r, .seed = 0x85ebca6bu };
    pthread_t tp, tc;
    REQUIRE(pthread_create(&tc, NULL, consumer, &c) == 0);
    REQUIRE(pthread_create(&tp, NULL, producer, &p) == 0);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    printf("# %u samples: ring found full %u times, empty %u times\n", HAMMER_N, p.stalls,
           c.stalls);
    CHECKF(c.bad_at == HAMMER_N, "sample %u is %.0f", c.bad_at, c.bad_val);
    CHECK(!p.invalid && !c.invalid);
    CHECK(ring_read_avail(r) == 0 && ring_valid(r));
    ring_destroy(r);
}

int main(void)
{
    RUN(capacity_rounding);
    RUN(empty);
    RUN(full);
    RUN(wrap_and_segments);
    RUN(vec_partial_commit);
    RUN(peek_and_skip);
    RUN(index_wraparound);
    RUN(valid_catches_bad_commit);
    RUN(threaded_hammer);
    return TEST_END();
}
