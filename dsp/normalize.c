/* SPDX-License-Identifier: Apache-2.0 */
/* normalize.c — per-window normalisation named by the model's metadata.
 *
 * zscore in double precision with plain left-to-right sums, so that
 * model/train/net.py normalize() (which uses sequential cumulative sums for
 * exactly this reason, not numpy's pairwise mean) gives bit-identical
 * float32 results: mean = sum(x) / n; var = sum((x - mean)^2) / n;
 * y = (float)((x - mean) / std), with std := 1 when std < 1e-12.
 * Two passes over a 1024-sample window are cheap next to the network.
 */
#include "normalize.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int norm_parse(const char *name, enum norm_kind *out)
{
    if (!name)
        return -EINVAL;
    if (strcmp(name, "none") == 0)
        *out = NORM_NONE;
    else if (strcmp(name, "zscore") == 0)
        *out = NORM_ZSCORE;
    else
        return -EINVAL;
    return 0;
}

const char *norm_name(enum norm_kind k)
{
    switch (k) {
    case NORM_NONE:   return "none";
    case NORM_ZSCORE: return "zscore";
    }
    return "?";
}

void norm_apply(enum norm_kind k, const float *src, float *dst, size_t n)
{
    if (k != NORM_ZSCORE || n == 0) {
        if (dst != src && n)
            memmove(dst, src, n * sizeof *dst);
        return;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)src[i];
    double mean = sum / (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)src[i] - mean;
        ss += d * d;
    }
    double std = sqrt(ss / (double)n);
    if (std < 1e-12)
        std = 1.0;   /* constant window: x - mean, i.e. zeros */
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)(((double)src[i] - mean) / std);
}
