/* severity.c — see severity.h.  The block's real FFT is an iterative
 * radix-2 decimation in time on H = N/2 complex points z[n] = x[2n] +
 * i x[2n+1], then the split
 *   X[k] = (Z[k] + conj Z[H-k]) / 2 - i/2 e^{-2 pi i k/N} (Z[k] - conj Z[H-k])
 * (as dsp/winfeat.c).  Each stage's twiddles lie contiguous (tw, H - 1 of
 * them in all), so the butterflies walk memory in order. */
#include "severity.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEV_MAX_LOG2 20

struct severity {
    size_t    n, fill;
    unsigned  log2n;
    double    rate, scale, f_lo, f_hi, wsum2;
    unsigned long long fed;
    float    *buf;                  /* the block being filled */
    double   *re, *im, *win;        /* H complex points; N window values */
    double   *tw_re, *tw_im;        /* per stage len: e^{-2 pi i k/len}, k < len/2 */
    double   *sp_re, *sp_im;        /* e^{-2 pi i k/N}, k <= H */
};

void sev_destroy(severity *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s->re);
    free(s->im);
    free(s->win);
    free(s->tw_re);
    free(s->tw_im);
    free(s->sp_re);
    free(s->sp_im);
    free(s);
}

severity *sev_create(double rate, double scale, double f_lo, double f_hi, double seconds)
{
    errno = EINVAL;
    if (!(rate > 0) || !(scale > 0) || !(f_lo > 0) || !(f_hi > f_lo) || f_hi > rate / 2
        || !(seconds > 0))
        return NULL;
    unsigned lg = 1;
    while (lg <= SEV_MAX_LOG2 && (double)(1ull << lg) < rate * seconds)
        lg++;
    if (lg > SEV_MAX_LOG2)
        return NULL;
    errno = ENOMEM;
    severity *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->log2n = lg;
    s->n = (size_t)1 << lg;
    s->rate = rate;
    s->scale = scale;
    s->f_lo = f_lo;
    s->f_hi = f_hi;
    s->buf = malloc(s->n * sizeof *s->buf);
    size_t h = s->n / 2;
    s->re = malloc(h * sizeof *s->re);
    s->im = malloc(h * sizeof *s->im);
    s->win = malloc(s->n * sizeof *s->win);
    s->tw_re = malloc(h * sizeof *s->tw_re);
    s->tw_im = malloc(h * sizeof *s->tw_im);
    s->sp_re = malloc((h + 1) * sizeof *s->sp_re);
    s->sp_im = malloc((h + 1) * sizeof *s->sp_im);
    if (!s->buf || !s->re || !s->im || !s->win || !s->tw_re || !s->tw_im || !s->sp_re
        || !s->sp_im) {
        sev_destroy(s);
        return NULL;
    }
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < s->n; i++) {
        s->win[i] = 0.5 - 0.5 * cos(2 * pi * (double)i / (double)s->n);
        s->wsum2 += s->win[i] * s->win[i];
    }
    /* stage len (2, 4, ..., H) uses tw[len/2 - 1 + k], k < len/2 */
    for (size_t len = 2; len <= h; len <<= 1)
        for (size_t k = 0; k < len / 2; k++) {
            s->tw_re[len / 2 - 1 + k] = cos(2 * pi * (double)k / (double)len);
            s->tw_im[len / 2 - 1 + k] = -sin(2 * pi * (double)k / (double)len);
        }
    for (size_t k = 0; k <= h; k++) {
        s->sp_re[k] = cos(2 * pi * (double)k / (double)s->n);
        s->sp_im[k] = -sin(2 * pi * (double)k / (double)s->n);
    }
    return s;
}

size_t sev_block(const severity *s) { return s->n; }

