/* SPDX-License-Identifier: Apache-2.0 */
/* test_pipeline_gap.c — where the pipeline puts `gap` (pipeline.h, source.h).
 *
 * A loss is flagged on every window that holds the first sample written
 * after it — not on whichever window happens to be cut when the loss is
 * counted.
 * The stream's ring is filled before the pipeline starts, losses noted at
 * exact positions (stream_note_drop), so the windower sees every count at
 * its first window: the old rule ("dropped grew since the previous window")
 * flags window 0 here, the position rule flags exactly the windows that
 * span each discontinuity (with overlapping windows, all of them).  Also: the gap queue alone (coalescing, overflow),
 * and a source that only bumps `dropped` (the fallback: next window).
 * The real pipeline and publisher (stdout, captured in a file) and the
 * shipped model run it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "pipeline.h"
#include "publish.h"
#include "source.h"
#include "test.h"

#define MODEL "model/cwru.safetensors"     /* 12 kHz: no resampling at 12 kHz */
#define RATE  12000

static void write_n(struct stream *st, uint32_t n)
{
    static float buf[4096];
    while (n) {
        uint32_t k = n < 4096 ? n : 4096;
        for (uint32_t i = 0; i < k; i++)
            buf[i] = (float)((i * 7919u) % 1000) / 1000.0f - 0.5f;
        uint32_t w = ring_write(st->ring, buf, k);
        atomic_fetch_add_explicit(&st->written, w, memory_order_release);
        n -= w;
        if (w < k)
            break;
    }
}

/* Run one stream through the pipeline; fill flagged[seq] with its gap
 * flags; return the number of windows published, or -1. */
static int run(struct source *s, bool *flagged, int max)
{
    char err[512];
    net_model *m = NULL;
    pipeline *pl = NULL;
    sink_set *pub = NULL;
    struct cfg c;
    char path[] = "/tmp/trident-gap-XXXXXX";
    int fd = mkstemp(path), saved = dup(1), n = 0;

    if (fd < 0 || saved < 0 || net_load(MODEL, &m, err, sizeof err) < 0) {
        printf("# setup: %s\n", err);
        return -1;
    }
    struct pipeline_opts po = { .workers = 2 };
    if (cfg_defaults(&c) < 0)
        return -1;
    for (unsigned i = 0; i < c.n_endpoints; i++)   /* stdout only */
        free(c.endpoints[i]);
    free(c.endpoints);
    c.endpoints = NULL;
    c.n_endpoints = 0;
    c.to_stdout = true;
    c.hwm = 1000;
    if (pipeline_create(m, &po, &pl, err, sizeof err) < 0) {
        net_destroy(m);
        return -1;
    }
    if (sinks_create(&c, &pub, err, sizeof err) < 0
        || pipeline_add_source(pl, s, err, sizeof err) < 0) {
        printf("# %s\n", err);
        sinks_destroy(pub);
        pipeline_destroy(pl);
        cfg_free(&c);
        return -1;
    }
    fflush(stdout);
    dup2(fd, 1);                      /* the JSON lines go to the file */
    if (pipeline_start(pl, pub) == 0)
        pipeline_join(pl);            /* eof is set: drains and ends */
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    sinks_destroy(pub);
    pipeline_destroy(pl);
    cfg_free(&c);

    FILE *f = fdopen(fd, "r");
    char line[8192];
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        /* results only: an _events line (a state change) has a seq too */
        char *q = strstr(line, "\"label\":") ? strstr(line, "\"seq\":") : NULL;
        int seq = q ? atoi(q + 6) : -1;
        if (seq >= 0 && seq < max) {
            flagged[seq] = strstr(line, "\"gap\":true") != NULL;
            n++;
        }
    }
    fclose(f);
    unlink(path);
    return n;
}

static int make_stream(struct source *s, struct stream *st, unsigned hop)
{
    memset(s, 0, sizeof *s);
    s->streams = st;
    s->n_streams = 1;
    if (stream_init(st, "gaps", RATE, hop, 1u << 16) < 0)
        return -1;
    stream_clock_set(st, 0, 0);
    return 0;
}

