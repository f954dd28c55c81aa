/* SPDX-License-Identifier: Apache-2.0 */
/* load.c — net_load(): the safetensors model file, validated before use.
 *
 * DESIGN: the file (model/FORMAT.md) is read whole into memory with read()
 * (not mapped: a file shrunk by an in-place rewrite during a SIGHUP reload
 * would be SIGBUS; fstat before and after the read refuses a file that
 * changed meanwhile) and nothing in it is trusted.  Checks run in the order a reader needs them:
 *
 *   1. the 8-byte header length: file long enough, length sane (<= 100 MiB)
 *      and inside the file;
 *   2. the JSON header, parsed by jansson with JSON_REJECT_DUPLICATES (the
 *      reason jansson was chosen: json-c and cJSON silently keep one of two
 *      tensors with the same name), must be an object;
 *   3. every tensor entry on its own: a known dtype, a shape of non-negative
 *      integers, data_offsets [begin, end] with begin <= end <= data size and
 *      end - begin == product(shape) * dtype size, all overflow-checked;
 *   4. all entries together: no two tensors' bytes overlap;
 *   5. the names: exactly Net's state_dict (BN.* accepted and ignored), each
 *      used tensor with its exact shape and a float dtype, the class count
 *      from fc.weight;
 *   6. __metadata__: strings only; trident.classes, trident.sample_rate and
 *      trident.normalize checked; other keys ignored.
 *
 * Only then are the used tensors copied (F16/BF16 widened, non-finite values
 * refused) into one 64-byte-aligned arena, the bytes read hashed for
 * net_digest() and freed.  net_load_buffer() runs the same checks on bytes in memory
 * (the fuzz target, an embedded model).  Every failure is one line "PATH: what (where)" in err and a
 * negative errno: the open's errno, -ENOMEM, -EAGAIN for a file that
 * changed while being read, -ENODEV for a FIFO or device, or -EINVAL for bad
 * content.
 */
#include "net_internal.h"
#include "sha256.h"
#include "winfeat.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX (100u << 20)     /* a real header is a few KiB */
#define TENSOR_ALIGN 16             /* floats: 64 bytes */
#define RATE_MIN 1                  /* trident.sample_rate bounds, Hz: see FORMAT.md */
#define RATE_MAX 10000000

/* safetensors dtypes and their sizes; only the float ones can be weights */
static const struct dtype {
    const char *name;
    unsigned size;
    int is_float;               /* usable as a weight (widened to float) */
} dtypes[] = {
    { "F32", 4, 1 }, { "F16", 2, 1 }, { "BF16", 2, 1 },
    { "F64", 8, 0 }, { "I64", 8, 0 }, { "U64", 8, 0 }, { "I32", 4, 0 },
    { "U32", 4, 0 }, { "I16", 2, 0 }, { "U16", 2, 0 }, { "I8", 1, 0 },
    { "U8", 1, 0 }, { "BOOL", 1, 0 }, { "F8_E4M3", 1, 0 }, { "F8_E5M2", 1, 0 },
};

/* One tensor entry of the header, validated in step 3. */
struct entry {
    const char *name;           /* owned by the JSON tree */
    const struct dtype *dt;
    uint64_t begin, end;        /* in the data area */
    uint64_t count;             /* elements */
    int rank;
    int64_t dims[3];            /* first dimensions (used tensors have rank <= 3) */
};

/* The tensors trident uses, in arena order. */
struct want {
    char name[24];
    int rank;
    int dims[3];                /* dims[0] of fc.* is the class count, filled in later */
    const struct entry *e;
    float *dst;
};

enum { W_CONV1_W, W_CONV1_B, W_BRANCH, W_FC_W = W_BRANCH + NET_BRANCHES * 3 * 2, W_FC_B, W_N };

struct loader {
    const char *path;
    char *err;
    size_t errlen;
};

static int fail(struct loader *L, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *L, int rc, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        int n = snprintf(L->err, L->errlen, "%s: ", L->path);
        if (n >= 0 && (size_t)n < L->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
        /* the message is one line whatever the file contains */
        for (char *p = L->err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    return rc;
}

static const struct dtype *dtype_find(const char *s)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, s) == 0)
            return &dtypes[i];
    return NULL;
}

