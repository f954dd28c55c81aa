/* SPDX-License-Identifier: Apache-2.0 */
/* test_normalize.c — per-window normalisation: zscore and none.
 *
 * zscore output must have mean 0 and population std 1 (checked in double on
 * the float output); a constant window becomes zeros; none is the identity;
 * in place (dst == src) gives the same as out of place.  Parity with
 * model/train/net.py normalize() is checked by
 * tests/integration/test_normalize_parity.py.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "normalize.h"
#include "test.h"

#define N 1024

static uint32_t rng = 777;
static float frand(void) { rng = rng * 1664525u + 1013904223u; return (float)(rng >> 8) / 16777216.0f; }

static void moments(const float *y, size_t n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += y[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (y[i] - *mean) * (y[i] - *mean);
    *std = sqrt(ss / (double)n);
}

TEST(zscore_mean0_std1)
{
    static float x[N], y[N];
    /* Offsets and scales far from 0/1, including CWRU-like ±7 and tiny signals. */
    const double offs[] = { 0, 3.5, -1000 }, scales[] = { 1, 7, 1e-4 };
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < N; i++)
                x[i] = (float)(offs[a] + scales[b] * (frand() - 0.5 + 0.3 * sin(i * 0.05)));
            norm_apply(NORM_ZSCORE, x, y, N);
            double m, s;
            moments(y, N, &m, &s);
            CHECKF(fabs(m) < 1e-5 && fabs(s - 1) < 1e-5, "off %g scale %g: mean %g std %g",
                   offs[a], scales[b], m, s);
        }
}

TEST(zscore_formula)
{
    /* A window small enough to compute by hand: 1 2 3 4 -> mean 2.5, std sqrt(1.25). */
    const float x[4] = { 1, 2, 3, 4 };
    float y[4];
    norm_apply(NORM_ZSCORE, x, y, 4);
    const double s = sqrt(1.25);
    for (int i = 0; i < 4; i++)
        CHECKF(y[i] == (float)((x[i] - 2.5) / s), "y[%d]=%.9g", i, y[i]);
}

TEST(constant_window_zeros)
{
    static float x[N], y[N];
    const float vals[] = { 0.0f, 1.0f, -6.75f, 1e-30f };
    for (int v = 0; v < 4; v++) {
        for (int i = 0; i < N; i++)
            x[i] = vals[v];
        memset(y, 0x7f, sizeof y);
        norm_apply(NORM_ZSCORE, x, y, N);
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += y[i] != 0.0f;
        CHECKF(bad == 0, "constant %g: %d non-zero outputs", vals[v], bad);
    }
}

TEST(none_is_identity)
{
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = (frand() - 0.5f) * 13;
    norm_apply(NORM_NONE, x, y, N);
    CHECK(memcmp(x, y, sizeof x) == 0);
    memcpy(y, x, sizeof x);
    norm_apply(NORM_NONE, y, y, N);
    CHECK(memcmp(x, y, sizeof x) == 0);
}

TEST(in_place_same_as_out_of_place)
{
    static float x[N], y[N], z[N];
    for (int i = 0; i < N; i++)
        x[i] = (frand() - 0.2f) * 3;
    norm_apply(NORM_ZSCORE, x, y, N);
    memcpy(z, x, sizeof x);
    norm_apply(NORM_ZSCORE, z, z, N);
    CHECK(memcmp(y, z, sizeof y) == 0);
}

TEST(names_parse)
{
    enum norm_kind k = NORM_ZSCORE;
    CHECK(norm_parse("none", &k) == 0 && k == NORM_NONE);
    CHECK(norm_parse("zscore", &k) == 0 && k == NORM_ZSCORE);
    CHECK(norm_parse("ZSCORE", &k) == -EINVAL);
    CHECK(norm_parse("", &k) == -EINVAL);
    CHECK(norm_parse(NULL, &k) == -EINVAL);
    CHECK(strcmp(norm_name(NORM_NONE), "none") == 0);
    CHECK(strcmp(norm_name(NORM_ZSCORE), "zscore") == 0);
}

int main(void)
{
    RUN(zscore_mean0_std1);
    RUN(zscore_formula);
    RUN(constant_window_zeros);
    RUN(none_is_identity);
    RUN(in_place_same_as_out_of_place);
    RUN(names_parse);
    return TEST_END();
}
