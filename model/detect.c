/* SPDX-License-Identifier: Apache-2.0 */
/* detect.c — the detector's score: how far a window's spectral features lie
 * from what the model was trained on.
 *
 * DESIGN (model/FORMAT.md "Detector"; the choice is argued in
 * model/README.md "Knowing when it doesn't know"): a Gaussian with one
 * shared, shrunk covariance, centred on each of the detector's centres (one
 * for an anomaly model: normal; one per class for a classifier's open-set
 * part).  The score is the squared Mahalanobis distance to the nearest
 * centre divided by the dimension, so that in-distribution windows score
 * about 1 whatever the feature count:
 *
 *     score = min_c (f - mu_c)' P (f - mu_c) / D
 *
 * P (the inverse covariance) and the centres are float32 in the file; the
 * arithmetic is double.  D <= FEAT_MAX_DIM (67) and at most 256 centres: at
 * most 4,500 multiply-adds per centre, nothing allocated.  A score above the
 * threshold means "anomaly" for an anomaly model and "unknown" for a
 * classifier (pipeline.c).  model/train/detector.py score() is the
 * reference the tests compare with.
 */
#include "net_internal.h"

#include <math.h>

#include "winfeat.h"

enum net_kind net_kind(const net_model *m) { return m->kind; }
int net_detector_dim(const net_model *m) { return m->dt_dim; }
int net_detector_bands(const net_model *m) { return m->dt_bands; }
bool net_detector_level(const net_model *m) { return m->dt_level; }
double net_detector_threshold(const net_model *m) { return m->dt_threshold; }

double net_detector_score(const net_model *m, const double *f)
{
    const int d = m->dt_dim;
    double best = INFINITY, diff[FEAT_MAX_DIM];

    for (int c = 0; c < m->dt_centres; c++) {
        const float *mu = m->dt_means + (size_t)c * d;
        for (int i = 0; i < d; i++)
            diff[i] = f[i] - mu[i];
        double q = 0;
        for (int i = 0; i < d; i++) {
            const float *row = m->dt_precision + (size_t)i * d;
            double r = 0;
            for (int j = 0; j < d; j++)
                r += row[j] * diff[j];
            q += diff[i] * r;
        }
        if (q < best)
            best = q;
    }
    return best / d;
}
