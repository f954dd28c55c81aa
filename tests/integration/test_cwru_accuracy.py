# SPDX-License-Identifier: Apache-2.0
"""test_cwru_accuracy.py — the daemon classifies the CWRU evaluation split as PyTorch does.

tridentd replays the evaluation recordings (the nine load-3 fault WAVs of
../shared/data/cwru and the held-back tail of the normal recording, which is
exactly tests/fixtures/cwru/normal.wav) with the shipped model, --pace fast
--hop 1024, to a python3-zmq SUB.  PyTorch classifies the same windows:
trident-prep (the daemon's reader and resampler) -> 1024-sample windows every
1024 -> net.normalize -> Net with the weights read back from
model/cwru.safetensors.  Checks: every window arrives once; the daemon's label
equals PyTorch's for >= 99.9% of windows; the two accuracies differ by <= 0.1
point.  Prints both accuracies and per-class recall.  The daemon runs twice:
with the fast path chosen for this CPU and with the reference forward
(TRIDENT_NET=ref), so both implementations are held to PyTorch.  Without
../shared it falls back to the shipped fixtures (a smaller evaluation set) and
says so.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CWRU, ROOT, Tap, binpath, free_endpoint, read_wav, subscriber  # noqa: E402

import torch  # noqa: E402
import export  # noqa: E402
from net import Net, WINDOW, normalize  # noqa: E402

MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "cwru")
NORMAL_TAIL_START = 147936  # model/train/train.py: the evaluation tail of load0/normal.wav
HOP = 1024
TIMEOUT = 600.0


def stream_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def recordings(tap):
    """[(path, true class)] of the evaluation split, and a description."""
    if os.path.isfile(os.path.join(CWRU, "manifest.csv")):
        import csv
        with open(os.path.join(CWRU, "manifest.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["load_hp"] == "3" and r["class"] != "normal"]
        full, _ = read_wav(os.path.join(CWRU, "load0", "normal.wav"))
        fix, _ = read_wav(os.path.join(FIXTURES, "normal.wav"))
        tap.ok("fixture normal.wav is exactly load0/normal.wav[%d:]" % NORMAL_TAIL_START,
               np.array_equal(full[NORMAL_TAIL_START:, 0], fix[:, 0]))
        recs = [(os.path.join(FIXTURES, "normal.wav"), "normal")]
        recs += [(os.path.join(CWRU, r["path"]), r["class"]) for r in rows]
        return recs, "load-3 faults of ../shared/data/cwru + the held-back normal tail"
    tap.note(f"no CWRU data at {CWRU}: falling back to the shipped fixtures "
             "(a 3 s slice per fault class), a much smaller evaluation set")
    recs = [(os.path.join(FIXTURES, c + ".wav"), c) for c in ("normal", "inner", "ball", "outer")]
    return recs, "shipped fixtures tests/fixtures/cwru"


def pytorch_labels(prep, net, classes, norm, rate, path, tmp):
    out = os.path.join(tmp, "prep.f32")
    subprocess.run([prep, "--rate", str(rate), path, out], check=True)
    x = np.fromfile(out, dtype="<f4")
    n = (len(x) - WINDOW) // HOP + 1 if len(x) >= WINDOW else 0
    w = x[np.arange(n)[:, None] * HOP + np.arange(WINDOW)[None, :]]
    with torch.no_grad():
        logits = net(torch.from_numpy(normalize(w, norm)).unsqueeze(1)).numpy()
    return [classes[i] for i in logits.argmax(1)]


def daemon_labels(tridentd, files, impl, tap):
    """{stream: {seq: message}} from a fast replay through a real SUB socket,
    with the network implementation `impl` (TRIDENT_NET)."""
    import zmq
    endpoint = free_endpoint()
    ctx = zmq.Context()
    sub = subscriber(endpoint, ctx=ctx)
    cmd = [tridentd, "--replay", *files, "--model", MODEL, "--endpoint", endpoint,
           "--wait-subscribers", "1", "--pace", "fast", "--hop", str(HOP)]
    tap.note(f"TRIDENT_NET={impl} " +
             " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd))
    env = dict(os.environ, TRIDENT_NET=impl)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    got, dups, t0, exited_at = {}, 0, time.time(), None
    try:
        while time.time() - t0 < TIMEOUT:
            if sub.poll(200):
                frames = sub.recv_multipart()
                if len(frames) != 2:
                    continue
                m = json.loads(frames[1])
                if "label" not in m:  # _stats, _events, _state
                    continue
                per = got.setdefault(m["stream"], {})
                dups += m["seq"] in per
                per[m["seq"]] = m
            elif proc.poll() is not None:
                # the daemon exits once everything is published; drain, then stop
                exited_at = exited_at or time.time()
                if time.time() - exited_at > 2.0:
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1]
        sub.close(0)
        ctx.term()
    tap.ok(f"[{impl}] tridentd exits 0", proc.returncode == 0,
           f"status {proc.returncode}: {err.strip()[-300:]}")
    # auto must pick a fast path (never the reference); ref must run the reference
    ran = err.split(", impl ", 1)[1].split(",", 1)[0] if ", impl " in err else "?"
    tap.ok(f"[{impl}] the daemon ran the {impl} implementation ({ran})",
           ran == "ref" if impl == "ref" else ran not in ("ref", "?"), f"start-up log says impl {ran}")
    tap.ok(f"[{impl}] no window is received twice", dups == 0, f"{dups} duplicates")
    return got


def recall_line(y, p, classes):
    parts = []
    for c in classes:
        idx = [i for i, t in enumerate(y) if t == c]
        if idx:
            parts.append(f"{c} {sum(p[i] == c for i in idx) / len(idx):.4f}")
    return ", ".join(parts)


def compare(tap, impl, ref, got, classes):
    """The daemon's labels against PyTorch's for one run."""
    y, p_torch, p_daemon, missing, bad_sample, shown = [], [], [], 0, 0, []
    for s, (c, labels) in ref.items():
        msgs = got.get(s, {})
        for seq, lab in enumerate(labels):
            m = msgs.get(seq)
            if m is None:
                missing += 1
                continue
            bad_sample += m.get("sample") != seq * HOP
            y.append(c)
            p_torch.append(lab)
            # the network's class (the label says "unknown" where the
            # open-set detector rejects the window: counted as wrong below)
            p_daemon.append(classes[m["class"]])
            shown.append(m["label"])
    n_ref = sum(len(v[1]) for v in ref.values())
    extra = sum(len(v) for v in got.values()) - len(y)
    tap.ok(f"[{impl}] every window of every stream arrives ({n_ref} expected)", missing == 0 and extra == 0,
           f"{missing} missing, {extra} unexpected; streams received: {sorted(got)}")
    tap.ok(f"[{impl}] each window's sample is seq * 1024", bad_sample == 0, f"{bad_sample} differ")
    if not y:
        return
    agree = sum(a == b for a, b in zip(p_torch, p_daemon)) / len(y)
    acc_t = sum(a == b for a, b in zip(y, p_torch)) / len(y)
    acc_d = sum(a == b for a, b in zip(y, p_daemon)) / len(y)
    tap.note(f"[{impl}] {len(y)} windows; label agreement daemon/PyTorch {100 * agree:.2f}%")
    tap.note(f"[{impl}] accuracy: PyTorch {100 * acc_t:.2f}%, daemon {100 * acc_d:.2f}%")
    tap.note(f"[{impl}] recall PyTorch: {recall_line(y, p_torch, classes)}")
    tap.note(f"[{impl}] recall daemon:  {recall_line(y, p_daemon, classes)}")
    tap.ok(f"[{impl}] daemon label == PyTorch label for >= 99.9% of windows", agree >= 0.999,
           f"{100 * agree:.3f}%")
    acc_l = sum(a == b for a, b in zip(y, shown)) / len(y)
    tap.note(f"[{impl}] accuracy of the published labels ({shown.count('unknown')} unknown, "
             f"counted wrong): {100 * acc_l:.2f}%")
    tap.ok(f"[{impl}] published labels >= 99% right with unknown counted wrong", acc_l >= 0.99,
           f"{100 * acc_l:.2f}%")
    tap.ok(f"[{impl}] daemon and PyTorch accuracies differ by <= 0.1 point",
           abs(acc_t - acc_d) <= 0.001, f"{100 * acc_t:.2f}% vs {100 * acc_d:.2f}%")


def main():
    tap = Tap()
    try:
        tridentd, prep = binpath("tridentd"), binpath("trident-prep")
    except FileNotFoundError as e:
        tap.ok("tridentd and trident-prep are built", False, str(e))
        tap.done()
    if not tap.ok("model/cwru.safetensors exists", os.path.isfile(MODEL)):
        tap.done()
    torch.set_num_threads(1)
    sd, meta = export.load(MODEL)
    classes = meta["trident.classes"].split(",")
    rate, norm = int(meta["trident.sample_rate"]), meta.get("trident.normalize", "none")
    net = Net(len(classes))
    net.load_state_dict({k: v for k, v in sd.items() if not k.startswith("detector.")})
    net.eval()

    recs, what = recordings(tap)
    tap.note(f"evaluation recordings: {what}")
    ref = {}
    with tempfile.TemporaryDirectory(prefix="trident-cwru-") as tmp:
        for path, c in recs:
            ref[stream_name(path)] = (c, pytorch_labels(prep, net, classes, norm, rate, path, tmp))
    for impl in ("auto", "ref"):
        got = daemon_labels(tridentd, [p for p, _ in recs], impl, tap)
        compare(tap, impl, ref, got, classes)
    tap.done()


if __name__ == "__main__":
    main()
