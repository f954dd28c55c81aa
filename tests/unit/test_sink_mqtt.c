/* SPDX-License-Identifier: Apache-2.0 */
/* test_sink_mqtt.c — the MQTT sink against a real mosquitto broker started
 * on a free loopback port: discovery, retained state, events, results,
 * status online/offline, the last will (a child process killed with
 * SIGKILL), a broker away at start and restarted, the event ring's bound
 * and its count, a stalled broker (SIGSTOP) that never blocks the sink's
 * calls, and user/password (a wrong one retried, the right one working).
 *
 * The test plays sink.c: it calls the ops directly from one thread and
 * calls tick() in a loop.  A libmosquitto client in the test subscribes to
 * '#' and records every message. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

#define TOPIC "trident/testhost"

static char tmpdir[256];
static char self_path[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* mosquitto on 127.0.0.1:port; extra: more lines for its conf.  The pid, or -1. */
static pid_t broker_start(unsigned port, const char *extra)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/mosquitto-%u.conf", tmpdir, port);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f, "listener %u 127.0.0.1\npersistence false\nuser root\n%s\n", port,
            extra ? extra : "allow_anonymous true");
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0 && !getenv("TEST_MQTT_VERBOSE")) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    double end = now_s() + 10;
    while (now_s() < end) {
        if (port_open(port))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void broker_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ---- a subscriber that records everything -------------------------------- */

struct msg {
    char *topic, *payload;
    bool  retain;
};

struct sub {
    struct mosquitto *m;
    pthread_mutex_t   lk;
    struct msg       *v;
    size_t            n, cap;
    bool              subscribed;
};

static void sub_on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *mm)
{
    struct sub *s = arg;
    (void)m;
    pthread_mutex_lock(&s->lk);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    char *p = malloc((size_t)mm->payloadlen + 1);
    memcpy(p, mm->payload, (size_t)mm->payloadlen);
    p[mm->payloadlen] = 0;
    s->v[s->n++] = (struct msg){ strdup(mm->topic), p, mm->retain };
    pthread_mutex_unlock(&s->lk);
}

static void sub_on_subscribe(struct mosquitto *m, void *arg, int mid, int n, const int *q)
{
    struct sub *s = arg;
    (void)m, (void)mid, (void)n, (void)q;
    pthread_mutex_lock(&s->lk);
    s->subscribed = true;
    pthread_mutex_unlock(&s->lk);
}

static void sub_on_connect(struct mosquitto *m, void *arg, int rc)
{
    (void)arg;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, "#", 1);
}

static struct sub *sub_start(unsigned port, const char *user, const char *pw)
{
    struct sub *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->lk, NULL);
    s->m = mosquitto_new(NULL, true, s);
    if (user)
        mosquitto_username_pw_set(s->m, user, pw);
    mosquitto_connect_callback_set(s->m, sub_on_connect);
    mosquitto_subscribe_callback_set(s->m, sub_on_subscribe);
    mosquitto_message_callback_set(s->m, sub_on_message);
    if (mosquitto_connect(s->m, "127.0.0.1", (int)port, 30) || mosquitto_loop_start(s->m)) {
        mosquitto_destroy(s->m);
        free(s);
        return NULL;
    }
    double end = now_s() + 10;
    for (;;) {
        pthread_mutex_lock(&s->lk);
        bool ok = s->subscribed;
        pthread_mutex_unlock(&s->lk);
        if (ok)
            return s;
        if (now_s() > end)
            break;
        sleep_ms(10);
    }
    return s;       /* not subscribed: the checks will say so */
}

static void sub_stop(struct sub *s)
{
    if (!s)
        return;
    mosquitto_disconnect(s->m);
    mosquitto_loop_stop(s->m, false);
    mosquitto_destroy(s->m);
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].topic);
        free(s->v[i].payload);
    }
    free(s->v);
    pthread_mutex_destroy(&s->lk);
    free(s);
}

/* The index of the k-th (from 0) message on topic with payload containing
 * needle (NULL: any) at or after from, or -1. */
static long sub_find(struct sub *s, const char *topic, const char *needle, size_t from)
{
    long r = -1;
    pthread_mutex_lock(&s->lk);
    for (size_t i = from; i < s->n && r < 0; i++)
        if (!strcmp(s->v[i].topic, topic) && (!needle || strstr(s->v[i].payload, needle)))
            r = (long)i;
    pthread_mutex_unlock(&s->lk);
    return r;
}