/* A JSON integer as a non-negative uint64, or -1. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Step 3: one header entry. */
static int check_entry(struct loader *L, const char *name, json_t *v, uint64_t dsize,
                       struct entry *e)
{
    if (!json_is_object(v))
        return fail(L, -EINVAL, "tensor %s: entry is not a JSON object", name);
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return fail(L, -EINVAL, "tensor %s: \"dtype\" missing or not a string", name);
    if (!json_is_array(js))
        return fail(L, -EINVAL, "tensor %s: \"shape\" missing or not an array", name);
    if (!json_is_array(jo))
        return fail(L, -EINVAL, "tensor %s: \"data_offsets\" missing or not an array", name);

    e->name = name;
    e->dt = dtype_find(json_string_value(jd));
    if (!e->dt)
        return fail(L, -EINVAL, "tensor %s: unknown dtype \"%.32s\"", name,
                    json_string_value(jd));

    /* product of the dimensions, in bytes, without overflow */
    uint64_t count = 1;
    int overflow = 0, empty = 0;
    e->rank = (int)json_array_size(js);
    for (size_t i = 0; i < json_array_size(js); i++) {
        uint64_t d;
        if (get_u64(json_array_get(js, i), &d) < 0)
            return fail(L, -EINVAL, "tensor %s: shape[%zu] is not a non-negative integer",
                        name, i);
        if (i < 3)
            e->dims[i] = (int64_t)d;
        if (d == 0)
            empty = 1;
        else if (count > UINT64_MAX / d)
            overflow = 1;
        else
            count *= d;
    }
    if (count > UINT64_MAX / e->dt->size)
        overflow = 1;
    if (empty)              /* a zero dimension: empty, whatever the others say */
        overflow = 0, count = 0;
    if (overflow)
        return fail(L, -EINVAL, "tensor %s: shape too large", name);
    e->count = count;
    uint64_t bytes = count * e->dt->size;

    if (json_array_size(jo) != 2 || get_u64(json_array_get(jo, 0), &e->begin) < 0 ||
        get_u64(json_array_get(jo, 1), &e->end) < 0)
        return fail(L, -EINVAL, "tensor %s: data_offsets is not [begin, end] of "
                    "non-negative integers", name);
    if (e->begin > e->end || e->end > dsize)
        return fail(L, -EINVAL, "tensor %s: data_offsets [%llu, %llu] outside the data "
                    "area of %llu bytes", name, (unsigned long long)e->begin,
                    (unsigned long long)e->end, (unsigned long long)dsize);
    if (e->end - e->begin != bytes)
        return fail(L, -EINVAL, "tensor %s: data_offsets span %llu bytes, but %s x shape "
                    "needs %llu", name, (unsigned long long)(e->end - e->begin),
                    e->dt->name, (unsigned long long)bytes);
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Step 4: sorted by start, each non-empty tensor must end before the next starts. */
static int check_overlap(struct loader *L, struct entry *e, size_t n)
{
    if (n < 2)
        return 0;
    const struct entry **s = malloc(n * sizeof *s);
    if (!s)
        return fail(L, -ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].end > e[i].begin)
            s[m++] = &e[i];
    qsort(s, m, sizeof *s, cmp_begin);
    int rc = 0;
    for (size_t i = 1; i < m && !rc; i++)
        if (s[i]->begin < s[i - 1]->end)
            rc = fail(L, -EINVAL, "tensors %s and %s overlap in the data area",
                      s[i - 1]->name, s[i]->name);
    free(s);
    return rc;
}

