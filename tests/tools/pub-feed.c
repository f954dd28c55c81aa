/* SPDX-License-Identifier: Apache-2.0 */
/* pub-feed.c — test tool: drive the publisher with synthetic results.
 *
 *   pub-feed [--endpoint E]... [--wait N] [--count M] [--streams K]
 *            [--classes C] [--hwm H] [--name PREFIX] [--stdout] [--drop]
 *
 * Binds a publisher (publish.h) on every E, prints "endpoint: BOUND" for each
 * on stderr (the real port of tcp://host:*), waits for N subscriptions, then
 * publishes M results as fast as it can, round-robin over K streams named
 * PREFIX/0 … PREFIX/K-1 (PREFIX alone when K = 1).  Message i is stream
 * i % K, seq i / K; its values are a deterministic function of (stream, seq)
 * that tests recompute (see tests/integration/test_publish.py expected()).
 * The publisher waits at a subscriber's high-water mark (nodrop), as
 * --replay does; --drop makes it drop there instead, as the service does.
 * Prints "published M in S s" on stderr and exits 0; 1 on an error, 2 when
 * SIGINT/SIGTERM abandoned a blocked send, 64 on bad usage.
 */
#include "publish.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static unsigned long num(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    unsigned long x = v ? strtoul(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || v[0] == '-') {
        fprintf(stderr, "pub-feed: %s needs a non-negative integer\n", opt);
        exit(64);
    }
    return x;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    char **eps = calloc((size_t)argc, sizeof *eps);
    unsigned n_eps = 0;
    unsigned long wait = 0, count = 1000, streams = 1, classes = 4, hwm = 1000;
    const char *name = "feed";
    bool to_stdout = false, drop = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--endpoint") && v)
            eps[n_eps++] = argv[++i];
        else if (!strcmp(a, "--wait"))
            wait = num(a, v), i++;
        else if (!strcmp(a, "--count"))
            count = num(a, v), i++;
        else if (!strcmp(a, "--streams"))
            streams = num(a, v), i++;
        else if (!strcmp(a, "--classes"))
            classes = num(a, v), i++;
        else if (!strcmp(a, "--hwm"))
            hwm = num(a, v), i++;
        else if (!strcmp(a, "--name") && v)
            name = argv[++i];
        else if (!strcmp(a, "--stdout"))
            to_stdout = true;
        else if (!strcmp(a, "--drop"))
            drop = true;
        else {
            fprintf(stderr, "pub-feed: bad argument '%s'\n", a);
            return 64;
        }
    }
    if (streams < 1 || classes < 1 || classes > 64 || hwm > 1000000) {
        fprintf(stderr, "pub-feed: --streams >= 1, 1 <= --classes <= 64, --hwm <= 1000000\n");
        return 64;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct publish_opts o = { .endpoints = eps, .n_endpoints = n_eps, .hwm = (int)hwm,
                              .nodrop = !drop, .to_stdout = to_stdout };
    publisher *p;
    char err[512];
    int rc = publish_create(&o, &p, err, sizeof err);
    if (rc) {
        fprintf(stderr, "pub-feed: %s\n", err);
        free(eps);
        return 1;
    }
    publish_set_abort(p, &stop);
    for (unsigned i = 0; i < n_eps; i++)
        fprintf(stderr, "endpoint: %s\n", publish_endpoint(p, i));
    fflush(stderr);

    rc = publish_wait_subscribers(p, (unsigned)wait, &stop);
    if (rc) {
        fprintf(stderr, "pub-feed: waiting for subscribers: %s\n", strerror(-rc));
        publish_destroy(p);
        free(eps);
        return rc == -EINTR ? 2 : 1;
    }

    char (*names)[256] = calloc(streams, sizeof *names);
    if (!names) {
        fprintf(stderr, "pub-feed: out of memory\n");
        publish_destroy(p);
        free(eps);
        return 1;
    }
    float logits[64], probs[64];
    for (unsigned long k = 0; k < streams; k++)
        if (streams == 1)
            snprintf(names[k], sizeof names[k], "%s", name);
        else
            snprintf(names[k], sizeof names[k], "%s/%lu", name, k);
    static const char *const labels[] = { "normal", "ball", "inner", "outer" };
    char label_buf[64][16];
    for (unsigned c = 0; c < classes; c++)
        snprintf(label_buf[c], sizeof label_buf[c], "%s", c < 4 ? labels[c] : "class");
    for (unsigned c = 4; c < classes; c++)
        snprintf(label_buf[c], sizeof label_buf[c], "class%u", c);

    double t0 = now();
    unsigned long i;
    for (i = 0; i < count; i++) {
        unsigned long k = i % streams, seq = i / streams;
        /* Synthetic logits; the class that wins moves with seq. */
        double mx = -INFINITY, sum = 0;
        int best = 0;
        for (unsigned c = 0; c < classes; c++) {
            logits[c] = (float)(sin(0.1 * (double)seq + 1.3 * c + 0.7 * (double)k) * 4.0);
            if (logits[c] > mx)
                mx = logits[c], best = (int)c;
        }
        for (unsigned c = 0; c < classes; c++)
            sum += exp(logits[c] - mx);
        for (unsigned c = 0; c < classes; c++)
            probs[c] = (float)(exp(logits[c] - mx) / sum);
        struct result r = {
            .stream = names[k], .seq = seq, .sample = seq * 512, .t = 1767225600.0 + seq * 512 / 12000.0,
            .cls = best, .label = label_buf[best], .state = label_buf[best], .score = probs[best], .probs = probs,
            .logits = logits, .n_classes = (int)classes, .gap = seq % 7 == 3,
            .quality = "ok", .rms = 0.5, .peak = 1.5, .crest = 3.0, .kurtosis = 3.0,
            .latency_us = (int64_t)(seq % 1000), .model = "0123456789ab",
        };
        rc = publish_result(p, &r);
        if (rc)
            break;
    }
    double dt = now() - t0;
    fprintf(stderr, "published %lu in %.3f s\n", i, dt);
    if (rc)
        fprintf(stderr, "pub-feed: publishing: %s\n", strerror(-rc));
    publish_destroy(p);
    free(names);
    free(eps);
    return rc == -ECANCELED ? 2 : rc ? 1 : 0;
}
