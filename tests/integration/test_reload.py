# SPDX-License-Identifier: Apache-2.0
"""test_reload.py — SIGHUP on the real daemon: model swap and stream changes.

tridentd runs a configuration file with three looping, real-time paced file
streams and random model A; a python3-zmq SUB socket takes every message
(--wait-subscribers 1) and a datagram socket plays systemd (NOTIFY_SOCKET).
Then, one SIGHUP at a time:

  1. a new file: model B (other weights, other class count, other
     normalisation), stream "keep" untouched, "change" with another hop,
     "gone" removed, "new" added;
  2. the same file pointing at a corrupt model, then at a model with
     another sample rate: refused, says why;
  3. a file with a syntax error: refused, says why (file:line);
  4. SIGTERM: exit 0.

Checks: the `model` field of the messages switches from A to B once and
never back, in the publish order of every stream together (a window
boundary); "keep" has every seq from 0 exactly once across the swap, and its
logits equal PyTorch's — with A before the switch, with B after it; "gone"
is drained (every seq once) and all of it is published before the first
window of "new" (new streams start once removed ones are done); "change" restarts (seq from 0 at the new hop, after its old windows
only); "new" starts; after the refused reloads everything runs on (model B).
Runs against every build in $TRIDENT_BUILDS (TSan and ASan included), and on
the normal build once more with the reference forward (TRIDENT_NET=ref).
"""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402  (also puts model/train on sys.path)
from messages import check_message  # noqa: E402

T = harness.Tap()
torch.set_num_threads(1)
RATE, HOP, WIN = 12000, 512, 1024
TOL = 1e-4
TMP = harness.tmpdir("trident-reload-")
_supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tsan.supp")
if "suppressions=" not in os.environ.get("TSAN_OPTIONS", ""):
    os.environ["TSAN_OPTIONS"] = (os.environ.get("TSAN_OPTIONS", "halt_on_error=1")
                                  + ":suppressions=" + os.path.abspath(_supp))


def logits(m, x, seqs, hop):
    """PyTorch logits of windows seqs of the looping recording x."""
    idx = (np.asarray(seqs)[:, None] * hop + np.arange(WIN)[None, :]) % len(x)
    return harness.torch_logits(m, x[idx])


def conf_text(model, endpoint, streams):
    body = ",\n".join(
        f'  {{ name = "{n}"; type = "file"; path = "{p}"; pace = "realtime"; loop = true; '
        f'hop = {h}; }}' for n, p, h in streams)
    return (f'model = "{model}";\nworkers = 2;\n'
            f'publish = {{ endpoints = [ "{endpoint}" ]; stats_interval = 0.0; }};\n'
            f'streams = (\n{body}\n);\n')


