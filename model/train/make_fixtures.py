# SPDX-License-Identifier: Apache-2.0
"""make_fixtures.py — cut the shipped demo/test recordings out of the CWRU data.

    /usr/bin/python3 model/train/make_fixtures.py [--data DIR] [--out tests/fixtures/cwru]

Writes normal.wav, inner.wav, ball.wav and outer.wav: slices of the
EVALUATION split only (train.py), never of anything the model was trained on.
Sample values are copied unchanged (32-bit float WAV at the original rate):
- normal.wav: load0/normal.wav[NORMAL_TAIL_START:], the whole held-back tail,
  at 48 kHz, so the daemon has to resample it;
- inner/ball/outer.wav: the first FAULT_SECONDS of load3/<class>_007.wav at
  12 kHz (the 0.007 in faults, fixed before training, not picked by score).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402

FAULT_SECONDS = 3
FAULT_FILE = "load3/{}_007.wav"


def slices(data):
    """[(fixture name, CWRU wav path relative to data, start, end)]."""
    _, _, _, n = train.normal_slices(data)
    out = [("normal.wav", "load0/normal.wav", train.NORMAL_TAIL_START, n)]
    for c in ("inner", "ball", "outer"):
        out.append((f"{c}.wav", FAULT_FILE.format(c), 0, FAULT_SECONDS * train.RATE))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(
        os.environ.get("TRIDENT_SHARED", os.path.join(train.ROOT, "..", "shared")),
        "data", "cwru"))
    ap.add_argument("--out", default=os.path.join(train.ROOT, "tests", "fixtures", "cwru"))
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    for name, src, start, end in slices(a.data):
        x, rate = train.read_wav_f32(os.path.join(a.data, src))
        if end > len(x):
            sys.exit(f"make_fixtures.py: {src} has {len(x)} samples, need {end}")
        train.write_wav_f32(os.path.join(a.out, name), x[start:end], rate)
        print(f"{name}: {src} [{start}, {end}) at {rate} Hz")


if __name__ == "__main__":
    main()
