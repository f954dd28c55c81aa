/* SPDX-License-Identifier: Apache-2.0 */
/* stats.c — the latency histogram (see stats.h). */
#include "stats.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);       /* 4..63 */
    unsigned sub = (unsigned)(v >> (e - 3)) & 7u;
    return 16u + (e - 4u) * 8u + sub;
}

/* Largest value that falls into bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < 16)
        return i;
    unsigned e = (i - 16u) / 8u + 4u, sub = (i - 16u) % 8u;
    if (e == 63 && sub == 7)
        return UINT64_MAX;
    return ((uint64_t)(8u + sub + 1u) << (e - 3u)) - 1u;
}

void stats_hist_reset(struct stats_hist *h)
{
    memset(h, 0, sizeof *h);
}

void stats_hist_add(struct stats_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

uint64_t stats_hist_pct(const struct stats_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    /* rank of the quantile, 1-based: ceil(p * n), at least 1 */
    uint64_t rank = (uint64_t)(p * (double)h->n);
    if ((double)rank < p * (double)h->n)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < STATS_BUCKETS; i++) {
        cum += h->b[i];
        if (cum >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
