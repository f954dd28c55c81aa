/* SPDX-License-Identifier: Apache-2.0 */
/* winfeat.c — signal health and the detectors' spectral features.
 *
 * See winfeat.h for the definitions; this file is the arithmetic.  The FFT
 * is the textbook iterative radix-2 decimation in time on N/2 = 512 complex
 * points (z[2n] + i z[2n+1]), then the split
 *   X[k] = (Z[k] + conj(Z[N/2-k]))/2 - i/2 e^{-2 pi i k/N} (Z[k] - conj(Z[N/2-k]))
 * for k = 0..N/2 (Z[N/2] := Z[0]).  Tables (twiddles of both steps, the Hann
 * window, the bit-reversal permutation) are computed once under
 * pthread_once, so the per-window work allocates nothing and is a few
 * thousand multiply-adds: a few microseconds, against a network forward of
 * about 200.
 */
#include "winfeat.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

#define FN FEAT_WIN
#define FH (FEAT_WIN / 2)           /* complex FFT size */
#define LOG2H 9

static double tw_re[FH / 2], tw_im[FH / 2];      /* e^{-2 pi i k / FH} */
static double sp_re[FH + 1], sp_im[FH + 1];      /* e^{-2 pi i k / FN} */
static double hann[FN];
static uint16_t rev[FH];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
    const double pi = 3.14159265358979323846;
    for (int k = 0; k < FH / 2; k++) {
        tw_re[k] = cos(2 * pi * k / FH);
        tw_im[k] = -sin(2 * pi * k / FH);
    }
    for (int k = 0; k <= FH; k++) {
        sp_re[k] = cos(2 * pi * k / FN);
        sp_im[k] = -sin(2 * pi * k / FN);
    }
    for (int n = 0; n < FN; n++)
        hann[n] = 0.5 - 0.5 * cos(2 * pi * n / FN);
    for (int i = 0; i < FH; i++) {
        unsigned r = 0;
        for (int b = 0; b < LOG2H; b++)
            r |= ((unsigned)(i >> b) & 1u) << (LOG2H - 1 - b);
        rev[i] = (uint16_t)r;
    }
}

void feat_init(void)
{
    pthread_once(&once, init_tables);
}

const char *feat_quality_name(enum feat_quality q)
{
    switch (q) {
    case FEAT_OK:        return "ok";
    case FEAT_NO_SIGNAL: return "no_signal";
    case FEAT_CLIPPED:   return "clipped";
    case FEAT_NONFINITE: return "nonfinite";
    case FEAT_NQUALITY:  break;
    }
    return "?";
}

void feat_health(const float *x, size_t n, double floor, double full_scale,
                 struct feat_health *h)
{
    double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
    bool finite = true;

    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        finite &= isfinite(x[i]) != 0;
        s += v;
        s2 += v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (!finite || n == 0) {
        *h = (struct feat_health){ NAN, NAN, NAN, NAN, FEAT_NONFINITE };
        return;
    }
    double mean = s / (double)n, m2 = 0, m4 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean, d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    m2 /= (double)n;
    m4 /= (double)n;
    h->rms = sqrt(s2 / (double)n);
    h->peak = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    h->crest = h->rms > 0 ? h->peak / h->rms : 0;
    h->kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0;
    if (hi == lo || h->rms <= floor)
        h->quality = FEAT_NO_SIGNAL;
    else if (full_scale > 0 && h->peak >= full_scale)
        h->quality = FEAT_CLIPPED;
    else
        h->quality = FEAT_OK;
}

bool feat_bands_ok(int bands)
{
    return bands == 8 || bands == 16 || bands == 32 || bands == 64;
}

int feat_dim(int bands, bool level)
{
    return bands + 2 + (level ? 1 : 0);
}

void feat_spectral(const float *x, int bands, bool level, double *f)
{
    double zr[FH], zi[FH];
    double mean = 0, var = 0, ss = 0;

    feat_init();
    for (int i = 0; i < FN; i++) {
        mean += x[i];
        ss += (double)x[i] * x[i];
    }
    mean /= FN;
    for (int i = 0; i < FN; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    double sd = sqrt(var / FN);
    if (sd < 1e-12)
        sd = 1;

    /* z * hann, even samples real, odd imaginary, in bit-reversed order;
     * the fourth moment and the peak of z on the way */
    double z4 = 0, zmax = 0;
    for (int i = 0; i < FH; i++) {
        double a = (x[2 * i] - mean) / sd, b = (x[2 * i + 1] - mean) / sd;
        z4 += a * a * a * a + b * b * b * b;
        zmax = fmax(zmax, fmax(fabs(a), fabs(b)));
        zr[rev[i]] = a * hann[2 * i];
        zi[rev[i]] = b * hann[2 * i + 1];
    }
    for (int len = 2; len <= FH; len <<= 1) {
        int half = len >> 1, step = FH / len;
        for (int i = 0; i < FH; i += len)
            for (int j = 0; j < half; j++) {
                double wr = tw_re[j * step], wi = tw_im[j * step];
                int p = i + j, q = p + half;
                double tr = zr[q] * wr - zi[q] * wi, ti = zr[q] * wi + zi[q] * wr;
                zr[q] = zr[p] - tr;
                zi[q] = zi[p] - ti;
                zr[p] += tr;
                zi[p] += ti;
            }
    }

    /* the real spectrum, bins 1..512, summed into bands */
    const int per = FH / bands;
    double acc = 0;
    int b = 0;
    for (int k = 1; k <= FH; k++) {
        int kk = k == FH ? 0 : k, mk = k == FH ? 0 : FH - k;
        double ar = zr[kk], ai = zi[kk], br = zr[mk], bi = -zi[mk];  /* Z[k], conj(Z[FH-k]) */
        double er = 0.5 * (ar + br), ei = 0.5 * (ai + bi);           /* even part */
        double or_ = 0.5 * (ai - bi), oi = -0.5 * (ar - br);         /* -i/2 (Z - conj) */
        double xr = er + or_ * sp_re[k] - oi * sp_im[k];
        double xi = ei + or_ * sp_im[k] + oi * sp_re[k];
        acc += xr * xr + xi * xi;
        if (k % per == 0) {
            f[b++] = log10(acc / per + 1e-10);
            acc = 0;
        }
    }
    f[bands] = log(z4 / FN);
    f[bands + 1] = log(zmax);
    if (level)
        f[bands + 2] = log10(sqrt(ss / FN) + 1e-12);
}
