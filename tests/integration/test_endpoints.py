# SPDX-License-Identifier: Apache-2.0
"""test_endpoints.py — publish endpoints validated before any bind.

Issue 16, item 7: tcp://HOST:PORT with a numeric IPv4 address, [IPv6] or *,
a port 1..65535 or *, or ipc://PATH of at most 107 bytes; everything else
(inproc, pgm, bogus transports, names like localhost, port 0 or 70000, a
too-long ipc path) is refused: by --check with FILE:LINE and exit 78 in a
configuration, with exit 64 for --endpoint.  Valid ones still pass --check.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-ep-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")
BAD = ["tcp://localhost:5556", "inproc://x", "pgm://eth0;239.1.1.1:5555", "bogus",
       "tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1", "tcp://[::1:5556",
       "ipc://" + "/tmp/" + "a" * 103]
GOOD = ["tcp://127.0.0.1:5556", "tcp://*:*", "tcp://[::1]:5556", "ipc:///tmp/t.sock",
        "ipc://" + "/tmp/" + "a" * 102]

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    for i, ep in enumerate(BAD + GOOD):
        conf = os.path.join(TMP, f"{i}.conf")
        with open(conf, "w") as f:
            f.write(f'model = "{MODEL}";\npublish = {{\n  endpoints = [ "{ep}" ];\n}};\n'
                    'streams = ();\n')
        r = subprocess.run([exe, "--check", "-c", conf], capture_output=True, text=True,
                           timeout=120)
        if ep in BAD:
            T.ok(f"{tag}: config {ep[:40]} refused, FILE:LINE, exit 78",
                 r.returncode == 78 and f"{conf}:3:" in r.stderr, f"rc={r.returncode} {r.stderr[-300:]}")
            r = subprocess.run([exe, "--endpoint", ep, "--replay", WAV], capture_output=True,
                               text=True, timeout=120)
            T.ok(f"{tag}: --endpoint {ep[:40]} refused, exit 64", r.returncode == 64
                 and "--endpoint" in r.stderr, f"rc={r.returncode} {r.stderr[-300:]}")
        else:
            T.ok(f"{tag}: config {ep[:40]} passes --check", r.returncode == 0,
                 f"rc={r.returncode} {r.stderr[-300:]}")
T.done()
