/* SPDX-License-Identifier: Apache-2.0 */
/* replay.c — a main() for the fuzz targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named on the command line.
 *
 * make fuzz-replay links it with each tests/fuzz/fuzz_*.c in the current
 * build (e.g. BUILD=build-address SANITIZER=address: gcc's ASan+UBSan) into
 * $(BUILD)/fuzz-replay/; tests/integration/test_fuzz.sh replays every
 * regression input (tests/fuzz/regress/) with it, so they are checked even
 * where clang's libFuzzer is not installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 66;                          /* EX_NOINPUT */
        }
        size_t cap = 1 << 16, n = 0, r;
        uint8_t *buf = malloc(cap);
        while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0)
            if ((n += r) == cap) {
                uint8_t *b = realloc(buf, cap *= 2);
                if (!b)
                    free(buf);
                buf = b;
            }
        if (!buf || ferror(f)) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 74;                          /* EX_IOERR */
        }
        fclose(f);
        /* a copy of exactly n bytes, so that ASan sees a read past its end */
        uint8_t *data = malloc(n ? n : 1);
        if (!data)
            return 71;
        for (size_t k = 0; k < n; k++)
            data[k] = buf[k];
        free(buf);
        LLVMFuzzerTestOneInput(data, n);
        free(data);
        printf("replayed %s (%zu bytes)\n", argv[i], n);
    }
    return 0;
}
