# SPDX-License-Identifier: Apache-2.0
"""test_int_wrap.py — integers beyond 32 bits without the L suffix.

libconfig 1.5 reads `hwm = 4294977296` as a wrapped int, 10000, and the
daemon ran with it (issue 16, item 6).  config.c now compares the literal on
the setting's line with what libconfig read: each of these is refused by
--check with FILE:LINE and exit 78; the same values in range still pass.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-int-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "inner.wav")
CASES = [("hwm", "4294977296", False), ("hop", "4294968320", True), ("hop", "0x100000400", True),
         ("hwm", "10000", False), ("hop", "512", True)]

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    for i, (key, lit, in_stream) in enumerate(CASES):
        conf = os.path.join(TMP, f"{i}.conf")
        pub = f"  {key} = {lit};\n" if not in_stream else "  hwm = 10000;\n"
        hop = f"; {key} = {lit}" if in_stream else ""
        with open(conf, "w") as f:
            f.write(f'model = "{MODEL}";\npublish = {{\n{pub}}};\nstreams = (\n'
                    f'  {{ name = "a"; type = "file"; path = "{WAV}"{hop}; }}\n);\n')
        r = subprocess.run([exe, "--check", "-c", conf], capture_output=True, text=True,
                           timeout=120)
        line = 6 if in_stream else 3
        if int(lit, 0) >= 2 ** 31:
            T.ok(f"{tag}: {key} = {lit} refused at FILE:LINE, exit 78", r.returncode == 78
                 and f"{conf}:{line}:" in r.stderr and "32 bits" in r.stderr,
                 f"rc={r.returncode} {r.stderr[-300:]}")
        else:
            T.ok(f"{tag}: {key} = {lit} passes", r.returncode == 0, r.stderr[-300:])
T.done()
