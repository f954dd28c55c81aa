/* SPDX-License-Identifier: Apache-2.0 */
/* config.c — trident's configuration: one key table, many uses.
 *
 * DESIGN
 * Every key the config file knows is one row of `keys[]` below: its path, its
 * type, where its value lives (an offset into struct cfg or struct
 * cfg_stream), its default, its bounds and its documentation (the habit of
 * Redis' createIntConfig table).  Everything else is a walk over that table:
 *
 *   cfg_defaults / cfg_stream_defaults   write the defaults
 *   cfg_load                             libconfig tree -> typed struct, with
 *                                        "FILE:LINE: key: message" errors
 *   cfg_validate                         bounds and cross-key rules on a struct
 *                                        the command line may have changed
 *   cfg_copy / cfg_free / cfg_stream_equal   deep copy, release, compare
 *   cfg_print_help / cfg_write_example   --help and config/trident.conf
 *
 * so a new key is one row (plus its struct field) and cannot be parsed but
 * undocumented, or documented with the wrong default.
 *
 * libconfig is only used to read the file: every value is copied out and the
 * tree destroyed before cfg_load returns (rtl_433 keeps the tree alive and
 * leaks it; we don't).  Its lookups are strictly typed, so types are checked
 * here by hand: an integer is accepted where a number is expected, a float
 * where an integer is expected is an error, never a silent truncation.
 * Stream keys apply to every stream, to "file" streams or to "alsa" streams
 * only; a key of the other type is an error rather than silently ignored.
 */
#include "config.h"

#include <assert.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef TRIDENT_DATADIR
#define TRIDENT_DATADIR "/usr/local/share/trident"
#endif

/* Published names must fit source.h's STREAM_NAME_MAX (128 with the NUL). */
#define NAME_MAX_LEN 127

enum kind {
    K_STR,      /* char * */
    K_CHOICE,   /* char *, one of choices[] */
    K_ENUM,     /* enum stored as int, index into choices[] */
    K_UINT,     /* unsigned */
    K_INT,      /* int */
    K_DBL,      /* double */
    K_BOOL,     /* bool */
    K_STRLIST,  /* char ** + unsigned count at off_n */
    K_GROUP,    /* a group of further keys ("publish") */
    K_STREAMS,  /* the list of stream groups */
};

enum scope {
    SC_GLOBAL,  /* field of struct cfg */
    SC_STREAM,  /* field of struct cfg_stream, any stream type */
    SC_FILE,    /* ... type = "file" only */
    SC_ALSA,    /* ... type = "alsa" only */
};

enum {
    F_REQUIRED = 1,   /* no default: the key must be given */
    F_PATH     = 2,   /* relative values are resolved against the config's directory */
    F_COMMENT  = 4,   /* example file: shown commented out (default is build-dependent) */
};

struct key {
    const char  *path;      /* "model", "publish.hwm"; stream keys: "hop" */
    enum kind    kind;
    enum scope   scope;
    size_t       off;       /* offset of the value */
    size_t       off_n;     /* K_STRLIST: offset of the count */
    long long    lo, hi;    /* integers: bounds; K_STRLIST: bounds on the count */
    double       dlo, dhi;  /* K_DBL: bounds */
    long long    idef;      /* default of K_UINT, K_INT, K_BOOL, K_ENUM */
    double       ddef;      /* default of K_DBL */
    const char  *sdef;      /* default of K_STR, K_CHOICE; the one K_STRLIST element */
    const char *const *choices;
    unsigned     flags;
    const char  *doc;
    const char  *def_doc;   /* the default as the docs tell it, when not the value itself */
    const char  *ex;        /* F_COMMENT: the value shown in the example file */
};

static const char *const type_names[] = { [CFG_FILE] = "file", [CFG_ALSA] = "alsa", NULL };
static const char *const foundation_names[] = { "rigid", "flexible", NULL };
static const char *const pace_names[] = { [CFG_PACE_FAST] = "fast", [CFG_PACE_REALTIME] = "realtime", NULL };
/* The ALSA names dsp/convert.h converts (cvt_parse). */
static const char *const format_names[] = { "S16_LE", "S24_LE", "S24_3LE", "S32_LE", "FLOAT_LE", NULL };

/* Enums are written through an int: make sure that is their size. */
static_assert(sizeof(enum cfg_type) == sizeof(int), "enum cfg_type is int-sized");
static_assert(sizeof(enum cfg_pace) == sizeof(int), "enum cfg_pace is int-sized");

#define G(f) SC_GLOBAL, offsetof(struct cfg, f)
#define S(sc, f) sc, offsetof(struct cfg_stream, f)

