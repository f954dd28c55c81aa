"""train.py — train trident's seed Net on the CWRU bearing recordings.

    /usr/bin/python3 model/train/train.py [--seed 0] [--epochs N] [--data DIR]
        [--prep build/bin/trident-prep] [--out model/cwru.safetensors]

Every recording goes through build/bin/trident-prep, which reads it and
resamples it to 12 kHz with the daemon's own code (libsoxr), so the network is
trained on exactly the stream the daemon classifies: the 48 kHz normal
recording is resampled, the 12 kHz faults pass unchanged.  Each 1024-sample
window is normalised with net.normalize(..., "zscore"), as dsp/normalize.c
does it.  Classes, in this order: normal, inner, ball, outer (fault sizes
pooled).

Split (the lead's rule: nothing of the evaluation data is seen in training):
- train: every fault recording at loads 0-2, and the head of load0/normal.wav;
- evaluate: every fault recording at load 3, and the tail of load0/normal.wav.
The normal recording is cut at 48 kHz into head [0, NORMAL_HEAD_END) and tail
[NORMAL_TAIL_START, end), the two written as separate WAVs and resampled
separately, so no evaluation sample reaches a training window even through the
resampler's filter; between them lies a guard of 4096 input samples (1024
samples at 12 kHz).  The tail is exactly tests/fixtures/cwru/normal.wav.

Imbalance: one 3 s normal recording against 27 ten-second fault recordings.
Training windows overlap: hop NORMAL_HOP for normal, FAULT_HOP for faults,
which brings normal to about a sixth of the windows; the loss then weights
each class by the inverse of its window count (normalised to mean 1), so each
class weighs the same in total.

Evaluation windows are exactly the daemon's with --hop 1024: non-overlapping,
from sample 0 of each evaluation recording, a shorter tail dropped.  The model
is not selected on the evaluation split: a fixed number of epochs, then one
evaluation.

Reproducible from --seed: torch, numpy and the shuffling generator are seeded,
deterministic algorithms are on and the thread count is fixed (--threads,
default 1: on a machine shared with other jobs one thread trains about twice
as fast as two).  Results can differ across thread counts and PyTorch builds,
not across runs.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from net import Net, WINDOW, normalize  # noqa: E402
import export  # noqa: E402
from harness import read_wav, write_wav  # noqa: E402

CLASSES = ["normal", "inner", "ball", "outer"]
RATE = 12000
NORM = "zscore"
TRAIN_LOADS = (0, 1, 2)
EVAL_LOAD = 3
# load0/normal.wav (243,938 samples at 48 kHz) cut at 48 kHz sample indices.
NORMAL_HEAD_END = 143840      # train: [0, 143840) -> 35,960 samples at 12 kHz
NORMAL_TAIL_START = 147936    # eval:  [147936, end) = 96,002 samples, 2.0 s
NORMAL_HOP = 32
FAULT_HOP = 512
EVAL_HOP = 1024


def read_wav_f32(path):
    """(samples float32 mono, rate) of a mono float or PCM WAV (for slicing only)."""
    x, rate = read_wav(path)
    if x.shape[1] != 1:
        raise ValueError(f"{path}: expected mono, got {x.shape[1]} channels")
    return x[:, 0].copy(), rate


def write_wav_f32(path, x, rate):
    write_wav(path, np.asarray(x, dtype=np.float32), rate, "float")


def prep(prep_bin, wav, tmpdir):
    """The recording as the daemon classifies it: trident-prep at RATE."""
    out = os.path.join(tmpdir, "prep.f32")
    r = subprocess.run([prep_bin, "--rate", str(RATE), wav, out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{prep_bin} {wav}: exit {r.returncode}: {r.stderr.strip()}")
    x = np.fromfile(out, dtype="<f4").astype(np.float32)
    os.unlink(out)
    return x


def windows(x, hop):
    """Windows of WINDOW samples every hop samples from 0; a short tail is dropped."""
    if len(x) < WINDOW:
        return np.zeros((0, WINDOW), np.float32)
    n = (len(x) - WINDOW) // hop + 1
    idx = np.arange(n)[:, None] * hop + np.arange(WINDOW)[None, :]
    return x[idx]


def normal_slices(data):
    """The normal recording's head (train) and tail (eval) at 48 kHz."""
    x, rate = read_wav_f32(os.path.join(data, "load0", "normal.wav"))
    if rate != 48000 or len(x) <= NORMAL_TAIL_START:
        raise ValueError(f"{data}/load0/normal.wav: expected 48 kHz and > "
                         f"{NORMAL_TAIL_START} samples, got {rate} Hz, {len(x)}")
    return x[:NORMAL_HEAD_END], x[NORMAL_TAIL_START:], rate, len(x)


