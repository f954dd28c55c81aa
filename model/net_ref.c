/* SPDX-License-Identifier: Apache-2.0 */
/* net_ref.c — the reference forward pass: the specification of the network.
 *
 * Plain C, layer by layer exactly as docs/DESIGN.md "The network" and
 * model/train/net.py: Conv1d with zero padding, MaxPool1d, no activations,
 * branches k = 3, 5, 7 from pool1's output, pool2 the max over the 8
 * remaining positions, concatenation in branch order, then fc.  Sums are in
 * float, in the order (cin, tap, position), so every inner loop runs over
 * contiguous memory.  The fast kernels (net_fast*.c) are tested against this
 * file, and this file against PyTorch (tests/integration/test_parity.py).
 *
 * Also here: the scratch memory, softmax, arg-max and the model accessors.
 */
#include "net_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scratch layout (floats):
 *   c    conv output, largest is conv1: 64 x 128
 *   p1   pool1 output, kept while the three branches run: 64 x 64
 *   a    a branch's pooled layer 1 and layer 3: 64 x 32 = 256 x 8
 *   b    a branch's pooled layer 2: 128 x 16
 *   feat the concatenated features: 768 */
#define S_C    (NET_C1_OUT * NET_C1_LEN)
#define S_P1   (NET_C1_OUT * NET_P1_LEN)
#define S_A    2048
#define S_B    2048

size_t net_ref_scratch_floats(void)
{
    return S_C + S_P1 + S_A + S_B + NET_FEATURES;
}

/* out[co][t] = b[co] + sum_ci sum_j w[co][ci][j] * in[ci][t*stride - pad + j],
 * input positions outside [0, len) reading as zero.  Returns the output length. */
static int conv1d(const struct net_conv *cv, const float *in, int len, float *out)
{
    int olen = (len + 2 * cv->pad - cv->k) / cv->stride + 1;
    for (int co = 0; co < cv->cout; co++) {
        float *o = out + (size_t)co * olen;
        for (int t = 0; t < olen; t++)
            o[t] = cv->b[co];
        for (int ci = 0; ci < cv->cin; ci++) {
            const float *x = in + (size_t)ci * len;
            const float *w = cv->w + ((size_t)co * cv->cin + ci) * cv->k;
            for (int j = 0; j < cv->k; j++) {
                /* outputs t whose input index t*stride - pad + j is inside [0, len) */
                int off = j - cv->pad;
                if (off > len - 1)
                    continue;
                int t0 = off < 0 ? (-off + cv->stride - 1) / cv->stride : 0;
                int t1 = (len - 1 - off) / cv->stride + 1;   /* one past the last */
                if (t1 > olen)
                    t1 = olen;
                float wj = w[j];
                if (cv->stride == 1) {      /* the branches: contiguous, vectorisable */
                    for (int t = t0; t < t1; t++)
                        o[t] += wj * x[t + off];
                } else {
                    for (int t = t0; t < t1; t++)
                        o[t] += wj * x[t * cv->stride + off];
                }
            }
        }
    }
    return olen;
}

/* MaxPool1d(size, stride) per channel; NaN propagates as in PyTorch. */
static int maxpool(const float *in, int ch, int len, int size, int stride, float *out)
{
    int olen = (len - size) / stride + 1;
    for (int c = 0; c < ch; c++) {
        const float *x = in + (size_t)c * len;
        float *o = out + (size_t)c * olen;
        for (int t = 0; t < olen; t++) {
            float m = x[t * stride];
            for (int j = 1; j < size; j++) {
                float v = x[t * stride + j];
                if (v > m || isnan(v))
                    m = v;
            }
            o[t] = m;
        }
    }
    return olen;
}

void net_forward_ref(const net_model *m, net_scratch *s, const float *x, float *logits)
{
    assert(s->n >= net_ref_scratch_floats());
    float *c = s->buf, *p1 = c + S_C, *a = p1 + S_P1, *b = a + S_A, *feat = b + S_B;

    int len = conv1d(&m->conv1, x, NET_WIN, c);                 /* 64 x 128 */
    len = maxpool(c, NET_C1_OUT, len, 2, 2, p1);                 /* 64 x 64 */
    for (int br = 0; br < NET_BRANCHES; br++) {
        const struct net_conv *L = m->branch[br];
        int l = conv1d(&L[0], p1, len, c);                       /* 64 x 64 */
        l = maxpool(c, L[0].cout, l, 2, 2, a);                   /* 64 x 32 */
        l = conv1d(&L[1], a, l, c);                              /* 128 x 32 */
        l = maxpool(c, L[1].cout, l, 2, 2, b);                   /* 128 x 16 */
        l = conv1d(&L[2], b, l, c);                              /* 256 x 16 */
        l = maxpool(c, L[2].cout, l, 2, 2, a);                   /* 256 x 8 */
        maxpool(a, L[2].cout, l, l, 1, feat + br * L[2].cout);   /* pool2: 256 x 1 */
    }
    s->feat = feat;
    for (int k = 0; k < m->n_classes; k++) {
        const float *w = m->fc_w + (size_t)k * NET_FEATURES;
        float acc = m->fc_b[k];
        for (int i = 0; i < NET_FEATURES; i++)
            acc += w[i] * feat[i];
        logits[k] = acc;
    }
}

net_scratch *net_scratch_create(const net_model *m)
{
    net_scratch *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    s->n = m->scratch_floats;
    s->feat = NULL;
    size_t bytes = (s->n * sizeof(float) + 63) / 64 * 64;
    s->buf = aligned_alloc(64, bytes ? bytes : 64);
    if (!s->buf) {
        free(s);
        return NULL;
    }
    memset(s->buf, 0, bytes);
    return s;
}

void net_scratch_destroy(net_scratch *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

/* Stable softmax: subtract the maximum so exp() never overflows. */
void net_softmax(const float *logits, int n, float *probs)
{
    if (n <= 0)
        return;
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf(logits[i] - mx);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++)
        probs[i] = (float)(probs[i] / sum);
}

/* Index of the first maximum (NaN never wins); 0 for n <= 0 or all NaN. */
int net_argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best] || (isnan(v[best]) && !isnan(v[i])))
            best = i;
    return best;
}

int net_classes(const net_model *m) { return m->n_classes; }

const char *net_class_name(const net_model *m, int i)
{
    return i >= 0 && i < m->n_classes ? m->class_names[i] : NULL;
}

double net_sample_rate(const net_model *m) { return m->sample_rate; }
enum norm_kind net_normalize(const net_model *m) { return m->norm; }
const char *net_digest(const net_model *m) { return m->digest; }
const char *net_path(const net_model *m) { return m->path; }
const char *net_impl(const net_model *m) { return m->impl; }
const float *net_features(const net_scratch *s) { return s->feat; }