static size_t sub_count(struct sub *s, const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lk);
    for (size_t i = 0; i < s->n; i++)
        n += !strcmp(s->v[i].topic, topic);
    pthread_mutex_unlock(&s->lk);
    return n;
}

/* How many messages so far (the network thread appends under s->lk). */
static size_t sub_n(struct sub *s)
{
    pthread_mutex_lock(&s->lk);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lk);
    return n;
}

static bool sub_subscribed(struct sub *s)
{
    pthread_mutex_lock(&s->lk);
    bool r = s->subscribed;
    pthread_mutex_unlock(&s->lk);
    return r;
}

static char *sub_payload(struct sub *s, long i)
{
    pthread_mutex_lock(&s->lk);
    char *p = i >= 0 && (size_t)i < s->n ? strdup(s->v[i].payload) : NULL;
    pthread_mutex_unlock(&s->lk);
    return p;
}

static bool sub_retained(struct sub *s, long i)
{
    pthread_mutex_lock(&s->lk);
    bool r = i >= 0 && (size_t)i < s->n && s->v[i].retain;
    pthread_mutex_unlock(&s->lk);
    return r;
}

/* Tick the sink (if any) until the message is there or seconds passed. */
static long wait_msg(struct sub *s, void *sink, const char *topic, const char *needle,
                     size_t from, double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        long i = sub_find(s, topic, needle, from);
        if (i >= 0 || now_s() > end)
            return i;
        if (sink)
            sink_mqtt_ops.tick(sink);
        sleep_ms(20);
    }
}

/* ---- the sink's inputs --------------------------------------------------- */

static void cfg_for(struct cfg *c, unsigned port)
{
    char url[64];
    cfg_defaults(c);
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%u", port);
    cfg_set_string(&c->mqtt_broker, url);
    cfg_set_string(&c->mqtt_topic, TOPIC);
    cfg_set_string(&c->mqtt_client_id, "trident-test");
}

static void *create(const struct cfg *c)
{
    void *s = NULL;
    char err[256] = "";
    int rc = sink_mqtt_ops.create(c, &s, err, sizeof err);
    if (rc)
        printf("# create: %d %s\n", rc, err);
    return rc ? NULL : s;
}

static void feed_stats(void *s, const char *state0, const char *state1)
{
    struct sink_stream_stats ss[2] = {
        { .stream = "pump/0", .windows = 10, .state = state0, .state_seq = 3, .state_t = 1000.5,
          .has_severity = true },
        { .stream = "fan+1", .windows = 10, .state = state1, .state_seq = 4, .state_t = 1001.5 },
    };
    struct sink_stats st = {
        .t = 1002, .uptime = 2, .interval = 1, .n_streams = 2, .streams = ss,
        .model = "0123456789ab", .model_kind = "classifier",
    };
    CHECK(sink_mqtt_ops.stats(s, &st, SINK_STATS_LIVE) == 0);
}

static int feed_event(void *s, const char *stream, const char *from, const char *to, uint64_t seq)
{
    struct sink_event e = { .stream = stream, .from = from, .to = to, .seq = seq, .sample = seq * 100,
                            .t = 1000.0 + (double)seq, .at_seq = seq + 3, .agree = 4, .windows = 5,
                            .score = 0.875, .model = "0123456789ab" };
    return sink_mqtt_ops.event(s, &e);
}

static int feed_result(void *s, const char *stream, uint64_t seq)
{
    static const float probs[2] = { 0.25f, 0.75f };
    struct result r = { .stream = stream, .seq = seq, .sample = seq * 100, .t = 1000.0 + (double)seq,
                        .cls = 1, .label = "fault", .state = "fault", .score = 0.75f,
                        .probs = probs, .n_classes = 2, .quality = "ok", .rms = 0.5,
                        .peak = 1, .crest = 2, .kurtosis = 3, .latency_us = 100,
                        .model = "0123456789ab" };
    return sink_mqtt_ops.result(s, &r);
}

static char node[256];

