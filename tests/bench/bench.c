/* SPDX-License-Identifier: Apache-2.0 */
/* bench.c — trident's network engine against the machine's FMA peak.
 *
 *   bench [-r REPEATS] [-t SECONDS] [-i IMPL] [-w THREADS] MODEL
 *
 * Measures, in one run and interleaved so that load from other processes
 * spreads over all of them: the FP32 FMA peak of one core and of all cores
 * (a probe with enough independent accumulators to hide the FMA latency),
 * and windows/s of every forward implementation this CPU runs (ref,
 * generic, avx2, avx512), on one thread and on one thread per online CPU,
 * each thread with its own scratch as the daemon's workers have (-i: only
 * that implementation, "auto" for the one net_load() picks).  Each is
 * measured REPEATS times (default 7) for SECONDS (default 0.3).  -w: only
 * the engine on THREADS threads at once, no FMA probe (run.sh's baseline
 * for the daemon, measured right before and after each replay).  It prints
 * the median, minimum and maximum as lines tests/bench/run.sh reads:
 *
 *   cpus N
 *   flop_per_window F          (the network, direct convolutions)
 *   flop_per_window_fast F     (what the fast paths execute)
 *   peak THREADS GFLOPS_MEDIAN MIN MAX CPU_MEDIAN
 *   engine IMPL THREADS WINDOWS_PER_S_MEDIAN MIN MAX CPU_MEDIAN
 *   stage NAME 1 WINDOWS_PER_S_MEDIAN MIN MAX CPU_MEDIAN
 *
 * The stages are the per-window work besides the network (health: the raw
 * window's rms/peak/crest/kurtosis; detector: the spectral features and
 * the detector's score, when the model has a detector), on one thread;
 * severity: a window's 1024 samples into severity = { ... }'s velocity
 * estimate (the block's decimation and 4096-point FFT once every 16
 * windows, amortised); bearing: the same with the defect frequencies on
 * (severity.rpm ...: the envelope path too);
 * record: what record = { ... } adds to every window, its 1024 samples
 * pushed by the capture thread (rec_push) and written by the recorder's
 * writer thread into rotating float WAV files in a temporary directory
 * (removed after), RECORD_WINDOWS windows per measure, timed until the
 * writer has closed the last file; its CPU_MEDIAN counts the whole
 * process's CPU time (both threads).
 *
 * Rates are per second of wall clock (what a user gets on this machine at
 * this moment); CPU_MEDIAN is the same per second of the threads' own CPU
 * time (CLOCK_THREAD_CPUTIME_ID), which leaves out the time other processes
 * held the cores but not what they did to the caches.
 *
 * Not a test: nothing here is checked (tests/unit/test_net_fast.c is).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

#include "config.h"
#include "net.h"
#include "record.h"
#include "severity.h"
#include "source.h"
#include "winfeat.h"

#define MAX_REPEATS 64
#define MAX_THREADS 256

static double clock_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

/* ---- FMA peak probe ------------------------------------------------------
 * 12 independent accumulator chains: enough for two FMA pipes of latency 4
 * (8 in flight) on every current x86 core.  Returns GFLOP/s (2 per lane). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PROBE_BODY(T, FMA, SET1, LANES)                                        \
    T m = SET1(0.999999f), c = SET1(1e-7f);                                   \
    T a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4),   \
      a5 = SET1(5), a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9),   \
      a10 = SET1(10), a11 = SET1(11);                                         \
    double t0 = now();                                                        \
    for (long i = 0; i < iters; i++) {                                        \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c);           \
        a3 = FMA(a3, m, c); a4 = FMA(a4, m, c); a5 = FMA(a5, m, c);           \
        a6 = FMA(a6, m, c); a7 = FMA(a7, m, c); a8 = FMA(a8, m, c);           \
        a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);       \
    }                                                                         \
    double t = now() - t0;                                                    \
    T s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;       \
    float sink[LANES];                                                        \
    memcpy(sink, &s, sizeof sink);                                            \
    if (sink[0] == 1234.5f) /* keeps the sums live */                        \
        fputc(' ', stderr);                                                   \
    return iters * 12.0 * LANES * 2 / t / 1e9;

__attribute__((target("avx512f"))) static double probe_avx512(long iters)
{
    PROBE_BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps, 16)
}
__attribute__((target("avx2,fma"))) static double probe_avx2(long iters)
{
    PROBE_BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps, 8)
}
static double probe(long iters)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return probe_avx512(iters);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return probe_avx2(iters);
    return 0;                                       /* unknown: no peak printed */
}
#else
static double probe(long iters) { (void)iters; return 0; }
#endif

