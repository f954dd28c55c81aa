/* SPDX-License-Identifier: Apache-2.0 */
/* winfeat.h — what a window says before the network: signal health and the
 * spectral feature vector of the detectors.
 *
 * Both work on the window's raw samples, as classified (after resampling,
 * before normalisation), in double precision, and allocate nothing.
 *
 * Signal health (feat_health): one pass for the sums and the extremes, a
 * second for the fourth moment about the mean.
 *   rms       sqrt(mean(x^2))                      (the level, DC included)
 *   peak      max |x|
 *   crest     peak / rms                            (0 when rms is 0)
 *   kurtosis  mean((x-m)^4) / var^2, population     (3 for a Gaussian; 0 when var is 0)
 *   quality   FEAT_NONFINITE  a sample is NaN or +-Inf (then nothing else is computed:
 *                             the other fields are NaN)
 *             FEAT_NO_SIGNAL  the window is flat (max == min) or its rms is at or
 *                             below the floor
 *             FEAT_CLIPPED    integer input (full_scale > 0) and a sample at or
 *                             beyond full scale: |x| >= full_scale
 *             FEAT_OK         otherwise
 *   A window that is not FEAT_OK gets no class (pipeline.c).
 *
 * Spectral features (feat_spectral), the detectors' input (model/FORMAT.md
 * "Detector"), D = bands + 2 (+ 1 with level):
 *   z = (x - mean) / std (population, as dsp/normalize.c);
 *   X = the 1024-point DFT of z * hann, hann[n] = 0.5 - 0.5 cos(2 pi n / 1024);
 *   P[k] = |X[k]|^2 for k = 1..512 (DC left out, Nyquist in);
 *   f[b] = log10(mean of P over bins b*512/bands+1 .. (b+1)*512/bands) + 1e-10),
 *          b = 0..bands-1 (bands divides 512: 8, 16, 32 or 64);
 *   f[bands]   = ln(mean(z^4))        (log kurtosis)
 *   f[bands+1] = ln(max |z|)          (log crest factor)
 *   f[bands+2] = log10(rms + 1e-12)   (log level; only when level is asked for)
 * The DFT is a radix-2 FFT of 512 complex points (even and odd samples) and
 * the usual split into the real spectrum; its tables are built once, on
 * first use (feat_init(), thread-safe).  model/train/detector.py computes the
 * same features with numpy for training and for the tests' reference.
 */
#ifndef TRIDENT_WINFEAT_H
#define TRIDENT_WINFEAT_H

#include <stdbool.h>
#include <stddef.h>

#define FEAT_WIN 1024
#define FEAT_MAX_BANDS 64
#define FEAT_MAX_DIM (FEAT_MAX_BANDS + 3)

enum feat_quality { FEAT_OK, FEAT_NO_SIGNAL, FEAT_CLIPPED, FEAT_NONFINITE, FEAT_NQUALITY };

struct feat_health {
    double rms, peak, crest, kurtosis;
    enum feat_quality quality;
};

const char *feat_quality_name(enum feat_quality q);     /* "ok", "no_signal", ... */

/* floor: rms at or below it is no_signal (0: only a flat window); full_scale:
 * the clipping level of an integer input (0: never clipped, float input). */
void feat_health(const float *x, size_t n, double floor, double full_scale,
                 struct feat_health *h);

/* Is bands a valid band count (8, 16, 32, 64)? */
bool feat_bands_ok(int bands);
/* Feature dimension for these settings. */
int  feat_dim(int bands, bool level);
/* f: feat_dim() doubles.  x: FEAT_WIN samples, not flat (std > 0). */
void feat_spectral(const float *x, int bands, bool level, double *f);

/* Build the FFT tables now (otherwise on first use). */
void feat_init(void);

#endif
