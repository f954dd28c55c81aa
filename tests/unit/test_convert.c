/* SPDX-License-Identifier: Apache-2.0 */
/* test_convert.c — sample-format conversion and de-interleaving.
 *
 * Known values per format (extremes, zero, ±1 LSB, sign extension, the S24_LE
 * padding byte), every channel of interleaved multi-channel frames, names and
 * parsing; and, for the integer formats, agreement bit for bit with what
 * libsndfile's sf_readf_float() returns for the same samples in a WAV, since
 * the replay path reads through libsndfile and the live path through this.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sndfile.h>

#include "convert.h"
#include "test.h"

static void put(uint8_t *p, uint32_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One channel of one value: convert and compare exactly. */
static float one(enum cvt_format f, uint32_t raw)
{
    uint8_t b[4];
    float y = -99;
    put(b, raw, cvt_bytes(f));
    cvt_to_float(f, b, 1, 0, &y, 1);
    return y;
}

TEST(s16_values)
{
    CHECK(one(CVT_S16_LE, 0) == 0.0f);
    CHECK(one(CVT_S16_LE, 1) == 1.0f / 32768);
    CHECK(one(CVT_S16_LE, 0xffff) == -1.0f / 32768);
    CHECK(one(CVT_S16_LE, 0x8000) == -1.0f);
    CHECK(one(CVT_S16_LE, 0x7fff) == 32767.0f / 32768);
    CHECK(one(CVT_S16_LE, 0x4000) == 0.5f);
}

TEST(s24_values)
{
    CHECK(one(CVT_S24_3LE, 0) == 0.0f);
    CHECK(one(CVT_S24_3LE, 1) == 1.0f / 8388608);
    CHECK(one(CVT_S24_3LE, 0xffffff) == -1.0f / 8388608);
    CHECK(one(CVT_S24_3LE, 0x800000) == -1.0f);
    CHECK(one(CVT_S24_3LE, 0x7fffff) == 8388607.0f / 8388608);
    CHECK(one(CVT_S24_LE, 0x00400000) == 0.5f);
    CHECK(one(CVT_S24_LE, 0x00800000) == -1.0f);
    /* the padding byte is ignored whatever it holds */
    CHECK(one(CVT_S24_LE, 0xab400000) == 0.5f);
    CHECK(one(CVT_S24_LE, 0x12ffffff) == -1.0f / 8388608);
    CHECK(one(CVT_S24_LE, 0xff000001) == 1.0f / 8388608);
}

TEST(s32_float_values)
{
    CHECK(one(CVT_S32_LE, 0) == 0.0f);
    CHECK(one(CVT_S32_LE, 0x80000000u) == -1.0f);
    CHECK(one(CVT_S32_LE, 0x40000000u) == 0.5f);
    CHECK(one(CVT_S32_LE, 0x7fffffffu) == 1.0f);   /* rounds to float, like libsndfile */
    CHECK(one(CVT_S32_LE, 0xffffff00u) == -256.0f / 2147483648.0f);
    const float fv[] = { 0.0f, -0.0f, 1.0f, -6.75f, 1e-30f, 3.4e38f };
    for (size_t i = 0; i < sizeof fv / sizeof fv[0]; i++) {
        uint32_t u;
        memcpy(&u, &fv[i], 4);
        float y = one(CVT_FLOAT_LE, u);
        CHECKF(memcmp(&y, &fv[i], 4) == 0, "float %g", fv[i]);   /* bits, sign of zero too */
    }
}

/* Every channel of 5-channel interleaved frames, every format. */
TEST(deinterleave)
{
    enum { FR = 37, CH = 5 };
    for (int f = CVT_S16_LE; f <= CVT_FLOAT_LE; f++) {
        size_t bs = cvt_bytes((enum cvt_format)f);
        uint8_t *buf = malloc(FR * CH * bs + 1);
        REQUIRE(buf);
        /* odd offset: no alignment assumed */
        uint8_t *base = buf + 1;
        for (int i = 0; i < FR; i++)
            for (int c = 0; c < CH; c++) {
                int v = (i * CH + c) * (c & 1 ? -1 : 1);   /* small integers, signed */
                uint32_t raw;
                if (f == CVT_FLOAT_LE) {
                    float x = (float)v;
                    memcpy(&raw, &x, 4);
                } else if (f == CVT_S24_LE) {
                    raw = ((uint32_t)v & 0xffffffu) | 0x5a000000u;   /* junk padding */
                } else {
                    raw = (uint32_t)v;
                }
                put(base + (size_t)(i * CH + c) * bs, raw, bs);
            }
        const float scale = f == CVT_S16_LE ? 32768.0f : f == CVT_S32_LE ? 2147483648.0f
                          : f == CVT_FLOAT_LE ? 1.0f : 8388608.0f;
        for (unsigned c = 0; c < CH; c++) {
            float y[FR];
            cvt_to_float((enum cvt_format)f, base, CH, c, y, FR);
            int bad = 0;
            for (int i = 0; i < FR; i++)
                bad += y[i] * scale != (float)((i * CH + (int)c) * (c & 1 ? -1 : 1));
            CHECKF(bad == 0, "%s channel %u: %d wrong", cvt_name((enum cvt_format)f), c, bad);
        }
        free(buf);
    }
}

