/* SPDX-License-Identifier: Apache-2.0 */
/* test_alsa_source.c — the ALSA source through the real alsa-lib API, on user-space devices.
 *
 * No sound card is needed: the ALSA configuration is written at test time into
 * a temporary directory and points at alsa-lib's `file` plugin (bit-exact known
 * data) and at tests/alsa/pcm_trident_test.c, built beside this program as
 * BUILD/alsa/libasound_module_pcm_trident_test.so (BUILD is $TRIDENT_BUILD or
 * the parent of this program's directory).  A consumer thread reads the rings
 * as the pipeline would.
 *
 * The data of the paced devices is a ramp: frame k of the device timeline holds
 * (k mod 32768) - 16384 in channel 0 and its negation in channel 1, so a
 * consumer can tell exactly which frames were lost and compare with what the
 * source estimated.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>

#include "convert.h"
#include "ring.h"
#include "source.h"
#include "test.h"

#define RAMP_FRAMES 32768
#define MAX_CH      4
#define MAX_WIN     4096

static char dir[PATH_MAX];
static char path_gone[PATH_MAX + 16];
static char path_pmin[PATH_MAX + 16];     /* tregrant's period_min_file */
static char path_sloss[PATH_MAX + 16];    /* tsuspend's loss_file */
static char path_sfloss[PATH_MAX + 16];   /* tsuspendfail's loss_file */
static int16_t *filedata;                 /* the file plugin's infile */
static const unsigned file_ch = 3, file_frames = 12000;

/* ---- a source under test, and what its consumer saw ---------------------- */

struct cap {
    struct cfg_stream cfg;
    struct source     src;
    char              err[512];
    bool              opened;
    /* consumer side */
    float            *got[MAX_CH];        /* the first max_got samples of each stream */
    size_t            n_got[MAX_CH];
    size_t            max_got;
    uint64_t          consumed[MAX_CH];   /* all samples read */
    double            win_t[MAX_WIN];     /* stream 0: t of samples k*hop, read as they came */
    size_t            n_win;
    double            worst_lateness;     /* max(now - t of the newest sample), s */
    double            least_lateness;
};

static sem_t wake;
static struct cap *caps[4];
static unsigned n_caps;
static _Atomic bool consumer_run;
static pthread_mutex_t consumer_lock = PTHREAD_MUTEX_INITIALIZER;  /* caps[] and results */

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void consume(struct cap *c)
{
    static float tmp[16384];
    struct source *s = &c->src;
    for (unsigned i = 0; i < s->n_streams && i < MAX_CH; i++) {
        struct stream *st = &s->streams[i];
        uint32_t n;
        while ((n = ring_read(st->ring, tmp, sizeof tmp / sizeof tmp[0])) > 0) {
            for (uint32_t k = 0; k < n && c->n_got[i] < c->max_got; k++)
                c->got[i][c->n_got[i]++] = tmp[k];
            c->consumed[i] += n;
            if (i == 0) {
                /* What the pipeline would stamp on each window, read when it is complete. */
                for (; (c->n_win + 1) * st->hop <= c->consumed[i] && c->n_win < MAX_WIN; c->n_win++)
                    c->win_t[c->n_win] = stream_time(st, c->n_win * st->hop);
                double late = now_real() - stream_time(st, c->consumed[i] - 1);
                if (late > c->worst_lateness)
                    c->worst_lateness = late;
                if (late < c->least_lateness)
                    c->least_lateness = late;
            }
        }
    }
}

static void *consumer(void *arg)
{
    (void)arg;
    while (atomic_load(&consumer_run)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        sem_timedwait(&wake, &ts);
        pthread_mutex_lock(&consumer_lock);
        for (unsigned i = 0; i < n_caps; i++)
            consume(caps[i]);
        pthread_mutex_unlock(&consumer_lock);
    }
    return NULL;
}

static pthread_t consumer_thread;

static void consumer_start(void)
{
    atomic_store(&consumer_run, true);
    pthread_create(&consumer_thread, NULL, consumer, NULL);
}

static void consumer_stop(void)
{
    atomic_store(&consumer_run, false);
    pthread_join(consumer_thread, NULL);
    pthread_mutex_lock(&consumer_lock);
    n_caps = 0;
    pthread_mutex_unlock(&consumer_lock);
}

static void cap_init(struct cap *c, const char *name, const char *device, unsigned rate,
                     unsigned channels, const char *format, size_t max_got)
{
    memset(c, 0, sizeof *c);
    c->cfg.name = (char *)name;
    c->cfg.type = CFG_ALSA;
    c->cfg.hop = 1024;
    c->cfg.device = (char *)device;
    c->cfg.rate = rate;
    c->cfg.channels = channels;
    c->cfg.format = (char *)format;
    c->src.ops = &source_alsa_ops;
    c->src.cfg = &c->cfg;
    c->src.wake = &wake;
    c->max_got = max_got;
    c->least_lateness = 1e9;
    for (unsigned i = 0; i < MAX_CH; i++)
        c->got[i] = max_got ? calloc(max_got, sizeof(float)) : NULL;
}

