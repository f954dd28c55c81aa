/* SPDX-License-Identifier: Apache-2.0 */
/* net.h — the three-branch 1-D CNN: an immutable model and per-worker scratch.
 *
 * A net_model is loaded once from a safetensors file (model/FORMAT.md) and
 * never changes; any number of workers share it.  Each worker owns one
 * net_scratch, allocated once; net_forward() allocates nothing.
 *
 * net_forward_ref() is the specification: plain C, layer by layer as in
 * docs/DESIGN.md.  net_forward() runs the implementation chosen at load time
 * (a fast kernel for this CPU, or the reference when TRIDENT_NET=ref).
 */
#ifndef TRIDENT_NET_H
#define TRIDENT_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "normalize.h"   /* enum norm_kind: trident.normalize */

#define NET_WIN 1024            /* input samples per window */
#define NET_FEATURES 768        /* fc input: 3 branches x 256 */
#define NET_MAX_CLASSES 256

/* trident.kind: a classifier (the network, optionally with an open-set
 * detector) or an anomaly model (a detector of normal data, no network). */
enum net_kind { NET_CLASSIFIER, NET_ANOMALY };

typedef struct net_model net_model;
typedef struct net_scratch net_scratch;

/* Load and validate a model file.  0, or a negative errno with a one-line
 * message naming the file (and tensor) in err. */
int          net_load(const char *path, net_model **out, char *err, size_t errlen);
void         net_destroy(net_model *m);

int          net_classes(const net_model *m);
const char  *net_class_name(const net_model *m, int i);
double       net_sample_rate(const net_model *m);    /* 0: not given, no resampling */
enum norm_kind net_normalize(const net_model *m);
const char  *net_digest(const net_model *m);         /* first 12 hex digits of the file's SHA-256 */
const char  *net_path(const net_model *m);
const char  *net_impl(const net_model *m);           /* "ref", "avx512", ... */

/* Which forward net_load() prepares: "auto" or NULL (the fastest this CPU
 * runs: avx512, avx2, generic), "ref", "generic", "avx2" or "avx512".  The
 * environment variable TRIDENT_NET (same values) wins over it.  Asking for
 * one the CPU cannot run makes net_load() fail with -ENOTSUP.  Call before
 * net_load(), not concurrently with it.  0, or -EINVAL for an unknown name. */
int          net_set_impl_override(const char *name);

net_scratch *net_scratch_create(const net_model *m); /* NULL on ENOMEM */
void         net_scratch_destroy(net_scratch *s);

/* x: NET_WIN samples (already normalised); logits: net_classes() floats. */
void         net_forward(const net_model *m, net_scratch *s, const float *x, float *logits);
void         net_forward_ref(const net_model *m, net_scratch *s, const float *x, float *logits);

/* The fc layer's input of the last net_forward()/net_forward_ref() on s:
 * the 768 pooled activations (3 branches x 256), or NULL before any. */
const float *net_features(const net_scratch *s);

/* The detector (model/FORMAT.md "Detector"): spectral features of the raw
 * window (dsp/winfeat.h) and a Mahalanobis distance to the nearest of its
 * centres.  net_detector_dim() is 0 when the model has none. */
enum net_kind net_kind(const net_model *m);
int          net_detector_dim(const net_model *m);
int          net_detector_bands(const net_model *m);
bool         net_detector_level(const net_model *m);
double       net_detector_threshold(const net_model *m);
/* min over centres c of (f - mean_c)' P (f - mean_c) / dim, in double;
 * f: net_detector_dim() values. */
double       net_detector_score(const net_model *m, const double *f);

void         net_softmax(const float *logits, int n, float *probs);
int          net_argmax(const float *v, int n);

#endif