/* Write the integer samples with libsndfile, read them back as float with
 * libsndfile, and convert the same samples ourselves: identical floats. */
static void vs_libsndfile(int sf_sub, enum cvt_format f, int bits)
{
    enum { N = 4096 };
    static int32_t v[N];
    static float ref[N], y[N];
    static uint8_t raw[N * 4];
    uint32_t s = 2463534242u;
    for (int i = 0; i < N; i++) {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        int32_t x = (int32_t)s >> (32 - bits);   /* full signed range of `bits` */
        const int64_t top = INT64_C(1) << (bits - 1);
        if (i < 4)   /* zero, minimum, maximum, -1 */
            x = (int32_t)(i == 0 ? 0 : i == 1 ? -top : i == 2 ? top - 1 : -1);
        v[i] = x;
        put(raw + (size_t)i * cvt_bytes(f), (uint32_t)x, cvt_bytes(f));
    }
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/trident-test-convert-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    SF_INFO info = { .samplerate = 12000, .channels = 1, .format = SF_FORMAT_WAV | sf_sub };
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, 1);
    if (!sf) {
        unlink(path);
        REQUIRE(sf);
    }
    /* libsndfile's int interface is left-justified 32-bit */
    static int32_t lj[N];
    for (int i = 0; i < N; i++)
        lj[i] = (int32_t)((uint32_t)v[i] << (32 - bits));
    CHECK(sf_write_int(sf, lj, N) == N);
    sf_close(sf);
    memset(&info, 0, sizeof info);
    sf = sf_open(path, SFM_READ, &info);
    unlink(path);
    REQUIRE(sf);
    CHECK(sf_readf_float(sf, ref, N) == N);
    sf_close(sf);
    cvt_to_float(f, raw, 1, 0, y, N);
    int bad = 0, first = -1;
    for (int i = 0; i < N; i++)
        if (memcmp(&y[i], &ref[i], 4) != 0 && bad++ == 0)
            first = i;
    CHECKF(bad == 0, "%s: %d differ from libsndfile, first at %d: %d -> %.9g vs %.9g",
           cvt_name(f), bad, first, first >= 0 ? v[first] : 0, first >= 0 ? y[first] : 0,
           first >= 0 ? ref[first] : 0);
}

TEST(s16_matches_libsndfile) { vs_libsndfile(SF_FORMAT_PCM_16, CVT_S16_LE, 16); }
TEST(s24_matches_libsndfile) { vs_libsndfile(SF_FORMAT_PCM_24, CVT_S24_3LE, 24); }
TEST(s32_matches_libsndfile) { vs_libsndfile(SF_FORMAT_PCM_32, CVT_S32_LE, 32); }

TEST(names_and_parse)
{
    const char *names[] = { "S16_LE", "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE" };
    const size_t bytes[] = { 2, 4, 3, 4, 4 };
    for (int f = CVT_S16_LE; f <= CVT_FLOAT_LE; f++) {
        enum cvt_format g = CVT_FLOAT_LE;
        CHECK(strcmp(cvt_name((enum cvt_format)f), names[f]) == 0);
        CHECK(cvt_bytes((enum cvt_format)f) == bytes[f]);
        CHECK(cvt_parse(names[f], &g) == 0 && g == (enum cvt_format)f);
    }
    enum cvt_format g;
    CHECK(cvt_parse("s24_3le", &g) == 0 && g == CVT_S24_3LE);
    CHECK(cvt_parse("S8", &g) == -EINVAL);
    CHECK(cvt_parse("S16_BE", &g) == -EINVAL);
    CHECK(cvt_parse("", &g) == -EINVAL);
    CHECK(cvt_parse(NULL, &g) == -EINVAL);
}

int main(void)
{
    RUN(s16_values);
    RUN(s24_values);
    RUN(s32_float_values);
    RUN(deinterleave);
    RUN(s16_matches_libsndfile);
    RUN(s24_matches_libsndfile);
    RUN(s32_matches_libsndfile);
    RUN(names_and_parse);
    return TEST_END();
}
