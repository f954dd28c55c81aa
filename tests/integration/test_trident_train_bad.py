# SPDX-License-Identifier: Apache-2.0
"""test_trident_train_bad.py — trident-train refuses bad input with one line and no model.

Each case: the documented exit code (64 usage, 65 data, 66 no input), one
line on stderr that names the file or folder at fault, and nothing at -o (no
temp file left either).  Cases: an empty class folder, a single class, a
missing (dangling) file, a file not readable by the user (skipped as root), a
non-audio file, a truncated WAV, a recording shorter than a window, a
non-finite sample, a class with one recording (no split possible), and an
existing model at -o with other classes (kept unless --force).  Synthetic
WAVs only: no ../shared needed.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Tap, binpath, tmpdir, write_wav  # noqa: E402

PY = "/usr/bin/python3"
TRAIN = os.path.join(ROOT, "model", "train", "trident_train.py")
tap = Tap()
rng = np.random.default_rng(0)


def tone(n=8192, f=0.05):
    return (np.sin(np.arange(n) * f) + 0.1 * rng.standard_normal(n)).astype(np.float32)


def dataset(root, extra=None, per_class=2):
    """A valid two-class folder; extra(root) breaks it."""
    for c, f in (("a", 0.05), ("b", 0.2)):
        os.makedirs(os.path.join(root, c))
        for i in range(per_class):
            write_wav(os.path.join(root, c, f"{c}{i}.wav"), tone(f=f), 12000)
    if extra:
        extra(root)
    return root


def case(name, code, must_name, build, *args, out=None):
    d = tmpdir("trident-bad-")
    data = build(os.path.join(d, "data"))
    out = out or os.path.join(d, "out", "m.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    env = dict(os.environ, TRIDENT_PREP=binpath("trident-prep"))
    p = subprocess.run([PY, TRAIN, data, "-o", out, "--epochs", "1", *args],
                       capture_output=True, text=True, env=env)
    lines = p.stderr.strip().splitlines()
    tap.ok(f"{name}: exit {code}", p.returncode == code, f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
    tap.ok(f"{name}: one line naming {os.path.basename(must_name(data))}",
           len(lines) == 1 and must_name(data) in lines[0], repr(p.stderr[-300:]))
    left = os.listdir(os.path.dirname(out))
    return p, left


def no_model(name, left):
    tap.ok(f"{name}: nothing at -o, no temp file", left == [], str(left))


def main():
    def mk(name, code, target, breaker, *args):
        p, left = case(name, code, target, lambda r: dataset(r, breaker), *args)
        no_model(name, left)

    mk("empty class folder", 65, lambda d: os.path.join(d, "c"),
       lambda r: os.makedirs(os.path.join(r, "c")))
    p, left = case("single class", 65, lambda d: d,
                   lambda r: (os.makedirs(os.path.join(r, "a")),
                              write_wav(os.path.join(r, "a", "x.wav"), tone(), 12000), r)[-1])
    no_model("single class", left)
    mk("missing file (dangling link)", 66, lambda d: os.path.join(d, "a", "gone.wav"),
       lambda r: os.symlink("/nonexistent/x.wav", os.path.join(r, "a", "gone.wav")))
    if os.geteuid() != 0:
        def unreadable(r):
            p = os.path.join(r, "a", "locked.wav")
            write_wav(p, tone(), 12000)
            os.chmod(p, 0)
        mk("unreadable file", 66, lambda d: os.path.join(d, "a", "locked.wav"), unreadable)
    else:
        print("ok - unreadable file # SKIP running as root (permissions do not apply)")

    def garbage(r):
        with open(os.path.join(r, "a", "junk.wav"), "wb") as f:
            f.write(b"this is not a wav file at all" * 10)
    mk("non-audio file", 65, lambda d: os.path.join(d, "a", "junk.wav"), garbage)

    def truncated(r):
        p = os.path.join(r, "a", "cut.wav")
        write_wav(p, tone(), 12000)
        with open(p, "rb") as f:
            b = f.read()
        with open(p, "wb") as f:
            f.write(b[:30])
    mk("truncated file", 65, lambda d: os.path.join(d, "a", "cut.wav"), truncated)
    mk("shorter than a window", 65, lambda d: os.path.join(d, "b", "short.wav"),
       lambda r: write_wav(os.path.join(r, "b", "short.wav"), tone(500), 12000))

    def nan(r):
        x = tone()
        x[4000] = np.nan
        write_wav(os.path.join(r, "b", "nan.wav"), x, 12000)
    mk("non-finite sample", 65, lambda d: os.path.join(d, "b", "nan.wav"), nan)

    p, left = case("one recording in a class", 65, lambda d: "'a'",
                   lambda r: dataset(r, per_class=1))
    tap.ok("one recording in a class: says what to do",
           "--val-fraction 0" in p.stderr and "add recordings" in p.stderr, p.stderr)
    no_model("one recording in a class", left)

    # an existing model at -o with other classes
    d = tmpdir("trident-bad-")
    out = os.path.join(d, "m.safetensors")
    import export
    net = export.random_net(0, num_classes=3)
    export.save(net.state_dict(), out, export.metadata(["x", "y", "z"], 12000, "zscore"))
    before = open(out, "rb").read()
    p, _ = case("existing model with other classes", 65, lambda _: out,
                lambda r: dataset(r), out=out)
    tap.ok("existing model with other classes: kept unchanged", open(out, "rb").read() == before)
    tap.ok("existing model: no temp file beside it", os.listdir(d) == ["m.safetensors"] or
           sorted(os.listdir(d)) == ["data", "m.safetensors"], str(os.listdir(d)))
    env = dict(os.environ, TRIDENT_PREP=binpath("trident-prep"))
    p = subprocess.run([PY, TRAIN, dataset(os.path.join(d, "data2")), "-o", out, "--epochs", "1",
                        "--force", "--quiet", "--windows-per-epoch", "64"],
                       capture_output=True, text=True, env=env)
    tap.ok("--force replaces it", p.returncode == 0 and
           export.load(out)[1].get("trident.classes") == "a,b", p.stderr[-300:])
    p = subprocess.run([PY, TRAIN, "-o", out], capture_output=True, text=True, env=env)
    tap.ok("usage error: exit 64", p.returncode == 64, p.stderr[-200:])
    tap.done()


if __name__ == "__main__":
    main()
