# SPDX-License-Identifier: Apache-2.0
"""train.py — build the shipped default model with trident-train, and measure how it generalises.

    /usr/bin/python3 model/train/train.py [--data DIR] [--prep build/bin/trident-prep]
        [--out model/cwru.safetensors] [--no-cv] [--jobs N]

The shipped model is an ordinary trident-train model (model/train/trident_train.py):
the recipe below is a set of trident-train options, and the recordings are
the CWRU manifest's, given to trident-train as Recordings with a group per
motor load.  Every recording goes through trident-prep, the daemon's own
reader and resampler (12 kHz; the 48 kHz normal recording is resampled).

The shipped model's split (model/README.md):
- train: every fault recording at loads 0-2, and the head of load0/normal.wav,
  cut at 48 kHz into three parts with 4096-sample guards (groups load0-2:
  CWRU has one normal recording, so its parts stand in for the loads);
- evaluate: every fault recording at load 3, and the tail of load0/normal.wav
  (4096 samples after the head; exactly tests/fixtures/cwru/normal.wav).
No validation part: the recipe (epochs, augmentation) was chosen by
cross-validation over loads 0-2 only, so nothing is selected on load 3.

Cross-validation (--cv, on by default; the same recipe, one model per fold,
all by recording): leave one load out (loads 0-3; the normal tail stands for
load 3) and leave one fault size out (0.007, 0.014, 0.021 in, all loads;
one normal part held out with each).  Every fold's model is also asked about
the foreign rigs' healthy recordings in ../shared/data/hit-sm (network label
only).  Results: model/train/cwru-metrics.json (--metrics).
"""
import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import dataset as ds  # noqa: E402
import trident_train as tt  # noqa: E402
from harness import read_wav, write_wav  # noqa: E402

CLASSES = ["normal", "inner", "ball", "outer"]
RATE = 12000
TRAIN_LOADS = (0, 1, 2)
EVAL_LOAD = 3
SIZES = ("0.007", "0.014", "0.021")
# load0/normal.wav (243,938 samples at 48 kHz) cut at 48 kHz sample indices.
NORMAL_HEAD_END = 143840      # train: [0, 143840), in three parts
NORMAL_TAIL_START = 147936    # eval:  [147936, end) = 96,002 samples, 2.0 s
GUARD = 4096
PART = (NORMAL_HEAD_END - 2 * GUARD) // 3    # 45,216 samples (0.94 s) each
EVAL_HOP = 1024
# The recipe: trident-train's options, chosen by the cross-validation over
# loads 0-2 (model/README.md "How the recipe was chosen").
RECIPE = ["--rate", str(RATE), "--classes", ",".join(CLASSES), "--val-fraction", "0",
          "--epochs", "8", "--windows-per-epoch", "2560", "--seed", "0", "--threads", "1",
          "--speed", "0.05", "--snr", "10,40", "--noise-prob", "0.5",
          "--color", "0.8", "--color-db", "10", "--tilt-db", "3"]


def read_wav_f32(path):
    """(samples float32 mono, rate) of a mono float or PCM WAV (for slicing only)."""
    x, rate = read_wav(path)
    if x.shape[1] != 1:
        raise ValueError(f"{path}: expected mono, got {x.shape[1]} channels")
    return x[:, 0].copy(), rate


def write_wav_f32(path, x, rate):
    write_wav(path, np.asarray(x, dtype=np.float32), rate, "float")


def normal_slices(data):
    """The normal recording's head (train) and tail (eval) at 48 kHz."""
    x, rate = read_wav_f32(os.path.join(data, "load0", "normal.wav"))
    if rate != 48000 or len(x) <= NORMAL_TAIL_START:
        raise ValueError(f"{data}/load0/normal.wav: expected 48 kHz and > "
                         f"{NORMAL_TAIL_START} samples, got {rate} Hz, {len(x)}")
    return x[:NORMAL_HEAD_END], x[NORMAL_TAIL_START:], rate, len(x)


def recordings(data, tmp):
    """Every CWRU recording as a trident-train Recording, with .load and
    .size: the faults as they are (group load<L>), the normal head's three
    parts (groups load0-2) and its tail (group load3) as WAVs cut at 48 kHz
    into tmp."""
    with open(os.path.join(data, "manifest.csv")) as f:
        rows = list(csv.DictReader(f))
    recs = []
    head, tail, rate, n = normal_slices(data)
    parts = [(i * (PART + GUARD), i * (PART + GUARD) + PART) for i in range(3)]
    for i, (a, b) in enumerate(parts + [(NORMAL_TAIL_START, n)]):
        p = os.path.join(tmp, f"normal_{i}.wav")
        write_wav_f32(p, (head[a:b] if i < 3 else tail), rate)
        r = ds.Recording(p, "normal", f"load{i}", rel=f"load0/normal.wav[{a}:{b}]")
        r.load, r.size = i, None
        recs.append(r)
    for row in rows:
        if row["class"] == "normal":
            continue
        r = ds.Recording(os.path.join(data, row["path"]), row["class"], f"load{row['load_hp']}",
                         rel=row["path"])
        r.load, r.size = int(row["load_hp"]), row["fault_diameter_in"]
        recs.append(r)
    recs.sort(key=lambda r: (CLASSES.index(r.cls), r.rel))
    return recs


