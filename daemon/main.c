/* SPDX-License-Identifier: Apache-2.0 */
/* main.c — tridentd: command line, init chain, signals, sd-notify, reload.
 *
 * Two ways to run, one struct cfg (config/config.h) between them: a
 * configuration file (`tridentd [-c FILE]`, the service) or recorded files
 * on the command line (`--replay FILE...`).  Command-line settings override
 * the file, now and on every reload.  Everything after that reads only the
 * struct.  The init chain, torn down in exact reverse and guarded against a
 * failure at any step:
 *
 *   log -> config -> model -> pipeline (job slots, worker scratch)
 *       -> publisher (bound endpoints) -> sources (opened, streams added)
 *       -> wait for subscribers -> pipeline threads -> sources started
 *       -> READY=1 -> run
 *
 * Signals only set flags.  They are blocked in every thread but the main
 * one (threads inherit the mask they are created with), so no system call
 * in the capture, pipeline or ZeroMQ threads is ever interrupted.
 *   SIGINT, SIGTERM: STOPPING=1; the sources stop, the pipeline classifies
 *     and publishes what the rings hold (for at most STOP_CLASSIFY_MS; the
 *     rest is dropped and counted), and tridentd exits 0.  A second
 *     signal, or DRAIN_DEADLINE_S after the first, also aborts sends blocked
 *     by a subscriber that takes nothing (NODROP: --replay, publish.nodrop),
 *     so the drain cannot hang.
 *   SIGHUP (configuration file only): RELOADING=1, then reload() re-reads
 *     the file and the model and validates both fully (and opens every new
 *     file stream once) before changing anything; on any error it logs one
 *     line and keeps everything as it was.  Otherwise the new model becomes
 *     current at the next window (pipeline.h), streams that are gone or
 *     changed stop and drain, new or changed ones start, untouched ones never
 *     notice.  READY=1 in both cases, with a STATUS= that says how it went.
 *   SIGPIPE is ignored.
 *
 * The main loop wakes every 20 ms: it reloads when asked, logs a device
 * that went (a stream `down`) or came back, sends STATUS= (streams, how many
 * down, windows/s, drops) every few seconds and at once when a device went
 * or came back, frees models no window uses any more, and pings the
 * watchdog only when the pipeline proved progress (notify.h: windows
 * published since the last ping, or nothing pending) — a timer alone never
 * pings, so a stuck worker or publisher stops the pings and systemd
 * restarts the daemon.
 *
 * Each running source owns a copy of its stream's configuration (struct
 * run_src), so the struct cfg read at start-up or at a reload can be freed
 * without the sources noticing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net.h"
#include "notify.h"
#include "pipeline.h"
#include "record.h"
#include "severity.h"
#include "publish.h"
#include "source.h"

/* sysexits.h */
#define EX_OK_          0
#define EX_USAGE_       64
#define EX_DATAERR_     65
#define EX_NOINPUT_     66
#define EX_UNAVAILABLE_ 69
#define EX_OSERR_       71
#define EX_IOERR_       74
#define EX_CONFIG_      78

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
#define DEFAULT_MODEL    "cwru.safetensors"
#define LOOP_NS          20000000L      /* main loop tick */
#define STATUS_US        2000000u       /* STATUS= refresh */
#define DRAIN_DEADLINE_S 10             /* stop: give up sends a subscriber blocks */
#define STOP_CLASSIFY_MS 1000           /* stop: classify what the rings hold this long */

/* First signal: stop the sources, drain, publish everything.  Second one,
 * or DRAIN_DEADLINE_S after the stop: also give up sends that a stuck
 * subscriber blocks (NODROP back-pressure), so that the exit never hangs.
 * abort_flag is read by the publisher thread: stored atomically. */
static volatile sig_atomic_t stop_flag, abort_flag, hup_flag;
/* a second SIGTERM/SIGINT: exit at once (no linger on the publisher) */
static volatile sig_atomic_t hard_flag;

static void on_signal(int sig)
{
    if (sig == SIGHUP) {
        hup_flag = 1;
        return;
    }
    if (stop_flag) {
        __atomic_store_n(&abort_flag, 1, __ATOMIC_RELAXED);
        hard_flag = 1;
    }
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: tridentd [-c FILE] [--model M] [--workers N] [--stdout] [--endpoint E]...\n"
"                [--wait-subscribers N] [--stats-interval S] [--record DIR]\n"
"                [--http ADDR:PORT] [--mqtt URL] [--results DIR]\n"
"       tridentd --check [-c FILE]\n"
"       tridentd --replay FILE... [--model M] [--hop N] [--pace fast|realtime]\n"
"                [--loop] [--workers N] [--stdout] [--endpoint E]... [--no-publish]\n"
"                [--wait-subscribers N] [--stats-interval S] [--record DIR]\n"
"       tridentd --version | --help\n"
"\n"
"Classifies live (ALSA) or recorded (WAV/FLAC) streams window by window and\n"
"publishes every classification on ZeroMQ.  Without --replay the streams, the\n"
"model and the endpoints come from the configuration file (trident.conf(5));\n"
"the options below override the file's values.\n"
"\n"
"  -c, --config FILE      configuration file (default " CFG_DEFAULT_FILE ")\n"
"  --check                validate the configuration, the model and every file\n"
"                         stream, print a summary and exit (0: valid, 78: not);\n"
"                         ALSA devices are not opened (the running daemon may\n"
"                         hold them)\n"
"  --replay FILE...       classify these files instead, as streams named after\n"
"                         them (NAME for mono, NAME/0, NAME/1... per channel),\n"
"                         and exit once everything is published\n"
"  --model M              model file (default: the configured one; with\n"
"                         --replay the shipped %s)\n"
"  --hop N                --replay: samples between window starts (default 1024;\n"
"                         for a resampled file, at the model's rate)\n"
"  --pace fast|realtime   --replay: as fast as possible, lossless (default), or\n"
"                         at the file's sample rate, as a live device: what\n"
"                         the pipeline cannot take in time is dropped, counted\n"
"  --loop                 --replay: again and again (until a signal)\n"
"  --workers N            classification threads (default and 0: one per\n"
"                         online CPU)\n"
"  --stdout               also write every message as a JSON line on stdout\n"
"  --endpoint E           ZeroMQ endpoint to bind, repeatable\n"
"                         (default " DEFAULT_ENDPOINT ")\n"
"  --no-publish           no ZeroMQ socket: the messages on stdout only (a\n"
"                         replay beside the service, which holds its port)\n"
"  --wait-subscribers N   start only once N subscriptions have arrived\n"
"  --stats-interval S     seconds between \"_stats\" messages (default 10, 0: off)\n"
"  --record DIR           record every stream's samples as captured into DIR\n"
"                         (record.path of every stream, trident.conf(5))\n"
"  --http ADDR:PORT       serve /metrics, /api/status and a live page (http.listen)\n"
"  --mqtt URL             publish states and events to an MQTT broker,\n"
"                         mqtt://HOST[:PORT] (mqtt.broker)\n"
"  --results DIR          write what is published as JSON Lines into DIR\n"
"                         (results.path)\n"
"  --version, --help\n"
"\n"
"Signals: SIGINT/SIGTERM stop reading, classify and publish what was read\n"
"(for at most 1 s; the rest is dropped, counted), exit 0 (a second one, or\n"
"10 s, drops what a stuck subscriber does not take).  With --replay a slow\n"
"subscriber holds the publisher and loses nothing (a realtime-paced replay\n"
"then drops samples at its source, counted, as a device would);\n"
"otherwise (publish.nodrop = false) a subscriber that falls more than\n"
"publish.hwm messages behind loses messages, and no other one waits.  SIGHUP\n"
"re-reads the configuration file and the model; if either is bad the daemon\n"
"says why and keeps running on the old ones.  Under systemd (Type=notify) it\n"
"reports READY=1, STATUS=, WATCHDOG=1 (only while classifying makes progress),\n"
"RELOADING=1 and STOPPING=1.\n"
"\n"
"Exit status: 0 done; 64 usage error; 78 bad configuration file or model\n"
"(the message names the file and line); with --replay: 65 bad data (not\n"
"audio, empty, shorter than one window, unsupported format, bad model file),\n"
"66 input file or model missing or unreadable; 69 an endpoint cannot be bound\n"
"or an ALSA device is not there; 71 system error (out of memory, a thread\n"
"cannot start, too many open files); 74 with\n"
"--replay: messages could not be published (a failed send, or standard output\n"
"closed under --stdout).\n"
"\n", TRIDENT_DATADIR "/" DEFAULT_MODEL);
    cfg_print_help(f);
}

