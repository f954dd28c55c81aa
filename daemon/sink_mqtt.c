/* SPDX-License-Identifier: Apache-2.0 */
/* sink_mqtt.c — states, events and Home Assistant discovery to an MQTT
 * broker (libmosquitto).  A queued sink (sink.h): every callback but create
 * and destroy runs on the sink's own thread.
 *
 * Topics, P = mqtt.topic or "trident/HOST" (MQTT-NOTES.md has the payloads):
 *
 *   P/status             "online" / "offline", retained; the will is "offline"
 *   P/STREAM/state       the smoothed state, retained, on every change
 *   P/STREAM/event       every state change (QoS mqtt.qos, not retained)
 *   P/STREAM/severity    velocity and zone, retained (streams with severity)
 *   P/STREAM/result      every window (mqtt.results; QoS 0)
 *   P/stats              the sink's own counters, about every second (QoS 1)
 *   PREFIX/sensor/HOST/OBJECT/config   discovery, retained, one per sensor
 *
 * Threads.  Our own network thread runs mosquitto_loop() and the reconnect
 * with backoff (1, 2, 4 ... 30 s).  Not mosquitto_loop_start(): its loop
 * gives up for good on a "fatal" error — a name that does not resolve yet
 * at boot, a TLS handshake that failed once, a refused password — and the
 * sink would then be silent until restart.  Ours retries every error, and
 * logs each distinct one once.  mosquitto_threaded_set() tells libmosquitto
 * that another thread loops, so mosquitto_publish() from the sink thread
 * only queues and wakes it.
 *
 * What the broker has not taken.  Every message handed to libmosquitto is
 * in `pend` until its on_publish (QoS 0: written to the socket; QoS 1/2:
 * acknowledged).  At most PEND_MAX are pending, so a broker that stops
 * reading (SIGSTOP, a dead link before keepalive notices) cannot make
 * libmosquitto's queue grow without bound.  The sink is "gated" — hands
 * libmosquitto nothing new — while it is not connected, while PEND_MAX are
 * pending, or while a QoS >= 1 message has waited for its acknowledgement
 * longer than STALL_MS (so a stall shows within seconds, not when socket
 * buffers of megabytes have filled: P/stats is a QoS 1 probe every second
 * when nothing else is waiting for an acknowledgement).  While gated:
 *
 *   states, severity   only the latest per stream is kept (nothing that
 *                      matters is lost: they are retained snapshots)
 *   events             wait in a ring of mqtt.queue; the oldest that falls
 *                      off is counted in lost()
 *   results, stats     dropped; results are counted in lost()
 *
 * On every (re)connect: status "online", every discovery config, every
 * state, then the waiting events in order.  QoS 0 messages libmosquitto
 * had not written when the connection broke are gone: counted in lost().
 */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#ifndef TRIDENT_VERSION
#define TRIDENT_VERSION "0.0.0"
#endif

enum {
    PEND_MAX      = 256,    /* messages handed to libmosquitto, not yet taken */
    EARLY_MAX     = 32,     /* on_publish before mosquitto_publish returned */
    INFLIGHT      = 64,     /* libmosquitto's QoS >= 1 window */
    STALL_MS      = 2000,   /* an acknowledgement later than this: stalled */
    ORPHAN_MS     = 10000,  /* a QoS >= 1 message of a broken link: resent, or lost */
    BACKOFF_MIN_S = 1,
    BACKOFF_MAX_S = 30,
    DESTROY_MS    = 2000,   /* destroy waits this long for "offline" at most */
    LOOP_MS       = 100,
};

/* A small growing string buffer: one per sink, reused for every payload. */
struct jb {
    char  *buf;
    size_t len, cap;
    bool   oom;
};

struct mq_stream {
    char    *name;          /* as trident names it */
    char    *topic;         /* P/NAME with '+' and '#' replaced */
    char    *oid;           /* NAME for HA ids: [A-Za-z0-9_-] only */
    char    *state;         /* NULL: none yet */
    double   since;
    uint64_t seq;
    /* the last result, for the state's attributes */
    char    *label;
    char    *quality;
    double   score, rms, anomaly;
    bool     has_result, has_detector;
    /* severity */
    bool     has_severity;
    char    *sev_json;      /* latest, NULL: none */
    /* what the broker has of this stream on the current connection */
    bool     state_dirty, sev_dirty;
    unsigned disc_gen;      /* connection whose discovery went out (0: none) */
    bool     disc_sev;      /* the severity sensor was in it */
};

struct ev {
    char *topic, *payload;
};

struct pend {
    int      mid;
    int      qos;
    unsigned gen;
    int64_t  t_ms;
};

struct mq {
    struct mosquitto *m;
    char     *prefix;       /* P */
    char     *status;       /* P/status */
    char     *host, *node;  /* hostname; its HA id form */
    char     *disc_prefix;
    char      broker[300];
    int       keepalive_s;
    int       qos;
    bool      results, discovery;
    char      model[64], kind[32];
    double    started;

    struct mq_stream *st;
    unsigned  n_st, cap_st;

    struct ev *ring;        /* events waiting (gated) */
    unsigned  ring_cap, ring_head, ring_n;

