/* SPDX-License-Identifier: Apache-2.0 */
/* test_net.c — unit tests of model/: SHA-256, softmax, arg-max, and a model
 * file written here, loaded back and run through a forward pass whose result
 * is known by hand.  PyTorch parity is tests/integration/test_parity.py; the
 * loader's refusals are tests/integration/test_loader.py. */
#include "net_internal.h"
#include "sha256.h"
#include "test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

static int hex_is(const void *data, size_t n, const char *want)
{
    unsigned char d[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    sha256(data, n, d);
    sha256_hex(d, hex);
    if (strcmp(hex, want) != 0)
        printf("# sha256 of %zu bytes: %s, want %s\n", n, hex, want);
    return strcmp(hex, want) == 0;
}

TEST(sha256_vectors)
{
    /* FIPS 180-2 examples, and lengths around the padding boundary */
    CHECK(hex_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(hex_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(hex_is(two, strlen(two),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    char a[64];
    memset(a, 'a', sizeof a);
    CHECK(hex_is(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"));
    CHECK(hex_is(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"));
    CHECK(hex_is(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"));
}

TEST(sha256_streaming)
{
    /* a million 'a' in uneven pieces */
    static char buf[1000];
    memset(buf, 'a', sizeof buf);
    sha256_ctx c;
    sha256_init(&c);
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t n = piece < left ? piece : left;
        sha256_update(&c, buf, n);
        left -= n;
        piece = piece * 7 % 997 + 1;
    }
    unsigned char d[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    sha256_final(&c, d);
    sha256_hex(d, hex);
    CHECKF(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
           "%s", hex);
}

TEST(softmax_argmax)
{
    float l[4] = { 1.0f, 3.0f, 3.0f, -2.0f }, p[4];
    net_softmax(l, 4, p);
    double sum = 0, z = exp(1) + 2 * exp(3) + exp(-2);
    for (int i = 0; i < 4; i++) {
        sum += p[i];
        CHECKF(fabs(p[i] - exp(l[i]) / z) < 1e-6, "p[%d]=%g", i, p[i]);
    }
    CHECK(fabs(sum - 1) < 1e-6);
    CHECK(net_argmax(l, 4) == 1);               /* the first of two maxima */

    float big[3] = { 1000.0f, 999.0f, -1000.0f };
    net_softmax(big, 3, p);
    CHECKF(isfinite(p[0]) && fabs(p[0] - 1 / (1 + exp(-1))) < 1e-6, "p0=%g", p[0]);
    CHECK(p[2] == 0.0f);
    CHECK(net_argmax(big, 3) == 0);

    float nan1[3] = { NAN, -5.0f, 2.0f };
    CHECK(net_argmax(nan1, 3) == 2);
    float one = 7.0f;
    net_softmax(&one, 1, p);
    CHECK(p[0] == 1.0f);
    CHECK(net_argmax(&one, 1) == 0);
}

/* ---- a model file written here ------------------------------------------ */

struct tensor {
    char name[24];
    int rank, dims[3];
    float *data;
    size_t n;
};

static struct tensor T[2 + 18 + 2];
static int nT;

static float *add(const char *name, int rank, int d0, int d1, int d2)
{
    struct tensor *t = &T[nT++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2;
    t->n = (size_t)d0 * (rank > 1 ? d1 : 1) * (rank > 2 ? d2 : 1);
    t->data = calloc(t->n, sizeof(float));
    return t->data;
}

static void free_tensors(void)
{
    for (int i = 0; i < nT; i++)
        free(T[i].data);
    nT = 0;
}

/* Net's tensors, all zero, fc with `classes` rows. */
static void zero_net(int classes)
{
    static const int cin[3] = { 64, 64, 128 }, cout[3] = { 64, 128, 256 };
    char n[24];
    add("conv1.weight", 3, 64, 1, 32);
    add("conv1.bias", 1, 64, 0, 0);
    for (int k = 3; k <= 7; k += 2)
        for (int l = 0; l < 3; l++) {
            snprintf(n, sizeof n, "conv%d_%d.weight", k, l + 1);
            add(n, 3, cout[l], cin[l], k);
            snprintf(n, sizeof n, "conv%d_%d.bias", k, l + 1);
            add(n, 1, cout[l], 0, 0);
        }
    add("fc.weight", 2, classes, NET_FEATURES, 0);
    add("fc.bias", 1, classes, 0, 0);
}

static float *find(const char *name)
{
    for (int i = 0; i < nT; i++)
        if (strcmp(T[i].name, name) == 0)
            return T[i].data;
    return NULL;
}

/* Write T[] as safetensors (F32) with optional metadata JSON; returns a path. */
static char *write_model(const char *metadata)
{
    static char path[256];
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/test_net_XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    size_t cap = 8192, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{");
    if (metadata)
        len += (size_t)snprintf(h + len, cap - len, "\"__metadata__\":%s,", metadata);
    for (int i = 0; i < nT; i++) {
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                                i ? "," : "", T[i].name);
        for (int d = 0; d < T[i].rank; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%d", d ? "," : "", T[i].dims[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + T[i].n * 4);
        off += T[i].n * 4;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8)
        h[len++] = ' ';
    unsigned char n8[8];
    for (int i = 0; i < 8; i++)
        n8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    FILE *f = fdopen(fd, "wb");
    fwrite(n8, 1, 8, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < nT; i++)
        fwrite(T[i].data, sizeof(float), T[i].n, f);   /* the host is little-endian */
    fclose(f);
    free(h);
    return path;
}

TEST(hand_computed_model)
{
    /* Every conv weight zero: each branch's features are its conv{k}_3 bias,
     * so the logits are sums we can write down. */
    zero_net(3);
    for (int k = 3; k <= 7; k += 2) {
        char n[24];
        snprintf(n, sizeof n, "conv%d_3.bias", k);
        float *b = find(n);
        for (int c = 0; c < 256; c++)
            b[c] = (float)k + (float)c / 256.0f;
    }
    float *fw = find("fc.weight"), *fb = find("fc.bias");
    for (int i = 0; i < NET_FEATURES; i++)
        fw[i] = 1.0f;                           /* class 0: sum of all features */
    fw[NET_FEATURES + 300] = 2.0f;              /* class 1: 2 x feature 300 (k=5, c=44) */
    fw[2 * NET_FEATURES + 767] = -1.0f;         /* class 2: -feature 767 (k=7, c=255) */
    fb[0] = 0.5f, fb[1] = -1.0f, fb[2] = 0.25f;
    char *path = write_model("{\"trident.classes\":\"sum,f300,f767\","
                             "\"trident.sample_rate\":\"12000\",\"trident.normalize\":\"zscore\","
                             "\"note\":\"ignored\"}");
    REQUIRE(path);

    char err[256];
    net_model *m = NULL;
    int rc = net_load(path, &m, err, sizeof err);
    CHECKF(rc == 0, "%d %s", rc, err);
    if (m) {
        CHECK(net_classes(m) == 3);
        CHECK(strcmp(net_class_name(m, 1), "f300") == 0);
        CHECK(net_class_name(m, 3) == NULL);
        CHECK(net_sample_rate(m) == 12000.0);
        CHECK(net_normalize(m) == NORM_ZSCORE);
        CHECK(strcmp(net_path(m), path) == 0);
        CHECK(strlen(net_digest(m)) == 12);

        net_scratch *s = net_scratch_create(m);
        REQUIRE(s);
        float x[NET_WIN], y[3], z[3];
        for (int i = 0; i < NET_WIN; i++)
            x[i] = sinf((float)i * 0.1f) * 100.0f;
        double sum = 0;
        for (int k = 3; k <= 7; k += 2)
            for (int c = 0; c < 256; c++)
                sum += (double)k + c / 256.0;
        net_forward_ref(m, s, x, y);
        CHECKF(fabs(y[0] - (sum + 0.5)) < 1e-3, "%g vs %g", y[0], sum + 0.5);
        CHECKF(fabs(y[1] - (2 * (5 + 44 / 256.0) - 1)) < 1e-5, "%g", y[1]);
        CHECKF(fabs(y[2] - (-(7 + 255 / 256.0) + 0.25)) < 1e-5, "%g", y[2]);
        net_forward(m, s, x, z);
        for (int i = 0; i < 3; i++)
            CHECKF(fabs(y[i] - z[i]) <= 1e-4 * fabs(y[0]), "%d: %g vs %g", i, y[i], z[i]);
        net_scratch_destroy(s);
        net_destroy(m);
    }
    unlink(path);
    free_tensors();
}

TEST(conv1_pool_path)
{
    /* conv1 channel 0 reads only tap 12, i.e. x[8t]; every other weight zero
     * but fc's link from branch k=3's channel 0, whose conv chain passes the
     * centre tap of channel 0 along: logit = max over the window of x[16u],
     * x[16u + 8] sampled by the pools = max of x[8t] for t in 0..127. */
    zero_net(1);
    find("conv1.weight")[12] = 1.0f;
    find("conv3_1.weight")[1] = 1.0f;           /* [0][0][1]: centre tap */
    find("conv3_2.weight")[1] = 1.0f;
    find("conv3_3.weight")[1] = 1.0f;
    find("fc.weight")[0] = 1.0f;
    char *path = write_model(NULL);
    REQUIRE(path);
    char err[256];
    net_model *m = NULL;
    int rc = net_load(path, &m, err, sizeof err);
    CHECKF(rc == 0, "%d %s", rc, err);
    if (m) {
        CHECK(strcmp(net_class_name(m, 0), "0") == 0);   /* default names */
        CHECK(net_sample_rate(m) == 0 && net_normalize(m) == NORM_NONE);
        net_scratch *s = net_scratch_create(m);
        REQUIRE(s);
        float x[NET_WIN], y;
        static const int where[] = { 0, 100, 520, 1016 };   /* 100: not read by conv1 */
        for (size_t wi = 0; wi < sizeof where / sizeof where[0]; wi++) {
            int pos = where[wi];
            for (int i = 0; i < NET_WIN; i++)
                x[i] = -1.0f - (float)(i % 13);
            x[pos] = 50.0f;             /* seen only if pos is a multiple of 8 */
            net_forward_ref(m, s, x, &y);
            float want = -1e30f;
            for (int t = 0; t < 128; t++)
                if (x[8 * t] > want)
                    want = x[8 * t];
            CHECKF(y == want, "pos %d: %g vs %g", pos, y, want);
        }
        net_scratch_destroy(s);
        net_destroy(m);
    }
    unlink(path);
    free_tensors();
}

/* Workers share one model, each with its own scratch: two threads running
 * at once must give exactly the single-threaded logits (and TSan, which runs
 * this test too, must see no race). */
struct worker {
    const net_model *m;
    const float *x;             /* 2 windows */
    float y[2][4];
    int ok;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    net_scratch *s = net_scratch_create(w->m);
    if (!s)
        return NULL;
    for (int i = 0; i < 2; i++)
        net_forward(w->m, s, w->x + i * NET_WIN, w->y[i]);
    net_scratch_destroy(s);
    w->ok = 1;
    return NULL;
}

TEST(shared_model_threads)
{
    zero_net(4);
    uint32_t r = 12345;
    for (int i = 0; i < nT; i++)
        for (size_t j = 0; j < T[i].n; j++) {
            r = r * 1664525u + 1013904223u;
            T[i].data[j] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
    char *path = write_model(NULL);
    REQUIRE(path);
    char err[256];
    net_model *m = NULL;
    int rc = net_load(path, &m, err, sizeof err);
    unlink(path);
    free_tensors();
    CHECKF(rc == 0, "%s", err);
    if (!m)
        return;
    static float x[2 * NET_WIN];
    for (int i = 0; i < 2 * NET_WIN; i++)
        x[i] = sinf((float)i * 0.05f) + 0.1f * (float)(i % 7);
    struct worker single = { m, x, { { 0 } }, 0 }, w[2] = { { m, x, { { 0 } }, 0 },
                                                            { m, x, { { 0 } }, 0 } };
    work(&single);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(single.ok && w[0].ok && w[1].ok);
    CHECK(memcmp(single.y, w[0].y, sizeof single.y) == 0);
    CHECK(memcmp(single.y, w[1].y, sizeof single.y) == 0);
    CHECK(single.y[0][0] != single.y[1][0]);    /* the two windows differ */
    net_destroy(m);
}

TEST(load_errors)
{
    char err[256];
    net_model *m = (net_model *)1;
    int rc = net_load("/nonexistent/model.safetensors", &m, err, sizeof err);
    CHECK(rc == -ENOENT && m == NULL);
    CHECKF(strncmp(err, "/nonexistent/model.safetensors: ", 32) == 0, "%s", err);

    zero_net(4);
    char *path = write_model("{\"trident.classes\":\"a,b,c\"}");
    REQUIRE(path);
    rc = net_load(path, &m, err, sizeof err);
    CHECK(rc == -EINVAL && m == NULL);
    CHECKF(strstr(err, "trident.classes") && strstr(err, "3") && strstr(err, "4") &&
           !strchr(err, '\n'), "%s", err);
    /* a message longer than the buffer is cut, still terminated */
    char small[16];
    rc = net_load(path, &m, small, sizeof small);
    CHECK(rc == -EINVAL && strlen(small) == sizeof small - 1);
    unlink(path);
    free_tensors();
}

int main(void)
{
    RUN(sha256_vectors);
    RUN(sha256_streaming);
    RUN(softmax_argmax);
    RUN(hand_computed_model);
    RUN(conv1_pool_path);
    RUN(shared_model_threads);
    RUN(load_errors);
    return TEST_END();
}
