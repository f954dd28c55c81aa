/* resample.h — streaming sample-rate conversion (libsoxr, very-high quality).
 *
 * One resampler per stream.  Output sample k corresponds to input time
 * k / out_rate (soxr compensates its filter delay), so window positions and
 * times stay aligned with the input.  Feed input in any chunk sizes; the
 * output does not depend on the chunking.  At end of input call
 * rs_flush() until it returns 0 to drain the filter tail.
 */
#ifndef TRIDENT_RESAMPLE_H
#define TRIDENT_RESAMPLE_H

#include <stddef.h>

typedef struct resampler resampler;

/* NULL on failure, with a message in err. */
resampler *rs_create(double in_rate, double out_rate, char *err, size_t errlen);
void       rs_destroy(resampler *r);
/* Consumes all n input samples, writes at most out_cap outputs, returns the
 * count written (size out_cap >= n * out_rate / in_rate + 64 to never hold
 * back), or a negative errno. */
long       rs_process(resampler *r, const float *in, size_t n, float *out, size_t out_cap);
/* End of input: returns the remaining outputs (0 when drained). */
long       rs_flush(resampler *r, float *out, size_t out_cap);

#endif