    struct jb j;
    char     *tbuf;         /* topic scratch */
    size_t    tcap;

    /* shared with the network thread */
    pthread_mutex_t lk;
    pthread_cond_t  cv;
    struct pend pend[PEND_MAX];
    unsigned  n_pend;
    int       early[EARLY_MAX];
    unsigned  n_early;
    unsigned  conn_gen;     /* ++ on every CONNACK accepted */
    int64_t   conn_ms;      /* its time */
    bool      stop;
    atomic_bool     connected;
    atomic_uint_fast64_t lost;
    atomic_int      connack;        /* last refused CONNACK code, 0: none */
    atomic_uint     failures;       /* connection attempts that failed */
    pthread_t       net;
    bool      net_started, connecting;

    /* the sink thread's view */
    unsigned  seen_gen;     /* the connection we announced ourselves on */
    bool      orphans_checked;
    bool      ever_connected, warned_down;
    int       logged_rc;
    uint64_t  published;
    int64_t   last_probe_ms;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mosquitto_lib_init(); }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- JSON ---------------------------------------------------------------- */

static void jb_reset(struct jb *j) { j->len = 0; if (j->buf) j->buf[0] = 0; }

static void jb_put(struct jb *j, const char *s, size_t n)
{
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *b = realloc(j->buf, cap);
        if (!b) {
            j->oom = true;
            return;
        }
        j->buf = b;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
}

static void jb_puts(struct jb *j, const char *s) { jb_put(j, s, strlen(s)); }

