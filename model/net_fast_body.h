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
 * Why it runs near the machine's FMA peak (DESIGN: ~16 M multiply-adds):
 * every convolution is out[t][co] = b[co] + sum_kk in[t + kk] * w[kk][co]
 * over kk = (tap, input channel), see net_fast.h.  A register tile holds
 * R x V accumulator vectors (R positions x V*VW output channels); per kk it
 * loads V weight vectors and broadcasts R inputs, so the inner loop is one
 * load and R*V fused multiply-adds with broadcast operands, nothing else.
 * With AVX-512, R = 16, V = 1: 16 zmm accumulators, each FMA takes its input
 * as an embedded {1to16} broadcast from L1.  Output-channel blocks are the
 * outer loop, so each weight block is streamed from L3/L2 once and reused
 * from L1 for the other position tiles.  Max-pooling, bias (max(a+b, c+b) =
 * max(a, c) + b) and the final global max are applied to the accumulators
 * before they are stored, straight into the next layer's padded input.
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
    for (int br = 0; br < NET_BRANCHES; br++) {
        const struct net_conv *c = m->branch[br];
        int k = c[0].k, pad = c[0].pad;
        conv_pool(p1 + (P - pad) * 64, 64, k * 64, p->conv[br][0], c[0].b, 64, 64,
                  a2 + P * 64, 64, 0);
        conv_pool(a2 + (P - pad) * 64, 64, k * 64, p->conv[br][1], c[1].b, 128, 32,
                  a3 + P * 128, 128, 0);
        conv_pool(a3 + (P - pad) * 128, 128, k * 128, p->conv[br][2], c[2].b, 256, 16,
                  feat + br * 256, 0, 1);
    }

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