/* ---- configuration from the command line ------------------------------------ */

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        log_err("%s: \"%s\" is not an integer from %u to %u", opt, s, lo, hi);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

/* Release a cfg_stream that is not in a struct cfg (cfg_add_stream copied it). */
/* The shipped model: installed, or beside a build tree's binary. */
static char *default_model(void)
{
    const char *compiled = TRIDENT_DATADIR "/" DEFAULT_MODEL;
    char exe[PATH_MAX], path[PATH_MAX + 64];

    /* PREFIX/sbin/tridentd uses PREFIX/share/trident, whatever PREFIX the
     * build was configured with (make install PREFIX=/usr after a plain
     * make: issue 16 item 14); then the compiled-in DATADIR; then, in a
     * build tree (build/bin/tridentd), the repository's model/. */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
    } else
        exe[0] = '\0';
    const char *where[] = { "%s/../share/trident/" DEFAULT_MODEL, NULL,
                            "%s/../../model/" DEFAULT_MODEL };
    for (unsigned k = 0; k < sizeof where / sizeof *where; k++) {
        if (!where[k])
            snprintf(path, sizeof path, "%s", compiled);
        else if (exe[0])
            snprintf(path, sizeof path, where[k], exe);
        else
            continue;
        if (access(path, R_OK) == 0) {
            char *real = realpath(path, NULL);
            return real ? real : strdup(path);
        }
    }
    return strdup(compiled);    /* for the error message */
}

/* NAME from ".../NAME.ext". */
static char *file_stem(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = (dot && dot != b) ? (size_t)(dot - b) : strlen(b);
    return strndup(b, n);
}

enum { OPT_REPLAY = 256, OPT_MODEL, OPT_HOP, OPT_PACE, OPT_WORKERS, OPT_STDOUT,
       OPT_ENDPOINT, OPT_WAIT, OPT_LOOP, OPT_STATS, OPT_RECORD, OPT_NO_PUBLISH, OPT_HTTP, OPT_MQTT, OPT_RESULTS,
       OPT_VERSION, OPT_HELP, OPT_CHECK };

/* What the command line says.  Settings that a configuration file also has
 * go into cli (config.h: they override the file, and again on a reload);
 * --replay's files and their options make the streams. */
struct args {
    struct cfg_cli cli;
    const char   **endpoints;       /* argc entries, pointing into argv */
    const char    *config;          /* -c FILE */
    bool           replay, loop, check;
    bool           hop_set, pace_set, loop_set;
    unsigned       hop;
    enum cfg_pace  pace;
    char         **files;           /* into argv */
    unsigned       n_files;
};

