/* SPDX-License-Identifier: Apache-2.0 */
/* net_fast.h — what the fast forward passes share (model/ sources only).
 *
 * net_fast.c chooses an implementation at load time and re-packs the weights
 * for it; each implementation (net_fast_avx512.c, net_fast_avx2.c,
 * net_fast_generic.c) is the same kernel, net_fast_body.h, compiled with its
 * own vector width and instruction-set flags (model/kernels.mk).
 *
 * Packed layout.  Activations are stored channels-last ([t][c], with zero
 * rows for the padding).  conv1 is a small GEMM whose K index runs over the
 * 32 taps; the branch convolutions go through the Winograd transform below,
 * four GEMMs whose K runs over (tap group, input channel).  Weights are
 * stored per block of `vb` output channels as [cout / vb][K][vb], so the
 * kernel's inner loop reads one weight vector per K step and streams every
 * weight exactly once per window.
 */
#ifndef TRIDENT_NET_FAST_H
#define TRIDENT_NET_FAST_H

#include "net_internal.h"

/* Minimal filtering (Winograd) for the branch convolutions: the k taps are
 * cut into groups, F(2,3) while 3 or more taps remain, then F(2,2) or a
 * single tap.  For each pair of outputs (2i, 2i+1), exactly the pair that
 * max-pooling then reduces, each group contributes products to four
 * accumulator classes
 *     A: y0 only   B: y0 and y1   C: y0, minus to y1   D: y1 only
 * so y0 = A + B + C and y1 = B - C + D:
 *     F(2,3), inputs d0..d3, taps g0..g2:
 *         A (d0 - d2) g0   B (d1 + d2)(g0 + g1 + g2)/2   C (d2 - d1)(g0 - g1 + g2)/2
 *         D (d3 - d1) g2                     4 products for 2 outputs, not 6
 *     F(2,2), d0..d2, g0 g1:  A (d0 - d1) g0   B d1 (g0 + g1)   D (d2 - d1) g1
 *     one tap, d0 d1, g0:     A d0 g0          D d1 g0
 * Each class is a GEMM over K = (contributing groups) x cin: k = 3, 5, 7
 * cost 4, 7, 10 products per input channel and output pair instead of 6,
 * 10, 14 (30% fewer multiply-adds over the network).  The transformed
 * weights (U) are made at load, the transformed inputs (V) per layer. */
#define NET_WG_MAX 8

static inline int net_fast_groups(int k, int size[NET_WG_MAX], int j0[NET_WG_MAX])
{
    int n = 0;
    for (int j = 0; j < k && n < NET_WG_MAX; n++) {
        size[n] = k - j >= 3 ? 3 : k - j;
        j0[n] = j;
        j += size[n];
    }
    return n;
}

/* Classes (bit 0 A, 1 B, 2 C, 3 D) a group of `size` taps contributes to. */
static inline int net_fast_group_classes(int size)
{
    return size == 3 ? 0xf : size == 2 ? 0xb : 0x9;
}

struct net_fast_wconv {
    float *w[4];                             /* per class: [cout / vb][K][vb] */
    int    K[4];                             /* groups contributing x cin */
};

struct net_fast_pack {
    int    vb;                               /* output channels per weight block */
    float *conv1;                            /* [64 / vb][32][vb], direct */
    struct net_fast_wconv conv[NET_BRANCHES][3];
    float *mem;                              /* owns all of the above */
};

struct net_fast_impl {
    const char    *name;                     /* "avx512", "avx2", "generic" */
    int            vb;                       /* block width its kernel wants */
    net_forward_fn forward;                  /* NULL: not compiled for this target */
};

extern const struct net_fast_impl net_fast_avx512, net_fast_avx2, net_fast_generic;

/* Scratch layout of the fast forward, in floats; every offset is a multiple
 * of 16 so every buffer is 64-byte aligned like net_scratch.buf.  Each
 * activation buffer keeps NET_FAST_PAD zero rows before and after its rows,
 * enough for the widest kernel (7, padding 3). */
#define NET_FAST_PAD    3
#define NET_FAST_XPAD   0                                   /* 12 zeros, x, 12 zeros: 1048 */
#define NET_FAST_P1     1056                                /* pool1:  (64 + 6) x 64  */
#define NET_FAST_A2     (NET_FAST_P1 + 70 * 64)             /* pool_1: (32 + 6) x 64  */
#define NET_FAST_A3     (NET_FAST_A2 + 38 * 64)             /* pool_2: (16 + 6) x 128 */
#define NET_FAST_FEAT   (NET_FAST_A3 + 22 * 128)            /* cat: 768 */
#define NET_FAST_WX     (NET_FAST_FEAT + NET_FEATURES)      /* transformed inputs */
#define NET_FAST_WX_N   (32 * 10 * 64)                      /* largest: layer 1, k = 7 */
#define NET_FAST_SCRATCH (NET_FAST_WX + NET_FAST_WX_N)

#endif