static void jb_printf(struct jb *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(struct jb *j, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        jb_put(j, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at p, 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* A JSON string; NULL is null.  Bytes that are not UTF-8 become U+FFFD. */
static void jb_str(struct jb *j, const char *s)
{
    if (!s) {
        jb_puts(j, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    jb_put(j, "\"", 1);
    while (*p) {
        if (*p == '"' || *p == '\\') {
            char e[2] = { '\\', (char)*p++ };
            jb_put(j, e, 2);
        } else if (*p < 0x20) {
            jb_printf(j, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            jb_put(j, (const char *)p++, 1);
        } else {
            size_t n = utf8_len(p);
            if (!n) {
                jb_puts(j, "\\ufffd");
                p++;
            } else {
                jb_put(j, (const char *)p, n);
                p += n;
            }
        }
    }
    jb_put(j, "\"", 1);
}

static void jb_num(struct jb *j, const char *fmt, double x)
{
    if (isfinite(x))
        jb_printf(j, fmt, x);
    else
        jb_puts(j, "null");
}

/* ---- names --------------------------------------------------------------- */

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

/* A topic level may hold anything but the wildcards. */
static void topic_clean(char *s)
{
    for (; *s; s++)
        if (*s == '+' || *s == '#')
            *s = '_';
}

/* Home Assistant's node_id and object_id: [a-zA-Z0-9_-]. */
static void id_clean(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            *s = '_';
    }
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static const char *topic(struct mq *q, const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    if (n > q->tcap) {
        char *t = realloc(q->tbuf, n);
        if (!t)
            return NULL;
        q->tbuf = t;
        q->tcap = n;
    }
    snprintf(q->tbuf, n, "%s%s%s", a, b, c);
    return q->tbuf;
}

/* ---- pending messages (shared with the network thread) ------------------- */

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    struct mq *q = arg;
    (void)m;
    if (rc == 0) {
        pthread_mutex_lock(&q->lk);
        q->conn_gen++;
        q->conn_ms = now_ms();
        pthread_mutex_unlock(&q->lk);
        atomic_store(&q->connack, 0);
        atomic_store(&q->connected, true);
    } else {
        atomic_store(&q->connack, rc);
    }
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
    struct mq *q = arg;
    (void)m;
    (void)rc;
    atomic_store(&q->connected, false);
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
    struct mq *q = arg;
    (void)m;
    pthread_mutex_lock(&q->lk);
    unsigned i;
    for (i = 0; i < q->n_pend; i++)
        if (q->pend[i].mid == mid)
            break;
    if (i < q->n_pend) {
        q->pend[i] = q->pend[--q->n_pend];
    } else {
        /* Taken before mosquitto_publish() returned its mid to us. */
        if (q->n_early == EARLY_MAX)
            memmove(q->early, q->early + 1, (EARLY_MAX - 1) * sizeof q->early[0]),
                q->n_early--;
        q->early[q->n_early++] = mid;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->lk);
}

/* Is the sink gated (see the top)?  Also expires what a broken connection
 * left behind. */
static bool gated(struct mq *q)
{
    if (!atomic_load(&q->connected))
        return true;
    int64_t now = now_ms();
    bool stalled = false;
    pthread_mutex_lock(&q->lk);
    unsigned gen = q->conn_gen;
    bool orphan_time = now - q->conn_ms > ORPHAN_MS;
    for (unsigned i = 0; i < q->n_pend;) {
        struct pend *p = &q->pend[i];
        if (p->gen != gen && (p->qos == 0 || orphan_time)) {
            /* QoS 0 of an earlier connection: never written.  QoS >= 1:
             * libmosquitto resends those on reconnect; one still not
             * acknowledged long after is taken as lost. */
            atomic_fetch_add(&q->lost, 1);
            *p = q->pend[--q->n_pend];
            continue;
        }
        if (p->qos > 0 && p->gen == gen && now - p->t_ms > STALL_MS)
            stalled = true;
        i++;
    }
    bool full = q->n_pend >= PEND_MAX;
    pthread_mutex_unlock(&q->lk);
    return stalled || full;
}

static bool qos1_pending(struct mq *q)
{
    bool any = false;
    pthread_mutex_lock(&q->lk);
    for (unsigned i = 0; i < q->n_pend && !any; i++)
        any = q->pend[i].qos > 0;
    pthread_mutex_unlock(&q->lk);
    return any;
}

/* Hand one message to libmosquitto.  0, or -EIO (nothing was taken). */
static int pub(struct mq *q, const char *t, const char *payload, int qos, bool retain,
               int *midp)
{
    int mid = 0;
    int rc = mosquitto_publish(q->m, &mid, t, (int)strlen(payload), payload, qos, retain);
    if (rc != MOSQ_ERR_SUCCESS)
        return -EIO;
    q->published++;
    if (midp)
        *midp = mid;
    pthread_mutex_lock(&q->lk);
    unsigned i;
    for (i = 0; i < q->n_early; i++)
        if (q->early[i] == mid)
            break;
    if (i < q->n_early) {
        q->early[i] = q->early[--q->n_early];
    } else if (q->n_pend < PEND_MAX) {
        q->pend[q->n_pend++] = (struct pend){ mid, qos, q->conn_gen, now_ms() };
    }
    pthread_mutex_unlock(&q->lk);
    return 0;
}

/* ---- the network thread -------------------------------------------------- */

static void *net_main(void *arg)
{
    struct mq *q = arg;
    char host[256];
    unsigned port;
    bool tls;
    char em[128];
    unsigned backoff = BACKOFF_MIN_S;
    bool first = true, up = false;

    cfg_parse_broker(q->broker, host, sizeof host, &port, &tls, em, sizeof em);
    pthread_mutex_lock(&q->lk);
    while (!q->stop) {
        if (!up) {
            pthread_mutex_unlock(&q->lk);
            int rc = first ? mosquitto_connect_async(q->m, host, (int)port, q->keepalive_s)
                           : mosquitto_reconnect_async(q->m);
            /* connect_async stores host and keepalive even when it fails,
             * so reconnect_async can retry from then on. */
            first = false;
            pthread_mutex_lock(&q->lk);
            if (rc == MOSQ_ERR_SUCCESS) {
                up = true;
                continue;
            }
            atomic_store(&q->connected, false);
            atomic_fetch_add(&q->failures, 1);
        } else {
            pthread_mutex_unlock(&q->lk);
            int rc = mosquitto_loop(q->m, LOOP_MS, 1);
            pthread_mutex_lock(&q->lk);
            if (rc == MOSQ_ERR_SUCCESS) {
                if (atomic_load(&q->connected))
                    backoff = BACKOFF_MIN_S;
                continue;
            }
            up = false;
            atomic_store(&q->connected, false);
            atomic_fetch_add(&q->failures, 1);
            if (q->stop)
                break;
        }
        /* Back off: 1, 2, 4 ... 30 s; destroy wakes us. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += backoff;
        while (!q->stop && pthread_cond_timedwait(&q->cv, &q->lk, &until) != ETIMEDOUT)
            ;
        backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
    }
    pthread_mutex_unlock(&q->lk);
    return NULL;
}

/* ---- payloads ------------------------------------------------------------ */

static struct mq_stream *stream_get(struct mq *q, const char *name)
{
    for (unsigned i = 0; i < q->n_st; i++)
        if (!strcmp(q->st[i].name, name))
            return &q->st[i];
    if (q->n_st == q->cap_st) {
        unsigned cap = q->cap_st ? 2 * q->cap_st : 8;
        struct mq_stream *n = realloc(q->st, cap * sizeof *n);
        if (!n)
            return NULL;
        q->st = n;
        q->cap_st = cap;
    }
    struct mq_stream *s = &q->st[q->n_st];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->topic = join(q->prefix, "/", name);
    s->oid = strdup(name);
    if (!s->name || !s->topic || !s->oid) {
        free(s->name);
        free(s->topic);
        free(s->oid);
        return NULL;
    }
    topic_clean(s->topic + strlen(q->prefix));
    id_clean(s->oid);
    s->since = NAN;
    s->score = s->rms = s->anomaly = NAN;
    q->n_st++;
    return s;
}

static void state_json(struct mq *q, const struct mq_stream *s)
{
    struct jb *j = &q->j;
    jb_reset(j);
    jb_puts(j, "{\"state\":");
    jb_str(j, s->state);
    jb_puts(j, ",\"since\":");
    jb_num(j, "%.6f", s->since);
    jb_printf(j, ",\"seq\":%" PRIu64 ",\"stream\":", s->seq);
    jb_str(j, s->name);
    if (s->has_result) {
        jb_puts(j, ",\"label\":");
        jb_str(j, s->label);
        jb_puts(j, ",\"score\":");
        jb_num(j, "%.6g", s->score);
        jb_puts(j, ",\"quality\":");
        jb_str(j, s->quality);
        jb_puts(j, ",\"rms\":");
        jb_num(j, "%.6g", s->rms);
        if (s->has_detector) {
            jb_puts(j, ",\"anomaly\":");
            jb_num(j, "%.6g", s->anomaly);
        }
    }
    jb_puts(j, ",\"model\":");
    jb_str(j, q->model[0] ? q->model : NULL);
    jb_puts(j, "}");
}

/* One discovery config: the stream's state sensor, or its severity one. */
static void discovery_json(struct mq *q, const struct mq_stream *s, bool sev, const char *oid)
{
    struct jb *j = &q->j;
    jb_reset(j);
    jb_puts(j, "{\"name\":");
    {
        char name[512];
        snprintf(name, sizeof name, "%s%s", s->name, sev ? " severity" : "");
        jb_str(j, name);
    }
    jb_puts(j, ",\"unique_id\":");
    jb_str(j, oid);
    jb_puts(j, ",\"object_id\":");
    jb_str(j, oid);
    jb_puts(j, ",\"state_topic\":");
    const char *t = topic(q, s->topic, sev ? "/severity" : "/state", "");
    jb_str(j, t);
    if (sev) {
        jb_puts(j, ",\"value_template\":\"{{ value_json.velocity_mm_s }}\""
                   ",\"unit_of_measurement\":\"mm/s\",\"state_class\":\"measurement\""
                   ",\"icon\":\"mdi:vibrate\"");
    } else {
        jb_puts(j, ",\"value_template\":\"{{ value_json.state }}\",\"icon\":\"mdi:waveform\"");
    }
    jb_puts(j, ",\"json_attributes_topic\":");
    jb_str(j, t);
    jb_puts(j, ",\"availability_topic\":");
    jb_str(j, q->status);
    jb_puts(j, ",\"payload_available\":\"online\",\"payload_not_available\":\"offline\"");
    jb_printf(j, ",\"qos\":%d", q->qos);
    jb_puts(j, ",\"device\":{\"identifiers\":[");
    {
        char id[300];
        snprintf(id, sizeof id, "trident_%s", q->node);
        jb_str(j, id);
        jb_puts(j, "],\"name\":");
        snprintf(id, sizeof id, "trident %s", q->host);
        jb_str(j, id);
    }
    jb_puts(j, ",\"manufacturer\":\"trident\",\"model\":");
    {
        char model[128];
        if (q->model[0])
            snprintf(model, sizeof model, "%s %s", q->kind[0] ? q->kind : "model", q->model);
        else
            snprintf(model, sizeof model, "trident");
        jb_str(j, model);
    }
    jb_puts(j, ",\"sw_version\":");
    jb_str(j, TRIDENT_VERSION);
    jb_puts(j, "}}");
}

/* ---- flushing ------------------------------------------------------------ */

static int pub_discovery(struct mq *q, struct mq_stream *s)
{
    if (!q->discovery)
        return 0;
    for (int sev = 0; sev <= (s->has_severity ? 1 : 0); sev++) {
        char uid[600], ct[1200];
        snprintf(uid, sizeof uid, "trident_%s_%s%s", q->node, s->oid, sev ? "_severity" : "");
        discovery_json(q, s, sev, uid);
        if (q->j.oom)
            return -ENOMEM;
        snprintf(ct, sizeof ct, "%s/sensor/%s/%s%s/config", q->disc_prefix, q->node, s->oid,
                 sev ? "_severity" : "");
        int rc = pub(q, ct, q->j.buf, q->qos ? q->qos : 1, true, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

static int pub_state(struct mq *q, struct mq_stream *s)
{
    if (!s->state)
        return 0;
    state_json(q, s);
    if (q->j.oom)
        return -ENOMEM;
    char *t = join(s->topic, "/state", "");
    if (!t)
        return -ENOMEM;
    int rc = pub(q, t, q->j.buf, q->qos, true, NULL);
    free(t);
    return rc;
}

static int pub_severity(struct mq *q, struct mq_stream *s)
{
    if (!s->sev_json)
        return 0;
    char *t = join(s->topic, "/severity", "");
    if (!t)
        return -ENOMEM;
    int rc = pub(q, t, s->sev_json, 0, true, NULL);
    free(t);
    return rc;
}

static void ring_free(struct ev *e)
{
    free(e->topic);
    free(e->payload);
    e->topic = e->payload = NULL;
}

/* Queue an event; the oldest falls off a full ring and is counted. */
static int ring_push(struct mq *q, char *t, char *payload)
{
    if (q->ring_n == q->ring_cap) {
        ring_free(&q->ring[q->ring_head]);
        q->ring_head = (q->ring_head + 1) % q->ring_cap;
        q->ring_n--;
        atomic_fetch_add(&q->lost, 1);
    }
    struct ev *e = &q->ring[(q->ring_head + q->ring_n) % q->ring_cap];
    e->topic = t;
    e->payload = payload;
    q->ring_n++;
    return 0;
}

/* Everything the broker should have and does not, as far as the gate lets. */
static void flush(struct mq *q)
{
    if (!atomic_load(&q->connected))
        return;
    pthread_mutex_lock(&q->lk);
    unsigned gen = q->conn_gen;
    pthread_mutex_unlock(&q->lk);
    if (gen != q->seen_gen) {
        /* A new connection: announce ourselves and everything retained. */
        if (pub(q, q->status, "online", 1, true, NULL))
            return;
        q->seen_gen = gen;
        for (unsigned i = 0; i < q->n_st; i++) {
            q->st[i].disc_gen = 0;
            q->st[i].state_dirty = q->st[i].state != NULL;
            q->st[i].sev_dirty = q->st[i].sev_json != NULL;
        }
    }
    for (unsigned i = 0; i < q->n_st; i++) {
        struct mq_stream *s = &q->st[i];
        if (s->disc_gen != gen || s->disc_sev != s->has_severity) {
            /* Discovery goes before the state, past the gate: a few
             * messages per stream per connection. */
            if (pub_discovery(q, s))
                return;
            s->disc_gen = gen;
            s->disc_sev = s->has_severity;
        }
    }
    for (unsigned i = 0; i < q->n_st; i++) {
        struct mq_stream *s = &q->st[i];
        if (s->state_dirty) {
            if (gated(q) || pub_state(q, s))
                return;
            s->state_dirty = false;
        }
        if (s->sev_dirty) {
            if (gated(q) || pub_severity(q, s))
                return;
            s->sev_dirty = false;
        }
    }
    while (q->ring_n) {
        struct ev *e = &q->ring[q->ring_head];
        if (gated(q) || pub(q, e->topic, e->payload, q->qos, false, NULL))
            return;
        ring_free(e);
        q->ring_head = (q->ring_head + 1) % q->ring_cap;
        q->ring_n--;
    }
}

/* Log the connection's changes from the sink thread (the network thread
 * only sets flags). */
static void report(struct mq *q)
{
    bool c = atomic_load(&q->connected);
    int rc = atomic_load(&q->connack);
    if (c) {
        if (!q->ever_connected || q->warned_down)
            log_info("mqtt: connected to %s", q->broker);
        q->ever_connected = true;
        q->warned_down = false;
        q->logged_rc = 0;
    } else if (rc && rc != q->logged_rc) {
        char why[128];
        snprintf(why, sizeof why, "%s", mosquitto_connack_string(rc));
        why[strcspn(why, ".")] = 0;
        log_warn("mqtt: %s refused the connection (%s); retrying", q->broker, why);
        q->logged_rc = rc;
        q->warned_down = true;
    } else if (!q->warned_down && (q->ever_connected || atomic_load(&q->failures))) {
        log_warn("mqtt: %s: %s; retrying with backoff", q->broker,
                 q->ever_connected ? "connection lost" : "cannot connect");
        q->warned_down = true;
    }
}

/* ---- the ops ------------------------------------------------------------- */

static bool mqtt_enabled(const struct cfg *c) { return c->mqtt_broker != NULL; }

static void mqtt_destroy(void *arg);

static int read_first_line(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "mqtt.password_file: cannot read %s: %s", path, strerror(e));
        return -e;
    }
    char *line = NULL;
    size_t n = 0;
    ssize_t len = getline(&line, &n, f);
    fclose(f);
    if (len < 0) {
        free(line);
        line = strdup("");
        if (!line)
            return -ENOMEM;
        len = 0;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = 0;
    *out = line;
    return 0;
}

static int mqtt_create(const struct cfg *c, void **state, char *err, size_t errlen)
{
    char host[256], em[200];
    unsigned port;
    bool tls;
    int rc = cfg_parse_broker(c->mqtt_broker, host, sizeof host, &port, &tls, em, sizeof em);
    if (rc) {
        snprintf(err, errlen, "mqtt.broker: %s", em);
        return rc;
    }
    pthread_once(&lib_once, lib_init);

    struct mq *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    pthread_mutex_init(&q->lk, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_cond_init(&q->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    atomic_init(&q->connected, false);
    atomic_init(&q->lost, 0);
    atomic_init(&q->connack, 0);
    atomic_init(&q->failures, 0);
    q->qos = c->mqtt_qos;
    q->results = c->mqtt_results;
    q->discovery = c->mqtt_discovery;
    q->started = now_unix();
    snprintf(q->broker, sizeof q->broker, "%s", c->mqtt_broker);

    char hn[256] = "localhost";
    if (gethostname(hn, sizeof hn - 1) == 0)
        hn[sizeof hn - 1] = 0;
    hn[strcspn(hn, ".")] = 0;
    if (!hn[0])
        snprintf(hn, sizeof hn, "localhost");
    q->host = strdup(hn);
    q->node = strdup(hn);
    q->prefix = c->mqtt_topic ? strdup(c->mqtt_topic) : join("trident/", hn, "");
    q->disc_prefix = strdup(c->mqtt_discovery_prefix ? c->mqtt_discovery_prefix
                                                     : "homeassistant");
    q->ring_cap = c->mqtt_queue ? c->mqtt_queue : 4096;
    q->ring = calloc(q->ring_cap, sizeof *q->ring);
    if (!q->host || !q->node || !q->prefix || !q->disc_prefix || !q->ring) {
        mqtt_destroy(q);
        return -ENOMEM;
    }
    id_clean(q->node);
    {
        size_t n = strlen(q->prefix);
        while (n > 1 && q->prefix[n - 1] == '/')
            q->prefix[--n] = 0;
        topic_clean(q->prefix);
    }
    q->status = join(q->prefix, "/status", "");
    char *cid = c->mqtt_client_id ? strdup(c->mqtt_client_id) : join("trident-", hn, "");
    if (!q->status || !cid) {
        free(cid);
        mqtt_destroy(q);
        return -ENOMEM;
    }

    q->m = mosquitto_new(cid, true, q);
    free(cid);
    if (!q->m) {
        rc = -errno;
        snprintf(err, errlen, "mqtt: cannot create a client: %s", strerror(errno));
        mqtt_destroy(q);
        return rc ? rc : -ENOMEM;
    }
    mosquitto_threaded_set(q->m, true);
    mosquitto_max_inflight_messages_set(q->m, INFLIGHT);
    mosquitto_connect_callback_set(q->m, on_connect);
    mosquitto_disconnect_callback_set(q->m, on_disconnect);
    mosquitto_publish_callback_set(q->m, on_publish);

    rc = mosquitto_will_set(q->m, q->status, 7, "offline", 1, true);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "mqtt.topic: \"%s\": not a valid topic (%s)", q->prefix,
                 mosquitto_strerror(rc));
        mqtt_destroy(q);
        return -EINVAL;
    }
    if (c->mqtt_username) {
        char *pw = NULL;
        if (c->mqtt_password_file) {
            rc = read_first_line(c->mqtt_password_file, &pw, err, errlen);
            if (rc) {
                mqtt_destroy(q);
                return rc;
            }
        }
        rc = mosquitto_username_pw_set(q->m, c->mqtt_username, pw);
        if (pw) {
            memset(pw, 0, strlen(pw));
            free(pw);
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "mqtt.username: %s", mosquitto_strerror(rc));
            mqtt_destroy(q);
            return -EINVAL;
        }
    }
    if (tls) {
        const char *files[3] = { c->mqtt_ca_file, c->mqtt_cert_file, c->mqtt_key_file };
        const char *keys[3] = { "mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file" };
        for (int i = 0; i < 3; i++)
            if (files[i] && access(files[i], R_OK)) {
                int e = errno;
                snprintf(err, errlen, "%s: cannot read %s: %s", keys[i], files[i], strerror(e));
                mqtt_destroy(q);
                return -e;
            }
        rc = mosquitto_tls_set(q->m, c->mqtt_ca_file,
                               c->mqtt_ca_file ? NULL : "/etc/ssl/certs",
                               c->mqtt_cert_file, c->mqtt_key_file, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "%s: %s", c->mqtt_cert_file ? "mqtt.cert_file" : "mqtt.ca_file",
                     mosquitto_strerror(rc));
            mqtt_destroy(q);
            return -EINVAL;
        }
    }
    q->keepalive_s = (int)c->mqtt_keepalive;

    if (pthread_create(&q->net, NULL, net_main, q)) {
        snprintf(err, errlen, "mqtt: cannot start its thread");
        mqtt_destroy(q);
        return -EAGAIN;
    }
    q->net_started = true;
    *state = q;
    return 0;
}

/* The model the payloads name.  Results and events carry its digest before
 * the first snapshot brings its kind; a change goes out again in every
 * discovery config (the device's model) and every retained state. */
static void set_model(struct mq *q, const char *model, const char *kind)
{
    if (!strcmp(model, q->model) && (!kind || !strcmp(kind, q->kind)))
        return;
    snprintf(q->model, sizeof q->model, "%s", model);
    if (kind)
        snprintf(q->kind, sizeof q->kind, "%s", kind);
    for (unsigned i = 0; i < q->n_st; i++) {
        q->st[i].disc_gen = 0;
        q->st[i].state_dirty = q->st[i].state != NULL;
    }
}

static int mqtt_result(void *arg, const struct result *r)
{
    struct mq *q = arg;
    struct mq_stream *s = stream_get(q, r->stream);
    if (!s)
        return -ENOMEM;
    if (r->model && !q->model[0])
        set_model(q, r->model, NULL);
    if (!s->label || !r->label || strcmp(s->label, r->label)) {
        free(s->label);
        s->label = xstrdup(r->label);
    }
    if (!s->quality || !r->quality || strcmp(s->quality, r->quality)) {
        free(s->quality);
        s->quality = xstrdup(r->quality);
    }
    s->score = r->score;
    s->rms = r->rms;
    s->has_detector = r->has_detector;
    s->anomaly = r->has_detector ? r->anomaly : NAN;
    s->has_result = true;
    int rc = 0;
    if (q->results) {
        if (gated(q)) {
            atomic_fetch_add(&q->lost, 1);
        } else {
            struct jb *j = &q->j;
            jb_reset(j);
            jb_puts(j, "{\"stream\":");
            jb_str(j, r->stream);
            jb_printf(j, ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"t\":", r->seq, r->sample);
            jb_num(j, "%.6f", r->t);
            if (r->cls >= 0)
                jb_printf(j, ",\"class\":%d", r->cls);
            else
                jb_puts(j, ",\"class\":null");
            jb_puts(j, ",\"label\":");
            jb_str(j, r->label);
            jb_puts(j, ",\"state\":");
            jb_str(j, r->state);
            jb_puts(j, ",\"score\":");
            jb_num(j, "%.9g", r->score);
            jb_puts(j, ",\"probs\":[");
            for (int i = 0; r->probs && i < r->n_classes; i++) {
                if (i)
                    jb_puts(j, ",");
                jb_num(j, "%.9g", r->probs[i]);
            }
            jb_puts(j, "],\"quality\":");
            jb_str(j, r->quality);
            jb_puts(j, ",\"rms\":");
            jb_num(j, "%.9g", r->rms);
            jb_puts(j, ",\"peak\":");
            jb_num(j, "%.9g", r->peak);
            if (r->has_detector) {
                jb_puts(j, ",\"anomaly\":");
                jb_num(j, "%.9g", r->anomaly);
                jb_puts(j, ",\"threshold\":");
                jb_num(j, "%.9g", r->threshold);
            }
            jb_printf(j, ",\"gap\":%s,\"latency_us\":%" PRId64 ",\"model\":",
                      r->gap ? "true" : "false", r->latency_us > 0 ? r->latency_us : 0);
            jb_str(j, r->model);
            jb_puts(j, "}");
            const char *t = topic(q, s->topic, "/result", "");
            if (j->oom || !t || pub(q, t, j->buf, 0, false, NULL)) {
                atomic_fetch_add(&q->lost, 1);
                rc = j->oom || !t ? -ENOMEM : 0;
                j->oom = false;
            }
        }
    }
    flush(q);
    return rc;
}

static int mqtt_event(void *arg, const struct sink_event *e)
{
    struct mq *q = arg;
    struct mq_stream *s = stream_get(q, e->stream);
    if (!s)
        return -ENOMEM;
    if (e->model && !q->model[0])
        set_model(q, e->model, NULL);
    if (e->to && (!s->state || strcmp(s->state, e->to))) {
        char *n = strdup(e->to);
        if (!n)
            return -ENOMEM;
        free(s->state);
        s->state = n;
    }
    s->since = e->t;
    s->seq = e->seq;
    s->state_dirty = true;

    struct jb *j = &q->j;
    jb_reset(j);
    jb_puts(j, "{\"stream\":");
    jb_str(j, e->stream);
    jb_puts(j, ",\"from\":");
    jb_str(j, e->from);
    jb_puts(j, ",\"to\":");
    jb_str(j, e->to);
    jb_printf(j, ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"t\":", e->seq, e->sample);
    jb_num(j, "%.6f", e->t);
    jb_printf(j, ",\"at_seq\":%" PRIu64 ",\"agree\":%u,\"windows\":%u,\"confidence\":",
              e->at_seq, e->agree, e->windows);
    jb_num(j, "%.4g", e->windows ? (double)e->agree / e->windows : NAN);
    jb_puts(j, ",\"score\":");
    jb_num(j, "%.6g", e->score);
    jb_puts(j, ",\"model\":");
    jb_str(j, e->model);
    jb_puts(j, "}");
    char *t = join(s->topic, "/event", "");
    char *p = j->oom ? NULL : strdup(j->buf);
    j->oom = false;
    if (!t || !p) {
        free(t);
        free(p);
        atomic_fetch_add(&q->lost, 1);
        return -ENOMEM;
    }
    ring_push(q, t, p);
    flush(q);
    return 0;
}

static int mqtt_severity(void *arg, const struct sink_severity *e)
{
    struct mq *q = arg;
    struct mq_stream *s = stream_get(q, e->stream);
    if (!s)
        return -ENOMEM;
    s->has_severity = true;
    struct jb *j = &q->j;
    jb_reset(j);
    jb_puts(j, "{\"velocity_mm_s\":");
    jb_num(j, "%.6g", e->velocity_mm_s);
    jb_puts(j, ",\"zone\":");
    jb_str(j, e->zone);
    jb_puts(j, ",\"t\":");
    jb_num(j, "%.6f", e->t);
    jb_puts(j, ",\"seconds\":");
    jb_num(j, "%.6g", e->seconds);
    jb_puts(j, ",\"band_hz\":[");
    jb_num(j, "%.6g", e->band_hz[0]);
    jb_puts(j, ",");
    jb_num(j, "%.6g", e->band_hz[1]);
    jb_puts(j, "]}");
    char *p = j->oom ? NULL : strdup(j->buf);
    j->oom = false;
    if (!p)
        return -ENOMEM;
    free(s->sev_json);
    s->sev_json = p;
    s->sev_dirty = true;
    flush(q);
    return 0;
}

/* P/stats: the sink's counters, and the probe that shows a stall (top). */
static void probe(struct mq *q)
{
    static const int64_t every_ms = 1000;
    int64_t now = now_ms();
    if (now - q->last_probe_ms < every_ms || gated(q) || qos1_pending(q))
        return;
    q->last_probe_ms = now;
    struct jb *j = &q->j;
    jb_reset(j);
    jb_puts(j, "{\"t\":");
    jb_num(j, "%.6f", now_unix());
    jb_puts(j, ",\"uptime\":");
    jb_num(j, "%.3f", now_unix() - q->started);
    jb_printf(j, ",\"streams\":%u,\"published\":%" PRIu64 ",\"lost\":%" PRIu64
                 ",\"waiting\":%u}",
              q->n_st, q->published, (uint64_t)atomic_load(&q->lost), q->ring_n);
    const char *t = topic(q, q->prefix, "/stats", "");
    if (!j->oom && t)
        pub(q, t, j->buf, 1, false, NULL);
    j->oom = false;
}

static int mqtt_stats(void *arg, const struct sink_stats *st, int kind)
{
    struct mq *q = arg;
    (void)kind;
    if (st->model)
        set_model(q, st->model, st->model_kind ? st->model_kind : "");
    for (unsigned i = 0; i < st->n_streams; i++) {
        const struct sink_stream_stats *ss = &st->streams[i];
        struct mq_stream *s = stream_get(q, ss->stream);
        if (!s)
            return -ENOMEM;
        if (ss->has_severity)
            s->has_severity = true;
        if (ss->state && (!s->state || strcmp(s->state, ss->state))) {
            /* A state we have not seen an event for: the first snapshot,
             * or events that did not fit sink.c's queue. */
            char *n = strdup(ss->state);
            if (!n)
                return -ENOMEM;
            free(s->state);
            s->state = n;
            s->since = ss->state_t;
            s->seq = ss->state_seq;
            s->state_dirty = true;
        }
    }
    report(q);
    probe(q);
    flush(q);
    return 0;
}

static void mqtt_tick(void *arg)
{
    struct mq *q = arg;
    report(q);
    probe(q);
    flush(q);
}

static uint64_t mqtt_lost(void *arg)
{
    struct mq *q = arg;
    return atomic_load(&q->lost);
}

/* Wait on q->cv until done(q, x) or the deadline; q->lk held. */
static bool wait_until(struct mq *q, bool (*done)(struct mq *, int), int x, int64_t deadline)
{
    while (!done(q, x)) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (left < 50 ? left : 50) * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&q->cv, &q->lk, &ts);
    }
    return true;
}

static bool mid_done(struct mq *q, int mid)
{
    for (unsigned i = 0; i < q->n_pend; i++)
        if (q->pend[i].mid == mid)
            return false;
    return true;
}

static bool down(struct mq *q, int unused)
{
    (void)unused;
    return !atomic_load(&q->connected);
}

static void mqtt_destroy(void *arg)
{
    struct mq *q = arg;
    if (!q)
        return;
    if (q->net_started) {
        int64_t deadline = now_ms() + DESTROY_MS;
        if (atomic_load(&q->connected)) {
            int mid = -1;
            /* The will is for a death; a clean exit says "offline" itself. */
            bool sent = pub(q, q->status, "offline", 1, true, &mid) == 0;
            pthread_mutex_lock(&q->lk);
            if (sent)
                wait_until(q, mid_done, mid, deadline);
            pthread_mutex_unlock(&q->lk);
            mosquitto_disconnect(q->m);
            pthread_mutex_lock(&q->lk);
            wait_until(q, down, 0, deadline > now_ms() + 200 ? deadline : now_ms() + 200);
            pthread_mutex_unlock(&q->lk);
        } else {
            mosquitto_disconnect(q->m);
        }
        pthread_mutex_lock(&q->lk);
        q->stop = true;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->lk);
        pthread_join(q->net, NULL);
    }
    if (q->m)
        mosquitto_destroy(q->m);
    for (unsigned i = 0; i < q->n_st; i++) {
        struct mq_stream *s = &q->st[i];
        free(s->name);
        free(s->topic);
        free(s->oid);
        free(s->state);
        free(s->label);
        free(s->quality);
        free(s->sev_json);
    }
    free(q->st);
    if (q->ring) {
        for (unsigned i = 0; i < q->ring_n; i++)
            ring_free(&q->ring[(q->ring_head + i) % q->ring_cap]);
        free(q->ring);
    }
    free(q->j.buf);
    free(q->tbuf);
    free(q->prefix);
    free(q->status);
    free(q->host);
    free(q->node);
    free(q->disc_prefix);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->lk);
    free(q);
}

const struct sink_ops sink_mqtt_ops = {
    .name     = "mqtt",
    .async    = true,
    .enabled  = mqtt_enabled,
    .create   = mqtt_create,
    .result   = mqtt_result,
    .event    = mqtt_event,
    .severity = mqtt_severity,
    .stats    = mqtt_stats,
    .tick     = mqtt_tick,
    .lost     = mqtt_lost,
    .destroy  = mqtt_destroy,
};
