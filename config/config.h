/* SPDX-License-Identifier: Apache-2.0 */
/* config.h — the daemon's configuration as a plain struct.
 *
 * cfg_load() parses a libconfig file (docs/DESIGN.md "Config") through one key
 * table in config.c; the same table gives cfg_print_help() (the config part of
 * --help), cfg_write_example() (config/trident.conf) and the bounds checked by
 * cfg_validate().  The command line fills the same struct (--replay builds one
 * file stream per file) and overrides the file.  Strings are owned by the
 * struct; cfg_free() releases them.  Errors name the file and line:
 * "FILE:LINE: publish.hwm: must be between 0 and 10000000".
 *
 * Relative paths in the file (model, streams' path, @include) are resolved
 * against the directory of the config file, not the working directory: under
 * systemd the working directory is "/".
 *
 * Exit codes for main (sysexits): CFG_EXIT_USAGE for command-line errors,
 * CFG_EXIT_CONFIG for a bad config file or model.
 */
#ifndef TRIDENT_CONFIG_H
#define TRIDENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_EXIT_USAGE  64   /* EX_USAGE */
#define CFG_EXIT_CONFIG 78   /* EX_CONFIG */

#define CFG_DEFAULT_FILE TRIDENT_SYSCONFDIR "/trident/trident.conf"

enum cfg_type { CFG_FILE, CFG_ALSA };
enum cfg_pace { CFG_PACE_FAST, CFG_PACE_REALTIME };

struct cfg_stream {
    char         *name;          /* stream name; channels become NAME/0, NAME/1... */
    enum cfg_type type;
    unsigned      hop;           /* samples between window starts (default 1024) */
    double        anomaly_threshold; /* 0: the model's detector threshold */
    double        signal_floor;  /* rms at or below: quality no_signal (0: flat only) */
    /* smooth: the state is the label K (agree) of the last N (windows) windows
     * voted for; a classified window below min_score votes for none; a new
     * state is kept at least hold windows (pipeline.c "States") */
    unsigned      smooth_windows, smooth_agree, smooth_hold;
    double        smooth_min_score;
    /* type = "file" */
    char         *path;          /* from a file: resolved against the config file's
                                  * directory; from --replay: as given (working dir) */
    enum cfg_pace pace;          /* default realtime */
    bool          loop;
    /* type = "alsa" */
    char         *device;
    unsigned      rate;
    unsigned      channels;
    char         *format;        /* "S16_LE", "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE" (cvt_parse) */
    unsigned      period;        /* frames; 0: default */
    unsigned      buffer;        /* frames; 0: default */
    int           rt_priority;   /* 0: none; 1..99 SCHED_FIFO */
    char        **channel_names; /* optional; for alsa exactly `channels` entries */
    unsigned      n_channel_names;
    /* severity = { ... }: velocity RMS and zone (dsp/severity.h); off: both 0 */
    double        sev_scale, sev_sensitivity, sev_seconds;
    unsigned      sev_group;
    char         *sev_foundation; /* "rigid" | "flexible" */
    /* bearing defect frequencies (dsp/severity.h sev_set_bearing); off: rpm 0 */
    double        sev_rpm, sev_ball_d, sev_pitch_d, sev_contact, sev_env_hz;
    unsigned      sev_balls;
    /* record = { ... }: the captured samples on disk (daemon/record.h) */
    char         *record_path;   /* NULL: not recorded */
    unsigned      record_max_bytes;
    double        record_max_age; /* seconds */
    /* keep = { ... }: clips of the interesting windows */
    char         *keep_path;     /* NULL: nothing kept */
    double        keep_unsure_below;
    bool          keep_unknown, keep_anomaly, keep_events;
    unsigned      keep_max_bytes, keep_max_per_minute;
    int           line;          /* line in the config file; 0 if from the command line */
};

struct cfg {
    char              *file;            /* config file read, or NULL */
    char              *model;           /* model path */
    int                model_line;      /* line of `model` in the file; 0: default or
                                         * command line (for "FILE:LINE: model: ..." errors) */
    unsigned           workers;         /* 0: one per online CPU */
    char             **endpoints;
    unsigned           n_endpoints;
    int                hwm;
    bool               nodrop;          /* back-pressure at hwm instead of loss */
    bool               to_stdout;
    double             stats_interval;  /* seconds; 0: off */
    unsigned           wait_subscribers; /* command line only */
    /* results = { ... }: JSON Lines files (daemon/sink_results.c) */
    char              *results_path;    /* NULL: off */
    unsigned           results_max_bytes, results_files, results_queue;
    bool               results_every;   /* every result, not only events, severity, stats */
    /* http = { ... }: /metrics, /api/status and the page (daemon/sink_http.c) */
    char              *http_listen;     /* "ADDRESS:PORT"; NULL: off */
    bool               http_remote;     /* may listen beyond loopback (then needs a token) */
    char              *http_token_file; /* bearer token; NULL: none */
    unsigned           http_queue;
    unsigned           http_history;    /* seconds of history for the page */
    /* mqtt = { ... }: states, events, Home Assistant discovery (daemon/sink_mqtt.c) */
    char              *mqtt_broker;     /* mqtt://HOST:PORT or mqtts://HOST:PORT; NULL: off */
    char              *mqtt_client_id;  /* NULL: trident-HOST */
    char              *mqtt_topic;      /* topic prefix; NULL: trident/HOST */
    char              *mqtt_username, *mqtt_password_file;
    char              *mqtt_ca_file, *mqtt_cert_file, *mqtt_key_file;
    bool               mqtt_discovery, mqtt_results;
    char              *mqtt_discovery_prefix;
    int                mqtt_qos;
    unsigned           mqtt_keepalive, mqtt_queue;
    struct cfg_stream *streams;
    unsigned           n_streams;
};

