# SPDX-License-Identifier: Apache-2.0
"""test_slow_subscriber.py — a subscriber that reads nothing, in service mode.

tridentd runs a configuration file with one looping, real-time paced file
stream (hop 64: ~190 windows/s) published on an ipc:// endpoint with
hwm 10, to two subscribers (--wait-subscribers 2): one that never reads
(RCVHWM 1, a 4 KB receive buffer) and a healthy one.

  1. publish.nodrop = false (the default): the stuck subscriber loses what
     does not fit, alone; the healthy one keeps receiving every window, in
     seq order, for the whole observation (far past the point where the
     stuck one's buffers are full), and SIGTERM exits 0 at once.
  2. publish.nodrop = true (what --replay does): the stuck subscriber holds
     the publisher, so the healthy one stops receiving — the back-pressure the
     option asks for; SIGTERM then drains until the shutdown deadline
     (DRAIN_DEADLINE_S, 10 s), gives up the rest, says how many results it
     abandoned and exits 0 instead of hanging until SIGKILL.

Runs on the normal build (real-time rates; the sanitizer builds are too slow
for ~190 windows/s).
"""
import json
import os
import signal
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
EXE = harness.binpath("tridentd")
TMP = harness.tmpdir("trident-slowsub-")
MODEL = os.path.join(harness.ROOT, "model", "cwru.safetensors")
WAV = os.path.join(harness.CWRU, "load0", "inner_007.wav")
HOP, RATE = 64, 12000
OBSERVE = 12.0          # s; the stuck subscriber's buffers fill within ~3 s
DEADLINE = 10.0         # DRAIN_DEADLINE_S in daemon/main.c


def start(name, nodrop):
    ep = f"ipc://{TMP}/{name}.ipc"
    conf = os.path.join(TMP, name + ".conf")
    with open(conf, "w") as f:
        f.write(f'model = "{MODEL}";\nworkers = 1;\n'
                f'publish = {{ endpoints = [ "{ep}" ]; hwm = 10; stats_interval = 0.0; '
                f'nodrop = {"true" if nodrop else "false"}; }};\n'
                f'streams = (\n  {{ name = "bench"; type = "file"; path = "{WAV}"; '
                f'pace = "realtime"; loop = true; hop = {HOP}; }}\n);\n')
    err = open(os.path.join(TMP, name + ".err"), "w+")
    p = subprocess.Popen([EXE, "-c", conf, "--wait-subscribers", "2"],
                         stdout=subprocess.DEVNULL, stderr=err)
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.SUB)
    stuck.setsockopt(zmq.LINGER, 0)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.RCVBUF, 4096)
    stuck.connect(ep)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    healthy = harness.subscriber(ep, ctx=ctx)
    return p, err, stuck, healthy


def observe(p, healthy, seconds):
    """(arrival time, seq) of every window the healthy subscriber gets."""
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and p.poll() is None:
        if healthy.poll(20):
            topic, body = healthy.recv_multipart()
            if topic.startswith(b"_"):      # _events, _state
                continue
            got.append((time.monotonic(), json.loads(body)["seq"]))
    return got


def stop(p, err, timeout):
    """SIGTERM; (exit status or None if it hung, seconds to exit, stderr)."""
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    dt = time.monotonic() - t0
    err.seek(0)
    return rc, dt, err.read()


def main():
    if not os.path.exists(WAV) or not os.path.exists(MODEL):
        T.ok("CWRU recording and the shipped model found", False, f"{WAV}, {MODEL}")
        T.done()
    rate = RATE / HOP

    # 1. the service's default: drop for the stuck subscriber only
    p, err, stuck, healthy = start("drop", nodrop=False)
    got = observe(p, healthy, OBSERVE)
    rc, dt, text = stop(p, err, 15)
    stuck.close()
    healthy.close()
    if got:
        t_first = got[0][0]
        tail = [s for t, s in got if t >= t_first + OBSERVE - 3.5]
    else:
        t_first, tail = None, []
    seqs = [s for _, s in got]
    span = got[-1][0] - t_first if got else 0
    T.ok(f"drop: the healthy subscriber receives for the whole {OBSERVE:.0f} s "
         f"({len(got)} windows over {span:.1f} s, {len(tail)} in the last 3 s)",
         span > OBSERVE - 2 and len(tail) >= 0.5 * 3 * rate,
         f"rc {p.returncode}: {text.strip()[-300:]}")
    T.ok("drop: ... every window, in seq order from 0", seqs == list(range(len(seqs))),
         f"{seqs[:5]}...{seqs[-5:]}")
    T.ok(f"drop: SIGTERM exits 0 promptly ({dt:.2f} s)", rc == 0 and dt < 5,
         f"rc {rc}: {text.strip()[-300:]}")

    # 2. publish.nodrop = true: back-pressure, and the shutdown deadline
    p, err, stuck, healthy = start("nodrop", nodrop=True)
    got = observe(p, healthy, 8.0)
    t_end = time.monotonic()
    last = got[-1][0] if got else 0
    T.ok(f"nodrop: the stuck subscriber holds the publisher (healthy one quiet for "
         f"the last {t_end - last:.1f} s of 8)", got and t_end - last > 2.0,
         f"{len(got)} windows")
    rc, dt, text = stop(p, err, DEADLINE + 20)
    stuck.close()
    healthy.close()
    T.ok(f"nodrop: SIGTERM exits 0 after the {DEADLINE:.0f} s drain deadline ({dt:.1f} s)",
         rc == 0 and DEADLINE - 0.5 <= dt <= DEADLINE + 6, f"rc {rc}: {text.strip()[-300:]}")
    T.ok("nodrop: says it gave up and how many results were abandoned",
         "giving up the rest" in text and "results abandoned" in text, text.strip()[-400:])
    T.done()


main()