static int cap_open(struct cap *c)
{
    int e = c->src.ops->open(&c->src, c->err, sizeof c->err);
    c->opened = e == 0;
    return e;
}

/* Open, register with the consumer and start. */
static int cap_run(struct cap *c, bool consumed)
{
    int e = cap_open(c);
    if (e < 0) {
        printf("# open: %s\n", c->err);
        return e;
    }
    if (consumed) {
        pthread_mutex_lock(&consumer_lock);
        caps[n_caps++] = c;
        pthread_mutex_unlock(&consumer_lock);
    }
    return c->src.ops->start(&c->src);
}

static void cap_done(struct cap *c)
{
    if (c->opened)
        c->src.ops->close(&c->src);
    for (unsigned i = 0; i < MAX_CH; i++)
        free(c->got[i]);
    c->opened = false;
}

static uint64_t ld(_Atomic uint64_t *v) { return atomic_load(v); }

/* Frame index (mod RAMP_FRAMES) carried by a ramp sample of channel 0. */
static long ramp_index(float v)
{
    long x = lrintf(v * 32768.0f) + 16384;
    return ((x % RAMP_FRAMES) + RAMP_FRAMES) % RAMP_FRAMES;
}

/* ---- the tests ----------------------------------------------------------- */

/* (a) The file plugin plays a known 3-channel S16_LE file: the rings hold
 * exactly its samples, converted as cvt_to_float says. */
TEST(file_plugin_bit_exact)
{
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "vib", "tfile", 8000, file_ch, "S16_LE", file_frames);
    consumer_start();
    int e = cap_run(c, true);
    CHECKF(e == 0, "%d", e);
    double deadline = now_mono() + 10;
    while (e == 0 && now_mono() < deadline) {
        pthread_mutex_lock(&consumer_lock);
        bool done = c->n_got[0] == file_frames && c->n_got[1] == file_frames
                    && c->n_got[2] == file_frames;
        pthread_mutex_unlock(&consumer_lock);
        if (done)
            break;
        sleep_s(0.01);
    }
    consumer_stop();
    if (e == 0) {
        REQUIRE(c->src.n_streams == file_ch);
        CHECK(!strcmp(c->src.streams[0].name, "vib/0"));
        CHECK(!strcmp(c->src.streams[2].name, "vib/2"));
        CHECK(c->src.streams[1].rate == 8000);
        float *want = malloc(file_frames * sizeof(float));
        for (unsigned ch = 0; ch < file_ch; ch++) {
            CHECKF(c->n_got[ch] == file_frames, "channel %u: %zu samples", ch, c->n_got[ch]);
            cvt_to_float(CVT_S16_LE, filedata, file_ch, ch, want, file_frames);
            size_t bad = 0, first = 0;
            for (size_t k = 0; k < c->n_got[ch]; k++)
                if (memcmp(&want[k], &c->got[ch][k], sizeof(float)) && !bad++)
                    first = k;
            CHECKF(bad == 0, "channel %u: %zu samples differ, first at %zu", ch, bad, first);
            /* and by the contract's own definition */
            CHECK(c->got[ch][0] == filedata[ch] / 32768.0f);
        }
        free(want);
        char info[512];
        c->src.ops->info(&c->src, info, sizeof info);
        printf("# %s\n", info);
        CHECK(strstr(info, "tfile") && strstr(info, "8000 Hz") && strstr(info, "period"));
    }
    cap_done(c);
    free(c);
}

/* (a') The same bytes negotiated as every other format: each sample is what
 * cvt_to_float makes of the device's bytes. */
TEST(file_plugin_formats)
{
    static const char *names[] = { "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE" };
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        enum cvt_format cf;
        REQUIRE(cvt_parse(names[f], &cf) == 0);
        const unsigned ch = 2;
        size_t frames = file_frames * file_ch * sizeof(int16_t) / (cvt_bytes(cf) * ch);
        struct cap *c = calloc(1, sizeof *c);
        cap_init(c, "fmt", "tfile", 16000, ch, names[f], frames);
        consumer_start();
        int e = cap_run(c, true);
        CHECKF(e == 0, "%s: %s", names[f], c->err);
        double deadline = now_mono() + 10;
        while (e == 0 && now_mono() < deadline) {
            pthread_mutex_lock(&consumer_lock);
            bool done = c->n_got[0] == frames && c->n_got[1] == frames;
            pthread_mutex_unlock(&consumer_lock);
            if (done)
                break;
            sleep_s(0.01);
        }
        consumer_stop();
        if (e == 0) {
            float *want = malloc(frames * sizeof(float));
            for (unsigned k = 0; k < ch; k++) {
                cvt_to_float(cf, filedata, ch, k, want, frames);
                CHECKF(c->n_got[k] == frames && !memcmp(want, c->got[k], frames * sizeof(float)),
                       "%s channel %u: %zu of %zu samples, differ", names[f], k, c->n_got[k],
                       frames);
            }
            free(want);
        }
        cap_done(c);
        free(c);
    }
}