static void fft(severity *s)
{
    size_t n = s->n / 2;
    double *re = s->re, *im = s->im;
    for (size_t i = 0, j = 0; i < n; i++) {        /* bit reversal */
        if (i < j) {
            double t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
        size_t m = n >> 1;
        while (m && (j & m)) {
            j ^= m;
            m >>= 1;
        }
        j |= m;
    }
    for (size_t len = 2; len <= n; len <<= 1) {
        size_t half = len / 2;
        const double *twr = s->tw_re + half - 1, *twi = s->tw_im + half - 1;
        for (size_t i = 0; i < n; i += len)
            for (size_t k = 0; k < half; k++) {
                double wr = twr[k], wi = twi[k];
                double xr = re[i + k + half] * wr - im[i + k + half] * wi;
                double xi = re[i + k + half] * wi + im[i + k + half] * wr;
                re[i + k + half] = re[i + k] - xr;
                im[i + k + half] = im[i + k] - xi;
                re[i + k] += xr;
                im[i + k] += xi;
            }
    }
}

static double block_velocity(severity *s)
{
    double mean = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->buf[i]))
            return NAN;
        mean += s->buf[i];
    }
    mean /= (double)s->n;
    size_t h = s->n / 2;
    for (size_t i = 0; i < h; i++) {
        s->re[i] = ((double)s->buf[2 * i] - mean) * s->win[2 * i] * s->scale;
        s->im[i] = ((double)s->buf[2 * i + 1] - mean) * s->win[2 * i + 1] * s->scale;
    }
    fft(s);
    const double pi = 3.14159265358979323846;
    double p = 0, df = s->rate / (double)s->n;
    size_t k0 = (size_t)ceil(s->f_lo / df), k1 = (size_t)floor(s->f_hi / df);
    if (k0 < 1)
        k0 = 1;
    if (k1 > h - 1)
        k1 = h - 1;
    for (size_t k = k0; k <= k1; k++) {
        /* X[k] from Z[k] and Z[H-k] (the split) */
        double ar = s->re[k], ai = s->im[k], br = s->re[h - k], bi = -s->im[h - k];
        double er = 0.5 * (ar + br), ei = 0.5 * (ai + bi);       /* (Z[k] + conj Z[H-k]) / 2 */
        double dr = 0.5 * (ar - br), di = 0.5 * (ai - bi);       /* (Z[k] - conj Z[H-k]) / 2 */
        /* - i e^{-2 pi i k/N} (dr + i di) */
        double tr = s->sp_re[k] * dr - s->sp_im[k] * di, ti = s->sp_re[k] * di + s->sp_im[k] * dr;
        double xr = er + ti, xi = ei - tr;
        double w = 2 * pi * (double)k * df;
        p += (xr * xr + xi * xi) / (w * w);
    }
    return 1000.0 * sqrt(2.0 * p / ((double)s->n * s->wsum2));
}

size_t sev_feed(severity *s, const float *x, size_t n, bool *done, double *v_mm_s,
                unsigned long long *end)
{
    size_t k = s->n - s->fill < n ? s->n - s->fill : n;
    memcpy(s->buf + s->fill, x, k * sizeof *x);
    s->fill += k;
    s->fed += k;
    *done = s->fill == s->n;
    if (*done) {
        *v_mm_s = block_velocity(s);
        *end = s->fed;
        s->fill = 0;
    }
    return k;
}

const char *sev_zone(double v, const double b[3])
{
    if (!isfinite(v))
        return NULL;
    return v < b[0] ? "A" : v < b[1] ? "B" : v < b[2] ? "C" : "D";
}

bool sev_iso_bounds(int group, bool flexible, double b[3])
{
    static const double t[2][2][3] = {
        { { 2.3, 4.5, 7.1 }, { 3.5, 7.1, 11.0 } },     /* group 1: rigid, flexible */
        { { 1.4, 2.8, 4.5 }, { 2.3, 4.5, 7.1 } },      /* group 2 */
    };
    if (group != 1 && group != 2)
        return false;
    memcpy(b, t[group - 1][flexible], sizeof t[0][0]);
    return true;
}
