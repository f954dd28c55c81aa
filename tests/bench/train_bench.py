# SPDX-License-Identifier: Apache-2.0
"""train_bench.py — make bench: trident-train on 60 synthetic recordings of 10 s at 20 kHz.

Three classes of amplitude-modulated tones in noise (carrier and modulation
frequencies differ per class, jittered per recording), 20 recordings each,
written as float WAVs, trained with trident-train's defaults (rate 12000,
so every file is resampled by trident-prep).  Prints the wall time and the
epochs run; the target is under 5 minutes on the project's 2-core machine.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import write_wav  # noqa: E402

RATE, SECONDS, PER_CLASS = 20000, 10, 20
CLASSES = {"hum": (500, 7), "whine": (1800, 23), "rattle": (3200, 61)}


def main():
    build = os.environ.get("BUILD", "build")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="trident-train-bench-") as d:
        t = np.arange(RATE * SECONDS) / RATE
        for c, (fc, fm) in CLASSES.items():
            os.makedirs(os.path.join(d, "data", c))
            for i in range(PER_CLASS):
                f = fc * rng.uniform(0.9, 1.1)
                m = fm * rng.uniform(0.8, 1.2)
                x = (1 + 0.5 * np.sin(2 * np.pi * m * t)) * np.sin(2 * np.pi * f * t)
                x += rng.uniform(0.3, 1.0) * rng.standard_normal(len(t))
                write_wav(os.path.join(d, "data", c, f"{c}{i:02d}.wav"), x.astype(np.float32), RATE)
        out = os.path.join(d, "m.safetensors")
        env = dict(os.environ, TRIDENT_PREP=os.path.join(ROOT, build, "bin", "trident-prep"))
        t0 = time.time()
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "model", "train", "trident_train.py"),
                            os.path.join(d, "data"), "-o", out], env=env,
                           stdout=subprocess.PIPE, text=True)
        dt = time.time() - t0
        sys.stderr.write(p.stdout)
        if p.returncode != 0:
            print(f"train bench: trident-train failed (exit {p.returncode})")
            return 1
        import json
        card = json.load(open(os.path.join(d, "m.card.json")))
        tr = card["training"]
        print(f"trident-train: 60 recordings x 10 s at 20 kHz (3 classes): {dt:.0f} s "
              f"({dt / 60:.1f} min, target < 5 min), {tr['epochs_run']} epochs run "
              f"(best {tr['best_epoch']}), {tr['windows_per_epoch']} windows per epoch, "
              f"validation class-balanced accuracy "
              f"{100 * card['validation']['balanced_accuracy']:.2f}%"
              + ("" if dt < 300 else "  ** OVER 5 MINUTES **"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