/* (b) Paced capture: samples arrive at the device rate, each window's t
 * advances by hop/rate, t is close to the real time, nothing dropped. */
TEST(paced_capture_clock)
{
    const unsigned rate = 48000;
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "mic", "tpaced", rate, 2, "S16_LE", rate * 3);
    c->cfg.period = 480;
    c->cfg.buffer = rate / 2;   /* a loaded test machine must not overrun it */
    c->cfg.rt_priority = 5;     /* granted or refused: either way capture runs and says so */
    consumer_start();
    double t0 = now_mono();
    int e = cap_run(c, true);
    CHECKF(e == 0, "%d", e);
    if (e == 0)
        sleep_s(2.5);
    uint64_t w = e == 0 ? ld(&c->src.streams[0].written) : 0;
    double el = now_mono() - t0;
    consumer_stop();
    if (e == 0) {
        char info[512];
        c->src.ops->info(&c->src, info, sizeof info);
        printf("# %s\n", info);
        CHECK(strstr(info, "period 480") && strstr(info, "buffer 24000"));
        CHECK(strstr(info, "SCHED_FIFO 5") || strstr(info, "rt_priority 5 refused"));
        /* Arrival rate: the device rate, give or take start-up and one buffer. */
        double expect = el * rate;
        CHECKF(fabs((double)w - expect) < 0.1 * rate, "written %llu in %.3f s (expected %.0f)",
               (unsigned long long)w, el, expect);
        for (unsigned ch = 0; ch < 2; ch++) {
            CHECKF(ld(&c->src.streams[ch].dropped) == 0, "dropped %llu",
                   (unsigned long long)ld(&c->src.streams[ch].dropped));
            CHECK(ld(&c->src.streams[ch].xruns) == 0);
        }
        /* The samples are the device's frames, none missing. */
        size_t breaks = 0;
        for (size_t k = 1; k < c->n_got[0]; k++)
            if (ramp_index(c->got[0][k]) != (ramp_index(c->got[0][k - 1]) + 1) % RAMP_FRAMES)
                breaks++;
        CHECKF(breaks == 0 && c->n_got[0] > rate, "%zu breaks in %zu samples", breaks, c->n_got[0]);
        CHECK(c->n_got[1] == c->n_got[0] && c->got[1][5] == -c->got[0][5]);
        /* t advances by hop/rate per window, within a millisecond. */
        CHECKF(c->n_win > 50, "%zu windows", c->n_win);
        double worst = 0, step = 1024.0 / rate;
        for (size_t k = 1; k < c->n_win; k++)
            if (fabs(c->win_t[k] - c->win_t[k - 1] - step) > worst)
                worst = fabs(c->win_t[k] - c->win_t[k - 1] - step);
        CHECKF(worst < 0.001, "window t off by %.6f s", worst);
        /* t is Unix time of capture: before it was read, not long before. */
        printf("# newest sample read %.1f..%.1f ms after its t\n", c->least_lateness * 1e3,
               c->worst_lateness * 1e3);
        CHECKF(c->least_lateness > -0.002 && c->worst_lateness < 0.5, "lateness %.4f..%.4f s",
               c->least_lateness, c->worst_lateness);
    }
    cap_done(c);
    free(c);
}

/* (c) A forced overrun: counted, its loss estimated close to the frames the
 * device really lost, the clock re-anchored across the gap, capture goes on. */
