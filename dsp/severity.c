/* SPDX-License-Identifier: Apache-2.0 */
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

/* A block's way down to rate / 2^nst: the stages, where fed samples go
 * (st[0]'s block, or y when there is no stage) and the decimated block. */
struct cascade {
    struct halfband st[SEV_MAX_STAGES];
    unsigned nst;
    size_t   m;                     /* decimated samples per block, n / 2^nst */
    double  *in, *y;
};

struct severity {
    size_t    n, fill;              /* input samples per block; filled */
    size_t    m;                    /* decimated samples per block */
    unsigned  log2n;
    bool      bad;                  /* a non-finite sample in the block being filled */
    double    rate, scale, f_lo, f_hi, wsum2;
    unsigned long long fed;
    struct cascade vel;             /* the acceleration's */
    /* bearing defects (sev_set_bearing): the envelope path */
    bool      bearing;
    struct cascade env;             /* the squared high-passed acceleration's */
    double    hp[2][5], hp_z[2][2];   /* 2 biquads b0 b1 b2 a1 a2; their states */
    double    hz[SEV_NDEFECT], db[SEV_NDEFECT];
    double   *pw, *pw2;             /* envelope spectrum power over the band; a copy (median) */
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

static void cascade_free(struct cascade *c)
{
    for (unsigned i = 0; i < c->nst; i++) {
        free(c->st[i].c);
        free(c->st[i].buf);
    }
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Half-band stages while the rate stays >= 6 f_hi before halving and the
 * block keeps 256 samples.  false: out of memory. */
static bool cascade_init(struct cascade *c, double rate, double f_hi, size_t n)
{
    double r = rate;
    size_t len = n;
    while (c->nst < SEV_MAX_STAGES && r / 2 >= 3 * f_hi && len / 2 >= 256) {
        struct halfband *hb = &c->st[c->nst++];
        hb->len = len;
        hb->taps = halfband_taps(r, f_hi);
        hb->pairs = (hb->taps + 1) / 4;
        hb->buf = calloc(hb->taps - 1 + len, sizeof *hb->buf);
        hb->c = malloc(hb->pairs * sizeof *hb->c);
        if (!hb->buf || !hb->c)
            return false;
        halfband_design(hb);
        r /= 2;
        len /= 2;
    }
    c->m = len;
    if (!(c->y = malloc(c->m * sizeof *c->y)))
        return false;
    c->in = c->nst ? c->st[0].buf + c->st[0].taps - 1 : c->y;
    return true;
}

void sev_destroy(severity *s)
{
    if (!s)
        return;
    cascade_free(&s->vel);
    cascade_free(&s->env);
    free(s->pw);
    free(s->pw2);
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
    bool ok = cascade_init(&s->vel, rate, f_hi, s->n);
    s->m = s->vel.m;
    size_t h = s->m / 2;
    s->re = malloc(h * sizeof *s->re);
    s->im = malloc(h * sizeof *s->im);
    s->win = malloc(s->m * sizeof *s->win);
    s->tw_re = malloc(h * sizeof *s->tw_re);
    s->tw_im = malloc(h * sizeof *s->tw_im);
    s->sp_re = malloc((h + 1) * sizeof *s->sp_re);
    s->sp_im = malloc((h + 1) * sizeof *s->sp_im);
    if (!ok || !s->re || !s->im || !s->win || !s->tw_re || !s->tw_im
        || !s->sp_re || !s->sp_im) {
        sev_destroy(s);
        return NULL;
    }
    const double pi = 3.14159265358979323846;
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
static void cascade_run(struct cascade *c)
{
    for (unsigned i = 0; i < c->nst; i++) {
        struct halfband *hb = &c->st[i];
        double *out = i + 1 < c->nst ? c->st[i + 1].buf + c->st[i + 1].taps - 1 : c->y;
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

/* y (m samples) with its mean removed, Hann-windowed and times `scale`,
 * through the FFT into re/im. */
static void spectrum(severity *s, const double *y, double scale)
{
    double mean = 0;
    for (size_t i = 0; i < s->m; i++)
        mean += y[i];
    mean /= (double)s->m;
    size_t h = s->m / 2;
    for (size_t i = 0; i < h; i++) {
        s->re[i] = (y[2 * i] - mean) * s->win[2 * i] * scale;
        s->im[i] = (y[2 * i + 1] - mean) * s->win[2 * i + 1] * scale;
    }
    fft(s);
}

/* |X[k]|^2 of the last spectrum(), 0 < k < H: X[k] from Z[k] and Z[H-k]
 * (the split). */
static double bin_power(const severity *s, size_t k)
{
    size_t h = s->m / 2;
    double ar = s->re[k], ai = s->im[k], br = s->re[h - k], bi = -s->im[h - k];
    double er = 0.5 * (ar + br), ei = 0.5 * (ai + bi);       /* (Z[k] + conj Z[H-k]) / 2 */
    double dr = 0.5 * (ar - br), di = 0.5 * (ai - bi);       /* (Z[k] - conj Z[H-k]) / 2 */
    /* - i e^{-2 pi i k/M} (dr + i di) */
    double tr = s->sp_re[k] * dr - s->sp_im[k] * di, ti = s->sp_re[k] * di + s->sp_im[k] * dr;
    double xr = er + ti, xi = ei - tr;
    return xr * xr + xi * xi;
}

/* The band's bins [k0, k1] (10-1000 Hz). */
static void band_bins(const severity *s, size_t *k0, size_t *k1)
{
    double df = s->rate / (double)s->n;
    *k0 = (size_t)ceil(s->f_lo / df);
    *k1 = (size_t)floor(s->f_hi / df);
    if (*k0 < 1)
        *k0 = 1;
    if (*k1 > s->m / 2 - 1)
        *k1 = s->m / 2 - 1;
}

static double block_velocity(severity *s)
{
    cascade_run(&s->vel);
    if (s->bad)
        return NAN;
    spectrum(s, s->vel.y, s->scale);
    const double pi = 3.14159265358979323846;
    double p = 0, df = s->rate / (double)s->n;
    size_t k0, k1;
    band_bins(s, &k0, &k1);
    for (size_t k = k0; k <= k1; k++) {
        double w = 2 * pi * (double)k * df;
        p += bin_power(s, k) / (w * w);
    }
    return 1000.0 * sqrt(2.0 * p / ((double)s->m * s->wsum2));
}

/* The k-th smallest of a[0..n) (a is reordered): quickselect, Lomuto's
 * partition around the median of three. */
static double select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        /* a[mid] := the median of a[lo], a[mid], a[hi]; then it goes to hi */
        if (a[mid] < a[lo]) { double t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (a[hi] < a[lo]) { double t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (a[hi] < a[mid]) { double t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        double piv = a[mid];
        a[mid] = a[hi];
        a[hi] = piv;
        size_t st = lo;
        for (size_t i = lo; i < hi; i++)
            if (a[i] < piv) {
                double t = a[i]; a[i] = a[st]; a[st] = t;
                st++;
            }
        a[hi] = a[st];
        a[st] = piv;
        if (k == st)
            return piv;
        if (k < st)
            hi = st - 1;
        else
            lo = st + 1;
    }
    return a[lo];
}

/* The squared-envelope spectrum's peak near each defect frequency against
 * its median over the band, in dB; NaN for the block with a non-finite
 * sample or a defect frequency outside the spectrum. */
static void block_defects(severity *s)
{
    cascade_run(&s->env);
    for (int d = 0; d < SEV_NDEFECT; d++)
        s->db[d] = NAN;
    if (s->bad)
        return;
    spectrum(s, s->env.y, 1.0);
    size_t k0, k1;
    band_bins(s, &k0, &k1);
    size_t nb = k1 - k0 + 1;
    for (size_t k = k0; k <= k1; k++)
        s->pw[k - k0] = s->pw2[k - k0] = bin_power(s, k);
    double med = select_kth(s->pw2, nb, nb / 2);
    if (!(med > 0))
        return;
    double df = s->rate / (double)s->n;
    for (int d = 0; d < SEV_NDEFECT; d++) {
        /* +-1 % (the speed is nominal) and at least +-2 bins (Hann's main lobe) */
        double tol = fmax(0.01 * s->hz[d], 2 * df);
        double lo = ceil((s->hz[d] - tol) / df), hi = floor((s->hz[d] + tol) / df);
        if (lo < 1)
            lo = 1;
        if (hi > (double)(s->m / 2 - 1))
            hi = (double)(s->m / 2 - 1);
        if (lo > hi)
            continue;
        double peak = 0;
        for (size_t k = (size_t)lo; k <= (size_t)hi; k++) {
            double p = k >= k0 && k <= k1 ? s->pw[k - k0] : bin_power(s, k);
            peak = fmax(peak, p);
        }
        s->db[d] = 10 * log10(peak / med);
    }
}

/* Direct form II transposed, in place. */
static double biquad(const double c[5], double z[2], double x)
{
    double y = c[0] * x + z[0];
    z[0] = c[1] * x - c[3] * y + z[1];
    z[1] = c[2] * x - c[4] * y;
    return y;
}

int sev_set_bearing(severity *s, const struct sev_bearing *b)
{
    if (!(b->rpm > 0) || b->balls < 3 || !(b->ball_diameter > 0)
        || !(b->pitch_diameter > b->ball_diameter) || !(b->contact_deg >= 0)
        || !(b->contact_deg < 90) || !(b->envelope_hz > 0) || !(b->envelope_hz < s->rate / 2))
        return -EINVAL;
    const double pi = 3.14159265358979323846;
    double fr = b->rpm / 60, r = b->ball_diameter / b->pitch_diameter * cos(b->contact_deg * pi / 180);
    s->hz[SEV_FTF] = fr / 2 * (1 - r);
    s->hz[SEV_BPFO] = b->balls * fr / 2 * (1 - r);
    s->hz[SEV_BPFI] = b->balls * fr / 2 * (1 + r);
    s->hz[SEV_BSF] = b->pitch_diameter / (2 * b->ball_diameter) * fr * (1 - r * r);
    for (int d = 0; d < SEV_NDEFECT; d++)
        s->db[d] = NAN;
    /* 4th-order Butterworth high-pass: two sections, Q 0.5412 and 1.3066 */
    static const double q[2] = { 0.54119610014619698, 1.3065629648763766 };
    double w0 = 2 * pi * b->envelope_hz / s->rate;
    for (int i = 0; i < 2; i++) {
        double al = sin(w0) / (2 * q[i]), cw = cos(w0), a0 = 1 + al;
        s->hp[i][0] = (1 + cw) / 2 / a0;
        s->hp[i][1] = -(1 + cw) / a0;
        s->hp[i][2] = (1 + cw) / 2 / a0;
        s->hp[i][3] = -2 * cw / a0;
        s->hp[i][4] = (1 - al) / a0;
    }
    size_t k0, k1;
    band_bins(s, &k0, &k1);
    if (!s->bearing) {
        if (!cascade_init(&s->env, s->rate, s->f_hi, s->n)
            || !(s->pw = malloc((k1 - k0 + 1) * sizeof *s->pw))
            || !(s->pw2 = malloc((k1 - k0 + 1) * sizeof *s->pw2))) {
            cascade_free(&s->env);
            free(s->pw);
            free(s->pw2);
            s->pw = s->pw2 = NULL;
            return -ENOMEM;
        }
        s->bearing = true;
    }
    return 0;
}

bool sev_defects(const severity *s, double hz[SEV_NDEFECT], double db[SEV_NDEFECT])
{
    if (!s->bearing)
        return false;
    memcpy(hz, s->hz, sizeof s->hz);
    memcpy(db, s->db, sizeof s->db);
    return true;
}

size_t sev_feed(severity *s, const float *x, size_t n, bool *done, double *v_mm_s,
                unsigned long long *end)
{
    size_t k = s->n - s->fill < n ? s->n - s->fill : n;
    double *in = s->vel.in + s->fill;
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
    if (s->bearing) {
        double *e = s->env.in + s->fill;
        for (size_t i = 0; i < k; i++) {
            double y = biquad(s->hp[1], s->hp_z[1], biquad(s->hp[0], s->hp_z[0], in[i]));
            e[i] = y * y;
        }
    }
    s->fill += k;
    s->fed += k;
    *done = s->fill == s->n;
    if (*done) {
        *v_mm_s = block_velocity(s);
        if (s->bearing)
            block_defects(s);
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
