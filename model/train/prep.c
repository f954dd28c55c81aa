/* SPDX-License-Identifier: Apache-2.0 */
/* prep.c — trident-prep: one channel of a recording, as the daemon sees it.
 *
 *   trident-prep [--rate HZ] [--channel N] IN OUT.f32
 *
 * Reads a WAV/FLAC (anything libsndfile reads) as float — integers divided by
 * 2^(bits-1), libsndfile's default, floats unchanged — takes channel N
 * (default 0), resamples to HZ with the daemon's own resampler (dsp/resample.c,
 * fed RS_CHUNK samples per call, as the daemon does) unless --rate is absent
 * or equal to the file's rate, and writes raw little-endian float32.
 * Training and tests use it so that their preprocessing is the daemon's,
 * bit for bit.
 *
 * Exit: 0 ok, 64 usage, 65 not audio / bad data, 66 cannot open input,
 * 73 cannot write output, 70 internal (resampler) error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>

#include "resample.h"

#define EX_USAGE 64
#define EX_DATAERR 65
#define EX_NOINPUT 66
#define EX_SOFTWARE 70
#define EX_CANTCREAT 73

static void usage(FILE *f)
{
    fputs("usage: trident-prep [--rate HZ] [--channel N] IN OUT.f32\n"
          "  one channel of IN (WAV/FLAC) as raw little-endian float32, resampled to HZ\n",
          f);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Write n floats as little-endian float32. */
static int write_f32le(FILE *f, const float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = __builtin_bswap32(u);
        if (fwrite(&u, 4, 1, f) != 1)
            return -EIO;
    }
    return 0;
#else
    return fwrite(x, sizeof *x, n, f) == n ? 0 : -EIO;
#endif
}

int main(int argc, char **argv)
{
    long rate = 0, channel = 0;
    const char *in_path = NULL, *out_path = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--rate") == 0 || strcmp(a, "--channel") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "trident-prep: %s needs a value\n", a);
                return EX_USAGE;
            }
            bool is_rate = a[2] == 'r';
            long v;
            if (parse_long(argv[++i], is_rate ? 1 : 0, is_rate ? 10000000 : 1023, &v) < 0) {
                fprintf(stderr, "trident-prep: bad %s value '%s'\n", a, argv[i]);
                return EX_USAGE;
            }
            *(is_rate ? &rate : &channel) = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "trident-prep: unknown option '%s'\n", a);
            usage(stderr);
            return EX_USAGE;
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            fprintf(stderr, "trident-prep: too many arguments ('%s')\n", a);
            return EX_USAGE;
        }
    }
    if (!in_path || !out_path) {
        usage(stderr);
        return EX_USAGE;
    }

    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(in_path, SFM_READ, &info);
    if (!sf) {
        /* cannot open (missing, unreadable) vs. opened but not audio */
        int e = sf_error(NULL);
        fprintf(stderr, "trident-prep: %s: %s\n", in_path, sf_strerror(NULL));
        return e == SF_ERR_SYSTEM ? EX_NOINPUT : EX_DATAERR;
    }
    if (info.channels < 1 || info.samplerate < 1) {
        fprintf(stderr, "trident-prep: %s: no audio (channels %d, rate %d)\n", in_path,
                info.channels, info.samplerate);
        sf_close(sf);
        return EX_DATAERR;
    }
    if (channel >= info.channels) {
        fprintf(stderr, "trident-prep: %s: channel %ld out of range (file has %d)\n", in_path,
                channel, info.channels);
        sf_close(sf);
        return EX_USAGE;
    }
    if (rate == 0)
        rate = info.samplerate;

    int rc = 0;
    bool created = false;
    char err[256];
    resampler *rs = NULL;
    FILE *out = NULL;
    float *frames = malloc((size_t)RS_CHUNK * (size_t)info.channels * sizeof *frames);
    float *mono = malloc(RS_CHUNK * sizeof *mono);
    /* Room for one chunk's output with soxr's block bursts (resample.h). */
    size_t out_cap = (size_t)(2.0 * RS_CHUNK * (double)rate / info.samplerate) + 1024;
    float *res = malloc(out_cap * sizeof *res);
    if (!frames || !mono || !res) {
        fprintf(stderr, "trident-prep: out of memory\n");
        rc = EX_SOFTWARE;
        goto done;
    }
    rs = rs_create(info.samplerate, (double)rate, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "trident-prep: %s: %s\n", in_path, err);
        rc = EX_SOFTWARE;
        goto done;
    }
    out = fopen(out_path, "wb");
    created = out != NULL;
    if (!out) {
        fprintf(stderr, "trident-prep: %s: %s\n", out_path, strerror(errno));
        rc = EX_CANTCREAT;
        goto done;
    }

    for (;;) {
        sf_count_t got = sf_readf_float(sf, frames, RS_CHUNK);
        if (got < 0 || (got == 0 && sf_error(sf))) {
            fprintf(stderr, "trident-prep: %s: read error: %s\n", in_path, sf_strerror(sf));
            rc = EX_DATAERR;
            goto done;
        }
        if (got == 0)
            break;
        for (sf_count_t i = 0; i < got; i++)
            mono[i] = frames[(size_t)i * (size_t)info.channels + (size_t)channel];
        long n = rs_process(rs, mono, (size_t)got, res, out_cap);
        if (n < 0) {
            fprintf(stderr, "trident-prep: %s: resampler: %s\n", in_path, strerror((int)-n));
            rc = EX_SOFTWARE;
            goto done;
        }
        if (write_f32le(out, res, (size_t)n) < 0)
            goto write_error;
    }
    for (;;) {
        long n = rs_flush(rs, res, out_cap);
        if (n < 0) {
            fprintf(stderr, "trident-prep: %s: resampler: %s\n", in_path, strerror((int)-n));
            rc = EX_SOFTWARE;
            goto done;
        }
        if (n == 0)
            break;
        if (write_f32le(out, res, (size_t)n) < 0)
            goto write_error;
    }
    if (fclose(out) != 0) {
        out = NULL;
        goto write_error;
    }
    out = NULL;
    goto done;

write_error:
    fprintf(stderr, "trident-prep: %s: write failed: %s\n", out_path, strerror(errno));
    rc = EX_CANTCREAT;
done:
    if (out)
        fclose(out);
    if (rc && created)
        remove(out_path);   /* never leave a truncated OUT behind */
    rs_destroy(rs);
    free(res);
    free(mono);
    free(frames);
    sf_close(sf);
    return rc;
}
