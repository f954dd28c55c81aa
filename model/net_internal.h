/* SPDX-License-Identifier: Apache-2.0 */
/* net_internal.h — the model's layout, shared by the model/ sources only.
 *
 * net_load() (load.c) validates the file and copies every used tensor into
 * one 64-byte-aligned arena owned by the model (the mapping is unmapped
 * afterwards; F16/BF16 are widened there).  Weights keep PyTorch's layout:
 * conv weight [cout][cin][k], fc weight [classes][768].
 *
 * At the end of net_load(), net_fast_init() (net_fast.c) chooses the
 * implementation for this CPU (or the reference when TRIDENT_NET=ref),
 * re-packs weights into m->fast if it wants, sets m->forward and m->impl,
 * and raises m->scratch_floats to what its kernels need.  Nothing in the
 * model changes after net_load() returns.
 */
#ifndef TRIDENT_NET_INTERNAL_H
#define TRIDENT_NET_INTERNAL_H

#include "net.h"

/* conv1 and pool1 */
#define NET_C1_OUT   64
#define NET_C1_K     32
#define NET_C1_S     8
#define NET_C1_P     12
#define NET_C1_LEN   128     /* conv1 output length */
#define NET_P1_LEN   64      /* after pool1 */
#define NET_BRANCHES 3       /* kernels 3, 5, 7 */

struct net_conv {
    const float *w;          /* [cout][cin][k] */
    const float *b;          /* [cout] */
    int cout, cin, k, stride, pad;
};

typedef void (*net_forward_fn)(const net_model *m, net_scratch *s, const float *x,
                               float *logits);

struct net_model {
    char          *path;
    char           digest[13];
    int            n_classes;
    char         **class_names;       /* n_classes strings */
    double         sample_rate;       /* 0: none */
    enum norm_kind norm;

    struct net_conv conv1;
    struct net_conv branch[NET_BRANCHES][3];   /* [k=3,5,7][layer 1..3] */
    const float   *fc_w;              /* [n_classes][768] */
    const float   *fc_b;              /* [n_classes] */
    float         *arena;             /* owns every weight above */

    /* The detector (FORMAT.md "Detector"); dt_dim 0: none.  An anomaly
     * model (kind NET_ANOMALY) has a detector and no network: conv*, fc_*
     * are NULL and forward is never called. */
    enum net_kind  kind;
    int            dt_bands, dt_dim, dt_centres;
    bool           dt_level;
    double         dt_threshold;
    const float   *dt_means;          /* [dt_centres][dt_dim] */
    const float   *dt_precision;      /* [dt_dim][dt_dim] */

    const char    *impl;              /* "ref", "avx512", "avx2", "generic", "none" */
    net_forward_fn forward;
    void          *fast;              /* the fast path's packed weights, or NULL */
    void         (*fast_free)(void *fast);
    size_t         scratch_floats;    /* floats a net_scratch must hold */
};

struct net_scratch {
    float  *buf;                      /* scratch_floats, 64-byte aligned */
    size_t  n;
    const float *feat;                /* the last forward's fc input (NET_FEATURES) */
};

/* net_load() on a file's bytes already in memory (load.c): the same checks,
 * errors named after `name`, nothing kept pointing into buf.  For the fuzz
 * target and for models embedded in a program. */
int    net_load_buffer(const void *buf, size_t size, const char *name, net_model **out,
                       char *err, size_t errlen);

/* Floats the reference forward needs in its scratch. */
size_t net_ref_scratch_floats(void);

/* Choose and prepare the implementation (net_fast.c). 0 or -errno. */
int    net_fast_init(net_model *m);

#endif