/* ---- threads ------------------------------------------------------------- */
struct job {
    pthread_t th;
    const net_model *m;             /* NULL: run the FMA probe */
    int stage;                      /* 0: the network; else a stage below */
    double seconds;
    pthread_barrier_t *start;
    double rate;                    /* windows/s or GFLOP/s */
    double cpu_rate;                /* the same per second of CPU time */
};

static float windows[64][NET_WIN];

/* ---- per-window stages besides the network --------------------------------
 * What the pipeline's classify() does to every window before or beside the
 * forward pass (daemon/pipeline.c), each measured alone on one thread so
 * that table.py can print it as a share of the network's time. */
enum { STAGE_NET, STAGE_HEALTH, STAGE_DETECTOR, STAGE_SEVERITY, STAGE_BEARING, STAGE_RECORD,
       NSTAGES };
static const char *const stage_name[NSTAGES] = { "net", "health", "detector", "severity",
                                                 "bearing", "record" };
static severity *sev_bench;         /* the severity stage's, at 12 kHz, 1-s blocks */
static severity *sev_bearing_bench; /* the bearing stage's: the same, a 6205 at 1797 rpm */
#define RECORD_WINDOWS 20000

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX + 300];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* The record stage: windows/s through a real recorder (see the top). */
static void run_record(struct job *j)
{
    char dir[] = "/tmp/trident-bench-rec-XXXXXX", err[256];
    struct cfg_stream c;
    struct stream st;
    struct source src = { .streams = &st, .n_streams = 1, .cfg = &c };
    recorder *r = NULL;
    memset(&st, 0, sizeof st);
    memset(&c, 0, sizeof c);
    j->rate = j->cpu_rate = -1;
    if (!mkdtemp(dir) || cfg_stream_defaults(&c, CFG_FILE) < 0)
        return;
    c.pace = CFG_PACE_FAST;         /* rec_push waits for the writer: nothing lost */
    c.record_path = strdup(dir);
    c.path = strdup("bench");
    if (!c.record_path || !c.path || stream_init(&st, "bench", 12000, NET_WIN, 1u << 12) < 0
        || recorder_create(&r, err, sizeof err) < 0 || recorder_attach(r, &src, err, sizeof err) < 0) {
        fprintf(stderr, "bench: record stage: %s\n", err);
        goto out;
    }
    struct timespec c0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double t0 = now();
    for (long n = 0; n < RECORD_WINDOWS; n++) {
        struct ring_vec v = { { windows[n & 63], NULL }, { NET_WIN, 0 } };
        rec_push(st.rec, &v, NET_WIN);
    }
    recorder_detach(r, &src);       /* the writer drains and closes */
    double t = now() - t0;
    struct timespec c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
    j->rate = RECORD_WINDOWS / t;
    j->cpu_rate = RECORD_WINDOWS / cpu;
out:
    recorder_destroy(r);
    if (st.ring)
        stream_fini(&st);
    cfg_stream_free(&c);
    rm_dir(dir);
}

static double stage_sink;                           /* keeps results live */

