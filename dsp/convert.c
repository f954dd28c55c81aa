/* SPDX-License-Identifier: Apache-2.0 */
/* convert.c — sample formats to float, one channel out of interleaved frames.
 *
 * Integers are divided by 2^(bits-1) like libsndfile's default float read, so
 * the live path (ALSA) and the replay path (libsndfile) hand the network the
 * same numbers: S16 and S24 convert exactly; for S32 the int is rounded to
 * float once (the power-of-two scale is exact), as libsndfile does.  Bytes are
 * assembled explicitly, so the code is correct on any host byte order and
 * never makes an unaligned access (S24_3LE frames are 3 bytes wide).
 */
#include "convert.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    size_t bytes;
} formats[] = {
    [CVT_S16_LE]   = { "S16_LE", 2 },
    [CVT_S24_LE]   = { "S24_LE", 4 },
    [CVT_S24_3LE]  = { "S24_3LE", 3 },
    [CVT_S32_LE]   = { "S32_LE", 4 },
    [CVT_FLOAT_LE] = { "FLOAT_LE", 4 },
};
#define NFORMATS (sizeof formats / sizeof formats[0])

size_t cvt_bytes(enum cvt_format f)
{
    return (unsigned)f < NFORMATS ? formats[f].bytes : 0;
}

const char *cvt_name(enum cvt_format f)
{
    return (unsigned)f < NFORMATS ? formats[f].name : "?";
}

int cvt_parse(const char *name, enum cvt_format *out)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < NFORMATS; i++)
        if (strcasecmp(name, formats[i].name) == 0) {   /* "s16_le" as well */
            *out = (enum cvt_format)i;
            return 0;
        }
    return -EINVAL;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Sign-extend the 24-bit value in the low bits of u. */
static inline int32_t sext24(uint32_t u)
{
    u &= 0xffffffu;
    return (int32_t)(u ^ 0x800000u) - 0x800000;
}

void cvt_to_float(enum cvt_format f, const void *src, unsigned channels, unsigned ch,
                  float *dst, size_t frames)
{
    const size_t stride = (size_t)channels * cvt_bytes(f);
    const uint8_t *p = (const uint8_t *)src + (size_t)ch * cvt_bytes(f);

    switch (f) {
    case CVT_S16_LE:
        for (size_t i = 0; i < frames; i++, p += stride)
            dst[i] = (float)(int16_t)(uint16_t)(p[0] | p[1] << 8) * (1.0f / 32768.0f);
        break;
    case CVT_S24_LE:   /* the top byte of the 32-bit word is padding: ignored */
        for (size_t i = 0; i < frames; i++, p += stride)
            dst[i] = (float)sext24(le32(p)) * (1.0f / 8388608.0f);
        break;
    case CVT_S24_3LE:
        for (size_t i = 0; i < frames; i++, p += stride)
            dst[i] = (float)sext24((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16) *
                     (1.0f / 8388608.0f);
        break;
    case CVT_S32_LE:
        for (size_t i = 0; i < frames; i++, p += stride)
            dst[i] = (float)(int32_t)le32(p) * (1.0f / 2147483648.0f);
        break;
    case CVT_FLOAT_LE:
        for (size_t i = 0; i < frames; i++, p += stride) {
            uint32_t u = le32(p);
            memcpy(&dst[i], &u, sizeof u);
        }
        break;
    }
}