class Collector(threading.Thread):
    """Every message, in arrival (= publish) order, with its arrival time."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.sub = harness.subscriber(endpoint)
        self.msgs, self.bad = [], []
        self.stop = threading.Event()

    def run(self):
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        while not self.stop.is_set():
            if poller.poll(20):
                topic, body = self.sub.recv_multipart()
                if topic.startswith(b"_"):      # _events, _state
                    continue
                try:
                    d = check_message(topic, body)
                except AssertionError as e:
                    self.bad.append(str(e)[:300])
                    continue
                self.msgs.append((time.monotonic(), d))
        self.sub.close()


def contiguous(ds, hop):
    return ([d["seq"] for d in ds] == list(range(len(ds)))
            and all(d["sample"] == d["seq"] * hop for d in ds))


def scenario(build, impl="auto"):
    # impl: the network implementation the daemon runs (TRIDENT_NET); the
    # normal build runs the scenario with both the fast path and the reference.
    tag = os.path.basename(build) + ("-ref" if impl == "ref" else "")
    exe = harness.binpath("tridentd", build)
    slow = os.path.basename(build) != "build"
    A = harness.make_model(os.path.join(TMP, "a.safetensors"), 11, RATE, "zscore",
                           ["normal", "inner", "ball", "outer"])
    B = harness.make_model(os.path.join(TMP, "b.safetensors"), 12, RATE, "none", ["x", "y", "z"])
    rng = np.random.default_rng(5)
    xk = (0.2 * rng.standard_normal(int(RATE * 1.5))).astype(np.float32)
    xo = (0.1 * rng.standard_normal(int(RATE * 1.2))).astype(np.float32)
    keep_wav, other_wav = os.path.join(TMP, "keep.wav"), os.path.join(TMP, "other.wav")
    harness.write_wav(keep_wav, xk, RATE)
    harness.write_wav(other_wav, xo, RATE)
    ep = harness.free_endpoint()
    conf = os.path.join(TMP, f"{tag}.conf")
    with open(conf, "w") as f:
        f.write(conf_text(A["path"], ep, [("keep", keep_wav, HOP), ("gone", other_wav, HOP),
                                          ("change", other_wav, HOP)]))
    nsock = os.path.join(TMP, f"{tag}.notify")
    sd = harness.NotifySocket(nsock)
    col = Collector(ep)
    col.start()
    env = dict(os.environ, NOTIFY_SOCKET=nsock, TRIDENT_NET=impl)
    env.pop("WATCHDOG_USEC", None)
    errpath = os.path.join(TMP, f"{tag}.stderr")
    errf = open(errpath, "w")
    p = subprocess.Popen([exe, "-c", conf, "--wait-subscribers", "1"], env=env,
                         stdout=subprocess.DEVNULL, stderr=errf)
    wait = 3.0 if slow else 1.5

    def stderr_text():
        with open(errpath) as f:
            return f.read()

    try:
        T.ok(f"{tag}: READY=1", sd.wait_for("READY=1", 30) is not None)
        time.sleep(wait)

        # 1. model B, keep untouched, change's hop, gone removed, new added
        with open(conf, "w") as f:
            f.write(conf_text(B["path"], ep, [("keep", keep_wav, HOP), ("change", other_wav, 1024),
                                              ("new", keep_wav, 1024)]))
        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 20, n0)
        rdy = sd.wait_for("READY=1", 30, rel + 1) if rel is not None else None
        T.ok(f"{tag}: reload: RELOADING=1 then READY=1", rdy is not None)
        # Threads started by the reload ("change", "new") must not take the
        # stop and reload signals: only the main thread may have them open.
        open_sig = []
        want = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            if int(tid) == p.pid:
                continue
            try:
                with open(f"/proc/{p.pid}/task/{tid}/status") as f:
                    blk = [ln for ln in f if ln.startswith("SigBlk:")][0]
            except (OSError, IndexError):
                continue            # the thread ended meanwhile
            if int(blk.split()[1], 16) & want != want:
                open_sig.append(f"{tid}: {blk.strip()}")
        T.ok(f"{tag}: reload: every thread but the main one blocks SIGINT/SIGTERM/SIGHUP",
             not open_sig, "; ".join(open_sig))
        time.sleep(wait)

        # 2. a corrupt model: refused, everything runs on
        bad_model = os.path.join(TMP, "corrupt.safetensors")
        with open(bad_model, "wb") as f:
            f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
        with open(conf, "w") as f:
            f.write(conf_text(bad_model, ep, [("keep", keep_wav, HOP)]))
        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 20, n0)
        rdy = sd.wait_for("READY=1", 30, rel + 1) if rel is not None else None
        T.ok(f"{tag}: corrupt model: RELOADING=1 then READY=1", rdy is not None)
        t_bad = time.monotonic()
        time.sleep(wait / 2)
        err = stderr_text()
        line = [ln for ln in err.splitlines() if "reload refused" in ln and bad_model in ln]
        T.ok(f"{tag}: corrupt model: one error line naming it", len(line) == 1, err[-400:])
        sd.pump(0.3)
        status = [m for _, m in sd.msgs[n0:] if m.startswith("STATUS=") and "reload failed" in m]
        T.ok(f"{tag}: corrupt model: STATUS= says the reload failed", len(status) >= 1)

        # 2b. a model at another sample rate: refused (windows are cut at it)
        C = harness.make_model(os.path.join(TMP, "c.safetensors"), 13, 16000, None, ["p", "q"])
        with open(conf, "w") as f:
            f.write(conf_text(C["path"], ep, [("keep", keep_wav, HOP)]))
        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 20, n0)
        rdy = sd.wait_for("READY=1", 30, rel + 1) if rel is not None else None
        time.sleep(0.3)
        err = stderr_text()
        T.ok(f"{tag}: a model at another rate: refused, saying so",
             rdy is not None and any("reload refused" in ln and C["path"] in ln and "16000 Hz differs"
                                     in ln and "windows are cut at that rate" in ln
                                     for ln in err.splitlines()), err[-400:])

        # 3. a syntax error on line 3: refused
        with open(conf, "w") as f:
            f.write('model = "x";\nworkers = 2;\npublish = { endpoints = [ "tcp://a" ]; ;;\n')
        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 20, n0)
        rdy = sd.wait_for("READY=1", 30, rel + 1) if rel is not None else None
        T.ok(f"{tag}: broken config: RELOADING=1 then READY=1", rdy is not None)
        time.sleep(wait / 2)
        err = stderr_text()
        T.ok(f"{tag}: broken config: says why with file:line",
             any("reload refused" in ln and f"{conf}:3:" in ln for ln in err.splitlines()),
             err[-400:])
        T.ok(f"{tag}: still running after the refused reloads", p.poll() is None)

        n0 = len(sd.msgs)
        p.send_signal(signal.SIGTERM)
        T.ok(f"{tag}: STOPPING=1", sd.wait_for("STOPPING=1", 30, n0) is not None)
        rc = p.wait(timeout=60)
        T.ok(f"{tag}: exit 0 after SIGTERM", rc == 0, f"rc={rc} {stderr_text()[-300:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        errf.close()
        time.sleep(0.5)
        col.stop.set()
        col.join()
    err = stderr_text()
    for ln in err.splitlines():
        if any(k in ln for k in ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                                 "ERROR: LeakSanitizer", "runtime error")):
            T.ok(f"{tag}: no sanitizer report", False, err[-1500:])
            break

    # ---- what was published ----------------------------------------------------
    T.ok(f"{tag}: every message follows the contract", not col.bad, "; ".join(col.bad[:2]))
    msgs = [d for _, d in col.msgs]
    by = {}
    for d in msgs:
        by.setdefault(d["stream"], []).append(d)
    digests = [d["model"] for d in msgs]
    first_b = digests.index(B["digest"]) if B["digest"] in digests else None
    T.ok(f"{tag}: the model switches from A to B once, never back (all streams, publish order)",
         first_b is not None and first_b > 0 and set(digests[:first_b]) == {A["digest"]}
         and set(digests[first_b:]) == {B["digest"]},
         f"first B at {first_b}, models {sorted(set(digests))}")

    keep = by.get("keep", [])
    T.ok(f"{tag}: keep: every seq from 0 exactly once across the swap and the refused reloads",
         len(keep) > 20 and contiguous(keep, HOP), f"{len(keep)} messages, seqs "
         f"{[d['seq'] for d in keep][:5]}...")
    km = [d["model"] for d in keep]
    if A["digest"] in km and B["digest"] in km:
        s = km.index(B["digest"])
        T.note(f"{tag}: keep switched at seq {keep[s]['seq']} of {len(keep)}")
        T.ok(f"{tag}: keep: A up to one window, B from the next",
             set(km[:s]) == {A["digest"]} and set(km[s:]) == {B["digest"]})
        ok = True
        why = ""
        for m, ds in ((A, keep[max(0, s - 3):s] + keep[:2]), (B, keep[s:s + 4] + keep[-2:])):
            want = logits(m, xk, [d["seq"] for d in ds], HOP)
            for d, w in zip(ds, want):
                got = np.asarray(d["logits"])
                if got.shape != w.shape or np.abs(got - w).max() > TOL * max(1.0, np.abs(w).max()):
                    ok = False
                    why = f"seq {d['seq']} model {d['model']}: {got} vs {w}"
        T.ok(f"{tag}: keep: logits equal PyTorch's with A before and B after the switch", ok, why)
    else:
        T.ok(f"{tag}: keep saw both models", False, f"{sorted(set(km))}")

    gone = by.get("gone", [])
    pos = {id(d): i for i, d in enumerate(msgs)}
    # New streams start only once the removed ones are drained and published
    # (before READY=1): in publish order, every "gone" precedes every "new".
    first_new = min((pos[id(d)] for d in by.get("new", [])), default=-1)
    T.ok(f"{tag}: gone: drained (every seq once) and silent once the reload is done",
         len(gone) > 5 and contiguous(gone, HOP) and first_new >= 0
         and max(pos[id(d)] for d in gone) < first_new,
         f"{len(gone)} messages, first new at {first_new}")
    T.ok(f"{tag}: gone: all its windows were classified by A or B, none lost",
         all(d["model"] in (A["digest"], B["digest"]) for d in gone))

    ch = by.get("change", [])
    cut = next((i for i in range(1, len(ch)) if ch[i]["seq"] == 0), None)
    T.ok(f"{tag}: change: restarts at the new hop (seq from 0), old windows first",
         cut is not None and contiguous(ch[:cut], HOP) and contiguous(ch[cut:], 1024)
         and len(ch[cut:]) > 5, f"restart at {cut} of {len(ch)}")
    if cut is not None:
        T.ok(f"{tag}: change: its old windows all precede its new ones",
             max(pos[id(d)] for d in ch[:cut]) < min(pos[id(d)] for d in ch[cut:]))
        T.ok(f"{tag}: change: the restarted stream runs on B",
             all(d["model"] == B["digest"] for d in ch[cut:]))

    new = by.get("new", [])
    T.ok(f"{tag}: new: starts (seq from 0), on B", len(new) > 5 and contiguous(new, 1024)
         and all(d["model"] == B["digest"] for d in new), f"{len(new)} messages")
    after = [d for t, d in col.msgs if d["stream"] == "keep" and t > t_bad + 0.3]
    T.ok(f"{tag}: after the refused reloads keep runs on, on B",
         len(after) > 3 and all(d["model"] == B["digest"] for d in after), f"{len(after)}")


def main():
    for b in harness.BUILDS:
        try:
            harness.binpath("tridentd", b)
        except FileNotFoundError:
            continue
        scenario(b)
        if os.path.basename(b) == "build":
            scenario(b, "ref")


main()
T.done()
