# SPDX-License-Identifier: Apache-2.0
"""test_publish.py — the publisher through real libzmq sockets.

Drives tests/tools/pub-feed (the real publisher, publish_zmq.c) and
trident-sub against python3-zmq subscribers: delivery from the first message
with --wait, lossless back-pressure towards a slow subscriber, topic
filtering, a subscriber leaving mid-stream, a hard stop of a blocked
publisher, address in use, trident-sub's output and exits, --stdout.  The C
side runs under every build in $TRIDENT_BUILDS that has the tool (ASan, TSan).
"""
import math
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILDS, Tap, binpath, tmpdir  # noqa: E402
from messages import check_message  # noqa: E402

# Run directly (not through tests/run.sh), TSan builds still need the libzmq suppression.
_supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tsan.supp")
if "suppressions=" not in os.environ.get("TSAN_OPTIONS", ""):
    os.environ["TSAN_OPTIONS"] = (os.environ.get("TSAN_OPTIONS", "halt_on_error=1")
                                  + ":suppressions=" + os.path.abspath(_supp))

tap = Tap()
ctx = zmq.Context()
TMP = tmpdir("trident-publish-")
TIMEOUT_MS = 20000


def expected(k, seq, classes=4):
    """pub-feed's synthetic logits for stream k, window seq (same libm sin)."""
    return [float(np.float32(math.sin(0.1 * seq + 1.3 * c + 0.7 * k) * 4.0)) for c in range(classes)]


