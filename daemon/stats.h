/* SPDX-License-Identifier: Apache-2.0 */
/* stats.h — a fixed-size latency histogram: percentiles without allocation.
 *
 * Log-linear buckets (as HdrHistogram, 3 bits of mantissa): values 0..15 have
 * a bucket each; above that every power of two is split into 8 equal
 * buckets, so a percentile is reported with at most 12.5 % relative error
 * (as the bucket's upper bound, capped at the largest value seen).  4 KiB,
 * no allocation, one owner thread (no locking).
 */
#ifndef TRIDENT_STATS_H
#define TRIDENT_STATS_H

#include <stdint.h>

#define STATS_BUCKETS (16 + 60 * 8)

struct stats_hist {
    uint64_t n;
    uint64_t max;
    uint64_t b[STATS_BUCKETS];
};

void     stats_hist_reset(struct stats_hist *h);
void     stats_hist_add(struct stats_hist *h, uint64_t v);
/* The p-th quantile (0 < p <= 1) of the values added; 0 if none. */
uint64_t stats_hist_pct(const struct stats_hist *h, double p);

#endif
