/* main.c — tridentd: command line, init chain, signals, lifecycle.
 *
 * The command line fills a struct cfg (config/config.h), the same struct a
 * configuration file will fill, and everything after that reads only the
 * struct.  The init chain, torn down in exact reverse and guarded against a
 * failure at any step:
 *
 *   log -> config -> model -> pipeline (job slots, worker scratch)
 *       -> publisher (bound endpoints) -> sources (opened, streams added)
 *       -> wait for subscribers -> pipeline threads -> sources started -> run
 *
 * Signals: SIGINT and SIGTERM only set a flag.  They are blocked in every
 * thread but the main one (threads inherit the mask they are created with),
 * so no system call in the capture, pipeline or ZeroMQ threads is ever
 * interrupted.  On the flag the sources stop, the pipeline classifies and
 * publishes what the rings hold, and tridentd exits 0.  A second signal also
 * aborts sends blocked by a subscriber that takes nothing (NODROP), so the
 * drain cannot hang.  SIGPIPE is ignored.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net.h"
#include "pipeline.h"
#include "publish.h"
#include "source.h"

/* sysexits.h */
#define EX_OK_          0
#define EX_USAGE_       64
#define EX_DATAERR_     65
#define EX_NOINPUT_     66
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_    70
#define EX_OSERR_       71

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
#define DEFAULT_MODEL    "cwru.safetensors"

/* First signal: stop the sources, drain, publish everything.  Second one:
 * also give up sends that a stuck subscriber blocks (NODROP back-pressure),
 * so that the exit never hangs. */
static volatile sig_atomic_t stop_flag, abort_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag)
        abort_flag = 1;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: tridentd --replay FILE... [--model M] [--hop N] [--pace fast|realtime]\n"
"                [--loop] [--workers N] [--stdout] [--endpoint E]...\n"
"                [--wait-subscribers N] [--stats-interval S]\n"
"       tridentd [-c FILE]       (configuration files: not implemented yet)\n"
"       tridentd --version | --help\n"
"\n"
"Classifies recorded WAV/FLAC files (16/24/32-bit integer or 32-bit float) as\n"
"streams named after the files (NAME for mono, NAME/0, NAME/1... per channel),\n"
"publishes every window on ZeroMQ and exits once everything is published.\n"
"\n"
"  --replay FILE...       the files to classify\n"
"  --model M              model file (default: the shipped %s)\n"
"  --hop N                samples between window starts, >= 1 (default 1024)\n"
"  --pace fast|realtime   as fast as possible, lossless (default), or at the\n"
"                         file's sample rate\n"
"  --loop                 replay the files again and again (until a signal)\n"
"  --workers N            classification threads (default: one per CPU)\n"
"  --stdout               also write every message as a JSON line on stdout\n"
"  --endpoint E           ZeroMQ endpoint to bind, repeatable\n"
"                         (default " DEFAULT_ENDPOINT ")\n"
"  --wait-subscribers N   start only once N subscriptions have arrived\n"
"  --stats-interval S     seconds between \"_stats\" messages (default 10, 0: off)\n"
"  -c FILE                configuration file\n"
"  --version, --help\n"
"\n"
"SIGINT/SIGTERM: stop reading, classify and publish what was read, exit 0;\n"
"a second signal drops what a stuck subscriber does not take.\n"
"\n"
"Exit status: 0 done; 64 usage error; 65 bad data (not audio, empty, shorter\n"
"than one window, unsupported format, bad model file); 66 input file or model\n"
"missing or unreadable; 69 an endpoint cannot be bound; 70/71 internal or\n"
"system error.\n", TRIDENT_DATADIR "/" DEFAULT_MODEL);
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
static void stream_tmp_free(struct cfg_stream *s)
{
    free(s->name);
    free(s->path);
    free(s->device);
    free(s->format);
    for (unsigned i = 0; i < s->n_channel_names; i++)
        free(s->channel_names[i]);
    free(s->channel_names);
    memset(s, 0, sizeof *s);
}

