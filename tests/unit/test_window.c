/* SPDX-License-Identifier: Apache-2.0 */
/* test_window.c — the windower against a direct slicing of the stream.
 *
 * For hop 1, 256, 1024 and 1500 (size 1024) and some small odd shapes, the
 * windows from one big push and from pushes of random sizes must both equal
 * x[k*hop .. k*hop+size) for every k with k*hop+size <= N, in order, with
 * seq == k and start == k*hop; nothing more (the tail shorter than a window is
 * not emitted), and win_ready() says exactly when win_next() would give one.
 * Samples are their own index (exact in float), so any lost,
 * repeated or shifted sample shows.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "window.h"

static uint32_t rng = 2024;
static uint32_t rnd(void) { rng = rng * 1664525u + 1013904223u; return rng >> 8; }

/* Feed x[n] in chunks (max_chunk 0: all at once) and check every window.
 * Returns the number of windows seen. */
static uint64_t feed_and_check(windower *w, const float *x, size_t n, unsigned size,
                               unsigned hop, size_t max_chunk, int *bad)
{
    float *out = malloc(size * sizeof *out);
    uint64_t k = 0, seq, start;
    size_t i = 0;
    while (i < n) {
        size_t c = max_chunk ? 1 + rnd() % max_chunk : n - i;
        if (c > n - i)
            c = n - i;
        size_t done = 0;
        while (done < c) {
            done += win_push(w, x + i + done, c - done);
            for (;;) {
                /* win_ready() must foretell win_next() without changing anything */
                int ready = win_ready(w);
                int got = win_next(w, out, &seq, &start);
                if (ready != got) {
                    if (!*bad)
                        printf("# window %llu: win_ready %d, win_next %d\n",
                               (unsigned long long)k, ready, got);
                    (*bad)++;
                }
                if (!got)
                    break;
                uint64_t s0 = k * hop;
                if (seq != k || start != s0 || s0 + size > n ||
                    memcmp(out, x + s0, size * sizeof *out) != 0) {
                    if (!*bad)
                        printf("# window %llu: seq %llu start %llu\n", (unsigned long long)k,
                               (unsigned long long)seq, (unsigned long long)start);
                    (*bad)++;
                }
                k++;
            }
        }
        i += c;
    }
    free(out);
    return k;
}

static void check_shape(unsigned size, unsigned hop, size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i;
    uint64_t want = n < size ? 0 : (n - size) / hop + 1;
    const size_t chunks[] = { 0, 1, 7, 1000, 5000 };
    windower *w = win_create(size, hop);
    REQUIRE(w);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        int bad = 0;
        win_reset(w);
        uint64_t got = feed_and_check(w, x, n, size, hop, chunks[c], &bad);
        CHECKF(bad == 0 && got == want, "size %u hop %u n %zu chunks<=%zu: %llu windows (%llu "
               "expected), %d wrong", size, hop, n, chunks[c], (unsigned long long)got,
               (unsigned long long)want, bad);
    }
    win_destroy(w);
    free(x);
}

TEST(hop_1)    { check_shape(1024, 1, 4100); }
TEST(hop_256)  { check_shape(1024, 256, 20000 + 77); }
TEST(hop_1024) { check_shape(1024, 1024, 20 * 1024 + 1023); }
TEST(hop_1500) { check_shape(1024, 1500, 30000 + 13); }

TEST(small_shapes)
{
    for (unsigned size = 1; size <= 6; size++)
        for (unsigned hop = 1; hop <= 9; hop++)
            for (size_t n = 0; n <= 25; n++)
                check_shape(size, hop, n);
}

TEST(tail_not_emitted)
{
    windower *w = win_create(1024, 512);
    REQUIRE(w);
    static float x[1023], out[1024];
    uint64_t seq, start;
    CHECK(win_push(w, x, 1023) == 1023);
    CHECK(win_next(w, out, &seq, &start) == 0);       /* one short: nothing */
    CHECK(win_push(w, x, 1) == 1);
    CHECK(win_next(w, out, &seq, &start) == 1 && seq == 0 && start == 0);
    CHECK(win_push(w, x, 511) == 511);
    CHECK(win_next(w, out, &seq, &start) == 0);
    win_destroy(w);
}

TEST(push_stops_at_full_window)
{
    windower *w = win_create(8, 2);
    REQUIRE(w);
    float x[20], out[8];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    uint64_t seq, start;
    CHECK(!win_ready(w));
    CHECK(win_push(w, x, 7) == 7 && !win_ready(w));    /* one short of a window */
    CHECK(win_push(w, x + 7, 13) == 1);                /* stops once a window is complete */
    CHECK(win_ready(w) && win_ready(w));               /* asking twice changes nothing */
    CHECK(win_push(w, x + 8, 12) == 0);                /* and takes nothing until win_next */
    CHECK(win_next(w, out, &seq, &start) == 1 && out[0] == 0 && out[7] == 7);
    CHECK(!win_ready(w));
    CHECK(win_next(w, out, &seq, &start) == 0);
    CHECK(win_push(w, x + 8, 12) == 2);                /* hop more completes the next */
    CHECK(win_ready(w));
    CHECK(win_next(w, out, &seq, &start) == 1 && seq == 1 && start == 2 && out[0] == 2);
    win_destroy(w);
}

TEST(reset_and_create_errors)
{
    windower *w = win_create(4, 6);
    REQUIRE(w);
    float x[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, out[4];
    uint64_t seq, start;
    win_push(w, x, 10);
    CHECK(win_next(w, out, &seq, &start) == 1);
    win_push(w, x, 3);                                  /* mid-skip */
    win_reset(w);
    CHECK(win_push(w, x + 5, 5) == 4);                  /* no skip left over after reset */
    CHECK(win_next(w, out, &seq, &start) == 1 && seq == 0 && start == 0 && out[0] == 5);
    win_destroy(w);
    win_destroy(NULL);
    errno = 0;
    CHECK(win_create(1024, 0) == NULL && errno == EINVAL);
    CHECK(win_create(0, 1) == NULL);
}

int main(void)
{
    RUN(hop_1);
    RUN(hop_256);
    RUN(hop_1024);
    RUN(hop_1500);
    RUN(small_shapes);
    RUN(tail_not_emitted);
    RUN(push_stops_at_full_window);
    RUN(reset_and_create_errors);
    return TEST_END();
}