/* Command-line settings that override the file.  main fills one from argv
 * and keeps it, so that a SIGHUP reload applies the same overrides to the
 * re-read file.  Unset fields leave the file's value. */
struct cfg_cli {
    const char        *model;            /* NULL: unset */
    int                workers;          /* < 0: unset */
    const char *const *endpoints;        /* n_endpoints == 0: unset */
    unsigned           n_endpoints;
    int                to_stdout;        /* < 0: unset, else 0/1 */
    double             stats_interval;   /* < 0: unset */
    unsigned           wait_subscribers;
    const char        *record;           /* --record DIR: record.path of every stream */
    bool               no_publish;       /* --no-publish: no socket, stdout only */
    const char        *http;             /* --http ADDR:PORT: http.listen */
    const char        *mqtt;             /* --mqtt URL: mqtt.broker */
    const char        *results;          /* --results DIR: results.path */
};
#define CFG_CLI_UNSET { .workers = -1, .to_stdout = -1, .stats_interval = -1 }

/* Apply the overrides to *c and validate the result (cfg_validate).  0,
 * -EINVAL (message in err, naming the option's key) or -ENOMEM. */
int  cfg_apply_cli(struct cfg *c, const struct cfg_cli *o, char *err, size_t errlen);

/* Fill *c with the defaults of the key table (no streams).  Does not free
 * what *c held.  0 or -ENOMEM. */
int  cfg_defaults(struct cfg *c);

/* Parse and validate PATH.  On success *c's old contents are freed and
 * replaced by the defaults overridden by the file (so a reload can load into
 * the live struct's copy and keep the old one on failure); on failure *c is
 * untouched and err holds one line "FILE:LINE: key: message".  *c must be
 * zeroed or hold a config from cfg_defaults/cfg_load/cfg_copy.
 * Returns 0, -ENOENT (missing file), -EACCES etc. (unreadable), -EINVAL
 * (syntax or content), -ENOMEM. */
int  cfg_load(const char *path, struct cfg *c, char *err, size_t errlen);

/* Check what the command line may have changed: every bound of the key
 * table, required keys, unique stream and channel names, something to
 * publish to.  cfg_load() already did this for a file.  0 or -EINVAL. */
int  cfg_validate(const struct cfg *c, char *err, size_t errlen);

/* Release every string and array; leaves *c zeroed (safe to call twice). */
/* tcp://HOST:PORT (numeric IPv4, [IPv6] or *; port 1..65535 or *) or
 * ipc://PATH (<= 107 bytes): 0, or -EINVAL with a message in msg. */
int  cfg_check_endpoint(const char *ep, char *msg, size_t len);
void cfg_free(struct cfg *c);
/* http.listen: "ADDRESS:PORT" or "[IPV6]:PORT", numeric; *loopback for
 * 127.0.0.0/8 and ::1.  0, or -EINVAL with a message in msg. */
int  cfg_split_hostport(const char *s, char *host, size_t hl, unsigned *port, bool *loopback,
                        char *msg, size_t len);
/* mqtt.broker: "mqtt://HOST[:PORT]" (1883) or "mqtts://HOST[:PORT]" (8883);
 * HOST may be a name or [IPV6].  0, or -EINVAL with a message in msg. */
int  cfg_parse_broker(const char *url, char *host, size_t hl, unsigned *port, bool *tls,
                      char *msg, size_t len);

/* Deep copy; *dst must not hold anything (it is overwritten).  0 or -ENOMEM. */
int  cfg_copy(struct cfg *dst, const struct cfg *src);

/* A stream with the defaults of TYPE and no name; for the command line.
 * Does not free what *s held.  0 or -ENOMEM. */
int  cfg_stream_defaults(struct cfg_stream *s, enum cfg_type type);

/* Append a deep copy of *s to c->streams.  0 or -ENOMEM. */
int  cfg_add_stream(struct cfg *c, const struct cfg_stream *s);

/* Replace a string field (for command-line overrides): *field = strdup(v),
 * old value freed.  0 or -ENOMEM. */
int  cfg_set_string(char **field, const char *v);

/* Same settings (every field but `line`)?  For SIGHUP: a stream whose name is
 * in both configs and that compares equal keeps running. */
bool cfg_stream_equal(const struct cfg_stream *a, const struct cfg_stream *b);
/* Release what a stream owns (its strings and lists; not s itself) and
 * zero it: the one free for a cfg_stream made by cfg_stream_defaults(). */
void cfg_stream_free(struct cfg_stream *s);

/* Index of the stream called NAME in c, or -1. */
int  cfg_find_stream(const struct cfg *c, const char *name);

/* Name of channel CH of stream S as published: S->name for one channel
 * (S->channels == 1) without channel_names, else "NAME/<channel_names[ch]>"
 * or "NAME/<ch>".  For a file stream, S->channels means the file's channel
 * count, known once it is open: source_file.c passes a copy with it set.
 * Returns the length snprintf would write. */
int  cfg_channel_name(const struct cfg_stream *s, unsigned ch, char *buf, size_t len);

/* The "Config file keys" part of --help, from the key table. */
void cfg_print_help(FILE *f);

/* The fully commented example file (config/trident.conf), from the key
 * table; it parses to exactly the defaults. */
void cfg_write_example(FILE *f);

/* Human summary for --check: model, workers, publishing, one line per stream. */
void cfg_print_summary(const struct cfg *c, FILE *f);

#endif
