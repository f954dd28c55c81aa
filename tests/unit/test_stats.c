/* SPDX-License-Identifier: Apache-2.0 */
/* test_stats.c — the latency histogram's percentiles against sorted values. */
#include "stats.h"

#include <stdlib.h>

#include "test.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(empty_and_small)
{
    struct stats_hist h;
    stats_hist_reset(&h);
    CHECK(stats_hist_pct(&h, 0.5) == 0);
    for (uint64_t v = 0; v < 16; v++)
        stats_hist_add(&h, v);
    /* below 16 every value has its own bucket: exact */
    CHECK(stats_hist_pct(&h, 0.5) == 7);
    CHECK(stats_hist_pct(&h, 1.0) == 15);
    CHECK(h.n == 16 && h.max == 15);
}

TEST(relative_error_bounded)
{
    static struct stats_hist h;
    enum { N = 20000 };
    static uint64_t v[N];
    srand(7);
    stats_hist_reset(&h);
    for (int i = 0; i < N; i++) {
        /* log-uniform from 1 us to ~1 s */
        v[i] = (uint64_t)1 << (rand() % 20);
        v[i] += (uint64_t)rand() % v[i];
        stats_hist_add(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    const double ps[] = { 0.01, 0.5, 0.9, 0.99, 0.999, 1.0 };
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        uint64_t exact = v[(size_t)(ps[k] * N + 0.999999) - 1];
        uint64_t got = stats_hist_pct(&h, ps[k]);
        /* the bucket's top: never below the exact quantile, at most 12.5 % above */
        CHECK(got >= exact);
        CHECK((double)got <= (double)exact * 1.125 + 1);
    }
    CHECK(stats_hist_pct(&h, 1.0) == v[N - 1]);
}

TEST(huge_values)
{
    struct stats_hist h;
    stats_hist_reset(&h);
    stats_hist_add(&h, UINT64_MAX);
    stats_hist_add(&h, (uint64_t)1 << 62);
    CHECK(stats_hist_pct(&h, 1.0) == UINT64_MAX);
    CHECK(stats_hist_pct(&h, 0.5) >= (uint64_t)1 << 62);
}

int main(void)
{
    RUN(empty_and_small);
    RUN(relative_error_bounded);
    RUN(huge_values);
    return TEST_END();
}
