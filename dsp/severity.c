/* severity.c — see severity.h.
 *
 * Decimation first: the band ends at f_hi (1 kHz), far below a 12 kHz
 * stream's Nyquist, so each block of N input samples is low-pass filtered
 * and decimated by D = 2^S, the largest power of two with rate / D >=
 * 3 f_hi (and N / D >= 256), before the FFT: D = 4 at 12 kHz, an FFT of
 * N/4 points in a quarter of the memory.  The S stages are half-band
 * filters (every other tap zero, each halves the rate): at its input rate
 * r a stage passes 0..f_hi and stops from r/2 - f_hi, so nothing aliases
 * into the band; Kaiser-windowed sincs, 70 dB (beta 6.755), flat to 3e-4
 * in the band.  Each stage's history (taps - 1 samples) runs on from block
 * to block, so only the first block sees a start-up transient (where the
 * Hann window is near 0).  Frequency resolution is unchanged: (rate / D) /
 * (N / D) = rate / N.
 *
 * The decimated block's real FFT is an iterative radix-2 decimation in time
 * on H = M/2 complex points z[n] = y[2n] + i y[2n+1] (M = N/D), then the
 * split
 *   X[k] = (Z[k] + conj Z[H-k]) / 2 - i/2 e^{-2 pi i k/M} (Z[k] - conj Z[H-k])
 * (as dsp/winfeat.c).  Each stage's twiddles lie contiguous (tw, H - 1 of
 * them in all), so the butterflies walk memory in order. */
#include "severity.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEV_MAX_LOG2 20
#define SEV_MAX_STAGES 16

/* One half-band decimator: taps = 4K + 3, centre tap ctr, pair q at
 * offsets +-(2q + 1), q < pairs.  buf: taps - 1 samples of history, then
 * the block's len input samples. */
struct halfband {
    size_t  taps, pairs, len;
    double  ctr;
    double *c, *buf;
};

struct severity {
    size_t    n, fill;              /* input samples per block; filled */
    size_t    m;                    /* decimated samples per block, n / 2^nst */
    unsigned  log2n, nst;
    bool      bad;                  /* a non-finite sample in the block being filled */
    double    rate, scale, f_lo, f_hi, wsum2;
    unsigned long long fed;
    struct halfband st[SEV_MAX_STAGES];
    double   *in;                   /* where fed samples go: st[0]'s block, or y */
    double   *y;                    /* the decimated block, m values */
    double   *re, *im, *win;        /* H = m/2 complex points; m window values */
    double   *tw_re, *tw_im;        /* per stage len: e^{-2 pi i k/len}, k < len/2 */
    double   *sp_re, *sp_im;        /* e^{-2 pi i k/N}, k <= H */
};

/* I0, the modified Bessel function of order 0 (its series; x <= 8 here). */
static double bessel_i0(double x)
{
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 50 && term > 1e-17 * sum; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
    }
    return sum;
}

/* Taps of a half-band stage at input rate r passing 0..f_hi, stopping
 * from r/2 - f_hi, 70 dB: Kaiser's (A - 7.95) / (2.285 * 2 pi * width / r)
 * + 1, rounded up to 4K + 3 (so both end taps are non-zero). */
static size_t halfband_taps(double r, double f_hi)
{
    double width = r / 2 - 2 * f_hi;
    size_t t = (size_t)ceil(62.05 / (2.285 * 2 * 3.14159265358979323846 * width / r)) + 1;
    while (t % 4 != 3)
        t++;
    return t;
}

/* h[t] = sin(pi t / 2) / (pi t) * kaiser(t), t = -(taps-1)/2..(taps-1)/2:
 * the centre 1/2 and the odd taps, scaled to a DC gain of exactly 1. */
static void halfband_design(struct halfband *hb)
{
    const double pi = 3.14159265358979323846, beta = 6.755;
    double half = (double)(hb->taps - 1) / 2, sum = 0.5;
    for (size_t q = 0; q < hb->pairs; q++) {
        double t = (double)(2 * q + 1), x = t / half;
        hb->c[q] = sin(pi * t / 2) / (pi * t) * bessel_i0(beta * sqrt(1 - x * x)) / bessel_i0(beta);
        sum += 2 * hb->c[q];
    }
    hb->ctr = 0.5 / sum;
    for (size_t q = 0; q < hb->pairs; q++)
        hb->c[q] /= sum;
}

