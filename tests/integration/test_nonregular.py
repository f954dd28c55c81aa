# SPDX-License-Identifier: Apache-2.0
"""test_nonregular.py — a FIFO or device as recording, model or configuration.

Each once hung start-up in open() or read forever (issue 16, item 3): a FIFO
nobody writes to as --replay's recording, as --model, as --check -c, and
/dev/zero as the configuration.  Now each is refused at once with one line
"PATH: not a regular file" and its exit status: 66 (noinput) for an input of
--replay, 78 (config) for the configuration.  A hang is a failure after a
generous 60 s (the process is then killed).
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-nonreg-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")
FIFO = os.path.join(TMP, "f.wav")
os.mkfifo(FIFO)

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    for args, want, path in (
            (["--replay", FIFO], 66, FIFO),
            (["--model", FIFO, "--replay", WAV], 66, FIFO),
            (["--check", "-c", FIFO], 78, FIFO),
            (["--check", "-c", "/dev/zero"], 78, "/dev/zero")):
        try:
            r = subprocess.run([exe] + args, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=60)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            rc, err = "hung", ""
        T.ok(f"{tag}: {' '.join(a.replace(TMP, '.') for a in args)}: exit {want}, "
             "not a regular file", rc == want and f"{path}: not a regular file" in err,
             f"rc={rc} {err[-300:]}")
T.done()