/* Parse argv.  0, -1 (done: --help, --version), or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        { "replay",           no_argument,       NULL, OPT_REPLAY },
        { "model",            required_argument, NULL, OPT_MODEL },
        { "hop",              required_argument, NULL, OPT_HOP },
        { "pace",             required_argument, NULL, OPT_PACE },
        { "workers",          required_argument, NULL, OPT_WORKERS },
        { "stdout",           no_argument,       NULL, OPT_STDOUT },
        { "endpoint",         required_argument, NULL, OPT_ENDPOINT },
        { "wait-subscribers", required_argument, NULL, OPT_WAIT },
        { "loop",             no_argument,       NULL, OPT_LOOP },
        { "stats-interval",   required_argument, NULL, OPT_STATS },
        { "record",           required_argument, NULL, OPT_RECORD },
        { "no-publish",       no_argument,       NULL, OPT_NO_PUBLISH },
        { "http",             required_argument, NULL, OPT_HTTP },
        { "mqtt",             required_argument, NULL, OPT_MQTT },
        { "results",          required_argument, NULL, OPT_RESULTS },
        { "config",           required_argument, NULL, 'c' },
        { "check",            no_argument,       NULL, OPT_CHECK },
        { "version",          no_argument,       NULL, OPT_VERSION },
        { "help",             no_argument,       NULL, OPT_HELP },
        { NULL, 0, NULL, 0 }
    };
    unsigned u;
    int o;

    a->cli = (struct cfg_cli)CFG_CLI_UNSET;
    a->hop = 1024;
    a->pace = CFG_PACE_FAST;
    a->endpoints = calloc((size_t)argc + 1, sizeof *a->endpoints);
    if (!a->endpoints)
        return EX_OSERR_;
    a->cli.endpoints = a->endpoints;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (o) {
        case OPT_REPLAY: a->replay = true; break;
        case OPT_CHECK:  a->check = true; break;
        case OPT_MODEL:  a->cli.model = optarg; break;
        case OPT_HOP:
            if (parse_uint("--hop", optarg, 1, 1u << 20, &a->hop))
                return EX_USAGE_;
            a->hop_set = true;
            break;
        case OPT_PACE:
            if (strcmp(optarg, "fast") == 0)
                a->pace = CFG_PACE_FAST;
            else if (strcmp(optarg, "realtime") == 0)
                a->pace = CFG_PACE_REALTIME;
            else {
                log_err("--pace: \"%s\" is neither fast nor realtime", optarg);
                return EX_USAGE_;
            }
            a->pace_set = true;
            break;
        case OPT_WORKERS:
            if (parse_uint("--workers", optarg, 0, 256, &u))
                return EX_USAGE_;
            a->cli.workers = (int)u;
            break;
        case OPT_STDOUT: a->cli.to_stdout = 1; break;
        case OPT_NO_PUBLISH: a->cli.no_publish = true; break;
        case OPT_HTTP:    a->cli.http = optarg; break;
        case OPT_MQTT:    a->cli.mqtt = optarg; break;
        case OPT_RESULTS:
            if (!*optarg) {
                log_err("--results: an empty directory name");
                return EX_USAGE_;
            }
            a->cli.results = optarg;
            break;
        case OPT_RECORD:
            if (!*optarg) {
                log_err("--record: an empty directory name");
                return EX_USAGE_;
            }
            a->cli.record = optarg;
            break;
        case OPT_ENDPOINT: {
            char em[400];
            if (cfg_check_endpoint(optarg, em, sizeof em) < 0) {
                log_err("--endpoint: %s", em);
                return EX_USAGE_;
            }
            a->endpoints[a->cli.n_endpoints++] = optarg;
            break;
        }
        case OPT_WAIT:
            if (parse_uint("--wait-subscribers", optarg, 0, 1000000, &a->cli.wait_subscribers))
                return EX_USAGE_;
            break;
        case OPT_LOOP: a->loop = a->loop_set = true; break;
        case OPT_STATS: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 0) || v > 86400 || (v > 0 && v < 0.1)) {
                log_err("--stats-interval: \"%s\" is not 0 (off) or a number of seconds "
                        "from 0.1 to 86400",
                        optarg);
                return EX_USAGE_;
            }
            a->cli.stats_interval = v;
            break;
        }
        case 'c': a->config = optarg; break;
        case OPT_VERSION:
            printf("tridentd %s\n", TRIDENT_VERSION);
            return -1;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return -1;
        case ':':
            log_err("option %s needs an argument (see --help)", argv[optind - 1]);
            return EX_USAGE_;
        default:
            log_err("unknown option %s (see --help)", argv[optind - 1]);
            return EX_USAGE_;
        }
    }
    if (a->cli.no_publish && (a->cli.n_endpoints || a->cli.wait_subscribers)) {
        log_err("--no-publish: no socket, so no --endpoint and no --wait-subscribers");
        return EX_USAGE_;
    }
    if (!a->replay && optind < argc) {
        log_err("unexpected argument \"%s\" (files to classify follow --replay)", argv[optind]);
        return EX_USAGE_;
    }
    if (a->replay && optind >= argc) {
        log_err("--replay needs at least one file");
        return EX_USAGE_;
    }
    if (a->replay && (a->config || a->check)) {
        log_err("%s and --replay do not go together", a->check ? "--check" : "-c");
        return EX_USAGE_;
    }
    if (!a->replay && (a->hop_set || a->pace_set || a->loop_set)) {
        log_err("--hop, --pace and --loop are for --replay (streams of a configuration "
                "file set them in the file)");
        return EX_USAGE_;
    }
    a->files = argv + optind;
    a->n_files = (unsigned)(argc - optind);
    return 0;
}

/* Status for a configuration that cfg_load() refused. */
static int cfg_status(int rc)
{
    return rc == -ENOMEM ? EX_OSERR_ : EX_CONFIG_;
}

