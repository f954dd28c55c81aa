/* SPDX-License-Identifier: Apache-2.0 */
/* net_fast_body.h — the fast forward pass, compiled once per instruction set.
 *
 * Included by net_fast_{avx512,avx2,generic}.c after they define
 *   VW    lanes per vector (16 for AVX-512, 8 for AVX2, 4 for generic)
 *   V     weight vectors per register tile (output channels: V * VW)
 *   R     output positions per register tile
 *   VMAX(a, b)           lane-wise maximum of two vf (optional: a portable
 *                        compare-and-select otherwise)
 *   NET_FAST_FORWARD     the name of the forward function to define
 * and compile it with -O3 -ffp-contract=fast and their -m flags.  The code is
 * plain C with GCC vector extensions (GCC and Clang); the compiler turns it
 * into the instruction set the file is built for.
 *
 * Why it is fast.  Every convolution is one or more GEMMs
 *     out[t][co] = sum_kk in[t][kk] * w[kk][co]
 * with channels-last rows: conv1 directly (kk = tap, rows of stride 8), the
 * branch layers after the Winograd transform of net_fast.h (t = output
 * pair, kk = (group, input channel), four accumulator classes), which does
 * 11.3 M multiply-adds per window instead of 16.0 M.  A register tile holds
 * R x V accumulator vectors (R rows x V*VW output channels); per kk it loads
 * V weight vectors and broadcasts R inputs, so the inner loop is one load
 * and R*V fused multiply-adds with broadcast operands, nothing else.  With
 * AVX-512, R = 16, V = 1: 16 zmm accumulators, each FMA takes its input as
 * an embedded {1to16} broadcast from L1.  Output-channel blocks are the
 * outer loop, so each weight block is streamed from L3/L2 once and reused
 * from L1 for the other tiles.  The four classes of a tile run one after the
 * other in the same registers and are combined into the output pair
 * (y0, y1); max-pooling that pair, bias (max(a+b, c+b) = max(a, c) + b) and
 * the final global max happen before the store into the next layer's padded
 * input.
 */
#include <string.h>

#include "net_fast.h"

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));   /* unaligned access */
#define VB (V * VW)

#ifndef VMAX
typedef int vi __attribute__((vector_size(VW * 4)));
static inline vf vf_max(vf a, vf b)
{
    vi gt = a > b;
    return (vf)((gt & (vi)a) | (~gt & (vi)b));
}
#define VMAX(a, b) vf_max((a), (b))
#endif

/* One register tile of rn <= R positions (rn a compile-time constant after
 * inlining): acc[r][v] = sum_kk x[r * xs + kk] * w[kk][v * VW ...]. */
static inline __attribute__((always_inline)) void
conv_tile(const float *restrict x, int xs, int K, const float *restrict w, vf acc[R][V],
          const int rn)
{
#pragma GCC unroll 32
    for (int r = 0; r < rn; r++)
#pragma GCC unroll 8
        for (int v = 0; v < V; v++)
            acc[r][v] = (vf){0};
    for (int kk = 0; kk < K; kk++) {
        vf wv[V];
        /* The weights (2.7 MB) do not fit in L2: ask for them 32 steps
         * (2 KB with AVX-512, ~500 cycles) ahead of use, so that a core
         * shared with other processes, whose caches they evict, still finds
         * them in L1.  Past the end it fetches the next block, also needed. */
        __builtin_prefetch(w + (size_t)(kk + 32) * VB);
#pragma GCC unroll 8
        for (int v = 0; v < V; v++)
            wv[v] = *(const vf *)(w + (size_t)kk * VB + v * VW);
#pragma GCC unroll 32
        for (int r = 0; r < rn; r++) {
            float b = x[r * xs + kk];
#pragma GCC unroll 8
            for (int v = 0; v < V; v++)
                acc[r][v] += wv[v] * b;
        }
    }
}

/* Positions t0 .. t0 + rn - 1 (rn even) of one block of VB output channels:
 * computes the tile, then either max-pools pairs into y row t / 2 (stride
 * ys) or, with gmax, folds the tile's maximum into g and stores g + bias at
 * the last tile (pool 2, 2 then pool 8, 1 over the 8 pooled positions is the
 * maximum of all 16). */
static inline __attribute__((always_inline)) void
conv_block(const float *x, int xs, int K, const float *wb, const float *bias, int L,
           float *y, int ys, int gmax, vf g[V], int t0, const int rn)
{
    vf acc[R][V];
    conv_tile(x + (size_t)t0 * xs, xs, K, wb, acc, rn);
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) {
        vfu b;
        memcpy(&b, bias + v * VW, sizeof b);
        if (gmax) {
            vf mx = acc[0][v];
#pragma GCC unroll 32
            for (int r = 1; r < rn; r++)
                mx = VMAX(mx, acc[r][v]);
            g[v] = t0 == 0 ? mx : VMAX(g[v], mx);
            if (t0 + rn >= L) {
                vfu o = g[v] + b;
                memcpy(y + v * VW, &o, sizeof o);
            }
        } else {
#pragma GCC unroll 16
            for (int r = 0; r < rn; r += 2) {
                vfu o = VMAX(acc[r][v], acc[r + 1][v]) + b;
                memcpy(y + (size_t)((t0 + r) / 2) * ys + v * VW, &o, sizeof o);
            }
        }
    }
}