static const struct key keys[] = {
    { "model", K_STR, G(model), .sdef = TRIDENT_DATADIR "/cwru.safetensors",
      .flags = F_PATH | F_COMMENT, .ex = "\"/usr/share/trident/cwru.safetensors\"",
      .def_doc = "the shipped model, cwru.safetensors in the data directory "
                 "(/usr/share/trident with the Debian package)",
      .doc = "Model file (safetensors, see tridentd(8)). A relative path is "
             "resolved against the directory of this file. SIGHUP re-reads it." },
    { "workers", K_UINT, G(workers), .lo = 0, .hi = 256, .idef = 0,
      .doc = "Worker threads running the network; 0 means one per online CPU." },
    { "publish", K_GROUP, G(endpoints),
      .doc = "Where classifications and statistics go." },
    { "publish.endpoints", K_STRLIST, G(endpoints), offsetof(struct cfg, n_endpoints),
      .lo = 0, .hi = 16, .sdef = "tcp://127.0.0.1:5556",
      .doc = "ZeroMQ endpoints the publisher binds (tcp://ADDRESS:PORT or "
             "ipc:///run/trident/NAME). Each message is two frames: the stream "
             "name (the topic) and one JSON object. Use numeric addresses or *: "
             "the systemd unit allows no netlink socket to resolve interface names." },
    { "publish.hwm", K_INT, G(hwm), .lo = 0, .hi = 10000000, .idef = 10000,
      .doc = "ZeroMQ send high-water mark in messages per subscriber; a slower "
             "subscriber loses messages beyond it, it alone and uncounted (libzmq "
             "drops them in that subscriber's queue): size it for the longest "
             "pause a subscriber may take (0: unlimited)." },
    { "publish.nodrop", K_BOOL, G(nodrop), .idef = 0,
      .doc = "Make every subscriber lossless: at a subscriber's hwm, publishing "
             "waits for it instead of dropping (ZMQ_XPUB_NODROP; --replay always "
             "does). Then one subscriber that stops reading stalls every stream, "
             "and live samples are dropped at capture." },
    { "publish.stdout", K_BOOL, G(to_stdout), .idef = 0,
      .doc = "Also write every message as one JSON line on standard output "
             "(the journal, under systemd)." },
    { "publish.stats_interval", K_DBL, G(stats_interval), .dlo = 0, .dhi = 86400,
      .ddef = 10.0,
      .doc = "Seconds between statistics messages on topic \"_stats\" (at least 0.1); "
             "0 turns them off." },
    { "results", K_GROUP, G(results_path), .def_doc = "off",
      .doc = "Write what is published to JSON Lines files for later analysis and "
             "relabelling: events, severity and statistics, and with results.every "
             "every window's result, one JSON object a line (the ZeroMQ message with "
             "a \"topic\" member first). On when results.path is set or with tridentd "
             "--results DIR. Files rotate by size: results.jsonl becomes "
             "results.jsonl.1 and so on; the oldest beyond results.files is deleted, "
             "so the directory never holds more than about results.files + 1 times "
             "results.max_bytes." },
    { "results.path", K_STR, G(results_path), .flags = F_PATH | F_COMMENT, .ex = "\"/var/lib/trident/results\"", .def_doc = "none: off",
      .doc = "Directory of the files (created if missing). A relative path is resolved "
             "against the directory of this file." },
    { "results.every", K_BOOL, G(results_every), .idef = 1,
      .doc = "Every window's result too, not only events, severity and statistics." },
    { "results.max_bytes", K_UINT, G(results_max_bytes), .lo = 4096, .hi = 4294967295LL,
      .idef = 64 * 1024 * 1024, .def_doc = "67108864 (64 MiB)",
      .doc = "results.jsonl is rotated before it would grow beyond this many bytes." },
    { "results.files", K_UINT, G(results_files), .lo = 1, .hi = 1000, .idef = 8,
      .doc = "Rotated files kept besides the current one (results.jsonl.1 is the newest)." },
    { "results.queue", K_UINT, G(results_queue), .lo = 16, .hi = 1000000, .idef = 8192,
      .doc = "Messages waiting for the writer at most; beyond, they are dropped and "
             "counted (\"sinks\" in _stats)." },
    { "http", K_GROUP, G(http_listen), .def_doc = "off",
      .doc = "A small web server (libmicrohttpd): /metrics in the Prometheus text "
             "format, /api/status (JSON: every stream's state, last label, "
             "probabilities, level and recent events) and / (a live page of the "
             "same, self-contained). On when http.listen is set or with tridentd "
             "--http ADDRESS:PORT. It serves from its own thread and queue: a slow "
             "client never delays classification." },
    { "http.listen", K_STR, G(http_listen), .flags = F_COMMENT, .ex = "\"127.0.0.1:9105\"",
      .def_doc = "none: off",
      .doc = "ADDRESS:PORT to listen on, numeric (\"127.0.0.1:9105\", \"[::1]:9105\"). "
             "An address other than loopback needs http.remote = true and a token." },
    { "http.remote", K_BOOL, G(http_remote), .idef = 0,
      .doc = "Allow http.listen beyond loopback. Then http.token_file is required: every "
             "request must carry \"Authorization: Bearer TOKEN\" (or put a TLS reverse "
             "proxy in front; see tridentd(8))." },
    { "http.token_file", K_STR, G(http_token_file), .flags = F_PATH | F_COMMENT, .ex = "\"/etc/trident/http.token\"", .def_doc = "none",
      .doc = "File holding the bearer token (its first line; at least 16 characters). "
             "When set, every request needs it, on loopback too." },
    { "http.history", K_UINT, G(http_history), .lo = 10, .hi = 3600, .idef = 300,
      .doc = "Seconds of history the page's charts show." },
    { "http.queue", K_UINT, G(http_queue), .lo = 16, .hi = 1000000, .idef = 4096,
      .doc = "Messages waiting for the server thread at most; beyond, they are dropped "
             "and counted." },
    { "mqtt", K_GROUP, G(mqtt_broker), .def_doc = "off",
      .doc = "Publish to an MQTT broker (libmosquitto): each stream's smoothed state "
             "(retained) and events under TOPIC/STREAM/..., an availability topic with a "
             "last will, and Home Assistant discovery, so that each stream appears as a "
             "sensor by itself. On when mqtt.broker is set or with tridentd --mqtt URL. "
             "It reconnects with backoff; while the broker is away messages wait in a "
             "bounded queue, and what does not fit is dropped and counted." },
    { "mqtt.broker", K_STR, G(mqtt_broker), .flags = F_COMMENT, .ex = "\"mqtt://127.0.0.1:1883\"",
      .def_doc = "none: off",
      .doc = "mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883, TLS)." },
    { "mqtt.client_id", K_STR, G(mqtt_client_id), .flags = F_COMMENT, .ex = "\"trident-pumproom\"",
      .def_doc = "trident-HOSTNAME",
      .doc = "MQTT client identifier." },
    { "mqtt.topic", K_STR, G(mqtt_topic), .flags = F_COMMENT, .ex = "\"trident/pumproom\"",
      .def_doc = "trident/HOSTNAME",
      .doc = "Topic prefix: states go to TOPIC/STREAM/state, events to TOPIC/STREAM/event, "
             "results (mqtt.results) to TOPIC/STREAM/result, availability to "
             "TOPIC/status." },
    { "mqtt.username", K_STR, G(mqtt_username), .flags = F_COMMENT, .ex = "\"trident\"",
      .def_doc = "none",
      .doc = "User name for the broker." },
    { "mqtt.password_file", K_STR, G(mqtt_password_file), .flags = F_PATH | F_COMMENT, .ex = "\"/etc/trident/mqtt.password\"", .def_doc = "none",
      .doc = "File holding the password (its first line)." },
    { "mqtt.ca_file", K_STR, G(mqtt_ca_file), .flags = F_PATH | F_COMMENT, .ex = "\"/etc/ssl/certs/ca-certificates.crt\"", .def_doc = "the system's",
      .doc = "mqtts://: CA certificates (PEM) to verify the broker with." },
    { "mqtt.cert_file", K_STR, G(mqtt_cert_file), .flags = F_PATH | F_COMMENT, .ex = "\"/etc/trident/mqtt.crt\"", .def_doc = "none",
      .doc = "mqtts://: client certificate (PEM), with mqtt.key_file." },
    { "mqtt.key_file", K_STR, G(mqtt_key_file), .flags = F_PATH | F_COMMENT, .ex = "\"/etc/trident/mqtt.key\"", .def_doc = "none",
      .doc = "mqtts://: the client certificate's private key (PEM)." },
    { "mqtt.qos", K_INT, G(mqtt_qos), .lo = 0, .hi = 2, .idef = 1,
      .doc = "QoS of states and events (results go at 0)." },
    { "mqtt.keepalive", K_UINT, G(mqtt_keepalive), .lo = 5, .hi = 3600, .idef = 30,
      .doc = "Seconds between keep-alive pings; the broker publishes the last will "
             "(\"offline\") after 1.5 times this without a word." },
    { "mqtt.results", K_BOOL, G(mqtt_results), .idef = 0,
      .doc = "Also publish every window's result (QoS 0, not retained)." },
    { "mqtt.discovery", K_BOOL, G(mqtt_discovery), .idef = 1,
      .doc = "Publish Home Assistant MQTT discovery configs (retained)." },
    { "mqtt.discovery_prefix", K_STR, G(mqtt_discovery_prefix), .sdef = "homeassistant",
      .doc = "Home Assistant's discovery prefix." },
    { "mqtt.queue", K_UINT, G(mqtt_queue), .lo = 16, .hi = 1000000, .idef = 4096,
      .doc = "Messages waiting for the broker at most; beyond, they are dropped and "
             "counted (\"sinks\" in _stats)." },
    { "streams", K_STREAMS, G(streams),
      .doc = "The sources to classify, a list of groups ( { ... }, { ... } ). "
             "An ALSA device or file with several channels makes one stream per "
             "channel, named NAME/0, NAME/1, ... (or NAME/<channel_names[i]>); "
             "a single channel is published as NAME." },

    { "name", K_STR, S(SC_STREAM, name), .flags = F_REQUIRED,
      .doc = "Stream name: the topic of its messages. Unique; must not start "
             "with \"_\" (reserved for \"_stats\")." },
    { "type", K_ENUM, S(SC_STREAM, type), .choices = type_names, .flags = F_REQUIRED,
      .doc = "\"alsa\" captures from a sound card or DAQ, \"file\" replays a "
             "recording: WAV (also WAVE_EXTENSIBLE, RF64) or FLAC with 16/24/32-bit "
             "integer or 32-bit float samples." },
    { "hop", K_UINT, S(SC_STREAM, hop), .lo = 1, .hi = 1 << 20, .idef = 1024,
      .doc = "Samples between the starts of consecutive 1024-sample windows "
             "(below 1024 windows overlap, above it samples are skipped). For a "
             "stream resampled to the model's rate, samples at the model's rate." },
    { "channel_names", K_STRLIST, S(SC_STREAM, channel_names),
      offsetof(struct cfg_stream, n_channel_names), .lo = 0, .hi = 64,
      .def_doc = "none: channels are numbered",
      .doc = "Names of the channels, published as NAME/<channel name>; for "
             "\"alsa\" exactly `channels` of them." },
    { "anomaly_threshold", K_DBL, S(SC_STREAM, anomaly_threshold), .dlo = 0, .dhi = 1e9,
      .ddef = 0, .def_doc = "0: the model's own (trident.detector.threshold)",
      .doc = "Detector score above which a window is \"anomaly\" (anomaly model) or "
             "\"unknown\" (classifier with an open-set detector), for this stream; "
             "the score is a Mahalanobis distance per feature, about 1 for windows like "
             "the training data. Ignored for a model without a detector." },
    { "signal_floor", K_DBL, S(SC_STREAM, signal_floor), .dlo = 0, .dhi = 1e6, .ddef = 0,
      .def_doc = "0: only a flat window",
      .doc = "RMS at or below which a window's quality is \"no_signal\" (a flat "
             "window always is): it gets no class, and is counted in _stats." },
    { "smooth", K_GROUP, S(SC_STREAM, smooth_windows),
      .doc = "The smoothed state published beside each window's label, and its "
             "events on topic \"_events\"." },
    { "smooth.windows", K_UINT, S(SC_STREAM, smooth_windows), .lo = 1, .hi = 256, .idef = 5,
      .doc = "N: the state is decided over the last N windows." },
    { "smooth.agree", K_UINT, S(SC_STREAM, smooth_agree), .lo = 1, .hi = 256, .idef = 4,
      .doc = "K: a state needs K of the last N windows to vote for it (at most N). "
             "With K above (N+1)/2, labels that alternate window by window never "
             "change the state: neither gets K. A window votes for "
             "its label, \"unknown\" or \"anomaly\" included, or for its quality "
             "when that is not \"ok\" (\"no_signal\", \"clipped\", \"nonfinite\"). "
             "windows = 1; agree = 1 turns smoothing off." },
    { "smooth.min_score", K_DBL, S(SC_STREAM, smooth_min_score), .dlo = 0, .dhi = 1, .ddef = 0,
      .doc = "A classified window whose top probability is below this votes for "
             "no state (it still counts among the N)." },
    { "smooth.hold", K_UINT, S(SC_STREAM, smooth_hold), .lo = 0, .hi = 1000000, .idef = 0,
      .doc = "Windows a new state is kept before it may change again (hysteresis "
             "in time)." },
    { "severity", K_GROUP, S(SC_STREAM, sev_scale), .def_doc = "off",
      .doc = "Vibration severity, for a stream of acceleration: every severity.seconds "
             "the velocity RMS in mm/s over 10-1000 Hz (integrated in the frequency "
             "domain) and its zone A-D for the machine group and foundation, on topic "
             "_severity (tridentd(8)). On when severity.scale or severity.sensitivity is "
             "given (one of them). Computed at the model's rate, which must be above 2000 Hz." },
    { "severity.scale", K_DBL, S(SC_STREAM, sev_scale), .dlo = 0, .dhi = 1e9, .ddef = 0,
      .doc = "m/s^2 per sample unit (a sample is -1..1 for integer input)." },
    { "severity.sensitivity", K_DBL, S(SC_STREAM, sev_sensitivity), .dlo = 0, .dhi = 1e9,
      .ddef = 0,
      .doc = "Sample units per g (9.80665 m/s^2): for example 0.1 for a 100 mV/g sensor "
             "on an input whose full scale is 1 V." },
    { "severity.group", K_UINT, S(SC_STREAM, sev_group), .lo = 1, .hi = 2, .idef = 2,
      .doc = "ISO 10816-3 machine group: 1 (large, 300 kW to 50 MW) or 2 (medium, 15 to "
             "300 kW)." },
    { "severity.foundation", K_CHOICE, S(SC_STREAM, sev_foundation), .choices = foundation_names,
      .sdef = "rigid",
      .doc = "\"rigid\" or \"flexible\": the zone boundaries (group 2 rigid: A/B 1.4, B/C "
             "2.8, C/D 4.5 mm/s; flexible 2.3, 4.5, 7.1; group 1 rigid 2.3, 4.5, 7.1; "
             "flexible 3.5, 7.1, 11)." },
    { "severity.seconds", K_DBL, S(SC_STREAM, sev_seconds), .dlo = 0.1, .dhi = 10, .ddef = 1,
      .doc = "Seconds per estimate (a block of the next power of two samples, back to back, "
             "at most 2^20; its FFT runs on the windower thread: 2^20 points take about 40 ms)." },
    { "severity.rpm", K_DBL, S(SC_STREAM, sev_rpm), .dlo = 0, .dhi = 1e6, .ddef = 0,
      .def_doc = "0: no defect frequencies",
      .doc = "Shaft speed in revolutions per minute. With severity.balls, "
             "severity.ball_diameter and severity.pitch_diameter (all four or none), each "
             "_severity message also carries the bearing's defect frequencies (FTF, BPFO, "
             "BPFI, BSF) and how far each stands out of the squared-envelope spectrum, in dB "
             "(tridentd(8))." },
    { "severity.balls", K_UINT, S(SC_STREAM, sev_balls), .lo = 0, .hi = 1000, .idef = 0,
      .doc = "Rolling elements in the bearing (at least 3)." },
    { "severity.ball_diameter", K_DBL, S(SC_STREAM, sev_ball_d), .dlo = 0, .dhi = 1e6, .ddef = 0,
      .doc = "Rolling-element diameter, in the unit of severity.pitch_diameter." },
    { "severity.pitch_diameter", K_DBL, S(SC_STREAM, sev_pitch_d), .dlo = 0, .dhi = 1e6,
      .ddef = 0,
      .doc = "Pitch diameter (the circle through the rolling elements' centres); above "
             "severity.ball_diameter." },
    { "severity.contact_angle", K_DBL, S(SC_STREAM, sev_contact), .dlo = 0, .dhi = 89, .ddef = 0,
      .doc = "Contact angle in degrees (0 for a deep-groove ball bearing)." },
    { "severity.envelope_hz", K_DBL, S(SC_STREAM, sev_env_hz), .dlo = 10, .dhi = 1e6, .ddef = 1000,
      .doc = "The envelope band's lower edge: the acceleration is high-passed here "
             "(4th-order Butterworth) before it is squared; below the model's rate / 2. Put it "
             "under the resonances the impacts ring (the CWRU rig: 2-4 kHz)." },
    { "record", K_GROUP, S(SC_STREAM, record_path), .def_doc = "off",
      .doc = "Record the stream's samples as captured (at the device's or the "
             "file's rate, before resampling) into 32-bit float WAV files that "
             "rotate by size and age, each with a JSON sidecar (stream, input, rate, "
             "format, first sample, start time, losses, model). On when record.path "
             "is set, or for every stream with tridentd --record DIR. The capture "
             "thread never waits on the disk: samples the writer cannot keep up with "
             "are counted in _stats and listed in the sidecar; a write error or a "
             "full disk stops the recording (one log line, \"stopped\" in _stats), "
             "not the classification." },
    { "record.path", K_STR, S(SC_STREAM, record_path), .flags = F_PATH, .def_doc = "none: off",
      .doc = "Directory of the recordings (created if missing): files "
             "STREAM-YYYYmmddTHHMMSSZ-FIRSTSAMPLE.wav and .json (a stream name's "
             "characters other than letters, digits, '.', '-' and '_' become '_'). "
             "A relative path is resolved against the directory of this file." },
    { "record.max_bytes", K_UINT, S(SC_STREAM, record_max_bytes), .lo = 4096,
      .hi = 4294967295LL, .idef = 256 * 1024 * 1024, .def_doc = "268435456 (256 MiB)",
      .doc = "A new file is started before a file would grow beyond this many bytes." },
    { "record.max_age", K_DBL, S(SC_STREAM, record_max_age), .dlo = 0.1, .dhi = 604800,
      .ddef = 3600,
      .doc = "Seconds of samples (at the stream's rate) after which a new file is started." },
    { "keep", K_GROUP, S(SC_STREAM, keep_path), .def_doc = "off",
      .doc = "Keep the interesting windows as clips for labelling "
             "(trident-label(1)): windows whose top probability is below "
             "keep.unsure_below, labelled \"unknown\" or \"anomaly\", or that "
             "changed the smoothed state. A clip is the window's 1024 samples at the "
             "model's rate as they were classified (after resampling, before "
             "normalisation), a 32-bit float WAV, with a JSON sidecar (stream, seq, "
             "sample, time, label, state, probabilities, model). On when keep.path is set." },
    { "keep.path", K_STR, S(SC_STREAM, keep_path), .flags = F_PATH, .def_doc = "none: off",
      .doc = "Directory of the clips (created if missing): files "
             "STREAM-SEQ-LABEL.wav and .json. A relative path is resolved against "
             "the directory of this file." },
    { "keep.unsure_below", K_DBL, S(SC_STREAM, keep_unsure_below), .dlo = 0, .dhi = 1,
      .ddef = 0.6,
      .doc = "Keep a classified window whose top probability is below this (0: none "
             "for this reason)." },
    { "keep.unknown", K_BOOL, S(SC_STREAM, keep_unknown), .idef = 1,
      .doc = "Keep the windows labelled \"unknown\" (a classifier's open-set detector)." },
    { "keep.anomaly", K_BOOL, S(SC_STREAM, keep_anomaly), .idef = 1,
      .doc = "Keep the windows an anomaly model labels \"anomaly\"." },
    { "keep.events", K_BOOL, S(SC_STREAM, keep_events), .idef = 1,
      .doc = "Keep the window that changed the smoothed state." },
    { "keep.max_bytes", K_UINT, S(SC_STREAM, keep_max_bytes), .lo = 65536,
      .hi = 4294967295LL, .idef = 64 * 1024 * 1024, .def_doc = "67108864 (64 MiB)",
      .doc = "Bytes of clips and sidecars this stream writes in one run at most; beyond "
             "it windows are no longer kept (counted as \"capped\" in _stats)." },
    { "keep.max_per_minute", K_UINT, S(SC_STREAM, keep_max_per_minute), .lo = 1,
      .hi = 100000, .idef = 60,
      .doc = "At most this many clips a minute; the others are counted as "
             "\"rate_limited\" in _stats." },
    { "path", K_STR, S(SC_FILE, path), .flags = F_REQUIRED | F_PATH,
      .doc = "The recording. A relative path is resolved against the "
             "directory of this file." },
    { "pace", K_ENUM, S(SC_FILE, pace), .choices = pace_names, .idef = CFG_PACE_REALTIME,
      .doc = "\"realtime\" replays at the file's sample rate, as a live "
             "device would deliver it: samples that find the stream's ring (a second "
             "of them) full are dropped, counted and flagged as a gap; \"fast\" as "
             "fast as the pipeline goes, losing nothing." },
    { "loop", K_BOOL, S(SC_FILE, loop), .idef = 0,
      .doc = "Start again from the beginning at the end of the file." },
    { "device", K_STR, S(SC_ALSA, device), .flags = F_REQUIRED,
      .doc = "ALSA PCM name, such as \"hw:1,0\" or \"plughw:CARD=DAQ\"." },
    { "rate", K_UINT, S(SC_ALSA, rate), .lo = 1, .hi = 1000000, .flags = F_REQUIRED,
      .doc = "Sample rate in Hz. When the model was trained at another rate, "
             "the samples are resampled to it." },
    { "channels", K_UINT, S(SC_ALSA, channels), .lo = 1, .hi = 64, .idef = 1,
      .doc = "Channels to capture; each becomes a stream." },
    { "format", K_CHOICE, S(SC_ALSA, format), .choices = format_names, .sdef = "S16_LE",
      .doc = "Sample format asked of the device; integers are scaled to "
             "[-1, 1) (S16: x / 32768)." },
    { "period", K_UINT, S(SC_ALSA, period), .lo = 0, .hi = 1 << 22, .idef = 0,
      .doc = "ALSA period size in frames, asked of the device (it grants the "
             "nearest it can; the log says what); 0: 20 ms (rate / 50)." },
    { "buffer", K_UINT, S(SC_ALSA, buffer), .lo = 0, .hi = 1 << 24, .idef = 0,
      .doc = "ALSA buffer size in frames, asked of the device (it grants the "
             "nearest it can; the log says what); 0: 4 periods or half a "
             "second (rate / 2), whichever is longer." },
    { "rt_priority", K_INT, S(SC_ALSA, rt_priority), .lo = 0, .hi = 99, .idef = 0,
      .doc = "SCHED_FIFO priority of the capture thread (1-99); 0 keeps the "
             "normal scheduler. Needs RLIMIT_RTPRIO (the unit sets LimitRTPRIO)." },
};
#define N_KEYS (sizeof keys / sizeof keys[0])