void sev_destroy(severity *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nst; i++) {
        free(s->st[i].c);
        free(s->st[i].buf);
    }
    free(s->y);
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
    double r = rate;
    size_t len = s->n;
    bool ok = true;
    while (s->nst < SEV_MAX_STAGES && r / 2 >= 3 * f_hi && len / 2 >= 256) {
        struct halfband *hb = &s->st[s->nst++];
        hb->len = len;
        hb->taps = halfband_taps(r, f_hi);
        hb->pairs = (hb->taps + 1) / 4;
        hb->buf = calloc(hb->taps - 1 + len, sizeof *hb->buf);
        hb->c = malloc(hb->pairs * sizeof *hb->c);
        if (!hb->buf || !hb->c)
            ok = false;
        else
            halfband_design(hb);
        r /= 2;
        len /= 2;
    }
    s->m = len;
    s->y = malloc(s->m * sizeof *s->y);
    size_t h = s->m / 2;
    s->re = malloc(h * sizeof *s->re);
    s->im = malloc(h * sizeof *s->im);
    s->win = malloc(s->m * sizeof *s->win);
    s->tw_re = malloc(h * sizeof *s->tw_re);
    s->tw_im = malloc(h * sizeof *s->tw_im);
    s->sp_re = malloc((h + 1) * sizeof *s->sp_re);
    s->sp_im = malloc((h + 1) * sizeof *s->sp_im);
    if (!ok || !s->y || !s->re || !s->im || !s->win || !s->tw_re || !s->tw_im
        || !s->sp_re || !s->sp_im) {
        sev_destroy(s);
        return NULL;
    }
    const double pi = 3.14159265358979323846;
    s->in = s->nst ? s->st[0].buf + s->st[0].taps - 1 : s->y;
    for (size_t i = 0; i < s->m; i++) {
        s->win[i] = 0.5 - 0.5 * cos(2 * pi * (double)i / (double)s->m);
        s->wsum2 += s->win[i] * s->win[i];
    }
    /* stage len (2, 4, ..., H) uses tw[len/2 - 1 + k], k < len/2 */
    for (size_t len = 2; len <= h; len <<= 1)
        for (size_t k = 0; k < len / 2; k++) {
            s->tw_re[len / 2 - 1 + k] = cos(2 * pi * (double)k / (double)len);
            s->tw_im[len / 2 - 1 + k] = -sin(2 * pi * (double)k / (double)len);
        }
    for (size_t k = 0; k <= h; k++) {
        s->sp_re[k] = cos(2 * pi * (double)k / (double)s->m);
        s->sp_im[k] = -sin(2 * pi * (double)k / (double)s->m);
    }
    return s;
}

size_t sev_block(const severity *s) { return s->n; }

static void fft(severity *s)
{
    size_t n = s->m / 2;
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

/* Run the block through the stages into y; each stage then keeps its last
 * taps - 1 inputs as the next block's history.  Output j of a stage is
 * centred on its input 2j + (taps-1)/2 (buffer index, history first). */
static void decimate(severity *s)
{
    for (unsigned i = 0; i < s->nst; i++) {
        struct halfband *hb = &s->st[i];
        double *out = i + 1 < s->nst ? s->st[i + 1].buf + s->st[i + 1].taps - 1 : s->y;
        size_t nout = hb->len / 2, mid = (hb->taps - 1) / 2;
        for (size_t j = 0; j < nout; j++) {
            const double *x = hb->buf + 2 * j + mid;
            double a0 = hb->ctr * x[0], a1 = 0;
            size_t q = 0;
            for (; q + 1 < hb->pairs; q += 2) {
                a0 += hb->c[q] * (x[-(ptrdiff_t)(2 * q + 1)] + x[2 * q + 1]);
                a1 += hb->c[q + 1] * (x[-(ptrdiff_t)(2 * q + 3)] + x[2 * q + 3]);
            }
            if (q < hb->pairs)
                a0 += hb->c[q] * (x[-(ptrdiff_t)(2 * q + 1)] + x[2 * q + 1]);
            out[j] = a0 + a1;
        }
        memmove(hb->buf, hb->buf + hb->len, (hb->taps - 1) * sizeof *hb->buf);
    }
}

static double block_velocity(severity *s)
{
    decimate(s);
    if (s->bad)
        return NAN;
    double mean = 0;
    for (size_t i = 0; i < s->m; i++)
        mean += s->y[i];
    mean /= (double)s->m;
    size_t h = s->m / 2;
    for (size_t i = 0; i < h; i++) {
        s->re[i] = (s->y[2 * i] - mean) * s->win[2 * i] * s->scale;
        s->im[i] = (s->y[2 * i + 1] - mean) * s->win[2 * i + 1] * s->scale;
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
        /* - i e^{-2 pi i k/M} (dr + i di) */
        double tr = s->sp_re[k] * dr - s->sp_im[k] * di, ti = s->sp_re[k] * di + s->sp_im[k] * dr;
        double xr = er + ti, xi = ei - tr;
        double w = 2 * pi * (double)k * df;
        p += (xr * xr + xi * xi) / (w * w);
    }
    return 1000.0 * sqrt(2.0 * p / ((double)s->m * s->wsum2));
}

size_t sev_feed(severity *s, const float *x, size_t n, bool *done, double *v_mm_s,
                unsigned long long *end)
{
    size_t k = s->n - s->fill < n ? s->n - s->fill : n;
    double *in = s->in + s->fill;
    uint32_t inf = 0;
    for (size_t i = 0; i < k; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        inf |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);  /* NaN or +-Inf */
        in[i] = (double)x[i];
    }
    if (inf) {
        /* its block is NaN; the filters see 0, so the next block is not
         * touched by it */
        s->bad = true;
        for (size_t i = 0; i < k; i++)
            if (!isfinite(in[i]))
                in[i] = 0.0;
    }
    s->fill += k;
    s->fed += k;
    *done = s->fill == s->n;
    if (*done) {
        *v_mm_s = block_velocity(s);
        *end = s->fed;
        s->fill = 0;
        s->bad = false;
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
