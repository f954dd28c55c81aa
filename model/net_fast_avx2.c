/* SPDX-License-Identifier: Apache-2.0 */
/* net_fast_avx2.c — the fast forward for AVX2 + FMA CPUs.
 *
 * net_fast_body.h with 8-lane vectors.  AVX2 has 16 ymm registers and no
 * embedded broadcast, so the tile is 4 positions x 16 channels: 8
 * accumulators (two FMAs per cycle of latency 4 need 8 in flight), two
 * weight vectors and a broadcast register.  On Zen 4: 281 µs per window;
 * 6 x 16 (which was best for direct convolutions) and 8 x 8 were slower.  Compiled with -mavx2 -mfma
 * (model/kernels.mk) on x86; elsewhere it declares the implementation absent. */
#include "net_fast.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define VW 8
#define V  2
#define R  4
#define VMAX(a, b) ((vf)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define NET_FAST_FORWARD net_fast_forward_avx2
#include "net_fast_body.h"

const struct net_fast_impl net_fast_avx2 = { "avx2", VB, net_fast_forward_avx2 };
#else
const struct net_fast_impl net_fast_avx2 = { "avx2", 16, NULL };
#endif