TEST(overrun_counted)
{
    const unsigned rate = 48000;
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "xr", "txrun", rate, 2, "S16_LE", rate * 3);
    c->cfg.period = 960;
    c->cfg.buffer = 9600;
    consumer_start();
    int e = cap_run(c, true);
    CHECKF(e == 0, "%d", e);
    if (e == 0)
        sleep_s(1.3);
    consumer_stop();
    if (e == 0) {
        struct stream *st = c->src.streams;
        uint64_t dropped = ld(&st[0].dropped);
        CHECKF(ld(&st[0].xruns) == 1 && ld(&st[1].xruns) == 1, "xruns %llu",
               (unsigned long long)ld(&st[0].xruns));
        CHECK(ld(&st[1].dropped) == dropped);
        /* Where the ramp jumps, and by how much. */
        size_t gaps = 0, at = 0;
        long lost = 0;
        for (size_t k = 1; k < c->n_got[0]; k++) {
            long d = (ramp_index(c->got[0][k]) - ramp_index(c->got[0][k - 1]) - 1 + RAMP_FRAMES)
                     % RAMP_FRAMES;
            if (d) {
                gaps++;
                at = k;
                lost = d;
            }
        }
        printf("# device lost %ld frames at sample %zu; source counted %llu\n", lost, at,
               (unsigned long long)dropped);
        CHECKF(gaps == 1, "%zu gaps", gaps);
        /* The loss is recorded where it is: before the first sample after the gap. */
        CHECKF(atomic_load(&st[0].gap_head) == 1 && atomic_load(&st[0].gap_q[0]) == at,
               "gap queue: %u entries, first at %llu (gap at %zu)", atomic_load(&st[0].gap_head),
               (unsigned long long)atomic_load(&st[0].gap_q[0]), at);
        /* The device stalls for a buffer + 50 ms: about 250 ms lost. */
        CHECKF(lost > rate / 5 && lost < rate / 2, "lost %ld", lost);
        CHECKF(labs((long)dropped - lost) < (long)rate / 100, "estimate %llu vs %ld lost",
               (unsigned long long)dropped, lost);
        /* Capture went on long after the gap. */
        CHECKF(c->n_got[0] > at + rate / 2, "%zu samples, gap at %zu", c->n_got[0], at);
        /* Across the gap, t jumps by what was lost (the clock was re-anchored). */
        size_t wb = at / 1024, wa = (at + 1023) / 1024;
        if (wa < c->n_win && wb >= 1) {
            double jump = c->win_t[wa] - c->win_t[wb - 1] - (double)(wa - wb + 1) * 1024 / rate;
            CHECKF(fabs(jump - (double)lost / rate) < 0.01, "t jumped %.4f s for %.4f s lost",
                   jump, (double)lost / rate);
        }
    }
    cap_done(c);
    free(c);
}

/* (c') A device suspended as on system suspend (the test device sleeps
 * 100 ms with its pointer frozen, then says SUSPENDED): the source resumes it
 * (resume_works) or, when the device refuses, prepares and restarts it; it is
 * never reopened nor marked down; the frames of the sleep are counted as
 * lost where they were lost, and capture goes on. */
static void suspend_case(const char *device, const char *loss_path, bool resume_works)
{
    const unsigned rate = 48000;
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "su", device, rate, 2, "S16_LE", rate * 3);
    c->cfg.period = 960;
    c->cfg.buffer = 9600;
    unlink(loss_path);
    consumer_start();
    int e = cap_run(c, true);
    CHECKF(e == 0, "%d", e);
    bool ever_down = false;
    if (e == 0) {
        /* suspend at 300 ms, 100 ms asleep, then about a second of capture */
        double end = now_mono() + 1.4;
        while (now_mono() < end) {
            if (atomic_load(&c->src.streams[0].down) || atomic_load(&c->src.streams[1].down))
                ever_down = true;
            sleep_s(0.002);
        }
    }
    consumer_stop();
    if (e == 0) {
        struct stream *st = c->src.streams;
        char info[512];
        c->src.ops->info(&c->src, info, sizeof info);
        printf("# %s\n", info);
        CHECKF(strstr(info, "suspended 1") && strstr(info, "reopened 0"), "%s", info);
        CHECK(!ever_down && !atomic_load(&st[0].down) && !atomic_load(&st[1].down));
        CHECK(ld(&st[0].reopens) == 0 && ld(&st[1].reopens) == 0);
        CHECKF(ld(&st[0].xruns) == 0, "xruns %llu", (unsigned long long)ld(&st[0].xruns));
        /* What the device says it lost (exact) ... */
        long dev_lost = -1;
        FILE *f = fopen(loss_path, "r");
        if (f) {
            if (fscanf(f, "%ld", &dev_lost) != 1)
                dev_lost = -1;
            fclose(f);
        }
        /* ... what the samples show ... */
        size_t gaps = 0, at = 0;
        long lost = 0;
        for (size_t k = 1; k < c->n_got[0]; k++) {
            long d = (ramp_index(c->got[0][k]) - ramp_index(c->got[0][k - 1]) - 1 + RAMP_FRAMES)
                     % RAMP_FRAMES;
            if (d) {
                gaps++;
                at = k;
                lost = d;
            }
        }
        uint64_t dropped = ld(&st[0].dropped);
        printf("# %s: device lost %ld frames (loss_file %ld) at sample %zu; source counted %llu\n",
               resume_works ? "resumed" : "re-prepared", lost, dev_lost, at,
               (unsigned long long)dropped);
        CHECKF(gaps == 1, "%zu gaps", gaps);
        CHECKF(dev_lost == lost, "loss_file %ld, ramp %ld", dev_lost, lost);
        /* 100 ms asleep: at least that, and not much more. */
        CHECKF(lost >= (long)rate / 10 && lost < (long)rate / 4, "lost %ld", lost);
        CHECK(ld(&st[1].dropped) == dropped);
        CHECKF(labs((long)dropped - lost) < (long)rate / 100, "estimate %llu vs %ld lost",
               (unsigned long long)dropped, lost);
        /* Recorded where it is, so the window holding sample `at` is the gap
         * and the windows after it are not. */
        CHECKF(atomic_load(&st[0].gap_head) == 1 && atomic_load(&st[0].gap_q[0]) == at,
               "gap queue: %u entries, first at %llu (gap at %zu)", atomic_load(&st[0].gap_head),
               (unsigned long long)atomic_load(&st[0].gap_q[0]), at);
        CHECK(!stream_gap_before(&st[0], at, NULL));
        CHECK(stream_gap_before(&st[0], at + 1, NULL));
        CHECK(!stream_gap_before(&st[0], at + 100000, NULL));
        /* Capture went on. */
        CHECKF(c->n_got[0] > at + rate / 2, "%zu samples, gap at %zu", c->n_got[0], at);
    }
    cap_done(c);
    free(c);
}