/* The configuration the arguments describe.  0 or an exit status. */
static int build_cfg(struct args *a, struct cfg *c)
{
    char err[1024];
    int rc;

    if (!a->replay) {
        const char *path = a->config ? a->config : CFG_DEFAULT_FILE;
        rc = cfg_load(path, c, err, sizeof err);
        if (rc < 0) {
            if (rc == -ENOENT && !a->config)
                log_err("%s (give one with -c FILE, or classify files with --replay FILE...)",
                        err);
            else
                log_err("%s", err);
            return cfg_status(rc);
        }
        rc = cfg_apply_cli(c, &a->cli, err, sizeof err);
        if (rc == -ENOMEM)
            return EX_OSERR_;
        if (rc < 0) {
            log_err("%s (from the command line)", err);
            return EX_USAGE_;
        }
        return 0;
    }
    if (cfg_defaults(c) < 0)
        return EX_OSERR_;
    for (unsigned i = 0; i < a->n_files; i++) {
        struct cfg_stream s;
        if (cfg_stream_defaults(&s, CFG_FILE) < 0)
            return EX_OSERR_;
        s.hop = a->hop;
        s.pace = a->pace;
        s.loop = a->loop;
        s.path = strdup(a->files[i]);
        s.name = s.path ? file_stem(s.path) : NULL;
        rc = (s.path && s.name) ? cfg_add_stream(c, &s) : -ENOMEM;
        cfg_stream_free(&s);
        if (rc < 0)
            return EX_OSERR_;
        const struct cfg_stream *added = &c->streams[c->n_streams - 1];
        if (!*added->name) {
            log_err("%s: cannot name a stream after this file", added->path);
            return EX_USAGE_;
        }
        /* Streams are named after files: say which files collide. */
        for (unsigned j = 0; j + 1 < c->n_streams; j++)
            if (strcmp(c->streams[j].name, added->name) == 0) {
                log_err("%s: stream name \"%s\" is already the name of %s "
                        "(streams are named after their files: rename one)",
                        added->path, added->name, c->streams[j].path);
                return EX_USAGE_;
            }
    }
    char *model = NULL;
    if (!a->cli.model) {
        if (!(model = default_model()))
            return EX_OSERR_;
        a->cli.model = model;
    }
    rc = cfg_apply_cli(c, &a->cli, err, sizeof err);
    if (model) {
        a->cli.model = NULL;
        free(model);
    }
    if (rc == -ENOMEM)
        return EX_OSERR_;
    if (rc < 0) {
        log_err("%s", err);
        return EX_USAGE_;
    }
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* Exit status for an error opening an input (file or model) of --replay. */
static int input_status(int rc)
{
    switch (-rc) {
    case ENOENT: case EACCES: case EPERM: case EISDIR: case ENOTDIR: case ELOOP:
    case ENAMETOOLONG: case ENODEV:     /* ENODEV: a FIFO or device as the model */
        return EX_NOINPUT_;
    case ENOMEM:
        return EX_OSERR_;
    default:
        return EX_DATAERR_;
    }
}

static void block_signals(bool block)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static void describe_model(const net_model *m, char *buf, size_t len)
{
    char classes[1024];
    size_t pos = 0;
    classes[0] = '\0';
    for (int i = 0; i < net_classes(m) && pos < sizeof classes; i++)
        pos += (size_t)snprintf(classes + pos, sizeof classes - pos, "%s%s", i ? "," : "",
                                net_class_name(m, i));
    char rate[64];
    if (net_sample_rate(m) > 0)
        snprintf(rate, sizeof rate, "%g Hz", net_sample_rate(m));
    else
        snprintf(rate, sizeof rate, "not given (no resampling)");
    snprintf(buf, len, "model %s: sha256 %s, impl %s, %d classes (%s), rate %s, normalisation %s",
             net_path(m), net_digest(m), net_impl(m), net_classes(m), classes, rate,
             norm_name(net_normalize(m)));
}

static void log_model(const net_model *m)
{
    char buf[1600];
    describe_model(m, buf, sizeof buf);
    log_info("%s", buf);
}

static const struct source_ops *ops_for(enum cfg_type t)
{
    return t == CFG_FILE ? &source_file_ops : &source_alsa_ops;
}

/* "FILE:LINE: stream \"NAME\": " for a stream of a configuration file. */
static void stream_where(const struct cfg *c, const struct cfg_stream *s, char *buf, size_t len)
{
    if (c->file && s->line)
        snprintf(buf, len, "%s:%d: stream \"%s\": ", c->file, s->line, s->name);
    else
        buf[0] = '\0';
}

/* Where the model setting came from, to prefix a model error with:
 * "FILE:LINE: model: ", "FILE: model (default): " or "--model: ". */
static void model_where(const struct cfg *c, const struct args *a, char *buf, size_t len)
{
    if (!c->file)
        buf[0] = '\0';
    else if (a->cli.model)
        snprintf(buf, len, "--model: ");
    else if (c->model_line)
        snprintf(buf, len, "%s:%d: model: ", c->file, c->model_line);
    else
        snprintf(buf, len, "%s: model (default): ", c->file);
}

/* ---- running sources ------------------------------------------------------ */

/* A source with its own copy of its stream's configuration. */
struct run_src {
    struct source src;
    struct cfg    own;          /* one stream; src.cfg points at own.streams[0] */
    bool          added;        /* its streams are in the pipeline */
    recorder     *rec;          /* its streams have record/keep taps on it */
    bool          started;
    /* What the main loop last saw of its device (watch_devices()). */
    bool          down;
    uint64_t      reopens;
    uint64_t      down_us;      /* when it was seen going down */
};

static void run_src_free(struct run_src *r)
{
    if (!r)
        return;
    if (r->rec)
        recorder_detach(r->rec, &r->src);   /* stopped and released: write the rest */
    if (r->src.ops)
        r->src.ops->close(&r->src);
    cfg_free(&r->own);
    free(r);
}

/* Open the source of stream s.  NULL with err set (and *rc = -errno). */
static struct run_src *run_src_open(const struct cfg_stream *s, int *rc, char *err, size_t errlen)
{
    struct run_src *r = calloc(1, sizeof *r);
    if (!r || (*rc = cfg_add_stream(&r->own, s)) < 0) {
        free(r);
        *rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->src.cfg = &r->own.streams[0];
    *rc = ops_for(s->type)->open(&r->src, err, errlen);
    if (*rc < 0) {
        cfg_free(&r->own);
        free(r);
        return NULL;
    }
    r->src.ops = ops_for(s->type);
    return r;
}

/* ---- the daemon ------------------------------------------------------------- */

struct daemon {
    struct args     *args;
    struct cfg      *cfg;            /* start-up settings (those a reload cannot change) */
    const char      *config;         /* the file to re-read; NULL with --replay */
    pipeline        *pl;
    sink_set        *sinks;
    publisher       *pub;            /* the zmq sink's, the stdout sink's (or NULL) */
    publisher       *out;
    struct run_src **src;            /* running sources, in configuration order */
    unsigned         n_src;
    recorder        *rec;            /* the recordings' writer, once a stream needs it */
    struct notify_wd wd;
    uint64_t         status_us, status_windows;
    double           rate;           /* windows/s over the last STATUS= period */
    char             note[256];      /* how the last reload went, for STATUS= */
};

/* Is any stream of r down (its device gone, the source reopening it)?
 * Acquire: pairs with the source's release of `down`, so that a device seen
 * back comes with its new `reopens` count. */
static bool src_down(const struct run_src *r)
{
    for (unsigned k = 0; k < r->src.n_streams; k++)
        if (atomic_load_explicit(&r->src.streams[k].down, memory_order_acquire))
            return true;
    return false;
}

static void send_status(struct daemon *d)
{
    unsigned n = pipeline_streams(d->pl), down = 0;
    char downs[32] = "";
    for (unsigned i = 0; i < d->n_src; i++)
        for (unsigned k = 0; k < d->src[i]->src.n_streams; k++)
            down += atomic_load_explicit(&d->src[i]->src.streams[k].down, memory_order_relaxed);
    if (down)
        snprintf(downs, sizeof downs, " (%u down)", down);
    uint64_t xruns = 0, p50, p99, max;
    for (unsigned i = 0; i < d->n_src; i++)
        for (unsigned k = 0; k < d->src[i]->src.n_streams; k++)
            xruns += atomic_load_explicit(&d->src[i]->src.streams[k].xruns, memory_order_relaxed);
    unsigned depth, slots;
    uint64_t backlog;
    pipeline_latency(d->pl, &p50, &p99, &max);
    pipeline_queue(d->pl, &depth, &slots, &backlog);
    if (n == 0 && !d->args->replay) {
        /* the package's example config: running, but doing nothing */
        notify_status("no streams configured: add some to %s and reload; model %s%s%s",
                      d->config ? d->config : "the configuration", net_digest(pipeline_model(d->pl)),
                      d->note[0] ? "; " : "", d->note);
        return;
    }
    notify_status("%u stream%s%s, %.1f windows/s, latency p50 %.1f p99 %.1f max %.1f ms, "
                  "queue %u/%u slots, %" PRIu64 " samples in rings, %" PRIu64 " dropped, %"
                  PRIu64 " gaps, %" PRIu64 " xruns, model %s%s%s", n,
                  n == 1 ? "" : "s", downs, d->rate, p50 / 1e3, p99 / 1e3, max / 1e3,
                  depth, slots, backlog, pipeline_dropped(d->pl), pipeline_gaps(d->pl), xruns,
                  net_digest(pipeline_model(d->pl)), d->note[0] ? "; " : "", d->note);
}

/* Capture threads never log: say here when a device goes and comes back
 * (polled every tick, so an absence shorter than a tick shows only as a
 * reopen).  true if anything changed. */
static bool watch_devices(struct daemon *d, uint64_t now)
{
    bool changed = false;
    for (unsigned i = 0; i < d->n_src; i++) {
        struct run_src *r = d->src[i];
        if (!r->src.n_streams)
            continue;
        bool down = src_down(r);
        uint64_t reopens = atomic_load_explicit(&r->src.streams[0].reopens, memory_order_relaxed);
        const char *name = r->src.cfg->name, *dev = r->src.cfg->device;
        if (down && !r->down) {
            log_warn("stream \"%s\": device \"%s\" is gone: reopening it with back-off "
                     "(the other streams go on)", name, dev);
            r->down_us = now;
        } else if (!down && r->down) {
            log_info("stream \"%s\": device \"%s\" is back after %.1f s (reopened %" PRIu64
                     " time%s)", name, dev, (double)(now - r->down_us) / 1e6, reopens,
                     reopens == 1 ? "" : "s");
        } else if (!down && reopens != r->reopens) {
            log_warn("stream \"%s\": device \"%s\" was gone briefly and is back (reopened %"
                     PRIu64 " time%s)", name, dev, reopens, reopens == 1 ? "" : "s");
        }
        changed |= down != r->down || reopens != r->reopens;
        r->down = down;
        r->reopens = reopens;
    }
    return changed;
}

/* Everything the main loop does when it wakes: the watchdog (only on
 * progress), devices gone or back, STATUS=, freeing unused models. */
static void tick(struct daemon *d)
{
    uint64_t now = notify_now_us();
    if (d->wd.period_us && now - d->wd.last_ping_us >= d->wd.period_us / 4) {
        int rc = notify_wd_tick(&d->wd, now, pipeline_published(d->pl), pipeline_idle(d->pl));
        if (rc < 0)
            log_warn("watchdog notification failed: %s", strerror(-rc));
    }
    bool devices = watch_devices(d, now);
    if (now - d->status_us >= STATUS_US) {
        uint64_t w = pipeline_published(d->pl);
        d->rate = (double)(w - d->status_windows) * 1e6 / (double)(now - d->status_us);
        d->status_windows = w;
        d->status_us = now;
        send_status(d);
    } else if (devices) {
        send_status(d);         /* a device went or came back: say so now */
    }
    pipeline_reap(d->pl);
}

static void sleep_tick(void)
{
    struct timespec ts = { 0, LOOP_NS };
    nanosleep(&ts, NULL);       /* a signal cuts it short */
}

/* Stop the marked sources, wait until the pipeline has published everything
 * they captured, close them.  false if a stop signal came first (the rest
 * stay in the list, stopped, for the shutdown). */
static bool retire_sources(struct daemon *d, const bool *gone)
{
    for (unsigned i = d->n_src; i-- > 0;)
        if (gone[i] && d->src[i]->started) {
            d->src[i]->src.ops->stop(&d->src[i]->src);
            d->src[i]->started = false;
        }
    for (unsigned i = 0; i < d->n_src; i++) {
        if (!gone[i] || !d->src[i]->added)
            continue;
        while (pipeline_release_source(d->pl, &d->src[i]->src) == -EBUSY) {
            if (stop_flag)
                return false;
            sleep_tick();
            tick(d);
        }
        d->src[i]->added = false;
    }
    unsigned k = 0;
    for (unsigned i = 0; i < d->n_src; i++) {
        if (gone[i])
            run_src_free(d->src[i]);
        else
            d->src[k++] = d->src[i];
    }
    d->n_src = k;
    return true;
}

/* Open stream s, add it to the pipeline and, if it runs, start it.  0 or
 * -errno with a message (prefixed with FILE:LINE for a configured stream). */
static int add_stream(struct daemon *d, const struct cfg *c, const struct cfg_stream *s,
                      bool start, char *err, size_t errlen)
{
    char where[PATH_MAX + 200], msg[1024];
    int rc;

    stream_where(c, s, where, sizeof where);
    struct run_src **v = realloc(d->src, sizeof *v * (d->n_src + 1));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    d->src = v;
    struct run_src *r = run_src_open(s, &rc, msg, sizeof msg);
    if (!r) {
        snprintf(err, errlen, "%s%s", where, msg);
        return rc;
    }
    if (s->record_path || s->keep_path) {
        if (!d->rec && (rc = recorder_create(&d->rec, msg, sizeof msg)) < 0) {
            snprintf(err, errlen, "%s%s", where, msg);
            run_src_free(r);
            return rc;
        }
        recorder_set_model(d->rec, net_digest(pipeline_model(d->pl)));
        if ((rc = recorder_attach(d->rec, &r->src, msg, sizeof msg)) < 0) {
            snprintf(err, errlen, "%s%s", where, msg);
            run_src_free(r);
            return rc;
        }
        r->rec = d->rec;
    }
    rc = pipeline_add_source(d->pl, &r->src, msg, sizeof msg);
    if (rc < 0) {
        snprintf(err, errlen, "%s%s", where, msg);
        run_src_free(r);
        return rc;
    }
    r->added = true;
    d->src[d->n_src++] = r;
    r->src.ops->info(&r->src, msg, sizeof msg);
    log_info("source %s", msg);
    if (start) {
        /* A reload runs with SIGINT/SIGTERM/SIGHUP unblocked; the capture
         * thread inherits the mask of its creator, and a signal delivered to
         * it would interrupt its device calls (EINTR) instead of reaching
         * the main thread's handler.  Create it with them blocked. */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        rc = r->src.ops->start(&r->src);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "%s%s: cannot start: %s", where,
                     s->type == CFG_FILE ? s->path : s->device, strerror(-rc));
            /* Its streams must end before it can go. */
            bool *gone = calloc(d->n_src, sizeof *gone);
            if (gone) {
                gone[d->n_src - 1] = true;
                retire_sources(d, gone);
                free(gone);
            }
            return rc;
        }
        r->started = true;
    }
    return 0;
}