static void compute_node(void)
{
    char hn[256] = "localhost";
    gethostname(hn, sizeof hn - 1);
    hn[strcspn(hn, ".")] = 0;
    for (char *p = hn; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            *p = '_';
    snprintf(node, sizeof node, "%s", hn[0] ? hn : "localhost");
}

/* ---- tests --------------------------------------------------------------- */

TEST(enabled_and_create_errors)
{
    struct cfg c;
    cfg_defaults(&c);
    CHECK(!sink_mqtt_ops.enabled(&c));
    CHECK(sink_mqtt_ops.async);
    CHECK(!strcmp(sink_mqtt_ops.name, "mqtt"));
    cfg_set_string(&c.mqtt_broker, "mqtt://127.0.0.1:1");
    CHECK(sink_mqtt_ops.enabled(&c));
    cfg_set_string(&c.mqtt_username, "u");
    cfg_set_string(&c.mqtt_password_file, "/nonexistent/pw");
    void *s = NULL;
    char err[256] = "";
    int rc = sink_mqtt_ops.create(&c, &s, err, sizeof err);
    CHECKF(rc == -ENOENT, "rc %d", rc);
    CHECKF(strstr(err, "mqtt.password_file: cannot read /nonexistent/pw: No such file") == err,
           "%s", err);
    cfg_set_string(&c.mqtt_password_file, NULL);
    cfg_set_string(&c.mqtt_broker, "http://x");
    err[0] = 0;
    rc = sink_mqtt_ops.create(&c, &s, err, sizeof err);
    CHECKF(rc == -EINVAL && !strncmp(err, "mqtt.broker: ", 13), "%d %s", rc, err);
    cfg_free(&c);
}

/* Discovery, retained state, events, results, online then offline. */
TEST(publishes_and_retains)
{
    unsigned port = free_port();
    pid_t b = broker_start(port, NULL);
    REQUIRE(b > 0);
    struct sub *live = sub_start(port, NULL, NULL);
    REQUIRE(live && sub_subscribed(live));

    struct cfg c;
    cfg_for(&c, port);
    c.mqtt_results = true;
    void *s = create(&c);
    REQUIRE(s);
    CHECK(wait_msg(live, s, TOPIC "/status", "online", 0, 10) >= 0);
    CHECK(feed_result(s, "pump/0", 11) == 0);
    feed_stats(s, "normal", NULL);
    CHECK(feed_event(s, "fan+1", NULL, "fault", 7) == 0);
    struct sink_severity sev = { .stream = "pump/0", .t = 1000, .seconds = 1, .velocity_mm_s = 2.5,
                                 .zone = "B", .band_hz = { 10, 1000 } };
    CHECK(sink_mqtt_ops.severity(s, &sev) == 0);

    long ev = wait_msg(live, s, TOPIC "/fan_1/event", "\"to\":\"fault\"", 0, 10);
    CHECK(ev >= 0);
    char *p = sub_payload(live, ev);
    json_t *j = p ? json_loads(p, 0, NULL) : NULL;
    CHECKF(j && !strcmp(json_string_value(json_object_get(j, "stream")), "fan+1") &&
               json_is_null(json_object_get(j, "from")) &&
               json_integer_value(json_object_get(j, "seq")) == 7 &&
               json_integer_value(json_object_get(j, "at_seq")) == 10,
           "%s", p ? p : "(none)");
    json_decref(j);
    free(p);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/result", "\"seq\":11", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/severity", "\"velocity_mm_s\":2.5", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/fan_1/state", "\"state\":\"fault\"", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/state", "\"state\":\"normal\"", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/stats", NULL, 0, 10) >= 0);

    /* A subscriber that comes later gets what is retained. */
    char dtop[512], dsev[512], dfan[512];
    snprintf(dtop, sizeof dtop, "homeassistant/sensor/%s/pump_0/config", node);
    snprintf(dsev, sizeof dsev, "homeassistant/sensor/%s/pump_0_severity/config", node);
    snprintf(dfan, sizeof dfan, "homeassistant/sensor/%s/fan_1/config", node);
    CHECK(wait_msg(live, s, dfan, NULL, 0, 10) >= 0);
    CHECK(wait_msg(live, s, dsev, NULL, 0, 10) >= 0);
    struct sub *late = sub_start(port, NULL, NULL);
    REQUIRE(late);
    long i = wait_msg(late, s, dtop, NULL, 0, 10);
    CHECK(sub_retained(late, i));
    p = sub_payload(late, i);
    j = p ? json_loads(p, 0, NULL) : NULL;
    CHECKF(j, "%s", p ? p : "(none)");
    if (j) {
        char uid[300];
        snprintf(uid, sizeof uid, "trident_%s_pump_0", node);
        CHECK(!strcmp(json_string_value(json_object_get(j, "state_topic")), TOPIC "/pump/0/state"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "json_attributes_topic")),
                      TOPIC "/pump/0/state"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "availability_topic")), TOPIC "/status"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "unique_id")), uid));
        CHECK(!strcmp(json_string_value(json_object_get(j, "value_template")),
                      "{{ value_json.state }}"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "payload_available")), "online"));
        json_t *d = json_object_get(j, "device");
        CHECK(json_is_array(json_object_get(d, "identifiers")));
        CHECK(!strcmp(json_string_value(json_object_get(d, "manufacturer")), "trident"));
        CHECK(!strcmp(json_string_value(json_object_get(d, "sw_version")), TRIDENT_VERSION));
        CHECK(strstr(json_string_value(json_object_get(d, "model")), "0123456789ab") != NULL);
    }
    json_decref(j);
    free(p);
    i = wait_msg(late, s, dsev, NULL, 0, 10);
    p = sub_payload(late, i);
    CHECKF(p && strstr(p, "\"unit_of_measurement\":\"mm/s\"") &&
               strstr(p, "\"state_class\":\"measurement\""), "%s", p ? p : "(none)");
    free(p);
    i = wait_msg(late, s, TOPIC "/fan_1/state", NULL, 0, 10);
    CHECK(sub_retained(late, i));
    p = sub_payload(late, i);
    CHECKF(p && strstr(p, "\"state\":\"fault\"") && strstr(p, "\"since\":1007.0"), "%s",
           p ? p : "(none)");
    free(p);
    i = wait_msg(late, s, TOPIC "/pump/0/state", NULL, 0, 10);
    p = sub_payload(late, i);
    CHECKF(p && strstr(p, "\"state\":\"normal\"") && strstr(p, "\"label\":\"fault\"") &&
               strstr(p, "\"seq\":3"), "%s", p ? p : "(none)");
    free(p);
    i = wait_msg(late, s, TOPIC "/status", NULL, 0, 10);
    CHECK(sub_retained(late, i));
    p = sub_payload(late, i);
    CHECKF(p && !strcmp(p, "online"), "%s", p ? p : "(none)");
    free(p);
    CHECK(sub_find(late, TOPIC "/fan_1/event", NULL, 0) < 0);   /* events: not retained */
    CHECK(sink_mqtt_ops.lost(s) == 0);

    size_t before = sub_n(live);
    double t0 = now_s();
    sink_mqtt_ops.destroy(s);
    CHECKF(now_s() - t0 < 2.5, "destroy took %.2f s", now_s() - t0);
    CHECK(wait_msg(live, NULL, TOPIC "/status", "offline", before, 10) >= 0);
    sub_stop(late);
    late = sub_start(port, NULL, NULL);
    i = wait_msg(late, NULL, TOPIC "/status", NULL, 0, 5);
    p = sub_payload(late, i);
    CHECKF(p && !strcmp(p, "offline") && sub_retained(late, i), "%s", p ? p : "(none)");
    free(p);
    sub_stop(late);
    sub_stop(live);
    broker_stop(b);
    cfg_free(&c);
}

