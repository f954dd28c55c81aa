/* SPDX-License-Identifier: Apache-2.0 */
/* test_publish.c — the publisher's JSON (parsed back with jansson) and the
 * publisher's set-up errors.  Delivery over real sockets is tested in
 * tests/integration/test_publish.py. */
#include "publish.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <zmq.h>

#include "test.h"

static const float probs4[4] = { 0.0123456789f, 0.9f, 1e-30f, 0.0876543211f };
static const float logits4[4] = { -3.14159274f, 5.5f, -1.0e20f, 3.40282347e38f };

static struct result sample_result(void)
{
    struct result r = {
        .stream = "bearing/0", .seq = 18446744073709551615ull, .sample = 123456789012345ull,
        .t = 1767225600.123456, .cls = 1, .label = "ball", .score = 0.9f,
        .probs = probs4, .logits = logits4, .n_classes = 4, .gap = true,
        .latency_us = 4321, .model = "0123456789ab",
    };
    return r;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        printf("# json error: %s at %d in: %s\n", e.text, e.position, s);
    return j;
}

/* Every docs/DESIGN.md field, in order, with its JSON type, and nothing else. */
TEST(format_fields_and_types)
{
    static const char *const names[] = { "stream", "seq", "sample", "t", "label", "state", "class",
                                         "score", "probs", "logits", "gap", "latency_us", "model" };
    static const json_type types[] = { JSON_STRING, JSON_INTEGER, JSON_INTEGER, JSON_REAL,
                                       JSON_STRING, JSON_NULL, JSON_INTEGER, JSON_REAL, JSON_ARRAY,
                                       JSON_ARRAY, JSON_TRUE, JSON_INTEGER, JSON_STRING };
    struct result r = sample_result();
    char buf[2048];
    r.seq = 7;  /* jansson's integers are signed 64-bit */
    size_t n = publish_format(&r, buf, sizeof buf);
    CHECK(n == strlen(buf));
    CHECK(strchr(buf, '\n') == NULL);
    json_t *j = parse(buf);
    REQUIRE(j && json_is_object(j));
    CHECKF(json_object_size(j) == 13, "%zu fields", json_object_size(j));
    const char *prev = buf;
    for (size_t i = 0; i < 13; i++) {
        json_t *v = json_object_get(j, names[i]);
        CHECKF(v != NULL, "missing %s", names[i]);
        if (!v)
            continue;
        CHECKF(json_typeof(v) == types[i], "%s has type %d", names[i], json_typeof(v));
        char key[32];
        snprintf(key, sizeof key, "\"%s\":", names[i]);
        const char *at = strstr(buf, key);
        CHECKF(at && at >= prev, "%s out of order", names[i]);
        if (at)
            prev = at;
    }
    CHECK(strcmp(json_string_value(json_object_get(j, "stream")), "bearing/0") == 0);
    CHECK(json_integer_value(json_object_get(j, "seq")) == 7);
    CHECK(json_integer_value(json_object_get(j, "sample")) == 123456789012345ll);
    CHECK(strcmp(json_string_value(json_object_get(j, "label")), "ball") == 0);
    CHECK(json_integer_value(json_object_get(j, "class")) == 1);
    CHECK(json_integer_value(json_object_get(j, "latency_us")) == 4321);
    CHECK(strcmp(json_string_value(json_object_get(j, "model")), "0123456789ab") == 0);
    json_decref(j);

    r.gap = false;
    publish_format(&r, buf, sizeof buf);
    j = parse(buf);
    REQUIRE(j);
    CHECK(json_is_false(json_object_get(j, "gap")));
    json_decref(j);
}

/* uint64 beyond int64: written exactly (jansson cannot hold it, so compare text). */
TEST(format_full_range_integers)
{
    struct result r = sample_result();
    char buf[2048];
    publish_format(&r, buf, sizeof buf);
    CHECK(strstr(buf, "\"seq\":18446744073709551615,") != NULL);
    r.latency_us = -5;      /* a clock step must not produce a negative latency */
    publish_format(&r, buf, sizeof buf);
    CHECK(strstr(buf, "\"latency_us\":0,") != NULL);
}