TEST(suspend_resumed)
{
    suspend_case("tsuspend", path_sloss, true);
}

TEST(suspend_reprepared)
{
    suspend_case("tsuspendfail", path_sfloss, false);
}

/* (d) A device that refuses the configured format or rate: open fails and says
 * which device, what was asked and what it offers. */
TEST(refused_parameters)
{
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "n", "tnarrow", 44100, 1, "S32_LE", 0);
    int e = cap_open(c);
    printf("# %s\n", c->err);
    CHECK(e < 0 && c->src.priv == NULL);
    CHECK(strstr(c->err, "tnarrow") != NULL);
    CHECK(strstr(c->err, "S32_LE") != NULL && strstr(c->err, "S16_LE") != NULL);
    CHECK(strstr(c->err, "44100") != NULL);
    CHECK(strstr(c->err, "8000") != NULL && strstr(c->err, "48000") != NULL);
    cap_done(c);

    cap_init(c, "n", "tnarrow", 16000, 1, "S16_LE", 0);
    e = cap_open(c);
    printf("# %s\n", c->err);
    CHECK(e < 0);
    CHECK(strstr(c->err, "tnarrow") && strstr(c->err, "16000") && strstr(c->err, "8000"));
    CHECK(strstr(c->err, "format") == NULL);
    cap_done(c);

    cap_init(c, "n", "tnarrow", 8000, 2, "S16_LE", 0);
    e = cap_open(c);
    printf("# %s\n", c->err);
    CHECK(e < 0 && strstr(c->err, "2 channels") && strstr(c->err, "1..1"));
    cap_done(c);

    cap_init(c, "n", "tnarrow", 8000, 1, "S16_LE", 0);
    e = cap_open(c);
    CHECKF(e == 0, "%s", c->err);
    cap_done(c);

    cap_init(c, "n", "tnarrow", 8000, 1, "U8", 0);
    e = cap_open(c);
    printf("# %s\n", c->err);
    CHECK(e < 0 && strstr(c->err, "U8"));
    cap_done(c);

    cap_init(c, "n", "no_such_device_here", 8000, 1, "S16_LE", 0);
    e = cap_open(c);
    printf("# %s\n", c->err);
    CHECK(e < 0 && strstr(c->err, "no_such_device_here") && strstr(c->err, "Unknown PCM"));
    cap_done(c);
    free(c);
}

/* (d') period and buffer 0: the source asks for 20 ms periods and a buffer
 * of 4 periods or half a second, whichever is longer, and the documentation
 * (the key table, hence trident.conf and --help) says so. */
TEST(default_period_buffer)
{
    static const struct { unsigned rate, period, want_p, want_b; } cases[] = {
        { 48000, 0, 960, 24000 },       /* 20 ms; 0.5 s > 4 periods */
        { 48000, 8000, 8000, 32000 },   /* 4 periods > 0.5 s */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cap *c = calloc(1, sizeof *c);
        cap_init(c, "d", "tpaced", cases[i].rate, 2, "S16_LE", 0);
        c->cfg.period = cases[i].period;
        c->cfg.buffer = 0;
        int e = cap_open(c);
        CHECKF(e == 0, "%s", c->err);
        if (e == 0) {
            char info[512], want[64];
            c->src.ops->info(&c->src, info, sizeof info);
            printf("# %s\n", info);
            snprintf(want, sizeof want, "period %u, buffer %u frames", cases[i].want_p,
                     cases[i].want_b);
            CHECKF(strstr(info, want), "want \"%s\" in: %s", want, info);
        }
        cap_done(c);
        free(c);
    }
    char *doc = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&doc, &len);
    REQUIRE(m);
    cfg_write_example(m);
    fclose(m);
    const char *p = strstr(doc, "#   period ("), *b = strstr(doc, "#   buffer (");
    CHECKF(p && b && b > p, "period and buffer not documented in cfg_write_example()");
    if (p && b && b > p) {
        /* up to the next key line ("#   key (...)"; its text is indented further) */
        const char *end = b + 1;
        while ((end = strstr(end, "\n#   ")) && end[5] == ' ')
            end++;
        size_t pl = (size_t)(b - p), bl = end ? (size_t)(end - b) : strlen(b);
        char *pd = strndup(p, pl), *bd = strndup(b, bl);
        CHECKF(strstr(pd, "20 ms") && strstr(pd, "rate / 50") && !strstr(pd, "device choose"),
               "period's documentation: %s", pd);
        CHECKF(strstr(bd, "4 periods") && strstr(bd, "rate / 2") && !strstr(bd, "device choose"),
               "buffer's documentation: %s", bd);
        free(pd);
        free(bd);
    }
    free(doc);
}

