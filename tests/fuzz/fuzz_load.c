/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_load.c — libFuzzer target for the model loader (net_load_buffer).
 *
 * Any input must be either refused with a one-line message "fuzz: ..." or
 * loaded into a model whose forward pass runs; ASan+UBSan catch everything
 * else.
 *
 * A model of trident's network is 1.4 to 3.5 MB whatever its header says
 * (the weights' shapes are fixed), and mutating megabytes of weights finds
 * nothing the header would not: so the corpus holds headers with a few bytes
 * of data, and an input whose header asks for more data than follows it is
 * loaded twice: as it is (refused: the data area is too short), then
 * extended to the length its data_offsets ask for, the extension repeating
 * the input's own data bytes (zeros if it has none).  The second load is a
 * real file too (write the extended bytes out to reproduce it outside the
 * fuzzer); it takes a mutated header through the metadata, the copy (F16,
 * BF16, non-finite values) and the forward pass at a few thousand inputs a
 * second.
 *
 *   make fuzz                                  # every target, FUZZ_SECONDS each
 *   build-fuzzer/fuzz/fuzz_load -max_len=65536 -dict=tests/fuzz/load.dict \
 *       build-fuzzer/fuzz/work/load tests/fuzz/corpus/load
 *   build-fuzzer/fuzz/fuzz_load FILE...       # replay inputs (tests/fuzz/regress/load/)
 */
#include "net_internal.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest data area worth extending to: every tensor of Net in F32 with
 * 256 classes is 3.5 MB. */
#define EXTEND_MAX (8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(const uint8_t *data, size_t size)
{
    char err[256];
    net_model *m;
    int rc = net_load_buffer(data, size, "fuzz", &m, err, sizeof err);
    if (rc < 0) {
        if (strncmp(err, "fuzz: ", 6) != 0 || strchr(err, '\n') || strchr(err, '\r')) {
            fprintf(stderr, "fuzz_load: refused with \"%s\"\n", err);
            abort();                    /* the message contract */
        }
        return;
    }
    static float x[NET_WIN];
    float logits[NET_MAX_CLASSES];
    for (int i = 0; i < NET_WIN; i++)
        x[i] = (float)(i % 17) - 8.0f;
    net_scratch *s = net_scratch_create(m);
    if (s) {
        net_forward(m, s, x, logits);
        net_scratch_destroy(s);
    }
    if (net_classes(m) < 1 || net_classes(m) > NET_MAX_CLASSES)
        abort();
    for (int i = 0; i < net_classes(m); i++)
        if (!net_class_name(m, i) || !*net_class_name(m, i))
            abort();
    net_destroy(m);
}

/* Bytes of data area the header's data_offsets reach, or 0 if the header
 * does not parse as a JSON object. */
static uint64_t data_wanted(const uint8_t *data, uint64_t hlen)
{
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, 0, NULL);
    uint64_t want = 0;
    const char *key;
    json_t *v;
    if (json_is_object(root))
        json_object_foreach(root, key, v) {
            json_t *end = json_array_get(json_object_get(v, "data_offsets"), 1);
            if (json_is_integer(end) && json_integer_value(end) > 0
                && (uint64_t)json_integer_value(end) > want)
                want = (uint64_t)json_integer_value(end);
        }
    json_decref(root);
    return want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size);

    if (size < 8)
        return 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    if (hlen > size - 8)
        return 0;
    size_t have = size - 8 - (size_t)hlen;
    uint64_t want = data_wanted(data, hlen);
    if (want <= have || want > EXTEND_MAX)
        return 0;
    size_t n = size - have + (size_t)want;
    uint8_t *ext = malloc(n);
    if (!ext)
        abort();
    memcpy(ext, data, size);
    /* the data bytes over and over: copy them once, then double the copy */
    uint8_t *x = ext + size;
    size_t xn = n - size, done = have < xn ? have : xn;
    if (have)
        memcpy(x, data + 8 + hlen, done);
    else
        memset(x, 0, done = xn);
    while (done < xn) {
        size_t k = done < xn - done ? done : xn - done;
        memcpy(x + done, x, k);
        done += k;
    }
    load(ext, n);
    free(ext);
    return 0;
}