def load_split(data, prep_bin):
    """Train windows/labels and the evaluation recordings, all through trident-prep."""
    with open(os.path.join(data, "manifest.csv")) as f:
        rows = list(csv.DictReader(f))
    tr_x, tr_y, ev, lengths = [], [], [], {}
    with tempfile.TemporaryDirectory(prefix="trident-train-") as tmp:
        head, tail, rate, lengths["normal_48k"] = normal_slices(data)
        for name, part in (("normal_head", head), ("normal_tail", tail)):
            p = os.path.join(tmp, name + ".wav")
            write_wav_f32(p, part, rate)
            s = prep(prep_bin, p, tmp)
            lengths[name] = len(s)
            if name == "normal_head":
                tr_x.append(windows(s, NORMAL_HOP))
                tr_y.append(np.zeros(len(tr_x[-1]), np.int64))
            else:
                ev.append(("load0/normal.wav[%d:]" % NORMAL_TAIL_START, 0, s))
        for r in rows:
            if r["class"] == "normal":
                continue
            c = CLASSES.index(r["class"])
            load = int(r["load_hp"])
            s = prep(prep_bin, os.path.join(data, r["path"]), tmp)
            if load in TRAIN_LOADS:
                w = windows(s, FAULT_HOP)
                tr_x.append(w)
                tr_y.append(np.full(len(w), c, np.int64))
            elif load == EVAL_LOAD:
                ev.append((r["path"], c, s))
    return np.concatenate(tr_x), np.concatenate(tr_y), ev, lengths


def confusion(y, p, c):
    m = np.zeros((c, c), np.int64)
    np.add.at(m, (y, p), 1)
    return m


def report(m):
    """Per-class precision/recall and accuracy of a confusion matrix [true, pred]."""
    tp = np.diag(m).astype(float)
    rec = tp / np.maximum(m.sum(1), 1)
    prec = tp / np.maximum(m.sum(0), 1)
    return {
        "accuracy": float(tp.sum() / m.sum()),
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]),
                          "windows": int(m[i].sum())} for i, c in enumerate(CLASSES)},
        "confusion": m.tolist(),
    }


