/* SPDX-License-Identifier: Apache-2.0 */
/* test_sink.c — sink.c's queue and thread, and the results sink's files.
 *
 * A recording sink (the table of sinks_create_from) checks that what the
 * publisher hands over arrives intact, in order, on the sink's own thread;
 * a blocked one that the publisher never waits (every message beyond the
 * queue is counted dropped); the results sink that its files rotate and
 * stay within results.files + 1 of results.max_bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "sink.h"
#include "test.h"

/* ---- a recording sink ---------------------------------------------------------- */

struct rec {
    pthread_t   creator;
    bool        other_thread;  /* every callback ran off the creator's thread */
    unsigned    results, events, severities, stats;
    _Atomic unsigned delivered;  /* all kinds, for the producer to wait on */
    uint64_t    next_seq;      /* results arrive in order */
    unsigned    bad;           /* results whose content was not what was sent */
    bool        stats_ok;
    sem_t       gate;          /* blocked sink: result() waits on it */
    bool        block;
};

static struct rec *g_rec;
static bool g_block;

static int rec_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    (void)c; (void)err; (void)errlen;
    struct rec *r = calloc(1, sizeof *r);
    r->creator = pthread_self();
    r->other_thread = true;
    r->block = g_block;
    sem_init(&r->gate, 0, 0);
    g_rec = r;
    *state = r;
    return 0;
}

static void name_of(uint64_t seq, char *buf, size_t len)
{
    /* lengths 1..200: messages of many sizes, so the ring wraps unevenly */
    size_t n = 1 + seq % 200;
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (seq + i) % 26);
    buf[n] = 0;
}

static int rec_result(void *s, const struct result *res)
{
    struct rec *r = s;
    if (pthread_equal(pthread_self(), r->creator))
        r->other_thread = false;
    if (r->block && r->results == 0)
        sem_wait(&r->gate);
    char name[256];
    name_of(res->seq, name, sizeof name);
    bool ok = res->seq >= r->next_seq && !strcmp(res->stream, name) &&
              res->n_classes == 3 && res->probs && res->logits &&
              res->probs[2] == (float)res->seq && res->logits[0] == -(float)res->seq &&
              !strcmp(res->label, "inner") && res->state == NULL &&
              !strcmp(res->quality, "ok") && !strcmp(res->model, "0123456789ab") &&
              res->sample == res->seq * 1024 && res->gap == (res->seq % 7 == 0);
    r->bad += !ok;
    r->next_seq = res->seq + 1;
    r->results++;
    atomic_fetch_add(&r->delivered, 1);
    return 0;
}

static int rec_event(void *s, const struct sink_event *e)
{
    struct rec *r = s;
    r->bad += !(e->from == NULL && !strcmp(e->to, "normal") && !strcmp(e->stream, "pump") &&
                e->agree == 3 && e->windows == 5 && isnan(e->t));
    r->events++;
    atomic_fetch_add(&r->delivered, 1);
    return 0;
}

static int rec_severity(void *s, const struct sink_severity *e)
{
    struct rec *r = s;
    r->bad += !(e->zone && !strcmp(e->zone, "B") && e->has_defects &&
                e->defect_hz[2] == 162.0 && isnan(e->defect_db[3]));
    r->severities++;
    atomic_fetch_add(&r->delivered, 1);
    return 0;
}

static int rec_stats(void *s, const struct sink_stats *st, int kind)
{
    struct rec *r = s;
    r->stats_ok = kind == SINK_STATS_LIVE && st->n_streams == 2 &&
                  !strcmp(st->streams[0].stream, "pump/0") && st->streams[0].state == NULL &&
                  !strcmp(st->streams[1].state, "outer") && st->streams[1].windows == 42 &&
                  st->streams[1].latency->n == 3 && st->streams[1].latency->max == 900 &&
                  st->latency_interval->n == 0 && st->n_sinks == 1 &&
                  !strcmp(st->sinks[0].name, "x") && st->n_classes == 2 &&
                  !strcmp(st->classes[1], "fault") && !strcmp(st->model_kind, "classifier");
    r->stats++;
    atomic_fetch_add(&r->delivered, 1);
    return 0;
}

static void rec_destroy(void *s)
{
    struct rec *r = s;
    sem_destroy(&r->gate);
    /* g_rec stays readable until the test frees it */
}

static unsigned rec_queue(const struct cfg *c) { (void)c; return 16; }
static bool rec_enabled(const struct cfg *c) { (void)c; return true; }

static const struct sink_ops rec_ops = {
    .name = "rec", .async = true, .queue = rec_queue, .enabled = rec_enabled,
    .create = rec_create, .result = rec_result, .event = rec_event,
    .severity = rec_severity, .stats = rec_stats, .destroy = rec_destroy,
};
static const struct sink_ops *const rec_table[] = { &rec_ops, NULL };

