/* net_fast.h — what the fast forward passes share (model/ sources only).
 *
 * net_fast.c chooses an implementation at load time and re-packs the weights
 * for it; each implementation (net_fast_avx512.c, net_fast_avx2.c,
 * net_fast_generic.c) is the same kernel, net_fast_body.h, compiled with its
 * own vector width and instruction-set flags (model/kernels.mk).
 *
 * Packed layout.  Every convolution is computed as a small GEMM whose K index
 * runs over (tap j, input channel ci) as kk = j * cin + ci, because the
 * activations are stored channels-last ([t][c], with zero rows for the
 * padding): the inputs one output position needs are then one contiguous run
 * of k * cin floats.  Weights are stored per block of `vb` output channels as
 * [cout / vb][kk][vb], so the kernel's inner loop reads one weight vector per
 * kk and streams every weight exactly once per window.
 */
#ifndef TRIDENT_NET_FAST_H
#define TRIDENT_NET_FAST_H

#include "net_internal.h"

struct net_fast_pack {
    int    vb;                               /* output channels per weight block */
    float *conv1;                            /* [64 / vb][32][vb] */
    float *conv[NET_BRANCHES][3];            /* [cout / vb][k * cin][vb] */
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
#define NET_FAST_SCRATCH (NET_FAST_FEAT + NET_FEATURES)

#endif
