# SPDX-License-Identifier: Apache-2.0
"""test_anomaly.py — signal quality, anomaly models and their bad input, through the real daemon.

1. Quality (winfeat.h): a float WAV whose windows are ok, NaN, +Inf, all
   zero, in that order, and a 16-bit WAV at full scale.  NaN/Inf windows
   are "nonfinite", zeros "no_signal", the 16-bit full-scale window
   "clipped": none of them gets a class (label, class, score, probs null);
   ok windows do, and their rms/peak/crest/kurtosis equal numpy's on the
   window.  The final _stats count each quality exactly.
2. An anomaly model (trident-train --normal-only) of two healthy
   recordings of the SpectraQuest rig (../shared/data/hit-sm): replayed
   through the daemon, the third, held-out healthy recording has <= 1 % of
   its windows flagged and every fault recording of that rig >= 99 %; the
   daemon's score equals detector.py's (features and Mahalanobis distance in
   numpy) to 1e-4 relative; _stats counts the anomalous windows.
   The shipped model (with its open-set detector) calls <= 5 % of the
   HIT-SM healthy windows a fault (the rest normal or unknown).
3. Bad input: trident-train --normal-only with one recording, a constant
   signal, a non-finite sample, too little data for the false-alarm rate
   (each: exit 65, one line naming the file or folder, no model); anomaly
   model files with a missing, mis-shaped or unannounced detector tensor
   are refused by tridentd --replay (exit 65) with one line naming the tensor.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import ROOT, SHARED, Tap, binpath, free_endpoint, tmpdir, write_wav  # noqa: E402
from messages import check_message  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "model", "train"))
import detector  # noqa: E402

PY = "/usr/bin/python3"
TRAIN = os.path.join(ROOT, "model", "train", "trident_train.py")
TRIDENTD = binpath("tridentd")
tap = Tap()
T = tmpdir("trident-anomaly-")


def replay(path, model):
    """(messages, final _stats) of tridentd --replay --stdout, checked."""
    r = subprocess.run([TRIDENTD, "--replay", path, "--model", model, "--stdout",
                        "--endpoint", free_endpoint(), "--pace", "fast"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"tridentd exit {r.returncode}: {r.stderr.decode()[-500:]}")
    msgs, stats = [], None
    for line in r.stdout.decode().splitlines():
        d = json.loads(line)
        if "streams" in d:
            stats = d
        elif "from" in d:               # a state change (_events)
            continue
        else:
            msgs.append(check_message(d["stream"], line))
    return msgs, stats


# ---- 1. quality --------------------------------------------------------------
rng = np.random.default_rng(1)
ok = (0.3 * rng.standard_normal(1024)).astype(np.float32)
nan = ok.copy()
nan[100] = np.nan
inf = ok.copy()
inf[7] = np.inf
x = np.concatenate([ok, nan, inf, np.zeros(1024, np.float32)])
write_wav(os.path.join(T, "q.wav"), x, 12000)
model = os.path.join(ROOT, "model", "cwru.safetensors")
msgs, stats = replay(os.path.join(T, "q.wav"), model)
tap.ok("quality: four windows", len(msgs) == 4, f"{len(msgs)}")
want = ["ok", "nonfinite", "nonfinite", "no_signal"]
tap.ok("quality: ok, nonfinite (NaN), nonfinite (Inf), no_signal (zeros)",
       [m["quality"] for m in msgs] == want, f"{[m['quality'] for m in msgs]}")
tap.ok("quality: only the ok window has a class",
       [m["label"] is not None for m in msgs] == [True, False, False, False])
w = ok.astype(np.float64)
rms, peak = np.sqrt((w * w).mean()), np.abs(w).max()
kurt = ((w - w.mean()) ** 4).mean() / w.var() ** 2
got = msgs[0]
tap.ok("health: rms, peak, crest, kurtosis as numpy's",
       all(abs(got[k] - v) <= 1e-5 * abs(v) for k, v in
           (("rms", rms), ("peak", peak), ("crest", peak / rms), ("kurtosis", kurt))),
       f"{got['rms']} {got['peak']} {got['crest']} {got['kurtosis']} vs {rms} {peak} {kurt}")
q = stats["streams"][0]["quality"] if stats else {}
tap.ok("_stats: quality counted", q == {"ok": 1, "no_signal": 1, "clipped": 0, "nonfinite": 2},
       f"{q}")
tap.ok("_stats: every window counted once", stats and sum(q.values()) == 4, f"{q}")

s16 = (0.3 * rng.standard_normal(2048)).clip(-0.9, 0.9)
s16[1500] = 1.0                       # the second window reaches full scale
write_wav(os.path.join(T, "clip.wav"), s16, 12000, "s16")
msgs, stats = replay(os.path.join(T, "clip.wav"), model)
tap.ok("quality: 16-bit full scale is clipped and gets no class",
       [m["quality"] for m in msgs] == ["ok", "clipped"] and msgs[1]["label"] is None,
       f"{[(m['quality'], m['label']) for m in msgs]}")

# ---- 2. an anomaly model of a healthy rig ----------------------------------------
RIG = os.path.join(SHARED, "data", "hit-sm", "spectraquest")
if not os.path.isdir(RIG):
    tap.ok("anomaly model # SKIP no ../shared/data/hit-sm")
else:
    fit = os.path.join(T, "healthy")
    os.makedirs(fit)
    for n in ("Normal_600.wav", "Normal_900.wav"):
        os.symlink(os.path.join(RIG, "normal", n), os.path.join(fit, n))
    am = os.path.join(T, "sq.safetensors")
    r = subprocess.run([PY, TRAIN, "--normal-only", fit, "-o", am], capture_output=True,
                       text=True, timeout=600)
    tap.ok("trident-train --normal-only: exit 0", r.returncode == 0, r.stderr[-300:])
    held, hs = replay(os.path.join(RIG, "normal", "Normal_1200.wav"), am)
    flagged = sum(m["label"] == "anomaly" for m in held) / max(1, len(held))
    tap.ok(f"held-out healthy recording: {100 * flagged:.1f} % flagged (<= 1 %)",
           held and flagged <= 0.01)
    tap.ok("_stats: anomalous windows counted",
           hs and hs["streams"][0]["anomalous"] == sum(m["label"] == "anomaly" for m in held))
    # The daemon's score against the Python reference on the same windows.
    prep = os.path.join(T, "p.f32")
    subprocess.run([binpath("trident-prep"), "--rate", "12000",
                    os.path.join(RIG, "normal", "Normal_1200.wav"), prep], check=True)
    xs = np.fromfile(prep, "<f4")
    import torch  # noqa: F401  (safetensors read through export's reader below)
    with open(am, "rb") as f:
        blob = f.read()
    hl = struct.unpack("<Q", blob[:8])[0]
    hdr = json.loads(blob[8:8 + hl])

    def tensor(name):
        a, b = hdr[name]["data_offsets"]
        return np.frombuffer(blob[8 + hl + a:8 + hl + b], "<f4").reshape(hdr[name]["shape"])
    md = hdr["__metadata__"]
    ref = detector.score(detector.features(np.stack([xs[m["sample"]:m["sample"] + 1024]
                                                     for m in held]),
                                           int(md["trident.detector.bands"]),
                                           md["trident.detector.level"] == "1"),
                         tensor("detector.means"), tensor("detector.precision"))
    c = np.array([m["anomaly"] for m in held])
    rel = np.max(np.abs(c - ref) / np.abs(ref))
    tap.ok(f"C score equals the Python reference (max rel. diff {rel:.1e} <= 1e-4)", rel <= 1e-4)
    worst = 1.0
    for cls in ("inner", "outer"):
        for n in sorted(os.listdir(os.path.join(RIG, cls))):
            fm, _ = replay(os.path.join(RIG, cls, n), am)
            fr = sum(m["label"] == "anomaly" for m in fm) / max(1, len(fm))
            worst = min(worst, fr)
    tap.ok(f"every fault recording of the rig >= 99 % flagged (worst {100 * worst:.1f} %)",
           worst >= 0.99)

# ---- 2b. the shipped model on foreign healthy machines ---------------------------
HIT = os.path.join(SHARED, "data", "hit-sm")
if os.path.isdir(HIT):
    fault = total = 0
    for rig in ("spectraquest", "selfbuilt"):
        for n in sorted(os.listdir(os.path.join(HIT, rig, "normal"))):
            link = os.path.join(T, f"{rig}_{n}")
            os.symlink(os.path.join(HIT, rig, "normal", n), link)
            ms, _ = replay(link, model)
            total += len(ms)
            fault += sum(m["label"] not in ("normal", "unknown") for m in ms)
    tap.ok(f"shipped model: HIT-SM healthy windows called a fault {fault}/{total} (<= 5 %)",
           total > 0 and fault <= 0.05 * total)

# ---- 3. bad input ---------------------------------------------------------------------
def train_bad(name, files, code=65, extra=()):
    d = os.path.join(T, "bad-" + name)
    os.makedirs(d)
    for fn, data in files.items():
        write_wav(os.path.join(d, fn), data, 12000)
    out = os.path.join(T, name + ".safetensors")
    r = subprocess.run([PY, TRAIN, "--normal-only", d, "-o", out, *extra],
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    tap.ok(f"--normal-only {name}: exit {code}, one line naming it, no model",
           r.returncode == code and len(lines) == 1 and d in lines[0] and not os.path.exists(out),
           f"exit {r.returncode}: {r.stderr.strip()[:300]}")


noise = lambda n, s=0: np.random.default_rng(s).standard_normal(n).astype(np.float32)  # noqa: E731
train_bad("one-recording", {"a.wav": noise(60000)})
train_bad("constant", {"a.wav": noise(60000), "b.wav": np.full(60000, 0.5, np.float32)})
bad = noise(60000, 2)
bad[5000] = np.nan
train_bad("nonfinite", {"a.wav": noise(60000), "b.wav": bad})
train_bad("too-little", {"a.wav": noise(4000), "b.wav": noise(4000, 3)})


def model_with(name, md_extra=None, drop=None, shape=None):
    """An anomaly model file from the fitted one with a tensor dropped or re-shaped."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "model", "train"))
    import export
    D = 35
    sd = {"detector.means": torch.zeros(1, D), "detector.precision": torch.eye(D)}
    if drop:
        del sd[drop]
    if shape:
        sd["detector.precision"] = torch.eye(shape)
    md = {"trident.kind": "anomaly", "trident.sample_rate": "12000"}
    md.update(detector.metadata(32, True, 5.0, 0.001))
    md.update(md_extra or {})
    p = os.path.join(T, name + ".safetensors")
    export.save(sd, p, md)
    return p


for name, path, what in (
        ("missing precision", model_with("m1", drop="detector.precision"), "detector.precision"),
        ("mis-shaped precision", model_with("m2", shape=34), "detector.precision"),
        ("no trident.detector", model_with("m3", {"trident.detector": "kmeans"}), "trident.detector")):
    r = subprocess.run([TRIDENTD, "--replay", os.path.join(T, "q.wav"), "--model", path,
                        "--stdout", "--endpoint", free_endpoint()],
                       capture_output=True, text=True, timeout=60)
    # (--replay refuses a bad model as bad data, 65; the service as bad config, 78)
    tap.ok(f"anomaly model with {name}: refused (exit 65) naming {what}",
           r.returncode == 65 and what in r.stderr, f"exit {r.returncode}: {r.stderr[-300:]}")
tap.done()