static struct result make_result(uint64_t seq, char *name, float *probs, float *logits)
{
    name_of(seq, name, 256);
    probs[0] = 0.5f; probs[1] = 0.25f; probs[2] = (float)seq;
    logits[0] = -(float)seq; logits[1] = 1; logits[2] = 2;
    return (struct result){
        .stream = name, .seq = seq, .sample = seq * 1024, .t = 1e9, .cls = 1,
        .label = "inner", .state = NULL, .score = 0.5f, .probs = probs, .logits = logits,
        .n_classes = 3, .quality = "ok", .gap = seq % 7 == 0, .model = "0123456789ab",
    };
}

TEST(queued_messages_arrive_intact_in_order)
{
    struct cfg c;
    char err[256];
    sink_set *ss = NULL;
    CHECK(cfg_defaults(&c) == 0);
    g_block = false;
    CHECKF(sinks_create_from(rec_table, &c, &ss, err, sizeof err) == 0, "%s", err);
    if (!ss)
        return;
    const unsigned N = 30000;     /* about 10 MB through a 1 MiB ring: it wraps */
    for (uint64_t i = 0; i < N; i++) {
        char name[256];
        float p[3], l[3];
        struct result r = make_result(i, name, p, l);
        CHECK(sinks_result(ss, &r, NULL) == 0);
        /* in batches of 8 (the queue holds 16): nothing is dropped, however
         * slowly the sink's thread runs */
        if (i % 8 == 7)
            while (atomic_load(&g_rec->delivered) < i + 1)
                usleep(100);
    }
    struct sink_event e = { .stream = "pump", .to = "normal", .agree = 3, .windows = 5,
                            .t = NAN, .model = "0123456789ab" };
    CHECK(sinks_event(ss, &e) == 0);
    struct sink_severity sv = { .stream = "pump", .zone = "B", .has_defects = true,
                                .defect_hz = { 1, 2, 162.0, 4 },
                                .defect_db = { 1, 2, 3, NAN } };
    CHECK(sinks_severity(ss, &sv) == 0);
    struct stats_hist h, hi;
    stats_hist_reset(&h);
    stats_hist_reset(&hi);
    stats_hist_add(&h, 100);
    stats_hist_add(&h, 200);
    stats_hist_add(&h, 900);
    struct sink_stream_stats st[2] = {
        { .stream = "pump/0", .latency = &hi },
        { .stream = "pump/1", .state = "outer", .windows = 42, .latency = &h },
    };
    struct sink_account acc = { .name = "x", .queued = 1 };
    const char *classes[] = { "normal", "fault" };
    struct sink_stats snap = { .n_streams = 2, .streams = st, .latency_interval = &hi,
                               .n_sinks = 1, .sinks = &acc, .model = "0123456789ab",
                               .model_path = "/m", .model_kind = "classifier",
                               .n_classes = 2, .classes = classes };
    CHECK(sinks_stats(ss, &snap, SINK_STATS_STATE) == 0);  /* not a queued sink's kind */
    CHECK(sinks_stats(ss, &snap, SINK_STATS_LIVE) == 0);
    struct sink_account a[4];
    CHECK(sinks_accounts(ss, a, 4) == 1);
    sinks_destroy(ss);            /* drains the queue (it is small: at once) */
    struct rec *r = g_rec;
    CHECKF(r->bad == 0, "%u messages arrived changed", r->bad);
    CHECK(r->other_thread);
    CHECKF(a[0].queued + a[0].dropped == N + 3, "queued %" PRIu64 " dropped %" PRIu64,
           a[0].queued, a[0].dropped);
    CHECKF(r->results + r->events + r->severities + r->stats == a[0].queued,
           "delivered %u, queued %" PRIu64, r->results + r->events + r->severities + r->stats,
           a[0].queued);
    CHECKF(r->results == N && a[0].dropped == 0, "%u of %u results delivered", r->results, N);
    CHECK(r->events == 1 && r->severities == 1 && r->stats == 1 && r->stats_ok);
    free(r);
    cfg_free(&c);
}