/* The shipped model: installed, or beside a build tree's binary. */
static char *default_model(void)
{
    const char *installed = TRIDENT_DATADIR "/" DEFAULT_MODEL;
    char exe[PATH_MAX], path[PATH_MAX + 64];

    if (access(installed, R_OK) == 0)
        return strdup(installed);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/../../model/" DEFAULT_MODEL, exe);
            if (access(path, R_OK) == 0) {
                char *real = realpath(path, NULL);
                return real ? real : strdup(path);
            }
        }
    }
    return strdup(installed);   /* for the error message */
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
       OPT_ENDPOINT, OPT_WAIT, OPT_LOOP, OPT_STATS, OPT_VERSION, OPT_HELP };

/* What the command line says.  Settings that a configuration file also has
 * go into cli (config.h: they override the file, and again on a reload);
 * --replay's files and their options make the streams. */
struct args {
    struct cfg_cli cli;
    const char   **endpoints;       /* argc entries, pointing into argv */
    const char    *config;          /* -c FILE */
    bool           replay, loop;
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
        case OPT_MODEL:  a->cli.model = optarg; break;
        case OPT_HOP:
            if (parse_uint("--hop", optarg, 1, 1u << 20, &a->hop))
                return EX_USAGE_;
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
            break;
        case OPT_WORKERS:
            if (parse_uint("--workers", optarg, 1, 256, &u))
                return EX_USAGE_;
            a->cli.workers = (int)u;
            break;
        case OPT_STDOUT: a->cli.to_stdout = 1; break;
        case OPT_ENDPOINT: a->endpoints[a->cli.n_endpoints++] = optarg; break;
        case OPT_WAIT:
            if (parse_uint("--wait-subscribers", optarg, 0, 1000000, &a->cli.wait_subscribers))
                return EX_USAGE_;
            break;
        case OPT_LOOP: a->loop = true; break;
        case OPT_STATS: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 0) || v > 86400) {
                log_err("--stats-interval: \"%s\" is not a number of seconds from 0 to 86400",
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
    if (!a->replay && optind < argc) {
        log_err("unexpected argument \"%s\" (files to classify follow --replay)", argv[optind]);
        return EX_USAGE_;
    }
    if (a->replay && optind >= argc) {
        log_err("--replay needs at least one file");
        return EX_USAGE_;
    }
    a->files = argv + optind;
    a->n_files = (unsigned)(argc - optind);
    return 0;
}

/* The configuration the arguments describe.  0 or an exit status. */
static int build_cfg(struct args *a, struct cfg *c)
{
    char err[512];
    int rc;

    if (!a->replay) {
        /* cfg_load(a->config ? a->config : CFG_DEFAULT_FILE, c, ...) slots in
         * here, followed by the same cfg_apply_cli() as below. */
        log_err("running from a configuration file is not implemented yet: "
                "use --replay FILE... (see --help)");
        return EX_USAGE_;
    }
    if (a->config) {
        log_err("-c and --replay do not go together");
        return EX_USAGE_;
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
        stream_tmp_free(&s);
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

/* Exit status for an error opening an input (file or model). */
static int input_status(int rc)
{
    switch (-rc) {
    case ENOENT: case EACCES: case EPERM: case EISDIR: case ENOTDIR: case ELOOP:
    case ENAMETOOLONG:
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
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static void log_model(const net_model *m)
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
    log_info("model %s: sha256 %s, impl %s, %d classes (%s), rate %s, normalisation %s",
             net_path(m), net_digest(m), net_impl(m), net_classes(m), classes, rate,
             norm_name(net_normalize(m)));
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct args args = { 0 };
    struct cfg cfg = { 0 };
    net_model *model = NULL;
    pipeline *pl = NULL;
    publisher *pub = NULL;
    struct source *src = NULL;
    unsigned n_open = 0, n_started = 0;
    bool pl_started = false;
    char err[1024] = "";
    int rc, status = EX_OK_;

    /* log */
    log_init("tridentd");
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    block_signals(true);

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

    /* model */
    rc = net_load(cfg.model, &model, err, sizeof err);
    if (rc < 0) {
        log_err("%s", err);
        status = input_status(rc);
        goto out_cfg;
    }
    log_model(model);

    /* workers and queues */
    struct pipeline_opts po = { .workers = cfg.workers, .stats_interval = cfg.stats_interval };
    rc = pipeline_create(model, &po, &pl, err, sizeof err);
    if (rc < 0) {
        log_err("%s", err);
        status = EX_OSERR_;
        goto out_model;
    }

    /* publisher */
    struct publish_opts pubo = {
        .endpoints = cfg.endpoints, .n_endpoints = cfg.n_endpoints,
        .hwm = cfg.hwm, .to_stdout = cfg.to_stdout,
    };
    rc = publish_create(&pubo, &pub, err, sizeof err);
    if (rc < 0) {
        log_err("%s", err);
        status = rc == -ENOMEM ? EX_OSERR_ : EX_UNAVAILABLE_;
        goto out_pipeline;
    }
    publish_set_abort(pub, &abort_flag);
    for (unsigned i = 0; i < cfg.n_endpoints; i++)
        log_info("publishing on %s", publish_endpoint(pub, i));
    if (cfg.to_stdout)
        log_info("publishing on standard output");

    /* sources */
    src = calloc(cfg.n_streams, sizeof *src);
    if (!src) {
        log_err("out of memory");
        status = EX_OSERR_;
        goto out_publisher;
    }
    for (unsigned i = 0; i < cfg.n_streams; i++) {
        struct source *s = &src[i];
        s->cfg = &cfg.streams[i];
        s->ops = cfg.streams[i].type == CFG_FILE ? &source_file_ops : &source_alsa_ops;
        rc = s->ops->open(s, err, sizeof err);
        if (rc < 0) {
            log_err("%s", err);
            status = input_status(rc);
            goto out_sources;
        }
        n_open++;
        rc = pipeline_add_source(pl, s, err, sizeof err);
        if (rc < 0) {
            log_err("%s", err);
            status = rc == -EEXIST ? EX_USAGE_ : rc == -ENOMEM ? EX_OSERR_ : EX_DATAERR_;
            goto out_sources;
        }
        s->ops->info(s, err, sizeof err);
        log_info("source %s", err);
    }
    for (unsigned i = 0; i < pipeline_streams(pl); i++) {
        pipeline_stream_info(pl, i, err, sizeof err);
        log_info("%s", err);
    }
    log_info("%u workers", pipeline_workers(pl));

    /* Subscribers: the only wait a signal must be able to cut short. */
    if (cfg.wait_subscribers) {
        log_info("waiting for %u subscriber%s", cfg.wait_subscribers,
                 cfg.wait_subscribers == 1 ? "" : "s");
        block_signals(false);
        rc = publish_wait_subscribers(pub, cfg.wait_subscribers, &stop_flag);
        block_signals(true);
        if (rc < 0 || stop_flag) {
            log_info("stopped before the start");
            goto out_sources;
        }
    }

    /* run */
    rc = pipeline_start(pl, pub);
    if (rc < 0) {
        log_err("cannot start the pipeline: %s", strerror(-rc));
        status = EX_OSERR_;
        goto out_sources;
    }
    pl_started = true;
    for (unsigned i = 0; i < cfg.n_streams; i++) {
        rc = src[i].ops->start(&src[i]);
        if (rc < 0) {
            log_err("%s: cannot start: %s", cfg.streams[i].path, strerror(-rc));
            status = EX_OSERR_;
            goto out_run;
        }
        n_started++;
    }
    /* From here on the main thread takes the signals; every other thread
     * was created with them blocked.  They stay unblocked through the drain
     * below, so that a second one can abort it. */
    block_signals(false);
    while (!stop_flag && !pipeline_finished(pl)) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (stop_flag)
        log_info("signal: stopping the sources, publishing what they read");

out_run:
    for (unsigned i = n_started; i-- > 0;)
        src[i].ops->stop(&src[i]);
    /* A source that never started still has to end its streams. */
    for (unsigned i = n_started; i < n_open; i++)
        src[i].ops->stop(&src[i]);
    if (pl_started)
        pipeline_join(pl);
out_sources:
    for (unsigned i = n_open; i-- > 0;)
        src[i].ops->close(&src[i]);
    free(src);
out_publisher:
    publish_destroy(pub);
out_pipeline:
    pipeline_destroy(pl);
out_model:
    net_destroy(model);
out_cfg:
    cfg_free(&cfg);
    free(args.endpoints);
    return status;
}
