/* fuzz_load.c — libFuzzer target for the model loader (net_load_buffer).
 *
 *   make fuzz
 *   mkdir -p /tmp/corpus && /usr/bin/python3 model/train/export.py /tmp/corpus/seed.safetensors
 *   build-fuzzer/fuzz/fuzz_load -max_total_time=300 -max_len=3000000 /tmp/corpus
 *
 * Any input must be either refused with a one-line message or loaded into a
 * model whose forward pass runs; ASan+UBSan catch everything else.  A valid
 * seed (export.py) lets the fuzzer mutate real headers and tensor data.
 */
#include "net_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    net_model *m;
    int rc = net_load_buffer(data, size, "fuzz", &m, err, sizeof err);
    if (rc < 0) {
        if (strncmp(err, "fuzz: ", 6) != 0 || strchr(err, '\n'))
            abort();                    /* the message contract */
        return 0;
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
    net_destroy(m);
    return 0;
}
