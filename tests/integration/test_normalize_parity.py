# SPDX-License-Identifier: Apache-2.0
"""test_normalize_parity.py — dsp/normalize.c vs model/train/net.py normalize().

Both must give bit-identical float32 windows (the training script and the
PyTorch reference in tests rely on it): random windows of many scales and
offsets, constant windows, and real CWRU windows.
"""
import os
import tempfile

import numpy as np

import harness
from harness import Tap, binpath

import net  # model/train/net.py (harness puts it on sys.path)

tap = Tap()
rng = np.random.default_rng(3)
W = net.WINDOW

wins = [rng.standard_normal((64, W)) * s + o
        for s, o in ((1, 0), (7, 3.5), (1e-4, -1000), (100, 0))]
wins.append(np.full((3, W), 2.25))
wins.append(np.zeros((1, W)))
cwru = os.path.join(harness.CWRU, "load0", "normal.wav")
if os.path.exists(cwru):
    x, _ = harness.read_wav(cwru)
    n = (len(x) // W) * W
    wins.append(x[:n, 0].reshape(-1, W))
else:
    tap.note(f"no CWRU data at {cwru}: synthetic windows only")
data = np.concatenate(wins).astype(np.float32)

with tempfile.TemporaryDirectory() as d:
    src, dst = os.path.join(d, "in.f32"), os.path.join(d, "out.f32")
    data.tofile(src)
    for kind in ("zscore", "none"):
        rc = os.spawnv(os.P_WAIT, binpath("dsp_normalize"),
                       ["dsp_normalize", kind, str(W), src, dst])
        c = np.fromfile(dst, dtype="<f4").reshape(-1, W) if rc == 0 else None
        py = net.normalize(data, kind)
        same = c is not None and c.shape == py.shape and np.array_equal(c, py)
        why = ""
        if c is not None and c.shape == py.shape and not same:
            why = f"max |diff| {np.abs(c - py).max():g}, {np.count_nonzero(c != py)} differ"
        tap.ok(f"normalize {kind}: C == net.py bit for bit ({len(data)} windows)", same,
               why or f"rc={rc}")
tap.done()