/* A convolution of L output positions, cout channels (a multiple of VB),
 * input rows of xs floats, K = taps * cin, fused with its max-pooling (see
 * conv_block).  Tiles of R positions, then one of the even rest L % R. */
static inline __attribute__((always_inline)) void
conv_pool(const float *x, int xs, int K, const float *w, const float *bias,
          int cout, int L, float *y, int ys, int gmax)
{
    for (int cb = 0; cb < cout; cb += VB) {
        const float *wb = w + (size_t)cb * K;
        float *yb = y + cb;
        vf g[V] = { 0 };                   /* set by the first tile */
        int t0 = 0;
        for (; t0 + R <= L; t0 += R)
            conv_block(x, xs, K, wb, bias + cb, L, yb, ys, gmax, g, t0, R);
        if (L % R)
            conv_block(x, xs, K, wb, bias + cb, L, yb, ys, gmax, g, t0, L % R);
    }
}

/* The transformed inputs of one branch layer (net_fast.h): for each output
 * pair i and class c, row i of X[c] holds, group after group, the cin values
 * of V.  `in` points at the row of input position -pad; rows of cin floats;
 * cin a multiple of VW.  All vector work over the channels. */
static inline __attribute__((always_inline)) void
wino_input(const float *in, int cin, int k, int pairs, float *const X[4], const int K[4])
{
    int size[NET_WG_MAX], j0[NET_WG_MAX];
    int ng = net_fast_groups(k, size, j0);
    for (int i = 0; i < pairs; i++) {
        float *row[4];
        for (int c = 0; c < 4; c++)
            row[c] = X[c] + (size_t)i * K[c];
        for (int g = 0; g < ng; g++) {
            const float *d = in + (size_t)(2 * i + j0[g]) * cin;
            for (int ci = 0; ci < cin; ci += VW) {
                vfu d0, d1, d2, d3;
                memcpy(&d0, d + ci, sizeof d0);
                memcpy(&d1, d + cin + ci, sizeof d1);
                if (size[g] == 1) {
                    memcpy(row[0] + ci, &d0, sizeof d0);
                    memcpy(row[3] + ci, &d1, sizeof d1);
                    continue;
                }
                memcpy(&d2, d + 2 * cin + ci, sizeof d2);
                if (size[g] == 2) {
                    vfu a = d0 - d1, dd = d2 - d1;
                    memcpy(row[0] + ci, &a, sizeof a);
                    memcpy(row[1] + ci, &d1, sizeof d1);
                    memcpy(row[3] + ci, &dd, sizeof dd);
                    continue;
                }
                memcpy(&d3, d + 3 * cin + ci, sizeof d3);
                vfu a = d0 - d2, b = d1 + d2, c = d2 - d1, dd = d3 - d1;
                memcpy(row[0] + ci, &a, sizeof a);
                memcpy(row[1] + ci, &b, sizeof b);
                memcpy(row[2] + ci, &c, sizeof c);
                memcpy(row[3] + ci, &dd, sizeof dd);
            }
            int cls = net_fast_group_classes(size[g]);
            for (int c = 0; c < 4; c++)
                if (cls >> c & 1)
                    row[c] += cin;
        }
    }
}

/* Output pairs t0 .. t0 + rn - 1 of one block of VB channels: the four class
 * GEMMs one after the other in the same registers, combined into y0 and y1,
 * then max(y0, y1) + bias: the pool, stored in row t of y; or with gmax the
 * running maximum g, stored at the last tile. */
static inline __attribute__((always_inline)) void
wino_block(float *const X[4], const int K[4], const float *const W[4], int cb,
           const float *bias, int pairs, float *y, int ys, int gmax, vf g[V], int t0,
           const int rn)
{
    vf acc[R][V], y0[R][V], y1[R][V];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        conv_tile(X[c] + (size_t)t0 * K[c], K[c], K[c], W[c] + (size_t)cb * K[c], acc, rn);
#pragma GCC unroll 32
        for (int r = 0; r < rn; r++)
#pragma GCC unroll 8
            for (int v = 0; v < V; v++) {
                if (c == 0) {
                    y0[r][v] = acc[r][v];
                } else if (c == 1) {
                    y0[r][v] += acc[r][v];
                    y1[r][v] = acc[r][v];
                } else if (c == 2) {
                    y0[r][v] += acc[r][v];
                    y1[r][v] -= acc[r][v];
                } else {
                    y1[r][v] += acc[r][v];
                }
            }
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) {
        vfu b;
        memcpy(&b, bias + v * VW, sizeof b);
        if (gmax) {
            vf mx = VMAX(y0[0][v], y1[0][v]);
#pragma GCC unroll 32
            for (int r = 1; r < rn; r++)
                mx = VMAX(mx, VMAX(y0[r][v], y1[r][v]));
            g[v] = t0 == 0 ? mx : VMAX(g[v], mx);
            if (t0 + rn >= pairs) {
                vfu o = g[v] + b;
                memcpy(y + v * VW, &o, sizeof o);
            }
        } else {
#pragma GCC unroll 32
            for (int r = 0; r < rn; r++) {
                vfu o = VMAX(y0[r][v], y1[r][v]) + b;
                memcpy(y + (size_t)(t0 + r) * ys + v * VW, &o, sizeof o);
            }
        }
    }
}

