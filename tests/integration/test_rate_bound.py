# SPDX-License-Identifier: Apache-2.0
"""test_rate_bound.py — a recording whose rate is absurdly low for the model.

An 8 KB WAV whose header says 1 Hz, replayed with the 12 kHz CWRU model,
once cost 537 MB (the resampler's per-call output buffer grows with the
ratio: issue 16, item 11).  Upsampling is bounded at RS_MAX_UP = 64x
(dsp/resample.h): the 1-Hz file is refused, exit 65, with a line saying
why, under an address-space limit of 400 MB it would have blown through;
a 200 Hz file (60x) still replays every window and exits 0.
"""
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-rate-")
low = os.path.join(TMP, "rate1.wav")
ok = os.path.join(TMP, "rate200.wav")
rng = np.random.default_rng(1)
harness.write_wav(low, rng.standard_normal(2000).astype(np.float32), 1)
harness.write_wav(ok, rng.standard_normal(2000).astype(np.float32), 200)

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    pre = [] if "address" in build or "thread" in build else ["prlimit", "--as=400000000"]
    r = subprocess.run(pre + [exe, "--stdout", "--replay", low], capture_output=True,
                       text=True, timeout=300)
    T.ok(f"{tag}: a 1-Hz recording is refused, exit 65",
         r.returncode == 65 and "more than 64" in r.stderr, f"rc={r.returncode} {r.stderr[-300:]}")
    r = subprocess.run([exe, "--stdout", "--replay", ok], capture_output=True,
                       text=True, timeout=300)
    m = re.search(r"stream rate200: (\d+) windows", r.stderr)
    n = sum('"label"' in ln for ln in r.stdout.splitlines())
    T.ok(f"{tag}: a 200-Hz recording (60x) replays ({n} windows), exit 0",
         r.returncode == 0 and m and n == int(m.group(1)) > 0, f"rc={r.returncode} {r.stderr[-300:]}")
T.done()