def options(out, prep, data="cwru", extra=()):
    return tt.parse_args(RECIPE + ["--prep", prep, "--force", "--quiet", *extra, data, "-o", out])


def per_recording(net, recs):
    """{rel: {class, windows, correct, predicted: {label: n}}} and (true, pred) lists."""
    per, true, pred = {}, [], []
    for r in recs:
        w = ds.windows(r.samples, EVAL_HOP)
        p = [CLASSES[i] for i in ds.logits(net, w).argmax(1)] if len(w) else []
        per[r.rel] = {"class": r.cls, "windows": len(p), "correct": sum(x == r.cls for x in p),
                      "predicted": {c: p.count(c) for c in CLASSES}}
        true += [r.cls] * len(p)
        pred += p
    return per, true, pred


def summary(per, true, pred):
    import card
    m = card.metrics(true, pred, CLASSES)
    return {"balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"],
            "confusion": m["confusion"], "per_recording": per,
            "per_class_recall": {c: m["per_class"][c]["recall"] for c in CLASSES}}


def published(net, recs, detector):
    """summary() of the labels the daemon publishes: the network's class, or
    "unknown" where the detector's score is above its threshold (counted
    wrong)."""
    import detector as dt
    means, prec, thr, bands, level = detector
    per, true, pred = {}, [], []
    for r in recs:
        w = ds.windows(r.samples, EVAL_HOP)
        unk = dt.score(dt.features(w, bands, level), means, prec) > thr
        p = ["unknown" if u else CLASSES[i] for i, u in zip(ds.logits(net, w).argmax(1), unk)]
        per[r.rel] = {"class": r.cls, "windows": len(p), "correct": sum(x == r.cls for x in p),
                      "predicted": {c: p.count(c) for c in CLASSES + ["unknown"]}}
        true += [r.cls] * len(p)
        pred += p
    return summary(per, true, pred)


def hit_normal(net, hit, detector=None):
    """Per HIT-SM rig: the share of its healthy windows the network calls
    normal, and with the detector (means, precision, threshold) the share
    published normal / unknown / as a fault."""
    out = {}
    for rig, recs in hit.items():
        w = np.concatenate([ds.windows(r.samples, EVAL_HOP) for r in recs])
        lab = ds.logits(net, w).argmax(1)
        o = {"windows": int(len(w)), "network_normal": float((lab == 0).mean())}
        if detector is not None:
            import detector as dt
            means, prec, thr, bands, level = detector
            unk = dt.score(dt.features(w, bands, level), means, prec) > thr
            o.update({"published_normal": float(((lab == 0) & ~unk).mean()),
                      "published_unknown": float(unk.mean()),
                      "published_fault": float(((lab != 0) & ~unk).mean())})
        out[rig] = o
    return out


def load_hit(shared, prep):
    hit = {}
    root = os.path.join(shared, "hit-sm")
    if not os.path.isdir(root):
        return hit
    for rig in sorted(os.listdir(root)):
        d = os.path.join(root, rig, "normal")
        if os.path.isdir(d):
            recs = [ds.Recording(os.path.join(d, f), "normal", rel=f"{rig}/normal/{f}")
                    for f in sorted(os.listdir(d)) if f.endswith(".wav")]
            ds.load_samples(recs, prep, RATE)
            hit[rig] = recs
    return hit


def folds(recs):
    """[(name, train, test)]: leave one load out, then leave one fault size out."""
    out = []
    for L in range(4):
        out.append((f"load {L} out", [r for r in recs if r.load != L],
                    [r for r in recs if r.load == L]))
    for i, s in enumerate(SIZES):
        held = [r for r in recs if r.size == s or (r.size is None and r.load == i)]
        out.append((f"size {s} out", [r for r in recs if r not in held], held))
    return out


def _fold(args):
    name, tr, te, out, prep, hit = args
    a = options(out, prep)
    net = tt.fit(a, CLASSES, tr, [], quiet=True)[0]
    per, true, pred = per_recording(net, te)
    s = summary(per, true, pred)
    s["hit_sm"] = hit_normal(net, hit)
    return name, s