static void want_init(struct want *w)
{
    static const int ks[NET_BRANCHES] = { 3, 5, 7 };
    static const int cin[3] = { 64, 64, 128 }, cout[3] = { 64, 128, 256 };
    memset(w, 0, W_N * sizeof *w);
    w[W_CONV1_W] = (struct want){ "conv1.weight", 3, { NET_C1_OUT, 1, NET_C1_K }, 0, 0 };
    w[W_CONV1_B] = (struct want){ "conv1.bias", 1, { NET_C1_OUT }, 0, 0 };
    for (int b = 0; b < NET_BRANCHES; b++)
        for (int l = 0; l < 3; l++) {
            struct want *ww = &w[W_BRANCH + (b * 3 + l) * 2];
            snprintf(ww[0].name, sizeof ww[0].name, "conv%d_%d.weight", ks[b], l + 1);
            ww[0].rank = 3;
            ww[0].dims[0] = cout[l];
            ww[0].dims[1] = cin[l];
            ww[0].dims[2] = ks[b];
            snprintf(ww[1].name, sizeof ww[1].name, "conv%d_%d.bias", ks[b], l + 1);
            ww[1].rank = 1;
            ww[1].dims[0] = cout[l];
        }
    w[W_FC_W] = (struct want){ "fc.weight", 2, { 0, NET_FEATURES }, 0, 0 };
    w[W_FC_B] = (struct want){ "fc.bias", 1, { 0 }, 0, 0 };
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *dims, int ranked)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && o < n; i++) {
        if (i >= ranked) {
            o += (size_t)snprintf(buf + o, n - o, "%s...", i ? "," : "");
            break;
        }
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

/* Step 5: map the entries onto Net's state_dict. */
static int check_names(struct loader *L, struct entry *e, size_t n, struct want *w,
                       struct want *dw, enum net_kind kind, int *classes)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, dw[0].name) == 0 || strcmp(e[i].name, dw[1].name) == 0) {
            dw[strcmp(e[i].name, dw[0].name) == 0 ? 0 : 1].e = &e[i];
            continue;                   /* the detector's: checked with its metadata */
        }
        if (kind == NET_ANOMALY)
            return fail(L, -EINVAL, "unexpected tensor %s (an anomaly model carries no "
                        "network: see model/FORMAT.md)", e[i].name);
        if (strncmp(e[i].name, "BN.", 3) == 0)
            continue;                   /* defined in Net, unused by its forward */
        int j;
        for (j = 0; j < W_N && strcmp(e[i].name, w[j].name) != 0; j++)
            ;
        if (j == W_N)
            return fail(L, -EINVAL, "unexpected tensor %s (not trident's Net: see "
                        "model/FORMAT.md)", e[i].name);
        w[j].e = &e[i];
    }
    if (kind == NET_ANOMALY) {
        *classes = 2;                   /* normal, anomaly */
        return 0;
    }
    for (int j = 0; j < W_N; j++)
        if (!w[j].e)
            return fail(L, -EINVAL, "missing tensor %s", w[j].name);

    /* the class count comes from fc.weight */
    const struct entry *fw = w[W_FC_W].e;
    if (fw->rank == 2 && fw->dims[0] >= 1 && fw->dims[0] <= NET_MAX_CLASSES)
        w[W_FC_W].dims[0] = w[W_FC_B].dims[0] = (int)fw->dims[0];
    else if (fw->rank == 2 && fw->dims[1] == NET_FEATURES)
        return fail(L, -EINVAL, "tensor fc.weight: %lld classes, expected 1 to %d",
                    (long long)fw->dims[0], NET_MAX_CLASSES);
    *classes = w[W_FC_W].dims[0];

    for (int j = 0; j < W_N; j++) {
        const struct entry *x = w[j].e;
        int same = x->rank == w[j].rank;
        for (int d = 0; same && d < w[j].rank; d++)
            same = x->dims[d] == w[j].dims[d];
        if (!same) {
            char got[80], want[80];
            int64_t wd[3] = { w[j].dims[0], w[j].dims[1], w[j].dims[2] };
            shape_str(got, sizeof got, x->rank, x->dims, 3);
            shape_str(want, sizeof want, w[j].rank, wd, 3);
            if (j == W_FC_W || j == W_FC_B)     /* C is free: say so */
                snprintf(want, sizeof want, j == W_FC_W ? "[C,%d]" : "[C] (C from fc.weight)",
                         NET_FEATURES);
            return fail(L, -EINVAL, "tensor %s: shape %s, expected %s", w[j].name, got, want);
        }
        if (!x->dt->is_float)
            return fail(L, -EINVAL, "tensor %s: dtype %s, expected F32 (or F16, BF16)",
                        w[j].name, x->dt->name);
    }
    return 0;
}