/* Published stream names, to find a clash before anything runs (a file's
 * channels are named NAME/0, NAME/1... only once it is opened). */
struct names {
    char   (*v)[STREAM_NAME_MAX];
    unsigned n;
};

/* Add name; -EEXIST (message prefixed with where) if it is there already. */
static int names_add(struct names *ns, const char *name, const char *where,
                     char *err, size_t errlen)
{
    for (unsigned i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], name) == 0) {
            snprintf(err, errlen, "%sstream name \"%s\" is used twice: streams need unique "
                     "names", where, name);
            return -EEXIST;
        }
    char (*v)[STREAM_NAME_MAX] = realloc(ns->v, sizeof *v * (ns->n + 1));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ns->v = v;
    snprintf(ns->v[ns->n++], STREAM_NAME_MAX, "%s", name);
    return 0;
}

/* The names an ALSA stream publishes (known without opening it). */
static int names_add_alsa(struct names *ns, const struct cfg *c, const struct cfg_stream *s,
                          char *err, size_t errlen)
{
    char where[PATH_MAX + 200], name[STREAM_NAME_MAX];
    int rc = 0;
    stream_where(c, s, where, sizeof where);
    for (unsigned ch = 0; rc == 0 && ch < (s->channels ? s->channels : 1); ch++) {
        cfg_channel_name(s, ch, name, sizeof name);
        rc = names_add(ns, name, where, err, errlen);
    }
    return rc;
}

/* Open a file stream once, as a reload or --check would run it, and close
 * it: the file exists, is audio and gives at least one window; its stream
 * names go into ns. */
