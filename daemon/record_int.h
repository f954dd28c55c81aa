/* SPDX-License-Identifier: Apache-2.0 */
/* record_int.h — what record.c (the recorder, its taps, the capture side and
 * the writer thread), record_file.c (the writer's recordings: WAV files and
 * sidecars) and keep.c (kept windows: the publisher's offer and the writer's
 * clips) share.  Private to those three; the design is record.c's note. */
#ifndef TRIDENT_RECORD_INT_H
#define TRIDENT_RECORD_INT_H

#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sndfile.h>

#include "net.h"
#include "record.h"
#include "ring.h"
#include "source.h"

#define REC_QUEUE_S     4.0
#define REC_QUEUE_MIN   (1u << 15)
#define REC_LOSSQ       64u
#define REC_CHUNK       4096u
#define REC_HEADER      1024u           /* bytes left for a WAV header */
#define REC_LOSS_JSON   4096u           /* a file's losses, as JSON */
#define KEEP_SLOTS      32u
#define KEEP_CLIP_BYTES (NET_WIN * 4u + 2048u)
#define WRITER_TICK_MS  20
#define REC_WAIT_MS     5000            /* a fast file source waits at most this per push */
#define KEEP_WAIT_MS    1000            /* the publisher, per clip, only in a pure replay */

enum { WHY_WRITER, WHY_INPUT };
extern const char *const rec_why_names[];   /* by WHY_*: "writer", "input" */

struct keep_slot {
    float    x[NET_WIN];
    uint64_t seq, sample;
    double   t, rate, score, anomaly, threshold;
    char     label[96], state[96], quality[16], reason[16], model[16];
    char     probs[1024];
};

struct rec_tap {
    recorder        *r;
    struct rec_tap  *next;           /* r->taps, under r->mu */
    struct stream   *st;
    bool             keep;           /* a keep tap, else a recording tap */
    char             name[STREAM_NAME_MAX];   /* for file names */
    char             dir[PATH_MAX];
    char             input[PATH_MAX + 16];    /* "file PATH", "alsa DEVICE" */
    char             format[24];     /* the input's sample format */
    /* recording, set at attach */
    ring            *q;
    uint64_t         max_samples;    /* per file */
    bool             wait;           /* a fast file source: wait for room, lose nothing */
    double           max_age;
    /* capture thread */
    uint64_t         pos;            /* samples offered so far (stream position) */
    bool             losing;         /* queue full: refill to half first */
    uint64_t         pend_at, pend_n;          /* queue loss not yet pushed */
    uint64_t         pend_in_at, pend_in_n;    /* input loss not yet pushed */
    struct { _Atomic uint64_t at, n; _Atomic uint32_t why; } lq[REC_LOSSQ];
    _Atomic uint32_t lq_head, lq_tail;
    /* writer */
    SNDFILE         *sf;
    char             base[PATH_MAX]; /* the open file, without .wav */
    uint64_t         wpos;           /* stream position of the next queued sample */
    uint64_t         f_first, f_n;   /* the open file: first position, samples */
    double           f_start;        /* Unix time of its first sample */
    char             f_loss[REC_LOSS_JSON];
    size_t           f_loss_len;
    unsigned         f_loss_more;    /* entries beyond f_loss */
    uint64_t         f_lost_writer, f_lost_input;
    bool             stop_logged;
    /* keep, set at attach */
    double           unsure_below;
    bool             k_unknown, k_anomaly, k_events;
    uint64_t         k_max_bytes;
    unsigned         k_per_minute;
    /* publisher */
    int64_t          k_minute;       /* start of the current minute, ns */
    unsigned         k_in_minute;
    uint64_t         k_reserved;     /* bytes counted against the cap */
    struct keep_slot *slots;         /* KEEP_SLOTS */
    _Atomic uint32_t k_head, k_tail;
    /* counters: one writer each, read by _stats */
    _Atomic uint64_t recorded, lost, unrecorded, files, bytes;   /* recording */
    _Atomic uint64_t kept, rate_limited, capped, full, failed;   /* keep */
    _Atomic uint64_t k_refund;       /* writer: bytes of failed clips, given back to the cap */
    _Atomic bool     stopped;        /* writer: a write failed, recording off */
    /* under r->mu */
    bool             closing, closed;
};

struct recorder {
    pthread_mutex_t  mu;
    sem_t            wake;           /* the writer waits here (posted: work waits) */
    pthread_cond_t   cv_closed;      /* detach waits here */
    struct rec_tap  *taps;
    bool             quit;
    pthread_t        tid;
    unsigned         delay_ms;       /* test hook */
    char             model[16];      /* under mu */
};

/* record.c: shared helpers */
int64_t  rec_mono_ns(void);
void     rec_add(_Atomic uint64_t *c, uint64_t n);          /* relaxed, one writer */
uint64_t rec_get(const _Atomic uint64_t *c);
void     rec_safe_name(char *dst, size_t len, const char *s);   /* a file-name-safe copy */
void     rec_utc_stamp(double t, char *buf, size_t len);        /* YYYYmmddTHHMMSSZ */
void     rec_iso_time(double t, char *buf, size_t len);         /* ISO 8601 UTC, microseconds */
int      rec_write_text(const char *path, const char *text, size_t n);  /* atomically */
uint64_t rec_file_size(const char *path);
void     rec_wake_writer(recorder *r);

/* record_file.c: the writer's recordings */
void     rec_close_file(struct rec_tap *t);
/* BASE.wav created, never over an existing file (BASE gets "-1", "-2", ... on
 * a clash); NULL with errno and *why on failure. */
SNDFILE *rec_create_wav(char *base, size_t len, const SF_INFO *info0, const char **why);
/* The test hook's sleep after a write (TRIDENT_TEST_RECORD_DELAY_MS), not when final. */
void     rec_writer_sleep(const recorder *r, bool final);
void     rec_service_record(struct rec_tap *t, bool final);

/* keep.c: the writer's clips (keep_offer() is in record.h) */
void     rec_service_keep(struct rec_tap *t);

#endif