/* Step 6, trident.classes: exactly C non-empty names. */
static int parse_classes(struct loader *L, net_model *m, const char *s)
{
    int n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    if (n != m->n_classes)
        return fail(L, -EINVAL, "__metadata__ trident.classes has %d names, but fc.weight "
                    "has %d classes", n, m->n_classes);
    const char *p = s;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return fail(L, -EINVAL, "__metadata__ trident.classes: name %d is empty", i);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
                return fail(L, -EINVAL, "__metadata__ trident.classes: name %d has a "
                            "control character", i);
        m->class_names[i] = strndup(p, len);
        if (!m->class_names[i])
            return fail(L, -ENOMEM, "out of memory");
        p += len + 1;
    }
    return 0;
}

static int read_metadata(struct loader *L, net_model *m, json_t *md)
{
    const char *classes = NULL;
    bool detector = false;
    if (md) {
        if (!json_is_object(md))
            return fail(L, -EINVAL, "__metadata__ is not a JSON object");
        const char *key;
        json_t *v;
        json_object_foreach(md, key, v) {
            if (!json_is_string(v))
                return fail(L, -EINVAL, "__metadata__ %s: value is not a string", key);
            const char *s = json_string_value(v);
            if (strcmp(key, "trident.classes") == 0) {
                classes = s;
            } else if (strcmp(key, "trident.sample_rate") == 0) {
                char *end;
                errno = 0;
                double r = strtod(s, &end);
                /* Bounded so that rate ratios, output lengths (rs_out_len) and
                 * resampler buffer sizes stay far from overflow; 1 Hz to
                 * 10 MHz covers vibration, audio and fast DAQs alike. */
                if (end == s || *end || errno || !isfinite(r) || r <= 0)
                    return fail(L, -EINVAL, "__metadata__ trident.sample_rate \"%.40s\" is "
                                "not a positive number (Hz)", s);
                if (r < RATE_MIN || r > RATE_MAX)
                    return fail(L, -EINVAL, "__metadata__ trident.sample_rate \"%.40s\" is "
                                "outside %d to %d Hz", s, RATE_MIN, RATE_MAX);
                m->sample_rate = r;
            } else if (strcmp(key, "trident.normalize") == 0) {
                if (norm_parse(s, &m->norm) < 0)
                    return fail(L, -EINVAL, "__metadata__ trident.normalize \"%.40s\" is "
                                "not zscore or none", s);
            } else if (strcmp(key, "trident.detector") == 0) {
                if (strcmp(s, "spectral") != 0)
                    return fail(L, -EINVAL, "__metadata__ trident.detector \"%.40s\" is not "
                                "spectral", s);
                detector = true;
            } else if (strcmp(key, "trident.detector.bands") == 0) {
                char *end;
                long b = strtol(s, &end, 10);
                if (end == s || *end || !feat_bands_ok((int)b))
                    return fail(L, -EINVAL, "__metadata__ trident.detector.bands \"%.40s\" "
                                "is not 8, 16, 32 or 64", s);
                m->dt_bands = (int)b;
            } else if (strcmp(key, "trident.detector.level") == 0) {
                if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
                    return fail(L, -EINVAL, "__metadata__ trident.detector.level \"%.40s\" "
                                "is not 0 or 1", s);
                m->dt_level = s[0] == '1';
            } else if (strcmp(key, "trident.detector.threshold") == 0) {
                char *end;
                errno = 0;
                double t = strtod(s, &end);
                if (end == s || *end || errno || !isfinite(t) || t <= 0)
                    return fail(L, -EINVAL, "__metadata__ trident.detector.threshold "
                                "\"%.40s\" is not a positive number", s);
                m->dt_threshold = t;
            }
            /* other keys (training notes, ...) are not ours: ignored */
        }
    }
    if (detector) {
        if (!m->dt_bands)
            return fail(L, -EINVAL, "__metadata__ trident.detector.bands is missing");
        if (!(m->dt_threshold > 0))
            return fail(L, -EINVAL, "__metadata__ trident.detector.threshold is missing");
        m->dt_dim = feat_dim(m->dt_bands, m->dt_level);
    } else if (m->kind == NET_ANOMALY) {
        return fail(L, -EINVAL, "__metadata__ trident.kind is anomaly but trident.detector "
                    "is missing");
    }
    m->class_names = calloc((size_t)m->n_classes, sizeof *m->class_names);
    if (!m->class_names)
        return fail(L, -ENOMEM, "out of memory");
    if (m->kind == NET_ANOMALY) {
        if (classes && strcmp(classes, "normal,anomaly") != 0)
            return fail(L, -EINVAL, "__metadata__ trident.classes of an anomaly model must "
                        "be normal,anomaly");
        classes = "normal,anomaly";
    }
    if (classes)
        return parse_classes(L, m, classes);
    for (int i = 0; i < m->n_classes; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        if (!(m->class_names[i] = strdup(num)))
            return fail(L, -ENOMEM, "out of memory");
    }
    return 0;
}

