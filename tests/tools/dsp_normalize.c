/* SPDX-License-Identifier: Apache-2.0 */
/* dsp_normalize.c — test tool: apply norm_apply() to consecutive windows.
 *
 *   dsp_normalize KIND SIZE IN.f32 OUT.f32
 *
 * Reads raw float32 (native = little-endian here), normalises every SIZE
 * samples with dsp/normalize.c and writes the result, so that
 * tests/integration/test_normalize_parity.py can compare it with
 * model/train/net.py normalize().  A trailing partial window is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"

int main(int argc, char **argv)
{
    enum norm_kind k;
    if (argc != 5 || norm_parse(argv[1], &k) < 0 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: dsp_normalize none|zscore SIZE IN.f32 OUT.f32\n");
        return 64;
    }
    size_t n = (size_t)atoi(argv[2]);
    FILE *in = fopen(argv[3], "rb");
    if (!in) {
        fprintf(stderr, "dsp_normalize: %s: %s\n", argv[3], strerror(errno));
        return 66;
    }
    FILE *out = fopen(argv[4], "wb");
    if (!out) {
        fprintf(stderr, "dsp_normalize: %s: %s\n", argv[4], strerror(errno));
        fclose(in);
        return 73;
    }
    float *x = malloc(n * sizeof *x);
    int rc = x ? 0 : 70;
    while (!rc && fread(x, sizeof *x, n, in) == n) {
        norm_apply(k, x, x, n);
        if (fwrite(x, sizeof *x, n, out) != n)
            rc = 73;
    }
    if (fclose(out) != 0)
        rc = 73;
    fclose(in);
    free(x);
    return rc;
}
