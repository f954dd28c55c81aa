/* SPDX-License-Identifier: Apache-2.0 */
/* test_resample.c — the resampler: frequency, amplitude, delay, length, chunking.
 *
 * Sines through 48k->12k and 44.1k->12k must come out at the same frequency,
 * amplitude (within 0.1 dB) and phase (soxr compensates its delay), found by a
 * least-squares fit of sin/cos at the expected frequency whose residual must
 * be tiny.  Output length must follow rs_out_len(); output must be
 * bit-identical whatever the chunking; equal rates are a bit-exact copy.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resample.h"
#include "test.h"

#define PI 3.14159265358979323846

static uint32_t rng = 12345;
static uint32_t rnd(void) { rng = rng * 1664525u + 1013904223u; return rng >> 8; }

/* Resample x[n] feeding chunks of `chunk` (0: random 1..5000) with output
 * buffers of `ocap`; returns the total output count or -1. */
static long run(double ir, double orate, const float *x, size_t n, size_t chunk, float *out,
                size_t out_max, size_t ocap)
{
    char err[200];
    resampler *r = rs_create(ir, orate, err, sizeof err);
    if (!r) {
        printf("# rs_create: %s\n", err);
        return -1;
    }
    size_t o = 0, i = 0;
    while (i < n) {
        size_t c = chunk ? chunk : 1 + rnd() % 5000;
        if (c > n - i)
            c = n - i;
        size_t cap = ocap < out_max - o ? ocap : out_max - o;
        long k = rs_process(r, x + i, c, out + o, cap);
        if (k < 0) {
            rs_destroy(r);
            return -1;
        }
        o += (size_t)k;
        i += c;
    }
    for (;;) {
        size_t cap = ocap < out_max - o ? ocap : out_max - o;
        long k = rs_flush(r, out + o, cap);
        if (k < 0) {
            rs_destroy(r);
            return -1;
        }
        if (k == 0)
            break;
        o += (size_t)k;
    }
    rs_destroy(r);
    return (long)o;
}

static float *sine(size_t n, double rate, double f, double amp, double phase)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * sin(2 * PI * f * (double)i / rate + phase));
    return x;
}

/* Least-squares fit y[k] ~ a sin(w k) + b cos(w k) over [lo, hi): amplitude,
 * phase and the rms of the residual. */
static void fit(const float *y, size_t lo, size_t hi, double w, double *amp, double *phase,
                double *resid)
{
    double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
    for (size_t k = lo; k < hi; k++) {
        double s = sin(w * (double)k), c = cos(w * (double)k);
        ss += s * s; cc += c * c; sc += s * c; ys += y[k] * s; yc += y[k] * c;
    }
    double det = ss * cc - sc * sc;
    double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
    double e = 0;
    for (size_t k = lo; k < hi; k++) {
        double d = y[k] - a * sin(w * (double)k) - b * cos(w * (double)k);
        e += d * d;
    }
    *amp = sqrt(a * a + b * b);
    *phase = atan2(b, a);
    *resid = sqrt(e / (double)(hi - lo));
}