#undef G
#undef S

/* ---- small helpers -------------------------------------------------------- */

#define AT(base, off, T) ((T *)(void *)((char *)(base) + (off)))
#define CAT(base, off, T) ((const T *)(const void *)((const char *)(base) + (off)))

static bool in_stream(const struct key *k) { return k->scope != SC_GLOBAL; }

static bool applies(const struct key *k, enum cfg_type t)
{
    return k->scope == SC_STREAM || (k->scope == SC_FILE && t == CFG_FILE) ||
           (k->scope == SC_ALSA && t == CFG_ALSA);
}

static const char *leaf(const char *path)
{
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* One line, whatever the file holds: a quoted value may contain line
     * breaks (a raw one inside the quotes, or \n; fuzz_config found it). */
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void free_list(char **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int dup_list(char ***dst, char *const *src, unsigned n)
{
    *dst = NULL;
    if (!n)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++)
        if (!(v[i] = strdup(src[i]))) {
            free_list(v, i);
            return -ENOMEM;
        }
    *dst = v;
    return 0;
}

int cfg_set_string(char **field, const char *v)
{
    char *d = NULL;
    if (v && !(d = strdup(v)))
        return -ENOMEM;
    free(*field);
    *field = d;
    return 0;
}

/* ---- defaults, free, copy, compare: walks over the table ------------------ */

/* Write the defaults of every key of SCOPE class (global, or stream) into base. */
static int set_defaults(void *base, bool stream)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (in_stream(k) != stream)
            continue;
        switch (k->kind) {
        case K_STR:
        case K_CHOICE:
            *AT(base, k->off, char *) = NULL;
            if (k->sdef && !(*AT(base, k->off, char *) = strdup(k->sdef)))
                return -ENOMEM;
            break;
        case K_ENUM: *AT(base, k->off, int) = (int)k->idef; break;
        case K_UINT: *AT(base, k->off, unsigned) = (unsigned)k->idef; break;
        case K_INT:  *AT(base, k->off, int) = (int)k->idef; break;
        case K_DBL:  *AT(base, k->off, double) = k->ddef; break;
        case K_BOOL: *AT(base, k->off, bool) = k->idef != 0; break;
        case K_STRLIST: {
            const char *one[1] = { k->sdef };
            *AT(base, k->off_n, unsigned) = k->sdef ? 1 : 0;
            if (dup_list(AT(base, k->off, char **), (char *const *)one, k->sdef ? 1 : 0))
                return -ENOMEM;
            break;
        }
        case K_GROUP:
        case K_STREAMS:
            break;
        }
    }
    return 0;
}

static void free_fields(void *base, bool stream)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (in_stream(k) != stream)
            continue;
        if (k->kind == K_STR || k->kind == K_CHOICE) {
            free(*AT(base, k->off, char *));
            *AT(base, k->off, char *) = NULL;
        } else if (k->kind == K_STRLIST) {
            free_list(*AT(base, k->off, char **), *AT(base, k->off_n, unsigned));
            *AT(base, k->off, char **) = NULL;
            *AT(base, k->off_n, unsigned) = 0;
        }
    }
}

/* After a memcpy of the struct, replace every owned pointer by its copy.  On
 * failure the not-yet-copied pointers are set to NULL so free_fields() on
 * dst is safe. */
static int dup_fields(void *dst, bool stream)
{
    int rc = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (in_stream(k) != stream)
            continue;
        if (k->kind == K_STR || k->kind == K_CHOICE) {
            char **p = AT(dst, k->off, char *);
            if (*p && (rc || !(*p = strdup(*p)))) {
                *p = NULL;
                rc = -ENOMEM;
            }
        } else if (k->kind == K_STRLIST) {
            char ***p = AT(dst, k->off, char **);
            unsigned *n = AT(dst, k->off_n, unsigned);
            if (rc || dup_list(p, *p, *n)) {
                *p = NULL;
                *n = 0;
                rc = -ENOMEM;
            }
        }
    }
    return rc;
}