/* IEEE half to float, subnormals included. */
static float half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 1024), exp - 25);
    return sign ? -v : v;
}

/* Widen one tensor into dst; non-finite weights are refused (the daemon
 * would otherwise publish NaN, which is not even JSON). */
static int copy_tensor(struct loader *L, const struct want *w, const unsigned char *data)
{
    const struct entry *e = w->e;
    const unsigned char *p = data + e->begin;
    const int bf16 = strcmp(e->dt->name, "BF16") == 0;
    for (uint64_t i = 0; i < e->count; i++) {
        float v;
        if (e->dt->size == 4) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&v, &u, sizeof v);
        } else {
            uint16_t u = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            if (bf16) {
                uint32_t u32 = (uint32_t)u << 16;
                memcpy(&v, &u32, sizeof v);
            } else {
                v = half_to_float(u);
            }
        }
        if (!isfinite(v))
            return fail(L, -EINVAL, "tensor %s: non-finite value at element %llu", w->name,
                        (unsigned long long)i);
        w->dst[i] = v;
    }
    return 0;
}

static void link_layers(net_model *m, struct want *w)
{
    static const int ks[NET_BRANCHES] = { 3, 5, 7 };
    static const int cin[3] = { 64, 64, 128 }, cout[3] = { 64, 128, 256 };
    m->conv1 = (struct net_conv){ w[W_CONV1_W].dst, w[W_CONV1_B].dst, NET_C1_OUT, 1,
                                  NET_C1_K, NET_C1_S, NET_C1_P };
    for (int b = 0; b < NET_BRANCHES; b++)
        for (int l = 0; l < 3; l++) {
            const struct want *ww = &w[W_BRANCH + (b * 3 + l) * 2];
            m->branch[b][l] = (struct net_conv){ ww[0].dst, ww[1].dst, cout[l], cin[l],
                                                 ks[b], 1, (ks[b] - 1) / 2 };
        }
    m->fc_w = w[W_FC_W].dst;
    m->fc_b = w[W_FC_B].dst;
}

/* trident.kind, read before the names are checked: an anomaly model has no
 * network tensors. */
static int read_kind(struct loader *L, net_model *m, json_t *md)
{
    json_t *v = json_is_object(md) ? json_object_get(md, "trident.kind") : NULL;
    m->kind = NET_CLASSIFIER;
    if (!v || !json_is_string(v))
        return 0;                       /* (a non-string is refused by read_metadata) */
    const char *s = json_string_value(v);
    if (strcmp(s, "anomaly") == 0)
        m->kind = NET_ANOMALY;
    else if (strcmp(s, "classifier") != 0)
        return fail(L, -EINVAL, "__metadata__ trident.kind \"%.40s\" is not classifier or "
                    "anomaly", s);
    return 0;
}

/* The detector's tensors against its metadata: detector.means [M, D] with
 * 1 <= M <= 256, detector.precision [D, D], D from the bands and level. */
