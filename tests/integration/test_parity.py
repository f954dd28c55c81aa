# SPDX-License-Identifier: Apache-2.0
"""test_parity.py — the C network against real PyTorch.

Random Nets (model/train/export.random_net: several seeds, PyTorch's default
initialisation and 10x that, 4 and 10 classes) are exported as safetensors;
256 windows per model — gaussian noise, large amplitude (x1000), constant
windows, real CWRU windows raw and z-scored — go through PyTorch (Debian's
python3-torch, one thread) and through tests/tools/net-run with --impl ref and
--impl auto.  Every logit must be within 1e-4 * max|logit| of its window, and
the fast path (auto) within 1e-5 * max|logit| of the reference (ref).

The normal build runs every window; the sanitizer builds of $TRIDENT_BUILDS
(much slower) run the first models on a subset of the (shuffled) windows, which
is enough for ASan/UBSan/TSan to see every code path.  Goldens are computed here, now.
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402  (also puts model/train on sys.path)
import export  # noqa: E402
from net import normalize  # noqa: E402

WIN = 1024
TOL = 1e-4
TOL_FAST = 1e-5     # fast path vs the reference, same windows
MODELS = [  # seed, scale, classes
    (1, 1.0, 4), (1, 10.0, 4), (2, 1.0, 10), (2, 10.0, 10), (3, 1.0, 4), (3, 10.0, 4),
]
# sanitizer builds: (models, windows each); TSan slows this loop ~30x
SANITIZED = {"build-address": (2, 32), "build-thread": (1, 8)}
SANITIZED_OTHER = (1, 16)

tap = harness.Tap()
torch.set_num_threads(1)


def cwru_windows(rng, n):
    """n windows cut at random places from the CWRU recordings, or None."""
    files = sorted(glob.glob(os.path.join(harness.CWRU, "load*", "*.wav")))
    if not files:
        return None
    out, cache = [], {}
    for i in range(n):
        f = files[rng.integers(len(files))]
        if f not in cache:
            cache[f] = harness.read_wav(f)[0]
        x = cache[f]
        start = rng.integers(0, len(x) - WIN)
        out.append(x[start:start + WIN, 0])
    return np.stack(out).astype(np.float32)


def windows(seed):
    """256 windows: 96 noise, 48 large, 16 constant, 96 real (or noise if absent)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((96, WIN)).astype(np.float32)
    large = (rng.standard_normal((48, WIN)) * 1000.0).astype(np.float32)
    consts = np.repeat(np.linspace(-3.0, 3.0, 16, dtype=np.float32)[:, None], WIN, 1)
    consts[0] = 0.0
    real = cwru_windows(rng, 96)
    if real is None:
        real = rng.uniform(-1, 1, (96, WIN)).astype(np.float32)
    else:
        real[48:] = normalize(real[48:], "zscore")   # as the daemon feeds them
    # shuffled, so the sanitizer builds' subset sees every kind
    x = np.concatenate([noise, large, consts, real])
    return x[rng.permutation(len(x))]


def run(netrun, impl, model, x, tmp):
    inp, outp = os.path.join(tmp, "in.f32"), os.path.join(tmp, "out.f32")
    x.astype("<f4").tofile(inp)
    r = subprocess.run([netrun, "--impl", impl, model, inp, outp],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {r.stderr.strip()[:300]}"
    return np.fromfile(outp, "<f4"), ""


def main():
    if not glob.glob(os.path.join(harness.CWRU, "load*", "*.wav")):
        tap.note(f"no CWRU recordings in {harness.CWRU}: real windows replaced by uniform noise")
    builds = [b for b in harness.BUILDS if os.path.exists(os.path.join(b, "tools", "net-run"))]
    if not builds:
        tap.ok("net-run built in some build of TRIDENT_BUILDS", False, str(harness.BUILDS))
        tap.done()
    worst_all = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for mi, (seed, scale, classes) in enumerate(MODELS):
            net = export.random_net(seed, scale, classes)
            model = os.path.join(tmp, f"m{mi}.safetensors")
            export.save(net.state_dict(), model,
                        export.metadata([f"c{i}" for i in range(classes)]))
            x = windows(100 + mi)
            with torch.no_grad():
                gold = net(torch.from_numpy(x)[:, None, :]).numpy()
            assert gold.shape == (len(x), classes)
            for b in builds:
                n_models, n = len(MODELS), len(x)
                if os.path.basename(b) != "build":
                    n_models, n = SANITIZED.get(os.path.basename(b), SANITIZED_OTHER)
                if mi >= n_models:
                    continue
                netrun = os.path.join(b, "tools", "net-run")
                outs = {}
                for impl in ("ref", "auto"):
                    name = (f"{os.path.basename(b)} --impl {impl}: seed {seed} scale {scale:g} "
                            f"C={classes}, {n} windows")
                    y, why = run(netrun, impl, model, x[:n], tmp)
                    if y is None or y.size != n * classes:
                        tap.ok(name, False, why or f"got {0 if y is None else y.size} floats")
                        continue
                    y = y.reshape(n, classes)
                    outs[impl] = y
                    g = gold[:n]
                    scale_w = np.abs(g).max(axis=1, keepdims=True)
                    rel = (np.abs(y.astype(np.float64) - g) / scale_w).max(axis=1)
                    bad = ~np.isfinite(rel) | (rel > TOL)
                    i = int(np.nanargmax(np.where(np.isfinite(rel), rel, np.inf)))
                    worst_all = max(worst_all, float(rel[i]))
                    tap.ok(name, not bad.any(),
                           f"{int(bad.sum())} windows off; worst window {i}: rel {rel[i]:.3g}, "
                           f"C {y[i].tolist()} vs torch {g[i].tolist()}")
                    tap.note(f"worst {rel.max():.3g} of max|logit| ({name})")
                if len(outs) == 2:
                    ref = outs["ref"].astype(np.float64)
                    rel = (np.abs(outs["auto"] - ref).max(axis=1)
                           / np.abs(ref).max(axis=1).clip(1e-30))
                    name = (f"{os.path.basename(b)} auto vs ref: seed {seed} scale {scale:g} "
                            f"C={classes}, {n} windows")
                    tap.ok(name, bool(np.all(rel <= TOL_FAST)),
                           f"{int((~(rel <= TOL_FAST)).sum())} windows off; worst {rel.max():.3g}"
                           f" (limit {TOL_FAST:g})")
                    tap.note(f"worst {rel.max():.3g} of max|logit| ({name})")
    tap.note(f"worst relative logit error over everything: {worst_all:.3g} (limit {TOL:g})")
    tap.done()


if __name__ == "__main__":
    main()