static void stream_free(struct cfg_stream *s) { free_fields(s, true); }

void cfg_stream_free(struct cfg_stream *s)
{
    stream_free(s);
    memset(s, 0, sizeof *s);
}

int cfg_stream_defaults(struct cfg_stream *s, enum cfg_type type)
{
    memset(s, 0, sizeof *s);
    int rc = set_defaults(s, true);
    if (rc) {
        stream_free(s);
        return rc;
    }
    s->type = type;
    return 0;
}

int cfg_defaults(struct cfg *c)
{
    memset(c, 0, sizeof *c);
    int rc = set_defaults(c, false);
    if (rc)
        cfg_free(c);
    return rc;
}

void cfg_free(struct cfg *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->n_streams; i++)
        stream_free(&c->streams[i]);
    free(c->streams);
    free_fields(c, false);
    free(c->file);
    memset(c, 0, sizeof *c);
}

static int stream_copy(struct cfg_stream *dst, const struct cfg_stream *src)
{
    *dst = *src;
    int rc = dup_fields(dst, true);
    if (rc)
        stream_free(dst);
    return rc;
}

int cfg_add_stream(struct cfg *c, const struct cfg_stream *s)
{
    struct cfg_stream *v = realloc(c->streams, (c->n_streams + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    c->streams = v;
    int rc = stream_copy(&v[c->n_streams], s);
    if (rc)
        return rc;
    c->n_streams++;
    return 0;
}

int cfg_copy(struct cfg *dst, const struct cfg *src)
{
    *dst = *src;
    dst->streams = NULL;
    dst->n_streams = 0;
    dst->file = NULL;
    int rc = dup_fields(dst, false);
    if (!rc && src->file && !(dst->file = strdup(src->file)))
        rc = -ENOMEM;
    for (unsigned i = 0; !rc && i < src->n_streams; i++)
        rc = cfg_add_stream(dst, &src->streams[i]);
    if (rc)
        cfg_free(dst);
    return rc;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

bool cfg_stream_equal(const struct cfg_stream *a, const struct cfg_stream *b)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (!in_stream(k))
            continue;
        switch (k->kind) {
        case K_STR:
        case K_CHOICE:
            if (!str_eq(*CAT(a, k->off, char *), *CAT(b, k->off, char *)))
                return false;
            break;
        case K_ENUM:
        case K_INT:
            if (*CAT(a, k->off, int) != *CAT(b, k->off, int))
                return false;
            break;
        case K_UINT:
            if (*CAT(a, k->off, unsigned) != *CAT(b, k->off, unsigned))
                return false;
            break;
        case K_DBL:
            if (*CAT(a, k->off, double) != *CAT(b, k->off, double))
                return false;
            break;
        case K_BOOL:
            if (*CAT(a, k->off, bool) != *CAT(b, k->off, bool))
                return false;
            break;
        case K_STRLIST: {
            unsigned n = *CAT(a, k->off_n, unsigned);
            if (n != *CAT(b, k->off_n, unsigned))
                return false;
            for (unsigned j = 0; j < n; j++)
                if (!str_eq((*CAT(a, k->off, char **))[j], (*CAT(b, k->off, char **))[j]))
                    return false;
            break;
        }
        case K_GROUP:
        case K_STREAMS:
            break;
        }
    }
    return true;
}

int cfg_find_stream(const struct cfg *c, const char *name)
{
    for (unsigned i = 0; i < c->n_streams; i++)
        if (str_eq(c->streams[i].name, name))
            return (int)i;
    return -1;
}

/* ---- published names ------------------------------------------------------ */

int cfg_channel_name(const struct cfg_stream *s, unsigned ch, char *buf, size_t len)
{
    if (ch < s->n_channel_names)
        return snprintf(buf, len, "%s/%s", s->name, s->channel_names[ch]);
    /* A file's channel count is known once it is open: the file source asks
     * with a copy whose `channels` is the file's. */
    if (s->channels == 1 && !s->n_channel_names)
        return snprintf(buf, len, "%s", s->name);
    return snprintf(buf, len, "%s/%u", s->name, ch);
}

/* Published names of a file stream depend on the file's channel count, known
 * only when it is opened: without channel_names they are NAME or NAME/<k>. */
static bool open_ended(const struct cfg_stream *s)
{
    return s->type == CFG_FILE && !s->n_channel_names;
}

/* Names we can list without opening anything: every channel of an alsa
 * stream or of channel_names; for an open-ended file stream, NAME alone. */
static unsigned n_listed(const struct cfg_stream *s)
{
    if (s->n_channel_names)
        return s->n_channel_names;
    return s->type == CFG_ALSA ? s->channels : 1;
}

static void listed_name(const struct cfg_stream *s, unsigned i, char *buf, size_t len)
{
    if (open_ended(s))
        snprintf(buf, len, "%s", s->name);
    else
        cfg_channel_name(s, i, buf, len);
}

/* Could stream S publish under NAME? */
static bool may_publish(const struct cfg_stream *s, const char *name)
{
    if (!open_ended(s)) {
        char buf[NAME_MAX_LEN + 64];
        for (unsigned i = 0; i < n_listed(s); i++) {
            listed_name(s, i, buf, sizeof buf);
            if (!strcmp(buf, name))
                return true;
        }
        return false;
    }
    size_t n = strlen(s->name);
    if (strncmp(name, s->name, n))
        return false;
    if (!name[n])
        return true;
    if (name[n] != '/' || !name[n + 1])
        return false;
    for (const char *p = name + n + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* libconfig 1.5 parses an integer literal beyond 32 bits without the L
 * suffix as a wrapped int (hwm = 4294977296 reads as 10000).  Look at the
 * literal itself on the setting's source line: true if it says another
 * number than v.  A line that cannot be read or parsed says nothing. */
static bool literal_wrapped(const config_setting_t *s, long long v)
{
    const char *file = config_setting_source_file(s), *name = config_setting_name(s);
    unsigned line = config_setting_source_line(s);
    if (!file || !name || !line)
        return false;
    FILE *f = fopen(file, "r");
    if (!f)
        return false;
    char buf[4096];
    bool wrapped = false;
    for (unsigned l = 1; fgets(buf, sizeof buf, f); l++) {
        if (l < line)
            continue;
        size_t nl = strlen(name);
        for (char *p = strstr(buf, name); p; p = strstr(p + 1, name)) {
            if (p > buf && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '-'))
                continue;
            char *q = p + nl;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q != '=' && *q != ':')
                continue;
            q++;
            while (*q == ' ' || *q == '\t')
                q++;
            char *end;
            errno = 0;
            long long lit = strtoll(q, &end, 0);
            if (end != q)
                wrapped = errno == ERANGE || lit != v;
            break;
        }
        break;
    }
    fclose(f);
    return wrapped;
}

/* ---- validation shared by cfg_load and cfg_validate ----------------------- */

/* Bounds of one integer/double key; message into msg.  0 or -EINVAL. */
static int check_bounds(const struct key *k, const void *base, char *msg, size_t len)
{
    long long v;
    switch (k->kind) {
    case K_UINT: v = *CAT(base, k->off, unsigned); break;
    case K_INT:  v = *CAT(base, k->off, int); break;
    case K_STRLIST: v = *CAT(base, k->off_n, unsigned); break;
    case K_DBL: {
        double d = *CAT(base, k->off, double);
        if (!(d >= k->dlo && d <= k->dhi)) {
            snprintf(msg, len, "must be between %g and %g, not %g", k->dlo, k->dhi, d);
            return -EINVAL;
        }
        /* below 0.1 s the statistics would crowd out the windows */
        if (strcmp(k->path, "publish.stats_interval") == 0 && d > 0 && d < 0.1) {
            snprintf(msg, len, "must be 0 (off) or at least 0.1 seconds, not %g", d);
            return -EINVAL;
        }
        return 0;
    }
    case K_STR:
    case K_CHOICE: {
        const char *s = *CAT(base, k->off, char *);
        if (s && !*s) {
            snprintf(msg, len, "must not be empty");
            return -EINVAL;
        }
        if (s && k->kind == K_CHOICE) {
            for (const char *const *c = k->choices; *c; c++)
                if (!strcmp(*c, s))
                    return 0;
            snprintf(msg, len, "unknown value \"%s\"", s);
            return -EINVAL;
        }
        return 0;
    }
    default:
        return 0;
    }
    if (v < k->lo || v > k->hi) {
        if (k->kind == K_STRLIST)
            snprintf(msg, len, "must have %lld to %lld entries, not %lld", k->lo, k->hi, v);
        else
            snprintf(msg, len, "must be between %lld and %lld, not %lld", k->lo, k->hi, v);
        return -EINVAL;
    }
    return 0;
}

/* Rules of stream I that involve more than one key or stream: required keys,
 * the name, channel names, collisions with streams 0..i-1.  Writes "KEY:
 * message" to msg; *which gets the offending key for the caller's line.
 * 0 or -EINVAL. */
static int check_stream(const struct cfg *c, unsigned i, char *msg, size_t len,
                        const char **which)
{
    const struct cfg_stream *s = &c->streams[i];
    *which = NULL;
    for (size_t j = 0; j < N_KEYS; j++) {
        const struct key *k = &keys[j];
        if (!in_stream(k) || !applies(k, s->type))
            continue;
        if ((k->flags & F_REQUIRED) &&
            ((k->kind == K_STR && !*CAT(s, k->off, char *)) ||
             (k->kind == K_UINT && !*CAT(s, k->off, unsigned)))) {
            *which = k->path;
            snprintf(msg, len, "%s: missing (required for type \"%s\" streams)",
                     k->path, type_names[s->type]);
            return -EINVAL;
        }
        char m[200];
        if (check_bounds(k, s, m, sizeof m)) {
            *which = k->path;
            snprintf(msg, len, "%s: %s", k->path, m);
            return -EINVAL;
        }
    }
    *which = "name";
    if (s->name[0] == '_') {
        snprintf(msg, len, "name: \"%s\": names starting with \"_\" are reserved", s->name);
        return -EINVAL;
    }
    for (const char *p = s->name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(msg, len, "name: control characters are not allowed");
            return -EINVAL;
        }
    *which = "smooth.agree";
    if (s->smooth_agree > s->smooth_windows) {
        snprintf(msg, len, "smooth.agree: %u is more than smooth.windows (%u)", s->smooth_agree,
                 s->smooth_windows);
        return -EINVAL;
    }
    *which = "severity.sensitivity";
    if (s->sev_scale > 0 && s->sev_sensitivity > 0) {
        snprintf(msg, len, "severity: give scale or sensitivity, not both");
        return -EINVAL;
    }
    *which = "severity.rpm";
    bool any = s->sev_rpm > 0 || s->sev_balls || s->sev_ball_d > 0 || s->sev_pitch_d > 0;
    if (any && !(s->sev_scale > 0 || s->sev_sensitivity > 0)) {
        snprintf(msg, len, "severity: defect frequencies need severity.scale or "
                 "severity.sensitivity");
        return -EINVAL;
    }
    if (any && !(s->sev_rpm > 0 && s->sev_balls && s->sev_ball_d > 0 && s->sev_pitch_d > 0)) {
        snprintf(msg, len, "severity: defect frequencies need all of rpm, balls, "
                 "ball_diameter and pitch_diameter");
        return -EINVAL;
    }
    *which = "severity.balls";
    if (any && s->sev_balls < 3) {
        snprintf(msg, len, "severity.balls: %u; a bearing has at least 3", s->sev_balls);
        return -EINVAL;
    }
    *which = "severity.ball_diameter";
    if (any && s->sev_ball_d >= s->sev_pitch_d) {
        snprintf(msg, len, "severity.ball_diameter: %g is not below pitch_diameter %g",
                 s->sev_ball_d, s->sev_pitch_d);
        return -EINVAL;
    }
    *which = "channel_names";
    if (s->type == CFG_ALSA && s->n_channel_names && s->n_channel_names != s->channels) {
        snprintf(msg, len, "channel_names: %u names for %u channels", s->n_channel_names,
                 s->channels);
        return -EINVAL;
    }
    for (unsigned a = 0; a < s->n_channel_names; a++) {
        if (!s->channel_names[a][0]) {
            snprintf(msg, len, "channel_names: entry %u is empty", a);
            return -EINVAL;
        }
        for (unsigned b = 0; b < a; b++)
            if (!strcmp(s->channel_names[a], s->channel_names[b])) {
                snprintf(msg, len, "channel_names: \"%s\" given twice", s->channel_names[a]);
                return -EINVAL;
            }
    }
    char buf[NAME_MAX_LEN + 64];
    for (unsigned a = 0; a < n_listed(s); a++) {
        listed_name(s, a, buf, sizeof buf);
        size_t n = strlen(buf) + (open_ended(s) ? 4 : 0);  /* room for "/NNN" */
        if (n > NAME_MAX_LEN) {
            snprintf(msg, len, "name: published name \"%.40s...\" is longer than %d bytes",
                     buf, NAME_MAX_LEN);
            return -EINVAL;
        }
    }
    for (unsigned o = 0; o < i; o++) {
        const struct cfg_stream *t = &c->streams[o];
        const char *where = t->line ? "line " : "";
        char at[32] = "";
        if (t->line)
            snprintf(at, sizeof at, "%d", t->line);
        *which = "name";
        if (!strcmp(s->name, t->name)) {
            snprintf(msg, len, "name: duplicate stream name \"%s\" (first defined %s%s)",
                     s->name, t->line ? where : "on the command line", at);
            return -EINVAL;
        }
        /* a published name of one stream that the other may also publish */
        for (int dir = 0; dir < 2; dir++) {
            const struct cfg_stream *x = dir ? t : s, *y = dir ? s : t;
            for (unsigned a = 0; a < n_listed(x); a++) {
                listed_name(x, a, buf, sizeof buf);
                if (may_publish(y, buf)) {
                    if (s->n_channel_names)
                        *which = "channel_names";
                    snprintf(msg, len,
                             "%s: published name \"%s\" of stream \"%s\" clashes with "
                             "stream \"%s\" (%s%s)",
                             *which, buf, s->name, t->name, t->line ? where : "command line", at);
                    return -EINVAL;
                }
            }
        }
    }
    return 0;
}

static int check_global(const struct cfg *c, char *msg, size_t len, const char **which)
{
    for (size_t j = 0; j < N_KEYS; j++) {
        const struct key *k = &keys[j];
        if (in_stream(k))
            continue;
        char m[200];
        if (check_bounds(k, c, m, sizeof m)) {
            *which = k->path;
            snprintf(msg, len, "%s: %s", k->path, m);
            return -EINVAL;
        }
    }
    if (!c->model) {
        *which = "model";
        snprintf(msg, len, "model: missing");
        return -EINVAL;
    }
    if (!c->n_endpoints && !c->to_stdout && !c->results_path && !c->http_listen &&
        !c->mqtt_broker) {
        *which = "publish.endpoints";
        snprintf(msg, len, "publish.endpoints: empty and publish.stdout is false, and no "
                           "results, http or mqtt: results would go nowhere");
        return -EINVAL;
    }
    if (c->http_listen) {
        char host[64], em[200];
        unsigned port;
        bool loop;
        if (cfg_split_hostport(c->http_listen, host, sizeof host, &port, &loop, em, sizeof em)) {
            *which = "http.listen";
            snprintf(msg, len, "http.listen: %s", em);
            return -EINVAL;
        }
        if (!loop && !c->http_remote) {
            *which = "http.listen";
            snprintf(msg, len, "http.listen: %s is not a loopback address: set "
                               "http.remote = true (and http.token_file) to serve beyond "
                               "this machine", host);
            return -EINVAL;
        }
        if (!loop && !c->http_token_file) {
            *which = "http.remote";
            snprintf(msg, len, "http.remote: serving beyond loopback needs "
                               "http.token_file (no unauthenticated door)");
            return -EINVAL;
        }
    }
    if (c->mqtt_broker) {
        char host[256], em[200];
        unsigned port;
        bool tls;
        if (cfg_parse_broker(c->mqtt_broker, host, sizeof host, &port, &tls, em, sizeof em)) {
            *which = "mqtt.broker";
            snprintf(msg, len, "mqtt.broker: %s", em);
            return -EINVAL;
        }
        if (!c->mqtt_cert_file != !c->mqtt_key_file) {
            *which = c->mqtt_cert_file ? "mqtt.cert_file" : "mqtt.key_file";
            snprintf(msg, len, "%s: mqtt.cert_file and mqtt.key_file go together", *which);
            return -EINVAL;
        }
        if (c->mqtt_password_file && !c->mqtt_username) {
            *which = "mqtt.password_file";
            snprintf(msg, len, "mqtt.password_file: needs mqtt.username");
            return -EINVAL;
        }
    }
    for (unsigned a = 0; a < c->n_endpoints; a++) {
        if (!c->endpoints[a][0]) {
            *which = "publish.endpoints";
            snprintf(msg, len, "publish.endpoints: entry %u is empty", a);
            return -EINVAL;
        }
        char em[400];
        if (cfg_check_endpoint(c->endpoints[a], em, sizeof em) < 0) {
            *which = "publish.endpoints";
            snprintf(msg, len, "publish.endpoints: %s", em);
            return -EINVAL;
        }
        for (unsigned b = 0; b < a; b++)
            if (!strcmp(c->endpoints[a], c->endpoints[b])) {
                *which = "publish.endpoints";
                snprintf(msg, len, "publish.endpoints: \"%s\" given twice", c->endpoints[a]);
                return -EINVAL;
            }
    }
    return 0;
}

/* One endpoint the publisher can bind: tcp://HOST:PORT (HOST numeric IPv4,
 * [IPv6] or *, PORT 1..65535 or *) or ipc://PATH (at most 107 bytes, the
 * size of sun_path less its NUL).  Names are refused, not resolved: a bind
 * must not depend on the resolver at start-up.  0, or -EINVAL with msg. */
int cfg_split_hostport(const char *s, char *host, size_t hl, unsigned *port, bool *loopback,
                       char *msg, size_t len)
{
    const char *colon;
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(msg, len, "\"%s\": want [IPV6]:PORT", s);
            return -EINVAL;
        }
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(msg, len, "\"%s\": want ADDRESS:PORT", s);
            return -EINVAL;
        }
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hl) {
        snprintf(msg, len, "\"%s\": want ADDRESS:PORT", s);
        return -EINVAL;
    }
    memcpy(host, s, n);
    host[n] = 0;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || p < 1 || p > 65535) {
        snprintf(msg, len, "port \"%s\": want 1 to 65535", colon + 1);
        return -EINVAL;
    }
    *port = (unsigned)p;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        *loopback = a[0] == 127;
    else if (inet_pton(AF_INET6, host, a) == 1)
        *loopback = !memcmp(a, in6addr_loopback.s6_addr, 16);
    else {
        snprintf(msg, len, "\"%s\": not a numeric IPv4 or [IPv6] address", host);
        return -EINVAL;
    }
    return 0;
}

