# SPDX-License-Identifier: Apache-2.0
"""detector.py — trident's detector: spectral features of a raw window, a
shrunk Gaussian around one or more centres, and its calibrated threshold.

The daemon computes the same features (dsp/winfeat.c) and score
(model/detect.c) in C; this module is the reference the tests compare with,
and what `trident-train --normal-only` fits (model/FORMAT.md "Detector").

Features of a 1024-sample raw window x (float64 arithmetic):
  z = (x - mean) / std; P = |rfft(z * hann)|^2, bins 1..512;
  `bands` equal groups of bins: log10(mean P + 1e-10);
  ln(mean z^4) (kurtosis), ln(max |z|) (crest), [log10(rms(x) + 1e-12)] (level).
Score: min over centres of (f - mu)' P (f - mu) / D; P the inverse of a
covariance shrunk towards a scaled identity (Ledoit-Wolf's weight).

Why these features (measured on ../shared/data/hit-sm, model/README.md): a
normal-only model of two healthy recordings of a rig, the threshold from
out-of-recording scores, flagged 100 % of that rig's fault windows and 0 %
of its third, held-out healthy recording, with fault scores 3-6x the
threshold; the same Gaussian on the CWRU network's 768 pooled activations
overlapped (held-out healthy max 0.9-1.9 against fault minima 0.75-1.9).

Calibration never looks at the windows a fit saw: every group (recording,
or manifest group) is scored by a model fitted without it, and the
threshold is the (1 - false_alarm) quantile of those out-of-group scores.
"""
import glob
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset as ds  # noqa: E402

WINDOW = 1024
AUDIO = (".wav", ".flac", ".WAV", ".FLAC")