/* A child that connects and is killed: the broker publishes the will. */
static int will_child(unsigned port)
{
    struct cfg c;
    cfg_for(&c, port);
    void *s = create(&c);
    if (!s)
        return 1;
    double end = now_s() + 3;
    while (now_s() < end) {
        sink_mqtt_ops.tick(s);
        sleep_ms(20);
    }
    raise(SIGKILL);
    return 2;
}

TEST(will_on_kill)
{
    unsigned port = free_port();
    pid_t b = broker_start(port, NULL);
    REQUIRE(b > 0);
    struct sub *live = sub_start(port, NULL, NULL);
    REQUIRE(live);
    pid_t child = fork();
    if (child == 0) {
        char ps[16];
        snprintf(ps, sizeof ps, "%u", port);
        execl(self_path, self_path, "--will-child", ps, (char *)NULL);
        _exit(127);
    }
    long on = wait_msg(live, NULL, TOPIC "/status", "online", 0, 15);
    CHECK(on >= 0);
    int st = 0;
    waitpid(child, &st, 0);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    CHECK(wait_msg(live, NULL, TOPIC "/status", "offline", on < 0 ? 0 : (size_t)on, 10) >= 0);
    sub_stop(live);
    broker_stop(b);
}

/* No broker at start: no error; events wait in the ring (16), the oldest
 * falling off is counted; the broker comes: everything is sent. */