/* (e) Unplugged mid-run, then back: `down` goes up and down again, capture
 * resumes with the loss counted, and another source never stops. */
TEST(unplug_replug)
{
    const unsigned rate = 48000;
    struct cap *u = calloc(1, sizeof *u), *o = calloc(1, sizeof *o);
    cap_init(u, "u", "tunplug", rate, 2, "S16_LE", 0);
    cap_init(o, "o", "tother", rate, 2, "S16_LE", 0);
    consumer_start();
    int e1 = cap_run(u, true), e2 = cap_run(o, true);
    CHECK(e1 == 0 && e2 == 0);
    if (e1 == 0 && e2 == 0) {
        sleep_s(0.4);
        CHECK(ld(&u->src.streams[0].written) > 0);
        FILE *f = fopen(path_gone, "w");
        REQUIRE(f);
        fclose(f);
        double deadline = now_mono() + 2;
        while (!atomic_load(&u->src.streams[1].down) && now_mono() < deadline)
            sleep_s(0.005);
        CHECK(atomic_load(&u->src.streams[0].down) && atomic_load(&u->src.streams[1].down));
        uint64_t uw = ld(&u->src.streams[0].written), ow = ld(&o->src.streams[0].written);
        sleep_s(0.5);
        /* Unplugged: nothing from it; the other source goes on at its rate. */
        CHECK(ld(&u->src.streams[0].written) == uw);
        uint64_t ow2 = ld(&o->src.streams[0].written);
        CHECKF(ow2 - ow > rate / 4, "other source wrote %llu in 0.5 s",
               (unsigned long long)(ow2 - ow));
        CHECK(!atomic_load(&o->src.streams[0].down));
        unlink(path_gone);
        deadline = now_mono() + 3;
        while (atomic_load(&u->src.streams[0].down) && now_mono() < deadline)
            sleep_s(0.005);
        CHECK(!atomic_load(&u->src.streams[0].down) && !atomic_load(&u->src.streams[1].down));
        sleep_s(0.3);
        CHECKF(ld(&u->src.streams[0].written) > uw + rate / 10, "resumed: %llu -> %llu",
               (unsigned long long)uw, (unsigned long long)ld(&u->src.streams[0].written));
        /* The time it was away is counted as lost, at least the 0.5 s we waited. */
        uint64_t d = ld(&u->src.streams[0].dropped);
        CHECKF(d > rate / 2 && d < rate * 4, "dropped %llu", (unsigned long long)d);
        CHECK(ld(&u->src.streams[1].dropped) == d);
        CHECK(ld(&o->src.streams[0].dropped) == 0 && ld(&o->src.streams[0].xruns) == 0);
        char info[512];
        u->src.ops->info(&u->src, info, sizeof info);
        printf("# %s\n", info);
        CHECK(strstr(info, "reopened 1"));
        CHECK(ld(&u->src.streams[0].reopens) == 1 && ld(&u->src.streams[1].reopens) == 1);
        CHECK(ld(&o->src.streams[0].reopens) == 0);
    }
    consumer_stop();
    unlink(path_gone);
    cap_done(u);
    cap_done(o);
    free(u);
    free(o);
}

/* (e') A device that grants another period and buffer when it comes back:
 * the source uses (and reports) what the reopened device granted, and the
 * samples go on without a break but the one gap. */