static int check_detector(struct loader *L, net_model *m, struct want *dw)
{
    if (!m->dt_dim) {
        for (int j = 0; j < 2; j++)
            if (dw[j].e)
                return fail(L, -EINVAL, "tensor %s without __metadata__ trident.detector",
                            dw[j].name);
        return 0;
    }
    const int d = m->dt_dim;
    for (int j = 0; j < 2; j++) {
        const struct entry *x = dw[j].e;
        if (!x)
            return fail(L, -EINVAL, "missing tensor %s (trident.detector is set)", dw[j].name);
        if (!x->dt->is_float)
            return fail(L, -EINVAL, "tensor %s: dtype %s, expected F32 (or F16, BF16)",
                        dw[j].name, x->dt->name);
        int64_t rows = j ? d : x->dims[0];
        if (x->rank != 2 || x->dims[1] != d || x->dims[0] != rows ||
            (!j && (rows < 1 || rows > NET_MAX_CLASSES))) {
            char got[80];
            shape_str(got, sizeof got, x->rank, x->dims, 3);
            if (j)
                return fail(L, -EINVAL, "tensor %s: shape %s, expected [%d,%d] (%d bands%s)",
                            dw[j].name, got, d, d, m->dt_bands,
                            m->dt_level ? " + kurtosis, crest, level" : " + kurtosis, crest");
            return fail(L, -EINVAL, "tensor %s: shape %s, expected [M,%d] with M from 1 to %d",
                        dw[j].name, got, d, NET_MAX_CLASSES);
        }
    }
    m->dt_centres = (int)dw[0].e->dims[0];
    return 0;
}

