/* SPDX-License-Identifier: Apache-2.0 */
/* net_fast_generic.c — the fast forward in portable C for any CPU.
 *
 * net_fast_body.h with 4-lane vectors (SSE2, NEON, or whatever the target
 * has; GCC and Clang lower the vector extensions) and a 4-position x
 * 8-channel tile: 8 accumulators, two weight vectors and a broadcast fit
 * the 16 registers of SSE2 and the 32 of AArch64.  No instruction-set flags: it runs wherever the build runs. */
#include "net_fast.h"

#define VW 4
#define V  2
#define R  4

#define NET_FAST_FORWARD net_fast_forward_generic
#include "net_fast_body.h"

const struct net_fast_impl net_fast_generic = { "generic", VB, net_fast_forward_generic };