static void check_sines(double ir)
{
    const double orate = 12000, amp = 0.5, ph = 0.3;
    const double freqs[] = { 50, 1000, 3000, 5000 };
    size_t n = (size_t)ir;   /* one second */
    size_t cap = n + 1024;
    float *y = malloc(cap * sizeof *y);
    for (size_t j = 0; j < sizeof freqs / sizeof freqs[0]; j++) {
        double f = freqs[j];
        float *x = sine(n, ir, f, amp, ph);
        long m = run(ir, orate, x, n, RS_CHUNK, y, cap, cap);
        CHECKF(m == (long)rs_out_len(ir, orate, n), "m=%ld", m);
        if (m > 1000) {
            double a, p, e;
            /* Edges excluded: the stream starts and ends abruptly there. */
            fit(y, 500, (size_t)m - 500, 2 * PI * f / orate, &a, &p, &e);
            double db = 20 * log10(a / amp);
            double dp = remainder(p - ph, 2 * PI);
            printf("# %g->12k %4g Hz: %+.5f dB, phase %+.2e rad, residual %.1e\n", ir, f, db,
                   dp, e);
            CHECKF(fabs(db) < 0.1, "%g->12k %g Hz: amplitude %+.4f dB", ir, f, db);
            CHECKF(fabs(dp) < 1e-3, "%g->12k %g Hz: phase off by %g rad (delay)", ir, f, dp);
            CHECKF(e < 1e-4 * amp, "%g->12k %g Hz: residual %g (other frequencies)", ir, f, e);
        }
        free(x);
    }
    /* Above the output Nyquist (7 kHz): must be filtered out, not aliased. */
    float *x = sine(n, ir, 7000, amp, ph);
    long m = run(ir, orate, x, n, RS_CHUNK, y, cap, cap);
    double e = 0;
    for (long k = 500; k < m - 500; k++)
        e += (double)y[k] * y[k];
    e = sqrt(e / (double)(m - 1000));
    CHECKF(e < 1e-4 * amp, "%g->12k 7 kHz leaks rms %g", ir, e);
    free(x);
    free(y);
}

TEST(sine_48k_to_12k) { check_sines(48000); }
TEST(sine_44k1_to_12k) { check_sines(44100); }

/* Total output after flush is rs_out_len(), whatever the rates. */
TEST(output_length_rule)
{
    const double rates[][2] = { { 48000, 12000 }, { 44100, 12000 }, { 96000, 12000 },
                                { 11025, 12000 }, { 8000, 12000 }, { 48000, 44100 } };
    const size_t ns[] = { 0, 1, 2, 3, 4, 5, 7, 100, 1023, 1024, 4095, 4096, 4097, 12345, 50001 };
    size_t cap = 50001 * 2 + 1024;
    float *x = sine(50001, 48000, 440, 0.5, 0);
    float *y = malloc(cap * sizeof *y);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            long m = run(rates[i][0], rates[i][1], x, ns[j], RS_CHUNK, y, cap, cap);
            uint64_t want = rs_out_len(rates[i][0], rates[i][1], ns[j]);
            CHECKF(m >= 0 && (uint64_t)m == want, "%g->%g n=%zu: %ld outputs, rule says %llu",
                   rates[i][0], rates[i][1], ns[j], m, (unsigned long long)want);
        }
    /* Spot values from the rule as documented in resample.h. */
    CHECK(rs_out_len(48000, 12000, 2) == 1);
    CHECK(rs_out_len(48000, 12000, 4097) == 1024);
    CHECK(rs_out_len(44100, 12000, 1024) == 279);
    CHECK(rs_out_len(12000, 12000, 4097) == 4097);
    free(x);
    free(y);
}

/* Bit-identical output for any chunking and any output-buffer size. */
TEST(chunking_independent)
{
    const double rates[][2] = { { 48000, 12000 }, { 44100, 12000 }, { 8000, 12000 } };
    size_t n = 30011, cap = 2 * n + 1024;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        long ma = run(rates[i][0], rates[i][1], x, n, RS_CHUNK, a, cap, cap);
        REQUIRE(ma > 0);
        const size_t chunks[] = { 1, 777, 0 /* random */, n };
        for (size_t c = 0; c < 4; c++) {
            long mb = run(rates[i][0], rates[i][1], x, n, chunks[c], b, cap, cap);
            CHECKF(mb == ma && memcmp(a, b, (size_t)ma * sizeof *a) == 0,
                   "%g->%g chunk %zu differs from RS_CHUNK", rates[i][0], rates[i][1], chunks[c]);
        }
        /* Tiny output buffers: what does not fit is held back, not lost. */
        long mb = run(rates[i][0], rates[i][1], x, n, RS_CHUNK, b, cap, 7);
        CHECKF(mb == ma && memcmp(a, b, (size_t)ma * sizeof *a) == 0,
               "%g->%g with out_cap 7 differs", rates[i][0], rates[i][1]);
    }
    free(x);
    free(a);
    free(b);
}

