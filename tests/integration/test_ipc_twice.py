# SPDX-License-Identifier: Apache-2.0
"""test_ipc_twice.py — two daemons on one ipc:// path.

ZeroMQ unlinks an ipc:// socket file before binding, so a second tridentd
once silently took the path from the first (issue 16, item 4).  Now the
second probes the path with an AF_UNIX connect first and, with a listener
there, exits 69 with one line; the first is still reachable (a subscriber
gets its messages) and exits 0 on SIGTERM.  A stale socket file nobody
listens on is reused.
"""
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-ipc-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    path = os.path.join(TMP, f"{tag}.sock")
    ep = "ipc://" + path
    # a stale socket file: bound, never listened on, closed
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    err1 = open(os.path.join(TMP, f"{tag}.1.err"), "w+")
    p1 = subprocess.Popen([exe, "--endpoint", ep, "--replay", WAV, "--pace", "realtime",
                           "--loop"], stdout=subprocess.DEVNULL, stderr=err1)
    sub = harness.subscriber(ep)
    got1 = sub.poll(60000)
    T.ok(f"{tag}: first daemon reuses a stale socket file and publishes", got1)
    r = subprocess.run([exe, "--endpoint", ep, "--replay", WAV], capture_output=True,
                       text=True, timeout=120)
    T.ok(f"{tag}: second daemon on the same path refused, exit 69",
         r.returncode == 69 and "another process is listening" in r.stderr,
         f"rc={r.returncode} {r.stderr[-300:]}")
    while sub.poll(0):
        sub.recv_multipart()
    T.ok(f"{tag}: first daemon still reachable", sub.poll(60000))
    sub.close()
    p1.send_signal(signal.SIGTERM)
    T.ok(f"{tag}: first daemon exits 0", p1.wait(120) == 0)
T.done()