class Feed:
    """A running pub-feed; endpoints read from its stderr."""

    def __init__(self, build, *args, endpoints=("tcp://127.0.0.1:*",), stdout=None):
        cmd = [binpath("pub-feed", build)]
        for e in endpoints:
            cmd += ["--endpoint", e]
        cmd += [str(a) for a in args]
        self.out_path = stdout
        self.p = subprocess.Popen(cmd, stdout=open(stdout, "wb") if stdout else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.endpoints = []
        self.err_lines = []
        deadline = time.time() + 20
        while len(self.endpoints) < len(endpoints) and time.time() < deadline:
            r, _, _ = select.select([self.p.stderr], [], [], 0.5)
            if not r:
                continue
            line = self.p.stderr.readline().decode(errors="replace")
            if not line:
                break
            self.err_lines.append(line.rstrip("\n"))
            if line.startswith("endpoint: "):
                self.endpoints.append(line[len("endpoint: "):].strip())
        self.ep = self.endpoints[0] if self.endpoints else None

    def finish(self, timeout=60):
        """Wait for exit; return (rc, stderr lines, seconds it reported publishing)."""
        try:
            _, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
            self.err_lines.append("(killed: timeout)")
        self.err_lines += err.decode(errors="replace").splitlines()
        secs = None
        for line in self.err_lines:
            if line.startswith("published "):
                secs = float(line.split()[3])
        return self.p.returncode, self.err_lines, secs


def sub(ep, *topics, rcvhwm=None, rcvbuf=None):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    if rcvhwm is not None:
        s.setsockopt(zmq.RCVHWM, rcvhwm)
    if rcvbuf is not None:
        s.setsockopt(zmq.RCVBUF, rcvbuf)
    s.connect(ep)
    for t in topics or ("",):
        s.setsockopt(zmq.SUBSCRIBE, t.encode())
    return s


def receive(s, n, slow=None):
    """n messages as (topic, body); slow(i) is called after message i."""
    got = []
    try:
        for i in range(n):
            got.append(tuple(s.recv_multipart()))
            if slow:
                slow(i)
    except zmq.Again:
        pass
    return got


def verify(name, got, n, streams, classes=4, only=None):
    """All n messages, each valid, every stream in seq order from 0, exact values."""
    why = ""
    nxt = {}
    if len(got) != n:
        why = f"{len(got)} of {n} messages"
    for frames in got:
        if why:
            break
        if len(frames) != 2:
            why = f"{len(frames)} frames"
            break
        try:
            d = check_message(frames[0], frames[1], classes)
        except AssertionError as e:
            why = str(e)
            break
        k = 0 if streams == 1 else int(d["stream"].rsplit("/", 1)[1])
        if only is not None and k not in only:
            why = f"stream {d['stream']} was not subscribed"
        elif d["seq"] != nxt.get(k, 0):
            why = f"{d['stream']}: seq {d['seq']} where {nxt.get(k, 0)} was due"
        elif (np.array(d["logits"], np.float32).tolist() != expected(k, d["seq"], classes)
              or d["sample"] != d["seq"] * 512):
            why = f"{d['stream']} seq {d['seq']}: values differ from what was published"
        nxt[k] = d["seq"] + 1
    return tap.ok(name, not why, why)


def test_first_message(build, tag):
    """--wait: the subscriber gets every message from the very first one."""
    n, k = 3000, 3
    f = Feed(build, "--wait", 1, "--count", n, "--streams", k)
    s = sub(f.ep)
    got = receive(s, n)
    rc, err, _ = f.finish()
    s.close()
    verify(f"{tag}: --wait 1 delivers all {n} messages from seq 0, in order", got, n, k)
    tap.ok(f"{tag}: pub-feed exits 0", rc == 0, f"rc {rc}: {err[-3:]}")


def test_slow_subscriber(build, tag):
    """NODROP: a subscriber that stalls, then reads slowly, loses nothing, and
    the publisher waits for it instead of running ahead."""
    n = 30000
    base = Feed(build, "--wait", 1, "--count", n, "--hwm", 10)
    s = sub(base.ep)
    got = receive(s, n)
    rc0, err0, fast = base.finish()
    s.close()
    tap.ok(f"{tag}: baseline fast subscriber gets all", len(got) == n and rc0 == 0, f"{len(got)}, rc {rc0}")

    stall = 1.5
    f = Feed(build, "--wait", 1, "--count", n, "--hwm", 10)
    s = sub(f.ep, rcvhwm=10, rcvbuf=8192)
    time.sleep(0.2)     # the subscription reaches the publisher, which starts
    t0 = time.time()
    time.sleep(stall)   # ... while this subscriber reads nothing

    def slowly(i):
        if i % 200 == 199:
            time.sleep(0.002)
    got = receive(s, n, slowly)
    t_sub = time.time() - t0
    rc, err, held = f.finish()
    s.close()
    verify(f"{tag}: slow subscriber (hwm 10, stalls {stall} s) gets all {n} in order", got, n, 1)
    tap.ok(f"{tag}: publisher exits 0 after back-pressure", rc == 0, f"rc {rc}: {err[-3:]}")
    # 30000 messages are far more than hwm + TCP buffers hold (~7000 here):
    # a publisher that did not wait would be done long before the stall ends.
    ok = held is not None and held >= 0.6 * stall
    tap.ok(f"{tag}: publisher was held back by the stalled subscriber ({held} s; subscriber took {t_sub:.2f} s)",
           ok, "it ran ahead of the subscriber")
    tap.note(f"{tag}: free-running {n} msgs in {fast} s; held back: {held} s")


def test_topics(build, tag):
    """SUB prefix filtering selects streams."""
    n, k = 3000, 3
    f = Feed(build, "--wait", 4, "--count", n, "--streams", k)
    a = sub(f.ep, "feed/1")
    b = sub(f.ep, "feed/0", "feed/2")
    c = sub(f.ep, "fe")
    ga = receive(a, n // 3)
    gb = receive(b, 2 * n // 3)
    gc = receive(c, n)
    rc, err, _ = f.finish()
    # nothing more may arrive for a and b
    extra = 0
    for s in (a, b):
        s.setsockopt(zmq.RCVTIMEO, 300)
        extra += len(receive(s, 1))
        s.close()
    c.close()
    verify(f"{tag}: topic feed/1 gets exactly stream feed/1", ga, n // 3, k, only={1})
    verify(f"{tag}: topics feed/0 + feed/2 get exactly those", gb, 2 * n // 3, k, only={0, 2})
    verify(f"{tag}: prefix 'fe' gets every stream", gc, n, k)
    tap.ok(f"{tag}: no message beyond the subscribed topics", extra == 0 and rc == 0, f"{extra} extra, rc {rc}")


def test_leaver(build, tag):
    """A subscriber that stalls and then disconnects mid-stream does not block
    the publisher; the other subscriber still gets everything."""
    n = 20000
    f = Feed(build, "--wait", 2, "--count", n, "--hwm", 10)
    a = sub(f.ep, rcvhwm=10, rcvbuf=8192)
    b = sub(f.ep)
    ga = receive(a, 100)
    gb = []

    # b keeps up until the publisher is stuck on a, then a leaves
    b.setsockopt(zmq.RCVTIMEO, 500)
    while len(gb) < n:
        more = receive(b, n - len(gb))
        gb += more
        if a is not None and (len(more) == 0 or len(gb) > n // 2):
            a.close()
            a = None
            b.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
        elif len(more) == 0:
            break
    if a is not None:
        a.close()
    rc, err, _ = f.finish(timeout=30)
    b.close()
    tap.ok(f"{tag}: the leaving subscriber got its first 100", len(ga) == 100)
    verify(f"{tag}: the staying subscriber gets all {n} after the other left", gb, n, 1)
    tap.ok(f"{tag}: publisher exits 0 after a subscriber left mid-stream", rc == 0, f"rc {rc}: {err[-3:]}")


def test_abort(build, tag):
    """SIGTERM abandons a send blocked by a subscriber that reads nothing:
    pub-feed (publish_set_abort) returns within slice + linger."""
    f = Feed(build, "--wait", 1, "--count", 1000000, "--hwm", 10)
    s = sub(f.ep, rcvhwm=10, rcvbuf=8192)
    time.sleep(1.0)
    t0 = time.time()
    f.p.send_signal(signal.SIGTERM)
    rc, err, _ = f.finish(timeout=15)
    dt = time.time() - t0
    s.close()
    tap.ok(f"{tag}: SIGTERM ends a blocked publisher in {dt:.2f} s (abort flag, linger 2 s)",
           rc == 2 and dt < 4.0, f"rc {rc} after {dt:.2f} s: {err[-2:]}")


def test_address_in_use(build, tag):
    holder = ctx.socket(zmq.PUB)
    holder.setsockopt(zmq.LINGER, 0)
    holder.bind("tcp://127.0.0.1:*")
    ep = holder.getsockopt(zmq.LAST_ENDPOINT).decode()
    f = Feed(build, "--count", 1, endpoints=(ep,))
    rc, err, _ = f.finish()
    holder.close()
    errs = [e for e in err if e]
    ok = rc == 1 and len(errs) == 1 and ep in errs[0] and "Address already in use" in errs[0]
    tap.ok(f"{tag}: endpoint in use is a one-line error naming it", ok, f"rc {rc}: {errs}")


def run_sub(build, *args, timeout=30):
    return subprocess.Popen([binpath("trident-sub", build)] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_trident_sub_and_stdout(build, tag):
    """trident-sub prints exactly the JSON frames; topics and --count work;
    --stdout lines equal the ZeroMQ messages."""
    n, k = 300, 2
    out = os.path.join(TMP, f"stdout-{tag}.jsonl")
    f = Feed(build, "--wait", 3, "--count", n, "--streams", k, "--stdout", stdout=out)
    ts_all = run_sub(build, f.ep, "--count", n)
    ts_one = run_sub(build, "--count", 10, f.ep, "feed/1")
    s = sub(f.ep)
    got = receive(s, n)
    try:
        all_out, all_err = ts_all.communicate(timeout=30)
        one_out, one_err = ts_one.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        ts_all.kill()
        ts_one.kill()
        all_out, all_err = ts_all.communicate()
        one_out, one_err = ts_one.communicate()
    rc, err, _ = f.finish()
    s.close()
    bodies = [b for _, b in got]
    with open(out, "rb") as fh:
        lines = fh.read().split(b"\n")
    tap.ok(f"{tag}: --stdout lines equal the ZeroMQ messages",
           len(bodies) == n and lines[-1] == b"" and lines[:-1] == bodies,
           f"{len(lines) - 1} lines, {len(bodies)} messages")
    tap.ok(f"{tag}: trident-sub prints exactly the JSON frames, one per line, exits 0 at --count",
           ts_all.returncode == 0 and all_out.split(b"\n") == bodies + [b""]
           # (a slow start may earn the one "no messages yet" hint; nothing else)
           and all(b"no messages yet" in ln for ln in all_err.splitlines()),
           f"rc {ts_all.returncode}, {len(all_out.splitlines())} lines, stderr {all_err[:200]!r}")
    want = [b for t, b in got if t == b"feed/1"][:10]
    tap.ok(f"{tag}: trident-sub TOPIC --count 10 prints the first 10 of that topic",
           ts_one.returncode == 0 and one_out.split(b"\n") == want + [b""],
           f"rc {ts_one.returncode}, {one_out[:300]!r}")
    tap.ok(f"{tag}: pub-feed --stdout exits 0", rc == 0, f"rc {rc}: {err[-3:]}")


def test_stdout_only(build, tag):
    out = os.path.join(TMP, f"only-{tag}.jsonl")
    f = Feed(build, "--count", 100, "--streams", 2, "--stdout", endpoints=(), stdout=out)
    rc, err, _ = f.finish()
    with open(out, "rb") as fh:
        lines = fh.read().split(b"\n")
    why = ""
    try:
        for i, line in enumerate(lines[:-1]):
            check_message(f"feed/{i % 2}".encode(), line, 4)
    except AssertionError as e:
        why = str(e)
    tap.ok(f"{tag}: --stdout without endpoints writes every message as a valid line",
           rc == 0 and len(lines) == 101 and lines[-1] == b"" and not why, why or f"rc {rc}, {len(lines)} lines")


def test_trident_sub_edges(build, tag):
    # bad endpoint
    p = run_sub(build, "not-an-endpoint")
    out, err = p.communicate(timeout=10)
    el = err.decode().splitlines()
    tap.ok(f"{tag}: trident-sub bad endpoint: one line naming it, exit 64",
           p.returncode == 64 and len(el) == 1 and "not-an-endpoint" in el[0], f"rc {p.returncode}: {el}")
    # --help / --version
    h = subprocess.run([binpath("trident-sub", build), "--help"], capture_output=True)
    v = subprocess.run([binpath("trident-sub", build), "--version"], capture_output=True)
    tap.ok(f"{tag}: trident-sub --help and --version exit 0",
           h.returncode == 0 and b"usage" in h.stdout and v.returncode == 0 and v.stdout.startswith(b"trident-sub "))
    # SIGTERM and SIGINT -> exit 0 while waiting
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = run_sub(build, "tcp://127.0.0.1:9")
        time.sleep(0.5)
        t0 = time.time()
        p.send_signal(sig)
        try:
            p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        tap.ok(f"{tag}: trident-sub exits 0 on {sig.name}", p.returncode == 0 and time.time() - t0 < 2,
               f"rc {p.returncode}")
    # a message that is not two frames is reported and skipped
    x = ctx.socket(zmq.XPUB)
    x.setsockopt(zmq.LINGER, 1000)
    x.bind("tcp://127.0.0.1:*")
    ep = x.getsockopt(zmq.LAST_ENDPOINT).decode()
    p = run_sub(build, ep, "--count", 1)
    x.setsockopt(zmq.RCVTIMEO, 10000)
    try:
        x.recv()
        x.send_multipart([b"only-one-frame"])
        x.send_multipart([b"t", b"{}", b"third"])
        x.send_multipart([b"t", b'{"ok":1}'])
        out, err = p.communicate(timeout=10)
    except (zmq.Again, subprocess.TimeoutExpired):
        p.kill()
        out, err = p.communicate()
    x.close()
    el = err.decode().splitlines()
    tap.ok(f"{tag}: trident-sub reports and skips 1- and 3-frame messages",
           p.returncode == 0 and out == b'{"ok":1}\n' and len(el) == 2
           and "1 frame" in el[0] and "3 frames" in el[1], f"rc {p.returncode}, out {out!r}, err {el}")


def main():
    builds = []
    for b in BUILDS:
        try:
            binpath("pub-feed", b)
            binpath("trident-sub", b)
            builds.append(b)
        except FileNotFoundError:
            tap.note(f"{b}: pub-feed or trident-sub not built, skipped")
    if not builds:
        tap.ok("pub-feed and trident-sub are built", False, "run make")
        tap.done()
    for i, b in enumerate(builds):
        tag = os.path.basename(b)
        test_first_message(b, tag)
        test_slow_subscriber(b, tag)
        test_leaver(b, tag)
        test_abort(b, tag)
        test_trident_sub_and_stdout(b, tag)
        if i == 0:
            # pure behaviour of the same code: once is enough
            test_topics(b, tag)
            test_address_in_use(b, tag)
            test_stdout_only(b, tag)
            test_trident_sub_edges(b, tag)
    ctx.term()
    tap.done()


if __name__ == "__main__":
    main()
