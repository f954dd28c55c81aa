# SPDX-License-Identifier: Apache-2.0
"""test_churn.py — 100 subscribers come and go during a replay (issue 8).

tridentd --replay plays three 9-s recordings in real time (--pace realtime,
hop 512: ~70 windows/s in all, --stats-interval 1) as streams "bearing_a",
"bearing_b" and "motor".  Three stayers connect before it starts publishing
(--wait-subscribers counts their subscriptions, so the first window already
has them): one subscribed to everything, one to the prefix "bearing", one
to "motor".  While the replay runs, 100 churners connect and leave, several
at a time, in five manners taken in turn:

  0. subscribe to everything, read a few messages, close with linger 0;
  1. subscribe to a prefix ("bearing", "motor", "bearing_a" or "_stats"),
     never read, close after a while (its queue filling meanwhile);
  2. subscribe, read a few, unsubscribe, read on a little, close (linger 100);
  3. connect and close without subscribing;
  4. subscribe and close at once, before the handshake may have finished.

Checks: the daemon exits 0 once the files are done, with no ASan, LSan or
UBSan report on the ASan+UBSan build (ASAN_OPTIONS has detect_leaks=1); each
stayer received exactly the windows of its streams, every seq 0..N-1 once in
order (N from the file's length and the hop) and nothing of any other
stream; the churners that read got messages that follow the contract, of
the topics they asked for.  Runs on the normal build and the ASan+UBSan
build among $TRIDENT_BUILDS (TSan: the real-time replay would fall behind,
which is no churn test).
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from messages import check_message  # noqa: E402

T = harness.Tap()
RATE, HOP, WIN = 12000, 512, 1024
N_CHURN = 100
FIXTURES = os.path.join(harness.ROOT, "tests", "fixtures", "cwru")
MODEL = os.path.join(harness.ROOT, "model", "cwru.safetensors")
TMP = harness.tmpdir("trident-churn-")
os.environ.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

# Stayers: name -> topics subscribed (prefixes); the streams each must get.
STREAMS = ("bearing_a", "bearing_b", "motor")
STAYERS = {"all": [b""], "bearing": [b"bearing"], "motor": [b"motor"]}
CHURN_TOPICS = [b"bearing", b"motor", b"bearing_a", b"_stats"]


def recordings():
    """Three 9-s, 12 kHz files: the shipped recordings, each in another order."""
    parts = [harness.read_wav(os.path.join(FIXTURES, n + ".wav"))[0][:, 0]
             for n in ("inner", "ball", "outer")]
    files, frames = [], {}
    for k, name in enumerate(STREAMS):
        x = np.concatenate([parts[(k + j) % 3] for j in range(3)])
        path = os.path.join(TMP, name + ".wav")
        harness.write_wav(path, x, RATE)
        files.append(path)
        frames[name] = len(x)
    return files, frames


class Stayer(threading.Thread):
    """A subscriber that stays from before the first window to the end."""

    def __init__(self, ctx, endpoint, topics):
        super().__init__(daemon=True)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.connect(endpoint)
        for t in topics:
            self.sub.setsockopt(zmq.SUBSCRIBE, t)
        self.seqs = {}           # stream -> seqs in arrival order
        self.bad = []
        self.stats = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            if not self.sub.poll(20):
                continue
            topic, body = self.sub.recv_multipart()
            if topic == b"_stats":
                self.stats += 1
                continue
            if topic.startswith(b"_"):      # _events, _state
                continue
            try:
                d = check_message(topic, body, n_classes=4)
            except AssertionError as e:
                self.bad.append(str(e)[:200])
                continue
            self.seqs.setdefault(d["stream"], []).append(d["seq"])
        self.sub.close()

    def first_window(self):
        return any(self.seqs.values())


class Churner:
    """One short-lived subscriber; `kind` is the manner (see the docstring)."""

    def __init__(self, ctx, endpoint, i, rng):
        self.kind = i % 5
        self.topic = b"" if self.kind == 0 else CHURN_TOPICS[i % len(CHURN_TOPICS)]
        self.want = int(rng.integers(1, 6))      # messages to read (kinds 0, 2)
        self.life = float(rng.uniform(0.1, 1.2))  # seconds connected (kinds 1, 2)
        self.got = []
        self.bad = []
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 100 if self.kind == 2 else 0)
        self.sock.connect(endpoint)
        if self.kind != 3:
            self.sock.setsockopt(zmq.SUBSCRIBE, self.topic)
        self.born = time.monotonic()
        self.unsubscribed = False

    def step(self):
        """Do what this churner does next; False once it has closed."""
        now = time.monotonic()
        if self.kind in (3, 4):
            return self.close()
        if self.kind == 1:
            return True if now - self.born < self.life else self.close()
        while len(self.got) < self.want and self.sock.poll(0):
            self.take()
        if self.kind == 2 and len(self.got) >= self.want and not self.unsubscribed:
            self.sock.setsockopt(zmq.UNSUBSCRIBE, self.topic)
            self.unsubscribed = True
        done = len(self.got) >= self.want if self.kind == 0 else now - self.born >= self.life
        return self.close() if done or now - self.born > 3 else True

    def take(self):
        topic, body = self.sock.recv_multipart()
        if not topic.startswith(self.topic):
            self.bad.append(f"asked for {self.topic!r}, got {topic!r}")
        elif not topic.startswith(b"_"):
            try:
                check_message(topic, body, n_classes=4)
            except AssertionError as e:
                self.bad.append(str(e)[:200])
        self.got.append(topic)

    def close(self):
        self.sock.close()
        return False


def scenario(build, files, frames):
    tag = os.path.basename(build)
    exe = harness.binpath("tridentd", build)
    ctx = zmq.Context()
    ep = harness.free_endpoint()
    stayers = {n: Stayer(ctx, ep, t) for n, t in STAYERS.items()}
    n_subs = sum(len(t) for t in STAYERS.values())
    errpath = os.path.join(TMP, tag + ".stderr")
    errf = open(errpath, "w")
    p = subprocess.Popen([exe, "--replay", *files, "--model", MODEL, "--hop", str(HOP),
                          "--pace", "realtime", "--endpoint", ep, "--stats-interval", "1",
                          "--wait-subscribers", str(n_subs)],
                         stdout=subprocess.DEVNULL, stderr=errf)
    for s in stayers.values():
        s.start()
    rng = np.random.default_rng(8)
    churners, live = [], []
    rc = None
    try:
        # The churn starts with the first window and is spread over ~6 s of
        # the 9-s replay: a new churner every 60 ms, several alive at once.
        t_first = time.monotonic() + 60
        while time.monotonic() < t_first and not stayers["all"].first_window():
            time.sleep(0.01)
        T.ok(f"{tag}: the replay starts", stayers["all"].first_window())
        next_at = time.monotonic()
        while (len(churners) < N_CHURN or live) and p.poll() is None:
            now = time.monotonic()
            if len(churners) < N_CHURN and now >= next_at:
                c = Churner(ctx, ep, len(churners), rng)
                churners.append(c)
                live.append(c)
                next_at += 0.06
            live = [c for c in live if c.step()]
            time.sleep(0.005)
        for c in live:             # the replay ended first: close what is left
            c.close()
        T.ok(f"{tag}: {N_CHURN} churners came and went while the daemon ran",
             len(churners) == N_CHURN and not live, f"{len(churners)} started, "
             f"daemon exited with {p.returncode} early")
        try:
            rc = p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rc = None
        time.sleep(0.5)            # the stayers take what is still in flight
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        errf.close()
        for s in stayers.values():
            s.stop.set()
            s.join()
        ctx.term()
    with open(errpath) as f:
        err = f.read()
    T.ok(f"{tag}: the replay ends, exit 0", rc == 0, f"rc {rc}: {err.strip()[-400:]}")
    rep = harness.sanitizer_report(err)
    T.ok(f"{tag}: no ASan/LSan/UBSan report", not rep,
         err[err.find(rep):][:1500] if rep else "")

    for name, s in stayers.items():
        want = {st for st in STREAMS if any(st.encode().startswith(t) for t in STAYERS[name])}
        ok, why = set(s.seqs) == want and not s.bad, f"streams {sorted(s.seqs)}; {s.bad[:1]}"
        for st in sorted(want):
            n = (frames[st] - WIN) // HOP + 1
            seqs = s.seqs.get(st, [])
            if seqs != list(range(n)):
                ok = False
                why = f"{st}: {len(seqs)} of {n} windows, {seqs[:3]}...{seqs[-3:]}"
                break
        T.ok(f"{tag}: stayer '{name}' got every window of {', '.join(sorted(want))} once, "
             f"in order, and nothing else", ok, why)
    T.ok(f"{tag}: stayer 'all' got _stats", stayers["all"].stats > 0)

    bad = [b for c in churners for b in c.bad]
    T.ok(f"{tag}: what the churners read follows the contract and their subscriptions",
         not bad, "; ".join(bad[:2]))
    kinds = [0] * 5
    readers = got = 0
    for c in churners:
        kinds[c.kind] += 1
        readers += bool(c.got)
        got += len(c.got)
    T.note(f"{tag}: churners by manner {kinds}; {readers} read {got} messages in all; "
           f"stayers: " + ", ".join(f"{n} {sum(len(v) for v in s.seqs.values())}"
                                   for n, s in stayers.items()))


def main():
    if not os.path.exists(MODEL):
        T.ok("the shipped model exists", False, MODEL)
        T.done()
    files, frames = recordings()
    ran = 0
    for b in harness.BUILDS:
        if os.path.basename(b) not in ("build", "build-address"):
            continue
        try:
            harness.binpath("tridentd", b)
        except FileNotFoundError:
            continue
        scenario(b, files, frames)
        ran += 1
    T.ok("ran on at least one build", ran > 0)
    T.done()


main()
