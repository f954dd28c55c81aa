/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_config.c — libFuzzer target for the config loader (cfg_load).
 *
 * The input is written to a file, f.conf, in a folder of its own (libconfig
 * reads files, and @include is resolved against that file's directory; the
 * folder also holds inc.conf, a few settings for an input to @include), and
 * loaded.  A valid result is copied, validated, compared and printed as the
 * summary, so every walk over the key table runs on what the parser
 * accepted.  A refusal must be one line naming the file: it starts with the
 * config's path, or with its directory (an @included file), or with "/"
 * (an @include by absolute path).  Crashes, sanitizer reports and leaks are
 * the other failures.
 *
 *   make fuzz                                  # every target, FUZZ_SECONDS each
 *   build-fuzzer/fuzz/fuzz_config -dict=tests/fuzz/config.dict \
 *       build-fuzzer/fuzz/work/config tests/fuzz/corpus/config
 *   build-fuzzer/fuzz/fuzz_config FILE...     # replay inputs (tests/fuzz/regress/config/)
 *
 * The folder is made under $TMPDIR (make fuzz points it into build-fuzzer/).
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

static char dir[512], path[600];

static void write_file(const char *p, const void *data, size_t size)
{
    FILE *f = fopen(p, "w");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        abort();
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/trident-fuzz-cfg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/f.conf", dir);
    char inc[600];
    static const char text[] = "hwm = 100;\nstdout = true;\nstats_interval = 2.5;\n";
    snprintf(inc, sizeof inc, "%s/inc.conf", dir);
    write_file(inc, text, sizeof text - 1);
}

/* The error contract: one line, naming the file. */
static void check_refusal(const char *err)
{
    size_t nd = strlen(dir);
    int named = !strncmp(err, path, strlen(path)) || err[0] == '/' ||
                (!strncmp(err, dir, nd) && err[nd] == '/');
    if (!named || strchr(err, '\n') || strchr(err, '\r') || !strchr(err, ':')) {
        fprintf(stderr, "fuzz_config: refused with \"%s\"\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        setup();
    write_file(path, data, size);

    struct cfg c = { 0 }, d;
    char err[512] = "";
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
    } else {
        check_refusal(err);
    }
    cfg_free(&c);
    return 0;
}