/* Floats read back bit-exactly as float32; t to the microsecond. */
TEST(format_floats_round_trip)
{
    float probs[6], logits[6];
    uint32_t seed = 12345;
    char buf[4096];
    struct result r = sample_result();
    r.probs = probs;
    r.logits = logits;
    r.n_classes = 6;
    r.seq = 1;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 6; i++) {
            /* random bit patterns, skipping NaN/Inf */
            uint32_t u;
            float f;
            do {
                seed = seed * 1664525u + 1013904223u;
                u = seed;
                memcpy(&f, &u, sizeof f);
            } while (!isfinite(f));
            logits[i] = f;
            probs[i] = (float)((seed >> 8) & 0xffff) / 65536.0f;
        }
        probs[5] = FLT_MIN;
        logits[5] = -FLT_MAX;
        r.score = probs[round % 6];
        r.t = 1700000000.0 + round * 0.000001 + round;
        size_t n = publish_format(&r, buf, sizeof buf);
        REQUIRE(n < sizeof buf);
        json_t *j = parse(buf);
        REQUIRE(j);
        json_t *pa = json_object_get(j, "probs"), *la = json_object_get(j, "logits");
        REQUIRE(json_array_size(pa) == 6 && json_array_size(la) == 6);
        for (int i = 0; i < 6; i++) {
            float p = (float)json_number_value(json_array_get(pa, i));
            float l = (float)json_number_value(json_array_get(la, i));
            CHECKF(memcmp(&p, &probs[i], 4) == 0, "probs[%d] %.9g != %.9g", i, p, probs[i]);
            CHECKF(memcmp(&l, &logits[i], 4) == 0, "logits[%d] %.9g != %.9g", i, l, logits[i]);
        }
        float s = (float)json_number_value(json_object_get(j, "score"));
        CHECK(s == r.score);
        double t = json_number_value(json_object_get(j, "t"));
        CHECKF(fabs(t - r.t) < 0.6e-6, "t %.9f vs %.9f", t, r.t);
        json_decref(j);
    }
}

/* NaN and infinities are not JSON: the message stays valid, the value is null. */
TEST(format_non_finite)
{
    float probs[3] = { NAN, 0.5f, 0.5f }, logits[3] = { INFINITY, -INFINITY, 1.0f };
    struct result r = sample_result();
    char buf[1024];
    r.seq = 0;
    r.probs = probs;
    r.logits = logits;
    r.n_classes = 3;
    r.score = NAN;
    r.t = INFINITY;
    publish_format(&r, buf, sizeof buf);
    json_t *j = parse(buf);
    REQUIRE(j);
    CHECK(json_is_null(json_object_get(j, "score")));
    CHECK(json_is_null(json_object_get(j, "t")));
    CHECK(json_is_null(json_array_get(json_object_get(j, "probs"), 0)));
    CHECK(json_is_null(json_array_get(json_object_get(j, "logits"), 0)));
    CHECK(json_is_null(json_array_get(json_object_get(j, "logits"), 1)));
    CHECK(json_is_real(json_array_get(json_object_get(j, "logits"), 2)));
    CHECK(json_real_value(json_array_get(json_object_get(j, "logits"), 2)) == 1.0);
    json_decref(j);
}

/* Integral float values (a saturated softmax gives score 1) stay JSON reals. */
TEST(format_integral_floats_are_reals)
{
    float probs[4] = { 1.0f, 0.0f, -0.0f, 0.0f }, logits[4] = { 100.0f, -2.0f, 1e20f, 16777216.0f };
    struct result r = sample_result();
    char buf[1024];
    r.seq = 0;
    r.probs = probs;
    r.logits = logits;
    r.score = 1.0f;
    r.cls = 0;
    publish_format(&r, buf, sizeof buf);
    json_t *j = parse(buf);
    REQUIRE(j);
    CHECK(json_is_real(json_object_get(j, "score")) && json_real_value(json_object_get(j, "score")) == 1.0);
    for (int i = 0; i < 4; i++) {
        json_t *p = json_array_get(json_object_get(j, "probs"), i);
        json_t *l = json_array_get(json_object_get(j, "logits"), i);
        CHECKF(json_is_real(p) && (float)json_real_value(p) == probs[i], "probs[%d]", i);
        CHECKF(json_is_real(l) && (float)json_real_value(l) == logits[i], "logits[%d]", i);
    }
    CHECK(strstr(buf, "\"probs\":[1.0,0.0,-0.0,0.0]") != NULL);
    json_decref(j);
}

