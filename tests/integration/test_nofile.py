# SPDX-License-Identifier: Apache-2.0
"""test_nofile.py — tridentd raises its soft RLIMIT_NOFILE to the hard limit.

Issue 16, item 5: 1024 streams need more descriptors than the default soft
limit of 1024.  Started under `prlimit --nofile=64:4096`, the running daemon's
/proc/PID/limits shows 4096 as its soft limit; the unit file sets
LimitNOFILE=.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")
with open(os.path.join(ROOT, "packaging", "trident.service")) as f:
    T.ok("trident.service sets LimitNOFILE=", "\nLimitNOFILE=" in f.read())

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    p = subprocess.Popen(["prlimit", "--nofile=64:4096", exe, "--endpoint",
                          harness.free_endpoint(), "--replay", WAV, "--pace", "realtime",
                          "--loop"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    soft, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/limits") as f:
                for ln in f:
                    if ln.startswith("Max open files"):
                        soft = ln.split()[3]
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                if b"tridentd" in f.read() and soft == "4096":
                    break
        except OSError:
            pass
        time.sleep(0.1)
    T.ok(f"{tag}: soft limit raised from 64 to the hard 4096", soft == "4096", f"soft={soft}")
    p.send_signal(signal.SIGTERM)
    T.ok(f"{tag}: exit 0", p.wait(120) == 0, p.stderr.read()[-300:])
T.done()