TEST(reopen_new_period)
{
    const unsigned rate = 48000;
    struct cap *u = calloc(1, sizeof *u);
    cap_init(u, "r", "tregrant", rate, 2, "S16_LE", (size_t)rate * 3);
    unlink(path_pmin);
    consumer_start();
    int e = cap_run(u, true);
    CHECKF(e == 0, "%s", u->err);
    if (e == 0) {
        char info[512];
        unsigned long p0 = 0, b0 = 0, p1 = 0, b1 = 0;
        u->src.ops->info(&u->src, info, sizeof info);
        printf("# before: %s\n", info);
        const char *at = strstr(info, "period ");
        CHECK(at && sscanf(at, "period %lu, buffer %lu", &p0, &b0) == 2);
        sleep_s(0.3);
        FILE *f = fopen(path_gone, "w");
        REQUIRE(f);
        fclose(f);
        f = fopen(path_pmin, "w");     /* when it comes back: periods of >= 8192 frames */
        REQUIRE(f);
        fprintf(f, "%u\n", 8192 * 2 * 2);
        fclose(f);
        double deadline = now_mono() + 2;
        while (!atomic_load(&u->src.streams[0].down) && now_mono() < deadline)
            sleep_s(0.005);
        CHECK(atomic_load(&u->src.streams[0].down));
        sleep_s(0.2);
        unlink(path_gone);
        deadline = now_mono() + 3;
        while (atomic_load(&u->src.streams[0].down) && now_mono() < deadline)
            sleep_s(0.005);
        CHECK(!atomic_load(&u->src.streams[0].down));
        uint64_t w = ld(&u->src.streams[0].written);
        sleep_s(0.6);
        CHECKF(ld(&u->src.streams[0].written) > w + rate / 4, "resumed: %llu -> %llu",
               (unsigned long long)w, (unsigned long long)ld(&u->src.streams[0].written));
        u->src.ops->info(&u->src, info, sizeof info);
        printf("# after: %s\n", info);
        at = strstr(info, "period ");
        CHECK(at && sscanf(at, "period %lu, buffer %lu", &p1, &b1) == 2);
        CHECKF(p0 < 8192 && p1 >= 8192 && b1 >= 2 * p1, "period %lu -> %lu, buffer %lu -> %lu",
               p0, p1, b0, b1);
        CHECK(strstr(info, "reopened 1"));
    }
    consumer_stop();
    if (e == 0) {
        /* The ramp runs on, frame by frame, but for one jump: the time away. */
        unsigned jumps = 0;
        for (size_t k = 1; k < u->n_got[0]; k++)
            if (ramp_index(u->got[0][k]) != (ramp_index(u->got[0][k - 1]) + 1) % RAMP_FRAMES)
                jumps++;
        CHECKF(jumps == 1 && u->n_got[0] > rate / 2, "%u jumps in %zu samples", jumps, u->n_got[0]);
    }
    unlink(path_gone);
    unlink(path_pmin);
    cap_done(u);
    free(u);
}

/* (f) Nobody reads: the rings fill, the capture thread drops and counts, memory
 * stays what open() allocated, and reading again resumes with a clean count. */
TEST(stalled_consumer)
{
    struct cap *c = calloc(1, sizeof *c);
    cap_init(c, "s", "tfast", 8000, 2, "S16_LE", 0);
    int e = cap_run(c, false);
    CHECKF(e == 0, "%d", e);
    if (e == 0) {
        struct stream *st = c->src.streams;
        uint32_t cap = ring_capacity(st[0].ring);
        double deadline = now_mono() + 3;
        while (ld(&st[0].dropped) == 0 && now_mono() < deadline)
            sleep_s(0.01);
        uint64_t d1 = ld(&st[0].dropped);
        sleep_s(0.1);
        uint64_t d2 = ld(&st[0].dropped);
        CHECKF(d1 > 0 && d2 > d1, "dropped %llu then %llu", (unsigned long long)d1,
               (unsigned long long)d2);
        for (unsigned ch = 0; ch < 2; ch++) {
            CHECK(ring_valid(st[ch].ring));
            CHECK(ring_capacity(st[ch].ring) == cap);
            CHECKF(ld(&st[ch].written) <= cap, "written %llu > capacity %u",
                   (unsigned long long)ld(&st[ch].written), cap);
            CHECK(ring_read_avail(st[ch].ring) == ld(&st[ch].written));
        }
        /* A consumer that catches up gets data again. */
        uint64_t w = ld(&st[0].written);
        ring_read_commit(st[0].ring, ring_read_avail(st[0].ring));
        deadline = now_mono() + 3;
        while (ld(&st[0].written) == w && now_mono() < deadline)
            sleep_s(0.01);
        CHECK(ld(&st[0].written) > w);
    }
    cap_done(c);
    free(c);
}

/* ---- fixtures ------------------------------------------------------------ */

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