/* Odd stream and label names come back as the same string. */
TEST(format_escapes_strings)
{
    static const char *const names[] = {
        "plain", "quote\"d", "back\\slash", "tab\there", "new\nline", "cr\r\b\f",
        "\x01\x1f\x7f", "ünïcødé/0", "日本語", "emoji \xf0\x9f\x98\x80", "/", "",
        "a\"b\\c\"\\", "</script>",
    };
    char buf[1024];
    struct result r = sample_result();
    r.seq = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        r.stream = names[i];
        r.label = names[(i + 3) % (sizeof names / sizeof *names)];
        publish_format(&r, buf, sizeof buf);
        CHECKF(strchr(buf, '\n') == NULL && strchr(buf, '\r') == NULL, "raw newline for %zu", i);
        json_t *j = parse(buf);
        CHECKF(j != NULL, "name %zu", i);
        if (!j)
            continue;
        CHECKF(strcmp(json_string_value(json_object_get(j, "stream")), r.stream) == 0, "stream %zu", i);
        CHECKF(strcmp(json_string_value(json_object_get(j, "label")), r.label) == 0, "label %zu", i);
        json_decref(j);
    }
}

/* Bytes that are not UTF-8 would make the whole message unparseable:
 * they become U+FFFD, the valid parts stay. */
TEST(format_invalid_utf8)
{
    static const struct { const char *in, *out; } cases[] = {
        { "a\xff" "b", "a\xef\xbf\xbd" "b" },
        { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },             /* overlong '/' */
        { "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
        { "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd" },            /* truncated */
        { "\xe2\x82\xac", "\xe2\x82\xac" },                      /* valid euro sign */
    };
    char buf[1024];
    struct result r = sample_result();
    r.seq = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        r.stream = cases[i].in;
        publish_format(&r, buf, sizeof buf);
        json_t *j = parse(buf);
        CHECKF(j != NULL, "case %zu", i);
        if (!j)
            continue;
        const char *s = json_string_value(json_object_get(j, "stream"));
        CHECKF(s && strcmp(s, cases[i].out) == 0, "case %zu", i);
        json_decref(j);
    }
}

/* Like snprintf: the needed length, a NUL-terminated prefix, nothing past len. */
TEST(format_buffer_too_small)
{
    struct result r = sample_result();
    char full[2048], small[300];
    size_t n = publish_format(&r, full, sizeof full);
    REQUIRE(n > 0 && n < sizeof full);
    CHECK(publish_format(&r, NULL, 0) == n);
    for (size_t len = 1; len <= n + 1; len += (len < 40 || len > n - 40) ? 1 : 7) {
        if (len + 1 > sizeof small)
            break;
        memset(small, '#', sizeof small);
        size_t m = publish_format(&r, small, len);
        CHECKF(m == n, "len %zu: %zu", len, m);
        size_t want = len - 1 < n ? len - 1 : n;
        CHECKF(strlen(small) == want, "len %zu: strlen %zu", len, strlen(small));
        CHECKF(memcmp(small, full, want) == 0, "len %zu: prefix differs", len);
        CHECKF(small[len] == '#', "len %zu: wrote past the end", len);
    }
    memset(full, '#', sizeof full);
    CHECK(publish_format(&r, full, n + 1) == n && full[n] == '\0' && full[n + 1] == '#');
}

/* NULL strings and arrays do not crash and still give valid JSON. */
TEST(format_null_members)
{
    struct result r = { 0 };
    char buf[512];
    r.n_classes = 3;
    publish_format(&r, buf, sizeof buf);
    json_t *j = parse(buf);
    REQUIRE(j);
    CHECK(strcmp(json_string_value(json_object_get(j, "stream")), "") == 0);
    CHECK(json_array_size(json_object_get(j, "probs")) == 0);
    json_decref(j);
}

/* The writer the "_stats" object is built with: the same escaping and U+FFFD
 * as publish_format, snprintf-like counting, always NUL-terminated. */
TEST(json_writer_for_other_messages)
{
    char buf[256], small[24];
    size_t pos = 0;

    publish_json_printf(buf, sizeof buf, &pos, "{\"n\":%d,\"stream\":", 7);
    publish_json_string(buf, sizeof buf, &pos, "caf\xe9\"\\\n\xe2\x82\xac");
    publish_json_printf(buf, sizeof buf, &pos, "}");
    REQUIRE(pos < sizeof buf);
    CHECKF(strlen(buf) == pos, "%zu vs %zu", strlen(buf), pos);
    json_t *j = parse(buf);
    REQUIRE(j);
    const char *s = json_string_value(json_object_get(j, "stream"));
    CHECKF(s && strcmp(s, "caf\xef\xbf\xbd\"\\\n\xe2\x82\xac") == 0, "%s", buf);
    CHECK(json_integer_value(json_object_get(j, "n")) == 7);
    json_decref(j);

    /* Too small: counts on, stores a terminated prefix, nothing past len. */
    size_t need = pos, p2 = 0;
    memset(small, '#', sizeof small);
    publish_json_printf(small, 10, &p2, "{\"n\":%d,\"stream\":", 7);
    publish_json_string(small, 10, &p2, "caf\xe9\"\\\n\xe2\x82\xac");
    publish_json_printf(small, 10, &p2, "}");
    CHECKF(p2 == need, "%zu vs %zu", p2, need);
    CHECK(strlen(small) == 9 && memcmp(small, buf, 9) == 0 && small[10] == '#');
    p2 = 0;
    publish_json_string(NULL, 0, &p2, NULL);
    CHECK(p2 == 2);
}

