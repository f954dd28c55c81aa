/* SPDX-License-Identifier: Apache-2.0 */
/* resample.h — streaming sample-rate conversion (libsoxr, very-high quality).
 *
 * One resampler per stream.  Output sample k corresponds to input time
 * k / out_rate (soxr compensates its filter delay), so window positions and
 * times stay aligned with the input.  Feed input in any chunk sizes; the
 * output does not depend on the chunking: it is bit-identical for chunks of
 * 1, 777, random 1..N, 4096 or 65536 samples (measured with libsoxr 0.1.3,
 * checked by tests/unit/test_resample.c), because soxr runs its filter
 * stages on fixed internal blocks counted from the start of the stream.  At
 * end of input call rs_flush() until it returns 0 to drain the filter tail.
 *
 * Output length: n input samples in total (over all rs_process() calls)
 * yield, once flushed, exactly
 *
 *     rs_out_len(in_rate, out_rate, n) = floor(n / (in_rate / out_rate) + 0.5)
 *
 * samples, computed in double as soxr does (round half up: 48k->12k, n = 2
 * gives 1; n = 4097 gives 1024; 44.1k->12k, n = 1024 gives 279).  Before the
 * flush some of them are still held in the filter.
 *
 * Equal rates: rs_create() returns a pass-through that copies input to
 * output bit-exactly (no soxr instance, no delay); rs_process() then needs
 * out_cap >= n and rs_flush() returns 0.
 *
 * Chunking: the daemon and model/train/prep.c feed RS_CHUNK samples per call.
 * Correctness does not need it (see above), but soxr buffers whatever one
 * call gives it, so a fixed chunk keeps its memory bounded and stops it from
 * growing after the first chunks (measured: no allocation at all in 2000
 * RS_CHUNK calls after 50 warm-up calls): use RS_CHUNK everywhere.
 */
#ifndef TRIDENT_RESAMPLE_H
#define TRIDENT_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* Input samples per rs_process() call in the daemon and in trident-prep. */
#define RS_CHUNK 4096

/* Upsampling bound: out_rate / in_rate at most this.  The output of one
 * RS_CHUNK call (and the caller's buffer for it, 2x + 64 floats) grows with
 * the ratio: a WAV header claiming 1 Hz fed to a 12 kHz model once cost
 * 537 MB.  64x still turns a 200 Hz vibration sensor into 12.8 kHz.
 * Downsampling is not bounded (output shrinks). */
#define RS_MAX_UP 64.0

typedef struct resampler resampler;

/* NULL on failure (bad rates, out_rate / in_rate > RS_MAX_UP), with a
 * message in err. */
resampler *rs_create(double in_rate, double out_rate, char *err, size_t errlen);
void       rs_destroy(resampler *r);
/* Consumes all n input samples, writes at most out_cap outputs, returns the
 * count written, or a negative errno (-ENOBUFS: pass-through with out_cap <
 * n, nothing consumed; -EIO: soxr failed; -EINVAL: called after rs_flush).
 * soxr emits in internal blocks, so one call's output varies around
 * n * out_rate / in_rate (measured with RS_CHUNK: 0.73x to 1.46x for
 * 48k->12k, up to 1.5x for 44.1k and 96k->12k).  Size out_cap >=
 * 2 * n * out_rate / in_rate + 64 to never hold back; a smaller out_cap
 * only delays samples (they stay inside and come out on later calls), it
 * never loses them. */
long       rs_process(resampler *r, const float *in, size_t n, float *out, size_t out_cap);
/* End of input: returns the remaining outputs (0 when drained). */
long       rs_flush(resampler *r, float *out, size_t out_cap);

/* Total outputs for n inputs once flushed (the rule above), clamped to
 * UINT64_MAX when the rule's value does not fit (absurd rate ratios). */
uint64_t   rs_out_len(double in_rate, double out_rate, uint64_t n);

#endif
