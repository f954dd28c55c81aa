/* SPDX-License-Identifier: Apache-2.0 */
/* convert.h — sample-format conversion and de-interleaving into float.
 *
 * Integers become floats by dividing by 2^(bits-1) (S16: x / 32768), as
 * libsndfile does; floats pass unchanged.  S24_LE is the ALSA layout: 24 bits
 * in the low three bytes of a little-endian 32-bit word; S24_3LE is packed.
 */
#ifndef TRIDENT_CONVERT_H
#define TRIDENT_CONVERT_H

#include <stddef.h>

enum cvt_format {
    CVT_S16_LE,
    CVT_S24_LE,     /* 24 in 32, low bytes */
    CVT_S24_3LE,    /* packed 3 bytes */
    CVT_S32_LE,
    CVT_FLOAT_LE,
};

size_t      cvt_bytes(enum cvt_format f);                       /* bytes per sample */
const char *cvt_name(enum cvt_format f);                        /* "S16_LE" ... */
int         cvt_parse(const char *name, enum cvt_format *out);  /* 0 or -EINVAL */

/* De-interleave channel `ch` of `frames` interleaved frames of `channels`
 * channels from src into dst (frames floats). */
void cvt_to_float(enum cvt_format f, const void *src, unsigned channels, unsigned ch,
                  float *dst, size_t frames);

#endif
