/* config.h — the daemon's configuration as a plain struct.
 *
 * cfg_load() parses a libconfig file (../DESIGN.md "Config") through one key
 * table; the command line fills the same struct (--replay builds one file
 * stream per file) and overrides the file.  Strings are owned by the struct;
 * cfg_free() releases them.  Errors name the file and line.
 */
#ifndef TRIDENT_CONFIG_H
#define TRIDENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum cfg_type { CFG_FILE, CFG_ALSA };
enum cfg_pace { CFG_PACE_FAST, CFG_PACE_REALTIME };

struct cfg_stream {
    char         *name;          /* stream name; channels become NAME/0, NAME/1... */
    enum cfg_type type;
    unsigned      hop;           /* samples between window starts (default 1024) */
    /* type = "file" */
    char         *path;
    enum cfg_pace pace;
    bool          loop;
    /* type = "alsa" */
    char         *device;
    unsigned      rate;
    unsigned      channels;
    char         *format;        /* "S16_LE", "S24_LE", "S32_LE", "FLOAT_LE" */
    unsigned      period;        /* frames; 0: default */
    unsigned      buffer;        /* frames; 0: default */
    int           rt_priority;   /* 0: none; 1..99 SCHED_FIFO */
    char        **channel_names; /* optional, channels entries */
    unsigned      n_channel_names;
    int           line;          /* line in the config file; 0 if from the command line */
};

struct cfg {
    char              *file;            /* config file read, or NULL */
    char              *model;           /* model path */
    unsigned           workers;         /* 0: one per online CPU */
    char             **endpoints;
    unsigned           n_endpoints;
    int                hwm;
    bool               to_stdout;
    double             stats_interval;  /* seconds; 0: off */
    unsigned           wait_subscribers;
    struct cfg_stream *streams;
    unsigned           n_streams;
};

#endif
