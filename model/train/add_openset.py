"""add_openset.py — give the shipped CWRU model its open-set detector.

    /usr/bin/python3 model/train/add_openset.py [--data ../shared/data/cwru]
        [--model model/cwru.safetensors]

The network's tensors are kept byte for byte (its logits do not change); the
file gains detector.means / detector.precision and the trident.detector.*
metadata (model/FORMAT.md "Detector").  Fitted on exactly the network's
training split (model/README.md): the fault recordings at loads 0-2 and the
head of load0/normal.wav.  Calibrated out of group: each load is scored by a
fit of the other two (the normal head's two halves stand for loads 0 and
1), and the threshold is the 99.9th percentile of those scores.  Nothing of
the evaluation split (load 3, the normal tail) is used.
"""
import argparse
import csv
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import detector  # noqa: E402
import export  # noqa: E402
import train as cwru  # noqa: E402


def read_st(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    hdr = json.loads(blob[8:8 + n])
    sd = {}
    for k, v in hdr.items():
        if k == "__metadata__" or k.startswith("detector."):
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        sd[k] = torch.from_numpy(np.frombuffer(blob[8 + n + a:8 + n + b], dt)
                                 .reshape(v["shape"]).copy())
    return sd, hdr.get("__metadata__", {})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(
        os.environ.get("TRIDENT_SHARED", os.path.join(ROOT, "..", "shared")), "data", "cwru"))
    ap.add_argument("--model", default=os.path.join(ROOT, "model", "cwru.safetensors"))
    ap.add_argument("--prep", default=os.path.join(ROOT, "build", "bin", "trident-prep"))
    a = ap.parse_args()
    classes = cwru.CLASSES
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        head, _, rate, _ = cwru.normal_slices(a.data)
        p = os.path.join(tmp, "head.wav")
        cwru.write_wav_f32(p, head, rate)
        s = cwru.prep(a.prep, p, tmp)
        half = len(s) // 2
        items.append(("load0", 0, cwru.windows(s[:half], detector.OPENSET_HOP)))
        items.append(("load1", 0, cwru.windows(s[half:], detector.OPENSET_HOP)))
        with open(os.path.join(a.data, "manifest.csv")) as f:
            for r in csv.DictReader(f):
                if r["class"] == "normal" or int(r["load_hp"]) not in cwru.TRAIN_LOADS:
                    continue
                s = cwru.prep(a.prep, os.path.join(a.data, r["path"]), tmp)
                items.append((f"load{r['load_hp']}", classes.index(r["class"]),
                              cwru.windows(s, detector.OPENSET_HOP)))
    tens, md, rep = detector.fit_openset(items, classes)
    if tens is None:
        sys.exit(f"add_openset.py: {md}")
    sd, meta = read_st(a.model)
    meta.update(md)
    sd.update(tens)
    out = a.model + ".tmp"
    export.save(sd, out, meta)
    os.replace(out, a.model)
    print(json.dumps(rep))


if __name__ == "__main__":
    main()