static int setup(const char *argv0)
{
    /* The plugin is part of this build: $TRIDENT_BUILD, else beside tests/. */
    char build[PATH_MAX], plugin[PATH_MAX + 64], rel[PATH_MAX + 64];
    const char *b = getenv("TRIDENT_BUILD");
    if (b && *b) {
        snprintf(build, sizeof build, "%s", b);
    } else {
        snprintf(build, sizeof build, "%s", argv0);
        char *slash = strrchr(build, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(build, ".");
        strcat(build, "/..");
    }
    snprintf(rel, sizeof rel, "%s/alsa/libasound_module_pcm_trident_test.so", build);
    if (!realpath(rel, plugin)) {
        printf("# %s: %s (build it with make)\n", rel, strerror(errno));
        return -1;
    }

    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/trident-alsa-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path_gone, sizeof path_gone, "%s/gone", dir);
    snprintf(path_pmin, sizeof path_pmin, "%s/pmin", dir);
    snprintf(path_sloss, sizeof path_sloss, "%s/sloss", dir);
    snprintf(path_sfloss, sizeof path_sfloss, "%s/sfloss", dir);

    /* A known 3-channel file with full-scale extremes, for the file plugin. */
    filedata = malloc(file_frames * file_ch * sizeof(int16_t));
    uint32_t x = 12345;
    for (unsigned i = 0; i < file_frames * file_ch; i++) {
        x = x * 1664525u + 1013904223u;
        filedata[i] = (int16_t)(x >> 16);
    }
    filedata[0] = -32768;
    filedata[1] = 32767;
    /* The ramp for the paced devices. */
    int16_t *ramp = malloc(RAMP_FRAMES * 2 * sizeof(int16_t));
    for (int k = 0; k < RAMP_FRAMES; k++) {
        ramp[2 * k] = (int16_t)(k - 16384);
        ramp[2 * k + 1] = (int16_t)(16384 - k);
    }
    char p_file[PATH_MAX + 16], p_ramp[PATH_MAX + 16], p_conf[PATH_MAX + 16];
    snprintf(p_file, sizeof p_file, "%s/in.raw", dir);
    snprintf(p_ramp, sizeof p_ramp, "%s/ramp.raw", dir);
    snprintf(p_conf, sizeof p_conf, "%s/test.conf", dir);
    /* The file plugin keeps "reading" past the end: give it more than the test reads. */
    size_t flen = file_frames * file_ch * sizeof(int16_t);
    int r = write_file(p_file, filedata, flen)
            | write_file(p_ramp, ramp, RAMP_FRAMES * 2 * sizeof(int16_t));
    free(ramp);
    if (r)
        return -1;

    FILE *f = fopen(p_conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "pcm_type.trident_test { lib \"%s\" }\n"
            "pcm.tfile { type file slave { pcm { type null } } file \"/dev/null\" infile \"%s\" }\n"
            "pcm.tpaced { type trident_test file \"%s\" channels 2 rates 48000 formats S16_LE }\n"
            "pcm.txrun { type trident_test file \"%s\" channels 2 xrun_at \"300ms\" }\n"
            "pcm.tnarrow { type trident_test rates \"8000,48000\" formats \"S16_LE\" channels 1 }\n"
            "pcm.tunplug { type trident_test file \"%s\" channels 2 unplug_file \"%s\" }\n"
            "pcm.tother { type trident_test file \"%s\" channels 2 }\n"
            "pcm.tfast { type trident_test file \"%s\" channels 2 paced no }\n"
            "pcm.tregrant { type trident_test file \"%s\" channels 2 unplug_file \"%s\" "
            "period_min_file \"%s\" }\n"
            "pcm.tsuspend { type trident_test file \"%s\" channels 2 suspend_at \"300ms\" "
            "suspend_ms 100 loss_file \"%s\" }\n"
            "pcm.tsuspendfail { type trident_test file \"%s\" channels 2 suspend_at \"300ms\" "
            "suspend_ms 100 resume_fails yes loss_file \"%s\" }\n",
            plugin, p_file, p_ramp, p_ramp, p_ramp, path_gone, p_ramp, p_ramp,
            p_ramp, path_gone, path_pmin, p_ramp, path_sloss, p_ramp, path_sfloss);
    if (fclose(f))
        return -1;
    char env[2 * PATH_MAX];
    snprintf(env, sizeof env, "%s/alsa.conf:%s", snd_config_topdir(), p_conf);
    setenv("ALSA_CONFIG_PATH", env, 1);
    sem_init(&wake, 0, 0);
    return 0;
}

static void teardown(void)
{
    const char *names[] = { "in.raw", "ramp.raw", "test.conf", "gone", "pmin", "sloss", "sfloss" };
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    free(filedata);
    sem_destroy(&wake);
    snd_config_update_free_global();
}

int main(int argc, char **argv)
{
    (void)argc;
    if (setup(argv[0]) < 0) {
        printf("not ok - setup\n");
        return 1;
    }
    RUN(file_plugin_bit_exact);
    RUN(file_plugin_formats);
    RUN(paced_capture_clock);
    RUN(overrun_counted);
    RUN(suspend_resumed);
    RUN(suspend_reprepared);
    RUN(refused_parameters);
    RUN(default_period_buffer);
    RUN(unplug_replug);
    RUN(reopen_new_period);
    RUN(stalled_consumer);
    teardown();
    return TEST_END();
}