TEST(create_stdout_only_has_no_socket)
{
    struct publish_opts o = { .n_endpoints = 0, .hwm = 10, .to_stdout = false };
    publisher *p = NULL;
    char err[256];
    REQUIRE(publish_create(&o, &p, err, sizeof err) == 0 && p);
    CHECK(publish_endpoint(p, 0) == NULL);
    CHECK(publish_subscribers(p) == 0);
    CHECK(publish_wait_subscribers(p, 0, NULL) == 0);
    CHECK(publish_wait_subscribers(p, 1, NULL) == -ENOTCONN);
    struct result r = sample_result();
    CHECK(publish_result(p, &r) == 0);  /* nowhere to go, not an error */
    CHECK(publish_raw(p, "_stats", "{}") == 0);
    publish_destroy(p);
}

TEST(create_bad_endpoints_are_named)
{
    static char *const bad[] = { "nonsense", "tcp://", "foo://127.0.0.1:1", "ipc:///nonexistent-trident-dir/pub.sock" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct publish_opts o = { .endpoints = &bad[i], .n_endpoints = 1, .hwm = 10 };
        publisher *p = (publisher *)&o;
        char err[256];
        int rc = publish_create(&o, &p, err, sizeof err);
        CHECKF(rc < 0, "%s: rc %d", bad[i], rc);
        CHECK(p == NULL);
        CHECKF(strstr(err, bad[i]) != NULL && !strchr(err, '\n'), "message: %s", err);
        if (rc == 0)
            publish_destroy(p);
    }
}

/* Two publishers on one port: the second names the endpoint and says why. */
TEST(create_address_in_use)
{
    char *any[] = { "tcp://127.0.0.1:*" };
    struct publish_opts o = { .endpoints = any, .n_endpoints = 1, .hwm = 10 };
    publisher *a = NULL, *b = NULL;
    char err[256];
    REQUIRE(publish_create(&o, &a, err, sizeof err) == 0);
    const char *ep = publish_endpoint(a, 0);
    REQUIRE(ep && strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && strcmp(ep, any[0]) != 0);
    CHECK(publish_endpoint(a, 1) == NULL);
    char *same[] = { (char *)ep };
    o.endpoints = same;
    int rc = publish_create(&o, &b, err, sizeof err);
    CHECKF(rc == -EADDRINUSE, "rc %d", rc);
    CHECKF(strstr(err, ep) && strstr(err, zmq_strerror(EADDRINUSE)), "message: %s", err);
    publish_destroy(b);
    publish_destroy(a);
}

/* Nobody subscribed: sending drops nothing we were asked to keep and never blocks;
 * the stop flag ends a wait for subscribers. */
TEST(wait_subscribers_stops)
{
    char *any[] = { "tcp://127.0.0.1:*", "ipc://@trident-test-publish" };
    struct publish_opts o = { .endpoints = any, .n_endpoints = 2, .hwm = 1 };
    publisher *p = NULL;
    char err[256];
    volatile sig_atomic_t stop = 1;
    REQUIRE(publish_create(&o, &p, err, sizeof err) == 0);
    CHECK(strcmp(publish_endpoint(p, 1), "ipc://@trident-test-publish") == 0);
    CHECK(publish_wait_subscribers(p, 1, &stop) == -EINTR);
    struct result r = sample_result();
    for (int i = 0; i < 100; i++)
        CHECK(publish_result(p, &r) == 0);
    CHECK(publish_subscribers(p) == 0);
    publish_destroy(p);
}

