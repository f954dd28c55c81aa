/* SPDX-License-Identifier: Apache-2.0 */
/* sha256.h — SHA-256 (FIPS 180-4), for the model file's digest.
 *
 * A small streaming implementation so the loader can hash the mapped file
 * without another dependency; tests/unit/test_net.c checks it against the
 * standard test vectors and Python's hashlib.
 */
#ifndef TRIDENT_SHA256_H
#define TRIDENT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;            /* bytes hashed so far */
    unsigned char buf[64];   /* partial block */
    size_t   nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, unsigned char out[SHA256_BYTES]);

/* One-shot helpers.  hex must hold 2 * SHA256_BYTES + 1 characters. */
void sha256(const void *data, size_t n, unsigned char out[SHA256_BYTES]);
void sha256_hex(const unsigned char d[SHA256_BYTES], char *hex);

#endif