def features(w, bands=32, level=True):
    """[n, D] features of raw windows w [n, 1024] (float32 or float64)."""
    x = np.asarray(w, np.float32).astype(np.float64).reshape(-1, WINDOW)
    m = x.mean(1, keepdims=True)
    d = x - m
    sd = np.sqrt((d * d).mean(1, keepdims=True))
    sd = np.where(sd < 1e-12, 1.0, sd)
    z = d / sd
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    p = np.abs(np.fft.rfft(z * hann, axis=1)) ** 2
    p = p[:, 1:WINDOW // 2 + 1]
    cols = [np.log10(p.reshape(len(p), bands, -1).mean(2) + 1e-10),
            np.log((z ** 4).mean(1))[:, None], np.log(np.abs(z).max(1))[:, None]]
    if level:
        cols.append(np.log10(np.sqrt((x * x).mean(1)) + 1e-12)[:, None])
    return np.concatenate(cols, axis=1)


def fit(groups):
    """(means [M, D], precision [D, D]) from {centre: [F arrays]}: each
    centre's mean, one covariance pooled over the centres, shrunk."""
    means, resid = [], []
    for c in sorted(groups):
        f = np.concatenate(groups[c])
        mu = f.mean(0)
        means.append(mu)
        resid.append(f - mu)
    x = np.concatenate(resid)
    n, d = x.shape
    s = x.T @ x / n
    mu_t = np.trace(s) / d
    sub = x[np.random.RandomState(0).permutation(n)[:4000]]
    b2 = np.mean([((np.outer(r, r) - s) ** 2).sum() for r in sub]) / n
    d2 = ((s - mu_t * np.eye(d)) ** 2).sum()
    alpha = float(min(1.0, max(0.01, b2 / max(d2, 1e-30))))
    cov = (1 - alpha) * s + alpha * mu_t * np.eye(d)
    prec = np.linalg.inv(cov)
    prec = (prec + prec.T) / 2
    return np.asarray(means, np.float32), prec.astype(np.float32), alpha


def score(f, means, prec):
    """The daemon's score (model/detect.c) in float64 from the stored float32 tensors."""
    f = np.asarray(f, np.float64)
    means = np.asarray(means, np.float32).astype(np.float64)
    prec = np.asarray(prec, np.float32).astype(np.float64)
    d = f.shape[1]
    best = None
    for mu in means:
        x = f - mu
        q = np.einsum("ij,jk,ik->i", x, prec, x) / d
        best = q if best is None else np.minimum(best, q)
    return best


def calibrate(items, false_alarm):
    """Out-of-group scores: items is [(group, centre, F)]; each group is
    scored by a fit on the others.  Returns the scores (concatenated)."""
    groups = sorted({g for g, _, _ in items})
    out = []
    for g in groups:
        rest = {}
        for h, c, f in items:
            if h != g:
                rest.setdefault(c, []).append(f)
        held = [(c, f) for h, c, f in items if h == g]
        if any(c not in rest for c, _ in held):
            continue                    # its centre has no other group: cannot be scored out of group
        m, p, _ = fit(rest)
        keys = sorted(rest)
        for c, f in held:
            out.append(score(f, m[[keys.index(c)]], p))
    return np.concatenate(out) if out else np.zeros(0)


def metadata(bands, level, threshold, false_alarm):
    return {"trident.detector": "spectral", "trident.detector.bands": str(bands),
            "trident.detector.level": "1" if level else "0",
            "trident.detector.threshold": repr(float(threshold)),
            "trident.detector.false_alarm": repr(float(false_alarm))}


def tensors(means, prec):
    import torch
    return {"detector.means": torch.from_numpy(np.ascontiguousarray(means, np.float32)),
            "detector.precision": torch.from_numpy(np.ascontiguousarray(prec, np.float32))}


def find_recordings(data):
    """Every WAV/FLAC below DATA (recursively), sorted; DataError 66 if none."""
    if not os.path.isdir(data):
        raise ds.DataError(ds.EX_NOINPUT, f"{data}: no such folder")
    files = sorted(p for p in glob.glob(os.path.join(data, "**", "*"), recursive=True)
                   if p.endswith(AUDIO) and os.path.isfile(p))
    if not files:
        raise ds.DataError(ds.EX_NOINPUT, f"{data}: no WAV or FLAC recordings below it")
    return files


def train_normal_only(a, out=sys.stdout):
    """trident-train --normal-only: an anomaly model (no network) of DATA's
    healthy recordings.  Needs at least 2 recordings (groups) and enough
    out-of-recording windows for the false-alarm rate asked."""
    import card
    prep = ds.find_prep(a.prep)
    files = find_recordings(a.data)
    bands, level, hop = a.bands, not a.no_level, a.fit_hop
    items = []
    for path in files:
        x = ds.prep_one(prep, path, a.rate, a.channel)
        if len(x) < WINDOW:
            raise ds.DataError(ds.EX_DATAERR, f"{path}: {len(x)} samples at {a.rate} Hz, "
                               f"shorter than one window ({WINDOW})")
        bad = np.flatnonzero(~np.isfinite(x))
        if len(bad):
            raise ds.DataError(ds.EX_DATAERR, f"{path}: non-finite sample at {bad[0]}")
        w = ds.windows(x, hop)
        sd = w.std(1)
        if np.all(sd < 1e-12):
            raise ds.DataError(ds.EX_DATAERR, f"{path}: constant signal: nothing to learn")
        w = w[sd >= 1e-12]
        items.append((path, 0, features(w, bands, level)))
    if len(items) < 2:
        raise ds.DataError(ds.EX_DATAERR, f"{a.data}: 1 recording; --normal-only needs at "
                           "least 2 (the threshold is calibrated on recordings the fit did "
                           "not see): record another")
    oof = calibrate(items, a.false_alarm)
    need = int(np.ceil(1.0 / a.false_alarm))
    if len(oof) < need:
        secs = need * hop / a.rate
        raise ds.DataError(ds.EX_DATAERR, f"{a.data}: {len(oof)} calibration windows, "
                           f"--false-alarm {a.false_alarm:g} needs at least {need} (about "
                           f"{secs:.0f} s of normal recordings at hop {hop}, {a.rate} Hz)")
    thr = float(np.quantile(oof, 1 - a.false_alarm))
    means, prec, alpha = fit({0: [f for _, _, f in items]})
    md = {"trident.kind": "anomaly", "trident.classes": "normal,anomaly",
          "trident.sample_rate": str(a.rate), "trident.normalize": "none"}
    md.update(metadata(bands, level, thr, a.false_alarm))
    card.save_model_atomic(a.output, {}, md, tensors(means, prec))
    per = {os.path.relpath(p, a.data): {"windows": int(len(f)),
                                        "fit_score_p50": float(np.median(score(f, means, prec)))}
           for p, _, f in items}
    summary = {"kind": "anomaly", "rate": a.rate, "bands": bands, "level": level,
               "threshold": thr, "false_alarm": a.false_alarm, "shrinkage": alpha,
               "calibration_windows": int(len(oof)), "recordings": per,
               "fingerprint": None}
    import json
    with open(a.output + ".card.json", "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"anomaly model of {len(items)} recordings ({sum(len(f) for _, _, f in items)} "
          f"windows, {bands} bands{' + level' if level else ''}): threshold {thr:.3f} at "
          f"false alarm {a.false_alarm:g} over {len(oof)} out-of-recording windows; "
          f"wrote {a.output}", file=out)
    return 0


OPENSET_BANDS, OPENSET_LEVEL, OPENSET_HOP = 16, False, 256


def fit_openset(items, classes, false_alarm=0.001, bands=OPENSET_BANDS, level=OPENSET_LEVEL):
    """A classifier's open-set part: one centre per class, one shrunk
    covariance, the threshold the (1 - false_alarm) quantile of
    out-of-group scores.  items: [(group, class index, raw windows)].
    Returns (tensors, metadata, report) or None with the reason when no
    class has two groups to calibrate on.  The level is left out by
    default: the network z-scores every window, so a gain change is no
    reason to call a window unknown."""
    feats = [(g, c, features(w, bands, level)) for g, c, w in items if len(w)]
    oof = calibrate(feats, false_alarm)
    if len(oof) < int(np.ceil(1.0 / false_alarm)):
        return None, (f"{len(oof)} out-of-group windows, {int(np.ceil(1 / false_alarm))} "
                      "needed for the open-set threshold (more recordings per class)")
    thr = float(np.quantile(oof, 1 - false_alarm))
    by = {}
    for _, c, f in feats:
        by.setdefault(c, []).append(f)
    if sorted(by) != list(range(len(classes))):
        return None, "a class has no windows"
    means, prec, alpha = fit(by)
    md = metadata(bands, level, thr, false_alarm)
    return (tensors(means, prec), md,
            {"threshold": thr, "false_alarm": false_alarm, "bands": bands, "level": level,
             "shrinkage": alpha, "calibration_windows": int(len(oof))})