/* resample.h's sizing rule: with out_cap = 2 n r + 64 a call never fills
 * the buffer, i.e. never holds samples back. */
TEST(out_cap_rule_never_holds_back)
{
    const double rates[][2] = { { 48000, 12000 }, { 44100, 12000 }, { 96000, 12000 },
                                { 8000, 12000 }, { 16000, 12000 } };
    static float x[RS_CHUNK], y[4 * RS_CHUNK];
    for (size_t i = 0; i < RS_CHUNK; i++)
        x[i] = (float)sin(0.05 * (double)i);
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        char err[100];
        resampler *r = rs_create(rates[k][0], rates[k][1], err, sizeof err);
        REQUIRE(r);
        size_t cap = (size_t)(2.0 * RS_CHUNK * rates[k][1] / rates[k][0]) + 64;
        long most = 0;
        for (int i = 0; i < 300; i++) {
            long m = rs_process(r, x, RS_CHUNK, y, cap);
            if (m > most)
                most = m;
        }
        CHECKF(most < (long)cap, "%g->%g: a call filled all %zu", rates[k][0], rates[k][1], cap);
        rs_destroy(r);
    }
}

/* Equal rates: a bit-exact copy, no delay, no soxr. */
TEST(equal_rates_pass_through)
{
    size_t n = 10007;
    float *x = malloc(n * sizeof *x), *y = malloc((n + 16) * sizeof *y);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rnd() / 16777216.0f - 0.5f;
    long m = run(12000, 12000, x, n, 0, y, n + 16, n + 16);
    CHECK(m == (long)n);
    CHECK(m == (long)n && memcmp(x, y, n * sizeof *x) == 0);
    char err[100];
    resampler *r = rs_create(12000, 12000, err, sizeof err);
    REQUIRE(r);
    CHECK(rs_process(r, x, 10, y, 9) == -ENOBUFS);
    CHECK(rs_process(r, x, 10, y, 10) == 10);
    CHECK(rs_flush(r, y, 10) == 0);
    CHECK(rs_process(r, x, 10, y, 10) == -EINVAL);   /* no input after flush */
    rs_destroy(r);
    free(x);
    free(y);
}

/* Rates far apart (a model's trident.sample_rate is bounded by the loader,
 * but rs_out_len() must not rely on it): the double result beyond 2^64 is
 * clamped instead of converted (undefined behaviour in C). */
TEST(out_len_clamped)
{
    CHECK(rs_out_len(1, 1e30, 1000) == UINT64_MAX);
    CHECK(rs_out_len(1, 1e7, UINT64_MAX) == UINT64_MAX);
    CHECK(rs_out_len(1e7, 1, UINT64_MAX) == (uint64_t)(18446744073709551616.0 / 1e7 + .5));
    CHECK(rs_out_len(1e30, 1, 1000) == 0);
}

TEST(bad_rates_refused)
{
    char err[100] = "";
    CHECK(rs_create(0, 12000, err, sizeof err) == NULL);
    CHECK(strstr(err, "rate") != NULL);
    CHECK(rs_create(48000, -1, err, sizeof err) == NULL);
    CHECK(rs_create(NAN, 12000, err, sizeof err) == NULL);
    rs_destroy(NULL);
}

int main(void)
{
    RUN(sine_48k_to_12k);
    RUN(sine_44k1_to_12k);
    RUN(output_length_rule);
    RUN(chunking_independent);
    RUN(out_cap_rule_never_holds_back);
    RUN(equal_rates_pass_through);
    RUN(out_len_clamped);
    RUN(bad_rates_refused);
    return TEST_END();
}
