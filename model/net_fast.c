/* SPDX-License-Identifier: Apache-2.0 */
/* net_fast.c — choosing and preparing the forward implementation.
 *
 * net_fast_init() runs once at the end of net_load(): it picks the fastest
 * implementation this CPU runs (AVX-512F, else AVX2 + FMA, else the portable
 * one), or the one asked for, re-packs the weights into the layout its
 * kernel streams (net_fast.h) and sets m->forward, m->impl and
 * m->scratch_floats.  The reference (net_ref.c) stays the specification;
 * tests/unit/test_net_fast.c checks every implementation against it.
 *
 * Asking for one: the environment variable TRIDENT_NET=ref|generic|avx2|
 * avx512|auto (a debugging knob; it wins), else net_set_impl_override()
 * (the daemon's config), else auto.  Asking for an implementation this CPU
 * or build cannot run fails the load with -ENOTSUP rather than silently
 * running something else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fast.h"

static const struct net_fast_impl *const impls[] = {   /* fastest first */
    &net_fast_avx512, &net_fast_avx2, &net_fast_generic,
};
#define N_IMPLS (sizeof impls / sizeof impls[0])

static char impl_override[16];          /* "" : auto */

static int known_name(const char *name)
{
    if (!strcmp(name, "ref") || !strcmp(name, "auto"))
        return 1;
    for (size_t i = 0; i < N_IMPLS; i++)
        if (!strcmp(name, impls[i]->name))
            return 1;
    return 0;
}

int net_set_impl_override(const char *name)
{
    if (!name || !*name) {
        impl_override[0] = '\0';
        return 0;
    }
    if (!known_name(name))
        return -EINVAL;
    snprintf(impl_override, sizeof impl_override, "%s", name);
    return 0;
}

/* Compiled for this target and supported by this CPU and OS (libgcc's
 * __builtin_cpu_supports also checks that the OS saves the wide registers). */
static int runnable(const struct net_fast_impl *impl)
{
    if (!impl->forward)
        return 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (impl == &net_fast_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    if (impl == &net_fast_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return impl == &net_fast_generic;
}

/* w[co][ci][j] -> [co / vb][j * cin + ci][co % vb] */
static void pack_conv(float *dst, const float *w, int cout, int cin, int k, int vb)
{
    size_t K = (size_t)k * cin;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int j = 0; j < k; j++)
                dst[(size_t)(co / vb) * K * vb + ((size_t)j * cin + ci) * vb + co % vb] =
                    w[((size_t)co * cin + ci) * k + j];
}

/* The transformed weight U of class c for group (size, taps g) of one
 * (co, ci); see net_fast.h. */
static float wino_u(int size, const float *g, int c)
{
    if (size == 3) {
        switch (c) {
        case 0: return g[0];
        case 1: return (g[0] + g[1] + g[2]) / 2;
        case 2: return (g[0] - g[1] + g[2]) / 2;
        default: return g[2];
        }
    }
    if (size == 2)
        return c == 0 ? g[0] : c == 1 ? g[0] + g[1] : g[1];
    return g[0];
}

/* Class c's weights of a branch convolution: [cout / vb][K][vb] with K
 * running over (contributing group, ci). */
static void pack_wino(float *dst, const struct net_conv *cv, int c, int K, int vb)
{
    int size[NET_WG_MAX], j0[NET_WG_MAX];
    int ng = net_fast_groups(cv->k, size, j0);
    for (int co = 0; co < cv->cout; co++) {
        int gi = 0;
        for (int g = 0; g < ng; g++) {
            if (!(net_fast_group_classes(size[g]) >> c & 1))
                continue;
            for (int ci = 0; ci < cv->cin; ci++) {
                const float *w = cv->w + ((size_t)co * cv->cin + ci) * cv->k + j0[g];
                dst[(size_t)(co / vb) * K * vb + ((size_t)gi * cv->cin + ci) * vb + co % vb] =
                    wino_u(size[g], w, c);
            }
            gi++;
        }
    }
}

static int class_k(const struct net_conv *cv, int c)
{
    int size[NET_WG_MAX], j0[NET_WG_MAX], n = 0;
    int ng = net_fast_groups(cv->k, size, j0);
    for (int g = 0; g < ng; g++)
        n += net_fast_group_classes(size[g]) >> c & 1;
    return n * cv->cin;
}

static void pack_free(void *fast)
{
    struct net_fast_pack *p = fast;
    if (p)
        free(p->mem);
    free(p);
}

static int pack(net_model *m, int vb)
{
    struct net_fast_pack *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    size_t n = (size_t)m->conv1.cout * m->conv1.k;
    for (int br = 0; br < NET_BRANCHES; br++)
        for (int l = 0; l < 3; l++)
            for (int c = 0; c < 4; c++)
                n += (size_t)class_k(&m->branch[br][l], c) * m->branch[br][l].cout;
    /* every packed tensor is a multiple of 16 floats, so all stay aligned */
    p->mem = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p->mem) {
        free(p);
        return -ENOMEM;
    }
    p->vb = vb;
    float *at = p->mem;
    p->conv1 = at;
    pack_conv(at, m->conv1.w, m->conv1.cout, m->conv1.cin, m->conv1.k, vb);
    at += (size_t)m->conv1.cout * m->conv1.k;
    for (int br = 0; br < NET_BRANCHES; br++)
        for (int l = 0; l < 3; l++) {
            const struct net_conv *cv = &m->branch[br][l];
            struct net_fast_wconv *wc = &p->conv[br][l];
            for (int c = 0; c < 4; c++) {
                wc->K[c] = class_k(cv, c);
                wc->w[c] = at;
                pack_wino(at, cv, c, wc->K[c], vb);
                at += (size_t)wc->K[c] * cv->cout;
            }
        }
    m->fast = p;
    m->fast_free = pack_free;
    return 0;
}

int net_fast_init(net_model *m)
{
    const char *want = getenv("TRIDENT_NET");
    const char *from = "TRIDENT_NET";
    if (!want || !*want) {
        want = impl_override[0] ? impl_override : "auto";
        from = "implementation";
    }
    size_t ref = net_ref_scratch_floats();
    m->scratch_floats = ref > NET_FAST_SCRATCH ? ref : NET_FAST_SCRATCH;

    if (!strcmp(want, "ref")) {
        m->impl = "ref";
        m->forward = net_forward_ref;
        return 0;
    }
    const struct net_fast_impl *use = NULL;
    for (size_t i = 0; i < N_IMPLS && !use; i++) {
        if (!strcmp(want, "auto") ? runnable(impls[i]) : !strcmp(want, impls[i]->name))
            use = impls[i];
    }
    if (!use) {
        fprintf(stderr, "trident: %s=%s: unknown (ref, generic, avx2, avx512 or auto)\n",
                from, want);
        return -EINVAL;
    }
    if (!runnable(use)) {
        fprintf(stderr, "trident: %s=%s: not supported by this CPU or build\n", from, want);
        return -ENOTSUP;
    }
    int rc = pack(m, use->vb);
    if (rc < 0)
        return rc;
    m->impl = use->name;
    m->forward = use->forward;
    return 0;
}

void net_forward(const net_model *m, net_scratch *s, const float *x, float *logits)
{
    m->forward(m, s, x, logits);
}