static int probe_file(const struct cfg *c, const struct cfg_stream *s, double model_rate,
                      struct names *ns, char *info, size_t infolen, char *err, size_t errlen)
{
    char where[PATH_MAX + 200], msg[1024];
    struct source tmp = { .cfg = s };
    int rc;

    stream_where(c, s, where, sizeof where);
    rc = source_file_ops.open(&tmp, msg, sizeof msg);
    if (rc == 0) {
        rc = pipeline_check_source(model_rate, &tmp, msg, sizeof msg);
        for (unsigned i = 0; rc == 0 && i < tmp.n_streams; i++)
            if ((rc = names_add(ns, tmp.streams[i].name, where, err, errlen)) < 0)
                msg[0] = '\0';
        if (info)
            source_file_ops.info(&tmp, info, infolen);
        source_file_ops.close(&tmp);
        if (rc < 0 && !msg[0])
            return rc;          /* err is complete */
    }
    if (rc < 0)
        snprintf(err, errlen, "%s%s", where, msg);
    return rc;
}

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Settings a reload cannot change (the socket, the worker pool): say so. */
static void warn_fixed(const struct cfg *run, const struct cfg *nc)
{
    bool ep = run->n_endpoints != nc->n_endpoints;
    for (unsigned i = 0; !ep && i < nc->n_endpoints; i++)
        ep = !str_same(run->endpoints[i], nc->endpoints[i]);
    if (ep)
        log_warn("reload: publish.endpoints changed: takes effect when tridentd restarts");
    if (run->hwm != nc->hwm)
        log_warn("reload: publish.hwm changed: takes effect when tridentd restarts");
    if (run->nodrop != nc->nodrop)
        log_warn("reload: publish.nodrop changed: takes effect when tridentd restarts");
    if (run->to_stdout != nc->to_stdout)
        log_warn("reload: publish.stdout changed: takes effect when tridentd restarts");
    if (run->stats_interval != nc->stats_interval)
        log_warn("reload: publish.stats_interval changed: takes effect when tridentd restarts");
    if (run->workers != nc->workers)
        log_warn("reload: workers changed: takes effect when tridentd restarts");
}

enum fate { KEEP, REMOVE, RESTART };