int cfg_parse_broker(const char *url, char *host, size_t hl, unsigned *port, bool *tls,
                     char *msg, size_t len)
{
    const char *h;
    if (!strncmp(url, "mqtt://", 7)) {
        *tls = false;
        h = url + 7;
    } else if (!strncmp(url, "mqtts://", 8)) {
        *tls = true;
        h = url + 8;
    } else {
        snprintf(msg, len, "\"%s\": want mqtt://HOST[:PORT] or mqtts://HOST[:PORT]", url);
        return -EINVAL;
    }
    *port = *tls ? 8883 : 1883;
    size_t end = strcspn(h, "/");          /* one trailing '/' is allowed */
    if (h[end] && h[end + 1]) {
        snprintf(msg, len, "\"%s\": nothing may follow HOST[:PORT]", url);
        return -EINVAL;
    }
    const char *hs = h, *he, *colon = NULL;
    if (*h == '[') {
        const char *close = memchr(h, ']', end);
        if (!close || (close + 1 != h + end && close[1] != ':')) {
            snprintf(msg, len, "\"%s\": want [IPV6]:PORT", url);
            return -EINVAL;
        }
        hs = h + 1;
        he = close;
        if (close + 1 != h + end)
            colon = close + 1;
    } else {
        colon = memchr(h, ':', end);
        he = colon ? colon : h + end;
    }
    size_t n = (size_t)(he - hs);
    if (n == 0 || n >= hl) {
        snprintf(msg, len, "\"%s\": no host", url);
        return -EINVAL;
    }
    memcpy(host, hs, n);
    host[n] = 0;
    if (colon) {
        char *e;
        errno = 0;
        unsigned long p = strtoul(colon + 1, &e, 10);
        if (e == colon + 1 || e != h + end || errno || p < 1 || p > 65535) {
            snprintf(msg, len, "\"%s\": port must be 1 to 65535", url);
            return -EINVAL;
        }
        *port = (unsigned)p;
    }
    return 0;
}

