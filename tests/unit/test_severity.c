/* SPDX-License-Identifier: Apache-2.0 */
/* test_severity.c — velocity RMS and zones (dsp/severity.h) against sines of
 * known amplitude and frequency: a / (sqrt 2 * 2 pi f0), to 1 %. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "severity.h"
#include "test.h"

#define RATE 12000.0
static const double PI = 3.14159265358979323846;

/* The velocity of block `which` (0: the first) of three of a sine with a
 * phase of 0.3, at `rate`; a NaN at sample 100 of block `nan_in` (-1: none). */
static double velocity_at(double rate, double amp, double f0, double dc, int nan_in, int which)
{
    severity *s = sev_create(rate, 1.0, 10, 1000, 1.0);
    if (!s)
        return -1;
    size_t n = sev_block(s) * 3;
    float *x = malloc(n * sizeof *x);
    double v = -1, got = -1;
    unsigned long long end = 0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(dc + amp * sin(2 * PI * f0 * (double)i / rate + 0.3));
    if (nan_in >= 0)
        x[sev_block(s) * (size_t)nan_in + 100] = NAN;
    /* fed in uneven chunks, as the windower does */
    unsigned blocks = 0;
    for (size_t i = 0; i < n; i += 777)
        for (size_t j = i, e = n - i < 777 ? n : i + 777; j < e;) {
            bool done;
            j += sev_feed(s, x + j, e - j, &done, &v, &end);
            if (done && (int)blocks++ == which)
                got = v;
        }
    if (blocks != 3 || end != n)
        got = -2;
    v = got;
    free(x);
    sev_destroy(s);
    return v;
}

/* The second block (the first past the decimators' start-up). */
static double velocity_of(double amp, double f0, double dc, bool nan_at_100)
{
    return velocity_at(RATE, amp, f0, dc, nan_at_100 ? 1 : -1, 1);
}

TEST(sines_inside_the_band_to_one_percent)
{
    const double f[] = { 15, 50, 100, 159.2, 500, 900 };
    for (unsigned i = 0; i < sizeof f / sizeof *f; i++) {
        double want = 1000.0 * 2.0 / (sqrt(2.0) * 2 * PI * f[i]);
        double got = velocity_of(2.0, f[i], 0.01, false);
        CHECKF(fabs(got - want) < 0.01 * want, "%.1f Hz: %.5f mm/s, want %.5f", f[i], got, want);
    }
}

TEST(sines_outside_the_band_are_left_out)
{
    /* 2 Hz and 3 kHz: their leakage into 10-1000 Hz is far below 1 % */
    double in = 1000.0 * 2.0 / (sqrt(2.0) * 2 * PI * 100);
    CHECKF(velocity_of(2.0, 2, 0, false) < 0.01 * in, "2 Hz: %.5f", velocity_of(2.0, 2, 0, false));
    CHECKF(velocity_of(2.0, 3000, 0, false) < 0.01 * in, "3 kHz: %.5f",
           velocity_of(2.0, 3000, 0, false));
}

TEST(at_51200_hz_four_decimation_stages_to_one_percent)
{
    const double f[] = { 15, 100, 900, 990 };
    for (unsigned i = 0; i < sizeof f / sizeof *f; i++) {
        double want = 1000.0 * 2.0 / (sqrt(2.0) * 2 * PI * f[i]);
        double got = velocity_at(51200, 2.0, f[i], 0, -1, 1);
        CHECKF(fabs(got - want) < 0.01 * want, "%.1f Hz: %.5f mm/s, want %.5f", f[i], got, want);
    }
    /* 2.1 kHz lies where the decimators stop: it must not alias into the band */
    CHECKF(velocity_at(51200, 2.0, 2100, 0, -1, 1) < 1e-3, "2.1 kHz: %.6f",
           velocity_at(51200, 2.0, 2100, 0, -1, 1));
}

TEST(a_nonfinite_sample_gives_no_estimate)
{
    CHECK(isnan(velocity_of(1.0, 100, 0, true)));
    /* and only its own block: the filters saw 0 for it */
    double want = 1000.0 * 1.0 / (sqrt(2.0) * 2 * PI * 100);
    double next = velocity_at(RATE, 1.0, 100, 0, 1, 2);
    CHECKF(fabs(next - want) < 0.01 * want, "the block after: %.5f, want %.5f", next, want);
    CHECK(isnan(velocity_at(RATE, 1.0, 100, 0, 1, 1)));
}

TEST(zones_and_bounds)
{
    double b[3];
    CHECK(sev_iso_bounds(2, false, b) && b[0] == 1.4 && b[1] == 2.8 && b[2] == 4.5);
    CHECK(sev_iso_bounds(1, true, b) && b[2] == 11.0);
    CHECK(!sev_iso_bounds(3, false, b));
    sev_iso_bounds(2, false, b);
    CHECK(!strcmp(sev_zone(1.0, b), "A") && !strcmp(sev_zone(1.4, b), "B"));
    CHECK(!strcmp(sev_zone(3.0, b), "C") && !strcmp(sev_zone(9.0, b), "D"));
    CHECK(sev_zone(NAN, b) == NULL);
    CHECK(sev_create(RATE, 1, 10, 7000, 1) == NULL);     /* above Nyquist */
    CHECK(sev_create(RATE, 0, 10, 1000, 1) == NULL);
    CHECK(sev_create(RATE, 1, 10, 1000, 100) == NULL && errno == EINVAL);   /* 2^21 points */
}