def predict(net, w, batch=256):
    out = []
    with torch.no_grad():
        for i in range(0, len(w), batch):
            xb = torch.from_numpy(normalize(w[i:i + batch], NORM)).unsqueeze(1)
            out.append(net(xb).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=os.path.join(
        os.environ.get("TRIDENT_SHARED", os.path.join(ROOT, "..", "shared")), "data", "cwru"))
    ap.add_argument("--prep", default=os.path.join(ROOT, "build", "bin", "trident-prep"))
    ap.add_argument("--out", default=os.path.join(ROOT, "model", "cwru.safetensors"))
    ap.add_argument("--metrics", default=os.path.join(HERE, "cwru-metrics.json"))
    a = ap.parse_args(argv)

    if not os.path.isfile(os.path.join(a.data, "manifest.csv")):
        sys.exit(f"train.py: no CWRU data at {a.data} (set --data or TRIDENT_SHARED)")
    if not os.access(a.prep, os.X_OK):
        sys.exit(f"train.py: {a.prep} not built (run make)")

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)

    t0 = time.time()
    xtr, ytr, ev, lengths = load_split(a.data, a.prep)
    counts = np.bincount(ytr, minlength=len(CLASSES))
    weights = counts.sum() / (len(CLASSES) * counts)
    print(f"train windows per class: {dict(zip(CLASSES, counts.tolist()))}; "
          f"class weights {np.round(weights, 3).tolist()} ({time.time() - t0:.1f} s to prepare)",
          flush=True)
    xtr_n = torch.from_numpy(normalize(xtr, NORM)).unsqueeze(1)
    ytr_t = torch.from_numpy(ytr)
    w_t = torch.tensor(weights, dtype=torch.float32)

    net = Net(len(CLASSES))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(len(ytr_t), generator=gen)
        tot, right, lsum, t1 = 0, 0, 0.0, time.time()
        for i in range(0, len(perm), a.batch):
            idx = perm[i:i + a.batch]
            xb, yb = xtr_n[idx], ytr_t[idx]
            opt.zero_grad()
            out = net(xb)
            loss = F.cross_entropy(out, yb, weight=w_t)
            loss.backward()
            opt.step()
            lsum += loss.item() * len(idx)
            right += (out.argmax(1) == yb).sum().item()
            tot += len(idx)
        sched.step()
        print(f"epoch {ep + 1}/{a.epochs}: loss {lsum / tot:.4f}, train acc "
              f"{right / tot:.4f} ({time.time() - t1:.1f} s)", flush=True)
    net.eval()

    ys, ps, per_file = [], [], {}
    for path, c, s in ev:
        w = windows(s, EVAL_HOP)
        p = predict(net, w)
        ys.append(np.full(len(p), c))
        ps.append(p)
        per_file[path] = {"class": CLASSES[c], "windows": len(p),
                          "correct": int((p == c).sum()),
                          "predicted": {k: int((p == i).sum()) for i, k in enumerate(CLASSES)}}
    m = confusion(np.concatenate(ys), np.concatenate(ps), len(CLASSES))
    rep = report(m)

    print("\nevaluation (load 3 faults + normal tail, hop 1024):")
    print(f"{'class':8} {'precision':>9} {'recall':>7} {'windows':>7}")
    for c in CLASSES:
        r = rep["per_class"][c]
        print(f"{c:8} {r['precision']:9.4f} {r['recall']:7.4f} {r['windows']:7d}")
    print("confusion (rows true, columns predicted: " + ", ".join(CLASSES) + ")")
    for c, row in zip(CLASSES, m):
        print(f"{c:8} " + " ".join(f"{v:5d}" for v in row))
    print(f"accuracy {rep['accuracy']:.4f} ({int(np.trace(m))}/{int(m.sum())})")
    for path, r in per_file.items():
        print(f"  {path:32} {r['correct']:4d}/{r['windows']:<4d} {r['predicted']}")

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    sd = {k: v.detach().float() if v.is_floating_point() else v
          for k, v in net.state_dict().items()}
    export.save(sd, a.out, export.metadata(CLASSES, RATE, NORM))
    metrics = {
        "model": os.path.relpath(os.path.abspath(a.out), ROOT),
        "classes": CLASSES, "sample_rate": RATE, "normalize": NORM, "window": WINDOW,
        "evaluation": rep, "per_file": per_file,
        "split": {
            "train": {"faults": f"load{TRAIN_LOADS[0]}-{TRAIN_LOADS[-1]}, all samples",
                      "normal_48k": [0, NORMAL_HEAD_END],
                      "normal_12k_samples": lengths["normal_head"]},
            "eval": {"faults": f"load{EVAL_LOAD}, all samples",
                     "normal_48k": [NORMAL_TAIL_START, lengths["normal_48k"]],
                     "normal_12k_samples": lengths["normal_tail"]},
            "guard_48k_samples": NORMAL_TAIL_START - NORMAL_HEAD_END,
        },
        "training": {"seed": a.seed, "epochs": a.epochs, "batch": a.batch, "lr": a.lr,
                     "optimizer": "Adam, cosine LR schedule",
                     "threads": a.threads, "normal_hop": NORMAL_HOP, "fault_hop": FAULT_HOP,
                     "eval_hop": EVAL_HOP,
                     "train_windows": dict(zip(CLASSES, counts.tolist())),
                     "class_weights": [float(w) for w in weights],
                     "torch": torch.__version__, "seconds": round(time.time() - t0, 1)},
    }
    with open(a.metrics, "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out} and {a.metrics} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