int cfg_check_endpoint(const char *ep, char *msg, size_t len)
{
    if (!strncmp(ep, "ipc://", 6)) {
        size_t n = strlen(ep + 6);
        if (n == 0 || n > 107) {
            snprintf(msg, len, "\"%.200s\": ipc path must be 1 to 107 bytes, not %zu", ep, n);
            return -EINVAL;
        }
        return 0;
    }
    if (strncmp(ep, "tcp://", 6)) {
        snprintf(msg, len, "\"%.200s\": transport must be tcp:// or ipc://", ep);
        return -EINVAL;
    }
    const char *h = ep + 6, *colon;
    char host[64];
    if (*h == '[') {
        const char *rb = strchr(h, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - h - 1) >= sizeof host) {
            snprintf(msg, len, "\"%.200s\": expected tcp://[IPV6]:PORT", ep);
            return -EINVAL;
        }
        memcpy(host, h + 1, (size_t)(rb - h - 1));
        host[rb - h - 1] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            snprintf(msg, len, "\"%.200s\": \"%s\" is not a numeric IPv6 address", ep, host);
            return -EINVAL;
        }
        colon = rb + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon || colon == h || (size_t)(colon - h) >= sizeof host) {
            snprintf(msg, len, "\"%.200s\": expected tcp://ADDRESS:PORT", ep);
            return -EINVAL;
        }
        memcpy(host, h, (size_t)(colon - h));
        host[colon - h] = '\0';
        struct in_addr a4;
        if (strcmp(host, "*") && inet_pton(AF_INET, host, &a4) != 1) {
            snprintf(msg, len, "\"%.200s\": \"%s\" is not a numeric IPv4 address, [IPv6] "
                     "or * (names are not resolved: use 127.0.0.1 for localhost)", ep, host);
            return -EINVAL;
        }
    }
    const char *port = colon + 1;
    if (strcmp(port, "*")) {
        char *end;
        errno = 0;
        long v = strtol(port, &end, 10);
        if (end == port || *end || errno || v < 1 || v > 65535 || *port == '+' ||
            *port == '-' || *port == ' ') {
            snprintf(msg, len, "\"%.200s\": port must be 1 to 65535 or *", ep);
            return -EINVAL;
        }
    }
    return 0;
}

int cfg_validate(const struct cfg *c, char *err, size_t errlen)
{
    char msg[512];
    const char *which;
    if (check_global(c, msg, sizeof msg, &which)) {
        set_err(err, errlen, "%s: %s", c->file ? c->file : "config", msg);
        return -EINVAL;
    }
    for (unsigned i = 0; i < c->n_streams; i++)
        if (check_stream(c, i, msg, sizeof msg, &which)) {
            const struct cfg_stream *s = &c->streams[i];
            if (s->line && c->file)
                set_err(err, errlen, "%s:%d: streams[%u].%s", c->file, s->line, i, msg);
            else
                set_err(err, errlen, "stream \"%s\": %s", s->name ? s->name : "?", msg);
            return -EINVAL;
        }
    return 0;
}

int cfg_apply_cli(struct cfg *c, const struct cfg_cli *o, char *err, size_t errlen)
{
    if (o->model) {
        if (cfg_set_string(&c->model, o->model))
            return -ENOMEM;
        c->model_line = 0;
    }
    if (o->workers >= 0)
        c->workers = (unsigned)o->workers;
    if (o->n_endpoints) {
        char **v;
        if (dup_list(&v, (char *const *)o->endpoints, o->n_endpoints))
            return -ENOMEM;
        free_list(c->endpoints, c->n_endpoints);
        c->endpoints = v;
        c->n_endpoints = o->n_endpoints;
    }
    if (o->to_stdout >= 0)
        c->to_stdout = o->to_stdout != 0;
    if (o->no_publish) {
        free_list(c->endpoints, c->n_endpoints);
        c->endpoints = NULL;
        c->n_endpoints = 0;
        c->to_stdout = true;
    }
    if (o->stats_interval >= 0)
        c->stats_interval = o->stats_interval;
    if (o->http && cfg_set_string(&c->http_listen, o->http))
        return -ENOMEM;
    if (o->mqtt && cfg_set_string(&c->mqtt_broker, o->mqtt))
        return -ENOMEM;
    if (o->results && cfg_set_string(&c->results_path, o->results))
        return -ENOMEM;
    c->wait_subscribers = o->wait_subscribers;
    if (o->record)
        for (unsigned i = 0; i < c->n_streams; i++)
            if (cfg_set_string(&c->streams[i].record_path, o->record))
                return -ENOMEM;
    return cfg_validate(c, err, errlen);
}

/* ---- loading ------------------------------------------------------------- */

struct ctx {
    const char *path;     /* the config file as given */
    char       *dir;      /* its directory, for relative paths */
    char       *err;
    size_t      errlen;
};

/* libconfig names an @included file as written in the @include line, which
 * is relative to the config's directory: show it from there. */
static void display_file(const struct ctx *x, const char *file, char *buf, size_t len)
{
    if (!file || !strcmp(file, x->path))
        snprintf(buf, len, "%s", x->path);
    else if (file[0] == '/' || !x->dir)
        snprintf(buf, len, "%s", file);
    else
        snprintf(buf, len, "%s/%s", x->dir, file);
}

static int fail(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char file[PATH_MAX];
    display_file(x, s ? config_setting_source_file(s) : NULL, file, sizeof file);
    unsigned line = s ? config_setting_source_line(s) : 0;
    if (line)
        set_err(x->err, x->errlen, "%s:%u: %s", file, line, msg);
    else
        set_err(x->err, x->errlen, "%s: %s", file, msg);
    return -EINVAL;
}

static const char *type_word(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:  return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:  return "an integer";
    case CONFIG_TYPE_FLOAT:  return "a floating-point number";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL:   return "a boolean";
    case CONFIG_TYPE_ARRAY:  return "an array";
    case CONFIG_TYPE_LIST:   return "a list";
    default:                 return "nothing";
    }
}

/* NAME (for messages) is the full key: "publish.hwm", "streams[2].rate". */
static int resolve_path(struct ctx *x, char **v)
{
    if (!*v || (*v)[0] == '/' || !x->dir)
        return 0;
    size_t n = strlen(x->dir) + strlen(*v) + 2;
    char *p = malloc(n);
    if (!p)
        return -ENOMEM;
    snprintf(p, n, "%s/%s", x->dir, *v);
    free(*v);
    *v = p;
    return 0;
}

static int parse_value(struct ctx *x, const struct key *k, const config_setting_t *s,
                       void *base, const char *name)
{
    int t = config_setting_type(s);
    char msg[200];
    switch (k->kind) {
    case K_STR:
    case K_CHOICE:
    case K_ENUM: {
        if (t != CONFIG_TYPE_STRING)
            return fail(x, s, "%s: must be a string, not %s", name, type_word(s));
        const char *v = config_setting_get_string(s);
        if (k->kind == K_ENUM) {
            for (int i = 0; k->choices[i]; i++)
                if (!strcmp(k->choices[i], v)) {
                    *AT(base, k->off, int) = i;
                    return 0;
                }
            char list[100] = "";
            for (int i = 0; k->choices[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                         i ? ", " : "", k->choices[i]);
            return fail(x, s, "%s: unknown value \"%s\" (one of %s)", name, v, list);
        }
        if (cfg_set_string(AT(base, k->off, char *), v))
            return -ENOMEM;
        if (check_bounds(k, base, msg, sizeof msg))
            return fail(x, s, "%s: %s", name, msg);
        if ((k->flags & F_PATH) && resolve_path(x, AT(base, k->off, char *)))
            return -ENOMEM;
        return 0;
    }
    case K_UINT:
    case K_INT: {
        if (t == CONFIG_TYPE_FLOAT)
            return fail(x, s, "%s: must be an integer, not %g", name,
                        config_setting_get_float(s));
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(x, s, "%s: must be an integer, not %s", name, type_word(s));
        long long v = config_setting_get_int64(s);
        if (t == CONFIG_TYPE_INT && literal_wrapped(s, v))
            return fail(x, s, "%s: integer too large for 32 bits (libconfig would wrap it; "
                        "the value %lld it read is not what the file says)", name, v);
        if (v < k->lo || v > k->hi)
            return fail(x, s, "%s: must be between %lld and %lld, not %lld", name, k->lo,
                        k->hi, v);
        if (k->kind == K_UINT)
            *AT(base, k->off, unsigned) = (unsigned)v;
        else
            *AT(base, k->off, int) = (int)v;
        return 0;
    }
    case K_DBL: {
        double v;
        if (t == CONFIG_TYPE_FLOAT)
            v = config_setting_get_float(s);
        else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(s);   /* 10 means 10.0 */
        else
            return fail(x, s, "%s: must be a number, not %s", name, type_word(s));
        *AT(base, k->off, double) = v;
        if (check_bounds(k, base, msg, sizeof msg))
            return fail(x, s, "%s: %s", name, msg);
        return 0;
    }
    case K_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail(x, s, "%s: must be true or false, not %s", name, type_word(s));
        *AT(base, k->off, bool) = config_setting_get_bool(s) != 0;
        return 0;
    case K_STRLIST: {
        char ***lp = AT(base, k->off, char **);
        unsigned *np = AT(base, k->off_n, unsigned);
        free_list(*lp, *np);
        *lp = NULL;
        *np = 0;
        /* a single string is a list of one: endpoints = "tcp://..." */
        if (t == CONFIG_TYPE_STRING) {
            const char *one[1] = { config_setting_get_string(s) };
            if (dup_list(lp, (char *const *)one, 1))
                return -ENOMEM;
            *np = 1;
            return 0;
        }
        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
            return fail(x, s, "%s: must be a list of strings [ \"...\", ... ], not %s",
                        name, type_word(s));
        int n = config_setting_length(s);
        if (n < k->lo || n > k->hi)
            return fail(x, s, "%s: must have %lld to %lld entries, not %d", name, k->lo,
                        k->hi, n);
        if (n && !(*lp = calloc((size_t)n, sizeof **lp)))
            return -ENOMEM;
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return fail(x, e, "%s[%d]: must be a string, not %s", name, i, type_word(e));
            if (!((*lp)[i] = strdup(config_setting_get_string(e))))
                return -ENOMEM;
            (*np)++;
        }
        return 0;
    }
    case K_GROUP:
    case K_STREAMS:
        break;
    }
    return 0;
}

static const struct key *find_key(const char *path, bool stream)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (in_stream(&keys[i]) == stream && !strcmp(keys[i].path, path))
            return &keys[i];
    return NULL;
}

/* The members of a stream's group g, or of one of its sub-groups (prefix
 * "smooth."): every key by its full path in the table. */