/* Steps 2 to 6 and the copy, on the file's bytes. */
static int load_mapped(struct loader *L, net_model *m, const unsigned char *map, size_t size)
{
    if (size < 8)
        return fail(L, -EINVAL, "file too short (%zu bytes) for a safetensors header", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | map[i];
    if (hlen > HEADER_MAX)
        return fail(L, -EINVAL, "header length %llu is absurd (more than %u MiB)",
                    (unsigned long long)hlen, HEADER_MAX >> 20);
    if (hlen > size - 8)
        return fail(L, -EINVAL, "header length %llu goes beyond the end of the file "
                    "(%zu bytes)", (unsigned long long)hlen, size);
    const unsigned char *data = map + 8 + hlen;
    uint64_t dsize = size - 8 - hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES,
                              &jerr);
    if (!root && json_error_code(&jerr) == json_error_duplicate_key)
        return fail(L, -EINVAL, "duplicate name in the JSON header: %s", jerr.text);
    if (!root)
        return fail(L, -EINVAL, "bad JSON header: %s (header byte %d)", jerr.text,
                    jerr.position);
    int rc = 0;
    struct entry *ents = NULL;
    size_t n = 0;
    if (!json_is_object(root)) {
        rc = fail(L, -EINVAL, "JSON header is not an object");
        goto out;
    }
    ents = calloc(json_object_size(root) + 1, sizeof *ents);
    if (!ents) {
        rc = fail(L, -ENOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        if ((rc = check_entry(L, key, v, dsize, &ents[n++])) < 0)
            goto out;
    }
    if ((rc = check_overlap(L, ents, n)) < 0)
        goto out;
    struct want w[W_N], dw[2] = { { "detector.means", 2, { 0 }, 0, 0 },
                                  { "detector.precision", 2, { 0 }, 0, 0 } };
    want_init(w);
    json_t *md = json_object_get(root, "__metadata__");
    if ((rc = read_kind(L, m, md)) < 0)
        goto out;
    if ((rc = check_names(L, ents, n, w, dw, m->kind, &m->n_classes)) < 0)
        goto out;
    if ((rc = read_metadata(L, m, md)) < 0)
        goto out;
    if ((rc = check_detector(L, m, dw)) < 0)
        goto out;

    /* one arena, every tensor starting on a 64-byte boundary */
    struct want *use[W_N + 2];
    int n_use = 0;
    for (int j = 0; j < W_N && m->kind == NET_CLASSIFIER; j++)
        use[n_use++] = &w[j];
    for (int j = 0; j < 2 && m->dt_dim; j++)
        use[n_use++] = &dw[j];
    size_t floats = 0;
    for (int j = 0; j < n_use; j++)
        floats += (use[j]->e->count + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    m->arena = aligned_alloc(64, (floats ? floats : TENSOR_ALIGN) * sizeof(float));
    if (!m->arena) {
        rc = fail(L, -ENOMEM, "out of memory for %zu weights", floats);
        goto out;
    }
    float *dst = m->arena;
    for (int j = 0; j < n_use; j++) {
        use[j]->dst = dst;
        if ((rc = copy_tensor(L, use[j], data)) < 0)
            goto out;
        size_t c = (size_t)use[j]->e->count;
        memset(dst + c, 0, ((c + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN - c) *
               sizeof(float));
        dst += (c + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    }
    if (m->kind == NET_CLASSIFIER)
        link_layers(m, w);
    if (m->dt_dim) {
        m->dt_means = dw[0].dst;
        m->dt_precision = dw[1].dst;
    }

    unsigned char d[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    sha256(map, size, d);
    sha256_hex(d, hex);
    memcpy(m->digest, hex, 12);
    m->digest[12] = '\0';
out:
    free(ents);
    json_decref(root);
    return rc;
}

/* The whole file into a malloc'd buffer with read(): a file truncated or
 * rewritten meanwhile gives a short read or changed stat, never SIGBUS (as a
 * mapping would).  O_NONBLOCK so that a FIFO named as the model cannot block
 * the open; anything but a regular file is refused before reading. */
static int read_whole(struct loader *L, unsigned char **out, size_t *outsize)
{
    int fd = open(L->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return fail(L, -e, "%s", strerror(e));
    }
    struct stat st, st2;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return fail(L, -e, "%s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(L, S_ISDIR(st.st_mode) ? -EISDIR : -ENODEV, "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return fail(L, -EINVAL, "file too short (%zu bytes) for a safetensors header", size);
    }
    unsigned char *buf = malloc(size + 1);      /* +1: sees growth as a long read */
    if (!buf) {
        close(fd);
        return fail(L, -ENOMEM, "out of memory for %zu bytes", size);
    }
    size_t got = 0;
    while (got < size + 1) {
        ssize_t r = read(fd, buf + got, size + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return fail(L, -e, "read: %s", strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    int changed = fstat(fd, &st2) < 0 || got != size || st2.st_size != st.st_size ||
                  st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
                  st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec;
    close(fd);
    if (changed) {
        free(buf);
        return fail(L, -EAGAIN, "changed while being read (%zu bytes at open, %zu read): "
                    "replace model files by renaming a new file over the old one", size, got);
    }
    *out = buf;
    *outsize = size;
    return 0;
}

int net_load(const char *path, net_model **out, char *err, size_t errlen)
{
    struct loader L = { path ? path : "(null)", err, errlen };
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!path)
        return fail(&L, -EINVAL, "no model path");
    unsigned char *buf = NULL;
    size_t size = 0;
    int rc = read_whole(&L, &buf, &size);
    if (rc < 0)
        return rc;
    rc = net_load_buffer(buf, size, path, out, err, errlen);
    free(buf);                          /* the model holds copies only */
    return rc;
}

int net_load_buffer(const void *buf, size_t size, const char *name, net_model **out,
                    char *err, size_t errlen)
{
    struct loader L = { name ? name : "(buffer)", err, errlen };
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int rc = -ENOMEM;
    net_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(L.path))) {
        fail(&L, rc, "out of memory");
        goto bad;
    }
    m->norm = NORM_NONE;
    if ((rc = load_mapped(&L, m, buf, size)) < 0)
        goto bad;
    if (m->kind == NET_ANOMALY) {
        m->impl = "none";               /* no network: net_forward() is never called */
        m->scratch_floats = NET_FEATURES;
    } else if ((rc = net_fast_init(m)) < 0) {
        fail(&L, rc, "preparing the forward pass: %s", strerror(-rc));
        goto bad;
    }
    *out = m;
    return 0;
bad:
    net_destroy(m);
    return rc;
}

void net_destroy(net_model *m)
{
    if (!m)
        return;
    if (m->fast && m->fast_free)
        m->fast_free(m->fast);
    if (m->class_names)
        for (int i = 0; i < m->n_classes; i++)
            free(m->class_names[i]);
    free(m->class_names);
    free(m->arena);
    free(m->path);
    free(m);
}
