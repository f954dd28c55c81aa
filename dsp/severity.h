/* SPDX-License-Identifier: Apache-2.0 */
/* severity.h — vibration severity: velocity RMS in a band, and its zone.
 *
 * The samples of a stream (acceleration, `scale` m/s^2 per sample unit) are
 * cut into blocks of N = the smallest power of two >= rate * seconds
 * samples, one after the other.  Each block is decimated by D (a cascade
 * of half-band filters, D = 4 at 12 kHz: severity.c) to M = N / D samples;
 * then the mean removed, a Hann window, a radix-2 FFT; acceleration is
 * integrated to velocity in the frequency domain (divided by 2 pi f), and
 * the velocity's RMS is the Parseval sum over the bins from f_lo to f_hi:
 *
 *   v_rms^2 = 2 / (M * sum w^2) * sum_{f_lo <= f_k <= f_hi} |A_k|^2 / (2 pi f_k)^2
 *
 * which for a sine a sin(2 pi f0 t) inside the band gives a / (sqrt 2 * 2 pi f0)
 * (the window's leakage stays in the sum; the decimators are flat to 3e-4
 * in the band).  A block with a non-finite sample has no estimate (NaN);
 * the next block does.  Everything is allocated by sev_create(); sev_feed()
 * allocates nothing.
 */
#ifndef TRIDENT_SEVERITY_H
#define TRIDENT_SEVERITY_H

#include <stdbool.h>
#include <stddef.h>

/* The band ISO 10816-3 measures velocity in, Hz. */
#define SEV_F_LO 10.0
#define SEV_F_HI 1000.0

typedef struct severity severity;

/* NULL with errno ENOMEM or EINVAL (rate <= 0, f_hi above rate / 2,
 * f_lo >= f_hi, seconds <= 0, a block above SEV_MAX_BLOCK samples: the
 * FFT runs on the windower thread, 2^20 points took 41 ms). */
#define SEV_MAX_BLOCK (1u << 20)
severity *sev_create(double rate, double scale, double f_lo, double f_hi, double seconds);
void      sev_destroy(severity *s);
/* Samples per block. */
size_t    sev_block(const severity *s);
/* Feed up to n samples, stopping right after a block completes: returns
 * how many were taken; *done says whether a block completed, then *v_mm_s
 * is its velocity RMS in mm/s (NaN: a non-finite sample in it) and *end
 * the number of samples fed up to its end.  Call again for the rest. */
size_t    sev_feed(severity *s, const float *x, size_t n, bool *done, double *v_mm_s,
                   unsigned long long *end);

/* Bearing defects: given the shaft speed and the bearing's geometry, each
 * block also yields the squared-envelope spectrum (the acceleration
 * high-passed at envelope_hz by a 4th-order Butterworth, squared,
 * decimated like the velocity path, Hann, FFT) and, for each defect
 * frequency, its peak within +-1 % (at least +-2 bins) against the
 * spectrum's median over 10-1000 Hz, in dB:
 *   FTF  = fr/2 (1 - r)          cage
 *   BPFO = z fr/2 (1 - r)        outer race
 *   BPFI = z fr/2 (1 + r)        inner race
 *   BSF  = P/(2 B) fr (1 - r^2)  ball spin
 * with fr = rpm / 60, r = B/P cos(contact), z balls, B ball and P pitch
 * diameter.  A fault on that part strikes once per period, and its
 * impacts ring the structure's resonances above envelope_hz: their
 * envelope repeats at the defect frequency. */
enum { SEV_FTF, SEV_BPFO, SEV_BPFI, SEV_BSF, SEV_NDEFECT };
struct sev_bearing {
    double rpm;
    double balls;
    double ball_diameter, pitch_diameter;   /* any one unit */
    double contact_deg;
    double envelope_hz;                     /* high-pass of the envelope band */
};
/* 0, -EINVAL (a value out of range, envelope_hz at or above rate/2) or
 * -ENOMEM.  Call before the first sev_feed(). */
int  sev_set_bearing(severity *s, const struct sev_bearing *b);
/* The defect frequencies (Hz) and the last block's prominences (dB; NaN:
 * none); false when no bearing was set. */
bool sev_defects(const severity *s, double hz[SEV_NDEFECT], double db[SEV_NDEFECT]);

/* The zone A, B, C or D of v for the boundaries b[0] < b[1] < b[2] (A below
 * b[0], D from b[2] on); NULL for NaN. */
const char *sev_zone(double v, const double b[3]);
/* ISO 10816-3's boundaries (mm/s, r.m.s., 10-1000 Hz): machine group 1
 * (large, 300 kW to 50 MW) or 2 (medium, 15 to 300 kW), rigid or flexible
 * foundation.  false for another group. */
bool        sev_iso_bounds(int group, bool flexible, double b[3]);

#endif