static int parse_stream_members(struct ctx *x, struct cfg_stream *s, const config_setting_t *g,
                                const char *prefix, unsigned idx)
{
    char name[128], path[64];
    int rc = 0, n = config_setting_length(g);
    for (int i = 0; !rc && i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *mn = config_setting_name(m);
        snprintf(path, sizeof path, "%s%s", prefix, mn);
        const struct key *k = find_key(path, true);
        snprintf(name, sizeof name, "streams[%u].%s", idx, path);
        if (!k)
            rc = fail(x, m, "%s: unknown key", name);
        else if (!applies(k, s->type))
            rc = fail(x, m, "%s: only for type \"%s\" streams, this one is \"%s\"", name,
                      k->scope == SC_FILE ? "file" : "alsa", type_names[s->type]);
        else if (k->kind == K_GROUP) {
            if (config_setting_type(m) != CONFIG_TYPE_GROUP)
                return fail(x, m, "%s: must be a group { ... }, not %s", name, type_word(m));
            char sub[80];
            snprintf(sub, sizeof sub, "%s.", path);
            rc = parse_stream_members(x, s, m, sub, idx);
        } else if (k->kind != K_ENUM || strcmp(path, "type"))
            rc = parse_value(x, k, m, s, name);
    }
    return rc;
}

static int parse_stream(struct ctx *x, struct cfg *c, const config_setting_t *g, unsigned idx)
{
    char name[64];
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return fail(x, g, "streams[%u]: must be a group { name = ...; type = ...; }, not %s",
                    idx, type_word(g));
    /* The type decides which keys apply: read it first. */
    const config_setting_t *ts = config_setting_get_member(g, "type");
    if (!ts)
        return fail(x, g, "streams[%u].type: missing (\"alsa\" or \"file\")", idx);
    struct cfg_stream s;
    int rc = cfg_stream_defaults(&s, CFG_FILE);
    if (rc)
        return rc;
    snprintf(name, sizeof name, "streams[%u].type", idx);
    rc = parse_value(x, find_key("type", true), ts, &s, name);
    s.line = (int)config_setting_source_line(g);
    if (!rc)
        rc = parse_stream_members(x, &s, g, "", idx);
    if (!rc)
        rc = cfg_add_stream(c, &s);
    stream_free(&s);
    if (rc)
        return rc;
    char msg[400];
    const char *which;
    if (check_stream(c, idx, msg, sizeof msg, &which)) {
        /* (libconfig takes no const; it does not change g) */
        const config_setting_t *at = which ? config_setting_lookup((config_setting_t *)g, which) : NULL;
        return fail(x, at ? at : g, "streams[%u].%s", idx, msg);
    }
    return 0;
}

/* Members of a group at PREFIX ("" for the root, "publish." ...). */
static int parse_group(struct ctx *x, struct cfg *c, const config_setting_t *g, const char *prefix)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        char path[128];
        snprintf(path, sizeof path, "%s%s", prefix, config_setting_name(m));
        const struct key *k = find_key(path, false);
        if (!k)
            return fail(x, m, "%s: unknown key", path);
        int rc;
        if (k->kind == K_GROUP) {
            if (config_setting_type(m) != CONFIG_TYPE_GROUP)
                return fail(x, m, "%s: must be a group { ... }, not %s", path, type_word(m));
            char sub[160];
            snprintf(sub, sizeof sub, "%s.", path);
            rc = parse_group(x, c, m, sub);
        } else if (k->kind == K_STREAMS) {
            int t = config_setting_type(m);
            if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && !config_setting_length(m)))
                return fail(x, m, "%s: must be a list ( { ... }, { ... } ), not %s", path,
                            type_word(m));
            for (unsigned j = 0, ns = (unsigned)config_setting_length(m); j < ns; j++)
                if ((rc = parse_stream(x, c, config_setting_get_elem(m, j), j)))
                    return rc;
            rc = 0;
        } else {
            rc = parse_value(x, k, m, c, path);
            if (!rc && !strcmp(path, "model"))
                c->model_line = (int)config_setting_source_line(m);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* libconfig 1.5 opens an @include as include_dir + "/" + name with fopen()
 * and reads it with flex, whose read error handler prints "input in flex
 * scanner failed" and calls exit(2): `@include "."` (or "", "conf.d", or a
 * name cut short by a NUL byte, which is how fuzz_config found it) ended the
 * daemon, on a SIGHUP reload too; a FIFO would have blocked it.  So before
 * libconfig runs, every @include it would open is looked up here and
 * anything but a regular file refused.  They are found the way its scanner
 * (scanner.l) finds them: `^[ \t]*@include[ \t]+"` at the start of a line,
 * outside comments and strings; in the name only \\ and \" are escapes,
 * another backslash is dropped, and each stretch between escapes ends at a
 * NUL byte (it is appended as a C string).  Included files are scanned in
 * turn, as deep as libconfig goes.  At a name that cannot be opened the
 * scan stops: libconfig stops there too, with its own error. */
#define INCLUDE_DEPTH_MAX 10           /* libconfig's MAX_INCLUDE_DEPTH */

static int scan_includes(struct ctx *x, const char *file, FILE *f, int depth);

/* 0: go on; 1: stop, libconfig will report an error; -EINVAL: refused. */
static int check_include(struct ctx *x, const char *file, const char *name, unsigned line,
                         int depth)
{
    if (depth >= INCLUDE_DEPTH_MAX)
        return 1;                      /* "include file nesting too deep" */
    char full[PATH_MAX];
    struct stat sb;
    if (snprintf(full, sizeof full, "%s/%s", x->dir, name) >= (int)sizeof full
        || stat(full, &sb) < 0)
        return 1;                      /* "cannot open include file" */
    if (!S_ISREG(sb.st_mode)) {
        char shown[PATH_MAX];
        display_file(x, file, shown, sizeof shown);
        set_err(x->err, x->errlen, "%s:%u: @include \"%s\": not a regular file", shown,
                line, name);
        return -EINVAL;
    }
    FILE *g = fopen(full, "r");
    if (!g)
        return 1;
    int rc = scan_includes(x, name, g, depth + 1);
    fclose(g);
    return rc;
}

/* After a `[ \t]` or `@` at the start of a line: the rest of an @include
 * line, and its check; -1 if it is none (the first character that does not
 * fit is put back). */
static int scan_include_line(struct ctx *x, const char *file, FILE *f, int c,
                             unsigned *line, int depth)
{
    static const char kw[] = "@include";
    size_t k = 0;
    bool gap = false;
    while (c == ' ' || c == '\t')
        c = getc(f);
    while (kw[k] && c == kw[k]) {
        c = getc(f);
        k++;
    }
    while (!kw[k] && (c == ' ' || c == '\t')) {
        c = getc(f);
        gap = true;
    }
    if (kw[k] || !gap || c != '"') {
        if (c != EOF)
            ungetc(c, f);
        return -1;
    }
    char name[PATH_MAX];
    size_t n = 0;
    bool cut = false;
    while ((c = getc(f)) != '"') {
        if (c == EOF)
            return 0;                  /* no closing quote: no include */
        if (c == '\\') {
            int d = getc(f);
            cut = false;
            if (d != '\\' && d != '"') {
                if (d != EOF)
                    ungetc(d, f);
                continue;
            }
            c = d;
        } else if (c == '\0') {
            cut = true;
        } else if (c == '\n') {
            (*line)++;
        }
        if (cut)
            continue;
        if (n + 1 >= sizeof name)
            return 1;                  /* longer than a path: fopen fails */
        name[n++] = (char)c;
    }
    name[n] = '\0';
    return check_include(x, file, name, *line, depth);
}

static int scan_includes(struct ctx *x, const char *file, FILE *f, int depth)
{
    enum { CODE, COMMENT, STRING } st = CODE;
    unsigned line = 1;
    bool bol = true;                   /* at the start of a line */
    int c;
    while ((c = getc(f)) != EOF) {
        bool nl = c == '\n';
        if (st == COMMENT) {
            if (c == '*') {
                int d = getc(f);
                if (d == '/')
                    st = CODE;
                else if (d != EOF)
                    ungetc(d, f);
            }
        } else if (st == STRING) {
            if (c == '"') {
                st = CODE;
            } else if (c == '\\') {
                int d = getc(f);   /* \" and \\ are one character; the rest is read again */
                if (d != '"' && d != '\\' && d != EOF)
                    ungetc(d, f);
            }
        } else if (bol && (c == ' ' || c == '\t' || c == '@')) {
            int rc = scan_include_line(x, file, f, c, &line, depth);
            if (rc != 0 && rc != -1)   /* -1: no include; 0: a good one */
                return rc;
        } else if (c == '"') {
            st = STRING;
        } else if (c == '#' || c == '/') {
            int d = c == '/' ? getc(f) : '/';
            if (d == '*') {
                st = COMMENT;
            } else if (d == '/') {     /* # or // to the end of the line */
                while ((d = getc(f)) != EOF && d != '\n')
                    ;
                if (d == '\n')
                    ungetc(d, f);
            } else if (d != EOF) {
                ungetc(d, f);
            }
        }
        bol = nl;
        line += nl;
    }
    return 0;
}

int cfg_load(const char *path, struct cfg *out, char *err, size_t errlen)
{
    /* libconfig reports a missing file as a generic I/O error: look first so
     * the caller can tell "no such file" from "bad content". */
    /* and stat before opening: a FIFO or device (/dev/zero) as the
     * configuration would block the open or never end. */
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }

    struct ctx x = { .path = path, .err = err, .errlen = errlen };
    const char *slash = strrchr(path, '/');
    x.dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!x.dir) {
        fclose(f);
        return -ENOMEM;
    }
    /* What libconfig cannot survive (see scan_includes). */
    int rc = scan_includes(&x, path, f, 0);
    fclose(f);
    if (rc < 0) {
        free(x.dir);
        return rc;
    }

    struct cfg c;
    rc = cfg_defaults(&c);
    if (rc) {
        free(x.dir);
        return rc;
    }
    config_t lc;
    config_init(&lc);
    /* @include is relative to the working directory unless told otherwise,
     * and a NULL include dir crashes libconfig 1.5. */
    config_set_include_dir(&lc, x.dir);
    if (!(c.file = strdup(path))) {
        rc = -ENOMEM;
    } else if (config_read_file(&lc, path) != CONFIG_TRUE) {
        char ef[PATH_MAX];
        display_file(&x, config_error_file(&lc), ef, sizeof ef);
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            set_err(err, errlen, "%s: cannot read: %s", ef, config_error_text(&lc));
        else
            set_err(err, errlen, "%s:%d: %s", ef, config_error_line(&lc),
                    config_error_text(&lc));
        rc = -EINVAL;
    } else {
        rc = parse_group(&x, &c, config_root_setting(&lc), "");
        if (rc == -ENOMEM)
            set_err(err, errlen, "%s: out of memory", path);
        if (!rc) {
            char msg[400];
            const char *which = NULL;
            if (check_global(&c, msg, sizeof msg, &which)) {
                const config_setting_t *at = config_lookup(&lc, which);
                rc = fail(&x, at, "%s", msg);
            }
        }
    }
    config_destroy(&lc);
    free(x.dir);
    if (rc) {
        cfg_free(&c);
        return rc;
    }
    cfg_free(out);
    *out = c;
    return 0;
}

/* ---- documentation from the table ----------------------------------------- */

