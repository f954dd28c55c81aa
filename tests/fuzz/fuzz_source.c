/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_source.c — libFuzzer target for the file source (daemon/source_file.c).
 *
 * The input is a recording: it is written to a memfd and handed to the real
 * source_file_ops by its /proc/self/fd path, as the daemon hands it a
 * config's `path`.  Each input goes through
 *
 *   1. open() with pace = realtime, then close(): the realtime ring sizing,
 *      which follows the file's sample rate;
 *   2. open() with pace = fast (and loop = true when the input's length is
 *      odd, so that both the end of file and the seek back to its start are
 *      fuzzed), info(), start(), and the capture thread run to its end while
 *      this thread drains every stream's ring as the pipeline would; stop()
 *      once FRAME_CAP frames per channel came through (a looping file, or a
 *      few bytes of FLAC that decode to millions of frames) or WRITE_CAP
 *      ring writes, close().
 *
 * A refusal must be one line starting with the path (the daemon's error
 * contract); an accepted file must give at least one stream and one frame,
 * and every channel must deliver the same number of samples, all of them
 * read back from its ring.  Crashes, sanitizer reports, leaks and hangs are
 * the other failures.
 *
 *   make fuzz                                  # every target, FUZZ_SECONDS each
 *   build-fuzzer/fuzz/fuzz_source -max_len=65536 -timeout=25 \
 *       -dict=tests/fuzz/source.dict build-fuzzer/fuzz/work/source tests/fuzz/corpus/source
 *   build-fuzzer/fuzz/fuzz_source FILE...     # replay inputs (tests/fuzz/regress/source/)
 */
#include "source.h"

#include <errno.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Per input, at most: frames per channel, and ring writes (a looping file of
 * one frame is one write per pass): thousands of inputs a second. */
#define FRAME_CAP 8192u
#define WRITE_CAP 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

/* The error contract: "PATH: what", one line. */
static void check_refusal(int rc, const char *err)
{
    size_t n = strlen(path);
    if (rc >= 0 || strncmp(err, path, n) != 0 || strncmp(err + n, ": ", 2) != 0
        || strchr(err, '\n') || strchr(err, '\r')) {
        fprintf(stderr, "fuzz_source: open() returned %d with message \"%s\"\n", rc, err);
        abort();
    }
}

static void open_realtime(const struct cfg_stream *base)
{
    struct cfg_stream c = *base;
    c.pace = CFG_PACE_REALTIME;
    struct source s = { .ops = &source_file_ops, .cfg = &c };
    char err[512] = "";
    int rc = s.ops->open(&s, err, sizeof err);
    if (rc < 0) {
        check_refusal(rc, err);
        return;
    }
    s.ops->close(&s);
}

/* Take what the rings hold; true once every stream has ended. */
static bool drain(struct source *s, uint64_t *got)
{
    bool all_eof = true;
    for (unsigned ch = 0; ch < s->n_streams; ch++) {
        struct stream *st = &s->streams[ch];
        /* Acquire: eof seen, so every sample before it is in the ring. */
        bool eof = atomic_load_explicit(&st->eof, memory_order_acquire);
        uint32_t n = ring_read_avail(st->ring);
        ring_read_commit(st->ring, n);
        got[ch] += n;
        all_eof &= eof;
    }
    return all_eof;
}

static void replay(const struct cfg_stream *c)
{
    sem_t wake;
    if (sem_init(&wake, 0, 0))
        abort();
    struct source s = { .ops = &source_file_ops, .cfg = c, .wake = &wake };
    char err[512] = "", info[512];
    int rc = s.ops->open(&s, err, sizeof err);
    if (rc < 0) {
        check_refusal(rc, err);
        sem_destroy(&wake);
        return;
    }
    if (s.n_streams < 1 || s.frames < 1 || !s.streams)
        abort();                        /* accepted, but nothing to replay */
    s.ops->info(&s, info, sizeof info);
    if (strncmp(info, path, strlen(path)) != 0 || strchr(info, '\n'))
        abort();
    uint64_t *got = calloc(s.n_streams, sizeof *got);
    if (!got || s.ops->start(&s) < 0)
        abort();
    bool capped = false;
    unsigned wakes = 0;
    while (!drain(&s, got)) {
        if (!capped && (got[0] >= FRAME_CAP || wakes++ >= WRITE_CAP)) {
            s.ops->stop(&s);            /* sets eof on every stream */
            capped = true;
            continue;
        }
        /* The thread posts after every write and at the end. */
        while (sem_wait(&wake) < 0 && errno == EINTR)
            ;
    }
    s.ops->stop(&s);
    drain(&s, got);
    for (unsigned ch = 0; ch < s.n_streams; ch++) {
        uint64_t w = atomic_load(&s.streams[ch].written);
        if (got[ch] != w || !atomic_load(&s.streams[ch].eof))
            abort();                    /* a sample written but never readable */
        /* Stopped early, a channel may be a chunk ahead of the next. */
        if (!capped && w != got[0])
            abort();
    }
    free(got);
    s.ops->close(&s);
    sem_destroy(&wake);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_source", MFD_CLOEXEC);
        if (memfd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    }
    if (ftruncate(memfd, 0) < 0 || (size && pwrite(memfd, data, size, 0) != (ssize_t)size))
        abort();

    /* What the config gives a file stream (the file source reads no more). */
    struct cfg_stream c = { .name = "fuzz", .type = CFG_FILE, .hop = 1024, .path = path };
    open_realtime(&c);
    c.pace = CFG_PACE_FAST;
    c.loop = size & 1;
    replay(&c);
    return 0;
}