/* A SUB in this process: its own context, a bounded receive timeout. */
static void *sub_open(void *ctx, const char *ep, int rcvhwm)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int timeout = 10000, zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (zmq_connect(s, ep) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* The count follows subscribe, unsubscribe and disconnect; messages reach a
 * subscriber as two frames, the topic and the formatted JSON. */
TEST(subscriptions_are_counted)
{
    char *any[] = { "tcp://127.0.0.1:*" };
    struct publish_opts o = { .endpoints = any, .n_endpoints = 1, .hwm = 100 };
    publisher *p = NULL;
    char err[256], want[2048], got[2048];
    REQUIRE(publish_create(&o, &p, err, sizeof err) == 0);
    void *ctx = zmq_ctx_new();
    void *s = sub_open(ctx, publish_endpoint(p, 0), 1000);
    REQUIRE(s);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "bear", 4);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "_stats", 6);
    CHECK(publish_wait_subscribers(p, 2, NULL) == 0);
    CHECK(publish_subscribers(p) == 2);

    struct result r = sample_result();
    r.seq = 3;
    size_t n = publish_format(&r, want, sizeof want);
    CHECK(publish_result(p, &r) == 0);
    int k = zmq_recv(s, got, sizeof got, 0);
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    CHECKF(k == 9 && memcmp(got, "bearing/0", 9) == 0 && more, "topic frame %d", k);
    k = zmq_recv(s, got, sizeof got, 0);
    CHECKF(k == (int)n && memcmp(got, want, n) == 0, "json frame %d", k);
    CHECK(publish_raw(p, "_stats", "{\"x\":1}") == 0);
    k = zmq_recv(s, got, sizeof got, 0);
    CHECK(k == 6 && memcmp(got, "_stats", 6) == 0);
    k = zmq_recv(s, got, sizeof got, 0);
    CHECK(k == 7 && memcmp(got, "{\"x\":1}", 7) == 0);

    zmq_setsockopt(s, ZMQ_UNSUBSCRIBE, "_stats", 6);
    /* Bounded wait for the unsubscription to travel (not a timing check). */
    for (int i = 0; i < 500 && publish_subscribers(p) != 1; i++) {
        publish_raw(p, "nobody", "{}");
        zmq_poll(NULL, 0, 10);
    }
    CHECKF(publish_subscribers(p) == 1, "%u", publish_subscribers(p));
    zmq_close(s);
    for (int i = 0; i < 500 && publish_subscribers(p) != 0; i++) {
        publish_raw(p, "nobody", "{}");
        zmq_poll(NULL, 0, 10);
    }
    CHECKF(publish_subscribers(p) == 0, "%u after disconnect", publish_subscribers(p));
    zmq_ctx_term(ctx);
    publish_destroy(p);
}

/* A subscriber that reads nothing blocks the publisher (NODROP) instead of
 * losing messages; the abort flag ends the wait with -ECANCELED, and every
 * later send fails at once.  The subscriber then finds every message it was
 * sent, in order. */
TEST(back_pressure_and_abort)
{
    char *any[] = { "ipc://@trident-test-publish-bp" };
    struct publish_opts o = { .endpoints = any, .n_endpoints = 1, .hwm = 4, .nodrop = true };
    publisher *p = NULL;
    char err[256], got[2048];
    volatile sig_atomic_t abort_now = 1;
    REQUIRE(publish_create(&o, &p, err, sizeof err) == 0);
    void *ctx = zmq_ctx_new();
    void *s = sub_open(ctx, any[0], 4);
    REQUIRE(s);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    REQUIRE(publish_wait_subscribers(p, 1, NULL) == 0);
    publish_set_abort(p, &abort_now);

    struct result r = sample_result();
    int rc = 0;
    unsigned sent = 0;
    /* Kernel socket buffers take some thousand messages before the wait. */
    for (r.seq = 0; r.seq < 2000000 && rc == 0; r.seq++) {
        rc = publish_result(p, &r);
        if (rc == 0)
            sent++;
    }
    CHECKF(rc == -ECANCELED, "rc %d after %u messages", rc, sent);
    CHECK(sent > 0 && sent < 2000000);
    CHECK(publish_result(p, &r) == -ECANCELED);
    CHECK(publish_raw(p, "_stats", "{}") == -ECANCELED);

    /* Everything accepted before the abort arrives, in order. */
    int zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &zero, sizeof zero);
    unsigned seen = 0;
    bool in_order = true;
    int timeout = 10000;
    for (;;) {
        zmq_pollitem_t it = { .socket = s, .events = ZMQ_POLLIN };
        if (seen == sent || zmq_poll(&it, 1, timeout) <= 0)
            break;
        if (zmq_recv(s, got, sizeof got, 0) < 0)
            break;
        int k = zmq_recv(s, got, sizeof got - 1, 0);
        if (k < 0)
            break;
        got[k] = '\0';
        json_t *j = json_loads(got, 0, NULL);
        if (!j || json_integer_value(json_object_get(j, "seq")) != seen)
            in_order = false;
        json_decref(j);
        seen++;
    }
    CHECKF(seen == sent && in_order, "received %u of %u, in order %d", seen, sent, in_order);
    zmq_close(s);
    zmq_ctx_term(ctx);
    publish_destroy(p);
}