/* The value of key K in base as config-file text. */
static void value_text(const struct key *k, const void *base, char *buf, size_t len)
{
    switch (k->kind) {
    case K_STR:
    case K_CHOICE: {
        const char *s = *CAT(base, k->off, char *);
        snprintf(buf, len, s ? "\"%s\"" : "(none)", s);
        break;
    }
    case K_ENUM: snprintf(buf, len, "\"%s\"", k->choices[*CAT(base, k->off, int)]); break;
    case K_UINT: snprintf(buf, len, "%u", *CAT(base, k->off, unsigned)); break;
    case K_INT:  snprintf(buf, len, "%d", *CAT(base, k->off, int)); break;
    case K_DBL: {
        /* always with a point, so libconfig reads it back as a float */
        double d = *CAT(base, k->off, double);
        snprintf(buf, len, "%g", d);
        if (!strpbrk(buf, ".e"))
            snprintf(buf + strlen(buf), len - strlen(buf), ".0");
        break;
    }
    case K_BOOL: snprintf(buf, len, "%s", *CAT(base, k->off, bool) ? "true" : "false"); break;
    case K_STRLIST: {
        unsigned n = *CAT(base, k->off_n, unsigned);
        const char *const *v = (const char *const *)*CAT(base, k->off, char **);
        snprintf(buf, len, "[");
        for (unsigned i = 0; i < n; i++)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s\"%s\"", i ? ", " : " ", v[i]);
        snprintf(buf + strlen(buf), len - strlen(buf), "%s]", n ? " " : "");
        break;
    }
    default:
        buf[0] = 0;
    }
}

static void type_text(const struct key *k, char *buf, size_t len)
{
    switch (k->kind) {
    case K_STR: snprintf(buf, len, "string"); break;
    case K_CHOICE:
    case K_ENUM:
        buf[0] = 0;
        for (int i = 0; k->choices[i]; i++)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s\"%s\"", i ? " | " : "",
                     k->choices[i]);
        break;
    case K_UINT:
    case K_INT: snprintf(buf, len, "integer %lld..%lld", k->lo, k->hi); break;
    case K_DBL: snprintf(buf, len, "number %g..%g", k->dlo, k->dhi); break;
    case K_BOOL: snprintf(buf, len, "true | false"); break;
    case K_STRLIST: snprintf(buf, len, "list of strings"); break;
    case K_GROUP: snprintf(buf, len, "group"); break;
    case K_STREAMS: snprintf(buf, len, "list of groups"); break;
    }
}

static void default_text(const struct key *k, const void *base, char *buf, size_t len)
{
    if (k->flags & F_REQUIRED)
        snprintf(buf, len, "required");
    else if (k->def_doc)
        snprintf(buf, len, "default %s", k->def_doc);
    else {
        char v[128];
        value_text(k, base, v, sizeof v);
        snprintf(buf, len, "default %s", v);
    }
}

/* Word-wrap TEXT at WIDTH columns; the first line starts with FIRST, the
 * others with PREFIX. */
static void wrap2(FILE *f, const char *first, const char *prefix, const char *text, int width)
{
    const char *p = text;
    for (bool one = true; *p; one = false) {
        const char *pre = one ? first : prefix;
        int room = width - (int)strlen(pre);
        int n = (int)strlen(p);
        if (n > room) {
            n = room;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = room;
        }
        fprintf(f, "%s%.*s\n", pre, n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

static void wrap(FILE *f, const char *prefix, const char *text, int width)
{
    wrap2(f, prefix, prefix, text, width);
}

static const char *scope_text(const struct key *k)
{
    switch (k->scope) {
    case SC_FILE: return "file streams";
    case SC_ALSA: return "alsa streams";
    default:      return "all streams";
    }
}

void cfg_print_help(FILE *f)
{
    struct cfg c;
    struct cfg_stream s;
    if (cfg_defaults(&c) || cfg_stream_defaults(&s, CFG_FILE)) {
        cfg_free(&c);
        return;
    }
    fprintf(f, "Config file keys (default file %s; see trident.conf(5)):\n", CFG_DEFAULT_FILE);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        char ty[64], def[160], path[64];
        type_text(k, ty, sizeof ty);
        if (in_stream(k))
            snprintf(path, sizeof path, "streams[].%s", k->path);
        else
            snprintf(path, sizeof path, "%s", k->path);
        char head[400];
        if (k->kind == K_GROUP || k->kind == K_STREAMS) {
            snprintf(head, sizeof head, "%s (%s)", path, ty);
        } else {
            default_text(k, in_stream(k) ? (const void *)&s : (const void *)&c, def, sizeof def);
            if (in_stream(k))
                snprintf(head, sizeof head, "%s (%s; %s; %s)", path, ty, scope_text(k), def);
            else
                snprintf(head, sizeof head, "%s (%s; %s)", path, ty, def);
        }
        wrap2(f, "  ", "        ", head, 79);
        wrap(f, "      ", k->doc, 79);
    }
    stream_free(&s);
    cfg_free(&c);
}

/* One key of the example file: its documentation, then KEY = DEFAULT;. */
static void example_key(FILE *f, const struct key *k, const void *base, const char *indent)
{
    char ty[64], def[200], pre[32], v[160];
    type_text(k, ty, sizeof ty);
    snprintf(pre, sizeof pre, "%s# ", indent);
    wrap(f, pre, k->doc, 79);
    default_text(k, base, def, sizeof def);
    char line[300];
    snprintf(line, sizeof line, "Type: %s; %s.", ty, def);
    wrap(f, pre, line, 79);
    if (k->flags & F_COMMENT)
        snprintf(v, sizeof v, "%s", k->ex);
    else
        value_text(k, base, v, sizeof v);
    fprintf(f, "%s%s%s = %s;\n", indent, (k->flags & F_COMMENT) ? "#" : "", leaf(k->path), v);
}

void cfg_write_example(FILE *f)
{
    struct cfg c;
    struct cfg_stream s;
    if (cfg_defaults(&c) || cfg_stream_defaults(&s, CFG_FILE)) {
        cfg_free(&c);
        return;
    }
    fputs("# SPDX-License-Identifier: Apache-2.0\n"
          "# trident.conf — configuration of tridentd(8); every key is described in\n"
          "# trident.conf(5).  This file sets every key to its default, so it can be\n"
          "# edited in place; `tridentd --check -c FILE` validates it, and\n"
          "# `systemctl reload trident` (SIGHUP) applies it without a restart: changed\n"
          "# streams restart, untouched ones keep running; a bad file is refused and\n"
          "# the running configuration kept.\n"
          "#\n"
          "# Syntax: libconfig (https://hyperrealm.github.io/libconfig/).  Strings in\n"
          "# double quotes; integers beyond 32 bits need an L suffix; lists ( ... ),\n"
          "# arrays [ ... ], groups { ... }.  @include \"FILE\" is relative to the\n"
          "# directory of this file.\n"
          "#\n"
          "# Generated from the key table in config/config.c (make conf).\n\n", f);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (in_stream(k) || strchr(k->path, '.'))
            continue;
        if (k->kind == K_GROUP) {
            wrap(f, "# ", k->doc, 79);
            fprintf(f, "%s = {\n", k->path);
            size_t n = strlen(k->path);
            for (size_t j = 0, first = 1; j < N_KEYS; j++)
                if (!in_stream(&keys[j]) && !strncmp(keys[j].path, k->path, n) &&
                    keys[j].path[n] == '.') {
                    if (!first)
                        fputc('\n', f);
                    first = 0;
                    example_key(f, &keys[j], &c, "    ");
                }
            fputs("};\n\n", f);
        } else if (k->kind == K_STREAMS) {
            wrap(f, "# ", k->doc, 79);
            fputs("#\n# Keys of a stream:\n#\n", f);
            for (size_t j = 0; j < N_KEYS; j++) {
                const struct key *sk = &keys[j];
                if (!in_stream(sk))
                    continue;
                char ty[64], def[200], line[400];
                type_text(sk, ty, sizeof ty);
                default_text(sk, &s, def, sizeof def);
                snprintf(line, sizeof line, "%s (%s; %s; %s)", sk->path, ty, scope_text(sk), def);
                wrap2(f, "#   ", "#         ", line, 79);
                snprintf(line, sizeof line, "%s", sk->doc);
                wrap(f, "#       ", line, 79);
            }
            fputs("#\n"
                  "# For example, an accelerometer on a USB DAQ and a recording replayed in a\n"
                  "# loop:\n"
                  "#\n"
                  "# streams = (\n"
                  "#   { name = \"bearing\"; type = \"alsa\"; device = \"hw:1,0\"; rate = 12000;\n"
                  "#     channels = 2; channel_names = [ \"drive\", \"fan\" ]; format = \"S16_LE\";\n"
                  "#     hop = 512; },\n"
                  "#   { name = \"bench\"; type = \"file\"; path = \"recording.wav\";\n"
                  "#     pace = \"realtime\"; loop = true; hop = 1024; }\n"
                  "# );\n"
                  "streams = ();\n", f);
        } else {
            example_key(f, k, &c, "");
            fputc('\n', f);
        }
    }
    stream_free(&s);
    cfg_free(&c);
}

void cfg_print_summary(const struct cfg *c, FILE *f)
{
    fprintf(f, "config:   %s\n", c->file ? c->file : "(command line)");
    fprintf(f, "model:    %s\n", c->model ? c->model : "(none)");
    if (c->workers)
        fprintf(f, "workers:  %u\n", c->workers);
    else
        fprintf(f, "workers:  one per online CPU\n");
    fprintf(f, "publish:");
    for (unsigned i = 0; i < c->n_endpoints; i++)
        fprintf(f, " %s", c->endpoints[i]);
    fprintf(f, "%s (hwm %d%s, stats every %gs)\n", c->to_stdout ? " stdout" : "", c->hwm,
            c->nodrop ? ", nodrop" : "", c->stats_interval);
    fprintf(f, "streams:  %u\n", c->n_streams);
    for (unsigned i = 0; i < c->n_streams; i++) {
        const struct cfg_stream *s = &c->streams[i];
        if (s->type == CFG_ALSA)
            fprintf(f, "  %s: alsa %s, %u Hz, %u ch %s, hop %u", s->name, s->device, s->rate,
                    s->channels, s->format, s->hop);
        else
            fprintf(f, "  %s: file %s, pace %s%s, hop %u", s->name, s->path,
                    pace_names[s->pace], s->loop ? ", loop" : "", s->hop);
        if (s->type == CFG_ALSA || s->n_channel_names) {
            char buf[NAME_MAX_LEN + 64];
            fprintf(f, " ->");
            for (unsigned ch = 0; ch < n_listed(s); ch++) {
                cfg_channel_name(s, ch, buf, sizeof buf);
                fprintf(f, " %s", buf);
            }
        }
        fputc('\n', f);
    }
}