TEST(gap_on_the_window_spanning_each_loss)
{
    struct source s;
    struct stream st;
    bool flagged[64] = { false };
    REQUIRE(make_stream(&s, &st, 512) == 0);
    /* Windows are [512k, 512k + 1024).  A loss before sample 2058 is inside
     * windows 3 ([1536, 2560)) and 4 ([2048, 3072)); one before 5000 inside
     * windows 8 and 9: every window holding the discontinuity says so. */
    write_n(&st, 2058);
    stream_note_drop(&st, 100);
    stream_note_drop(&st, 50);        /* same place: the same discontinuity */
    write_n(&st, 5000 - 2058);
    stream_note_drop(&st, 7);
    write_n(&st, 8192 - 5000);
    atomic_store(&st.eof, true);
    int n = run(&s, flagged, 64);
    CHECKF(n == (8192 - 1024) / 512 + 1, "%d windows", n);
    for (int k = 0; k < n; k++)
        CHECKF(flagged[k] == (k == 3 || k == 4 || k == 8 || k == 9), "window %d gap=%d", k, flagged[k]);
    CHECK(atomic_load(&st.dropped) == 157);
    stream_fini(&st);
}

TEST(gap_at_a_window_edge)
{
    struct source s;
    struct stream st;
    bool flagged[64] = { false };
    REQUIRE(make_stream(&s, &st, 1024) == 0);
    /* Lost right after window 0 ends: window 1 ([1024, 2048)) holds the
     * first sample after it; window 0 is whole. */
    write_n(&st, 1024);
    stream_note_drop(&st, 1);
    write_n(&st, 4096 - 1024);
    atomic_store(&st.eof, true);
    int n = run(&s, flagged, 64);
    CHECKF(n == 4, "%d windows", n);
    for (int k = 0; k < n; k++)
        CHECKF(flagged[k] == (k == 1), "window %d gap=%d", k, flagged[k]);
    stream_fini(&st);
}

TEST(gap_without_position_flags_next_window)
{
    struct source s;
    struct stream st;
    bool flagged[64] = { false };
    REQUIRE(make_stream(&s, &st, 1024) == 0);
    /* A source that only counts: the first window cut after the count. */
    write_n(&st, 4096);
    atomic_fetch_add(&st.dropped, 10);
    atomic_store(&st.eof, true);
    int n = run(&s, flagged, 64);
    CHECKF(n == 4, "%d windows", n);
    for (int k = 0; k < n; k++)
        CHECKF(flagged[k] == (k == 0), "window %d gap=%d", k, flagged[k]);
    stream_fini(&st);
}

TEST(gap_queue_coalesces_and_overflows)
{
    struct stream st;
    uint64_t newest = 0;
    REQUIRE(stream_init(&st, "q", RATE, 1024, 1024) == 0);
    CHECK(!stream_gap_before(&st, 1u << 30, NULL));
    for (unsigned i = 0; i < STREAM_GAPQ + 3; i++) {
        atomic_store(&st.written, (uint64_t)i * 100);
        stream_note_drop(&st, 1);
        stream_note_drop(&st, 1);     /* coalesced */
    }
    CHECK(atomic_load(&st.dropped) == 2 * (STREAM_GAPQ + 3));
    CHECK(stream_gap_before(&st, 0, NULL));             /* the overflow: the next window */
    CHECK(!stream_gap_before(&st, 0, NULL));            /* position 0 is not < 0 */
    CHECK(stream_gap_before(&st, 1, NULL));             /* pops 0 */
    CHECK(stream_gap_before(&st, 101, &newest));        /* 100 */
    CHECK(newest == 100);
    CHECK(!stream_gap_before(&st, 150, NULL));
    CHECK(stream_gap_before(&st, 1u << 30, NULL));      /* the rest */
    CHECK(!stream_gap_before(&st, 1u << 30, NULL));
    stream_fini(&st);
}

int main(void)
{
    RUN(gap_on_the_window_spanning_each_loss);
    RUN(gap_at_a_window_edge);
    RUN(gap_without_position_flags_next_window);
    RUN(gap_queue_coalesces_and_overflows);
    return TEST_END();
}
