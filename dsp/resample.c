/* SPDX-License-Identifier: Apache-2.0 */
/* resample.c — streaming sample-rate conversion on top of libsoxr.
 *
 * Why libsoxr and not libsamplerate (both in Debian): soxr is far faster at
 * equal or better quality (its DFT-based multi-stage filters against
 * libsamplerate's sinc interpolator; measured on the project machine, 4096-
 * sample chunks, one core: soxr VHQ 48k->12k about 100 M input samples/s
 * and 44.1k->12k about 100-130 M/s, libsamplerate SINC_BEST 0.7-1.1 M/s,
 * even SINC_FASTEST only 6.5 M/s), it offers a "very high quality" preset
 * (28-bit, linear phase, <= 0.01 dB pass-band roll-off) that is far beyond
 * what a classifier can notice, it removes its own filter delay in streaming
 * mode so output sample k sits at input time k / out_rate (window times stay
 * exact), and it is maintained and used by ffmpeg (libswresample's soxr
 * engine) and mpd.  libsamplerate leaves the group delay to the caller.
 *
 * DESIGN: one single-channel soxr instance per stream, float32 in and out,
 * VHQ, one thread (soxr's OpenMP would fight the worker pool for the cores).
 * rs_process() hands soxr all the input (idone = NULL makes soxr buffer what
 * it cannot emit yet) and takes as much output as fits; the rest waits in
 * soxr's output FIFO for the next call.  Equal rates bypass soxr entirely so
 * a 12 kHz recording for a 12 kHz model is bit-exact.  See resample.h for the
 * output-length rule and the chunking result.
 */
#include "resample.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

struct resampler {
    soxr_t s;        /* NULL: pass-through (equal rates) */
    bool   flushing; /* rs_flush() was called: no more input */
};

resampler *rs_create(double in_rate, double out_rate, char *err, size_t errlen)
{
    if (!(isfinite(in_rate) && in_rate > 0 && isfinite(out_rate) && out_rate > 0)) {
        snprintf(err, errlen, "resampler: bad rates %g -> %g Hz", in_rate, out_rate);
        return NULL;
    }
    if (out_rate / in_rate > RS_MAX_UP) {
        snprintf(err, errlen, "resampler: %g -> %g Hz is upsampling by %g, more than %g "
                 "(input rate too low for the model's)", in_rate, out_rate,
                 out_rate / in_rate, RS_MAX_UP);
        return NULL;
    }
    resampler *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "resampler: out of memory");
        return NULL;
    }
    if (in_rate == out_rate)
        return r;

    soxr_error_t e = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    r->s = soxr_create(in_rate, out_rate, 1, &e, &io, &q, &rt);
    if (!r->s) {
        snprintf(err, errlen, "resampler: soxr %g -> %g Hz: %s", in_rate, out_rate,
                 soxr_strerror(e));
        free(r);
        return NULL;
    }
    return r;
}

void rs_destroy(resampler *r)
{
    if (!r)
        return;
    if (r->s)
        soxr_delete(r->s);
    free(r);
}

long rs_process(resampler *r, const float *in, size_t n, float *out, size_t out_cap)
{
    if (r->flushing)
        return -EINVAL;
    if (!r->s) {
        if (out_cap < n)
            return -ENOBUFS;
        if (n)
            memcpy(out, in, n * sizeof *out);
        return (long)n;
    }
    if (n == 0 && out_cap == 0)
        return 0;
    size_t odone = 0;
    /* idone == NULL: soxr takes all n samples (buffering them if needed). */
    soxr_error_t e = soxr_process(r->s, in, n, NULL, out, out_cap, &odone);
    if (e)
        return -EIO;
    return (long)odone;
}

long rs_flush(resampler *r, float *out, size_t out_cap)
{
    r->flushing = true;
    if (!r->s)
        return 0;
    if (out_cap == 0)
        return -ENOBUFS;   /* 0 would wrongly mean "drained" */
    size_t odone = 0;
    /* in == NULL tells soxr the input has ended: it pads with zeros and
     * stops exactly at rs_out_len() samples. */
    soxr_error_t e = soxr_process(r->s, NULL, 0, NULL, out, out_cap, &odone);
    if (e)
        return -EIO;
    return (long)odone;
}

uint64_t rs_out_len(double in_rate, double out_rate, uint64_t n)
{
    if (in_rate == out_rate)
        return n;
    /* The same expression soxr uses to end its output on flush. */
    double v = (double)n / (in_rate / out_rate) + .5;
    /* Converting a double outside [0, 2^64) to uint64_t is undefined: clamp
     * (only reachable with absurd rate ratios or a NaN rate). */
    if (!(v >= 0))
        return 0;
    if (v >= 0x1p64)
        return UINT64_MAX;
    return (uint64_t)v;
}