TEST(broker_away_then_restarted)
{
    unsigned port = free_port();
    struct cfg c;
    cfg_for(&c, port);
    c.mqtt_queue = 16;
    c.mqtt_results = true;
    void *s = create(&c);
    REQUIRE(s);
    feed_stats(s, "normal", "idle");
    for (uint64_t k = 0; k < 20; k++)
        CHECK(feed_event(s, "pump/0", k ? "a" : NULL, k % 2 ? "b" : "a", k) == 0);
    CHECK(feed_result(s, "pump/0", 1) == 0);
    double end = now_s() + 1.5;
    while (now_s() < end) {
        sink_mqtt_ops.tick(s);
        sleep_ms(20);
    }
    CHECKF(sink_mqtt_ops.lost(s) == 5, "lost %llu", (unsigned long long)sink_mqtt_ops.lost(s));

    pid_t b = broker_start(port, NULL);
    REQUIRE(b > 0);
    struct sub *live = sub_start(port, NULL, NULL);
    REQUIRE(live);
    CHECK(wait_msg(live, s, TOPIC "/status", "online", 0, 20) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/fan_1/state", "\"state\":\"idle\"", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/event", "\"seq\":19", 0, 10) >= 0);
    sleep_ms(200);
    CHECKF(sub_count(live, TOPIC "/pump/0/event") == 16, "%zu events",
           sub_count(live, TOPIC "/pump/0/event"));
    long first = sub_find(live, TOPIC "/pump/0/event", NULL, 0);
    char *p = sub_payload(live, first);
    CHECKF(p && strstr(p, "\"seq\":4,"), "%s", p ? p : "(none)");
    free(p);
    /* the coalesced state: the last event's */
    CHECK(wait_msg(live, s, TOPIC "/pump/0/state", "\"seq\":19", 0, 10) >= 0);

    /* Restart the broker (no persistence: nothing retained survives). */
    sub_stop(live);
    broker_stop(b);
    for (int k = 0; k < 10; k++) {
        sink_mqtt_ops.tick(s);
        sleep_ms(20);
    }
    CHECK(feed_event(s, "fan+1", "idle", "run", 30) == 0);
    b = broker_start(port, NULL);
    REQUIRE(b > 0);
    live = sub_start(port, NULL, NULL);
    REQUIRE(live);
    CHECK(wait_msg(live, s, TOPIC "/status", "online", 0, 20) >= 0);
    char dtop[512];
    snprintf(dtop, sizeof dtop, "homeassistant/sensor/%s/fan_1/config", node);
    CHECK(wait_msg(live, s, dtop, NULL, 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/fan_1/state", "\"state\":\"run\"", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/state", "\"seq\":19", 0, 10) >= 0);
    CHECK(wait_msg(live, s, TOPIC "/fan_1/event", "\"to\":\"run\"", 0, 10) >= 0);
    sink_mqtt_ops.destroy(s);
    sub_stop(live);
    broker_stop(b);
    cfg_free(&c);
}

/* SIGSTOP: the sink's calls do not wait for the broker; results are
 * dropped and counted; after SIGCONT it goes on. */
