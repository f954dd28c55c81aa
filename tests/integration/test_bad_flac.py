# SPDX-License-Identifier: Apache-2.0
"""test_bad_flac.py — a corrupt or truncated FLAC replay is not a success.

Issue 16, item 10: --replay of a FLAC with flipped bits or cut in half once
exited 0 after a warning.  Now a read error, or an end of file before the
frame count the header announces (a log line names the missing frames),
ends the replay with exit 65.  The FLACs are made here with libsndfile
through ctypes (the reviewer's mkflac.py logic); an intact one exits 0.
"""
import ctypes
import ctypes.util
import os
import random
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-flac-")
sf = ctypes.CDLL(ctypes.util.find_library("sndfile"))


class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


sf.sf_open.restype = ctypes.c_void_p
sf.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
sf.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
sf.sf_close.argtypes = [ctypes.c_void_p]
n = 48000
x = (0.5 * np.sin(2 * np.pi * 157 * np.arange(n) / 12000)
     + 0.05 * np.random.RandomState(1).randn(n)).astype(np.float32)
good = os.path.join(TMP, "ok16.flac")
info = SF_INFO(0, 12000, 1, 0x170000 | 2, 0, 0)
h = sf.sf_open(good.encode(), 0x20, ctypes.byref(info))
assert h
sf.sf_writef_float(h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
sf.sf_close(h)
b = open(good, "rb").read()
files = {"trunc_half.flac": b[:len(b) // 2]}
r = random.Random(7)
bb = bytearray(b)
for _ in range(20):
    i = r.randrange(100, len(bb))
    bb[i] ^= 1 << r.randrange(8)
files["bitflip0.flac"] = bytes(bb)
for name, data in files.items():
    with open(os.path.join(TMP, name), "wb") as f:
        f.write(data)

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    res = subprocess.run([exe, "--stdout", "--replay", good], capture_output=True, text=True,
                         timeout=300)
    T.ok(f"{tag}: intact FLAC: exit 0", res.returncode == 0, res.stderr[-300:])
    for name in files:
        res = subprocess.run([exe, "--stdout", "--replay", os.path.join(TMP, name)],
                             capture_output=True, text=True, timeout=300)
        T.ok(f"{tag}: {name}: exit 65 with a read error or missing frames",
             res.returncode == 65 and ("read error" in res.stderr or "frames before" in res.stderr),
             f"rc={res.returncode} {res.stderr[-300:]}")
T.done()
