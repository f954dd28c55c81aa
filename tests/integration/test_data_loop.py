# SPDX-License-Identifier: Apache-2.0
"""test_data_loop.py — record -> learn -> reload -> keep -> label -> train -> reload, for real.

Issue 15, the README's walk-through, end to end with the real daemon,
trident-train, trident-label and Debian's PyTorch, on the HIT-SM selfbuilt rig
(51.2 kHz, a machine the shipped model never saw):
  1. tridentd --record REC with the three normal recordings as file streams:
     one recording per stream in REC, with sidecars;
  2. trident-train --normal-only REC: an anomaly model from those recordings;
  3. a running daemon (an inner-race-fault recording, paced as a device, with
     keep = { ... }) takes it with SIGHUP: the stream is not restarted, the
     windows after the reload carry the new model's digest and are labelled
     "anomaly", and those windows are kept as clips;
  4. trident-label files the anomaly clips into DATA/inner; the recordings go
     to DATA/normal; trident-train DATA writes a classifier (inner, normal);
  5. SIGHUP again: the windows carry the classifier's digest and most are
     "inner".
This shows the loop works; it is not an accuracy figure: the classifier is
asked about the recording its inner clips came from (see the model card for
held-out figures).  Run on the first build of TRIDENT_BUILDS only (the rest
is Python and PyTorch).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import last_stats, windows_of  # noqa: E402

T = harness.Tap()
ROOT = harness.ROOT
PY = "/usr/bin/python3"
SHIPPED = os.path.join(ROOT, "model", "cwru.safetensors")
HIT = os.path.join(harness.SHARED, "data", "hit-sm", "selfbuilt")
TMP = harness.tmpdir("trident-loop-")
build = os.environ.get("TRIDENT_BUILDS", "build").split()[0]
exe = harness.binpath("tridentd", build)
prep = harness.binpath("trident-prep", build)
TRAIN = [PY, os.path.join(ROOT, "model", "train", "trident_train.py"), "--prep", prep, "--quiet"]
LABEL = [PY, os.path.join(ROOT, "model", "train", "trident_label.py")]


class Daemon:
    """tridentd -c conf, its stdout's JSON lines collected as they come."""

    def __init__(self, conf, *extra):
        self.p = subprocess.Popen([exe, "-c", conf, *extra], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.msgs, self.lock = [], threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.msgs.append(m)

    def wait(self, cond, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.p.poll() is None:
            with self.lock:
                if cond(list(self.msgs)):
                    return True
            time.sleep(0.1)
        with self.lock:
            return cond(list(self.msgs))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(10)
        return self.p.returncode, self.p.stderr.read()


def conf_text(model, streams, stats=0.5):
    return (f'model = "{model}";\nworkers = 1;\n'
            f'publish = {{ endpoints = [ "ipc://{TMP}/pub" ]; stdout = true; '
            f'stats_interval = {stats}; }};\nstreams = ( {streams} );\n')


def digest(path):
    r = subprocess.run([exe, "--replay", os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav"),
                        "--model", path, "--stdout", "--stats-interval", "0"],
                       capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        m = json.loads(line)
        if "label" in m:
            return m["model"]
    return None


normals = sorted(glob.glob(os.path.join(HIT, "normal", "*.wav")))
inner = sorted(glob.glob(os.path.join(HIT, "inner", "*.wav")))
if len(normals) < 2 or not inner:
    T.ok(f"HIT-SM selfbuilt recordings in {HIT}", False)
    T.done()

# 1. record a "day" of normal operation
rec = os.path.join(TMP, "rec")
conf1 = os.path.join(TMP, "record.conf")
with open(conf1, "w") as f:
    f.write(conf_text(SHIPPED, ", ".join(
        f'{{ name = "n{i}"; type = "file"; path = "{p}"; pace = "fast"; }}'
        for i, p in enumerate(normals))))
d1 = Daemon(conf1, "--record", rec)
done = d1.wait(lambda ms: all(last_stats(ms, f"n{i}").get("eof") for i in range(len(normals))), 240)
rc, err = d1.stop()
recs = sorted(glob.glob(os.path.join(rec, "*.wav")))
T.ok("1. tridentd --record: every normal recording recorded, with its sidecar",
     done and rc == 0 and len(recs) == len(normals)
     and all(os.path.exists(r[:-4] + ".json") for r in recs), f"rc {rc}, {recs}: {err[-300:]}")

# 2. learn it
anom = os.path.join(TMP, "normal.safetensors")
r = subprocess.run(TRAIN + ["--normal-only", rec, "-o", anom], capture_output=True, text=True,
                   timeout=900)
T.ok("2. trident-train --normal-only on the recordings", r.returncode == 0 and os.path.exists(anom),
     r.stderr[-400:])
anom_d = digest(anom)

# 3. deploy with SIGHUP; keep the anomalies
keep = os.path.join(TMP, "keep")
conf2 = os.path.join(TMP, "run.conf")
stream = (f'{{ name = "m"; type = "file"; path = "{inner[0]}"; pace = "realtime"; loop = true; '
          f'keep = {{ path = "{keep}"; unsure_below = 0.0; unknown = false; events = false; '
          f'max_per_minute = 100000; }}; }}')
with open(conf2, "w") as f:
    f.write(conf_text(SHIPPED, stream))
d = Daemon(conf2)
try:
    started = d.wait(lambda ms: len(windows_of(ms, "m")) >= 5, 120)
    with open(conf2, "w") as f:
        f.write(conf_text(anom, stream))
    d.p.send_signal(signal.SIGHUP)

    def after(ms, dg):
        return [m for m in windows_of(ms, "m") if m["model"] == dg]
    got = d.wait(lambda ms: len(after(ms, anom_d)) >= 40, 180)
    w = after(d.msgs, anom_d)
    n_anom = sum(m["label"] == "anomaly" for m in w)
    T.ok(f"3. SIGHUP: the running stream takes the anomaly model ({anom_d}): "
         f"{n_anom} of {len(w)} inner-fault windows are \"anomaly\"",
         started and got and anom_d and n_anom >= 0.9 * len(w))
    first = [m["seq"] for m in windows_of(d.msgs, "m")]
    T.ok("3. the stream was not restarted (its seq went on)", first == sorted(set(first))
         and first[0] == 0 and first[-1] == len(first) - 1, f"{first[:3]}...{first[-3:]}")
    n_clips = lambda: len(glob.glob(os.path.join(keep, "*-anomaly.json")))  # noqa: E731
    end = time.monotonic() + 60
    while n_clips() < 30 and time.monotonic() < end:
        time.sleep(0.2)
    T.ok(f"3. the anomaly windows are kept as clips ({n_clips()})", n_clips() >= 30)

    # 4. label the clips, train a classifier
    data = os.path.join(TMP, "data")
    r = subprocess.run(LABEL + [keep, "--label", "anomaly", "--to", os.path.join(data, "inner")],
                       capture_output=True, text=True, timeout=120)
    moved = glob.glob(os.path.join(data, "inner", "*.wav"))
    T.ok(f"4. trident-label files the anomaly clips into DATA/inner ({len(moved)})",
         r.returncode == 0 and len(moved) >= 30, r.stderr[-300:])
    os.makedirs(os.path.join(data, "normal"))
    for x in recs:
        shutil.copy(x, os.path.join(data, "normal"))
    clf = os.path.join(TMP, "clf.safetensors")
    r = subprocess.run(TRAIN + [data, "-o", clf, "--epochs", "4", "--windows-per-epoch", "512"],
                       capture_output=True, text=True, timeout=1800)
    T.ok("4. trident-train DATA (the labelled clips and the recordings) writes a classifier",
         r.returncode == 0 and os.path.exists(clf), r.stderr[-400:])
    clf_d = digest(clf)

    # 5. deploy it
    with open(conf2, "w") as f:
        f.write(conf_text(clf, stream))
    d.p.send_signal(signal.SIGHUP)
    got = d.wait(lambda ms: len(after(ms, clf_d)) >= 40, 180)
    w = after(d.msgs, clf_d)
    labels = {m["label"] for m in w}
    n_inner = sum(m["label"] == "inner" for m in w)
    T.ok(f"5. SIGHUP: the classifier ({clf_d}) labels {n_inner} of {len(w)} windows \"inner\"",
         got and clf_d and labels <= {"inner", "normal", "unknown", None} and n_inner > 0.5 * len(w),
         f"labels {sorted(map(str, labels))}")
finally:
    rc, err = d.stop()
T.ok("the daemon exits 0, no sanitizer report", rc == 0 and not harness.sanitizer_report(err),
     f"rc {rc}: {err[-300:]}")
T.done()
