/* fuzz_config.c — libFuzzer target for the config loader (cfg_load).
 *
 * The input is written to a file (libconfig reads files, and @include is
 * resolved against that file's directory) and loaded; a valid result is
 * copied, validated, compared and printed as the summary, so every walk over
 * the key table runs on what the parser accepted.  Crashes, sanitizer reports
 * and leaks are the failures.  Build by hand (or by a `make fuzz` rule):
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iconfig \
 *     -DTRIDENT_DATADIR='"/x"' -DTRIDENT_SYSCONFDIR='"/etc"' \
 *     tests/fuzz/fuzz_config.c config/config.c -lconfig -o fuzz_config
 *   ./fuzz_config -dict=tests/fuzz/config.dict config/
 * libconfig 1.5 itself leaks on some malformed input (TESTING.md): run with
 * LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        char dir[] = "/tmp/trident-fuzz-cfg-XXXXXX";
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/f.conf", dir);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);

    struct cfg c = { 0 }, d;
    char err[512];
    if (cfg_load(path, &c, err, sizeof err) == 0) {
        if (cfg_copy(&d, &c) == 0) {
            if (cfg_validate(&d, err, sizeof err) != 0)
                abort();                       /* cfg_load accepted what validate refuses */
            for (unsigned i = 0; i < c.n_streams; i++)
                if (!cfg_stream_equal(&c.streams[i], &d.streams[i]))
                    abort();
            cfg_free(&d);
        }
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            cfg_print_summary(&c, null);
            fclose(null);
        }
    } else if (!memchr(err, ':', strlen(err))) {
        abort();                               /* every error names its file */
    }
    cfg_free(&c);
    return 0;
}