/* Without nodrop (the service), a subscriber that reads nothing never
 * holds the publisher: every send succeeds at once (with nodrop the abort
 * flag, set from the start, would cancel the first one that had to wait),
 * the subscriber loses what did not fit, and what it gets is in order. */
TEST(drop_at_hwm_never_waits)
{
    char *any[] = { "ipc://@trident-test-publish-drop" };
    struct publish_opts o = { .endpoints = any, .n_endpoints = 1, .hwm = 4, .nodrop = false };
    publisher *p = NULL;
    char err[256], got[2048];
    volatile sig_atomic_t abort_now = 1;
    REQUIRE(publish_create(&o, &p, err, sizeof err) == 0);
    void *ctx = zmq_ctx_new();
    void *s = sub_open(ctx, any[0], 4);
    REQUIRE(s);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    REQUIRE(publish_wait_subscribers(p, 1, NULL) == 0);
    publish_set_abort(p, &abort_now);

    struct result r = sample_result();
    int rc = 0;
    const unsigned n = 50000;       /* far more than hwm + kernel buffers hold */
    for (r.seq = 0; r.seq < n && rc == 0; r.seq++)
        rc = publish_result(p, &r);
    CHECKF(rc == 0 && r.seq == n, "rc %d at message %llu", rc, (unsigned long long)r.seq);

    unsigned seen = 0;
    long long last = -1;
    bool in_order = true;
    for (;;) {
        zmq_pollitem_t it = { .socket = s, .events = ZMQ_POLLIN };
        if (zmq_poll(&it, 1, 1000) <= 0 || zmq_recv(s, got, sizeof got, 0) < 0)
            break;
        int k = zmq_recv(s, got, sizeof got - 1, 0);
        if (k < 0)
            break;
        got[k] = '\0';
        json_t *j = json_loads(got, 0, NULL);
        long long q = j ? json_integer_value(json_object_get(j, "seq")) : -1;
        in_order = in_order && q > last;
        last = q;
        json_decref(j);
        seen++;
    }
    CHECKF(seen > 0 && seen < n && in_order, "received %u of %u, in order %d", seen, n, in_order);
    zmq_close(s);
    zmq_ctx_term(ctx);
    publish_destroy(p);
}

TEST(ipv6_literal_binds)
{
    char *v6[] = { "tcp://[::1]:*", "tcp://127.0.0.1:*" };
    struct publish_opts o = { .endpoints = v6, .n_endpoints = 2, .hwm = 10 };
    publisher *p = NULL;
    char err[256];
    int rc = publish_create(&o, &p, err, sizeof err);
    if (rc == -EADDRNOTAVAIL || rc == -ENODEV || rc == -EAFNOSUPPORT) {
        printf("# no IPv6 loopback here: %s\n", err);
        return;
    }
    REQUIRE(rc == 0);
    CHECKF(strncmp(publish_endpoint(p, 0), "tcp://[::1]:", 12) == 0, "%s", publish_endpoint(p, 0));
    CHECKF(strncmp(publish_endpoint(p, 1), "tcp://127.0.0.1:", 16) == 0, "%s", publish_endpoint(p, 1));
    publish_destroy(p);
}

int main(void)
{
    RUN(format_fields_and_types);
    RUN(format_full_range_integers);
    RUN(format_floats_round_trip);
    RUN(format_non_finite);
    RUN(format_integral_floats_are_reals);
    RUN(format_escapes_strings);
    RUN(format_invalid_utf8);
    RUN(format_buffer_too_small);
    RUN(format_null_members);
    RUN(json_writer_for_other_messages);
    RUN(create_stdout_only_has_no_socket);
    RUN(create_bad_endpoints_are_named);
    RUN(create_address_in_use);
    RUN(wait_subscribers_stops);
    RUN(subscriptions_are_counted);
    RUN(back_pressure_and_abort);
    RUN(drop_at_hwm_never_waits);
    RUN(ipv6_literal_binds);
    return TEST_END();
}