TEST(stalled_broker)
{
    unsigned port = free_port();
    pid_t b = broker_start(port, NULL);
    REQUIRE(b > 0);
    struct cfg c;
    cfg_for(&c, port);
    c.mqtt_results = true;
    c.mqtt_queue = 64;
    void *s = create(&c);
    REQUIRE(s);
    struct sub *live = sub_start(port, NULL, NULL);
    REQUIRE(live);
    CHECK(wait_msg(live, s, TOPIC "/status", "online", 0, 10) >= 0);
    feed_stats(s, "normal", "idle");
    CHECK(wait_msg(live, s, TOPIC "/stats", NULL, 0, 10) >= 0);
    kill(b, SIGSTOP);
    double worst = 0, end = now_s() + 6;
    uint64_t seq = 100, calls = 0;
    while (now_s() < end) {
        double t0 = now_s();
        for (int k = 0; k < 20; k++)
            feed_result(s, "pump/0", seq++);
        if (seq % 200 == 0)
            feed_event(s, "pump/0", "a", seq % 400 ? "b" : "a", seq);
        feed_stats(s, "normal", "idle");
        sink_mqtt_ops.tick(s);
        calls += 22;
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        sleep_ms(10);
    }
    uint64_t lost = sink_mqtt_ops.lost(s);
    CHECKF(lost > 0, "lost %llu of %llu", (unsigned long long)lost, (unsigned long long)calls);
    CHECKF(worst < 0.5, "a round of calls took %.3f s", worst);
    printf("# stalled: %llu results fed, %llu lost, slowest round %.1f ms\n",
           (unsigned long long)(seq - 100), (unsigned long long)lost, worst * 1e3);
    kill(b, SIGCONT);
    size_t before = sub_n(live);
    CHECK(feed_event(s, "fan+1", "idle", "after", 9999) == 0);
    CHECK(wait_msg(live, s, TOPIC "/fan_1/event", "\"to\":\"after\"", before, 20) >= 0);
    CHECK(feed_result(s, "pump/0", 999999) == 0);
    CHECK(wait_msg(live, s, TOPIC "/pump/0/result", "\"seq\":999999", before, 20) >= 0);
    sink_mqtt_ops.destroy(s);
    sub_stop(live);
    broker_stop(b);
    cfg_free(&c);
}

/* allow_anonymous false: a wrong password is refused and retried, the
 * right one works. */
TEST(password)
{
    unsigned port = free_port();
    char pwfile[512], good[512], bad[512], cmd[1200], extra[700];
    snprintf(pwfile, sizeof pwfile, "%s/passwd", tmpdir);
    snprintf(cmd, sizeof cmd, "mosquitto_passwd -b -c %s user s3cret >/dev/null 2>&1", pwfile);
    REQUIRE(system(cmd) == 0);
    chmod(pwfile, 0600);
    snprintf(good, sizeof good, "%s/good", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad", tmpdir);
    FILE *f = fopen(good, "w");
    REQUIRE(f);
    fputs("s3cret\nsecond line\n", f);
    fclose(f);
    f = fopen(bad, "w");
    REQUIRE(f);
    fputs("wrong\n", f);
    fclose(f);
    snprintf(extra, sizeof extra, "allow_anonymous false\npassword_file %s", pwfile);
    pid_t b = broker_start(port, extra);
    REQUIRE(b > 0);
    struct sub *live = sub_start(port, "user", "s3cret");
    REQUIRE(live && sub_subscribed(live));

    struct cfg c;
    cfg_for(&c, port);
    cfg_set_string(&c.mqtt_username, "user");
    cfg_set_string(&c.mqtt_password_file, bad);
    cfg_set_string(&c.mqtt_topic, TOPIC "/bad");
    void *s = create(&c);
    REQUIRE(s);
    double end = now_s() + 3.5;     /* tries at 0, 1 and 3 s */
    while (now_s() < end) {
        sink_mqtt_ops.tick(s);
        sleep_ms(20);
    }
    CHECK(sub_find(live, TOPIC "/bad/status", NULL, 0) < 0);
    sink_mqtt_ops.destroy(s);

    cfg_set_string(&c.mqtt_password_file, good);
    cfg_set_string(&c.mqtt_topic, TOPIC "/good");
    s = create(&c);
    REQUIRE(s);
    CHECK(wait_msg(live, s, TOPIC "/good/status", "online", 0, 10) >= 0);
    sink_mqtt_ops.destroy(s);
    CHECK(wait_msg(live, NULL, TOPIC "/good/status", "offline", 0, 10) >= 0);
    sub_stop(live);
    broker_stop(b);
    cfg_free(&c);
}

int main(int argc, char **argv)
{
    mosquitto_lib_init();
    if (argc == 3 && !strcmp(argv[1], "--will-child"))
        return will_child((unsigned)atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n > 0)
        self_path[n] = 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_sink_mqtt.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("not ok - mkdtemp\n");
        return 1;
    }
    compute_node();
    RUN(enabled_and_create_errors);
    RUN(publishes_and_retains);
    RUN(will_on_kill);
    RUN(broker_away_then_restarted);
    RUN(stalled_broker);
    RUN(password);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    mosquitto_lib_cleanup();
    return TEST_END();
}
