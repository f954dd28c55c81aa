# SPDX-License-Identifier: Apache-2.0
"""test_trident_train.py — trident-train end to end, then the daemon and trident-eval.

On a small real subset (../shared/data/hit-sm/spectraquest: normal and inner,
3 recordings each, 51.2 kHz, resampled to 12 kHz by trident-prep), one epoch:
- trident-train exits 0 and writes the model with its metadata and card
  (classes, rate, normalisation, fingerprint, per-recording validation);
- the same seed twice gives identical model bytes;
- deploy: tridentd replays the validation recordings with the model
  (--pace fast --hop 1024) and its labels equal PyTorch's (trident-prep ->
  windows -> net.normalize -> Net) for >= 99.9% of windows;
- trident-eval's confusion matrix equals the one from the daemon's labels and
  the card's validation (PyTorch) matrix;
- trident-eval --channel 1 on a 2-channel copy (another channel in front)
  gives the mono file's labels; labels that are not class names get their
  own column (card.metrics).
Skips cleanly without ../shared.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, SHARED, Tap, binpath, read_wav, tmpdir, write_wav  # noqa: E402

import torch  # noqa: E402
import export  # noqa: E402
import card  # noqa: E402
import dataset as ds  # noqa: E402
from net import Net  # noqa: E402

PY = "/usr/bin/python3"
TRAIN = os.path.join(ROOT, "model", "train", "trident_train.py")
EVAL = os.path.join(ROOT, "model", "train", "trident_eval.py")
SQ = os.path.join(SHARED, "data", "hit-sm", "spectraquest")
PICK = {"normal": ["Normal_600.wav", "Normal_900.wav", "Normal_1200.wav"],
        "inner": ["IR5_600.wav", "IR5_900.wav", "IR5_1200.wav"]}

tap = Tap()
torch.set_num_threads(1)


def env():
    e = dict(os.environ)
    e["TRIDENT_PREP"] = binpath("trident-prep")
    e["TRIDENTD"] = binpath("tridentd")
    return e


def run(script, *args):
    return subprocess.run([PY, script, *args], capture_output=True, text=True, env=env())


def main():
    if not all(os.path.isfile(os.path.join(SQ, c, f)) for c, fs in PICK.items() for f in fs):
        print(f"ok - trident-train end to end # SKIP no HIT-SM data at {SQ}")
        return
    d = tmpdir("trident-train-")
    data = os.path.join(d, "data")
    for c, fs in PICK.items():
        os.makedirs(os.path.join(data, c))
        for f in fs:
            os.symlink(os.path.join(SQ, c, f), os.path.join(data, c, f))
    m1, m2 = os.path.join(d, "m1.safetensors"), os.path.join(d, "m2.safetensors")
    args = [data, "--epochs", "1", "--val-fraction", "0.34", "--seed", "3",
            "--windows-per-epoch", "256"]
    r = run(TRAIN, *args, "-o", m1)
    tap.note(r.stdout.strip().splitlines()[0] if r.stdout.strip() else "no output")
    if not tap.ok("trident-train exits 0", r.returncode == 0, r.stderr.strip()[-400:]):
        tap.done()
    tap.ok("progress shows epoch, loss, validation accuracy, elapsed and time left",
           "epoch   1/1: loss" in r.stdout and "val balanced acc" in r.stdout
           and "elapsed" in r.stdout and "left" in r.stdout, r.stdout[-300:])
    r2 = run(TRAIN, *args, "-o", m2)
    tap.ok("same seed twice: identical model bytes",
           r2.returncode == 0 and open(m1, "rb").read() == open(m2, "rb").read(), r2.stderr[-200:])

    sd, meta = export.load(m1)
    tap.ok("metadata: classes inner,normal, rate 12000, zscore",
           meta.get("trident.classes") == "inner,normal" and meta.get("trident.sample_rate") == "12000"
           and meta.get("trident.normalize") == "zscore", str(meta))
    cj = json.load(open(os.path.join(d, "m1.card.json")))
    tap.ok("card.json and card.md written", os.path.isfile(os.path.join(d, "m1.card.md")))
    tap.ok("card: fingerprint, seed, torch version, per-recording validation",
           len(cj["data_fingerprint"]) == 64 and cj["seed"] == 3 and cj["torch"] == torch.__version__
           and len(cj["validation"]["per_recording"]) == 2, json.dumps(cj)[:300])
    val = cj["data"]["validation"]
    tap.ok("split by recording: one validation recording per class, none in training",
           sorted(v.split("/")[0] for v in val) == ["inner", "normal"]
           and not set(val) & set(cj["data"]["train"]), str(val))

    # PyTorch's labels of the validation recordings' windows
    classes = meta["trident.classes"].split(",")
    net = Net(len(classes))
    net.load_state_dict({k: v for k, v in sd.items() if not k.startswith("detector.")})
    net.eval()
    prep = binpath("trident-prep")
    ref = {}
    for v in val:
        x = ds.prep_one(prep, os.path.join(data, v), 12000)
        ref[v] = [classes[i] for i in ds.logits(net, ds.windows(x, 1024)).argmax(1)]

    # deploy: the daemon on the same recordings, through trident-eval's replay
    import trident_eval
    recs = [ds.Recording(os.path.join(data, v), v.split("/")[0], rel=v) for v in val]
    got = trident_eval.replay(binpath("tridentd"), m1, recs, 1024, 0)
    n = sum(len(v) for v in ref.values())
    agree = sum(a == b for v in val for a, b in zip(ref[v], got.get(v, [])))
    tap.ok(f"the daemon classifies every window ({n})",
           all(len(got.get(v, [])) == len(ref[v]) for v in val), str({k: len(x) for k, x in got.items()}))
    tap.ok("daemon label == PyTorch label for >= 99.9% of windows", n and agree / n >= 0.999,
           f"{agree}/{n}")

    # trident-eval on a folder of the validation recordings
    vdir = os.path.join(d, "val")
    for v in val:
        os.makedirs(os.path.join(vdir, os.path.dirname(v)), exist_ok=True)
        os.symlink(os.path.join(SQ, v), os.path.join(vdir, v))
    r = run(EVAL, "--json", m1, vdir)
    ok = tap.ok("trident-eval exits 0", r.returncode == 0, r.stderr.strip()[-300:])
    if ok:
        ev = json.loads(r.stdout)
        exp = card.metrics([v.split("/")[0] for v in val for _ in got[v]],
                           [p for v in val for p in got[v]], classes)
        tap.ok("trident-eval's confusion == the daemon's labels counted here",
               ev["confusion"] == exp["confusion"], f"{ev['confusion']} vs {exp['confusion']}")
        tap.ok("trident-eval's confusion == the card's validation (PyTorch)",
               ev["confusion"] == cj["validation"]["confusion"],
               f"{ev['confusion']} vs {cj['validation']['confusion']}")
        tap.note(f"validation class-balanced accuracy {100 * ev['balanced_accuracy']:.2f}%")
    r = run(EVAL, m1, vdir)
    tap.ok("trident-eval prints the confusion matrix and class-balanced accuracy",
           r.returncode == 0 and "class-balanced accuracy" in r.stdout and "per recording" in r.stdout,
           r.stdout[-300:] + r.stderr[-200:])

    # multi-channel at another rate: channel 1 of a stereo 51.2 kHz copy
    sdir = os.path.join(d, "stereo")
    v0 = val[0]
    x, rate = read_wav(os.path.join(SQ, v0))
    os.makedirs(os.path.join(sdir, v0.split("/")[0]))
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    write_wav(os.path.join(sdir, v0), np.stack([noise, x[:, 0]], 1), rate)
    r = run(EVAL, "--json", "--channel", "1", m1, sdir)
    ok = r.returncode == 0
    if ok:
        pr = json.loads(r.stdout)["per_recording"][v0]
        ok = pr["windows"] == len(got[v0]) and pr["correct"] == sum(p == v0.split("/")[0] for p in got[v0])
    tap.ok("trident-eval --channel 1 of a 2-channel file == the mono file", ok,
           r.stderr[-300:] + r.stdout[-300:])

    # a manifest with groups (the speed): no group on both sides; a background folder
    man = os.path.join(d, "m.csv")
    with open(man, "w") as f:
        f.write("path,class,group\n")
        for c, fs in PICK.items():
            for fn in fs:
                f.write(f"data/{c}/{fn},{c},{fn.split('_')[1]}\n")
    r = run(TRAIN, man, "-o", os.path.join(d, "g.safetensors"), "--epochs", "1", "--quiet",
            "--val-fraction", "0.34", "--windows-per-epoch", "64")
    ok = r.returncode == 0
    if ok:
        g = json.load(open(os.path.join(d, "g.card.json")))["data"]
        grp = lambda p: p.rsplit("_", 1)[1]  # noqa: E731
        ok = not {grp(p) for p in g["train"]} & {grp(p) for p in g["validation"]} and g["validation"]
    tap.ok("manifest groups never straddle the split", ok, r.stderr[-300:])
    os.makedirs(os.path.join(data, "background"))
    os.symlink(os.path.join(SQ, "outer", "OR5_600.wav"), os.path.join(data, "background", "OR5_600.wav"))
    r = run(TRAIN, data, "-o", os.path.join(d, "b.safetensors"), "--epochs", "1", "--quiet",
            "--val-fraction", "0.34", "--windows-per-epoch", "64")
    ok = r.returncode == 0
    if ok:
        b = json.load(open(os.path.join(d, "b.card.json")))
        ok = b["classes"] == ["inner", "normal"] and b["data"]["background"] == ["background/OR5_600.wav"]
    tap.ok("a background folder is mixed in, not a class", ok, r.stderr[-300:])

    m = card.metrics(["a", "a", "b", "b"], ["a", "unknown", None, "b"], ["a", "b"])
    tap.ok("labels that are not classes (unknown, null) get their own columns",
           m["columns"] == ["a", "b", "null", "unknown"] and m["confusion"] == [[1, 0, 0, 1], [0, 1, 1, 0]]
           and m["balanced_accuracy"] == 0.5, str(m))
    tap.done()


if __name__ == "__main__":
    main()