TEST(blocked_sink_never_holds_the_publisher)
{
    struct cfg c;
    char err[256];
    sink_set *ss = NULL;
    CHECK(cfg_defaults(&c) == 0);
    g_block = true;
    CHECKF(sinks_create_from(rec_table, &c, &ss, err, sizeof err) == 0, "%s", err);
    if (!ss)
        return;
    /* The first result blocks the sink inside its callback; this loop must
     * still finish (it would hang here if the publisher waited). */
    const unsigned N = 5000;
    for (uint64_t i = 0; i < N; i++) {
        char name[256];
        float p[3], l[3];
        struct result r = make_result(i, name, p, l);
        sinks_result(ss, &r, NULL);
    }
    struct sink_account a;
    sinks_accounts(ss, &a, 1);
    /* at most one taken by the sink, 16 in the queue: the rest dropped */
    CHECKF(a.queued <= 17 && a.queued >= 16 && a.dropped == N - a.queued,
           "queued %" PRIu64 " dropped %" PRIu64, a.queued, a.dropped);
    sem_post(&g_rec->gate);
    sinks_destroy(ss);
    CHECKF(g_rec->results == a.queued && g_rec->bad == 0, "delivered %u of %" PRIu64 ", %u bad",
           g_rec->results, a.queued, g_rec->bad);
    free(g_rec);
    cfg_free(&c);
}

/* ---- the results sink --------------------------------------------------------------- */

static off_t file_size(const char *dir, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static const struct sink_ops *const results_table[] = { &sink_results_ops, NULL };

TEST(results_rotate_within_their_bound)
{
    char dir[] = "/tmp/trident-results-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct cfg c;
    char err[256], sub[300];
    sink_set *ss = NULL;
    CHECK(cfg_defaults(&c) == 0);
    snprintf(sub, sizeof sub, "%s/out", dir);     /* created by the sink */
    CHECK(cfg_set_string(&c.results_path, sub) == 0);
    c.results_max_bytes = 4096;
    c.results_files = 2;
    c.results_queue = 100000;
    CHECKF(sinks_create_from(results_table, &c, &ss, err, sizeof err) == 0, "%s", err);
    if (!ss)
        return;
    const unsigned N = 400;
    for (uint64_t i = 0; i < N; i++) {
        char name[256];
        float p[3], l[3];
        struct result r = make_result(i, name, p, l);
        r.stream = "pump \"A\"";          /* escaped in the topic member */
        sinks_result(ss, &r, NULL);
    }
    struct sink_account a;
    sinks_accounts(ss, &a, 1);
    sinks_destroy(ss);
    CHECKF(a.queued == N && a.dropped == 0 && a.lost == 0, "queued %" PRIu64 " dropped %"
           PRIu64 " lost %" PRIu64, a.queued, a.dropped, a.lost);
    off_t s0 = file_size(sub, "results.jsonl"), s1 = file_size(sub, "results.jsonl.1"),
          s2 = file_size(sub, "results.jsonl.2"), s3 = file_size(sub, "results.jsonl.3");
    CHECKF(s0 > 0 && s0 <= 4096 && s1 > 3000 && s1 <= 4096 && s2 > 3000 && s2 <= 4096 &&
           s3 == -1, "sizes %lld %lld %lld %lld", (long long)s0, (long long)s1,
           (long long)s2, (long long)s3);
    /* the newest result is the last line of results.jsonl, whole */
    char p[512], line[4096], last[4096] = "";
    snprintf(p, sizeof p, "%s/results.jsonl", sub);
    FILE *f = fopen(p, "r");
    unsigned lines = 0, good = 0;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        size_t n = strlen(line);
        good += !strncmp(line, "{\"topic\":\"pump \\\"A\\\"\",\"stream\":\"pump \\\"A\\\"\",", 39) &&
                n > 2 && line[n - 1] == '\n' && line[n - 2] == '}';
        snprintf(last, sizeof last, "%s", line);
    }
    if (f)
        fclose(f);
    CHECKF(lines > 0 && good == lines, "%u of %u lines well formed: %s", good, lines, line);
    char want[64];
    snprintf(want, sizeof want, "\"seq\":%u,", N - 1);
    CHECKF(strstr(last, want) != NULL, "last line: %s", last);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    cfg_free(&c);
}

TEST(results_path_unusable_names_the_key)
{
    struct cfg c;
    char err[256] = "";
    sink_set *ss = NULL;
    CHECK(cfg_defaults(&c) == 0);
    CHECK(cfg_set_string(&c.results_path, "/proc/no/such/dir") == 0);
    int rc = sinks_create_from(results_table, &c, &ss, err, sizeof err);
    CHECKF(rc < 0 && ss == NULL && strstr(err, "results.path: cannot create /proc/no/such/dir"),
           "rc %d: %s", rc, err);
    cfg_free(&c);
}

int main(void)
{
    RUN(queued_messages_arrive_intact_in_order);
    RUN(blocked_sink_never_holds_the_publisher);
    RUN(results_rotate_within_their_bound);
    RUN(results_path_unusable_names_the_key);
    return TEST_END();
}