static void run_stage(const net_model *m, int stage, const float *x)
{
    if (stage == STAGE_HEALTH) {
        struct feat_health h;
        feat_health(x, NET_WIN, 0, 32768, &h);
        stage_sink += h.kurtosis;
    } else if (stage == STAGE_SEVERITY || stage == STAGE_BEARING) {
        /* a window's worth of samples into the velocity estimate (its
         * block FFT once per 16 windows, amortised) */
        double v = 0;
        unsigned long long end;
        severity *sv = stage == STAGE_SEVERITY ? sev_bench : sev_bearing_bench;
        for (size_t j = 0; j < NET_WIN;) {
            bool done;
            j += sev_feed(sv, x + j, NET_WIN - j, &done, &v, &end);
            if (done)
                stage_sink += v;
        }
    } else {                                        /* STAGE_DETECTOR */
        double f[FEAT_MAX_DIM];
        feat_spectral(x, net_detector_bands(m), net_detector_level(m), f);
        stage_sink += net_detector_score(m, f);
    }
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    pthread_barrier_wait(j->start);
    if (!j->m) {
        /* calibrate iterations to about the requested time */
        long iters = 1 << 16;
        double t0 = now();
        probe(iters);
        double t = now() - t0;
        iters = (long)(iters * j->seconds / (t > 1e-6 ? t : 1e-6));
        if (iters < 1)
            iters = 1;
        double w0 = now(), c0 = cpu_now();
        j->rate = probe(iters);
        j->cpu_rate = j->rate * (now() - w0) / (cpu_now() - c0);
        return NULL;
    }
    if (j->stage == STAGE_RECORD) {
        run_record(j);
        return NULL;
    }
    if (j->stage) {
        run_stage(j->m, j->stage, windows[0]);      /* warm */
        long n = 0;
        double t0 = now(), c0 = cpu_now(), t;
        do {
            run_stage(j->m, j->stage, windows[n & 63]);
            n++;
        } while ((t = now() - t0) < j->seconds);
        j->cpu_rate = n / (cpu_now() - c0);
        j->rate = n / t;
        return NULL;
    }
    net_scratch *s = net_scratch_create(j->m);
    if (!s) {
        j->rate = -1;
        return NULL;
    }
    float logits[NET_MAX_CLASSES];
    net_forward(j->m, s, windows[0], logits);       /* warm: caches, page faults */
    long n = 0;
    double t0 = now(), c0 = cpu_now(), t;
    do {
        net_forward(j->m, s, windows[n & 63], logits);
        n++;
    } while ((t = now() - t0) < j->seconds);
    j->cpu_rate = n / (cpu_now() - c0);
    j->rate = n / t;
    net_scratch_destroy(s);
    return NULL;
}

/* Runs `threads` jobs at once; returns the sum of their rates (and of their
 * CPU-time rates in *cpu). */
static double measure(const net_model *m, int stage, int threads, double seconds, double *cpu)
{
    struct job jobs[MAX_THREADS];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, threads);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){ .m = m, .stage = stage, .seconds = seconds, .start = &b };
        if (pthread_create(&jobs[i].th, NULL, run_job, &jobs[i])) {
            fprintf(stderr, "bench: pthread_create failed\n");
            exit(1);
        }
    }
    double sum = 0;
    *cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(jobs[i].th, NULL);
        sum += jobs[i].rate;
        *cpu += jobs[i].cpu_rate;
    }
    pthread_barrier_destroy(&b);
    return sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its median. */
static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct series {
    char what[16];
    int threads, stage;
    const net_model *m;
    double v[MAX_REPEATS], cpu[MAX_REPEATS];
};

