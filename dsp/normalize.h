/* SPDX-License-Identifier: Apache-2.0 */
/* normalize.h — per-window normalisation named by the model's metadata.
 *
 * zscore: mean and population standard deviation (divide by N) accumulated in
 * double; y = (x - mean) / std.  A window whose std is below 1e-12 (constant)
 * becomes x - mean, i.e. zeros.  model/train/net.py implements the same
 * function for training and for the PyTorch reference in tests.
 */
#ifndef TRIDENT_NORMALIZE_H
#define TRIDENT_NORMALIZE_H

#include <stddef.h>

enum norm_kind { NORM_NONE, NORM_ZSCORE };

int         norm_parse(const char *name, enum norm_kind *out);  /* "none"/"zscore": 0, else -EINVAL */
const char *norm_name(enum norm_kind k);
/* dst may equal src. */
void        norm_apply(enum norm_kind k, const float *src, float *dst, size_t n);

#endif