/* A branch layer: transform the input, then every block of VB output
 * channels over all output pairs (= pooled positions). */
static inline __attribute__((always_inline)) void
wino_conv_pool(const float *in, int cin, int k, int pairs, const struct net_fast_wconv *wc,
               const float *bias, int cout, float *xbuf, float *y, int ys, int gmax)
{
    float *X[4];
    X[0] = xbuf;
    for (int c = 1; c < 4; c++)
        X[c] = X[c - 1] + (size_t)pairs * wc->K[c - 1];
    wino_input(in, cin, k, pairs, X, wc->K);
    const float *const W[4] = { wc->w[0], wc->w[1], wc->w[2], wc->w[3] };
    for (int cb = 0; cb < cout; cb += VB) {
        vf g[V] = { 0 };                   /* set by the first tile */
        int t0 = 0;
        for (; t0 + R <= pairs; t0 += R)
            wino_block(X, wc->K, W, cb, bias + cb, pairs, y + cb, ys, gmax, g, t0, R);
        if (pairs % R)
            wino_block(X, wc->K, W, cb, bias + cb, pairs, y + cb, ys, gmax, g, t0, pairs % R);
    }
}

void NET_FAST_FORWARD(const net_model *m, net_scratch *s, const float *x, float *logits);

void NET_FAST_FORWARD(const net_model *m, net_scratch *s, const float *x, float *logits)
{
    const struct net_fast_pack *p = m->fast;
    float *xp = s->buf + NET_FAST_XPAD;
    float *p1 = s->buf + NET_FAST_P1;
    float *a2 = s->buf + NET_FAST_A2;
    float *a3 = s->buf + NET_FAST_A3;
    float *feat = s->buf + NET_FAST_FEAT;
    const int P = NET_FAST_PAD;

    /* Zero padding: conv1's 12 samples each side, and the pad rows of each
     * activation buffer (the kernels never write them, but the scratch may
     * have been used by another implementation). */
    memset(xp, 0, NET_C1_P * sizeof *xp);
    memcpy(xp + NET_C1_P, x, NET_WIN * sizeof *xp);
    memset(xp + NET_C1_P + NET_WIN, 0, NET_C1_P * sizeof *xp);
    memset(p1, 0, P * 64 * sizeof *p1);
    memset(p1 + (P + 64) * 64, 0, P * 64 * sizeof *p1);
    memset(a2, 0, P * 64 * sizeof *a2);
    memset(a2 + (P + 32) * 64, 0, P * 64 * sizeof *a2);
    memset(a3, 0, P * 128 * sizeof *a3);
    memset(a3 + (P + 16) * 128, 0, P * 128 * sizeof *a3);

    /* conv1: output t reads xp[8 t + j], j < 32: rows of stride 8, K = 32. */
    conv_pool(xp, NET_C1_S, NET_C1_K, p->conv1, m->conv1.b, NET_C1_OUT, NET_C1_LEN,
              p1 + P * 64, 64, 0);
    float *wx = s->buf + NET_FAST_WX;
    for (int br = 0; br < NET_BRANCHES; br++) {
        const struct net_conv *c = m->branch[br];
        int k = c[0].k, pad = c[0].pad;
        wino_conv_pool(p1 + (P - pad) * 64, 64, k, 32, &p->conv[br][0], c[0].b, 64, wx,
                       a2 + P * 64, 64, 0);
        wino_conv_pool(a2 + (P - pad) * 64, 64, k, 16, &p->conv[br][1], c[1].b, 128, wx,
                       a3 + P * 128, 128, 0);
        wino_conv_pool(a3 + (P - pad) * 128, 128, k, 8, &p->conv[br][2], c[2].b, 256, wx,
                       feat + br * 256, 0, 1);
    }

    s->feat = feat;

    /* fc: vector partial sums (a scalar reduction would be one long chain
     * of dependent adds), then one horizontal sum per class. */
    for (int i = 0; i < m->n_classes; i++) {
        const float *w = m->fc_w + (size_t)i * NET_FEATURES;
        vf acc = {0};
        for (int j = 0; j < NET_FEATURES; j += VW) {
            vfu wv, fv;
            memcpy(&wv, w + j, sizeof wv);
            memcpy(&fv, feat + j, sizeof fv);
            acc += wv * fv;
        }
        float sum = 0;
        for (int l = 0; l < VW; l++)
            sum += acc[l];
        logits[i] = sum + m->fc_b[i];
    }
}