TEST(every_block_of_a_long_feed_is_reported)
{
    /* 0.1 s blocks (2048 samples) fed 10000 at a time: each block stops the feed */
    severity *s = sev_create(RATE, 1, 10, 1000, 0.1);
    REQUIRE(s);
    float *x = calloc(10000, sizeof *x);
    unsigned blocks = 0;
    unsigned long long end = 0, last = 0;
    for (int r = 0; r < 3; r++)
        for (size_t j = 0; j < 10000;) {
            bool done;
            double v;
            j += sev_feed(s, x + j, 10000 - j, &done, &v, &end);
            if (done) {
                CHECK(end == last + 2048);
                last = end;
                blocks++;
            }
        }
    CHECKF(blocks == 30000 / 2048, "%u blocks", blocks);
    free(x);
    sev_destroy(s);
}

/* Impacts once per 1/fd ringing a 3 kHz resonance, over noise: the
 * squared-envelope spectrum peaks at fd. */
static void defects_of(double fd, double db[SEV_NDEFECT], double hz[SEV_NDEFECT])
{
    severity *s = sev_create(RATE, 1.0, 10, 1000, 1.0);
    struct sev_bearing b = { .rpm = 1797, .balls = 9, .ball_diameter = 7.94,
                             .pitch_diameter = 39.04, .envelope_hz = 1000 };
    if (!s || sev_set_bearing(s, &b) != 0) {
        db[0] = NAN;
        sev_destroy(s);
        return;
    }
    size_t n = sev_block(s) * 2;
    float *x = calloc(n, sizeof *x);
    unsigned seed = 1;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)(0.2 * ((double)(seed >> 8) / 16777216.0 - 0.5));
    }
    for (double t0 = 0; t0 < (double)n / RATE; t0 += 1 / fd)
        for (size_t i = (size_t)(t0 * RATE), j = 0; i < n && j < 200; i++, j++)
            x[i] += (float)(exp(-(double)j / RATE * 400) * sin(2 * PI * 3000 * (double)j / RATE));
    for (size_t j = 0; j < n;) {
        bool done;
        double v;
        unsigned long long end;
        j += sev_feed(s, x + j, n - j, &done, &v, &end);
        if (done)
            sev_defects(s, hz, db);
    }
    free(x);
    sev_destroy(s);
}

TEST(bearing_defects_from_the_envelope)
{
    double db[SEV_NDEFECT], hz[SEV_NDEFECT];
    /* 6205 at 1797 rpm: FTF 11.93, BPFO 107.36, BPFI 162.19, BSF 70.58 Hz */
    defects_of(107.36, db, hz);
    CHECKF(fabs(hz[SEV_BPFO] - 107.36) < 0.01 && fabs(hz[SEV_BPFI] - 162.19) < 0.01
           && fabs(hz[SEV_FTF] - 11.93) < 0.01 && fabs(hz[SEV_BSF] - 70.58) < 0.01,
           "hz %.2f %.2f %.2f %.2f", hz[0], hz[1], hz[2], hz[3]);
    CHECKF(db[SEV_BPFO] > 30 && db[SEV_BPFI] < 10, "outer: BPFO %.1f dB, BPFI %.1f dB",
           db[SEV_BPFO], db[SEV_BPFI]);
    defects_of(162.19, db, hz);
    CHECKF(db[SEV_BPFI] > 30 && db[SEV_BPFO] < 10, "inner: BPFI %.1f dB, BPFO %.1f dB",
           db[SEV_BPFI], db[SEV_BPFO]);
    severity *s = sev_create(RATE, 1.0, 10, 1000, 1.0);
    REQUIRE(s);
    struct sev_bearing b = { .rpm = 1797, .balls = 9, .ball_diameter = 7.94,
                             .pitch_diameter = 39.04, .envelope_hz = 6000 };
    CHECK(sev_set_bearing(s, &b) == -EINVAL);              /* at the Nyquist */
    b.envelope_hz = 1000;
    b.ball_diameter = 40;
    CHECK(sev_set_bearing(s, &b) == -EINVAL);
    CHECK(!sev_defects(s, hz, db));
    sev_destroy(s);
}

int main(void)
{
    RUN(sines_inside_the_band_to_one_percent);
    RUN(sines_outside_the_band_are_left_out);
    RUN(at_51200_hz_four_decimation_stages_to_one_percent);
    RUN(a_nonfinite_sample_gives_no_estimate);
    RUN(zones_and_bounds);
    RUN(every_block_of_a_long_feed_is_reported);
    RUN(bearing_defects_from_the_envelope);
    return TEST_END();
}