def cross_validate(recs, hit, prep, jobs, tmp):
    work = [(n, tr, te, os.path.join(tmp, "cv.safetensors"), prep, hit) for n, tr, te in folds(recs)]
    if jobs > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(jobs) as pool:
            res = pool.map(_fold, work, chunksize=1)
    else:
        res = [_fold(w) for w in work]
    out = {}
    for name, s in res:
        print(f"  {name:15} class-balanced {100 * s['balanced_accuracy']:6.2f}%  "
              + "  ".join(f"{c} {100 * v:5.1f}%" for c, v in s["per_class_recall"].items())
              + "  HIT-SM normal called normal: "
              + ", ".join(f"{k} {100 * v['network_normal']:.0f}%" for k, v in s["hit_sm"].items()),
              flush=True)
        out[name] = s
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = os.environ.get("TRIDENT_SHARED", os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--data", default=os.path.join(shared, "data", "cwru"))
    ap.add_argument("--hit", default=os.path.join(shared, "data"),
                    help="folder holding hit-sm/ (the foreign rigs' cross-check)")
    ap.add_argument("--prep", default=os.path.join(ROOT, "build", "bin", "trident-prep"))
    ap.add_argument("--out", default=os.path.join(ROOT, "model", "cwru.safetensors"))
    ap.add_argument("--metrics", default=os.path.join(HERE, "cwru-metrics.json"))
    ap.add_argument("--no-cv", action="store_true",
                    help="build the model only (the metrics' cross_validation is kept from the last run)")
    ap.add_argument("--jobs", type=int, default=2, help="folds trained at once (default 2)")
    a = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(a.data, "manifest.csv")):
        sys.exit(f"train.py: no CWRU data at {a.data} (set --data or TRIDENT_SHARED)")
    if not os.access(a.prep, os.X_OK):
        sys.exit(f"train.py: {a.prep} not built (run make)")
    ds.need_torch("train.py")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="trident-cwru-") as tmp:
        recs = recordings(a.data, tmp)
        ds.load_samples(recs, a.prep, RATE)
        hit = load_hit(a.hit, a.prep)
        train_recs = [r for r in recs if r.load in TRAIN_LOADS]
        eval_recs = [r for r in recs if r.load == EVAL_LOAD]
        opts = options(a.out, a.prep, os.path.relpath(a.data, ROOT))
        card = tt.train(opts, recs=(CLASSES, train_recs))
        import export
        import torch
        from net import Net
        sd, meta = export.load(a.out)
        net = Net(len(CLASSES))
        net.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()
                             if not k.startswith("detector.")})
        net.eval()
        det = None
        if "detector.means" in sd:
            det = (np.asarray(sd["detector.means"]), np.asarray(sd["detector.precision"]),
                   float(meta["trident.detector.threshold"]), int(meta["trident.detector.bands"]),
                   meta["trident.detector.level"] == "1")
        per, true, pred = per_recording(net, eval_recs)
        ev = summary(per, true, pred)
        ev["hit_sm"] = hit_normal(net, hit, det)
        if det:
            ev["published"] = published(net, eval_recs, det)
        print(f"\nevaluation (load 3 faults + the normal tail, hop {EVAL_HOP}): class-balanced "
              f"{100 * ev['balanced_accuracy']:.2f}%, accuracy {100 * ev['accuracy']:.2f}%")
        for rel, r in per.items():
            print(f"  {rel:32} {r['correct']:4d}/{r['windows']:<4d} {r['predicted']}")
        for rig, h in ev["hit_sm"].items():
            print(f"  HIT-SM {rig} healthy: network says normal {100 * h['network_normal']:.1f}%"
                  + (f"; published normal {100 * h['published_normal']:.1f}%, unknown "
                     f"{100 * h['published_unknown']:.1f}%, a fault {100 * h['published_fault']:.1f}%"
                     if det else ""))
        if det:
            print(f"  published (the detector's unknown counted wrong): class-balanced "
                  f"{100 * ev['published']['balanced_accuracy']:.2f}%, accuracy "
                  f"{100 * ev['published']['accuracy']:.2f}%")
        cv = None
        if not a.no_cv:
            print("\ncross-validation by recording (one model per fold, the same recipe):", flush=True)
            cv = cross_validate(recs, hit, a.prep, a.jobs, tmp)
    if cv is None:
        try:
            with open(a.metrics) as f:
                cv = json.load(f).get("cross_validation")
        except (OSError, ValueError):
            pass
    metrics = {
        "model": os.path.relpath(os.path.abspath(a.out), ROOT),
        "classes": CLASSES, "sample_rate": RATE, "normalize": "zscore", "window": ds.WINDOW,
        "recipe": "trident-train " + " ".join(RECIPE),
        "sha256": card["sha256"], "openset": card["openset"],
        "split": {"train": [r.rel for r in train_recs], "evaluation": [r.rel for r in eval_recs],
                  "guard_48k_samples": GUARD},
        "evaluation": ev,
        "cross_validation": cv,
        "torch": card["torch"], "seconds": round(time.time() - t0, 1),
    }
    with open(a.metrics, "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out} and {a.metrics} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
