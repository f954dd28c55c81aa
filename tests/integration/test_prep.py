# SPDX-License-Identifier: Apache-2.0
"""test_prep.py — trident-prep: one channel, as float, resampled like the daemon.

Multi-channel s16/s32/float WAVs written here: each channel comes out exactly
as harness.read_wav() decodes it (integers / 2^(bits-1)); --rate equal to the
file's rate is a bit-exact copy; 48 kHz -> 12 kHz has the length resample.h
documents (floor(n / 4 + 0.5)) and keeps a 1 kHz sine; bad input gets a
one-line error and the documented exit code.
"""
import os
import subprocess
import tempfile

import numpy as np

from harness import Tap, binpath, write_wav, read_wav

tap = Tap()
prep = binpath("trident-prep")


def run(*args):
    p = subprocess.run([prep, *args], capture_output=True, text=True)
    return p.returncode, p.stderr


with tempfile.TemporaryDirectory() as d:
    rng = np.random.default_rng(1)
    x = (rng.uniform(-0.9, 0.9, (5000, 3))).astype(np.float32)
    for fmt in ("s16", "s32", "float"):
        wav = os.path.join(d, f"{fmt}.wav")
        write_wav(wav, x, 12000, fmt)
        ref, _ = read_wav(wav)
        for ch in range(3):
            out = os.path.join(d, "o.f32")
            rc, err = run("--channel", str(ch), "--rate", "12000", wav, out)
            y = np.fromfile(out, "<f4") if rc == 0 else None
            tap.ok(f"{fmt} channel {ch}: exact", y is not None and np.array_equal(y, ref[:, ch]),
                   err.strip())

    n = 48000 + 3
    t = np.arange(n) / 48000.0
    wav = os.path.join(d, "sine48k.wav")
    write_wav(wav, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 48000)
    out = os.path.join(d, "s.f32")
    rc, err = run("--rate", "12000", wav, out)
    y = np.fromfile(out, "<f4") if rc == 0 else np.zeros(0)
    tap.ok("48k->12k length floor(n/4+0.5)", len(y) == int(n / 4 + 0.5), f"{len(y)} {err}")
    if len(y) > 2000:
        k = np.arange(len(y))
        ref = 0.5 * np.sin(2 * np.pi * 1000 * k / 12000.0)
        e = np.abs(y[500:-500] - ref[500:-500]).max()
        tap.ok("48k->12k 1 kHz sine kept (amplitude and phase)", e < 1e-4, f"max err {e:g}")

    bad = os.path.join(d, "bad.wav")
    with open(bad, "w") as f:
        f.write("not audio at all\n")
    for name, args, code in (
            ("missing file", [os.path.join(d, "nope.wav"), out], 66),
            ("not audio", [bad, out], 65),
            ("channel out of range", ["--channel", "3", os.path.join(d, "s16.wav"), out], 64),
            ("bad rate", ["--rate", "x", wav, out], 64),
            ("no output named", [wav], 64)):
        rc, err = run(*args)
        lines = err.strip().splitlines()
        # usage errors may add the usage text; the others are exactly one line
        msg_ok = (len(lines) >= 1 if name == "no output named" else
                  len(lines) == 1 and lines[0].startswith("trident-prep: "))
        tap.ok(f"{name}: exit {code}, clear error", rc == code and msg_ok,
               f"rc={rc} err={err!r}")
tap.done()