int main(int argc, char **argv)
{
    int repeats = 7;
    double seconds = 0.3;
    const char *only = NULL;
    int only_threads = 0, opt;
    while ((opt = getopt(argc, argv, "r:t:i:w:")) != -1) {
        if (opt == 'r')
            repeats = atoi(optarg);
        else if (opt == 't')
            seconds = atof(optarg);
        else if (opt == 'i')
            only = optarg;
        else if (opt == 'w')
            only_threads = atoi(optarg);
        else
            goto usage;
    }
    if (optind != argc - 1 || repeats < 1 || repeats > MAX_REPEATS || seconds <= 0
        || only_threads < 0 || only_threads > MAX_THREADS)
        goto usage;
    const char *path = argv[optind];
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (cpus > MAX_THREADS)
        cpus = MAX_THREADS;

    unsigned r = 12345;
    for (int w = 0; w < 64; w++)
        for (int i = 0; i < NET_WIN; i++)
            windows[w][i] = (float)((r = r * 1103515245 + 12345) >> 8) / (1 << 24) - 0.5f;

    /* every implementation this CPU runs */
    static const char *const all[] = { "ref", "generic", "avx2", "avx512" };
    const char *const *names = only ? &only : all;
    int nn = only ? 1 : 4;
    net_model *models[4] = { 0 };
    int nm = 0;
    unsetenv("TRIDENT_NET");
    for (int i = 0; i < nn; i++) {
        char err[512];
        if (net_set_impl_override(names[i]) < 0) {
            fprintf(stderr, "bench: unknown implementation %s\n", names[i]);
            return 64;
        }
        int rc = net_load(path, &models[nm], err, sizeof err);
        if (rc == -ENOTSUP && !only)
            continue;
        if (rc < 0) {
            fprintf(stderr, "bench: %s\n", err);
            return 1;
        }
        nm++;
    }
    net_set_impl_override(NULL);
    if (nm == 0) {
        fprintf(stderr, "bench: no implementation to measure\n");
        return 1;
    }

    static struct series ser[2 + 2 * 4 + NSTAGES];
    int ns = 0;
    int tcount[2] = { 1, cpus };
    int nt = cpus > 1 ? 2 : 1;
    if (only_threads) {
        tcount[0] = only_threads;
        nt = 1;
    } else {
        for (int t = 0; t < nt; t++)
            ser[ns++] = (struct series){ .what = "peak", .threads = tcount[t] };
    }
    for (int i = 0; i < nm; i++)
        for (int t = 0; t < nt; t++) {
            ser[ns] = (struct series){ .threads = tcount[t], .m = models[i] };
            snprintf(ser[ns].what, sizeof ser[ns].what, "%s", net_impl(models[i]));
            ns++;
        }
    /* the stages, on one thread, with the model's detector settings (the
     * shipped model has one; health needs none) */
    if (!only_threads) {
        feat_init();
        for (int st = STAGE_HEALTH; st < NSTAGES; st++) {
            if (st == STAGE_DETECTOR && !net_detector_dim(models[0]))
                continue;
            if (st == STAGE_SEVERITY && !sev_bench
                && !(sev_bench = sev_create(12000, 1, 10, 1000, 1)))
                continue;
            if (st == STAGE_BEARING && !sev_bearing_bench) {
                struct sev_bearing b = { .rpm = 1797, .balls = 9, .ball_diameter = 7.94,
                                         .pitch_diameter = 39.04, .envelope_hz = 1000 };
                if (!(sev_bearing_bench = sev_create(12000, 1, 10, 1000, 1))
                    || sev_set_bearing(sev_bearing_bench, &b) != 0)
                    continue;
            }
            /* one thread: the record stage runs two (capture, writer) */
            ser[ns] = (struct series){ .threads = 1, .stage = st, .m = models[0] };
            snprintf(ser[ns].what, sizeof ser[ns].what, "%s", stage_name[st]);
            ns++;
        }
    }

    /* interleaved: every repeat measures every series once */
    for (int rep = 0; rep < repeats; rep++)
        for (int i = 0; i < ns; i++) {
            /* the reference is ~30x slower: give it time for enough windows */
            double sec = ser[i].m && !strcmp(ser[i].what, "ref") ? seconds * 2 : seconds;
            ser[i].v[rep] = measure(ser[i].m, ser[i].stage, ser[i].threads, sec, &ser[i].cpu[rep]);
        }

    printf("cpus %d\n", cpus);
    /* multiply-adds: conv1 + three branches of three layers + fc, times 2 */
    double macs = 64.0 * 128 * 32;
    for (int k = 3; k <= 7; k += 2)
        macs += 64.0 * 64 * k * 64 + 128.0 * 64 * k * 32 + 256.0 * 128 * k * 16;
    macs += (double)NET_FEATURES * net_classes(models[0]);
    printf("flop_per_window %.0f\n", 2 * macs);
    /* what the fast paths execute: conv1 and fc directly, each branch layer
     * per output pair and input channel 4 products per F(2,3) group of taps,
     * 3 per F(2,2), 2 per single tap (model/net_fast.h) */
    double fast = 64.0 * 128 * 32 + (double)NET_FEATURES * net_classes(models[0]);
    for (int k = 3; k <= 7; k += 2) {
        int prods = 0;
        for (int j = 0; j < k; j += 3)
            prods += k - j >= 3 ? 4 : k - j == 2 ? 3 : 2;
        fast += prods * (32.0 * 64 * 64 + 16.0 * 128 * 64 + 8.0 * 256 * 128);
    }
    printf("flop_per_window_fast %.0f\n", 2 * fast);
    for (int i = 0; i < ns; i++) {
        double med = median(ser[i].v, repeats), cmed = median(ser[i].cpu, repeats);
        if (!ser[i].m) {
            if (med > 0)
                printf("peak %d %.2f %.2f %.2f %.2f\n", ser[i].threads, med, ser[i].v[0],
                       ser[i].v[repeats - 1], cmed);
        } else if (ser[i].stage) {
            printf("stage %s %d %.1f %.1f %.1f %.1f\n", ser[i].what, ser[i].threads, med,
                   ser[i].v[0], ser[i].v[repeats - 1], cmed);
        } else {
            printf("engine %s %d %.1f %.1f %.1f %.1f\n", ser[i].what, ser[i].threads, med,
                   ser[i].v[0], ser[i].v[repeats - 1], cmed);
        }
    }
    for (int i = 0; i < nm; i++)
        net_destroy(models[i]);
    return 0;
usage:
    fprintf(stderr, "usage: bench [-r REPEATS] [-t SECONDS] [-i IMPL] [-w THREADS] MODEL\n");
    return 64;
}