/* SIGHUP: see the top of the file. */
static void reload(struct daemon *d)
{
    char err[PATH_MAX + 1600] = "", msg[1024];
    struct cfg nc = { 0 };
    net_model *nm = NULL;
    enum fate *fate = NULL;
    bool *gone = NULL, *fresh = NULL;
    struct names names = { 0 };
    unsigned n_rm = 0, n_re = 0, n_fail = 0;
    int rc;

    notify_reloading();
    log_info("SIGHUP: reloading %s", d->config);
    d->note[0] = '\0';

    /* 1. Validate everything; nothing running changes yet. */
    rc = cfg_load(d->config, &nc, err, sizeof err);
    if (rc == 0 && (rc = cfg_apply_cli(&nc, &d->args->cli, msg, sizeof msg)) < 0)
        snprintf(err, sizeof err, "%s (from the command line)", msg);
    if (rc == 0 && (rc = net_load(nc.model, &nm, msg, sizeof msg)) < 0) {
        char where[PATH_MAX + 64];
        model_where(&nc, d->args, where, sizeof where);
        snprintf(err, sizeof err, "%s%s", where, msg);
        nm = NULL;
    }
    const net_model *cur = pipeline_model(d->pl);
    if (rc == 0)
        rc = pipeline_model_compatible(d->pl, nm, err, sizeof err);
    if (rc == 0 && strcmp(net_digest(nm), net_digest(cur)) == 0) {
        net_destroy(nm);        /* the same model: nothing to switch */
        nm = NULL;
    }
    if (rc == 0) {
        fate = calloc(d->n_src + 1, sizeof *fate);
        gone = calloc(d->n_src + 1, sizeof *gone);
        fresh = calloc(nc.n_streams + 1, sizeof *fresh);
        if (!fate || !gone || !fresh) {
            snprintf(err, sizeof err, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc == 0) {
        for (unsigned i = 0; i < d->n_src; i++) {
            const struct cfg_stream *old = d->src[i]->src.cfg;
            int j = cfg_find_stream(&nc, old->name);
            fate[i] = j < 0 ? REMOVE : cfg_stream_equal(old, &nc.streams[j]) ? KEEP : RESTART;
            gone[i] = fate[i] != KEEP;
            if (j >= 0 && fate[i] == RESTART)
                fresh[j] = true;
        }
        for (unsigned j = 0; j < nc.n_streams; j++) {
            bool known = false;
            for (unsigned i = 0; i < d->n_src && !known; i++)
                known = strcmp(d->src[i]->src.cfg->name, nc.streams[j].name) == 0;
            if (!known)
                fresh[j] = true;
        }
        /* Files are opened once now, so that a missing or bad one refuses
         * the whole reload.  ALSA devices are opened only when the stream
         * starts: a changed stream's device is still held by its old self.
         * Every name published after the reload must be unique. */
        for (unsigned i = 0; i < d->n_src && rc == 0; i++)
            for (unsigned k = 0; !gone[i] && k < d->src[i]->src.n_streams && rc == 0; k++)
                rc = names_add(&names, d->src[i]->src.streams[k].name, "", err, sizeof err);
        for (unsigned j = 0; j < nc.n_streams && rc == 0; j++) {
            if (!fresh[j])
                continue;
            if (nc.streams[j].type == CFG_FILE)
                rc = probe_file(&nc, &nc.streams[j], net_sample_rate(cur), &names, NULL, 0,
                                err, sizeof err);
            else
                rc = names_add_alsa(&names, &nc, &nc.streams[j], err, sizeof err);
        }
    }
    if (rc < 0) {
        log_err("reload refused, running on as before: %s", err);
        snprintf(d->note, sizeof d->note, "reload failed: %s", err);
        goto out;
    }

    /* 2. Commit.  The model first: from the next window on. */
    warn_fixed(d->cfg, &nc);
    if (nm) {
        const char *old_digest = net_digest(cur);
        log_model(nm);
        log_info("model %s replaces %s from the next window on", net_digest(nm), old_digest);
        rc = pipeline_set_model(d->pl, nm, err, sizeof err);
        if (rc == 0 && d->rec)
            recorder_set_model(d->rec, net_digest(nm));
        if (rc < 0) {
            log_err("reload refused, running on as before: %s", err);
            snprintf(d->note, sizeof d->note, "reload failed: %s", err);
            goto out;
        }
        nm = NULL;              /* the pipeline's now */
    }
    for (unsigned i = 0; i < d->n_src; i++) {
        if (fate[i] == REMOVE) {
            log_info("stream \"%s\": removed from the configuration: stopping",
                     d->src[i]->src.cfg->name);
            n_rm++;
        } else if (fate[i] == RESTART) {
            log_info("stream \"%s\": changed: restarting", d->src[i]->src.cfg->name);
            n_re++;
        }
    }
    if (!retire_sources(d, gone))
        goto out;               /* a stop signal: the shutdown takes over */
    for (unsigned j = 0; j < nc.n_streams; j++) {
        if (!fresh[j])
            continue;
        rc = add_stream(d, &nc, &nc.streams[j], true, err, sizeof err);
        if (rc < 0) {
            log_err("reload: %s", err);
            snprintf(d->note, sizeof d->note, "reload: %s", err);
            n_fail++;
        }
    }
    unsigned n_fresh = 0;
    for (unsigned j = 0; j < nc.n_streams; j++)
        n_fresh += fresh[j];
    log_info("reload done: %u source%s running (%u added, %u restarted, %u removed, "
             "%u failed to start), model %s", d->n_src, d->n_src == 1 ? "" : "s",
             n_fresh - n_re, n_re, n_rm, n_fail, net_digest(pipeline_model(d->pl)));
    if (!n_fail)
        snprintf(d->note, sizeof d->note, "reloaded");
out:
    free(names.v);
    net_destroy(nm);
    cfg_free(&nc);
    free(fate);
    free(gone);
    free(fresh);
    notify_ready();
    send_status(d);
}

/* ---- --check -------------------------------------------------------------- */

/* Validate the configuration (already loaded), the model and each stream's
 * source, print a summary.  ALSA devices are described, not opened: opening
 * one would need the hardware, and the running daemon holds it. */
static int check(const struct cfg *c, const struct args *a)
{
    char err[1536], info[1600];
    net_model *m = NULL;
    int rc;

    rc = net_load(c->model, &m, err, sizeof err);
    if (rc < 0) {
        model_where(c, a, info, sizeof info);
        log_err("%s%s", info, err);
        return cfg_status(rc);
    }
    cfg_print_summary(c, stdout);
    describe_model(m, info, sizeof info);
    printf("%s\n", info);
    struct names names = { 0 };
    for (unsigned i = 0; i < c->n_streams && rc == 0; i++) {
        const struct cfg_stream *s = &c->streams[i];
        if (s->type == CFG_FILE) {
            rc = probe_file(c, s, net_sample_rate(m), &names, info, sizeof info, err, sizeof err);
            if (rc == 0)
                printf("  %s: %s\n", s->name, info);
        } else {
            rc = names_add_alsa(&names, c, s, err, sizeof err);
            if (rc == 0)
                printf("  %s: ALSA device \"%s\" not opened by --check (opened when the "
                       "stream starts)\n", s->name, s->device);
        }
        /* record/keep directories: could they be made, written? */
        for (int k = 0; k < 2 && rc == 0; k++) {
            const char *dir = k ? s->keep_path : s->record_path;
            if (dir && (rc = recorder_check_dir(dir)) < 0) {
                char where[PATH_MAX + 200];
                stream_where(c, s, where, sizeof where);
                snprintf(err, sizeof err, "%s%s.path \"%s\": %s", where, k ? "keep" : "record",
                         dir, strerror(-rc));
                rc = -EINVAL;
            } else if (dir)
                printf("  %s: %s into %s\n", s->name, k ? "keeps windows" : "records", dir);
        }
        if (rc == 0 && (s->sev_scale > 0 || s->sev_sensitivity > 0)) {
            double r = net_sample_rate(m);
            if (r > 0 && r <= 2 * SEV_F_HI) {
                char where[PATH_MAX + 200];
                stream_where(c, s, where, sizeof where);
                snprintf(err, sizeof err, "%sseverity: the model's rate, %g Hz, must be above "
                         "%g Hz", where, r, 2 * SEV_F_HI);
                rc = -EINVAL;
            }
        }
    }
    free(names.v);
    net_destroy(m);
    if (rc < 0) {
        log_err("%s", err);
        return cfg_status(rc);
    }
    printf("configuration OK\n");
    return EX_OK_;
}

/* ---- shutdown --------------------------------------------------------------- */

/* The sources are stopped: wait while the pipeline classifies and publishes
 * what they captured, but not for ever.  What the rings still hold after
 * STOP_CLASSIFY_MS (an overload left them full) is dropped, counted, so a
 * stop takes about a second however far behind the pipeline is.  A
 * subscriber that takes nothing
 * holds a nodrop publisher (--replay, publish.nodrop) for good; after
 * DRAIN_DEADLINE_S the publisher gives up (abort_flag), pipeline_join() logs
 * how many results were abandoned, and tridentd exits rather than being
 * killed by systemd at TimeoutStopSec. */
static void drain(pipeline *pl)
{
    uint64_t now = notify_now_us(), until = now + DRAIN_DEADLINE_S * 1000000ull;
    uint64_t classify_until = now + STOP_CLASSIFY_MS * 1000ull;
    bool discarding = false;

    pipeline_seal(pl);
    while (!pipeline_finished(pl) && !__atomic_load_n(&abort_flag, __ATOMIC_RELAXED)) {
        if (!discarding && notify_now_us() >= classify_until) {
            /* An overload left more in the rings than a stop should wait
             * for: the rest is counted as dropped (per stream, in its
             * summary), what was cut is still published. */
            log_warn("stop: the rings still hold samples after %d ms: dropping them "
                     "unclassified", STOP_CLASSIFY_MS);
            pipeline_discard(pl);
            discarding = true;
        }
        if (notify_now_us() >= until) {
            log_warn("stop: still publishing after %d s (a subscriber takes nothing?): "
                     "giving up the rest", DRAIN_DEADLINE_S);
            __atomic_store_n(&abort_flag, 1, __ATOMIC_RELAXED);
            break;
        }
        sleep_tick();
    }
    /* A second signal or the deadline: what is still queued is given up
     * (counted), not classified first; that can take seconds on a slow
     * machine. */
    if (__atomic_load_n(&abort_flag, __ATOMIC_RELAXED))
        pipeline_abandon(pl);
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct args args = { 0 };
    struct cfg cfg = { 0 };
    struct daemon d = { .args = &args, .cfg = &cfg };
    net_model *model = NULL;
    bool pl_started = false;
    char err[1536] = "";
    int rc, status = EX_OK_;

    /* log */
    log_init("tridentd");
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    block_signals(true);

    /* Up to 1024 streams, each with its file or PCM descriptors, plus
     * ZeroMQ's sockets and subscribers: the soft RLIMIT_NOFILE (1024 by
     * default) is too few; take the hard limit (packaging/trident.service
     * sets LimitNOFILE=).  Running out anyway is EX_OSERR (71). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    /* config */
    rc = parse_args(argc, argv, &args);
    if (!rc)
        rc = build_cfg(&args, &cfg);
    if (rc) {
        status = rc < 0 ? EX_OK_ : rc;
        if (rc == EX_OSERR_)
            log_err("out of memory");
        goto out_cfg;
    }
    if (args.check) {
        status = check(&cfg, &args);
        goto out_cfg;
    }
    d.config = args.replay ? NULL : cfg.file;

    /* model */
    rc = net_load(cfg.model, &model, err, sizeof err);
    if (rc < 0) {
        char where[PATH_MAX + 64];
        model_where(&cfg, &args, where, sizeof where);
        log_err("%s%s", where, err);
        status = args.replay ? input_status(rc) : cfg_status(rc);
        goto out_cfg;
    }
    log_model(model);

    /* workers and queues (the pipeline owns the model from here on) */
    struct pipeline_opts po = { .workers = cfg.workers, .stats_interval = cfg.stats_interval };
    rc = pipeline_create(model, &po, &d.pl, err, sizeof err);
    if (rc < 0) {
        log_err("%s", err);
        status = rc == -EINVAL ? EX_USAGE_ : EX_OSERR_;
        goto out_model;
    }
    model = NULL;

    /* sinks (sink.h): ZeroMQ, stdout, results, http, mqtt as configured.
     * A replay is lossless towards slow subscribers; the service drops
     * for a stuck one rather than stall live capture (publish.h). */
    if (args.replay)
        cfg.nodrop = true;
    rc = sinks_create(&cfg, &d.sinks, err, sizeof err);
    if (rc < 0) {
        log_err("%s", err);
        status = rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE ? EX_OSERR_
                 : rc == -EINVAL || rc == -ENOENT || rc == -EACCES ? EX_CONFIG_
                                                                    : EX_UNAVAILABLE_;
        goto out_pipeline;
    }
    d.pub = sink_zmq_publisher(sinks_state(d.sinks, "zmq"));
    d.out = sink_zmq_publisher(sinks_state(d.sinks, "stdout"));
    if (d.pub)
        publish_set_abort(d.pub, &abort_flag);
    if (d.out)
        publish_set_abort(d.out, &abort_flag);
    for (unsigned i = 0; d.pub && i < cfg.n_endpoints; i++)
        log_info("publishing on %s", publish_endpoint(d.pub, i));
    if (d.out)
        log_info("publishing on standard output");
    if (cfg.results_path)
        log_info("results into %s/results.jsonl", cfg.results_path);

    /* sources */
    for (unsigned i = 0; i < cfg.n_streams; i++) {
        const struct cfg_stream *s = &cfg.streams[i];
        rc = add_stream(&d, &cfg, s, false, err, sizeof err);
        if (rc < 0) {
            log_err("%s", err);
            if (rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE)
                status = EX_OSERR_;     /* out of memory or descriptors */
            else if (args.replay)
                status = rc == -EEXIST ? EX_USAGE_ : input_status(rc);
            else if (s->type == CFG_ALSA && rc != -EINVAL && rc != -EOPNOTSUPP && rc != -EEXIST)
                status = EX_UNAVAILABLE_;   /* device not there (yet): worth a restart */
            else
                status = EX_CONFIG_;
            goto out_sources;
        }
    }
    for (unsigned i = 0; i < pipeline_streams(d.pl); i++) {
        pipeline_stream_info(d.pl, i, err, sizeof err);
        log_info("%s", err);
    }
    if (!pipeline_streams(d.pl) && !args.replay)
        log_warn("no streams configured (streams = ( ... ); in %s): nothing to classify until "
                 "a reload adds some (trident.conf(5))", d.config ? d.config : "the configuration");
    log_info("%u workers", pipeline_workers(d.pl));

    /* Subscribers: the only wait a signal must be able to cut short. */
    if (cfg.wait_subscribers) {
        log_info("waiting for %u subscriber%s", cfg.wait_subscribers,
                 cfg.wait_subscribers == 1 ? "" : "s");
        block_signals(false);
        rc = d.pub ? publish_wait_subscribers(d.pub, cfg.wait_subscribers, &stop_flag)
                   : -ENOTCONN;
        block_signals(true);
        if (rc < 0 || stop_flag) {
            log_info("stopped before the start");
            goto out_sources;
        }
    }

    /* run */
    rc = pipeline_start(d.pl, d.sinks);
    if (rc < 0) {
        log_err("cannot start the pipeline: %s", strerror(-rc));
        status = EX_OSERR_;
        goto out_sources;
    }
    pl_started = true;
    for (unsigned i = 0; i < d.n_src; i++) {
        struct run_src *r = d.src[i];
        rc = r->src.ops->start(&r->src);
        if (rc < 0) {
            log_err("%s: cannot start: %s", r->src.cfg->type == CFG_FILE ? r->src.cfg->path
                    : r->src.cfg->device, strerror(-rc));
            status = EX_OSERR_;
            goto out_run;
        }
        r->started = true;
    }
    if (args.replay)
        pipeline_seal(d.pl);    /* --replay ends when its files do */
    notify_wd_init(&d.wd, notify_watchdog_usec(), notify_now_us());
    d.status_us = notify_now_us();
    notify_ready();
    send_status(&d);
    if (d.wd.period_us)
        log_info("watchdog: %" PRIu64 " ms", d.wd.period_us / 1000);

    /* From here on the main thread takes the signals; every other thread
     * was created with them blocked.  They stay unblocked through the drain
     * below, so that a second one can abort it. */
    block_signals(false);
    while (!stop_flag && !(args.replay && pipeline_finished(d.pl))) {
        sleep_tick();
        if (hup_flag) {
            hup_flag = 0;
            if (d.config)
                reload(&d);
            else
                log_info("SIGHUP: nothing to reload with --replay");
        }
        tick(&d);
    }
    if (stop_flag)
        log_info("signal: stopping the sources, publishing what they read");

out_run:
    notify_stopping();
    /* A source that never started still has to end its streams: stop
     * every one. */
    bool input_failed = false;
    for (unsigned i = d.n_src; i-- > 0;) {
        d.src[i]->src.ops->stop(&d.src[i]->src);
        d.src[i]->started = false;
        input_failed |= d.src[i]->src.failed;
    }
    /* A replay whose file ended early or failed to read: bad data (65). */
    if (args.replay && status == EX_OK_ && input_failed)
        status = EX_DATAERR_;
    if (pl_started) {
        drain(d.pl);
        pipeline_join(d.pl);
        /* A replay that did not reach its consumer did not do its job. */
        if (args.replay && status == EX_OK_ && pipeline_publish_errors(d.pl))
            status = EX_IOERR_;
    }
out_sources:
    for (unsigned i = d.n_src; i-- > 0;)
        run_src_free(d.src[i]);
    free(d.src);
    recorder_destroy(d.rec);
    if (hard_flag && d.pub)
        publish_no_linger(d.pub);   /* "at once": drop what is still queued */
    sinks_destroy(d.sinks);
out_pipeline:
    pipeline_destroy(d.pl);
out_model:
    net_destroy(model);
out_cfg:
    cfg_free(&cfg);
    free(args.endpoints);
    return status;
}
